"""test_http_errors — the HTTP layer as seen from raw sockets: every error status the hub sends
(400 malformed request, 404, 405 with Allow, 408 header timeout, 413 by Content-Length and by
chunked body, 414, 415, 431, 401 with its Bearer challenge, 403, 400 for each publish field and
subscription parameter rule), each with a body saying what was wrong; and connection handling:
keep-alive, pipelining (three requests in one write, three responses in order), Connection:
close, HTTP/1.0, and the idle timeout (which must not cut live event streams).

Hub flags: --header-timeout 1 --idle-timeout 2 --max-body 4096.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_http_errors")
MAX_BODY = 4096
HEADER_TIMEOUT = 1
IDLE_TIMEOUT = 2
FORM = "application/x-www-form-urlencoded"


def raw(port, data, timeout=10):
    """Sends bytes on a new connection and reads one response; returns (response, conn)."""
    conn = ht.HTTPConn(port, timeout)
    conn.send(data)
    return conn.read_response(), conn


def error_body_ok(resp, words=(), any_of=()):
    """The body is not empty, contains every one of words and at least one of any_of."""
    text = resp.text.lower()
    return (bool(resp.body.strip()) and all(w.lower() in text for w in words)
            and (not any_of or any(w.lower() in text for w in any_of)))


def test_malformed(hub):
    for what, data in [
        ("garbage request line", b"GARBAGE\r\n\r\n"),
        ("invalid method token", b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space inside a header name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"),
        ("whitespace between header name and colon (RFC 9112 5.1)",
         b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"),
        ("header line without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
        ("bare LF inside a header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n"),
    ]:
        try:
            resp, conn = raw(hub.port, data)
        except ht.ConnectionClosed as e:
            t.check(False, f"{what}: 400", f"connection closed without a response: {e}")
            continue
        if t.eq(resp.status, 400, f"{what}: 400"):
            t.check(error_body_ok(resp), f"{what}: error body says what was wrong", resp.body)
            t.check(conn.wait_closed(5), f"{what}: connection closed after the 400")
        conn.close()


def test_method_path(hub):
    for method in ("PUT", "DELETE", "PATCH"):
        resp = ht.request(hub.port, method, ht.HUB_PATH, {"Content-Length": "0"})
        allow = [m.strip().upper() for m in (resp.header("allow") or "").split(",")]
        t.eq(resp.status, 405, f"{method} {ht.HUB_PATH}: 405")
        t.check("GET" in allow and "POST" in allow, f"{method}: Allow lists GET and POST",
                resp.headers)
        t.check(error_body_ok(resp, ["method"]), f"{method}: 405 body names the method problem",
                resp.body)
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        resp = ht.request(hub.port, "POST", path, {"Content-Length": "0"})
        allow = sorted(m.strip().upper() for m in (resp.header("allow") or "").split(","))
        t.eq(resp.status, 405, f"POST {path}: 405")
        t.eq(allow, ["GET", "HEAD"], f"POST {path}: Allow: GET, HEAD")
        t.check(error_body_ok(resp, ["GET"]), f"POST {path}: 405 body says what it answers",
                resp.body)
    resp = ht.request(hub.port, "GET", "/no/such/path")
    t.eq(resp.status, 404, "GET /no/such/path: 404")
    t.check(error_body_ok(resp, ["not found"]), "404 body says not found", resp.body)


def test_header_timeout(hub):
    conn = ht.HTTPConn(hub.port)
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    try:
        resp = conn.read_response(timeout=HEADER_TIMEOUT + 5)
        took = time.monotonic() - t0
        t.eq(resp.status, 408, "headers never completed: 408")
        t.check(0.5 <= took <= HEADER_TIMEOUT + 3 * ht.SLOW,
                f"408 after {took:.2f}s with --header-timeout {HEADER_TIMEOUT}")
        t.check(conn.wait_closed(5), "connection closed after the 408")
    except (ht.ConnectionClosed, OSError) as e:
        t.check(False, "headers never completed: 408", repr(e))
    conn.close()

    # A client trickling one byte at a time does not reset the timer.
    conn = ht.HTTPConn(hub.port)
    t0 = time.monotonic()
    closed = False
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    for i in range(len(req)):
        try:
            conn.send(req[i:i + 1])
        except OSError:
            closed = True
            break
        if conn.wait_closed(0.2):
            closed = True
            break
        if time.monotonic() - t0 > HEADER_TIMEOUT + 5 * ht.SLOW:
            break
    took = time.monotonic() - t0
    t.check(closed and took < HEADER_TIMEOUT + 3 * ht.SLOW,
            f"byte-by-byte headers: cut after {took:.2f}s (header timeout is for the whole head)",
            f"closed={closed}, got {bytes(conn.buf[:80])!r}")
    t.check(bytes(conn.buf).startswith(b"HTTP/1.1 408"), "trickling client was sent a 408",
            bytes(conn.buf[:80]))
    conn.close()

    # A connection that sends nothing at all is closed too.
    conn = ht.HTTPConn(hub.port)
    t0 = time.monotonic()
    t.check(conn.wait_closed(HEADER_TIMEOUT + 5 * ht.SLOW),
            f"silent connection closed after {time.monotonic() - t0:.2f}s")
    conn.close()


def publish_headers(token, extra=None):
    h = {"Content-Type": FORM, "Authorization": f"Bearer {token}"}
    h.update(extra or {})
    return h


def test_limits(hub, token):
    # 413 from Content-Length alone: the hub answers without waiting for the body.
    conn = ht.HTTPConn(hub.port)
    conn.send(conn.build("POST", ht.HUB_PATH,
                         publish_headers(token, {"Content-Length": str(MAX_BODY + 1)})))
    try:
        resp = conn.read_response(timeout=5)
        t.eq(resp.status, 413, f"Content-Length {MAX_BODY + 1} > --max-body {MAX_BODY}: 413 "
             "before the body is sent")
        t.check(error_body_ok(resp, any_of=["body", "large"]), "413 body says the body is too large",
                resp.body)
    except (ht.ConnectionClosed, OSError) as e:
        t.check(False, "Content-Length over --max-body: 413", repr(e))
    conn.close()

    # 413 for a chunked body that grows past the limit.
    conn = ht.HTTPConn(hub.port)
    head = conn.build("POST", ht.HUB_PATH,
                      publish_headers(token, {"Transfer-Encoding": "chunked"}))
    body = ht.form([("topic", "urn:err:big"), ("data", "x" * (MAX_BODY + 2000))])
    try:
        conn.send(head)
        for i in range(0, len(body), 1000):
            piece = body[i:i + 1000]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the hub may close as soon as it has answered
    try:
        resp = conn.read_response(timeout=5)
        t.eq(resp.status, 413, f"chunked body over --max-body {MAX_BODY}: 413")
    except (ht.ConnectionClosed, OSError) as e:
        t.check(False, "chunked body over --max-body: 413", repr(e))
    conn.close()

    # A body of exactly --max-body bytes is accepted.
    fields = [("topic", "urn:err:exact"), ("id", "exact-size")]
    base = len(ht.form(fields + [("data", "")]))
    exact = ht.form(fields + [("data", "y" * (MAX_BODY - base))])
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(token), exact)
    t.eq((len(exact), resp.status, resp.text), (MAX_BODY, 200, "exact-size"),
         f"body of exactly {MAX_BODY} bytes: 200")

    # 414 and 431.
    resp = ht.request(hub.port, "GET", ht.HUB_PATH + "?match=" + "a" * 9000,
                      {"Authorization": f"Bearer {token}"})
    t.eq(resp.status, 414, "URL of 9000 bytes: 414")
    t.check(error_body_ok(resp, any_of=["uri", "url", "target"]), "414 body names the URL",
            resp.body)
    resp = ht.request(hub.port, "GET", "/healthz?pad=" + "a" * 6000)
    t.eq(resp.status, 200, "URL of 6000 bytes is fine")
    resp = ht.request(hub.port, "GET", "/healthz", {"X-Big": "a" * 9000})
    t.eq(resp.status, 431, "one 9000-byte header: 431")
    t.check(error_body_ok(resp, ["header"]), "431 body names the headers", resp.body)
    many = {f"X-Header-{i:03d}": "v" * 40 for i in range(200)}
    resp = ht.request(hub.port, "GET", "/healthz", many)
    t.eq(resp.status, 431, "200 headers, 10 KB in all: 431")
    resp = ht.request(hub.port, "GET", "/healthz", {"X-Mid": "a" * 6000})
    t.eq(resp.status, 200, "a 6000-byte header is fine")


def test_content_type(hub, token):
    body = ht.form([("topic", "urn:err:ct"), ("data", "x")])
    for ct in ("text/plain", "application/json", "multipart/form-data; boundary=x"):
        resp = ht.request(hub.port, "POST", ht.HUB_PATH,
                          {"Content-Type": ct, "Authorization": f"Bearer {token}"}, body)
        t.eq(resp.status, 415, f"publish with Content-Type {ct}: 415")
        t.check(error_body_ok(resp, ["application/x-www-form-urlencoded"]),
                f"415 body ({ct}) names the expected media type", resp.body)
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, {"Authorization": f"Bearer {token}"}, body)
    t.eq(resp.status, 415, "publish without Content-Type: 415")
    resp = ht.request(hub.port, "POST", ht.HUB_PATH,
                      {"Content-Type": FORM + "; charset=UTF-8",
                       "Authorization": f"Bearer {token}"}, body)
    t.eq(resp.status, 200, "Content-Type with a charset parameter: 200")


def test_auth(hub):
    body = ht.form([("topic", "urn:err:auth"), ("data", "x")])
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, {"Content-Type": FORM}, body)
    challenge = resp.header("www-authenticate") or ""
    t.eq(resp.status, 401, "publish without a token: 401")
    t.check(challenge.lower().startswith("bearer"), "401 carries WWW-Authenticate: Bearer",
            resp.headers)
    t.check("error=" not in challenge, "no error code when no token was presented", challenge)
    t.check(error_body_ok(resp, ["token"]), "401 body says a token is needed", resp.body)

    for what, token in [
        ("token signed with another key", ht.mint_token(key="not-the-hub-key-0123456789abcdef")),
        ("expired token", ht.jwt_hs256({"exp": int(time.time()) - 60, "mercure": {"publish": ["*"]}})),
        ("not a JWT", "abc.def"),
    ]:
        resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(token), body)
        challenge = resp.header("www-authenticate") or ""
        t.eq(resp.status, 401, f"{what}: 401")
        t.check(challenge.lower().startswith("bearer") and 'error="invalid_token"' in challenge,
                f'{what}: WWW-Authenticate: Bearer error="invalid_token"', resp.headers)
    fresh = ht.jwt_hs256({"exp": int(time.time()) + 600, "mercure": {"publish": ["*"]}})
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(fresh), body)
    t.eq(resp.status, 200, "the same hand-made token, not expired: 200")
    sub = ht.SSEStream(hub.port, ht.sub_query(["urn:err:auth"]),
                       token=ht.mint_token(key="not-the-hub-key-0123456789abcdef"))
    t.eq(sub.status, 401, "subscriber with a token signed with another key: 401")
    sub.close()

    narrow = ht.mint_token(publish=("urn:err:allowed",), subscribe=())
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(narrow),
                      ht.form([("topic", "urn:err:other"), ("data", "x")]))
    challenge = resp.header("www-authenticate") or ""
    t.eq(resp.status, 403, "token that may publish only urn:err:allowed, topic urn:err:other: 403")
    t.check('error="insufficient_scope"' in challenge,
            'WWW-Authenticate: Bearer error="insufficient_scope"', resp.headers)
    t.check(error_body_ok(resp, ["urn:err:other"]), "403 body names the refused topic", resp.body)
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(narrow),
                      ht.form([("topic", "urn:err:allowed"), ("data", "x")]))
    t.eq(resp.status, 200, "the same token on urn:err:allowed: 200")
    sub_only = ht.mint_token(publish=(), subscribe=("*",))
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(sub_only), body)
    t.eq(resp.status, 403, "token that only grants subscribe, used to publish: 403")

    # An Authorization header that is not "Bearer <token>" is a malformed request (RFC 6750 3.1),
    # not a missing token.
    for what, value in [("Basic credentials", "Basic dXNlcjpwYXNz"), ("an empty Bearer", "Bearer  ")]:
        resp = ht.request(hub.port, "POST", ht.HUB_PATH,
                          {"Content-Type": FORM, "Authorization": value}, body)
        t.eq(resp.status, 400, f"Authorization with {what}: 400")
        t.check('error="invalid_request"' in (resp.header("www-authenticate") or ""),
                f'{what}: WWW-Authenticate: Bearer error="invalid_request"', resp.headers)
        t.check(error_body_ok(resp, ["bearer"]), f"{what}: the body shows the expected form",
                resp.body)

    # The mercureAuthorization cookie carries a token where a header cannot (EventSource).
    sub_cookie = {"Cookie": "theme=dark; mercureAuthorization=" + sub_only}
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:err:cookie"]), headers=sub_cookie)
    t.eq(s.status, 200, "subscriber with its token in the mercureAuthorization cookie: 200")
    s.close()
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:err:cookie"]),
                     headers={"Cookie": "mercureAuthorization=abc.def"})
    t.eq(s.status, 401, "a cookie holding no valid token: 401")
    s.close()
    # A publish by cookie must show it comes from the hub's own origin (CSRF, Mercure spec).
    own = f"http://127.0.0.1:{hub.port}"
    cookie = {"Content-Type": FORM, "Cookie": "mercureAuthorization=" + ht.mint_token()}
    for what, extra, want in [
        ("with Origin naming this hub", {"Origin": own}, 200),
        ("with only a Referer on this hub", {"Referer": own + "/demo?x=1"}, 200),
        ("with neither Origin nor Referer", {}, 403),
        ("from another origin", {"Origin": "http://evil.example"}, 403),
        ("from another origin whose Referer names this hub", {"Origin": "http://evil.example",
                                                              "Referer": own + "/"}, 403),
        ("from a sandboxed page (Origin: null)", {"Origin": "null"}, 403),
        ("from this host on another port", {"Origin": f"http://127.0.0.1:{hub.port + 1}"}, 403),
    ]:
        resp = ht.request(hub.port, "POST", ht.HUB_PATH, dict(cookie, **extra), body)
        t.eq(resp.status, want, f"publisher token in the cookie, {what}: {want}")
        if want == 403:
            t.check(error_body_ok(resp, ["origin", "cookie"]), f"{what}: the body says why",
                    resp.body)
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, dict(publish_headers(ht.mint_token()),
                      Cookie="mercureAuthorization=x", Origin="http://evil.example"), body)
    t.eq(resp.status, 200, "a token in the Authorization header needs no origin check: 200")
    resp = ht.request(hub.port, "POST", ht.HUB_PATH,
                      dict(cookie, Origin=own, Authorization="Bearer " + sub_only), body)
    t.eq(resp.status, 403, "the Authorization header wins over the cookie (its token: 403)")


def test_publish_fields(hub, token):
    cases = [
        ("id starting with '#'", [("topic", "urn:e"), ("id", "#frag")], "id"),
        ("id 'earliest'", [("topic", "urn:e"), ("id", "earliest")], "id"),
        ("id with a control character", [("topic", "urn:e"), ("id", "a\x01b")], "id"),
        ("retry with a letter", [("topic", "urn:e"), ("retry", "12a")], "retry"),
        ("retry negative", [("topic", "urn:e"), ("retry", "-1")], "retry"),
        ("retry empty", [("topic", "urn:e"), ("retry", "")], "retry"),
        ("type 'mercure'", [("topic", "urn:e"), ("type", "mercure")], "type"),
        ("type with a newline", [("topic", "urn:e"), ("type", "a\nb")], "type"),
        ("topic '*'", [("topic", "*")], "topic"),
        ("topic /.well-known/mercure", [("topic", "/.well-known/mercure")], "topic"),
        ("topic in the hub namespace, absolute",
         [("topic", "https://example.com/.well-known/mercure/subscriptions/x")], "topic"),
        ("topic in the hub namespace, percent-encoded",
         [("topic", "/.well-known/%6Dercure/x")], "topic"),
        ("topic in the hub namespace, dot-segments",
         [("topic", "/.well-known/mercure/../mercure/x")], "topic"),
        ("alternate topic in the hub namespace",
         [("topic", "urn:e"), ("topic", "/.well-known/mercure/x")], "topic"),
        ("topic with a control character", [("topic", "urn:e\x01")], "topic"),
        ("topic with a C1 control character", [("topic", "urn:e\u0085")], "topic"),
        ("topic with a format character (U+200B)", [("topic", "urn:e\u200b")], "topic"),
        ("empty topic", [("topic", "")], "topic"),
        ("no topic", [("data", "x")], "topic"),
    ]
    for what, fields, word in cases:
        resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(token), ht.form(fields))
        t.eq(resp.status, 400, f"publish, {what}: 400")
        t.check(error_body_ok(resp, [word]), f"publish, {what}: body names '{word}'", resp.body)
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(token),
                      b"topic=urn%3Ae%FF&data=x")
    t.eq(resp.status, 400, "publish, topic with invalid UTF-8: 400")
    t.check(error_body_ok(resp, ["topic"]), "invalid UTF-8 topic: body names 'topic'", resp.body)
    for what, topic in [("/.well-known/mercurex", "/.well-known/mercurex"),
                        ("https://example.com/.well-known/other", "https://example.com/.well-known/other"),
                        ("a topic with spaces and unicode", "urn:e:caf\u00e9 au lait")]:
        resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(token),
                          ht.form([("topic", topic), ("data", "x"), ("retry", "0")]))
        t.eq(resp.status, 200, f"publish, {what}: accepted (200)")
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, publish_headers(token),
                      ht.form([("topic", "urn:e"), ("future_field", "x")]))
    t.eq(resp.status, 200, "publish with an unknown field: ignored (200)")


def test_match_params(hub, token):
    auth = {"Authorization": f"Bearer {token}"}
    for what, query in [
        ("match with invalid UTF-8", "match=urn%3Ax%FF"),
        ("match with a control character", "match=urn%3Ax%01"),
        ("match with a C1 control character", "match=urn%3Ax%C2%85"),
        ("match with a format character (U+200B)", "match=urn%3Ax%E2%80%8B"),
        ("unknown matcher type match_foo", "match=urn%3Ax&match_foo=x"),
        ("Match (reserved prefix, other case)", "match=urn%3Ax&Match=x"),
        ("matches (reserved prefix)", "match=urn%3Ax&matches=x"),
    ]:
        s = ht.SSEStream(hub.port, f"{ht.HUB_PATH}?{query}", headers=auth)
        t.eq(s.status, 400, f"subscribe, {what}: 400")
        t.check(error_body_ok(s.response, ["match"]), f"subscribe, {what}: body names the parameter",
                s.response.body)
        s.close()
    s = ht.SSEStream(hub.port, f"{ht.HUB_PATH}?match_exact=urn%3Ax", headers=auth)
    t.eq(s.status, 200, "subscribe with match_exact (the explicit default): 200")
    s.close()
    # The spec gives a bare `match` the empty value, and the empty string is a valid exact
    # matcher (it selects the empty topic): not a 400.
    for query in ("match=", "match", "match_urlpattern="):
        s = ht.SSEStream(hub.port, f"{ht.HUB_PATH}?{query}", headers=auth)
        t.eq(s.status, 200, f"subscribe with an empty matcher ({query}): 200")
        s.close()
    s = ht.SSEStream(hub.port, f"{ht.HUB_PATH}?match=urn%3Ax&other=1", headers=auth)
    t.eq(s.status, 200, "subscribe with an unrelated query parameter: 200")
    s.close()


def test_connections(hub, token):
    conn = ht.HTTPConn(hub.port)
    statuses = [conn.request("GET", "/healthz").status, conn.request("GET", "/readyz").status]
    resp = conn.request("POST", ht.HUB_PATH, publish_headers(token),
                        ht.form([("topic", "urn:err:ka"), ("id", "ka-1")]))
    statuses.append(resp.status)
    t.eq(statuses, [200, 200, 200], "keep-alive: three requests on one connection")
    t.eq(resp.text, "ka-1", "keep-alive: third response is the publish's id")
    conn.close()

    conn = ht.HTTPConn(hub.port)
    body = ht.form([("topic", "urn:err:pipe"), ("id", "pipe-2")])
    batch = (conn.build("GET", "/healthz")
             + conn.build("POST", ht.HUB_PATH, publish_headers(token), body)
             + conn.build("GET", "/no/such/path"))
    conn.send(batch)
    got = []
    try:
        for _ in range(3):
            r = conn.read_response()
            got.append((r.status, r.text if r.status == 200 and r.text != "" else None))
    except (ht.ConnectionClosed, OSError) as e:
        got.append(repr(e))
    t.check(len(got) == 3 and [g[0] for g in got] == [200, 200, 404] and got[1][1] == "pipe-2",
            "pipelining: three requests in one write, three responses in order", got)
    conn.close()

    # A subscription pipelined behind an ordinary request becomes a live stream.
    conn = ht.HTTPConn(hub.port)
    conn.send(conn.build("GET", "/healthz")
              + conn.build("GET", ht.sub_query(["urn:err:pipesub"]),
                           {"Authorization": f"Bearer {token}"}))
    first = conn.read_response()
    head = conn.read_head()
    t.check(first.status == 200 and head.status == 200
            and (head.header("content-type") or "").startswith("text/event-stream"),
            "pipelining: GET /healthz then a subscription: 200, then an event stream",
            (first, head))
    ht.publish(hub.port, token, "urn:err:pipesub", data="p", id="pipesub-1")
    dec, parser = ht.ChunkedDecoder(), ht.SSEParser()
    events = []
    deadline = time.monotonic() + 10 * ht.SLOW
    while not any(e.id == "pipesub-1" for e in events) and time.monotonic() < deadline:
        if conn.buf:
            events += parser.feed(dec.feed(bytes(conn.buf)))
            conn.buf.clear()
        elif not conn._fill(deadline):
            break
    t.check(any(e.id == "pipesub-1" for e in events), "the pipelined subscription receives updates",
            events)
    conn.close()

    # A chunked publish within the limit, and one with Expect: 100-continue (as curl sends).
    body = ht.form([("topic", "urn:err:chunked"), ("id", "chunked-1"), ("data", "z" * 1500)])
    conn = ht.HTTPConn(hub.port)
    conn.send(conn.build("POST", ht.HUB_PATH, publish_headers(token, {"Transfer-Encoding": "chunked"}))
              + b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500])
                         for i in range(0, len(body), 500)) + b"0\r\n\r\n")
    resp = conn.read_response()
    t.eq((resp.status, resp.text), (200, "chunked-1"), "chunked publish body within --max-body: 200")
    conn.close()
    conn = ht.HTTPConn(hub.port)
    body = ht.form([("topic", "urn:err:expect"), ("id", "expect-1"), ("data", "e" * 1500)])
    conn.send(conn.build("POST", ht.HUB_PATH, publish_headers(
        token, {"Expect": "100-continue", "Content-Length": str(len(body))})))
    interim = None
    try:
        interim = conn.read_head(timeout=1.0 * ht.SLOW)
    except OSError:
        pass  # no interim response: the client sends the body after its own wait
    conn.send(body)
    resp = conn.read_response() if interim is None or interim.status == 100 else interim
    t.check(interim is None or interim.status == 100,
            "Expect: 100-continue: the interim response, if any, is 100 Continue", interim)
    t.eq((resp.status, resp.text), (200, "expect-1"), "publish with Expect: 100-continue: 200")
    conn.close()

    conn = ht.HTTPConn(hub.port)
    resp = conn.request("GET", "/healthz", {"Connection": "close"})
    t.eq(resp.status, 200, "Connection: close request answered")
    t.check(conn.wait_closed(5), "Connection: close: the hub closes after the response")
    conn.close()

    conn = ht.HTTPConn(hub.port)
    conn.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    resp = conn.read_response()
    t.eq(resp.status, 200, "HTTP/1.0 request answered")
    t.check(conn.wait_closed(5), "HTTP/1.0 without keep-alive: closed after the response")
    conn.close()

    conn = ht.HTTPConn(hub.port)
    t.eq(conn.request("GET", "/healthz").status, 200, "idle test: first request")
    t0 = time.monotonic()
    closed = conn.wait_closed(IDLE_TIMEOUT + 5 * ht.SLOW)
    took = time.monotonic() - t0
    t.check(closed and IDLE_TIMEOUT * 0.75 <= took <= IDLE_TIMEOUT + 3 * ht.SLOW,
            f"idle keep-alive connection closed after {took:.2f}s (--idle-timeout {IDLE_TIMEOUT})")
    conn.close()

    s = ht.SSEStream(hub.port, ht.sub_query(["urn:err:live"]),
                     headers={"Authorization": f"Bearer {token}"})
    s.wait_open(5)
    time.sleep(IDLE_TIMEOUT * 2 + 0.5)
    ht.publish(hub.port, token, "urn:err:live", data="still here", id="live-1")
    t.check(s.wait_id("live-1", 5) is not None and not s.eof,
            f"a quiet event stream outlives --idle-timeout ({IDLE_TIMEOUT * 2 + 0.5:.1f}s silent)")
    s.close()


def main():
    hub = ht.start_hub(header_timeout=HEADER_TIMEOUT, idle_timeout=IDLE_TIMEOUT,
                       max_body=MAX_BODY)
    token = ht.mint_token()
    t.section("malformed requests", test_malformed, hub)
    t.section("405 and 404", test_method_path, hub)
    t.section("408 header timeout", test_header_timeout, hub)
    t.section("413, 414, 431 limits", test_limits, hub, token)
    t.section("415 content type", test_content_type, hub, token)
    t.section("401 and 403", test_auth, hub)
    t.section("400 publish fields", test_publish_fields, hub, token)
    t.section("400 subscription parameters", test_match_params, hub, token)
    t.section("keep-alive, pipelining, close, idle timeout", test_connections, hub, token)
    t.stop_hub(hub)
    t.finish()


if __name__ == "__main__":
    main()
