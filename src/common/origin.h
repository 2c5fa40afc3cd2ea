/* origin.h — web origins (RFC 6454): "scheme://host[:port]", as an Origin header carries them.
 * A configured list of them (the CORS allowlist, the origins a cookie-authorised publish may come
 * from) is parsed once into normalised entries, and a request's Origin, or the URL in its
 * Referer, is compared with it. Normalised: scheme and host in lower case, the scheme's default
 * port (http 80, https 443) left out, so that "HTTPS://App.Example:443" and
 * "https://app.example" are the same origin. */
#ifndef SL_ORIGIN_H
#define SL_ORIGIN_H

#include <stddef.h>

#define SL_ORIGIN_MAX 512            /* bytes of one normalised origin */

typedef struct sl_origins_s {
  char **items;                      /* normalised, NUL-terminated */
  size_t count;
  int any;                           /* the list is "*": every origin, and never with credentials */
} sl_origins_t;

/* Parses list: origins separated by commas and/or spaces. allow_any: "*" is accepted, alone.
 * 0; -EINVAL with why (why_cap bytes) naming the entry and the rule it breaks; -ENOMEM. On
 * failure o is left empty. An empty or NULL list gives an empty o. */
int sl__origins_parse(sl_origins_t *o, const char *list, int allow_any, char *why, size_t why_cap);
/* Adds the origin of url (any absolute URL: "https://hub.example/.well-known/mercure"). 0,
 * -EINVAL when url has no origin, -ENOMEM. */
int sl__origins_add_url(sl_origins_t *o, const char *url);
void sl__origins_free(sl_origins_t *o);

/* The normalised origin of url (an Origin value, or a URL such as a Referer: what follows the
 * authority is ignored) into buf: 0, or -EINVAL when it has none ("null", no scheme, userinfo,
 * an empty host, a bad port) or it does not fit. */
int sl__origin_of(const char *url, size_t len, char *buf, size_t cap);

/* The entry of o that url's origin equals (a stored, normalised string), or NULL: also NULL
 * for a url without an origin. o->any matches nothing here: the caller decides what "*" means. */
const char *sl__origins_find(const sl_origins_t *o, const char *url);

#endif
