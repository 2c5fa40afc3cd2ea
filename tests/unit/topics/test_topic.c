/* test_topic.c — topic.c: how selector text is classified ("*" alone is ANY, everything else
 * exact, byte for byte), what each kind matches (exact bytes over exactly len bytes; ANY every
 * topic, the empty one included), the first match among several, and which selectors an index
 * keyed by topic may hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "topics/topic.h"

static sl_selector_t sel(const char *text) {
  sl_selector_t s;
  sl__selector_init(&s, text, strlen(text));
  return s;
}

static void test_init_classifies(void **state) {
  (void)state;
  sl_selector_t s = sel("*");
  assert_int_equal(s.kind, SL_SELECTOR_ANY);
  assert_int_equal(s.len, 1);
  const char *text = "https://example.com/a";
  s = sel(text);
  assert_int_equal(s.kind, SL_SELECTOR_EXACT);
  /* Borrowed, not copied. */
  assert_ptr_equal(s.text, text);
  assert_int_equal(s.len, strlen(text));
  /* Only "*" itself is the wildcard. */
  assert_int_equal(sel("**").kind, SL_SELECTOR_EXACT);
  assert_int_equal(sel("*/a").kind, SL_SELECTOR_EXACT);
  assert_int_equal(sel(" *").kind, SL_SELECTOR_EXACT);
  assert_int_equal(sel("https://example.com/*").kind, SL_SELECTOR_EXACT);
  /* len decides, not a NUL: "*x" cut to one byte is "*". */
  sl__selector_init(&s, "*x", 1);
  assert_int_equal(s.kind, SL_SELECTOR_ANY);
  sl__selector_init(&s, "*", 0);
  assert_int_equal(s.kind, SL_SELECTOR_EXACT);
}

static void test_exact_matches_bytes(void **state) {
  (void)state;
  sl_selector_t s = sel("https://example.com/a");
  assert_true(sl__selector_matches(&s, "https://example.com/a", 21));
  assert_false(sl__selector_matches(&s, "https://example.com/ab", 22));
  assert_false(sl__selector_matches(&s, "https://example.com/", 20));
  assert_false(sl__selector_matches(&s, "https://example.com/A", 21));
  assert_false(sl__selector_matches(&s, "https://example.com/b", 21));
  assert_false(sl__selector_matches(&s, "", 0));
  /* Only len bytes of the topic count. */
  assert_true(sl__selector_matches(&s, "https://example.com/a/b", 21));
  /* An exact selector "*" is a literal, never a wildcard. */
  sl_selector_t literal = {.kind = SL_SELECTOR_EXACT, .text = "*", .len = 1};
  assert_false(sl__selector_matches(&literal, "https://example.com/a", 21));
  assert_true(sl__selector_matches(&literal, "*", 1));
}

static void test_any_matches_everything(void **state) {
  (void)state;
  sl_selector_t s = sel("*");
  assert_true(sl__selector_matches(&s, "https://anything.example/x", 26));
  assert_true(sl__selector_matches(&s, "urn:x", 5));
  assert_true(sl__selector_matches(&s, "", 0));
}

static void test_selectors_match_any_of(void **state) {
  (void)state;
  sl_selector_t two[] = {sel("urn:a"), sel("urn:b")};
  assert_true(sl__selectors_match(two, 2, "urn:a", 5));
  assert_true(sl__selectors_match(two, 2, "urn:b", 5));
  assert_false(sl__selectors_match(two, 2, "urn:c", 5));
  /* n bounds the array: the second is not consulted with n = 1. */
  assert_false(sl__selectors_match(two, 1, "urn:b", 5));
  sl_selector_t with_any[] = {sel("urn:a"), sel("*")};
  assert_true(sl__selectors_match(with_any, 2, "urn:x", 5));
  assert_false(sl__selectors_match(with_any, 0, "urn:a", 5));
  assert_false(sl__selectors_match(NULL, 0, "urn:a", 5));
}

static void test_is_exact(void **state) {
  (void)state;
  sl_selector_t exact = sel("urn:a"), any = sel("*");
  assert_true(sl__selector_is_exact(&exact));
  assert_false(sl__selector_is_exact(&any));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_init_classifies),
    cmocka_unit_test(test_exact_matches_bytes),
    cmocka_unit_test(test_any_matches_everything),
    cmocka_unit_test(test_selectors_match_any_of),
    cmocka_unit_test(test_is_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
