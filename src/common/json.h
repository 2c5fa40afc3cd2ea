/* json.h — writing JSON text (RFC 8259) into a growable buffer: strings quoted and escaped, and
 * raw fragments (already JSON, or punctuation). For the documents the hub itself generates; it
 * parses nothing. The buffer is malloc'ed and grows by doubling; an allocation failure is
 * remembered and reported once, at the end, so callers write without checking each step. */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>

typedef struct sl_json_s {
  char *buf;                     /* NUL-terminated while not failed; the caller takes it */
  size_t len, cap;
  int failed;                    /* an allocation failed: buf is NULL */
} sl_json_t;

/* Appends len raw bytes (no escaping). */
void sl__json_raw(sl_json_t *j, const char *s, size_t len);
/* Appends s[0..len) as a JSON string: quoted, with '"', '\\' and control characters escaped.
 * s must be valid UTF-8 (the hub checks every string it accepts). */
void sl__json_string(sl_json_t *j, const char *s, size_t len);
/* 0 with *out (malloc'ed, NUL-terminated; the caller frees) and *len; -ENOMEM after a failure
 * (nothing to free). The buffer is empty afterwards. */
int sl__json_finish(sl_json_t *j, char **out, size_t *len);
/* Drops what was written. */
void sl__json_reset(sl_json_t *j);

#endif
