/* auth.c — JWT access tokens: verifying the HMAC-signed tokens that publishers and subscribers
 * present, turning their grants into topic selectors, and minting tokens for operators. It is
 * the only file that knows libjwt and jansson. It does not find the token in a request (header
 * or cookie: policy.c does) nor decide what a selector means: topic.c classifies each grant and
 * matches it.
 *
 * Verification reads the JOSE header itself first, so that the allowlist of algorithms and the
 * typ check never depend on a library's, then checks the HMAC with OpenSSL's EVP over the signing
 * input with the configured key (libjwt 1.10's jwt_decode refuses every typ but "JWT", so the
 * at+jwt tokens the Mercure spec asks publishers to mint could never verify through it), and then
 * reads the claims from the exact payload bytes that were signed. libjwt mints tokens.
 */
#include "auth/auth.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <jansson.h>
#include <jwt.h>

#include "common/uuid.h"

/* The longest token accepted, in bytes. It is also the implementation-defined bound the spec
 * asks for on the number of authorization details, topics and pattern lengths: all of them live
 * inside the token. Browsers cap a cookie near 4 KiB; headers may carry more. */
#define MAX_TOKEN_LEN 16384

/* The longest decoded JOSE header accepted, in bytes; an HMAC header is well under 100. */
#define MAX_HEADER_LEN 512

#define MERCURE_DETAIL_TYPE "https://mercure.rocks/authorization-detail"
#define MINTED_SUBJECT "sluice-token"

struct sl_auth_s {
  char *key[2];       /* indexed by sl_role_t; NULL when that role cannot authenticate */
  int key_len[2];
  char *audience;     /* NULL = aud not checked */
  char *issuer;       /* NULL = iss not checked */
};

static int copy_string(char **out, const char *s) {
  *out = NULL;
  if (!s)
    return 0;
  *out = strdup(s);
  return *out ? 0 : -ENOMEM;
}

int sl__auth_new(sl_auth_t **auth, const char *publisher_key, const char *subscriber_key,
                const char *audience, const char *issuer) {
  assert(auth);
  *auth = NULL;
  const char *keys[2] = {[SL_ROLE_PUBLISHER] = publisher_key,
                         [SL_ROLE_SUBSCRIBER] = subscriber_key};
  sl_auth_t *a = calloc(1, sizeof(*a));
  if (!a)
    return -ENOMEM;
  for (int r = 0; r < 2; r++) {
    /* An empty HMAC key would let anyone sign: treat it as no key at all. */
    if (!keys[r] || !keys[r][0])
      continue;
    size_t len = strlen(keys[r]);
    if (len > INT_MAX) {
      sl__auth_free(a);
      return -EINVAL;
    }
    if (copy_string(&a->key[r], keys[r]) < 0)
      goto fail_alloc;
    a->key_len[r] = (int)len;
  }
  if (copy_string(&a->audience, audience) < 0 || copy_string(&a->issuer, issuer) < 0)
    goto fail_alloc;
  *auth = a;
  return 0;

fail_alloc:
  sl__auth_free(a);
  return -ENOMEM;
}

void sl__auth_free(sl_auth_t *auth) {
  if (!auth)
    return;
  for (int r = 0; r < 2; r++) {
    if (auth->key[r]) {
      explicit_bzero(auth->key[r], (size_t)auth->key_len[r]);
      free(auth->key[r]);
    }
  }
  free(auth->audience);
  free(auth->issuer);
  free(auth);
}

/* Value of a base64url character plus one, so that zero means "not in the alphabet". */
static const unsigned char b64url_value[256] = {
  ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
  ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
  ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
  ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
  ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
  ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
  ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

/* Bytes that decoding len base64url characters yields. */
static size_t b64url_decoded_len(size_t len) {
  return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

/* Strict base64url without padding (RFC 7515 section 2): only the alphabet, and unused trailing
 * bits zero, so that one text has one meaning, whichever decoder reads it. Writes
 * b64url_decoded_len(len) bytes to out. 0 or -EINVAL. */
static int b64url_decode(unsigned char *out, const char *in, size_t len) {
  if (len % 4 == 1)
    return -EINVAL;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned v = b64url_value[(unsigned char)in[i]];
    if (!v)
      return -EINVAL;
    acc = acc << 6 | (v - 1);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *out++ = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  return acc ? -EINVAL : 0;
}

/* Parses a base64url JSON object strictly, rejecting duplicate member names: with duplicates,
 * two readers of the same token could disagree about its claims. */
static json_t *decode_object(unsigned char *buf, const char *in, size_t len) {
  if (b64url_decode(buf, in, len) < 0)
    return NULL;
  json_t *obj = json_loadb((const char *)buf, b64url_decoded_len(len), JSON_REJECT_DUPLICATES,
                           NULL);
  if (obj && !json_is_object(obj)) {
    json_decref(obj);
    return NULL;
  }
  return obj;
}

/* typ is compared case-insensitively with any "application/" prefix removed (RFC 7515 section
 * 4.1.9). at+jwt is the JWT access token type the spec requires (RFC 9068); JWT is what
 * pre-standard Mercure issuers, and libjwt 1.10, put there. */
static int typ_allowed(const char *typ) {
  static const char prefix[] = "application/";
  if (!strncasecmp(typ, prefix, sizeof(prefix) - 1))
    typ += sizeof(prefix) - 1;
  return !strcasecmp(typ, "at+jwt") || !strcasecmp(typ, "jwt");
}

/* The header checks that come before any signature check: the algorithm must be one of ours
 * whatever the token says, and nothing in it may ask for processing this file does not do. */
static int check_header(const char *b64, size_t len, jwt_alg_t *alg, const char **why) {
  unsigned char buf[MAX_HEADER_LEN];
  if (b64url_decoded_len(len) > sizeof(buf)) {
    *why = "header too long";
    return -EACCES;
  }
  json_t *header = decode_object(buf, b64, len);
  if (!header) {
    *why = "malformed header";
    return -EACCES;
  }
  int err = -EACCES;
  const char *name = json_string_value(json_object_get(header, "alg"));
  static const struct {
    const char *name;
    jwt_alg_t alg;
  } allowed[] = {{"HS256", JWT_ALG_HS256}, {"HS384", JWT_ALG_HS384}, {"HS512", JWT_ALG_HS512}};
  *alg = JWT_ALG_INVAL;
  for (size_t i = 0; name && i < sizeof(allowed) / sizeof(allowed[0]); i++)
    if (!strcmp(name, allowed[i].name))
      *alg = allowed[i].alg;
  json_t *typ = json_object_get(header, "typ");
  if (*alg == JWT_ALG_INVAL)
    *why = "alg not allowed";
  else if (typ && (!json_is_string(typ) || !typ_allowed(json_string_value(typ))))
    *why = "typ not allowed";
  else if (json_object_get(header, "crit"))
    *why = "crit header not supported";   /* RFC 7515 4.1.11: we understand no extension */
  else
    err = 0;
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

static int check_times(const json_t *payload, int64_t now, int64_t *exp_out, const char **why) {
  double exp, nbf;
  json_t *v = json_object_get(payload, "exp");
  /* A token without exp is accepted for now: pre-standard Mercure tokens often have none. This
   * is where a missing exp is to be rejected once RFC 9068's requirement is enforced. */
  *exp_out = 0;
  if (v) {
    if (numeric_date(v, &exp) < 0) {
      *why = "malformed exp";
      return -EACCES;
    }
    if ((double)now >= exp) {
      *why = "token expired";
      return -EACCES;
    }
    /* now < exp, so exp is positive; a far-future exp is clamped rather than overflowed. */
    *exp_out = exp >= 9.2e18 ? INT64_MAX : (int64_t)exp;
  }
  v = json_object_get(payload, "nbf");
  if (v) {
    if (numeric_date(v, &nbf) < 0) {
      *why = "malformed nbf";
      return -EACCES;
    }
    if ((double)now < nbf) {
      *why = "token not yet valid";
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
  if (auth->issuer) {
    const char *iss = json_string_value(json_object_get(payload, "iss"));
    if (!iss || strcmp(iss, auth->issuer)) {
      *why = "issuer mismatch";
      return -EACCES;
    }
  }
  return 0;
}

/* Grants are read in two passes over the same claims: the first validates everything and
 * counts selectors and string bytes per role, the second copies them into one block per role
 * (the selector array followed by its strings), so a verified token costs two allocations. */
struct grants {
  int fill;                       /* 0: validate and count; 1: copy */
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

static void grant(struct grants *g, sl_role_t role, const json_t *match) {
  const char *s = json_string_value(match);
  size_t len = json_string_length(match);
  if (!g->fill) {
    g->count[role]++;
    g->bytes[role] += len + 1;
    return;
  }
  char *text = g->next[role];
  memcpy(text, s, len);
  text[len] = '\0';
  sl__selector_init(&g->sel[role][g->used[role]++], text, len);
  g->next[role] += len + 1;
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
      grant(g, lists[l].role, v);
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
    /* URL patterns are not evaluated yet; skipping such a grant would silently change what the
     * token allows, so the spec requires rejecting it. */
    if (type && strcmp(json_string_value(type), "exact")) {
      *why = "unsupported match_type";
      return -EACCES;
    }
    for (int r = 0; r < 2; r++)
      if (roles[r])
        grant(g, (sl_role_t)r, match);
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

static int walk_grants(struct grants *g, const json_t *payload, const char **why) {
  json_t *v = json_object_get(payload, "mercure");
  int err = v ? walk_legacy(g, v, why) : 0;
  if (err < 0)
    return err;
  v = json_object_get(payload, "authorization_details");
  return v ? walk_details(g, v, why) : 0;
}

static int read_grants(const json_t *payload, sl_claims_t *claims, const char **why) {
  struct grants g = {0};
  int err = walk_grants(&g, payload, why);
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
  err = walk_grants(&g, payload, why);
  assert(err == 0 && g.used[0] == g.count[0] && g.used[1] == g.count[1] &&
         g.payloads_used == g.payload_count);
  claims->payloads = g.payloads;
  claims->payload_count = g.payload_count;
  claims->publish = g.sel[SL_ROLE_PUBLISHER];
  claims->publish_count = g.count[SL_ROLE_PUBLISHER];
  claims->subscribe = g.sel[SL_ROLE_SUBSCRIBER];
  claims->subscribe_count = g.count[SL_ROLE_SUBSCRIBER];
  return 0;
}

/* The HMAC of the signing input (header.payload, as given) with the role's key, compared in
 * constant time with the signature segment. alg is one check_header allowed. */
static int check_signature(const sl_auth_t *auth, sl_role_t role, const char *token,
                           size_t signed_len, const char *sig, size_t sig_len, jwt_alg_t alg,
                           const char **why) {
  const char *digest = alg == JWT_ALG_HS256 ? "SHA256" : alg == JWT_ALG_HS384 ? "SHA384" : "SHA512";
  unsigned char mac[EVP_MAX_MD_SIZE], given[EVP_MAX_MD_SIZE + 3];
  size_t mac_len = 0;
  assert(alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384 || alg == JWT_ALG_HS512);
  assert(auth->key_len[role] > 0); /* never a check without a key */
  if (!EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, auth->key[role], (size_t)auth->key_len[role],
                 (const unsigned char *)token, signed_len, mac, sizeof mac, &mac_len)) {
    *why = "signature check failed";
    return -ENOMEM;
  }
  if (b64url_decoded_len(sig_len) > sizeof given) {
    *why = "bad signature";
    return -EACCES;
  }
  if (b64url_decode(given, sig, sig_len) || b64url_decoded_len(sig_len) != mac_len ||
      CRYPTO_memcmp(given, mac, mac_len) != 0) {
    *why = "bad signature";
    return -EACCES;
  }
  return 0;
}

int sl__auth_verify(const sl_auth_t *auth, sl_role_t role, const char *token, size_t len,
                   int64_t now, sl_claims_t *claims, const char **why) {
  assert(auth && claims && why && (role == SL_ROLE_PUBLISHER || role == SL_ROLE_SUBSCRIBER));
  memset(claims, 0, sizeof(*claims));
  *why = NULL;
  if (!auth->key[role]) {
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
  jwt_alg_t alg;
  int err = check_header(token, (size_t)(dot1 - token), &alg, why);
  if (err < 0)
    return err;

  const char *body = dot1 + 1;
  size_t body_len = (size_t)(dot2 - body);
  unsigned char *decoded = malloc(b64url_decoded_len(body_len) + 1);
  if (!decoded) {
    *why = "out of memory";
    return -ENOMEM;
  }
  json_t *payload = NULL;
  err = check_signature(auth, role, token, (size_t)(dot2 - token), dot2 + 1,
                        len - (size_t)(dot2 + 1 - token), alg, why);
  if (err < 0)
    goto out;
  payload = decode_object(decoded, body, body_len);
  if (!payload) {
    *why = "malformed claims";
    err = -EACCES;
    goto out;
  }
  int64_t exp;
  err = check_times(payload, now, &exp, why);
  if (!err)
    err = check_audience_issuer(auth, payload, why);
  if (!err)
    err = read_grants(payload, claims, why);
  if (!err)
    claims->exp = exp;

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
    /* The kind is copied, not re-derived from the text: a copy means what its source meant. */
    copy[i].kind = sel[i].kind;
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

/* libjwt 1.10 always writes "typ":"JWT" into the header it signs (it overrides any typ set with
 * jwt_add_header), so minted tokens carry that until the signing moves off libjwt 1.10. */
int sl__token_mint(const char *key, const char *const *publish, size_t npublish,
                  const char *const *subscribe, size_t nsubscribe, int64_t exp_seconds,
                  const char *audience, const char *issuer, char **out) {
  assert(out);
  *out = NULL;
  int64_t now = (int64_t)time(NULL);
  if (!key || !key[0] || strlen(key) > INT_MAX || exp_seconds < 0 ||
      exp_seconds > INT64_MAX - now || !valid_list(publish, npublish) ||
      !valid_list(subscribe, nsubscribe))
    return -EINVAL;
  json_t *claims = mint_claims(publish, npublish, subscribe, nsubscribe, now, exp_seconds,
                               audience, issuer);
  if (!claims)
    return -ENOMEM;
  int err = -ENOMEM;
  jwt_t *jwt = NULL;
  char *json = json_dumps(claims, JSON_COMPACT);
  if (!json)
    goto free_claims;
  if (jwt_new(&jwt))
    goto free_json;
  if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key)) ||
      jwt_add_grants_json(jwt, json))
    goto free_jwt;
  *out = jwt_encode_str(jwt);
  if (*out)
    err = 0;

free_jwt:
  jwt_free(jwt);
free_json:
  free(json);
free_claims:
  json_decref(claims);
  return err;
}
