#!/usr/bin/env bash
# fuzz/run.sh BINARY TARGET SECONDS OUT — runs one libFuzzer target for SECONDS over its seeds
# (fuzz/corpus/TARGET) and its regression inputs (fuzz/crashes/TARGET), as `make fuzz` and the
# tests labelled fuzz do. A regression input that still crashes fails the run at once.
#
# What the run finds goes under OUT, never into the source tree: new coverage into
# OUT/corpus/TARGET (the first corpus directory, the one libFuzzer writes to; later runs start
# from it), a crashing input into OUT/artifacts/TARGET-crash-<sha1>. fuzz/README.md says how to
# keep either.
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: fuzz/run.sh BINARY TARGET SECONDS OUT" >&2
  exit 2
fi
bin=$1 target=$2 seconds=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$out/corpus/$target" "$out/artifacts"
dirs=("$out/corpus/$target" "$here/corpus/$target")
[ -d "$here/crashes/$target" ] && dirs+=("$here/crashes/$target")
# -timeout: seconds one input may take before it counts as a hang; -rss_limit_mb: a leak that
# grows past it is a finding too.
opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
      -artifact_prefix="$out/artifacts/$target-")
[ -f "$here/$target.dict" ] && opts+=(-dict="$here/$target.dict")
# Requests long enough to cross the 8192-byte header and URL limits (431, 414).
[ "$target" = http ] && opts+=(-max_len=20000)
exec "$bin" "${opts[@]}" "${dirs[@]}"
