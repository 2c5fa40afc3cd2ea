"""test_resume — reconnection with Last-Event-ID: the header, the last_event_id query parameter
and the legacy lastEventID one replay exactly the matching updates published after the given id
and then go live; the header wins over the query; 'earliest' and an unknown or evicted id replay
everything retained; Mercure-Last-Event-ID tells where the replay starts; private updates stay
private in a replay; a subscriber resuming while updates are being published sees no gap and no
duplicate. Finally the npm `eventsource` client, whose connection is cut by a TCP proxy between
it and the hub, reconnects by itself and ends with every update exactly once, in order.
"""

import json
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_resume")

A, B = "urn:resume:a", "urn:resume:b"
# (id, topic, private) in publish order
SEQ = [("r-1", A, False), ("r-2", B, False), ("r-3", A, False), ("r-4", A, True),
       ("r-5", B, False), ("r-6", A, False), ("r-7", A, False), ("r-8", B, False),
       ("r-9", A, False), ("r-10", A, False)]


def expected_after(after, topics=(A,), private_ok=False):
    """Ids of SEQ after `after` (all of SEQ when after is None) that the subscriber may see."""
    start = next((i + 1 for i, (id_, _, _) in enumerate(SEQ) if id_ == after), 0)
    return [id_ for id_, topic, private in SEQ[start:]
            if topic in topics and (private_ok or not private)]


def test_replay(hub):
    pub = ht.Publisher(hub.port)
    for id_, topic, private in SEQ:
        pub.must(topic, data=f"data of {id_}", id=id_, private=private)
    all_tok = ht.mint_token(publish=(), subscribe=("*",))
    cases = [
        # (what, query, headers, token, expected ids, expected Mercure-Last-Event-ID)
        ("Last-Event-ID header", ht.sub_query([A]), {"Last-Event-ID": "r-3"}, None,
         expected_after("r-3"), "r-3"),
        ("last_event_id query parameter", ht.sub_query([A], last_event_id="r-3"), {}, None,
         expected_after("r-3"), "r-3"),
        ("legacy lastEventID query parameter", ht.sub_query([A], lastEventID="r-3"), {}, None,
         expected_after("r-3"), "r-3"),
        ("header wins over the query parameter", ht.sub_query([A], last_event_id="r-1"),
         {"Last-Event-ID": "r-7"}, None, expected_after("r-7"), "r-7"),
        ("two selectors: replay of both topics, in order", ht.sub_query([A, B]),
         {"Last-Event-ID": "r-4"}, None, expected_after("r-4", (A, B)), "r-4"),
        ("token granting '*': private update replayed", ht.sub_query([A]),
         {"Last-Event-ID": "r-3"}, all_tok, expected_after("r-3", private_ok=True), "r-3"),
        ("earliest replays all retained", ht.sub_query([A], last_event_id="earliest"), {}, None,
         expected_after(None), "earliest"),
        ("earliest in the header", ht.sub_query(["*"]), {"Last-Event-ID": "earliest"}, None,
         expected_after(None, (A, B)), "earliest"),
        ("unknown id: earliest and all retained", ht.sub_query([A]),
         {"Last-Event-ID": "no-such-id"}, None, expected_after(None), "earliest"),
        ("the newest id: nothing to replay", ht.sub_query([A]), {"Last-Event-ID": "r-10"}, None,
         [], "r-10"),
    ]
    streams = []
    for what, query, headers, token, want, want_header in cases:
        s = ht.SSEStream(hub.port, query, token=token, headers=headers)
        if not t.eq(s.status, 200, f"{what}: 200"):
            continue
        t.eq(s.response.header("mercure-last-event-id"), want_header,
             f"{what}: Mercure-Last-Event-ID: {want_header}")
        if want:
            s.wait_id(want[-1], 10)
        matches = urllib.parse.parse_qs(query.split("?", 1)[1]).get("match", [])
        streams.append((what, s, want, B in matches or "*" in matches))
    # Live updates follow the replay on the same stream.
    pub.must(B, data="live b", id="r-11")
    pub.must(A, data="live a", id="r-12")
    for what, s, want, gets_b in streams:
        s.wait_id("r-12", 10)
        live = ["r-11", "r-12"] if gets_b else ["r-12"]
        t.eq(s.ids(), want + live, f"{what}: exactly the later matching updates, then live ones")
        t.check(all(e.data == f"data of {e.id}" for e in s.events[:len(want)]),
                f"{what}: replayed data intact", s.events[:3])
        s.close()
    pub.close()


def test_small_history(hub):
    pub = ht.Publisher(hub.port)
    ids = [pub.must("urn:resume:h", data=f"h{i}", id=f"h-{i}") for i in range(1, 9)]
    t.eq(ids, [f"h-{i}" for i in range(1, 9)], "published h-1..h-8 with --history-size 5")
    retained = [f"h-{i}" for i in range(4, 9)]
    streams = []
    for what, headers, want, want_header in [
        ("earliest with --history-size 5: the last five", {"Last-Event-ID": "earliest"},
         retained, "earliest"),
        ("evicted id h-2: earliest and the five retained", {"Last-Event-ID": "h-2"},
         retained, "earliest"),
        ("retained id h-5: h-6..h-8", {"Last-Event-ID": "h-5"}, ["h-6", "h-7", "h-8"], "h-5"),
    ]:
        s = ht.SSEStream(hub.port, ht.sub_query(["urn:resume:h"]), headers=headers)
        t.eq(s.response.header("mercure-last-event-id"), want_header,
             f"{what}: Mercure-Last-Event-ID {want_header}")
        s.wait_id("h-8", 10)
        streams.append((what, s, want))
    pub.must("urn:resume:h", data="live", id="h-live")
    for what, s, want in streams:
        s.wait_id("h-live", 10)
        t.eq(s.ids(), want + ["h-live"], what)
        s.close()
    pub.close()


def test_resume_during_publish(hub):
    """Subscribers resume while a publisher is busy: the hand-over from history to live must
    neither skip nor repeat an update."""
    topic = "urn:resume:busy"
    total = 400
    published = []
    lock = threading.Lock()

    def run():
        p = ht.Publisher(hub.port)
        for i in range(total):
            id_ = p.must(topic, data=str(i), id=f"busy-{i}")
            with lock:
                published.append(id_)
        p.close()

    th = threading.Thread(target=run)
    th.start()
    streams = []
    deadline = time.monotonic() + 60 * ht.SLOW
    for k in range(12):
        target = 10 + k * 25
        while time.monotonic() < deadline:
            with lock:
                if len(published) >= target or not th.is_alive():
                    after = published[-1] if published else "earliest"
                    break
            time.sleep(0.002)
        s = ht.SSEStream(hub.port, ht.sub_query([topic]), headers={"Last-Event-ID": after})
        streams.append((after, s))
    th.join(60 * ht.SLOW)
    t.eq(len(published), total, f"publisher finished {total} updates")
    last = f"busy-{total - 1}"
    for after, s in streams:
        s.wait_id(last, 20)
        start = published.index(after) + 1 if after in published else 0
        t.eq(s.ids(), published[start:],
             f"resumed after {after} during publishing: every later update once, in order")
        s.close()


class TcpProxy:
    """A loopback TCP relay in front of the hub. cut() severs every relayed connection; down()
    also stops accepting (connections are refused) until up()."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.port = ht.free_port()
        self.lock = threading.Lock()
        self.conns = []
        self.accepted = 0
        self.listener = None
        self.up()

    def up(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def down(self):
        ls, self.listener = self.listener, None
        if ls:
            try:
                ls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ls.close()
        self.cut()

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            for s in c:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _accept(self, ls):
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.append((client, server))
                self.accepted += 1
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, a, b):
        peer = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    peer[s].sendall(data)
        except (OSError, ValueError):
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


def test_eventsource_client(hub):
    script = os.path.join(ht.HERE, "resume_client.js")
    modules = os.path.join(ht.SOURCE, "tests", "node_modules")
    if not t.check(os.path.isdir(os.path.join(modules, "eventsource")),
                   "npm eventsource client installed", f"missing {modules}: run 'cd tests && npm ci'"):
        return
    proxy = TcpProxy(hub.port)
    topic = "urn:resume:es"
    total = 40
    url = f"http://127.0.0.1:{proxy.port}" + ht.sub_query([topic])
    token = ht.mint_token(publish=(), subscribe=(topic,))
    env = dict(os.environ, NODE_PATH=modules)
    node = subprocess.Popen(["node", script, url, token, str(total), str(int(90 * ht.SLOW))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = queue.Queue()
    log = []
    msgs = []
    connects = []

    def reader():
        for line in node.stdout:
            lines.put(line)

    threading.Thread(target=reader, daemon=True).start()

    def drain(until, timeout):
        deadline = time.monotonic() + timeout * ht.SLOW
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                line = lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if node.poll() is not None and lines.empty():
                    return until()
                continue
            log.append(line.strip())
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "id" in obj:
                msgs.append((obj["id"], obj["data"]))
            elif "connect" in obj:
                connects.append(obj["connect"])
        return True

    pub = ht.Publisher(hub.port)
    opened = drain(lambda: any('"open"' in line for line in log), 20)
    t.check(opened, "eventsource client connected through the proxy", log[-5:])
    ids = []
    try:
        # 1: live updates (the first sets a short reconnection time for the client).
        for i in range(1, 11):
            ids.append(pub.must(topic, data=f"es {i}", id=f"es-{i}", retry=300 if i == 1 else None))
        t.check(drain(lambda: len(msgs) >= 10, 20), "client received es-1..es-10 live",
                msgs)
        # 2: the connection drops and the hub cannot be reached; updates go on meanwhile.
        proxy.down()
        for i in range(11, 21):
            ids.append(pub.must(topic, data=f"es {i}", id=f"es-{i}"))
        time.sleep(1.0)
        proxy.up()
        t.check(drain(lambda: len(msgs) >= 20, 30),
                "after the outage the client reconnected and caught up to es-20", msgs[-3:])
        # 3: the connection is cut while updates are flowing.
        cut_done = threading.Event()

        def publish_rest():
            for i in range(21, total + 1):
                ids.append(pub.must(topic, data=f"es {i}", id=f"es-{i}"))
                time.sleep(0.03)
            cut_done.set()

        th = threading.Thread(target=publish_rest)
        th.start()
        drain(lambda: len(msgs) >= 25, 20)
        proxy.cut()
        th.join(60 * ht.SLOW)
        t.check(drain(lambda: len(msgs) >= total, 40),
                f"after a cut mid-flow the client ended with {total} messages", msgs[-3:])
        drain(lambda: node.poll() is not None, 10)
    finally:
        pub.close()
        if node.poll() is None:
            node.kill()
        node.wait()
        proxy.down()
    want = [(f"es-{i}", f"es {i}") for i in range(1, total + 1)]
    t.eq(msgs, want, "eventsource client: every update exactly once, in order, data intact")
    t.eq(node.returncode, 0, "client exited 0 after the last update")
    t.check(len(connects) >= 3 and connects[0] is None,
            "client connected three or more times (first without Last-Event-ID)", connects)
    t.check(len(connects) >= 2 and connects[1] == "es-10",
            "after the outage the client sent Last-Event-ID: es-10", connects)
    t.check(all(c in ids for c in connects[1:]),
            "every reconnection sent an id the hub issued", connects)
    if t.failed:
        print("client log:\n  " + "\n  ".join(log[-40:]))
        print("client stderr:\n" + (node.stderr.read() if node.stderr else ""))


def main():
    hub = ht.start_hub(anonymous=True, history_size=1000)
    t.section("replay from history, then live", test_replay, hub)
    t.section("resume while publishing", test_resume_during_publish, hub)
    t.stop_hub(hub)

    small = ht.start_hub(anonymous=True, history_size=5)
    t.section("history size bounds the replay", test_small_history, small)
    t.stop_hub(small)

    hub3 = ht.start_hub(history_size=1000)
    t.section("npm eventsource client reconnects with Last-Event-ID", test_eventsource_client, hub3)
    t.stop_hub(hub3)
    t.finish()


if __name__ == "__main__":
    main()
