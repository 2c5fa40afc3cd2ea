# shellcheck shell=bash
# W7R — drain and come back: the reconnection spread a drain actually achieves. For sluice only:
# it is the only peer here whose final frame announces a jittered retry: (spread over
# --reconnect-spread, 5 s by default); the others end their streams without one, so their clients
# would all come back after the client's own default delay, at once.
#
# W7R_SUBS subscribers (10k; 2k with QUICK=1), read by W7R_CLIENT_WORKERS load-generator processes
# (2, as in W7), receive W7R_RATE events/s; after W7R_SIGNAL_AFTER events the first hub gets
# SIGTERM. A second sluice hub — the "restarted" one: same key, another loopback port — is
# already listening, and every client reconnects to it after the retry: it was told, with its
# Last-Event-ID (sluice-bench --resume --reconnect-url). What counts: how many came back, how many
# attempts failed, and when the clients actually reconnected (reconnect_ms_hist: stream end to the
# new 200) against when they were told to (retry_ms_hist).
params_W7R() {
  if [ "$QUICK" = 1 ]; then W7R_SUBS=${W7R_SUBS:-2000}; else W7R_SUBS=${W7R_SUBS:-10000}; fi
  W7R_RATE=${W7R_RATE:-5}
  W7R_SIGNAL_AFTER=${W7R_SIGNAL_AFTER:-10}
  W7R_EVENTS=${W7R_EVENTS:-$((W7R_SIGNAL_AFTER * 2))}
  W7R_CLIENT_WORKERS=${W7R_CLIENT_WORKERS:-2}
}

workload_desc_W7R() {
  echo "drain and come back (sluice only: the one peer that announces a jittered retry:):" \
    "$W7R_SUBS subscribers, shutdown after $W7R_SIGNAL_AFTER events, reconnection to a second hub"
}

# BENCH_PRE_HOOK: starts the second hub once the first is up. spawn() puts it in PEER_PIDS, so
# peer_stop (after the run, or bench_cleanup on any exit) stops it with the first.
w7r_start_second() {
  spawn "$PEER_DIR/sluice-second.log" "$BUILD/sluice" --listen "127.0.0.1:$W7R_PORT2" \
    --jwt-key "$PEER_KEY" --anonymous --workers 2
  wait_http "$W7R_PORT2" ||
    log "W7R: the second hub is not answering on 127.0.0.1:$W7R_PORT2; reconnections will fail"
}

w7r_one() {
  local round=$1
  # Chosen before the run, since sluice-bench's arguments are; next_port advances past it, so
  # the first hub gets another one.
  next_port W7R_PORT2 || return 0
  BENCH_PRE_HOOK=w7r_start_second bench_run W7R sluice "s$W7R_SUBS" "$round" \
    --subscribers "$W7R_SUBS" --events "$W7R_EVENTS" --size 100 --rate "$W7R_RATE" --topics 1 \
    --signal-after "$W7R_SIGNAL_AFTER" --end-timeout 40 --workers "$W7R_CLIENT_WORKERS" \
    --resume --reconnect-url "http://127.0.0.1:$W7R_PORT2/.well-known/mercure"
}

# Called by alternate() for every peer and round: runs for sluice, passes over the others.
w7r_peer() {
  if [ "$1" = sluice ]; then w7r_one "$2"; fi
}

workload_W7R() {
  case " $PEERS " in
    *" sluice "*) alternate w7r_peer "$ROUNDS" ;;
    *) log "W7R: needs sluice, which is not among the peers ($PEERS): skipped" ;;
  esac
}
