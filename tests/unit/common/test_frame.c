/* test_frame.c — frame.c: the exact bytes of an update serialised as one HTTP chunk (id, event,
 * retry, one data line per line of data split on CR, LF and CRLF), that the chunk-size line
 * always equals the payload length, the payload alone for connections without chunking, the id
 * and topics kept inside the frame, plain chunks and raw frames, and reference counting (a frame
 * is freed exactly at its last unref, which ASan checks; static frames are never freed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/frame.h"

/* An update on one topic with the given data (len bytes), no type, no retry. */
static sl_update_t update_with(const char *const *topics, size_t topic_count, const char *data,
                               size_t len) {
  sl_update_t u = {0};
  u.topics = topics;
  u.topic_count = topic_count;
  u.data = data;
  u.data_len = len;
  return u;
}

static const char *const one_topic[] = {"https://example.com/books/1"};

/* Checks that f is "<hex>\r\n" payload "\r\n" with hex == strlen(payload) and the payload equal to
 * expected (len bytes), both through the chunked and the unchunked view. */
static void check_chunk(const sl_frame_t *f, const char *expected, size_t len) {
  char hdr[32];
  int n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
  assert_int_equal(f->hdr, n);
  assert_int_equal(f->len, (size_t)n + len + 2);
  assert_false(f->flags & SL_FRAME_RAW);

  size_t wlen = 0;
  const char *w = sl__frame_bytes(f, 1, &wlen);
  assert_int_equal(wlen, f->len);
  assert_memory_equal(w, hdr, (size_t)n);
  /* The size line parsed back as a client would. */
  char *end = NULL;
  unsigned long parsed = strtoul(w, &end, 16);
  assert_int_equal(parsed, len);
  assert_memory_equal(end, "\r\n", 2);
  if (len)
    assert_memory_equal(w + n, expected, len);
  assert_memory_equal(w + n + len, "\r\n", 2);

  size_t plen = 0;
  const char *p = sl__frame_bytes(f, 0, &plen);
  assert_int_equal(plen, len);
  if (len)
    assert_memory_equal(p, expected, len);
}

/* Serialises data under id "x" and compares the payload with "id: x\n" lines "\n". */
static void check_data(const char *data, size_t len, const char *lines) {
  sl_update_t u = update_with(one_topic, 1, data, len);
  sl_frame_t *f = sl__frame_update(&u, "x", 1);
  assert_non_null(f);
  char expected[256];
  int n = snprintf(expected, sizeof expected, "id: x\n%s\n", lines);
  assert_true(n > 0 && (size_t)n < sizeof expected);
  check_chunk(f, expected, (size_t)n);
  sl__frame_unref(f);
}

static void test_data_line_splitting(void **state) {
  (void)state;
  check_data("hello", 5, "data: hello\n");
  check_data("a\nb", 3, "data: a\ndata: b\n");
  check_data("a\rb", 3, "data: a\ndata: b\n");
  check_data("a\r\nb", 4, "data: a\ndata: b\n");
  /* A separator at the end leaves an empty last line. */
  check_data("a\n", 2, "data: a\ndata: \n");
  check_data("a\r", 2, "data: a\ndata: \n");
  check_data("a\r\n", 3, "data: a\ndata: \n");
  /* A separator at the start gives an empty first line. */
  check_data("\na", 2, "data: \ndata: a\n");
  check_data("\ra", 2, "data: \ndata: a\n");
  /* Only CR followed by LF is one separator; LF CR, CR CR and LF LF are two. */
  check_data("a\n\rb", 4, "data: a\ndata: \ndata: b\n");
  check_data("a\r\rb", 4, "data: a\ndata: \ndata: b\n");
  check_data("a\n\nb", 4, "data: a\ndata: \ndata: b\n");
  check_data("a\r\r\nb", 5, "data: a\ndata: \ndata: b\n");
  check_data("a\r\n\r\nb", 6, "data: a\ndata: \ndata: b\n");
  check_data("a\r\n\nb", 5, "data: a\ndata: \ndata: b\n");
  check_data("\r\n", 2, "data: \ndata: \n");
  check_data("\n", 1, "data: \ndata: \n");
  check_data("\r", 1, "data: \ndata: \n");
  check_data("\n\n\n", 3, "data: \ndata: \ndata: \ndata: \n");
  check_data("\r\r\n\n", 4, "data: \ndata: \ndata: \ndata: \n");
  /* data_len counts: bytes past it are not data. */
  check_data("abc\ndef", 3, "data: abc\n");
  /* Other control characters and non-ASCII bytes pass through untouched. */
  check_data("t\tv\x0b\x0c\xc3\xa9", 7, "data: t\tv\x0b\x0c\xc3\xa9\n");
}

static void test_data_with_nul_is_kept(void **state) {
  (void)state;
  static const char data[] = {'a', '\0', 'b', '\n', '\0'};
  sl_update_t u = update_with(one_topic, 1, data, sizeof data);
  sl_frame_t *f = sl__frame_update(&u, "x", 1);
  assert_non_null(f);
  static const char expected[] = "id: x\ndata: a\0b\ndata: \0\n\n";
  check_chunk(f, expected, sizeof expected - 1);
  sl__frame_unref(f);
}

static void test_empty_and_null_data(void **state) {
  (void)state;
  check_data("", 0, "data: \n");
  sl_update_t u = update_with(one_topic, 1, NULL, 0);
  sl_frame_t *f = sl__frame_update(&u, "x", 1);
  assert_non_null(f);
  check_chunk(f, "id: x\ndata: \n\n", 14);
  sl__frame_unref(f);
  /* NULL data with a stray length is still no data. */
  u.data_len = 5;
  f = sl__frame_update(&u, "x", 1);
  assert_non_null(f);
  check_chunk(f, "id: x\ndata: \n\n", 14);
  sl__frame_unref(f);
}

static void test_event_and_retry_fields(void **state) {
  (void)state;
  sl_update_t u = update_with(one_topic, 1, "d", 1);
  u.type = "book-updated";
  sl_frame_t *f = sl__frame_update(&u, "urn:uuid:1", 10);
  assert_non_null(f);
  static const char with_type[] = "id: urn:uuid:1\nevent: book-updated\ndata: d\n\n";
  check_chunk(f, with_type, sizeof with_type - 1);
  sl__frame_unref(f);

  u.type = NULL;
  u.retry = "3000";
  f = sl__frame_update(&u, "urn:uuid:1", 10);
  assert_non_null(f);
  static const char with_retry[] = "id: urn:uuid:1\nretry: 3000\ndata: d\n\n";
  check_chunk(f, with_retry, sizeof with_retry - 1);
  sl__frame_unref(f);

  u.type = "t";
  u.retry = "0";
  u.data = "l1\r\nl2";
  u.data_len = 6;
  f = sl__frame_update(&u, "42", 2);
  assert_non_null(f);
  static const char both[] = "id: 42\nevent: t\nretry: 0\ndata: l1\ndata: l2\n\n";
  check_chunk(f, both, sizeof both - 1);
  sl__frame_unref(f);

  /* Empty strings are the same as no field. */
  u.type = "";
  u.retry = "";
  u.data = "d";
  u.data_len = 1;
  f = sl__frame_update(&u, "42", 2);
  assert_non_null(f);
  check_chunk(f, "id: 42\ndata: d\n\n", 16);
  sl__frame_unref(f);
}

static void test_id_is_copied_by_length(void **state) {
  (void)state;
  char id[] = "abcdef";
  sl_update_t u = update_with(one_topic, 1, "d", 1);
  /* Only id_len bytes count; the frame keeps its own NUL-terminated copy. */
  sl_frame_t *f = sl__frame_update(&u, id, 3);
  assert_non_null(f);
  id[0] = 'X';
  assert_int_equal(f->id_len, 3);
  assert_string_equal(f->id, "abc");
  check_chunk(f, "id: abc\ndata: d\n\n", 17);
  sl__frame_unref(f);
}

static void test_topics_and_flags_stored(void **state) {
  (void)state;
  char t0[] = "https://example.com/books/1";
  char t1[] = "urn:alt:1";
  char t2[] = "";
  char t3[] = "https://example.com/books/{id}";
  const char *topics[] = {t0, t1, t2, t3};
  sl_update_t u = update_with(topics, 4, "d", 1);
  sl_frame_t *f = sl__frame_update(&u, "id-1", 4);
  assert_non_null(f);
  /* The update's strings are borrowed: the frame must not point into them. */
  memset(t0, 'Z', sizeof t0 - 1);
  memset(t1, 'Z', sizeof t1 - 1);
  assert_int_equal(f->topic_count, 4);
  assert_string_equal(f->topics[0], "https://example.com/books/1");
  assert_int_equal(f->topic_lens[0], 27);
  assert_string_equal(f->topics[1], "urn:alt:1");
  assert_int_equal(f->topic_lens[1], 9);
  assert_string_equal(f->topics[2], "");
  assert_int_equal(f->topic_lens[2], 0);
  assert_string_equal(f->topics[3], "https://example.com/books/{id}");
  assert_int_equal(f->topic_lens[3], 30);
  assert_string_equal(f->id, "id-1");
  assert_int_equal(f->seq, 0);
  assert_false(f->flags & SL_FRAME_PRIVATE);
  assert_false(f->flags & SL_FRAME_STATIC);
  /* Topics are not on the wire. */
  check_chunk(f, "id: id-1\ndata: d\n\n", 18);
  sl__frame_unref(f);

  u.is_private = 1;
  f = sl__frame_update(&u, "id-2", 4);
  assert_non_null(f);
  assert_true(f->flags & SL_FRAME_PRIVATE);
  /* Private is a routing flag, not a wire field. */
  check_chunk(f, "id: id-2\ndata: d\n\n", 18);
  sl__frame_unref(f);
}

/* 1 MiB of data with a line break every 1000 bytes, mixing LF, CR and CRLF. */
static void test_big_data(void **state) {
  (void)state;
  const size_t size = 1u << 20;
  char *data = malloc(size);
  assert_non_null(data);
  size_t lines = 1;
  for (size_t i = 0; i < size; i++) {
    if (i % 1000 == 999) {
      data[i] = (i / 1000) % 3 == 0 ? '\n' : '\r';
      lines++;
    } else if (i % 1000 == 0 && i > 0 && data[i - 1] == '\r' && (i / 1000) % 2 == 0) {
      data[i] = '\n'; /* CRLF: the pair is one separator */
    } else {
      data[i] = (char)('a' + i % 26);
    }
  }
  sl_update_t u = update_with(one_topic, 1, data, size);
  sl_frame_t *f = sl__frame_update(&u, "big", 3);
  assert_non_null(f);

  /* Reference serialisation, built independently. */
  char *expected = malloc(size + lines * 7 + 64);
  assert_non_null(expected);
  size_t n = (size_t)sprintf(expected, "id: big\ndata: ");
  size_t counted = 1;
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '\r' || data[i] == '\n') {
      if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n')
        i++;
      memcpy(expected + n, "\ndata: ", 7);
      n += 7;
      counted++;
    } else {
      expected[n++] = data[i];
    }
  }
  expected[n++] = '\n';
  expected[n++] = '\n';
  assert_int_equal(counted, lines);
  assert_true(n > size);
  check_chunk(f, expected, n);
  free(expected);
  free(data);
  sl__frame_unref(f);
}

static void test_chunk_frames(void **state) {
  (void)state;
  sl_frame_t *f = sl__frame_chunk(":\n\n", 3);
  assert_non_null(f);
  check_chunk(f, ":\n\n", 3);
  assert_int_equal(f->topic_count, 0);
  sl__frame_unref(f);

  /* Sizes that need one, two and several hex digits, lowercase. */
  static const size_t sizes[] = {1, 15, 16, 255, 256, 4095, 4096, 65535, 65536, 1000003};
  char *payload = malloc(1000003);
  assert_non_null(payload);
  for (size_t i = 0; i < 1000003; i++)
    payload[i] = (char)(i * 7);
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    f = sl__frame_chunk(payload, sizes[k]);
    assert_non_null(f);
    check_chunk(f, payload, sizes[k]);
    char hex[16];
    snprintf(hex, sizeof hex, "%zx\r\n", sizes[k]);
    assert_memory_equal(f->wire, hex, strlen(hex));
    sl__frame_unref(f);
  }
  free(payload);
  f = sl__frame_chunk("", 0);
  assert_non_null(f);
  check_chunk(f, "", 0);
  sl__frame_unref(f);
}

static void test_raw_frames(void **state) {
  (void)state;
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
  sl_frame_t *f = sl__frame_raw(head, sizeof head - 1);
  assert_non_null(f);
  assert_true(f->flags & SL_FRAME_RAW);
  assert_int_equal(f->len, sizeof head - 1);
  /* Raw bytes go out as they are, chunked connection or not. */
  for (int chunked = 0; chunked <= 1; chunked++) {
    size_t len = 0;
    const char *p = sl__frame_bytes(f, chunked, &len);
    assert_int_equal(len, sizeof head - 1);
    assert_memory_equal(p, head, len);
  }
  sl__frame_unref(f);

  f = sl__frame_raw("", 0);
  assert_non_null(f);
  size_t len = 1;
  sl__frame_bytes(f, 0, &len);
  assert_int_equal(len, 0);
  sl__frame_unref(f);
}

static void test_static_frames(void **state) {
  (void)state;
  /* The heartbeat is an SSE comment in one chunk. */
  check_chunk(&sl__frame_heartbeat, ":\n\n", 3);
  assert_true(sl__frame_heartbeat.flags & SL_FRAME_STATIC);
  /* The terminator is the zero-length last chunk, written raw. */
  size_t len = 0;
  const char *p = sl__frame_bytes(&sl__frame_terminator, 1, &len);
  assert_int_equal(len, 5);
  assert_memory_equal(p, "0\r\n\r\n", 5);
  assert_true(sl__frame_terminator.flags & SL_FRAME_STATIC);
  /* Unref of a static frame never frees it (ASan would report a bad free), however often. */
  for (int i = 0; i < 1000; i++) {
    sl__frame_ref(&sl__frame_heartbeat);
    sl__frame_unref(&sl__frame_heartbeat);
    sl__frame_unref(&sl__frame_heartbeat);
    sl__frame_unref(&sl__frame_terminator);
  }
  check_chunk(&sl__frame_heartbeat, ":\n\n", 3);
  p = sl__frame_bytes(&sl__frame_terminator, 0, &len);
  assert_int_equal(len, 5);
  assert_memory_equal(p, "0\r\n\r\n", 5);
}

static void test_refcount(void **state) {
  (void)state;
  sl_update_t u = update_with(one_topic, 1, "d", 1);
  sl_frame_t *f = sl__frame_update(&u, "x", 1);
  assert_non_null(f);
  assert_int_equal(atomic_load(&f->refs), 1);
  assert_ptr_equal(sl__frame_ref(f), f);
  for (int i = 0; i < 99; i++)
    sl__frame_ref(f);
  assert_int_equal(atomic_load(&f->refs), 101);
  for (int i = 0; i < 100; i++)
    sl__frame_unref(f);
  /* Still alive with one reference: reading it must not touch freed memory (ASan). */
  assert_int_equal(atomic_load(&f->refs), 1);
  check_chunk(f, "id: x\ndata: d\n\n", 15);
  sl__frame_unref(f); /* freed here; a leak or a double free shows under ASan */

  sl_frame_t *c = sl__frame_chunk("abc", 3);
  sl_frame_t *r = sl__frame_raw("abc", 3);
  assert_non_null(c);
  assert_non_null(r);
  assert_int_equal(atomic_load(&c->refs), 1);
  assert_int_equal(atomic_load(&r->refs), 1);
  sl__frame_unref(sl__frame_ref(c));
  sl__frame_unref(c);
  sl__frame_unref(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_data_line_splitting),
    cmocka_unit_test(test_data_with_nul_is_kept),
    cmocka_unit_test(test_empty_and_null_data),
    cmocka_unit_test(test_event_and_retry_fields),
    cmocka_unit_test(test_id_is_copied_by_length),
    cmocka_unit_test(test_topics_and_flags_stored),
    cmocka_unit_test(test_big_data),
    cmocka_unit_test(test_chunk_frames),
    cmocka_unit_test(test_raw_frames),
    cmocka_unit_test(test_static_frames),
    cmocka_unit_test(test_refcount),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
