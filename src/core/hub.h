/* hub.h — the hub as the rest of the library sees it: configuration, workers, the publish path
 * that gives every update its place in one global order, history, auth and readiness. Owns the
 * workers, the history and the auth keys. */
#ifndef SL_HUB_H
#define SL_HUB_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "auth/auth.h"
#include "history/history.h"
#include "net/worker.h"
#include "core/shutdown.h"
#include "sluice.h"

struct sl_hub_s {
  sl_config_t cfg;               /* strings owned (copied) */
  char *strings[SL_MAX_LISTEN + 6];
  sl_worker_t *workers;
  unsigned worker_count;
  sl_auth_t *auth;
  /* Publish path: seq, history and every inbox change together under this lock. */
  uv_mutex_t publish_lock;
  uint64_t seq;
  int closed;                    /* no more updates accepted (draining) */
  sl_history_t *history;
  atomic_int ready;              /* /readyz */
  atomic_uint_fast64_t api_published;
  atomic_uint_fast64_t paced_at; /* uv_hrtime() when back-pressure last held or released an
                                    answer (pace.c) */ /* updates published through sl_hub_publish() directly */
  int started;
  sl_shutdown_t shutdown;
};

/* Validates and publishes one update; *seq (may be NULL) gets its place in the global order. On
 * -EINVAL *why says which rule it broke. */
int sl__hub_publish(sl_hub_t *hub, const sl_update_t *u, char *id, size_t id_cap, uint64_t *seq,
                    const char **why);

/* Resume: visits, in publish order, the retained updates after after_id up to seq upto. *found as
 * in sl_history_ops_t. Takes the publish lock. */
int sl__hub_replay(sl_hub_t *hub, const char *after_id, uint64_t upto, sl_history_visit_cb cb,
                   void *arg, int *found);

/* Prometheus text of the whole hub (malloc'ed). */
char *sl__hub_metrics(sl_hub_t *hub, size_t *len);

#endif
