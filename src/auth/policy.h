/* policy.h — who may use the hub, decided from a request's credentials: where the token is found
 * (an Authorization: Bearer header, else the configured cookie: by default
 * __Secure-mercure_access_token or the pre-standard mercureAuthorization), the cross-site check a
 * cookie-authorized publish must pass (its Origin, else Referer, among the publish origins), the
 * token cache in front of sl__auth_verify, and the refusal to give (status, the error of the
 * WWW-Authenticate challenge, message). It knows nothing of connections or of HTTP parsing: the
 * caller hands it header values and writes the answer itself.
 */
#ifndef SL_POLICY_H
#define SL_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "auth/auth_cache.h"
#include "common/origin.h"

/* The request headers the policy reads, and what the hub accepts. Borrowed, NUL-terminated
 * values; NULL = absent. cookie holds every Cookie header of the request, joined by "; ". */
typedef struct sl_credentials_s {
  const char *authorization;
  const char *cookie;
  const char *origin;
  const char *referer;
  const char *host;
  const char *cookie_name;               /* the one cookie read; NULL = the default two */
  const sl_origins_t *publish_origins;   /* where a cookie-authorized publish may come from;
                                            NULL = only from a page naming the request's Host */
  int publish_same_host;                 /* with publish_origins: a page naming the Host too */
} sl_credentials_t;

/* The cookie names read when none is configured: the spec's, then the pre-standard one. */
#define SL_COOKIE_NAME "__Secure-mercure_access_token"
#define SL_LEGACY_COOKIE_NAME "mercureAuthorization"

/* The outcome of sl__auth_request. On a refusal, status, error and message are the answer:
 * error is the WWW-Authenticate: Bearer challenge's error code ("invalid_token",
 * "invalid_request"; static storage), or NULL when the refusal carries no challenge; description
 * its error_description; message the body text saying what was wrong. */
typedef struct sl_auth_verdict_s {
  int present;          /* 1: the request presented a token (even one refused) */
  int status;           /* 0: not refused; else 400, 401 or 403 */
  const char *error;
  char description[160]; /* for an invalid token, the rule it broke (the challenge's
                            error_description: ASCII, no quotes or backslashes); else "" */
  char message[320];
} sl_auth_verdict_t;

/* The token in cred (the Authorization header wins over any cookie; no cookie is read when the
 * header is there; the cookie is cred->cookie_name, else the default names in their order): a
 * pointer into cred's strings with *len set, or NULL when there is none.
 * *malformed is 1 when an Authorization header is not "Bearer <token>". */
const char *sl__auth_token(const sl_credentials_t *cred, size_t *len, int *malformed);

/* Decides whether the request in cred may act as role at now (seconds since the epoch): finds the
 * token, checks the cookie publish's origin, and verifies the token through cache (NULL = none),
 * remembering a newly verified one there. Fills *v and returns
 *   0        not refused: v->present 0 when there was no token (the caller decides whether that
 *            is allowed), v->present 1 with *claims filled (free with sl__claims_free);
 *   -EINVAL  400: the Authorization header is not "Bearer <token>";
 *   -EPERM   403: a publish authorized by cookie whose Origin, else Referer, is not among
 *            cred->publish_origins (nor names Host when that is allowed);
 *   -ENOKEY  401: no key configured for role (the message names the flag that sets one);
 *   -EACCES  401: the token is not valid for role (also when verifying ran out of memory); the
 *            challenge says error="invalid_token" with an error_description naming the rule
 *            broken (expired, bad signature, ...) and the message says it too.
 * On any refusal *claims is empty. */
int sl__auth_request(const sl_auth_t *auth, sl_auth_cache_t *cache, sl_role_t role,
                     const sl_credentials_t *cred, int64_t now, sl_claims_t *claims,
                     sl_auth_verdict_t *v);

#endif
