/* pace.c — publish back-pressure (see pace.h): the held answers of one worker, a ring in publish
 * order, and the delivery floor they wait for. Waking a worker whose answers may go is server.c's
 * (it owns the loop). */
#include "net/pace.h"

#include <errno.h>
#include <stdlib.h>

#include "core/hub.h"

/* Every update up to the returned seq is written by every worker. */
static uint64_t delivery_floor(const sl_hub_t *hub) {
  uint64_t floor = UINT64_MAX;
  for (unsigned i = 0; i < hub->worker_count; i++) {
    uint64_t s = atomic_load(&hub->workers[i].flushed_seq);
    if (s < floor)
      floor = s;
  }
  return floor;
}

int sl_pace_waiting(const sl_hub_t *hub) {
  for (unsigned i = 0; i < hub->worker_count; i++)
    if (atomic_load_explicit(&hub->workers[i].held_count, memory_order_relaxed) > 0)
      return 1;
  return 0;
}

int sl_pace_recent(const sl_hub_t *hub, uint64_t window_ns) {
  uint64_t at = atomic_load_explicit(&hub->paced_at, memory_order_relaxed);
  return at != 0 && uv_hrtime() - at < window_ns;
}

static int ring_grow(sl_worker_t *w) {
  size_t cap = w->held_cap ? w->held_cap * 2 : 16;
  sl_held_t *q = malloc(cap * sizeof *q);
  if (q == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < w->held_len; i++)
    q[i] = w->held[(w->held_head + i) % w->held_cap];
  free(w->held);
  w->held = q;
  w->held_cap = cap;
  w->held_head = 0;
  return 0;
}

int sl_pace_hold(sl_conn_t *c, uint64_t seq, uint64_t start_ns) {
  sl_worker_t *w = c->worker;
  size_t max = w->hub->cfg.max_pending;
  /* Behind an answer already held on this connection, this one waits too (it is written after
   * it anyway), so that its latency is observed when it really goes. */
  if (max == 0 || (!(c->flags & SL_CONN_HELD) && seq <= delivery_floor(w->hub) + max))
    return 0;
  /* Out of memory for the ring: answer now; back-pressure is a courtesy, not a promise. */
  if (w->held_len == w->held_cap && ring_grow(w))
    return 0;
  sl_held_t *h = &w->held[(w->held_head + w->held_len) % w->held_cap];
  h->conn = c;
  h->seq = seq;
  h->start_ns = start_ns;
  w->held_len++;
  c->held_seq = seq;
  c->flags |= SL_CONN_HELD;
  /* Sequentially consistent, with the floor read again at the end of this turn (server.c calls
   * sl_pace_release): either a worker that progresses sees this count and wakes us, or we see its
   * progress. */
  atomic_store(&w->held_count, (int)w->held_len);
  atomic_store_explicit(&w->hub->paced_at, uv_hrtime(), memory_order_relaxed);
  sl_metric_add(&w->metrics.held_total, 1);
  return 1;
}

size_t sl_pace_release(sl_worker_t *w) {
  if (w->held_len == 0)
    return 0;
  uint64_t upto = delivery_floor(w->hub) + w->hub->cfg.max_pending;
  uint64_t now = uv_hrtime();
  size_t n = 0;
  while (w->held_len > 0) {
    sl_held_t *h = &w->held[w->held_head];
    if (h->seq > upto)
      break;
    if (h->conn) {
      sl_metrics_observe_latency(&w->metrics, now - h->start_ns);
      if (h->conn->held_seq == h->seq)
        sl_conn_unhold(h->conn); /* its last held answer: the connection writes again */
    }
    w->held_head = (w->held_head + 1) % w->held_cap;
    w->held_len--;
    n++;
  }
  atomic_store_explicit(&w->held_count, (int)w->held_len, memory_order_relaxed);
  if (n)
    atomic_store_explicit(&w->hub->paced_at, now, memory_order_relaxed);
  return n;
}

void sl_pace_forget(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  for (size_t i = 0; i < w->held_len; i++) {
    sl_held_t *h = &w->held[(w->held_head + i) % w->held_cap];
    if (h->conn == c)
      h->conn = NULL;
  }
  c->flags &= ~(uint32_t)SL_CONN_HELD;
  c->held_seq = 0;
}

void sl_pace_free(sl_worker_t *w) {
  free(w->held);
  w->held = NULL;
  w->held_len = w->held_cap = w->held_head = 0;
  atomic_store(&w->held_count, 0);
}
