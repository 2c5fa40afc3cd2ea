/* bench_target.c — URL parsing, the loopback rule and request heads (see bench_target.h). The
 * loopback rule is enforced here and nowhere else: every address the engines connect to comes
 * out of bench_url_parse.
 */
#include "bench_target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

int bench_url_parse(const char *url, bench_url_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (strncasecmp(url, "http://", 7) != 0)
    return fail(err, errlen, "%s: only http:// URLs are supported", url);
  const char *auth = url + 7;
  size_t alen = strcspn(auth, "/?#");
  if (alen == 0 || alen >= sizeof out->host)
    return fail(err, errlen, "%s: missing or oversized host", url);
  memcpy(out->host, auth, alen);
  out->host[alen] = '\0';
  if (strchr(out->host, '@'))
    return fail(err, errlen, "%s: credentials in URLs are not supported", url);

  char host[300];
  const char *port_s = NULL;
  if (out->host[0] == '[') {
    const char *close = strchr(out->host, ']');
    if (close == NULL)
      return fail(err, errlen, "%s: unterminated [IPv6] host", url);
    size_t hl = (size_t)(close - out->host - 1);
    memcpy(host, out->host + 1, hl);
    host[hl] = '\0';
    if (close[1] == ':')
      port_s = close + 2;
    else if (close[1] != '\0')
      return fail(err, errlen, "%s: junk after [IPv6] host", url);
  } else {
    const char *colon = strrchr(out->host, ':');
    size_t hl = colon ? (size_t)(colon - out->host) : alen;
    memcpy(host, out->host, hl);
    host[hl] = '\0';
    port_s = colon ? colon + 1 : NULL;
  }
  unsigned long port = 80;
  if (port_s) {
    char *end;
    port = strtoul(port_s, &end, 10);
    if (*port_s == '\0' || *end != '\0' || port == 0 || port > 65535)
      return fail(err, errlen, "%s: bad port", url);
  }

  struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr.ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->addr.ss;
  if (strcasecmp(host, "localhost") == 0)
    strcpy(host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127)
      return fail(err, errlen, "%s: refusing a non-loopback target (only 127.x.x.x, localhost, [::1])", url);
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    out->addr.len = sizeof *v4;
  } else if (out->host[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
      return fail(err, errlen, "%s: refusing a non-loopback target (only 127.x.x.x, localhost, [::1])", url);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    out->addr.len = sizeof *v6;
  } else {
    return fail(err, errlen, "%s: refusing host '%s': only 127.x.x.x, localhost and [::1] are allowed", url, host);
  }

  const char *rest = auth + alen;
  size_t rlen = strcspn(rest, "#");
  int slash = rlen == 0 || rest[0] != '/';
  out->path = malloc(rlen + 2);
  if (out->path == NULL)
    return fail(err, errlen, "out of memory");
  snprintf(out->path, rlen + 2, "%s%.*s", slash ? "/" : "", (int)rlen, rest);
  return 0;
}

char *bench_pct_encode(const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc(strlen(s) * 3 + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '.' || *p == '_' || *p == '~') {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  *o = '\0';
  return out;
}

/* The URL of one topic: {topic} replaced in a template, or, for a URL without {topic}, the
 * topic added as a query parameter when add_param is set. Returns malloc'd text or NULL. */
static char *topic_url(const char *tmpl, const char *enc, const char *param, int add_param) {
  const char *mark = strstr(tmpl, "{topic}");
  size_t n = strlen(tmpl) + strlen(enc) + strlen(param) + 4;
  char *u = malloc(n);
  if (u == NULL)
    return NULL;
  if (mark)
    snprintf(u, n, "%.*s%s%s", (int)(mark - tmpl), tmpl, enc, mark + 7);
  else if (add_param)
    snprintf(u, n, "%s%c%s=%s", tmpl, strchr(tmpl, '?') ? '&' : '?', param, enc);
  else
    snprintf(u, n, "%s", tmpl);
  return u;
}

static int sub_head(const char *tmpl, const char *enc, const bench_config_t *cfg,
                    bench_addr_t *addr, char **head, size_t *head_len, char *err, size_t errlen) {
  char *u = topic_url(tmpl, enc, cfg->topic_param, 1);
  if (u == NULL)
    return fail(err, errlen, "out of memory");
  bench_url_t url;
  int rc = bench_url_parse(u, &url, err, errlen);
  free(u);
  if (rc < 0)
    return rc;
  *addr = url.addr;
  char auth[64 + 4096] = "";
  if (cfg->sub_jwt)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", cfg->sub_jwt);
  int n = asprintf(head, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
                   "Cache-Control: no-cache\r\n%s", url.path, url.host, auth);
  free(url.path);
  if (n < 0) {
    *head = NULL;  /* asprintf leaves it undefined on failure */
    return fail(err, errlen, "out of memory");
  }
  *head_len = (size_t)n;
  return 0;
}

static int pub_parts(bench_topic_t *tp, const char *tmpl, const char *topic_enc,
                     const bench_config_t *cfg, bench_addr_t *addr, char *err, size_t errlen) {
  char *u = topic_url(tmpl, topic_enc, cfg->topic_param, 0);
  if (u == NULL)
    return fail(err, errlen, "out of memory");
  bench_url_t url;
  int rc = bench_url_parse(u, &url, err, errlen);
  free(u);
  if (rc < 0)
    return rc;
  *addr = url.addr;
  const char *ctype = "application/x-www-form-urlencoded";
  int form = cfg->pub_mode == BENCH_PUB_MERCURE || cfg->pub_mode == BENCH_PUB_FORM;
  if (cfg->pub_mode == BENCH_PUB_NCHAN)
    ctype = "text/plain";
  else if (cfg->pub_mode == BENCH_PUB_RAW)
    ctype = "application/octet-stream";
  char auth[64 + 4096] = "";
  if (cfg->jwt)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", cfg->jwt);
  int n = asprintf(&tp->pub_head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n%s"
                   "Content-Length: ", url.path, url.host, ctype, auth);
  free(url.path);
  if (n < 0) {
    tp->pub_head = NULL;  /* asprintf leaves it undefined on failure */
    return fail(err, errlen, "out of memory");
  }
  tp->pub_head_len = (size_t)n;
  n = form ? asprintf(&tp->pub_body_prefix, "topic=%s&data=", topic_enc)
           : asprintf(&tp->pub_body_prefix, "%s", "");
  if (n < 0) {
    tp->pub_body_prefix = NULL;
    return fail(err, errlen, "out of memory");
  }
  tp->pub_body_prefix_len = (size_t)n;
  return 0;
}

static int same_addr(const bench_addr_t *a, const bench_addr_t *b) {
  return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

int bench_targets_build(bench_targets_t *t, const bench_config_t *cfg, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  t->ntopics = cfg->topics;
  t->topics = calloc(cfg->topics, sizeof *t->topics);
  if (t->topics == NULL)
    return fail(err, errlen, "out of memory");
  const char *sub_tmpl = cfg->sub_url ? cfg->sub_url : cfg->url;
  const char *resub_tmpl = cfg->reconnect_url ? cfg->reconnect_url : sub_tmpl;
  const char *pub_tmpl = cfg->pub_url ? cfg->pub_url : cfg->url;
  for (uint32_t k = 0; k < cfg->topics; k++) {
    bench_topic_t *tp = &t->topics[k];
    char name[512];
    snprintf(name, sizeof name, "%s%u", cfg->topic_prefix, k);
    tp->name_enc = bench_pct_encode(name);
    if (tp->name_enc == NULL)
      return fail(err, errlen, "out of memory");
    int rc = sub_head(sub_tmpl, tp->name_enc, cfg, &tp->sub_addr, &tp->sub_head,
                      &tp->sub_head_len, err, errlen);
    if (rc == 0)
      rc = sub_head(resub_tmpl, tp->name_enc, cfg, &tp->resub_addr, &tp->resub_head,
                    &tp->resub_head_len, err, errlen);
    if (rc == 0 && pub_tmpl) {
      bench_addr_t a;
      rc = pub_parts(tp, pub_tmpl, tp->name_enc, cfg, &a, err, errlen);
      if (rc == 0 && k == 0)
        t->pub_addr = a;
      else if (rc == 0 && !same_addr(&a, &t->pub_addr))
        return fail(err, errlen, "--pub-url: every topic must publish to the same host and port");
    }
    if (rc < 0)
      return rc;
    if (k == 0)
      t->ipv6 = tp->sub_addr.ss.ss_family == AF_INET6;
  }
  return 0;
}

void bench_targets_free(bench_targets_t *t) {
  for (uint32_t k = 0; t->topics && k < t->ntopics; k++) {
    bench_topic_t *tp = &t->topics[k];
    free(tp->name_enc);
    free(tp->sub_head);
    free(tp->resub_head);
    free(tp->pub_head);
    free(tp->pub_body_prefix);
  }
  free(t->topics);
  memset(t, 0, sizeof *t);
}
