/* handoff.c — the live hand-off, both sides (see handoff.h and docs/handoff.md).
 *
 * Old side, on its own thread: HELLO in, PLAN and LISTEN out (with the listening sockets and the
 * locks), READY in; then every worker quiesces (no new request begins), the bus pauses (no new
 * update), STATE and HISTORY go out, every worker freezes and exports its connections, CONNS and
 * END go out; DONE in, GO out, and the frozen connections are released. Until GO is sent, any
 * failure thaws everything and the hub goes on serving as if nothing happened.
 *
 * New side, inside sl_hub_start: the mirror image; it starts its workers only after GO, so that
 * two processes never serve one connection. */
#include "core/handoff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/wire.h"
#include "core/hub.h"
#include "net/fdpass.h"

enum {
  MSG_HELLO = 1, /* new -> old: version, sluice version, pid, workers wanted (0 = any) */
  MSG_PLAN,      /* old -> new: version, pid, workers, listen addresses, history kind; lock fd */
  MSG_LISTEN,    /* old -> new: one worker's listening sockets (and the address locks) */
  MSG_READY,     /* new -> old: set up; the old may quiesce */
  MSG_REFUSE,    /* either way: why not; the hand-off ends, the old serves on */
  MSG_STATE,     /* old -> new: where the order stands (and the memory history's marks) */
  MSG_HISTORY,   /* old -> new: the in-memory history's frames, oldest first */
  MSG_CONNS,     /* old -> new: a batch of one worker's connection records, a socket each */
  MSG_END,       /* old -> new: how many connections were sent */
  MSG_DONE,      /* new -> old: every one adopted */
  MSG_GO,        /* old -> new: they are yours (the old lets go of them) */
  MSG_ABORT,     /* old -> new: the hand-off failed; give them back untouched */
};

enum { HISTORY_MEMORY = 0, HISTORY_LMDB = 1, HISTORY_REDIS = 2 };

#define PACKET_MAX (60 * 1024)      /* bytes of one packet: a message is one or more */
#define BATCH_FDS 200               /* connections per CONNS message */
#define QUIESCE_POLL_MS 2
#define QUIESCE_MAX_MS 5000         /* a request still being read after this stays behind */
#define ABORT_WAIT_MS 1000
#define ADOPT_WAIT_MS (10 * 60 * 1000) /* the new side's bound; the old side's timeout governs */
#define REASON_MAX 300
#define MS_PER_S 1000

/* --- messages: one or more packets, [type][more][bytes], the descriptors with the first ------- */

static int send_msg(int sock, uint8_t type, const sl_wire_t *body, const int *fds, size_t nfds,
                    uint64_t deadline) {
  static const unsigned char empty[1];
  const unsigned char *p = body && body->len ? body->buf : empty;
  size_t left = body ? body->len : 0;
  unsigned char *pkt = malloc(PACKET_MAX);
  if (pkt == NULL)
    return -ENOMEM;
  int r = 0, first = 1;
  do {
    size_t n = left < PACKET_MAX - 2 ? left : PACKET_MAX - 2;
    pkt[0] = type;
    pkt[1] = left > n;
    memcpy(pkt + 2, p, n);
    r = sl__fdpass_send(sock, pkt, n + 2, first ? fds : NULL, first ? nfds : 0, deadline);
    p += n;
    left -= n;
    first = 0;
  } while (r == 0 && left > 0);
  free(pkt);
  return r;
}

static int send_text(int sock, uint8_t type, const char *text, uint64_t deadline) {
  sl_wire_t w = {0};
  sl__wire_str(&w, text);
  int r = w.failed ? -ENOMEM : send_msg(sock, type, &w, NULL, 0, deadline);
  sl__wire_free(&w);
  return r;
}

static void close_all(int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

/* One message into body (reset first) and its descriptors into fds (SL_FDPASS_MAX_FDS). 0,
 * -EPIPE when the other side closed, -EPROTO for a malformed one, or the socket's error. */
static int recv_msg(int sock, uint64_t deadline, uint8_t *type, sl_wire_t *body, int *fds,
                    size_t *nfds) {
  unsigned char *pkt = malloc(PACKET_MAX);
  if (pkt == NULL)
    return -ENOMEM;
  body->len = 0;
  *nfds = 0;
  int r = 0, first = 1;
  for (;;) {
    int got[SL_FDPASS_MAX_FDS];
    size_t ngot;
    ssize_t n = sl__fdpass_recv(sock, pkt, PACKET_MAX, got, &ngot, deadline);
    if (n <= 0) {
      r = n == 0 ? -EPIPE : (int)n;
      break;
    }
    if (n < 2 || (!first && (pkt[0] != *type || ngot > 0))) {
      close_all(got, ngot);
      r = -EPROTO;
      break;
    }
    if (first) {
      *type = pkt[0];
      memcpy(fds, got, ngot * sizeof *got);
      *nfds = ngot;
    }
    first = 0;
    sl__wire_raw(body, pkt + 2, (size_t)n - 2);
    if (body->failed) {
      r = -ENOMEM;
      break;
    }
    if (!pkt[1])
      break;
  }
  free(pkt);
  if (r) {
    close_all(fds, *nfds);
    *nfds = 0;
  }
  return r;
}

/* A REFUSE's reason, for the log. */
static void reason_of(const sl_wire_t *body, char *out, size_t cap) {
  sl_wire_reader_t rd;
  sl__wire_reader(&rd, body->buf, body->len);
  size_t n;
  const unsigned char *p = sl__wire_get_bytes(&rd, &n);
  if (n >= cap)
    n = cap - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

/* --- an update of the in-memory history, as the record carries it ---------------------------- */

static void frame_write(sl_wire_t *w, const sl_frame_t *f) {
  size_t len;
  const char *payload = sl__frame_bytes(f, 0, &len);
  sl__wire_u64(w, f->seq);
  sl__wire_u32(w, f->flags & (SL_FRAME_PRIVATE | SL_FRAME_HUB));
  sl__wire_bytes(w, f->id, f->id_len);
  sl__wire_u32(w, f->topic_count);
  for (uint16_t i = 0; i < f->topic_count; i++)
    sl__wire_bytes(w, f->topics[i], f->topic_lens[i]);
  sl__wire_bytes(w, payload, len);
}

#define FRAME_MAX_TOPICS 65535

static sl_frame_t *frame_read(sl_wire_reader_t *rd) {
  uint64_t seq = sl__wire_get_u64(rd);
  uint32_t flags = sl__wire_get_u32(rd);
  size_t id_len;
  const char *id = (const char *)sl__wire_get_bytes(rd, &id_len);
  uint32_t n = sl__wire_get_u32(rd);
  if (rd->bad || n == 0 || n > FRAME_MAX_TOPICS)
    return NULL;
  const char **topics = malloc(n * sizeof *topics);
  uint32_t *lens = malloc(n * sizeof *lens);
  sl_frame_t *f = NULL;
  if (topics && lens) {
    for (uint32_t i = 0; i < n; i++) {
      size_t len;
      topics[i] = (const char *)sl__wire_get_bytes(rd, &len);
      lens[i] = (uint32_t)len;
    }
    size_t len;
    const char *payload = (const char *)sl__wire_get_bytes(rd, &len);
    if (!rd->bad)
      f = sl__frame_restore(payload, len, id, id_len, topics, lens, n,
                            (uint16_t)(flags & (SL_FRAME_PRIVATE | SL_FRAME_HUB)));
    if (f)
      f->seq = seq;
  }
  free(topics);
  free(lens);
  return f;
}

/* --- the old side ---------------------------------------------------------------------------- */

enum { STEP_QUIESCE, STEP_BUSY, STEP_SYNC, STEP_EXPORT, STEP_RELEASE, STEP_THAW };

typedef struct export_s {
  sl_wire_t records;             /* each connection's record, length-prefixed */
  int *fds;                      /* its socket (still the connection's: not to close here) */
  size_t n, cap;
  int err;
} export_t;

typedef struct sl_handoff_s handoff_t;

typedef struct wcall_s {
  sl_worker_call_t call;
  handoff_t *h;
  unsigned worker;
  int step;
  int done;                      /* under h->lock */
  size_t result;
} wcall_t;

struct sl_handoff_s {
  sl_hub_t *hub;
  int sock;
  double timeout;
  sl_handoff_cb cb;
  void *arg;
  uv_thread_t thread;
  int thread_started;
  atomic_int running;
  uv_mutex_t lock;
  uv_cond_t done;                /* a worker ran its call */
  unsigned calls_left;
  wcall_t *calls;                /* one per worker */
  export_t *exports;             /* one per worker */
};

static int collect(void *arg, int fd, const sl_wire_t *record) {
  export_t *e = arg;
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 64;
    int *fds = realloc(e->fds, cap * sizeof *fds);
    if (fds == NULL)
      return -ENOMEM;
    e->fds = fds;
    e->cap = cap;
  }
  sl__wire_bytes(&e->records, record->buf, record->len);
  if (e->records.failed)
    return -ENOMEM;
  e->fds[e->n++] = fd;
  return 0;
}

/* On the worker's thread. */
static void on_call(sl_worker_call_t *call) {
  wcall_t *c = (wcall_t *)call;
  handoff_t *h = c->h;
  sl_worker_t *w = &h->hub->workers[c->worker];
  switch (c->step) {
  case STEP_QUIESCE: sl__worker_handoff_quiesce(w); break;
  case STEP_BUSY: c->result = sl__worker_handoff_busy(w); break;
  case STEP_SYNC: break; /* it ran after every update posted before: all dispatched */
  case STEP_EXPORT:
    h->exports[c->worker].err = sl__worker_handoff_export(w, collect, &h->exports[c->worker]);
    break;
  case STEP_RELEASE: c->result = sl__worker_handoff_release(w); break;
  case STEP_THAW: sl__worker_handoff_thaw(w); break;
  }
  uv_mutex_lock(&h->lock);
  c->done = 1;
  h->calls_left--;
  uv_cond_broadcast(&h->done);
  uv_mutex_unlock(&h->lock);
}

/* Posts step to every worker, each to run on its thread. */
static void post_step(handoff_t *h, int step) {
  unsigned n = h->hub->worker_count;
  uv_mutex_lock(&h->lock);
  h->calls_left = n;
  uv_mutex_unlock(&h->lock);
  for (unsigned i = 0; i < n; i++) {
    h->calls[i] = (wcall_t){.call.fn = on_call, .h = h, .worker = i, .step = step};
    sl__bus_post_call(&h->hub->bus, i, &h->calls[i].call);
  }
}

/* Waits until worker i ran its call. */
static void wait_one(handoff_t *h, unsigned i) {
  uv_mutex_lock(&h->lock);
  while (!h->calls[i].done)
    uv_cond_wait(&h->done, &h->lock);
  uv_mutex_unlock(&h->lock);
}

/* Runs step on every worker, each on its thread, and waits for all. Returns the sum of their
 * results. */
static size_t run_step(handoff_t *h, int step) {
  post_step(h, step);
  uv_mutex_lock(&h->lock);
  while (h->calls_left > 0)
    uv_cond_wait(&h->done, &h->lock);
  uv_mutex_unlock(&h->lock);
  size_t sum = 0;
  for (unsigned i = 0; i < h->hub->worker_count; i++)
    sum += h->calls[i].result;
  return sum;
}

static int is_lmdb(const sl_hub_t *hub) {
  return hub->cfg.data_dir != NULL;
}

/* Where the hub keeps its history, as PLAN says it. */
static uint8_t history_kind(const sl_hub_t *hub) {
  return hub->cfg.redis_url ? HISTORY_REDIS : is_lmdb(hub) ? HISTORY_LMDB : HISTORY_MEMORY;
}

static const char *history_name(uint8_t kind) {
  return kind == HISTORY_REDIS ? "in Redis" : kind == HISTORY_LMDB ? "in a data dir" : "in memory";
}

/* PLAN, then one LISTEN per worker. */
static int send_plan(handoff_t *h, uint64_t deadline) {
  sl_hub_t *hub = h->hub;
  sl_wire_t w = {0};
  int lock = is_lmdb(hub) ? sl__history_lmdb_lock_fd(hub->history) : -1;
  sl__wire_u32(&w, SL_HANDOFF_VERSION);
  sl__wire_u32(&w, (uint32_t)getpid());
  sl__wire_u32(&w, hub->worker_count);
  sl__wire_u32(&w, hub->cfg.listen_count);
  sl__wire_u8(&w, history_kind(hub));
  sl__wire_u8(&w, lock >= 0);
  int r = w.failed ? -ENOMEM : send_msg(h->sock, MSG_PLAN, &w, &lock, lock >= 0, deadline);
  for (unsigned i = 0; r == 0 && i < hub->worker_count; i++) {
    const sl_worker_t *wk = &hub->workers[i];
    int fds[2 * SL_MAX_LISTEN];
    size_t nfds = 0;
    w.len = 0;
    sl__wire_u32(&w, i);
    sl__wire_u32(&w, wk->listen_count);
    for (unsigned k = 0; k < wk->listen_count; k++)
      fds[nfds++] = wk->listen_fds[k];
    for (unsigned k = 0; k < wk->listen_count; k++) {
      sl__wire_u8(&w, wk->lock_fds[k] >= 0);
      if (wk->lock_fds[k] >= 0)
        fds[nfds++] = wk->lock_fds[k];
    }
    r = w.failed ? -ENOMEM : send_msg(h->sock, MSG_LISTEN, &w, fds, nfds, deadline);
  }
  sl__wire_free(&w);
  return r;
}

/* STATE (where the order stands, and with a feeding history where its feed stands: pos), and
 * with the memory history HISTORY (all it retains). */
static int send_state(handoff_t *h, uint64_t seq, const sl_wire_t *pos, uint64_t deadline) {
  sl_hub_t *hub = h->hub;
  sl_wire_t w = {0};
  uint64_t last = seq, dropped[2] = {0, 0};
  int memory = history_kind(hub) == HISTORY_MEMORY;
  if (memory)
    sl__history_memory_marks(hub->history, &last, dropped);
  sl__wire_u64(&w, seq);
  sl__wire_u64(&w, last);
  sl__wire_u64(&w, dropped[0]);
  sl__wire_u64(&w, dropped[1]);
  sl__wire_bytes(&w, pos->buf, pos->len);
  int r = w.failed ? -ENOMEM : send_msg(h->sock, MSG_STATE, &w, NULL, 0, deadline);
  if (r || !memory) {
    sl__wire_free(&w);
    return r;
  }
  w.len = 0;
  size_t at = sl__wire_mark(&w);
  uint32_t count = 0;
  sl_history_cursor_t *cur;
  int found;
  if ((r = sl__bus_cursor_open(&hub->bus, NULL, UINT64_MAX, &cur, &found)) == 0) {
    sl_frame_t *page[64];
    int n;
    while ((n = sl__history_cursor_next(cur, page, 64)) > 0) {
      for (int i = 0; i < n; i++) {
        frame_write(&w, page[i]);
        sl__frame_unref(page[i]);
      }
      count += (uint32_t)n;
    }
    sl__history_cursor_close(cur);
    r = n < 0 ? n : w.failed ? -ENOMEM : 0;
  }
  sl__wire_patch(&w, at, count);
  if (r == 0)
    r = send_msg(h->sock, MSG_HISTORY, &w, NULL, 0, deadline);
  sl__wire_free(&w);
  return r;
}

/* Every exported connection, BATCH_FDS to a message; *total gets their number. */
static int send_conns(handoff_t *h, uint64_t deadline, uint64_t *total) {
  sl_wire_t w = {0};
  int r = 0;
  *total = 0;
  for (unsigned i = 0; r == 0 && i < h->hub->worker_count; i++) {
    export_t *e = &h->exports[i];
    wait_one(h, i); /* each worker's as soon as it is exported: the new one adopts meanwhile */
    if ((r = e->err))
      break;
    sl_wire_reader_t rd;
    sl__wire_reader(&rd, e->records.buf, e->records.len);
    for (size_t k = 0; r == 0 && k < e->n; k += BATCH_FDS) {
      size_t n = e->n - k < BATCH_FDS ? e->n - k : BATCH_FDS;
      w.len = 0;
      sl__wire_u32(&w, i);
      sl__wire_u32(&w, (uint32_t)n);
      for (size_t j = 0; j < n; j++) {
        size_t len;
        const unsigned char *rec = sl__wire_get_bytes(&rd, &len);
        sl__wire_bytes(&w, rec, len);
      }
      r = w.failed || rd.bad ? -ENOMEM : send_msg(h->sock, MSG_CONNS, &w, e->fds + k, n, deadline);
      *total += n;
    }
  }
  sl__wire_free(&w);
  return r;
}

static void exports_reset(handoff_t *h) {
  for (unsigned i = 0; i < h->hub->worker_count; i++) {
    sl__wire_free(&h->exports[i].records);
    free(h->exports[i].fds);
    memset(&h->exports[i], 0, sizeof h->exports[i]);
  }
}

/* The new process's next message, which must be want: 0; -ECONNREFUSED when it refused (its
 * reason logged after what); -EPROTO for anything else; or the socket's error. */
static int expect(handoff_t *h, uint8_t want, const char *what, uint64_t deadline) {
  sl_wire_t body = {0};
  int fds[SL_FDPASS_MAX_FDS];
  size_t nfds;
  uint8_t type;
  int r = recv_msg(h->sock, deadline, &type, &body, fds, &nfds);
  if (r == 0) {
    close_all(fds, nfds);
    if (type == MSG_REFUSE) {
      char why[REASON_MAX];
      reason_of(&body, why, sizeof why);
      sl__log(SL_LOG_ERROR, "upgrade: the new process %s: %s", what, why);
      r = -ECONNREFUSED;
    } else if (type != want) {
      r = -EPROTO;
    }
  }
  sl__wire_free(&body);
  return r;
}

static int old_run(handoff_t *h, uint64_t deadline, int *quiesced, int *paused, int *held,
                   int *exported, int *committed) {
  sl_hub_t *hub = h->hub;
  sl_wire_t body = {0};
  int fds[SL_FDPASS_MAX_FDS];
  size_t nfds;
  uint8_t type;
  char why[REASON_MAX];
  int r = recv_msg(h->sock, deadline, &type, &body, fds, &nfds);
  if (r)
    goto out;
  close_all(fds, nfds);
  sl_wire_reader_t rd;
  sl__wire_reader(&rd, body.buf, body.len);
  uint32_t version = sl__wire_get_u32(&rd);
  char *their = sl__wire_get_strdup(&rd);
  uint32_t pid = sl__wire_get_u32(&rd);
  if (type != MSG_HELLO || rd.bad) {
    free(their);
    r = -EPROTO;
    sl__log(SL_LOG_ERROR, "upgrade: the new process did not say hello as a sluice does");
    goto out;
  }
  sl__log(SL_LOG_INFO, "upgrade: pid %" PRIu32 " (sluice %s, hand-off protocol %" PRIu32 ") "
          "asks to take over", pid, their, version);
  free(their);
  if (version != SL_HANDOFF_VERSION) {
    snprintf(why, sizeof why, "this process speaks hand-off protocol %d, the new one %" PRIu32,
             SL_HANDOFF_VERSION, version);
    send_text(h->sock, MSG_REFUSE, why, deadline);
    sl__log(SL_LOG_ERROR, "upgrade: %s", why);
    r = -EPROTO;
    goto out;
  }
  if ((r = send_plan(h, deadline)))
    goto out;
  if ((r = expect(h, MSG_READY, "refused", deadline)))
    goto out;

  /* No request begins here from now on; one being read or answered is finished. */
  uint64_t t0 = sl__fdpass_now_ms();
  run_step(h, STEP_QUIESCE);
  *quiesced = 1;
  uint64_t quiet_by = t0 + QUIESCE_MAX_MS < deadline ? t0 + QUIESCE_MAX_MS : deadline;
  size_t busy;
  while ((busy = run_step(h, STEP_BUSY)) > 0 && sl__fdpass_now_ms() < quiet_by)
    usleep(QUIESCE_POLL_MS * 1000);
  if (busy)
    sl__log(SL_LOG_WARN, "upgrade: %zu connections still reading or answering a request after "
            "%d ms stay here and end after their answer", busy, QUIESCE_MAX_MS);
  uint64_t seq = sl__bus_pause(&hub->bus);
  *paused = 1;
  sl_wire_t pos = {0};
  if (hub->bus.feeds) {
    /* A shared log: other hubs go on appending, and this one's feed would go on delivering what
     * they append. It stops at an entry, whose seq is D; the new process reads on after it. */
    if ((r = hub->history->ops->feed_hold(hub->history, &pos))) {
      sl__wire_free(&pos);
      goto out;
    }
    *held = 1;
    seq = sl__history_last_seq(hub->history);
  }
  run_step(h, STEP_SYNC); /* every update fed before is dispatched */
  r = send_state(h, seq, &pos, deadline);
  sl__wire_free(&pos);
  if (r)
    goto out;
  post_step(h, STEP_EXPORT);
  *exported = 1;
  uint64_t total;
  r = send_conns(h, deadline, &total);
  for (unsigned i = 0; i < hub->worker_count; i++)
    wait_one(h, i); /* every worker exported before anything else happens to them */
  if (r)
    goto out;
  body.len = 0;
  sl__wire_u64(&body, total);
  if ((r = body.failed ? -ENOMEM : send_msg(h->sock, MSG_END, &body, NULL, 0, deadline)))
    goto out;
  if ((r = expect(h, MSG_DONE, "could not take over", deadline)))
    goto out;
  if ((r = send_msg(h->sock, MSG_GO, NULL, NULL, 0, deadline)))
    goto out;
  *committed = 1;
  size_t released = run_step(h, STEP_RELEASE);
  sl__log(SL_LOG_INFO, "upgrade: handed %zu connections (%" PRIu64 " sent) and the listening "
          "sockets to pid %" PRIu32 " in %" PRIu64 " ms after quiescing; the rest end here",
          released, total, pid, sl__fdpass_now_ms() - t0);
out:
  sl__wire_free(&body);
  return r;
}

static void old_main(void *arg) {
  handoff_t *h = arg;
  sl_hub_t *hub = h->hub;
  uint64_t deadline = sl__fdpass_now_ms() + (uint64_t)(h->timeout * MS_PER_S);
  int quiesced = 0, paused = 0, held = 0, exported = 0, committed = 0;
  int r = old_run(h, deadline, &quiesced, &paused, &held, &exported, &committed);
  if (!committed) {
    if (exported || paused)
      send_msg(h->sock, MSG_ABORT, NULL, NULL, 0, sl__fdpass_now_ms() + ABORT_WAIT_MS);
    if (quiesced || exported)
      run_step(h, STEP_THAW);
    if (paused)
      sl__bus_resume(&hub->bus);
    if (held) /* the feed goes on after the entry it stopped at: no gap, no duplicate */
      hub->history->ops->feed_release(hub->history);
    if (r == -EPIPE)
      sl__log(SL_LOG_ERROR, "upgrade failed: the new process went away before it took over (it "
              "exited or crashed: see its lines above); still serving");
    else if (r == -ETIMEDOUT)
      sl__log(SL_LOG_ERROR, "upgrade failed: the new process did not take over within %.0f s "
              "(--upgrade-timeout); still serving", h->timeout);
    else
      sl__log(SL_LOG_ERROR, "upgrade failed: %s; still serving", strerror(r ? -r : EPROTO));
  } else {
    hub->handed_off = 1;
  }
  exports_reset(h);
  close(h->sock);
  h->sock = -1;
  atomic_store(&h->running, 0);
  if (h->cb)
    h->cb(hub, committed ? 0 : (r ? r : -EPROTO), h->arg);
}

static void handoff_free(handoff_t *h) {
  if (h == NULL)
    return;
  if (h->thread_started)
    uv_thread_join(&h->thread);
  if (h->sock >= 0)
    close(h->sock);
  uv_cond_destroy(&h->done);
  uv_mutex_destroy(&h->lock);
  free(h->calls);
  free(h->exports);
  free(h);
}

void sl__handoff_free(sl_hub_t *hub) {
  handoff_free(hub->handoff);
  hub->handoff = NULL;
}

int sl__handoff_begin(sl_hub_t *hub, int sock, double timeout, sl_handoff_cb cb, void *arg) {
  if (hub->handoff && atomic_load(&hub->handoff->running))
    return -EALREADY;
  if (hub->handed_off)
    return -EALREADY;
  if (hub->bus.feeds && !sl__history_feed_handable(hub->history))
    return -ENOTSUP;
  sl__handoff_free(hub);
  handoff_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    return -ENOMEM;
  h->hub = hub;
  h->sock = sock;
  h->timeout = timeout;
  h->cb = cb;
  h->arg = arg;
  h->calls = calloc(hub->worker_count, sizeof *h->calls);
  h->exports = calloc(hub->worker_count, sizeof *h->exports);
  int r = h->calls && h->exports ? 0 : -ENOMEM;
  if (r == 0 && (r = uv_mutex_init(&h->lock)) == 0 && (r = uv_cond_init(&h->done)) != 0)
    uv_mutex_destroy(&h->lock);
  if (r) {
    free(h->calls);
    free(h->exports);
    free(h);
    return r;
  }
  atomic_store(&h->running, 1);
  hub->handoff = h;
  if ((r = uv_thread_create(&h->thread, old_main, h))) {
    atomic_store(&h->running, 0);
    h->sock = -1; /* the caller's still */
    sl__handoff_free(hub);
    return r;
  }
  h->thread_started = 1;
  return 0;
}

/* --- the new side ---------------------------------------------------------------------------- */

static void refuse(int sock, const char *why) {
  sl__log(SL_LOG_ERROR, "upgrade: cannot take over: %s", why);
  send_text(sock, MSG_REFUSE, why, sl__fdpass_now_ms() + ABORT_WAIT_MS);
}

/* Gives every adopted connection back untouched (the old process serves them on). */
static void give_back(sl_hub_t *hub) {
  for (unsigned i = 0; i < hub->worker_count; i++)
    sl__worker_handoff_giveback(&hub->workers[i]);
}

/* PLAN and the LISTENs: the old process's layout, which this one takes as it is. */
static int adopt_plan(sl_hub_t *hub, int sock, uint64_t deadline, unsigned *workers,
                      sl_listen_fds_t **listen, int *lmdb_lock, uint32_t *old_pid) {
  sl_wire_t body = {0};
  int fds[SL_FDPASS_MAX_FDS];
  size_t nfds;
  uint8_t type;
  char why[REASON_MAX];
  int r = recv_msg(sock, deadline, &type, &body, fds, &nfds);
  if (r) {
    sl__log(SL_LOG_ERROR, "upgrade: no answer from the running process: %s", strerror(-r));
    goto out;
  }
  if (type == MSG_REFUSE) {
    close_all(fds, nfds);
    reason_of(&body, why, sizeof why);
    sl__log(SL_LOG_ERROR, "upgrade: the running process refused: %s", why);
    r = -ECONNREFUSED;
    goto out;
  }
  sl_wire_reader_t rd;
  sl__wire_reader(&rd, body.buf, body.len);
  uint32_t version = sl__wire_get_u32(&rd);
  *old_pid = sl__wire_get_u32(&rd);
  uint32_t n = sl__wire_get_u32(&rd);
  uint32_t listens = sl__wire_get_u32(&rd);
  uint8_t kind = sl__wire_get_u8(&rd);
  uint8_t has_lock = sl__wire_get_u8(&rd);
  r = -EPROTO;
  if (type != MSG_PLAN || rd.bad || nfds != has_lock) {
    close_all(fds, nfds);
    refuse(sock, "malformed PLAN message");
    goto out;
  }
  *lmdb_lock = has_lock ? fds[0] : -1;
  if (version != SL_HANDOFF_VERSION)
    snprintf(why, sizeof why, "the running process speaks hand-off protocol %" PRIu32 ", this "
             "one %d", version, SL_HANDOFF_VERSION);
  else if (n == 0 || n > SL_MAX_WORKERS || (!hub->workers_auto && n != hub->cfg.workers))
    snprintf(why, sizeof why, "the running process has %" PRIu32 " workers, this one is set to "
             "%u: leave --workers unset, or give the same number", n, hub->cfg.workers);
  else if (listens != hub->cfg.listen_count)
    snprintf(why, sizeof why, "the running process listens on %" PRIu32 " addresses, this one "
             "on %u: the same --listen options are needed", listens, hub->cfg.listen_count);
  else if (kind != history_kind(hub))
    snprintf(why, sizeof why, "the running process keeps its history %s, this one %s",
             history_name(kind), history_name(history_kind(hub)));
  else
    why[0] = '\0';
  if (why[0]) {
    refuse(sock, why);
    goto out;
  }
  *workers = n;
  *listen = calloc(n, sizeof **listen);
  if (*listen == NULL) {
    r = -ENOMEM;
    goto out;
  }
  for (unsigned i = 0; i < n; i++)
    for (unsigned k = 0; k < SL_MAX_LISTEN; k++)
      (*listen)[i].listen[k] = (*listen)[i].lock[k] = -1;
  for (unsigned i = 0; i < n; i++) {
    if ((r = recv_msg(sock, deadline, &type, &body, fds, &nfds)))
      goto out;
    sl__wire_reader(&rd, body.buf, body.len);
    uint32_t worker = sl__wire_get_u32(&rd);
    uint32_t count = sl__wire_get_u32(&rd);
    size_t used = 0;
    r = -EPROTO;
    if (type != MSG_LISTEN || rd.bad || worker != i || count != listens || nfds < count) {
      close_all(fds, nfds);
      refuse(sock, "malformed LISTEN message");
      goto out;
    }
    for (unsigned k = 0; k < count; k++)
      (*listen)[i].listen[k] = fds[used++];
    for (unsigned k = 0; k < count; k++)
      if (sl__wire_get_u8(&rd) && used < nfds)
        (*listen)[i].lock[k] = fds[used++];
    close_all(fds + used, nfds - used);
    r = rd.bad ? -EPROTO : 0;
    if (r)
      goto out;
  }
  r = 0;
out:
  sl__wire_free(&body);
  return r;
}

/* STATE and, with the memory history, HISTORY: the order goes on where the old one stands. */
static int adopt_state(sl_hub_t *hub, int sock, uint64_t deadline) {
  sl_wire_t body = {0};
  int fds[SL_FDPASS_MAX_FDS];
  size_t nfds;
  uint8_t type;
  int r = recv_msg(sock, deadline, &type, &body, fds, &nfds);
  if (r)
    goto out;
  close_all(fds, nfds);
  sl_wire_reader_t rd;
  sl__wire_reader(&rd, body.buf, body.len);
  uint64_t seq = sl__wire_get_u64(&rd), last = sl__wire_get_u64(&rd);
  uint64_t dropped[2] = {sl__wire_get_u64(&rd), sl__wire_get_u64(&rd)};
  size_t pos_len;
  const unsigned char *pos = sl__wire_get_bytes(&rd, &pos_len);
  if (type != MSG_STATE || rd.bad) {
    r = type == MSG_ABORT ? -ECANCELED : -EPROTO;
    goto out;
  }
  int feeds = hub->bus.feeds;
  if (feeds) {
    /* The shared log: this process reads it on after the entry the old one's feed stopped at,
     * numbering from its seq; nothing is fed before the workers start there. */
    sl_wire_reader_t prd;
    sl__wire_reader(&prd, pos, pos_len);
    if ((r = hub->history->ops->feed_at(hub->history, &prd))) {
      refuse(sock, r == -EINVAL ? "this process is set to another Redis stream (--redis-stream)"
                                : "the running process's place in the Redis stream could not "
                                  "be read");
      r = -ECONNREFUSED;
      goto out;
    }
    sl__bus_feed_moved(&hub->bus);
  } else if (history_kind(hub) == HISTORY_MEMORY) {
    if ((r = recv_msg(sock, deadline, &type, &body, fds, &nfds)))
      goto out;
    close_all(fds, nfds);
    sl__wire_reader(&rd, body.buf, body.len);
    uint32_t n = sl__wire_get_u32(&rd);
    r = type == MSG_HISTORY && !rd.bad ? 0 : -EPROTO;
    for (uint32_t i = 0; r == 0 && i < n; i++) {
      sl_frame_t *f = frame_read(&rd);
      r = f ? sl__history_memory_restore(hub->history, f) : -EPROTO;
      if (f)
        sl__frame_unref(f);
    }
    if (r == 0)
      r = sl__history_memory_set_marks(hub->history, last, dropped);
  }
  /* A data dir opened before the old process's last commits: read where it stands now. */
  if (r == 0 && hub->cfg.data_dir && (r = sl__history_lmdb_refresh(hub->history)))
    refuse(sock, "the data dir could not be read again after the running process's last commit");
  if (r == 0 && sl__history_last_seq(hub->history) != seq) {
    char why[REASON_MAX];
    snprintf(why, sizeof why, "the history here ends at %" PRIu64 ", the running process's at "
             "%" PRIu64, sl__history_last_seq(hub->history), seq);
    refuse(sock, why);
    r = -ESTALE;
  }
  if (r == 0) /* every worker goes on from there */
    sl__bus_attach(&hub->bus, hub->workers, hub->worker_count);
  if (r == 0 && feeds) /* what other hubs appended meanwhile reaches the inboxes, in order */
    hub->history->ops->feed_release(hub->history);
out:
  sl__wire_free(&body);
  return r;
}

/* One CONNS message waiting for its worker's adopter. */
typedef struct batch_s {
  struct batch_s *next;
  sl_wire_t body;
  uint32_t n;
  int fds[];
} batch_t;

/* Each worker's connections are adopted on a thread of their own, in parallel with the others
 * and with the messages still arriving: the worker's loop does not run yet, and what adoption
 * shares across workers (admission, the registry, metrics, history) is thread-safe. */
typedef struct adopter_s {
  sl_worker_t *worker;
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t more;
  batch_t *head, **tail;
  int ended;                     /* no more batches */
  int err;
  uint64_t adopted;
} adopter_t;

static void adopter_main(void *arg) {
  adopter_t *a = arg;
  for (;;) {
    uv_mutex_lock(&a->lock);
    while (a->head == NULL && !a->ended)
      uv_cond_wait(&a->more, &a->lock);
    batch_t *b = a->head;
    if (b) {
      a->head = b->next;
      if (a->head == NULL)
        a->tail = &a->head;
    }
    uv_mutex_unlock(&a->lock);
    if (b == NULL)
      return;
    sl_wire_reader_t rd;
    sl__wire_reader(&rd, b->body.buf, b->body.len);
    sl__wire_get_u32(&rd); /* worker and count, checked by the receiver */
    sl__wire_get_u32(&rd);
    for (uint32_t i = 0; i < b->n; i++) {
      size_t len;
      const unsigned char *rec = sl__wire_get_bytes(&rd, &len);
      sl_wire_reader_t one;
      sl__wire_reader(&one, rec, len);
      if (a->err || rd.bad) {
        close(b->fds[i]); /* only this process's copy: the old one serves on */
        a->err = -EPROTO;
        continue;
      }
      if (sl__worker_adopt(a->worker, b->fds[i], &one))
        a->err = -EPROTO;
      else
        a->adopted++;
    }
    sl__wire_free(&b->body);
    free(b);
  }
}

static void adopter_push(adopter_t *a, batch_t *b) {
  b->next = NULL;
  uv_mutex_lock(&a->lock);
  *a->tail = b;
  a->tail = &b->next;
  uv_cond_signal(&a->more);
  uv_mutex_unlock(&a->lock);
}

/* CONNS until END. *adopted gets how many were taken over. */
static int adopt_conns(sl_hub_t *hub, int sock, uint64_t deadline, uint64_t *adopted,
                       uint64_t *streams) {
  unsigned nw = hub->worker_count, started = 0;
  adopter_t *ad = calloc(nw, sizeof *ad);
  int r = ad ? 0 : -ENOMEM;
  for (unsigned i = 0; r == 0 && i < nw; i++) {
    ad[i].worker = &hub->workers[i];
    ad[i].tail = &ad[i].head;
    if ((r = uv_mutex_init(&ad[i].lock)))
      break;
    if ((r = uv_cond_init(&ad[i].more))) {
      uv_mutex_destroy(&ad[i].lock);
      break;
    }
    if ((r = uv_thread_create(&ad[i].thread, adopter_main, &ad[i]))) {
      uv_cond_destroy(&ad[i].more);
      uv_mutex_destroy(&ad[i].lock);
      break;
    }
    started++;
  }
  uint64_t sent = 0, total = UINT64_MAX;
  while (r == 0) {
    int fds[SL_FDPASS_MAX_FDS];
    size_t nfds;
    uint8_t type;
    sl_wire_t body = {0};
    if ((r = recv_msg(sock, deadline, &type, &body, fds, &nfds))) {
      sl__wire_free(&body);
      break;
    }
    sl_wire_reader_t rd;
    sl__wire_reader(&rd, body.buf, body.len);
    if (type == MSG_END) {
      close_all(fds, nfds);
      total = sl__wire_get_u64(&rd);
      r = rd.bad ? -EPROTO : 0;
      sl__wire_free(&body);
      break;
    }
    uint32_t worker = sl__wire_get_u32(&rd);
    uint32_t n = sl__wire_get_u32(&rd);
    batch_t *b = NULL;
    if (type != MSG_CONNS || rd.bad || worker >= nw || n != nfds) {
      r = type == MSG_ABORT ? -ECANCELED : -EPROTO;
    } else if ((b = malloc(sizeof *b + n * sizeof(int))) == NULL) {
      r = -ENOMEM;
    }
    if (r) {
      close_all(fds, nfds);
      sl__wire_free(&body);
      break;
    }
    b->body = body; /* the batch's now */
    b->n = n;
    memcpy(b->fds, fds, n * sizeof(int));
    sent += n;
    adopter_push(&ad[worker], b);
  }
  *adopted = 0;
  for (unsigned i = 0; i < started; i++) {
    uv_mutex_lock(&ad[i].lock);
    ad[i].ended = 1;
    uv_cond_signal(&ad[i].more);
    uv_mutex_unlock(&ad[i].lock);
    uv_thread_join(&ad[i].thread);
    uv_cond_destroy(&ad[i].more);
    uv_mutex_destroy(&ad[i].lock);
    if (r == 0)
      r = ad[i].err;
    *adopted += ad[i].adopted;
  }
  free(ad);
  if (r == 0 && (total != sent || *adopted != sent))
    r = -EPROTO;
  *streams = 0;
  for (unsigned i = 0; i < nw; i++)
    *streams += sl__metric_get(&hub->workers[i].metrics.subscribers);
  return r;
}

int sl__handoff_adopt(sl_hub_t *hub, const sl_handoff_hooks_t *hooks) {
  int sock = hub->cfg.handoff_fd;
  uint64_t deadline = sl__fdpass_now_ms() + ADOPT_WAIT_MS;
  sl_listen_fds_t *listen = NULL;
  unsigned n = 0;
  int lock = -1, made = 0;
  uint32_t old_pid = 0;
  uint64_t adopted = 0, streams = 0;
  sl_wire_t w = {0};
  hub->cfg.handoff_fd = -1; /* owned here from now on */
  sl__wire_u32(&w, SL_HANDOFF_VERSION);
  sl__wire_str(&w, SL_VERSION_STRING);
  sl__wire_u32(&w, (uint32_t)getpid());
  sl__wire_u32(&w, hub->workers_auto ? 0 : hub->cfg.workers);
  int r = w.failed ? -ENOMEM : send_msg(sock, MSG_HELLO, &w, NULL, 0, deadline);
  sl__wire_free(&w);
  if (r == 0)
    r = adopt_plan(hub, sock, deadline, &n, &listen, &lock, &old_pid);
  if (r)
    goto fail;
  if ((r = hooks->open_history(hub, lock, 1))) {
    refuse(sock, "the history could not be opened here (see this process's log)");
    goto fail;
  }
  lock = -1; /* the history's */
  hub->cfg.workers = n;
  made = 1;
  r = hooks->make_workers(hub, n, listen);
  for (unsigned i = 0; i < n; i++) /* the workers' now, made or not */
    for (unsigned k = 0; k < SL_MAX_LISTEN; k++)
      listen[i].listen[k] = listen[i].lock[k] = -1;
  if (r) {
    refuse(sock, "the workers could not be made here (see this process's log)");
    goto fail;
  }
  uint64_t t_state = 0;
  if ((r = send_msg(sock, MSG_READY, NULL, NULL, 0, deadline)) ||
      (r = adopt_state(hub, sock, deadline)) || (t_state = sl__fdpass_now_ms(), 0) ||
      (r = adopt_conns(hub, sock, deadline, &adopted, &streams))) {
    if (r == -EPROTO)
      refuse(sock, "a message from the running process could not be read");
    goto fail;
  }
  w = (sl_wire_t){0};
  sl__wire_u64(&w, adopted);
  r = w.failed ? -ENOMEM : send_msg(sock, MSG_DONE, &w, NULL, 0, deadline);
  sl__wire_free(&w);
  uint8_t type = 0;
  if (r == 0) {
    int fds[SL_FDPASS_MAX_FDS];
    size_t nfds;
    w = (sl_wire_t){0};
    r = recv_msg(sock, deadline, &type, &w, fds, &nfds);
    sl__wire_free(&w);
    if (r == 0)
      close_all(fds, nfds);
    /* The old process gone without a word after DONE: nobody else serves them now. */
    if (r == -EPIPE || (r == 0 && type == MSG_GO))
      r = 0;
    else if (r == 0)
      r = -ECANCELED;
  }
  if (r)
    goto fail;
  close(sock);
  sock = -1;
  if ((r = hooks->start_workers(hub))) {
    sl__log(SL_LOG_ERROR, "upgrade: the workers could not start: %s", strerror(-r));
    return r;
  }
  sl__log(SL_LOG_INFO, "upgrade: took over %" PRIu64 " connections (%" PRIu64 " streams) and "
          "%u listening sockets from pid %" PRIu32 " in %" PRIu64 " ms from the old process's "
          "state to serving", adopted, streams, n * hub->cfg.listen_count, old_pid,
          sl__fdpass_now_ms() - t_state);
  free(listen);
  return 0;
fail:
  if (r == -ECANCELED)
    sl__log(SL_LOG_ERROR, "upgrade: the running process called the hand-off off; it serves on");
  else
    sl__log(SL_LOG_ERROR, "upgrade: taking over failed: %s; the running process serves on",
            strerror(-r));
  if (made)
    give_back(hub);
  if (lock >= 0)
    close(lock);
  if (listen) {
    for (unsigned i = 0; i < n; i++) {
      close_all(listen[i].listen, SL_MAX_LISTEN);
      close_all(listen[i].lock, SL_MAX_LISTEN);
    }
    free(listen);
  }
  if (sock >= 0)
    close(sock);
  return r < 0 ? r : -EPROTO;
}
