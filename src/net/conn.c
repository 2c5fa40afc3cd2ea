/* conn.c — one client connection: reading into the worker's shared buffer and feeding the HTTP
 * parser, the output queue of frame references written with one sendmsg per loop turn, slow
 * consumer eviction, timeouts, and the clean end (whole frames, chunked terminator, FIN, then
 * wait for the client's FIN so it never sees a reset). Readiness comes from the worker's epoll
 * set (server.c), level-triggered; a closed connection's socket is closed at once but its memory
 * is freed by the worker's reaper after the loop turn, when nothing points to it any more. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "http/http.h"
#include "core/hub.h"
#include "common/log.h"
#include "net/pace.h"
#include "net/worker.h"

#define IOV_BATCH 1024               /* frames per sendmsg */
#define READS_PER_TURN 16
#define PIPELINE_QUEUE_LIMIT (1 << 20) /* stop reading a client that does not read its answers */

enum {
  SL_CONN_POLL_R = 1 << 16,
  SL_CONN_POLL_W = 1 << 17,
  SL_CONN_TERMINATED = 1 << 18,  /* the chunked terminator is queued */
  SL_CONN_READ_EOF = 1 << 19,    /* the client half-closed */
};

/* Brings the socket's registration in the worker's epoll set in line with what the connection
 * waits for. A socket waiting for nothing leaves the set: epoll reports hang-ups even to an
 * empty interest mask. A connection that cannot be watched could never finish: it is closed. */
static void conn_poll_update(sl_conn_t *c) {
  if (c->flags & SL_CONN_CLOSING)
    return;
  uint32_t want = 0;
  if (!(c->flags & (SL_CONN_READ_PAUSED | SL_CONN_READ_EOF)))
    want |= SL_CONN_POLL_R;
  if (c->flags & SL_CONN_WANT_WRITE)
    want |= SL_CONN_POLL_W;
  uint32_t have = c->flags & (SL_CONN_POLL_R | SL_CONN_POLL_W);
  if (want == have)
    return;
  struct epoll_event ev = {.events = ((want & SL_CONN_POLL_R) ? EPOLLIN : 0) |
                                     ((want & SL_CONN_POLL_W) ? EPOLLOUT : 0),
                           .data.ptr = c};
  int op = have == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(c->worker->epfd, op, c->fd, &ev)) {
    sl_log(SL_LOG_ERROR, "worker %u: cannot watch a connection: %s; closing it", c->worker->index,
           strerror(errno));
    c->flags |= SL_CONN_HARD_CLOSE;
    sl_conn_close(c);
    return;
  }
  c->flags = (c->flags & ~(uint32_t)(SL_CONN_POLL_R | SL_CONN_POLL_W)) | want;
}

void sl_conn_accept(sl_worker_t *w, int fd) {
  sl_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    sl_log(SL_LOG_ERROR, "worker %u: out of memory for a new connection", w->index);
    close(fd);
    return;
  }
  /* TCP_NODELAY comes from the listener: Linux copies it into every accepted socket. */
  c->worker = w;
  c->fd = fd;
  c->last_write = sl_worker_now(w);
  c->deadline = c->last_write + (uint64_t)(w->hub->cfg.header_timeout * 1000);
  sl__http_conn_init(c);
  c->next = w->conns;
  if (w->conns)
    w->conns->prev = c;
  w->conns = c;
  w->conn_count++;
  sl_metric_add(&w->metrics.connections, 1);
  sl_metric_add(&w->metrics.accepted_total, 1);
  conn_poll_update(c);
}

/* Frees one closed connection: called by the worker's reaper, after the loop turn. */
static void conn_free(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  for (uint32_t i = 0; i < c->q_len; i++)
    sl_frame_unref(c->q[(c->q_head + i) % c->q_cap]);
  free(c->q);
  sl__http_request_free(c);
  if (c->prev)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  w->conn_count--;
  sl_metric_sub(&w->metrics.connections, 1);
  free(c);
  sl__worker_conn_gone(w);
}

/* The fan-out list outlives a loop turn, so a connection that closes must leave it. */
static void fanout_list_remove(sl_conn_t *c) {
  *c->pprev_flush = c->next_flush;
  if (c->next_flush)
    c->next_flush->pprev_flush = c->pprev_flush;
  c->next_flush = NULL;
  c->pprev_flush = NULL;
  c->flags &= ~(uint32_t)(SL_CONN_IN_FLUSH | SL_CONN_IN_FANOUT);
}

void sl_worker_reap(sl_worker_t *w) {
  while (w->closed_head) {
    sl_conn_t *c = w->closed_head;
    w->closed_head = c->next_closed;
    conn_free(c);
  }
}

void sl_conn_close(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  if (c->flags & SL_CONN_CLOSING)
    return;
  if (c->flags & SL_CONN_IN_FANOUT)
    fanout_list_remove(c);
  if (c->flags & SL_CONN_HELD)
    sl_pace_forget(c);
  c->flags |= SL_CONN_CLOSING;
  if (c->sub) {
    sl_broker_remove(&c->worker->broker, c->sub);
    c->sub = NULL;
    sl_metric_sub(&c->worker->metrics.subscribers, 1);
  }
  if ((c->flags & SL_CONN_HARD_CLOSE) && c->q_len > 0) {
    /* Unsent output: reset rather than leave the client a truncated frame it might trust. */
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  /* Out of the epoll set explicitly: close() alone would leave it there while another process
   * (a fork of an embedding program) still holds the socket, with a pointer about to be freed.
   * An event for it already fetched in this turn finds the connection CLOSING and is skipped. */
  if (c->flags & (SL_CONN_POLL_R | SL_CONN_POLL_W))
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  c->next_closed = w->closed_head;
  w->closed_head = c;
  sl__worker_reap_soon(w);
}

static void flush_list_add(sl_conn_t *c) {
  if (c->flags & (SL_CONN_IN_FLUSH | SL_CONN_CLOSING))
    return;
  if ((c->flags & (SL_CONN_HELD | SL_CONN_HARD_CLOSE)) == SL_CONN_HELD)
    return; /* written when its held answer is released */
  if ((c->flags & (SL_CONN_WANT_WRITE | SL_CONN_HARD_CLOSE)) == SL_CONN_WANT_WRITE)
    return; /* written when the socket turns writable */
  c->flags |= SL_CONN_IN_FLUSH;
  c->next_flush = c->worker->flush_head;
  c->worker->flush_head = c;
}

/* Links c at the head of its worker's fan-out list. */
static void fanout_link(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  c->flags |= SL_CONN_IN_FLUSH | SL_CONN_IN_FANOUT;
  c->next_flush = w->fanout_head;
  if (w->fanout_head)
    w->fanout_head->pprev_flush = &c->next_flush;
  c->pprev_flush = &w->fanout_head;
  w->fanout_head = c;
}

static void fanout_list_add(sl_conn_t *c) {
  if (c->flags & (SL_CONN_IN_FLUSH | SL_CONN_CLOSING))
    return; /* already on a list: written this turn or when the window ends */
  if ((c->flags & (SL_CONN_WANT_WRITE | SL_CONN_HARD_CLOSE)) == SL_CONN_WANT_WRITE)
    return;
  fanout_link(c);
}

static int queue_push(sl_conn_t *c, sl_frame_t *f, int fanout) {
  if (c->q_len == c->q_cap) {
    uint32_t cap = c->q_cap ? c->q_cap * 2 : 4;
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
  c->q[(c->q_head + c->q_len) % c->q_cap] = sl_frame_ref(f);
  c->q_len++;
  size_t len;
  sl_frame_bytes(f, c->flags & SL_CONN_CHUNKED, &len);
  c->q_bytes += len;
  /* An update waits for the window only when this subscriber was written to less than a window
   * ago, or publishers are being held back (then the next pass takes it): one that has been quiet (a topic of its own, a sparse stream) gets it this turn, as it
   * would gain nothing from waiting. And the window must not make a fast reader look slow: past
   * half of --max-queue, write now. */
  sl_worker_t *w = c->worker;
  if (fanout && (w->paced || (sl_worker_now(w) - c->last_write) * 1000000 < w->fanout_window) &&
      c->q_bytes <= w->hub->cfg.max_queue / 2) {
    fanout_list_add(c);
  } else {
    if (c->flags & SL_CONN_IN_FANOUT)
      fanout_list_remove(c);
    flush_list_add(c);
  }
  return 0;
}

/* Slow consumer: drop the updates it has not started to receive, finish the frame it is in the
 * middle of, then end the stream; it resumes from history with its Last-Event-ID. What is not an
 * update (the response head, comments) stays: the client must still get a well-formed response. */
static void conn_evict(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < c->q_len; i++) {
    sl_frame_t *f = c->q[(c->q_head + i) % c->q_cap];
    if ((i == 0 && c->q_off > 0) || f->seq == 0) {
      c->q[(c->q_head + kept++) % c->q_cap] = f;
      continue;
    }
    size_t len;
    sl_frame_bytes(f, c->flags & SL_CONN_CHUNKED, &len);
    c->q_bytes -= len;
    sl_frame_unref(f);
  }
  c->q_len = kept;
  if (c->q_opening > c->q_bytes)
    c->q_opening = c->q_bytes;
  c->flags |= SL_CONN_EVICTED;
  sl_metric_add(&w->metrics.slow_disconnects_total, 1);
  sl_log(SL_LOG_INFO, "worker %u: slow subscriber cut at --max-queue %zu bytes; it can resume "
         "with its Last-Event-ID", w->index, w->hub->cfg.max_queue);
  sl_conn_end(c);
}

typedef enum { SEND_PLAIN, SEND_UPDATE, SEND_OPENING } send_kind_t;

static int conn_send(sl_conn_t *c, sl_frame_t *f, send_kind_t kind) {
  if (c->flags & (SL_CONN_CLOSING | SL_CONN_EVICTED | SL_CONN_TERMINATED | SL_CONN_FIN_SENT))
    return -EPIPE;
  /* A stream that is ending takes no more updates, chunked (TERMINATED above) or not: its client
   * resumes after the last one it got. */
  if ((c->flags & (SL_CONN_STREAM | SL_CONN_CLOSE_AFTER)) == (SL_CONN_STREAM | SL_CONN_CLOSE_AFTER) &&
      f->seq > 0)
    return -EPIPE;
  size_t len;
  sl_frame_bytes(f, c->flags & SL_CONN_CHUNKED, &len);
  if (kind != SEND_OPENING && (c->flags & SL_CONN_STREAM) && f->seq > 0 &&
      c->q_bytes - c->q_opening + len > c->worker->hub->cfg.max_queue) {
    conn_evict(c);
    return -ENOBUFS;
  }
  if (queue_push(c, f, kind == SEND_UPDATE)) {
    /* Closed at the flush, not here: this may run inside the broker's dispatch loop. */
    c->flags |= SL_CONN_HARD_CLOSE | SL_CONN_EVICTED;
    flush_list_add(c);
    return -ENOMEM;
  }
  return 0;
}

int sl_conn_send(sl_conn_t *c, sl_frame_t *f) {
  return conn_send(c, f, SEND_PLAIN);
}

int sl_conn_send_update(sl_conn_t *c, sl_frame_t *f) {
  return conn_send(c, f, SEND_UPDATE);
}

int sl_conn_send_opening(sl_conn_t *c, sl_frame_t *f) {
  return conn_send(c, f, SEND_OPENING);
}

int sl_conn_send_raw(sl_conn_t *c, const char *bytes, size_t len) {
  sl_frame_t *f = sl_frame_raw(bytes, len);
  if (f == NULL) {
    c->flags |= SL_CONN_HARD_CLOSE | SL_CONN_EVICTED;
    flush_list_add(c);
    return -ENOMEM;
  }
  int r = sl_conn_send(c, f);
  sl_frame_unref(f);
  return r;
}

/* Everything queued is written. */
static void conn_queue_empty(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  if (c->flags & SL_CONN_CLOSING)
    return;
  if (c->flags & SL_CONN_CLOSE_AFTER) {
    if (c->flags & SL_CONN_FIN_SENT)
      return;
    c->flags |= SL_CONN_FIN_SENT | SL_CONN_PARSER_PAUSED;
    if ((c->flags & (SL_CONN_DRAINING | SL_CONN_STREAM)) == (SL_CONN_DRAINING | SL_CONN_STREAM))
      sl_metric_add(&w->metrics.drained_total, 1);
    if (c->flags & SL_CONN_READ_EOF) {
      sl_conn_close(c);
      return;
    }
    /* Our FIN now; the socket is closed when the client's FIN arrives or the linger passes. */
    shutdown(c->fd, SHUT_WR);
    c->flags &= ~(uint32_t)SL_CONN_READ_PAUSED;
    c->deadline = sl_worker_now(w) + (uint64_t)(w->hub->cfg.linger * 1000);
    conn_poll_update(c);
    return;
  }
  if (!(c->flags & SL_CONN_STREAM) && (c->flags & SL_CONN_READ_PAUSED)) {
    c->flags &= ~(uint32_t)SL_CONN_READ_PAUSED;
    conn_poll_update(c);
  }
}

/* One sendmsg of as many queued frames as fit in one iovec batch. */
static void conn_write(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  struct iovec iov[IOV_BATCH];
  int chunked = (c->flags & SL_CONN_CHUNKED) != 0;
  uint32_t n = c->q_len < IOV_BATCH ? c->q_len : IOV_BATCH;
  for (uint32_t i = 0; i < n; i++) {
    size_t len;
    const char *p = sl_frame_bytes(c->q[(c->q_head + i) % c->q_cap], chunked, &len);
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
  int more = n == c->q_len && (c->flags & (SL_CONN_CLOSE_AFTER | SL_CONN_FIN_SENT)) == SL_CONN_CLOSE_AFTER;
  ssize_t sent;
  do
    sent = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
  while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      c->flags |= SL_CONN_WANT_WRITE;
      conn_poll_update(c);
      return;
    }
    /* The client is gone (EPIPE, ECONNRESET): nothing more can reach it. */
    sl_conn_close(c);
    return;
  }
  size_t left = (size_t)sent;
  uint64_t delivered = 0;
  c->q_bytes -= left;
  c->q_opening -= c->q_opening < left ? c->q_opening : left; /* it is at the queue's front */
  sl_metric_add(&w->metrics.bytes_out_total, left);
  sl_metric_add(&w->metrics.writes_total, 1);
  while (left > 0) {
    sl_frame_t *f = c->q[c->q_head];
    size_t len;
    sl_frame_bytes(f, chunked, &len);
    size_t rest = len - c->q_off;
    if (left < rest) {
      c->q_off += (uint32_t)left;
      break;
    }
    left -= rest;
    c->q_off = 0;
    if (f->seq > 0)
      delivered++;
    sl_frame_unref(f);
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
  }
  if (delivered) {
    sl_metric_add(&w->metrics.delivered_total, delivered);
    if (w->draining)
      sl_metric_add(&w->drain_flushed, delivered);
  }
  c->last_write = sl_worker_now(w);
  if (c->q_len > 0) {
    /* Kernel buffer full, or more than one batch: the rest goes when the socket is writable. */
    c->flags |= SL_CONN_WANT_WRITE;
    conn_poll_update(c);
    return;
  }
  if (c->flags & SL_CONN_WANT_WRITE) {
    c->flags &= ~(uint32_t)SL_CONN_WANT_WRITE;
    conn_poll_update(c);
  }
  conn_queue_empty(c);
}

/* The flush list must be empty at the end of a turn (a connection closed later would be freed
 * while still on it); the fan-out list may outlive it, since closing unlinks from it. So what a
 * flush leaves for the drain waits there, and drain_begin moves it back. */
static void park_flush_list(sl_worker_t *w) {
  while (w->flush_head) {
    sl_conn_t *c = w->flush_head;
    w->flush_head = c->next_flush;
    fanout_link(c);
  }
}

void sl_worker_flush(sl_worker_t *w) {
  while (w->flush_head) {
    /* A drain was just asked for: what is left goes with each stream's final frame, in one
     * write, once the drain message is read (server.c), rather than in a write of its own. */
    if (!w->draining && atomic_load_explicit(&w->drain_pending, memory_order_relaxed)) {
      park_flush_list(w);
      return;
    }
    sl_conn_t *c = w->flush_head;
    w->flush_head = c->next_flush;
    c->next_flush = NULL;
    c->flags &= ~(uint32_t)SL_CONN_IN_FLUSH;
    if (c->flags & SL_CONN_CLOSING)
      continue;
    if (c->flags & SL_CONN_HARD_CLOSE)
      sl_conn_close(c);
    else if (c->flags & (SL_CONN_WANT_WRITE | SL_CONN_HELD))
      continue;
    else if (c->q_len > 0)
      conn_write(c);
    else
      conn_queue_empty(c);
  }
}

void sl_worker_fanout_splice(sl_worker_t *w) {
  sl_conn_t *head = w->fanout_head, *last = NULL;
  w->fanout_head = NULL;
  for (sl_conn_t *c = head; c; c = c->next_flush) {
    c->flags &= ~(uint32_t)SL_CONN_IN_FANOUT; /* stays IN_FLUSH: it moves to the flush list */
    c->pprev_flush = NULL;
    last = c;
  }
  if (last) {
    last->next_flush = w->flush_head;
    w->flush_head = head;
  }
}

void sl_conn_unhold(sl_conn_t *c) {
  c->flags &= ~(uint32_t)SL_CONN_HELD;
  c->held_seq = 0;
  flush_list_add(c);
}

void sl_conn_end(sl_conn_t *c) {
  if (c->flags & SL_CONN_CLOSING)
    return;
  c->flags |= SL_CONN_CLOSE_AFTER | SL_CONN_PARSER_PAUSED;
  if ((c->flags & (SL_CONN_STREAM | SL_CONN_CHUNKED)) == (SL_CONN_STREAM | SL_CONN_CHUNKED) &&
      !(c->flags & SL_CONN_TERMINATED)) {
    queue_push(c, &sl_frame_terminator, 0);
    c->flags |= SL_CONN_TERMINATED;
  }
  flush_list_add(c);
}

static void conn_read(sl_conn_t *c) {
  sl_worker_t *w = c->worker;
  for (int i = 0; i < READS_PER_TURN; i++) {
    ssize_t n = recv(c->fd, w->read_buf, SL_READ_BUF_SIZE, 0);
    if (n > 0) {
      if (c->flags & (SL_CONN_PARSER_PAUSED | SL_CONN_FIN_SENT))
        continue; /* a stream's client has nothing more to say; waiting for its FIN */
      sl__http_feed(c, w->read_buf, (size_t)n);
      if (c->flags & SL_CONN_CLOSING)
        return;
      if (!(c->flags & SL_CONN_STREAM) && c->q_bytes > PIPELINE_QUEUE_LIMIT) {
        c->flags |= SL_CONN_READ_PAUSED;
        conn_poll_update(c);
        return;
      }
      if ((size_t)n < SL_READ_BUF_SIZE)
        return; /* the socket is empty: the (level-triggered) poll says when more arrives */
      continue;
    }
    if (n == 0) {
      /* The client's FIN. After ours, or on a stream, the connection is over; a request
       * half-closed by its client still gets its answer first. */
      if ((c->flags & (SL_CONN_FIN_SENT | SL_CONN_STREAM)) || (c->q_len == 0 && c->req == NULL)) {
        if (c->q_off > 0)
          c->flags |= SL_CONN_HARD_CLOSE; /* a frame is half out: a reset, never a clean cut */
        sl_conn_close(c);
        return;
      }
      c->flags |= SL_CONN_READ_EOF;
      sl__http_feed_eof(c);
      if (!(c->flags & SL_CONN_CLOSING))
        sl_conn_end(c);
      conn_poll_update(c);
      return;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      sl_conn_close(c);
    return;
  }
}

void sl_conn_io(sl_conn_t *c, uint32_t events) {
  if (c->flags & SL_CONN_CLOSING)
    return;
  /* An error or hang-up is seen by the next write or read, which then closes the connection. */
  if (events & (EPOLLERR | EPOLLHUP))
    events |= EPOLLIN | EPOLLOUT;
  if ((events & EPOLLOUT) && (c->flags & (SL_CONN_WANT_WRITE | SL_CONN_HELD)) ==
                                (SL_CONN_WANT_WRITE | SL_CONN_HELD)) {
    /* Writable, but a held answer is in the queue: nothing goes until it is released (the
     * release puts the connection on the flush list), and a writable socket left in the set
     * would wake the loop every turn. */
    c->flags &= ~(uint32_t)SL_CONN_WANT_WRITE;
    conn_poll_update(c);
  } else if ((events & EPOLLOUT) && (c->flags & SL_CONN_WANT_WRITE)) {
    /* conn_write keeps WANT_WRITE (and EPOLLOUT) while it is still blocked and drops both once
     * the queue is out: a writable socket left in the set would wake the loop every turn. */
    if (c->q_len > 0) {
      conn_write(c);
    } else {
      c->flags &= ~(uint32_t)SL_CONN_WANT_WRITE;
      conn_poll_update(c);
      conn_queue_empty(c);
    }
  }
  if ((events & EPOLLIN) && (c->flags & SL_CONN_POLL_R) && !(c->flags & SL_CONN_CLOSING))
    conn_read(c);
}

void sl_conn_sweep(sl_conn_t *c, uint64_t now) {
  const sl_config_t *cfg = &c->worker->hub->cfg;
  if (c->flags & SL_CONN_CLOSING)
    return;
  if (c->flags & SL_CONN_FIN_SENT) {
    if (now >= c->deadline)
      sl_conn_close(c);
    return;
  }
  if ((c->flags & SL_CONN_WANT_WRITE) && cfg->write_timeout > 0 &&
      now - c->last_write > (uint64_t)(cfg->write_timeout * 1000)) {
    sl_log(SL_LOG_INFO, "worker %u: closing a connection whose writes stalled for %.0f s",
           c->worker->index, cfg->write_timeout);
    c->flags |= SL_CONN_HARD_CLOSE;
    sl_conn_close(c);
    return;
  }
  if (c->flags & SL_CONN_STREAM) {
    if (c->token_exp && now >= c->token_exp && !(c->flags & SL_CONN_CLOSE_AFTER)) {
      sl_conn_end(c); /* the token expired: the client must come back with a fresh one */
      return;
    }
    if (cfg->heartbeat > 0 && c->q_len == 0 && !(c->flags & SL_CONN_CLOSE_AFTER) &&
        now - c->last_write >= (uint64_t)(cfg->heartbeat * 1000))
      sl_conn_send(c, &sl_frame_heartbeat);
    return;
  }
  /* A request still arriving keeps its deadline even when the connection is to close after it
   * (a drain began): a stalled client must not hold the drain until --shutdown-timeout. */
  if (c->deadline && now >= c->deadline && (!(c->flags & SL_CONN_CLOSE_AFTER) || c->req != NULL))
    sl__http_timeout(c);
}
