/* frame.h — immutable, refcounted byte frames: an update serialised once as one HTTP chunk and
 * shared by reference by every subscriber queue and by the history. A frame is freed when its
 * last reference is dropped, from whichever thread drops it. */
#ifndef SL_FRAME_H
#define SL_FRAME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

enum {
  SL_FRAME_PRIVATE = 1 << 0, /* the update was published with the private field */
  SL_FRAME_STATIC = 1 << 1,  /* never freed (shared constants such as the heartbeat) */
  SL_FRAME_RAW = 1 << 2,     /* not a chunk: bytes written as they are (response heads) */
  SL_FRAME_HUB = 1 << 3,     /* the hub's own update (a subscription event): history retains
                                it under its own budget, apart from the application's */
};

typedef struct sl_frame_s {
  atomic_uint refs;
  uint32_t len;          /* bytes in wire[] */
  uint16_t hdr;          /* length of the chunk-size line at the start of wire[] */
  uint16_t flags;        /* SL_FRAME_* */
  uint16_t topic_count;
  uint16_t id_len;
  uint64_t seq;          /* global publish order; 0 for frames that are not updates */
  const char *id;        /* NUL-terminated, inside the allocation */
  const char **topics;   /* topic_count NUL-terminated strings, inside the allocation */
  uint32_t *topic_lens;
  char *wire;            /* "<hex>\r\n" payload "\r\n", or raw bytes */
} sl_frame_t;

/* The SSE serialisation of an update (id, event, retry, data lines), as one chunk. The update
 * must have been validated. NULL when out of memory. refs = 1. */
sl_frame_t *sl__frame_update(const sl_update_t *u, const char *id, size_t id_len);

/* An update's frame rebuilt from what was stored of it (a durable history): the SSE payload it
 * carried (its wire bytes without the chunk framing), its id, its topics and its SL_FRAME_PRIVATE
 * and SL_FRAME_HUB flags. The caller sets seq. NULL when out of memory or too large. refs = 1. */
sl_frame_t *sl__frame_restore(const char *payload, size_t len, const char *id, size_t id_len,
                              const char *const *topics, const uint32_t *topic_lens,
                              size_t topic_count, uint16_t flags);

/* payload wrapped as one chunk, e.g. a comment or the final close event. refs = 1. */
sl_frame_t *sl__frame_chunk(const char *payload, size_t len);

/* len raw bytes copied as they are (no chunk framing). refs = 1. */
sl_frame_t *sl__frame_raw(const char *bytes, size_t len);

/* The bytes to write for this frame on a connection that does (or does not) use chunking. */
static inline const char *sl__frame_bytes(const sl_frame_t *f, int chunked, size_t *len) {
  if (chunked || (f->flags & SL_FRAME_RAW)) {
    *len = f->len;
    return f->wire;
  }
  *len = f->len - f->hdr - 2;
  return f->wire + f->hdr;
}

static inline sl_frame_t *sl__frame_ref(sl_frame_t *f) {
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void sl__frame_free(sl_frame_t *f);

static inline void sl__frame_unref(sl_frame_t *f) {
  if (f->flags & SL_FRAME_STATIC)
    return;
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
    sl__frame_free(f);
}

/* The terminating zero-length chunk, and the keep-alive comment, shared by every stream. */
extern sl_frame_t sl__frame_heartbeat;
extern sl_frame_t sl__frame_terminator;

#endif
