/* test_delivery.c — delivery.c over a real transport (socketpair connections) and a real uv loop:
 * one write per connection per turn however many frames the turn queued; the flush window (a busy
 * subscriber's updates wait on the fan-out list and go together when the window's timer fires, a
 * quiet one's go at once); the slow-consumer cut at --max-queue (updates dropped, other frames
 * kept, then the end) and the exemption of opening frames; back-pressure between two deliveries
 * sharing a pacer (the answer corked, then released by the turn that sees the other catch up);
 * forget on close; and the end of every stream after a gap, with an "id:" event first. */
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

#include "net/delivery.h"

#define MAX_PEERS 8

typedef struct side_s {
  sl_transport_t t;
  sl_delivery_t d;
  sl_metrics_t metrics;
  uv_async_t wake;
  int wakes;
} side_t;

typedef struct fixture_s {
  uv_loop_t loop;
  int epfd;
  sl_config_t cfg;
  sl_pacer_t pacer;
  sl_delivery_t *members[2];
  side_t side[2];
  int peers[MAX_PEERS];
  size_t npeers;
  int closes;
} fixture_t;

static fixture_t F;

static void p_data(sl_conn_t *c, const char *data, size_t len) {
  (void)c, (void)data, (void)len;
}
static void p_eof(sl_conn_t *c) {
  (void)c;
}
static void p_timeout(sl_conn_t *c, uint64_t now) {
  (void)c, (void)now;
}
static void p_close(sl_conn_t *c) {
  F.closes++;
  sl__delivery_forget(c); /* as every protocol must */
}
static void p_shutdown(sl_conn_t *c) {
  (void)c;
}

static const sl_conn_cbs_t proto = {
  .on_data = p_data,
  .on_eof = p_eof,
  .on_timeout = p_timeout,
  .on_close = p_close,
  .on_shutdown = p_shutdown,
};

static void on_wake(uv_async_t *a) {
  ((side_t *)a->data)->wakes++;
}

static void side_init(side_t *s, unsigned index) {
  assert_int_equal(sl__transport_init(&s->t, &F.loop, F.epfd, index, &F.cfg, &s->metrics), 0);
  sl__transport_set_protocol(&s->t, &proto, sizeof(sl_conn_t), NULL, &F);
  assert_int_equal(uv_async_init(&F.loop, &s->wake, on_wake), 0);
  s->wake.data = s;
  assert_int_equal(sl__delivery_init(&s->d, &s->t, &F.loop, &s->wake, &F.pacer, &F.cfg,
                                     &s->metrics), 0);
}

/* count deliveries share the pacer. Config changes must come before (the window is read at init). */
static void start(unsigned count, size_t max_pending) {
  F.pacer.max_pending = max_pending;
  F.pacer.count = count;
  F.pacer.members = F.members;
  for (unsigned i = 0; i < count; i++) {
    side_init(&F.side[i], i);
    F.members[i] = &F.side[i].d;
  }
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  assert_int_equal(uv_loop_init(&F.loop), 0);
  F.epfd = epoll_create1(EPOLL_CLOEXEC);
  assert_true(F.epfd >= 0);
  sl_config_init(&F.cfg);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (unsigned i = 0; i < F.pacer.count; i++)
    sl__transport_destroy(&F.side[i].t);
  for (unsigned i = 0; i < F.pacer.count; i++) {
    sl__delivery_close(&F.side[i].d);
    uv_close((uv_handle_t *)&F.side[i].wake, NULL);
  }
  assert_int_equal(uv_run(&F.loop, UV_RUN_DEFAULT), 0);
  for (unsigned i = 0; i < F.pacer.count; i++)
    sl__delivery_destroy(&F.side[i].d);
  for (size_t i = 0; i < F.npeers; i++)
    close(F.peers[i]);
  close(F.epfd);
  assert_int_equal(uv_loop_close(&F.loop), 0);
  return 0;
}

/* A connection of side i; *peer is the client's end. */
static sl_conn_t *connect_to(unsigned i, int *peer) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_true(F.npeers < MAX_PEERS);
  F.peers[F.npeers++] = sv[1];
  *peer = sv[1];
  sl_conn_t *c = sl__conn_accept(&F.side[i].t, sv[0], 0, 0);
  assert_non_null(c);
  return c;
}

/* Everything the peer can read now; returns the length, buf NUL-terminated. eof set at EOF. */
static size_t drain_peer(int peer, char *buf, size_t cap, int *eof) {
  size_t len = 0;
  if (eof)
    *eof = 0;
  for (;;) {
    ssize_t n = recv(peer, buf + len, cap - 1 - len, MSG_DONTWAIT);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    if (n == 0 && eof)
      *eof = 1;
    break;
  }
  buf[len] = '\0';
  return len;
}

/* A chunk frame of an update with the given seq (0 = not an update). */
static sl_frame_t *chunk(const char *text, uint64_t seq) {
  sl_frame_t *f = sl__frame_chunk(text, strlen(text));
  assert_non_null(f);
  f->seq = seq;
  return f;
}

/* A real update frame with an id, for dispatch. */
static sl_frame_t *update(const char *topic, const char *id, uint64_t seq) {
  const char *const topics[] = {topic};
  sl_update_t u = {.topics = topics, .topic_count = 1, .data = id, .data_len = strlen(id)};
  sl_frame_t *f = sl__frame_update(&u, id, strlen(id));
  assert_non_null(f);
  f->seq = seq;
  return f;
}

static int send_unref(int (*send_fn)(sl_conn_t *, sl_frame_t *), sl_conn_t *c, sl_frame_t *f) {
  int r = send_fn(c, f);
  sl__frame_unref(f);
  return r;
}

static uint64_t writes(unsigned i) {
  return sl__metric_get(&F.side[i].metrics.writes_total);
}

/* --- the flush list ------------------------------------------------------------------------ */

static void test_one_write_per_connection_per_turn(void **state) {
  (void)state;
  start(1, 0);
  int pa, pb;
  sl_conn_t *a = connect_to(0, &pa), *b = connect_to(0, &pb);
  for (int i = 0; i < 3; i++) {
    char t[16];
    snprintf(t, sizeof t, "a%d;", i);
    assert_int_equal(send_unref(sl__delivery_send, a, sl__frame_raw(t, 3)), 0);
    snprintf(t, sizeof t, "b%d;", i);
    assert_int_equal(send_unref(sl__delivery_send, b, sl__frame_raw(t, 3)), 0);
  }
  char buf[64];
  assert_int_equal(drain_peer(pa, buf, sizeof buf, NULL), 0); /* not before the turn ends */
  sl__delivery_turn_end(&F.side[0].d);
  assert_int_equal(writes(0), 2);
  assert_int_equal(drain_peer(pa, buf, sizeof buf, NULL), 9);
  assert_string_equal(buf, "a0;a1;a2;");
  assert_int_equal(drain_peer(pb, buf, sizeof buf, NULL), 9);
  assert_string_equal(buf, "b0;b1;b2;");
  assert_null(F.side[0].d.flush_head);
  sl__delivery_turn_end(&F.side[0].d); /* nothing queued: no write */
  assert_int_equal(writes(0), 2);
}

/* --- the flush window ---------------------------------------------------------------------- */

static void test_busy_subscriber_waits_for_window_quiet_one_does_not(void **state) {
  (void)state;
  F.cfg.flush_window = 0.05;
  start(1, 0);
  sl_delivery_t *d = &F.side[0].d;
  int pb, pq;
  sl_conn_t *busy = connect_to(0, &pb);
  sl_conn_t *quiet = connect_to(0, &pq);
  char buf[256];

  /* The first pass of the worker: nothing was flushed within a window, so it goes at once. */
  assert_int_equal(send_unref(sl__delivery_send_update, busy, chunk("u1;", 1)), 0);
  assert_true(busy->flags & SL_CONN_IN_FANOUT); /* written to just now (accepted) */
  sl__delivery_schedule(d);
  assert_false(uv_is_active((uv_handle_t *)&d->fanout_timer));
  sl__delivery_turn_end(d);
  assert_int_equal(writes(0), 1);
  assert_int_equal(drain_peer(pb, buf, sizeof buf, NULL), 3);

  /* Within the window: the busy subscriber's next updates wait for the timer, together. */
  assert_int_equal(send_unref(sl__delivery_send_update, busy, chunk("u2;", 2)), 0);
  sl__delivery_schedule(d);
  assert_true(uv_is_active((uv_handle_t *)&d->fanout_timer));
  /* A subscriber written to long ago gets its update this turn regardless. */
  quiet->last_write = 0;
  assert_int_equal(send_unref(sl__delivery_send_update, quiet, chunk("q2;", 2)), 0);
  assert_false(quiet->flags & SL_CONN_IN_FANOUT);
  sl__delivery_turn_end(d);
  assert_int_equal(writes(0), 2);
  assert_int_equal(drain_peer(pq, buf, sizeof buf, NULL), 3);
  assert_int_equal(drain_peer(pb, buf, sizeof buf, NULL), 0);
  assert_int_equal(send_unref(sl__delivery_send_update, busy, chunk("u3;", 3)), 0);
  sl__delivery_schedule(d);
  sl__delivery_turn_end(d);
  assert_int_equal(drain_peer(pb, buf, sizeof buf, NULL), 0);
  assert_int_equal(writes(0), 2);

  /* The window ends: one write with both. */
  uint64_t t0 = uv_hrtime();
  uv_run(&F.loop, UV_RUN_ONCE);
  assert_true(uv_hrtime() - t0 < 100 * 1000000ull);
  assert_int_equal(writes(0), 3);
  assert_int_equal(drain_peer(pb, buf, sizeof buf, NULL), 6);
  assert_string_equal(buf, "u2;u3;");
  assert_null(d->fanout_head);
  assert_false(busy->flags & (SL_CONN_IN_FANOUT | SL_CONN_IN_FLUSH));
}

/* --- the queue limit ----------------------------------------------------------------------- */

static void test_slow_stream_evicted_keeps_non_updates(void **state) {
  (void)state;
  F.cfg.max_queue = 100;
  start(1, 0);
  int peer;
  sl_conn_t *c = connect_to(0, &peer);
  sl__conn_mark(c, SL_CONN_STREAM | SL_CONN_CHUNKED);
  static const char head[] = "HTTP/1.1 200 OK\r\n\r\n";
  assert_int_equal(send_unref(sl__delivery_send, c, sl__frame_raw(head, sizeof head - 1)), 0);
  /* Each update takes 33 bytes on the wire: head 19 + 33 + comment 8 + 33 = 93 fit in 100. */
  sl_frame_t *u1 = chunk("data: update one, 1234567\n\n", 1);
  size_t ulen = sl__conn_frame_len(c, u1);
  assert_int_equal(sl__delivery_send_update(c, u1), 0);
  sl__frame_unref(u1);
  assert_int_equal(send_unref(sl__delivery_send, c, chunk(":\n\n", 0)), 0);
  assert_int_equal(send_unref(sl__delivery_send_update, c, chunk("data: update two, 1234567\n\n", 2)), 0);
  assert_true(c->q_bytes + ulen > F.cfg.max_queue);
  assert_int_equal(sl__metric_get(&F.side[0].metrics.slow_disconnects_total), 0);
  assert_int_equal(send_unref(sl__delivery_send_update, c, chunk("data: update 3!!, 1234567\n\n", 3)),
                   -ENOBUFS);
  assert_int_equal(sl__metric_get(&F.side[0].metrics.slow_disconnects_total), 1);
  assert_true(c->flags & SL_CONN_EVICTED);
  assert_int_equal(send_unref(sl__delivery_send_update, c, chunk("data: 4\n\n", 4)), -EPIPE);
  sl__delivery_turn_end(&F.side[0].d);
  char buf[512];
  int eof;
  drain_peer(peer, buf, sizeof buf, &eof);
  assert_string_equal(buf, "HTTP/1.1 200 OK\r\n\r\n"
                           "3\r\n:\n\n\r\n"
                           "0\r\n\r\n");
  assert_true(eof);
  assert_int_equal(sl__metric_get(&F.side[0].metrics.delivered_total), 0);
}

static void test_opening_frames_not_counted(void **state) {
  (void)state;
  F.cfg.max_queue = 100;
  start(1, 0);
  int peer;
  sl_conn_t *c = connect_to(0, &peer);
  sl__conn_mark(c, SL_CONN_STREAM | SL_CONN_CHUNKED);
  for (uint64_t s = 1; s <= 5; s++)
    assert_int_equal(send_unref(sl__delivery_send_opening, c,
                                chunk("data: replayed update, 1234567\n\n", s)), 0);
  assert_true(c->q_bytes > F.cfg.max_queue);
  assert_false(c->flags & SL_CONN_EVICTED);
  c->q_opening = c->q_bytes; /* as the stream's owner does */
  assert_int_equal(send_unref(sl__delivery_send_update, c, chunk("data: live\n\n", 6)), 0);
  assert_int_equal(sl__metric_get(&F.side[0].metrics.slow_disconnects_total), 0);
  assert_null(F.side[0].d.fanout_head); /* past half of --max-queue: written now */
  sl__delivery_turn_end(&F.side[0].d);
  char buf[512];
  drain_peer(peer, buf, sizeof buf, NULL);
  assert_int_equal(sl__metric_get(&F.side[0].metrics.delivered_total), 6);
  assert_int_equal(c->q_opening, 0);
}

/* --- back-pressure ------------------------------------------------------------------------- */

static void dispatch_range(sl_delivery_t *d, uint64_t from, uint64_t to) {
  for (uint64_t s = from; s <= to; s++) {
    sl_frame_t *f = chunk("data: x\n\n", s);
    sl__delivery_dispatch(d, f);
    sl__frame_unref(f);
  }
}

static void test_answer_held_until_other_worker_catches_up(void **state) {
  (void)state;
  start(2, 1);
  sl_delivery_t *d0 = &F.side[0].d, *d1 = &F.side[1].d;
  int peer;
  sl_conn_t *pub = connect_to(0, &peer);
  dispatch_range(d0, 1, 3);
  dispatch_range(d1, 1, 1);
  sl__delivery_turn_end(d0);
  sl__delivery_turn_end(d1);
  assert_int_equal(atomic_load(&d0->flushed_seq), 3);
  assert_int_equal(atomic_load(&d1->flushed_seq), 1);

  assert_int_equal(sl__delivery_hold(d0, pub, 2, uv_hrtime()), 0); /* 2 <= floor 1 + 1 */
  assert_int_equal(sl__delivery_hold(d0, pub, 3, uv_hrtime()), 1);
  assert_true(pub->flags & SL_CONN_CORKED);
  assert_int_equal(sl__metric_get(&F.side[0].metrics.held_total), 1);
  assert_int_equal(send_unref(sl__delivery_send, pub, sl__frame_raw("200 for 3;", 10)), 0);
  sl__delivery_turn_end(d0);
  char buf[64];
  assert_int_equal(drain_peer(peer, buf, sizeof buf, NULL), 0);
  assert_int_equal(writes(0), 0);

  dispatch_range(d1, 2, 2); /* the floor is 2 now: seq 3 <= 2 + 1 may go */
  sl__delivery_turn_end(d1);
  sl__delivery_turn_end(d0);
  assert_int_equal(drain_peer(peer, buf, sizeof buf, NULL), 10);
  assert_string_equal(buf, "200 for 3;");
  assert_false(pub->flags & SL_CONN_CORKED);
  assert_int_equal(atomic_load(&d0->held_count), 0);
  /* The worker that progressed woke the one holding answers. */
  uv_run(&F.loop, UV_RUN_NOWAIT);
  assert_true(F.side[0].wakes >= 1);
}

static void test_answers_queue_behind_held_one(void **state) {
  (void)state;
  start(2, 1);
  sl_delivery_t *d0 = &F.side[0].d, *d1 = &F.side[1].d;
  int peer;
  sl_conn_t *pub = connect_to(0, &peer);
  dispatch_range(d0, 1, 4);
  sl__delivery_turn_end(d0);
  sl__delivery_turn_end(d1); /* floor 0 */
  assert_int_equal(sl__delivery_hold(d0, pub, 4, uv_hrtime()), 1);
  assert_int_equal(send_unref(sl__delivery_send, pub, sl__frame_raw("A;", 2)), 0);
  /* seq 1 alone would go now, but it answers after A on the same connection: it waits too. */
  assert_int_equal(sl__delivery_hold(d0, pub, 1, uv_hrtime()), 1);
  assert_int_equal(send_unref(sl__delivery_send, pub, sl__frame_raw("B;", 2)), 0);
  dispatch_range(d1, 1, 2); /* floor 2: releases neither (4 > 3), order kept */
  sl__delivery_turn_end(d1);
  sl__delivery_turn_end(d0);
  char buf[64];
  assert_int_equal(drain_peer(peer, buf, sizeof buf, NULL), 0);
  dispatch_range(d1, 3, 4);
  sl__delivery_turn_end(d1);
  sl__delivery_turn_end(d0);
  assert_int_equal(drain_peer(peer, buf, sizeof buf, NULL), 4);
  assert_string_equal(buf, "A;B;");
  assert_int_equal(pub->corks, 0);
}

static void test_forget_on_close_drops_held(void **state) {
  (void)state;
  start(2, 1);
  sl_delivery_t *d0 = &F.side[0].d, *d1 = &F.side[1].d;
  int peer;
  sl_conn_t *pub = connect_to(0, &peer);
  dispatch_range(d0, 1, 5);
  sl__delivery_turn_end(d0);
  sl__delivery_turn_end(d1);
  assert_int_equal(sl__delivery_hold(d0, pub, 5, uv_hrtime()), 1);
  assert_int_equal(d0->held_len, 1);
  sl__conn_close(pub);
  assert_null(d0->held[d0->held_head].conn);
  sl__transport_reap(&F.side[0].t); /* its memory is gone: the release must not touch it */
  dispatch_range(d1, 1, 5);
  sl__delivery_turn_end(d1);
  sl__delivery_turn_end(d0);
  assert_int_equal(d0->held_len, 0);
  assert_int_equal(atomic_load(&d0->held_count), 0);
}

/* --- dispatch and gaps --------------------------------------------------------------------- */

static void test_dispatch_reaches_subscriber(void **state) {
  (void)state;
  start(1, 0);
  sl_delivery_t *d = &F.side[0].d;
  int peer, other_peer;
  sl_conn_t *c = connect_to(0, &peer);
  sl_conn_t *other = connect_to(0, &other_peer);
  sl__conn_mark(c, SL_CONN_STREAM);
  sl_selector_t sel;
  sl__selector_init(&sel, "https://example.com/a", strlen("https://example.com/a"));
  sl_sub_t *sub = sl__sub_new(c, &sel, 1, NULL, 0);
  assert_non_null(sub);
  assert_int_equal(sl__broker_add(&d->broker, sub), 0);
  sl_frame_t *fa = update("https://example.com/a", "ida", 1);
  sl_frame_t *fb = update("https://example.com/b", "idb", 2);
  sl__delivery_dispatch(d, fa);
  sl__delivery_dispatch(d, fb);
  sl__delivery_schedule(d);
  sl__delivery_turn_end(d);
  char buf[256];
  drain_peer(peer, buf, sizeof buf, NULL);
  assert_non_null(strstr(buf, "id: ida\n"));
  assert_null(strstr(buf, "idb"));
  assert_int_equal(drain_peer(other_peer, buf, sizeof buf, NULL), 0);
  assert_int_equal(d->dispatched_seq, 2);
  assert_int_equal(atomic_load(&d->flushed_seq), 2);
  sl__broker_remove(&d->broker, sub);
  sl__frame_unref(fa);
  sl__frame_unref(fb);
  (void)other;
}

static void test_gap_ends_streams_with_id_event(void **state) {
  (void)state;
  start(1, 0);
  sl_delivery_t *d = &F.side[0].d;
  int ps, pr;
  sl_conn_t *s = connect_to(0, &ps);
  sl_conn_t *r = connect_to(0, &pr);
  sl__conn_mark(s, SL_CONN_STREAM | SL_CONN_CHUNKED);
  F.cfg.reconnect_spread = 0; /* no retry: line, so the bytes are exact */
  sl_frame_t *f1 = update("https://example.com/a", "u1", 1);
  sl__delivery_dispatch(d, f1);
  sl__frame_unref(f1);
  sl_frame_t *f4 = update("https://example.com/a", "u4", 4); /* 2 and 3 never came */
  sl__delivery_dispatch(d, f4);
  sl__frame_unref(f4);
  assert_int_equal(d->dispatched_seq, 4);
  assert_true(s->flags & SL_CONN_CLOSE_AFTER);
  assert_false(r->flags & SL_CONN_CLOSE_AFTER); /* not a stream: untouched */
  sl__delivery_turn_end(d);
  char buf[256];
  int eof;
  drain_peer(ps, buf, sizeof buf, &eof);
  assert_string_equal(buf, "8\r\nid: u1\n\n\r\n0\r\n\r\n");
  assert_true(eof);
  assert_int_equal(drain_peer(pr, buf, sizeof buf, &eof), 0);
  assert_false(eof);
}

static void test_gap_before_any_update_says_earliest(void **state) {
  (void)state;
  start(1, 0);
  sl_delivery_t *d = &F.side[0].d;
  int ps;
  sl_conn_t *s = connect_to(0, &ps);
  sl__conn_mark(s, SL_CONN_STREAM | SL_CONN_CHUNKED);
  sl__delivery_gap(d, 7);
  assert_int_equal(d->dispatched_seq, 7);
  sl__delivery_turn_end(d);
  char buf[256];
  int eof;
  drain_peer(ps, buf, sizeof buf, &eof);
  /* With the default --reconnect-spread the mark carries a retry: jittered over it. */
  unsigned len, ms;
  int at = 0;
  assert_int_equal(sscanf(buf, "%x\r\nretry: %u\nid: earliest\n\n\r\n0\r\n\r\n%n", &len, &ms, &at), 2);
  assert_true(at > 0 && buf[at] == '\0');
  assert_true(ms >= 1 && ms <= SL_DEFAULT_RECONNECT_SPREAD * 1000);
  assert_true(eof);
  assert_int_equal(sl__metric_get(&F.side[0].metrics.lost_update_ends_total), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_one_write_per_connection_per_turn, setup, teardown),
    cmocka_unit_test_setup_teardown(test_busy_subscriber_waits_for_window_quiet_one_does_not,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(test_slow_stream_evicted_keeps_non_updates, setup, teardown),
    cmocka_unit_test_setup_teardown(test_opening_frames_not_counted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_answer_held_until_other_worker_catches_up, setup, teardown),
    cmocka_unit_test_setup_teardown(test_answers_queue_behind_held_one, setup, teardown),
    cmocka_unit_test_setup_teardown(test_forget_on_close_drops_held, setup, teardown),
    cmocka_unit_test_setup_teardown(test_dispatch_reaches_subscriber, setup, teardown),
    cmocka_unit_test_setup_teardown(test_gap_ends_streams_with_id_event, setup, teardown),
    cmocka_unit_test_setup_teardown(test_gap_before_any_update_says_earliest, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
