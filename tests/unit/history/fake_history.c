/* fake_history.c — the test double declared in fake_history.h: a FIFO of pending appends and an
 * array of every stored frame, under one mutex. Appends reserve their room in both, so that
 * completing never allocates and never fails for want of memory. */
#include "fake_history.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct pending_s {
  sl_frame_t *frame;   /* a reference of our own until completed */
  sl_history_done_cb done;
  void *arg;
} pending_t;

typedef struct fake_history_s {
  sl_history_t base;
  uv_mutex_t lock;     /* guards every field below */
  pending_t *pending;  /* oldest first */
  size_t pending_count, pending_cap;
  sl_frame_t **stored; /* stored[i] has seq first_seq + i; a reference each */
  size_t stored_count, stored_cap;
  uint64_t first_seq;  /* seq the first frame stored here gets */
  int refuse;          /* append fails to start with this, when non-zero */
  size_t cursors;      /* open cursors: they point at this history */
  /* Grouped (fake_history_new_grouped): kicks counted; the group's end told by the test. */
  size_t kicks;
  sl_history_done_cb last_done; /* the last completion's, until its group ends */
  void *last_arg;
} fake_history_t;

typedef struct fake_cursor_s {
  sl_history_cursor_t base;
  uint64_t next, upto, pos;
} fake_cursor_t;

static int grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap)
    return 0;
  size_t cap2 = *cap ? *cap * 2 : 16;
  void *q = realloc(*p, cap2 * size);
  if (q == NULL)
    return -ENOMEM;
  *p = q;
  *cap = cap2;
  return 0;
}

static int fake_append(sl_history_t *h, sl_frame_t *f, sl_history_done_cb done, void *arg) {
  fake_history_t *fh = (fake_history_t *)h;
  assert(f != NULL && done != NULL);
  int r;
  uv_mutex_lock(&fh->lock);
  if ((r = fh->refuse) == 0 &&
      (r = grow((void **)&fh->pending, &fh->pending_cap, fh->pending_count + 1,
                sizeof *fh->pending)) == 0 &&
      (r = grow((void **)&fh->stored, &fh->stored_cap,
                fh->stored_count + fh->pending_count + 1, sizeof *fh->stored)) == 0)
    fh->pending[fh->pending_count++] = (pending_t){sl__frame_ref(f), done, arg};
  uv_mutex_unlock(&fh->lock);
  return r;
}

static uint64_t fake_last_seq(sl_history_t *h) {
  fake_history_t *fh = (fake_history_t *)h;
  uv_mutex_lock(&fh->lock);
  uint64_t seq = fh->first_seq + fh->stored_count - 1;
  uv_mutex_unlock(&fh->lock);
  return seq;
}

/* Entries only: the double does not account bytes. */
static void fake_usage(sl_history_t *h, uint64_t *entries, uint64_t *bytes) {
  fake_history_t *fh = (fake_history_t *)h;
  uv_mutex_lock(&fh->lock);
  *entries = fh->stored_count;
  uv_mutex_unlock(&fh->lock);
  *bytes = 0;
}

size_t fake_history_complete(sl_history_t *h, size_t n, int err) {
  fake_history_t *fh = (fake_history_t *)h;
  size_t done = 0;
  for (; done < n; done++) {
    uv_mutex_lock(&fh->lock);
    if (fh->pending_count == 0) {
      uv_mutex_unlock(&fh->lock);
      break;
    }
    pending_t p = fh->pending[0];
    memmove(fh->pending, fh->pending + 1, --fh->pending_count * sizeof *fh->pending);
    if (err == 0) {
      p.frame->seq = fh->first_seq + fh->stored_count;
      fh->stored[fh->stored_count++] = sl__frame_ref(p.frame);
    }
    fh->last_done = p.done;
    fh->last_arg = p.arg;
    uv_mutex_unlock(&fh->lock);
    p.done(p.frame, err, p.arg);
    sl__frame_unref(p.frame);
  }
  return done;
}

void fake_history_end_group(sl_history_t *h) {
  fake_history_t *fh = (fake_history_t *)h;
  uv_mutex_lock(&fh->lock);
  sl_history_done_cb done = fh->last_done;
  void *arg = fh->last_arg;
  fh->last_done = NULL;
  uv_mutex_unlock(&fh->lock);
  if (done)
    done(NULL, 0, arg);
}

size_t fake_history_kicks(sl_history_t *h) {
  fake_history_t *fh = (fake_history_t *)h;
  uv_mutex_lock(&fh->lock);
  size_t n = fh->kicks;
  uv_mutex_unlock(&fh->lock);
  return n;
}

static void fake_kick(sl_history_t *h) {
  fake_history_t *fh = (fake_history_t *)h;
  uv_mutex_lock(&fh->lock);
  fh->kicks++;
  uv_mutex_unlock(&fh->lock);
}

size_t fake_history_pending(sl_history_t *h) {
  fake_history_t *fh = (fake_history_t *)h;
  uv_mutex_lock(&fh->lock);
  size_t n = fh->pending_count;
  uv_mutex_unlock(&fh->lock);
  return n;
}

void fake_history_refuse(sl_history_t *h, int err) {
  fake_history_t *fh = (fake_history_t *)h;
  uv_mutex_lock(&fh->lock);
  fh->refuse = err;
  uv_mutex_unlock(&fh->lock);
}

/* Stored frames are never dropped, so a cursor is never overtaken; the earliest frame with
 * after_id is found by a plain scan. */
static int fake_cursor_open(sl_history_t *h, const char *after_id, uint64_t upto,
                            sl_history_cursor_t **out, int *found) {
  fake_history_t *fh = (fake_history_t *)h;
  fake_cursor_t *c = malloc(sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->base.history = h;
  c->upto = upto;
  c->pos = 0;
  *found = 0;
  uv_mutex_lock(&fh->lock);
  c->next = fh->first_seq;
  for (size_t i = 0; after_id && strcmp(after_id, "earliest") != 0 && i < fh->stored_count; i++) {
    if (strcmp(fh->stored[i]->id, after_id) == 0) {
      *found = 1;
      c->next = fh->first_seq + i + 1;
      break;
    }
  }
  fh->cursors++;
  uv_mutex_unlock(&fh->lock);
  *out = &c->base;
  return 0;
}

static int fake_cursor_next(sl_history_cursor_t *hc, sl_frame_t **frames, size_t max) {
  fake_cursor_t *c = (fake_cursor_t *)hc;
  fake_history_t *fh = (fake_history_t *)hc->history;
  int n = 0;
  if (max > INT_MAX)
    max = INT_MAX;
  uv_mutex_lock(&fh->lock);
  for (; (size_t)n < max && c->next <= c->upto && c->next < fh->first_seq + fh->stored_count;
       n++, c->next++)
    frames[n] = sl__frame_ref(fh->stored[c->next - fh->first_seq]);
  if (n > 0)
    c->pos = c->next - 1;
  uv_mutex_unlock(&fh->lock);
  return n;
}

static uint64_t fake_cursor_pos(const sl_history_cursor_t *hc) {
  return ((const fake_cursor_t *)hc)->pos;
}

static void fake_cursor_close(sl_history_cursor_t *hc) {
  fake_history_t *fh = (fake_history_t *)hc->history;
  uv_mutex_lock(&fh->lock);
  assert(fh->cursors > 0);
  fh->cursors--;
  uv_mutex_unlock(&fh->lock);
  free(hc);
}

static void fake_destroy(sl_history_t *h) {
  fake_history_t *fh = (fake_history_t *)h;
  assert(fh->cursors == 0);
  fake_history_complete(h, SIZE_MAX, -ECANCELED);
  if (fh->base.ops->groups)
    fake_history_end_group(h);
  for (size_t i = 0; i < fh->stored_count; i++)
    sl__frame_unref(fh->stored[i]);
  uv_mutex_destroy(&fh->lock);
  free(fh->pending);
  free(fh->stored);
  free(fh);
}

static const sl_history_ops_t fake_ops = {
  .append = fake_append,
  .last_seq = fake_last_seq,
  .usage = fake_usage,
  .cursor_open = fake_cursor_open,
  .cursor_next = fake_cursor_next,
  .cursor_pos = fake_cursor_pos,
  .cursor_close = fake_cursor_close,
  .destroy = fake_destroy,
};

/* The same, completing in groups whose ends the test tells, and holding appends (which it does
 * anyway: nothing completes until the test says so) until a kick, which it counts. */
static const sl_history_ops_t fake_grouped_ops = {
  .append = fake_append,
  .last_seq = fake_last_seq,
  .usage = fake_usage,
  .cursor_open = fake_cursor_open,
  .cursor_next = fake_cursor_next,
  .cursor_pos = fake_cursor_pos,
  .cursor_close = fake_cursor_close,
  .groups = 1,
  .append_held = fake_append,
  .kick = fake_kick,
  .destroy = fake_destroy,
};

int fake_history_new(sl_history_t **out, uint64_t last_seq) {
  fake_history_t *fh = calloc(1, sizeof *fh);
  if (fh == NULL)
    return -ENOMEM;
  int r = uv_mutex_init(&fh->lock);
  if (r) {
    free(fh);
    return r;
  }
  fh->base.ops = &fake_ops;
  fh->first_seq = last_seq + 1;
  *out = &fh->base;
  return 0;
}

int fake_history_new_grouped(sl_history_t **out, uint64_t last_seq) {
  int r = fake_history_new(out, last_seq);
  if (r == 0)
    (*out)->ops = &fake_grouped_ops;
  return r;
}
