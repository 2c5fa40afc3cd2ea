/* response.c — HTTP/1.1 response heads (see response.h): measured, then written into one buffer
 * with the body, then made a raw frame. */
#include "http/response.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sl__http_status_text(int status) {
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
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

/* Writes the head into buf (cap bytes; buf may be NULL with cap 0) and returns its length, as
 * snprintf does. */
static int format_head(char *buf, size_t cap, const sl_http_head_t *h) {
  char length[32] = "";
  if (h->has_length)
    snprintf(length, sizeof length, "Content-Length: %zu\r\n", h->length);
  return snprintf(buf, cap, "HTTP/1.1 %d %s\r\n%s%s%s%s%s%s%s%s\r\n", h->status,
                  sl__http_status_text(h->status), length,
                  h->content_type ? "Content-Type: " : "", h->content_type ? h->content_type : "",
                  h->content_type ? "\r\n" : "", h->headers ? h->headers : "",
                  h->more_headers ? h->more_headers : "",
                  h->chunked ? "Transfer-Encoding: chunked\r\n" : "",
                  h->close ? "Connection: close\r\n" : "");
}

sl_frame_t *sl__http_response_frame(const sl_http_head_t *h, const char *body, size_t body_len) {
  assert(h->status >= 100 && h->status <= 999);
  int n = format_head(NULL, 0, h);
  if (n < 0)
    return NULL;
  size_t total = (size_t)n + body_len;
  char *buf = malloc(total + 1);
  if (buf == NULL)
    return NULL;
  if (format_head(buf, (size_t)n + 1, h) != n) {
    free(buf);
    return NULL;
  }
  if (body_len)
    memcpy(buf + n, body, body_len);
  sl_frame_t *f = sl__frame_raw(buf, total);
  free(buf);
  return f;
}
