#!/usr/bin/env python3
"""nginx_local.py — runs deploy/nginx.conf as it is, but unprivileged-friendly and self-contained.

Owns one thing: turning the example configuration into one that an nginx started by a test (or
by validate.sh's `nginx -t`) can run under a temporary prefix, in the foreground, on loopback
ports. Only the host-specific lines change (listen ports, the upstream address, pid, log and temp
paths, the worker user and process count, the open-files limit); every proxy setting is taken
from the example verbatim, so the tests exercise the configuration users copy. If the example's
shape changes so that a substitution no longer matches, rendering fails loudly instead of
silently testing something else.

CLI: nginx_local.py EXAMPLE PREFIX LISTEN_PORT UPSTREAM_PORT  -> writes PREFIX/nginx.conf, prints
its path. As a module: render(), start(), stop().
"""
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

NGINX = "/usr/sbin/nginx"


def _sub(pattern, repl, text, count):
    new, n = re.subn(pattern, repl, text, flags=re.M)
    if n != count:
        raise ValueError(f"nginx example: expected {count} match(es) of {pattern!r}, found {n}")
    return new


def render(example_text, prefix, listen_port, upstream_port):
    """Returns the example with its host-specific lines pointed at prefix and loopback ports."""
    t = example_text
    t = _sub(r"^user\s+\S+;\n", "" if os.geteuid() != 0 else "user www-data;\n", t, 1)
    t = _sub(r"^pid\s+\S+;", f"pid {prefix}/nginx.pid;", t, 1)
    t = _sub(r"^error_log\s+\S+(\s+\w+)?;", "error_log stderr warn;", t, 1)
    t = _sub(r"^worker_processes\s+\S+;", "worker_processes 1;", t, 1)
    # Only a privileged master may raise the hard limit; stay under the one this process has.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        t = _sub(r"^worker_rlimit_nofile\s+(\d+);",
                 lambda m: f"worker_rlimit_nofile {min(int(m.group(1)), hard)};", t, 1)
    t = _sub(r"^(\s*)access_log\s+\S+;", rf"\1access_log {prefix}/access.log;", t, 1)
    t = _sub(r"^(\s*)server\s+127\.0\.0\.1:\d+;", rf"\g<1>server 127.0.0.1:{upstream_port};", t, 1)
    t = _sub(r"^(\s*)listen\s+80;", rf"\1listen 127.0.0.1:{listen_port};", t, 1)
    t = _sub(r"^\s*listen\s+\[::\]:80;\n", "", t, 1)
    # Debian's nginx has its temp directories compiled in under /var/lib/nginx.
    temps = "".join(f"    {k}_temp_path {prefix}/{k}_temp;\n"
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    t = _sub(r"^http\s*\{\n", "http {\n" + temps, t, 1)
    return t


def write_config(example_path, prefix, listen_port, upstream_port):
    with open(example_path) as f:
        text = render(f.read(), prefix, listen_port, upstream_port)
    # Workers run as www-data when nginx starts as root: they must be able to enter the prefix.
    os.chmod(prefix, 0o755)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def base_command(prefix, conf):
    # -e: the error log before the config is read, otherwise /var/log/nginx/error.log.
    return [NGINX, "-p", prefix + "/", "-c", conf, "-e", "stderr"]


def check(prefix, conf):
    """`nginx -t` on a rendered config: (exit code, output)."""
    r = subprocess.run(base_command(prefix, conf) + ["-t"], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout + r.stderr


def start(prefix, conf, listen_port, stderr, timeout=10.0):
    """Starts nginx in the foreground and waits until it accepts on listen_port."""
    proc = subprocess.Popen(base_command(prefix, conf) + ["-g", "daemon off;"],
                            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited at start with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", listen_port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"nginx did not accept on 127.0.0.1:{listen_port} within {timeout} s")


def stop(proc, timeout=10.0):
    """Graceful quit (SIGQUIT), then SIGKILL if it does not end in time. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: nginx_local.py EXAMPLE PREFIX LISTEN_PORT UPSTREAM_PORT")
    print(write_config(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
