/* bench_stream.h — one HTTP response read as an event stream: llhttp parses the status line,
 * headers and the chunked or EOF-delimited body, and the body goes to a bench_sse_t. This is the
 * only file of the load generator that knows llhttp. The struct is embedded in its owner (a
 * subscriber) and holds no heap memory.
 */
#ifndef BENCH_STREAM_H
#define BENCH_STREAM_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_sse.h"

typedef struct bench_stream_s bench_stream_t;
/* Called once the response head is complete; status is the HTTP status code. */
typedef void (*bench_stream_head_cb)(bench_stream_t *s, int status);

struct bench_stream_s {
  llhttp_t http;
  bench_sse_t sse;
  bench_stream_head_cb on_head;
  void *owner;
  int status;
  uint8_t head_done;
  uint8_t terminated;  /* the body ended by its own framing (chunked terminator, length) */
  uint8_t failed;      /* the bytes were not a valid HTTP response */
};

/* How a stream ended, as the shutdown report classifies it. */
enum {
  BENCH_END_NONE = 0,
  BENCH_END_CLEAN,    /* EOF between events (after the chunked terminator or without one) */
  BENCH_END_PARTIAL,  /* EOF, or the terminator, in the middle of an event */
  BENCH_END_RESET,    /* ECONNRESET or another socket error */
  BENCH_END_TIMEOUT,  /* still open when the end timeout passed */
};

void bench_stream_init(bench_stream_t *s, void *owner, bench_stream_head_cb on_head,
                       bench_sse_event_cb on_event);
/* Prepares for a new response on a new connection; keeps the SSE last id and retry. */
void bench_stream_restart(bench_stream_t *s);
/* 0, or -EPROTO once the bytes stop being a valid response (the stream is then failed). */
int bench_stream_feed(bench_stream_t *s, const char *buf, size_t len);
/* The peer closed the connection: BENCH_END_CLEAN or BENCH_END_PARTIAL. */
int bench_stream_eof(bench_stream_t *s);

#endif
