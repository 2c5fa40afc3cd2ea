# shellcheck shell=bash
# W2 — broadcast: 1000 subscribers of one topic, 2000 events of 100 bytes at a fixed rate, so every
# peer does the same work and its CPU per delivery and latency can be compared directly.
workload_desc_W2() { echo "broadcast, 1000 subscribers x 2000 events x 100 B"; }

w2_one() {
  bench_run W2 "$1" "s1000" "$2" --subscribers 1000 --events "$W2_EVENTS" --size 100 \
    --rate "$W2_RATE" --topics 1
}

workload_W2() {
  W2_RATE=${W2_RATE:-200}
  if [ "$QUICK" = 1 ]; then W2_EVENTS=${W2_EVENTS:-1000}; else W2_EVENTS=${W2_EVENTS:-2000}; fi
  alternate w2_one "$ROUNDS"
}
