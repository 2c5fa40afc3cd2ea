"""test_handoff_repeat — ten upgrades in a row under load: nothing leaks, every stream survives.

One hub (--history-size 200, so that the history handed over is the same size each time), 100
raw-socket subscribers over two topics and a publisher at 20 updates/s on one keep-alive
connection, all kept through ten SIGUSR2 upgrades, each sent once the previous new process has
served for 0.5 s. Asserted: each old pid exits 0 and its successor logs that it took over the 100
streams; every subscriber gets every acknowledged update once, in order, and no stream ends;
the publisher's connection survives and nothing is refused; the open file descriptors of the
final process (/proc/PID/fd) exceed those of the first new one by at most FD_SLACK, and its RSS
by at most RSS_SLACK_KIB (scaled for sanitizer builds). The series is printed.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402
import handofftest as hx  # noqa: E402

t = ht.Checker("test_handoff_repeat")
UPGRADES = 10
SUBS = 100
TOPICS = ["urn:handoff:repeat:a", "urn:handoff:repeat:b"]
FD_SLACK = 2             # descriptors: the same connections, listener and loops each time
RSS_SLACK_KIB = 8 * 1024  # a fresh process each time; only what the hand-over leaves behind


def test_ten_upgrades():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-repeat-")
    hub = hx.start_hub(t, tmp, anonymous=True, workers=2, heartbeat=0, history_size=200)
    first_fds = hx.fd_count(hub.pid)
    load = hx.Load(t, hub.port, SUBS, TOPICS)
    if not load.ok_open():
        return
    load.start()
    load.sleep(1)
    series = []      # (pid, fds, rss KiB, seconds)
    cur = hub
    for k in range(1, UPGRADES + 1):
        t_sig = time.monotonic()
        cur.proc.send_signal(hx.signal.SIGUSR2)
        load.run(lambda: cur.proc.poll() is not None, 30)
        res = hx.upgrade(cur, timeout=1, sig_at=t_sig, exited_at=time.monotonic())
        ok = (res.old_rc == 0 and res.new is not None and res.took_over is not None
              and res.took_over[1] == SUBS)
        if not t.check(ok, f"upgrade {k}: the old pid {cur.pid} exits 0, pid {res.new_pid} took "
                       f"over the {SUBS} streams", f"{res}; log tail:\n{cur.log_tail(8)}"):
            break
        cur = res.new
        load.sleep(0.5)
        series.append((cur.pid, hx.fd_count(cur.pid), hx.rss_kib(cur.pid), res.seconds))
    caught_up = load.stop()
    load.sleep(0.5)
    if series:
        series[-1] = (cur.pid, hx.fd_count(cur.pid), hx.rss_kib(cur.pid), series[-1][3])
    print("info after each upgrade (pid, open fds, RSS KiB, seconds from SIGUSR2 to the old "
          f"pid's exit); the first hub had {first_fds} fds:", flush=True)
    for row in series:
        print(f"info   {row[0]} {row[1]} {row[2]} {row[3]:.2f}", flush=True)
    t.check(caught_up, "every subscriber caught up with the last acknowledged update")
    load.judge(f"subscribers through {len(series)} upgrades")
    t.check(not load.pub.breaks, "the publisher's keep-alive connection survived every upgrade",
            load.pub.breaks[:3])
    if len(series) == UPGRADES:
        fds = [r[1] for r in series]
        rss = [r[2] for r in series]
        t.check(fds[-1] is not None and fds[-1] <= fds[0] + FD_SLACK,
                f"open fds after {UPGRADES} upgrades ({fds[-1]}) at most {FD_SLACK} above those "
                f"after the first ({fds[0]})", fds)
        slack = RSS_SLACK_KIB * (8 if ht.SANITIZED else 1)
        t.check(rss[-1] is not None and rss[-1] <= rss[0] + slack,
                f"RSS after {UPGRADES} upgrades ({rss[-1]} KiB) at most {slack} KiB above that "
                f"after the first ({rss[0]} KiB)", rss)
        t.check(ht.metric(cur.metrics(), "sluice_subscribers") == SUBS,
                f"the final process counts the {SUBS} subscribers")
    load.close()
    hx.clean_stop(t, cur if cur is not hub else None)


t.section(f"{UPGRADES} upgrades in a row under load", test_ten_upgrades)
strays = hx.reap_strays()
t.check(not strays, "no process of ours was left running", strays)
t.finish()
