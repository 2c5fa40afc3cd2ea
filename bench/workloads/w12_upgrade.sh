# shellcheck shell=bash
# W12 — live upgrade under load, beside W7 (the drain): W12_SUBS subscribers (10k; 2k with
# QUICK=1) of one topic, read by W12_CLIENT_WORKERS load-generator processes (2, as in W7),
# receive W12_RATE events/s; after W12_UPGRADE_AFTER events sluice-bench sends SIGUSR2
# (--upgrade-after) and goes on publishing to the end. Every client runs with --resume: a stream
# that ends reconnects with its Last-Event-ID (after the retry: it was told, else 3 s).
#
# Peers (W12_PEERS), each a sluice hub with --pid-file, alone or behind deploy/nginx.conf:
#   sluice-upgrade        SIGUSR2 to the hub: it hands every connection to a new process;
#   nginx-upgrade         nginx's own binary upgrade in front of the hub (USR2 to the master, then
#                         WINCH and QUIT to the old one): the new master takes the listener, the
#                         old workers keep their streams until worker_shutdown_timeout (30 s in
#                         the example) and then cut them; the clients reconnect through the new
#                         workers and the hub behind replays what they missed;
#   nginx-sluice-upgrade  the hub behind nginx is the one upgraded (nginx untouched).
# What counts: disconnects (streams that ended), lost, duplicated, reordered, the delivery gap
# (max latency: an update published during the upgrade is delivered that late at worst) and the
# reconnections. The runs last W12_EVENTS / W12_RATE seconds (60), enough for nginx's old
# workers to reach their 30 s timeout after the upgrade. The hub's `upgrade:` log lines and the
# relay's are stored in the record ("extra").
params_W12() {
  if [ "$QUICK" = 1 ]; then W12_SUBS=${W12_SUBS:-2000}; else W12_SUBS=${W12_SUBS:-10000}; fi
  W12_RATE=${W12_RATE:-5}
  W12_UPGRADE_AFTER=${W12_UPGRADE_AFTER:-$((W12_RATE * 10))}
  W12_EVENTS=${W12_EVENTS:-$((W12_RATE * 60))}
  W12_CLIENT_WORKERS=${W12_CLIENT_WORKERS:-2}
  W12_PEERS=${W12_PEERS:-sluice-upgrade nginx-upgrade nginx-sluice-upgrade}
}

workload_desc_W12() {
  echo "live upgrade under load: $W12_SUBS subscribers at $W12_RATE events/s, SIGUSR2 after" \
    "$W12_UPGRADE_AFTER of $W12_EVENTS events; peers $W12_PEERS"
}

# BENCH_POST_HOOK: keeps what the processes said about the upgrade, then stops the hub that
# serves now (a new process the session's kill may not reach if it left the session).
w12_collect() {
  local pid
  python3 - "$PEER_DIR" "$W12_EXTRA" <<'PY'
import glob, json, os, sys
d, out = sys.argv[1:3]
lines = []
for name in ("sluice.log", "relay.out", "nginx.out"):
    try:
        with open(os.path.join(d, name), errors="replace") as f:
            lines += [f"{name}: {l.rstrip()}" for l in f if "upgrade" in l.lower()]
    except OSError:
        pass
with open(out, "w") as f:
    json.dump({"upgrade_log": lines[-20:]}, f)
PY
  pid=$(cat "$PEER_DIR/sluice.pid" 2>/dev/null)
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
}

w12_one() {
  local peer=$1 round=$2
  W12_EXTRA="$RUN_DIR/runs/W12-$peer-s$W12_SUBS-r$round.upgrade"
  BENCH_POST_HOOK=w12_collect BENCH_EXTRA_FILE="$W12_EXTRA" bench_run W12 "$peer" \
    "s$W12_SUBS" "$round" --subscribers "$W12_SUBS" --events "$W12_EVENTS" --size 100 \
    --rate "$W12_RATE" --topics 1 --upgrade-after "$W12_UPGRADE_AFTER" --resume \
    --drain-wait 5 --workers "$W12_CLIENT_WORKERS"
}

workload_W12() {
  local saved=$PEERS p ok=()
  for p in $W12_PEERS; do
    if have_peer "$p"; then ok+=("$p"); else log "W12: peer $p is not installed here: skipped"; fi
  done
  [ ${#ok[@]} -gt 0 ] || { log "W12: no peer to measure"; return 0; }
  PEERS="${ok[*]}"
  alternate w12_one "$ROUNDS"
  PEERS=$saved
}
