"""test_fanout — one thousand concurrent subscribers, one thousand updates: every subscriber
receives every update exactly once and in publish order, with the ids the hub returned to the
publisher. The subscribers are raw sockets in one selector loop (this process); the publisher is
one keep-alive connection on a thread, publishing as fast as the hub answers. Then eight
publishers at once: every subscriber sees the one same order.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

SUBSCRIBERS = 1000
UPDATES = 1000
TOPIC = "urn:fanout:t"

t = ht.Checker("test_fanout")


def record(sub, ev):
    sub.ids.append(ev.id)
    if ev.data != str(len(sub.ids) - 1):
        sub.bad_data += 1


def test_fanout(hub):
    swarm = ht.Swarm()
    half = SUBSCRIBERS // 2
    # Half select the topic, half select everything: both paths of the broker get the load.
    paths = [ht.sub_query([TOPIC]), ht.sub_query(["*"])]
    t0 = time.monotonic()
    for i in range(SUBSCRIBERS):
        sub = ht.AsyncSubscriber(hub.port, paths[i >= half], on_event=record)
        sub.ids = []
        sub.bad_data = 0
        swarm.add(sub)
        if i % 100 == 99:  # let the hub accept as we go rather than overflow its backlog
            swarm.run(lambda: False, 0.02)
    opened = swarm.run(lambda: all(s.opened or s.state == "closed" for s in swarm.subs), 60)
    closed = [s for s in swarm.subs if s.state == "closed"]
    t.check(opened and not closed,
            f"{SUBSCRIBERS} subscribers connected and got their opening comment "
            f"({time.monotonic() - t0:.1f}s)",
            f"{len(closed)} failed, e.g. {closed[0].error if closed else ''}; "
            f"{sum(1 for s in swarm.subs if not s.opened)} not opened")
    samples = hub.metrics()
    t.eq(ht.metric(samples, "sluice_subscribers"), float(SUBSCRIBERS),
         f"sluice_subscribers is {SUBSCRIBERS}")

    published = []
    errors = []

    def run():
        pub = ht.Publisher(hub.port)
        try:
            for i in range(UPDATES):
                resp = pub.publish(TOPIC, data=str(i))
                if resp.status != 200:
                    errors.append(f"update {i}: {resp.status} {resp.text}")
                    return
                published.append(resp.text)
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            pub.close()

    th = threading.Thread(target=run)
    t1 = time.monotonic()
    th.start()
    done = swarm.run(lambda: all(len(s.ids) >= UPDATES or s.state == "closed"
                                 for s in swarm.subs) and not th.is_alive(), 100)
    elapsed = time.monotonic() - t1
    th.join(5)
    t.check(not errors and len(published) == UPDATES,
            f"published {len(published)} updates over one keep-alive connection", errors[:3])
    t.check(done, f"every subscriber received {UPDATES} updates within the time bound "
            f"({elapsed:.1f}s, {SUBSCRIBERS * UPDATES / max(elapsed, 0.001):,.0f} deliveries/s)",
            f"counts: min {min(len(s.ids) for s in swarm.subs)}, "
            f"closed {sum(1 for s in swarm.subs if s.state == 'closed')}")
    # Let anything extra (duplicates) arrive before judging.
    swarm.run(lambda: False, 0.3)
    want = published
    wrong = [i for i, s in enumerate(swarm.subs) if s.ids != want]
    detail = ""
    if wrong:
        s = swarm.subs[wrong[0]]
        first = next((k for k, (a, b) in enumerate(zip(s.ids, want)) if a != b),
                     min(len(s.ids), len(want)))
        detail = (f"subscriber {wrong[0]} ({s.state}, {s.error}): {len(s.ids)} ids, first "
                  f"difference at {first}: got {s.ids[first:first + 3]} want {want[first:first + 3]}; "
                  f"duplicates {len(s.ids) - len(set(s.ids))}")
    t.check(not wrong, f"all {SUBSCRIBERS} subscribers got exactly the published ids, once each, "
            "in order", f"{len(wrong)} differ; {detail}")
    t.eq(sum(s.bad_data for s in swarm.subs), 0, "every update's data matched its position")
    t.eq([s.error for s in swarm.subs if s.state == "closed"], [], "no stream ended")
    samples = hub.metrics()
    delivered = ht.metric(samples, "sluice_delivered_total")
    t.check(delivered is not None and delivered >= SUBSCRIBERS * UPDATES,
            f"sluice_delivered_total >= {SUBSCRIBERS * UPDATES}", delivered)
    swarm.close()


PUBLISHERS = 8
EACH = 100


def test_publishers_one_order(hub):
    """Publishers on several connections (so, with SO_REUSEPORT, on both workers: all eight on
    one worker has odds of 1 in 128) publish at once; every subscriber, on either worker, sees
    the same single order, which keeps each publisher's own order."""
    swarm = ht.Swarm()
    for i in range(40):
        topics = [f"urn:order:{k}" for k in range(PUBLISHERS)] if i % 2 else ["*"]
        sub = ht.AsyncSubscriber(hub.port, ht.sub_query(topics),
                                 on_event=lambda s, ev: s.ids.append(ev.id))
        sub.ids = []
        swarm.add(sub)
    t.check(swarm.run(lambda: all(s.opened for s in swarm.subs), 20), "40 subscribers open")
    mine = [[] for _ in range(PUBLISHERS)]
    errors = []
    go = threading.Event()

    def run(k):
        pub = ht.Publisher(hub.port)
        try:
            go.wait(10)
            for i in range(EACH):
                resp = pub.publish(f"urn:order:{k}", data=f"{k}/{i}")
                if resp.status != 200:
                    errors.append(f"publisher {k}, update {i}: {resp.status} {resp.text}")
                    return
                mine[k].append(resp.text)
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            pub.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(PUBLISHERS)]
    for th in threads:
        th.start()
    go.set()
    total = PUBLISHERS * EACH
    swarm.run(lambda: all(len(s.ids) >= total or s.state == "closed" for s in swarm.subs)
              and not any(th.is_alive() for th in threads), 60)
    for th in threads:
        th.join(5)
    swarm.run(lambda: False, 0.3)
    t.check(not errors and sum(map(len, mine)) == total,
            f"{PUBLISHERS} publishers x {EACH} updates, published at once", errors[:3])
    first = swarm.subs[0].ids
    t.check(len(first) == total and len(set(first)) == total,
            f"a subscriber got all {total} updates once each",
            f"{len(first)} ids, {len(set(first))} distinct")
    same = [i for i, s in enumerate(swarm.subs) if s.ids != first]
    t.check(not same, "every subscriber got them in the same order", f"{len(same)} differ")
    pos = {id_: n for n, id_ in enumerate(first)}
    kept = all([pos.get(i, -1) for i in ids] == sorted(pos.get(i, -1) for i in ids) for ids in mine)
    t.check(kept, "an order that keeps each publisher's own order")
    owner = {id_: k for k, ids in enumerate(mine) for id_ in ids}
    interleaved = sum(1 for a, b in zip(first, first[1:]) if owner.get(a) != owner.get(b))
    t.check(interleaved > 0, "the publishers' updates really interleave", interleaved)
    swarm.close()


def main():
    hub = ht.start_hub(anonymous=True, workers=2)
    t.section(f"{SUBSCRIBERS} subscribers x {UPDATES} updates", test_fanout, hub)
    t.section(f"{PUBLISHERS} concurrent publishers: one order for all", test_publishers_one_order,
              hub)
    t.stop_hub(hub)
    t.finish()


if __name__ == "__main__":
    main()
