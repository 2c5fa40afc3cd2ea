"""test_tokens — the daemon's token settings, as a deployment configures them: separate publisher
and subscriber keys (--publisher-jwt-key, --subscriber-jwt-key), the audience and issuer checks
(--jwt-audience, --jwt-issuer), and tokens that carry only RFC 9396 authorization_details (the
form an OAuth server issues) or only the pre-standard "mercure" claim.

Tokens are signed here (hubtest.jwt_hs256), not by `sluice token`, so that each claim is exactly
the one under test.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubtest as ht  # noqa: E402

t = ht.Checker("test_tokens")
DETAIL = "https://mercure.rocks/authorization-detail"
PUB_KEY = "publisher-key-for-test-tokens-0123456789abcdef"
SUB_KEY = "subscriber-key-for-test-tokens-0123456789abcdef"


def claims(publish=(), subscribe=(), **extra):
    c = {"exp": int(time.time()) + 600, "mercure": {"publish": list(publish),
                                                    "subscribe": list(subscribe)}}
    c.update(extra)
    return c


def publish_status(hub, token, topic="urn:tok:a"):
    return ht.publish(hub.port, token, topic, data="x").status


def subscribe_status(hub, token, topic="urn:tok:a"):
    s = ht.SSEStream(hub.port, ht.sub_query([topic]), token=token)
    status = s.status
    s.close()
    return status


def test_split_keys():
    hub = ht.start_hub(key=None, extra=("--publisher-jwt-key", PUB_KEY,
                                        "--subscriber-jwt-key", SUB_KEY))
    both = claims(publish=["*"], subscribe=["*"])
    by_pub = ht.jwt_hs256(both, key=PUB_KEY)
    by_sub = ht.jwt_hs256(both, key=SUB_KEY)
    t.eq(publish_status(hub, by_pub), 200, "publish with a token signed by the publisher key: 200")
    t.eq(publish_status(hub, by_sub), 401, "publish with a token signed by the subscriber key: 401")
    t.eq(subscribe_status(hub, by_sub), 200,
         "subscribe with a token signed by the subscriber key: 200")
    t.eq(subscribe_status(hub, by_pub), 401,
         "subscribe with a token signed by the publisher key: 401")
    t.eq(subscribe_status(hub, None), 401, "no --anonymous: a subscriber without a token: 401")
    t.stop_hub(hub)

    hub = ht.start_hub(key=None, extra=("--subscriber-jwt-key", SUB_KEY))
    resp = ht.publish(hub.port, ht.jwt_hs256(both, key=SUB_KEY), "urn:tok:a", data="x")
    t.eq(resp.status, 401, "a hub with no publisher key refuses every publish: 401")
    t.check("publisher" in resp.text and "--publisher-jwt-key" in resp.text,
            "and says which key is missing", resp.text)
    t.stop_hub(hub)


def test_audience_issuer():
    hub = ht.start_hub(extra=("--jwt-audience", "https://hub.example/", "--jwt-issuer",
                              "https://auth.example/"))
    grant = {"publish": ["*"], "subscribe": ["*"]}
    for what, extra, want in [
        ("aud and iss as configured", {"aud": "https://hub.example/", "iss": "https://auth.example/"}, 200),
        ("aud as an array that holds ours", {"aud": ["https://other/", "https://hub.example/"],
                                             "iss": "https://auth.example/"}, 200),
        ("another audience", {"aud": "https://other/", "iss": "https://auth.example/"}, 401),
        ("no aud", {"iss": "https://auth.example/"}, 401),
        ("another issuer", {"aud": "https://hub.example/", "iss": "https://evil.example/"}, 401),
        ("no iss", {"aud": "https://hub.example/"}, 401),
    ]:
        token = ht.jwt_hs256(claims(grant["publish"], grant["subscribe"], **extra))
        t.eq(publish_status(hub, token), want, f"publish, {what}: {want}")
        t.eq(subscribe_status(hub, token), want, f"subscribe, {what}: {want}")
    t.stop_hub(hub)

    hub = ht.start_hub()
    token = ht.jwt_hs256(claims(["*"], ["*"], aud="https://anything/", iss="https://anyone/"))
    t.eq(publish_status(hub, token), 200, "without --jwt-audience/--jwt-issuer, aud and iss are "
         "not checked: 200")
    t.stop_hub(hub)


def test_claim_forms():
    hub = ht.start_hub()
    now = int(time.time())

    def details(*ds):
        return ht.jwt_hs256({"exp": now + 600, "authorization_details": list(ds)})

    def grant(action, topic):
        return {"type": DETAIL, "actions": [action], "topics": [{"match": topic}]}

    pub_a = grant("publish", "urn:tok:a")
    token = details(pub_a)
    t.eq(publish_status(hub, token), 200, "authorization_details only, publish on urn:tok:a: 200")
    t.eq(publish_status(hub, token, "urn:tok:b"), 403,
         "authorization_details only, publish on urn:tok:b: 403")

    # A subscribe grant decides who receives private updates (anyone may subscribe to public ones).
    may = ht.SSEStream(hub.port, ht.sub_query(["urn:tok:a"]),
                       token=details(grant("subscribe", "urn:tok:a")))
    may_not = ht.SSEStream(hub.port, ht.sub_query(["urn:tok:a"]),
                           token=details(grant("subscribe", "urn:tok:b")))
    t.eq((may.status, may_not.status), (200, 200), "both subscribers are in (200)")
    may.wait_open()
    may_not.wait_open()
    publisher = ht.jwt_hs256({"exp": now + 600, "mercure": {"publish": ["*"]}})
    ht.publish(hub.port, publisher, "urn:tok:a", data="secret", id="tok-private", private=True)
    ht.publish(hub.port, publisher, "urn:tok:a", data="news", id="tok-public")
    may.wait_id("tok-public")
    may_not.wait_id("tok-public")
    t.eq(may.ids(), ["tok-private", "tok-public"],
         "a subscribe detail for urn:tok:a receives the private update on it, then the public one")
    t.eq(may_not.ids(), ["tok-public"], "a subscribe detail for urn:tok:b receives only the public one")
    may.close()
    may_not.close()
    other = {"type": "https://example.com/payments", "actions": ["publish"], "topics": ["*"]}
    t.eq(publish_status(hub, details(other)), 403,
         "a detail of another type grants nothing: 403")
    t.eq(publish_status(hub, details(other, pub_a)), 200,
         "and does not spoil the Mercure detail beside it: 200")
    t.eq(publish_status(hub, details({"type": DETAIL, "actions": ["publish"]})), 401,
         "a Mercure detail without topics makes the token invalid: 401")

    legacy = ht.jwt_hs256({"exp": now + 600, "mercure": {"publish": ["urn:tok:a"]}})
    t.eq(publish_status(hub, legacy), 200, "the \"mercure\" claim only, publish: 200")
    t.eq(publish_status(hub, legacy, "urn:tok:b"), 403, "and on another topic: 403")
    t.stop_hub(hub)


def test_spec_token():
    # The token the Mercure spec tells publishers to mint, typ at+jwt (RFC 9068): libjwt 1.10
    # refused any typ but "JWT", so every such publish was answered 401.
    hub = ht.start_hub(anonymous=True)
    for typ in ("at+jwt", "application/at+jwt"):
        tok = ht.jwt_hs256(claims(publish=["urn:tok:spec"]), header={"alg": "HS256", "typ": typ})
        s = ht.SSEStream(hub.port, ht.sub_query(["urn:tok:spec"]))
        s.wait_open()
        r = ht.publish(hub.port, tok, "urn:tok:spec", data=typ, id=f"spec-{typ}")
        t.eq(r.status, 200, f"a publish with a typ {typ} token is accepted")
        t.check(s.wait_id(f"spec-{typ}") is not None, "and delivered")
        s.close()
    t.stop_hub(hub)


def main():
    t.section("separate publisher and subscriber keys", test_split_keys)
    t.section("--jwt-audience and --jwt-issuer", test_audience_issuer)
    t.section("authorization_details and the mercure claim", test_claim_forms)
    t.section("the spec's token: typ at+jwt", test_spec_token)
    t.finish()


if __name__ == "__main__":
    main()
