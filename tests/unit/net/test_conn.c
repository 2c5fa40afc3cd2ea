/* test_conn.c — conn.c, the transport of one connection, over socketpair(AF_UNIX) (and a loopback
 * TCP pair where only TCP shows it: the reset): data handed to the protocol, queued frames written
 * in order by one sendmsg, a full socket finished on EPOLLOUT, the clean end (queue, chunked
 * terminator, FIN, then the client's FIN), close from inside on_data (memory kept until the reaper),
 * hard close with unsent output (RST), cork, detach (socket left open, unwritten frames handed out
 * with the offset of a half-written first one), the linger deadline and the write stall.
 * The protocol is a table of callbacks that records what it is told. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/wire.h"
#include "net/conn.h"

#define BIG (1 << 20) /* more than any small socket buffer holds */

/* What the protocol saw; survives the connection, which the reaper frees. */
typedef struct record_s {
  int data_calls, eof_calls, timeout_calls, writable_calls, close_calls, shutdown_calls, end_calls;
  char data[256];
  size_t data_len;
  uint64_t timeout_now;
  int close_in_data;             /* on_data closes the connection */
} record_t;

typedef struct fixture_s {
  uv_loop_t loop;
  int epfd;
  sl_config_t cfg;
  sl_metrics_t metrics;
  sl_transport_t t;
  record_t rec;
  int peer;                      /* the client's end */
} fixture_t;

static fixture_t F;

static record_t *rec_of(sl_conn_t *c) {
  return &((fixture_t *)c->net->proto_ctx)->rec;
}

static void p_data(sl_conn_t *c, const char *data, size_t len) {
  record_t *r = rec_of(c);
  r->data_calls++;
  assert_true(r->data_len + len <= sizeof r->data);
  memcpy(r->data + r->data_len, data, len);
  r->data_len += len;
  if (r->close_in_data)
    sl__conn_close(c);
}
static void p_eof(sl_conn_t *c) {
  rec_of(c)->eof_calls++;
}
static void p_timeout(sl_conn_t *c, uint64_t now) {
  rec_of(c)->timeout_calls++;
  rec_of(c)->timeout_now = now;
}
static void p_writable(sl_conn_t *c) {
  rec_of(c)->writable_calls++;
}
static void p_close(sl_conn_t *c) {
  rec_of(c)->close_calls++;
}
static void p_shutdown(sl_conn_t *c) {
  rec_of(c)->shutdown_calls++;
}
static void p_end(sl_conn_t *c) {
  rec_of(c)->end_calls++;
}

static const sl_conn_cbs_t proto = {
  .on_data = p_data,
  .on_eof = p_eof,
  .on_timeout = p_timeout,
  .on_writable = p_writable,
  .on_close = p_close,
  .on_shutdown = p_shutdown,
  .on_end = p_end,
};

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  F.peer = -1;
  assert_int_equal(uv_loop_init(&F.loop), 0);
  F.epfd = epoll_create1(EPOLL_CLOEXEC);
  assert_true(F.epfd >= 0);
  sl_config_init(&F.cfg);
  assert_int_equal(sl__transport_init(&F.t, &F.loop, F.epfd, 0, &F.cfg, &F.metrics), 0);
  sl__transport_set_protocol(&F.t, &proto, sizeof(sl_conn_t), NULL, &F);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sl__transport_destroy(&F.t);
  assert_int_equal(F.t.conn_count, 0);
  assert_int_equal(sl__metric_get(&F.metrics.connections), 0);
  if (F.peer >= 0)
    close(F.peer);
  close(F.epfd);
  assert_int_equal(uv_loop_close(&F.loop), 0);
  return 0;
}

/* A connection over a socketpair; F.peer is the client's end. */
static sl_conn_t *accept_pair(void) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  F.peer = sv[1];
  sl_conn_t *c = sl__conn_accept(&F.t, sv[0], 0, 0);
  assert_non_null(c);
  return c;
}

/* A loopback TCP connection; F.peer is the client's end. */
static sl_conn_t *accept_tcp(int sndbuf, int rcvbuf) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(l >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
  int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(cl >= 0);
  if (rcvbuf)
    assert_int_equal(setsockopt(cl, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  assert_int_equal(connect(cl, (struct sockaddr *)&a, sizeof a), 0);
  int s = accept(l, NULL, NULL);
  assert_true(s >= 0);
  close(l);
  if (sndbuf)
    assert_int_equal(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
  F.peer = cl;
  sl_conn_t *c = sl__conn_accept(&F.t, s, 0, 0);
  assert_non_null(c);
  return c;
}

/* Delivers what the epoll set reports, as the worker does. Returns the number of events. */
static int pump(int timeout_ms) {
  struct epoll_event ev[8];
  int n = epoll_wait(F.epfd, ev, 8, timeout_ms);
  assert_true(n >= 0);
  for (int i = 0; i < n; i++)
    sl__conn_io(ev[i].data.ptr, ev[i].events);
  return n;
}

/* Reads what the peer has now (non-blocking), appending to buf; returns bytes read, -1 on EOF. */
static ssize_t peer_read(char *buf, size_t cap, size_t *len) {
  ssize_t total = 0;
  for (;;) {
    if (*len == cap)
      return total;
    ssize_t n = recv(F.peer, buf + *len, cap - *len, MSG_DONTWAIT);
    if (n == 0)
      return total ? total : -1;
    if (n < 0) {
      assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
      return total;
    }
    *len += (size_t)n;
    total += n;
  }
}

static sl_frame_t *big_frame(size_t len, char fill) {
  char *b = malloc(len);
  assert_non_null(b);
  for (size_t i = 0; i < len; i++)
    b[i] = (char)(fill + (char)(i % 23));
  sl_frame_t *f = sl__frame_raw(b, len);
  free(b);
  assert_non_null(f);
  return f;
}

static void push_unref(sl_conn_t *c, sl_frame_t *f) {
  assert_int_equal(sl__conn_push(c, f), 0);
  sl__frame_unref(f);
}

static void small_sndbuf(sl_conn_t *c) {
  int sz = 4096;
  assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
}

/* --- reading ------------------------------------------------------------------------------- */

static void test_data_reaches_protocol(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  assert_int_equal(sl__metric_get(&F.metrics.accepted_total), 1);
  assert_true(c->flags & SL_CONN_POLL_R);
  assert_int_equal(send(F.peer, "GET / HTTP/1.1\r\n", 16, 0), 16);
  assert_int_equal(pump(100), 1);
  assert_int_equal(F.rec.data_calls, 1);
  assert_int_equal(F.rec.data_len, 16);
  assert_memory_equal(F.rec.data, "GET / HTTP/1.1\r\n", 16);
  assert_int_equal(pump(0), 0); /* level-triggered, and nothing more is there */
}

static void test_eof_told_to_protocol(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  assert_int_equal(shutdown(F.peer, SHUT_WR), 0);
  assert_int_equal(pump(100), 1);
  assert_int_equal(F.rec.eof_calls, 1);
  assert_int_equal(F.rec.close_calls, 0);
  assert_true(c->flags & SL_CONN_READ_EOF);
  assert_false(c->flags & SL_CONN_POLL_R); /* not woken again for the same EOF */
  assert_int_equal(pump(0), 0);
}

/* --- writing ------------------------------------------------------------------------------- */

static void test_flush_writes_queue_in_one_write(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  sl__conn_mark(c, SL_CONN_CHUNKED);
  push_unref(c, sl__frame_raw("HTTP/1.1 200 OK\r\n\r\n", 19));
  push_unref(c, sl__frame_chunk("data: a\n\n", 9));
  push_unref(c, sl__frame_chunk("data: bb\n\n", 10));
  static const char want[] = "HTTP/1.1 200 OK\r\n\r\n"
                             "9\r\ndata: a\n\n\r\n"
                             "a\r\ndata: bb\n\n\r\n";
  assert_int_equal(c->q_bytes, sizeof want - 1);
  char buf[256];
  size_t len = 0;
  assert_int_equal(peer_read(buf, sizeof buf, &len), 0); /* nothing before the flush */
  sl__conn_flush(c);
  assert_int_equal(sl__metric_get(&F.metrics.writes_total), 1);
  assert_int_equal(sl__metric_get(&F.metrics.bytes_out_total), sizeof want - 1);
  assert_int_equal(c->q_len, 0);
  assert_int_equal(c->q_bytes, 0);
  assert_int_equal(F.rec.writable_calls, 1);
  peer_read(buf, sizeof buf, &len);
  assert_int_equal(len, sizeof want - 1);
  assert_memory_equal(buf, want, len);
}

static void test_unchunked_connection_writes_payload_only(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  push_unref(c, sl__frame_chunk("data: a\n\n", 9));
  sl__conn_flush(c);
  char buf[64];
  size_t len = 0;
  peer_read(buf, sizeof buf, &len);
  assert_int_equal(len, 9);
  assert_memory_equal(buf, "data: a\n\n", 9);
}

static void test_full_socket_finishes_on_epollout(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  small_sndbuf(c);
  sl_frame_t *f = big_frame(BIG, 'a');
  assert_int_equal(sl__conn_push(c, f), 0);
  push_unref(c, sl__frame_raw("END", 3));
  sl__conn_flush(c);
  assert_true(c->flags & SL_CONN_WANT_WRITE);
  assert_true(c->flags & SL_CONN_POLL_W);
  assert_int_equal(c->q_len, 2);
  assert_true(c->q_off > 0 && c->q_off < BIG);
  assert_int_equal(F.rec.writable_calls, 0);
  /* A flush while waiting for EPOLLOUT writes nothing more. */
  uint64_t writes = sl__metric_get(&F.metrics.writes_total);
  sl__conn_flush(c);
  assert_int_equal(sl__metric_get(&F.metrics.writes_total), writes);

  char *buf = malloc(BIG + 3);
  assert_non_null(buf);
  size_t len = 0;
  for (int rounds = 0; len < BIG + 3 && rounds < 100000; rounds++) {
    peer_read(buf, BIG + 3, &len);
    pump(len < BIG + 3 ? 10 : 0);
  }
  assert_int_equal(len, BIG + 3);
  assert_memory_equal(buf, f->wire, BIG);
  assert_memory_equal(buf + BIG, "END", 3);
  assert_int_equal(c->q_len, 0);
  assert_false(c->flags & (SL_CONN_WANT_WRITE | SL_CONN_POLL_W));
  assert_int_equal(F.rec.writable_calls, 1);
  free(buf);
  sl__frame_unref(f);
}

/* A write that leaves no more than the low-water mark queued tells the protocol (so a paged
 * replay refills before the queue runs dry); without a mark, only an empty queue does. One
 * sendmsg takes at most 1024 frames, so 1030 leave 6 behind. The queued-bytes gauge follows the
 * queue. */
static void test_low_water_calls_writable(void **state) {
  (void)state;
  for (int marked = 0; marked <= 1; marked++) {
    sl_conn_t *c = accept_pair();
    F.rec.writable_calls = 0;
    if (marked)
      sl__conn_set_low_water(c, 64);
    for (int i = 0; i < 1030; i++)
      push_unref(c, sl__frame_raw("x", 1));
    assert_int_equal(sl__metric_get(&F.metrics.queued_bytes), 1030);
    sl__conn_flush(c);
    assert_int_equal(c->q_len, 6);
    assert_int_equal(sl__metric_get(&F.metrics.queued_bytes), 6);
    assert_int_equal(F.rec.writable_calls, marked ? 1 : 0);
    sl__conn_set_low_water(c, 0);
    sl__conn_close(c);
    sl__transport_reap(&F.t);
    assert_int_equal(sl__metric_get(&F.metrics.queued_bytes), 0);
    close(F.peer);
    F.peer = -1;
  }
}

/* --- the clean end ------------------------------------------------------------------------- */

static void test_end_chunked_stream_terminator_then_fin(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  sl__conn_mark(c, SL_CONN_STREAM | SL_CONN_CHUNKED);
  push_unref(c, sl__frame_chunk("data: x\n\n", 9));
  assert_int_equal(F.rec.end_calls, 0);
  sl__conn_end(c);
  /* The protocol is told the end began, once, before a byte of it is written. */
  assert_int_equal(F.rec.end_calls, 1);
  sl__conn_end(c);
  assert_int_equal(F.rec.end_calls, 1);
  /* Nothing more is taken once the terminator is queued. */
  sl_frame_t *late = sl__frame_chunk("data: y\n\n", 9);
  assert_int_equal(sl__conn_push(c, late), -EPIPE);
  sl__frame_unref(late);
  sl__conn_flush(c);
  assert_true(c->flags & SL_CONN_FIN_SENT);
  assert_int_equal(sl__metric_get(&F.metrics.writes_total), 1);
  char buf[64];
  size_t len = 0;
  assert_true(peer_read(buf, sizeof buf, &len) > 0);
  static const char want[] = "9\r\ndata: x\n\n\r\n0\r\n\r\n";
  assert_int_equal(len, sizeof want - 1);
  assert_memory_equal(buf, want, len);
  assert_int_equal(peer_read(buf, sizeof buf, &len), -1); /* our FIN */
  assert_int_equal(F.rec.close_calls, 0);                 /* waiting for the client's */
  close(F.peer);
  F.peer = -1;
  assert_int_equal(pump(100), 1);
  assert_int_equal(F.rec.close_calls, 1);
  assert_int_equal(F.t.conn_count, 1); /* freed by the reaper only */
  sl__transport_reap(&F.t);
  assert_int_equal(F.t.conn_count, 0);
}

static void test_end_plain_response_no_terminator(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  push_unref(c, sl__frame_raw("HTTP/1.1 204 No Content\r\n\r\n", 27));
  sl__conn_end(c);
  sl__conn_flush(c);
  char buf[64];
  size_t len = 0;
  peer_read(buf, sizeof buf, &len);
  assert_int_equal(len, 27);
  assert_int_equal(peer_read(buf, sizeof buf, &len), -1);
  assert_int_equal(F.rec.writable_calls, 0); /* it ends: not "writable" */
}

/* --- closing ------------------------------------------------------------------------------- */

static void test_close_inside_on_data(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  F.rec.close_in_data = 1;
  assert_int_equal(send(F.peer, "abc", 3, 0), 3);
  assert_int_equal(pump(100), 1);
  assert_int_equal(F.rec.data_calls, 1);
  assert_int_equal(F.rec.close_calls, 1);
  /* Still valid memory (ASan would say otherwise): closed, freed only by the reaper. */
  assert_true(c->flags & SL_CONN_CLOSING);
  assert_int_equal(c->fd, -1);
  assert_int_equal(F.t.conn_count, 1);
  assert_ptr_equal(F.t.closed_head, c);
  sl__conn_close(c); /* twice is harmless */
  assert_int_equal(F.rec.close_calls, 1);
  char buf[8];
  size_t len = 0;
  assert_int_equal(peer_read(buf, sizeof buf, &len), -1);
  sl__transport_reap(&F.t);
  assert_int_equal(F.t.conn_count, 0);
  assert_null(F.t.conns);
}

static void test_hard_close_with_unsent_output_resets(void **state) {
  (void)state;
  sl_conn_t *c = accept_tcp(4096, 4096);
  sl_frame_t *f = big_frame(BIG, 'k');
  push_unref(c, f);
  sl__conn_flush(c);
  assert_true(c->flags & SL_CONN_WANT_WRITE);
  assert_true(c->q_off > 0);
  sl__conn_mark(c, SL_CONN_HARD_CLOSE);
  sl__conn_close(c);
  assert_int_equal(F.rec.close_calls, 1);
  /* The client sees a reset, never a clean EOF after a truncated frame. */
  char *buf = malloc(BIG);
  assert_non_null(buf);
  int err = 0;
  size_t got = 0;
  for (;;) {
    ssize_t n = recv(F.peer, buf, BIG, 0);
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    err = n == 0 ? 0 : errno;
    break;
  }
  assert_true(got < BIG);
  assert_int_equal(err, ECONNRESET);
  free(buf);
}

static void test_plain_close_after_queue_written_is_clean(void **state) {
  (void)state;
  /* The counterpart: nothing unsent, so no reset even when closed hard. */
  sl_conn_t *c = accept_tcp(0, 0);
  push_unref(c, sl__frame_raw("bye", 3));
  sl__conn_flush(c);
  assert_int_equal(c->q_len, 0);
  sl__conn_mark(c, SL_CONN_HARD_CLOSE);
  sl__conn_close(c);
  char buf[8];
  assert_int_equal(recv(F.peer, buf, sizeof buf, 0), 3);
  assert_int_equal(recv(F.peer, buf, sizeof buf, 0), 0);
}

/* --- cork ---------------------------------------------------------------------------------- */

static void test_cork_holds_writes(void **state) {
  (void)state;
  sl_conn_t *c = accept_pair();
  sl__conn_cork(c);
  sl__conn_cork(c);
  push_unref(c, sl__frame_raw("answer", 6));
  sl__conn_flush(c);
  char buf[16];
  size_t len = 0;
  assert_int_equal(peer_read(buf, sizeof buf, &len), 0);
  assert_int_equal(sl__metric_get(&F.metrics.writes_total), 0);
  assert_int_equal(F.rec.writable_calls, 0);
  assert_int_equal(sl__conn_uncork(c), 0); /* one cork left */
  sl__conn_flush(c);
  assert_int_equal(peer_read(buf, sizeof buf, &len), 0);
  assert_int_equal(sl__conn_uncork(c), 1);
  sl__conn_flush(c);
  peer_read(buf, sizeof buf, &len);
  assert_int_equal(len, 6);
  assert_memory_equal(buf, "answer", 6);
  assert_int_equal(sl__metric_get(&F.metrics.writes_total), 1);
}

/* --- the hand-off -------------------------------------------------------------------------- */

static int p_export(sl_conn_t *c, sl_wire_t *out) {
  (void)c;
  if (out)
    sl__wire_str(out, "proto-state");
  return 1;
}

static int p_adopt(sl_conn_t *c, sl_wire_reader_t *in) {
  char *s = sl__wire_get_strdup(in);
  int ok = s && strcmp(s, "proto-state") == 0;
  free(s);
  rec_of(c)->data_calls += 100; /* seen by the test: the protocol's part was read */
  return ok ? 0 : -EPROTO;
}

static void test_handoff_freeze_export_release_adopt(void **state) {
  (void)state;
  static sl_conn_cbs_t cbs; /* outlives the test: teardown closes through it */
  cbs = proto;
  cbs.on_export = p_export;
  sl__transport_set_protocol(&F.t, &cbs, sizeof(sl_conn_t), NULL, &F);
  F.t.proto_adopt = p_adopt;
  sl_conn_t *c = accept_pair();
  small_sndbuf(c);
  sl_frame_t *f1 = big_frame(BIG, 'd');
  push_unref(c, sl__frame_raw("x", 1)); /* written whole before the freeze */
  sl__conn_flush(c);
  assert_int_equal(sl__conn_push(c, f1), 0);
  push_unref(c, sl__frame_raw("second", 6));
  push_unref(c, sl__frame_raw("third", 5));
  sl__conn_flush(c);
  uint32_t written = c->q_off;
  assert_true(written > 0 && written < BIG);

  /* Frozen: out of the epoll set, and nothing more is written. */
  int fd = c->fd;
  sl__conn_freeze(c);
  assert_int_equal(epoll_ctl(F.epfd, EPOLL_CTL_DEL, fd, NULL), -1);
  assert_int_equal(errno, ENOENT);
  uint64_t writes = sl__metric_get(&F.metrics.writes_total);
  sl__conn_flush(c);
  assert_int_equal(sl__metric_get(&F.metrics.writes_total), writes);

  /* The record: the unwritten rest of the half-written frame first, then the whole ones. */
  sl_wire_t rec = {0};
  assert_int_equal(sl__conn_export(c, &rec), 1);
  /* What SCM_RIGHTS gives the other process: another descriptor of the same socket. */
  int theirs = dup(fd);
  assert_true(theirs >= 0);
  sl__conn_release(c);
  assert_int_equal(F.rec.close_calls, 1);
  assert_true(c->flags & SL_CONN_DETACHED);
  sl__transport_reap(&F.t);
  assert_int_equal(F.t.conn_count, 0);

  /* Adopted: the client gets every byte once, in order, and never saw an end. */
  sl_wire_reader_t in;
  sl__wire_reader(&in, rec.buf, rec.len);
  sl_conn_t *n = sl__conn_adopt(&F.t, theirs, &in, 0);
  assert_non_null(n);
  assert_int_equal(F.rec.data_calls, 100);
  assert_int_equal(n->q_bytes, (size_t)(BIG - written) + 6 + 5);
  size_t total = 1 + BIG + 6 + 5;
  char *want = malloc(total), *buf = malloc(total);
  assert_non_null(want);
  assert_non_null(buf);
  want[0] = 'x';
  memcpy(want + 1, f1->wire, BIG);
  memcpy(want + 1 + BIG, "second", 6);
  memcpy(want + 1 + BIG + 6, "third", 5);
  size_t len = 0;
  for (int rounds = 0; len < total && rounds < 1000000; rounds++) {
    sl__conn_flush(n);
    if (n->flags & SL_CONN_WANT_WRITE)
      sl__conn_io(n, EPOLLOUT);
    peer_read(buf, total, &len);
  }
  assert_int_equal(len, total);
  assert_memory_equal(buf, want, total);
  free(want);
  free(buf);
  sl__wire_free(&rec);
  sl__frame_unref(f1);

  /* A bad record is refused, and the socket given back untouched (closed here only). */
  int again = dup(theirs);
  sl_wire_reader_t bad;
  sl__wire_reader(&bad, "\x01", 1);
  assert_null(sl__conn_adopt(&F.t, again, &bad, 0));
  char probe;
  assert_int_equal(recv(F.peer, &probe, 1, MSG_DONTWAIT), -1); /* no FIN reached the client */
  assert_int_equal(errno, EAGAIN);
}

/* --- the sweep ----------------------------------------------------------------------------- */

static void test_sweep_linger_after_fin(void **state) {
  (void)state;
  F.cfg.linger = 2.0;
  sl_conn_t *c = accept_pair();
  sl__conn_end(c);
  sl__conn_flush(c); /* empty queue: FIN at once */
  assert_true(c->flags & SL_CONN_FIN_SENT);
  uint64_t deadline = c->deadline;
  assert_int_equal(deadline, sl__transport_now(&F.t) + 2000);
  sl__conn_set_deadline(c, 1); /* the protocol's deadline no longer applies */
  assert_int_equal(c->deadline, deadline);
  sl__transport_sweep(&F.t, deadline - 1);
  assert_int_equal(F.rec.close_calls, 0);
  assert_int_equal(F.rec.timeout_calls, 0); /* past our FIN the protocol has no deadlines */
  sl__transport_sweep(&F.t, deadline);
  assert_int_equal(F.rec.close_calls, 1);
}

static void test_sweep_calls_protocol_timeout(void **state) {
  (void)state;
  accept_pair();
  sl__transport_sweep(&F.t, 12345);
  assert_int_equal(F.rec.timeout_calls, 1);
  assert_int_equal(F.rec.timeout_now, 12345);
  assert_int_equal(F.rec.close_calls, 0);
}

static void test_sweep_write_stall_closes_hard(void **state) {
  (void)state;
  F.cfg.write_timeout = 1.0;
  sl_conn_t *c = accept_pair();
  small_sndbuf(c);
  push_unref(c, big_frame(BIG, 's'));
  sl__conn_flush(c);
  assert_true(c->flags & SL_CONN_WANT_WRITE);
  uint64_t last = c->last_write;
  sl__transport_sweep(&F.t, last + 1000);
  assert_int_equal(F.rec.close_calls, 0);
  sl__transport_sweep(&F.t, last + 1001);
  assert_int_equal(F.rec.close_calls, 1);
  assert_true(c->flags & SL_CONN_HARD_CLOSE);
}

static void test_shutdown_and_close_all(void **state) {
  (void)state;
  accept_pair();
  int keep = F.peer;
  accept_pair();
  sl__transport_shutdown(&F.t);
  assert_true(F.t.draining);
  assert_int_equal(F.rec.shutdown_calls, 2);
  assert_int_equal(sl__transport_close_all(&F.t), 2);
  assert_int_equal(F.rec.close_calls, 2);
  assert_int_equal(sl__transport_close_all(&F.t), 0);
  close(keep);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_data_reaches_protocol, setup, teardown),
    cmocka_unit_test_setup_teardown(test_eof_told_to_protocol, setup, teardown),
    cmocka_unit_test_setup_teardown(test_flush_writes_queue_in_one_write, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unchunked_connection_writes_payload_only, setup, teardown),
    cmocka_unit_test_setup_teardown(test_full_socket_finishes_on_epollout, setup, teardown),
    cmocka_unit_test_setup_teardown(test_low_water_calls_writable, setup, teardown),
    cmocka_unit_test_setup_teardown(test_end_chunked_stream_terminator_then_fin, setup, teardown),
    cmocka_unit_test_setup_teardown(test_end_plain_response_no_terminator, setup, teardown),
    cmocka_unit_test_setup_teardown(test_close_inside_on_data, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hard_close_with_unsent_output_resets, setup, teardown),
    cmocka_unit_test_setup_teardown(test_plain_close_after_queue_written_is_clean, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cork_holds_writes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_handoff_freeze_export_release_adopt, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sweep_linger_after_fin, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sweep_calls_protocol_timeout, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sweep_write_stall_closes_hard, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shutdown_and_close_all, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
