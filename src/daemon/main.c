/* main.c — the sluice daemon: options into a hub configuration, the hub started through the
 * public API, signals (SIGTERM/SIGINT drain, a second one forces, SIGHUP reopens the log,
 * SIGUSR2 a live upgrade: the binary started again, taking every connection over), the pid file,
 * systemd notification, and the exit code (0 after a clean drain or upgrade, 1 when connections
 * had to be forced, 2 for bad usage). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#ifdef SL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/log.h"
#include "daemon/init.h"
#include "daemon/options.h"
#include "sluice.h"

#define HANDOFF_FD 3              /* where the new process finds its end of the hand-off socket */
#define HANDOFF_ENV "SLUICE_HANDOFF_FD"

typedef struct daemon_s {
  sl_hub_t *hub;
  uv_loop_t *loop;
  uv_signal_t sigterm, sigint, sighup, sigusr2;
  uv_async_t drained;
  uv_async_t handed;             /* the hand-off ended (result in handoff_err) */
  double shutdown_timeout;
  int signals;
  char **argv;                   /* this process's, for the new one */
  char exec_path[PATH_MAX];      /* the binary SIGUSR2 starts */
  const char *pid_file;
  double upgrade_timeout;
  int upgrading;                 /* a hand-off under way */
  int stop_after_upgrade;        /* SIGTERM came during it */
  int handed_off;
  int handoff_err;               /* written on a hub thread before handed is sent */
  uv_process_t child;
  int child_handle;              /* child is initialised and not yet closed */
  int child_running;
  int child_pid;
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

static void on_child_closed(uv_handle_t *h) {
  daemon_t *d = h->data;
  d->child_handle = 0;
}

static void on_drained_main(uv_async_t *h) {
  daemon_t *d = h->data;
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sighup, NULL);
  uv_close((uv_handle_t *)&d->sigusr2, NULL);
  uv_close((uv_handle_t *)&d->drained, NULL);
  uv_close((uv_handle_t *)&d->handed, NULL);
  /* A new process that took over is not this one's to end: its handle goes, it runs on. */
  if (d->child_handle && !uv_is_closing((uv_handle_t *)&d->child))
    uv_close((uv_handle_t *)&d->child, on_child_closed);
}

/* The pid file names this process (written whole, then renamed over the old one, so a reader
 * never sees half of it). */
static void write_pid_file(const char *path) {
  if (path == NULL)
    return;
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
    return;
  FILE *f = fopen(tmp, "w");
  if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 ||
      rename(tmp, path) != 0) {
    sl__log(SL_LOG_ERROR, "--pid-file %s: cannot write it: %s", path, strerror(errno));
    unlink(tmp);
  }
}

/* Removed at the end only if it still names this process (after an upgrade it names the new
 * one). */
static void remove_pid_file(const char *path) {
  if (path == NULL)
    return;
  FILE *f = fopen(path, "r");
  long pid = -1;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1)
      pid = -1;
    fclose(f);
  }
  if (pid == (long)getpid()) {
    unlink(path);
    char status[PATH_MAX];
    if (snprintf(status, sizeof status, "%s" SL_UPGRADE_STATUS_SUFFIX, path) < (int)sizeof status)
      unlink(status);
  }
}

/* Why the upgrade failed, beside the pid file, for `sluice upgrade` to tell at once. */
static void upgrade_failed(daemon_t *d, const char *why) {
  if (d->pid_file == NULL)
    return;
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s" SL_UPGRADE_STATUS_SUFFIX, d->pid_file) >= (int)sizeof path)
    return;
  FILE *f = fopen(path, "w");
  if (f) {
    fprintf(f, "upgrade failed: %s\n", why);
    fclose(f);
  }
}

static void stop(daemon_t *d) {
  sl_hub_shutdown(d->hub, d->shutdown_timeout, on_drained, d);
}

static void on_stop_signal(uv_signal_t *h, int signum) {
  daemon_t *d = h->data;
  if (d->upgrading && d->signals == 0) {
    d->stop_after_upgrade = 1;
    sl__log(SL_LOG_WARN, "%s during a live upgrade: the upgrade finishes first, then the "
            "stop applies to whichever process serves (the new one drains if it took over)",
            strsignal(signum));
    return;
  }
  if (d->signals++ == 0) {
    sl__log(SL_LOG_INFO, "%s: draining (send it again to stop at once)", strsignal(signum));
    notify("STOPPING=1");
  } else {
    sl__log(SL_LOG_WARN, "%s again: stopping at once", strsignal(signum));
  }
  stop(d);
}

/* Runs on a hub thread: hand over to the main loop. */
static void on_handoff(sl_hub_t *hub, int err, void *arg) {
  daemon_t *d = arg;
  (void)hub;
  d->handoff_err = err;
  uv_async_send(&d->handed);
}

static void on_child_exit(uv_process_t *p, int64_t status, int signum) {
  daemon_t *d = p->data;
  d->child_running = 0;
  if (!d->handed_off)
    sl__log(SL_LOG_WARN, "upgrade: the new process (pid %d) ended (%s %d)", d->child_pid,
            signum ? "signal" : "status", signum ? signum : (int)status);
  uv_close((uv_handle_t *)p, on_child_closed);
}

static void on_handed_main(uv_async_t *h) {
  daemon_t *d = h->data;
  d->upgrading = 0;
  if (d->handoff_err == 0) {
    d->handed_off = 1;
    sl__log(SL_LOG_INFO, "upgrade: pid %d serves now; this process ends once the connections "
            "that stayed (already ending) are done", d->child_pid);
    if (d->stop_after_upgrade) {
      /* The stop asked during the upgrade is the service's, not only this process's. */
      sl__log(SL_LOG_INFO, "upgrade: passing the stop asked meanwhile on to pid %d",
              d->child_pid);
      kill(d->child_pid, SIGTERM);
    }
    d->signals++;
    stop(d);
    return;
  }
  /* It failed and this process serves on: a new process still running is of no use. */
  upgrade_failed(d, d->handoff_err == -EPIPE ? "the new process ended before it took over"
                    : d->handoff_err == -ETIMEDOUT ? "the new process did not take over within "
                                                     "--upgrade-timeout"
                    : sl_strerror(d->handoff_err));
  if (d->child_running)
    uv_process_kill(&d->child, SIGKILL);
  if (d->stop_after_upgrade) {
    sl__log(SL_LOG_INFO, "the upgrade failed: now draining, as the signal asked");
    d->signals++;
    notify("STOPPING=1");
    stop(d);
  }
}

/* SIGUSR2: the binary started again with this one's arguments and, on fd 3, one end of a socket
 * over which this hub hands it everything. */
static void on_sigusr2(uv_signal_t *h, int signum) {
  daemon_t *d = h->data;
  (void)signum;
  if (d->upgrading || d->handed_off || d->child_handle) {
    sl__log(SL_LOG_WARN, "SIGUSR2: an upgrade is already under way (or its new process still "
            "ending); ignored");
    return;
  }
  if (d->signals > 0) {
    sl__log(SL_LOG_WARN, "SIGUSR2 during a drain: no upgrade (the drain goes on)");
    upgrade_failed(d, "the hub is draining");
    return;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
    sl__log(SL_LOG_ERROR, "upgrade failed: socketpair: %s; still serving", strerror(errno));
    return;
  }
  /* The child's end, well above fd 3, so that putting it at 3 is a real dup2 (which clears
   * close-on-exec). */
  int theirs = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
  close(sv[1]);
  extern char **environ;
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 2, sizeof *env);
  char var[32];
  snprintf(var, sizeof var, HANDOFF_ENV "=%d", HANDOFF_FD);
  size_t k = 0;
  for (size_t i = 0; env && i < n; i++)
    if (strncmp(environ[i], HANDOFF_ENV "=", sizeof HANDOFF_ENV) != 0)
      env[k++] = environ[i];
  if (env)
    env[k] = var;
  uv_stdio_container_t stdio[HANDOFF_FD + 1];
  for (int i = 0; i < HANDOFF_FD; i++)
    stdio[i] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = i};
  stdio[HANDOFF_FD] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = theirs};
  uv_process_options_t o = {
    .exit_cb = on_child_exit,
    .file = d->exec_path,
    .args = d->argv,
    .env = env,
    .stdio_count = HANDOFF_FD + 1,
    .stdio = stdio,
  };
  d->child.data = d;
  int spawned = theirs >= 0 && env != NULL;
  int r = spawned ? uv_spawn(d->loop, &d->child, &o) : UV_ENOMEM;
  free(env);
  if (theirs >= 0)
    close(theirs);
  if (r) {
    sl__log(SL_LOG_ERROR, "upgrade failed: cannot start %s: %s; still serving", d->exec_path,
            uv_strerror(r));
    upgrade_failed(d, uv_strerror(r));
    if (spawned) { /* initialised even when it failed */
      d->child_handle = 1;
      uv_close((uv_handle_t *)&d->child, on_child_closed);
    }
    close(sv[0]);
    return;
  }
  d->child_running = 1;
  d->child_handle = 1;
  d->child_pid = d->child.pid;
  sl__log(SL_LOG_INFO, "upgrade: started %s (pid %d); handing over within %.0f s",
          d->exec_path, d->child_pid, d->upgrade_timeout);
  if ((r = sl_hub_handoff(d->hub, sv[0], d->upgrade_timeout, on_handoff, d))) {
    sl__log(SL_LOG_ERROR, "upgrade failed: %s; still serving", sl_strerror(r));
    close(sv[0]);
    uv_process_kill(&d->child, SIGKILL);
    return;
  }
  d->upgrading = 1;
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
      (r = uv_signal_init(d->loop, &d->sighup)) || (r = uv_signal_init(d->loop, &d->sigusr2)) ||
      (r = uv_async_init(d->loop, &d->drained, on_drained_main)) ||
      (r = uv_async_init(d->loop, &d->handed, on_handed_main)))
    return r;
  d->sigterm.data = d->sigint.data = d->sighup.data = d->sigusr2.data = d;
  d->drained.data = d->handed.data = d;
  if ((r = uv_signal_start(&d->sigterm, on_stop_signal, SIGTERM)) ||
      (r = uv_signal_start(&d->sigint, on_stop_signal, SIGINT)) ||
      (r = uv_signal_start(&d->sighup, on_sighup, SIGHUP)) ||
      (r = uv_signal_start(&d->sigusr2, on_sigusr2, SIGUSR2)))
    return r;
  return 0;
}

/* The binary to start for an upgrade: --exec, else the path this one was started from, as it
 * is now (a package upgrade puts the new binary at that path). */
static int find_exec(daemon_t *d, const char *exec_path) {
  if (exec_path) {
    snprintf(d->exec_path, sizeof d->exec_path, "%s", exec_path);
    return 0;
  }
  ssize_t n = readlink("/proc/self/exe", d->exec_path, sizeof d->exec_path - 1);
  if (n <= 0)
    return -errno;
  d->exec_path[n] = '\0';
  return 0;
}

/* A live upgrade's new process: its end of the socket the running hub hands everything over on. */
static int handoff_fd_from_env(void) {
  const char *v = getenv(HANDOFF_ENV);
  if (v == NULL || v[0] == '\0')
    return -1;
  char *end;
  long fd = strtol(v, &end, 10);
  unsetenv(HANDOFF_ENV); /* not for a later upgrade's child */
  if (*end != '\0' || fd < 0 || fd > INT_MAX || fcntl((int)fd, F_GETFD) < 0)
    return -1;
  fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  return (int)fd;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "token") == 0)
    return sl__token_command(argc - 1, argv + 1, stdout, stderr);
  if (argc > 1 && strcmp(argv[1], "upgrade") == 0)
    return sl__upgrade_command(argc - 1, argv + 1, stdout, stderr);
  int handoff_fd = handoff_fd_from_env();

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
  d.argv = argv;
  d.pid_file = opt.pid_file;
  d.upgrade_timeout = opt.upgrade_timeout;
  if (find_exec(&d, opt.exec_path))
    sl__log(SL_LOG_WARN, "cannot tell this binary's path: SIGUSR2 needs --exec");
  opt.hub.handoff_fd = handoff_fd;
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
    sl__log(SL_LOG_INFO, "sluice %s %s http://%s/.well-known/mercure (port %d)", sl_version(),
            handoff_fd >= 0 ? "took over" : "listening on",
            cfg->listen_count ? cfg->listen[i] : SL_DEFAULT_LISTEN, sl_hub_port(d.hub, i));
  write_pid_file(d.pid_file);
  if (handoff_fd >= 0) {
    /* systemd follows the service to this process (NotifyAccess=all: see deploy/). */
    char state[64];
    snprintf(state, sizeof state, "MAINPID=%ld\nREADY=1", (long)getpid());
    notify(state);
  } else {
    notify("READY=1");
  }

  uv_run(d.loop, UV_RUN_DEFAULT);
  int forced = sl_hub_wait(d.hub);
  remove_pid_file(d.pid_file);
  uv_loop_close(d.loop);
  sl_hub_free(d.hub);
  /* A container's PID 1 that handed its connections over must not end them all by exiting. */
  if (d.handed_off && getpid() == 1)
    forced = sl__init_forward(d.pid_file) != 0;
  sl__options_free(&opt);
  return forced ? 1 : 0;
}
