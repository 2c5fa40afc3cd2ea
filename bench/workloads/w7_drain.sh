# shellcheck shell=bash
# W7 — drain under load: 10k subscribers receiving W7_RATE events/s (5/s is 50,000 deliveries/s,
# busy but not saturated here); after W7_SIGNAL_AFTER events the peer is asked to shut down
# gracefully, the way its operator would: SIGTERM for sluice, the Go recipe and Pushpin, SIGQUIT
# for nginx ("nginx -s quit"; its SIGTERM is the fast, abortive stop), relayed by lib.sh because
# sluice-bench sends SIGTERM. What counts: how many streams ended cleanly at an event boundary,
# how many were cut mid-frame or reset, how long the drain took, events acknowledged but never
# delivered, and how the peer spread the clients' reconnections (retry_ms_hist). The subscribers
# are spread over W7_CLIENT_WORKERS load-generator processes (2).
params_W7() {
  if [ "$QUICK" = 1 ]; then W7_SUBS=${W7_SUBS:-2000}; W7_RATE=${W7_RATE:-20}
  else W7_SUBS=${W7_SUBS:-10000}; W7_RATE=${W7_RATE:-5}; fi
  W7_SIGNAL_AFTER=${W7_SIGNAL_AFTER:-$((W7_RATE * 3))}
  W7_EVENTS=${W7_EVENTS:-$((W7_SIGNAL_AFTER * 2))}
  # The drain ends when every client has seen its stream end, so one client process reading
  # 10k streams alone stretches every peer's drain time; two share that work (same for all).
  W7_CLIENT_WORKERS=${W7_CLIENT_WORKERS:-2}
}

workload_desc_W7() {
  echo "drain under load: $W7_SUBS subscribers at $W7_RATE events/s, shutdown after $W7_SIGNAL_AFTER"
}

w7_one() {
  bench_run W7 "$1" "s$W7_SUBS" "$2" --subscribers "$W7_SUBS" --events "$W7_EVENTS" --size 100 \
    --rate "$W7_RATE" --topics 1 --signal-after "$W7_SIGNAL_AFTER" --end-timeout 40 \
    --workers "$W7_CLIENT_WORKERS"
}

workload_W7() { alternate w7_one "$ROUNDS"; }
