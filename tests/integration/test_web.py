"""test_web — the hub's web face, as browsers and Mercure clients meet it: the token cookie
(--cookie-name; the Authorization header wins over it), cookie-authorised publishing only from
--publish-origin origins, CORS (--cors-origin: a listed origin echoed with credentials, the
exposed headers, preflights; "*" without credentials; a refused origin gets no CORS headers and
a 403 preflight), the protected resource metadata document (RFC 9728) and resource_metadata in
every Bearer challenge, and the reconciliation details (an empty last_event_id=, the
pre-standard lastEventID, the Last-Event-ID header's precedence). QUERY: llhttp 8.1 does not
parse the method, so it is refused as a malformed request, which is checked too.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_web")
FORM = "application/x-www-form-urlencoded"
META = "/.well-known/oauth-protected-resource/.well-known/mercure"
APP = "http://127.0.0.2:3000"          # a page's origin that the hub trusts in these tests
OTHER = "https://other.example"
EVIL = "https://evil.example"


def token(publish=("*",), subscribe=("*",)):
    return ht.jwt_hs256({"exp": int(time.time()) + 600,
                         "mercure": {"publish": list(publish), "subscribe": list(subscribe)}})


def cookie_publish(hub, name, tok, topic, extra, data="x", id=None):
    fields = [("topic", topic), ("data", data)] + ([("id", id)] if id else [])
    headers = dict({"Content-Type": FORM, "Cookie": f"theme=dark; {name}={tok}"}, **extra)
    return ht.request(hub.port, "POST", ht.HUB_PATH, headers, ht.form(fields))


def sub_status(hub, headers, topic="urn:web:a"):
    s = ht.SSEStream(hub.port, ht.sub_query([topic]), headers=headers)
    status = s.status
    s.close()
    return status


def test_cookie_names():
    hub = ht.start_hub()
    sub = token(publish=())
    for name in ("__Secure-mercure_access_token", "mercureAuthorization"):
        t.eq(sub_status(hub, {"Cookie": f"a=b; {name}={sub}"}), 200,
             f"default cookie names: a subscriber's token in {name}: 200")
    t.stop_hub(hub)

    hub = ht.start_hub(extra=("--cookie-name", "hubTok"))
    t.eq(sub_status(hub, {"Cookie": f"hubTok={sub}"}), 200,
         "--cookie-name hubTok: a subscriber's token in hubTok: 200")
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:a"]),
                     headers={"Cookie": f"mercureAuthorization={sub}; "
                                        f"__Secure-mercure_access_token={sub}"})
    t.eq(s.status, 401, "--cookie-name hubTok: the default names are no longer read: 401")
    t.check("hubTok" in s.response.text, "and the 401 names the cookie it reads", s.response.body)
    s.close()
    # The Authorization header wins over the cookie, both ways.
    t.eq(sub_status(hub, {"Cookie": f"hubTok={sub}", "Authorization": "Bearer not.a.token"}), 401,
         "a bad token in Authorization and a good one in the cookie: the header's is used: 401")
    t.eq(sub_status(hub, {"Cookie": "hubTok=not.a.token", "Authorization": f"Bearer {sub}"}), 200,
         "a good token in Authorization and a bad one in the cookie: 200")
    meta = json.loads(ht.request(hub.port, "GET", META).body)
    t.eq(meta.get("mercure_cookie"), "hubTok", "the metadata's mercure_cookie names hubTok")
    t.stop_hub(hub)

    r = ht.run_cli("--listen", "127.0.0.1:0", "--jwt-key", ht.KEY, "--cookie-name", "bad name")
    t.eq(r.returncode, 2, "--cookie-name 'bad name' (not an HTTP token): exit 2")
    t.check("cookie name" in r.stderr, "and the log says the cookie name is wrong", r.stderr)


def test_publish_origins():
    pub = token(subscribe=())
    hub = ht.start_hub(extra=("--cookie-name", "hubTok", "--publish-origin", APP,
                              "--publish-origin", OTHER + ":8443"))
    own = f"http://127.0.0.1:{hub.port}"
    watcher = ht.SSEStream(hub.port, ht.sub_query(["urn:web:pub"]), token=token(publish=()))
    t.eq(watcher.status, 200, "a subscriber watches urn:web:pub")
    resp = cookie_publish(hub, "hubTok", pub, "urn:web:pub", {"Origin": APP}, id="from-app")
    t.eq(resp.status, 200, "cookie publish from a --publish-origin origin: 200")
    t.eq(resp.text, "from-app", "and the answer is the update's id")
    t.check(watcher.wait_id("from-app"), "and the update is delivered", watcher.ids())
    resp = cookie_publish(hub, "hubTok", pub, "urn:web:pub",
                          {"Referer": "https://OTHER.example:8443/page?x=1"}, id="from-other")
    t.eq(resp.status, 200, "cookie publish with only a Referer on a listed origin: 200")
    t.check(watcher.wait_id("from-other"), "and that update is delivered", watcher.ids())
    for what, extra in [("another origin", {"Origin": EVIL}),
                        ("the hub's own origin, which an explicit list leaves out", {"Origin": own}),
                        ("a listed host on another port", {"Origin": "http://127.0.0.2:3001"}),
                        ("neither Origin nor Referer", {})]:
        resp = cookie_publish(hub, "hubTok", pub, "urn:web:pub", extra, id="refused")
        t.eq(resp.status, 403, f"cookie publish from {what}: 403")
        t.check("--publish-origin" in resp.text and "cookie" in resp.text,
                f"{what}: the body names --publish-origin and the cookie", resp.text)
    resp = ht.request(hub.port, "POST", ht.HUB_PATH,
                      {"Content-Type": FORM, "Origin": EVIL, "Authorization": f"Bearer {pub}"},
                      ht.form([("topic", "urn:web:pub"), ("id", "by-header")]))
    t.eq(resp.status, 200, "a publish by Authorization header needs no trusted origin: 200")
    t.check(watcher.wait_id("by-header"), "and is delivered", watcher.ids())
    t.check("refused" not in watcher.ids(), "no refused publish was delivered", watcher.ids())
    watcher.close()
    t.stop_hub(hub)

    # Default: the origin of --public-url, whatever Host the request names.
    hub = ht.start_hub(extra=("--public-url", "https://hub.example/.well-known/mercure"))
    resp = cookie_publish(hub, "mercureAuthorization", pub, "urn:web:pub",
                          {"Origin": "https://hub.example"})
    t.eq(resp.status, 200, "no --publish-origin: a cookie publish from the public URL's origin: 200")
    resp = cookie_publish(hub, "mercureAuthorization", pub, "urn:web:pub", {"Origin": APP})
    t.eq(resp.status, 403, "no --publish-origin: from another origin: 403")
    t.stop_hub(hub)

    for flag, value, why in [("--publish-origin", "*", "'*'"),
                             ("--publish-origin", "https://app.example/page", "not an origin"),
                             ("--cors-origin", "app.example", "not an origin")]:
        r = ht.run_cli("--listen", "127.0.0.1:0", "--jwt-key", ht.KEY, flag, value)
        t.eq(r.returncode, 2, f"{flag} {value}: exit 2")
        t.check(flag in r.stderr and why in r.stderr, f"{flag} {value}: the message says why",
                r.stderr)
    r = ht.run_cli("--listen", "127.0.0.1:0", "--jwt-key", ht.KEY, "--cors-origin", "*",
                   "--cors-origin", APP)
    t.eq(r.returncode, 2, "--cors-origin '*' with a named origin: exit 2")
    t.check("--cors-origin" in r.stderr and "credentials" in r.stderr,
            "and the message says '*' never gets credentials", r.stderr)


def cors_headers(resp):
    return {k.lower(): v for k, v in resp.headers if k.lower().startswith("access-control-")
            or k.lower() == "vary"}


def test_cors():
    hub = ht.start_hub(extra=("--cors-origin", APP, "--cors-origin", OTHER))
    sub = token(publish=())
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:cors"], last_event_id="earliest"),
                     headers={"Origin": APP, "Cookie": f"mercureAuthorization={sub}"})
    h = cors_headers(s.response)
    t.eq(s.status, 200, "a subscribe from a listed origin: 200")
    t.eq(h.get("access-control-allow-origin"), APP, "its stream head echoes the origin")
    t.eq(h.get("access-control-allow-credentials"), "true", "with credentials (the cookie)")
    t.eq(h.get("vary"), "Origin", "and Vary: Origin")
    exposed = [x.strip() for x in (h.get("access-control-expose-headers") or "").split(",")]
    t.check("Mercure-Last-Event-ID" in exposed, "Mercure-Last-Event-ID is exposed to the page",
            exposed)
    t.check("Link" in exposed, "Link is exposed too (the Subscription API's cursor rides on it)",
            exposed)
    s.close()
    resp = ht.request(hub.port, "POST", ht.HUB_PATH,
                      {"Content-Type": FORM, "Origin": OTHER, "Authorization": f"Bearer {token()}"},
                      ht.form([("topic", "urn:web:cors"), ("data", "x")]))
    t.eq(resp.status, 200, "a publish from a listed origin: 200")
    t.eq(cors_headers(resp).get("access-control-allow-origin"), OTHER,
         "its answer echoes that origin")
    resp = ht.request(hub.port, "POST", ht.HUB_PATH, {"Content-Type": FORM, "Origin": APP},
                      ht.form([("topic", "urn:web:cors")]))
    t.eq(resp.status, 401, "a publish without a token from a listed origin: 401")
    t.eq(cors_headers(resp).get("access-control-allow-origin"), APP,
         "the refusal carries the CORS headers too, so the page can read why")
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:cors"]),
                     headers={"Origin": EVIL, "Cookie": f"mercureAuthorization={sub}"})
    h = cors_headers(s.response)
    t.eq(s.status, 200, "a subscribe from an unlisted origin is served (the browser blocks it)")
    t.check("access-control-allow-origin" not in h and "access-control-allow-credentials" not in h,
            "but gets no Access-Control-Allow-* headers", h)
    t.eq(h.get("vary"), "Origin", "only Vary: Origin")
    s.close()

    for method in ("POST", "GET"):
        resp = ht.request(hub.port, "OPTIONS", ht.HUB_PATH, {
            "Origin": APP, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"})
        h = cors_headers(resp)
        t.eq(resp.status, 204, f"preflight for {method} from a listed origin: 204")
        t.eq(h.get("access-control-allow-origin"), APP, f"{method} preflight: the origin echoed")
        t.eq(h.get("access-control-allow-credentials"), "true", f"{method} preflight: credentials")
        t.check(method in (h.get("access-control-allow-methods") or ""),
                f"{method} preflight: {method} among the allowed methods", h)
        allowed = (h.get("access-control-allow-headers") or "").lower()
        t.check(all(x in allowed for x in ("authorization", "content-type", "last-event-id")),
                f"{method} preflight: Authorization, Content-Type, Last-Event-ID allowed", h)
        t.check((h.get("access-control-max-age") or "").isdigit(), f"{method} preflight: Max-Age",
                h)
    resp = ht.request(hub.port, "OPTIONS", ht.HUB_PATH,
                      {"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    t.eq(resp.status, 403, "preflight from an unlisted origin: 403")
    t.check("--cors-origin" in resp.text and EVIL in resp.text,
            "and the body names the origin and --cors-origin", resp.text)
    t.check("access-control-allow-origin" not in cors_headers(resp), "with no Allow-Origin",
            resp.headers)
    resp = ht.request(hub.port, "OPTIONS", ht.HUB_PATH)
    t.eq(resp.status, 204, "a plain OPTIONS (no preflight): 204")
    t.check("POST" in (resp.header("allow") or ""), "with Allow", resp.headers)
    t.stop_hub(hub)

    hub = ht.start_hub(anonymous=True, extra=("--cors-origin", "*"))
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:cors"]), headers={"Origin": EVIL})
    h = cors_headers(s.response)
    t.eq(h.get("access-control-allow-origin"), "*", "--cors-origin '*': Allow-Origin: *")
    t.check("access-control-allow-credentials" not in h, "'*': never Allow-Credentials", h)
    t.check(EVIL not in str(h), "'*': the origin is never reflected", h)
    s.close()
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:cors"]),
                     headers={"Origin": EVIL, "Cookie": "mercureAuthorization=" + token(publish=())})
    t.eq(s.status, 200, "'*': a subscribe with the cookie (credentials) is served")
    t.check("access-control-allow-origin" not in cors_headers(s.response),
            "'*': but a credentialed request never gets Allow-Origin: * (the browser blocks it)",
            s.response.headers)
    s.close()
    resp = ht.request(hub.port, "OPTIONS", ht.HUB_PATH,
                      {"Origin": EVIL, "Access-Control-Request-Method": "GET"})
    t.eq(resp.status, 204, "'*': a preflight from any origin: 204")
    t.eq(cors_headers(resp).get("access-control-allow-origin"), "*", "'*': the preflight gives *")
    t.check("access-control-allow-credentials" not in cors_headers(resp),
            "'*': the preflight gives no credentials", resp.headers)
    t.stop_hub(hub)

    hub = ht.start_hub(anonymous=True)
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:cors"]), headers={"Origin": APP})
    t.check(not cors_headers(s.response), "no --cors-origin: no CORS headers at all",
            s.response.headers)
    s.close()
    resp = ht.request(hub.port, "OPTIONS", ht.HUB_PATH,
                      {"Origin": APP, "Access-Control-Request-Method": "GET"})
    t.eq(resp.status, 403, "no --cors-origin: a preflight: 403")
    t.check("none is set" in resp.text, "saying no --cors-origin is set", resp.text)
    t.stop_hub(hub)


def test_metadata():
    hub = ht.start_hub()
    resp = ht.request(hub.port, "GET", META)
    t.eq(resp.status, 200, f"GET {META}: 200")
    t.check((resp.header("content-type") or "").startswith("application/json"),
            "as application/json", resp.headers)
    meta = json.loads(resp.body)
    url = f"http://127.0.0.1:{hub.port}/.well-known/mercure"
    t.eq(meta.get("resource"), url, "resource is the hub's URL")
    t.eq(meta.get("bearer_methods_supported"), ["header"], "bearer_methods_supported: header")
    t.eq(meta.get("authorization_details_types_supported"),
         ["https://mercure.rocks/authorization-detail"], "the authorization detail type")
    t.eq(meta.get("mercure_cookie"), "__Secure-mercure_access_token",
         "mercure_cookie: the spec's name by default")
    t.check("mercure_subscriptions" not in meta, "no mercure_subscriptions when they are off",
            meta)
    t.eq(ht.request(hub.port, "HEAD", META).status, 200, "HEAD of the document: 200")
    metadata_url = f"http://127.0.0.1:{hub.port}{META}"

    s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:m"]))
    challenge = s.response.header("www-authenticate") or ""
    t.eq(s.status, 401, "a subscriber without a token: 401")
    t.check(f'resource_metadata="{metadata_url}"' in challenge and "error=" not in challenge,
            "its challenge points to the metadata and has no error code", challenge)
    s.close()
    for what, tok, status, error in [("an invalid token", "abc.def.ghi", 401, "invalid_token"),
                                     ("a token that cannot publish there",
                                      token(publish=("urn:web:other",)), 403,
                                      "insufficient_scope"),
                                     ("no token", None, 401, None)]:
        headers = {"Content-Type": FORM}
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        resp = ht.request(hub.port, "POST", ht.HUB_PATH, headers,
                          ht.form([("topic", "urn:web:m")]))
        challenge = resp.header("www-authenticate") or ""
        t.eq(resp.status, status, f"publish with {what}: {status}")
        t.check(challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url}"' in challenge,
                f"{what}: the challenge carries resource_metadata", challenge)
        if error:
            t.check(f'error="{error}"' in challenge, f'{what}: error="{error}"', challenge)
    t.stop_hub(hub)

    hub = ht.start_hub(extra=("--public-url", "https://hub.example/hubs/one"))
    resp = ht.request(hub.port, "GET", "/.well-known/oauth-protected-resource/hubs/one")
    t.eq(resp.status, 200, "--public-url .../hubs/one: the document at "
         "/.well-known/oauth-protected-resource/hubs/one")
    t.eq(json.loads(resp.body).get("resource"), "https://hub.example/hubs/one",
         "and resource is that URL")
    t.eq(ht.request(hub.port, "GET", META).status, 404, "and not at the default path")
    t.stop_hub(hub)


def test_reconciliation():
    hub = ht.start_hub(anonymous=True, history_size=100)
    tok = token(subscribe=())
    for i in (1, 2, 3):
        ht.publish(hub.port, tok, "urn:web:r", data=str(i), id=f"r{i}")

    def sub(headers=None, **params):
        s = ht.SSEStream(hub.port, ht.sub_query(["urn:web:r"], **params), headers=headers)
        return s

    s = sub(last_event_id="")
    t.eq(s.status, 200, "last_event_id= (empty): 200")
    t.eq(s.response.header("mercure-last-event-id"), "earliest",
         "an empty last_event_id still gets Mercure-Last-Event-ID: earliest")
    t.check(s.wait_count(3, timeout=5) and s.ids()[:3] == ["r1", "r2", "r3"],
            "and everything retained is replayed (it names no event)", s.ids())
    s.close()
    s = sub()
    t.check(s.response.header("mercure-last-event-id") is None,
            "no cursor at all: no Mercure-Last-Event-ID", s.response.headers)
    s.close()
    s = sub(lastEventID="r1")
    t.eq(s.response.header("mercure-last-event-id"), "r1",
         "the pre-standard lastEventID=r1: Mercure-Last-Event-ID: r1")
    t.eq(s.response.header("last-event-id"), "r1",
         "and the pre-standard Last-Event-ID response header for its clients")
    t.check(s.wait_count(2, timeout=5) and s.ids()[:2] == ["r2", "r3"], "r2 and r3 replayed",
            s.ids())
    s.close()
    s = sub(last_event_id="r2", lastEventID="r1")
    t.eq(s.response.header("mercure-last-event-id"), "r2", "last_event_id wins over lastEventID")
    t.check(s.response.header("last-event-id") is None,
            "and the pre-standard response header is not sent", s.response.headers)
    s.close()
    s = sub(headers={"Last-Event-ID": "r2"}, last_event_id="r1")
    t.eq(s.response.header("mercure-last-event-id"), "r2",
         "the Last-Event-ID header wins over last_event_id")
    t.check(s.wait_count(1, timeout=5) and s.ids()[0] == "r3", "only r3 replayed", s.ids())
    s.close()
    s = sub(headers={"Last-Event-ID": ""}, last_event_id="r1")
    t.eq(s.response.header("mercure-last-event-id"), "r1",
         "an empty Last-Event-ID header does not hide last_event_id")
    s.close()

    # QUERY: llhttp 8.1 (Debian) does not know the method; the refusal is a clear 400.
    resp = ht.request(hub.port, "QUERY", ht.HUB_PATH, {"Content-Type": FORM},
                      ht.form([("match", "urn:web:r")]))
    t.eq(resp.status, 400, "QUERY (not parsed by this llhttp): 400")
    t.check("method" in resp.text.lower(), "saying the method is the problem", resp.text)
    t.stop_hub(hub)


t.section("cookie names", test_cookie_names)
t.section("publish origins", test_publish_origins)
t.section("CORS", test_cors)
t.section("protected resource metadata", test_metadata)
t.section("reconciliation", test_reconciliation)
t.finish()
