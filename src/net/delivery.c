/* delivery.c — when bytes go out (see delivery.h): dispatch, the queue limit, the flush and
 * fan-out lists, the flush window and its timer, and back-pressure. The transport writes when
 * told to (sl__conn_flush); this file decides when that is. */
#include "net/delivery.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define HELD_FIRST_CAP 16
#define NS_PER_MS 1000000u

static void turn_end(sl_delivery_t *d);

static sl_delivery_t *delivery_of(const sl_conn_t *c) {
  return c->net->sched;
}

int sl__delivery_init(sl_delivery_t *d, sl_transport_t *net, uv_loop_t *loop, uv_async_t *wake,
                      sl_pacer_t *pacer, const sl_config_t *cfg, sl_metrics_t *metrics) {
  memset(d, 0, sizeof *d);
  d->net = net;
  d->cfg = cfg;
  d->metrics = metrics;
  d->pacer = pacer;
  d->wake = wake;
  d->fanout_window = (uint64_t)(cfg->flush_window * 1e9);
  d->jitter_seed = (unsigned)(uv_hrtime() ^ (uintptr_t)d);
  net->sched = d;
  int r = sl__broker_init(&d->broker);
  if (r)
    return r;
  if ((r = uv_timer_init(loop, &d->fanout_timer))) {
    sl__broker_destroy(&d->broker);
    return r;
  }
  d->fanout_timer.data = d;
  return 0;
}

void sl__delivery_close(sl_delivery_t *d) {
  if (!uv_is_closing((uv_handle_t *)&d->fanout_timer))
    uv_close((uv_handle_t *)&d->fanout_timer, NULL);
}

void sl__delivery_destroy(sl_delivery_t *d) {
  if (d->last_frame)
    sl__frame_unref(d->last_frame);
  d->last_frame = NULL;
  free(d->held);
  d->held = NULL;
  d->held_len = d->held_cap = d->held_head = 0;
  atomic_store(&d->held_count, 0);
  sl__broker_destroy(&d->broker);
}

/* --- the flush and fan-out lists ---------------------------------------------------------- */

static void flush_list_add(sl_conn_t *c) {
  sl_delivery_t *d = delivery_of(c);
  if (c->flags & (SL_CONN_IN_FLUSH | SL_CONN_CLOSING))
    return;
  if ((c->flags & (SL_CONN_CORKED | SL_CONN_HARD_CLOSE)) == SL_CONN_CORKED)
    return; /* written when its last held answer is released */
  if ((c->flags & (SL_CONN_WANT_WRITE | SL_CONN_HARD_CLOSE)) == SL_CONN_WANT_WRITE)
    return; /* written when the socket turns writable */
  c->flags |= SL_CONN_IN_FLUSH;
  c->next_flush = d->flush_head;
  d->flush_head = c;
}

/* Links c at the head of the fan-out list. */
static void fanout_link(sl_delivery_t *d, sl_conn_t *c) {
  c->flags |= SL_CONN_IN_FLUSH | SL_CONN_IN_FANOUT;
  c->next_flush = d->fanout_head;
  if (d->fanout_head)
    d->fanout_head->pprev_flush = &c->next_flush;
  c->pprev_flush = &d->fanout_head;
  d->fanout_head = c;
}

/* The fan-out list outlives a loop turn, so a connection that closes must leave it. */
static void fanout_unlink(sl_conn_t *c) {
  *c->pprev_flush = c->next_flush;
  if (c->next_flush)
    c->next_flush->pprev_flush = c->pprev_flush;
  c->next_flush = NULL;
  c->pprev_flush = NULL;
  c->flags &= ~(uint32_t)(SL_CONN_IN_FLUSH | SL_CONN_IN_FANOUT);
}

static void fanout_list_add(sl_delivery_t *d, sl_conn_t *c) {
  if (c->flags & (SL_CONN_IN_FLUSH | SL_CONN_CLOSING))
    return; /* already on a list: written this turn or when the window ends */
  if ((c->flags & (SL_CONN_WANT_WRITE | SL_CONN_HARD_CLOSE)) == SL_CONN_WANT_WRITE)
    return;
  fanout_link(d, c);
}

/* The flush list must be empty at the end of a turn (a connection closed later would be freed
 * while still on it); the fan-out list may outlive it, since closing unlinks from it. So what a
 * flush leaves for the drain waits there, and sl__delivery_drain moves it back. */
static void park_flush_list(sl_delivery_t *d) {
  while (d->flush_head) {
    sl_conn_t *c = d->flush_head;
    d->flush_head = c->next_flush;
    fanout_link(d, c);
  }
}

/* Writes every connection on the flush list: one sendmsg each. */
static void flush(sl_delivery_t *d) {
  while (d->flush_head) {
    /* A drain was just asked for: what is left goes with each stream's final frame, in one
     * write, once the drain message is read, rather than in a write of its own. */
    if (!d->draining && atomic_load_explicit(&d->drain_pending, memory_order_relaxed)) {
      park_flush_list(d);
      return;
    }
    sl_conn_t *c = d->flush_head;
    d->flush_head = c->next_flush;
    c->next_flush = NULL;
    c->flags &= ~(uint32_t)SL_CONN_IN_FLUSH;
    sl__conn_flush(c);
  }
}

/* The window is over: what waits on the fan-out list goes to the flush list of this turn. */
static void fanout_now(sl_delivery_t *d) {
  sl_conn_t *head = d->fanout_head, *last = NULL;
  d->fanout_head = NULL;
  for (sl_conn_t *c = head; c; c = c->next_flush) {
    c->flags &= ~(uint32_t)SL_CONN_IN_FANOUT; /* stays IN_FLUSH: it moves to the flush list */
    c->pprev_flush = NULL;
    last = c;
  }
  if (last) {
    last->next_flush = d->flush_head;
    d->flush_head = head;
  }
  d->fanout_last = uv_hrtime();
  uv_timer_stop(&d->fanout_timer);
}

static void on_fanout_timer(uv_timer_t *t) {
  sl_delivery_t *d = t->data;
  fanout_now(d);
  turn_end(d);
}

/* --- back-pressure --------------------------------------------------------------------------- */

/* Every update up to the returned seq is written by every worker. */
static uint64_t delivery_floor(const sl_pacer_t *p) {
  uint64_t floor = UINT64_MAX;
  for (unsigned i = 0; i < p->count; i++) {
    uint64_t s = atomic_load(&p->members[i]->flushed_seq);
    if (s < floor)
      floor = s;
  }
  return floor;
}

/* 1 when some worker holds an answer: a worker then flushes at once rather than waiting out its
 * flush window, since no more updates come until it does. */
static int pace_waiting(const sl_pacer_t *p) {
  for (unsigned i = 0; i < p->count; i++)
    if (atomic_load_explicit(&p->members[i]->held_count, memory_order_relaxed) > 0)
      return 1;
  return 0;
}

/* 1 when an answer was held or released less than window_ns ago: delivery is the bottleneck,
 * and a worker's next pass had better carry many updates than start with the first. */
static int pace_recent(const sl_pacer_t *p, uint64_t window_ns) {
  uint64_t at = atomic_load_explicit(&p->paced_at, memory_order_relaxed);
  return at != 0 && uv_hrtime() - at < window_ns;
}

static int held_grow(sl_delivery_t *d) {
  size_t cap = d->held_cap ? d->held_cap * 2 : HELD_FIRST_CAP;
  sl_held_t *q = malloc(cap * sizeof *q);
  if (q == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < d->held_len; i++)
    q[i] = d->held[(d->held_head + i) % d->held_cap];
  free(d->held);
  d->held = q;
  d->held_cap = cap;
  d->held_head = 0;
  return 0;
}

int sl__delivery_hold(sl_delivery_t *d, sl_conn_t *c, uint64_t seq, uint64_t start_ns) {
  assert(delivery_of(c) == d);
  size_t max = d->pacer->max_pending;
  /* Behind an answer already held on this connection, this one waits too (it is written after
   * it anyway), so that its latency is observed when it really goes. */
  if (max == 0 || (!(c->flags & SL_CONN_CORKED) && seq <= delivery_floor(d->pacer) + max))
    return 0;
  /* Out of memory for the ring: answer now; back-pressure is a courtesy, not a promise. */
  if (d->held_len == d->held_cap && held_grow(d))
    return 0;
  sl_held_t *h = &d->held[(d->held_head + d->held_len) % d->held_cap];
  h->conn = c;
  h->seq = seq;
  h->start_ns = start_ns;
  d->held_len++;
  sl__conn_cork(c);
  /* Sequentially consistent, with the floor read again at the end of this turn (release): either
   * a worker that progresses sees this count and wakes us, or we see its progress. */
  atomic_store(&d->held_count, (int)d->held_len);
  atomic_store_explicit(&d->pacer->paced_at, uv_hrtime(), memory_order_relaxed);
  sl__metric_add(&d->metrics->held_total, 1);
  return 1;
}

/* Releases the answers delivery has caught up with; returns how many. */
static size_t pace_release(sl_delivery_t *d) {
  if (d->held_len == 0)
    return 0;
  uint64_t upto = delivery_floor(d->pacer) + d->pacer->max_pending;
  uint64_t now = uv_hrtime();
  size_t n = 0;
  while (d->held_len > 0) {
    sl_held_t *h = &d->held[d->held_head];
    if (h->seq > upto)
      break;
    if (h->conn) {
      sl__metrics_observe_latency(d->metrics, now - h->start_ns);
      if (sl__conn_uncork(h->conn))
        flush_list_add(h->conn); /* its last held answer: the connection writes again */
    }
    d->held_head = (d->held_head + 1) % d->held_cap;
    d->held_len--;
    n++;
  }
  atomic_store_explicit(&d->held_count, (int)d->held_len, memory_order_relaxed);
  if (n)
    atomic_store_explicit(&d->pacer->paced_at, now, memory_order_relaxed);
  return n;
}

/* Every update this worker took from its inbox is written (or waits behind a full socket): say
 * so, and wake the workers whose held publish answers may now go. */
static void progress(sl_delivery_t *d) {
  if (d->flush_head || d->fanout_head ||
      atomic_load_explicit(&d->flushed_seq, memory_order_relaxed) == d->dispatched_seq)
    return;
  atomic_store(&d->flushed_seq, d->dispatched_seq); /* seq_cst: see sl__delivery_hold */
  const sl_pacer_t *p = d->pacer;
  for (unsigned i = 0; i < p->count; i++) {
    sl_delivery_t *o = p->members[i];
    if (o != d && atomic_load(&o->held_count) > 0)
      uv_async_send(o->wake);
  }
}

/* Write what the turn queued, publish the progress, answer the publishers it frees; and when
 * this worker just began to hold answers, wake the others so that none waits out its flush
 * window while publishers wait for it. */
static void turn_end(sl_delivery_t *d) {
  flush(d);
  progress(d);
  if (pace_release(d))
    flush(d);
  if (d->held_len == 0) {
    d->held_woke = 0;
  } else if (!d->held_woke) {
    d->held_woke = 1;
    const sl_pacer_t *p = d->pacer;
    for (unsigned i = 0; i < p->count; i++)
      if (p->members[i] != d)
        uv_async_send(p->members[i]->wake);
  }
}

void sl__delivery_turn_end(sl_delivery_t *d) {
  turn_end(d);
}

void sl__delivery_begin_pass(sl_delivery_t *d) {
  d->paced = pace_recent(d->pacer, d->fanout_window);
}

/* Updates just queued: write them now when the last fan-out is a window old (a quiet stream is
 * not delayed), else when the window ends, by which time more updates may share the write. Under
 * back-pressure (d->paced) no stream counts as quiet: the publisher is about to send the next
 * updates, and the pass that a held answer triggers, or the window's end, takes them all. */
void sl__delivery_schedule(sl_delivery_t *d) {
  if (d->fanout_head == NULL)
    return;
  /* A publisher waits for this worker: no update comes until it writes, so the window would
   * gain nothing. */
  int waited_for = pace_waiting(d->pacer);
  if (uv_is_active((uv_handle_t *)&d->fanout_timer) && !waited_for)
    return;
  uint64_t now = uv_hrtime();
  if (waited_for || (now - d->fanout_last >= d->fanout_window && !d->paced)) {
    fanout_now(d); /* written by this turn's flush */
    return;
  }
  /* Paced, the pass comes with the next held answer; the window only bounds the wait. */
  uint64_t end = d->fanout_last + d->fanout_window;
  if (end <= now || d->paced)
    end = now + d->fanout_window;
  uv_timer_start(&d->fanout_timer, on_fanout_timer, (end - now + NS_PER_MS - 1) / NS_PER_MS, 0);
}

/* --- sending ------------------------------------------------------------------------------- */

static int is_not_update(const sl_frame_t *f) {
  return f->seq == 0;
}

/* Slow consumer: drop the updates it has not started to receive, finish the frame it is in the
 * middle of, then end the stream; it resumes from history with its Last-Event-ID. What is not an
 * update (the response head, comments) stays: the client must still get a well-formed response. */
static void evict(sl_conn_t *c) {
  sl_delivery_t *d = delivery_of(c);
  sl__conn_drop(c, is_not_update);
  sl__conn_mark(c, SL_CONN_EVICTED);
  sl__metric_add(&d->metrics->slow_disconnects_total, 1);
  sl__log(SL_LOG_INFO, "worker %u: slow subscriber cut at --max-queue %zu bytes; it can resume "
         "with its Last-Event-ID", c->net->index, d->cfg->max_queue);
  sl__delivery_end(c);
}

/* Out of memory queueing: closed at the flush, not here, as this may run inside the broker's
 * dispatch loop. */
static int push_failed(sl_conn_t *c, int r) {
  if (r == -ENOMEM) {
    sl__conn_mark(c, SL_CONN_HARD_CLOSE | SL_CONN_EVICTED);
    flush_list_add(c);
  }
  return r;
}

typedef enum { SEND_PLAIN, SEND_UPDATE, SEND_OPENING } send_kind_t;

static int queue_frame(sl_conn_t *c, sl_frame_t *f, send_kind_t kind) {
  assert(f != NULL && (kind == SEND_PLAIN || f->seq > 0));
  sl_delivery_t *d = delivery_of(c);
  if (c->flags & (SL_CONN_CLOSING | SL_CONN_EVICTED))
    return -EPIPE;
  /* A stream that is ending takes no more updates, chunked or not: its client resumes after the
   * last one it got. */
  if ((c->flags & (SL_CONN_STREAM | SL_CONN_CLOSE_AFTER)) == (SL_CONN_STREAM | SL_CONN_CLOSE_AFTER) &&
      f->seq > 0)
    return -EPIPE;
  size_t len = sl__conn_frame_len(c, f);
  if (kind == SEND_UPDATE && c->q_bytes - c->q_opening + len > d->cfg->max_queue) {
    evict(c);
    return -ENOBUFS;
  }
  int r = sl__conn_push(c, f);
  if (r)
    return push_failed(c, r);
  /* An update waits for the window only when this subscriber was written to less than a window
   * ago, or publishers are being held back (then the next pass takes it): one that has been quiet
   * (a topic of its own, a sparse stream) gets it this turn, as it would gain nothing from
   * waiting. And the window must not make a fast reader look slow: past half of --max-queue,
   * write now. */
  if (kind == SEND_UPDATE &&
      (d->paced || (sl__transport_now(c->net) - c->last_write) * NS_PER_MS < d->fanout_window) &&
      c->q_bytes <= d->cfg->max_queue / 2) {
    fanout_list_add(d, c);
  } else {
    if (c->flags & SL_CONN_IN_FANOUT)
      fanout_unlink(c);
    flush_list_add(c);
  }
  return 0;
}

int sl__delivery_send(sl_conn_t *c, sl_frame_t *f) {
  return queue_frame(c, f, SEND_PLAIN);
}

int sl__delivery_send_opening(sl_conn_t *c, sl_frame_t *f) {
  return queue_frame(c, f, SEND_OPENING);
}

int sl__delivery_send_update(sl_conn_t *c, sl_frame_t *f) {
  return queue_frame(c, f, SEND_UPDATE);
}

int sl__delivery_send_raw(sl_conn_t *c, const char *bytes, size_t len) {
  sl_frame_t *f = sl__frame_raw(bytes, len);
  if (f == NULL)
    return push_failed(c, -ENOMEM);
  int r = queue_frame(c, f, SEND_PLAIN);
  sl__frame_unref(f);
  return r;
}

int sl__delivery_reserve(sl_conn_t *c, uint32_t *slot) {
  if (c->flags & SL_CONN_CLOSING)
    return -EPIPE;
  sl__conn_cork(c);
  int r = sl__conn_reserve(c, slot);
  if (r) {
    sl__conn_uncork(c);
    return push_failed(c, r);
  }
  return 0;
}

void sl__delivery_fill(sl_conn_t *c, uint32_t slot, sl_frame_t *f) {
  sl__conn_fill(c, slot, f);
  if (sl__conn_uncork(c))
    flush_list_add(c); /* its last reserved place: the connection writes again */
}

void sl__delivery_end(sl_conn_t *c) {
  assert(c->net->sched != NULL);
  if (c->flags & SL_CONN_CLOSING)
    return;
  sl__conn_end(c);
  flush_list_add(c);
}

void sl__delivery_forget(sl_conn_t *c) {
  sl_delivery_t *d = delivery_of(c);
  if (c->flags & SL_CONN_IN_FANOUT)
    fanout_unlink(c);
  if (c->flags & SL_CONN_CORKED) {
    for (size_t i = 0; i < d->held_len; i++) {
      sl_held_t *h = &d->held[(d->held_head + i) % d->held_cap];
      if (h->conn == c)
        h->conn = NULL;
    }
  }
}

/* --- dispatch ------------------------------------------------------------------------------ */

static void deliver(sl_sub_t *sub, sl_frame_t *f, void *arg) {
  (void)arg;
  /* Still paging its replay: its owner reads this one from history, in order, and then joins
   * the live stream after what this worker dispatched. */
  if (sub->conn->flags & SL_CONN_PAGING)
    return;
  sl__delivery_send_update(sub->conn, f);
}

#define GAP_MARK_MAX 64  /* bytes of a gap mark beyond the id: "retry: <ms>\nid: \n\n" */
#define JITTER_STEPS 1000000

/* The frame that ends a stream at a gap: where to resume, and when. A client that got no update
 * yet has no id to resume from, so each stream is told the id of the last update before the gap
 * ("earliest" if there was none): an event of an id alone sets an EventSource's Last-Event-ID
 * without firing. Its retry: is jittered over --reconnect-spread, so that the streams of a worker
 * do not all come back at once. */
static sl_frame_t *gap_mark(sl_delivery_t *d, const char *id) {
  double spread = d->cfg->reconnect_spread;
  unsigned ms = spread > 0 ? (unsigned)((double)(rand_r(&d->jitter_seed) % JITTER_STEPS) /
                                        JITTER_STEPS * spread * 1000.0) + 1
                           : 0;
  size_t cap = strlen(id) + GAP_MARK_MAX;
  char *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  int len = spread > 0 ? snprintf(buf, cap, "retry: %u\nid: %s\n\n", ms, id)
                       : snprintf(buf, cap, "id: %s\n\n", id);
  sl_frame_t *f = len > 0 && (size_t)len < cap ? sl__frame_chunk(buf, (size_t)len) : NULL;
  free(buf);
  return f;
}

void sl__delivery_gap(sl_delivery_t *d, uint64_t seq) {
  const char *id = d->last_frame ? d->last_frame->id : "earliest";
  size_t ended = 0;
  for (sl_conn_t *c = d->net->conns; c; c = c->next) {
    if ((c->flags & (SL_CONN_STREAM | SL_CONN_CLOSING | SL_CONN_CLOSE_AFTER)) == SL_CONN_STREAM) {
      sl_frame_t *mark = gap_mark(d, id);
      if (mark) {
        sl__delivery_send(c, mark);
        sl__frame_unref(mark);
      }
      sl__delivery_end(c);
      ended++;
    }
  }
  sl__metric_add(&d->metrics->lost_update_ends_total, ended);
  if (d->dispatched_seq < seq)
    d->dispatched_seq = seq;
  sl__log(SL_LOG_ERROR, "worker %u: out of memory: updates up to %" PRIu64 " did not all reach "
          "this worker; %zu streams end so that their clients resume from history", d->net->index,
          seq, ended);
}

void sl__delivery_seed(sl_delivery_t *d, uint64_t seq) {
  d->dispatched_seq = seq;
  atomic_store(&d->flushed_seq, seq);
}

void sl__delivery_dispatch(sl_delivery_t *d, sl_frame_t *f) {
  assert(f->seq > 0);
  if (f->seq > d->dispatched_seq + 1)
    sl__delivery_gap(d, f->seq - 1);
  d->dispatched_seq = f->seq;
  sl__broker_dispatch(&d->broker, f, deliver, NULL);
  if (d->last_frame)
    sl__frame_unref(d->last_frame);
  d->last_frame = sl__frame_ref(f);
}

/* --- the drain ----------------------------------------------------------------------------- */

void sl__delivery_drain_pending(sl_delivery_t *d) {
  atomic_store(&d->drain_pending, 1);
}

void sl__delivery_drain(sl_delivery_t *d) {
  d->draining = 1;
  /* Updates waiting for the flush window go in this turn, ahead of the final frame in the same
   * queue: one write per stream carries both, then the FIN. */
  fanout_now(d);
}
