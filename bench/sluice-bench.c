/* sluice-bench.c — the load generator's entry point: parse the flags, then either run the
 * built-in self-test or one benchmark run (bench_run.c). Exit status: 0 a clean run, 1 losses,
 * duplicates, reordering or failures, 2 a usage error.
 */
#include <stdio.h>

#include "bench_opts.h"
#include "bench_run.h"
#include "bench_selftest.h"

int main(int argc, char **argv) {
  bench_config_t cfg;
  char err[512];
  int rc = bench_opts_parse(&cfg, argc, argv, err, sizeof err);
  if (rc == 1)
    return 0;
  if (rc < 0) {
    fprintf(stderr, "sluice-bench: %s\n", err);
    return 2;
  }
  if (cfg.self_test)
    return bench_self_test() == 0 ? 0 : 1;
  return bench_run(&cfg);
}
