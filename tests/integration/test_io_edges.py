"""test_io_edges — edge cases of the hub's socket I/O, each pinned to a bug the daemon had:

1. Idle after a blocked write. A subscriber with a 4 KiB receive buffer reads nothing while 50 KB
   updates are published (--workers 1, --max-queue 16 MiB so it is not cut) until /metrics shows
   the hub itself holding updates it could not write (the kernel buffers are full: the worker
   had to wait for the socket to turn writable). The subscriber then reads everything, in order;
   the hub then sits idle for 2 s and its CPU time over that window (utime + stime from
   /proc/<pid>/stat) must stay under 0.3 s. A worker that left the socket registered for
   writability after its queue drained woke its level-triggered epoll every turn: ~2 s of CPU.
2. A stream whose client half-closes (shutdown(SHUT_WR)). (a) An idle subscriber: the hub ends
   the stream (EOF or reset) within a second, after whole frames only. (b) A subscriber blocked
   as in 1 (50,001-byte updates, so a write stops inside a frame): after its half-close it reads
   what it is sent; the stream must not end with a clean FIN after a truncated frame — whole
   frames then the end, or a reset. (Which of the two the hub chooses is reported; that the
   hub's last write stopped mid-frame is near certain but not observable from outside.)
3. `Upgrade: h2c` with `Connection: Upgrade, HTTP2-Settings` on GET /healthz: answered 200 as
   plain HTTP/1.1, then the connection ends within 1 s (not left open with a stopped parser); a
   second request pipelined in the same write is either answered or dropped by the end of the
   connection, which comes within 2 s. CONNECT likewise ends its connection.
4. Drain with a client stalled mid-request (--header-timeout 1 --shutdown-timeout 20): the
   client sends part of a request head, then SIGTERM. The request keeps its header deadline, so
   the client gets its 408 (or its connection ends) and the hub exits 0 within ~3 s with 0
   connections forced, not after 20 s.
5. Expect: 100-continue during a drain. A keep-alive publisher connection publishes once (200),
   then sends the first lines of its next request; SIGTERM; once the listeners are closed (the
   drain has begun, and the mid-request connection holds it open) the rest of the head arrives
   with `Expect: 100-continue`. The hub must not answer 100 Continue (the body could only get a
   503, and a 100 followed by the end of the connection leaves the client guessing); the body,
   sent 0.5 s later anyway, is answered 503 with Connection: close, then EOF.
   (Sending the whole head only after SIGTERM on an idle connection would not exercise this: the
   drain closes idle keep-alive connections at once.)
6. --write-timeout 1: a subscriber that reads nothing, well under --max-queue, so that only the
   stalled writes can end it: the hub closes it within seconds, says why in its log, and does not
   count it as a slow consumer.
7. Started with a soft open-files limit of 1024, the hub raises it to the hard limit
   (/proc/PID/limits).
8. With its limit lowered (prlimit) to 8 descriptors above what it uses, 20 clients connect: some
   are served, the hub logs that accept pauses and keeps serving them; as they close, accept
   resumes until every waiting client is served; sluice_accept_emfile_total counts the failures.
"""

import fcntl
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_io_edges")

FORM = "application/x-www-form-urlencoded"
BIG = 50_000                # bytes of data in one large update (section 1)
ODD = 50_001                # section 2: an odd size, so that frame ends rarely meet write ends
BATCH = 10                  # large updates published between two looks at /metrics
MAX_BIG = 240               # bound on large updates per section (12 MB; --max-queue is 16 MiB)
MAX_QUEUE = 16 * 1024 * 1024
IDLE_WINDOW = 2.0           # seconds of idle hub whose CPU time is measured
IDLE_CPU_LIMIT = 0.3        # seconds of CPU allowed in that window
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Helpers


def cpu_seconds(pid):
    """User + system CPU time of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # fields 14 and 15 of proc(5)


def unread_bytes(sock):
    """Bytes waiting in a socket's receive buffer (FIONREAD)."""
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def queued_in_hub(hub):
    """Updates accepted but not yet fully written to a subscriber, for a hub with exactly one
    subscriber: sluice_published_total - sluice_delivered_total."""
    m = hub.metrics()
    return (ht.metric(m, "sluice_published_total") or 0) - (ht.metric(m, "sluice_delivered_total") or 0)


def fill_until_blocked(hub, pub, topic, size, prefix):
    """Publishes large updates in batches until the hub holds at least two it could not write
    to the (only, not reading) subscriber — measured after a pause, so that the flush window and
    the worker's wakeup are not mistaken for a blocked socket. Returns (ids answered 200, updates
    left queued in the hub, error or None)."""
    ids = []
    queued = 0
    while len(ids) < MAX_BIG:
        for _ in range(BATCH):
            i = len(ids)
            resp = pub.publish(topic, data=payload(i, size), id=f"{prefix}{i}")
            if resp.status != 200:
                return ids, queued, f"update {i}: {resp.status} {resp.text!r}"
            ids.append(resp.text)
        time.sleep(0.15 * ht.SLOW)
        queued = queued_in_hub(hub)
        if queued >= 2:
            return ids, queued, None
    return ids, queued, f"still only {queued} queued after {len(ids)} updates"


def payload(i, size):
    head = f"{i:06d}:"
    return head + "x" * (size - len(head))


def wait_subscribers(hub, n):
    got = ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == n,
                        10 * ht.SLOW, interval=0.05)
    return t.check(got, f"the hub counts {n} subscriber(s)",
                   f"sluice_subscribers {ht.metric(hub.metrics(), 'sluice_subscribers')}")


def raw_subscriber(port, topic, rcvbuf=None):
    """A socket that sent a subscription request and has read nothing yet."""
    return ht.raw_subscriber(port, ht.sub_query([topic]), rcvbuf=rcvbuf, timeout=10 * ht.SLOW)


class StreamBytes:
    """What a subscriber received, decoded: the response head, the chunked body, the events.
    .whole: the bytes end on a frame boundary (no half chunk, no half event)."""

    def __init__(self, raw):
        self.status = None
        self.error = None
        self.events = []
        self.whole = False
        self.tail = b""
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            self.error = f"no complete response head: {raw[:80]!r}"
            return
        head = raw[:end].decode("latin-1")
        m = re.match(r"HTTP/1\.1 (\d{3})", head)
        self.status = int(m.group(1)) if m else None
        if "chunked" not in head.lower():
            self.error = f"stream not chunked: {head!r}"
            return
        dec, parser = ht.ChunkedDecoder(), ht.SSEParser()
        try:
            self.events = parser.feed(dec.feed(raw[end + 4:]))
        except ValueError as e:
            self.error = f"chunked framing: {e}"
            return
        self.whole = (dec.done or (dec.state == "size" and not dec.pending)) \
            and not parser.buf.strip(b"\n")
        self.tail = bytes(dec.pending[:60]) + b" | " + bytes(parser.buf[-60:])


# ---------------------------------------------------------------------------------------------
# 1. A blocked write, then idle: no busy loop


def test_idle_after_blocked_write():
    topic = "urn:io:blocked"
    hub = ht.start_hub(anonymous=True, workers=1, max_queue=MAX_QUEUE, heartbeat=0)
    pub = ht.Publisher(hub.port)
    sub = None
    try:
        sub = ht.SSEStream(hub.port, ht.sub_query([topic]), rcvbuf=4096)
        t.eq(sub.status, 200, "the small-buffer subscriber's stream opens")
        if not wait_subscribers(hub, 1):
            return
        t0 = time.monotonic()
        ids, queued, err = fill_until_blocked(hub, pub, topic, BIG, "blk-")
        pending = unread_bytes(sub.conn.sock)
        print(f"info {len(ids)} updates of {BIG} bytes published in "
              f"{time.monotonic() - t0:.2f}s; {queued} still queued in the hub, {pending} bytes "
              "unread in the subscriber's socket", flush=True)
        t.check(err is None, f"all {len(ids)} publishes answered 200 while the subscriber read "
                "nothing", err)
        t.check(queued >= 2 and pending > 0,
                "the hub had to wait: the subscriber's socket holds unread data and the hub "
                "still holds updates it could not write", f"{queued} queued, {pending} unread")

        got = sub.wait(lambda s: len(s.events) >= len(ids), 60)
        t.check(got and sub.ids() == ids,
                f"the subscriber then reads all {len(ids)} updates, once, in order",
                f"{len(sub.events)} events, first ids {sub.ids()[:3]}, eof {sub.eof}")
        bad = [e.id for i, e in enumerate(sub.events) if e.data != payload(i, BIG)]
        t.check(not bad, "every update's data is intact", f"{len(bad)} differ: {bad[:3]}")
        t.eq(ht.metric(hub.metrics(), "sluice_slow_consumer_disconnects_total"), 0.0,
             "the subscriber was not cut as a slow consumer")

        time.sleep(0.3)   # the last writes and the /metrics request above are done
        c0, w0 = cpu_seconds(hub.pid), time.monotonic()
        time.sleep(IDLE_WINDOW)
        used, wall = cpu_seconds(hub.pid) - c0, time.monotonic() - w0
        print(f"info hub CPU over {wall:.2f}s idle: {used:.2f}s", flush=True)
        t.check(used < IDLE_CPU_LIMIT,
                f"the idle hub uses {used:.2f}s of CPU in {wall:.1f}s (< {IDLE_CPU_LIMIT}s: no "
                "busy loop on a socket left registered for writability)")
        t.check(sub.pump(0.05) and not sub.events[len(ids):],
                "the subscriber's stream is still open and quiet", f"eof {sub.eof}")
    finally:
        pub.close()
        if sub is not None:
            sub.close()
        t.stop_hub(hub)


# ---------------------------------------------------------------------------------------------
# 2. Half-closed streams


def test_half_close():
    topic = "urn:io:half"
    hub = ht.start_hub(anonymous=True, workers=1, max_queue=MAX_QUEUE, heartbeat=0)
    pub = ht.Publisher(hub.port)
    socks = []
    try:
        # (a) An idle subscriber that has read all it was sent.
        s = raw_subscriber(hub.port, topic)
        socks.append(s)
        if not wait_subscribers(hub, 1):
            return
        ids = [pub.must(topic, data=f"small {i}", id=f"half-{i}") for i in range(3)]
        raw = bytearray()
        deadline = time.monotonic() + 10 * ht.SLOW
        while len(StreamBytes(bytes(raw)).events) < len(ids) and time.monotonic() < deadline:
            s.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            raw += chunk
        s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        how, rest = ht.read_until_end(s, 5 * ht.SLOW)
        took = time.monotonic() - t0
        got = StreamBytes(bytes(raw) + rest)
        t.check(how in ("eof", "reset") and took <= 1.0 * ht.SLOW,
                f"an idle subscriber half-closes: the hub ends its stream ({how}, "
                f"{took:.2f}s after the FIN)")
        t.check(got.error is None and got.whole and [e.id for e in got.events] == ids,
                "what it received is whole frames: its three updates, no partial chunk",
                f"{got.error}; ids {[e.id for e in got.events]}; tail {got.tail!r}")
        s.close()
        socks.remove(s)
        if not wait_subscribers(hub, 0):
            return

        # (b) A subscriber whose stream is blocked in the middle of a frame.
        s = raw_subscriber(hub.port, topic, rcvbuf=4096)
        socks.append(s)
        if not wait_subscribers(hub, 1):
            return
        ids, queued, err = fill_until_blocked(hub, pub, topic, ODD, "odd-")
        t.check(err is None and queued >= 2,
                f"the blocked subscriber: {len(ids)} publishes answered 200, {queued} left "
                "queued in the hub", err)
        s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        how, raw = ht.read_until_end(s, 10 * ht.SLOW)
        took = time.monotonic() - t0
        got = StreamBytes(raw)
        print(f"info blocked subscriber after its half-close: {len(raw)} bytes, "
              f"{len(got.events)} whole events, ended by {how} after {took:.2f}s, "
              f"{'whole frames' if got.whole else 'truncated frame'}", flush=True)
        t.check(how in ("eof", "reset"), f"the blocked stream ends after the half-close ({how})")
        t.check(not (how == "eof" and not got.whole),
                "no clean FIN after a truncated frame: whole frames then the end, or a reset",
                f"ended by {how}; {got.error}; tail {got.tail!r}")
        got_ids = [e.id for e in got.events]
        bad = [e.id for i, e in enumerate(got.events) if e.data != payload(i, ODD)]
        t.check(got.status == 200 and got_ids == ids[:len(got_ids)] and not bad,
                f"the {len(got_ids)} whole events received are the first updates, in order, "
                "with intact data", f"status {got.status}, ids {got_ids[:3]}, bad {bad[:3]}")
    finally:
        pub.close()
        for s in socks:
            s.close()
        t.stop_hub(hub)


# ---------------------------------------------------------------------------------------------
# 3. Upgrade and CONNECT: answered as HTTP/1.1, then the connection ends


UPGRADE = ("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")


def responses_in(conn):
    """Every complete response left in a connection's buffer (the connection has ended)."""
    out = []
    while conn.buf:
        try:
            out.append(conn.read_response(timeout=0.5))
        except (ht.ConnectionClosed, ValueError, OSError) as e:
            out.append(f"unparsed bytes ({e}): {bytes(conn.buf[:80])!r}")
            break
    return out


def test_upgrade():
    hub = ht.start_hub(anonymous=True)
    host = f"127.0.0.1:{hub.port}"
    try:
        conn = ht.HTTPConn(hub.port)
        conn.send(UPGRADE.format(host=host).encode())
        try:
            resp = conn.read_response()
        except (ht.ConnectionClosed, OSError) as e:
            resp = e
        t.check(isinstance(resp, ht.Response) and resp.status == 200 and resp.text == "ok\n",
                "GET /healthz with Upgrade: h2c is answered 200 as plain HTTP/1.1", repr(resp))
        t0 = time.monotonic()
        closed = conn.wait_closed(1.0 * ht.SLOW)
        t.check(closed and not conn.buf,
                f"then the connection ends ({'after %.2fs' % (time.monotonic() - t0) if closed else 'not within 1s'}), "
                "nothing more sent", bytes(conn.buf[:80]))
        conn.close()

        conn = ht.HTTPConn(hub.port)
        conn.send(UPGRADE.format(host=host).encode()
                  + f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        t0 = time.monotonic()
        closed = conn.wait_closed(2.0 * ht.SLOW)
        took = time.monotonic() - t0
        got = responses_in(conn)
        print(f"info upgrade + pipelined request: {got}", flush=True)
        t.check(closed, f"upgrade with a request pipelined behind it: the connection ends "
                f"({'%.2fs' % took if closed else 'still open after 2s'})")
        ok = (got and isinstance(got[0], ht.Response) and got[0].status == 200 and len(got) <= 2
              and all(isinstance(r, ht.Response) and r.status == 200 for r in got))
        t.check(ok, "the upgrade request is answered 200; the pipelined one is answered 200 or "
                "not at all, nothing else", got)
        conn.close()

        conn = ht.HTTPConn(hub.port)
        conn.send(f"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n".encode())
        t0 = time.monotonic()
        closed = conn.wait_closed(2.0 * ht.SLOW)
        got = responses_in(conn)
        t.check(closed and len(got) <= 1 and all(isinstance(r, ht.Response) for r in got),
                "CONNECT: at most one answer, then the connection ends "
                f"({'%.2fs' % (time.monotonic() - t0) if closed else 'still open after 2s'})", got)
        conn.close()
        t.eq(ht.request(hub.port, "GET", "/healthz").status, 200, "the hub still serves")
    finally:
        t.stop_hub(hub)


# ---------------------------------------------------------------------------------------------
# 4. Drain with a client stalled in the middle of its request head


def test_drain_stalled_request():
    header_timeout, shutdown_timeout = 1, 20
    hub = ht.start_hub(anonymous=True, header_timeout=header_timeout,
                       shutdown_timeout=shutdown_timeout, drain_delay=0)
    # The header deadline plus slack (sweeps every 250 ms, the client's FIN), never near 20 s.
    limit = min((header_timeout + 2) * ht.SLOW, shutdown_timeout / 2)
    conn = ht.HTTPConn(hub.port)
    try:
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)
        hub.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        closed = conn.wait_closed(limit)
        ended = time.monotonic() - t0
        head = bytes(conn.buf)
        if closed:
            conn.close()   # a client closes once the hub has ended its connection, not before
        rc = ht.wait_exit(hub.proc, t0 + limit - time.monotonic())
        took = time.monotonic() - t0
        summary = ht.drain_summary(hub) if rc is not None else None
        print(f"info stalled client: {'ended after %.2fs' % ended if closed else 'still open'}, "
              f"got {head[:40]!r}; hub exit {rc} after {took:.2f}s, summary {summary}", flush=True)
        t.check(closed and (head == b"" or head.startswith(b"HTTP/1.1 408 ")),
                f"the stalled client gets its 408 (or its connection ends) during the drain",
                f"closed {closed}, bytes {head[:80]!r}")
        t.check(rc is not None,
                f"the hub exits within {limit:.0f}s of SIGTERM (--header-timeout {header_timeout}), "
                f"not after --shutdown-timeout {shutdown_timeout}",
                f"still running {took:.1f}s after SIGTERM")
        if rc is None:
            rc = ht.wait_exit(hub.proc, shutdown_timeout + 10 * ht.SLOW)
            summary = ht.drain_summary(hub)
            print(f"info the hub exited {rc} on its own; summary {summary}", flush=True)
        t.check(rc == 0 and summary is not None and summary["forced"] == 0,
                "exit code 0 and the drain summary counts 0 connections forced",
                f"exit {rc}, summary {summary}")
        t.check(not ht.sanitizer_reports(hub), "the sanitizers found nothing", hub.log_tail())
    finally:
        conn.close()
        ht.finish_hub(hub)


# ---------------------------------------------------------------------------------------------
# 5. Expect: 100-continue on a request whose head arrives during the drain


def test_expect_during_drain():
    topic = "urn:io:expect"
    hub = ht.start_hub(workers=1, drain_delay=0, shutdown_timeout=10, header_timeout=10)
    token = ht.mint_token()
    host = f"127.0.0.1:{hub.port}"
    conn = ht.HTTPConn(hub.port)
    try:
        resp = conn.request("POST", ht.HUB_PATH,
                            {"Content-Type": FORM, "Authorization": f"Bearer {token}"},
                            ht.form(ht.publish_fields(topic, data="before", id="exp-0")))
        t.check(resp.status == 200 and resp.header("connection") is None,
                "a keep-alive publisher publishes before SIGTERM (200, kept open)", repr(resp))
        # The next request's first lines before the signal: the connection is mid-request, so
        # the drain keeps it open to answer it; the rest of the head comes after the signal.
        conn.send(f"POST {ht.HUB_PATH} HTTP/1.1\r\nHost: {host}\r\n".encode())
        time.sleep(0.2)
        hub.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        t.check(ht.wait_until(lambda: ht.refused(hub.port), 5 * ht.SLOW, interval=0.02),
                f"the drain begins: listeners closed {time.monotonic() - t0:.2f}s after SIGTERM")
        still_open = hub.alive() and not conn.wait_closed(0.1)
        if not t.check(still_open and not conn.buf,
                       "the hub and the mid-request connection are still open (the draining "
                       "Expect path is exercised)",
                       f"hub alive {hub.alive()}, bytes {bytes(conn.buf[:80])!r}, eof {conn.eof}"):
            return
        body = ht.form(ht.publish_fields(topic, data="during", id="exp-1"))
        conn.send((f"Authorization: Bearer {token}\r\nContent-Type: {FORM}\r\n"
                   f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n").encode())
        sent_head = time.monotonic()
        interim_closed = conn.wait_closed(0.5)   # whatever comes before the body
        interim = bytes(conn.buf)
        time.sleep(max(0.0, sent_head + 0.5 - time.monotonic()))
        try:
            conn.send(body)
        except OSError:
            pass
        closed = interim_closed or conn.wait_closed(5 * ht.SLOW)
        data = bytes(conn.buf)
        print(f"info before the body: {interim[:60]!r}{' then EOF' if interim_closed else ''}; "
              f"in all: {data[:160]!r}, {'EOF' if closed else 'still open'}", flush=True)
        t.check(b"HTTP/1.1 100" not in data,
                "no 100 Continue for a request whose head arrived during the drain",
                f"{data[:160]!r}, ended: {closed}")
        got = responses_in(conn)
        final = [r for r in got if isinstance(r, ht.Response) and r.status >= 200]
        ok = (len(final) == 1 and final[0].status == 503
              and (final[0].header("connection") or "").lower() == "close"
              and final[0].header("retry-after") is not None and closed)
        t.check(ok, "the body, sent 0.5s later, is answered 503 with Retry-After and "
                "Connection: close, then EOF (never 100 then EOF)", got)
        conn.close()
        rc = ht.wait_exit(hub.proc, 5 * ht.SLOW)
        summary = ht.drain_summary(hub) if rc is not None else None
        t.check(rc == 0 and summary is not None and summary["forced"] == 0,
                "the hub then exits 0 with 0 connections forced", f"exit {rc}, summary {summary}")
        t.check(not ht.sanitizer_reports(hub), "the sanitizers found nothing", hub.log_tail())
    finally:
        conn.close()
        ht.finish_hub(hub)


# ---------------------------------------------------------------------------------------------
# 6. --write-timeout: a connection whose writes stall is closed


def test_write_timeout():
    topic = "urn:io:stall"
    hub = ht.start_hub(anonymous=True, workers=1, max_queue=MAX_QUEUE, write_timeout=1,
                       heartbeat=0)
    pub = ht.Publisher(hub.port)
    stuck = ht.stuck_subscriber(hub.port, ht.sub_query([topic]))
    try:
        if not wait_subscribers(hub, 1):
            return
        ids, queued, err = fill_until_blocked(hub, pub, topic, BIG, "stall-")
        t.check(err is None and queued >= 2,
                f"{len(ids)} updates the subscriber does not read: the hub's writes to it stall",
                f"{err}, {queued} queued")
        gone = ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == 0,
                             6 * ht.SLOW, interval=0.1)
        t.check(gone, "within a few seconds of --write-timeout 1 the hub closes it")
        t.check("writes stalled" in hub.log_text(), "and logs why", hub.log_tail(5))
        t.eq(ht.metric(hub.metrics(), "sluice_slow_consumer_disconnects_total"), 0.0,
             "well under --max-queue: not counted as a slow consumer")
        resp = pub.publish(topic, data="after")
        t.eq(resp.status, 200, "the hub goes on serving")
    finally:
        stuck.close()
        pub.close()
        t.stop_hub(hub)


# ---------------------------------------------------------------------------------------------
# 7. The open-files limit is raised at start; 8. at the limit, accept pauses and resumes


def fd_limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    return None


def test_nofile_raised():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(1024, hard // 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))  # the hub inherits it
    try:
        hub = ht.start_hub(anonymous=True)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    t.eq(fd_limits(hub.pid), (hard, hard),
         f"started with a soft open-files limit of {low}, the hub raises it to the hard limit")
    t.stop_hub(hub)


def answered(socks, timeout):
    """The sockets among socks that received an HTTP response head within timeout."""
    got = {}
    deadline = time.monotonic() + timeout
    waiting = list(socks)
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            got[s] = data
            waiting.remove(s)
    return [s for s in socks if got.get(s, b"").startswith(b"HTTP/1.1 200")]


def test_emfile():
    hub = ht.start_hub(anonymous=True, workers=1)
    socks = []
    try:
        used = len(os.listdir(f"/proc/{hub.pid}/fd"))
        limit = used + 8
        r = subprocess.run(["prlimit", f"--pid={hub.pid}", f"--nofile={limit}:{limit}"],
                           capture_output=True, text=True)
        if not t.check(r.returncode == 0, f"the hub's open-files limit set to {limit}", r.stderr):
            return
        for _ in range(20):  # the kernel completes them in the listen backlog
            s = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        first = answered(socks, 2 * ht.SLOW)
        t.check(0 < len(first) < len(socks),
                f"{len(first)} of {len(socks)} connections served until descriptors ran out")
        t.check(hub.alive() and "pausing accept" in hub.log_text(),
                "the hub lives on and logs that accept pauses", hub.log_tail(5))
        for s in first:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        again = answered(first, 5 * ht.SLOW)
        t.eq(len(again), len(first), "connections it has are served meanwhile")
        # Each served connection is closed, which frees a descriptor for one that waits.
        rest = [s for s in socks if s not in first]
        for s in first:
            s.close()
            socks.remove(s)
        deadline = time.monotonic() + 20 * ht.SLOW
        while rest and time.monotonic() < deadline:
            for s in answered(rest, 2 * ht.SLOW):
                s.close()
                rest.remove(s)
                socks.remove(s)
        t.eq(len(rest), 0, "as connections close, accept resumes and every waiting one is "
             "served")
        t.check(ht.metric(hub.metrics(), "sluice_accept_emfile_total") >= 1,
                "sluice_accept_emfile_total counts the failed accepts")
    finally:
        for s in socks:
            s.close()
        t.stop_hub(hub)


def main():
    t.section("1. idle after a blocked write: no busy loop", test_idle_after_blocked_write)
    t.section("2. half-closed streams end cleanly or with a reset", test_half_close)
    t.section("3. Upgrade / CONNECT end the connection after the answer", test_upgrade)
    t.section("4. drain with a client stalled mid-request", test_drain_stalled_request)
    t.section("5. Expect: 100-continue during a drain", test_expect_during_drain)
    t.section("6. --write-timeout closes a connection whose writes stall", test_write_timeout)
    t.section("7. the open-files limit is raised at start", test_nofile_raised)
    t.section("8. out of descriptors: accept pauses, then resumes", test_emfile)
    t.finish()


if __name__ == "__main__":
    main()
