/* test_cors.c — cors.c's lines: a listed origin echoed (normalised) with credentials and the
 * exposed headers; an unlisted one only Vary: Origin; "*" for any Origin, never with
 * credentials nor Vary; nothing without a list or (for "*") without an Origin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/cors.h"

static void test_named_origins(void **state) {
  (void)state;
  sl_origins_t o;
  char why[200], buf[SL_CORS_LINES_MAX];
  assert_int_equal(sl__origins_parse(&o, "https://app.example", 1, why, sizeof why), 0);
  size_t n = sl__cors_lines(&o, "https://APP.example:443", 0, buf, sizeof buf);
  assert_int_equal(n, strlen(buf));
  assert_non_null(strstr(buf, "Vary: Origin\r\n"));
  assert_non_null(strstr(buf, "Access-Control-Allow-Origin: https://app.example\r\n"));
  assert_non_null(strstr(buf, "Access-Control-Allow-Credentials: true\r\n"));
  assert_non_null(strstr(buf, "Access-Control-Expose-Headers: Mercure-Last-Event-ID"));
  n = sl__cors_lines(&o, "https://evil.example", 0, buf, sizeof buf);
  assert_string_equal(buf, "Vary: Origin\r\n");
  n = sl__cors_lines(&o, NULL, 0, buf, sizeof buf);
  assert_string_equal(buf, "Vary: Origin\r\n");
  sl__cors_lines(&o, "https://app.example", 1, buf, sizeof buf); /* credentials: the point */
  assert_non_null(strstr(buf, "Access-Control-Allow-Credentials: true\r\n"));
  sl__origins_free(&o);
}

static void test_any_origin(void **state) {
  (void)state;
  sl_origins_t o;
  char why[200], buf[SL_CORS_LINES_MAX];
  assert_int_equal(sl__origins_parse(&o, "*", 1, why, sizeof why), 0);
  sl__cors_lines(&o, "https://whoever.example", 0, buf, sizeof buf);
  assert_non_null(strstr(buf, "Access-Control-Allow-Origin: *\r\n"));
  assert_null(strstr(buf, "Credentials"));
  assert_null(strstr(buf, "whoever"));
  assert_null(strstr(buf, "Vary"));
  assert_int_equal(sl__cors_lines(&o, NULL, 0, buf, sizeof buf), 0);
  /* A request with a cookie (credentials mode "include"): never "*". */
  assert_int_equal(sl__cors_lines(&o, "https://whoever.example", 1, buf, sizeof buf), 0);
  sl__origins_free(&o);
}

static void test_no_list(void **state) {
  (void)state;
  sl_origins_t empty = {0};
  char buf[SL_CORS_LINES_MAX];
  assert_int_equal(sl__cors_lines(NULL, "https://app.example", 0, buf, sizeof buf), 0);
  assert_int_equal(sl__cors_lines(&empty, "https://app.example", 0, buf, sizeof buf), 0);
  assert_string_equal(buf, "");
}

static void test_preflight(void **state) {
  (void)state;
  sl_origins_t o;
  char why[200], lines[512], what[256];
  assert_int_equal(sl__origins_parse(&o, "https://app.example", 1, why, sizeof why), 0);
  const char *m = "GET, POST, OPTIONS";
  assert_int_equal(sl__cors_preflight(&o, NULL, NULL, m, lines, sizeof lines, what, sizeof what),
                   204);
  assert_string_equal(lines, "Allow: GET, POST, OPTIONS\r\n");
  assert_int_equal(sl__cors_preflight(&o, "https://app.example", "POST", m, lines, sizeof lines,
                                      what, sizeof what), 204);
  assert_non_null(strstr(lines, "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"));
  assert_non_null(strstr(lines, "Access-Control-Allow-Headers: Authorization, Content-Type, "
                                "Last-Event-ID"));
  assert_non_null(strstr(lines, "Access-Control-Max-Age: "));
  assert_int_equal(sl__cors_preflight(&o, "https://evil.example", "POST", m, lines, sizeof lines,
                                      what, sizeof what), 403);
  assert_non_null(strstr(what, "https://evil.example"));
  assert_non_null(strstr(what, "--cors-origin"));
  sl__origins_free(&o);
  assert_int_equal(sl__cors_preflight(NULL, "https://app.example", "GET", m, lines, sizeof lines,
                                      what, sizeof what), 403);
  assert_non_null(strstr(what, "none is set"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_named_origins),
    cmocka_unit_test(test_any_origin),
    cmocka_unit_test(test_no_list),
    cmocka_unit_test(test_preflight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
