/* origin.c — web origins (see origin.h): taken out of a URL, normalised, kept in a list and
 * looked up. Lists are short (an operator's allowlist), so a lookup is a linear scan. */
#include "common/origin.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_scheme_char(unsigned char ch) {
  return isalnum(ch) || ch == '+' || ch == '-' || ch == '.';
}

static int is_host_char(unsigned char ch) {
  return isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '%';
}

/* The origin of url[0..len) into buf. *rest gets the length of what follows the authority. */
static int origin_of(const char *url, size_t len, char *buf, size_t cap, size_t *rest) {
  size_t i = 0;
  if (len == 0 || !isalpha((unsigned char)url[0]))
    return -EINVAL;
  while (i < len && is_scheme_char((unsigned char)url[i]))
    i++;
  size_t scheme_len = i;
  if (len - i < 3 || memcmp(url + i, "://", 3) != 0)
    return -EINVAL;
  i += 3;
  size_t host = i;
  if (i < len && url[i] == '[') {
    while (i < len && url[i] != ']') {
      unsigned char ch = (unsigned char)url[i];
      if (i > host && !isxdigit(ch) && ch != ':' && ch != '.')
        return -EINVAL;
      i++;
    }
    if (i == len || i == host + 1)
      return -EINVAL;
    i++;
  } else {
    while (i < len && is_host_char((unsigned char)url[i]))
      i++;
    if (i == host)
      return -EINVAL;
  }
  size_t host_len = i - host;
  unsigned long port = 0;
  int has_port = 0;
  if (i < len && url[i] == ':') {
    size_t digits = ++i;
    while (i < len && isdigit((unsigned char)url[i]) && i - digits < 5)
      port = port * 10 + (unsigned long)(url[i++] - '0');
    if (i == digits || port > 65535)
      return -EINVAL;
    has_port = 1;
  }
  /* Userinfo ("user@host"), a sixth port digit or any other character: not an origin. */
  if (i < len && url[i] != '/' && url[i] != '?' && url[i] != '#')
    return -EINVAL;
  *rest = len - i;
  if (has_port && ((scheme_len == 4 && strncasecmp(url, "http", 4) == 0 && port == 80) ||
                   (scheme_len == 5 && strncasecmp(url, "https", 5) == 0 && port == 443)))
    has_port = 0;
  char portbuf[8] = "";
  if (has_port)
    snprintf(portbuf, sizeof portbuf, ":%lu", port);
  int n = snprintf(buf, cap, "%.*s://%.*s%s", (int)scheme_len, url, (int)host_len, url + host,
                   portbuf);
  if (n < 0 || (size_t)n >= cap)
    return -EINVAL;
  for (size_t k = 0; k < scheme_len + 3 + host_len; k++)
    buf[k] = (char)tolower((unsigned char)buf[k]);
  return 0;
}

int sl__origin_of(const char *url, size_t len, char *buf, size_t cap) {
  size_t rest;
  return origin_of(url, len, buf, cap, &rest);
}

static int add(sl_origins_t *o, const char *norm) {
  for (size_t i = 0; i < o->count; i++)
    if (strcmp(o->items[i], norm) == 0)
      return 0;
  char **grown = realloc(o->items, (o->count + 1) * sizeof *grown);
  if (grown == NULL)
    return -ENOMEM;
  o->items = grown;
  if ((o->items[o->count] = strdup(norm)) == NULL)
    return -ENOMEM;
  o->count++;
  return 0;
}

int sl__origins_add_url(sl_origins_t *o, const char *url) {
  char norm[SL_ORIGIN_MAX];
  size_t rest;
  if (origin_of(url, strlen(url), norm, sizeof norm, &rest))
    return -EINVAL;
  return add(o, norm);
}

void sl__origins_free(sl_origins_t *o) {
  for (size_t i = 0; i < o->count; i++)
    free(o->items[i]);
  free(o->items);
  memset(o, 0, sizeof *o);
}

int sl__origins_parse(sl_origins_t *o, const char *list, int allow_any, char *why, size_t why_cap) {
  memset(o, 0, sizeof *o);
  if (list == NULL)
    return 0;
  for (const char *p = list; *p;) {
    p += strspn(p, ", \t");
    size_t n = strcspn(p, ", \t");
    if (n == 0)
      break;
    char norm[SL_ORIGIN_MAX];
    size_t rest = 0;
    int r = 0;
    if (n == 1 && p[0] == '*') {
      if (!allow_any) {
        snprintf(why, why_cap, "'*' is not accepted here: name each origin");
        r = -EINVAL;
      } else {
        o->any = 1;
      }
    } else if (origin_of(p, n, norm, sizeof norm, &rest) || rest > 0) {
      snprintf(why, why_cap, "'%.*s' is not an origin: write scheme://host[:port], with no path "
               "(e.g. https://app.example)", n > 80 ? 80 : (int)n, p);
      r = -EINVAL;
    } else {
      r = add(o, norm);
    }
    if (r) {
      sl__origins_free(o);
      return r;
    }
    p += n;
  }
  if (o->any && o->count > 0) {
    snprintf(why, why_cap, "'*' allows every origin and cannot be listed with named ones (a "
             "named origin gets credentials, '*' never does)");
    sl__origins_free(o);
    return -EINVAL;
  }
  return 0;
}

const char *sl__origins_find(const sl_origins_t *o, const char *url) {
  char norm[SL_ORIGIN_MAX];
  size_t rest;
  if (o == NULL || url == NULL || origin_of(url, strlen(url), norm, sizeof norm, &rest))
    return NULL;
  for (size_t i = 0; i < o->count; i++)
    if (strcmp(o->items[i], norm) == 0)
      return o->items[i];
  return NULL;
}
