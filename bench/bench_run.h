/* bench_run.h — one sluice-bench run from a parsed config to the printed report. */
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

#include "bench_opts.h"

/* Runs the benchmark the config describes and prints its report on stdout. Returns the process
 * exit status: 0 clean, 1 losses or failures (bench_report_exit_code), 2 bad targets. */
int bench_run(const bench_config_t *cfg);

#endif
