/* bench_opts.c — flag parsing for sluice-bench (see bench_opts.h). Every numeric flag is range
 * checked here so that the engines can trust the config; URLs are checked later, when the targets
 * are built, because templates only become URLs once a topic is put in.
 */
#include "bench_opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
  O_URL = 256, O_SUB_URL, O_PUB_URL, O_RECONNECT_URL, O_JWT, O_SUB_JWT, O_TOPIC_PREFIX,
  O_TOPIC_PARAM, O_PUB_MODE, O_SUBSCRIBERS, O_EVENTS, O_RATE, O_PIPELINE, O_SIZE, O_TOPICS,
  O_DRAIN_WAIT, O_TIMEOUT, O_IDLE, O_CHURN, O_END_TIMEOUT, O_CONNECT_TIMEOUT, O_SIGNAL_AFTER,
  O_UPGRADE_AFTER,
  O_RESUME, O_RECONNECT_NOW, O_KEEP_PUBLISHING, O_SERVER_PID, O_JSON, O_QUIET, O_WORKERS, O_SOURCES,
  O_CONCURRENCY, O_SELF_TEST, O_HELP,
};

static const struct option long_opts[] = {
  {"url", required_argument, NULL, O_URL},
  {"sub-url", required_argument, NULL, O_SUB_URL},
  {"pub-url", required_argument, NULL, O_PUB_URL},
  {"reconnect-url", required_argument, NULL, O_RECONNECT_URL},
  {"jwt", required_argument, NULL, O_JWT},
  {"sub-jwt", required_argument, NULL, O_SUB_JWT},
  {"topic-prefix", required_argument, NULL, O_TOPIC_PREFIX},
  {"topic-param", required_argument, NULL, O_TOPIC_PARAM},
  {"pub-mode", required_argument, NULL, O_PUB_MODE},
  {"subscribers", required_argument, NULL, O_SUBSCRIBERS},
  {"events", required_argument, NULL, O_EVENTS},
  {"rate", required_argument, NULL, O_RATE},
  {"pipeline", required_argument, NULL, O_PIPELINE},
  {"size", required_argument, NULL, O_SIZE},
  {"topics", required_argument, NULL, O_TOPICS},
  {"drain-wait", required_argument, NULL, O_DRAIN_WAIT},
  {"timeout", required_argument, NULL, O_TIMEOUT},
  {"idle", required_argument, NULL, O_IDLE},
  {"churn", required_argument, NULL, O_CHURN},
  {"end-timeout", required_argument, NULL, O_END_TIMEOUT},
  {"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
  {"signal-after", required_argument, NULL, O_SIGNAL_AFTER},
  {"upgrade-after", required_argument, NULL, O_UPGRADE_AFTER},
  {"resume", no_argument, NULL, O_RESUME},
  {"reconnect-now", no_argument, NULL, O_RECONNECT_NOW},
  {"keep-publishing", no_argument, NULL, O_KEEP_PUBLISHING},
  {"server-pid", required_argument, NULL, O_SERVER_PID},
  {"json", no_argument, NULL, O_JSON},
  {"quiet", no_argument, NULL, O_QUIET},
  {"workers", required_argument, NULL, O_WORKERS},
  {"sources", required_argument, NULL, O_SOURCES},
  {"connect-concurrency", required_argument, NULL, O_CONCURRENCY},
  {"self-test", no_argument, NULL, O_SELF_TEST},
  {"help", no_argument, NULL, O_HELP},
  {NULL, 0, NULL, 0},
};

void bench_opts_usage(FILE *out) {
  fputs(
    "usage: sluice-bench --url URL [options]      (see bench/README.md)\n"
    "targets (loopback only):\n"
    "  --url URL               Mercure hub URL: GET URL?topic=T, POST URL\n"
    "  --sub-url TEMPLATE      subscribe URL, {topic} replaced by the percent-encoded topic\n"
    "  --pub-url TEMPLATE      publish URL, same substitution\n"
    "  --pub-mode MODE         mercure (form + Bearer), form (form: topic, data),\n"
    "                          nchan or raw (the payload is the body)      [mercure]\n"
    "  --jwt TOKEN             publisher JWT;  --sub-jwt TOKEN  subscriber JWT\n"
    "  --topic-prefix P        topic k is P<k>        [" BENCH_DEFAULT_TOPIC_PREFIX "]\n"
    "  --topic-param NAME      query parameter for Mercure subscriptions [topic]\n"
    "load:\n"
    "  --subscribers N  --topics K  --events N  --size BYTES [100]\n"
    "  --rate R                events/s, 0 = as fast as acknowledged [0]\n"
    "  --pipeline K            publish requests in flight [1]\n"
    "  --drain-wait S [2]  --timeout S [120]  --connect-timeout S [10]\n"
    "  --workers N  --sources N  --connect-concurrency N [256]\n"
    "modes:\n"
    "  --idle S                connect, publish nothing, wait S, report memory\n"
    "  --churn S               open and close subscriptions for S seconds\n"
    "  --signal-after N        SIGTERM the first --server-pid after N acks, report how and\n"
    "                          when (ms after the signal) each stream ended\n"
    "  --end-timeout S [30]    --resume  --reconnect-url URL  --reconnect-now\n"
    "  --keep-publishing       after --signal-after, publish on to the restarted server\n"
    "  --upgrade-after N       SIGUSR2 the first --server-pid after N acks (a live upgrade)\n"
    "                          and go on publishing; streams that end are disconnects\n"
    "report:\n"
    "  --server-pid PID        (repeatable) server CPU and memory from /proc\n"
    "  --json  --quiet  --self-test  --help\n"
    "exit: 0 ran clean, 1 losses/duplicates/reordering/failures, 2 usage error\n",
    out);
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  char *end;
  errno = 0;
  if (*s == '-' || *s == '\0')
    return -EINVAL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end != '\0' || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

static int parse_seconds(const char *s, double max, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end != '\0' || *s == '\0' || !isfinite(v) || v < 0 || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

int bench_opts_parse(bench_config_t *c, int argc, char **argv, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  c->topic_prefix = BENCH_DEFAULT_TOPIC_PREFIX;
  c->topic_param = "topic";
  c->pub_mode = BENCH_PUB_MERCURE;
  c->mode = BENCH_MODE_RUN;
  c->subscribers = 1;
  c->pipeline = 1;
  c->size = BENCH_DEFAULT_SIZE;
  c->topics = 1;
  c->drain_wait = BENCH_DEFAULT_DRAIN_WAIT;
  c->timeout = BENCH_DEFAULT_TIMEOUT;
  c->end_timeout = BENCH_DEFAULT_END_TIMEOUT;
  c->connect_timeout = BENCH_DEFAULT_CONNECT_TIMEOUT;
  c->concurrency = BENCH_DEFAULT_CONCURRENCY;
  int have_subscribers = 0, have_events = 0, modes = 0;

  optind = 1;
  opterr = 0;
  for (;;) {
    int o = getopt_long(argc, argv, "", long_opts, NULL);
    if (o == -1)
      break;
    const char *a = optarg;
    uint64_t u = 0;
    int rc = 0;
    switch (o) {
    case O_URL: c->url = a; break;
    case O_SUB_URL: c->sub_url = a; break;
    case O_PUB_URL: c->pub_url = a; break;
    case O_RECONNECT_URL: c->reconnect_url = a; break;
    case O_JWT: c->jwt = a; break;
    case O_SUB_JWT: c->sub_jwt = a; break;
    case O_TOPIC_PREFIX: c->topic_prefix = a; break;
    case O_TOPIC_PARAM: c->topic_param = a; break;
    case O_PUB_MODE:
      if (strcmp(a, "mercure") == 0) c->pub_mode = BENCH_PUB_MERCURE;
      else if (strcmp(a, "nchan") == 0) c->pub_mode = BENCH_PUB_NCHAN;
      else if (strcmp(a, "form") == 0) c->pub_mode = BENCH_PUB_FORM;
      else if (strcmp(a, "raw") == 0) c->pub_mode = BENCH_PUB_RAW;
      else return fail(err, errlen, "--pub-mode %s: expected mercure, nchan, form or raw", a);
      break;
    case O_SUBSCRIBERS: rc = parse_u64(a, 10000000, &c->subscribers); have_subscribers = 1; break;
    case O_EVENTS: rc = parse_u64(a, BENCH_MAX_EVENTS, &c->events); have_events = 1; break;
    case O_RATE: rc = parse_seconds(a, 1e9, &c->rate); break;
    case O_PIPELINE: rc = parse_u64(a, 4096, &u); c->pipeline = (uint32_t)u; if (!rc && u == 0) rc = -EINVAL; break;
    case O_SIZE: rc = parse_u64(a, 16u << 20, &u); c->size = (uint32_t)u; break;
    case O_TOPICS: rc = parse_u64(a, BENCH_MAX_TOPICS, &u); c->topics = (uint32_t)u; if (!rc && u == 0) rc = -EINVAL; break;
    case O_DRAIN_WAIT: rc = parse_seconds(a, 3600, &c->drain_wait); break;
    case O_TIMEOUT: rc = parse_seconds(a, 86400, &c->timeout); if (!rc && c->timeout <= 0) rc = -EINVAL; break;
    case O_IDLE: rc = parse_seconds(a, 86400, &c->idle_seconds); c->mode = BENCH_MODE_IDLE; modes++; break;
    case O_CHURN: rc = parse_seconds(a, 86400, &c->churn_seconds); c->mode = BENCH_MODE_CHURN; modes++; break;
    case O_END_TIMEOUT: rc = parse_seconds(a, 86400, &c->end_timeout); break;
    case O_CONNECT_TIMEOUT: rc = parse_seconds(a, 3600, &c->connect_timeout); break;
    case O_SIGNAL_AFTER: rc = parse_u64(a, UINT32_MAX, &c->signal_after); if (!rc && c->signal_after == 0) rc = -EINVAL; break;
    case O_UPGRADE_AFTER: rc = parse_u64(a, UINT32_MAX, &c->upgrade_after); if (!rc && c->upgrade_after == 0) rc = -EINVAL; break;
    case O_RESUME: c->resume = 1; break;
    case O_RECONNECT_NOW: c->reconnect_now = 1; break;
    case O_KEEP_PUBLISHING: c->keep_publishing = 1; break;
    case O_SERVER_PID:
      if (c->n_server_pids == BENCH_MAX_SERVER_PIDS)
        return fail(err, errlen, "--server-pid given more than %d times", BENCH_MAX_SERVER_PIDS);
      rc = parse_u64(a, 1u << 30, &u);
      if (!rc && u == 0) rc = -EINVAL;
      c->server_pids[c->n_server_pids++] = (pid_t)u;
      break;
    case O_JSON: c->json = 1; break;
    case O_QUIET: c->quiet = 1; break;
    case O_WORKERS: rc = parse_u64(a, 256, &u); c->workers = (uint32_t)u; break;
    case O_SOURCES: rc = parse_u64(a, 254, &u); c->sources = (uint32_t)u; break;
    case O_CONCURRENCY: rc = parse_u64(a, 100000, &u); c->concurrency = (uint32_t)u; if (!rc && u == 0) rc = -EINVAL; break;
    case O_SELF_TEST: c->self_test = 1; break;
    case O_HELP: bench_opts_usage(stdout); return 1;
    default:
      return fail(err, errlen, "unknown or incomplete option %s (see --help)", argv[optind - 1]);
    }
    if (rc < 0)
      return fail(err, errlen, "bad value '%s' for %s", a ? a : "", argv[optind - 1]);
  }
  if (optind < argc)
    return fail(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
  if (c->self_test)
    return 0;

  if (c->url == NULL && c->sub_url == NULL)
    return fail(err, errlen, "--url (or --sub-url and --pub-url) is required");
  if (modes > 1)
    return fail(err, errlen, "--idle and --churn are separate runs: give one of them");
  if (c->mode == BENCH_MODE_RUN) {
    if (!have_events)
      return fail(err, errlen, "--events N is required (or --idle S / --churn S)");
    if (c->url == NULL && c->pub_url == NULL && c->events > 0)
      return fail(err, errlen, "--pub-url is required with --sub-url");
  } else {
    if (have_events && c->events > 0)
      return fail(err, errlen, "--events cannot be combined with %s",
                  c->mode == BENCH_MODE_IDLE ? "--idle" : "--churn");
    c->events = 0;
    if (c->signal_after || c->resume || c->upgrade_after)
      return fail(err, errlen, "--signal-after, --upgrade-after and --resume need a publishing "
                  "run, not %s",
                  c->mode == BENCH_MODE_IDLE ? "--idle" : "--churn");
  }
  if (c->mode != BENCH_MODE_RUN && c->idle_seconds + c->churn_seconds + 5 > c->timeout)
    return fail(err, errlen, "--timeout %.0f is too short for %s %.0f: give at least 5 s more",
                c->timeout, c->mode == BENCH_MODE_IDLE ? "--idle" : "--churn",
                c->idle_seconds + c->churn_seconds);
  if (c->mode == BENCH_MODE_CHURN && !have_subscribers)
    c->subscribers = 64;
  if (c->signal_after) {
    if (c->n_server_pids == 0)
      return fail(err, errlen, "--signal-after needs --server-pid PID (the process to SIGTERM)");
    if (c->signal_after > c->events)
      return fail(err, errlen, "--signal-after exceeds --events");
  }
  if (c->upgrade_after) {
    if (c->n_server_pids == 0)
      return fail(err, errlen, "--upgrade-after needs --server-pid PID (the process to SIGUSR2)");
    if (c->upgrade_after > c->events)
      return fail(err, errlen, "--upgrade-after exceeds --events");
    if (c->signal_after)
      return fail(err, errlen, "--upgrade-after and --signal-after are separate runs");
  }
  if (c->keep_publishing && !c->signal_after)
    return fail(err, errlen, "--keep-publishing needs --signal-after N");
  if (c->resume && !c->signal_after && !c->upgrade_after && c->reconnect_url == NULL)
    return fail(err, errlen, "--resume needs --signal-after N, --upgrade-after N or "
                "--reconnect-url URL");
  if (c->pub_mode == BENCH_PUB_MERCURE && c->jwt == NULL && c->events > 0)
    return fail(err, errlen, "--pub-mode mercure needs --jwt TOKEN (or use --pub-mode form)");
  return 0;
}
