/* test_auth.c — auth.c: tokens minted and verified per role, the forgeries RFC 8725 warns about
 * (alg none, a key of the other role, a header swapped under a valid signature), exp/nbf/aud/iss,
 * the legacy mercure claim and RFC 9396 authorization_details, each malformed shape that must
 * reject the whole token, and which selector each grant becomes. Signed test tokens are made
 * here with libjwt itself; tokens whose signature must fail are assembled by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <errno.h>
#include <jansson.h>
#include <jwt.h>

#include "auth/auth.h"

#define PUB_KEY "publisher-key-0123456789abcdef0123456789"
#define SUB_KEY "subscriber-key-0123456789abcdef012345678"
#define AUDIENCE "https://hub.example.com/.well-known/mercure"
#define ISSUER "https://example.com"
#define NOW ((int64_t)1767225300)
#define DETAIL_TYPE "https://mercure.rocks/authorization-detail"

/* A token signed with key by libjwt (so "typ":"JWT"), with the given JSON claims. */
static char *sign(const char *key, jwt_alg_t alg, const char *claims) {
  jwt_t *jwt = NULL;
  assert_int_equal(jwt_new(&jwt), 0);
  assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
  assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
  char *token = jwt_encode_str(jwt);
  assert_non_null(token);
  jwt_free(jwt);
  return token;
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

static sl_auth_t *new_auth(const char *audience, const char *issuer) {
  sl_auth_t *auth = NULL;
  assert_int_equal(sl__auth_new(&auth, PUB_KEY, SUB_KEY, audience, issuer), 0);
  assert_non_null(auth);
  return auth;
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
  char *token = sign(PUB_KEY, JWT_ALG_HS256, claims_json);
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
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, -EACCES, "issuer mismatch", NULL);
  sl__auth_free(auth);
  free(token);
}

/* The claims a minted token carries, read back through libjwt. */
static void test_mint_claims(void **state) {
  (void)state;
  const char *publish[] = {"https://example.com/a"};
  const char *subscribe[] = {"https://example.com/b", "https://example.com/c"};
  char *token = NULL;
  int64_t before = (int64_t)time(NULL);
  assert_int_equal(sl__token_mint(PUB_KEY, publish, 1, subscribe, 2, 60, AUDIENCE, ISSUER,
                                 &token),
                   0);
  jwt_t *jwt = NULL;
  assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)PUB_KEY,
                              (int)strlen(PUB_KEY)),
                   0);
  assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
  char *text = jwt_get_grants_json(jwt, NULL);
  assert_non_null(text);
  json_t *c = json_loads(text, 0, NULL);
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
  free(text);
  jwt_free(jwt);

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
  jwt_alg_t algs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512};
  for (size_t i = 0; i < 3; i++) {
    char *token = sign(PUB_KEY, algs[i], claims);
    sl_claims_t c;
    expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, &c);
    assert_int_equal(c.publish_count, 1);
    assert_true(sl__selectors_match(c.publish, c.publish_count, "https://example.com/a", 21));
    sl__claims_free(&c);
    /* A header claiming another HMAC size over the same signature does not verify. */
    const char *other = algs[i] == JWT_ALG_HS256 ? "{\"alg\":\"HS512\",\"typ\":\"JWT\"}"
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
  char *token = sign("some-other-key-0123456789abcdef0123456789", JWT_ALG_HS256, claims);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, -EACCES, "bad signature", NULL);
  free(token);
  /* Signed with the subscriber key: good for subscribing, useless for publishing. */
  token = sign(SUB_KEY, JWT_ALG_HS256, claims);
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
  char *real = sign(PUB_KEY, JWT_ALG_HS256, claims);
  const char *headers[] = {
    "{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}",
    "{\"alg\":\"NONE\"}", "{\"alg\":\"nOnE\",\"typ\":\"at+jwt\"}", "{\"alg\":\"\"}",
    "{\"typ\":\"JWT\"}", "{\"alg\":null}", "{\"alg\":256}", "{\"alg\":\"RS256\"}",
    "{\"alg\":\"ES256\"}", "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}",
  };
  for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
    char *unsigned_token = assemble(headers[i], claims, "");
    expect(auth, SL_ROLE_PUBLISHER, unsigned_token, NOW, -EACCES, "alg not allowed", NULL);
    free(unsigned_token);
    char *borrowed = assemble(headers[i], claims, signature_of(real));
    expect(auth, SL_ROLE_PUBLISHER, borrowed, NOW, -EACCES, "alg not allowed", NULL);
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
  char *good = sign(PUB_KEY, JWT_ALG_HS256, "{\"mercure\":{\"publish\":[\"*\"]}}");
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
  sl_auth_t *auth = NULL;
  assert_int_equal(sl__auth_new(&auth, PUB_KEY, NULL, NULL, NULL), 0);
  char *token = sign(PUB_KEY, JWT_ALG_HS256, "{}");
  expect(auth, SL_ROLE_SUBSCRIBER, token, NOW, -ENOKEY, "no key configured for role", NULL);
  expect(auth, SL_ROLE_PUBLISHER, token, NOW, 0, NULL, NULL);
  sl__auth_free(auth);
  /* An empty key is no key: anyone could sign with it. */
  assert_int_equal(sl__auth_new(&auth, "", "", NULL, NULL), 0);
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
    {"{\"aud\":\"" AUDIENCE "\"}", -EACCES, "issuer mismatch"},
    {"{\"aud\":\"" AUDIENCE "\",\"iss\":[\"" ISSUER "\"]}", -EACCES, "issuer mismatch"},
  };
  sl_auth_t *strict = new_auth(AUDIENCE, ISSUER);
  sl_auth_t *lax = new_auth(NULL, NULL);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *token = sign(SUB_KEY, JWT_ALG_HS256, cases[i].claims);
    expect(strict, SL_ROLE_SUBSCRIBER, token, NOW, cases[i].err, cases[i].why, NULL);
    /* Without a configured audience and issuer, neither claim is looked at. */
    expect(lax, SL_ROLE_SUBSCRIBER, token, NOW, 0, NULL, NULL);
    free(token);
  }
  sl__auth_free(strict);
  sl__auth_free(lax);
}

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
                "[{\"match\":\"https://example.com/:id\",\"match_type\":\"urlpattern\"}]") "]",
     "unsupported match_type"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":\"*\",\"match_type\":\"urlpattern\"}]") "]",
     "unsupported match_type"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":\"a\",\"match_type\":\"Exact\"}]") "]",
     "unsupported match_type"},
    {"[" DETAIL("[\"publish\"]", "[{\"match\":\"a\",\"match_type\":\"regex\"}]") "]",
     "unsupported match_type"},
    /* A detail granting nothing known is still checked. */
    {"[" DETAIL("[\"fly\"]", "[{\"match\":\"a\",\"match_type\":\"urlpattern\"}]") "]",
     "unsupported match_type"},
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
  char *token = sign(SUB_KEY, JWT_ALG_HS256, claims);
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
    cmocka_unit_test(test_many_grants),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
