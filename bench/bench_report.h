/* bench_report.h — sluice-bench's output: one JSON object on stdout (--json; the harness reads
 * its keys) or a short human summary, and the exit status both imply.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdio.h>

#include "bench_ipc.h"
#include "bench_opts.h"

typedef struct bench_report_s {
  const bench_config_t *cfg;
  bench_result_t r;             /* summed over the workers */
  uint64_t published;
  uint64_t acked;
  uint64_t pub_errors;
  int pub_bad_status;
  uint32_t workers;
  uint32_t sources;
  int workers_lost;             /* workers that died before reporting */
  int timed_out;                /* the global deadline cut the run short */
  int signaled;                 /* SIGTERM was sent */
  int upgraded;                 /* SIGUSR2 was sent (--upgrade-after) */
  double connect_seconds;
  double publish_seconds;       /* first send → last ack */
  double duration_seconds;      /* first send → last delivery or ack (idle/churn: their length) */
  double drain_seconds;         /* SIGTERM → last stream end */
  int have_server;              /* --server-pid given and readable */
  double server_cpu_seconds;
  uint64_t server_rss_kb;
  double rss_per_conn_bytes;
} bench_report_t;

void bench_report_json(FILE *out, const bench_report_t *rep);
void bench_report_text(FILE *out, const bench_report_t *rep);
/* Prints "sluice-bench: <message>" on stderr, first clearing the progress bar's line when stderr
 * is a terminal. */
__attribute__((format(printf, 1, 2)))
void bench_warn(const char *fmt, ...);

/* 0 for a clean run; 1 when events were lost, duplicated or reordered, subscriptions failed,
 * streams did not end (--signal-after), a worker died or the deadline cut the run short. */
int bench_report_exit_code(const bench_report_t *rep);

#endif
