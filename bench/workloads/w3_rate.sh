# shellcheck shell=bash
# W3 — rate sweep: 1000 subscribers of one topic, the publish rate doubled step by step until the
# peer saturates: p99 latency at or above 100 ms, any loss, a failed run, or deliveries per second
# below 90% of what was asked. The last step below that is the peer's sustainable rate.
params_W3() {
  W3_SUBS=${W3_SUBS:-1000}
  if [ "$QUICK" = 1 ]; then W3_RATES=${W3_RATES:-50 200 800 1600}; W3_STEP_SECONDS=${W3_STEP_SECONDS:-2}
  else W3_RATES=${W3_RATES:-25 50 100 200 400 800 1600 3200}; W3_STEP_SECONDS=${W3_STEP_SECONDS:-4}; fi
}

workload_desc_W3() {
  echo "rate sweep ($W3_RATES events/s), $W3_SUBS subscribers, until p99 >= 100 ms or loss"
}

w3_one() {
  local peer=$1 round=$2 rate rec p99 lost dps rc
  for rate in $W3_RATES; do
    bench_run W3 "$peer" "r$rate" "$round" --subscribers "$W3_SUBS" \
      --events $((rate * W3_STEP_SECONDS)) --size 100 --rate "$rate" --topics 1
    rec=$RUN_RECORD
    rc=$(record_exit "$rec")
    p99=$(record_get "$rec" latency_us.p99)
    lost=$(record_get "$rec" lost)
    dps=$(record_get "$rec" deliveries_per_sec)
    if [ "$rc" != 0 ] || [ -z "$p99" ] || [ "${lost:-0}" != 0 ] ||
       python3 -c 'import sys; p99, dps, want = map(float, sys.argv[1:]); sys.exit(0 if p99 >= 100000 or dps < 0.9 * want else 1)' \
         "$p99" "${dps:-0}" "$((rate * W3_SUBS))"; then
      log "W3 $peer saturated at $rate events/s"
      break
    fi
  done
}

workload_W3() { alternate w3_one "$ROUNDS"; }
