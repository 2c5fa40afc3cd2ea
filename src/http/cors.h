/* cors.h — Cross-Origin Resource Sharing (Fetch standard) for the routes that take an allowlist
 * (sl_route_t.cors): the response lines an allowed Origin gets on every answer of such a route,
 * error or stream head alike, and the answer to a preflight (OPTIONS). It only computes them:
 * http.c adds the lines to answers, and answers a preflight when a route's OPTIONS handler calls
 * sl__http_preflight (http.h). An Origin not in the list
 * gets no CORS lines, so the browser keeps the answer from the page; a preflight from it is
 * answered 403 saying so. A named origin is echoed with Access-Control-Allow-Credentials: true
 * (the token cookie); the list "*" gives "*" and never credentials, as the Mercure spec requires
 * of a credentialed endpoint. */
#ifndef SL_CORS_H
#define SL_CORS_H

#include <stddef.h>

#include "common/origin.h"

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
 * their length returned; 0 when there are none. credentialed: the request carries a cookie (a
 * browser sends one across origins only in credentials mode "include"): with "*" it gets no
 * Allow-Origin at all, as the Mercure spec forbids "*" on a credentialed answer, and the browser
 * keeps the answer from the page. cap >= SL_CORS_LINES_MAX. */
size_t sl__cors_lines(const sl_origins_t *o, const char *origin, int credentialed, char *buf,
                      size_t cap);

/* The answer to an OPTIONS request with Origin origin and Access-Control-Request-Method
 * acr_method (each NULL when absent) on a route with allowlist o (NULL: none) that allows
 * methods ("GET, POST, OPTIONS"): returns 204 with lines filled (Allow for a plain OPTIONS; for a
 * preflight from an allowed origin, the Access-Control-Allow-Methods/-Headers and Max-Age lines,
 * to which the answer adds sl__cors_lines as to every answer), or 403 with what filled (the
 * origin is not allowed; it names --cors-origin). lines: >= 256 + strlen(methods) bytes. */
int sl__cors_preflight(const sl_origins_t *o, const char *origin, const char *acr_method,
                       const char *methods, char *lines, size_t lines_cap, char *what,
                       size_t what_cap);

#endif
