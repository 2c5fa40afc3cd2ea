/* bench_selftest.c — the load generator's own checks (see bench_selftest.h). Parsers are fed
 * each input whole, one byte at a time and split at every position, because an incremental
 * parser's bugs live at the boundaries between reads.
 */
#include "bench_selftest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_hist.h"
#include "bench_ipc.h"
#include "bench_payload.h"
#include "bench_report.h"
#include "bench_seqset.h"
#include "bench_sse.h"
#include "bench_stream.h"
#include "bench_target.h"

static int failures;

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      fprintf(stderr, "self-test: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                                      \
    }                                                                                  \
  } while (0)

/* --- SSE parser ------------------------------------------------------------------------------ */

typedef struct seen_s {
  int n;
  char text[2048];  /* "type|data|retry;" per event, data truncated to the kept prefix */
  size_t len;
} seen_t;

static void record_event(void *ctx, const bench_sse_event_t *ev) {
  seen_t *s = ctx;
  s->n++;
  s->len += (size_t)snprintf(s->text + s->len, sizeof s->text - s->len, "%.*s|%.*s/%llu|%lld;",
                             (int)ev->type_len, ev->type, (int)ev->data_kept, ev->data,
                             (unsigned long long)ev->data_len, (long long)ev->retry_ms);
}

static const char sse_input[] =
  ": a comment first\n"
  "id: 1\n"
  "data: hello\n"
  "\n"
  "id: urn:uuid:2\r\n"
  "data:no-space\r\n"
  "data: second line\r\n"
  "\r\n"
  "event: update\r"
  "data\r"
  "\r"
  "retry: 1500\n"
  "retry: 12x\n"
  "unknown: field\n"
  "data: R\n"
  ":keepalive\n"
  "\n"
  "retry: 250\n"
  "event: close\n"
  "data: server_shutdown\n"
  "\n"
  "id: 9\n"
  "\n"
  "data: unfinished";

static const char sse_expected[] =
  "|hello/5|-1;"
  "|no-space\nsecond line/20|-1;"
  "update|/0|-1;"
  "|R/1|1500;"
  "close|server_shutdown/15|250;";

static void sse_check(const char *what, bench_sse_t *p, seen_t *s) {
  if (strcmp(s->text, sse_expected) != 0)
    fprintf(stderr, "self-test: %s: got events \"%s\"\n", what, s->text);
  CHECK(s->n == 5);
  CHECK(strcmp(s->text, sse_expected) == 0);
  CHECK(p->retry_ms == 250);
  CHECK(p->last_id_len == 1 && p->last_id[0] == '9');
  CHECK(!bench_sse_at_boundary(p));
  CHECK(bench_sse_partial_bytes(p) == strlen("data: unfinished"));
}

static void test_sse(void) {
  size_t len = sizeof sse_input - 1;
  bench_sse_t p;
  seen_t s;

  memset(&s, 0, sizeof s);
  bench_sse_init(&p, record_event, &s);
  bench_sse_feed(&p, sse_input, len);
  sse_check("whole", &p, &s);

  memset(&s, 0, sizeof s);
  bench_sse_init(&p, record_event, &s);
  for (size_t i = 0; i < len; i++)
    bench_sse_feed(&p, sse_input + i, 1);
  sse_check("byte by byte", &p, &s);

  for (size_t cut = 1; cut < len; cut++) {
    memset(&s, 0, sizeof s);
    bench_sse_init(&p, record_event, &s);
    bench_sse_feed(&p, sse_input, cut);
    bench_sse_feed(&p, sse_input + cut, len - cut);
    if (s.n != 5 || strcmp(s.text, sse_expected) != 0) {
      fprintf(stderr, "self-test: sse split at %zu\n", cut);
      sse_check("split", &p, &s);
      break;
    }
  }

  /* A reconnection forgets the unfinished event but keeps the last id and the retry. */
  bench_sse_reconnect(&p);
  CHECK(bench_sse_at_boundary(&p));
  CHECK(p.last_id_len == 1 && p.retry_ms == 250);

  /* Comments between events are no partial frame; an oversized id is truncated, flagged. */
  memset(&s, 0, sizeof s);
  bench_sse_init(&p, record_event, &s);
  bench_sse_feed(&p, ": ping\n", 7);
  CHECK(bench_sse_at_boundary(&p));
  bench_sse_feed(&p, ": unfinished comment", 20);
  CHECK(bench_sse_at_boundary(&p));
  char longid[400];
  memset(longid, 'a', sizeof longid);
  bench_sse_feed(&p, "\nid: ", 5);
  bench_sse_feed(&p, longid, sizeof longid);
  bench_sse_feed(&p, "\n\n", 2);
  CHECK(p.last_id_len == BENCH_SSE_ID_MAX && p.last_id_truncated);
  CHECK(s.n == 0);
}

/* --- HTTP stream ----------------------------------------------------------------------------- */

typedef struct stream_seen_s {
  int status;
  int heads;
  seen_t events;
} stream_seen_t;

static stream_seen_t *stream_ctx;

static void stream_head(bench_stream_t *s, int status) {
  (void)s;
  stream_ctx->status = status;
  stream_ctx->heads++;
}

static void stream_event(void *ctx, const bench_sse_event_t *ev) {
  (void)ctx;
  record_event(&stream_ctx->events, ev);
}

static const char chunked_response[] =
  "HTTP/1.1 200 OK\r\n"
  "Content-Type: text/event-stream\r\n"
  "Transfer-Encoding: chunked\r\n"
  "\r\n"
  "7\r\n:\n\nid: \r\n"
  "14\r\n7\ndata: a\n\nid: 8\ndat\r\n"
  "36\r\na: b\n\nretry: 2000\nevent: close\ndata: server_shutdown\n\n\r\n"
  "0\r\n\r\n";

static const char plain_response[] =
  "HTTP/1.1 200 OK\r\n"
  "Content-Type: text/event-stream\r\n"
  "Connection: close\r\n"
  "\r\n"
  "data: one\n\n"
  "data: tw";

/* Feeds a response cut at `cut` (0: whole) and returns how the EOF after it is classified. */
static int run_stream(const char *resp, size_t len, size_t cut, stream_seen_t *seen,
                      bench_stream_t *st) {
  memset(seen, 0, sizeof *seen);
  stream_ctx = seen;
  bench_stream_init(st, NULL, stream_head, stream_event);
  if (cut == 0) {
    CHECK(bench_stream_feed(st, resp, len) == 0);
  } else {
    CHECK(bench_stream_feed(st, resp, cut) == 0);
    CHECK(bench_stream_feed(st, resp + cut, len - cut) == 0);
  }
  return bench_stream_eof(st);
}

static void test_stream(void) {
  static const char chunked_expected[] = "|a/1|-1;|b/1|-1;close|server_shutdown/15|2000;";
  bench_stream_t st;
  stream_seen_t seen;
  size_t len = sizeof chunked_response - 1;
  for (size_t cut = 0; cut < len; cut++) {
    int end = run_stream(chunked_response, len, cut, &seen, &st);
    int ok = seen.heads == 1 && seen.status == 200 && st.terminated && end == BENCH_END_CLEAN &&
             strcmp(seen.events.text, chunked_expected) == 0 && st.sse.last_id_len == 1 &&
             st.sse.last_id[0] == '8' && st.sse.retry_ms == 2000;
    if (!ok) {
      fprintf(stderr, "self-test: chunked stream cut at %zu: status %d, events \"%s\"\n", cut,
              seen.status, seen.events.text);
      CHECK(ok);
      break;
    }
  }
  /* Bytes after the terminator are not a valid subscription response. */
  CHECK(bench_stream_feed(&st, "x", 1) == -EPROTO);

  len = sizeof plain_response - 1;
  for (size_t cut = 0; cut < len; cut++) {
    int end = run_stream(plain_response, len, cut, &seen, &st);
    int ok = seen.status == 200 && end == BENCH_END_PARTIAL && seen.events.n == 1 &&
             bench_sse_partial_bytes(&st.sse) == strlen("data: tw");
    if (!ok) {
      fprintf(stderr, "self-test: EOF-delimited stream cut at %zu\n", cut);
      CHECK(ok);
      break;
    }
  }

  static const char denied[] = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
  run_stream(denied, sizeof denied - 1, 0, &seen, &st);
  CHECK(seen.status == 401);
  bench_stream_init(&st, NULL, stream_head, stream_event);
  CHECK(bench_stream_feed(&st, "NOT HTTP\r\n", 10) == -EPROTO);
}

/* --- histograms ------------------------------------------------------------------------------ */

static void test_hist(void) {
  bench_hist_t *h = calloc(2, sizeof *h);
  if (h == NULL) {
    CHECK(h != NULL);
    return;
  }
  /* Every value lands in a bucket whose upper bound is within 1/64 above it. */
  uint64_t v = 1;
  for (int i = 0; i < 4000; i++) {
    unsigned idx = bench_hist_index(v);
    uint64_t up = bench_hist_upper(idx);
    CHECK(idx < BENCH_HIST_BUCKETS);
    CHECK(up >= v);
    CHECK((double)(up - v) <= (double)v / 64.0 + 1e-9);
    if (up < v || (double)(up - v) > (double)v / 64.0)
      break;
    v += v / 97 + 1;
    if (v > (UINT64_MAX >> 2))
      break;
  }
  CHECK(bench_hist_index(UINT64_MAX) == BENCH_HIST_BUCKETS - 1);
  CHECK(bench_hist_upper(BENCH_HIST_BUCKETS - 1) == UINT64_MAX);
  CHECK(bench_hist_index(127) == 127 && bench_hist_index(128) == 128);

  /* Uniform 1..1e6 µs-ish values split over two histograms, merged. */
  for (uint64_t x = 1; x <= 1000000; x++)
    bench_hist_record(&h[x & 1], x * 1000);
  bench_hist_merge(&h[0], &h[1]);
  CHECK(h[0].count == 1000000 && h[0].max == 1000000000ull);
  static const double qs[] = {0.5, 0.9, 0.99, 0.999};
  for (int i = 0; i < 4; i++) {
    double exact = qs[i] * 1e9;
    double got = (double)bench_hist_quantile(&h[0], qs[i]);
    CHECK(got >= exact && got <= exact * 1.02);
  }
  CHECK(bench_hist_quantile(&h[0], 1.0) == 1000000000ull);
  bench_hist_t empty = {0};
  CHECK(bench_hist_quantile(&empty, 0.5) == 0);
  free(h);

  bench_msh_t m = {0};
  bench_msh_record(&m, 0);
  bench_msh_record(&m, 1500);
  bench_msh_record(&m, 1520);
  bench_msh_record(&m, 2000);
  bench_msh_record(&m, 9999999);
  unsigned i1500 = bench_msh_index(1500), i2000 = bench_msh_index(2000);
  CHECK(m.count == 5 && m.max == 9999999);
  CHECK(m.buckets[0] == 1 && m.buckets[i1500] == 1 && m.buckets[bench_msh_index(1520)] == 1 &&
        m.buckets[i2000] == 1 && m.buckets[BENCH_MSH_BUCKETS - 1] == 1);
  CHECK(bench_msh_upper(&m, i1500) == 1500 && bench_msh_upper(&m, i2000) == 2000 &&
        bench_msh_upper(&m, BENCH_MSH_BUCKETS - 1) == 9999999);
  /* The documented bounds: every ms to 10, 10 ms to 1000, 50 ms to 10000, 1000 ms to 60000. */
  static const uint64_t in_bound[][2] = {
    {0, 0}, {7, 7}, {10, 10}, {11, 20}, {20, 20}, {21, 30}, {995, 1000}, {1000, 1000},
    {1001, 1050}, {1234, 1250}, {4999, 5000}, {10000, 10000}, {10001, 11000}, {59999, 60000},
    {60001, 600000}, {600000, 600000},
  };
  for (size_t k = 0; k < sizeof in_bound / sizeof *in_bound; k++)
    CHECK(bench_msh_bound(bench_msh_index(in_bound[k][0])) == in_bound[k][1]);
  /* Bounds rise; each bound is the last value of its bucket, the next value starts the next. */
  for (unsigned i = 0; i + 1 < BENCH_MSH_BUCKETS; i++) {
    uint64_t b = bench_msh_bound(i);
    if (bench_msh_index(b) != i || bench_msh_index(b + 1) != i + 1 ||
        (i > 0 && b <= bench_msh_bound(i - 1))) {
      fprintf(stderr, "self-test: millisecond bucket %u (bound %llu) is misplaced\n", i,
              (unsigned long long)b);
      CHECK(0);
      break;
    }
  }
  CHECK(bench_msh_bound(BENCH_MSH_BUCKETS - 2) == 600000);
  CHECK(bench_msh_index(600001) == BENCH_MSH_BUCKETS - 1);
  CHECK(bench_msh_index(UINT64_MAX) == BENCH_MSH_BUCKETS - 1);
  CHECK(bench_msh_bound(BENCH_MSH_BUCKETS - 1) == UINT64_MAX);
  /* Quantiles are bucket bounds, capped at the maximum. */
  bench_msh_t q = {0};
  CHECK(bench_msh_quantile(&q, 0.5) == 0);
  for (uint64_t ms = 1; ms <= 4000; ms++)
    bench_msh_record(&q, ms);
  CHECK(bench_msh_quantile(&q, 0.5) == 2000 && bench_msh_quantile(&q, 0.9) == 3600);
  CHECK(bench_msh_quantile(&q, 0.25) == 1000 && bench_msh_quantile(&q, 1.0) == 4000);
  bench_msh_record(&q, 4321);
  CHECK(bench_msh_quantile(&q, 1.0) == 4321);
}

/* --- results across processes and the JSON report -------------------------------------------- */

/* Two workers' results summed as the coordinator sums them, then printed: the millisecond
 * histograms keep their own keys and their buckets. */
static void test_report(void) {
  bench_result_t *r = calloc(2, sizeof *r);
  bench_report_t *rep = calloc(1, sizeof *rep);
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  if (r == NULL || rep == NULL || out == NULL) {
    CHECK(!"out of memory");
    goto free_all;
  }
  bench_msh_record(&r[0].end_ms, 3);
  bench_msh_record(&r[0].end_ms, 240);
  bench_msh_record(&r[1].end_ms, 235);
  bench_msh_record(&r[1].end_ms, 700000);
  bench_msh_record(&r[0].retry_ms, 1234);
  bench_msh_record(&r[1].reconnect_ms, 1260);
  r[0].ended_clean = 3;
  r[1].ended_clean = 1;
  bench_config_t cfg = {.mode = BENCH_MODE_RUN, .signal_after = 1, .resume = 1};
  rep->cfg = &cfg;
  bench_result_merge(&rep->r, &r[0]);
  bench_result_merge(&rep->r, &r[1]);
  CHECK(rep->r.end_ms.count == 4 && rep->r.end_ms.max == 700000 && rep->r.ended_clean == 4);
  CHECK(rep->r.end_ms.buckets[bench_msh_index(240)] == 2);
  bench_report_json(out, rep);
  fclose(out);
  out = NULL;
  if (text == NULL) {
    CHECK(text != NULL);
    goto free_all;
  }
  static const char *expect[] = {
    "\"retry_ms_hist\":[[1250,1]],", "\"end_ms_hist\":[[3,1],[240,2],[700000,1]],",
    "\"reconnect_ms_hist\":[[1300,1]],", "\"ended_clean\":4,",
  };
  for (size_t k = 0; k < sizeof expect / sizeof *expect; k++) {
    if (strstr(text, expect[k]) == NULL) {
      fprintf(stderr, "self-test: %s is not in the report: %s", expect[k], text);
      CHECK(0);
    }
  }
free_all:
  if (out)
    fclose(out);
  free(text);
  free(rep);
  free(r);
}

/* --- sequence sets --------------------------------------------------------------------------- */

typedef struct ranges_s {
  char text[256];
  size_t len;
} ranges_t;

static void collect_range(void *ctx, uint32_t lo, uint32_t hi) {
  ranges_t *r = ctx;
  r->len += (size_t)snprintf(r->text + r->len, sizeof r->text - r->len, "%u-%u,", lo, hi);
}

static void test_seqset(void) {
  bench_seqset_t s = {0};
  const uint32_t u = 100000;
  for (uint32_t j = 0; j < 10; j++)
    CHECK(bench_seqset_add(&s, j, u) == BENCH_SEQ_NEW);
  CHECK(s.ranges == NULL && s.bits == NULL && s.count == 10);
  CHECK(bench_seqset_add(&s, 3, u) == BENCH_SEQ_DUPLICATE);
  CHECK(bench_seqset_add(&s, 20, u) == BENCH_SEQ_NEW);       /* gap 10..19 */
  CHECK(bench_seqset_add(&s, 15, u) == BENCH_SEQ_REORDERED);
  CHECK(bench_seqset_add(&s, 15, u) == BENCH_SEQ_DUPLICATE);
  CHECK(bench_seqset_add(&s, 14, u) == BENCH_SEQ_REORDERED); /* joins 15 */
  CHECK(bench_seqset_add(&s, 16, u) == BENCH_SEQ_REORDERED); /* joins 15 */
  CHECK(bench_seqset_add(&s, 21, u) == BENCH_SEQ_NEW);
  ranges_t r = {0};
  bench_seqset_each(&s, u, collect_range, &r);
  CHECK(strcmp(r.text, "0-9,14-16,20-21,") == 0);
  CHECK(s.count == 15 && bench_seqset_has(&s, 15) && !bench_seqset_has(&s, 13));
  bench_seqset_free(&s);

  /* Every other index: ranges grow until a bitmap is cheaper, and the answers do not change. */
  const uint32_t small = 1000;
  for (uint32_t j = 0; j < small; j += 2)
    CHECK(bench_seqset_add(&s, j, small) == BENCH_SEQ_NEW);
  CHECK(s.bits != NULL);
  CHECK(bench_seqset_add(&s, 3, small) == BENCH_SEQ_REORDERED);
  CHECK(bench_seqset_add(&s, 4, small) == BENCH_SEQ_DUPLICATE);
  CHECK(s.count == small / 2 + 1);
  memset(&r, 0, sizeof r);
  bench_seqset_each(&s, 8, collect_range, &r);
  CHECK(strcmp(r.text, "0-0,2-4,6-6,") == 0);
  bench_seqset_free(&s);
}

/* --- payload and targets --------------------------------------------------------------------- */

static void test_payload(void) {
  char buf[256];
  size_t n = bench_payload_build(buf, sizeof buf, 0xabcdef01u, 42, 123456789012ull, 100);
  CHECK(n == 100);
  CHECK(memcmp(buf, "Rabcdef01-42-123456789012-x", 27) == 0 && buf[99] == 'x');
  uint64_t seq = 0, ts = 0;
  CHECK(bench_payload_parse(buf, 64, 0xabcdef01u, &seq, &ts) == 0 && seq == 42 && ts == 123456789012ull);
  CHECK(bench_payload_parse(buf, 64, 0x12345678u, &seq, &ts) == -ESRCH);
  CHECK(bench_payload_parse("server_shutdown", 15, 0xabcdef01u, &seq, &ts) == -EINVAL);
  CHECK(bench_payload_parse(buf, 14, 0xabcdef01u, &seq, &ts) == -EINVAL);
  n = bench_payload_build(buf, sizeof buf, 1, 7, 9, 0);
  CHECK(n == strlen("R00000001-7-9-"));
}

static void test_urls(void) {
  static const char *good[] = {
    "http://127.0.0.1:8080/.well-known/mercure", "http://localhost/x", "http://127.9.8.7:1",
    "http://[::1]:18080/sub?id=1", "HTTP://LOCALHOST:80",
  };
  static const char *bad[] = {
    "http://10.0.0.1/", "http://example.com/", "http://[::2]:80/", "https://127.0.0.1/",
    "http://user@127.0.0.1/", "http://127.0.0.1:0/", "http://127.0.0.1:99999/", "ftp://127.0.0.1",
    "http://128.0.0.1/", "http://127.0.0.1.example.com/",
  };
  char err[256];
  bench_url_t u;
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    int rc = bench_url_parse(good[i], &u, err, sizeof err);
    if (rc < 0)
      fprintf(stderr, "self-test: %s refused: %s\n", good[i], err);
    CHECK(rc == 0);
    free(u.path);
  }
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = bench_url_parse(bad[i], &u, err, sizeof err);
    if (rc == 0) {
      fprintf(stderr, "self-test: %s accepted\n", bad[i]);
      free(u.path);
    }
    CHECK(rc == -EINVAL);
  }
  CHECK(bench_url_parse("http://127.0.0.1:8/p?q#frag", &u, err, sizeof err) == 0);
  CHECK(strcmp(u.path, "/p?q") == 0 && strcmp(u.host, "127.0.0.1:8") == 0);
  free(u.path);
  CHECK(bench_url_parse("http://127.0.0.1?x=1", &u, err, sizeof err) == 0);
  CHECK(strcmp(u.path, "/?x=1") == 0);
  free(u.path);
  char *e = bench_pct_encode("https://a.b/t/0 x~");
  CHECK(e && strcmp(e, "https%3A%2F%2Fa.b%2Ft%2F0%20x~") == 0);
  free(e);
}

int bench_self_test(void) {
  failures = 0;
  test_sse();
  test_stream();
  test_hist();
  test_report();
  test_seqset();
  test_payload();
  test_urls();
  if (failures == 0)
    fprintf(stderr, "self-test: all checks passed\n");
  return failures;
}
