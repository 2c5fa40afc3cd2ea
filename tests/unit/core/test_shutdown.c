/* test_shutdown.c — shutdown.c, the drain state machine, through fake ops that record each call:
 * a request calls begin at once (on the requesting thread) and drain only after drain_delay;
 * every worker done finishes the drain with a report made of the count op's numbers, calls the
 * user's callback once and then stop; a second request forces (force op, after drain); the
 * timeout forces too. The control thread is real; the test waits for it in 1 ms steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/shutdown.h"

#define WAIT_STEP_US 1000
#define WAIT_MAX_STEPS 2000

typedef struct fake_s {
  atomic_int begin, drain, force, stop, count, cb;
  atomic_int ended;              /* 1: count reports the end numbers */
  atomic_uint_fast64_t drain_at_ns, force_at_ns, stop_at_ns, cb_at_ns;
  uv_thread_t begin_thread;
  sl_drain_report_t report;      /* written by the callback (control thread), read after join */
  sl_hub_t *cb_hub;
  void *cb_arg;
} fake_t;

static fake_t K;
static sl_shutdown_t S;
static char hub_tag;

static void op_begin(void *arg) {
  assert_ptr_equal(arg, &K);
  atomic_fetch_add(&K.begin, 1);
  K.begin_thread = uv_thread_self();
}
static void op_drain(void *arg) {
  (void)arg;
  atomic_store(&K.drain_at_ns, uv_hrtime());
  atomic_fetch_add(&K.drain, 1);
}
static void op_force(void *arg) {
  (void)arg;
  atomic_store(&K.force_at_ns, uv_hrtime());
  atomic_fetch_add(&K.force, 1);
}
static void op_stop(void *arg) {
  (void)arg;
  atomic_store(&K.stop_at_ns, uv_hrtime());
  atomic_fetch_add(&K.stop, 1);
}
static void op_count(void *arg, sl_shutdown_counts_t *out) {
  (void)arg;
  atomic_fetch_add(&K.count, 1);
  if (!atomic_load(&K.ended)) {
    out->streams_open = 3;
    out->open = 5;
    out->accepted = 100;
  } else {
    out->open = 0;
    out->accepted = 103;
    out->drained = 4;
    out->flushed = 7;
    out->forced = 2;
  }
}

static const sl_shutdown_ops_t ops = {
  .begin = op_begin, .drain = op_drain, .force = op_force, .stop = op_stop, .count = op_count,
};

static void on_drained(sl_hub_t *hub, const sl_drain_report_t *report, void *arg) {
  K.cb_hub = hub;
  K.cb_arg = arg;
  K.report = *report;
  atomic_store(&K.cb_at_ns, uv_hrtime());
  atomic_fetch_add(&K.cb, 1);
}

static int setup(void **state) {
  (void)state;
  memset(&K, 0, sizeof K);
  assert_int_equal(sl__shutdown_init(&S, (sl_hub_t *)(void *)&hub_tag, &ops, &K), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  /* A test that failed midway leaves the control thread waiting for workers: end it. */
  if (S.thread_started && atomic_load(&S.state) != SL_SHUTDOWN_DONE) {
    atomic_store(&K.ended, 1);
    while (atomic_load(&S.workers_done) < S.worker_count)
      sl__shutdown_worker_done(&S);
  }
  sl__shutdown_destroy(&S);
  return 0;
}

static int wait_for(atomic_int *v, int want) {
  for (int i = 0; i < WAIT_MAX_STEPS && atomic_load(v) < want; i++)
    usleep(WAIT_STEP_US);
  return atomic_load(v);
}

static void finish_workers(unsigned n) {
  atomic_store(&K.ended, 1);
  for (unsigned i = 0; i < n; i++)
    sl__shutdown_worker_done(&S);
  assert_int_equal(wait_for(&K.stop, 1), 1);
  sl__shutdown_join(&S);
}

static void test_drain_after_delay_then_finish(void **state) {
  (void)state;
  uint64_t t0 = uv_hrtime();
  assert_int_equal(sl__shutdown_request(&S, 2, 0.05, 10.0, on_drained, &K), 0);
  /* begin at once, on this thread; the drain waits for the delay. */
  assert_int_equal(atomic_load(&K.begin), 1);
  uv_thread_t self = uv_thread_self();
  assert_true(uv_thread_equal(&K.begin_thread, &self));
  assert_int_equal(atomic_load(&S.state), SL_SHUTDOWN_DELAYING);
  assert_true(sl__shutdown_draining(&S));
  assert_int_equal(atomic_load(&K.drain), 0);
  assert_int_equal(wait_for(&K.drain, 1), 1);
  assert_true(atomic_load(&K.drain_at_ns) - t0 >= 45 * 1000000ull);
  assert_int_equal(atomic_load(&S.state), SL_SHUTDOWN_DRAINING);

  /* One worker of two is not enough. */
  sl__shutdown_worker_done(&S);
  usleep(20 * 1000);
  assert_int_equal(atomic_load(&K.cb), 0);
  assert_int_equal(atomic_load(&K.stop), 0);
  finish_workers(1);

  assert_int_equal(atomic_load(&K.cb), 1);
  assert_int_equal(atomic_load(&K.stop), 1);
  assert_int_equal(atomic_load(&K.force), 0);
  assert_true(atomic_load(&K.cb_at_ns) <= atomic_load(&K.stop_at_ns)); /* reported, then stopped */
  assert_ptr_equal(K.cb_hub, &hub_tag);
  assert_ptr_equal(K.cb_arg, &K);
  assert_int_equal(K.report.streams_drained, 4);
  assert_int_equal(K.report.updates_flushed, 7);
  assert_int_equal(K.report.connections_closed, 5 + 3); /* open at start + accepted since */
  assert_int_equal(K.report.forced, 2);
  assert_true(K.report.seconds > 0.04 && K.report.seconds < 2.0);
  assert_int_equal(sl__shutdown_forced(&S), 2);
  assert_int_equal(atomic_load(&S.state), SL_SHUTDOWN_DONE);
  assert_false(sl__shutdown_draining(&S));
  /* Asked again once it is over: nothing happens. */
  assert_int_equal(sl__shutdown_request(&S, 2, 0, 10.0, on_drained, &K), 0);
  assert_int_equal(atomic_load(&K.begin), 1);
  assert_int_equal(atomic_load(&K.cb), 1);
}

static void test_second_request_forces(void **state) {
  (void)state;
  assert_int_equal(sl__shutdown_request(&S, 1, 10.0, 10.0, on_drained, NULL), 0);
  usleep(10 * 1000);
  assert_int_equal(atomic_load(&K.drain), 0); /* the delay is long */
  assert_int_equal(sl__shutdown_request(&S, 1, 10.0, 10.0, on_drained, NULL), 0);
  assert_int_equal(wait_for(&K.force, 1), 1);
  assert_int_equal(atomic_load(&K.drain), 1); /* a forced end still drains first */
  assert_true(atomic_load(&K.drain_at_ns) <= atomic_load(&K.force_at_ns));
  assert_int_equal(atomic_load(&K.begin), 1);
  assert_int_equal(atomic_load(&S.state), SL_SHUTDOWN_FORCING);
  finish_workers(1);
  assert_int_equal(atomic_load(&K.cb), 1);
  assert_int_equal(atomic_load(&K.force), 1);
  assert_int_equal(atomic_load(&S.state), SL_SHUTDOWN_DONE);
}

static void test_timeout_forces(void **state) {
  (void)state;
  uint64_t t0 = uv_hrtime();
  assert_int_equal(sl__shutdown_request(&S, 1, 0, 0.05, NULL, NULL), 0);
  assert_int_equal(wait_for(&K.drain, 1), 1);
  assert_int_equal(wait_for(&K.force, 1), 1);
  assert_true(atomic_load(&K.force_at_ns) - t0 >= 45 * 1000000ull);
  finish_workers(1);
  assert_int_equal(atomic_load(&K.cb), 0); /* no callback given */
  assert_int_equal(atomic_load(&K.stop), 1);
  assert_int_equal(sl__shutdown_forced(&S), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_drain_after_delay_then_finish, setup, teardown),
    cmocka_unit_test_setup_teardown(test_second_request_forces, setup, teardown),
    cmocka_unit_test_setup_teardown(test_timeout_forces, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
