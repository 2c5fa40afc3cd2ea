/* test_bus.c — bus.c, the publish path, over the fake history (which completes appends only when
 * told) and a worker that is initialised but never started, so that its inbox can be read: a
 * publish waits for a completion that comes later from another thread, and returns its seq; two
 * publishes waiting together reach the inbox in the order history stored them; a failed append
 * posts nothing; invalid updates are refused with a reason; a closed bus refuses (-ESHUTDOWN);
 * closing while an append is pending posts the drain message only after that append's frame; a
 * worker's publish never waits: with a late history it returns at once, and its answer reaches
 * the worker as a call after the update's frame (with the seq, or history's error), while memory
 * answers inline and posts no call; a completion after the workers were detached is kept and run
 * by sl__bus_destroy; every worker starts at history's last seq; a replay over the memory
 * history pages through what is retained, after an id, up to a seq; and with a shared log that
 * feeds (Redis Streams), the workers get what the feed reads, not what was appended, start where
 * the feed stands, and get nothing after the drain message. */
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
#include <unistd.h>

#include "net/bus.h"
#include "fake_history.h"

#define WAIT_STEP_US 1000
#define WAIT_MAX_STEPS 2000 /* 2 s: a hung publish fails the test, not the suite's timeout */

/* One publish on a thread of its own. */
typedef struct publisher_s {
  uv_thread_t thread;
  const char *data;
  int r;
  uint64_t seq;
  char id[64];
  const char *why;
  atomic_int done;
} publisher_t;

typedef struct fixture_s {
  sl_config_t cfg;
  sl_pacer_t pacer;
  sl_admission_t admission;
  sl_delivery_t *members[1];
  sl_worker_t w;
  sl_history_t *h;
  sl_bus_t bus;
  int h_is_fake;
  publisher_t *pubs[4];   /* publishers whose thread is not joined yet */
  size_t npubs;
} fixture_t;

static fixture_t F;

static const char *const topic[] = {"https://example.com/t"};

static void start(sl_history_t *h) {
  memset(&F, 0, sizeof F);
  sl_config_init(&F.cfg);
  F.cfg.listen[0] = "127.0.0.1:0";
  F.cfg.listen_count = 1;
  F.pacer.count = 1;
  F.pacer.members = F.members;
  F.members[0] = &F.w.dlv;
  char err[256];
  assert_int_equal(sl__admission_init(&F.admission, 0, 0), 0);
  assert_int_equal(sl__worker_init(&F.w, 0, &F.cfg, &F.pacer, &F.admission, NULL, NULL, NULL, NULL, err,
                                   sizeof err), 0);
  F.h = h;
  assert_int_equal(sl__bus_init(&F.bus, h), 0);
  sl__bus_attach(&F.bus, &F.w, 1);
}

static int setup_fake(void **state) {
  (void)state;
  sl_history_t *h;
  assert_int_equal(fake_history_new(&h, 10), 0);
  start(h);
  F.h_is_fake = 1;
  return 0;
}

static int setup_memory(void **state) {
  (void)state;
  sl_history_t *h;
  assert_int_equal(sl__history_memory_new(&h, 1000, 0), 0);
  start(h);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  /* A test that failed midway may leave a publisher waiting: let it return before the bus goes. */
  if (F.h_is_fake)
    fake_history_complete(F.h, SIZE_MAX, -ECANCELED);
  for (size_t i = 0; i < F.npubs; i++)
    uv_thread_join(&F.pubs[i]->thread);
  sl__bus_destroy(&F.bus);
  sl__worker_destroy(&F.w);
  sl__admission_destroy(&F.admission);
  sl__history_destroy(F.h);
  return 0;
}


static sl_update_t update_of(const char *data) {
  sl_update_t u = {.topics = topic, .topic_count = 1, .data = data, .data_len = strlen(data)};
  return u;
}

static void publish_main(void *arg) {
  publisher_t *p = arg;
  sl_update_t u = update_of(p->data);
  p->r = sl__bus_publish(&F.bus, &u, p->id, sizeof p->id, &p->seq, &p->why);
  atomic_store(&p->done, 1);
}

/* Kept outside the test's stack: a failed test leaves it, the thread may still write here. */
static publisher_t publishers[4];

static publisher_t *publish_async(const char *data) {
  assert_true(F.npubs < 4);
  publisher_t *p = NULL;
  for (size_t i = 0; i < 4 && p == NULL; i++) {
    int busy = 0;
    for (size_t k = 0; k < F.npubs; k++)
      busy |= F.pubs[k] == &publishers[i];
    if (!busy)
      p = &publishers[i];
  }
  memset(p, 0, sizeof *p);
  p->data = data;
  assert_int_equal(uv_thread_create(&p->thread, publish_main, p), 0);
  F.pubs[F.npubs++] = p;
  return p;
}

static void wait_pending(size_t n) {
  for (int i = 0; i < WAIT_MAX_STEPS && fake_history_pending(F.h) < n; i++)
    usleep(WAIT_STEP_US);
  assert_int_equal(fake_history_pending(F.h), n);
}

static void wait_done(publisher_t *p) {
  for (int i = 0; i < WAIT_MAX_STEPS && !atomic_load(&p->done); i++)
    usleep(WAIT_STEP_US);
  assert_true(atomic_load(&p->done));
  assert_int_equal(uv_thread_join(&p->thread), 0);
  for (size_t i = 0; i < F.npubs; i++)
    if (F.pubs[i] == p)
      F.pubs[i] = F.pubs[--F.npubs];
}

static size_t inbox_len(void) {
  uv_mutex_lock(&F.w.inbox_lock);
  size_t n = F.w.inbox_len;
  uv_mutex_unlock(&F.w.inbox_lock);
  return n;
}

/* 1 when the inbox's frame i carries data. */
static int frame_has(size_t i, const char *data) {
  sl_frame_t *f = F.w.inbox[i].frame;
  char needle[64];
  snprintf(needle, sizeof needle, "data: %s\n", data);
  size_t n = strlen(needle);
  for (size_t k = 0; k + n <= f->len; k++)
    if (memcmp(f->wire + k, needle, n) == 0)
      return 1;
  return 0;
}

static void test_publish_waits_for_later_completion(void **state) {
  (void)state;
  publisher_t *p = publish_async("one");
  wait_pending(1);
  usleep(20 * 1000); /* it would have returned by now if it did not wait */
  assert_false(atomic_load(&p->done));
  assert_int_equal(inbox_len(), 0);
  assert_int_equal(fake_history_complete(F.h, 1, 0), 1);
  wait_done(p);
  assert_int_equal(p->r, 0);
  assert_int_equal(p->seq, 11);
  assert_true(strncmp(p->id, "urn:uuid:", 9) == 0);
  assert_int_equal(inbox_len(), 1);
  assert_int_equal(F.w.inbox[0].kind, SL_MSG_FRAME);
  assert_int_equal(F.w.inbox[0].frame->seq, 11);
  assert_string_equal(F.w.inbox[0].frame->id, p->id);
  assert_true(frame_has(0, "one"));
}

static void test_two_publishes_posted_in_history_order(void **state) {
  (void)state;
  publisher_t *a = publish_async("first");
  wait_pending(1);
  publisher_t *b = publish_async("second");
  wait_pending(2);
  assert_int_equal(fake_history_complete(F.h, 1, 0), 1);
  wait_done(a);
  assert_false(atomic_load(&b->done));
  assert_int_equal(a->seq, 11);
  assert_int_equal(fake_history_complete(F.h, 1, 0), 1);
  wait_done(b);
  assert_int_equal(b->r, 0);
  assert_int_equal(b->seq, 12);
  assert_int_equal(inbox_len(), 2);
  assert_int_equal(F.w.inbox[0].frame->seq, 11);
  assert_true(frame_has(0, "first"));
  assert_int_equal(F.w.inbox[1].frame->seq, 12);
  assert_true(frame_has(1, "second"));
}

static void test_failed_append_posts_nothing(void **state) {
  (void)state;
  publisher_t *p = publish_async("lost");
  wait_pending(1);
  assert_int_equal(fake_history_complete(F.h, 1, -EIO), 1);
  wait_done(p);
  assert_int_equal(p->r, -EIO);
  assert_int_equal(inbox_len(), 0);

  fake_history_refuse(F.h, -ENOMEM); /* an append that cannot even start */
  sl_update_t u = update_of("x");
  char id[64];
  const char *why = NULL;
  assert_int_equal(sl__bus_publish(&F.bus, &u, id, sizeof id, NULL, &why), -ENOMEM);
  assert_int_equal(inbox_len(), 0);
  assert_int_equal(F.bus.pending, 0);
}

/* A hub update (a subscription event) returns once its append started: the caller (a worker,
 * under the registry's mutex) never waits for the store. It still takes its place in the order,
 * reaches the workers only once stored, flagged SL_FRAME_HUB (history's own budget), and moves
 * the last-id cursor only then; a store that fails is counted, and nothing is posted. */
static void test_hub_publish_does_not_wait(void **state) {
  (void)state;
  F.bus.keep_last = 1;
  const char *topics[1] = {"https://example.com/.well-known/mercure/subscriptions/a"};
  sl_update_t u = {.topics = topics, .topic_count = 1, .data = "{}", .data_len = 2,
                   .type = "mercure", .is_private = 1};
  char id[64], *last = NULL;
  const char *why = NULL;
  assert_int_equal(sl__bus_publish_hub(&F.bus, &u, id, sizeof id, &why), 0);
  assert_int_equal(fake_history_pending(F.h), 1); /* returned with its store still pending */
  assert_int_equal(inbox_len(), 0);
  assert_int_equal(sl__bus_last_id(&F.bus, &last), 0);
  assert_null(last);                               /* the cursor lags: nothing stored yet */
  publisher_t *p = publish_async("after");         /* an application update behind it */
  wait_pending(2);
  assert_int_equal(fake_history_complete(F.h, 2, 0), 2);
  wait_done(p);
  assert_int_equal(p->r, 0);
  assert_int_equal(inbox_len(), 2);
  assert_int_equal(F.w.inbox[0].frame->seq, 11);
  assert_string_equal(F.w.inbox[0].frame->id, id);
  assert_true(F.w.inbox[0].frame->flags & SL_FRAME_HUB);
  assert_int_equal(F.w.inbox[1].frame->seq, 12);
  assert_false(F.w.inbox[1].frame->flags & SL_FRAME_HUB);
  assert_int_equal(sl__bus_last_id(&F.bus, &last), 0);
  assert_string_equal(last, p->id);
  free(last);
  assert_int_equal(sl__bus_hub_failed(&F.bus), 0);
  assert_int_equal(sl__bus_publish_hub(&F.bus, &u, id, sizeof id, &why), 0);
  assert_int_equal(fake_history_complete(F.h, 1, -EIO), 1);
  assert_int_equal(sl__bus_hub_failed(&F.bus), 1);
  assert_int_equal(inbox_len(), 2);
  assert_int_equal(F.bus.pending, 0);
}

static void test_invalid_updates_refused(void **state) {
  (void)state;
  char id[64];
  const char *why = NULL;
  sl_update_t u = update_of("x");
  u.topic_count = 0;
  assert_int_equal(sl__bus_publish(&F.bus, &u, id, sizeof id, NULL, &why), -EINVAL);
  assert_non_null(why);
  why = NULL;
  u = update_of("\xff\xfe");
  assert_int_equal(sl__bus_publish(&F.bus, &u, id, sizeof id, NULL, &why), -EINVAL);
  assert_non_null(why);
  why = NULL;
  u = update_of("x");
  u.retry = "12a";
  assert_int_equal(sl__bus_publish(&F.bus, &u, id, sizeof id, NULL, &why), -EINVAL);
  assert_non_null(why);
  u = update_of("x");
  u.id = "a-long-enough-id";
  assert_int_equal(sl__bus_publish(&F.bus, &u, id, 4, NULL, &why), -ENOSPC);
  assert_int_equal(fake_history_pending(F.h), 0);
  assert_int_equal(inbox_len(), 0);
}

static void test_closed_bus_refuses(void **state) {
  (void)state;
  sl__bus_close(&F.bus);
  assert_int_equal(inbox_len(), 1); /* nothing pending: the drain message at once */
  assert_int_equal(F.w.inbox[0].kind, SL_MSG_DRAIN);
  /* On a thread: were it accepted, it would wait for a completion that never comes. */
  publisher_t *p = publish_async("late");
  wait_done(p);
  assert_int_equal(p->r, -ESHUTDOWN);
  assert_int_equal(fake_history_pending(F.h), 0);
  sl__bus_close(&F.bus); /* once only */
  assert_int_equal(inbox_len(), 1);
}

static void test_close_while_pending_drains_after_frame(void **state) {
  (void)state;
  publisher_t *p = publish_async("accepted");
  wait_pending(1);
  sl__bus_close(&F.bus);
  assert_int_equal(inbox_len(), 0); /* the drain waits for the pending append */
  assert_int_equal(fake_history_complete(F.h, 1, 0), 1);
  wait_done(p);
  assert_int_equal(p->r, 0);
  assert_int_equal(inbox_len(), 2);
  assert_int_equal(F.w.inbox[0].kind, SL_MSG_FRAME);
  assert_true(frame_has(0, "accepted"));
  assert_int_equal(F.w.inbox[1].kind, SL_MSG_DRAIN);
  assert_null(F.w.inbox[1].frame);
  assert_true(atomic_load(&F.w.dlv.drain_pending));
}

/* --- a worker's publish: answered through the worker, never waited for ----------------------- */

typedef struct answer_s {
  sl_bus_pending_t pending;
  int runs;
} answer_t;

static void answer_run(sl_worker_call_t *call) {
  ((answer_t *)call)->runs++;
}

/* Kept outside the test's stack: a failed test leaves it in the worker's list. */
static answer_t answers[2];

static sl_worker_call_t *calls(void) {
  uv_mutex_lock(&F.w.inbox_lock);
  sl_worker_call_t *c = F.w.calls;
  uv_mutex_unlock(&F.w.inbox_lock);
  return c;
}

static void test_workers_start_at_history_seq(void **state) {
  (void)state;
  /* The fake history reopened at 10: an update 11 is the next, not a gap. */
  assert_int_equal(F.w.dlv.dispatched_seq, 10);
  assert_int_equal(atomic_load(&F.w.dlv.flushed_seq), 10);
}

static void test_async_publish_answers_through_worker(void **state) {
  (void)state;
  memset(answers, 0, sizeof answers);
  answers[0].pending.call.fn = answer_run;
  answers[1].pending.call.fn = answer_run;
  sl_update_t u = update_of("later");
  char id[64];
  const char *why = NULL;
  uint64_t seq = 0;
  assert_int_equal(sl__bus_publish_async(&F.bus, &u, id, sizeof id, &seq, &why, &F.w,
                                         &answers[0].pending), 1);
  assert_true(strncmp(id, "urn:uuid:", 9) == 0); /* the id is known at once */
  assert_int_equal(seq, 0);
  u = update_of("fails");
  assert_int_equal(sl__bus_publish_async(&F.bus, &u, id, sizeof id, &seq, &why, &F.w,
                                         &answers[1].pending), 1);
  assert_null(calls());
  assert_int_equal(fake_history_complete(F.h, 1, 0), 1);
  /* The frame first, then the answer: the worker dispatches the update before it answers. */
  assert_int_equal(inbox_len(), 1);
  assert_true(frame_has(0, "later"));
  assert_ptr_equal(calls(), &answers[0].pending.call);
  assert_int_equal(answers[0].pending.err, 0);
  assert_int_equal(answers[0].pending.seq, 11);
  assert_int_equal(fake_history_complete(F.h, 1, -EIO), 1);
  assert_int_equal(inbox_len(), 1); /* nothing stored, nothing posted but the answer */
  assert_ptr_equal(calls()->next, &answers[1].pending.call);
  assert_int_equal(answers[1].pending.err, -EIO);
  assert_int_equal(answers[0].runs + answers[1].runs, 0); /* the worker runs them, not the bus */
}

static void test_async_publish_inline_with_memory(void **state) {
  (void)state;
  memset(answers, 0, sizeof answers);
  answers[0].pending.call.fn = answer_run;
  sl_update_t u = update_of("now");
  char id[64];
  const char *why = NULL;
  uint64_t seq = 0;
  assert_int_equal(sl__bus_publish_async(&F.bus, &u, id, sizeof id, &seq, &why, &F.w,
                                         &answers[0].pending), 0);
  assert_int_equal(seq, 1);
  assert_int_equal(inbox_len(), 1);
  assert_null(calls());
  assert_int_equal(F.bus.pending, 0);
}

static void test_completion_after_detach_runs_at_destroy(void **state) {
  (void)state;
  memset(answers, 0, sizeof answers);
  answers[0].pending.call.fn = answer_run;
  sl_update_t u = update_of("orphan");
  char id[64];
  const char *why = NULL;
  uint64_t seq = 0;
  assert_int_equal(sl__bus_publish_async(&F.bus, &u, id, sizeof id, &seq, &why, &F.w,
                                         &answers[0].pending), 1);
  sl__bus_attach(&F.bus, NULL, 0);
  assert_int_equal(fake_history_complete(F.h, 1, -ECANCELED), 1);
  assert_null(calls());
  assert_int_equal(answers[0].runs, 0);
  sl__bus_destroy(&F.bus);
  assert_int_equal(answers[0].runs, 1);
  assert_int_equal(answers[0].pending.err, -ECANCELED);
  assert_int_equal(sl__bus_init(&F.bus, F.h), 0); /* for the teardown */
}

/* --- replay over the memory history -------------------------------------------------------- */

typedef struct visits_s {
  uint64_t first, last;
  size_t n;
  int restarts, out_of_order;
} visits_t;

static void visit(sl_frame_t *f, void *arg) {
  visits_t *v = arg;
  if (f == NULL) {
    v->restarts++;
    return;
  }
  if (v->n == 0)
    v->first = f->seq;
  else if (f->seq != v->last + 1)
    v->out_of_order++;
  v->last = f->seq;
  v->n++;
}

static void test_replay_pages_after_id(void **state) {
  (void)state;
  char ids[600][64];
  for (int i = 0; i < 600; i++) {
    char data[16];
    snprintf(data, sizeof data, "u%d", i);
    sl_update_t u = update_of(data);
    const char *why;
    uint64_t seq;
    assert_int_equal(sl__bus_publish(&F.bus, &u, ids[i], sizeof ids[i], &seq, &why), 0);
    assert_int_equal(seq, (uint64_t)i + 1);
  }
  assert_int_equal(inbox_len(), 600);

  visits_t v = {0};
  int found = -1;
  assert_int_equal(sl__bus_replay(&F.bus, ids[99], 600, visit, &v, &found), 0);
  assert_int_equal(found, 1);
  assert_int_equal(v.n, 500); /* more than one page */
  assert_int_equal(v.first, 101);
  assert_int_equal(v.last, 600);
  assert_int_equal(v.out_of_order, 0);
  assert_int_equal(v.restarts, 0);

  memset(&v, 0, sizeof v);
  assert_int_equal(sl__bus_replay(&F.bus, ids[99], 300, visit, &v, &found), 0);
  assert_int_equal(v.n, 200);
  assert_int_equal(v.last, 300);

  memset(&v, 0, sizeof v);
  assert_int_equal(sl__bus_replay(&F.bus, "urn:unknown", 600, visit, &v, &found), 0);
  assert_int_equal(found, 0);
  assert_int_equal(v.n, 600);
  assert_int_equal(v.first, 1);

  memset(&v, 0, sizeof v);
  assert_int_equal(sl__bus_replay(&F.bus, ids[599], 600, visit, &v, &found), 0);
  assert_int_equal(found, 1);
  assert_int_equal(v.n, 0);
}

/* A shared log's double: appends wait for feeding_complete; frames reach the bus only when the
 * test feeds them, as another hub's would (feeding_feed), numbered from the log's seq on. */
typedef struct feeding_s {
  sl_history_t base;
  sl_history_feed_cb feed;
  void *feed_arg;
  int feed_calls;
  uint64_t seq;
  sl_frame_t *pending[4];
  sl_history_done_cb done[4];
  void *arg[4];
  size_t npending;
} feeding_t;

static feeding_t feeding;

static int feeding_append(sl_history_t *h, sl_frame_t *f, sl_history_done_cb done, void *arg) {
  feeding_t *fh = (feeding_t *)h;
  assert_true(fh->npending < 4);
  fh->pending[fh->npending] = sl__frame_ref(f);
  fh->done[fh->npending] = done;
  fh->arg[fh->npending++] = arg;
  return 0;
}

static uint64_t feeding_last_seq(sl_history_t *h) {
  return ((feeding_t *)h)->seq;
}

static void feeding_usage(sl_history_t *h, uint64_t *entries, uint64_t *bytes) {
  (void)h;
  *entries = *bytes = 0;
}

static void feeding_start(sl_history_t *h, sl_history_feed_cb cb, void *arg) {
  feeding_t *fh = (feeding_t *)h;
  fh->feed = cb;
  fh->feed_arg = arg;
  fh->feed_calls++;
}

static void feeding_destroy(sl_history_t *h) {
  (void)h;
}

static const sl_history_ops_t feeding_ops = {
  .append = feeding_append,
  .last_seq = feeding_last_seq,
  .usage = feeding_usage,
  .feed = feeding_start,
  .destroy = feeding_destroy,
};

/* The log's next entry (data), read back: what every hub on the log delivers. */
static void feeding_feed(const char *data) {
  sl_update_t u = update_of(data);
  sl_frame_t *f = sl__frame_update(&u, "urn:x", 5);
  assert_non_null(f);
  f->seq = ++feeding.seq;
  feeding.feed(f, feeding.feed_arg);
  sl__frame_unref(f);
}

/* The oldest pending append acknowledged (the log has it; it is not fed yet). */
static void feeding_complete(int err) {
  assert_true(feeding.npending > 0);
  sl_frame_t *f = feeding.pending[0];
  sl_history_done_cb done = feeding.done[0];
  void *arg = feeding.arg[0];
  memmove(feeding.pending, feeding.pending + 1, (feeding.npending - 1) * sizeof feeding.pending[0]);
  memmove(feeding.done, feeding.done + 1, (feeding.npending - 1) * sizeof feeding.done[0]);
  memmove(feeding.arg, feeding.arg + 1, (feeding.npending - 1) * sizeof feeding.arg[0]);
  feeding.npending--;
  f->seq = 0;
  done(f, err, arg);
  sl__frame_unref(f);
}

static int setup_feeding(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  memset(&feeding, 0, sizeof feeding);
  feeding.base.ops = &feeding_ops;
  feeding.seq = 1ull << 32;
  sl_config_init(&F.cfg);
  F.cfg.listen[0] = "127.0.0.1:0";
  F.cfg.listen_count = 1;
  F.pacer.count = 1;
  F.pacer.members = F.members;
  F.members[0] = &F.w.dlv;
  char err[256];
  assert_int_equal(sl__admission_init(&F.admission, 0, 0), 0);
  assert_int_equal(sl__worker_init(&F.w, 0, &F.cfg, &F.pacer, &F.admission, NULL, NULL, NULL, NULL, err,
                                   sizeof err), 0);
  F.h = &feeding.base;
  assert_int_equal(sl__bus_init(&F.bus, F.h), 0);
  return 0;
}

static void test_feed_delivers_what_the_log_holds(void **state) {
  (void)state;
  assert_int_equal(feeding.feed_calls, 1); /* the bus started the feed */
  /* Fed before the workers exist: posted to nobody, and the workers start after it. */
  feeding_feed("before");
  sl__bus_attach(&F.bus, &F.w, 1);
  assert_int_equal(F.w.dlv.dispatched_seq, (1ull << 32) + 1);
  assert_int_equal(inbox_len(), 0);
  /* Another hub's update: delivered from the feed. */
  feeding_feed("theirs");
  assert_int_equal(inbox_len(), 1);
  assert_true(frame_has(0, "theirs"));
  /* Ours: acknowledged by the log, answered, but not posted: it comes back through the feed, in
   * the log's order, after "later" which another hub appended first. */
  memset(answers, 0, sizeof answers);
  answers[0].pending.call.fn = answer_run;
  sl_update_t u = update_of("ours");
  char id[64];
  const char *why = NULL;
  uint64_t seq = 0;
  assert_int_equal(sl__bus_publish_async(&F.bus, &u, id, sizeof id, &seq, &why, &F.w,
                                         &answers[0].pending), 1);
  feeding_complete(0);
  assert_int_equal(inbox_len(), 1);
  assert_ptr_equal(calls(), &answers[0].pending.call);
  assert_int_equal(answers[0].pending.err, 0);
  assert_int_equal(answers[0].pending.seq, (1ull << 32) + 2); /* where the feed stood */
  feeding_feed("later");
  feeding_feed("ours");
  assert_int_equal(inbox_len(), 3);
  assert_true(frame_has(1, "later"));
  assert_true(frame_has(2, "ours"));
  /* After the drain message, nothing more reaches the workers. */
  sl__bus_close(&F.bus);
  assert_int_equal(inbox_len(), 4);
  feeding_feed("after the drain");
  assert_int_equal(inbox_len(), 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_publish_waits_for_later_completion, setup_fake, teardown),
    cmocka_unit_test_setup_teardown(test_two_publishes_posted_in_history_order, setup_fake, teardown),
    cmocka_unit_test_setup_teardown(test_failed_append_posts_nothing, setup_fake, teardown),
    cmocka_unit_test_setup_teardown(test_hub_publish_does_not_wait, setup_fake, teardown),
    cmocka_unit_test_setup_teardown(test_invalid_updates_refused, setup_fake, teardown),
    cmocka_unit_test_setup_teardown(test_closed_bus_refuses, setup_fake, teardown),
    cmocka_unit_test_setup_teardown(test_close_while_pending_drains_after_frame, setup_fake,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_workers_start_at_history_seq, setup_fake, teardown),
    cmocka_unit_test_setup_teardown(test_async_publish_answers_through_worker, setup_fake,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_async_publish_inline_with_memory, setup_memory, teardown),
    cmocka_unit_test_setup_teardown(test_completion_after_detach_runs_at_destroy, setup_fake,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_replay_pages_after_id, setup_memory, teardown),
    cmocka_unit_test_setup_teardown(test_feed_delivers_what_the_log_holds, setup_feeding,
                                    teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
