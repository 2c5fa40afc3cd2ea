# shellcheck shell=bash
# bench/lib.sh — shared by bench/run.sh and bench/workloads/*.sh: building, starting and stopping
# the peers (sluice, the Go recipe, nginx+nchan, Pushpin), running one sluice-bench measurement
# against a peer and storing it as one JSON record, and recording the machine. Sourced, not run.
#
# Every peer listens on 127.0.0.1 only, is started in its own session (setsid) so that stopping it
# stops all of its processes, and is stopped by bench_cleanup on any exit. A run is bounded twice:
# by sluice-bench's own --timeout and by timeout(1) around it.
#
# Expects from the caller: BUILD (absolute build dir), SRC (repository root), RUN_DIR (where this
# invocation's records go), QUICK (0/1).

PEER_PIDS=()          # session leaders this shell started; bench_cleanup stops them
PEER_ARGS=()          # sluice-bench arguments that point it at the running peer
PEER_SERVER_PIDS=()   # processes whose CPU and memory are the peer's cost
PEER_SIGNAL_PID=""    # gets sluice-bench's SIGTERM (the first --server-pid): the peer, or a relay
PEER_SUB_URL=""       # subscribe URL template ({topic}), for helpers other than sluice-bench
PEER_DIR=""           # the peer's temporary prefix
PEER_KEY=""           # sluice's JWT key, for a workload that starts a second hub beside it (W7R)
BENCH_CHILD=""        # the running load generator (its timeout(1) wrapper)
PORT_NEXT=${BENCH_PORT_BASE:-18400}
# The topic sluice-bench publishes to when --topics is 1; helpers that subscribe beside it use it.
BENCH_TOPIC=${BENCH_TOPIC:-https://bench.sluice.test/t/0}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Sets the variable named $1 to a fresh loopback port, so that TIME_WAIT left by the previous
# run's 19k connections never shares a 4-tuple with the next run. (Not in a subshell: it
# advances PORT_NEXT.)
next_port() {
  local base=${BENCH_PORT_BASE:-18400} p
  for _ in $(seq 1 400); do
    p=$PORT_NEXT
    PORT_NEXT=$((PORT_NEXT + 1))
    [ "$PORT_NEXT" -ge $((base + 400)) ] && PORT_NEXT=$base
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  echo "bench: no free loopback port in $base..$((base + 399))" >&2
  return 1
}

# Waits until an HTTP server answers on 127.0.0.1:$1 (any status), at most 15 s.
wait_http() {
  local deadline=$((SECONDS + 15))
  while [ $SECONDS -lt $deadline ]; do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then return 0; fi
    sleep 0.1
  done
  echo "bench: nothing answered on 127.0.0.1:$1 within 15 s" >&2
  return 1
}

# Builds the Go recipe into $BUILD/bench-peers/recipe, offline, with Go's caches in the build dir.
build_recipe() {
  local out="$BUILD/bench-peers/recipe"
  [ -x "$out" ] && [ "$out" -nt "$SRC/bench/peers/recipe-go/main.go" ] && return 0
  mkdir -p "$BUILD/bench-peers" "$BUILD/go"
  (cd "$SRC/bench/peers/recipe-go" &&
    GOPATH="$BUILD/go/path" GOCACHE="$BUILD/go/cache" GOFLAGS=-mod=mod GOPROXY=off \
      go build -o "$out" .)
}

have_peer() {
  case "$1" in
    sluice|sluice-1w|sluice-disk|sluice-disk-1w) [ -x "$BUILD/sluice" ] ;;
    sluice-redis|sluice-redis-1w) [ -x "$BUILD/sluice" ] && command -v redis-server >/dev/null ;;
    sluice-upgrade) [ -x "$BUILD/sluice" ] ;;
    nginx-upgrade|nginx-sluice-upgrade) [ -x "$BUILD/sluice" ] && [ -x /usr/sbin/nginx ] ;;
    sluice-base|sluice-base-1w|sluice-base-disk) [ -n "${SLUICE_BASE_BIN:-}" ] && [ -x "$SLUICE_BASE_BIN" ] ;;
    recipe) command -v go >/dev/null ;;
    nchan) command -v nginx >/dev/null && [ -n "$(nchan_module)" ] ;;
    pushpin) command -v pushpin >/dev/null && command -v condure >/dev/null && command -v zurl >/dev/null ;;
    *) return 1 ;;
  esac
}

nchan_module() {
  local m
  for m in /usr/lib/nginx/modules/ngx_nchan_module.so /usr/lib64/nginx/modules/ngx_nchan_module.so; do
    [ -f "$m" ] && { echo "$m"; return 0; }
  done
  return 0
}

# Starts a session leader in the background; its pid lands in PEER_PIDS and in $LAST_PID.
spawn() {
  local logfile=$1; shift
  setsid "$@" >"$logfile" 2>&1 < /dev/null &
  LAST_PID=$!
  PEER_PIDS+=("$LAST_PID")
}

# PEER_RESTART_CMD: the command that started the peer's server, for a workload that starts it
# again (W10).
peer_start() {
  local name=$1 port
  next_port port || return 1
  PEER_RESTART_CMD=()
  PEER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-$name.XXXXXX")
  PEER_SERVER_PIDS=()
  case "$name" in
    sluice|sluice-1w|sluice-base|sluice-base-1w|sluice-base-disk|sluice-disk|sluice-disk-1w|sluice-redis|sluice-redis-1w)
      # sluice-1w: one worker thread, so that the hub and the load generator each have a core
      # of their own (sluice uses both cores and so shares one with the load generator).
      # sluice-base*: the same hub built from another commit ($SLUICE_BASE_BIN), to measure a
      # change before and after in one run.
      # sluice-disk*: the durable history (--data-dir in the peer's scratch directory, removed
      # with it) at --fsync $DISK_FSYNC (batch unless set).
      # sluice-redis*: history and delivery through a Redis stream (--redis), on a redis-server
      # of its own (no persistence, in the peer's scratch directory), counted as the peer's.
      local key token workers=2 bin="$BUILD/sluice" disk=() redis_pid=""
      case "$name" in *-1w) workers=1 ;; esac
      case "$name" in sluice-disk*|sluice-base-disk) disk=(--data-dir "$PEER_DIR/data" --fsync "${DISK_FSYNC:-batch}") ;; esac
      if [[ "$name" == sluice-redis* ]]; then
        local rport
        next_port rport || return 1
        spawn "$PEER_DIR/redis.log" redis-server --port "$rport" --bind 127.0.0.1 --save '' \
          --appendonly no --dir "$PEER_DIR" --daemonize no
        redis_pid=$LAST_PID
        for _ in $(seq 1 100); do
          (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break
          sleep 0.05
        done
        disk=(--redis "redis://127.0.0.1:$rport" --redis-stream bench)
      fi
      case "$name" in sluice-base*) bin=$SLUICE_BASE_BIN ;; esac
      key="bench-key-$(date +%s%N)-0123456789abcdef0123456789abcdef"
      # A spec token: aud is the peer's URL (the hub's default public URL), iss names the bench.
      token=$("$bin" token --key "$key" --publish '*' --exp 86400 --issuer sluice-bench \
              --audience "http://127.0.0.1:$port/.well-known/mercure") || return 1
      # SLUICE_EXTRA_FLAGS: flags a workload adds (W6S: --subscriptions), split on spaces.
      # shellcheck disable=SC2086
      PEER_RESTART_CMD=("$bin" --listen "127.0.0.1:$port" --jwt-key "$key" \
        --anonymous --workers "$workers" "${disk[@]}" ${SLUICE_EXTRA_FLAGS:-})
      spawn "$PEER_DIR/sluice.log" "${PEER_RESTART_CMD[@]}"
      PEER_SERVER_PIDS=("$LAST_PID" $redis_pid)
      PEER_SIGNAL_PID=$LAST_PID
      # shellcheck disable=SC2034  # read by bench/workloads/w7r_reconnect.sh
      PEER_KEY=$key
      PEER_ARGS=(--url "http://127.0.0.1:$port/.well-known/mercure" --jwt "$token")
      PEER_SUB_URL="http://127.0.0.1:$port/.well-known/mercure?topic={topic}"
      ;;
    sluice-upgrade|nginx-upgrade|nginx-sluice-upgrade)
      # W12, the live upgrade (bench/workloads/w12_upgrade.sh): sluice-bench's --upgrade-after
      # sends SIGUSR2 to PEER_SIGNAL_PID. sluice-upgrade: that is the hub itself, which hands
      # its connections to a new process of the same binary. nginx-*: deploy/nginx.conf in front
      # of the hub, and a relay gets the SIGUSR2: nginx-upgrade upgrades nginx's binary (USR2 to
      # its master, then WINCH and QUIT to the old master once the new one runs: the old workers
      # keep their streams until worker_shutdown_timeout, 30 s, and cut them then);
      # nginx-sluice-upgrade passes SIGUSR2 on to the hub behind nginx.
      local key token hub_port=$port
      [ "$name" != sluice-upgrade ] && { next_port hub_port || return 1; }
      key="bench-key-$(date +%s%N)-0123456789abcdef0123456789abcdef"
      token=$("$BUILD/sluice" token --key "$key" --publish '*' --exp 86400 --issuer sluice-bench \
              --audience "http://127.0.0.1:$hub_port/.well-known/mercure") || return 1
      PEER_RESTART_CMD=("$BUILD/sluice" --listen "127.0.0.1:$hub_port" --jwt-key "$key" \
        --anonymous --workers 2)
      # The hub that is upgraded names its serving process in a pid file.
      [ "$name" != nginx-upgrade ] && PEER_RESTART_CMD+=(--pid-file "$PEER_DIR/sluice.pid")
      spawn "$PEER_DIR/sluice.log" "${PEER_RESTART_CMD[@]}"
      local hub_pid=$LAST_PID
      PEER_SERVER_PIDS=("$hub_pid")
      PEER_SIGNAL_PID=$hub_pid
      # shellcheck disable=SC2034  # read by bench/workloads/w12_upgrade.sh
      PEER_KEY=$key
      PEER_ARGS=(--url "http://127.0.0.1:$port/.well-known/mercure" --jwt "$token")
      PEER_SUB_URL="http://127.0.0.1:$port/.well-known/mercure?topic={topic}"
      if [ "$name" != sluice-upgrade ]; then
        wait_http "$hub_port" || return 1
        local conf
        conf=$(python3 "$SRC/deploy/nginx_local.py" "$SRC/deploy/nginx.conf" "$PEER_DIR" "$port" \
               "$hub_port") || return 1
        # Each proxied stream holds two connections in nginx, and a process may open 20,000
        # files here: two workers (the example's `auto` on two cores; nginx_local.py renders
        # one), each with room for all of them (a bench-only change).
        sed -i -e 's/^worker_processes [0-9]*;/worker_processes 2;/' \
          -e 's/worker_connections [0-9]*;/worker_connections 20000;/' \
          -e 's/worker_rlimit_nofile [0-9]*;/worker_rlimit_nofile 20000;/' "$conf"
        # Daemonized, as nginx runs in production: a master started with `daemon off` refuses
        # the binary upgrade (it takes its parent for an old master). It leaves the session, so
        # peer_stop finds it by its pid file.
        spawn "$PEER_DIR/nginx.out" /usr/sbin/nginx -p "$PEER_DIR/" -c "$conf" -e stderr
        local master=""
        for _ in $(seq 1 100); do
          master=$(cat "$PEER_DIR/nginx.pid" 2>/dev/null) && [ -n "$master" ] && break
          sleep 0.05
        done
        [ -n "$master" ] || { echo "bench: nginx wrote no pid file" >&2; return 1; }
        if [ "$name" = nginx-upgrade ]; then
          # shellcheck disable=SC2016  # expanded by the relay's shell: $0 prefix, $1 nginx binary
          spawn "$PEER_DIR/relay.out" bash -c '
            up() {
              local old new=""
              old=$(cat "$0/nginx.pid")
              kill -USR2 "$old"
              for _ in $(seq 1 200); do
                new=$(cat "$0/nginx.pid" 2>/dev/null)
                [ -n "$new" ] && [ "$new" != "$old" ] && [ -e "$0/nginx.pid.oldbin" ] && break
                sleep 0.05
              done
              sleep 0.5
              kill -WINCH "$old"; kill -QUIT "$old"
              echo "$(date +%s.%N) nginx upgrade: old master $old, new master $new"
            }
            trap up USR2
            trap "kill -QUIT \$(cat \"\$0/nginx.pid\"); exit 0" TERM
            while :; do sleep 86400 & wait $!; done' "$PEER_DIR"
        else
          # shellcheck disable=SC2016
          spawn "$PEER_DIR/relay.out" bash -c '
            trap "kill -USR2 \$0; echo \$(date +%s.%N) SIGUSR2 to the hub \$0" USR2
            trap "exit 0" TERM
            while :; do sleep 86400 & wait $!; done' "$hub_pid"
        fi
        PEER_SIGNAL_PID=$LAST_PID
        PEER_SERVER_PIDS=("$master" "$hub_pid")
      fi
      ;;
    recipe)
      build_recipe || return 1
      PEER_RESTART_CMD=("$BUILD/bench-peers/recipe" -listen "127.0.0.1:$port" -shutdown-timeout 25s)
      spawn "$PEER_DIR/recipe.log" "${PEER_RESTART_CMD[@]}"
      PEER_SERVER_PIDS=("$LAST_PID")
      PEER_SIGNAL_PID=$LAST_PID
      PEER_SUB_URL="http://127.0.0.1:$port/events?topic={topic}"
      PEER_ARGS=(--sub-url "$PEER_SUB_URL" --pub-url "http://127.0.0.1:$port/publish?topic={topic}"
        --pub-mode form)
      ;;
    nchan)
      local user_line=""
      [ "$(id -u)" -eq 0 ] && user_line="user root;"
      sed -e "s|@USER_LINE@|$user_line|" -e "s|@MODULE@|$(nchan_module)|" -e "s|@WORKERS@|2|" \
        -e "s|@PREFIX@|$PEER_DIR|g" -e "s|@PORT@|$port|" \
        "$SRC/bench/peers/nchan/nginx.conf.in" >"$PEER_DIR/nginx.conf"
      PEER_RESTART_CMD=(nginx -p "$PEER_DIR" -c "$PEER_DIR/nginx.conf" -g 'daemon off;')
      spawn "$PEER_DIR/nginx.out" "${PEER_RESTART_CMD[@]}"
      local master=$LAST_PID
      # nginx stops gracefully on SIGQUIT (SIGTERM is its abortive stop); sluice-bench sends
      # SIGTERM, so a relay that sleeps in wait(2) turns one into the other.
      # shellcheck disable=SC2016  # $0 is expanded by the relay's shell: the master's pid
      spawn "$PEER_DIR/relay.out" bash -c 'trap "kill -QUIT $0; exit 0" TERM; sleep 86400 & wait' \
        "$master"
      PEER_SIGNAL_PID=$LAST_PID
      PEER_SERVER_PIDS=("$master")
      PEER_SUB_URL="http://127.0.0.1:$port/sub?id={topic}"
      PEER_ARGS=(--sub-url "$PEER_SUB_URL" --pub-url "http://127.0.0.1:$port/pub?id={topic}"
        --pub-mode nchan)
      ;;
    pushpin)
      local origin grip push_in push_sub command
      next_port origin && next_port grip && next_port push_in && next_port push_sub &&
        next_port command || return 1
      mkdir -p "$PEER_DIR/run" "$PEER_DIR/log"
      echo "* 127.0.0.1:$origin" >"$PEER_DIR/routes"
      sed -e "s|@PREFIX@|$PEER_DIR|g" -e "s|@PORT@|$port|" -e "s|@PORT_GRIP@|$grip|" \
        -e "s|@PORT_PUSH_IN@|$push_in|" -e "s|@PORT_PUSH_SUB@|$push_sub|" \
        -e "s|@PORT_COMMAND@|$command|" \
        "$SRC/bench/peers/pushpin/pushpin.conf.in" >"$PEER_DIR/pushpin.conf"
      spawn "$PEER_DIR/origin.log" python3 "$SRC/bench/peers/pushpin/origin.py" \
        --listen "127.0.0.1:$origin" --grip "127.0.0.1:$grip"
      local origin_pid=$LAST_PID
      spawn "$PEER_DIR/pushpin.log" pushpin --config "$PEER_DIR/pushpin.conf" --merge-output
      PEER_SIGNAL_PID=$LAST_PID
      wait_http "$origin" && wait_http "$grip" || return 1
      PEER_SERVER_PIDS=("$LAST_PID" "$origin_pid")
      PEER_SUB_URL="http://127.0.0.1:$port/events?topic={topic}"
      # More than ~100 subscription attempts in flight make Pushpin's proxy answer some with
      # 502 (its hand-off to zurl is refused), so its subscribers connect 64 at a time.
      PEER_ARGS=(--sub-url "$PEER_SUB_URL" --pub-url "http://127.0.0.1:$origin/publish?topic={topic}"
        --pub-mode form --connect-concurrency 64)
      ;;
    *)
      echo "bench: unknown peer '$name' (sluice, sluice-1w, sluice-disk, sluice-disk-1w, recipe, nchan, pushpin)" >&2
      return 2
      ;;
  esac
  wait_http "$port" || { peer_stop; return 1; }
  # A sluice on Redis answers before it reached Redis: wait until it says it is ready.
  if [[ "$name" == sluice-redis* ]]; then
    local ok=0
    for _ in $(seq 1 100); do
      curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz" && { ok=1; break; }
      sleep 0.1
    done
    [ $ok = 1 ] || { echo "bench: $name not ready (Redis)" >&2; peer_stop; return 1; }
  fi
  # nginx and Pushpin do their work in child processes of the one started: count those too.
  if [ "$name" = nchan ] || [ "$name" = pushpin ] || [[ "$name" == nginx-*upgrade ]]; then
    local child
    for child in $(pgrep -P "${PEER_SERVER_PIDS[0]}"); do PEER_SERVER_PIDS+=("$child"); done
  fi
}

# Stops every process the current peer started: a polite TERM to each session, then KILL.
peer_stop() {
  local pid f
  # Processes that left the peer's session (W12's daemonized nginx, a hub's upgraded process),
  # by their pid files.
  for f in "$PEER_DIR"/nginx.pid "$PEER_DIR"/nginx.pid.oldbin "$PEER_DIR"/sluice.pid; do
    [ -n "$PEER_DIR" ] && [ -s "$f" ] && kill -TERM "$(cat "$f" 2>/dev/null)" 2>/dev/null
  done
  for pid in "${PEER_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${PEER_PIDS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${PEER_PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  PEER_PIDS=()
  [ -n "$PEER_DIR" ] && [ -d "$PEER_DIR" ] && rm -rf "$PEER_DIR"
  PEER_DIR=""
}

bench_cleanup() {
  if [ -n "${BENCH_CHILD:-}" ]; then
    kill -TERM "$BENCH_CHILD" 2>/dev/null
    wait "$BENCH_CHILD" 2>/dev/null
  fi
  peer_stop
  local pid
  for pid in "${HELPER_PIDS[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; done
}

# --server-pid for each of the peer's processes, the one that gets SIGTERM first.
server_pid_args() {
  local pid
  printf -- '--server-pid\n%s\n' "$PEER_SIGNAL_PID"
  for pid in "${PEER_SERVER_PIDS[@]}"; do
    [ "$pid" != "$PEER_SIGNAL_PID" ] && printf -- '--server-pid\n%s\n' "$pid"
  done
}

# The run's JSON record: what ran, against what, how it ended, and sluice-bench's own JSON.
# Usage: write_record FILE WORKLOAD PEER LABEL ROUND EXIT RESULT_FILE [EXTRA_JSON_FILE] -- ARGS...
write_record() {
  python3 - "$@" <<'EOF'
import json, sys
out, workload, peer, label, rnd, rc, result_file = sys.argv[1:8]
rest = sys.argv[8:]
extra_file = None
if rest and rest[0] != "--":
    extra_file = rest.pop(0)
args = rest[1:] if rest and rest[0] == "--" else rest
def load(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text.splitlines()[-1]) if text else None
    except (OSError, ValueError):
        return None
rec = {"workload": workload, "peer": peer, "label": label, "round": int(rnd),
       "exit_code": int(rc), "args": args, "result": load(result_file)}
client = load(result_file[:-len(".out")] + ".client") if result_file.endswith(".out") else None
if client:
    rec["client_cpu_seconds"] = round(client["user"] + client["system"], 3)
if extra_file:
    rec["extra"] = load(extra_file)
with open(out, "w") as f:
    json.dump(rec, f, indent=1)
EOF
}

# Prints one line per run: the numbers that matter most, or why there are none.
summarize_record() {
  python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
res = r.get("result") or {}
lat = res.get("latency_us") or {}
def g(k, fmt="%g"):
    v = res.get(k)
    return fmt % v if isinstance(v, (int, float)) else "-"
parts = ["%-3s %-8s %-12s r%d rc=%d" % (r["workload"], r["peer"], r["label"], r["round"], r["exit_code"])]
if not res:
    parts.append("no result (see the run's .err file)")
else:
    parts.append("conn=%s deliv=%s lost=%s dup=%s ooo=%s" % (g("connected"), g("delivered"), g("lost"),
                 g("duplicates"), g("out_of_order")))
    if lat:
        parts.append("p50=%sus p99=%sus" % (lat.get("p50", "-"), lat.get("p99", "-")))
    parts.append("dps=%s cpu/dl=%sus rss/conn=%sB" % (g("deliveries_per_sec", "%.0f"),
                 g("cpu_us_per_delivery", "%.2f"), g("rss_per_conn_bytes", "%.0f")))
    if "churn_per_sec" in res:
        parts.append("churn=%s/s errors=%s cpu/conn=%sus" % (g("churn_per_sec", "%.0f"),
                     g("churn_errors"), g("cpu_us_per_connection", "%.1f")))
    if "client_cpu_seconds" in r:
        parts.append("client_cpu=%.1fs" % r["client_cpu_seconds"])
    if "drain_seconds" in res:
        parts.append("clean=%s partial=%s reset=%s timeout=%s drain=%ss" % (g("ended_clean"),
                     g("ended_partial"), g("ended_reset"), g("ended_timeout"), g("drain_seconds", "%.2f")))
    if "reconnected" in res:
        parts.append("reconnected=%s failed_attempts=%s" % (g("reconnected"), g("reconnect_failed")))
print("  ".join(parts))
EOF
}

# Runs sluice-bench once against a freshly started peer and stores the record.
# Usage: bench_run WORKLOAD PEER LABEL ROUND [sluice-bench args...]
# Optional environment: BENCH_PRE_HOOK, a function called once the peer is up (it may start
# helpers); BENCH_POST_HOOK, called when sluice-bench is done, before the peer stops;
# BENCH_EXTRA_FILE, a JSON file the hooks wrote, stored in the record as "extra".
# Sets RUN_RECORD to the record's path. Returns 0 when a record was written, whatever the verdict.
bench_run() {
  local workload=$1 peer=$2 label=$3 round=$4; shift 4
  local base="$RUN_DIR/runs/$workload-$peer-$label-r$round"
  local limit=${RUN_TIMEOUT:-300}
  mkdir -p "$RUN_DIR/runs"
  RUN_RECORD="$base.json"
  if ! peer_start "$peer" 2>"$base.err"; then
    peer_stop
    echo "peer $peer did not start" >>"$base.err"
    write_record "$RUN_RECORD" "$workload" "$peer" "$label" "$round" 125 /dev/null \
      ${BENCH_EXTRA_FILE:+"$BENCH_EXTRA_FILE"} -- "$@"
    summarize_record "$RUN_RECORD"
    return 0
  fi
  local sargs=()
  mapfile -t sargs < <(server_pid_args)
  local rc=0 timer=()
  # The load generator shares the two cores with the peer: its own CPU time tells whether it,
  # not the peer, was the limit.
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f '{"user": %U, "system": %S}' -o "$base.client")
  [ -n "${BENCH_PRE_HOOK:-}" ] && "$BENCH_PRE_HOOK"
  # In the background and waited for, so that an interrupt reaches the trap at once (bash runs
  # traps only between foreground commands) and bench_cleanup can stop the run.
  timeout --kill-after=10 "$((limit + 30))" "${timer[@]}" "$BUILD/sluice-bench" "${PEER_ARGS[@]}" \
    "${sargs[@]}" --json --quiet --timeout "$limit" "$@" >"$base.out" 2>>"$base.err" &
  BENCH_CHILD=$!
  wait "$BENCH_CHILD" || rc=$?
  BENCH_CHILD=""
  [ -n "${BENCH_POST_HOOK:-}" ] && "$BENCH_POST_HOOK"
  peer_stop
  write_record "$RUN_RECORD" "$workload" "$peer" "$label" "$round" "$rc" "$base.out" \
    ${BENCH_EXTRA_FILE:+"$BENCH_EXTRA_FILE"} -- "$@"
  summarize_record "$RUN_RECORD"
  return 0
}

# Reads a number out of a record's result ("latency_us.p99"); prints nothing when absent.
record_get() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1])).get("result") or {}
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
if isinstance(v, (int, float)):
    print(v)
EOF
}

record_exit() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["exit_code"])' "$1"
}

machine_info() {
  local out=$1
  local sluice_v nginx_v nchan_v go_v pushpin_v
  sluice_v=$("$BUILD/sluice" --version 2>&1 | head -1 || true)
  nginx_v=$(nginx -v 2>&1 | head -1 || true)
  nchan_v=$(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null || true)
  go_v=$(go version 2>/dev/null || true)
  pushpin_v=$(pushpin --version 2>/dev/null | head -1 || true)
  # From the source tree, so that the commit recorded is the one measured.
  (cd "$SRC" && python3 - "$out" "$sluice_v" "$nginx_v" "$nchan_v" "$go_v" "$pushpin_v" "$QUICK") <<'EOF'
import json, os, platform, subprocess, sys, time
out, sluice_v, nginx_v, nchan_v, go_v, pushpin_v, quick = sys.argv[1:]
model = ""
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
mem_kb = 0
with open("/proc/meminfo") as f:
    for line in f:
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
try:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
except OSError:
    commit = ""
info = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "nproc": os.cpu_count(),
        "cpu_model": model, "mem_total_kb": mem_kb, "kernel": platform.release(),
        "sluice": sluice_v, "sluice_commit": commit, "nginx": nginx_v, "nchan": nchan_v,
        "go": go_v, "pushpin": pushpin_v, "python": platform.python_version(),
        "open_files_limit": int(subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True,
                                               text=True).stdout.strip() or 0),
        "quick": quick == "1"}
with open(out, "w") as f:
    json.dump(info, f, indent=1)
EOF
}
