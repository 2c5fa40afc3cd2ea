/* test_ratelimit.c — ratelimit.c: a burst, then one request per refilled token, the wait it
 * tells, keys kept apart, and a bucket taken over by another key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ratelimit.h"

static void test_burst_then_refill(void **state) {
  (void)state;
  sl_ratelimit_t r;
  assert_int_equal(sl__ratelimit_init(&r, 2, 4, 1024), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(sl__ratelimit_take(&r, "a", 1, 1000), 0);
  unsigned wait = sl__ratelimit_take(&r, "a", 1, 1000);
  assert_int_equal(wait, 1);               /* 2 per second: the next token in 0.5 s, said as 1 */
  assert_int_equal(sl__ratelimit_take(&r, "b", 1, 1000), 0); /* another key has its own */
  assert_true(sl__ratelimit_take(&r, "a", 1, 1400) > 0);     /* 0.8 of a token after 0.4 s */
  assert_int_equal(sl__ratelimit_take(&r, "a", 1, 1500), 0); /* a whole one at 0.5 s */
  assert_true(sl__ratelimit_take(&r, "a", 1, 1500) > 0);
  /* A long quiet time refills up to the burst, not beyond. */
  for (int i = 0; i < 4; i++)
    assert_int_equal(sl__ratelimit_take(&r, "a", 1, 100000), 0);
  assert_true(sl__ratelimit_take(&r, "a", 1, 100000) > 0);
  sl__ratelimit_destroy(&r);
}

static void test_slow_rate_waits_longer(void **state) {
  (void)state;
  sl_ratelimit_t r;
  assert_int_equal(sl__ratelimit_init(&r, 0.25, 1, 64), 0);
  assert_int_equal(sl__ratelimit_take(&r, "k", 1, 0), 0);
  assert_int_equal(sl__ratelimit_take(&r, "k", 1, 0), 4); /* a token every 4 s */
  assert_int_equal(sl__ratelimit_take(&r, "k", 1, 4000), 0);
  sl__ratelimit_destroy(&r);
}

static void test_collision_takes_over(void **state) {
  (void)state;
  sl_ratelimit_t r;
  assert_int_equal(sl__ratelimit_init(&r, 1, 1, 1), 0); /* one bucket: every key collides */
  assert_int_equal(sl__ratelimit_take(&r, "x", 1, 0), 0);
  assert_true(sl__ratelimit_take(&r, "x", 1, 0) > 0);
  assert_int_equal(sl__ratelimit_take(&r, "y", 1, 0), 0); /* takes the bucket over, fresh */
  assert_int_equal(sl__ratelimit_take(&r, "x", 1, 0), 0); /* and x gets it back, fresh */
  sl__ratelimit_destroy(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_burst_then_refill),
    cmocka_unit_test(test_slow_rate_waits_longer),
    cmocka_unit_test(test_collision_takes_over),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
