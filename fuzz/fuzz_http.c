/* fuzz_http.c — the HTTP request path through the real glue: http.c as the protocol of a
 * transport (conn.c) with its delivery (delivery.c), one connection accepted on one end of a
 * socketpair, the bytes handed to the protocol's on_data as the transport would hand them, and
 * requests routed through a router whose handlers answer with sl__http_respond / sl__http_error
 * or open a stream. Every input gets a fresh worker-like fixture and closes all of it, so a leak
 * or a handle left open is a finding of that input alone.
 *
 * Input: one control byte, then two bytes per cut, then the bytes the client sends.
 *   control & 3         number of cuts (0..3): the bytes arrive as that many + 1 reads
 *   (control >> 2) & 3  how the input ends: 0 nothing more, 1 the client half-closes (its FIN
 *                       read through epoll), 2 the timeouts sweep far in the future, 3 the drain
 *   each cut            little-endian, modulo the length of the bytes: where one read ends
 * Each read is copied into an allocation of exactly its size, so that a look before the start or
 * past the end of what was read (llhttp's pointers, the obs-fold check) is an ASan report.
 *
 * Checked besides memory: whatever reaches the client starts with an HTTP/1.1 status line, and
 * after the teardown no connection and no loop handle is left. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/origin.h"
#include "http/http.h"
#include "net/delivery.h"

#define MAX_CUTS 3
#define TURNS_AFTER_END 4     /* worker turns after the input's end: writes, FINs, the reaper */
#define TURNS_WHILE_PAUSED 4  /* turns a paused reader gets to have its answers written */
#define FAR_FUTURE_MS (1000ull * 1000 * 1000)
#define BIG_BODY (20 * 1024)

/* Stops the run with a message libFuzzer shows, and keeps the input as a crash. */
#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

/* One worker's worth of what http.c runs on, as tests/unit/http/test_http.c sets it up. */
typedef struct fixture_s {
  uv_loop_t loop;
  int epfd;
  sl_config_t cfg;
  sl_metrics_t metrics;
  sl_transport_t t;
  sl_delivery_t d;
  sl_pacer_t pacer;
  sl_delivery_t *members[1];
  uv_async_t wake;
  sl_http_ctx_t ctx;
  int peer;                   /* the client's end of the socketpair */
  char head[9];               /* the first bytes the client received */
  size_t got;                 /* how many of them (at most sizeof head) */
  sl_http_stream_t stream;
} fixture_t;

static fixture_t F;

/* --- the endpoints --------------------------------------------------------------------------- */

/* Answers with the query, then the body, so that every request's parts reach the response. */
static void h_echo(sl_conn_t *c, sl_request_t *r, void *data) {
  (void)data;
  size_t len = r->query_len + r->body_len;
  char *body = malloc(len + 1);
  if (body == NULL) {
    sl__http_error(c, 500, NULL, "out of memory");
    return;
  }
  memcpy(body, r->query, r->query_len);
  if (r->body_len)
    memcpy(body + r->query_len, r->body, r->body_len);
  sl__http_respond(c, 200, "Cache-Control: no-store\r\n", "text/plain", body, len);
  free(body);
}

/* Answers with BIG_BODY bytes: a few pipelined requests for it queue more than
 * SL_HTTP_PIPELINE_LIMIT, and parsing waits for them to be written (http.c's backlog). */
static void h_big(sl_conn_t *c, sl_request_t *r, void *data) {
  (void)r, (void)data;
  static char body[BIG_BODY];
  if (body[0] == '\0')
    memset(body, 'x', sizeof body);
  sl__http_respond(c, 200, NULL, "text/plain", body, sizeof body);
}

/* Refuses with an extra header and no keep-alive, as a failed authentication does. */
static void h_refuse(sl_conn_t *c, sl_request_t *r, void *data) {
  (void)r, (void)data;
  sl__http_close_after(c);
  sl__http_error(c, 401, "WWW-Authenticate: Bearer\r\n", "no token");
}

static void s_timeout(sl_http_stream_t *s, sl_conn_t *c, uint64_t now) {
  (void)s, (void)c, (void)now;
}
static void s_shutdown(sl_http_stream_t *s, sl_conn_t *c) {
  (void)s;
  sl__delivery_end(c);
}
static void s_close(sl_http_stream_t *s, sl_conn_t *c) {
  CHECK(s == &F.stream);
  (void)c;
}
static const sl_http_stream_ops_t stream_ops = {
  .on_timeout = s_timeout, .on_shutdown = s_shutdown, .on_close = s_close,
};

/* Opens a stream, as a subscription does. */
static void h_stream(sl_conn_t *c, sl_request_t *r, void *data) {
  (void)r, (void)data;
  F.stream.ops = &stream_ops;
  sl__http_open_stream(c, "text/event-stream", "Cache-Control: no-cache\r\n", &F.stream);
}

/* A preflight, as the hub's OPTIONS handlers answer it. */
static void h_preflight(sl_conn_t *c, sl_request_t *r, void *data) {
  (void)data;
  sl__http_preflight(c, r, "GET, POST, OPTIONS");
}

/* The CORS allowlists of the routes: named origins on the hub's path, "*" on /a, so that every
 * Origin and Access-Control-Request-Method the fuzzer writes goes through cors.c and origin.c. */
static sl_origins_t named_origins, any_origin;

static void routes(sl_router_t *router) {
  static int lists_made;
  if (!lists_made) {
    char why[200];
    CHECK(sl__origins_parse(&named_origins, "https://app.example, http://127.0.0.1:3000", 0, why,
                            sizeof why) == 0);
    CHECK(sl__origins_parse(&any_origin, "*", 1, why, sizeof why) == 0);
    lists_made = 1; /* kept for the process's life: the same lists for every input */
  }
  sl__router_init(router, "nothing here");
  sl_route_t *a = sl__router_add(router, "/a", "GET, HEAD, POST", "GET, HEAD or POST");
  sl_route_t *s = sl__router_add(router, "/.well-known/mercure", "GET, POST", "GET or POST");
  sl_route_t *e = sl__router_add(router, "/e", "GET", "GET only");
  sl_route_t *big = sl__router_add(router, "/big", "GET", "GET only");
  CHECK(a && s && e && big);
  CHECK(sl__route_on(big, SL_HTTP_GET, h_big, NULL) == 0);
  CHECK(sl__route_on(a, SL_HTTP_GET, h_echo, NULL) == 0);
  CHECK(sl__route_on(a, SL_HTTP_HEAD, h_echo, NULL) == 0);
  CHECK(sl__route_on(a, SL_HTTP_POST, h_echo, NULL) == 0);
  CHECK(sl__route_on(s, SL_HTTP_GET, h_stream, NULL) == 0);
  CHECK(sl__route_on(s, SL_HTTP_POST, h_echo, NULL) == 0);
  CHECK(sl__route_on(e, SL_HTTP_GET, h_refuse, NULL) == 0);
  CHECK(sl__route_on(s, SL_HTTP_OPTIONS, h_preflight, NULL) == 0);
  CHECK(sl__route_on(a, SL_HTTP_OPTIONS, h_preflight, NULL) == 0);
  s->cors = &named_origins;
  a->cors = &any_origin;
}

/* --- the fixture ----------------------------------------------------------------------------- */

static sl_conn_t *setup(void) {
  memset(&F, 0, sizeof F);
  F.peer = -1;
  CHECK(uv_loop_init(&F.loop) == 0);
  F.epfd = epoll_create1(EPOLL_CLOEXEC);
  CHECK(F.epfd >= 0);
  sl_config_init(&F.cfg);
  F.cfg.max_body = 4096; /* small enough for the fuzzer to reach 413 */
  CHECK(sl__transport_init(&F.t, &F.loop, F.epfd, 0, &F.cfg, &F.metrics) == 0);
  CHECK(uv_async_init(&F.loop, &F.wake, NULL) == 0);
  F.members[0] = &F.d;
  F.pacer.count = 1;
  F.pacer.members = F.members;
  CHECK(sl__delivery_init(&F.d, &F.t, &F.loop, &F.wake, &F.pacer, &F.cfg, &F.metrics) == 0);
  F.ctx.cfg = &F.cfg;
  routes(&F.ctx.router);
  sl__http_attach(&F.t, &F.ctx);

  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  F.peer = sv[1];
  sl_conn_t *c = sl__conn_accept(&F.t, sv[0], 0, 0);
  CHECK(c != NULL);
  return c;
}

static void teardown(void) {
  sl__transport_destroy(&F.t);
  CHECK(F.t.conn_count == 0);
  sl__delivery_close(&F.d);
  uv_close((uv_handle_t *)&F.wake, NULL);
  CHECK(uv_run(&F.loop, UV_RUN_DEFAULT) == 0);
  sl__delivery_destroy(&F.d);
  close(F.peer);
  close(F.epfd);
  CHECK(uv_loop_close(&F.loop) == 0);
}

/* The client reads whatever arrived, so that the server's writes never block for long. */
static void client_read(void) {
  static char sink[64 * 1024];
  for (;;) {
    ssize_t n = recv(F.peer, sink, sizeof sink, MSG_DONTWAIT);
    if (n <= 0)
      return;
    for (ssize_t i = 0; i < n && F.got < sizeof F.head; i++)
      F.head[F.got++] = sink[i];
    CHECK(memcmp(F.head, "HTTP/1.1 ", F.got) == 0);
  }
}

/* One worker turn: what epoll reports, the turn's writes, the client reads, the reaper. Returns
 * the connection, or NULL once it is freed. */
static sl_conn_t *turn(sl_conn_t *c) {
  struct epoll_event ev[8];
  int n = epoll_wait(F.epfd, ev, 8, 0);
  CHECK(n >= 0);
  for (int i = 0; i < n; i++)
    sl__conn_io(ev[i].data.ptr, ev[i].events);
  sl__delivery_turn_end(&F.d);
  client_read();
  sl__transport_reap(&F.t);
  return F.t.conn_count ? c : NULL;
}

/* 1 when the transport would hand c more bytes now. */
static int reading(const sl_conn_t *c) {
  return c && !(c->flags & (SL_CONN_CLOSING | SL_CONN_READ_PAUSED | SL_CONN_READ_EOF |
                            SL_CONN_FIN_SENT));
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  sl__log_open(NULL, SL_LOG_ERROR);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned control = data[0];
  size_t ncuts = control & 3;
  unsigned ending = (control >> 2) & 3;
  if (size < 1 + 2 * ncuts)
    return 0;
  const uint8_t *bytes = data + 1 + 2 * ncuts;
  size_t len = size - 1 - 2 * ncuts;
  size_t cuts[MAX_CUTS + 2];
  cuts[0] = 0;
  for (size_t i = 0; i < ncuts; i++) {
    size_t v = (size_t)data[1 + 2 * i] | (size_t)data[2 + 2 * i] << 8;
    cuts[1 + i] = v % (len + 1);
  }
  cuts[1 + ncuts] = len;
  qsort(cuts + 1, ncuts, sizeof cuts[0], cmp_size);

  sl_conn_t *c = setup();
  for (size_t i = 0; i <= ncuts && c; i++) {
    size_t n = cuts[i + 1] - cuts[i];
    if (n == 0)
      continue;
    /* A reader paused behind its answers reads again once they are written. */
    for (int k = 0; k < TURNS_WHILE_PAUSED && c && (c->flags & SL_CONN_READ_PAUSED); k++)
      c = turn(c);
    if (!reading(c))
      break;
    char *piece = malloc(n);
    CHECK(piece != NULL);
    memcpy(piece, bytes + cuts[i], n);
    c->cbs->on_data(c, piece, n);
    free(piece);
    c = turn(c);
  }
  if (c) {
    switch (ending) {
    case 1:
      shutdown(F.peer, SHUT_WR);
      break;
    case 2:
      sl__transport_sweep(&F.t, sl__transport_now(&F.t) + FAR_FUTURE_MS);
      break;
    case 3:
      sl__delivery_drain(&F.d);
      sl__transport_shutdown(&F.t);
      break;
    }
  }
  for (int k = 0; k < TURNS_AFTER_END && c; k++)
    c = turn(c);
  teardown();
  return 0;
}
