/* pace.h — publish back-pressure. A publisher gets its answer once its update is at most
 * --max-pending updates ahead of what every worker has written to its subscribers. A publisher
 * faster than delivery then slows to delivery's pace instead of building a backlog that every
 * subscriber would feel as latency and the hub as memory. Nothing is refused or lost: the update
 * is already in history and in every inbox; only the "200" waits.
 *
 * A slow subscriber never holds anyone back: an update waiting behind its full socket counts as
 * written (--max-queue bounds it). Held answers wait per worker in publish order, and a held
 * connection writes nothing until its last one is released, so pipelined answers keep their
 * order. */
#ifndef SL_PACE_H
#define SL_PACE_H

#include <stddef.h>
#include <stdint.h>

#include "net/worker.h"

struct sl_hub_s;

/* One answer waiting for delivery to catch up. */
typedef struct sl_held_s {
  sl_conn_t *conn;              /* NULL once the connection closed */
  uint64_t seq;                 /* the update it answers */
  uint64_t start_ns;            /* when the request began: its latency is observed at release */
} sl_held_t;

/* Called after c published update seq, before its answer is queued: 1 when the answer must wait
 * (the connection is then held), 0 to answer now. */
int sl_pace_hold(sl_conn_t *c, uint64_t seq, uint64_t start_ns);

/* Releases the answers delivery has caught up with; returns how many. */
size_t sl_pace_release(sl_worker_t *w);

/* c is closing: its held answers are dropped (their updates are delivered all the same). */
void sl_pace_forget(sl_conn_t *c);

/* 1 when some worker holds an answer: a worker then flushes at once rather than waiting out its
 * flush window, since no more updates come until it does. */
int sl_pace_waiting(const struct sl_hub_s *hub);

/* 1 when an answer was held or released less than window_ns ago: delivery is the bottleneck,
 * and a worker's next pass had better carry many updates than start with the first. */
int sl_pace_recent(const struct sl_hub_s *hub, uint64_t window_ns);

/* Frees w's held answers (teardown). */
void sl_pace_free(sl_worker_t *w);

#endif
