/* hub.c — the hub's lifecycle (create, start, wait, free) and its publish path. Publishing
 * serialises the update once, then, under one lock, gives it the next sequence number, appends it
 * to history and posts a reference to every worker's inbox: so all workers see all updates in one
 * global order, and a resume from history can never miss or repeat one. */
#include "core/hub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "common/uuid.h"
#include "common/validate.h"

void sl_config_init(sl_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->history_size = SL_DEFAULT_HISTORY_SIZE;
  cfg->heartbeat = SL_DEFAULT_HEARTBEAT;
  cfg->max_queue = SL_DEFAULT_MAX_QUEUE;
  cfg->max_body = SL_DEFAULT_MAX_BODY;
  cfg->write_timeout = SL_DEFAULT_WRITE_TIMEOUT;
  cfg->header_timeout = SL_DEFAULT_HEADER_TIMEOUT;
  cfg->idle_timeout = SL_DEFAULT_IDLE_TIMEOUT;
  cfg->drain_delay = SL_DEFAULT_DRAIN_DELAY;
  cfg->shutdown_timeout = SL_DEFAULT_SHUTDOWN_TIMEOUT;
  cfg->reconnect_spread = SL_DEFAULT_RECONNECT_SPREAD;
  cfg->linger = SL_DEFAULT_LINGER;
  cfg->flush_window = SL_DEFAULT_FLUSH_WINDOW;
  cfg->max_pending = SL_DEFAULT_MAX_PENDING;
}

const char *sl_version(void) {
  return SL_VERSION_STRING;
}

const char *sl_strerror(int err) {
  switch (err) {
  case 0: return "success";
  case -ESHUTDOWN: return "the hub is shutting down";
  case -ENOKEY: return "no key configured for this role";
  default: return strerror(err < 0 ? -err : err);
  }
}

static int copy_str(sl_hub_t *hub, size_t slot, const char **field) {
  if (*field == NULL)
    return 0;
  hub->strings[slot] = strdup(*field);
  if (hub->strings[slot] == NULL)
    return -ENOMEM;
  *field = hub->strings[slot];
  return 0;
}

static int check_config(const sl_config_t *c) {
  if (c->listen_count > SL_MAX_LISTEN || c->max_queue < 1024 || c->max_body < 1 ||
      c->heartbeat < 0 || c->write_timeout < 0 || c->header_timeout <= 0 || c->idle_timeout <= 0 ||
      c->drain_delay < 0 || c->shutdown_timeout < 0 || c->reconnect_spread < 0 || c->linger < 0 ||
      c->flush_window < 0 || c->flush_window > SL_MAX_FLUSH_WINDOW ||
      c->max_pending > SL_MAX_MAX_PENDING || c->workers > SL_MAX_WORKERS)
    return -EINVAL;
  return 0;
}

int sl_hub_new(const sl_config_t *cfg, sl_hub_t **out) {
  int r = check_config(cfg);
  if (r)
    return r;
  sl_hub_t *hub = calloc(1, sizeof *hub);
  if (hub == NULL)
    return -ENOMEM;
  hub->cfg = *cfg;
  if (hub->cfg.listen_count == 0) {
    hub->cfg.listen[0] = SL_DEFAULT_LISTEN;
    hub->cfg.listen_count = 1;
  }
  r = -ENOMEM;
  for (unsigned i = 0; i < hub->cfg.listen_count; i++)
    if (copy_str(hub, i, &hub->cfg.listen[i]))
      goto fail;
  if (copy_str(hub, SL_MAX_LISTEN + 0, &hub->cfg.jwt_key) ||
      copy_str(hub, SL_MAX_LISTEN + 1, &hub->cfg.publisher_jwt_key) ||
      copy_str(hub, SL_MAX_LISTEN + 2, &hub->cfg.subscriber_jwt_key) ||
      copy_str(hub, SL_MAX_LISTEN + 3, &hub->cfg.jwt_audience) ||
      copy_str(hub, SL_MAX_LISTEN + 4, &hub->cfg.jwt_issuer))
    goto fail;
  /* One worker per core this process may run on (its CPU affinity, as taskset or a container's
   * cpuset sets it), not per core of the machine: more threads than cores only take turns. */
  if (hub->cfg.workers == 0)
    hub->cfg.workers = uv_available_parallelism();
  if (hub->cfg.workers > SL_MAX_WORKERS)
    hub->cfg.workers = SL_MAX_WORKERS;
  const char *pk = hub->cfg.publisher_jwt_key ? hub->cfg.publisher_jwt_key : hub->cfg.jwt_key;
  const char *sk = hub->cfg.subscriber_jwt_key ? hub->cfg.subscriber_jwt_key : hub->cfg.jwt_key;
  if ((r = sl_auth_new(&hub->auth, pk, sk, hub->cfg.jwt_audience, hub->cfg.jwt_issuer)))
    goto fail;
  if ((r = sl_history_memory_new(&hub->history, hub->cfg.history_size)))
    goto fail;
  if ((r = uv_mutex_init(&hub->publish_lock)))
    goto fail;
  if ((r = sl__shutdown_init(&hub->shutdown)))
    goto fail_mutex;
  *out = hub;
  return 0;
fail_mutex:
  uv_mutex_destroy(&hub->publish_lock);
fail:
  if (hub->history)
    hub->history->ops->destroy(hub->history);
  sl_auth_free(hub->auth);
  for (size_t i = 0; i < sizeof hub->strings / sizeof hub->strings[0]; i++)
    free(hub->strings[i]);
  free(hub);
  return r;
}

/* Each connection costs a descriptor: take all the kernel allows this process. */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl))
      sl_log(SL_LOG_WARN, "cannot raise the open-files limit: %s", strerror(errno));
  }
}

int sl_hub_start(sl_hub_t *hub) {
  char err[256] = "";
  int r;
  if (hub->started)
    return -EALREADY;
  raise_nofile();
  hub->workers = calloc(hub->cfg.workers, sizeof *hub->workers);
  if (hub->workers == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < hub->cfg.workers; i++) {
    if ((r = sl_worker_init(&hub->workers[i], hub, i, err, sizeof err))) {
      sl_log(SL_LOG_ERROR, "%s", err);
      goto fail;
    }
    hub->worker_count = i + 1;
  }
  for (unsigned i = 0; i < hub->worker_count; i++)
    if ((r = sl_worker_start(&hub->workers[i])))
      goto fail;
  hub->started = 1;
  atomic_store(&hub->ready, 1);
  return 0;
fail:
  /* Threads that did start must end before their workers are destroyed. */
  if (hub->worker_count && hub->workers[0].thread_started) {
    sl__shutdown_request(hub, 0, NULL, NULL);
    sl__shutdown_request(hub, 0, NULL, NULL);
    for (unsigned i = 0; i < hub->worker_count; i++)
      sl_worker_join(&hub->workers[i]);
    sl__shutdown_join(&hub->shutdown);
  }
  for (unsigned i = 0; i < hub->worker_count; i++)
    sl_worker_destroy(&hub->workers[i]);
  free(hub->workers);
  hub->workers = NULL;
  hub->worker_count = 0;
  return r;
}

int sl_hub_port(sl_hub_t *hub, unsigned i) {
  if (hub->worker_count == 0)
    return -EINVAL;
  return sl_worker_port(&hub->workers[0], i);
}

/* Protocol rules a publish through the API must follow too. */
static int check_update(const sl_update_t *u, const char **why) {
  if (u->topic_count == 0 || u->topics == NULL) {
    *why = "an update needs at least one topic";
    return -EINVAL;
  }
  for (size_t i = 0; i < u->topic_count; i++)
    if (u->topics[i] == NULL || sl_check_topic(u->topics[i], strlen(u->topics[i]), why))
      return -EINVAL;
  if (u->data && !sl_utf8_valid(u->data, u->data_len)) {
    *why = "data is not valid UTF-8";
    return -EINVAL;
  }
  if ((u->id && sl_check_id(u->id, strlen(u->id), why)) ||
      (u->type && sl_check_type(u->type, strlen(u->type), why)) ||
      (u->retry && sl_check_retry(u->retry, strlen(u->retry), why)))
    return -EINVAL;
  return 0;
}

int sl__hub_publish(sl_hub_t *hub, const sl_update_t *u, char *id, size_t id_cap, uint64_t *seq,
                    const char **why) {
  char gen[SL_UUID_URN_LEN + 1];
  const char *uid = u->id;
  int r = check_update(u, why);
  if (r)
    return r;
  if (uid == NULL) {
    sl_uuid_urn(gen);
    uid = gen;
  }
  size_t id_len = strlen(uid);
  if (id_len + 1 > id_cap)
    return -ENOSPC;
  sl_frame_t *f = sl_frame_update(u, uid, id_len);
  if (f == NULL)
    return -ENOMEM;

  uv_mutex_lock(&hub->publish_lock);
  if (hub->closed) {
    uv_mutex_unlock(&hub->publish_lock);
    sl_frame_unref(f);
    return -ESHUTDOWN;
  }
  /* Accepted updates get consecutive seqs (one refused by history takes none): a worker that
   * sees one skipped knows it lost it (server.c, worker_gap). */
  f->seq = hub->seq + 1;
  r = hub->history->ops->append(hub->history, f);
  if (r == 0) {
    hub->seq = f->seq;
    if (seq)
      *seq = f->seq;
    for (unsigned i = 0; i < hub->worker_count; i++) {
      sl_frame_ref(f);
      int wake = sl_worker_post(&hub->workers[i], SL_MSG_FRAME, f);
      if (wake < 0) {
        /* Out of memory posting. The update is in history and accepted; this worker's streams
         * would miss it, so they end before anything later reaches them, and get it back when
         * their clients resume with Last-Event-ID (server.c, worker_gap). The worker was told
         * (lost_seq): the wake-up makes it act now, not at the next update. */
        sl_frame_unref(f);
        sl_worker_wake(&hub->workers[i]);
        continue;
      }
      /* Woken under the lock: a worker never stops while a wake-up is still on its way. */
      if (wake)
        sl_worker_wake(&hub->workers[i]);
    }
  }
  uv_mutex_unlock(&hub->publish_lock);
  memcpy(id, uid, id_len + 1);
  sl_frame_unref(f);
  return r;
}

int sl_hub_publish(sl_hub_t *hub, const sl_update_t *u, char *id, size_t id_cap) {
  const char *why;
  int r = sl__hub_publish(hub, u, id, id_cap, NULL, &why);
  if (r == 0)
    atomic_fetch_add(&hub->api_published, 1);
  return r;
}

int sl__hub_replay(sl_hub_t *hub, const char *after_id, uint64_t upto, sl_history_visit_cb cb,
                   void *arg, int *found) {
  uv_mutex_lock(&hub->publish_lock);
  int r = hub->history->ops->replay(hub->history, after_id, upto, cb, arg, found);
  uv_mutex_unlock(&hub->publish_lock);
  return r;
}

char *sl__hub_metrics(sl_hub_t *hub, size_t *len) {
  const sl_metrics_t *blocks[256];
  sl_metrics_t sum;
  unsigned n = hub->worker_count < 256 ? hub->worker_count : 256;
  for (unsigned i = 0; i < n; i++)
    blocks[i] = &hub->workers[i].metrics;
  sl_metrics_sum(blocks, n, &sum);
  sl_metric_add(&sum.published_total, atomic_load(&hub->api_published));
  int state = atomic_load(&hub->shutdown.state);
  sl_metrics_extra_t x = {
    .ready = atomic_load(&hub->ready),
    .draining = state != SL_SHUTDOWN_RUNNING && state != SL_SHUTDOWN_DONE,
    .workers = hub->worker_count,
    .history_size = hub->cfg.history_size,
  };
  return sl_metrics_render(&sum, &x, len);
}

int sl_hub_shutdown(sl_hub_t *hub, double timeout, sl_shutdown_cb cb, void *arg) {
  if (!hub->started)
    return -EINVAL;
  return sl__shutdown_request(hub, timeout, cb, arg);
}

int sl_hub_wait(sl_hub_t *hub) {
  for (unsigned i = 0; i < hub->worker_count; i++)
    sl_worker_join(&hub->workers[i]);
  sl__shutdown_join(&hub->shutdown);
  return atomic_load(&hub->shutdown.forced) > 0 ? 1 : 0;
}

void sl_hub_free(sl_hub_t *hub) {
  if (hub == NULL)
    return;
  for (unsigned i = 0; i < hub->worker_count; i++)
    sl_worker_destroy(&hub->workers[i]);
  free(hub->workers);
  sl__shutdown_destroy(&hub->shutdown);
  hub->history->ops->destroy(hub->history);
  sl_auth_free(hub->auth);
  uv_mutex_destroy(&hub->publish_lock);
  for (size_t i = 0; i < sizeof hub->strings / sizeof hub->strings[0]; i++)
    free(hub->strings[i]);
  free(hub);
}
