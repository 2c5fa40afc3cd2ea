/* ratelimit.c — token buckets in a direct-mapped table (see ratelimit.h). */
#include "common/ratelimit.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct sl_bucket_s {
  uint64_t key;                  /* the key's hash; 0 = never used */
  double tokens;
  uint64_t last_ms;
} sl_bucket_t;

static uint64_t hash_key(const void *key, size_t len) {
  const unsigned char *p = key;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  h ^= h >> 29;
  return h ? h : 1;
}

int sl__ratelimit_init(sl_ratelimit_t *r, double rate, double burst, size_t slots) {
  assert(rate > 0 && burst >= 1 && slots > 0 && (slots & (slots - 1)) == 0);
  memset(r, 0, sizeof *r);
  r->rate = rate;
  r->burst = burst;
  r->mask = slots - 1;
  r->buckets = calloc(slots, sizeof *r->buckets);
  if (r->buckets == NULL)
    return -ENOMEM;
  for (int i = 0; i < SL_RATELIMIT_STRIPES; i++) {
    int e = uv_mutex_init(&r->locks[i]);
    if (e) {
      while (i-- > 0)
        uv_mutex_destroy(&r->locks[i]);
      free(r->buckets);
      r->buckets = NULL;
      return e;
    }
  }
  return 0;
}

void sl__ratelimit_destroy(sl_ratelimit_t *r) {
  if (r->buckets == NULL)
    return;
  for (int i = 0; i < SL_RATELIMIT_STRIPES; i++)
    uv_mutex_destroy(&r->locks[i]);
  free(r->buckets);
  r->buckets = NULL;
}

unsigned sl__ratelimit_take(sl_ratelimit_t *r, const void *key, size_t len, uint64_t now_ms) {
  uint64_t h = hash_key(key, len);
  size_t i = h & r->mask;
  uv_mutex_t *lock = &r->locks[i % SL_RATELIMIT_STRIPES];
  uv_mutex_lock(lock);
  sl_bucket_t *b = &r->buckets[i];
  if (b->key != h) {
    b->key = h;
    b->tokens = r->burst;
    b->last_ms = now_ms;
  } else if (now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) / 1000.0 * r->rate;
    if (b->tokens > r->burst)
      b->tokens = r->burst;
    b->last_ms = now_ms;
  }
  unsigned wait = 0;
  if (b->tokens >= 1)
    b->tokens -= 1;
  else {
    double seconds = (1 - b->tokens) / r->rate;
    wait = (unsigned)seconds; /* whole seconds, rounded up, at least one */
    if ((double)wait < seconds || wait == 0)
      wait++;
  }
  uv_mutex_unlock(lock);
  return wait;
}
