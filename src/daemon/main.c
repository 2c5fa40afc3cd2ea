/* main.c — the sluice daemon: options into a hub configuration, the hub started through the
 * public API, signals (SIGTERM/SIGINT drain, a second one forces, SIGHUP reopens the log), systemd
 * notification, and the exit code (0 after a clean drain, 1 when connections had to be forced,
 * 2 for bad usage). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#ifdef SL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/log.h"
#include "daemon/options.h"
#include "sluice.h"

typedef struct daemon_s {
  sl_hub_t *hub;
  uv_loop_t *loop;
  uv_signal_t sigterm, sigint, sighup;
  uv_async_t drained;
  double shutdown_timeout;
  int signals;
} daemon_t;

static void notify(const char *state) {
#ifdef SL_HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

/* Runs on a hub thread: hand over to the main loop. */
static void on_drained(sl_hub_t *hub, const sl_drain_report_t *rep, void *arg) {
  daemon_t *d = arg;
  (void)hub;
  (void)rep;
  uv_async_send(&d->drained);
}

static void on_drained_main(uv_async_t *h) {
  daemon_t *d = h->data;
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sighup, NULL);
  uv_close((uv_handle_t *)&d->drained, NULL);
}

static void on_stop_signal(uv_signal_t *h, int signum) {
  daemon_t *d = h->data;
  if (d->signals++ == 0) {
    sl__log(SL_LOG_INFO, "%s: draining (send it again to stop at once)", strsignal(signum));
    notify("STOPPING=1");
  } else {
    sl__log(SL_LOG_WARN, "%s again: stopping at once", strsignal(signum));
  }
  sl_hub_shutdown(d->hub, d->shutdown_timeout, on_drained, d);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  int r = sl__log_reopen();
  if (r)
    sl__log(SL_LOG_ERROR, "SIGHUP: cannot reopen the log file: %s", sl_strerror(r));
  else
    sl__log(SL_LOG_INFO, "SIGHUP: log file reopened; streams untouched");
}

/* HMAC keys shorter than the hash (RFC 7518 3.2) fall to brute force: refused, wherever they came
 * from, unless --allow-weak-key says this is a test. 0, or 2 after saying which key and why. */
static int check_keys(const sl_config_t *c) {
  static const char *const names[] = {"jwt-key", "publisher-jwt-key", "subscriber-jwt-key"};
  const char *keys[] = {c->jwt_key, c->publisher_jwt_key, c->subscriber_jwt_key};
  if (c->allow_weak_key)
    return 0;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    if (keys[i] && keys[i][0] != '\0' && strlen(keys[i]) < SL_MIN_HMAC_KEY) {
      fprintf(stderr, "sluice: --%s: the key is %zu bytes; an HMAC key needs at least %d (256 "
              "bits, RFC 7518 3.2) or it can be found by brute force: use a random one (openssl "
              "rand -base64 48), or --allow-weak-key for a test\n",
              names[i], strlen(keys[i]), SL_MIN_HMAC_KEY);
      return 2;
    }
  }
  return 0;
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* SIGTERM and SIGINT drain, SIGHUP reopens the log; the drain's end comes back through an async.
 * 0 or a libuv error (the caller closes what was made). */
static int watch_signals(daemon_t *d) {
  int r;
  if ((r = uv_signal_init(d->loop, &d->sigterm)) || (r = uv_signal_init(d->loop, &d->sigint)) ||
      (r = uv_signal_init(d->loop, &d->sighup)) ||
      (r = uv_async_init(d->loop, &d->drained, on_drained_main)))
    return r;
  d->sigterm.data = d->sigint.data = d->sighup.data = d->drained.data = d;
  if ((r = uv_signal_start(&d->sigterm, on_stop_signal, SIGTERM)) ||
      (r = uv_signal_start(&d->sigint, on_stop_signal, SIGINT)) ||
      (r = uv_signal_start(&d->sighup, on_sighup, SIGHUP)))
    return r;
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "token") == 0)
    return sl__token_command(argc - 1, argv + 1, stdout, stderr);

  sl_options_t opt;
  char err[512] = "";
  int r = sl__options_parse(&opt, argc, argv, err, sizeof err);
  if (r) {
    fprintf(stderr, "sluice: %s\n", err[0] ? err : sl_strerror(r));
    return 2;
  }
  if (opt.show_help || opt.show_version) {
    if (opt.show_help)
      sl__options_usage(stdout);
    else
      printf("sluice %s\n", sl_version());
    sl__options_free(&opt);
    return 0;
  }
  if ((r = sl__log_open(opt.log_file, opt.verbose ? SL_LOG_DEBUG : SL_LOG_INFO))) {
    fprintf(stderr, "sluice: cannot open log file %s: %s\n", opt.log_file, sl_strerror(r));
    sl__options_free(&opt);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  const sl_config_t *cfg = &opt.hub;
  if ((r = check_keys(cfg))) {
    sl__options_free(&opt);
    return r;
  }
  int shared = cfg->jwt_key || cfg->jwt_key_file || cfg->jwks_file;
  if (!shared && !cfg->publisher_jwt_key && !cfg->publisher_jwt_key_file &&
      !cfg->publisher_jwks_file)
    sl__log(SL_LOG_WARN, "no --jwt-key, --jwt-key-file, --jwks-file or publisher key: nobody "
            "can publish over HTTP");
  if (!cfg->anonymous && !shared && !cfg->subscriber_jwt_key && !cfg->subscriber_jwt_key_file &&
      !cfg->subscriber_jwks_file)
    sl__log(SL_LOG_WARN, "no subscriber key and no --anonymous: nobody can subscribe");

  daemon_t d;
  memset(&d, 0, sizeof d);
  d.shutdown_timeout = cfg->shutdown_timeout;
  if ((r = sl_hub_new(cfg, &d.hub))) {
    /* A bad setting is -EINVAL; anything else is the data dir (locked, unreadable), which the
     * log line before this one explains. */
    if (r == -EINVAL)
      fprintf(stderr, "sluice: bad configuration: %s\n", sl_strerror(r));
    else
      fprintf(stderr, "sluice: cannot open the hub: %s\n", sl_strerror(r));
    sl__options_free(&opt);
    return 2;
  }
  d.loop = uv_default_loop();
  /* Signals are caught before the workers serve anything: a client that sees the hub answer may
   * send SIGTERM at once, and it must find the drain, not the default action. */
  if ((r = watch_signals(&d)) == 0 && (r = sl_hub_start(d.hub)) != 0)
    fprintf(stderr, "sluice: cannot start: %s\n", sl_strerror(r));
  else if (r)
    fprintf(stderr, "sluice: cannot watch signals: %s\n", uv_strerror(r));
  if (r) {
    uv_walk(d.loop, close_walk, NULL);
    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
    sl_hub_free(d.hub);
    sl__options_free(&opt);
    return 1;
  }

  for (unsigned i = 0; i < cfg->listen_count || i == 0; i++)
    sl__log(SL_LOG_INFO, "sluice %s listening on http://%s/.well-known/mercure (port %d)",
           sl_version(), cfg->listen_count ? cfg->listen[i] : SL_DEFAULT_LISTEN,
           sl_hub_port(d.hub, i));
  notify("READY=1");

  uv_run(d.loop, UV_RUN_DEFAULT);
  int forced = sl_hub_wait(d.hub);
  uv_loop_close(d.loop);
  sl_hub_free(d.hub);
  sl__options_free(&opt);
  return forced ? 1 : 0;
}
