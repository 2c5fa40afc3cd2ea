# shellcheck shell=bash
# W8D — W8 with the durable history: acknowledged publishes per second when every 200 means the
# update is committed to LMDB (sluice --data-dir, --fsync $DISK_FSYNC, batch unless set), against
# the in-memory hub in the same run, peers alternating round by round. Same parameters as W8
# (W8_EVENTS, W8_PIPELINE: 16 in flight). Only sluice peers: `bench/run.sh build W8D`.
params_W8D() { params_W8; }

workload_desc_W8D() {
  echo "publish throughput, durable history (--fsync ${DISK_FSYNC:-batch}) against in memory:" \
    "$W8_EVENTS events, rate 0, $W8_PIPELINE in flight, 1 subscriber"
}

w8d_one() {
  bench_run W8D "$1" "rate0" "$2" --subscribers 1 --events "$W8_EVENTS" --size 100 --rate 0 \
    --pipeline "$W8_PIPELINE" --topics 1
}

workload_W8D() {
  local r p
  for r in $(seq "${FIRST_ROUND:-1}" "$ROUNDS"); do
    for p in ${W8D_PEERS:-sluice sluice-disk}; do
      if have_peer "$p"; then w8d_one "$p" "$r"; else log "W8D: peer $p is not installed: skipped"; fi
    done
  done
}
