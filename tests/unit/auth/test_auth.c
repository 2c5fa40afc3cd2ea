/* test_auth.c — auth.c and keys.c: tokens minted and verified per role, the forgeries RFC 8725
 * warns about (alg none, a key of the other role, a header swapped under a valid signature,
 * algorithm confusion), each algorithm (HS, RS, PS, ES, EdDSA) with keys made here at test time,
 * PEM values and files, JWK Sets with kid rotation, the spec profile's rules one by one (typ,
 * exp, nbf, iat with the leeway, aud, iss) and the legacy profile's leniency, the legacy mercure
 * claim and RFC 9396 authorization_details, each malformed shape that must reject the whole
 * token, and which selector each grant becomes. Tokens are signed here with OpenSSL (legacy
 * HMAC ones under typ JWT); tokens whose signature must fail are assembled by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <errno.h>
#include <jansson.h>

#include "auth/auth.h"
#include "auth/keys.h"
#include "common/b64url.h"

#define PUB_KEY "publisher-key-0123456789abcdef0123456789"
#define SUB_KEY "subscriber-key-0123456789abcdef012345678"
#define AUDIENCE "https://hub.example.com/.well-known/mercure"
#define ISSUER "https://example.com"
#define NOW ((int64_t)1767225300)
#define DETAIL_TYPE "https://mercure.rocks/authorization-detail"

typedef enum { ALG_HS256, ALG_HS384, ALG_HS512 } hs_alg_t;

static char *sign_with_header(const char *key, const char *digest, const char *header,
                              const char *claims);

/* A token signed with key by HMAC under the header pre-standard issuers write ("typ":"JWT"),
 * with the given JSON claims. */
static char *sign(const char *key, hs_alg_t alg, const char *claims) {
  static const char *const headers[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                                        "{\"alg\":\"HS384\",\"typ\":\"JWT\"}",
                                        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}"};
  static const char *const digests[] = {"SHA256", "SHA384", "SHA512"};
  return sign_with_header(key, digests[alg], headers[alg], claims);
}

/* len bytes of in, base64url without padding, NUL-terminated in out. */
static void b64url_bytes(char *out, const unsigned char *in, size_t len) {
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    acc = acc << 8 | (unsigned char)in[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      *out++ = alphabet[(acc >> bits) & 63];
    }
  }
  if (bits)
    *out++ = alphabet[(acc << (6 - bits)) & 63];
  *out = '\0';
}

static void b64url(char *out, const char *in) {
  b64url_bytes(out, (const unsigned char *)in, strlen(in));
}

/* header.payload.signature from JSON texts and a signature segment given as is. */
static char *assemble(const char *header, const char *payload, const char *signature) {
  size_t n = strlen(header) * 2 + strlen(payload) * 2 + strlen(signature) + 8;
  char *token = malloc(n);
  assert_non_null(token);
  b64url(token, header);
  strcat(token, ".");
  b64url(token + strlen(token), payload);
  strcat(token, ".");
  strcat(token, signature);
  return token;
}

/* The signature segment of a token. */
static const char *signature_of(const char *token) {
  return strrchr(token, '.') + 1;
}

static sl_auth_t *auth_with(const sl_auth_config_t *cfg) {
  sl_auth_t *auth = NULL;
  char err[512] = "";
  int rc = sl__auth_new(&auth, cfg, err, sizeof err);
  if (rc)
    fail_msg("sl__auth_new: %d: %s", rc, err);
  assert_non_null(auth);
  return auth;
}

/* The legacy profile (typ JWT, no exp, the mercure claim), no leeway: what most tests here
 * check the claims reading with. */
static sl_auth_t *new_auth(const char *audience, const char *issuer) {
  sl_auth_config_t cfg = {.key = {PUB_KEY, SUB_KEY}, .audience = audience, .issuer = issuer,
                          .legacy = 1};
  return auth_with(&cfg);
}

/* Verifies from an exact-size heap copy (ASan flags any read past len) and checks the outcome:
 * want_err, and for a rejection, the reason. */
static void expect(const sl_auth_t *auth, sl_role_t role, const char *token, int64_t now,
                   int want_err, const char *want_why, sl_claims_t *claims) {
  size_t len = strlen(token);
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, token, len);
  const char *why = "unset";
  sl_claims_t local;
  sl_claims_t *c = claims ? claims : &local;
  int err = sl__auth_verify(auth, role, copy, len, now, c, &why);
  free(copy);
  if (err != want_err)
    fail_msg("verify returned %d (%s), wanted %d", err, why ? why : "no reason", want_err);
  if (want_err) {
    assert_non_null(why);
    if (want_why)
      assert_string_equal(why, want_why);
    assert_null(c->publish);
    assert_null(c->subscribe);
    assert_int_equal(c->publish_count + c->subscribe_count, 0);
  } else {
    assert_null(why);
  }
  if (!claims)
    sl__claims_free(&local);
}

/* Signs claims with the publisher key and expects the given outcome for a publisher. */
static void expect_claims(const char *claims_json, int want_err, const char *want_why,
                          sl_claims_t *claims) {
  sl_auth_t *auth = new_auth(NULL, NULL);
  char *token = sign(PUB_KEY, ALG_HS256, claims_json);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, want_err, want_why, claims);
  free(token);
  sl__auth_free(auth);
}

static int has(const sl_selector_t *sel, size_t n, sl_selector_kind_t type, const char *match) {
  for (size_t i = 0; i < n; i++)
    if (sel[i].kind == type && sel[i].len == strlen(match) && !strcmp(sel[i].text, match))
      return 1;
  return 0;
}

static void test_mint_round_trip_publisher(void **state) {
  (void)state;
  const char *publish[] = {"https://example.com/books/1", "*"};
  const char *subscribe[] = {"https://example.com/users/42"};
  char *token = NULL;
  int64_t before = (int64_t)time(NULL);
  assert_int_equal(sl__token_mint(PUB_KEY, publish, 2, subscribe, 1, 3600, AUDIENCE, ISSUER,
                                 &token),
                   0);
  int64_t after = (int64_t)time(NULL);
  sl_auth_t *auth = new_auth(AUDIENCE, ISSUER);
  sl_claims_t claims;
  expect(auth, SL_ROLE_PUBLISHER, token, after, 0, NULL, &claims);
  assert_true(claims.exp >= before + 3600 && claims.exp <= after + 3600);
  /* Granted twice, by authorization_details and by the legacy claim. */
  assert_int_equal(claims.publish_count, 4);
  assert_int_equal(claims.subscribe_count, 2);
  assert_true(has(claims.publish, claims.publish_count, SL_SELECTOR_EXACT,
                  "https://example.com/books/1"));
  assert_true(has(claims.publish, claims.publish_count, SL_SELECTOR_ANY, "*"));
  assert_true(has(claims.subscribe, claims.subscribe_count, SL_SELECTOR_EXACT,
                  "https://example.com/users/42"));
  assert_false(has(claims.subscribe, claims.subscribe_count, SL_SELECTOR_ANY, "*"));
  sl__claims_free(&claims);
  /* The publisher's token is no subscriber token: the subscriber key does not verify it. */
  expect(auth, SL_ROLE_SUBSCRIBER, token, after, -EACCES, "bad signature", NULL);
  /* It stops working at exp. */
  expect(auth, SL_ROLE_PUBLISHER, token, after + 3601, -EACCES, "token expired", NULL);
  free(token);
  sl__auth_free(auth);
}

static void test_mint_round_trip_subscriber(void **state) {
  (void)state;
  const char *subscribe[] = {"*", "https://example.com/users/42"};
  char *token = NULL;
  assert_int_equal(sl__token_mint(SUB_KEY, NULL, 0, subscribe, 2, 0, NULL, NULL, &token), 0);
  sl_auth_t *auth = new_auth(NULL, NULL);
  sl_claims_t claims;
  expect(auth, SL_ROLE_SUBSCRIBER, token, (int64_t)time(NULL) + 100000000, 0, NULL, &claims);
  assert_int_equal(claims.exp, 0);
  assert_int_equal(claims.publish_count, 0);
  assert_null(claims.publish);
  assert_int_equal(claims.subscribe_count, 4);
  assert_true(has(claims.subscribe, claims.subscribe_count, SL_SELECTOR_ANY, "*"));
  assert_true(has(claims.subscribe, claims.subscribe_count, SL_SELECTOR_EXACT,
                  "https://example.com/users/42"));
  sl__claims_free(&claims);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "bad signature", NULL);
  sl__auth_free(auth);
  /* A configured audience or issuer rejects a token minted without one. */
  auth = new_auth(AUDIENCE, NULL);
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, -EACCES, "audience mismatch", NULL);
  sl__auth_free(auth);
  auth = new_auth(NULL, ISSUER);
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, -EACCES, "missing iss", NULL);
  sl__auth_free(auth);
  free(token);
}

/* A base64url JSON segment, parsed. */
static json_t *decode_segment(const char *b64, size_t len) {
  unsigned char buf[4096];
  assert_true(sl__b64url_decoded_len(len) < sizeof buf);
  assert_int_equal(sl__b64url_decode(buf, b64, len), 0);
  return json_loadb((const char *)buf, sl__b64url_decoded_len(len), 0, NULL);
}

/* The claims a minted token carries, read back. */
static void test_mint_claims(void **state) {
  (void)state;
  const char *publish[] = {"https://example.com/a"};
  const char *subscribe[] = {"https://example.com/b", "https://example.com/c"};
  char *token = NULL;
  int64_t before = (int64_t)time(NULL);
  assert_int_equal(sl__token_mint(PUB_KEY, publish, 1, subscribe, 2, 60, AUDIENCE, ISSUER,
                                 &token),
                   0);
  /* The header is the spec's: HS256, typ at+jwt (libjwt 1.10 could only write typ JWT). */
  const char *dot1 = strchr(token, '.'), *dot2 = strchr(dot1 + 1, '.');
  json_t *h = decode_segment(token, (size_t)(dot1 - token));
  assert_string_equal(json_string_value(json_object_get(h, "alg")), "HS256");
  assert_string_equal(json_string_value(json_object_get(h, "typ")), "at+jwt");
  assert_int_equal(json_object_size(h), 2);
  json_decref(h);
  json_t *c = decode_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
  assert_non_null(c);
  json_int_t iat = json_integer_value(json_object_get(c, "iat"));
  assert_true(iat >= before && iat <= before + 5);
  assert_int_equal(json_integer_value(json_object_get(c, "exp")), iat + 60);
  assert_string_equal(json_string_value(json_object_get(c, "aud")), AUDIENCE);
  assert_string_equal(json_string_value(json_object_get(c, "iss")), ISSUER);
  assert_string_equal(json_string_value(json_object_get(c, "sub")), "sluice-token");
  assert_string_equal(json_string_value(json_object_get(c, "client_id")), "sluice-token");
  const char *jti = json_string_value(json_object_get(c, "jti"));
  assert_non_null(jti);
  assert_int_equal(strlen(jti), 45);
  assert_memory_equal(jti, "urn:uuid:", 9);
  json_t *details = json_object_get(c, "authorization_details");
  assert_int_equal(json_array_size(details), 2);
  json_t *d0 = json_array_get(details, 0), *d1 = json_array_get(details, 1);
  assert_string_equal(json_string_value(json_object_get(d0, "type")), DETAIL_TYPE);
  assert_string_equal(json_string_value(json_array_get(json_object_get(d0, "actions"), 0)),
                      "publish");
  assert_string_equal(
    json_string_value(json_object_get(json_array_get(json_object_get(d0, "topics"), 0), "match")),
    "https://example.com/a");
  assert_string_equal(json_string_value(json_array_get(json_object_get(d1, "actions"), 0)),
                      "subscribe");
  assert_int_equal(json_array_size(json_object_get(d1, "topics")), 2);
  json_t *legacy = json_object_get(c, "mercure");
  assert_int_equal(json_array_size(json_object_get(legacy, "publish")), 1);
  assert_string_equal(json_string_value(json_array_get(json_object_get(legacy, "subscribe"), 1)),
                      "https://example.com/c");
  json_decref(c);

  /* Two mints differ by jti. */
  char *again = NULL;
  assert_int_equal(sl__token_mint(PUB_KEY, publish, 1, subscribe, 2, 60, AUDIENCE, ISSUER,
                                 &again),
                   0);
  assert_string_not_equal(token, again);
  free(again);
  free(token);
}

static void test_mint_rejects_bad_arguments(void **state) {
  (void)state;
  const char *topics[] = {"https://example.com/a", NULL};
  const char *empty[] = {""};
  char *token = (char *)"untouched";
  assert_int_equal(sl__token_mint(NULL, topics, 1, NULL, 0, 60, NULL, NULL, &token), -EINVAL);
  assert_null(token);
  assert_int_equal(sl__token_mint("", topics, 1, NULL, 0, 60, NULL, NULL, &token), -EINVAL);
  assert_int_equal(sl__token_mint(PUB_KEY, NULL, 1, NULL, 0, 60, NULL, NULL, &token), -EINVAL);
  assert_int_equal(sl__token_mint(PUB_KEY, topics, 2, NULL, 0, 60, NULL, NULL, &token), -EINVAL);
  assert_int_equal(sl__token_mint(PUB_KEY, NULL, 0, empty, 1, 60, NULL, NULL, &token), -EINVAL);
  assert_int_equal(sl__token_mint(PUB_KEY, topics, 1, NULL, 0, -1, NULL, NULL, &token), -EINVAL);
  assert_int_equal(sl__token_mint(PUB_KEY, topics, 1, NULL, 0, INT64_MAX, NULL, NULL, &token),
                   -EINVAL);
  assert_null(token);
}

static void test_algorithms(void **state) {
  (void)state;
  const char *claims = "{\"mercure\":{\"publish\":[\"https://example.com/a\"]}}";
  sl_auth_t *auth = new_auth(NULL, NULL);
  hs_alg_t algs[] = {ALG_HS256, ALG_HS384, ALG_HS512};
  for (size_t i = 0; i < 3; i++) {
    char *token = sign(PUB_KEY, algs[i], claims);
    sl_claims_t c;
    expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, &c);
    assert_int_equal(c.publish_count, 1);
    assert_true(sl__selectors_match(c.publish, c.publish_count, "https://example.com/a", 21));
    sl__claims_free(&c);
    /* A header claiming another HMAC size over the same signature does not verify. */
    const char *other = algs[i] == ALG_HS256 ? "{\"alg\":\"HS512\",\"typ\":\"JWT\"}"
                                                   : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *swapped = assemble(other, claims, signature_of(token));
    expect(auth, SL_ROLE_PUBLISHER, swapped, NOW, -EACCES, "bad signature", NULL);
    free(swapped);
    free(token);
  }
  sl__auth_free(auth);
}

static void test_wrong_key(void **state) {
  (void)state;
  sl_auth_t *auth = new_auth(NULL, NULL);
  const char *claims = "{\"mercure\":{\"publish\":[\"*\"]}}";
  char *token = sign("some-other-key-0123456789abcdef0123456789", ALG_HS256, claims);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "bad signature", NULL);
  free(token);
  /* Signed with the subscriber key: good for subscribing, useless for publishing. */
  token = sign(SUB_KEY, ALG_HS256, claims);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "bad signature", NULL);
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, 0, NULL, NULL);
  free(token);
  sl__auth_free(auth);
}

/* Unsigned tokens, in every spelling, with and without a signature borrowed from a real token. */
static void test_alg_none(void **state) {
  (void)state;
  sl_auth_t *auth = new_auth(NULL, NULL);
  const char *claims = "{\"mercure\":{\"publish\":[\"*\"]}}";
  char *real = sign(PUB_KEY, ALG_HS256, claims);
  const char *headers[] = {
    "{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}",
    "{\"alg\":\"NONE\"}", "{\"alg\":\"nOnE\",\"typ\":\"at+jwt\"}", "{\"alg\":\"\"}",
    "{\"typ\":\"JWT\"}", "{\"alg\":null}", "{\"alg\":256}", "{\"alg\":\"HS1\"}",
    "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}", "{\"alg\":\"RS1\"}",
  };
  for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
    char *unsigned_token = assemble(headers[i], claims, "");
    expect(auth, SL_ROLE_PUBLISHER, unsigned_token, NOW, -EACCES, "alg not allowed", NULL);
    free(unsigned_token);
    char *borrowed = assemble(headers[i], claims, signature_of(real));
    expect(auth, SL_ROLE_PUBLISHER, borrowed, NOW, -EACCES, "alg not allowed", NULL);
    free(borrowed);
  }
  /* Algorithms sluice knows, but not with an HMAC secret: the key decides (algorithm
   * confusion), before any signature is looked at. */
  const char *asym[] = {"{\"alg\":\"RS256\"}", "{\"alg\":\"ES256\"}", "{\"alg\":\"EdDSA\"}"};
  for (size_t i = 0; i < 3; i++) {
    char *borrowed = assemble(asym[i], claims, signature_of(real));
    expect(auth, SL_ROLE_PUBLISHER, borrowed, NOW, -EACCES,
           "alg not allowed for the configured keys", NULL);
    free(borrowed);
  }
  /* An allowed alg with the signature stripped. */
  char *stripped = assemble("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "");
  expect(auth, SL_ROLE_PUBLISHER, stripped, NOW, -EACCES, "bad signature", NULL);
  free(stripped);
  free(real);
  sl__auth_free(auth);
}

/* typ is read before the signature: an unsuitable typ is named as the reason, a suitable one
 * lets verification reach the (here deliberately wrong) signature. */
static void test_typ(void **state) {
  (void)state;
  sl_auth_t *auth = new_auth(NULL, NULL);
  const char *claims = "{}";
  struct {
    const char *header;
    const char *why;
  } cases[] = {
    {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "bad signature"},
    {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "bad signature"},
    {"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "bad signature"},
    {"{\"alg\":\"HS256\",\"typ\":\"AT+JWT\"}", "bad signature"},
    {"{\"alg\":\"HS256\",\"typ\":\"application/at+jwt\"}", "bad signature"},
    {"{\"alg\":\"HS256\",\"typ\":\"Application/At+JWT\"}", "bad signature"},
    {"{\"alg\":\"HS256\"}", "bad signature"},
    {"{\"alg\":\"HS256\",\"typ\":\"id+jwt\"}", "typ not allowed"},
    {"{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", "typ not allowed"},
    {"{\"alg\":\"HS256\",\"typ\":\"application/\"}", "typ not allowed"},
    {"{\"alg\":\"HS256\",\"typ\":\"at+jwt \"}", "typ not allowed"},
    {"{\"alg\":\"HS256\",\"typ\":\"\"}", "typ not allowed"},
    {"{\"alg\":\"HS256\",\"typ\":1}", "typ not allowed"},
    {"{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "crit header not supported"},
    {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "malformed header"},
    {"[\"HS256\"]", "malformed header"},
    {"not json", "malformed header"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *token = assemble(cases[i].header, claims, "AAAA");
    expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, cases[i].why, NULL);
    free(token);
  }
  sl__auth_free(auth);
}

/* A token with the given JOSE header and claims, signed with key by HMAC (OpenSSL, as a
 * publisher's library would sign it, whatever typ the header names). */
static char *sign_with_header(const char *key, const char *digest, const char *header,
                              const char *claims) {
  char *token = assemble(header, claims, "");
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, key, strlen(key),
                            (const unsigned char *)token, strlen(token) - 1 /* the last '.' */,
                            mac, sizeof mac, &mac_len));
  char *out = realloc(token, strlen(token) + 2 * EVP_MAX_MD_SIZE);
  assert_non_null(out);
  b64url_bytes(out + strlen(out), mac, mac_len);
  return out;
}

/* The token the Mercure spec tells publishers to mint: typ at+jwt (RFC 9068), correctly signed,
 * with each HMAC size. libjwt 1.10's jwt_decode refuses any typ but "JWT", and verification went
 * through it: every such publish was answered 401. This checks them accepted, and a wrong key
 * still refused. */
static void test_spec_tokens_verify(void **state) {
  (void)state;
  sl_auth_t *auth = new_auth(NULL, NULL);
  static const char *const typs[] = {"at+jwt", "application/at+jwt", "AT+JWT", "JWT", NULL};
  static const struct { const char *alg, *digest; } algs[] = {
    {"HS256", "SHA256"}, {"HS384", "SHA384"}, {"HS512", "SHA512"}};
  const char *claims = "{\"exp\":1767229999,\"mercure\":{\"publish\":[\"urn:t\"]}}";
  for (size_t a = 0; a < sizeof algs / sizeof algs[0]; a++) {
    for (size_t t = 0; t < sizeof typs / sizeof typs[0]; t++) {
      char header[96];
      if (typs[t])
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"%s\"}", algs[a].alg, typs[t]);
      else
        snprintf(header, sizeof header, "{\"alg\":\"%s\"}", algs[a].alg);
      char *token = sign_with_header(PUB_KEY, algs[a].digest, header, claims);
      sl_claims_t got;
      expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, &got);
      assert_int_equal(got.publish_count, 1);
      assert_string_equal(got.publish[0].text, "urn:t");
      assert_int_equal(got.exp, 1767229999);
      sl__claims_free(&got);
      free(token);
      char *wrong = sign_with_header(SUB_KEY, algs[a].digest, header, claims);
      expect(auth, SL_ROLE_PUBLISHER, wrong, NOW, -EACCES, "bad signature", NULL);
      free(wrong);
    }
  }
  sl__auth_free(auth);
}

static void test_structure(void **state) {
  (void)state;
  sl_auth_t *auth = new_auth(NULL, NULL);
  char *good = sign(PUB_KEY, ALG_HS256, "{\"mercure\":{\"publish\":[\"*\"]}}");
  expect(auth, SL_ROLE_PUBLISHER, good, NOW, 0, NULL, NULL);
  size_t len = strlen(good);
  char buf[1024];
  assert_true(len + 8 < sizeof(buf));

  const char *why = NULL;
  sl_claims_t claims;
  assert_int_equal(sl__auth_verify(auth, SL_ROLE_PUBLISHER, NULL, 0, NOW, &claims, &why),
                   -EACCES);
  assert_string_equal(why, "not a compact JWS");
  expect(auth, SL_ROLE_PUBLISHER, "", NOW, -EACCES, "not a compact JWS", NULL);
  expect(auth, SL_ROLE_PUBLISHER, "abc.def", NOW, -EACCES, "not a compact JWS", NULL);
  snprintf(buf, sizeof(buf), "%s.", good);
  expect(auth, SL_ROLE_PUBLISHER, buf, NOW, -EACCES, "not a compact JWS", NULL);
  snprintf(buf, sizeof(buf), "%s.a.b", good);
  expect(auth, SL_ROLE_PUBLISHER, buf, NOW, -EACCES, "not a compact JWS", NULL);

  /* Verification reads len bytes, not up to a NUL: the token's own length counts. */
  memcpy(buf, good, len);
  assert_int_equal(sl__auth_verify(auth, SL_ROLE_PUBLISHER, buf, len - 1, NOW, &claims, &why),
                   -EACCES);
  assert_string_equal(why, "bad signature");
  buf[len] = '\0';
  buf[len - 3] = '\0';
  assert_int_equal(sl__auth_verify(auth, SL_ROLE_PUBLISHER, buf, len, NOW, &claims, &why),
                   -EACCES);
  assert_string_equal(why, "not a compact JWS");

  /* Any change to header, payload or signature. */
  for (size_t i = 0; i < len; i++) {
    if (good[i] == '.')
      continue;
    memcpy(buf, good, len + 1);
    buf[i] = buf[i] == 'A' ? 'B' : 'A';
    const char *w = NULL;
    assert_int_equal(sl__auth_verify(auth, SL_ROLE_PUBLISHER, buf, len, NOW, &claims, &w),
                     -EACCES);
  }
  /* Padding and non-base64url characters in the header. */
  snprintf(buf, sizeof(buf), "%s", good);
  char *dot = strchr(buf, '.');
  memmove(dot + 1, dot, strlen(dot) + 1);
  *dot = '=';
  expect(auth, SL_ROLE_PUBLISHER, buf, NOW, -EACCES, "malformed header", NULL);
  snprintf(buf, sizeof(buf), "%s", good);
  buf[3] = '+';
  expect(auth, SL_ROLE_PUBLISHER, buf, NOW, -EACCES, "malformed header", NULL);
  /* A 16-byte header leaves 4 unused bits in its last character: set, they give a second
   * spelling of the same header, which a strict decoder refuses. */
  char *canonical = assemble("{\"alg\":\"HS256\" }", "{}", "AAAA");
  expect(auth, SL_ROLE_PUBLISHER, canonical, NOW, -EACCES, "bad signature", NULL);
  char *last = strchr(canonical, '.') - 1;
  assert_int_equal(*last, 'Q');   /* the base64url digit 16: low 4 bits clear */
  *last = 'R';
  expect(auth, SL_ROLE_PUBLISHER, canonical, NOW, -EACCES, "malformed header", NULL);
  free(canonical);

  /* Overlong tokens are refused before any parsing. */
  size_t big = 20000;
  char *huge = malloc(big + 1);
  assert_non_null(huge);
  memset(huge, 'A', big);
  huge[10] = '.';
  huge[20] = '.';
  huge[big] = '\0';
  expect(auth, SL_ROLE_PUBLISHER, huge, NOW, -EACCES, "token too long", NULL);
  free(huge);
  free(good);
  sl__auth_free(auth);
}

static void test_no_key(void **state) {
  (void)state;
  sl_auth_config_t only_pub = {.key = {PUB_KEY, NULL}, .legacy = 1};
  sl_auth_t *auth = auth_with(&only_pub);
  char *token = sign(PUB_KEY, ALG_HS256, "{}");
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, -ENOKEY, "no key configured for role", NULL);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, NULL);
  sl__auth_free(auth);
  /* An empty key is no key: anyone could sign with it. */
  sl_auth_config_t empty = {.key = {"", ""}, .legacy = 1};
  auth = auth_with(&empty);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, -ENOKEY, NULL, NULL);
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, -ENOKEY, NULL, NULL);
  sl__auth_free(auth);
  free(token);
}

static void test_exp_nbf(void **state) {
  (void)state;
  char claims[256];
  sl_claims_t c;
  snprintf(claims, sizeof(claims), "{\"exp\":%lld}", (long long)NOW - 1);
  expect_claims(claims, -EACCES, "token expired", NULL);
  snprintf(claims, sizeof(claims), "{\"exp\":%lld}", (long long)NOW);
  expect_claims(claims, -EACCES, "token expired", NULL);
  snprintf(claims, sizeof(claims), "{\"exp\":%lld}", (long long)NOW + 1);
  expect_claims(claims, 0, NULL, &c);
  assert_int_equal(c.exp, NOW + 1);
  sl__claims_free(&c);
  snprintf(claims, sizeof(claims), "{\"exp\":%lld.5}", (long long)NOW);
  expect_claims(claims, 0, NULL, &c);
  assert_int_equal(c.exp, NOW);
  sl__claims_free(&c);
  snprintf(claims, sizeof(claims), "{\"exp\":%lld.5}", (long long)NOW - 1);
  expect_claims(claims, -EACCES, "token expired", NULL);
  expect_claims("{\"exp\":1e300}", 0, NULL, &c);
  assert_int_equal(c.exp, INT64_MAX);
  sl__claims_free(&c);
  expect_claims("{\"exp\":\"tomorrow\"}", -EACCES, "malformed exp", NULL);
  expect_claims("{\"exp\":null}", -EACCES, "malformed exp", NULL);

  snprintf(claims, sizeof(claims), "{\"nbf\":%lld}", (long long)NOW + 10);
  expect_claims(claims, -EACCES, "token not yet valid", NULL);
  snprintf(claims, sizeof(claims), "{\"nbf\":%lld.5}", (long long)NOW);
  expect_claims(claims, -EACCES, "token not yet valid", NULL);
  snprintf(claims, sizeof(claims), "{\"nbf\":%lld,\"exp\":%lld}", (long long)NOW,
           (long long)NOW + 60);
  expect_claims(claims, 0, NULL, NULL);
  expect_claims("{\"nbf\":[1]}", -EACCES, "malformed nbf", NULL);
}

static void test_audience_issuer(void **state) {
  (void)state;
  struct {
    const char *claims;
    int err;
    const char *why;
  } cases[] = {
    {"{\"aud\":\"" AUDIENCE "\",\"iss\":\"" ISSUER "\"}", 0, NULL},
    {"{\"aud\":[\"https://other.example\",\"" AUDIENCE "\"],\"iss\":\"" ISSUER "\"}", 0, NULL},
    {"{\"aud\":[\"" AUDIENCE "\",\"https://other.example\"],\"iss\":\"" ISSUER "\"}", 0, NULL},
    {"{\"aud\":\"https://other.example\",\"iss\":\"" ISSUER "\"}", -EACCES, "audience mismatch"},
    {"{\"aud\":[\"https://other.example\"],\"iss\":\"" ISSUER "\"}", -EACCES,
     "audience mismatch"},
    {"{\"aud\":[],\"iss\":\"" ISSUER "\"}", -EACCES, "audience mismatch"},
    {"{\"aud\":\"" AUDIENCE "/\",\"iss\":\"" ISSUER "\"}", -EACCES, "audience mismatch"},
    {"{\"iss\":\"" ISSUER "\"}", -EACCES, "audience mismatch"},
    {"{\"aud\":{\"" AUDIENCE "\":1},\"iss\":\"" ISSUER "\"}", -EACCES, "audience mismatch"},
    {"{\"aud\":[\"" AUDIENCE "\",7],\"iss\":\"" ISSUER "\"}", -EACCES, "malformed aud"},
    {"{\"aud\":\"" AUDIENCE "\",\"iss\":\"https://evil.example\"}", -EACCES, "issuer mismatch"},
    {"{\"aud\":\"" AUDIENCE "\"}", -EACCES, "missing iss"},
    {"{\"aud\":\"" AUDIENCE "\",\"iss\":[\"" ISSUER "\"]}", -EACCES, "malformed iss"},
  };
  sl_auth_t *strict = new_auth(AUDIENCE, ISSUER);
  sl_auth_t *lax = new_auth(NULL, NULL);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *token = sign(SUB_KEY, ALG_HS256, cases[i].claims);
    expect(strict, SL_ROLE_SUBSCRIBER, token, NOW, cases[i].err, cases[i].why, NULL);
    /* Without a configured audience and issuer, neither claim is looked at. */
    expect(lax, SL_ROLE_SUBSCRIBER, token, NOW, 0, NULL, NULL);
    free(token);
  }
  sl__auth_free(strict);
  sl__auth_free(lax);
}

#define UNSUPPORTED "unsupported match_type (this hub supports exact and urlpattern)"
#define DETAIL(actions, topics) \
  "{\"type\":\"" DETAIL_TYPE "\",\"actions\":" actions ",\"topics\":" topics "}"

static void test_authorization_details(void **state) {
  (void)state;
  sl_claims_t c;
  expect_claims("{\"authorization_details\":[" DETAIL(
                  "[\"publish\",\"subscribe\",\"fly\"]",
                  "[{\"match\":\"https://example.com/a\"},"
                  "{\"match\":\"https://example.com/b\",\"match_type\":\"exact\"},"
                  "{\"match\":\"*\"}]") "," DETAIL("[\"subscribe\"]",
                                                   "[{\"match\":\"https://example.com/c\"}]")
                "]}",
                0, NULL, &c);
  assert_int_equal(c.publish_count, 3);
  assert_int_equal(c.subscribe_count, 4);
  assert_true(has(c.publish, 3, SL_SELECTOR_EXACT, "https://example.com/a"));
  assert_true(has(c.publish, 3, SL_SELECTOR_EXACT, "https://example.com/b"));
  assert_true(has(c.publish, 3, SL_SELECTOR_ANY, "*"));
  assert_false(has(c.publish, 3, SL_SELECTOR_EXACT, "https://example.com/c"));
  assert_true(has(c.subscribe, 4, SL_SELECTOR_EXACT, "https://example.com/c"));
  sl__claims_free(&c);

  /* Other detail types, unknown actions and a payload are no reason to reject. */
  expect_claims("{\"authorization_details\":[{\"type\":\"https://example.com/other\",\"x\":1},"
                DETAIL("[\"fly\"]", "[{\"match\":\"https://example.com/a\"}]") ","
                "{\"type\":\"" DETAIL_TYPE "\",\"actions\":[\"subscribe\"],"
                "\"topics\":[{\"match\":\"https://example.com/d\"}],\"payload\":{\"u\":1}}]}",
                0, NULL, &c);
  assert_int_equal(c.publish_count, 0);
  assert_int_equal(c.subscribe_count, 1);
  assert_string_equal(c.subscribe[0].text, "https://example.com/d");
  sl__claims_free(&c);
  expect_claims("{\"authorization_details\":[]}", 0, NULL, &c);
  assert_int_equal(c.publish_count + c.subscribe_count, 0);
  sl__claims_free(&c);
}

/* The payloads of subscribe grants (the spec's Payloads): kept as JSON text in token order, the
 * first grant whose selectors match the subscription's own matcher wins, a "*" grant serves as a
 * default, the legacy claim's payload comes last; a publish-only grant's payload is not kept;
 * and a copy (the token cache's) keeps them. */
static void test_payloads(void **state) {
  (void)state;
  sl_claims_t c, copy;
  expect_claims("{\"mercure\":{\"subscribe\":[\"urn:l\"],\"payload\":{\"legacy\":true}},"
                "\"authorization_details\":["
                "{\"type\":\"" DETAIL_TYPE "\",\"actions\":[\"publish\"],"
                "\"topics\":[{\"match\":\"urn:a\"}],\"payload\":{\"pub\":1}},"
                "{\"type\":\"" DETAIL_TYPE "\",\"actions\":[\"subscribe\"],"
                "\"topics\":[{\"match\":\"urn:x\"},{\"match\":\"urn:a\"}],"
                "\"payload\":{\"n\": 1, \"s\": \"\\u00e9\"}},"
                DETAIL("[\"subscribe\"]", "[{\"match\":\"urn:b\"}]") ","
                "{\"type\":\"" DETAIL_TYPE "\",\"actions\":[\"subscribe\"],"
                "\"topics\":[{\"match\":\"*\"}],\"payload\":{\"default\":[1,2]}}]}",
                0, NULL, &c);
  assert_int_equal(c.payload_count, 3);
  const sl_payload_t *p = sl__claims_payload(&c, "urn:a", 5);
  assert_non_null(p);
  assert_string_equal(p->json, "{\"n\":1,\"s\":\"\xc3\xa9\"}");
  assert_int_equal(p->len, strlen(p->json));
  p = sl__claims_payload(&c, "urn:b", 5); /* urn:b's grant has none: the "*" grant's */
  assert_string_equal(p->json, "{\"default\":[1,2]}");
  assert_int_equal(sl__claims_copy(&copy, &c), 0);
  sl__claims_free(&c);
  p = sl__claims_payload(&copy, "urn:x", 5);
  assert_string_equal(p->json, "{\"n\":1,\"s\":\"\xc3\xa9\"}");
  sl__claims_free(&copy);

  expect_claims("{\"mercure\":{\"subscribe\":[\"urn:l\"],\"payload\":{\"legacy\":true}},"
                "\"authorization_details\":[{\"type\":\"" DETAIL_TYPE "\",\"actions\":"
                "[\"subscribe\"],\"topics\":[{\"match\":\"urn:x\"}],\"payload\":{\"x\":0}}]}",
                0, NULL, &c);
  assert_string_equal(sl__claims_payload(&c, "urn:x", 5)->json, "{\"x\":0}");
  assert_string_equal(sl__claims_payload(&c, "urn:other", 9)->json, "{\"legacy\":true}");
  sl__claims_free(&c);
  expect_claims("{\"authorization_details\":[" DETAIL("[\"subscribe\"]", "[{\"match\":\"urn:b\"}]")
                "]}", 0, NULL, &c);
  assert_null(sl__claims_payload(&c, "urn:b", 5));
  sl__claims_free(&c);
}

/* Every defect rejects the whole token, even next to a valid detail (no partial acceptance). */
static void test_malformed_authorization_details(void **state) {
  (void)state;
  const char *good = DETAIL("[\"publish\"]", "[{\"match\":\"https://example.com/a\"}]");
  struct {
    const char *details;
    const char *why;
  } cases[] = {
    {"{}", "authorization_details not an array"},
    {"\"" DETAIL_TYPE "\"", "authorization_details not an array"},
    {"[1]", "malformed authorization detail"},
    {"[[]]", "malformed authorization detail"},
    {"[{\"actions\":[\"publish\"],\"topics\":[{\"match\":\"*\"}]}]",
     "malformed authorization detail"},
    {"[{\"type\":7}]", "malformed authorization detail"},
    {"[{\"type\":\"" DETAIL_TYPE "\",\"actions\":[\"publish\"]}]",
     "authorization detail without topics"},
    {"[" DETAIL("[\"publish\"]", "[]") "]", "authorization detail without topics"},
    {"[" DETAIL("[\"publish\"]", "{\"match\":\"*\"}") "]", "authorization detail without topics"},
    {"[{\"type\":\"" DETAIL_TYPE "\",\"topics\":[{\"match\":\"*\"}]}]",
     "authorization detail without actions"},
    {"[" DETAIL("[]", "[{\"match\":\"*\"}]") "]", "authorization detail without actions"},
    {"[" DETAIL("\"publish\"", "[{\"match\":\"*\"}]") "]", "authorization detail without actions"},
    {"[" DETAIL("[\"publish\",1]", "[{\"match\":\"*\"}]") "]", "malformed actions"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":1}]") "]", "malformed topic matcher"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":null}]") "]", "malformed topic matcher"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":\"\"}]") "]", "malformed topic matcher"},
    {"[" DETAIL("[\"publish\"]", "[{\"topic\":\"https://example.com/a\"}]") "]",
     "malformed topic matcher"},
    {"[" DETAIL("[\"publish\"]", "[\"https://example.com/a\"]") "]", "malformed topic matcher"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":\"a\",\"match_type\":1}]") "]",
     "malformed topic matcher"},
    {"[" DETAIL("[\"publish\"]",
                "[{\"match\":\"https://example.com/((a)b)\",\"match_type\":\"urlpattern\"}]") "]",
     "capturing groups are not allowed inside a URL pattern regexp; use (?:...)"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":\"a\",\"match_type\":\"Exact\"}]") "]",
     UNSUPPORTED},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":\"a\",\"match_type\":\"regex\"}]") "]",
     UNSUPPORTED},
    /* A detail granting nothing known is still checked. */
    {"[" DETAIL("[\"fly\"]", "[{\"match\":\"a\",\"match_type\":\"regex\"}]") "]",
     UNSUPPORTED},
    {"[" DETAIL("[\"fly\"]",
                "[{\"match\":\"https://example.com/(a\",\"match_type\":\"urlpattern\"}]") "]",
     "a URL pattern regexp group '(' is not closed"},
    {"[{\"type\":\"" DETAIL_TYPE "\",\"actions\":[\"subscribe\"],"
     "\"topics\":[{\"match\":\"a\"}],\"payload\":[1]}]",
     "malformed payload"},
  };
  char claims[1024];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(claims, sizeof(claims), "{\"authorization_details\":%s}", cases[i].details);
    expect_claims(claims, -EACCES, cases[i].why, NULL);
    if (cases[i].details[0] != '[')
      continue;
    /* The same defect behind a valid detail, and behind a valid legacy claim. */
    snprintf(claims, sizeof(claims), "{\"authorization_details\":[%s,%s}", good,
             cases[i].details + 1);
    expect_claims(claims, -EACCES, cases[i].why, NULL);
    snprintf(claims, sizeof(claims),
             "{\"mercure\":{\"publish\":[\"*\"]},\"authorization_details\":%s}", cases[i].details);
    expect_claims(claims, -EACCES, cases[i].why, NULL);
  }
}

/* match_type urlpattern grants a compiled URL pattern (relative ones against the hub's URL);
 * legacy claims with '{' grant URI templates; copies share the compiled matchers. */
static void test_pattern_grants(void **state) {
  (void)state;
  static const char base[] = "https://hub.example.com/.well-known/mercure";
  sl_auth_t *auth = new_auth(NULL, NULL);
  sl__auth_set_topic_base(auth, base);
  char *token = sign(PUB_KEY, ALG_HS256,
                     "{\"mercure\":{\"publish\":[\"https://example.com/legacy/{id}\"]},"
                     "\"authorization_details\":[" DETAIL("[\"publish\",\"subscribe\"]",
                     "[{\"match\":\"https://example.com/books/:id\",\"match_type\":\"urlpattern\"},"
                     "{\"match\":\"/.well-known/mercure/subscriptions/*\",\"match_type\":\"urlpattern\"},"
                     "{\"match\":\"*\",\"match_type\":\"urlpattern\"}]") "]}");
  sl_claims_t c, copy;
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, &c);
  free(token);
  assert_int_equal(c.publish_count, 4);
  assert_true(has(c.publish, 4, SL_SELECTOR_TEMPLATE, "https://example.com/legacy/{id}"));
  assert_true(has(c.publish, 4, SL_SELECTOR_URLPATTERN, "https://example.com/books/:id"));
  assert_true(has(c.publish, 4, SL_SELECTOR_ANY, "*"));
  assert_int_equal(sl__claims_copy(&copy, &c), 0);
  sl__claims_free(&c);
  sl__auth_free(auth);
  assert_true(sl__selectors_match(copy.publish, 3, "https://example.com/books/7", 27));
  assert_false(sl__selectors_match(copy.publish, 3, "https://example.com/books/7/8", 29));
  assert_true(sl__selectors_match(copy.publish, 3, "https://example.com/legacy/x", 28));
  assert_true(sl__selectors_match(copy.publish, 3, "/.well-known/mercure/subscriptions/a", 36));
  assert_false(sl__selectors_match(copy.publish, 3, "https://example.com/other", 25));
  assert_true(has(copy.subscribe, 3, SL_SELECTOR_URLPATTERN, "https://example.com/books/:id"));
  sl__claims_free(&copy);

  /* Without the hub's URL, a relative pattern cannot be resolved: the token is invalid. */
  expect_claims("{\"authorization_details\":[" DETAIL("[\"publish\"]",
                "[{\"match\":\"/books/:id\",\"match_type\":\"urlpattern\"}]") "]}",
                -EACCES, "a relative URL pattern needs the hub's URL as its base", NULL);
  /* An invalid legacy template too. */
  expect_claims("{\"mercure\":{\"subscribe\":[\"https://example.com/{id\"]}}", -EACCES,
                "a URI template expression '{' is not closed", NULL);
}

static void test_legacy_claim(void **state) {
  (void)state;
  sl_claims_t c;
  expect_claims("{\"mercure\":{\"publish\":[\"https://example.com/a\",\"*\"],"
                "\"subscribe\":[\"https://example.com/b\"],\"payload\":{\"u\":1}}}",
                0, NULL, &c);
  assert_int_equal(c.publish_count, 2);
  assert_int_equal(c.subscribe_count, 1);
  assert_int_equal(c.publish[0].kind, SL_SELECTOR_EXACT);
  assert_string_equal(c.publish[0].text, "https://example.com/a");
  assert_int_equal(c.publish[0].len, 21);
  assert_int_equal(c.publish[1].kind, SL_SELECTOR_ANY);
  assert_string_equal(c.subscribe[0].text, "https://example.com/b");
  sl__claims_free(&c);
  sl__claims_free(&c);

  /* Both forms: their union. */
  expect_claims("{\"mercure\":{\"subscribe\":[\"https://example.com/b\"]},"
                "\"authorization_details\":[" DETAIL("[\"publish\"]",
                                                     "[{\"match\":\"https://example.com/a\"}]")
                "]}",
                0, NULL, &c);
  assert_int_equal(c.publish_count, 1);
  assert_int_equal(c.subscribe_count, 1);
  assert_string_equal(c.publish[0].text, "https://example.com/a");
  assert_string_equal(c.subscribe[0].text, "https://example.com/b");
  sl__claims_free(&c);

  /* Only "*" itself is the wildcard. */
  expect_claims("{\"mercure\":{\"publish\":[\"*x\",\"**\"]}}", 0, NULL, &c);
  assert_int_equal(c.publish_count, 2);
  assert_int_equal(c.publish[0].kind, SL_SELECTOR_EXACT);
  assert_int_equal(c.publish[1].kind, SL_SELECTOR_EXACT);
  assert_false(sl__selectors_match(c.publish, c.publish_count, "https://example.com/a", 21));
  sl__claims_free(&c);

  expect_claims("{\"mercure\":{}}", 0, NULL, &c);
  assert_int_equal(c.publish_count + c.subscribe_count, 0);
  sl__claims_free(&c);
  expect_claims("{\"mercure\":[\"*\"]}", -EACCES, "malformed mercure claim", NULL);
  expect_claims("{\"mercure\":{\"publish\":\"*\"}}", -EACCES, "malformed mercure claim", NULL);
  expect_claims("{\"mercure\":{\"subscribe\":[\"a\",{}]}}", -EACCES, "malformed mercure claim",
                NULL);
  expect_claims("{\"mercure\":{\"publish\":[\"\"]}}", -EACCES, "malformed mercure claim", NULL);
}

/* Many grants: every one lands, each string intact inside its role's block. */
static void test_many_grants(void **state) {
  (void)state;
  size_t n = 300;
  size_t cap = n * 64 + 256;
  char *claims = malloc(cap);
  assert_non_null(claims);
  size_t off = (size_t)snprintf(claims, cap, "{\"mercure\":{\"subscribe\":[");
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(claims + off, cap - off, "%s\"https://example.com/t/%zu\"",
                            i ? "," : "", i);
  snprintf(claims + off, cap - off, "]}}");
  sl_auth_t *auth = new_auth(NULL, NULL);
  char *token = sign(SUB_KEY, ALG_HS256, claims);
  sl_claims_t c;
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, 0, NULL, &c);
  assert_int_equal(c.subscribe_count, n);
  char topic[64];
  for (size_t i = 0; i < n; i++) {
    int len = snprintf(topic, sizeof(topic), "https://example.com/t/%zu", i);
    assert_string_equal(c.subscribe[i].text, topic);
    assert_int_equal(c.subscribe[i].len, (size_t)len);
    assert_true(sl__selectors_match(c.subscribe, c.subscribe_count, topic, (size_t)len));
  }
  assert_false(sl__selectors_match(c.subscribe, c.subscribe_count, "https://example.com/t/300",
                                  25));
  sl__claims_free(&c);
  free(token);
  free(claims);
  sl__auth_free(auth);
}


/* --- the spec profile, algorithms and keys ---------------------------------------------------- */

#define LEEWAY 30
#define SPEC_CLAIMS_FMT                                                                         \
  "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"sub\":\"s\",\"client_id\":\"c\","       \
  "\"jti\":\"j\",\"iat\":%lld,\"exp\":%lld,\"authorization_details\":[" DETAIL_SPEC "]}"
#define DETAIL_SPEC                                                                             \
  "{\"type\":\"" DETAIL_TYPE "\",\"actions\":[\"publish\"],\"topics\":[{\"match\":\"urn:t\"}]}"

/* Keys made once, at test time: nothing private is committed. */
static EVP_PKEY *rsa_key, *rsa_other, *p256_key, *p256_other, *p384_key, *p521_key, *ed_key;

static int make_keys(void **state) {
  (void)state;
  rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  p256_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  p256_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  p384_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  p521_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
  ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  return rsa_key && rsa_other && p256_key && p256_other && p384_key && p521_key && ed_key ? 0 : -1;
}

static int free_keys(void **state) {
  (void)state;
  EVP_PKEY *all[] = {rsa_key, rsa_other, p256_key, p256_other, p384_key, p521_key, ed_key};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    EVP_PKEY_free(all[i]);
  return 0;
}

/* The public half of key as PEM text (malloc'ed). */
static char *public_pem(EVP_PKEY *key) {
  BIO *bio = BIO_new(BIO_s_mem());
  assert_non_null(bio);
  assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  char *pem = strndup(data, (size_t)n);
  BIO_free(bio);
  assert_non_null(pem);
  return pem;
}

static const char *digest_of(const char *alg) {
  if (!strcmp(alg, "EdDSA"))
    return NULL;
  return !strcmp(alg + 2, "256") ? "SHA256" : !strcmp(alg + 2, "384") ? "SHA384" : "SHA512";
}

/* A compact JWS of header and claims signed with key as alg (an asymmetric algorithm). The
 * ECDSA signature is converted from DER to the JWS form, R || S (RFC 7518 3.4). */
static char *sign_pkey(EVP_PKEY *key, const char *alg, const char *header, const char *claims) {
  char *token = assemble(header, claims, "");
  size_t input_len = strlen(token) - 1;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  assert_int_equal(EVP_DigestSignInit_ex(ctx, &pctx, digest_of(alg), NULL, NULL, key, NULL), 1);
  if (alg[0] == 'P') {
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
  }
  size_t sig_len = 0;
  assert_int_equal(EVP_DigestSign(ctx, NULL, &sig_len, (unsigned char *)token, input_len), 1);
  unsigned char *sig = malloc(sig_len);
  assert_non_null(sig);
  assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)token, input_len), 1);
  EVP_MD_CTX_free(ctx);
  unsigned char raw[2 * 66];
  if (alg[0] == 'E' && alg[1] == 'S') {
    size_t coord = (size_t)(EVP_PKEY_get_bits(key) + 7) / 8;
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)coord), (int)coord);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + coord, (int)coord), (int)coord);
    ECDSA_SIG_free(es);
    memcpy(sig, raw, 2 * coord);
    sig_len = 2 * coord;
  }
  char *out = realloc(token, strlen(token) + 2 * sig_len + 8);
  assert_non_null(out);
  b64url_bytes(out + strlen(out), sig, sig_len);
  free(sig);
  return out;
}

static char *spec_claims(int64_t iat, int64_t exp) {
  char *c = malloc(1024);
  assert_non_null(c);
  snprintf(c, 1024, SPEC_CLAIMS_FMT, (long long)iat, (long long)exp);
  return c;
}

/* The spec profile with key as the publisher's key value (an HMAC secret or PEM text). */
static sl_auth_t *spec_auth(const char *key) {
  sl_auth_config_t cfg = {.key = {key, SUB_KEY}, .audience = AUDIENCE, .issuer = ISSUER,
                          .leeway = LEEWAY};
  return auth_with(&cfg);
}

/* One accept per algorithm, each with its own key type; the same token is refused after one
 * byte of its signature changes, and a key of the same type that did not sign it refuses it. */
static void test_each_algorithm(void **state) {
  (void)state;
  static const struct {
    const char *alg;
    EVP_PKEY **key, **other;
  } cases[] = {
    {"RS256", &rsa_key, &rsa_other}, {"RS384", &rsa_key, &rsa_other},
    {"RS512", &rsa_key, &rsa_other}, {"PS256", &rsa_key, &rsa_other},
    {"PS384", &rsa_key, &rsa_other}, {"PS512", &rsa_key, &rsa_other},
    {"ES256", &p256_key, &p256_other}, {"ES384", &p384_key, NULL},
    {"ES512", &p521_key, NULL}, {"EdDSA", &ed_key, NULL},
  };
  char *claims = spec_claims(NOW - 10, NOW + 600);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char header[64];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"at+jwt\"}", cases[i].alg);
    char *pem = public_pem(*cases[i].key);
    sl_auth_t *auth = spec_auth(pem);
    char *token = sign_pkey(*cases[i].key, cases[i].alg, header, claims);
    sl_claims_t c;
    expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, &c);
    assert_int_equal(c.publish_count, 1);
    assert_string_equal(c.publish[0].text, "urn:t");
    assert_int_equal(c.exp, NOW + 600 + LEEWAY);
    sl__claims_free(&c);
    char *last = token + strlen(token) - 3;
    *last = *last == 'A' ? 'B' : 'A';
    expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "bad signature", NULL);
    free(token);
    if (cases[i].other) {
      token = sign_pkey(*cases[i].other, cases[i].alg, header, claims);
      expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "bad signature", NULL);
      free(token);
    }
    sl__auth_free(auth);
    free(pem);
  }
  /* HMAC too, in the spec profile, and the secret from a file (one trailing newline dropped). */
  sl_auth_t *auth = spec_auth(PUB_KEY);
  char *token = sign_with_header(PUB_KEY, "SHA384", "{\"alg\":\"HS384\",\"typ\":\"at+jwt\"}",
                                 claims);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, NULL);
  sl__auth_free(auth);
  char path[] = "/tmp/sluice-test-key-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, PUB_KEY "\n", sizeof PUB_KEY), (ssize_t)sizeof PUB_KEY);
  close(fd);
  sl_auth_config_t cfg = {.key_file = {path, NULL}, .audience = AUDIENCE, .issuer = ISSUER};
  auth = auth_with(&cfg);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, NULL);
  sl__auth_free(auth);
  unlink(path);
  free(token);
  free(claims);
}

/* An HS256 token whose "secret" is the RSA public key's PEM text (the attacker knows it): a
 * verifier that let the token choose the algorithm would accept it. Also ES256 against an RSA
 * key, RS256 against an HMAC secret, and an EC key of another curve. */
static void test_algorithm_confusion(void **state) {
  (void)state;
  char *pem = public_pem(rsa_key);
  sl_auth_t *auth = spec_auth(pem);
  char *claims = spec_claims(NOW, NOW + 600);
  char *forged = sign_with_header(pem, "SHA256", "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, forged, NOW, -EACCES, "alg not allowed for the configured keys",
         NULL);
  free(forged);
  forged = sign_pkey(p256_key, "ES256", "{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, forged, NOW, -EACCES, "alg not allowed for the configured keys",
         NULL);
  free(forged);
  sl__auth_free(auth);
  auth = spec_auth(PUB_KEY);
  forged = sign_pkey(rsa_key, "RS256", "{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, forged, NOW, -EACCES, "alg not allowed for the configured keys",
         NULL);
  free(forged);
  sl__auth_free(auth);
  char *p384 = public_pem(p384_key);
  auth = spec_auth(p384);
  forged = sign_pkey(p256_key, "ES256", "{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, forged, NOW, -EACCES, "alg not allowed for the configured keys",
         NULL);
  free(forged);
  sl__auth_free(auth);
  free(p384);
  free(claims);
  free(pem);
}

/* alg none in the spec profile, and with the signature of a real token. */
static void test_spec_alg_none(void **state) {
  (void)state;
  sl_auth_t *auth = spec_auth(PUB_KEY);
  char *claims = spec_claims(NOW, NOW + 600);
  char *token = assemble("{\"alg\":\"none\",\"typ\":\"at+jwt\"}", claims, "");
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "alg not allowed", NULL);
  free(token);
  free(claims);
  sl__auth_free(auth);
}

/* Each rule of the spec profile, one token breaking it, the reason named. */
static void test_spec_rules(void **state) {
  (void)state;
  static const char ok_header[] = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}";
  struct {
    const char *header;
    const char *claims;
    const char *why;
  } cases[] = {
    {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", NULL, "typ not allowed"},
    {"{\"alg\":\"HS256\"}", NULL, "typ not allowed"},
    {ok_header, "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\"}", "missing exp"},
    {ok_header, "{\"iss\":\"" ISSUER "\",\"exp\":1767229999}", "audience mismatch"},
    {ok_header, "{\"iss\":\"" ISSUER "\",\"aud\":\"https://other/\",\"exp\":1767229999}",
     "audience mismatch"},
    {ok_header, "{\"iss\":\"" ISSUER "\",\"aud\":[\"https://other/\"],\"exp\":1767229999}",
     "audience mismatch"},
    {ok_header, "{\"aud\":\"" AUDIENCE "\",\"exp\":1767229999}", "missing iss"},
    {ok_header, "{\"iss\":\"https://evil/\",\"aud\":\"" AUDIENCE "\",\"exp\":1767229999}",
     "issuer mismatch"},
  };
  sl_auth_t *auth = spec_auth(PUB_KEY);
  char *good = spec_claims(NOW, NOW + 600);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *token = sign_with_header(PUB_KEY, "SHA256", cases[i].header,
                                   cases[i].claims ? cases[i].claims : good);
    expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, cases[i].why, NULL);
    free(token);
  }
  /* aud as an array holding the resource identifier. */
  char *token = sign_with_header(PUB_KEY, "SHA256", ok_header,
                                 "{\"iss\":\"" ISSUER "\",\"aud\":[\"x\",\"" AUDIENCE "\"],"
                                 "\"exp\":1767229999}");
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, NULL);
  free(token);
  /* The legacy mercure claim grants nothing here: only authorization_details do. */
  token = sign_with_header(PUB_KEY, "SHA256", ok_header,
                           "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":1767229999,"
                           "\"mercure\":{\"publish\":[\"*\"]}}");
  sl_claims_t c;
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, &c);
  assert_int_equal(c.publish_count, 0);
  sl__claims_free(&c);
  free(token);
  free(good);
  sl__auth_free(auth);

  /* Without a configured issuer, any iss will do, but one is still required. */
  sl_auth_config_t cfg = {.key = {PUB_KEY, NULL}, .audience = AUDIENCE};
  auth = auth_with(&cfg);
  token = sign_with_header(PUB_KEY, "SHA256", ok_header,
                           "{\"iss\":\"anyone\",\"aud\":\"" AUDIENCE "\",\"exp\":1767229999}");
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, NULL);
  free(token);
  token = sign_with_header(PUB_KEY, "SHA256", ok_header,
                           "{\"aud\":\"" AUDIENCE "\",\"exp\":1767229999}");
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "missing iss", NULL);
  free(token);
  sl__auth_free(auth);
}

/* exp, nbf and iat each at the edges of the leeway. */
static void test_leeway(void **state) {
  (void)state;
  sl_auth_t *auth = spec_auth(PUB_KEY);
  static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}";
  struct {
    const char *extra;   /* claims added, with %lld for NOW + delta */
    long long delta;
    const char *why;     /* NULL = accepted */
  } cases[] = {
    {"\"exp\":%lld", -(LEEWAY - 1), NULL},
    {"\"exp\":%lld", -LEEWAY, "token expired"},
    {"\"exp\":%lld", -LEEWAY - 100, "token expired"},
    {"\"exp\":%lld,\"nbf\":1", LEEWAY + 100, NULL},
    {"\"exp\":9999999999,\"nbf\":%lld", LEEWAY, NULL},
    {"\"exp\":9999999999,\"nbf\":%lld", LEEWAY + 1, "token not yet valid"},
    {"\"exp\":9999999999,\"iat\":%lld", LEEWAY, NULL},
    {"\"exp\":9999999999,\"iat\":%lld", LEEWAY + 1, "token issued in the future"},
    {"\"exp\":9999999999,\"iat\":\"now\"", 0, "malformed iat"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char extra[128], claims[512];
    snprintf(extra, sizeof extra, cases[i].extra, (long long)NOW + cases[i].delta);
    snprintf(claims, sizeof claims, "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",%s}", extra);
    char *token = sign_with_header(PUB_KEY, "SHA256", header, claims);
    sl_claims_t c;
    expect(auth, SL_ROLE_PUBLISHER, token, NOW, cases[i].why ? -EACCES : 0, cases[i].why, &c);
    /* Accepted near its end, the token is honoured until exp plus the leeway, never before now. */
    if (!cases[i].why && i == 0)
      assert_int_equal(c.exp, NOW + 1);
    sl__claims_free(&c);
    free(token);
  }
  sl__auth_free(auth);
  /* The leeway is bounded. */
  sl_auth_config_t cfg = {.key = {PUB_KEY, NULL}, .leeway = SL_AUTH_MAX_LEEWAY + 1};
  char err[256] = "";
  sl_auth_t *bad = NULL;
  assert_int_equal(sl__auth_new(&bad, &cfg, err, sizeof err), -EINVAL);
  assert_null(bad);
  assert_non_null(strstr(err, "leeway"));
}

/* The legacy profile keeps what pre-standard issuers send: no exp, no typ or typ JWT, no iss. */
static void test_legacy_profile(void **state) {
  (void)state;
  sl_auth_config_t cfg = {.key = {PUB_KEY, NULL}, .legacy = 1};
  sl_auth_t *legacy = auth_with(&cfg);
  sl_auth_t *spec = spec_auth(PUB_KEY);
  char *token = sign(PUB_KEY, ALG_HS256, "{\"mercure\":{\"publish\":[\"*\"]}}");
  sl_claims_t c;
  expect(legacy, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, &c);
  assert_int_equal(c.publish_count, 1);
  assert_int_equal(c.exp, 0);
  sl__claims_free(&c);
  expect(spec, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "typ not allowed", NULL);
  free(token);
  sl__auth_free(legacy);
  sl__auth_free(spec);
}

/* A JWK of key's public half, with kid (NULL = none) and extra members ("" = none). */
static void jwk_of(EVP_PKEY *key, const char *kid, const char *extra, char *out, size_t cap) {
  char a[400], b[400];
  unsigned char buf[1024];
  size_t n = 0;
  char kidm[96] = "";
  if (kid)
    snprintf(kidm, sizeof kidm, ",\"kid\":\"%s\"", kid);
  if (EVP_PKEY_is_a(key, "RSA")) {
    BIGNUM *bn = NULL, *be = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(key, "n", &bn), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, "e", &be), 1);
    n = (size_t)BN_bn2bin(bn, buf);
    b64url_bytes(a, buf, n);
    n = (size_t)BN_bn2bin(be, buf);
    b64url_bytes(b, buf, n);
    BN_free(bn);
    BN_free(be);
    snprintf(out, cap, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", a, b, kidm, extra);
  } else if (EVP_PKEY_is_a(key, "EC")) {
    assert_int_equal(EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", buf, sizeof buf, &n), 1);
    size_t coord = (n - 1) / 2;
    b64url_bytes(a, buf + 1, coord);
    b64url_bytes(b, buf + 1 + coord, coord);
    snprintf(out, cap, "{\"kty\":\"EC\",\"crv\":\"P-%d\",\"x\":\"%s\",\"y\":\"%s\"%s%s}",
             EVP_PKEY_get_bits(key), a, b, kidm, extra);
  } else {
    n = sizeof buf;
    assert_int_equal(EVP_PKEY_get_raw_public_key(key, buf, &n), 1);
    b64url_bytes(a, buf, n);
    snprintf(out, cap, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"%s%s}", a, kidm, extra);
  }
}

static char *write_temp(const char *text) {
  char *path = strdup("/tmp/sluice-test-jwks-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

/* A JWK Set with two kids (rotation): each token verifies with the key its kid names; a kid not
 * in the set is refused; a token without kid is tried with every key its alg fits. */
static void test_jwks_rotation(void **state) {
  (void)state;
  char k1[2048], k2[2048], k3[1024], k4[256], jwks[6144];
  jwk_of(rsa_key, "old", ",\"use\":\"sig\",\"alg\":\"RS256\"", k1, sizeof k1);
  jwk_of(p256_key, "new", "", k2, sizeof k2);
  jwk_of(ed_key, "ed", ",\"key_ops\":[\"verify\"]", k3, sizeof k3);
  /* An encryption key and an oct key in the same set. */
  snprintf(k4, sizeof k4, "{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"%s\"}",
           "cHVibGlzaGVyLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OQ");
  snprintf(jwks, sizeof jwks, "{\"keys\":[%s,%s,%s,%s,{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
           k1, k2, k3, k4);
  char *path = write_temp(jwks);
  sl_auth_config_t cfg = {.jwks_file = {path, NULL}, .audience = AUDIENCE, .issuer = ISSUER};
  sl_auth_t *auth = auth_with(&cfg);
  char *claims = spec_claims(NOW, NOW + 600);
  char *t = sign_pkey(rsa_key, "RS256", "{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"old\"}",
                      claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, 0, NULL, NULL);
  free(t);
  t = sign_pkey(p256_key, "ES256", "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"new\"}",
                claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, 0, NULL, NULL);
  free(t);
  t = sign_pkey(ed_key, "EdDSA", "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"ed\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, 0, NULL, NULL);
  free(t);
  t = sign_with_header("publisher-key-0123456789abcdef0123456789", "SHA256",
                       "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"hmac\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, 0, NULL, NULL);
  free(t);
  /* Without kid: every key the alg fits is tried. */
  t = sign_pkey(p256_key, "ES256", "{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, 0, NULL, NULL);
  free(t);
  /* A kid the set does not hold. */
  t = sign_pkey(p256_key, "ES256", "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"gone\"}",
                claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, -EACCES, "unknown kid", NULL);
  free(t);
  /* A kid naming another key than the one that signed. */
  t = sign_pkey(p256_key, "ES256", "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"ed\"}",
                claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, -EACCES, "alg not allowed for the configured keys", NULL);
  free(t);
  /* The JWK's alg binds it: RS256 only, so PS256 with the same key is refused. */
  t = sign_pkey(rsa_key, "PS256", "{\"alg\":\"PS256\",\"typ\":\"at+jwt\",\"kid\":\"old\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, -EACCES, "alg not allowed for the configured keys", NULL);
  free(t);
  /* Rotated out: a set without "old" refuses its tokens. */
  sl__auth_free(auth);
  unlink(path);
  free(path);
  snprintf(jwks, sizeof jwks, "{\"keys\":[%s]}", k2);
  path = write_temp(jwks);
  cfg.jwks_file[0] = path;
  auth = auth_with(&cfg);
  t = sign_pkey(rsa_key, "RS256", "{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"old\"}", claims);
  expect(auth, SL_ROLE_PUBLISHER, t, NOW, -EACCES, "unknown kid", NULL);
  free(t);
  sl__auth_free(auth);
  unlink(path);
  free(path);
  free(claims);
}

/* Keys that must not load, each with a message naming the problem. */
static void test_bad_keys(void **state) {
  (void)state;
  EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
  assert_non_null(small);
  char *small_pem = public_pem(small);
  BIO *bio = BIO_new(BIO_s_mem());
  assert_int_equal(PEM_write_bio_PrivateKey(bio, p256_key, NULL, NULL, 0, NULL, NULL), 1);
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  char *private_pem = strndup(data, (size_t)n);
  BIO_free(bio);
  struct {
    const char *value, *jwks, *want;
  } cases[] = {
    {small_pem, NULL, "2048"},
    {private_pem, NULL, "public"},
    {"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", NULL, "public"},
    {"short", NULL, "at least 32"},
    {NULL, "not json", "not JSON"},
    {NULL, "{\"keys\":{}}", "keys"},
    {NULL, "{\"keys\":[]}", "no key"},
    {NULL, "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "no key"},
    {NULL, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}", "invalid"},
    {NULL, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
     "invalid"},
    {NULL, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}", "at least 32"},
    {NULL, "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":\"c2hvcnQ\"}]}", "alg"},
    {NULL, "{\"keys\":[{\"n\":\"AQAB\"}]}", "kty"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *path = NULL;
    sl_auth_config_t cfg = {.key = {cases[i].value, NULL}};
    if (cases[i].jwks)
      cfg.jwks_file[0] = path = write_temp(cases[i].jwks);
    sl_auth_t *auth = NULL;
    char err[512] = "";
    assert_int_equal(sl__auth_new(&auth, &cfg, err, sizeof err), -EINVAL);
    assert_null(auth);
    if (!strstr(err, cases[i].want))
      fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].want);
    if (path) {
      unlink(path);
      free(path);
    }
  }
  /* A missing file is named. */
  sl_auth_config_t cfg = {.key_file = {"/nonexistent/key.pem", NULL}};
  sl_auth_t *auth = NULL;
  char err[512] = "";
  assert_int_equal(sl__auth_new(&auth, &cfg, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "/nonexistent/key.pem"));
  free(private_pem);
  free(small_pem);
  EVP_PKEY_free(small);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mint_round_trip_publisher),
    cmocka_unit_test(test_mint_round_trip_subscriber),
    cmocka_unit_test(test_mint_claims),
    cmocka_unit_test(test_mint_rejects_bad_arguments),
    cmocka_unit_test(test_algorithms),
    cmocka_unit_test(test_wrong_key),
    cmocka_unit_test(test_alg_none),
    cmocka_unit_test(test_typ),
    cmocka_unit_test(test_spec_tokens_verify),
    cmocka_unit_test(test_structure),
    cmocka_unit_test(test_no_key),
    cmocka_unit_test(test_exp_nbf),
    cmocka_unit_test(test_audience_issuer),
    cmocka_unit_test(test_authorization_details),
    cmocka_unit_test(test_payloads),
    cmocka_unit_test(test_malformed_authorization_details),
    cmocka_unit_test(test_legacy_claim),
    cmocka_unit_test(test_pattern_grants),
    cmocka_unit_test(test_many_grants),
    cmocka_unit_test(test_each_algorithm),
    cmocka_unit_test(test_algorithm_confusion),
    cmocka_unit_test(test_spec_alg_none),
    cmocka_unit_test(test_spec_rules),
    cmocka_unit_test(test_leeway),
    cmocka_unit_test(test_legacy_profile),
    cmocka_unit_test(test_jwks_rotation),
    cmocka_unit_test(test_bad_keys),
  };
  return cmocka_run_group_tests(tests, make_keys, free_keys);
}
