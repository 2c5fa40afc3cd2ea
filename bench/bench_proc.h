/* bench_proc.h — what the load generator reads about the server under test from /proc: CPU time
 * (utime + stime of /proc/PID/stat) and resident memory (VmRSS of /proc/PID/status), summed over
 * every --server-pid given, for peers that run several processes.
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

typedef struct bench_proc_sample_s {
  double cpu_seconds;  /* user + system, summed over the processes */
  uint64_t rss_kb;     /* VmRSS, summed */
  int ok;              /* every process could be read */
} bench_proc_sample_t;

/* Samples n processes. 0, or a negative errno (-ENOENT once a process has gone); out->ok says
 * whether every process was read, and the sums cover those that were. */
int bench_proc_sample(const pid_t *pids, int n, bench_proc_sample_t *out);

#endif
