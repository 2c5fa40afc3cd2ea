/* mercure.c — what the Mercure endpoints share: their per-worker context, the OPTIONS
 * preflight answer, and the answer to a request's credentials (the policy is auth/policy.c's). */
#include "mercure/mercure.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/policy.h"
#include "net/admission.h"

#define AUTH_CACHE_SLOTS 256

int sl__mercure_init(sl_mercure_t *m, const sl_config_t *cfg, sl_bus_t *bus,
                     const sl_auth_t *auth, sl_delivery_t *dlv, sl_metrics_t *metrics,
                     unsigned seed) {
  memset(m, 0, sizeof *m);
  m->cfg = cfg;
  m->bus = bus;
  m->auth = auth;
  m->dlv = dlv;
  m->metrics = metrics;
  m->jitter_seed = seed;
  m->auth_cache = sl__auth_cache_new(AUTH_CACHE_SLOTS);
  return m->auth_cache ? 0 : -ENOMEM;
}

void sl__mercure_destroy(sl_mercure_t *m) {
  sl__auth_cache_free(m->auth_cache);
  m->auth_cache = NULL;
}

void sl__mercure_preflight(sl_conn_t *c, sl_request_t *r, void *m) {
  (void)m;
  sl__http_preflight(c, r, SL_MERCURE_METHODS);
}

void sl__mercure_challenge(sl_mercure_t *m, sl_conn_t *c, int status, const char *error,
                           const char *description, const char *what) {
  char line[SL_ORIGIN_MAX + 1024];
  sl__discovery_challenge(m->discovery, error, description, line, sizeof line);
  sl__http_error(c, status, line, what);
}

/* The request's credentials, and what this hub accepts of them. */
static sl_credentials_t credentials(const sl_mercure_t *m, const sl_request_t *r) {
  return (sl_credentials_t){
    .authorization = r->hv[SL_H_AUTHORIZATION],
    .cookie = r->hv[SL_H_COOKIE],
    .origin = r->hv[SL_H_ORIGIN],
    .referer = r->hv[SL_H_REFERER],
    .host = r->hv[SL_H_HOST],
    .cookie_name = m->cfg ? m->cfg->cookie_name : NULL,
    .publish_origins = m->publish_origins,
    .publish_same_host = m->publish_same_host,
  };
}

/* The client's address as a key (net/admission.h's form); 0 when it has none (then no limit). */
static size_t address_key(const sl_conn_t *c, unsigned char key[16]) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(c->fd, (struct sockaddr *)&ss, &len) || sl__address_key((struct sockaddr *)&ss, key))
    return 0;
  return 16;
}

int sl__mercure_rate_limited(sl_mercure_t *m, sl_conn_t *c, const sl_request_t *r) {
  if (m->rate_by_ip == NULL && m->rate_by_token == NULL)
    return 0;
  uint64_t now = uv_hrtime() / 1000000;
  unsigned wait = 0;
  const char *which = NULL;
  unsigned char key[16];
  size_t klen;
  if (m->rate_by_ip && (klen = address_key(c, key)) > 0 &&
      (wait = sl__ratelimit_take(m->rate_by_ip, key, klen, now)) > 0)
    which = "this address (--rate-per-ip)";
  if (wait == 0 && m->rate_by_token) {
    sl_credentials_t cred = credentials(m, r);
    size_t len = 0;
    int malformed;
    const char *tok = sl__auth_token(&cred, &len, &malformed);
    if (tok && (wait = sl__ratelimit_take(m->rate_by_token, tok, len, now)) > 0)
      which = "this token (--rate-per-token)";
  }
  if (wait == 0)
    return 0;
  char headers[48], what[160];
  snprintf(headers, sizeof headers, "Retry-After: %u\r\n", wait);
  snprintf(what, sizeof what, "too many publishes and subscriptions from %s; retry in %u s",
           which, wait);
  sl__metric_add(&m->metrics->rate_limited_total, 1);
  sl__http_error(c, 429, headers, what);
  return 1;
}

int sl__mercure_authenticate(sl_mercure_t *m, sl_conn_t *c, const sl_request_t *r,
                             sl_role_t role, sl_claims_t *claims, int *present) {
  sl_credentials_t cred = credentials(m, r);
  sl_auth_verdict_t v;
  int e = sl__auth_request(m->auth, m->auth_cache, role, &cred, (int64_t)time(NULL), claims, &v);
  *present = v.present;
  if (e == 0)
    return 0;
  if (v.error)
    sl__mercure_challenge(m, c, v.status, v.error, v.description, v.message);
  else
    sl__http_error(c, v.status, NULL, v.message);
  return -1;
}
