/* cors.c — CORS answers (see cors.h): the lines of an allowed origin's answers, and preflights. */
#include "http/cors.h"

#include <stdio.h>
#include <string.h>

size_t sl__cors_lines(const sl_origins_t *o, const char *origin, char *buf, size_t cap) {
  buf[0] = '\0';
  if (o == NULL || (!o->any && o->count == 0))
    return 0;
  int n;
  if (o->any) {
    if (origin == NULL)
      return 0;
    /* The same answer for every origin: no Vary, and no credentials ever. */
    n = snprintf(buf, cap, "Access-Control-Allow-Origin: *\r\n"
                 "Access-Control-Expose-Headers: " SL_CORS_EXPOSE "\r\n");
  } else {
    /* The answer depends on Origin, even when it carries no CORS lines: a cache must not give
     * one origin's answer to another. */
    const char *allowed = sl__origins_find(o, origin);
    if (allowed)
      n = snprintf(buf, cap, "Vary: Origin\r\nAccess-Control-Allow-Origin: %s\r\n"
                   "Access-Control-Allow-Credentials: true\r\n"
                   "Access-Control-Expose-Headers: " SL_CORS_EXPOSE "\r\n", allowed);
    else
      n = snprintf(buf, cap, "Vary: Origin\r\n");
  }
  if (n < 0 || (size_t)n >= cap) {
    buf[0] = '\0';
    return 0;
  }
  return (size_t)n;
}

void sl__cors_preflight(sl_conn_t *c, const sl_request_t *r, const char *methods) {
  char lines[256];
  const char *origin = r->hv[SL_H_ORIGIN];
  if (origin == NULL || r->hv[SL_H_ACR_METHOD] == NULL) {
    snprintf(lines, sizeof lines, "Allow: %s\r\n", methods);
    sl__http_respond(c, 204, lines, NULL, "", 0);
    return;
  }
  const sl_origins_t *o = r->cors;
  if (o == NULL || (!o->any && sl__origins_find(o, origin) == NULL)) {
    char what[256];
    snprintf(what, sizeof what, "cross-origin requests from %.100s are not allowed: the hub "
             "accepts the origins its --cors-origin lists%s", origin,
             o == NULL || (!o->any && o->count == 0) ? " (none is set)" : "");
    sl__http_error(c, 403, NULL, what);
    return;
  }
  /* http.c adds the Allow-Origin and Allow-Credentials lines, as to every answer of the route. */
  snprintf(lines, sizeof lines, "Access-Control-Allow-Methods: %s\r\n"
           "Access-Control-Allow-Headers: " SL_CORS_ALLOW_HEADERS "\r\n"
           "Access-Control-Max-Age: " SL_CORS_MAX_AGE "\r\n", methods);
  sl__http_respond(c, 204, lines, NULL, "", 0);
}
