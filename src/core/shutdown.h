/* shutdown.h — the graceful drain as a state machine, run on a small control thread of its own:
 *
 *   RUNNING --sl_hub_shutdown--> DELAYING --drain_delay--> DRAINING --all workers done--> DONE
 *                                    |                         |
 *                                    +------ timeout or second request ------> FORCING --> DONE
 *
 * DELAYING: readiness is down, everything else still served. DRAINING: listeners closed, no new
 * update accepted, every accepted update delivered, then each stream gets the close frame, the
 * chunked terminator and a FIN. FORCING: whatever is still open is closed hard. */
#ifndef SL_SHUTDOWN_H
#define SL_SHUTDOWN_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "sluice.h"

typedef enum {
  SL_SHUTDOWN_RUNNING = 0,
  SL_SHUTDOWN_DELAYING,
  SL_SHUTDOWN_DRAINING,
  SL_SHUTDOWN_FORCING,
  SL_SHUTDOWN_DONE,
} sl_shutdown_state_t;

/* What the drain counts, asked of the hub at its start and end. */
typedef struct sl_shutdown_counts_s {
  uint64_t streams_open;         /* subscribers now */
  uint64_t open;                 /* connections open now */
  uint64_t accepted;             /* connections accepted since the start */
  uint64_t drained;              /* streams that got the close frame and a clean end */
  uint64_t flushed;              /* update frames written since the drain began */
  uint64_t forced;               /* connections closed hard */
} sl_shutdown_counts_t;

/* How the drain acts: it asks, through these, and never reaches into the hub or its workers.
 * Each runs on the control thread, but begin (on the requesting thread). */
typedef struct sl_shutdown_ops_s {
  void (*begin)(void *arg);      /* readiness goes down */
  void (*drain)(void *arg);      /* no more updates; every worker ends its connections */
  void (*force)(void *arg);      /* every worker closes what is left, hard */
  void (*stop)(void *arg);       /* it is over: workers end their loops */
  void (*count)(void *arg, sl_shutdown_counts_t *out);
} sl_shutdown_ops_t;

typedef struct sl_shutdown_s {
  atomic_int state;              /* sl_shutdown_state_t */
  atomic_int force_requested;
  atomic_uint workers_done;
  unsigned worker_count;
  const sl_shutdown_ops_t *ops;
  void *ops_arg;
  double drain_delay;            /* seconds */
  atomic_uint_fast64_t forced;   /* connections closed hard, known once it is over */
  uv_mutex_t lock;               /* guards the fields below and the thread start */
  int thread_started;
  uv_thread_t thread;
  uv_loop_t loop;
  uv_async_t wakeup;
  uv_timer_t delay_timer;
  uv_timer_t deadline_timer;
  double timeout;                /* seconds */
  uint64_t started_ns;
  uint64_t open_at_start;        /* connections open when the shutdown was asked for */
  uint64_t accepted_at_start;    /* connections accepted until then */
  sl_hub_t *hub;
  sl_shutdown_cb cb;
  void *cb_arg;
  sl_drain_report_t report;
} sl_shutdown_t;

/* hub is what the user's callback is given. 0 or a negative errno. */
int sl__shutdown_init(sl_shutdown_t *s, sl_hub_t *hub, const sl_shutdown_ops_t *ops, void *arg);
void sl__shutdown_destroy(sl_shutdown_t *s);
/* Starts (or, on a second call, forces) the drain of worker_count workers. */
int sl__shutdown_request(sl_shutdown_t *s, unsigned worker_count, double drain_delay,
                         double timeout, sl_shutdown_cb cb, void *arg);
/* A worker tells the control thread it has no connection left; any thread. */
void sl__shutdown_worker_done(sl_shutdown_t *s);
/* 1 while the drain runs (after a request, before it is over). */
int sl__shutdown_draining(sl_shutdown_t *s);
/* Connections closed hard so far. */
uint64_t sl__shutdown_forced(sl_shutdown_t *s);
/* Joins the control thread, if it ran. */
void sl__shutdown_join(sl_shutdown_t *s);

#endif
