/* b64url.c — base64url without padding, strict on input (see b64url.h). */
#include "common/b64url.h"

#include <errno.h>
#include <stdint.h>

/* Value of a base64url character plus one, so that zero means "not in the alphabet". */
static const unsigned char b64url_value[256] = {
  ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
  ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
  ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
  ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
  ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
  ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
  ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

static const char b64url_alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sl__b64url_decoded_len(size_t len) {
  return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

int sl__b64url_decode(unsigned char *out, const char *in, size_t len) {
  if (len % 4 == 1)
    return -EINVAL;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned v = b64url_value[(unsigned char)in[i]];
    if (!v)
      return -EINVAL;
    acc = acc << 6 | (v - 1);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *out++ = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  return acc ? -EINVAL : 0;
}

size_t sl__b64url_encoded_len(size_t len) {
  return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

size_t sl__b64url_encode(char *out, const unsigned char *in, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len)
      v |= in[i + 2];
    out[n++] = b64url_alphabet[v >> 18 & 63];
    out[n++] = b64url_alphabet[v >> 12 & 63];
    if (i + 1 < len)
      out[n++] = b64url_alphabet[v >> 6 & 63];
    if (i + 2 < len)
      out[n++] = b64url_alphabet[v & 63];
  }
  return n;
}
