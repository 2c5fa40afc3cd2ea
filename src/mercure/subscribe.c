/* subscribe.c — GET /.well-known/mercure: reads the topic matchers and the resume cursor,
 * authenticates the subscriber, registers it with the worker's broker and opens the event
 * stream: the response head, an initial comment so clients and proxies see the stream open, the
 * updates replayed from history, then live updates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/form.h"
#include "http/http.h"
#include "core/hub.h"
#include "common/log.h"
#include "common/validate.h"

#define MAX_MATCHERS 256
#define MAX_MATCHER_LEN 4096

typedef struct replay_s {
  sl_sub_t *sub;
  sl_frame_t **frames;
  size_t count, cap;
  int failed;
} replay_t;

static void replay_visit(sl_frame_t *f, void *arg) {
  replay_t *rp = arg;
  if (rp->failed || !sl_sub_wants(rp->sub, f))
    return;
  if (rp->count == rp->cap) {
    size_t cap = rp->cap ? rp->cap * 2 : 64;
    sl_frame_t **p = realloc(rp->frames, cap * sizeof *p);
    if (p == NULL) {
      rp->failed = 1;
      return;
    }
    rp->frames = p;
    rp->cap = cap;
  }
  rp->frames[rp->count++] = sl_frame_ref(f);
}

static void replay_free(replay_t *rp) {
  for (size_t i = 0; i < rp->count; i++)
    sl_frame_unref(rp->frames[i]);
  free(rp->frames);
}

static int is_matcher_name(const char *name) {
  return strcmp(name, "match") == 0 || strcmp(name, "match_exact") == 0 ||
         strcmp(name, "topic") == 0;
}

/* Authenticates the subscriber. 0 and claims filled (has_token set), or an answer was sent. */
static int subscriber_auth(sl_conn_t *c, sl_claims_t *claims, int *has_token) {
  if (sl__http_authenticate(c, SL_ROLE_SUBSCRIBER, claims, has_token))
    return -1;
  if (!*has_token && !c->worker->hub->cfg.anonymous) {
    sl__http_error(c, 401, "WWW-Authenticate: Bearer\r\n",
                   "this hub needs a subscriber token (Authorization: Bearer, or the "
                   "mercureAuthorization cookie)");
    return -1;
  }
  return 0;
}

static void stream_open(sl_conn_t *c, const char *cursor, replay_t *rp, int found) {
  sl_worker_t *w = c->worker;
  char head[512 + MAX_MATCHER_LEN];
  int chunked = sl__http_is_11(c);
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n%s%s%s%s\r\n",
                   chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n",
                   cursor ? "Mercure-Last-Event-ID: " : "",
                   cursor ? (found ? cursor : "earliest") : "", cursor ? "\r\n" : "");
  c->flags |= SL_CONN_STREAM | (chunked ? SL_CONN_CHUNKED : 0);
  c->deadline = 0;
  sl_conn_send_raw(c, head, (size_t)n);
  sl_conn_send(c, &sl_frame_heartbeat);
  for (size_t i = 0; i < rp->count; i++)
    sl_conn_send_opening(c, rp->frames[i]);
  c->q_opening = c->q_bytes; /* all at the queue's front: written before anything live */
  sl_metric_add(&w->metrics.requests_total, 1);
  sl_metric_add(&w->metrics.subscribers, 1);
  if (cursor) {
    sl_metric_add(&w->metrics.resumes_total, 1);
    sl_metric_add(&w->metrics.replayed_total, rp->count);
  }
}

void sl__handle_subscribe(sl_conn_t *c, const char *query, size_t query_len) {
  sl_worker_t *w = c->worker;
  sl_hub_t *hub = w->hub;
  sl_form_t form = {0};
  sl_claims_t claims = {0};
  replay_t rp = {0};
  const char *matchers[MAX_MATCHERS];
  size_t lens[MAX_MATCHERS];
  size_t n = 0;
  const char *cursor = NULL, *legacy_cursor = NULL;
  char what[160];
  const char *why;

  if (w->draining) {
    sl__http_error(c, 503, "Retry-After: 5\r\n", "the hub is shutting down; reconnect shortly");
    return;
  }
  if (sl_form_parse(&form, query, query_len)) {
    sl__http_error(c, 500, NULL, "out of memory");
    return;
  }
  for (size_t i = 0; i < form.count; i++) {
    const sl_pair_t *p = &form.pairs[i];
    if (is_matcher_name(p->name)) {
      if (n == MAX_MATCHERS || p->value_len > MAX_MATCHER_LEN) {
        sl__http_error(c, 400, NULL, "too many topic matchers (256 at most) or one longer than 4096 bytes");
        goto out;
      }
      if (sl_check_matcher(p->value, p->value_len, &why)) {
        snprintf(what, sizeof what, "%s: %s", p->name, why);
        sl__http_error(c, 400, NULL, what);
        goto out;
      }
      matchers[n] = p->value;
      lens[n++] = p->value_len;
    } else if (strcmp(p->name, "last_event_id") == 0) {
      if (cursor == NULL)
        cursor = p->value;
    } else if (strcmp(p->name, "lastEventID") == 0) {
      if (legacy_cursor == NULL)
        legacy_cursor = p->value;
    } else if (strncasecmp(p->name, "match", 5) == 0) {
      snprintf(what, sizeof what, "unknown or unsupported topic matcher type '%.60s' (this hub "
               "supports match, match_exact and topic)", p->name);
      sl__http_error(c, 400, NULL, what);
      goto out;
    }
  }
  if (n == 0) {
    sl__http_error(c, 400, NULL, "give at least one topic matcher: ?match=<topic> (or topic=); "
                   "* selects every topic");
    goto out;
  }
  if (cursor == NULL)
    cursor = legacy_cursor;
  if (c->req->hv[SL_H_LAST_EVENT_ID])
    cursor = c->req->hv[SL_H_LAST_EVENT_ID];
  if (cursor && (cursor[0] == '\0' || sl_check_text(cursor, strlen(cursor), &why))) {
    if (cursor[0] == '\0') {
      cursor = NULL; /* EventSource sends an empty Last-Event-ID before it saw any id */
    } else {
      snprintf(what, sizeof what, "Last-Event-ID: %s", why);
      sl__http_error(c, 400, NULL, what);
      goto out;
    }
  }
  int has_token;
  if (subscriber_auth(c, &claims, &has_token))
    goto out;

  sl_sub_t *sub = sl_sub_new(c, matchers, lens, n, &claims, has_token);
  if (sub == NULL || sl_broker_add(&w->broker, sub)) {
    if (sub)
      sl_broker_remove(&w->broker, sub);
    sl__http_error(c, 500, NULL, "out of memory");
    goto out;
  }
  c->sub = sub;
  if (sub->claims.exp > 0) {
    int64_t left = sub->claims.exp - (int64_t)time(NULL);
    c->token_exp = sl_worker_now(w) + (uint64_t)(left > 0 ? left : 0) * 1000 + 1;
  }
  /* Everything up to what this worker already dispatched comes from history; everything after
   * arrives through the inbox, so nothing is missed and nothing is sent twice. */
  int found = 0;
  rp.sub = sub;
  if (cursor)
    sl__hub_replay(hub, cursor, w->dispatched_seq, replay_visit, &rp, &found);
  sub->last_seq = w->dispatched_seq;
  stream_open(c, cursor, &rp, found);
  sl__http_request_free(c);
out:
  replay_free(&rp);
  sl_claims_free(&claims);
  sl_form_free(&form);
}
