/* form.h — application/x-www-form-urlencoded parsing, as the WHATWG URL standard's
 * URLSearchParams does it: split on '&', first '=' splits name from value, '+' is a space,
 * valid %XX sequences are decoded, invalid ones are kept as they are. Owns nothing it does not copy.
 */
#ifndef SL_FORM_H
#define SL_FORM_H

#include <stddef.h>

typedef struct sl_pair_s {
  const char *name;   /* decoded, NUL-terminated (may contain NUL bytes: use name_len) */
  size_t name_len;
  const char *value;  /* decoded, NUL-terminated (may contain NUL bytes: use value_len) */
  size_t value_len;
} sl_pair_t;

/* A parsed form. Owns pairs[] and the buffer the names and values point into. */
typedef struct sl_form_s {
  sl_pair_t *pairs;
  size_t count;
  size_t cap;
  char *buf;
} sl_form_t;

/* Parses len bytes of s into *form (which it initialises). 0, or -ENOMEM. An empty input, or
 * empty segments between '&', yield no pair; "name" alone yields name with an empty value. */
int sl__form_parse(sl_form_t *form, const char *s, size_t len);

/* Frees what sl__form_parse allocated; safe on a zeroed form. */
void sl__form_free(sl_form_t *form);

/* The first pair named name (exact, case-sensitive), or NULL. */
const sl_pair_t *sl__form_get(const sl_form_t *form, const char *name);

#endif
