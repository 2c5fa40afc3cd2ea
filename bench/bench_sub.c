/* bench_sub.c — the subscriber side of sluice-bench (see bench_sub.h). Subscribers live in one
 * array allocated up front and freed after the loop has closed every handle; nothing is
 * allocated per event. One read buffer serves every connection, since a read callback consumes
 * its bytes before the next read. A subscriber's life: CONNECTING → WAIT_HEAD → STREAMING →
 * CLOSING → DONE, or, under --resume, CLOSING → WAIT_RETRY → CONNECTING again.
 */
#include "bench_sub.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench_ipc.h"
#include "bench_payload.h"
#include "bench_report.h"
#include "bench_seqset.h"
#include "bench_stream.h"

#define TICK_MS 50
#define PROGRESS_NS 250000000ull
#define MAX_RECONNECTS 1000   /* attempts per subscriber under --resume */
#define RETRY_FLOOR_MS 50     /* least delay after a failed reconnection attempt */
#define READ_BUF (256 * 1024)

enum { S_IDLE, S_CONNECTING, S_WAIT_HEAD, S_STREAMING, S_CLOSING, S_WAIT_RETRY, S_DONE };
enum { AFTER_NOTHING, AFTER_RETRY, AFTER_CHURN };

typedef struct worker_s worker_t;

typedef struct sub_s {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  bench_stream_t stream;
  bench_seqset_t seen;
  worker_t *w;
  uv_timer_t *retry_timer;  /* allocated on the first reconnection; freed in its close cb */
  uint64_t index;           /* global subscriber index */
  uint64_t t_attempt_ns;    /* start of the current connection attempt */
  uint64_t t_end_ns;        /* when the last stream ended */
  uint64_t t_first_end_ns;  /* when the first stream ended (--signal-after's end_ms) */
  uint32_t topic;
  uint32_t attempts;        /* reconnection attempts so far */
  uint8_t state;
  uint8_t handle_open;      /* tcp is initialised and not yet closed */
  uint8_t after_close;
  uint8_t ever_connected;   /* got a 200 at least once */
  uint8_t end_reason;       /* how its first stream ended (BENCH_END_*) */
  uint8_t resumed;          /* the current stream is a reconnection */
  uint8_t initial;          /* the current attempt is part of the connect phase */
} sub_t;

struct worker_s {
  uv_loop_t loop;
  const bench_config_t *cfg;
  const bench_worker_args_t *args;
  sub_t *subs;
  uint64_t n;
  uint64_t next_start;      /* connect phase: next subscriber to start */
  uint64_t inflight;        /* connect phase: attempts not yet finished */
  uint32_t universe;        /* topic-local indices: ceil(events / topics) */
  uint32_t src_rr;          /* churn: rotating source address */
  uint64_t now_ns;
  uint64_t deadline_ns;
  uint64_t churn_end_ns;
  uint64_t sigterm_ns;
  uint64_t last_activity_ns;
  uint64_t last_progress_ns;
  uint64_t streams_unended;  /* subscribers whose first stream has not ended yet */
  uint8_t *acked;           /* FINISH's bitmap, or NULL */
  uint64_t *acked_per_topic;
  uint64_t published;
  int finish_received;
  int connected_sent;
  int finalized;
  int parent_gone;
  uv_poll_t ipc;
  uv_timer_t tick;
  bench_result_t r;
  char rbuf[READ_BUF];
};

static void sub_connect(sub_t *s);
static void sub_close(sub_t *s, int after);
static void check_done(worker_t *w);

static const bench_addr_t *sub_addr(const sub_t *s) {
  const bench_topic_t *tp = &s->w->args->targets->topics[s->topic];
  return s->resumed ? &tp->resub_addr : &tp->sub_addr;
}

/* --- events ------------------------------------------------------------------------------ */

static void on_event(void *ctx, const bench_sse_event_t *ev) {
  sub_t *s = ctx;
  worker_t *w = s->w;
  if (s->state != S_STREAMING)
    return;
  if (ev->type_len == 5 && memcmp(ev->type, "close", 5) == 0) {
    w->r.close_frames++;
    if (ev->retry_ms >= 0)
      bench_msh_record(&w->r.retry_ms, (uint64_t)ev->retry_ms);
    return;
  }
  uint64_t seq, ts;
  if (bench_payload_parse(ev->data, ev->data_kept, w->args->run_id, &seq, &ts) < 0 ||
      seq >= w->cfg->events) {
    w->r.foreign++;
    return;
  }
  uint32_t k = w->cfg->topics;
  if (seq % k != s->topic) {
    w->r.misrouted++;
    return;
  }
  int rc = bench_seqset_add(&s->seen, (uint32_t)(seq / k), w->universe);
  if (rc < 0) {
    w->r.tracking_oom++;
    return;
  }
  if (rc == BENCH_SEQ_DUPLICATE) {
    w->r.duplicates++;
    return;
  }
  if (rc == BENCH_SEQ_REORDERED)
    w->r.out_of_order++;
  w->r.delivered++;
  if (s->resumed)
    w->r.recovered++;
  bench_hist_record(&w->r.latency, w->now_ns > ts ? w->now_ns - ts : 0);
  if (w->r.t_first_delivery_ns == 0)
    w->r.t_first_delivery_ns = w->now_ns;
  w->r.t_last_delivery_ns = w->now_ns;
  w->last_activity_ns = w->now_ns;
}

/* --- connection attempts -------------------------------------------------------------------- */

static void start_more(worker_t *w) {
  while (w->next_start < w->n && w->inflight < w->cfg->concurrency) {
    sub_t *s = &w->subs[w->next_start++];
    s->initial = 1;
    w->inflight++;
    sub_connect(s);
  }
  if (!w->connected_sent && w->next_start == w->n && w->inflight == 0 &&
      w->cfg->mode != BENCH_MODE_CHURN) {
    bench_msg_connected_t m = {w->r.connected, w->r.connect_failed, w->r.t_connected_ns};
    w->connected_sent = 1;
    if (bench_ipc_send(w->args->fd, BENCH_MSG_CONNECTED, &m, sizeof m, NULL, 0) < 0)
      w->parent_gone = 1;
  }
}

/* The current attempt ended without a 200 (connect error, other status, EOF or timeout). */
static void attempt_failed(sub_t *s) {
  worker_t *w = s->w;
  if (w->cfg->mode == BENCH_MODE_CHURN) {
    w->r.churn_errors++;
    sub_close(s, AFTER_CHURN);
    return;
  }
  if (s->initial) {
    s->initial = 0;
    w->r.connect_failed++;
    w->inflight--;
    sub_close(s, AFTER_NOTHING);
    start_more(w);
    return;
  }
  w->r.reconnect_failed++;
  sub_close(s, s->attempts < MAX_RECONNECTS ? AFTER_RETRY : AFTER_NOTHING);
}

/* The stream that had a 200 is over; the first end of each subscriber is classified. */
static void stream_ended(sub_t *s, int reason) {
  worker_t *w = s->w;
  if (s->end_reason == BENCH_END_NONE && !s->resumed) {
    s->end_reason = (uint8_t)reason;
    w->streams_unended--;
    switch (reason) {
    case BENCH_END_CLEAN: w->r.ended_clean++; break;
    case BENCH_END_PARTIAL: w->r.ended_partial++; break;
    case BENCH_END_RESET: w->r.ended_reset++; break;
    default: w->r.ended_timeout++; break;
    }
    if (reason == BENCH_END_PARTIAL) {
      w->r.partial_frames++;
      w->r.partial_bytes += bench_sse_partial_bytes(&s->stream.sse);
    }
    if (reason != BENCH_END_TIMEOUT && w->now_ns > w->r.t_last_end_ns)
      w->r.t_last_end_ns = w->now_ns;
    s->t_first_end_ns = w->now_ns;
  }
  s->t_end_ns = w->now_ns;
  int retry = w->cfg->resume && reason != BENCH_END_TIMEOUT && !w->finalized &&
              s->attempts < MAX_RECONNECTS;
  sub_close(s, retry ? AFTER_RETRY : AFTER_NOTHING);
}

static void on_head(bench_stream_t *st, int status) {
  sub_t *s = st->owner;
  worker_t *w = s->w;
  if (s->state != S_WAIT_HEAD)
    return;
  if (status != 200) {
    w->r.http_errors++;
    if (w->r.first_bad_status == 0)
      w->r.first_bad_status = (uint64_t)status;
    attempt_failed(s);
    return;
  }
  w->now_ns = uv_hrtime();
  if (w->cfg->mode == BENCH_MODE_CHURN) {
    w->r.churn_accepted++;
    sub_close(s, AFTER_CHURN);
    return;
  }
  s->state = S_STREAMING;
  w->last_activity_ns = w->now_ns;
  if (s->resumed) {
    w->r.reconnected++;
    bench_msh_record(&w->r.reconnect_ms, (w->now_ns - s->t_end_ns) / 1000000);
  }
  if (!s->ever_connected) {
    s->ever_connected = 1;
    w->r.connected++;
    w->streams_unended++;
  }
  if (s->initial) {
    s->initial = 0;
    w->r.t_connected_ns = w->now_ns;
    w->inflight--;
    start_more(w);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  sub_t *s = h->data;
  buf->base = s->w->rbuf;
  buf->len = sizeof s->w->rbuf;
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  sub_t *s = h->data;
  worker_t *w = s->w;
  if (nread == 0 || s->state == S_CLOSING)
    return;
  w->now_ns = uv_hrtime();
  if (nread > 0) {
    if (bench_stream_feed(&s->stream, buf->base, (size_t)nread) < 0 && s->state != S_CLOSING) {
      w->r.stream_errors++;
      if (s->state == S_STREAMING)
        stream_ended(s, BENCH_END_RESET);
      else
        attempt_failed(s);
    }
    return;
  }
  if (s->state != S_STREAMING) {
    attempt_failed(s);
    return;
  }
  stream_ended(s, nread == UV_EOF ? bench_stream_eof(&s->stream) : BENCH_END_RESET);
}

typedef struct write_req_s {
  uv_write_t req;
  char buf[];
} write_req_t;

static void on_write(uv_write_t *req, int status) {
  (void)status;  /* a failed write shows up as a read error or EOF */
  free(req);
}

static void on_connect(uv_connect_t *req, int status) {
  sub_t *s = req->data;
  if (status == UV_ECANCELED || s->state != S_CONNECTING)
    return;
  if (status < 0) {
    if (s->initial && s->w->r.first_connect_error == 0)
      s->w->r.first_connect_error = status;
    attempt_failed(s);
    return;
  }
  const bench_topic_t *tp = &s->w->args->targets->topics[s->topic];
  const char *head = s->resumed ? tp->resub_head : tp->sub_head;
  size_t head_len = s->resumed ? tp->resub_head_len : tp->sub_head_len;
  const bench_sse_t *sse = &s->stream.sse;
  size_t cap = head_len + sizeof "Last-Event-ID: \r\n\r\n" + sse->last_id_len;
  write_req_t *wr = malloc(sizeof *wr + cap);
  if (wr == NULL) {
    attempt_failed(s);
    return;
  }
  size_t len = head_len;
  memcpy(wr->buf, head, head_len);
  if (s->resumed && sse->last_id_len > 0) {
    len += (size_t)sprintf(wr->buf + len, "Last-Event-ID: %.*s\r\n", (int)sse->last_id_len,
                           sse->last_id);
  }
  memcpy(wr->buf + len, "\r\n", 2);
  len += 2;
  uv_buf_t b = uv_buf_init(wr->buf, (unsigned)len);
  s->state = S_WAIT_HEAD;
  if (uv_write(&wr->req, (uv_stream_t *)&s->tcp, &b, 1, on_write) < 0) {
    free(wr);
    attempt_failed(s);
    return;
  }
  if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) < 0)
    attempt_failed(s);
}

static int bind_source(sub_t *s, uint32_t which) {
  worker_t *w = s->w;
  if (w->args->nsources <= 1 || w->args->targets->ipv6)
    return 0;
  uv_os_fd_t fd;
  int rc = uv_fileno((uv_handle_t *)&s->tcp, &fd);
  if (rc < 0)
    return rc;
  /* Let connect() pick the port per destination, so ports are not reserved per source. */
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl(0x7f000001u + which % w->args->nsources);
  return uv_tcp_bind(&s->tcp, (const struct sockaddr *)&src, 0);
}

static void sub_connect(sub_t *s) {
  worker_t *w = s->w;
  const bench_addr_t *addr = sub_addr(s);
  w->now_ns = uv_hrtime();
  s->t_attempt_ns = w->now_ns;
  s->state = S_CONNECTING;
  bench_stream_restart(&s->stream);
  int rc = uv_tcp_init_ex(&w->loop, &s->tcp, addr->ss.ss_family);
  if (rc < 0) {
    s->state = S_DONE;
    if (s->initial) {
      s->initial = 0;
      w->r.connect_failed++;
      w->inflight--;
    } else if (w->cfg->mode == BENCH_MODE_CHURN) {
      w->r.churn_errors++;
    }
    return;
  }
  s->tcp.data = s;
  s->handle_open = 1;
  s->connect_req.data = s;
  uint32_t which = w->cfg->mode == BENCH_MODE_CHURN ? w->src_rr++ : (uint32_t)s->index;
  rc = bind_source(s, which);
  if (rc == 0)
    rc = uv_tcp_connect(&s->connect_req, &s->tcp, (const struct sockaddr *)&addr->ss, on_connect);
  if (rc < 0) {
    if (s->initial && w->r.first_connect_error == 0)
      w->r.first_connect_error = rc;
    attempt_failed(s);
  }
}

/* --- closing and reconnecting ---------------------------------------------------------------- */

static void on_retry_timer(uv_timer_t *t) {
  sub_t *s = t->data;
  if (s->state != S_WAIT_RETRY || s->w->finalized)
    return;
  s->attempts++;
  s->resumed = 1;
  sub_connect(s);
}

static void on_retry_timer_close(uv_handle_t *h) {
  free(h);
}

static void schedule_retry(sub_t *s) {
  worker_t *w = s->w;
  int64_t delay = w->cfg->reconnect_now ? 0 : s->stream.sse.retry_ms;
  if (delay < 0)
    delay = BENCH_DEFAULT_RETRY_MS;
  /* A hub that is still restarting refuses at once; a retry: of a few ms must not use up the
   * attempts before it is back. */
  if (s->attempts > 0 && delay < RETRY_FLOOR_MS)
    delay = RETRY_FLOOR_MS;
  if (s->retry_timer == NULL) {
    s->retry_timer = malloc(sizeof *s->retry_timer);
    if (s->retry_timer == NULL || uv_timer_init(&w->loop, s->retry_timer) < 0) {
      free(s->retry_timer);
      s->retry_timer = NULL;
      s->state = S_DONE;
      return;
    }
    s->retry_timer->data = s;
  }
  s->state = S_WAIT_RETRY;
  uv_timer_start(s->retry_timer, on_retry_timer, (uint64_t)delay, 0);
}

static void on_close(uv_handle_t *h) {
  sub_t *s = h->data;
  worker_t *w = s->w;
  s->handle_open = 0;
  s->state = S_DONE;
  if (w->finalized)
    return;
  if (s->after_close == AFTER_RETRY) {
    schedule_retry(s);
  } else if (s->after_close == AFTER_CHURN) {
    w->now_ns = uv_hrtime();
    if (w->now_ns < w->churn_end_ns)
      sub_connect(s);
    else
      check_done(w);  /* the last churner to close ends the run without waiting for a tick */
  }
}

static void sub_close(sub_t *s, int after) {
  if (!s->handle_open || s->state == S_CLOSING)
    return;
  s->state = S_CLOSING;
  s->after_close = (uint8_t)after;
  uv_close((uv_handle_t *)&s->tcp, on_close);
}

/* --- accounting at the end ------------------------------------------------------------------- */

typedef struct lost_ctx_s {
  const uint32_t *pre;
  uint32_t k, topic;
  uint64_t acked_held;
} lost_ctx_t;

static void count_range(void *ctx, uint32_t lo, uint32_t hi) {
  lost_ctx_t *c = ctx;
  c->acked_held += c->pre[((uint64_t)hi + 1) * c->k + c->topic] - c->pre[(uint64_t)lo * c->k + c->topic];
}

/* expected and lost over the subscribers that ever connected. pre[s] counts the acked events
 * below s on s's topic, so a received range costs two lookups whatever its length. */
static void account_losses(worker_t *w) {
  uint64_t k = w->cfg->topics, u = w->universe;
  size_t len = (size_t)((u + 1) * k);
  uint32_t *pre = malloc(len * sizeof *pre);
  if (pre == NULL) {
    bench_warn("out of memory counting losses");
    w->r.tracking_oom++;
    return;
  }
  for (size_t i = 0; i < len; i++) {
    if (i < k) {
      pre[i] = 0;
      continue;
    }
    size_t prev = i - k;
    int acked = w->acked && prev < w->published && (w->acked[prev >> 3] >> (prev & 7) & 1);
    pre[i] = pre[prev] + (uint32_t)acked;
  }
  for (uint64_t i = 0; i < w->n; i++) {
    sub_t *s = &w->subs[i];
    if (!s->ever_connected)
      continue;
    uint64_t expected = pre[u * k + s->topic];
    lost_ctx_t c = {pre, (uint32_t)k, s->topic, 0};
    bench_seqset_each(&s->seen, w->universe, count_range, &c);
    w->r.expected += expected;
    w->r.lost += expected - c.acked_held;
  }
  free(pre);
}

/* end_ms: SIGTERM to the end of each stream that was open at the SIGTERM and ended before
 * --end-timeout. Counted here, not as streams end, because a stream may end before this worker
 * has read the coordinator's SIGNALED (both arrive in one loop iteration, in either order). */
static void record_end_times(worker_t *w) {
  if (w->sigterm_ns == 0)
    return;
  for (uint64_t i = 0; i < w->n; i++) {
    const sub_t *s = &w->subs[i];
    if (s->end_reason == BENCH_END_NONE || s->end_reason == BENCH_END_TIMEOUT ||
        s->t_first_end_ns < w->sigterm_ns)
      continue;
    bench_msh_record(&w->r.end_ms, (s->t_first_end_ns - w->sigterm_ns) / 1000000);
  }
}

static void finalize(worker_t *w) {
  if (w->finalized)
    return;
  w->finalized = 1;
  w->now_ns = uv_hrtime();
  for (uint64_t i = 0; i < w->n; i++) {
    sub_t *s = &w->subs[i];
    if (w->sigterm_ns && s->ever_connected && s->end_reason == BENCH_END_NONE && !s->resumed &&
        (s->state == S_STREAMING || s->state == S_WAIT_HEAD))
      stream_ended(s, BENCH_END_TIMEOUT);
  }
  if (w->cfg->mode != BENCH_MODE_CHURN)
    account_losses(w);
  record_end_times(w);
  for (uint64_t i = 0; i < w->n; i++) {
    sub_t *s = &w->subs[i];
    sub_close(s, AFTER_NOTHING);
    if (s->retry_timer) {
      uv_close((uv_handle_t *)s->retry_timer, on_retry_timer_close);
      s->retry_timer = NULL;
    }
  }
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_close((uv_handle_t *)&w->ipc, NULL);
  w->r.subscribers = w->n;
  if (!w->parent_gone &&
      bench_ipc_send(w->args->fd, BENCH_MSG_RESULT, &w->r, sizeof w->r, NULL, 0) < 0)
    w->parent_gone = 1;
}

/* Every subscriber under --resume is settled: given up, or reconnected and holding at least as
 * many events as were acknowledged on its topic. */
static int resume_settled(const worker_t *w) {
  for (uint64_t i = 0; i < w->n; i++) {
    const sub_t *s = &w->subs[i];
    if (!s->ever_connected || s->state == S_DONE)
      continue;
    if (s->state == S_STREAMING && s->resumed && s->seen.count >= w->acked_per_topic[s->topic])
      continue;
    return 0;
  }
  return 1;
}

static int reconnections_pending(const worker_t *w) {
  for (uint64_t i = 0; i < w->n; i++) {
    uint8_t st = w->subs[i].state;
    if (st == S_WAIT_RETRY || st == S_CONNECTING || st == S_WAIT_HEAD)
      return 1;
  }
  return 0;
}

static void check_done(worker_t *w) {
  if (w->finalized)
    return;
  if (w->now_ns >= w->deadline_ns || w->parent_gone) {
    finalize(w);
    return;
  }
  if (w->cfg->mode == BENCH_MODE_CHURN) {
    if (w->now_ns < w->churn_end_ns)
      return;
    for (uint64_t i = 0; i < w->n; i++)
      if (w->subs[i].handle_open)
        sub_close(&w->subs[i], AFTER_NOTHING);
    for (uint64_t i = 0; i < w->n; i++)
      if (w->subs[i].handle_open)
        return;
    finalize(w);
    return;
  }
  if (!w->finish_received)
    return;
  if (w->sigterm_ns) {
    uint64_t end_deadline = w->sigterm_ns + (uint64_t)(w->cfg->end_timeout * 1e9);
    if (w->streams_unended > 0 && w->now_ns < end_deadline)
      return;
    if (w->streams_unended > 0) {
      for (uint64_t i = 0; i < w->n; i++) {
        sub_t *s = &w->subs[i];
        if (s->ever_connected && s->end_reason == BENCH_END_NONE)
          stream_ended(s, BENCH_END_TIMEOUT);
      }
    }
  }
  /* Under --resume, wait while reconnections are pending or events still arrive, until every
   * subscriber has what was acknowledged on its topic. */
  if (w->cfg->resume && w->acked_per_topic && !resume_settled(w)) {
    uint64_t quiet = (uint64_t)(w->cfg->drain_wait * 1e9);
    if (reconnections_pending(w) || w->now_ns - w->last_activity_ns < quiet)
      return;
  }
  finalize(w);
}

/* --- coordinator messages and the tick ------------------------------------------------------- */

static void on_ipc(uv_poll_t *p, int status, int events) {
  worker_t *w = p->data;
  (void)events;
  uint32_t type;
  void *body = NULL;
  size_t len;
  w->now_ns = uv_hrtime();
  if (status < 0 || bench_ipc_recv(w->args->fd, &type, &body, &len) < 0) {
    w->parent_gone = 1;
    uv_poll_stop(p);
    check_done(w);
    return;
  }
  if (type == BENCH_MSG_SIGNALED && len == sizeof(bench_msg_signaled_t)) {
    w->sigterm_ns = ((bench_msg_signaled_t *)body)->sigterm_ns;
  } else if (type == BENCH_MSG_FINISH && len >= sizeof(bench_msg_finish_t)) {
    bench_msg_finish_t *f = body;
    if (len == sizeof *f + f->bitmap_len && f->bitmap_len * 8 >= f->published) {
      w->published = f->published;
      free(w->acked);
      w->acked = malloc(f->bitmap_len ? f->bitmap_len : 1);
      free(w->acked_per_topic);
      w->acked_per_topic = calloc(w->cfg->topics, sizeof *w->acked_per_topic);
      if (w->acked && w->acked_per_topic) {
        memcpy(w->acked, (char *)body + sizeof *f, f->bitmap_len);
        for (uint64_t q = 0; q < w->published; q++)
          if (w->acked[q >> 3] >> (q & 7) & 1)
            w->acked_per_topic[q % w->cfg->topics]++;
      } else {
        w->published = 0;
      }
    }
    w->finish_received = 1;
    w->last_activity_ns = w->now_ns;
    if (f->deadline)
      w->deadline_ns = w->now_ns;
  }
  free(body);
  check_done(w);
}

static void on_tick(uv_timer_t *t) {
  worker_t *w = t->data;
  w->now_ns = uv_hrtime();
  if (w->cfg->mode != BENCH_MODE_CHURN) {
    uint64_t limit = (uint64_t)(w->cfg->connect_timeout * 1e9);
    for (uint64_t i = 0; i < w->next_start; i++) {
      sub_t *s = &w->subs[i];
      if ((s->state == S_CONNECTING || s->state == S_WAIT_HEAD) &&
          w->now_ns - s->t_attempt_ns > limit)
        attempt_failed(s);
    }
  }
  if (w->args->progress && w->now_ns - w->last_progress_ns >= PROGRESS_NS && !w->parent_gone) {
    bench_msg_progress_t m = {w->r.connected, w->r.delivered,
                              w->r.ended_clean + w->r.ended_partial + w->r.ended_reset,
                              w->r.churn_accepted};
    w->last_progress_ns = w->now_ns;
    if (bench_ipc_send(w->args->fd, BENCH_MSG_PROGRESS, &m, sizeof m, NULL, 0) < 0)
      w->parent_gone = 1;
  }
  check_done(w);
}

int bench_worker_main(const bench_worker_args_t *a) {
  worker_t *w = calloc(1, sizeof *w);
  if (w == NULL)
    return 1;
  int status = 1;
  w->cfg = a->cfg;
  w->args = a;
  w->n = a->count;
  w->universe = (uint32_t)((a->cfg->events + a->cfg->topics - 1) / a->cfg->topics);
  w->deadline_ns = a->t_start_ns + (uint64_t)(a->cfg->timeout * 1e9);
  w->churn_end_ns = a->t_start_ns + (uint64_t)(a->cfg->churn_seconds * 1e9);
  w->subs = calloc(w->n ? w->n : 1, sizeof *w->subs);
  if (w->subs == NULL || uv_loop_init(&w->loop) < 0)
    goto free_worker;
  for (uint64_t i = 0; i < w->n; i++) {
    sub_t *s = &w->subs[i];
    s->w = w;
    s->index = a->first + i;
    s->topic = (uint32_t)(s->index % a->cfg->topics);
    bench_stream_init(&s->stream, s, on_head, on_event);
  }
  uv_timer_init(&w->loop, &w->tick);
  w->tick.data = w;
  uv_poll_init(&w->loop, &w->ipc, a->fd);
  w->ipc.data = w;
  uv_poll_start(&w->ipc, UV_READABLE, on_ipc);
  uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
  w->now_ns = uv_hrtime();
  w->last_activity_ns = w->now_ns;

  if (a->cfg->mode == BENCH_MODE_CHURN) {
    for (uint64_t i = 0; i < w->n; i++)
      sub_connect(&w->subs[i]);
  } else {
    start_more(w);
  }
  uv_run(&w->loop, UV_RUN_DEFAULT);
  status = w->finalized && !w->parent_gone ? 0 : 1;
  uv_loop_close(&w->loop);
  for (uint64_t i = 0; i < w->n; i++)
    bench_seqset_free(&w->subs[i].seen);
free_worker:
  free(w->acked_per_topic);
  free(w->acked);
  free(w->subs);
  free(w);
  return status;
}
