/* json.c — writing JSON text (see json.h). */
#include "common/json.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 256

static int reserve(sl_json_t *j, size_t more) {
  if (j->failed)
    return -1;
  if (j->len + more + 1 <= j->cap)
    return 0;
  size_t cap = j->cap ? j->cap : FIRST_CAP;
  while (cap < j->len + more + 1) {
    if (cap > SIZE_MAX / 2)
      goto fail;
    cap *= 2;
  }
  char *p = realloc(j->buf, cap);
  if (p == NULL)
    goto fail;
  j->buf = p;
  j->cap = cap;
  return 0;
fail:
  sl__json_reset(j);
  j->failed = 1;
  return -1;
}

void sl__json_raw(sl_json_t *j, const char *s, size_t len) {
  if (reserve(j, len))
    return;
  memcpy(j->buf + j->len, s, len);
  j->len += len;
  j->buf[j->len] = '\0';
}

void sl__json_string(sl_json_t *j, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  /* Measured first, so the string is written with one reservation. */
  size_t need = 2;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    need += c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
  }
  if (reserve(j, need))
    return;
  char *p = j->buf + j->len;
  *p++ = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      memcpy(p, "\\u00", 4);
      p[4] = hex[c >> 4];
      p[5] = hex[c & 15];
      p += 6;
    } else {
      *p++ = (char)c;
    }
  }
  *p++ = '"';
  *p = '\0';
  j->len = (size_t)(p - j->buf);
}

int sl__json_finish(sl_json_t *j, char **out, size_t *len) {
  if (j->failed) {
    j->failed = 0;
    return -ENOMEM;
  }
  if (j->buf == NULL) {
    if (reserve(j, 0)) {
      j->failed = 0;
      return -ENOMEM;
    }
    j->buf[0] = '\0';
  }
  *out = j->buf;
  *len = j->len;
  memset(j, 0, sizeof *j);
  return 0;
}

void sl__json_reset(sl_json_t *j) {
  free(j->buf);
  memset(j, 0, sizeof *j);
}
