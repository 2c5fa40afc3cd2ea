/* subscriptions_api.c — the Subscription API: GET (and HEAD) of the hub's path +
 * "/subscriptions" (every active subscription), + "/{match_type}/{match}" (those of one topic
 * matcher) and + "/{match_type}/{match}/{subscriber}" (one), each segment percent-decoded. The
 * client must present a subscriber token granting subscribe on the resource's path, in the
 * canonical form the subscription events' topics use, so one grant covers a subscription's events
 * and its resource alike. The answer is JSON with the reconciliation cursor on the rel="mercure"
 * Link header: the id of the last update the hub stored when the list was taken, so a client that
 * subscribes to the events with last_event_id=<cursor> misses no change and sees none twice. The
 * documents and the cursor are the registry's (subscriptions.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/percent.h"
#include "common/validate.h"
#include "mercure/discovery.h"
#include "mercure/mercure.h"

#define MAX_SEGMENTS 3
#define WHAT_MAX 200

typedef struct segment_s {
  char *text;                    /* decoded, malloc'ed, NUL-terminated */
  size_t len;
} segment_t;

/* Splits and decodes the path after "/subscriptions": 0 with *n segments; -ENOENT when the path
 * names no resource; -EINVAL (*why says why) for a malformed segment; -ENOMEM. */
static int read_segments(const char *rest, size_t len, segment_t seg[MAX_SEGMENTS], size_t *n,
                         const char **why) {
  *n = 0;
  if (len == 0)
    return 0;
  size_t i = 1; /* rest[0] is the '/' the router saw */
  while (i <= len) {
    size_t j = i;
    while (j < len && rest[j] != '/')
      j++;
    if (j == i || *n == MAX_SEGMENTS)
      return -ENOENT;
    segment_t *s = &seg[(*n)++];
    if ((s->text = malloc(j - i + 1)) == NULL)
      return -ENOMEM;
    if (sl__pct_decode(s->text, rest + i, j - i, &s->len)) {
      *why = "a path segment holds a '%' that does not start %XX";
      return -EINVAL;
    }
    s->text[s->len] = '\0';
    if (s->len == 0 || sl__check_matcher(s->text, s->len, why))
      return s->len == 0 ? -ENOENT : -EINVAL;
    i = j + 1;
  }
  return *n == 1 ? -ENOENT : 0;
}

/* 1 when s can be an entity-tag's content (RFC 9110 etagc: no '"', no space or control). */
static int etag_safe(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || *s == '"' || *s == 0x7f)
      return 0;
  return 1;
}

/* The head's extra lines: the cursor on the Link header (and as the ETag: every change of the
 * list publishes an event, so an unchanged cursor means an unchanged list). malloc'ed; NULL when
 * out of memory. */
static char *answer_headers(const sl_discovery_t *d, const char *cursor) {
  int safe = etag_safe(cursor);
  size_t cap = strlen(d->hub_url) + 2 * strlen(cursor) + (safe ? strlen(cursor) : 0) + 192;
  char *h = malloc(cap);
  if (h == NULL)
    return NULL;
  size_t n = sl__discovery_link(d, cursor, "mercure", "application/json", h, cap);
  if (safe)
    n += (size_t)snprintf(h + n, cap - n, "ETag: \"%s\"\r\n", cursor);
  snprintf(h + n, cap - n, "Cache-Control: no-cache\r\n");
  return h;
}

/* 0 when the request's subscriber token grants subscribe on path; else an answer was sent. */
static int authorize(sl_mercure_t *m, sl_conn_t *c, sl_request_t *r, const char *path,
                     size_t len) {
  sl_claims_t claims = {0};
  int present;
  char what[WHAT_MAX];
  if (sl__mercure_authenticate(m, c, r, SL_ROLE_SUBSCRIBER, &claims, &present))
    return -1;
  int ok = present && sl__selectors_match(claims.subscribe, claims.subscribe_count, path, len);
  sl__claims_free(&claims);
  if (ok)
    return 0;
  if (!present) {
    snprintf(what, sizeof what, "the subscription API needs a subscriber token granting "
             "subscribe on '%.120s'", path);
    sl__mercure_challenge(m, c, 401, NULL, NULL, what);
  } else {
    snprintf(what, sizeof what, "the token does not grant subscribe on '%.140s'", path);
    sl__mercure_challenge(m, c, 403, "insufficient_scope", NULL, what);
  }
  return -1;
}

void sl__mercure_subscriptions(sl_conn_t *c, sl_request_t *r, void *arg) {
  sl_mercure_t *m = arg;
  segment_t seg[MAX_SEGMENTS] = {{0}};
  size_t n = 0, path_len = 0, body_len = 0;
  char *path = NULL, *body = NULL, *cursor = NULL, *headers = NULL;
  const char *why = "";
  char what[WHAT_MAX];

  size_t root = strlen(m->path) + sizeof "/subscriptions" - 1;
  int e = read_segments(r->path + root, r->path_len - root, seg, &n, &why);
  if (e == -ENOENT) {
    sl__http_error(c, 404, NULL, "no such resource: the subscription API answers "
                   "subscriptions, subscriptions/{match_type}/{match} and "
                   "subscriptions/{match_type}/{match}/{subscriber}");
    goto out;
  }
  if (e == -EINVAL) {
    snprintf(what, sizeof what, "subscription API path: %s", why);
    sl__http_error(c, 400, NULL, what);
    goto out;
  }
  if (e || (path = sl__subs_path(m->path, n > 0 ? seg[0].text : NULL, seg[0].len,
                                 n > 1 ? seg[1].text : NULL, seg[1].len,
                                 n > 2 ? seg[2].text : NULL, seg[2].len, &path_len)) == NULL) {
    sl__http_error(c, 500, NULL, "out of memory");
    goto out;
  }
  if (authorize(m, c, r, path, path_len))
    goto out;
  sl_subs_query_t q = {
    .type = n > 0 ? seg[0].text : NULL, .type_len = seg[0].len,
    .match = n > 1 ? seg[1].text : NULL, .match_len = seg[1].len,
    .subscriber = n > 2 ? seg[2].text : NULL, .subscriber_len = seg[2].len,
    .id = path, .id_len = path_len,
  };
  e = sl__subs_query(m->subs, &q, &body, &body_len, &cursor);
  if (e == -ENOENT) {
    sl__http_error(c, 404, NULL, "no such active subscription");
    goto out;
  }
  if (e || (headers = answer_headers(m->discovery, cursor ? cursor : "earliest")) == NULL) {
    sl__http_error(c, 500, NULL, "out of memory");
    goto out;
  }
  sl__http_respond(c, 200, headers, "application/json", body, body_len);
out:
  for (size_t i = 0; i < MAX_SEGMENTS; i++)
    free(seg[i].text);
  free(path);
  free(body);
  free(cursor);
  free(headers);
}
