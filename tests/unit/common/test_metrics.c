/* test_metrics.c — metrics.c: summing per-worker blocks field by field, which latency bucket an
 * observation lands in (bounds are inclusive, as Prometheus' "le" says), and that the rendered
 * text is valid Prometheus text exposition: every line a HELP/TYPE comment or a sample
 * `name{labels} value`, each family's HELP and TYPE once and before its samples, families not
 * interleaved, no duplicate series, and each histogram's buckets ascending, cumulative and ending
 * with le="+Inf" equal to _count. The checker below is written from the format's description.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/metrics.h"

/* Every counter of sl_metrics_t by name, so a sum is checked per field, not per offset. */
#define SCALAR_FIELDS(X)                                                                         \
  X(connections) X(subscribers) X(accepted_total) X(adopted_total) X(published_total) X(delivered_total)          \
  X(bytes_out_total) X(writes_total) X(slow_disconnects_total) X(lost_update_ends_total)        \
  X(resumes_total) X(resumes_last_second)                                                         \
  X(replayed_total) X(replay_checks_total) X(replays_overtaken_total) X(queued_bytes)          \
  X(requests_total) X(errors_total) X(forced_total) X(drained_total)           \
  X(held_total) X(emfile_total) X(refused_full_total) X(refused_client_total)        \
  X(rate_limited_total) X(latency_sum_ns)
#define COUNT_FIELD(name) +1
enum { SCALARS = 0 SCALAR_FIELDS(COUNT_FIELD) };

/* A field added to sl_metrics_t must be added to SCALAR_FIELDS too, so that it is tested. */
_Static_assert(sizeof(sl_metrics_t) ==
                 (SCALARS + SL_LATENCY_BUCKETS + 1) * sizeof(atomic_uint_fast64_t),
               "sl_metrics_t has a field this test does not know");

/* ---- Prometheus text format checker ---- */

static char why[512]; /* why the last check_exposition() rejected its input */
#define REJECT(...)                                                                              \
  do {                                                                                           \
    snprintf(why, sizeof why, __VA_ARGS__);                                                      \
    return -1;                                                                                   \
  } while (0)

#define MAX_FAMILIES 64
#define MAX_SERIES 256

typedef struct family_s {
  char name[128];
  char type[16];
  int help, has_type;
  int sampled;       /* samples seen */
  int closed;        /* another family's samples followed */
} family_t;

typedef struct exposition_s {
  family_t fam[MAX_FAMILIES];
  size_t nfam;
  char series[MAX_SERIES][192];
  size_t nseries;
  family_t *current;
} exposition_t;

static int name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
static int name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

/* Length of the metric name at s (0 when none). */
static size_t metric_name(const char *s) {
  if (!name_start(*s))
    return 0;
  size_t n = 1;
  while (name_char(s[n]))
    n++;
  return n;
}

static family_t *family(exposition_t *e, const char *name, size_t len) {
  for (size_t i = 0; i < e->nfam; i++)
    if (strlen(e->fam[i].name) == len && memcmp(e->fam[i].name, name, len) == 0)
      return &e->fam[i];
  assert_true(e->nfam < MAX_FAMILIES);
  assert_true(len < sizeof e->fam[0].name);
  family_t *f = &e->fam[e->nfam++];
  memset(f, 0, sizeof *f);
  memcpy(f->name, name, len);
  return f;
}

static int has_suffix(const char *s, size_t len, const char *suffix) {
  size_t n = strlen(suffix);
  return len > n && memcmp(s + len - n, suffix, n) == 0;
}

/* The family a sample name belongs to: a histogram's _bucket/_sum/_count, or itself. */
static family_t *family_of_sample(exposition_t *e, const char *name, size_t len) {
  static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
  for (size_t i = 0; i < 3; i++) {
    if (!has_suffix(name, len, suffixes[i]))
      continue;
    size_t base = len - strlen(suffixes[i]);
    for (size_t k = 0; k < e->nfam; k++)
      if (strlen(e->fam[k].name) == base && memcmp(e->fam[k].name, name, base) == 0 &&
          strcmp(e->fam[k].type, "histogram") == 0)
        return &e->fam[k];
  }
  return family(e, name, len);
}

/* Parses the label set at *p ("{a="x",b="y"}"), leaves *p after it. 0, or -1 when malformed. */
static int parse_labels(const char **p, char *le, size_t le_cap) {
  const char *s = *p;
  le[0] = '\0';
  if (*s != '{')
    return 0;
  s++;
  while (*s != '}') {
    size_t n = metric_name(s);
    if (n == 0 || memchr(s, ':', n))
      return -1;
    int is_le = n == 2 && memcmp(s, "le", 2) == 0;
    s += n;
    if (*s++ != '=' || *s++ != '"')
      return -1;
    size_t vlen = 0;
    while (*s != '"') {
      if (*s == '\0' || *s == '\n')
        return -1;
      if (*s == '\\') {
        s++;
        if (*s != '\\' && *s != '"' && *s != 'n')
          return -1;
      }
      if (is_le && vlen + 1 < le_cap)
        le[vlen++] = *s;
      s++;
    }
    if (is_le)
      le[vlen] = '\0';
    s++;
    if (*s == ',')
      s++;
    else if (*s != '}')
      return -1;
  }
  *p = s + 1;
  return 0;
}

/* A Prometheus float: decimal, exponent, or +Inf/-Inf/NaN; the whole token must parse. */
static int parse_value(const char *s, size_t len, double *v) {
  char buf[64];
  if (len == 0 || len >= sizeof buf)
    return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "-Inf") == 0 || strcmp(buf, "NaN") == 0) {
    *v = strcmp(buf, "NaN") == 0 ? NAN : buf[0] == '+' ? INFINITY : -INFINITY;
    return 0;
  }
  for (size_t i = 0; i < len; i++)
    if (!strchr("0123456789.eE+-", buf[i]))
      return -1;
  char *end = NULL;
  *v = strtod(buf, &end);
  return *end == '\0' ? 0 : -1;
}

typedef struct histogram_s {
  char name[128];
  double le[64];
  double count[64];
  size_t nbuckets;
  double sum, total;
  int has_sum, has_count;
} histogram_t;

/* Checks one sample line; fills h when it belongs to histogram family h->name. */
static int check_sample(exposition_t *e, const char *line, size_t lineno, histogram_t *h) {
  size_t n = metric_name(line);
  if (n == 0)
    REJECT("line %zu: no metric name: %.200s", lineno, line);
  family_t *f = family_of_sample(e, line, n);
  if (!f->help || !f->has_type)
    REJECT("line %zu: sample before its family's HELP and TYPE: %.200s", lineno, line);
  if (f->closed)
    REJECT("line %zu: family %.100s continues after another family: %.200s", lineno, f->name, line);
  if (e->current && e->current != f)
    e->current->closed = 1;
  e->current = f;
  f->sampled++;

  const char *p = line + n;
  char le[32];
  if (parse_labels(&p, le, sizeof le))
    REJECT("line %zu: malformed labels: %.200s", lineno, line);
  /* The series (name and labels) must be unique. */
  size_t series_len = (size_t)(p - line);
  assert_true(series_len < sizeof e->series[0]);
  for (size_t i = 0; i < e->nseries; i++)
    if (strlen(e->series[i]) == series_len && memcmp(e->series[i], line, series_len) == 0)
      REJECT("line %zu: duplicate series: %.200s", lineno, line);
  assert_true(e->nseries < MAX_SERIES);
  memcpy(e->series[e->nseries], line, series_len);
  e->series[e->nseries++][series_len] = '\0';

  if (*p != ' ')
    REJECT("line %zu: no single space before the value: %.200s", lineno, line);
  p++;
  size_t vlen = strcspn(p, " ");
  double v;
  if (parse_value(p, vlen, &v))
    REJECT("line %zu: value is not a number: %.200s", lineno, line);
  if (p[vlen] == ' ') {
    /* An optional timestamp: an integer of milliseconds. */
    const char *t = p + vlen + 1;
    if (*t == '-')
      t++;
    if (*t == '\0' || strspn(t, "0123456789") != strlen(t))
      REJECT("line %zu: trailing garbage: %.200s", lineno, line);
  }
  if (strcmp(f->type, "counter") == 0 && !(v >= 0))
    REJECT("line %zu: negative counter: %.200s", lineno, line);

  if (strcmp(f->type, "histogram") != 0)
    return 0;
  if (strcmp(f->name, h->name) != 0)
    REJECT("line %zu: unexpected histogram %s", lineno, f->name);
  if (has_suffix(line, n, "_bucket")) {
    if (le[0] == '\0')
      REJECT("line %zu: bucket without le: %.200s", lineno, line);
    double bound;
    if (parse_value(le, strlen(le), &bound))
      REJECT("line %zu: le is not a number: %.200s", lineno, line);
    assert_true(h->nbuckets < 64);
    if (h->has_sum || h->has_count)
      REJECT("line %zu: bucket after _sum/_count: %.200s", lineno, line);
    h->le[h->nbuckets] = bound;
    h->count[h->nbuckets++] = v;
  } else if (has_suffix(line, n, "_sum")) {
    h->sum = v;
    h->has_sum = 1;
  } else {
    h->total = v;
    h->has_count = 1;
  }
  return 0;
}

/* Checks the whole exposition and fills *out with the histogram named hist_name. 0, or -1 with
 * the reason in why. */
static int check_exposition(const char *text, size_t len, const char *hist_name, histogram_t *out) {
  static exposition_t e;
  memset(&e, 0, sizeof e);
  static histogram_t h;
  memset(&h, 0, sizeof h);
  snprintf(h.name, sizeof h.name, "%s", hist_name);

  if (len == 0 || strlen(text) != len)
    REJECT("length %zu, but %zu bytes before the first NUL", len, strlen(text));
  if (text[len - 1] != '\n')
    REJECT("the exposition must end with a line feed");
  static char copy[65536];
  if (len >= sizeof copy)
    REJECT("exposition larger than this checker's buffer");
  memcpy(copy, text, len + 1);
  size_t lineno = 0;
  for (char *line = copy, *next; *line; line = next) {
    next = strchr(line, '\n');
    *next++ = '\0';
    lineno++;
    if (strchr(line, '\r') || strchr(line, '\t'))
      REJECT("line %zu: CR or tab: %.200s", lineno, line);
    if (line[0] == '\0')
      continue;
    if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
      int is_help = line[2] == 'H';
      const char *name = line + 7;
      size_t n = metric_name(name);
      if (n == 0 || name[n] != ' ' || name[n + 1] == '\0')
        REJECT("line %zu: malformed %s line: %.200s", lineno, is_help ? "HELP" : "TYPE", line);
      family_t *f = family(&e, name, n);
      if (f->sampled)
        REJECT("line %zu: %s after the family's samples: %.200s", lineno, is_help ? "HELP" : "TYPE",
                 line);
      if (is_help) {
        if (f->help++)
          REJECT("line %zu: second HELP for %s", lineno, f->name);
      } else {
        const char *type = name + n + 1;
        if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
            strcmp(type, "summary") && strcmp(type, "untyped"))
          REJECT("line %zu: unknown type: %.200s", lineno, line);
        if (f->has_type++)
          REJECT("line %zu: second TYPE for %s", lineno, f->name);
        snprintf(f->type, sizeof f->type, "%s", type);
      }
      continue;
    }
    if (line[0] == '#')
      continue;
    if (check_sample(&e, line, lineno, &h))
      return -1;
  }
  for (size_t i = 0; i < e.nfam; i++)
    if (e.fam[i].sampled == 0)
      REJECT("family %s has HELP/TYPE but no sample", e.fam[i].name);

  /* The histogram: ascending bounds, cumulative counts, +Inf last and equal to _count. */
  if (h.nbuckets == 0 || !h.has_sum || !h.has_count)
    REJECT("histogram %s: missing buckets, _sum or _count", hist_name);
  for (size_t i = 1; i < h.nbuckets; i++) {
    if (!(h.le[i] > h.le[i - 1]))
      REJECT("histogram %s: bucket %zu's le is not above the previous one", hist_name, i);
    if (h.count[i] < h.count[i - 1])
      REJECT("histogram %s: bucket %zu is not cumulative", hist_name, i);
  }
  if (!isinf(h.le[h.nbuckets - 1]) || h.le[h.nbuckets - 1] < 0)
    REJECT("histogram %s: the last bucket is not le=\"+Inf\"", hist_name);
  if (h.count[h.nbuckets - 1] != h.total)
    REJECT("histogram %s: +Inf bucket %.0f != _count %.0f", hist_name,
             h.count[h.nbuckets - 1], h.total);
  *out = h;
  return 0;
}

/* The value of the sample line that starts with prefix ("name " or "name{...} "). */
static const char *sample_value(const char *text, const char *prefix) {
  size_t n = strlen(prefix);
  for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
    if (strncmp(line, prefix, n) == 0)
      return line + n;
  fail_msg("no sample line starting with \"%s\"", prefix);
  return NULL;
}

static void expect_sample(const char *text, const char *prefix, const char *value) {
  const char *v = sample_value(text, prefix);
  size_t n = strlen(value);
  if (strncmp(v, value, n) != 0 || v[n] != '\n')
    fail_msg("%s: expected %s, got %.*s", prefix, value, (int)strcspn(v, "\n"), v);
}

/* ---- tests ---- */

/* |a - b| without libm, which the unit tests do not link. */
static double distance(double a, double b) {
  return a > b ? a - b : b - a;
}

static void test_sum_over_blocks(void **state) {
  (void)state;
  enum { BLOCKS = 4 };
  static sl_metrics_t blocks[BLOCKS];
  memset(blocks, 0, sizeof blocks);
  const sl_metrics_t *ptrs[BLOCKS];
  for (size_t b = 0; b < BLOCKS; b++) {
    uint64_t k = 1;
#define SET_FIELD(name) atomic_store(&blocks[b].name, (b + 1) * 1000003ULL + (k++) * 17);
    SCALAR_FIELDS(SET_FIELD)
#undef SET_FIELD
    for (size_t i = 0; i <= SL_LATENCY_BUCKETS; i++)
      atomic_store(&blocks[b].latency_bucket[i], (b + 1) * 100 + i);
    ptrs[b] = &blocks[b];
  }
  sl_metrics_t out;
  memset(&out, 0xa5, sizeof out); /* garbage: the sum must not add onto it */
  sl__metrics_sum(ptrs, BLOCKS, &out);
  uint64_t k = 1;
#define CHECK_FIELD(name)                                                                        \
  {                                                                                              \
    uint64_t want = 0;                                                                           \
    for (size_t b = 0; b < BLOCKS; b++)                                                          \
      want += (b + 1) * 1000003ULL + k * 17;                                                     \
    k++;                                                                                         \
    if (sl__metric_get(&out.name) != want)                                                        \
      fail_msg("sum of " #name ": %llu, expected %llu",                                          \
               (unsigned long long)sl__metric_get(&out.name), (unsigned long long)want);          \
  }
  SCALAR_FIELDS(CHECK_FIELD)
#undef CHECK_FIELD
  for (size_t i = 0; i <= SL_LATENCY_BUCKETS; i++)
    assert_int_equal(sl__metric_get(&out.latency_bucket[i]), 1000 + 4 * i);

  /* One block: a copy. No block: all zero. */
  sl__metrics_sum(ptrs + 2, 1, &out);
  assert_int_equal(sl__metric_get(&out.connections), sl__metric_get(&blocks[2].connections));
  assert_int_equal(sl__metric_get(&out.latency_sum_ns), sl__metric_get(&blocks[2].latency_sum_ns));
  sl__metrics_sum(ptrs, 0, &out);
  static const sl_metrics_t zero;
  assert_memory_equal(&out, &zero, sizeof out);
}

/* Gauges go up and down; the sum of blocks is what the hub reports. */
static void test_add_sub_get(void **state) {
  (void)state;
  static sl_metrics_t m;
  memset(&m, 0, sizeof m);
  sl__metric_add(&m.connections, 5);
  sl__metric_sub(&m.connections, 2);
  sl__metric_add(&m.connections, 1);
  assert_int_equal(sl__metric_get(&m.connections), 4);
  sl__metric_add(&m.bytes_out_total, UINT64_C(1) << 40);
  sl__metric_add(&m.bytes_out_total, 1);
  assert_int_equal(sl__metric_get(&m.bytes_out_total), (UINT64_C(1) << 40) + 1);
}

static void test_latency_buckets(void **state) {
  (void)state;
  /* Bounds ascend, so that the first bucket that fits is the right one. */
  for (size_t i = 1; i < SL_LATENCY_BUCKETS; i++)
    assert_true(sl__latency_bounds[i] > sl__latency_bounds[i - 1]);

  for (size_t i = 0; i < SL_LATENCY_BUCKETS; i++) {
    uint64_t at = (uint64_t)(sl__latency_bounds[i] * 1e9 + 0.5);
    static sl_metrics_t m;
    memset(&m, 0, sizeof m);
    /* Exactly on the bound counts in that bucket ("le" = less or equal); 1 ns more, the next. */
    sl__metrics_observe_latency(&m, at);
    sl__metrics_observe_latency(&m, at + 1);
    sl__metrics_observe_latency(&m, at - 1);
    for (size_t k = 0; k <= SL_LATENCY_BUCKETS; k++) {
      uint64_t want = (k == i) * 2 + (k == i + 1);
      if (sl__metric_get(&m.latency_bucket[k]) != want)
        fail_msg("observations at bound %zu (%llu ns, +1, -1): bucket %zu holds %llu, expected "
                 "%llu", i, (unsigned long long)at, k,
                 (unsigned long long)sl__metric_get(&m.latency_bucket[k]),
                 (unsigned long long)want);
    }
    assert_int_equal(sl__metric_get(&m.latency_sum_ns), 3 * at);
  }

  static sl_metrics_t m;
  memset(&m, 0, sizeof m);
  sl__metrics_observe_latency(&m, 0);
  sl__metrics_observe_latency(&m, 3600ULL * 1000000000ULL);
  sl__metrics_observe_latency(&m, 1500000000ULL);
  assert_int_equal(sl__metric_get(&m.latency_bucket[0]), 1);
  assert_int_equal(sl__metric_get(&m.latency_bucket[SL_LATENCY_BUCKETS]), 2);
  assert_int_equal(sl__metric_get(&m.latency_sum_ns), 3601500000000ULL);
}

static void test_render_zero(void **state) {
  (void)state;
  static sl_metrics_t m;
  memset(&m, 0, sizeof m);
  sl_metrics_extra_t x = {0};
  size_t len = 0;
  char *text = sl__metrics_render(&m, &x, &len);
  assert_non_null(text);
  histogram_t h;
  if (check_exposition(text, len, "sluice_publish_latency_seconds", &h))
    fail_msg("invalid exposition: %s\n%s", why, text);
  assert_int_equal(h.nbuckets, SL_LATENCY_BUCKETS + 1);
  assert_true(h.total == 0);
  assert_true(h.sum == 0);
  expect_sample(text, "sluice_up ", "1");
  expect_sample(text, "sluice_ready ", "0");
  expect_sample(text, "sluice_connections ", "0");
  free(text);
}

static void test_render_values(void **state) {
  (void)state;
  static sl_metrics_t m;
  memset(&m, 0, sizeof m);
  sl__metric_add(&m.connections, 7);
  sl__metric_add(&m.subscribers, 5);
  sl__metric_add(&m.accepted_total, 1234567);
  sl__metric_add(&m.published_total, 42);
  sl__metric_add(&m.delivered_total, 99);
  sl__metric_add(&m.bytes_out_total, UINT64_MAX);
  sl__metric_add(&m.slow_disconnects_total, 3);
  sl__metric_add(&m.lost_update_ends_total, 4);
  sl__metric_add(&m.replay_checks_total, 5);
  sl__metric_add(&m.refused_full_total, 6);
  sl__metric_add(&m.refused_client_total, 7);
  sl__metric_add(&m.rate_limited_total, 8);
  sl__metric_add(&m.resumes_total, 11);
  sl__metric_add(&m.resumes_last_second, 2);
  sl__metric_add(&m.replayed_total, 13);
  sl__metric_add(&m.requests_total, 17);
  sl__metric_add(&m.errors_total, 19);
  sl__metric_add(&m.forced_total, 23);
  sl__metric_add(&m.drained_total, 29);
  sl__metric_add(&m.emfile_total, 31);
  /* Observations in the first, a middle and the overflow bucket. */
  static const uint64_t obs[] = {5000, 10000, 300000, 300000, 2000000000ULL, 7000000, 1};
  uint64_t total_ns = 0;
  for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
    sl__metrics_observe_latency(&m, obs[i]);
    total_ns += obs[i];
  }
  sl_metrics_extra_t x = {.ready = 1, .draining = 1, .workers = 4, .history_size = 10000};
  size_t len = 0;
  char *text = sl__metrics_render(&m, &x, &len);
  assert_non_null(text);
  histogram_t h;
  if (check_exposition(text, len, "sluice_publish_latency_seconds", &h))
    fail_msg("invalid exposition: %s\n%s", why, text);

  expect_sample(text, "sluice_up ", "1");
  expect_sample(text, "sluice_ready ", "1");
  expect_sample(text, "sluice_draining ", "1");
  expect_sample(text, "sluice_workers ", "4");
  expect_sample(text, "sluice_history_capacity ", "10000");
  expect_sample(text, "sluice_connections ", "7");
  expect_sample(text, "sluice_subscribers ", "5");
  expect_sample(text, "sluice_streams_remaining ", "5");
  expect_sample(text, "sluice_connections_accepted_total ", "1234567");
  expect_sample(text, "sluice_published_total ", "42");
  expect_sample(text, "sluice_delivered_total ", "99");
  /* Counters are exact integers, even past 2^53. */
  expect_sample(text, "sluice_bytes_out_total ", "18446744073709551615");
  expect_sample(text, "sluice_slow_consumer_disconnects_total ", "3");
  expect_sample(text, "sluice_lost_update_ends_total ", "4");
  expect_sample(text, "sluice_replay_checks_total ", "5");
  expect_sample(text, "sluice_connections_refused_full_total ", "6");
  expect_sample(text, "sluice_connections_refused_per_ip_total ", "7");
  expect_sample(text, "sluice_rate_limited_total ", "8");
  expect_sample(text, "sluice_resumes_total ", "11");
  expect_sample(text, "sluice_resumes_per_second ", "2");
  expect_sample(text, "sluice_replayed_total ", "13");
  expect_sample(text, "sluice_requests_total ", "17");
  expect_sample(text, "sluice_errors_total ", "19");
  expect_sample(text, "sluice_forced_closes_total ", "23");
  expect_sample(text, "sluice_drained_streams_total ", "29");
  expect_sample(text, "sluice_accept_emfile_total ", "31");

  /* The histogram holds exactly these observations, each in the bucket its bound says. */
  assert_int_equal(h.nbuckets, SL_LATENCY_BUCKETS + 1);
  assert_true(h.total == 7);
  assert_true(distance(h.sum, (double)total_ns / 1e9) < 1e-9);
  for (size_t i = 0; i < SL_LATENCY_BUCKETS; i++) {
    assert_true(distance(h.le[i], sl__latency_bounds[i]) <= 1e-12 * sl__latency_bounds[i]);
    double want = 0;
    for (size_t k = 0; k < sizeof obs / sizeof obs[0]; k++)
      want += (double)obs[k] / 1e9 <= sl__latency_bounds[i];
    if (h.count[i] != want)
      fail_msg("bucket le=%g holds %.0f, expected %.0f", sl__latency_bounds[i], h.count[i], want);
  }
  free(text);
}

/* The checker itself must reject what the format forbids, or the tests above prove nothing. */
static int exposition_fails(const char *text) {
  histogram_t h;
  return check_exposition(text, strlen(text), "h", &h) != 0;
}

#define HIST_OK "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"

static void test_checker_rejects_invalid(void **state) {
  (void)state;
  assert_false(exposition_fails(HIST_OK));
  assert_false(exposition_fails("# HELP a x\n# TYPE a gauge\na{l=\"v\",m=\"\\\"\"} 1.5e3 123\n" HIST_OK));
  /* Sample before HELP/TYPE; TYPE twice; a family split by another; duplicate series. */
  assert_true(exposition_fails("a 1\n# HELP a x\n# TYPE a gauge\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\na{l=\"1\"} 1\n# HELP b x\n# TYPE b gauge\nb 1\na{l=\"2\"} 1\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\na 1\na 2\n" HIST_OK));
  /* Malformed sample lines. */
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\na  1\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\na 1x\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\na{l=v} 1\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a counter\na -1\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\n1a 1\n" HIST_OK));
  assert_true(exposition_fails("# HELP a x\n# TYPE a gauge\na 1" HIST_OK));
  /* Histograms: not cumulative, no +Inf, +Inf != _count, bounds not ascending. */
  assert_true(exposition_fails("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"));
  assert_true(exposition_fails("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 2\nh_sum 3\nh_count 2\n"));
  assert_true(exposition_fails("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n"));
  assert_true(exposition_fails("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sum_over_blocks),
    cmocka_unit_test(test_add_sub_get),
    cmocka_unit_test(test_latency_buckets),
    cmocka_unit_test(test_render_zero),
    cmocka_unit_test(test_render_values),
    cmocka_unit_test(test_checker_rejects_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
