# shellcheck shell=bash
# W6 — connection churn: W6_INFLIGHT subscriptions kept in flight, each closed and replaced as
# soon as it is established, for W6_SECONDS. What counts: subscriptions established per second,
# failures, and the peer's CPU per connection set up and torn down.
params_W6() {
  W6_INFLIGHT=${W6_INFLIGHT:-500}
  if [ "$QUICK" = 1 ]; then W6_SECONDS=${W6_SECONDS:-3}; else W6_SECONDS=${W6_SECONDS:-10}; fi
}

workload_desc_W6() { echo "connection churn: $W6_INFLIGHT subscriptions in flight for $W6_SECONDS s"; }

w6_one() {
  bench_run W6 "$1" "i$W6_INFLIGHT" "$2" --subscribers "$W6_INFLIGHT" --churn "$W6_SECONDS"
}

workload_W6() { alternate w6_one "$ROUNDS"; }
