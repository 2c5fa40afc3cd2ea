/* history.c — the in-memory history: a ring of the last N frames plus an index from id to
 * sequence number, so a resume finds its cursor in O(1). When several updates share an id, the
 * index keeps the earliest retained one, as the protocol requires. */
#include "history/history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct id_slot_s {
  const char *id;    /* borrowed from the frame, which the ring keeps alive */
  uint64_t seq;
} id_slot_t;

typedef struct memory_history_s {
  sl_history_t base;
  sl_frame_t **ring;
  unsigned char *later_dup; /* per ring slot: a later retained frame has the same id */
  size_t capacity;
  size_t count;
  uint64_t first_seq;   /* seq of the oldest retained frame */
  id_slot_t *slots;     /* open addressing, linear probing, tombstone-free deletion */
  size_t slot_mask;
} memory_history_t;

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

static sl_frame_t *ring_at(const memory_history_t *m, uint64_t seq) {
  return m->ring[seq % m->capacity];
}

static int memory_append(sl_history_t *h, sl_frame_t *f) {
  memory_history_t *m = (memory_history_t *)h;
  if (m->capacity == 0)
    return 0;
  if (m->count == m->capacity) {
    sl_frame_t *old = ring_at(m, m->first_seq);
    size_t i = slot_find(m, old->id);
    int reindex = m->slots[i].id != NULL && m->slots[i].seq == old->seq &&
                  m->later_dup[m->first_seq % m->capacity];
    if (m->slots[i].id != NULL && m->slots[i].seq == old->seq)
      slot_delete(m, i);
    m->later_dup[m->first_seq % m->capacity] = 0;
    m->first_seq++;
    m->count--;
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
    sl_frame_unref(old);
  }
  if (m->count == 0)
    m->first_seq = f->seq;
  m->ring[f->seq % m->capacity] = sl_frame_ref(f);
  m->count++;
  size_t i = slot_find(m, f->id);
  if (m->slots[i].id == NULL) {
    m->slots[i].id = f->id;
    m->slots[i].seq = f->seq;
  } else {
    m->later_dup[m->slots[i].seq % m->capacity] = 1;
  }
  return 0;
}

static int memory_replay(sl_history_t *h, const char *after_id, uint64_t upto,
                         sl_history_visit_cb cb, void *arg, int *found) {
  memory_history_t *m = (memory_history_t *)h;
  uint64_t from = m->first_seq;
  *found = 0;
  if (m->count == 0)
    return 0;
  if (after_id != NULL && strcmp(after_id, "earliest") != 0) {
    size_t i = slot_find(m, after_id);
    if (m->slots[i].id != NULL) {
      *found = 1;
      from = m->slots[i].seq + 1;
    }
  }
  uint64_t last = m->first_seq + m->count - 1;
  if (upto < last)
    last = upto;
  for (uint64_t s = from; s <= last; s++)
    cb(ring_at(m, s), arg);
  return 0;
}

static void memory_destroy(sl_history_t *h) {
  memory_history_t *m = (memory_history_t *)h;
  for (size_t i = 0; i < m->count; i++)
    sl_frame_unref(ring_at(m, m->first_seq + i));
  free(m->ring);
  free(m->later_dup);
  free(m->slots);
  free(m);
}

static const sl_history_ops_t memory_ops = {memory_append, memory_replay, memory_destroy};

int sl_history_memory_new(sl_history_t **out, size_t capacity) {
  memory_history_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  size_t slots = 16;
  while (slots < capacity * 2)
    slots <<= 1;
  m->base.ops = &memory_ops;
  m->capacity = capacity;
  m->ring = calloc(capacity ? capacity : 1, sizeof *m->ring);
  m->later_dup = calloc(capacity ? capacity : 1, 1);
  m->slots = calloc(slots, sizeof *m->slots);
  m->slot_mask = slots - 1;
  if (m->ring == NULL || m->slots == NULL || m->later_dup == NULL) {
    free(m->later_dup);
    free(m->ring);
    free(m->slots);
    free(m);
    return -ENOMEM;
  }
  *out = &m->base;
  return 0;
}
