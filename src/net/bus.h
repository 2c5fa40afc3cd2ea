/* bus.h — the publish path and its one global order. An update is validated and serialised once,
 * then, under the bus's lock, appended to history, which gives it its place (seq); once the
 * history says it is stored, a reference goes to every worker's inbox, in that order. So every
 * worker sees every update in one order, and a resume from history can never miss or repeat one.
 * The bus also carries the hub's word to the workers: the drain message after the last accepted
 * update, and the wake-ups of the drain's later steps.
 *
 * Owned by the hub; every function may be called from any thread. */
#ifndef SL_BUS_H
#define SL_BUS_H

#include <stdint.h>
#include <uv.h>

#include "history/history.h"
#include "net/worker.h"
#include "sluice.h"

/* A publish whose update history stores later (a durable backend): its answer waits, and call
 * runs on the publishing worker's thread once the update is stored, after the update itself
 * reached that worker. The struct is the publisher's (embedded in its own state). */
typedef struct sl_bus_pending_s {
  sl_worker_call_t call;         /* the publisher sets call.fn */
  int err;                       /* set by the bus before call.fn runs: 0 or history's error */
  uint64_t seq;                  /* the update's place, when err is 0 */
} sl_bus_pending_t;

/* One append the bus waits on, in the order the appends started (= the completions' order). */
typedef struct sl_bus_wait_s sl_bus_wait_t;

/* A worker's kick of history (history.h append_held): posted to the worker by its first held
 * append, it runs at the worker's next wake-up, once that turn's reads are all appended. */
typedef struct sl_bus_kick_s {
  sl_worker_call_t call;
  struct sl_bus_s *bus;
  int posted;                    /* the worker's own: a kick is on its way */
} sl_bus_kick_t;

typedef struct sl_bus_s {
  uv_mutex_t lock;               /* orders appends and inbox posts; guards what follows */
  uv_cond_t stored;              /* a completion came from the backend's thread */
  sl_bus_wait_t *waits;          /* ring of appends started and not completed, oldest first */
  size_t waits_head, waits_cap;
  sl_worker_call_t *orphans;     /* answers whose worker was gone: run by sl__bus_destroy */
  int closed;                    /* no more updates accepted (draining) */
  int paused;                    /* a live hand-off: updates refused (-EAGAIN) for now */
  int drain_posted;              /* the workers were sent the drain message */
  uint64_t pending;              /* appends started and not yet completed */
  sl_history_t *history;         /* borrowed: the hub owns it */
  sl_worker_t *workers;          /* set by sl__bus_attach before any publish */
  unsigned worker_count;
  const char *hub_path;          /* the path of the hub's URL: the reserved namespace publishers
                                    may not address; NULL = /.well-known/mercure. Set before any
                                    publish. */
  int keep_last;                 /* remember the last stored update (sl__bus_last_id); set
                                    before any publish */
  sl_frame_t *last;              /* that update (a reference), NULL before the first */
  uint64_t hub_failed;           /* hub updates history failed to store */
  int feeds;                     /* history feeds (a shared log): updates reach the workers from
                                    its feed, in the log's order, not from append completions */
  uint64_t fed_seq;              /* with feeds: the seq of the last frame fed */
  /* With a history that completes in groups (history.h): the workers a group's completions
   * posted to, woken once at the group's end (bit i: workers[i]), and whether a waiting
   * publisher is to be told then. */
  uint64_t wake_due[(SL_MAX_WORKERS + 63) / 64];
  int broadcast_due;
  sl_bus_kick_t kicks[SL_MAX_WORKERS]; /* kicks[i]: workers[i]'s */
} sl_bus_t;

/* With a history that feeds (history.h), starts its feed: from then on the workers get what the
 * shared log holds, whoever appended it, and a publish's answer only says the log has it. */
int sl__bus_init(sl_bus_t *b, sl_history_t *history);
void sl__bus_destroy(sl_bus_t *b);
/* Before the workers run: the workers updates go to (NULL, 0 to detach before they are freed).
 * Each starts at history's last seq, so that the order continues across a restart. */
void sl__bus_attach(sl_bus_t *b, sl_worker_t *workers, unsigned count);
/* A live hand-off's new process: the feeding history was put where the old process's feed stood
 * (feed_at), and has fed nothing yet: the order goes on from its last seq (sl__bus_attach next). */
void sl__bus_feed_moved(sl_bus_t *b);

/* Validates and publishes one update: its id (generated when the update has none) is written to
 * id; *seq (may be NULL) gets its place in the global order. Returns once history stored it (or
 * failed to): with a backend that completes later, the calling thread waits for it. On -EINVAL
 * *why says which rule it broke; -ESHUTDOWN once the bus is closed; -ENOSPC when id_cap is too
 * small; else history's error. */
int sl__bus_publish(sl_bus_t *b, const sl_update_t *u, char *id, size_t id_cap, uint64_t *seq,
                    const char **why);

/* The hub's own update (a subscription event): published as sl__bus_publish does, except that
 * the rules that keep publishers out of the hub's namespace and its event type do not apply (the
 * caller builds it valid), history keeps it under its own budget (SL_FRAME_HUB), and it returns
 * once the append started, without waiting for history to store it: a durable backend's commit
 * must not hold the caller (a worker, under the registry's mutex). The order still holds: the
 * append starts under the bus lock, so hub updates take their places in the order of these calls,
 * and reach the workers only once stored. A store that fails is logged and counted
 * (sl__bus_hub_failed), never silent. 0 once started, or an error as sl__bus_publish (nothing
 * published). */
int sl__bus_publish_hub(sl_bus_t *b, const sl_update_t *u, char *id, size_t id_cap,
                        const char **why);

/* Hub updates that history failed to store, since the start. */
uint64_t sl__bus_hub_failed(sl_bus_t *b);

/* With keep_last: the id of the last update stored, as a malloc'ed string in *id, or NULL when
 * none was ("earliest"). Taken under the publish lock, so a caller holding a lock that orders
 * its own publishes gets a cursor consistent with them: every update stored is at or before it,
 * and every one started (sl__bus_publish_hub) but not stored yet comes after it in the order. 0,
 * or -ENOMEM. */
int sl__bus_last_id(sl_bus_t *b, char **id);

/* The same for a worker's thread, which must not wait: 0 when the update is stored already (*seq
 * set; memory's case), 1 when history stores it later (then p->call.fn runs once on worker w's
 * thread, with p->err and p->seq set), or a negative errno as sl__bus_publish (no call). The id
 * is written either way. */
int sl__bus_publish_async(sl_bus_t *b, const sl_update_t *u, char *id, size_t id_cap,
                          uint64_t *seq, const char **why, sl_worker_t *w, sl_bus_pending_t *p);

/* Resume: visits, in publish order, the retained updates after after_id up to seq upto, a page at
 * a time, without the publish lock; the frame is borrowed. *found as in sl_history_ops_t. When
 * retention overtakes the replay, cb gets NULL (forget what was visited) and the replay starts
 * again from the oldest retained with *found 0; -ESPIPE if that keeps happening. */
typedef void (*sl_bus_visit_cb)(sl_frame_t *frame, void *arg);
int sl__bus_replay(sl_bus_t *b, const char *after_id, uint64_t upto, sl_bus_visit_cb cb,
                   void *arg, int *found);

/* A cursor on history for a replay paged by its caller, as sl_history_ops_t's cursor_open; read
 * and closed through history.h. */
int sl__bus_cursor_open(sl_bus_t *b, const char *after_id, uint64_t upto,
                        sl_history_cursor_t **out, int *found);

/* A live hand-off. Pause refuses every update from now on (-EAGAIN) and returns, once every
 * append started has completed (and so reached the workers' inboxes), the seq where the order
 * stands; resume takes updates again (the hand-off failed). Post call queues call on worker
 * number worker after every update posted so far (and wakes it): when it runs, that worker has
 * dispatched them. 0, or -EINVAL when there is no such worker. */
uint64_t sl__bus_pause(sl_bus_t *b);
void sl__bus_resume(sl_bus_t *b);
int sl__bus_post_call(sl_bus_t *b, unsigned worker, sl_worker_call_t *call);

/* No more updates: each worker gets the drain message after every update already accepted,
 * once the appends still pending complete. */
void sl__bus_close(sl_bus_t *b);
/* The drain's later steps: every worker closes what is left hard; every worker stops its loop
 * once drained. Under the lock, so no wake-up crosses a worker's stop. */
void sl__bus_force(sl_bus_t *b);
void sl__bus_stop(sl_bus_t *b);

#endif
