"""test_slow_consumer — a subscriber that stops reading is cut once its queue passes --max-queue,
while the others keep receiving everything and the hub's memory stays bounded.

Setup: --max-queue 65536, --history-size 100. One subscriber connects with a 4 KiB receive
buffer and never reads; twenty read as fast as they can. 4000 updates of 8 KiB (32 MiB per
subscriber) are published; the publisher never runs more than LAG updates ahead of the slowest
fast reader, so a fast subscriber's backlog stays far below the limit and only the stalled one
can overflow.

Memory bound: what the hub legitimately holds is at most 21 queues x 64 KiB, 100 history entries
x 8 KiB and a few request buffers, about 3 MiB. Had the stalled subscriber's queue not been
bounded, it would hold the 32 MiB it did not read, less the ~3 MiB the kernel buffers absorb, so
the peak RSS growth bound of 16 MiB separates the two with margin on both sides; the absolute
bound of 64 MiB (non-sanitizer builds) is the brief's. Under AddressSanitizer the quarantine of
freed memory is turned off for this hub, so that freed frames are reused as they would be in a
normal build and the growth bound still means something.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

FAST = 20
UPDATES = 4000
SIZE = 8192
LAG = 2
MAX_QUEUE = 65536
GROWTH_BOUND_KIB = 16 * 1024
ABSOLUTE_BOUND_KIB = 64 * 1024
TOPIC = "urn:slow:t"

t = ht.Checker("test_slow_consumer")


def payload(i):
    head = f"{i:06d}:"
    return head + "x" * (SIZE - len(head))


def record(sub, ev):
    sub.ids.append(ev.id)
    if ev.data != payload(len(sub.ids) - 1):
        sub.bad_data += 1


def test_slow_consumer(hub):
    swarm = ht.Swarm()
    slow = ht.AsyncSubscriber(hub.port, ht.sub_query([TOPIC]), on_event=record, rcvbuf=4096)
    slow.ids, slow.bad_data = [], 0
    slow.paused = True
    swarm.add(slow)
    fast = []
    for _ in range(FAST):
        sub = ht.AsyncSubscriber(hub.port, ht.sub_query([TOPIC]), on_event=record)
        sub.ids, sub.bad_data = [], 0
        swarm.add(sub)
        fast.append(sub)
    ok = swarm.run(lambda: all(s.opened for s in fast) and slow.state == "head", 30)
    t.check(ok, f"{FAST} fast subscribers open, the slow one sent its request and reads nothing",
            [s.error for s in swarm.subs if s.error])
    subscribed = ht.wait_until(
        lambda: ht.metric(hub.metrics(), "sluice_subscribers") == FAST + 1, 10 * ht.SLOW)
    t.check(subscribed, f"sluice_subscribers is {FAST + 1} (the slow one is subscribed too)")
    base_rss = hub.status_kib("VmRSS")
    print(f"hub VmRSS before publishing: {base_rss} KiB", flush=True)

    published = []
    errors = []

    def run():
        pub = ht.Publisher(hub.port)
        try:
            for i in range(UPDATES):
                deadline = time.monotonic() + 30 * ht.SLOW
                while min(len(s.ids) for s in fast) < i - LAG:
                    if time.monotonic() > deadline or any(s.state == "closed" for s in fast):
                        errors.append(f"fast subscribers stopped progressing at update {i}")
                        return
                    time.sleep(0.0005)
                resp = pub.publish(TOPIC, data=payload(i))
                if resp.status != 200:
                    errors.append(f"update {i}: {resp.status} {resp.text}")
                    return
                published.append(resp.text)
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            pub.close()

    th = threading.Thread(target=run)
    t0 = time.monotonic()
    th.start()
    peak = [base_rss or 0]

    def progress():
        rss = hub.status_kib("VmRSS")
        if rss:
            peak[0] = max(peak[0], rss)
        return not th.is_alive() and all(len(s.ids) >= len(published) or s.state == "closed"
                                         for s in fast)

    swarm.run(progress, 110)
    th.join(10)
    elapsed = time.monotonic() - t0
    t.check(not errors and len(published) == UPDATES,
            f"published {len(published)} updates of {SIZE} bytes ({elapsed:.1f}s)", errors[:3])
    hwm = hub.status_kib("VmHWM")
    end_rss = hub.status_kib("VmRSS")
    print(f"hub VmRSS: start {base_rss} KiB, sampled peak {peak[0]} KiB, end {end_rss} KiB, "
          f"VmHWM {hwm} KiB", flush=True)

    closed_fast = [s.error for s in fast if s.state == "closed"]
    t.eq(closed_fast, [], "no fast subscriber was disconnected")
    wrong = [i for i, s in enumerate(fast) if s.ids != published]
    t.check(not wrong, f"all {FAST} fast subscribers got all {UPDATES} updates once, in order",
            f"{len(wrong)} differ; e.g. {len(fast[wrong[0]].ids)} ids" if wrong else "")
    t.eq(sum(s.bad_data for s in fast), 0, "fast subscribers' data intact")

    samples = hub.metrics()
    t.eq(ht.metric(samples, "sluice_slow_consumer_disconnects_total"), 1.0,
         "sluice_slow_consumer_disconnects_total is 1 (the stalled subscriber, no other)")

    growth = max(peak[0], hwm or 0) - (base_rss or 0)
    t.check(base_rss is not None and growth < GROWTH_BOUND_KIB,
            f"hub peak RSS grew by {growth} KiB < {GROWTH_BOUND_KIB} KiB while "
            f"{UPDATES * SIZE // 1024} KiB went unread by the stalled subscriber")
    if not ht.SANITIZED:
        t.check(hwm is not None and hwm < ABSOLUTE_BOUND_KIB,
                f"hub peak RSS (VmHWM {hwm} KiB) < {ABSOLUTE_BOUND_KIB} KiB")

    # Now read the stalled subscriber: what it was sent before the cut, then the end of stream.
    slow.paused = False
    ended = swarm.run(lambda: slow.state == "closed", 30)
    t.check(ended, "the stalled subscriber's stream ends (EOF or reset) once it reads",
            f"state {slow.state}, {len(slow.ids)} events, {slow.bytes} bytes")
    t.check(slow.ids == published[:len(slow.ids)] and slow.bad_data == 0,
            "what the stalled subscriber did get is an in-order prefix of the updates",
            f"{len(slow.ids)} ids: {slow.ids[:3]}...")
    t.check(len(slow.ids) < UPDATES,
            f"the stalled subscriber got {len(slow.ids)} of {UPDATES} updates before the cut")
    swarm.close()


RESUME_UPDATES = 2000


def test_cut_then_resume():
    """The cut loses nothing: the stalled subscriber comes back with the Last-Event-ID of the
    last update it got, and history gives it exactly the rest."""
    hub = ht.start_hub(anonymous=True, max_queue=MAX_QUEUE, history_size=RESUME_UPDATES, workers=2)
    swarm = ht.Swarm()
    slow = ht.AsyncSubscriber(hub.port, ht.sub_query([TOPIC]), on_event=record, rcvbuf=4096)
    slow.ids, slow.bad_data = [], 0
    slow.paused = True
    swarm.add(slow)
    t.check(swarm.run(lambda: slow.state == "head", 10) and
            ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == 1,
                          10 * ht.SLOW), "a subscriber that reads nothing is subscribed")
    pub = ht.Publisher(hub.port)
    published = [pub.must(TOPIC, data=payload(i)) for i in range(RESUME_UPDATES)]
    pub.close()
    cut = ht.wait_until(lambda: ht.metric(hub.metrics(),
                                          "sluice_slow_consumer_disconnects_total") == 1,
                        10 * ht.SLOW)
    t.check(cut, f"{RESUME_UPDATES} updates of {SIZE} bytes unread: it is cut at --max-queue")
    slow.paused = False
    t.check(swarm.run(lambda: slow.state == "closed", 30), "it reads what it was sent, then EOF")
    got = len(slow.ids)
    t.check(slow.ids == published[:got] and slow.bad_data == 0 and got < RESUME_UPDATES,
            f"what it got before the cut is an in-order prefix ({got} updates)")
    swarm.close()
    last = slow.ids[-1] if got else "earliest"
    back = ht.SSEStream(hub.port, ht.sub_query([TOPIC]), headers={"Last-Event-ID": last})
    t.eq(back.status, 200, f"it resumes with Last-Event-ID: {last}")
    t.eq(back.response.header("mercure-last-event-id"), last,
         "the answer confirms where it resumes (Mercure-Last-Event-ID)")
    back.wait_count(RESUME_UPDATES - got, 20)
    t.eq(back.ids(), published[got:], f"and gets exactly the {RESUME_UPDATES - got} updates it "
         "missed, in order: nothing lost, nothing twice (the replay, far over --max-queue, is "
         "not counted against it)")
    back.close()

    # The replay is paged from history as the client reads: a client that resumes from the
    # earliest update and reads nothing pins a window of it (half of --max-queue here), not the
    # 16 MiB retained; live updates published meanwhile wait in history too, so it is not cut,
    # and once it reads it gets the replay, then the live ones, each once, in order.
    stuck = ht.AsyncSubscriber(hub.port, ht.sub_query([TOPIC], last_event_id="earliest"),
                               on_event=record, rcvbuf=4096)
    stuck.ids, stuck.bad_data = [], 0
    stuck.paused = True
    swarm = ht.Swarm()
    swarm.add(stuck)
    t.check(swarm.run(lambda: stuck.state == "head", 10) and
            ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == 1,
                          10 * ht.SLOW), "a client resuming from the earliest update is subscribed")
    pub = ht.Publisher(hub.port)
    live = [pub.must(TOPIC, data=payload(RESUME_UPDATES + i)) for i in range(2 * MAX_QUEUE // SIZE)]
    pub.close()
    # Read until it settles: the gauge also counts other connections' answers, which come and go.
    ht.wait_until(lambda: (ht.metric(hub.metrics(), "sluice_queued_bytes") or 0) <=
                  MAX_QUEUE // 2 + 2 * SIZE, 3 * ht.SLOW)
    queued = ht.metric(hub.metrics(), "sluice_queued_bytes")
    t.check(queued <= MAX_QUEUE // 2 + 2 * SIZE,
            f"it reads nothing: {queued} bytes queued for it, at most a window (the "
            f"{RESUME_UPDATES * SIZE // 1024} KiB retained wait in history)")
    t.eq(ht.metric(hub.metrics(), "sluice_slow_consumer_disconnects_total"), 1,
         f"{len(live)} live updates published behind its replay do not cut it")
    stuck.paused = False
    want = published + live
    t.check(swarm.run(lambda: len(stuck.ids) >= len(want) or stuck.state == "closed", 60),
            f"once it reads it gets the {len(want)} updates")
    t.check(stuck.ids == want and stuck.bad_data == 0,
            "the replay, then the live updates: each once, in order",
            f"got {len(stuck.ids)}, first mismatch at "
            f"{next((i for i, (a, b) in enumerate(zip(stuck.ids, want)) if a != b), None)}")
    swarm.close()
    t.stop_hub(hub)


def main():
    env = None
    if ht.SANITIZED:
        opts = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (opts + ":" if opts else "")
               + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"}
    hub = ht.start_hub(anonymous=True, max_queue=MAX_QUEUE, history_size=100, workers=2, env=env)
    t.section("a stalled subscriber is cut, the others get everything", test_slow_consumer, hub)
    t.stop_hub(hub)
    t.section("the cut subscriber resumes from history and misses nothing", test_cut_then_resume)
    t.finish()


if __name__ == "__main__":
    main()
