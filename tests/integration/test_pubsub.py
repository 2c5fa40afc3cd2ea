"""test_pubsub — publishing and subscribing end to end: curl as a real subscriber sees the SSE
framing of an update (id, event, retry, data split on CR, LF and CRLF); the stream response's
headers and opening comment; one delivery per update however many selectors match it; topic
filtering, the '*' selector and the legacy 'topic' parameter; private updates withheld from
anonymous subscribers and from tokens that do not grant one of the update's topics; heartbeats.
"""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_pubsub")


class CurlSubscriber:
    """`curl -sN` on the subscription URL; its stdout (the decoded event stream) is parsed on a
    thread."""

    def __init__(self, port, query, token=None):
        args = ["curl", "-sN", "--max-time", str(int(120 * ht.SLOW))]
        if token:
            args += ["-H", f"Authorization: Bearer {token}"]
        args.append(f"http://127.0.0.1:{port}{query}")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.parser = ht.SSEParser()
        self.raw = bytearray()
        self.events = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                return
            with self.lock:
                self.raw += data
                self.events.extend(self.parser.feed(data))

    def wait(self, pred, timeout):
        def probe():
            with self.lock:
                return pred(self)
        return ht.wait_until(probe, timeout * ht.SLOW)

    def close(self):
        self.proc.kill()
        self.proc.wait()


def test_stream_head(hub):
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:pubsub:head"]))
    r = s.response
    t.eq(r.status, 200, "anonymous subscribe answers 200")
    t.check((r.header("content-type") or "").startswith("text/event-stream"),
            "Content-Type is text/event-stream", r.headers)
    t.eq(r.header("cache-control"), "no-cache", "Cache-Control: no-cache")
    t.eq((r.header("x-accel-buffering") or "").lower(), "no", "X-Accel-Buffering: no")
    t.eq((r.header("transfer-encoding") or "").lower(), "chunked", "Transfer-Encoding: chunked")
    t.check(r.header("content-length") is None, "no Content-Length on the stream", r.headers)
    t0 = time.monotonic()
    opened = s.wait_open(5)
    t.check(opened and s.first_payload.startswith(b":") and b"\n" in s.first_payload,
            f"opening ':' comment arrives before any publish ({time.monotonic() - t0:.2f}s)",
            f"first payload {s.first_payload!r}")
    t.eq(s.events, [], "no event before any publish")
    s.close()


def test_framing(hub, pub):
    topic = "urn:pubsub:frame"
    curl = CurlSubscriber(hub.port, ht.sub_query([topic]))
    t.check(curl.wait(lambda c: c.raw.startswith(b":"), 10), "curl subscriber opened (':' comment)",
            bytes(curl.raw))
    resp = pub.publish(topic, data="line1\nline2\rline3\r\nline4", id="frame-1", type="greeting",
                       retry=2500)
    t.eq((resp.status, resp.text), (200, "frame-1"), "publish with id answers 200 and the id")
    t.check((resp.header("content-type") or "").replace(" ", "").lower()
            == "text/plain;charset=utf-8", "publish response is text/plain; charset=utf-8",
            resp.headers)
    gen = pub.publish(topic, data="second")
    gen_id = gen.text
    t.check(gen.status == 200 and re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", gen_id),
        "publish without id: the hub generates urn:uuid:<v7> (time-ordered)", gen_id)
    ms = int(gen_id[9:17] + gen_id[18:22], 16)
    t.check(abs(ms - time.time() * 1000) < 600_000, "the v7 id carries the time it was made",
            (gen_id, ms))
    # A private update's id tells nothing of when it was published: random (v4). Another topic,
    # so that the curl subscriber's count below is unchanged.
    priv = pub.publish(topic + ":private", data="secret", private=True)
    t.check(priv.status == 200 and re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        priv.text), "private publish without id: the hub generates urn:uuid:<v4>",
        (priv.status, priv.text))
    pub.publish(topic, data="a\n\nb", id="frame-3")
    t.check(curl.wait(lambda c: len(c.events) >= 3, 10), "curl received three updates",
            curl.events)
    with curl.lock:
        evs = list(curl.events)
        raw = bytes(curl.raw)
    curl.close()
    if len(evs) < 3:
        return
    e = evs[0]
    t.eq((e.id, e.type, e.retry, e.data), ("frame-1", "greeting", "2500", "line1\nline2\nline3\nline4"),
         "id, event, retry and data (CR, LF, CRLF each start a data line)")
    lines = e.raw.split(b"\n")
    t.eq(sorted(l for l in lines if not l.startswith(b"data")),
         sorted([b"id: frame-1", b"event: greeting", b"retry: 2500", b"", b""]),
         "framing: 'id: ', 'event: ', 'retry: ' lines, one space after the colon")
    t.eq([l for l in lines if l.startswith(b"data")],
         [b"data: line1", b"data: line2", b"data: line3", b"data: line4"],
         "framing: one 'data: ' line per line of data, in order")
    t.check(b"\r" not in raw, "no raw CR on the wire (it would split a data line)", short_raw(raw))
    t.check(e.raw.endswith(b"\n\n"), "an event ends with an empty line")
    t.eq((evs[1].id, evs[1].data, evs[1].type, evs[1].retry), (gen_id, "second", None, None),
         "generated id is the SSE id; no event/retry lines when not given")
    t.eq((evs[2].id, evs[2].data), ("frame-3", "a\n\nb"), "empty line inside data survives")
    ids = [ev.id for ev in evs]
    t.eq(ids, ["frame-1", gen_id, "frame-3"], "updates arrive once each, in publish order")


def short_raw(raw):
    return ht.short(raw, 600)


def sync(stream, pub, topic, tag):
    """Publishes a marker update on topic and waits for it: everything published before it on
    the same publisher connection has then been delivered or withheld."""
    mid = f"sync-{tag}-{time.monotonic_ns()}"
    pub.must(topic, data="sync", id=mid)
    return stream.wait_id(mid, 10) is not None


def test_dedup(hub, pub):
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:pubsub:a", "urn:pubsub:a", "urn:pubsub:b", "*"]))
    s.wait_open(10)
    pub.must(["urn:pubsub:a", "urn:pubsub:b"], data="both", id="dedup-1")
    pub.must("urn:pubsub:a", data="a-only", id="dedup-2")
    t.check(sync(s, pub, "urn:pubsub:a", "dedup"), "sync marker arrived", s.events)
    ids = s.ids()
    t.eq(ids.count("dedup-1"), 1,
         "update with topics a and b, subscriber matching a (twice), b and '*': delivered once")
    t.eq(ids.count("dedup-2"), 1, "update matching two of the selectors: delivered once")
    s.close()


def test_filter(hub, pub):
    only = ht.SSEStream(hub.port, ht.sub_query(["urn:pubsub:only"]))
    star = ht.SSEStream(hub.port, ht.sub_query(["*"]))
    legacy = ht.SSEStream(hub.port, ht.sub_query(["urn:pubsub:only"], param="topic"))
    for s in (only, star, legacy):
        s.wait_open(10)
    pub.must("urn:pubsub:other", data="x", id="filter-other")
    pub.must("urn:pubsub:only", data="y", id="filter-only")
    marker = "urn:pubsub:only"
    t.check(sync(only, pub, marker, "f1"), "filtered subscriber got the marker")
    t.check(only.ids()[:1] == ["filter-only"] and "filter-other" not in only.ids(),
            "subscriber to urn:pubsub:only gets only that topic", only.ids())
    star.wait_count(3, 10)
    t.eq(star.ids()[:2], ["filter-other", "filter-only"], "'*' subscriber gets every topic")
    legacy.wait_count(2, 10)
    t.check(legacy.ids()[:1] == ["filter-only"] and "filter-other" not in legacy.ids(),
            "legacy 'topic=' parameter filters like 'match='", legacy.ids())
    for s in (only, star, legacy):
        s.close()


def test_large_and_unicode(hub, pub):
    topic = "urn:pubsub:caf\u00e9/\u6771\u4eac"
    s = ht.SSEStream(hub.port, ht.sub_query([topic]))
    s.wait_open(10)
    big = "\n".join(f"{i:05d} " + "\u00e9\u6771" * 40 for i in range(500))
    pub.must(topic, data=big, id="big-\u00e9 1", type="t\u00e9")
    ev = s.wait_id("big-\u00e9 1", 20)
    t.check(ev is not None and ev.data == big and ev.type == "t\u00e9",
            f"{len(big.encode())}-byte multi-line UTF-8 update on a UTF-8 topic arrives intact",
            ev)
    s.close()


def test_private(hub, pub):
    topic, other = "urn:pubsub:priv", "urn:pubsub:elsewhere"
    anon = ht.SSEStream(hub.port, ht.sub_query([topic]))
    granted = ht.SSEStream(hub.port, ht.sub_query([topic]),
                           token=ht.mint_token(publish=(), subscribe=(topic,)))
    star_tok = ht.SSEStream(hub.port, ht.sub_query(["*"]),
                            token=ht.mint_token(publish=(), subscribe=("*",)))
    wrong = ht.SSEStream(hub.port, ht.sub_query([topic]),
                         token=ht.mint_token(publish=(), subscribe=(other,)))
    alt = ht.SSEStream(hub.port, ht.sub_query([topic]),
                       token=ht.mint_token(publish=(), subscribe=("urn:pubsub:alt",)))
    subs = (anon, granted, star_tok, wrong, alt)
    t.eq([s.status for s in subs], [200] * 5, "anonymous and token subscribers accepted")
    for s in subs:
        s.wait_open(10)
    pub.must(topic, data="secret", id="priv-1", private=True)
    pub.must([topic, "urn:pubsub:alt"], data="secret-alt", id="priv-2", private=True)
    pub.must(topic, data="public", id="pub-1")
    for s in subs:
        s.wait_id("pub-1", 10)
    t.eq(anon.ids(), ["pub-1"], "anonymous subscriber: private updates withheld, public delivered")
    t.eq(granted.ids(), ["priv-1", "priv-2", "pub-1"],
         "token granting subscribe on the topic: private updates delivered")
    t.eq(star_tok.ids(), ["priv-1", "priv-2", "pub-1"], "token granting '*': private delivered")
    t.eq(wrong.ids(), ["pub-1"], "token granting another topic only: private withheld")
    t.eq(alt.ids(), ["priv-2", "pub-1"],
         "token granting the update's alternate topic: that private update delivered")
    for s in subs:
        s.close()


def test_auth_required(hub):
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:pubsub:x"]))
    t.eq(s.status, 401, "hub without --anonymous: subscriber without token gets 401")
    t.check((s.response.header("www-authenticate") or "").lower().startswith("bearer"),
            "401 carries WWW-Authenticate: Bearer", s.response.headers)
    s.close()
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:pubsub:x"]),
                     token=ht.mint_token(publish=(), subscribe=("urn:pubsub:x",)))
    t.eq(s.status, 200, "hub without --anonymous: subscriber with a token gets 200")
    s.close()


def test_heartbeat(hub):
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:pubsub:hb"]),
                     token=ht.mint_token(publish=(), subscribe=("*",)))
    s.wait_open(10)
    n0 = len(s.comments)
    t0 = time.monotonic()
    got = s.wait(lambda st: len(st.comments) >= n0 + 3, 6)
    elapsed = time.monotonic() - t0
    t.check(got, f"--heartbeat 1: three ':' comments within {elapsed:.1f}s",
            f"comments {s.comments}")
    t.check(elapsed >= 1.5, "heartbeats are spaced about one second apart, not a burst",
            f"3 comments after {elapsed:.2f}s")
    t.eq(s.events, [], "heartbeats are comments, not events")
    s.close()


def main():
    hub = ht.start_hub(anonymous=True)
    pub = ht.Publisher(hub.port)
    t.section("stream response head and opening comment", test_stream_head, hub)
    t.section("framing seen by curl", test_framing, hub, pub)
    t.section("one delivery per update", test_dedup, hub, pub)
    t.section("topic filter, '*', legacy topic=", test_filter, hub, pub)
    t.section("large UTF-8 update", test_large_and_unicode, hub, pub)
    t.section("private updates", test_private, hub, pub)
    pub.close()
    t.stop_hub(hub)

    hub2 = ht.start_hub(heartbeat=1)
    t.section("subscriber authentication", test_auth_required, hub2)
    t.section("heartbeat", test_heartbeat, hub2)
    t.stop_hub(hub2)
    t.finish()


if __name__ == "__main__":
    main()
