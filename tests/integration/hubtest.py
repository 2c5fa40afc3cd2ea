"""hubtest — what every integration test of sluice shares: starting the real daemon on a free
loopback port and always stopping it, minting tokens with the daemon's own `token` command,
talking HTTP/1.1 over raw sockets (so that framing, keep-alive and pipelining are seen exactly as
a client sees them), publishing, and reading Server-Sent Events streams incrementally (chunked
transfer coding, then the SSE line format), either one blocking stream at a time or many
non-blocking streams in one selector loop; and what the drain tests share: waiting for a hub that
exits by itself, its drain summary log line, reading a connection to its end.

It owns no assertions about the hub's behaviour: those live in the test_<feature>.py files. Only
the Python 3 standard library is used. Environment: SLUICE_BIN (the daemon), SLUICE_SOURCE,
SLUICE_BUILD, as CTest sets them.
"""

import atexit
import base64
import ctypes
import hashlib
import hmac
import json
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("SLUICE_SOURCE") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("SLUICE_BUILD") or os.path.join(SOURCE, "build")
BIN = os.environ.get("SLUICE_BIN") or os.path.join(BUILD, "sluice")

KEY = "sluice-integration-test-key-0123456789abcdef"
HUB_PATH = "/.well-known/mercure"

# Many tests hold hundreds of sockets, and the hub inherits this limit from us.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _hard == resource.RLIM_INFINITY or _soft < _hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))


def sanitizer():
    """Which sanitizer the daemon was built with: "address" (AddressSanitizer + UBSan), "thread"
    (ThreadSanitizer) or None."""
    try:
        with open(BIN, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"__asan_init" in data:
        return "address"
    if b"__tsan_init" in data:
        return "thread"
    return None


SANITIZER = sanitizer()
SANITIZED = SANITIZER is not None
# Generous time factor for sanitizer builds, which run several times slower (ThreadSanitizer
# more so: every memory access is checked against the other threads').
SLOW = {"address": 4.0, "thread": 6.0}.get(SANITIZER, 1.0)
# What a sanitizer writes to the log when it finds something.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                   "WARNING: ThreadSanitizer", "FATAL: ThreadSanitizer")


# ---------------------------------------------------------------------------------------------
# Checks and reporting


class Checker:
    """Collects named checks; a failing check is reported and remembered, the test goes on, and
    finish() exits non-zero when any check failed. Sections isolate unexpected exceptions."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = []
        print(f"== {name} (daemon: {BIN}{f', {SANITIZER} sanitizer build' if SANITIZED else ''})",
              flush=True)

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   {what}", flush=True)
        else:
            self.failed.append(what)
            msg = f"FAIL {what}"
            if detail:
                msg += "\n     " + str(detail).replace("\n", "\n     ")
            print(msg, flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.check(got == want, what, f"got  {short(got)}\nwant {short(want)}")

    def section(self, title, fn, *args):
        print(f"-- {title}", flush=True)
        try:
            fn(*args)
        except Exception:  # one broken section must not hide the others' results
            self.failed.append(f"{title}: exception")
            print(f"FAIL {title}: unexpected exception\n" + traceback.format_exc(), flush=True)

    def stop_hub(self, hub, what="hub exits 0 on SIGTERM (and the sanitizers found nothing)"):
        rc = hub.stop()
        bad = sanitizer_reports(hub)
        self.check(rc == 0 and not bad, what, f"exit code {rc}; log tail:\n{hub.log_tail()}")

    def finish(self):
        stop_all_hubs()
        # A net under the checks of each test: a report in the log of any hub this test started
        # (one killed, or one whose exit the test expected to be non-zero, too) fails the test.
        # ThreadSanitizer prints each report when it finds it, not only at exit.
        reported = [(hub.pid, sanitizer_reports(hub)) for hub in _started]
        reported = [(pid, marks) for pid, marks in reported if marks]
        if reported:
            self.check(False, "the sanitizers found nothing in any hub's log",
                       "; ".join(f"hub {pid}: {', '.join(marks)}" for pid, marks in reported))
        print(f"{self.name}: {self.passed} passed, {len(self.failed)} failed", flush=True)
        for what in self.failed:
            print(f"  failed: {what}", flush=True)
        sys.exit(1 if self.failed else 0)


def short(v, n=400):
    s = repr(v)
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until it is true or timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# The daemon

_hubs = []      # hubs still running
_started = []   # every hub started, for Checker.finish's look at their logs


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _die_with_parent():
    # If this test process is killed (a CTest timeout), the daemon must not outlive it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class HubError(Exception):
    pass


class Hub:
    """A running daemon. .port .pid .url .proc; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, proc, port, log_path, args):
        self.proc = proc
        self.port = port
        self.pid = proc.pid
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.args = args
        self.rc = None

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=None):
        """SIGTERM, wait (drain included), SIGKILL when it does not end. Returns the exit code
        (negative: killed by that signal)."""
        if self.rc is not None:
            return self.rc
        timeout = timeout if timeout is not None else 30 + 15 * SLOW
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"hub {self.pid} did not exit {timeout:.0f}s after SIGTERM: killing", flush=True)
                self.proc.kill()
                self.proc.wait()
        self.rc = self.proc.returncode
        if self in _hubs:
            _hubs.remove(self)
        return self.rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in _hubs:
            _hubs.remove(self)

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def status_kib(self, field):
        """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or None."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def metrics(self):
        return parse_metrics(request(self.port, "GET", "/metrics").text)


def hub_args(port, key=KEY, anonymous=False, extra=(), legacy=True, **flags):
    """legacy: --jwt-legacy, so that the tokens of mint_token (no aud, no iss) and jwt_hs256
    (typ JWT, the mercure claim) are accepted; test_tokens.py passes legacy=False to test the
    spec profile."""
    args = [BIN, "--listen", f"127.0.0.1:{port}"]
    if key is not None:
        args += ["--jwt-key", key]
    if legacy:
        args.append("--jwt-legacy")
    if anonymous:
        args.append("--anonymous")
    for name, value in flags.items():
        if value is None or value is False:
            continue
        args.append("--" + name.replace("_", "-"))
        if value is not True:
            args.append(str(value))
    args += list(extra)
    return args


def start_hub(key=KEY, anonymous=False, extra=(), env=None, ready_timeout=None, legacy=True,
              **flags):
    """Starts the daemon on a free loopback port with the given flags (history_size=5 becomes
    --history-size 5; True means a bare flag) and waits until GET /healthz answers 200."""
    ready_timeout = ready_timeout or 20 * SLOW
    full_env = base_env()
    if env:
        full_env.update(env)
    last_error = None
    for _attempt in range(3):  # another process may take the free port before the hub binds it
        port = free_port()
        args = hub_args(port, key, anonymous, extra, legacy, **flags)
        fd, log_path = tempfile.mkstemp(prefix="sluice-hub-", suffix=".log")
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                env=full_env, preexec_fn=_die_with_parent)
        os.close(fd)
        hub = Hub(proc, port, log_path, args)
        hub.key = key
        _hubs.append(hub)
        _started.append(hub)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and hub.alive():
            try:
                if request(port, "GET", "/healthz", timeout=2).status == 200:
                    print(f"hub pid {hub.pid} ready on {hub.url}: {' '.join(args[1:])}", flush=True)
                    return hub
            except OSError:
                pass
            time.sleep(0.05)
        log = hub.log_tail()
        hub.kill()
        last_error = f"hub {' '.join(args)} not ready (exit {proc.returncode}):\n{log}"
        if "in use" not in log.lower():
            break
    raise HubError(last_error)


def stop_all_hubs():
    for hub in list(_hubs):
        hub.stop(timeout=10)


def wait_exit(proc, timeout):
    """Waits for a process (a Popen) to exit on its own, no signal sent; returns its exit code,
    or None when it still runs after timeout seconds (at least a hundredth of a second)."""
    try:
        return proc.wait(max(timeout, 0.01))
    except subprocess.TimeoutExpired:
        return None


def finish_hub(hub):
    """For a hub the test expected to exit by itself (after the signals the test sent): kills it
    if it still runs, then records and returns its exit code."""
    if hub.alive():
        hub.kill()
    return hub.stop()


def sanitizer_reports(hub):
    """The SANITIZER_MARKS found in the hub's log (empty: the sanitizers reported nothing)."""
    log = hub.log_text()
    return [m for m in SANITIZER_MARKS if m in log]


DRAIN_SUMMARY_RE = re.compile(r"drain: done in ([0-9.]+) s: (\d+) streams drained, (\d+) updates "
                              r"flushed, (\d+) connections forced")


def drain_summary(hub):
    """The hub's last drain summary log line as {'seconds', 'drained', 'flushed', 'forced'},
    or None when it logged none."""
    m = None
    for m in DRAIN_SUMMARY_RE.finditer(hub.log_text()):
        pass
    if m is None:
        return None
    return {"seconds": float(m.group(1)), "drained": int(m.group(2)),
            "flushed": int(m.group(3)), "forced": int(m.group(4))}


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


atexit.register(stop_all_hubs)
signal.signal(signal.SIGTERM, _on_signal)


def base_env():
    """This process's environment without SLUICE_* settings, which would configure the hub."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}


def run_cli(*args, env=None, timeout=None):
    """Runs the daemon binary to completion (env: the whole environment; default base_env());
    returns CompletedProcess with text output."""
    full_env = base_env() if env is None else env
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout or 20 * SLOW, stdin=subprocess.DEVNULL)


_token_cache = {}


def mint_token(publish=("*",), subscribe=("*",), key=KEY):
    """A token from `sluice token`, granting publish/subscribe on the given topic selectors."""
    cache_key = (tuple(publish), tuple(subscribe), key)
    if cache_key not in _token_cache:
        args = ["token", "--key", key]
        for p in publish:
            args += ["--publish", p]
        for s in subscribe:
            args += ["--subscribe", s]
        r = run_cli(*args)
        if r.returncode != 0 or not r.stdout.strip():
            raise HubError(f"sluice {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        _token_cache[cache_key] = r.stdout.strip()
    return _token_cache[cache_key]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(claims, key=KEY, header=None):
    """A JWT signed here (not by the daemon), for tokens the `token` command would not make."""
    head = header or {"alg": "HS256", "typ": "JWT"}
    signing = (b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode()))
    sig = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 over a raw socket


class Response:
    def __init__(self, version, status, reason, headers, body=b""):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers      # [(name, value)] in order received
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.headers} {self.body[:200]!r}>"


class ConnectionClosed(Exception):
    pass


class HTTPConn:
    """One client connection. request() sends and reads one response; send() and
    read_response() separately allow pipelining and hand-made bytes."""

    def __init__(self, port, timeout=10.0, rcvbuf=None):
        self.port = port
        self.timeout = timeout * SLOW
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(self.timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def build(self, method, path, headers=None, body=None):
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        names = set()
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
            names.add(k.lower())
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            if "content-length" not in names and "transfer-encoding" not in names:
                lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")

    def request(self, method, path, headers=None, body=None):
        self.send(self.build(method, path, headers, body))
        return self.read_response(method)

    def _fill(self, deadline):
        """Reads more bytes into buf; False at end of stream (or reset)."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for the hub")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_head(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if not self._fill(deadline):
                raise ConnectionClosed(f"connection closed before a response head; got {bytes(self.buf)!r}")
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end + 4]
        lines = head.split("\r\n")
        m = re.match(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ValueError(f"bad status line {lines[0]!r}")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        return Response(m.group(1), int(m.group(2)), m.group(3) or "", headers)

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(f"connection closed with {len(self.buf)} of {n} body bytes")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if not self._fill(deadline):
                raise ConnectionClosed("connection closed inside a chunked body")

    def read_response(self, method="GET", timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        resp = self.read_head(timeout)
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.body = b""
        elif "chunked" in te:
            body = bytearray()
            while True:
                size = int(self.read_line(deadline).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_line(deadline):
                        pass
                    break
                body += self.read_exact(size, deadline)
                if self.read_exact(2, deadline) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = self.read_exact(int(cl), deadline)
        else:
            while self._fill(deadline):
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def wait_closed(self, timeout):
        """True when the peer closes (EOF or reset) within timeout; bytes read meanwhile stay in
        buf."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
            return True
        except socket.timeout:
            return False


def request(port, method, path, headers=None, body=None, timeout=10.0):
    conn = HTTPConn(port, timeout)
    try:
        return conn.request(method, path, headers, body)
    finally:
        conn.close()


def refused(port):
    """True when a new TCP connection to the loopback port is refused (no listener: a draining
    hub has closed its listeners); False when it connects or fails otherwise."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def read_until_end(sock, timeout):
    """Reads a blocking socket until the peer ends the connection or timeout seconds (not
    scaled) pass. Returns (how, the bytes read): how is 'eof' (recv returned b''), 'reset'
    (ECONNRESET) or 'timeout'."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", bytes(got)
        sock.settimeout(left)
        try:
            data = sock.recv(262144)
        except ConnectionResetError:
            return "reset", bytes(got)
        except socket.timeout:
            return "timeout", bytes(got)
        if not data:
            return "eof", bytes(got)
        got += data


def form(fields):
    """application/x-www-form-urlencoded body from [(name, value)] (values may repeat)."""
    return urllib.parse.urlencode(fields, quote_via=urllib.parse.quote).encode()


def publish_fields(topics, data=None, id=None, type=None, retry=None, private=False):
    if isinstance(topics, str):
        topics = [topics]
    fields = [("topic", t) for t in topics]
    if data is not None:
        fields.append(("data", data))
    if id is not None:
        fields.append(("id", id))
    if type is not None:
        fields.append(("type", type))
    if retry is not None:
        fields.append(("retry", str(retry)))
    if private:
        fields.append(("private", "on"))
    return fields


class Publisher:
    """Publishes over one keep-alive connection, reconnecting if the hub closed it."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token if token is not None else mint_token()
        self.conn = None

    def post(self, body, content_type="application/x-www-form-urlencoded", token=None):
        headers = {"Content-Type": content_type}
        tok = self.token if token is None else token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = HTTPConn(self.port)
            try:
                resp = self.conn.request("POST", HUB_PATH, headers, body)
            except (ConnectionClosed, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if (resp.header("connection") or "").lower() == "close":
                self.conn.close()
                self.conn = None
            return resp

    def publish(self, topics, data=None, id=None, type=None, retry=None, private=False,
                extra=(), token=None):
        """Returns the Response; its text is the update's id on 200."""
        fields = publish_fields(topics, data, id, type, retry, private) + list(extra)
        return self.post(form(fields), token=token)

    def must(self, *args, **kwargs):
        """Publishes and returns the id; raises when the hub does not answer 200."""
        resp = self.publish(*args, **kwargs)
        if resp.status != 200:
            raise AssertionError(f"publish {short((args, kwargs), 200)} -> {resp.status} "
                                 f"{resp.text!r}")
        return resp.text

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def publish(port, token, topics, **kwargs):
    p = Publisher(port, token)
    try:
        return p.publish(topics, **kwargs)
    finally:
        p.close()


def sub_query(matches=("*",), param="match", **extra):
    fields = [(param, m) for m in matches] + [(k, v) for k, v in extra.items()]
    return HUB_PATH + "?" + form(fields).decode()


# ---------------------------------------------------------------------------------------------
# Server-Sent Events


class ChunkedDecoder:
    """Incremental decoder of the chunked transfer coding. feed() returns the payload bytes
    decoded so far; .done after the last chunk; raises ValueError on a framing error."""

    def __init__(self):
        self.pending = bytearray()
        self.remaining = 0      # payload bytes left in the current chunk
        self.state = "size"     # size | data | crlf | trailer
        self.done = False
        self.chunks = 0

    def feed(self, data):
        self.pending += data
        out = bytearray()
        p = self.pending
        while p and not self.done:
            if self.state == "size":
                i = p.find(b"\r\n")
                if i < 0:
                    if len(p) > 1024:
                        raise ValueError(f"chunk size line too long: {bytes(p[:60])!r}")
                    break
                line = bytes(p[:i]).split(b";")[0].strip()
                del p[:i + 2]
                if not re.fullmatch(rb"[0-9A-Fa-f]+", line):
                    raise ValueError(f"bad chunk size line {line!r}")
                self.remaining = int(line, 16)
                self.chunks += 1
                self.state = "data" if self.remaining else "trailer"
            elif self.state == "data":
                n = min(self.remaining, len(p))
                out += p[:n]
                del p[:n]
                self.remaining -= n
                if self.remaining == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(p) < 2:
                    break
                if p[:2] != b"\r\n":
                    raise ValueError(f"chunk data not followed by CRLF: {bytes(p[:20])!r}")
                del p[:2]
                self.state = "size"
            else:  # trailer section: lines until an empty one
                i = p.find(b"\r\n")
                if i < 0:
                    break
                del p[:i + 2]
                if i == 0:
                    self.done = True
        return bytes(out)


class Event:
    __slots__ = ("id", "type", "data", "retry", "raw")

    def __init__(self):
        self.id = None
        self.type = None
        self.data = None     # lines joined with "\n"; None when the event had no data field
        self.retry = None
        self.raw = b""       # the event's lines as received (line ends normalised to LF)

    def __repr__(self):
        return f"Event(id={self.id!r}, type={self.type!r}, retry={self.retry!r}, data={short(self.data, 120)})"


class SSEParser:
    """Incremental text/event-stream parser (WHATWG rules: CR, LF and CRLF end lines; an empty
    line ends an event; ':' starts a comment; one space after the colon is dropped). Unlike a
    browser it reports every event that had a field (even without data) and keeps comments, so
    tests can see heartbeats. .saw_cr tells whether any CR appeared in the stream."""

    def __init__(self):
        self.buf = bytearray()
        self.comments = []
        self.saw_cr = False
        self.bytes = 0

    def feed(self, data):
        self.bytes += len(data)
        self.buf += data
        if b"\r" in self.buf:
            self.saw_cr = True
            keep_cr = self.buf.endswith(b"\r")  # its LF may be in the next read
            body = bytes(self.buf[:-1] if keep_cr else self.buf)
            body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            self.buf = bytearray(body + (b"\r" if keep_cr else b""))
        parts = bytes(self.buf).split(b"\n\n")
        if len(parts) == 1:
            return []
        rest = parts.pop()
        # "\n\n\n" leaves a lone "\n" in the rest; a blank line with no fields dispatches nothing.
        self.buf = bytearray(rest)
        events = []
        for block in parts:
            ev = self._block(block.lstrip(b"\n"))
            if ev is not None:
                events.append(ev)
        return events

    def _block(self, block):
        if not block:
            return None
        ev = None
        data = None
        for line in block.split(b"\n"):
            if not line:
                continue
            if line[:1] == b":":
                self.comments.append(line[1:].decode("utf-8", "replace"))
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if ev is None:
                ev = Event()
            v = value.decode("utf-8", "surrogateescape")
            if name == b"data":
                data = v if data is None else data + "\n" + v
            elif name == b"id":
                ev.id = v
            elif name == b"event":
                ev.type = v
            elif name == b"retry":
                ev.retry = v
        if ev is None:
            return None
        ev.data = data
        ev.raw = block + b"\n\n"
        return ev


class SSEStream:
    """A blocking subscriber on a raw socket: sends the GET, reads the response head, then
    decodes the stream as it arrives. .status .response (the head) .events .comments .eof"""

    def __init__(self, port, path=None, token=None, headers=None, timeout=10.0, rcvbuf=None):
        self.conn = HTTPConn(port, timeout, rcvbuf=rcvbuf)
        hdrs = {"Accept": "text/event-stream"}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        self.conn.send(self.conn.build("GET", path or sub_query(), hdrs))
        self.response = None
        self.events = []
        self.parser = SSEParser()
        self.comments = self.parser.comments
        self.decoder = None
        self.eof = False
        self.first_payload = None   # the first decoded bytes of the stream
        self.response = self.conn.read_head()
        self.status = self.response.status
        if self.status != 200:
            try:
                body = self._error_body()
            except (ConnectionClosed, socket.timeout, ValueError):
                body = b""
            self.response.body = body
            return
        if "chunked" in (self.response.header("transfer-encoding") or "").lower():
            self.decoder = ChunkedDecoder()
        if self.conn.buf:
            data = bytes(self.conn.buf)
            self.conn.buf.clear()
            self._feed(data)

    def _error_body(self):
        r = self.response
        deadline = time.monotonic() + self.conn.timeout
        if "chunked" in (r.header("transfer-encoding") or "").lower():
            dec = ChunkedDecoder()
            out = bytearray(dec.feed(bytes(self.conn.buf)))
            self.conn.buf.clear()
            while not dec.done and self.conn._fill(deadline):
                out += dec.feed(bytes(self.conn.buf))
                self.conn.buf.clear()
            return bytes(out)
        n = int(r.header("content-length") or 0)
        return self.conn.read_exact(n, deadline)

    def _feed(self, data):
        payload = self.decoder.feed(data) if self.decoder else data
        if payload and self.first_payload is None:
            self.first_payload = payload
        self.events.extend(self.parser.feed(payload))
        if self.decoder and self.decoder.done:
            self.eof = True

    def pump(self, timeout):
        """Reads what arrives within timeout; False once the stream ended."""
        if self.eof:
            return False
        self.conn.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.conn.sock.recv(262144)
        except socket.timeout:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self._feed(data)
        return True

    def wait(self, pred, timeout):
        """Pumps until pred(self) is true, the stream ends or timeout (scaled for sanitizer
        builds) passes; returns pred's last value."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            v = pred(self)
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return pred(self)
            self.pump(min(left, 0.5))

    def wait_open(self, timeout=10):
        """Waits for the first bytes of the stream (the opening comment)."""
        return self.wait(lambda s: s.first_payload is not None, timeout)

    def wait_id(self, id, timeout=10):
        return self.wait(lambda s: next((e for e in s.events if e.id == id), None), timeout)

    def wait_count(self, n, timeout=10):
        return self.wait(lambda s: len(s.events) >= n, timeout)

    def wait_eof(self, timeout=10):
        return self.wait(lambda s: s.eof, timeout)

    def ids(self):
        return [e.id for e in self.events]

    def close(self):
        self.conn.close()


def raw_subscriber(port, path, rcvbuf=None, timeout=10.0):
    """A blocking socket that sent a subscription request (GET path) and has read nothing yet.
    rcvbuf: SO_RCVBUF, set before connecting so that the TCP window stays that small; timeout:
    the socket's timeout in seconds (not scaled)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode())
    return s


def stuck_subscriber(port, path):
    """A subscriber that never reads: a 4 KiB receive buffer set before connecting (so the
    window stays small), the GET sent, and nothing ever received."""
    return raw_subscriber(port, path, rcvbuf=4096, timeout=10)


def read_past_terminator(stream, timeout, read_timeout):
    """For an SSEStream the hub ends: waits up to timeout (scaled, as SSEStream.wait does) for
    the end of the stream (the chunked terminator), then reads the socket until the hub's FIN,
    for up to read_timeout seconds (not scaled), and after a clean end closes it (our FIN, as a
    well-behaved client sends it). Returns (how the connection ended: 'eof' | 'reset' |
    'timeout' | 'no terminator', the bytes that came after the terminator)."""
    if not stream.wait_eof(timeout):
        return "no terminator", b""
    trailing = bytes(stream.decoder.pending) if stream.decoder else b""
    how, more = read_until_end(stream.conn.sock, read_timeout)
    if how == "eof":
        stream.close()
    return how, trailing + more


def stream_end_state(stream, trailing):
    """(whole, detail) for the end of an SSEStream read by read_past_terminator: whole is True
    when the chunked terminator arrived, the parser holds no partial event and no byte came
    after the terminator (trailing); detail says what was seen, for a failure message."""
    done = stream.decoder.done if stream.decoder else None
    whole = bool(done) and not trailing and not stream.parser.buf.strip(b"\n")
    return whole, (f"terminator {done}, parser tail {bytes(stream.parser.buf[:60])!r}, "
                   f"after it {trailing[:60]!r}")


class AsyncSubscriber:
    """A non-blocking subscriber driven by a Swarm: connect, send the GET, parse the head, then
    decode the stream. on_event(sub, event) is called for each event (default: appended to
    .events). .state: connecting | head | stream | closed; .error explains a failure.

    A subclass may override the hooks on_head, on_last_chunk and on_end (below) to refuse a
    stream, to keep reading after the chunked terminator, or to tell how the socket ended."""

    def __init__(self, port, path, token=None, on_event=None, rcvbuf=None):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setblocking(False)
        hdrs = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        if token:
            hdrs.append(f"Authorization: Bearer {token}")
        self.out = ("\r\n".join(hdrs) + "\r\n\r\n").encode()
        self.buf = bytearray()
        self.state = "connecting"
        self.response = None
        self.decoder = None
        self.parser = SSEParser()
        self.events = []
        self.count = 0
        self.opened = False       # first stream bytes arrived
        self.error = None
        self.on_event = on_event
        self.paused = False       # a paused subscriber is not read (a slow consumer)
        self.bytes = 0
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, 115):   # EINPROGRESS
            self.fail(f"connect: {os.strerror(err)}")

    def fail(self, why):
        if self.state != "closed":
            self.error = self.error or why
            self.state = "closed"
            try:
                self.sock.close()
            except OSError:
                pass

    def on_writable(self):
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.fail(f"connect: {os.strerror(err)}")
            return
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(f"send: {e}")
            return
        self.out = self.out[n:]
        if not self.out:
            self.state = "head"

    def on_readable(self):
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as e:
            self.on_end(e)
            return
        if not data:
            self.on_end(None)
            return
        self.bytes += len(data)
        if self.state == "head":
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            rest = bytes(self.buf[end + 4:])
            self.buf = bytearray()
            m = re.match(r"HTTP/\d\.\d (\d{3})", head[0])
            headers = [(k, v.strip()) for k, _, v in (h.partition(":") for h in head[1:])]
            self.response = Response("HTTP/1.1", int(m.group(1)) if m else 0, "", headers)
            if self.response.status != 200:
                self.fail(f"status {head[0]!r}")
                return
            if "chunked" in (self.response.header("transfer-encoding") or "").lower():
                self.decoder = ChunkedDecoder()
            self.on_head()
            if self.state == "closed":
                return
            self.state = "stream"
            data = rest
            if not data:
                return
        try:
            payload = self.decoder.feed(data) if self.decoder else data
        except ValueError as e:
            self.fail(f"chunked framing: {e}")
            return
        if payload:
            self.opened = True
            for ev in self.parser.feed(payload):
                self.count += 1
                if self.on_event:
                    self.on_event(self, ev)
                else:
                    self.events.append(ev)
        if self.decoder and self.decoder.done:
            self.on_last_chunk()

    # Hooks for subclasses. The defaults: any 200 stream is read, it ends at the terminator.

    def on_head(self):
        """Called once the head of a 200 response is parsed (.response and, for a chunked
        stream, .decoder are set); a subclass may refuse the stream here with fail()."""

    def on_last_chunk(self):
        """Called after each read once the chunked terminator has arrived. By default the
        subscriber is done and closes its socket; a subclass that keeps reading finds every
        byte received after the terminator in .decoder.pending (the decoder decodes no more)."""
        self.fail("last chunk received")

    def on_end(self, error):
        """Called when the socket ends while the subscriber still reads it: error is None at
        end-of-stream (recv returned b''), else the OSError that recv raised."""
        self.fail("end of stream" if error is None else f"recv: {error}")


class Swarm:
    """Many AsyncSubscribers in one selector loop."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.subs = []
        self.mask = {}

    def add(self, sub):
        self.subs.append(sub)
        if sub.state != "closed":
            self.sel.register(sub.sock, selectors.EVENT_WRITE, sub)
            self.mask[sub] = selectors.EVENT_WRITE

    def _sync(self, sub):
        want = 0
        if sub.state == "connecting":
            want = selectors.EVENT_WRITE
        elif sub.state in ("head", "stream") and not sub.paused:
            want = selectors.EVENT_READ
        have = self.mask.get(sub, 0)
        if want == have:
            return
        if have:
            try:
                self.sel.unregister(sub.sock)
            except (KeyError, ValueError, OSError):
                pass
        if want:
            self.sel.register(sub.sock, want, sub)
            self.mask[sub] = want
        else:
            self.mask.pop(sub, None)

    def poll(self, timeout):
        for key, ev in self.sel.select(timeout):
            sub = key.data
            if ev & selectors.EVENT_WRITE and sub.state == "connecting":
                sub.on_writable()
            elif ev & selectors.EVENT_READ:
                sub.on_readable()
            self._sync(sub)

    def run(self, until, timeout, check_every=0.1):
        """Polls until until() is true or timeout (scaled for sanitizer builds) passes; returns
        until()'s last value."""
        for sub in self.subs:
            self._sync(sub)
        deadline = time.monotonic() + timeout * SLOW
        next_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                v = until()
                if v:
                    return v
                if now >= deadline:
                    return v
                next_check = now + check_every
            self.poll(min(check_every, max(deadline - now, 0.001)))

    def close(self):
        for sub in self.subs:
            try:
                self.sel.unregister(sub.sock)
            except (KeyError, ValueError, OSError):
                pass
            try:
                sub.sock.close()
            except OSError:
                pass
        self.sel.close()


# ---------------------------------------------------------------------------------------------
# Prometheus text


def parse_metrics(text):
    """{'name{labels}': float} for every sample line of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def metric(samples, name):
    """The value of an unlabelled sample, or the sum over its labelled samples; None if absent."""
    if name in samples:
        return samples[name]
    vals = [v for k, v in samples.items() if k.startswith(name + "{")]
    return sum(vals) if vals else None


def publish_many(port, topic, uids, data, batch=50):
    """Publishes one update per id, pipelined batch at a time on one connection; all must be 200
    (an AssertionError names the first refusals). Returns the ids."""
    conn = HTTPConn(port)
    hdrs = {"Authorization": f"Bearer {mint_token()}",
            "Content-Type": "application/x-www-form-urlencoded"}
    for k in range(0, len(uids), batch):
        part = uids[k:k + batch]
        conn.send(b"".join(conn.build("POST", HUB_PATH, hdrs,
                                      form(publish_fields(topic, data=data, id=u)))
                           for u in part))
        got = [conn.read_response("POST") for _ in part]
        bad = [(r.status, r.text) for r in got if r.status != 200]
        if bad:
            raise AssertionError(f"publishes refused: {bad[:3]}")
    conn.close()
    return list(uids)
