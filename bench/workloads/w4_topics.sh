# shellcheck shell=bash
# W4 — many topics: 10k subscribers spread over 1000 topics (10 per topic); each event goes to one
# topic, so the peer's cost of finding the subscribers of a topic shows, not raw fan-out.
params_W4() {
  W4_RATE=${W4_RATE:-1000}
  if [ "$QUICK" = 1 ]; then W4_SUBS=${W4_SUBS:-5000}; W4_EVENTS=${W4_EVENTS:-2000}
  else W4_SUBS=${W4_SUBS:-10000}; W4_EVENTS=${W4_EVENTS:-5000}; fi
}

workload_desc_W4() { echo "$W4_SUBS subscribers over 1000 topics, $W4_EVENTS events at $W4_RATE/s"; }

w4_one() {
  bench_run W4 "$1" "s${W4_SUBS}t1000" "$2" --subscribers "$W4_SUBS" --topics 1000 \
    --events "$W4_EVENTS" --size 100 --rate "$W4_RATE"
}

workload_W4() { alternate w4_one "$ROUNDS"; }
