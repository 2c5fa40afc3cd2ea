/* cors.h — Cross-Origin Resource Sharing (Fetch standard) for the routes that take an allowlist
 * (sl_route_t.cors): the response lines an allowed Origin gets on every answer of such a route,
 * error or stream head alike (http.c adds them), and the answer to a preflight (OPTIONS) that any
 * such route's OPTIONS handler gives by calling sl__cors_preflight. An Origin not in the list
 * gets no CORS lines, so the browser keeps the answer from the page; a preflight from it is
 * answered 403 saying so. A named origin is echoed with Access-Control-Allow-Credentials: true
 * (the token cookie); the list "*" gives "*" and never credentials, as the Mercure spec requires
 * of a credentialed endpoint. */
#ifndef SL_CORS_H
#define SL_CORS_H

#include <stddef.h>

#include "common/origin.h"
#include "http/http.h"

/* Room for the lines of one answer: fixed text plus one normalised origin. */
#define SL_CORS_LINES_MAX (SL_ORIGIN_MAX + 256)

/* What a client of the hub reads from an answer (EventSource polyfills, fetch readers). */
#define SL_CORS_EXPOSE "Mercure-Last-Event-ID, Last-Event-ID, Link, Retry-After, WWW-Authenticate"
/* What a page may send: the token, a form body, the resume cursor, what polyfills add. */
#define SL_CORS_ALLOW_HEADERS \
  "Authorization, Content-Type, Last-Event-ID, Cache-Control, X-Requested-With"
#define SL_CORS_MAX_AGE "600"

/* The CORS lines ("Name: value\r\n"...) for an answer to a request whose Origin header is origin
 * (NULL: none) on a route with allowlist o (NULL: none): written into buf (NUL-terminated), and
 * their length returned; 0 when there are none. cap >= SL_CORS_LINES_MAX. */
size_t sl__cors_lines(const sl_origins_t *o, const char *origin, char *buf, size_t cap);

/* Answers the OPTIONS request r of a route that allows methods ("GET, POST, OPTIONS"): 204 with
 * Allow for a plain OPTIONS; for a CORS preflight (Origin and Access-Control-Request-Method),
 * 204 with the Access-Control-Allow-* lines when r's route allows its origin (r->cors), else 403
 * naming --cors-origin. */
void sl__cors_preflight(sl_conn_t *c, const sl_request_t *r, const char *methods);

#endif
