/* bench_sse.h — an incremental text/event-stream parser for the load generator. It is fed the
 * body bytes of one stream in pieces of any size and calls back once per dispatched event. It
 * never allocates: it keeps only what the benchmark needs from each event (the first bytes of
 * the data, the event type, the id, a retry: announced in the event) in fixed buffers inside
 * the struct, and counts the rest. Line ends may be CRLF, LF or CR, as the SSE format allows.
 */
#ifndef BENCH_SSE_H
#define BENCH_SSE_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_SSE_DATA_PREFIX 64  /* bytes of an event's data kept for the payload header */
#define BENCH_SSE_TYPE_MAX 32     /* bytes of the event type kept */
#define BENCH_SSE_ID_MAX 200      /* longer ids are kept truncated and flagged */

typedef struct bench_sse_event_s {
  const char *data;      /* first min(data_len, BENCH_SSE_DATA_PREFIX) bytes, lines joined by LF */
  size_t data_kept;
  uint64_t data_len;     /* full length of the data, without the trailing LF */
  const char *type;      /* "" when the event had no event: field */
  size_t type_len;
  int64_t retry_ms;      /* retry: given inside this event, or -1 */
} bench_sse_event_t;

typedef void (*bench_sse_event_cb)(void *ctx, const bench_sse_event_t *ev);

typedef struct bench_sse_s {
  bench_sse_event_cb on_event;
  void *ctx;
  uint64_t events;          /* events dispatched */
  uint64_t pending_bytes;   /* bytes of field lines since the last blank line */
  int64_t retry_ms;         /* reconnection time last announced on the stream, or -1 */
  int64_t retry_in_event;   /* retry: inside the current event, or -1 */
  int64_t retry_acc;        /* digits of the retry: line being read, or -1 */
  uint64_t data_len;
  uint32_t data_lines;
  uint32_t line_bytes;      /* bytes of the current, unfinished line */
  uint8_t line_state;
  uint8_t field;
  uint8_t name_len;
  uint8_t skip_lf;          /* the previous line ended with CR: an LF next is part of it */
  uint8_t retry_bad;
  uint8_t id_truncated;     /* the id being received did not fit */
  uint8_t last_id_truncated;
  uint8_t data_kept;
  uint8_t type_len;
  uint8_t id_len;
  uint8_t last_id_len;
  char name[8];
  char data[BENCH_SSE_DATA_PREFIX];
  char type[BENCH_SSE_TYPE_MAX];
  char id[BENCH_SSE_ID_MAX];       /* the last event ID buffer (set by id: fields) */
  char last_id[BENCH_SSE_ID_MAX];  /* the last event ID string (set at each dispatch) */
} bench_sse_t;

void bench_sse_init(bench_sse_t *p, bench_sse_event_cb on_event, void *ctx);
/* Resets the per-event state for a new connection but keeps the last event id and retry, as
 * an EventSource does across reconnections. */
void bench_sse_reconnect(bench_sse_t *p);
void bench_sse_feed(bench_sse_t *p, const char *buf, size_t len);
/* 1 when the stream stands between events: no field line since the last blank line and no
 * unfinished line other than a comment. */
int bench_sse_at_boundary(const bench_sse_t *p);
/* Bytes of the unfinished event (0 at a boundary). */
uint64_t bench_sse_partial_bytes(const bench_sse_t *p);

#endif
