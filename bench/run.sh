#!/usr/bin/env bash
# bench/run.sh — the entry point of `make bench`: runs the named workloads (default: all of
# W1..W8 and W7R) against every peer that is installed, alternating peers within each round (A,B,A,B) so
# that drift of the machine spreads evenly, then turns the records into tables and plots.
#
#   bench/run.sh BUILD_DIR [W1 W2 ...]
#
# Environment: QUICK=1 a ~5 minute subset (smaller counts, one round); ROUNDS (default 2, QUICK 1)
# rounds of every workload; PEERS (default "sluice sluice-1w recipe nchan pushpin"); RUN_TIMEOUT seconds one
# sluice-bench run may take (default 300); BENCH_PORT_BASE first loopback port (default 18400);
# PUBLISH_PLOTS=1 also writes the PNGs into docs/bench/ (the default for a full run);
# BENCH_DIR=bench/results/<run> FIRST_ROUND=N adds rounds N..ROUNDS to an earlier run.
#
# Results: bench/results/<date>[-quick]/ holds machine.json, runs/*.json (one record per run:
# workload, peer, parameters, exit code, sluice-bench's JSON), summary.md and data/*.dat;
# bench/results/latest points at it. Exit status: 0 when every run produced a result, 1 otherwise
# (a run whose peer lost or reordered events still counts as a result: that is a finding).
set -uo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: bench/run.sh BUILD_DIR [W1 ... W9 W4U W4P W6S W7R W8D W8R W10 W11 W12]" >&2
  exit 2
fi
BUILD=$(cd "$1" && pwd)
shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then ROUNDS=${ROUNDS:-1}; else ROUNDS=${ROUNDS:-2}; fi
PEERS=${PEERS:-sluice sluice-1w recipe nchan pushpin}
WORKLOADS=("$@")
# Only a run of every workload refreshes the plots in docs/bench/ (PUBLISH_PLOTS, unless QUICK=1
# or BENCH_DIR): a run of some workloads would replace them with plots of part of the picture.
full=0
if [ ${#WORKLOADS[@]} -eq 0 ]; then
  WORKLOADS=(W1 W2 W3 W4 W4U W4P W5 W6 W6S W7 W7R W8 W9)
  [ -z "${BENCH_DIR:-}" ] && full=1
fi
HELPER_PIDS=()

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
for f in "$SRC"/bench/workloads/w*.sh; do
  # shellcheck disable=SC1090
  . "$f"
done

if [ ! -x "$BUILD/sluice-bench" ]; then
  echo "bench: $BUILD/sluice-bench is missing; run 'make build' first" >&2
  exit 2
fi
for w in "${WORKLOADS[@]}"; do
  if ! declare -F "workload_$w" >/dev/null; then
    echo "bench: unknown workload '$w' (W1..W9, W4U, W4P, W6S, W7R, W8D, W8R, W10, W11, W12)" >&2
    exit 2
  fi
done

active=()
for p in $PEERS; do
  if have_peer "$p"; then active+=("$p"); else log "peer $p is not installed here: skipped"; fi
done
PEERS="${active[*]}"
[ -n "$PEERS" ] || { echo "bench: no peer to measure" >&2; exit 2; }

# Each peer may hold up to 19k connections, and so may the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -n "${BENCH_DIR:-}" ]; then
  # Adding rounds to an earlier run (with FIRST_ROUND): its records and machine.json stay.
  RUN_DIR=$(cd "$BENCH_DIR" && pwd) || exit 2
else
  stamp=$(date +%Y%m%d-%H%M%S)
  [ "$QUICK" = 1 ] && stamp="$stamp-quick"
  RUN_DIR="$SRC/bench/results/$stamp"
  mkdir -p "$RUN_DIR/runs"
  ln -sfn "$stamp" "$SRC/bench/results/latest"
fi
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

[ -e "$RUN_DIR/machine.json" ] || machine_info "$RUN_DIR/machine.json"
log "results in $RUN_DIR; peers: $PEERS; workloads: ${WORKLOADS[*]}; rounds: $ROUNDS; quick: $QUICK"

# Calls "$1 PEER ROUND" for round 1..$2 and, within a round, for each peer in turn.
# shellcheck disable=SC2317  # called from the workload files
alternate() {
  local fn=$1 rounds=$2 r p
  for r in $(seq "${FIRST_ROUND:-1}" "$rounds"); do
    for p in $PEERS; do "$fn" "$p" "$r"; done
  done
}

started=$SECONDS
for w in "${WORKLOADS[@]}"; do "params_$w"; done
for w in "${WORKLOADS[@]}"; do
  log "== $w: $("workload_desc_$w")"
  "workload_$w"
done
log "all workloads done in $((SECONDS - started)) s"

plot_args=()
if [ "${PUBLISH_PLOTS:-$([ "$QUICK" = 0 ] && [ "$full" = 1 ] && echo 1 || echo 0)}" = 1 ]; then
  plot_args=(--publish "$SRC/docs/bench")
fi
python3 "$SRC/bench/collect.py" "$RUN_DIR" --plots "$SRC/bench/plot" "${plot_args[@]}"
status=$?
log "summary: $RUN_DIR/summary.md"
exit $status
