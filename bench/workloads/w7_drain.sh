# shellcheck shell=bash
# W7 — drain under load: 10k subscribers receiving 200 events/s; after W7_SIGNAL_AFTER events the
# peer is asked to shut down gracefully, the way its operator would: SIGTERM for sluice, the Go
# recipe and Pushpin, SIGQUIT for nginx ("nginx -s quit"; its SIGTERM is the fast, abortive stop),
# relayed by lib.sh because sluice-bench sends SIGTERM. What counts: how many streams ended
# cleanly at an event boundary, how many were reset or cut mid-frame, how long the drain took,
# and how the peer spread the clients' reconnections (retry_ms_hist).
workload_desc_W7() { echo "drain under load: 10k subscribers, graceful shutdown mid-stream"; }

w7_one() {
  bench_run W7 "$1" "s$W7_SUBS" "$2" --subscribers "$W7_SUBS" --events "$W7_EVENTS" --size 100 \
    --rate 200 --topics 1 --signal-after "$W7_SIGNAL_AFTER" --end-timeout 40
}

workload_W7() {
  W7_SIGNAL_AFTER=${W7_SIGNAL_AFTER:-400}
  W7_EVENTS=${W7_EVENTS:-2000}
  if [ "$QUICK" = 1 ]; then W7_SUBS=${W7_SUBS:-2000}; else W7_SUBS=${W7_SUBS:-10000}; fi
  alternate w7_one "$ROUNDS"
}
