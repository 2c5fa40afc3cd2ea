/* auth.c — JWT access tokens: validating the tokens that publishers and subscribers present
 * (the spec's Token Validation profile, or the pre-standard one), turning their grants into topic
 * selectors, and minting tokens for operators. It does not find the token in a request (header
 * or cookie: policy.c does), hold keys or check signatures (keys.c does), nor decide what a
 * selector means (topic.c classifies and matches each grant).
 *
 * Verification reads the JOSE header itself first, so that the allowlist of algorithms, the typ
 * check and the kid never depend on a library's reading, then has keys.c check the signature over
 * the signing input with the keys the alg and kid select, and then reads the claims from the
 * exact payload bytes that were signed.
 */
#include "auth/auth.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include <jansson.h>

#include "auth/keys.h"
#include "common/b64url.h"
#include "common/uuid.h"

/* The longest token accepted, in bytes. It is also the implementation-defined bound the spec
 * asks for on the number of authorization details, topics and pattern lengths: all of them live
 * inside the token. Browsers cap a cookie near 4 KiB; headers may carry more. */
#define MAX_TOKEN_LEN 16384

/* The longest decoded JOSE header accepted, in bytes; alg, typ and a kid are well under 200. */
#define MAX_HEADER_LEN 1024
/* The longest kid accepted, in bytes. */
#define MAX_KID_LEN 256

#define MERCURE_DETAIL_TYPE "https://mercure.rocks/authorization-detail"
#define MINTED_SUBJECT "sluice-token"

struct sl_auth_s {
  sl_keyset_t *keys[2]; /* indexed by sl_role_t; empty when that role cannot authenticate */
  char *audience;       /* NULL = aud not checked */
  char *issuer;         /* NULL = iss not compared */
  int legacy;
  int64_t leeway;       /* seconds */
  const char *topic_base; /* the hub's URL, for relative URL patterns in grants; borrowed */
};

static int copy_string(char **out, const char *s) {
  *out = NULL;
  if (!s)
    return 0;
  *out = strdup(s);
  return *out ? 0 : -ENOMEM;
}

/* One role's keys: its value, its file and its JWK Set; an error names which of them failed. */
static int load_keys(sl_keyset_t *ks, const sl_auth_config_t *cfg, int role, char *err,
                     size_t errlen) {
  static const char *const what[2][3] = {
    {"publisher key", "publisher key file", "publisher JWK Set"},
    {"subscriber key", "subscriber key file", "subscriber JWK Set"}};
  char detail[384] = "";
  int rc = 0, which = 0;
  /* An empty value is no key at all: an empty HMAC secret would let anyone sign. */
  if (cfg->key[role] && cfg->key[role][0])
    rc = sl__keyset_add_value(ks, cfg->key[role], strlen(cfg->key[role]), cfg->allow_weak, detail,
                              sizeof detail);
  if (!rc && cfg->key_file[role] && cfg->key_file[role][0]) {
    which = 1;
    rc = sl__keyset_add_file(ks, cfg->key_file[role], cfg->allow_weak, detail, sizeof detail);
  }
  if (!rc && cfg->jwks_file[role] && cfg->jwks_file[role][0]) {
    which = 2;
    rc = sl__keyset_add_jwks_file(ks, cfg->jwks_file[role], cfg->allow_weak, detail,
                                  sizeof detail);
  }
  if (rc == -EINVAL && err && errlen)
    snprintf(err, errlen, "%s: %s", what[role][which], detail);
  return rc;
}

int sl__auth_new(sl_auth_t **auth, const sl_auth_config_t *cfg, char *err, size_t errlen) {
  assert(auth && cfg);
  *auth = NULL;
  if (err && errlen)
    err[0] = '\0';
  if (cfg->leeway < 0 || cfg->leeway > SL_AUTH_MAX_LEEWAY) {
    if (err && errlen)
      snprintf(err, errlen, "the leeway must be 0 to %d seconds", SL_AUTH_MAX_LEEWAY);
    return -EINVAL;
  }
  sl_auth_t *a = calloc(1, sizeof(*a));
  if (!a)
    return -ENOMEM;
  a->legacy = cfg->legacy;
  a->leeway = cfg->leeway;
  int rc = -ENOMEM;
  if (copy_string(&a->audience, cfg->audience) < 0 || copy_string(&a->issuer, cfg->issuer) < 0)
    goto fail;
  for (int r = 0; r < 2; r++) {
    if ((rc = sl__keyset_new(&a->keys[r])) < 0 || (rc = load_keys(a->keys[r], cfg, r, err, errlen)))
      goto fail;
  }
  *auth = a;
  return 0;

fail:
  sl__auth_free(a);
  return rc;
}

void sl__auth_free(sl_auth_t *auth) {
  if (!auth)
    return;
  for (int r = 0; r < 2; r++)
    sl__keyset_free(auth->keys[r]);
  free(auth->audience);
  free(auth->issuer);
  free(auth);
}

int sl__auth_has_key(const sl_auth_t *auth, sl_role_t role) {
  return sl__keyset_count(auth->keys[role]) > 0;
}

/* Parses a base64url JSON object strictly, rejecting duplicate member names: with duplicates,
 * two readers of the same token could disagree about its claims. */
static json_t *decode_object(unsigned char *buf, const char *in, size_t len) {
  if (sl__b64url_decode(buf, in, len) < 0)
    return NULL;
  json_t *obj = json_loadb((const char *)buf, sl__b64url_decoded_len(len), JSON_REJECT_DUPLICATES,
                           NULL);
  if (obj && !json_is_object(obj)) {
    json_decref(obj);
    return NULL;
  }
  return obj;
}

/* typ is compared case-insensitively with any "application/" prefix removed (RFC 7515 section
 * 4.1.9). at+jwt is the JWT access token type the spec requires (RFC 9068); JWT is what
 * pre-standard Mercure issuers put there, accepted only in the legacy profile, where typ may also
 * be absent. */
static int typ_allowed(const json_t *typ, int legacy) {
  static const char prefix[] = "application/";
  if (!typ)
    return legacy;
  const char *t = json_string_value(typ);
  if (!t)
    return 0;
  if (!strncasecmp(t, prefix, sizeof(prefix) - 1))
    t += sizeof(prefix) - 1;
  return !strcasecmp(t, "at+jwt") || (legacy && !strcasecmp(t, "jwt"));
}

/* The header checks that come before any signature check: the algorithm must be one of ours
 * whatever the token says, and nothing in it may ask for processing this file does not do. The
 * kid, when present, is copied into kid (MAX_KID_LEN + 1 bytes); kid[0] is 0 when absent. */
static int check_header(const sl_auth_t *auth, const char *b64, size_t len, sl_jws_alg_t *alg,
                        char *kid, const char **why) {
  unsigned char buf[MAX_HEADER_LEN];
  kid[0] = '\0';
  if (sl__b64url_decoded_len(len) > sizeof(buf)) {
    *why = "header too long";
    return -EACCES;
  }
  json_t *header = decode_object(buf, b64, len);
  if (!header) {
    *why = "malformed header";
    return -EACCES;
  }
  int err = -EACCES;
  json_t *k = json_object_get(header, "kid");
  *alg = sl__jws_alg(json_string_value(json_object_get(header, "alg")));
  if (*alg == SL_JWS_INVALID)
    *why = "alg not allowed";
  else if (!typ_allowed(json_object_get(header, "typ"), auth->legacy))
    *why = "typ not allowed";
  else if (json_object_get(header, "crit"))
    *why = "crit header not supported";   /* RFC 7515 4.1.11: we understand no extension */
  else if (k && (!json_is_string(k) || json_string_length(k) > MAX_KID_LEN))
    *why = "malformed kid";
  else
    err = 0;
  if (!err && k)
    memcpy(kid, json_string_value(k), json_string_length(k) + 1);
  json_decref(header);
  return err;
}

/* A NumericDate (RFC 7519): seconds since the epoch, possibly fractional. */
static int numeric_date(const json_t *v, double *out) {
  if (json_is_integer(v))
    *out = (double)json_integer_value(v);
  else if (json_is_real(v))
    *out = json_real_value(v);
  else
    return -EINVAL;
  return 0;
}

/* exp (required in the spec profile), nbf and iat, each with the leeway for clock skew. *exp_out
 * is when the hub stops accepting the token (exp plus the leeway), 0 when it has no exp. */
static int check_times(const sl_auth_t *auth, const json_t *payload, int64_t now,
                       int64_t *exp_out, int64_t *expires_out, const char **why) {
  double exp, nbf, iat, skew = (double)auth->leeway;
  json_t *v = json_object_get(payload, "exp");
  *exp_out = 0;
  *expires_out = 0;
  if (!v && !auth->legacy) {
    *why = "missing exp";   /* RFC 9068 section 2.2, and the spec's Token Validation */
    return -EACCES;
  }
  if (v) {
    if (numeric_date(v, &exp) < 0) {
      *why = "malformed exp";
      return -EACCES;
    }
    if ((double)now >= exp + skew) {
      *why = "token expired";
      return -EACCES;
    }
    /* now < exp + skew, so that is positive; a far-future exp is clamped, not overflowed. */
    *exp_out = exp + skew >= 9.2e18 ? INT64_MAX : (int64_t)(exp + skew);
    *expires_out = exp >= 9.2e18 ? INT64_MAX : exp < 1 ? 1 : (int64_t)exp;
  }
  v = json_object_get(payload, "nbf");
  if (v) {
    if (numeric_date(v, &nbf) < 0) {
      *why = "malformed nbf";
      return -EACCES;
    }
    if ((double)now + skew < nbf) {
      *why = "token not yet valid";
      return -EACCES;
    }
  }
  v = auth->legacy ? NULL : json_object_get(payload, "iat");
  if (v) {
    if (numeric_date(v, &iat) < 0) {
      *why = "malformed iat";
      return -EACCES;
    }
    /* RFC 7519 4.1.6 only informs; a token issued in the future means a wrong clock or a
     * forged iat. Checked in the spec profile only: pre-standard hubs never looked at it. */
    if ((double)now + skew < iat) {
      *why = "token issued in the future";
      return -EACCES;
    }
  }
  return 0;
}

static int check_audience_issuer(const sl_auth_t *auth, const json_t *payload,
                                 const char **why) {
  if (auth->audience) {
    json_t *aud = json_object_get(payload, "aud");
    int found = 0;
    if (json_is_string(aud)) {
      found = !strcmp(json_string_value(aud), auth->audience);
    } else if (json_is_array(aud)) {
      size_t i;
      json_t *a;
      json_array_foreach(aud, i, a) {
        if (!json_is_string(a)) {
          *why = "malformed aud";
          return -EACCES;
        }
        found |= !strcmp(json_string_value(a), auth->audience);
      }
    }
    if (!found) {
      *why = "audience mismatch";
      return -EACCES;
    }
  }
  /* The spec profile requires iss in every token (RFC 9068 section 4); when the hub is told
   * its trusted issuer, iss must be exactly it. */
  json_t *iss = json_object_get(payload, "iss");
  if (!auth->issuer && auth->legacy)
    return 0;
  if (!iss) {
    *why = "missing iss";
    return -EACCES;
  }
  if (!json_is_string(iss)) {
    *why = "malformed iss";
    return -EACCES;
  }
  if (auth->issuer && strcmp(json_string_value(iss), auth->issuer)) {
    *why = "issuer mismatch";
    return -EACCES;
  }
  return 0;
}

/* Grants are read in two passes over the same claims: the first validates everything and
 * counts selectors and string bytes per role, the second copies them into one block per role
 * (the selector array followed by its strings), so a verified token costs two allocations. */
struct grants {
  int fill;                       /* 0: validate and count; 1: copy (and compile patterns) */
  const char *base;               /* the hub's URL, for relative URL patterns */
  size_t count[2];                /* indexed by sl_role_t */
  size_t bytes[2];
  sl_selector_t *sel[2];
  char *next[2];                  /* where the next string goes, while filling */
  size_t used[2];
  size_t payload_count;           /* payloads of subscribe grants, the same two passes */
  size_t payload_bytes;
  sl_payload_t *payloads;
  char *payload_next;
  size_t payloads_used;
};

/* A subscribe grant's payload, kept as compact JSON text: it is only ever written out again, in
 * the subscription's documents. first/count: the grant's selectors (count 0: every one). */
static void grant_payload(struct grants *g, const json_t *payload, size_t first, size_t count) {
  size_t len = json_dumpb(payload, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!g->fill) {
    g->payload_count++;
    g->payload_bytes += len + 1;
    return;
  }
  sl_payload_t *p = &g->payloads[g->payloads_used++];
  p->first = (uint32_t)first;
  p->count = (uint32_t)count;
  p->json = g->payload_next;
  p->len = json_dumpb(payload, g->payload_next, len, JSON_COMPACT | JSON_ENCODE_ANY);
  g->payload_next[len] = '\0';
  g->payload_next += len + 1;
}

/* One selector of kind for role. Counted in the first pass; copied and compiled in the second,
 * where a pattern that does not compile invalidates the token. 0 or -EACCES / -ENOMEM. */
static int grant(struct grants *g, sl_role_t role, const json_t *match, sl_selector_kind_t kind,
                 const char **why) {
  const char *s = json_string_value(match);
  size_t len = json_string_length(match);
  if (!g->fill) {
    g->count[role]++;
    g->bytes[role] += len + 1;
    return 0;
  }
  char *text = g->next[role];
  memcpy(text, s, len);
  text[len] = '\0';
  int err = sl__selector_compile(&g->sel[role][g->used[role]], kind, text, len, g->base, why);
  if (err)
    return err == -ENOMEM ? -ENOMEM : -EACCES;
  g->used[role]++;
  g->next[role] += len + 1;
  return 0;
}

/* A selector string: non-empty. It holds no NUL, because claims are parsed without
 * JSON_ALLOW_NUL, so it is also a C string. */
static int valid_match(const json_t *v) {
  return json_is_string(v) && json_string_length(v) > 0;
}

/* The pre-standard claim: {"mercure": {"publish": [selectors], "subscribe": [selectors]}}. */
static int walk_legacy(struct grants *g, const json_t *mercure, const char **why) {
  static const struct {
    const char *name;
    sl_role_t role;
  } lists[] = {{"publish", SL_ROLE_PUBLISHER}, {"subscribe", SL_ROLE_SUBSCRIBER}};
  if (!json_is_object(mercure))
    goto malformed;
  for (size_t l = 0; l < 2; l++) {
    json_t *list = json_object_get(mercure, lists[l].name);
    if (!list)
      continue;
    if (!json_is_array(list))
      goto malformed;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
      if (!valid_match(v))
        goto malformed;
      int err = grant(g, lists[l].role, v,
                      sl__selector_legacy_kind(json_string_value(v), json_string_length(v)), why);
      if (err < 0)
        return err;
    }
  }
  json_t *payload = json_object_get(mercure, "payload");
  if (payload)
    grant_payload(g, payload, 0, 0);
  return 0;

malformed:
  *why = "malformed mercure claim";
  return -EACCES;
}

/* One Mercure authorization detail: actions (strings; unknown ones grant nothing) and topics
 * (matcher objects). Every matcher is checked even when no action is recognised, because a
 * malformed detail invalidates the token whatever it would have granted. */
static int walk_detail(struct grants *g, const json_t *detail, const char **why) {
  json_t *actions = json_object_get(detail, "actions");
  json_t *topics = json_object_get(detail, "topics");
  json_t *payload = json_object_get(detail, "payload");
  int roles[2] = {0, 0};
  size_t i;
  json_t *v;
  if (!json_is_array(actions) || !json_array_size(actions)) {
    *why = "authorization detail without actions";
    return -EACCES;
  }
  json_array_foreach(actions, i, v) {
    const char *action = json_string_value(v);
    if (!action) {
      *why = "malformed actions";
      return -EACCES;
    }
    if (!strcmp(action, "publish"))
      roles[SL_ROLE_PUBLISHER] = 1;
    else if (!strcmp(action, "subscribe"))
      roles[SL_ROLE_SUBSCRIBER] = 1;
  }
  if (!json_is_array(topics) || !json_array_size(topics)) {
    *why = "authorization detail without topics";
    return -EACCES;
  }
  if (payload && !json_is_object(payload)) {
    *why = "malformed payload";
    return -EACCES;
  }
  size_t first = g->fill ? g->used[SL_ROLE_SUBSCRIBER] : 0;
  json_array_foreach(topics, i, v) {
    json_t *match = json_object_get(v, "match");
    json_t *type = json_object_get(v, "match_type");
    if (!json_is_object(v) || !valid_match(match) || (type && !json_is_string(type))) {
      *why = "malformed topic matcher";
      return -EACCES;
    }
    /* A matcher type the hub cannot evaluate would silently change what the token allows if
     * skipped, so the spec requires rejecting the token. */
    sl_selector_kind_t kind = SL_SELECTOR_EXACT;
    if (type && !strcmp(json_string_value(type), "urlpattern")) {
      kind = SL_SELECTOR_URLPATTERN;
      /* Checked whatever the actions grant: an invalid pattern is a malformed detail. */
      sl_selector_t probe;
      int err = g->fill ? 0 : sl__selector_compile(&probe, kind, json_string_value(match),
                                                   json_string_length(match), g->base, why);
      if (!g->fill)
        sl__selector_release(&probe);
      if (err)
        return err == -ENOMEM ? -ENOMEM : -EACCES;
    } else if (type && strcmp(json_string_value(type), "exact")) {
      *why = "unsupported match_type (this hub supports exact and urlpattern)";
      return -EACCES;
    }
    for (int r = 0; r < 2; r++) {
      int err = roles[r] ? grant(g, (sl_role_t)r, match, kind, why) : 0;
      if (err < 0)
        return err;
    }
  }
  if (payload && roles[SL_ROLE_SUBSCRIBER])
    grant_payload(g, payload, first, json_array_size(topics));
  return 0;
}

/* authorization_details (RFC 9396): an array of objects each with a string type; only the
 * Mercure type is ours, and any defect in one of ours rejects the whole token. */
static int walk_details(struct grants *g, const json_t *details, const char **why) {
  size_t i;
  json_t *d;
  if (!json_is_array(details)) {
    *why = "authorization_details not an array";
    return -EACCES;
  }
  json_array_foreach(details, i, d) {
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!json_is_object(d) || !type) {
      *why = "malformed authorization detail";
      return -EACCES;
    }
    if (strcmp(type, MERCURE_DETAIL_TYPE))
      continue;
    int err = walk_detail(g, d, why);
    if (err < 0)
      return err;
  }
  return 0;
}

/* The legacy mercure claim grants only in the legacy profile: the spec says a token with no
 * Mercure authorization detail grants nothing. */
static int walk_grants(struct grants *g, const json_t *payload, int legacy, const char **why) {
  json_t *v = legacy ? json_object_get(payload, "mercure") : NULL;
  int err = v ? walk_legacy(g, v, why) : 0;
  if (err < 0)
    return err;
  v = json_object_get(payload, "authorization_details");
  return v ? walk_details(g, v, why) : 0;
}

static int read_grants(const json_t *payload, const char *base, int legacy, sl_claims_t *claims,
                       const char **why) {
  struct grants g = {.base = base};
  int err = walk_grants(&g, payload, legacy, why);
  if (err < 0)
    return err;
  for (int r = 0; r < 2; r++) {
    if (!g.count[r])
      continue;
    g.sel[r] = malloc(g.count[r] * sizeof(sl_selector_t) + g.bytes[r]);
    if (!g.sel[r]) {
      free(g.sel[0]);
      return -ENOMEM;
    }
    g.next[r] = (char *)(g.sel[r] + g.count[r]);
  }
  if (g.payload_count) {
    g.payloads = malloc(g.payload_count * sizeof(sl_payload_t) + g.payload_bytes);
    if (!g.payloads) {
      free(g.sel[0]);
      free(g.sel[1]);
      return -ENOMEM;
    }
    g.payload_next = (char *)(g.payloads + g.payload_count);
  }
  g.fill = 1;
  err = walk_grants(&g, payload, legacy, why);
  if (err < 0) {
    for (int r = 0; r < 2; r++) {
      sl__selectors_release(g.sel[r], g.used[r]);
      free(g.sel[r]);
    }
    free(g.payloads);
    return err;
  }
  assert(g.used[0] == g.count[0] && g.used[1] == g.count[1] &&
         g.payloads_used == g.payload_count);
  claims->payloads = g.payloads;
  claims->payload_count = g.payload_count;
  claims->publish = g.sel[SL_ROLE_PUBLISHER];
  claims->publish_count = g.count[SL_ROLE_PUBLISHER];
  claims->subscribe = g.sel[SL_ROLE_SUBSCRIBER];
  claims->subscribe_count = g.count[SL_ROLE_SUBSCRIBER];
  return 0;
}

/* The signature segment decoded and checked by the role's keys that alg and kid select. */
static int check_signature(const sl_auth_t *auth, sl_role_t role, const char *token,
                           size_t signed_len, const char *sig, size_t sig_len, sl_jws_alg_t alg,
                           const char *kid, const char **why) {
  /* The longest signature: RSA 8192 bits is 1024 bytes; longer is no signature of ours. */
  unsigned char given[1024 + 3];
  if (sl__b64url_decoded_len(sig_len) > sizeof given || sl__b64url_decode(given, sig, sig_len)) {
    *why = "bad signature";
    return -EACCES;
  }
  return sl__keyset_verify(auth->keys[role], alg, kid[0] ? kid : NULL,
                           (const unsigned char *)token, signed_len, given,
                           sl__b64url_decoded_len(sig_len), why);
}

int sl__auth_verify(const sl_auth_t *auth, sl_role_t role, const char *token, size_t len,
                   int64_t now, sl_claims_t *claims, const char **why) {
  assert(auth && claims && why && (role == SL_ROLE_PUBLISHER || role == SL_ROLE_SUBSCRIBER));
  memset(claims, 0, sizeof(*claims));
  *why = NULL;
  if (!sl__auth_has_key(auth, role)) {
    *why = "no key configured for role";
    return -ENOKEY;
  }
  if (len > MAX_TOKEN_LEN) {
    *why = "token too long";
    return -EACCES;
  }
  /* Compact JWS: three base64url segments. Five would be a JWE, which we do not decrypt. */
  const char *dot1 = token ? memchr(token, '.', len) : NULL;
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
  /* A NUL has no place in a compact JWS; refused, so that no reader can see a shorter token. */
  if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) ||
      memchr(token, '\0', len)) {
    *why = "not a compact JWS";
    return -EACCES;
  }
  sl_jws_alg_t alg;
  char kid[MAX_KID_LEN + 1];
  int err = check_header(auth, token, (size_t)(dot1 - token), &alg, kid, why);
  if (err < 0)
    return err;

  const char *body = dot1 + 1;
  size_t body_len = (size_t)(dot2 - body);
  unsigned char *decoded = malloc(sl__b64url_decoded_len(body_len) + 1);
  if (!decoded) {
    *why = "out of memory";
    return -ENOMEM;
  }
  json_t *payload = NULL;
  err = check_signature(auth, role, token, (size_t)(dot2 - token), dot2 + 1,
                        len - (size_t)(dot2 + 1 - token), alg, kid, why);
  if (err < 0)
    goto out;
  payload = decode_object(decoded, body, body_len);
  if (!payload) {
    *why = "malformed claims";
    err = -EACCES;
    goto out;
  }
  int64_t exp, expires;
  err = check_times(auth, payload, now, &exp, &expires, why);
  if (!err)
    err = check_audience_issuer(auth, payload, why);
  if (!err)
    err = read_grants(payload, auth->topic_base, auth->legacy, claims, why);
  if (!err) {
    claims->exp = exp;
    claims->expires = expires;
  }

out:
  json_decref(payload);
  free(decoded);
  if (err == -ENOMEM)
    *why = "out of memory";
  return err;
}

void sl__claims_free(sl_claims_t *claims) {
  if (!claims)
    return;
  /* Each role's strings live in the block that starts with its selector array. */
  sl__selectors_release(claims->publish, claims->publish_count);
  sl__selectors_release(claims->subscribe, claims->subscribe_count);
  free(claims->publish);
  free(claims->subscribe);
  free(claims->payloads);
  memset(claims, 0, sizeof(*claims));
}

const sl_payload_t *sl__claims_payload(const sl_claims_t *claims, const char *matcher, size_t len) {
  const sl_payload_t *fallback = NULL;
  for (size_t i = 0; i < claims->payload_count; i++) {
    const sl_payload_t *p = &claims->payloads[i];
    if (p->count == 0) {
      if (!fallback)
        fallback = p;
    } else if (p->first + (size_t)p->count <= claims->subscribe_count &&
               sl__selectors_match(claims->subscribe + p->first, p->count, matcher, len)) {
      return p;
    }
  }
  return fallback;
}

/* The payloads copied into one block, laid out as read_grants lays them. 0 or -ENOMEM. */
static int copy_payloads(sl_payload_t **out, const sl_payload_t *src, size_t n) {
  *out = NULL;
  if (!n)
    return 0;
  size_t size = n * sizeof(sl_payload_t);
  for (size_t i = 0; i < n; i++)
    size += src[i].len + 1;
  sl_payload_t *copy = malloc(size);
  if (!copy)
    return -ENOMEM;
  char *next = (char *)(copy + n);
  for (size_t i = 0; i < n; i++) {
    copy[i] = src[i];
    memcpy(next, src[i].json, src[i].len + 1);
    copy[i].json = next;
    next += src[i].len + 1;
  }
  *out = copy;
  return 0;
}

/* One role's selectors copied into a single block: the array, then each string NUL-terminated.
 * *out is NULL when n is 0. 0 or -ENOMEM. */
static int copy_selectors(sl_selector_t **out, const sl_selector_t *sel, size_t n) {
  *out = NULL;
  if (!n)
    return 0;
  if (n > SIZE_MAX / sizeof(sl_selector_t))
    return -ENOMEM;
  size_t size = n * sizeof(sl_selector_t);
  for (size_t i = 0; i < n; i++) {
    assert(sel[i].text || !sel[i].len);
    if (sel[i].len >= SIZE_MAX - size)
      return -ENOMEM;
    size += sel[i].len + 1;
  }
  sl_selector_t *copy = malloc(size);
  if (!copy)
    return -ENOMEM;
  char *next = (char *)(copy + n);
  for (size_t i = 0; i < n; i++) {
    /* The kind and the compiled matcher are shared, not re-derived from the text: a copy means
     * what its source meant. */
    sl__selector_copy(&copy[i], &sel[i]);
    copy[i].text = next;
    copy[i].len = sel[i].len;
    if (sel[i].len)
      memcpy(next, sel[i].text, sel[i].len);
    next[sel[i].len] = '\0';
    next += sel[i].len + 1;
  }
  *out = copy;
  return 0;
}

void sl__auth_set_topic_base(sl_auth_t *auth, const char *url) {
  auth->topic_base = url;
}

int sl__claims_copy(sl_claims_t *dst, const sl_claims_t *src) {
  assert(dst && src && dst != src);
  memset(dst, 0, sizeof(*dst));
  if (copy_selectors(&dst->publish, src->publish, src->publish_count) < 0)
    return -ENOMEM;
  if (copy_selectors(&dst->subscribe, src->subscribe, src->subscribe_count) < 0 ||
      copy_payloads(&dst->payloads, src->payloads, src->payload_count) < 0) {
    sl__claims_free(dst);
    return -ENOMEM;
  }
  dst->payload_count = src->payload_count;
  dst->publish_count = src->publish_count;
  dst->subscribe_count = src->subscribe_count;
  dst->exp = src->exp;
  dst->expires = src->expires;
  return 0;
}

/* A JSON array of the n strings in list, or NULL on allocation failure. */
static json_t *string_array(const char *const *list, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++) {
    if (json_array_append_new(arr, json_string(list[i])) < 0) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

/* {"type": Mercure, "actions": [action], "topics": [{"match": t}, ...]}, or NULL when out of
 * memory. json_*_set_new and json_array_append_new take the value even when they fail. */
static json_t *mercure_detail(const char *action, const char *const *topics, size_t n) {
  json_t *detail = json_pack("{s:s, s:[s]}", "type", MERCURE_DETAIL_TYPE, "actions", action);
  json_t *matchers = json_array();
  if (!detail || json_object_set_new(detail, "topics", matchers) < 0)
    goto fail;
  for (size_t i = 0; i < n; i++)
    if (json_array_append_new(matchers, json_pack("{s:s}", "match", topics[i])) < 0)
      goto fail;
  return detail;

fail:
  if (!detail)
    json_decref(matchers);
  json_decref(detail);
  return NULL;
}

static json_t *mint_claims(const char *const *publish, size_t npublish,
                           const char *const *subscribe, size_t nsubscribe, int64_t iat,
                           int64_t exp_seconds, const char *audience, const char *issuer) {
  char jti[SL_UUID_URN_LEN + 1];
  sl__uuid_urn(jti);
  json_t *claims = json_pack("{s:I, s:s, s:s, s:s}", "iat", (json_int_t)iat, "jti", jti, "sub",
                             MINTED_SUBJECT, "client_id", MINTED_SUBJECT);
  json_t *details = json_array();
  json_t *legacy = json_object();
  if (!claims || !details || !legacy)
    goto fail;
  if (json_object_set_new(claims, "authorization_details", json_incref(details)) < 0 ||
      json_object_set_new(claims, "mercure", json_incref(legacy)) < 0 ||
      json_object_set_new(legacy, "publish", string_array(publish, npublish)) < 0 ||
      json_object_set_new(legacy, "subscribe", string_array(subscribe, nsubscribe)) < 0 ||
      (npublish && json_array_append_new(details, mercure_detail("publish", publish, npublish))) ||
      (nsubscribe &&
       json_array_append_new(details, mercure_detail("subscribe", subscribe, nsubscribe))) ||
      (exp_seconds && json_object_set_new(claims, "exp", json_integer(iat + exp_seconds))) ||
      (audience && json_object_set_new(claims, "aud", json_string(audience))) ||
      (issuer && json_object_set_new(claims, "iss", json_string(issuer))))
    goto fail;
  json_decref(details);
  json_decref(legacy);
  return claims;

fail:
  json_decref(legacy);
  json_decref(details);
  json_decref(claims);
  return NULL;
}

static int valid_list(const char *const *list, size_t n) {
  if (n && !list)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!list[i] || !list[i][0])
      return 0;
  return 1;
}

/* header.payload.signature, each segment base64url of its bytes; the signature an HMAC-SHA256 of
 * the first two with key. *out malloc'ed. 0 or -ENOMEM. */
static int sign_hs256(const char *key, const char *payload, char **out) {
  static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}";
  size_t plen = strlen(payload);
  size_t hlen = sl__b64url_encoded_len(sizeof header - 1), blen = sl__b64url_encoded_len(plen);
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  char *tok = malloc(hlen + 1 + blen + 1 + sl__b64url_encoded_len(sizeof mac) + 1);
  if (!tok)
    return -ENOMEM;
  size_t n = sl__b64url_encode(tok, (const unsigned char *)header, sizeof header - 1);
  tok[n++] = '.';
  n += sl__b64url_encode(tok + n, (const unsigned char *)payload, plen);
  if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, strlen(key), (unsigned char *)tok, n,
                 mac, sizeof mac, &mac_len)) {
    free(tok);
    return -ENOMEM;
  }
  tok[n++] = '.';
  n += sl__b64url_encode(tok + n, mac, mac_len);
  tok[n] = '\0';
  *out = tok;
  return 0;
}

int sl__token_mint(const char *key, const char *const *publish, size_t npublish,
                  const char *const *subscribe, size_t nsubscribe, int64_t exp_seconds,
                  const char *audience, const char *issuer, char **out) {
  assert(out);
  *out = NULL;
  int64_t now = (int64_t)time(NULL);
  if (!key || !key[0] || exp_seconds < 0 || exp_seconds > INT64_MAX - now ||
      !valid_list(publish, npublish) || !valid_list(subscribe, nsubscribe))
    return -EINVAL;
  json_t *claims = mint_claims(publish, npublish, subscribe, nsubscribe, now, exp_seconds,
                               audience, issuer);
  if (!claims)
    return -ENOMEM;
  int err = -ENOMEM;
  char *json = json_dumps(claims, JSON_COMPACT);
  if (json)
    err = sign_hs256(key, json, out);
  free(json);
  json_decref(claims);
  return err;
}
