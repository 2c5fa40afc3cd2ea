/* handoff.h — the live hand-off between two processes: a running hub gives a new one (a new
 * binary, usually) its listening sockets, its history and every established connection, over a
 * Unix SOCK_SEQPACKET socket with SCM_RIGHTS, so that an upgrade disconnects nobody. The old
 * side runs on a thread of its own and acts on its workers through calls posted to them; the new
 * side runs inside sl_hub_start. The protocol (versions, messages, what each connection's record
 * holds, what happens on every failure) is described in docs/handoff.md.
 *
 * hub.c calls this file, never the reverse: what the new side needs of the hub's making (its
 * history, its workers) comes through the hooks hub.c gives it. */
#ifndef SL_HANDOFF_H
#define SL_HANDOFF_H

#include "net/worker.h"
#include "sluice.h"

#define SL_HANDOFF_VERSION 1           /* the protocol's; a new process refuses another one */

struct sl_hub_s;

/* How the new side builds the hub around what it is given. Each returns 0 or a negative errno. */
typedef struct sl_handoff_hooks_s {
  /* The history (and the bus over it): lmdb_lock_fd is the old process's lock on the data dir
   * (-1 when it has none); handoff 1: a feeding history (Redis) waits for the old process's
   * position (history.h's feed_at), which STATE brings. */
  int (*open_history)(struct sl_hub_s *hub, int lmdb_lock_fd, int handoff);
  /* n workers listening on adopt[i]'s sockets, their contexts, their endpoints, attached to the
   * bus (starting at history's last seq). */
  int (*make_workers)(struct sl_hub_s *hub, unsigned n, const sl_listen_fds_t *adopt);
  /* Their threads run: from now on this process serves. */
  int (*start_workers)(struct sl_hub_s *hub);
} sl_handoff_hooks_t;

/* The old side: starts handing everything over on sock (see sl_hub_handoff). 0, -EALREADY while
 * one is under way, -ENOTSUP with a feeding history that cannot say where its feed stands,
 * -ENOMEM or a thread's error. */
int sl__handoff_begin(struct sl_hub_s *hub, int sock, double timeout, sl_handoff_cb cb, void *arg);
/* Joins the old side's thread, if any, and frees its state; for sl_hub_free. */
void sl__handoff_free(struct sl_hub_s *hub);

/* The new side: takes over from the hub at the other end of hub->cfg.handoff_fd, then starts the
 * workers. 0 once serving; else a negative errno, logged, and nothing kept (every connection was
 * given back untouched: the old process goes on serving them). */
int sl__handoff_adopt(struct sl_hub_s *hub, const sl_handoff_hooks_t *hooks);

#endif
