/* http.c — the llhttp glue and HTTP/1.1 as a connection's protocol (see http.h): reads requests
 * with the size and time limits a public hub needs, routes them through the worker's endpoint
 * table, writes answers through the one head builder, and hands a connection to a stream when an
 * endpoint opens one. It keeps only the headers the hub uses, so a request costs a few small
 * allocations that live until it is answered. */
#include "http/http.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/cors.h"
#include "http/response.h"
#include "net/delivery.h"
#include "common/text.h"
#include "common/wire.h"

#define SL_XSTR(x) #x
#define SL_STR(x) SL_XSTR(x)
#define CONTINUE_100 "HTTP/1.1 100 Continue\r\n\r\n"
#define WHAT_MAX 160                 /* bytes of an error's explanation */
#define ERROR_BODY_MAX 512

/* HTTP's state of one connection: the transport's first, so the transport allocates both. */
typedef struct http_conn_s {
  sl_conn_t conn;
  llhttp_t parser;
  sl_request_t *req;             /* the request being read; NULL between requests */
  union {
    sl_http_stream_t *stream;    /* HTTP_STREAM: the stream that owns the connection */
    struct backlog_s *backlog;   /* HTTP_BACKLOG: bytes read and not yet parsed */
  } u;
  sl_http_deferred_t *deferred;  /* requests answered later (sl__http_defer), oldest first */
  sl_http_deferred_t *answering; /* set by sl__http_resume: the next answer is this one's */
  uint32_t deferred_count;
  uint32_t hflags;               /* HTTP_* */
} http_conn_t;

enum {
  HTTP_SERVED = 1 << 0,          /* answered at least one request: a quiet client is just idle */
  HTTP_PAUSED = 1 << 1,          /* parsing stopped for good: a stream began, an error, the end */
  HTTP_STREAM = 1 << 2,          /* u.stream is set */
  HTTP_BACKLOG = 1 << 3,         /* parsing waits for the answers queued to be written; u.backlog
                                    holds what was read after the last request parsed */
  HTTP_HOLD = 1 << 4,            /* a live hand-off: no new request begins (what was read after
                                    the last one waits in u.backlog, and reading stops) */
};

/* What a handed connection is, in its record. */
enum { HANDOFF_IDLE = 1, HANDOFF_STREAM = 2 };

/* What a pipelining client sent beyond the requests answered so far, kept while its answers
 * are written: parsing it would queue more answers than SL_HTTP_PIPELINE_LIMIT. */
typedef struct backlog_s {
  size_t len;
  char bytes[];
} backlog_t;

static sl_http_stream_t *stream_of(const http_conn_t *h) {
  return (h->hflags & HTTP_STREAM) ? h->u.stream : NULL;
}

static http_conn_t *http_of(sl_conn_t *c) {
  return (http_conn_t *)c;
}

static const http_conn_t *chttp_of(const sl_conn_t *c) {
  return (const http_conn_t *)c;
}

static sl_http_ctx_t *ctx_of(const sl_conn_t *c) {
  return c->net->proto_ctx;
}

static uint64_t ms(double seconds) {
  return (uint64_t)(seconds * 1000);
}

static const char *const header_names[SL_H_COUNT] = {
  "authorization", "last-event-id", "content-type", "cookie", "expect", "origin", "referer", "host",
  "access-control-request-method",
};

static http_conn_t *conn_of(llhttp_t *p) {
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
  http_conn_t *c = conn_of(p);
  if (c->req == NULL) {
    c->req = calloc(1, sizeof *c->req);
    if (c->req == NULL)
      return -1;
  }
  c->req->cur = -1;
  c->req->start_ns = uv_hrtime();
  sl__conn_set_deadline(&c->conn, sl__transport_now(c->conn.net) + ms(ctx_of(&c->conn)->cfg->header_timeout));
  return 0;
}

static int count_header_bytes(sl_request_t *r, size_t n) {
  r->header_bytes += n;
  if (r->header_bytes > SL_HTTP_MAX_HEADER)
    return reject(r, 431, "request headers exceed " SL_STR(SL_HTTP_MAX_HEADER) " bytes");
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  sl_request_t *r = conn_of(p)->req;
  if (r->url_len + n > SL_HTTP_MAX_URL)
    return reject(r, 414, "request target exceeds " SL_STR(SL_HTTP_MAX_URL) " bytes");
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

/* 1 when the value piece at begins a continuation line: only spaces and tabs between it and
 * the line break before it (llhttp leaves the line break out and reports the rest). RFC 9112 5.2
 * lets a server refuse obs-fold, and a folded Authorization or framing header is how requests
 * get smuggled past proxies that read it differently. feed is where this read's bytes start;
 * before them, the request remembers whether the last read ended a line. */
static int folded(const sl_request_t *r, const char *feed, const char *at) {
  const char *q = at;
  while (q > feed && (q[-1] == ' ' || q[-1] == '\t'))
    q--;
  if (q > feed)
    return q[-1] == '\n';
  return r->read_ended_line;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  sl_request_t *r = conn_of(p)->req;
  if (count_header_bytes(r, n))
    return -1;
  if (n > 0 && folded(r, ctx_of(&conn_of(p)->conn)->feed, at))
    return reject(r, 400, "a header value folded over lines (obs-fold, RFC 9112 5.2) is not "
                  "accepted");
  if (r->cur < 0)
    return 0;
  size_t cap = r->hv[r->cur] ? r->hv_len[r->cur] + 1 : 0;
  return append(&r->hv[r->cur], &r->hv_len[r->cur], &cap, at, n) ? reject(r, 500, "out of memory") : 0;
}

static int on_header_value_complete(llhttp_t *p) {
  sl_request_t *r = conn_of(p)->req;
  if (r->cur == SL_H_COOKIE) {
    size_t cap = r->hv_len[r->cur] + 1;
    if (append(&r->hv[r->cur], &r->hv_len[r->cur], &cap, SL_LIT("; ")))
      return reject(r, 500, "out of memory");
  }
  r->cur = -1;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  http_conn_t *c = conn_of(p);
  sl_request_t *r = c->req;
  size_t max = ctx_of(&c->conn)->cfg->max_body;
  /* RFC 9112: only HTTP/1.0 and 1.1 are spoken here (505 for others, which llhttp lets through
   * as 0.9 and 2.0); a 1.1 request names its Host (3.2); a 1.0 request with Transfer-Encoding
   * has faulty framing and the connection must close after it (6.1), as it does after any
   * refusal. */
  if (p->http_major != 1 || p->http_minor > 1)
    return reject(r, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
  if (p->http_minor == 1 && r->hv[SL_H_HOST] == NULL)
    return reject(r, 400, "an HTTP/1.1 request must have a Host header");
  if (p->http_minor == 0 && (p->flags & F_TRANSFER_ENCODING))
    return reject(r, 400, "Transfer-Encoding in an HTTP/1.0 request: its framing cannot be "
                  "trusted");
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > max)
    return reject(r, 413, "request body exceeds --max-body");
  if (r->hv[SL_H_EXPECT]) {
    if (strcasecmp(r->hv[SL_H_EXPECT], "100-continue") != 0)
      return reject(r, 417, "only Expect: 100-continue is supported");
    /* Not while draining: the body would only be answered 503, and "100" followed by the end
     * of the connection would leave the client guessing. */
    if (p->http_major == 1 && p->http_minor >= 1 && !c->conn.net->draining)
      sl__delivery_send_raw(&c->conn, SL_LIT(CONTINUE_100));
  }
  return 0;
}

/* A chunk announced larger than what the body may still take is refused before it arrives. */
static int on_chunk_header(llhttp_t *p) {
  http_conn_t *c = conn_of(p);
  sl_request_t *r = c->req;
  uint64_t max = ctx_of(&c->conn)->cfg->max_body;
  if (p->content_length > max - r->body_len)
    return reject(r, 413, "request body exceeds --max-body");
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  http_conn_t *c = conn_of(p);
  sl_request_t *r = c->req;
  if (r->body_len + n > ctx_of(&c->conn)->cfg->max_body)
    return reject(r, 413, "request body exceeds --max-body");
  return append(&r->body, &r->body_len, &r->body_cap, at, n) ? reject(r, 500, "out of memory") : 0;
}


static void request_free(http_conn_t *c) {
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
  const llhttp_t *p = &chttp_of(c)->parser;
  return p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
}

static void deferred_unlink(http_conn_t *h, sl_http_deferred_t *d) {
  if (d->prev)
    d->prev->next = d->next;
  else
    h->deferred = d->next;
  if (d->next)
    d->next->prev = d->prev;
  d->next = d->prev = NULL;
  h->deferred_count--;
  free(d->cors);
  d->cors = NULL;
}

int sl__http_defer(sl_conn_t *c, sl_http_deferred_t *d) {
  http_conn_t *h = http_of(c);
  assert(h->req != NULL && d != NULL && d->on_close != NULL);
  /* Its CORS lines: the request is gone by the time the answer is written. */
  char cors[SL_CORS_LINES_MAX];
  size_t n = sl__cors_lines(h->req->cors, h->req->hv[SL_H_ORIGIN],
                            h->req->hv[SL_H_COOKIE] != NULL, cors, sizeof cors);
  d->cors = n ? strndup(cors, n) : NULL;
  if (n && d->cors == NULL)
    return -ENOMEM;
  /* Its answer's place in the output, before whatever later requests are answered. */
  int r = sl__delivery_reserve(c, &d->slot);
  if (r) {
    free(d->cors);
    d->cors = NULL;
    return r;
  }
  d->keep = !(c->flags & SL_CONN_CLOSE_AFTER) && h->req->status == 0 &&
            llhttp_should_keep_alive(&h->parser);
  d->head_only = h->parser.method == HTTP_HEAD;
  /* A request that ends the connection: nothing after it is read. */
  if (!d->keep)
    sl__conn_mark(c, SL_CONN_CLOSE_AFTER);
  d->next = NULL;
  d->prev = NULL;
  if (h->deferred) {
    sl_http_deferred_t *last = h->deferred;
    while (last->next)
      last = last->next;
    last->next = d;
    d->prev = last;
  } else {
    h->deferred = d;
  }
  h->deferred_count++;
  return 0;
}

void sl__http_resume(sl_conn_t *c, sl_http_deferred_t *d) {
  http_conn_t *h = http_of(c);
  assert(h->answering == NULL && d != NULL);
  h->answering = d;
}

void sl__http_close_after(sl_conn_t *c) {
  sl__conn_mark(c, SL_CONN_CLOSE_AFTER);
}

/* A frame that cannot be queued leaves nothing to answer with: the connection goes. */
static void fail_hard(sl_conn_t *c) {
  sl__conn_mark(c, SL_CONN_HARD_CLOSE);
  sl__conn_close(c);
}

void sl__http_respond(sl_conn_t *c, int status, const char *headers, const char *content_type,
                      const char *body, size_t len) {
  http_conn_t *h = http_of(c);
  assert(!(c->flags & SL_CONN_STREAM));
  /* A deferred request's answer: what its request said was kept when it was deferred. */
  sl_http_deferred_t *d = h->answering;
  h->answering = NULL;
  int keep = !(c->flags & SL_CONN_CLOSE_AFTER) && !c->net->draining &&
             (d ? d->keep
                : h->req != NULL && h->req->status == 0 && llhttp_should_keep_alive(&h->parser));
  int head_only = d ? d->head_only : h->req && h->parser.method == HTTP_HEAD;
  char cors_buf[SL_CORS_LINES_MAX];
  char *cors = cors_buf;
  size_t n = 0;
  if (d) {
    cors = d->cors; /* this answer's now: freed below */
    n = cors ? strlen(cors) : 0;
    d->cors = NULL;
    deferred_unlink(h, d);
  } else if (h->req) {
    n = sl__cors_lines(h->req->cors, h->req->hv[SL_H_ORIGIN], h->req->hv[SL_H_COOKIE] != NULL,
                       cors_buf, sizeof cors_buf);
  }
  sl_http_head_t head = {
    .status = status,
    .content_type = content_type,
    .headers = headers,
    .more_headers = n ? cors : NULL,
    .has_length = 1,
    .length = len,
    .close = !keep,
  };
  sl_frame_t *f = sl__http_response_frame(&head, body, head_only ? 0 : len);
  if (d)
    free(cors);
  if (f == NULL) {
    fail_hard(c);
    return;
  }
  if (d)
    sl__delivery_fill(c, d->slot, f);
  else
    sl__delivery_send(c, f);
  sl__frame_unref(f);
  sl__metric_add(&c->net->metrics->requests_total, 1);
  if (status >= 400)
    sl__metric_add(&c->net->metrics->errors_total, 1);
  h->hflags |= HTTP_SERVED;
  if (!keep) {
    h->hflags |= HTTP_PAUSED;
    sl__delivery_end(c);
  }
}

void sl__http_error(sl_conn_t *c, int status, const char *headers, const char *what) {
  char body[ERROR_BODY_MAX];
  int n = snprintf(body, sizeof body, "%d %s: %s\n", status, sl__http_status_text(status), what);
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof body)
    n = sizeof body - 1;
  sl__http_respond(c, status, headers, "text/plain; charset=utf-8", body, (size_t)n);
}

void sl__http_preflight(sl_conn_t *c, const sl_request_t *r, const char *methods) {
  char lines[512], what[256];
  int status = sl__cors_preflight(r->cors, r->hv[SL_H_ORIGIN], r->hv[SL_H_ACR_METHOD], methods,
                                  lines, sizeof lines, what, sizeof what);
  if (status == 204)
    sl__http_respond(c, 204, lines, NULL, "", 0);
  else
    sl__http_error(c, status, NULL, what);
}

int sl__http_open_stream(sl_conn_t *c, const char *content_type, const char *headers,
                         sl_http_stream_t *stream) {
  http_conn_t *h = http_of(c);
  assert(stream != NULL && stream->ops != NULL && !(h->hflags & (HTTP_STREAM | HTTP_BACKLOG)));
  int chunked = sl__http_is_11(c);
  char cors[SL_CORS_LINES_MAX];
  size_t n = h->req ? sl__cors_lines(h->req->cors, h->req->hv[SL_H_ORIGIN],
                                     h->req->hv[SL_H_COOKIE] != NULL, cors, sizeof cors)
                    : 0;
  sl_http_head_t head = {
    .status = 200,
    .content_type = content_type,
    .headers = headers,
    .more_headers = n ? cors : NULL,
    .chunked = chunked,
    .close = !chunked,
  };
  sl_frame_t *f = sl__http_response_frame(&head, NULL, 0);
  if (f == NULL) {
    fail_hard(c);
    return -ENOMEM;
  }
  sl__conn_mark(c, SL_CONN_STREAM | (chunked ? SL_CONN_CHUNKED : 0));
  sl__conn_set_deadline(c, 0);
  h->u.stream = stream;
  h->hflags |= HTTP_SERVED | HTTP_PAUSED | HTTP_STREAM;
  int r = sl__delivery_send(c, f);
  sl__frame_unref(f);
  sl__metric_add(&c->net->metrics->requests_total, 1);
  request_free(h);
  return r;
}

static sl_http_method_t method_of(const llhttp_t *p) {
  switch (p->method) {
  case HTTP_GET: return SL_HTTP_GET;
  case HTTP_HEAD: return SL_HTTP_HEAD;
  case HTTP_POST: return SL_HTTP_POST;
  case HTTP_OPTIONS: return SL_HTTP_OPTIONS;
  default: return SL_HTTP_OTHER;
  }
}

/* Splits the target into path and query, keeping only those of an absolute-form target
 * (RFC 9112 3.2.2), and runs the handler the table names. */
static void route(http_conn_t *h) {
  sl_request_t *r = h->req;
  const char *url = r->url ? r->url : "";
  size_t ulen = r->url_len;
  int absolute = SL_STARTS_WITH_CASE(url, "http://") || SL_STARTS_WITH_CASE(url, "https://");
  if (absolute) {
    /* Past the scheme and the authority, which ends at the path or the query; an empty path
     * is "/" (RFC 9112 3.2.2: "http://hub.example" and "http://hub.example?q" name "/"). */
    size_t skip = SL_STARTS_WITH_CASE(url, "https://") ? SL_LITLEN("https://") : SL_LITLEN("http://");
    skip += strcspn(url + skip, "/?");
    url += skip;
    ulen -= skip;
  }
  const char *qmark = memchr(url, '?', ulen);
  r->path = url;
  r->path_len = qmark ? (size_t)(qmark - url) : ulen;
  r->query = qmark ? qmark + 1 : "";
  r->query_len = qmark ? ulen - r->path_len - 1 : 0;
  if (absolute && r->path_len == 0) {
    r->path = "/";
    r->path_len = 1;
  }
  r->method = method_of(&h->parser);

  const sl_router_t *router = &ctx_of(&h->conn)->router;
  size_t k;
  const sl_route_t *rt = sl__router_find(router, r->path, r->path_len, r->method, &k);
  if (rt == NULL) {
    sl__http_error(&h->conn, 404, NULL, router->not_found);
    return;
  }
  if (k == SL_ROUTE_MAX_METHODS) {
    char allow[128];
    snprintf(allow, sizeof allow, "Allow: %s\r\n", rt->allow);
    sl__http_error(&h->conn, 405, allow, rt->refusal);
    return;
  }
  r->cors = rt->cors;
  rt->methods[k].handler(&h->conn, r, rt->methods[k].data);
}

static int on_message_complete(llhttp_t *p) {
  http_conn_t *h = conn_of(p);
  sl_conn_t *c = &h->conn;
  route(h);
  if (c->flags & SL_CONN_CLOSING)
    return HPE_PAUSED;
  if (!(c->flags & SL_CONN_STREAM)) {
    request_free(h);
    sl__conn_set_deadline(c, sl__transport_now(c->net) + ms(ctx_of(c)->cfg->idle_timeout));
  }
  /* A stream owns the connection from now on; after "Connection: close" nothing more is read. */
  if (c->flags & (SL_CONN_STREAM | SL_CONN_CLOSE_AFTER))
    return HPE_PAUSED;
  /* A hand-off is under way: the next request is the other process's to read. */
  if (h->hflags & HTTP_HOLD) {
    h->hflags |= HTTP_BACKLOG;
    return HPE_PAUSED;
  }
  /* A client sending requests faster than it reads the answers: the next request waits until
   * these are written, however many one read brought (http_data keeps the rest). */
  if (c->q_bytes > SL_HTTP_PIPELINE_LIMIT || h->deferred_count >= SL_HTTP_DEFERRED_LIMIT) {
    h->hflags |= HTTP_BACKLOG;
    return HPE_PAUSED;
  }
  return 0;
}

static const llhttp_settings_t settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_header_field_complete = on_header_field_complete,
  .on_header_value_complete = on_header_value_complete,
  .on_headers_complete = on_headers_complete,
  .on_chunk_header = on_chunk_header,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* Answers a request that cannot be served and ends the connection after it. */
static void refuse(http_conn_t *h, int status, const char *what) {
  if (h->req == NULL)
    on_message_begin(&h->parser);
  if (h->req)
    h->req->status = status;
  h->hflags |= HTTP_PAUSED;
  sl__conn_mark(&h->conn, SL_CONN_CLOSE_AFTER);
  sl__http_error(&h->conn, status, NULL, what);
  request_free(h);
}

/* --- the transport's callbacks ------------------------------------------------------------- */

static void http_open(sl_conn_t *c) {
  http_conn_t *h = http_of(c);
  llhttp_init(&h->parser, HTTP_REQUEST, &settings);
  h->parser.data = h;
  sl__conn_set_deadline(c, sl__transport_now(c->net) + ms(ctx_of(c)->cfg->header_timeout));
  /* Not admitted: told why at once, before any request; nothing it sends is parsed. */
  if (c->flags & SL_CONN_REFUSED_FULL) {
    h->hflags |= HTTP_PAUSED;
    sl__http_error(c, 503, "Retry-After: 1\r\n", "the hub holds all the connections it may "
                   "(--max-connections); retry shortly");
  } else if (c->flags & SL_CONN_REFUSED_CLIENT) {
    h->hflags |= HTTP_PAUSED;
    sl__http_error(c, 429, "Retry-After: 1\r\n", "this address holds all the connections it "
                   "may (--max-conns-per-ip); close one and retry");
  }
}

/* Keeps what follows the request that paused parsing, and stops reading until the answers
 * queued so far are written (http_writable resumes). */
static void keep_backlog(http_conn_t *h, const char *data, size_t len) {
  const char *at = llhttp_get_error_pos(&h->parser);
  size_t rest = at ? (size_t)(data + len - at) : 0;
  backlog_t *b = malloc(sizeof *b + (rest ? rest : 1));
  if (b == NULL) {
    fail_hard(&h->conn);
    return;
  }
  b->len = rest;
  if (rest)
    memcpy(b->bytes, at, rest);
  h->u.backlog = b;
  sl__conn_pause_read(&h->conn);
}

static void http_data(sl_conn_t *c, const char *data, size_t len) {
  http_conn_t *h = http_of(c);
  if (h->hflags & HTTP_PAUSED)
    return; /* a stream's client, or one being answered last, has nothing more to say */
  ctx_of(c)->feed = data;
  llhttp_errno_t err = llhttp_execute(&h->parser, data, len);
  if (h->req && len > 0)
    h->req->read_ended_line = data[len - 1] == '\n';
  if (err == HPE_PAUSED && (h->hflags & HTTP_BACKLOG) && !(c->flags & SL_CONN_CLOSING)) {
    keep_backlog(h, data, len);
    return;
  }
  if (err != HPE_OK) {
    h->hflags |= HTTP_PAUSED;
    if (err == HPE_PAUSED_UPGRADE && !(c->flags & (SL_CONN_STREAM | SL_CONN_CLOSING))) {
      /* Upgrade or CONNECT: answered as plain HTTP/1.1; what follows would be another protocol,
       * so the connection ends after the answer instead of waiting with its parser stopped. */
      sl__delivery_end(c);
      return;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE || (c->flags & SL_CONN_CLOSING))
      return;
    sl_request_t *r = h->req;
    char what[WHAT_MAX];
    if (r && r->reason)
      snprintf(what, sizeof what, "%s", r->reason);
    else
      snprintf(what, sizeof what, "malformed HTTP request (%s)", llhttp_get_error_reason(&h->parser));
    int status = (r && r->status) ? r->status : err == HPE_INVALID_VERSION ? 505 : 400;
    refuse(h, status, what);
  }
}

static void http_eof(sl_conn_t *c) {
  http_conn_t *h = http_of(c);
  if (c->q_len == 0 && h->req == NULL) {
    sl__conn_close(c);
    return;
  }
  /* A half-received request cannot be answered meaningfully; one fully received already was. */
  request_free(h);
  h->hflags |= HTTP_PAUSED;
  sl__delivery_end(c);
}

static void http_timeout(sl_conn_t *c, uint64_t now) {
  http_conn_t *h = http_of(c);
  sl_http_stream_t *s = stream_of(h);
  if (s) {
    s->ops->on_timeout(s, c, now);
    return;
  }
  /* A request still arriving keeps its deadline even when the connection is to close after it
   * (a drain began): a stalled client must not hold the drain until --shutdown-timeout. */
  if (!c->deadline || now < c->deadline || ((c->flags & SL_CONN_CLOSE_AFTER) && h->req == NULL))
    return;
  if (h->req == NULL && h->deferred_count > 0)
    return; /* not idle: answers are still to come */
  if (h->req != NULL || !(h->hflags & HTTP_SERVED))
    refuse(h, 408, "the request did not arrive within --header-timeout");
  else {
    h->hflags |= HTTP_PAUSED;
    sl__delivery_end(c); /* idle keep-alive connection */
  }
}

/* The answers queued are written: parse what waited, then read again. */
static void http_writable(sl_conn_t *c) {
  http_conn_t *h = http_of(c);
  if (c->flags & SL_CONN_STREAM) {
    sl_http_stream_t *s = stream_of(h);
    if (s && s->ops->on_writable)
      s->ops->on_writable(s, c);
    return;
  }
  if (h->hflags & HTTP_HOLD)
    return; /* reading waits for the hand-off's end */
  if (h->hflags & HTTP_BACKLOG) {
    backlog_t *b = h->u.backlog;
    h->u.backlog = NULL;
    h->hflags &= ~(uint32_t)HTTP_BACKLOG;
    llhttp_resume(&h->parser);
    if (b->len)
      http_data(c, b->bytes, b->len);
    free(b);
    if (h->hflags & HTTP_BACKLOG)
      return; /* paused again: more answers are queued, and reading waits for them */
  }
  if (!(c->flags & SL_CONN_CLOSING))
    sl__conn_resume_read(c);
}

static void http_close(sl_conn_t *c) {
  http_conn_t *h = http_of(c);
  sl__delivery_forget(c);
  h->answering = NULL;
  while (h->deferred) {
    sl_http_deferred_t *d = h->deferred;
    deferred_unlink(h, d);
    d->on_close(d);
  }
  sl_http_stream_t *s = stream_of(h);
  if (h->hflags & HTTP_BACKLOG)
    free(h->u.backlog);
  h->hflags &= ~(uint32_t)(HTTP_STREAM | HTTP_BACKLOG);
  h->u.stream = NULL;
  if (s) {
    s->ops->on_close(s, c);
  }
  request_free(h);
}

static void http_shutdown(sl_conn_t *c) {
  http_conn_t *h = http_of(c);
  sl_http_stream_t *s = stream_of(h);
  if (s) {
    s->ops->on_shutdown(s, c);
  } else if (h->req == NULL && c->q_len == 0) {
    h->hflags |= HTTP_PAUSED;
    sl__delivery_end(c);
  } else {
    sl__conn_mark(c, SL_CONN_CLOSE_AFTER);
  }
}

static void http_end(sl_conn_t *c) {
  sl_http_stream_t *s = stream_of(http_of(c));
  if (s && s->ops->on_end)
    s->ops->on_end(s, c);
}

/* --- the live hand-off ---------------------------------------------------------------------- */

/* Ending one way or another (a refusal, "Connection: close", a drain, a slow consumer cut): it
 * ends here, not in the other process. */
static int ending(const sl_conn_t *c) {
  return (c->flags & (SL_CONN_CLOSE_AFTER | SL_CONN_FIN_SENT | SL_CONN_EVICTED |
                      SL_CONN_TERMINATED | SL_CONN_REFUSED_FULL | SL_CONN_REFUSED_CLIENT |
                      SL_CONN_READ_EOF)) != 0;
}

static void http_quiesce(sl_conn_t *c) {
  http_conn_t *h = http_of(c);
  if (c->flags & SL_CONN_STREAM)
    return;
  h->hflags |= HTTP_HOLD;
  /* Between requests: nothing more is read here. A request being read is finished first
   * (on_message_complete then keeps what follows it). */
  if (h->req == NULL && !(h->hflags & HTTP_BACKLOG))
    sl__conn_pause_read(c);
}

static int http_export(sl_conn_t *c, sl_wire_t *out) {
  http_conn_t *h = http_of(c);
  sl_http_stream_t *s = stream_of(h);
  if (ending(c) || (s && !s->ops->on_export))
    return -1;
  if (out == NULL) {
    if (s)
      return 1;
    return (h->hflags & HTTP_HOLD) && h->req == NULL && h->deferred_count == 0 ? 1 : 0;
  }
  if (s) {
    sl__wire_u8(out, HANDOFF_STREAM);
    return s->ops->on_export(s, c, out) ? -ENOMEM : 1;
  }
  sl__wire_u8(out, HANDOFF_IDLE);
  sl__wire_u8(out, (h->hflags & HTTP_SERVED) != 0);
  const backlog_t *b = (h->hflags & HTTP_BACKLOG) ? h->u.backlog : NULL;
  sl__wire_bytes(out, b ? b->bytes : "", b ? b->len : 0);
  return out->failed ? -ENOMEM : 1;
}

static void http_thaw(sl_conn_t *c) {
  http_conn_t *h = http_of(c);
  if (!(h->hflags & HTTP_HOLD))
    return;
  h->hflags &= ~(uint32_t)HTTP_HOLD;
  if (c->q_len == 0)
    http_writable(c); /* parses what waited, then reads again */
  /* else: once the answers queued are written, the transport calls http_writable */
}

/* A connection handed from another process: a keep-alive connection between requests (with
 * what its client sent after the last one, parsed once the answers it came with are written:
 * the worker's first flush), or a stream, which the endpoint that owns streams takes over. */
static int http_adopt(sl_conn_t *c, sl_wire_reader_t *in) {
  http_conn_t *h = http_of(c);
  sl_http_ctx_t *ctx = ctx_of(c);
  llhttp_init(&h->parser, HTTP_REQUEST, &settings);
  h->parser.data = h;
  uint8_t kind = sl__wire_get_u8(in);
  if (kind == HANDOFF_STREAM) {
    sl_http_stream_t *s = NULL;
    if (in->bad || ctx->adopt_stream == NULL || ctx->adopt_stream(c, in, ctx->adopt_data, &s))
      return -EPROTO;
    h->u.stream = s;
    h->hflags |= HTTP_SERVED | HTTP_PAUSED | HTTP_STREAM;
    sl__conn_set_deadline(c, 0);
    return 0;
  }
  if (kind != HANDOFF_IDLE)
    return -EPROTO;
  uint8_t served = sl__wire_get_u8(in);
  size_t len;
  const unsigned char *rest = sl__wire_get_bytes(in, &len);
  if (in->bad)
    return -EPROTO;
  backlog_t *b = malloc(sizeof *b + (len ? len : 1));
  if (b == NULL)
    return -ENOMEM;
  b->len = len;
  if (len)
    memcpy(b->bytes, rest, len);
  h->u.backlog = b;
  h->hflags |= HTTP_BACKLOG | (served ? HTTP_SERVED : 0);
  c->flags |= SL_CONN_READ_PAUSED; /* until the backlog is parsed: http_writable */
  sl__conn_set_deadline(c, sl__transport_now(c->net) + ms(ctx->cfg->idle_timeout));
  return 0;
}

static const sl_conn_cbs_t http_cbs = {
  .on_data = http_data,
  .on_eof = http_eof,
  .on_timeout = http_timeout,
  .on_writable = http_writable,
  .on_close = http_close,
  .on_shutdown = http_shutdown,
  .on_end = http_end,
  .on_quiesce = http_quiesce,
  .on_export = http_export,
  .on_thaw = http_thaw,
};

void sl__http_attach(sl_transport_t *t, sl_http_ctx_t *ctx) {
  sl__transport_set_protocol(t, &http_cbs, sizeof(http_conn_t), http_open, ctx);
  t->proto_adopt = http_adopt;
}
