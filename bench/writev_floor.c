/* writev_floor.c — the floor under any SSE hub's fan-out: what the kernel charges for one write()
 * of one frame, and for one writev() of k frames, on a loopback TCP connection, an AF_UNIX
 * socketpair and a pipe, for k = 1, 4, 16, 64. A hub that writes each event to each subscriber
 * with its own system call pays the first column per delivery; one that gathers a subscriber's
 * queued frames into one writev() pays the last column divided by k. The numbers bound what
 * batching can buy, and show how far a hub's measured cost per delivery is above the kernel's.
 *
 * A reader thread drains the far end with large reads, so the writer measures the send path and
 * blocks only if the reader falls behind. Each measurement is bounded by a frame count and by
 * wall time. Owns nothing beyond its own sockets; touches only loopback.
 *
 * Usage: sluice-writev-floor [--size BYTES] [--frames N] [--seconds S]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 64
#define DEFAULT_SIZE 100       /* bytes of event payload, as in the broadcast workload */
#define DEFAULT_FRAMES 400000  /* frames written per measurement */
#define DEFAULT_SECONDS 2.0    /* wall-time cap of one measurement, in seconds */

typedef struct {
  const char *name;
  int wfd;
  int rfd;
} channel_t;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads until EOF; its only job is to keep the writer's buffer from filling. */
static void *drain(void *arg) {
  int fd = *(int *)arg;
  static char buf[1 << 20];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0 && errno != EINTR) break;
  }
  return NULL;
}

static int open_tcp(channel_t *c) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  int one = 1, err = 0;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) return -errno;
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1) < 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
    err = -errno;
    goto close_listener;
  }
  c->wfd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->wfd < 0) {
    err = -errno;
    goto close_listener;
  }
  /* A hub sets TCP_NODELAY so a lone event is not held back; measure the same send path. */
  if (setsockopt(c->wfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
      connect(c->wfd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    err = -errno;
    goto close_writer;
  }
  c->rfd = accept(lfd, NULL, NULL);
  if (c->rfd < 0) {
    err = -errno;
    goto close_writer;
  }
  close(lfd);
  return 0;
close_writer:
  close(c->wfd);
close_listener:
  close(lfd);
  return err;
}

static int open_channel(channel_t *c) {
  int fds[2];
  if (strcmp(c->name, "tcp-loopback") == 0) return open_tcp(c);
  if (strcmp(c->name, "socketpair") == 0) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) return -errno;
    c->wfd = fds[0];
    c->rfd = fds[1];
    return 0;
  }
  if (pipe(fds) < 0) return -errno;
  c->rfd = fds[0];
  c->wfd = fds[1];
  return 0;
}

/* Writes all of iov, finishing a short write the way a hub must. */
static int write_all(int fd, struct iovec *iov, int cnt) {
  while (cnt > 0) {
    ssize_t n = writev(fd, iov, cnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    while (cnt > 0 && (size_t)n >= iov->iov_len) {
      n -= (ssize_t)iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = (char *)iov->iov_base + n;
      iov->iov_len -= (size_t)n;
    }
  }
  return 0;
}

/* Sends frames in batches of k, one writev() per batch (k = 1 is a plain write of one frame).
 * Stores nanoseconds per call and per frame. */
static int measure(const char *name, const char *frame, size_t flen, int k, long frames,
                   double seconds, double *ns_call, double *ns_frame) {
  channel_t c = {.name = name, .wfd = -1, .rfd = -1};
  struct iovec iov[MAX_BATCH];
  pthread_t reader;
  long calls = 0, sent = 0;
  int err = open_channel(&c);
  if (err < 0) return err;
  if ((err = -pthread_create(&reader, NULL, drain, &c.rfd)) < 0) goto close_channel;

  double start = now_seconds(), elapsed = 0;
  while (sent < frames) {
    for (int i = 0; i < k; i++) iov[i] = (struct iovec){.iov_base = (void *)frame, .iov_len = flen};
    if ((err = write_all(c.wfd, iov, k)) < 0) break;
    calls++;
    sent += k;
    /* Checking the clock every 64 calls keeps its cost out of the measurement. */
    if ((calls & 63) == 0 && (elapsed = now_seconds() - start) > seconds) break;
  }
  elapsed = now_seconds() - start;
  close(c.wfd);
  c.wfd = -1;
  pthread_join(reader, NULL);
  *ns_call = elapsed * 1e9 / (double)calls;
  *ns_frame = elapsed * 1e9 / (double)sent;
close_channel:
  if (c.wfd >= 0) close(c.wfd);
  close(c.rfd);
  return err;
}

static int usage(const char *prog) {
  fprintf(stderr, "usage: %s [--size BYTES] [--frames N] [--seconds S]\n", prog);
  return 2;
}

int main(int argc, char **argv) {
  static const char *const channels[] = {"tcp-loopback", "socketpair", "pipe"};
  static const int batches[] = {1, 4, 16, 64};
  size_t size = DEFAULT_SIZE;
  long frames = DEFAULT_FRAMES;
  double seconds = DEFAULT_SECONDS;

  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--size") == 0) size = strtoul(argv[++i], NULL, 10);
    else if (i + 1 < argc && strcmp(argv[i], "--frames") == 0) frames = strtol(argv[++i], NULL, 10);
    else if (i + 1 < argc && strcmp(argv[i], "--seconds") == 0) seconds = strtod(argv[++i], NULL);
    else return usage(argv[0]);
  }
  if (size == 0 || size > 65536 || frames <= 0 || seconds <= 0) return usage(argv[0]);

  /* One SSE frame as a hub sends it: "data: <payload>\n\n". */
  size_t flen = size + 8;
  char *frame = malloc(flen);
  if (frame == NULL) return 1;
  memcpy(frame, "data: ", 6);
  memset(frame + 6, 'x', size);
  memcpy(frame + 6 + size, "\n\n", 2);

  printf("frame: %zu bytes (%zu B payload); up to %ld frames or %.1f s per row\n", flen, size,
         frames, seconds);
  printf("(on loopback the receiver's half of TCP runs inside the sender's system call)\n");
  printf("%-13s %3s %12s %12s %14s\n", "channel", "k", "ns/call", "ns/frame", "vs k writes");
  int status = 0;
  for (size_t c = 0; c < sizeof channels / sizeof *channels; c++) {
    double single = 0;
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
      double ns_call, ns_frame;
      int err = measure(channels[c], frame, flen, batches[b], frames, seconds, &ns_call, &ns_frame);
      if (err < 0) {
        fprintf(stderr, "%s k=%d: %s\n", channels[c], batches[b], strerror(-err));
        status = 1;
        continue;
      }
      if (batches[b] == 1) single = ns_frame;
      printf("%-13s %3d %12.0f %12.1f %13.1fx\n", channels[c], batches[b], ns_call, ns_frame,
             single > 0 ? single / ns_frame : 0.0);
      fflush(stdout);
    }
  }
  free(frame);
  return status;
}
