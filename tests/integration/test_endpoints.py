"""test_endpoints — the hub's own endpoints: /healthz and /readyz answer 200; /metrics is
Prometheus text with the documented series, and its counters and gauges follow what happens
(a subscriber connects and leaves, an update is published and delivered); / serves the HTML demo
page, which subscribes with EventSource.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_endpoints")

COUNTERS = ["sluice_published_total", "sluice_delivered_total",
            "sluice_slow_consumer_disconnects_total", "sluice_bytes_out_total",
            "sluice_writes_total"]
GAUGES = ["sluice_connections", "sluice_subscribers"]
HISTOGRAM = "sluice_publish_latency_seconds"


def test_health(hub):
    for path in ("/healthz", "/readyz"):
        resp = ht.request(hub.port, "GET", path)
        t.eq(resp.status, 200, f"GET {path}: 200")


def test_metrics_format(hub):
    resp = ht.request(hub.port, "GET", "/metrics")
    t.eq(resp.status, 200, "GET /metrics: 200")
    t.check((resp.header("content-type") or "").startswith("text/plain"),
            "metrics Content-Type is text/plain (Prometheus text format)", resp.headers)
    text = resp.text
    samples = ht.parse_metrics(text)
    for name in COUNTERS + GAUGES:
        t.check(ht.metric(samples, name) is not None, f"/metrics has {name}", text[:500])
    for name in COUNTERS:
        t.check(re.search(rf"^# TYPE {name} counter$", text, re.M), f"{name} is a counter")
    for name in GAUGES:
        t.check(re.search(rf"^# TYPE {name} gauge$", text, re.M), f"{name} is a gauge")
    t.check(re.search(rf"^# TYPE {HISTOGRAM} histogram$", text, re.M),
            f"{HISTOGRAM} is a histogram")
    buckets = [(m.group(1), float(m.group(2))) for m in
               re.finditer(rf'^{HISTOGRAM}_bucket\{{[^}}]*le="([^"]+)"[^}}]*\}} (\S+)$', text, re.M)]
    t.check(len(buckets) >= 2 and buckets[-1][0] == "+Inf",
            f"{HISTOGRAM}_bucket series end with le=\"+Inf\"", buckets)
    t.check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
            "histogram buckets are cumulative", buckets)
    t.check(f"{HISTOGRAM}_sum" in samples and f"{HISTOGRAM}_count" in samples,
            f"{HISTOGRAM}_sum and _count present")
    if buckets and f"{HISTOGRAM}_count" in samples:
        t.eq(buckets[-1][1], samples[f"{HISTOGRAM}_count"], "+Inf bucket equals _count")


def test_metrics_move(hub):
    before = hub.metrics()
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:metrics:t"]))
    s.wait_open(10)
    during = hub.metrics()
    t.eq(ht.metric(during, "sluice_subscribers"), ht.metric(before, "sluice_subscribers") + 1,
         "sluice_subscribers counts the new subscriber")
    t.check(ht.metric(during, "sluice_connections") >= 1, "sluice_connections >= 1")
    ht.publish(hub.port, ht.mint_token(), "urn:metrics:t", data="m", id="metrics-1")
    t.check(s.wait_id("metrics-1", 10) is not None, "subscriber received the update")
    ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_delivered_total")
                  > ht.metric(before, "sluice_delivered_total"), 5 * ht.SLOW)
    after = hub.metrics()

    def delta(name):
        return ht.metric(after, name) - ht.metric(before, name)

    t.eq(delta("sluice_published_total"), 1.0, "sluice_published_total rose by 1")
    t.eq(delta("sluice_delivered_total"), 1.0, "sluice_delivered_total rose by 1 (one subscriber)")
    t.check(delta("sluice_bytes_out_total") > 0, "sluice_bytes_out_total rose",
            delta("sluice_bytes_out_total"))
    t.eq(delta(f"{HISTOGRAM}_count"), 1.0, f"{HISTOGRAM}_count rose by 1")
    t.eq(delta("sluice_slow_consumer_disconnects_total"), 0.0, "no slow-consumer disconnect")
    s.close()
    gone = ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_subscribers")
                         == ht.metric(before, "sluice_subscribers"), 5 * ht.SLOW)
    t.check(gone, "sluice_subscribers drops back when the subscriber leaves",
            ht.metric(hub.metrics(), "sluice_subscribers"))


def test_demo(hub):
    resp = ht.request(hub.port, "GET", "/")
    t.eq(resp.status, 200, "GET /: 200")
    t.check((resp.header("content-type") or "").startswith("text/html"), "/ is text/html",
            resp.headers)
    t.check("<html" in resp.text.lower() and "EventSource" in resp.text,
            "demo page is HTML that uses EventSource", resp.text[:200])


def test_flush_window(hub):
    """Updates that come closer together than --flush-window (1 s, the largest, on this hub)
    reach a subscriber in fewer writes than updates; sluice_writes_total shows it. The first
    update after a quiet spell goes out at once, so it is timed too: against a 1 s window the
    0.5 s bound tells "at once" from "at the window's end" even in a sanitizer build."""
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:window:t"]))
    s.wait_open(10)
    time.sleep(1.1)  # a quiet window: the next update is written at once
    pub = ht.Publisher(hub.port)
    before = hub.metrics()
    sent = time.monotonic()
    pub.must(["urn:window:t"], data="first", id="w-0")
    t.check(s.wait_id("w-0", 10) is not None, "the first update after a quiet window arrives")
    t.check(time.monotonic() - sent < 0.5,
            "it arrives well within the window (written at once)", time.monotonic() - sent)
    n = 20
    for i in range(1, n + 1):
        pub.must(["urn:window:t"], data=f"u{i}", id=f"w-{i}")
    t.check(s.wait_id(f"w-{n}", 10) is not None, "every later update arrives")
    ht.wait_until(lambda: ht.metric(hub.metrics(), "sluice_delivered_total")
                  >= ht.metric(before, "sluice_delivered_total") + n + 1, 5 * ht.SLOW)
    after = hub.metrics()
    delivered = ht.metric(after, "sluice_delivered_total") - ht.metric(before, "sluice_delivered_total")
    writes = ht.metric(after, "sluice_writes_total") - ht.metric(before, "sluice_writes_total")
    t.eq(delivered, float(n + 1), "sluice_delivered_total rose by every update")
    # n + 1 publish answers take one write each; without the window the subscriber would take
    # n + 1 more. With it, the 20 updates published within a few windows share a few writes.
    t.check(writes <= (n + 1) + n / 2, "the subscriber's updates shared writes",
            f"{writes:.0f} writes for {n + 1} answers and {n + 1} updates")
    s.close()


def main():
    hub = ht.start_hub(anonymous=True)
    t.section("health", test_health, hub)
    t.section("metrics format", test_metrics_format, hub)
    t.section("metrics follow activity", test_metrics_move, hub)
    t.section("demo page", test_demo, hub)
    t.stop_hub(hub)
    hub = ht.start_hub(anonymous=True, flush_window="1")
    t.section("flush window", test_flush_window, hub)
    t.stop_hub(hub)
    t.finish()


if __name__ == "__main__":
    main()
