/* http.c — the llhttp glue: reads requests with the size and time limits a public hub needs,
 * routes them to the endpoints, and writes responses. It keeps only the headers the hub uses
 * (authorization, cookie, last-event-id, content-type, expect, origin), so a request costs a few
 * small allocations that live until it is answered. */
#include "http/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/policy.h"
#include "core/hub.h"

#define SL_CONN_SERVED (1u << 24) /* answered at least one request: a quiet client is just idle */

extern const char sl__demo_page[];
extern const size_t sl__demo_page_len;

static const char *const header_names[SL_H_COUNT] = {
  "authorization", "last-event-id", "content-type", "cookie", "expect", "origin", "referer", "host",
};

static const char *status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

static sl_conn_t *conn_of(llhttp_t *p) {
  return p->data;
}

static int reject(sl_request_t *r, int status, const char *reason) {
  if (r->status == 0) {
    r->status = status;
    r->reason = reason;
  }
  return -1;
}

static int append(char **buf, size_t *len, size_t *cap, const char *at, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 64;
    while (c < *len + n + 1)
      c *= 2;
    char *p = realloc(*buf, c);
    if (p == NULL)
      return -ENOMEM;
    *buf = p;
    *cap = c;
  }
  memcpy(*buf + *len, at, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  sl_conn_t *c = conn_of(p);
  if (c->req == NULL) {
    c->req = calloc(1, sizeof *c->req);
    if (c->req == NULL)
      return -1;
  }
  c->req->cur = -1;
  c->req->start_ns = uv_hrtime();
  c->deadline = sl_worker_now(c->worker) + (uint64_t)(c->worker->hub->cfg.header_timeout * 1000);
  return 0;
}

static int count_header_bytes(sl_request_t *r, size_t n) {
  r->header_bytes += n;
  if (r->header_bytes > SL_HTTP_MAX_HEADER)
    return reject(r, 431, "request headers exceed 8192 bytes");
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  sl_request_t *r = conn_of(p)->req;
  if (r->url_len + n > SL_HTTP_MAX_URL)
    return reject(r, 414, "request target exceeds 8192 bytes");
  if (count_header_bytes(r, n))
    return -1;
  return append(&r->url, &r->url_len, &r->url_cap, at, n) ? reject(r, 500, "out of memory") : 0;
}

static int is_tchar(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  sl_request_t *r = conn_of(p)->req;
  if (count_header_bytes(r, n))
    return -1;
  /* llhttp's lenient build lets "Name : value" through; RFC 9112 5.1 says reject it. */
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)at[i]))
      return reject(r, 400, "invalid character in a header name");
  if (r->field_len + n < sizeof r->field) {
    memcpy(r->field + r->field_len, at, n);
    r->field_len += n;
  } else {
    r->field_len = sizeof r->field; /* too long to be one of ours */
  }
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  sl_request_t *r = conn_of(p)->req;
  r->cur = -1;
  if (r->field_len < sizeof r->field) {
    r->field[r->field_len] = '\0';
    for (int i = 0; i < SL_H_COUNT; i++)
      if (strcasecmp(r->field, header_names[i]) == 0)
        r->cur = i;
  }
  r->field_len = 0;
  if (r->cur >= 0 && r->hv[r->cur] != NULL && r->cur != SL_H_COOKIE)
    return reject(r, 400, "a header that must appear once appears twice");
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  sl_request_t *r = conn_of(p)->req;
  if (count_header_bytes(r, n))
    return -1;
  if (r->cur < 0)
    return 0;
  size_t cap = r->hv[r->cur] ? r->hv_len[r->cur] + 1 : 0;
  return append(&r->hv[r->cur], &r->hv_len[r->cur], &cap, at, n) ? reject(r, 500, "out of memory") : 0;
}

static int on_header_value_complete(llhttp_t *p) {
  sl_request_t *r = conn_of(p)->req;
  if (r->cur == SL_H_COOKIE) {
    size_t cap = r->hv_len[r->cur] + 1;
    if (append(&r->hv[r->cur], &r->hv_len[r->cur], &cap, "; ", 2))
      return reject(r, 500, "out of memory");
  }
  r->cur = -1;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  sl_conn_t *c = conn_of(p);
  sl_request_t *r = c->req;
  size_t max = c->worker->hub->cfg.max_body;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > max)
    return reject(r, 413, "request body exceeds --max-body");
  if (r->hv[SL_H_EXPECT]) {
    if (strcasecmp(r->hv[SL_H_EXPECT], "100-continue") != 0)
      return reject(r, 417, "only Expect: 100-continue is supported");
    /* Not while draining: the body would only be answered 503, and "100" followed by the end
     * of the connection would leave the client guessing. */
    if (p->http_major == 1 && p->http_minor >= 1 && !c->worker->draining)
      sl_conn_send_raw(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  sl_conn_t *c = conn_of(p);
  sl_request_t *r = c->req;
  if (r->body_len + n > c->worker->hub->cfg.max_body)
    return reject(r, 413, "request body exceeds --max-body");
  return append(&r->body, &r->body_len, &r->body_cap, at, n) ? reject(r, 500, "out of memory") : 0;
}

void sl__http_request_free(sl_conn_t *c) {
  sl_request_t *r = c->req;
  if (r == NULL)
    return;
  free(r->url);
  free(r->body);
  for (int i = 0; i < SL_H_COUNT; i++)
    free(r->hv[i]);
  free(r);
  c->req = NULL;
}

int sl__http_is_11(const sl_conn_t *c) {
  return c->parser.http_major > 1 || (c->parser.http_major == 1 && c->parser.http_minor >= 1);
}

void sl__http_respond(sl_conn_t *c, int status, const char *headers, const char *content_type,
                      const char *body, size_t len) {
  sl_worker_t *w = c->worker;
  int keep = !(c->flags & SL_CONN_CLOSE_AFTER) && !w->draining && c->req != NULL &&
             c->req->status == 0 && llhttp_should_keep_alive(&c->parser);
  int head_only = c->req && c->parser.method == HTTP_HEAD;
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s%s\r\n", status,
                   status_text(status), len, content_type ? "Content-Type: " : "",
                   content_type ? content_type : "", content_type ? "\r\n" : "",
                   headers ? headers : "", keep ? "" : "Connection: close\r\n");
  if (n < 0 || (size_t)n >= sizeof head) {
    c->flags |= SL_CONN_HARD_CLOSE;
    sl_conn_close(c);
    return;
  }
  size_t total = (size_t)n + (head_only ? 0 : len);
  sl_frame_t *f = sl_frame_raw(head, (size_t)n);
  if (f && total > (size_t)n) {
    sl_frame_unref(f);
    char *buf = malloc(total);
    f = NULL;
    if (buf) {
      memcpy(buf, head, (size_t)n);
      memcpy(buf + n, body, len);
      f = sl_frame_raw(buf, total);
      free(buf);
    }
  }
  if (f == NULL) {
    c->flags |= SL_CONN_HARD_CLOSE;
    sl_conn_close(c);
    return;
  }
  sl_conn_send(c, f);
  sl_frame_unref(f);
  sl_metric_add(&w->metrics.requests_total, 1);
  if (status >= 400)
    sl_metric_add(&w->metrics.errors_total, 1);
  c->flags |= SL_CONN_SERVED;
  if (!keep)
    sl_conn_end(c);
}

void sl__http_error(sl_conn_t *c, int status, const char *headers, const char *what) {
  char body[512];
  int n = snprintf(body, sizeof body, "%d %s: %s\n", status, status_text(status), what);
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof body)
    n = sizeof body - 1;
  sl__http_respond(c, status, headers, "text/plain; charset=utf-8", body, (size_t)n);
}

/* The policy itself is policy.c's; this only hands it the request's headers and writes its
 * refusal. */
int sl__http_authenticate(sl_conn_t *c, sl_role_t role, sl_claims_t *claims, int *present) {
  const sl_request_t *r = c->req;
  sl_credentials_t cred = {
    .authorization = r->hv[SL_H_AUTHORIZATION],
    .cookie = r->hv[SL_H_COOKIE],
    .origin = r->hv[SL_H_ORIGIN],
    .referer = r->hv[SL_H_REFERER],
    .host = r->hv[SL_H_HOST],
  };
  sl_auth_verdict_t v;
  int err = sl__auth_request(c->worker->hub->auth, c->worker->auth_cache, role, &cred,
                             (int64_t)time(NULL), claims, &v);
  *present = v.present;
  if (err == 0)
    return 0;
  sl__http_error(c, v.status, v.headers, v.message);
  return -1;
}

static int path_is(const char *path, size_t len, const char *want) {
  return strlen(want) == len && memcmp(path, want, len) == 0;
}

static void respond_readyz(sl_conn_t *c) {
  if (atomic_load(&c->worker->hub->ready))
    sl__http_respond(c, 200, NULL, "text/plain; charset=utf-8", "ready\n", 6);
  else
    sl__http_respond(c, 503, "Retry-After: 5\r\n", "text/plain; charset=utf-8",
                     "draining: not accepting new work\n", 33);
}

static void respond_metrics(sl_conn_t *c) {
  size_t len;
  char *text = sl__hub_metrics(c->worker->hub, &len);
  if (text == NULL) {
    sl__http_error(c, 500, NULL, "out of memory");
    return;
  }
  sl__http_respond(c, 200, NULL, "text/plain; version=0.0.4; charset=utf-8", text, len);
  free(text);
}

static void route(sl_conn_t *c) {
  sl_request_t *r = c->req;
  const char *url = r->url ? r->url : "";
  size_t ulen = r->url_len;
  /* absolute-form (RFC 9112 3.2.2): keep only the path and query */
  if (ulen > 8 && (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0)) {
    const char *s = strchr(url + 8, '/');
    const char *q = strchr(url + 8, '?');
    if (s == NULL || (q && q < s))
      s = q;
    if (s == NULL)
      s = "/";
    ulen -= (size_t)(s - url);
    url = s;
  }
  const char *qmark = memchr(url, '?', ulen);
  size_t plen = qmark ? (size_t)(qmark - url) : ulen;
  const char *query = qmark ? qmark + 1 : "";
  size_t qlen = qmark ? ulen - plen - 1 : 0;
  int method = c->parser.method;

  if (path_is(url, plen, "/.well-known/mercure")) {
    if (method == HTTP_GET)
      sl__handle_subscribe(c, query, qlen);
    else if (method == HTTP_POST)
      sl__handle_publish(c);
    else if (method == HTTP_OPTIONS)
      sl__http_respond(c, 204, "Allow: GET, POST, OPTIONS\r\n", NULL, "", 0);
    else
      sl__http_error(c, 405, "Allow: GET, POST, OPTIONS\r\n",
                     "the hub accepts GET (subscribe) and POST (publish)");
    return;
  }
  int known = path_is(url, plen, "/healthz") || path_is(url, plen, "/readyz") ||
              path_is(url, plen, "/metrics") || path_is(url, plen, "/");
  if (!known) {
    sl__http_error(c, 404, NULL, "no such resource; the hub lives at /.well-known/mercure");
    return;
  }
  if (method != HTTP_GET && method != HTTP_HEAD) {
    sl__http_error(c, 405, "Allow: GET, HEAD\r\n", "this resource only answers GET and HEAD");
    return;
  }
  if (path_is(url, plen, "/healthz"))
    sl__http_respond(c, 200, NULL, "text/plain; charset=utf-8", "ok\n", 3);
  else if (path_is(url, plen, "/readyz"))
    respond_readyz(c);
  else if (path_is(url, plen, "/metrics"))
    respond_metrics(c);
  else
    sl__http_respond(c, 200, "Cache-Control: no-cache\r\n", "text/html; charset=utf-8",
                     sl__demo_page, sl__demo_page_len);
}

static int on_message_complete(llhttp_t *p) {
  sl_conn_t *c = conn_of(p);
  route(c);
  if (c->flags & SL_CONN_CLOSING)
    return HPE_PAUSED;
  if (!(c->flags & SL_CONN_STREAM)) {
    sl__http_request_free(c);
    c->deadline = sl_worker_now(c->worker) + (uint64_t)(c->worker->hub->cfg.idle_timeout * 1000);
  }
  /* A stream owns the connection from now on; after "Connection: close" nothing more is read. */
  return (c->flags & (SL_CONN_STREAM | SL_CONN_CLOSE_AFTER)) ? HPE_PAUSED : 0;
}

static const llhttp_settings_t settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_header_field_complete = on_header_field_complete,
  .on_header_value_complete = on_header_value_complete,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

void sl__http_conn_init(sl_conn_t *c) {
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
}

void sl__http_feed(sl_conn_t *c, const char *data, size_t len) {
  llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
  if (err == HPE_OK)
    return;
  c->flags |= SL_CONN_PARSER_PAUSED;
  if (err == HPE_PAUSED_UPGRADE && !(c->flags & (SL_CONN_STREAM | SL_CONN_CLOSING))) {
    /* Upgrade or CONNECT: answered as plain HTTP/1.1; what follows would be another protocol,
     * so the connection ends after the answer instead of waiting with its parser stopped. */
    sl_conn_end(c);
    return;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE || (c->flags & SL_CONN_CLOSING))
    return;
  sl_request_t *r = c->req;
  int status = (r && r->status) ? r->status : 400;
  char what[160];
  if (r && r->reason)
    snprintf(what, sizeof what, "%s", r->reason);
  else
    snprintf(what, sizeof what, "malformed HTTP request (%s)", llhttp_get_error_reason(&c->parser));
  if (r == NULL)
    on_message_begin(&c->parser);
  if (c->req)
    c->req->status = status;
  c->flags |= SL_CONN_CLOSE_AFTER;
  sl__http_error(c, status, NULL, what);
  sl__http_request_free(c);
}

void sl__http_feed_eof(sl_conn_t *c) {
  /* A half-received request cannot be answered meaningfully; one fully received already was. */
  sl__http_request_free(c);
}

void sl__http_timeout(sl_conn_t *c) {
  if (c->req != NULL || !(c->flags & SL_CONN_SERVED)) {
    if (c->req == NULL)
      on_message_begin(&c->parser);
    if (c->req)
      c->req->status = 408;
    c->flags |= SL_CONN_CLOSE_AFTER | SL_CONN_PARSER_PAUSED;
    sl__http_error(c, 408, NULL, "the request did not arrive within --header-timeout");
    sl__http_request_free(c);
  } else {
    sl_conn_end(c); /* idle keep-alive connection */
  }
}
