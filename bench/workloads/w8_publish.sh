# shellcheck shell=bash
# W8 — publish throughput: events published as fast as the peer acknowledges them (rate 0, with
# W8_PIPELINE requests in flight on the publishing connection), to a single subscriber that
# checks every one arrives.
params_W8() {
  W8_PIPELINE=${W8_PIPELINE:-16}
  if [ "$QUICK" = 1 ]; then W8_EVENTS=${W8_EVENTS:-5000}; else W8_EVENTS=${W8_EVENTS:-20000}; fi
}

workload_desc_W8() { echo "publish throughput: $W8_EVENTS events, rate 0, $W8_PIPELINE in flight, 1 subscriber"; }

w8_one() {
  bench_run W8 "$1" "rate0" "$2" --subscribers 1 --events "$W8_EVENTS" --size 100 --rate 0 \
    --pipeline "$W8_PIPELINE" --topics 1
}

workload_W8() { alternate w8_one "$ROUNDS"; }
