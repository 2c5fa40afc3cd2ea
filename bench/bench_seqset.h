/* bench_seqset.h — the set of event sequence numbers one subscriber has received, kept so that
 * losses, duplicates and reordering can be counted exactly without a bit per event per
 * subscriber. Indices are topic-local (seq / topics). An in-order stream is one inline range and
 * costs no memory; gaps become a sorted array of ranges; a set whose ranges would outgrow a
 * bitmap of the universe switches to the bitmap. Owns its arrays; free with bench_seqset_free.
 */
#ifndef BENCH_SEQSET_H
#define BENCH_SEQSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_range_s {
  uint32_t lo, hi;  /* inclusive */
} bench_range_t;

typedef struct bench_seqset_s {
  bench_range_t one;    /* the only range while ranges == NULL and count > 0 */
  bench_range_t *ranges;/* sorted, disjoint, non-adjacent; NULL while one range suffices */
  uint32_t nranges;
  uint32_t cap;
  uint8_t *bits;        /* non-NULL once switched to a bitmap of the universe */
  uint32_t count;       /* distinct indices held */
  uint32_t max;         /* largest index held (valid when count > 0) */
} bench_seqset_t;

enum {
  BENCH_SEQ_NEW = 0,        /* first time seen, above everything seen so far */
  BENCH_SEQ_REORDERED = 1,  /* first time seen, below the largest seen */
  BENCH_SEQ_DUPLICATE = 2,  /* already held */
};

/* Adds index j (< universe). Returns a BENCH_SEQ_* value, or -ENOMEM (the set is unchanged). */
int bench_seqset_add(bench_seqset_t *s, uint32_t j, uint32_t universe);
int bench_seqset_has(const bench_seqset_t *s, uint32_t j);
/* Calls fn for each maximal range held, in increasing order (bitmaps are walked run by run). */
void bench_seqset_each(const bench_seqset_t *s, uint32_t universe,
                       void (*fn)(void *ctx, uint32_t lo, uint32_t hi), void *ctx);
void bench_seqset_free(bench_seqset_t *s);

#endif
