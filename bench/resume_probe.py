#!/usr/bin/env python3
"""resume_probe.py — W11's measurement: one subscriber resumes N missed updates.

Publishes a marker update, then N updates of SIZE bytes (pipelined on one connection), then one
whose data is LAST; then one subscriber resumes with Last-Event-ID = the marker's id. Reports, as
one JSON line: the time from sending the subscription request to receiving LAST (ms), the
events it got, and the hub's RSS before the resume, after it, and at its peak during it (VmHWM,
reset just before through /proc/PID/clear_refs), in KiB. Loopback only."""
import argparse
import json
import socket
import time
import urllib.parse


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def post(port, jwt, topic, data):
    body = urllib.parse.urlencode({"topic": topic, "data": data}).encode()
    return (f"POST /.well-known/mercure HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {jwt}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += sock.recv(65536)
    status = int(head.split(b" ")[1])
    return status, rest[:length].decode(), rest[length:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--jwt", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--size", type=int, default=100)
    a = ap.parse_args()
    topic = "https://bench.sluice.test/resume"
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(post(a.port, a.jwt, topic, "marker"))
    status, marker, buf = read_response(s, b"")
    assert status == 200, status
    pad = "x" * a.size
    acked, sent, batch = 0, 0, 64
    while acked < a.count:
        n = min(batch, a.count - sent)
        if n:
            s.sendall(b"".join(post(a.port, a.jwt, topic, pad) for _ in range(n)))
            sent += n
        for _ in range(n):
            status, _, buf = read_response(s, buf)
            assert status == 200, status
            acked += 1
    s.sendall(post(a.port, a.jwt, topic, "LAST"))
    status, _, buf = read_response(s, buf)
    assert status == 200, status
    s.close()
    time.sleep(0.5)
    rss_before = rss(a.pid, "VmRSS")
    try:
        with open(f"/proc/{a.pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False
    sub = socket.create_connection(("127.0.0.1", a.port))
    req = (f"GET /.well-known/mercure?topic={urllib.parse.quote(topic, safe='')} HTTP/1.1\r\n"
           f"Host: 127.0.0.1:{a.port}\r\nAccept: text/event-stream\r\n"
           f"Last-Event-ID: {marker}\r\n\r\n").encode()
    got = bytearray()
    t0 = time.monotonic()
    sub.sendall(req)
    deadline = t0 + 30
    while b"data: LAST\n" not in got[-4096:] and time.monotonic() < deadline:
        chunk = sub.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    t1 = time.monotonic()
    events = got.count(b"\ndata: ")
    hwm = rss(a.pid, "VmHWM")
    rss_after = rss(a.pid, "VmRSS")
    sub.close()
    print(json.dumps({
        "count": a.count, "size": a.size, "events_received": events - 1,  # less LAST
        "complete": b"data: LAST\n" in got, "ms_to_last": round((t1 - t0) * 1000, 2),
        "bytes_received": len(got), "rss_before_kb": rss_before, "rss_after_kb": rss_after,
        "rss_peak_kb": hwm if hwm_reset else None,
        "rss_growth_kb": rss_after - rss_before,
        "rss_peak_growth_kb": (hwm - rss_before) if hwm_reset else None,
    }))


if __name__ == "__main__":
    main()
