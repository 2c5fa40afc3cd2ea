# shellcheck shell=bash
# W9 — under attack: a broadcast of 100 subscribers x W9_EVENTS events of 100 B at 200/s, once
# calm and once while bench/attacker.py attacks the same peer from the same machine: pipelined
# requests never read (memory amplification), slowloris heads, and for Mercure hubs 200 KiB
# updates filling history and resumes from 'earliest' with 256 selectors. The record keeps the
# attacker's report: the peer's peak RSS under attack and what each attack got done. The hub
# should keep its delivery p99 within 2x of the calm run and its memory within its budgets.
params_W9() {
  if [ "$QUICK" = 1 ]; then W9_EVENTS=${W9_EVENTS:-600}; else W9_EVENTS=${W9_EVENTS:-2000}; fi
  W9_SECONDS=$((W9_EVENTS / 200 + 15))
}

workload_desc_W9() { echo "broadcast at 200/s, calm and under attack (bench/attacker.py)"; }

w9_start_attack() {
  local port pids mercure=()
  port=$(sed -E 's|.*127\.0\.0\.1:([0-9]+)/.*|\1|' <<<"$PEER_SUB_URL")
  pids=$(IFS=,; echo "${PEER_SERVER_PIDS[*]}")
  case "$W9_PEER" in
    sluice*) mercure=(--publish-url "${PEER_ARGS[1]}" --token "${PEER_ARGS[3]}"
                      --subscribe-url "${PEER_ARGS[1]}") ;;
  esac
  python3 "$SRC/bench/attacker.py" --port "$port" --pids "$pids" --seconds "$W9_SECONDS" \
    "${mercure[@]}" >"$BENCH_EXTRA_FILE" 2>"$BENCH_EXTRA_FILE.err" &
  W9_ATTACK_PID=$!
  HELPER_PIDS+=("$W9_ATTACK_PID")
  sleep 2 # the attack is under way before the first event
}

w9_stop_attack() {
  kill -TERM "$W9_ATTACK_PID" 2>/dev/null
  wait "$W9_ATTACK_PID" 2>/dev/null
}

w9_one() {
  local peer=$1 round=$2
  bench_run W9 "$peer" calm "$round" --subscribers 100 --events "$W9_EVENTS" --size 100 \
    --rate 200 --topics 1 --drain-wait 5
  W9_PEER=$peer BENCH_EXTRA_FILE="$RUN_DIR/runs/W9-$peer-attack-r$round.attack" \
    BENCH_PRE_HOOK=w9_start_attack BENCH_POST_HOOK=w9_stop_attack \
    bench_run W9 "$peer" attack "$round" --subscribers 100 --events "$W9_EVENTS" --size 100 \
    --rate 200 --topics 1 --drain-wait 5
}

workload_W9() { alternate w9_one "$ROUNDS"; }
