"""handofftest — what the live hand-off tests (test_handoff*.py) share: starting a hub that can be
upgraded (--pid-file, --exec, --upgrade-timeout), sending it SIGUSR2 and following the upgrade to
the new process, keeping that new process as a Hub this test owns (it becomes our child: the test
process is a child subreaper), subscribers that remember when each update arrived and how their
stream ended, steady publishers that keep publishing through an upgrade, and the judge that says
whether every subscriber got every acknowledged update once, in order.

The interface under test (issue 15): SIGUSR2 starts the binary of --exec (default: the hub's own)
with the same arguments; the new process logs `upgrade: took over N connections (S streams) and L
listening sockets from pid P` and rewrites the pid file; the old one exits 0. On failure the old
one logs `upgrade failed: <why>; still serving`. `sluice upgrade --pid-file F` is the front end.

Like hubtest.py, it owns no assertion: the checks live in the test files. Standard library only.
"""

import ctypes
import os
import re
import signal
import subprocess
import threading
import time

import hubtest as ht

PR_SET_CHILD_SUBREAPER = 36

TOOK_OVER_RE = re.compile(r"upgrade: took over (\d+) connections \((\d+) streams\) and (\d+) "
                          r"listening sockets from pid (\d+)")
FAILED_RE = re.compile(r"upgrade failed: (.*?); still serving")


def become_subreaper():
    """Makes this process a child subreaper: a hub's new process, orphaned when the old one
    exits, becomes our child, so that its exit status can be collected. True on success."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


SUBREAPER = become_subreaper()


# ---------------------------------------------------------------------------------------------
# Processes that are not Popen objects: the new hub of an upgrade


class PidProc:
    """The part of subprocess.Popen that ht.Hub uses, for a process this test did not start
    itself (a hub's new process, our child once its parent exited). Exit codes follow Popen's
    convention (negative: killed by that signal); None while it runs, or while it is not yet
    our child and still exists."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            # Not (yet) our child: its parent still runs, or someone else collected it.
            if os.path.exists(f"/proc/{self.pid}"):
                return None
            self.returncode = -255    # gone, status unknown
            return self.returncode
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.send_signal(signal.SIGKILL)


def adopt_hub(old, pid):
    """A ht.Hub for the new process pid that took over from the hub old (same port, same log
    file: the new process inherits stdout and stderr), registered so that the test's end stops
    it and looks at its log."""
    hub = ht.Hub(PidProc(pid), old.port, old.log_path, old.args)
    hub.key = getattr(old, "key", ht.KEY)
    hub.pid_file = getattr(old, "pid_file", None)
    ht._hubs.append(hub)
    ht._started.append(hub)
    return hub


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def children_of(pid):
    """Pids whose parent is pid (from /proc/*/stat)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(name))
    return out


def reap_strays(known=()):
    """Kills and collects every child of this test process that is not a hub it knows (a hung
    new binary orphaned by a failed upgrade, say); returns [(pid, command line)] of those."""
    found = []
    known = set(known) | {h.pid for h in ht._hubs}
    for pid in children_of(os.getpid()):
        if pid in known:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        if "sluice" not in cmd and "sleep" not in cmd and "sh" not in cmd:
            continue    # not ours to judge (e.g. nginx, redis, curl the test manages itself)
        found.append((pid, cmd))
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass
    return found


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Starting an upgradable hub, and upgrading it


def start_hub(t, tmpdir, exec_path=None, upgrade_timeout=None, **flags):
    """ht.start_hub with --pid-file (in tmpdir) and, when given, --exec and --upgrade-timeout.
    When the daemon refuses those options (the feature is missing), a failed check says so and
    the hub is started without them, so that the test goes on as far as it can. hub.pid_file is
    the pid file's path (None without the option)."""
    pid_file = os.path.join(tmpdir, "sluice.pid")
    up = dict(pid_file=pid_file, exec=exec_path, upgrade_timeout=upgrade_timeout)
    try:
        hub = ht.start_hub(**up, **flags)
    except ht.HubError as e:
        t.check(False, "the daemon accepts --pid-file, --exec and --upgrade-timeout", str(e)[-600:])
        hub = ht.start_hub(**flags)
        hub.pid_file = None
        return hub
    hub.pid_file = pid_file
    # The daemon writes its pid file once it serves, just after it starts answering: a slow
    # (sanitized) build may answer /healthz an instant before the file is there.
    ht.wait_until(lambda: read_pid(pid_file) == hub.pid, 10 * ht.SLOW)
    return hub


class Upgrade:
    """The outcome of one SIGUSR2: .old_rc (None: the old process still runs), .new (a ht.Hub for
    the new process, or None), .new_pid, .seconds (signal to the old process's exit, or to the
    end of the wait), .took_over (the new process's log line as (connections, streams,
    listeners, from pid), or None), .failed (the old one's `upgrade failed` reason, or None)."""

    old_rc = None
    new = None
    new_pid = None
    seconds = None
    took_over = None
    failed = None

    def __repr__(self):
        return (f"Upgrade(old_rc={self.old_rc}, new_pid={self.new_pid}, seconds={self.seconds}, "
                f"took_over={self.took_over}, failed={self.failed!r})")


def log_matches(hub, regex, after=0):
    return list(regex.finditer(hub.log_text()[after:]))


def upgrade(hub, timeout=None, sig_at=None, expect_success=True, exited_at=None):
    """Sends SIGUSR2 to hub (unless sig_at, the monotonic time it was sent already) and waits,
    up to timeout seconds (scaled for sanitizer builds), until the old process exited and the pid
    file names another live process, or (expect_success False) until the old one logged
    `upgrade failed`. exited_at: when the caller saw the old process exit (for .seconds).
    Returns an Upgrade."""
    timeout = (timeout or 30) * ht.SLOW
    log_from = len(hub.log_text())
    if sig_at is None:
        sig_at = time.monotonic()
        hub.proc.send_signal(signal.SIGUSR2)
    res = Upgrade()
    # From the signal, or (sent earlier by the caller, who may have waited already) from now.
    deadline = max(sig_at, time.monotonic()) + timeout
    old_pid = hub.pid
    while time.monotonic() < deadline:
        m = log_matches(hub, FAILED_RE, log_from)
        if m:
            res.failed = m[-1].group(1)
            if not expect_success:
                break
        rc = hub.proc.poll()
        if rc is not None:
            res.old_rc = rc
            break
        time.sleep(0.01)
    res.seconds = (exited_at or time.monotonic()) - sig_at
    if res.old_rc is not None:
        hub.rc = res.old_rc
        if hub in ht._hubs:
            ht._hubs.remove(hub)
        # The pid file names the new process (it rewrote it once it took over).
        new_pid = None
        if hub.pid_file:
            new_pid = ht.wait_until(lambda: (lambda p: p if p and p != old_pid and alive(p)
                                             else None)(read_pid(hub.pid_file)), 5 * ht.SLOW)
        if new_pid is None:
            # Without a pid file: the one hub-like child we inherited, if any.
            kids = [p for p in children_of(os.getpid()) if p not in {h.pid for h in ht._hubs}]
            new_pid = kids[0] if len(kids) == 1 else None
        if new_pid:
            res.new_pid = new_pid
            res.new = adopt_hub(hub, new_pid)
    # The new process's line names the old pid (the log file holds every upgrade of the test).
    m = ht.wait_until(lambda: [x for x in log_matches(hub, TOOK_OVER_RE)
                               if int(x.group(4)) == old_pid], 2 if res.new else 0.01)
    if m:
        res.took_over = tuple(int(x) for x in m[-1].groups())
    print(f"info upgrade of pid {old_pid}: {res}", flush=True)
    return res


def check_upgraded(t, hub, res, what="", streams=None, listeners=None):
    """The checks every successful upgrade shares. Returns the new hub, or None."""
    p = f"{what}: " if what else ""
    t.check(res.old_rc == 0, f"{p}the old pid {hub.pid} exits 0 after SIGUSR2 "
            f"({res.seconds:.2f} s)" if res.seconds is not None else f"{p}the old pid exits 0",
            f"exit code {res.old_rc} (-12: SIGUSR2's default action, the feature is missing; "
            f"None: still running); {res}; log tail:\n{hub.log_tail(15)}")
    if not t.check(res.new is not None and alive(res.new_pid),
                   f"{p}a new pid serves, named by the pid file",
                   f"pid file {read_pid(hub.pid_file) if hub.pid_file else 'none'}; {res}"):
        return None
    t.check(res.new_pid != hub.pid, f"{p}the new pid differs from the old one")
    # One listening socket per worker (SO_REUSEPORT), unless the test says how many.
    ok = (res.took_over is not None and res.took_over[3] == hub.pid
          and (res.took_over[2] == listeners if listeners else res.took_over[2] >= 1))
    if streams is not None and res.took_over is not None:
        ok = ok and res.took_over[1] == streams
    t.check(ok, f"{p}the new process logs `upgrade: took over N connections (S streams) and "
            f"{listeners or 'L'} listening sockets from pid {hub.pid}`"
            + (f" with S = {streams}" if streams is not None else ""),
            f"took over {res.took_over}; log tail:\n{hub.log_tail(10)}")
    t.check(not alive(hub.pid), f"{p}the old pid is gone: only the new one serves")
    return res.new


def clean_stop(t, hub, what="the final hub exits 0 on SIGTERM (and the sanitizers found nothing)"):
    if hub is not None:
        t.stop_hub(hub, what)


def write_script(path, body):
    """An executable /bin/sh script (a stand-in new binary for --exec)."""
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return path


# ---------------------------------------------------------------------------------------------
# Subscribers and publishers


class UpSub(ht.AsyncSubscriber):
    """A subscriber for ht.Swarm that keeps, per update, its id and its arrival time (monotonic)
    and the send time written in its data by SteadyPublisher (`<id>|<monotonic send time>`), and
    records how the stream ended, if it did: .end (None while open), .closes (close events),
    .terminated (chunked terminator seen). It keeps reading after a terminator, so that nothing
    that follows is missed."""

    def __init__(self, port, path, topic, token=None, resume_from=None):
        super().__init__(port, path, token=token, on_event=UpSub._record)
        self.topic = topic
        self.resume_from = resume_from
        self.ids = []
        self.times = []
        self.latency = []    # (send time, receive time) per update with a send time
        self.closes = 0
        self.terminated = False
        self.end = None
        self.bad_data = 0

    def _record(self, ev):
        now = time.monotonic()
        if ev.type == "close":
            self.closes += 1
            return
        if ev.id is None:
            return
        self.ids.append(ev.id)
        self.times.append(now)
        data = ev.data or ""
        name, _, sent = data.partition("|")
        if name != ev.id:
            self.bad_data += 1
        try:
            self.latency.append((float(sent), now))
        except ValueError:
            pass

    def on_last_chunk(self):
        self.terminated = True

    def on_end(self, error):
        self.end = "eof" if error is None else f"{type(error).__name__}: {error}"
        self.fail(self.end)

    def ended(self):
        return self.end is not None or self.terminated or self.closes > 0 or (
            self.state == "closed")

    def how_ended(self):
        return (f"end {self.end!r}, terminator {self.terminated}, close events {self.closes}, "
                f"error {self.error!r}")


def raw_publish(port, token, topic, id_, data):
    body = ht.form(ht.publish_fields(topic, data=data, id=id_))
    return (f"POST {ht.HUB_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class SteadyPublisher(threading.Thread):
    """Publishes `<prefix><n>` round-robin over topics at a steady rate (per second) until
    stopped or max_count publishes, in its own thread. fresh=False: one keep-alive connection
    (re-opened if it breaks, which is counted); fresh=True: a new connection for every publish
    (so that some arrive while the listener changes hands). Each publish is answered before the
    next is sent. .acked[topic]: ids answered 200, in order; .maybe: ids whose answer never came
    (the connection ended; they may or may not have been accepted); .refused: (id, status, body);
    .breaks: connection ends seen; .on_ack(n): called after each 200 with the count so far."""

    def __init__(self, port, token, topics, prefix, rate, max_count=5000, fresh=False,
                 on_ack=None, timeout=20.0):
        super().__init__(daemon=True)
        self.port = port
        self.token = token
        self.topics = list(topics)
        self.prefix = prefix
        self.interval = 1.0 / rate
        self.max_count = max_count
        self.fresh = fresh
        self.on_ack = on_ack
        self.timeout = timeout
        self.stop_flag = threading.Event()
        self.acked = {tp: [] for tp in self.topics}
        self.order = []        # (id, topic) of every 200, in order
        self.maybe = set()
        self.refused = []
        self.breaks = []
        self.slowest = 0.0     # longest time one publish waited for its answer
        self.slowest_at = None
        self.count = 0
        self.error = None

    def stop(self):
        self.stop_flag.set()

    def run(self):
        conn = None
        nxt = time.monotonic()
        try:
            for n in range(self.max_count):
                if self.stop_flag.is_set():
                    break
                topic = self.topics[n % len(self.topics)]
                id_ = f"{self.prefix}{n}"
                sent = time.monotonic()
                req = raw_publish(self.port, self.token, topic, id_, f"{id_}|{sent:.6f}")
                try:
                    if conn is None:
                        conn = ht.HTTPConn(self.port, timeout=self.timeout)
                    conn.send(req)
                    resp = conn.read_response("POST")
                except (ht.ConnectionClosed, OSError) as e:
                    self.maybe.add(id_)
                    self.breaks.append((id_, repr(e)))
                    if conn:
                        conn.close()
                    conn = None
                    if len(self.breaks) > 20:
                        self.error = f"gave up after {len(self.breaks)} broken connections"
                        break
                    self.stop_flag.wait(0.05)
                    continue
                took = time.monotonic() - sent
                if took > self.slowest:
                    self.slowest, self.slowest_at = took, sent
                if resp.status == 200:
                    self.acked[topic].append(id_)
                    self.order.append((id_, topic))
                    self.count += 1
                    if self.on_ack:
                        self.on_ack(self.count)
                else:
                    self.refused.append((id_, resp.status, resp.text[:200]))
                if self.fresh or (resp.header("connection") or "").lower() == "close":
                    conn.close()
                    conn = None
                nxt = max(nxt + self.interval, time.monotonic() - self.interval)
                delay = nxt - time.monotonic()
                if delay > 0:
                    self.stop_flag.wait(delay)
        except Exception as e:  # reported by the test, never silently
            self.error = repr(e)
        finally:
            if conn:
                conn.close()


def expected_for(sub, publishers, before=None):
    """The ids sub must receive from the publishers, in each publisher's order: everything
    acknowledged for its topic (plus, before them, the ids of `before[topic]` after its resume
    point when it resumed)."""
    out = {}
    for pub in publishers:
        out[pub.prefix] = list(pub.acked.get(sub.topic, []))
    if before is not None:
        pre = before.get(sub.topic, [])
        if sub.resume_from is not None:
            pre = pre[pre.index(sub.resume_from) + 1:]
        else:
            pre = []
        out[""] = pre
    return out


def judge(t, subs, publishers, before=None, label="subscribers", must_stay_open=True):
    """One check per property over every subscriber, naming the first offenders: every
    acknowledged update of its topic arrived once and in order (per publisher), the data matched
    the id, nothing foreign; and (must_stay_open) no stream ended: no EOF, no reset, no close
    event, no terminator."""
    bad = {"order": [], "data": [], "open": []}
    prefixes = [p.prefix for p in publishers]
    maybe = set().union(*(p.maybe for p in publishers)) if publishers else set()
    for i, s in enumerate(subs):
        want = expected_for(s, publishers, before)
        got = {k: [] for k in want}
        foreign = []
        for id_ in s.ids:
            if id_ in maybe:
                continue
            key = next((p for p in prefixes if id_.startswith(p)), None)
            if key is None and before is not None:
                key = ""
            if key is None or key not in got:
                foreign.append(id_)
            else:
                got[key].append(id_)
        for k in want:
            if got[k] != want[k]:
                w, g = want[k], got[k]
                first = next((j for j, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
                dup = len(g) - len(set(g))
                bad["order"].append(f"#{i} ({s.topic}, {k or 'history'}): {len(g)} of {len(w)}, "
                                    f"{dup} duplicates, first difference at {first}: got "
                                    f"{g[first:first + 2]} want {w[first:first + 2]}")
                break
        else:
            if foreign:
                bad["order"].append(f"#{i}: foreign ids {foreign[:3]}")
        # An id whose publish got no answer may arrive at most once.
        for m in maybe:
            if s.ids.count(m) > 1:
                bad["order"].append(f"#{i}: {m} (answer lost) arrived {s.ids.count(m)} times")
        if s.bad_data:
            bad["data"].append(f"#{i}: {s.bad_data}")
        if must_stay_open and s.ended():
            bad["open"].append(f"#{i}: {s.how_ended()}")
    n = len(subs)
    t.check(not bad["order"], f"all {n} {label}: every acknowledged update arrived once, in order",
            f"{len(bad['order'])} failed; " + "; ".join(bad["order"][:4]))
    t.check(not bad["data"], f"all {n} {label}: every update's data matched its id",
            "; ".join(bad["data"][:4]))
    if must_stay_open:
        t.check(not bad["open"], f"all {n} {label}: no stream ended (no EOF, reset, close event "
                "or terminator)", f"{len(bad['open'])} ended; " + "; ".join(bad["open"][:4]))
    return not any(bad.values())


def all_received(subs, publishers, before=None):
    """True once every subscriber has the last acknowledged id of each publisher for its topic
    (or ended)."""
    for s in subs:
        if s.ended():
            continue
        want = expected_for(s, publishers, before)
        have = set(s.ids[-50:]) if len(s.ids) > 50 else set(s.ids)
        for ids in want.values():
            if ids and ids[-1] not in have and ids[-1] not in s.ids:
                return False
    return True


def delivery_gap(subs, t_from, t_to):
    """(the largest time between consecutive updates any subscriber received with the later
    one in [t_from, t_to], the largest send-to-receive latency of updates sent in that window),
    in seconds."""
    gap = lat = 0.0
    for s in subs:
        for a, b in zip(s.times, s.times[1:]):
            if t_from <= b <= t_to and b - a > gap:
                gap = b - a
        for sent, got in s.latency:
            if t_from <= sent <= t_to and got - sent > lat:
                lat = got - sent
    return gap, lat


def baseline_latency(subs, t_to):
    lat = 0.0
    for s in subs:
        for sent, got in s.latency:
            if sent < t_to and got - sent > lat:
                lat = got - sent
    return lat


class Load:
    """A small steady load for the upgrade tests: n subscribers over topics (raw sockets in one
    ht.Swarm, read by whoever calls run()) and a SteadyPublisher on one keep-alive connection.
    Every wait in a test that holds a Load goes through run(), so the subscribers are read
    meanwhile."""

    def __init__(self, t, port, n, topics, rate=20, prefix="u", token=None, max_count=5000):
        self.t = t
        self.port = port
        self.topics = list(topics)
        self.token = token or ht.mint_token(publish=("*",), subscribe=())
        self.swarm = ht.Swarm()
        self.subs = []
        for i in range(n):
            tp = self.topics[i % len(self.topics)]
            s = UpSub(port, ht.sub_query([tp], param="topic"), tp)
            self.subs.append(s)
            self.swarm.add(s)
            if i % 100 == 99:
                self.swarm.run(lambda: False, 0.02)
        self.opened = self.swarm.run(lambda: all(s.opened or s.state == "closed"
                                                 for s in self.subs), 60)
        self.pub = SteadyPublisher(port, self.token, self.topics, prefix, rate,
                                   max_count=max_count)
        self.pubs = [self.pub]

    def ok_open(self, what=""):
        ended = [s for s in self.subs if s.ended()]
        return self.t.check(self.opened and not ended, f"{what}{len(self.subs)} subscribers "
                            "opened", f"{len(ended)} ended, e.g. "
                            f"{ended[0].how_ended() if ended else ''}")

    def start(self):
        self.pub.start()
        return self

    def run(self, pred, timeout):
        return self.swarm.run(pred, timeout)

    def sleep(self, seconds):
        end = time.monotonic() + seconds
        self.swarm.run(lambda: time.monotonic() >= end, seconds + 1)

    def acked(self):
        return self.pub.count

    def stop(self, catch_up=30):
        """Stops publishing and reads until every subscriber has the last acknowledged update
        (or catch_up seconds, scaled). True when all caught up."""
        for p in self.pubs:
            p.stop()
        for p in self.pubs:
            p.join(10 * ht.SLOW)
        return self.swarm.run(lambda: all_received(self.subs, self.pubs), catch_up)

    def judge(self, label="subscribers", must_stay_open=True):
        p = self.pub
        self.t.check(not p.refused and not p.maybe and p.error is None,
                     f"{label}: every publish ({p.count}) answered 200, none refused or lost",
                     f"refused {p.refused[:3]}, no answer {sorted(p.maybe)[:3]}, breaks "
                     f"{p.breaks[:2]}, error {p.error}")
        return judge(self.t, self.subs, self.pubs, label=label, must_stay_open=must_stay_open)

    def close(self):
        for p in self.pubs:
            p.stop()
        self.swarm.close()
