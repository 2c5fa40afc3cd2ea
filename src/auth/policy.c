/* policy.c — the authentication policy of a request, apart from HTTP parsing: which token counts
 * (header before cookie), the cross-site request forgery check on cookie-authorized publishes,
 * the token cache in front of signature checks, and the exact refusal each failure gets. It reads
 * header values only; it neither parses requests nor writes responses, and what a token grants is
 * auth.c's to read and topic.c's to match.
 */
#include "auth/policy.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/text.h"

static const char *const role_names[] = {"publisher", "subscriber"};
static const char *const key_flags[] = {"--publisher-jwt-key, --publisher-jwt-key-file or "
                                        "--publisher-jwks-file",
                                        "--subscriber-jwt-key, --subscriber-jwt-key-file or "
                                        "--subscriber-jwks-file"};

const char *sl__auth_token(const sl_credentials_t *cred, size_t *len, int *malformed) {
  *malformed = 0;
  const char *a = cred->authorization;
  if (a) {
    /* The Authorization header wins over any cookie. */
    if (!SL_STARTS_WITH_CASE(a, "Bearer ")) {
      *malformed = 1;
      return NULL;
    }
    a += SL_LITLEN("Bearer ");
    while (*a == ' ')
      a++;
    size_t n = strlen(a);
    while (n > 0 && a[n - 1] == ' ')
      n--;
    if (n == 0) {
      *malformed = 1;
      return NULL;
    }
    *len = n;
    return a;
  }
  const char *ck = cred->cookie;
  if (ck == NULL)
    return NULL;
  static const char *const defaults[] = {SL_COOKIE_NAME, SL_LEGACY_COOKIE_NAME};
  /* The configured name alone, or the default two in their order. */
  const char *const *names = cred->cookie_name ? &cred->cookie_name : defaults;
  size_t count = cred->cookie_name ? 1 : 2;
  for (size_t i = 0; i < count; i++) {
    size_t nl = strlen(names[i]);
    for (const char *p = ck; (p = strstr(p, names[i])) != NULL; p += nl) {
      if ((p != ck && p[-1] != ' ' && p[-1] != ';') || p[nl] != '=')
        continue;
      const char *v = p + nl + 1;
      *len = strcspn(v, "; ");
      if (*len > 0)
        return v;
    }
  }
  return NULL;
}

/* The host[:port] of an Origin or Referer value ("scheme://authority/..."), compared with the
 * request's Host: 1 when they are the same. */
static int names_host(const char *v, const char *host) {
  const char *p = strstr(v, "://");
  if (p == NULL || host == NULL)
    return 0;
  p += 3;
  size_t n = strcspn(p, "/?#");
  return n > 0 && n == strlen(host) && strncasecmp(p, host, n) == 0;
}

/* A browser sends a site's cookies with requests that other sites make it send (CSRF): a publish
 * authorized by the cookie must show that it comes from an origin the hub trusts (its own, or
 * one --publish-origin names), by Origin, else by Referer; with neither it is refused. The
 * Mercure spec asks this of hubs that take the cookie (Security Considerations). */
static int trusted_origin(const sl_credentials_t *cred) {
  const char *from = cred->origin ? cred->origin : cred->referer;
  if (from == NULL)
    return 0;
  if (cred->publish_origins == NULL)
    return names_host(from, cred->host);
  return sl__origins_find(cred->publish_origins, from) != NULL ||
         (cred->publish_same_host && names_host(from, cred->host));
}

static int refuse(sl_auth_verdict_t *v, int err, int status, const char *error,
                  const char *message) {
  v->status = status;
  v->error = error;
  snprintf(v->message, sizeof v->message, "%s", message);
  return err;
}

int sl__auth_request(const sl_auth_t *auth, sl_auth_cache_t *cache, sl_role_t role,
                     const sl_credentials_t *cred, int64_t now, sl_claims_t *claims,
                     sl_auth_verdict_t *v) {
  assert(auth && cred && claims && v && (role == SL_ROLE_PUBLISHER || role == SL_ROLE_SUBSCRIBER));
  static const char invalid_token[] = "invalid_token";
  size_t len = 0;
  int malformed;
  char what[256];
  memset(v, 0, sizeof *v);
  memset(claims, 0, sizeof *claims);
  const char *tok = sl__auth_token(cred, &len, &malformed);
  if (malformed)
    return refuse(v, -EINVAL, 400, "invalid_request",
                  "the Authorization header must be \"Bearer <token>\"");
  if (tok == NULL)
    return 0;
  v->present = 1;
  if (role == SL_ROLE_PUBLISHER && cred->authorization == NULL && !trusted_origin(cred))
    return refuse(v, -EPERM, 403, NULL,
                  "a publish authorized by cookie must come from a page of an origin this hub "
                  "trusts (its Origin, else Referer, header must name the hub's own origin or one "
                  "--publish-origin lists), against cross-site request forgery; or send the token "
                  "in an Authorization header");
  /* A verified token is remembered by its exact bytes until it expires: signature checks cost
   * tens of microseconds, and a publisher sends the same token with every update. */
  if (sl__auth_cache_get(cache, role, tok, len, now, claims) == 0)
    return 0;
  const char *why = "invalid token";
  int r = sl__auth_verify(auth, role, tok, len, now, claims, &why);
  if (r == 0) {
    sl__auth_cache_put(cache, role, tok, len, now, claims);
    return 0;
  }
  if (r == -ENOKEY) {
    snprintf(what, sizeof what, "this hub has no %s key configured (--jwt-key, --jwks-file or %s)",
             role_names[role], key_flags[role]);
    return refuse(v, -ENOKEY, 401, invalid_token, what);
  }
  sl__log(SL_LOG_DEBUG, "%s token rejected: %s", role_names[role], why);
  /* The rule broken, for whoever debugs the client (RFC 6750 3: error_description). auth.c's
   * reasons are ASCII without quotes or backslashes, so they fit a quoted-string as they are. */
  snprintf(what, sizeof what, "the %s token is not valid: %s", role_names[role], why);
  refuse(v, -EACCES, 401, invalid_token, what);
  snprintf(v->description, sizeof v->description, "%s", why);
  return -EACCES;
}
