/* auth_cache.h — a per-worker cache of tokens that sl__auth_verify has accepted, so that a client
 * presenting the same token again skips the signature check and the JSON parsing.
 *
 * Ownership: the cache owns a copy of every token and of its claims; get hands out an independent
 * copy of the claims that the caller frees with sl__claims_free. Threading: none; one cache per
 * worker loop, used only from that loop's thread. A cache holds tokens verified against one
 * sl_auth_t (its keys, audience and issuer): it must not outlive it, nor be shared between two.
 * Memory is bounded: entries slots, each at most one token of SL_AUTH_CACHE_MAX_TOKEN bytes and
 * its claims.
 */
#ifndef SL_AUTH_CACHE_H
#define SL_AUTH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

/* The longest token cached, in bytes; longer ones are verified every time. */
#define SL_AUTH_CACHE_MAX_TOKEN 4096

typedef struct sl_auth_cache_s sl_auth_cache_t;

/* entries: slots (rounded up to a power of two, at least 1). NULL on ENOMEM. */
sl_auth_cache_t *sl__auth_cache_new(size_t entries);
void sl__auth_cache_free(sl_auth_cache_t *cache);   /* NULL ok */

/* A token verified earlier for role and still valid at now (seconds since the epoch): 0 with a copy
 * of its claims in *claims (caller frees with sl__claims_free). -ENOENT on a miss (or expired, or
 * now earlier than when it was stored: the clock went back), -ENOMEM. On any error *claims is
 * empty (sl__claims_free on it is harmless). A hit needs role, length and every byte of the token
 * to be equal; the bytes are compared in constant time. An expired or clock-skewed entry is
 * dropped. A NULL cache is an empty one. */
int sl__auth_cache_get(sl_auth_cache_t *cache, sl_role_t role, const char *token, size_t len,
                      int64_t now, sl_claims_t *claims);

/* Remembers a token that sl__auth_verify accepted at now, with its claims (copied). Tokens longer
 * than SL_AUTH_CACHE_MAX_TOKEN (4096) bytes are not cached, nor empty ones, nor claims already
 * expired at now. Replaces whatever was in the slot; when out of memory, the slot keeps what it
 * had. A NULL cache ignores it. */
void sl__auth_cache_put(sl_auth_cache_t *cache, sl_role_t role, const char *token, size_t len,
                       int64_t now, const sl_claims_t *claims);

#endif
