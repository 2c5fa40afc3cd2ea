/* server.c — worker threads: one libuv loop each, with its own SO_REUSEPORT listeners, the accept
 * loop, the inbox that brings published frames in global order, the periodic sweep (timeouts,
 * heartbeats) and the worker's part of a graceful drain. Connection I/O itself is in conn.c. */
#include "net/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/hub.h"
#include "common/log.h"
#include "net/pace.h"

#define ACCEPTS_PER_TURN 256
#define SWEEP_MS 250
#define AUTH_CACHE_SLOTS 256
#define EPOLL_BATCH 256

static void drain_begin(sl_worker_t *w);
static void worker_check_done(sl_worker_t *w);
static void turn_end(sl_worker_t *w);

uint64_t sl_worker_now(const sl_worker_t *w) {
  return uv_now(&w->loop);
}

/* "HOST:PORT", "[V6]:PORT" or "localhost:PORT" into a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss) {
  char host[128];
  const char *colon = strrchr(spec, ':');
  if (colon == NULL || colon == spec)
    return -EINVAL;
  size_t hlen = (size_t)(colon - spec);
  if (hlen >= sizeof host)
    return -EINVAL;
  memcpy(host, spec, hlen);
  host[hlen] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
    return -EINVAL;
  if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
    host[hlen - 1] = '\0';
    return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) ? -EINVAL : 0;
  }
  if (strcmp(host, "localhost") == 0)
    strcpy(host, "127.0.0.1");
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) ? -EINVAL : 0;
}

/* SO_REUSEPORT would let this hub share a port another process (a second sluice started by
 * mistake) already listens on, silently splitting its clients. A plain bind tells: it fails on a
 * port with a listener, and SO_REUSEADDR keeps TIME_WAIT from a previous run out of the way. */
static int port_taken(const struct sockaddr_storage *ss) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0; /* the real bind will say what is wrong */
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss->ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int taken = bind(fd, (const struct sockaddr *)ss, len) != 0 && errno == EADDRINUSE;
  close(fd);
  return taken;
}

static int bind_listener(struct sockaddr_storage *ss, char *err, size_t errlen, const char *spec,
                         int first) {
  if (first && port_taken(ss)) {
    snprintf(err, errlen, "cannot listen on %s: the address is already in use (another sluice?)",
             spec);
    return -EADDRINUSE;
  }
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    goto fail;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
    goto fail_fd;
  if (ss->ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  /* Inherited by accepted sockets (one setsockopt per listener, not per connection): frames
   * are whole when written, so Nagle would only delay them. */
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
    goto fail_fd;
  socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (bind(fd, (struct sockaddr *)ss, len) || listen(fd, 4096))
    goto fail_fd;
  /* With port 0 the first worker's port is what every other worker binds. */
  if (getsockname(fd, (struct sockaddr *)ss, &len))
    goto fail_fd;
  return fd;
fail_fd:;
  int e = errno;
  close(fd);
  errno = e;
fail:
  snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
  return -errno;
}

static void on_accept(uv_poll_t *h, int status, int events) {
  sl_worker_t *w = h->loop->data;
  (void)events;
  if (status < 0)
    return;
  int fd = -1;
  for (int n = 0; n < ACCEPTS_PER_TURN; n++) {
    fd = accept4(*(int *)h->data, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      sl_conn_accept(w, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
      continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      /* Keep serving the connections we have; try again at the next sweep. */
      sl_metric_add(&w->metrics.emfile_total, 1);
      if (!w->emfile_logged)
        sl_log(SL_LOG_WARN, "worker %u: accept: %s; pausing accept, existing connections keep "
               "being served (raise the open-files limit)", w->index, strerror(errno));
      w->emfile_logged = 1;
      w->accept_paused = 1;
      for (unsigned i = 0; i < w->listen_count; i++)
        uv_poll_stop(&w->listeners[i]);
    }
    break;
  }
  turn_end(w);
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* The connections' epoll set is readable: hand each ready socket to its connection, then write
 * what the turn queued. */
static void on_epoll(uv_poll_t *h, int status, int events) {
  sl_worker_t *w = h->loop->data;
  struct epoll_event ev[EPOLL_BATCH];
  (void)status;
  (void)events;
  int n;
  do
    n = epoll_wait(w->epfd, ev, EPOLL_BATCH, 0);
  while (n < 0 && errno == EINTR);
  for (int i = 0; i < n; i++)
    sl_conn_io(ev[i].data.ptr, ev[i].events);
  turn_end(w);
}

/* An idle handle, not a check: while it is active the loop's poll does not block, so a
 * connection closed in a timer callback is freed in the same turn, not after the next wake. */
static void on_reap(uv_idle_t *h) {
  sl_worker_t *w = h->loop->data;
  uv_idle_stop(h);
  sl_worker_reap(w);
}

void sl__worker_reap_soon(sl_worker_t *w) {
  if (!w->stopping && !uv_is_active((uv_handle_t *)&w->reaper))
    uv_idle_start(&w->reaper, on_reap);
}

int sl_worker_init(sl_worker_t *w, sl_hub_t *hub, unsigned index, char *err, size_t errlen) {
  memset(w, 0, sizeof *w);
  w->hub = hub;
  w->index = index;
  w->epfd = -1;
  for (unsigned i = 0; i < SL_MAX_LISTEN; i++)
    w->listen_fds[i] = -1;
  int r = uv_loop_init(&w->loop);
  if (r)
    goto fail;
  w->loop.data = w;
  r = -ENOMEM;
  w->read_buf = malloc(SL_READ_BUF_SIZE);
  w->auth_cache = sl_auth_cache_new(AUTH_CACHE_SLOTS);
  if (w->read_buf == NULL || w->auth_cache == NULL || sl_broker_init(&w->broker))
    goto fail_loop;
  if ((r = uv_mutex_init(&w->inbox_lock)))
    goto fail_loop;
  if ((r = uv_async_init(&w->loop, &w->wakeup, NULL)))
    goto fail_mutex;
  if ((r = uv_timer_init(&w->loop, &w->sweep)) || (r = uv_timer_init(&w->loop, &w->fanout_timer)) ||
      (r = uv_idle_init(&w->loop, &w->reaper)))
    goto fail_mutex;
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (w->epfd < 0) {
    r = -errno;
    goto fail_mutex;
  }
  if ((r = uv_poll_init(&w->loop, &w->epoll_watch, w->epfd)))
    goto fail_mutex;
  w->fanout_window = (uint64_t)(hub->cfg.flush_window * 1e9);
  for (unsigned i = 0; i < hub->cfg.listen_count; i++) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (parse_listen(hub->cfg.listen[i], &ss)) {
      snprintf(err, errlen, "bad listen address '%s' (want HOST:PORT or [V6]:PORT)", hub->cfg.listen[i]);
      r = -EINVAL;
      goto fail_mutex;
    }
    if (index > 0) {
      /* Bind to the port worker 0 got (differs from the spec only with port 0). */
      int port = sl_worker_port(&hub->workers[0], i);
      if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
      else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    }
    int fd = bind_listener(&ss, err, errlen, hub->cfg.listen[i], index == 0);
    if (fd < 0) {
      r = fd;
      goto fail_mutex;
    }
    w->listen_fds[i] = fd;
    w->listen_count = i + 1;
    if ((r = uv_poll_init_socket(&w->loop, &w->listeners[i], fd)))
      goto fail_mutex;
    w->listeners[i].data = &w->listen_fds[i];
  }
  w->listeners_open = 1;
  return 0;
fail_mutex:
  uv_mutex_destroy(&w->inbox_lock);
fail_loop:
  for (unsigned i = 0; i < w->listen_count; i++)
    if (w->listen_fds[i] >= 0)
      close(w->listen_fds[i]);
  w->listen_count = 0;
  /* Handles initialised on the loop must be closed before the loop can be. */
  uv_walk(&w->loop, close_walk, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  if (w->epfd >= 0)
    close(w->epfd);
  w->epfd = -1;
  sl_broker_destroy(&w->broker);
  sl_auth_cache_free(w->auth_cache);
  w->auth_cache = NULL;
  free(w->read_buf);
  w->read_buf = NULL;
fail:
  if (!err[0])
    snprintf(err, errlen, "worker %u: %s", index, uv_strerror(r));
  return r;
}

int sl_worker_port(const sl_worker_t *w, unsigned i) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (i >= w->listen_count || getsockname(w->listen_fds[i], (struct sockaddr *)&ss, &len))
    return -EINVAL;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int sl_worker_post(sl_worker_t *w, sl_msg_kind_t kind, sl_frame_t *frame) {
  uv_mutex_lock(&w->inbox_lock);
  if (w->inbox_len == w->inbox_cap) {
    size_t cap = w->inbox_cap ? w->inbox_cap * 2 : 64;
    sl_msg_t *m = realloc(w->inbox, cap * sizeof *m);
    if (m == NULL) {
      if (kind == SL_MSG_FRAME && frame->seq > w->lost_seq)
        w->lost_seq = frame->seq;
      uv_mutex_unlock(&w->inbox_lock);
      return -ENOMEM;
    }
    w->inbox = m;
    w->inbox_cap = cap;
  }
  int was_empty = w->inbox_len == 0;
  w->inbox[w->inbox_len].kind = kind;
  w->inbox[w->inbox_len].frame = frame;
  w->inbox_len++;
  if (kind == SL_MSG_DRAIN)
    atomic_store(&w->drain_pending, 1);
  uv_mutex_unlock(&w->inbox_lock);
  return was_empty;
}

void sl_worker_wake(sl_worker_t *w) {
  uv_async_send(&w->wakeup);
}

static void deliver(sl_sub_t *sub, sl_frame_t *f, void *arg) {
  (void)arg;
  sl_conn_send_update(sub->conn, f);
}

/* The window is over: what waits on the fan-out list goes to the flush list of this turn. */
static void fanout_now(sl_worker_t *w) {
  sl_worker_fanout_splice(w);
  w->fanout_last = uv_hrtime();
  uv_timer_stop(&w->fanout_timer);
}

static void on_fanout_timer(uv_timer_t *t) {
  sl_worker_t *w = t->loop->data;
  fanout_now(w);
  turn_end(w);
}

/* Updates just queued: write them now when the last fan-out is a window old (a quiet stream is
 * not delayed), else when the window ends, by which time more updates may share the write. Under
 * back-pressure (w->paced) no stream counts as quiet: the publisher is about to send the next
 * updates, and the pass that a held answer triggers, or the window's end, takes them all. */
static void fanout_schedule(sl_worker_t *w) {
  if (w->fanout_head == NULL)
    return;
  /* A publisher waits for this worker: no update comes until it writes, so the window would
   * gain nothing. */
  int waited_for = sl_pace_waiting(w->hub);
  if (uv_is_active((uv_handle_t *)&w->fanout_timer) && !waited_for)
    return;
  uint64_t now = uv_hrtime();
  if (waited_for || (now - w->fanout_last >= w->fanout_window && !w->paced)) {
    fanout_now(w); /* written by the caller's flush, this turn */
    return;
  }
  /* Paced, the pass comes with the next held answer; the window only bounds the wait. */
  uint64_t end = w->fanout_last + w->fanout_window;
  if (end <= now || w->paced)
    end = now + w->fanout_window;
  uv_timer_start(&w->fanout_timer, on_fanout_timer, (end - now + 999999) / 1000000, 0);
}

/* Every update this worker took from its inbox is written (or waits behind a full socket): say so,
 * and wake the workers whose held publish answers may now go. */
static void worker_progress(sl_worker_t *w) {
  if (w->flush_head || w->fanout_head ||
      atomic_load_explicit(&w->flushed_seq, memory_order_relaxed) == w->dispatched_seq)
    return;
  atomic_store(&w->flushed_seq, w->dispatched_seq); /* seq_cst: see sl_pace_hold */
  sl_hub_t *hub = w->hub;
  for (unsigned i = 0; i < hub->worker_count; i++) {
    sl_worker_t *o = &hub->workers[i];
    if (o != w && atomic_load(&o->held_count) > 0)
      uv_async_send(&o->wakeup);
  }
}

/* The end of every callback's work: write what the turn queued, publish the progress, answer the
 * publishers it frees; and when this worker just began to hold answers, wake the others so that
 * none waits out its flush window while publishers wait for it. */
static void turn_end(sl_worker_t *w) {
  sl_worker_flush(w);
  worker_progress(w);
  if (sl_pace_release(w))
    sl_worker_flush(w);
  if (w->held_len == 0) {
    w->held_woke = 0;
  } else if (!w->held_woke) {
    w->held_woke = 1;
    for (unsigned i = 0; i < w->hub->worker_count; i++)
      if (&w->hub->workers[i] != w)
        uv_async_send(&w->hub->workers[i].wakeup);
  }
}

static void force_close_all(sl_worker_t *w) {
  for (sl_conn_t *c = w->conns; c; c = c->next) {
    if (c->flags & SL_CONN_CLOSING)
      continue;
    atomic_fetch_add(&w->hub->shutdown.forced, 1);
    sl_metric_add(&w->metrics.forced_total, 1);
    c->flags |= SL_CONN_HARD_CLOSE;
    sl_conn_close(c);
  }
}

/* Updates up to seq never reached this worker (out of memory): a stream must not go on to later
 * updates without them. Each ends after what it has, and its client resumes from history with
 * its Last-Event-ID. A client that got no update yet has none, so each stream is first told the
 * id of the last update before the gap ("earliest" if there was none): an event of an id alone
 * sets an EventSource's Last-Event-ID without firing. */
static void worker_gap(sl_worker_t *w, uint64_t seq) {
  const char *id = w->last_frame ? w->last_frame->id : "earliest";
  size_t cap = strlen(id) + 8;
  char *buf = malloc(cap);
  sl_frame_t *mark = NULL;
  if (buf) {
    int len = snprintf(buf, cap, "id: %s\n\n", id);
    mark = sl_frame_chunk(buf, (size_t)len);
    free(buf);
  }
  size_t ended = 0;
  for (sl_conn_t *c = w->conns; c; c = c->next) {
    if ((c->flags & (SL_CONN_STREAM | SL_CONN_CLOSING | SL_CONN_CLOSE_AFTER)) == SL_CONN_STREAM) {
      if (mark)
        sl_conn_send(c, mark);
      sl_conn_end(c);
      ended++;
    }
  }
  if (mark)
    sl_frame_unref(mark);
  if (w->dispatched_seq < seq)
    w->dispatched_seq = seq;
  sl_log(SL_LOG_ERROR, "worker %u: out of memory: updates up to %" PRIu64 " did not all reach "
         "this worker; %zu streams end so that their clients resume from history", w->index, seq,
         ended);
}

static void on_wakeup(uv_async_t *h) {
  sl_worker_t *w = h->loop->data;
  uv_mutex_lock(&w->inbox_lock);
  sl_msg_t *msgs = w->inbox;
  size_t n = w->inbox_len;
  size_t cap = w->inbox_cap;
  w->inbox = w->spare;
  w->inbox_cap = w->spare_cap;
  w->inbox_len = 0;
  uint64_t lost = w->lost_seq; /* with the inbox: what was lost before it was taken */
  w->lost_seq = 0;
  uv_mutex_unlock(&w->inbox_lock);

  int drain = 0;
  w->paced = sl_pace_recent(w->hub, w->fanout_window);
  for (size_t i = 0; i < n; i++) {
    if (msgs[i].kind == SL_MSG_DRAIN) {
      drain = 1;
      continue;
    }
    sl_frame_t *f = msgs[i].frame;
    if (f->seq > w->dispatched_seq + 1)
      worker_gap(w, f->seq - 1);
    w->dispatched_seq = f->seq;
    sl_broker_dispatch(&w->broker, f, deliver, NULL);
    if (w->last_frame)
      sl_frame_unref(w->last_frame);
    w->last_frame = f; /* the message's reference */
  }
  if (lost > w->dispatched_seq)
    worker_gap(w, lost);
  w->spare = msgs;
  w->spare_cap = cap;
  fanout_schedule(w);
  if (drain && !w->draining)
    drain_begin(w);
  if (atomic_load(&w->hub->shutdown.force_requested) && !w->stopping)
    force_close_all(w);
  turn_end(w);
  if (w->draining)
    worker_check_done(w);
}

static void on_sweep(uv_timer_t *t) {
  sl_worker_t *w = t->loop->data;
  uint64_t now = uv_now(&w->loop);
  sl_conn_t *next;
  for (sl_conn_t *c = w->conns; c; c = next) {
    next = c->next;
    sl_conn_sweep(c, now);
  }
  if (w->accept_paused && w->listeners_open) {
    w->accept_paused = 0;
    for (unsigned i = 0; i < w->listen_count; i++)
      uv_poll_start(&w->listeners[i], UV_READABLE, on_accept);
  }
  if (now - w->resume_window_start >= 1000) {
    uint64_t total = sl_metric_get(&w->metrics.resumes_total);
    atomic_store_explicit(&w->metrics.resumes_last_second, total - w->resume_window_base,
                          memory_order_relaxed);
    w->resume_window_base = total;
    w->resume_window_start = now;
  }
  turn_end(w);
}

/* The socket goes with its handle, so new connections are refused at once, not queued. */
static void on_listener_closed(uv_handle_t *h) {
  int *fd = h->data;
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void close_listeners(sl_worker_t *w) {
  if (!w->listeners_open)
    return;
  w->listeners_open = 0;
  for (unsigned i = 0; i < w->listen_count; i++)
    uv_close((uv_handle_t *)&w->listeners[i], on_listener_closed);
}

static void on_listener_closed_fds(sl_worker_t *w) {
  for (unsigned i = 0; i < w->listen_count; i++) {
    if (w->listen_fds[i] >= 0)
      close(w->listen_fds[i]);
    w->listen_fds[i] = -1;
  }
}

/* The hub stopped taking updates and every accepted one is already dispatched (the drain message
 * came after them): close the listeners, give each stream its final frame, end idle connections. */
static void drain_begin(sl_worker_t *w) {
  w->draining = 1;
  /* Updates waiting for the flush window go in this turn, ahead of the final frame in the same
   * queue: one write per stream carries both, then the FIN. */
  fanout_now(w);
  close_listeners(w);
  double spread = w->hub->cfg.reconnect_spread;
  sl_conn_t *next;
  for (sl_conn_t *c = w->conns; c; c = next) {
    next = c->next;
    if (c->flags & SL_CONN_CLOSING)
      continue;
    if (c->flags & SL_CONN_STREAM) {
      if (!(c->flags & SL_CONN_EVICTED)) {
        /* Jitter the reconnect over the spread so clients do not all come back at once. */
        unsigned ms = 0;
        if (spread > 0)
          ms = (unsigned)((double)(rand_r(&w->jitter_seed) % 1000000) / 1000000.0 * spread * 1000.0) + 1;
        char buf[96];
        int len = snprintf(buf, sizeof buf, "retry: %u\nevent: close\ndata: server_shutdown\n\n", ms);
        sl_frame_t *f = sl_frame_chunk(buf, (size_t)len);
        c->flags |= SL_CONN_DRAINING;
        if (f) {
          sl_conn_send(c, f);
          sl_frame_unref(f);
        }
      }
      sl_conn_end(c);
    } else if (c->req == NULL && c->q_len == 0) {
      sl_conn_end(c);
    } else {
      c->flags |= SL_CONN_CLOSE_AFTER;
    }
  }
}

static void stop_handles(sl_worker_t *w) {
  if (w->stopping)
    return;
  w->stopping = 1;
  close_listeners(w);
  uv_close((uv_handle_t *)&w->sweep, NULL);
  uv_close((uv_handle_t *)&w->fanout_timer, NULL);
  uv_close((uv_handle_t *)&w->epoll_watch, NULL);
  uv_close((uv_handle_t *)&w->reaper, NULL);
  uv_close((uv_handle_t *)&w->wakeup, NULL);
}

/* Called when a connection ends or a drain step ran: the worker is done once draining and empty. */
static void worker_check_done(sl_worker_t *w) {
  if (!w->draining || w->done || w->conn_count > 0)
    return;
  w->done = 1;
  sl__shutdown_worker_done(w->hub);
}

void sl__worker_conn_gone(sl_worker_t *w) {
  if (w->draining)
    worker_check_done(w);
}

static void on_stop_request(sl_worker_t *w) {
  if (atomic_load(&w->hub->shutdown.state) == SL_SHUTDOWN_DONE && w->done)
    stop_handles(w);
}

static void worker_main(void *arg) {
  sl_worker_t *w = arg;
  char name[16];
  snprintf(name, sizeof name, "sluice-w%u", w->index);
  pthread_setname_np(pthread_self(), name);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  sl_worker_reap(w); /* nothing should be left; if something is, it is not leaked */
  on_listener_closed_fds(w);
}

static void on_wakeup_or_stop(uv_async_t *h) {
  sl_worker_t *w = h->loop->data;
  on_wakeup(h);
  on_stop_request(w);
}

int sl_worker_start(sl_worker_t *w) {
  int r;
  w->wakeup.async_cb = on_wakeup_or_stop;
  w->resume_window_start = uv_now(&w->loop);
  w->jitter_seed = (unsigned)(uv_hrtime() ^ (w->index * 2654435761u));
  for (unsigned i = 0; i < w->listen_count; i++)
    if ((r = uv_poll_start(&w->listeners[i], UV_READABLE, on_accept)))
      return r;
  if ((r = uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS)) ||
      (r = uv_poll_start(&w->epoll_watch, UV_READABLE, on_epoll)))
    return r;
  if ((r = uv_thread_create(&w->thread, worker_main, w)))
    return r;
  w->thread_started = 1;
  return 0;
}

void sl_worker_join(sl_worker_t *w) {
  if (w->thread_started) {
    uv_thread_join(&w->thread);
    w->thread_started = 0;
  }
}

void sl_worker_destroy(sl_worker_t *w) {
  if (w->read_buf == NULL)
    return;
  if (!w->stopping) {
    /* Never started, or the hub is freed without a shutdown: close what is left here. */
    sl_conn_t *next;
    for (sl_conn_t *c = w->conns; c; c = next) {
      next = c->next;
      c->flags |= SL_CONN_HARD_CLOSE;
      sl_conn_close(c);
    }
    sl_worker_reap(w);
    stop_handles(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    on_listener_closed_fds(w);
  }
  uv_loop_close(&w->loop);
  if (w->epfd >= 0)
    close(w->epfd);
  w->epfd = -1;
  for (size_t i = 0; i < w->inbox_len; i++)
    if (w->inbox[i].frame)
      sl_frame_unref(w->inbox[i].frame);
  free(w->inbox);
  free(w->spare);
  if (w->last_frame)
    sl_frame_unref(w->last_frame);
  sl_pace_free(w);
  uv_mutex_destroy(&w->inbox_lock);
  sl_broker_destroy(&w->broker);
  sl_auth_cache_free(w->auth_cache);
  w->auth_cache = NULL;
  free(w->read_buf);
  w->read_buf = NULL;
}
