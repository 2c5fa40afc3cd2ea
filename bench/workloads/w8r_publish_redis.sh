# shellcheck shell=bash
# W8R — W8 through Redis Streams: acknowledged publishes per second when every 200 means Redis
# has the update (sluice --redis, a redis-server of the peer's own, no persistence) and the hub
# delivers what it reads back from the stream, against the in-memory hub in the same run, peers
# alternating round by round. Same parameters as W8 (W8_EVENTS, W8_PIPELINE: 16 in flight).
# Only sluice peers: `bench/run.sh build W8R` (W8R_PEERS to change the pair).
params_W8R() { params_W8; }

workload_desc_W8R() {
  echo "publish throughput, history in a Redis stream against in memory:" \
    "$W8_EVENTS events, rate 0, $W8_PIPELINE in flight, 1 subscriber"
}

workload_W8R() {
  local r p
  for r in $(seq "${FIRST_ROUND:-1}" "$ROUNDS"); do
    for p in ${W8R_PEERS:-sluice sluice-redis}; do
      if have_peer "$p"; then
        bench_run W8R "$p" "rate0" "$r" --subscribers 1 --events "$W8_EVENTS" --size 100 \
          --rate 0 --pipeline "$W8_PIPELINE" --topics 1
      else
        log "W8R: peer $p is not installed: skipped"
      fi
    done
  done
}
