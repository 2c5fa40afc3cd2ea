"""test_subscriptions — active subscriptions (--subscriptions): the subscription events and the
Subscription API, seen by real subscribers of the real daemon.

An observer authorised for every topic (its token grants subscribe on "*") watches while two
subscribers join and leave: it receives one private event of SSE type "mercure" per subscription
and end, whose JSON document names the subscription (id = its topic, the hub path followed by
/subscriptions/{match_type}/{match}/{subscriber}, each percent-encoded once; match_type, match, the
hub's urn:uuid subscriber id, active, and the payload the subscriber's token attaches), and the
API's list agrees at each step. The API's Link cursor lets a late client resume the events with
last_event_id and get exactly the changes after the list. A second observer whose token grants
nothing on those topics gets none of the events although it receives a public update published
after them (so its silence is not a refusal). A slow consumer cut at --max-queue, a token that
expires and the drain each produce active:false. The API refuses without a token (401), with a
token that lacks the grant (403), and answers 404 for a subscription that does not exist. With
--subscriptions off there is no event and the API is 404. Publishers cannot forge events: type
mercure and topics in the hub's namespace (also under a --public-url path) are refused with 400.
"""

import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_subscriptions")

DETAIL = "https://mercure.rocks/authorization-detail"
API = ht.HUB_PATH + "/subscriptions"


def token(subscribe, payloads=None, exp=None, publish=()):
    """A subscriber token (typ at+jwt): one authorization detail per (selectors, payload)."""
    details = []
    for i, sel in enumerate(subscribe):
        d = {"type": DETAIL, "actions": ["subscribe"], "topics": [{"match": m} for m in sel]}
        if payloads and payloads[i] is not None:
            d["payload"] = payloads[i]
        details.append(d)
    if publish:
        details.append({"type": DETAIL, "actions": ["publish"],
                        "topics": [{"match": m} for m in publish]})
    claims = {"authorization_details": details, "exp": exp or int(time.time()) + 3600}
    return ht.jwt_hs256(claims, header={"alg": "HS256", "typ": "at+jwt"})


ALL = token([["*"]])
NONE = token([["urn:app:public-only"]])


def enc(s):
    return urllib.parse.quote(s, safe="-._~")


def topic_of(match, subscriber, match_type="exact", path=ht.HUB_PATH):
    return f"{path}/subscriptions/{enc(match_type)}/{enc(match)}/{enc(subscriber)}"


def docs(stream, since=0):
    """The subscription documents among stream.events[since:] (those of type mercure)."""
    return [json.loads(e.data) for e in stream.events[since:] if e.type == "mercure"]


def wait_doc(stream, pred, timeout=10):
    return stream.wait(lambda s: next((d for d in docs(s) if pred(d)), None), timeout)


def api(port, path=API, tok=ALL):
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return ht.request(port, "GET", path, headers=headers)


def listed(port):
    """{(match, subscriber)} of the API's collection, with the response."""
    r = api(port)
    body = json.loads(r.body) if r.status == 200 else {}
    return {(d["match"], d["subscriber"]) for d in body.get("subscriptions", [])}, r, body


def cursor(resp):
    link = resp.header("link") or ""
    key = 'last-event-id="'
    i = link.find(key)
    return link[i + len(key):link.index('"', i + len(key))] if i >= 0 else None


def subscribe(port, matches, tok, **extra):
    s = ht.SSEStream(port, ht.sub_query(matches, **extra), token=tok)
    s.wait_open()
    return s


def check_doc(d, match, payload=None, active=True, what=""):
    sub = d.get("subscriber", "")
    ok = (d.get("id") == topic_of(match, sub) and d.get("type") == "subscription" and
          d.get("match_type") == "exact" and d.get("match") == match and
          sub.startswith("urn:uuid:") and d.get("active") is active and
          d.get("payload") == payload and (payload is not None or "payload" not in d))
    t.check(ok, f"{what}: id is its topic, type subscription, match_type exact, match, "
            f"urn:uuid subscriber, active {active}, payload {payload}", d)


def test_events_and_api(hub):
    port = hub.port
    # The observers: one may read the events, one may not.
    obs = subscribe(port, ["*"], ALL)
    blind = subscribe(port, ["*"], NONE)
    own = wait_doc(obs, lambda d: d["match"] == "*")
    t.check(own is not None, "the observer sees its own subscription's creation event")
    base, r, body = listed(port)
    t.eq(r.header("content-type"), "application/json", "the API answers application/json")
    t.eq((body.get("id"), body.get("type")), (API, "subscriptions"),
         "the collection's id is its URL and its type subscriptions")
    t.eq(len(base), 2, "the API lists the two observers' subscriptions")

    # Two subscribers join: S1 with two matchers and a payload for one of them.
    s1 = subscribe(port, ["urn:app:1", "urn:app:1b"],
                   token([["urn:app:1"], ["*"]], payloads=[{"who": "one"}, {"default": True}]))
    s2 = subscribe(port, ["urn:app:2"], token([["urn:app:2"]]))
    got = [wait_doc(obs, lambda d, m=m: d["match"] == m and d["active"])
           for m in ("urn:app:1", "urn:app:1b", "urn:app:2")]
    t.check(all(got), "the observer gets one creation event per subscription (three)", docs(obs))
    if not all(got):
        return
    mercure_events = [e for e in obs.events if e.type == "mercure"]
    t.check(all(e.id and e.id.startswith("urn:uuid:") for e in mercure_events),
            "subscription events carry an id (a urn:uuid), like any update")
    check_doc(got[0], "urn:app:1", {"who": "one"}, what="S1's first subscription")
    check_doc(got[1], "urn:app:1b", {"default": True}, what="S1's second (the * grant's payload)")
    check_doc(got[2], "urn:app:2", None, what="S2's subscription")
    t.eq(got[0]["subscriber"], got[1]["subscriber"], "one connection, one subscriber id")
    t.check(got[0]["subscriber"] != got[2]["subscriber"], "two connections, two subscriber ids")
    sub1, sub2 = got[0]["subscriber"], got[2]["subscriber"]

    now, r, _ = listed(port)
    t.eq(now - base, {("urn:app:1", sub1), ("urn:app:1b", sub1), ("urn:app:2", sub2)},
         "the API's list agrees with the events after the joins")
    t.eq(ht.metric(hub.metrics(), "sluice_subscriptions_active"), float(len(now)),
         "sluice_subscriptions_active counts them")
    link = r.header("link") or ""
    t.check(link.startswith(f"<{hub.url}{ht.HUB_PATH}>; rel=\"mercure\"; last-event-id=\"") and
            'type="mercure"' in link and 'content-type="application/json"' in link,
            "the Link header names the hub, rel mercure, the cursor, type and content-type", link)
    t.eq(cursor(r), mercure_events[-1].id,
         "the cursor is the id of the last event the hub dispatched")

    one = api(port, topic_of("urn:app:1", sub1))
    t.eq((one.status, json.loads(one.body) if one.status == 200 else None),
         (200, got[0]), "GET of one subscription answers its event document")
    coll = api(port, f"{API}/exact/{enc('urn:app:2')}")
    cbody = json.loads(coll.body) if coll.status == 200 else {}
    t.eq((coll.status, cbody.get("id"), cbody.get("subscriptions")),
         (200, f"{API}/exact/{enc('urn:app:2')}", [got[2]]),
         "GET of one matcher's collection lists its subscriptions")

    # The cursor: the list, then whatever changes after it, from the events.
    _, r, _ = listed(port)
    mark = cursor(r)
    s2.close()
    gone2 = wait_doc(obs, lambda d: d["subscriber"] == sub2 and not d["active"])
    t.check(gone2 is not None, "S2 leaves: the observer gets its termination event")
    if gone2:
        check_doc(gone2, "urn:app:2", None, active=False, what="S2's termination")
    late = ht.SSEStream(port, ht.sub_query(["*"], last_event_id=mark), token=ALL)
    late.wait(lambda s: any(e.type == "mercure" and json.loads(e.data)["subscriber"] == sub2
                            for e in s.events), 10)
    late_docs = [d for d in docs(late) if d["match"] != "*"]
    t.eq([(d["subscriber"], d["active"]) for d in late_docs[:1]], [(sub2, False)],
         "a client resuming at the API's cursor gets the change after the list, and nothing "
         "before it")
    t.eq(late.response.header("mercure-last-event-id"), mark,
         "the hub found the cursor in history (no gap)")
    now, _, _ = listed(port)
    t.check(("urn:app:2", sub2) not in now and ("urn:app:1", sub1) in now,
            "the API's list agrees with the events after S2 left")
    t.eq(api(port, topic_of("urn:app:2", sub2)).status, 404,
         "a subscription that ended is 404")

    s1.close()
    ends = [wait_doc(obs, lambda d, m=m: d["match"] == m and not d["active"])
            for m in ("urn:app:1", "urn:app:1b")]
    t.check(all(ends), "S1 leaves: one termination event per subscription")
    now, _, _ = listed(port)
    added = now - base
    t.check(len(added) == 1 and next(iter(added))[0] == "*",
            "the API's list agrees with the events after S1 left (only the late client's "
            "subscription is new)", added)

    # The blind observer: no event, yet a public update published now reaches it.
    pub = ht.Publisher(port)
    uid = pub.must(["urn:app:public-only"], data="hello")
    pub.close()
    t.check(blind.wait_id(uid), "the observer without the grant receives a public update")
    t.eq([e for e in blind.events if e.type == "mercure"], [],
         "the observer without the grant received no subscription event")
    t.check(len(docs(obs)) >= 6, "while the authorised observer received them all")

    head = ht.request(port, "HEAD", API, headers={"Authorization": f"Bearer {ALL}"})
    t.check(head.status == 200 and head.body == b"" and cursor(head) is not None,
            "HEAD of the collection: 200, the Link cursor, no body",
            (head.status, head.headers, head.body[:80]))

    # The API's refusals.
    r = api(port, tok=None)
    t.eq(r.status, 401, "the API without a token: 401")
    metadata = f"/.well-known/oauth-protected-resource{ht.HUB_PATH}"
    t.check(f'resource_metadata="' in (r.header("www-authenticate") or "") and
            metadata in (r.header("www-authenticate") or ""),
            "... whose challenge names the protected resource metadata", r.header("www-authenticate"))
    r = api(port, tok=NONE)
    t.eq(r.status, 403, "the API with a token lacking subscribe on its path: 403")
    t.check('error="insufficient_scope"' in (r.header("www-authenticate") or "") and
            "resource_metadata=" in (r.header("www-authenticate") or ""),
            "... with an insufficient_scope challenge naming the metadata", r.header("www-authenticate"))
    narrow = token([[API]])
    t.eq(api(port, tok=narrow).status, 200, "a grant on exactly the collection's path opens it")
    t.eq(api(port, f"{API}/exact/{enc('urn:app:1')}", tok=narrow).status, 403,
         "... and not another resource")
    t.eq(api(port, topic_of("urn:app:9", "urn:uuid:00000000-0000-4000-8000-000000000000")).status,
         404, "a subscription that never existed: 404")
    t.eq(api(port, f"{API}/exact").status, 404, "a path naming no resource: 404")
    t.eq(api(port, f"{API}/exact/%ZZ").status, 400, "a malformed percent-encoding: 400")
    for s in (obs, blind, late):
        s.close()


def test_slow_consumer_and_expiry(hub):
    port = hub.port
    obs = subscribe(port, ["*"], ALL)
    slow = ht.SSEStream(port, ht.sub_query(["urn:slow"]), token=ALL, rcvbuf=4096)
    joined = wait_doc(obs, lambda d: d["match"] == "urn:slow" and d["active"])
    t.check(joined is not None, "the slow subscriber's creation event")
    soon = subscribe(port, ["urn:expiring"], token([["*"]], exp=int(time.time()) + 5))
    exp_join = wait_doc(obs, lambda d: d["match"] == "urn:expiring" and d["active"])
    t.check(exp_join is not None, "the expiring subscriber's creation event")
    if not joined:
        return
    # The slow one reads nothing; the observer reads every update before the next is sent.
    pub = ht.Publisher(port)
    data = "x" * 32768
    cut = None
    sent = 0
    for sent in range(1, 601):
        uid = pub.must(["urn:slow"], data=data)
        if not obs.wait_id(uid):
            t.check(False, "the observer reads every update", f"update {sent} missing, eof {obs.eof}")
            break
        cut = next((d for d in docs(obs) if d["subscriber"] == joined["subscriber"]
                    and not d["active"]), None)
        if cut:
            break
    pub.close()
    t.check(cut is not None, "a slow consumer cut at --max-queue: its termination event",
            f"{sent} updates sent; slow_disconnects "
            f"{ht.metric(hub.metrics(), 'sluice_slow_consumer_disconnects_total')}")
    if exp_join:
        ended = wait_doc(obs, lambda d: d["subscriber"] == exp_join["subscriber"]
                         and not d["active"], 10)
        t.check(ended is not None, "a token that expires: the termination event")
    slow.close()
    soon.close()
    obs.close()


def test_drain(hub):
    port = hub.port
    obs = subscribe(port, ["*"], ALL)
    other = subscribe(port, ["urn:staying"], token([["urn:staying"]]))
    mine = wait_doc(obs, lambda d: d["match"] == "*" and d["active"])
    theirs = wait_doc(obs, lambda d: d["match"] == "urn:staying" and d["active"])
    t.check(mine and theirs, "before the drain: both creation events")
    if not (mine and theirs):
        return
    t.stop_hub(hub, "the hub drains and exits 0")
    obs.wait_eof(30)
    ends = {d["subscriber"] for d in docs(obs) if not d["active"]}
    t.check(theirs["subscriber"] in ends and mine["subscriber"] in ends,
            "the drain announces the end of every subscription, the observer's own included",
            docs(obs))
    close_at = next((i for i, e in enumerate(obs.events) if e.type == "close"), None)
    last_end = max((i for i, e in enumerate(obs.events)
                    if e.type == "mercure" and not json.loads(e.data)["active"]), default=None)
    t.check(close_at is not None and last_end is not None and last_end < close_at,
            "the termination events come before the stream's final close event")
    other.close()
    obs.close()


def test_off():
    hub = ht.start_hub()
    obs = subscribe(hub.port, ["*"], ALL)
    s = subscribe(hub.port, ["urn:app:1"], ALL)
    pub = ht.Publisher(hub.port)
    uid = pub.must(["urn:app:after"], data="after")
    pub.close()
    t.check(obs.wait_id(uid), "--subscriptions off: the observer receives updates")
    t.eq([e for e in obs.events if e.type == "mercure"], [],
         "--subscriptions off: no subscription event")
    t.eq(api(hub.port).status, 404, "--subscriptions off: the API is 404")
    t.eq(ht.metric(hub.metrics(), "sluice_subscriptions_active"), None,
         "--subscriptions off: no sluice_subscriptions_active gauge")
    s.close()
    obs.close()
    t.stop_hub(hub)


def test_forgery():
    hub = ht.start_hub(subscriptions=True, public_url="http://hub.example/hub")
    pub_tok = token([["*"]], publish=["*"])
    for topic in ("/hub/subscriptions/exact/x/y", "http://hub.example/hub/subscriptions/x",
                  "/hub/%73ubscriptions/../subscriptions/x", "/hub"):
        r = ht.request(hub.port, "POST", "/hub", headers={
            "Authorization": f"Bearer {pub_tok}",
            "Content-Type": "application/x-www-form-urlencoded"},
            body=ht.form([("topic", topic), ("data", "forged")]))
        t.eq(r.status, 400, f"a publish to {topic} (under the hub's path /hub) is refused")
    r = ht.request(hub.port, "POST", "/hub", headers={
        "Authorization": f"Bearer {pub_tok}",
        "Content-Type": "application/x-www-form-urlencoded"},
        body=ht.form([("topic", "urn:x"), ("type", "mercure")]))
    t.eq(r.status, 400, "a publish of type mercure is refused")
    r = ht.request(hub.port, "GET", "/hub/subscriptions",
                   headers={"Authorization": f"Bearer {token([['/hub/subscriptions']])}"})
    t.eq(r.status, 200, "the API lives under the --public-url path")
    t.stop_hub(hub)


def main():
    hub = ht.start_hub(subscriptions=True)
    t.section("events and the API", test_events_and_api, hub)
    t.stop_hub(hub)
    hub = ht.start_hub(subscriptions=True, max_queue=65536, write_timeout=5, jwt_leeway=0)
    t.section("a slow consumer and an expiring token", test_slow_consumer_and_expiry, hub)
    t.stop_hub(hub)
    hub = ht.start_hub(subscriptions=True)
    t.section("the drain", test_drain, hub)
    t.stop_hub(hub)
    t.section("--subscriptions off", test_off)
    t.section("forged events are refused", test_forgery)
    t.finish()


main()
