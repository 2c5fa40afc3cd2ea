# shellcheck shell=bash
# W2 — broadcast: 1000 subscribers of one topic, 2000 events of 100 bytes at W2_RATE events/s
# (default 50: 50,000 deliveries/s, below where the slower peers saturate on two shared cores),
# so every peer does the same work and CPU per delivery and latency compare directly. An event
# counts as lost when it has not arrived 5 s after the last acknowledgement (--drain-wait), so a
# peer that lags by seconds is not charged with loss for being late.
params_W2() {
  W2_RATE=${W2_RATE:-50}
  if [ "$QUICK" = 1 ]; then W2_EVENTS=${W2_EVENTS:-500}; else W2_EVENTS=${W2_EVENTS:-2000}; fi
}

workload_desc_W2() { echo "broadcast, 1000 subscribers x $W2_EVENTS events x 100 B at $W2_RATE/s"; }

w2_one() {
  bench_run W2 "$1" "s1000" "$2" --subscribers 1000 --events "$W2_EVENTS" --size 100 \
    --rate "$W2_RATE" --topics 1 --drain-wait 5
}

workload_W2() { alternate w2_one "$ROUNDS"; }
