/* test_uuid.c — uuid.c: the URN's exact shape, the version and variant bits, that the other 122
 * bits vary, and that ids do not repeat — within a thread, across threads, and across fork();
 * version 7's time prefix, and that its ids sort by the millisecond they were made in.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/uuid.h"

#define N 10000
#define URN_SIZE (SL_UUID_URN_LEN + 1)

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Checks the shape and returns the 16 octets. */
static void assert_all_distinct(char (*urns)[URN_SIZE], size_t n);

static void check_shape_v(const char *urn, unsigned char octets[16], char version) {
  assert_int_equal(strlen(urn), SL_UUID_URN_LEN);
  assert_memory_equal(urn, "urn:uuid:", 9);
  const char *u = urn + 9;
  int k = 0;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      assert_int_equal(u[i], '-');
      continue;
    }
    int hi = hex_value(u[i]), lo = hex_value(u[i + 1]);
    if (hi < 0 || lo < 0)
      fail_msg("\"%s\": not lowercase hex at %d", urn, i);
    octets[k++] = (unsigned char)(hi << 4 | lo);
    i++;
  }
  assert_int_equal(k, 16);
  assert_int_equal(u[14], version);
  assert_non_null(strchr("89ab", u[19]));
}

static void check_shape(const char *urn, unsigned char octets[16]) {
  check_shape_v(urn, octets, '4');
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Version 7: the first 48 bits are the Unix time in ms when it was made, the version and variant
 * bits are set, the other 74 bits vary; ids made in a later millisecond sort after (as text, which
 * is what an index by id compares); none repeats. */
static void test_time_ordered(void **state) {
  (void)state;
  static int ones[128];
  char(*urns)[URN_SIZE] = calloc(N, URN_SIZE);
  assert_non_null(urns);
  uint64_t before = now_ms();
  for (int n = 0; n < N; n++) {
    unsigned char o[16];
    sl__uuid_urn_time(urns[n]);
    check_shape_v(urns[n], o, '7');
    assert_int_equal(o[6] >> 4, 7);
    assert_int_equal(o[8] >> 6, 2);
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
      ms = ms << 8 | o[i];
    assert_true(ms >= before && ms <= now_ms());
    for (int bit = 0; bit < 128; bit++)
      ones[bit] += (o[bit / 8] >> (7 - bit % 8)) & 1;
  }
  for (int bit = 52; bit < 128; bit++) {
    if (bit == 64 || bit == 65)
      continue;
    if (ones[bit] < N * 4 / 10 || ones[bit] > N * 6 / 10)
      fail_msg("bit %d set %d times out of %d", bit, ones[bit], N);
  }
  char a[URN_SIZE], b[URN_SIZE];
  sl__uuid_urn_time(a);
  uint64_t t = now_ms();
  while (now_ms() <= t + 1) /* bounded by the clock: 2 ms */
    usleep(500);
  sl__uuid_urn_time(b);
  assert_true(strcmp(a, b) < 0);
  assert_all_distinct(urns, N);
  free(urns);
}

static void test_shape_and_bits(void **state) {
  (void)state;
  static int ones[128];
  char *urn = malloc(URN_SIZE); /* exact size, so that ASan sees a write past the NUL */
  assert_non_null(urn);
  for (int n = 0; n < N; n++) {
    unsigned char o[16];
    sl__uuid_urn(urn);
    check_shape(urn, o);
    assert_int_equal(o[6] >> 4, 4);
    assert_int_equal(o[8] >> 6, 2);
    for (int bit = 0; bit < 128; bit++)
      ones[bit] += (o[bit / 8] >> (7 - bit % 8)) & 1;
  }
  free(urn);
  /* The 122 random bits should each be set about half the time (the standard deviation over
   * 10000 draws is 50, so 40%..60% is 20 deviations wide); the six fixed bits always agree. */
  for (int bit = 0; bit < 128; bit++) {
    int fixed = (bit >= 48 && bit < 52) || bit == 64 || bit == 65;
    if (fixed)
      continue;
    if (ones[bit] < N * 4 / 10 || ones[bit] > N * 6 / 10)
      fail_msg("bit %d set %d times out of %d", bit, ones[bit], N);
  }
  assert_int_equal(ones[48] + ones[50] + ones[51], 0);
  assert_int_equal(ones[49], N);
  assert_int_equal(ones[64], N);
  assert_int_equal(ones[65], 0);
}

static int compare_urns(const void *a, const void *b) {
  return memcmp(a, b, URN_SIZE);
}

static void assert_all_distinct(char (*urns)[URN_SIZE], size_t n) {
  qsort(urns, n, URN_SIZE, compare_urns);
  for (size_t i = 1; i < n; i++)
    if (memcmp(urns[i - 1], urns[i], URN_SIZE) == 0)
      fail_msg("duplicate id %s", urns[i]);
}

static void test_distinct(void **state) {
  (void)state;
  char(*urns)[URN_SIZE] = calloc(N, URN_SIZE);
  assert_non_null(urns);
  for (int i = 0; i < N; i++)
    sl__uuid_urn(urns[i]);
  assert_all_distinct(urns, N);
  free(urns);
}

#define THREADS 4
#define PER_THREAD 2500

static void *generate(void *arg) {
  char(*urns)[URN_SIZE] = arg;
  for (int i = 0; i < PER_THREAD; i++)
    sl__uuid_urn(urns[i]);
  return NULL;
}

/* Each thread seeds its own generator: two threads must not produce the same sequence. */
static void test_distinct_across_threads(void **state) {
  (void)state;
  char(*urns)[URN_SIZE] = calloc(THREADS * PER_THREAD, URN_SIZE);
  assert_non_null(urns);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, generate, urns + i * PER_THREAD), 0);
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  for (int i = 0; i < THREADS * PER_THREAD; i++)
    assert_int_equal(strlen(urns[i]), SL_UUID_URN_LEN);
  assert_all_distinct(urns, THREADS * PER_THREAD);
  free(urns);
}

/* A child process must not replay the ids its parent is about to generate. */
static void test_distinct_across_fork(void **state) {
  (void)state;
  char parent[URN_SIZE], child[URN_SIZE];
  sl__uuid_urn(parent); /* make sure this thread's generator is seeded before the fork */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char urn[URN_SIZE];
    sl__uuid_urn(urn);
    _exit(write(fds[1], urn, URN_SIZE) == URN_SIZE ? 0 : 1);
  }
  close(fds[1]);
  sl__uuid_urn(parent);
  assert_int_equal(read(fds[0], child, URN_SIZE), URN_SIZE);
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  unsigned char o[16];
  check_shape(child, o);
  if (strcmp(parent, child) == 0)
    fail_msg("parent and child both generated %s", parent);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_shape_and_bits),
    cmocka_unit_test(test_distinct),
    cmocka_unit_test(test_distinct_across_threads),
    cmocka_unit_test(test_distinct_across_fork),
    cmocka_unit_test(test_time_ordered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
