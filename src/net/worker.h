/* server.h — workers and connections. A worker is one thread running one libuv loop with its
 * own listeners (SO_REUSEPORT), its own broker, its connections and an inbox through which the
 * hub hands it every published frame in global order. A connection is a non-blocking socket in
 * the worker's epoll set (itself watched by one uv_poll_t: a libuv handle per connection would
 * cost 160 bytes and four extra system calls per connection), with a queue of frame references
 * written by one sendmsg (writev) per loop turn. The only file that calls libuv's loop is
 * server.c (loop, threads, listeners, timers, inbox, the epoll set, the reaper). */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <llhttp.h>

#include "auth/auth_cache.h"
#include "core/broker.h"
#include "common/frame.h"
#include "common/metrics.h"

#define SL_READ_BUF_SIZE (64 * 1024) /* one per worker, shared by its connections */

typedef struct sl_worker_s sl_worker_t;
typedef struct sl_conn_s sl_conn_t;
typedef struct sl_request_s sl_request_t;
struct sl_hub_s;

enum {
  SL_CONN_STREAM = 1 << 0,      /* an event stream: a subscriber */
  SL_CONN_CHUNKED = 1 << 1,     /* the response uses chunked transfer-coding */
  SL_CONN_CLOSE_AFTER = 1 << 2, /* close once the queue is written (no keep-alive) */
  SL_CONN_FIN_SENT = 1 << 3,    /* shutdown(SHUT_WR) done; waiting for the client's FIN */
  SL_CONN_WANT_WRITE = 1 << 4,  /* the kernel buffer was full: waiting for POLLOUT */
  SL_CONN_IN_FLUSH = 1 << 5,    /* on the worker's flush list */
  SL_CONN_CLOSING = 1 << 6,     /* uv_close requested; freed in the close callback */
  SL_CONN_EVICTED = 1 << 7,     /* slow consumer: ends after its current frame */
  SL_CONN_DRAINING = 1 << 8,    /* got (or will get) the shutdown close frame */
  SL_CONN_READ_PAUSED = 1 << 9, /* too much output queued for a pipelining client */
  SL_CONN_PARSER_PAUSED = 1 << 10, /* request parsing stopped (stream started or error) */
  SL_CONN_HARD_CLOSE = 1 << 11, /* close without waiting for anything */
  SL_CONN_IN_FANOUT = 1 << 12,  /* on the worker's fan-out list (flushed when the window ends) */
  SL_CONN_HELD = 1 << 13,       /* a publish answer waits for delivery to catch up (pace.c) */
};

/* One client connection. Owned by its worker; freed in the poll handle's close callback. */
struct sl_conn_s {
  sl_worker_t *worker;
  sl_conn_t *prev, *next;       /* the worker's connection list */
  sl_conn_t *next_flush;        /* the worker's flush list or fan-out list */
  sl_conn_t **pprev_flush;      /* on the fan-out list: the pointer that points here */
  sl_conn_t *next_closed;       /* closed, waiting for the reaper */
  int fd;
  uint32_t flags;               /* SL_CONN_* */
  /* Output: a ring of frame references; off bytes of the first one are already written. */
  sl_frame_t **q;
  uint32_t q_head, q_len, q_cap, q_off;
  size_t q_bytes;               /* bytes queued and not yet written */
  size_t q_opening;             /* of those, the bytes queued when the stream opened (its head,
                                   the updates replayed from history), which --max-queue does
                                   not count: a client back from a long absence can catch up.
                                   A client that reads none of it pins those frames until
                                   --write-timeout (history may have dropped them) */
  uint64_t deadline;            /* loop ms: header/idle/write/linger deadline; 0 = none */
  uint64_t last_write;          /* loop ms of the last write (heartbeat) */
  uint64_t token_exp;           /* subscriber token expiry, loop ms; 0 = none */
  uint64_t held_seq;            /* SL_CONN_HELD: the update its last held answer is for */
  sl_sub_t *sub;                /* the subscription of a stream */
  sl_request_t *req;            /* the request being read; NULL between requests */
  llhttp_t parser;
};

typedef enum { SL_MSG_FRAME = 0, SL_MSG_DRAIN = 1 } sl_msg_kind_t;

typedef struct sl_msg_s {
  sl_msg_kind_t kind;
  sl_frame_t *frame;            /* SL_MSG_FRAME: one reference owned by the message */
} sl_msg_t;

/* One event-loop thread. Owned by the hub. */
struct sl_worker_s {
  struct sl_hub_s *hub;
  unsigned index;
  uv_loop_t loop;
  uv_thread_t thread;
  int thread_started;
  uv_poll_t listeners[SL_MAX_LISTEN];
  int listen_fds[SL_MAX_LISTEN];
  unsigned listen_count;
  int listeners_open;
  int accept_paused;             /* out of descriptors: listeners stopped until the next sweep */
  uv_async_t wakeup;             /* inbox has messages, or the hub asks for something */
  uv_timer_t sweep;              /* timeouts, heartbeats, token expiry */
  int epfd;                      /* epoll set of every connection's socket */
  uv_poll_t epoll_watch;         /* the loop's watch on epfd */
  uv_idle_t reaper;              /* frees closed connections after the loop turn */
  sl_conn_t *closed_head;
  /* Inbox: filled by publishers under inbox_lock, swapped out by the worker. */
  uv_mutex_t inbox_lock;
  sl_msg_t *inbox, *spare;
  size_t inbox_len, inbox_cap, spare_cap;
  uint64_t dispatched_seq;       /* highest update seq dispatched to this worker's subscribers */
  /* Back-pressure (pace.c): every update up to flushed_seq is written to this worker's
   * subscribers (or waits behind a full socket); publish answers held here wait for the lowest
   * flushed_seq of all workers, who wake this one when they progress and held_count > 0. */
  atomic_uint_fast64_t flushed_seq;
  atomic_int held_count;
  struct sl_held_s *held;        /* ring of held answers, in publish order */
  size_t held_head, held_len, held_cap;
  int held_woke;                 /* the other workers were told this one holds answers */
  int paced;                     /* an answer was held within the last window: no stream is
                                    quiet, updates wait for the next pass (sl_pace_recent) */
  atomic_int drain_pending;      /* the drain message is posted: a flush stops to let it in */
  /* The last update this worker's inbox could not take (out of memory), 0 when none; under
   * inbox_lock, read and cleared with the inbox. Every accepted update has the next seq, so a
   * worker also sees a lost one as a gap before the next update it does get (worker_gap). */
  uint64_t lost_seq;
  sl_frame_t *last_frame;        /* the last update dispatched here (a reference), NULL before
                                    the first: where streams ended by worker_gap resume */
  sl_broker_t broker;
  sl_conn_t *conns;              /* every open connection */
  size_t conn_count;
  sl_conn_t *flush_head;         /* connections with output to write this turn */
  /* Updates coalesce here: a subscriber's new updates wait at most --flush-window, so that when
   * they come fast each subscriber gets many in one write; after a quiet window the next update
   * is written at once. */
  sl_conn_t *fanout_head;        /* subscribers with updates waiting for the window's end */
  uv_timer_t fanout_timer;       /* active while updates wait for the window's end */
  uint64_t fanout_last;          /* uv_hrtime() of the last fan-out flush */
  uint64_t fanout_window;        /* --flush-window in nanoseconds */
  char *read_buf;                /* shared by every connection of this worker */
  sl_auth_cache_t *auth_cache;   /* tokens this worker verified (publishers reuse theirs) */
  sl_metrics_t metrics;
  /* Shutdown, owned by the worker thread once the hub sent SL_MSG_DRAIN. */
  int draining;
  int done;                      /* drained and reported to the hub */
  int stopping;                  /* closing every handle so the loop ends */
  atomic_uint_fast64_t drain_flushed; /* update frames written since the drain began */
  char emfile_logged;
  unsigned jitter_seed;           /* rand_r state for the reconnect jitter */
  uint64_t resume_window_start;  /* loop ms when the current one-second window began */
  uint64_t resume_window_base;   /* resumes_total at that moment */
};

/* Creates the worker's loop and handles, and binds its listeners. 0 or a negative errno, with a
 * message in err. */
int sl_worker_init(sl_worker_t *w, struct sl_hub_s *hub, unsigned index, char *err, size_t errlen);
int sl_worker_start(sl_worker_t *w);
void sl_worker_join(sl_worker_t *w);
void sl_worker_destroy(sl_worker_t *w);

/* The port listener i of this worker is bound to. */
int sl_worker_port(const sl_worker_t *w, unsigned i);

/* From any thread: appends a message (the frame reference moves into it). Caller holds the hub's
 * publish lock when order matters. Returns 1 if the worker must be woken. */
int sl_worker_post(sl_worker_t *w, sl_msg_kind_t kind, sl_frame_t *frame);
void sl_worker_wake(sl_worker_t *w);

/* Milliseconds of the worker's loop clock. */
uint64_t sl_worker_now(const sl_worker_t *w);

/* Connection output and lifetime (conn.c). */
/* Queues a frame reference (taken here) for writing; the write happens at the end of this loop
 * turn. Returns 0, or -ENOBUFS when a stream passed --max-queue (it is then evicted). */
int sl_conn_send(sl_conn_t *c, sl_frame_t *f);
/* Queues an update for a subscriber on the fan-out list: it is written when the flush window
 * ends (server.c). Same results as sl_conn_send. */
int sl_conn_send_update(sl_conn_t *c, sl_frame_t *f);
/* Queues an update replayed from history as a stream opens: --max-queue does not apply to it
 * (the caller then sets q_opening), so that a client back from a long absence can catch up;
 * updates that come after it count. */
int sl_conn_send_opening(sl_conn_t *c, sl_frame_t *f);
/* Copies bytes into a raw frame and queues it. */
int sl_conn_send_raw(sl_conn_t *c, const char *bytes, size_t len);
/* Writes every connection on the flush list: one sendmsg each. */
void sl_worker_flush(sl_worker_t *w);
/* Moves every subscriber on the fan-out list to the flush list, to be written this turn (the
 * window's timer and clock are server.c's). */
void sl_worker_fanout_splice(sl_worker_t *w);
/* A held publisher's last answer may go: the connection writes again. */
void sl_conn_unhold(sl_conn_t *c);
/* Ends the connection now; safe from its own callbacks (the memory goes in the close callback). */
void sl_conn_close(sl_conn_t *c);
/* Ends a connection cleanly: once its queue is written, FIN, then wait for the client's FIN. */
void sl_conn_end(sl_conn_t *c);
/* Accepts fd as a new connection of w. */
void sl_conn_accept(sl_worker_t *w, int fd);
/* What the worker's epoll set reported for c (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP). */
void sl_conn_io(sl_conn_t *c, uint32_t events);
/* Frees every closed connection (server.c's reaper, and teardown). */
void sl_worker_reap(sl_worker_t *w);
/* Timeouts, heartbeat and expiry of one connection, at loop time now. */
void sl_conn_sweep(sl_conn_t *c, uint64_t now);
/* A connection of w was freed (conn.c tells server.c, which may finish the drain). */
void sl__worker_conn_gone(sl_worker_t *w);
/* A connection of w was closed: free it once the loop turn is over. */
void sl__worker_reap_soon(sl_worker_t *w);

#endif
