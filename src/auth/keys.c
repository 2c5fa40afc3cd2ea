/* keys.c — trusted verification keys and JWS signature checks, with OpenSSL's EVP: loading HMAC
 * secrets, PEM public keys and certificates, and JWK Sets; binding each key to the algorithms of
 * its type; verifying a signature with the keys a token's kid and alg select. It reads no token
 * claims (auth.c does) and no key material from a token: only what the hub was configured with.
 */
#include "auth/keys.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/b64url.h"
#include "common/log.h"

/* Bytes of an HMAC secret: at least the hash's output for HS256 (RFC 7518 section 3.2); the same
 * bound as SL_MIN_HMAC_KEY in sluice.h. */
#define MIN_HMAC_KEY 32
/* RFC 7518 section 3.3: RSA keys of 2048 bits or more. */
#define MIN_RSA_BITS 2048
#define PEM_BEGIN "-----BEGIN"

typedef enum { KEY_HMAC, KEY_RSA, KEY_EC, KEY_ED25519 } key_type_t;

typedef struct {
  key_type_t type;
  int ec_bits;              /* KEY_EC: 256, 384 or 521 */
  sl_jws_alg_t only;        /* the JWK's "alg"; SL_JWS_INVALID = any its type accepts */
  char *kid;                /* NULL for keys not from a JWK Set (or a JWK without kid) */
  unsigned char *secret;    /* KEY_HMAC */
  size_t secret_len;
  EVP_PKEY *pkey;           /* the others */
} jwkey_t;

struct sl_keyset_s {
  jwkey_t keys[SL_MAX_KEYS];
  size_t count;
};

static const struct {
  const char *name;
  sl_jws_alg_t alg;
} alg_names[] = {
  {"HS256", SL_JWS_HS256}, {"HS384", SL_JWS_HS384}, {"HS512", SL_JWS_HS512},
  {"RS256", SL_JWS_RS256}, {"RS384", SL_JWS_RS384}, {"RS512", SL_JWS_RS512},
  {"PS256", SL_JWS_PS256}, {"PS384", SL_JWS_PS384}, {"PS512", SL_JWS_PS512},
  {"ES256", SL_JWS_ES256}, {"ES384", SL_JWS_ES384}, {"ES512", SL_JWS_ES512},
  {"EdDSA", SL_JWS_EDDSA},
};

sl_jws_alg_t sl__jws_alg(const char *name) {
  for (size_t i = 0; name && i < sizeof alg_names / sizeof alg_names[0]; i++)
    if (!strcmp(name, alg_names[i].name))
      return alg_names[i].alg;
  return SL_JWS_INVALID;
}

/* The hash of alg, or NULL for EdDSA, which hashes internally. */
static const char *alg_digest(sl_jws_alg_t alg) {
  switch (alg) {
  case SL_JWS_HS256: case SL_JWS_RS256: case SL_JWS_PS256: case SL_JWS_ES256: return "SHA256";
  case SL_JWS_HS384: case SL_JWS_RS384: case SL_JWS_PS384: case SL_JWS_ES384: return "SHA384";
  case SL_JWS_HS512: case SL_JWS_RS512: case SL_JWS_PS512: case SL_JWS_ES512: return "SHA512";
  default: return NULL;
  }
}

/* Whether key k may verify alg: the algorithm confusion check (RFC 8725 section 3.1). */
static int alg_fits(const jwkey_t *k, sl_jws_alg_t alg) {
  if (k->only != SL_JWS_INVALID && k->only != alg)
    return 0;
  switch (alg) {
  case SL_JWS_HS256: case SL_JWS_HS384: case SL_JWS_HS512: return k->type == KEY_HMAC;
  case SL_JWS_RS256: case SL_JWS_RS384: case SL_JWS_RS512:
  case SL_JWS_PS256: case SL_JWS_PS384: case SL_JWS_PS512: return k->type == KEY_RSA;
  case SL_JWS_ES256: return k->type == KEY_EC && k->ec_bits == 256;
  case SL_JWS_ES384: return k->type == KEY_EC && k->ec_bits == 384;
  case SL_JWS_ES512: return k->type == KEY_EC && k->ec_bits == 521;
  case SL_JWS_EDDSA: return k->type == KEY_ED25519;
  default: return 0;
  }
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  ERR_clear_error();
  return -EINVAL;
}

int sl__keyset_new(sl_keyset_t **ks) {
  *ks = calloc(1, sizeof **ks);
  return *ks ? 0 : -ENOMEM;
}

void sl__keyset_free(sl_keyset_t *ks) {
  if (!ks)
    return;
  for (size_t i = 0; i < ks->count; i++) {
    jwkey_t *k = &ks->keys[i];
    if (k->secret) {
      OPENSSL_cleanse(k->secret, k->secret_len);
      free(k->secret);
    }
    EVP_PKEY_free(k->pkey);
    free(k->kid);
  }
  free(ks);
}

size_t sl__keyset_count(const sl_keyset_t *ks) {
  return ks ? ks->count : 0;
}

/* The next free slot, with its kid copied; NULL with err set when the set is full (-EINVAL in
 * *rc) or out of memory (-ENOMEM). */
static jwkey_t *next_slot(sl_keyset_t *ks, const char *kid, int *rc, char *err, size_t errlen) {
  if (ks->count == SL_MAX_KEYS) {
    *rc = fail(err, errlen, "more than %d keys for one role", SL_MAX_KEYS);
    return NULL;
  }
  jwkey_t *k = &ks->keys[ks->count];
  memset(k, 0, sizeof *k);
  if (kid && !(k->kid = strdup(kid))) {
    *rc = -ENOMEM;
    return NULL;
  }
  return k;
}

static int add_secret(sl_keyset_t *ks, const unsigned char *s, size_t len, const char *kid,
                      sl_jws_alg_t only, int allow_weak, char *err, size_t errlen) {
  if (len == 0)
    return fail(err, errlen, "an empty HMAC secret would let anyone sign");
  if (len < MIN_HMAC_KEY && !allow_weak)
    return fail(err, errlen, "the HMAC secret is %zu bytes; it needs at least %d (256 bits, RFC "
                "7518 3.2) or it can be found by brute force", len, MIN_HMAC_KEY);
  int rc = 0;
  jwkey_t *k = next_slot(ks, kid, &rc, err, errlen);
  if (!k)
    return rc;
  if (!(k->secret = malloc(len))) {
    free(k->kid);
    return -ENOMEM;
  }
  memcpy(k->secret, s, len);
  k->secret_len = len;
  k->type = KEY_HMAC;
  k->only = only;
  ks->count++;
  return 0;
}

/* Adds a public key, taking it (freed on failure). */
static int add_pkey(sl_keyset_t *ks, EVP_PKEY *pkey, const char *kid, sl_jws_alg_t only,
                    char *err, size_t errlen) {
  key_type_t type;
  int ec_bits = 0, rc = 0;
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    type = KEY_RSA;
    if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS) {
      rc = fail(err, errlen, "the RSA key has %d bits; RFC 7518 3.3 requires at least %d",
                EVP_PKEY_get_bits(pkey), MIN_RSA_BITS);
      goto free_pkey;
    }
  } else if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64] = "";
    type = KEY_EC;
    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL);
    ec_bits = !strcmp(group, "prime256v1") ? 256 : !strcmp(group, "secp384r1") ? 384
              : !strcmp(group, "secp521r1") ? 521 : 0;
    if (!ec_bits) {
      rc = fail(err, errlen, "the EC key's curve '%s' is not P-256, P-384 or P-521", group);
      goto free_pkey;
    }
  } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
    type = KEY_ED25519;
  } else {
    rc = fail(err, errlen, "the key's type is not supported (RSA, EC P-256/P-384/P-521, "
              "Ed25519)");
    goto free_pkey;
  }
  jwkey_t *k = next_slot(ks, kid, &rc, err, errlen);
  if (!k)
    goto free_pkey;
  k->type = type;
  k->ec_bits = ec_bits;
  k->only = only;
  k->pkey = pkey;
  if (only != SL_JWS_INVALID && !alg_fits(k, only)) {
    free(k->kid);
    rc = fail(err, errlen, "the key's \"alg\" does not fit its type");
    goto free_pkey;
  }
  ks->count++;
  return 0;

free_pkey:
  EVP_PKEY_free(pkey);
  return rc;
}

/* Never prompt for a pass phrase: public keys and certificates have none. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* The public key in PEM text: a PUBLIC KEY block, else a CERTIFICATE's key. */
static EVP_PKEY *pem_public_key(const char *text, size_t len) {
  if (len > SL_MAX_KEY_FILE)
    return NULL;
  BIO *bio = BIO_new_mem_buf(text, (int)len);
  if (!bio)
    return NULL;
  EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
  if (!pkey && BIO_reset(bio) == 0) {
    X509 *cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);
    if (cert) {
      pkey = X509_get_pubkey(cert);
      X509_free(cert);
    }
  }
  BIO_free(bio);
  ERR_clear_error();
  return pkey;
}

static int add_pem(sl_keyset_t *ks, const char *text, size_t len, char *err, size_t errlen) {
  EVP_PKEY *pkey = pem_public_key(text, len);
  if (!pkey)
    return fail(err, errlen, "the PEM holds no public key (\"BEGIN PUBLIC KEY\") or certificate; "
                "a private key is never needed: give its public half (openssl pkey -pubout)");
  return add_pkey(ks, pkey, NULL, SL_JWS_INVALID, err, errlen);
}

int sl__keyset_add_value(sl_keyset_t *ks, const char *value, size_t len, int allow_weak,
                         char *err, size_t errlen) {
  assert(ks && value);
  if (len >= sizeof PEM_BEGIN - 1 && !memcmp(value, PEM_BEGIN, sizeof PEM_BEGIN - 1))
    return add_pem(ks, value, len, err, errlen);
  return add_secret(ks, (const unsigned char *)value, len, NULL, SL_JWS_INVALID, allow_weak, err,
                    errlen);
}

/* The whole file, NUL-terminated (malloc'ed), at most SL_MAX_KEY_FILE bytes. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return fail(err, errlen, "cannot open '%s': %s", path, strerror(errno));
  char *buf = malloc(SL_MAX_KEY_FILE + 1);
  if (!buf) {
    fclose(f);
    return -ENOMEM;
  }
  size_t n = fread(buf, 1, SL_MAX_KEY_FILE + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n > SL_MAX_KEY_FILE) {
    free(buf);
    return bad ? fail(err, errlen, "cannot read '%s'", path)
               : fail(err, errlen, "'%s' is larger than %d bytes", path, SL_MAX_KEY_FILE);
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

int sl__keyset_add_file(sl_keyset_t *ks, const char *path, int allow_weak, char *err,
                        size_t errlen) {
  char *text;
  size_t len;
  int rc = read_file(path, &text, &len, err, errlen);
  if (rc < 0)
    return rc;
  if (len >= sizeof PEM_BEGIN - 1 && !memcmp(text, PEM_BEGIN, sizeof PEM_BEGIN - 1)) {
    rc = add_pem(ks, text, len, err, errlen);
  } else {
    /* A secret written with echo or an editor ends with a newline that is not part of it. */
    if (len && text[len - 1] == '\n')
      len--;
    if (len && text[len - 1] == '\r')
      len--;
    rc = add_secret(ks, (unsigned char *)text, len, NULL, SL_JWS_INVALID, allow_weak, err,
                    errlen);
  }
  OPENSSL_cleanse(text, len);
  free(text);
  if (rc == -EINVAL && err && errlen) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", err);
    snprintf(err, errlen, "%s: %s", path, detail);
  }
  return rc;
}

/* --- JWK Sets -------------------------------------------------------------------------------- */

/* A JWK member's base64url bytes (malloc'ed), or NULL when absent or not base64url. */
static unsigned char *jwk_bytes(const json_t *jwk, const char *name, size_t *len) {
  const char *s = json_string_value(json_object_get(jwk, name));
  if (!s)
    return NULL;
  size_t n = strlen(s);
  unsigned char *out = malloc(sl__b64url_decoded_len(n) + 1);
  if (!out)
    return NULL;
  if (sl__b64url_decode(out, s, n) < 0 || n == 0) {
    free(out);
    return NULL;
  }
  *len = sl__b64url_decoded_len(n);
  return out;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld) {
  EVP_PKEY *pkey = NULL;
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return pkey;
}

static EVP_PKEY *jwk_rsa(const json_t *jwk) {
  size_t nlen = 0, elen = 0;
  unsigned char *n = jwk_bytes(jwk, "n", &nlen), *e = jwk_bytes(jwk, "e", &elen);
  BIGNUM *bn = n ? BN_bin2bn(n, (int)nlen, NULL) : NULL, *be = e ? BN_bin2bn(e, (int)elen, NULL) : NULL;
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  EVP_PKEY *pkey = NULL;
  if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
    pkey = pkey_fromdata("RSA", bld);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  free(n);
  free(e);
  return pkey;
}

static EVP_PKEY *jwk_ec(const json_t *jwk, const char *group, size_t coord) {
  size_t xlen = 0, ylen = 0;
  unsigned char *x = jwk_bytes(jwk, "x", &xlen), *y = jwk_bytes(jwk, "y", &ylen);
  unsigned char point[1 + 2 * 66];
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  EVP_PKEY *pkey = NULL;
  /* RFC 7518 6.2.1.2: each coordinate is exactly the curve's size, leading zeros kept. */
  if (x && y && bld && xlen == coord && ylen == coord) {
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, coord);
    memcpy(point + 1 + coord, y, coord);
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord))
      pkey = pkey_fromdata("EC", bld);
  }
  OSSL_PARAM_BLD_free(bld);
  free(x);
  free(y);
  return pkey;
}

static EVP_PKEY *jwk_ed25519(const json_t *jwk) {
  size_t xlen = 0;
  unsigned char *x = jwk_bytes(jwk, "x", &xlen);
  EVP_PKEY *pkey = x && xlen == 32 ? EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, 32)
                                   : NULL;
  free(x);
  return pkey;
}

/* The key of the first certificate of x5c (standard base64 DER, RFC 7517 4.7). */
static EVP_PKEY *jwk_x5c(const json_t *jwk) {
  const char *b64 = json_string_value(json_array_get(json_object_get(jwk, "x5c"), 0));
  if (!b64)
    return NULL;
  size_t n = strlen(b64);
  if (n == 0 || n % 4 || n > SL_MAX_KEY_FILE)
    return NULL;
  unsigned char *der = malloc(n / 4 * 3 + 1);
  EVP_PKEY *pkey = NULL;
  int len = der ? EVP_DecodeBlock(der, (const unsigned char *)b64, (int)n) : -1;
  if (len > 0) {
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, len);
    if (cert)
      pkey = X509_get_pubkey(cert);
    X509_free(cert);
  }
  free(der);
  return pkey;
}

/* 1 when the JWK is for verifying signatures (use and key_ops allow it), else 0. */
static int jwk_for_signatures(const json_t *jwk) {
  const json_t *use = json_object_get(jwk, "use");
  if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig")))
    return 0;
  const json_t *ops = json_object_get(jwk, "key_ops");
  if (!ops)
    return 1;
  size_t i;
  json_t *op;
  json_array_foreach(ops, i, op)
    if (json_is_string(op) && !strcmp(json_string_value(op), "verify"))
      return 1;
  return 0;
}

/* Adds one JWK: 1 added, 0 skipped (not for signatures, or of a type sluice does not verify
 * with), -EINVAL with err, -ENOMEM. */
static int add_jwk(sl_keyset_t *ks, const json_t *jwk, size_t index, int allow_weak, char *err,
                   size_t errlen) {
  if (!json_is_object(jwk))
    return fail(err, errlen, "key %zu is not a JSON object", index);
  const char *kty = json_string_value(json_object_get(jwk, "kty"));
  const json_t *kid_v = json_object_get(jwk, "kid");
  const json_t *alg_v = json_object_get(jwk, "alg");
  if (!kty)
    return fail(err, errlen, "key %zu has no \"kty\"", index);
  if ((kid_v && !json_is_string(kid_v)) || (alg_v && !json_is_string(alg_v)))
    return fail(err, errlen, "key %zu: \"kid\" and \"alg\" must be strings", index);
  const char *kid = json_string_value(kid_v);
  if (!jwk_for_signatures(jwk))
    return 0;
  sl_jws_alg_t only = SL_JWS_INVALID;
  if (alg_v && (only = sl__jws_alg(json_string_value(alg_v))) == SL_JWS_INVALID) {
    sl__log(SL_LOG_WARN, "JWK Set: key %zu skipped: alg '%.32s' is not one sluice verifies",
            index, json_string_value(alg_v));
    return 0;
  }
  if (!strcmp(kty, "oct")) {
    size_t len = 0;
    if (only != SL_JWS_INVALID && only != SL_JWS_HS256 && only != SL_JWS_HS384 &&
        only != SL_JWS_HS512)
      return fail(err, errlen, "key %zu: alg does not fit kty oct", index);
    unsigned char *k = jwk_bytes(jwk, "k", &len);
    if (!k)
      return fail(err, errlen, "key %zu: \"k\" is missing or not base64url", index);
    int rc = add_secret(ks, k, len, kid, only, allow_weak, err, errlen);
    OPENSSL_cleanse(k, len);
    free(k);
    return rc < 0 ? rc : 1;
  }
  /* Only the public half is used; a private one in the hub's key set is a leak waiting. */
  if (json_object_get(jwk, "d"))
    sl__log(SL_LOG_WARN, "JWK Set: key %zu holds private key material (\"d\"): the hub needs only "
            "the public key; remove it from the file", index);
  EVP_PKEY *pkey = NULL;
  if (!strcmp(kty, "RSA")) {
    pkey = json_object_get(jwk, "n") ? jwk_rsa(jwk) : jwk_x5c(jwk);
  } else if (!strcmp(kty, "EC")) {
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    static const struct {
      const char *crv, *group;
      size_t coord;
    } curves[] = {{"P-256", "prime256v1", 32}, {"P-384", "secp384r1", 48},
                  {"P-521", "secp521r1", 66}};
    size_t c = 0;
    while (crv && c < 3 && strcmp(crv, curves[c].crv))
      c++;
    if (!crv || c == 3) {
      sl__log(SL_LOG_WARN, "JWK Set: key %zu skipped: EC curve '%.32s' is not P-256, P-384 or "
              "P-521", index, crv ? crv : "");
      return 0;
    }
    pkey = json_object_get(jwk, "x") ? jwk_ec(jwk, curves[c].group, curves[c].coord)
                                     : jwk_x5c(jwk);
  } else if (!strcmp(kty, "OKP")) {
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "Ed25519")) {
      sl__log(SL_LOG_WARN, "JWK Set: key %zu skipped: OKP curve '%.32s' is not Ed25519", index,
              crv ? crv : "");
      return 0;
    }
    pkey = jwk_ed25519(jwk);
  } else {
    sl__log(SL_LOG_WARN, "JWK Set: key %zu skipped: kty '%.32s' is not RSA, EC, OKP or oct",
            index, kty);
    return 0;
  }
  if (!pkey)
    return fail(err, errlen, "key %zu (kty %s): its public key members are missing or invalid",
                index, kty);
  char detail[200] = "";
  int rc = add_pkey(ks, pkey, kid, only, detail, sizeof detail);
  if (rc == -EINVAL)
    return fail(err, errlen, "key %zu: %s", index, detail);
  return rc < 0 ? rc : 1;
}

int sl__keyset_add_jwks(sl_keyset_t *ks, const char *json, size_t len, int allow_weak, char *err,
                        size_t errlen) {
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return fail(err, errlen, "not JSON: %s (line %d)", jerr.text, jerr.line);
  json_t *keys = json_object_get(root, "keys");
  int rc = 0, added = 0;
  if (!json_is_array(keys)) {
    rc = fail(err, errlen, "not a JWK Set: no \"keys\" array");
    goto out;
  }
  size_t i;
  json_t *jwk;
  json_array_foreach(keys, i, jwk) {
    rc = add_jwk(ks, jwk, i, allow_weak, err, errlen);
    if (rc < 0)
      goto out;
    added += rc;
  }
  rc = added ? 0 : fail(err, errlen, "the JWK Set holds no key sluice can verify signatures with");

out:
  json_decref(root);
  return rc;
}

int sl__keyset_add_jwks_file(sl_keyset_t *ks, const char *path, int allow_weak, char *err,
                             size_t errlen) {
  char *text;
  size_t len;
  int rc = read_file(path, &text, &len, err, errlen);
  if (rc < 0)
    return rc;
  rc = sl__keyset_add_jwks(ks, text, len, allow_weak, err, errlen);
  OPENSSL_cleanse(text, len);
  free(text);
  if (rc == -EINVAL && err && errlen) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", err);
    snprintf(err, errlen, "%s: %s", path, detail);
  }
  return rc;
}

/* --- verifying ------------------------------------------------------------------------------- */

/* A JWS ECDSA signature is R || S, each the curve's size (RFC 7518 3.4); EVP wants DER. */
static unsigned char *ecdsa_der(const unsigned char *sig, size_t sig_len, size_t coord,
                                int *der_len) {
  if (sig_len != 2 * coord)
    return NULL;
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, (int)coord, NULL), *s = BN_bin2bn(sig + coord, (int)coord, NULL);
  unsigned char *der = NULL;
  if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
    r = s = NULL; /* es owns them now */
    *der_len = i2d_ECDSA_SIG(es, &der);
    if (*der_len <= 0)
      der = NULL;
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  return der;
}

/* 1: k verifies sig over input with alg; 0: it does not; -ENOMEM. */
static int verify_with(const jwkey_t *k, sl_jws_alg_t alg, const unsigned char *input,
                       size_t input_len, const unsigned char *sig, size_t sig_len) {
  const char *digest = alg_digest(alg);
  if (k->type == KEY_HMAC) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, k->secret, k->secret_len, input, input_len,
                   mac, sizeof mac, &mac_len)) {
      ERR_clear_error();
      return -ENOMEM;
    }
    return sig_len == mac_len && CRYPTO_memcmp(sig, mac, mac_len) == 0;
  }
  unsigned char *der = NULL;
  if (k->type == KEY_EC) {
    int der_len = 0;
    der = ecdsa_der(sig, sig_len, (size_t)(k->ec_bits + 7) / 8, &der_len);
    if (!der)
      return 0;
    sig = der;
    sig_len = (size_t)der_len;
  }
  int ok = 0;
  EVP_PKEY_CTX *pctx = NULL;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx) {
    OPENSSL_free(der);
    return -ENOMEM;
  }
  if (EVP_DigestVerifyInit_ex(ctx, &pctx, digest, NULL, NULL, k->pkey, NULL) == 1) {
    int pss = alg == SL_JWS_PS256 || alg == SL_JWS_PS384 || alg == SL_JWS_PS512;
    /* RFC 7518 3.5: MGF1 with the same hash, and a salt as long as the hash. */
    if (!pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1))
      ok = EVP_DigestVerify(ctx, sig, sig_len, input, input_len) == 1;
  }
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

int sl__keyset_verify(const sl_keyset_t *ks, sl_jws_alg_t alg, const char *kid,
                      const unsigned char *input, size_t input_len, const unsigned char *sig,
                      size_t sig_len, const char **why) {
  assert(ks && why);
  int kid_known = 0, any_static = 0;
  for (size_t i = 0; kid && i < ks->count; i++) {
    if (ks->keys[i].kid && !strcmp(ks->keys[i].kid, kid))
      kid_known = 1;
    if (!ks->keys[i].kid)
      any_static = 1;
  }
  if (kid && !kid_known && !any_static) {
    *why = "unknown kid";
    return -EACCES;
  }
  int tried = 0;
  for (size_t i = 0; i < ks->count; i++) {
    const jwkey_t *k = &ks->keys[i];
    /* A kid the set knows picks those keys; an unknown one falls back to the static keys. */
    if (kid && (kid_known ? !k->kid || strcmp(k->kid, kid) : k->kid != NULL))
      continue;
    if (!alg_fits(k, alg))
      continue;
    tried = 1;
    int ok = verify_with(k, alg, input, input_len, sig, sig_len);
    if (ok < 0) {
      *why = "out of memory";
      return ok;
    }
    if (ok)
      return 0;
  }
  *why = tried ? "bad signature" : "alg not allowed for the configured keys";
  return -EACCES;
}
