# shellcheck shell=bash
# W10 — a restart under load: what a subscriber loses when its hub is restarted. W10_SUBS
# subscribers (500) of one topic receive W10_RATE events/s (200); after W10_SIGNAL_AFTER
# acknowledged events (400) the peer gets SIGTERM, and the moment its server process has exited
# the workload starts it again with the same command: same port and, for sluice-disk, the same
# --data-dir. sluice-bench publishes on to the restarted server (--keep-publishing: refused
# publishes are not acknowledged, and so not expected) and every subscriber whose stream ended
# reconnects after the retry: it was given, with its Last-Event-ID (--resume). What counts:
# `lost` and `duplicates` over the acknowledged events, for every subscriber; sluice-disk should
# lose none, the peers whose history lives in memory (the Go recipe, nchan, sluice without
# --data-dir) lose what was published while their subscribers were away or before the restart.
# Not in the default list: `bench/run.sh build W10` (W10_PEERS to change the peers).
params_W10() {
  W10_SUBS=${W10_SUBS:-500}
  W10_RATE=${W10_RATE:-200}
  W10_SIGNAL_AFTER=${W10_SIGNAL_AFTER:-400}
  W10_EVENTS=${W10_EVENTS:-2000}
}

workload_desc_W10() {
  echo "restart under load: $W10_SUBS reconnecting subscribers, $W10_RATE events/s, SIGTERM" \
    "after $W10_SIGNAL_AFTER, the server started again at once (same port, same data dir)"
}

# BENCH_PRE_HOOK: a watcher that starts the peer's server again once the first one has exited.
# The server is a child of this shell, so once it exits it is a zombie until waited for: the
# watcher reads its state instead of kill -0.
w10_start_restarter() {
  local watch=${PEER_SERVER_PIDS[0]} dir=$PEER_DIR
  local -a cmd=("${PEER_RESTART_CMD[@]}")
  W10_DIR=$dir
  (
    for _ in $(seq 1 6000); do
      [ -r "/proc/$watch/stat" ] || break
      [ "$(awk '{print $3}' "/proc/$watch/stat" 2>/dev/null)" = Z ] && break
      sleep 0.01
    done
    date +%s%N >"$dir/down.at"
    setsid "${cmd[@]}" >"$dir/restarted.log" 2>&1 </dev/null &
    echo $! >"$dir/restarted.pid"
  ) &
  HELPER_PIDS+=("$!")
}

# BENCH_POST_HOOK: stops the restarted server (peer_stop knows only the first).
w10_stop_restarted() {
  local pid
  [ -r "$W10_DIR/restarted.pid" ] || return 0
  pid=$(cat "$W10_DIR/restarted.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  cp "$W10_DIR/restarted.log" "$RUN_DIR/runs/W10-$W10_PEER-r$W10_ROUND.restarted.log" 2>/dev/null
  return 0
}

w10_one() {
  W10_PEER=$1 W10_ROUND=$2
  BENCH_PRE_HOOK=w10_start_restarter BENCH_POST_HOOK=w10_stop_restarted \
    bench_run W10 "$1" "s$W10_SUBS" "$2" \
    --subscribers "$W10_SUBS" --events "$W10_EVENTS" --size 100 --rate "$W10_RATE" --topics 1 \
    --signal-after "$W10_SIGNAL_AFTER" --keep-publishing --resume --end-timeout 40 \
    --drain-wait 8
}

workload_W10() {
  local r p
  for r in $(seq "${FIRST_ROUND:-1}" "$ROUNDS"); do
    for p in ${W10_PEERS:-sluice-disk sluice recipe nchan}; do
      if have_peer "$p"; then w10_one "$p" "$r"; else log "W10: peer $p is not installed: skipped"; fi
    done
  done
}
