"""test_handoff_nginx — a live upgrade of the hub behind a real nginx (deploy/nginx.conf).

Debian's nginx runs the example configuration (rendered by deploy/nginx_local.py for a temp
prefix and loopback ports) in front of the hub. 50 subscribers go through nginx and 10 straight
to the hub; one publisher posts through nginx (so its requests travel on nginx's kept-alive
upstream connections, which the hub hands over idle) and one straight to the hub, both at a
steady rate through a SIGUSR2 upgrade. Asserted: every subscriber, proxied or not, gets every
acknowledged update once, in order, and its stream does not end (nginx would end a proxied
stream when its upstream connection ends); nothing is refused; the old pid exits 0 and the new
one logs that it took over the 60 streams; nginx logs no upstream error; nginx's answers keep
coming from the new process (a new proxied subscriber works).
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

sys.path.insert(0, os.path.join(ht.SOURCE, "deploy"))
import nginx_local  # noqa: E402  (deploy/ is not a package)

t = ht.Checker("test_handoff_nginx")
N_PROXIED = 50
N_DIRECT = 10
TOPIC = "urn:handoff:nginx"


def test_through_nginx():
    if not os.access(nginx_local.NGINX, os.X_OK):
        t.check(False, f"nginx is installed ({nginx_local.NGINX}; scripts/deps.sh)")
        return
    tmp = tempfile.mkdtemp(prefix="sluice-handoff-nginx-")
    hub = hx.start_hub(t, tmp, anonymous=True, workers=2, heartbeat=0)
    nginx_port = ht.free_port()
    conf = nginx_local.write_config(os.path.join(ht.SOURCE, "deploy", "nginx.conf"), tmp,
                                    nginx_port, hub.port)
    nginx_log = open(os.path.join(tmp, "nginx.log"), "w+")
    nginx = nginx_local.start(tmp, conf, nginx_port, nginx_log)
    try:
        run(hub, nginx_port, nginx_log)
    finally:
        rc = nginx_local.stop(nginx)
        print(f"info nginx exited {rc}", flush=True)
        nginx_log.close()


def run(hub, nginx_port, nginx_log):
    token = ht.mint_token()
    swarm = ht.Swarm()
    subs = []
    for i in range(N_PROXIED + N_DIRECT):
        port = nginx_port if i < N_PROXIED else hub.port
        s = hx.UpSub(port, ht.sub_query([TOPIC], param="topic"), TOPIC)
        s.via = "nginx" if i < N_PROXIED else "direct"
        subs.append(s)
        swarm.add(s)
    opened = swarm.run(lambda: all(s.opened or s.state == "closed" for s in subs), 30)
    ended = [s for s in subs if s.ended()]
    if not t.check(opened and not ended, f"{len(subs)} subscribers opened, {N_PROXIED} through "
                   "nginx", f"{len(ended)} ended: {ended[0].how_ended() if ended else ''}"):
        return
    t.check(ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers") == len(subs),
                          10 * ht.SLOW), f"the hub counts {len(subs)} subscribers")
    proxied = hx.SteadyPublisher(nginx_port, token, [TOPIC], "n", 20)
    direct = hx.SteadyPublisher(hub.port, token, [TOPIC], "d", 10)
    pubs = [proxied, direct]
    for p in pubs:
        p.start()
    swarm.run(lambda: proxied.count >= 30, 20)
    log_from = nginx_log.tell()
    t_sig = time.monotonic()
    hub.proc.send_signal(signal.SIGUSR2)
    swarm.run(lambda: hub.proc.poll() is not None, 30)
    t_up = time.monotonic()
    swarm.run(lambda: time.monotonic() - t_up > 2, 5)
    for p in pubs:
        p.stop()
    for p in pubs:
        p.join(10)
    res = hx.upgrade(hub, timeout=1, sig_at=t_sig, exited_at=t_up)
    new = hx.check_upgraded(t, hub, res, streams=len(subs))
    swarm.run(lambda: hx.all_received(subs, pubs), 20)
    for p, name in ((proxied, "through nginx"), (direct, "straight to the hub")):
        t.check(not p.refused and not p.maybe and p.error is None and p.count > 30,
                f"the publisher {name}: every publish ({p.count}) answered 200",
                f"refused {p.refused[:3]}, no answer {sorted(p.maybe)[:3]}, breaks "
                f"{p.breaks[:2]}, error {p.error}")
    hx.judge(t, [s for s in subs if s.via == "nginx"], pubs, label="subscribers through nginx")
    hx.judge(t, [s for s in subs if s.via == "direct"], pubs, label="direct subscribers")
    gap, lat = hx.delivery_gap(subs, t_sig - 0.5, t_up + 1)
    print(f"info through nginx: largest interval between updates {gap * 1000:.0f} ms, largest "
          f"latency {lat * 1000:.0f} ms around the upgrade ({res.seconds * 1000:.0f} ms)",
          flush=True)
    nginx_log.flush()
    with open(nginx_log.name, errors="replace") as f:
        f.seek(log_from)
        errors = [ln for ln in f.read().splitlines()
                  if re.search(r"\[(error|crit|alert|emerg)\]|upstream prematurely", ln)]
    t.check(not errors, "nginx logged no upstream error across the upgrade", errors[:4])
    if new is not None:
        s = ht.SSEStream(nginx_port, ht.sub_query([TOPIC], param="topic"))
        ok = s.status == 200 and s.wait_open(10)
        pid = ht.Publisher(nginx_port, token).must(TOPIC, data="after|x", id="after-1")
        t.check(ok and s.wait_id(pid, 10) is not None, "a new subscriber through nginx works "
                "after the upgrade")
        s.close()
    swarm.close()
    hx.clean_stop(t, new)


t.section("an upgrade behind nginx", test_through_nginx)
strays = hx.reap_strays()
t.check(not strays, "no process of ours was left running", strays)
t.finish()
