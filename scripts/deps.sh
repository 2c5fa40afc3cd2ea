#!/usr/bin/env bash
# Installs what sluice needs from Debian packages (and npm for the browser/client tests),
# only when missing: `dpkg -s` first, then one `apt-get install`. Groups: build, test, bench.
set -euo pipefail
want=(cmake pkg-config libc6-dev libuv1-dev node-llhttp libjansson-dev libssl-dev liburiparser-dev liblmdb-dev libhiredis-dev libsystemd-dev curl)
for g in "$@"; do
  case "$g" in
    build) ;;
    # clang with libclang-rt-dev (on Debian 12: libclang-rt-14-dev, whose libclang_rt.fuzzer is
    # what -fsanitize=fuzzer links) and libssl-dev (HMAC) build the fuzz targets in fuzz/.
    # redis-server backs tests/integration/test_redis.py (started by the test, own port).
    # python3-cryptography signs the RS256/ES256 tokens of tests/integration/test_tokens.py.
    test) want+=(libcmocka-dev nginx chromium iproute2 procps python3-yaml systemd
                 clang libclang-rt-dev libssl-dev python3-cryptography
                 redis-server) ;;
    bench) want+=(nginx libnginx-mod-nchan pushpin golang-go gnuplot-nox procps redis-server) ;;
    *) echo "deps.sh: unknown group '$g' (build, test, bench)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${want[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The npm clients used by tests (eventsource, playwright-core), pinned by tests/package-lock.json.
for g in "$@"; do
  if [ "$g" = test ] && [ -f tests/package.json ] && [ ! -d tests/node_modules ]; then
    (cd tests && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
