/* ratelimit.h — token buckets keyed by bytes (a client's address, a token's bytes) in a table
 * of fixed size shared by every worker: a bucket refills at rate per second up to burst, and a
 * request takes one token. Keys hash into the table directly; a key that lands on another's
 * bucket takes it over fresh, so memory stays fixed whatever the number of clients, at the cost
 * of a client whose bucket was taken over getting a full burst again. Striped locks keep the
 * workers from waiting on each other. */
#ifndef SL_RATELIMIT_H
#define SL_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SL_RATELIMIT_STRIPES 16

typedef struct sl_ratelimit_s {
  double rate;                   /* tokens per second */
  double burst;                  /* tokens a bucket holds at most */
  struct sl_bucket_s *buckets;
  size_t mask;
  uv_mutex_t locks[SL_RATELIMIT_STRIPES];
} sl_ratelimit_t;

/* slots: a power of two. 0 or a negative errno. */
int sl__ratelimit_init(sl_ratelimit_t *r, double rate, double burst, size_t slots);
void sl__ratelimit_destroy(sl_ratelimit_t *r);

/* Takes one token from key's bucket at now_ms (a monotonic clock): 0 when there was one, else
 * the whole seconds to wait before there is (at least 1), for a Retry-After. */
unsigned sl__ratelimit_take(sl_ratelimit_t *r, const void *key, size_t len, uint64_t now_ms);

#endif
