/* bench_sub.h — a sluice-bench worker: one process, one libuv loop, a share of the subscriber
 * connections. It connects them (CONNECTED), reads and checks every stream, follows the
 * coordinator's SIGNALED and FINISH messages, reconnects with Last-Event-ID under --resume, or
 * opens and closes connections under --churn, and sends one RESULT before returning.
 */
#ifndef BENCH_SUB_H
#define BENCH_SUB_H

#include <stdint.h>

#include "bench_opts.h"
#include "bench_target.h"

typedef struct bench_worker_args_s {
  const bench_config_t *cfg;
  const bench_targets_t *targets;
  uint64_t first;        /* global index of this worker's first subscriber */
  uint64_t count;        /* subscribers (in churn mode: connections kept in flight) */
  uint32_t nsources;     /* source addresses 127.0.0.1..n to bind; <= 1: let the kernel pick */
  uint32_t run_id;       /* the run id of this run's payloads */
  int fd;                /* this worker's end of the socketpair to the coordinator */
  int progress;          /* send PROGRESS messages for the coordinator's progress bar */
  uint64_t t_start_ns;   /* CLOCK_MONOTONIC when the run started */
} bench_worker_args_t;

/* Runs the worker to completion. Returns a process exit status: 0 when a RESULT was sent. */
int bench_worker_main(const bench_worker_args_t *args);

#endif
