/* bench_stream.c — llhttp glue for subscriber responses (see bench_stream.h). The callbacks do no
 * more than forward: the status on headers_complete, body spans to the SSE parser, and the end
 * of the message as the "terminated" flag.
 */
#include "bench_stream.h"

#include <errno.h>

static int on_headers_complete(llhttp_t *h) {
  bench_stream_t *s = h->data;
  s->head_done = 1;
  s->status = llhttp_get_status_code(h);
  if (s->on_head)
    s->on_head(s, s->status);
  return 0;
}

static int on_body(llhttp_t *h, const char *at, size_t len) {
  bench_stream_t *s = h->data;
  bench_sse_feed(&s->sse, at, len);
  return 0;
}

static int on_message_complete(llhttp_t *h) {
  bench_stream_t *s = h->data;
  s->terminated = 1;
  return 0;
}

static llhttp_settings_t settings;
static int settings_ready;

void bench_stream_init(bench_stream_t *s, void *owner, bench_stream_head_cb on_head,
                       bench_sse_event_cb on_event) {
  if (!settings_ready) {
    llhttp_settings_init(&settings);
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    settings_ready = 1;
  }
  s->owner = owner;
  s->on_head = on_head;
  bench_sse_init(&s->sse, on_event, owner);
  bench_stream_restart(s);
}

void bench_stream_restart(bench_stream_t *s) {
  llhttp_init(&s->http, HTTP_RESPONSE, &settings);
  s->http.data = s;
  s->status = 0;
  s->head_done = 0;
  s->terminated = 0;
  s->failed = 0;
  bench_sse_reconnect(&s->sse);
}

int bench_stream_feed(bench_stream_t *s, const char *buf, size_t len) {
  if (s->failed)
    return -EPROTO;
  /* Bytes after the end of the one response a subscription gets are a protocol error. */
  if (s->terminated && len > 0) {
    s->failed = 1;
    return -EPROTO;
  }
  if (llhttp_execute(&s->http, buf, len) != HPE_OK) {
    s->failed = 1;
    return -EPROTO;
  }
  return 0;
}

int bench_stream_eof(bench_stream_t *s) {
  if (!s->terminated && !s->failed && s->head_done && llhttp_message_needs_eof(&s->http))
    llhttp_finish(&s->http);
  return bench_sse_at_boundary(&s->sse) ? BENCH_END_CLEAN : BENCH_END_PARTIAL;
}
