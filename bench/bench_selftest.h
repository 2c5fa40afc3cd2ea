/* bench_selftest.h — `sluice-bench --self-test`: checks the SSE parser, the HTTP stream glue,
 * the histograms, the sequence sets, the payload format and the loopback rule on built-in
 * inputs, without any network. Registered with CTest as bench/self_test.
 */
#ifndef BENCH_SELFTEST_H
#define BENCH_SELFTEST_H

/* Returns the number of failed checks (0: all passed); prints each failure on stderr. */
int bench_self_test(void);

#endif
