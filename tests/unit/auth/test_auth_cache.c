/* test_auth_cache.c — auth_cache.c and sl__claims_copy: hits hand back an independent copy of the
 * stored claims; anything but the same role and the very same bytes misses; entries stop at exp
 * and when the clock goes back; tokens over the size bound are not kept; a slot keeps only its
 * newest token; and nothing leaks (the suite also runs under ASan).
 *
 * This file includes auth_cache.c itself, so that one test can plant an entry whose hash equals
 * that of another token: the collision no search could find, which must still miss.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <errno.h>

#include "../../../src/auth/auth_cache.c"

#define NOW ((int64_t)1767225300)
#define PUB_KEY "publisher-key-0123456789abcdef0123456789"

/* Test tokens live in exact-size heap copies, so that ASan flags any read past len. */
struct token {
  char *bytes;
  size_t len;
};

static struct token token_of(const char *text) {
  struct token t = {malloc(strlen(text) ? strlen(text) : 1), strlen(text)};
  assert_non_null(t.bytes);
  memcpy(t.bytes, text, t.len);
  return t;
}

/* A token of len bytes of base64url characters, in a pattern that seed shifts. */
static struct token token_filled(size_t len, unsigned seed) {
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  struct token t = {malloc(len), len};
  assert_non_null(t.bytes);
  for (size_t i = 0; i < len; i++)
    t.bytes[i] = alphabet[(i * 7 + seed) % 64];
  return t;
}

static void token_free(struct token *t) {
  free(t->bytes);
  t->bytes = NULL;
}

/* Claims as sl__auth_verify would return them, built from string lists ("*" is the wildcard). */
static sl_claims_t make_claims(const char *const *publish, size_t np, const char *const *subscribe,
                               size_t ns, int64_t exp) {
  sl_selector_t pub[8], sub[8];
  assert_true(np <= 8 && ns <= 8);
  for (size_t i = 0; i < np; i++)
    pub[i] = (sl_selector_t){.kind = strcmp(publish[i], "*") ? SL_SELECTOR_EXACT : SL_SELECTOR_ANY,
                             .text = publish[i], .len = (uint32_t)strlen(publish[i])};
  for (size_t i = 0; i < ns; i++)
    sub[i] = (sl_selector_t){.kind = strcmp(subscribe[i], "*") ? SL_SELECTOR_EXACT : SL_SELECTOR_ANY,
                             .text = subscribe[i], .len = (uint32_t)strlen(subscribe[i])};
  sl_claims_t src = {.publish = np ? pub : NULL, .publish_count = np,
                     .subscribe = ns ? sub : NULL, .subscribe_count = ns, .exp = exp};
  sl_claims_t out;
  assert_int_equal(sl__claims_copy(&out, &src), 0);
  return out;
}

static const char *const PUBLISH[] = {"https://example.com/books/1", "*", "urn:x:2"};
static const char *const SUBSCRIBE[] = {"https://example.com/users/42", "https://example.com/a"};

static sl_claims_t sample_claims(int64_t exp) {
  return make_claims(PUBLISH, 3, SUBSCRIBE, 2, exp);
}

static void assert_selectors_equal(const sl_selector_t *a, const sl_selector_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(a[i].kind, b[i].kind);
    assert_int_equal(a[i].len, b[i].len);
    assert_memory_equal(a[i].text, b[i].text, a[i].len);
    assert_int_equal(a[i].text[a[i].len], '\0');
    /* Nothing shared: the copy's strings are its own. */
    assert_ptr_not_equal(a[i].text, b[i].text);
  }
}

/* Equal content, in distinct memory. */
static void assert_claims_equal(const sl_claims_t *a, const sl_claims_t *b) {
  assert_int_equal(a->exp, b->exp);
  assert_int_equal(a->publish_count, b->publish_count);
  assert_int_equal(a->subscribe_count, b->subscribe_count);
  assert_true(!a->publish_count || a->publish != b->publish);
  assert_true(!a->subscribe_count || a->subscribe != b->subscribe);
  assert_selectors_equal(a->publish, b->publish, a->publish_count);
  assert_selectors_equal(a->subscribe, b->subscribe, a->subscribe_count);
}

/* get, expecting a miss: -ENOENT and *claims left empty even when it held garbage. */
static void expect_miss(sl_auth_cache_t *cache, sl_role_t role, const struct token *t,
                        int64_t now) {
  sl_claims_t c;
  memset(&c, 0xa5, sizeof(c));
  assert_int_equal(sl__auth_cache_get(cache, role, t->bytes, t->len, now, &c), -ENOENT);
  assert_null(c.publish);
  assert_null(c.subscribe);
  assert_int_equal(c.publish_count, 0);
  assert_int_equal(c.subscribe_count, 0);
  assert_int_equal(c.exp, 0);
}

/* get, expecting a hit with claims equal to want. */
static void expect_hit(sl_auth_cache_t *cache, sl_role_t role, const struct token *t, int64_t now,
                       const sl_claims_t *want) {
  sl_claims_t c;
  assert_int_equal(sl__auth_cache_get(cache, role, t->bytes, t->len, now, &c), 0);
  assert_claims_equal(&c, want);
  sl__claims_free(&c);
}

static void test_claims_copy_empty(void **state) {
  (void)state;
  sl_claims_t src = {0}, dst;
  memset(&dst, 0xa5, sizeof(dst));
  assert_int_equal(sl__claims_copy(&dst, &src), 0);
  assert_null(dst.publish);
  assert_null(dst.subscribe);
  assert_int_equal(dst.publish_count + dst.subscribe_count, 0);
  assert_int_equal(dst.exp, 0);
  sl__claims_free(&dst);
  /* Only an exp. */
  src.exp = NOW;
  assert_int_equal(sl__claims_copy(&dst, &src), 0);
  assert_int_equal(dst.exp, NOW);
  assert_null(dst.publish);
  assert_null(dst.subscribe);
  sl__claims_free(&dst);
}

static void test_claims_copy_selectors(void **state) {
  (void)state;
  char a[] = "https://example.com/a", star[] = "*", b[] = "urn:b";
  sl_selector_t pub[] = {{.kind = SL_SELECTOR_EXACT, .text = a, .len = sizeof(a) - 1}, {.kind = SL_SELECTOR_ANY, .text = star, .len = 1}};
  sl_selector_t sub[] = {{.kind = SL_SELECTOR_EXACT, .text = b, .len = sizeof(b) - 1}, {.kind = SL_SELECTOR_EXACT, .text = star, .len = 1},
                         {.kind = SL_SELECTOR_EXACT, .text = a, .len = sizeof(a) - 1}};
  sl_claims_t src = {.publish = pub, .publish_count = 2, .subscribe = sub, .subscribe_count = 3,
                     .exp = NOW + 60};
  sl_claims_t dst;
  assert_int_equal(sl__claims_copy(&dst, &src), 0);
  assert_claims_equal(&dst, &src);
  assert_string_equal(dst.publish[0].text, "https://example.com/a");
  assert_int_equal(dst.publish[1].kind, SL_SELECTOR_ANY);
  /* An exact "*" stays a literal. */
  assert_int_equal(dst.subscribe[1].kind, SL_SELECTOR_EXACT);
  assert_false(sl__selectors_match(dst.subscribe, dst.subscribe_count, "urn:other", 9));
  assert_true(sl__selectors_match(dst.publish, dst.publish_count, "urn:other", 9));
  /* Independent: changing the source leaves the copy as it was. */
  a[0] = 'H';
  pub[1].kind = SL_SELECTOR_EXACT;
  assert_string_equal(dst.publish[0].text, "https://example.com/a");
  assert_string_equal(dst.subscribe[2].text, "https://example.com/a");
  assert_int_equal(dst.publish[1].kind, SL_SELECTOR_ANY);
  /* Only one role granted: the other stays NULL. */
  sl_claims_t one = {.subscribe = sub, .subscribe_count = 1}, dst2;
  assert_int_equal(sl__claims_copy(&dst2, &one), 0);
  assert_null(dst2.publish);
  assert_int_equal(dst2.subscribe_count, 1);
  assert_string_equal(dst2.subscribe[0].text, "urn:b");
  /* A copy of a copy, each freed on its own (ASan catches a shared block). */
  sl_claims_t dst3;
  assert_int_equal(sl__claims_copy(&dst3, &dst), 0);
  sl__claims_free(&dst);
  assert_string_equal(dst3.subscribe[0].text, "urn:b");
  assert_int_equal(dst3.exp, NOW + 60);
  sl__claims_free(&dst3);
  sl__claims_free(&dst2);
}

/* Claims straight from sl__auth_verify round-trip through the copy. */
static void test_claims_copy_verified(void **state) {
  (void)state;
  const char *publish[] = {"https://example.com/books/1", "*"};
  char *jwt = NULL;
  assert_int_equal(sl__token_mint(PUB_KEY, publish, 2, NULL, 0, 3600, NULL, NULL, &jwt), 0);
  sl_auth_t *auth = NULL;
  sl_auth_config_t cfg = {.key = {PUB_KEY, NULL}, .legacy = 1};
  assert_int_equal(sl__auth_new(&auth, &cfg, NULL, 0), 0);
  sl_claims_t verified, copy;
  const char *why;
  int64_t now = (int64_t)time(NULL);
  assert_int_equal(sl__auth_verify(auth, SL_ROLE_PUBLISHER, jwt, strlen(jwt), now, &verified, &why),
                   0);
  assert_int_equal(sl__claims_copy(&copy, &verified), 0);
  assert_claims_equal(&copy, &verified);
  assert_true(copy.exp > now);

  /* The cache with real claims: put, free what verify gave, get them back. */
  sl_auth_cache_t *cache = sl__auth_cache_new(16);
  assert_non_null(cache);
  struct token t = token_of(jwt);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, now, &verified);
  sl__claims_free(&verified);
  expect_hit(cache, SL_ROLE_PUBLISHER, &t, now, &copy);
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, copy.exp);
  sl__auth_cache_free(cache);
  token_free(&t);
  sl__claims_free(&copy);
  sl__auth_free(auth);
  free(jwt);
}

static void test_miss_on_empty(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  assert_non_null(cache);
  struct token t = token_of("aaa.bbb.ccc");
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, NOW);
  expect_miss(cache, SL_ROLE_SUBSCRIBER, &t, NOW);
  sl__auth_cache_free(cache);
  /* A NULL cache is an empty one; freeing it is allowed. */
  expect_miss(NULL, SL_ROLE_PUBLISHER, &t, NOW);
  sl_claims_t c = sample_claims(0);
  sl__auth_cache_put(NULL, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &c);
  sl__auth_cache_free(NULL);
  sl__claims_free(&c);
  token_free(&t);
}

static void test_put_get(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  assert_non_null(cache);
  struct token t = token_of("eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7fX0.c2lnbmF0dXJl");
  sl_claims_t put = sample_claims(NOW + 3600);
  sl_claims_t want = sample_claims(NOW + 3600);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &put);
  /* The cache copied them: the caller's claims are its own to free. */
  sl__claims_free(&put);

  sl_claims_t c;
  assert_int_equal(sl__auth_cache_get(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW + 5, &c), 0);
  assert_claims_equal(&c, &want);
  assert_int_equal(c.publish[1].kind, SL_SELECTOR_ANY);
  assert_string_equal(c.subscribe[0].text, "https://example.com/users/42");
  /* An independent copy: scribbling on it and freeing it leaves the cache intact. */
  ((char *)c.publish[0].text)[0] = 'X'; /* the claims own the block the text lives in */
  c.publish[1].kind = SL_SELECTOR_EXACT;
  c.subscribe[1].len = 1;
  sl__claims_free(&c);
  expect_hit(cache, SL_ROLE_PUBLISHER, &t, NOW + 6, &want);
  /* Two copies alive at once do not share memory either. */
  sl_claims_t c1, c2;
  assert_int_equal(sl__auth_cache_get(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &c1), 0);
  assert_int_equal(sl__auth_cache_get(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &c2), 0);
  assert_claims_equal(&c1, &c2);
  sl__claims_free(&c1);
  sl__claims_free(&c2);

  /* The caller's buffer is not kept: the same bytes elsewhere hit. */
  struct token again = token_of("eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7fX0.c2lnbmF0dXJl");
  token_free(&t);
  expect_hit(cache, SL_ROLE_PUBLISHER, &again, NOW + 7, &want);
  token_free(&again);
  sl__claims_free(&want);
  sl__auth_cache_free(cache);
}

/* Claims without exp never expire in the cache; empty claims are cached as they are. */
static void test_no_exp_and_empty_claims(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  struct token t = token_of("no.exp.token");
  sl_claims_t c = sample_claims(0), empty = {0};
  sl__auth_cache_put(cache, SL_ROLE_SUBSCRIBER, t.bytes, t.len, NOW, &c);
  expect_hit(cache, SL_ROLE_SUBSCRIBER, &t, NOW + 100 * 365 * 86400LL, &c);
  expect_hit(cache, SL_ROLE_SUBSCRIBER, &t, INT64_MAX, &c);
  sl__auth_cache_put(cache, SL_ROLE_SUBSCRIBER, t.bytes, t.len, NOW, &empty);
  sl_claims_t got;
  memset(&got, 0xa5, sizeof(got));
  assert_int_equal(sl__auth_cache_get(cache, SL_ROLE_SUBSCRIBER, t.bytes, t.len, NOW, &got), 0);
  assert_null(got.publish);
  assert_null(got.subscribe);
  assert_int_equal(got.publish_count + got.subscribe_count, 0);
  assert_int_equal(got.exp, 0);
  sl__claims_free(&got);
  sl__claims_free(&c);
  token_free(&t);
  sl__auth_cache_free(cache);
}

static void test_other_role_misses(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(64);
  struct token t = token_of("shared.token.bytes");
  sl_claims_t c = sample_claims(0);
  sl__auth_cache_put(cache, SL_ROLE_SUBSCRIBER, t.bytes, t.len, NOW, &c);
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, NOW);
  expect_hit(cache, SL_ROLE_SUBSCRIBER, &t, NOW, &c);
  sl__claims_free(&c);
  token_free(&t);
  sl__auth_cache_free(cache);
}

/* Every way of being almost the stored token misses: each single byte changed, same length
 * other bytes, a prefix, an extension. */
static void test_other_bytes_miss(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(1024);
  struct token t = token_of("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AbCdEfGhIjKlMnOpQrStUvWxYz");
  sl_claims_t c = sample_claims(NOW + 60);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &c);
  expect_hit(cache, SL_ROLE_PUBLISHER, &t, NOW, &c);

  struct token v = token_of("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AbCdEfGhIjKlMnOpQrStUvWxYz");
  for (size_t i = 0; i < v.len; i++) {
    char was = v.bytes[i];
    v.bytes[i] = (char)(was ^ 1);
    expect_miss(cache, SL_ROLE_PUBLISHER, &v, NOW);
    v.bytes[i] = was;
  }
  expect_hit(cache, SL_ROLE_PUBLISHER, &v, NOW, &c);

  struct token same_len = token_filled(t.len, 7);
  expect_miss(cache, SL_ROLE_PUBLISHER, &same_len, NOW);
  struct token prefix = {t.bytes, t.len - 1};
  expect_miss(cache, SL_ROLE_PUBLISHER, &prefix, NOW);
  struct token longer =
    token_of("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AbCdEfGhIjKlMnOpQrStUvWxYzA");
  expect_miss(cache, SL_ROLE_PUBLISHER, &longer, NOW);
  struct token none = {t.bytes, 0};
  expect_miss(cache, SL_ROLE_PUBLISHER, &none, NOW);
  /* None of those misses disturbed the entry. */
  expect_hit(cache, SL_ROLE_PUBLISHER, &t, NOW, &c);
  token_free(&longer);
  token_free(&same_len);
  token_free(&v);
  token_free(&t);
  sl__claims_free(&c);
  sl__auth_cache_free(cache);
}

/* An entry planted with the hash of another token (another role, or the same length with one
 * byte changed) still misses for that token: the hash is never trusted alone. */
static void test_hash_collision_misses(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(1);
  struct token t = token_of("stored.token.bytes");
  struct token u = token_of("stored.token.bytes");
  struct token w = token_of("stored.token.bytes.longer");
  sl_claims_t c = sample_claims(0);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &c);
  struct slot *s = &cache->slots[0];
  assert_non_null(s->token);

  s->hash = hash_token(cache->seed, SL_ROLE_SUBSCRIBER, t.bytes, t.len);
  expect_miss(cache, SL_ROLE_SUBSCRIBER, &t, NOW);
  /* One byte changed, at every position (whole words and the tail are compared apart). */
  for (size_t i = 0; i < u.len; i++) {
    memcpy(u.bytes, t.bytes, t.len);
    u.bytes[i] ^= 0x40;
    s->hash = hash_token(cache->seed, SL_ROLE_PUBLISHER, u.bytes, u.len);
    expect_miss(cache, SL_ROLE_PUBLISHER, &u, NOW);
  }
  s->hash = hash_token(cache->seed, SL_ROLE_PUBLISHER, w.bytes, w.len);
  expect_miss(cache, SL_ROLE_PUBLISHER, &w, NOW);
  /* With its own hash back, the entry hits again: the misses above were the guards at work. */
  s->hash = hash_token(cache->seed, SL_ROLE_PUBLISHER, t.bytes, t.len);
  expect_hit(cache, SL_ROLE_PUBLISHER, &t, NOW, &c);
  token_free(&t);
  token_free(&u);
  token_free(&w);
  sl__claims_free(&c);
  sl__auth_cache_free(cache);
}

/* The seed is per cache and the hash depends on role, length and every byte. */
static void test_hash_spread(void **state) {
  (void)state;
  uint64_t seed = 0x0123456789abcdefull;
  const char text[] = "abcdefghijklmnopqrstuvwxyz0123";
  uint64_t base = hash_token(seed, SL_ROLE_PUBLISHER, text, sizeof(text) - 1);
  assert_int_equal(base, hash_token(seed, SL_ROLE_PUBLISHER, text, sizeof(text) - 1));
  assert_true(base != hash_token(seed + 1, SL_ROLE_PUBLISHER, text, sizeof(text) - 1));
  assert_true(base != hash_token(seed, SL_ROLE_SUBSCRIBER, text, sizeof(text) - 1));
  for (size_t len = 0; len < sizeof(text) - 1; len++)
    assert_true(base != hash_token(seed, SL_ROLE_PUBLISHER, text, len));
  char copy[sizeof(text)];
  for (size_t i = 0; i < sizeof(text) - 1; i++) {
    memcpy(copy, text, sizeof(text));
    copy[i] ^= 0x20;
    assert_true(base != hash_token(seed, SL_ROLE_PUBLISHER, copy, sizeof(text) - 1));
  }
  /* A zero byte at the end is not the same as no byte (the tail is zero-padded). */
  const char zeros[3] = {'a', 0, 0};
  assert_true(hash_token(seed, SL_ROLE_PUBLISHER, zeros, 1) !=
              hash_token(seed, SL_ROLE_PUBLISHER, zeros, 2));
  /* 1024 tokens that differ in one counter spread over 64 slots: none gets more than 48. */
  unsigned counts[64] = {0};
  char tok[32];
  for (unsigned i = 0; i < 1024; i++) {
    int n = snprintf(tok, sizeof(tok), "token-%u", i);
    counts[hash_token(seed, SL_ROLE_PUBLISHER, tok, (size_t)n) & 63]++;
  }
  for (size_t i = 0; i < 64; i++)
    assert_true(counts[i] <= 48);
}

static void test_expiry(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  struct token t = token_of("expiring.token.x");
  sl_claims_t c = sample_claims(NOW + 10);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &c);
  expect_hit(cache, SL_ROLE_PUBLISHER, &t, NOW, &c);
  expect_hit(cache, SL_ROLE_PUBLISHER, &t, NOW + 9, &c);
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, NOW + 10);
  /* The expired entry was dropped: not even an earlier now finds it again. */
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, NOW + 9);
  assert_null(cache->slots[hash_token(cache->seed, SL_ROLE_PUBLISHER, t.bytes, t.len) &
                           cache->mask].token);

  /* Put again, then long past exp. */
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW, &c);
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, NOW + 1000000);
  /* Claims already expired when put are not stored. */
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW + 10, &c);
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, NOW + 5);
  expect_miss(cache, SL_ROLE_PUBLISHER, &t, NOW + 10);
  sl__auth_cache_free(cache);
  /* ... so they do not evict what a slot holds. */
  cache = sl__auth_cache_new(1);
  struct token keep = token_of("kept.token.z");
  sl_claims_t forever = sample_claims(0);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, keep.bytes, keep.len, NOW, &forever);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, t.bytes, t.len, NOW + 11, &c);
  expect_hit(cache, SL_ROLE_PUBLISHER, &keep, NOW + 11, &forever);
  sl__claims_free(&forever);
  token_free(&keep);
  sl__claims_free(&c);
  token_free(&t);
  sl__auth_cache_free(cache);
}

static void test_clock_back(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  struct token t = token_of("clock.token.y");
  sl_claims_t c = sample_claims(NOW + 3600);
  sl__auth_cache_put(cache, SL_ROLE_SUBSCRIBER, t.bytes, t.len, NOW, &c);
  expect_hit(cache, SL_ROLE_SUBSCRIBER, &t, NOW, &c);
  expect_miss(cache, SL_ROLE_SUBSCRIBER, &t, NOW - 1);
  /* Dropped: the caller verifies again and puts it back with the time it has now. */
  expect_miss(cache, SL_ROLE_SUBSCRIBER, &t, NOW);
  sl__auth_cache_put(cache, SL_ROLE_SUBSCRIBER, t.bytes, t.len, NOW - 1, &c);
  expect_hit(cache, SL_ROLE_SUBSCRIBER, &t, NOW - 1, &c);
  expect_miss(cache, SL_ROLE_SUBSCRIBER, &t, NOW - 2);
  sl__claims_free(&c);
  token_free(&t);
  sl__auth_cache_free(cache);
}

static void test_size_bound(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(8);
  struct token longest = token_filled(SL_AUTH_CACHE_MAX_TOKEN, 1);
  struct token too_long = token_filled(SL_AUTH_CACHE_MAX_TOKEN + 1, 2);
  struct token huge = token_filled(16384, 3);
  sl_claims_t c = sample_claims(0);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, too_long.bytes, too_long.len, NOW, &c);
  expect_miss(cache, SL_ROLE_PUBLISHER, &too_long, NOW);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, huge.bytes, huge.len, NOW, &c);
  expect_miss(cache, SL_ROLE_PUBLISHER, &huge, NOW);
  for (size_t i = 0; i <= cache->mask; i++)
    assert_null(cache->slots[i].token);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, longest.bytes, longest.len, NOW, &c);
  expect_hit(cache, SL_ROLE_PUBLISHER, &longest, NOW, &c);
  /* The longest token with one more byte is not it. */
  struct token extended = token_filled(SL_AUTH_CACHE_MAX_TOKEN + 1, 1);
  memcpy(extended.bytes, longest.bytes, longest.len);
  expect_miss(cache, SL_ROLE_PUBLISHER, &extended, NOW);
  /* An empty token is never stored. */
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, longest.bytes, 0, NOW, &c);
  struct token empty = {longest.bytes, 0};
  expect_miss(cache, SL_ROLE_PUBLISHER, &empty, NOW);
  token_free(&extended);
  token_free(&longest);
  token_free(&too_long);
  token_free(&huge);
  sl__claims_free(&c);
  sl__auth_cache_free(cache);
}

/* A cache of one slot: every token shares it, and it keeps only the newest. */
static void test_slot_replacement(void **state) {
  (void)state;
  sl_auth_cache_t *cache = sl__auth_cache_new(1);
  assert_non_null(cache);
  assert_int_equal(cache->mask, 0);
  struct token a = token_of("token.number.one");
  struct token b = token_of("token.number.two");
  const char *pa[] = {"urn:a"}, *pb[] = {"urn:b", "*"};
  sl_claims_t ca = make_claims(pa, 1, NULL, 0, NOW + 100);
  sl_claims_t cb = make_claims(pb, 2, pa, 1, 0);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, a.bytes, a.len, NOW, &ca);
  expect_hit(cache, SL_ROLE_PUBLISHER, &a, NOW, &ca);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, b.bytes, b.len, NOW, &cb);
  expect_hit(cache, SL_ROLE_PUBLISHER, &b, NOW, &cb);
  expect_miss(cache, SL_ROLE_PUBLISHER, &a, NOW);
  sl__auth_cache_put(cache, SL_ROLE_PUBLISHER, a.bytes, a.len, NOW, &ca);
  expect_hit(cache, SL_ROLE_PUBLISHER, &a, NOW, &ca);
  expect_miss(cache, SL_ROLE_PUBLISHER, &b, NOW);
  /* The same token for the other role takes the slot too. */
  sl__auth_cache_put(cache, SL_ROLE_SUBSCRIBER, a.bytes, a.len, NOW, &cb);
  expect_hit(cache, SL_ROLE_SUBSCRIBER, &a, NOW, &cb);
  expect_miss(cache, SL_ROLE_PUBLISHER, &a, NOW);
  /* Putting the same token again replaces its claims. */
  sl__auth_cache_put(cache, SL_ROLE_SUBSCRIBER, a.bytes, a.len, NOW + 1, &ca);
  expect_hit(cache, SL_ROLE_SUBSCRIBER, &a, NOW + 1, &ca);
  sl__claims_free(&ca);
  sl__claims_free(&cb);
  token_free(&a);
  token_free(&b);
  sl__auth_cache_free(cache);
  /* 0 entries rounds up to one slot, 5 to 8, 8 stays 8. */
  cache = sl__auth_cache_new(0);
  assert_non_null(cache);
  assert_int_equal(cache->mask, 0);
  sl__auth_cache_free(cache);
  cache = sl__auth_cache_new(5);
  assert_int_equal(cache->mask, 7);
  sl__auth_cache_free(cache);
  cache = sl__auth_cache_new(8);
  assert_int_equal(cache->mask, 7);
  sl__auth_cache_free(cache);
  assert_null(sl__auth_cache_new(SIZE_MAX));
}

static sl_role_t role_of(unsigned i) {
  return i % 2 ? SL_ROLE_PUBLISHER : SL_ROLE_SUBSCRIBER;
}

static struct token numbered_token(unsigned i) {
  char text[64];
  snprintf(text, sizeof(text), "hdr.payload-%u.sig", i);
  return token_of(text);
}

/* Token i grants publishing on topic i; one in three has no exp. */
static sl_claims_t numbered_claims(unsigned i) {
  char topic[64];
  snprintf(topic, sizeof(topic), "https://example.com/t/%u", i);
  const char *p[] = {topic};
  return make_claims(p, 1, NULL, 0, i % 3 ? NOW + 1000 : 0);
}

/* Many tokens through a small cache: every hit carries that token's own claims (never another's),
 * exactly the last token put into each slot is still there, and at the end nothing has leaked
 * (ASan's leak check). */
static void test_many(void **state) {
  (void)state;
  enum { N = 2000, SLOTS = 64 };
  sl_auth_cache_t *cache = sl__auth_cache_new(SLOTS);
  unsigned last[SLOTS];
  memset(last, 0xff, sizeof(last));
  size_t mid_hits = 0;
  for (unsigned i = 0; i < N; i++) {
    struct token t = numbered_token(i);
    sl_claims_t c = numbered_claims(i);
    sl__auth_cache_put(cache, role_of(i), t.bytes, t.len, NOW, &c);
    last[hash_token(cache->seed, role_of(i), t.bytes, t.len) & cache->mask] = i;
    expect_hit(cache, role_of(i), &t, NOW, &c);
    expect_miss(cache, role_of(i + 1), &t, NOW);
    token_free(&t);
    sl__claims_free(&c);
    /* An earlier token: present or not, a hit must be its own. */
    unsigned j = i * 7919u % (i + 1);
    t = numbered_token(j);
    c = numbered_claims(j);
    sl_claims_t got;
    int r = sl__auth_cache_get(cache, role_of(j), t.bytes, t.len, NOW + 1, &got);
    int present = last[hash_token(cache->seed, role_of(j), t.bytes, t.len) & cache->mask] == j;
    assert_int_equal(r, present ? 0 : -ENOENT);
    if (!r) {
      mid_hits++;
      assert_claims_equal(&got, &c);
    }
    sl__claims_free(&got);
    sl__claims_free(&c);
    token_free(&t);
  }
  assert_true(mid_hits > 0);
  /* Afterwards: exactly one token per used slot, the last one put there. */
  size_t hits = 0, used = 0;
  for (size_t k = 0; k < SLOTS; k++)
    used += last[k] != UINT_MAX;
  for (unsigned j = 0; j < N; j++) {
    struct token t = numbered_token(j);
    int present = last[hash_token(cache->seed, role_of(j), t.bytes, t.len) & cache->mask] == j;
    sl_claims_t got;
    int r = sl__auth_cache_get(cache, role_of(j), t.bytes, t.len, NOW + 2, &got);
    assert_int_equal(r, present ? 0 : -ENOENT);
    hits += !r;
    sl__claims_free(&got);
    token_free(&t);
  }
  assert_int_equal(hits, used);
  assert_true(used > SLOTS / 2);
  sl__auth_cache_free(cache);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_claims_copy_empty),
    cmocka_unit_test(test_claims_copy_selectors),
    cmocka_unit_test(test_claims_copy_verified),
    cmocka_unit_test(test_miss_on_empty),
    cmocka_unit_test(test_put_get),
    cmocka_unit_test(test_no_exp_and_empty_claims),
    cmocka_unit_test(test_other_role_misses),
    cmocka_unit_test(test_other_bytes_miss),
    cmocka_unit_test(test_hash_collision_misses),
    cmocka_unit_test(test_hash_spread),
    cmocka_unit_test(test_expiry),
    cmocka_unit_test(test_clock_back),
    cmocka_unit_test(test_size_bound),
    cmocka_unit_test(test_slot_replacement),
    cmocka_unit_test(test_many),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
