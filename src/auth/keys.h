/* keys.h — the trusted verification keys of one role and JWS signature checks with them
 * (OpenSSL's EVP; the only file that builds keys or verifies signatures). A key comes from an HMAC
 * secret, a PEM public key or certificate (given as text or in a file), or a JWK Set file (RFC
 * 7517). Each key accepts only the algorithms of its type (RFC 7518), so a token can never choose
 * to have an RSA public key used as an HMAC secret: HS256/384/512 only with secrets, RS and PS
 * only with RSA keys of at least 2048 bits, ES256/ES384/ES512 only with P-256/P-384/P-521 keys,
 * EdDSA only with Ed25519 keys. No key ever comes from the token itself (jwk, jku, x5u are never read).
 *
 * Ownership: a key set owns its keys (secrets are wiped when freed). Threading: immutable once
 * built; verifying from many threads at once is safe.
 */
#ifndef SL_KEYS_H
#define SL_KEYS_H

#include <stddef.h>

/* The JWS algorithms a hub may accept (RFC 7518 section 3, RFC 8037 for EdDSA). */
typedef enum {
  SL_JWS_INVALID = 0,  /* not an algorithm sluice accepts: "none", unknown names */
  SL_JWS_HS256, SL_JWS_HS384, SL_JWS_HS512,
  SL_JWS_RS256, SL_JWS_RS384, SL_JWS_RS512,
  SL_JWS_PS256, SL_JWS_PS384, SL_JWS_PS512,
  SL_JWS_ES256, SL_JWS_ES384, SL_JWS_ES512,
  SL_JWS_EDDSA,
} sl_jws_alg_t;

/* The algorithm a JOSE header's alg names, or SL_JWS_INVALID ("none" among them). */
sl_jws_alg_t sl__jws_alg(const char *name);

/* The most keys one set holds, and the longest key file read, in bytes. */
#define SL_MAX_KEYS 64
#define SL_MAX_KEY_FILE 1048576

typedef struct sl_keyset_s sl_keyset_t;

/* An empty set. 0 or -ENOMEM. */
int sl__keyset_new(sl_keyset_t **ks);
void sl__keyset_free(sl_keyset_t *ks);   /* NULL ok */
size_t sl__keyset_count(const sl_keyset_t *ks);

/* Adds a key given as a value: text starting with "-----BEGIN" is a PEM public key or
 * certificate, anything else an HMAC secret (len bytes; refused when shorter than
 * SL_MIN_HMAC_KEY unless allow_weak). 0, or -EINVAL with err saying what is wrong, or -ENOMEM. */
int sl__keyset_add_value(sl_keyset_t *ks, const char *value, size_t len, int allow_weak,
                         char *err, size_t errlen);

/* Adds the key in a file: PEM (public key or certificate) when it starts with "-----BEGIN",
 * otherwise its content, less one trailing newline, is an HMAC secret. 0, -EINVAL (err says why:
 * unreadable, empty, not a public key, weak secret) or -ENOMEM. */
int sl__keyset_add_file(sl_keyset_t *ks, const char *path, int allow_weak, char *err,
                        size_t errlen);

/* Adds every key of a JWK Set ({"keys":[...]}): kty RSA (n, e, or x5c), EC (crv P-256, P-384,
 * P-521; x, y), OKP (crv Ed25519; x), oct (k). A key whose "use" is not "sig", or whose key_ops
 * lacks "verify", is skipped; a key with "alg" accepts only that algorithm; "kid" names it. A
 * malformed key, an unknown kty or crv, or a set with no usable key is an error (a typo must not
 * silently leave a role without the key meant for it). 0, -EINVAL with err, -ENOMEM. */
int sl__keyset_add_jwks(sl_keyset_t *ks, const char *json, size_t len, int allow_weak, char *err,
                        size_t errlen);
int sl__keyset_add_jwks_file(sl_keyset_t *ks, const char *path, int allow_weak, char *err,
                             size_t errlen);

/* Verifies sig (sig_len raw bytes, the decoded third segment) over input (the signing input,
 * "header.payload") with alg. Which keys are tried: when kid is given and keys carry that kid,
 * those only; when kid is given and no key carries it, the keys without a kid (static keys), and
 * none when every key has one (*why "unknown kid"); without kid, every key. Of those, only keys
 * whose type accepts alg (*why "alg not allowed for the configured keys" when there is none).
 * 0 when one key verifies; -EACCES with *why ("bad signature", ...) ; -ENOMEM. */
int sl__keyset_verify(const sl_keyset_t *ks, sl_jws_alg_t alg, const char *kid,
                      const unsigned char *input, size_t input_len, const unsigned char *sig,
                      size_t sig_len, const char **why);

#endif
