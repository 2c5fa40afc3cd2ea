# shellcheck shell=bash
# W5 — slow consumers among fast ones: W2's broadcast, plus 200 subscribers of the same topic that
# read 1 KiB/s through a 4 KiB receive buffer (bench/slow_reader.py). The fast subscribers'
# latency and loss, against W2's, show whether the slow ones hold the others back; the slow
# readers' own report shows what the peer did with them (kept, cut, or silently dropped events).
params_W5() {
  params_W2
  W5_SLOW=${W5_SLOW:-200}
  W5_SECONDS=$((W2_EVENTS / W2_RATE + 120))
}

workload_desc_W5() { echo "W2 plus $W5_SLOW slow readers on the same topic"; }

# Started once the peer is up, so the slow readers are subscribed before the first event.
w5_start_slow() {
  python3 "$SRC/bench/slow_reader.py" --url "$PEER_SUB_URL" --topic "$BENCH_TOPIC" \
    --connections "$W5_SLOW" --bytes-per-sec 1024 --seconds "$W5_SECONDS" \
    >"$BENCH_EXTRA_FILE" 2>"$BENCH_EXTRA_FILE.err" &
  W5_SLOW_PID=$!
  HELPER_PIDS+=("$W5_SLOW_PID")
  sleep 1
}

# The slow readers report what they got when told to stop.
w5_stop_slow() {
  kill -TERM "$W5_SLOW_PID" 2>/dev/null
  wait "$W5_SLOW_PID" 2>/dev/null
}

w5_one() {
  local peer=$1 round=$2
  BENCH_EXTRA_FILE="$RUN_DIR/runs/W5-$peer-slow-r$round.slow" BENCH_PRE_HOOK=w5_start_slow \
    BENCH_POST_HOOK=w5_stop_slow bench_run W5 "$peer" "slow" "$round" --subscribers 1000 \
    --events "$W2_EVENTS" --size 100 --rate "$W2_RATE" --topics 1 --drain-wait 5
}

workload_W5() { alternate w5_one "$ROUNDS"; }
