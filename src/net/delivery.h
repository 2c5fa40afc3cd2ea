/* delivery.h — everything about when bytes go out, for one worker: the dispatch of each update
 * to the subscribers its broker selects, the queue limit that cuts a slow consumer, the flush
 * list written at the end of every loop turn (one sendmsg per connection per turn), the flush
 * window that gathers a busy subscriber's updates into one write, and publish back-pressure.
 *
 * Back-pressure: a publisher's answer waits (its connection is corked) while its update is more
 * than --max-pending updates ahead of what every worker has written. A publisher faster than
 * delivery then slows to delivery's pace instead of building a backlog that every subscriber
 * would feel as latency and the hub as memory. Nothing is refused or lost: the update is already
 * in history and in every inbox; only the "200" waits. A subscriber behind a full socket counts
 * as written (--max-queue deals with it), so a slow reader never holds a publisher back. The
 * workers' deliveries share one sl_pacer_t: the floor they wait for, and each other's wake-ups.
 *
 * Everything here runs on the worker's thread, but for sl__delivery_drain_pending and the
 * pacer's atomics. */
#ifndef SL_DELIVERY_H
#define SL_DELIVERY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/frame.h"
#include "common/metrics.h"
#include "topics/broker.h"
#include "net/conn.h"
#include "sluice.h"

typedef struct sl_delivery_s sl_delivery_t;

/* What every worker's delivery shares. Owned by the hub; members are set before any worker
 * runs and never change. */
typedef struct sl_pacer_s {
  size_t max_pending;             /* --max-pending; 0 = answers never wait */
  unsigned count;
  sl_delivery_t **members;        /* count of them */
  atomic_uint_fast64_t paced_at;  /* uv_hrtime() when an answer was last held or released */
} sl_pacer_t;

/* One answer waiting for delivery to catch up. */
typedef struct sl_held_s {
  sl_conn_t *conn;                /* NULL once the connection closed */
  uint64_t seq;                   /* the update it answers */
  uint64_t start_ns;              /* when the request began: its latency is observed at release */
} sl_held_t;

/* One worker's delivery; embedded in the worker, written by delivery.c only. */
struct sl_delivery_s {
  sl_transport_t *net;
  const sl_config_t *cfg;
  sl_metrics_t *metrics;
  sl_pacer_t *pacer;
  uv_async_t *wake;               /* this worker's wake-up, for other workers' progress */
  sl_broker_t broker;             /* the subscriptions of this worker's connections */
  sl_conn_t *flush_head;          /* connections with output to write this turn */
  /* Updates coalesce here: a subscriber's new updates wait at most --flush-window, so that when
   * they come fast each subscriber gets many in one write; after a quiet window the next update
   * is written at once. */
  sl_conn_t *fanout_head;
  uv_timer_t fanout_timer;        /* active while updates wait for the window's end */
  uint64_t fanout_last;           /* uv_hrtime() of the last fan-out flush */
  uint64_t fanout_window;         /* --flush-window in nanoseconds */
  int paced;                      /* an answer was held within the last window: no stream is
                                     quiet, updates wait for the next pass */
  uint64_t dispatched_seq;        /* the highest update seq dispatched here */
  sl_frame_t *last_frame;         /* the last update dispatched here (a reference), NULL before
                                     the first: where streams ended by a gap resume */
  /* Every update up to flushed_seq is written to this worker's subscribers (or waits behind a
   * full socket); held answers wait for the lowest flushed_seq of all workers, who wake this one
   * when they progress and held_count > 0. */
  atomic_uint_fast64_t flushed_seq;
  atomic_int held_count;
  sl_held_t *held;                /* ring of held answers, in publish order */
  size_t held_head, held_len, held_cap;
  int held_woke;                  /* the other workers were told this one holds answers */
  atomic_int drain_pending;       /* the drain message is posted: a flush stops to let it in */
  int draining;
  unsigned jitter_seed;           /* rand_r state: when a gap ends streams, their retry: */
};

/* 0 or a negative errno. */
int sl__delivery_init(sl_delivery_t *d, sl_transport_t *net, uv_loop_t *loop, uv_async_t *wake,
                      sl_pacer_t *pacer, const sl_config_t *cfg, sl_metrics_t *metrics);
/* Closes the timer (the loop must run once more before the memory goes). */
void sl__delivery_close(sl_delivery_t *d);
/* Frees what is left (after the loop ended). */
void sl__delivery_destroy(sl_delivery_t *d);

/* Before the worker runs: updates up to seq were published before this hub started (a durable
 * history reopened there), so the next one, seq + 1, is no gap. */
void sl__delivery_seed(sl_delivery_t *d, uint64_t seq);

/* An update, in global order: to every subscriber that selects it. An update after a gap (seqs
 * that never reached this worker) first ends every stream, so that no client goes on without the
 * missing ones: it resumes from history. */
void sl__delivery_dispatch(sl_delivery_t *d, sl_frame_t *f);
/* Updates up to seq were lost on the way to this worker. */
void sl__delivery_gap(sl_delivery_t *d, uint64_t seq);

/* Queue a frame (reference taken) and write it this turn: answers, comments, close frames. 0, or
 * a negative errno (the connection then ends or closes at the flush). */
int sl__delivery_send(sl_conn_t *c, sl_frame_t *f);
int sl__delivery_send_raw(sl_conn_t *c, const char *bytes, size_t len);
/* An update replayed as a stream opens: --max-queue does not count it, so a client back from a
 * long absence can catch up (the caller then sets q_opening). */
int sl__delivery_send_opening(sl_conn_t *c, sl_frame_t *f);
/* A live update: cut the subscriber past --max-queue (-ENOBUFS), else write it this turn or at
 * the window's end. */
int sl__delivery_send_update(sl_conn_t *c, sl_frame_t *f);
/* An answer that comes later keeps its place: the connection is corked (nothing after the place
 * is written) until sl__delivery_fill puts the answer there. 0, or a negative errno (the
 * connection then closes at the flush). */
int sl__delivery_reserve(sl_conn_t *c, uint32_t *slot);
void sl__delivery_fill(sl_conn_t *c, uint32_t slot, sl_frame_t *f);
/* Ends the connection cleanly once its queue is written. */
void sl__delivery_end(sl_conn_t *c);
/* c closes: it leaves every list and its held answers are dropped (their updates are delivered
 * all the same). */
void sl__delivery_forget(sl_conn_t *c);

/* Called after c published update seq, before its answer is queued: 1 when the answer must wait
 * (the connection is then corked), 0 to answer now. */
int sl__delivery_hold(sl_delivery_t *d, sl_conn_t *c, uint64_t seq, uint64_t start_ns);

/* New updates were dispatched this wake-up: schedule the fan-out (now, or at the window's end). */
void sl__delivery_schedule(sl_delivery_t *d);
/* The end of every callback's work on the worker: write what the turn queued, publish the
 * progress, answer the publishers it frees. */
void sl__delivery_turn_end(sl_delivery_t *d);
/* Called before the worker takes its inbox: whether back-pressure acted within the window. */
void sl__delivery_begin_pass(sl_delivery_t *d);

/* From any thread: the drain message is on its way; a flush in progress stops to let it in. */
void sl__delivery_drain_pending(sl_delivery_t *d);
/* The drain begins on this worker: what waits for the window goes this turn, ahead of each
 * stream's final frame. */
void sl__delivery_drain(sl_delivery_t *d);

#endif
