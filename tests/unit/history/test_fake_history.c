/* test_fake_history.c — the test double fake_history.c, so that tests of the publish path can
 * trust it: appends wait until completed, completions come oldest first with seqs following the
 * starting last_seq, failed ones take no seq and are not stored, a refused append never
 * completes, cursors read what was stored, and destroy cancels what is still pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "fake_history.h"

static const char *const topic[] = {"https://example.com/t"};

static sl_frame_t *make_frame(const char *id) {
  sl_update_t u = {0};
  u.topics = topic;
  u.topic_count = 1;
  u.data = id;
  u.data_len = strlen(id);
  sl_frame_t *f = sl__frame_update(&u, id, strlen(id));
  assert_non_null(f);
  return f;
}

typedef struct completions_s {
  unsigned calls;
  int err[8];
  uint64_t seq[8];
  sl_frame_t *frame[8];
} completions_t;

static void on_done(sl_frame_t *f, int err, void *arg) {
  completions_t *c = arg;
  assert_true(c->calls < 8);
  c->err[c->calls] = err;
  c->seq[c->calls] = f->seq;
  c->frame[c->calls++] = f;
}

static void test_completes_when_told(void **state) {
  (void)state;
  sl_history_t *h = NULL;
  assert_int_equal(fake_history_new(&h, 41), 0);
  assert_int_equal(sl__history_last_seq(h), 41);
  completions_t c = {0};
  sl_frame_t *f[4] = {make_frame("a"), make_frame("b"), make_frame("c"), make_frame("d")};
  for (int i = 0; i < 4; i++)
    assert_int_equal(sl__history_append(h, f[i], on_done, &c), 0);
  assert_int_equal(c.calls, 0);
  assert_int_equal(fake_history_pending(h), 4);

  assert_int_equal(fake_history_complete(h, 2, 0), 2);
  assert_int_equal(c.calls, 2);
  assert_ptr_equal(c.frame[0], f[0]);
  assert_ptr_equal(c.frame[1], f[1]);
  assert_int_equal(c.seq[0], 42);
  assert_int_equal(c.seq[1], 43);
  assert_int_equal(sl__history_last_seq(h), 43);

  /* A failure takes no seq: the next stored frame follows the last stored one. */
  assert_int_equal(fake_history_complete(h, 1, -EIO), 1);
  assert_int_equal(c.err[2], -EIO);
  assert_ptr_equal(c.frame[2], f[2]);
  assert_int_equal(sl__history_last_seq(h), 43);

  fake_history_refuse(h, -ENOSPC);
  sl_frame_t *g = make_frame("e");
  assert_int_equal(sl__history_append(h, g, on_done, &c), -ENOSPC);
  fake_history_refuse(h, 0);
  assert_int_equal(fake_history_pending(h), 1);

  sl_history_cursor_t *cur;
  sl_frame_t *page[8];
  int found;
  assert_int_equal(sl__history_cursor_open(h, "a", UINT64_MAX, &cur, &found), 0);
  assert_int_equal(found, 1);
  assert_int_equal(sl__history_cursor_next(cur, page, 8), 1);
  assert_ptr_equal(page[0], f[1]);
  sl__frame_unref(page[0]);
  assert_int_equal(sl__history_cursor_pos(cur), 43);
  assert_int_equal(sl__history_cursor_next(cur, page, 8), 0);
  sl__history_cursor_close(cur);

  /* d is still pending: destroy completes it, cancelled. */
  sl__history_destroy(h);
  assert_int_equal(c.calls, 4);
  assert_int_equal(c.err[3], -ECANCELED);
  assert_ptr_equal(c.frame[3], f[3]);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(atomic_load(&f[i]->refs), 1);
    sl__frame_unref(f[i]);
  }
  assert_int_equal(atomic_load(&g->refs), 1);
  sl__frame_unref(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_completes_when_told),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
