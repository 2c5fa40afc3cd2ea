/* test_http.c — http.c as the protocol of a transport, over a socketpair, with a router whose
 * handlers record what they were given: a GET routed with its path and query split and the hub's
 * headers captured; an absolute-form target routed by its path; 404 with the router's body, 405
 * with the route's Allow header; two pipelined requests answered in order; HTTP/1.0 without
 * keep-alive answered with "Connection: close" and a FIN; a header block over 8192 bytes answered
 * 431; a stream opened by a handler: a chunked head on HTTP/1.1, its on_close when the client
 * goes; and deferred answers: answered out of order, they still go out in request order, with an
 * answer made at once between them kept behind the first; a deferred request on HTTP/1.0 ends the
 * connection after its answer; a client that half-closes still gets it; a connection closed
 * first tells each deferred request through on_close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "net/delivery.h"

#define NOT_FOUND "nothing here"

typedef struct call_s {
  char path[64], query[64], host[64], last_event_id[64];
  int has_host, has_last_event_id;
  sl_http_method_t method;
  void *data;
} call_t;

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
  int peer;
  call_t calls[4];
  int ncalls;
  sl_http_stream_t stream;
  int stream_closes, stream_shutdowns;
  sl_http_deferred_t deferred[4];
  sl_conn_t *deferred_conn[4];
  int ndeferred, deferred_closes;
  size_t received_len;
} fixture_t;

static fixture_t F;
static int tag_a, tag_s;

static void copy(char *dst, size_t cap, const char *src, size_t len) {
  assert_true(len < cap);
  memcpy(dst, src, len);
  dst[len] = '\0';
}

static call_t *record(sl_request_t *r, void *data) {
  assert_true(F.ncalls < 4);
  call_t *k = &F.calls[F.ncalls++];
  copy(k->path, sizeof k->path, r->path, r->path_len);
  copy(k->query, sizeof k->query, r->query, r->query_len);
  if ((k->has_host = r->hv[SL_H_HOST] != NULL))
    copy(k->host, sizeof k->host, r->hv[SL_H_HOST], r->hv_len[SL_H_HOST]);
  if ((k->has_last_event_id = r->hv[SL_H_LAST_EVENT_ID] != NULL))
    copy(k->last_event_id, sizeof k->last_event_id, r->hv[SL_H_LAST_EVENT_ID],
         r->hv_len[SL_H_LAST_EVENT_ID]);
  k->method = r->method;
  k->data = data;
  return k;
}

/* Answers with the query as the body, so that answers show their order. */
static void h_echo(sl_conn_t *c, sl_request_t *r, void *data) {
  call_t *k = record(r, data);
  sl__http_respond(c, 200, NULL, "text/plain", k->query, strlen(k->query));
}

static void s_timeout(sl_http_stream_t *s, sl_conn_t *c, uint64_t now) {
  (void)s, (void)c, (void)now;
}
static void s_shutdown(sl_http_stream_t *s, sl_conn_t *c) {
  (void)s, (void)c;
  F.stream_shutdowns++;
}
static void s_close(sl_http_stream_t *s, sl_conn_t *c) {
  assert_ptr_equal(s, &F.stream);
  (void)c;
  F.stream_closes++;
}
static const sl_http_stream_ops_t stream_ops = {
  .on_timeout = s_timeout, .on_shutdown = s_shutdown, .on_close = s_close,
};

static void h_stream(sl_conn_t *c, sl_request_t *r, void *data) {
  record(r, data);
  F.stream.ops = &stream_ops;
  assert_int_equal(sl__http_open_stream(c, "text/event-stream", "Cache-Control: no-cache\r\n",
                                        &F.stream), 0);
}

static void d_close(sl_http_deferred_t *d) {
  (void)d;
  F.deferred_closes++;
}

/* Answers later: the test does, with answer_deferred. */
static void h_defer(sl_conn_t *c, sl_request_t *r, void *data) {
  record(r, data);
  assert_true(F.ndeferred < 4);
  sl_http_deferred_t *d = &F.deferred[F.ndeferred];
  F.deferred_conn[F.ndeferred++] = c;
  d->on_close = d_close;
  assert_int_equal(sl__http_defer(c, d), 0);
}

static void answer_deferred(int i, const char *body) {
  sl__http_resume(F.deferred_conn[i], &F.deferred[i]);
  sl__http_respond(F.deferred_conn[i], 200, NULL, "text/plain", body, strlen(body));
}

/* What the client has received so far (NUL-terminated, static); *eof at EOF. */
static const char *received(int *eof) {
  static char buf[16384];
  size_t len = F.received_len;
  int at_eof = 0;
  for (;;) {
    ssize_t n = recv(F.peer, buf + len, sizeof buf - 1 - len, MSG_DONTWAIT);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    at_eof = n == 0;
    break;
  }
  buf[len] = '\0';
  F.received_len = len;
  if (eof)
    *eof = at_eof;
  return buf;
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  F.peer = -1;
  assert_int_equal(uv_loop_init(&F.loop), 0);
  F.epfd = epoll_create1(EPOLL_CLOEXEC);
  assert_true(F.epfd >= 0);
  sl_config_init(&F.cfg);
  assert_int_equal(sl__transport_init(&F.t, &F.loop, F.epfd, 0, &F.cfg, &F.metrics), 0);
  assert_int_equal(uv_async_init(&F.loop, &F.wake, NULL), 0);
  F.members[0] = &F.d;
  F.pacer.count = 1;
  F.pacer.members = F.members;
  assert_int_equal(sl__delivery_init(&F.d, &F.t, &F.loop, &F.wake, &F.pacer, &F.cfg, &F.metrics), 0);
  F.ctx.cfg = &F.cfg;
  sl__router_init(&F.ctx.router, NOT_FOUND);
  sl_route_t *a = sl__router_add(&F.ctx.router, "/a", "GET, HEAD", "only GET here");
  assert_non_null(a);
  assert_int_equal(sl__route_on(a, SL_HTTP_GET, h_echo, &tag_a), 0);
  assert_int_equal(sl__route_on(a, SL_HTTP_HEAD, h_echo, &tag_a), 0);
  sl_route_t *root = sl__router_add(&F.ctx.router, "/", "GET", "only GET here");
  assert_non_null(root);
  assert_int_equal(sl__route_on(root, SL_HTTP_GET, h_echo, &tag_a), 0);
  sl_route_t *s = sl__router_add(&F.ctx.router, "/s", "GET", "streams only");
  assert_non_null(s);
  assert_int_equal(sl__route_on(s, SL_HTTP_GET, h_stream, &tag_s), 0);
  sl_route_t *d = sl__router_add(&F.ctx.router, "/d", "GET", "deferred only");
  assert_non_null(d);
  assert_int_equal(sl__route_on(d, SL_HTTP_GET, h_defer, &tag_a), 0);
  sl__http_attach(&F.t, &F.ctx);

  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  F.peer = sv[1];
  assert_non_null(sl__conn_accept(&F.t, sv[0], 0, 0));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sl__transport_destroy(&F.t);
  assert_int_equal(F.t.conn_count, 0);
  sl__delivery_close(&F.d);
  uv_close((uv_handle_t *)&F.wake, NULL);
  assert_int_equal(uv_run(&F.loop, UV_RUN_DEFAULT), 0);
  sl__delivery_destroy(&F.d);
  if (F.peer >= 0)
    close(F.peer);
  close(F.epfd);
  assert_int_equal(uv_loop_close(&F.loop), 0);
  return 0;
}

/* One worker turn: what epoll reports, then the turn's writes, then the reaper. */
static int turn(int timeout_ms) {
  struct epoll_event ev[8];
  int n = epoll_wait(F.epfd, ev, 8, timeout_ms);
  assert_true(n >= 0);
  for (int i = 0; i < n; i++)
    sl__conn_io(ev[i].data.ptr, ev[i].events);
  sl__delivery_turn_end(&F.d);
  sl__transport_reap(&F.t);
  return n;
}

static void client_send(const char *req, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(F.peer, req + off, len - off, MSG_NOSIGNAL);
    assert_true(n > 0);
    off += (size_t)n;
  }
}

/* Sends req, runs a turn, returns what the client got (NUL-terminated, static). *eof at EOF. */
static const char *exchange(const char *req, int *eof) {
  static char buf[16384];
  client_send(req, strlen(req));
  turn(100);
  size_t len = 0;
  int at_eof = 0;
  for (;;) {
    ssize_t n = recv(F.peer, buf + len, sizeof buf - 1 - len, MSG_DONTWAIT);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    at_eof = n == 0;
    break;
  }
  buf[len] = '\0';
  if (eof)
    *eof = at_eof;
  return buf;
}

static void test_get_routed_with_path_query_headers(void **state) {
  (void)state;
  int eof;
  const char *got = exchange("GET /a?topic=x&b=2 HTTP/1.1\r\nHost: hub.example\r\n"
                             "X-Other: ignored\r\nLast-Event-ID: urn:e1\r\n\r\n", &eof);
  assert_int_equal(F.ncalls, 1);
  call_t *k = &F.calls[0];
  assert_string_equal(k->path, "/a");
  assert_string_equal(k->query, "topic=x&b=2");
  assert_true(k->has_host);
  assert_string_equal(k->host, "hub.example");
  assert_true(k->has_last_event_id);
  assert_string_equal(k->last_event_id, "urn:e1");
  assert_int_equal(k->method, SL_HTTP_GET);
  assert_ptr_equal(k->data, &tag_a);
  assert_true(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
  assert_non_null(strstr(got, "Content-Length: 11\r\n"));
  assert_null(strstr(got, "Connection: close"));
  assert_non_null(strstr(got, "\r\n\r\ntopic=x&b=2"));
  assert_false(eof); /* keep-alive */
  assert_int_equal(sl__metric_get(&F.metrics.requests_total), 1);
}

static void test_absolute_form_routed_by_path(void **state) {
  (void)state;
  exchange("GET http://hub.example:8080/a?q=1 HTTP/1.1\r\nHost: hub.example\r\n\r\n", NULL);
  assert_int_equal(F.ncalls, 1);
  assert_string_equal(F.calls[0].path, "/a");
  assert_string_equal(F.calls[0].query, "q=1");
}

/* An absolute-form target with nothing after its authority names "/" (the fuzzer found the
 * path computed from two unrelated pointers here: a read far past a string literal). */
static void test_absolute_form_without_path(void **state) {
  (void)state;
  exchange("GET http://hub.example HTTP/1.1\r\nHost: hub.example\r\n\r\n", NULL);
  exchange("GET HTTPS://hub.example?q=2 HTTP/1.1\r\nHost: hub.example\r\n\r\n", NULL);
  assert_int_equal(F.ncalls, 2);
  assert_string_equal(F.calls[0].path, "/");
  assert_string_equal(F.calls[0].query, "");
  assert_string_equal(F.calls[1].path, "/");
  assert_string_equal(F.calls[1].query, "q=2");
}

static void test_404_and_405(void **state) {
  (void)state;
  int eof;
  const char *got = exchange("GET /nope HTTP/1.1\r\nHost: h\r\n\r\n", &eof);
  assert_true(strncmp(got, "HTTP/1.1 404 ", 13) == 0);
  assert_non_null(strstr(got, NOT_FOUND));
  assert_false(eof);
  got = exchange("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &eof);
  assert_true(strncmp(got, "HTTP/1.1 405 ", 13) == 0);
  assert_non_null(strstr(got, "\r\nAllow: GET, HEAD\r\n"));
  assert_non_null(strstr(got, "only GET here"));
  assert_int_equal(F.ncalls, 0);
  assert_int_equal(sl__metric_get(&F.metrics.errors_total), 2);
}

static void test_pipelined_answered_in_order(void **state) {
  (void)state;
  int eof;
  const char *got = exchange("GET /a?first HTTP/1.1\r\nHost: h\r\n\r\n"
                             "GET /a?second HTTP/1.1\r\nHost: h\r\n\r\n", &eof);
  assert_int_equal(F.ncalls, 2);
  assert_string_equal(F.calls[0].query, "first");
  assert_string_equal(F.calls[1].query, "second");
  const char *a = strstr(got, "\r\n\r\nfirst");
  const char *b = strstr(got, "\r\n\r\nsecond");
  assert_non_null(a);
  assert_non_null(b);
  assert_true(a < b);
  assert_false(eof);
  assert_int_equal(sl__metric_get(&F.metrics.writes_total), 1); /* one turn, one write */
}

static void test_http10_closes(void **state) {
  (void)state;
  int eof;
  const char *got = exchange("GET /a?old HTTP/1.0\r\n\r\n", &eof);
  assert_int_equal(F.ncalls, 1);
  assert_true(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
  assert_non_null(strstr(got, "Connection: close\r\n"));
  assert_non_null(strstr(got, "\r\n\r\nold"));
  assert_true(eof);
}

static void test_header_block_too_large_431(void **state) {
  (void)state;
  size_t n = SL_HTTP_MAX_HEADER + 100;
  char *req = malloc(n + 64);
  assert_non_null(req);
  int len = snprintf(req, 64, "GET /a HTTP/1.1\r\nHost: h\r\nX-Big: ");
  memset(req + len, 'x', n);
  memcpy(req + len + n, "\r\n\r\n", 5);
  int eof;
  const char *got = exchange(req, &eof);
  free(req);
  assert_true(strncmp(got, "HTTP/1.1 431 ", 13) == 0);
  assert_non_null(strstr(got, "Connection: close\r\n"));
  assert_int_equal(F.ncalls, 0);
  assert_true(eof);
}

static void test_header_block_at_limit_is_served(void **state) {
  (void)state;
  /* The counterpart of the 431: a block just under the limit goes through. */
  char req[SL_HTTP_MAX_HEADER];
  int len = snprintf(req, sizeof req, "GET /a HTTP/1.1\r\nHost: h\r\nX-Big: ");
  memset(req + len, 'x', SL_HTTP_MAX_HEADER - 200);
  memcpy(req + len + SL_HTTP_MAX_HEADER - 200, "\r\n\r\n", 5);
  const char *got = exchange(req, NULL);
  assert_true(strncmp(got, "HTTP/1.1 200 ", 13) == 0);
  assert_int_equal(F.ncalls, 1);
}

static void test_stream_chunked_head_and_close(void **state) {
  (void)state;
  int eof;
  const char *got = exchange("GET /s HTTP/1.1\r\nHost: h\r\n\r\n", &eof);
  assert_int_equal(F.ncalls, 1);
  assert_ptr_equal(F.calls[0].data, &tag_s);
  assert_true(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
  assert_non_null(strstr(got, "Transfer-Encoding: chunked\r\n"));
  assert_non_null(strstr(got, "Content-Type: text/event-stream\r\n"));
  assert_non_null(strstr(got, "Cache-Control: no-cache\r\n"));
  assert_null(strstr(got, "Connection: close"));
  assert_false(eof);
  sl_conn_t *c = F.t.conns;
  assert_non_null(c);
  assert_true((c->flags & (SL_CONN_STREAM | SL_CONN_CHUNKED)) == (SL_CONN_STREAM | SL_CONN_CHUNKED));
  assert_int_equal(F.stream_closes, 0);
  close(F.peer);
  F.peer = -1;
  turn(100);
  assert_int_equal(F.stream_closes, 1);
  assert_int_equal(F.t.conn_count, 0);
}

static void test_stream_on_http10_is_not_chunked(void **state) {
  (void)state;
  int eof;
  const char *got = exchange("GET /s HTTP/1.0\r\n\r\n", &eof);
  assert_null(strstr(got, "Transfer-Encoding"));
  assert_non_null(strstr(got, "Connection: close\r\n"));
  sl__transport_shutdown(&F.t);
  assert_int_equal(F.stream_shutdowns, 1);
  sl__transport_close_all(&F.t);
  assert_int_equal(F.stream_closes, 1);
}

static void test_deferred_answers_keep_request_order(void **state) {
  (void)state;
  int eof;
  const char *req = "GET /d?one HTTP/1.1\r\nHost: h\r\n\r\n"
                    "GET /a?two HTTP/1.1\r\nHost: h\r\n\r\n"
                    "GET /d?three HTTP/1.1\r\nHost: h\r\n\r\n";
  client_send(req, strlen(req));
  turn(100);
  assert_int_equal(F.ncalls, 3); /* all three read while the first waits */
  assert_int_equal(F.ndeferred, 2);
  assert_string_equal(received(&eof), ""); /* "two" waits behind "one" */
  answer_deferred(1, "three");
  turn(0);
  assert_string_equal(received(&eof), "");
  answer_deferred(0, "one");
  turn(0);
  const char *got = received(&eof);
  const char *a = strstr(got, "\r\n\r\none");
  const char *b = strstr(got, "\r\n\r\ntwo");
  const char *c = strstr(got, "\r\n\r\nthree");
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_true(a < b && b < c);
  assert_false(eof);
  assert_null(strstr(got, "Connection: close"));
  assert_int_equal(F.deferred_closes, 0);
}

static void test_deferred_on_http10_closes_after_its_answer(void **state) {
  (void)state;
  int eof;
  const char *req = "GET /d?old HTTP/1.0\r\n\r\n";
  client_send(req, strlen(req));
  turn(100);
  assert_int_equal(F.ndeferred, 1);
  answer_deferred(0, "old");
  turn(0);
  turn(0);
  const char *got = received(&eof);
  assert_non_null(strstr(got, "Connection: close\r\n"));
  assert_non_null(strstr(got, "\r\n\r\nold"));
  assert_true(eof);
}

static void test_deferred_answered_after_half_close(void **state) {
  (void)state;
  int eof;
  const char *req = "GET /d?x HTTP/1.1\r\nHost: h\r\n\r\n";
  client_send(req, strlen(req));
  turn(100);
  assert_int_equal(F.ndeferred, 1);
  shutdown(F.peer, SHUT_WR); /* the client has said all it will: the answer still reaches it */
  turn(100);
  assert_int_equal(F.deferred_closes, 0);
  answer_deferred(0, "late");
  turn(0);
  turn(0);
  const char *got = received(&eof);
  assert_non_null(strstr(got, "\r\n\r\nlate"));
  assert_true(eof);
}

static void test_deferred_told_when_connection_closes(void **state) {
  (void)state;
  const char *req = "GET /d?x HTTP/1.1\r\nHost: h\r\n\r\nGET /d?y HTTP/1.1\r\nHost: h\r\n\r\n";
  client_send(req, strlen(req));
  turn(100);
  assert_int_equal(F.ndeferred, 2);
  sl__transport_close_all(&F.t);
  assert_int_equal(F.deferred_closes, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_deferred_answers_keep_request_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_deferred_on_http10_closes_after_its_answer, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_deferred_answered_after_half_close, setup, teardown),
    cmocka_unit_test_setup_teardown(test_deferred_told_when_connection_closes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_get_routed_with_path_query_headers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_absolute_form_without_path, setup, teardown),
    cmocka_unit_test_setup_teardown(test_absolute_form_routed_by_path, setup, teardown),
    cmocka_unit_test_setup_teardown(test_404_and_405, setup, teardown),
    cmocka_unit_test_setup_teardown(test_pipelined_answered_in_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_http10_closes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_header_block_too_large_431, setup, teardown),
    cmocka_unit_test_setup_teardown(test_header_block_at_limit_is_served, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_chunked_head_and_close, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_on_http10_is_not_chunked, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
