/* mercure.c — what the Mercure endpoints share: their per-worker context, the OPTIONS
 * preflight answer, and the answer to a request's credentials (the policy is auth/policy.c's). */
#include "mercure/mercure.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/policy.h"

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
  (void)r;
  (void)m;
  sl__http_respond(c, 204, "Allow: " SL_MERCURE_METHODS "\r\n", NULL, "", 0);
}

int sl__mercure_authenticate(sl_mercure_t *m, sl_conn_t *c, const sl_request_t *r,
                             sl_role_t role, sl_claims_t *claims, int *present) {
  sl_credentials_t cred = {
    .authorization = r->hv[SL_H_AUTHORIZATION],
    .cookie = r->hv[SL_H_COOKIE],
    .origin = r->hv[SL_H_ORIGIN],
    .referer = r->hv[SL_H_REFERER],
    .host = r->hv[SL_H_HOST],
  };
  sl_auth_verdict_t v;
  int e = sl__auth_request(m->auth, m->auth_cache, role, &cred, (int64_t)time(NULL), claims, &v);
  *present = v.present;
  if (e == 0)
    return 0;
  sl__http_error(c, v.status, v.headers, v.message);
  return -1;
}
