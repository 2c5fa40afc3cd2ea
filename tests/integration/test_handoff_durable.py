"""test_handoff_durable — an upgrade with the durable history (--data-dir, LMDB).

Updates published before, during (a publisher, up to 200/s, keeps going through the upgrade: an
update committed between the new process opening the LMDB and the old one pausing the order must
be seen by the new one too) and
after a SIGUSR2 upgrade; the new process reads the same LMDB. Asserted: a live subscriber
(resumed from an early id before the upgrade) gets every acknowledged update once, in order, and
its stream does not end; nothing is refused; after the upgrade a resume from an id of before it
is answered Mercure-Last-Event-ID: that id and gets exactly what followed; the final process
exits 0 on SIGTERM, and a hub started afresh on the same --data-dir resumes from an id of before
the upgrade too (nothing lost on disk).
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402
import handofftest as hx  # noqa: E402

t = ht.Checker("test_handoff_durable")
TOPIC = "urn:handoff:durable"


def stream_ids(port, last, until, what):
    s = ht.SSEStream(port, ht.sub_query([TOPIC], param="topic", last_event_id=last))
    if not t.eq(s.status, 200, f"{what}: 200"):
        return None, None
    s.wait_id(until, 15)
    s.pump(0.3)
    head = s.response.header("mercure-last-event-id")
    s.close()
    return s.ids(), head


def test_durable():
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-durable-")
    data = os.path.join(tmp, "data")
    hub = hx.start_hub(t, tmp, anonymous=True, workers=2, heartbeat=0, data_dir=data)
    pre = ht.Publisher(hub.port)
    before = [pre.must(TOPIC, data=f"d{k}|x", id=f"d{k}") for k in range(20)]
    pre.close()
    live = hx.UpSub(hub.port, ht.sub_query([TOPIC], param="topic", last_event_id="d4"), TOPIC,
                    resume_from="d4")
    swarm = ht.Swarm()
    swarm.add(live)
    pub = hx.SteadyPublisher(hub.port, ht.mint_token(), [TOPIC], "p", 200)
    swarm.run(lambda: "d19" in live.ids, 15)
    pub.start()
    swarm.run(lambda: pub.count >= 20, 20)
    t_sig = time.monotonic()
    hub.proc.send_signal(hx.signal.SIGUSR2)
    swarm.run(lambda: hub.proc.poll() is not None, 30)
    t_up = time.monotonic()
    swarm.run(lambda: time.monotonic() - t_up > 1.5, 5)
    pub.stop()
    pub.join(10)
    res = hx.upgrade(hub, timeout=1, sig_at=t_sig, exited_at=t_up)
    new = hx.check_upgraded(t, hub, res, "--data-dir", streams=1)
    swarm.run(lambda: hx.all_received([live], [pub], {TOPIC: before}), 20)
    hx.judge(t, [live], [pub], {TOPIC: before}, label="live subscribers (--data-dir)")
    t.check(not pub.refused and not pub.maybe and pub.error is None,
            f"every publish ({pub.count}) answered 200 through the upgrade",
            f"refused {pub.refused[:3]}, no answer {sorted(pub.maybe)}, error {pub.error}")
    swarm.close()
    if new is None:
        return
    after = [new and ht.Publisher(new.port).must(TOPIC, data=f"a{k}|x", id=f"a{k}")
             for k in range(3)]
    everything = before + pub.acked[TOPIC] + after
    mid = pub.acked[TOPIC][len(pub.acked[TOPIC]) // 2] if pub.acked[TOPIC] else "d10"
    for last in ("d10", mid):
        ids, head = stream_ids(new.port, last, after[-1], f"resume from {last} on the new process")
        if ids is None:
            continue
        t.eq(head, last, f"resume from {last}: Mercure-Last-Event-ID is {last}")
        t.eq(ids, everything[everything.index(last) + 1:], f"resume from {last} on the new "
             "process: exactly what followed, from the same LMDB")
    t.stop_hub(new, "the new process exits 0 on SIGTERM (and the sanitizers found nothing)")
    again = ht.start_hub(anonymous=True, heartbeat=0, data_dir=data)
    ids, head = stream_ids(again.port, "d2", after[-1], "resume from d2 on a hub started afresh")
    if ids is not None:
        t.eq(ids, everything[3:], "a hub started afresh on the same --data-dir: everything "
             "after d2, from before, during and after the upgrade")
    t.stop_hub(again)


t.section("--data-dir through an upgrade", test_durable)
strays = hx.reap_strays()
t.check(not strays, "no process of ours was left running", strays)
t.finish()
