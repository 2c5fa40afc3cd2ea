/* shutdown.c — the graceful drain state machine (see shutdown.h), on a control thread with its
 * own small loop so its timers run whatever the workers are doing. It never touches a connection:
 * it tells workers what to do through their inboxes and flags, and they report back when empty. */
#include "core/shutdown.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/hub.h"
#include "common/log.h"

int sl__shutdown_init(sl_shutdown_t *s) {
  memset(s, 0, sizeof *s);
  atomic_init(&s->state, SL_SHUTDOWN_RUNNING);
  return uv_mutex_init(&s->lock);
}

static sl_hub_t *hub_of(uv_handle_t *h) {
  return h->loop->data;
}

/* Every worker, under the publish lock: no wake-up can cross a worker's stop. */
static void wake_workers(sl_hub_t *hub) {
  uv_mutex_lock(&hub->publish_lock);
  for (unsigned i = 0; i < hub->worker_count; i++)
    sl_worker_wake(&hub->workers[i]);
  uv_mutex_unlock(&hub->publish_lock);
}

/* Connections open now plus every one accepted so far: what has ended since is this sum's growth
 * minus the open count's. */
static uint64_t connections_seen(sl_hub_t *hub, uint64_t *open) {
  uint64_t seen = 0;
  *open = 0;
  for (unsigned i = 0; i < hub->worker_count; i++) {
    *open += sl_metric_get(&hub->workers[i].metrics.connections);
    seen += sl_metric_get(&hub->workers[i].metrics.accepted_total);
  }
  return seen;
}

static uint64_t streams_open(sl_hub_t *hub) {
  uint64_t n = 0;
  for (unsigned i = 0; i < hub->worker_count; i++)
    n += sl_metric_get(&hub->workers[i].metrics.subscribers);
  return n;
}

/* DELAYING -> DRAINING: stop taking updates; the drain message follows every accepted update in
 * each inbox, so a worker starts ending streams only after delivering all of them. */
static void begin_drain(sl_hub_t *hub) {
  sl_shutdown_t *s = &hub->shutdown;
  if (atomic_load(&s->state) != SL_SHUTDOWN_DELAYING)
    return;
  atomic_store(&s->state, SL_SHUTDOWN_DRAINING);
  uv_timer_stop(&s->delay_timer);
  uv_mutex_lock(&hub->publish_lock);
  hub->closed = 1;
  for (unsigned i = 0; i < hub->worker_count; i++) {
    sl_worker_post(&hub->workers[i], SL_MSG_DRAIN, NULL);
    sl_worker_wake(&hub->workers[i]);
  }
  uv_mutex_unlock(&hub->publish_lock);
  sl_log(SL_LOG_INFO, "drain: listeners closed, no new updates; ending %llu streams at an "
         "event boundary", (unsigned long long)streams_open(hub));
}

static void force(sl_hub_t *hub) {
  sl_shutdown_t *s = &hub->shutdown;
  int st = atomic_load(&s->state);
  if (st == SL_SHUTDOWN_FORCING || st == SL_SHUTDOWN_DONE)
    return;
  begin_drain(hub);
  atomic_store(&s->state, SL_SHUTDOWN_FORCING);
  atomic_store(&s->force_requested, 1);
  sl_log(SL_LOG_WARN, "drain: closing the %llu connections still open",
         (unsigned long long)streams_open(hub));
  wake_workers(hub);
}

static void finish(sl_hub_t *hub) {
  sl_shutdown_t *s = &hub->shutdown;
  sl_drain_report_t *rep = &s->report;
  memset(rep, 0, sizeof *rep);
  for (unsigned i = 0; i < hub->worker_count; i++) {
    rep->streams_drained += sl_metric_get(&hub->workers[i].metrics.drained_total);
    rep->updates_flushed += sl_metric_get(&hub->workers[i].drain_flushed);
  }
  uint64_t open;
  uint64_t accepted = connections_seen(hub, &open);
  /* open at the start + accepted since - still open (none, unless a worker failed to end) */
  rep->connections_closed = s->open_at_start + (accepted - s->accepted_at_start) - open;
  rep->forced = atomic_load(&s->forced);
  rep->seconds = (double)(uv_hrtime() - s->started_ns) / 1e9;
  atomic_store(&s->state, SL_SHUTDOWN_DONE);
  sl_log(rep->forced ? SL_LOG_WARN : SL_LOG_INFO,
         "drain: done in %.3f s: %llu streams drained, %llu updates flushed, %llu connections "
         "forced, %llu connections ended in all", rep->seconds,
         (unsigned long long)rep->streams_drained, (unsigned long long)rep->updates_flushed,
         (unsigned long long)rep->forced, (unsigned long long)rep->connections_closed);
  if (s->cb)
    s->cb(hub, rep, s->cb_arg);
  wake_workers(hub); /* they see DONE and close their handles */
  uv_close((uv_handle_t *)&s->wakeup, NULL);
  uv_close((uv_handle_t *)&s->delay_timer, NULL);
  uv_close((uv_handle_t *)&s->deadline_timer, NULL);
}

static void on_wakeup(uv_async_t *h) {
  sl_hub_t *hub = hub_of((uv_handle_t *)h);
  sl_shutdown_t *s = &hub->shutdown;
  if (atomic_load(&s->state) == SL_SHUTDOWN_DONE)
    return;
  if (atomic_load(&s->force_requested))
    force(hub);
  if (atomic_load(&s->workers_done) == hub->worker_count)
    finish(hub);
}

static void on_delay(uv_timer_t *t) {
  begin_drain(hub_of((uv_handle_t *)t));
}

static void on_deadline(uv_timer_t *t) {
  sl_hub_t *hub = hub_of((uv_handle_t *)t);
  sl_log(SL_LOG_WARN, "drain: --shutdown-timeout %.1f s passed", hub->shutdown.timeout);
  force(hub);
}

static void control_main(void *arg) {
  sl_shutdown_t *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

int sl__shutdown_request(sl_hub_t *hub, double timeout, sl_shutdown_cb cb, void *arg) {
  sl_shutdown_t *s = &hub->shutdown;
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
  s->timeout = timeout;
  s->cb = cb;
  s->cb_arg = arg;
  s->started_ns = uv_hrtime();
  s->accepted_at_start = connections_seen(hub, &s->open_at_start);
  atomic_store(&hub->ready, 0);
  if ((r = uv_loop_init(&s->loop)))
    goto out;
  s->loop.data = hub;
  uv_async_init(&s->loop, &s->wakeup, on_wakeup);
  uv_timer_init(&s->loop, &s->delay_timer);
  uv_timer_init(&s->loop, &s->deadline_timer);
  atomic_store(&s->state, SL_SHUTDOWN_DELAYING);
  sl_log(SL_LOG_INFO, "drain: began with %llu streams open; readiness down, serving for "
         "--drain-delay %.1f s, at most --shutdown-timeout %.1f s",
         (unsigned long long)streams_open(hub), hub->cfg.drain_delay, timeout);
  uv_timer_start(&s->delay_timer, on_delay, (uint64_t)(hub->cfg.drain_delay * 1000), 0);
  uv_timer_start(&s->deadline_timer, on_deadline, (uint64_t)(timeout * 1000), 0);
  if ((r = uv_thread_create(&s->thread, control_main, s)) == 0)
    s->thread_started = 1;
out:
  uv_mutex_unlock(&s->lock);
  return r;
}

void sl__shutdown_worker_done(sl_hub_t *hub) {
  atomic_fetch_add(&hub->shutdown.workers_done, 1);
  uv_async_send(&hub->shutdown.wakeup);
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
