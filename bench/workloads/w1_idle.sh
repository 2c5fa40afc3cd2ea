# shellcheck shell=bash
# W1 — idle connections: memory per connection. Subscribers connect and sit idle; the peer's
# resident memory above its empty baseline, divided by the connections, is the cost of holding
# one. 19k connections approach this machine's 20,000 open-file limit per process, so the load
# generator spreads its sockets over child processes (sluice-bench forks when it must).
params_W1() {
  if [ "$QUICK" = 1 ]; then W1_COUNTS=${W1_COUNTS:-1000 10000}; W1_IDLE=${W1_IDLE:-1}
  else W1_COUNTS=${W1_COUNTS:-1000 10000 19000}; W1_IDLE=${W1_IDLE:-5}; fi
}

workload_desc_W1() { echo "idle connections ($W1_COUNTS), memory per connection"; }

w1_one() {
  local peer=$1 round=$2 n
  for n in $W1_COUNTS; do
    bench_run W1 "$peer" "c$n" "$round" --subscribers "$n" --idle "$W1_IDLE"
  done
}

workload_W1() { alternate w1_one "$ROUNDS"; }
