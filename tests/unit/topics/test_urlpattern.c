/* test_urlpattern.c — urlpattern.c, nfa.c and url.c: vectors written from the URL Pattern
 * standard's text (named groups, segment and full wildcards, regexp groups, optional and
 * repeated groups, escapes, per-component matching, relative patterns against the hub's URL,
 * hostname case, default ports), invalid patterns each refused with a reason, and pathological
 * patterns against long inputs whose automaton work is counted, not timed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topics/nfa.h"
#include "topics/url.h"
#include "topics/urlpattern.h"

#define BASE "https://hub.example.com/.well-known/mercure"

static sl_urlpattern_t *compile(const char *pattern) {
  sl_urlpattern_t *p = NULL;
  const char *why = NULL;
  int r = sl__urlpattern_compile(&p, pattern, strlen(pattern), BASE, &why);
  if (r)
    fail_msg("pattern %s: %d (%s)", pattern, r, why ? why : "?");
  return p;
}

/* 1/0 for a topic, -1 when it does not parse as a URL. */
static int match(const sl_urlpattern_t *p, const char *topic, uint64_t *steps) {
  sl_url_t url;
  if (sl__url_parse(&url, topic, strlen(topic), BASE))
    return -1;
  int r = sl__urlpattern_match(p, &url, steps);
  sl__url_free(&url);
  return r;
}

typedef struct vec_s {
  const char *pattern;
  const char *topic;
  int want;
} vec_t;

static void run(const vec_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sl_urlpattern_t *p = compile(v[i].pattern);
    int got = match(p, v[i].topic, NULL);
    if (got != v[i].want)
      fail_msg("pattern %s, topic %s: got %d, want %d", v[i].pattern, v[i].topic, got, v[i].want);
    sl__urlpattern_free(p);
  }
}

static void test_named_groups(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/books/:id", "https://example.com/books/1", 1},
      {"https://example.com/books/:id", "https://example.com/books/abc-def", 1},
      /* a named group is one segment: not empty, no '/' */
      {"https://example.com/books/:id", "https://example.com/books/", 0},
      {"https://example.com/books/:id", "https://example.com/books/1/2", 0},
      {"https://example.com/books/:id", "https://example.com/books", 0},
      /* search and hash not given in the string: wildcards */
      {"https://example.com/books/:id", "https://example.com/books/1?x=1#frag", 1},
      {"https://example.com/:a/:b", "https://example.com/x/y", 1},
      {"https://example.com/:a/:b", "https://example.com/x", 0},
      /* a name followed by a regexp constrains it */
      {"https://example.com/books/:id(\\d+)", "https://example.com/books/42", 1},
      {"https://example.com/books/:id(\\d+)", "https://example.com/books/4x", 0},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_wildcards(void **state) {
  (void)state;
  static const vec_t v[] = {
      /* "*" is the full wildcard: any length, '/' included, empty too */
      {"https://example.com/books/*", "https://example.com/books/", 1},
      {"https://example.com/books/*", "https://example.com/books/a/b/c", 1},
      {"https://example.com/books/*", "https://example.com/book", 0},
      {"https://example.com/*/edit", "https://example.com/a/b/edit", 1},
      {"https://example.com/*/edit", "https://example.com/a/b/view", 0},
      /* in the hostname a segment is between dots */
      {"https://*.example.com/x", "https://a.example.com/x", 1},
      {"https://*.example.com/x", "https://a.b.example.com/x", 1},
      {"https://*.example.com/x", "https://example.com/x", 0},
      {"https://:sub.example.com/x", "https://a.example.com/x", 1},
      {"https://:sub.example.com/x", "https://a.b.example.com/x", 0},
      {"*://example.com/x", "wss://example.com/x", 1},
      {"https://*", "https://anything.test/at/all?q#h", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_regexp_groups(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/(foo|bar)", "https://example.com/foo", 1},
      {"https://example.com/(foo|bar)", "https://example.com/bar", 1},
      {"https://example.com/(foo|bar)", "https://example.com/baz", 0},
      {"https://example.com/v(\\d{1,2})/x", "https://example.com/v12/x", 1},
      {"https://example.com/v(\\d{1,2})/x", "https://example.com/v123/x", 0},
      {"https://example.com/([a-c]+)", "https://example.com/abcab", 1},
      {"https://example.com/([a-c]+)", "https://example.com/abd", 0},
      {"https://example.com/([^x]+)", "https://example.com/ab", 1},
      {"https://example.com/([^x]+)", "https://example.com/axb", 0},
      {"https://example.com/((?:ab)+)", "https://example.com/ababab", 1},
      {"https://example.com/((?:ab)+)", "https://example.com/aba", 0},
      {"https://example.com/(\\w+)\\.json", "https://example.com/doc_1.json", 1},
      {"https://example.com/(.*)", "https://example.com/x/y", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_groups_and_modifiers(void **state) {
  (void)state;
  static const vec_t v[] = {
      /* {...}? : an optional non-capturing group */
      {"https://example.com/books{/:id}?", "https://example.com/books", 1},
      {"https://example.com/books{/:id}?", "https://example.com/books/1", 1},
      {"https://example.com/books{/:id}?", "https://example.com/books/1/2", 0},
      /* the '/' before a name is its prefix: optional with it */
      {"https://example.com/books/:id?", "https://example.com/books", 1},
      {"https://example.com/books/:id?", "https://example.com/books/7", 1},
      {"https://example.com/books/:id?", "https://example.com/books/", 0},
      /* + : one or more segments, each with its prefix */
      {"https://example.com/:path+", "https://example.com/a/b/c", 1},
      {"https://example.com/:path+", "https://example.com/", 0},
      {"https://example.com/x/:path*", "https://example.com/x", 1},
      {"https://example.com/x/:path*", "https://example.com/x/a/b", 1},
      /* a fixed group with a modifier */
      {"https://example.com/a{-b}*", "https://example.com/a-b-b", 1},
      {"https://example.com/a{-b}*", "https://example.com/a-c", 0},
      {"https://example.com/{x}", "https://example.com/x", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_escapes(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/a\\*b", "https://example.com/a*b", 1},
      {"https://example.com/a\\*b", "https://example.com/axxb", 0},
      {"https://example.com/\\:id", "https://example.com/:id", 1},
      {"https://example.com/\\:id", "https://example.com/42", 0},
      {"https://example.com/a\\+", "https://example.com/a+", 1},
      {"https://example.com/a\\+", "https://example.com/aa", 0},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_components(void **state) {
  (void)state;
  static const vec_t v[] = {
      /* each component on its own */
      {"https://example.com/x?q=:v", "https://example.com/x?q=1", 1},
      {"https://example.com/x?q=:v", "https://example.com/x?q=1&r=2", 1},
      {"https://example.com/x?q=:v", "https://example.com/x", 0},
      {"https://example.com/x#:f", "https://example.com/x#top", 1},
      {"https://example.com/x#:f", "https://example.com/x", 0},
      {"https://example.com/x", "http://example.com/x", 0},
      {"https://example.com:8443/x", "https://example.com:8443/x", 1},
      {"https://example.com:8443/x", "https://example.com/x", 0},
      {"https://example.com:*/x", "https://example.com:9/x", 1},
      /* ":pass" would be a group name: the password separator is escaped */
      {"https://user\\:pass@example.com/x", "https://user:pass@example.com/x", 1},
      {"https://user\\:pass@example.com/x", "https://other:pass@example.com/x", 0},
      {"https://user\\:pass@example.com/x", "https://user:other@example.com/x", 0},
      /* the pathname is case-sensitive */
      {"https://example.com/Books/:id", "https://example.com/books/1", 0},
      /* a non-special scheme: its path has no segments */
      {"foo://bar/:x", "foo://bar/1/2", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_host_case_and_default_port(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/x", "https://EXAMPLE.com/x", 1},
      {"https://Example.COM/x", "https://example.com/x", 1},
      {"https://example.com/x", "https://example.com:443/x", 1},
      {"https://example.com:443/x", "https://example.com/x", 1},
      {"http://example.com:80/x", "http://example.com/x", 1},
      {"https://example.com/x", "https://example.com:80/x", 0},
      /* an empty path of a special URL is "/" */
      {"https://example.com/", "https://example.com", 1},
      /* dot segments are removed, percent-encoding normalized */
      {"https://example.com/a/c", "https://example.com/a/b/../c", 1},
      {"https://example.com/caf\xc3\xa9", "https://example.com/caf%c3%a9", 1},
      {"https://example.com/mercure", "https://example.com/%6Dercure", 1},
      {"https://example.com/a b", "https://example.com/a%20b", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_relative(void **state) {
  (void)state;
  static const vec_t v[] = {
      /* a relative pattern takes protocol, host and port from the hub's URL ... */
      {"/.well-known/mercure/subscriptions/:topic/:sub",
       "https://hub.example.com/.well-known/mercure/subscriptions/a/b", 1},
      /* ... and a relative topic resolves against it too */
      {"/.well-known/mercure/subscriptions/:topic/:sub",
       "/.well-known/mercure/subscriptions/a/b", 1},
      {"/.well-known/mercure/subscriptions/:topic/:sub",
       "https://other.example.com/.well-known/mercure/subscriptions/a/b", 0},
      {"/.well-known/mercure/subscriptions/:topic/:sub",
       "http://hub.example.com/.well-known/mercure/subscriptions/a/b", 0},
      /* a relative pathname continues the hub URL's directory */
      {"books/:id", "https://hub.example.com/.well-known/books/1", 1},
      {"books/:id", "https://hub.example.com/books/1", 0},
      /* an absolute topic with a relative pattern */
      {"/books/*", "/books/1", 1},
      /* username and password are not inherited: wildcards */
      {"/books/*", "https://u:p@hub.example.com/books/1", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_unparsable_topic_matches_nothing(void **state) {
  (void)state;
  sl_urlpattern_t *p = compile("https://example.com/*");
  assert_int_equal(match(p, "https://example.com/[x", NULL), -1);
  assert_int_equal(match(p, "https://[::1/x", NULL), -1);
  sl_url_t url;
  assert_int_equal(sl__url_parse(&url, "rel/only", 8, NULL), -EINVAL);
  sl__urlpattern_free(p);
}

static void test_invalid_patterns(void **state) {
  (void)state;
  static const struct {
    const char *pattern, *why;
  } v[] = {
      {"https://example.com/:a/:a", "same group name twice"},
      {"https://example.com/((?:a)\\1)", "backreferences"},
      {"https://example.com/((?=a)b)", "non-capturing groups"},
      {"https://example.com/((?<n>a))", "non-capturing groups"},
      {"https://example.com/((a)b)", "capturing groups are not allowed"},
      {"https://example.com/(a", "not closed"},
      {"https://example.com/{a", "not closed"},
      {"https://example.com/a}", "'}' without"},
      {"https://example.com/(a{1,1000})", "above 255"},
      {"https://example.com/(a{3,1})", "n below m"},
      {"https://example.com/(\\bx)", "word-boundary"},
      {"https://example.com/(^a)", "anchors"},
      {"https://example.com/(a**)", "nothing to repeat"},
      {"https://example.com/()", "empty"},
      {"https://example.com/:", "group name"},
      {"https://exa mple.com/x", "hostname"},
      {"https://example.com:8x/x", "port"},
      {"ht~tp://example.com/x", "protocol"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    sl_urlpattern_t *p = NULL;
    const char *why = NULL;
    int r = sl__urlpattern_compile(&p, v[i].pattern, strlen(v[i].pattern), BASE, &why);
    if (r != -EINVAL || why == NULL || strstr(why, v[i].why) == NULL)
      fail_msg("pattern %s: %d, %s (want -EINVAL naming '%s')", v[i].pattern, r,
               why ? why : "(none)", v[i].why);
    assert_null(p);
  }
  /* too long */
  char *big = malloc(SL_URLPATTERN_MAX_LEN + 2);
  memset(big, 'a', SL_URLPATTERN_MAX_LEN + 1);
  big[SL_URLPATTERN_MAX_LEN + 1] = '\0';
  sl_urlpattern_t *p = NULL;
  const char *why = NULL;
  assert_int_equal(sl__urlpattern_compile(&p, big, strlen(big), BASE, &why), -EINVAL);
  free(big);
}

/* Patterns whose automaton would exceed the state bound are refused, not built. */
static void test_state_bound(void **state) {
  (void)state;
  const char *pattern = "https://example.com/((?:(?:a{255}){255}){255})";
  sl_urlpattern_t *p = NULL;
  const char *why = NULL;
  assert_int_equal(sl__urlpattern_compile(&p, pattern, strlen(pattern), BASE, &why), -E2BIG);
  assert_non_null(strstr(why, "too complex"));
  /* many groups, each small, add up */
  char buf[4000];
  size_t n = (size_t)snprintf(buf, sizeof buf, "https://example.com/");
  for (int i = 0; i < 150 && n + 20 < sizeof buf; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, ":n%d-", i);
  assert_int_equal(sl__urlpattern_compile(&p, buf, strlen(buf), BASE, &why), -E2BIG);
}

/* Catastrophic-backtracking classics against long inputs: the work is at most the input's
 * length times the states (plus their closures), never exponential. */
static void test_pathological_linear(void **state) {
  (void)state;
  static const char *const patterns[] = {
      "https://example.com/((?:a*)*b)",
      "https://example.com/((?:a|a)*b)",
      "https://example.com/((?:a|aa)+$x)" /* invalid: anchors */,
      "https://example.com/(.*)(.*)(.*)(.*)(.*)x",
      "https://example.com/((?:a+)+b)",
      "https://example.com/:a-:b-:c-:d-:e-x",
      "https://example.com/*a*a*a*a*a*a*b",
  };
  size_t len = 20000;
  char *topic = malloc(len + 32);
  int n = snprintf(topic, 32, "https://example.com/");
  memset(topic + n, 'a', len);
  topic[n + len] = '\0';
  char *dashed = strdup(topic);
  for (size_t i = (size_t)n; i < (size_t)n + len; i += 2)
    dashed[i] = '-';
  for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
    sl_urlpattern_t *p = NULL;
    const char *why;
    if (sl__urlpattern_compile(&p, patterns[i], strlen(patterns[i]), BASE, &why))
      continue; /* the anchored one is refused: that is fine too */
    size_t states = sl__urlpattern_states(p);
    const char *inputs[2] = {topic, dashed};
    for (int k = 0; k < 2; k++) {
      uint64_t steps = 0;
      assert_int_equal(match(p, inputs[k], &steps), 0); /* never a final 'b'/'x' */
      /* each byte visits each state at most a few times (once in the list, once per
       * closure push); the bound is what linear means */
      uint64_t bound = (uint64_t)(strlen(inputs[k]) + 1) * (states + 1) * 4;
      if (steps > bound)
        fail_msg("pattern %s: %llu steps over %zu bytes and %zu states", patterns[i],
                 (unsigned long long)steps, strlen(inputs[k]), states);
    }
    sl__urlpattern_free(p);
  }
  free(topic);
  free(dashed);
}

/* The regexp subset on its own, through nfa.h. */
static void test_nfa_regexp(void **state) {
  (void)state;
  static const struct {
    const char *re, *s;
    int want;
  } v[] = {
      {"a|b", "b", 1},          {"ab*c", "ac", 1},         {"ab*c", "abbbc", 1},
      {"a{2,3}", "aaaa", 0},    {"a{2,}", "aaaaa", 1},     {"[a-c\\d]+", "a1c", 1},
      {"\\D", "a", 1},          {"\\D", "1", 0},           {".", "\xc3\xa9", 1},
      {"[^a]", "\xe2\x82\xac", 1}, {"\\S+", "x\xc3\xa9", 1}, {"a+?", "aa", 1},
      {"\\x41", "A", 1},        {"(?:x|y)z", "yz", 1},     {"[\\-]", "-", 1},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    sl_re_tree_t *t = sl__re_tree_new();
    sl_re_t *re;
    const char *why;
    assert_int_equal(sl__re_parse(t, v[i].re, strlen(v[i].re), &re, &why), 0);
    sl_nfa_t *nfa;
    assert_int_equal(sl__nfa_compile(re, &nfa, NULL), 0);
    if (sl__nfa_match(nfa, v[i].s, strlen(v[i].s), NULL) != v[i].want)
      fail_msg("regexp %s on %s: want %d", v[i].re, v[i].s, v[i].want);
    free(nfa);
    sl__re_tree_free(t);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_named_groups),
      cmocka_unit_test(test_wildcards),
      cmocka_unit_test(test_regexp_groups),
      cmocka_unit_test(test_groups_and_modifiers),
      cmocka_unit_test(test_escapes),
      cmocka_unit_test(test_components),
      cmocka_unit_test(test_host_case_and_default_port),
      cmocka_unit_test(test_relative),
      cmocka_unit_test(test_unparsable_topic_matches_nothing),
      cmocka_unit_test(test_invalid_patterns),
      cmocka_unit_test(test_state_bound),
      cmocka_unit_test(test_pathological_linear),
      cmocka_unit_test(test_nfa_regexp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
