# shellcheck shell=bash
# W6 — churn: 1000 subscribers each reconnecting every 2 s while events flow at 200/s; they resume
# with Last-Event-ID, so a peer that honours it loses nothing and one that does not shows the gap.
workload_desc_W6() { echo "1000 subscribers reconnecting every 2 s, resuming by Last-Event-ID"; }

w6_one() {
  bench_run W6 "$1" "churn2" "$2" --subscribers 1000 --churn 2 --resume \
    --events "$W6_EVENTS" --size 100 --rate 200 --topics 1
}

workload_W6() {
  if [ "$QUICK" = 1 ]; then W6_EVENTS=${W6_EVENTS:-1000}; else W6_EVENTS=${W6_EVENTS:-3000}; fi
  alternate w6_one 1
}
