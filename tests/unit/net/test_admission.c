/* test_admission.c — admission.c: the hub-wide cap, the per-address cap (IPv4 and IPv6 apart,
 * released tickets freeing room), the table growing under many addresses with tickets kept
 * valid, and nothing counted when neither cap is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "net/admission.h"

static struct sockaddr_in v4(uint32_t host_order) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(host_order);
  return a;
}

static void test_no_caps(void **state) {
  (void)state;
  sl_admission_t a;
  assert_int_equal(sl__admission_init(&a, 0, 0), 0);
  struct sockaddr_in p = v4(0x7f000001);
  uint32_t t[100];
  for (int i = 0; i < 100; i++)
    assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&p, &t[i]), SL_ADMIT_OK);
  assert_int_equal(atomic_load(&a.open), 100);
  assert_null(a.clients); /* addresses are not tracked without a per-address cap */
  for (int i = 0; i < 100; i++)
    sl__admission_release(&a, t[i]);
  assert_int_equal(atomic_load(&a.open), 0);
  sl__admission_destroy(&a);
}

static void test_hub_cap(void **state) {
  (void)state;
  sl_admission_t a;
  assert_int_equal(sl__admission_init(&a, 3, 0), 0);
  struct sockaddr_in p = v4(0x7f000001);
  uint32_t t[4];
  for (int i = 0; i < 3; i++)
    assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&p, &t[i]), SL_ADMIT_OK);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&p, &t[3]), SL_ADMIT_FULL);
  sl__admission_release(&a, t[3]);
  assert_int_equal(atomic_load(&a.open), 3); /* the refusal is not counted, nor released */
  sl__admission_release(&a, t[1]);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&p, &t[1]), SL_ADMIT_OK);
  for (int i = 0; i < 3; i++)
    sl__admission_release(&a, t[i]);
  assert_int_equal(atomic_load(&a.open), 0);
  sl__admission_destroy(&a);
}

static void test_per_address_cap(void **state) {
  (void)state;
  sl_admission_t a;
  assert_int_equal(sl__admission_init(&a, 0, 2), 0);
  struct sockaddr_in one = v4(0x7f000001), two = v4(0x7f000002);
  struct sockaddr_in6 six;
  memset(&six, 0, sizeof six);
  six.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::1", &six.sin6_addr);
  uint32_t a1, a2, a3, b1, c1, c2, c3;
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&one, &a1), SL_ADMIT_OK);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&one, &a2), SL_ADMIT_OK);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&one, &a3), SL_ADMIT_CLIENT_FULL);
  sl__admission_release(&a, a3); /* what a refused connection hands back releases nothing */
  assert_int_equal(atomic_load(&a.open), 2);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&two, &b1), SL_ADMIT_OK);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&six, &c1), SL_ADMIT_OK);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&six, &c2), SL_ADMIT_OK);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&six, &c3), SL_ADMIT_CLIENT_FULL);
  assert_int_equal(atomic_load(&a.open), 5);
  sl__admission_release(&a, a1);
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&one, &a3), SL_ADMIT_OK);
  sl__admission_release(&a, a2);
  sl__admission_release(&a, a3);
  /* Its entry is free again; a new address may take it. */
  assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&one, &a1), SL_ADMIT_OK);
  sl__admission_release(&a, a1);
  sl__admission_release(&a, b1);
  sl__admission_release(&a, c1);
  sl__admission_release(&a, c2);
  assert_int_equal(atomic_load(&a.open), 0);
  sl__admission_destroy(&a);
}

/* Thousands of addresses: the table grows while tickets are held, and every ticket still
 * releases its own address. */
static void test_growth_keeps_tickets(void **state) {
  (void)state;
  enum { N = 5000 };
  static uint32_t t[N][2];
  sl_admission_t a;
  assert_int_equal(sl__admission_init(&a, 0, 2), 0);
  for (uint32_t i = 0; i < N; i++) {
    struct sockaddr_in p = v4(0x0a000000 + i);
    assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&p, &t[i][0]), SL_ADMIT_OK);
    assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&p, &t[i][1]), SL_ADMIT_OK);
  }
  assert_true(a.client_cap >= N);
  for (uint32_t i = 0; i < N; i += 2) {
    sl__admission_release(&a, t[i][0]);
    sl__admission_release(&a, t[i][1]);
  }
  for (uint32_t i = 0; i < N; i++) {
    struct sockaddr_in p = v4(0x0a000000 + i);
    uint32_t x;
    sl_admit_t want = (i % 2) ? SL_ADMIT_CLIENT_FULL : SL_ADMIT_OK;
    assert_int_equal(sl__admission_admit(&a, (struct sockaddr *)&p, &x), want);
    if (want == SL_ADMIT_OK)
      sl__admission_release(&a, x);
  }
  for (uint32_t i = 1; i < N; i += 2) {
    sl__admission_release(&a, t[i][0]);
    sl__admission_release(&a, t[i][1]);
  }
  assert_int_equal(atomic_load(&a.open), 0);
  sl__admission_destroy(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_no_caps),
    cmocka_unit_test(test_hub_cap),
    cmocka_unit_test(test_per_address_cap),
    cmocka_unit_test(test_growth_keeps_tickets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
