#!/usr/bin/env python3
"""Turns one benchmark invocation's records (bench/results/<run>/runs/*.json, written by
bench/lib.sh) into what people read: summary.md (Markdown tables, one per workload, medians with
the spread over rounds, ready to paste into BENCHMARKS.md), data/*.dat files for gnuplot, and,
with --plots, the PNGs drawn by bench/plot/*.gp.

Usage: collect.py RUN_DIR [--plots PLOT_SCRIPTS_DIR] [--publish DIR]
Exit status: 0 when every run produced a result (whatever its verdict), 1 otherwise.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys

PEER_ORDER = ["sluice", "sluice-1w", "sluice-base", "sluice-base-1w", "recipe", "nchan", "pushpin"]


def load_runs(run_dir):
    runs = []
    for path in sorted(glob.glob(os.path.join(run_dir, "runs", "*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def get(rec, path):
    v = rec.get("result") or {}
    for k in path.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def label_key(label):
    """Sorts labels like c1000 < c10000 and r200 < r1000 by their number."""
    digits = "".join(ch for ch in label if ch.isdigit())
    return (int(digits) if digits else 0, label)


def peer_key(peer):
    return (PEER_ORDER.index(peer) if peer in PEER_ORDER else len(PEER_ORDER), peer)


class Group:
    """All rounds of one (workload, peer, label)."""

    def __init__(self, recs):
        self.recs = recs

    def values(self, path):
        return [v for v in (get(r, path) for r in self.recs) if v is not None]

    def median(self, path):
        vals = self.values(path)
        return statistics.median(vals) if vals else None

    def cell(self, path, scale=1.0, fmt="%.0f"):
        """Median, and [min–max] when there were several rounds."""
        return spread(self.values(path), scale, fmt)

    def client_cpu(self):
        vals = [r["client_cpu_seconds"] for r in self.recs if "client_cpu_seconds" in r]
        return "%.1f" % statistics.median(vals) if vals else "–"

    def exits(self):
        return ",".join(str(r["exit_code"]) for r in self.recs)

    def extra(self, key):
        vals = [(r.get("extra") or {}).get(key) for r in self.recs]
        vals = [v for v in vals if isinstance(v, (int, float))]
        return statistics.median(vals) if vals else None


def spread(vals, scale=1.0, fmt="%.0f"):
    """A table cell for per-round values: the median, and [min–max] when rounds differ."""
    if not vals:
        return "–"
    text = fmt % (statistics.median(vals) * scale)
    if len(vals) > 1 and min(vals) != max(vals):
        text += " [" + fmt % (min(vals) * scale) + "–" + fmt % (max(vals) * scale) + "]"
    return text


def groups(runs, workload):
    out = {}
    for r in runs:
        if r["workload"] == workload:
            out.setdefault((r["peer"], r["label"]), []).append(r)
    keys = sorted(out, key=lambda k: (peer_key(k[0]), label_key(k[1])))
    return [(k[0], k[1], Group(out[k])) for k in keys]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


MS = 1e-3  # latency_us → milliseconds


def lat_cells(g):
    return [g.cell("latency_us.p50", MS, "%.2f"), g.cell("latency_us.p99", MS, "%.2f"),
            g.cell("latency_us.p999", MS, "%.2f"), g.cell("latency_us.max", MS, "%.1f")]


def loss_cell(g):
    return "%s/%s/%s" % (g.cell("lost"), g.cell("duplicates"), g.cell("out_of_order"))


def section_w1(runs):
    rows = [[p, l[1:], g.cell("connected"), g.cell("rss_per_conn_bytes"),
             g.cell("server_rss_kb", 1 / 1024, "%.1f"), g.cell("connect_rate"), g.exits()]
            for p, l, g in groups(runs, "W1")]
    return table(["peer", "connections", "connected", "RSS/conn (B)", "RSS (MiB)",
                  "connects/s", "exit"], rows)


def section_broadcast(runs, workload):
    rows = [[p, l, "%s/%s" % (g.cell("delivered"), g.cell("expected")), loss_cell(g),
             *lat_cells(g), g.cell("deliveries_per_sec"), g.cell("cpu_us_per_delivery", 1, "%.2f"),
             g.cell("server_rss_kb", 1 / 1024, "%.1f"), g.client_cpu(), g.exits()]
            for p, l, g in groups(runs, workload)]
    return table(["peer", "run", "delivered/expected", "lost/dup/ooo", "p50 ms", "p99 ms",
                  "p99.9 ms", "max ms", "deliveries/s", "CPU µs/delivery", "RSS (MiB)",
                  "client CPU s", "exit"], rows)


def record_rate(rec, default=50):
    """The publish rate (events/s, 0 = as fast as acknowledged) a record ran at: the r<N> part of
    its label (W2 labels are s1000-r<N>), else the --rate of its sluice-bench arguments (records
    written before W2 ran several rates are labelled s1000 only), else `default`."""
    last = rec.get("label", "").split("-")[-1]
    if len(last) > 1 and last[0] == "r" and last[1:].isdigit():
        return int(last[1:])
    args = rec.get("args") or []
    for i, a in enumerate(args[:-1]):
        if a == "--rate":
            try:
                return int(float(args[i + 1]))
            except ValueError:
                break
    return default


def rate_key(rate):
    """Unpaced (0) first, then the fastest paced rate to the slowest, as W2_RATES lists them."""
    return (rate != 0, -rate)


def rate_name(rate):
    return "max" if rate == 0 else str(rate)


def w2_groups(runs):
    """W2's rounds grouped by (rate, peer), rates in rate_key order, peers in PEER_ORDER."""
    out = {}
    for r in runs:
        if r["workload"] == "W2":
            out.setdefault((record_rate(r), r["peer"]), []).append(r)
    keys = sorted(out, key=lambda k: (rate_key(k[0]), peer_key(k[1])))
    return [(k[0], k[1], Group(out[k])) for k in keys]


def acked_rate(g):
    """Events acknowledged per second of publishing, per round: what an unpaced run reached."""
    return [a / s for a, s in ((get(r, "acked"), get(r, "publish_seconds")) for r in g.recs)
            if a and s]


def section_w2(runs):
    """One row group per publish rate; then, per rate, each peer's CPU per delivery over sluice's."""
    w2 = w2_groups(runs)
    rows = [[rate_name(rate), p, spread(acked_rate(g)),
             "%s/%s" % (g.cell("delivered"), g.cell("expected")), loss_cell(g), *lat_cells(g),
             g.cell("deliveries_per_sec"), g.cell("cpu_us_per_delivery", 1, "%.2f"),
             g.cell("server_rss_kb", 1 / 1024, "%.1f"), g.client_cpu(), g.exits()]
            for rate, p, g in w2]
    text = table(["events/s asked", "peer", "events/s acked", "delivered/expected",
                  "lost/dup/ooo", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "deliveries/s",
                  "CPU µs/delivery", "RSS (MiB)", "client CPU s", "exit"], rows)
    text += ("\n\n%s'events/s acked' is acknowledged events over the publishing time. CPU per "
             "delivery counts delivered events only: a peer that drops events is not charged for "
             "them." % ("'max': published as fast as acknowledged, one request in flight. "
                        if any(rate == 0 for rate, _, _ in w2) else ""))
    cpu = {(rate, p): g.median("cpu_us_per_delivery") for rate, p, g in w2}
    peers = sorted({p for _, p, _ in w2 if p != "sluice"}, key=peer_key)
    rates = sorted({rate for rate, _, _ in w2}, key=rate_key)
    if peers and any(p == "sluice" for _, p, _ in w2):
        rows = []
        for rate in rates:
            base = cpu.get((rate, "sluice"))
            row = [rate_name(rate), "%.2f" % base if base else "–"]
            for p in peers:
                v = cpu.get((rate, p))
                row.append("%.2f (%.1f×)" % (v, v / base) if v and base else "–")
            rows.append(row)
        text += ("\n\nCPU per delivery by rate, median µs, with the peer's over sluice's in "
                 "brackets (above 1×, sluice spends less per delivery):\n\n" +
                 table(["events/s asked", "sluice"] + peers, rows))
    return text


def saturation(runs):
    """Per peer: the highest rate that met the criterion, and the most deliveries/s seen there."""
    out = {}
    for p, l, g in groups(runs, "W3"):
        rate = label_key(l)[0]
        p99, lost = g.median("latency_us.p99"), g.median("lost")
        ok = (p99 is not None and p99 < 100000 and not lost and
              all(r["exit_code"] == 0 for r in g.recs))
        best = out.setdefault(p, {"rate": None, "dps": None, "first_bad": None})
        if ok and best["first_bad"] is None:
            best["rate"], best["dps"] = rate, g.median("deliveries_per_sec")
        elif not ok and best["first_bad"] is None:
            best["first_bad"] = rate
    return out


def section_w3(runs):
    rows = [[p, l[1:], "%s/%s" % (g.cell("delivered"), g.cell("expected")), loss_cell(g),
             *lat_cells(g)[:3], g.cell("deliveries_per_sec"),
             g.cell("cpu_us_per_delivery", 1, "%.2f"), g.client_cpu(), g.exits()]
            for p, l, g in groups(runs, "W3")]
    text = table(["peer", "events/s", "delivered/expected", "lost/dup/ooo", "p50 ms", "p99 ms",
                  "p99.9 ms", "deliveries/s", "CPU µs/delivery", "client CPU s", "exit"], rows)
    sat = saturation(runs)
    rows = [[p, s["rate"] or "–", "%.0f" % s["dps"] if s["dps"] else "–", s["first_bad"] or "–"]
            for p, s in sorted(sat.items(), key=lambda kv: peer_key(kv[0]))]
    return text + "\n\nSaturation (last step with p99 < 100 ms, no loss, clean exit):\n\n" + table(
        ["peer", "sustained events/s", "deliveries/s there", "first failing step"], rows)


def section_w5(runs):
    # The baseline is W2 at the rate W5 ran at (W5 publishes at W2_RATE).
    w2 = {(rate, p): g for rate, p, g in w2_groups(runs)}
    rows = []
    for p, l, g in groups(runs, "W5"):
        base = w2.get((record_rate(g.recs[0]), p))
        rows.append([p, loss_cell(g), g.cell("latency_us.p50", MS, "%.2f"),
                     g.cell("latency_us.p99", MS, "%.2f"),
                     base.cell("latency_us.p99", MS, "%.2f") if base else "–",
                     "%s/%s" % (fmt_num(g.extra("connected")), fmt_num(g.extra("slow_connections"))),
                     fmt_num(g.extra("frames")), fmt_num(g.extra("closed_by_server")),
                     fmt_num(g.extra("reset_by_server")), fmt_num(g.extra("still_open")),
                     g.cell("server_rss_kb", 1 / 1024, "%.1f"), g.exits()])
    return table(["peer", "fast lost/dup/ooo", "fast p50 ms", "fast p99 ms", "W2 p99 ms",
                  "slow connected", "slow frames read", "slow closed", "slow reset",
                  "slow still open", "RSS (MiB)", "exit"], rows)


def section_w9(runs):
    """Each peer calm and under attack: delivery p99 and its ratio, peak RSS, what the attacks
    got done."""
    by = {}
    for p, l, g in groups(runs, "W9"):
        by.setdefault(p, {})[l] = g
    rows = []
    for p in sorted(by, key=peer_key):
        calm, atk = by[p].get("calm"), by[p].get("attack")
        if not calm or not atk:
            continue
        c99, a99 = calm.median("latency_us.p99"), atk.median("latency_us.p99")
        ratio = "%.1f×" % (a99 / c99) if c99 and a99 else "–"
        rows.append([p, loss_cell(calm), loss_cell(atk), calm.cell("latency_us.p99", MS, "%.2f"),
                     atk.cell("latency_us.p99", MS, "%.2f"), ratio,
                     calm.cell("server_rss_kb", 1 / 1024, "%.1f"),
                     "%.1f" % (atk.extra("peak_rss_kb") / 1024) if atk.extra("peak_rss_kb") else "–",
                     fmt_num(atk.extra("slowloris_peak")), fmt_num(atk.extra("huge_published")),
                     fmt_num(atk.extra("replays")), atk.exits()])
    return table(["peer", "calm lost/dup/ooo", "attacked lost/dup/ooo", "calm p99 ms",
                  "attacked p99 ms", "p99 ratio", "calm RSS (MiB)", "attacked peak RSS (MiB)",
                  "slowloris heads open (peak)", "200 KiB updates published", "replays", "exit"],
                 rows) + ("\n\nThe attacks (bench/attacker.py): 40 connections pipelining 64 KiB "
                          "of requests never read, 500 slowloris heads, and for Mercure hubs "
                          "200 KiB updates at 20/s and 4 loops of resumes from 'earliest' with "
                          "256 selectors.")


def fmt_num(v):
    return "–" if v is None else "%.0f" % v


def section_w6(runs, workload="W6"):
    rows = [[p, l[1:], g.cell("churn_accepted"), g.cell("churn_per_sec"), g.cell("churn_errors"),
             g.cell("cpu_us_per_connection", 1, "%.1f"), g.cell("server_rss_kb", 1 / 1024, "%.1f"),
             g.client_cpu(), g.exits()]
            for p, l, g in groups(runs, workload)]
    return table(["peer", "in flight", "subscriptions", "per second", "errors",
                  "CPU µs/connection", "RSS (MiB)", "client CPU s", "exit"], rows)


def section_w7(runs):
    rows = [[p, l, g.cell("connected"), g.cell("ended_clean"), g.cell("ended_partial"),
             g.cell("ended_reset"), g.cell("ended_timeout"), g.cell("close_frames"),
             g.cell("drain_seconds", 1, "%.2f"), *end_cells(g),
             "%s/%s" % (g.cell("acked"), g.cell("published")), loss_cell(g), retry_cell(g),
             g.exits()]
            for p, l, g in groups(runs, "W7")]
    text = table(["peer", "run", "connected", "ended clean", "cut mid-frame", "reset",
                  "timed out", "close frames", "drain s", "half ended by ms", "90 % ended by ms",
                  "acked/published", "lost/dup/ooo", "retry: told", "exit"], rows)
    return text + ("\n\n'half/90 % ended by': ms after the SIGTERM by which that share of the "
                   "streams open at the signal had ended (end_ms_hist, all rounds together; "
                   "'–' for records written before sluice-bench measured it).")


def hists(g, key):
    """The rounds' histograms of `key` (lists of [upper bound ms, count]), absent ones left out."""
    return [h for h in ((r.get("result") or {}).get(key) for r in g.recs) if isinstance(h, list)]


def end_cells(g):
    """When half and 90 % of the streams open at the SIGTERM had ended, from end_ms_hist. Streams
    that timed out never ended, so they count in the total and can hold a share back."""
    recs = [r for r in g.recs if isinstance((r.get("result") or {}).get("end_ms_hist"), list)]
    hist = merge_hist([r["result"]["end_ms_hist"] for r in recs])
    total = sum(n for _, n in hist) + sum(get(r, "ended_timeout") or 0 for r in recs)
    return [fmt_ms(hist_quantile(hist, q, total)) for q in (0.5, 0.9)]


def hist_quantile(hist, q, total=None):
    """The bucket bound by which a share q of `total` (default: the histogram's count) is in, so
    at most one bucket's width high (1 ms to 10 ms, 10 ms to 1 s, 50 ms to 10 s). None when the
    histogram never reaches that share."""
    total = sum(n for _, n in hist) if total is None else total
    if not hist or total <= 0:
        return None
    need, seen = q * total, 0.0
    for ms, n in hist:
        seen += n
        if seen >= need - 1e-9:
            return ms
    return None


def fmt_ms(v):
    return "–" if v is None else "%g" % v


def retry_cell(g):
    """How many clients were told a retry: and over what span, from the merged histogram."""
    hist = merge_hist([(r.get("result") or {}).get("retry_ms_hist") for r in g.recs])
    told = sum(n for _, n in hist) / max(1, len(g.recs))
    if not told:
        return "none"
    return "%.0f, up to %g ms" % (told, max(ms for ms, n in hist if n))


def section_w7r(runs):
    """W7R: how many clients came back to the second hub and when (reconnect_ms_hist, stream end
    to the new 200), against the retry: they were told (retry_ms_hist)."""
    rows = []
    for p, l, g in groups(runs, "W7R"):
        rec = merge_hist(hists(g, "reconnect_ms_hist"))
        told = merge_hist(hists(g, "retry_ms_hist"))
        p5, p50, p90, p95 = (hist_quantile(rec, q) for q in (0.05, 0.5, 0.9, 0.95))
        rows.append([p, l, g.cell("connected"), g.cell("ended_clean"), g.cell("reconnected"),
                     g.cell("reconnect_failed"), fmt_ms(p50), fmt_ms(p90),
                     fmt_ms(rec[-1][0] if rec else None),
                     "%s–%s" % (fmt_ms(p5), fmt_ms(p95)) if rec else "–",
                     fmt_ms(told[-1][0] if told else None), loss_cell(g), g.exits()])
    return table(["peer", "run", "subscribers", "ended clean", "reconnected", "failed attempts",
                  "reconnect p50 ms", "p90 ms", "max ms", "spread p5–p95 ms",
                  "largest retry: told ms", "lost/dup/ooo", "exit"], rows) + (
        "\n\nReconnect times run from a client's stream end (after the final frame) to the "
        "second hub's 200; percentiles are over all rounds' clients together, at sluice-bench's "
        "bucket bounds (50 ms steps from 1 s to 10 s). Counts are medians over rounds.")


def section_w8(runs, workload="W8"):
    rows = []
    for p, l, g in groups(runs, workload):
        rates = [a / d for a, d in ((get(r, "acked"), get(r, "duration_seconds")) for r in g.recs)
                 if a and d]
        rows.append([p, g.cell("published"), g.cell("acked"),
                     "%.0f" % statistics.median(rates) if rates else "–", loss_cell(g),
                     g.cell("latency_us.p99", MS, "%.2f"), g.cell("server_cpu_seconds", 1, "%.2f"),
                     g.exits()])
    return table(["peer", "published", "acked", "publishes/s", "lost/dup/ooo", "p99 ms",
                  "server CPU s", "exit"], rows)


def section_w12(runs):
    """W12: what a live upgrade costs the streams: disconnects, losses, the delivery gap (max
    latency) and the reconnections, per peer."""
    rows = []
    for p, l, g in groups(runs, "W12"):
        rec = merge_hist(hists(g, "reconnect_ms_hist"))
        rows.append([p, l, g.cell("connected"), g.cell("disconnects"), g.cell("reconnected"),
                     g.cell("reconnect_failed"), "%s/%s" % (g.cell("acked"), g.cell("published")),
                     g.cell("publish_errors"), loss_cell(g), g.cell("latency_us.p99", MS, "%.1f"),
                     g.cell("latency_us.max", MS, "%.0f"),
                     fmt_ms(hist_quantile(rec, 0.9)) if rec else "–", g.exits()])
    return table(["peer", "run", "subscribers", "disconnects", "reconnected", "failed attempts",
                  "acked/published", "publish errors", "lost/dup/ooo", "latency p99 ms",
                  "delivery gap (max latency) ms", "reconnect p90 ms", "exit"], rows) + (
        "\n\nsluice-upgrade: SIGUSR2 to the hub (the live hand-off); nginx-upgrade: nginx's "
        "binary upgrade in front of the hub (its old workers cut their streams at "
        "worker_shutdown_timeout and the clients reconnect with Last-Event-ID); "
        "nginx-sluice-upgrade: the hub behind nginx upgraded. The delivery gap is the largest "
        "publish-to-receive latency of any update to any subscriber over the run.")


SECTIONS = [
    ("W1", "Idle connections: memory per connection", section_w1),
    ("W2", "Broadcast: 1000 subscribers, 100-byte events, by publish rate", section_w2),
    ("W3", "Rate sweep: 1000 subscribers", section_w3),
    ("W4", "Many topics: subscribers spread over 1000 topics", lambda r: section_broadcast(r, "W4")),
    ("W4U", "Many topics with URL patterns: W4's subscribers using match_urlpattern (sluice)",
     lambda r: section_broadcast(r, "W4U")),
    ("W4P", "Many topics with URL patterns that have a named group: 1000 distinct patterns (sluice)",
     lambda r: section_broadcast(r, "W4P")),
    ("W5", "Slow consumers among fast ones", section_w5),
    ("W6", "Connection churn", section_w6),
    ("W6S", "Connection churn with --subscriptions (sluice; compare with W6)",
     lambda r: section_w6(r, "W6S")),
    ("W7", "Drain under load", section_w7),
    ("W7R", "Drain and come back: reconnection to a restarted hub (sluice)", section_w7r),
    ("W12", "Live upgrade under load: streams handed to a new process, or drained by nginx's "
     "binary upgrade", section_w12),
    ("W8", "Publish throughput", section_w8),
    ("W8D", "Publish throughput, durable history (sluice-disk: --data-dir) against in memory",
     lambda r: section_w8(r, "W8D")),
    ("W8R", "Publish throughput through Redis Streams (sluice-redis: --redis) against in memory",
     lambda r: section_w8(r, "W8R")),
    ("W9", "Under attack: delivery while one client attacks the hub", section_w9),
]


def write_summary(run_dir, runs, machine):
    out = ["# Benchmark run %s" % os.path.basename(os.path.realpath(run_dir)), ""]
    out.append("Machine: %s × %s, %.1f GiB, kernel %s; open-file limit %s%s." % (
        machine.get("nproc"), machine.get("cpu_model"), machine.get("mem_total_kb", 0) / 2**20,
        machine.get("kernel"), machine.get("open_files_limit"),
        " — QUICK subset" if machine.get("quick") else ""))
    out.append("Versions: sluice %s (commit %s); %s; nchan %s; %s; pushpin %s." % (
        machine.get("sluice"), machine.get("sluice_commit"), machine.get("nginx"),
        machine.get("nchan"), machine.get("go"), machine.get("pushpin")))
    out.append("")
    out.append("Cells are medians over rounds, with [min–max] when rounds differ. 'exit' lists "
               "sluice-bench's exit code per round: 0 clean, 1 loss/duplicates/reordering seen, "
               "125 the peer did not start, 124 timed out, anything else an error.")
    for w, title, fn in SECTIONS:
        if any(r["workload"] == w for r in runs):
            out += ["", "## %s — %s" % (w, title), "", fn(runs)]
    with open(os.path.join(run_dir, "summary.md"), "w") as f:
        f.write("\n".join(out) + "\n")


def num(v, scale=1.0):
    return "?" if v is None else "%g" % (v * scale)


def write_data(run_dir, runs):
    """Writes data/*.dat; returns the peers present per plot input."""
    data = os.path.join(run_dir, "data")
    os.makedirs(data, exist_ok=True)
    have = {}

    w1 = groups(runs, "W1")
    if w1:
        peers = sorted({p for p, _, _ in w1}, key=peer_key)
        counts = sorted({label_key(l)[0] for _, l, _ in w1})
        by = {(p, label_key(l)[0]): g for p, l, g in w1}
        with open(os.path.join(data, "w1_rss.dat"), "w") as f:
            f.write("connections " + " ".join(peers) + "\n")
            for n in counts:
                f.write("%d %s\n" % (n, " ".join(
                    num(by[(p, n)].median("rss_per_conn_bytes"), 1 / 1024) if (p, n) in by else "?"
                    for p in peers)))
        have["w1"] = peers

    w2 = [(rate, p, g) for rate, p, g in w2_groups(runs) if g.values("cpu_us_per_delivery")]
    if w2:
        # One cluster of bars per rate, one bar per peer, a gap between clusters; x is the bar's
        # position. w2_xtics.gp names the clusters under their middle.
        peers = sorted({p for _, p, _ in w2}, key=peer_key)
        rates = sorted({rate for rate, _, _ in w2}, key=rate_key)
        width = len(peers) + 1
        with open(os.path.join(data, "w2_cpu.dat"), "w") as f:
            f.write("x rate peer median min max\n")
            for rate, p, g in w2:
                v = g.values("cpu_us_per_delivery")
                x = rates.index(rate) * width + peers.index(p)
                f.write("%d %d %s %g %g %g\n" % (x, rate, p, statistics.median(v), min(v), max(v)))
        with open(os.path.join(data, "w2_xtics.gp"), "w") as f:
            f.write("set xtics (%s)\n" % ", ".join(
                "'%s' %g" % ("as fast as acked" if rate == 0 else "%d events/s" % rate,
                             i * width + (len(peers) - 1) / 2) for i, rate in enumerate(rates)))
            f.write("set xrange [-0.7:%g]\n" % (len(rates) * width - 1.3))
        have["w2"] = peers

    w3 = groups(runs, "W3")
    if w3:
        peers = []
        for peer in sorted({p for p, _, _ in w3}, key=peer_key):
            rows = [(label_key(l)[0], g) for p, l, g in w3 if p == peer]
            with open(os.path.join(data, "w3_%s.dat" % peer), "w") as f:
                f.write("rate p50 p90 p99 p999 deliveries_per_sec lost\n")
                for rate, g in rows:
                    f.write("%d %s %s %s %s %s %s\n" % (
                        rate, num(g.median("latency_us.p50"), MS), num(g.median("latency_us.p90"), MS),
                        num(g.median("latency_us.p99"), MS), num(g.median("latency_us.p999"), MS),
                        num(g.median("deliveries_per_sec")), num(g.median("lost"))))
            if any(g.median("latency_us.p99") is not None for _, g in rows):
                peers.append(peer)
        have["w3"] = peers

    w7 = groups(runs, "W7")
    if w7:
        with open(os.path.join(data, "w7_end.dat"), "w") as f:
            f.write("peer clean partial reset timeout\n")
            for p, _, g in w7:
                f.write("%s %s %s %s %s\n" % (p, num(g.median("ended_clean")),
                                              num(g.median("ended_partial")),
                                              num(g.median("ended_reset")),
                                              num(g.median("ended_timeout"))))
        hist_peers = []
        for p, _, g in w7:
            hist = merge_hist([(r.get("result") or {}).get("retry_ms_hist") for r in g.recs])
            if hist:
                # Cumulative share of the clients told to wait at most ms: a spread uniform over
                # a window is a straight line up to the window's end.
                total, seen = sum(n for _, n in hist), 0.0
                with open(os.path.join(data, "w7_retry_%s.dat" % p), "w") as f:
                    f.write("retry_ms_at_most share\n0 0\n")
                    for ms, n in hist:
                        seen += n
                        f.write("%g %g\n" % (ms, seen / total))
                hist_peers.append(p)
        have["w7"] = [p for p, _, g in w7 if g.values("ended_clean") or g.values("ended_reset")]
        have["w7_retry"] = hist_peers
        have["w7_timeline"] = [p for p, _, g in w7 if write_timeline(data, p, g)]
        have["w7_subs"] = subscribers(w7)

    w7r = groups(runs, "W7R")
    if w7r:
        have["w7r"] = [p for p, _, g in w7r if write_reconnect(data, p, g)]
        have["w7r_subs"] = subscribers(w7r)
    return have


def subscribers(grouped):
    """The subscribers a workload asked for (median over its records), for plot titles."""
    vals = [v for _, _, g in grouped for v in g.values("subscribers")]
    return int(statistics.median(vals)) if vals else 0


def msh_lower(upper):
    """The bound below a bucket of sluice-bench's millisecond histograms (bench_hist.h): a bucket
    holds (lower, upper]. Exact to 10 ms, then steps of 10 ms to 1 s, 50 ms to 10 s, 1 s to 60 s,
    then one bucket to 600 s; beyond it the bound reported is the largest value seen."""
    for top, step in ((10, 1), (1000, 10), (10000, 50), (60000, 1000)):
        if upper <= top:
            return max(upper - step, -1)
    return 60000 if upper <= 600000 else 600000


def write_timeline(data, peer, g):
    """w7_timeline_<peer>.dat: the share and number of the streams open at the SIGTERM that were
    still open t ms after it, summed over the rounds that measured end_ms_hist (older records did
    not: they are left out, and a peer with none of them gets no file). Each bucket (lo, hi] is
    drawn as a ramp from lo to hi, so empty stretches stay flat. Returns whether it wrote one."""
    recs = [r for r in g.recs if isinstance((r.get("result") or {}).get("end_ms_hist"), list)]
    hist = merge_hist([r["result"]["end_ms_hist"] for r in recs])
    total = sum(n for _, n in hist) + sum(get(r, "ended_timeout") or 0 for r in recs)
    if not recs or total <= 0:
        return False
    with open(os.path.join(data, "w7_timeline_%s.dat" % peer), "w") as f:
        f.write("ms_since_sigterm still_open_share still_open_streams  # %d rounds\n" % len(recs))
        f.write("0 1 %g\n" % total)
        left = total
        for ms, n in hist:
            f.write("%g %g %g\n" % (max(msh_lower(ms), 0), left / total, left))
            left -= n
            f.write("%g %g %g\n" % (ms, left / total, left))
    return True


BIN_MS = 250  # the reconnect spread plot's bins


def bin_hist(hist, rounds):
    """Rebins a millisecond histogram into BIN_MS-wide bins, as clients per bin per round. A
    bucket inside one bin goes to it whole (every bucket below 10 s is); a wider one is shared
    evenly among the bins it covers; values beyond 60 s are left out (the table has the max)."""
    bins = {}
    for ms, n in hist:
        lo = msh_lower(ms)
        if lo >= 60000:
            continue
        first, last = int(max(lo, 0) // BIN_MS), int((ms - 1) // BIN_MS) if ms > 0 else 0
        last = max(first, last)
        for b in range(first, last + 1):
            bins[b] = bins.get(b, 0.0) + n / (last - first + 1) / rounds
    return bins


def write_reconnect(data, peer, g):
    """w7r_bins_<peer>.dat (per BIN_MS bin: clients that reconnected, and that were told a retry:
    in it, per round) and w7r_cdf_<peer>.dat (share of clients by time: reconnected, told)."""
    rec = merge_hist(hists(g, "reconnect_ms_hist"))
    told = merge_hist(hists(g, "retry_ms_hist"))
    if not rec:
        return False
    rounds = max(1, len(hists(g, "reconnect_ms_hist")))
    rb, tb = bin_hist(rec, rounds), bin_hist(told, max(1, len(hists(g, "retry_ms_hist"))))
    with open(os.path.join(data, "w7r_bins_%s.dat" % peer), "w") as f:
        f.write("bin_start_ms bin_end_ms reconnected told  # per round, %d rounds\n" % rounds)
        # One empty bin past the last, so that the step line of the last bin is drawn too.
        for b in range(0, max(list(rb) + list(tb), default=-1) + 2):
            f.write("%d %d %g %g\n" % (b * BIN_MS, (b + 1) * BIN_MS, rb.get(b, 0), tb.get(b, 0)))
    with open(os.path.join(data, "w7r_cdf_%s.dat" % peer), "w") as f:
        f.write("ms share_reconnected share_told\n")
        rt, tt = sum(n for _, n in rec), sum(n for _, n in told)
        points = sorted({ms for ms, _ in rec} | {ms for ms, _ in told})
        cr = ct = 0.0
        rd, td = dict(rec), dict(told)
        f.write("0 0 0\n")
        for ms in points:
            cr += rd.get(ms, 0)
            ct += td.get(ms, 0)
            f.write("%g %g %s\n" % (ms, cr / rt, "%g" % (ct / tt) if tt else "?"))
    return True


def merge_hist(hists):
    """Sums rounds of a millisecond histogram (retry_ms_hist, end_ms_hist, reconnect_ms_hist),
    which sluice-bench writes as [[upper bound in ms, count]]; absent ones count as empty."""
    total = {}
    for h in hists:
        for e in h if isinstance(h, list) else []:
            if isinstance(e, list) and len(e) >= 2:
                total[float(e[0])] = total.get(float(e[0]), 0) + float(e[1])
    return sorted(total.items())


PLOTS = {  # script → (input key in `have`, output PNG)
    "w1_memory.gp": ("w1", "w1_memory.png"),
    "w2_cpu.gp": ("w2", "w2_cpu.png"),
    "w3_latency.gp": ("w3", "w3_latency.png"),
    "w7_drain.gp": ("w7", "w7_drain.png"),
    "w7_timeline.gp": ("w7_timeline", "w7_timeline.png"),
    "w7r_reconnect.gp": ("w7r", "w7r_reconnect.png"),
}


def draw(run_dir, have, scripts, publish):
    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    ok = True
    for script, (key, png) in PLOTS.items():
        peers = have.get(key)
        if not peers:
            continue
        target = os.path.join(out_dir, png)
        expr = ("datadir='%s'; out='%s'; peers='%s'; retry_peers='%s'; w7_subs=%d; w7r_subs=%d" % (
            os.path.join(run_dir, "data"), target, " ".join(peers), " ".join(have.get("w7_retry", [])),
            have.get("w7_subs", 0), have.get("w7r_subs", 0)))
        proc = subprocess.run(["gnuplot", "-e", expr, os.path.join(scripts, script)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(target):
            sys.stderr.write("collect: %s failed:\n%s" % (script, proc.stderr))
            ok = False
            continue
        if publish:
            os.makedirs(publish, exist_ok=True)
            shutil.copy(target, os.path.join(publish, png))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--plots", metavar="SCRIPTS_DIR", help="draw PNGs with the gnuplot scripts here")
    ap.add_argument("--publish", metavar="DIR", help="also copy the PNGs here")
    args = ap.parse_args()
    runs = load_runs(args.run_dir)
    if not runs:
        sys.stderr.write("collect: no records in %s/runs\n" % args.run_dir)
        return 1
    try:
        with open(os.path.join(args.run_dir, "machine.json")) as f:
            machine = json.load(f)
    except (OSError, ValueError):
        machine = {}
    write_summary(args.run_dir, runs, machine)
    have = write_data(args.run_dir, runs)
    ok = True
    if args.plots:
        if shutil.which("gnuplot"):
            ok = draw(args.run_dir, have, args.plots, args.publish)
        else:
            sys.stderr.write("collect: gnuplot is not installed; no plots\n")
    missing = [r for r in runs if not r.get("result")]
    for r in missing:
        sys.stderr.write("collect: no result from %s %s %s round %d (exit %d)\n" % (
            r["workload"], r["peer"], r["label"], r["round"], r["exit_code"]))
    return 0 if ok and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
