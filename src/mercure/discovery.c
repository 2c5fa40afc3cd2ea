/* discovery.c — the protected resource metadata document and the Bearer challenges that point to
 * it (see discovery.h). */
#include "mercure/discovery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "common/text.h"

/* Appends s as a JSON string's content. */
static void json_text(char **p, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      *(*p)++ = '\\';
    *(*p)++ = *s;
  }
}

int sl__discovery_init(sl_discovery_t *d, const sl_config_t *cfg) {
  memset(d, 0, sizeof *d);
  const char *url = cfg->public_url;
  const char *auth = url ? strstr(url, "://") : NULL;
  const char *path = auth ? strchr(auth + 3, '/') : NULL;
  if (path == NULL)
    return -EINVAL;
  d->hub_url = url;
  size_t origin_len = (size_t)(path - url), path_len = strlen(path);
  size_t n = SL_LITLEN(SL_METADATA_PREFIX) + path_len + 1;
  d->metadata_path = malloc(n);
  d->metadata_url = malloc(origin_len + n);
  const char *cookie = cfg->cookie_name ? cfg->cookie_name : SL_COOKIE_NAME;
  static const char head[] = "{\"resource\":\"";
  static const char body[] =
      "\",\"authorization_details_types_supported\":[\"https://mercure.rocks/authorization-detail\"]"
      ",\"bearer_methods_supported\":[\"header\"],\"mercure_cookie\":\"";
  static const char matchers[] = "\",\"mercure_matcher_types_supported\":[" SL_MATCHER_TYPES_JSON "]";
  static const char subs[] = ",\"mercure_subscriptions\":true";
  size_t cap = sizeof head + sizeof body + sizeof matchers + sizeof subs + 2 * strlen(url) +
               2 * strlen(cookie) + 4;
  d->document = malloc(cap);
  if (d->metadata_path == NULL || d->metadata_url == NULL || d->document == NULL) {
    sl__discovery_free(d);
    return -ENOMEM;
  }
  snprintf(d->metadata_path, n, SL_METADATA_PREFIX "%s", path);
  snprintf(d->metadata_url, origin_len + n, "%.*s" SL_METADATA_PREFIX "%s", (int)origin_len, url,
           path);
  char *p = d->document;
  memcpy(p, head, SL_LITLEN(head));
  p += SL_LITLEN(head);
  json_text(&p, url);
  memcpy(p, body, SL_LITLEN(body));
  p += SL_LITLEN(body);
  json_text(&p, cookie);
  memcpy(p, matchers, SL_LITLEN(matchers));
  p += SL_LITLEN(matchers);
  if (cfg->subscriptions) {
    memcpy(p, subs, SL_LITLEN(subs));
    p += SL_LITLEN(subs);
  }
  *p++ = '}';
  *p++ = '\n';
  *p = '\0';
  d->document_len = (size_t)(p - d->document);
  return 0;
}

void sl__discovery_free(sl_discovery_t *d) {
  free(d->metadata_path);
  free(d->metadata_url);
  free(d->document);
  memset(d, 0, sizeof *d);
}

void sl__discovery_serve(sl_conn_t *c, sl_request_t *r, void *data) {
  const sl_discovery_t *d = data;
  (void)r;
  sl__http_respond(c, 200, "Access-Control-Allow-Origin: *\r\nCache-Control: max-age=60\r\n",
                   "application/json", d->document, d->document_len);
}

void sl__discovery_challenge(const sl_discovery_t *d, const char *error, const char *description,
                             char *buf, size_t cap) {
  const char *meta = d ? d->metadata_url : NULL;
  int n = snprintf(buf, cap, "WWW-Authenticate: Bearer%s%s%s", meta ? " resource_metadata=\"" : "",
                   meta ? meta : "", meta ? "\"" : "");
  if (n >= 0 && (size_t)n < cap && error)
    n += snprintf(buf + n, cap - (size_t)n, "%s error=\"%s\"", meta ? "," : "", error);
  if (n >= 0 && (size_t)n < cap && error && description && description[0])
    n += snprintf(buf + n, cap - (size_t)n, ", error_description=\"%s\"", description);
  if (n >= 0 && (size_t)n < cap)
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
  if (n < 0 || (size_t)n >= cap)
    snprintf(buf, cap, "WWW-Authenticate: Bearer\r\n");
}

/* Appends ; name="value" (value escaped as an RFC 9110 quoted-string) at *n; 0, or -1 when it
 * does not fit. */
static int link_param(char *buf, size_t cap, size_t *n, const char *name, const char *value) {
  if (value == NULL)
    return 0;
  int w = snprintf(buf + *n, cap - *n, "; %s=\"", name);
  if (w < 0 || (size_t)w >= cap - *n)
    return -1;
  *n += (size_t)w;
  for (const char *v = value; *v; v++) {
    if (*n + 3 >= cap)
      return -1;
    if (*v == '"' || *v == '\\')
      buf[(*n)++] = '\\';
    buf[(*n)++] = *v;
  }
  buf[(*n)++] = '"';
  buf[*n] = '\0';
  return 0;
}

size_t sl__discovery_link(const sl_discovery_t *d, const char *last_event_id, const char *type,
                          const char *content_type, char *buf, size_t cap) {
  int w = snprintf(buf, cap, "Link: <%s>; rel=\"mercure\"", d->hub_url);
  size_t n = w < 0 ? cap : (size_t)w;
  if (n >= cap || link_param(buf, cap, &n, "last-event-id", last_event_id) ||
      link_param(buf, cap, &n, "type", type) ||
      link_param(buf, cap, &n, "content-type", content_type) || n + 3 > cap) {
    if (cap)
      buf[0] = '\0';
    return 0;
  }
  memcpy(buf + n, "\r\n", 3);
  return n + 2;
}
