/* bench_ipc.h — what sluice-bench's processes tell each other over their socketpairs. Workers
 * (subscriber connections) report CONNECTED, PROGRESS and RESULT; the coordinator (publisher)
 * sends SIGNALED and FINISH. Messages are a type and a length followed by a struct of the same
 * binary, so they are written and read whole with blocking I/O; only forked copies of one
 * executable ever talk this way.
 */
#ifndef BENCH_IPC_H
#define BENCH_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "bench_hist.h"

enum {
  BENCH_MSG_CONNECTED = 1,  /* worker → coordinator: bench_msg_connected_t */
  BENCH_MSG_PROGRESS,       /* worker → coordinator: bench_msg_progress_t */
  BENCH_MSG_SIGNALED,       /* coordinator → worker: bench_msg_signaled_t */
  BENCH_MSG_FINISH,         /* coordinator → worker: bench_msg_finish_t + ack bitmap */
  BENCH_MSG_RESULT,         /* worker → coordinator: bench_result_t */
};

typedef struct bench_msg_connected_s {
  uint64_t connected;
  uint64_t failed;
  uint64_t t_done_ns;  /* CLOCK_MONOTONIC when the last attempt finished */
} bench_msg_connected_t;

typedef struct bench_msg_progress_s {
  uint64_t connected;
  uint64_t delivered;
  uint64_t ended;
  uint64_t churned;
} bench_msg_progress_t;

typedef struct bench_msg_signaled_s {
  uint64_t sigterm_ns;  /* CLOCK_MONOTONIC when SIGTERM was sent */
} bench_msg_signaled_t;

typedef struct bench_msg_finish_s {
  uint64_t published;    /* events sent, each a bit in the bitmap that follows */
  uint64_t deadline;     /* nonzero: the global deadline passed, report at once */
  uint64_t bitmap_len;   /* bytes of ack bitmap following this struct: bit s = event s acked */
} bench_msg_finish_t;

/* Everything a worker measured; also the sum over workers. Times are CLOCK_MONOTONIC ns. */
typedef struct bench_result_s {
  uint64_t subscribers;
  uint64_t connected;
  uint64_t connect_failed;
  uint64_t http_errors;       /* subscription answered with a status other than 200 */
  uint64_t first_bad_status;
  int64_t first_connect_error;  /* libuv error code of the first failed connect, or 0 */
  uint64_t t_connected_ns;
  uint64_t delivered;         /* distinct (subscriber, event) pairs received */
  uint64_t expected;          /* acked events × subscribers of their topic */
  uint64_t lost;
  uint64_t duplicates;
  uint64_t out_of_order;
  uint64_t misrouted;         /* events of a topic the subscriber did not ask for */
  uint64_t foreign;           /* data events that are not this run's payloads */
  uint64_t stream_errors;     /* bytes that were not a valid HTTP response */
  uint64_t t_first_delivery_ns;
  uint64_t t_last_delivery_ns;
  uint64_t ended_clean;
  uint64_t ended_partial;
  uint64_t ended_reset;
  uint64_t ended_timeout;
  uint64_t partial_frames;    /* streams that ended inside an event */
  uint64_t partial_bytes;     /* bytes of those unfinished events */
  uint64_t close_frames;      /* events of type "close" */
  uint64_t t_last_end_ns;
  uint64_t reconnected;
  uint64_t reconnect_failed;
  uint64_t recovered;         /* new events received on a reconnected stream */
  uint64_t churn_accepted;
  uint64_t churn_errors;
  uint64_t tracking_oom;      /* receipts that could not be recorded for lack of memory */
  bench_hist_t latency;       /* ns from publish to receipt */
  bench_msh_t retry_ms;       /* retry: values announced in close frames */
  bench_msh_t end_ms;         /* SIGTERM → end, per stream open at the SIGTERM (not timed out) */
  bench_msh_t reconnect_ms;   /* stream end → new stream's 200 */
} bench_result_t;

void bench_result_merge(bench_result_t *dst, const bench_result_t *src);

/* Writes one message (body then extra, both may be empty). 0 or a negative errno. */
int bench_ipc_send(int fd, uint32_t type, const void *body, size_t len, const void *extra,
                   size_t extra_len);
/* Reads one whole message into a malloc'd *body (free it). 0, -EPIPE at end of file, -EPROTO on
 * an oversized message, or another negative errno. */
int bench_ipc_recv(int fd, uint32_t *type, void **body, size_t *len);

#endif
