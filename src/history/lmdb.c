/* lmdb.c — the durable history: every update in an LMDB environment in --data-dir, so that a
 * restart (SIGTERM or kill -9) keeps what clients may resume from. The only file that calls LMDB.
 *
 * Four databases in one environment: "log" maps a seq (big-endian u64, so that keys sort in
 * publish order) to the stored update (its SSE payload, id, topics, flags and the time it was
 * stored); "hub" does the same for the hub's own updates (SL_FRAME_HUB: subscription events),
 * which are retained under their own budget (hub_entries) so that a storm of them never evicts
 * the application's updates, nor these them; a cursor merges the two by seq; "ids" maps an id to the seqs that carry it (sorted duplicates, so the first is the
 * earliest retained copy, as the protocol wants); "meta" keeps the format and the last seq given,
 * which must survive even when retention removed every update, and the seq of the newest update
 * retention dropped from each log (so that a reader knows, in its own snapshot, whether retention
 * overtook it: seqs are not contiguous within one log).
 *
 * One writer thread does every write. Appends queue up while it commits, and it commits what
 * queued as one transaction (group commit), then completes each append in order. Durability is
 * the caller's choice (sl_fsync_t): each commit synced, commits synced together every
 * SYNC_WINDOW_MS, or left to the kernel. The writer also enforces retention (count and age), a
 * bounded chunk of deletions per transaction, so delivery never waits for a large purge, and
 * grows the map when it fills, up to max_disk; at the limit it drops the oldest updates to make
 * room, and refuses an append only when even that cannot.
 *
 * Readers (cursors) open a read-only transaction per page and close it before returning, so no
 * snapshot is pinned between pages; they hold the resize lock shared meanwhile, because LMDB's map
 * may be resized only while no transaction is open in this process. An flock on a lock file keeps
 * a second process (or a second history in this one) out of the directory: LMDB's own lock file
 * lets several processes share an environment, which two hubs numbering updates must not. */
#include "history/history.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"

#define RECORD_VERSION 1
#define FORMAT_VERSION 2            /* the file's: 2 once it holds hub updates ("hub") */
#define FORMAT_OLDEST 1             /* the oldest file format this one reads (no "hub" yet) */
#define LOCK_FILE "sluice.lock"
#define MAP_START (64ull << 20)     /* the map's first size; it doubles when full */
#define BATCH_MAX 4096              /* appends committed in one transaction at most */
#define TRIM_CHUNK 1024             /* deletions a transaction makes beyond what it appends */
#define SYNC_WINDOW_MS 100          /* SL_FSYNC_BATCH: committed updates reach the disk this often */
#define FULL_LOG_MS 60000           /* the disk limit is logged at most this often */
#define AGE_CHECK_MS 1000           /* how often an idle writer looks for updates past max_age */
#define ID_KEY_MAX 400              /* longer ids are indexed by a prefix and a hash */
#define RECORD_HEAD 20              /* version, flags, topic count, id length, pad, payload
                                       length, time */

enum { LOG_APP, LOG_HUB, LOGS };

/* The meta keys of the newest seq retention dropped from each log. */
static const char *const dropped_key[LOGS] = {"dropped_app", "dropped_hub"};

typedef struct op_s {
  sl_frame_t *frame;                /* a reference, dropped once done was called */
  sl_history_done_cb done;
  void *arg;
} op_t;

typedef struct lmdb_history_s {
  sl_history_t base;
  MDB_env *env;
  MDB_dbi logs[LOGS];               /* LOG_APP: "log", LOG_HUB: "hub" */
  MDB_dbi ids, meta;
  int lock_fd;
  sl_fsync_t fsync;
  size_t max_entries;               /* per log: LOG_APP's max_entries, LOG_HUB's hub_entries */
  size_t hub_entries;
  uint64_t format;                  /* the file's; the writer's */
  uint64_t max_age_ms;              /* 0 = no age limit */
  uint64_t max_disk;                /* bytes the map may grow to */
  uint64_t mapsize;                 /* the writer's */
  uv_rwlock_t resize;               /* shared by a reader's transaction, taken by a map resize */
  uv_thread_t writer;
  uv_mutex_t lock;                  /* guards the queue and stop */
  uv_cond_t wake;
  op_t *queue;
  size_t queue_len, queue_cap;
  int stop;
  /* The writer's own. */
  char *buf;
  size_t buf_cap;
  uint64_t synced_at;               /* uv_hrtime() ms of the last sync */
  int dirty;                        /* committed since the last sync (SL_FSYNC_BATCH) */
  int trim_pending;                 /* retention may have more to delete */
  int opened;                       /* mdb_env_open succeeded */
  uint64_t aged_at;                 /* ms of the last age check */
  uint64_t full_logged_at;          /* ms when the disk limit was last logged, 0 = never */
  const char *hold;                 /* SLUICE_TEST_HOLD_WRITER (test_hold), NULL = none */
  /* Read by any thread. */
  atomic_uint_fast64_t last_seq;
  atomic_uint_fast64_t entries;
  atomic_uint_fast64_t bytes;
  atomic_size_t cursors;
} lmdb_history_t;

typedef struct lmdb_cursor_s {
  sl_history_cursor_t base;
  uint64_t next;                    /* seq of the next frame to return */
  uint64_t upto;
  uint64_t pos;
  uint64_t want[LOGS];              /* per log: the seq of its next update the cursor has to
                                       return (or, none stored, last_seq + 1 when it looked:
                                       its next one can only come later) */
} lmdb_cursor_t;

/* --- encoding ------------------------------------------------------------------------------ */

static void put_be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void) {
  return uv_hrtime() / 1000000;
}

/* The payload of a frame: its wire bytes without the chunk-size line and the closing CRLF. */
static const char *frame_payload(const sl_frame_t *f, size_t *len) {
  *len = f->len - f->hdr - 2;
  return f->wire + f->hdr;
}

static size_t record_size(const sl_frame_t *f) {
  size_t plen;
  frame_payload(f, &plen);
  size_t n = RECORD_HEAD + f->id_len + plen;
  for (size_t i = 0; i < f->topic_count; i++)
    n += 4 + f->topic_lens[i];
  return n;
}

/* Layout (native byte order, as LMDB's own file): u8 version, u8 flags, u16 topic count, u16 id
 * length, u16 zero, u32 payload length, u64 time stored (ms since the epoch), then a u32 length
 * per topic, the topics, the id and the payload. */
static void record_encode(const sl_frame_t *f, uint64_t time, unsigned char *p) {
  size_t plen;
  const char *payload = frame_payload(f, &plen);
  uint16_t tc = f->topic_count, idl = f->id_len, zero = 0;
  uint32_t pl = (uint32_t)plen;
  p[0] = RECORD_VERSION;
  p[1] = (unsigned char)(f->flags & (SL_FRAME_PRIVATE | SL_FRAME_HUB));
  memcpy(p + 2, &tc, 2);
  memcpy(p + 4, &idl, 2);
  memcpy(p + 6, &zero, 2);
  memcpy(p + 8, &pl, 4);
  memcpy(p + 12, &time, 8);
  p += RECORD_HEAD;
  for (size_t i = 0; i < tc; i++, p += 4)
    memcpy(p, &f->topic_lens[i], 4);
  for (size_t i = 0; i < tc; i++) {
    memcpy(p, f->topics[i], f->topic_lens[i]);
    p += f->topic_lens[i];
  }
  memcpy(p, f->id, idl);
  memcpy(p + idl, payload, plen);
}

/* What a stored record says, pointing into it; -EIO when it does not parse. */
typedef struct record_s {
  uint16_t flags, topic_count, id_len;
  uint32_t payload_len;
  uint64_t time;
  const unsigned char *lens;        /* topic_count u32, unaligned */
  const char *topics;               /* the topics, back to back */
  const char *id;
  const char *payload;
} record_t;

static int record_parse(const MDB_val *v, record_t *r) {
  const unsigned char *p = v->mv_data;
  if (v->mv_size < RECORD_HEAD || p[0] != RECORD_VERSION)
    return -EIO;
  r->flags = p[1];
  memcpy(&r->topic_count, p + 2, 2);
  memcpy(&r->id_len, p + 4, 2);
  memcpy(&r->payload_len, p + 8, 4);
  memcpy(&r->time, p + 12, 8);
  size_t need = RECORD_HEAD + (size_t)r->topic_count * 4;
  if (v->mv_size < need)
    return -EIO;
  r->lens = p + RECORD_HEAD;
  size_t strings = 0;
  for (size_t i = 0; i < r->topic_count; i++) {
    uint32_t n;
    memcpy(&n, r->lens + 4 * i, 4);
    strings += n;
  }
  if (v->mv_size != need + strings + r->id_len + r->payload_len)
    return -EIO;
  r->topics = (const char *)p + need;
  r->id = r->topics + strings;
  r->payload = r->id + r->id_len;
  return 0;
}

#define TOPICS_ON_STACK 64

static sl_frame_t *record_frame(const record_t *r, uint64_t seq) {
  const char *topics_buf[TOPICS_ON_STACK];
  uint32_t lens_buf[TOPICS_ON_STACK];
  const char **topics = topics_buf;
  uint32_t *lens = lens_buf;
  if (r->topic_count > TOPICS_ON_STACK) {
    topics = malloc(r->topic_count * sizeof *topics);
    lens = malloc(r->topic_count * sizeof *lens);
    if (topics == NULL || lens == NULL) {
      free(topics);
      free(lens);
      return NULL;
    }
  }
  const char *s = r->topics;
  for (size_t i = 0; i < r->topic_count; i++) {
    memcpy(&lens[i], r->lens + 4 * i, 4);
    topics[i] = s;
    s += lens[i];
  }
  sl_frame_t *f = sl__frame_restore(r->payload, r->payload_len, r->id, r->id_len, topics, lens,
                                    r->topic_count, r->flags);
  if (f)
    f->seq = seq;
  if (topics != topics_buf) {
    free(topics);
    free(lens);
  }
  return f;
}

/* The key an id is indexed under: the id itself, or for a long one (LMDB keys are short) a
 * prefix, a byte no UTF-8 text has, and a hash. Lookups check the record's id either way. */
static size_t id_key(const char *id, size_t len, unsigned char *key) {
  if (len <= ID_KEY_MAX) {
    memcpy(key, id, len);
    return len;
  }
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)id[i];
    h *= 1099511628211ULL;
  }
  memcpy(key, id, ID_KEY_MAX);
  key[ID_KEY_MAX] = 0xff;
  put_be64(key + ID_KEY_MAX + 1, h);
  return ID_KEY_MAX + 9;
}

#define ID_KEY_CAP (ID_KEY_MAX + 9)

/* --- errors -------------------------------------------------------------------------------- */

/* An LMDB error as a negative errno: its own codes (> 0 are errnos already) say "not usable". */
static int mdb_err(int rc) {
  if (rc == 0)
    return 0;
  if (rc > 0)
    return -rc;
  if (rc == MDB_MAP_FULL)
    return -ENOSPC;
  return -EIO;
}

/* --- the writer ---------------------------------------------------------------------------- */

static int meta_put_u64(lmdb_history_t *h, MDB_txn *txn, const char *name, uint64_t v) {
  MDB_val k = {strlen(name), (void *)name}, d = {8, &v};
  return mdb_put(txn, h->meta, &k, &d, 0);
}

static int meta_get_u64(lmdb_history_t *h, MDB_txn *txn, const char *name, uint64_t *v) {
  MDB_val k = {strlen(name), (void *)name}, d;
  int rc = mdb_get(txn, h->meta, &k, &d);
  if (rc)
    return rc;
  if (d.mv_size != 8)
    return MDB_CORRUPTED;
  memcpy(v, d.mv_data, 8);
  return 0;
}

/* Deletes the oldest update (its record and its id's index entry). */
static int delete_oldest(lmdb_history_t *h, MDB_cursor *cur, MDB_val *k, MDB_val *v) {
  record_t r;
  int rc;
  if (record_parse(v, &r) == 0) {
    unsigned char key[ID_KEY_CAP];
    MDB_val ik = {id_key(r.id, r.id_len, key), key};
    MDB_val iv = {8, k->mv_data};
    rc = mdb_del(mdb_cursor_txn(cur), h->ids, &ik, &iv);
    if (rc && rc != MDB_NOTFOUND)
      return rc;
  }
  return mdb_cursor_del(cur, 0);
}

/* Retention of one log: drops its oldest updates while there are more than max or the oldest is
 * older than max_age (and, with force, at least a sixteenth of them, one at least: room at the
 * disk limit), at most budget of them, and records the newest seq dropped (in the same
 * transaction, so a reader's snapshot agrees with it). *more is set when the limits still call
 * for deletions. */
static int trim_log(lmdb_history_t *h, MDB_txn *txn, int log, size_t max, size_t budget,
                    int force, int *more) {
  MDB_stat st;
  MDB_cursor *cur;
  int rc = mdb_stat(txn, h->logs[log], &st);
  if (rc)
    return rc;
  size_t count = st.ms_entries;
  size_t forced = force ? count / 16 + 1 : 0;
  uint64_t cutoff = h->max_age_ms ? now_ms() - h->max_age_ms : 0;
  uint64_t dropped = 0;
  if ((rc = mdb_cursor_open(txn, h->logs[log], &cur)))
    return rc;
  for (size_t done = 0; count > 0; done++) {
    MDB_val k, v;
    if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)))
      break;
    record_t r;
    int old = h->max_age_ms && record_parse(&v, &r) == 0 && r.time < cutoff;
    if (count <= max && !old && done >= forced)
      break;
    if (done == budget) {
      *more = 1;
      break;
    }
    if (k.mv_size == 8)
      dropped = get_be64(k.mv_data);
    if ((rc = delete_oldest(h, cur, &k, &v)))
      break;
    count--;
  }
  mdb_cursor_close(cur);
  if (rc == MDB_NOTFOUND)
    rc = 0;
  if (rc == 0 && dropped)
    rc = meta_put_u64(h, txn, dropped_key[log], dropped);
  return rc;
}

/* Retention of both logs, each under its own budget. */
static int trim(lmdb_history_t *h, MDB_txn *txn, size_t budget, int force, int *more) {
  *more = 0;
  int rc = trim_log(h, txn, LOG_APP, h->max_entries, budget, force, more);
  if (rc == 0)
    rc = trim_log(h, txn, LOG_HUB, h->hub_entries, budget, force, more);
  return rc;
}

static size_t log_entries(lmdb_history_t *h, MDB_txn *txn) {
  size_t n = 0;
  MDB_stat st;
  for (int i = 0; i < LOGS; i++)
    if (mdb_stat(txn, h->logs[i], &st) == 0)
      n += st.ms_entries;
  return n;
}

/* Doubles the map, up to max_disk. No transaction may be open in this process meanwhile: the
 * writer has none, and readers hold the resize lock shared across theirs. */
static int grow(lmdb_history_t *h) {
  if (h->mapsize >= h->max_disk)
    return -ENOSPC;
  uint64_t size = h->mapsize * 2 < h->max_disk ? h->mapsize * 2 : h->max_disk;
  uv_rwlock_wrlock(&h->resize);
  int rc = mdb_env_set_mapsize(h->env, (size_t)size);
  uv_rwlock_wrunlock(&h->resize);
  if (rc) {
    sl__log(SL_LOG_ERROR, "history: cannot grow the map to %" PRIu64 " bytes: %s", size,
            mdb_strerror(rc));
    return mdb_err(rc);
  }
  sl__log(SL_LOG_INFO, "history: the data file may now grow to %" PRIu64 " bytes", size);
  h->mapsize = size;
  return 0;
}

static void update_usage(lmdb_history_t *h, MDB_txn *txn) {
  MDB_stat st;
  MDB_envinfo info;
  atomic_store(&h->entries, log_entries(h, txn));
  if (mdb_env_stat(h->env, &st) == 0 && mdb_env_info(h->env, &info) == 0)
    atomic_store(&h->bytes, (uint64_t)(info.me_last_pgno + 1) * st.ms_psize);
}

/* One transaction of appends (and the retention they call for). 0, or an LMDB code. */
static int commit_ops(lmdb_history_t *h, op_t *ops, size_t n, int *more) {
  MDB_txn *txn;
  uint64_t seq = atomic_load(&h->last_seq);
  uint64_t time = now_ms();
  int upgraded = 0;
  int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
  if (rc)
    return rc;
  for (size_t i = 0; i < n && rc == 0; i++) {
    sl_frame_t *f = ops[i].frame;
    size_t size = record_size(f);
    if (size > h->buf_cap) {
      char *b = realloc(h->buf, size);
      if (b == NULL) {
        rc = ENOMEM;
        break;
      }
      h->buf = b;
      h->buf_cap = size;
    }
    record_encode(f, time, (unsigned char *)h->buf);
    unsigned char kb[8], key[ID_KEY_CAP];
    put_be64(kb, ++seq);
    MDB_val k = {8, kb}, v = {size, h->buf};
    MDB_val ik = {id_key(f->id, f->id_len, key), key};
    int log = (f->flags & SL_FRAME_HUB) ? LOG_HUB : LOG_APP;
    if (log == LOG_HUB && h->format < FORMAT_VERSION) {
      /* The first hub update: older versions, which know no "hub", must not read this file as
       * theirs (its log would have gaps they take for retention). */
      if ((rc = meta_put_u64(h, txn, "format", FORMAT_VERSION)))
        break;
      h->format = FORMAT_VERSION; /* an abort below makes the next commit write it again */
      upgraded = 1;
    }
    if ((rc = mdb_put(txn, h->logs[log], &k, &v, MDB_APPEND)) == 0)
      rc = mdb_put(txn, h->ids, &ik, &k, MDB_NODUPDATA);
    if (rc == MDB_KEYEXIST)
      rc = 0; /* never: a seq is new */
  }
  if (rc == 0)
    rc = meta_put_u64(h, txn, "last_seq", seq);
  if (rc == 0)
    rc = trim(h, txn, n + TRIM_CHUNK, 0, more);
  if (rc) {
    mdb_txn_abort(txn);
    if (upgraded)
      h->format = FORMAT_OLDEST;
    return rc;
  }
  /* The usage is read in the transaction, before it ends: what it will commit. */
  update_usage(h, txn);
  if ((rc = mdb_txn_commit(txn))) {
    if (upgraded)
      h->format = FORMAT_OLDEST;
    return rc;
  }
  uint64_t s = atomic_load(&h->last_seq);
  for (size_t i = 0; i < n; i++)
    ops[i].frame->seq = ++s;
  atomic_store(&h->last_seq, s);
  h->dirty = 1;
  return 0;
}

/* Deletions alone: retention that the appends' transactions left (a chunk at a time), or room
 * made at the disk limit (force: at least one update). */
static int trim_alone(lmdb_history_t *h, int force, int *more) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
  if (rc)
    return rc;
  size_t before = log_entries(h, txn);
  if ((rc = trim(h, txn, TRIM_CHUNK, force, more))) {
    mdb_txn_abort(txn);
    return rc;
  }
  if (log_entries(h, txn) == before) {
    mdb_txn_abort(txn);
    return force ? MDB_NOTFOUND : 0;
  }
  update_usage(h, txn);
  if ((rc = mdb_txn_commit(txn)) == 0)
    h->dirty = 1;
  return rc;
}

/* A test hook: with SLUICE_TEST_HOLD_WRITER naming a file, the writer commits nothing while that
 * file exists (for HOLD_MAX_MS at most), so a test can count what happens while commits cannot
 * complete, without timing anything. Unset (always, outside tests) it costs one branch. */
#define HOLD_STEP_MS 10
#define HOLD_MAX_MS 120000

static void test_hold(lmdb_history_t *h) {
  for (int waited = 0; h->hold && waited < HOLD_MAX_MS && access(h->hold, F_OK) == 0;
       waited += HOLD_STEP_MS)
    usleep(HOLD_STEP_MS * 1000);
}

/* Completes ops[0..n) in order, as one group (history.h): each run of appends made with the same
 * callback and arg ends with that callback's NULL call. */
static void complete(op_t *ops, size_t n, int err) {
  for (size_t i = 0; i < n; i++) {
    ops[i].done(ops[i].frame, err, ops[i].arg);
    sl__frame_unref(ops[i].frame);
    if (i + 1 == n || ops[i + 1].done != ops[i].done || ops[i + 1].arg != ops[i].arg)
      ops[i].done(NULL, 0, ops[i].arg);
  }
}

/* Stores ops[0..n) and completes each, in order. */
static void store(lmdb_history_t *h, op_t *ops, size_t n) {
  int more = 0, rc = MDB_MAP_FULL;
  test_hold(h);
  int evicted = 0;
  for (int attempt = 0; attempt < 64 && rc == MDB_MAP_FULL; attempt++) {
    rc = commit_ops(h, ops, n, &more);
    if (rc != MDB_MAP_FULL)
      break;
    if (grow(h) == 0)
      continue;
    /* At --data-max-size: the oldest updates make room, as the memory ring's do at its byte
     * budget. Pages freed are reused once no reader still sees them. */
    int m;
    if (trim_alone(h, 1, &m) != 0)
      break;
    evicted++;
  }
  if (evicted && (h->full_logged_at == 0 || mono_ms() - h->full_logged_at >= FULL_LOG_MS)) {
    h->full_logged_at = mono_ms();
    sl__log(SL_LOG_WARN, "history: the data dir is at --data-max-size (%" PRIu64 " bytes); "
            "the oldest updates were dropped to make room", h->max_disk);
  }
  int err = mdb_err(rc);
  if (rc)
    sl__log(SL_LOG_ERROR, "history: %zu updates could not be stored: %s%s", n, mdb_strerror(rc),
            rc == MDB_MAP_FULL ? " (raise --data-max-size, or lower --history-size or "
                                 "--history-max-age)" : "");
  if (h->fsync == SL_FSYNC_ALWAYS)
    h->dirty = 0; /* synced by the commit itself */
  complete(ops, n, err);
  if (rc == 0 && more)
    h->trim_pending = 1;
}

/* Background duties between batches: the batch sync, and updates that aged out. */
static void housekeeping(lmdb_history_t *h) {
  uint64_t now = mono_ms();
  if (h->fsync == SL_FSYNC_BATCH && h->dirty && now - h->synced_at >= SYNC_WINDOW_MS) {
    int rc = mdb_env_sync(h->env, 1);
    if (rc)
      sl__log(SL_LOG_ERROR, "history: sync failed: %s", mdb_strerror(rc));
    h->dirty = 0;
    h->synced_at = now;
  }
  if (h->max_age_ms && now - h->aged_at >= AGE_CHECK_MS) {
    h->trim_pending = 1; /* the writer's next pass looks */
    h->aged_at = now;
  }
}

/* How long the writer may sleep before housekeeping is due (ms). */
static uint64_t idle_for(lmdb_history_t *h) {
  uint64_t now = mono_ms(), wait = AGE_CHECK_MS;
  if (h->fsync == SL_FSYNC_BATCH && h->dirty) {
    uint64_t due = h->synced_at + SYNC_WINDOW_MS;
    wait = due > now ? due - now : 0;
  }
  if (h->max_age_ms) {
    uint64_t due = h->aged_at + AGE_CHECK_MS;
    uint64_t w = due > now ? due - now : 0;
    if (w < wait)
      wait = w;
  }
  return wait;
}

static void writer_main(void *arg) {
  lmdb_history_t *h = arg;
  op_t *mine = NULL;
  size_t mine_cap = 0;
  uv_mutex_lock(&h->lock);
  for (;;) {
    while (h->queue_len == 0 && !h->stop && !h->trim_pending) {
      uint64_t wait = idle_for(h);
      if (wait > 0 && uv_cond_timedwait(&h->wake, &h->lock, wait * 1000000) == 0)
        continue;
      uv_mutex_unlock(&h->lock);
      housekeeping(h);
      uv_mutex_lock(&h->lock);
    }
    if (h->stop)
      break;
    if (h->queue_len == 0) {
      /* Retention left over: one chunk, then the appends that queued meanwhile go first. */
      uv_mutex_unlock(&h->lock);
      int more = 0;
      if (trim_alone(h, 0, &more))
        more = 0;
      h->trim_pending = more;
      housekeeping(h);
      uv_mutex_lock(&h->lock);
      continue;
    }
    /* Everything that queued while the last batch committed: one swap. */
    op_t *ops = h->queue;
    size_t n = h->queue_len, cap = h->queue_cap;
    h->queue = mine;
    h->queue_cap = mine_cap;
    h->queue_len = 0;
    uv_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n; i += BATCH_MAX)
      store(h, ops + i, n - i < BATCH_MAX ? n - i : BATCH_MAX);
    housekeeping(h);
    mine = ops;
    mine_cap = cap;
    uv_mutex_lock(&h->lock);
  }
  uv_mutex_unlock(&h->lock);
  free(mine);
}

/* --- the interface ------------------------------------------------------------------------- */

/* Queues f for the writer; wakes it when signal is set and it may be asleep. */
static int enqueue(sl_history_t *base, sl_frame_t *f, sl_history_done_cb done, void *arg,
                   int signal) {
  lmdb_history_t *h = (lmdb_history_t *)base;
  assert(f != NULL && f->id != NULL && done != NULL);
  uv_mutex_lock(&h->lock);
  if (h->stop) {
    uv_mutex_unlock(&h->lock);
    return -ESHUTDOWN;
  }
  if (h->queue_len == h->queue_cap) {
    size_t cap = h->queue_cap ? h->queue_cap * 2 : 256;
    op_t *q = realloc(h->queue, cap * sizeof *q);
    if (q == NULL) {
      uv_mutex_unlock(&h->lock);
      return -ENOMEM;
    }
    h->queue = q;
    h->queue_cap = cap;
  }
  h->queue[h->queue_len++] = (op_t){sl__frame_ref(f), done, arg};
  if (signal && h->queue_len == 1)
    uv_cond_signal(&h->wake);
  uv_mutex_unlock(&h->lock);
  return 0;
}

static int lmdb_append(sl_history_t *base, sl_frame_t *f, sl_history_done_cb done, void *arg) {
  return enqueue(base, f, done, arg, 1);
}

/* Left queued until the kick: a worker that read several publishes in one turn hands them over
 * together, so that they are one transaction (and one group of completions), not one for the
 * first and another for the rest. Waking the writer for each first append of a turn made groups
 * of 3 to 4 of W8D's 16 in flight. A held append that no kick follows is still stored at the
 * writer's next timed wake (at most AGE_CHECK_MS). */
static int lmdb_append_held(sl_history_t *base, sl_frame_t *f, sl_history_done_cb done,
                            void *arg) {
  return enqueue(base, f, done, arg, 0);
}

static void lmdb_kick(sl_history_t *base) {
  lmdb_history_t *h = (lmdb_history_t *)base;
  uv_mutex_lock(&h->lock);
  if (h->queue_len > 0)
    uv_cond_signal(&h->wake);
  uv_mutex_unlock(&h->lock);
}

static uint64_t lmdb_last_seq(sl_history_t *base) {
  return atomic_load(&((lmdb_history_t *)base)->last_seq);
}

static void lmdb_usage(sl_history_t *base, uint64_t *entries, uint64_t *bytes) {
  lmdb_history_t *h = (lmdb_history_t *)base;
  *entries = atomic_load(&h->entries);
  *bytes = atomic_load(&h->bytes);
}

/* A read transaction, with the resize lock held shared until read_end. */
static int read_begin(lmdb_history_t *h, MDB_txn **txn) {
  uv_rwlock_rdlock(&h->resize);
  int rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, txn);
  if (rc)
    uv_rwlock_rdunlock(&h->resize);
  return rc;
}

static void read_end(lmdb_history_t *h, MDB_txn *txn) {
  mdb_txn_abort(txn);
  uv_rwlock_rdunlock(&h->resize);
}

/* The earliest retained seq whose update has this id, 0 when none. */
static int find_id(lmdb_history_t *h, MDB_txn *txn, const char *id, uint64_t *seq) {
  size_t len = strlen(id);
  unsigned char key[ID_KEY_CAP];
  MDB_val k = {id_key(id, len, key), key}, v;
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, h->ids, &cur);
  if (rc)
    return rc;
  *seq = 0;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
    MDB_val rv;
    record_t r;
    if (v.mv_size != 8)
      continue;
    int got = mdb_get(txn, h->logs[LOG_APP], &v, &rv);
    if (got == MDB_NOTFOUND)
      got = mdb_get(txn, h->logs[LOG_HUB], &v, &rv);
    if (got == 0 && record_parse(&rv, &r) == 0 && r.id_len == len &&
        memcmp(r.id, id, len) == 0) {
      *seq = get_be64(v.mv_data);
      break;
    }
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The oldest retained seq, either log, or last_seq + 1 when none is. */
static int first_seq(lmdb_history_t *h, MDB_txn *txn, uint64_t last, uint64_t *first) {
  *first = last + 1;
  for (int i = 0; i < LOGS; i++) {
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, h->logs[i], &cur);
    if (rc)
      return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == 8 && get_be64(k.mv_data) < *first)
      *first = get_be64(k.mv_data);
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
      return rc;
  }
  return 0;
}

/* A meta u64 that may be missing (0). */
static int meta_get_or_0(lmdb_history_t *h, MDB_txn *txn, const char *name, uint64_t *v) {
  int rc = meta_get_u64(h, txn, name, v);
  if (rc == MDB_NOTFOUND) {
    *v = 0;
    rc = 0;
  }
  return rc;
}

/* Where each log stands for a cursor at next: the seq of its first update at or after next, or
 * last + 1 when it has none. */
static int wanted(lmdb_history_t *h, MDB_txn *txn, uint64_t next, uint64_t last,
                  uint64_t want[LOGS]) {
  unsigned char kb[8];
  put_be64(kb, next);
  for (int i = 0; i < LOGS; i++) {
    MDB_cursor *cur;
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_open(txn, h->logs[i], &cur);
    if (rc)
      return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    want[i] = rc == 0 && k.mv_size == 8 ? get_be64(k.mv_data) : last + 1;
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
      return rc;
  }
  return 0;
}

static int lmdb_cursor_open(sl_history_t *base, const char *after_id, uint64_t upto,
                            sl_history_cursor_t **out, int *found) {
  lmdb_history_t *h = (lmdb_history_t *)base;
  lmdb_cursor_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->base.history = base;
  c->upto = upto;
  *found = 0;
  MDB_txn *txn;
  int rc = read_begin(h, &txn);
  uint64_t last = 0, seq = 0;
  if (rc == 0) {
    rc = meta_get_or_0(h, txn, "last_seq", &last);
    if (rc == 0)
      rc = first_seq(h, txn, last, &c->next);
    if (rc == 0 && after_id && strcmp(after_id, "earliest") != 0 &&
        (rc = find_id(h, txn, after_id, &seq)) == 0 && seq) {
      *found = 1;
      c->next = seq + 1;
    }
    if (rc == 0)
      rc = wanted(h, txn, c->next, last, c->want);
    read_end(h, txn);
  }
  if (rc) {
    sl__log(SL_LOG_ERROR, "history: cannot read: %s", mdb_strerror(rc));
    free(c);
    return mdb_err(rc);
  }
  atomic_fetch_add(&h->cursors, 1);
  *out = &c->base;
  return 0;
}

/* The two logs merged by seq, a page per read transaction. A log drops in seq order, so the
 * update a cursor has to return next from it was dropped when the log's newest dropped seq (read
 * in the page's own snapshot) reached it: lost to the cursor (when within upto), -ESPIPE. What
 * was dropped before the cursor opened is retention's, as is what comes after upto. */
static int lmdb_cursor_next(sl_history_cursor_t *hc, sl_frame_t **frames, size_t max) {
  lmdb_cursor_t *c = (lmdb_cursor_t *)hc;
  lmdb_history_t *h = (lmdb_history_t *)hc->history;
  if (max > INT_MAX)
    max = INT_MAX;
  if (max == 0 || c->next > c->upto)
    return 0;
  MDB_txn *txn;
  MDB_cursor *cur[LOGS] = {NULL, NULL};
  MDB_val k[LOGS], v[LOGS];
  int at[LOGS];                     /* cur[i] stands on k[i], v[i] */
  uint64_t last = 0, stored = 0;
  size_t n = 0;
  int rc = read_begin(h, &txn);
  if (rc)
    goto fail;
  if ((rc = meta_get_or_0(h, txn, "last_seq", &last)))
    goto fail_txn;
  stored = last;
  if (last > c->upto)
    last = c->upto;
  if (c->next > last) {
    read_end(h, txn);
    return 0;
  }
  for (int i = 0; i < LOGS; i++) {
    uint64_t d;
    if ((rc = meta_get_or_0(h, txn, dropped_key[i], &d)))
      goto fail_txn;
    if (d >= c->want[i] && c->want[i] <= c->upto) {
      read_end(h, txn);
      return -ESPIPE;
    }
  }
  unsigned char kb[8];
  put_be64(kb, c->next);
  for (int i = 0; i < LOGS; i++) {
    if ((rc = mdb_cursor_open(txn, h->logs[i], &cur[i])))
      goto fail_cur;
    k[i] = (MDB_val){8, kb};
    rc = mdb_cursor_get(cur[i], &k[i], &v[i], MDB_SET_RANGE);
    if (rc && rc != MDB_NOTFOUND)
      goto fail_cur;
    at[i] = rc == 0;
  }
  rc = 0;
  while (n < max) {
    int i = -1;
    for (int j = 0; j < LOGS; j++) {
      if (at[j] && k[j].mv_size != 8) {
        rc = MDB_CORRUPTED;
        break;
      }
      if (at[j] && (i < 0 || get_be64(k[j].mv_data) < get_be64(k[i].mv_data)))
        i = j;
    }
    if (rc || i < 0)
      break;
    uint64_t seq = get_be64(k[i].mv_data);
    if (seq > last)
      break;
    record_t r;
    if (record_parse(&v[i], &r)) {
      sl__log(SL_LOG_ERROR, "history: the stored update %" PRIu64 " is corrupt", seq);
      rc = MDB_CORRUPTED;
      break;
    }
    if ((frames[n] = record_frame(&r, seq)) == NULL) {
      rc = ENOMEM;
      break;
    }
    n++;
    c->next = seq + 1;
    c->pos = seq;
    rc = mdb_cursor_get(cur[i], &k[i], &v[i], MDB_NEXT);
    if (rc && rc != MDB_NOTFOUND)
      break;
    at[i] = rc == 0;
    rc = 0;
  }
  if (rc && n == 0)
    goto fail_cur;
  for (int i = 0; i < LOGS; i++) {
    c->want[i] = at[i] && k[i].mv_size == 8 ? get_be64(k[i].mv_data) : stored + 1;
    mdb_cursor_close(cur[i]);
  }
  read_end(h, txn);
  return (int)n;
fail_cur:
  for (int i = 0; i < LOGS; i++)
    if (cur[i])
      mdb_cursor_close(cur[i]);
fail_txn:
  read_end(h, txn);
fail:
  if (rc != ENOMEM && rc != MDB_CORRUPTED)
    sl__log(SL_LOG_ERROR, "history: cannot read: %s", mdb_strerror(rc));
  return mdb_err(rc);
}

static uint64_t lmdb_cursor_pos(const sl_history_cursor_t *hc) {
  return ((const lmdb_cursor_t *)hc)->pos;
}

static void lmdb_cursor_close(sl_history_cursor_t *hc) {
  lmdb_history_t *h = (lmdb_history_t *)hc->history;
  atomic_fetch_sub(&h->cursors, 1);
  free(hc);
}

/* Closes what open made; the writer is not running. */
static void release(lmdb_history_t *h) {
  if (h->env) {
    if (h->opened && h->fsync != SL_FSYNC_ALWAYS)
      mdb_env_sync(h->env, 1);
    mdb_env_close(h->env);
  }
  if (h->lock_fd >= 0)
    close(h->lock_fd); /* releases the flock */
  free(h->buf);
  free(h);
}

static void lmdb_destroy(sl_history_t *base) {
  lmdb_history_t *h = (lmdb_history_t *)base;
  assert(atomic_load(&h->cursors) == 0);
  uv_mutex_lock(&h->lock);
  h->stop = 1;
  uv_cond_signal(&h->wake);
  uv_mutex_unlock(&h->lock);
  uv_thread_join(&h->writer);
  /* What the writer had not taken yet was never stored. */
  complete(h->queue, h->queue_len, -ECANCELED);
  free(h->queue);
  uv_cond_destroy(&h->wake);
  uv_mutex_destroy(&h->lock);
  uv_rwlock_destroy(&h->resize);
  release(h);
}

static const sl_history_ops_t lmdb_ops = {
  .append = lmdb_append,
  .last_seq = lmdb_last_seq,
  .usage = lmdb_usage,
  .cursor_open = lmdb_cursor_open,
  .cursor_next = lmdb_cursor_next,
  .cursor_pos = lmdb_cursor_pos,
  .cursor_close = lmdb_cursor_close,
  .groups = 1,
  .append_held = lmdb_append_held,
  .kick = lmdb_kick,
  .destroy = lmdb_destroy,
};

/* --- opening ------------------------------------------------------------------------------- */

/* mkdir -p, each directory made 0700. */
static int make_dirs(const char *dir) {
  char path[PATH_MAX];
  size_t len = strlen(dir);
  if (len == 0 || len >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(path, dir, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    char c = path[i];
    path[i] = '\0';
    if (mkdir(path, 0700) && errno != EEXIST)
      return -1;
    path[i] = c;
  }
  return 0;
}

/* The directory exists (made 0700 when it did not) and this process alone holds its lock. */
static int lock_dir(lmdb_history_t *h, const char *dir) {
  if (make_dirs(dir)) {
    int e = errno;
    sl__log(SL_LOG_ERROR, "--data-dir %s: cannot create it: %s", dir, strerror(e));
    return -e;
  }
  struct stat st;
  if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
    sl__log(SL_LOG_ERROR, "--data-dir %s: not a directory", dir);
    return -ENOTDIR;
  }
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/" LOCK_FILE, dir) >= (int)sizeof path)
    return -ENAMETOOLONG;
  h->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (h->lock_fd < 0) {
    int e = errno;
    sl__log(SL_LOG_ERROR, "--data-dir %s: cannot open %s: %s", dir, path, strerror(e));
    return -e;
  }
  if (flock(h->lock_fd, LOCK_EX | LOCK_NB)) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(h->lock_fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    if (e == EWOULDBLOCK) {
      sl__log(SL_LOG_ERROR, "--data-dir %s is in use by another live sluice%s%s%s: one data dir "
              "serves one hub process", dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
      return -EBUSY;
    }
    sl__log(SL_LOG_ERROR, "--data-dir %s: cannot lock %s: %s", dir, path, strerror(e));
    return -e;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(h->lock_fd, 0) == 0 && pwrite(h->lock_fd, pid, (size_t)n, 0) < 0)
    sl__log(SL_LOG_WARN, "--data-dir %s: cannot write the pid into %s", dir, path);
  return 0;
}

int sl__history_lmdb_refresh(sl_history_t *hist) {
  lmdb_history_t *h = (lmdb_history_t *)hist;
  MDB_txn *txn;
  int rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn);
  if (rc == MDB_MAP_RESIZED && (rc = mdb_env_set_mapsize(h->env, 0)) == 0)
    rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn); /* the other process grew the map */
  if (rc)
    return mdb_err(rc);
  uint64_t last = 0, format = 0;
  rc = meta_get_u64(h, txn, "last_seq", &last);
  if (rc == 0)
    rc = meta_get_u64(h, txn, "format", &format);
  if (rc == 0) {
    update_usage(h, txn);
    atomic_store(&h->last_seq, last);
    h->format = format;
  }
  mdb_txn_abort(txn);
  return rc ? mdb_err(rc) : 0;
}

int sl__history_lmdb_lock_fd(sl_history_t *hist) {
  return ((lmdb_history_t *)hist)->lock_fd;
}

/* Opens the databases, checks the format, and reads where the order stands. */
static int open_dbs(lmdb_history_t *h, const char *dir) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
  if (rc)
    goto fail;
  if ((rc = mdb_dbi_open(txn, "log", MDB_CREATE, &h->logs[LOG_APP])) ||
      (rc = mdb_dbi_open(txn, "hub", MDB_CREATE, &h->logs[LOG_HUB])) ||
      (rc = mdb_dbi_open(txn, "ids", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &h->ids)) ||
      (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &h->meta)))
    goto fail_txn;
  uint64_t format = 0, last = 0;
  rc = meta_get_u64(h, txn, "format", &format);
  if (rc == MDB_NOTFOUND) {
    MDB_stat st;
    if ((rc = mdb_stat(txn, h->logs[LOG_APP], &st)))
      goto fail_txn;
    if (st.ms_entries > 0) {
      rc = MDB_INVALID; /* updates without the format mark: not ours, or damaged */
      goto fail_txn;
    }
    /* Marked as the oldest format that reads it: 2 only once a hub update is stored. */
    if ((rc = meta_put_u64(h, txn, "format", FORMAT_OLDEST)) ||
        (rc = meta_put_u64(h, txn, "last_seq", 0)))
      goto fail_txn;
    format = FORMAT_OLDEST;
  } else if (rc) {
    goto fail_txn;
  }
  if (format < FORMAT_OLDEST || format > FORMAT_VERSION) {
    mdb_txn_abort(txn);
    sl__log(SL_LOG_ERROR, "--data-dir %s holds history format %" PRIu64 ", this sluice reads %d "
            "to %d", dir, format, FORMAT_OLDEST, FORMAT_VERSION);
    return -EPROTO;
  }
  if ((rc = meta_get_u64(h, txn, "last_seq", &last)))
    goto fail_txn;
  h->format = format;
  /* The newest update of each log must parse, and be within the order the meta says: a torn or
   * foreign file would otherwise be found only when a client resumes into it. */
  for (int i = 0; i < LOGS; i++) {
    MDB_cursor *cur;
    MDB_val k, v;
    if ((rc = mdb_cursor_open(txn, h->logs[i], &cur)))
      goto fail_txn;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    record_t r;
    if (rc == 0 && (k.mv_size != 8 || get_be64(k.mv_data) > last || record_parse(&v, &r)))
      rc = MDB_CORRUPTED;
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
      goto fail_txn;
  }
  update_usage(h, txn);
  if ((rc = mdb_txn_commit(txn)))
    goto fail;
  atomic_store(&h->last_seq, last);
  return 0;
fail_txn:
  mdb_txn_abort(txn);
fail:
  sl__log(SL_LOG_ERROR, "--data-dir %s: the history cannot be read (%s); nothing was changed: "
          "move the directory aside to start empty, or restore it", dir, mdb_strerror(rc));
  return rc > 0 ? -rc : -EIO;
}

int sl__history_lmdb_new(sl_history_t **out, const sl_history_lmdb_opts_t *o) {
  assert(o != NULL && o->dir != NULL);
  lmdb_history_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    return -ENOMEM;
  h->base.ops = &lmdb_ops;
  h->lock_fd = -1;
  h->fsync = o->fsync;
  h->max_entries = o->max_entries;
  h->hub_entries = o->hub_entries;
  h->max_age_ms = (uint64_t)(o->max_age * 1000);
  h->max_disk = o->max_disk ? o->max_disk : SL_DEFAULT_DATA_MAX_SIZE;
  h->hold = getenv("SLUICE_TEST_HOLD_WRITER");
  if (h->hold && h->hold[0] == '\0')
    h->hold = NULL;
  int r;
  if (o->have_lock_fd) {
    /* A live hand-off: the sending process's lock, the same open file and so the same flock,
     * held by both until it exits. */
    h->lock_fd = o->lock_fd;
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(h->lock_fd, 0) || pwrite(h->lock_fd, pid, (size_t)n, 0) < 0)
      sl__log(SL_LOG_WARN, "--data-dir %s: cannot write the pid into its lock file", o->dir);
    r = 0;
  } else {
    r = lock_dir(h, o->dir);
  }
  if (r)
    goto fail;
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
  /* Unsynced commits: each commit writes its pages with pwrite(2) before it returns, so they are
   * the kernel's and a crash of this process loses none of them; the sync (SL_FSYNC_BATCH) is an
   * fdatasync. Not MDB_WRITEMAP: with a shared writable map every msync write-protected the pages
   * it cleaned (a TLB shoot-down to the other cores) and the next commit faulted on each page
   * again; under retention, where freed pages are reused at once, that cost W8D about 6 us of
   * CPU per publish (60,000 publishes: 24-25 us against 18-19 us, alternating runs). */
  if (o->fsync != SL_FSYNC_ALWAYS)
    flags |= MDB_NOSYNC;
  int rc;
  if ((rc = mdb_env_create(&h->env)) || (rc = mdb_env_set_maxdbs(h->env, 4)) ||
      (rc = mdb_env_set_maxreaders(h->env, 1024))) {
    r = mdb_err(rc);
    goto fail;
  }
  uint64_t start = MAP_START < h->max_disk ? MAP_START : h->max_disk;
  if ((rc = mdb_env_set_mapsize(h->env, (size_t)start)) ||
      (rc = mdb_env_open(h->env, o->dir, flags, 0600))) {
    sl__log(SL_LOG_ERROR, "--data-dir %s: the history cannot be opened (%s); nothing was changed: "
            "move the directory aside to start empty, or restore it", o->dir, mdb_strerror(rc));
    r = rc > 0 ? -rc : -EIO;
    goto fail;
  }
  h->opened = 1;
  h->trim_pending = 1; /* what the last run, or a smaller --history-size, left to delete */
  int dead;
  mdb_reader_check(h->env, &dead); /* reader slots a killed process left */
  MDB_envinfo info;
  mdb_env_info(h->env, &info);
  h->mapsize = info.me_mapsize; /* a file larger than the first size keeps its own */
  if ((r = open_dbs(h, o->dir)))
    goto fail;
  h->synced_at = h->aged_at = mono_ms();
  if ((r = uv_rwlock_init(&h->resize)))
    goto fail;
  if ((r = uv_mutex_init(&h->lock)))
    goto fail_rwlock;
  if ((r = uv_cond_init(&h->wake)))
    goto fail_mutex;
  if ((r = uv_thread_create(&h->writer, writer_main, h)))
    goto fail_cond;
  sl__log(SL_LOG_INFO, "history: %s opened, %" PRIu64 " updates retained, the order at %" PRIu64,
          o->dir, (uint64_t)atomic_load(&h->entries), (uint64_t)atomic_load(&h->last_seq));
  *out = &h->base;
  return 0;
fail_cond:
  uv_cond_destroy(&h->wake);
fail_mutex:
  uv_mutex_destroy(&h->lock);
fail_rwlock:
  uv_rwlock_destroy(&h->resize);
fail:
  release(h);
  return r;
}
