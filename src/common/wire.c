/* wire.c — records written and read field by field (see wire.h). */
#include "common/wire.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 256

static unsigned char *room(sl_wire_t *w, size_t n) {
  if (w->failed)
    return NULL;
  if (w->len + n > w->cap) {
    size_t cap = w->cap ? w->cap : FIRST_CAP;
    while (cap < w->len + n) {
      if (cap > SIZE_MAX / 2)
        goto fail;
      cap *= 2;
    }
    unsigned char *p = realloc(w->buf, cap);
    if (p == NULL)
      goto fail;
    w->buf = p;
    w->cap = cap;
  }
  unsigned char *at = w->buf + w->len;
  w->len += n;
  return at;
fail:
  w->failed = 1;
  return NULL;
}

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

void sl__wire_u8(sl_wire_t *w, uint8_t v) {
  unsigned char *p = room(w, 1);
  if (p)
    *p = v;
}

void sl__wire_u32(sl_wire_t *w, uint32_t v) {
  unsigned char *p = room(w, 4);
  if (p)
    put_le(p, v, 4);
}

void sl__wire_u64(sl_wire_t *w, uint64_t v) {
  unsigned char *p = room(w, 8);
  if (p)
    put_le(p, v, 8);
}

void sl__wire_bytes(sl_wire_t *w, const void *bytes, size_t len) {
  if (len > UINT32_MAX) {
    w->failed = 1;
    return;
  }
  sl__wire_u32(w, (uint32_t)len);
  unsigned char *p = room(w, len);
  if (p && len)
    memcpy(p, bytes, len);
}

void sl__wire_raw(sl_wire_t *w, const void *bytes, size_t len) {
  unsigned char *p = room(w, len);
  if (p && len)
    memcpy(p, bytes, len);
}

void sl__wire_str(sl_wire_t *w, const char *s) {
  sl__wire_bytes(w, s ? s : "", s ? strlen(s) : 0);
}

size_t sl__wire_mark(sl_wire_t *w) {
  size_t at = w->len;
  sl__wire_u32(w, 0);
  return at;
}

void sl__wire_patch(sl_wire_t *w, size_t at, uint32_t v) {
  if (!w->failed && at + 4 <= w->len)
    put_le(w->buf + at, v, 4);
}

void sl__wire_free(sl_wire_t *w) {
  free(w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
  w->failed = 0;
}

static const unsigned char *take(sl_wire_reader_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return NULL;
  }
  const unsigned char *at = r->p;
  r->p += n;
  return at;
}

static uint64_t get_le(sl_wire_reader_t *r, int n) {
  const unsigned char *p = take(r, (size_t)n);
  uint64_t v = 0;
  for (int i = 0; p && i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

uint8_t sl__wire_get_u8(sl_wire_reader_t *r) {
  return (uint8_t)get_le(r, 1);
}

uint32_t sl__wire_get_u32(sl_wire_reader_t *r) {
  return (uint32_t)get_le(r, 4);
}

uint64_t sl__wire_get_u64(sl_wire_reader_t *r) {
  return get_le(r, 8);
}

const unsigned char *sl__wire_get_bytes(sl_wire_reader_t *r, size_t *len) {
  size_t n = sl__wire_get_u32(r);
  const unsigned char *p = take(r, n);
  *len = p ? n : 0;
  return p ? p : (const unsigned char *)"";
}

char *sl__wire_get_strdup(sl_wire_reader_t *r) {
  size_t n;
  const unsigned char *p = sl__wire_get_bytes(r, &n);
  if (r->bad)
    return NULL;
  char *s = malloc(n + 1);
  if (s == NULL) {
    r->bad = 1;
    return NULL;
  }
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}
