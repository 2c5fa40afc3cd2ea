/* embed.c — a hub inside an application: the smallest complete program built on libsluice.
 *
 * It starts a hub on 127.0.0.1 (any free port, or the port given as argv[1]) that lets anyone
 * subscribe and HTTP publishers in with a token signed by EXAMPLE_JWT_KEY, prints "port N", then
 * takes one command per line on stdin:
 *
 *   publish TOPIC DATA   publish DATA (the rest of the line) to TOPIC through the API;
 *                        answers "id ID" (the id the hub gave it) or "error publish: WHY"
 *   shutdown SECONDS     drain the hub: every subscriber gets its final close frame and a clean
 *                        end; connections still open after SECONDS are closed hard
 *   handoff              upgrade in place: start this program again and hand its hub, every
 *                        connection included, to the new process (sl_hub_handoff); answers
 *                        "handed pid N", then drains what stayed and exits, while the new
 *                        process prints "port N" and reads the next commands from the same
 *                        stdin; or "error handoff: WHY", and this one serves on
 *
 * End of input means "shutdown 5". When the drain is over it prints the drain report
 * ("drained ...") and the result of sl_hub_wait() ("wait N"), then exits 0 when every connection
 * ended cleanly, 1 when some had to be forced, 2 when it could not start.
 *
 * Each answer is one line on stdout, flushed at once, so another program can drive this one
 * through pipes (tests/integration/test_embed.py does). The hub itself logs to stderr.
 *
 * Build it against an installed libsluice:
 *   cc -std=c11 embed.c $(pkg-config --cflags --libs sluice) -o embed
 * Try it:
 *   ./embed 8080
 *   curl -N 'http://127.0.0.1:8080/.well-known/mercure?topic=urn:example:news'   (elsewhere)
 *   publish urn:example:news hello                                              (on stdin)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline(), F_DUPFD_CLOEXEC, environ */
#endif

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <sluice.h>

/* The HS256 key HTTP publishers (and subscribers who send a token) must sign with. A real
 * application reads it from its secret store; it is a constant here to keep the example short.
 * Their tokens follow the spec's profile (typ at+jwt, exp, iss, and aud holding the hub's
 * resource identifier: cfg.jwt_audience, else cfg.public_url, whose default names the configured
 * listen address, port 0 included; set one of them when the port is chosen at start), unless
 * cfg.jwt_legacy is set. */
#define EXAMPLE_JWT_KEY "sluice-embed-example-key-change-me-0123456789"

/* What end of input on stdin means: a drain of at most this many seconds. */
#define EOF_SHUTDOWN_TIMEOUT 5.0

/* One answer line on stdout. Called from the main thread and, once, from the hub thread that runs
 * the shutdown callback: stdio locks the stream for each call, so lines never interleave. */
__attribute__((format(printf, 1, 2))) static void answer(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  flockfile(stdout);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
  funlockfile(stdout);
  va_end(ap);
}

/* The shutdown callback. It runs once, on a hub thread, when the drain is over; it must not call
 * sl_hub_wait() or sl_hub_free() (the main thread does, once sl_hub_wait() returns). */
static void on_drained(sl_hub_t *hub, const sl_drain_report_t *rep, void *arg) {
  (void)hub;
  (void)arg;
  answer("drained streams_drained=%" PRIu64 " connections_closed=%" PRIu64
         " updates_flushed=%" PRIu64 " forced=%" PRIu64 " seconds=%.3f",
         rep->streams_drained, rep->connections_closed, rep->updates_flushed, rep->forced,
         rep->seconds);
}

/* "publish TOPIC DATA": args is "TOPIC DATA". The hub copies what it needs before returning, so
 * the update may point into the line buffer. */
static void publish(sl_hub_t *hub, char *args) {
  char *topic = args;
  char *data = strchr(args, ' ');
  if (data != NULL)
    *data++ = '\0';
  if (*topic == '\0') {
    answer("error usage: publish TOPIC DATA");
    return;
  }
  const char *topics[] = {topic};
  sl_update_t update = {
    .topics = topics,
    .topic_count = 1,
    .data = data,                              /* NULL: an update without data */
    .data_len = data != NULL ? strlen(data) : 0,
    /* .id = NULL: the hub generates urn:uuid:...; .type, .retry, .is_private left unset */
  };
  char id[256];
  int r = sl_hub_publish(hub, &update, id, sizeof id);
  if (r)
    answer("error publish: %s", sl_strerror(r));
  else
    answer("id %s", id);
}

/* The hand-off's end, told by a hub thread to the main one. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done, err;
} handed = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void on_handed(sl_hub_t *hub, int err, void *arg) {
  (void)hub;
  (void)arg;
  pthread_mutex_lock(&handed.lock);
  handed.done = 1;
  handed.err = err;
  pthread_cond_signal(&handed.cond);
  pthread_mutex_unlock(&handed.lock);
}

#define HANDOFF_ENV "EMBED_HANDOFF_FD"
#define HANDOFF_FD 3

/* "handoff": this program started again (self: its path) with one end of a socket pair as fd 3,
 * and the hub handed to it. 1 when the new process took over (this one then only ends), 0 when
 * not (this one serves on). */
static int handoff(sl_hub_t *hub, const char *self) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
    answer("error handoff: socketpair failed");
    return 0;
  }
  /* Well above 3, so that the dup2 to 3 in the child is a real one (it clears close-on-exec). */
  int theirs = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
  close(sv[1]);
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 2, sizeof *env);
  char var[] = HANDOFF_ENV "=3";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, theirs, HANDOFF_FD);
  pid_t pid = -1;
  int r = -1;
  if (env && theirs >= 0) {
    memcpy(env, environ, n * sizeof *env);
    env[n] = var;
    char *const argv[] = {(char *)self, NULL};
    r = posix_spawn(&pid, self, &fa, NULL, argv, env);
  }
  posix_spawn_file_actions_destroy(&fa);
  free(env);
  if (theirs >= 0)
    close(theirs);
  if (r != 0) {
    close(sv[0]);
    answer("error handoff: cannot start %s", self);
    return 0;
  }
  /* From now on the socket is the hub's; the callback says how it went. */
  if ((r = sl_hub_handoff(hub, sv[0], 10.0, on_handed, NULL))) {
    close(sv[0]);
    answer("error handoff: %s", sl_strerror(r));
    return 0;
  }
  pthread_mutex_lock(&handed.lock);
  while (!handed.done)
    pthread_cond_wait(&handed.cond, &handed.lock);
  handed.done = 0;
  r = handed.err;
  pthread_mutex_unlock(&handed.lock);
  if (r) {
    answer("error handoff: %s", sl_strerror(r));
    return 0;
  }
  answer("handed pid %ld", (long)pid);
  return 1;
}

/* "shutdown SECONDS": 0 and *timeout set when SECONDS is a number of seconds, else -1. */
static int parse_timeout(const char *arg, double *timeout) {
  char *end;
  double t = strtod(arg, &end);
  if (end == arg || *end != '\0' || !isfinite(t) || t < 0)
    return -1;
  *timeout = t;
  return 0;
}

/* Reads commands until "shutdown", a hand-off or end of input; returns the drain timeout to use. */
static double serve_commands(sl_hub_t *hub, const char *self) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  double timeout = EOF_SHUTDOWN_TIMEOUT;
  while ((len = getline(&line, &cap, stdin)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    if (strncmp(line, "publish ", 8) == 0) {
      publish(hub, line + 8);
    } else if (strcmp(line, "handoff") == 0) {
      if (handoff(hub, self)) {
        timeout = 0; /* what stayed here was ending already */
        break;
      }
    } else if (strncmp(line, "shutdown ", 9) == 0) {
      if (parse_timeout(line + 9, &timeout) == 0)
        break;
      answer("error usage: shutdown SECONDS (a number >= 0)");
    } else if (len > 0) {
      answer("error unknown command (publish TOPIC DATA | shutdown SECONDS | handoff)");
    }
  }
  free(line);
  return timeout;
}

/* argv[1], when given, must be a port number; 0 lets the kernel choose. */
static int parse_port(const char *arg, unsigned *port) {
  char *end;
  unsigned long p = strtoul(arg, &end, 10);
  if (end == arg || *end != '\0' || arg[0] == '-' || p > 65535)
    return -1;
  *port = (unsigned)p;
  return 0;
}

int main(int argc, char **argv) {
  unsigned port = 0;
  if (argc > 2 || (argc == 2 && parse_port(argv[1], &port))) {
    fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
    return 2;
  }

  /* Start from the defaults (SL_DEFAULT_* in sluice.h) and change only what this program needs.
   * The strings are copied by sl_hub_new(), so a stack buffer is fine. */
  char listen[32];
  snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
  sl_config_t cfg;
  sl_config_init(&cfg);
  cfg.listen[0] = listen;
  cfg.listen_count = 1;
  cfg.anonymous = 1; /* subscribers need no token */
  cfg.jwt_key = EXAMPLE_JWT_KEY;
  /* Started by "handoff": take over from the running process instead of binding. */
  const char *fd = getenv(HANDOFF_ENV);
  if (fd) {
    cfg.handoff_fd = atoi(fd);
    unsetenv(HANDOFF_ENV);
  }

  sl_hub_t *hub;
  int r = sl_hub_new(&cfg, &hub);
  if (r) {
    fprintf(stderr, "embed: bad configuration: %s\n", sl_strerror(r));
    return 2;
  }
  if ((r = sl_hub_start(hub))) {
    fprintf(stderr, "embed: cannot listen on %s: %s\n", listen, sl_strerror(r));
    sl_hub_free(hub); /* never started: there are no threads to wait for */
    return 2;
  }

  /* With port 0 the kernel chose one: sl_hub_port() says which. */
  int bound = sl_hub_port(hub, 0);
  if (bound < 0)
    fprintf(stderr, "embed: no port: %s\n", sl_strerror(bound));
  else
    answer("port %d", bound);

  /* The hub serves HTTP on its own threads; this thread is free to do the application's work. */
  double timeout = bound < 0 ? 0 : serve_commands(hub, argv[0]);

  if ((r = sl_hub_shutdown(hub, timeout, on_drained, NULL))) {
    /* No drain began, so sl_hub_wait() would never return: leave the hub to process exit. */
    fprintf(stderr, "embed: cannot shut down: %s\n", sl_strerror(r));
    return 1;
  }
  /* Returns once every hub thread has ended; the callback has run by then. */
  int forced = sl_hub_wait(hub);
  answer("wait %d", forced);
  sl_hub_free(hub);
  return forced ? 1 : 0;
}
