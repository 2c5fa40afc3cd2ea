/* metrics.h — counters each worker owns (written by its thread only, read by anyone, relaxed
 * atomics so there is no lock and no shared cache line on the hot path), and their rendering as
 * Prometheus text. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SL_LATENCY_BUCKETS 14

typedef struct sl_metrics_s {
  atomic_uint_fast64_t connections;        /* open now */
  atomic_uint_fast64_t subscribers;        /* open streams now */
  atomic_uint_fast64_t accepted_total;
  atomic_uint_fast64_t adopted_total;      /* connections taken over from another process */
  atomic_uint_fast64_t published_total;    /* publishes answered 200 on this worker */
  atomic_uint_fast64_t delivered_total;    /* update frames fully written to subscribers */
  atomic_uint_fast64_t bytes_out_total;
  atomic_uint_fast64_t writes_total;       /* sendmsg calls to clients: delivered/writes = batching */
  atomic_uint_fast64_t slow_disconnects_total;
  atomic_uint_fast64_t lost_update_ends_total; /* streams ended because updates never reached
                                                  their worker (out of memory) */
  atomic_uint_fast64_t resumes_total;      /* subscriptions that came with a Last-Event-ID */
  atomic_uint_fast64_t resumes_last_second;/* gauge: resumes in the last whole second */
  atomic_uint_fast64_t replayed_total;     /* updates sent from history on resume */
  atomic_uint_fast64_t replay_checks_total;/* topic lookups and selector tests replays made */
  atomic_uint_fast64_t replays_overtaken_total; /* paged replays ended because retention dropped
                                                   what they had still to send */
  atomic_uint_fast64_t queued_bytes;       /* gauge: bytes queued to clients and not written */
  atomic_uint_fast64_t requests_total;
  atomic_uint_fast64_t errors_total;       /* 4xx/5xx answers */
  atomic_uint_fast64_t forced_total;       /* connections closed hard at the shutdown timeout */
  atomic_uint_fast64_t drained_total;      /* streams that got the close frame and a clean end */
  atomic_uint_fast64_t held_total;         /* publish answers that waited for delivery (pace.c) */
  atomic_uint_fast64_t emfile_total;       /* accept() failures for lack of descriptors */
  atomic_uint_fast64_t refused_full_total; /* connections refused at --max-connections */
  atomic_uint_fast64_t refused_client_total; /* refused at --max-conns-per-ip */
  atomic_uint_fast64_t rate_limited_total; /* requests answered 429 by --rate-per-ip/-token */
  atomic_uint_fast64_t latency_bucket[SL_LATENCY_BUCKETS + 1]; /* publish latency; last = +Inf */
  atomic_uint_fast64_t latency_sum_ns;
} sl_metrics_t;

/* Upper bounds of the publish latency buckets, in seconds. */
extern const double sl__latency_bounds[SL_LATENCY_BUCKETS];

static inline void sl__metric_add(atomic_uint_fast64_t *c, uint64_t n) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}
static inline void sl__metric_sub(atomic_uint_fast64_t *c, uint64_t n) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n, memory_order_relaxed);
}
static inline uint64_t sl__metric_get(const atomic_uint_fast64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

void sl__metrics_observe_latency(sl_metrics_t *m, uint64_t ns);

/* Sums n per-worker metric blocks into *out (plain numbers in the same layout). */
void sl__metrics_sum(const sl_metrics_t *const *blocks, size_t n, sl_metrics_t *out);

/* Hub-wide values that are not per-worker counters. */
typedef struct sl_metrics_extra_s {
  int ready;
  int draining;
  uint64_t workers;
  uint64_t history_size;
  uint64_t history_max_bytes;
  uint64_t history_entries;
  uint64_t history_bytes;
  int subscriptions;             /* 1: --subscriptions is on (then the gauge below is shown) */
  uint64_t subscriptions_active;
  uint64_t subscriptions_history;     /* --subscriptions-history */
  uint64_t subscription_events_lost;  /* subscription events history failed to store */
} sl_metrics_extra_t;

/* Renders Prometheus text exposition into a malloc'ed buffer. NULL when out of memory. */
char *sl__metrics_render(const sl_metrics_t *sum, const sl_metrics_extra_t *extra, size_t *len);

#endif
