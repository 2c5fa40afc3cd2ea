"""test_cli — the daemon's command line as a user meets it: --help (exit 0, every flag
described), --version, exit 2 with one line naming the culprit for a bad flag or value (from a
flag, the environment or the config file), settings from SLUICE_* environment variables and from
--config FILE with their precedence (flag over environment over file), and `sluice token`,
whose tokens the hub accepts for exactly the topics they grant.
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_cli")

FLAGS = ["--listen", "--jwt-key", "--anonymous", "--workers", "--history-size", "--heartbeat",
         "--max-queue", "--max-body", "--header-timeout", "--idle-timeout", "--write-timeout",
         "--config", "--help", "--version", "--publisher-jwt-key", "--subscriber-jwt-key",
         "--log-file", "--verbose", "--max-pending", "--flush-window"]


def clean_env(**extra):
    env = ht.base_env()
    env.update(extra)
    return env


def serving(port):
    """True when a hub answers GET /healthz on port with 200."""
    try:
        return ht.request(port, "GET", "/healthz", timeout=2).status == 200
    except OSError:
        return False


def project_version():
    with open(os.path.join(ht.SOURCE, "CMakeLists.txt")) as f:
        m = re.search(r"project\(sluice VERSION (\d+\.\d+\.\d+)", f.read())
    return m.group(1) if m else None


def test_help_version():
    r = ht.run_cli("--help", env=clean_env())
    t.eq(r.returncode, 0, "--help exits 0")
    for flag in FLAGS:
        t.check(re.search(re.escape(flag) + r"\b", r.stdout), f"--help describes {flag}",
                r.stdout[:300])
    t.check("token" in r.stdout, "--help mentions the token subcommand")
    r = ht.run_cli("--version", env=clean_env())
    version = project_version()
    t.eq(r.returncode, 0, "--version exits 0")
    t.check(version and version in r.stdout, f"--version prints {version}", r.stdout)


def one_line_error(r, what, *words):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    t.eq(r.returncode, 2, f"{what}: exit 2")
    t.check(len(lines) == 1 and all(w in lines[0] for w in words),
            f"{what}: one line naming {' and '.join(words)}", r.stderr)


def test_bad_usage():
    env = clean_env()
    one_line_error(ht.run_cli("--no-such-flag", env=env), "unknown flag", "--no-such-flag")
    one_line_error(ht.run_cli("--jwt-key", "k", "--history-size", "abc", env=env),
                   "--history-size abc", "history-size", "abc")
    one_line_error(ht.run_cli("--jwt-key", "k", "--heartbeat", "soon", env=env),
                   "--heartbeat soon", "heartbeat", "soon")
    one_line_error(ht.run_cli("--jwt-key", "k", "--max-body", "lots", env=env),
                   "--max-body lots", "max-body", "lots")
    one_line_error(ht.run_cli("--jwt-key", "k", "--workers", "-3", env=env),
                   "--workers -3", "workers")
    one_line_error(ht.run_cli("--jwt-key", "k", "stray", env=env), "stray argument", "stray")
    one_line_error(ht.run_cli("--jwt-key", "k", "--history-size", env=env),
                   "--history-size without a value", "history-size")
    one_line_error(ht.run_cli("--jwt-key", "k", env=clean_env(SLUICE_HISTORY_SIZE="many")),
                   "SLUICE_HISTORY_SIZE=many", "SLUICE_HISTORY_SIZE", "many")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("# sluice test\njwt-key = k\nno-such-setting = 1\n")
    one_line_error(ht.run_cli("--config", f.name, env=env), "unknown setting in the config file",
                   f.name, "3", "no-such-setting")
    os.unlink(f.name)
    one_line_error(ht.run_cli("--config", "/nonexistent/sluice.conf", env=env),
                   "missing config file", "/nonexistent/sluice.conf")


def retained(hub, topic, n):
    """Publishes n updates on topic and returns how many an 'earliest' subscriber replays."""
    pub = ht.Publisher(hub.port, ht.mint_token(key=hub.key))
    for i in range(n):
        pub.must(topic, data=str(i), id=f"{topic}-{i}")
    pub.close()
    s = ht.SSEStream(hub.port, ht.sub_query([topic]), headers={"Last-Event-ID": "earliest"},
                     token=ht.mint_token(publish=(), subscribe=("*",), key=hub.key))
    s.wait_id(f"{topic}-{n - 1}", 10)
    count = len(s.events)
    s.close()
    return count


def test_env_key():
    key = "key-from-the-environment-0123456789abcdef"
    hub = ht.start_hub(key=None, env=clean_env(SLUICE_JWT_KEY=key))
    hub.key = key
    resp = ht.publish(hub.port, ht.mint_token(key=key), "urn:cli:env", data="x")
    t.eq(resp.status, 200, "SLUICE_JWT_KEY: token signed with it publishes (200)")
    resp = ht.publish(hub.port, ht.mint_token(key=ht.KEY), "urn:cli:env", data="x")
    t.eq(resp.status, 401, "SLUICE_JWT_KEY: token signed with another key is refused (401)")
    t.stop_hub(hub)


def test_config_file():
    key = "key-from-the-config-file-0123456789abcdef"
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(f"# written by test_cli\n\njwt-key = \"{key}\"\nanonymous = true\n"
                "history-size 3\n")
    try:
        hub = ht.start_hub(key=None, config=f.name, env=clean_env())
        hub.key = key
        s = ht.SSEStream(hub.port, ht.sub_query(["urn:cli:conf"]))
        t.eq(s.status, 200, "--config: 'anonymous = true' lets a subscriber in without a token")
        s.close()
        resp = ht.publish(hub.port, ht.mint_token(key=key), "urn:cli:conf", data="x")
        t.eq(resp.status, 200, "--config: jwt-key (quoted) is the signing key")
        t.eq(retained(hub, "urn:cli:conf3", 5), 3, "--config: 'history-size 3' keeps 3 updates")
        t.stop_hub(hub)

        hub = ht.start_hub(key=None, config=f.name, env=clean_env(SLUICE_HISTORY_SIZE="4"))
        hub.key = key
        t.eq(retained(hub, "urn:cli:env4", 6), 4, "environment wins over the config file")
        t.stop_hub(hub)

        hub = ht.start_hub(key=None, config=f.name, history_size=2,
                           env=clean_env(SLUICE_HISTORY_SIZE="4"))
        hub.key = key
        t.eq(retained(hub, "urn:cli:flag2", 6), 2, "a flag wins over the environment")
        t.stop_hub(hub)
    finally:
        os.unlink(f.name)


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_token():
    key = "key-for-token-command-0123456789abcdef"
    r = ht.run_cli("token", "--key", key, "--publish", "urn:cli:a", "--subscribe", "urn:cli:a",
                   env=clean_env())
    tok = r.stdout.strip()
    t.eq(r.returncode, 0, "sluice token exits 0")
    parts = tok.split(".")
    t.check(len(parts) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts),
            "prints one compact JWS (three base64url parts)", r.stdout)
    if len(parts) == 3:
        head, claims = b64json(parts[0]), b64json(parts[1])
        t.eq(head.get("alg"), "HS256", "token header alg is HS256")
        t.check(claims.get("exp", 0) > time.time(), "token has an exp in the future", claims)
    # No leeway, so that the 1-second token below is expired when the test says.
    hub = ht.start_hub(key=key, jwt_leeway=0)
    resp = ht.publish(hub.port, tok, "urn:cli:a", data="x")
    t.eq(resp.status, 200, "hub accepts the token for the topic it grants (200)")
    resp = ht.publish(hub.port, tok, "urn:cli:b", data="x")
    t.eq(resp.status, 403, "hub refuses the token for another topic (403)")
    short = ht.run_cli("token", "--key", key, "--publish", "*", "--exp", "1", env=clean_env())
    t.eq(short.returncode, 0, "sluice token --exp 1 exits 0")
    time.sleep(2.5)
    resp = ht.publish(hub.port, short.stdout.strip(), "urn:cli:a", data="x")
    t.eq(resp.status, 401, "a token minted with --exp 1 is refused 2.5s later (401)")
    t.stop_hub(hub)

    r = ht.run_cli("token", "--key", key, env=clean_env())
    t.eq(r.returncode, 2, "sluice token without --publish/--subscribe exits 2")
    r = ht.run_cli("token", "--publish", "*", env=clean_env())
    t.eq(r.returncode, 2, "sluice token without a key exits 2")
    r = ht.run_cli("token", "--publish", "*", env=clean_env(SLUICE_JWT_KEY=key))
    t.eq(r.returncode, 0, "sluice token takes the key from SLUICE_JWT_KEY")


def test_port_in_use():
    """SO_REUSEPORT lets a hub's own workers share its port; it must not let a second hub
    started by mistake share it too, silently taking half of the first one's clients."""
    first = ht.start_hub()
    args = ht.hub_args(first.port)
    r = ht.run_cli(*args[1:], timeout=20 * ht.SLOW)
    err = (r.stdout + r.stderr).strip()
    t.check(r.returncode == 1 and "already in use" in err and f"127.0.0.1:{first.port}" in err,
            "a second hub on the same address exits 1 saying the address is in use",
            f"exit {r.returncode}: {ht.short(err)}")
    t.eq(ht.request(first.port, "GET", "/healthz").status, 200, "the first hub still serves")
    # An answer with "Connection: close": the hub closes first, so its side of that connection
    # is left in TIME_WAIT on the port. That must not count as in use, or a restarted hub could
    # not come back on its own port.
    ht.request(first.port, "GET", "/healthz", headers={"Connection": "close"})
    t.stop_hub(first)
    ss = subprocess.run(["ss", "-Htan", "state", "time-wait", f"( sport = :{first.port} )"],
                        capture_output=True, text=True)
    t.check(ss.returncode == 0 and ss.stdout.strip(),
            "the first hub left a connection in TIME_WAIT on its port", ss.stdout or ss.stderr)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=ht.base_env())
    try:

        up = ht.wait_until(lambda: proc.poll() is None and serving(first.port), 20 * ht.SLOW)
        t.check(up, "a hub restarted on that port right away serves", proc.poll())
        proc.terminate()
        t.eq(ht.wait_exit(proc, 20 * ht.SLOW), 0, "and exits 0 on SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_lock():
    """Two hubs started at the same instant on one address could both pass a check before bind
    and then share the port (SO_REUSEPORT). A hub holds a lock no two can hold at once, an
    abstract Unix socket named after the address; here the test holds it itself, on a port no
    one listens on, so the bind check alone would let the hub start."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lock.bind(f"\0sluice/listen/127.0.0.1/{port}")
    try:
        r = ht.run_cli(*ht.hub_args(port)[1:], timeout=20 * ht.SLOW)
        err = (r.stdout + r.stderr).strip()
        t.check(r.returncode == 1 and "another sluice serves this address" in err and
                f"127.0.0.1:{port}" in err,
                "a hub whose address lock another process holds exits 1 at once, saying so",
                f"exit {r.returncode}: {ht.short(err)}")
    finally:
        lock.close()
    proc = subprocess.Popen(ht.hub_args(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=ht.base_env())
    try:
        t.check(ht.wait_until(lambda: proc.poll() is None and serving(port), 20 * ht.SLOW),
                "once the lock is free, a hub starts on that address")
        held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            held.bind(f"\0sluice/listen/127.0.0.1/{port}")
            taken = False
        except OSError:
            taken = True
        held.close()
        t.check(taken, "and holds the lock while it serves")
        proc.terminate()
        t.eq(ht.wait_exit(proc, 20 * ht.SLOW), 0, "it exits 0 on SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_follow_affinity():
    """By default the hub runs one worker per core it may run on: under taskset or a cpuset,
    the cores it was given, not every core of the machine."""
    saved = os.sched_getaffinity(0)
    one = min(saved)
    os.sched_setaffinity(0, {one})  # inherited by the hub started next
    try:
        hub = ht.start_hub()
    finally:
        os.sched_setaffinity(0, saved)
    t.eq(ht.metric(hub.metrics(), "sluice_workers"), 1,
         f"a hub allowed on core {one} only runs one worker")
    t.stop_hub(hub)
    # libuv 1.49 and later also count a cgroup CPU quota (cpu.max); without one, every core the
    # hub may run on gets a worker.
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota = f.read().split()[0] != "max"
    except OSError:
        quota = False
    if len(saved) > 1 and not quota:
        hub = ht.start_hub()
        t.eq(ht.metric(hub.metrics(), "sluice_workers"), len(saved),
             f"a hub allowed on {len(saved)} cores runs {len(saved)} workers")
        t.stop_hub(hub)
    else:
        print(f"info one core or a CPU quota here: the {len(saved)}-core case is not checked",
              flush=True)


def test_several_listen():
    """--listen is repeatable: the hub serves every address, and an update published on one
    reaches a subscriber on another (IPv4 and IPv6 loopback when this machine has ::1)."""
    b = ht.free_port()
    addrs = [f"127.0.0.1:{b}"]
    has_v6 = subprocess.run(["ip", "-6", "addr", "show", "dev", "lo"], capture_output=True,
                            text=True).stdout.find("::1") >= 0
    if has_v6:
        addrs.append(f"[::1]:{b}")
    extra = []
    for x in addrs:
        extra += ["--listen", x]
    hub = ht.start_hub(anonymous=True, extra=extra)  # its own --listen 127.0.0.1:<port> first
    s = ht.SSEStream(b, ht.sub_query(["urn:cli:listen"]))
    t.eq(s.status, 200, f"a subscriber on the second address, 127.0.0.1:{b}")
    s.wait_open()
    uid = ht.publish(hub.port, ht.mint_token(), "urn:cli:listen", data="x").text
    t.check(s.wait_id(uid), "an update published on the first address reaches it", s.ids())
    s.close()
    if has_v6:
        with socket.create_connection(("::1", b), timeout=5) as c6:
            c6.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = c6.recv(64)
        t.check(head.startswith(b"HTTP/1.1 200"), f"[::1]:{b} answers too", head)
    t.stop_hub(hub)


def test_make_run_banner():
    """What `make run` prints is what a newcomer pastes: the demo page URL with a token that
    publishes, a subscribe command and a publish command that work as printed."""
    port = ht.free_port()
    addr = f"127.0.0.1:{port}"
    proc = subprocess.Popen([os.path.join(ht.SOURCE, "scripts", "run-dev.sh"), ht.BIN, addr,
                             "dev-key-for-test-cli-0123456789abcdef"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=ht.base_env())
    lines = {}
    sub = None
    try:
        banner_done = threading.Event()

        def read_banner():
            for line in proc.stdout:
                m = re.match(r"\s*(demo page|subscribe|publish):\s+(.*)", line)
                if m:
                    lines[m.group(1)] = m.group(2).strip()
                if "Ctrl-C" in line:
                    break
            banner_done.set()

        threading.Thread(target=read_banner, daemon=True).start()
        banner_done.wait(20 * ht.SLOW)
        t.eq(sorted(lines), ["demo page", "publish", "subscribe"],
             "it prints the demo page, a subscribe command and a publish command")
        up = ht.wait_until(lambda: proc.poll() is not None or serving(port), 20 * ht.SLOW)
        t.check(up and proc.poll() is None, f"the hub serves on {addr}")
        page = lines.get("demo page", "")
        t.check(page.startswith(f"http://{addr}/#jwt=ey"), "the demo page URL carries a token",
                page)
        resp = ht.request(port, "GET", "/")
        t.check(resp.status == 200 and "EventSource" in resp.text, "the demo page is served")
        sub = subprocess.Popen(lines.get("subscribe", "false") + " --max-time 10", shell=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ht.wait_until(lambda: ht.metric(ht.parse_metrics(ht.request(port, "GET", "/metrics").text),
                                        "sluice_subscribers") == 1, 10 * ht.SLOW)
        pub = subprocess.run(lines.get("publish", "false"), shell=True, capture_output=True,
                             text=True, timeout=20)
        t.check(pub.returncode == 0 and pub.stdout.startswith("urn:uuid:"),
                "the publish command works as printed and prints the update's id",
                f"exit {pub.returncode}: {pub.stdout} {pub.stderr}")
        proc.send_signal(2)  # Ctrl-C
        out, _ = sub.communicate(timeout=20)
        t.check(f"id: {pub.stdout.strip()}" in out and "data: hello" in out,
                "the subscribe command received it", ht.short(out))
        t.check("event: close" in out, "and, at Ctrl-C, the drain's close event", ht.short(out))
        t.eq(ht.wait_exit(proc, 20 * ht.SLOW), 0, "Ctrl-C stops the hub, exit 0")
    finally:
        for p in (proc, sub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def main():
    t.section("--help and --version", test_help_version)
    t.section("bad usage exits 2", test_bad_usage)
    t.section("SLUICE_JWT_KEY", test_env_key)
    t.section("--config FILE and precedence", test_config_file)
    t.section("sluice token", test_token)
    t.section("a port another hub listens on", test_port_in_use)
    t.section("the address lock: two hubs can never share a port", test_port_lock)
    t.section("default worker count follows CPU affinity", test_workers_follow_affinity)
    t.section("several --listen addresses", test_several_listen)
    t.section("what `make run` prints works as printed", test_make_run_banner)
    t.finish()


if __name__ == "__main__":
    main()
