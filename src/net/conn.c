/* conn.c — the transport of one connection (see conn.h): the socket's place in the worker's
 * epoll set, reads handed to the protocol, the queue of frame references and its writes, the
 * transport's own timeouts, the clean end, hard close and the hand-off. What to send and when to write
 * is decided above (delivery.c); what the bytes mean, by the protocol (http.c). */
#include "net/conn.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/wire.h"

#define IOV_BATCH 1024     /* frames per sendmsg */
#define READS_PER_TURN 16  /* reads of one connection per readiness event */
#define RING_FIRST_CAP 4   /* frames a new queue holds before it grows */
#define MS_PER_S 1000

int sl__transport_init(sl_transport_t *t, uv_loop_t *loop, int epfd, unsigned index,
                       const sl_config_t *cfg, sl_metrics_t *metrics) {
  memset(t, 0, sizeof *t);
  t->loop = loop;
  t->epfd = epfd;
  t->index = index;
  t->cfg = cfg;
  t->metrics = metrics;
  t->read_buf = malloc(SL_READ_BUF_SIZE);
  return t->read_buf ? 0 : -ENOMEM;
}

void sl__transport_set_protocol(sl_transport_t *t, const sl_conn_cbs_t *cbs, size_t size,
                                void (*open)(sl_conn_t *c), void *ctx) {
  assert(cbs != NULL && size >= sizeof(sl_conn_t));
  t->proto = cbs;
  t->proto_size = size;
  t->proto_open = open;
  t->proto_ctx = ctx;
}

/* Brings the socket's registration in the epoll set in line with what the connection waits for.
 * A socket waiting for nothing leaves the set: epoll reports hang-ups even to an empty interest
 * mask. A connection that cannot be watched could never finish: it is closed. */
static void poll_update(sl_conn_t *c) {
  if (c->flags & SL_CONN_CLOSING)
    return;
  uint32_t want = 0;
  if (!(c->flags & (SL_CONN_READ_PAUSED | SL_CONN_READ_EOF | SL_CONN_FROZEN)))
    want |= SL_CONN_POLL_R;
  if ((c->flags & (SL_CONN_WANT_WRITE | SL_CONN_FROZEN)) == SL_CONN_WANT_WRITE)
    want |= SL_CONN_POLL_W;
  uint32_t have = c->flags & (SL_CONN_POLL_R | SL_CONN_POLL_W);
  if (want == have)
    return;
  struct epoll_event ev = {.events = ((want & SL_CONN_POLL_R) ? EPOLLIN : 0) |
                                     ((want & SL_CONN_POLL_W) ? EPOLLOUT : 0),
                           .data.ptr = c};
  int op = have == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(c->net->epfd, op, c->fd, &ev)) {
    sl__log(SL_LOG_ERROR, "worker %u: cannot watch a connection: %s; closing it", c->net->index,
           strerror(errno));
    c->flags |= SL_CONN_HARD_CLOSE;
    sl__conn_close(c);
    return;
  }
  c->flags = (c->flags & ~(uint32_t)(SL_CONN_POLL_R | SL_CONN_POLL_W)) | want;
}

sl_conn_t *sl__conn_accept(sl_transport_t *t, int fd, uint32_t flags, uint32_t ticket) {
  assert(t->proto != NULL && t->proto_size >= sizeof(sl_conn_t));
  assert((flags & ~(uint32_t)(SL_CONN_REFUSED_FULL | SL_CONN_REFUSED_CLIENT)) == 0);
  sl_conn_t *c = calloc(1, t->proto_size);
  if (c == NULL) {
    sl__log(SL_LOG_ERROR, "worker %u: out of memory for a new connection", t->index);
    close(fd);
    sl_conn_t gone = {.ticket = ticket};
    if (t->conn_closed)
      t->conn_closed(t, &gone);
    return NULL;
  }
  c->flags = flags;
  c->ticket = ticket;
  /* TCP_NODELAY comes from the listener: Linux copies it into every accepted socket. */
  c->net = t;
  c->cbs = t->proto;
  c->fd = fd;
  c->last_write = sl__transport_now(t);
  c->next = t->conns;
  if (t->conns)
    t->conns->prev = c;
  t->conns = c;
  t->conn_count++;
  sl__metric_add(&t->metrics->connections, 1);
  sl__metric_add(&t->metrics->accepted_total, 1);
  if (t->proto_open)
    t->proto_open(c);
  poll_update(c);
  return (c->flags & SL_CONN_CLOSING) ? NULL : c;
}

/* Frees one closed connection: called by the reaper, after the loop turn. */
static void conn_free(sl_conn_t *c) {
  sl_transport_t *t = c->net;
  assert(c->flags & SL_CONN_CLOSING);
  for (uint32_t i = 0; i < c->q_len; i++)
    sl__frame_unref(c->q[(c->q_head + i) % c->q_cap]);
  sl__metric_sub(&t->metrics->queued_bytes, c->q_bytes);
  free(c->q);
  if (c->prev)
    c->prev->next = c->next;
  else
    t->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  t->conn_count--;
  sl__metric_sub(&t->metrics->connections, 1);
  free(c);
  if (t->conn_freed)
    t->conn_freed(t);
}

void sl__transport_reap(sl_transport_t *t) {
  while (t->closed_head) {
    sl_conn_t *c = t->closed_head;
    t->closed_head = c->next_closed;
    conn_free(c);
  }
}

/* Out of the epoll set explicitly: close() alone would leave the socket there while another
 * process (a fork of an embedding program, or the receiver of a hand-off) still holds it, with a
 * pointer about to be freed. An event for it already fetched in this turn finds the connection
 * CLOSING and is skipped. */
static void leave(sl_conn_t *c) {
  sl_transport_t *t = c->net;
  if (t->conn_closed)
    t->conn_closed(t, c);
  if (c->flags & (SL_CONN_POLL_R | SL_CONN_POLL_W))
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  c->flags &= ~(uint32_t)(SL_CONN_POLL_R | SL_CONN_POLL_W);
  c->next_closed = t->closed_head;
  t->closed_head = c;
  if (t->reap_soon)
    t->reap_soon(t);
}

void sl__conn_close(sl_conn_t *c) {
  assert(c->cbs != NULL);
  if (c->flags & SL_CONN_CLOSING)
    return;
  c->flags |= SL_CONN_CLOSING;
  c->cbs->on_close(c);
  if ((c->flags & SL_CONN_HARD_CLOSE) && c->q_len > 0) {
    /* Unsent output: reset rather than leave the client a truncated frame it might trust. */
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  int fd = c->fd;
  leave(c);
  close(fd);
  c->fd = -1;
}

int sl__conn_push(sl_conn_t *c, sl_frame_t *f) {
  assert(f != NULL && c->net != NULL);
  if (c->flags & (SL_CONN_CLOSING | SL_CONN_TERMINATED | SL_CONN_FIN_SENT))
    return -EPIPE;
  if (c->q_len == c->q_cap) {
    uint32_t cap = c->q_cap ? c->q_cap * 2 : RING_FIRST_CAP;
    sl_frame_t **q = malloc(cap * sizeof *q);
    if (q == NULL)
      return -ENOMEM;
    for (uint32_t i = 0; i < c->q_len; i++)
      q[i] = c->q[(c->q_head + i) % c->q_cap];
    free(c->q);
    c->q = q;
    c->q_cap = cap;
    c->q_head = 0;
  }
  c->q[(c->q_head + c->q_len) % c->q_cap] = sl__frame_ref(f);
  c->q_len++;
  size_t len = sl__conn_frame_len(c, f);
  c->q_bytes += len;
  sl__metric_add(&c->net->metrics->queued_bytes, len);
  return 0;
}

/* What a reserved place holds until it is filled: no bytes. */
static sl_frame_t placeholder = {.len = 0, .flags = SL_FRAME_STATIC | SL_FRAME_RAW, .wire = (char *)""};

int sl__conn_reserve(sl_conn_t *c, uint32_t *slot) {
  assert(c->flags & SL_CONN_CORKED);
  int r = sl__conn_push(c, &placeholder);
  if (r == 0)
    *slot = c->q_len - 1;
  return r;
}

void sl__conn_fill(sl_conn_t *c, uint32_t slot, sl_frame_t *f) {
  assert(slot < c->q_len && (c->flags & SL_CONN_CORKED));
  sl_frame_t **at = &c->q[(c->q_head + slot) % c->q_cap];
  assert(*at == &placeholder);
  *at = sl__frame_ref(f);
  size_t len = sl__conn_frame_len(c, f);
  c->q_bytes += len;
  sl__metric_add(&c->net->metrics->queued_bytes, len);
}

void sl__conn_drop(sl_conn_t *c, int (*keep)(const sl_frame_t *f)) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < c->q_len; i++) {
    sl_frame_t *f = c->q[(c->q_head + i) % c->q_cap];
    if ((i == 0 && c->q_off > 0) || keep(f)) {
      c->q[(c->q_head + kept++) % c->q_cap] = f;
      continue;
    }
    size_t len = sl__conn_frame_len(c, f);
    c->q_bytes -= len;
    sl__metric_sub(&c->net->metrics->queued_bytes, len);
    sl__frame_unref(f);
  }
  c->q_len = kept;
  if (c->q_opening > c->q_bytes)
    c->q_opening = c->q_bytes;
}

/* Everything queued is written. */
static void queue_empty(sl_conn_t *c) {
  sl_transport_t *t = c->net;
  if (c->flags & SL_CONN_CLOSING)
    return;
  if (c->flags & SL_CONN_CLOSE_AFTER) {
    if (c->flags & SL_CONN_FIN_SENT)
      return;
    c->flags |= SL_CONN_FIN_SENT;
    if ((c->flags & (SL_CONN_DRAINING | SL_CONN_STREAM)) == (SL_CONN_DRAINING | SL_CONN_STREAM))
      sl__metric_add(&t->metrics->drained_total, 1);
    if (c->flags & SL_CONN_READ_EOF) {
      sl__conn_close(c);
      return;
    }
    /* Our FIN now; the socket is closed when the client's FIN arrives or the linger passes. */
    shutdown(c->fd, SHUT_WR);
    c->flags &= ~(uint32_t)SL_CONN_READ_PAUSED;
    c->deadline = sl__transport_now(t) + (uint64_t)(t->cfg->linger * MS_PER_S);
    poll_update(c);
    return;
  }
  if (c->cbs->on_writable)
    c->cbs->on_writable(c);
}

/* One sendmsg of as many queued frames as fit in one iovec batch. */
static void conn_write(sl_conn_t *c) {
  sl_transport_t *t = c->net;
  struct iovec iov[IOV_BATCH];
  int chunked = (c->flags & SL_CONN_CHUNKED) != 0;
  uint32_t n = c->q_len < IOV_BATCH ? c->q_len : IOV_BATCH;
  for (uint32_t i = 0; i < n; i++) {
    size_t len;
    const char *p = sl__frame_bytes(c->q[(c->q_head + i) % c->q_cap], chunked, &len);
    if (i == 0) {
      p += c->q_off;
      len -= c->q_off;
    }
    iov[i].iov_base = (void *)p;
    iov[i].iov_len = len;
  }
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
  /* The last write before our FIN: MSG_MORE holds the segment back, and the shutdown() that
   * follows sets FIN on it, so the client gets the end of the stream in one segment. */
  int more = n == c->q_len &&
             (c->flags & (SL_CONN_CLOSE_AFTER | SL_CONN_FIN_SENT)) == SL_CONN_CLOSE_AFTER;
  ssize_t sent;
  do
    sent = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
  while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      c->flags |= SL_CONN_WANT_WRITE;
      poll_update(c);
      return;
    }
    /* The client is gone (EPIPE, ECONNRESET): nothing more can reach it. */
    sl__conn_close(c);
    return;
  }
  size_t left = (size_t)sent;
  uint64_t delivered = 0;
  c->q_bytes -= left;
  sl__metric_sub(&t->metrics->queued_bytes, left);
  c->q_opening -= c->q_opening < left ? c->q_opening : left; /* it is at the queue's front */
  sl__metric_add(&t->metrics->bytes_out_total, left);
  sl__metric_add(&t->metrics->writes_total, 1);
  while (left > 0) {
    sl_frame_t *f = c->q[c->q_head];
    size_t rest = sl__conn_frame_len(c, f) - c->q_off;
    if (left < rest) {
      c->q_off += (uint32_t)left;
      break;
    }
    left -= rest;
    c->q_off = 0;
    if (f->seq > 0)
      delivered++;
    sl__frame_unref(f);
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
  }
  if (delivered)
    sl__metric_add(&t->metrics->delivered_total, delivered);
  c->last_write = sl__transport_now(t);
  if (c->q_low > 0 && c->q_len > 0 && c->q_bytes <= c->q_low && c->cbs->on_writable &&
      !(c->flags & SL_CONN_CLOSE_AFTER)) {
    /* Below the owner's low-water mark: it refills now, while the kernel still has bytes to
     * send, so the stream never waits for a refill. */
    c->cbs->on_writable(c);
    if (c->flags & SL_CONN_CLOSING)
      return;
  }
  if (c->q_len > 0) {
    /* Kernel buffer full, or more than one batch: the rest goes when the socket is writable. */
    c->flags |= SL_CONN_WANT_WRITE;
    poll_update(c);
    return;
  }
  if (c->flags & SL_CONN_WANT_WRITE) {
    c->flags &= ~(uint32_t)SL_CONN_WANT_WRITE;
    poll_update(c);
  }
  queue_empty(c);
}

void sl__conn_flush(sl_conn_t *c) {
  assert(!(c->flags & SL_CONN_DETACHED) || (c->flags & SL_CONN_CLOSING));
  if (c->flags & (SL_CONN_CLOSING | SL_CONN_FROZEN))
    return;
  if (c->flags & SL_CONN_HARD_CLOSE)
    sl__conn_close(c);
  else if (c->flags & (SL_CONN_WANT_WRITE | SL_CONN_CORKED))
    return; /* written when the socket turns writable, or when uncorked */
  else if (c->q_len > 0)
    conn_write(c);
  else
    queue_empty(c);
}

void sl__conn_end(sl_conn_t *c) {
  if (c->flags & SL_CONN_CLOSING)
    return;
  int first = !(c->flags & SL_CONN_CLOSE_AFTER);
  c->flags |= SL_CONN_CLOSE_AFTER;
  if (first && c->cbs->on_end)
    c->cbs->on_end(c);
  if ((c->flags & (SL_CONN_STREAM | SL_CONN_CHUNKED)) == (SL_CONN_STREAM | SL_CONN_CHUNKED) &&
      !(c->flags & SL_CONN_TERMINATED)) {
    sl__conn_push(c, &sl__frame_terminator);
    c->flags |= SL_CONN_TERMINATED;
  }
}

void sl__conn_pause_read(sl_conn_t *c) {
  c->flags |= SL_CONN_READ_PAUSED;
  poll_update(c);
}

void sl__conn_resume_read(sl_conn_t *c) {
  if (!(c->flags & SL_CONN_READ_PAUSED))
    return;
  c->flags &= ~(uint32_t)SL_CONN_READ_PAUSED;
  poll_update(c);
}

void sl__conn_cork(sl_conn_t *c) {
  c->corks++;
  c->flags |= SL_CONN_CORKED;
}

int sl__conn_uncork(sl_conn_t *c) {
  assert(c->corks > 0);
  if (--c->corks > 0)
    return 0;
  c->flags &= ~(uint32_t)SL_CONN_CORKED;
  return 1;
}

void sl__conn_set_deadline(sl_conn_t *c, uint64_t deadline) {
  if (!(c->flags & SL_CONN_FIN_SENT))
    c->deadline = deadline;
}

void sl__conn_mark(sl_conn_t *c, uint32_t flags) {
  assert((flags & ~(uint32_t)(SL_CONN_STREAM | SL_CONN_CHUNKED | SL_CONN_CLOSE_AFTER |
                              SL_CONN_DRAINING | SL_CONN_HARD_CLOSE | SL_CONN_EVICTED |
                              SL_CONN_PAGING)) == 0);
  c->flags |= flags;
}

void sl__conn_set_low_water(sl_conn_t *c, size_t bytes) {
  c->q_low = bytes;
}

void sl__conn_paging_done(sl_conn_t *c) {
  c->flags &= ~(uint32_t)SL_CONN_PAGING;
  c->q_low = 0;
}

static void conn_read(sl_conn_t *c) {
  sl_transport_t *t = c->net;
  for (int i = 0; i < READS_PER_TURN; i++) {
    ssize_t n = recv(c->fd, t->read_buf, SL_READ_BUF_SIZE, 0);
    if (n > 0) {
      if (c->flags & SL_CONN_FIN_SENT)
        continue; /* the client has nothing more to say; waiting for its FIN */
      c->cbs->on_data(c, t->read_buf, (size_t)n);
      if (c->flags & (SL_CONN_CLOSING | SL_CONN_READ_PAUSED))
        return;
      if ((size_t)n < SL_READ_BUF_SIZE)
        return; /* the socket is empty: the (level-triggered) poll says when more arrives */
      continue;
    }
    if (n == 0) {
      /* The client's FIN. After ours, or on a stream, the connection is over; a request
       * half-closed by its client is the protocol's to finish. */
      if (c->flags & (SL_CONN_FIN_SENT | SL_CONN_STREAM)) {
        if (c->q_off > 0)
          c->flags |= SL_CONN_HARD_CLOSE; /* a frame is half out: a reset, never a clean cut */
        sl__conn_close(c);
        return;
      }
      c->flags |= SL_CONN_READ_EOF;
      c->cbs->on_eof(c);
      poll_update(c);
      return;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      sl__conn_close(c);
    return;
  }
}

void sl__conn_io(sl_conn_t *c, uint32_t events) {
  if (c->flags & (SL_CONN_CLOSING | SL_CONN_FROZEN))
    return;
  /* An error or hang-up is seen by the next write or read, which then closes the connection. */
  if (events & (EPOLLERR | EPOLLHUP))
    events |= EPOLLIN | EPOLLOUT;
  if ((events & EPOLLOUT) && (c->flags & (SL_CONN_WANT_WRITE | SL_CONN_CORKED)) ==
                                (SL_CONN_WANT_WRITE | SL_CONN_CORKED)) {
    /* Writable, but corked: nothing goes until the last cork is undone (whoever undoes it
     * flushes), and a writable socket left in the set would wake the loop every turn. */
    c->flags &= ~(uint32_t)SL_CONN_WANT_WRITE;
    poll_update(c);
  } else if ((events & EPOLLOUT) && (c->flags & SL_CONN_WANT_WRITE)) {
    /* conn_write keeps WANT_WRITE (and EPOLLOUT) while it is still blocked and drops both once
     * the queue is out. */
    if (c->q_len > 0) {
      conn_write(c);
    } else {
      c->flags &= ~(uint32_t)SL_CONN_WANT_WRITE;
      poll_update(c);
      queue_empty(c);
    }
  }
  if ((events & EPOLLIN) && (c->flags & SL_CONN_POLL_R) && !(c->flags & SL_CONN_CLOSING))
    conn_read(c);
}

void sl__transport_sweep(sl_transport_t *t, uint64_t now) {
  const sl_config_t *cfg = t->cfg;
  sl_conn_t *next;
  for (sl_conn_t *c = t->conns; c; c = next) {
    next = c->next;
    if (c->flags & (SL_CONN_CLOSING | SL_CONN_FROZEN))
      continue;
    if (c->flags & SL_CONN_FIN_SENT) {
      if (now >= c->deadline)
        sl__conn_close(c);
      continue;
    }
    if ((c->flags & SL_CONN_WANT_WRITE) && cfg->write_timeout > 0 &&
        now - c->last_write > (uint64_t)(cfg->write_timeout * MS_PER_S)) {
      sl__log(SL_LOG_INFO, "worker %u: closing a connection whose writes stalled for %.0f s",
             t->index, cfg->write_timeout);
      c->flags |= SL_CONN_HARD_CLOSE;
      sl__conn_close(c);
      continue;
    }
    c->cbs->on_timeout(c, now);
  }
}

void sl__transport_shutdown(sl_transport_t *t) {
  t->draining = 1;
  sl_conn_t *next;
  for (sl_conn_t *c = t->conns; c; c = next) {
    next = c->next;
    if (!(c->flags & SL_CONN_CLOSING))
      c->cbs->on_shutdown(c);
  }
}

size_t sl__transport_close_all(sl_transport_t *t) {
  size_t n = 0;
  for (sl_conn_t *c = t->conns; c; c = c->next) {
    if (c->flags & SL_CONN_CLOSING)
      continue;
    c->flags |= SL_CONN_HARD_CLOSE;
    sl__conn_close(c);
    n++;
  }
  return n;
}

void sl__transport_destroy(sl_transport_t *t) {
  sl__transport_close_all(t);
  sl__transport_reap(t);
  free(t->read_buf);
  t->read_buf = NULL;
}

/* --- the live hand-off ------------------------------------------------------------------------ */

#define EXPORT_FLAGS (SL_CONN_STREAM | SL_CONN_CHUNKED)

void sl__conn_freeze(sl_conn_t *c) {
  assert(!(c->flags & SL_CONN_CLOSING));
  c->flags |= SL_CONN_FROZEN;
  poll_update(c);
}

void sl__conn_thaw(sl_conn_t *c) {
  if (!(c->flags & SL_CONN_FROZEN) || (c->flags & SL_CONN_CLOSING))
    return;
  c->flags &= ~(uint32_t)SL_CONN_FROZEN;
  poll_update(c);
  sl__conn_flush(c);
}

int sl__conn_export(sl_conn_t *c, sl_wire_t *out) {
  assert(c->flags & SL_CONN_FROZEN);
  uint64_t now = sl__transport_now(c->net);
  sl__wire_u32(out, c->flags & EXPORT_FLAGS);
  sl__wire_u64(out, now > c->last_write ? now - c->last_write : 0);
  /* The bytes not yet written, as they would have gone: the rest of a half-written frame, then
   * whole frames. The receiver writes them first, so the client sees one unbroken stream. */
  size_t at = sl__wire_mark(out);
  size_t total = 0;
  int chunked = (c->flags & SL_CONN_CHUNKED) != 0;
  for (uint32_t i = 0; i < c->q_len; i++) {
    size_t len;
    const char *p = sl__frame_bytes(c->q[(c->q_head + i) % c->q_cap], chunked, &len);
    if (i == 0) {
      p += c->q_off;
      len -= c->q_off;
    }
    if (len == 0)
      continue; /* a reserved place never filled, or an empty part */
    sl__wire_bytes(out, p, len);
    total++;
  }
  sl__wire_patch(out, at, (uint32_t)total);
  if (out->failed)
    return -ENOMEM;
  return c->cbs->on_export ? c->cbs->on_export(c, out) : -ENOTSUP;
}

void sl__conn_release(sl_conn_t *c) {
  if (c->flags & SL_CONN_CLOSING)
    return;
  /* No shutdown() and no linger: the other process holds the same socket, and this close only
   * drops this process's reference to it. */
  c->flags |= SL_CONN_CLOSING | SL_CONN_DETACHED;
  c->cbs->on_close(c);
  int fd = c->fd;
  leave(c);
  close(fd);
  c->fd = -1;
}

sl_conn_t *sl__conn_adopt(sl_transport_t *t, int fd, sl_wire_reader_t *in, uint32_t ticket) {
  assert(t->proto != NULL && t->proto_adopt != NULL);
  uint32_t flags = sl__wire_get_u32(in) & EXPORT_FLAGS;
  uint64_t age = sl__wire_get_u64(in);
  uint32_t parts = sl__wire_get_u32(in);
  sl_conn_t *c = in->bad ? NULL : calloc(1, t->proto_size);
  if (c == NULL) {
    close(fd);
    sl_conn_t gone = {.ticket = ticket};
    if (t->conn_closed)
      t->conn_closed(t, &gone);
    return NULL;
  }
  c->flags = flags;
  c->ticket = ticket;
  c->net = t;
  c->cbs = t->proto;
  c->fd = fd;
  uint64_t now = sl__transport_now(t);
  c->last_write = now > age ? now - age : 0;
  c->next = t->conns;
  if (t->conns)
    t->conns->prev = c;
  t->conns = c;
  t->conn_count++;
  sl__metric_add(&t->metrics->connections, 1);
  int r = 0;
  for (uint32_t i = 0; i < parts && r == 0; i++) {
    size_t len;
    const unsigned char *p = sl__wire_get_bytes(in, &len);
    if (in->bad)
      break;
    sl_frame_t *f = sl__frame_raw((const char *)p, len);
    r = f ? sl__conn_push(c, f) : -ENOMEM;
    if (f)
      sl__frame_unref(f);
  }
  if (r == 0 && !in->bad)
    r = t->proto_adopt(c, in);
  if (r || in->bad) {
    /* Given back untouched: the sending process still holds it and goes on serving it if the
     * hand-off fails, so nothing here may end it (no FIN, no reset). */
    sl__conn_release(c);
    return NULL;
  }
  poll_update(c);
  return (c->flags & SL_CONN_CLOSING) ? NULL : c;
}

void sl__transport_quiesce(sl_transport_t *t) {
  for (sl_conn_t *c = t->conns; c; c = c->next)
    if (!(c->flags & SL_CONN_CLOSING) && c->cbs->on_quiesce)
      c->cbs->on_quiesce(c);
}

size_t sl__transport_busy(sl_transport_t *t) {
  size_t n = 0;
  for (sl_conn_t *c = t->conns; c; c = c->next)
    if (!(c->flags & SL_CONN_CLOSING) && c->cbs->on_export && c->cbs->on_export(c, NULL) == 0)
      n++;
  return n;
}

int sl__transport_export(sl_transport_t *t, sl_conn_export_cb cb, void *arg) {
  for (sl_conn_t *c = t->conns; c; c = c->next) {
    if ((c->flags & SL_CONN_CLOSING) || !c->cbs->on_export || c->cbs->on_export(c, NULL) != 1)
      continue;
    sl__conn_freeze(c);
    if (c->flags & SL_CONN_CLOSING)
      continue; /* it could not leave the epoll set, and closed */
    sl_wire_t w = {0};
    int r = sl__conn_export(c, &w);
    if (r == 0 || r == 1)
      r = cb(arg, c->fd, &w);
    sl__wire_free(&w);
    if (r < 0)
      return r;
  }
  return 0;
}

size_t sl__transport_release(sl_transport_t *t) {
  size_t n = 0;
  sl_conn_t *next;
  for (sl_conn_t *c = t->conns; c; c = next) {
    next = c->next;
    if ((c->flags & (SL_CONN_FROZEN | SL_CONN_CLOSING)) == SL_CONN_FROZEN) {
      sl__conn_release(c);
      n++;
    }
  }
  return n;
}

void sl__transport_release_all(sl_transport_t *t) {
  sl_conn_t *next;
  for (sl_conn_t *c = t->conns; c; c = next) {
    next = c->next;
    sl__conn_release(c);
  }
  sl__transport_reap(t);
}

void sl__transport_thaw(sl_transport_t *t) {
  sl_conn_t *next;
  for (sl_conn_t *c = t->conns; c; c = next) {
    next = c->next;
    if (c->flags & SL_CONN_CLOSING)
      continue;
    if (c->cbs->on_thaw)
      c->cbs->on_thaw(c);
    if (!(c->flags & SL_CONN_CLOSING))
      sl__conn_thaw(c);
  }
}
