/* fuzz_topic.c — topic selectors (topic.c) and the broker (broker.c) driven by a fuzzed script of
 * subscriptions, removals and updates, checked against a brute-force model: each update must
 * reach exactly the subscriptions one of whose matchers selects one of its topics ("*" selects
 * every topic) and, for a private update, whose token grants one of them; each of those exactly
 * once. sl__sub_wants, the replay's filter (sl__sub_filter_wants) and every selector match are
 * checked against the same model.
 *
 * Input: lines (split on '\n'), each an operation whose fields are split on '\t'. Tabs and line
 * feeds are control characters, so no valid topic or matcher holds one.
 *   S<tab>m1<tab>m2...                  a subscription without a token, matchers m1, m2...;
 *                                       "~p" is the URL pattern p, "^t" the URI template t
 *                                       (the model asks its own compiled copy, matched alone;
 *                                       the broker groups them, indexes fixed-text patterns by
 *                                       canonical URL, and lends a served pattern's matcher when
 *                                       the pattern's first byte is odd)
 *   T<tab>m1...<tab><tab>g1<tab>g2...   one with a token granting subscribe on g1, g2...
 *   R<k>                                removes live subscription number k (a byte, modulo)
 *   U<tab>t1<tab>t2...                  an update to topics t1, t2...; P: a private one
 * Matchers and topics that subscribe.c and publish.c would refuse (sl__check_matcher,
 * sl__check_topic) are left out, as those endpoints refuse them before the broker sees them;
 * grants are what auth.c hands out: non-empty, without NUL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/validate.h"
#include "topics/broker.h"
#include "topics/topic.h"

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

#define MAX_SUBS 32
#define MAX_SELECTORS 8
#define MAX_TOPICS 8
#define MAX_FIELDS (2 * MAX_SELECTORS + 2)
#define BASE "https://hub.example.com/.well-known/mercure"

typedef struct field_s {
  const char *s;
  size_t len;
} field_t;

/* The model of one live subscription. */
typedef struct model_s {
  sl_sub_t *sub;
  field_t matchers[MAX_SELECTORS];
  sl_selector_t compiled[MAX_SELECTORS]; /* the model's own: kind and matcher of each */
  size_t nmatchers;
  field_t grants[MAX_SELECTORS];
  size_t ngrants;
  int has_token;
  unsigned delivered;          /* times the current update reached it */
} model_t;

static model_t subs[MAX_SUBS];
static size_t nsubs;
static char tags[MAX_SUBS];    /* a subscription's dummy connection points at its tag */

static int selects(const field_t *sel, const char *topic, size_t len) {
  return (sel->len == 1 && sel->s[0] == '*') || (sel->len == len && !memcmp(sel->s, topic, len));
}

static int any_selects(const field_t *sel, size_t n, const sl_frame_t *f) {
  for (size_t i = 0; i < n; i++)
    for (size_t t = 0; t < f->topic_count; t++)
      if (selects(&sel[i], f->topics[t], f->topic_lens[t]))
        return 1;
  return 0;
}

/* The model's matchers one at a time, each pattern with its own automaton. */
static int model_selects(const model_t *m, const sl_frame_t *f) {
  for (size_t i = 0; i < m->nmatchers; i++) {
    uint32_t kind = m->compiled[i].kind;
    if (kind == SL_SELECTOR_URLPATTERN || kind == SL_SELECTOR_TEMPLATE) {
      for (size_t t = 0; t < f->topic_count; t++)
        if (sl__selector_matches(&m->compiled[i], f->topics[t], f->topic_lens[t]))
          return 1;
    } else if (m->compiled[i].kind == SL_SELECTOR_ANY && f->topic_count > 0) {
      return 1; /* "*", or a pattern or template "*" (what the spec reserves) */
    } else if (any_selects(&m->matchers[i], 1, f)) {
      return 1;
    }
  }
  return 0;
}

static int model_wants(const model_t *m, const sl_frame_t *f) {
  if (!model_selects(m, f))
    return 0;
  return !(f->flags & SL_FRAME_PRIVATE) ||
         (m->has_token && any_selects(m->grants, m->ngrants, f));
}

/* Every selector of a subscription, as topic.c reads it, against every topic of f. */
static void check_selectors(const field_t *sel, size_t n, const sl_frame_t *f) {
  for (size_t i = 0; i < n; i++) {
    if (sel[i].len > 1 && (sel[i].s[0] == '~' || sel[i].s[0] == '^'))
      continue; /* a pattern: the model's compiled copy is the reference */
    sl_selector_t s;
    sl__selector_init(&s, sel[i].s, sel[i].len);
    int any = sel[i].len == 1 && sel[i].s[0] == '*';
    CHECK(sl__selector_is_exact(&s) == !any);
    for (size_t t = 0; t < f->topic_count; t++)
      CHECK(sl__selector_matches(&s, f->topics[t], f->topic_lens[t]) ==
            selects(&sel[i], f->topics[t], f->topic_lens[t]));
  }
}

/* The selectors of grants laid out as auth.c lays a token's claims out: one block, the selector
 * array then its strings. */
static sl_selector_t *grant_block(const field_t *g, size_t n) {
  if (n == 0)
    return NULL;
  size_t strings = 0;
  for (size_t i = 0; i < n; i++)
    strings += g[i].len + 1;
  sl_selector_t *sel = malloc(n * sizeof *sel + strings);
  CHECK(sel != NULL);
  char *p = (char *)(sel + n);
  for (size_t i = 0; i < n; i++) {
    memcpy(p, g[i].s, g[i].len);
    p[g[i].len] = '\0';
    sl__selector_init(&sel[i], p, g[i].len);
    p += g[i].len + 1;
  }
  return sel;
}

static void deliver(sl_sub_t *sub, sl_frame_t *f, void *arg) {
  (void)f, (void)arg;
  size_t tag = (size_t)((const char *)(const void *)sub->conn - tags);
  CHECK(tag < MAX_SUBS && subs[tag].sub == sub);
  subs[tag].delivered++;
}

static size_t split(const char *line, size_t len, field_t *fields) {
  size_t n = 0;
  const char *p = line, *end = line + len;
  while (n < MAX_FIELDS) {
    const char *tab = memchr(p, '\t', (size_t)(end - p));
    fields[n].s = p;
    fields[n++].len = (size_t)((tab ? tab : end) - p);
    if (tab == NULL)
      break;
    p = tab + 1;
  }
  return n;
}

static void subscribe(sl_broker_t *b, const field_t *f, size_t n, int token) {
  if (nsubs == MAX_SUBS)
    return;
  model_t *m = &subs[nsubs];
  memset(m, 0, sizeof *m);
  size_t i = 0;
  const char *why;
  for (; i < n && f[i].len > 0; i++)
    if (m->nmatchers < MAX_SELECTORS && sl__check_matcher(f[i].s, f[i].len, &why) == 0)
      m->matchers[m->nmatchers++] = f[i];
  for (i++; token && i < n; i++)
    if (m->ngrants < MAX_SELECTORS && f[i].len > 0 && !memchr(f[i].s, '\0', f[i].len))
      m->grants[m->ngrants++] = f[i];
  if (m->nmatchers == 0)
    return; /* subscribe.c answers 400 */
  m->has_token = token;
  sl_selector_t sels[MAX_SELECTORS];
  size_t kept = 0;
  for (size_t k = 0; k < m->nmatchers; k++) {
    const field_t *mf = &m->matchers[k];
    if (mf->len > 1 && (mf->s[0] == '~' || mf->s[0] == '^')) {
      sl_selector_kind_t kind = mf->s[0] == '~' ? SL_SELECTOR_URLPATTERN : SL_SELECTOR_TEMPLATE;
      const char *text = mf->s + 1;
      size_t len = mf->len - 1;
      if (sl__selector_compile(&m->compiled[kept], kind, text, len, BASE, &why) != 0)
        continue; /* subscribe.c answers 400 */
      if (!((unsigned char)text[0] & 1) ||
          !sl__broker_matcher(b, kind, text, len, BASE, &sels[kept])) {
        int r = sl__selector_compile(&sels[kept], kind, text, len, BASE, &why);
        CHECK(r == 0);
      }
      CHECK(sels[kept].kind == m->compiled[kept].kind);
    } else {
      sl__selector_init(&sels[kept], mf->s, mf->len);
      sl__selector_init(&m->compiled[kept], mf->s, mf->len);
    }
    m->matchers[kept++] = *mf;
  }
  m->nmatchers = kept;
  if (kept == 0)
    return;
  sl_grants_t grants = {
    .subscribe = grant_block(m->grants, m->ngrants), .count = m->ngrants, .has_token = token,
  };
  m->sub = sl__sub_new((struct sl_conn_s *)(void *)&tags[nsubs], sels, m->nmatchers,
                       &grants, 16);
  CHECK(m->sub != NULL && m->sub->last_seq == 0 && ((uintptr_t)sl__sub_front(m->sub) & 7) == 0);
  CHECK(grants.subscribe == NULL && grants.count == 0);
  CHECK(sl__broker_add(b, m->sub) == 0);
  nsubs++;
}

/* Moves the last subscription into slot k, keeping tags equal to slots. */
static void unsubscribe(sl_broker_t *b, size_t k) {
  sl__broker_remove(b, subs[k].sub);
  sl__selectors_release(subs[k].compiled, subs[k].nmatchers);
  nsubs--;
  if (k != nsubs) {
    subs[k] = subs[nsubs];
    subs[k].sub->conn = (struct sl_conn_s *)(void *)&tags[k];
  }
  subs[nsubs].sub = NULL;
}

static void update(sl_broker_t *b, const field_t *f, size_t n, int priv, uint64_t seq,
                   const char *line, size_t line_len) {
  char *copies[MAX_TOPICS];
  const char *topics[MAX_TOPICS];
  size_t ntopics = 0;
  const char *why;
  for (size_t i = 0; i < n && ntopics < MAX_TOPICS; i++) {
    if (sl__check_topic(f[i].s, f[i].len, &why))
      continue; /* publish.c answers 400 */
    copies[ntopics] = strndup(f[i].s, f[i].len);
    CHECK(copies[ntopics] != NULL);
    topics[ntopics] = copies[ntopics];
    ntopics++;
  }
  if (ntopics == 0)
    return;
  sl_update_t u = {
    .topics = topics, .topic_count = ntopics, .data = line, .data_len = line_len,
    .is_private = priv,
  };
  sl_frame_t *fr = sl__frame_update(&u, "urn:fuzz", 8);
  CHECK(fr != NULL && fr->len >= 2 && memcmp(fr->wire + fr->len - 2, "\r\n", 2) == 0);
  fr->seq = seq;
  for (size_t k = 0; k < nsubs; k++) {
    subs[k].delivered = 0;
    int want = model_wants(&subs[k], fr);
    CHECK(sl__sub_wants(subs[k].sub, fr) == want);
    sl_sub_filter_t flt;
    CHECK(sl__sub_filter_init(&flt, subs[k].sub) == 0);
    CHECK(sl__sub_filter_wants(&flt, fr) == want);
    sl__sub_filter_free(&flt);
    check_selectors(subs[k].matchers, subs[k].nmatchers, fr);
    check_selectors(subs[k].grants, subs[k].ngrants, fr);
  }
  sl__broker_dispatch(b, fr, deliver, NULL);
  for (size_t k = 0; k < nsubs; k++) {
    CHECK(subs[k].delivered == (unsigned)model_wants(&subs[k], fr));
    CHECK(subs[k].sub->last_seq <= seq);
  }
  /* The same update again reaches nobody: every subscriber already has it. */
  sl__broker_dispatch(b, fr, deliver, NULL);
  for (size_t k = 0; k < nsubs; k++)
    CHECK(subs[k].delivered == (unsigned)model_wants(&subs[k], fr));
  sl__frame_unref(fr);
  for (size_t i = 0; i < ntopics; i++)
    free(copies[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *in = malloc(size ? size : 1);
  CHECK(in != NULL);
  memcpy(in, data, size);
  sl_broker_t b;
  CHECK(sl__broker_init(&b) == 0);
  nsubs = 0;
  uint64_t seq = 0;
  const char *p = in, *end = in + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    field_t f[MAX_FIELDS];
    if (len >= 2 && (p[0] == 'S' || p[0] == 'T' || p[0] == 'U' || p[0] == 'P') && p[1] == '\t') {
      size_t n = split(p + 2, len - 2, f);
      if (p[0] == 'S' || p[0] == 'T')
        subscribe(&b, f, n, p[0] == 'T');
      else
        update(&b, f, n, p[0] == 'P', ++seq, p, len);
    } else if (len >= 2 && p[0] == 'R' && nsubs > 0) {
      unsubscribe(&b, (unsigned char)p[1] % nsubs);
    }
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  while (nsubs > 0)
    unsubscribe(&b, nsubs - 1);
  CHECK(b.bucket_count == 0 && b.scanned == NULL && b.any == NULL && b.patterns.count == 0 &&
        b.fixed.count == 0 && b.wild_n == 0);
  sl__broker_destroy(&b);
  free(in);
  return 0;
}
