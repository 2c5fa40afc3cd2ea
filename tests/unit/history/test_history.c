/* test_history.c — memory.c, the in-memory ring behind resume, through the history interface:
 * appends numbered 1, 2, 3... and completed exactly once before append returns (a seq passed in
 * is only a hint), last_seq, cursors after an id up to a seq, the found flag, "earliest" and
 * unknown ids, paging (any page size reads the same frames as one big page, and the cursor's
 * position follows), -ESPIPE when the ring overwrote what a cursor had yet to read, eviction when
 * full, duplicate ids resolving to the earliest retained occurrence, capacity 0 and 1, heavy churn
 * with colliding ids checked step by step against a plain reference model, hub updates
 * (SL_FRAME_HUB) in a ring of their own merged with the application's by seq, and one thread
 * appending while another pages cursors (run it under ThreadSanitizer too). Frame reference
 * counts show what the ring keeps: a retained frame has the ring's reference plus the test's, an
 * evicted one only the test's; ASan reports anything destroy() leaves behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <stdatomic.h>
#include <uv.h>

#include "history/history.h"

static const char *const topic[] = {"https://example.com/t"};

/* A frame for update id; the caller holds its one reference. NULL when out of memory (no cmocka
 * assertion: the threaded test calls it off the main thread). */
static sl_frame_t *new_frame(const char *id) {
  sl_update_t u = {0};
  u.topics = topic;
  u.topic_count = 1;
  u.data = id;
  u.data_len = strlen(id);
  return sl__frame_update(&u, id, strlen(id));
}

static sl_frame_t *make_frame(const char *id) {
  sl_frame_t *f = new_frame(id);
  assert_non_null(f);
  return f;
}

/* What a done callback saw. */
typedef struct completion_s {
  unsigned calls;
  int err;
  uint64_t seq;        /* frame->seq when done ran */
  sl_frame_t *frame;
} completion_t;

static void on_done(sl_frame_t *f, int err, void *arg) {
  completion_t *c = arg;
  c->calls++;
  c->err = err;
  c->seq = f->seq;
  c->frame = f;
}

/* Appends f and checks that it was stored as seq, completed once, before append returned. */
static void append_as(sl_history_t *h, sl_frame_t *f, uint64_t seq) {
  completion_t c = {0};
  assert_int_equal(sl__history_append(h, f, on_done, &c), 0);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.err, 0);
  assert_ptr_equal(c.frame, f);
  assert_int_equal(c.seq, seq);
  assert_int_equal(f->seq, seq);
  assert_int_equal(sl__history_last_seq(h), seq);
}

/* Appends and drops the test's reference: the ring then owns the frame. */
static void append_owned(sl_history_t *h, const char *id, uint64_t seq) {
  sl_frame_t *f = make_frame(id);
  append_as(h, f, seq);
  sl__frame_unref(f);
}

typedef struct visits_s {
  uint64_t seq[4096];
  size_t n;
} visits_t;

/* Reads a whole cursor max frames at a time into v, checking the cursor's position as it goes
 * and that each frame is alive and intact. Returns what the last cursor_next returned. */
static int read_cursor(sl_history_cursor_t *c, size_t max, visits_t *v) {
  sl_frame_t *page[4096];
  assert_true(max <= sizeof page / sizeof page[0]);
  int r;
  while ((r = sl__history_cursor_next(c, page, max)) > 0) {
    assert_true((size_t)r <= max);
    for (int i = 0; i < r; i++) {
      assert_true(v->n < sizeof v->seq / sizeof v->seq[0]);
      assert_true(atomic_load(&page[i]->refs) >= 1);
      assert_int_equal(strlen(page[i]->id), page[i]->id_len);
      v->seq[v->n++] = page[i]->seq;
      sl__frame_unref(page[i]);
    }
    assert_int_equal(sl__history_cursor_pos(c), v->seq[v->n - 1]);
  }
  return r;
}

/* Reads after..upto through a cursor, max frames a page. */
static void replay_paged(sl_history_t *h, const char *after, uint64_t upto, size_t max,
                         visits_t *v, int *found) {
  sl_history_cursor_t *c = NULL;
  *found = -1;
  v->n = 0;
  assert_int_equal(sl__history_cursor_open(h, after, upto, &c, found), 0);
  assert_non_null(c);
  assert_int_equal(sl__history_cursor_pos(c), 0);
  assert_int_equal(read_cursor(c, max, v), 0);
  sl__history_cursor_close(c);
}

/* Replays and checks found and the seqs read (first..last, contiguous; last < first = none),
 * in one big page and in pages of 1 and 3 frames. */
static void expect_replay(sl_history_t *h, const char *after, uint64_t upto, int found,
                          uint64_t first, uint64_t last) {
  static const size_t page_sizes[] = {4096, 1, 3};
  for (size_t p = 0; p < sizeof page_sizes / sizeof page_sizes[0]; p++) {
    visits_t v;
    int got_found;
    replay_paged(h, after, upto, page_sizes[p], &v, &got_found);
    assert_int_equal(got_found, found);
    size_t want = last >= first ? (size_t)(last - first + 1) : 0;
    assert_int_equal(v.n, want);
    for (size_t i = 0; i < v.n; i++)
      assert_int_equal(v.seq[i], first + i);
  }
}

static sl_history_t *new_history(size_t capacity) {
  sl_history_t *h = NULL;
  assert_int_equal(sl__history_memory_new(&h, capacity, 0), 0);
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
  sl__history_destroy(h);
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
  sl__history_destroy(h);
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
  sl__history_destroy(h);
}

static void test_eviction(void **state) {
  (void)state;
  sl_history_t *h = new_history(3);
  const char *ids[] = {"a", "b", "c", "d", "e"};
  sl_frame_t *f[5];
  for (int i = 0; i < 5; i++) {
    f[i] = make_frame(ids[i]);
    append_as(h, f[i], (uint64_t)i + 1);
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

  sl__history_destroy(h);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(atomic_load(&f[i]->refs), 1);
    sl__frame_unref(f[i]);
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
  sl__history_destroy(h);
}

static void test_capacity_zero_keeps_nothing(void **state) {
  (void)state;
  sl_history_t *h = new_history(0);
  assert_int_equal(sl__history_last_seq(h), 0);
  sl_frame_t *f = make_frame("a");
  /* Still numbered and completed, just not kept: no reference taken. */
  append_as(h, f, 1);
  assert_int_equal(atomic_load(&f->refs), 1);
  expect_replay(h, NULL, UINT64_MAX, 0, 1, 0);
  expect_replay(h, "a", UINT64_MAX, 0, 1, 0);
  for (uint64_t s = 2; s < 100; s++)
    append_owned(h, "b", s);
  expect_replay(h, "earliest", UINT64_MAX, 0, 1, 0);
  sl__history_destroy(h);
  sl__frame_unref(f);
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
  sl__history_destroy(h);
}

/* The ring numbers updates itself: a seq the caller already set is only a hint, overwritten. */
static void test_seq_hint_overwritten(void **state) {
  (void)state;
  const uint64_t base = 1000000000007ULL;
  sl_history_t *h = new_history(7);
  char id[32];
  for (uint64_t i = 0; i < 20; i++) {
    snprintf(id, sizeof id, "n%llu", (unsigned long long)i);
    sl_frame_t *f = make_frame(id);
    f->seq = base + i * 3;
    append_as(h, f, i + 1);
    sl__frame_unref(f);
  }
  expect_replay(h, NULL, UINT64_MAX, 0, 14, 20);
  expect_replay(h, "n15", UINT64_MAX, 1, 17, 20);
  expect_replay(h, "n12", UINT64_MAX, 0, 14, 20);
  expect_replay(h, "n13", 18, 1, 15, 18);
  expect_replay(h, "n13", base + 17, 1, 15, 20);
  sl__history_destroy(h);
}

static void test_destroy_releases_every_frame(void **state) {
  (void)state;
  enum { CAP = 64, N = 200 };
  sl_history_t *h = new_history(CAP);
  sl_frame_t *f[N];
  char id[16];
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "k%d", i % 37);
    f[i] = make_frame(id);
    append_as(h, f[i], (uint64_t)i + 1);
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(atomic_load(&f[i]->refs), i >= N - CAP ? 2 : 1);
  sl__history_destroy(h);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&f[i]->refs), 1);
    sl__frame_unref(f[i]);
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
  uint64_t next;     /* seq the next frame read should have */
  size_t n;
  int out_of_order;  /* a frame was not the next seq, or not the frame appended with it */
} churn_visit_t;

/* Reads the whole cursor in pages of max frames, checking each against the model. */
static int churn_read(sl_history_t *h, const char *after, uint64_t upto, size_t max,
                      churn_visit_t *v, int *found) {
  sl_frame_t *page[64];
  sl_history_cursor_t *c;
  assert_int_equal(sl__history_cursor_open(h, after, upto, &c, found), 0);
  int r;
  while ((r = sl__history_cursor_next(c, page, max)) > 0) {
    for (int i = 0; i < r; i++) {
      sl_frame_t *f = page[i];
      if (f->seq != v->next || f->seq > v->model->count ||
          strcmp(f->id, v->model->ids[f->seq]) != 0)
        v->out_of_order = 1;
      v->next++;
      v->n++;
      sl__frame_unref(f);
    }
  }
  sl__history_cursor_close(c);
  return r;
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
    assert_int_equal(churn_read(h, cursor, upto, 1 + (size_t)rand() % 64, &v, &found), 0);
    if (found != want_found || v.out_of_order || v.n != (last >= first ? last - first + 1 : 0))
      fail_msg("after %llu appends (capacity %zu): replay after \"%s\" upto %llu: found %d, "
               "%zu frames%s; expected found %d, seqs %llu..%llu",
               (unsigned long long)s, capacity, cursor ? cursor : "(null)",
               (unsigned long long)upto, found, v.n, v.out_of_order ? " (not in order)" : "", want_found, (unsigned long long)first,
               (unsigned long long)last);
  }
  sl__history_destroy(h);
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
  sl__history_destroy(h);
}

/* Seqs are 1, 2, 3...; each append completes exactly once, with 0, before append returns, and
 * the frame is already stored when done runs (a resume started from done finds it). */
static void test_append_numbers_and_completes(void **state) {
  (void)state;
  sl_history_t *h = new_history(4);
  assert_int_equal(sl__history_last_seq(h), 0);
  for (uint64_t s = 1; s <= 10; s++) {
    sl_frame_t *f = make_frame("x");
    completion_t c = {0};
    f->seq = 0;
    assert_int_equal(sl__history_append(h, f, on_done, &c), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.err, 0);
    assert_ptr_equal(c.frame, f);
    assert_int_equal(c.seq, s);
    assert_int_equal(f->seq, s);
    assert_int_equal(atomic_load(&f->refs), 2); /* the ring's and ours */
    assert_int_equal(sl__history_last_seq(h), s);
    sl__frame_unref(f);
  }
  sl__history_destroy(h);
}

/* last_seq counts every append, kept or not. */
static void test_last_seq(void **state) {
  (void)state;
  size_t caps[] = {0, 1, 3, 100};
  for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
    sl_history_t *h = new_history(caps[k]);
    assert_int_equal(sl__history_last_seq(h), 0);
    for (uint64_t s = 1; s <= 50; s++) {
      append_owned(h, "y", s);
      assert_int_equal(sl__history_last_seq(h), s);
    }
    sl__history_destroy(h);
  }
}

/* Pages of 1 and 3 frames read what one big page reads, in the same order, and the cursor's
 * position is the last frame returned. */
static void test_paging_matches_one_page(void **state) {
  (void)state;
  sl_history_t *h = new_history(64);
  char id[16];
  for (uint64_t s = 1; s <= 100; s++) {
    snprintf(id, sizeof id, "p%llu", (unsigned long long)(s % 40));
    append_owned(h, id, s);
  }
  const char *afters[] = {NULL, "earliest", "p0", "p17", "nope"};
  uint64_t uptos[] = {UINT64_MAX, 100, 99, 70, 37, 36};
  for (size_t a = 0; a < sizeof afters / sizeof afters[0]; a++) {
    for (size_t u = 0; u < sizeof uptos / sizeof uptos[0]; u++) {
      visits_t big, one, three;
      int fb, f1, f3;
      replay_paged(h, afters[a], uptos[u], 4096, &big, &fb);
      replay_paged(h, afters[a], uptos[u], 1, &one, &f1);
      replay_paged(h, afters[a], uptos[u], 3, &three, &f3);
      assert_int_equal(f1, fb);
      assert_int_equal(f3, fb);
      assert_int_equal(one.n, big.n);
      assert_int_equal(three.n, big.n);
      for (size_t i = 0; i < big.n; i++) {
        assert_int_equal(one.seq[i], big.seq[i]);
        assert_int_equal(three.seq[i], big.seq[i]);
        if (i > 0)
          assert_int_equal(big.seq[i], big.seq[i - 1] + 1);
      }
    }
  }
  /* A page never holds more than asked, and pages continue where the last one ended. */
  sl_history_cursor_t *c;
  sl_frame_t *page[3];
  int found;
  assert_int_equal(sl__history_cursor_open(h, "p0", UINT64_MAX, &c, &found), 0);
  assert_int_equal(found, 1); /* p0 earliest retained: seq 40 */
  assert_int_equal(sl__history_cursor_next(c, page, 3), 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(page[i]->seq, 41 + (uint64_t)i);
    sl__frame_unref(page[i]);
  }
  assert_int_equal(sl__history_cursor_pos(c), 43);
  assert_int_equal(sl__history_cursor_next(c, page, 1), 1);
  assert_int_equal(page[0]->seq, 44);
  sl__frame_unref(page[0]);
  assert_int_equal(sl__history_cursor_pos(c), 44);
  sl__history_cursor_close(c);
  sl__history_destroy(h);
}

/* A cursor stops at upto even when newer frames are stored, before it opened or while it reads;
 * with upto past the newest it reads frames stored after it opened. */
static void test_cursor_stops_at_upto(void **state) {
  (void)state;
  sl_history_t *h = new_history(16);
  for (uint64_t s = 1; s <= 8; s++)
    append_owned(h, "z", s);
  sl_history_cursor_t *c, *open_ended;
  sl_frame_t *page[16];
  int found;
  assert_int_equal(sl__history_cursor_open(h, NULL, 5, &c, &found), 0);
  assert_int_equal(sl__history_cursor_open(h, NULL, UINT64_MAX, &open_ended, &found), 0);
  assert_int_equal(sl__history_cursor_next(c, page, 2), 2);
  sl__frame_unref(page[0]);
  sl__frame_unref(page[1]);
  append_owned(h, "z", 9);
  assert_int_equal(sl__history_cursor_next(c, page, 16), 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(page[i]->seq, 3 + (uint64_t)i);
    sl__frame_unref(page[i]);
  }
  assert_int_equal(sl__history_cursor_next(c, page, 16), 0);
  assert_int_equal(sl__history_cursor_pos(c), 5);
  sl__history_cursor_close(c);

  assert_int_equal(sl__history_cursor_next(open_ended, page, 16), 9);
  for (int i = 0; i < 9; i++) {
    assert_int_equal(page[i]->seq, 1 + (uint64_t)i);
    sl__frame_unref(page[i]);
  }
  assert_int_equal(sl__history_cursor_next(open_ended, page, 16), 0);
  sl__history_cursor_close(open_ended);
  sl__history_destroy(h);
}

/* The ring overwrote frames a cursor had yet to read: the next page is -ESPIPE, not a page that
 * silently skips them; a cursor whose unread frames all survive goes on. */
static void test_overtaken_cursor(void **state) {
  (void)state;
  sl_history_t *h = new_history(4);
  for (uint64_t s = 1; s <= 4; s++)
    append_owned(h, s == 2 ? "two" : "other", s);
  sl_history_cursor_t *slow, *fresh, *caught_up;
  sl_frame_t *page[8];
  int found;
  assert_int_equal(sl__history_cursor_open(h, NULL, UINT64_MAX, &slow, &found), 0);
  assert_int_equal(sl__history_cursor_open(h, "two", UINT64_MAX, &fresh, &found), 0);
  assert_int_equal(found, 1);
  assert_int_equal(sl__history_cursor_open(h, NULL, UINT64_MAX, &caught_up, &found), 0);
  assert_int_equal(sl__history_cursor_next(slow, page, 2), 2); /* 1, 2 */
  sl__frame_unref(page[0]);
  sl__frame_unref(page[1]);
  assert_int_equal(sl__history_cursor_next(caught_up, page, 3), 3); /* 1, 2, 3 */
  for (int i = 0; i < 3; i++)
    sl__frame_unref(page[i]);

  append_owned(h, "other", 5); /* evicts 1 */
  append_owned(h, "other", 6); /* evicts 2 */
  append_owned(h, "other", 7); /* evicts 3: the next frame slow would read */

  assert_int_equal(sl__history_cursor_next(slow, page, 8), -ESPIPE);
  assert_int_equal(sl__history_cursor_pos(slow), 2);
  /* Opened after "two" (seq 2), nothing read yet: 3 is gone. */
  assert_int_equal(sl__history_cursor_next(fresh, page, 8), -ESPIPE);
  assert_int_equal(sl__history_cursor_pos(fresh), 0);
  /* Read up to 3; 4..7 are all retained. */
  assert_int_equal(sl__history_cursor_next(caught_up, page, 8), 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(page[i]->seq, 4 + (uint64_t)i);
    sl__frame_unref(page[i]);
  }
  sl__history_cursor_close(slow);
  sl__history_cursor_close(fresh);
  sl__history_cursor_close(caught_up);
  sl__history_destroy(h);
}

/* One thread appends while another opens cursors and pages them: every page is in order with no
 * gap or repeat, frames are intact, a found id resumes right after it, and a cursor is either
 * read to its end or told -ESPIPE. Failures are counted in the threads and asserted here, as
 * cmocka's assertions are not thread-safe. */
enum { THREAD_APPENDS = 100000, THREAD_CAPACITY = 1000 };

typedef struct threaded_s {
  sl_history_t *h;
  atomic_int appending;       /* the appender has not finished */
  atomic_int started;         /* the reader is running: the appender may start */
  unsigned append_errors;     /* appender: append failed, done wrong, or seq not i */
  unsigned read_errors;       /* reader: out of order, wrong frame, past upto, wrong start */
  unsigned long cursors, frames, overtaken;
} threaded_t;

static void threaded_done(sl_frame_t *f, int err, void *arg) {
  uint64_t *seq = arg;
  *seq = err ? 0 : f->seq;
}

static void appender(void *arg) {
  threaded_t *t = arg;
  char id[24];
  while (!atomic_load(&t->started))
    ;
  for (uint64_t i = 1; i <= THREAD_APPENDS; i++) {
    snprintf(id, sizeof id, "i%llu", (unsigned long long)i);
    sl_frame_t *f = new_frame(id);
    uint64_t seq = UINT64_MAX;
    if (f == NULL || sl__history_append(t->h, f, threaded_done, &seq) != 0 || seq != i)
      t->append_errors++;
    if (f)
      sl__frame_unref(f);
  }
  atomic_store(&t->appending, 0);
}

static void reader(void *arg) {
  threaded_t *t = arg;
  sl_frame_t *page[256];
  static const size_t maxes[] = {1, 7, 256};
  char after[24];
  unsigned round = 0;
  atomic_store(&t->started, 1);
  for (int last_round = 0; !last_round; round++) {
    last_round = !atomic_load(&t->appending);
    uint64_t newest = sl__history_last_seq(t->h);
    uint64_t upto = round % 3 == 0 ? UINT64_MAX : newest;
    uint64_t back = (uint64_t)(round * 37) % (THREAD_CAPACITY + 200);
    const char *cursor = NULL;
    if (round % 4 != 0 && newest > back) {
      snprintf(after, sizeof after, "i%llu", (unsigned long long)(newest - back));
      cursor = after;
    }
    sl_history_cursor_t *c;
    int found;
    if (sl__history_cursor_open(t->h, cursor, upto, &c, &found) != 0) {
      t->read_errors++;
      continue;
    }
    t->cursors++;
    uint64_t prev = found ? newest - back : 0;
    int r;
    while ((r = sl__history_cursor_next(c, page, maxes[round % 3])) > 0) {
      for (int i = 0; i < r; i++) {
        sl_frame_t *f = page[i];
        char want[24];
        snprintf(want, sizeof want, "i%llu", (unsigned long long)f->seq);
        if ((prev != 0 && f->seq != prev + 1) || f->seq > upto || strcmp(f->id, want) != 0)
          t->read_errors++;
        prev = f->seq;
        t->frames++;
        sl__frame_unref(f);
      }
      if (sl__history_cursor_pos(c) != prev)
        t->read_errors++;
    }
    if (r == -ESPIPE)
      t->overtaken++;
    else if (r != 0)
      t->read_errors++;
    sl__history_cursor_close(c);
  }
}

/* The byte budget drops the oldest frames, together with the count limit; usage says what is
 * kept; the newest frame stays even when it alone is over the budget. */
static void test_byte_budget(void **state) {
  (void)state;
  sl_history_t *probe = new_history(10);
  append_owned(probe, "u01", 1);
  uint64_t entries, one;
  sl__history_usage(probe, &entries, &one);
  assert_int_equal(entries, 1);
  assert_true(one > 3); /* a frame costs its struct, wire bytes, id and topic */
  sl__history_destroy(probe);

  sl_history_t *h = NULL;
  assert_int_equal(sl__history_memory_new(&h, 100, 3 * one), 0);
  char id[8];
  for (uint64_t i = 1; i <= 10; i++) {
    snprintf(id, sizeof id, "u%02u", (unsigned)i);
    append_owned(h, id, i);
  }
  uint64_t bytes;
  sl__history_usage(h, &entries, &bytes);
  assert_int_equal(entries, 3); /* ten would fit the count, only three the bytes */
  assert_int_equal(bytes, 3 * one);
  expect_replay(h, "earliest", UINT64_MAX, 0, 8, 10);
  expect_replay(h, "u02", UINT64_MAX, 0, 8, 10); /* dropped: "earliest" */
  expect_replay(h, "u08", UINT64_MAX, 1, 9, 10);

  /* One update larger than the whole budget: it alone is kept. */
  char big[4096];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  sl__history_usage(h, &entries, &bytes);
  sl_frame_t *f = make_frame(big);
  append_as(h, f, 11);
  sl__frame_unref(f);
  sl__history_usage(h, &entries, &bytes);
  assert_int_equal(entries, 1);
  assert_true(bytes > 3 * one);
  expect_replay(h, "earliest", UINT64_MAX, 0, 11, 11);
  /* And the next small one pushes it out. */
  append_owned(h, "u12", 12);
  sl__history_usage(h, &entries, &bytes);
  assert_int_equal(entries, 1);
  assert_int_equal(bytes, one);
  sl__history_destroy(h);
}

static void test_append_while_paging(void **state) {
  (void)state;
  threaded_t t = {.h = new_history(THREAD_CAPACITY)};
  atomic_store(&t.appending, 1);
  atomic_store(&t.started, 0);
  uv_thread_t a, r;
  assert_int_equal(uv_thread_create(&a, appender, &t), 0);
  assert_int_equal(uv_thread_create(&r, reader, &t), 0);
  assert_int_equal(uv_thread_join(&a), 0);
  assert_int_equal(uv_thread_join(&r), 0);
  assert_int_equal(t.append_errors, 0);
  assert_int_equal(t.read_errors, 0);
  assert_true(t.cursors > 1);
  assert_true(t.frames > 0);
  assert_int_equal(sl__history_last_seq(t.h), THREAD_APPENDS);
  /* The reader's last cursor opened after the last append: it read the retained tail. */
  visits_t v;
  int found;
  replay_paged(t.h, NULL, UINT64_MAX, 4096, &v, &found);
  assert_int_equal(v.n, THREAD_CAPACITY);
  assert_int_equal(v.seq[0], THREAD_APPENDS - THREAD_CAPACITY + 1);
  sl__history_destroy(t.h);
}

/* A hub update (SL_FRAME_HUB), owned by the ring once appended. */
static void append_hub_owned(sl_history_t *h, const char *id, uint64_t seq) {
  sl_frame_t *f = make_frame(id);
  f->flags |= SL_FRAME_HUB;
  append_as(h, f, seq);
  sl__frame_unref(f);
}

/* The ids a cursor after `after` reads (pages of 4096, 1 and 3 alike), space-separated. */
static void expect_ids(sl_history_t *h, const char *after, int want_found, const char *want) {
  static const size_t pages[] = {4096, 1, 3};
  for (size_t p = 0; p < 3; p++) {
    sl_history_cursor_t *c;
    sl_frame_t *page[4096];
    char ids[512] = "";
    int found = -1, r;
    assert_int_equal(sl__history_cursor_open(h, after, UINT64_MAX, &c, &found), 0);
    while ((r = sl__history_cursor_next(c, page, pages[p])) > 0) {
      for (int i = 0; i < r; i++) {
        size_t len = strlen(ids);
        snprintf(ids + len, sizeof ids - len, "%s%s", len ? " " : "", page[i]->id);
        sl__frame_unref(page[i]);
      }
    }
    assert_int_equal(r, 0);
    sl__history_cursor_close(c);
    assert_int_equal(found, want_found);
    assert_string_equal(ids, want);
  }
}

/* The audit's case: --history-size 5, one update, then subscribers coming and going. Hub updates
 * have their own ring: they never push the application's out, nor these them; cursors merge the
 * rings by seq, from an id of either. */
static void test_hub_ring_own_budget(void **state) {
  (void)state;
  sl_history_t *h = NULL;
  assert_int_equal(sl__history_memory_new_split(&h, 3, 2, 0), 0);
  append_owned(h, "x1", 1);
  append_owned(h, "x2", 2);
  append_owned(h, "x3", 3);
  char id[16];
  for (int i = 1; i <= 6; i++) {
    snprintf(id, sizeof id, "h%d", i);
    append_hub_owned(h, id, (uint64_t)i + 3);
  }
  append_owned(h, "x4", 10);
  uint64_t entries, bytes;
  sl__history_usage(h, &entries, &bytes);
  assert_int_equal(entries, 5);
  assert_true(bytes > 0);
  expect_ids(h, NULL, 0, "x2 x3 h5 h6 x4");
  expect_ids(h, "x2", 1, "x3 h5 h6 x4"); /* h1-h4 dropped before: retention, no -ESPIPE */
  expect_ids(h, "h5", 1, "h6 x4");
  expect_ids(h, "h1", 0, "x2 x3 h5 h6 x4");
  for (int i = 7; i <= 40; i++) {
    snprintf(id, sizeof id, "h%d", i);
    append_hub_owned(h, id, (uint64_t)i + 4);
  }
  expect_ids(h, "x2", 1, "x3 x4 h39 h40");
  /* An id both rings carry resolves to its earliest retained copy, across evictions. */
  append_hub_owned(h, "x4", 45);               /* h39 goes */
  expect_ids(h, "x4", 1, "h40 x4");
  append_owned(h, "x5", 46);
  append_owned(h, "x6", 47);
  append_owned(h, "x7", 48);                   /* the application's x4 is evicted */
  expect_ids(h, "x4", 1, "x5 x6 x7");          /* now the hub's copy, seq 45 */
  sl__history_destroy(h);
}

/* The hub ring's retention overtaking a cursor: -ESPIPE when the hub update it has to return next
 * was dropped since it opened; none for hub updates past its upto. A ring of 0 keeps none. */
static void test_hub_ring_overtakes_cursor(void **state) {
  (void)state;
  sl_history_t *h = NULL;
  assert_int_equal(sl__history_memory_new_split(&h, 100, 2, 0), 0);
  append_owned(h, "x0", 1);
  append_owned(h, "x1", 2);
  append_hub_owned(h, "h1", 3);
  append_hub_owned(h, "h2", 4);
  sl_history_cursor_t *upto2, *all;
  sl_frame_t *got[1];
  int found;
  assert_int_equal(sl__history_cursor_open(h, NULL, 2, &upto2, &found), 0);
  assert_int_equal(sl__history_cursor_open(h, NULL, UINT64_MAX, &all, &found), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(sl__history_cursor_next(i ? all : upto2, got, 1), 1);
    assert_string_equal(got[0]->id, "x0");
    sl__frame_unref(got[0]);
  }
  append_hub_owned(h, "h3", 5);
  append_hub_owned(h, "h4", 6);                /* h1, h2 dropped */
  assert_int_equal(sl__history_cursor_next(upto2, got, 1), 1);
  assert_string_equal(got[0]->id, "x1");
  sl__frame_unref(got[0]);
  assert_int_equal(sl__history_cursor_next(upto2, got, 1), 0);
  assert_int_equal(sl__history_cursor_next(all, got, 1), -ESPIPE);
  sl__history_cursor_close(upto2);
  sl__history_cursor_close(all);
  expect_ids(h, NULL, 0, "x0 x1 h3 h4");
  sl__history_destroy(h);

  assert_int_equal(sl__history_memory_new_split(&h, 2, 0, 0), 0);
  append_owned(h, "x0", 1);
  append_hub_owned(h, "h1", 2);
  append_owned(h, "x1", 3);
  expect_ids(h, NULL, 0, "x0 x1");
  expect_ids(h, "x0", 1, "x1");
  sl__history_destroy(h);
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
    cmocka_unit_test(test_seq_hint_overwritten),
    cmocka_unit_test(test_destroy_releases_every_frame),
    cmocka_unit_test(test_duplicate_id_survives_eviction_of_earliest),
    cmocka_unit_test(test_churn_against_model),
    cmocka_unit_test(test_append_numbers_and_completes),
    cmocka_unit_test(test_last_seq),
    cmocka_unit_test(test_paging_matches_one_page),
    cmocka_unit_test(test_cursor_stops_at_upto),
    cmocka_unit_test(test_overtaken_cursor),
    cmocka_unit_test(test_byte_budget),
    cmocka_unit_test(test_append_while_paging),
    cmocka_unit_test(test_hub_ring_own_budget),
    cmocka_unit_test(test_hub_ring_overtakes_cursor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
