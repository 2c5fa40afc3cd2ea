/* auth.h — JWT access token verification and minting (jansson reads the JSON; keys.c holds the
 * keys and checks signatures with OpenSSL). Validates tokens per the Mercure spec's Token
 * Validation profile (or the pre-standard one when legacy is set) and extracts
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
 * array is one block, the selectors followed by their NUL-terminated texts; and each URL-pattern
 * or URI-template selector's reference to its compiled matcher. The payloads are one more block
 * of the same shape, in token order. */
typedef struct sl_claims_s {
  sl_selector_t *publish;
  size_t publish_count;
  sl_selector_t *subscribe;
  size_t subscribe_count;
  sl_payload_t *payloads;
  size_t payload_count;
  int64_t exp;        /* seconds since the epoch after which the token is no longer accepted
                         (its exp plus the leeway); 0 when it has none (legacy profile) */
  int64_t expires;    /* its exp itself (rounded down), 0 when none: a stream ends there, no
                         later (the spec's MUST; the leeway only forgives clock skew on entry) */
} sl_claims_t;

/* The payload of the first subscribe grant whose selectors match the subscription's own matcher
 * text (len bytes) as if it were a topic, then the token-wide one; NULL when none. Borrowed
 * from claims. */
const sl_payload_t *sl__claims_payload(const sl_claims_t *claims, const char *matcher, size_t len);

typedef struct sl_auth_s sl_auth_t;

/* The longest leeway accepted, in seconds. */
#define SL_AUTH_MAX_LEEWAY 600

/* How tokens are validated. Strings are borrowed for the sl__auth_new call. Each role's trusted
 * keys are the union of its key value, key file and JWK Set file (any may be NULL). */
typedef struct sl_auth_config_s {
  const char *key[2];        /* indexed by sl_role_t: an HMAC secret, or PEM text (a value
                                starting with "-----BEGIN": a public key or certificate) */
  const char *key_file[2];   /* a PEM public key or certificate, or a file holding a secret */
  const char *jwks_file[2];  /* a JWK Set (RFC 7517) */
  const char *audience;      /* the resource identifier "aud" must hold; NULL = not checked */
  const char *issuer;        /* the "iss" tokens must carry exactly; NULL = any (in the spec
                                profile iss must still be present) */
  int legacy;                /* 1: the pre-standard profile: typ JWT or none also accepted, exp
                                and iss optional, the "mercure" claim grants as well */
  int64_t leeway;            /* seconds of clock skew allowed on exp, nbf and iat, 0-600 */
  int allow_weak;            /* 1: accept HMAC secrets shorter than 32 bytes (tests only) */
} sl_auth_config_t;

/* Builds the validator, loading every key and file. 0; -EINVAL with err saying which key or file
 * is wrong and why (unreadable, not a public key, weak secret, RSA under 2048 bits, bad JWK Set,
 * leeway out of range); -ENOMEM. A role with no key cannot authenticate (-ENOKEY on verify). */
int sl__auth_new(sl_auth_t **auth, const sl_auth_config_t *cfg, char *err, size_t errlen);
void sl__auth_free(sl_auth_t *auth);

/* 1 when role has at least one trusted key. */
int sl__auth_has_key(const sl_auth_t *auth, sl_role_t role);

/* Verifies token (len bytes, not NUL-terminated) for role at time now (seconds since the epoch).
 * 0 and *claims filled; -EACCES for any invalid token with *why a short reason naming the rule,
 * safe to quote in a WWW-Authenticate error_description (ASCII, no quote or backslash): "alg not
 * allowed", "alg not allowed for the configured keys", "unknown kid", "bad signature", "typ not
 * allowed", "missing exp", "token expired", "token not yet valid", "token issued in the future",
 * "audience mismatch", "missing iss", "issuer mismatch", malformed parts, "unsupported
 * match_type", a URL pattern or legacy URI template grant that does not compile, ...; -ENOKEY when no key is configured for role; -ENOMEM. On any error *claims is
 * empty. claims->exp is when the hub stops accepting the token: its exp plus the leeway;
 * claims->expires, its exp. */
int sl__auth_verify(const sl_auth_t *auth, sl_role_t role, const char *token, size_t len,
                   int64_t now, sl_claims_t *claims, const char **why);

/* The hub's URL (absolute, NUL-terminated, borrowed: it must outlive auth and every claims it
 * verifies), against which relative URL patterns in grants resolve. Until it is set, a relative
 * pattern makes a token invalid. */
void sl__auth_set_topic_base(sl_auth_t *auth, const char *url);

/* Frees the claims' blocks and drops their selectors' matcher references. */
void sl__claims_free(sl_claims_t *claims);

/* A deep copy of src into dst, laid out as sl__auth_verify lays claims out (one block per role:
 * the selector array, then its strings), sharing the compiled matchers (one more reference each),
 * so sl__claims_free frees it. dst and src must differ.
 * 0, or -ENOMEM with dst empty. */
int sl__claims_copy(sl_claims_t *dst, const sl_claims_t *src);

/* Mints an HS256 JWT access token (header {"alg":"HS256","typ":"at+jwt"}) granting publish on
 * publish[] and subscribe on subscribe[] (as authorization_details and, for pre-standard hubs,
 * the legacy mercure claim), with iat, exp = now + exp_seconds (0 = no exp, which only a legacy
 * hub accepts), sub, client_id, jti, and aud/iss when given. *out is malloc'ed. 0, -EINVAL or
 * -ENOMEM. */
int sl__token_mint(const char *key, const char *const *publish, size_t npublish,
                  const char *const *subscribe, size_t nsubscribe, int64_t exp_seconds,
                  const char *audience, const char *issuer, char **out);

#endif
