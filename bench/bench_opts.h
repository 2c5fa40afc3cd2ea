/* bench_opts.h — sluice-bench's command line: every flag fills one bench_config_t, with the
 * defaults below. Parsing checks values and their combinations; it does not touch the network.
 */
#ifndef BENCH_OPTS_H
#define BENCH_OPTS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define BENCH_DEFAULT_TIMEOUT 120.0        /* seconds: the global deadline */
#define BENCH_DEFAULT_DRAIN_WAIT 2.0       /* seconds after the last ack before counting losses */
#define BENCH_DEFAULT_END_TIMEOUT 30.0     /* seconds after SIGTERM for streams to end */
#define BENCH_DEFAULT_CONNECT_TIMEOUT 10.0 /* seconds for one subscription to get its head */
#define BENCH_DEFAULT_CONCURRENCY 256      /* connection attempts in flight per worker */
#define BENCH_DEFAULT_SIZE 100             /* bytes of payload */
#define BENCH_DEFAULT_RETRY_MS 3000        /* reconnection delay when no retry: was announced */
#define BENCH_DEFAULT_TOPIC_PREFIX "https://bench.sluice.test/t/"
#define BENCH_MAX_SERVER_PIDS 32
#define BENCH_MAX_TOPICS 100000
#define BENCH_MAX_EVENTS 100000000  /* the loss accounting keeps 4 bytes per event */

typedef enum { BENCH_PUB_MERCURE, BENCH_PUB_NCHAN, BENCH_PUB_FORM, BENCH_PUB_RAW } bench_pub_mode_t;
typedef enum { BENCH_MODE_RUN, BENCH_MODE_IDLE, BENCH_MODE_CHURN } bench_mode_t;

typedef struct bench_config_s {
  const char *url;            /* --url: Mercure hub URL (subscribe and publish) */
  const char *sub_url;        /* --sub-url: template with {topic}; overrides --url for GETs */
  const char *pub_url;        /* --pub-url: template with {topic}; overrides --url for POSTs */
  const char *reconnect_url;  /* --reconnect-url: where --resume reconnects (default: sub URL) */
  const char *jwt;            /* --jwt: publisher token (Authorization: Bearer) */
  const char *sub_jwt;        /* --sub-jwt: subscriber token, if the hub wants one */
  const char *topic_prefix;   /* --topic-prefix: topic k is prefix + k */
  const char *topic_param;    /* --topic-param: query parameter for Mercure URLs ("topic") */
  bench_pub_mode_t pub_mode;  /* --pub-mode */
  bench_mode_t mode;          /* --idle / --churn select; default: publish and measure */
  uint64_t subscribers;       /* --subscribers (in churn mode: connections kept in flight) */
  uint64_t events;            /* --events */
  double rate;                /* --rate: events per second, 0 = as fast as acknowledged */
  uint32_t pipeline;          /* --pipeline: publish requests in flight (1) */
  uint32_t size;              /* --size: payload bytes */
  uint32_t topics;            /* --topics */
  double drain_wait;          /* --drain-wait: seconds */
  double timeout;             /* --timeout: seconds, the global deadline */
  double idle_seconds;        /* --idle */
  double churn_seconds;       /* --churn */
  double end_timeout;         /* --end-timeout: seconds */
  double connect_timeout;     /* --connect-timeout: seconds */
  uint64_t signal_after;      /* --signal-after: acks before SIGTERM; 0 = never */
  uint64_t upgrade_after;     /* --upgrade-after: acks before SIGUSR2 (a live upgrade); 0 = never */
  int resume;                 /* --resume */
  int reconnect_now;          /* --reconnect-now: ignore retry:, reconnect at once */
  int keep_publishing;        /* --keep-publishing: after the SIGTERM, the publisher reconnects
                                 (to a server restarted on the same port) and goes on */
  pid_t server_pids[BENCH_MAX_SERVER_PIDS]; /* --server-pid, repeatable; [0] gets SIGTERM */
  int n_server_pids;
  int json;                   /* --json */
  int quiet;                  /* --quiet: no progress bar */
  uint32_t workers;           /* --workers: 0 = as many as file descriptors require */
  uint32_t sources;           /* --sources: source addresses 127.0.0.1..N; 0 = automatic */
  uint32_t concurrency;       /* --connect-concurrency, per worker */
  int self_test;              /* --self-test */
} bench_config_t;

/* Fills cfg from argv. 0; 1 when --help was printed; -EINVAL with a message in err. */
int bench_opts_parse(bench_config_t *cfg, int argc, char **argv, char *err, size_t errlen);
void bench_opts_usage(FILE *out);

#endif
