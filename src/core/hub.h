/* hub.h — the hub: the top of the library, the one file that knows every layer. It owns the
 * configuration, the workers, the bus and its history, the auth keys, the drain, and each
 * worker's HTTP and Mercure contexts; it wires them together (the endpoint table of each worker,
 * the drain's ops, the workers' drained callback) and nothing below calls it. */
#ifndef SL_HUB_H
#define SL_HUB_H

#include <stdatomic.h>
#include <stdint.h>

#include "auth/auth.h"
#include "common/origin.h"
#include "mercure/discovery.h"
#include "net/bus.h"
#include "core/shutdown.h"
#include "history/history.h"
#include "http/http.h"
#include "mercure/mercure.h"
#include "mercure/subscriptions.h"
#include "net/delivery.h"
#include "net/worker.h"
#include "sluice.h"

#define SL_HUB_STRINGS (SL_MAX_LISTEN + 20) /* listen addresses, three keys, audience, issuer,
                                             public URL, its path, cookie name, publish and
                                             CORS origins, three key files, three JWK Set
                                             files, data dir, Redis URL, stream, password */

struct sl_hub_s {
  sl_config_t cfg;               /* strings owned (copied) */
  char *strings[SL_HUB_STRINGS];
  const char *path;              /* the path of cfg.public_url: where the Mercure endpoints are */
  sl_worker_t *workers;
  unsigned worker_count;
  unsigned contexts;             /* Mercure contexts made (sl__mercure_init), for the unwind */
  sl_http_ctx_t *http;           /* one per worker */
  sl_mercure_t *mercure;         /* one per worker */
  sl_delivery_t **pace_members;  /* every worker's delivery, for the pacer */
  sl_pacer_t pacer;
  sl_admission_t admission;      /* connection caps, shared by the workers */
  sl_ratelimit_t rate_by_ip;     /* request rates, when configured (buckets NULL when not) */
  sl_ratelimit_t rate_by_token;
  sl_auth_t *auth;
  sl_origins_t cors;             /* --cors-origin: the Mercure routes' CORS allowlist */
  sl_origins_t publish_origins;  /* --publish-origin, else the public URL's origin */
  int publish_same_host;         /* no --publish-origin: a page naming the Host may publish too */
  sl_discovery_t discovery;      /* the metadata document and its URL */
  sl_history_t *history;
  sl_bus_t bus;
  int history_open;              /* history, bus and registry made (with a live hand-off, only
                                    once the old process said where its order stands) */
  int workers_auto;              /* cfg.workers was 0: as many as cores, or as the old process */
  struct sl_handoff_s *handoff;  /* the live hand-off under way (handoff.c's), or NULL */
  int handed_off;                /* the connections went to another process */
  sl_subs_t *subs;               /* active subscriptions (cfg.subscriptions), else NULL */
  char *subs_path;               /* the Subscription API's root: path + "/subscriptions" */
  atomic_int ready;              /* /readyz */
  atomic_uint_fast64_t api_published; /* updates published through sl_hub_publish() directly */
  int started;
  sl_shutdown_t shutdown;
};

#endif
