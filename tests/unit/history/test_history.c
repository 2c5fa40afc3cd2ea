/* test_history.c — history.c, the in-memory ring behind resume: replay after an id up to a seq,
 * the found flag, "earliest" and unknown ids, eviction when full, duplicate ids resolving to the
 * earliest retained occurrence, capacity 0 and 1, and heavy churn with colliding ids checked step
 * by step against a plain reference model. Frame reference counts show what the ring keeps: a
 * retained frame has the ring's reference plus the test's, an evicted one only the test's; ASan
 * reports anything destroy() leaves behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "history/history.h"

static const char *const topic[] = {"https://example.com/t"};

/* A frame for update id with sequence number seq; the caller holds its one reference. */
static sl_frame_t *make_frame(const char *id, uint64_t seq) {
  sl_update_t u = {0};
  u.topics = topic;
  u.topic_count = 1;
  u.data = id;
  u.data_len = strlen(id);
  sl_frame_t *f = sl_frame_update(&u, id, strlen(id));
  assert_non_null(f);
  f->seq = seq;
  return f;
}

/* Appends and drops the test's reference: the ring then owns the frame. */
static void append_owned(sl_history_t *h, const char *id, uint64_t seq) {
  sl_frame_t *f = make_frame(id, seq);
  assert_int_equal(h->ops->append(h, f), 0);
  sl_frame_unref(f);
}

typedef struct visits_s {
  uint64_t seq[4096];
  size_t n;
} visits_t;

static void record(sl_frame_t *f, void *arg) {
  visits_t *v = arg;
  assert_true(v->n < sizeof v->seq / sizeof v->seq[0]);
  /* The frame must be alive and intact while it is visited. */
  assert_true(atomic_load(&f->refs) >= 1);
  assert_int_equal(strlen(f->id), f->id_len);
  v->seq[v->n++] = f->seq;
}

/* Replays and checks found and the visited seqs (first..last, contiguous; last < first = none). */
static void expect_replay(sl_history_t *h, const char *after, uint64_t upto, int found,
                          uint64_t first, uint64_t last) {
  visits_t v = {.n = 0};
  int got_found = -1;
  assert_int_equal(h->ops->replay(h, after, upto, record, &v, &got_found), 0);
  assert_int_equal(got_found, found);
  size_t want = last >= first ? (size_t)(last - first + 1) : 0;
  assert_int_equal(v.n, want);
  for (size_t i = 0; i < v.n; i++)
    assert_int_equal(v.seq[i], first + i);
}

static sl_history_t *new_history(size_t capacity) {
  sl_history_t *h = NULL;
  assert_int_equal(sl_history_memory_new(&h, capacity), 0);
  assert_non_null(h);
  assert_non_null(h->ops);
  return h;
}

static void test_empty(void **state) {
  (void)state;
  sl_history_t *h = new_history(8);
  expect_replay(h, NULL, UINT64_MAX, 0, 1, 0);
  expect_replay(h, "earliest", UINT64_MAX, 0, 1, 0);
  expect_replay(h, "a", UINT64_MAX, 0, 1, 0);
  h->ops->destroy(h);
}

static void test_replay_all_and_after_id(void **state) {
  (void)state;
  sl_history_t *h = new_history(10);
  const char *ids[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++)
    append_owned(h, ids[i], (uint64_t)i + 1);

  expect_replay(h, NULL, UINT64_MAX, 0, 1, 5);
  expect_replay(h, "earliest", UINT64_MAX, 0, 1, 5);
  expect_replay(h, "a", UINT64_MAX, 1, 2, 5);
  expect_replay(h, "c", UINT64_MAX, 1, 4, 5);
  /* The newest id: found, nothing after it. */
  expect_replay(h, "e", UINT64_MAX, 1, 1, 0);
  /* An id nobody published: not found, the cursor is "earliest". */
  expect_replay(h, "zzz", UINT64_MAX, 0, 1, 5);
  expect_replay(h, "", UINT64_MAX, 0, 1, 5);
  /* Ids compare as whole strings. */
  expect_replay(h, "aa", UINT64_MAX, 0, 1, 5);
  expect_replay(h, "Earliest", UINT64_MAX, 0, 1, 5);
  h->ops->destroy(h);
}

static void test_upto(void **state) {
  (void)state;
  sl_history_t *h = new_history(10);
  const char *ids[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++)
    append_owned(h, ids[i], (uint64_t)i + 1);

  expect_replay(h, NULL, 3, 0, 1, 3);
  expect_replay(h, "a", 3, 1, 2, 3);
  expect_replay(h, "a", 2, 1, 2, 2);
  /* upto at or before the cursor: found, nothing to send. */
  expect_replay(h, "c", 3, 1, 1, 0);
  expect_replay(h, "c", 1, 1, 1, 0);
  expect_replay(h, NULL, 0, 0, 1, 0);
  expect_replay(h, "zzz", 4, 0, 1, 4);
  /* upto past the newest is the newest. */
  expect_replay(h, "b", 1000, 1, 3, 5);
  h->ops->destroy(h);
}

static void test_eviction(void **state) {
  (void)state;
  sl_history_t *h = new_history(3);
  const char *ids[] = {"a", "b", "c", "d", "e"};
  sl_frame_t *f[5];
  for (int i = 0; i < 5; i++) {
    f[i] = make_frame(ids[i], (uint64_t)i + 1);
    assert_int_equal(h->ops->append(h, f[i]), 0);
    assert_int_equal(atomic_load(&f[i]->refs), 2);
  }
  /* a and b were evicted: the ring dropped its reference to them, and only to them. */
  assert_int_equal(atomic_load(&f[0]->refs), 1);
  assert_int_equal(atomic_load(&f[1]->refs), 1);
  for (int i = 2; i < 5; i++)
    assert_int_equal(atomic_load(&f[i]->refs), 2);

  expect_replay(h, NULL, UINT64_MAX, 0, 3, 5);
  /* An evicted id is unknown: replay starts at the oldest retained. */
  expect_replay(h, "a", UINT64_MAX, 0, 3, 5);
  expect_replay(h, "b", UINT64_MAX, 0, 3, 5);
  expect_replay(h, "c", UINT64_MAX, 1, 4, 5);
  expect_replay(h, "d", UINT64_MAX, 1, 5, 5);
  expect_replay(h, "b", 4, 0, 3, 4);
  /* upto below the oldest retained visits nothing. */
  expect_replay(h, NULL, 2, 0, 1, 0);

  h->ops->destroy(h);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(atomic_load(&f[i]->refs), 1);
    sl_frame_unref(f[i]);
  }
}

static void test_duplicate_ids_resolve_to_earliest(void **state) {
  (void)state;
  sl_history_t *h = new_history(10);
  const char *ids[] = {"a", "b", "a", "c", "a", "b"};
  for (int i = 0; i < 6; i++)
    append_owned(h, ids[i], (uint64_t)i + 1);
  expect_replay(h, "a", UINT64_MAX, 1, 2, 6);
  expect_replay(h, "b", UINT64_MAX, 1, 3, 6);
  expect_replay(h, "c", UINT64_MAX, 1, 5, 6);
  h->ops->destroy(h);
}

static void test_capacity_zero_keeps_nothing(void **state) {
  (void)state;
  sl_history_t *h = new_history(0);
  sl_frame_t *f = make_frame("a", 1);
  assert_int_equal(h->ops->append(h, f), 0);
  /* Not kept: no reference taken. */
  assert_int_equal(atomic_load(&f->refs), 1);
  expect_replay(h, NULL, UINT64_MAX, 0, 1, 0);
  expect_replay(h, "a", UINT64_MAX, 0, 1, 0);
  for (uint64_t s = 2; s < 100; s++)
    append_owned(h, "b", s);
  expect_replay(h, "earliest", UINT64_MAX, 0, 1, 0);
  h->ops->destroy(h);
  sl_frame_unref(f);
}

static void test_capacity_one(void **state) {
  (void)state;
  sl_history_t *h = new_history(1);
  char id[16];
  for (uint64_t s = 1; s <= 50; s++) {
    snprintf(id, sizeof id, "id%llu", (unsigned long long)s);
    append_owned(h, id, s);
    expect_replay(h, NULL, UINT64_MAX, 0, s, s);
    expect_replay(h, id, UINT64_MAX, 1, 1, 0);
    if (s > 1) {
      snprintf(id, sizeof id, "id%llu", (unsigned long long)(s - 1));
      expect_replay(h, id, UINT64_MAX, 0, s, s);
    }
  }
  /* The same id over and over: always the one retained frame. */
  for (uint64_t s = 51; s <= 60; s++) {
    append_owned(h, "same", s);
    expect_replay(h, "same", UINT64_MAX, 1, 1, 0);
  }
  h->ops->destroy(h);
}

/* Sequence numbers need not start at 1; the ring must not assume they do. */
static void test_large_sequence_numbers(void **state) {
  (void)state;
  const uint64_t base = 1000000000007ULL;
  sl_history_t *h = new_history(7);
  char id[32];
  for (uint64_t i = 0; i < 20; i++) {
    snprintf(id, sizeof id, "n%llu", (unsigned long long)i);
    append_owned(h, id, base + i);
  }
  expect_replay(h, NULL, UINT64_MAX, 0, base + 13, base + 19);
  expect_replay(h, "n15", UINT64_MAX, 1, base + 16, base + 19);
  expect_replay(h, "n12", UINT64_MAX, 0, base + 13, base + 19);
  expect_replay(h, "n13", base + 17, 1, base + 14, base + 17);
  h->ops->destroy(h);
}

static void test_destroy_releases_every_frame(void **state) {
  (void)state;
  enum { CAP = 64, N = 200 };
  sl_history_t *h = new_history(CAP);
  sl_frame_t *f[N];
  char id[16];
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "k%d", i % 37);
    f[i] = make_frame(id, (uint64_t)i + 1);
    assert_int_equal(h->ops->append(h, f[i]), 0);
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&f[i]->refs), i >= N - CAP ? 2 : 1);
  h->ops->destroy(h);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&f[i]->refs), 1);
    sl_frame_unref(f[i]);
  }
}

/* Reference model: every id ever appended, by seq; the last `capacity` are retained. */
typedef struct model_s {
  char (*ids)[16];
  uint64_t count; /* seqs 1..count were appended */
  size_t capacity;
} model_t;

static uint64_t model_first(const model_t *m) {
  return m->count > m->capacity ? m->count - m->capacity + 1 : 1;
}

/* The replay the protocol asks for: after the earliest retained occurrence of after, if any. */
static void model_replay(const model_t *m, const char *after, uint64_t upto, int *found,
                         uint64_t *first, uint64_t *last) {
  uint64_t lo = model_first(m);
  *found = 0;
  *first = lo;
  if (m->capacity == 0 || m->count == 0) {
    *last = 0;
    *first = 1;
    return;
  }
  if (after != NULL && strcmp(after, "earliest") != 0) {
    for (uint64_t s = lo; s <= m->count; s++) {
      if (strcmp(m->ids[s], after) == 0) {
        *found = 1;
        *first = s + 1;
        break;
      }
    }
  }
  *last = upto < m->count ? upto : m->count;
}

typedef struct churn_visit_s {
  const model_t *model;
  uint64_t next;     /* seq the next visit should have */
  size_t n;
  int out_of_order;  /* a visit was not the next seq, or not the frame appended with it */
} churn_visit_t;

static void churn_record(sl_frame_t *f, void *arg) {
  churn_visit_t *v = arg;
  if (f->seq != v->next || f->seq > v->model->count || strcmp(f->id, v->model->ids[f->seq]) != 0)
    v->out_of_order = 1;
  v->next++;
  v->n++;
}

static void churn(size_t capacity, uint64_t appends, unsigned pool, unsigned seed) {
  model_t m = {calloc(appends + 1, sizeof *m.ids), 0, capacity};
  assert_non_null(m.ids);
  sl_history_t *h = new_history(capacity);
  srand(seed);
  char after[16];
  for (uint64_t s = 1; s <= appends; s++) {
    /* Mostly ids from a pool a little larger than the ring (frequent collisions), some unique. */
    if (rand() % 8 == 0)
      snprintf(m.ids[s], sizeof m.ids[s], "u%llu", (unsigned long long)s);
    else
      snprintf(m.ids[s], sizeof m.ids[s], "p%u", (unsigned)rand() % pool);
    append_owned(h, m.ids[s], s);
    m.count = s;
    if (s % 7 != 0 && s > 64)
      continue;

    const char *cursor = after;
    int pick = rand() % 10;
    if (pick == 0)
      cursor = NULL;
    else if (pick == 1)
      cursor = "earliest";
    else if (pick == 2)
      snprintf(after, sizeof after, "x%d", rand()); /* never published */
    else if (pick < 6)
      snprintf(after, sizeof after, "%s", m.ids[s - (uint64_t)rand() % (s < 2000 ? s : 2000)]);
    else
      snprintf(after, sizeof after, "p%u", (unsigned)rand() % pool);
    uint64_t upto = rand() % 4 == 0 ? s - (uint64_t)rand() % (capacity + 2) : UINT64_MAX;
    if (upto > s && upto != UINT64_MAX)
      upto = 0; /* wrapped below zero */

    int want_found = 0;
    uint64_t first = 0, last = 0;
    model_replay(&m, cursor, upto, &want_found, &first, &last);
    churn_visit_t v = {&m, first, 0, 0};
    int found = -1;
    assert_int_equal(h->ops->replay(h, cursor, upto, churn_record, &v, &found), 0);
    if (found != want_found || v.out_of_order || v.n != (last >= first ? last - first + 1 : 0))
      fail_msg("after %llu appends (capacity %zu): replay after \"%s\" upto %llu: found %d, "
               "%zu frames%s; expected found %d, seqs %llu..%llu",
               (unsigned long long)s, capacity, cursor ? cursor : "(null)",
               (unsigned long long)upto, found, v.n, v.out_of_order ? " (not in order)" : "", want_found, (unsigned long long)first,
               (unsigned long long)last);
  }
  h->ops->destroy(h);
  free(m.ids);
}

static void test_churn_against_model(void **state) {
  (void)state;
  churn(1000, 100000, 1500, 1);
  churn(1000, 100000, 200, 2);   /* far more duplicates than distinct ids */
  churn(3, 20000, 5, 3);
  churn(1, 5000, 3, 4);
  churn(0, 1000, 10, 5);
}

/* Several updates share an id and the earliest is evicted: the id must still resolve, to the
 * earliest occurrence that is still retained. */
static void test_duplicate_id_survives_eviction_of_earliest(void **state) {
  (void)state;
  sl_history_t *h = new_history(3);
  append_owned(h, "A", 1);
  append_owned(h, "B", 2);
  append_owned(h, "A", 3);
  append_owned(h, "C", 4); /* evicts A@1; A@3 is retained */
  expect_replay(h, "A", UINT64_MAX, 1, 4, 4);
  append_owned(h, "A", 5); /* evicts B@2; retained A@3, C@4, A@5 */
  expect_replay(h, "A", UINT64_MAX, 1, 4, 5);
  expect_replay(h, "B", UINT64_MAX, 0, 3, 5);
  h->ops->destroy(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_replay_all_and_after_id),
    cmocka_unit_test(test_upto),
    cmocka_unit_test(test_eviction),
    cmocka_unit_test(test_duplicate_ids_resolve_to_earliest),
    cmocka_unit_test(test_capacity_zero_keeps_nothing),
    cmocka_unit_test(test_capacity_one),
    cmocka_unit_test(test_large_sequence_numbers),
    cmocka_unit_test(test_destroy_releases_every_frame),
    cmocka_unit_test(test_duplicate_id_survives_eviction_of_earliest),
    cmocka_unit_test(test_churn_against_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
