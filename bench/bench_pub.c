/* bench_pub.c — the publisher (see bench_pub.h). Responses to pipelined HTTP/1.1 requests come
 * back in request order, so the slots form a ring: the oldest request in flight owns the next
 * response. A slot is reused only when its response has come and its write callback has run.
 */
#include "bench_pub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_payload.h"
#include "bench_report.h"

#define MAX_RECONNECTS 10
#define RECONNECT_DELAY_MS 100

enum { P_IDLE, P_CONNECTING, P_CONNECTED, P_CLOSING, P_CLOSED };

static void pub_connect(bench_pub_t *p);
static void pump(bench_pub_t *p);

static void maybe_done(bench_pub_t *p) {
  if (p->done || p->inflight > 0)
    return;
  if (p->stopping || p->next_seq >= p->cfg->events) {
    p->done = 1;
    if (p->on_done)
      p->on_done(p);
  }
}

static int on_status_complete(llhttp_t *h) {
  bench_pub_t *p = h->data;
  p->status = llhttp_get_status_code(h);
  p->err_body_len = 0;
  return 0;
}

static int on_body(llhttp_t *h, const char *at, size_t len) {
  bench_pub_t *p = h->data;
  if (p->status >= 200 && p->status < 300)
    return 0;
  size_t room = sizeof p->err_body - 1 - p->err_body_len;
  size_t k = len < room ? len : room;
  memcpy(p->err_body + p->err_body_len, at, k);
  p->err_body_len += k;
  return 0;
}

static int on_message_complete(llhttp_t *h) {
  bench_pub_t *p = h->data;
  if (p->inflight == 0)
    return HPE_USER;  /* a response nobody asked for */
  bench_pub_slot_t *slot = &p->slots[p->head];
  p->head = (p->head + 1) % p->nslots;
  p->inflight--;
  if (!llhttp_should_keep_alive(h))
    p->close_after = 1;
  if (p->status >= 200 && p->status < 300) {
    p->acked++;
    p->acked_bits[slot->seq >> 3] |= (uint8_t)(1u << (slot->seq & 7));
    p->t_last_ack_ns = uv_hrtime();
    if (p->on_ack)
      p->on_ack(p);
  } else {
    p->errors++;
    if (p->first_bad_status == 0) {
      p->first_bad_status = p->status;
      p->err_body[p->err_body_len] = '\0';
      bench_warn("publish answered HTTP %d: %s", p->status, p->err_body);
    }
  }
  return 0;
}

static void on_retry_timer(uv_timer_t *t) {
  bench_pub_t *p = t->data;
  if (!p->done && !p->stopping)
    pub_connect(p);
}

static void on_close(uv_handle_t *h) {
  bench_pub_t *p = h->data;
  p->state = P_CLOSED;
  if (p->no_reconnect)
    p->stopping = 1;
  if (p->done || p->stopping || p->next_seq >= p->cfg->events) {
    maybe_done(p);
    return;
  }
  if (p->drop_error && !p->keep_trying && p->reconnects++ >= MAX_RECONNECTS) {
    bench_warn("publish connection lost %d times, giving up",
            MAX_RECONNECTS);
    p->stopping = 1;
    maybe_done(p);
    return;
  }
  if (p->drop_error)
    uv_timer_start(&p->retry_timer, on_retry_timer, RECONNECT_DELAY_MS, 0);
  else
    pub_connect(p);
}

/* The connection is unusable (error) or closed by the server after a response: requests still
 * in flight will never be answered. */
static void drop_connection(bench_pub_t *p, int error) {
  if (p->state != P_CONNECTING && p->state != P_CONNECTED)
    return;
  p->drop_error = error;
  p->errors += p->inflight;
  p->inflight = 0;
  p->head = 0;
  p->state = P_CLOSING;
  uv_close((uv_handle_t *)&p->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char rbuf[64 * 1024];
  (void)h;
  (void)suggested;
  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  bench_pub_t *p = s->data;
  if (nread == 0 || p->state != P_CONNECTED)
    return;
  if (nread < 0) {
    if (nread != UV_EOF && !p->no_reconnect)
      bench_warn("publish connection: %s", uv_strerror((int)nread));
    drop_connection(p, 1);
    return;
  }
  if (llhttp_execute(&p->http, buf->base, (size_t)nread) != HPE_OK) {
    bench_warn("bad publish response: %s",
            llhttp_get_error_reason(&p->http));
    drop_connection(p, 1);
    return;
  }
  /* A response that closes the connection ends it for the requests behind it too. */
  if (p->close_after) {
    p->close_after = 0;
    drop_connection(p, 0);
    return;
  }
  pump(p);
  maybe_done(p);
}

static void on_write(uv_write_t *req, int status) {
  bench_pub_slot_t *slot = req->data;
  (void)status;  /* a failed write also fails the read side, which accounts for it */
  slot->writing = 0;
  bench_pub_t *p = slot->req.handle->data;
  pump(p);
}

static void send_one(bench_pub_t *p, bench_pub_slot_t *slot) {
  const bench_topic_t *tp = &p->targets->topics[p->next_seq % p->targets->ntopics];
  size_t body_len = tp->pub_body_prefix_len +
                    (p->cfg->size > BENCH_PAYLOAD_HEAD_MAX ? p->cfg->size : BENCH_PAYLOAD_HEAD_MAX);
  char *b = slot->buf;
  memcpy(b, tp->pub_head, tp->pub_head_len);
  size_t n = tp->pub_head_len;
  size_t clen_at = n;
  n += 24;  /* room for the Content-Length digits, filled in once the body is known */
  memcpy(b + n, tp->pub_body_prefix, tp->pub_body_prefix_len);
  size_t body_at = n;
  n += tp->pub_body_prefix_len;
  uint64_t now = uv_hrtime();
  n += bench_payload_build(b + n, body_len, p->run_id, p->next_seq, now, p->cfg->size);
  body_len = n - body_at;
  char digits[24];
  int dl = snprintf(digits, sizeof digits, "%zu\r\n\r\n", body_len);
  /* Shift the head right so that it ends exactly where the digits begin. */
  size_t shift = 24 - (size_t)dl;
  memmove(b + shift, b, clen_at);
  memcpy(b + shift + clen_at, digits, (size_t)dl);
  uv_buf_t ub = uv_buf_init(b + shift, (unsigned)(n - shift));
  slot->seq = p->next_seq;
  slot->req.data = slot;
  slot->writing = 1;
  if (uv_write(&slot->req, (uv_stream_t *)&p->tcp, &ub, 1, on_write) < 0) {
    slot->writing = 0;
    drop_connection(p, 1);
    return;
  }
  if (p->published == 0)
    p->t_first_send_ns = now;
  p->published++;
  p->next_seq++;
  p->inflight++;
}

static void pump(bench_pub_t *p) {
  while (p->state == P_CONNECTED && !p->stopping && p->next_seq < p->cfg->events &&
         p->inflight < p->nslots) {
    if (p->cfg->rate > 0) {
      uint64_t elapsed = uv_hrtime() - p->t_rate0_ns;
      uint64_t allowed = (uint64_t)((double)elapsed * p->cfg->rate / 1e9) + 1;
      if (p->next_seq >= allowed)
        return;
    }
    bench_pub_slot_t *slot = &p->slots[(p->head + p->inflight) % p->nslots];
    if (slot->writing)
      return;
    send_one(p, slot);
  }
}

static void on_timer(uv_timer_t *t) {
  bench_pub_t *p = t->data;
  pump(p);
}

static void on_connect(uv_connect_t *req, int status) {
  bench_pub_t *p = req->data;
  if (status == UV_ECANCELED || p->state != P_CONNECTING)
    return;
  if (status < 0) {
    bench_warn("publish connect: %s", uv_strerror(status));
    drop_connection(p, 1);
    return;
  }
  p->state = P_CONNECTED;
  p->close_after = 0;
  llhttp_init(&p->http, HTTP_RESPONSE, &p->settings);
  p->http.data = p;
  uv_tcp_nodelay(&p->tcp, 1);
  if (uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) < 0) {
    drop_connection(p, 1);
    return;
  }
  pump(p);
}

static void pub_connect(bench_pub_t *p) {
  const bench_addr_t *a = &p->targets->pub_addr;
  if (uv_tcp_init(p->loop, &p->tcp) < 0) {
    p->stopping = 1;
    maybe_done(p);
    return;
  }
  p->tcp.data = p;
  p->connect_req.data = p;
  p->state = P_CONNECTING;
  int rc = uv_tcp_connect(&p->connect_req, &p->tcp, (const struct sockaddr *)&a->ss, on_connect);
  if (rc < 0) {
    bench_warn("publish connect: %s", uv_strerror(rc));
    drop_connection(p, 1);
  }
}

int bench_pub_init(bench_pub_t *p, uv_loop_t *loop, const bench_config_t *cfg,
                   const bench_targets_t *t, uint32_t run_id, bench_pub_cb on_ack,
                   bench_pub_cb on_done) {
  memset(p, 0, sizeof *p);
  p->loop = loop;
  p->cfg = cfg;
  p->targets = t;
  p->run_id = run_id;
  p->on_ack = on_ack;
  p->on_done = on_done;
  p->nslots = cfg->pipeline;
  p->acked_bits_len = (size_t)((cfg->events + 7) / 8);
  p->acked_bits = calloc(p->acked_bits_len ? p->acked_bits_len : 1, 1);
  p->slots = calloc(p->nslots, sizeof *p->slots);
  if (p->acked_bits == NULL || p->slots == NULL)
    goto fail;
  size_t longest = 0;
  for (uint32_t k = 0; k < t->ntopics; k++) {
    size_t n = t->topics[k].pub_head_len + t->topics[k].pub_body_prefix_len;
    if (n > longest)
      longest = n;
  }
  size_t cap = longest + 24 + (cfg->size > BENCH_PAYLOAD_HEAD_MAX ? cfg->size : BENCH_PAYLOAD_HEAD_MAX);
  for (uint32_t i = 0; i < p->nslots; i++) {
    p->slots[i].buf = malloc(cap);
    if (p->slots[i].buf == NULL)
      goto fail;
  }
  llhttp_settings_init(&p->settings);
  p->settings.on_status_complete = on_status_complete;
  p->settings.on_body = on_body;
  p->settings.on_message_complete = on_message_complete;
  if (uv_timer_init(loop, &p->timer) < 0 || uv_timer_init(loop, &p->retry_timer) < 0)
    goto fail;
  p->timer.data = p->retry_timer.data = p;
  p->state = P_IDLE;
  return 0;
fail:
  bench_pub_free(p);
  return -ENOMEM;
}

void bench_pub_start(bench_pub_t *p) {
  p->t_rate0_ns = uv_hrtime();
  if (p->cfg->events == 0) {
    maybe_done(p);
    return;
  }
  if (p->cfg->rate > 0)
    uv_timer_start(&p->timer, on_timer, 1, 1);
  pub_connect(p);
}

void bench_pub_stop(bench_pub_t *p) {
  p->stopping = 1;
  maybe_done(p);
}

void bench_pub_close(bench_pub_t *p) {
  p->stopping = 1;
  p->done = 1;
  if (p->state == P_CONNECTING || p->state == P_CONNECTED) {
    p->state = P_CLOSING;
    uv_close((uv_handle_t *)&p->tcp, on_close);
  }
  if (!uv_is_closing((uv_handle_t *)&p->timer))
    uv_close((uv_handle_t *)&p->timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&p->retry_timer))
    uv_close((uv_handle_t *)&p->retry_timer, NULL);
}

void bench_pub_free(bench_pub_t *p) {
  for (uint32_t i = 0; p->slots && i < p->nslots; i++)
    free(p->slots[i].buf);
  free(p->slots);
  free(p->acked_bits);
  p->slots = NULL;
  p->acked_bits = NULL;
}
