#!/usr/bin/env python3
"""The origin behind Pushpin when Pushpin is a benchmark peer of sluice.

Pushpin holds streams itself but needs a backend to say which channel a request joins, and it is
published to through its own GRIP API, whose JSON body no load-generator publish mode speaks.
This origin does both, and nothing else:
  GET  /events?topic=T   answers with Grip-Hold: stream and Grip-Channel: T, so Pushpin keeps the
                         client's connection open and subscribes it to channel T;
  POST /publish          takes a form (topic, data) or a raw body with ?topic=T, frames the data
                         as one SSE event and hands it to Pushpin's publish endpoint over one
                         kept-alive connection per origin thread; answers 200 once Pushpin has.
The origin is not on the delivery path: each event crosses it once, whatever the fan-out.
"""
import argparse
import http.client
import http.server
import json
import socketserver
import threading
import urllib.parse

_local = threading.local()


def grip_publish(host, port, channel, data):
    """Posts one http-stream item; returns Pushpin's HTTP status."""
    content = "".join("data: %s\n" % line for line in data.split("\n")) + "\n"
    body = json.dumps({"items": [{"channel": channel,
                                  "formats": {"http-stream": {"content": content}}}]})
    for attempt in (0, 1):
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("POST", "/publish/", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (ConnectionError, http.client.HTTPException, OSError):
            conn.close()
            _local.conn = None
            if attempt:
                raise
    return 502


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    grip = ("127.0.0.1", 5561)

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        topic = urllib.parse.parse_qs(url.query).get("topic", [""])[0]
        if url.path != "/events" or not topic:
            self.reply(404)
            return
        self.reply(200, [("Content-Type", "text/event-stream"),
                         ("Cache-Control", "no-cache"),
                         ("Grip-Hold", "stream"),
                         ("Grip-Channel", topic)])

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if url.path != "/publish":
            self.reply(404)
            return
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
            topic = form.get("topic", [""])[0]
            data = form.get("data", [""])[0]
        else:
            topic = urllib.parse.parse_qs(url.query).get("topic", [""])[0]
            data = raw.decode()
        if not topic:
            self.reply(400, body=b"missing topic\n")
            return
        try:
            status = grip_publish(self.grip[0], self.grip[1], topic, data)
        except OSError as e:
            self.reply(502, body=("pushpin: %s\n" % e).encode())
            return
        self.reply(200 if status == 200 else 502)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 4096


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:8092")
    ap.add_argument("--grip", default="127.0.0.1:5561", help="Pushpin's publish HOST:PORT")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    ghost, gport = args.grip.rsplit(":", 1)
    Handler.grip = (ghost, int(gport))
    srv = Server((host, int(port)), Handler)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
