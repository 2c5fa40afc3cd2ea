/* form.c — the application/x-www-form-urlencoded parser behind every publish body and every
 * subscription query. It decodes names and values as URLSearchParams does and nothing more: it
 * does not check that the result is UTF-8 or free of control characters (validate.c does, with
 * the field's name in the message), and it knows nothing about which fields Mercure defines.
 */
#include "common/form.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_PAIRS 8

/* Value of an ASCII hex digit, or -1. A table, because this runs on up to a MiB per publish. */
static const int8_t hex_value[256] = {
  ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,
  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
  ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
  ['F'] = 16,
};
/* The table stores value + 1 so that the zero-initialised entries mean "not a hex digit". */
#define HEX(c) (hex_value[(unsigned char)(c)] - 1)

/* Decodes in[0..len) into out and returns the decoded length, which is never more than len. */
static size_t decode(char *out, const char *in, size_t len) {
  char *o = out;
  size_t i = 0;
  while (i < len) {
    char c = in[i];
    if (c == '+') {
      *o++ = ' ';
      i++;
    } else if (c == '%' && len - i >= 3 && HEX(in[i + 1]) >= 0 && HEX(in[i + 2]) >= 0) {
      *o++ = (char)(HEX(in[i + 1]) << 4 | HEX(in[i + 2]));
      i += 3;
    } else {
      *o++ = c;
      i++;
    }
  }
  return (size_t)(o - out);
}

static int push_pair(sl_form_t *form, const sl_pair_t *pair) {
  if (form->count == form->cap) {
    size_t cap = form->cap ? form->cap * 2 : INITIAL_PAIRS;
    sl_pair_t *pairs = realloc(form->pairs, cap * sizeof *pairs);
    if (pairs == NULL)
      return -ENOMEM;
    form->pairs = pairs;
    form->cap = cap;
  }
  form->pairs[form->count++] = *pair;
  return 0;
}

/* Every segment of k bytes decodes to at most k bytes of name and value plus two NULs, less the
 * '=' it spends; a segment without '=' shares its name's NUL as its empty value. So a segment
 * needs at most k + 1 bytes, and with the '&' between segments, len + 1 bytes hold them all. */
int sl__form_parse(sl_form_t *form, const char *s, size_t len) {
  memset(form, 0, sizeof *form);
  if (len == SIZE_MAX)
    return -ENOMEM;
  form->buf = malloc(len + 1);
  if (form->buf == NULL)
    return -ENOMEM;

  char *out = form->buf;
  const char *end = s + len;
  const char *seg = s;
  while (seg < end) {
    const char *amp = memchr(seg, '&', (size_t)(end - seg));
    const char *seg_end = amp ? amp : end;
    if (seg_end > seg) {
      const char *eq = memchr(seg, '=', (size_t)(seg_end - seg));
      const char *name_end = eq ? eq : seg_end;
      sl_pair_t pair;
      pair.name = out;
      pair.name_len = decode(out, seg, (size_t)(name_end - seg));
      out += pair.name_len;
      *out = '\0';
      pair.value = out;
      pair.value_len = 0;
      if (eq) {
        pair.value = ++out;
        pair.value_len = decode(out, eq + 1, (size_t)(seg_end - eq - 1));
        out += pair.value_len;
        *out = '\0';
      }
      out++;
      if (push_pair(form, &pair) < 0) {
        sl__form_free(form);
        return -ENOMEM;
      }
    }
    if (amp == NULL)
      break;
    seg = amp + 1;
  }
  return 0;
}

void sl__form_free(sl_form_t *form) {
  free(form->pairs);
  free(form->buf);
  memset(form, 0, sizeof *form);
}

const sl_pair_t *sl__form_get(const sl_form_t *form, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < form->count; i++) {
    const sl_pair_t *p = &form->pairs[i];
    if (p->name_len == len && memcmp(p->name, name, len) == 0)
      return p;
  }
  return NULL;
}
