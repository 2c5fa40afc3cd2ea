/* shutdown.c — the graceful drain state machine (see shutdown.h), on a control thread with its
 * own small loop so its timers run whatever the workers are doing. It never touches a connection
 * or a worker: it acts through the ops the hub gave it, and the workers report back when empty. */
#include "core/shutdown.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define MS_PER_S 1000

int sl__shutdown_init(sl_shutdown_t *s, sl_hub_t *hub, const sl_shutdown_ops_t *ops, void *arg) {
  memset(s, 0, sizeof *s);
  atomic_init(&s->state, SL_SHUTDOWN_RUNNING);
  s->hub = hub;
  s->ops = ops;
  s->ops_arg = arg;
  return uv_mutex_init(&s->lock);
}

static sl_shutdown_t *shutdown_of(uv_handle_t *h) {
  return h->loop->data;
}

static sl_shutdown_counts_t counts(sl_shutdown_t *s) {
  sl_shutdown_counts_t c;
  memset(&c, 0, sizeof c);
  s->ops->count(s->ops_arg, &c);
  return c;
}

/* DELAYING -> DRAINING: stop taking updates; the drain message follows every accepted update in
 * each inbox, so a worker starts ending streams only after delivering all of them. */
static void begin_drain(sl_shutdown_t *s) {
  if (atomic_load(&s->state) != SL_SHUTDOWN_DELAYING)
    return;
  atomic_store(&s->state, SL_SHUTDOWN_DRAINING);
  uv_timer_stop(&s->delay_timer);
  s->ops->drain(s->ops_arg);
  sl__log(SL_LOG_INFO, "drain: listeners closed, no new updates; ending %llu streams at an "
         "event boundary", (unsigned long long)counts(s).streams_open);
}

static void force(sl_shutdown_t *s) {
  int st = atomic_load(&s->state);
  if (st == SL_SHUTDOWN_FORCING || st == SL_SHUTDOWN_DONE)
    return;
  begin_drain(s);
  atomic_store(&s->state, SL_SHUTDOWN_FORCING);
  sl__log(SL_LOG_WARN, "drain: closing the %llu connections still open",
         (unsigned long long)counts(s).open);
  s->ops->force(s->ops_arg);
}

static void finish(sl_shutdown_t *s) {
  sl_drain_report_t *rep = &s->report;
  sl_shutdown_counts_t c = counts(s);
  memset(rep, 0, sizeof *rep);
  rep->streams_drained = c.drained;
  rep->updates_flushed = c.flushed;
  /* open at the start + accepted since - still open (none, unless a worker failed to end) */
  rep->connections_closed = s->open_at_start + (c.accepted - s->accepted_at_start) - c.open;
  rep->forced = c.forced;
  atomic_store(&s->forced, c.forced);
  rep->seconds = (double)(uv_hrtime() - s->started_ns) / 1e9;
  atomic_store(&s->state, SL_SHUTDOWN_DONE);
  sl__log(rep->forced ? SL_LOG_WARN : SL_LOG_INFO,
         "drain: done in %.3f s: %llu streams drained, %llu updates flushed, %llu connections "
         "forced, %llu connections ended in all", rep->seconds,
         (unsigned long long)rep->streams_drained, (unsigned long long)rep->updates_flushed,
         (unsigned long long)rep->forced, (unsigned long long)rep->connections_closed);
  if (s->cb)
    s->cb(s->hub, rep, s->cb_arg);
  s->ops->stop(s->ops_arg); /* the workers end their loops */
  uv_close((uv_handle_t *)&s->wakeup, NULL);
  uv_close((uv_handle_t *)&s->delay_timer, NULL);
  uv_close((uv_handle_t *)&s->deadline_timer, NULL);
}

static void on_wakeup(uv_async_t *h) {
  sl_shutdown_t *s = shutdown_of((uv_handle_t *)h);
  if (atomic_load(&s->state) == SL_SHUTDOWN_DONE)
    return;
  if (atomic_load(&s->force_requested))
    force(s);
  if (atomic_load(&s->workers_done) == s->worker_count)
    finish(s);
}

static void on_delay(uv_timer_t *t) {
  begin_drain(shutdown_of((uv_handle_t *)t));
}

static void on_deadline(uv_timer_t *t) {
  sl_shutdown_t *s = shutdown_of((uv_handle_t *)t);
  sl__log(SL_LOG_WARN, "drain: --shutdown-timeout %.1f s passed", s->timeout);
  force(s);
}

static void control_main(void *arg) {
  sl_shutdown_t *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int sl__shutdown_request(sl_shutdown_t *s, unsigned worker_count, double drain_delay,
                         double timeout, sl_shutdown_cb cb, void *arg) {
  int r = 0;
  uv_mutex_lock(&s->lock);
  int st = atomic_load(&s->state);
  if (st != SL_SHUTDOWN_RUNNING) {
    /* A second request: end it now. */
    if (st != SL_SHUTDOWN_DONE && s->thread_started) {
      atomic_store(&s->force_requested, 1);
      uv_async_send(&s->wakeup);
    }
    uv_mutex_unlock(&s->lock);
    return 0;
  }
  s->worker_count = worker_count;
  s->drain_delay = drain_delay;
  s->timeout = timeout;
  s->cb = cb;
  s->cb_arg = arg;
  s->started_ns = uv_hrtime();
  sl_shutdown_counts_t c = counts(s);
  s->open_at_start = c.open;
  s->accepted_at_start = c.accepted;
  s->ops->begin(s->ops_arg);
  if ((r = uv_loop_init(&s->loop)))
    goto out;
  s->loop.data = s;
  if ((r = uv_async_init(&s->loop, &s->wakeup, on_wakeup)) ||
      (r = uv_timer_init(&s->loop, &s->delay_timer)) ||
      (r = uv_timer_init(&s->loop, &s->deadline_timer)))
    goto out_loop;
  atomic_store(&s->state, SL_SHUTDOWN_DELAYING);
  sl__log(SL_LOG_INFO, "drain: began with %llu streams open; readiness down, serving for "
         "--drain-delay %.1f s, at most --shutdown-timeout %.1f s",
         (unsigned long long)c.streams_open, drain_delay, timeout);
  if ((r = uv_timer_start(&s->delay_timer, on_delay, (uint64_t)(drain_delay * MS_PER_S), 0)) ||
      (r = uv_timer_start(&s->deadline_timer, on_deadline, (uint64_t)(timeout * MS_PER_S), 0)))
    goto out_loop;
  if ((r = uv_thread_create(&s->thread, control_main, s)) == 0) {
    s->thread_started = 1;
    goto out;
  }
out_loop:
  /* The handles made so far go with the loop; the hub stays RUNNING and may be asked again. */
  atomic_store(&s->state, SL_SHUTDOWN_RUNNING);
  uv_walk(&s->loop, close_walk, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
out:
  uv_mutex_unlock(&s->lock);
  return r;
}

void sl__shutdown_worker_done(sl_shutdown_t *s) {
  atomic_fetch_add(&s->workers_done, 1);
  uv_async_send(&s->wakeup);
}

int sl__shutdown_draining(sl_shutdown_t *s) {
  int st = atomic_load(&s->state);
  return st != SL_SHUTDOWN_RUNNING && st != SL_SHUTDOWN_DONE;
}

uint64_t sl__shutdown_forced(sl_shutdown_t *s) {
  return atomic_load(&s->forced);
}

void sl__shutdown_join(sl_shutdown_t *s) {
  uv_mutex_lock(&s->lock);
  int started = s->thread_started;
  s->thread_started = 0;
  uv_mutex_unlock(&s->lock);
  if (started) {
    uv_thread_join(&s->thread);
    uv_loop_close(&s->loop);
  }
}

void sl__shutdown_destroy(sl_shutdown_t *s) {
  sl__shutdown_join(s);
  uv_mutex_destroy(&s->lock);
}
