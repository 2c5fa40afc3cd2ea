/* bench_ipc.c — message framing between sluice-bench's processes and the sum of their results
 * (see bench_ipc.h).
 */
#include "bench_ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MESSAGE (1u << 30)

/* libuv's uv_poll_init makes the descriptor non-blocking; a message is still read and written
 * whole, by waiting for the descriptor whenever it would block. */
static int wait_fd(int fd, short events) {
  struct pollfd p = {.fd = fd, .events = events};
  while (poll(&p, 1, -1) < 0)
    if (errno != EINTR)
      return -errno;
  return 0;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *s = p;
  while (n > 0) {
    ssize_t k = write(fd, s, n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_fd(fd, POLLOUT);
        if (rc < 0)
          return rc;
        continue;
      }
      return -errno;
    }
    s += k;
    n -= (size_t)k;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *s = p;
  while (n > 0) {
    ssize_t k = read(fd, s, n);
    if (k == 0)
      return -EPIPE;
    if (k < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_fd(fd, POLLIN);
        if (rc < 0)
          return rc;
        continue;
      }
      return -errno;
    }
    s += k;
    n -= (size_t)k;
  }
  return 0;
}

int bench_ipc_send(int fd, uint32_t type, const void *body, size_t len, const void *extra,
                   size_t extra_len) {
  uint32_t head[2] = {type, (uint32_t)(len + extra_len)};
  int rc = write_all(fd, head, sizeof head);
  if (rc == 0 && len)
    rc = write_all(fd, body, len);
  if (rc == 0 && extra_len)
    rc = write_all(fd, extra, extra_len);
  return rc;
}

int bench_ipc_recv(int fd, uint32_t *type, void **body, size_t *len) {
  uint32_t head[2];
  int rc = read_all(fd, head, sizeof head);
  if (rc < 0)
    return rc;
  if (head[1] > MAX_MESSAGE)
    return -EPROTO;
  char *b = malloc(head[1] ? head[1] : 1);
  if (b == NULL)
    return -ENOMEM;
  rc = read_all(fd, b, head[1]);
  if (rc < 0) {
    free(b);
    return rc;
  }
  *type = head[0];
  *body = b;
  *len = head[1];
  return 0;
}

static void take_max(uint64_t *d, uint64_t s) {
  if (s > *d)
    *d = s;
}

static void take_min_nonzero(uint64_t *d, uint64_t s) {
  if (s && (*d == 0 || s < *d))
    *d = s;
}

void bench_result_merge(bench_result_t *d, const bench_result_t *s) {
  d->subscribers += s->subscribers;
  d->connected += s->connected;
  d->connect_failed += s->connect_failed;
  d->http_errors += s->http_errors;
  if (d->first_bad_status == 0)
    d->first_bad_status = s->first_bad_status;
  if (d->first_connect_error == 0)
    d->first_connect_error = s->first_connect_error;
  take_max(&d->t_connected_ns, s->t_connected_ns);
  d->delivered += s->delivered;
  d->expected += s->expected;
  d->lost += s->lost;
  d->duplicates += s->duplicates;
  d->out_of_order += s->out_of_order;
  d->misrouted += s->misrouted;
  d->foreign += s->foreign;
  d->stream_errors += s->stream_errors;
  take_min_nonzero(&d->t_first_delivery_ns, s->t_first_delivery_ns);
  take_max(&d->t_last_delivery_ns, s->t_last_delivery_ns);
  d->ended_clean += s->ended_clean;
  d->ended_partial += s->ended_partial;
  d->ended_reset += s->ended_reset;
  d->ended_timeout += s->ended_timeout;
  d->partial_frames += s->partial_frames;
  d->partial_bytes += s->partial_bytes;
  d->close_frames += s->close_frames;
  take_max(&d->t_last_end_ns, s->t_last_end_ns);
  d->reconnected += s->reconnected;
  d->reconnect_failed += s->reconnect_failed;
  d->recovered += s->recovered;
  d->churn_accepted += s->churn_accepted;
  d->churn_errors += s->churn_errors;
  d->tracking_oom += s->tracking_oom;
  bench_hist_merge(&d->latency, &s->latency);
  bench_msh_merge(&d->retry_ms, &s->retry_ms);
  bench_msh_merge(&d->end_ms, &s->end_ms);
  bench_msh_merge(&d->reconnect_ms, &s->reconnect_ms);
}
