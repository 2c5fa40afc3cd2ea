/* options.c — the daemon's command line. Flags, SLUICE_<NAME> environment variables and a config
 * file all describe the same settings, listed once in the table below, and all fill one
 * sl_options_t through one function (apply), so a setting behaves the same wherever it is given.
 * Precedence is implemented by applying the sources from weakest to strongest: defaults, then the
 * config file, then the environment, then the flags. `sluice token` is token.c. This file does not start anything, open sockets or
 * resolve names; it checks syntax and ranges and leaves the meaning of each value to the hub.
 */
#include "daemon/options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "auth/auth.h"
#include "common/origin.h"

#define MIN_BYTES 1024
/* Seconds above this are refused: no timeout needs to exceed ~31 years, and the bound keeps
 * every later conversion to milliseconds far from overflow. */
#define MAX_SECONDS 1000000000.0


typedef enum {
  KIND_LISTEN,
  KIND_WORKERS,
  KIND_STRING,  /* a const char * field; the stored copy is owned */
  KIND_BOOL,    /* an int field; a bare flag means 1 */
  KIND_COUNT,   /* a size_t field: a non-negative integer */
  KIND_BYTES,   /* a size_t field: an integer with an optional K/M/G suffix, >= MIN_BYTES */
  KIND_SECONDS, /* a double field: a non-negative decimal */
  KIND_ORIGINS, /* a const char * field: origins separated by ", "; repeatable, and a stronger
                   source replaces what weaker ones gave */
  KIND_FSYNC,   /* an sl_fsync_t field: always, batch or off */
  KIND_CONFIG,
  KIND_HELP,
  KIND_VERSION,
} kind_t;

/* Where a setting may come from. */
enum { FROM_FLAG = 1, FROM_ENV = 2, FROM_FILE = 4, FROM_ALL = 7 };

typedef struct {
  const char *name;     /* the flag without its dashes, and the config file key */
  kind_t kind;
  size_t offset;        /* of the field in sl_options_t */
  int sources;          /* FROM_* bits */
  int positive;         /* KIND_SECONDS: 0 is refused because it would end every connection */
  double max;           /* KIND_SECONDS, KIND_COUNT: the largest value allowed; 0 = the kind's */
  const char *metavar;  /* the value's placeholder in --help, NULL for bare flags */
  const char *help;
} option_def_t;

#define HUB(field) offsetof(sl_options_t, hub.field)
#define OPT(field) offsetof(sl_options_t, field)

static const option_def_t options[] = {
  {"listen", KIND_LISTEN, HUB(listen), FROM_ALL, 0, 0, "HOST:PORT",
   "address to accept connections on; repeatable"},
  {"workers", KIND_WORKERS, HUB(workers), FROM_ALL, 0, 0, "N",
   "event-loop threads, 1-256; 0 = one per core this process may run on"},
  {"jwt-key", KIND_STRING, HUB(jwt_key), FROM_ALL, 0, 0, "KEY",
   "key that publisher and subscriber tokens are verified with: an HMAC secret (HS256/384/512), "
   "or a PEM public key or certificate (a value starting with -----BEGIN)"},
  {"publisher-jwt-key", KIND_STRING, HUB(publisher_jwt_key), FROM_ALL, 0, 0, "KEY",
   "key for publisher tokens (overrides --jwt-key)"},
  {"subscriber-jwt-key", KIND_STRING, HUB(subscriber_jwt_key), FROM_ALL, 0, 0, "KEY",
   "key for subscriber tokens (overrides --jwt-key)"},
  {"jwt-key-file", KIND_STRING, HUB(jwt_key_file), FROM_ALL, 0, 0, "FILE",
   "a PEM public key or certificate (RSA: RS/PS256/384/512; EC P-256/384/521: ES256/384/512; "
   "Ed25519: EdDSA), or a file holding an HMAC secret; for both roles"},
  {"publisher-jwt-key-file", KIND_STRING, HUB(publisher_jwt_key_file), FROM_ALL, 0, 0, "FILE",
   "key file for publisher tokens (overrides --jwt-key-file)"},
  {"subscriber-jwt-key-file", KIND_STRING, HUB(subscriber_jwt_key_file), FROM_ALL, 0, 0, "FILE",
   "key file for subscriber tokens (overrides --jwt-key-file)"},
  {"jwks-file", KIND_STRING, HUB(jwks_file), FROM_ALL, 0, 0, "FILE",
   "a JWK Set (RFC 7517: RSA, EC, OKP Ed25519, oct keys) for both roles; a token's kid picks "
   "its key (rotation), one without kid tries every key its alg fits, an unknown kid is "
   "refused"},
  {"publisher-jwks-file", KIND_STRING, HUB(publisher_jwks_file), FROM_ALL, 0, 0, "FILE",
   "JWK Set for publisher tokens (overrides --jwks-file)"},
  {"subscriber-jwks-file", KIND_STRING, HUB(subscriber_jwks_file), FROM_ALL, 0, 0, "FILE",
   "JWK Set for subscriber tokens (overrides --jwks-file)"},
  {"jwt-audience", KIND_STRING, HUB(jwt_audience), FROM_ALL, 0, 0, "AUD",
   "the hub's resource identifier, which every token's \"aud\" must hold; default: the "
   "--public-url (with --jwt-legacy: not checked unless set)"},
  {"jwt-issuer", KIND_STRING, HUB(jwt_issuer), FROM_ALL, 0, 0, "ISS",
   "the trusted issuer: tokens must carry exactly this \"iss\" (without it any iss is "
   "accepted, but one is still required unless --jwt-legacy)"},
  {"jwt-leeway", KIND_SECONDS, HUB(jwt_leeway), FROM_ALL, 0, SL_MAX_JWT_LEEWAY, "SECONDS",
   "clock skew allowed when checking a token's exp, nbf and iat"},
  {"jwt-legacy", KIND_BOOL, HUB(jwt_legacy), FROM_ALL, 0, 0, NULL,
   "also accept pre-standard Mercure tokens: typ JWT or none, no exp, no iss, aud unchecked "
   "unless --jwt-audience is set, and grants in the \"mercure\" claim"},
  {"public-url", KIND_STRING, HUB(public_url), FROM_ALL, 0, 0, "URL",
   "the hub's URL as clients reach it (http(s)://host[:port]/path); default "
   "http://<first --listen>/.well-known/mercure"},
  {"allow-weak-key", KIND_BOOL, HUB(allow_weak_key), FROM_ALL, 0, 0, NULL,
   "accept HMAC secrets (from a key, a key file or a JWK Set) shorter than 32 bytes (256 "
   "bits); for tests only"},
  {"anonymous", KIND_BOOL, HUB(anonymous), FROM_ALL, 0, 0, NULL,
   "let subscribers without a token receive public updates"},
  {"cookie-name", KIND_STRING, HUB(cookie_name), FROM_ALL, 0, 0, "NAME",
   "the cookie a browser's token comes in (the only one read once set); default "
   "__Secure-mercure_access_token, and the pre-standard mercureAuthorization"},
  {"publish-origin", KIND_ORIGINS, HUB(publish_origins), FROM_ALL, 0, 0, "ORIGIN",
   "origin (scheme://host[:port]) whose pages may publish with the cookie; repeatable; "
   "default the origin of --public-url, or a page naming the request's Host"},
  {"cors-origin", KIND_ORIGINS, HUB(cors_origins), FROM_ALL, 0, 0, "ORIGIN",
   "origin whose pages may subscribe and publish across origins (CORS, with the cookie); "
   "repeatable; '*' alone allows every origin without credentials; default none"},
  {"subscriptions", KIND_BOOL, HUB(subscriptions), FROM_ALL, 0, 0, NULL,
   "active subscriptions: each subscription's start and end is a private update of type "
   "mercure under <hub path>/subscriptions/, where the subscription API answers"},
  {"subscriptions-history", KIND_COUNT, HUB(subscriptions_history), FROM_ALL, 0,
   SL_MAX_HISTORY_SIZE, "N",
   "with --subscriptions: subscription events kept for resume, apart from --history-size (they "
   "never push an application update out, nor it them); 0 = none; default 10000"},
  {"history-size", KIND_COUNT, HUB(history_size), FROM_ALL, 0, SL_MAX_HISTORY_SIZE, "N",
   "events kept for Last-Event-ID resume (see --data-dir); 0 = none"},
  {"history-max-bytes", KIND_BYTES, HUB(history_max_bytes), FROM_ALL, 0, 0, "BYTES",
   "memory the retained updates may take (subscription events: as much again, apart); "
   "default an eighth of what the process may use "
   "(16 MiB to 4 GiB)"},
  {"heartbeat", KIND_SECONDS, HUB(heartbeat), FROM_ALL, 0, 0, "SECONDS",
   "interval of keep-alive comments; 0 = none"},
  {"max-connections", KIND_COUNT, HUB(max_connections), FROM_ALL, 0, 0, "N",
   "connections held at once; past it a new one is answered 503; 0 = the open-files limit "
   "less 64"},
  {"max-conns-per-ip", KIND_COUNT, HUB(max_conns_per_ip), FROM_ALL, 0, 0, "N",
   "connections one client address may hold; past it a new one is answered 429; 0 = no limit "
   "(set it when clients connect directly, not through a proxy)"},
  {"rate-per-ip", KIND_COUNT, HUB(rate_per_ip), FROM_ALL, 0, 0, "N",
   "publishes and subscriptions one client address may start per second (bursts of N); past "
   "it 429; 0 = no limit"},
  {"rate-per-token", KIND_COUNT, HUB(rate_per_token), FROM_ALL, 0, 0, "N",
   "publishes and subscriptions one token may start per second (bursts of N); past it 429; "
   "0 = no limit"},
  {"max-queue", KIND_BYTES, HUB(max_queue), FROM_ALL, 0, 0, "BYTES",
   "bytes queued for one slow subscriber before it is disconnected"},
  {"max-body", KIND_BYTES, HUB(max_body), FROM_ALL, 0, SL_MAX_MAX_BODY, "BYTES",
   "largest publish request body"},
  {"write-timeout", KIND_SECONDS, HUB(write_timeout), FROM_ALL, 1, 0, "SECONDS",
   "how long a subscriber may stall a started write"},
  {"header-timeout", KIND_SECONDS, HUB(header_timeout), FROM_ALL, 1, 0, "SECONDS",
   "time allowed to send request headers (408 after)"},
  {"idle-timeout", KIND_SECONDS, HUB(idle_timeout), FROM_ALL, 1, 0, "SECONDS",
   "how long an idle keep-alive connection stays open"},
  {"drain-delay", KIND_SECONDS, HUB(drain_delay), FROM_ALL, 0, 0, "SECONDS",
   "full service kept after SIGTERM before listeners close (readiness goes down at once)"},
  {"shutdown-timeout", KIND_SECONDS, HUB(shutdown_timeout), FROM_ALL, 0, 0, "SECONDS",
   "time the drain may take before remaining connections are closed hard"},
  {"reconnect-spread", KIND_SECONDS, HUB(reconnect_spread), FROM_ALL, 0, 0, "SECONDS",
   "window over which drained clients are told to reconnect"},
  {"linger", KIND_SECONDS, HUB(linger), FROM_ALL, 0, 0, "SECONDS",
   "wait for a client's FIN after closing a stream"},
  {"flush-window", KIND_SECONDS, HUB(flush_window), FROM_ALL, 0, SL_MAX_FLUSH_WINDOW, "SECONDS",
   "when updates come closer together than this, gather them into one write per subscriber; "
   "0 = write each at once"},
  {"max-pending", KIND_COUNT, HUB(max_pending), FROM_ALL, 0, SL_MAX_MAX_PENDING, "N",
   "updates accepted but not yet written to every subscriber before a publisher's answer "
   "waits for delivery to catch up (back-pressure); 0 = never wait"},
  {"data-dir", KIND_STRING, HUB(data_dir), FROM_ALL, 0, 0, "DIR",
   "keep history on disk (LMDB) in DIR, made 0700 if missing: resumes survive restarts and "
   "crashes; a publish is answered 200 once committed; one process per DIR"},
  {"fsync", KIND_FSYNC, HUB(fsync), FROM_ALL, 0, 0, "always|batch|off",
   "with --data-dir: always = sync each group commit before answering (survives power loss); "
   "batch = sync every 100 ms (power loss: at most 100 ms lost); off = never (process crash "
   "only)"},
  {"history-max-age", KIND_SECONDS, HUB(history_max_age), FROM_ALL, 0, 0, "SECONDS",
   "with --data-dir: drop updates older than this (--history-size applies too); 0 = no limit"},
  {"data-max-size", KIND_BYTES, HUB(data_max_size), FROM_ALL, 0, 0, "BYTES",
   "with --data-dir: the most disk the history may take; past it the oldest updates make room"},
  {"redis", KIND_STRING, HUB(redis_url), FROM_ALL, 0, 0, "URL",
   "redis://[:PASSWORD@]HOST[:PORT][/DB]: history in one Redis stream that every hub on it "
   "delivers, in its order (scale-out); 200 once Redis has the update, 503 while it is "
   "unreachable; no rediss:// (no TLS in Debian 12's hiredis)"},
  {"redis-stream", KIND_STRING, HUB(redis_stream), FROM_ALL, 0, 0, "KEY",
   "with --redis: the stream's key (its id index: KEY:ids); on Redis Cluster give it a hash "
   "tag, e.g. {sluice}"},
  {"redis-password", KIND_STRING, HUB(redis_password), FROM_ALL, 0, 0, "PASSWORD",
   "with --redis: the AUTH password when the URL carries none (better in SLUICE_REDIS_PASSWORD "
   "or the config file than on the command line)"},
  /* A config file naming another config file would be a second, hidden precedence level. */
  {"config", KIND_CONFIG, OPT(config_file), FROM_FLAG | FROM_ENV, 0, 0, "FILE",
   "read settings from FILE"},
  {"log-file", KIND_STRING, OPT(log_file), FROM_ALL, 0, 0, "PATH",
   "append the log to PATH, reopened on SIGHUP"},
  {"verbose", KIND_BOOL, OPT(verbose), FROM_ALL, 0, 0, NULL, "log every connection"},
  {"pid-file", KIND_STRING, OPT(pid_file), FROM_ALL, 0, 0, "PATH",
   "write the pid to PATH (the process that takes over in an upgrade writes its own); removed "
   "at a clean exit"},
  {"exec", KIND_STRING, OPT(exec_path), FROM_ALL, 0, 0, "PATH",
   "the binary SIGUSR2 starts for a live upgrade, with the same arguments; default the path "
   "this one was started from"},
  {"upgrade-timeout", KIND_SECONDS, OPT(upgrade_timeout), FROM_ALL, 1, 0, "SECONDS",
   "how long a live upgrade (SIGUSR2) may take before this process gives up and serves on"},
  /* Never from the environment: a variable left in a service's environment must not turn the
   * daemon into a program that prints and exits. */
  {"help", KIND_HELP, OPT(show_help), FROM_FLAG, 0, 0, NULL, "print this help and exit"},
  {"version", KIND_VERSION, OPT(show_version), FROM_FLAG, 0, 0, NULL, "print the version and exit"},
};

#define OPTION_COUNT (sizeof options / sizeof options[0])

/* The state of one sl__options_parse call. */
typedef struct {
  sl_options_t *opt;
  int listen_source;  /* FROM_* of the source whose addresses are in hub.listen, 0 = defaults */
  int list_source[2]; /* the same for the KIND_ORIGINS settings, by origins_slot() */
  char *err;
  size_t errlen;
} parser_t;

static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (err == NULL || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Copies v for display: control characters become '?' and long values are cut, so a value
 * cannot break the one-line message it appears in. */
const char *sl__options_shown(const char *v, char *buf, size_t cap) {
  size_t i = 0;
  for (; v[i] != '\0' && i < SL_SHOWN_VALUE_MAX && i + 4 < cap; i++) {
    unsigned char c = (unsigned char)v[i];
    buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (v[i] != '\0') {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

static const option_def_t *find_option(const char *name, size_t len) {
  for (size_t i = 0; i < OPTION_COUNT; i++)
    if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
      return &options[i];
  return NULL;
}

static int own(sl_options_t *opt, const char *s, size_t len, const char **out) {
  char **grown = realloc(opt->owned, (opt->owned_count + 1) * sizeof *grown);
  if (grown == NULL) return -ENOMEM;
  opt->owned = grown;
  char *copy = strndup(s, len);
  if (copy == NULL) return -ENOMEM;
  opt->owned[opt->owned_count++] = copy;
  *out = copy;
  return 0;
}

/* Digits only, no sign, no spaces: strtoull would accept " -1" and wrap it. -EINVAL for a
 * non-number (checked first, so "999...9x" is called what it is), -ERANGE above max. */
int sl__options_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (len == 0) return -EINVAL;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9') return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -ERANGE;
    v = v * 10 + d;
  }
  if (v > max) return -ERANGE;
  *out = v;
  return 0;
}

/* Decimal seconds: "30", "0.5", ".25", "2.". No sign, exponent, hex, inf or nan, which strtod
 * alone would accept. */
static int parse_seconds(const char *s, double *out) {
  size_t digits = 0, dots = 0, i = 0;
  for (; s[i] != '\0'; i++) {
    if (s[i] >= '0' && s[i] <= '9')
      digits++;
    else if (s[i] == '.' && dots == 0)
      dots++;
    else
      return -EINVAL;
  }
  if (digits == 0) return -EINVAL;
  double v = strtod(s, NULL);
  if (v > MAX_SECONDS) return -ERANGE;
  *out = v;
  return 0;
}

/* An integer with an optional K, M or G suffix (powers of 1024, either case). */
static int parse_bytes(const char *s, uint64_t *out) {
  size_t len = strlen(s);
  unsigned shift = 0;
  if (len > 0) {
    switch (s[len - 1]) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      default: break;
    }
  }
  if (shift != 0) len--;
  uint64_t v;
  int rc = sl__options_parse_uint(s, len, UINT64_MAX, &v);
  if (rc != 0) return rc;
  if (v > (SIZE_MAX >> shift)) return -ERANGE;
  *out = v << shift;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -EINVAL;
}

/* HOST:PORT where HOST is a dotted IPv4 address, [IPv6] or localhost, and PORT is 0-65535. */
static int check_listen(const char *s, size_t len) {
  const char *end = s + len;
  const char *host, *host_end, *port;
  char text[INET6_ADDRSTRLEN + 1];
  unsigned char addr[16];
  uint64_t number;
  int family;

  if (len > 0 && s[0] == '[') {
    family = AF_INET6;
    host = s + 1;
    host_end = memchr(host, ']', (size_t)(end - host));
    if (host_end == NULL || host_end + 1 == end || host_end[1] != ':') return -EINVAL;
    port = host_end + 2;
  } else {
    family = AF_INET;
    host = s;
    host_end = memchr(s, ':', len);
    if (host_end == NULL) return -EINVAL;
    port = host_end + 1;
  }
  if (sl__options_parse_uint(port, (size_t)(end - port), 65535, &number) != 0) return -EINVAL;
  size_t host_len = (size_t)(host_end - host);
  if (host_len == 0 || host_len >= sizeof text) return -EINVAL;
  memcpy(text, host, host_len);
  text[host_len] = '\0';
  if (family == AF_INET && strcmp(text, "localhost") == 0) return 0;
  return inet_pton(family, text, addr) == 1 ? 0 : -EINVAL;
}

/* Adds one source's comma-separated addresses. The first address from a stronger source
 * replaces what weaker ones gave; within one source, addresses accumulate. */
static int apply_listen(parser_t *p, const char *where, const char *value, int source) {
  sl_config_t *hub = &p->opt->hub;
  char shown_buf[SL_SHOWN_VALUE_MAX + 8];
  if (p->listen_source != source) {
    hub->listen_count = 0;
    p->listen_source = source;
  }
  const char *s = value;
  for (;;) {
    const char *end = strchr(s, ',');
    size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
    const char *item = s;
    while (len > 0 && isspace((unsigned char)item[0])) item++, len--;
    while (len > 0 && isspace((unsigned char)item[len - 1])) len--;
    if (check_listen(item, len) != 0) {
      char one[SL_SHOWN_VALUE_MAX + 1];
      size_t n = len < SL_SHOWN_VALUE_MAX ? len : SL_SHOWN_VALUE_MAX;
      memcpy(one, item, n);
      one[n] = '\0';
      set_error(p->err, p->errlen,
                "%s: '%s' is not HOST:PORT (HOST: IPv4 address, [IPv6 address] or localhost;"
                " PORT: 0-65535)", where, sl__options_shown(one, shown_buf, sizeof shown_buf));
      return -EINVAL;
    }
    if (hub->listen_count == SL_MAX_LISTEN) {
      set_error(p->err, p->errlen, "%s: more than %d addresses", where, SL_MAX_LISTEN);
      return -EINVAL;
    }
    int rc = own(p->opt, item, len, &hub->listen[hub->listen_count]);
    if (rc != 0) return rc;
    hub->listen_count++;
    if (end == NULL) return 0;
    s = end + 1;
  }
}

/* Which list_source a KIND_ORIGINS setting uses. */
static int origins_slot(const option_def_t *def) {
  return def->offset == HUB(cors_origins) ? 1 : 0;
}

/* Adds one source's origins (checked here, so that a typo is named with the flag that gave it)
 * to the list def stores: within a source they accumulate, and a stronger source replaces what
 * weaker ones gave. */
static int apply_origins(parser_t *p, const option_def_t *def, const char *where,
                         const char *value, int source) {
  const char **field = (const char **)((char *)p->opt + def->offset);
  char why[200];
  sl_origins_t check;
  int allow_any = def->offset == HUB(cors_origins);
  int *from = &p->list_source[origins_slot(def)];
  if (*from != source) {
    *field = NULL;
    *from = source;
  }
  size_t old = *field ? strlen(*field) : 0, n = strlen(value);
  char *joined = malloc(old + n + 3);
  if (joined == NULL)
    return -ENOMEM;
  snprintf(joined, old + n + 3, "%s%s%s", *field ? *field : "", *field ? ", " : "", value);
  int rc = sl__origins_parse(&check, joined, allow_any, why, sizeof why);
  if (rc == 0 && check.count == 0 && !check.any) {
    snprintf(why, sizeof why, "no origin given");
    rc = -EINVAL;
  }
  sl__origins_free(&check);
  if (rc == 0)
    rc = own(p->opt, joined, strlen(joined), field);
  else if (rc == -EINVAL)
    set_error(p->err, p->errlen, "%s: %s", where, why);
  free(joined);
  return rc;
}

/* Stores value (NULL for a bare boolean flag) into the field def describes. where names the
 * setting as the user wrote it ("--heartbeat", "SLUICE_HEARTBEAT", "sluice.conf:3: heartbeat")
 * and starts every message. */
static int apply(parser_t *p, const option_def_t *def, const char *where, const char *value,
                 int source) {
  char *field = (char *)p->opt + def->offset;
  char buf[SL_SHOWN_VALUE_MAX + 8];
  uint64_t u;
  double d;
  int b, rc;

  if (value == NULL) {
    if (def->kind == KIND_BOOL || def->kind == KIND_HELP || def->kind == KIND_VERSION) {
      *(int *)field = 1;
      return 0;
    }
    set_error(p->err, p->errlen, "%s: missing value", where);
    return -EINVAL;
  }
  if (value[0] == '\0') {
    set_error(p->err, p->errlen, "%s: empty value", where);
    return -EINVAL;
  }
  switch (def->kind) {
    case KIND_LISTEN:
      return apply_listen(p, where, value, source);
    case KIND_ORIGINS:
      return apply_origins(p, def, where, value, source);
    case KIND_WORKERS:
      if (sl__options_parse_uint(value, strlen(value), SL_MAX_WORKERS, &u) != 0) {
        set_error(p->err, p->errlen,
                  "%s: '%s' is not a worker count (1-%d, or 0 for one per core)", where,
                  sl__options_shown(value, buf, sizeof buf), SL_MAX_WORKERS);
        return -EINVAL;
      }
      *(unsigned *)field = (unsigned)u;
      return 0;
    case KIND_STRING:
    case KIND_CONFIG:
      return own(p->opt, value, strlen(value), (const char **)field);
    case KIND_BOOL:
    case KIND_HELP:
    case KIND_VERSION:
      if (parse_bool(value, &b) != 0) {
        set_error(p->err, p->errlen,
                  "%s: '%s' is not a boolean (use 1/0, true/false, yes/no or on/off)", where,
                  sl__options_shown(value, buf, sizeof buf));
        return -EINVAL;
      }
      *(int *)field = b;
      return 0;
    case KIND_COUNT:
      rc = sl__options_parse_uint(value, strlen(value), def->max > 0 ? (uint64_t)def->max : SIZE_MAX, &u);
      if (rc == -ERANGE && def->max > 0) {
        set_error(p->err, p->errlen, "%s: '%s' is too large (at most %.0f)", where,
                  sl__options_shown(value, buf, sizeof buf), def->max);
        return -EINVAL;
      }
      if (rc == -ERANGE) {
        set_error(p->err, p->errlen, "%s: '%s' is too large", where, sl__options_shown(value, buf, sizeof buf));
        return -EINVAL;
      }
      if (rc != 0) {
        set_error(p->err, p->errlen, "%s: '%s' is not a non-negative integer", where,
                  sl__options_shown(value, buf, sizeof buf));
        return -EINVAL;
      }
      *(size_t *)field = (size_t)u;
      return 0;
    case KIND_BYTES:
      rc = parse_bytes(value, &u);
      if (rc == -ERANGE) {
        set_error(p->err, p->errlen, "%s: '%s' is too large", where, sl__options_shown(value, buf, sizeof buf));
        return -EINVAL;
      }
      if (rc != 0) {
        set_error(p->err, p->errlen,
                  "%s: '%s' is not a size in bytes (an integer, optionally with K, M or G)", where,
                  sl__options_shown(value, buf, sizeof buf));
        return -EINVAL;
      }
      if (u < MIN_BYTES) {
        set_error(p->err, p->errlen, "%s: '%s' is below the minimum of %d bytes", where,
                  sl__options_shown(value, buf, sizeof buf), MIN_BYTES);
        return -EINVAL;
      }
      if (def->max > 0 && (double)u > def->max) {
        set_error(p->err, p->errlen, "%s: '%s' is too large (at most %.0f bytes)", where,
                  sl__options_shown(value, buf, sizeof buf), def->max);
        return -EINVAL;
      }
      *(size_t *)field = (size_t)u;
      return 0;
    case KIND_SECONDS:
      rc = parse_seconds(value, &d);
      if (rc == -ERANGE) {
        set_error(p->err, p->errlen, "%s: '%s' is too large (at most %.0f seconds)", where,
                  sl__options_shown(value, buf, sizeof buf), MAX_SECONDS);
        return -EINVAL;
      }
      if (rc != 0) {
        set_error(p->err, p->errlen,
                  "%s: '%s' is not a non-negative number of seconds (e.g. 30 or 0.5)", where,
                  sl__options_shown(value, buf, sizeof buf));
        return -EINVAL;
      }
      if (def->max > 0 && d > def->max) {
        set_error(p->err, p->errlen, "%s: '%s' is too large (at most %g seconds)", where,
                  sl__options_shown(value, buf, sizeof buf), def->max);
        return -EINVAL;
      }
      if (def->positive && d == 0.0) {
        set_error(p->err, p->errlen, "%s: must be greater than 0 seconds", where);
        return -EINVAL;
      }
      *(double *)field = d;
      return 0;
    case KIND_FSYNC:
      if (strcmp(value, "always") == 0)
        *(sl_fsync_t *)field = SL_FSYNC_ALWAYS;
      else if (strcmp(value, "batch") == 0)
        *(sl_fsync_t *)field = SL_FSYNC_BATCH;
      else if (strcmp(value, "off") == 0)
        *(sl_fsync_t *)field = SL_FSYNC_OFF;
      else {
        set_error(p->err, p->errlen, "%s: '%s' is not a durability level (always, batch or off)",
                  where, sl__options_shown(value, buf, sizeof buf));
        return -EINVAL;
      }
      return 0;
  }
  return -EINVAL;
}

/* Reads the config file: "name = value" or "name value" per line; blank lines and lines whose
 * first non-blank character is '#' are skipped. '#' elsewhere is part of the value, because keys
 * may contain it. One pair of surrounding quotes is removed from a value. */
static int apply_file(parser_t *p, const char *path, const char *named_by) {
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  unsigned lineno = 0;
  int rc = 0;

  if (f == NULL) {
    set_error(p->err, p->errlen, "%s: cannot open config file '%s': %s", named_by, path,
              strerror(errno));
    return -EINVAL;
  }
  while ((n = getline(&line, &cap, f)) != -1) {
    lineno++;
    if ((size_t)n != strlen(line)) {
      set_error(p->err, p->errlen, "%s:%u: line contains a NUL byte", path, lineno);
      rc = -EINVAL;
      break;
    }
    while (n > 0 && isspace((unsigned char)line[n - 1])) line[--n] = '\0';
    char *s = line;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '\0' || *s == '#') continue;

    char *name = s;
    while (*s != '\0' && *s != '=' && !isspace((unsigned char)*s)) s++;
    size_t name_len = (size_t)(s - name);
    while (isspace((unsigned char)*s)) s++;
    int has_equals = *s == '=';
    if (has_equals) s++;
    while (isspace((unsigned char)*s)) s++;
    char *value = s;
    size_t vlen = strlen(value);
    if (vlen >= 2 && (value[0] == '"' || value[0] == '\'') && value[vlen - 1] == value[0]) {
      value[vlen - 1] = '\0';
      value++;
    }

    char where[96];
    snprintf(where, sizeof where, "%s:%u: %.*s", path, lineno,
             name_len > 40 ? 40 : (int)name_len, name);
    const option_def_t *def = find_option(name, name_len);
    if (def == NULL) {
      set_error(p->err, p->errlen, "%s:%u: unknown setting '%.*s' (see --help)", path, lineno,
                name_len > 40 ? 40 : (int)name_len, name);
      rc = -EINVAL;
      break;
    }
    if (!(def->sources & FROM_FILE)) {
      set_error(p->err, p->errlen, "%s: cannot be set in a config file", where);
      rc = -EINVAL;
      break;
    }
    if (*value == '\0' && (has_equals || def->kind != KIND_BOOL)) {
      set_error(p->err, p->errlen, "%s: missing value", where);
      rc = -EINVAL;
      break;
    }
    /* A bare boolean name ("anonymous") means true, as the bare flag does. */
    rc = apply(p, def, where, *value == '\0' ? NULL : value, FROM_FILE);
    if (rc != 0) break;
  }
  if (rc == 0 && ferror(f)) {
    set_error(p->err, p->errlen, "%s: read error: %s", path, strerror(errno));
    rc = -EINVAL;
  }
  free(line);
  fclose(f);
  return rc;
}

/* SLUICE_ followed by the name in upper case with '-' as '_'. An empty variable counts as unset,
 * so a service manager can blank a setting without removing the line. Variables with other
 * SLUICE_ names are never looked at. */
static int apply_env(parser_t *p) {
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    const option_def_t *def = &options[i];
    if (!(def->sources & FROM_ENV) || def->kind == KIND_CONFIG) continue;
    char var[64] = "SLUICE_";
    size_t k = strlen(var);
    for (const char *c = def->name; *c != '\0' && k + 1 < sizeof var; c++)
      var[k++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
    var[k] = '\0';
    const char *value = getenv(var);
    if (value == NULL || value[0] == '\0') continue;
    int rc = apply(p, def, var, value, FROM_ENV);
    if (rc != 0) return rc;
  }
  return 0;
}

/* One flag as it appeared in argv, kept until the weaker sources have been applied. */
typedef struct {
  const option_def_t *def;
  const char *value;  /* NULL for a bare boolean flag */
} flag_t;

void sl__options_split_flag(const char *arg, sl_split_flag_t *out) {
  const char *name = arg + 2;
  const char *eq = strchr(name, '=');
  out->name = name;
  out->name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
  out->value = eq != NULL ? eq + 1 : NULL;
  out->has_value = eq != NULL;
}

/* Whether argv[i + 1] is the value of flag argv[i]. An argument that itself starts with "--" is
 * not taken: `--jwt-key --anonymous` is far more likely a forgotten key than a key. */
int sl__options_takes_next(int argc, char **argv, int i) {
  return i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0;
}

static int parse_flags(parser_t *p, int argc, char **argv, flag_t *flags, size_t *nflags) {
  char buf[SL_SHOWN_VALUE_MAX + 8];
  *nflags = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0) arg = "--help";
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
      if (arg[0] == '-' && arg[1] != '\0')
        set_error(p->err, p->errlen, "unknown flag '%s' (see --help)",
                  sl__options_shown(arg, buf, sizeof buf));
      else
        set_error(p->err, p->errlen,
                  "unexpected argument '%s': sluice takes only flags (see --help)",
                  sl__options_shown(arg, buf, sizeof buf));
      return -EINVAL;
    }
    sl_split_flag_t s;
    sl__options_split_flag(arg, &s);
    const option_def_t *def = find_option(s.name, s.name_len);
    if (def == NULL) {
      char name[SL_SHOWN_VALUE_MAX + 1];
      size_t n = s.name_len < SL_SHOWN_VALUE_MAX ? s.name_len : SL_SHOWN_VALUE_MAX;
      memcpy(name, s.name, n);
      name[n] = '\0';
      set_error(p->err, p->errlen, "unknown flag '--%s' (see --help)",
                sl__options_shown(name, buf, sizeof buf));
      return -EINVAL;
    }
    const char *value = s.value;
    int bare = def->kind == KIND_BOOL || def->kind == KIND_HELP || def->kind == KIND_VERSION;
    if (!s.has_value && !bare) {
      if (!sl__options_takes_next(argc, argv, i)) {
        set_error(p->err, p->errlen, "--%s: missing value", def->name);
        return -EINVAL;
      }
      value = argv[++i];
    }
    flags[*nflags].def = def;
    flags[*nflags].value = value;
    (*nflags)++;
  }
  return 0;
}

int sl__options_parse(sl_options_t *opt, int argc, char **argv, char *err, size_t errlen) {
  parser_t p = {.opt = opt, .listen_source = 0, .err = err, .errlen = errlen};
  flag_t *flags = NULL;
  size_t nflags = 0;
  const char *config = NULL, *config_named_by = NULL;
  char where[64];
  int rc;

  memset(opt, 0, sizeof *opt);
  sl_config_init(&opt->hub);
  opt->upgrade_timeout = SL_DEFAULT_UPGRADE_TIMEOUT;
  set_error(err, errlen, "%s", "");

  flags = calloc(argc > 0 ? (size_t)argc : 1, sizeof *flags);
  if (flags == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  rc = parse_flags(&p, argc, argv, flags, &nflags);
  if (rc != 0) goto fail;

  /* --help and --version print and exit; they must work even when the environment or the
   * config file is broken, because that is when someone reads the help. */
  for (size_t i = 0; i < nflags; i++) {
    snprintf(where, sizeof where, "--%s", flags[i].def->name);
    if (flags[i].def->kind == KIND_HELP || flags[i].def->kind == KIND_VERSION) {
      rc = apply(&p, flags[i].def, where, flags[i].value, FROM_FLAG);
      if (rc != 0) goto fail;
    }
    if (flags[i].def->kind == KIND_CONFIG) {
      config = flags[i].value;
      config_named_by = "--config";
    }
  }
  if (opt->show_help || opt->show_version) goto done;

  if (config == NULL && getenv("SLUICE_CONFIG") != NULL && getenv("SLUICE_CONFIG")[0] != '\0') {
    config = getenv("SLUICE_CONFIG");
    config_named_by = "SLUICE_CONFIG";
  }
  if (config != NULL) {
    if (config[0] == '\0') {
      set_error(err, errlen, "%s: empty value", config_named_by);
      rc = -EINVAL;
      goto fail;
    }
    rc = own(opt, config, strlen(config), &opt->config_file);
    if (rc != 0) goto fail;
    rc = apply_file(&p, opt->config_file, config_named_by);
    if (rc != 0) goto fail;
  }
  rc = apply_env(&p);
  if (rc != 0) goto fail;
  for (size_t i = 0; i < nflags; i++) {
    if (flags[i].def->kind == KIND_CONFIG) continue;
    snprintf(where, sizeof where, "--%s", flags[i].def->name);
    rc = apply(&p, flags[i].def, where, flags[i].value, FROM_FLAG);
    if (rc != 0) goto fail;
  }

done:
  free(flags);
  return 0;

fail:
  if (rc == -ENOMEM) set_error(err, errlen, "out of memory while reading the options");
  free(flags);
  sl__options_free(opt);
  sl_config_init(&opt->hub);
  return rc;
}

void sl__options_free(sl_options_t *opt) {
  for (size_t i = 0; i < opt->owned_count; i++) free(opt->owned[i]);
  free(opt->owned);
  memset(opt, 0, sizeof *opt);
}

/* "4M" for 4194304: defaults are round numbers, and that is how a user would write them. */
static void format_bytes(size_t v, char *buf, size_t cap) {
  if (v != 0 && v % (1u << 30) == 0)
    snprintf(buf, cap, "%zuG", v >> 30);
  else if (v != 0 && v % (1u << 20) == 0)
    snprintf(buf, cap, "%zuM", v >> 20);
  else if (v != 0 && v % (1u << 10) == 0)
    snprintf(buf, cap, "%zuK", v >> 10);
  else
    snprintf(buf, cap, "%zu", v);
}

/* One flag of --help: the flag in a column of USAGE_INDENT, its text wrapped at USAGE_WIDTH. */
#define USAGE_INDENT 31
#define USAGE_WIDTH 79
static void print_wrapped(FILE *out, const char *left, const char *text) {
  int col = fprintf(out, "  %-28s", left);
  const char *w = text;
  while (*w != '\0') {
    size_t len = strcspn(w, " ");
    if (col + 1 + (int)len > USAGE_WIDTH && col > USAGE_INDENT) {
      fprintf(out, "\n%*s", USAGE_INDENT - 1, "");
      col = USAGE_INDENT - 1;
    }
    col += fprintf(out, " %.*s", (int)len, w);
    w += len;
    while (*w == ' ') w++;
  }
  fputc('\n', out);
}

void sl__options_usage(FILE *out) {
  sl_options_t defaults;
  memset(&defaults, 0, sizeof defaults);
  sl_config_init(&defaults.hub);
  defaults.upgrade_timeout = SL_DEFAULT_UPGRADE_TIMEOUT;

  fputs("Usage: sluice [FLAGS]\n"
        "       sluice token [TOKEN FLAGS]\n"
        "       sluice upgrade --pid-file FILE [--timeout SECONDS]\n"
        "\n"
        "sluice is a Server-Sent Events hub speaking the Mercure protocol.\n"
        "\n"
        "Flags (--flag VALUE and --flag=VALUE are the same):\n", out);
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    const option_def_t *def = &options[i];
    const char *field = (const char *)&defaults + def->offset;
    char left[48], dflt[64];
    snprintf(left, sizeof left, "--%s%s%s", def->name, def->metavar ? " " : "",
             def->metavar ? def->metavar : "");
    dflt[0] = '\0';
    switch (def->kind) {
      case KIND_LISTEN:
        snprintf(dflt, sizeof dflt, "; up to %d (default %s)", SL_MAX_LISTEN, SL_DEFAULT_LISTEN);
        break;
      case KIND_WORKERS:
        snprintf(dflt, sizeof dflt, " (default %u)", *(const unsigned *)field);
        break;
      case KIND_STRING:
        if (def->offset != HUB(cookie_name)) /* its help says what the default is */
          snprintf(dflt, sizeof dflt, " (default: %s)",
                   def->offset == OPT(log_file)       ? "standard error"
                   : def->offset == OPT(exec_path)    ? "this binary's path"
                   : def->offset == HUB(redis_stream) ? SL_DEFAULT_REDIS_STREAM
                                                      : "none");
        break;
      case KIND_ORIGINS:
      case KIND_BOOL:
        snprintf(dflt, sizeof dflt, " (default %s)", *(const int *)field ? "on" : "off");
        break;
      case KIND_COUNT:
        snprintf(dflt, sizeof dflt, " (default %zu)", *(const size_t *)field);
        break;
      case KIND_BYTES: {
        char b[32];
        format_bytes(*(const size_t *)field, b, sizeof b);
        /* 0 means "derived" (its help says from what), not zero bytes. */
        if (*(const size_t *)field == 0)
          snprintf(dflt, sizeof dflt, "; at least 1K");
        else
          snprintf(dflt, sizeof dflt, "; at least 1K (default %s)", b);
        break;
      }
      case KIND_SECONDS:
        snprintf(dflt, sizeof dflt, " (default %gs)", *(const double *)field);
        break;
      case KIND_FSYNC: {
        sl_fsync_t f = *(const sl_fsync_t *)field;
        snprintf(dflt, sizeof dflt, " (default %s)",
                 f == SL_FSYNC_ALWAYS ? "always" : f == SL_FSYNC_OFF ? "off" : "batch");
        break;
      }
      case KIND_CONFIG:
      case KIND_HELP:
      case KIND_VERSION:
        break;
    }
    char text[256];
    snprintf(text, sizeof text, "%s%s", def->help, dflt);
    print_wrapped(out, left, text);
  }
  fputs("\n"
        "SECONDS may have decimals (0.5). BYTES is an integer with an optional K, M or G\n"
        "suffix (powers of 1024). Every flag but --help and --version can also be set:\n"
        "  - in the environment as SLUICE_<NAME>, the name in capitals with '-' as '_'\n"
        "    (SLUICE_JWT_KEY, SLUICE_HISTORY_SIZE); an empty variable counts as unset;\n"
        "  - in the config file (--config FILE or SLUICE_CONFIG): one 'name = value' or\n"
        "    'name value' per line, the name being the flag without dashes\n"
        "    (jwt-key = secret); lines starting with # are comments; quotes around a\n"
        "    value are removed.\n"
        "On/off settings take 1/0, true/false, yes/no or on/off there. Listen addresses\n"
        "may be comma-separated. Flags win over the environment, which wins over the\n"
        "config file.\n"
        "\n"
        "sluice token: print a signed token for testing and development.\n"
        "  --key KEY            signing key (default: $SLUICE_PUBLISHER_JWT_KEY when\n"
        "                       publishing is granted, $SLUICE_SUBSCRIBER_JWT_KEY when\n"
        "                       only subscribing is, else $SLUICE_JWT_KEY)\n"
        "  --publish TOPIC      grant publishing to TOPIC (\"*\" = any); repeatable\n"
        "  --subscribe TOPIC    grant subscribing to TOPIC (\"*\" = any); repeatable\n"
        "  --exp SECONDS        lifetime; 0 = never expires, for --jwt-legacy hubs only\n"
        "                       (default 3600)\n"
        "  --audience AUD       set the \"aud\" claim: the hub's --jwt-audience, else its\n"
        "                       public URL (https://hub.example/.well-known/mercure)\n"
        "  --issuer ISS         set the \"iss\" claim (needed unless the hub is legacy)\n"
        "  The token is HS256 with typ at+jwt, as the Mercure spec asks.\n"
        "  Example: sluice token --key \"$SLUICE_JWT_KEY\" --subscribe '*'\n", out);
}
