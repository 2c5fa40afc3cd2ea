"""test_abuse — what one client with bad intent (or a broken one) can do to the hub, tried the way
it would be, through the real binary over real sockets: each section is a defect found by
attacking the hub, reproduced, and the fixed behaviour asserted.

- HTTP strictness (RFC 9112): versions other than 1.0 and 1.1 get 505; a 1.1 request without
  Host gets 400; a 1.0 request with Transfer-Encoding gets 400 and the connection closes;
  obs-fold is refused on every header, Authorization and the framing headers included.
- Pipelined requests from a client that never reads: parsing stops once 64 KiB of answers wait,
  and goes on as they are written (it used to answer a whole 64 KiB read first: ~11.7 MiB per
  connection, and the memory stayed with the process after the connections closed).
- A chunk announced larger than --max-body is refused with 413 at once, not left to time out.
- A short HMAC key is refused (exit 2, one line saying why) unless --allow-weak-key.
- A resume with hundreds of selectors over a long history no longer holds the publish lock while
  it filters, and its work grows with the updates' topics, not with its selectors.
- Connections are capped per client address (--max-conns-per-ip, 429) and in all
  (--max-connections, 503, below the descriptor limit so that the hub can still say so).
- Publishes and subscriptions are rate-limited per address and per token (--rate-per-ip,
  --rate-per-token: token buckets, 429 with Retry-After).
- History is bounded by bytes too (--history-max-bytes), not by count alone.
- Numeric options out of range exit 2 with a clear line, never hang or fail vaguely.
- SIGHUP reopens the log under the same descriptor number: the old number, closed while other
  threads wrote to it, could be reused by accept() and a log line land in a client's socket.
- A token whose exp is far in the future keeps its stream open (it once overflowed the stream's
  expiry and ended it at once).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_abuse")


def exchange(port, raw, timeout=5.0):
    """Sends raw bytes on a new connection; returns (status line, whether the hub then closed the
    connection, seconds until the answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * ht.SLOW)
    start = time.monotonic()
    s.sendall(raw)
    data = b""
    closed = False
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
        took = time.monotonic() - start
        if not closed:
            s.settimeout(2 * ht.SLOW)
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed = True
                        break
            except socket.timeout:
                pass
    except (socket.timeout, ConnectionResetError):
        took = time.monotonic() - start
    finally:
        s.close()
    return data.split(b"\r\n", 1)[0].decode(errors="replace"), closed, took


def http_strictness():
    hub = ht.start_hub(anonymous=True)
    p = hub.port
    for version in ("HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "HTTP/3.0"):
        line, _, _ = exchange(p, f"GET /healthz {version}\r\nHost: x\r\n\r\n".encode())
        t.check(line.startswith("HTTP/1.1 505"), f"{version} is answered 505", line)
    line, _, _ = exchange(p, b"GET /healthz HTTP/1.1\r\n\r\n")
    t.check(line.startswith("HTTP/1.1 400"), "an HTTP/1.1 request without Host gets 400", line)
    line, _, _ = exchange(p, b"GET /healthz HTTP/1.0\r\n\r\n")
    t.check(line.startswith("HTTP/1.1 200"), "an HTTP/1.0 request needs no Host", line)
    line, closed, _ = exchange(p, b"POST /.well-known/mercure HTTP/1.0\r\nConnection: keep-alive\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    t.check(line.startswith("HTTP/1.1 400") and closed,
            "HTTP/1.0 with Transfer-Encoding: 400 and the connection closes", f"{line} closed={closed}")
    folds = {
        "Authorization": b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n abc\r\n\r\n",
        "Content-Length": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 0\r\n\r\n",
        "Transfer-Encoding": b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\tchunked"
                             b"\r\n\r\n0\r\n\r\n",
        "another header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    }
    for name, raw in folds.items():
        line, _, _ = exchange(p, raw)
        t.check(line.startswith("HTTP/1.1 400"), f"obs-fold on {name} is refused with 400", line)
    # A value split by the network, even mid-line or right after a line, is not a fold.
    s = socket.create_connection(("127.0.0.1", p), timeout=5 * ht.SLOW)
    for piece in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ab", b"cd\r\n", b"X-B: 1\r\n\r\n"):
        s.sendall(piece)
        time.sleep(0.05)
    got = s.recv(4096).split(b"\r\n", 1)[0]
    s.close()
    t.check(got.startswith(b"HTTP/1.1 200"), "values split across reads are served", got)
    t.stop_hub(hub)


def chunk_over_max_body():
    hub = ht.start_hub(max_body=4096, header_timeout=5)
    line, _, took = exchange(hub.port, b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Type: application/x-www-form-urlencoded\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n100000\r\n", timeout=10)
    t.check(line.startswith("HTTP/1.1 413") and took < 2,
            "a chunk announced over --max-body is answered 413 at once",
            f"{line} after {took:.2f}s (--header-timeout 5 would give 408)")
    t.stop_hub(hub)


def far_future_exp():
    hub = ht.start_hub()
    # Seconds left times 1000 wraps a 64-bit millisecond clock to a moment less than a second
    # away: the overflow that ended such a stream at once.
    far = int(time.time()) + (2 ** 64 // 1000) + 1
    token = ht.jwt_hs256({"exp": far, "mercure": {"subscribe": ["*"], "publish": ["*"]}})
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:abuse:exp"]), token=token)
    t.eq(s.status, 200, "a token with a far-future exp subscribes")
    s.wait_open()
    time.sleep(1.0)  # four sweeps: the stream's expiry is checked at each
    ht.publish(hub.port, ht.mint_token(), "urn:abuse:exp", data="still here", id="exp-1")
    t.check(s.wait_id("exp-1", timeout=5) is not None and not s.eof,
            "its stream is still open a second later and gets updates", f"eof={s.eof}")
    s.close()
    t.stop_hub(hub)


def refused_cli(*args, env):
    """The daemon run with args, expected to exit at once; a CompletedProcess, or one with
    returncode None when it started serving instead (then it is stopped)."""
    try:
        return ht.run_cli(*args, env=env, timeout=3)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, None, "", "(it started and served)")


def weak_keys():
    env = ht.base_env()
    for flag in ("--jwt-key", "--publisher-jwt-key", "--subscriber-jwt-key"):
        r = refused_cli(flag, "a" * 31, "--listen", "127.0.0.1:0", env=env)
        lines = r.stderr.strip().splitlines()
        t.check(r.returncode == 2 and len(lines) == 1 and flag in lines[0] and "32" in lines[0]
                and "--allow-weak-key" in lines[0],
                f"a 31-byte {flag} is refused: exit 2, one line naming the flag and the fix",
                f"rc={r.returncode} {r.stderr.strip()[:300]}")
    env_key = dict(env, SLUICE_JWT_KEY="short")
    r = refused_cli("--listen", "127.0.0.1:0", env=env_key)
    t.check(r.returncode == 2 and "--jwt-key" in r.stderr, "a short key from the environment too",
            r.stderr.strip()[:200])
    hub = ht.start_hub(key="a" * 32)
    t.check(hub.alive(), "a 32-byte key starts")
    t.stop_hub(hub)
    hub = ht.start_hub(key="short", allow_weak_key=True)
    tok = ht.mint_token(key="short")
    t.eq(ht.publish(hub.port, tok, "urn:abuse:weak", data="x").status, 200,
         "--allow-weak-key lets a test use a short key")
    t.stop_hub(hub)


def fds_to(pid, path):
    """The descriptor numbers of process pid open on path."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                found.append(int(fd))
        except OSError:
            pass
    return sorted(found)


def log_reopen_keeps_its_number():
    # A log reopened under a new descriptor number, with the old number closed while other
    # threads may still write to it, sends log lines into whatever accept() gets that number
    # next: a client's socket. The reopened file must take the old number.
    d = tempfile.mkdtemp(prefix="sluice-abuse-")
    path = os.path.join(d, "hub.log")
    hub = ht.start_hub(anonymous=True, log_file=path)
    before = fds_to(hub.pid, path)
    t.check(len(before) == 1, "the log is open on one descriptor", before)
    os.rename(path, path + ".1")
    os.kill(hub.pid, signal.SIGHUP)
    ht.wait_until(lambda: os.path.exists(path) and "reopened" in open(path).read(), 5 * ht.SLOW)
    after = fds_to(hub.pid, path)
    t.check(after == before, "after SIGHUP the new file has the same descriptor number",
            f"before {before}, after {after}")
    t.check(fds_to(hub.pid, path + ".1") == [], "and the old file is no longer open")
    t.stop_hub(hub)


def numeric_ranges():
    # Between 2^62 and 2^64-1 the history's index sizing overflowed and the daemon hung at
    # start; 10^9 said only "Cannot allocate memory".
    env = ht.base_env()
    for flag, value in (("--history-size", str(2 ** 62)), ("--history-size", str(2 ** 64 - 1)),
                        ("--history-size", "1000000000"), ("--max-body", "8G")):
        r = refused_cli("--jwt-key", ht.KEY, "--listen", "127.0.0.1:0", flag, value, env=env)
        t.check(r.returncode == 2 and flag in r.stderr and "too large" in r.stderr,
                f"{flag} {value} exits 2 saying it is too large", f"rc={r.returncode} "
                f"{r.stderr.strip()[:200]}")


PIPELINED = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def pipelining_amplification():
    # One 64 KiB read of tiny pipelined requests for the demo page used to be answered whole
    # before the queue limit was looked at: ~11.7 MiB of answers per connection that never reads.
    hub = ht.start_hub(anonymous=True)
    rss0 = hub.status_kib("VmRSS")
    conns = []
    burst = PIPELINED * (65536 // len(PIPELINED))
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", hub.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        try:
            s.send(burst)
        except BlockingIOError:
            pass
        conns.append(s)
    time.sleep(2 * ht.SLOW)
    grown_mib = (hub.status_kib("VmRSS") - rss0) / 1024
    if ht.SANITIZER:
        # A sanitizer's runtime keeps freed memory in quarantine: RSS says nothing of the hub's.
        print(f"info RSS not checked under the {ht.SANITIZER} sanitizer (grew {grown_mib:.0f} MiB)")
    else:
        t.check(grown_mib < 100, "40 connections pipelining 64 KiB of requests without reading "
                "grow the hub by less than 100 MiB", f"grew {grown_mib:.0f} MiB (was ~470 MiB)")
    for s in conns:
        s.close()
    # Every request of a long pipeline is still answered, in order, once the client reads.
    n = 3000
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=20 * ht.SLOW)
    s.sendall(b"".join(f"GET /healthz?{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                       for i in range(n)))
    time.sleep(0.5)
    data = b""
    deadline = time.monotonic() + 20 * ht.SLOW
    while data.count(b"HTTP/1.1 200 OK") < n and time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    t.eq(data.count(b"HTTP/1.1 200 OK"), n, f"all {n} pipelined requests are answered")
    t.check(hub.alive(), "the hub serves on")
    t.stop_hub(hub)


def history_byte_budget():
    # History was bounded by count only: 10,000 updates of 1 MiB were 10 GiB of RSS.
    budget = 2 << 20
    hub = ht.start_hub(anonymous=True, history_size=10000, history_max_bytes=budget,
                       max_body=256 << 10)
    pub = ht.Publisher(hub.port, ht.mint_token())
    payload = "x" * (200 << 10)
    for i in range(60):  # 12 MiB of updates
        pub.must(["urn:abuse:big"], data=payload, id=f"big-{i}")
    pub.close()
    m = hub.metrics()
    t.check(0 < m.get("sluice_history_bytes", -1) <= budget,
            "the history holds at most --history-max-bytes", m.get("sluice_history_bytes"))
    t.check(m.get("sluice_history_max_bytes") == budget, "/metrics shows the budget")
    kept = m.get("sluice_history_entries", 0)
    t.check(5 <= kept <= 10, "and keeps the newest updates that fit", kept)
    rss_mib = hub.status_kib("VmRSS") / 1024
    if ht.SANITIZER:
        print(f"info RSS not checked under the {ht.SANITIZER} sanitizer ({rss_mib:.0f} MiB)")
    else:
        t.check(rss_mib < 64, "the hub's memory stays near the budget", f"{rss_mib:.0f} MiB")
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:abuse:big"]), headers={"Last-Event-ID": "big-0"})
    s.wait_id("big-59", timeout=10)
    t.eq(s.response.header("Mercure-Last-Event-ID"), "earliest",
         "a resume from a dropped id is told 'earliest'")
    t.eq(len([e for e in s.events if e.data]), int(kept), "and gets every retained update")
    s.close()
    t.stop_hub(hub)


def replay_does_not_stall_publishing():
    # One anonymous subscriber with 256 selectors that match nothing, resuming from 'earliest'
    # over 10,000 retained updates of 64 topics each, scanned them all under the global publish
    # lock: with 8 such subscribers, 2 publishes got through in 5 s.
    hub = ht.start_hub(anonymous=True, history_size=10000, workers=2)
    pub = ht.Publisher(hub.port, ht.mint_token())
    topics = [f"urn:abuse:replay:{k}" for k in range(64)]
    body = ht.form(ht.publish_fields(topics, data="x"))
    batch = 500
    fill = ht.HTTPConn(hub.port, timeout=60)
    for start in range(0, 10000, batch):
        fill.send(b"".join(fill.build("POST", ht.HUB_PATH, {
            "Authorization": f"Bearer {pub.token}",
            "Content-Type": "application/x-www-form-urlencoded"}, body) for _ in range(batch)))
        for _ in range(batch):
            r = fill.read_response("POST")
            if r.status != 200:
                t.check(False, "filling the history", r.status)
                return
    fill.close()
    selectors = [f"n{k}" for k in range(256)]  # short: 256 of them fit the 8 KiB target
    path = ht.sub_query(selectors, last_event_id="earliest")
    stop = threading.Event()
    resumes = [0] * 8

    def resume_forever(i):
        while not stop.is_set():
            try:
                s = ht.SSEStream(hub.port, path, timeout=30)
                if s.status == 200:
                    resumes[i] += 1
                s.close()
            except OSError:
                pass

    threads = [threading.Thread(target=resume_forever, args=(i,), daemon=True) for i in range(8)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    done = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if pub.publish(["urn:abuse:replay:live"], data="y").status == 200:
            done += 1
    stop.set()
    for th in threads:
        th.join(30 * ht.SLOW)
    pub.close()
    t.check(sum(resumes) > 0, "the resumes are served", resumes)
    # 18 got through with the code before (no sanitizer). Under the sanitizers the replays alone
    # are slow enough to keep both workers busy, which says nothing of the lock (ASan let 26 to
    # 49 through, TSan 2), so the count is only printed there.
    want = 60  # 3x what the code before let through: margin for a busy machine
    print(f"info {done} publishes in 5 s, {sum(resumes)} resumes")
    if ht.SANITIZER:
        want = 0
    t.check(done >= want, "8 subscribers resuming with 256 selectors each from 'earliest' over "
            "10,000 updates of 64 topics let publishes through", f"{done} publishes in 5 s "
            f"(2 before), {sum(resumes)} resumes")
    m = hub.metrics()
    checks = m.get("sluice_replay_checks_total", 0)
    t.check(0 < checks <= sum(resumes) * 10000 * 64 * 1.1 + 64 * 10000,
            "the work replays cause is counted, and bounded by updates x topics (not selectors)",
            f"{checks:.0f} checks for {sum(resumes)} resumes")
    t.stop_hub(hub)


def connect_from(port, source):
    """A connection to the hub from the loopback address source (a client of its own)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10 * ht.SLOW)
    s.connect(("127.0.0.1", port))
    return s


def request_from(port, source, raw):
    """Sends one request (which asks for Connection: close) from source; everything the hub
    answered, up to its close."""
    s = connect_from(port, source)
    s.sendall(raw)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def stream_from(port, source):
    """A subscriber connected from the loopback address source; (status line, head, socket)."""
    s = connect_from(port, source)
    s.sendall(f"GET {ht.sub_query(['urn:abuse:cap'])} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    return line, head, s


def exchange_body(port, source, path):
    """GET path from the loopback address source; the response's body."""
    data = request_from(port, source, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                                      "Connection: close\r\n\r\n".encode())
    return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")


def connection_caps():
    # One client could hold every descriptor the hub had; and the hub, once out of them, could
    # no longer even say so.
    hub = ht.start_hub(anonymous=True, max_conns_per_ip=3, max_connections=6)
    # Addresses of their own, and the start's /healthz probe gone: it counted while open.
    ht.wait_until(lambda: ht.parse_metrics(exchange_body(hub.port, "127.0.0.9", "/metrics"))
                  .get("sluice_connections") == 1, 10 * ht.SLOW)
    held = []
    for _ in range(3):
        line, _, s = stream_from(hub.port, "127.0.0.5")
        held.append(s)
        t.check(line.startswith("HTTP/1.1 200"), "a client's first 3 streams open", line)
    line, head, s = stream_from(hub.port, "127.0.0.5")
    s.close()
    t.check(line.startswith("HTTP/1.1 429") and b"Retry-After:" in head
            and b"--max-conns-per-ip" in head,
            "its 4th is answered 429 with Retry-After, saying which limit", head[:300])
    for _ in range(3):
        line, _, s = stream_from(hub.port, "127.0.0.6")
        held.append(s)
        t.check(line.startswith("HTTP/1.1 200"), "another address opens its own 3", line)
    line, head, s = stream_from(hub.port, "127.0.0.7")
    s.close()
    t.check(line.startswith("HTTP/1.1 503") and b"--max-connections" in head,
            "past --max-connections a new client is answered 503", head[:300])
    held.pop(0).close()
    # The hub sees the close a moment later; until then a new stream is still refused.
    deadline = time.monotonic() + 10 * ht.SLOW
    refusals = 0
    while True:
        line, _, s = stream_from(hub.port, "127.0.0.5")
        if line.startswith("HTTP/1.1 200") or time.monotonic() > deadline:
            break
        refusals += 1
        s.close()
        time.sleep(0.05)
    held.append(s)
    t.check(line.startswith("HTTP/1.1 200"), "a closed stream frees its place", line)
    for s in held:
        s.close()
    m = {}
    deadline = time.monotonic() + 10 * ht.SLOW
    while "sluice_connections_refused_full_total" not in m and time.monotonic() < deadline:
        m = ht.parse_metrics(exchange_body(hub.port, "127.0.0.9", "/metrics"))
        time.sleep(0.05)
    t.eq((m.get("sluice_connections_refused_per_ip_total"),
          m.get("sluice_connections_refused_full_total", 0) - refusals), (1, 1),
         "/metrics counts each refusal")
    t.stop_hub(hub)


def publish_from(port, source, token, topic="urn:abuse:rate"):
    """One publish from the loopback address source; (status line, the whole answer)."""
    body = ht.form(ht.publish_fields([topic], data="x"))
    data = request_from(port, source, f"POST {ht.HUB_PATH} HTTP/1.1\r\nHost: x\r\n"
                        f"Connection: close\r\nAuthorization: Bearer {token}\r\n"
                        f"Content-Type: application/x-www-form-urlencoded\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return data.split(b"\r\n", 1)[0].decode(errors="replace"), data


def request_rates():
    # Nothing bounded how many publishes or subscriptions one client could start per second.
    tok_a, tok_b = ht.mint_token(), ht.jwt_hs256({"mercure": {"publish": ["*"]}, "x": "b"})
    hub = ht.start_hub(anonymous=True, rate_per_ip=5)
    codes = [publish_from(hub.port, "127.0.0.1", tok_a)[0][9:12] for _ in range(20)]
    t.check(codes[:5] == ["200"] * 5 and codes.count("429") >= 10,
            "--rate-per-ip 5: a burst of 5 goes, then most of 20 quick publishes get 429", codes)
    line, head = publish_from(hub.port, "127.0.0.1", tok_a)
    t.check(b"Retry-After: " in head and b"--rate-per-ip" in head,
            "the 429 says when to retry and which limit", head[:300])
    line, _ = publish_from(hub.port, "127.0.0.2", tok_a)
    t.check(line.startswith("HTTP/1.1 200"), "another address has its own rate", line)
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:abuse:rate"]))
    t.eq(s.status, 429, "subscriptions count against the same rate")
    s.close()
    time.sleep(1.2)
    line, _ = publish_from(hub.port, "127.0.0.1", tok_a)
    t.check(line.startswith("HTTP/1.1 200"), "a second later it may publish again", line)
    t.check(hub.metrics().get("sluice_rate_limited_total", 0) >= 11,
            "/metrics counts the 429s")
    t.stop_hub(hub)
    hub = ht.start_hub(rate_per_token=3)
    codes = [publish_from(hub.port, f"127.0.0.{10 + i}", tok_a)[0][9:12] for i in range(8)]
    t.check(codes[:3] == ["200"] * 3 and codes.count("429") >= 4,
            "--rate-per-token 3: one token, from many addresses, gets 429 after its burst", codes)
    line, _ = publish_from(hub.port, "127.0.0.30", tok_b)
    t.check(line.startswith("HTTP/1.1 200"), "another token has its own rate", line)
    t.stop_hub(hub)


t.section("HTTP strictness (RFC 9112)", http_strictness)
t.section("publishes and subscriptions per address and per token", request_rates)
t.section("connections per address and in all", connection_caps)
t.section("resumes with many selectors do not stall publishing", replay_does_not_stall_publishing)
t.section("history bounded by bytes", history_byte_budget)
t.section("pipelined requests that are never read", pipelining_amplification)
t.section("numeric options out of range", numeric_ranges)
t.section("SIGHUP: the log file keeps its descriptor number", log_reopen_keeps_its_number)
t.section("short HMAC keys", weak_keys)
t.section("a chunk larger than --max-body", chunk_over_max_body)
t.section("a far-future token expiry", far_future_exp)
t.finish()
