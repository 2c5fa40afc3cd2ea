"""test_embed — libsluice as an application uses it: installed, found with pkg-config, linked
into examples/embed.c, and driven over real sockets.

Steps:
 1. `cmake --install $SLUICE_BUILD --prefix TMP`; the installed sluice.pc (TMP/lib/pkgconfig or
    TMP/lib/<multiarch>/pkgconfig) must point into TMP, as it must for anyone who installs into
    a prefix other than the one configured.
 2. examples/embed.c is compiled with `gcc $(pkg-config --cflags --libs sluice)` against the
    installed shared library (an rpath to TMP's libdir; `ldd` must resolve libsluice.so.0 there)
    and, when the installed files allow it, with libsluice.a (as `pkg-config --static` says,
    else with the .pc's Requires.private linked shared; when neither links, a NOTE says why and
    only the shared variant runs). Under a sanitizer build the installed library is
    instrumented, so the example is compiled with the same -fsanitize= options too, and its
    stderr must hold no sanitizer report.
 3. A clean drain: two raw-socket subscribers; "publish" commands answer the ids the hub gave,
    and both subscribers receive those updates, in order; an invalid update is answered with
    sl_strerror's text; "shutdown 5": each stream ends with one close frame (retry: within the
    default reconnect spread, event: close, data: server_shutdown), the chunked terminator and a
    clean end-of-stream; the callback's report says 2 streams drained, 2 connections closed,
    0 forced; sl_hub_wait() returns 0 and the process exits 0.
 5. The application upgrades itself (sl_hub_handoff, the example's "handoff" command): it starts
    itself again with one end of a socket pair, hands the hub over and exits 0 ("handed pid N",
    an empty drain, "wait 0"), while the new process, reading the same stdin, serves the same
    port: two subscribers keep their streams (no close frame, no end), get the update published
    before and the one the new process publishes after, once each, in order; its drain then ends
    them as in step 3.
 4. A forced drain: a subscriber that never reads (4 KiB SO_RCVBUF) while about 3.4 MiB of
    updates are published (under the default 4 MiB max_queue, so it is never cut as a slow
    consumer), next to one that reads; "shutdown 1": the reader ends cleanly, the report says
    1 forced, sl_hub_wait() returns 1, the process exits 1, within 1 s + 1 s (times SLOW).

Environment as CTest sets it: SLUICE_BUILD (the build tree to install), SLUICE_SOURCE. Needs gcc
(or $CC) and pkg-config.
"""

import glob
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

EXAMPLE = os.path.join(ht.SOURCE, "examples", "embed.c")
TOPIC = "urn:embed:t"
SPREAD_MS = 5000            # SL_DEFAULT_RECONNECT_SPREAD: the example keeps the default
BIG = 60 * 1024             # bytes of data in one large update (the forced drain)
BIG_COUNT = 58              # 58 x 60 KiB = 3.4 MiB: below the default max_queue of 4 MiB
REPORT_RE = re.compile(r"drained streams_drained=(\d+) connections_closed=(\d+) "
                       r"updates_flushed=(\d+) forced=(\d+) seconds=([0-9.]+)$")

t = ht.Checker("test_embed")


# ---------------------------------------------------------------------------------------------
# Install and compile


class Build:
    """What steps 1 and 2 produced: .prefix, .pc_dir, .libdir, .instrumented (the sanitizer the
    installed library carries: "address", "thread" or None), .binaries [(label, path)] of the example, .slow."""

    def __init__(self, tmp):
        self.prefix = os.path.join(tmp, "prefix")
        self.tmp = tmp
        self.pc_dir = None
        self.libdir = None
        self.instrumented = None
        self.binaries = []
        self.slow = ht.SLOW


def pkg_config(build, *args, define_prefix=False):
    """Runs pkg-config with the installed .pc first on the search path; returns (rc, argv list
    of its output, stderr)."""
    env = dict(os.environ, PKG_CONFIG_PATH=build.pc_dir)
    cmd = ["pkg-config"]
    if define_prefix:
        cmd.append(f"--define-variable=prefix={build.prefix}")
    r = subprocess.run(cmd + list(args) + ["sluice"], capture_output=True, text=True, env=env,
                       timeout=30)
    return r.returncode, shlex.split(r.stdout), r.stderr.strip()


def outside_prefix(build, flags):
    """The -I and -L paths of flags that are neither inside the install prefix nor the system's
    (a dependency's own, such as hiredis's -I/usr/include/hiredis, which pkg-config adds from
    Requires.private)."""
    bad = []
    for f in flags:
        if f[:2] in ("-I", "-L") and len(f) > 2:
            path = os.path.realpath(f[2:])
            if path.startswith("/usr/"):
                continue
            if not (path + os.sep).startswith(os.path.realpath(build.prefix) + os.sep):
                bad.append(f)
    return bad


def compile_example(build, out, flags):
    """gcc the example with flags; returns CompletedProcess."""
    cc = os.environ.get("CC") or shutil.which("gcc") or "cc"
    cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"]
    if build.instrumented == "address":
        # The installed library is instrumented: the program must carry the same runtimes
        # (ASan insists on coming first in the initial library list).
        cmd += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                "-fno-omit-frame-pointer"]
    elif build.instrumented == "thread":
        cmd += ["-fsanitize=thread", "-fno-omit-frame-pointer"]
    cmd += [EXAMPLE, "-o", out] + flags
    print("info " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def install_and_compile(build):
    source_build = os.environ.get("SLUICE_BUILD") or ht.BUILD
    r = subprocess.run(["cmake", "--install", source_build, "--prefix", build.prefix],
                       capture_output=True, text=True, timeout=120)
    if not t.check(r.returncode == 0, f"cmake --install {source_build} --prefix TMP",
                   (r.stdout + r.stderr)[-2000:]):
        return
    pcs = glob.glob(os.path.join(build.prefix, "lib*", "**", "pkgconfig", "sluice.pc"),
                    recursive=True)
    if not t.check(len(pcs) == 1, "sluice.pc is installed under TMP/lib.../pkgconfig",
                   f"found {pcs}"):
        return
    build.pc_dir = os.path.dirname(pcs[0])
    build.libdir = os.path.dirname(build.pc_dir)
    print(f"info sluice.pc at {os.path.relpath(pcs[0], build.prefix)}", flush=True)
    t.check(os.path.isfile(os.path.join(build.prefix, "include", "sluice.h")),
            "sluice.h is installed under TMP/include")
    so = os.path.join(build.libdir, "libsluice.so")
    if not t.check(os.path.exists(so), "libsluice.so is installed next to pkgconfig/"):
        return
    with open(so, "rb") as f:
        data = f.read()
    build.instrumented = ("address" if b"__asan_init" in data
                          else "thread" if b"__tsan_init" in data else None)
    if build.instrumented:
        build.slow = max(build.slow, 4.0)
        print(f"info the installed library is instrumented ({build.instrumented} sanitizer "
              "build): the example is compiled with the same sanitizer", flush=True)
    if not t.check(shutil.which("pkg-config") is not None, "pkg-config is installed"):
        return

    rc, flags, err = pkg_config(build, "--cflags", "--libs")
    if not t.check(rc == 0 and "-lsluice" in flags,
                   "pkg-config --cflags --libs sluice answers with -lsluice", f"{rc} {err}"):
        return
    print(f"info pkg-config --cflags --libs sluice: {' '.join(flags)}", flush=True)
    bad = outside_prefix(build, flags)
    if not t.check(not bad, "the installed sluice.pc points into the install prefix",
                   f"{bad} are outside {build.prefix}: sluice.pc was configured with the "
                   "configure-time CMAKE_INSTALL_PREFIX, so `cmake --install --prefix` leaves "
                   "it pointing elsewhere"):
        # Go on as a user would work around it, so that the library itself is still tested.
        rc, flags, err = pkg_config(build, "--cflags", "--libs", define_prefix=True)
        print(f"NOTE going on with pkg-config --define-variable=prefix=TMP: {' '.join(flags)}",
              flush=True)
        if rc != 0 or outside_prefix(build, flags):
            return

    shared = os.path.join(build.tmp, "embed-shared")
    r = compile_example(build, shared, flags + [f"-Wl,-rpath,{build.libdir}"])
    if not t.check(r.returncode == 0, "the example compiles -Wall -Wextra -Werror and links "
                   "against the installed shared library", (r.stdout + r.stderr)[-3000:]):
        return
    ldd = subprocess.run(["ldd", shared], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"libsluice\.so\.\d+ => (\S+)", ldd)
    where = os.path.realpath(m.group(1)) if m else None
    if t.check(where is not None and where.startswith(os.path.realpath(build.libdir) + os.sep),
               "the example loads libsluice.so from the install prefix", ldd):
        build.binaries.append(("shared", shared))

    compile_static(build, define_prefix=bool(bad))


def link_failure(r):
    """The gist of a failed link: its undefined symbols, or its first error lines."""
    undefined = sorted(set(re.findall(r"undefined reference to `([^']+)'", r.stderr)))
    if undefined:
        return "undefined " + ", ".join(undefined[:8])
    return " / ".join(line for line in r.stderr.splitlines()
                      if "cannot find" in line or "error" in line)[:600]


def compile_static(build, define_prefix):
    """The example with libsluice.a. -l:libsluice.a picks the archive that -lsluice passes over
    for the shared library beside it. First as `pkg-config --static` says (every dependency's
    private libraries too), then, if that fails, with the archive's dependencies (the .pc's
    Requires.private) linked as shared libraries. The static variant is optional: a failure is
    a printed NOTE, not a failed check."""
    static = os.path.join(build.tmp, "embed-static")
    rc, flags, err = pkg_config(build, "--static", "--cflags", "--libs",
                                define_prefix=define_prefix)
    if rc == 0:
        r = compile_example(build, static, ["-l:libsluice.a" if f == "-lsluice" else f
                                            for f in flags])
        if r.returncode == 0:
            build.binaries.append(("static", static))
            return
        print(f"NOTE linking with `pkg-config --static --libs sluice` failed: {link_failure(r)}",
              flush=True)
    else:
        print(f"NOTE pkg-config --static failed: {err}", flush=True)
    rc, req, err = pkg_config(build, "--print-requires-private", define_prefix=define_prefix)
    rc2, cflags, _ = pkg_config(build, "--cflags", define_prefix=define_prefix)
    if rc or rc2:
        print(f"NOTE no static variant: pkg-config --print-requires-private failed: {err}",
              flush=True)
        return
    deps = subprocess.run(["pkg-config", "--libs"] + req, capture_output=True, text=True,
                          timeout=30)
    archive = os.path.join(build.libdir, "libsluice.a")
    r = compile_example(build, static, cflags + [archive] + shlex.split(deps.stdout))
    if r.returncode != 0:
        print(f"NOTE no static variant: libsluice.a with its Requires.private ({' '.join(req)}) "
              f"linked shared does not link either: {link_failure(r)}", flush=True)
        return
    build.binaries.append(("static", static))
    print("info the static variant linked (its dependencies as shared libraries)", flush=True)


# ---------------------------------------------------------------------------------------------
# The running example


class Embed:
    """The example running with pipes: command() writes one line, reply() reads one, a thread
    collects stdout lines; stderr (the hub's log) goes to a file."""

    def __init__(self, build, path):
        self.slow = build.slow
        self.log_path = os.path.join(build.tmp, f"embed-{os.path.basename(path)}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=ht.base_env(),
                                     preexec_fn=ht._die_with_parent)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = None

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)  # end of output

    def command(self, line):
        data = line if isinstance(line, bytes) else line.encode()
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout=10):
        """The next stdout line, or None at end of output or after timeout (times SLOW)."""
        try:
            return self.lines.get(timeout=timeout * self.slow)
        except queue.Empty:
            return None

    def start(self):
        """Reads the "port N" line; returns the port or None."""
        line = self.reply(20)
        m = re.fullmatch(r"port (\d+)", line or "")
        self.port = int(m.group(1)) if m else None
        return self.port

    def wait(self, timeout):
        """The exit code once the example exits by itself, or None after timeout seconds."""
        return ht.wait_exit(self.proc, timeout)

    def log_text(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def log_tail(self, n=20):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self):
        """Kills the example if it is still running (a failed test) and closes the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.log.close()


def parse_report(line):
    m = REPORT_RE.match(line or "")
    if not m:
        return None
    return {"drained": int(m.group(1)), "closed": int(m.group(2)), "flushed": int(m.group(3)),
            "forced": int(m.group(4)), "seconds": float(m.group(5))}


def wait_subscribers(port, n, slow):
    """True once the hub's /metrics counts n subscribers (their streams are registered)."""
    def count():
        return ht.metric(ht.parse_metrics(ht.request(port, "GET", "/metrics").text),
                         "sluice_subscribers")
    return ht.wait_until(lambda: count() == n, 10 * slow, interval=0.05)


def check_stream_end(stream, name, want_ids, slow):
    """The drain's promises for one SSEStream: every update once, in order; one close frame,
    last, with a retry: field; the chunked terminator, nothing after it; a clean EOF."""
    stream.wait(lambda s: any(e.type == "close" for e in s.events), 10)
    how, trailing = ht.read_past_terminator(stream, 10, 10 * slow)
    stream.close()  # the client is done with it, however it ended
    evs = stream.events
    t.eq([e.id for e in evs if e.type != "close"], want_ids,
         f"{name}: every published update arrived once, in order")
    last = evs[-1] if evs else None
    closes = [e for e in evs if e.type == "close"]
    t.check(len(closes) == 1 and last is closes[0] and last.data == "server_shutdown"
            and last.raw.startswith(b"retry: ") and (last.retry or "").isdigit()
            and 0 < int(last.retry) <= SPREAD_MS,
            f"{name}: the stream ends with one close frame: retry: (within {SPREAD_MS} ms), "
            "event: close, data: server_shutdown", f"last events {evs[-3:]}")
    whole, detail = ht.stream_end_state(stream, trailing)
    t.check(whole, f"{name}: chunked terminator, no partial frame, nothing after it", detail)
    t.eq(how, "eof", f"{name}: clean end-of-stream (FIN, not a reset) after the terminator")


def check_sanitizers(ex, label):
    log = ex.log_text()
    found = [m for m in ht.SANITIZER_MARKS if m in log]
    t.check(not found, f"{label}: the sanitizers found nothing", ex.log_tail(40))


# ---------------------------------------------------------------------------------------------
# 3. A clean drain


def test_clean_drain(build, label, path):
    ex = Embed(build, path)
    subs = []
    try:
        port = ex.start()
        if not t.check(port, f"{label}: the example prints the bound port",
                       f"log:\n{ex.log_tail()}"):
            return
        t.eq(ht.request(port, "GET", "/healthz").status, 200, f"{label}: /healthz answers 200")
        for _ in range(2):
            subs.append(ht.SSEStream(port, ht.sub_query([TOPIC], param="topic")))
        t.check(all(s.status == 200 and s.wait_open() for s in subs),
                f"{label}: two anonymous subscribers are open", [s.status for s in subs])
        t.check(wait_subscribers(port, 2, build.slow), f"{label}: the hub counts 2 subscribers")

        ids, datas = [], []
        for i in range(3):
            data = f"hello {i} from the application"
            ex.command(f"publish {TOPIC} {data}")
            answer = ex.reply()
            m = re.fullmatch(r"id (urn:uuid:[0-9a-f-]{36})", answer or "")
            if not t.check(m, f"{label}: publish {i} answers the generated id", answer):
                return
            ids.append(m.group(1))
            datas.append(data)
        ex.command(b"publish * reserved")
        answer = ex.reply()
        t.eq(answer, "error publish: Invalid argument",
             f"{label}: an update breaking a protocol rule is answered with sl_strerror's text")
        ex.command(b"hello")
        t.check((ex.reply() or "").startswith("error unknown command"),
                f"{label}: an unknown command is answered with an error line")

        for n, s in enumerate(subs):
            s.wait(lambda st: all(any(e.id == i for e in st.events) for i in ids), 10)
            got = [(e.id, e.data) for e in s.events]
            t.eq(got, list(zip(ids, datas)),
                 f"{label}: subscriber {n} received the updates with the returned ids, in order")

        # The probes above (/healthz, /metrics) each used a connection of its own, which the hub
        # may not have seen close yet on a busy machine: asked over one keep-alive connection,
        # the hub must count just the two streams and that connection before the drain, which
        # then ends all three.
        idle = ht.HTTPConn(port)
        ht.wait_until(lambda: ht.metric(ht.parse_metrics(idle.request("GET", "/metrics").text),
                                        "sluice_connections") == 3, 10 * build.slow,
                      interval=0.05)
        t0 = time.monotonic()
        ex.command("shutdown 5")
        for n, s in enumerate(subs):
            check_stream_end(s, f"{label}: subscriber {n}", ids, build.slow)
        report_line = ex.reply(10)
        report = parse_report(report_line)
        print(f"info {label}: {report_line}", flush=True)
        t.check(report is not None and report["drained"] == 2 and report["forced"] == 0,
                f"{label}: the shutdown callback reports 2 streams drained, 0 forced",
                report_line)
        t.check(report is not None and report["closed"] == 3,
                f"{label}: the report's connections_closed counts the 3 connections that ended "
                "during the drain (2 streams, 1 idle keep-alive)", report_line)
        t.check(idle.wait_closed(5 * build.slow), f"{label}: the drain ended the idle connection")
        idle.close()
        t.eq(ex.reply(10), "wait 0", f"{label}: sl_hub_wait() returns 0")
        rc = ex.wait(10 * build.slow)
        t.check(rc == 0, f"{label}: the example exits 0 ({time.monotonic() - t0:.2f} s after "
                "shutdown)", f"exit {rc}; log:\n{ex.log_tail()}")
        check_sanitizers(ex, label)
    finally:
        for s in subs:
            s.close()
        ex.stop()


# ---------------------------------------------------------------------------------------------
# 5. The application upgrades itself


def test_handoff(build, label, path):
    ex = Embed(build, path)
    subs = []
    try:
        port = ex.start()
        if not t.check(port, f"{label}: the example prints the bound port", ex.log_tail()):
            return
        for _ in range(2):
            subs.append(ht.SSEStream(port, ht.sub_query([TOPIC], param="topic")))
        t.check(all(s.status == 200 and s.wait_open() for s in subs) and
                wait_subscribers(port, 2, build.slow), f"{label}: two subscribers are open")
        ids = []
        ex.command(f"publish {TOPIC} before the upgrade")
        m = re.fullmatch(r"id (urn:uuid:[0-9a-f-]{36})", ex.reply() or "")
        if not t.check(m, f"{label}: the first update is published"):
            return
        ids.append(m.group(1))
        ex.command("handoff")
        lines = [ex.reply(20) for _ in range(4)]
        handed = [ln for ln in lines if ln and ln.startswith("handed pid ")]
        t.check(handed and f"port {port}" in lines and "wait 0" in lines and
                any(parse_report(ln) for ln in lines),
                f"{label}: the old process hands over and ends (handed, an empty drain, wait 0); "
                "the new one serves the same port", f"{lines}\n{ex.log_tail()}")
        rep = next((parse_report(ln) for ln in lines if parse_report(ln)), None)
        # (connections_closed may count a /metrics probe's connection the old process was still
        # ending: only streams and forced ones matter here.)
        t.check(rep is not None and rep["drained"] == 0 and rep["forced"] == 0,
                f"{label}: no stream was left to drain in the old process, none forced", lines)
        t.eq(ex.wait(10 * build.slow), 0, f"{label}: the old process exits 0")
        ex.command(f"publish {TOPIC} after the upgrade")
        m = re.fullmatch(r"id (urn:uuid:[0-9a-f-]{36})", ex.reply() or "")
        if not t.check(m, f"{label}: the new process publishes", ex.log_tail()):
            return
        ids.append(m.group(1))
        for n, st in enumerate(subs):
            st.wait(lambda x: len(x.events) >= 2, 10)
            t.eq([e.id for e in st.events], ids,
                 f"{label}: subscriber {n} got both updates on the same stream, once, in order")
            t.check(not any(e.type == "close" for e in st.events) and not st.eof,
                    f"{label}: subscriber {n}'s stream never ended")
        ex.command("shutdown 5")
        for n, st in enumerate(subs):
            check_stream_end(st, f"{label}: subscriber {n} (new process)", ids, build.slow)
        report = parse_report(ex.reply(10))
        t.check(report is not None and report["drained"] == 2 and report["forced"] == 0,
                f"{label}: the new process drains the 2 streams it took over")
        t.eq(ex.reply(10), "wait 0", f"{label}: its sl_hub_wait() returns 0")
        t.eq(ex.reply(10 * build.slow), None, f"{label}: the new process exits (its output ends)")
        check_sanitizers(ex, label)
    finally:
        for s in subs:
            s.close()
        ex.stop()


# ---------------------------------------------------------------------------------------------
# 4. A forced drain


def test_forced_drain(build, label, path):
    ex = Embed(build, path)
    stuck = reader = None
    try:
        port = ex.start()
        if not t.check(port, f"{label}: the example prints the bound port",
                       f"log:\n{ex.log_tail()}"):
            return
        stuck = ht.stuck_subscriber(port, ht.sub_query([TOPIC], param="topic"))
        reader = ht.SSEStream(port, ht.sub_query([TOPIC], param="topic"), timeout=20)
        t.check(reader.status == 200 and reader.wait_open(), f"{label}: the reader is open")
        if not t.check(wait_subscribers(port, 2, build.slow),
                       f"{label}: the hub counts 2 subscribers (the stuck one and the reader)"):
            return
        ids = []
        for i in range(BIG_COUNT):
            ex.command(f"publish {TOPIC} {'x' * BIG}")
            answer = ex.reply()
            m = re.fullmatch(r"id (\S+)", answer or "")
            if m is None:
                t.check(False, f"{label}: large update {i} is accepted", answer)
                return
            ids.append(m.group(1))
            if not reader.wait_id(m.group(1), 20):  # only the stuck subscriber falls behind
                t.check(False, f"{label}: the reader receives large update {i}")
                return
        t.check(True, f"{label}: {BIG_COUNT} large updates accepted and received by the reader")
        cut = ht.metric(ht.parse_metrics(ht.request(port, "GET", "/metrics").text),
                        "sluice_slow_consumer_disconnects_total")
        t.eq(cut, 0.0, f"{label}: {BIG_COUNT} updates of {BIG // 1024} KiB published; the stuck "
             "subscriber was not cut as a slow consumer")

        t0 = time.monotonic()
        ex.command("shutdown 1")
        exited = {}

        def waiter():
            exited["rc"] = ex.wait(30 * build.slow)
            exited["at"] = time.monotonic() - t0
        th = threading.Thread(target=waiter)
        th.start()
        check_stream_end(reader, f"{label}: reader", ids, build.slow)
        th.join(40 * build.slow)
        rc, took = exited.get("rc"), exited.get("at", float("inf"))
        report_line = ex.reply(5)
        report = parse_report(report_line)
        print(f"info {label}: {report_line}", flush=True)
        t.check(report is not None and report["forced"] == 1,
                f"{label}: the shutdown callback reports 1 forced", report_line)
        # The stuck stream counts as drained too when its close frame still fitted in the
        # kernel's send buffer (tcp_wmem allowing); the reader's always does.
        t.check(report is not None and report["drained"] in (1, 2),
                f"{label}: ... and the reader among the streams drained", report_line)
        t.eq(ex.reply(5), "wait 1", f"{label}: sl_hub_wait() returns 1")
        bound = 1.0 + 1.0 * build.slow
        t.check(rc is not None and took <= bound,
                f"{label}: the example exits {took:.2f} s after \"shutdown 1\", within "
                f"{bound:.0f} s", f"exit {rc}")
        t.check(rc == 1, f"{label}: the exit code is 1 (a connection was forced)",
                f"exit {rc}; log:\n{ex.log_tail()}")
        check_sanitizers(ex, label)
    finally:
        if stuck is not None:
            stuck.close()
        if reader is not None:
            reader.close()
        ex.stop()


# ---------------------------------------------------------------------------------------------


def main():
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="sluice-embed-")
    build = Build(tmp)
    try:
        t.section("install, pkg-config, compile the example", install_and_compile, build)
        if not build.binaries:
            t.check(False, "an example binary to run")
        for label, path in build.binaries:
            t.section(f"{label}: publish, then a clean drain", test_clean_drain, build, label,
                      path)
        for label, path in build.binaries[:1]:
            t.section(f"{label}: a subscriber that never reads is forced", test_forced_drain,
                      build, label, path)
            t.section(f"{label}: the application upgrades itself (sl_hub_handoff)",
                      test_handoff, build, label, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"info total {time.monotonic() - t0:.1f}s", flush=True)
    t.finish()


if __name__ == "__main__":
    main()
