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

typedef struct sl_shutdown_s {
  atomic_int state;              /* sl_shutdown_state_t */
  atomic_int force_requested;
  atomic_uint workers_done;
  atomic_uint_fast64_t forced;   /* connections closed hard */
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
  sl_shutdown_cb cb;
  void *cb_arg;
  sl_drain_report_t report;
} sl_shutdown_t;

struct sl_hub_s;
int sl__shutdown_init(sl_shutdown_t *s);
void sl__shutdown_destroy(sl_shutdown_t *s);
/* Starts (or, on a second call, forces) the drain. */
int sl__shutdown_request(struct sl_hub_s *hub, double timeout, sl_shutdown_cb cb, void *arg);
/* A worker tells the control thread it has no connection left. */
void sl__shutdown_worker_done(struct sl_hub_s *hub);
/* Joins the control thread, if it ran. */
void sl__shutdown_join(sl_shutdown_t *s);

#endif
