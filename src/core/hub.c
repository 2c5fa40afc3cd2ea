/* hub.c — the hub's lifecycle (create, start, wait, free) and its wiring: each worker's endpoint
 * table (the Mercure endpoint, and the hub's own /healthz, /readyz, /metrics and the demo page),
 * the drain's ops, and the public API over the bus. The publish path itself is bus.c's. */
#include "core/hub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "common/text.h"
#include "core/handoff.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"

void sl_config_init(sl_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->history_size = SL_DEFAULT_HISTORY_SIZE;
  cfg->subscriptions_history = SL_DEFAULT_SUBSCRIPTIONS_HISTORY;
  cfg->fsync = SL_FSYNC_BATCH;
  cfg->data_max_size = SL_DEFAULT_DATA_MAX_SIZE;
  cfg->redis_stream = SL_DEFAULT_REDIS_STREAM;
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
  cfg->handoff_fd = -1;
  cfg->jwt_leeway = SL_DEFAULT_JWT_LEEWAY;
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

/* The name of a configured HMAC key shorter than SL_MIN_HMAC_KEY, or NULL: RFC 7518 3.2 wants
 * at least as many bits of key as the hash has, and a short one falls to brute force. */
static const char *weak_key(const sl_config_t *c) {
  static const char *const names[] = {"--jwt-key", "--publisher-jwt-key", "--subscriber-jwt-key"};
  const char *keys[] = {c->jwt_key, c->publisher_jwt_key, c->subscriber_jwt_key};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (keys[i] && keys[i][0] != '\0' && strlen(keys[i]) < SL_MIN_HMAC_KEY)
      return names[i];
  return NULL;
}

/* The path of an absolute http(s) URL with no query or fragment, or NULL when url is not one.
 * The path is not "/" (the demo page): the Mercure endpoints answer there. */
static const char *public_path(const char *url) {
  size_t skip = strncasecmp(url, "http://", 7) == 0    ? 7
                : strncasecmp(url, "https://", 8) == 0 ? 8
                                                       : 0;
  if (skip == 0)
    return NULL;
  /* No quote, backslash or angle bracket either: the URL is written into the metadata document,
   * challenges' quoted strings and Link headers as it is. */
  for (const char *p = url; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#' || *p == '"' ||
        *p == '\\' || *p == '<' || *p == '>')
      return NULL;
  const char *path = strchr(url + skip, '/');
  if (path == NULL || path == url + skip || path[1] == '\0')
    return NULL;
  return path;
}

#define COOKIE_NAME_MAX 128

/* A cookie's name is an HTTP token (RFC 6265 4.1.1). */
static int cookie_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > COOKIE_NAME_MAX)
    return 0;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          strchr("!#$%&'*+-.^_`|~", ch)))
      return 0;
  }
  return 1;
}

/* The origin lists, the metadata document and its challenge URL, from the hub's copied
 * configuration. 0, -EINVAL (logged: which setting, which entry), -ENOMEM. */
static int web_setup(sl_hub_t *hub) {
  char why[200];
  int r;
  if ((r = sl__origins_parse(&hub->cors, hub->cfg.cors_origins, 1, why, sizeof why))) {
    if (r == -EINVAL)
      sl__log(SL_LOG_ERROR, "--cors-origin: %s", why);
    return r;
  }
  if (hub->cfg.publish_origins) {
    r = sl__origins_parse(&hub->publish_origins, hub->cfg.publish_origins, 0, why, sizeof why);
    if (r == -EINVAL)
      sl__log(SL_LOG_ERROR, "--publish-origin: %s", why);
  } else {
    /* The hub's own origin, as its public URL names it, and, as before that was configurable,
     * a page naming the Host the request was sent to (a hub reached under several names). */
    hub->publish_same_host = 1;
    r = sl__origins_add_url(&hub->publish_origins, hub->cfg.public_url);
  }
  if (r)
    return r;
  return sl__discovery_init(&hub->discovery, &hub->cfg);
}

static int check_config(const sl_config_t *c) {
  if (c->listen_count > SL_MAX_LISTEN || c->max_queue < 1024 || c->max_body < 1 ||
      c->heartbeat < 0 || c->write_timeout < 0 || c->header_timeout <= 0 || c->idle_timeout <= 0 ||
      c->drain_delay < 0 || c->shutdown_timeout < 0 || c->reconnect_spread < 0 || c->linger < 0 ||
      c->flush_window < 0 || c->flush_window > SL_MAX_FLUSH_WINDOW ||
      c->max_pending > SL_MAX_MAX_PENDING || c->workers > SL_MAX_WORKERS ||
      c->history_size > SL_MAX_HISTORY_SIZE || c->max_body > SL_MAX_MAX_BODY ||
      c->subscriptions_history > SL_MAX_HISTORY_SIZE ||
      !(c->jwt_leeway >= 0 && c->jwt_leeway <= SL_MAX_JWT_LEEWAY) ||
      c->history_max_age < 0 || (unsigned)c->fsync > SL_FSYNC_OFF)
    return -EINVAL;
  if (c->data_dir && c->data_max_size < SL_MIN_DATA_MAX_SIZE) {
    sl__log(SL_LOG_ERROR, "--data-max-size (data_max_size) %zu is below the least a data dir needs (%d bytes)",
            c->data_max_size, SL_MIN_DATA_MAX_SIZE);
    return -EINVAL;
  }
  if (c->redis_url && c->data_dir) {
    sl__log(SL_LOG_ERROR, "--redis and --data-dir are two histories: choose one (Redis keeps the "
            "history of every hub on the stream; persist it with Redis's own AOF)");
    return -EINVAL;
  }
  if (c->redis_stream && (c->redis_stream[0] == '\0' || strlen(c->redis_stream) > 200)) {
    sl__log(SL_LOG_ERROR, "--redis-stream: give a key name of 1 to 200 bytes");
    return -EINVAL;
  }
  if (c->public_url && public_path(c->public_url) == NULL) {
    sl__log(SL_LOG_ERROR, "public URL '%.200s' is not http(s)://host[:port]/path with a path other "
            "than / and no query or fragment", c->public_url);
    return -EINVAL;
  }
  if (c->cookie_name && !cookie_name_ok(c->cookie_name)) {
    sl__log(SL_LOG_ERROR, "cookie name '%.80s' is not an HTTP token of 1 to %d characters "
            "(RFC 6265: letters, digits and !#$%%&'*+-.^_`|~)", c->cookie_name, COOKIE_NAME_MAX);
    return -EINVAL;
  }
  const char *weak = c->allow_weak_key ? NULL : weak_key(c);
  if (weak) {
    sl__log(SL_LOG_ERROR, "%s is shorter than %d bytes (256 bits, RFC 7518 3.2): a short HMAC key "
            "can be found by brute force; use a longer random key, or allow_weak_key for tests",
            weak, SL_MIN_HMAC_KEY);
    return -EINVAL;
  }
  return 0;
}


/* The Redis history: its URL parsed, the password from redis_password when the URL has none;
 * handoff: a live hand-off's new process (its feed waits for the old one's position). */
static int new_redis(sl_hub_t *hub, int handoff) {
  sl_redis_url_t url;
  const char *why;
  int r = sl__redis_url_parse(hub->cfg.redis_url, &url, &why);
  if (r) {
    sl__log(SL_LOG_ERROR, "--redis: %s", why);
    return r;
  }
  if (url.password[0] == '\0' && hub->cfg.redis_password) {
    if (strlen(hub->cfg.redis_password) >= sizeof url.password) {
      sl__log(SL_LOG_ERROR, "--redis-password: longer than %zu bytes", sizeof url.password - 1);
      return -EINVAL;
    }
    snprintf(url.password, sizeof url.password, "%s", hub->cfg.redis_password);
  }
  sl_history_redis_opts_t o = {
    .url = &url,
    .stream = hub->cfg.redis_stream ? hub->cfg.redis_stream : SL_DEFAULT_REDIS_STREAM,
    .max_entries = hub->cfg.history_size,
    .hub_entries = hub->cfg.subscriptions ? hub->cfg.subscriptions_history : 0,
    .max_age = hub->cfg.history_max_age,
    .handoff = handoff,
  };
  r = sl__history_redis_new(&hub->history, &o);
  memset(&url, 0, sizeof url); /* the password */
  return r;
}

extern const char sl__demo_page[];
extern const size_t sl__demo_page_len;

/* --- the hub's own endpoints ----------------------------------------------------------------- */

static void respond_healthz(sl_conn_t *c, sl_request_t *r, void *arg) {
  (void)r;
  (void)arg;
  sl__http_respond(c, 200, NULL, TEXT_PLAIN, SL_LIT("ok\n"));
}

static void respond_readyz(sl_conn_t *c, sl_request_t *r, void *arg) {
  sl_hub_t *hub = arg;
  (void)r;
  char why[200], text[240];
  if (atomic_load(&hub->ready) && sl__history_health(hub->history, why, sizeof why)) {
    int n = snprintf(text, sizeof text, "history not usable: %s\n", why);
    sl__http_respond(c, 503, "Retry-After: 1\r\n", TEXT_PLAIN, text,
                     n < (int)sizeof text ? (size_t)n : sizeof text - 1);
  } else if (atomic_load(&hub->ready))
    sl__http_respond(c, 200, NULL, TEXT_PLAIN, SL_LIT("ready\n"));
  else
    sl__http_respond(c, 503, "Retry-After: 5\r\n", TEXT_PLAIN, SL_LIT("draining: not accepting new work\n"));
}

/* Prometheus text of the whole hub (malloc'ed). */
static char *hub_metrics(sl_hub_t *hub, size_t *len) {
  const sl_metrics_t *blocks[SL_MAX_WORKERS];
  sl_metrics_t sum;
  unsigned n = hub->worker_count;
  for (unsigned i = 0; i < n; i++)
    blocks[i] = &hub->workers[i].metrics;
  sl__metrics_sum(blocks, n, &sum);
  sl__metric_add(&sum.published_total, atomic_load(&hub->api_published));
  sl_metrics_extra_t x = {
    .ready = atomic_load(&hub->ready),
    .draining = sl__shutdown_draining(&hub->shutdown),
    .workers = hub->worker_count,
    .history_size = hub->cfg.history_size,
    /* With a data dir, the bytes are the file's and its bound is --data-max-size. */
    .history_max_bytes = hub->cfg.data_dir ? hub->cfg.data_max_size : hub->cfg.history_max_bytes,
  };
  sl__history_usage(hub->history, &x.history_entries, &x.history_bytes);
  if (hub->subs) {
    x.subscriptions = 1;
    x.subscriptions_active = sl__subs_count(hub->subs);
    x.subscriptions_history = hub->cfg.subscriptions_history;
    x.subscription_events_lost = sl__bus_hub_failed(&hub->bus);
  }
  return sl__metrics_render(&sum, &x, len);
}

static void respond_metrics(sl_conn_t *c, sl_request_t *r, void *arg) {
  (void)r;
  size_t len;
  char *text = hub_metrics(arg, &len);
  if (text == NULL) {
    sl__http_error(c, 500, NULL, "out of memory");
    return;
  }
  sl__http_respond(c, 200, NULL, "text/plain; version=0.0.4; charset=utf-8", text, len);
  free(text);
}

static void respond_demo(sl_conn_t *c, sl_request_t *r, void *arg) {
  (void)r;
  (void)arg;
  sl__http_respond(c, 200, "Cache-Control: no-cache\r\n", "text/html; charset=utf-8",
                   sl__demo_page, sl__demo_page_len);
}

/* The subscription API's preflight: its own methods, not the hub's. */
static void preflight_api(sl_conn_t *c, sl_request_t *r, void *m) {
  (void)m;
  sl__http_preflight(c, r, "GET, HEAD, OPTIONS");
}

/* The endpoint table of worker i. */
static int add_routes(sl_hub_t *hub, unsigned i) {
  static const char *const paths[] = {"/healthz", "/readyz", "/metrics", "/"};
  static const sl_http_handler_t handlers[] = {respond_healthz, respond_readyz, respond_metrics,
                                               respond_demo};
  sl_router_t *router = &hub->http[i].router;
  sl__router_init(router, "no such resource; the hub lives at its public URL's path");
  sl_mercure_t *m = &hub->mercure[i];
  sl_route_t *mercure = sl__router_add(router, hub->path, SL_MERCURE_METHODS,
                                       "the hub accepts GET (subscribe) and POST (publish)");
  int r = -ENOSPC;
  if (mercure && !sl__route_on(mercure, SL_HTTP_GET, sl__mercure_subscribe, m) &&
      !sl__route_on(mercure, SL_HTTP_POST, sl__mercure_publish, m) &&
      !sl__route_on(mercure, SL_HTTP_OPTIONS, sl__mercure_preflight, m))
    r = 0;
  if (mercure)
    mercure->cors = &hub->cors; /* every Mercure route takes the same allowlist */
  /* RFC 9728's document, at the path derived from the hub's URL. */
  sl_route_t *meta = r ? NULL : sl__router_add(router, hub->discovery.metadata_path, "GET, HEAD",
                                               "this resource only answers GET and HEAD");
  if (r == 0 && (meta == NULL ||
                 sl__route_on(meta, SL_HTTP_GET, sl__discovery_serve, &hub->discovery) ||
                 sl__route_on(meta, SL_HTTP_HEAD, sl__discovery_serve, &hub->discovery)))
    r = -ENOSPC;
  if (r == 0 && hub->subs) {
    sl_route_t *api = sl__router_add_tree(router, hub->subs_path, "GET, HEAD, OPTIONS",
                                          "the subscription API answers GET and HEAD");
    if (api == NULL || sl__route_on(api, SL_HTTP_GET, sl__mercure_subscriptions, m) ||
        sl__route_on(api, SL_HTTP_HEAD, sl__mercure_subscriptions, m) ||
        sl__route_on(api, SL_HTTP_OPTIONS, preflight_api, m))
      r = -ENOSPC;
    else
      api->cors = &hub->cors; /* cross-origin readers get the list and its Link cursor */
  }
  for (size_t k = 0; r == 0 && k < sizeof paths / sizeof paths[0]; k++) {
    sl_route_t *rt = sl__router_add(router, paths[k], "GET, HEAD",
                                    "this resource only answers GET and HEAD");
    if (rt == NULL || sl__route_on(rt, SL_HTTP_GET, handlers[k], hub) ||
        sl__route_on(rt, SL_HTTP_HEAD, handlers[k], hub))
      r = -ENOSPC;
  }
  return r;
}

/* --- the drain's ops ------------------------------------------------------------------------ */

static void drain_begin(void *arg) {
  sl_hub_t *hub = arg;
  atomic_store(&hub->ready, 0);
}

static void drain_workers(void *arg) {
  sl_hub_t *hub = arg;
  /* The subscriptions' ends are announced while the bus still takes updates: before every
   * stream's final frame, and into history. */
  if (hub->subs)
    sl__subs_drain(hub->subs);
  sl__bus_close(&hub->bus);
}

static void drain_force(void *arg) {
  sl_hub_t *hub = arg;
  sl__bus_force(&hub->bus);
}

static void drain_stop(void *arg) {
  sl_hub_t *hub = arg;
  sl__bus_stop(&hub->bus);
}

static void drain_count(void *arg, sl_shutdown_counts_t *out) {
  sl_hub_t *hub = arg;
  for (unsigned i = 0; i < hub->worker_count; i++) {
    sl_worker_t *w = &hub->workers[i];
    out->streams_open += sl__metric_get(&w->metrics.subscribers);
    out->open += sl__metric_get(&w->metrics.connections);
    out->accepted += sl__metric_get(&w->metrics.accepted_total);
    out->drained += sl__metric_get(&w->metrics.drained_total);
    out->forced += sl__metric_get(&w->metrics.forced_total);
    out->flushed += sl__worker_drain_flushed(w);
  }
}

static const sl_shutdown_ops_t drain_ops = {
  .begin = drain_begin,
  .drain = drain_workers,
  .force = drain_force,
  .stop = drain_stop,
  .count = drain_count,
};

static void worker_drained(sl_worker_t *w, void *arg) {
  sl_hub_t *hub = arg;
  (void)w;
  sl__shutdown_worker_done(&hub->shutdown);
}

#define RATE_SLOTS 65536            /* buckets of a rate limit: 1.5 MiB, whatever the clients */
#define HISTORY_BYTES_MIN (16ull << 20)
#define HISTORY_BYTES_MAX (4ull << 30)

/* An eighth of the memory this process may use (its cgroup's limit, else the machine's), so
 * that a flood of large updates cannot take the hub's memory: 10,000 updates of 1 MiB are
 * 10 GiB with a count limit alone. */
static uint64_t default_history_bytes(void) {
  uint64_t mem = uv_get_constrained_memory();
  uint64_t total = uv_get_total_memory();
  if (mem == 0 || (total > 0 && mem > total))
    mem = total;
  uint64_t b = mem / 8;
  return b < HISTORY_BYTES_MIN ? HISTORY_BYTES_MIN : b > HISTORY_BYTES_MAX ? HISTORY_BYTES_MAX : b;
}

#define EITHER(role_field, shared) ((role_field) ? (role_field) : (shared))

/* The token validator from the configuration. In the spec profile the hub's resource identifier,
 * which every token's aud must hold, is jwt_audience or else the hub's public URL (the spec
 * recommends its canonical URL). 0, -EINVAL (logged: which key or file, and why), -ENOMEM. */
static int new_auth(sl_hub_t *hub) {
  const sl_config_t *c = &hub->cfg;
  sl_auth_config_t ac = {
    .key = {EITHER(c->publisher_jwt_key, c->jwt_key), EITHER(c->subscriber_jwt_key, c->jwt_key)},
    .key_file = {EITHER(c->publisher_jwt_key_file, c->jwt_key_file),
                 EITHER(c->subscriber_jwt_key_file, c->jwt_key_file)},
    .jwks_file = {EITHER(c->publisher_jwks_file, c->jwks_file),
                  EITHER(c->subscriber_jwks_file, c->jwks_file)},
    .audience = c->jwt_legacy ? c->jwt_audience : EITHER(c->jwt_audience, c->public_url),
    .issuer = c->jwt_issuer,
    .legacy = c->jwt_legacy,
    .leeway = (int64_t)c->jwt_leeway,
    .allow_weak = c->allow_weak_key,
  };
  char err[512];
  int r = sl__auth_new(&hub->auth, &ac, err, sizeof err);
  if (r == -EINVAL)
    sl__log(SL_LOG_ERROR, "tokens: %s", err);
  return r;
}

/* The history, the bus over it and the registry of active subscriptions. lmdb_lock_fd: -1, or in
 * a live hand-off the old process's lock on the data dir, taken over; handoff: a live hand-off's
 * new process (a Redis feed waits for the old one's position). 0 or a negative errno (nothing
 * left open). */
static int open_history(sl_hub_t *hub, int lmdb_lock_fd, int handoff) {
  int r;
  /* Subscription events are kept apart, under their own budget: a storm of them (a drain, its
   * reconnects) must not push the application's updates out of history. */
  size_t hub_entries = hub->cfg.subscriptions ? hub->cfg.subscriptions_history : 0;
  if (hub->cfg.redis_url) {
    r = new_redis(hub, handoff);
  } else if (hub->cfg.data_dir) {
    sl_history_lmdb_opts_t o = {
      .dir = hub->cfg.data_dir,
      .max_entries = hub->cfg.history_size,
      .hub_entries = hub_entries,
      .max_age = hub->cfg.history_max_age,
      .fsync = hub->cfg.fsync,
      .max_disk = hub->cfg.data_max_size,
      .have_lock_fd = lmdb_lock_fd >= 0,
      .lock_fd = lmdb_lock_fd,
    };
    r = sl__history_lmdb_new(&hub->history, &o);
  } else {
    r = sl__history_memory_new_split(&hub->history, hub->cfg.history_size, hub_entries,
                                     hub->cfg.history_max_bytes);
  }
  if (r)
    return r;
  if ((r = sl__bus_init(&hub->bus, hub->history)))
    goto fail_history;
  hub->bus.hub_path = hub->path;
  if (hub->cfg.subscriptions) {
    hub->bus.keep_last = 1;
    size_t n = strlen(hub->path) + sizeof "/subscriptions";
    if ((hub->subs_path = malloc(n)) == NULL) {
      r = -ENOMEM;
      goto fail_bus;
    }
    snprintf(hub->subs_path, n, "%s/subscriptions", hub->path);
    if ((r = sl__subs_new(&hub->subs, &hub->bus, hub->path)))
      goto fail_bus;
  }
  hub->history_open = 1;
  return 0;
fail_bus:
  free(hub->subs_path);
  hub->subs_path = NULL;
  sl__bus_destroy(&hub->bus);
fail_history:
  sl__history_destroy(hub->history);
  hub->history = NULL;
  return r;
}

static void close_history(sl_hub_t *hub) {
  if (!hub->history_open)
    return;
  hub->history_open = 0;
  sl__subs_free(hub->subs);
  hub->subs = NULL;
  free(hub->subs_path);
  hub->subs_path = NULL;
  sl__history_destroy(hub->history);
  hub->history = NULL;
  sl__bus_destroy(&hub->bus);
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
      copy_str(hub, SL_MAX_LISTEN + 4, &hub->cfg.jwt_issuer) ||
      copy_str(hub, SL_MAX_LISTEN + 7, &hub->cfg.cookie_name) ||
      copy_str(hub, SL_MAX_LISTEN + 8, &hub->cfg.publish_origins) ||
      copy_str(hub, SL_MAX_LISTEN + 9, &hub->cfg.cors_origins) ||
      copy_str(hub, SL_MAX_LISTEN + 10, &hub->cfg.jwt_key_file) ||
      copy_str(hub, SL_MAX_LISTEN + 11, &hub->cfg.publisher_jwt_key_file) ||
      copy_str(hub, SL_MAX_LISTEN + 12, &hub->cfg.subscriber_jwt_key_file) ||
      copy_str(hub, SL_MAX_LISTEN + 13, &hub->cfg.jwks_file) ||
      copy_str(hub, SL_MAX_LISTEN + 14, &hub->cfg.publisher_jwks_file) ||
      copy_str(hub, SL_MAX_LISTEN + 15, &hub->cfg.subscriber_jwks_file) ||
      copy_str(hub, SL_MAX_LISTEN + 16, &hub->cfg.data_dir) ||
      copy_str(hub, SL_MAX_LISTEN + 17, &hub->cfg.redis_url) ||
      copy_str(hub, SL_MAX_LISTEN + 18, &hub->cfg.redis_stream) ||
      copy_str(hub, SL_MAX_LISTEN + 19, &hub->cfg.redis_password))
    goto fail;
  if (hub->cfg.public_url) {
    if (copy_str(hub, SL_MAX_LISTEN + 5, &hub->cfg.public_url))
      goto fail;
  } else {
    size_t n = strlen(hub->cfg.listen[0]) + sizeof "http://" SL_MERCURE_PATH;
    if ((hub->strings[SL_MAX_LISTEN + 5] = malloc(n)) == NULL)
      goto fail;
    snprintf(hub->strings[SL_MAX_LISTEN + 5], n, "http://%s" SL_MERCURE_PATH, hub->cfg.listen[0]);
    hub->cfg.public_url = hub->strings[SL_MAX_LISTEN + 5];
  }
  hub->path = public_path(hub->cfg.public_url);
  if ((r = web_setup(hub)))
    goto fail;
  /* One worker per core this process may run on (its CPU affinity, as taskset or a container's
   * cpuset sets it), not per core of the machine: more threads than cores only take turns. */
  hub->workers_auto = hub->cfg.workers == 0;
  if (hub->cfg.workers == 0)
    hub->cfg.workers = uv_available_parallelism();
  if (hub->cfg.workers > SL_MAX_WORKERS)
    hub->cfg.workers = SL_MAX_WORKERS;
  if ((r = new_auth(hub)))
    goto fail;
  sl__auth_set_topic_base(hub->auth, hub->cfg.public_url); /* relative URL patterns in grants */
  if (hub->cfg.history_max_bytes == 0)
    hub->cfg.history_max_bytes = default_history_bytes();
  if (hub->cfg.handoff_fd < 0 && (r = open_history(hub, -1, 0)))
    goto fail;
  if ((r = sl__shutdown_init(&hub->shutdown, hub, &drain_ops, hub)))
    goto fail;
  *out = hub;
  return 0;
fail:
  close_history(hub);
  sl__auth_free(hub->auth);
  sl__origins_free(&hub->cors);
  sl__origins_free(&hub->publish_origins);
  sl__discovery_free(&hub->discovery);
  for (size_t i = 0; i < SL_HUB_STRINGS; i++)
    free(hub->strings[i]);
  free(hub);
  return r;
}

/* Each connection costs a descriptor: take all the kernel allows this process. Returns the
 * limit now in force. */
static size_t raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl)) {
      sl__log(SL_LOG_WARN, "cannot raise the open-files limit: %s", strerror(errno));
      getrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  return rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : (size_t)rl.rlim_cur;
}

/* --max-connections, or what the descriptor limit leaves once the hub's own are set aside: a
 * connection past it is still accepted and told 503, where one past the descriptor limit could
 * not be accepted at all. */
static size_t connection_cap(const sl_config_t *cfg, size_t nofile) {
  if (cfg->max_connections)
    return cfg->max_connections;
  if (nofile == 0 || nofile == SIZE_MAX)
    return 0;
  return nofile > 2 * SL_RESERVED_FDS ? nofile - SL_RESERVED_FDS : nofile / 2;
}

/* Frees what sl_hub_start made; every thread it started has ended. */
static void unwind(sl_hub_t *hub, unsigned contexts) {
  for (unsigned i = 0; i < hub->worker_count; i++)
    sl__worker_destroy(&hub->workers[i]);
  for (unsigned i = 0; i < contexts; i++)
    sl__mercure_destroy(&hub->mercure[i]);
  free(hub->workers);
  free(hub->http);
  free(hub->mercure);
  free(hub->pace_members);
  hub->workers = NULL;
  hub->http = NULL;
  hub->mercure = NULL;
  hub->pace_members = NULL;
  hub->worker_count = 0;
  hub->contexts = 0;
}

/* The handed sockets of workers from..n, which no worker took. */
static void close_adopted(const sl_hub_t *hub, unsigned n, const sl_listen_fds_t *adopt,
                          unsigned from) {
  for (unsigned i = from; adopt && i < n; i++)
    for (unsigned k = 0; k < hub->cfg.listen_count; k++) {
      if (adopt[i].listen[k] >= 0)
        close(adopt[i].listen[k]);
      if (adopt[i].lock[k] >= 0)
        close(adopt[i].lock[k]);
    }
}

/* n workers with their contexts and endpoint tables, on adopt's listening sockets (one set per
 * worker) or binding their own; their updates from the bus, starting where history stands. 0 or a
 * negative errno (the caller unwinds). */
static int make_workers(sl_hub_t *hub, unsigned n, const sl_listen_fds_t *adopt) {
  char err[256] = "";
  int r;
  hub->workers = calloc(n, sizeof *hub->workers);
  hub->http = calloc(n, sizeof *hub->http);
  hub->mercure = calloc(n, sizeof *hub->mercure);
  hub->pace_members = calloc(n, sizeof *hub->pace_members);
  if (!hub->workers || !hub->http || !hub->mercure || !hub->pace_members) {
    close_adopted(hub, n, adopt, 0);
    return -ENOMEM;
  }
  hub->pacer.max_pending = hub->cfg.max_pending;
  hub->pacer.members = hub->pace_members;
  hub->pacer.count = n;
  unsigned seed = (unsigned)uv_hrtime();
  for (unsigned i = 0; i < n; i++) {
    sl_worker_t *w = &hub->workers[i];
    if ((r = sl__worker_init(w, i, &hub->cfg, &hub->pacer, &hub->admission,
                             i ? &hub->workers[0] : NULL, adopt ? &adopt[i] : NULL,
                             worker_drained, hub, err, sizeof err))) {
      sl__log(SL_LOG_ERROR, "%s", err);
      close_adopted(hub, n, adopt, i + 1);
      return r;
    }
    hub->worker_count = i + 1;
    hub->pace_members[i] = &w->dlv;
    if ((r = sl__mercure_init(&hub->mercure[i], &hub->cfg, &hub->bus, hub->auth, &w->dlv,
                              &w->metrics, seed ^ (i * 2654435761u))))
      return r;
    hub->contexts = i + 1;
    sl__mercure_stream_ops(&hub->mercure[i].stream_ops);
    hub->mercure[i].path = hub->path;
    hub->mercure[i].discovery = &hub->discovery;
    hub->mercure[i].publish_origins = &hub->publish_origins;
    hub->mercure[i].publish_same_host = hub->publish_same_host;
    hub->mercure[i].subs = hub->subs;
    hub->mercure[i].worker = w;
    hub->mercure[i].rate_by_ip = hub->rate_by_ip.buckets ? &hub->rate_by_ip : NULL;
    hub->mercure[i].rate_by_token = hub->rate_by_token.buckets ? &hub->rate_by_token : NULL;
    hub->http[i].cfg = &hub->cfg;
    hub->http[i].adopt_stream = sl__mercure_adopt_stream;
    hub->http[i].adopt_data = &hub->mercure[i];
    if ((r = add_routes(hub, i)))
      return r;
    sl__http_attach(&w->net, &hub->http[i]);
  }
  sl__bus_attach(&hub->bus, hub->workers, hub->worker_count);
  return 0;
}

/* Runs the workers' threads. 0, or a negative errno (every thread that did start has ended). */
static int start_workers(sl_hub_t *hub) {
  int r = 0;
  /* Ready before the first worker answers: a client that sees /healthz answer must not then see
   * /readyz say 503 because the other workers were still starting. */
  atomic_store(&hub->ready, 1);
  for (unsigned i = 0; i < hub->worker_count; i++)
    if ((r = sl__worker_start(&hub->workers[i])))
      break;
  if (r && hub->workers[0].thread_started) {
    /* Threads that did start must end before their workers are destroyed. */
    sl__shutdown_request(&hub->shutdown, hub->worker_count, 0, 0, NULL, NULL);
    sl__shutdown_request(&hub->shutdown, hub->worker_count, 0, 0, NULL, NULL);
    for (unsigned i = 0; i < hub->worker_count; i++)
      sl__worker_join(&hub->workers[i]);
    sl__shutdown_join(&hub->shutdown);
  }
  if (r)
    atomic_store(&hub->ready, 0);
  return r;
}

static const sl_handoff_hooks_t handoff_hooks = {
  .open_history = open_history,
  .make_workers = make_workers,
  .start_workers = start_workers,
};

int sl_hub_start(sl_hub_t *hub) {
  int r;
  if (hub->started)
    return -EALREADY;
  size_t nofile = raise_nofile();
  if ((r = sl__admission_init(&hub->admission, connection_cap(&hub->cfg, nofile),
                              hub->cfg.max_conns_per_ip)))
    return r;
  /* A second's worth of requests is the burst. The tables are of fixed size. */
  if ((hub->cfg.rate_per_ip &&
       (r = sl__ratelimit_init(&hub->rate_by_ip, (double)hub->cfg.rate_per_ip,
                               (double)hub->cfg.rate_per_ip, RATE_SLOTS))) ||
      (hub->cfg.rate_per_token &&
       (r = sl__ratelimit_init(&hub->rate_by_token, (double)hub->cfg.rate_per_token,
                               (double)hub->cfg.rate_per_token, RATE_SLOTS)))) {
    sl__ratelimit_destroy(&hub->rate_by_ip);
    sl__admission_destroy(&hub->admission);
    return r;
  }
  if (hub->cfg.handoff_fd >= 0) {
    /* Taking over from a running hub: its sockets, history and connections, not ours. */
    r = sl__handoff_adopt(hub, &handoff_hooks);
  } else if ((r = make_workers(hub, hub->cfg.workers, NULL)) == 0) {
    r = start_workers(hub);
  }
  if (r)
    goto fail;
  hub->started = 1;
  return 0;
fail:
  atomic_store(&hub->ready, 0);
  if (hub->history_open)
    sl__bus_attach(&hub->bus, NULL, 0);
  unwind(hub, hub->contexts);
  sl__admission_destroy(&hub->admission);
  sl__ratelimit_destroy(&hub->rate_by_ip);
  sl__ratelimit_destroy(&hub->rate_by_token);
  return r;
}

int sl_hub_handoff(sl_hub_t *hub, int sock, double timeout, sl_handoff_cb cb, void *arg) {
  if (!hub->started || sock < 0 || !(timeout > 0))
    return -EINVAL;
  if (sl__shutdown_draining(&hub->shutdown))
    return -EALREADY;
  return sl__handoff_begin(hub, sock, timeout, cb, arg);
}

int sl_hub_port(sl_hub_t *hub, unsigned i) {
  if (hub->worker_count == 0)
    return -EINVAL;
  return sl__worker_port(&hub->workers[0], i);
}

int sl_hub_publish(sl_hub_t *hub, const sl_update_t *u, char *id, size_t id_cap) {
  const char *why;
  int r = sl__bus_publish(&hub->bus, u, id, id_cap, NULL, &why);
  if (r == 0)
    atomic_fetch_add(&hub->api_published, 1);
  return r;
}

int sl_hub_shutdown(sl_hub_t *hub, double timeout, sl_shutdown_cb cb, void *arg) {
  if (!hub->started)
    return -EINVAL;
  /* After a hand-off nothing is served here any more: no delay for a load balancer to notice. */
  return sl__shutdown_request(&hub->shutdown, hub->worker_count,
                              hub->handed_off ? 0 : hub->cfg.drain_delay, timeout, cb, arg);
}

int sl_hub_wait(sl_hub_t *hub) {
  for (unsigned i = 0; i < hub->worker_count; i++)
    sl__worker_join(&hub->workers[i]);
  sl__shutdown_join(&hub->shutdown);
  return sl__shutdown_forced(&hub->shutdown) > 0 ? 1 : 0;
}

void sl_hub_free(sl_hub_t *hub) {
  if (hub == NULL)
    return;
  int started = hub->workers != NULL;
  /* A completion history still makes (a publish pending when the hub stopped hard) must not post
   * to a freed worker: the bus keeps it for sl__bus_destroy. */
  if (hub->history_open)
    sl__bus_attach(&hub->bus, NULL, 0);
  sl__handoff_free(hub);
  unwind(hub, hub->contexts);
  if (started) {
    sl__admission_destroy(&hub->admission);
    sl__ratelimit_destroy(&hub->rate_by_ip);
    sl__ratelimit_destroy(&hub->rate_by_token);
  }
  sl__shutdown_destroy(&hub->shutdown);
  close_history(hub);
  sl__auth_free(hub->auth);
  sl__origins_free(&hub->cors);
  sl__origins_free(&hub->publish_origins);
  sl__discovery_free(&hub->discovery);
  for (size_t i = 0; i < SL_HUB_STRINGS; i++)
    free(hub->strings[i]);
  free(hub);
}
