/* test_uritemplate.c — uritemplate.c: each RFC 6570 expression kind (simple, reserved {+},
 * fragment {#}, label {.}, path {/}, path-style parameters {;}, form query {?} and continuation
 * {&}), lists of variables, explode and prefix modifiers, undefined variables, literals, and
 * malformed templates refused with a reason. A template matches the topics some expansion of it
 * produces; the cases come from RFC 6570's expansion rules.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topics/topic.h"
#include "topics/uritemplate.h"

typedef struct vec_s {
  const char *tpl, *topic;
  int want;
} vec_t;

static void run(const vec_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sl_nfa_t *nfa = NULL;
    const char *why = NULL;
    int r = sl__uritemplate_compile(&nfa, v[i].tpl, strlen(v[i].tpl), &why);
    if (r)
      fail_msg("template %s: %d (%s)", v[i].tpl, r, why ? why : "?");
    int got = sl__nfa_match(nfa, v[i].topic, strlen(v[i].topic), NULL);
    if (got != v[i].want)
      fail_msg("template %s, topic %s: got %d, want %d", v[i].tpl, v[i].topic, got, v[i].want);
    free(nfa);
  }
}

static void test_simple(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/books/{id}", "https://example.com/books/1", 1},
      {"https://example.com/books/{id}", "https://example.com/books/abc", 1},
      {"https://example.com/books/{id}", "https://example.com/books/", 1}, /* empty value */
      {"https://example.com/books/{id}", "https://example.com/books/1/2", 0},
      {"https://example.com/books/{id}", "https://example.com/book/1", 0},
      {"https://example.com/books/{id}", "https://example.com/books/a%20b", 1},
      {"https://example.com/books/{id}", "https://example.com/books/a b", 0},
      {"https://example.com/{a}-{b}", "https://example.com/x-y", 1},
      {"https://example.com/{x,y}", "https://example.com/1,2", 1},
      {"https://example.com/{list}", "https://example.com/red,green", 1}, /* a list value */
      {"https://example.com/plain", "https://example.com/plain", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_reserved_and_fragment(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/books/{+rest}", "https://example.com/books/a/b?c", 1},
      {"https://example.com/books/{rest}", "https://example.com/books/a/b", 0},
      {"https://example.com/x{#f}", "https://example.com/x#a/b", 1},
      {"https://example.com/x{#f}", "https://example.com/x", 1},
      {"https://example.com/x{#f}", "https://example.com/xa", 0},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_label_path_params(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/file{.ext}", "https://example.com/file.json", 1},
      {"https://example.com/file{.ext}", "https://example.com/file", 1},
      {"https://example.com/file{.ext}", "https://example.com/filejson", 0},
      {"https://example.com{/segs*}", "https://example.com/a/b/c", 1},
      {"https://example.com{/segs*}", "https://example.com", 1},
      {"https://example.com{/a,b}", "https://example.com/x/y", 1},
      {"https://example.com{/a,b}", "https://example.com/x/y/z", 0},
      {"https://example.com/m{;x,y}", "https://example.com/m;x=1;y", 1},
      {"https://example.com/m{;x,y}", "https://example.com/m;y=2", 1},
      {"https://example.com/m{;x,y}", "https://example.com/m;z=2", 0},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_query(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/s{?q,lang}", "https://example.com/s?q=1&lang=fr", 1},
      {"https://example.com/s{?q,lang}", "https://example.com/s?lang=fr", 1},
      {"https://example.com/s{?q,lang}", "https://example.com/s?q=", 1},
      {"https://example.com/s{?q,lang}", "https://example.com/s", 1},
      {"https://example.com/s{?q,lang}", "https://example.com/s?lang=fr&q=1", 0}, /* order */
      {"https://example.com/s{?q,lang}", "https://example.com/s?x=1", 0},
      {"https://example.com/s?fixed=1{&a}", "https://example.com/s?fixed=1&a=2", 1},
      {"https://example.com/s?fixed=1{&a}", "https://example.com/s?fixed=1", 1},
      {"https://example.com/s{?keys*}", "https://example.com/s?a=1&b=2", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_prefix(void **state) {
  (void)state;
  static const vec_t v[] = {
      {"https://example.com/c/{id:3}", "https://example.com/c/abc", 1},
      {"https://example.com/c/{id:3}", "https://example.com/c/ab", 1},
      {"https://example.com/c/{id:3}", "https://example.com/c/abcd", 0},
      {"https://example.com/c/{id:3}", "https://example.com/c/%41bc", 1},
  };
  run(v, sizeof v / sizeof v[0]);
}

static void test_invalid(void **state) {
  (void)state;
  static const struct {
    const char *tpl, *why;
  } v[] = {
      {"https://example.com/{id", "not closed"},
      {"https://example.com/{}", "empty"},
      {"https://example.com/{=x}", "reserved operator"},
      {"https://example.com/{a:0}", "prefix"},
      {"https://example.com/{a:10000}", "prefix"},
      {"https://example.com/{a:300}", "above :255"},
      {"https://example.com/a}b", "without its '{'"},
      {"https://example.com/{a b}", "not a variable"},
      {"https://example.com/{a..b}", "variable name"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    sl_nfa_t *nfa = NULL;
    const char *why = NULL;
    int r = sl__uritemplate_compile(&nfa, v[i].tpl, strlen(v[i].tpl), &why);
    if (r != -EINVAL || why == NULL || strstr(why, v[i].why) == NULL)
      fail_msg("template %s: %d, %s (want -EINVAL naming '%s')", v[i].tpl, r,
               why ? why : "(none)", v[i].why);
    assert_null(nfa);
  }
}

/* Through topic.c: legacy selectors with '{' are templates, the others exact, and a compiled
 * selector's matcher is shared by copies and freed with the last (ASan checks the frees). */
static void test_legacy_selectors(void **state) {
  (void)state;
  assert_int_equal(sl__selector_legacy_kind("*", 1), SL_SELECTOR_ANY);
  assert_int_equal(sl__selector_legacy_kind("https://e.com/{id}", 18), SL_SELECTOR_TEMPLATE);
  assert_int_equal(sl__selector_legacy_kind("https://e.com/x", 15), SL_SELECTOR_EXACT);
  const char *tpl = "https://example.com/books/{id}";
  sl_selector_t s, copy;
  const char *why = NULL;
  assert_int_equal(sl__selector_compile(&s, SL_SELECTOR_TEMPLATE, tpl, strlen(tpl), NULL, &why),
                   0);
  assert_int_equal(s.kind, SL_SELECTOR_TEMPLATE);
  assert_non_null(s.matcher);
  assert_false(sl__selector_is_exact(&s));
  sl__selector_copy(&copy, &s);
  sl__selector_release(&s);
  assert_null(s.matcher);
  assert_true(sl__selector_matches(&copy, "https://example.com/books/9", 27));
  assert_false(sl__selector_matches(&copy, tpl, strlen(tpl) - 1));
  sl__selector_release(&copy);
  /* "*" is the wildcard whatever the kind asked for */
  assert_int_equal(sl__selector_compile(&s, SL_SELECTOR_TEMPLATE, "*", 1, NULL, &why), 0);
  assert_int_equal(s.kind, SL_SELECTOR_ANY);
  assert_null(s.matcher);
  assert_int_equal(sl__selector_compile(&s, SL_SELECTOR_TEMPLATE, "{", 1, NULL, &why), -EINVAL);
  assert_null(s.matcher);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),
      cmocka_unit_test(test_reserved_and_fragment),
      cmocka_unit_test(test_label_path_params),
      cmocka_unit_test(test_query),
      cmocka_unit_test(test_prefix),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_legacy_selectors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
