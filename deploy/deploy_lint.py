#!/usr/bin/env python3
"""deploy_lint.py — static checks of the deployment files that no installed tool fully checks.

Owns the rules each file in deploy/ must keep: the systemd unit's stop timing and hardening, the
sample config's syntax, the Kubernetes manifest's probes and grace period, the Dockerfile's
signal handling and user, and the agreement between them (one shutdown timeout, one port, one
list of build dependencies). It does not run tools: deploy/validate.sh runs systemd-analyze and
nginx -t and calls this for the rest.

CLI: deploy_lint.py {service|conf|kubernetes|dockerfile|runtime-libs BINARY} — prints one line per
check (`ok ...` or `FAIL ...`) and exits 1 if any check failed, 3 if a needed Python module or
tool is missing (the caller reports that as a skip, with the reason printed).
"""
import json
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
# The files checked; the tests point this at altered copies to see each rule fail.
FILES = os.environ.get("SLUICE_DEPLOY_DIR", HERE)

# The daemon's settings, read from its option table in src/daemon/options.c so that this list cannot
# fall behind: flag names without dashes, config file keys, and SLUICE_<NAME> environment
# variables with _ for -. `config` is not a config file key; help and version are flags only.
def _known_options():
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "daemon", "options.c")
    with open(src, encoding="utf-8") as f:
        names = set(re.findall(r'^\s*\{"([a-z0-9-]+)", KIND_', f.read(), re.M))
    return names - {"help", "version"}


KNOWN_OPTIONS = _known_options()
SHUTDOWN_MARGIN = 10  # seconds a supervisor waits beyond --shutdown-timeout before SIGKILL


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {detail}" if detail else ""))
        return ok


def read(name):
    with open(os.path.join(FILES, name)) as f:
        return f.read()


def parse_conf(text):
    """sluice.conf: {name: value}; raises ValueError on a line that is not `name = value`."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.fullmatch(r"([a-z][a-z0-9-]*)\s*=\s*(\S.*)", s)
        if not m:
            raise ValueError(f"sluice.conf:{n}: not `name = value`: {line!r}")
        out[m.group(1)] = m.group(2)
    return out


def parse_unit(text):
    """A systemd unit as {section: [(key, value), ...]}, keeping repeated keys in order."""
    sections, cur = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            cur = sections.setdefault(s[1:-1], [])
            continue
        key, sep, value = s.partition("=")
        if not sep or cur is None:
            raise ValueError(f"unit: not `Key=value` inside a section: {line!r}")
        cur.append((key.strip(), value.strip()))
    return sections


def last(entries, key):
    """The effective value of a single-valued unit key (the last assignment wins)."""
    vals = [v for k, v in entries if k == key]
    return vals[-1] if vals else None


def lint_conf(c):
    try:
        conf = parse_conf(read("sluice.conf"))
    except ValueError as e:
        c.check(False, "sluice.conf parses as `name = value` lines", str(e))
        return
    c.check(True, "sluice.conf parses as `name = value` lines")
    unknown = set(conf) - (KNOWN_OPTIONS - {"config"})
    c.check(not unknown, "sluice.conf names only known options", f"unknown: {sorted(unknown)}")
    c.check("jwt-key" not in conf, "sluice.conf holds no JWT key (it goes in sluice.env)")
    return conf


def lint_service(c):
    unit = parse_unit(read("sluice.service"))
    svc = unit.get("Service", [])
    c.check(bool(svc), "sluice.service has a [Service] section")
    try:
        conf = parse_conf(read("sluice.conf"))
    except ValueError:
        conf = {}  # reported by the conf check
    timeout = float(conf.get("shutdown-timeout", 25))
    want = {
        "Type": "notify",
        "ExecStart": "/usr/local/bin/sluice --config /etc/sluice/sluice.conf --pid-file "
                     "/run/sluice/sluice.pid",
        # The live upgrade; the new process's MAINPID= needs NotifyAccess=all.
        "ExecReload": "/usr/local/bin/sluice upgrade --pid-file /run/sluice/sluice.pid --timeout 30",
        "PIDFile": "/run/sluice/sluice.pid",
        "NotifyAccess": "all",
        "RuntimeDirectory": "sluice",
        "KillMode": "mixed",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": str(int(timeout + SHUTDOWN_MARGIN)),
        "LimitNOFILE": "1048576",
        "Restart": "on-failure",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    }
    for key, value in want.items():
        got = last(svc, key)
        c.check(got == value, f"sluice.service {key}={value}", f"found {got!r}")
    c.check(last(svc, "DynamicUser") == "yes" or last(svc, "User") not in (None, "", "root", "0"),
            "sluice.service runs as a non-root user (DynamicUser=yes or User=)")
    fams = set((last(svc, "RestrictAddressFamilies") or "").split())
    c.check(fams == {"AF_INET", "AF_INET6", "AF_UNIX"},
            "sluice.service RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", f"found {fams}")
    amb = last(svc, "AmbientCapabilities")
    c.check(amb in (None, ""), "sluice.service grants no ambient capabilities", f"found {amb!r}")
    c.check(float(want["TimeoutStopSec"]) > timeout,
            "TimeoutStopSec exceeds the config's shutdown-timeout")


def lint_kubernetes(c):
    try:
        import yaml
    except ImportError:
        print("skip kubernetes.yaml: python3-yaml is not installed (Debian package python3-yaml)")
        sys.exit(3)
    docs = [d for d in yaml.safe_load_all(read("kubernetes.yaml")) if d]
    kinds = {d["kind"]: d for d in docs}
    c.check(set(kinds) >= {"Deployment", "Service"}, "kubernetes.yaml has a Deployment and a Service",
            f"kinds: {sorted(kinds)}")
    dep, svc = kinds.get("Deployment", {}), kinds.get("Service", {})
    spec = dep.get("spec", {})
    strat = spec.get("strategy", {})
    ru = strat.get("rollingUpdate", {})
    c.check(strat.get("type") == "RollingUpdate" and ru.get("maxUnavailable") == 0
            and ru.get("maxSurge") == 1, "rolling update with maxUnavailable 0, maxSurge 1",
            f"found {strat}")
    pod = spec.get("template", {}).get("spec", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    ctrs = pod.get("containers", [])
    c.check(len(ctrs) == 1, "one container in the pod", f"found {len(ctrs)}")
    ctr = ctrs[0] if ctrs else {}
    env = {e["name"]: e for e in ctr.get("env", [])}
    names = {n[len("SLUICE_"):].lower().replace("_", "-") for n in env}
    c.check(all(n.startswith("SLUICE_") for n in env) and names <= KNOWN_OPTIONS,
            "every env var is a known SLUICE_<OPTION>", f"found {sorted(env)}")
    key_src = env.get("SLUICE_JWT_KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
    c.check(bool(key_src.get("name")) and bool(key_src.get("key"))
            and "value" not in env.get("SLUICE_JWT_KEY", {}),
            "SLUICE_JWT_KEY comes from a Secret", f"found {env.get('SLUICE_JWT_KEY')}")

    def num(name, default):
        e = env.get(name)
        return float(e["value"]) if e and "value" in e else default

    drain = num("SLUICE_DRAIN_DELAY", 0.0)
    timeout = num("SLUICE_SHUTDOWN_TIMEOUT", 25.0)
    pre_stop = ctr.get("lifecycle", {}).get("preStop")
    c.check((drain > 0) != (pre_stop is not None),
            "exactly one of --drain-delay and a preStop hook gives load balancers time",
            f"drain delay {drain}, preStop {pre_stop}")
    if pre_stop is not None:
        c.check(pre_stop == {"exec": {"command": ["sleep", "5"]}}, "preStop is exec sleep 5",
                f"found {pre_stop}")
    else:
        c.check(drain == 5, "SLUICE_DRAIN_DELAY is 5", f"found {drain}")
    grace = pod.get("terminationGracePeriodSeconds")
    c.check(grace == 35, "terminationGracePeriodSeconds is 35", f"found {grace}")
    lb_wait = drain if drain > 0 else 5  # the drain delay, or the preStop sleep
    c.check(grace is not None and grace >= lb_wait + timeout + 5,
            "grace period covers the load-balancer wait + shutdown timeout with 5 s to spare",
            f"grace {grace}, drain {drain}, timeout {timeout}")
    ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports", [])}
    listen = env.get("SLUICE_LISTEN", {}).get("value", "")
    c.check(listen.endswith(f":{ports.get('http')}") and not listen.startswith("127."),
            "SLUICE_LISTEN binds all interfaces on the container's http port",
            f"listen {listen!r}, ports {ports}")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = ctr.get(probe, {}).get("httpGet", {})
        c.check(get.get("path") == path and get.get("port") in ("http", ports.get("http")),
                f"{probe} is httpGet {path}", f"found {ctr.get(probe)}")
    rp = ctr.get("readinessProbe", {})
    if drain > 0:
        unready_after = rp.get("periodSeconds", 10) * rp.get("failureThreshold", 3)
        c.check(unready_after < drain, "readiness probe notices a drain within the drain delay",
                f"{unready_after} s >= {drain} s")
    res = ctr.get("resources", {})
    c.check(bool(res.get("requests")) and bool(res.get("limits", {}).get("memory")),
            "resources: requests and a memory limit", f"found {res}")
    sc = ctr.get("securityContext", {})
    c.check(sc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
            and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"],
            "container securityContext: non-root, read-only root, no escalation, no capabilities",
            f"found {sc}")
    image = ctr.get("image", "")
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    c.check(tag not in ("", "latest"), "image has a pinned tag", f"found {image!r}")
    ssel = svc.get("spec", {}).get("selector", {})
    c.check(bool(ssel) and all(labels.get(k) == v for k, v in ssel.items())
            and spec.get("selector", {}).get("matchLabels") == labels,
            "Service and Deployment selectors match the pod labels")
    tports = [p.get("targetPort") for p in svc.get("spec", {}).get("ports", [])]
    c.check(bool(tports) and all(t in ("http", ports.get("http")) for t in tports),
            "Service targets the container's http port", f"found {tports}")


def dockerfile_instructions(text):
    """[(INSTRUCTION, args)] with continuations joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def apt_installs(run_args):
    """Package names an `apt-get install` inside a RUN names."""
    words = shlex.split(run_args.replace("&&", " && "))
    pkgs, on = [], False
    for w in words:
        if w in ("&&", ";", "||"):
            on = False
        elif on and not w.startswith("-"):
            pkgs.append(w)
        elif w == "install" and "apt-get" in words:
            on = True
    return pkgs


def dockerfile_stages():
    stages = []
    for ins, args in dockerfile_instructions(read("Dockerfile")):
        if ins == "FROM":
            stages.append({"from": args, "ins": []})
        elif stages:
            stages[-1]["ins"].append((ins, args))
    return stages


def lint_dockerfile(c):
    stages = dockerfile_stages()
    c.check(len(stages) >= 2 and " AS " in stages[0]["from"].upper(),
            "Dockerfile is multi-stage (a named build stage, then the runtime stage)")
    for st in stages:
        image = st["from"].split()[0]
        name, _, tag = image.partition(":")
        c.check(name == "debian" and tag.startswith("bookworm"),
                f"FROM {image}: Debian bookworm with an explicit tag (not latest)")
    final = dict()
    for ins, args in stages[-1]["ins"]:
        final.setdefault(ins, []).append(args)
    ep = final.get("ENTRYPOINT", [""])[-1]
    try:
        ep_form = json.loads(ep)
    except ValueError:
        ep_form = None
    c.check(ep_form == ["/usr/local/bin/sluice"],
            "ENTRYPOINT is the exec form [\"/usr/local/bin/sluice\"] (sluice is PID 1)",
            f"found {ep!r}")
    c.check(final.get("STOPSIGNAL") == ["SIGTERM"], "STOPSIGNAL SIGTERM")
    user = (final.get("USER") or ["root"])[-1].split(":")[0]
    c.check(user not in ("root", "0"), "runtime stage runs as a non-root USER", f"found {user!r}")
    c.check("8080" in " ".join(final.get("EXPOSE", [])), "EXPOSE 8080")
    hc = healthcheck_command()
    c.check(hc is not None and "/healthz" in " ".join(hc), "HEALTHCHECK (exec form) probes /healthz")
    build_pkgs = [p for ins, a in stages[0]["ins"] if ins == "RUN" for p in apt_installs(a)]
    need = set(deps_sh_build_packages()) - {"curl"}
    c.check(need <= set(build_pkgs), "build stage installs scripts/deps.sh's build packages",
            f"missing {sorted(need - set(build_pkgs))}")
    c.check(any("cmake" in a for ins, a in stages[0]["ins"] if ins == "RUN"),
            "build stage runs cmake")
    copies = [a for ins, a in stages[-1]["ins"] if ins == "COPY"]
    c.check(any(a.startswith("--from=") and a.endswith("/usr/local/bin/sluice") for a in copies),
            "runtime stage copies only the built binary from the build stage", f"found {copies}")
    runtime = runtime_packages()
    c.check(not any(p.endswith("-dev") for p in runtime), "runtime stage installs no -dev package",
            f"found {runtime}")
    if not have_apt_lists():
        print("skip Debian package names: no apt lists here (apt-get update fills them)")
    else:
        known = apt_known(build_pkgs + runtime)
        missing = [p for p in build_pkgs + runtime if p not in known]
        c.check(not missing, "every package the Dockerfile installs exists in Debian (apt-cache)",
                f"unknown: {missing}")


def healthcheck_command():
    for st in dockerfile_stages()[-1:]:
        for ins, args in st["ins"]:
            if ins == "HEALTHCHECK":
                m = re.search(r"\bCMD\s+(\[.*\])\s*$", args)
                return json.loads(m.group(1)) if m else None
    return None


def runtime_packages():
    return [p for ins, a in dockerfile_stages()[-1]["ins"] if ins == "RUN" for p in apt_installs(a)]


def deps_sh_build_packages():
    with open(os.path.join(SOURCE, "scripts", "deps.sh")) as f:
        m = re.search(r"^want=\(([^)]*)\)", f.read(), re.M)
    return m.group(1).split() if m else []


def have_apt_lists():
    d = "/var/lib/apt/lists"
    return os.path.isdir(d) and any("_Packages" in f for f in os.listdir(d))


def apt_known(pkgs):
    """The packages the local apt lists (no network) have an installable version of."""
    r = subprocess.run(["apt-cache", "policy", *pkgs], capture_output=True, text=True)
    known = re.findall(r"^(\S+):\n\s+Installed: .*\n\s+Candidate: (\S+)", r.stdout, re.M)
    return {name for name, cand in known if cand != "(none)"}


def apt_depends(pkgs):
    """The direct dependencies of all the packages, together."""
    r = subprocess.run(["apt-cache", "depends", "--no-recommends", "--no-suggests", *pkgs],
                       capture_output=True, text=True)
    return set(re.findall(r"^\s*\|?Depends: (\S+)", r.stdout, re.M))


def lint_runtime_libs(c, binary):
    """Every shared library the binary needs comes from a package the runtime stage installs,
    from one of their dependencies, or from libc6 (always in the base image)."""
    r = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"skip runtime libraries: readelf failed on {binary}: {r.stderr.strip()}")
        sys.exit(3)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
    runtime = set(runtime_packages())
    allowed = {"libc6"} | runtime | apt_depends(sorted(runtime))
    q = subprocess.run(["dpkg", "-S", *(f"*/{lib}" for lib in needed)], capture_output=True,
                       text=True)
    owners_of = {}
    for line in q.stdout.splitlines():
        pkgs, sep, path = line.partition(": /")
        if sep:
            owners = {p.strip().split(":")[0] for p in pkgs.split(",")}
            owners_of.setdefault(os.path.basename(path), set()).update(owners)
    for lib in needed:
        if re.match(r"lib(asan|ubsan|tsan|lsan)\.so", lib):
            print(f"skip {lib}: a sanitizer runtime; the image ships a build without sanitizers")
            continue
        owners = owners_of.get(lib, set())
        c.check(bool(owners & allowed), f"runtime image provides {lib}",
                f"owned by {sorted(owners) or 'no package'}, runtime stage has {sorted(runtime)}")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    c = Checks()
    what = argv[0]
    if what == "service":
        lint_service(c)
    elif what == "conf":
        lint_conf(c)
    elif what == "kubernetes":
        lint_kubernetes(c)
    elif what == "dockerfile":
        lint_dockerfile(c)
    elif what == "runtime-libs" and len(argv) == 2:
        lint_runtime_libs(c, argv[1])
    else:
        sys.exit(__doc__)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
