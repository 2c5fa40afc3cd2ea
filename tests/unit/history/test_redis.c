/* test_redis.c — the parts of redis.c that need no Redis: the --redis URL (host, port, database,
 * password, IPv6, what is refused and why, rediss:// above all), and the record an update is
 * stored as in the stream: a frame encoded and decoded comes back byte for byte (id, topics,
 * private flag, SSE payload), whatever the number of topics; a truncated, padded, or foreign
 * record is refused, never misread. The stream itself is tests/integration/test_redis.py's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "history/history.h"

static void url_ok(const char *url, const char *host, int port, int db, const char *pw) {
  sl_redis_url_t u;
  const char *why = NULL;
  int r = sl__redis_url_parse(url, &u, &why);
  if (r)
    fail_msg("%s: %s", url, why);
  assert_string_equal(u.host, host);
  assert_int_equal(u.port, port);
  assert_int_equal(u.db, db);
  assert_string_equal(u.password, pw);
}

static void url_bad(const char *url, int want, const char *says) {
  sl_redis_url_t u;
  const char *why = NULL;
  assert_int_equal(sl__redis_url_parse(url, &u, &why), want);
  assert_non_null(why);
  if (strstr(why, says) == NULL)
    fail_msg("%s: '%s' does not say '%s'", url, why, says);
}

static void test_url(void **state) {
  (void)state;
  url_ok("redis://127.0.0.1", "127.0.0.1", 6379, 0, "");
  url_ok("redis://localhost:6380", "localhost", 6380, 0, "");
  url_ok("redis://localhost:6380/", "localhost", 6380, 0, "");
  url_ok("redis://redis.internal:7000/3", "redis.internal", 7000, 3, "");
  url_ok("redis://:s3cret@10.0.0.5:6379/1", "10.0.0.5", 6379, 1, "s3cret");
  url_ok("redis://default:pa@ss@host", "host", 6379, 0, "pa@ss"); /* the last @ ends it */
  url_ok("redis://[::1]:6390/2", "::1", 6390, 2, "");
  url_ok("redis://[::1]", "::1", 6379, 0, "");
  url_bad("rediss://host:6380", -EPROTONOSUPPORT, "TLS");
  url_bad("http://host:6379", -EINVAL, "redis://");
  url_bad("redis://", -EINVAL, "host");
  url_bad("redis://:pw@", -EINVAL, "host");
  url_bad("redis://host:0", -EINVAL, "port");
  url_bad("redis://host:65536", -EINVAL, "port");
  url_bad("redis://host:12ab", -EINVAL, "port");
  url_bad("redis://host:", -EINVAL, "port");
  url_bad("redis://host/db", -EINVAL, "database");
  url_bad("redis://host/-1", -EINVAL, "database");
  url_bad("redis://host?x=1", -EINVAL, "query");
  url_bad("redis://[::1:6379", -EINVAL, "]");
}

static sl_frame_t *update(size_t topics, int private, const char *data) {
  char **names = calloc(topics, sizeof *names);
  assert_non_null(names);
  for (size_t i = 0; i < topics; i++) {
    names[i] = malloc(48);
    assert_non_null(names[i]);
    snprintf(names[i], 48, "https://example.com/books/%zu", i);
  }
  sl_update_t u = {.topics = (const char *const *)names, .topic_count = topics, .data = data,
                   .data_len = strlen(data), .is_private = private, .type = "note",
                   .retry = "1500"};
  sl_frame_t *f = sl__frame_update(&u, "urn:uuid:42", 11);
  assert_non_null(f);
  for (size_t i = 0; i < topics; i++)
    free(names[i]);
  free(names);
  return f;
}

static void same_frame(const sl_frame_t *a, const sl_frame_t *b) {
  assert_int_equal(a->len, b->len);
  assert_memory_equal(a->wire, b->wire, a->len);
  assert_int_equal(a->hdr, b->hdr);
  assert_int_equal(a->flags & SL_FRAME_PRIVATE, b->flags & SL_FRAME_PRIVATE);
  assert_int_equal(a->id_len, b->id_len);
  assert_string_equal(a->id, b->id);
  assert_int_equal(a->topic_count, b->topic_count);
  for (size_t i = 0; i < a->topic_count; i++) {
    assert_int_equal(a->topic_lens[i], b->topic_lens[i]);
    assert_string_equal(a->topics[i], b->topics[i]);
  }
}

static unsigned char *encode(const sl_frame_t *f, size_t *n) {
  *n = sl__redis_record_encode(f, NULL, 0);
  unsigned char *buf = malloc(*n);
  assert_non_null(buf);
  assert_int_equal(sl__redis_record_encode(f, buf, *n), *n);
  return buf;
}

static void test_record_round_trip(void **state) {
  (void)state;
  static const size_t counts[] = {1, 2, 64, 65, 300};
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    for (int priv = 0; priv < 2; priv++) {
      sl_frame_t *f = update(counts[k], priv, "first line\nsecond\r\nthird é");
      size_t n;
      unsigned char *buf = encode(f, &n);
      sl_frame_t *g = sl__redis_record_decode(buf, n);
      assert_non_null(g);
      same_frame(f, g);
      assert_int_equal(g->seq, 0);
      /* Too small a buffer: only the size is told, nothing written. */
      unsigned char small[8] = {0};
      assert_int_equal(sl__redis_record_encode(f, small, sizeof small), n);
      assert_int_equal(small[0], 0);
      sl__frame_unref(g);
      sl__frame_unref(f);
      free(buf);
    }
  }
}

static void test_record_refused(void **state) {
  (void)state;
  sl_frame_t *f = update(3, 1, "data");
  size_t n;
  unsigned char *buf = encode(f, &n);
  /* Every truncation, and one byte too many, are refused. */
  for (size_t cut = 0; cut < n; cut++)
    assert_null(sl__redis_record_decode(buf, cut));
  unsigned char *longer = malloc(n + 1);
  assert_non_null(longer);
  memcpy(longer, buf, n);
  longer[n] = 'x';
  assert_null(sl__redis_record_decode(longer, n + 1));
  /* Another version, unknown flags, no topic, a topic length past the end. */
  unsigned char *copy = malloc(n);
  assert_non_null(copy);
  memcpy(copy, buf, n);
  copy[0] = 2;
  assert_null(sl__redis_record_decode(copy, n));
  memcpy(copy, buf, n);
  copy[1] = 0x80;
  assert_null(sl__redis_record_decode(copy, n));
  memcpy(copy, buf, n);
  copy[2] = copy[3] = 0;
  assert_null(sl__redis_record_decode(copy, n));
  memcpy(copy, buf, n);
  copy[12] = 0xff;
  copy[13] = 0xff;
  assert_null(sl__redis_record_decode(copy, n));
  /* Little-endian whatever the machine: the topic count is at bytes 2 and 3, low byte first. */
  assert_int_equal(buf[2], 3);
  assert_int_equal(buf[3], 0);
  free(copy);
  free(longer);
  free(buf);
  sl__frame_unref(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_url),
    cmocka_unit_test(test_record_round_trip),
    cmocka_unit_test(test_record_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
