"""test_handoff_container — a live upgrade where sluice is the first process of its PID namespace,
as in a container started from deploy/Dockerfile (no --init).

The kernel ends a PID namespace when its first process exits, so that sluice must not exit after
handing over: it stays as the namespace's init, forwards signals to the sluice that serves, and
exits with its status. Run under `unshare --pid --fork --mount-proc` (needs CAP_SYS_ADMIN; the
test is skipped, saying so, where unshare is refused). 30 subscribers and a publisher at 20/s
throughout. Asserted: SIGUSR2 to the first process upgrades (a new process logs that it took over
the streams) and the first process stays; a second SIGUSR2 to it is passed on and upgrades
again; no stream ends and every acknowledged update arrives once, in order; then SIGTERM to the
first process drains every stream (close frame and terminator) and the namespace ends with
exit 0.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402
import handofftest as hx  # noqa: E402

t = ht.Checker("test_handoff_container")
SUBS = 30
TOPICS = ["urn:handoff:ns"]


def took_over_count(hub):
    return len(hx.TOOK_OVER_RE.findall(hub.log_text()))


def test_pid_namespace():
    unshare = shutil.which("unshare")
    if not unshare:
        print("skip: unshare (util-linux) is not installed", flush=True)
        return
    probe = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        print(f"skip: this test needs a new PID namespace, and unshare was refused here: "
              f"{probe.stderr.strip()}", flush=True)
        return
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-ns-")
    port = ht.free_port()
    args = ht.hub_args(port, anonymous=True, extra=["--pid-file", os.path.join(tmp, "sluice.pid")],
                       workers=2, heartbeat=0, drain_delay=0)
    fd, log_path = tempfile.mkstemp(prefix="sluice-hub-ns-", suffix=".log")
    proc = subprocess.Popen([unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "--"]
                            + args, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                            env=ht.base_env(), preexec_fn=ht._die_with_parent)
    os.close(fd)
    hub = ht.Hub(proc, port, log_path, args)   # proc: unshare, which exits with PID 1's status
    ht._hubs.append(hub)
    ht._started.append(hub)

    def up():
        try:
            return ht.request(port, "GET", "/healthz", timeout=2).status == 200
        except OSError:
            return False
    if not t.check(ht.wait_until(up, 20 * ht.SLOW) and proc.poll() is None,
                   "sluice serves as PID 1 of a new PID namespace", hub.log_tail(10)):
        return
    kids = hx.children_of(proc.pid)
    if not t.check(len(kids) == 1, "unshare has one child, the namespace's first process", kids):
        return
    first = kids[0]
    load = hx.Load(t, port, SUBS, TOPICS)
    if not load.ok_open():
        return
    load.start()
    load.sleep(1)
    for k in (1, 2):
        before = took_over_count(hub)
        os.kill(first, signal.SIGUSR2)
        done = load.run(lambda: took_over_count(hub) > before or not hx.alive(first), 30)
        load.sleep(1)
        t.check(done and took_over_count(hub) > before, f"upgrade {k}: SIGUSR2 to the first "
                "process, a new process took over" + (" (the signal passed on to the sluice "
                                                     "that serves)" if k == 2 else ""),
                hub.log_tail(8))
        t.check(hx.alive(first) and proc.poll() is None, f"upgrade {k}: the first process stays "
                "(its exit would end the namespace)", hub.log_tail(8))
        ended = [s for s in load.subs if s.ended()]
        t.check(not ended, f"upgrade {k}: no stream ended",
                ended[0].how_ended() if ended else "")
    caught_up = load.stop()
    t.check(caught_up, "every subscriber caught up with the last acknowledged update")
    load.judge("subscribers through two upgrades in a PID namespace")
    t_term = time.monotonic()
    os.kill(first, signal.SIGTERM)
    load.run(lambda: all(s.ended() for s in load.subs), 30)
    rc = ht.wait_exit(proc, 30 * ht.SLOW)
    hub.rc = rc
    if hub in ht._hubs:
        ht._hubs.remove(hub)
    closed = [s for s in load.subs if s.closes == 1 and s.terminated]
    t.check(len(closed) == SUBS, f"SIGTERM to the first process: all {SUBS} streams drained "
            "(close frame and terminator)", f"{SUBS - len(closed)} not; e.g. "
            f"{next((s.how_ended() for s in load.subs if s not in closed), '')}")
    t.check(rc == 0, f"the namespace ends with exit 0 ({time.monotonic() - t_term:.1f} s after "
            "SIGTERM)", f"exit {rc}; log tail:\n{hub.log_tail(10)}")
    load.close()


t.section("upgrades of a sluice that is PID 1", test_pid_namespace)
strays = hx.reap_strays()
t.check(not strays, "no process of ours was left running", strays)
t.finish()
