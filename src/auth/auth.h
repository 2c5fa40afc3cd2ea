/* auth.h — JWT verification and minting (libjwt + jansson; the only files that know them are
 * auth.c and this header). Verifies HMAC-signed tokens against the configured keys and extracts
 * the topic selectors a token grants for publishing and subscribing, from the legacy
 * {"mercure":{"publish":[...],"subscribe":[...]}} claim and from RFC 9396 authorization_details
 * entries of type "https://mercure.rocks/authorization-detail".
 */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "topics/topic.h"

typedef enum { SL_ROLE_PUBLISHER = 0, SL_ROLE_SUBSCRIBER = 1 } sl_role_t;

/* The payload a subscribe grant attaches to the subscriptions it matches (the spec's Payloads):
 * the grant's selectors are the claims' subscribe[first, first + count), and count 0 means every
 * subscription (the pre-standard mercure claim's payload, tried after every detail). */
typedef struct sl_payload_s {
  uint32_t first;
  uint32_t count;
  const char *json;   /* compact JSON text, NUL-terminated, in the payloads' block */
  size_t len;
} sl_payload_t;

/* What a verified token grants. Owns its arrays and the strings its selectors borrow: each role's
 * array is one block, the selectors followed by their NUL-terminated texts; the payloads are one
 * more block of the same shape, in token order. */
typedef struct sl_claims_s {
  sl_selector_t *publish;
  size_t publish_count;
  sl_selector_t *subscribe;
  size_t subscribe_count;
  sl_payload_t *payloads;
  size_t payload_count;
  int64_t exp;        /* seconds since the epoch; 0 when the token has none */
} sl_claims_t;

/* The payload of the first subscribe grant whose selectors match the subscription's own matcher
 * text (len bytes) as if it were a topic, then the token-wide one; NULL when none. Borrowed
 * from claims. */
const sl_payload_t *sl__claims_payload(const sl_claims_t *claims, const char *matcher, size_t len);

typedef struct sl_auth_s sl_auth_t;

/* Keys may be NULL or "" (that role then cannot authenticate). audience/issuer NULL = not
 * checked. Copies every string. 0, -EINVAL (a key longer than INT_MAX) or -ENOMEM. */
int sl__auth_new(sl_auth_t **auth, const char *publisher_key, const char *subscriber_key,
                const char *audience, const char *issuer);
void sl__auth_free(sl_auth_t *auth);

/* Verifies token (len bytes, not NUL-terminated) for role at time now (seconds since the epoch).
 * 0 and *claims filled; -EACCES for any invalid token (bad signature, alg not HS256/HS384/HS512,
 * typ other than JWT/at+jwt/application/at+jwt when present, expired, not yet valid (nbf), wrong
 * aud/iss when configured, malformed claims, unsupported match_type) with *why a short reason for
 * logs; -ENOKEY when no key is configured for role; -ENOMEM. On any error *claims is empty. */
int sl__auth_verify(const sl_auth_t *auth, sl_role_t role, const char *token, size_t len,
                   int64_t now, sl_claims_t *claims, const char **why);

void sl__claims_free(sl_claims_t *claims);

/* A deep copy of src into dst, laid out as sl__auth_verify lays claims out (one block per role:
 * the selector array, then its strings), so sl__claims_free frees it. dst and src must differ.
 * 0, or -ENOMEM with dst empty. */
int sl__claims_copy(sl_claims_t *dst, const sl_claims_t *src);

/* Mints an HS256 token granting publish on publish[] and subscribe on
 * subscribe[] (as authorization_details and, for older clients, the legacy mercure claim), with
 * iat, exp = now + exp_seconds (0 = no exp), sub, client_id, jti, and aud/iss when given. Its
 * header says "typ":"JWT", not "at+jwt": libjwt 1.10 overrides any typ it is given. *out is
 * malloc'ed. 0, -EINVAL or -ENOMEM. */
int sl__token_mint(const char *key, const char *const *publish, size_t npublish,
                  const char *const *subscribe, size_t nsubscribe, int64_t exp_seconds,
                  const char *audience, const char *issuer, char **out);

#endif
