/* test_policy.c — policy.c: which token a request presents (the Authorization header before any
 * cookie, both cookie names, whole cookie names only), the 400 for an Authorization header that is
 * not "Bearer <token>", the cross-site check on cookie-authorized publishes (Origin, else Referer,
 * must name Host), the token cache consulted before sl__auth_verify, and the exact status, header
 * and message of every refusal (the integration tests and clients read them).
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
#include <errno.h>

#include "auth/policy.h"

#define PUB_KEY "publisher-secret-of-32-bytes-ok!"
#define SUB_KEY "subscriber-secret-of-32-bytes-ok"
#define INVALID_TOKEN "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"
/* The challenge for a token that fails a rule: the rule named in error_description. */
#define CHALLENGE(why)                                                                        \
  "WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"" why "\"\r\n"
#define TOPIC "https://example.com/a"

static const int64_t NOW = 1700000000;

/* A token signed with key, granting publish and subscribe on TOPIC, without exp. */
static char *mint(const char *key) {
  const char *topics[] = {TOPIC};
  char *tok = NULL;
  assert_int_equal(sl__token_mint(key, topics, 1, topics, 1, 0, NULL, NULL, &tok), 0);
  return tok;
}

static char *bearer(const char *tok) {
  char *h = malloc(strlen(tok) + 8);
  assert_non_null(h);
  sprintf(h, "Bearer %s", tok);
  return h;
}

static char *cookie(const char *name, const char *tok) {
  char *h = malloc(strlen(name) + strlen(tok) + 32);
  assert_non_null(h);
  sprintf(h, "theme=dark; %s=%s; lang=en", name, tok);
  return h;
}

/* The legacy profile: mint() makes tokens without exp or aud. */
static sl_auth_t *auth_with(const char *pub, const char *sub) {
  sl_auth_t *auth = NULL;
  sl_auth_config_t cfg = {.key = {pub, sub}, .legacy = 1};
  assert_int_equal(sl__auth_new(&auth, &cfg, NULL, 0), 0);
  return auth;
}

/* A request that must be accepted with a token granting TOPIC. */
static void expect_ok(const sl_auth_t *auth, sl_auth_cache_t *cache, sl_role_t role,
                      const sl_credentials_t *cred) {
  sl_claims_t claims;
  sl_auth_verdict_t v;
  assert_int_equal(sl__auth_request(auth, cache, role, cred, NOW, &claims, &v), 0);
  assert_int_equal(v.present, 1);
  assert_int_equal(v.status, 0);
  assert_true(sl__selectors_match(claims.publish, claims.publish_count, TOPIC, strlen(TOPIC)));
  assert_true(sl__selectors_match(claims.subscribe, claims.subscribe_count, TOPIC, strlen(TOPIC)));
  sl__claims_free(&claims);
}

/* A request that must be refused with exactly this answer. */
static void expect_refused(const sl_auth_t *auth, sl_auth_cache_t *cache, sl_role_t role,
                           const sl_credentials_t *cred, int err, int present, int status,
                           const char *headers, const char *message) {
  sl_claims_t claims;
  sl_auth_verdict_t v;
  assert_int_equal(sl__auth_request(auth, cache, role, cred, NOW, &claims, &v), err);
  assert_int_equal(v.present, present);
  assert_int_equal(v.status, status);
  if (headers) {
    assert_non_null(v.error);
    assert_non_null(strstr(headers, v.error));
    /* The rule, when the expected challenge names one, is the verdict's description. */
    const char *desc = strstr(headers, "error_description=\"");
    if (desc) {
      size_t n = strlen(v.description);
      assert_true(n > 0);
      assert_memory_equal(desc + strlen("error_description=\""), v.description, n);
      assert_int_equal(desc[strlen("error_description=\"") + n], '"');
    } else {
      assert_string_equal(v.description, "");
    }
  } else {
    assert_null(v.error);
  }
  assert_string_equal(v.message, message);
  assert_null(claims.publish);
  assert_null(claims.subscribe);
  assert_int_equal(claims.publish_count + claims.subscribe_count, 0);
}

static void test_no_token(void **state) {
  (void)state;
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  sl_credentials_t cred = {.cookie = "theme=dark; lang=en", .host = "hub.example"};
  for (int role = 0; role < 2; role++) {
    sl_claims_t claims;
    sl_auth_verdict_t v;
    assert_int_equal(sl__auth_request(auth, NULL, (sl_role_t)role, &cred, NOW, &claims, &v), 0);
    assert_int_equal(v.present, 0);
    assert_int_equal(v.status, 0);
    assert_null(claims.publish);
    assert_null(claims.subscribe);
  }
  sl__auth_free(auth);
}

static void test_token_found(void **state) {
  (void)state;
  size_t len = 0;
  int malformed = -1;
  /* Spaces around the token do not belong to it; the scheme is case-insensitive. */
  sl_credentials_t cred = {.authorization = "bearer   abc.def.ghi  "};
  const char *tok = sl__auth_token(&cred, &len, &malformed);
  assert_int_equal(malformed, 0);
  assert_non_null(tok);
  assert_int_equal(len, 11);
  assert_memory_equal(tok, "abc.def.ghi", 11);

  /* The header wins over a cookie, both given. */
  cred = (sl_credentials_t){.authorization = "Bearer from-header",
                            .cookie = "mercureAuthorization=from-cookie"};
  tok = sl__auth_token(&cred, &len, &malformed);
  assert_int_equal(len, 11);
  assert_memory_equal(tok, "from-header", 11);

  /* Either cookie name, among other cookies. */
  cred = (sl_credentials_t){.cookie = "a=b; mercureAuthorization=tok1; c=d; "};
  tok = sl__auth_token(&cred, &len, &malformed);
  assert_int_equal(len, 4);
  assert_memory_equal(tok, "tok1", 4);
  cred = (sl_credentials_t){.cookie = "__Secure-mercure_access_token=tok2"};
  tok = sl__auth_token(&cred, &len, &malformed);
  assert_int_equal(len, 4);
  assert_memory_equal(tok, "tok2", 4);
  /* The __Secure- name is preferred when both are sent. */
  cred = (sl_credentials_t){
      .cookie = "mercureAuthorization=old; __Secure-mercure_access_token=new"};
  tok = sl__auth_token(&cred, &len, &malformed);
  assert_int_equal(len, 3);
  assert_memory_equal(tok, "new", 3);

  /* Only whole cookie names count, and an empty value is no token. */
  cred = (sl_credentials_t){.cookie = "xmercureAuthorization=no; mercureAuthorizationX=no"};
  assert_null(sl__auth_token(&cred, &len, &malformed));
  cred = (sl_credentials_t){.cookie = "mercureAuthorization=; other=1"};
  assert_null(sl__auth_token(&cred, &len, &malformed));
  assert_int_equal(malformed, 0);
}

static void test_header_wins_over_cookie(void **state) {
  (void)state;
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  char *good = mint(SUB_KEY), *bad = mint("some-other-key-of-32-bytes-long!");
  char *good_header = bearer(good), *bad_header = bearer(bad);
  char *good_cookie = cookie("mercureAuthorization", good);
  char *bad_cookie = cookie("mercureAuthorization", bad);

  sl_credentials_t cred = {.authorization = good_header, .cookie = bad_cookie};
  expect_ok(auth, NULL, SL_ROLE_SUBSCRIBER, &cred);
  cred = (sl_credentials_t){.authorization = bad_header, .cookie = good_cookie};
  expect_refused(auth, NULL, SL_ROLE_SUBSCRIBER, &cred, -EACCES, 1, 401, CHALLENGE("bad signature"),
                 "the subscriber token is not valid: bad signature");
  /* A malformed header is not passed over for a good cookie either. */
  cred = (sl_credentials_t){.authorization = "Basic dXNlcjpwYXNz", .cookie = good_cookie};
  expect_refused(auth, NULL, SL_ROLE_SUBSCRIBER, &cred, -EINVAL, 0, 400,
                 "WWW-Authenticate: Bearer error=\"invalid_request\"\r\n",
                 "the Authorization header must be \"Bearer <token>\"");

  free(good_header);
  free(bad_header);
  free(good_cookie);
  free(bad_cookie);
  free(good);
  free(bad);
  sl__auth_free(auth);
}

static void test_both_cookie_names(void **state) {
  (void)state;
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  char *tok = mint(SUB_KEY);
  const char *names[] = {"mercureAuthorization", "__Secure-mercure_access_token"};
  for (size_t i = 0; i < 2; i++) {
    char *ck = cookie(names[i], tok);
    sl_credentials_t cred = {.cookie = ck};
    expect_ok(auth, NULL, SL_ROLE_SUBSCRIBER, &cred);
    free(ck);
  }
  free(tok);
  sl__auth_free(auth);
}

static void test_malformed_authorization(void **state) {
  (void)state;
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  const char *bad[] = {"Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer    ", "Bearertoken", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    for (int role = 0; role < 2; role++) {
      sl_credentials_t cred = {.authorization = bad[i]};
      expect_refused(auth, NULL, (sl_role_t)role, &cred, -EINVAL, 0, 400,
                     "WWW-Authenticate: Bearer error=\"invalid_request\"\r\n",
                     "the Authorization header must be \"Bearer <token>\"");
    }
  }
  sl__auth_free(auth);
}

static void test_cookie_publish_origin(void **state) {
  (void)state;
  static const char csrf[] =
      "a publish authorized by cookie must come from a page of an origin this hub trusts (its "
      "Origin, else Referer, header must name the hub's own origin or one --publish-origin "
      "lists), against cross-site request forgery; or send the token in an Authorization header";
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  char *tok = mint(PUB_KEY);
  char *ck = cookie("mercureAuthorization", tok);
  char *header = bearer(tok);
  const char *host = "hub.example:8443";

  /* Neither Origin nor Referer. */
  sl_credentials_t cred = {.cookie = ck, .host = host};
  expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);
  /* Another site, another port, a scheme-less value, no Host to compare with. */
  const char *wrong[] = {"https://evil.example", "https://hub.example:9999", "https://hub.example",
                         "hub.example:8443", "null", "https://hub.example:8443.evil.example"};
  for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
    cred = (sl_credentials_t){.cookie = ck, .origin = wrong[i], .host = host};
    expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);
    cred = (sl_credentials_t){.cookie = ck, .referer = wrong[i], .host = host};
    expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);
  }
  cred = (sl_credentials_t){.cookie = ck, .origin = "https://hub.example:8443"};
  expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);
  /* Origin, when present, decides: a right Referer does not make up for a wrong Origin. */
  cred = (sl_credentials_t){.cookie = ck, .origin = "https://evil.example",
                            .referer = "https://hub.example:8443/page", .host = host};
  expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);

  /* The hub's own origin, by Origin (host compared case-insensitively) or else by Referer. */
  cred = (sl_credentials_t){.cookie = ck, .origin = "https://HUB.example:8443", .host = host};
  expect_ok(auth, NULL, SL_ROLE_PUBLISHER, &cred);
  cred = (sl_credentials_t){.cookie = ck, .referer = "https://hub.example:8443/demo?x#y",
                            .host = host};
  expect_ok(auth, NULL, SL_ROLE_PUBLISHER, &cred);
  /* Not asked of a publish by header, nor of a subscriber's cookie. */
  cred = (sl_credentials_t){.authorization = header, .origin = "https://evil.example",
                            .host = host};
  expect_ok(auth, NULL, SL_ROLE_PUBLISHER, &cred);
  free(tok);
  tok = mint(SUB_KEY);
  free(ck);
  ck = cookie("__Secure-mercure_access_token", tok);
  cred = (sl_credentials_t){.cookie = ck, .origin = "https://evil.example", .host = host};
  expect_ok(auth, NULL, SL_ROLE_SUBSCRIBER, &cred);

  free(header);
  free(ck);
  free(tok);
  sl__auth_free(auth);
}

/* --cookie-name: only that cookie is read (the default two no longer are); the header still
 * wins over it. */
static void test_configured_cookie_name(void **state) {
  (void)state;
  size_t len = 0;
  int malformed;
  sl_credentials_t cred = {.cookie = "mercureAuthorization=old; hubTok=mine; ",
                           .cookie_name = "hubTok"};
  const char *tok = sl__auth_token(&cred, &len, &malformed);
  assert_non_null(tok);
  assert_int_equal(len, 4);
  assert_memory_equal(tok, "mine", 4);
  cred.cookie = "mercureAuthorization=old; __Secure-mercure_access_token=new";
  assert_null(sl__auth_token(&cred, &len, &malformed));
  cred.cookie = "xhubTok=no; hubTokX=no";
  assert_null(sl__auth_token(&cred, &len, &malformed));
  cred = (sl_credentials_t){.authorization = "Bearer head", .cookie = "hubTok=mine",
                            .cookie_name = "hubTok"};
  tok = sl__auth_token(&cred, &len, &malformed);
  assert_non_null(tok);
  assert_memory_equal(tok, "head", 4);
}

/* --publish-origin: a cookie publish from a listed origin (compared normalised) passes; the
 * Host-based check applies only when publish_same_host says so. */
static void test_publish_origin_list(void **state) {
  (void)state;
  static const char csrf[] =
      "a publish authorized by cookie must come from a page of an origin this hub trusts (its "
      "Origin, else Referer, header must name the hub's own origin or one --publish-origin "
      "lists), against cross-site request forgery; or send the token in an Authorization header";
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  char *tok = mint(PUB_KEY);
  char *ck = cookie("mercureAuthorization", tok);
  char why[200];
  sl_origins_t list;
  assert_int_equal(sl__origins_parse(&list, "https://app.example, http://127.0.0.1:3000", 0,
                                     why, sizeof why), 0);
  const char *host = "hub.example";
  sl_credentials_t cred = {.cookie = ck, .origin = "HTTPS://app.example:443", .host = host,
                           .publish_origins = &list};
  expect_ok(auth, NULL, SL_ROLE_PUBLISHER, &cred);
  cred.origin = NULL;
  cred.referer = "http://127.0.0.1:3000/page?x=1";
  expect_ok(auth, NULL, SL_ROLE_PUBLISHER, &cred);
  cred.referer = NULL;
  cred.origin = "https://hub.example";
  expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);
  cred.publish_same_host = 1;
  expect_ok(auth, NULL, SL_ROLE_PUBLISHER, &cred);
  cred.origin = "https://app.example.evil.example";
  expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);
  cred.origin = "http://127.0.0.1:3001";
  expect_refused(auth, NULL, SL_ROLE_PUBLISHER, &cred, -EPERM, 1, 403, NULL, csrf);
  sl__origins_free(&list);
  free(ck);
  free(tok);
  sl__auth_free(auth);
}

/* A token verified once is taken from the cache the next time: a second sl_auth_t whose key
 * would refuse it still lets it through with the same cache, and refuses it without one. */
static void test_cache_hit_skips_verify(void **state) {
  (void)state;
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  sl_auth_t *other = auth_with("another-publisher-key-32-bytes!!", SUB_KEY);
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  assert_non_null(cache);
  char *tok = mint(PUB_KEY);
  char *header = bearer(tok);
  sl_credentials_t cred = {.authorization = header};

  expect_refused(other, cache, SL_ROLE_PUBLISHER, &cred, -EACCES, 1, 401, CHALLENGE("bad signature"),
                 "the publisher token is not valid: bad signature");
  expect_ok(auth, cache, SL_ROLE_PUBLISHER, &cred);
  expect_ok(other, cache, SL_ROLE_PUBLISHER, &cred);
  expect_refused(other, NULL, SL_ROLE_PUBLISHER, &cred, -EACCES, 1, 401, CHALLENGE("bad signature"),
                 "the publisher token is not valid: bad signature");
  /* The entry is for the role it was verified for. */
  expect_refused(other, cache, SL_ROLE_SUBSCRIBER, &cred, -EACCES, 1, 401, CHALLENGE("bad signature"),
                 "the subscriber token is not valid: bad signature");

  free(header);
  free(tok);
  sl__auth_cache_free(cache);
  sl__auth_free(other);
  sl__auth_free(auth);
}

static void test_no_key_for_role(void **state) {
  (void)state;
  sl_auth_t *pub_only = auth_with(PUB_KEY, NULL);
  sl_auth_t *sub_only = auth_with(NULL, SUB_KEY);
  char *tok = mint(PUB_KEY);
  char *header = bearer(tok);
  sl_credentials_t cred = {.authorization = header};
  expect_refused(pub_only, NULL, SL_ROLE_SUBSCRIBER, &cred, -ENOKEY, 1, 401, INVALID_TOKEN,
                 "this hub has no subscriber key configured (--jwt-key, --jwks-file or "
                 "--subscriber-jwt-key, --subscriber-jwt-key-file or --subscriber-jwks-file)");
  expect_refused(sub_only, NULL, SL_ROLE_PUBLISHER, &cred, -ENOKEY, 1, 401, INVALID_TOKEN,
                 "this hub has no publisher key configured (--jwt-key, --jwks-file or "
                 "--publisher-jwt-key, --publisher-jwt-key-file or --publisher-jwks-file)");
  free(header);
  free(tok);
  sl__auth_free(sub_only);
  sl__auth_free(pub_only);
}

static void test_invalid_token(void **state) {
  (void)state;
  sl_auth_t *auth = auth_with(PUB_KEY, SUB_KEY);
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  assert_non_null(cache);
  char *sub_tok = mint(SUB_KEY);
  char *header = bearer(sub_tok);
  /* Signed with the other role's key. */
  sl_credentials_t cred = {.authorization = header};
  expect_refused(auth, cache, SL_ROLE_PUBLISHER, &cred, -EACCES, 1, 401, CHALLENGE("bad signature"),
                 "the publisher token is not valid: bad signature");
  /* Not a JWT at all, by header and by cookie. */
  cred = (sl_credentials_t){.authorization = "Bearer not-a-jwt"};
  expect_refused(auth, cache, SL_ROLE_SUBSCRIBER, &cred, -EACCES, 1, 401,
                 CHALLENGE("not a compact JWS"),
                 "the subscriber token is not valid: not a compact JWS");
  cred = (sl_credentials_t){.cookie = "mercureAuthorization=not.a.jwt"};
  expect_refused(auth, cache, SL_ROLE_SUBSCRIBER, &cred, -EACCES, 1, 401,
                 CHALLENGE("malformed header"),
                 "the subscriber token is not valid: malformed header");
  /* A refused token is not remembered: it is refused again with the cache. */
  cred = (sl_credentials_t){.authorization = header};
  expect_refused(auth, cache, SL_ROLE_PUBLISHER, &cred, -EACCES, 1, 401, CHALLENGE("bad signature"),
                 "the publisher token is not valid: bad signature");
  free(header);
  free(sub_tok);
  sl__auth_cache_free(cache);
  sl__auth_free(auth);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_no_token),
    cmocka_unit_test(test_token_found),
    cmocka_unit_test(test_header_wins_over_cookie),
    cmocka_unit_test(test_both_cookie_names),
    cmocka_unit_test(test_malformed_authorization),
    cmocka_unit_test(test_cookie_publish_origin),
    cmocka_unit_test(test_configured_cookie_name),
    cmocka_unit_test(test_publish_origin_list),
    cmocka_unit_test(test_cache_hit_skips_verify),
    cmocka_unit_test(test_no_key_for_role),
    cmocka_unit_test(test_invalid_token),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
