/* worker.c — the worker threads (see worker.h): one libuv loop each, with its own SO_REUSEPORT
 * listeners, the accept loop, the epoll watch, the inbox that brings published frames in global
 * order, the sweep, the reaper, and the worker's part of a graceful drain. Every callback ends
 * with delivery's turn end, where what the turn queued is written. */
#include "net/worker.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

#define ACCEPTS_PER_TURN 256
#define SWEEP_MS 250
#define EPOLL_BATCH 256
#define LISTEN_BACKLOG 4096
#define INBOX_FIRST_CAP 64
#define RESUME_WINDOW_MS 1000
#define THREAD_NAME_MAX 16       /* pthread_setname_np's limit, with the NUL */
#define NO_DRAIN_YET UINT64_MAX  /* delivered_at_drain before the drain began here */

static void worker_check_done(sl_worker_t *w);
static void close_listener_fds(sl_worker_t *w);

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
    snprintf(host, sizeof host, "127.0.0.1");
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) ? -EINVAL : 0;
}

static socklen_t addr_len(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* SO_REUSEPORT would let this hub share a port another process (a second sluice started by
 * mistake) already listens on, silently splitting its clients. Two guards. A plain bind tells
 * whether any program listens there: it fails on a port with a listener, and SO_REUSEADDR keeps
 * TIME_WAIT from a previous run out of the way. And a lock that no two sluices can hold at once,
 * taken before that check: an abstract Unix socket named after the address (in the network
 * namespace, as ports are; gone with the process), so two hubs started at the same instant cannot
 * both pass the check. A live hand-off passes the lock to the new process with the sockets. */
static int port_taken(const struct sockaddr_storage *ss) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0; /* the real bind will say what is wrong */
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss->ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  int taken = bind(fd, (const struct sockaddr *)ss, addr_len(ss)) != 0 && errno == EADDRINUSE;
  close(fd);
  return taken;
}

static int port_of(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                   : ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* The lock on a fixed address: its descriptor, or -EADDRINUSE when another sluice holds it. */
static int take_port_lock(const struct sockaddr_storage *ss) {
  char host[INET6_ADDRSTRLEN] = "";
  const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                            : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
  inet_ntop(ss->ss_family, a, host, sizeof host);
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  int n = snprintf(un.sun_path + 1, sizeof un.sun_path - 1, "sluice/listen/%s/%d", host,
                   port_of(ss));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (bind(fd, (struct sockaddr *)&un, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n))) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static int bind_listener(struct sockaddr_storage *ss, char *err, size_t errlen, const char *spec,
                         int first, int *lock) {
  if (first && port_of(ss) != 0) {
    int l = take_port_lock(ss);
    if (l == -EADDRINUSE) {
      snprintf(err, errlen, "cannot listen on %s: another sluice serves this address", spec);
      return -EADDRINUSE;
    }
    *lock = l; /* any other failure: the check below still tells */
  }
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
  socklen_t len = addr_len(ss);
  if (bind(fd, (struct sockaddr *)ss, len) || listen(fd, LISTEN_BACKLOG))
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

static void turn_end(sl_worker_t *w) {
  sl__delivery_turn_end(&w->dlv);
}

static void on_accept(uv_poll_t *h, int status, int events) {
  sl_worker_t *w = h->loop->data;
  (void)events;
  if (status < 0)
    return;
  for (int n = 0; n < ACCEPTS_PER_TURN; n++) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept4(*(int *)h->data, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      /* One not admitted is still accepted, so that its client is told why (503 or 429, by
       * the protocol) rather than left waiting in the backlog. */
      uint32_t ticket = 0, refused = 0;
      switch (sl__admission_admit(w->admission, (struct sockaddr *)&peer, &ticket)) {
      case SL_ADMIT_OK:
        break;
      case SL_ADMIT_FULL:
        refused = SL_CONN_REFUSED_FULL;
        sl__metric_add(&w->metrics.refused_full_total, 1);
        break;
      case SL_ADMIT_CLIENT_FULL:
        refused = SL_CONN_REFUSED_CLIENT;
        sl__metric_add(&w->metrics.refused_client_total, 1);
        break;
      }
      sl__conn_accept(&w->net, fd, refused, ticket);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
      continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      /* Keep serving the connections we have; try again at the next sweep. */
      sl__metric_add(&w->metrics.emfile_total, 1);
      if (!w->emfile_logged)
        sl__log(SL_LOG_WARN, "worker %u: accept: %s; pausing accept, existing connections keep "
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
    sl__conn_io(ev[i].data.ptr, ev[i].events);
  turn_end(w);
}

/* An idle handle, not a check: while it is active the loop's poll does not block, so a
 * connection closed in a timer callback is freed in the same turn, not after the next wake. */
static void on_reap(uv_idle_t *h) {
  sl_worker_t *w = h->loop->data;
  uv_idle_stop(h);
  sl__transport_reap(&w->net);
}

static void reap_soon(sl_transport_t *t) {
  sl_worker_t *w = t->owner;
  /* uv_idle_start fails only for a closing handle or a NULL callback, neither of which can be
   * here while the worker runs. */
  if (!w->stopping && !uv_is_active((uv_handle_t *)&w->reaper))
    uv_idle_start(&w->reaper, on_reap);
}

static void conn_closed(sl_transport_t *t, sl_conn_t *c) {
  sl_worker_t *w = t->owner;
  sl__admission_release(w->admission, c->ticket);
  c->ticket = 0;
}

static void conn_freed(sl_transport_t *t) {
  sl_worker_t *w = t->owner;
  if (w->draining)
    worker_check_done(w);
}

static int watch_listener(sl_worker_t *w, unsigned i, int fd) {
  w->listen_fds[i] = fd;
  w->listen_count = i + 1;
  int r = uv_poll_init_socket(&w->loop, &w->listeners[i], fd);
  if (r)
    return r;
  w->listeners[i].data = &w->listen_fds[i];
  return 0;
}

static int init_listeners(sl_worker_t *w, const sl_worker_t *first, const sl_listen_fds_t *adopt,
                          char *err, size_t errlen) {
  const sl_config_t *cfg = w->cfg;
  for (unsigned i = 0; i < cfg->listen_count; i++) {
    int r;
    if (adopt) {
      /* A live hand-off: the sockets the old process listened on, backlog and all. */
      if ((r = watch_listener(w, i, adopt->listen[i])))
        return r;
      continue;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (parse_listen(cfg->listen[i], &ss)) {
      snprintf(err, errlen, "bad listen address '%s' (want HOST:PORT or [V6]:PORT)", cfg->listen[i]);
      return -EINVAL;
    }
    if (first) {
      int port = sl__worker_port(first, i);
      if (port < 0)
        return port;
      if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
      else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    }
    int fd = bind_listener(&ss, err, errlen, cfg->listen[i], first == NULL, &w->lock_fds[i]);
    if (fd < 0)
      return fd;
    if ((r = watch_listener(w, i, fd)))
      return r;
  }
  w->listeners_open = 1;
  return 0;
}

int sl__worker_init(sl_worker_t *w, unsigned index, const sl_config_t *cfg, sl_pacer_t *pacer,
                    sl_admission_t *admission, const sl_worker_t *first,
                    const sl_listen_fds_t *adopt, sl_worker_drained_cb drained, void *arg,
                    char *err, size_t errlen) {
  assert(admission != NULL);
  memset(w, 0, sizeof *w);
  w->admission = admission;
  w->index = index;
  w->cfg = cfg;
  w->drained = drained;
  w->drained_arg = arg;
  atomic_init(&w->delivered_at_drain, NO_DRAIN_YET);
  w->epfd = -1;
  for (unsigned i = 0; i < SL_MAX_LISTEN; i++)
    w->listen_fds[i] = w->lock_fds[i] = -1;
  /* Handed sockets are the worker's from here on, whatever happens next. */
  for (unsigned i = 0; adopt && i < cfg->listen_count; i++) {
    w->listen_fds[i] = adopt->listen[i];
    w->lock_fds[i] = adopt->lock[i];
  }
  int r = uv_loop_init(&w->loop);
  if (r)
    goto fail;
  w->loop.data = w;
  if ((r = uv_mutex_init(&w->inbox_lock)))
    goto fail_loop;
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (w->epfd < 0) {
    r = -errno;
    goto fail_mutex;
  }
  if ((r = sl__transport_init(&w->net, &w->loop, w->epfd, index, cfg, &w->metrics)))
    goto fail_mutex;
  w->net.owner = w;
  w->net.reap_soon = reap_soon;
  w->net.conn_freed = conn_freed;
  w->net.conn_closed = conn_closed;
  if ((r = uv_async_init(&w->loop, &w->wakeup, NULL)) ||
      (r = sl__delivery_init(&w->dlv, &w->net, &w->loop, &w->wakeup, pacer, cfg, &w->metrics)))
    goto fail_transport;
  if ((r = uv_timer_init(&w->loop, &w->sweep)) || (r = uv_idle_init(&w->loop, &w->reaper)) ||
      (r = uv_poll_init(&w->loop, &w->epoll_watch, w->epfd)) ||
      (r = init_listeners(w, first, adopt, err, errlen)))
    goto fail_delivery;
  return 0;
fail_delivery:
  sl__delivery_destroy(&w->dlv);
fail_transport:
  sl__transport_destroy(&w->net);
fail_mutex:
  uv_mutex_destroy(&w->inbox_lock);
fail_loop:
  close_listener_fds(w);
  w->listen_count = 0;
  /* Handles initialised on the loop must be closed before the loop can be. */
  uv_walk(&w->loop, close_walk, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  if (w->epfd >= 0)
    close(w->epfd);
  w->epfd = -1;
fail:
  if (!err[0])
    snprintf(err, errlen, "worker %u: %s", index, uv_strerror(r));
  return r;
}

int sl__worker_port(const sl_worker_t *w, unsigned i) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (i >= w->listen_count || getsockname(w->listen_fds[i], (struct sockaddr *)&ss, &len))
    return -EINVAL;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int sl__worker_post(sl_worker_t *w, sl_msg_kind_t kind, sl_frame_t *frame) {
  assert((kind == SL_MSG_FRAME) == (frame != NULL));
  uv_mutex_lock(&w->inbox_lock);
  if (w->inbox_len == w->inbox_cap) {
    size_t cap = w->inbox_cap ? w->inbox_cap * 2 : INBOX_FIRST_CAP;
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
    sl__delivery_drain_pending(&w->dlv);
  uv_mutex_unlock(&w->inbox_lock);
  return was_empty;
}

int sl__worker_post_call(sl_worker_t *w, sl_worker_call_t *call) {
  call->next = NULL;
  uv_mutex_lock(&w->inbox_lock);
  int was_empty = w->inbox_len == 0 && w->calls == NULL;
  if (w->calls == NULL)
    w->calls = call;
  else
    *w->calls_tail = call;
  w->calls_tail = &call->next;
  uv_mutex_unlock(&w->inbox_lock);
  return was_empty;
}

void sl__worker_seed(sl_worker_t *w, uint64_t seq) {
  sl__delivery_seed(&w->dlv, seq);
}

/* Runs a list of calls, in order; each may free itself. */
static void run_calls(sl_worker_call_t *call) {
  while (call) {
    sl_worker_call_t *next = call->next;
    call->fn(call);
    call = next;
  }
}

void sl__worker_wake(sl_worker_t *w) {
  uv_async_send(&w->wakeup);
}

void sl__worker_force(sl_worker_t *w) {
  atomic_store(&w->force_requested, 1);
  uv_async_send(&w->wakeup);
}

void sl__worker_stop(sl_worker_t *w) {
  atomic_store(&w->stop_requested, 1);
  uv_async_send(&w->wakeup);
}

uint64_t sl__worker_drain_flushed(sl_worker_t *w) {
  uint64_t base = atomic_load(&w->delivered_at_drain);
  return base == NO_DRAIN_YET ? 0 : sl__metric_get(&w->metrics.delivered_total) - base;
}

static void force_close_all(sl_worker_t *w) {
  size_t n = sl__transport_close_all(&w->net);
  sl__metric_add(&w->metrics.forced_total, n);
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

static void close_listener_fds(sl_worker_t *w) {
  for (unsigned i = 0; i < SL_MAX_LISTEN; i++) {
    if (w->listen_fds[i] >= 0)
      close(w->listen_fds[i]);
    if (w->lock_fds[i] >= 0)
      close(w->lock_fds[i]);
    w->listen_fds[i] = w->lock_fds[i] = -1;
  }
}

/* The hub stopped taking updates and every accepted one is already dispatched (the drain message
 * came after them): close the listeners, and ask every connection's protocol to end. */
static void drain_begin(sl_worker_t *w) {
  w->draining = 1;
  atomic_store(&w->delivered_at_drain, sl__metric_get(&w->metrics.delivered_total));
  sl__delivery_drain(&w->dlv);
  close_listeners(w);
  sl__transport_shutdown(&w->net);
}

static void stop_handles(sl_worker_t *w) {
  if (w->stopping)
    return;
  w->stopping = 1;
  close_listeners(w);
  uv_close((uv_handle_t *)&w->sweep, NULL);
  sl__delivery_close(&w->dlv);
  uv_close((uv_handle_t *)&w->epoll_watch, NULL);
  uv_close((uv_handle_t *)&w->reaper, NULL);
  uv_close((uv_handle_t *)&w->wakeup, NULL);
}

/* Called when a connection ends or a drain step ran: the worker is done once draining and empty. */
static void worker_check_done(sl_worker_t *w) {
  if (!w->draining || w->done || w->net.conn_count > 0)
    return;
  w->done = 1;
  if (w->drained)
    w->drained(w, w->drained_arg);
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
  /* Taken with the inbox: every update posted before a call is in it, and dispatched first. */
  sl_worker_call_t *calls = w->calls;
  w->calls = NULL;
  uv_mutex_unlock(&w->inbox_lock);

  int drain = 0;
  sl__delivery_begin_pass(&w->dlv);
  for (size_t i = 0; i < n; i++) {
    if (msgs[i].kind == SL_MSG_DRAIN) {
      drain = 1;
      continue;
    }
    sl__delivery_dispatch(&w->dlv, msgs[i].frame);
    sl__frame_unref(msgs[i].frame);
  }
  if (lost > w->dlv.dispatched_seq)
    sl__delivery_gap(&w->dlv, lost);
  run_calls(calls);
  w->spare = msgs;
  w->spare_cap = cap;
  sl__delivery_schedule(&w->dlv);
  if (drain && !w->draining)
    drain_begin(w);
  if (atomic_load(&w->force_requested) && !w->stopping)
    force_close_all(w);
  turn_end(w);
  if (w->draining)
    worker_check_done(w);
  if (atomic_load(&w->stop_requested) && w->done)
    stop_handles(w);
}

/* --- the live hand-off: the worker's part, each step on its own thread ---------------------- */

void sl__worker_handoff_quiesce(sl_worker_t *w) {
  if (w->listeners_open)
    for (unsigned i = 0; i < w->listen_count; i++)
      uv_poll_stop(&w->listeners[i]); /* new connections wait in the backlog, which goes along */
  w->handing_off = 1;
  sl__transport_quiesce(&w->net);
}

size_t sl__worker_handoff_busy(sl_worker_t *w) {
  return sl__transport_busy(&w->net);
}

int sl__worker_handoff_export(sl_worker_t *w, sl_conn_export_cb cb, void *arg) {
  /* What waits for the flush window goes into the records too: export takes every byte queued. */
  return sl__transport_export(&w->net, cb, arg);
}

size_t sl__worker_handoff_release(sl_worker_t *w) {
  size_t n = sl__transport_release(&w->net);
  turn_end(w);
  return n;
}

void sl__worker_handoff_giveback(sl_worker_t *w) {
  sl__transport_release_all(&w->net);
}

void sl__worker_handoff_thaw(sl_worker_t *w) {
  w->handing_off = 0;
  sl__transport_thaw(&w->net);
  if (w->listeners_open && !w->accept_paused)
    for (unsigned i = 0; i < w->listen_count; i++)
      if (uv_poll_start(&w->listeners[i], UV_READABLE, on_accept))
        w->accept_paused = 1; /* the sweep tries again */
  turn_end(w);
}

int sl__worker_adopt(sl_worker_t *w, int fd, struct sl_wire_reader_s *record) {
  /* Counted like an accepted one, so that the caps hold in this process too. */
  struct sockaddr_storage peer;
  socklen_t len = sizeof peer;
  uint32_t ticket = 0;
  if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
    (void)sl__admission_admit(w->admission, (struct sockaddr *)&peer, &ticket);
  sl_conn_t *c = sl__conn_adopt(&w->net, fd, record, ticket);
  if (c == NULL)
    return -EPROTO;
  sl__metric_add(&w->metrics.adopted_total, 1);
  return 0;
}

/* What the worker adopted is written once its loop runs: the bytes that were queued there, then
 * whatever the protocol does next (parse what waited, page a replay). */
static void flush_adopted(sl_worker_t *w) {
  sl_conn_t *next;
  for (sl_conn_t *c = w->net.conns; c; c = next) {
    next = c->next;
    sl__conn_flush(c);
  }
  turn_end(w);
}

static void on_sweep(uv_timer_t *t) {
  sl_worker_t *w = t->loop->data;
  uint64_t now = uv_now(&w->loop);
  sl__transport_sweep(&w->net, now);
  if (w->accept_paused && w->listeners_open && !w->handing_off) {
    w->accept_paused = 0;
    for (unsigned i = 0; i < w->listen_count; i++) {
      int r = uv_poll_start(&w->listeners[i], UV_READABLE, on_accept);
      if (r) {
        /* Still out of something: try again at the next sweep. */
        sl__log(SL_LOG_WARN, "worker %u: cannot resume accepting: %s", w->index, uv_strerror(r));
        w->accept_paused = 1;
      }
    }
  }
  if (now - w->resume_window_start >= RESUME_WINDOW_MS) {
    uint64_t total = sl__metric_get(&w->metrics.resumes_total);
    atomic_store_explicit(&w->metrics.resumes_last_second, total - w->resume_window_base,
                          memory_order_relaxed);
    w->resume_window_base = total;
    w->resume_window_start = now;
  }
  turn_end(w);
}

static void worker_main(void *arg) {
  sl_worker_t *w = arg;
  char name[THREAD_NAME_MAX];
  snprintf(name, sizeof name, "sluice-w%u", w->index);
  pthread_setname_np(pthread_self(), name);
  if (w->net.conn_count > 0)
    flush_adopted(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  sl__transport_reap(&w->net); /* nothing should be left; if something is, it is not leaked */
  close_listener_fds(w);
}

int sl__worker_start(sl_worker_t *w) {
  int r;
  assert(w->net.proto != NULL);
  w->wakeup.async_cb = on_wakeup;
  w->resume_window_start = uv_now(&w->loop);
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

void sl__worker_join(sl_worker_t *w) {
  if (w->thread_started) {
    uv_thread_join(&w->thread);
    w->thread_started = 0;
  }
}

void sl__worker_destroy(sl_worker_t *w) {
  if (w->net.read_buf == NULL)
    return;
  if (!w->stopping) {
    /* Never started, or the hub is freed without a shutdown: close what is left here. */
    sl__transport_close_all(&w->net);
    sl__transport_reap(&w->net);
    stop_handles(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    close_listener_fds(w);
  }
  uv_loop_close(&w->loop);
  if (w->epfd >= 0)
    close(w->epfd);
  w->epfd = -1;
  for (size_t i = 0; i < w->inbox_len; i++)
    if (w->inbox[i].frame)
      sl__frame_unref(w->inbox[i].frame);
  free(w->inbox);
  free(w->spare);
  sl__delivery_destroy(&w->dlv);
  sl__transport_destroy(&w->net);
  /* Every connection is closed: the calls left find theirs gone, and only free themselves. */
  run_calls(w->calls);
  w->calls = NULL;
  uv_mutex_destroy(&w->inbox_lock);
}
