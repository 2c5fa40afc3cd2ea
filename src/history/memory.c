/* memory.c — the in-memory history: two rings, the last N application updates and the last M
 * of the hub's own (subscription events, SL_FRAME_HUB), each under its own budget so that
 * neither evicts the other, plus an index from id to sequence number, so a cursor finds its place
 * in O(1) (and its ring position by binary search); cursors merge the rings by seq, so a resume
 * sees both in the one global order. When several updates share an id, the
 * index keeps the earliest retained one, as the protocol requires. It numbers the updates itself
 * (1, 2, 3, ...) and completes each append before append returns. One mutex guards the ring: an
 * append holds it for O(1) work (plus a scan of the ring when it evicts an id known to repeat),
 * a cursor only while it copies a page of references; callbacks are called outside it. It keeps
 * at most capacity frames per ring and, when given a byte budget, at most that many bytes of each
 * ring's frames (the newest frame stays even when it alone is larger). It does not persist anything across
 * restarts. */
#include "history/history.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct id_slot_s {
  const char *id;    /* borrowed from the frame, which a ring keeps alive */
  uint64_t seq;
} id_slot_t;

/* The frames of one budget, oldest first, in seq order (not contiguous: the other ring's frames
 * fall between them). */
typedef struct ring_s {
  sl_frame_t **frames;      /* circular: position i (0 = oldest) at (head + i) % capacity */
  unsigned char *later_dup; /* per slot: a later retained frame (either ring) has the same id */
  size_t capacity;
  size_t head;
  size_t count;
  uint64_t bytes;           /* memory of its frames (frame_bytes) */
  uint64_t dropped;         /* seq of the newest frame it dropped (or never kept), 0 = none */
} ring_t;

enum { RING_APP, RING_HUB, RINGS };

typedef struct memory_history_s {
  sl_history_t base;
  uv_mutex_t lock;      /* guards every field below */
  ring_t rings[RINGS];  /* the application's updates, and the hub's own (SL_FRAME_HUB) */
  uint64_t max_bytes;   /* budget of each ring's frames' memory; 0 = none */
  uint64_t last_seq;    /* seq given to the newest append, 0 before the first */
  id_slot_t *slots;     /* open addressing, linear probing, tombstone-free deletion */
  size_t slot_mask;
  size_t cursors;       /* open cursors: they point at this history, so destroy must wait */
} memory_history_t;

typedef struct memory_cursor_s {
  sl_history_cursor_t base;
  uint64_t next;             /* seq of the next frame to return */
  uint64_t upto;             /* last seq to return */
  uint64_t pos;              /* seq of the last frame returned, 0 before the first */
  uint64_t want[RINGS];      /* per ring: the seq of its next frame the cursor has to return
                                (or, none retained, last_seq + 1 when it looked: its next
                                frame can only come later) */
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

static size_t ring_slot(const ring_t *r, size_t i) {
  return (r->head + i) % r->capacity;
}

static sl_frame_t *ring_get(const ring_t *r, size_t i) {
  return r->frames[ring_slot(r, i)];
}

/* The position of the first frame of r whose seq is at least seq (r->count when none is). */
static size_t ring_lower(const ring_t *r, uint64_t seq) {
  size_t lo = 0, hi = r->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ring_get(r, mid)->seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The later_dup flag of the retained frame numbered seq, NULL when none is. */
static unsigned char *dup_flag(memory_history_t *m, uint64_t seq) {
  for (int k = 0; k < RINGS; k++) {
    ring_t *r = &m->rings[k];
    size_t i = ring_lower(r, seq);
    if (i < r->count && ring_get(r, i)->seq == seq)
      return &r->later_dup[ring_slot(r, i)];
  }
  return NULL;
}

/* The oldest retained seq, either ring; last_seq + 1 when none is. */
static uint64_t first_retained(const memory_history_t *m) {
  uint64_t first = m->last_seq + 1;
  for (int k = 0; k < RINGS; k++)
    if (m->rings[k].count > 0 && ring_get(&m->rings[k], 0)->seq < first)
      first = ring_get(&m->rings[k], 0)->seq;
  return first;
}

/* Makes room in r by dropping its oldest frame; returns it for the caller to release. Lock held,
 * at least one frame retained in r. */
static sl_frame_t *evict_oldest(memory_history_t *m, ring_t *r) {
  assert(r->capacity > 0 && r->count > 0);
  sl_frame_t *old = r->frames[r->head];
  size_t i = slot_find(m, old->id);
  int indexed = m->slots[i].id != NULL && m->slots[i].seq == old->seq;
  int reindex = indexed && r->later_dup[r->head];
  if (indexed)
    slot_delete(m, i);
  r->later_dup[r->head] = 0;
  r->head = (r->head + 1) % r->capacity;
  r->count--;
  r->bytes -= frame_bytes(old);
  r->dropped = old->seq;
  /* A reused id now resolves to its earliest retained copy, in either ring; only ids known to
   * repeat pay for this scan. */
  sl_frame_t *earliest = NULL;
  unsigned char *flag = NULL;
  for (int k = 0; reindex && k < RINGS; k++) {
    ring_t *q = &m->rings[k];
    for (size_t s = 0; s < q->count; s++) {
      sl_frame_t *g = ring_get(q, s);
      if (strcmp(g->id, old->id) == 0) {
        if (earliest == NULL || g->seq < earliest->seq) {
          earliest = g;
          flag = &q->later_dup[ring_slot(q, s)];
        }
        break;
      }
    }
  }
  if (earliest) {
    size_t k = slot_find(m, earliest->id);
    m->slots[k].id = earliest->id;
    m->slots[k].seq = earliest->seq;
    *flag = 1; /* conservative: later copies may follow */
  }
  return old;
}

/* Keeps f, whose seq is set, as the newest of its ring. Lock held. Returns the frame evicted
 * first (to release after the lock), or NULL. */
static sl_frame_t *keep_locked(memory_history_t *m, sl_frame_t *f) {
  sl_frame_t *old = NULL;
  ring_t *r = &m->rings[(f->flags & SL_FRAME_HUB) ? RING_HUB : RING_APP];
  if (r->capacity == 0) {
    r->dropped = f->seq;
    return NULL;
  }
  uint64_t need = frame_bytes(f);
  if (r->count == r->capacity)
    old = evict_oldest(m, r);
  /* The byte budget may take several of the oldest: all but the first are released here,
   * under the lock (a free each), which only an update much larger than most costs. */
  while (m->max_bytes && r->count > 0 && r->bytes + need > m->max_bytes) {
    sl_frame_t *more = evict_oldest(m, r);
    if (old == NULL)
      old = more;
    else
      sl__frame_unref(more);
  }
  r->frames[ring_slot(r, r->count)] = sl__frame_ref(f);
  r->later_dup[ring_slot(r, r->count)] = 0;
  r->count++;
  r->bytes += need;
  size_t i = slot_find(m, f->id);
  if (m->slots[i].id == NULL) {
    m->slots[i].id = f->id;
    m->slots[i].seq = f->seq;
  } else {
    unsigned char *flag = dup_flag(m, m->slots[i].seq);
    assert(flag != NULL);
    *flag = 1;
  }
  return old;
}

static int memory_append(sl_history_t *h, sl_frame_t *f, sl_history_done_cb done, void *arg) {
  memory_history_t *m = (memory_history_t *)h;
  assert(f != NULL && f->id != NULL && done != NULL);
  uv_mutex_lock(&m->lock);
  /* Set before the frame is visible to a cursor: readers see it through the lock. */
  f->seq = ++m->last_seq;
  sl_frame_t *old = keep_locked(m, f);
  uv_mutex_unlock(&m->lock);
  if (old)
    sl__frame_unref(old);
  done(f, 0, arg);
  return 0;
}

int sl__history_memory_restore(sl_history_t *h, sl_frame_t *f) {
  memory_history_t *m = (memory_history_t *)h;
  assert(f != NULL && f->id != NULL);
  uv_mutex_lock(&m->lock);
  if (f->seq <= m->last_seq) {
    uv_mutex_unlock(&m->lock);
    return -EINVAL;
  }
  m->last_seq = f->seq;
  sl_frame_t *old = keep_locked(m, f);
  uv_mutex_unlock(&m->lock);
  if (old)
    sl__frame_unref(old);
  return 0;
}

void sl__history_memory_marks(sl_history_t *h, uint64_t *last_seq, uint64_t dropped[2]) {
  memory_history_t *m = (memory_history_t *)h;
  uv_mutex_lock(&m->lock);
  *last_seq = m->last_seq;
  dropped[0] = m->rings[RING_APP].dropped;
  dropped[1] = m->rings[RING_HUB].dropped;
  uv_mutex_unlock(&m->lock);
}

int sl__history_memory_set_marks(sl_history_t *h, uint64_t last_seq, const uint64_t dropped[2]) {
  memory_history_t *m = (memory_history_t *)h;
  uv_mutex_lock(&m->lock);
  int r = last_seq < m->last_seq ? -EINVAL : 0;
  if (r == 0) {
    m->last_seq = last_seq;
    for (int i = 0; i < RINGS; i++)
      if (m->rings[i].dropped < dropped[i])
        m->rings[i].dropped = dropped[i];
  }
  uv_mutex_unlock(&m->lock);
  return r;
}

static void memory_usage(sl_history_t *h, uint64_t *entries, uint64_t *bytes) {
  memory_history_t *m = (memory_history_t *)h;
  uv_mutex_lock(&m->lock);
  *entries = m->rings[RING_APP].count + m->rings[RING_HUB].count;
  *bytes = m->rings[RING_APP].bytes + m->rings[RING_HUB].bytes;
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
  c->next = first_retained(m);
  if (after_id != NULL && strcmp(after_id, "earliest") != 0) {
    size_t i = slot_find(m, after_id);
    if (m->slots[i].id != NULL) {
      *found = 1;
      c->next = m->slots[i].seq + 1;
    }
  }
  for (int k = 0; k < RINGS; k++) {
    size_t i = ring_lower(&m->rings[k], c->next);
    c->want[k] = i < m->rings[k].count ? ring_get(&m->rings[k], i)->seq : m->last_seq + 1;
  }
  m->cursors++;
  uv_mutex_unlock(&m->lock);
  *out = &c->base;
  return 0;
}

/* The two rings merged by seq. A ring drops in seq order, so the frame a cursor has to return
 * next from it was dropped when the ring's newest dropped seq reached it: lost to the cursor
 * (when within upto), -ESPIPE. What was dropped before the cursor opened is retention's (a resume
 * gets what is retained), as is what comes after upto. */
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
  for (int k = 0; k < RINGS; k++) {
    if (m->rings[k].dropped >= c->want[k] && c->want[k] <= c->upto) {
      uv_mutex_unlock(&m->lock);
      return -ESPIPE;
    }
  }
  const ring_t *a = &m->rings[RING_APP], *b = &m->rings[RING_HUB];
  size_t i = ring_lower(a, c->next), j = ring_lower(b, c->next);
  size_t n = 0;
  while (n < max) {
    sl_frame_t *fa = i < a->count ? ring_get(a, i) : NULL;
    sl_frame_t *fb = j < b->count ? ring_get(b, j) : NULL;
    sl_frame_t *f;
    if (fa && (fb == NULL || fa->seq < fb->seq)) {
      f = fa;
      i++;
    } else if (fb) {
      f = fb;
      j++;
    } else {
      break;
    }
    if (f->seq > last)
      break;
    frames[n++] = sl__frame_ref(f);
    c->next = f->seq + 1;
    c->pos = f->seq;
  }
  c->want[RING_APP] = i < a->count ? ring_get(a, i)->seq : m->last_seq + 1;
  c->want[RING_HUB] = j < b->count ? ring_get(b, j)->seq : m->last_seq + 1;
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
  for (int k = 0; k < RINGS; k++) {
    ring_t *r = &m->rings[k];
    for (size_t i = 0; i < r->count; i++)
      sl__frame_unref(ring_get(r, i));
    free(r->frames);
    free(r->later_dup);
  }
  uv_mutex_destroy(&m->lock);
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
  return sl__history_memory_new_split(out, capacity, capacity, max_bytes);
}

int sl__history_memory_new_split(sl_history_t **out, size_t capacity, size_t hub_capacity,
                                 uint64_t max_bytes) {
  int r = -ENOMEM;
  /* The index has twice as many slots as both rings, a power of two: past this, it overflows. */
  size_t limit = SIZE_MAX / 8 / sizeof(sl_frame_t *);
  if (capacity > limit || hub_capacity > limit)
    return -EINVAL;
  memory_history_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  size_t slots = 16;
  while (slots < (capacity + hub_capacity) * 2)
    slots <<= 1;
  m->base.ops = &memory_ops;
  m->max_bytes = max_bytes;
  m->rings[RING_APP].capacity = capacity;
  m->rings[RING_HUB].capacity = hub_capacity;
  int ok = 1;
  for (int k = 0; k < RINGS; k++) {
    size_t cap = m->rings[k].capacity ? m->rings[k].capacity : 1;
    m->rings[k].frames = calloc(cap, sizeof *m->rings[k].frames);
    m->rings[k].later_dup = calloc(cap, 1);
    ok = ok && m->rings[k].frames && m->rings[k].later_dup;
  }
  m->slots = calloc(slots, sizeof *m->slots);
  m->slot_mask = slots - 1;
  if (!ok || m->slots == NULL)
    goto fail_alloc;
  if ((r = uv_mutex_init(&m->lock)))
    goto fail_alloc;
  *out = &m->base;
  return 0;
fail_alloc:
  for (int k = 0; k < RINGS; k++) {
    free(m->rings[k].frames);
    free(m->rings[k].later_dup);
  }
  free(m->slots);
  free(m);
  return r;
}
