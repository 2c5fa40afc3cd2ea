/* redis.c — the shared log in one Redis stream (--redis), so that several hubs serve the same
 * updates in the same order: every hub XADDs what it is given and reads the whole stream back,
 * and delivers what it reads (a feeding backend, history.h), never what it appended, so two hubs
 * can never see two orders. The only file that calls hiredis.
 *
 * Keys: the stream (entries with fields "i", the update's id, "u", the stored update as
 * sl__redis_record_encode lays it out, and "h" on a hub update), the hash "<stream>:ids" from an
 * update's id to its entry's id, so that a hub resumes a client from an id another hub gave it
 * with one HGET and then XRANGE after that entry, "<stream>:trimmed", the newest entry retention
 * dropped, and "<stream>:hubs", how many hub updates the stream holds. One Lua script appends and
 * trims them together (retention by count, approximately, as MAXLEN ~ does: a chunk at a time
 * once the stream is past its size by TRIM_SLACK), so the index never names an entry the stream
 * dropped for long; another drops what is older than --history-max-age once a second.
 *
 * One thread with its own libuv loop owns two asynchronous connections (hiredis's async API on a
 * uv_poll_t each; see "the event glue" for why not hiredis's own libuv adapter):
 * the writer, on which appends are pipelined (many EVALSHAs in flight, answered in order: the
 * publisher's 200 comes once Redis acknowledged its update), and the reader, which XREADs (BLOCK)
 * after the last entry it delivered and gives each entry this hub's next seq. When Redis cannot be
 * reached, appends fail with -EAGAIN (the publisher gets 503), subscribers keep their streams
 * (the workers are untouched), health() says why, and both connections come back with backoff;
 * the reader then continues after the last entry it delivered: no gap, no duplicate.
 *
 * Cursors (resumes) look the id up on the caller's thread with a blocking connection from a
 * small pool (connect and command timeouts bound the wait); their pages are fetched on the loop
 * thread, on a third asynchronous connection (the pager), when the caller made them non-blocking
 * (cursor_notify), else on the caller's thread too. Seqs are this hub's: the entries it read
 * live are numbered from SEQ_BASE up (a ring maps the recent ones to their entry ids). A cursor
 * reads up to the newest entry fed, looked up again at every page, so it follows the feed as the
 * other backends' cursors follow their store, and its position at the end is that entry's seq:
 * the caller joins the live flow right after it. Entries older than this hub's start (or than
 * the ring) get, in a cursor, the seq after the previous frame's: increasing, and below the
 * feed's. An id this hub has not read yet (another hub's update of an instant ago) puts the
 * position at the seq the feed will give it, counted from the stream.
 *
 * A live hand-off (history.h's feed_hold, feed_at, feed_release): the old process's reader stops
 * before an entry (feed_lock is held across each feed call, so the hold waits for the one in
 * progress), and the entry fed last and its seq go to the new process, whose reader starts after
 * that entry with start_seq (the seq of start) set to it instead of SEQ_BASE: its feed goes on at
 * the next seq and its cursors number as the old process's did (older entries below start_seq). */
#include "history/history.h"

#include <assert.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/log.h"
#include "common/wire.h"

#define RECORD_VERSION 1
#define RECORD_HEAD 12               /* version, flags, topic count, id length, payload length */
#define SEQ_BASE (1ull << 32)        /* this hub's seq when it starts (unless a live hand-off
                                        gave it the old process's): the live ones follow */
#define RING_MIN 4096                /* live entries whose ids are remembered, at least */
#define READ_COUNT 1024              /* entries one XREAD takes at most */
#define READ_BLOCK_MS 1000           /* how long an XREAD waits for an entry */
#define STALL_MS 500                 /* an XREAD answered this much past its block = a stall */
#define REPLY_TIMEOUT_MS 5000        /* an answer later than this (beyond the block) = Redis gone */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define TICK_MS 100                  /* reconnects, timeouts and the usage poll are checked this often */
#define USAGE_EVERY_MS 2000
#define POOL_MAX 8                   /* idle blocking connections kept for cursors */
/* A resume reads on its worker's thread (blocking), so every read is bounded: a connect or an
 * answer later than SYNC_TIMEOUT_MS fails it (a healthy Redis answers a page in about a
 * millisecond), and after such a failure resumes fail at once for SYNC_PAUSE_MS instead of each
 * stalling a worker again: one slow Redis costs a worker one timeout a pause, not one a resume. */
#define SYNC_TIMEOUT_MS 250
#define SYNC_PAUSE_MS 1000
#define MAX_EMPTY_PAGES 16           /* pages of foreign entries only a cursor reads on through */
#define TRIM_SLACK 256               /* entries past max_entries before a trim runs */
#define TRIM_CHUNK 1024              /* entries one trim drops at most */
#define MIN_RETAINED 1024            /* the stream keeps at least this many (a lagging reader) */
#define AGE_CHECK_MS 1000            /* how often the writer drops updates past --history-max-age */
#define AGE_CHUNKS 16                /* TRIM_CHUNKs one age check drops at most (the rest: next) */
/* One append script call takes at most this many updates, or this many bytes of records (one more
 * when the first alone is larger): a call runs alone in Redis, so a batch is bounded in time
 * (about 2 us an update there), and a trim (TRIM_CHUNK a call) keeps up with any batch. */
#define BATCH_MAX 128
#define BATCH_BYTES (256 * 1024)
#define APPEND_ARGS 11               /* EVALSHA, sha, key count, 4 keys, 4 values; 3 an update */

/* KEYS: stream, index, trimmed, hubs. ARGV: max entries, slack, chunk, hub entries, then three
 * per update of the batch, in order: its id, its record, "1" for a hub update (a subscription
 * event). The entries' ids are returned, in the same order. One call takes a pipelined batch of
 * appends (up to BATCH_MAX): Redis's cost per call (the script's run, its arguments' strings, the
 * count and the trim check) is then paid once per batch, not once per update. HSETNX: the first
 * copy of a repeated id is the one a resume finds, as the protocol wants. Hub updates carry a
 * field "h" and are counted in "hubs", so that retention counts the application's updates apart:
 * the stream keeps max of them, and hub updates on top, up to hub entries of them; past either,
 * the oldest entries go, from the head only (a stream without holes, one order on every hub). The
 * trim removes an index field only when it still names the entry dropped, and records the newest
 * entry it dropped, so that a reader can tell whether it missed any (XINFO's max-deleted-entry-id
 * counts XDEL only, not trimming). */
static const char APPEND_SCRIPT[] =
    "local ids, added = {}, 0\n"
    "for j = 5, #ARGV - 2, 3 do\n"
    "  local e\n"
    "  if ARGV[j + 2] == '1' then\n"
    "    e = redis.call('XADD', KEYS[1], '*', 'i', ARGV[j], 'u', ARGV[j + 1], 'h', '1')\n"
    "    added = added + 1\n"
    "  else\n"
    "    e = redis.call('XADD', KEYS[1], '*', 'i', ARGV[j], 'u', ARGV[j + 1])\n"
    "  end\n"
    "  redis.call('HSETNX', KEYS[2], ARGV[j], e)\n"
    "  ids[#ids + 1] = e\n"
    "end\n"
    "if added > 0 then redis.call('INCRBY', KEYS[4], added) end\n"
    "local max, slack = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local cap = max + tonumber(ARGV[4])\n"
    "local n = redis.call('XLEN', KEYS[1])\n"
    "local hubs = tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "if n - hubs > max + slack or n > cap + slack then\n"
    "  local chunk = tonumber(ARGV[3])\n"
    "  local need = math.min(math.max(n - hubs - max, n - cap), chunk)\n"
    "  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', need + 1)\n"
    "  local k, gone = 0, 0\n"
    "  while k < chunk and k + 1 < #old and (n - hubs > max or n > cap) do\n"
    "    k = k + 1\n"
    "    local f = old[k][2]\n"
    "    for x = 1, #f, 2 do\n"
    "      if f[x] == 'i' and redis.call('HGET', KEYS[2], f[x + 1]) == old[k][1] then\n"
    "        redis.call('HDEL', KEYS[2], f[x + 1])\n"
    "      elseif f[x] == 'h' then\n"
    "        hubs = hubs - 1\n"
    "        gone = gone + 1\n"
    "      end\n"
    "    end\n"
    "    n = n - 1\n"
    "  end\n"
    "  if k > 0 then\n"
    "    redis.call('XTRIM', KEYS[1], 'MINID', old[k + 1][1])\n"
    "    redis.call('SET', KEYS[3], old[k][1])\n"
    "    if gone > 0 then redis.call('DECRBY', KEYS[4], gone) end\n"
    "  end\n"
    "end\n"
    "return ids\n";

/* KEYS: stream, index, trimmed, hubs. ARGV: max age in ms, chunk, chunks. Drops the entries older
 * than the max age by Redis's clock (an entry id's first part is the time XADD gave it, in ms), a chunk
 * at a time as the append script does, with their index fields; records the newest dropped in
 * "trimmed". Returns how many it dropped. Age is Redis's own time, so every hub agrees on it. */
static const char AGE_SCRIPT[] =
    "local t = redis.call('TIME')\n"
    "local cutoff = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) -\n"
    "                       tonumber(ARGV[1])) .. '-0'\n"
    "local chunk = tonumber(ARGV[2])\n"
    "local dropped = 0\n"
    "for c = 1, tonumber(ARGV[3]) do\n"
    "  local old = redis.call('XRANGE', KEYS[1], '-', '(' .. cutoff, 'COUNT', chunk + 1)\n"
    "  if #old == 0 then break end\n"
    "  local k = math.min(#old, chunk)\n"
    "  for j = 1, k do\n"
    "    local f = old[j][2]\n"
    "    for x = 1, #f, 2 do\n"
    "      if f[x] == 'i' and redis.call('HGET', KEYS[2], f[x + 1]) == old[j][1] then\n"
    "        redis.call('HDEL', KEYS[2], f[x + 1])\n"
    "      elseif f[x] == 'h' then\n"
    "        redis.call('DECR', KEYS[4])\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('XTRIM', KEYS[1], 'MINID', #old > chunk and old[k + 1][1] or cutoff)\n"
    "  redis.call('SET', KEYS[3], old[k][1])\n"
    "  dropped = dropped + k\n"
    "  if #old <= chunk then break end\n"
    "end\n"
    "return dropped\n";

/* --- URL and record -------------------------------------------------------------------------- */

int sl__redis_url_parse(const char *url, sl_redis_url_t *out, const char **why) {
  memset(out, 0, sizeof *out);
  out->port = 6379;
  if (strncmp(url, "rediss://", 9) == 0) {
    *why = "rediss:// (TLS) is not supported: Debian 12's hiredis (0.14) has no TLS; reach Redis "
           "over a TLS tunnel (stunnel, spiped) with redis:// on loopback";
    return -EPROTONOSUPPORT;
  }
  if (strncmp(url, "redis://", 8) != 0) {
    *why = "a Redis URL starts with redis://";
    return -EINVAL;
  }
  const char *p = url + 8;
  const char *end = p + strcspn(p, "/?#");
  const char *at = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == '@')
      at = q; /* the last @: a password may hold one */
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p;
    size_t n = (size_t)(at - pw);
    if (n >= sizeof out->password) {
      *why = "the password in the Redis URL is too long";
      return -EINVAL;
    }
    memcpy(out->password, pw, n);
    p = at + 1;
  }
  const char *host_end;
  const char *port_at = NULL;
  if (*p == '[') {
    host_end = memchr(p, ']', (size_t)(end - p));
    if (host_end == NULL) {
      *why = "an IPv6 address in the Redis URL needs its closing ]";
      return -EINVAL;
    }
    p++;
    if (host_end + 1 < end && host_end[1] == ':')
      port_at = host_end + 2;
    else if (host_end + 1 != end) {
      *why = "unexpected text after the IPv6 address in the Redis URL";
      return -EINVAL;
    }
  } else {
    host_end = memchr(p, ':', (size_t)(end - p));
    if (host_end)
      port_at = host_end + 1;
    else
      host_end = end;
  }
  size_t hl = (size_t)(host_end - p);
  if (hl == 0 || hl >= sizeof out->host) {
    *why = "the Redis URL needs a host (redis://HOST:PORT)";
    return -EINVAL;
  }
  memcpy(out->host, p, hl);
  if (port_at) {
    char *e;
    long v = strtol(port_at, &e, 10);
    if (port_at == end || e != end || v < 1 || v > 65535) {
      *why = "the port in the Redis URL is not a number from 1 to 65535";
      return -EINVAL;
    }
    out->port = (int)v;
  }
  if (*end == '/' && end[1] != '\0') {
    char *e;
    long v = strtol(end + 1, &e, 10);
    if (*e != '\0' || v < 0 || v > 1000000) {
      *why = "the database in the Redis URL (/DB) is not a number";
      return -EINVAL;
    }
    out->db = (int)v;
  } else if (*end != '\0' && !(*end == '/' && end[1] == '\0')) {
    *why = "the Redis URL takes no query or fragment";
    return -EINVAL;
  }
  return 0;
}

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++, v >>= 8)
    p[i] = (unsigned char)v;
}

static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* Layout: u8 version, u8 flags, u16 topic count, u16 id length, u16 zero, u32 payload length,
 * then a u32 length per topic, the topics, the id, the payload (the frame's SSE bytes). */
size_t sl__redis_record_encode(const sl_frame_t *f, unsigned char *buf, size_t cap) {
  size_t plen = f->len - f->hdr - 2;
  size_t need = RECORD_HEAD + f->id_len + plen;
  for (size_t i = 0; i < f->topic_count; i++)
    need += 4 + f->topic_lens[i];
  if (buf == NULL || cap < need)
    return need;
  unsigned char *p = buf;
  p[0] = RECORD_VERSION;
  p[1] = (unsigned char)(f->flags & SL_FRAME_PRIVATE);
  put_le(p + 2, f->topic_count, 2);
  put_le(p + 4, f->id_len, 2);
  put_le(p + 6, 0, 2);
  put_le(p + 8, plen, 4);
  p += RECORD_HEAD;
  for (size_t i = 0; i < f->topic_count; i++, p += 4)
    put_le(p, f->topic_lens[i], 4);
  for (size_t i = 0; i < f->topic_count; i++) {
    memcpy(p, f->topics[i], f->topic_lens[i]);
    p += f->topic_lens[i];
  }
  memcpy(p, f->id, f->id_len);
  memcpy(p + f->id_len, f->wire + f->hdr, plen);
  return need;
}

#define TOPICS_ON_STACK 64

sl_frame_t *sl__redis_record_decode(const unsigned char *p, size_t len) {
  if (len < RECORD_HEAD || p[0] != RECORD_VERSION || (p[1] & ~SL_FRAME_PRIVATE))
    return NULL;
  size_t tc = get_le(p + 2, 2), idl = get_le(p + 4, 2), plen = get_le(p + 8, 4);
  size_t need = RECORD_HEAD + 4 * tc;
  if (len < need || tc == 0)
    return NULL;
  const char *topics_buf[TOPICS_ON_STACK];
  uint32_t lens_buf[TOPICS_ON_STACK];
  const char **topics = topics_buf;
  uint32_t *lens = lens_buf;
  if (tc > TOPICS_ON_STACK) {
    topics = malloc(tc * sizeof *topics);
    lens = malloc(tc * sizeof *lens);
    if (topics == NULL || lens == NULL) {
      free(topics);
      free(lens);
      return NULL;
    }
  }
  size_t strings = 0;
  for (size_t i = 0; i < tc; i++) {
    lens[i] = (uint32_t)get_le(p + RECORD_HEAD + 4 * i, 4);
    strings += lens[i];
  }
  sl_frame_t *f = NULL;
  if (len == need + strings + idl + plen) {
    const char *s = (const char *)p + need;
    for (size_t i = 0; i < tc; i++) {
      topics[i] = s;
      s += lens[i];
    }
    f = sl__frame_restore(s + idl, plen, s, idl, topics, lens, tc, p[1]);
  }
  if (topics != topics_buf) {
    free(topics);
    free(lens);
  }
  return f;
}

/* --- stream ids ------------------------------------------------------------------------------ */

typedef struct sid_s {
  uint64_t ms, n;
} sid_t;

static int sid_parse(const char *s, size_t len, sid_t *out) {
  char buf[48];
  if (len == 0 || len >= sizeof buf)
    return -EPROTO;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *e;
  out->ms = strtoull(buf, &e, 10);
  if (*e != '-')
    return -EPROTO;
  out->n = strtoull(e + 1, &e, 10);
  return *e == '\0' ? 0 : -EPROTO;
}

static int sid_cmp(sid_t a, sid_t b) {
  if (a.ms != b.ms)
    return a.ms < b.ms ? -1 : 1;
  return a.n == b.n ? 0 : (a.n < b.n ? -1 : 1);
}

static void sid_str(sid_t s, char *buf, size_t cap) {
  snprintf(buf, cap, "%" PRIu64 "-%" PRIu64, s.ms, s.n);
}

/* --- the backend ----------------------------------------------------------------------------- */

typedef struct op_s {
  struct op_s *next;
  sl_frame_t *frame;                 /* a reference, dropped once done was called */
  sl_history_done_cb done;
  void *arg;
  void *h;
  int replied;                       /* its answer came (or it failed before it was sent) */
  int err;
  uint64_t sent_ms;
  unsigned batch;                    /* the first of a batch sent: how many the call carries */
  size_t rec_len;                    /* its record's length, while its batch is formatted */
} op_t;

typedef enum { LINK_DOWN, LINK_CONNECTING, LINK_UP } link_state_t;

/* One asynchronous connection and its reconnection. */
typedef struct link_s {
  const char *name;                  /* "writer", "reader": for the log */
  redisAsyncContext *ac;
  link_state_t state;
  uint64_t retry_at;                 /* loop ms of the next connect, when down */
  uint64_t backoff;
  uint64_t waiting_since;            /* loop ms a reply has been awaited since, 0 = none */
  int logged_down;                   /* the outage was logged */
} link_t;

typedef struct redis_history_s {
  sl_history_t base;
  sl_redis_url_t url;
  char *stream, *index, *trimmed_key, *hubs_key;
  size_t max_entries;
  size_t hub_entries;                /* hub updates retained on top of max_entries */
  uint64_t max_age_ms;               /* 0 = no age limit */

  uv_thread_t thread;
  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t tick;
  uv_prepare_t flush;                /* writes what this loop turn asked for (on_flush) */

  uv_mutex_t lock;                   /* guards queue, stop, feeding, why */
  op_t *queue, *queue_tail;          /* appends not yet sent */
  int stop;
  sl_history_feed_cb feed;
  void *feed_arg;
  char why[160];

  struct redis_cursor_s *fetches, *fetches_tail; /* under lock: pages non-blocking cursors want */

  /* The loop thread's. */
  link_t w, r, p;                    /* the writer, the reader, the pager (cursors' pages) */
  unsigned pager_inflight;
  op_t *sent, *sent_tail;            /* in flight (and failed ones), oldest first */
  char sha[41];                      /* the script's, once loaded on the writer */
  char *cmd;                         /* a batch's command, as sent (RESP), reused */
  size_t cmd_cap;
  int reading;                       /* feed set: the reader runs */
  int parked;                        /* held: no XREAD in flight; feed_release reads again */
  int have_start;                    /* start and last are known */
  sid_t last;                        /* the last entry delivered */
  int gap;                           /* entries after last were lost: skip a seq (check_gap) */
  int check;                         /* look for such a loss before the next read */
  sid_t trimmed;                     /* the newest entry retention dropped, as last read */
  uint64_t usage_at;
  uint64_t aged_at;                  /* loop ms of the last age check */

  /* Seqs: the reader writes, cursors read, under ring_lock. */
  uv_rwlock_t ring_lock;
  sid_t start;                       /* the entry at start_seq: the top when the reader began,
                                        or the one a live hand-off's old process fed last */
  uint64_t start_seq;                /* SEQ_BASE, or the old process's seq of start */
  sid_t *ring;                       /* ring[s % ring_cap]: the entry of live seq s */
  size_t ring_cap;
  atomic_uint_fast64_t seq;          /* the last seq given (SEQ_BASE before any) */
  atomic_int started;                /* start is known */

  atomic_int writer_up, reader_up;

  /* The live hand-off: held stops the feed at an entry boundary. feed_lock is held across each
   * feed call and by feed_hold, so that once held is set no call runs and none starts. */
  uv_mutex_t feed_lock;
  atomic_int held;
  int handoff;                       /* opened held, waiting for feed_at */
  atomic_uint_fast64_t entries, bytes;

  uv_mutex_t pool_lock;
  redisContext *pool[POOL_MAX];
  size_t pool_len;
  atomic_uint_fast64_t sync_paused_until; /* ms (uv_hrtime): resumes fail at once until then */
} redis_history_t;

enum { C_IDLE, C_QUEUED, C_DONE, C_CANCELLED };

typedef struct redis_cursor_s {
  sl_history_cursor_t base;
  redisContext *c;                   /* blocking: its connection while it has one */
  sid_t from;                        /* the last entry returned (or the one resumed after) */
  int from_set;                      /* 0: from the oldest retained */
  int ahead_known;                   /* pos is the seq the feed will give from (beyond it) */
  uint64_t limit;                    /* the caller's upto: the cursor follows the feed up to it */
  uint64_t pos;

  /* Non-blocking (cursor_notify). The loop thread fills the fields below and from, pos,
   * ahead_known while state is C_QUEUED; the owner reads them once it is C_DONE. */
  void (*ready)(void *arg);
  void *ready_arg;
  uv_mutex_t mu;                     /* guards state */
  int state;                         /* C_IDLE, C_QUEUED, C_DONE, C_CANCELLED */
  struct redis_cursor_s *next;       /* in the history's fetches */
  int fetch;                         /* STEP_PAGE or STEP_AHEAD */
  sid_t bound;
  uint64_t bound_seq;
  size_t want;
  sl_frame_t **buf;                  /* the page fetched, buf[buf_at..buf_n) not handed out */
  int buf_n, buf_at;
  int err;
} redis_cursor_t;

static uint64_t loop_ms(redis_history_t *h) {
  return uv_now(&h->loop);
}

static void set_why(redis_history_t *h, const char *fmt, const char *a, const char *b) {
  uv_mutex_lock(&h->lock);
  snprintf(h->why, sizeof h->why, fmt, a, b);
  uv_mutex_unlock(&h->lock);
}

/* --- the writer ------------------------------------------------------------------------------ */

/* Completes the appends at the head whose answers came, in order. */
static void complete_ready(redis_history_t *h) {
  while (h->sent && h->sent->replied) {
    op_t *op = h->sent;
    h->sent = op->next;
    if (h->sent == NULL)
      h->sent_tail = NULL;
    op->frame->seq = 0; /* its place comes when the reader reads it */
    op->done(op->frame, op->err, op->arg);
    sl__frame_unref(op->frame);
    free(op);
  }
  h->w.waiting_since = h->sent ? h->sent->sent_ms : 0;
}

static void sent_push(redis_history_t *h, op_t *op) {
  op->next = NULL;
  if (h->sent_tail)
    h->sent_tail->next = op;
  else
    h->sent = op;
  h->sent_tail = op;
}

/* The answer to one batch: the ids of its entries, one per update, in order. */
static void on_appended(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  op_t *op = privdata;
  redis_history_t *h = op->h;
  redisReply *rep = reply;
  unsigned n = op->batch;
  int err = 0;
  if (rep == NULL) {
    err = -EAGAIN; /* the connection went: stored or not, the publishers retry */
  } else if (rep->type == REDIS_REPLY_ERROR) {
    sl__log(SL_LOG_ERROR, "redis: %u update(s) refused: %.200s", n, rep->str);
    err = -EAGAIN;
    if (strncmp(rep->str, "NOSCRIPT", 8) == 0 && h->w.ac)
      redisAsyncDisconnect(h->w.ac); /* Redis lost the script (restart, SCRIPT FLUSH): reload */
  } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
    sl__log(SL_LOG_ERROR, "redis: the append script answered %u update(s) with a reply of type "
            "%d and %zu element(s); failed", n, rep->type,
            rep->type == REDIS_REPLY_ARRAY ? rep->elements : (size_t)0);
    err = -EAGAIN;
  }
  for (unsigned i = 0; i < n; i++, op = op->next) {
    op->replied = 1;
    op->err = err;
  }
  complete_ready(h);
}

/* Appends "$<len>\r\n<bytes>\r\n" at p (RESP's bulk string); returns the end. */
static char *resp_bulk(char *p, const void *s, size_t len) {
  p += sprintf(p, "$%zu\r\n", len);
  memcpy(p, s, len);
  p += len;
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

#define RESP_BULK_HEAD 26            /* "$", up to 20 digits, "\r\n", the "\r\n" after, a NUL */

/* Sends the batch of n ops from first (sent_push'ed already) as one EVALSHA, formatted here with
 * each record encoded in place (no copy per update); bytes: their records' lengths in all.
 * 0, or -ENOMEM / -EAGAIN (then nothing was sent). */
static int send_batch(redis_history_t *h, op_t *first, unsigned n, size_t bytes,
                      const char *const values[4]) {
  const char *head[] = {"EVALSHA", h->sha, "4", h->stream, h->index, h->trimmed_key, h->hubs_key,
                        values[0], values[1], values[2], values[3]};
  size_t need = 32 + (size_t)(APPEND_ARGS + 3 * n) * RESP_BULK_HEAD + bytes + 2 * n;
  for (size_t i = 0; i < APPEND_ARGS; i++)
    need += strlen(head[i]);
  op_t *op = first;
  for (unsigned i = 0; i < n; i++, op = op->next)
    need += op->frame->id_len;
  if (need > h->cmd_cap) {
    char *c = realloc(h->cmd, need);
    if (c == NULL)
      return -ENOMEM;
    h->cmd = c;
    h->cmd_cap = need;
  }
  char *p = h->cmd + sprintf(h->cmd, "*%u\r\n", APPEND_ARGS + 3 * n);
  for (size_t i = 0; i < APPEND_ARGS; i++)
    p = resp_bulk(p, head[i], strlen(head[i]));
  op = first;
  for (unsigned i = 0; i < n; i++, op = op->next) {
    p = resp_bulk(p, op->frame->id, op->frame->id_len);
    p += sprintf(p, "$%zu\r\n", op->rec_len);
    p += sl__redis_record_encode(op->frame, (unsigned char *)p, op->rec_len);
    *p++ = '\r';
    *p++ = '\n';
    p = resp_bulk(p, op->frame->flags & SL_FRAME_HUB ? "1" : "0", 1);
  }
  assert((size_t)(p - h->cmd) <= need);
  first->batch = n;
  if (redisAsyncFormattedCommand(h->w.ac, on_appended, first, h->cmd, (size_t)(p - h->cmd)) !=
      REDIS_OK)
    return -EAGAIN;
  return 0;
}

/* Sends what was queued, a batch (one script call) at a time, pipelined behind what is in flight:
 * the publishers of a batch are answered together, once Redis has all of it. */
static void send_queued(redis_history_t *h) {
  uv_mutex_lock(&h->lock);
  op_t *ops = h->queue;
  h->queue = h->queue_tail = NULL;
  uv_mutex_unlock(&h->lock);
  char maxs[24], slack[24], chunk[24], hubmax[24];
  size_t max = h->max_entries < MIN_RETAINED ? MIN_RETAINED : h->max_entries;
  snprintf(maxs, sizeof maxs, "%zu", max);
  snprintf(hubmax, sizeof hubmax, "%zu", h->hub_entries);
  snprintf(slack, sizeof slack, "%d", TRIM_SLACK);
  snprintf(chunk, sizeof chunk, "%d", TRIM_CHUNK);
  const char *values[4] = {maxs, slack, chunk, hubmax};
  uint64_t now = loop_ms(h);
  int up = h->w.state == LINK_UP && h->sha[0] != '\0';
  while (ops) {
    op_t *first = ops;
    unsigned n = 0;
    size_t bytes = 0;
    do {
      op_t *op = ops;
      op->rec_len = sl__redis_record_encode(op->frame, NULL, 0);
      if (n > 0 && bytes + op->rec_len > BATCH_BYTES)
        break;
      ops = op->next;
      sent_push(h, op);
      op->sent_ms = now;
      bytes += op->rec_len;
      n++;
    } while (ops && n < BATCH_MAX);
    int r = up ? send_batch(h, first, n, bytes, values) : -EAGAIN;
    if (r) {
      for (op_t *op = first; n > 0; n--, op = op->next) {
        op->replied = 1;
        op->err = r;
      }
    }
  }
  complete_ready(h);
}

/* Everything still queued or in flight fails (the writer went). */
static void fail_queued(redis_history_t *h, int err) {
  uv_mutex_lock(&h->lock);
  op_t *ops = h->queue;
  h->queue = h->queue_tail = NULL;
  uv_mutex_unlock(&h->lock);
  while (ops) {
    op_t *op = ops;
    ops = op->next;
    op->replied = 1;
    op->err = err;
    sent_push(h, op);
  }
  for (op_t *op = h->sent; op; op = op->next)
    if (!op->replied) {
      op->replied = 1;
      op->err = err;
    }
  complete_ready(h);
}

/* --- the reader ------------------------------------------------------------------------------ */

static void read_next(redis_history_t *h);
static void on_check(redisAsyncContext *ac, void *reply, void *privdata);
static void ask_info(redis_history_t *h, redisAsyncContext *ac, redisCallbackFn *cb);

/* The reply's field value named name (an entry's field list), or NULL. */
static const redisReply *field(const redisReply *fields, const char *name) {
  if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
    return NULL;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const redisReply *k = fields->element[i];
    if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
      return fields->element[i + 1];
  }
  return NULL;
}

/* An entry ([id, [fields]]) as a frame, or NULL (logged: not one of ours, or damaged). */
static sl_frame_t *entry_frame(const redisReply *e, sid_t *id) {
  if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
      sid_parse(e->element[0]->str, e->element[0]->len, id))
    return NULL;
  const redisReply *u = field(e->element[1], "u");
  sl_frame_t *f = u && u->type == REDIS_REPLY_STRING
                      ? sl__redis_record_decode((const unsigned char *)u->str, u->len)
                      : NULL;
  if (f == NULL)
    sl__log(SL_LOG_WARN, "redis: stream entry %.40s is not an update sluice wrote; skipped",
            e->element[0]->str);
  return f;
}

/* Feeds the entry id (frame f) with the next seq. 0; 1 when the feed is held (a live hand-off):
 * nothing was done, and the reader stops before this entry. */
static int deliver(redis_history_t *h, sid_t id, sl_frame_t *f) {
  uv_mutex_lock(&h->feed_lock);
  if (atomic_load(&h->held)) {
    uv_mutex_unlock(&h->feed_lock);
    return 1;
  }
  uv_rwlock_wrlock(&h->ring_lock);
  uint64_t seq = atomic_load(&h->seq) + 1;
  if (h->gap) {
    h->ring[seq % h->ring_cap] = h->last; /* the seq skipped: the ring stays in order */
    seq++;
    h->gap = 0;
  }
  h->ring[seq % h->ring_cap] = id;
  atomic_store(&h->seq, seq);
  uv_rwlock_wrunlock(&h->ring_lock);
  h->last = id;
  f->seq = seq;
  uv_mutex_lock(&h->lock);
  sl_history_feed_cb cb = h->feed;
  void *arg = h->feed_arg;
  uv_mutex_unlock(&h->lock);
  cb(f, arg);
  uv_mutex_unlock(&h->feed_lock);
  return 0;
}

static void on_read(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  redis_history_t *h = privdata;
  redisReply *rep = reply;
  /* An answer later than the block allows: this hub stalled (stopped, starved), and retention may
   * have overtaken it meanwhile; look before the next read. */
  if (loop_ms(h) - h->r.waiting_since > READ_BLOCK_MS + STALL_MS)
    h->check = 1;
  h->r.waiting_since = 0;
  if (rep == NULL)
    return; /* the connection went; its disconnect callback reconnects */
  if (rep->type == REDIS_REPLY_ERROR) {
    sl__log(SL_LOG_ERROR, "redis: XREAD failed: %.200s", rep->str);
    set_why(h, "Redis refused XREAD: %.100s%s", rep->str, "");
    redisAsyncDisconnect(h->r.ac);
    return;
  }
  /* nil: the block ran out; else [[stream, [entries]]]. */
  if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
      rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2) {
    const redisReply *entries = rep->element[0]->element[1];
    /* A full batch: this hub is behind, so retention may overtake it; look before the next. */
    if (entries->type == REDIS_REPLY_ARRAY && entries->elements >= READ_COUNT)
      h->check = 1;
    for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
      sid_t id;
      sl_frame_t *f = entry_frame(entries->element[i], &id);
      if (f == NULL) {
        if (entries->element[i]->type == REDIS_REPLY_ARRAY && entries->element[i]->elements >= 1 &&
            entries->element[i]->element[0]->type == REDIS_REPLY_STRING &&
            sid_parse(entries->element[i]->element[0]->str, entries->element[i]->element[0]->len,
                      &id) == 0)
          h->last = id; /* skipped, not read again */
        continue;
      }
      int held = deliver(h, id, f);
      sl__frame_unref(f);
      if (held) {
        h->parked = 1; /* read again after h->last, the entry before this one, when released */
        return;
      }
    }
  }
  read_next(h);
}

static void read_next(redis_history_t *h) {
  if (h->r.state != LINK_UP)
    return;
  h->parked = atomic_load(&h->held);
  if (h->parked)
    return;
  char after[48], count[16], block[16];
  sid_str(h->last, after, sizeof after);
  snprintf(count, sizeof count, "%d", READ_COUNT);
  snprintf(block, sizeof block, "%d", READ_BLOCK_MS);
  if (h->check) {
    ask_info(h, h->r.ac, on_check);
    h->check = 0;
  }
  const char *argv[] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", h->stream, after};
  if (redisAsyncCommandArgv(h->r.ac, on_read, h, 8, argv, NULL) == REDIS_OK)
    h->r.waiting_since = loop_ms(h);
}

/* What XINFO STREAM says of the stream: the newest id it gave, and the newest id it deleted (Redis
 * 7; 0-0 before), both 0-0 when there is no stream yet. -EPROTO when the reply is not that. */
static int stream_info(const redisReply *rep, sid_t *top, sid_t *deleted) {
  *top = *deleted = (sid_t){0, 0};
  if (rep->type == REDIS_REPLY_ERROR)
    return strstr(rep->str, "no such key") ? 0 : -EPROTO;
  if (rep->type != REDIS_REPLY_ARRAY)
    return -EPROTO;
  for (size_t i = 0; i + 1 < rep->elements; i += 2) {
    const redisReply *k = rep->element[i], *v = rep->element[i + 1];
    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
      continue;
    if (strcmp(k->str, "last-generated-id") == 0 && sid_parse(v->str, v->len, top))
      return -EPROTO;
    if (strcmp(k->str, "max-deleted-entry-id") == 0 && sid_parse(v->str, v->len, deleted))
      return -EPROTO;
  }
  return 0;
}

/* Entries after the last one delivered were deleted (retention overtook this hub's reader: it was
 * stopped, cut off, or too slow): they cannot be delivered, so the next update skips a seq, which
 * the workers take for a gap: their streams end and the clients resume with their ids, getting
 * "earliest" when the id is gone too, rather than lose updates silently. */
static void check_gap(redis_history_t *h, sid_t top, sid_t deleted) {
  char a[48], b[48];
  if (sid_cmp(h->trimmed, deleted) > 0)
    deleted = h->trimmed;
  sid_str(h->last, a, sizeof a);
  if (sid_cmp(top, h->last) < 0) {
    sid_str(top, b, sizeof b);
    sl__log(SL_LOG_WARN, "redis: the stream ends at %s, before %s which this hub delivered: Redis "
            "lost updates (restarted without persistence?); going on after %s", b, a, a);
  } else if (sid_cmp(deleted, h->last) > 0) {
    sid_str(deleted, b, sizeof b);
    sl__log(SL_LOG_WARN, "redis: updates after %s were trimmed from the stream (up to %s) before "
            "this hub read them (raise --history-size); its streams end so that clients resume",
            a, b);
    h->gap = 1;
  }
}

/* The newest entry retention dropped (the GET before an XINFO). */
static void on_trimmed(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  redis_history_t *h = privdata;
  redisReply *rep = reply;
  h->trimmed = (sid_t){0, 0};
  if (rep && rep->type == REDIS_REPLY_STRING)
    sid_parse(rep->str, rep->len, &h->trimmed);
}

/* Asks for what check_gap needs: the GET, then XINFO STREAM answered to cb. */
static void ask_info(redis_history_t *h, redisAsyncContext *ac, redisCallbackFn *cb) {
  const char *get[] = {"GET", h->trimmed_key};
  redisAsyncCommandArgv(ac, on_trimmed, h, 2, get, NULL);
  const char *info[] = {"XINFO", "STREAM", h->stream};
  redisAsyncCommandArgv(ac, cb, h, 3, info, NULL);
}

static void on_check(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  redis_history_t *h = privdata;
  sid_t top, deleted;
  if (reply && stream_info(reply, &top, &deleted) == 0)
    check_gap(h, top, deleted);
}

/* Where this hub starts (the first time: after the newest id the stream gave), or, after an
 * outage, a check that nothing after the last entry delivered was lost or trimmed. */
static void on_info(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  redis_history_t *h = privdata;
  redisReply *rep = reply;
  h->r.waiting_since = 0;
  if (rep == NULL)
    return;
  sid_t top, deleted;
  if (stream_info(rep, &top, &deleted)) {
    const char *what = rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply";
    sl__log(SL_LOG_ERROR, "redis: cannot read the stream '%s': %.200s", h->stream, what);
    set_why(h, "cannot read the Redis stream: %.100s%s", what, "");
    redisAsyncDisconnect(h->r.ac);
    return;
  }
  if (!h->have_start) {
    uv_rwlock_wrlock(&h->ring_lock);
    h->start = top;
    uv_rwlock_wrunlock(&h->ring_lock);
    h->last = top;
    h->have_start = 1;
    atomic_store(&h->started, 1);
  } else {
    check_gap(h, top, deleted);
  }
  h->r.backoff = BACKOFF_MIN_MS;
  if (h->r.logged_down)
    sl__log(SL_LOG_INFO, "redis: reader connected to %s:%d again", h->url.host, h->url.port);
  h->r.logged_down = 0;
  atomic_store(&h->reader_up, 1);
  read_next(h);
}

/* --- the event glue ------------------------------------------------------------------------- */

/* hiredis's own libuv adapter (adapters/libuv.h) drops every poll event that comes with an error
 * status, and libuv reports a refused or reset socket exactly so (UV_EBADF): with Debian 12's
 * hiredis 0.14 a connect to a Redis that is down would then hang until our reply timeout. This is
 * the same glue (a uv_poll_t per connection, hiredis's addRead/delRead/addWrite/delWrite/cleanup
 * hooks) with an error handed to hiredis as readiness, so that it reads the error and fails the
 * connection at once. */
typedef struct glue_s {
  uv_poll_t poll;
  redisAsyncContext *ac;            /* NULL once hiredis let go of it */
  int events;
  int write_due;                    /* commands wait in hiredis's buffer: on_flush writes them */
  int flushing;                     /* in on_flush: a write that leaves bytes over polls instead */
} glue_t;

static void glue_poll(uv_poll_t *p, int status, int events) {
  glue_t *g = p->data;
  if (status < 0)
    events = g->events; /* an error: let hiredis find it on the socket */
  if (g->ac && (events & UV_READABLE))
    redisAsyncHandleRead(g->ac);
  if (g->ac && (events & UV_WRITABLE))
    redisAsyncHandleWrite(g->ac);
}

/* hiredis asks for reading or writing again on every command and every reply; libuv's
 * uv_poll_start re-registers the descriptor (an epoll_ctl) each time it is called, so it is
 * called only when the events change. */
static void glue_update(glue_t *g, int add, int remove) {
  int events = (g->events | add) & ~remove;
  if (events == g->events)
    return;
  g->events = events;
  if (g->events)
    uv_poll_start(&g->poll, g->events, glue_poll);
  else
    uv_poll_stop(&g->poll);
}

static void glue_add_read(void *d) { glue_update(d, UV_READABLE, 0); }
static void glue_del_read(void *d) { glue_update(d, 0, UV_READABLE); }

/* hiredis asks to write after every command. A connected socket can almost always take the bytes
 * at once, so polling it for writable first costs two epoll_ctl calls and a loop turn per command
 * (a batch, an XREAD): instead the commands of a loop turn are written together with one write(2)
 * just before the loop polls (on_flush, a prepare handle). Only a connect in progress, or a
 * write that left bytes over (the socket's buffer full), polls for writable. */
static void glue_add_write(void *d) {
  glue_t *g = d;
  if (g->ac && (g->ac->c.flags & REDIS_CONNECTED) && !g->flushing)
    g->write_due = 1;
  else
    glue_update(g, UV_WRITABLE, 0);
}

static void glue_del_write(void *d) {
  glue_t *g = d;
  g->write_due = 0;
  glue_update(g, 0, UV_WRITABLE);
}

/* Writes the commands a connection's callbacks queued in this loop turn. hiredis may fail the
 * connection in there (its disconnect callback runs); g stays valid until its close callback. */
static void glue_write_due(redisAsyncContext *ac) {
  glue_t *g = ac ? ac->ev.data : NULL;
  if (g == NULL || !g->write_due)
    return;
  g->write_due = 0;
  g->flushing = 1;
  redisAsyncHandleWrite(ac);
  g->flushing = 0;
}

static void glue_closed(uv_handle_t *handle) {
  free(handle->data);
}

static void glue_cleanup(void *d) {
  glue_t *g = d;
  g->ac = NULL;
  uv_close((uv_handle_t *)&g->poll, glue_closed);
}

static int glue_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  glue_t *g = calloc(1, sizeof *g);
  if (g == NULL)
    return -ENOMEM;
  int r = uv_poll_init(loop, &g->poll, ac->c.fd);
  if (r) {
    free(g);
    return r;
  }
  g->poll.data = g;
  g->ac = ac;
  ac->ev.data = g;
  ac->ev.addRead = glue_add_read;
  ac->ev.delRead = glue_del_read;
  ac->ev.addWrite = glue_add_write;
  ac->ev.delWrite = glue_del_write;
  ac->ev.cleanup = glue_cleanup;
  return 0;
}

/* --- connections ----------------------------------------------------------------------------- */

static void link_connect(redis_history_t *h, link_t *l);

static link_t *link_of(redis_history_t *h, const redisAsyncContext *ac) {
  return ac == h->w.ac ? &h->w : ac == h->r.ac ? &h->r : &h->p;
}

static void link_down(redis_history_t *h, link_t *l, const char *what) {
  l->ac = NULL;
  l->state = LINK_DOWN;
  l->waiting_since = 0;
  l->retry_at = loop_ms(h) + l->backoff;
  l->backoff = l->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff * 2;
  if (l == &h->w) {
    atomic_store(&h->writer_up, 0);
    h->sha[0] = '\0';
  } else if (l == &h->r) {
    atomic_store(&h->reader_up, 0);
  }
  if (!l->logged_down && !h->stop) {
    sl__log(SL_LOG_WARN, "redis: %s connection to %s:%d lost (%s); %s until it is back", l->name,
            h->url.host, h->url.port, what,
            l == &h->p ? "resumes end (their clients come back)"
                       : "publishes get 503 and delivery from the stream waits");
    l->logged_down = 1;
  }
  set_why(h, "Redis unreachable: %.100s%s", what, "");
}

static void on_connected(const redisAsyncContext *ac, int status) {
  redis_history_t *h = ac->data;
  link_t *l = link_of(h, ac);
  if (status != REDIS_OK) {
    link_down(h, l, ac->errstr); /* hiredis frees the context */
    if (l == &h->w)
      fail_queued(h, -EAGAIN);
    return;
  }
  l->state = LINK_UP;
  if (l == &h->p) {
    l->backoff = BACKOFF_MIN_MS;
    l->logged_down = 0;
  }
}

static void on_disconnected(const redisAsyncContext *ac, int status) {
  redis_history_t *h = ac->data;
  link_t *l = link_of(h, ac);
  link_down(h, l, status == REDIS_OK ? "closed" : ac->errstr);
  if (l == &h->w)
    fail_queued(h, -EAGAIN);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata) {
  redis_history_t *h = privdata;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_ERROR) {
    sl__log(SL_LOG_ERROR, "redis: %.200s (check the password in --redis or --redis-password, "
            "and the database number)", rep->str);
    set_why(h, "Redis refused the login: %.100s%s", rep->str, "");
    redisAsyncDisconnect(ac);
  }
}

static void on_script(redisAsyncContext *ac, void *reply, void *privdata) {
  redis_history_t *h = privdata;
  redisReply *rep = reply;
  h->w.waiting_since = 0;
  if (rep == NULL)
    return;
  if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
    sl__log(SL_LOG_ERROR, "redis: cannot load the append script: %.200s",
            rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    redisAsyncDisconnect(ac);
    return;
  }
  memcpy(h->sha, rep->str, 40);
  h->sha[40] = '\0';
  h->w.backoff = BACKOFF_MIN_MS;
  if (h->w.logged_down)
    sl__log(SL_LOG_INFO, "redis: writer connected to %s:%d again", h->url.host, h->url.port);
  h->w.logged_down = 0;
  atomic_store(&h->writer_up, 1);
  send_queued(h);
}

static void on_entries(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  redis_history_t *h = privdata;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_INTEGER)
    atomic_store(&h->entries, (uint64_t)rep->integer);
}

static void on_bytes(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  redis_history_t *h = privdata;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_INTEGER)
    atomic_store(&h->bytes, (uint64_t)rep->integer);
}

static void link_connect(redis_history_t *h, link_t *l) {
  redisAsyncContext *ac = redisAsyncConnect(h->url.host, h->url.port);
  if (ac == NULL || ac->err || glue_attach(ac, &h->loop) != 0) {
    const char *what = ac ? ac->errstr : "out of memory";
    char buf[128];
    snprintf(buf, sizeof buf, "%s", what);
    if (ac)
      redisAsyncFree(ac);
    l->ac = NULL;
    link_down(h, l, buf);
    return;
  }
  ac->data = h;
  l->ac = ac;
  l->state = LINK_CONNECTING;
  redisAsyncSetConnectCallback(ac, on_connected);
  redisAsyncSetDisconnectCallback(ac, on_disconnected);
  /* Queued before the connection is made: hiredis writes them once it is. */
  if (h->url.password[0])
    redisAsyncCommand(ac, on_auth, h, "AUTH %s", h->url.password);
  if (h->url.db)
    redisAsyncCommand(ac, on_auth, h, "SELECT %d", h->url.db);
  if (l == &h->w) {
    l->waiting_since = loop_ms(h);
    redisAsyncCommand(ac, on_script, h, "SCRIPT LOAD %s", APPEND_SCRIPT);
  } else if (l == &h->r) {
    l->waiting_since = loop_ms(h);
    ask_info(h, ac, on_info);
  }
}

/* --- the loop thread ------------------------------------------------------------------------- */

static void send_fetches(redis_history_t *h);

static void stop_loop(redis_history_t *h) {
  uv_timer_stop(&h->tick);
  if (h->w.ac)
    redisAsyncFree(h->w.ac); /* pending callbacks get NULL: appends fail, in order */
  if (h->r.ac)
    redisAsyncFree(h->r.ac);
  if (h->p.ac)
    redisAsyncFree(h->p.ac); /* fetches of cursors closed meanwhile: freed */
  h->w.ac = h->r.ac = h->p.ac = NULL;
  h->p.state = LINK_DOWN;
  send_fetches(h);
  fail_queued(h, -ECANCELED);
  uv_close((uv_handle_t *)&h->wake, NULL);
  uv_close((uv_handle_t *)&h->tick, NULL);
  uv_close((uv_handle_t *)&h->flush, NULL);
}

static void on_wake(uv_async_t *a) {
  redis_history_t *h = a->data;
  uv_mutex_lock(&h->lock);
  int stop = h->stop;
  int feeding = h->feed != NULL;
  uv_mutex_unlock(&h->lock);
  if (stop) {
    stop_loop(h);
    return;
  }
  int held = atomic_load(&h->held);
  if (feeding && !h->reading && !(held && h->handoff)) {
    h->reading = 1;
    link_connect(h, &h->r);
  } else if (h->parked && !held) {
    h->check = 1; /* retention may have overtaken the hold: look before reading on */
    read_next(h); /* released: on after the last entry fed */
  }
  send_queued(h);
  send_fetches(h);
}

/* A link whose answer is overdue is dropped (Redis hangs: the same as Redis gone). */
static void check_link(redis_history_t *h, link_t *l, uint64_t now, uint64_t allowance) {
  if (l->state == LINK_DOWN) {
    if (now >= l->retry_at && (l != &h->r || h->reading))
      link_connect(h, l);
  } else if (l->ac && l->waiting_since && now - l->waiting_since > allowance) {
    redisAsyncContext *ac = l->ac;
    sl__log(SL_LOG_WARN, "redis: no answer on the %s connection for %" PRIu64 " ms", l->name,
            now - l->waiting_since);
    redisAsyncFree(ac); /* calls on_disconnected: l is down */
    if (l->ac == ac)
      link_down(h, l, "timed out");
  }
}

static void on_aged(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  (void)privdata;
  redisReply *rep = reply;
  if (rep && rep->type == REDIS_REPLY_ERROR)
    sl__log(SL_LOG_ERROR, "redis: dropping updates past --history-max-age failed: %.200s",
            rep->str);
}

/* Drops what is older than --history-max-age, on the writer, between appends (EVAL: Redis keeps
 * the script's compiled form by its hash after the first). Every hub on the stream does it with
 * its own age, so the smallest wins. */
static void age_trim(redis_history_t *h) {
  char age[24], chunk[24], chunks[24];
  snprintf(age, sizeof age, "%" PRIu64, h->max_age_ms);
  snprintf(chunk, sizeof chunk, "%d", TRIM_CHUNK);
  snprintf(chunks, sizeof chunks, "%d", AGE_CHUNKS);
  const char *argv[] = {"EVAL", AGE_SCRIPT, "4", h->stream, h->index, h->trimmed_key, h->hubs_key,
                        age, chunk, chunks};
  redisAsyncCommandArgv(h->w.ac, on_aged, h, 10, argv, NULL);
}

static void on_tick(uv_timer_t *t) {
  redis_history_t *h = t->data;
  uint64_t now = loop_ms(h);
  check_link(h, &h->w, now, REPLY_TIMEOUT_MS);
  check_link(h, &h->r, now, REPLY_TIMEOUT_MS + READ_BLOCK_MS);
  check_link(h, &h->p, now, REPLY_TIMEOUT_MS);
  send_queued(h);
  if (h->w.state == LINK_UP && h->sha[0] && now - h->usage_at >= USAGE_EVERY_MS) {
    h->usage_at = now;
    redisAsyncCommand(h->w.ac, on_entries, h, "XLEN %s", h->stream);
    redisAsyncCommand(h->w.ac, on_bytes, h, "MEMORY USAGE %s", h->stream);
  }
  if (h->max_age_ms && h->w.state == LINK_UP && h->sha[0] && now - h->aged_at >= AGE_CHECK_MS) {
    h->aged_at = now;
    age_trim(h);
  }
}

/* Before the loop polls: every connection writes what was asked of it in this turn. */
static void on_flush(uv_prepare_t *p) {
  redis_history_t *h = p->data;
  glue_write_due(h->w.ac);
  glue_write_due(h->r.ac);
  glue_write_due(h->p.ac);
}

static void loop_main(void *arg) {
  redis_history_t *h = arg;
  link_connect(h, &h->w);
  link_connect(h, &h->p);
  uv_timer_start(&h->tick, on_tick, TICK_MS, TICK_MS);
  uv_prepare_start(&h->flush, on_flush);
  uv_run(&h->loop, UV_RUN_DEFAULT);
}

/* --- the interface --------------------------------------------------------------------------- */

static int enqueue(sl_history_t *base, sl_frame_t *f, sl_history_done_cb done, void *arg,
                   int wake) {
  redis_history_t *h = (redis_history_t *)base;
  assert(f != NULL && f->id != NULL && done != NULL);
  if (!atomic_load(&h->writer_up))
    return -EAGAIN;
  op_t *op = calloc(1, sizeof *op);
  if (op == NULL)
    return -ENOMEM;
  *op = (op_t){.frame = sl__frame_ref(f), .done = done, .arg = arg, .h = h};
  uv_mutex_lock(&h->lock);
  if (h->stop) {
    uv_mutex_unlock(&h->lock);
    sl__frame_unref(f);
    free(op);
    return -ESHUTDOWN;
  }
  int first = h->queue == NULL;
  if (h->queue_tail)
    h->queue_tail->next = op;
  else
    h->queue = op;
  h->queue_tail = op;
  uv_mutex_unlock(&h->lock);
  if (first && wake)
    uv_async_send(&h->wake);
  return 0;
}

static int redis_append(sl_history_t *base, sl_frame_t *f, sl_history_done_cb done, void *arg) {
  return enqueue(base, f, done, arg, 1);
}

/* Left queued until the kick: the publishes a worker read in one turn go to Redis as one batch.
 * One that no kick follows is sent at the loop's next tick (TICK_MS). */
static int redis_append_held(sl_history_t *base, sl_frame_t *f, sl_history_done_cb done,
                             void *arg) {
  return enqueue(base, f, done, arg, 0);
}

static void redis_kick(sl_history_t *base) {
  redis_history_t *h = (redis_history_t *)base;
  uv_mutex_lock(&h->lock);
  int queued = h->queue != NULL;
  uv_mutex_unlock(&h->lock);
  if (queued)
    uv_async_send(&h->wake);
}

static uint64_t redis_last_seq(sl_history_t *base) {
  return atomic_load(&((redis_history_t *)base)->seq);
}

static void redis_usage(sl_history_t *base, uint64_t *entries, uint64_t *bytes) {
  redis_history_t *h = (redis_history_t *)base;
  *entries = atomic_load(&h->entries);
  *bytes = atomic_load(&h->bytes);
}

static void redis_feed(sl_history_t *base, sl_history_feed_cb cb, void *arg) {
  redis_history_t *h = (redis_history_t *)base;
  uv_mutex_lock(&h->lock);
  h->feed = cb;
  h->feed_arg = arg;
  uv_mutex_unlock(&h->lock);
  uv_async_send(&h->wake);
}

static void redis_feed_release(sl_history_t *base);

/* The position record: the stream's key (the same log on both sides), whether this hub knew where
 * it stood (it had reached Redis), the entry fed last (or the one it started after) and its seq. */
static int redis_feed_hold(sl_history_t *base, sl_wire_t *pos) {
  redis_history_t *h = (redis_history_t *)base;
  uv_mutex_lock(&h->feed_lock); /* a feed call in progress ends first */
  atomic_store(&h->held, 1);
  uv_rwlock_rdlock(&h->ring_lock);
  uint64_t seq = atomic_load(&h->seq);
  int known = atomic_load(&h->started);
  sid_t at = seq == h->start_seq ? h->start : h->ring[seq % h->ring_cap];
  uv_rwlock_rdunlock(&h->ring_lock);
  uv_mutex_unlock(&h->feed_lock);
  sl__wire_str(pos, h->stream);
  sl__wire_u8(pos, (uint8_t)known);
  sl__wire_u64(pos, at.ms);
  sl__wire_u64(pos, at.n);
  sl__wire_u64(pos, seq);
  if (pos->failed) {
    redis_feed_release(base); /* not held after all */
    return -ENOMEM;
  }
  return 0;
}

static int redis_feed_at(sl_history_t *base, sl_wire_reader_t *pos) {
  redis_history_t *h = (redis_history_t *)base;
  size_t len;
  const unsigned char *key = sl__wire_get_bytes(pos, &len);
  uint8_t known = sl__wire_get_u8(pos);
  sid_t at;
  at.ms = sl__wire_get_u64(pos);
  at.n = sl__wire_get_u64(pos);
  uint64_t seq = sl__wire_get_u64(pos);
  if (pos->bad || seq < SEQ_BASE || !h->handoff || atomic_load(&h->started)) {
    sl__log(SL_LOG_ERROR, "redis: the running process's feed position cannot be read");
    return -EPROTO;
  }
  if (len != strlen(h->stream) || memcmp(key, h->stream, len) != 0) {
    sl__log(SL_LOG_ERROR, "redis: the running process reads the stream '%.*s', this one '%s': "
            "the same --redis-stream is needed", (int)(len > 200 ? 200 : len), (const char *)key,
            h->stream);
    return -EINVAL;
  }
  uv_rwlock_wrlock(&h->ring_lock);
  h->start_seq = seq;
  atomic_store(&h->seq, seq);
  if (known)
    h->start = at;
  uv_rwlock_wrunlock(&h->ring_lock);
  /* Read by the loop thread after feed_release's wake-up (under lock, as on_wake takes it). */
  uv_mutex_lock(&h->lock);
  if (known) {
    h->last = at;
    h->have_start = 1; /* its first XINFO checks that nothing after at was trimmed meanwhile */
  }
  uv_mutex_unlock(&h->lock);
  if (known)
    atomic_store(&h->started, 1);
  return 0;
}

static void redis_feed_release(sl_history_t *base) {
  redis_history_t *h = (redis_history_t *)base;
  atomic_store(&h->held, 0);
  uv_async_send(&h->wake);
}

static int redis_health(sl_history_t *base, char *why, size_t cap) {
  redis_history_t *h = (redis_history_t *)base;
  if (atomic_load(&h->writer_up) && atomic_load(&h->reader_up) && atomic_load(&h->started))
    return 0;
  uv_mutex_lock(&h->lock);
  snprintf(why, cap, "%s", h->why[0] ? h->why : "connecting to Redis");
  uv_mutex_unlock(&h->lock);
  return -EAGAIN;
}

static uint64_t mono_ms(void) {
  return uv_hrtime() / 1000000;
}

/* Whether resumes fail at once for now (a read from Redis failed or timed out a moment ago). */
static int sync_paused(redis_history_t *h) {
  return mono_ms() < atomic_load(&h->sync_paused_until);
}

/* A blocking read failed (what: why): resumes fail at once for SYNC_PAUSE_MS. */
static void sync_pause(redis_history_t *h, const char *what) {
  uint64_t now = mono_ms();
  uint64_t was = atomic_exchange(&h->sync_paused_until, now + SYNC_PAUSE_MS);
  if (was <= now)
    sl__log(SL_LOG_WARN, "redis: a resume could not read from Redis (%.100s; reads wait %d ms at "
            "most); resumes are refused for %d ms rather than stall their worker", what,
            SYNC_TIMEOUT_MS, SYNC_PAUSE_MS);
}

/* A blocking connection for a cursor: an idle one from the pool, or a new one; NULL when none can
 * be had (or resumes are paused). */
static redisContext *sync_get(redis_history_t *h) {
  if (sync_paused(h))
    return NULL;
  uv_mutex_lock(&h->pool_lock);
  redisContext *c = h->pool_len ? h->pool[--h->pool_len] : NULL;
  uv_mutex_unlock(&h->pool_lock);
  if (c)
    return c;
  struct timeval tv = {SYNC_TIMEOUT_MS / 1000, (SYNC_TIMEOUT_MS % 1000) * 1000};
  c = redisConnectWithTimeout(h->url.host, h->url.port, tv);
  if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK)
    goto fail;
  redisReply *rep;
  if (h->url.password[0]) {
    rep = redisCommand(c, "AUTH %s", h->url.password);
    int bad = rep == NULL || rep->type == REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    if (bad)
      goto fail;
  }
  if (h->url.db) {
    rep = redisCommand(c, "SELECT %d", h->url.db);
    int bad = rep == NULL || rep->type == REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    if (bad)
      goto fail;
  }
  return c;
fail:
  sync_pause(h, c == NULL ? "out of memory" : c->err ? c->errstr : "login refused");
  if (c)
    redisFree(c);
  return NULL;
}

/* Gives a cursor's connection back (healthy: it may serve another); one that failed on the wire
 * (timed out, reset) pauses resumes. */
static void sync_put(redis_history_t *h, redisContext *c, int healthy) {
  if (c == NULL)
    return;
  if (c->err)
    sync_pause(h, c->errstr);
  uv_mutex_lock(&h->pool_lock);
  if (healthy && c->err == 0 && h->pool_len < POOL_MAX) {
    h->pool[h->pool_len++] = c;
    c = NULL;
  }
  uv_mutex_unlock(&h->pool_lock);
  if (c)
    redisFree(c);
}

static int redis_cursor_open(sl_history_t *base, const char *after_id, uint64_t upto,
                             sl_history_cursor_t **out, int *found) {
  redis_history_t *h = (redis_history_t *)base;
  *found = 0;
  if (!atomic_load(&h->started))
    return -EAGAIN;
  redis_cursor_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->base.history = base;
  c->limit = upto;
  if (after_id && strcmp(after_id, "earliest") != 0) {
    if ((c->c = sync_get(h)) == NULL) {
      free(c);
      return -EAGAIN;
    }
    redisReply *rep = redisCommand(c->c, "HGET %s %s", h->index, after_id);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      freeReplyObject(rep);
      sync_put(h, c->c, 0);
      free(c);
      return -EAGAIN;
    }
    if (rep->type == REDIS_REPLY_STRING && sid_parse(rep->str, rep->len, &c->from) == 0) {
      *found = 1;
      c->from_set = 1;
    }
    freeReplyObject(rep);
  }
  *out = &c->base;
  return 0;
}

/* This hub's seq of an entry it read live, 0 when the ring no longer (or never) held it. */
static uint64_t ring_seq(redis_history_t *h, sid_t id) {
  uint64_t seq = 0;
  uv_rwlock_rdlock(&h->ring_lock);
  if (sid_cmp(id, h->start) > 0) {
    uint64_t last = atomic_load(&h->seq);
    uint64_t lo = last - h->start_seq < h->ring_cap ? h->start_seq + 1 : last - h->ring_cap + 1;
    uint64_t hi = last;
    while (lo <= hi && lo > h->start_seq) {
      uint64_t mid = lo + (hi - lo) / 2;
      int cmp = sid_cmp(h->ring[mid % h->ring_cap], id);
      if (cmp == 0) {
        seq = mid;
        break;
      }
      if (cmp < 0)
        lo = mid + 1;
      else
        hi = mid - 1;
    }
  }
  uv_rwlock_rdunlock(&h->ring_lock);
  return seq;
}

/* Where a cursor may read to now: the entry (*bound) of this hub's seq *bound_seq, the newest it
 * has fed, or the caller's limit when lower. 0; 1 when nothing of this hub's order is in reach (a
 * limit before its start); -EAGAIN when the limit is older than the ring (the caller's stale
 * view: it retries). */
static int cursor_bound(redis_history_t *h, const redis_cursor_t *c, sid_t *bound,
                        uint64_t *bound_seq) {
  int r = 0;
  uv_rwlock_rdlock(&h->ring_lock);
  uint64_t last = atomic_load(&h->seq);
  uint64_t upto = c->limit < last ? c->limit : last;
  if (upto < h->start_seq)
    r = 1;
  else if (last - upto >= h->ring_cap)
    r = -EAGAIN;
  *bound = upto == h->start_seq ? h->start : h->ring[upto % h->ring_cap];
  *bound_seq = upto;
  uv_rwlock_rdunlock(&h->ring_lock);
  return r;
}

/* The XRANGE that reads the next page of c up to bound (argv filled, its strings in bufs), or,
 * ahead set, the one that counts the entries in (bound, c->from]. */
typedef struct range_args_s {
  char from[52], upto[48], count[24];
  const char *argv[6];
} range_args_t;

static void range_args(redis_history_t *h, const redis_cursor_t *c, sid_t bound, size_t max,
                       int ahead, range_args_t *a) {
  if (ahead) {
    a->from[0] = '(';
    sid_str(bound, a->from + 1, sizeof a->from - 1);
    sid_str(c->from, a->upto, sizeof a->upto);
    snprintf(a->count, sizeof a->count, "%zu", h->ring_cap + 1);
  } else {
    /* From the last entry returned, itself included: if it is gone, retention overtook us. */
    if (c->from_set)
      sid_str(c->from, a->from, sizeof a->from);
    else
      snprintf(a->from, sizeof a->from, "-");
    sid_str(bound, a->upto, sizeof a->upto);
    snprintf(a->count, sizeof a->count, "%zu", max + (c->from_set ? 1 : 0));
  }
  a->argv[0] = "XRANGE";
  a->argv[1] = h->stream;
  a->argv[2] = a->from;
  a->argv[3] = a->upto;
  a->argv[4] = "COUNT";
  a->argv[5] = a->count;
}

/* The seq this hub gives (or gave) c->from when it lies beyond bound, the newest entry it read (at
 * seq bound_seq), from the reply of range_args(ahead): the reader numbers every entry it can
 * decode, in the stream's order, so it is bound_seq plus those in (bound, from]. A client that
 * resumes here with an id another hub gave it an instant ago has those already: the stream joins
 * the live flow after them. */
static int ahead_take(redis_history_t *h, const redisReply *rep, uint64_t bound_seq,
                      uint64_t *out) {
  if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
    return -EAGAIN;
  if (rep->elements > h->ring_cap)
    return -EAGAIN; /* this hub's reader is that far behind: the client retries */
  uint64_t n = 0;
  for (size_t i = 0; i < rep->elements; i++) {
    sid_t id;
    sl_frame_t *f = entry_frame(rep->element[i], &id);
    if (f) {
      n++;
      sl__frame_unref(f);
    }
  }
  *out = bound_seq + n;
  return 0;
}

/* The frames of a page (the reply of range_args), each with the seq the feed gave its entry;
 * those the ring no longer holds (older than this hub's start, or than the ring) get the one
 * after the previous frame's, which keeps them increasing and below the feed's. How many, or
 * -ESPIPE (the entry the page starts from is gone: retention overtook the cursor), -EAGAIN. */
static int page_take(redis_history_t *h, redis_cursor_t *c, const redisReply *rep, sid_t bound,
                     uint64_t bound_seq, sl_frame_t **frames) {
  if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
    if (rep && rep->type == REDIS_REPLY_ERROR)
      sl__log(SL_LOG_ERROR, "redis: XRANGE failed: %.200s", rep->str);
    return -EAGAIN;
  }
  size_t i = 0;
  if (c->from_set) {
    sid_t first;
    if (rep->elements == 0 || rep->element[0]->type != REDIS_REPLY_ARRAY ||
        rep->element[0]->elements != 2 ||
        sid_parse(rep->element[0]->element[0]->str, rep->element[0]->element[0]->len, &first) ||
        sid_cmp(first, c->from) != 0)
      return -ESPIPE; /* gone (before bound, which is read): dropped by retention */
    i = 1;
  }
  int n = 0;
  for (; i < rep->elements; i++) {
    sid_t id;
    sl_frame_t *f = entry_frame(rep->element[i], &id);
    if (rep->element[i]->type == REDIS_REPLY_ARRAY && rep->element[i]->elements == 2 &&
        sid_parse(rep->element[i]->element[0]->str, rep->element[i]->element[0]->len, &id) == 0) {
      c->from = id;
      c->from_set = 1;
    }
    if (f == NULL)
      continue;
    uint64_t seq = sid_cmp(id, bound) == 0 ? bound_seq : ring_seq(h, id);
    f->seq = seq > c->pos ? seq : c->pos + 1;
    c->pos = f->seq;
    frames[n++] = f;
  }
  return n;
}

/* What a cursor does next, from where it stands against bound: END (the caller joins the live flow
 * at c->pos), AHEAD (count how far c->from is beyond bound), or PAGE. */
enum { STEP_END, STEP_AHEAD, STEP_PAGE };

static int cursor_step(redis_cursor_t *c, sid_t bound, uint64_t bound_seq) {
  if (c->from_set && sid_cmp(c->from, bound) == 0) {
    if (c->pos < bound_seq)
      c->pos = bound_seq;
    return STEP_END;
  }
  if (c->from_set && sid_cmp(c->from, bound) > 0)
    return c->ahead_known ? STEP_END : STEP_AHEAD;
  return STEP_PAGE;
}

/* A blocking cursor: pages read on the caller's thread, up to the newest entry this hub has fed
 * (looked up again at every call, so the cursor follows the feed, as the other backends' cursors
 * follow their store); 0 only when nothing is after c->from up to it. */
static int next_blocking(redis_history_t *h, redis_cursor_t *c, sl_frame_t **frames,
                         size_t max) {
  for (int rounds = 0; rounds < MAX_EMPTY_PAGES; rounds++) {
    sid_t bound;
    uint64_t bound_seq;
    int r = cursor_bound(h, c, &bound, &bound_seq);
    if (r)
      return r > 0 ? 0 : r;
    int step = cursor_step(c, bound, bound_seq);
    if (step == STEP_END)
      return 0;
    if (sync_paused(h))
      return -EAGAIN;
    if (c->c == NULL && (c->c = sync_get(h)) == NULL)
      return -EAGAIN;
    range_args_t a;
    range_args(h, c, bound, max, step == STEP_AHEAD, &a);
    redisReply *rep = redisCommandArgv(c->c, 6, a.argv, NULL);
    if (step == STEP_AHEAD) {
      uint64_t seq;
      r = ahead_take(h, rep, bound_seq, &seq);
      if (r == 0) {
        c->ahead_known = 1;
        if (c->pos < seq)
          c->pos = seq;
      }
    } else {
      r = page_take(h, c, rep, bound, bound_seq, frames);
    }
    if (rep == NULL) {
      sync_put(h, c->c, 0);
      c->c = NULL;
    }
    freeReplyObject(rep);
    if (step == STEP_AHEAD || r != 0)
      return r; /* the end (the position counted ahead), frames, or an error */
    /* A page of foreign entries only (another program's, skipped as the reader skips them): 0
     * would say the end, so read on. */
  }
  return -EAGAIN;
}

/* --- non-blocking cursors: pages fetched on the loop thread, on the pager connection ------- */

static void cursor_free(redis_cursor_t *c) {
  for (int i = c->buf_at; i < c->buf_n; i++)
    sl__frame_unref(c->buf[i]);
  free(c->buf);
  if (c->ready)
    uv_mutex_destroy(&c->mu);
  free(c);
}

/* The fetch of c ended (rep NULL: it could not be made): its result for the owner's next
 * cursor_next, and the owner told. Loop thread. */
static void fetch_done(redis_history_t *h, redis_cursor_t *c, const redisReply *rep) {
  uv_mutex_lock(&c->mu);
  if (c->state == C_CANCELLED) {
    uv_mutex_unlock(&c->mu);
    cursor_free(c);
    return;
  }
  if (c->fetch == STEP_AHEAD) {
    uint64_t seq;
    c->err = ahead_take(h, rep, c->bound_seq, &seq);
    if (c->err == 0) {
      c->ahead_known = 1;
      if (c->pos < seq)
        c->pos = seq;
    }
  } else if ((c->buf = malloc(c->want * sizeof *c->buf)) == NULL) {
    c->err = -ENOMEM;
  } else {
    int n = page_take(h, c, rep, c->bound, c->bound_seq, c->buf);
    c->err = n < 0 ? n : 0;
    c->buf_n = n < 0 ? 0 : n;
    c->buf_at = 0;
  }
  c->state = C_DONE;
  c->ready(c->ready_arg); /* under the lock: cursor_close waits for it */
  uv_mutex_unlock(&c->mu);
}

static void on_fetched(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  redis_cursor_t *c = privdata;
  redis_history_t *h = (redis_history_t *)c->base.history;
  h->pager_inflight--;
  h->p.waiting_since = h->pager_inflight ? loop_ms(h) : 0;
  fetch_done(h, c, reply);
}

/* Sends the fetches the workers queued. Loop thread. */
static void send_fetches(redis_history_t *h) {
  uv_mutex_lock(&h->lock);
  redis_cursor_t *list = h->fetches;
  h->fetches = h->fetches_tail = NULL;
  uv_mutex_unlock(&h->lock);
  while (list) {
    redis_cursor_t *c = list;
    list = c->next;
    if (h->p.state != LINK_UP) {
      fetch_done(h, c, NULL);
      continue;
    }
    range_args_t a;
    range_args(h, c, c->bound, c->want, c->fetch == STEP_AHEAD, &a);
    if (redisAsyncCommandArgv(h->p.ac, on_fetched, c, 6, a.argv, NULL) != REDIS_OK) {
      fetch_done(h, c, NULL);
      continue;
    }
    if (h->pager_inflight++ == 0)
      h->p.waiting_since = loop_ms(h);
  }
}

/* A non-blocking cursor: hands out the page fetched, or starts the next fetch (-EINPROGRESS);
 * the end (0) is only ever decided here, on the caller's thread, against the bound of now, so the
 * caller's own view (what it dispatched meanwhile) is never ahead of it. */
static int next_async(redis_history_t *h, redis_cursor_t *c, sl_frame_t **frames, size_t max) {
  uv_mutex_lock(&c->mu);
  int state = c->state;
  uv_mutex_unlock(&c->mu);
  if (state == C_QUEUED)
    return -EINPROGRESS;
  if (state == C_DONE) {
    if (c->err) {
      int e = c->err;
      c->err = 0;
      c->state = C_IDLE;
      return e;
    }
    if (c->buf_at < c->buf_n) {
      int n = 0;
      while ((size_t)n < max && c->buf_at < c->buf_n)
        frames[n++] = c->buf[c->buf_at++];
      return n;
    }
    free(c->buf);
    c->buf = NULL;
    c->buf_n = c->buf_at = 0;
    c->state = C_IDLE;
  }
  sid_t bound;
  uint64_t bound_seq;
  int r = cursor_bound(h, c, &bound, &bound_seq);
  if (r)
    return r > 0 ? 0 : r;
  int step = cursor_step(c, bound, bound_seq);
  if (step == STEP_END)
    return 0;
  c->fetch = step;
  c->bound = bound;
  c->bound_seq = bound_seq;
  c->want = max < READ_COUNT ? max : READ_COUNT;
  c->next = NULL;
  uv_mutex_lock(&c->mu);
  c->state = C_QUEUED;
  uv_mutex_unlock(&c->mu);
  uv_mutex_lock(&h->lock);
  int first = h->fetches == NULL;
  if (h->fetches_tail)
    h->fetches_tail->next = c;
  else
    h->fetches = c;
  h->fetches_tail = c;
  uv_mutex_unlock(&h->lock);
  if (first)
    uv_async_send(&h->wake);
  return -EINPROGRESS;
}

static int redis_cursor_next(sl_history_cursor_t *hc, sl_frame_t **frames, size_t max) {
  redis_cursor_t *c = (redis_cursor_t *)hc;
  redis_history_t *h = (redis_history_t *)hc->history;
  if (max > INT_MAX - 1)
    max = INT_MAX - 1;
  if (max == 0)
    return 0;
  return c->ready ? next_async(h, c, frames, max) : next_blocking(h, c, frames, max);
}

static void redis_cursor_notify(sl_history_cursor_t *hc, void (*ready)(void *arg), void *arg) {
  redis_cursor_t *c = (redis_cursor_t *)hc;
  assert(c->ready == NULL && ready != NULL);
  if (uv_mutex_init(&c->mu))
    return; /* stays blocking */
  c->ready = ready;
  c->ready_arg = arg;
  sync_put((redis_history_t *)hc->history, c->c, 1); /* pages come through the pager now */
  c->c = NULL;
}

static uint64_t redis_cursor_pos(const sl_history_cursor_t *hc) {
  return ((const redis_cursor_t *)hc)->pos;
}

static void redis_cursor_close(sl_history_cursor_t *hc) {
  redis_cursor_t *c = (redis_cursor_t *)hc;
  sync_put((redis_history_t *)hc->history, c->c, 1);
  c->c = NULL;
  if (c->ready) {
    uv_mutex_lock(&c->mu);
    int queued = c->state == C_QUEUED;
    if (queued)
      c->state = C_CANCELLED; /* the loop thread frees it when its fetch ends */
    uv_mutex_unlock(&c->mu);
    if (queued)
      return;
  }
  cursor_free(c);
}

static void redis_destroy(sl_history_t *base) {
  redis_history_t *h = (redis_history_t *)base;
  uv_mutex_lock(&h->lock);
  h->stop = 1;
  uv_mutex_unlock(&h->lock);
  uv_async_send(&h->wake);
  uv_thread_join(&h->thread);
  uv_loop_close(&h->loop);
  for (size_t i = 0; i < h->pool_len; i++)
    redisFree(h->pool[i]);
  uv_mutex_destroy(&h->pool_lock);
  uv_mutex_destroy(&h->feed_lock);
  uv_rwlock_destroy(&h->ring_lock);
  uv_mutex_destroy(&h->lock);
  free(h->ring);
  free(h->cmd);
  free(h->stream);
  free(h->index);
  free(h->trimmed_key);
  free(h->hubs_key);
  free(h);
}

static const sl_history_ops_t redis_ops = {
  .append = redis_append,
  .last_seq = redis_last_seq,
  .usage = redis_usage,
  .cursor_open = redis_cursor_open,
  .cursor_next = redis_cursor_next,
  .cursor_pos = redis_cursor_pos,
  .cursor_notify = redis_cursor_notify,
  .cursor_close = redis_cursor_close,
  .feed = redis_feed,
  .feed_hold = redis_feed_hold,
  .feed_at = redis_feed_at,
  .feed_release = redis_feed_release,
  .health = redis_health,
  .append_held = redis_append_held,
  .kick = redis_kick,
  .destroy = redis_destroy,
};

int sl__history_redis_new(sl_history_t **out, const sl_history_redis_opts_t *o) {
  assert(o && o->url && o->stream);
  redis_history_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    return -ENOMEM;
  h->base.ops = &redis_ops;
  h->url = *o->url;
  h->max_entries = o->max_entries;
  h->hub_entries = o->hub_entries;
  h->max_age_ms = o->max_age > 0 ? (uint64_t)(o->max_age * 1000) : 0;
  h->ring_cap = o->max_entries + READ_COUNT > RING_MIN ? o->max_entries + READ_COUNT : RING_MIN;
  size_t sl = strlen(o->stream);
  h->stream = strdup(o->stream);
  h->index = malloc(sl + sizeof ":ids");
  h->trimmed_key = malloc(sl + sizeof ":trimmed");
  h->hubs_key = malloc(sl + sizeof ":hubs");
  h->ring = calloc(h->ring_cap, sizeof *h->ring);
  int r = -ENOMEM;
  if (h->stream == NULL || h->index == NULL || h->trimmed_key == NULL || h->hubs_key == NULL ||
      h->ring == NULL)
    goto fail_alloc;
  snprintf(h->index, sl + sizeof ":ids", "%s:ids", o->stream);
  snprintf(h->trimmed_key, sl + sizeof ":trimmed", "%s:trimmed", o->stream);
  snprintf(h->hubs_key, sl + sizeof ":hubs", "%s:hubs", o->stream);
  atomic_init(&h->seq, SEQ_BASE);
  h->start_seq = SEQ_BASE;
  h->handoff = o->handoff;
  atomic_init(&h->held, o->handoff);
  h->w = (link_t){.name = "writer", .backoff = BACKOFF_MIN_MS};
  h->r = (link_t){.name = "reader", .backoff = BACKOFF_MIN_MS};
  h->p = (link_t){.name = "pager", .backoff = BACKOFF_MIN_MS};
  snprintf(h->why, sizeof h->why, "connecting to Redis at %.100s:%d", h->url.host, h->url.port);
  if ((r = uv_mutex_init(&h->lock)))
    goto fail_alloc;
  if ((r = uv_mutex_init(&h->pool_lock)))
    goto fail_lock;
  if ((r = uv_mutex_init(&h->feed_lock))) {
    uv_mutex_destroy(&h->pool_lock);
    goto fail_lock;
  }
  if ((r = uv_rwlock_init(&h->ring_lock)))
    goto fail_pool;
  if ((r = uv_loop_init(&h->loop)))
    goto fail_ring;
  if ((r = uv_async_init(&h->loop, &h->wake, on_wake)))
    goto fail_loop;
  h->wake.data = h;
  uv_timer_init(&h->loop, &h->tick);
  h->tick.data = h;
  uv_prepare_init(&h->loop, &h->flush);
  h->flush.data = h;
  if ((r = uv_thread_create(&h->thread, loop_main, h)))
    goto fail_handles;
  *out = &h->base;
  return 0;
fail_handles:
  uv_close((uv_handle_t *)&h->wake, NULL);
  uv_close((uv_handle_t *)&h->tick, NULL);
  uv_close((uv_handle_t *)&h->flush, NULL);
  uv_run(&h->loop, UV_RUN_DEFAULT);
fail_loop:
  uv_loop_close(&h->loop);
fail_ring:
  uv_rwlock_destroy(&h->ring_lock);
fail_pool:
  uv_mutex_destroy(&h->feed_lock);
  uv_mutex_destroy(&h->pool_lock);
fail_lock:
  uv_mutex_destroy(&h->lock);
fail_alloc:
  free(h->ring);
  free(h->stream);
  free(h->index);
  free(h->trimmed_key);
  free(h->hubs_key);
  free(h);
  return r;
}
