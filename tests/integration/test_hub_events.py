"""test_hub_events — subscription events (--subscriptions) cost the application neither its
history nor its workers.

The audit's reproduction, in memory and with --data-dir: with --history-size 5 an update app1 is
published, six anonymous subscribers connect and leave (twelve private subscription events), app2
is published; a client resuming with last_event_id=app1 gets app2 (not Mercure-Last-Event-ID:
earliest), and an observer granted every topic resuming from app1 gets the twelve events and app2
in the one global order. With --subscriptions-history 3 the observer gets only the last three
events, app2 still after them. Then --data-dir --fsync always with the writer held (the test hook
SLUICE_TEST_HOLD_WRITER: nothing is committed while its file exists): 200 subscribers connect
and get their streams while not one commit can complete, so none waited for one; released, the
400 events of their arrivals and departures are stored and an observer resuming from earliest
gets every one, in the registry's order (each subscriber's start before its end).
"""

import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_hub_events")
TOPIC = "urn:hubev:t"
DETAIL = "https://mercure.rocks/authorization-detail"
ROOT = tempfile.mkdtemp(prefix="sluice-hubev-")


def token(selectors):
    details = [{"type": DETAIL, "actions": ["subscribe"], "topics": [{"match": m} for m in selectors]}]
    claims = {"authorization_details": details, "exp": int(time.time()) + 3600}
    return ht.jwt_hs256(claims, header={"alg": "HS256", "typ": "at+jwt"})


ALL = token(["*"])
PUB = ht.mint_token(publish=("*",), subscribe=())


def metric(hub, name):
    return hub.metrics().get(name)


def wait_active(hub, n):
    return ht.wait_until(lambda: metric(hub, "sluice_subscriptions_active") == n, 10 * ht.SLOW)


def come_and_go(hub, n):
    """n anonymous subscribers connect (each announced), then leave (each end announced)."""
    for i in range(n):
        s = ht.SSEStream(hub.port, ht.sub_query([TOPIC]))
        t.eq(s.status, 200, f"anonymous subscriber {i} is answered 200")
        s.wait_open()
        s.close()
        wait_active(hub, 0)


def audit(label, **flags):
    hub = ht.start_hub(anonymous=True, subscriptions=True, history_size=5, **flags)
    pub = ht.Publisher(hub.port, PUB)
    pub.must(TOPIC, data="one", id="app1")
    come_and_go(hub, 6)
    pub.must(TOPIC, data="two", id="app2")
    pub.close()
    # Resuming from app1 (the audit's client): app2, and app1 was found.
    r = ht.SSEStream(hub.port, ht.sub_query([TOPIC], last_event_id="app1"))
    t.eq(r.status, 200, f"{label}: the resume is answered 200")
    t.eq(r.response.header("mercure-last-event-id"), "app1",
         f"{label}: app1 is still in history after 12 subscription events (not 'earliest')")
    t.check(r.wait_id("app2"), f"{label}: the resume from app1 gets app2", r.ids())
    t.eq(r.ids(), ["app2"], f"{label}: exactly app1's successor, once")
    r.close()
    # The events were stored, not dropped: an observer granted them sees them between app1 and
    # app2, in the one order.
    o = ht.SSEStream(hub.port, ht.sub_query(["*"], last_event_id="app1"), token=ALL)
    t.check(o.wait_id("app2"), f"{label}: the observer's resume reaches app2", o.ids())
    # Up to app2: what the replay sent (the observer's own arrival comes live, after).
    upto = [e.id for e in o.events].index("app2")
    docs = [json.loads(e.data) for e in o.events[:upto] if e.type == "mercure"]
    t.eq(len(docs), 12, f"{label}: the 12 subscription events are retained, before app2")
    t.eq(upto, 12, f"{label}: app2 comes right after them")
    t.eq([d["active"] for d in docs], [True, False] * 6,
         f"{label}: each subscriber's start, then its end")
    o.close()
    m = hub.metrics()
    t.eq(m.get("sluice_subscription_events_lost_total"), 0, f"{label}: no event lost")
    t.stop_hub(hub, f"{label}: the hub exits 0")
    return hub


def test_memory():
    audit("memory")


def test_durable():
    d = os.path.join(ROOT, "audit")
    audit("data dir", data_dir=d, fsync="batch")
    # Across a restart the application's updates are still there, as are the events.
    hub = ht.start_hub(anonymous=True, subscriptions=True, history_size=5, data_dir=d)
    r = ht.SSEStream(hub.port, ht.sub_query([TOPIC], last_event_id="app1"))
    t.eq(r.response.header("mercure-last-event-id"), "app1",
         "data dir, restarted: app1 is still found")
    t.check(r.wait_id("app2"), "data dir, restarted: the resume gets app2", r.ids())
    r.close()
    t.stop_hub(hub, "data dir, restarted: the hub exits 0")


def test_own_budget():
    hub = ht.start_hub(anonymous=True, subscriptions=True, history_size=5,
                       subscriptions_history=3)
    pub = ht.Publisher(hub.port, PUB)
    pub.must(TOPIC, data="one", id="app1")
    come_and_go(hub, 6)
    pub.must(TOPIC, data="two", id="app2")
    pub.close()
    o = ht.SSEStream(hub.port, ht.sub_query(["*"], last_event_id="app1"), token=ALL)
    t.eq(o.response.header("mercure-last-event-id"), "app1", "budget 3: app1 is found")
    t.check(o.wait_id("app2"), "budget 3: the observer's resume reaches app2", o.ids())
    upto = [e.id for e in o.events].index("app2")
    # The observer's own subscription is announced before its replay starts, so it takes one of
    # the 3 places: the last 2 events of the six subscribers, app2, then its own.
    t.eq([e.type for e in o.events[:upto + 1]], ["mercure"] * 2 + [None],
         "budget 3: the last 2 subscription events of the six, then app2")
    t.check(o.wait(lambda s: len(s.events) > upto + 1, 10) and o.events[upto + 1].type == "mercure"
            and '"active":true' in o.events[upto + 1].data.replace(" ", ""),
            "budget 3: then the observer's own subscription event", [e.id for e in o.events])
    o.close()
    t.eq(metric(hub, "sluice_subscriptions_history_capacity"), 3, "/metrics shows the budget")
    t.stop_hub(hub, "budget 3: the hub exits 0")


def test_no_wait_for_commits():
    d = os.path.join(ROOT, "held")
    hold = os.path.join(ROOT, "hold-writer")
    open(hold, "w").close()
    hub = ht.start_hub(anonymous=True, subscriptions=True, data_dir=d, fsync="always",
                       env={"SLUICE_TEST_HOLD_WRITER": hold})
    streams = []
    opened = 0
    try:
        for i in range(200):
            try:
                s = ht.SSEStream(hub.port, ht.sub_query([TOPIC]), timeout=5 * ht.SLOW)
            except (OSError, ht.ConnectionClosed):  # no answer: its worker waits on a commit
                break
            streams.append(s)
            if s.status == 200 and s.wait_open(timeout=5):
                opened += 1
            else:
                break
        t.eq(opened, 200, "200 subscribers get their streams while no commit can complete")
        t.eq(metric(hub, "sluice_history_entries"), 0, "and indeed nothing was committed yet")
        t.eq(metric(hub, "sluice_subscriptions_active"), 200, "the registry lists all 200")
    finally:
        for s in streams:
            s.close()
        os.unlink(hold)
    t.check(ht.wait_until(lambda: metric(hub, "sluice_history_entries") == 400, 30 * ht.SLOW),
            "released, the 400 events (200 starts, 200 ends) are stored",
            metric(hub, "sluice_history_entries"))
    o = ht.SSEStream(hub.port, ht.sub_query(["*"], last_event_id="earliest"), token=ALL)
    o.wait_count(400, timeout=20)
    o.wait_count(401, timeout=5)  # and its own arrival, live
    docs = [json.loads(e.data) for e in o.events if e.type == "mercure"]
    docs = [d for d in docs if d["match"] == TOPIC]
    t.eq(len(docs), 400, "an observer from earliest gets all 400 events")
    seen = {}
    order_ok = True
    for doc in docs:
        if doc["active"]:
            order_ok = order_ok and doc["subscriber"] not in seen
            seen[doc["subscriber"]] = True
        else:
            order_ok = order_ok and seen.get(doc["subscriber"]) is True
            seen[doc["subscriber"]] = False
    t.check(order_ok and len(seen) == 200 and not any(seen.values()),
            "each subscriber's start comes before its end, in the registry's order")
    o.close()
    t.eq(metric(hub, "sluice_subscription_events_lost_total"), 0, "no event lost")
    t.stop_hub(hub, "held writer: the hub exits 0")


try:
    t.section("memory: the audit's reproduction", test_memory)
    t.section("data dir: the audit's reproduction, and a restart", test_durable)
    t.section("--subscriptions-history 3", test_own_budget)
    t.section("data dir, fsync always: connecting does not wait for commits", test_no_wait_for_commits)
finally:
    shutil.rmtree(ROOT, ignore_errors=True)
t.finish()
