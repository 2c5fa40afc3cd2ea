"""test_durable — the durable history (--data-dir), driven as a user would: updates published,
the hub stopped with SIGTERM and started again on the same directory, and a client resuming
with an id from before the restart (the Last-Event-ID header, the last_event_id query parameter,
'earliest') receives exactly what it missed, once, in order, then the live updates of the new
process with no gap (the order continues: the first update after the restart is no gap to the
workers, so no stream is cut). Then kill -9 at random moments during a stream of publishes from
several connections, restarts on the same directory, and a subscriber from 'earliest' at the end:
every update answered 200 is there exactly once, in each publisher's order; the same after a
SIGTERM during publishes, where every publish is answered 200 or 503. Pipelined publishes
on one connection are answered in order while their commits are pending, with refusals and
other requests between them keeping their place. A second hub on a
directory a live hub holds exits non-zero saying so; so does a hub on a corrupt data file, which
it leaves as it was. /metrics shows the retained updates and their disk use.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_durable")
TOPIC = "urn:durable:t"
ROOT = tempfile.mkdtemp(prefix="sluice-durable-")


def data_dir(name):
    return os.path.join(ROOT, name, "data")  # a missing parent too: the hub makes both


def sub(port, token, **query):
    return ht.SSEStream(port, ht.sub_query([TOPIC], **query), token=token)


def test_restart_resume():
    d = data_dir("restart")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    hub = ht.start_hub(data_dir=d, fsync="always")
    live = sub(hub.port, sub_tok)
    live.wait_open()
    pub = ht.Publisher(hub.port)
    ids = [pub.must(TOPIC, data=f"before {i}", id=f"d-{i}") for i in range(30)]
    t.check(live.wait_count(30), "a live subscriber gets the 30 updates", live.ids())
    pub.close()
    t.stop_hub(hub, "the first hub exits 0 on SIGTERM")
    live.close()
    mode = os.stat(d).st_mode & 0o777
    t.eq(oct(mode), oct(0o700), "the data dir was made 0700")

    hub = ht.start_hub(data_dir=d, fsync="always")
    header = ht.SSEStream(hub.port, ht.sub_query([TOPIC]), token=sub_tok,
                          headers={"Last-Event-ID": "d-9"})
    t.eq(header.status, 200, "resume with Last-Event-ID after the restart: 200")
    t.eq(header.response.header("mercure-last-event-id"), "d-9",
         "the id from before the restart is found (Mercure-Last-Event-ID)")
    header.wait_count(20)
    t.eq(header.ids(), ids[10:], "exactly the updates after d-9, once, in order")
    query = sub(hub.port, sub_tok, last_event_id="d-27")
    query.wait_count(2)
    t.eq(query.ids(), ids[28:], "last_event_id query parameter: the updates after d-27")
    earliest = sub(hub.port, sub_tok, last_event_id="earliest")
    earliest.wait_count(30)
    t.eq(earliest.ids(), ids, "earliest: every update from before the restart")

    pub = ht.Publisher(hub.port)
    after = [pub.must(TOPIC, data=f"after {i}", id=f"e-{i}") for i in range(5)]
    for name, s, want in (("header", header, ids[10:] + after), ("query", query, ids[28:] + after),
                          ("earliest", earliest, ids + after)):
        s.wait_count(len(want))
        s.pump(0.2)
        t.eq(s.ids(), want, f"{name} resume goes live after the replay: no gap, no duplicate")
        t.check(not s.eof, f"{name}: the stream is not cut by the first update after the restart")
    m = hub.metrics()
    t.eq(ht.metric(m, "sluice_history_entries"), 35.0, "/metrics: 35 updates retained")
    t.check((ht.metric(m, "sluice_history_bytes") or 0) > 0, "/metrics: their disk use",
            ht.metric(m, "sluice_history_bytes"))
    pub.close()
    for s in (header, query, earliest):
        s.close()
    t.stop_hub(hub, "the second hub exits 0 on SIGTERM")


def test_pipelined_publishes():
    hub = ht.start_hub(data_dir=data_dir("pipeline"))
    tok = ht.mint_token()
    conn = ht.HTTPConn(hub.port)
    reqs = b""
    for i in range(5):
        body = ht.form(ht.publish_fields(TOPIC, data=f"p{i}", id=f"p-{i}"))
        reqs += conn.build("POST", ht.HUB_PATH, {"Authorization": f"Bearer {tok}",
                                                 "Content-Type": "application/x-www-form-urlencoded"},
                           body)
    conn.send(reqs)  # one write: each waits for the one before it to be committed and answered
    got = []
    for _ in range(5):
        r = conn.read_response("POST")
        got.append((r.status, r.text))
    t.eq(got, [(200, f"p-{i}") for i in range(5)], "five pipelined publishes answered in order")
    # Answers made at once (a refusal, another endpoint) keep their place behind those waiting.
    hdrs = {"Authorization": f"Bearer {tok}", "Content-Type": "application/x-www-form-urlencoded"}
    reqs = conn.build("POST", ht.HUB_PATH, hdrs, ht.form(ht.publish_fields(TOPIC, id="q-1")))
    reqs += conn.build("POST", ht.HUB_PATH, hdrs, ht.form([("data", "no topic")]))
    reqs += conn.build("POST", ht.HUB_PATH, hdrs, ht.form(ht.publish_fields(TOPIC, id="q-2")))
    reqs += conn.build("GET", "/healthz")
    reqs += conn.build("POST", ht.HUB_PATH, hdrs, ht.form(ht.publish_fields(TOPIC, id="q-3")))
    conn.send(reqs)
    got = [conn.read_response(m) for m in ("POST", "POST", "POST", "GET", "POST")]
    t.eq([(r.status, r.text if r.status == 200 and r.text.startswith("q-") else "")
          for r in got], [(200, "q-1"), (400, ""), (200, "q-2"), (200, ""), (200, "q-3")],
         "a refusal and a health check between waiting publishes are answered in request order")
    conn.close()
    s = sub(hub.port, tok, last_event_id="earliest")
    s.wait_count(8)
    t.eq(s.ids(), [f"p-{i}" for i in range(5)] + ["q-1", "q-2", "q-3"], "and stored in that order")
    s.close()
    t.stop_hub(hub)


PER_ROUND = 1000  # publishes per publisher per round at most: 12,000 in all, all retained


class Pub(threading.Thread):
    """Publishes name-0, name-1, ... on one connection until the hub dies or `stop` is set;
    remembers the ids answered 200, in order."""

    def __init__(self, port, name, start, stop):
        super().__init__(daemon=True)
        self.pub = ht.Publisher(port)
        self.name, self.n, self.stop_ev = name, start, stop
        self.ok = []
        self.bad = []

    def run(self):
        for _ in range(PER_ROUND):  # bounded
            if self.stop_ev.is_set():
                break
            id_ = f"{self.name}-{self.n}"
            try:
                r = self.pub.publish(TOPIC, data=id_, id=id_)
            except (OSError, ht.ConnectionClosed):
                break  # killed: this one's answer never came
            if r.status == 200:
                self.ok.append(id_)
            else:
                self.bad.append((id_, r.status, r.text))
                break
            self.n += 1
        self.pub.close()


def test_kill9():
    d = data_dir("kill9")
    rng = random.Random(int(os.environ.get("SLUICE_TEST_SEED", "0")) or None)
    answered = {}  # publisher name -> ids answered 200, in order
    counters = {}
    for round_ in range(4):
        hub = ht.start_hub(data_dir=d, fsync="off", history_size=100000)
        stop = threading.Event()
        pubs = [Pub(hub.port, f"k{i}", counters.get(f"k{i}", 0), stop) for i in range(3)]
        for p in pubs:
            p.start()
        # A random moment within the stream: after some random number of answers (not a time,
        # which a slower build would turn into "after the end").
        target = rng.randint(20, PER_ROUND * len(pubs) // 2)
        deadline = time.monotonic() + 30 * ht.SLOW
        while (sum(len(p.ok) for p in pubs) < target and any(p.is_alive() for p in pubs)
               and time.monotonic() < deadline):
            time.sleep(0.002)
        t.check(any(p.is_alive() for p in pubs), f"round {round_}: killed while publishing")
        hub.proc.kill()  # SIGKILL: no drain, no sync
        hub.proc.wait()
        stop.set()
        for p in pubs:
            p.join(20)
            answered.setdefault(p.name, []).extend(p.ok)
            counters[p.name] = p.n + 1  # the one in flight may be stored: never reuse its id
            t.eq(p.bad, [], f"round {round_}: {p.name}: every answer before the kill was 200")
        hub.kill()
    total = sum(len(v) for v in answered.values())
    t.check(total > 0, "publishes were answered 200 before the kills", total)
    print(f"{total} publishes answered 200 over 4 kill -9 rounds", flush=True)

    hub = ht.start_hub(data_dir=d, fsync="off", history_size=100000)
    s = sub(hub.port, ht.mint_token(publish=(), subscribe=("*",)), last_event_id="earliest")
    want = set(i for v in answered.values() for i in v)
    s.wait(lambda st: want <= set(st.ids()), 30)
    s.pump(0.3)
    got = s.ids()
    t.eq(sorted(want - set(got)), [], "every update answered 200 survived kill -9")
    dups = sorted({i for i in got if got.count(i) > 1})
    t.eq(dups, [], "no update is there twice")
    for name, ids in answered.items():
        mine = [i for i in got if i.startswith(name + "-") and i in want]
        t.eq(mine, ids, f"{name}'s updates in the order it published them")
    # The order continues: a new update comes after every one from before.
    pub = ht.Publisher(hub.port)
    pub.must(TOPIC, data="last", id="after-kills")
    s.wait_id("after-kills")
    t.eq(s.ids()[-1] if s.ids() else None, "after-kills", "the next update follows them, live")
    t.check(not s.eof, "the stream was not cut by a gap")
    pub.close()
    s.close()
    t.stop_hub(hub)


def test_sigterm_during_publishes():
    """SIGTERM while three connections publish: every publish gets an answer (200, or 503 once
    the drain stopped taking updates), and every 200 is there after the restart."""
    d = data_dir("sigterm")
    hub = ht.start_hub(data_dir=d, fsync="batch", history_size=100000)
    stop = threading.Event()
    pubs = [Pub(hub.port, f"s{i}", 0, stop) for i in range(3)]
    for p in pubs:
        p.start()
    deadline = time.monotonic() + 30 * ht.SLOW
    while sum(len(p.ok) for p in pubs) < 300 and time.monotonic() < deadline:
        time.sleep(0.002)
    hub.proc.send_signal(signal.SIGTERM)
    for p in pubs:
        p.join(30 * ht.SLOW)
    stop.set()
    rc = ht.wait_exit(hub.proc, 40 * ht.SLOW)  # the drain ends it: no second signal
    hub.stop()
    t.eq(rc, 0, "the hub drains and exits 0 with publishes in flight")
    for p in pubs:
        t.check(all(status == 503 for _, status, _ in p.bad), f"{p.name}: refused only with 503",
                p.bad)
    answered = {p.name: p.ok for p in pubs}
    hub = ht.start_hub(data_dir=d, history_size=100000)
    s = sub(hub.port, ht.mint_token(publish=(), subscribe=("*",)), last_event_id="earliest")
    want = set(i for v in answered.values() for i in v)
    s.wait(lambda st: want <= set(st.ids()), 30)
    got = s.ids()
    t.eq(sorted(want - set(got)), [], "every publish answered 200 before SIGTERM is there")
    for name, ids in answered.items():
        t.eq([i for i in got if i.startswith(name + "-")], ids, f"{name}: in its order, once")
    s.close()
    t.stop_hub(hub)


def test_locked_and_corrupt():
    d = data_dir("locked")
    hub = ht.start_hub(data_dir=d)
    port = ht.free_port()
    r = subprocess.run(ht.hub_args(port, extra=["--data-dir", d]), capture_output=True, text=True,
                       timeout=20 * ht.SLOW, env=ht.base_env(), stdin=subprocess.DEVNULL)
    t.check(r.returncode != 0, "a second hub on a held data dir exits non-zero", r.returncode)
    t.check("in use by another live sluice" in r.stderr and f"pid {hub.pid}" in r.stderr,
            "and says which process holds it", r.stderr)
    ht.Publisher(hub.port).must(TOPIC, data="x", id="kept")
    t.stop_hub(hub)

    path = os.path.join(d, "data.mdb")
    with open(path, "r+b") as f:
        f.write(b"\x5a" * 16384)
    with open(path, "rb") as f:
        before = f.read()
    r = subprocess.run(ht.hub_args(port, extra=["--data-dir", d]), capture_output=True, text=True,
                       timeout=20 * ht.SLOW, env=ht.base_env(), stdin=subprocess.DEVNULL)
    t.check(r.returncode != 0, "a hub on a corrupt data file exits non-zero", r.returncode)
    t.check("cannot be opened" in r.stderr and d in r.stderr, "and says what is wrong and where",
            r.stderr)
    with open(path, "rb") as f:
        t.check(f.read() == before, "the corrupt file is left as it was")

    r = subprocess.run(ht.hub_args(port, extra=["--data-dir", d, "--fsync", "sometimes"]),
                       capture_output=True, text=True, timeout=20 * ht.SLOW, env=ht.base_env(),
                       stdin=subprocess.DEVNULL)
    t.check(r.returncode == 2 and "always, batch or off" in r.stderr,
            "--fsync with an unknown level is refused, naming the levels", r.stderr)


try:
    t.section("restart on the same data dir: resume with ids from before", test_restart_resume)
    t.section("pipelined publishes wait for their commits, in order", test_pipelined_publishes)
    t.section("kill -9 during publishes: nothing answered 200 is lost", test_kill9)
    t.section("SIGTERM during publishes: answered, and kept", test_sigterm_during_publishes)
    t.section("a held or corrupt data dir is refused", test_locked_and_corrupt)
finally:
    ht.stop_all_hubs()
    shutil.rmtree(ROOT, ignore_errors=True)
t.finish()
