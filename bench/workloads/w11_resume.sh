# shellcheck shell=bash
# W11 — resume of W11_COUNT (10,000) missed updates of 100 bytes by one subscriber: the time from
# its request to the last update, and how much the hub's RSS grows meanwhile (the replay is paged
# from history a window, 256 KiB, at a time, so it should grow by about that, not by the replay).
# bench/resume_probe.py publishes and measures. Sluice peers only (W11_PEERS, default "sluice
# sluice-disk": history in memory and in LMDB; add sluice-base with SLUICE_BASE_BIN to compare a
# build from before the paged replay). Not in the default list: `bench/run.sh build W11`.
params_W11() {
  W11_COUNT=${W11_COUNT:-10000}
}

workload_desc_W11() {
  echo "resume of $W11_COUNT missed updates (100 B) by one subscriber: time to the last, RSS growth"
}

w11_one() {
  local peer=$1 round=$2
  local base="$RUN_DIR/runs/W11-$peer-c$W11_COUNT-r$round"
  mkdir -p "$RUN_DIR/runs"
  local rc=0 token url port
  if ! SLUICE_EXTRA_FLAGS="--history-size $((W11_COUNT + 100)) ${SLUICE_EXTRA_FLAGS:-}" \
      peer_start "$peer" 2>"$base.err"; then
    peer_stop
    write_record "$base.json" W11 "$peer" "c$W11_COUNT" "$round" 125 /dev/null
    return 0
  fi
  # PEER_ARGS is (--url URL --jwt TOKEN) for sluice peers.
  token=${PEER_ARGS[3]} url=${PEER_ARGS[1]}
  port=${url#http://127.0.0.1:} port=${port%%/*}
  python3 "$SRC/bench/resume_probe.py" --port "$port" \
    --jwt "$token" --pid "$PEER_SIGNAL_PID" --count "$W11_COUNT" >"$base.out" 2>>"$base.err" || rc=$?
  peer_stop
  write_record "$base.json" W11 "$peer" "c$W11_COUNT" "$round" "$rc" "$base.out"
  log "W11 $peer r$round: $(cat "$base.out")"
}

workload_W11() {
  local r p
  for r in $(seq "${FIRST_ROUND:-1}" "$ROUNDS"); do
    for p in ${W11_PEERS:-sluice sluice-disk}; do
      if have_peer "$p"; then w11_one "$p" "$r"; else log "W11: peer $p is not installed: skipped"; fi
    done
  done
}
