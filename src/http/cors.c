/* cors.c — CORS answers (see cors.h): the lines of an allowed origin's answers, and preflights. */
#include "http/cors.h"

#include <stdio.h>
#include <string.h>

size_t sl__cors_lines(const sl_origins_t *o, const char *origin, int credentialed, char *buf,
                      size_t cap) {
  buf[0] = '\0';
  if (o == NULL || (!o->any && o->count == 0))
    return 0;
  int n;
  if (o->any) {
    if (origin == NULL || credentialed)
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

int sl__cors_preflight(const sl_origins_t *o, const char *origin, const char *acr_method,
                       const char *methods, char *lines, size_t lines_cap, char *what,
                       size_t what_cap) {
  if (origin == NULL || acr_method == NULL) {
    snprintf(lines, lines_cap, "Allow: %s\r\n", methods);
    return 204;
  }
  if (o == NULL || (!o->any && sl__origins_find(o, origin) == NULL)) {
    snprintf(what, what_cap, "cross-origin requests from %.100s are not allowed: the hub "
             "accepts the origins its --cors-origin lists%s", origin,
             o == NULL || (!o->any && o->count == 0) ? " (none is set)" : "");
    return 403;
  }
  snprintf(lines, lines_cap, "Access-Control-Allow-Methods: %s\r\n"
           "Access-Control-Allow-Headers: " SL_CORS_ALLOW_HEADERS "\r\n"
           "Access-Control-Max-Age: " SL_CORS_MAX_AGE "\r\n", methods);
  return 204;
}
