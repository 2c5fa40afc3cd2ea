/* http.h — HTTP/1.1 as the protocol of a connection (the only file that calls llhttp is http.c):
 * requests read with the limits a public hub needs (header, URL and body sizes, the header
 * timeout), routed through the endpoint table a hub registers (router.h), answered through one
 * response-head builder (response.c). An endpoint may turn its connection into a stream it owns
 * from then on (sl__http_open_stream); the stream's callbacks then get the connection's
 * timeouts, the drain and the close.
 *
 * http.c sits above the transport and delivery and below the endpoints: it calls down, and the
 * endpoints reach it only as handlers in the table. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"
#include "http/router.h"
#include "net/conn.h"
#include "sluice.h"

#define SL_HTTP_MAX_HEADER 8192          /* bytes of request line + headers (431 / 414 past it) */
#define SL_HTTP_MAX_URL 8192
#define SL_HTTP_PIPELINE_LIMIT (64 * 1024) /* answers queued before parsing a pipelining client waits */

typedef enum {
  SL_H_AUTHORIZATION = 0,
  SL_H_LAST_EVENT_ID,
  SL_H_CONTENT_TYPE,
  SL_H_COOKIE,
  SL_H_EXPECT,
  SL_H_ORIGIN,
  SL_H_REFERER,
  SL_H_HOST,
  SL_H_ACR_METHOD,             /* Access-Control-Request-Method (a CORS preflight) */
  SL_H_COUNT,
} sl_header_id_t;

/* The request being read. Owned by its connection; freed once answered, or when a stream takes
 * the connection over. */
typedef struct sl_request_s {
  uint64_t start_ns;           /* when its first byte arrived */
  size_t header_bytes;
  char *url;
  size_t url_len, url_cap;
  const char *path, *query;    /* inside url, set before the handler runs */
  size_t path_len, query_len;
  sl_http_method_t method;
  const struct sl_origins_s *cors; /* its route's CORS allowlist (router.h), or NULL */
  char field[32];              /* the header name being read (longer names are not ours) */
  size_t field_len;
  int cur;                     /* sl_header_id_t being captured, or -1 */
  int read_ended_line;         /* the last read ended with a line feed (obs-fold detection) */
  char *hv[SL_H_COUNT];        /* captured header values, NUL-terminated */
  size_t hv_len[SL_H_COUNT];
  char *body;
  size_t body_len, body_cap;
  int status;                  /* set by a callback that rejects the request */
  const char *reason;
} sl_request_t;

/* A stream that owns its connection after its head went out. The struct is the first member of
 * the owner's own state. */
typedef struct sl_http_stream_s sl_http_stream_t;
typedef struct sl_http_stream_ops_s {
  /* The sweep, at loop time now (ms): heartbeats, expiry. */
  void (*on_timeout)(sl_http_stream_t *s, sl_conn_t *c, uint64_t now);
  /* The worker drains: send the final frame and end. */
  void (*on_shutdown)(sl_http_stream_t *s, sl_conn_t *c);
  /* The connection closes: release the stream (its memory is the owner's to free). */
  void (*on_close)(sl_http_stream_t *s, sl_conn_t *c);
  /* The stream's end began (a slow consumer cut, its own end, the drain's): nothing more is
   * delivered, though the last bytes may take a while to go. May be NULL. */
  void (*on_end)(sl_http_stream_t *s, sl_conn_t *c);
  /* The queue was written out, or fell to the connection's q_low: the stream may queue more (a
   * replay paged from history). May be NULL. */
  void (*on_writable)(sl_http_stream_t *s, sl_conn_t *c);
  /* A live hand-off: writes what another process needs to go on with the stream (what the
   * http_ctx's adopt_stream there reads). 0 or -ENOMEM. May be NULL: the stream is not handed,
   * and ends here. */
  int (*on_export)(sl_http_stream_t *s, sl_conn_t *c, struct sl_wire_s *out);
} sl_http_stream_ops_t;
struct sl_http_stream_s {
  const sl_http_stream_ops_t *ops;
};

/* Per worker: what every HTTP connection of the worker shares. */
typedef struct sl_http_ctx_s {
  const sl_config_t *cfg;
  sl_router_t router;
  const char *feed;            /* http.c's: the start of the bytes being parsed now */
  /* Takes over a stream handed from another process (what its on_export wrote), on the adopted
   * connection c: 0 and *out, or a negative errno. NULL: streams cannot be adopted. */
  int (*adopt_stream)(sl_conn_t *c, struct sl_wire_reader_s *in, void *data,
                      sl_http_stream_t **out);
  void *adopt_data;
} sl_http_ctx_t;

/* Makes HTTP the protocol of every connection t accepts from now on, routed through ctx. */
void sl__http_attach(sl_transport_t *t, sl_http_ctx_t *ctx);

/* Queues a whole response. headers: extra "Name: value\r\n" lines, or NULL. */
void sl__http_respond(sl_conn_t *c, int status, const char *headers, const char *content_type,
                      const char *body, size_t len);
/* Answers the OPTIONS request r of its route, which allows methods ("GET, POST, OPTIONS"): a
 * plain OPTIONS gets 204 with Allow; a CORS preflight gets 204 with the Access-Control-Allow-*
 * lines when the route's allowlist (r->cors) has its Origin, else 403 saying so (cors.h). Any
 * route's OPTIONS handler may call it. */
void sl__http_preflight(sl_conn_t *c, const sl_request_t *r, const char *methods);
/* A text/plain error whose body says what was wrong. */
void sl__http_error(sl_conn_t *c, int status, const char *headers, const char *what);
/* The request ends the connection after its answer (no keep-alive). */
void sl__http_close_after(sl_conn_t *c);

/* A handler that answers later (a publish a slow history stores later) defers its request: the
 * answer's place in the output is kept, in request order, so the connection goes on reading
 * (pipelined requests are handled meanwhile, up to SL_HTTP_DEFERRED_LIMIT deferred at once) and
 * writes nothing past that place until the answer comes. The handler sets d->on_close, which
 * runs (from the connection's close) if the connection closes first; the handler must not touch
 * the connection after it. d is the handler's and stays valid until then or until answered.
 * 0, or -ENOMEM (the connection then closes: on_close is not called, d is free at once). */
#define SL_HTTP_DEFERRED_LIMIT 64
typedef struct sl_http_deferred_s sl_http_deferred_t;
struct sl_http_deferred_s {
  void (*on_close)(sl_http_deferred_t *d);  /* the handler's */
  sl_http_deferred_t *next, *prev;          /* http.c's, from here on */
  uint32_t slot;
  uint8_t keep, head_only;
  char *cors;                               /* the answer's CORS lines, or NULL */
};
int sl__http_defer(sl_conn_t *c, sl_http_deferred_t *d);
/* The next sl__http_respond / sl__http_error on c answers d's request, in its place. */
void sl__http_resume(sl_conn_t *c, sl_http_deferred_t *d);

/* Sends a stream's head (200, with the extra header lines given) and hands the connection to
 * stream: chunked on HTTP/1.1, else delimited by the connection's end. The request is freed.
 * 0, or a negative errno (the connection then closes). */
int sl__http_open_stream(sl_conn_t *c, const char *content_type, const char *headers,
                         sl_http_stream_t *stream);

/* 1 when the client asked for HTTP/1.1 or later. */
int sl__http_is_11(const sl_conn_t *c);

#endif
