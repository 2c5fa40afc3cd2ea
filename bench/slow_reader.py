#!/usr/bin/env python3
"""Slow SSE subscribers for workload W5: they connect like any subscriber, then read at a trickle
through a small receive buffer, so the server's queue for them grows while fast subscribers
(driven by sluice-bench) measure whether they are held back. Prints one JSON object: how many
slow readers connected, what they received (bytes, and SSE frames, comments included), and how
many the server closed or reset (a hub that cuts a subscriber whose queue overflowed closes it;
one that drops events keeps it open). It stops after --seconds or on SIGTERM, and reports either
way.

Loopback only; bounded by --seconds. Usage:
  slow_reader.py --url 'http://127.0.0.1:PORT/path?topic={topic}' --topic T [--connections N]
                 [--bytes-per-sec B] [--seconds S]
"""
import argparse
import asyncio
import json
import signal
import socket
import sys
import time
import urllib.parse


async def reader(url, rate, stats):
    parts = urllib.parse.urlsplit(url)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET)
    # A small receive window makes the server feel the slowness at once, not after megabytes.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    path = parts.path + ("?" + parts.query if parts.query else "")
    request = ("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
               "Cache-Control: no-cache\r\n\r\n" % (path, parts.netloc)).encode()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (parts.hostname, parts.port or 80)), 10)
        await loop.sock_sendall(sock, request)
    except (OSError, asyncio.TimeoutError):
        stats["connect_errors"] += 1
        sock.close()
        return
    stats["connected"] += 1
    try:
        buf, in_body = b"", False
        chunk = max(1, rate // 10)
        while True:
            data = await loop.sock_recv(sock, chunk)
            if not data:
                stats["closed_by_server"] += 1
                return
            stats["bytes"] += len(data)
            buf += data
            if not in_body and b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                in_body = True
                if head.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"200"]:
                    stats["status_ok"] += 1
            if in_body and b"\n\n" in buf:
                stats["frames"] += buf.count(b"\n\n")
                buf = buf[buf.rfind(b"\n\n") + 2:]
            await asyncio.sleep(0.1)
    except OSError:
        stats["reset_by_server"] += 1
    finally:
        sock.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="subscribe URL template with {topic}")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--bytes-per-sec", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=30, help="stop after this long (or on TERM)")
    args = ap.parse_args()
    if not 0 < args.connections <= 5000 or not 0 < args.seconds <= 600:
        ap.error("--connections must be 1..5000 and --seconds 0..600")
    url = args.url.replace("{topic}", urllib.parse.quote(args.topic, safe=""))
    if urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        ap.error("loopback targets only")
    stats = dict(slow_connections=args.connections, connected=0, status_ok=0, bytes=0, frames=0,
                 closed_by_server=0, reset_by_server=0, connect_errors=0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    tasks = [asyncio.create_task(reader(url, args.bytes_per_sec, stats))
             for _ in range(args.connections)]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper], timeout=args.seconds)
    for t in (stopper, *tasks):
        t.cancel()
    await asyncio.gather(stopper, *tasks, return_exceptions=True)
    stats["still_open"] = (stats["connected"] - stats["closed_by_server"]
                           - stats["reset_by_server"])
    stats["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(stats))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
