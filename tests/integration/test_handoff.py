"""test_handoff — the live upgrade (SIGUSR2, issue 15) under load, seen by real clients.

Sections (each with its own hub):
 1. 1000 raw-socket subscribers over four topics (one in five resumed from an id of history with
    Last-Event-ID), a publisher on one keep-alive connection and one opening a new connection
    per publish, both publishing at a steady rate through the upgrade; SIGUSR2 after 60
    acknowledged. Every subscriber gets every acknowledged update of its topic once, in order;
    no stream ends (no EOF, no reset, no close event, no terminator); no publish is refused or
    lost; the old pid exits 0; the pid file names the new pid, which logs that it took over the
    1000 streams and the listener; a new subscriber works on it; the delivery gap around the
    upgrade is printed (not asserted).
 2. History in memory is handed over: after an upgrade, a subscriber that reconnects with an id
    from before it is answered Mercure-Last-Event-ID: that id and gets exactly what followed.
 3. `sluice upgrade --pid-file F`: exit 0 and `upgraded: pid OLD -> NEW` on success; exit 1 with
    a message, the old hub still serving, when the new binary fails; exit 1 when the pid file is
    missing or names no process.

Without the feature SIGUSR2 kills the hub (its default action): every section fails.
"""

import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402
import handofftest as hx  # noqa: E402

t = ht.Checker("test_handoff")
SUBSCRIBERS = 1000
TOPICS = [f"urn:handoff:t{k}" for k in range(4)]
HISTORY = 8           # updates per topic published before the subscribers connect
RATE = 20             # publishes per second, each publisher
SIGNAL_AFTER = 60     # keep-alive publishes acknowledged before SIGUSR2
AFTER_UPGRADE = 3.0   # seconds of publishing after the old process exited


def sub_path(topic, last_id=None):
    extra = {"last_event_id": last_id} if last_id else {}
    return ht.sub_query([topic], param="topic", **extra)


def test_fanout_upgrade():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-")
    hub = hx.start_hub(t, tmp, anonymous=True, workers=2, heartbeat=0, history_size=1000)
    pub_token = ht.mint_token(publish=("*",), subscribe=())
    pre = ht.Publisher(hub.port, pub_token)
    before = {tp: [] for tp in TOPICS}
    for k in range(HISTORY):
        for tp in TOPICS:
            id_ = f"pre-{tp[-2:]}-{k}"
            before[tp].append(pre.must(tp, data=f"{id_}|x", id=id_))
    pre.close()

    swarm = ht.Swarm()
    subs = []
    t0 = time.monotonic()
    for i in range(SUBSCRIBERS):
        tp = TOPICS[i % len(TOPICS)]
        resume = before[tp][i % HISTORY // 2] if i % 5 == 0 else None
        s = hx.UpSub(hub.port, sub_path(tp, resume), tp, resume_from=resume)
        subs.append(s)
        swarm.add(s)
        if i % 100 == 99:
            swarm.run(lambda: False, 0.02)
    opened = swarm.run(lambda: all(s.opened or s.state == "closed" for s in subs)
                       and hx.all_received(subs, [], before), 60)
    ended = [s for s in subs if s.ended()]
    if not t.check(opened and not ended, f"{SUBSCRIBERS} subscribers opened and the resumed ones "
                   f"got their history ({time.monotonic() - t0:.1f} s)",
                   f"{len(ended)} ended, e.g. {ended[0].how_ended() if ended else ''}"):
        return
    t.check(ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == SUBSCRIBERS,
                          20 * ht.SLOW), f"the hub counts {SUBSCRIBERS} subscribers")

    state = {"sig_at": None}

    def on_ack(n):
        if n == SIGNAL_AFTER and state["sig_at"] is None:
            state["sig_at"] = time.monotonic()
            hub.proc.send_signal(signal.SIGUSR2)

    keep = hx.SteadyPublisher(hub.port, pub_token, TOPICS, "k", RATE, on_ack=on_ack)
    fresh = hx.SteadyPublisher(hub.port, pub_token, TOPICS, "f", RATE, fresh=True)
    pubs = [keep, fresh]
    keep.start()
    fresh.start()
    swarm.run(lambda: state["sig_at"] is not None or not keep.is_alive(), 60)
    if not t.check(state["sig_at"] is not None, f"SIGUSR2 sent after {SIGNAL_AFTER} publishes "
                   "answered 200", f"keep-alive publisher: {keep.count} acked, error {keep.error}, "
                   f"refused {keep.refused[:3]}"):
        for p in pubs:
            p.stop()
        return
    # The upgrade runs while the swarm keeps reading: poll the old process from the loop.
    res = hx.Upgrade()
    done = {"at": None}

    def upgraded():
        if done["at"] is None and hub.proc.poll() is not None:
            done["at"] = time.monotonic()
        return done["at"] is not None or time.monotonic() - state["sig_at"] > 30 * ht.SLOW

    swarm.run(upgraded, 40)
    # Keep publishing (and reading) a while after the old process is gone.
    swarm.run(lambda: time.monotonic() - (done["at"] or state["sig_at"]) > AFTER_UPGRADE, 20)
    for p in pubs:
        p.stop()
    for p in pubs:
        p.join(10 * ht.SLOW)
    res = hx.upgrade(hub, timeout=1, sig_at=state["sig_at"])
    if done["at"] is not None:
        res.seconds = done["at"] - state["sig_at"]
    got_all = swarm.run(lambda: hx.all_received(subs, pubs, before), 30)
    t.check(got_all, "every subscriber caught up with the last acknowledged update")

    # The publishers: nothing refused, nothing lost, no connection of theirs ended.
    for p, name in ((keep, "keep-alive"), (fresh, "new-connection")):
        n_topics = sum(len(v) for v in p.acked.values())
        t.check(not p.refused and not p.maybe and p.error is None and n_topics > SIGNAL_AFTER,
                f"the {name} publisher: {n_topics} publishes, every one answered 200 "
                "(none refused, none without an answer)",
                f"refused {p.refused[:3]}, no answer {sorted(p.maybe)[:3]}, breaks "
                f"{p.breaks[:2]}, error {p.error}")
        print(f"info {name} publisher: slowest answer {p.slowest * 1000:.0f} ms "
              f"(sent {((p.slowest_at or 0) - state['sig_at']) * 1000:+.0f} ms from SIGUSR2)",
              flush=True)
    t.check(not keep.breaks, "the keep-alive publisher's connection survived the upgrade",
            f"breaks {keep.breaks[:3]}")
    after = [i for i, _ in keep.order if int(i[1:]) >= SIGNAL_AFTER]
    t.check(len(after) >= RATE, f"publishes went on through the upgrade ({len(after)} after the "
            "signal on the keep-alive connection)")

    new = hx.check_upgraded(t, hub, res, streams=SUBSCRIBERS)
    hx.judge(t, subs, pubs, before)
    t_end = (done["at"] or state["sig_at"]) + 1.0
    gap, lat = hx.delivery_gap(subs, state["sig_at"] - 0.5, t_end)
    base = hx.baseline_latency(subs, state["sig_at"] - 0.5)
    print(f"info delivery gap across the upgrade: largest interval between two updates seen by "
          f"one subscriber {gap * 1000:.0f} ms (each subscriber's topic gets "
          f"{2 * RATE / len(TOPICS):.0f} updates/s); largest publish-to-receive latency "
          f"{lat * 1000:.0f} ms, against {base * 1000:.0f} ms before the signal; upgrade "
          f"(SIGUSR2 to the old pid's exit) {res.seconds * 1000:.0f} ms; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    if new is None:
        return
    t.check(ht.wait_until(lambda: ht.metric(new.metrics(), "sluice_subscribers") == SUBSCRIBERS,
                          10 * ht.SLOW), f"the new process counts the {SUBSCRIBERS} subscribers "
            "it took over", f"{ht.metric(new.metrics(), 'sluice_subscribers')}")
    s = ht.SSEStream(new.port, sub_path(TOPICS[0]))
    ok = s.status == 200 and s.wait_open(10)
    pid = ht.Publisher(new.port, pub_token).must(TOPICS[0], data="late|x", id="late-1")
    t.check(ok and s.wait_id(pid, 10) is not None, "a new subscriber works on the new process")
    s.close()
    swarm.run(lambda: all("late-1" in s.ids[-3:] for s in subs if s.topic == TOPICS[0]), 20)
    t.check(all("late-1" in s.ids for s in subs if s.topic == TOPICS[0]),
            "the subscribers taken over get an update published after the upgrade")
    swarm.close()
    hx.clean_stop(t, new)


def test_history_handed_over():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-hist-")
    hub = hx.start_hub(t, tmp, anonymous=True, heartbeat=0, history_size=100)
    topic = "urn:handoff:history"
    pub = ht.Publisher(hub.port)
    ids = [pub.must(topic, data=f"h{k}", id=f"h{k}") for k in range(10)]
    pub.close()
    live = ht.SSEStream(hub.port, sub_path(topic, "h4"))
    t.check(live.status == 200 and live.wait_id("h9", 10), "a subscriber resumed from h4 before "
            "the upgrade got h5..h9")
    res = hx.upgrade(hub)
    new = hx.check_upgraded(t, hub, res, streams=1)
    if new is None:
        live.close()
        return
    pub = ht.Publisher(new.port)
    ids += [pub.must(topic, data=f"h{k}", id=f"h{k}") for k in range(10, 13)]
    pub.close()
    t.check(live.wait_id("h12", 10) is not None and not live.eof, "the live subscriber got the "
            "updates published after the upgrade on the same connection")
    t.eq([e.id for e in live.events], ids[5:], "the live subscriber: h5..h12, once, in order")
    live.close()
    for last in ("h2", "h9"):
        s = ht.SSEStream(new.port, sub_path(topic, last))
        if not t.eq(s.status, 200, f"resume from {last} (before the upgrade) on the new process"):
            continue
        t.eq(s.response.header("mercure-last-event-id"), last,
             f"resume from {last}: Mercure-Last-Event-ID is {last} (found in the handed-over "
             "history, not `earliest`)")
        s.wait_id("h12", 10)
        s.pump(0.3)
        t.eq(s.ids(), ids[ids.index(last) + 1:], f"resume from {last}: exactly what followed")
        s.close()
    s = ht.SSEStream(new.port, sub_path(topic, "earliest"))
    s.wait_id("h12", 10)
    t.eq(s.ids(), ids, "resume from earliest on the new process: the whole handed-over history "
         "plus what came after")
    s.close()
    hx.clean_stop(t, new)


def test_cli():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-cli-")
    flag = os.path.join(tmp, "fail")
    # The new binary: the real one, unless the flag file exists (then it fails at start).
    script = hx.write_script(os.path.join(tmp, "sluice-next"),
                             f'[ -e "{flag}" ] && {{ echo "sluice-next: failing on purpose" >&2; '
                             f'exit 1; }}\nexec "{ht.BIN}" "$@"')
    hub = hx.start_hub(t, tmp, exec_path=script, anonymous=True, heartbeat=0, upgrade_timeout=5)
    pid_file = hub.pid_file or os.path.join(tmp, "sluice.pid")
    t.eq(hx.read_pid(pid_file), hub.pid, "the pid file names the hub's pid at start")
    live = ht.SSEStream(hub.port, sub_path("urn:handoff:cli"))
    live.wait_open(10)

    r = ht.run_cli("upgrade", "--pid-file", pid_file, "--timeout", str(int(20 * ht.SLOW)),
                   timeout=40 * ht.SLOW)
    print(f"info sluice upgrade: exit {r.returncode}, stdout {r.stdout.strip()!r}, stderr "
          f"{r.stderr.strip()[-300:]!r}", flush=True)
    m = re.search(r"upgraded: pid (\d+) -> (\d+)", r.stdout)
    t.check(r.returncode == 0 and m and int(m.group(1)) == hub.pid and int(m.group(2)) != hub.pid,
            "sluice upgrade --pid-file: exit 0, `upgraded: pid OLD -> NEW`",
            f"exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr[-400:]!r}")
    res = hx.upgrade(hub, timeout=5, sig_at=time.monotonic())
    new = hx.check_upgraded(t, hub, res, "sluice upgrade", streams=1)
    if new is None:
        live.close()
        return
    t.eq(int(m.group(2)) if m else None, new.pid, "the NEW pid printed is the one serving")

    # A failing new binary: exit 1, a message, the old (now: new) hub still serving.
    open(flag, "w").close()
    r = ht.run_cli("upgrade", "--pid-file", pid_file, "--timeout", str(int(20 * ht.SLOW)),
                   timeout=40 * ht.SLOW)
    print(f"info sluice upgrade (failing binary): exit {r.returncode}, stdout "
          f"{r.stdout.strip()!r}, stderr {r.stderr.strip()[-300:]!r}", flush=True)
    t.check(r.returncode == 1 and (r.stderr.strip() or r.stdout.strip()),
            "sluice upgrade with a failing new binary: exit 1 with a message",
            f"exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}")
    t.check(new.alive() and hx.read_pid(pid_file) == new.pid,
            "after the failed upgrade the same pid serves and the pid file still names it")
    pid = ht.Publisher(new.port).must("urn:handoff:cli", data="after-fail|x", id="after-fail")
    t.check(live.wait_id(pid, 10) is not None and not live.eof,
            "the stream opened before both upgrades still receives updates")
    t.check(hx.FAILED_RE.search(new.log_text()), "`upgrade failed: <why>; still serving` is logged")
    live.close()

    r = ht.run_cli("upgrade", "--pid-file", os.path.join(tmp, "no-such.pid"), "--timeout", "2")
    t.check(r.returncode == 1 and r.stderr.strip(), "sluice upgrade with a missing pid file: "
            "exit 1 with a message", f"exit {r.returncode}, stderr {r.stderr!r}")
    dead = os.path.join(tmp, "dead.pid")
    with open(dead, "w") as f:
        f.write("999999999\n")
    r = ht.run_cli("upgrade", "--pid-file", dead, "--timeout", "2")
    t.check(r.returncode == 1 and r.stderr.strip(), "sluice upgrade with a pid file naming no "
            "process: exit 1 with a message", f"exit {r.returncode}, stderr {r.stderr!r}")
    hx.clean_stop(t, new)
    t.check(ht.wait_until(lambda: not os.path.exists(pid_file), 5),
            "the pid file is removed at the clean exit of the pid it names")


t.section("1000 subscribers and two publishers through an upgrade", test_fanout_upgrade)
t.section("history in memory is handed over", test_history_handed_over)
t.section("sluice upgrade --pid-file", test_cli)
strays = hx.reap_strays()
t.check(not strays, "no process of ours was left running", strays)
t.finish()
