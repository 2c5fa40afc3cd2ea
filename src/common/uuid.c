/* uuid.c — version 4 (random) and version 7 (time, then random) UUIDs for the ids the hub gives
 * updates and connections. Each thread has its own xoshiro256** generator, seeded from
 * getrandom(2), so generating an id takes no lock and no system call. The ids need to be unique,
 * not unpredictable: nothing here is fit for secrets.
 */
#include "common/uuid.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static _Thread_local struct {
  uint64_t s[4];
  int seeded;
} rng;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A fork()ed child would otherwise go on with its parent's sequence and repeat its ids. */
static void reseed_in_child(void) {
  rng.seeded = 0;
}

static void register_atfork(void) {
  pthread_atfork(NULL, NULL, reseed_in_child);
}

/* splitmix64: spreads whatever seed material we have over the whole xoshiro state, which must
 * not be all zeros. */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static void seed(void) {
  pthread_once(&atfork_once, register_atfork);
  uint64_t material[4];
  size_t got = 0;
  while (got < sizeof material) {
    ssize_t n = getrandom((char *)material + got, sizeof material - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  /* Without getrandom (old kernel, seccomp), fall back on what differs between threads and runs;
   * uniqueness across hubs then rests on the clock. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
  x ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&rng;
  for (int i = 0; i < 4; i++)
    rng.s[i] = (got == sizeof material ? material[i] : 0) ^ splitmix64(&x);
  rng.seeded = 1;
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna, 2018). */
static uint64_t next(void) {
  uint64_t *s = rng.s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* "urn:uuid:" and b as the UUID's text, version and variant bits already set. */
static void urn_write(char *out, const unsigned char *b) {
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "urn:uuid:", 9);
  char *o = out + 9;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 0x0F];
  }
  *o = '\0';
}

void sl__uuid_urn(char *out) {
  if (!rng.seeded)
    seed();
  uint64_t words[2] = {next(), next()};
  unsigned char b[16];
  memcpy(b, words, sizeof b);
  b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10xx (RFC 9562) */
  urn_write(out, b);
}

void sl__uuid_urn_time(char *out) {
  if (!rng.seeded)
    seed();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  uint64_t words[2] = {next(), next()};
  unsigned char b[16];
  memcpy(b, words, sizeof b);
  for (int i = 0; i < 6; i++) /* unix_ts_ms, 48 bits, big-endian: the text sorts by it */
    b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)((b[6] & 0x0F) | 0x70); /* version 7 */
  b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10xx (RFC 9562) */
  urn_write(out, b);
}
