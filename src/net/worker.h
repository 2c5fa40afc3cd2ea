/* worker.h — one event-loop thread: its libuv loop, its own SO_REUSEPORT listeners and accept
 * loop, the epoll set its connections are watched through (itself watched by one uv_poll_t: a
 * libuv handle per connection would cost 160 bytes and four system calls more per connection),
 * the periodic sweep, the reaper, and the inbox through which the hub hands it every published
 * update in global order. The only file that runs libuv's loop is worker.c; the transport
 * (conn.c) and delivery (delivery.c) are its sub-structs, each written by its own file.
 *
 * The worker knows nothing of HTTP or Mercure: the protocol its connections speak is set on its
 * transport by the hub (sl__transport_set_protocol), and it tells whoever created it that it
 * drained through a callback. */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/frame.h"
#include "common/metrics.h"
#include "net/admission.h"
#include "net/conn.h"
#include "net/delivery.h"
#include "sluice.h"

typedef struct sl_worker_s sl_worker_t;

typedef enum { SL_MSG_FRAME = 0, SL_MSG_DRAIN = 1 } sl_msg_kind_t;

typedef struct sl_msg_s {
  sl_msg_kind_t kind;
  sl_frame_t *frame;             /* SL_MSG_FRAME: one reference owned by the message */
} sl_msg_t;

/* Work another thread hands to this worker: fn runs on the worker's thread, after the updates
 * posted before it. The struct is the poster's, embedded in its own state (posting never
 * allocates, so it never fails); it must stay valid until fn ran. fn also runs when the worker is
 * destroyed with it still queued, after every connection closed. */
typedef struct sl_worker_call_s sl_worker_call_t;
struct sl_worker_call_s {
  sl_worker_call_t *next;
  void (*fn)(sl_worker_call_t *call);
};

/* Called on the worker's thread once it drains and has no connection left. */
typedef void (*sl_worker_drained_cb)(sl_worker_t *w, void *arg);

/* One event-loop thread. Owned by the hub; every field but the inbox's is the worker thread's
 * once it runs. */
struct sl_worker_s {
  unsigned index;
  const sl_config_t *cfg;
  uv_loop_t loop;
  uv_thread_t thread;
  int thread_started;
  uv_poll_t listeners[SL_MAX_LISTEN];
  int listen_fds[SL_MAX_LISTEN];
  int lock_fds[SL_MAX_LISTEN];   /* the first worker's: the lock on each fixed address (-1) */
  unsigned listen_count;
  int listeners_open;
  int accept_paused;             /* out of descriptors: listeners stopped until the next sweep */
  char emfile_logged;
  uv_async_t wakeup;             /* the inbox has messages, or the hub asks for something */
  uv_timer_t sweep;              /* timeouts, heartbeats, token expiry */
  int epfd;                      /* the epoll set of every connection's socket */
  uv_poll_t epoll_watch;         /* the loop's watch on epfd */
  uv_idle_t reaper;              /* frees closed connections after the loop turn */
  /* Inbox: filled by publishers under inbox_lock, swapped out by the worker. */
  uv_mutex_t inbox_lock;
  sl_msg_t *inbox, *spare;
  size_t inbox_len, inbox_cap, spare_cap;
  /* The last update this worker's inbox could not take (out of memory), 0 when none; under
   * inbox_lock, read and cleared with the inbox. Every accepted update has the next seq, so a
   * worker also sees a lost one as a gap before the next update it does get. */
  uint64_t lost_seq;
  sl_worker_call_t *calls, **calls_tail; /* under inbox_lock: sl__worker_post_call's, in order */
  atomic_int force_requested;    /* sl__worker_force */
  atomic_int stop_requested;     /* sl__worker_stop */
  sl_transport_t net;            /* conn.c's */
  sl_delivery_t dlv;             /* delivery.c's */
  sl_metrics_t metrics;
  sl_worker_drained_cb drained;
  void *drained_arg;
  sl_admission_t *admission;     /* the hub's, shared by every worker */
  /* The drain, on the worker thread once the hub sent SL_MSG_DRAIN. */
  int draining;
  int done;                      /* drained and reported */
  int stopping;                  /* closing every handle so the loop ends */
  atomic_uint_fast64_t delivered_at_drain; /* delivered_total when the drain began here;
                                              UINT64_MAX before (read by the control thread) */
  uint64_t resume_window_start;  /* loop ms when the current one-second window began */
  uint64_t resume_window_base;   /* resumes_total at that moment */
  int handing_off;               /* a live hand-off quiesced it: not accepting */
};

/* A worker's listening sockets handed over by a live hand-off, one per configured address, and
 * (the first worker's) the lock on each (-1 where none). */
typedef struct sl_listen_fds_s {
  int listen[SL_MAX_LISTEN];
  int lock[SL_MAX_LISTEN];
} sl_listen_fds_t;

/* Creates the worker's loop and handles and binds its listeners; a worker after the first binds
 * the ports first got (they differ from the configuration only with port 0). With adopt, it
 * binds nothing and listens on those sockets instead (owned from then on). 0 or a negative
 * errno, with a message in err. */
int sl__worker_init(sl_worker_t *w, unsigned index, const sl_config_t *cfg, sl_pacer_t *pacer,
                    sl_admission_t *admission, const sl_worker_t *first,
                    const sl_listen_fds_t *adopt, sl_worker_drained_cb drained, void *arg,
                    char *err, size_t errlen);
int sl__worker_start(sl_worker_t *w);
void sl__worker_join(sl_worker_t *w);
void sl__worker_destroy(sl_worker_t *w);

/* The port listener i of this worker is bound to, or a negative errno. */
int sl__worker_port(const sl_worker_t *w, unsigned i);

/* From any thread: appends a message (the frame reference moves into it). The caller orders
 * posts (the hub's publish lock). Returns 1 if the worker must be woken, 0 if not, -ENOMEM when
 * the message was lost (the worker is told through lost_seq). */
int sl__worker_post(sl_worker_t *w, sl_msg_kind_t kind, sl_frame_t *frame);
void sl__worker_wake(sl_worker_t *w);
/* From any thread: queues call after every message posted so far. Returns 1 if the worker must
 * be woken, 0 if not. */
int sl__worker_post_call(sl_worker_t *w, sl_worker_call_t *call);
/* Before any thread runs: the worker's delivery starts at update seq (history reopened there). */
void sl__worker_seed(sl_worker_t *w, uint64_t seq);
/* From any thread: close every connection hard at the next wake-up; stop the loop once drained. */
void sl__worker_force(sl_worker_t *w);
void sl__worker_stop(sl_worker_t *w);

/* The live hand-off, each on the worker's thread (the caller posts a call there). Quiesce stops
 * accepting (the listening sockets stay open: their backlog goes along) and asks every
 * connection to take no new request; busy counts those still reading or answering one. Export
 * freezes every connection that can go and hands cb each socket and record (transport, then
 * protocol). Release lets the exported ones go (the receiver took them), returning how many; those
 * that stayed (ending) end here. Thaw undoes quiesce and export: the hand-off failed, and the
 * worker goes on as before. */
void sl__worker_handoff_quiesce(sl_worker_t *w);
size_t sl__worker_handoff_busy(sl_worker_t *w);
int sl__worker_handoff_export(sl_worker_t *w, sl_conn_export_cb cb, void *arg);
size_t sl__worker_handoff_release(sl_worker_t *w);
void sl__worker_handoff_thaw(sl_worker_t *w);
/* The receiving side, before the worker's thread runs: a connection handed over on fd, with its
 * record. 0, or -EPROTO (the connection was given back untouched: fd closed here only). Its
 * queued bytes are written when the worker starts. */
int sl__worker_adopt(sl_worker_t *w, int fd, struct sl_wire_reader_s *record);
/* The hand-off failed on the receiving side: every adopted connection is let go untouched (the
 * sending process serves them on). */
void sl__worker_handoff_giveback(sl_worker_t *w);

/* Update frames written since this worker's drain began. */
uint64_t sl__worker_drain_flushed(sl_worker_t *w);

#endif
