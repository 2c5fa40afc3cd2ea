/* fuzz_token.c — token verification (auth.c: sl__auth_verify with a fixed key) and the request
 * policy in front of it (policy.c: sl__auth_request with arbitrary credentials and a token
 * cache). Arbitrary bytes seldom carry a valid HMAC, so besides raw tokens the harness signs
 * fuzzed JSON itself: the claims reading (times, audience, issuer, both grant formats) is then
 * reached with whatever claims the fuzzer makes.
 *
 * Input: one control byte, then the rest.
 *   control & 3         0: the rest is the token, as it is
 *                       1: the rest is the claims JSON, signed under {"alg":...,"typ":"JWT"}
 *                       2: the rest is the header JSON, a NUL, the claims JSON; signed
 *                       3: one byte saying which headers are present (bits 0-4: Authorization,
 *                          Cookie, Origin, Referer, Host), then the values of those present,
 *                          in that order, split by NULs
 *   (control >> 2) & 1  the role: publisher or subscriber
 *   (control >> 3) & 3  signing: HS256, HS384, HS512, or HS256 with another key
 *   (control >> 5) & 1  the auth also checks audience "hub" and issuer "issuer"
 *   (control >> 6) & 1  mode 3 asks through a token cache
 *   (control >> 7) & 1  asymmetric keys: modes 1 and 2 sign with ES256 (a P-256 key made at
 *                       start; the default header names kid "ec") and verify against a JWK Set
 *                       holding that key, an RSA key and an oct key, in the spec profile; mode
 *                       0 loads the rest as a JWK Set (keys.c's parser) instead of a token
 *
 * Checked besides memory: a verified token's claims are well-formed selectors (non-empty,
 * NUL-terminated texts, "*" and only "*" being ANY, templates holding '{', a compiled matcher
 * exactly for URL patterns and templates), copy exactly, and expire no earlier than now
 * (exp plus the leeway, truncated to the second); a JWK Set either loads at most SL_MAX_KEYS keys
 * or is refused with a message; a
 * refused one leaves the claims empty with a reason. A request asked twice gets the same answer
 * (the second from the cache when there is one). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"
#include "auth/auth_cache.h"
#include "auth/keys.h"
#include "auth/policy.h"
#include "common/b64url.h"
#include "common/log.h"

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

/* The key the seeds in fuzz/corpus/token/ are signed with. */
#define KEY "sluice-fuzz-key-0123456789abcdef-0123456789"
#define OTHER_KEY "not-the-key-of-this-hub-0123456789abcdef-01"
#define NOW INT64_C(1700000000)
#define FIELDS 5

static sl_auth_t *plain, *checking; /* the second also checks aud and iss */
static sl_auth_t *asym;             /* a JWK Set: EC (kid "ec"), RSA (kid "rsa"), oct */
static EVP_PKEY *ec_key;


/* The JWK Set asym trusts, written to a file (the daemon's path to it). */
static void make_asym(void) {
  EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  CHECK(rsa && ec_key);
  unsigned char pt[65], nb[256];
  size_t ptlen = 0;
  CHECK(EVP_PKEY_get_octet_string_param(ec_key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &ptlen));
  CHECK(ptlen == 65);
  BIGNUM *n = NULL;
  CHECK(EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n));
  int nlen = BN_bn2bin(n, nb);
  BN_free(n);
  char x[64], y[64], nn[400];
  x[sl__b64url_encode(x, pt + 1, 32)] = '\0';
  y[sl__b64url_encode(y, pt + 33, 32)] = '\0';
  nn[sl__b64url_encode(nn, nb, (size_t)nlen)] = '\0';
  char jwks[1024];
  snprintf(jwks, sizeof jwks,
           "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
           "{\"kty\":\"RSA\",\"kid\":\"rsa\",\"n\":\"%s\",\"e\":\"AQAB\"},"
           "{\"kty\":\"oct\",\"k\":\"c2x1aWNlLWZ1enota2V5LTAxMjM0NTY3ODlhYmNkZWYtMDEyMzQ1Njc4OQ\"}]}",
           x, y, nn);
  char path[] = "/tmp/sluice-fuzz-jwks-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  FILE *f = fdopen(fd, "w");
  CHECK(f && fputs(jwks, f) >= 0 && fclose(f) == 0);
  sl_auth_config_t cfg = {.jwks_file = {path, path}, .audience = "hub", .issuer = "issuer",
                          .leeway = 30};
  char err[256] = "";
  int rc = sl__auth_new(&asym, &cfg, err, sizeof err);
  unlink(path);
  if (rc)
    fprintf(stderr, "fuzz_token: the JWK Set does not load: %s\n", err);
  CHECK(rc == 0);
  EVP_PKEY_free(rsa);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  sl__log_open(NULL, SL_LOG_ERROR);
  sl_auth_config_t lax = {.key = {KEY, KEY}, .legacy = 1};
  sl_auth_config_t spec = {.key = {KEY, KEY}, .audience = "hub", .issuer = "issuer",
                           .leeway = 30};
  CHECK(sl__auth_new(&plain, &lax, NULL, 0) == 0);
  CHECK(sl__auth_new(&checking, &spec, NULL, 0) == 0);
  make_asym();
  return 0;
}

/* --- signing --------------------------------------------------------------------------------- */

/* header.claims.signature over the given JSON texts; *len set, malloc'ed. */
static char *sign(const char *header, size_t hlen, const char *claims, size_t clen,
                  unsigned how, size_t *len) {
  static const char *const names[] = {"HS256", "HS384", "HS512", "HS256"};
  const EVP_MD *md = how == 1 ? EVP_sha384() : how == 2 ? EVP_sha512() : EVP_sha256();
  const char *key = how == 3 ? OTHER_KEY : KEY;
  char fixed[64];
  if (header == NULL) {
    hlen = (size_t)snprintf(fixed, sizeof fixed, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", names[how]);
    header = fixed;
  }
  char *tok = malloc((hlen + clen) / 3 * 4 + 8 + 2 + EVP_MAX_MD_SIZE * 4 / 3 + 4);
  CHECK(tok != NULL);
  size_t n = sl__b64url_encode(tok, (const unsigned char *)header, hlen);
  tok[n++] = '.';
  n += sl__b64url_encode(tok + n, (const unsigned char *)claims, clen);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;
  CHECK(HMAC(md, key, (int)strlen(key), (const unsigned char *)tok, n, mac, &mac_len) != NULL);
  tok[n++] = '.';
  n += sl__b64url_encode(tok + n, mac, mac_len);
  *len = n;
  return tok;
}

/* header.claims.signature signed with ES256 by ec_key (R || S, RFC 7518 3.4). */
static char *sign_es256(const char *header, size_t hlen, const char *claims, size_t clen,
                        size_t *len) {
  static const char fixed[] = "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"ec\"}";
  if (header == NULL) {
    header = fixed;
    hlen = sizeof fixed - 1;
  }
  char *tok = malloc((hlen + clen) / 3 * 4 + 8 + 2 + 96);
  CHECK(tok != NULL);
  size_t n = sl__b64url_encode(tok, (const unsigned char *)header, hlen);
  tok[n++] = '.';
  n += sl__b64url_encode(tok + n, (const unsigned char *)claims, clen);
  unsigned char der[80], raw[64];
  size_t der_len = sizeof der;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  CHECK(ctx && EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, ec_key, NULL) == 1);
  CHECK(EVP_DigestSign(ctx, der, &der_len, (unsigned char *)tok, n) == 1);
  EVP_MD_CTX_free(ctx);
  const unsigned char *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
  CHECK(es != NULL);
  CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) == 32);
  CHECK(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) == 32);
  ECDSA_SIG_free(es);
  tok[n++] = '.';
  n += sl__b64url_encode(tok + n, raw, 64);
  *len = n;
  return tok;
}

/* A JWK Set from fuzzed bytes: loaded or refused, with a reason, never half-made. */
static void load_jwks(const uint8_t *data, size_t len) {
  sl_keyset_t *ks;
  CHECK(sl__keyset_new(&ks) == 0);
  char err[256] = "";
  int rc = sl__keyset_add_jwks(ks, (const char *)data, len, (int)(len & 1), err, sizeof err);
  CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
  CHECK(sl__keyset_count(ks) <= SL_MAX_KEYS);
  if (rc == 0)
    CHECK(sl__keyset_count(ks) > 0);
  if (rc == -EINVAL)
    CHECK(err[0] != '\0');
  sl__keyset_free(ks);
}

/* --- what a verdict must look like ----------------------------------------------------------- */

static void check_selectors(const sl_selector_t *sel, size_t n) {
  CHECK((sel == NULL) == (n == 0));
  for (size_t i = 0; i < n; i++) {
    CHECK(sel[i].text != NULL && sel[i].len > 0 && sel[i].text[sel[i].len] == '\0');
    CHECK(strlen(sel[i].text) == sel[i].len);
    int any = sel[i].len == 1 && sel[i].text[0] == '*';
    /* "*" is ANY whatever the matcher type; a legacy selector with '{' is a URI template; a
     * URL pattern comes from match_type urlpattern. Only patterns and templates own a matcher. */
    if (any)
      CHECK(sel[i].kind == SL_SELECTOR_ANY);
    else
      CHECK(sel[i].kind == SL_SELECTOR_EXACT || sel[i].kind == SL_SELECTOR_URLPATTERN ||
            (sel[i].kind == SL_SELECTOR_TEMPLATE && strchr(sel[i].text, '{') != NULL));
    CHECK((sel[i].matcher != NULL) ==
          (sel[i].kind == SL_SELECTOR_URLPATTERN || sel[i].kind == SL_SELECTOR_TEMPLATE));
  }
}

static int same_selectors(const sl_selector_t *a, size_t na, const sl_selector_t *b, size_t nb) {
  if (na != nb)
    return 0;
  for (size_t i = 0; i < na; i++)
    if (a[i].kind != b[i].kind || a[i].len != b[i].len || memcmp(a[i].text, b[i].text, a[i].len))
      return 0;
  return 1;
}

static int same_payloads(const sl_claims_t *a, const sl_claims_t *b) {
  if (a->payload_count != b->payload_count)
    return 0;
  for (size_t i = 0; i < a->payload_count; i++) {
    const sl_payload_t *x = &a->payloads[i], *y = &b->payloads[i];
    if (x->first != y->first || x->count != y->count || x->len != y->len ||
        memcmp(x->json, y->json, x->len + 1) != 0)
      return 0;
  }
  return 1;
}

static int same_claims(const sl_claims_t *a, const sl_claims_t *b) {
  return a->exp == b->exp && same_payloads(a, b) &&
         same_selectors(a->publish, a->publish_count, b->publish, b->publish_count) &&
         same_selectors(a->subscribe, a->subscribe_count, b->subscribe, b->subscribe_count);
}

static int empty(const sl_claims_t *c) {
  return c->publish == NULL && c->publish_count == 0 && c->subscribe == NULL &&
         c->subscribe_count == 0 && c->payloads == NULL && c->payload_count == 0 && c->exp == 0;
}

static void check_claims(const sl_claims_t *c) {
  check_selectors(c->publish, c->publish_count);
  check_selectors(c->subscribe, c->subscribe_count);
  CHECK(c->exp == 0 || c->exp >= NOW);
  for (size_t i = 0; i < c->payload_count; i++) {
    const sl_payload_t *p = &c->payloads[i];
    CHECK(p->count == 0 || (size_t)p->first + p->count <= c->subscribe_count);
    CHECK(strlen(p->json) == p->len);
  }
  sl_claims_t copy;
  CHECK(sl__claims_copy(&copy, c) == 0);
  CHECK(same_claims(&copy, c));
  sl__claims_free(&copy);
  CHECK(empty(&copy));
}

static void verify(const sl_auth_t *auth, sl_role_t role, const char *tok, size_t len) {
  sl_claims_t claims;
  const char *why = NULL;
  int rc = sl__auth_verify(auth, role, tok, len, NOW, &claims, &why);
  CHECK(rc == 0 || rc == -EACCES || rc == -ENOMEM);
  if (rc == 0) {
    check_claims(&claims);
  } else {
    CHECK(why != NULL && empty(&claims));
  }
  sl__claims_free(&claims);
}

/* --- the request policy ---------------------------------------------------------------------- */

static int ask(const sl_auth_t *auth, sl_auth_cache_t *cache, sl_role_t role,
               const sl_credentials_t *cred, sl_claims_t *claims, sl_auth_verdict_t *v) {
  int rc = sl__auth_request(auth, cache, role, cred, NOW, claims, v);
  CHECK(rc == 0 || rc == -EINVAL || rc == -EPERM || rc == -ENOKEY || rc == -EACCES);
  if (rc == 0) {
    CHECK(v->status == 0);
    if (v->present)
      check_claims(claims);
    else
      CHECK(empty(claims));
  } else {
    CHECK(v->status >= 400 && v->status <= 403 && v->message[0] != '\0' && empty(claims));
    CHECK(memchr(v->message, '\0', sizeof v->message) != NULL);
  }
  return rc;
}

static void request(const sl_auth_t *auth, sl_role_t role, int cached, const uint8_t *rest,
                    size_t len) {
  if (len < 1)
    return;
  unsigned present = rest[0];
  /* The values, NUL-terminated, as http.c captures them. */
  char *buf = malloc(len);
  CHECK(buf != NULL);
  memcpy(buf, rest + 1, len - 1);
  buf[len - 1] = '\0';
  const char *field[FIELDS] = {0};
  char *p = buf;
  for (int i = 0; i < FIELDS; i++) {
    if (!(present & (1u << i)))
      continue;
    field[i] = p;
    size_t n = strlen(p);
    p += p + n < buf + len - 1 ? n + 1 : n; /* past the last value: "" at the final NUL */
  }
  sl_credentials_t cred = {
    .authorization = field[0], .cookie = field[1], .origin = field[2], .referer = field[3],
    .host = field[4],
  };
  sl_auth_cache_t *cache = cached ? sl__auth_cache_new(4) : NULL;
  CHECK(!cached || cache != NULL);
  sl_claims_t first, second;
  sl_auth_verdict_t v1, v2;
  int rc1 = ask(auth, cache, role, &cred, &first, &v1);
  int rc2 = ask(auth, cache, role, &cred, &second, &v2);
  CHECK(rc1 == rc2 && v1.present == v2.present && v1.status == v2.status);
  CHECK(strcmp(v1.message, v2.message) == 0 && same_claims(&first, &second));
  sl__claims_free(&first);
  sl__claims_free(&second);
  sl__auth_cache_free(cache);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned control = data[0];
  unsigned mode = control & 3;
  sl_role_t role = (control >> 2) & 1 ? SL_ROLE_SUBSCRIBER : SL_ROLE_PUBLISHER;
  unsigned how = (control >> 3) & 3;
  int asymmetric = (control >> 7) & 1;
  const sl_auth_t *auth = asymmetric ? asym : (control >> 5) & 1 ? checking : plain;
  const uint8_t *rest = data + 1;
  size_t len = size - 1;

  if (mode == 3) {
    request(auth, role, (control >> 6) & 1, rest, len);
    return 0;
  }
  char *tok;
  size_t tok_len;
  if (mode == 0 && asymmetric) {
    load_jwks(rest, len);
    return 0;
  }
  if (mode == 0) {
    tok = malloc(len ? len : 1);
    CHECK(tok != NULL);
    memcpy(tok, rest, len);
    tok_len = len;
  } else {
    const char *json = (const char *)rest, *header = NULL;
    size_t json_len = len, header_len = 0;
    const uint8_t *nul = mode == 2 ? memchr(rest, '\0', len) : NULL;
    if (nul) {
      header = (const char *)rest;
      header_len = (size_t)(nul - rest);
      json = (const char *)nul + 1;
      json_len = len - header_len - 1;
    }
    tok = asymmetric ? sign_es256(header, header_len, json, json_len, &tok_len)
                     : sign(header, header_len, json, json_len, how, &tok_len);
  }
  verify(auth, role, tok, tok_len);
  free(tok);
  return 0;
}
