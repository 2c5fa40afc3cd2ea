"""test_drain — the graceful drain on SIGTERM/SIGINT, seen over real sockets by real clients.

What the daemon promises (src/main.c, src/shutdown.c, drain_begin in src/server.c): on the first
SIGTERM or SIGINT /readyz turns 503 at once; for --drain-delay the hub keeps serving in full;
then the listeners close, no update is accepted any more (publish: 503 + Retry-After +
Connection: close), every update already accepted is delivered, and each stream gets a last
frame `retry: <jittered within --reconnect-spread>` / `event: close` / `data: server_shutdown`,
the chunked terminator and the hub's FIN; the hub then waits for each client's FIN. Whatever is
still open after --shutdown-timeout is closed hard: the exit code is then non-zero and the
summary log line counts those connections as forced. A second signal forces at once.

Sections (each with its own hub):
 1. 1000 raw-socket subscribers in one selector loop plus 5 `curl -sN` subscribers; a publisher
    on one keep-alive connection publishes up to 300 updates and SIGTERM arrives after the
    150th answer. Every 200 update reaches every subscriber once, in order; exactly one close
    frame ends each stream; terminator; clean EOF; nothing after; exit 0 with 0 forced; the
    retry values are jittered within the spread; curl exits 0; `ss` shows no connection left
    on the hub's port (TIME-WAIT aside).
 2. --drain-delay: /readyz 503 at once, /healthz 200, a publish during the delay is delivered,
    a new subscriber is accepted; after the delay the streams end with the close frame.
 3. A subscriber that never reads (small SO_RCVBUF, megabytes queued) and --shutdown-timeout 2:
    the hub exits within timeout + 1 s, non-zero, 1 forced; a reading subscriber ends cleanly.
 4. The same stuck subscriber with --shutdown-timeout 30: a second signal (SIGTERM, then in
    another run SIGINT) 0.5 s after the first makes the hub exit within ~1 s, non-zero.
 5. A keep-alive publisher connection opened before SIGTERM (--drain-delay 0, the drain held
    open by a stuck subscriber): a publish completed after the signal is 503 + Retry-After +
    Connection: close, then EOF; an idle keep-alive connection is closed (EOF, not reset).
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

TOPIC = "urn:drain:t"
SPREAD = 2.0                 # --reconnect-spread, seconds
SUBSCRIBERS = 1000
CURLS = 5
UPDATES = 300                # bound on the section 1 publish stream
SIGNAL_AFTER = 150           # SIGTERM once this many publishes were answered 200
BIG = 60 * 1024              # bytes of data in one large update (sections 3-5)

t = ht.Checker("test_drain")


# ---------------------------------------------------------------------------------------------
# Helpers


def sub_path(topic=TOPIC):
    return ht.sub_query([topic], param="topic")


TCP_STATES = {"01": "ESTAB", "02": "SYN-SENT", "03": "SYN-RECV", "04": "FIN-WAIT-1",
              "05": "FIN-WAIT-2", "06": "TIME-WAIT", "07": "UNCONN", "08": "CLOSE-WAIT",
              "09": "LAST-ACK", "0A": "LISTEN", "0B": "CLOSING"}


def port_sockets(port):
    """[(state, local, peer)] of every TCP socket with the port at either end, as `ss -Htan`
    shows them (or, where ss is not installed, as /proc/net/tcp lists them)."""
    out = []
    if shutil.which("ss"):
        r = subprocess.run(["ss", "-Htan", f"( sport = :{port} or dport = :{port} )"],
                           capture_output=True, text=True, timeout=10)
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) >= 5:
                out.append((f[0], f[3], f[4]))
        return out
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            lport, pport = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
            if port in (lport, pport):
                out.append((TCP_STATES.get(f[3], f[3]), f"*:{lport}", f"*:{pport}"))
    return out


def local_port(addr):
    """The port of an ss address ('127.0.0.1:8080'); -1 for a wildcard ('0.0.0.0:*')."""
    port = addr.rsplit(":", 1)[-1]
    return int(port) if port.isdigit() else -1


class DrainSub(ht.AsyncSubscriber):
    """A non-blocking subscriber (for ht.Swarm) that, unlike AsyncSubscriber, keeps reading
    after the chunked terminator until the hub's FIN, so that bytes after the terminator and a
    reset instead of a clean end-of-stream are seen, and that refuses a stream that is not
    chunked. It keeps the update ids (and a count of data that did not match the id) rather
    than every event, to stay small at 1000 streams. The reading and decoding are
    AsyncSubscriber's; this class only fills in its hooks.

    .end: 'eof' (recv returned b''), 'reset', or what else ended the stream (= .error)
    .ids: ids of the non-close events; .closes: the close events; .after_close: events after it
    .terminated: the last chunk arrived; .trailing: bytes after it; .close_at: when (monotonic)
    """

    def __init__(self, port, path, token=None, rcvbuf=None):
        super().__init__(port, path, token=token, rcvbuf=rcvbuf, on_event=DrainSub._record)
        self.ids = []
        self.bad_data = 0
        self.closes = []
        self.after_close = 0
        self.close_at = None

    @property
    def end(self):
        return self.error

    @property
    def terminated(self):
        return self.decoder is not None and self.decoder.done

    @property
    def trailing(self):
        # Once done, the decoder keeps every byte fed to it in .pending, decoding none.
        return bytes(self.decoder.pending) if self.terminated else b""

    def _record(self, ev):
        """on_event: called by AsyncSubscriber for each event, in order."""
        if self.closes:
            self.after_close += 1
        if ev.type == "close":
            self.closes.append(ev)
            if self.close_at is None:
                self.close_at = time.monotonic()
            return
        self.ids.append(ev.id)
        if ev.id is None or ev.data != "u" + ev.id[1:]:
            self.bad_data += 1

    def on_head(self):
        if self.decoder is None:
            self.fail("stream not chunked")

    def on_last_chunk(self):
        pass  # keep reading: what follows the terminator lands in .trailing, then the FIN

    def on_end(self, error):
        if error is None:
            self.fail("eof")
        elif isinstance(error, ConnectionResetError):
            self.fail("reset")
        else:
            self.fail(f"recv: {error}")


def judge_streams(subs, expected, maybe, spread_ms, not_before=None, label="subscribers"):
    """Asserts the drain's promises for every DrainSub (one check per property, listing the
    first offenders). expected: the ids answered 200, in order; maybe: an id whose publish got
    no answer (it may or may not have been accepted, and then it comes last). Returns the retry
    values seen."""
    bad = {}
    retries = []

    def per(ok, prop, i, detail):
        bad.setdefault(prop, [])
        if not ok:
            bad[prop].append(f"#{i}: {detail}")

    for i, s in enumerate(subs):
        ids = s.ids
        if maybe is not None and ids[-1:] == [maybe] and ids[:-1] == expected:
            ids = ids[:-1]
        first = next((k for k, (a, b) in enumerate(zip(ids, expected)) if a != b),
                     min(len(ids), len(expected)))
        per(ids == expected, f"every update answered 200 ({len(expected)}) arrived once, in order",
            i, f"{len(s.ids)} ids, duplicates {len(s.ids) - len(set(s.ids))}, first difference at "
            f"{first}: got {s.ids[first:first + 2]} want {expected[first:first + 2]}")
        per(s.bad_data == 0, "every update's data matched its id", i, f"{s.bad_data} mismatches")
        per(len(s.closes) == 1 and s.after_close == 0,
            "exactly one close event, and it is the last event", i,
            f"{len(s.closes)} close events, {s.after_close} events after the first")
        ev = s.closes[0] if s.closes else None
        retry = ev.retry if ev else None
        ok = (ev is not None and ev.data == "server_shutdown" and ev.raw.startswith(b"retry: ")
              and retry is not None and retry.isdigit() and 0 < int(retry) <= spread_ms)
        per(ok, f"the close frame is retry: (1-{spread_ms} ms), event: close, data: "
            "server_shutdown", i, f"{ev!r} raw {ev.raw if ev else b''!r}")
        if retry and retry.isdigit():
            retries.append(int(retry))
        if not_before is not None:
            per(s.close_at is not None and s.close_at >= not_before,
                "the close frame came after the drain delay", i,
                f"at {s.close_at} < {not_before}")
        per(s.terminated, "the chunked terminator 0\\r\\n\\r\\n followed the close frame", i,
            f"end {s.end}, state {s.decoder.state if s.decoder else None}")
        per(s.terminated and not s.trailing and not s.parser.buf.strip(b"\n"),
            "no partial frame: no half event, no byte after the terminator", i,
            f"parser tail {bytes(s.parser.buf[:80])!r}, after terminator {s.trailing[:80]!r}")
        per(s.end == "eof", "then a clean end-of-stream (recv b''), not a reset", i,
            f"ended by {s.end!r}")
    for prop, which in bad.items():
        t.check(not which, f"all {len(subs)} {label}: {prop}",
                f"{len(which)} failed; " + "; ".join(which[:4]))
    return retries


def check_retry_jitter(retries, spread_ms, n):
    distinct = len(set(retries))
    spreadness = (max(retries) - min(retries)) if retries else 0
    print(f"info retry ms over {len(retries)} streams: min {min(retries, default=-1)} max "
          f"{max(retries, default=-1)}, {distinct} distinct", flush=True)
    # n uniform draws over spread_ms values: far more than n/4 distinct, range over half.
    t.check(distinct >= max(2, n // 4) and spreadness >= spread_ms // 2,
            f"retry values are jittered over --reconnect-spread ({distinct} distinct of {n}, "
            f"range {spreadness} ms of {spread_ms})", f"values {sorted(set(retries))[:20]}")


def raw_publish_bytes(port, token, fields):
    """The bytes of one form-encoded publish request."""
    body = ht.form(fields)
    return (f"POST {ht.HUB_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def big_update_count():
    """Enough BIG updates that they cannot all sit in kernel buffers: more than the largest
    send buffer TCP autotuning may give the hub's socket (tcp_wmem max), plus 2 MiB."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    return min(300, (wmem_max + (2 << 20)) // BIG + 1)


def fill_stuck(hub, token, reader=None):
    """Publishes big_update_count() large updates on one keep-alive connection; a reader
    (SSEStream) given is read up to each update, so only the stuck subscriber falls behind.
    Returns the ids answered 200."""
    n = big_update_count()
    pub = ht.Publisher(hub.port, token)
    ids = []
    try:
        for i in range(n):
            resp = pub.publish(TOPIC, data="x" * BIG, id=f"big{i}")
            if resp.status != 200:
                raise AssertionError(f"large update {i}: {resp.status} {resp.text!r}")
            ids.append(resp.text)
            if reader is not None and not reader.wait_id(resp.text, 20):
                raise AssertionError(f"the reading subscriber did not receive large update {i}")
    finally:
        pub.close()
    return ids


def send_queue_info(hub, client_sock):
    """The kernel's Send-Q of the hub's side of a client connection (bytes), for the report."""
    lport = client_sock.getsockname()[1]
    for state, local, peer in port_sockets(hub.port):
        if local_port(local) == hub.port and local_port(peer) == lport and shutil.which("ss"):
            r = subprocess.run(["ss", "-Htn", f"( sport = :{hub.port} and dport = :{lport} )"],
                               capture_output=True, text=True, timeout=10)
            f = r.stdout.split()
            return f"{state}, Send-Q {f[2] if len(f) > 2 else '?'} bytes"
    return "unknown"


def wait_subscribers(hub, n, timeout=20):
    got = ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == n,
                        timeout * ht.SLOW, interval=0.1)
    return t.check(got, f"the hub counts {n} subscribers",
                   f"sluice_subscribers {ht.metric(hub.metrics(), 'sluice_subscribers')}")


# ---------------------------------------------------------------------------------------------
# 1. 1000 subscribers, SIGTERM in the middle of a publish stream


def test_fanout_drain():
    spread_ms = int(SPREAD * 1000)
    hub = ht.start_hub(anonymous=True, workers=2, reconnect_spread=SPREAD, drain_delay=0,
                       heartbeat=0)
    sub_token = ht.mint_token(publish=(), subscribe=(TOPIC,))
    pub_token = ht.mint_token(publish=(TOPIC,), subscribe=())
    swarm = ht.Swarm()
    tmp = tempfile.mkdtemp(prefix="sluice-drain-curl-")
    curls = []
    try:
        t0 = time.monotonic()
        for i in range(SUBSCRIBERS):
            # Every fourth one with a subscriber token, the rest anonymous: both paths drain.
            swarm.add(DrainSub(hub.port, sub_path(), token=sub_token if i % 4 == 0 else None))
            if i % 100 == 99:  # let the hub accept as we go rather than overflow its backlog
                swarm.run(lambda: False, 0.02)
        opened = swarm.run(lambda: all(s.opened or s.state == "closed" for s in swarm.subs), 60)
        closed = [s for s in swarm.subs if s.state == "closed"]
        if not t.check(opened and not closed,
                       f"{SUBSCRIBERS} subscribers connected and opened ({time.monotonic() - t0:.1f}s)",
                       f"{len(closed)} ended, e.g. {closed[0].end if closed else ''}"):
            return
        url = f"{hub.url}{sub_path()}"
        for i in range(CURLS):
            out = open(os.path.join(tmp, f"curl-{i}.out"), "wb")
            curls.append((subprocess.Popen(
                ["curl", "-sN", "--max-time", str(int(120 * ht.SLOW)),
                 "-H", "Accept: text/event-stream", url],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), out))
        if not wait_subscribers(hub, SUBSCRIBERS + CURLS):
            return

        # The publisher: one keep-alive connection, explicit ids; SIGTERM after SIGNAL_AFTER
        # answers, sent from this thread so that the signal lands between two publishes.
        results = []      # (index, outcome, detail, after_signal)
        state = {"t_signal": None, "unknown": None, "fresh": None}

        def publisher():
            conn = ht.HTTPConn(hub.port)
            try:
                for i in range(UPDATES):
                    req = raw_publish_bytes(hub.port, pub_token,
                                            ht.publish_fields(TOPIC, data=f"u{i}", id=f"d{i}"))
                    after = state["t_signal"] is not None
                    try:
                        conn.send(req)
                        resp = conn.read_response("POST")
                    except (ht.ConnectionClosed, OSError) as e:
                        results.append((i, "closed", repr(e), after))
                        state["unknown"] = f"d{i}"
                        break
                    results.append((i, resp.status, resp, after))
                    if resp.status != 200:
                        break
                    if i + 1 == SIGNAL_AFTER:
                        state["t_signal"] = time.monotonic()
                        hub.proc.send_signal(signal.SIGTERM)
            finally:
                conn.close()
            if state["t_signal"] is None:
                return
            # One more publish on a fresh connection: refused, 503 or closed; a 200 would have
            # to be delivered like any other.
            i = len(results)
            try:
                resp = ht.request(hub.port, "POST", ht.HUB_PATH, {
                    "Authorization": f"Bearer {pub_token}",
                    "Content-Type": "application/x-www-form-urlencoded"},
                    ht.form(ht.publish_fields(TOPIC, data=f"u{i}", id=f"d{i}")))
                state["fresh"] = (i, resp.status, resp)
            except ConnectionRefusedError:
                state["fresh"] = (i, "refused", None)
            except (ht.ConnectionClosed, OSError) as e:
                state["fresh"] = (i, "closed", repr(e))

        th = threading.Thread(target=publisher)
        th.start()
        ended = swarm.run(lambda: not th.is_alive() and all(s.state == "closed"
                                                            for s in swarm.subs), 90)
        th.join(10)
        t_signal = state["t_signal"]
        if not t.check(t_signal is not None, f"SIGTERM sent after {SIGNAL_AFTER} publishes "
                       "answered 200", f"results {results[-3:]}"):
            return
        t.check(ended, "every subscriber's stream ended after SIGTERM "
                f"({time.monotonic() - t_signal:.1f}s)",
                f"{sum(1 for s in swarm.subs if s.state != 'closed')} still open")
        rc = ht.wait_exit(hub.proc, 30 * ht.SLOW)
        t_exit = time.monotonic() - t_signal
        curl_results = []
        for proc, out in curls:
            try:
                proc.wait(20 * ht.SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
            with open(out.name, "rb") as f:
                curl_results.append((proc.returncode, f.read()))

        # What the publisher saw.
        ok_before = [r for r in results if r[1] == 200 and not r[3]]
        ok_after = [r for r in results if r[1] == 200 and r[3]]
        refusals = [r for r in results if r[1] != 200]
        print(f"info publisher: {len(ok_before)} answered 200 before SIGTERM, {len(ok_after)} "
              f"after; then {[(r[0], r[1], r[2] if r[1] == 'closed' else r[2].headers) for r in refusals]}; "
              "fresh connection "
              f"{state['fresh'][:2] if state['fresh'] else None}", flush=True)
        t.check(len(ok_before) == SIGNAL_AFTER and all(r[3] for r in refusals),
                f"all {SIGNAL_AFTER} publishes before SIGTERM were answered 200",
                f"refused before the signal: {[r for r in refusals if not r[3]]}")
        answers = [r for r in refusals if isinstance(r[1], int)]
        if state["fresh"] and isinstance(state["fresh"][1], int):
            answers.append(state["fresh"])
        bad = [(r[0], r[1], r[2]) for r in answers
               if r[1] != 200 and not (r[1] == 503 and r[2].header("retry-after"))]
        t.check(not bad and (refusals or state["fresh"]),
                "publishes after the drain began got 503 with Retry-After or a connection "
                "close (never another error)", f"bad {bad}; refusals {refusals}")
        t.check(all((r[2].header("connection") or "").lower() == "close"
                    for r in answers if r[1] == 503),
                "a 503 during the drain carries Connection: close",
                [(r[0], r[2].headers) for r in answers if r[1] == 503])
        expected = [f"d{r[0]}" for r in results if r[1] == 200]
        if state["fresh"] and state["fresh"][1] == 200:
            expected.append(f"d{state['fresh'][0]}")
        for r in results:
            if r[1] == 200 and r[2].text != f"d{r[0]}":
                t.check(False, "the hub answered each publish with its id", f"{r[0]}: {r[2].text}")
                break
        retries = judge_streams(swarm.subs, expected, state["unknown"], spread_ms)
        check_retry_jitter(retries, spread_ms, SUBSCRIBERS)

        # curl: exit 0, and its output ends with the close event.
        want_tail = b"event: close\ndata: server_shutdown\n\n"
        bad = []
        for i, (code, out) in enumerate(curl_results):
            events = ht.SSEParser().feed(out)
            got = [e.id for e in events if e.type != "close"]
            if state["unknown"] and got[-1:] == [state["unknown"]]:
                got = got[:-1]
            if code != 0 or not out.endswith(want_tail) or got != expected:
                bad.append(f"curl {i}: exit {code}, {len(got)} ids, tail {out[-80:]!r}")
        t.check(not bad, f"{CURLS} curl -sN subscribers exit 0, got every update, and their "
                "output ends with the close event", "; ".join(bad))

        # The process and its summary.
        summary = ht.drain_summary(hub)
        t.check(rc == 0 and not ht.sanitizer_reports(hub),
                f"the hub exits 0 after the drain ({t_exit:.2f}s after SIGTERM)",
                f"exit code {rc}; log tail:\n{hub.log_tail()}")
        t.check(summary is not None and summary["forced"] == 0,
                "the summary log line reports 0 connections forced", f"summary {summary}")
        t.check(summary is not None and summary["drained"] == SUBSCRIBERS + CURLS,
                f"the summary log line reports {SUBSCRIBERS + CURLS} streams drained",
                f"summary {summary}")
        print(f"info summary: {summary}", flush=True)

        # Connections on the hub's port, once every client socket is closed: none left but
        # TIME-WAIT (on the hub's side, which sent the first FIN).
        swarm.close()
        swarm = None
        time.sleep(0.2)
        first = port_sockets(hub.port)
        live = ht.wait_until(lambda: [x for x in port_sockets(hub.port) if x[0] != "TIME-WAIT"]
                             == [], 3 * ht.SLOW, interval=0.1)
        final = port_sockets(hub.port)
        tw_server = sum(1 for st, lo, _ in final if st == "TIME-WAIT" and local_port(lo) == hub.port)
        tw_client = sum(1 for st, lo, _ in final if st == "TIME-WAIT" and local_port(lo) != hub.port)
        others = [x for x in final if x[0] != "TIME-WAIT"]
        print(f"info sockets on port {hub.port} after the exit: {len(first)} at first "
              f"({sorted(set(x[0] for x in first))}), then TIME-WAIT on the hub's side "
              f"{tw_server}, on the clients' side {tw_client}, other {len(others)}", flush=True)
        t.check(live and not others, f"no connection left on port {hub.port} after the exit "
                "(ss: no ESTAB, CLOSE-WAIT, FIN-WAIT, LAST-ACK)", f"{others[:10]}")
    finally:
        if swarm is not None:
            swarm.close()
        for proc, out in curls:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
        shutil.rmtree(tmp, ignore_errors=True)
        ht.finish_hub(hub)


# ---------------------------------------------------------------------------------------------
# 2. --drain-delay keeps serving while readiness is down


def check_stream_end(stream, name, want_ids, not_before=None, spread_ms=int(SPREAD * 1000)):
    """The drain's promises for one blocking SSEStream."""
    t_close = None
    if stream.wait(lambda s: any(e.type == "close" for e in s.events), 30):
        t_close = time.monotonic()
    how, trailing = ht.read_past_terminator(stream, 20, 20 * ht.SLOW)
    evs = stream.events
    closes = [i for i, e in enumerate(evs) if e.type == "close"]
    got = [e.id for e in evs if e.type != "close"]
    t.eq(got, want_ids, f"{name}: every accepted update arrived once, in order")
    last = evs[-1] if evs else None
    ok = (len(closes) == 1 and closes[0] == len(evs) - 1 and last.data == "server_shutdown"
          and last.raw.startswith(b"retry: ") and (last.retry or "").isdigit()
          and 0 < int(last.retry) <= spread_ms)
    t.check(ok, f"{name}: one close frame (retry within the spread, server_shutdown), last",
            f"events {evs[-3:]}")
    if not_before is not None:
        t.check(t_close is not None and t_close >= not_before,
                f"{name}: the close frame came after the drain delay",
                f"close seen {None if t_close is None else round(t_close - not_before, 3)} s "
                "relative to the delay's end")
    whole, detail = ht.stream_end_state(stream, trailing)
    t.check(whole, f"{name}: chunked terminator, no partial frame, nothing after it", detail)
    t.eq(how, "eof", f"{name}: clean end-of-stream after the terminator")


def test_drain_delay():
    delay = 2.0 * ht.SLOW
    hub = ht.start_hub(anonymous=True, workers=2, reconnect_spread=SPREAD, drain_delay=delay,
                       heartbeat=0)
    token = ht.mint_token()
    old = new = None
    try:
        t.eq(ht.request(hub.port, "GET", "/readyz").status, 200, "/readyz is 200 before SIGTERM")
        old = ht.SSEStream(hub.port, sub_path())
        t.check(old.status == 200 and old.wait_open(), "a subscriber is open before SIGTERM")
        first = ht.publish(hub.port, token, TOPIC, data="u0", id="d0")
        t.check(first.status == 200 and old.wait_id("d0"), "it receives an update before SIGTERM")

        hub.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        seen = []

        def readyz_down():
            try:
                seen.append(ht.request(hub.port, "GET", "/readyz", timeout=2).status)
            except OSError as e:
                seen.append(repr(e))
            return seen[-1] == 503
        down = ht.wait_until(readyz_down, 0.5 * ht.SLOW, interval=0.01)
        t_down = time.monotonic() - t0
        t.check(down, f"/readyz is 503 right after SIGTERM ({t_down * 1000:.0f} ms)",
                f"answers {seen[-3:]}")
        health = ht.request(hub.port, "GET", "/healthz").status
        t.check(health == 200 and time.monotonic() - t0 < delay,
                "/healthz stays 200 during the drain delay", f"status {health}")
        new = ht.SSEStream(hub.port, sub_path())
        t.check(new.status == 200 and new.wait_open(5) and time.monotonic() - t0 < delay,
                "a new connection (a subscription) is accepted during the drain delay",
                f"status {new.status}, at {time.monotonic() - t0:.2f}s")
        during = ht.publish(hub.port, token, TOPIC, data="u1", id="d1")
        t_pub = time.monotonic() - t0
        t.check(during.status == 200 and t_pub < delay,
                f"a publish during the drain delay is answered 200 ({t_pub:.2f}s after SIGTERM)",
                f"{during!r}")
        t.check(old.wait_id("d1", 5) is not None and time.monotonic() - t0 < delay,
                "the existing subscriber receives it during the delay")
        t.check(new.wait_id("d1", 5) is not None, "the new subscriber receives it too")
        t.check(hub.alive() and not ht.refused(hub.port) and time.monotonic() - t0 < delay,
                "the listeners are still open during the delay")
        check_stream_end(old, "existing subscriber", ["d0", "d1"], not_before=t0 + delay - 0.05)
        check_stream_end(new, "subscriber accepted during the delay", ["d1"])
        rc = ht.wait_exit(hub.proc, 30 * ht.SLOW)
        summary = ht.drain_summary(hub)
        t.check(rc == 0 and summary is not None and summary["forced"] == 0
                and not ht.sanitizer_reports(hub),
                f"the hub exits 0 with 0 forced ({time.monotonic() - t0:.2f}s after SIGTERM)",
                f"exit {rc}, summary {summary}; log tail:\n{hub.log_tail()}")
    finally:
        for s in (old, new):
            if s is not None:
                s.close()
        ht.finish_hub(hub)


# ---------------------------------------------------------------------------------------------
# 3. A subscriber that never reads is forced at --shutdown-timeout


def test_shutdown_timeout():
    timeout = 2.0
    hub = ht.start_hub(anonymous=True, workers=2, reconnect_spread=SPREAD, heartbeat=0,
                       shutdown_timeout=timeout, max_queue="64M", write_timeout=600)
    token = ht.mint_token()
    stuck = good = None
    try:
        stuck = ht.stuck_subscriber(hub.port, sub_path())
        good = ht.SSEStream(hub.port, sub_path(), timeout=20)
        t.check(good.status == 200 and good.wait_open(), "the reading subscriber is open")
        if not wait_subscribers(hub, 2):
            return
        ids = fill_stuck(hub, token, reader=good)
        samples = hub.metrics()
        t.eq(ht.metric(samples, "sluice_slow_consumer_disconnects_total"), 0.0,
             f"{len(ids)} updates of {BIG // 1024} KiB published; the stuck subscriber was not "
             "cut as a slow consumer")
        print(f"info hub's side of the stuck connection: {send_queue_info(hub, stuck)}", flush=True)

        hub.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        exited = {}

        def waiter():
            exited["rc"] = ht.wait_exit(hub.proc, 30 * ht.SLOW)
            exited["at"] = time.monotonic() - t0
        th = threading.Thread(target=waiter)
        th.start()
        check_stream_end(good, "reading subscriber", ids)
        th.join(40 * ht.SLOW)
        rc, took = exited.get("rc"), exited.get("at", float("inf"))
        bound = timeout + 1.0 * ht.SLOW
        t.check(rc is not None and took <= bound,
                f"the hub exits {took:.2f}s after SIGTERM, within --shutdown-timeout {timeout:.0f} "
                f"+ {bound - timeout:.0f} s", f"exit {rc}")
        t.check(rc is not None and rc > 0, "the exit code is non-zero (connections were forced)",
                f"exit {rc}")
        summary = ht.drain_summary(hub)
        t.check(summary is not None and summary["forced"] == 1 and summary["drained"] == 1,
                "the summary log line reports 1 connection forced and 1 stream drained",
                f"summary {summary}; log tail:\n{hub.log_tail()}")
        t.check(not ht.sanitizer_reports(hub), "the sanitizers found nothing", hub.log_tail())
    finally:
        if stuck is not None:
            stuck.close()
        if good is not None:
            good.close()
        ht.finish_hub(hub)


# ---------------------------------------------------------------------------------------------
# 4. A second signal stops the hub at once


def test_second_signal(second):
    name = signal.Signals(second).name
    hub = ht.start_hub(anonymous=True, workers=2, heartbeat=0, shutdown_timeout=30,
                       max_queue="64M", write_timeout=600)
    token = ht.mint_token()
    stuck = None
    try:
        stuck = ht.stuck_subscriber(hub.port, sub_path())
        if not wait_subscribers(hub, 1):
            return
        fill_stuck(hub, token)
        hub.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        t.check(hub.alive(), f"[{name}] the drain is still held open 0.5 s after SIGTERM",
                f"exit {hub.proc.returncode}; log tail:\n{hub.log_tail()}")
        hub.proc.send_signal(second)
        t1 = time.monotonic()
        rc = ht.wait_exit(hub.proc, 30 * ht.SLOW)
        took = time.monotonic() - t1
        t.check(rc is not None and took <= 1.0 * ht.SLOW,
                f"[{name}] the hub exits {took:.2f}s after the second signal (at most "
                f"{1.0 * ht.SLOW:.0f} s)", f"exit {rc}")
        t.check(rc is not None and rc > 0, f"[{name}] the exit code is non-zero", f"exit {rc}")
        log = hub.log_text()
        summary = ht.drain_summary(hub)
        t.check("again: stopping at once" in log and summary is not None
                and summary["forced"] == 1,
                f"[{name}] the log says it stopped at once and counts 1 forced",
                f"summary {summary}; log tail:\n{hub.log_tail()}")
        t.check(not ht.sanitizer_reports(hub), f"[{name}] the sanitizers found nothing",
                hub.log_tail())
    finally:
        if stuck is not None:
            stuck.close()
        ht.finish_hub(hub)


# ---------------------------------------------------------------------------------------------
# 5. A publish completed during the drain: 503 + Retry-After + Connection: close


def test_publish_during_drain():
    hub = ht.start_hub(anonymous=True, workers=2, heartbeat=0, drain_delay=0,
                       shutdown_timeout=4 * ht.SLOW, max_queue="64M", write_timeout=600)
    token = ht.mint_token()
    stuck = keep = idle = None
    try:
        stuck = ht.stuck_subscriber(hub.port, sub_path())
        if not wait_subscribers(hub, 1):
            return
        fill_stuck(hub, token)
        keep = ht.HTTPConn(hub.port)
        idle = ht.HTTPConn(hub.port)
        for conn, name in ((keep, "publisher"), (idle, "idle")):
            conn.send(raw_publish_bytes(hub.port, token,
                                        ht.publish_fields(TOPIC, data="u", id=f"ka-{name}")))
            resp = conn.read_response("POST")
            t.check(resp.status == 200 and resp.header("connection") is None,
                    f"a keep-alive {name} connection publishes before SIGTERM (200, kept open)",
                    repr(resp))
        # The next publish's head and half its body, before the signal; the rest after it.
        req = raw_publish_bytes(hub.port, token, ht.publish_fields(TOPIC, data="late", id="late"))
        cut = len(req) - 3
        keep.send(req[:cut])
        time.sleep(0.1)
        hub.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        t.check(ht.wait_until(lambda: ht.refused(hub.port), 3 * ht.SLOW, interval=0.02),
                f"the listeners close (drain begun, {time.monotonic() - t0:.2f}s after SIGTERM)")
        t.check(hub.alive(), "the drain is still open (held by the stuck subscriber)")
        keep.send(req[cut:])
        try:
            resp = keep.read_response("POST")
        except (ht.ConnectionClosed, OSError) as e:
            resp = e
        ok = (isinstance(resp, ht.Response) and resp.status == 503
              and resp.header("retry-after") is not None
              and (resp.header("connection") or "").lower() == "close")
        t.check(ok, "a publish completed after SIGTERM on a keep-alive connection is 503 with "
                "Retry-After and Connection: close", repr(resp))
        end, rest = ht.read_until_end(keep.sock, 5 * ht.SLOW)
        t.check(end == "eof" and not rest and not keep.buf,
                "then the hub closes that connection (EOF, nothing more)",
                f"{end}, bytes {bytes(keep.buf) + rest!r}")
        keep.close()
        end, rest = ht.read_until_end(idle.sock, 5 * ht.SLOW)
        t.check(end == "eof" and not rest and not idle.buf,
                "an idle keep-alive connection is closed by the drain (EOF without a response, "
                "not a reset)", f"{end}, bytes {bytes(idle.buf) + rest!r}")
        idle.close()
        rc = ht.wait_exit(hub.proc, 30 * ht.SLOW)
        summary = ht.drain_summary(hub)
        print(f"info hub exit {rc}, summary {summary}", flush=True)
        t.check(rc is not None and rc > 0 and summary is not None and summary["forced"] == 1,
                "the stuck subscriber is forced at the timeout (exit non-zero, 1 forced)",
                f"exit {rc}, summary {summary}")
        t.check(not ht.sanitizer_reports(hub), "the sanitizers found nothing", hub.log_tail())
    finally:
        for c in (keep, idle):
            if c is not None:
                c.close()
        if stuck is not None:
            stuck.close()
        ht.finish_hub(hub)


def main():
    t0 = time.monotonic()
    t.section(f"{SUBSCRIBERS} subscribers + {CURLS} curl, SIGTERM during a publish stream",
              test_fanout_drain)
    t.section("--drain-delay: readiness down, service kept", test_drain_delay)
    t.section("--shutdown-timeout forces a subscriber that never reads", test_shutdown_timeout)
    t.section("a second SIGTERM stops at once", test_second_signal, signal.SIGTERM)
    t.section("a SIGINT after SIGTERM stops at once", test_second_signal, signal.SIGINT)
    t.section("a publish during the drain is refused", test_publish_during_drain)
    print(f"info total {time.monotonic() - t0:.1f}s", flush=True)
    t.finish()


if __name__ == "__main__":
    main()
