/* mercure.h — the Mercure endpoints of one worker: subscribe (GET), publish (POST) and the
 * preflight (OPTIONS) of /.well-known/mercure, which the hub registers in each worker's
 * endpoint table. They reach the rest of the hub through what this context holds: the bus for the
 * global order and history, the auth keys and the worker's token cache, and the worker's
 * delivery for its broker and back-pressure. */
#ifndef SL_MERCURE_H
#define SL_MERCURE_H

#include <stdint.h>

#include "auth/auth.h"
#include "auth/auth_cache.h"
#include "common/origin.h"
#include "common/ratelimit.h"
#include "mercure/discovery.h"
#include "net/bus.h"
#include "http/http.h"
#include "mercure/subscriptions.h"
#include "net/delivery.h"
#include "sluice.h"

#define SL_MERCURE_PATH "/.well-known/mercure"
#define SL_MERCURE_METHODS "GET, POST, OPTIONS"

/* One worker's. Owned by the hub; used on the worker's thread only. */
typedef struct sl_mercure_s {
  sl_http_stream_ops_t stream_ops; /* every stream of this worker points here: a stream finds its
                                      context from its ops, and costs one pointer (subscribe.c) */
  const sl_config_t *cfg;
  const char *path;              /* the path of cfg->public_url, where the endpoints answer: the
                                    prefix of the hub's reserved topics */
  sl_bus_t *bus;
  const sl_auth_t *auth;
  sl_auth_cache_t *auth_cache;   /* tokens this worker verified (publishers reuse theirs) */
  sl_delivery_t *dlv;
  sl_worker_t *worker;           /* this context's: where a late-stored publish is answered */
  sl_metrics_t *metrics;
  unsigned jitter_seed;          /* rand_r state for the reconnect jitter of the drain */
  sl_ratelimit_t *rate_by_ip;    /* the hub's, shared; NULL = no limit */
  sl_ratelimit_t *rate_by_token;
  const sl_discovery_t *discovery; /* the hub's: resource_metadata for challenges; NULL = none */
  const sl_origins_t *publish_origins; /* the hub's: where a cookie publish may come from */
  int publish_same_host;         /* 1: also from a page naming the request's Host (default) */
  sl_subs_t *subs;               /* the hub's active subscriptions (--subscriptions), shared;
                                    NULL = off: no record, no event, no API */
} sl_mercure_t;

/* 0, or -ENOMEM. The stream ops are the caller's to set (sl__mercure_stream_ops). */
int sl__mercure_init(sl_mercure_t *m, const sl_config_t *cfg, sl_bus_t *bus,
                     const sl_auth_t *auth, sl_delivery_t *dlv, sl_metrics_t *metrics,
                     unsigned seed);
void sl__mercure_destroy(sl_mercure_t *m);

/* The ops of this worker's streams (subscribe.c). */
void sl__mercure_stream_ops(sl_http_stream_ops_t *ops);

/* The endpoints, for the hub's table (data: the worker's sl_mercure_t): subscribe (GET,
 * subscribe.c), publish (POST, publish.c), preflight (OPTIONS, mercure.c). */
void sl__mercure_subscribe(sl_conn_t *c, sl_request_t *r, void *m);
/* A stream handed from another process (sl_http_ctx_t.adopt_stream; data: this worker's
 * sl_mercure_t): its subscription registered again, live from the worker's dispatched seq, or
 * its replay going on after the update it last read. 0, or a negative errno. */
int sl__mercure_adopt_stream(sl_conn_t *c, struct sl_wire_reader_s *in, void *data,
                             sl_http_stream_t **out);
void sl__mercure_publish(sl_conn_t *c, sl_request_t *r, void *m);
void sl__mercure_preflight(sl_conn_t *c, sl_request_t *r, void *m);
/* The Subscription API (GET and HEAD of the hub's path + "/subscriptions" and every path under
 * it, subscriptions_api.c); registered only when m->subs is set. */
void sl__mercure_subscriptions(sl_conn_t *c, sl_request_t *r, void *m);

/* Takes one request from the client's address and token buckets: 0, or 1 after answering 429
 * with Retry-After (mercure.c). */
int sl__mercure_rate_limited(sl_mercure_t *m, sl_conn_t *c, const sl_request_t *r);

/* Refuses the request with status and a WWW-Authenticate: Bearer challenge carrying the hub's
 * resource_metadata, error (NULL: none, as when no token was presented) and description (the
 * error_description, NULL: none), the body saying what (mercure.c). Every 401 and token-related
 * 403 of the hub goes through here. */
void sl__mercure_challenge(sl_mercure_t *m, sl_conn_t *c, int status, const char *error,
                           const char *description, const char *what);

/* Verifies the request's token for role (mercure.c). Returns 0 with *present 0 when there is
 * none (the caller decides whether that is allowed), 0 with *present 1 and claims filled when it
 * is valid, or -1 after answering 400 (malformed presentation), 401 (invalid token, no key for
 * the role) or 403 (a cookie-authorised publish from another origin). */
int sl__mercure_authenticate(sl_mercure_t *m, sl_conn_t *c, const sl_request_t *r,
                             sl_role_t role, sl_claims_t *claims, int *present);

#endif
