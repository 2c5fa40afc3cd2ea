/* subscribe.c — GET /.well-known/mercure: reads the topic matchers and the resume cursor,
 * authenticates the subscriber, registers it with the worker's broker and opens the event
 * stream: the response head, an initial comment so clients and proxies see the stream open, the
 * updates replayed from history, then live updates. The stream then owns the connection: its
 * heartbeats, its token's expiry, its final frame in a drain and its end are here. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/policy.h"
#include "common/form.h"
#include "common/log.h"
#include "common/validate.h"
#include "mercure/mercure.h"
#include "common/text.h"
#include "common/wire.h"

#define MAX_MATCHERS 256
#define MAX_MATCHER_LEN 4096
/* The automaton states all the URL patterns and templates of one subscription may hold (each
 * alone may hold 4096): about 650 KiB, and the work of trying them on one topic byte. */
#define MAX_SUBSCRIPTION_STATES 65536
#define CURSOR_HEADER "Mercure-Last-Event-ID: "
#define LEGACY_CURSOR_HEADER "Last-Event-ID: "
#define STREAM_HEADERS "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
#define WHAT_MAX 256
#define MS_PER_S 1000
#define JITTER_STEPS 1000000        /* resolution of the reconnect jitter */
#define CLOSE_FRAME_MAX 96
/* A resume is paged from history: at most REPLAY_WINDOW bytes of it are queued at a time (or
 * half of --max-queue, if less), refilled when the queue falls to half of that, each refill
 * reading up to REPLAY_PAGE frames at a time, as many as the frames read so far say fill the
 * window; so a client that resumes from earliest and reads
 * nothing pins a window of frames, not the history. */
#define REPLAY_WINDOW (256 * 1024)
#define REPLAY_PAGE 64
#define REPLAY_FIRST_PAGE 8        /* before the size of a frame is known */

/* A subscriber's stream, right in front of its subscription in the same allocation: the ops
 * pointer leads to the worker's context, so the stream costs one pointer. */
typedef struct paging_s paging_t;
typedef struct stream_s {
  sl_http_stream_t base;
  paging_t *paging;              /* a resume still paging its replay from history; else NULL */
} stream_t;

/* With --subscriptions, the connection's record of active subscriptions goes in front of the
 * stream, in the same allocation; without, that word is not allocated at all. */
typedef struct tracked_s {
  sl_subs_conn_t *record;        /* NULL once its end was announced and it was freed */
  stream_t stream;
} tracked_t;

#define STREAM_FRONT ((sizeof(stream_t) + 7) / 8 * 8) /* sl__sub_new wants a multiple of 8 */
#define TRACKED_FRONT (offsetof(tracked_t, stream) + STREAM_FRONT)

static sl_mercure_t *mercure_of(const sl_http_stream_t *s) {
  return (sl_mercure_t *)((char *)s->ops - offsetof(sl_mercure_t, stream_ops));
}

/* The subscription s stands in front of. */
static sl_sub_t *sub_of(sl_http_stream_t *s) {
  return (sl_sub_t *)((char *)s + STREAM_FRONT);
}

static stream_t *stream_of_sub(sl_sub_t *sub) {
  return (stream_t *)((char *)sub - STREAM_FRONT);
}

/* The stream's record; only with --subscriptions (m->subs set). */
static sl_subs_conn_t **record_of(sl_http_stream_t *s) {
  return &((tracked_t *)((char *)s - offsetof(tracked_t, stream)))->record;
}

/* The subscriptions of the stream ended (token expiry, a slow consumer cut, a gap, the client's
 * close): their termination events go now, not when the last byte is written (or the client's
 * FIN came, up to --linger later). */
static void subs_end(sl_mercure_t *m, sl_http_stream_t *s) {
  if (m->subs && *record_of(s))
    sl__subs_end(m->subs, *record_of(s));
}

static void subs_close(sl_mercure_t *m, sl_http_stream_t *s) {
  if (m->subs && *record_of(s)) {
    sl__subs_close(m->subs, *record_of(s));
    *record_of(s) = NULL;
  }
}

/* The matcher types this hub supports, as the unknown-matcher error lists them. */
#define MATCHER_NAMES "match (exact), match_exact, match_urlpattern, and the legacy topic"

/* The kind of selector a query parameter names: 0 and *kind, or -1 when it is no matcher. The
 * legacy topic= is a URI template when it holds '{', else exact, as pre-standard hubs read it. */
static int matcher_kind(const char *name, const char *value, size_t len,
                        sl_selector_kind_t *kind) {
  if (strcmp(name, "match") == 0 || strcmp(name, "match_exact") == 0)
    *kind = SL_SELECTOR_EXACT;
  else if (strcmp(name, "match_urlpattern") == 0)
    *kind = SL_SELECTOR_URLPATTERN;
  else if (strcmp(name, "topic") == 0)
    *kind = sl__selector_legacy_kind(value, len);
  else
    return -1;
  return 0;
}

/* The canonical name of the matcher type a matcher parameter selects: its subscription's
 * {match_type}. The legacy topic= selectors are reported as exact ones, URI templates included:
 * the spec registers no type for those, and their clients predate subscription events. */
static const char *matcher_type(const char *name) {
  if (strcmp(name, "match_urlpattern") == 0)
    return "urlpattern";
  return "exact";
}

/* --- the paged replay ------------------------------------------------------------------- */

/* A resume in progress. The subscriber is in the broker but marked SL_CONN_PAGING, so live
 * dispatch passes it by; the cursor reads history to its end, which every update this worker
 * dispatched has reached (an update is dispatched once stored), and possibly beyond it. At the
 * cursor's end, all on the worker's thread, every update up to the cursor's position, and up to
 * what the worker dispatched, is queued: the stream joins the live flow there, its last_seq
 * raised so that the broker skips the updates it already got from history when they are
 * dispatched here later. No gap, no duplicate, and no second lookup of an id. */
struct paging_s {
  sl_worker_call_t call;         /* first: posted to the worker when a page fetched away from it
                                    came (a non-blocking cursor, sl__history_cursor_notify) */
  sl_mercure_t *m;
  sl_conn_t *conn;
  stream_t *stream;
  atomic_int posted;             /* the call is on its way (set on the backend's thread) */
  int waiting;                   /* a page is being fetched (cursor_next said -EINPROGRESS) */
  int orphaned;                  /* the stream is gone: the call only frees this */
  sl_sub_filter_t filter;        /* the subscription's selectors, for one lookup per topic */
  sl_history_cursor_t *cur;
  size_t avg;                    /* bytes of a frame read so far, on average (0: none yet): a
                                    page asks for what fills the window, not much beyond it */
  uint64_t read, read_bytes;
  char *last_id;                 /* the id of the last update read (or the client's, before
                                    any), NULL for the oldest retained: where another process
                                    goes on with the replay after a live hand-off */
};

static void paging_free(paging_t *p) {
  if (p == NULL)
    return;
  if (p->cur)
    sl__history_cursor_close(p->cur); /* no ready call after it: posted is final now */
  p->cur = NULL;
  sl__sub_filter_free(&p->filter);
  free(p->last_id);
  p->last_id = NULL;
  if (atomic_load(&p->posted)) {
    p->orphaned = 1; /* the call on its way to the worker frees it (waiting or not) */
    return;
  }
  free(p);
}

/* The backend's thread: the page a non-blocking cursor fetched came. */
static void paging_ready(void *arg) {
  paging_t *p = arg;
  /* Once: a page can come while the call for an earlier one still waits in the worker's queue
   * (the stream's on_writable took that page meanwhile and asked for the next); posting the same
   * call twice would link it into the queue twice. The call queued reads whatever came. */
  if (atomic_exchange(&p->posted, 1))
    return;
  if (sl__worker_post_call(p->m->worker, &p->call))
    sl__worker_wake(p->m->worker);
}

/* The bytes of replay a stream may have queued at once. */
static size_t replay_window(const sl_mercure_t *m) {
  size_t half = m->cfg->max_queue / 2;
  return half > 0 && half < REPLAY_WINDOW ? half : REPLAY_WINDOW;
}

/* Where the replay stands: after the update with this id. 0 or -ENOMEM. */
static int remember_id(paging_t *p, const char *id) {
  char *copy = strdup(id);
  if (copy == NULL)
    return -ENOMEM;
  free(p->last_id);
  p->last_id = copy;
  return 0;
}

static void paging_stop(stream_t *s, sl_conn_t *c) {
  paging_free(s->paging);
  s->paging = NULL;
  sl__conn_paging_done(c);
}

/* Retention dropped updates the replay had still to send. Skipping them would lose them
 * silently, and what was sent cannot be taken back: the stream ends, and its client comes back
 * with the last id it got, which history no longer holds, so it is told "earliest" and gets
 * everything retained, as any client that comes back too late. */
static void paging_overtaken(sl_mercure_t *m, stream_t *s, sl_conn_t *c) {
  paging_stop(s, c);
  sl__metric_add(&m->metrics->replays_overtaken_total, 1);
  sl__log(SL_LOG_WARN, "replay: retention dropped updates a resumed stream had still to send; "
          "it ends, and its client resumes from the earliest retained");
  sl__delivery_end(c);
}

/* Queues the next window of the replay, or joins the live stream at its end. */
static void paging_fill(sl_mercure_t *m, sl_conn_t *c, stream_t *s) {
  paging_t *p = s->paging;
  sl_delivery_t *d = m->dlv;
  if (p == NULL)
    return;
  if (c->flags & (SL_CONN_CLOSE_AFTER | SL_CONN_CLOSING)) {
    paging_stop(s, c); /* ending: its client resumes after the last update it got */
    return;
  }
  size_t window = replay_window(m);
  uint64_t checks = p->filter.checks, sent = 0;
  sl_frame_t *page[REPLAY_PAGE];
  int joined = 0;
  while (c->q_bytes < window) {
    size_t want = p->avg ? (window - c->q_bytes) / p->avg + 1 : REPLAY_FIRST_PAGE;
    int r = sl__history_cursor_next(p->cur, page, want < REPLAY_PAGE ? want : REPLAY_PAGE);
    if (r == -EINPROGRESS) {
      p->waiting = 1; /* paging_call goes on when the page came */
      break;
    }
    if (r == -ESPIPE) {
      sl__metric_add(&m->metrics->replay_checks_total, p->filter.checks - checks);
      paging_overtaken(m, s, c);
      return;
    }
    if (r < 0) {
      sl__log(SL_LOG_ERROR, "replay: history could not be read (%s); the stream ends, and its "
              "client resumes", strerror(-r));
      paging_stop(s, c);
      sl__delivery_end(c);
      return;
    }
    if (r == 0) {
      joined = 1; /* everything stored is queued; what follows comes live */
      break;
    }
    int remembered = remember_id(p, page[r - 1]->id ? page[r - 1]->id : "");
    for (int i = 0; i < r; i++) {
      p->read++;
      p->read_bytes += sl__conn_frame_len(c, page[i]);
      if (sl__sub_filter_wants(&p->filter, page[i]) && sl__delivery_send_opening(c, page[i]) == 0)
        sent++;
      sl__frame_unref(page[i]);
    }
    if (remembered) {
      /* Without the id, a hand-off could not say where the replay stands: it ends here, and
       * its client resumes from the last update it got. */
      paging_stop(s, c);
      sl__delivery_end(c);
      return;
    }
    p->avg = (size_t)(p->read_bytes / p->read);
    if (c->flags & SL_CONN_CLOSING)
      break;
  }
  c->q_opening = c->q_bytes; /* nothing live is queued while paging: all of it is replay */
  sl__metric_add(&m->metrics->replayed_total, sent);
  sl__metric_add(&m->metrics->replay_checks_total, p->filter.checks - checks);
  if (joined) {
    sl_sub_t *sub = sub_of(&s->base);
    uint64_t pos = sl__history_cursor_pos(p->cur);
    if (sub->last_seq < pos)
      sub->last_seq = pos;
    if (sub->last_seq < d->dispatched_seq)
      sub->last_seq = d->dispatched_seq; /* nothing was after the client's id: it had those */
    paging_stop(s, c);
  } else {
    sl__conn_set_low_water(c, window / 2);
  }
}

/* The worker's thread, after paging_ready: the replay goes on (or, its stream gone, ends). */
static void paging_call(sl_worker_call_t *call) {
  paging_t *p = (paging_t *)call;
  atomic_store(&p->posted, 0);
  p->waiting = 0;
  if (p->orphaned) {
    free(p);
    return;
  }
  paging_fill(p->m, p->conn, p->stream);
}

static void stream_writable(sl_http_stream_t *s, sl_conn_t *c) {
  stream_t *st = (stream_t *)s;
  if (st->paging)
    paging_fill(mercure_of(s), c, st);
}

/* --- the stream ---------------------------------------------------------------------------- */

static void stream_timeout(sl_http_stream_t *s, sl_conn_t *c, uint64_t now) {
  sl_mercure_t *m = mercure_of(s);
  sl_sub_t *sub = sub_of(s);
  if (c->flags & SL_CONN_CLOSE_AFTER)
    return;
  if (sub->exp > 0 && (int64_t)time(NULL) >= sub->exp) {
    sl__delivery_end(c); /* the token expired: the client must come back with a fresh one */
    return;
  }
  if (m->cfg->heartbeat > 0 && c->q_len == 0 &&
      now - c->last_write >= (uint64_t)(m->cfg->heartbeat * MS_PER_S))
    sl__delivery_send(c, &sl__frame_heartbeat);
}

/* The drain: a final frame that tells the client to come back, at a jittered moment so that
 * clients do not all return at once, then the end. */
static void stream_shutdown(sl_http_stream_t *s, sl_conn_t *c) {
  sl_mercure_t *m = mercure_of(s);
  if (!(c->flags & SL_CONN_EVICTED)) {
    double spread = m->cfg->reconnect_spread;
    unsigned ms = 0;
    if (spread > 0)
      ms = (unsigned)((double)(rand_r(&m->jitter_seed) % JITTER_STEPS) / JITTER_STEPS * spread *
                      MS_PER_S) + 1;
    char buf[CLOSE_FRAME_MAX];
    int len = snprintf(buf, sizeof buf, "retry: %u\nevent: close\ndata: server_shutdown\n\n", ms);
    sl__conn_mark(c, SL_CONN_DRAINING);
    sl_frame_t *f = len > 0 && (size_t)len < sizeof buf ? sl__frame_chunk(buf, (size_t)len) : NULL;
    if (f) {
      sl__delivery_send(c, f);
      sl__frame_unref(f);
    }
  }
  sl__delivery_end(c);
}

static void stream_close(sl_http_stream_t *s, sl_conn_t *c) {
  sl_mercure_t *m = mercure_of(s);
  stream_t *st = (stream_t *)s;
  if (st->paging)
    paging_stop(st, c);
  if (m->subs && *record_of(s) && (c->flags & SL_CONN_DETACHED)) {
    /* Handed to another process, which lists it now: nothing ended. */
    sl__subs_forget(m->subs, *record_of(s));
    *record_of(s) = NULL;
  }
  subs_close(m, s);
  sl__broker_remove(&m->dlv->broker, sub_of(s)); /* frees the stream too */
  sl__metric_sub(&m->metrics->subscribers, 1);
}

static void stream_end(sl_http_stream_t *s, sl_conn_t *c) {
  (void)c;
  subs_end(mercure_of(s), s);
}

/* --- the live hand-off ---------------------------------------------------------------------- */

/* What another process needs to go on with the stream: the subscription's selectors and grants
 * (as kinds and texts: it compiles them again), its token's expiry, where the stream stands (live:
 * it has every update up to the last this worker dispatched, which is where the other process's
 * order goes on; or paging: after the update last read from history), and its record of active
 * subscriptions. */
static int stream_export(sl_http_stream_t *s, sl_conn_t *c, sl_wire_t *out) {
  sl_mercure_t *m = mercure_of(s);
  stream_t *st = (stream_t *)s;
  sl_sub_t *sub = sub_of(s);
  sl_selector_t sels[MAX_MATCHERS];
  size_t n = sl__sub_selectors(sub, sels, MAX_MATCHERS);
  (void)c;
  sl__wire_u32(out, (uint32_t)n);
  for (size_t i = 0; i < n; i++) {
    sl__wire_u8(out, (uint8_t)sels[i].kind);
    sl__wire_bytes(out, sels[i].text, sels[i].len);
  }
  sl__wire_u32(out, sub->grant_count);
  for (uint32_t i = 0; i < sub->grant_count; i++) {
    sl__wire_u8(out, (uint8_t)sub->grants[i].kind);
    sl__wire_bytes(out, sub->grants[i].text, sub->grants[i].len);
  }
  sl__wire_u64(out, (uint64_t)sub->exp);
  sl__wire_u8(out, (uint8_t)sub->has_token);
  /* Live, it has every update up to D, and with a shared log maybe some beyond it: a client that
   * resumed here from an id another hub gave it an instant ago, before this hub read that far,
   * has those already (the cursor counted them ahead); the other process must not send them. */
  sl__wire_u64(out, sub->last_seq);
  sl__wire_u8(out, st->paging != NULL);
  if (st->paging) {
    sl__wire_u8(out, st->paging->last_id != NULL);
    sl__wire_str(out, st->paging->last_id);
  }
  sl__wire_u8(out, m->subs && *record_of(s));
  if (m->subs && *record_of(s))
    sl__subs_export(*record_of(s), out);
  return out->failed ? -ENOMEM : 0;
}

/* One selector of a handed record, compiled (or lent by the broker). 0, or a negative errno. */
static int adopt_selector(sl_mercure_t *m, sl_wire_reader_t *in, sl_selector_t *sel,
                          const char **text, size_t *len) {
  uint8_t kind = sl__wire_get_u8(in);
  *text = (const char *)sl__wire_get_bytes(in, len);
  const char *why;
  if (in->bad || *len > MAX_MATCHER_LEN)
    return -EPROTO;
  if (sl__broker_matcher(&m->dlv->broker, (sl_selector_kind_t)kind, *text, *len,
                         m->cfg->public_url, sel))
    return 0;
  int e = sl__selector_compile(sel, (sl_selector_kind_t)kind, *text, *len, m->cfg->public_url,
                               &why);
  return e == -ENOMEM ? e : e ? -EPROTO : 0;
}

/* The grants of a handed record, laid out as a token's claims are (one block: the array, then
 * the texts). 0, or a negative errno (nothing kept). */
static int adopt_grants(sl_wire_reader_t *in, const char *base, sl_grants_t *g) {
  uint32_t n = sl__wire_get_u32(in);
  if (in->bad || n > MAX_MATCHERS)
    return -EPROTO;
  g->count = n;
  if (n == 0)
    return 0;
  const unsigned char *save = in->p;
  size_t size = n * sizeof(sl_selector_t);
  for (uint32_t i = 0; i < n; i++) {
    size_t len;
    sl__wire_get_u8(in);
    sl__wire_get_bytes(in, &len);
    size += len + 1;
  }
  if (in->bad)
    return -EPROTO;
  in->p = save;
  sl_selector_t *block = calloc(1, size);
  if (block == NULL)
    return -ENOMEM;
  char *next = (char *)(block + n);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t kind = sl__wire_get_u8(in);
    size_t len;
    const unsigned char *text = sl__wire_get_bytes(in, &len);
    memcpy(next, text, len);
    next[len] = '\0';
    const char *why;
    int e = sl__selector_compile(&block[i], (sl_selector_kind_t)kind, next, len, base, &why);
    if (e) {
      sl__selectors_release(block, i);
      free(block);
      return e == -ENOMEM ? e : -EPROTO;
    }
    next += len + 1;
  }
  g->subscribe = block;
  return 0;
}

int sl__mercure_adopt_stream(sl_conn_t *c, sl_wire_reader_t *in, void *data,
                             sl_http_stream_t **out) {
  sl_mercure_t *m = data;
  sl_delivery_t *d = m->dlv;
  sl_selector_t sels[MAX_MATCHERS];
  size_t n = sl__wire_get_u32(in), k = 0;
  int e = in->bad || n == 0 || n > MAX_MATCHERS ? -EPROTO : 0;
  for (; e == 0 && k < n; k++) {
    const char *text;
    size_t len;
    if ((e = adopt_selector(m, in, &sels[k], &text, &len)))
      break;
  }
  sl_grants_t grants = {0};
  if (e == 0)
    e = adopt_grants(in, m->cfg->public_url, &grants);
  grants.exp = (int64_t)sl__wire_get_u64(in);
  grants.has_token = sl__wire_get_u8(in);
  uint64_t had = sl__wire_get_u64(in);
  uint8_t paging = sl__wire_get_u8(in);
  char *after = NULL;
  if (paging) {
    uint8_t has_id = sl__wire_get_u8(in);
    char *id = sl__wire_get_strdup(in);
    if (has_id)
      after = id;
    else
      free(id);
    if (has_id && id == NULL && e == 0)
      e = -ENOMEM;
  }
  uint8_t has_record = sl__wire_get_u8(in);
  if (e == 0 && (in->bad || (has_record && m->subs == NULL)))
    e = -EPROTO;
  sl_sub_t *sub = e ? NULL : sl__sub_new(c, sels, n, &grants, m->subs ? TRACKED_FRONT : STREAM_FRONT);
  if (e == 0 && (sub == NULL || sl__broker_add(&d->broker, sub))) {
    if (sub)
      sl__broker_remove(&d->broker, sub);
    sub = NULL;
    e = -ENOMEM;
  }
  sl__selectors_release(sels, k); /* those the subscription did not take */
  if (grants.subscribe) {
    sl__selectors_release(grants.subscribe, grants.count);
    free(grants.subscribe);
  }
  if (e) {
    free(after);
    return e;
  }
  stream_t *stream = stream_of_sub(sub);
  stream->base.ops = &m->stream_ops;
  if (has_record && (e = sl__subs_adopt(m->subs, in, record_of(&stream->base)))) {
    free(after);
    sl__broker_remove(&d->broker, sub);
    return e;
  }
  sl__metric_add(&m->metrics->subscribers, 1);
  sub->last_seq = d->dispatched_seq; /* live: every update up to here was the other process's */
  if (had > sub->last_seq)
    sub->last_seq = had; /* and those it had beyond (a shared log's, counted ahead) */
  *out = &stream->base;
  if (!paging) {
    free(after);
    return 0;
  }
  /* Paging: the replay goes on after the update last read there, up to where this process's
   * order starts; the first write's on_writable refills it. */
  int found = 0;
  paging_t *p = calloc(1, sizeof *p);
  if (p == NULL || sl__sub_filter_init(&p->filter, sub) ||
      sl__bus_cursor_open(m->bus, after, UINT64_MAX, &p->cur, &found)) {
    free(after);
    paging_free(p);
    /* Not the connection's yet (the caller gives it back): undone here, without an event. */
    if (m->subs && *record_of(&stream->base))
      sl__subs_forget(m->subs, *record_of(&stream->base));
    sl__broker_remove(&d->broker, sub);
    sl__metric_sub(&m->metrics->subscribers, 1);
    *out = NULL;
    return -ENOMEM;
  }
  p->last_id = after;
  p->m = m;
  p->call.fn = paging_call;
  p->conn = c;
  p->stream = stream;
  sl__history_cursor_notify(p->cur, paging_ready, p);
  stream->paging = p;
  if (after && !found) {
    /* Retention dropped what the replay had still to send: as when it overtakes a replay here. */
    paging_overtaken(m, stream, c);
    return 0;
  }
  sl__conn_mark(c, SL_CONN_PAGING);
  sl__conn_set_low_water(c, replay_window(m) / 2);
  return 0;
}

void sl__mercure_stream_ops(sl_http_stream_ops_t *ops) {
  ops->on_end = stream_end;
  ops->on_timeout = stream_timeout;
  ops->on_shutdown = stream_shutdown;
  ops->on_close = stream_close;
  ops->on_writable = stream_writable;
  ops->on_export = stream_export;
}

/* --- the request --------------------------------------------------------------------------- */

/* Authenticates the subscriber. 0 and claims filled (has_token set), or an answer was sent. */
static int subscriber_auth(sl_mercure_t *m, sl_conn_t *c, sl_request_t *r, sl_claims_t *claims,
                           int *has_token) {
  if (sl__mercure_authenticate(m, c, r, SL_ROLE_SUBSCRIBER, claims, has_token))
    return -1;
  if (!*has_token && !m->cfg->anonymous) {
    char what[WHAT_MAX];
    snprintf(what, sizeof what, "this hub needs a subscriber token (Authorization: Bearer, or "
             "the %.60s cookie)", m->cfg->cookie_name ? m->cfg->cookie_name : SL_COOKIE_NAME);
    sl__mercure_challenge(m, c, 401, NULL, NULL, what);
    return -1;
  }
  /* Accepted within the leeway after its exp: a stream must end at exp, so it would end at
   * once, and its client would come back with the same token in a loop. Refused instead. */
  if (*has_token && claims->expires && (int64_t)time(NULL) >= claims->expires) {
    sl__claims_free(claims);
    sl__mercure_challenge(m, c, 401, "invalid_token", "token expired",
                          "the subscriber token is not valid: token expired (a stream ends at "
                          "its exp)");
    return -1;
  }
  return 0;
}

/* The head (saying where the replay starts, when the client asked to resume: also in the
 * pre-standard Last-Event-ID header when it asked the pre-standard way), the opening comment,
 * the replayed updates, and from now on the live ones. */
static void stream_open(sl_mercure_t *m, sl_conn_t *c, sl_http_stream_t *stream,
                        const char *cursor, int legacy, int found) {
  char *headers = NULL;
  const char *where = found ? cursor : "earliest";
  size_t cap = sizeof STREAM_HEADERS + sizeof CURSOR_HEADER + sizeof LEGACY_CURSOR_HEADER +
               (cursor ? 2 * strlen(where) : 0) + 4;
  headers = malloc(cap);
  if (headers == NULL) {
    sl__http_error(c, 500, NULL, "out of memory");
    return;
  }
  int n = snprintf(headers, cap, "%s%s%s%s%s%s%s", STREAM_HEADERS, cursor ? CURSOR_HEADER : "",
                   cursor ? where : "", cursor ? "\r\n" : "", legacy ? LEGACY_CURSOR_HEADER : "",
                   legacy ? where : "", legacy ? "\r\n" : "");
  if (n < 0 || (size_t)n >= cap) {
    free(headers);
    sl__http_error(c, 500, NULL, "the stream's head could not be built");
    return;
  }
  int r = sl__http_open_stream(c, "text/event-stream", headers, stream);
  free(headers);
  if (r)
    return;
  sl__metric_add(&m->metrics->subscribers, 1);
  sl__delivery_send(c, &sl__frame_heartbeat);
  c->q_opening = c->q_bytes; /* at the queue's front: written before anything live */
  if (cursor)
    sl__metric_add(&m->metrics->resumes_total, 1);
}

void sl__mercure_subscribe(sl_conn_t *c, sl_request_t *r, void *arg) {
  sl_mercure_t *m = arg;
  sl_delivery_t *d = m->dlv;
  sl_form_t form = {0};
  sl_claims_t claims = {0};
  paging_t *paging = NULL;
  sl_selector_t sels[MAX_MATCHERS];
  const char *matchers[MAX_MATCHERS];
  const char *names[MAX_MATCHERS];
  size_t lens[MAX_MATCHERS];
  sl_subs_matcher_t *tracked = NULL;
  size_t n = 0;
  sl_selector_kind_t kind;
  size_t states = 0;
  const char *cursor = NULL, *legacy_cursor = NULL;
  char what[WHAT_MAX];
  const char *why;
  int e;

  if (c->net->draining) {
    sl__http_error(c, 503, "Retry-After: 5\r\n", "the hub is shutting down; reconnect shortly");
    return;
  }
  if (sl__mercure_rate_limited(m, c, r))
    return;
  if (sl__form_parse(&form, r->query, r->query_len)) {
    sl__http_error(c, 500, NULL, "out of memory");
    return;
  }
  for (size_t i = 0; i < form.count; i++) {
    const sl_pair_t *p = &form.pairs[i];
    if (matcher_kind(p->name, p->value, p->value_len, &kind) == 0) {
      if (n == MAX_MATCHERS || p->value_len > MAX_MATCHER_LEN) {
        sl__http_error(c, 400, NULL, "too many topic matchers (256 at most) or one longer than 4096 bytes");
        goto out;
      }
      /* An empty value is a valid matcher (the spec gives `match` alone the empty value): the
       * empty topic exactly, or the empty URL pattern (the hub URL's directory). */
      if (p->value_len && sl__check_matcher(p->value, p->value_len, &why)) {
        snprintf(what, sizeof what, "%s: %s", p->name, why);
        sl__http_error(c, 400, NULL, what);
        goto out;
      }
      /* A pattern this worker already serves lends its compiled matcher: no compilation, no
       * memory of this subscription's own. */
      e = sl__broker_matcher(&d->broker, kind, p->value, p->value_len, m->cfg->public_url,
                             &sels[n])
              ? 0
              : sl__selector_compile(&sels[n], kind, p->value, p->value_len, m->cfg->public_url,
                                     &why);
      if (e == -ENOMEM) {
        sl__http_error(c, 500, NULL, "out of memory");
        goto out;
      }
      if (e) {
        snprintf(what, sizeof what, "%s: %s", p->name, why);
        sl__http_error(c, 400, NULL, what);
        goto out;
      }
      matchers[n] = p->value;
      names[n] = p->name;
      lens[n] = p->value_len;
      states += sl__selector_states(&sels[n++]);
      if (states > MAX_SUBSCRIPTION_STATES) {
        sl__http_error(c, 400, NULL, "the URL patterns and templates of this subscription are too "
                       "complex together (65536 automaton states at most): subscribe with fewer "
                       "or simpler ones");
        goto out;
      }
    } else if (strcmp(p->name, "last_event_id") == 0) {
      if (cursor == NULL)
        cursor = p->value;
    } else if (strcmp(p->name, "lastEventID") == 0) {
      if (legacy_cursor == NULL)
        legacy_cursor = p->value;
    } else if (SL_STARTS_WITH_CASE(p->name, "match")) {
      snprintf(what, sizeof what, "unknown or unsupported topic matcher type '%.40s' (this hub "
               "supports " MATCHER_NAMES ")", p->name);
      sl__http_error(c, 400, NULL, what);
      goto out;
    }
  }
  if (n == 0) {
    sl__http_error(c, 400, NULL, "give at least one topic matcher: ?match=<topic>, "
                   "?match_urlpattern=<URL pattern> (or the legacy topic=); * selects every topic");
    goto out;
  }
  /* The resume cursor (Reconciliation): the Last-Event-ID header wins over the query, and the
   * spec's last_event_id over the pre-standard lastEventID, whose clients also read the
   * pre-standard Last-Event-ID response header. An empty header is what some EventSource
   * polyfills send before they saw any id: it means none, and hides no query cursor. An empty
   * last_event_id= is a cursor all the same (a publisher that had dispatched nothing yet): it
   * names no event, so everything retained is replayed and Mercure-Last-Event-ID says
   * "earliest", as for any id history does not hold. */
  int legacy = 0;
  if (cursor == NULL && legacy_cursor) {
    cursor = legacy_cursor;
    legacy = 1;
  }
  if (r->hv[SL_H_LAST_EVENT_ID] && r->hv[SL_H_LAST_EVENT_ID][0] != '\0') {
    cursor = r->hv[SL_H_LAST_EVENT_ID];
    legacy = 0;
  }
  if (cursor && cursor[0] != '\0' && sl__check_text(cursor, strlen(cursor), &why)) {
    snprintf(what, sizeof what, "Last-Event-ID: %s", why);
    sl__http_error(c, 400, NULL, what);
    goto out;
  }
  int has_token;
  if (subscriber_auth(m, c, r, &claims, &has_token))
    goto out;
  /* With --subscriptions: each matcher's subscription, with the payload the token attaches to
   * it, read before the grants move to the subscription. */
  if (m->subs) {
    if ((tracked = calloc(n, sizeof *tracked)) == NULL) {
      sl__http_error(c, 500, NULL, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < n; i++) {
      const sl_payload_t *pl = sl__claims_payload(&claims, matchers[i], lens[i]);
      tracked[i] = (sl_subs_matcher_t){matcher_type(names[i]), matchers[i], lens[i],
                                       pl ? pl->json : NULL, pl ? pl->len : 0};
    }
  }

  /* A subscriber only ever subscribes: the subscribe half of its claims goes to the
   * subscription, the rest is freed with the claims. */
  sl_grants_t grants = {claims.subscribe, claims.subscribe_count, claims.expires, has_token};
  sl_sub_t *sub = sl__sub_new(c, sels, n, &grants, m->subs ? TRACKED_FRONT : STREAM_FRONT);
  if (sub) {
    claims.subscribe = NULL;
    claims.subscribe_count = 0;
  }
  if (sub == NULL || sl__broker_add(&d->broker, sub)) {
    if (sub)
      sl__broker_remove(&d->broker, sub);
    sl__http_error(c, 500, NULL, "out of memory");
    goto out;
  }
  stream_t *stream = stream_of_sub(sub);
  stream->base.ops = &m->stream_ops;
  /* The cursor may point into the request, which opening the stream frees. */
  char *cursor_copy = cursor ? strdup(cursor) : NULL;
  if (cursor && cursor_copy == NULL) {
    sl__broker_remove(&d->broker, sub);
    sl__http_error(c, 500, NULL, "out of memory");
    goto out;
  }
  /* Announced before the stream opens, so that a refusal can still be answered; and before the
   * replay's cursor opens, so that this subscription's own events cannot overtake it (with a
   * small --subscriptions-history they would push out what the cursor must return next). */
  if (m->subs && (e = sl__subs_open(m->subs, tracked, n, record_of(&stream->base)))) {
    free(cursor_copy);
    sl__broker_remove(&d->broker, sub);
    if (e == -ESHUTDOWN)
      sl__http_error(c, 503, "Retry-After: 5\r\n", "the hub is shutting down; reconnect shortly");
    else
      sl__http_error(c, 500, NULL, "the subscription could not be registered");
    goto out;
  }
  /* Everything stored comes from history, paged as the client reads; what arrives through the
   * inbox once the replay caught up goes live, so nothing is missed and nothing is sent twice.
   * The cursor opens now, so that the head can say whether history held the client's id. */
  int found = 0;
  if (cursor) {
    int e2 = -ENOMEM;
    if ((paging = calloc(1, sizeof *paging)) == NULL ||
        sl__sub_filter_init(&paging->filter, sub) ||
        (e2 = sl__bus_cursor_open(m->bus, cursor, UINT64_MAX, &paging->cur, &found)) ||
        (e2 = found ? remember_id(paging, cursor) : 0)) {
      free(cursor_copy);
      subs_close(m, &stream->base);
      sl__broker_remove(&d->broker, sub);
      if (e2 == -ENOMEM)
        sl__http_error(c, 500, NULL, "out of memory");
      else
        sl__http_error(c, 503, "Retry-After: 1\r\n", "history could not be read; retry shortly");
      goto out;
    }
    /* A backend that reads over the network fetches pages away from this thread. */
    paging->m = m;
    paging->call.fn = paging_call;
    sl__history_cursor_notify(paging->cur, paging_ready, paging);
  }
  sub->last_seq = d->dispatched_seq;
  stream_open(m, c, &stream->base, cursor_copy, legacy, found);
  free(cursor_copy);
  if (!(c->flags & SL_CONN_STREAM)) {
    subs_close(m, &stream->base);
    sl__broker_remove(&d->broker, sub); /* the stream never opened: nothing else owns it */
  } else if (paging) {
    /* The stream owns the replay from now on: live updates pass it by until it caught up. */
    stream->paging = paging;
    paging->conn = c;
    paging->stream = stream;
    paging = NULL;
    sl__conn_mark(c, SL_CONN_PAGING);
    paging_fill(m, c, stream);
  }
out:
  sl__selectors_release(sels, n); /* those the subscription did not take */
  free(tracked);
  paging_free(paging);
  sl__claims_free(&claims);
  sl__form_free(&form);
}
