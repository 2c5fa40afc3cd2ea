/* publish.c — POST /.well-known/mercure: authenticates the publisher, reads the form, checks
 * every field against the protocol's rules (each failure says which field and why), checks that
 * the token grants every topic, and hands the update to the bus. The answer is the update's id
 * only once the update has its place in the global order and in history. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/form.h"
#include "common/uuid.h"
#include "common/validate.h"
#include "mercure/mercure.h"

#define MAX_TOPICS 64

static int is_form(const char *ct) {
  static const char want[] = "application/x-www-form-urlencoded";
  if (ct == NULL)
    return 0;
  while (*ct == ' ')
    ct++;
  return strncasecmp(ct, want, sizeof want - 1) == 0 &&
         (ct[sizeof want - 1] == '\0' || ct[sizeof want - 1] == ';' || ct[sizeof want - 1] == ' ');
}

/* 0 with claims, or an answer was sent. */
static int publisher_auth(sl_mercure_t *m, sl_conn_t *c, const sl_request_t *r,
                          sl_claims_t *claims) {
  int present;
  if (sl__mercure_authenticate(m, c, r, SL_ROLE_PUBLISHER, claims, &present))
    return -1;
  if (!present) {
    sl__mercure_challenge(m, c, 401, NULL, NULL,
                          "publishing needs a token: Authorization: Bearer <JWT> (see `sluice "
                          "token`), or the cookie from a page of a trusted origin");
    return -1;
  }
  return 0;
}

/* Checks one optional single-valued field; 0, or an answer was sent. */
static int check_field(sl_conn_t *c, const sl_pair_t *p,
                       int (*check)(const char *, size_t, const char **)) {
  const char *why;
  if (p == NULL)
    return 0;
  int r = check(p->value, p->value_len, &why);
  if (r == 0)
    return 0;
  char what[200];
  snprintf(what, sizeof what, "field %s: %s", p->name, why);
  sl__http_error(c, r == -E2BIG ? 413 : (r == -ENOMEM ? 500 : 400), NULL, what);
  return -1;
}

/* The answer to a publish the bus took or refused at once. */
static void answer(sl_mercure_t *m, sl_conn_t *c, int e, const char *id, uint64_t seq,
                   uint64_t start_ns, const char *why) {
  if (e == -ESHUTDOWN) {
    sl__http_close_after(c);
    sl__http_error(c, 503, "Retry-After: 5\r\n",
                   "the hub is shutting down and accepts no more updates; retry on another node");
  } else if (e == -EINVAL) {
    sl__http_error(c, 400, NULL, why);
  } else if (e == -ENOSPC) {
    sl__http_error(c, 413, NULL, "field id: longer than 1023 bytes");
  } else if (e == -EAGAIN) {
    sl__http_error(c, 503, "Retry-After: 1\r\n",
                   "history is unavailable (the shared log cannot be reached); nothing was "
                   "stored: retry shortly");
  } else if (e) {
    sl__http_error(c, 500, NULL, "the update could not be stored");
  } else {
    sl__metric_add(&m->metrics->published_total, 1);
    /* Held: the answer is queued now and written once delivery catches up (delivery.c). */
    if (!sl__delivery_hold(m->dlv, c, seq, start_ns))
      sl__metrics_observe_latency(m->metrics, uv_hrtime() - start_ns);
    sl__http_respond(c, 200, NULL, "text/plain; charset=utf-8", id, strlen(id));
  }
}

/* A publish whose update a durable history stores later: the request waits (deferred), and this
 * answers it on the worker's thread once the update is committed. */
typedef struct later_s {
  sl_bus_pending_t pending;      /* first: the bus calls back through it */
  sl_http_deferred_t deferred;   /* http says when the connection closed first */
  sl_mercure_t *m;
  sl_conn_t *conn;               /* NULL once closed */
  uint64_t start_ns;
  char id[];
} later_t;

static void later_closed(sl_http_deferred_t *d) {
  later_t *l = (later_t *)((char *)d - offsetof(later_t, deferred));
  l->conn = NULL;
}

static void later_stored(sl_worker_call_t *call) {
  later_t *l = (later_t *)call;
  sl_conn_t *c = l->conn;
  sl_mercure_t *m = l->m;
  if (c == NULL) {
    free(l);
    return;
  }
  sl__http_resume(c, &l->deferred);
  if (l->pending.err) {
    int retry = l->pending.err == -ECANCELED || l->pending.err == -EAGAIN;
    sl__http_error(c, retry ? 503 : 500,
                   l->pending.err == -ECANCELED ? "Retry-After: 5\r\n"
                                                : (retry ? "Retry-After: 1\r\n" : NULL),
                   l->pending.err == -EAGAIN
                       ? "the shared log (Redis) could not be reached or did not confirm the "
                         "update: retry shortly (with the same id, to find out whether it was "
                         "stored)"
                       : "the update could not be stored (see the hub's log)");
  } else {
    sl__metric_add(&m->metrics->published_total, 1);
    sl__http_respond(c, 200, NULL, "text/plain; charset=utf-8", l->id, strlen(l->id));
    /* Then back-pressure, as for an update stored at once: its place is filled, and the
     * connection waits until delivery catches up. */
    if (!sl__delivery_hold(m->dlv, c, l->pending.seq, l->start_ns))
      sl__metrics_observe_latency(m->metrics, uv_hrtime() - l->start_ns);
  }
  free(l);
}

void sl__mercure_publish(sl_conn_t *c, sl_request_t *r, void *arg) {
  sl_mercure_t *m = arg;
  sl_form_t form = {0};
  sl_claims_t claims = {0};
  const char *topics[MAX_TOPICS];
  size_t ntopics = 0;
  const char *why;
  char what[256];

  if (sl__mercure_rate_limited(m, c, r) || publisher_auth(m, c, r, &claims))
    return;
  if (!is_form(r->hv[SL_H_CONTENT_TYPE])) {
    sl__http_error(c, 415, NULL, "publish with Content-Type: application/x-www-form-urlencoded");
    goto out;
  }
  if (sl__form_parse(&form, r->body ? r->body : "", r->body_len)) {
    sl__http_error(c, 500, NULL, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < form.count; i++) {
    const sl_pair_t *p = &form.pairs[i];
    if (strcmp(p->name, "topic") != 0)
      continue;
    if (ntopics == MAX_TOPICS) {
      sl__http_error(c, 413, NULL, "too many topic fields (64 at most)");
      goto out;
    }
    int e = sl__check_topic_at(p->value, p->value_len, m->path, &why);
    if (e) {
      snprintf(what, sizeof what, "field topic: %s", why);
      sl__http_error(c, e == -ENOMEM ? 500 : 400, NULL, what);
      goto out;
    }
    topics[ntopics++] = p->value;
  }
  if (ntopics == 0) {
    sl__http_error(c, 400, NULL, "missing field topic: an update needs at least one topic");
    goto out;
  }
  const sl_pair_t *data = sl__form_get(&form, "data");
  const sl_pair_t *id = sl__form_get(&form, "id");
  const sl_pair_t *type = sl__form_get(&form, "type");
  const sl_pair_t *retry = sl__form_get(&form, "retry");
  if (data && !sl__utf8_valid(data->value, data->value_len)) {
    sl__http_error(c, 400, NULL, "field data: not valid UTF-8");
    goto out;
  }
  if (check_field(c, id, sl__check_id) || check_field(c, type, sl__check_type) ||
      check_field(c, retry, sl__check_retry))
    goto out;
  for (size_t i = 0; i < ntopics; i++) {
    if (!sl__selectors_match(claims.publish, claims.publish_count, topics[i], strlen(topics[i]))) {
      snprintf(what, sizeof what, "the token does not allow publishing to topic '%.120s'", topics[i]);
      sl__mercure_challenge(m, c, 403, "insufficient_scope", NULL, what);
      goto out;
    }
  }

  sl_update_t u = {
    .topics = topics,
    .topic_count = ntopics,
    .data = data ? data->value : NULL,
    .data_len = data ? data->value_len : 0,
    .id = id ? id->value : NULL,
    .type = type ? type->value : NULL,
    .retry = retry ? retry->value : NULL,
    .is_private = sl__form_get(&form, "private") != NULL,
  };
  char idbuf[1024];
  uint64_t seq = 0;
  /* Room for the answer, should history store the update later: the id given, or one made. */
  size_t id_room = (id && id->value_len > SL_UUID_URN_LEN ? id->value_len : SL_UUID_URN_LEN) + 1;
  later_t *l = malloc(sizeof *l + (id_room < sizeof idbuf ? id_room : sizeof idbuf));
  if (l == NULL) {
    sl__http_error(c, 500, NULL, "out of memory");
    goto out;
  }
  l->pending.call.fn = later_stored;
  int e = sl__bus_publish_async(m->bus, &u, idbuf, sizeof idbuf, &seq, &why, m->worker,
                                &l->pending);
  if (e == 1) {
    l->deferred.on_close = later_closed;
    l->m = m;
    l->conn = c;
    l->start_ns = r->start_ns;
    memcpy(l->id, idbuf, strlen(idbuf) + 1);
    if (sl__http_defer(c, &l->deferred))
      l->conn = NULL; /* out of memory: the connection closes; the call only frees l */
    goto out;
  }
  free(l);
  answer(m, c, e, idbuf, seq, r->start_ns, why);
out:
  sl__claims_free(&claims);
  sl__form_free(&form);
}
