/* bus.c — the publish path (see bus.h): validation, serialisation, the global order, and the
 * posts to every worker's inbox. */
#include "net/bus.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/uuid.h"
#include "common/validate.h"

#define REPLAY_PAGE 256  /* frames a replay takes from history at a time */
#define REPLAY_ATTEMPTS 3 /* replays restarted after retention overtook them, before giving up */

/* One append the bus waits on: a thread blocked in sl__bus_publish (waiter), or an answer to
 * hand to a worker (pending), or both NULL once the publisher stopped caring. */
typedef struct waiter_s {
  int done;
  int err;
  uint64_t seq;
} waiter_t;

struct sl_bus_wait_s {
  waiter_t *waiter;
  sl_worker_t *worker;
  sl_bus_pending_t *pending;
};

static void post_frame(sl_bus_t *b, sl_frame_t *f, int hold);
static void group_end(sl_bus_t *b);

/* A shared log's frame, in its order, from the backend's thread: what every worker delivers.
 * NULL: the end of a group of them (history.h). */
static void fed(sl_frame_t *f, void *arg) {
  sl_bus_t *b = arg;
  if (f == NULL) {
    group_end(b);
    return;
  }
  uv_mutex_lock(&b->lock);
  b->fed_seq = f->seq;
  /* After the drain message nothing more reaches the workers: their streams are ending. */
  if (!b->drain_posted) {
    post_frame(b, f, b->history->ops->groups);
    if (b->keep_last) {
      if (b->last)
        sl__frame_unref(b->last);
      b->last = sl__frame_ref(f);
    }
  }
  uv_mutex_unlock(&b->lock);
}

/* On the worker's thread, at its wake-up after the turn whose publishes held their appends. */
static void kick_run(sl_worker_call_t *c) {
  sl_bus_kick_t *k = (sl_bus_kick_t *)c;
  k->posted = 0;
  k->bus->history->ops->kick(k->bus->history);
}

int sl__bus_init(sl_bus_t *b, sl_history_t *history) {
  memset(b, 0, sizeof *b);
  b->history = history;
  for (unsigned i = 0; i < SL_MAX_WORKERS; i++)
    b->kicks[i] = (sl_bus_kick_t){.call.fn = kick_run, .bus = b};
  int r = uv_mutex_init(&b->lock);
  if (r)
    return r;
  if ((r = uv_cond_init(&b->stored))) {
    uv_mutex_destroy(&b->lock);
    return r;
  }
  if (history->ops->feed) {
    b->feeds = 1;
    b->fed_seq = sl__history_last_seq(history);
    history->ops->feed(history, fed, b);
  }
  return 0;
}

void sl__bus_destroy(sl_bus_t *b) {
  if (b->last)
    sl__frame_unref(b->last);
  b->last = NULL;
  /* History is destroyed by now: its last completions found no worker to answer on. */
  sl_worker_call_t *c = b->orphans;
  while (c) {
    sl_worker_call_t *next = c->next;
    c->fn(c);
    c = next;
  }
  free(b->waits);
  uv_cond_destroy(&b->stored);
  uv_mutex_destroy(&b->lock);
}

/* The bus whose append this thread is inside, lock held: a completion the backend makes from
 * inside append has the lock already. Thread-local, so no other thread reads it. */
static _Thread_local sl_bus_t *appending;

void sl__bus_attach(sl_bus_t *b, sl_worker_t *workers, unsigned count) {
  uint64_t seq = sl__history_last_seq(b->history);
  uv_mutex_lock(&b->lock);
  if (b->feeds)
    seq = b->fed_seq; /* the feed moves on meanwhile: where it stands under the lock */
  b->workers = workers;
  b->worker_count = count;
  /* A durable history reopens at seq: every worker starts there, or the first update after a
   * restart would look like a gap to it. */
  for (unsigned i = 0; i < count; i++)
    sl__worker_seed(&workers[i], seq);
  uv_mutex_unlock(&b->lock);
}

void sl__bus_feed_moved(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  if (b->feeds)
    b->fed_seq = sl__history_last_seq(b->history);
  uv_mutex_unlock(&b->lock);
}

/* Protocol rules a publish through the API must follow too. */
static int check_update(const sl_bus_t *b, const sl_update_t *u, const char **why) {
  const char *hub_path = b->hub_path ? b->hub_path : "/.well-known/mercure";
  if (u->topic_count == 0 || u->topics == NULL) {
    *why = "an update needs at least one topic";
    return -EINVAL;
  }
  for (size_t i = 0; i < u->topic_count; i++)
    if (u->topics[i] == NULL ||
        sl__check_topic_at(u->topics[i], strlen(u->topics[i]), hub_path, why))
      return -EINVAL;
  if (u->data && !sl__utf8_valid(u->data, u->data_len)) {
    *why = "data is not valid UTF-8";
    return -EINVAL;
  }
  if ((u->id && sl__check_id(u->id, strlen(u->id), why)) ||
      (u->type && sl__check_type(u->type, strlen(u->type), why)) ||
      (u->retry && sl__check_retry(u->retry, strlen(u->retry), why)))
    return -EINVAL;
  return 0;
}

/* Every worker gets the drain message, after every update that reached it. Lock held. */
static void post_drain(sl_bus_t *b) {
  b->drain_posted = 1;
  for (unsigned i = 0; i < b->worker_count; i++) {
    sl__worker_post(&b->workers[i], SL_MSG_DRAIN, NULL);
    sl__worker_wake(&b->workers[i]);
  }
}

/* Lock held: worker i is woken now, or, hold, at the end of the group (group_end). */
static void wake_worker(sl_bus_t *b, unsigned i, int hold) {
  if (hold)
    b->wake_due[i / 64] |= (uint64_t)1 << (i % 64);
  else
    sl__worker_wake(&b->workers[i]);
}

/* The end of a group of completions from the backend's thread: one wake-up per worker the group
 * posted to, instead of one per completion (each is a write(2) to an eventfd, and often a
 * sleeping thread woken). Under the lock, as every wake-up. */
static void group_end(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  for (unsigned k = 0; k < sizeof b->wake_due / sizeof b->wake_due[0]; k++) {
    while (b->wake_due[k]) {
      unsigned i = k * 64 + (unsigned)__builtin_ctzll(b->wake_due[k]);
      b->wake_due[k] &= b->wake_due[k] - 1;
      if (i < b->worker_count)
        sl__worker_wake(&b->workers[i]);
    }
  }
  if (b->broadcast_due)
    uv_cond_broadcast(&b->stored);
  b->broadcast_due = 0;
  uv_mutex_unlock(&b->lock);
}

/* Lock held: every worker gets f, in the order history stored it; hold: their wake-ups wait for
 * the end of the group. */
static void post_frame(sl_bus_t *b, sl_frame_t *f, int hold) {
  for (unsigned i = 0; i < b->worker_count; i++) {
    sl_worker_t *w = &b->workers[i];
    int wake = sl__worker_post(w, SL_MSG_FRAME, sl__frame_ref(f));
    if (wake < 0) {
      /* Out of memory posting. The update is in history and accepted; this worker's streams
       * would miss it, so they end before anything later reaches them, and get it back when
       * their clients resume with Last-Event-ID. The worker was told (lost_seq): the wake-up
       * makes it act now, not at the next update. */
      sl__frame_unref(f);
      sl__worker_wake(w);
      continue;
    }
    /* Woken under the lock: a worker never stops while a wake-up is still on its way. */
    if (wake)
      wake_worker(b, i, hold);
  }
}

/* Lock held: room for one more wait at the ring's tail. */
static int waits_reserve(sl_bus_t *b) {
  if (b->pending < b->waits_cap)
    return 0;
  size_t cap = b->waits_cap ? b->waits_cap * 2 : 64;
  sl_bus_wait_t *w = malloc(cap * sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < b->pending; i++)
    w[i] = b->waits[(b->waits_head + i) % b->waits_cap];
  free(b->waits);
  b->waits = w;
  b->waits_head = 0;
  b->waits_cap = cap;
  return 0;
}

/* History's completion, in append order: from inside append (memory: the lock is held by this
 * thread already) or later from the backend's thread (take it). */
static void stored(sl_frame_t *f, int err, void *arg) {
  sl_bus_t *b = arg;
  if (f == NULL) {
    group_end(b);
    return;
  }
  int inside = appending == b;
  int hold = !inside && b->history->ops->groups;
  if (!inside)
    uv_mutex_lock(&b->lock);
  assert(b->pending > 0);
  sl_bus_wait_t w = b->waits[b->waits_head];
  b->waits_head = (b->waits_head + 1) % b->waits_cap;
  b->pending--;
  if (err && (f->flags & SL_FRAME_HUB)) {
    /* Nobody waits for a hub update's append: its failure is said here. Logged at the 1st, 2nd,
     * 4th, ... failure, so that a storm of them does not flood the log; all are counted. */
    b->hub_failed++;
    if ((b->hub_failed & (b->hub_failed - 1)) == 0)
      sl__log(SL_LOG_ERROR, "history: a subscription event (%.200s) could not be stored: %s; "
              "%" PRIu64 " so far (sluice_subscription_events_lost_total)", f->topics[0],
              strerror(-err), b->hub_failed);
  }
  uint64_t seq = f->seq;
  if (b->feeds) {
    /* The log has it; the update reaches the workers from the feed. Its own seq is not known yet:
     * the back-pressure measures from where the feed stands. */
    seq = b->fed_seq;
  } else if (err == 0) {
    post_frame(b, f, hold);
    if (b->keep_last) {
      if (b->last)
        sl__frame_unref(b->last);
      b->last = sl__frame_ref(f);
    }
  }
  if (w.waiter) {
    w.waiter->done = 1;
    w.waiter->err = err;
    w.waiter->seq = seq;
    b->broadcast_due = 1;
  } else if (w.pending) {
    /* After the frame: the publisher's worker dispatches the update before it answers. */
    w.pending->err = err;
    w.pending->seq = seq;
    if (b->workers == NULL) {
      w.pending->call.next = b->orphans;
      b->orphans = &w.pending->call;
    } else if (sl__worker_post_call(w.worker, &w.pending->call)) {
      assert(w.worker >= b->workers && w.worker < b->workers + b->worker_count);
      wake_worker(b, (unsigned)(w.worker - b->workers), hold);
    }
  }
  if (b->closed && b->pending == 0 && !b->drain_posted)
    post_drain(b);
  if (!inside) {
    if (!hold && b->broadcast_due) {
      uv_cond_broadcast(&b->stored);
      b->broadcast_due = 0;
    }
    uv_mutex_unlock(&b->lock);
  }
}

/* Checks (unless trusted: the hub's own updates) and serialises the update, writes its id, and
 * starts its append under the lock, which is held on return when the result is 0 (*a says
 * whether it completed already). */
static int start(sl_bus_t *b, const sl_update_t *u, char *id, size_t id_cap, const char **why,
                 int trusted, sl_worker_t *w, sl_bus_pending_t *p, waiter_t *a) {
  assert(b->history != NULL && u != NULL && id != NULL && why != NULL);
  char gen[SL_UUID_URN_LEN + 1];
  const char *uid = u->id;
  int r = trusted ? 0 : check_update(b, u, why);
  if (r)
    return r;
  if (uid == NULL) {
    /* A public update's id orders by time (UUIDv7), so that an index by id grows at one end (in
     * LMDB, a group commit then rewrites one leaf of it, not one per update); a private one's
     * stays random (v4): a cursor may show it to a subscriber not allowed to read it, and it
     * must not tell when it was published (the spec's advice for sensitive updates). */
    if (u->is_private)
      sl__uuid_urn(gen);
    else
      sl__uuid_urn_time(gen);
    uid = gen;
  }
  size_t id_len = strlen(uid);
  if (id_len + 1 > id_cap)
    return -ENOSPC;
  sl_frame_t *f = sl__frame_update(u, uid, id_len);
  if (f == NULL)
    return -ENOMEM;
  if (trusted)
    f->flags |= SL_FRAME_HUB; /* history keeps it under its own budget */
  memcpy(id, uid, id_len + 1);

  uv_mutex_lock(&b->lock);
  if (b->closed)
    r = -ESHUTDOWN;
  else if (b->paused)
    r = -EAGAIN; /* a live hand-off: the next process takes it */
  else
    r = waits_reserve(b);
  if (r == 0) {
    b->waits[(b->waits_head + b->pending) % b->waits_cap] =
        (sl_bus_wait_t){.waiter = a, .worker = w, .pending = p};
    b->pending++;
    appending = b;
    /* A worker's publish holds its append until the worker's next wake-up (kick_run), which
     * comes after every publish it read in this turn: history stores them as one group. */
    sl_bus_kick_t *k = NULL;
    if (w && b->history->ops->append_held && b->workers) {
      assert(w >= b->workers && w < b->workers + b->worker_count);
      k = &b->kicks[w - b->workers];
      r = b->history->ops->append_held(b->history, f, stored, b);
    } else {
      r = sl__history_append(b->history, f, stored, b);
    }
    appending = NULL;
    if (r)
      b->pending--; /* it never started: no completion comes */
    else if (k && !k->posted) {
      k->posted = 1;
      if (sl__worker_post_call(w, &k->call))
        sl__worker_wake(w);
    }
  }
  if (r)
    uv_mutex_unlock(&b->lock);
  sl__frame_unref(f); /* history holds its own reference while it needs one */
  return r;
}

int sl__bus_publish(sl_bus_t *b, const sl_update_t *u, char *id, size_t id_cap, uint64_t *seq,
                    const char **why) {
  waiter_t a = {0};
  int r = start(b, u, id, id_cap, why, 0, NULL, NULL, &a);
  if (r)
    return r;
  /* A backend that stores later: the answer waits for it (the lock is free meanwhile, so the
   * next publishes start their appends behind this one). */
  while (!a.done)
    uv_cond_wait(&b->stored, &b->lock);
  uv_mutex_unlock(&b->lock);
  if (a.err == 0 && seq)
    *seq = a.seq;
  return a.err;
}

int sl__bus_publish_async(sl_bus_t *b, const sl_update_t *u, char *id, size_t id_cap,
                          uint64_t *seq, const char **why, sl_worker_t *w, sl_bus_pending_t *p) {
  assert(w != NULL && p != NULL && p->call.fn != NULL);
  waiter_t a = {0};
  int r = start(b, u, id, id_cap, why, 0, w, p, &a);
  if (r)
    return r;
  if (!a.done) {
    /* Stored later: the wait is still in the ring (the lock kept its completion out); from now on
     * it answers through the worker, and a goes out of scope. */
    b->waits[(b->waits_head + b->pending - 1) % b->waits_cap].waiter = NULL;
    uv_mutex_unlock(&b->lock);
    return 1;
  }
  uv_mutex_unlock(&b->lock);
  if (a.err == 0 && seq)
    *seq = a.seq;
  return a.err;
}

int sl__bus_publish_hub(sl_bus_t *b, const sl_update_t *u, char *id, size_t id_cap,
                        const char **why) {
  /* Neither waiter nor pending: the completion posts the frame to the workers and that is all.
   * The append starts under the lock, so the order of hub updates is the order of these calls. */
  int r = start(b, u, id, id_cap, why, 1, NULL, NULL, NULL);
  if (r == 0)
    uv_mutex_unlock(&b->lock);
  return r;
}

uint64_t sl__bus_hub_failed(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  uint64_t n = b->hub_failed;
  uv_mutex_unlock(&b->lock);
  return n;
}

int sl__bus_last_id(sl_bus_t *b, char **id) {
  assert(b->keep_last);
  int r = 0;
  uv_mutex_lock(&b->lock);
  *id = b->last ? strdup(b->last->id) : NULL;
  if (b->last && *id == NULL)
    r = -ENOMEM;
  uv_mutex_unlock(&b->lock);
  return r;
}

int sl__bus_replay(sl_bus_t *b, const char *after_id, uint64_t upto, sl_bus_visit_cb cb,
                   void *arg, int *found) {
  sl_frame_t *page[REPLAY_PAGE];
  int r = -ESPIPE;
  for (int attempt = 0; attempt < REPLAY_ATTEMPTS && r == -ESPIPE; attempt++) {
    sl_history_cursor_t *cur;
    if (attempt > 0) {
      /* Retention overtook the replay between two pages: what was dropped cannot be sent, and
       * skipping it would lose it silently. The cursor's id is now gone from history, so the
       * client gets what a client that came back a moment later would: everything retained,
       * announced as "earliest". */
      cb(NULL, arg);
      after_id = NULL;
    }
    if ((r = sl__history_cursor_open(b->history, after_id, upto, &cur, found)))
      return r;
    while ((r = sl__history_cursor_next(cur, page, REPLAY_PAGE)) > 0) {
      for (int i = 0; i < r; i++) {
        cb(page[i], arg);
        sl__frame_unref(page[i]);
      }
    }
    sl__history_cursor_close(cur);
  }
  if (r == -ESPIPE)
    sl__log(SL_LOG_WARN, "replay: history dropped updates faster than %d attempts could read them",
           REPLAY_ATTEMPTS);
  return r;
}

int sl__bus_cursor_open(sl_bus_t *b, const char *after_id, uint64_t upto,
                        sl_history_cursor_t **out, int *found) {
  return sl__history_cursor_open(b->history, after_id, upto, out, found);
}

uint64_t sl__bus_pause(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  b->paused = 1;
  while (b->pending > 0)
    uv_cond_wait(&b->stored, &b->lock);
  uint64_t seq = sl__history_last_seq(b->history);
  uv_mutex_unlock(&b->lock);
  return seq;
}

void sl__bus_resume(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  b->paused = 0;
  uv_mutex_unlock(&b->lock);
}

int sl__bus_post_call(sl_bus_t *b, unsigned worker, sl_worker_call_t *call) {
  uv_mutex_lock(&b->lock);
  int r = worker < b->worker_count ? 0 : -EINVAL;
  if (r == 0 && sl__worker_post_call(&b->workers[worker], call))
    sl__worker_wake(&b->workers[worker]);
  uv_mutex_unlock(&b->lock);
  return r;
}

void sl__bus_close(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  b->closed = 1;
  if (b->pending == 0 && !b->drain_posted)
    post_drain(b);
  uv_mutex_unlock(&b->lock);
}

void sl__bus_force(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  for (unsigned i = 0; i < b->worker_count; i++)
    sl__worker_force(&b->workers[i]);
  uv_mutex_unlock(&b->lock);
}

void sl__bus_stop(sl_bus_t *b) {
  uv_mutex_lock(&b->lock);
  for (unsigned i = 0; i < b->worker_count; i++)
    sl__worker_stop(&b->workers[i]);
  uv_mutex_unlock(&b->lock);
}
