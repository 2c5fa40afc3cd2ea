# shellcheck shell=bash
# W2 — broadcast: 1000 subscribers of one topic, 2000 events of 100 bytes from one publisher, at
# each publish rate of W2_RATES (default "0 1000 50"; 0 = as fast as acknowledged, one request in
# flight). A server that coalesces the updates a subscriber gets within a short window pays one
# write per update at 50 events/s but shares writes at 1000/s and above, so CPU per delivery is
# only comparable rate by rate: every peer runs every rate, in alternation, ROUNDS rounds. An
# event counts as lost when it has not arrived 5 s after the last acknowledgement (--drain-wait),
# so a peer that lags by seconds is not charged with loss for being late.
#
# W2_RATE, when set, is a single-rate override (W2_RATE=50 runs 50 events/s only), as before
# W2_RATES existed. W5 reuses W2_RATE (default 50) as its own rate.

# Whether the caller set W2_RATE, captured when this file is sourced: params_W2 runs again from
# params_W5 once W2_RATE has its default, and must not take that for an override.
W2_RATE_GIVEN=${W2_RATE:-}

params_W2() {
  if [ -n "$W2_RATE_GIVEN" ]; then W2_RATES=$W2_RATE_GIVEN; else W2_RATES=${W2_RATES:-0 1000 50}; fi
  local rate
  for rate in $W2_RATES; do
    case "$rate" in
      ''|*[!0-9]*) echo "bench: W2_RATES/W2_RATE: '$rate' is not a rate in events/s" >&2; exit 2 ;;
    esac
  done
  W2_RATE=${W2_RATE:-50}
  if [ "$QUICK" = 1 ]; then W2_EVENTS=${W2_EVENTS:-500}; else W2_EVENTS=${W2_EVENTS:-2000}; fi
}

workload_desc_W2() {
  echo "broadcast, 1000 subscribers x $W2_EVENTS events x 100 B at each of: $W2_RATES events/s (0 = as fast as acknowledged)"
}

# One run: peer $1, round $2, rate $3. Labels are s<subscribers>-r<rate>; collect.py groups by
# the rate.
w2_one() {
  bench_run W2 "$1" "s1000-r$3" "$2" --subscribers 1000 --events "$W2_EVENTS" --size 100 \
    --rate "$3" --pipeline 1 --topics 1 --drain-wait 5
}

# Within a round, rate by rate, the peers in turn (A, B, A, B at each rate), so that two peers'
# runs at the same rate are as close in time as they can be.
workload_W2() {
  local round rate peer
  for round in $(seq 1 "$ROUNDS"); do
    for rate in $W2_RATES; do
      for peer in $PEERS; do w2_one "$peer" "$round" "$rate"; done
    done
  done
}
