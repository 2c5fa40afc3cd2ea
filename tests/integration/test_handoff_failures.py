"""test_handoff_failures — upgrades that cannot succeed, and upgrades that meet a shutdown.

Sections (each with its own hub, 60 subscribers and a publisher at 20/s throughout):
 1. The new binary fails at start, four ways in a row, on one hub: it exits 1; it dies of
    SIGABRT; the real sluice refuses its arguments (a flag it does not know); it hangs (sleeps)
    and --upgrade-timeout 3 applies. Each time: `upgrade failed: <why>; still serving` is logged,
    the old pid still serves and the pid file still names it, the hung process does not outlive
    the failure, and no subscriber notices (no stream ends, every acknowledged update arrives
    once, in order, no publish refused). Then a working new binary: the upgrade succeeds and
    the same streams go on.
 2. SIGTERM 0.3 s after SIGUSR2 while a slow new binary starts (it sleeps 1.5 s first): the safe
    thing is to finish or abort the upgrade and then drain. Asserted: the log says what happened
    to the upgrade, every stream ends with the drain's close frame after every acknowledged
    update, every process exits 0, none is left running. Printed: which way it went.
 3. SIGUSR2 during a drain (--drain-delay 2): no new process takes over, the log says the
    upgrade was refused, the drain completes as usual, exit 0.
 4. --redis (when redis-server is installed): two hubs on one Redis stream, 20 subscribers on
    the upgraded one (two workers) and 10 on the other, a publisher on each at 20/s throughout;
    SIGUSR2 to the first: the upgrade succeeds, and every subscriber on both hubs gets every
    acknowledged update once, in order, no stream ends; then a resume on the new process from
    an id acknowledged before the upgrade gets exactly what followed it in the stream.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402
import handofftest as hx  # noqa: E402

t = ht.Checker("test_handoff_failures")
TOPICS = ["urn:handoff:fail:a", "urn:handoff:fail:b"]
SUBS = 60
UPGRADE_TIMEOUT = 3


def next_binary(tmp):
    """A stand-in new binary whose behaviour is read from tmp/mode at each start."""
    mode = os.path.join(tmp, "mode")
    hung = os.path.join(tmp, "hung.pid")
    return hx.write_script(os.path.join(tmp, "sluice-next"), f"""\
mode=$(cat "{mode}" 2>/dev/null)
echo "sluice-next: mode '$mode', pid $$" >&2
case "$mode" in
  exit1) exit 1 ;;
  abort) kill -ABRT $$; exit 99 ;;
  badflag) exec "{ht.BIN}" "$@" --no-such-flag-for-this-test ;;
  hang) echo $$ > "{hung}"; exec sleep 600 ;;
  slow) sleep 1.5; exec "{ht.BIN}" "$@" ;;
  *) exec "{ht.BIN}" "$@" ;;
esac"""), mode, hung


def set_mode(path, mode):
    with open(path, "w") as f:
        f.write(mode)


def test_failing_binaries():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-fail-")
    script, mode, hung = next_binary(tmp)
    hub = hx.start_hub(t, tmp, exec_path=script, upgrade_timeout=UPGRADE_TIMEOUT, anonymous=True,
                       workers=2, heartbeat=0)
    load = hx.Load(t, hub.port, SUBS, TOPICS)
    if not load.ok_open():
        return
    load.start()
    load.sleep(1)
    for m in ("exit1", "abort", "badflag", "hang"):
        set_mode(mode, m)
        before = len(hx.FAILED_RE.findall(hub.log_text()))
        t_sig = time.monotonic()
        hub.proc.send_signal(signal.SIGUSR2)
        logged = load.run(lambda: len(hx.FAILED_RE.findall(hub.log_text())) > before
                          or not hub.alive(), UPGRADE_TIMEOUT + 10)
        took = time.monotonic() - t_sig
        why = hx.FAILED_RE.findall(hub.log_text())[before:] if logged else []
        print(f"info new binary '{m}': {took:.2f} s to `upgrade failed: {why[0] if why else '?'}`",
              flush=True)
        if not t.check(logged and hub.alive(), f"'{m}': `upgrade failed: <why>; still serving` "
                       "is logged and the old pid still runs",
                       f"alive {hub.alive()} (exit {hub.proc.returncode}); log tail:\n"
                       f"{hub.log_tail(8)}"):
            break
        if m == "hang":
            t.check(UPGRADE_TIMEOUT * 0.9 <= took <= UPGRADE_TIMEOUT + 5 * ht.SLOW,
                    f"'hang': the failure comes after --upgrade-timeout {UPGRADE_TIMEOUT} s "
                    f"({took:.2f} s)")
            pid = hx.read_pid(hung)
            gone = pid is not None and ht.wait_until(lambda: not hx.alive(pid), 5 * ht.SLOW)
            t.check(gone, "'hang': the new process that never took over does not outlive the "
                    "failed upgrade", f"pid {pid} alive {hx.alive(pid) if pid else None}")
        if hub.pid_file:
            t.eq(hx.read_pid(hub.pid_file), hub.pid, f"'{m}': the pid file still names the old pid")
        load.sleep(0.7)   # publishes go on after the failure
    # Finally a good binary: the same streams carry on in the new process.
    set_mode(mode, "ok")
    t_sig = time.monotonic()
    hub.proc.send_signal(signal.SIGUSR2)
    load.run(lambda: not hub.alive(), 30)
    t_up = time.monotonic()
    load.sleep(1)
    caught_up = load.stop()
    res = hx.upgrade(hub, timeout=1, sig_at=t_sig, exited_at=t_up)
    new = hx.check_upgraded(t, hub, res, "after four failed upgrades, a working binary",
                            streams=SUBS)
    t.check(caught_up, "every subscriber caught up with the last acknowledged update")
    load.judge()
    load.close()
    hx.clean_stop(t, new)


def test_sigterm_during_upgrade():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-term-")
    script, mode, _ = next_binary(tmp)
    set_mode(mode, "slow")
    hub = hx.start_hub(t, tmp, exec_path=script, upgrade_timeout=10, anonymous=True, workers=2,
                       heartbeat=0, drain_delay=0, reconnect_spread=1)
    load = hx.Load(t, hub.port, SUBS, TOPICS)
    if not load.ok_open():
        return
    load.start()
    load.sleep(1)
    log_from = len(hub.log_text())
    hub.proc.send_signal(signal.SIGUSR2)
    load.sleep(0.3)
    t_term = time.monotonic()
    hub.proc.send_signal(signal.SIGTERM)
    seen = set()

    def watch():
        for p in hx.children_of(hub.pid) if hub.alive() else []:
            seen.add(p)
        return not hub.alive() and all(s.ended() for s in load.subs)

    load.run(watch, 40)
    rc = ht.wait_exit(hub.proc, 10 * ht.SLOW)
    hub.rc = rc
    if hub in ht._hubs:
        ht._hubs.remove(hub)
    # Did a new process take over? Follow it: it must drain and exit too.
    new_pid = hx.read_pid(hub.pid_file) if hub.pid_file else None
    new = None
    if new_pid and new_pid != hub.pid and hx.alive(new_pid):
        new = hx.adopt_hub(hub, new_pid)
        load.run(lambda: not new.alive() and all(s.ended() for s in load.subs), 40)
    load.stop(catch_up=1)
    log = hub.log_text()[log_from:]
    lines = [ln for ln in log.splitlines() if "upgrade" in ln.lower()]
    way = ("finished, then the new process drained" if new is not None or hx.TOOK_OVER_RE.search(log)
           else "aborted, then the old process drained")
    print(f"info SIGTERM during the upgrade: {way}; new processes seen: {sorted(seen)}; upgrade "
          f"log lines:\n     " + "\n     ".join(lines[-6:]), flush=True)
    t.check(any(re.search(r"abort|cancel|SIGTERM|drain|shut|stop", ln, re.I) for ln in lines),
            "the log says what became of the upgrade when SIGTERM arrived", "\n".join(lines[-6:]))
    t.check(rc == 0, f"the old pid exits 0 ({time.monotonic() - t_term:.1f} s after SIGTERM)",
            f"exit {rc}; log tail:\n{hub.log_tail(10)}")
    if new is not None:
        t.check(new.proc.poll() == 0, "the new process, having taken over, drains and exits 0 "
                "(the SIGTERM is not lost)", f"exit {new.proc.poll()}")
    left = [p for p in seen | ({new_pid} if new_pid else set()) if p != hub.pid and hx.alive(p)]
    t.check(not left, "no process is left running after the SIGTERM", left)
    closed = [s for s in load.subs if s.closes == 1 and s.terminated]
    t.check(len(closed) == SUBS, f"all {SUBS} streams end with the drain's close frame and the "
            "terminator", f"{SUBS - len(closed)} did not; e.g. "
            f"{next((s.how_ended() for s in load.subs if s not in closed), '')}")
    hx.judge(t, load.subs, load.pubs, label="subscribers (SIGTERM during the upgrade)",
             must_stay_open=False)
    load.close()


def test_upgrade_during_drain():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-drain-")
    hub = hx.start_hub(t, tmp, upgrade_timeout=10, anonymous=True, workers=2, heartbeat=0,
                       drain_delay=2, reconnect_spread=1)
    load = hx.Load(t, hub.port, SUBS, TOPICS)
    if not load.ok_open():
        return
    load.start()
    load.sleep(0.5)
    log_from = len(hub.log_text())
    hub.proc.send_signal(signal.SIGTERM)
    load.sleep(0.3)
    hub.proc.send_signal(signal.SIGUSR2)
    seen = set()

    def watch():
        if hub.alive():
            seen.update(hx.children_of(hub.pid))
        return not hub.alive() and all(s.ended() for s in load.subs)

    load.run(watch, 40)
    rc = ht.wait_exit(hub.proc, 10 * ht.SLOW)
    hub.rc = rc
    if hub in ht._hubs:
        ht._hubs.remove(hub)
    load.stop(catch_up=1)
    log = hub.log_text()[log_from:]
    lines = [ln for ln in log.splitlines() if "upgrade" in ln.lower()]
    print(f"info SIGUSR2 during the drain: new processes seen {sorted(seen)}; upgrade log "
          f"lines:\n     " + "\n     ".join(lines[-4:]), flush=True)
    t.check(rc == 0, "the hub exits 0 at the end of its drain", f"exit {rc}; log tail:\n"
            f"{hub.log_tail(10)}")
    t.check(not hx.TOOK_OVER_RE.search(log) and not [p for p in seen if hx.alive(p)],
            "no new process takes over during a drain, none is left running", sorted(seen))
    t.check(any(re.search(r"refus|ignor|drain|shut|not", ln, re.I) for ln in lines),
        "the log says the upgrade was refused because the hub is draining", "\n".join(lines))
    closed = [s for s in load.subs if s.closes == 1 and s.terminated]
    t.check(len(closed) == SUBS, f"all {SUBS} streams end with the drain's close frame",
            f"{SUBS - len(closed)} did not")
    hx.judge(t, load.subs, load.pubs, label="subscribers (SIGUSR2 during the drain)",
             must_stay_open=False)
    load.close()


PAGE_TOPIC = "urn:handoff:fail:page"


def test_redis():
    redis = shutil.which("redis-server")
    if not redis:
        print("skip --redis: redis-server is not installed (scripts/deps.sh)", flush=True)
        return
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-redis-")
    rport = ht.free_port()
    rlog = open(os.path.join(tmp, "redis.log"), "wb")
    rproc = subprocess.Popen([redis, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--dir", tmp, "--daemonize", "no", "--appendonly", "no"],
                             stdin=subprocess.DEVNULL, stdout=rlog, stderr=rlog,
                             preexec_fn=ht._die_with_parent)
    url = f"redis://127.0.0.1:{rport}"
    try:
        ht.wait_until(lambda: not ht.refused(rport) and rproc.poll() is None, 10)
        # Two hubs on one stream: the upgraded one (two workers) and a second one, which goes on
        # appending while the first hands over.
        hub = hx.start_hub(t, tmp, upgrade_timeout=10, anonymous=True, heartbeat=0, workers=2,
                           redis=url, redis_stream="handoff", history_size=10000,
                           max_queue=65536)
        other = ht.start_hub(anonymous=True, heartbeat=0, workers=1, redis=url,
                             redis_stream="handoff", history_size=10000)
        for h in (hub, other):
            ht.wait_until(lambda: ht.request(h.port, "GET", "/readyz").status == 200,
                          10 * ht.SLOW)
        # A resume that is still paging its replay when the upgrade comes (4.5 MB of history,
        # more than the socket takes, read by nobody until after it): handed as "after the last
        # id read", its next page is fetched by the new process.
        big = [f"pg{i}" for i in range(1500)]
        ht.publish_many(other.port, PAGE_TOPIC, big, "x" * 3000)
        paging = ht.SSEStream(hub.port, ht.sub_query([PAGE_TOPIC], param="topic"),
                              headers={"Last-Event-ID": big[0]}, rcvbuf=4096)
        t.eq(paging.status, 200, "--redis: a resume from the first of 1500 updates of 3 kB opens")
        load = hx.Load(t, hub.port, 20, TOPICS, rate=20, prefix="a")
        # Subscribers on the second hub, in the same swarm, and its own publisher.
        theirs = []
        for i in range(10):
            tp = TOPICS[i % len(TOPICS)]
            s = hx.UpSub(other.port, ht.sub_query([tp], param="topic"), tp)
            theirs.append(s)
            load.swarm.add(s)
        opened = load.swarm.run(lambda: all(s.opened or s.ended() for s in theirs), 30)
        if not load.ok_open("--redis: ") or not t.check(
                opened and not any(s.ended() for s in theirs),
                "--redis: 10 subscribers on the second hub opened"):
            return
        pub_b = hx.SteadyPublisher(other.port, load.token, TOPICS, "b", 250)
        load.pubs.append(pub_b)
        load.start()
        pub_b.start()
        load.sleep(1.5)
        # An id acknowledged before the upgrade, for a resume on the new process afterwards.
        resume_tp = TOPICS[0]
        resume_id = load.pub.acked[resume_tp][len(load.pub.acked[resume_tp]) // 2]
        replayed = ht.metric(hub.metrics(), "sluice_replayed_total")
        t.check(replayed is not None and replayed < len(big) - 1, "--redis: the resume is still "
                f"paging when the upgrade begins ({replayed} of {len(big) - 1} queued)")
        t_sig = time.monotonic()
        hub.proc.send_signal(signal.SIGUSR2)
        load.run(lambda: hx.FAILED_RE.search(hub.log_text()) or not hub.alive(), 30 * ht.SLOW)
        t_up = time.monotonic()
        load.sleep(1.5)
        res = hx.upgrade(hub, timeout=1, sig_at=t_sig, exited_at=t_up)
        new = hx.check_upgraded(t, hub, res, "--redis", streams=21)
        if new is None:
            load.stop(catch_up=2)
            load.close()
            return
        # A resume on the new process from an id the old one acknowledged: exactly what followed
        # it in the stream, as a subscriber on the other hub, live all along, got it.
        late = hx.UpSub(hub.port, ht.sub_query([resume_tp], param="topic",
                                               last_event_id=resume_id), resume_tp,
                        resume_from=resume_id)
        load.swarm.add(late)
        load.sleep(1)
        caught_up = load.stop()
        after = ht.publish_many(hub.port, PAGE_TOPIC, ["pg-after-0", "pg-after-1"], "after")
        deadline = time.monotonic() + 30 * ht.SLOW
        while time.monotonic() < deadline and not (paging.eof or after[-1] in paging.ids()):
            paging.pump(0.05)
        got = paging.ids()
        t.check(got == big[1:] + after and not paging.eof,
                "--redis: the resume paging across the upgrade gets the rest of its replay, then "
                "what came after, once each, in order, and its stream goes on",
                f"got {len(got)} of {len(big) - 1 + len(after)}, {len(got) - len(set(got))} "
                f"twice, eof {paging.eof}; first difference at "
                f"{next((i for i, (a, b) in enumerate(zip(got, big[1:] + after)) if a != b), '-')}")
        paging.close()
        load.run(lambda: late.ids and late.ids[-1:] == [x for x in theirs if x.topic ==
                                                            resume_tp][0].ids[-1:], 10 * ht.SLOW)
        gap, lat = hx.delivery_gap(load.subs + theirs, t_sig, t_up + 1)
        print(f"info --redis: upgrade in {res.seconds:.2f} s; delivery gap {gap * 1000:.0f} ms, "
              f"worst latency of an update sent meanwhile {lat * 1000:.0f} ms; acknowledged "
              f"{load.pub.count} on the upgraded hub, {pub_b.count} on the other", flush=True)
        t.check(caught_up, "--redis: every subscriber on both hubs caught up")
        load.judge("--redis subscribers of the upgraded hub")
        t.check(not pub_b.refused and not pub_b.maybe and pub_b.error is None and pub_b.count > 0,
                f"--redis: every publish to the second hub ({pub_b.count}) answered 200",
                f"refused {pub_b.refused[:3]}, no answer {sorted(pub_b.maybe)[:3]}, "
                f"error {pub_b.error}")
        hx.judge(t, theirs, load.pubs, label="--redis subscribers of the second hub")
        ref = next(x for x in theirs if x.topic == resume_tp)
        want = ref.ids[ref.ids.index(resume_id) + 1:] if resume_id in ref.ids else None
        t.check(want is not None and late.ids == want and not late.ended(),
                f"--redis: a resume on the new process from {resume_id} (acknowledged before the "
                f"upgrade) gets exactly the {len(want or [])} updates that followed it, in the "
                "stream's order",
                f"got {len(late.ids)}: {late.ids[:3]}...{late.ids[-2:]}; want "
                f"{(want or [])[:3]}...{(want or [])[-2:]}; {late.how_ended()}")
        load.close()
        hx.clean_stop(t, new)
        hx.clean_stop(t, other, "the second hub exits 0 on SIGTERM")
    finally:
        rproc.terminate()
        try:
            rproc.wait(10)
        except subprocess.TimeoutExpired:
            rproc.kill()
        rlog.close()


ONLY = sys.argv[1:]  # test function names to run alone (by hand); none: all


def section(title, fn):
    if not ONLY or fn.__name__ in ONLY:
        t.section(title, fn)


section("new binaries that fail at start, then one that works", test_failing_binaries)
section("SIGTERM during an upgrade", test_sigterm_during_upgrade)
section("SIGUSR2 during a drain", test_upgrade_during_drain)
section("--redis: an upgrade while another hub publishes", test_redis)
strays = hx.reap_strays()
t.check(not strays, "no process of ours was left running", strays)
t.finish()
