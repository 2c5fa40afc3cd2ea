/* response.h — the one builder of HTTP/1.1 response heads, for whole answers and stream heads
 * alike. The head is sized to what it holds, so no header value, however long, can overflow it. */
#ifndef SL_RESPONSE_H
#define SL_RESPONSE_H

#include <stddef.h>

#include "common/frame.h"

typedef struct sl_http_head_s {
  int status;
  const char *content_type;      /* NULL = none */
  const char *headers;           /* extra "Name: value\r\n" lines, or NULL */
  const char *more_headers;      /* more such lines (the CORS ones), or NULL */
  int has_length;                /* 1: Content-Length: length */
  size_t length;
  int chunked;                   /* 1: Transfer-Encoding: chunked */
  int close;                     /* 1: Connection: close */
} sl_http_head_t;

/* The reason phrase of a status code. */
const char *sl__http_status_text(int status);

/* The head, followed by body_len bytes of body (may be 0), as one raw frame (refs = 1). NULL when
 * out of memory. */
sl_frame_t *sl__http_response_frame(const sl_http_head_t *h, const char *body, size_t body_len);

#endif
