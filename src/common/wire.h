/* wire.h — the bytes of a record one process hands another (the live hand-off): a growable
 * buffer written field by field, and a reader that checks every field against what is left, so a
 * short or garbled record is an error, never a read past its end. Integers are little-endian and
 * of fixed width; a string is its length (u32) then its bytes. */
#ifndef SL_WIRE_H
#define SL_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* A record being written. A write that runs out of memory sets failed; later writes do nothing. */
typedef struct sl_wire_s {
  unsigned char *buf;
  size_t len, cap;
  int failed;
} sl_wire_t;

void sl__wire_u8(sl_wire_t *w, uint8_t v);
void sl__wire_u32(sl_wire_t *w, uint32_t v);
void sl__wire_u64(sl_wire_t *w, uint64_t v);
void sl__wire_bytes(sl_wire_t *w, const void *p, size_t len); /* length, then the bytes */
void sl__wire_str(sl_wire_t *w, const char *s);              /* NULL is written as empty */
void sl__wire_raw(sl_wire_t *w, const void *p, size_t len);  /* the bytes alone, no length */
/* Writes a u32 placeholder and returns its place, for a count known later (sl__wire_patch). */
size_t sl__wire_mark(sl_wire_t *w);
void sl__wire_patch(sl_wire_t *w, size_t at, uint32_t v);
void sl__wire_free(sl_wire_t *w);

/* A record being read: fields borrowed from its buffer. A read past the end sets bad and
 * returns zeroes (and empty strings), so a caller checks once, after reading everything. */
typedef struct sl_wire_reader_s {
  const unsigned char *p, *end;
  int bad;
} sl_wire_reader_t;

static inline void sl__wire_reader(sl_wire_reader_t *r, const void *buf, size_t len) {
  r->p = buf;
  r->end = r->p + len;
  r->bad = 0;
}
uint8_t sl__wire_get_u8(sl_wire_reader_t *r);
uint32_t sl__wire_get_u32(sl_wire_reader_t *r);
uint64_t sl__wire_get_u64(sl_wire_reader_t *r);
/* The bytes of a length-prefixed field, borrowed (not NUL-terminated); *len its length. */
const unsigned char *sl__wire_get_bytes(sl_wire_reader_t *r, size_t *len);
/* The same field copied into a new NUL-terminated string (malloc); NULL when bad or out of
 * memory (bad is set then too). */
char *sl__wire_get_strdup(sl_wire_reader_t *r);

#endif
