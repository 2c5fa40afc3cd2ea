/* memory.c — the in-memory history: a ring of the last N frames plus an index from id to
 * sequence number, so a cursor finds its place in O(1). When several updates share an id, the
 * index keeps the earliest retained one, as the protocol requires. It numbers the updates itself
 * (1, 2, 3, ...) and completes each append before append returns. One mutex guards the ring: an
 * append holds it for O(1) work (plus a scan of the ring when it evicts an id known to repeat),
 * a cursor only while it copies a page of references; callbacks are called outside it. It keeps
 * at most capacity frames and, when given a byte budget, at most that many bytes of them (the
 * newest frame stays even when it alone is larger). It does not persist anything across
 * restarts. */
#include "history/history.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct id_slot_s {
  const char *id;    /* borrowed from the frame, which the ring keeps alive */
  uint64_t seq;
} id_slot_t;

typedef struct memory_history_s {
  sl_history_t base;
  uv_mutex_t lock;      /* guards every field below */
  sl_frame_t **ring;
  unsigned char *later_dup; /* per ring slot: a later retained frame has the same id */
  size_t capacity;
  size_t count;
  uint64_t max_bytes;   /* budget of the retained frames' memory; 0 = none */
  uint64_t bytes;       /* memory of the retained frames (frame_bytes) */
  uint64_t first_seq;   /* seq of the oldest retained frame; last_seq + 1 when none is */
  uint64_t last_seq;    /* seq given to the newest append, 0 before the first */
  id_slot_t *slots;     /* open addressing, linear probing, tombstone-free deletion */
  size_t slot_mask;
  size_t cursors;       /* open cursors: they point at this history, so destroy must wait */
} memory_history_t;

typedef struct memory_cursor_s {
  sl_history_cursor_t base;
  uint64_t next;        /* seq of the next frame to return */
  uint64_t upto;        /* last seq to return */
  uint64_t pos;         /* seq of the last frame returned, 0 before the first */
} memory_cursor_t;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  while (*s) {
    h ^= (unsigned char)*s++;
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 29);
}

static size_t slot_find(const memory_history_t *m, const char *id) {
  size_t i = hash_str(id) & m->slot_mask;
  while (m->slots[i].id != NULL && strcmp(m->slots[i].id, id) != 0)
    i = (i + 1) & m->slot_mask;
  return i;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void slot_delete(memory_history_t *m, size_t i) {
  size_t j = i;
  for (;;) {
    m->slots[i].id = NULL;
    for (;;) {
      j = (j + 1) & m->slot_mask;
      if (m->slots[j].id == NULL)
        return;
      size_t k = hash_str(m->slots[j].id) & m->slot_mask;
      if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
        continue;
      break;
    }
    m->slots[i] = m->slots[j];
    i = j;
  }
}

/* What a frame costs in memory: its struct, wire bytes, id and topics, as frame.c lays it out. */
static uint64_t frame_bytes(const sl_frame_t *f) {
  uint64_t n = sizeof *f + f->len + f->id_len + 1;
  for (size_t i = 0; i < f->topic_count; i++)
    n += sizeof(char *) + sizeof(uint32_t) + f->topic_lens[i] + 1;
  return n;
}

static sl_frame_t *ring_at(const memory_history_t *m, uint64_t seq) {
  return m->ring[seq % m->capacity];
}

/* Makes room by dropping the oldest frame; returns it for the caller to release. Lock held, at
 * least one frame retained. */
static sl_frame_t *evict_oldest(memory_history_t *m) {
  assert(m->capacity > 0 && m->count > 0);
  sl_frame_t *old = ring_at(m, m->first_seq);
  size_t i = slot_find(m, old->id);
  int indexed = m->slots[i].id != NULL && m->slots[i].seq == old->seq;
  int reindex = indexed && m->later_dup[m->first_seq % m->capacity];
  if (indexed)
    slot_delete(m, i);
  m->later_dup[m->first_seq % m->capacity] = 0;
  m->first_seq++;
  m->count--;
  m->bytes -= frame_bytes(old);
  /* A reused id now resolves to its earliest retained copy; only ids known to repeat pay
   * for this scan. */
  for (uint64_t s = m->first_seq; reindex && s < m->first_seq + m->count; s++) {
    sl_frame_t *g = ring_at(m, s);
    if (strcmp(g->id, old->id) == 0) {
      size_t k = slot_find(m, g->id);
      m->slots[k].id = g->id;
      m->slots[k].seq = g->seq;
      m->later_dup[s % m->capacity] = 1; /* conservative: later copies may follow */
      break;
    }
  }
  return old;
}

static int memory_append(sl_history_t *h, sl_frame_t *f, sl_history_done_cb done, void *arg) {
  memory_history_t *m = (memory_history_t *)h;
  sl_frame_t *old = NULL;
  assert(f != NULL && f->id != NULL && done != NULL);
  uv_mutex_lock(&m->lock);
  /* Set before the frame is visible to a cursor: readers see it through the lock. */
  f->seq = ++m->last_seq;
  if (m->capacity == 0) {
    m->first_seq = f->seq + 1;
  } else {
    uint64_t need = frame_bytes(f);
    if (m->count == m->capacity)
      old = evict_oldest(m);
    /* The byte budget may take several of the oldest: all but the first are released here,
     * under the lock (a free each), which only an update much larger than most costs. */
    while (m->max_bytes && m->count > 0 && m->bytes + need > m->max_bytes) {
      sl_frame_t *more = evict_oldest(m);
      if (old == NULL)
        old = more;
      else
        sl__frame_unref(more);
    }
    m->ring[f->seq % m->capacity] = sl__frame_ref(f);
    m->count++;
    m->bytes += need;
    size_t i = slot_find(m, f->id);
    if (m->slots[i].id == NULL) {
      m->slots[i].id = f->id;
      m->slots[i].seq = f->seq;
    } else {
      m->later_dup[m->slots[i].seq % m->capacity] = 1;
    }
  }
  uv_mutex_unlock(&m->lock);
  if (old)
    sl__frame_unref(old);
  done(f, 0, arg);
  return 0;
}

static void memory_usage(sl_history_t *h, uint64_t *entries, uint64_t *bytes) {
  memory_history_t *m = (memory_history_t *)h;
  uv_mutex_lock(&m->lock);
  *entries = m->count;
  *bytes = m->bytes;
  uv_mutex_unlock(&m->lock);
}

static uint64_t memory_last_seq(sl_history_t *h) {
  memory_history_t *m = (memory_history_t *)h;
  uv_mutex_lock(&m->lock);
  uint64_t seq = m->last_seq;
  uv_mutex_unlock(&m->lock);
  return seq;
}

static int memory_cursor_open(sl_history_t *h, const char *after_id, uint64_t upto,
                              sl_history_cursor_t **out, int *found) {
  memory_history_t *m = (memory_history_t *)h;
  memory_cursor_t *c = malloc(sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->base.history = h;
  c->upto = upto;
  c->pos = 0;
  *found = 0;
  uv_mutex_lock(&m->lock);
  c->next = m->first_seq;
  if (m->count > 0 && after_id != NULL && strcmp(after_id, "earliest") != 0) {
    size_t i = slot_find(m, after_id);
    if (m->slots[i].id != NULL) {
      *found = 1;
      c->next = m->slots[i].seq + 1;
    }
  }
  m->cursors++;
  uv_mutex_unlock(&m->lock);
  *out = &c->base;
  return 0;
}

static int memory_cursor_next(sl_history_cursor_t *hc, sl_frame_t **frames, size_t max) {
  memory_cursor_t *c = (memory_cursor_t *)hc;
  memory_history_t *m = (memory_history_t *)hc->history;
  assert(frames != NULL || max == 0);
  if (max > INT_MAX)
    max = INT_MAX; /* the count is returned as an int */
  uv_mutex_lock(&m->lock);
  uint64_t last = m->last_seq < c->upto ? m->last_seq : c->upto;
  if (c->next > last) {
    uv_mutex_unlock(&m->lock);
    return 0;
  }
  if (c->next < m->first_seq) {
    uv_mutex_unlock(&m->lock);
    return -ESPIPE;
  }
  size_t n = 0;
  for (; n < max && c->next <= last; n++, c->next++)
    frames[n] = sl__frame_ref(ring_at(m, c->next));
  if (n > 0)
    c->pos = c->next - 1;
  uv_mutex_unlock(&m->lock);
  return (int)n;
}

static uint64_t memory_cursor_pos(const sl_history_cursor_t *hc) {
  return ((const memory_cursor_t *)hc)->pos;
}

static void memory_cursor_close(sl_history_cursor_t *hc) {
  memory_history_t *m = (memory_history_t *)hc->history;
  uv_mutex_lock(&m->lock);
  assert(m->cursors > 0);
  m->cursors--;
  uv_mutex_unlock(&m->lock);
  free(hc);
}

static void memory_destroy(sl_history_t *h) {
  memory_history_t *m = (memory_history_t *)h;
  assert(m->cursors == 0);
  for (size_t i = 0; i < m->count; i++)
    sl__frame_unref(ring_at(m, m->first_seq + i));
  uv_mutex_destroy(&m->lock);
  free(m->ring);
  free(m->later_dup);
  free(m->slots);
  free(m);
}

static const sl_history_ops_t memory_ops = {
  .append = memory_append,
  .last_seq = memory_last_seq,
  .usage = memory_usage,
  .cursor_open = memory_cursor_open,
  .cursor_next = memory_cursor_next,
  .cursor_pos = memory_cursor_pos,
  .cursor_close = memory_cursor_close,
  .destroy = memory_destroy,
};

int sl__history_memory_new(sl_history_t **out, size_t capacity, uint64_t max_bytes) {
  int r = -ENOMEM;
  /* The index has twice as many slots as the ring, a power of two: past this, it overflows. */
  if (capacity > SIZE_MAX / 4 / sizeof(sl_frame_t *))
    return -EINVAL;
  memory_history_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  size_t slots = 16;
  while (slots < capacity * 2)
    slots <<= 1;
  m->base.ops = &memory_ops;
  m->capacity = capacity;
  m->max_bytes = max_bytes;
  m->first_seq = 1;
  m->ring = calloc(capacity ? capacity : 1, sizeof *m->ring);
  m->later_dup = calloc(capacity ? capacity : 1, 1);
  m->slots = calloc(slots, sizeof *m->slots);
  m->slot_mask = slots - 1;
  if (m->ring == NULL || m->slots == NULL || m->later_dup == NULL)
    goto fail_alloc;
  if ((r = uv_mutex_init(&m->lock)))
    goto fail_alloc;
  *out = &m->base;
  return 0;
fail_alloc:
  free(m->later_dup);
  free(m->ring);
  free(m->slots);
  free(m);
  return r;
}
