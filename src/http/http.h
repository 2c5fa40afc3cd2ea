/* http.h — HTTP/1.1 on top of llhttp (the only file that calls llhttp is http.c): requests in,
 * with the limits that keep a hub safe (header, URL and body sizes, header timeout), routed to
 * the endpoints; responses out, as raw frames on the connection's queue. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "net/worker.h"

#define SL_HTTP_MAX_HEADER 8192   /* bytes of request line + headers (431 / 414 past it) */
#define SL_HTTP_MAX_URL 8192

typedef enum {
  SL_H_AUTHORIZATION = 0,
  SL_H_LAST_EVENT_ID,
  SL_H_CONTENT_TYPE,
  SL_H_COOKIE,
  SL_H_EXPECT,
  SL_H_ORIGIN,
  SL_H_REFERER,
  SL_H_HOST,
  SL_H_COUNT,
} sl_header_id_t;

/* The request being read. Owned by its connection; freed once answered. */
struct sl_request_s {
  uint64_t start_ns;           /* when its first byte arrived */
  size_t header_bytes;
  char *url;
  size_t url_len, url_cap;
  char field[32];              /* the header name being read (longer names are not ours) */
  size_t field_len;
  int cur;                     /* sl_header_id_t being captured, or -1 */
  char *hv[SL_H_COUNT];        /* captured header values, NUL-terminated */
  size_t hv_len[SL_H_COUNT];
  char *body;
  size_t body_len, body_cap;
  int status;                  /* set by a callback that rejects the request */
  const char *reason;
};

void sl__http_conn_init(sl_conn_t *c);
void sl__http_feed(sl_conn_t *c, const char *data, size_t len);
void sl__http_feed_eof(sl_conn_t *c);
void sl__http_timeout(sl_conn_t *c);
void sl__http_request_free(sl_conn_t *c);

/* Queues a whole response. headers: extra "Name: value\r\n" lines, or NULL. */
void sl__http_respond(sl_conn_t *c, int status, const char *headers, const char *content_type,
                      const char *body, size_t len);
/* A text/plain error whose body says what was wrong. */
void sl__http_error(sl_conn_t *c, int status, const char *headers, const char *what);

/* 1 when the client asked for HTTP/1.1 or later. */
int sl__http_is_11(const sl_conn_t *c);

/* Endpoint handlers (subscribe.c, publish.c). The request is c->req. */
void sl__handle_subscribe(sl_conn_t *c, const char *query, size_t query_len);
void sl__handle_publish(sl_conn_t *c);

/* Verifies the request's token for role, by policy.c's rules (sl__auth_request). Returns 0 with
 * *present 0 when there is none (the caller decides whether that is allowed), 0 with *present 1
 * and claims filled when it is valid, or -1 after answering 400 (malformed presentation), 401
 * (invalid token, no key for the role) or 403 (a cookie publish from another origin). */
int sl__http_authenticate(sl_conn_t *c, sl_role_t role, sl_claims_t *claims, int *present);

#endif
