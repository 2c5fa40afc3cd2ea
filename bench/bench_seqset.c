/* bench_seqset.c — received-sequence sets (see bench_seqset.h). The common case, the next index
 * of an in-order stream, is one comparison and an increment; everything else is rare enough to
 * afford a binary search and a memmove.
 */
#include "bench_seqset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int bit_get(const uint8_t *b, uint32_t j) { return (b[j >> 3] >> (j & 7)) & 1; }
static void bit_set(uint8_t *b, uint32_t j) { b[j >> 3] |= (uint8_t)(1u << (j & 7)); }

static int to_bitmap(bench_seqset_t *s, uint32_t universe) {
  uint8_t *b = calloc((size_t)universe / 8 + 1, 1);
  if (b == NULL)
    return -ENOMEM;
  const bench_range_t *r = s->ranges ? s->ranges : &s->one;
  uint32_t n = s->ranges ? s->nranges : (s->count ? 1 : 0);
  for (uint32_t i = 0; i < n; i++)
    for (uint64_t j = r[i].lo; j <= r[i].hi; j++)
      bit_set(b, (uint32_t)j);
  free(s->ranges);
  s->ranges = NULL;
  s->nranges = s->cap = 0;
  s->bits = b;
  return 0;
}

/* Index of the first range whose hi >= j (nranges if none). */
static uint32_t lower_bound(const bench_range_t *r, uint32_t n, uint32_t j) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (r[mid].hi < j)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int ranges_insert(bench_seqset_t *s, uint32_t j, uint32_t universe) {
  if (s->ranges == NULL) {
    s->cap = 4;
    s->ranges = malloc(s->cap * sizeof *s->ranges);
    if (s->ranges == NULL) {
      s->cap = 0;
      return -ENOMEM;
    }
    s->ranges[0] = s->one;
    s->nranges = 1;
  }
  bench_range_t *r = s->ranges;
  uint32_t n = s->nranges;
  uint32_t i = lower_bound(r, n, j);
  if (i < n && r[i].lo <= j)
    return BENCH_SEQ_DUPLICATE;
  int joins_prev = i > 0 && r[i - 1].hi + 1 == j;
  int joins_next = i < n && r[i].lo == j + 1;
  if (joins_prev && joins_next) {
    r[i - 1].hi = r[i].hi;
    memmove(&r[i], &r[i + 1], (n - i - 1) * sizeof *r);
    s->nranges--;
  } else if (joins_prev) {
    r[i - 1].hi = j;
  } else if (joins_next) {
    r[i].lo = j;
  } else {
    /* A new range: switch to a bitmap when ranges would cost more than one. */
    if ((uint64_t)(n + 1) * sizeof *r > (uint64_t)universe / 8 + 64) {
      int rc = to_bitmap(s, universe);
      if (rc < 0)
        return rc;
      bit_set(s->bits, j);
      return 0;
    }
    if (n == s->cap) {
      bench_range_t *nr = realloc(r, (size_t)s->cap * 2 * sizeof *r);
      if (nr == NULL)
        return -ENOMEM;
      s->ranges = r = nr;
      s->cap *= 2;
    }
    memmove(&r[i + 1], &r[i], (n - i) * sizeof *r);
    r[i].lo = r[i].hi = j;
    s->nranges++;
  }
  return 0;
}

int bench_seqset_add(bench_seqset_t *s, uint32_t j, uint32_t universe) {
  if (s->count == 0) {
    s->one.lo = s->one.hi = j;
    s->count = 1;
    s->max = j;
    return BENCH_SEQ_NEW;
  }
  if (s->bits == NULL && s->ranges == NULL && j == s->one.hi + 1) {
    s->one.hi = j;
    s->count++;
    s->max = j;
    return BENCH_SEQ_NEW;
  }
  if (s->bits == NULL && s->ranges == NULL && j >= s->one.lo && j <= s->one.hi)
    return BENCH_SEQ_DUPLICATE;
  if (s->bits) {
    if (bit_get(s->bits, j))
      return BENCH_SEQ_DUPLICATE;
    bit_set(s->bits, j);
  } else {
    int rc = ranges_insert(s, j, universe);
    if (rc != 0)
      return rc;
  }
  s->count++;
  if (j > s->max) {
    s->max = j;
    return BENCH_SEQ_NEW;
  }
  return BENCH_SEQ_REORDERED;
}

int bench_seqset_has(const bench_seqset_t *s, uint32_t j) {
  if (s->count == 0)
    return 0;
  if (s->bits)
    return bit_get(s->bits, j);
  if (s->ranges == NULL)
    return j >= s->one.lo && j <= s->one.hi;
  uint32_t i = lower_bound(s->ranges, s->nranges, j);
  return i < s->nranges && s->ranges[i].lo <= j;
}

void bench_seqset_each(const bench_seqset_t *s, uint32_t universe,
                       void (*fn)(void *ctx, uint32_t lo, uint32_t hi), void *ctx) {
  if (s->count == 0)
    return;
  if (s->bits) {
    uint32_t j = 0;
    while (j < universe) {
      if (!bit_get(s->bits, j)) {
        j++;
        continue;
      }
      uint32_t lo = j;
      while (j + 1 < universe && bit_get(s->bits, j + 1))
        j++;
      fn(ctx, lo, j);
      j++;
    }
    return;
  }
  if (s->ranges == NULL) {
    fn(ctx, s->one.lo, s->one.hi);
    return;
  }
  for (uint32_t i = 0; i < s->nranges; i++)
    fn(ctx, s->ranges[i].lo, s->ranges[i].hi);
}

void bench_seqset_free(bench_seqset_t *s) {
  free(s->ranges);
  free(s->bits);
  memset(s, 0, sizeof *s);
}
