/* bench_hist.h — the load generator's histograms. A log-linear latency histogram (exact below
 * 128, then 64 sub-buckets per power of two, so any reported value is within 1/64 ≈ 1.6 % above
 * the true one) and a fixed-bound histogram for millisecond values (retry: announcements, stream
 * ends after SIGTERM, reconnect delays) that reports as [upper_ms, count] pairs. Both are plain
 * values: no heap, safe to copy byte-for-byte between processes of the same binary.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_LINEAR (1u << (BENCH_HIST_SUB_BITS + 1))  /* 128 exact buckets */
#define BENCH_HIST_HALF (1u << BENCH_HIST_SUB_BITS)          /* 64 buckets per octave */
#define BENCH_HIST_BUCKETS (BENCH_HIST_LINEAR + (64 - BENCH_HIST_SUB_BITS - 1 - 1) * BENCH_HIST_HALF + BENCH_HIST_HALF)

typedef struct bench_hist_s {
  uint64_t count;
  uint64_t max;
  uint64_t sum;
  uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist_t;

void bench_hist_record(bench_hist_t *h, uint64_t v);
void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src);
/* The smallest bucket upper bound below which a fraction q (0..1) of the values lie, capped at
 * the exact maximum; 0 for an empty histogram. */
uint64_t bench_hist_quantile(const bench_hist_t *h, double q);
/* Exposed for the self-test: bucket index of v and the largest value that bucket holds. */
unsigned bench_hist_index(uint64_t v);
uint64_t bench_hist_upper(unsigned index);

/* Millisecond histogram. Bucket bounds (a bucket holds the values above the previous bound, up
 * to and including its own): every ms to 10, then steps of 10 ms to 1000, 50 ms to 10000 and
 * 1000 ms to 60000, then 600000, then an overflow bucket. Fine enough to draw a drain that lasts
 * a few hundred ms and a reconnection spread of a few seconds (in 250-ms bins) from it. */
#define BENCH_MSH_BUCKETS (11 + 99 + 180 + 50 + 1 + 1)
typedef struct bench_msh_s {
  uint64_t count;
  uint64_t max;
  uint64_t buckets[BENCH_MSH_BUCKETS];
} bench_msh_t;

void bench_msh_record(bench_msh_t *h, uint64_t ms);
void bench_msh_merge(bench_msh_t *dst, const bench_msh_t *src);
/* Upper bound of bucket i in ms; the overflow bucket reports the largest value recorded. */
uint64_t bench_msh_upper(const bench_msh_t *h, unsigned i);
/* The bound of the bucket holding the value of rank ceil(q × count), capped at the maximum
 * recorded; 0 for an empty histogram. */
uint64_t bench_msh_quantile(const bench_msh_t *h, double q);
/* Exposed for the self-test: the bucket of ms, and the fixed bound of bucket i (UINT64_MAX for
 * the overflow bucket). */
unsigned bench_msh_index(uint64_t ms);
uint64_t bench_msh_bound(unsigned i);

#endif
