/* history.h — where updates are kept for resume (Last-Event-ID), behind an interface so that the
 * in-memory ring, a durable store and a shared cluster log can stand in for each other. It owns
 * the one global order of updates: a backend gives each stored frame its seq. A backend may be
 * slow (disk, network), so an append completes through a callback, and a resume reads through a
 * cursor a page at a time; no caller lock is held across either. Every backend is safe to call
 * from any thread: appends from one thread at a time (the publish path), cursors from many. */
#ifndef SL_HISTORY_H
#define SL_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"

typedef struct sl_history_s sl_history_t;
struct sl_wire_s;
struct sl_wire_reader_s;
typedef struct sl_history_cursor_s sl_history_cursor_t;

/* Called once the backend has stored frame (err 0) or failed (negative errno). The backend sets
 * frame->seq (its place in the one global order, strictly increasing, no gaps among stored
 * frames: backends may assign their own, as Redis XADD does) before calling. Completions come in
 * append order. A backend may call it before append returns (memory does) or later from any
 * thread. frame is the caller's: the backend's own reference, if it keeps one, is separate. */
typedef void (*sl_history_done_cb)(sl_frame_t *frame, int err, void *arg);

/* A backend that completes appends later in groups (a group commit, a pipeline's replies) sets
 * `groups` in its ops: after each group's last completion it then calls done(NULL, 0, arg) once
 * (and, feeding, cb(NULL, arg) after each group of frames fed), from the same thread, with the
 * arg of the group's appends; the caller may hold what each completion would wake until then.
 * Completions made from inside append, and backends without `groups`, send no such call. */

/* A shared log (Redis Streams) is written by several hubs: what this hub delivers is what it reads
 * back from the log, in the log's order, not what it appended. Such a backend "feeds": it calls
 * this with each frame it reads (frame->seq set: this hub's next place in the order, no gaps), in
 * order, from its own thread; the frame is borrowed for the call. */
typedef void (*sl_history_feed_cb)(sl_frame_t *frame, void *arg);

typedef struct sl_history_ops_s {
  /* Starts storing frame (the backend takes its own reference if it keeps it; frame->seq on entry
   * is at most a hint and is overwritten). 0 when started: done is then called exactly once; or a
   * negative errno when it could not start: done is then not called. */
  int (*append)(sl_history_t *h, sl_frame_t *frame, sl_history_done_cb done, void *arg);
  /* The highest seq stored, 0 when none ever was: where the global order stands (a durable
   * backend reopens with a non-zero one). */
  uint64_t (*last_seq)(sl_history_t *h);
  /* What is retained now: updates (the hub's included), and the bytes they take where they are
   * kept (memory, disk). */
  void (*usage)(sl_history_t *h, uint64_t *entries, uint64_t *bytes);
  /* Opens a cursor on the frames stored after the one whose id is after_id (NULL or "earliest":
   * from the oldest retained), up to and including seq upto. *found is 1 when after_id was found,
   * 0 otherwise (the cursor then starts at the oldest retained). 0, or a negative errno. */
  int (*cursor_open)(sl_history_t *h, const char *after_id, uint64_t upto,
                     sl_history_cursor_t **out, int *found);
  /* Fills frames[0..max) with the next frames (a reference each, the caller unrefs) in order;
   * returns how many (0 at the end), or -ESPIPE when the frames after the cursor's position were
   * dropped from history meanwhile (retention overtook a slow reader: the caller decides), or
   * another negative errno. One thread at a time per cursor. */
  int (*cursor_next)(sl_history_cursor_t *c, sl_frame_t **frames, size_t max);
  /* The seq of the last frame returned (the cursor's position), 0 before the first. */
  uint64_t (*cursor_pos)(const sl_history_cursor_t *c);
  /* Optional (NULL: cursor_next reads on the caller's thread, which a local store does in
   * microseconds). Makes cursor c non-blocking: from now on, when cursor_next has no page at hand
   * it starts fetching one and returns -EINPROGRESS, and ready(arg) is called once, from any
   * thread, when the page came (or the fetch failed): call cursor_next again then. ready is never
   * called once cursor_close returned. */
  void (*cursor_notify)(sl_history_cursor_t *c, void (*ready)(void *arg), void *arg);
  void (*cursor_close)(sl_history_cursor_t *c);
  /* Optional (NULL: the backend does not feed, and a stored append is delivered by its caller).
   * Starts reading the shared log: cb gets every frame from then on, after the last_seq() it
   * reports on entry. Called once, before any append. An append's done then only says the log
   * has the update (its frame->seq is 0): the update reaches this hub through cb. */
  void (*feed)(sl_history_t *h, sl_history_feed_cb cb, void *arg);
  /* Optional, together, for a feeding backend's live hand-off (NULL: such a hub cannot be handed
   * over). The old process: feed_hold stops calling the feed's cb at an entry boundary (it returns
   * once no call is running and none will start: every frame fed went through cb, whose seq
   * last_seq() now says) and appends to pos where the feed stands (the entry last fed and its
   * seq), for the new process's feed_at; 0 or a negative errno (not held then). feed_release
   * goes on where it stopped (the hand-off failed). The new process's backend, opened to wait
   * for that position (sl_history_redis_opts_t.handoff), feeds nothing and cursors refuse until
   * feed_at reads pos (0, or a negative errno, logged: not the same log): last_seq() then says
   * the old process's, and cursors number as there; feed_release then feeds the entries after
   * that one, numbered on from its seq. Any thread but the feed's. */
  int (*feed_hold)(sl_history_t *h, struct sl_wire_s *pos);
  int (*feed_at)(sl_history_t *h, struct sl_wire_reader_s *pos);
  void (*feed_release)(sl_history_t *h);
  /* Optional (NULL: always usable). 0 when the backend can store and read now; else a negative
   * errno, and why (cap bytes) says what is wrong, for /readyz. Any thread. */
  int (*health)(sl_history_t *h, char *why, size_t cap);
  /* 1 when late completions (and fed frames) come in groups, each followed by a NULL call (see
   * sl_history_done_cb); 0 when each stands alone. */
  int groups;
  /* Optional, together (NULL: every append starts at once). append_held is append, except that
   * the backend may leave the update queued until the next kick (from any thread), so that what
   * a caller appends in a row is stored as one group; kick starts everything queued. A backend
   * still stores a held append on its own within a second if no kick comes. */
  int (*append_held)(sl_history_t *h, sl_frame_t *frame, sl_history_done_cb done, void *arg);
  void (*kick)(sl_history_t *h);
  /* Frees the backend. Every cursor must be closed first. Appends still pending complete with
   * -ECANCELED before it returns, so no done callback is lost. */
  void (*destroy)(sl_history_t *h);
} sl_history_ops_t;

struct sl_history_s {
  const sl_history_ops_t *ops;
};

/* What every backend's cursor starts with: the history it reads, so that a cursor alone reaches
 * its operations. */
struct sl_history_cursor_s {
  sl_history_t *history;
};

/* Every backend keeps the hub's own updates (frames flagged SL_FRAME_HUB: subscription events)
 * under a budget of their own: they never evict the application's updates, nor these them. A
 * cursor still returns both, in the one global order. */

/* The in-memory history: a ring of the last capacity application updates and one of the last
 * hub_capacity hub updates (0 keeps none, yet still numbers them), each holding at most max_bytes
 * (0 = no byte budget; the newest is kept whatever its size). Appends complete before append
 * returns. sl__history_memory_new gives the hub's ring the same capacity. */
int sl__history_memory_new_split(sl_history_t **h, size_t capacity, size_t hub_capacity,
                                 uint64_t max_bytes);
int sl__history_memory_new(sl_history_t **h, size_t capacity, uint64_t max_bytes);

/* The live hand-off of the in-memory history: restore keeps f (reference taken) with the seq it
 * carries, which must be above every one kept (-EINVAL otherwise), as the newest of its ring;
 * marks read and set where the order stands and the newest seq each ring dropped, so that a
 * cursor in the receiving process tells the same story (an id the sender had dropped is not
 * found there either). */
int sl__history_memory_restore(sl_history_t *h, sl_frame_t *f);
void sl__history_memory_marks(sl_history_t *h, uint64_t *last_seq, uint64_t dropped[2]);
int sl__history_memory_set_marks(sl_history_t *h, uint64_t last_seq, const uint64_t dropped[2]);

/* The durable history (lmdb.c): every update in an LMDB environment in dir, kept across restarts.
 * Appends complete later, from its writer thread, once committed (in groups). */
typedef struct sl_history_lmdb_opts_s {
  const char *dir;               /* made (0700) when missing; locked against other processes */
  size_t max_entries;            /* application updates retained at most */
  size_t hub_entries;            /* hub updates (SL_FRAME_HUB) retained at most, apart */
  double max_age;                /* seconds an update is retained at most; 0 = no limit */
  sl_fsync_t fsync;              /* what a commit survives (sluice.h) */
  uint64_t max_disk;             /* bytes the data file may grow to; 0 = SL_DEFAULT_DATA_MAX_SIZE */
  int have_lock_fd;              /* a live hand-off: lock_fd is the sending process's lock on
                                    dir (sl__history_lmdb_lock_fd there), taken over; it owns
                                    the descriptor from then on */
  int lock_fd;
} sl_history_lmdb_opts_t;

/* Opens (or creates) the history in o->dir. 0; -EBUSY when another live process holds the
 * directory; -EIO or -EPROTO when what is there cannot be read (never overwritten); another
 * negative errno (cannot create, lock or map it). Each failure is logged with what to do. */
int sl__history_lmdb_new(sl_history_t **h, const sl_history_lmdb_opts_t *o);
/* The descriptor of the lock the history holds on its directory, for a live hand-off. */
int sl__history_lmdb_lock_fd(sl_history_t *h);
/* A live hand-off's receiving side, before its writer stores anything: reads again where the
 * order stands, as the sending process left it after its last commit. 0 or a negative errno. */
int sl__history_lmdb_refresh(sl_history_t *h);

/* The shared log in Redis Streams (redis.c): every hub on the stream XADDs its updates and reads
 * the stream back (a feeding backend). Appends complete once Redis acknowledged them; -EAGAIN (at
 * once, or through done) while Redis cannot be reached. Its hub updates are counted apart but
 * share the stream and its trimming from the head (one order on every hub): max_entries
 * application updates are kept whatever the hub updates, and hub updates beyond hub_entries push
 * out the oldest of either. Its cursors can be made non-blocking (cursor_notify). */
typedef struct sl_redis_url_s {
  char host[256];
  int port;                      /* default 6379 */
  int db;                        /* SELECT; default 0 */
  char password[256];            /* "" = no AUTH */
} sl_redis_url_t;

/* Parses redis://[:password@]HOST[:PORT][/DB] (also [user:]password@ is accepted, the user
 * ignored: Redis 6 ACL users are not supported by AUTH here; an IPv6 host in brackets). 0, or
 * -EINVAL with *why set; -EPROTONOSUPPORT for rediss:// (Debian 12's hiredis 0.14 has no TLS). */
int sl__redis_url_parse(const char *url, sl_redis_url_t *out, const char **why);

/* What one stream entry's "u" field holds: the stored update (flags, topics, id, SSE payload),
 * little-endian, so that hubs on any machine read each other's. Encode returns the bytes it
 * needs (buf may be NULL to ask); decode fills a frame (refs = 1, seq 0), NULL when the bytes do
 * not parse or memory ran out. */
size_t sl__redis_record_encode(const sl_frame_t *f, unsigned char *buf, size_t cap);
sl_frame_t *sl__redis_record_decode(const unsigned char *p, size_t len);

typedef struct sl_history_redis_opts_s {
  const sl_redis_url_t *url;
  const char *stream;            /* the stream's key; its id index is "<stream>:ids" */
  size_t max_entries;            /* application updates retained (approximately, as MAXLEN ~) */
  size_t hub_entries;            /* hub updates (SL_FRAME_HUB) retained on top of those, at most */
  double max_age;                /* seconds an update is retained at most (by Redis's clock,
                                    checked every second); 0 = no limit */
  int handoff;                   /* the new process of a live hand-off: the feed waits for the
                                    old one's position (feed_at, then feed_release) */
} sl_history_redis_opts_t;

/* Starts the backend: its thread connects (and reconnects, with backoff) on its own, so a Redis
 * that is down at start only makes the hub not ready. 0 or a negative errno. */
int sl__history_redis_new(sl_history_t **h, const sl_history_redis_opts_t *o);

static inline int sl__history_append(sl_history_t *h, sl_frame_t *frame, sl_history_done_cb done,
                                     void *arg) {
  return h->ops->append(h, frame, done, arg);
}

static inline void sl__history_usage(sl_history_t *h, uint64_t *entries, uint64_t *bytes) {
  h->ops->usage(h, entries, bytes);
}

static inline uint64_t sl__history_last_seq(sl_history_t *h) {
  return h->ops->last_seq(h);
}

static inline int sl__history_cursor_open(sl_history_t *h, const char *after_id, uint64_t upto,
                                          sl_history_cursor_t **out, int *found) {
  return h->ops->cursor_open(h, after_id, upto, out, found);
}

static inline int sl__history_cursor_next(sl_history_cursor_t *c, sl_frame_t **frames,
                                          size_t max) {
  return c->history->ops->cursor_next(c, frames, max);
}

static inline uint64_t sl__history_cursor_pos(const sl_history_cursor_t *c) {
  return c->history->ops->cursor_pos(c);
}

/* 1 when c was made non-blocking (its backend fetches pages away from the caller's thread). */
static inline int sl__history_cursor_notify(sl_history_cursor_t *c, void (*ready)(void *arg),
                                            void *arg) {
  if (c->history->ops->cursor_notify == NULL)
    return 0;
  c->history->ops->cursor_notify(c, ready, arg);
  return 1;
}

static inline void sl__history_cursor_close(sl_history_cursor_t *c) {
  c->history->ops->cursor_close(c);
}

/* The live hand-off of a feeding backend (history_ops' feed_hold, feed_at, feed_release); 1 when
 * h is one that can be handed. */
static inline int sl__history_feed_handable(const sl_history_t *h) {
  return h->ops->feed_hold != NULL;
}

static inline int sl__history_health(sl_history_t *h, char *why, size_t cap) {
  return h->ops->health ? h->ops->health(h, why, cap) : 0;
}

static inline void sl__history_destroy(sl_history_t *h) {
  h->ops->destroy(h);
}

#endif
