#!/usr/bin/env bash
# validate.sh — checks every file in deploy/ with the tool that understands it, where this
# machine has that tool, and with deploy_lint.py for the rules no tool knows.
#
#   sluice.service   systemd-analyze verify and security --offline (systemd package), + lint
#   sluice.conf      lint (the daemon itself loads it in tests/integration/test_deploy_files.py)
#   kubernetes.yaml  parsed with python3-yaml, fields asserted by lint (no cluster here)
#   Dockerfile       lint; `docker build` is NOT run (no Docker engine on this machine)
#   nginx.conf       nginx -t on the example rendered for a temporary prefix (nginx_local.py)
#
# Prints one line per check: `ok`, `FAIL <why>` or `skip <why>`, then a count. Exit status 1 if
# anything failed. A skip is never silent: it names the missing tool and the package bringing it.
# With SLUICE_BIN set (a built daemon) it also checks that the runtime image has its libraries.
# SLUICE_DEPLOY_DIR checks the files of another directory (the tests use it to see rules fail).
# Arguments pick sections (service conf kubernetes dockerfile nginx); none = all.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
files="${SLUICE_DEPLOY_DIR:-$here}"
export SLUICE_DEPLOY_DIR="$files"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0 skip=0
sections=" $* "
want() { [ "$sections" = "  " ] || [[ "$sections" == *" $1 "* ]]; }

count() {  # reads check lines on stdin, echoes them, adds them up
  local line
  while IFS= read -r line; do
    echo "$line"
    case "$line" in
      ok*) pass=$((pass + 1)) ;;
      FAIL*) fail=$((fail + 1)) ;;
      skip*) skip=$((skip + 1)) ;;
    esac
  done
}

lint() {  # deploy_lint.py with its exit status 3 (missing module) already reported as a skip
  local out rc
  out="$(python3 "$here/deploy_lint.py" "$@" 2>&1)"; rc=$?
  count <<<"$out"
  if [ $rc -ne 0 ] && [ $rc -ne 3 ] && ! grep -q '^FAIL' <<<"$out"; then
    count <<<"FAIL deploy_lint.py $* crashed (exit $rc)"
  fi
}

if want service; then
echo "== sluice.service"
lint service
if command -v systemd-analyze >/dev/null; then
  # A private root: the unit, stubs at the paths it executes, and the distribution's units it
  # depends on, so verify checks this unit and not the state of this machine.
  root="$tmp/root"
  mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/bin" "$root/usr/lib/systemd"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
  cp "$files/sluice.service" "$root/etc/systemd/system/sluice.service"
  printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/sluice"
  cp /bin/kill "$root/bin/kill"
  chmod +x "$root/usr/local/bin/sluice"
  out="$(systemd-analyze verify --root="$root" sluice.service 2>&1)"; rc=$?
  # verify exits 0 on unknown keys and unparsable values: any message about the unit is a failure.
  if [ $rc -eq 0 ] && ! grep -q 'sluice.service' <<<"$out"; then
    count <<<"ok   systemd-analyze verify sluice.service"
  else
    count <<<"FAIL systemd-analyze verify sluice.service (exit $rc): $(tr '\n' ' ' <<<"$out")"
  fi
  out="$(systemd-analyze security --offline=yes --threshold=20 --root="$root" sluice.service 2>&1)"
  rc=$?
  level="$(grep -o 'Overall exposure level for sluice.service: [0-9.]*' <<<"$out" | awk '{print $NF}')"
  if [ $rc -eq 0 ] && [ -n "$level" ]; then
    count <<<"ok   systemd-analyze security: exposure $level (at most 2.0)"
  else
    count <<<"FAIL systemd-analyze security: exposure '${level:-?}' above 2.0 or not computed (exit $rc)"
  fi
else
  count <<<"skip systemd-analyze verify: not installed (Debian package systemd); lint above only"
fi
fi

if want conf; then
echo "== sluice.conf"
lint conf
fi

if want kubernetes; then
echo "== kubernetes.yaml"
lint kubernetes
fi

if want dockerfile; then
echo "== Dockerfile (linted only: no Docker engine here, docker build is not run)"
lint dockerfile
if [ -n "${SLUICE_BIN:-}" ] && [ -x "${SLUICE_BIN}" ]; then
  lint runtime-libs "$SLUICE_BIN"
else
  count <<<"skip runtime libraries of the binary: SLUICE_BIN is not set to a built daemon"
fi
fi

if want nginx; then
echo "== nginx.conf"
if [ -x /usr/sbin/nginx ]; then
  conf="$(python3 "$here/nginx_local.py" "$files/nginx.conf" "$tmp" 18080 18081 2>&1)"; rc=$?
  if [ $rc -ne 0 ]; then
    count <<<"FAIL render nginx.conf for a temporary prefix: $conf"
  else
    out="$(/usr/sbin/nginx -p "$tmp/" -c "$conf" -e stderr -t 2>&1)"; rc=$?
    if [ $rc -eq 0 ] && grep -q 'test is successful' <<<"$out" && ! grep -q '\[warn\]\|\[emerg\]' <<<"$out"; then
      count <<<"ok   nginx -t (the example, rendered for a temporary prefix and loopback ports)"
    else
      count <<<"FAIL nginx -t (exit $rc): $(tr '\n' ' ' <<<"$out")"
    fi
  fi
else
  count <<<"skip nginx -t: nginx is not installed (Debian package nginx)"
fi
fi

echo "validate: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
