/* bench_hist.c — histogram arithmetic for the load generator (see bench_hist.h). Recording is a
 * count-leading-zeros and two shifts, so it costs nothing next to parsing the event it measures.
 */
#include "bench_hist.h"

#include <math.h>

unsigned bench_hist_index(uint64_t v) {
  if (v < BENCH_HIST_LINEAR)
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - BENCH_HIST_SUB_BITS;           /* >= 1 */
  unsigned mant = (unsigned)(v >> shift);                /* in [64, 127] */
  return BENCH_HIST_LINEAR + (shift - 1) * BENCH_HIST_HALF + (mant - BENCH_HIST_HALF);
}

uint64_t bench_hist_upper(unsigned index) {
  if (index < BENCH_HIST_LINEAR)
    return index;
  unsigned rel = index - BENCH_HIST_LINEAR;
  unsigned shift = rel / BENCH_HIST_HALF + 1;
  uint64_t mant = rel % BENCH_HIST_HALF + BENCH_HIST_HALF;
  if (shift + BENCH_HIST_SUB_BITS + 1 >= 64 && mant == 2 * BENCH_HIST_HALF - 1)
    return UINT64_MAX;
  return ((mant + 1) << shift) - 1;
}

void bench_hist_record(bench_hist_t *h, uint64_t v) {
  h->buckets[bench_hist_index(v)]++;
  h->count++;
  h->sum += v;
  if (v > h->max)
    h->max = v;
}

void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src) {
  for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
    dst->buckets[i] += src->buckets[i];
  dst->count += src->count;
  dst->sum += src->sum;
  if (src->max > dst->max)
    dst->max = src->max;
}

/* Both histograms' quantiles: the index of the bucket (of n) that holds the value of rank
 * ceil(q × count), the rank kept within 1..count; n when the buckets hold fewer than count
 * values. count must be above 0. */
static unsigned rank_bucket(const uint64_t *buckets, unsigned n, uint64_t count, double q) {
  uint64_t rank = (uint64_t)ceil(q * (double)count);
  if (rank < 1)
    rank = 1;
  if (rank > count)
    rank = count;
  uint64_t seen = 0;
  for (unsigned i = 0; i < n; i++) {
    seen += buckets[i];
    if (seen >= rank)
      return i;
  }
  return n;
}

uint64_t bench_hist_quantile(const bench_hist_t *h, double q) {
  if (h->count == 0)
    return 0;
  unsigned i = rank_bucket(h->buckets, BENCH_HIST_BUCKETS, h->count, q);
  if (i == BENCH_HIST_BUCKETS)
    return h->max;
  uint64_t up = bench_hist_upper(i);
  return up < h->max ? up : h->max;
}

/* Past the exact bounds 0..10: segments of equal steps, each ending at `upto`. */
#define MSH_EXACT 10
static const struct {
  uint64_t upto, step;
} msh_segments[] = {
  {1000, 10}, {10000, 50}, {60000, 1000}, {600000, 540000},
};
#define MSH_NSEGMENTS (sizeof msh_segments / sizeof *msh_segments)

unsigned bench_msh_index(uint64_t ms) {
  if (ms <= MSH_EXACT)
    return (unsigned)ms;
  unsigned base = MSH_EXACT + 1;
  uint64_t lo = MSH_EXACT;
  for (unsigned k = 0; k < MSH_NSEGMENTS; k++) {
    uint64_t step = msh_segments[k].step;
    if (ms <= msh_segments[k].upto)
      return base + (unsigned)((ms - lo + step - 1) / step) - 1;
    base += (unsigned)((msh_segments[k].upto - lo) / step);
    lo = msh_segments[k].upto;
  }
  return BENCH_MSH_BUCKETS - 1;
}

uint64_t bench_msh_bound(unsigned i) {
  if (i <= MSH_EXACT)
    return i;
  unsigned base = MSH_EXACT + 1;
  uint64_t lo = MSH_EXACT;
  for (unsigned k = 0; k < MSH_NSEGMENTS; k++) {
    uint64_t step = msh_segments[k].step;
    unsigned n = (unsigned)((msh_segments[k].upto - lo) / step);
    if (i < base + n)
      return lo + (uint64_t)(i - base + 1) * step;
    base += n;
    lo = msh_segments[k].upto;
  }
  return UINT64_MAX;
}

void bench_msh_record(bench_msh_t *h, uint64_t ms) {
  h->buckets[bench_msh_index(ms)]++;
  h->count++;
  if (ms > h->max)
    h->max = ms;
}

void bench_msh_merge(bench_msh_t *dst, const bench_msh_t *src) {
  for (unsigned i = 0; i < BENCH_MSH_BUCKETS; i++)
    dst->buckets[i] += src->buckets[i];
  dst->count += src->count;
  if (src->max > dst->max)
    dst->max = src->max;
}

uint64_t bench_msh_upper(const bench_msh_t *h, unsigned i) {
  return i < BENCH_MSH_BUCKETS - 1 ? bench_msh_bound(i) : h->max;
}

uint64_t bench_msh_quantile(const bench_msh_t *h, double q) {
  if (h->count == 0)
    return 0;
  unsigned i = rank_bucket(h->buckets, BENCH_MSH_BUCKETS, h->count, q);
  if (i == BENCH_MSH_BUCKETS)
    return h->max;
  uint64_t up = bench_msh_upper(h, i);
  return up < h->max ? up : h->max;
}
