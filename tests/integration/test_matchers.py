"""test_matchers — the urlpattern matcher type and legacy URI templates, end to end against the
real binary: subscribers with match_urlpattern (absolute and relative to the hub's URL) and with
legacy topic= templates receive exactly the updates whose topics match; every publish is made
with a spec token (typ at+jwt) whose publish grant is itself a URL pattern and is checked to be
accepted (200), while a topic outside that grant is refused (403); a subscriber's token granting
a URL pattern reads the private updates it covers and no other; invalid patterns and templates
are refused with 400 naming the problem; an empty match= is a valid matcher; on one worker,
subscribers of one pattern share its compiled matcher, which outlives the first of them to leave
and is lent to the next to come, and fixed-text patterns written differently meet one topic.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_matchers")

DETAIL_TYPE = "https://mercure.rocks/authorization-detail"
END = "urn:matchers:end"


def spec_token(actions, matchers):
    """A spec token: typ at+jwt, authorization_details with the given (match, match_type)."""
    now = int(time.time())
    topics = [{"match": m, "match_type": mt} for m, mt in matchers]
    claims = {"sub": "test", "iat": now, "exp": now + 3600,
              "authorization_details": [{"type": DETAIL_TYPE, "actions": list(actions),
                                         "topics": topics}]}
    return ht.jwt_hs256(claims, header={"alg": "HS256", "typ": "at+jwt"})


def subscribe(hub, params, token=None):
    fields = list(params) + [("match", END)]
    s = ht.SSEStream(hub.port, ht.HUB_PATH + "?" + ht.form(fields).decode(), token=token)
    return s


def test_delivery(hub):
    base = f"http://127.0.0.1:{hub.port}"
    pub_tok = spec_token(["publish"], [("https://example.com/*", "urlpattern"),
                                       ("/books/*", "urlpattern"),
                                       (END, "exact")])
    pub = ht.Publisher(hub.port, pub_tok)
    subs = {
        "pattern": subscribe(hub, [("match_urlpattern", "https://example.com/books/:id")]),
        "regexp": subscribe(hub, [("match_urlpattern", "https://example.com/books/:id(\\d+)")]),
        "relative": subscribe(hub, [("match_urlpattern", "/books/:id")]),
        "template": subscribe(hub, [("topic", "https://example.com/books/{id}")]),
        "exact": subscribe(hub, [("match", "https://example.com/books/1")]),
        "empty": subscribe(hub, [("match", "")]),
        "star": subscribe(hub, [("match_urlpattern", "*")]),
    }
    t.eq({k: s.status for k, s in subs.items()}, {k: 200 for k in subs},
         "match_urlpattern, relative pattern, legacy topic= template, exact and empty match=: 200")
    for s in subs.values():
        s.wait_open(10)
    updates = [
        ("https://example.com/books/1", "b1"),
        ("https://example.com/books/abc", "babc"),
        ("https://example.com/books/1/reviews", "b1r"),
        ("https://EXAMPLE.com:443/books/2", "b2host"),
        ("https://example.com/authors/1", "a1"),
        ("/books/7", "rel7"),
        (f"{base}/books/8", "abs8"),
    ]
    statuses = [pub.publish(topic, data="x", id=id).status for topic, id in updates]
    t.eq(statuses, [200] * len(updates), "every publish granted by the token's URL pattern: 200")
    denied = pub.publish("https://example.org/books/1", data="x", id="denied")
    t.eq(denied.status, 403, "a topic outside the publish grant's URL patterns: 403")
    t.eq(pub.publish(END, data="x", id="end").status, 200, "end marker published")
    for s in subs.values():
        s.wait_id("end", 10)
    got = {k: [i for i in s.ids() if i != "end"] for k, s in subs.items()}
    t.eq(got["pattern"], ["b1", "babc", "b2host"],
         "match_urlpattern https://example.com/books/:id: one segment, host case and default "
         "port normalized; not /books/1/reviews, /authors/1 or relative topics")
    t.eq(got["regexp"], ["b1", "b2host"], "a regexp group (\\d+) constrains the segment")
    t.eq(got["relative"], ["rel7", "abs8"],
         "a relative pattern /books/:id resolves against the hub's URL, as do relative topics")
    t.eq(got["template"], ["b1", "babc"],
         "legacy topic=https://example.com/books/{id}: the expansions of the template (raw text, "
         "so the differently written host does not match)")
    t.eq(got["exact"], ["b1"], "an exact matcher is byte for byte")
    t.eq(got["empty"], [], "an empty match= selects the empty topic only")
    t.eq(got["star"], [i for _, i in updates],
         "match_urlpattern=* is the wildcard: every topic, relative ones included")
    for s in subs.values():
        s.close()
    pub.close()


def test_private(hub):
    pub = ht.Publisher(hub.port, spec_token(["publish"], [("*", "exact")]))
    reader = subscribe(hub, [("match", "*")],
                       token=spec_token(["subscribe"],
                                        [("https://example.com/books/:id", "urlpattern")]))
    other = subscribe(hub, [("match", "*")],
                      token=spec_token(["subscribe"],
                                       [("https://example.com/authors/:id", "urlpattern")]))
    t.eq([reader.status, other.status], [200, 200], "subscribers with URL-pattern grants: 200")
    reader.wait_open(10)
    other.wait_open(10)
    for topic, id in [("https://example.com/books/3", "priv-book"),
                      ("https://example.com/secret/1", "priv-secret")]:
        t.eq(pub.publish(topic, data="s", id=id, private=True).status, 200,
             f"private update {id} accepted")
    pub.must(END, data="x", id="end")
    reader.wait_id("end", 10)
    other.wait_id("end", 10)
    t.eq(reader.ids(), ["priv-book", "end"],
         "a token granting the URL pattern books/:id reads that private update, not another")
    t.eq(other.ids(), ["end"], "a token granting another pattern reads neither")
    reader.close()
    other.close()
    pub.close()


def test_refusals(hub):
    for what, query, words in [
        ("capturing group in a regexp", "match_urlpattern=" + ht.form([("", "https://e.com/((a)b)")]).decode()[1:],
         ["match_urlpattern", "capturing groups"]),
        ("backreference", "match_urlpattern=" + ht.form([("", "https://e.com/((?:a)\\1)")]).decode()[1:],
         ["match_urlpattern", "backreference"]),
        ("too complex", "match_urlpattern=" + ht.form([("", "https://e.com/((?:(?:a{255}){255}){255})")]).decode()[1:],
         ["match_urlpattern", "too complex"]),
        ("unclosed template", "topic=" + ht.form([("", "https://e.com/{id")]).decode()[1:],
         ["topic", "not closed"]),
        ("unknown matcher type", "match_foo=x", ["match_foo", "match_urlpattern"]),
    ]:
        s = ht.SSEStream(hub.port, f"{ht.HUB_PATH}?{query}")
        body = s.response.body.decode(errors="replace")
        t.eq(s.status, 400, f"subscribe with {what}: 400")
        t.check(all(w in body for w in words), f"subscribe with {what}: the body names it", body)
        s.close()
    # Each pattern alone is within the per-pattern bound (about 4000 states); 17 of them exceed
    # what one subscription may hold in all, 16 do not.
    heavy = "https://e.com/((?:a{200}){10})"
    for count, want in [(16, 200), (17, 400)]:
        s = ht.SSEStream(hub.port, ht.sub_query([heavy] * count, param="match_urlpattern"))
        t.eq(s.status, want, f"{count} patterns of about 4000 automaton states each: {want}")
        if want == 400:
            t.check("too complex together" in s.response.body.decode(errors="replace"),
                    "the refusal says the patterns are too complex together", s.response.body)
        s.close()
    # The number of matchers of one subscription is bounded: 256 pass, 257 are refused.
    for count, want in [(256, 200), (257, 400)]:
        s = ht.SSEStream(hub.port, ht.sub_query([f"m{i}" for i in range(count)]))
        t.eq(s.status, want, f"{count} matchers in one subscription: {want}")
        if want == 400:
            t.check("too many topic matchers" in s.response.body.decode(errors="replace"),
                    "the refusal says there are too many matchers", s.response.body)
        s.close()
    bad = spec_token(["publish"], [("https://e.com/((a)b)", "urlpattern")])
    resp = ht.publish(hub.port, bad, "https://e.com/x", data="x")
    t.eq(resp.status, 401, "a token whose grant is an invalid URL pattern: 401")


def test_shared(hub):
    """One worker: every subscription lands in one broker, so these share groups and matchers."""
    pub = ht.Publisher(hub.port, spec_token(["publish"], [("*", "exact")]))
    books = "https://example.com/books/:id"
    a = subscribe(hub, [("match_urlpattern", books)])
    b = subscribe(hub, [("match_urlpattern", books)])
    c = subscribe(hub, [("match_urlpattern", books),
                        ("match_urlpattern", "https://example.com/authors/1")])
    d = subscribe(hub, [("match_urlpattern", "https://EXAMPLE.com:443/authors/%31")])
    t.eq([x.status for x in (a, b, c, d)], [200] * 4, "four subscribers of shared patterns: 200")
    for x in (a, b, c, d):
        x.wait_open(10)
    pub.must("https://example.com/books/1", data="x", id="b1")
    a.wait_id("b1", 10)
    a.close()  # the first holder of the pattern's matcher leaves
    time.sleep(0.2)
    e = subscribe(hub, [("match_urlpattern", books)])  # lent the matcher b and c use
    t.eq(e.status, 200, "a later subscriber of the same pattern: 200")
    e.wait_open(10)
    pub.must("https://example.com/books/2", data="x", id="b2")
    pub.must("https://example.com/authors/1", data="x", id="a1")
    pub.must("https://example.com/authors/2", data="x", id="a2")
    pub.must(END, data="x", id="end")
    for x in (b, c, d, e):
        x.wait_id("end", 10)
    t.eq(b.ids(), ["b1", "b2", "end"], "a subscriber sharing the pattern gets its updates once")
    t.eq(c.ids(), ["b1", "b2", "a1", "end"],
         "a pattern and a fixed-text pattern: each matching update once")
    t.eq(d.ids(), ["a1", "end"],
         "a fixed-text pattern written with host case, default port and %31 meets its topic")
    t.eq(e.ids(), ["b2", "end"],
         "the later subscriber, lent the matcher after the first holder left, gets what follows")
    for x in (b, c, d, e):
        x.close()
    pub.close()


def main():
    hub = ht.start_hub(anonymous=True)
    t.section("URL patterns, relative patterns and templates deliver exactly", test_delivery, hub)
    t.section("private updates through URL-pattern grants", test_private, hub)
    t.section("invalid patterns refused with a reason", test_refusals, hub)
    t.stop_hub(hub)
    hub = ht.start_hub(anonymous=True, extra=("--workers", "1"))
    t.section("subscribers of one pattern share its matcher on a worker", test_shared, hub)
    t.stop_hub(hub)
    t.finish()


if __name__ == "__main__":
    main()
