"""test_replay — a resume is paged from history as the client reads, with the in-memory history
and with the durable one (--data-dir):

- A subscriber resumes from an early id of many retained updates (two topics, it selects one)
  and reads nothing: the hub queues at most a window of the replay for it (sluice_queued_bytes),
  and with --data-dir, where each replayed frame is read from disk into memory, its RSS grows by
  no more than a few windows, not by the replay. Then it reads slowly (a 4 KiB receive buffer)
  while a publisher goes on publishing: it gets the missed updates, then the live ones, each
  once, in publish order — the live updates that came while it paged included, none twice at
  the point where the replay joins the live stream.
- Retention overtaking a paging replay (a small --history-size) loses nothing silently: the
  stream ends (sluice_replays_overtaken_total), what it got is an in-order prefix, and the client
  that comes back with its last id is told Mercure-Last-Event-ID: earliest.
"""

import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_replay")
TOPIC = "urn:replay:a"
OTHER = "urn:replay:b"
SIZE = 1024
RETAINED = 6000          # 3000 on each topic: 3 MiB on TOPIC, far over a window
LIVE = 300
WINDOW = 256 * 1024      # subscribe.c REPLAY_WINDOW
ROOT = tempfile.mkdtemp(prefix="sluice-replay-")


def payload(i):
    head = f"{i:06d}:"
    return head + "y" * (SIZE - len(head))


def record(sub, ev):
    sub.ids.append(ev.id)


def paged_resume(name, **flags):
    hub = ht.start_hub(anonymous=True, history_size=RETAINED + LIVE + 100, **flags)
    pub = ht.Publisher(hub.port)
    mine = []
    for i in range(RETAINED):
        topic = TOPIC if i % 2 == 0 else OTHER
        uid = pub.must(topic, data=payload(i))
        if topic == TOPIC:
            mine.append(uid)
    start = 50
    rss_before = hub.status_kib("VmRSS")
    slow = ht.AsyncSubscriber(hub.port, ht.sub_query([TOPIC]) + f"&last_event_id={mine[start - 1]}",
                              on_event=record, rcvbuf=4096)
    slow.ids = []
    slow.paused = True
    swarm = ht.Swarm()
    swarm.add(slow)
    t.check(swarm.run(lambda: slow.state == "head", 10) and
            ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == 1,
                          10 * ht.SLOW), f"{name}: the resume is subscribed")
    # Read until it settles: the gauge also counts other connections' answers (a /metrics
    # answer the other worker has not yet seen written), which come and go. The reading that
    # settled is the one judged; one taken after it may count such an answer again.
    bound = WINDOW + 4 * SIZE
    readings = []

    def settled():
        readings.append(ht.metric(hub.metrics(), "sluice_queued_bytes"))
        return (readings[-1] or 0) <= bound
    ht.wait_until(settled, 3 * ht.SLOW)
    queued = readings[-1]
    want_bytes = (len(mine) - start) * SIZE
    t.check(queued is not None and queued <= bound,
            f"{name}: it reads nothing, and {queued} bytes are queued for it: at most a window "
            f"({WINDOW}), not the {want_bytes} bytes it missed")
    rss_after = hub.status_kib("VmRSS")
    if "data_dir" in flags and not ht.SANITIZED:
        t.check(rss_after - rss_before < 4 * WINDOW // 1024,
                f"{name}: the hub's RSS grew by {rss_after - rss_before} KiB (less than four "
                f"windows; the replay read from disk is {want_bytes // 1024} KiB)")

    # Live updates while it pages: published from another thread as it reads.
    live = []

    def publish_live():
        p = ht.Publisher(hub.port)
        for i in range(LIVE):
            live.append(p.must(TOPIC, data=payload(RETAINED + i)))
        p.close()

    th = threading.Thread(target=publish_live)
    th.start()
    slow.paused = False
    swarm.run(lambda: slow.response is not None, 10)
    t.eq(slow.response.header("mercure-last-event-id") if slow.response else None,
         mine[start - 1], f"{name}: the id is found (Mercure-Last-Event-ID)")
    want_count = len(mine) - start + LIVE
    swarm.run(lambda: len(slow.ids) >= want_count or slow.state == "closed", 60)
    th.join(60)
    swarm.run(lambda: len(slow.ids) >= want_count or slow.state == "closed", 30)
    want = mine[start:] + live
    t.check(slow.ids == want,
            f"{name}: read slowly, it gets the {len(mine) - start} missed updates then the {LIVE} "
            "live ones, each once, in order",
            f"got {len(slow.ids)} of {len(want)}; first mismatch at "
            f"{next((i for i, (a, b) in enumerate(zip(slow.ids, want)) if a != b), None)}; "
            f"duplicates {len(slow.ids) - len(set(slow.ids))}")
    t.check(slow.state != "closed", f"{name}: the stream stays open after joining the live flow")
    t.eq(ht.metric(hub.metrics(), "sluice_replays_overtaken_total"), 0,
         f"{name}: no replay was overtaken")
    after = pub.must(TOPIC, data="last")
    swarm.run(lambda: len(slow.ids) > len(want), 10)
    t.eq(slow.ids[len(want):], [after], f"{name}: and the next live update, once")
    pub.close()
    swarm.close()
    t.stop_hub(hub)


def big(i):
    head = f"{i:06d}:"
    return head + "z" * (8192 - len(head))


def test_overtaken():
    # 16 MiB retained: more than the kernel's socket buffers take, so the replay is still paging
    # (not caught up) when the updates that push its next pages out of history are published.
    keep = 2000
    hub = ht.start_hub(anonymous=True, history_size=keep, max_queue=65536)
    pub = ht.Publisher(hub.port)
    ids = [pub.must(TOPIC, data=big(i)) for i in range(keep)]
    slow = ht.AsyncSubscriber(hub.port, ht.sub_query([TOPIC], last_event_id="earliest"),
                              on_event=record, rcvbuf=4096)
    slow.ids = []
    slow.paused = True
    swarm = ht.Swarm()
    swarm.add(slow)
    t.check(swarm.run(lambda: slow.state == "head", 10), "a client resumes from earliest")
    more = [pub.must(TOPIC, data=big(keep + i)) for i in range(2 * keep)]
    pub.close()
    slow.paused = False
    t.check(swarm.run(lambda: slow.state == "closed", 30),
            "retention dropped what its replay had still to send: the stream ends")
    t.eq(ht.metric(hub.metrics(), "sluice_replays_overtaken_total"), 1,
         "sluice_replays_overtaken_total counts it")
    every = ids + more
    got = slow.ids
    t.check(0 < len(got) < len(every) and got == every[:len(got)],
            f"what it got is an in-order prefix ({len(got)} updates), nothing skipped")
    swarm.close()
    back = ht.SSEStream(hub.port, ht.sub_query([TOPIC]), headers={"Last-Event-ID": got[-1]})
    t.eq(back.response.header("mercure-last-event-id"), "earliest",
         "coming back with its last id, it is told earliest: the loss is announced")
    back.wait_count(keep, 20)
    t.eq(back.ids(), every[-keep:], "and gets everything retained")
    back.close()
    t.stop_hub(hub)


def main():
    try:
        t.section("memory history: a paged resume, read slowly, then live",
                  lambda: paged_resume("memory"))
        t.section("durable history: a paged resume, read slowly, then live",
                  lambda: paged_resume("lmdb", data_dir=os.path.join(ROOT, "d"), fsync="off"))
        t.section("retention overtakes a paging replay", test_overtaken)
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)
    t.finish()


if __name__ == "__main__":
    main()
