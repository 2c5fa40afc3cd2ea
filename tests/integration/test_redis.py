"""test_redis — scale-out through one Redis stream (--redis), driven as a user would, against a
real redis-server that the test starts on a free loopback port (no RDB, its own directory) and
stops at the end.

Two hubs on one stream: updates published on either reach the subscribers of both, with the same
ids, in the same order (the stream's), every field kept (event type, retry, multi-line data, the
private flag: a subscriber without a grant on the other hub does not get a private update). A
client resumes on hub 2 with an id it got from hub 1, and on a third hub started afterwards that
never saw those updates live (Last-Event-ID, last_event_id, earliest). Then Redis is killed
(SIGKILL, AOF on so that what it acknowledged survives) while a publisher keeps publishing: the
publishes made while it is down are answered 503 with Retry-After, /readyz says 503 with the
reason, the subscribers on both hubs stay connected and get heartbeats; Redis is started again on
the same port and directory, and at the end each subscriber has every update answered 200 exactly
once, in the stream's order, the two the same. A hub stopped (SIGSTOP) while another published
more than retention keeps does not skip what was trimmed silently: its subscriber's stream ends.
Seqs and resumes: a resume on hub 2 with an id hub 2's reader has not read yet (held back by a
relay in front of Redis) gets what follows it once; a resume paged slowly while updates keep
coming (on the hub that saw all live, on one started midway, on one whose ring of seqs wraps)
joins the live flow with no hole and no duplicate; its pages are fetched off its worker (a held
page does not hold the worker; a stream closed while its page is held is freed); a Redis slow to
answer the id lookup gets resumes refused with 503 at once. kill -9 of a hub three times during
publishes: resumes from earliest on the restarted hub and another get every acknowledged update
once, in order. --history-max-age drops older entries; subscription events have their own budget.
Pipelined publishes are appended a batch per script call, each update keeping its own entry,
index field (the first copy of an id repeated within a batch), order and count.
Also: a hub started while Redis is down is up but
not ready, and becomes ready when Redis comes; rediss:// and --redis with --data-dir are refused
with a message. Give test function names as arguments to run only those (by hand).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_redis")
ROOT = tempfile.mkdtemp(prefix="sluice-redis-")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
TOPIC = "urn:redis:t"


class Redis:
    """A redis-server on 127.0.0.1:port, its data in its own directory."""

    def __init__(self, name, aof=False):
        self.dir = os.path.join(ROOT, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = ht.free_port()
        self.aof = aof
        self.proc = None
        self.start()

    def start(self):
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.dir, "--daemonize", "no", "--protected-mode", "yes",
                "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always"]
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, preexec_fn=ht._die_with_parent)
        ok = ht.wait_until(lambda: self.ping(), 10 * ht.SLOW)
        if not ok:
            raise RuntimeError(f"redis-server on port {self.port} did not start")

    def ping(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cmd(self, *args):
        """One command over RESP; the reply as int, bytes, list or None (errors raise)."""
        import socket
        out = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() if isinstance(x, str) else x
                                                          for x in args))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(out)
            f = s.makefile("rb")

            def read():
                line = f.readline()
                kind, rest = line[:1], line[1:-2]
                if kind == b"-":
                    raise RuntimeError(rest.decode())
                if kind in (b"+",):
                    return rest
                if kind == b":":
                    return int(rest)
                if kind == b"$":
                    n = int(rest)
                    return None if n < 0 else f.read(n + 2)[:-2]
                if kind == b"*":
                    n = int(rest)
                    return None if n < 0 else [read() for _ in range(n)]
                raise RuntimeError(f"unexpected reply {line!r}")
            return read()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"


_redises = []


def redis(name, aof=False):
    r = Redis(name, aof)
    _redises.append(r)
    return r


class Proxy:
    """A TCP relay on 127.0.0.1 in front of a Redis, for one hub: it tells the hub's connections
    apart by the commands they send (the reader XREADs; a cursor's HGETs and XRANGEs) and can hold
    back what Redis answers the reader (so that the hub lags the stream, as a hub does for an
    instant after another hub's update) or delay what it answers a cursor (a slow Redis)."""

    def __init__(self, target_port):
        import socket
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.hold = threading.Event()       # set: the reader's answers wait
        self.hold_cursor = threading.Event()  # set: the answers to a cursor's reads wait
        self.cursor_delay = 0.0             # seconds added before each answer to a cursor
        self.closed = False
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def _accept(self):
        import socket
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            s.settimeout(None)
            self.socks += [c, s]
            kind = {"v": None}
            threading.Thread(target=self._up, args=(c, s, kind), daemon=True).start()
            threading.Thread(target=self._down, args=(s, c, kind), daemon=True).start()

    def _up(self, src, dst, kind):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if kind["v"] is None:
                if b"SCRIPT" in data or b"EVAL" in data:  # first: the script names the others
                    kind["v"] = "writer"
                elif b"XREAD" in data or b"XINFO" in data:
                    kind["v"] = "reader"
                elif b"HGET" in data or b"XRANGE" in data:
                    kind["v"] = "cursor"
            try:
                dst.sendall(data)
            except OSError:
                break
        for x in (src, dst):
            try:
                x.shutdown(2)
            except OSError:
                pass

    def _down(self, src, dst, kind):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if kind["v"] == "reader":
                deadline = time.monotonic() + 30
                while self.hold.is_set() and time.monotonic() < deadline and not self.closed:
                    time.sleep(0.01)
            elif kind["v"] == "cursor":
                if self.cursor_delay:
                    time.sleep(self.cursor_delay)
                deadline = time.monotonic() + 30
                while self.hold_cursor.is_set() and time.monotonic() < deadline and not self.closed:
                    time.sleep(0.01)
            try:
                dst.sendall(data)
            except OSError:
                break
        for x in (src, dst):
            try:
                x.shutdown(2)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.hold.clear()
        self.hold_cursor.clear()
        for x in [self.lsock] + self.socks:
            try:
                x.close()
            except OSError:
                pass


def sub(port, token, headers=None, **query):
    return ht.SSEStream(port, ht.sub_query([TOPIC], **query), token=token, headers=headers)


def ready(hub):
    return ht.request(hub.port, "GET", "/readyz", timeout=5)


def test_two_hubs():
    r = redis("two")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    public_tok = ht.mint_token(publish=(), subscribe=("urn:not-this-topic",))
    h1 = ht.start_hub(redis=r.url, redis_stream="two")
    h2 = ht.start_hub(redis=r.url, redis_stream="two")
    t.check(ht.wait_until(lambda: ready(h1).status == 200 and ready(h2).status == 200,
                          10 * ht.SLOW), "both hubs are ready once connected to Redis")
    s1, s2 = sub(h1.port, sub_tok), sub(h2.port, sub_tok)
    anon2 = sub(h2.port, public_tok)
    for s in (s1, s2, anon2):
        s.wait_open()
    p1, p2 = ht.Publisher(h1.port), ht.Publisher(h2.port)
    answered = []
    for i in range(20):
        p = p1 if i % 2 == 0 else p2
        answered.append(p.must(TOPIC, data=f"line one {i}\nline two", id=f"two-{i}",
                               type="note", retry="2500"))
    private_id = p1.must(TOPIC, data="secret", id="two-private", private=True)
    # Two publishers at once, on different hubs: the stream decides one order for both.
    got = {1: [], 2: []}

    def burst(p, k):
        for i in range(50):
            got[k].append(p.must(TOPIC, data=f"burst {k} {i}", id=f"burst-{k}-{i}"))

    th = [threading.Thread(target=burst, args=(p1, 1)), threading.Thread(target=burst, args=(p2, 2))]
    for x in th:
        x.start()
    for x in th:
        x.join(60)
    total = 20 + 1 + 100
    t.check(s1.wait_count(total, 20), f"hub 1's subscriber gets all {total} updates", len(s1.events))
    t.check(s2.wait_count(total, 20), f"hub 2's subscriber gets all {total} updates", len(s2.events))
    t.eq(s1.ids(), s2.ids(), "both hubs deliver the same ids in the same order")
    t.eq(s1.ids()[:20], answered, "in the order they were acknowledged, one publisher at a time")
    t.check(len(set(s1.ids())) == total, "no update twice", s1.ids())
    for k in (1, 2):
        mine = [i for i in s1.ids() if i.startswith(f"burst-{k}-")]
        t.eq(mine, got[k], f"publisher {k}'s burst arrives in its own order")
    e = s2.events[0]
    t.eq((e.type, e.retry, e.data), ("note", "2500", "line one 0\nline two"),
         "an update published on hub 1 keeps its type, retry and lines on hub 2")
    t.check(private_id in s2.ids(), "a private update reaches an authorised subscriber on hub 2")
    anon2.wait(lambda s: len(s.events) >= total - 1, 10)
    t.check(private_id not in anon2.ids() and len(anon2.events) == total - 1,
            "... and not one without a grant (the private flag went through Redis)",
            anon2.ids()[-5:])

    # Pipelined on one connection: many appends in flight, answered in request order, stored so.
    conn = ht.HTTPConn(h1.port)
    hdrs = {"Authorization": f"Bearer {ht.mint_token()}",
            "Content-Type": "application/x-www-form-urlencoded"}
    reqs = b"".join(conn.build("POST", ht.HUB_PATH, hdrs,
                               ht.form(ht.publish_fields(TOPIC, data="p", id=f"pipe-{i}")))
                    for i in range(40))
    conn.send(reqs)
    got = [conn.read_response("POST") for _ in range(40)]
    t.eq([(r.status, r.text) for r in got], [(200, f"pipe-{i}") for i in range(40)],
         "40 pipelined publishes on one connection are answered 200 in request order")
    conn.close()
    total += 40
    t.check(s2.wait_count(total, 20), "and reach hub 2", len(s2.events))
    t.eq([i for i in s2.ids() if i.startswith("pipe-")], [f"pipe-{i}" for i in range(40)],
         "in that order")
    s1.wait_count(total, 20)

    # Resume on hub 2 with an id hub 1 gave, in three ways.
    want = s1.ids()[s1.ids().index("two-7") + 1:]
    res = sub(h2.port, sub_tok, headers={"Last-Event-ID": "two-7"})
    t.check(res.wait_count(len(want), 10), "resume on hub 2 after an id from hub 1", res.ids())
    t.eq(res.ids(), want, "it gets exactly what followed, in order")
    t.eq(res.response.header("mercure-last-event-id") or res.response.header("last-event-id"),
         "two-7", "and the hub says it found the id")
    res.close()

    h3 = ht.start_hub(redis=r.url, redis_stream="two")
    t.check(ht.wait_until(lambda: ready(h3).status == 200, 10 * ht.SLOW), "a third hub is ready")
    q = sub(h3.port, sub_tok, last_event_id="two-7")
    t.check(q.wait_count(len(want), 10), "a hub started later resumes with last_event_id", q.ids())
    t.eq(q.ids(), want, "... from updates it never saw live, exactly and in order")
    q.close()
    q = sub(h3.port, sub_tok, last_event_id="earliest")
    t.check(q.wait_count(total, 10), "earliest on the new hub: everything retained", len(q.events))
    t.eq(q.ids(), s1.ids(), "... in the stream's order")
    # Then live on the new hub, after the replay, with nothing missing or repeated.
    live_id = p1.must(TOPIC, data="after", id="two-after")
    t.check(q.wait_id(live_id, 10) and q.ids().count(live_id) == 1,
            "the replay joins the live stream: the next update once", q.ids()[-3:])
    q.close()
    for s in (s1, s2, anon2):
        s.close()
    p1.close()
    p2.close()
    for h in (h1, h2, h3):
        t.stop_hub(h)
    r.stop()


def test_redis_outage():
    r = redis("outage", aof=True)
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    h1 = ht.start_hub(redis=r.url, heartbeat=1)
    h2 = ht.start_hub(redis=r.url, heartbeat=1)
    t.check(ht.wait_until(lambda: ready(h1).status == 200 and ready(h2).status == 200,
                          10 * ht.SLOW), "both hubs ready")
    s1, s2 = sub(h1.port, sub_tok), sub(h2.port, sub_tok)
    s1.wait_open()
    s2.wait_open()
    ok, refused, other = [], [], []
    stop = threading.Event()
    lock = threading.Lock()

    def publisher(p, prefix):
        i = 0
        deadline = time.monotonic() + 120 * ht.SLOW
        while not stop.is_set() and time.monotonic() < deadline and i < 100000:
            uid = f"{prefix}-{i}"
            i += 1
            try:
                resp = p.publish(TOPIC, data=uid, id=uid)
            except OSError as e:
                with lock:
                    other.append((uid, repr(e)))
                time.sleep(0.05)
                continue
            with lock:
                if resp.status == 200:
                    ok.append(uid)
                elif resp.status == 503:
                    refused.append((uid, resp.header("retry-after")))
                else:
                    other.append((uid, resp.status))
            time.sleep(0.005)

    pubs = [ht.Publisher(h1.port), ht.Publisher(h2.port)]
    th = [threading.Thread(target=publisher, args=(pubs[0], "o1")),
          threading.Thread(target=publisher, args=(pubs[1], "o2"))]
    for x in th:
        x.start()
    t.check(ht.wait_until(lambda: len(ok) >= 100, 20 * ht.SLOW), "publishing on both hubs", len(ok))
    s1.pump(0.2)
    s2.pump(0.2)
    r.kill()
    with lock:
        before_outage = len(refused)
    t.check(ht.wait_until(lambda: len(refused) > before_outage, 10 * ht.SLOW),
            "with Redis down, a publish is answered 503", refused[-3:])
    t.check(all(ra and int(ra) >= 1 for _u, ra in refused), "... with a Retry-After", refused[-3:])
    rz = ready(h1)
    t.check(rz.status == 503 and "Redis" in rz.text, "/readyz says 503 and why", rz.text)
    t.check(ready(h2).status == 503, "on the other hub too")
    beats = (len(s1.comments), len(s2.comments))
    for _ in range(int(3 * ht.SLOW / 0.5)):
        s1.pump(0.25)
        s2.pump(0.25)
    t.check(not s1.eof and not s2.eof, "the subscribers stay connected while Redis is down")
    t.check(len(s1.comments) > beats[0] and len(s2.comments) > beats[1],
            "and keep getting heartbeats", (beats, len(s1.comments), len(s2.comments)))
    r.start()
    t.check(ht.wait_until(lambda: ready(h1).status == 200 and ready(h2).status == 200,
                          15 * ht.SLOW), "both hubs ready again once Redis is back")
    with lock:
        base = len(ok)
    t.check(ht.wait_until(lambda: len(ok) >= base + 100, 20 * ht.SLOW),
            "publishes are answered 200 again", len(ok) - base)
    stop.set()
    for x in th:
        x.join(30)
    for p in pubs:
        p.close()
    last = ok[-1]
    for name, s in (("hub 1", s1), ("hub 2", s2)):
        s.wait_id(last, 15)
        ids = s.ids()
        dup = len(ids) - len(set(ids))
        missing = [u for u in ok if u not in set(ids)]
        t.check(not missing, f"{name}'s subscriber has every update answered 200",
                f"{len(missing)} missing, e.g. {missing[:5]}")
        t.eq(dup, 0, f"{name}'s subscriber got none twice")
        # Each publisher's updates in its own order (its answers were in order).
        for prefix in ("o1", "o2"):
            mine = [u for u in ids if u.startswith(prefix + "-")]
            t.check(mine == sorted(mine, key=lambda u: int(u.split("-")[1])),
                    f"{name}: publisher {prefix}'s updates in the order published")
    t.eq(s1.ids(), s2.ids(), "the two subscribers got the same updates in the same order")
    extra = set(s1.ids()) - set(ok)
    print(f"   {len(ok)} answered 200, {len(refused)} answered 503, {len(other)} other; "
          f"{len(extra)} delivered though answered 503 (in flight when Redis died)", flush=True)
    t.check(not other, "no answer other than 200 or 503", other[:5])
    t.check(not s1.eof and not s2.eof, "neither subscriber was ever cut")
    s1.close()
    s2.close()
    t.stop_hub(h1)
    t.stop_hub(h2)
    r.stop()


def test_trimmed_before_read():
    """A hub stalled while the other hub published more than retention keeps: what it can no longer
    read is not skipped silently; its subscriber's stream ends, and a resume with its last id says
    what history has."""
    r = redis("trim")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    ha = ht.start_hub(redis=r.url, redis_stream="trim", history_size=1000)
    hb = ht.start_hub(redis=r.url, redis_stream="trim", history_size=1000)
    t.check(ht.wait_until(lambda: ready(ha).status == 200 and ready(hb).status == 200,
                          10 * ht.SLOW), "both hubs ready")
    s = sub(ha.port, sub_tok)
    s.wait_open()
    pb = ht.Publisher(hb.port)
    first = [pb.must(TOPIC, data="x", id=f"trim-{i}") for i in range(5)]
    t.check(s.wait_count(5, 10), "hub A's subscriber gets the first updates", s.ids())
    os.kill(ha.pid, signal.SIGSTOP)
    try:
        more = [pb.must(TOPIC, data="y", id=f"trim-more-{i}") for i in range(1600)]
        time.sleep(2)
    finally:
        os.kill(ha.pid, signal.SIGCONT)
    s.wait_eof(20)
    # The updates (with data): the stream's end carries an id-only event, the client's cursor.
    ids = [e.id for e in s.events if e.data is not None]
    got = [i for i in ids if i.startswith("trim-more-")]
    marks = [e.id for e in s.events if e.data is None]
    t.eq(marks, [ids[-1]], "the end says where the client stands: its last update's id")
    t.check(s.eof, "hub A's subscriber's stream ends once A finds updates trimmed before it read "
            "them", (len(ids), ids[-3:]))
    t.eq(got, more[:len(got)], "what it got before the end is a run without a hole")
    t.check(len(got) < len(more), "(it could not have had them all)", len(got))
    t.check("trimmed from the stream" in ha.log_text(), "hub A logs why", ha.log_tail(5))
    # Resuming after the last update it got: that id is gone too, so it is told "earliest".
    again = sub(ha.port, sub_tok, headers={"Last-Event-ID": ids[-1]})
    again.wait_count(1, 10)
    t.eq(again.response.header("mercure-last-event-id") or again.response.header("last-event-id"),
         "earliest", "a resume after it is told earliest: its place is gone")
    again.close()
    s.close()
    pb.close()
    t.stop_hub(ha)
    t.stop_hub(hb)
    r.stop()


def found_header(s):
    return s.response.header("mercure-last-event-id") or s.response.header("last-event-id")


def test_resume_ahead_of_reader():
    """A client resumes on hub 2 with an id published on hub 1 an instant ago, which hub 2's reader
    has not read yet: it gets what follows that id once, and nothing before it again."""
    r = redis("ahead")
    px = Proxy(r.port)
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    h1 = ht.start_hub(redis=r.url, redis_stream="ahead")
    h2 = ht.start_hub(redis=px.url, redis_stream="ahead")
    t.check(ht.wait_until(lambda: ready(h1).status == 200 and ready(h2).status == 200,
                          10 * ht.SLOW), "both hubs ready")
    live = sub(h2.port, sub_tok)
    live.wait_open()
    p1 = ht.Publisher(h1.port)
    ids = [p1.must(TOPIC, data=f"a{i}", id=f"ahead-{i}") for i in range(5)]
    t.check(live.wait_count(5, 10), "hub 2 reads hub 1's first updates", live.ids())
    px.hold.set()  # hub 2's reader now lags the stream
    ids += [p1.must(TOPIC, data=f"a{i}", id=f"ahead-{i}") for i in range(5, 10)]
    at_top = sub(h2.port, sub_tok, headers={"Last-Event-ID": "ahead-9"})
    inside = sub(h2.port, sub_tok, last_event_id="ahead-7")
    read = sub(h2.port, sub_tok, last_event_id="ahead-3")
    for s in (at_top, inside, read):
        s.wait_open()
    t.eq([s.status for s in (at_top, inside, read)], [200, 200, 200], "the resumes are accepted")
    t.eq([found_header(s) for s in (at_top, inside, read)], ["ahead-9", "ahead-7", "ahead-3"],
         "hub 2 finds ids its reader has not read yet")
    px.hold.clear()
    ids.append(p1.must(TOPIC, data="a10", id="ahead-10"))
    for s in (live, at_top, inside, read):
        s.wait_id("ahead-10", 10)
        s.pump(0.3)
    t.eq(live.ids(), ids, "hub 2's live subscriber: every update once")
    t.eq(at_top.ids(), ["ahead-10"], "a resume after the newest id: only what came next")
    t.eq(inside.ids(), ids[8:], "a resume after an id hub 2 had not read: what followed it, once")
    t.eq(read.ids(), ids[4:], "a resume after an id hub 2 had read: what followed it, once")
    for s in (live, at_top, inside, read):
        s.close()
    p1.close()
    t.stop_hub(h1)
    t.stop_hub(h2)
    px.close()
    r.stop()


def test_paging_while_live():
    """A resume paged slowly (a client that reads late) while updates keep coming: it joins the
    live flow without a hole and without a duplicate, on the hub that saw everything live, on a
    hub started in the middle (the replay spans entries from before and after its start), and on
    a hub whose ring of recent seqs (4096 with a small --history-size) wraps while it pages."""
    r = redis("paging")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    ha = ht.start_hub(redis=r.url, redis_stream="paging", max_queue=65536, history_size=10000)
    hc = ht.start_hub(redis=r.url, redis_stream="paging", max_queue=65536, history_size=100)
    t.check(ht.wait_until(lambda: ready(ha).status == 200 and ready(hc).status == 200,
                          10 * ht.SLOW), "hubs A and C ready")
    big = "x" * 3000  # 4.5 MB: more than a socket's send buffer grows to (4 MiB here)
    ids = ht.publish_many(ha.port, TOPIC, [f"pg-{i}" for i in range(1500)], big)
    hb = ht.start_hub(redis=r.url, redis_stream="paging", max_queue=65536, history_size=10000)
    t.check(ht.wait_until(lambda: ready(hb).status == 200, 10 * ht.SLOW), "hub B ready")
    ids += ht.publish_many(ha.port, TOPIC, [f"pg-{i}" for i in range(1500, 1520)], big)
    slow = [ht.SSEStream(h.port, ht.sub_query([TOPIC]), token=sub_tok,
                         headers={"Last-Event-ID": ids[0]}, rcvbuf=4096) for h in (ha, hb, hc)]
    t.eq([s.status for s in slow], [200] * 3, "three resumes, one per hub, that read nothing yet")
    time.sleep(0.3)
    ids += ht.publish_many(ha.port, TOPIC, [f"pg-{i}" for i in range(1520, 1570)], "live", batch=1)
    ids += ht.publish_many(ha.port, TOPIC, [f"pg-{i}" for i in range(1570, 5800)], "live")
    replayed = [ht.metric(h.metrics(), "sluice_replayed_total") for h in (ha, hb, hc)]
    t.check(all(n is not None and n < 1519 for n in replayed),
            "the replays were still paging when the live updates came (fewer than the 1519 "
            "missed were queued)", replayed)
    # Both read at once: one left unread longer than --write-timeout would be cut.
    deadline = time.monotonic() + 30 * ht.SLOW
    while time.monotonic() < deadline and not all(s.eof or ids[-1] in s.ids() for s in slow):
        for s in slow:
            s.pump(0.05)
    for name, s in zip("ABC", slow):
        s.pump(0.3)
        got = s.ids()
        t.eq(found_header(s), ids[0], f"hub {name} found the id")
        t.eq(len(got) - len(set(got)), 0, f"hub {name}: no update twice")
        missing = [i for i in ids[1:] if i not in set(got)]
        t.check(not missing, f"hub {name}: none missing", f"{len(missing)}: {missing[:5]}")
        t.check(got == ids[1:], f"hub {name}: the replay, then the live ones, in order",
                f"{len(got)} of {len(ids) - 1}")
    last = ht.Publisher(ha.port)
    lid = last.must(TOPIC, data="after", id="pg-after")
    last.close()
    for name, s in zip("ABC", slow):
        s.wait_id(lid, 10)
        s.pump(0.2)
        t.eq(s.ids()[-2:], [ids[-1], lid], f"hub {name}: then live, once")
        s.close()
    for h in (ha, hb, hc):
        t.stop_hub(h)
    r.stop()


def test_max_age():
    """--history-max-age with --redis: updates older than it leave the stream and its id index
    within about a second, even when nothing is published; a resume after one of them is told
    "earliest" and gets what is younger."""
    r = redis("age")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    h = ht.start_hub(redis=r.url, redis_stream="age", history_max_age=2)
    t.check(ht.wait_until(lambda: ready(h).status == 200, 10 * ht.SLOW), "hub ready")
    p = ht.Publisher(h.port)
    old = [p.must(TOPIC, data="old", id=f"age-old-{i}") for i in range(5)]
    t.eq(r.cmd("XLEN", "age"), 5, "the stream has the updates")
    t.check(ht.wait_until(lambda: r.cmd("XLEN", "age") == 0, 6 * ht.SLOW),
            "2 s later (and a check a second), they are gone from the stream, nothing published",
            r.cmd("XLEN", "age"))
    t.eq(r.cmd("HLEN", "age:ids"), 0, "and from the id index")
    t.check(r.cmd("GET", "age:trimmed") is not None, "the newest dropped is recorded")
    young = [p.must(TOPIC, data="young", id=f"age-young-{i}") for i in range(3)]
    res = sub(h.port, sub_tok, headers={"Last-Event-ID": old[-1]})
    res.wait_count(3, 10)
    res.pump(0.3)
    t.eq(found_header(res), "earliest", "a resume after an expired id is told earliest")
    t.eq(res.ids(), young, "and gets the updates younger than the max age")
    res.close()
    t.eq(r.cmd("XLEN", "age"), 3, "the young ones stay")
    p.close()
    t.stop_hub(h)
    r.stop()


def test_kill9_during_publishes():
    """kill -9 of a hub at random moments while updates are published through it and another hub:
    a subscriber resuming from earliest on the restarted hub, and on the other hub, gets every
    update answered 200 exactly once, in publish order; an update whose publisher got no answer
    (the hub died with it in flight) comes at most once."""
    import random
    rnd = random.Random(14)
    r = redis("kill9")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    flags = dict(redis=r.url, redis_stream="kill9", history_size=100000)
    h1 = ht.start_hub(**flags)
    h2 = ht.start_hub(**flags)
    t.check(ht.wait_until(lambda: ready(h1).status == 200 and ready(h2).status == 200,
                          10 * ht.SLOW), "both hubs ready")
    watch = sub(h2.port, sub_tok)
    watch.wait_open()
    current = {"port": h1.port}
    ok = {"k": [], "w": []}
    unanswered = []
    other = []
    stop = threading.Event()

    def publisher(prefix, port_of, inflight):
        """Pipelines inflight publishes at a time; on a dead connection, the unanswered are noted
        and it reconnects to wherever port_of() says."""
        hdrs = {"Authorization": f"Bearer {ht.mint_token()}",
                "Content-Type": "application/x-www-form-urlencoded"}
        i = 0
        deadline = time.monotonic() + 120 * ht.SLOW
        while not stop.is_set() and time.monotonic() < deadline and i < 200000:
            try:
                conn = ht.HTTPConn(port_of(), timeout=5)
            except OSError:
                time.sleep(0.02)
                continue
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    batch = [f"{prefix}-{i + k}" for k in range(inflight)]
                    i += inflight
                    conn.send(b"".join(conn.build("POST", ht.HUB_PATH, hdrs, ht.form(
                        ht.publish_fields(TOPIC, data=u, id=u))) for u in batch))
                    for n, u in enumerate(batch):
                        try:
                            resp = conn.read_response("POST")
                        except (OSError, ht.ConnectionClosed):
                            unanswered.extend(batch[n:])
                            raise
                        if resp.status == 200:
                            ok[prefix].append(u)
                        else:
                            other.append((u, resp.status))
            except (OSError, ht.ConnectionClosed):
                pass
            finally:
                conn.close()

    th = [threading.Thread(target=publisher, args=("k", lambda: current["port"], 8)),
          threading.Thread(target=publisher, args=("w", lambda: h2.port, 1))]
    for x in th:
        x.start()
    hubs = [h1]
    for kill in range(3):
        time.sleep(rnd.uniform(0.3, 1.2))
        before = len(ok["k"])
        hubs[-1].kill()  # SIGKILL
        time.sleep(rnd.uniform(0.0, 0.3))
        nh = ht.start_hub(**flags)
        hubs.append(nh)
        t.check(ht.wait_until(lambda: ready(nh).status == 200, 10 * ht.SLOW),
                f"kill -9 #{kill + 1} after {before} acknowledged: the hub restarted and is ready")
        current["port"] = nh.port
    t.check(ht.wait_until(lambda: len(ok["k"]) > before + 50, 10 * ht.SLOW),
            "publishes through the last restarted hub are acknowledged", len(ok["k"]) - before)
    stop.set()
    for x in th:
        x.join(30)
    answered = ok["k"] + ok["w"]
    t.check(not other, "no answer other than 200", other[:5])
    print(f"   {len(ok['k'])} + {len(ok['w'])} answered 200, {len(unanswered)} unanswered "
          f"(in flight at a kill)", flush=True)
    last = hubs[-1]
    lists = {}
    for name, port in (("the restarted hub", last.port), ("the other hub", h2.port)):
        s = sub(port, sub_tok, last_event_id="earliest")
        s.wait(lambda s: set(answered) <= set(s.ids()), 30)
        s.pump(0.3)
        ids = s.ids()
        lists[name] = ids
        missing = [u for u in answered if u not in set(ids)]
        t.check(not missing, f"{name}: a resume from earliest has every update answered 200",
                f"{len(missing)} missing, e.g. {missing[:5]}")
        t.eq(len(ids) - len(set(ids)), 0, f"{name}: none twice")
        t.check(set(ids) - set(answered) <= set(unanswered),
                f"{name}: nothing else but updates whose publish got no answer",
                sorted(set(ids) - set(answered) - set(unanswered))[:5])
        for prefix in ("k", "w"):
            mine = [u for u in ids if u.startswith(prefix + "-")]
            t.check(mine == sorted(mine, key=lambda u: int(u.split("-")[1])),
                    f"{name}: publisher {prefix}'s updates in publish order")
        s.close()
    t.eq(lists["the restarted hub"], lists["the other hub"], "both resumes: the same order")
    watch.wait(lambda s: set(answered) <= set(s.ids()), 20)
    watch.pump(0.3)
    t.eq(watch.ids(), lists["the other hub"],
         "the other hub's live subscriber, never cut, got the same, once each", )
    watch.close()
    for h in (last, h2):
        t.stop_hub(h)
    r.stop()


def test_slow_redis_resume():
    """A Redis that answers a resume's reads late (a second here): the resume is refused with 503
    and Retry-After (its reads are bounded, so its worker is not held), the next ones at once for
    a moment, while publishes and live delivery go on; once Redis answers in time, resumes work."""
    r = redis("slow")
    px = Proxy(r.port)
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    h = ht.start_hub(redis=px.url, redis_stream="slow")
    t.check(ht.wait_until(lambda: ready(h).status == 200, 10 * ht.SLOW), "hub ready")
    live = sub(h.port, sub_tok)
    live.wait_open()
    p = ht.Publisher(h.port)
    ids = [p.must(TOPIC, data="s", id=f"slow-{i}") for i in range(5)]
    px.cursor_delay = 1.0
    refused = [sub(h.port, sub_tok, headers={"Last-Event-ID": ids[0]}) for _ in range(2)]
    t.eq([s.status for s in refused], [503, 503], "resumes are answered 503 while Redis is slow")
    t.check(all((s.response.header("retry-after") or "") != "" for s in refused),
            "... with Retry-After")
    t.check("resumes are refused" in h.log_text(), "the hub says why, once", h.log_tail(5))
    ids += [p.must(TOPIC, data="s", id=f"slow-{i}") for i in range(5, 8)]
    t.check(live.wait_count(8, 10), "publishes and live delivery go on meanwhile", live.ids())
    px.cursor_delay = 0.0
    time.sleep(1.2)  # the pause after a failed read is 1 s
    ok = sub(h.port, sub_tok, headers={"Last-Event-ID": ids[0]})
    ok.wait_count(7, 10)
    t.eq((ok.status, ok.ids()), (200, ids[1:]), "once Redis answers in time, a resume works")
    for s in refused + [ok, live]:
        s.close()
    p.close()
    t.stop_hub(h)
    px.close()
    r.stop()


def test_subscription_events_budget():
    """With --subscriptions, subscription events share the stream (one order on every hub) but not
    the application's budget: a burst of subscribers coming and going, within
    --subscriptions-history, pushes no application update out of the stream."""
    r = redis("subsev")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    h = ht.start_hub(redis=r.url, redis_stream="subsev", subscriptions=True, history_size=1024,
                     subscriptions_history=5000)
    t.check(ht.wait_until(lambda: ready(h).status == 200, 10 * ht.SLOW), "hub ready")
    ids = ht.publish_many(h.port, TOPIC, [f"ev-{i}" for i in range(1100)], "app")
    for _ in range(700):
        s = sub(h.port, sub_tok)
        s.wait_open()
        s.close()
    t.check(ht.wait_until(lambda: int(r.cmd("GET", "subsev:hubs") or 0) == 1400, 10 * ht.SLOW),
            "700 subscribers came and went: 1400 subscription events in the stream, counted",
            r.cmd("GET", "subsev:hubs"))
    t.eq(r.cmd("XLEN", "subsev"), 2500, "the stream holds them and the 1100 updates (past "
         "--history-size 1024 and its slack of 256 together, not each)")
    res = sub(h.port, sub_tok, last_event_id="earliest")
    res.wait(lambda s: ids[-1] in s.ids(), 10)
    res.pump(0.3)
    t.eq([i for i in res.ids() if i.startswith("ev-")], ids,
         "a resume from earliest gets every application update: none was pushed out")
    res.close()
    t.stop_hub(h)
    r.stop()


def test_replay_off_the_worker():
    """A resume's pages are fetched away from its worker: while Redis holds the answer to one (1.5
    s here, past the 250 ms a blocking read may take), the hub's only worker serves publishes, live
    delivery and /healthz, and once the answer comes the replay goes on, complete, once each."""
    r = redis("offworker")
    px = Proxy(r.port)
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    h = ht.start_hub(redis=px.url, redis_stream="offworker", workers=1)
    t.check(ht.wait_until(lambda: ready(h).status == 200, 10 * ht.SLOW), "hub ready")
    ids = ht.publish_many(h.port, TOPIC, [f"ow-{i}" for i in range(300)], "o" * 500)
    live = sub(h.port, sub_tok)
    live.wait_open()
    px.hold_cursor.set()
    res = sub(h.port, sub_tok, last_event_id="earliest")
    t.eq(res.status, 200, "a resume from earliest opens its stream")
    res.wait_open()
    p = ht.Publisher(h.port)
    ids.append(p.must(TOPIC, data="during", id="ow-during"))
    t.check(live.wait_id("ow-during", 10), "while its page is held, the worker publishes and "
            "delivers live", live.ids()[-2:])
    t.eq(ht.request(h.port, "GET", "/healthz").status, 200, "and answers /healthz")
    res.pump(0.2)
    t.eq((res.ids(), res.eof), ([], False), "the resume waits for its page, its stream open")
    time.sleep(1.5)
    px.hold_cursor.clear()
    res.wait(lambda s: "ow-during" in s.ids(), 20)
    res.pump(0.3)
    t.eq(res.ids(), ids, "then the replay goes on: every update once, in order, then live")
    t.check(not res.eof, "the stream still open")
    # Streams that end while their page is on its way: a client that leaves, and the drain.
    px.hold_cursor.set()
    gone = sub(h.port, sub_tok, last_event_id="earliest")
    gone.wait_open()
    gone.close()
    time.sleep(0.3)
    px.hold_cursor.clear()
    t.eq(ht.request(h.port, "GET", "/healthz").status, 200,
         "a client gone while its page was on its way: the hub goes on")
    px.hold_cursor.set()
    draining = sub(h.port, sub_tok, last_event_id="earliest")
    draining.wait_open()
    for s in (res, live):
        s.close()
    p.close()
    t.stop_hub(h, "SIGTERM while a page is on its way: the hub drains and exits 0, nothing leaked")
    draining.close()
    px.close()
    r.stop()


def test_start_without_redis_and_refusals():
    port = ht.free_port()  # nothing listens there yet
    r_dir = "late"
    hub = ht.start_hub(redis=f"redis://127.0.0.1:{port}")
    rz = ready(hub)
    t.check(rz.status == 503 and "Redis" in rz.text,
            "a hub whose Redis is down starts, but is not ready, and says why", rz.text)
    resp = ht.publish(hub.port, ht.mint_token(), [TOPIC], data="x")
    t.eq(resp.status, 503, "its publishes are answered 503")
    late = Redis.__new__(Redis)
    late.dir = os.path.join(ROOT, r_dir)
    os.makedirs(late.dir, exist_ok=True)
    late.port, late.aof, late.proc = port, False, None
    late.start()
    _redises.append(late)
    t.check(ht.wait_until(lambda: ready(hub).status == 200, 15 * ht.SLOW),
            "it becomes ready when Redis comes")
    t.eq(ht.publish(hub.port, ht.mint_token(), [TOPIC], data="x").status, 200,
         "and publishes are answered 200")
    t.stop_hub(hub)

    for extra, want, what in (
            (["--redis", "rediss://127.0.0.1:6380"], "TLS", "rediss:// is refused: no TLS"),
            (["--redis", "http://127.0.0.1:6379"], "redis://", "a URL that is not redis://"),
            (["--redis", "redis://127.0.0.1:99999"], "port", "a bad port"),
            (["--redis", late.url, "--data-dir", os.path.join(ROOT, "d")], "choose one",
             "--redis with --data-dir")):
        p = ht.free_port()
        res = subprocess.run(ht.hub_args(p, extra=extra), capture_output=True, text=True,
                             timeout=20 * ht.SLOW, env=ht.base_env(), stdin=subprocess.DEVNULL)
        t.check(res.returncode != 0 and want in res.stderr, what, (res.returncode, res.stderr[-300:]))
    late.stop()


def evalsha_calls(r):
    """How many EVALSHA calls Redis ran since its statistics were reset."""
    for line in r.cmd("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_batched_appends():
    """Pipelined publishes are appended a batch per script call, and each update of a batch keeps
    what it had alone: its own entry, in publish order, its id in the index (the first copy of an
    id repeated inside one batch is the one a resume finds), retention, and the hub-update count."""
    r = redis("batch")
    sub_tok = ht.mint_token(publish=(), subscribe=("*",))
    h = ht.start_hub(redis=r.url, redis_stream="batch", history_size=1024, subscriptions=True)
    t.check(ht.wait_until(lambda: ready(h).status == 200, 10 * ht.SLOW), "hub ready")
    live = sub(h.port, sub_tok)
    live.wait_open()
    r.cmd("CONFIG", "RESETSTAT")
    uids = [f"batch-{i}" for i in range(1600)]
    uids[20] = uids[21] = "batch-dup"  # twice within one pipelined batch of 50
    ht.publish_many(h.port, TOPIC, uids, "b")
    calls = evalsha_calls(r)
    t.check(0 < calls <= len(uids) // 2, "1600 pipelined publishes, all answered 200, took at most "
            "800 script calls (a batch per call, not one per update)", calls)
    live.wait(lambda s: len([i for i in s.ids() if i.startswith("batch-")]) >= len(uids), 20)
    t.eq([i for i in live.ids() if i.startswith("batch-")], uids,
         "the subscriber got every update once, in publish order")
    entries = r.cmd("XRANGE", "batch", "-", "+")
    fields = [dict(zip(e[1][::2], e[1][1::2])) for e in entries]
    app = [(e[0], f[b"i"].decode()) for e, f in zip(entries, fields) if b"h" not in f]
    t.eq([u for _, u in app], uids[-len(app):], "the stream holds the newest updates, in order")
    t.check(1024 <= len(app) <= 1024 + 256, "retention held across batches (--history-size 1024 "
            "and its slack)", len(app))
    t.check(all(r.cmd("HGET", "batch:ids", u) == e for e, u in app[-100:]),
            "each update of a batch has its own entry in the index")
    many = [sub(h.port, sub_tok) for _ in range(30)]
    for x in many:
        x.wait_open()
    for x in many:
        x.close()
    t.check(ht.wait_until(lambda: int(r.cmd("GET", "batch:hubs") or 0) >= 60, 10 * ht.SLOW),
            "30 subscribers at once came and went: their events are counted",
            r.cmd("GET", "batch:hubs"))
    hubs = sum(1 for e in r.cmd("XRANGE", "batch", "-", "+") if b"h" in e[1][::2])
    t.eq(int(r.cmd("GET", "batch:hubs")), hubs,
         "the hub-update count is the stream's subscription events, batches or not")
    live.close()
    small = ht.start_hub(redis=r.url, redis_stream="dup", history_size=1024)
    t.check(ht.wait_until(lambda: ready(small).status == 200, 10 * ht.SLOW), "second hub ready")
    dups = [f"dup-{i}" for i in range(40)]
    dups[5] = dups[30] = "dup-x"
    ht.publish_many(small.port, TOPIC, dups, "d")
    first = [e[0] for e in r.cmd("XRANGE", "dup", "-", "+")
             if dict(zip(e[1][::2], e[1][1::2]))[b"i"] == b"dup-x"]
    t.eq(len(first), 2, "an id repeated inside one batch: two entries")
    t.eq(r.cmd("HGET", "dup:ids", "dup-x"), first[0], "the index names the first copy")
    res = sub(small.port, sub_tok, last_event_id="dup-x")
    res.wait(lambda s: dups[-1] in s.ids(), 10)
    t.eq(res.ids(), dups[6:], "a resume from it gets what followed the first copy, once")
    res.close()
    t.stop_hub(small)
    t.stop_hub(h)
    r.stop()


ONLY = sys.argv[1:]  # test function names to run alone (by hand); none: all


def section(title, fn):
    if not ONLY or fn.__name__ in ONLY:
        t.section(title, fn)


try:
    section("two hubs on one stream: the same updates, in the same order; resume anywhere",
            test_two_hubs)
    section("Redis killed and restarted mid-stream: 503 meanwhile, no gap, no duplicate",
            test_redis_outage)
    section("updates trimmed before a stalled hub read them: its streams end, no silent hole",
            test_trimmed_before_read)
    section("a resume on a hub with an id its reader has not read yet",
            test_resume_ahead_of_reader)
    section("a slow resume while updates keep coming, across a hub's start",
            test_paging_while_live)
    section("--history-max-age drops what is older from the stream", test_max_age)
    section("kill -9 of a hub during publishes: every acknowledged update once, in order",
            test_kill9_during_publishes)
    section("a Redis slow to answer resumes: refused at once, the worker not held",
            test_slow_redis_resume)
    section("subscription events under their own budget in the shared stream",
            test_subscription_events_budget)
    section("a resume's pages fetched off its worker", test_replay_off_the_worker)
    section("a hub whose Redis is down; refused settings", test_start_without_redis_and_refusals)
    section("pipelined publishes appended a batch per script call, each update intact",
            test_batched_appends)
finally:
    ht.stop_all_hubs()
    for r in _redises:
        try:
            r.stop()
        except Exception:  # noqa: BLE001
            pass
    shutil.rmtree(ROOT, ignore_errors=True)
t.finish()
