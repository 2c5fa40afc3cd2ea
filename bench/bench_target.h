/* bench_target.h — where sluice-bench sends what: the URLs of every topic, checked to be on the
 * loopback interface, turned into socket addresses and pre-formatted request heads, so that the
 * engines only copy bytes. Built once before any worker is forked; read-only afterwards.
 */
#ifndef BENCH_TARGET_H
#define BENCH_TARGET_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "bench_opts.h"

typedef struct bench_addr_s {
  struct sockaddr_storage ss;
  socklen_t len;
} bench_addr_t;

typedef struct bench_url_s {
  char host[300];  /* Host header value: the authority as written */
  char *path;      /* path and query, heap-allocated */
  bench_addr_t addr;
} bench_url_t;

/* One topic's requests. Subscription heads end with a CRLF after the last header but lack the
 * blank line, so a Last-Event-ID header can be appended before it. */
typedef struct bench_topic_s {
  char *name_enc;       /* percent-encoded topic */
  bench_addr_t sub_addr;
  char *sub_head;
  size_t sub_head_len;
  bench_addr_t resub_addr;  /* where --resume reconnects */
  char *resub_head;
  size_t resub_head_len;
  char *pub_head;       /* POST head up to and including "Content-Length: " */
  size_t pub_head_len;
  char *pub_body_prefix;  /* body before the payload: "topic=...&data=" or "" */
  size_t pub_body_prefix_len;
} bench_topic_t;

typedef struct bench_targets_s {
  bench_topic_t *topics;
  uint32_t ntopics;
  bench_addr_t pub_addr;  /* the one address every publish goes to */
  int ipv6;               /* the subscription targets are [::1] */
} bench_targets_t;

/* Parses an http:// URL whose host is 127.x.x.x, localhost or [::1]. 0 or -EINVAL with a message
 * in err. out->path must be freed by the caller. */
int bench_url_parse(const char *url, bench_url_t *out, char *err, size_t errlen);
/* Percent-encodes s (all but unreserved characters); returns a malloc'd string or NULL. */
char *bench_pct_encode(const char *s);
int bench_targets_build(bench_targets_t *t, const bench_config_t *cfg, char *err, size_t errlen);
void bench_targets_free(bench_targets_t *t);

#endif
