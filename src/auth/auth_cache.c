/* auth_cache.c — tokens already verified, per worker: a direct-mapped table indexed by a seeded
 * 64-bit hash of (role, token bytes). It does not verify anything itself: only what the caller
 * puts after a successful sl__auth_verify is ever returned, and only for the same role and the very
 * same bytes. The hash only picks the slot and rejects most misses early; a hit always compares
 * the full token, so a collision can never hand out another token's claims.
 *
 * What sl__auth_verify checked stays true for a stored token while time moves forward and
 * stays before exp: signature, alg, typ, aud and iss do not depend on time, and nbf was already
 * past when it was stored. So an entry is trusted only for stored <= now < exp.
 *
 * The hash seed is random per cache, so that a client cannot choose tokens that land in the slot
 * of someone else's token to evict it; the token bytes are compared in constant time, so that the
 * time a miss takes tells nothing about a stored token.
 */
#include "auth/auth_cache.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct slot {
  char *token;          /* owned, len bytes; NULL when the slot is empty */
  size_t len;
  uint64_t hash;
  sl_role_t role;
  int64_t stored;       /* now as given to put, in seconds since the epoch */
  sl_claims_t claims;   /* owned */
};

struct sl_auth_cache_s {
  struct slot *slots;
  size_t mask;          /* slot count - 1; the count is a power of two */
  uint64_t seed;
};

#define MUL1 0x9e3779b97f4a7c15ull   /* odd constants with well-spread bits */
#define MUL2 0xd6e8feb86659fd93ull

/* A bijective finaliser: every input bit affects every output bit. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= MUL2;
  x ^= x >> 29;
  x *= MUL2;
  x ^= x >> 32;
  return x;
}

/* The token read as 8-byte little- or big-endian words (either is fine: the hash never leaves
 * this process), the tail zero-padded; the length is mixed in so the padding is unambiguous. */
static uint64_t hash_token(uint64_t seed, sl_role_t role, const char *token, size_t len) {
  uint64_t h = seed ^ ((uint64_t)len * MUL1) ^ ((uint64_t)role + 1) * MUL2;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, token + i, 8);
    h = (h ^ mix64(w + MUL1)) * MUL1;
    h ^= h >> 31;
  }
  if (i < len) {
    uint64_t w = 0;
    memcpy(&w, token + i, len - i);
    h = (h ^ mix64(w + MUL1)) * MUL1;
  }
  return mix64(h);
}

/* 1 when the n bytes are equal, in a time that depends on n only: no early exit. */
static int equal_bytes(const char *a, const char *b, size_t n) {
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    memcpy(&x, a + i, 8);
    memcpy(&y, b + i, 8);
    diff |= x ^ y;
  }
  for (; i < n; i++)
    diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static void slot_clear(struct slot *s) {
  free(s->token);
  sl__claims_free(&s->claims);
  memset(s, 0, sizeof(*s));
}

static uint64_t random_seed(const void *salt) {
  uint64_t seed;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
    return seed;
  /* Early boot, before the pool is ready: a weaker seed only makes eviction easier to aim. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return mix64((uint64_t)(uintptr_t)salt ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32));
}

sl_auth_cache_t *sl__auth_cache_new(size_t entries) {
  size_t n = 1;
  while (n < entries) {
    if (n > SIZE_MAX / 2)
      return NULL;
    n <<= 1;
  }
  sl_auth_cache_t *cache = calloc(1, sizeof(*cache));
  if (!cache)
    return NULL;
  cache->slots = calloc(n, sizeof(struct slot));
  if (!cache->slots) {
    free(cache);
    return NULL;
  }
  cache->mask = n - 1;
  cache->seed = random_seed(cache);
  return cache;
}

void sl__auth_cache_free(sl_auth_cache_t *cache) {
  if (!cache)
    return;
  for (size_t i = 0; i <= cache->mask; i++)
    slot_clear(&cache->slots[i]);
  free(cache->slots);
  free(cache);
}

int sl__auth_cache_get(sl_auth_cache_t *cache, sl_role_t role, const char *token, size_t len,
                      int64_t now, sl_claims_t *claims) {
  assert(claims && (token || !len));
  memset(claims, 0, sizeof(*claims));
  if (!cache || !len || len > SL_AUTH_CACHE_MAX_TOKEN)
    return -ENOENT;
  uint64_t hash = hash_token(cache->seed, role, token, len);
  struct slot *s = &cache->slots[hash & cache->mask];
  if (!s->token || s->hash != hash || s->len != len || s->role != role ||
      !equal_bytes(s->token, token, len))
    return -ENOENT;
  if (now < s->stored || (s->claims.exp && now >= s->claims.exp)) {
    slot_clear(s);
    return -ENOENT;
  }
  return sl__claims_copy(claims, &s->claims);
}

void sl__auth_cache_put(sl_auth_cache_t *cache, sl_role_t role, const char *token, size_t len,
                       int64_t now, const sl_claims_t *claims) {
  assert(claims && (token || !len));
  if (!cache || !len || len > SL_AUTH_CACHE_MAX_TOKEN || (claims->exp && now >= claims->exp))
    return;
  char *copy = malloc(len);
  if (!copy)
    return;
  memcpy(copy, token, len);
  sl_claims_t claims_copy;
  if (sl__claims_copy(&claims_copy, claims) < 0) {
    free(copy);
    return;
  }
  uint64_t hash = hash_token(cache->seed, role, token, len);
  struct slot *s = &cache->slots[hash & cache->mask];
  slot_clear(s);
  s->token = copy;
  s->len = len;
  s->hash = hash;
  s->role = role;
  s->stored = now;
  s->claims = claims_copy;
}
