"""test_tokens — the daemon's token settings, as a deployment configures them: separate publisher
and subscriber keys (--publisher-jwt-key, --subscriber-jwt-key), the audience and issuer checks
(--jwt-audience, --jwt-issuer), and tokens that carry only RFC 9396 authorization_details (the
form an OAuth server issues) or only the pre-standard "mercure" claim (those in the legacy profile,
--jwt-legacy); then the spec profile (the default): each rule refused with 401 and a
WWW-Authenticate error_description naming it, an RS256 public key file, and a JWK Set with two
kids (key rotation).

Tokens are signed here (hubtest.jwt_hs256, and RS256/ES256 with python3-cryptography), not by
`sluice token`, so that each claim is exactly the one under test.
"""

import base64
import json
import os
import sys
import tempfile
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

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


# --- the spec profile (no --jwt-legacy) ----------------------------------------------------------

ISSUER = "https://issuer.example/"


def spec_claims(hub, publish=("*",), **extra):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": hub.url_public, "sub": "s", "client_id": "c", "jti": "j",
         "iat": now, "exp": now + 600,
         "authorization_details": [{"type": DETAIL, "actions": ["publish"],
                                    "topics": [{"match": p} for p in publish]}]}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def jws(header, claims_, sign):
    signing = ht.b64url(json.dumps(header).encode()) + "." + ht.b64url(json.dumps(claims_).encode())
    return signing + "." + ht.b64url(sign(signing.encode()))


def rs256(key):
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def es256(key):
    def sign(data):
        r, s_ = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    return sign


def pem_of(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def b64int(n, size=None):
    return ht.b64url(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


def temp_file(data):
    fd, path = tempfile.mkstemp(prefix="sluice-test-key-")
    os.write(fd, data)
    os.close(fd)
    return path


def start_spec_hub(*extra, key=PUB_KEY):
    hub = ht.start_hub(key=key, legacy=False, anonymous=True,
                       extra=("--jwt-issuer", ISSUER) + tuple(extra))
    hub.url_public = f"http://127.0.0.1:{hub.port}/.well-known/mercure"
    return hub


def expect_refused(hub, token, rule, what):
    """A publish with token is answered 401 with the challenge naming rule."""
    r = ht.publish(hub.port, token, "urn:tok:spec", data="x")
    challenge = r.header("www-authenticate") or ""
    t.eq(r.status, 401, f"{what}: 401")
    t.check('error="invalid_token"' in challenge and f'error_description="{rule}"' in challenge,
            f"{what}: WWW-Authenticate names the rule ({rule})", challenge)


def test_spec_profile():
    hub = start_spec_hub()
    hs = {"alg": "HS256", "typ": "at+jwt"}

    def hs256(data):
        import hashlib
        import hmac
        return hmac.new(PUB_KEY.encode(), data, hashlib.sha256).digest()

    s = ht.SSEStream(hub.port, ht.sub_query(["urn:tok:spec"]))
    s.wait_open()
    r = ht.publish(hub.port, jws(hs, spec_claims(hub), hs256), "urn:tok:spec", data="x",
                   id="spec-ok")
    t.eq(r.status, 200, "a spec token (at+jwt, exp, aud = the hub's URL, iss): 200")
    t.check(s.wait_id("spec-ok") is not None, "and the update is delivered")
    s.close()
    minted = ht.run_cli("token", "--key", PUB_KEY, "--publish", "*", "--audience",
                        hub.url_public, "--issuer", ISSUER).stdout.strip()
    t.eq(ht.publish(hub.port, minted, "urn:tok:spec", data="x").status, 200,
         "a token from `sluice token --audience --issuer`: 200")

    now = int(time.time())
    for rule, header, claims_, what in [
        ("typ not allowed", {"alg": "HS256", "typ": "JWT"}, spec_claims(hub), "typ JWT"),
        ("typ not allowed", {"alg": "HS256"}, spec_claims(hub), "no typ"),
        ("missing exp", hs, spec_claims(hub, exp=None), "no exp"),
        ("token expired", hs, spec_claims(hub, exp=now - 120), "expired (beyond the leeway)"),
        ("token not yet valid", hs, spec_claims(hub, nbf=now + 300), "nbf in the future"),
        ("audience mismatch", hs, spec_claims(hub, aud="https://other.example/"), "another aud"),
        ("audience mismatch", hs, spec_claims(hub, aud=None), "no aud"),
        ("missing iss", hs, spec_claims(hub, iss=None), "no iss"),
        ("issuer mismatch", hs, spec_claims(hub, iss="https://evil.example/"), "another iss"),
    ]:
        expect_refused(hub, jws(header, claims_, hs256), rule, what)
    unsigned = ht.b64url(b'{"alg":"none","typ":"at+jwt"}') + "." + \
        ht.b64url(json.dumps(spec_claims(hub)).encode()) + "."
    expect_refused(hub, unsigned, "alg not allowed", "alg none")
    expect_refused(hub, ht.mint_token(key=PUB_KEY), "audience mismatch",
                   "a token minted without --audience")
    t.stop_hub(hub)


def test_stream_ends_at_exp():
    """The leeway forgives clock skew when a token is presented; a stream still ends at its exp
    (the spec's MUST), and a token already past its exp opens no stream."""
    hub = start_spec_hub()  # the default leeway, 30 s
    hs = {"alg": "HS256", "typ": "at+jwt"}

    def hs256(data):
        import hashlib
        import hmac
        return hmac.new(PUB_KEY.encode(), data, hashlib.sha256).digest()

    def sub_token(exp):
        return jws(hs, spec_claims(hub, exp=exp, authorization_details=[
            {"type": DETAIL, "actions": ["subscribe"], "topics": [{"match": "urn:tok:exp"}]}]),
            hs256)

    now = int(time.time())
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:tok:exp"]), token=sub_token(now + 5))
    t.eq(s.status, 200, "a subscriber token expiring in 5 s opens a stream")
    started = time.monotonic()
    closed = s.wait_eof(20 * ht.SLOW)
    t.check(closed and time.monotonic() - started < 20,
            "the stream ends at its exp, not at exp plus the 30 s leeway",
            f"closed {closed} after {time.monotonic() - started:.1f} s")
    s.close()
    late = now - 5  # past exp, within the leeway
    r = ht.publish(hub.port, jws(hs, spec_claims(hub, exp=late), hs256), "urn:tok:exp", data="x")
    t.eq(r.status, 200, "a publish with a token 5 s past its exp (within the leeway): 200")
    s = ht.SSEStream(hub.port, ht.sub_query(["urn:tok:exp"]), token=sub_token(late))
    t.eq(s.status, 401, "a subscription with it: 401, since its stream would end at once")
    challenge = s.response.header("www-authenticate") or ""
    t.check('error_description="token expired"' in challenge, "... naming the rule", challenge)
    s.close()
    t.stop_hub(hub)


def test_rs256_key_file():
    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    path = temp_file(pem_of(key))
    try:
        hub = start_spec_hub("--publisher-jwt-key-file", path, key=None)
        rs = {"alg": "RS256", "typ": "at+jwt"}
        t.eq(ht.publish(hub.port, jws(rs, spec_claims(hub), rs256(key)), "urn:tok:spec",
                        data="x").status, 200, "RS256 with the key of --publisher-jwt-key-file: 200")
        expect_refused(hub, jws(rs, spec_claims(hub), rs256(other)), "bad signature",
                       "RS256 signed by another key")
        # Algorithm confusion: the public key's PEM, which anyone has, as an HMAC secret.
        import hashlib
        import hmac
        pem = pem_of(key)
        forged = jws({"alg": "HS256", "typ": "at+jwt"}, spec_claims(hub),
                     lambda d: hmac.new(pem, d, hashlib.sha256).digest())
        expect_refused(hub, forged, "alg not allowed for the configured keys",
                       "HS256 with the RSA public key's PEM as the secret")
        t.stop_hub(hub)
    finally:
        os.unlink(path)


def test_jwks_rotation():
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = ec.generate_private_key(ec.SECP256R1())
    on, pn = old.public_key().public_numbers(), new.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "2025", "use": "sig", "alg": "RS256", "n": b64int(on.n),
         "e": b64int(on.e)},
        {"kty": "EC", "kid": "2026", "crv": "P-256", "x": b64int(pn.x, 32), "y": b64int(pn.y, 32)},
    ]}
    path = temp_file(json.dumps(jwks).encode())
    try:
        hub = start_spec_hub("--jwks-file", path, key=None)
        for kid, alg, sign, what in [("2025", "RS256", rs256(old), "the old RSA key"),
                                     ("2026", "ES256", es256(new), "the new EC key")]:
            tok = jws({"alg": alg, "typ": "at+jwt", "kid": kid}, spec_claims(hub), sign)
            t.eq(ht.publish(hub.port, tok, "urn:tok:spec", data="x").status, 200,
                 f"JWK Set, kid {kid} ({what}): 200")
        tok = jws({"alg": "ES256", "typ": "at+jwt"}, spec_claims(hub), es256(new))
        t.eq(ht.publish(hub.port, tok, "urn:tok:spec", data="x").status, 200,
             "no kid: tried with every key its alg fits: 200")
        expect_refused(hub, jws({"alg": "ES256", "typ": "at+jwt", "kid": "2024"},
                                spec_claims(hub), es256(new)), "unknown kid", "a kid not in the set")
        expect_refused(hub, jws({"alg": "RS256", "typ": "at+jwt", "kid": "2026"},
                                spec_claims(hub), rs256(old)),
                       "alg not allowed for the configured keys", "RS256 under the EC key's kid")
        t.stop_hub(hub)
    finally:
        os.unlink(path)


def main():
    t.section("separate publisher and subscriber keys", test_split_keys)
    t.section("--jwt-audience and --jwt-issuer", test_audience_issuer)
    t.section("authorization_details and the mercure claim", test_claim_forms)
    t.section("the spec's token: typ at+jwt", test_spec_token)
    t.section("the spec profile: each rule, 401 naming it", test_spec_profile)
    t.section("a stream ends at its token's exp", test_stream_ends_at_exp)
    t.section("an RS256 public key file", test_rs256_key_file)
    t.section("a JWK Set with two kids (rotation)", test_jwks_rotation)
    t.finish()


if __name__ == "__main__":
    main()
