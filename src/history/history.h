/* history.h — where updates are kept for resume (Last-Event-ID), behind an interface so that the
 * in-memory ring, a durable store and a shared cluster log can stand in for each other. The hub
 * calls append() and replay() with its publish lock held, so implementations need no lock of
 * their own; replay() visits frames in publish order. */
#ifndef SL_HISTORY_H
#define SL_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"

typedef struct sl_history_s sl_history_t;

/* Visits one replayed frame; the frame is borrowed (take a ref to keep it). */
typedef void (*sl_history_visit_cb)(sl_frame_t *frame, void *arg);

typedef struct sl_history_ops_s {
  /* Keeps a reference to frame (frame->seq is set). 0 or a negative errno. */
  int (*append)(sl_history_t *h, sl_frame_t *frame);
  /* Visits the frames published after the one whose id is after_id (NULL or "earliest": all
   * retained), up to and including seq upto. *found is 1 when after_id was found (the cursor then
   * is after_id), 0 when it was not (the cursor is "earliest" and every retained frame is visited). */
  int (*replay)(sl_history_t *h, const char *after_id, uint64_t upto, sl_history_visit_cb cb,
                void *arg, int *found);
  void (*destroy)(sl_history_t *h);
} sl_history_ops_t;

struct sl_history_s {
  const sl_history_ops_t *ops;
};

/* The in-memory ring of the last capacity updates (capacity 0 keeps nothing). */
int sl_history_memory_new(sl_history_t **h, size_t capacity);

#endif
