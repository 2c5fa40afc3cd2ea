/* conn.h — one client connection as pure transport: reading into its worker's shared buffer,
 * a ring of frame references written by one sendmsg (writev), timeouts of the transport itself
 * (a stalled write, the linger after our FIN), the clean end (whole frames, FIN, then wait for the
 * client's FIN so it never sees a reset), hard close, and the live hand-off (freeze, export,
 * release, adopt). It knows nothing of HTTP: it talks to the protocol that owns the connection
 * through the callback table the protocol gave it (sl_conn_cbs_t), and it never decides when to
 * write: the delivery layer (delivery.c) does, and calls sl__conn_flush.
 *
 * Readiness comes from the worker's epoll set, level-triggered. A closed connection's socket is
 * closed at once, but its memory is freed by sl__transport_reap after the loop turn, when nothing
 * points to it any more. */
#ifndef SL_CONN_H
#define SL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/frame.h"
#include "common/metrics.h"
#include "sluice.h"

#define SL_READ_BUF_SIZE (64 * 1024) /* one per worker, shared by its connections */

typedef struct sl_conn_s sl_conn_t;
typedef struct sl_transport_s sl_transport_t;
struct sl_wire_s;
struct sl_wire_reader_s;

/* Every flag of a connection, in one place. Written by conn.c and, for the bits marked
 * "delivery", by delivery.c (which owns the lists they describe). */
enum {
  SL_CONN_STREAM = 1 << 0,       /* a long one-way response: its queue never pauses reading */
  SL_CONN_CHUNKED = 1 << 1,      /* frames go out with their chunk framing; a clean end adds the
                                    terminator frame */
  SL_CONN_CLOSE_AFTER = 1 << 2,  /* end once the queue is written (no keep-alive) */
  SL_CONN_FIN_SENT = 1 << 3,     /* shutdown(SHUT_WR) done; waiting for the client's FIN */
  SL_CONN_WANT_WRITE = 1 << 4,   /* the kernel buffer was full: waiting for EPOLLOUT */
  SL_CONN_IN_FLUSH = 1 << 5,     /* delivery: on the flush list (or, with IN_FANOUT, the fan-out) */
  SL_CONN_CLOSING = 1 << 6,      /* closed; freed by the reaper after the loop turn */
  SL_CONN_EVICTED = 1 << 7,      /* delivery: a slow consumer, ends after its current frame */
  SL_CONN_DRAINING = 1 << 8,     /* ended by the drain: counted in drained_total when it ends clean */
  SL_CONN_READ_PAUSED = 1 << 9,  /* the protocol paused reading (sl__conn_pause_read) */
  SL_CONN_HARD_CLOSE = 1 << 10,  /* close without waiting for anything */
  SL_CONN_IN_FANOUT = 1 << 11,   /* delivery: on the fan-out list (written when the window ends) */
  SL_CONN_CORKED = 1 << 12,      /* writes wait until sl__conn_uncork (held publish answers) */
  SL_CONN_TERMINATED = 1 << 13,  /* the chunked terminator is queued */
  SL_CONN_READ_EOF = 1 << 14,    /* the client half-closed */
  SL_CONN_POLL_R = 1 << 15,      /* registered for EPOLLIN */
  SL_CONN_POLL_W = 1 << 16,      /* registered for EPOLLOUT */
  SL_CONN_DETACHED = 1 << 17,    /* released to another process: the socket lives on there */
  SL_CONN_REFUSED_FULL = 1 << 18,   /* not admitted: the hub holds all it may (the protocol
                                       answers so and ends) */
  SL_CONN_REFUSED_CLIENT = 1 << 19, /* not admitted: its address holds all it may */
  SL_CONN_PAGING = 1 << 20,      /* a stream still paging its replay from history: live updates
                                    pass it by (delivery), as its owner reads them from history */
  SL_CONN_FROZEN = 1 << 21,      /* being handed to another process: out of the epoll set, and
                                    nothing is written, until handed (released) or thawed */
};

/* How the transport reaches the protocol that owns a connection. Every callback runs on the
 * worker's thread, from inside the transport; the connection may be closed from within any of
 * them (its memory stays valid until the reaper runs). */
typedef struct sl_conn_cbs_s {
  /* Bytes arrived; borrowed for the call. */
  void (*on_data)(sl_conn_t *c, const char *data, size_t len);
  /* The client half-closed while the connection was still taking requests. */
  void (*on_eof)(sl_conn_t *c);
  /* The periodic sweep, at loop time now (ms): the protocol's own deadlines. */
  void (*on_timeout)(sl_conn_t *c, uint64_t now);
  /* The queue was written out and the connection goes on; or, with q_low set, a write left no
   * more than q_low bytes queued. */
  void (*on_writable)(sl_conn_t *c);
  /* The connection is closing (or released to another process: SL_CONN_DETACHED): release what the protocol holds. Called once. */
  void (*on_close)(sl_conn_t *c);
  /* The worker drains: end at the protocol's next boundary. */
  void (*on_shutdown)(sl_conn_t *c);
  /* The clean end began (sl__conn_end, once): the connection takes no more frames, though its
   * last bytes may take a while to go. May be NULL. */
  void (*on_end)(sl_conn_t *c);
  /* The live hand-off (may all be NULL: such a protocol's connections stay and end here).
   * on_quiesce: take no new request (one being read is finished). on_export: with out NULL, says
   * whether the connection can go now (1), not yet (0: a request is still being read or
   * answered), or never (-1: it is ending; it ends here); with out, writes the protocol's state
   * after the transport's and returns 1, or -ENOMEM. on_thaw: the hand-off failed; go on as
   * before on_quiesce. */
  void (*on_quiesce)(sl_conn_t *c);
  int (*on_export)(sl_conn_t *c, struct sl_wire_s *out);
  void (*on_thaw)(sl_conn_t *c);
} sl_conn_cbs_t;

/* One connection. Allocated by the transport with the size its protocol asked for, so that the
 * protocol's state (which begins with this struct) costs no allocation of its own. */
struct sl_conn_s {
  sl_transport_t *net;
  const sl_conn_cbs_t *cbs;
  sl_conn_t *prev, *next;        /* every open connection of the worker */
  sl_conn_t *next_flush;         /* delivery: the flush list or the fan-out list */
  sl_conn_t **pprev_flush;       /* delivery: on the fan-out list, the pointer that points here */
  sl_conn_t *next_closed;        /* closed, waiting for the reaper */
  int fd;
  uint32_t flags;                /* SL_CONN_* */
  /* Output: a ring of frame references; q_off bytes of the first one are already written. */
  sl_frame_t **q;
  uint32_t q_head, q_len, q_cap, q_off;
  size_t q_bytes;                /* bytes queued and not yet written */
  size_t q_opening;              /* of those, bytes at the queue's front that the owner exempts
                                    from its queue limit (a stream's head and replay); shrinks as
                                    they are written */
  size_t q_low;                  /* low-water mark: a write that leaves q_bytes at or below it,
                                    with frames still queued, tells the protocol (on_writable)
                                    so it can refill before the queue runs dry; 0 = only when
                                    the queue is empty */
  uint64_t deadline;             /* loop ms; the protocol's (header, idle) until our FIN, then the
                                    linger's; 0 = none */
  uint64_t last_write;           /* loop ms of the last write */
  uint32_t corks;                /* sl__conn_cork calls not yet undone */
  uint32_t ticket;               /* the worker's admission ticket, released when it closes */
};

/* What the transport of one worker shares: its connections, the epoll set they are watched by,
 * the read buffer. Embedded in the worker; written by conn.c only, after sl__transport_init. */
struct sl_transport_s {
  uv_loop_t *loop;               /* the worker's: its clock */
  int epfd;                      /* the epoll set of every connection's socket */
  unsigned index;                /* the worker's, for logs */
  const sl_config_t *cfg;
  sl_metrics_t *metrics;
  char *read_buf;                /* SL_READ_BUF_SIZE, shared by every connection */
  sl_conn_t *conns;              /* every open connection */
  size_t conn_count;
  sl_conn_t *closed_head;        /* closed, freed by sl__transport_reap */
  int draining;                  /* sl__transport_shutdown ran */
  /* Set by the worker: the reaper must run after this turn; a connection was freed. */
  void (*reap_soon)(sl_transport_t *t);
  void (*conn_freed)(sl_transport_t *t);
  void (*conn_closed)(sl_transport_t *t, sl_conn_t *c); /* closed or released: may be NULL */
  void *owner;                   /* the worker, for those two */
  void *sched;                   /* the delivery layer's, to find itself from a connection */
  /* The protocol every accepted connection speaks, the size of its per-connection state, and its
   * per-worker context (http.c's), for the protocol to find through c->net. */
  const sl_conn_cbs_t *proto;
  size_t proto_size;
  void (*proto_open)(sl_conn_t *c);
  void *proto_ctx;
  /* Takes over the protocol's state of a connection handed from another process (what its
   * on_export wrote there); 0, or a negative errno (the connection is then closed). */
  int (*proto_adopt)(sl_conn_t *c, struct sl_wire_reader_s *in);
};

/* 0, or -ENOMEM. The epoll set is the caller's (the worker watches it). */
int sl__transport_init(sl_transport_t *t, uv_loop_t *loop, int epfd, unsigned index,
                       const sl_config_t *cfg, sl_metrics_t *metrics);
/* The protocol of every connection accepted from now on: its callbacks, the size of its
 * per-connection state (which begins with sl_conn_t), what sets a new one up (may be NULL), and
 * its per-worker context. */
void sl__transport_set_protocol(sl_transport_t *t, const sl_conn_cbs_t *cbs, size_t size,
                                void (*open)(sl_conn_t *c), void *ctx);
/* Frees every connection still open (hard) and the buffer. */
void sl__transport_destroy(sl_transport_t *t);
/* Frees every closed connection (after the loop turn). */
void sl__transport_reap(sl_transport_t *t);
/* The drain: marks the transport draining and asks each open connection's protocol to end. */
void sl__transport_shutdown(sl_transport_t *t);
/* Closes every open connection hard; returns how many. */
size_t sl__transport_close_all(sl_transport_t *t);
/* Timeouts of every connection at loop time now: the transport's own, then the protocol's. */
void sl__transport_sweep(sl_transport_t *t, uint64_t now);
static inline uint64_t sl__transport_now(const sl_transport_t *t) {
  return uv_now(t->loop);
}

/* A new connection on fd, speaking the transport's protocol; flags may say it was refused
 * (SL_CONN_REFUSED_*: the protocol answers why and ends it) and ticket is the worker's, given
 * back through conn_closed. NULL (and fd closed) when out of memory or the socket cannot be
 * watched. */
sl_conn_t *sl__conn_accept(sl_transport_t *t, int fd, uint32_t flags, uint32_t ticket);
/* What the epoll set reported for c (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP). */
void sl__conn_io(sl_conn_t *c, uint32_t events);

/* Appends a frame reference (taken here) to the queue; nothing is written until sl__conn_flush.
 * 0, -EPIPE when the connection is ending and takes nothing more, or -ENOMEM. */
int sl__conn_push(sl_conn_t *c, sl_frame_t *f);
/* Bytes f takes on this connection's wire. */
static inline size_t sl__conn_frame_len(const sl_conn_t *c, const sl_frame_t *f) {
  size_t len;
  sl__frame_bytes(f, c->flags & SL_CONN_CHUNKED, &len);
  return len;
}
/* On a corked connection: appends a placeholder for a frame known later (an answer that waits for
 * storage) and returns its place, counted from the queue's head, which stays put while the
 * connection is corked. 0, or as sl__conn_push. */
int sl__conn_reserve(sl_conn_t *c, uint32_t *slot);
/* Puts f (reference taken) where sl__conn_reserve kept a place. */
void sl__conn_fill(sl_conn_t *c, uint32_t slot, sl_frame_t *f);
/* Drops the queued frames keep() refuses, but never the one half written. */
void sl__conn_drop(sl_conn_t *c, int (*keep)(const sl_frame_t *f));
/* Writes the queue (one sendmsg of up to a batch of frames); what the kernel does not take waits
 * for EPOLLOUT. With an empty queue: finishes an ending connection (FIN) or tells the protocol
 * it is writable. Does nothing on a corked connection. */
void sl__conn_flush(sl_conn_t *c);

/* Ends cleanly: once the queue is written (with the chunked terminator on a chunked stream),
 * FIN, then wait for the client's FIN. The caller flushes. */
void sl__conn_end(sl_conn_t *c);
/* Ends now; safe from the connection's own callbacks (the memory goes after the loop turn).
 * With SL_CONN_HARD_CLOSE and unsent output, the client gets a reset, never a truncated frame it
 * might trust. */
void sl__conn_close(sl_conn_t *c);
/* The live hand-off, on the worker's thread. Freeze: the connection leaves the epoll set and
 * writes nothing (what it has queued waits); thaw undoes it and writes what waited. Export
 * writes the transport's state of a frozen connection (its stream flags, the age of its last
 * write, and every byte queued and not yet written, the rest of a half-written frame first) and
 * then its protocol's. Release: the other process has it; this copy closes without a FIN or a
 * reset (the socket lives on there), and the protocol is told (on_close, with
 * SL_CONN_DETACHED set). */
void sl__conn_freeze(sl_conn_t *c);
void sl__conn_thaw(sl_conn_t *c);
int sl__conn_export(sl_conn_t *c, struct sl_wire_s *out);
void sl__conn_release(sl_conn_t *c);
/* A connection handed from another process, on fd, speaking the transport's protocol: reads
 * what sl__conn_export wrote, then the protocol's state (proto_adopt), and starts watching the
 * socket. NULL when out of memory or the record is bad (fd then closed, ticket given back). */
sl_conn_t *sl__conn_adopt(sl_transport_t *t, int fd, struct sl_wire_reader_s *in, uint32_t ticket);

/* The same, for every connection of a transport. Quiesce asks each protocol to take no new
 * request; busy counts those still reading or answering one. Export freezes each connection
 * that can go and hands cb its socket and record (cb copies what it keeps; a negative return
 * stops the export with that error). Release lets go of every frozen connection (the other
 * process took them), returning how many; thaw brings every one back (the hand-off failed). */
typedef int (*sl_conn_export_cb)(void *arg, int fd, const struct sl_wire_s *record);
void sl__transport_quiesce(sl_transport_t *t);
size_t sl__transport_busy(sl_transport_t *t);
int sl__transport_export(sl_transport_t *t, sl_conn_export_cb cb, void *arg);
size_t sl__transport_release(sl_transport_t *t);
void sl__transport_release_all(sl_transport_t *t); /* every connection, frozen or not */
void sl__transport_thaw(sl_transport_t *t);

/* Reading stops (the protocol has enough to answer) until sl__conn_resume_read. */
void sl__conn_pause_read(sl_conn_t *c);
void sl__conn_resume_read(sl_conn_t *c);
/* Writes wait while the connection is corked; uncork returns 1 when the last cork went (the
 * caller then flushes). */
void sl__conn_cork(sl_conn_t *c);
int sl__conn_uncork(sl_conn_t *c);
/* Sets the protocol's deadline (loop ms, 0 = none); ignored once our FIN is sent. */
void sl__conn_set_deadline(sl_conn_t *c, uint64_t deadline);
/* Sets flags the protocol owns the meaning of (SL_CONN_STREAM, SL_CONN_CHUNKED,
 * SL_CONN_CLOSE_AFTER, SL_CONN_DRAINING, SL_CONN_HARD_CLOSE, SL_CONN_EVICTED, SL_CONN_PAGING). */
void sl__conn_mark(sl_conn_t *c, uint32_t flags);
/* The protocol's low-water mark (q_low): a write that leaves at most bytes queued calls
 * on_writable, so that it can refill; 0 turns it off. */
void sl__conn_set_low_water(sl_conn_t *c, size_t bytes);
/* The stream's replay is over (caught up, or stopped): live updates reach it again, and its
 * low-water mark is off. */
void sl__conn_paging_done(sl_conn_t *c);

#endif
