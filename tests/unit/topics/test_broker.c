/* test_broker.c — broker.c: exact and "*" selectors, each matching subscriber reached exactly
 * once per update however many of its selectors or of the update's topics match, last_seq
 * deduplication, private updates only for tokens granting subscribe on one of the update's
 * topics, removal (no delivery after, buckets freed when their last selector goes), the index
 * growing past its first table, and thousands of subscribers over hundreds of topics with adds
 * and removes between updates, checked against a brute-force model — sl__sub_wants included.
 * The broker never dereferences a subscription's connection, so each test subscription gets a
 * dummy one: a pointer into tags[], whose index names the subscriber.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "topics/broker.h"

#define MAX_SUBS 4096

static char tags[MAX_SUBS];

static struct sl_conn_s *conn_of(size_t i) {
  return (struct sl_conn_s *)(void *)&tags[i];
}

static size_t index_of(const sl_sub_t *s) {
  return (size_t)((const char *)(const void *)s->conn - tags);
}

/* Claims granting subscribe on the given selectors ("*" = any topic), laid out as auth.c does:
 * one block holding the selector array and then its strings, freed by sl__claims_free. */
static sl_claims_t claims_for(const char *const *subscribe, size_t n) {
  sl_claims_t c = {0};
  size_t strings = 0;
  for (size_t i = 0; i < n; i++)
    strings += strlen(subscribe[i]) + 1;
  sl_selector_t *sel = malloc(n * sizeof *sel + strings + 1);
  assert_non_null(sel);
  char *p = (char *)(sel + n);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(subscribe[i]);
    memcpy(p, subscribe[i], len + 1);
    sel[i].kind = strcmp(p, "*") == 0 ? SL_SELECTOR_ANY : SL_SELECTOR_EXACT;
    sel[i].text = p;
    sel[i].len = len;
    sel[i].matcher = NULL;
    p += len + 1;
  }
  c.subscribe = sel;
  c.subscribe_count = n;
  return c;
}

/* Subscription number i with n selectors; claims (may be NULL) are moved into it. */
static sl_sub_t *sub_new(size_t i, const char *const *sels, size_t n, sl_claims_t *claims,
                         int has_token) {
  sl_selector_t sel[64];
  assert_true(n <= 64);
  for (size_t k = 0; k < n; k++)
    sl__selector_init(&sel[k], sels[k], strlen(sels[k]));
  sl_grants_t g = {NULL, 0, 0, has_token};
  if (claims) {
    g.subscribe = claims->subscribe;
    g.count = claims->subscribe_count;
    g.exp = claims->exp;
  }
  sl_sub_t *s = sl__sub_new(conn_of(i), sel, n, &g, 0);
  if (s && claims) {
    claims->subscribe = NULL; /* moved into the subscription; the rest is freed here */
    claims->subscribe_count = 0;
    sl__claims_free(claims);
  }
  assert_non_null(s);
  assert_int_equal(s->last_seq, 0);
  return s;
}

static sl_sub_t *add_sub(sl_broker_t *b, size_t i, const char *const *sels, size_t n) {
  sl_sub_t *s = sub_new(i, sels, n, NULL, 0);
  assert_int_equal(sl__broker_add(b, s), 0);
  return s;
}

static sl_frame_t *frame_for(const char *const *topics, size_t n, uint64_t seq, int is_private) {
  sl_update_t u = {0};
  u.topics = topics;
  u.topic_count = n;
  u.data = "d";
  u.data_len = 1;
  u.is_private = is_private;
  char id[32];
  int len = snprintf(id, sizeof id, "id-%llu", (unsigned long long)seq);
  sl_frame_t *f = sl__frame_update(&u, id, (size_t)len);
  assert_non_null(f);
  f->seq = seq;
  return f;
}

/* Deliveries per subscriber index for one dispatch. */
typedef struct deliveries_s {
  unsigned count[MAX_SUBS];
  const sl_frame_t *frame;
  size_t total;
} deliveries_t;

static void on_deliver(sl_sub_t *sub, sl_frame_t *f, void *arg) {
  deliveries_t *d = arg;
  assert_ptr_equal(f, d->frame);
  /* last_seq is raised before the subscriber is told. */
  assert_int_equal(sub->last_seq, f->seq);
  d->count[index_of(sub)]++;
  d->total++;
}

/* Dispatches f and checks that exactly the subscribers listed in expected (indices, n of them)
 * got it, each once. */
static void expect_dispatch(sl_broker_t *b, sl_frame_t *f, const size_t *expected, size_t n) {
  static deliveries_t d;
  memset(&d, 0, sizeof d);
  d.frame = f;
  sl__broker_dispatch(b, f, on_deliver, &d);
  for (size_t i = 0; i < n; i++)
    if (d.count[expected[i]] != 1)
      fail_msg("seq %llu: subscriber %zu got the update %u times, expected once",
               (unsigned long long)f->seq, expected[i], d.count[expected[i]]);
  if (d.total != n)
    fail_msg("seq %llu: %zu deliveries, expected %zu", (unsigned long long)f->seq, d.total, n);
}

static sl_broker_t *new_broker(void) {
  sl_broker_t *b = malloc(sizeof *b);
  assert_non_null(b);
  assert_int_equal(sl__broker_init(b), 0);
  return b;
}

/* Every bucket is freed once the last selector naming its topic is gone. */
static void expect_empty_index(const sl_broker_t *b) {
  assert_int_equal(b->bucket_count, 0);
  for (size_t i = 0; i <= b->slot_mask; i++)
    assert_null(b->slots[i]);
  assert_null(b->scanned);
  assert_null(b->any);
  assert_int_equal(b->patterns.count, 0);
}

static void free_broker(sl_broker_t *b) {
  sl__broker_destroy(b);
  free(b);
}

static void test_exact_and_wildcard_selectors(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const a[] = {"https://example.com/a"};
  static const char *const bb[] = {"https://example.com/b"};
  static const char *const any[] = {"*"};
  static const char *const ab[] = {"https://example.com/a", "https://example.com/b"};
  static const char *const near[] = {"https://example.com/a/", "https://example.com/", "**",
                                     "https://example.com/A", "https://example.com/ab"};
  sl_sub_t *s[5] = {add_sub(b, 0, a, 1), add_sub(b, 1, bb, 1), add_sub(b, 2, any, 1),
                    add_sub(b, 3, ab, 2), add_sub(b, 4, near, 5)};

  sl_frame_t *f = frame_for(a, 1, 1, 0);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(sl__sub_wants(s[i], f), i == 0 || i == 2 || i == 3);
  expect_dispatch(b, f, (const size_t[]){0, 2, 3}, 3);
  sl__frame_unref(f);

  f = frame_for(bb, 1, 2, 0);
  expect_dispatch(b, f, (const size_t[]){1, 2, 3}, 3);
  sl__frame_unref(f);

  /* A topic nobody names exactly reaches only the wildcard; "**" and prefixes are exact. */
  static const char *const other[] = {"https://example.com/c"};
  f = frame_for(other, 1, 3, 0);
  assert_false(sl__sub_wants(s[4], f));
  expect_dispatch(b, f, (const size_t[]){2}, 1);
  sl__frame_unref(f);

  static const char *const star_topic[] = {"**"};
  f = frame_for(star_topic, 1, 4, 0);
  expect_dispatch(b, f, (const size_t[]){2, 4}, 2);
  sl__frame_unref(f);

  for (size_t i = 0; i < 5; i++)
    sl__broker_remove(b, s[i]);
  expect_empty_index(b);
  free_broker(b);
}

/* An alternate topic (not the first) selects as well as the canonical one. */
static void test_alternate_topics(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const canon[] = {"https://example.com/books/1"};
  static const char *const alt[] = {"urn:books:1"};
  sl_sub_t *s0 = add_sub(b, 0, canon, 1);
  sl_sub_t *s1 = add_sub(b, 1, alt, 1);
  static const char *const both[] = {"https://example.com/books/1", "urn:books:1"};
  sl_frame_t *f = frame_for(both, 2, 1, 0);
  assert_true(sl__sub_wants(s0, f));
  assert_true(sl__sub_wants(s1, f));
  expect_dispatch(b, f, (const size_t[]){0, 1}, 2);
  sl__frame_unref(f);
  sl__broker_remove(b, s0);
  sl__broker_remove(b, s1);
  expect_empty_index(b);
  free_broker(b);
}

static void test_each_subscriber_once(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  /* Every selector matches, some twice over. */
  static const char *const many[] = {"t1", "t2", "*", "t1", "t3", "*"};
  static const char *const two[] = {"t2", "t1"};
  sl_sub_t *s0 = add_sub(b, 0, many, 6);
  sl_sub_t *s1 = add_sub(b, 1, two, 2);
  sl_sub_t *s2 = add_sub(b, 2, many, 6);
  /* Every topic of the update matches, one of them twice. */
  static const char *const topics[] = {"t1", "t2", "t3", "t1"};
  sl_frame_t *f = frame_for(topics, 4, 7, 0);
  expect_dispatch(b, f, (const size_t[]){0, 1, 2}, 3);
  assert_int_equal(s0->last_seq, 7);
  assert_int_equal(s1->last_seq, 7);
  sl__frame_unref(f);
  sl__broker_remove(b, s1);
  sl__broker_remove(b, s0);
  sl__broker_remove(b, s2);
  expect_empty_index(b);
  free_broker(b);
}

static void test_last_seq_dedupe(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const t[] = {"t"};
  sl_sub_t *s0 = add_sub(b, 0, t, 1);
  sl_sub_t *s1 = add_sub(b, 1, t, 1);

  sl_frame_t *f5 = frame_for(t, 1, 5, 0);
  expect_dispatch(b, f5, (const size_t[]){0, 1}, 2);
  /* The same update again, or an older one, is not delivered twice. */
  expect_dispatch(b, f5, NULL, 0);
  sl_frame_t *f3 = frame_for(t, 1, 3, 0);
  expect_dispatch(b, f3, NULL, 0);
  assert_int_equal(s0->last_seq, 5);

  /* A subscriber that already has everything up to 8 from history skips those. */
  s1->last_seq = 8;
  sl_frame_t *f8 = frame_for(t, 1, 8, 0);
  expect_dispatch(b, f8, (const size_t[]){0}, 1);
  sl_frame_t *f9 = frame_for(t, 1, 9, 0);
  expect_dispatch(b, f9, (const size_t[]){0, 1}, 2);
  assert_int_equal(s1->last_seq, 9);

  sl__frame_unref(f3);
  sl__frame_unref(f5);
  sl__frame_unref(f8);
  sl__frame_unref(f9);
  sl__broker_remove(b, s0);
  sl__broker_remove(b, s1);
  free_broker(b);
}

static void test_private_updates(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const a[] = {"https://example.com/a"};
  static const char *const any[] = {"*"};
  static const char *const grant_a[] = {"https://example.com/a"};
  static const char *const grant_b[] = {"https://example.com/b"};
  static const char *const grant_any[] = {"https://example.com/x", "*"};
  static const char *const grant_other[] = {"https://example.com/x", "https://example.com/a/"};

  sl_sub_t *s[9];
  s[0] = add_sub(b, 0, a, 1); /* anonymous */
  sl_claims_t c = claims_for(grant_a, 1);
  s[1] = sub_new(1, a, 1, &c, 1);
  /* The claims were moved into the subscription. */
  assert_null(c.subscribe);
  assert_int_equal(c.subscribe_count, 0);
  c = claims_for(grant_b, 1);
  s[2] = sub_new(2, a, 1, &c, 1);
  c = claims_for(grant_any, 2);
  s[3] = sub_new(3, any, 1, &c, 1);
  c = claims_for(grant_other, 2);
  s[4] = sub_new(4, a, 1, &c, 1);
  c = claims_for(NULL, 0);
  s[5] = sub_new(5, any, 1, &c, 1); /* a token that grants nothing */
  s[6] = sub_new(6, any, 1, NULL, 1);
  /* An exact selector whose text is "*" is a literal, not a wildcard. */
  c = claims_for(any, 1);
  c.subscribe[0].kind = SL_SELECTOR_EXACT;
  s[7] = sub_new(7, a, 1, &c, 1);
  /* Claims without a verified token grant nothing. */
  c = claims_for(any, 1);
  s[8] = sub_new(8, a, 1, &c, 0);
  for (size_t i = 1; i < 9; i++)
    assert_int_equal(sl__broker_add(b, s[i]), 0);

  sl_frame_t *f = frame_for(a, 1, 1, 1);
  for (size_t i = 0; i < 9; i++)
    assert_int_equal(sl__sub_may_read(s[i], f), i == 1 || i == 3);
  for (size_t i = 0; i < 9; i++)
    assert_int_equal(sl__sub_wants(s[i], f), i == 1 || i == 3);
  expect_dispatch(b, f, (const size_t[]){1, 3}, 2);
  sl__frame_unref(f);

  /* A grant on any one of the update's topics is enough: subscriber 2 selects a, holds b. */
  static const char *const ab[] = {"https://example.com/a", "https://example.com/b"};
  f = frame_for(ab, 2, 2, 1);
  expect_dispatch(b, f, (const size_t[]){1, 2, 3}, 3);
  sl__frame_unref(f);

  /* Holding b but selecting only a does not deliver an update on b alone. */
  f = frame_for(grant_b, 1, 3, 1);
  expect_dispatch(b, f, (const size_t[]){3}, 1);
  sl__frame_unref(f);

  /* Public updates go to every selecting subscriber, token or not. */
  f = frame_for(a, 1, 4, 0);
  for (size_t i = 0; i < 9; i++)
    assert_true(sl__sub_may_read(s[i], f));
  expect_dispatch(b, f, (const size_t[]){0, 1, 2, 3, 4, 5, 6, 7, 8}, 9);
  sl__frame_unref(f);

  for (size_t i = 0; i < 9; i++)
    sl__broker_remove(b, s[i]); /* frees the claims: ASan reports a leak otherwise */
  expect_empty_index(b);
  free_broker(b);
}

/* Selectors are copied, by their given length. */
static void test_selectors_copied(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  char sel[] = "topic-xyz";
  sl_selector_t one;
  sl__selector_init(&one, sel, 7); /* "topic-x" */
  sl_sub_t *s = sl__sub_new(conn_of(0), &one, 1, NULL, 0);
  assert_non_null(s);
  assert_ptr_equal(s->conn, conn_of(0));
  assert_int_equal(s->node_count, 1);
  memset(sel, 'Q', sizeof sel - 1);
  assert_int_equal(sl__broker_add(b, s), 0);
  static const char *const tx[] = {"topic-x"};
  static const char *const txyz[] = {"topic-xyz"};
  sl_frame_t *f = frame_for(tx, 1, 1, 0);
  expect_dispatch(b, f, (const size_t[]){0}, 1);
  sl__frame_unref(f);
  f = frame_for(txyz, 1, 2, 0);
  expect_dispatch(b, f, NULL, 0);
  sl__frame_unref(f);
  sl__broker_remove(b, s);
  expect_empty_index(b);
  free_broker(b);
}

static void test_no_selectors(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  sl_sub_t *s = sub_new(0, NULL, 0, NULL, 0);
  assert_int_equal(sl__broker_add(b, s), 0);
  static const char *const t[] = {"t"};
  sl_frame_t *f = frame_for(t, 1, 1, 0);
  assert_false(sl__sub_wants(s, f));
  expect_dispatch(b, f, NULL, 0);
  sl__frame_unref(f);
  sl__broker_remove(b, s);
  expect_empty_index(b);
  free_broker(b);
}

#define PATTERN_BASE "https://hub.example.com/.well-known/mercure"

/* A subscription from compiled selectors: kinds[i] for texts[i]. */
static sl_sub_t *add_compiled(sl_broker_t *b, size_t i, const char *const *texts,
                              const sl_selector_kind_t *kinds, size_t n, sl_grants_t *g) {
  sl_selector_t sel[8];
  const char *why;
  assert_true(n <= 8);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(sl__selector_compile(&sel[k], kinds[k], texts[k], strlen(texts[k]),
                                          PATTERN_BASE, &why), 0);
  sl_sub_t *s = sl__sub_new(conn_of(i), sel, n, g, 0);
  assert_non_null(s);
  for (size_t k = 0; k < n; k++)
    assert_null(sel[k].matcher); /* the subscription took every reference */
  assert_int_equal(sl__broker_add(b, s), 0);
  return s;
}

/* URL patterns and URI templates are scanned on every update, each subscriber still reached
 * once; a relative pattern meets relative and absolute topics; a grant that is a URL pattern
 * opens exactly the private updates it covers; removing frees every matcher (ASan). */
static void test_patterns_and_templates(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const p0[] = {"https://example.com/books/:id"};
  static const char *const p1[] = {"https://example.com/books/{id}", "https://example.com/books/1"};
  static const char *const p2[] = {"/books/:id"};
  static const char *const p3[] = {"https://example.com/*", "https://example.com/books/:id"};
  static const sl_selector_kind_t up[] = {SL_SELECTOR_URLPATTERN};
  static const sl_selector_kind_t tpl_exact[] = {SL_SELECTOR_TEMPLATE, SL_SELECTOR_EXACT};
  static const sl_selector_kind_t two_up[] = {SL_SELECTOR_URLPATTERN, SL_SELECTOR_URLPATTERN};
  sl_sub_t *s[5];
  s[0] = add_compiled(b, 0, p0, up, 1, NULL);
  s[1] = add_compiled(b, 1, p1, tpl_exact, 2, NULL);
  s[2] = add_compiled(b, 2, p2, up, 1, NULL);
  s[3] = add_compiled(b, 3, p3, two_up, 2, NULL);
  /* subscriber 4: every topic, with a token granting the URL pattern books/:id */
  sl_selector_t *grant = malloc(sizeof *grant + 64);
  assert_non_null(grant);
  char *text = (char *)(grant + 1);
  strcpy(text, "https://example.com/books/:id");
  const char *why;
  assert_int_equal(sl__selector_compile(grant, SL_SELECTOR_URLPATTERN, text, strlen(text),
                                        PATTERN_BASE, &why), 0);
  sl_grants_t g = {grant, 1, 0, 1};
  static const char *const any[] = {"*"};
  static const sl_selector_kind_t exact[] = {SL_SELECTOR_EXACT};
  s[4] = add_compiled(b, 4, any, exact, 1, &g);

  /* the selectors as given, for whoever reports subscriptions */
  sl_selector_t listed[4];
  assert_int_equal(sl__sub_selectors(s[1], listed, 4), 2);
  assert_int_equal(listed[0].kind, SL_SELECTOR_TEMPLATE);
  assert_string_equal(listed[0].text, "https://example.com/books/{id}");
  assert_int_equal(listed[1].kind, SL_SELECTOR_EXACT);
  assert_string_equal(listed[1].text, "https://example.com/books/1");
  assert_int_equal(sl__sub_selectors(s[3], listed, 1), 2);
  assert_int_equal(listed[0].kind, SL_SELECTOR_URLPATTERN);
  assert_string_equal(listed[0].text, "https://example.com/*");

  static const char *const t1[] = {"https://example.com/books/1"};
  static const char *const t2[] = {"https://example.com/books/1/reviews"};
  static const char *const t3[] = {"/books/7"};
  static const char *const t4[] = {"https://hub.example.com/books/8", "https://example.com/books/9"};
  sl_frame_t *f = frame_for(t1, 1, 1, 0);
  expect_dispatch(b, f, (size_t[]){0, 1, 3, 4}, 4);
  sl__frame_unref(f);
  f = frame_for(t2, 1, 2, 0);
  expect_dispatch(b, f, (size_t[]){3, 4}, 2);
  sl__frame_unref(f);
  f = frame_for(t3, 1, 3, 0);
  expect_dispatch(b, f, (size_t[]){2, 4}, 2);
  sl__frame_unref(f);
  f = frame_for(t4, 2, 4, 0);
  expect_dispatch(b, f, (size_t[]){0, 1, 2, 3, 4}, 5);
  sl__frame_unref(f);
  /* private: only the subscriber whose token's URL pattern covers a topic */
  f = frame_for(t1, 1, 5, 1);
  expect_dispatch(b, f, (size_t[]){4}, 1);
  assert_true(sl__sub_wants(s[4], f));
  assert_false(sl__sub_wants(s[0], f));
  sl_sub_filter_t flt;
  assert_int_equal(sl__sub_filter_init(&flt, s[4]), 0);
  assert_true(sl__sub_filter_wants(&flt, f));
  sl__sub_filter_free(&flt);
  sl__frame_unref(f);
  f = frame_for(t2, 1, 6, 1);
  expect_dispatch(b, f, NULL, 0);
  sl__frame_unref(f);
  /* the replay's filter agrees for scanned selectors */
  f = frame_for(t3, 1, 7, 0);
  assert_int_equal(sl__sub_filter_init(&flt, s[2]), 0);
  assert_true(sl__sub_filter_wants(&flt, f));
  sl__sub_filter_free(&flt);
  assert_int_equal(sl__sub_filter_init(&flt, s[0]), 0);
  assert_false(sl__sub_filter_wants(&flt, f));
  sl__sub_filter_free(&flt);
  sl__frame_unref(f);
  for (size_t i = 0; i < 5; i++)
    sl__broker_remove(b, s[i]);
  expect_empty_index(b);
  free_broker(b);
}

/* Two subscriptions of one URL pattern and one of a template: one evaluation of each distinct
 * automaton per topic of an update, not one per subscriber; both subscribers still get it once,
 * and a subscriber holding the pattern twice (or the pattern and the topic) gets it once. */
static void test_one_evaluation_per_pattern(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const p[] = {"https://example.com/books/:id"};
  static const char *const p2[] = {"https://example.com/books/:id", "https://example.com/books/1"};
  static const char *const tp[] = {"https://example.com/books/{id}"};
  static const sl_selector_kind_t up[] = {SL_SELECTOR_URLPATTERN};
  static const sl_selector_kind_t up_exact[] = {SL_SELECTOR_URLPATTERN, SL_SELECTOR_EXACT};
  static const sl_selector_kind_t tpl[] = {SL_SELECTOR_TEMPLATE};
  sl_sub_t *s[5];
  s[0] = add_compiled(b, 0, p, up, 1, NULL);
  s[1] = add_compiled(b, 1, p, up, 1, NULL);
  s[2] = add_compiled(b, 2, p2, up_exact, 2, NULL);
  s[3] = add_compiled(b, 3, tp, tpl, 1, NULL);
  s[4] = add_compiled(b, 4, tp, tpl, 1, NULL);
  assert_int_equal(b->patterns.count, 2); /* one group per distinct kind and text */
  assert_int_equal(b->fixed.count, 0);    /* neither is fixed text */
  static const char *const t1[] = {"https://example.com/books/1"};
  sl_frame_t *f = frame_for(t1, 1, 1, 0);
  b->evaluations = 0;
  expect_dispatch(b, f, (size_t[]){0, 1, 2, 3, 4}, 5);
  assert_int_equal(b->evaluations, 2); /* 2 automata, 1 topic: not 5 */
  sl__frame_unref(f);
  /* Two topics: each group is evaluated until one topic matched it. */
  static const char *const t2[] = {"https://example.com/other", "https://example.com/books/2"};
  f = frame_for(t2, 2, 2, 0);
  b->evaluations = 0;
  expect_dispatch(b, f, (size_t[]){0, 1, 2, 3, 4}, 5);
  assert_int_equal(b->evaluations, 4);
  sl__frame_unref(f);
  /* The replay filter (per subscription) says the same. */
  sl_sub_filter_t flt;
  assert_int_equal(sl__sub_filter_init(&flt, s[1]), 0);
  f = frame_for(t2, 2, 3, 0);
  assert_true(sl__sub_filter_wants(&flt, f));
  sl__frame_unref(f);
  f = frame_for((const char *const[]){"https://example.com/x/1"}, 1, 4, 0);
  assert_false(sl__sub_filter_wants(&flt, f));
  expect_dispatch(b, f, NULL, 0);
  sl__frame_unref(f);
  sl__sub_filter_free(&flt);
  for (size_t i = 0; i < 5; i++)
    sl__broker_remove(b, s[i]);
  expect_empty_index(b);
  free_broker(b);
}

/* A subscription of a pattern the worker serves borrows the group's compiled matcher
 * (sl__broker_matcher: one more reference, no compilation); one compiled on its own gives its
 * matcher up when linked; the group keeps one reference for all its nodes and drops it with its
 * last node; a failed or unlinked subscription keeps its own. */
static void test_shared_matchers(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  const char *text = "https://example.com/books/:id";
  const char *why;
  sl_selector_t sel, other, mine;
  assert_int_equal(sl__broker_matcher(b, SL_SELECTOR_URLPATTERN, text, strlen(text), PATTERN_BASE,
                                      &sel), 0); /* none yet */
  assert_int_equal(sl__selector_compile(&sel, SL_SELECTOR_URLPATTERN, text, strlen(text),
                                        PATTERN_BASE, &why), 0);
  sl_sub_t *s0 = sl__sub_new(conn_of(0), &sel, 1, NULL, 0);
  assert_non_null(s0);
  assert_int_equal(sl__broker_add(b, s0), 0);
  sl_selector_t listed;
  sl__sub_selectors(s0, &listed, 1);
  sl_matcher_t *m = listed.matcher;
  assert_non_null(m);
  assert_int_equal(sl__selector_refs(&listed), 1); /* the group's */

  /* The second asks the broker first: the same matcher, one more reference. */
  assert_int_equal(sl__broker_matcher(b, SL_SELECTOR_URLPATTERN, text, strlen(text), PATTERN_BASE,
                                      &sel), 1);
  assert_ptr_equal(sel.matcher, m);
  assert_ptr_equal(sel.text, text);
  assert_int_equal(sel.kind, SL_SELECTOR_URLPATTERN);
  assert_int_equal(sl__selector_refs(&sel), 2);
  /* not for another kind, text or hub URL */
  assert_int_equal(sl__broker_matcher(b, SL_SELECTOR_TEMPLATE, text, strlen(text), PATTERN_BASE,
                                      &other), 0);
  assert_int_equal(sl__broker_matcher(b, SL_SELECTOR_URLPATTERN, text, strlen(text) - 1,
                                      PATTERN_BASE, &other), 0);
  assert_int_equal(sl__broker_matcher(b, SL_SELECTOR_URLPATTERN, text, strlen(text),
                                      "https://other.example/.well-known/mercure", &other), 0);
  sl_sub_t *s1 = sl__sub_new(conn_of(1), &sel, 1, NULL, 0);
  assert_non_null(s1);
  assert_int_equal(sl__broker_add(b, s1), 0);
  sl__sub_selectors(s1, &listed, 1);
  assert_ptr_equal(listed.matcher, m);
  assert_int_equal(sl__selector_refs(&listed), 1); /* the borrowed reference went back */

  /* The third compiled its own: linking drops it for the group's. */
  assert_int_equal(sl__selector_compile(&mine, SL_SELECTOR_URLPATTERN, text, strlen(text),
                                        PATTERN_BASE, &why), 0);
  assert_ptr_not_equal(mine.matcher, m);
  sl_sub_t *s2 = sl__sub_new(conn_of(2), &mine, 1, NULL, 0);
  assert_non_null(s2);
  sl__sub_selectors(s2, &listed, 1); /* before it is linked: its own */
  assert_ptr_not_equal(listed.matcher, m);
  assert_int_equal(sl__broker_add(b, s2), 0);
  sl__sub_selectors(s2, &listed, 1);
  assert_ptr_equal(listed.matcher, m);
  assert_int_equal(b->patterns.count, 1);

  static const char *const t1[] = {"https://example.com/books/1"};
  sl_frame_t *f = frame_for(t1, 1, 1, 0);
  expect_dispatch(b, f, (size_t[]){0, 1, 2}, 3);
  sl__frame_unref(f);
  /* The first subscriber goes: the group and its matcher stay for the others. */
  sl__broker_remove(b, s0);
  assert_int_equal(b->patterns.count, 1);
  sl__sub_selectors(s1, &listed, 1);
  assert_ptr_equal(listed.matcher, m);
  f = frame_for(t1, 1, 2, 0);
  expect_dispatch(b, f, (size_t[]){1, 2}, 2);
  sl__frame_unref(f);
  /* A borrowed matcher outlives the group when its holder keeps it (a claims block, say). */
  assert_int_equal(sl__broker_matcher(b, SL_SELECTOR_URLPATTERN, text, strlen(text), PATTERN_BASE,
                                      &sel), 1);
  sl__broker_remove(b, s1);
  sl__broker_remove(b, s2);
  expect_empty_index(b);
  assert_int_equal(b->patterns.count, 0);
  assert_int_equal(sl__selector_refs(&sel), 1);
  assert_true(sl__selector_matches(&sel, t1[0], strlen(t1[0])));
  sl__selector_release(&sel);
  free_broker(b);
}

/* URL patterns of fixed text are found by canonical URL, not evaluated: for every pair of the
 * patterns and topics below (canonicalisation traps: host case, default ports, empty paths,
 * percent-encodings, relative references, userinfo, search and hash, non-special schemes), the
 * broker delivers exactly when the pattern's automaton (sl__selector_matches) says it matches;
 * patterns with groups ride along as a control. */
static const char *const eq_patterns[] = {
    "https://example.com/books/1",
    "https://EXAMPLE.com/books/1",
    "https://example.com:443/books/1",
    "https://example.com:0443/books/1",
    "https://example.com:8443/books/1",
    "http://example.com:80/books/1",
    "http://example.com:443/books/1",
    "https://example.com",
    "https://example.com/",
    "https://example.com/books/%31",
    "https://example.com/books/%7Eme",
    "https://example.com/books/~me",
    "https://example.com/books/%7eme",
    "https://example.com/a%2Fb",
    "https://example.com/a%2fb",
    "https://example.com/a b",
    "https://example.com/a%20b",
    "https://example.com/caf\u00e9",
    "https://example.com/caf\xc3\xa9",
    "https://example.com/caf%C3%A9",
    "https://example.com/books/1?x=1",
    "https://example.com/books/1?x=1#frag",
    "https://example.com/books/1#frag",
    "https://user:pw@example.com/books/1",
    "https://user@example.com/books/1",
    "/books/1",
    "books/1",
    "/.well-known/mercure",
    "https://hub.example.com/books/1",
    "https://hub.example.com",
    "urn:example:1",
    "urn:EXAMPLE:1",
    "mailto:a@example.com",
    "https://example.com/a\\:b",
    "https://example.com/a\\{b\\}",
    "https://example.com/{books}/1",
    "https://example.com/./books/../books/1",
    "https://127.0.0.1:8080/x",
    "https://example.com./x",
    "wss://example.com:443/s",
    "ws://example.com:80/s",
    "file:///tmp/x",
    "*://example.com/books/1",
    "https://*/books/1",
    "https://example.com/books/:id",
    "https://example.com/books/*",
    "https://example.com/books/1{/:x}?",
    "https://example.com/books/(1|2)",
};

static const char *const eq_topics[] = {
    "https://example.com/books/1",
    "https://EXAMPLE.COM/books/1",
    "https://example.com:443/books/1",
    "https://example.com:8443/books/1",
    "http://example.com/books/1",
    "http://example.com:80/books/1",
    "http://example.com:443/books/1",
    "HTTPS://example.com/books/1",
    "https://example.com",
    "https://example.com/",
    "https://example.com/books/%31",
    "https://example.com/books/%7Eme",
    "https://example.com/books/%7eme",
    "https://example.com/books/~me",
    "https://example.com/a%2Fb",
    "https://example.com/a%2fb",
    "https://example.com/a/b",
    "https://example.com/a b",
    "https://example.com/a%20b",
    "https://example.com/caf\xc3\xa9",
    "https://example.com/caf%C3%A9",
    "https://example.com/caf%c3%a9",
    "https://example.com/books/1?x=1",
    "https://example.com/books/1?x=1#frag",
    "https://example.com/books/1#frag",
    "https://example.com/books/1?",
    "https://example.com/books/1#",
    "https://user:pw@example.com/books/1",
    "https://user@example.com/books/1",
    "https://example.com/books/1/",
    "https://example.com/books/2",
    "/books/1",
    "books/1",
    "/.well-known/mercure",
    "https://hub.example.com/books/1",
    "https://hub.example.com",
    "urn:example:1",
    "URN:example:1",
    "mailto:a@example.com",
    "https://example.com/a:b",
    "https://example.com/a%3Ab",
    "https://example.com/a{b}",
    "https://example.com/a%7Bb%7D",
    "https://example.com/books/../books/1",
    "https://[::1]/x",
    "https://127.0.0.1:8080/x",
    "https://example.com./x",
    "wss://example.com/s",
    "ws://example.com/s",
    "file:///tmp/x",
    "not a url at all",
    "",
    "https://exa mple.com/x",
    "https://example.com/books/1\x7f",
};

/* The C escapes above are written out as text to keep the arrays readable: \xHH and \uHHHH. */
static void unescape(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; in[i] && n + 4 < cap; i++) {
    if (in[i] == '\\' && in[i + 1] == 'x') {
      out[n++] = (char)strtol((char[]){in[i + 2], in[i + 3], 0}, NULL, 16);
      i += 3;
    } else if (in[i] == '\\' && in[i + 1] == 'u') {
      unsigned cp = (unsigned)strtol((char[]){in[i + 2], in[i + 3], in[i + 4], in[i + 5], 0},
                                     NULL, 16);
      out[n++] = (char)(0xc0 | (cp >> 6));
      out[n++] = (char)(0x80 | (cp & 0x3f));
      i += 5;
    } else if (in[i] == '\\' && in[i + 1] == '\\') {
      out[n++] = '\\';
      i += 1;
    } else {
      out[n++] = in[i];
    }
  }
  out[n] = '\0';
}

#define EQ_P (sizeof eq_patterns / sizeof eq_patterns[0])
#define EQ_T (sizeof eq_topics / sizeof eq_topics[0])

static void test_fixed_index_equals_automaton(void **state) {
  (void)state;
  static char ptext[EQ_P][128], ttext[EQ_T][128];
  sl_broker_t *b = new_broker();
  sl_sub_t *s[EQ_P];
  sl_selector_t auto_sel[EQ_P];
  size_t fixed = 0;
  for (size_t i = 0; i < EQ_P; i++) {
    unescape(eq_patterns[i], ptext[i], sizeof ptext[i]);
    const char *why;
    const char *one[] = {ptext[i]};
    static const sl_selector_kind_t up[] = {SL_SELECTOR_URLPATTERN};
    if (sl__selector_compile(&auto_sel[i], SL_SELECTOR_URLPATTERN, ptext[i], strlen(ptext[i]),
                             PATTERN_BASE, &why) != 0)
      fail_msg("pattern %s does not compile: %s", ptext[i], why);
    sl_fixed_url_t fx;
    fixed += sl__selector_fixed_url(&auto_sel[i], &fx);
    s[i] = add_compiled(b, i, one, up, 1, NULL);
  }
  /* Most are fixed text (so the index, not the automaton, answers for them). */
  assert_true(fixed >= EQ_P - 8);
  assert_true(b->fixed.count >= fixed - 16); /* some texts name one URL: still one group each */
  size_t pairs = 0, matches = 0;
  for (size_t t = 0; t < EQ_T; t++) {
    unescape(eq_topics[t], ttext[t], sizeof ttext[t]);
    const char *topics[] = {ttext[t]};
    static deliveries_t d;
    memset(&d, 0, sizeof d);
    sl_frame_t *f = frame_for(topics, 1, t + 1, 0);
    d.frame = f;
    sl__broker_dispatch(b, f, on_deliver, &d);
    for (size_t i = 0; i < EQ_P; i++) {
      int want = sl__selector_matches(&auto_sel[i], ttext[t], strlen(ttext[t]));
      if ((int)d.count[i] != want)
        fail_msg("pattern %s, topic %s: the automaton says %d, the broker delivered %u times",
                 ptext[i], ttext[t], want, d.count[i]);
      pairs++;
      matches += (size_t)want;
    }
    sl__frame_unref(f);
  }
  assert_int_equal(pairs, EQ_P * EQ_T);
  assert_true(matches > EQ_T); /* the pairs do not all disagree trivially */
  for (size_t i = 0; i < EQ_P; i++) {
    sl__broker_remove(b, s[i]);
    sl__selector_release(&auto_sel[i]);
  }
  expect_empty_index(b);
  assert_int_equal(b->fixed.count, 0);
  assert_int_equal(b->wild_n, 0);
  free_broker(b);
}

/* The broker's answers against the URL Pattern standard's, on test_urlpattern.c's vectors (fixed
 * text, escapes, canonicalisation, and a few with groups as a control): the index must answer
 * what the standard says, not merely what the matcher says. */
static void test_fixed_index_vectors(void **state) {
  (void)state;
  static const struct {
    const char *pattern, *topic;
    int want;
  } v[] = {
      {"https://example.com/a\\*b", "https://example.com/a*b", 1},
      {"https://example.com/a\\*b", "https://example.com/axxb", 0},
      {"https://example.com/\\:id", "https://example.com/:id", 1},
      {"https://example.com/\\:id", "https://example.com/42", 0},
      {"https://example.com/a\\+", "https://example.com/a+", 1},
      {"https://example.com/a\\+", "https://example.com/aa", 0},
      {"https://example.com/x?q=:v", "https://example.com/x?q=1", 1},
      {"https://example.com/x?q=:v", "https://example.com/x", 0},
      {"https://example.com/x", "http://example.com/x", 0},
      {"https://example.com/x", "https://example.com/x?q=1#h", 1},
      {"https://example.com:8443/x", "https://example.com:8443/x", 1},
      {"https://example.com:8443/x", "https://example.com/x", 0},
      {"https://example.com:*/x", "https://example.com:9/x", 1},
      {"https://user\\:pass@example.com/x", "https://user:pass@example.com/x", 1},
      {"https://user\\:pass@example.com/x", "https://other:pass@example.com/x", 0},
      {"https://user\\:pass@example.com/x", "https://user:other@example.com/x", 0},
      {"https://example.com/Books/1", "https://example.com/books/1", 0},
      {"https://example.com/x", "https://EXAMPLE.com/x", 1},
      {"https://Example.COM/x", "https://example.com/x", 1},
      {"https://example.com/x", "https://example.com:443/x", 1},
      {"https://example.com:443/x", "https://example.com/x", 1},
      {"http://example.com:80/x", "http://example.com/x", 1},
      {"https://example.com/x", "https://example.com:80/x", 0},
      {"https://example.com/", "https://example.com", 1},
      {"https://example.com/a/c", "https://example.com/a/b/../c", 1},
      {"https://example.com/caf\xc3\xa9", "https://example.com/caf%c3%a9", 1},
      {"https://example.com/mercure", "https://example.com/%6Dercure", 1},
      {"https://example.com/a b", "https://example.com/a%20b", 1},
      {"books/1", "https://hub.example.com/.well-known/books/1", 1},
      {"books/1", "https://hub.example.com/books/1", 0},
      {"/books/1", "/books/1", 1},
      {"/books/1", "https://u:p@hub.example.com/books/1", 1},
      {"/books/1", "https://hub.example.com/books/1?x", 1},
      {"foo://bar/1", "foo://bar/1", 1},
      {"foo://bar/1", "foo://BAR/1", 1},
      {"https://example.com/books/:id", "https://example.com/books/1", 1},
      {"https://example.com/books/:id", "https://example.com/books/1/2", 0},
  };
  size_t n = sizeof v / sizeof v[0];
  for (size_t i = 0; i < n; i++) {
    sl_broker_t *b = new_broker();
    const char *one[] = {v[i].pattern};
    static const sl_selector_kind_t up[] = {SL_SELECTOR_URLPATTERN};
    sl_sub_t *s = add_compiled(b, 0, one, up, 1, NULL);
    const char *topics[] = {v[i].topic};
    static deliveries_t d;
    memset(&d, 0, sizeof d);
    sl_frame_t *f = frame_for(topics, 1, 1, 0);
    d.frame = f;
    b->evaluations = 0;
    sl__broker_dispatch(b, f, on_deliver, &d);
    if ((int)d.count[0] != v[i].want)
      fail_msg("pattern %s, topic %s: the standard says %d, the broker delivered %u times",
               v[i].pattern, v[i].topic, v[i].want, d.count[0]);
    /* fixed ones came from the index, not an automaton */
    if (strchr(v[i].pattern, '*') == NULL || strstr(v[i].pattern, "\\*"))
      if (strstr(v[i].pattern, ":id") == NULL && strstr(v[i].pattern, ":v") == NULL)
        assert_int_equal(b->evaluations, 0);
    sl__frame_unref(f);
    sl__broker_remove(b, s);
    expect_empty_index(b);
    free_broker(b);
  }
}

/* A fixed pattern costs one lookup per topic and wildcard mask, and no evaluation; the same
 * canonical URL written two ways is two groups found by one lookup. */
static void test_fixed_patterns_are_looked_up(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const p0[] = {"https://example.com/books/1"};
  static const char *const p1[] = {"https://EXAMPLE.com:443/books/%31"};
  static const char *const p2[] = {"/books/1"};
  static const sl_selector_kind_t up[] = {SL_SELECTOR_URLPATTERN};
  sl_sub_t *s[3];
  s[0] = add_compiled(b, 0, p0, up, 1, NULL);
  s[1] = add_compiled(b, 1, p1, up, 1, NULL);
  s[2] = add_compiled(b, 2, p2, up, 1, NULL);
  assert_int_equal(b->patterns.count, 3);
  assert_int_equal(b->fixed.count, 3);
  assert_null(b->scanned);
  assert_int_equal(b->wild_n, 1); /* username, password, search and hash are "*" in all three */
  static const char *const t[] = {"https://example.com/books/1?page=2",
                                  "https://hub.example.com/books/1"};
  sl_frame_t *f = frame_for(t, 2, 1, 0);
  b->evaluations = 0;
  b->lookups = 0;
  expect_dispatch(b, f, (size_t[]){0, 1, 2}, 3);
  assert_int_equal(b->evaluations, 0);
  assert_int_equal(b->lookups, 2);
  sl__frame_unref(f);
  for (size_t i = 0; i < 3; i++)
    sl__broker_remove(b, s[i]);
  expect_empty_index(b);
  free_broker(b);
}

static void test_remove(void **state) {
  (void)state;
  sl_broker_t *b = new_broker();
  static const char *const t[] = {"t"};
  static const char *const tu[] = {"t", "u", "*"};
  sl_sub_t *s0 = add_sub(b, 0, t, 1);
  sl_sub_t *s1 = add_sub(b, 1, tu, 3);
  sl_sub_t *s2 = add_sub(b, 2, t, 1);
  assert_int_equal(b->bucket_count, 2);

  /* Removing from the middle of a bucket's list keeps the others linked. */
  sl__broker_remove(b, s1);
  assert_int_equal(b->bucket_count, 1); /* "u" had only s1 */
  assert_null(b->scanned);
  static const char *const u[] = {"u"};
  sl_frame_t *f = frame_for(u, 1, 1, 0);
  expect_dispatch(b, f, NULL, 0);
  sl__frame_unref(f);
  f = frame_for(t, 1, 2, 0);
  expect_dispatch(b, f, (const size_t[]){0, 2}, 2);
  sl__frame_unref(f);

  /* The head of the list, then the last one. */
  sl__broker_remove(b, s2);
  assert_int_equal(b->bucket_count, 1);
  f = frame_for(t, 1, 3, 0);
  expect_dispatch(b, f, (const size_t[]){0}, 1);
  sl__frame_unref(f);
  sl__broker_remove(b, s0);
  expect_empty_index(b);
  f = frame_for(t, 1, 4, 0);
  expect_dispatch(b, f, NULL, 0);
  sl__frame_unref(f);

  /* The topic can be subscribed again after its bucket was freed. */
  s0 = add_sub(b, 0, t, 1);
  f = frame_for(t, 1, 5, 0);
  expect_dispatch(b, f, (const size_t[]){0}, 1);
  sl__frame_unref(f);
  sl__broker_remove(b, s0);
  expect_empty_index(b);
  free_broker(b);
}

/* More topics than the first table has slots: the table grows and every topic still routes. */
static void test_index_grows(void **state) {
  (void)state;
  enum { N = 1000 };
  sl_broker_t *b = new_broker();
  size_t first_slots = b->slot_mask + 1;
  static char names[N][32];
  sl_sub_t *s[N];
  for (size_t i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "https://example.com/t/%zu", i);
    const char *sel[] = {names[i]};
    s[i] = add_sub(b, i, sel, 1);
  }
  assert_int_equal(b->bucket_count, N);
  assert_true(b->slot_mask + 1 > first_slots);
  for (size_t i = 0; i < N; i++) {
    const char *topic[] = {names[i]};
    sl_frame_t *f = frame_for(topic, 1, i + 1, 0);
    expect_dispatch(b, f, (const size_t[]){i}, 1);
    sl__frame_unref(f);
  }
  for (size_t i = 0; i < N; i += 2)
    sl__broker_remove(b, s[i]);
  assert_int_equal(b->bucket_count, N / 2);
  for (size_t i = 0; i < N; i++) {
    const char *topic[] = {names[i]};
    sl_frame_t *f = frame_for(topic, 1, N + i + 1, 0);
    if (i % 2)
      expect_dispatch(b, f, (const size_t[]){i}, 1);
    else
      expect_dispatch(b, f, NULL, 0);
    sl__frame_unref(f);
  }
  for (size_t i = 1; i < N; i += 2)
    sl__broker_remove(b, s[i]);
  expect_empty_index(b);
  free_broker(b);
}

/* The model of one subscriber: its selectors and grants as topic numbers (-1 = "*"). */
typedef struct model_sub_s {
  sl_sub_t *sub;     /* NULL when not subscribed */
  int sel[5];
  size_t nsel;
  int grant[3];
  size_t ngrant;
  int has_token;
} model_sub_t;

enum { TOPICS = 300, SUBS = 3000, ROUNDS = 1500 };
static char topic_names[TOPICS][40];

static int model_selects(const model_sub_t *m, const int *topics, size_t n) {
  for (size_t i = 0; i < m->nsel; i++)
    for (size_t t = 0; t < n; t++)
      if (m->sel[i] < 0 || m->sel[i] == topics[t])
        return 1;
  return 0;
}

static int model_may_read(const model_sub_t *m, const int *topics, size_t n, int is_private) {
  if (!is_private)
    return 1;
  if (!m->has_token)
    return 0;
  for (size_t i = 0; i < m->ngrant; i++)
    for (size_t t = 0; t < n; t++)
      if (m->grant[i] < 0 || m->grant[i] == topics[t])
        return 1;
  return 0;
}

static int random_topic(void) {
  /* Skewed: low topic numbers are hot, like real traffic. */
  int r = rand() % TOPICS;
  return rand() % 2 ? r % 20 : r;
}

static void model_subscribe(sl_broker_t *b, model_sub_t *m, size_t i) {
  m->nsel = 1 + (size_t)rand() % 5;
  const char *sels[5];
  for (size_t k = 0; k < m->nsel; k++) {
    m->sel[k] = rand() % 40 == 0 ? -1 : random_topic();
    sels[k] = m->sel[k] < 0 ? "*" : topic_names[m->sel[k]];
  }
  m->has_token = rand() % 2;
  m->ngrant = m->has_token ? (size_t)rand() % 4 : 0;
  const char *grants[3];
  for (size_t k = 0; k < m->ngrant; k++) {
    m->grant[k] = rand() % 30 == 0 ? -1 : random_topic();
    grants[k] = m->grant[k] < 0 ? "*" : topic_names[m->grant[k]];
  }
  sl_claims_t c = claims_for(grants, m->ngrant);
  m->sub = sub_new(i, sels, m->nsel, &c, m->has_token);
  assert_int_equal(sl__broker_add(b, m->sub), 0);
}

static void test_many_subscribers_against_model(void **state) {
  (void)state;
  static model_sub_t model[SUBS];
  static deliveries_t d;
  memset(model, 0, sizeof model);
  srand(7);
  for (size_t t = 0; t < TOPICS; t++)
    snprintf(topic_names[t], sizeof topic_names[t], "https://example.com/topic/%zu", t);
  sl_broker_t *b = new_broker();
  for (size_t i = 0; i < SUBS; i++)
    model_subscribe(b, &model[i], i);

  uint64_t seq = 0;
  size_t delivered = 0, privately = 0;
  for (size_t round = 0; round < ROUNDS; round++) {
    /* Some subscribers leave, some arrive. */
    for (int k = 0; k < 20; k++) {
      size_t i = (size_t)rand() % SUBS;
      if (model[i].sub) {
        sl__broker_remove(b, model[i].sub);
        model[i].sub = NULL;
      } else {
        model_subscribe(b, &model[i], i);
      }
    }
    int topics[3];
    const char *names[3];
    size_t n = 1 + (size_t)rand() % 3;
    for (size_t t = 0; t < n; t++) {
      topics[t] = random_topic();
      names[t] = topic_names[topics[t]];
    }
    int is_private = rand() % 3 == 0;
    sl_frame_t *f = frame_for(names, n, ++seq, is_private);

    for (size_t i = 0; i < SUBS; i++) {
      if (!model[i].sub)
        continue;
      int want = model_selects(&model[i], topics, n) &&
                 model_may_read(&model[i], topics, n, is_private);
      if (sl__sub_wants(model[i].sub, f) != want)
        fail_msg("round %zu: sl__sub_wants(subscriber %zu) = %d, expected %d", round, i, !want,
                 want);
      /* The replay's filter says the same, in one lookup per topic. */
      sl_sub_filter_t flt;
      assert_int_equal(sl__sub_filter_init(&flt, model[i].sub), 0);
      if (sl__sub_filter_wants(&flt, f) != want)
        fail_msg("round %zu: sl__sub_filter_wants(subscriber %zu) = %d, expected %d", round, i,
                 !want, want);
      assert_true(flt.checks <= n + (size_t)model[i].sub->node_count * n);
      sl__sub_filter_free(&flt);
    }
    memset(&d, 0, sizeof d);
    d.frame = f;
    sl__broker_dispatch(b, f, on_deliver, &d);
    for (size_t i = 0; i < SUBS; i++) {
      unsigned want = model[i].sub && model_selects(&model[i], topics, n) &&
                      model_may_read(&model[i], topics, n, is_private);
      if (d.count[i] != want)
        fail_msg("round %zu (seq %llu, %s, %zu topics): subscriber %zu got it %u times, "
                 "expected %u", round, (unsigned long long)seq,
                 is_private ? "private" : "public", n, i, d.count[i], want);
    }
    delivered += d.total;
    privately += is_private ? d.total : 0;
    sl__frame_unref(f);
  }
  /* The workload must have exercised what it claims to. */
  assert_true(delivered > ROUNDS * 10);
  assert_true(privately > 0);

  for (size_t i = 0; i < SUBS; i++)
    if (model[i].sub)
      sl__broker_remove(b, model[i].sub);
  expect_empty_index(b);
  free_broker(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_exact_and_wildcard_selectors),
    cmocka_unit_test(test_alternate_topics),
    cmocka_unit_test(test_each_subscriber_once),
    cmocka_unit_test(test_last_seq_dedupe),
    cmocka_unit_test(test_private_updates),
    cmocka_unit_test(test_selectors_copied),
    cmocka_unit_test(test_no_selectors),
    cmocka_unit_test(test_patterns_and_templates),
    cmocka_unit_test(test_one_evaluation_per_pattern),
    cmocka_unit_test(test_shared_matchers),
    cmocka_unit_test(test_fixed_index_equals_automaton),
    cmocka_unit_test(test_fixed_index_vectors),
    cmocka_unit_test(test_fixed_patterns_are_looked_up),
    cmocka_unit_test(test_remove),
    cmocka_unit_test(test_index_grows),
    cmocka_unit_test(test_many_subscribers_against_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
