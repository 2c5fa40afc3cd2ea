/* test_origin.c — origin.c: origins taken out of Origin values and URLs (normalised: lower case,
 * default ports dropped; "null", userinfo, bad ports refused), configured lists ("*" only where
 * allowed and alone; an entry with a path refused, naming it), and lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "common/origin.h"

static void expect_origin(const char *url, const char *want) {
  char buf[SL_ORIGIN_MAX];
  int r = sl__origin_of(url, strlen(url), buf, sizeof buf);
  if (want == NULL) {
    assert_int_equal(r, -EINVAL);
    return;
  }
  assert_int_equal(r, 0);
  assert_string_equal(buf, want);
}

static void test_origin_of(void **state) {
  (void)state;
  expect_origin("https://app.example", "https://app.example");
  expect_origin("HTTPS://App.Example:443", "https://app.example");
  expect_origin("http://app.example:80/x?y#z", "http://app.example");
  expect_origin("http://127.0.0.1:8080/page", "http://127.0.0.1:8080");
  expect_origin("https://app.example:80", "https://app.example:80");
  expect_origin("http://[::1]:3000/", "http://[::1]:3000");
  expect_origin("chrome-extension://abcdef", "chrome-extension://abcdef");
  expect_origin("null", NULL);
  expect_origin("app.example:8080", NULL);
  expect_origin("https://user@app.example", NULL);
  expect_origin("https://app.example:99999", NULL);
  expect_origin("https://app.example:", NULL);
  expect_origin("https://", NULL);
  expect_origin("https://a b", NULL);
  expect_origin("", NULL);
}

static void test_parse_list(void **state) {
  (void)state;
  sl_origins_t o;
  char why[200];
  assert_int_equal(sl__origins_parse(&o, " https://A.example,http://b.example:8080  https://a.example:443",
                                     0, why, sizeof why), 0);
  assert_int_equal(o.count, 2); /* the third is the first again */
  assert_string_equal(o.items[0], "https://a.example");
  assert_string_equal(sl__origins_find(&o, "https://a.example/page?x"), "https://a.example");
  assert_string_equal(sl__origins_find(&o, "http://B.example:8080"), "http://b.example:8080");
  assert_null(sl__origins_find(&o, "http://b.example"));
  assert_null(sl__origins_find(&o, "https://a.example.evil.example"));
  assert_null(sl__origins_find(&o, "null"));
  assert_null(sl__origins_find(&o, NULL));
  assert_int_equal(o.any, 0);
  sl__origins_free(&o);

  assert_int_equal(sl__origins_parse(&o, "*", 1, why, sizeof why), 0);
  assert_int_equal(o.any, 1);
  assert_int_equal(o.count, 0);
  assert_null(sl__origins_find(&o, "https://a.example")); /* "*" is the caller's to apply */
  sl__origins_free(&o);

  assert_int_equal(sl__origins_parse(&o, "*", 0, why, sizeof why), -EINVAL);
  assert_non_null(strstr(why, "'*'"));
  assert_int_equal(sl__origins_parse(&o, "*, https://a.example", 1, why, sizeof why), -EINVAL);
  assert_non_null(strstr(why, "named"));
  assert_int_equal(sl__origins_parse(&o, "https://a.example/app", 0, why, sizeof why), -EINVAL);
  assert_non_null(strstr(why, "'https://a.example/app' is not an origin"));
  assert_int_equal(o.count, 0);
  assert_null(o.items);
  assert_int_equal(sl__origins_parse(&o, NULL, 0, why, sizeof why), 0);
  assert_int_equal(o.count, 0);
  assert_int_equal(sl__origins_parse(&o, " , ", 0, why, sizeof why), 0);
  assert_int_equal(o.count, 0);
}

static void test_add_url(void **state) {
  (void)state;
  sl_origins_t o = {0};
  assert_int_equal(sl__origins_add_url(&o, "http://127.0.0.1:8080/.well-known/mercure"), 0);
  assert_int_equal(sl__origins_add_url(&o, "not a url"), -EINVAL);
  assert_int_equal(o.count, 1);
  assert_string_equal(o.items[0], "http://127.0.0.1:8080");
  sl__origins_free(&o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_origin_of),
    cmocka_unit_test(test_parse_list),
    cmocka_unit_test(test_add_url),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
