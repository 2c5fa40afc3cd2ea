/* fdpass.c — messages with descriptors on a Unix SOCK_SEQPACKET socket (see fdpass.h). */
#include "net/fdpass.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <uv.h>

#define NS_PER_MS 1000000

uint64_t sl__fdpass_now_ms(void) {
  return uv_hrtime() / NS_PER_MS;
}

/* Waits until sock is ready for events or the deadline passed. 0, -ETIMEDOUT or -errno. */
static int wait_for(int sock, short events, uint64_t deadline_ms) {
  for (;;) {
    int timeout = -1;
    if (deadline_ms) {
      uint64_t now = sl__fdpass_now_ms();
      if (now >= deadline_ms)
        return -ETIMEDOUT;
      timeout = (int)(deadline_ms - now);
    }
    struct pollfd p = {.fd = sock, .events = events};
    int n = poll(&p, 1, timeout);
    if (n > 0)
      return 0; /* ready, or an error the call that follows reports */
    if (n == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
}

int sl__fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds,
                    uint64_t deadline_ms) {
  if (nfds > SL_FDPASS_MAX_FDS || len > SL_FDPASS_MAX_MSG || len == 0)
    return -EMSGSIZE;
  union {
    char buf[CMSG_SPACE(sizeof(int) * SL_FDPASS_MAX_FDS)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds) {
    memset(u.buf, 0, sizeof u.buf);
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0)
      return (size_t)n == len ? 0 : -EMSGSIZE;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    int r = wait_for(sock, POLLOUT, deadline_ms);
    if (r)
      return r;
  }
}

static void close_fds(const struct msghdr *msg) {
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int fd;
    for (size_t i = 0; i < n; i++) {
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      close(fd);
    }
  }
}

ssize_t sl__fdpass_recv(int sock, void *buf, size_t cap, int *fds, size_t *nfds,
                        uint64_t deadline_ms) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * SL_FDPASS_MAX_FDS)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {.iov_base = buf, .iov_len = cap};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
  *nfds = 0;
  ssize_t n;
  for (;;) {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n >= 0)
      break;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -errno;
    int r = wait_for(sock, POLLIN, deadline_ms);
    if (r)
      return r;
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    close_fds(&msg);
    return -EMSGSIZE;
  }
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k && *nfds < SL_FDPASS_MAX_FDS; i++)
      memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
  }
  return n;
}
