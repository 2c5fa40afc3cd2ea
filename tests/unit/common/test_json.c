/* test_json.c — json.c: strings quoted with '"', '\' and every control character escaped and
 * everything else (UTF-8 included) as it is, raw fragments appended as given, a buffer that grows
 * past its first capacity, and finish handing the text over (an empty document is "", not NULL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"

static char *finish(sl_json_t *j, size_t *len) {
  char *out = NULL;
  assert_int_equal(sl__json_finish(j, &out, len), 0);
  assert_non_null(out);
  assert_int_equal(strlen(out), *len);
  return out;
}

static void test_string_escapes(void **state) {
  (void)state;
  sl_json_t j = {0};
  static const char in[] = "a\"b\\c\n\t\x01\x1f\x7f caf\xc3\xa9 /";
  sl__json_string(&j, in, sizeof in - 1);
  size_t len;
  char *out = finish(&j, &len);
  assert_string_equal(out, "\"a\\\"b\\\\c\\u000a\\u0009\\u0001\\u001f\x7f caf\xc3\xa9 /\"");
  free(out);
}

static void test_raw_and_growth(void **state) {
  (void)state;
  sl_json_t j = {0};
  sl__json_raw(&j, "[", 1);
  char big[1000];
  memset(big, 'x', sizeof big);
  for (int i = 0; i < 50; i++) {
    if (i)
      sl__json_raw(&j, ",", 1);
    sl__json_string(&j, big, sizeof big);
  }
  sl__json_raw(&j, "]", 1);
  size_t len;
  char *out = finish(&j, &len);
  assert_int_equal(len, 2 + 50 * 1002 + 49);
  assert_int_equal(out[0], '[');
  assert_int_equal(out[len - 1], ']');
  free(out);
  /* The buffer was handed over: the writer starts again empty. */
  assert_null(j.buf);
  out = finish(&j, &len);
  assert_int_equal(len, 0);
  free(out);
}

static void test_reset(void **state) {
  (void)state;
  sl_json_t j = {0};
  sl__json_raw(&j, "{}", 2);
  sl__json_reset(&j);
  assert_null(j.buf);
  assert_int_equal(j.len, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_string_escapes),
    cmocka_unit_test(test_raw_and_growth),
    cmocka_unit_test(test_reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
