/* percent.c — percent-encoding and decoding (see percent.h). */
#include "common/percent.h"

#include <errno.h>

static int is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t sl__pct_encoded_len(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += is_unreserved((unsigned char)s[i]) ? 1 : 3;
  return n;
}

char *sl__pct_encode(char *out, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_unreserved(c)) {
      *out++ = (char)c;
    } else {
      *out++ = '%';
      *out++ = hex[c >> 4];
      *out++ = hex[c & 15];
    }
  }
  return out;
}

int sl__pct_decode(char *out, const char *s, size_t len, size_t *out_len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '%') {
      out[n++] = s[i];
      continue;
    }
    int hi = i + 2 < len ? hex_value((unsigned char)s[i + 1]) : -1;
    int lo = i + 2 < len ? hex_value((unsigned char)s[i + 2]) : -1;
    if (hi < 0 || lo < 0)
      return -EINVAL;
    out[n++] = (char)(hi << 4 | lo);
    i += 2;
  }
  *out_len = n;
  return 0;
}
