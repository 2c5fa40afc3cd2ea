# shellcheck shell=bash
# W6S — W6's connection churn with --subscriptions on (sluice peers only): every subscription
# set up and torn down also publishes its creation and termination events (private updates
# through the bus and history) and enters and leaves the registry. Compare with W6 of the same
# run: the difference is what active subscriptions cost a connection.
params_W6S() { params_W6; }

workload_desc_W6S() {
  echo "connection churn with --subscriptions: $W6_INFLIGHT subscriptions in flight for" \
    "$W6_SECONDS s (sluice only; compare with W6)"
}

w6s_one() {
  case "$1" in sluice*) ;; *) return 0 ;; esac
  SLUICE_EXTRA_FLAGS=--subscriptions bench_run W6S "$1" "i$W6_INFLIGHT" "$2" \
    --subscribers "$W6_INFLIGHT" --churn "$W6_SECONDS"
}

workload_W6S() { alternate w6s_one "$ROUNDS"; }
