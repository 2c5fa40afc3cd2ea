/* url.h — a topic or a hub URL split into the eight components a URL pattern matches
 * (protocol, username, password, hostname, port, pathname, search, hash), after resolving it
 * against a base and canonicalizing it. The only file that knows liburiparser is url.c.
 *
 * Ownership: an sl_url_t owns one buffer holding every component (NUL-terminated, one after the
 * other); sl__url_free releases it. Immutable once parsed: safe to read from any thread.
 */
#ifndef SL_URL_H
#define SL_URL_H

#include <stddef.h>

enum {
  SL_URL_PROTOCOL = 0,           /* the scheme, lowercase, without ":" */
  SL_URL_USERNAME,
  SL_URL_PASSWORD,
  SL_URL_HOSTNAME,               /* lowercase; an IPv6 address in brackets */
  SL_URL_PORT,                   /* "" when absent or the scheme's default */
  SL_URL_PATHNAME,
  SL_URL_SEARCH,                 /* without "?" */
  SL_URL_HASH,                   /* without "#" */
  SL_URL_PARTS
};

typedef struct sl_url_s {
  char *buf;
  const char *part[SL_URL_PARTS];
  size_t len[SL_URL_PARTS];
  int special;                   /* the scheme is one of WHATWG's special ones (http, https, ws,
                                    wss, ftp, file) */
  int opaque;                    /* no authority and no absolute path ("urn:x", "mailto:y") */
} sl_url_t;

/* Parses text (len bytes, UTF-8) as a URL reference resolved against base (an absolute URL,
 * NUL-terminated; NULL = text must be absolute). 0 and *url filled, -EINVAL when it does not
 * parse (or is relative without a base), -ENOMEM. On error *url is empty. */
int sl__url_parse(sl_url_t *url, const char *text, size_t len, const char *base);

void sl__url_free(sl_url_t *url);

/* The default port of a special scheme (len bytes, lowercase), as text, or NULL. */
const char *sl__url_default_port(const char *scheme, size_t len);

/* 1 when scheme (len bytes, lowercase) is special. */
int sl__url_is_special(const char *scheme, size_t len);

#endif
