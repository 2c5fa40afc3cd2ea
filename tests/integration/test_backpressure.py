"""test_backpressure — --max-pending: a publisher's answer waits while its update is more than
that many updates ahead of what every worker has written, and nothing else changes.

- Pipelined publishes on one connection, far more than --max-pending 1, sent in one write so the
  hub parses them all before it has written any: every answer is 200, in order, with the id that
  was asked for; a GET pipelined behind them is answered after them; some answers were held
  (sluice_publish_held_total > 0); the subscriber receives every update in order.
- The same with --max-pending 0: nothing is ever held.
- A subscription sent on a connection right behind held answers opens a stream that stays
  open (the sweep does not take it for an expired token) and delivers.
- A subscriber that never reads holds no publisher back: its updates wait in its own queue, so
  one-at-a-time publishes (each waiting for its answer) all complete and a reading subscriber
  gets them all.
- A drain while answers are held (300 more subscribers make each pass slow; the signal goes once
  sluice_publish_held_total moved): every update answered 200 reaches the subscriber, whose
  stream then ends cleanly; the hub exits 0.
- --max-pending above its bound is refused with exit 2.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

TOPIC = "urn:bp:t"
PIPELINED = 60

t = ht.Checker("test_backpressure")


def pipelined_requests(port, n, prefix, tail_get=True):
    """n publishes (ids prefix-0..n-1) and, with tail_get, a GET /healthz, as one byte string."""
    token = ht.mint_token()
    conn = ht.HTTPConn(port)
    out = bytearray()
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {token}"}
    for i in range(n):
        body = ht.form(ht.publish_fields(TOPIC, data=f"d{i}", id=f"{prefix}-{i}"))
        out += conn.build("POST", ht.HUB_PATH, hdrs, body)
    if tail_get:
        out += conn.build("GET", "/healthz")
    return conn, bytes(out)


def check_pipelined(hub, prefix, want_held):
    sub = ht.SSEStream(hub.port, ht.sub_query([TOPIC]))
    t.check(sub.status == 200 and sub.wait_open(), "subscriber connected", sub.status)
    conn, data = pipelined_requests(hub.port, PIPELINED, prefix)
    conn.send(data)
    answers = []
    try:
        for _ in range(PIPELINED):
            answers.append(conn.read_response("POST", timeout=20 * ht.SLOW))
        health = conn.read_response("GET", timeout=20 * ht.SLOW)
    except (ht.ConnectionClosed, OSError) as e:
        health = None
        t.check(False, "every pipelined request answered", repr(e))
    want = [f"{prefix}-{i}" for i in range(PIPELINED)]
    t.eq([(a.status, a.text) for a in answers], [(200, w) for w in want],
         f"{PIPELINED} pipelined publishes answered 200 in order with their ids")
    t.check(health is not None and health.status == 200 and health.text == "ok\n",
            "the GET pipelined behind them is answered after them",
            health and (health.status, health.text))
    conn.close()
    got = sub.wait(lambda s: len(s.events) >= PIPELINED, 20)
    t.eq(sub.ids(), want,
         "the subscriber received every update once, in order")
    sub.close()
    held = ht.metric(hub.metrics(), "sluice_publish_held_total")
    if want_held:
        t.check(held is not None and held > 0,
                "some answers waited for delivery (sluice_publish_held_total > 0)", held)
    else:
        t.eq(held, 0.0, "with --max-pending 0 no answer waits (sluice_publish_held_total 0)")


def test_stream_after_held(hub):
    """Answers held on a keep-alive connection, then a subscription on that same connection (as
    a proxy's pooled upstream connection carries both): the stream stays open and delivers."""
    held_before = ht.metric(hub.metrics(), "sluice_publish_held_total") or 0
    conn, data = pipelined_requests(hub.port, 30, "pool", tail_get=False)
    conn.send(data + conn.build("GET", ht.sub_query([TOPIC]), {"Accept": "text/event-stream"}))
    answers = [conn.read_response("POST", timeout=20 * ht.SLOW) for _ in range(30)]
    t.eq([a.status for a in answers], [200] * 30, "30 pipelined publishes answered 200")
    held = (ht.metric(hub.metrics(), "sluice_publish_held_total") or 0) - held_before
    t.check(held > 0, f"some of their answers were held ({held:.0f})", held)
    head = conn.read_head(20 * ht.SLOW)
    t.eq(head.status, 200, "the subscription behind them opens a stream")
    dec, parser = ht.ChunkedDecoder(), ht.SSEParser()
    events = []
    time.sleep(1.0)  # four sweeps: a stream wrongly taken for an expired one would end here
    ht.Publisher(hub.port).must(TOPIC, data="after", id="pool-after")
    deadline = time.monotonic() + 10 * ht.SLOW
    while not any(e.id == "pool-after" for e in events) and not dec.done:
        if conn.buf:
            events.extend(parser.feed(dec.feed(bytes(conn.buf))))
            conn.buf.clear()
            continue
        if time.monotonic() > deadline or not conn._fill(deadline):
            break
    t.check(any(e.id == "pool-after" for e in events) and not dec.done,
            "the stream is still open a second later and delivers the next update",
            f"ended {dec.done}, ids {[e.id for e in events][-3:]}")
    conn.close()


def test_stuck_subscriber(hub):
    stuck = ht.stuck_subscriber(hub.port, ht.sub_query([TOPIC]))
    reader = ht.SSEStream(hub.port, ht.sub_query([TOPIC]))
    t.check(reader.status == 200 and reader.wait_open(), "reading subscriber connected")
    pub = ht.Publisher(hub.port)
    n = 300
    big = "x" * 1024
    ids = []
    failed = None
    for i in range(n):
        try:
            resp = pub.publish(TOPIC, data=big, id=f"stuck-{i}")
        except OSError as e:  # a socket timeout here would mean the stuck reader held us back
            failed = f"update {i}: {e!r}"
            break
        if resp.status != 200:
            failed = f"update {i}: {resp.status} {resp.text}"
            break
        ids.append(resp.text)
        if i % 50 == 0:
            reader.pump(0.01)
    pub.close()
    t.check(failed is None and len(ids) == n,
            f"{n} publishes of 1 KiB each answered with --max-pending 1 while one subscriber "
            f"never reads", failed)
    got = reader.wait(lambda s: len(s.events) >= n, 20)
    t.check(got and reader.ids() == ids, "the reading subscriber received all of them in order",
            f"{len(reader.events)} received")
    reader.close()
    stuck.close()


def test_drain_with_held(hub):
    # Subscribers that never read but whose kernel buffers take everything: each costs the hub a
    # write per pass, so that with --max-pending 1 the answers stay held for a while.
    idle = [ht.raw_subscriber(hub.port, ht.sub_query([TOPIC])) for _ in range(300)]
    sub = ht.SSEStream(hub.port, ht.sub_query([TOPIC]))
    t.check(sub.status == 200 and sub.wait_open(), "subscriber connected")
    ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == 301.0, 10 * ht.SLOW)
    conn, data = pipelined_requests(hub.port, PIPELINED, "drain", tail_get=False)
    conn.send(data)
    # The signal once the hub has begun holding answers (the counter, read on another
    # connection), while the 300 passes of writes are still going.
    held = ht.wait_until(lambda: (ht.metric(hub.metrics(), "sluice_publish_held_total") or 0) > 0,
                         10 * ht.SLOW, interval=0.001)
    os.kill(hub.pid, signal.SIGTERM)
    t.check(held, "answers had begun to be held when the signal was sent")
    answers = []
    while True:
        try:
            answers.append(conn.read_response("POST", timeout=20 * ht.SLOW))
        except (ht.ConnectionClosed, OSError):
            break
    conn.close()
    statuses = sorted({a.status for a in answers})
    t.check(answers and set(statuses) <= {200, 503},
            f"pipelined publishes across the signal are answered 200 or 503, nothing else "
            f"({sum(a.status == 200 for a in answers)} x 200, "
            f"{sum(a.status == 503 for a in answers)} x 503)", statuses)
    accepted = [a.text for a in answers if a.status == 200]
    sub.wait_eof(20)
    received = set(sub.ids())
    missing = [i for i in accepted if i not in received]
    t.check(not missing, f"every update answered 200 ({len(accepted)}) reached the subscriber "
            "before its stream ended", missing[:5])
    t.check(sub.eof and sub.decoder and sub.decoder.done, "the stream ended with its terminator")
    sub.close()
    for s in idle:
        s.close()
    code = ht.wait_exit(hub.proc, 10 * ht.SLOW)
    ht.finish_hub(hub)
    t.eq(code, 0, "the hub exits 0 by itself")
    t.check(not ht.sanitizer_reports(hub), "the sanitizers found nothing", hub.log_tail())


def test_option_bound():
    r = ht.run_cli("--max-pending", "1000001")
    t.check(r.returncode == 2 and "--max-pending" in r.stderr and "at most 1000000" in r.stderr,
            "--max-pending above 1000000 is refused (exit 2, naming the bound)",
            (r.returncode, r.stderr))


def main():
    hub = ht.start_hub(anonymous=True, max_pending="1")
    t.section("pipelined publishes beyond --max-pending 1", check_pipelined, hub, "held", True)
    t.section("a subscriber that never reads holds no publisher", test_stuck_subscriber, hub)
    t.section("a stream behind held answers on one connection", test_stream_after_held, hub)
    t.stop_hub(hub)

    hub = ht.start_hub(anonymous=True, max_pending="0")
    t.section("--max-pending 0", check_pipelined, hub, "free", False)
    t.stop_hub(hub)

    hub = ht.start_hub(anonymous=True, max_pending="1")
    t.section("a drain while answers are held", test_drain_with_held, hub)
    t.section("--max-pending's bound", test_option_bound)
    t.finish()


if __name__ == "__main__":
    main()
