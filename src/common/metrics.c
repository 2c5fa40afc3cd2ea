/* metrics.c — aggregation of per-worker counters and the Prometheus text format. */
#include "common/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double sl__latency_bounds[SL_LATENCY_BUCKETS] = {
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
  0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
};

void sl__metrics_observe_latency(sl_metrics_t *m, uint64_t ns) {
  double s = (double)ns / 1e9;
  size_t i = 0;
  while (i < SL_LATENCY_BUCKETS && s > sl__latency_bounds[i])
    i++;
  sl__metric_add(&m->latency_bucket[i], 1);
  sl__metric_add(&m->latency_sum_ns, ns);
}

void sl__metrics_sum(const sl_metrics_t *const *blocks, size_t n, sl_metrics_t *out) {
  const size_t count = sizeof(sl_metrics_t) / sizeof(atomic_uint_fast64_t);
  memset(out, 0, sizeof *out);
  atomic_uint_fast64_t *dst = (atomic_uint_fast64_t *)out;
  for (size_t b = 0; b < n; b++) {
    const atomic_uint_fast64_t *src = (const atomic_uint_fast64_t *)blocks[b];
    for (size_t i = 0; i < count; i++)
      sl__metric_add(&dst[i], sl__metric_get(&src[i]));
  }
}

typedef struct buf_s {
  char *p;
  size_t len, cap;
  int failed;
} buf_t;

static void emit(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(buf_t *b, const char *fmt, ...) {
  if (b->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    char *p = realloc(b->p, b->cap * 2);
    if (p == NULL) {
      b->failed = 1;
      return;
    }
    b->p = p;
    b->cap *= 2;
  }
}

static void metric(buf_t *b, const char *name, const char *type, const char *help, uint64_t v) {
  emit(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
       (unsigned long long)v);
}

char *sl__metrics_render(const sl_metrics_t *m, const sl_metrics_extra_t *x, size_t *len) {
  buf_t b = {malloc(4096), 0, 4096, 0};
  if (b.p == NULL)
    return NULL;
  metric(&b, "sluice_up", "gauge", "1 while the process lives.", 1);
  metric(&b, "sluice_ready", "gauge", "1 while accepting new connections and updates.", (uint64_t)x->ready);
  metric(&b, "sluice_draining", "gauge", "1 while a graceful shutdown is draining streams.", (uint64_t)x->draining);
  metric(&b, "sluice_workers", "gauge", "Event-loop threads.", x->workers);
  metric(&b, "sluice_connections", "gauge", "Open client connections.", sl__metric_get(&m->connections));
  metric(&b, "sluice_subscribers", "gauge", "Open event streams.", sl__metric_get(&m->subscribers));
  metric(&b, "sluice_streams_remaining", "gauge", "Event streams not yet ended (same as sluice_subscribers; watch it fall during a drain).", sl__metric_get(&m->subscribers));
  metric(&b, "sluice_connections_accepted_total", "counter", "Connections accepted.", sl__metric_get(&m->accepted_total));
  metric(&b, "sluice_connections_adopted_total", "counter", "Connections taken over from the previous process in a live upgrade.", sl__metric_get(&m->adopted_total));
  metric(&b, "sluice_requests_total", "counter", "HTTP requests handled.", sl__metric_get(&m->requests_total));
  metric(&b, "sluice_errors_total", "counter", "Requests answered with a 4xx or 5xx status.", sl__metric_get(&m->errors_total));
  metric(&b, "sluice_published_total", "counter", "Updates accepted (answered 200).", sl__metric_get(&m->published_total));
  metric(&b, "sluice_delivered_total", "counter", "Updates fully written to subscribers.", sl__metric_get(&m->delivered_total));
  metric(&b, "sluice_bytes_out_total", "counter", "Bytes written to clients.", sl__metric_get(&m->bytes_out_total));
  metric(&b, "sluice_writes_total", "counter", "Writes (sendmsg calls) to clients; delivered over writes is how many updates a write carried (--flush-window).", sl__metric_get(&m->writes_total));
  metric(&b, "sluice_publish_held_total", "counter", "Publish answers that waited for delivery to catch up (--max-pending back-pressure).", sl__metric_get(&m->held_total));
  metric(&b, "sluice_lost_update_ends_total", "counter", "Streams ended because updates did not reach their worker (out of memory); their clients resume from history.", sl__metric_get(&m->lost_update_ends_total));
  metric(&b, "sluice_connections_refused_full_total", "counter", "Connections answered 503 because the hub held --max-connections.", sl__metric_get(&m->refused_full_total));
  metric(&b, "sluice_connections_refused_per_ip_total", "counter", "Connections answered 429 because their address held --max-conns-per-ip.", sl__metric_get(&m->refused_client_total));
  metric(&b, "sluice_rate_limited_total", "counter", "Publishes and subscriptions answered 429 by --rate-per-ip or --rate-per-token.", sl__metric_get(&m->rate_limited_total));
  metric(&b, "sluice_slow_consumer_disconnects_total", "counter", "Subscribers cut because their queue passed --max-queue.", sl__metric_get(&m->slow_disconnects_total));
  metric(&b, "sluice_replay_checks_total", "counter", "Topic lookups and selector tests that filtering resumed streams' history cost (the work resumes cause).", sl__metric_get(&m->replay_checks_total));
  metric(&b, "sluice_resumes_total", "counter", "Subscriptions that arrived with a Last-Event-ID (reconnects).", sl__metric_get(&m->resumes_total));
  metric(&b, "sluice_resumes_per_second", "gauge", "Subscriptions with a Last-Event-ID in the last second.", sl__metric_get(&m->resumes_last_second));
  metric(&b, "sluice_replayed_total", "counter", "Updates sent from history on resume.", sl__metric_get(&m->replayed_total));
  metric(&b, "sluice_replays_overtaken_total", "counter", "Resumed streams ended because retention dropped updates their paged replay had still to send; their clients come back and are told earliest.", sl__metric_get(&m->replays_overtaken_total));
  metric(&b, "sluice_queued_bytes", "gauge", "Bytes queued to clients and not yet written (a paged replay keeps at most a window of them per stream).", sl__metric_get(&m->queued_bytes));
  metric(&b, "sluice_drained_streams_total", "counter", "Streams ended cleanly by a graceful shutdown.", sl__metric_get(&m->drained_total));
  metric(&b, "sluice_forced_closes_total", "counter", "Connections closed hard when the shutdown timeout passed.", sl__metric_get(&m->forced_total));
  metric(&b, "sluice_accept_emfile_total", "counter", "accept() failures for lack of file descriptors.", sl__metric_get(&m->emfile_total));
  metric(&b, "sluice_history_capacity", "gauge", "Updates the history keeps (--history-size).", x->history_size);
  metric(&b, "sluice_history_max_bytes", "gauge", "Bytes the retained updates may take (--history-max-bytes; with --data-dir, --data-max-size on disk).", x->history_max_bytes);
  metric(&b, "sluice_history_entries", "gauge", "Updates retained for resume now.", x->history_entries);
  metric(&b, "sluice_history_bytes", "gauge", "Bytes the retained updates take now (with --data-dir: the data file's used pages).", x->history_bytes);
  if (x->subscriptions)
    metric(&b, "sluice_subscriptions_active", "gauge", "Active subscriptions (--subscriptions): one per distinct topic matcher of each stream.", x->subscriptions_active);
  if (x->subscriptions) {
    metric(&b, "sluice_subscriptions_history_capacity", "gauge", "Subscription events the history keeps apart from the application's updates (--subscriptions-history).", x->subscriptions_history);
    metric(&b, "sluice_subscription_events_lost_total", "counter", "Subscription events history failed to store (logged): delivered to no one, absent from resumes.", x->subscription_events_lost);
  }

  emit(&b, "# HELP sluice_publish_latency_seconds Time from a publish request's arrival to its answer.\n"
           "# TYPE sluice_publish_latency_seconds histogram\n");
  uint64_t cum = 0;
  for (size_t i = 0; i < SL_LATENCY_BUCKETS; i++) {
    cum += sl__metric_get(&m->latency_bucket[i]);
    emit(&b, "sluice_publish_latency_seconds_bucket{le=\"%g\"} %llu\n", sl__latency_bounds[i],
         (unsigned long long)cum);
  }
  cum += sl__metric_get(&m->latency_bucket[SL_LATENCY_BUCKETS]);
  emit(&b, "sluice_publish_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  emit(&b, "sluice_publish_latency_seconds_sum %.9f\n", (double)sl__metric_get(&m->latency_sum_ns) / 1e9);
  emit(&b, "sluice_publish_latency_seconds_count %llu\n", (unsigned long long)cum);
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  *len = b.len;
  return b.p;
}
