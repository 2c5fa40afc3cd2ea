/* fuzz_form.c — the form parser (form.c) on arbitrary bytes, checked against a plain reading of
 * the URLSearchParams rules it follows: split on '&', drop empty segments, the first '=' splits
 * name from value, '+' is a space, a '%' followed by two hex digits is that octet, any other '%'
 * stays. Every pair must be what that reading gives, NUL-terminated, and sl__form_get must find
 * the first pair of each name. The input is copied into an allocation of exactly its size, so
 * that a read past it is an ASan report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/form.h"

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

static int hex(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The expected decoding of in[0..len), into out; returns its length. */
static size_t expect_decoded(char *out, const char *in, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '+') {
      out[n++] = ' ';
    } else if (c == '%' && i + 2 < len && hex((unsigned char)in[i + 1]) >= 0 &&
               hex((unsigned char)in[i + 2]) >= 0) {
      out[n++] = (char)(hex((unsigned char)in[i + 1]) * 16 + hex((unsigned char)in[i + 2]));
      i += 2;
    } else {
      out[n++] = (char)c;
    }
  }
  return n;
}

/* The pair must be the segment seg[0..len) decoded. */
static void check_pair(const sl_pair_t *p, const char *seg, size_t len, char *scratch) {
  const char *eq = memchr(seg, '=', len);
  size_t name_len = eq ? (size_t)(eq - seg) : len;
  size_t n = expect_decoded(scratch, seg, name_len);
  CHECK(p->name_len == n && memcmp(p->name, scratch, n) == 0 && p->name[n] == '\0');
  n = eq ? expect_decoded(scratch, eq + 1, len - name_len - 1) : 0;
  CHECK(p->value_len == n && memcmp(p->value, scratch, n) == 0 && p->value[n] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *in = malloc(size ? size : 1);
  char *scratch = malloc(size ? size : 1);
  CHECK(in != NULL && scratch != NULL);
  memcpy(in, data, size);

  sl_form_t form;
  CHECK(sl__form_parse(&form, in, size) == 0);
  size_t k = 0;
  const char *seg = in, *end = in + size;
  while (seg < end) {
    const char *amp = memchr(seg, '&', (size_t)(end - seg));
    const char *seg_end = amp ? amp : end;
    if (seg_end > seg) {
      CHECK(k < form.count);
      check_pair(&form.pairs[k++], seg, (size_t)(seg_end - seg), scratch);
    }
    if (amp == NULL)
      break;
    seg = amp + 1;
  }
  CHECK(k == form.count);

  /* sl__form_get takes a C string: names holding a NUL cannot be asked for. */
  for (size_t i = 0; i < form.count; i++) {
    const sl_pair_t *p = &form.pairs[i];
    if (memchr(p->name, '\0', p->name_len))
      continue;
    const sl_pair_t *got = sl__form_get(&form, p->name);
    CHECK(got != NULL && got <= p);
    CHECK(got->name_len == p->name_len && memcmp(got->name, p->name, p->name_len) == 0);
    for (const sl_pair_t *q = form.pairs; q < got; q++)
      CHECK(q->name_len != p->name_len || memcmp(q->name, p->name, p->name_len) != 0);
  }

  sl__form_free(&form);
  CHECK(form.pairs == NULL && form.buf == NULL && form.count == 0);
  free(scratch);
  free(in);
  return 0;
}
