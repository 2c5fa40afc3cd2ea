/* test_percent.c — percent.c: RFC 6570 simple-string expansion of one value (every octet but the
 * unreserved characters encoded, upper-case hex, '%' itself encoded so an encoded value is encoded
 * once more and never left as it was), the spec's own example, UTF-8 bytes one by one, and the
 * decoding of a path segment (either hex case; a stray or short '%' refused; '+' left alone). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "common/percent.h"

static void expect_encoding(const char *in, const char *want) {
  char out[256];
  size_t n = sl__pct_encoded_len(in, strlen(in));
  assert_int_equal(n, strlen(want));
  char *end = sl__pct_encode(out, in, strlen(in));
  assert_int_equal((size_t)(end - out), n);
  *end = '\0';
  assert_string_equal(out, want);
}

static void test_encode(void **state) {
  (void)state;
  expect_encoding("", "");
  expect_encoding("AZaz09-._~", "AZaz09-._~");
  /* The spec's example: a URL pattern and a urn:uuid. */
  expect_encoding("https://example.com/:selector", "https%3A%2F%2Fexample.com%2F%3Aselector");
  expect_encoding("urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
                  "urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6");
  /* Exactly once, as a whole: an already-encoded value is encoded again, '%' included. */
  expect_encoding("a%2Fb", "a%252Fb");
  expect_encoding("{id} *+,;=?#[]@!$&'()/ ", "%7Bid%7D%20%2A%2B%2C%3B%3D%3F%23%5B%5D%40%21%24%26%27%28%29%2F%20");
  expect_encoding("caf\xc3\xa9", "caf%C3%A9");
}

static void expect_decoding(const char *in, const char *want) {
  char out[256];
  size_t n = 12345;
  assert_int_equal(sl__pct_decode(out, in, strlen(in), &n), 0);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
}

static void test_decode(void **state) {
  (void)state;
  expect_decoding("", "");
  expect_decoding("https%3A%2F%2Fexample.com%2F%3Aselector", "https://example.com/:selector");
  expect_decoding("%c3%A9+x", "\xc3\xa9+x");
  expect_decoding("a%252Fb", "a%2Fb");
  char out[16];
  size_t n;
  assert_int_equal(sl__pct_decode(out, "%", 1, &n), -EINVAL);
  assert_int_equal(sl__pct_decode(out, "ab%4", 4, &n), -EINVAL);
  assert_int_equal(sl__pct_decode(out, "%zz", 3, &n), -EINVAL);
  assert_int_equal(sl__pct_decode(out, "%4g", 3, &n), -EINVAL);
}

static void test_round_trip_every_octet(void **state) {
  (void)state;
  char in[256], enc[768], dec[256];
  for (int i = 0; i < 256; i++)
    in[i] = (char)i;
  char *end = sl__pct_encode(enc, in, sizeof in);
  size_t n;
  assert_int_equal(sl__pct_decode(dec, enc, (size_t)(end - enc), &n), 0);
  assert_int_equal(n, sizeof in);
  assert_memory_equal(dec, in, sizeof in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_encode),
    cmocka_unit_test(test_decode),
    cmocka_unit_test(test_round_trip_every_octet),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
