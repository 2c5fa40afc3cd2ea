#!/usr/bin/env python3
"""test_nginx_drain.py — a graceful shutdown of the hub behind a real nginx, seen by its clients.

Runs the real daemon with --reconnect-spread 2 --drain-delay 1 and Debian's nginx in front of it
(deploy/nginx.conf, rendered by deploy/nginx_local.py for a temp prefix and loopback ports).
50 raw-socket subscribers go through nginx and 10 straight to the hub; 100 updates are published
through nginx, and a publisher on a keep-alive connection to the hub keeps publishing while the
hub gets SIGTERM. Asserted, for every subscriber: every update answered 200 arrived, in order;
exactly one `event: close` frame (data server_shutdown, a `retry:` within the spread) ends the
event stream, after the drain delay; the body ends on a frame boundary; the chunked terminator
arrives; then EOF, never a reset. Also: /readyz 503 and /healthz 200 during the drain delay,
publishes still accepted then, a refused publish is 503 + Retry-After + Connection: close, the hub
logs the drain and exits 0, the retry values are jittered, and nginx logged no upstream error.
Python standard library only.
"""
import http.client
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SOURCE = os.environ.get("SLUICE_SOURCE") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN") or os.path.join(SOURCE, "build", "sluice")
sys.path.insert(0, os.path.join(SOURCE, "deploy"))
import nginx_local  # noqa: E402  (deploy/ is not a package)

N_PROXIED = 50
N_DIRECT = 10
UPDATES = 100
SPREAD = 2.0        # --reconnect-spread, seconds
DRAIN_DELAY = 1.0   # --drain-delay, seconds
EXIT_WITHIN = 20.0  # seconds from SIGTERM to the hub's exit (its own timeout is 25)
LATE_MAX = 2000     # bound on publishes by the late publisher
TOPIC = "https://example.com/drain/" + os.urandom(4).hex()
KEY = os.urandom(32).hex()
MERCURE = "/.well-known/mercure"

failures = []


def expect(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f": {detail}"),
          flush=True)
    if not ok:
        failures.append(what)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path, timeout=2.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Subscriber:
    """One raw HTTP/1.1 subscription: a strict chunked decoder and a record of how it ended."""

    def __init__(self, name, port, connection_close):
        self.name = name
        self.buf = b""
        self.head = None       # (status, {header: value}) once the headers are in
        self.state = "head"    # head, size, data, data-crlf, trailer, done
        self.left = 0
        self.body = bytearray()
        self.errors = []
        self.terminated = False  # the zero-size chunk and the empty trailer arrived
        self.eof = False
        self.reset = False
        self.close_seen_at = None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        req = (f"GET {MERCURE}?topic={urllib.parse.quote(TOPIC, safe='')} HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n")
        if connection_close:
            req += "Connection: close\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.sock.setblocking(False)

    def feed(self, data):
        if self.state == "done" and data:
            self.errors.append(f"{len(data)} bytes after the chunked terminator: {data[:60]!r}")
            return
        self.buf += data
        while True:
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = self.buf[:end].decode("latin-1").split("\r\n")
                self.buf = self.buf[end + 4:]
                status = int(lines[0].split()[1])
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                self.head = (status, headers)
                if status != 200 or headers.get("transfer-encoding", "").lower() != "chunked":
                    self.errors.append(f"response {lines[0]!r}, headers {headers}")
                    self.state = "done"
                    return
                self.state = "size"
            elif self.state == "size":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                line = self.buf[:end].split(b";")[0].strip()
                self.buf = self.buf[end + 2:]
                try:
                    self.left = int(line, 16)
                except ValueError:
                    self.errors.append(f"bad chunk size line {line!r}")
                    self.state = "done"
                    return
                self.state = "data" if self.left else "trailer"
            elif self.state == "data":
                take = self.buf[:self.left]
                self.body += take
                self.buf = self.buf[len(take):]
                self.left -= len(take)
                if b"event: close\n" in self.body[-len(take) - 16:] and self.close_seen_at is None:
                    self.close_seen_at = time.monotonic()
                if self.left:
                    return
                self.state = "data-crlf"
            elif self.state == "data-crlf":
                if len(self.buf) < 2:
                    return
                if self.buf[:2] != b"\r\n":
                    self.errors.append(f"chunk not followed by CRLF: {self.buf[:10]!r}")
                    self.state = "done"
                    return
                self.buf = self.buf[2:]
                self.state = "size"
            elif self.state == "trailer":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if line == b"":
                    self.terminated = True
                    self.state = "done"
                    if self.buf:
                        self.errors.append(f"bytes after the terminator: {self.buf[:60]!r}")
                    return
            else:
                return

    def events(self):
        """The SSE frames of the body: [{field: [values]}], and any unterminated tail."""
        text = self.body.decode("utf-8")
        parts = text.split("\n\n")
        frames = []
        for part in parts[:-1]:
            fields = {}
            for line in part.split("\n"):
                if line.startswith(":") or not line:
                    continue
                k, _, v = line.partition(":")
                fields.setdefault(k, []).append(v[1:] if v.startswith(" ") else v)
            if fields:
                frames.append(fields)
        return frames, parts[-1]


class Reader(threading.Thread):
    """Reads every subscriber socket until each reaches EOF or a reset, or until stopped."""

    def __init__(self, subs):
        super().__init__(daemon=True)
        self.subs = subs
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sel = selectors.DefaultSelector()
        for s in subs:
            self.sel.register(s.sock, selectors.EVENT_READ, s)

    def run(self):
        while not self.stop.is_set() and self.sel.get_map():
            for key, _ in self.sel.select(0.1):
                s = key.data
                try:
                    data = s.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    with self.lock:
                        s.reset = True
                    self.sel.unregister(s.sock)
                    s.sock.close()
                    continue
                with self.lock:
                    if data:
                        s.feed(data)
                    else:
                        s.eof = True
                if not data:
                    self.sel.unregister(s.sock)
                    s.sock.close()

    def all(self, pred):
        with self.lock:
            return all(pred(s) for s in self.subs)


class Publisher:
    """Publishes on one keep-alive connection; records (data, status, id, headers, sent_at)."""

    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.token = token
        self.results = []

    def publish(self, data):
        body = urllib.parse.urlencode({"topic": TOPIC, "data": data})
        sent = time.monotonic()
        self.conn.request("POST", MERCURE, body, {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/x-www-form-urlencoded"})
        r = self.conn.getresponse()
        text = r.read().decode()
        rec = (data, r.status, text.strip(), {k.lower(): v for k, v in r.getheaders()}, sent)
        self.results.append(rec)
        return rec


def late_publisher(port, token, stop, out):
    """Publishes `late-N` back to back until the hub refuses or closes, or until stopped."""
    pub = Publisher(port, token)
    out["results"] = pub.results
    try:
        for n in range(LATE_MAX):
            if stop.is_set():
                out["ended"] = "stopped by the test"
                return
            _, status, _, headers, _ = pub.publish(f"late-{n}")
            if status != 200:
                out["ended"] = f"HTTP {status}"
                out["refusal"] = (status, headers)
                return
            time.sleep(0.005)
        out["ended"] = "bound reached"
    except (OSError, http.client.HTTPException) as e:
        out["ended"] = f"connection ended: {type(e).__name__}: {e}"
    finally:
        pub.conn.close()


def main():
    if not os.access(BIN, os.X_OK):
        print(f"FAIL the daemon is not built: {BIN}")
        return 1
    tmp = tempfile.mkdtemp(prefix="sluice-nginx-drain-")
    hub_port, nginx_port = free_port(), free_port()
    hub_log = open(os.path.join(tmp, "hub.log"), "w+")
    nginx_log = open(os.path.join(tmp, "nginx.log"), "w+")
    hub = nginx = reader = None
    subs = []
    try:
        # A spec-profile token: its aud is the hub's URL (its default, from --listen).
        token = subprocess.run([BIN, "token", "--key", KEY, "--publish", "*", "--subscribe", "*",
                                "--audience", f"http://127.0.0.1:{hub_port}/.well-known/mercure",
                                "--issuer", "test_nginx_drain"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        hub = subprocess.Popen(
            [BIN, "--listen", f"127.0.0.1:{hub_port}", "--jwt-key", KEY, "--anonymous",
             "--workers", "2", "--reconnect-spread", str(SPREAD), "--drain-delay", str(DRAIN_DELAY)],
            stdin=subprocess.DEVNULL, stdout=hub_log, stderr=hub_log)

        def hub_up():
            try:
                return http_status(hub_port, "/healthz") == 200
            except OSError:
                return False
        if not expect(wait_until(hub_up, 10), "hub serves /healthz after start"):
            return 1
        expect(http_status(hub_port, "/readyz") == 200, "/readyz is 200 before the drain")

        conf = nginx_local.write_config(os.path.join(SOURCE, "deploy", "nginx.conf"), tmp,
                                        nginx_port, hub_port)
        nginx = nginx_local.start(tmp, conf, nginx_port, nginx_log)

        subs = ([Subscriber(f"nginx-{i}", nginx_port, True) for i in range(N_PROXIED)] +
                [Subscriber(f"direct-{i}", hub_port, False) for i in range(N_DIRECT)])
        reader = Reader(subs)
        reader.start()
        if not expect(wait_until(lambda: reader.all(lambda s: s.head is not None), 10),
                      f"all {len(subs)} subscribers got response headers"):
            return 1
        expect(reader.all(lambda s: not s.errors), "every subscription is 200 and chunked",
               "; ".join(f"{s.name}: {s.errors}" for s in subs if s.errors))
        direct_headers = subs[-1].head[1]
        expect(direct_headers.get("x-accel-buffering") == "no"
               and direct_headers.get("content-type", "").startswith("text/event-stream"),
               "the hub answers streams with text/event-stream and X-Accel-Buffering: no",
               f"headers {direct_headers}")

        # A subscription the hub has answered must already receive updates; the warm-up proves
        # it for every subscriber before the counted updates start.
        via_nginx = Publisher(nginx_port, token)
        _, status, warmup_id, _, _ = via_nginx.publish("warmup")
        expect(status == 200, "warm-up publish through nginx is 200", f"status {status}")
        expect(wait_until(lambda: reader.all(lambda s: b"data: warmup\n" in s.body), 10),
               "every subscriber received the warm-up update")

        published, refused = [], []
        for i in range(UPDATES):
            data, status, uid, _, _ = via_nginx.publish(f"update-{i}")
            if status == 200:
                published.append((data, uid))
            else:
                refused.append((data, status))
        via_nginx.conn.close()
        expect(not refused, f"all {UPDATES} publishes through nginx are 200",
               f"refused {refused[:5]}")

        # A publish whose body is still on its way when the listeners close: the hub must answer
        # it 503 with Retry-After and Connection: close, not drop the connection.
        held = socket.create_connection(("127.0.0.1", hub_port), timeout=10)
        held_body = urllib.parse.urlencode({"topic": TOPIC, "data": "held"}).encode()
        held.sendall((f"POST {MERCURE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {token}\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      f"Content-Length: {len(held_body)}\r\n\r\n").encode() + held_body[:5])

        late_stop, late = threading.Event(), {}
        late_thread = threading.Thread(target=late_publisher,
                                       args=(hub_port, token, late_stop, late), daemon=True)
        late_thread.start()
        time.sleep(0.2)
        log_lines_before = len(open(hub_log.name).read().splitlines())

        hub.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        ready = []

        def readiness_down():
            try:
                ready.append(http_status(hub_port, "/readyz"))
            except OSError as e:
                ready.append(f"{type(e).__name__}: {e}")
            return ready[-1] == 503
        down = wait_until(readiness_down, DRAIN_DELAY / 2, step=0.005)
        t_down = time.monotonic() - t_term
        expect(down, f"/readyz turns 503 within {DRAIN_DELAY / 2:.1f} s of SIGTERM",
               f"answers {ready[-3:]}")
        try:
            healthy = http_status(hub_port, "/healthz")
        except OSError as e:
            healthy = f"{type(e).__name__}: {e}"
        expect(healthy == 200 and time.monotonic() - t_term < DRAIN_DELAY,
               "/healthz stays 200 during the drain delay", f"got {healthy}")
        print(f"info /readyz was 503 {t_down * 1000:.0f} ms after SIGTERM")

        def listeners_closed():
            try:
                socket.create_connection(("127.0.0.1", hub_port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
        expect(wait_until(listeners_closed, DRAIN_DELAY + 2, step=0.01)
               and time.monotonic() - t_term >= DRAIN_DELAY - 0.05,
               "the listeners close after the drain delay, not before",
               f"at {time.monotonic() - t_term:.3f} s")
        held.sendall(held_body[5:])
        held_reply, held_end = b"", "no EOF within the bound"
        try:
            while len(held_reply) < 65536:
                chunk = held.recv(4096)
                if not chunk:
                    held_end = "EOF"
                    break
                held_reply += chunk
        except OSError as e:
            held_end = f"{type(e).__name__}: {e}"
        held.close()
        head = held_reply.split(b"\r\n\r\n")[0].decode("latin-1").lower()
        expect(head.startswith("http/1.1 503") and "\r\nretry-after:" in head
               and "\r\nconnection: close" in head and held_end == "EOF",
               "a publish completed after the listeners closed is 503 with Retry-After and "
               "Connection: close, then EOF", f"reply {held_reply[:300]!r}, then {held_end}")

        try:
            code = hub.wait(EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            code = None
        t_exit = time.monotonic()
        expect(code == 0, f"hub exits 0 within {EXIT_WITHIN:.0f} s of SIGTERM",
               f"exit code {code}")
        expect(wait_until(lambda: reader.all(lambda s: s.eof or s.reset), 10),
               "every subscriber connection ended")
        late_stop.set()
        late_thread.join(15)
        reader.stop.set()
        reader.join(5)

        # What the late publisher saw while the hub drained.
        late_results = late.get("results", [])
        late_ok = [(d, uid) for d, st, uid, _, _ in late_results if st == 200]
        during_delay = [r for r in late_results if r[1] == 200 and r[4] > t_term + 0.05]
        print(f"info late publisher: {len(late_ok)} accepted, ended by {late.get('ended')}")
        expect(len(during_delay) > 0, "publishes are still accepted during the drain delay")
        if "refusal" in late:
            status, headers = late["refusal"]
            expect(status == 503 and "retry-after" in headers
                   and "close" in headers.get("connection", "").lower(),
                   "a publish refused during the drain is 503 with Retry-After and "
                   "Connection: close", f"status {status}, headers {headers}")
        expect(late.get("ended", "").startswith(("HTTP", "connection ended")),
               "the late publisher was stopped by the hub, not by its own bound",
               f"ended by {late.get('ended')}")

        expected = [("warmup", warmup_id)] + published + late_ok
        retries = []
        bad = {}  # property -> ["subscriber: detail"]

        def per_sub(ok, prop, s, detail):
            bad.setdefault(prop, [])
            if not ok:
                bad[prop].append(f"{s.name}: {detail}")

        for s in subs:
            frames, tail = s.events()
            data_events = [f for f in frames if "data" in f]
            closes = [f for f in data_events if f.get("event") == ["close"]]
            got = [("\n".join(f["data"]), (f.get("id") or [None])[-1])
                   for f in data_events if f.get("event") != ["close"]]
            first_diff = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                              min(len(got), len(expected)))
            per_sub(got == expected, f"every accepted update ({len(expected)}) arrived once, in "
                    "order, with its id", s, f"got {len(got)}, first difference at {first_diff}: "
                    f"{got[first_diff:first_diff + 1]} vs {expected[first_diff:first_diff + 1]}")
            per_sub(len(closes) == 1 and data_events[-1] is closes[0],
                    "exactly one close event, and it is the last event", s,
                    f"{len(closes)} close events")
            retry = closes[0].get("retry", [""])[-1] if closes else ""
            per_sub(len(closes) == 1 and closes[0].get("data") == ["server_shutdown"]
                    and retry.isdigit() and int(retry) <= SPREAD * 1000,
                    f"the close event has data server_shutdown and a retry of 0-{SPREAD * 1000:.0f} ms",
                    s, f"{closes}")
            if retry.isdigit():
                retries.append(int(retry))
            per_sub(tail == "", "the body ends on a frame boundary (no partial frame)", s,
                    f"tail {tail[:80]!r}")
            per_sub(s.close_seen_at is not None
                    and s.close_seen_at >= t_term + DRAIN_DELAY - 0.05,
                    "the close event came after the drain delay", s,
                    f"after {(s.close_seen_at or t_term) - t_term:.3f} s")
            per_sub(s.terminated and not s.errors, "the chunked terminator ended the response", s,
                    f"terminated {s.terminated}, errors {s.errors}")
            per_sub(s.eof and not s.reset, "then EOF, never a reset", s,
                    f"eof {s.eof}, reset {s.reset}")
        for prop, which in bad.items():
            expect(not which, f"all {len(subs)} subscribers: {prop}",
                   f"{len(which)} failed; " + "; ".join(which[:5]))
        expect(len(set(retries)) > 1, "retry values are jittered across subscribers",
               f"values {sorted(set(retries))}")
        print(f"info retry ms: min {min(retries, default=-1)} max {max(retries, default=-1)}, "
              f"{len(set(retries))} distinct; hub exited {t_exit - t_term:.2f} s after SIGTERM")

        log_after = open(hub_log.name).read().splitlines()[log_lines_before:]
        print("info hub log after SIGTERM:\n  " + "\n  ".join(log_after))
        expect(len(log_after) >= 2, "the hub logged the drain's start and a summary",
               f"{len(log_after)} lines")

        code = nginx_local.stop(nginx)
        nginx = None
        expect(code == 0, "nginx stopped cleanly", f"exit {code}")
        nginx_log.seek(0)
        bad = [line for line in nginx_log.read().splitlines()
               if re.search(r"\[(error|crit|alert|emerg)\]|prematurely|reset by peer", line)]
        expect(not bad, "nginx logged no upstream error (no premature close, no reset)",
               "\n  ".join(bad[:10]))
    finally:
        for s in subs:
            s.sock.close()
        if hub and hub.poll() is None:
            hub.kill()
            hub.wait()
        if nginx:
            nginx_local.stop(nginx)
        if failures:
            hub_log.seek(0)
            print("---- hub log\n" + hub_log.read()[-4000:])
            nginx_log.seek(0)
            print("---- nginx log\n" + nginx_log.read()[-4000:])
        hub_log.close()
        nginx_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_nginx_drain: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
