/* test_wire.c — wire.c: fields read back as written (little-endian, whatever the host), a count
 * patched in after the fact, and a short or garbled record read as an error, never past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/wire.h"

static void test_round_trip(void **state) {
  (void)state;
  sl_wire_t w = {0};
  sl__wire_u8(&w, 7);
  size_t at = sl__wire_mark(&w);
  sl__wire_u64(&w, 0x0102030405060708ull);
  sl__wire_str(&w, "topic");
  sl__wire_str(&w, NULL);
  sl__wire_bytes(&w, "a\0b", 3);
  sl__wire_raw(&w, "zz", 2);
  sl__wire_patch(&w, at, 42);
  assert_false(w.failed);
  /* Little-endian on the wire. */
  assert_int_equal(w.buf[1], 42);
  assert_int_equal(w.buf[5], 0x08);
  assert_int_equal(w.buf[12], 0x01);

  sl_wire_reader_t r;
  sl__wire_reader(&r, w.buf, w.len);
  assert_int_equal(sl__wire_get_u8(&r), 7);
  assert_int_equal(sl__wire_get_u32(&r), 42);
  assert_true(sl__wire_get_u64(&r) == 0x0102030405060708ull);
  char *s = sl__wire_get_strdup(&r);
  assert_string_equal(s, "topic");
  free(s);
  size_t n;
  sl__wire_get_bytes(&r, &n);
  assert_int_equal(n, 0);
  const unsigned char *p = sl__wire_get_bytes(&r, &n);
  assert_int_equal(n, 3);
  assert_memory_equal(p, "a\0b", 3);
  assert_false(r.bad);
  assert_int_equal(r.end - r.p, 2); /* the raw bytes are left */
  sl__wire_free(&w);
}

static void test_short_record_is_bad(void **state) {
  (void)state;
  sl_wire_t w = {0};
  sl__wire_str(&w, "a long enough value");
  sl_wire_reader_t r;
  /* Cut in the middle of the string: the length says more than is there. */
  sl__wire_reader(&r, w.buf, w.len - 3);
  size_t n = 99;
  sl__wire_get_bytes(&r, &n);
  assert_true(r.bad);
  assert_int_equal(n, 0);
  /* Every later read stays bad and returns nothing. */
  assert_int_equal(sl__wire_get_u64(&r), 0);
  assert_null(sl__wire_get_strdup(&r));
  assert_true(r.bad);
  /* A length of 4 GiB in a 4-byte record. */
  unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
  sl__wire_reader(&r, huge, sizeof huge);
  sl__wire_get_bytes(&r, &n);
  assert_true(r.bad);
  sl__wire_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_short_record_is_bad),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
