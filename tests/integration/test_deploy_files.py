#!/usr/bin/env python3
"""test_deploy_files.py — the files in deploy/ are valid, their rules bite, and the real daemon
behaves the way each file relies on.

1. deploy/validate.sh passes (systemd-analyze, nginx -t, deploy_lint.py) and says which checks it
   could not run here and why; a skipped check is printed as SKIPPED, never counted as passed.
2. Each rule can fail: validate.sh run on altered copies of the files reports the alteration.
3. The daemon, run the way each file runs it:
   - systemd: the unit's ExecStart with deploy/sluice.conf, its EnvironmentFile, a NOTIFY_SOCKET:
     READY=1 only once it serves; ExecReload (`sluice upgrade --pid-file`) hands the stream to
     a new process, which sends MAINPID=<its pid> and READY=1 and rewrites PIDFile=; SIGHUP to
     it reopens --log-file and leaves streams alone; KillSignal (SIGTERM) sends STOPPING=1 and
     ends with exit 0 within TimeoutStopSec.
   - the config file is read (a bad value in it is refused, naming the file).
   - Kubernetes: the manifest's environment (key from the "Secret"): /readyz 503 and /healthz 200
     for the whole drain delay while a stream stays served, exit 0 within the grace period.
   - Docker: the image's HEALTHCHECK command succeeds against a live hub and fails without one.
Python standard library, plus python3-yaml for the manifest (reported as skipped without it).
"""
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import ctypes

SOURCE = os.environ.get("SLUICE_SOURCE") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN") or os.path.join(SOURCE, "build", "sluice")
DEPLOY = os.path.join(SOURCE, "deploy")
sys.path.insert(0, DEPLOY)
import deploy_lint  # noqa: E402  (deploy/ is not a package)

KEY = os.urandom(32).hex()
TOPIC = "https://example.com/deploy/" + os.urandom(4).hex()
MERCURE = "/.well-known/mercure"

failures = []


def expect(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f": {detail}"),
          flush=True)
    if not ok:
        failures.append(what)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(port, path):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status
    except OSError as e:
        return f"{type(e).__name__}"


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def publish(port, data):
    # A spec token, as the deployed hub (no --jwt-legacy) wants: aud is its URL, iss present.
    token = subprocess.run([BIN, "token", "--key", KEY, "--publish", "*", "--audience",
                            f"http://127.0.0.1:{port}{MERCURE}", "--issuer", "test_deploy_files"],
                           capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", MERCURE, urllib.parse.urlencode({"topic": TOPIC, "data": data}),
                 {"Authorization": f"Bearer {token}",
                  "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status


class Stream:
    """A raw subscription; text() is everything received so far."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"GET {MERCURE}?topic={urllib.parse.quote(TOPIC, safe='')} HTTP/1.1\r\n"
                          f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.sock.settimeout(0.05)
        self.data = b""
        self.eof = False

    def poll(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.eof = True
                    return
                self.data += chunk
        except (socket.timeout, BlockingIOError):
            return

    def wait_for(self, needle, timeout=5):
        return wait_until(lambda: self.poll() or needle.encode() in self.data or self.eof, timeout) \
            and needle.encode() in self.data

    def close(self):
        self.sock.close()


# 1 ---------------------------------------------------------------------------------------------
def run_validate(env_extra=None, sections=()):
    env = dict(os.environ, SLUICE_BIN=BIN if os.access(BIN, os.X_OK) else "")
    env.update(env_extra or {})
    r = subprocess.run([os.path.join(DEPLOY, "validate.sh"), *sections], capture_output=True,
                       text=True, env=env, timeout=300)
    return r.returncode, r.stdout + r.stderr


def check_validate():
    code, out = run_validate()
    lines = out.splitlines()
    for line in lines:
        if line.startswith("skip"):
            print("SKIPPED " + line[5:])
    fails = [line for line in lines if line.startswith("FAIL")]
    expect(code == 0 and not fails, "deploy/validate.sh passes", "\n  ".join(fails) or out[-2000:])
    oks = [line for line in lines if line.startswith("ok")]
    # Tools this machine must have (scripts/deps.sh's test group installs nginx): no skipping them.
    for needed in ("nginx -t", "FROM debian:bookworm", "sluice.service Type=notify",
                   "sluice.conf parses", "runtime image provides libuv"):
        expect(any(needed in line for line in oks), f"validate.sh ran the check '{needed}'")
    for optional in ("systemd-analyze verify", "systemd-analyze security",
                     "kubernetes.yaml has a Deployment"):
        ran = any(optional in line for line in oks)
        skipped = [line for line in lines if line.startswith("skip") and
                   optional.split()[0] in line]
        expect(ran or skipped, f"validate.sh ran '{optional}' or said why not")


# 2 ---------------------------------------------------------------------------------------------
MUTATIONS = [
    # (file, old, new, a FAIL line must contain)
    ("sluice.service", "TimeoutStopSec=35", "TimeoutStopSec=20", "TimeoutStopSec=35"),
    ("sluice.service", "KillMode=mixed", "KillMode=process\nFrobnicate=yes",
     "systemd-analyze verify"),
    ("sluice.service", "MemoryDenyWriteExecute=yes\n", "", "MemoryDenyWriteExecute"),
    ("sluice.conf", "heartbeat = 15", "heartbeat 15", "parses as"),
    ("kubernetes.yaml", "terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 30",
     "terminationGracePeriodSeconds"),
    ("kubernetes.yaml", "path: /readyz", "path: /healthz", "readinessProbe"),
    ("kubernetes.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
     "securityContext"),
    ("Dockerfile", 'ENTRYPOINT ["/usr/local/bin/sluice"]', "ENTRYPOINT /usr/local/bin/sluice",
     "ENTRYPOINT"),
    ("Dockerfile", "USER 10001:10001", "USER root", "non-root USER"),
    ("Dockerfile", "STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "STOPSIGNAL"),
    ("Dockerfile", "libuv1 libssl3", "libssl3", "libuv"),
    ("nginx.conf", "proxy_buffering off;", "proxy_buffering offf;", "nginx -t"),
]


SECTION = {"sluice.service": "service", "sluice.conf": "conf", "kubernetes.yaml": "kubernetes",
           "Dockerfile": "dockerfile", "nginx.conf": "nginx"}


def check_mutations():
    have_yaml = subprocess.run([sys.executable, "-c", "import yaml"]).returncode == 0
    have_sa = shutil.which("systemd-analyze") is not None
    for name, old, new, needle in MUTATIONS:
        if name == "kubernetes.yaml" and not have_yaml:
            print(f"SKIPPED mutation of {name} ({needle}): python3-yaml is not installed")
            continue
        if needle == "systemd-analyze verify" and not have_sa:
            print(f"SKIPPED mutation of {name} ({needle}): systemd-analyze is not installed")
            continue
        with tempfile.TemporaryDirectory() as d:
            for f in os.listdir(DEPLOY):
                if os.path.isfile(os.path.join(DEPLOY, f)):
                    shutil.copy(os.path.join(DEPLOY, f), d)
            path = os.path.join(d, name)
            text = open(path).read()
            if not expect(old in text, f"mutation target still in {name}: {old!r}"):
                continue
            open(path, "w").write(text.replace(old, new, 1))
            code, out = run_validate({"SLUICE_DEPLOY_DIR": d}, [SECTION[name]])
            fails = [line for line in out.splitlines() if line.startswith("FAIL")]
            expect(code != 0 and any(needle in line for line in fails),
                   f"validate.sh catches {name}: {old!r} -> {new!r}",
                   f"exit {code}, FAIL lines: {fails}")


# 3 ---------------------------------------------------------------------------------------------
def unit_values():
    unit = deploy_lint.parse_unit(open(os.path.join(DEPLOY, "sluice.service")).read())
    return {k: v for k, v in unit["Service"]}


def check_systemd_contract(tmp):
    svc = unit_values()
    conf = os.path.join(DEPLOY, "sluice.conf")
    pid_file = os.path.join(tmp, "sluice.pid")
    paths = {"/usr/local/bin/sluice": BIN, "/etc/sluice/sluice.conf": conf,
             svc.get("PIDFile"): pid_file}
    argv = [paths.get(a, a) for a in shlex.split(svc["ExecStart"])]
    # The upgraded process is the old one's child: as a child subreaper, this test inherits it
    # when the old one exits and can collect its exit status.
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    expect(argv[0] == BIN and conf in argv, "ExecStart runs the daemon with the sample config",
           f"{svc['ExecStart']}")
    port = free_port()
    log = os.path.join(tmp, "sluice.log")
    # What EnvironmentFile=/etc/sluice/sluice.env would add; listen and log file stand in for a
    # host's choices (env wins over the config file).
    env = dict(os.environ, SLUICE_JWT_KEY=KEY, SLUICE_LISTEN=f"127.0.0.1:{port}",
               SLUICE_LOG_FILE=log, SLUICE_ANONYMOUS="1")
    notify_path = os.path.join(tmp, "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    ns.settimeout(0.1)
    env["NOTIFY_SOCKET"] = notify_path
    hub = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    messages = []

    def got(state):
        try:
            messages.append(ns.recv(4096).decode())
        except socket.timeout:
            pass
        return any(state in m.split("\n") for m in messages)
    stream = None
    main = 0
    try:
        ready = wait_until(lambda: got("READY=1") or hub.poll() is not None, 10, step=0)
        ready = ready and got("READY=1")
        if not expect(ready, "Type=notify: the daemon sends READY=1", f"messages {messages}"):
            return
        expect(status_of(port, "/healthz") == 200, "the daemon serves as soon as READY=1 is sent")
        stream = Stream(port)
        expect(stream.wait_for("\r\n\r\n") and publish(port, "before-hup") == 200
               and stream.wait_for("data: before-hup"), "a stream receives an update")

        expect(svc.get("PIDFile") and open(pid_file).read().strip() == str(hub.pid),
               "PIDFile= names the daemon at start")
        reload_argv = [paths.get(a, a) for a in shlex.split(svc["ExecReload"])]
        messages.clear()
        r = subprocess.run(reload_argv, timeout=60, capture_output=True, text=True)
        expect(r.returncode == 0, f"ExecReload (the upgrade) runs: {svc['ExecReload']}",
               f"exit {r.returncode}: {r.stdout} {r.stderr}")
        try:
            old_rc = hub.wait(10)
        except subprocess.TimeoutExpired:
            old_rc = None
        expect(old_rc == 0, "the old process exits 0 after the upgrade", f"exit {old_rc}")
        main = int(open(pid_file).read().strip() or 0) if os.path.exists(pid_file) else 0
        expect(main and main != hub.pid, "PIDFile= names the new process", f"{main}")
        expect(wait_until(lambda: got(f"MAINPID={main}") and got("READY=1"), 5, step=0),
               "the new process sends MAINPID=<its pid> and READY=1 (NotifyAccess=all)",
               f"messages {messages}")
        expect(publish(port, "after-upgrade") == 200 and stream.wait_for("data: after-upgrade")
               and not stream.eof, "the stream survives the upgrade and still receives updates")
        if not main or main == hub.pid:
            return

        rotated = log + ".1"
        os.rename(log, rotated)
        os.kill(main, signal.SIGHUP)
        expect(wait_until(lambda: os.path.exists(log), 5), "SIGHUP reopens --log-file "
               "(a new file appears after the old one was renamed)")
        expect(publish(port, "after-hup") == 200 and stream.wait_for("data: after-hup")
               and not stream.eof, "the stream is untouched by SIGHUP and still receives updates")

        os.kill(main, signal.Signals[svc["KillSignal"]])
        t0 = time.monotonic()
        expect(wait_until(lambda: got("STOPPING=1"), 5, step=0), "SIGTERM: the daemon sends "
               "STOPPING=1", f"messages {messages}")
        code = None
        deadline = time.monotonic() + float(svc["TimeoutStopSec"])
        while time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(main, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0   # not yet reparented to this test
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.02)
        expect(code == 0, f"exit 0 within TimeoutStopSec={svc['TimeoutStopSec']} "
               f"({time.monotonic() - t0:.2f} s)", f"exit {code}")
        expect(stream.wait_for("data: server_shutdown") and wait_until(
            lambda: stream.poll() or stream.eof, 5), "the stream got its close event and EOF")
        new_log = open(log).read() if os.path.exists(log) else ""
        expect("drain" in new_log, "the drain was logged to the reopened file",
               f"reopened file holds {new_log[-300:]!r}")
    finally:
        if stream:
            stream.close()
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        if main and main != hub.pid:
            try:
                os.kill(main, signal.SIGKILL)
                os.waitpid(main, 0)
            except (OSError, ChildProcessError):
                pass
        ns.close()
        if failures:
            print("---- daemon stderr\n" + hub.stderr.read().decode()[-2000:])
        hub.stderr.close()


def check_config_is_read(tmp):
    bad = os.path.join(tmp, "bad.conf")
    text = open(os.path.join(DEPLOY, "sluice.conf")).read()
    open(bad, "w").write(re.sub(r"^heartbeat = .*$", "heartbeat = soon", text, flags=re.M))
    r = subprocess.run([BIN, "--config", bad, "--jwt-key", KEY], capture_output=True, text=True,
                       timeout=10)
    expect(r.returncode == 2 and "bad.conf" in r.stderr,
           "the daemon reads the config file (a bad value in it is refused, naming the file)",
           f"exit {r.returncode}, stderr {r.stderr.strip()[:300]!r}")


def check_kubernetes_contract():
    try:
        import yaml
    except ImportError:
        print("SKIPPED Kubernetes stop sequence: python3-yaml is not installed")
        return
    docs = [d for d in yaml.safe_load_all(open(os.path.join(DEPLOY, "kubernetes.yaml"))) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    port = free_port()
    env = dict(os.environ)
    for e in pod["containers"][0]["env"]:
        env[e["name"]] = KEY if "valueFrom" in e else e["value"]
    # The pod binds all interfaces; here traffic stays on loopback.
    env["SLUICE_LISTEN"] = f"127.0.0.1:{port}"
    env["SLUICE_ANONYMOUS"] = "1"
    delay = float(env.get("SLUICE_DRAIN_DELAY", "0"))
    hub = subprocess.Popen([BIN], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    stream = None
    try:
        if not expect(wait_until(lambda: status_of(port, "/healthz") == 200, 10),
                      "the daemon starts from the manifest's environment alone"):
            return
        stream = Stream(port)
        stream.wait_for("\r\n\r\n")
        hub.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < delay - 0.5:
            samples.append((status_of(port, "/readyz"), status_of(port, "/healthz")))
            time.sleep(0.25)
        expect(len(samples) > 5 and all(s == (503, 200) for s in samples[1:]),
               f"during the {delay:.0f} s drain delay: /readyz 503, /healthz 200",
               f"samples {samples}")
        expect(publish(port, "in-delay") == 200 and stream.wait_for("data: in-delay"),
               "during the drain delay updates are still accepted and delivered")
        try:
            code = hub.wait(grace)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - t0
        expect(code == 0 and took >= delay - 0.1,
               f"exit 0 after the drain delay, within terminationGracePeriodSeconds={grace}",
               f"exit {code} after {took:.2f} s")
        expect(stream.wait_for("data: server_shutdown"), "the stream got its close event")
    finally:
        if stream:
            stream.close()
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        hub.stderr.close()


def check_docker_healthcheck():
    cmd = deploy_lint.healthcheck_command()
    if not expect(cmd is not None and "8080" in cmd[-1], "the Dockerfile has a HEALTHCHECK on 8080"):
        return
    port = free_port()
    probe = cmd[:-1] + [cmd[-1].replace("8080", str(port))]
    hub = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{port}", "--jwt-key", KEY],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: status_of(port, "/healthz") == 200, 10)
        r = subprocess.run(probe, capture_output=True, timeout=10)
        expect(r.returncode == 0, "HEALTHCHECK succeeds against a live hub", f"exit {r.returncode}")
    finally:
        hub.kill()
        hub.wait()
    r = subprocess.run(probe, capture_output=True, timeout=10)
    expect(r.returncode != 0, "HEALTHCHECK fails when nothing serves the port")


def main():
    if not os.access(BIN, os.X_OK):
        print(f"FAIL the daemon is not built: {BIN}")
        return 1
    check_validate()
    check_mutations()
    tmp = tempfile.mkdtemp(prefix="sluice-deploy-")
    try:
        check_systemd_contract(tmp)
        check_config_is_read(tmp)
        check_kubernetes_contract()
        check_docker_healthcheck()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_deploy_files: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
