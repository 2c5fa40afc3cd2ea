/* url.c — URLs for URL-pattern matching, through liburiparser (RFC 3986): parse, resolve against
 * the hub's URL, normalize (lowercase scheme and host, uppercase percent-encodings, decode the
 * unreserved ones, remove dot segments), then drop a special scheme's default port and give a
 * special URL's empty path as "/". It owns no state.
 *
 * Where this differs from the WHATWG URL parser the URL Pattern standard names: characters RFC
 * 3986 forbids (space, '"', '<', '>', '\', '^', '`', '{', '|', '}', a second '#', non-ASCII) are
 * percent-encoded before parsing rather than per component set, and '\' is not read as '/';
 * percent-encoded unreserved characters are decoded (WHATWG keeps "%6D" as is), so that
 * "/%6Dercure" and "/mercure" are one topic, as the spec's reserved-namespace rule wants; hosts
 * are not IDNA-processed, IPv4 numbers are not rewritten and IPv6 addresses are not compressed;
 * '[' and ']' outside a host make a topic unparsable (so it matches no pattern). */
#include "topics/url.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uriparser/Uri.h>

static const struct {
  const char *scheme, *port;
} specials[] = {{"http", "80"}, {"https", "443"}, {"ws", "80"}, {"wss", "443"}, {"ftp", "21"},
                {"file", NULL}};

int sl__url_is_special(const char *scheme, size_t len) {
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
    if (strlen(specials[i].scheme) == len && memcmp(specials[i].scheme, scheme, len) == 0)
      return 1;
  return 0;
}

const char *sl__url_default_port(const char *scheme, size_t len) {
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
    if (strlen(specials[i].scheme) == len && memcmp(specials[i].scheme, scheme, len) == 0)
      return specials[i].port;
  return NULL;
}

/* text with the bytes RFC 3986 forbids percent-encoded; NULL when out of memory, or (with
 * *bad set) when it holds a control character, which no URL may. */
static char *pre_encode(const char *text, size_t len, int *bad) {
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc(len * 3 + 1);
  if (out == NULL)
    return NULL;
  size_t n = 0;
  int hash = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c < 0x20 || c == 0x7f) {
      *bad = 1;
      free(out);
      return NULL;
    }
    if (c >= 0x80 || strchr(" \"<>\\^`{|}", c) || (c == '#' && hash)) {
      out[n++] = '%';
      out[n++] = hex[c >> 4];
      out[n++] = hex[c & 15];
      continue;
    }
    hash |= c == '#';
    out[n++] = (char)c;
  }
  out[n] = '\0';
  return out;
}

static size_t range_len(const UriTextRangeA *r) {
  return r->first ? (size_t)(r->afterLast - r->first) : 0;
}

/* Appends len bytes and a NUL at *p, recording them as component k. */
static void put(sl_url_t *url, char **p, int k, const char *s, size_t len) {
  url->part[k] = *p;
  url->len[k] = len;
  if (len)
    memcpy(*p, s, len);
  (*p)[len] = '\0';
  *p += len + 1;
}

static int fill(sl_url_t *url, const UriUriA *u) {
  size_t scheme = range_len(&u->scheme), info = range_len(&u->userInfo),
         host = range_len(&u->hostText), port = range_len(&u->portText),
         query = range_len(&u->query), frag = range_len(&u->fragment), path = 1;
  for (const UriPathSegmentA *s = u->pathHead; s; s = s->next)
    path += range_len(&s->text) + 1;
  char *buf = malloc(scheme + info + host + 2 + port + path + query + frag + SL_URL_PARTS);
  if (buf == NULL)
    return -ENOMEM;
  char *p = buf;
  url->buf = buf;
  put(url, &p, SL_URL_PROTOCOL, u->scheme.first, scheme);
  url->special = sl__url_is_special(url->part[SL_URL_PROTOCOL], scheme);
  const char *colon = info ? memchr(u->userInfo.first, ':', info) : NULL;
  size_t user = colon ? (size_t)(colon - u->userInfo.first) : info;
  put(url, &p, SL_URL_USERNAME, u->userInfo.first, user);
  put(url, &p, SL_URL_PASSWORD, colon ? colon + 1 : "", colon ? info - user - 1 : 0);
  url->part[SL_URL_HOSTNAME] = p;
  if (u->hostData.ip6 || u->hostData.ipFuture.first)
    *p++ = '[';
  memcpy(p, u->hostText.first ? u->hostText.first : "", host);
  p += host;
  if (u->hostData.ip6 || u->hostData.ipFuture.first)
    *p++ = ']';
  url->len[SL_URL_HOSTNAME] = (size_t)(p - url->part[SL_URL_HOSTNAME]);
  *p++ = '\0';
  const char *def = sl__url_default_port(url->part[SL_URL_PROTOCOL], scheme);
  int drop = def && strlen(def) == port && memcmp(def, u->portText.first, port) == 0;
  put(url, &p, SL_URL_PORT, u->portText.first, drop ? 0 : port);
  url->part[SL_URL_PATHNAME] = p;
  int authority = u->hostText.first != NULL;
  url->opaque = !authority && !u->absolutePath;
  for (const UriPathSegmentA *s = u->pathHead; s; s = s->next) {
    if (authority || u->absolutePath || s != u->pathHead)
      *p++ = '/';
    memcpy(p, s->text.first ? s->text.first : "", range_len(&s->text));
    p += range_len(&s->text);
  }
  if (p == url->part[SL_URL_PATHNAME] && url->special)
    *p++ = '/';
  url->len[SL_URL_PATHNAME] = (size_t)(p - url->part[SL_URL_PATHNAME]);
  *p++ = '\0';
  put(url, &p, SL_URL_SEARCH, u->query.first, query);
  put(url, &p, SL_URL_HASH, u->fragment.first, frag);
  return 0;
}

int sl__url_parse(sl_url_t *url, const char *text, size_t len, const char *base) {
  memset(url, 0, sizeof *url);
  int bad = 0;
  char *enc = pre_encode(text, len, &bad);
  if (enc == NULL)
    return bad ? -EINVAL : -ENOMEM;
  UriUriA rel, abs, b;
  const char *err;
  int r = -EINVAL;
  if (uriParseSingleUriA(&rel, enc, &err) != URI_SUCCESS) {
    free(enc);
    return -EINVAL;
  }
  UriUriA *u = &rel;
  int have_abs = 0, have_base = 0;
  if (rel.scheme.first == NULL) {
    if (base == NULL || uriParseSingleUriA(&b, base, &err) != URI_SUCCESS)
      goto out;
    have_base = 1;
    if (uriAddBaseUriA(&abs, &rel, &b) != URI_SUCCESS)
      goto out;
    have_abs = 1;
    u = &abs;
  }
  if (uriNormalizeSyntaxA(u) != URI_SUCCESS)
    goto out;
  r = fill(url, u);
out:
  if (have_abs)
    uriFreeUriMembersA(&abs);
  if (have_base)
    uriFreeUriMembersA(&b);
  uriFreeUriMembersA(&rel);
  free(enc);
  return r;
}

void sl__url_free(sl_url_t *url) {
  free(url->buf);
  memset(url, 0, sizeof *url);
}
