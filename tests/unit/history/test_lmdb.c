/* test_lmdb.c — lmdb.c, the durable history, through the history interface: appends complete
 * later, from the writer thread, exactly once each and in append order, numbered 1, 2, 3...,
 * each group of them followed by one NULL call (the end of a group commit);
 * a stored frame comes back from a cursor byte for byte (id, topics, private flag, SSE payload);
 * cursors after an id up to a seq, "earliest", unknown ids, any page size; -ESPIPE when retention
 * (--history-size) dropped what a cursor had yet to read; a reopened history keeps its seq, its
 * ids and what it retained, and continues the order; retention by age; the disk limit, where the
 * oldest make room and no append fails; hub updates (SL_FRAME_HUB) retained under their own
 * budget, never evicting the application's nor evicted by them, merged with them by seq; a directory held by another open history is refused
 * (-EBUSY) and free again once it closes; a corrupt data file is refused and left as it was.
 * Each test works in a fresh directory under /tmp, removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "history/history.h"

#define WAIT_STEP_US 2000
#define WAIT_MAX_STEPS 2500 /* 5 s: a lost completion fails the test, not the suite's timeout */
#define MAX_APPENDS 4096

static const char *const topics2[] = {"https://example.com/a", "https://example.com/b"};

/* What the done callbacks saw, from the writer thread. */
typedef struct recorder_s {
  uv_mutex_t lock;
  size_t calls;
  uint64_t seqs[MAX_APPENDS];
  int errs[MAX_APPENDS];
  size_t order[MAX_APPENDS]; /* the index each completion's arg named */
  size_t ends;               /* group ends (done(NULL, 0, arg)) */
  size_t since_end;          /* completions since the last group end */
  void *last_arg;            /* the arg of the last completion */
  int bad_end;               /* a group end with no completion before it, or another arg */
} recorder_t;

typedef struct fixture_s {
  char dir[64];
  sl_history_t *h;
  recorder_t rec;
  size_t appended;
  size_t args[MAX_APPENDS];
} fixture_t;

static fixture_t F;

static void on_done(sl_frame_t *f, int err, void *arg) {
  size_t *i = arg;
  uv_mutex_lock(&F.rec.lock);
  if (f == NULL) {
    if (F.rec.since_end == 0 || arg != F.rec.last_arg || err != 0)
      F.rec.bad_end = 1;
    F.rec.since_end = 0;
    F.rec.ends++;
    uv_mutex_unlock(&F.rec.lock);
    return;
  }
  F.rec.since_end++;
  F.rec.last_arg = arg;
  size_t k = F.rec.calls++;
  if (k < MAX_APPENDS) {
    F.rec.seqs[k] = f->seq;
    F.rec.errs[k] = err;
    F.rec.order[k] = *i;
  }
  uv_mutex_unlock(&F.rec.lock);
}

static size_t completed(void) {
  uv_mutex_lock(&F.rec.lock);
  size_t n = F.rec.calls;
  uv_mutex_unlock(&F.rec.lock);
  return n;
}

static sl_frame_t *make_frame(const char *id, const char *data, int private_) {
  sl_update_t u = {0};
  u.topics = topics2;
  u.topic_count = 2;
  u.data = data;
  u.data_len = strlen(data);
  u.type = "kind";
  u.is_private = private_;
  sl_frame_t *f = sl__frame_update(&u, id, strlen(id));
  assert_non_null(f);
  return f;
}

static sl_history_lmdb_opts_t opts(size_t max_entries) {
  sl_history_lmdb_opts_t o = {.dir = F.dir, .max_entries = max_entries, .fsync = SL_FSYNC_OFF};
  return o;
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  snprintf(F.dir, sizeof F.dir, "/tmp/sluice-test-lmdb-XXXXXX");
  assert_non_null(mkdtemp(F.dir));
  assert_int_equal(uv_mutex_init(&F.rec.lock), 0);
  for (size_t i = 0; i < MAX_APPENDS; i++)
    F.args[i] = i;
  return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  (void)state;
  if (F.h)
    sl__history_destroy(F.h);
  F.h = NULL;
  nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  uv_mutex_destroy(&F.rec.lock);
  return 0;
}

static void open_history(sl_history_lmdb_opts_t o) {
  assert_int_equal(sl__history_lmdb_new(&F.h, &o), 0);
}

static void close_history(void) {
  sl__history_destroy(F.h);
  F.h = NULL;
}

/* Appends update id (the test's reference dropped at once: the history keeps its own). */
static void append(const char *id, const char *data) {
  assert_true(F.appended < MAX_APPENDS);
  sl_frame_t *f = make_frame(id, data, 0);
  assert_int_equal(sl__history_append(F.h, f, on_done, &F.args[F.appended]), 0);
  F.appended++;
  sl__frame_unref(f);
}

/* Every group of completions has ended (the NULL call after its last). */
static int groups_ended(void) {
  uv_mutex_lock(&F.rec.lock);
  int ended = F.rec.since_end == 0;
  uv_mutex_unlock(&F.rec.lock);
  return ended;
}

static void wait_completed(size_t n) {
  for (int i = 0; i < WAIT_MAX_STEPS && (completed() < n || !groups_ended()); i++)
    usleep(WAIT_STEP_US);
  assert_int_equal(completed(), n);
  assert_true(groups_ended());
  assert_false(F.rec.bad_end);
}

/* Appends x<from>..x<to-1> and waits until all completed. */
static void append_range(int from, int to) {
  char id[32], data[32];
  for (int i = from; i < to; i++) {
    snprintf(id, sizeof id, "x%d", i);
    snprintf(data, sizeof data, "data %d", i);
    append(id, data);
  }
  wait_completed(F.appended);
}

/* Reads a whole cursor with pages of `page`, writing the ids, space-separated, into out. */
static int read_ids(const char *after, uint64_t upto, size_t page, int *found, char *out,
                    size_t cap) {
  sl_history_cursor_t *c;
  sl_frame_t *frames[16];
  assert_true(page <= 16);
  int r = sl__history_cursor_open(F.h, after, upto, &c, found);
  if (r)
    return r;
  out[0] = '\0';
  while ((r = sl__history_cursor_next(c, frames, page)) > 0) {
    for (int i = 0; i < r; i++) {
      size_t len = strlen(out);
      snprintf(out + len, cap - len, "%s%s", len ? " " : "", frames[i]->id);
      sl__frame_unref(frames[i]);
    }
  }
  sl__history_cursor_close(c);
  return r;
}

static void test_appends_complete_later_in_order(void **state) {
  (void)state;
  open_history(opts(1000));
  assert_int_equal(sl__history_last_seq(F.h), 0);
  append_range(0, 300);
  for (size_t k = 0; k < 300; k++) {
    assert_int_equal(F.rec.order[k], k);
    assert_int_equal(F.rec.errs[k], 0);
    assert_int_equal(F.rec.seqs[k], k + 1);
  }
  assert_int_equal(sl__history_last_seq(F.h), 300);
  uint64_t entries, bytes;
  sl__history_usage(F.h, &entries, &bytes);
  assert_int_equal(entries, 300);
  assert_true(bytes > 0);
  /* Exactly once: nothing more arrives. Each append had an arg of its own, so each completion
   * was a group of its own. */
  usleep(20000);
  assert_int_equal(completed(), 300);
  assert_int_equal(F.rec.ends, 300);
}

/* Appends made with one callback and arg complete in groups: each group's last completion is
 * followed by one NULL call (history.h), so a caller can hold its wake-ups until then; never a
 * NULL call without a completion before it. */
static void test_group_ends(void **state) {
  (void)state;
  open_history(opts(1000));
  char id[32];
  for (int i = 0; i < 300; i++) {
    snprintf(id, sizeof id, "g%d", i);
    sl_frame_t *f = make_frame(id, "data", 0);
    assert_int_equal(sl__history_append(F.h, f, on_done, &F.args[0]), 0);
    F.appended++;
    sl__frame_unref(f);
  }
  wait_completed(300);
  assert_true(F.rec.ends >= 1 && F.rec.ends <= 300);
  for (size_t k = 0; k < 300; k++)
    assert_int_equal(F.rec.seqs[k], k + 1);
}

/* Held appends (append_held) wait for the kick, and the kick hands them all over at once: one
 * transaction, one group of completions, in order after the appends before them. */
static void test_held_appends_one_group(void **state) {
  (void)state;
  open_history(opts(1000));
  append_range(0, 1); /* the writer is past its first pass, and asleep */
  size_t ends = F.rec.ends;
  char id[32];
  for (int i = 0; i < 100; i++) {
    snprintf(id, sizeof id, "h%d", i);
    sl_frame_t *f = make_frame(id, "data", 0);
    assert_int_equal(F.h->ops->append_held(F.h, f, on_done, &F.args[1]), 0);
    F.appended++;
    sl__frame_unref(f);
  }
  /* Not stored before the kick: the writer, asleep, was not woken (its own timed wake-up, the
   * fallback for a kick that never comes, is a second after its last pass). */
  usleep(100000);
  assert_int_equal(completed(), 1);
  F.h->ops->kick(F.h);
  wait_completed(101);
  assert_int_equal(F.rec.ends - ends, 1);
  for (size_t k = 0; k < 101; k++) {
    assert_int_equal(F.rec.seqs[k], k + 1);
    assert_int_equal(F.rec.errs[k], 0);
  }
  char ids[2048];
  int found;
  assert_int_equal(read_ids("h98", 101, 16, &found, ids, sizeof ids), 0);
  assert_true(found);
  assert_string_equal(ids, "h99");
}

static void test_frame_round_trip(void **state) {
  (void)state;
  open_history(opts(1000));
  sl_frame_t *f = make_frame("urn:id:1", "line one\nline two", 1);
  assert_int_equal(sl__history_append(F.h, f, on_done, &F.args[0]), 0);
  wait_completed(1);
  sl_history_cursor_t *c;
  sl_frame_t *got[2];
  int found;
  assert_int_equal(sl__history_cursor_open(F.h, NULL, UINT64_MAX, &c, &found), 0);
  assert_int_equal(sl__history_cursor_next(c, got, 2), 1);
  assert_int_equal(sl__history_cursor_pos(c), 1);
  assert_int_equal(got[0]->seq, 1);
  assert_int_equal(got[0]->len, f->len);
  assert_int_equal(got[0]->hdr, f->hdr);
  assert_memory_equal(got[0]->wire, f->wire, f->len);
  assert_string_equal(got[0]->id, "urn:id:1");
  assert_int_equal(got[0]->id_len, 8);
  assert_int_equal(got[0]->topic_count, 2);
  assert_string_equal(got[0]->topics[0], topics2[0]);
  assert_string_equal(got[0]->topics[1], topics2[1]);
  assert_int_equal(got[0]->topic_lens[1], strlen(topics2[1]));
  assert_true(got[0]->flags & SL_FRAME_PRIVATE);
  sl__frame_unref(got[0]);
  sl__history_cursor_close(c);
  sl__frame_unref(f);
}

static void test_cursor_paging(void **state) {
  (void)state;
  open_history(opts(1000));
  append_range(0, 10);
  char ids[512];
  int found;
  for (size_t page = 1; page <= 11; page++) {
    assert_int_equal(read_ids("x3", UINT64_MAX, page, &found, ids, sizeof ids), 0);
    assert_int_equal(found, 1);
    assert_string_equal(ids, "x4 x5 x6 x7 x8 x9");
  }
  assert_int_equal(read_ids("x3", 6, 4, &found, ids, sizeof ids), 0);
  assert_string_equal(ids, "x4 x5");
  assert_int_equal(read_ids("earliest", 3, 2, &found, ids, sizeof ids), 0);
  assert_int_equal(found, 0);
  assert_string_equal(ids, "x0 x1 x2");
  assert_int_equal(read_ids("nope", 2, 2, &found, ids, sizeof ids), 0);
  assert_int_equal(found, 0);
  assert_string_equal(ids, "x0 x1");
  assert_int_equal(read_ids("x9", UINT64_MAX, 2, &found, ids, sizeof ids), 0);
  assert_int_equal(found, 1);
  assert_string_equal(ids, "");
}

static void test_duplicate_ids_resolve_to_earliest(void **state) {
  (void)state;
  open_history(opts(1000));
  append("same", "1");
  append("other", "2");
  append("same", "3");
  wait_completed(3);
  char ids[128];
  int found;
  assert_int_equal(read_ids("same", UINT64_MAX, 4, &found, ids, sizeof ids), 0);
  assert_int_equal(found, 1);
  assert_string_equal(ids, "other same");
}

static void test_long_ids(void **state) {
  (void)state;
  open_history(opts(1000));
  char a[1001], b[1001];
  memset(a, 'a', 1000);
  a[1000] = '\0';
  memcpy(b, a, sizeof b);
  b[999] = 'b'; /* same indexed prefix, different id */
  append(a, "1");
  append(b, "2");
  append("tail", "3");
  wait_completed(3);
  char ids[4096];
  int found;
  assert_int_equal(read_ids(b, UINT64_MAX, 4, &found, ids, sizeof ids), 0);
  assert_int_equal(found, 1);
  assert_string_equal(ids, "tail");
}

static void test_espipe_when_retention_overtakes(void **state) {
  (void)state;
  open_history(opts(5));
  append_range(0, 5);
  sl_history_cursor_t *c;
  sl_frame_t *got[2];
  int found;
  assert_int_equal(sl__history_cursor_open(F.h, NULL, UINT64_MAX, &c, &found), 0);
  assert_int_equal(sl__history_cursor_next(c, got, 2), 2);
  sl__frame_unref(got[0]);
  sl__frame_unref(got[1]);
  append_range(5, 20);
  uint64_t entries, bytes;
  sl__history_usage(F.h, &entries, &bytes);
  assert_int_equal(entries, 5);
  assert_int_equal(sl__history_cursor_next(c, got, 2), -ESPIPE);
  sl__history_cursor_close(c);
  char ids[256];
  assert_int_equal(read_ids(NULL, UINT64_MAX, 3, &found, ids, sizeof ids), 0);
  assert_string_equal(ids, "x15 x16 x17 x18 x19");
}

static void test_reopen_keeps_seq_and_ids(void **state) {
  (void)state;
  open_history(opts(1000));
  append_range(0, 7);
  close_history();
  open_history(opts(1000));
  assert_int_equal(sl__history_last_seq(F.h), 7);
  uint64_t entries, bytes;
  sl__history_usage(F.h, &entries, &bytes);
  assert_int_equal(entries, 7);
  char ids[256];
  int found;
  assert_int_equal(read_ids("x4", UINT64_MAX, 2, &found, ids, sizeof ids), 0);
  assert_int_equal(found, 1);
  assert_string_equal(ids, "x5 x6");
  append_range(7, 8);
  assert_int_equal(F.rec.seqs[7], 8);
  assert_int_equal(sl__history_last_seq(F.h), 8);
}

static void test_reopen_after_everything_expired_keeps_seq(void **state) {
  (void)state;
  sl_history_lmdb_opts_t o = opts(0); /* keeps nothing, numbers everything */
  open_history(o);
  append_range(0, 4);
  close_history();
  open_history(o);
  assert_int_equal(sl__history_last_seq(F.h), 4);
  append_range(4, 5);
  assert_int_equal(F.rec.seqs[4], 5);
}

static void test_retention_by_age(void **state) {
  (void)state;
  sl_history_lmdb_opts_t o = opts(1000);
  o.max_age = 0.2;
  open_history(o);
  append_range(0, 3);
  uint64_t entries = 3, bytes;
  /* The writer looks once a second: bounded wait for it, not a measure of its speed. */
  for (int i = 0; i < WAIT_MAX_STEPS && entries > 0; i++) {
    usleep(WAIT_STEP_US);
    sl__history_usage(F.h, &entries, &bytes);
  }
  assert_int_equal(entries, 0);
  assert_int_equal(sl__history_last_seq(F.h), 3);
  char ids[64];
  int found;
  assert_int_equal(read_ids("x1", UINT64_MAX, 2, &found, ids, sizeof ids), 0);
  assert_int_equal(found, 0);
  assert_string_equal(ids, "");
}

static void test_disk_limit_makes_room(void **state) {
  (void)state;
  sl_history_lmdb_opts_t o = opts(1000000);
  o.max_disk = 1 << 20;
  open_history(o);
  static char data[8192];
  memset(data, 'd', sizeof data - 1);
  char id[32];
  for (int i = 0; i < 400; i++) { /* 3 MiB through a 1 MiB file */
    snprintf(id, sizeof id, "big%d", i);
    append(id, data);
    if (i % 50 == 49)
      wait_completed(F.appended);
  }
  wait_completed(400);
  for (size_t k = 0; k < 400; k++) {
    assert_int_equal(F.rec.errs[k], 0);
    assert_int_equal(F.rec.seqs[k], k + 1);
  }
  uint64_t entries, bytes;
  sl__history_usage(F.h, &entries, &bytes);
  assert_true(entries > 0 && entries < 400);
  assert_true(bytes <= (1 << 20));
  char ids[64];
  int found;
  assert_int_equal(read_ids("big398", UINT64_MAX, 2, &found, ids, sizeof ids), 0);
  assert_string_equal(ids, "big399");
}

/* A hub update (a subscription event, SL_FRAME_HUB): retained under hub_entries, apart. */
static void append_hub(const char *id) {
  assert_true(F.appended < MAX_APPENDS);
  sl_frame_t *f = make_frame(id, "event", 1);
  f->flags |= SL_FRAME_HUB;
  assert_int_equal(sl__history_append(F.h, f, on_done, &F.args[F.appended]), 0);
  F.appended++;
  sl__frame_unref(f);
}

static void expect_ids(const char *after, int want_found, const char *want) {
  static const size_t pages[] = {16, 1, 3};
  for (size_t p = 0; p < 3; p++) {
    char ids[512];
    int found = -1;
    assert_int_equal(read_ids(after, UINT64_MAX, pages[p], &found, ids, sizeof ids), 0);
    assert_int_equal(found, want_found);
    assert_string_equal(ids, want);
  }
}

/* Hub updates never push application updates out (the audit: --history-size 5, one update, six
 * subscribers come and go), nor these them; a cursor returns both in the one order, from any
 * id of either; across a reopen too. */
static void test_hub_updates_own_budget(void **state) {
  (void)state;
  sl_history_lmdb_opts_t o = opts(3);
  o.hub_entries = 2;
  open_history(o);
  append_range(1, 4);                       /* x1 x2 x3: seqs 1-3 */
  char id[16];
  for (int i = 1; i <= 6; i++) {            /* h1..h6: seqs 4-9 */
    snprintf(id, sizeof id, "h%d", i);
    append_hub(id);
  }
  append("x4", "data 4");                   /* seq 10 */
  wait_completed(F.appended);
  for (size_t i = 0; i < F.appended; i++) {
    assert_int_equal(F.rec.errs[i], 0);
    assert_int_equal(F.rec.seqs[i], i + 1);
  }
  uint64_t entries, bytes;
  sl__history_usage(F.h, &entries, &bytes);
  assert_int_equal(entries, 5);
  expect_ids(NULL, 0, "x2 x3 h5 h6 x4");
  expect_ids("x2", 1, "x3 h5 h6 x4");       /* h1-h4 were dropped before: retention, no -ESPIPE */
  expect_ids("h5", 1, "h6 x4");
  expect_ids("h2", 0, "x2 x3 h5 h6 x4");
  /* Many more hub updates: the application's stay. */
  for (int i = 7; i <= 40; i++) {
    snprintf(id, sizeof id, "h%d", i);
    append_hub(id);
  }
  wait_completed(F.appended);
  expect_ids("x2", 1, "x3 x4 h39 h40");
  close_history();
  open_history(o);
  assert_int_equal(sl__history_last_seq(F.h), 44);
  expect_ids("x3", 1, "x4 h39 h40");
  /* A hub update comes back flagged, and private as it was stored. */
  sl_history_cursor_t *c;
  sl_frame_t *got[1];
  int found;
  assert_int_equal(sl__history_cursor_open(F.h, "x4", UINT64_MAX, &c, &found), 0);
  assert_int_equal(sl__history_cursor_next(c, got, 1), 1);
  assert_string_equal(got[0]->id, "h39");
  assert_true(got[0]->flags & SL_FRAME_HUB);
  assert_true(got[0]->flags & SL_FRAME_PRIVATE);
  sl__frame_unref(got[0]);
  sl__history_cursor_close(c);
}

/* A cursor overtaken by the hub log's retention (the hub update it has to return next was dropped
 * since it opened) gets -ESPIPE, as one overtaken by the application's; hub updates dropped past
 * its upto are none of its concern. */
static void test_hub_retention_overtakes_cursor(void **state) {
  (void)state;
  sl_history_lmdb_opts_t o = opts(100);
  o.hub_entries = 2;
  open_history(o);
  append_range(0, 2);                        /* x0 x1: seqs 1, 2 */
  append_hub("h1");
  append_hub("h2");
  wait_completed(F.appended);
  sl_history_cursor_t *upto2, *all;
  sl_frame_t *got[1];
  int found;
  assert_int_equal(sl__history_cursor_open(F.h, NULL, 2, &upto2, &found), 0);
  assert_int_equal(sl__history_cursor_open(F.h, NULL, UINT64_MAX, &all, &found), 0);
  for (int i = 0; i < 2; i++) {
    sl_history_cursor_t *c = i ? all : upto2;
    assert_int_equal(sl__history_cursor_next(c, got, 1), 1);
    assert_string_equal(got[0]->id, "x0");
    sl__frame_unref(got[0]);
  }
  append_hub("h3");
  append_hub("h4");                          /* h1, h2 dropped */
  wait_completed(F.appended);
  assert_int_equal(sl__history_cursor_next(upto2, got, 1), 1);
  assert_string_equal(got[0]->id, "x1");
  sl__frame_unref(got[0]);
  assert_int_equal(sl__history_cursor_next(upto2, got, 1), 0);
  assert_int_equal(sl__history_cursor_next(all, got, 1), -ESPIPE);
  sl__history_cursor_close(upto2);
  sl__history_cursor_close(all);
  expect_ids(NULL, 0, "x0 x1 h3 h4");
}

/* The file's format as its meta says, read with LMDB directly (the history closed). */
static uint64_t file_format(void) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta;
  uint64_t v = 0;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
  assert_int_equal(mdb_env_open(env, F.dir, MDB_RDONLY, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
  MDB_val k = {6, (void *)"format"}, d;
  assert_int_equal(mdb_get(txn, meta, &k, &d), 0);
  assert_int_equal(d.mv_size, 8);
  memcpy(&v, d.mv_data, 8);
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return v;
}

/* A file stays format 1 (what older versions read) until it holds a hub update, then is 2 (they
 * refuse it, rather than read its log's gaps as retention), and still opens. */
static void test_format_marked_by_first_hub_update(void **state) {
  (void)state;
  sl_history_lmdb_opts_t o = opts(10);
  o.hub_entries = 10;
  open_history(o);
  append_range(0, 2);
  close_history();
  assert_int_equal(file_format(), 1);
  open_history(o);
  append_hub("h1");
  wait_completed(F.appended);
  close_history();
  assert_int_equal(file_format(), 2);
  open_history(o);
  expect_ids(NULL, 0, "x0 x1 h1");
}

static void test_lock_refused(void **state) {
  (void)state;
  open_history(opts(10));
  sl_history_t *second = NULL;
  sl_history_lmdb_opts_t o = opts(10);
  assert_int_equal(sl__history_lmdb_new(&second, &o), -EBUSY);
  assert_null(second);
  close_history();
  assert_int_equal(sl__history_lmdb_new(&second, &o), 0);
  sl__history_destroy(second);
}

static void test_corrupt_file_refused(void **state) {
  (void)state;
  open_history(opts(10));
  append_range(0, 3);
  close_history();
  char path[128];
  snprintf(path, sizeof path, "%s/data.mdb", F.dir);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  static char junk[16384];
  memset(junk, 0x5a, sizeof junk);
  assert_int_equal(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
  close(fd);
  struct stat before, after;
  assert_int_equal(stat(path, &before), 0);
  sl_history_lmdb_opts_t o = opts(10);
  int r = sl__history_lmdb_new(&F.h, &o);
  assert_true(r < 0);
  assert_null(F.h);
  /* Left as it was, for whoever restores it. */
  assert_int_equal(stat(path, &after), 0);
  assert_int_equal(after.st_size, before.st_size);
  fd = open(path, O_RDONLY);
  static char back[16384];
  assert_int_equal(pread(fd, back, sizeof back, 0), (ssize_t)sizeof back);
  close(fd);
  assert_memory_equal(back, junk, sizeof junk);
}

static void test_not_a_directory(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/file", F.dir);
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  close(fd);
  sl_history_lmdb_opts_t o = opts(10);
  o.dir = path;
  sl_history_t *h = NULL;
  assert_true(sl__history_lmdb_new(&h, &o) < 0);
  assert_null(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_appends_complete_later_in_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_group_ends, setup, teardown),
    cmocka_unit_test_setup_teardown(test_held_appends_one_group, setup, teardown),
    cmocka_unit_test_setup_teardown(test_frame_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cursor_paging, setup, teardown),
    cmocka_unit_test_setup_teardown(test_duplicate_ids_resolve_to_earliest, setup, teardown),
    cmocka_unit_test_setup_teardown(test_long_ids, setup, teardown),
    cmocka_unit_test_setup_teardown(test_espipe_when_retention_overtakes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_reopen_keeps_seq_and_ids, setup, teardown),
    cmocka_unit_test_setup_teardown(test_reopen_after_everything_expired_keeps_seq, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_retention_by_age, setup, teardown),
    cmocka_unit_test_setup_teardown(test_disk_limit_makes_room, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hub_updates_own_budget, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hub_retention_overtakes_cursor, setup, teardown),
    cmocka_unit_test_setup_teardown(test_format_marked_by_first_hub_update, setup, teardown),
    cmocka_unit_test_setup_teardown(test_lock_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corrupt_file_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_not_a_directory, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
