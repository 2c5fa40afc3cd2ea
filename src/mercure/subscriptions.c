/* subscriptions.c — the registry of active subscriptions, their events and documents (see
 * subscriptions.h). It owns the records and the list; the connections own nothing here but the
 * pointer to their record. */
#include "mercure/subscriptions.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/json.h"
#include "common/log.h"
#include "common/percent.h"
#include "common/uuid.h"
#include "common/wire.h"

#define SUBS_SEGMENT "/subscriptions"
#define EVENT_TYPE "mercure"
#define ID_MAX 64                /* a generated update id: urn:uuid:... */

/* One subscription of a connection; its strings are in the record's block. */
typedef struct entry_s {
  const char *type, *match, *payload, *topic;
  size_t type_len, match_len, payload_len, topic_len;
} entry_t;

struct sl_subs_conn_s {
  sl_subs_conn_t *prev, *next;   /* in the registry's list while listed */
  int listed;                    /* under the mutex: active and announced */
  size_t count;
  char subscriber[SL_UUID_URN_LEN + 1];
  entry_t entries[];             /* then every entry's strings */
};

struct sl_subs_s {
  uv_mutex_t lock;               /* guards everything below, and every record's list links */
  sl_bus_t *bus;
  const char *hub_path;
  sl_subs_conn_t *head;
  size_t count;                  /* subscriptions listed */
  int closed;                    /* drained: no more records, no more events */
};

int sl__subs_new(sl_subs_t **out, sl_bus_t *bus, const char *hub_path) {
  assert(bus->keep_last && hub_path && hub_path[0] == '/');
  sl_subs_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  int r = uv_mutex_init(&s->lock);
  if (r) {
    free(s);
    return r;
  }
  s->bus = bus;
  s->hub_path = hub_path;
  *out = s;
  return 0;
}

void sl__subs_free(sl_subs_t *s) {
  if (s == NULL)
    return;
  /* Every connection closed first, and freed its record. */
  assert(s->head == NULL);
  uv_mutex_destroy(&s->lock);
  free(s);
}

char *sl__subs_path(const char *hub_path, const char *type, size_t type_len, const char *match,
                    size_t match_len, const char *subscriber, size_t subscriber_len, size_t *len) {
  size_t hub = strlen(hub_path);
  size_t n = hub + sizeof SUBS_SEGMENT - 1;
  if (type)
    n += 1 + sl__pct_encoded_len(type, type_len);
  if (type && match)
    n += 1 + sl__pct_encoded_len(match, match_len);
  if (type && match && subscriber)
    n += 1 + sl__pct_encoded_len(subscriber, subscriber_len);
  char *path = malloc(n + 1);
  if (path == NULL)
    return NULL;
  char *p = path;
  memcpy(p, hub_path, hub);
  p += hub;
  memcpy(p, SUBS_SEGMENT, sizeof SUBS_SEGMENT - 1);
  p += sizeof SUBS_SEGMENT - 1;
  if (type) {
    *p++ = '/';
    p = sl__pct_encode(p, type, type_len);
    if (match) {
      *p++ = '/';
      p = sl__pct_encode(p, match, match_len);
      if (subscriber) {
        *p++ = '/';
        p = sl__pct_encode(p, subscriber, subscriber_len);
      }
    }
  }
  *p = '\0';
  assert((size_t)(p - path) == n);
  *len = n;
  return path;
}

/* --- documents ----------------------------------------------------------------------------- */

/* The subscription's document (the spec's Subscription Events), as its events carry it and the
 * API serves it. */
static void write_doc(sl_json_t *j, const sl_subs_conn_t *c, const entry_t *e, int active) {
  sl__json_raw(j, "{\"id\":", 6);
  sl__json_string(j, e->topic, e->topic_len);
  static const char type[] = ",\"type\":\"subscription\",\"match_type\":";
  sl__json_raw(j, type, sizeof type - 1);
  sl__json_string(j, e->type, e->type_len);
  sl__json_raw(j, ",\"match\":", 9);
  sl__json_string(j, e->match, e->match_len);
  sl__json_raw(j, ",\"subscriber\":", 14);
  sl__json_string(j, c->subscriber, strlen(c->subscriber));
  if (active)
    sl__json_raw(j, ",\"active\":true", 14);
  else
    sl__json_raw(j, ",\"active\":false", 15);
  if (e->payload) {
    sl__json_raw(j, ",\"payload\":", 11);
    sl__json_raw(j, e->payload, e->payload_len);
  }
  sl__json_raw(j, "}", 1);
}

/* Publishes entry e's event. Mutex held, so events take their places in the registry's order;
 * the bus does not wait for history to store it. 0 or the bus's error. */
static int announce(sl_subs_t *s, const sl_subs_conn_t *c, const entry_t *e, int active) {
  sl_json_t j = {0};
  char *doc;
  size_t len;
  write_doc(&j, c, e, active);
  if (sl__json_finish(&j, &doc, &len))
    return -ENOMEM;
  const char *topics[1] = {e->topic};
  sl_update_t u = {
    .topics = topics,
    .topic_count = 1,
    .data = doc,
    .data_len = len,
    .type = EVENT_TYPE,
    .is_private = 1,
  };
  char id[ID_MAX];
  const char *why = NULL;
  int r = sl__bus_publish_hub(s->bus, &u, id, sizeof id, &why);
  free(doc);
  return r;
}

/* Every termination event of c, which is unlisted here. Mutex held. A failure is logged: the
 * subscription ended all the same, and the API no longer lists it. */
static void announce_end(sl_subs_t *s, sl_subs_conn_t *c, size_t count) {
  for (size_t i = 0; i < count; i++) {
    int r = announce(s, c, &c->entries[i], 0);
    if (r)
      sl__log(SL_LOG_WARN, "the end of subscription %.200s could not be announced: %s",
              c->entries[i].topic, strerror(-r));
  }
}

static void unlink_conn(sl_subs_t *s, sl_subs_conn_t *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    s->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  c->listed = 0;
  s->count -= c->count;
}

/* --- the registry -------------------------------------------------------------------------- */

static int same_matcher(const sl_subs_matcher_t *a, const sl_subs_matcher_t *b) {
  return a->len == b->len && strcmp(a->type, b->type) == 0 && memcmp(a->match, b->match, a->len) == 0;
}

/* 1 when m[i] repeats an earlier matcher: the spec lets a hub count such a pair once, and two
 * entries with one topic would make one API resource ambiguous. */
static int repeated(const sl_subs_matcher_t *m, size_t i) {
  for (size_t k = 0; k < i; k++)
    if (same_matcher(&m[k], &m[i]))
      return 1;
  return 0;
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  p[n] = '\0';
  return p + n + 1;
}

/* The record of n matchers, in one block, with the subscriber's id (NULL: a new one). NULL when
 * out of memory. */
static sl_subs_conn_t *record_new(const char *hub_path, const sl_subs_matcher_t *m, size_t n,
                                  const char *id) {
  char subscriber[SL_UUID_URN_LEN + 1];
  if (id)
    snprintf(subscriber, sizeof subscriber, "%s", id);
  else
    sl__uuid_urn(subscriber);
  size_t count = 0, strings = 0;
  for (size_t i = 0; i < n; i++) {
    if (repeated(m, i))
      continue;
    count++;
    size_t topic_len;
    char *topic = sl__subs_path(hub_path, m[i].type, strlen(m[i].type), m[i].match, m[i].len,
                                subscriber, strlen(subscriber), &topic_len);
    if (topic == NULL)
      return NULL;
    free(topic);
    strings += strlen(m[i].type) + m[i].len + (m[i].payload ? m[i].payload_len : 0) + topic_len + 4;
  }
  sl_subs_conn_t *c = calloc(1, sizeof *c + count * sizeof(entry_t) + strings);
  if (c == NULL)
    return NULL;
  memcpy(c->subscriber, subscriber, sizeof subscriber);
  char *p = (char *)(c->entries + count);
  for (size_t i = 0; i < n; i++) {
    if (repeated(m, i))
      continue;
    entry_t *e = &c->entries[c->count++];
    e->type = p;
    e->type_len = strlen(m[i].type);
    p = put(p, m[i].type, e->type_len);
    e->match = p;
    e->match_len = m[i].len;
    p = put(p, m[i].match, m[i].len);
    if (m[i].payload) {
      e->payload = p;
      e->payload_len = m[i].payload_len;
      p = put(p, m[i].payload, m[i].payload_len);
    }
    char *topic = sl__subs_path(hub_path, e->type, e->type_len, e->match, e->match_len,
                                subscriber, strlen(subscriber), &e->topic_len);
    if (topic == NULL) {
      free(c);
      return NULL;
    }
    e->topic = p;
    p = put(p, topic, e->topic_len);
    free(topic);
  }
  return c;
}

int sl__subs_open(sl_subs_t *s, const sl_subs_matcher_t *m, size_t n, sl_subs_conn_t **out) {
  sl_subs_conn_t *c = record_new(s->hub_path, m, n, NULL);
  if (c == NULL)
    return -ENOMEM;
  uv_mutex_lock(&s->lock);
  if (s->closed) {
    uv_mutex_unlock(&s->lock);
    free(c);
    return -ESHUTDOWN;
  }
  c->next = s->head;
  if (s->head)
    s->head->prev = c;
  s->head = c;
  c->listed = 1;
  s->count += c->count;
  int r = 0;
  size_t i;
  for (i = 0; i < c->count && r == 0; i++)
    r = announce(s, c, &c->entries[i], 1);
  if (r) {
    /* Those announced end at once: no event is left without its end. */
    unlink_conn(s, c);
    announce_end(s, c, i - 1);
  }
  uv_mutex_unlock(&s->lock);
  if (r) {
    free(c);
    return r;
  }
  *out = c;
  return 0;
}

void sl__subs_end(sl_subs_t *s, sl_subs_conn_t *c) {
  uv_mutex_lock(&s->lock);
  if (c->listed) {
    unlink_conn(s, c);
    announce_end(s, c, c->count);
  }
  uv_mutex_unlock(&s->lock);
}

void sl__subs_close(sl_subs_t *s, sl_subs_conn_t *c) {
  sl__subs_end(s, c);
  free(c);
}

void sl__subs_drain(sl_subs_t *s) {
  uv_mutex_lock(&s->lock);
  s->closed = 1;
  size_t ended = 0;
  while (s->head) {
    sl_subs_conn_t *c = s->head;
    ended += c->count;
    unlink_conn(s, c);
    announce_end(s, c, c->count);
  }
  uv_mutex_unlock(&s->lock);
  if (ended)
    sl__log(SL_LOG_INFO, "drain: the end of %zu subscriptions announced", ended);
}

/* --- the live hand-off ----------------------------------------------------------------------- */

#define HANDOFF_MAX_ENTRIES 256 /* a connection's matchers (subscribe.c's limit) */

int sl__subs_export(const sl_subs_conn_t *c, sl_wire_t *out) {
  sl__wire_u8(out, (uint8_t)c->listed);
  sl__wire_str(out, c->subscriber);
  sl__wire_u32(out, (uint32_t)c->count);
  for (size_t i = 0; i < c->count; i++) {
    const entry_t *e = &c->entries[i];
    sl__wire_bytes(out, e->type, e->type_len);
    sl__wire_bytes(out, e->match, e->match_len);
    sl__wire_u8(out, e->payload != NULL);
    sl__wire_bytes(out, e->payload ? e->payload : "", e->payload ? e->payload_len : 0);
  }
  return out->failed ? -ENOMEM : 0;
}

int sl__subs_adopt(sl_subs_t *s, sl_wire_reader_t *in, sl_subs_conn_t **out) {
  uint8_t listed = sl__wire_get_u8(in);
  size_t idlen;
  const unsigned char *id = sl__wire_get_bytes(in, &idlen);
  uint32_t n = sl__wire_get_u32(in);
  if (in->bad || idlen != SL_UUID_URN_LEN || n == 0 || n > HANDOFF_MAX_ENTRIES)
    return -EPROTO;
  char subscriber[SL_UUID_URN_LEN + 1];
  memcpy(subscriber, id, idlen);
  subscriber[idlen] = '\0';
  sl_subs_matcher_t m[HANDOFF_MAX_ENTRIES];
  char *types[HANDOFF_MAX_ENTRIES];
  for (uint32_t i = 0; i < n; i++) {
    size_t tlen;
    const unsigned char *type = sl__wire_get_bytes(in, &tlen);
    m[i].match = (const char *)sl__wire_get_bytes(in, &m[i].len);
    uint8_t has = sl__wire_get_u8(in);
    m[i].payload = (const char *)sl__wire_get_bytes(in, &m[i].payload_len);
    if (!has)
      m[i].payload = NULL;
    types[i] = in->bad ? NULL : strndup((const char *)type, tlen);
    m[i].type = types[i];
    if (types[i] == NULL) {
      for (uint32_t k = 0; k < i; k++)
        free(types[k]);
      return in->bad ? -EPROTO : -ENOMEM;
    }
  }
  sl_subs_conn_t *c = record_new(s->hub_path, m, n, subscriber);
  for (uint32_t i = 0; i < n; i++)
    free(types[i]);
  if (c == NULL)
    return -ENOMEM;
  /* Listed again without an event: for its subscribers nothing began or ended. */
  uv_mutex_lock(&s->lock);
  if (listed && !s->closed) {
    c->next = s->head;
    if (s->head)
      s->head->prev = c;
    s->head = c;
    c->listed = 1;
    s->count += c->count;
  }
  uv_mutex_unlock(&s->lock);
  *out = c;
  return 0;
}

void sl__subs_forget(sl_subs_t *s, sl_subs_conn_t *c) {
  uv_mutex_lock(&s->lock);
  if (c->listed)
    unlink_conn(s, c);
  uv_mutex_unlock(&s->lock);
  free(c);
}

size_t sl__subs_count(sl_subs_t *s) {
  uv_mutex_lock(&s->lock);
  size_t n = s->count;
  uv_mutex_unlock(&s->lock);
  return n;
}

/* --- the API's documents ------------------------------------------------------------------- */

static int equals(const char *a, size_t alen, const char *b, size_t blen) {
  return alen == blen && memcmp(a, b, alen) == 0;
}

static int entry_selected(const sl_subs_query_t *q, const entry_t *e) {
  return q->type == NULL || (equals(q->type, q->type_len, e->type, e->type_len) &&
                             equals(q->match, q->match_len, e->match, e->match_len));
}

int sl__subs_query(sl_subs_t *s, const sl_subs_query_t *q, char **body, size_t *len,
                   char **cursor) {
  sl_json_t j = {0};
  int found = 0, r = 0;
  *cursor = NULL;
  uv_mutex_lock(&s->lock);
  if (q->subscriber) {
    for (const sl_subs_conn_t *c = s->head; c && !found; c = c->next) {
      if (strlen(c->subscriber) != q->subscriber_len ||
          memcmp(c->subscriber, q->subscriber, q->subscriber_len) != 0)
        continue;
      for (size_t i = 0; i < c->count && !found; i++) {
        if (entry_selected(q, &c->entries[i])) {
          write_doc(&j, c, &c->entries[i], 1);
          found = 1;
        }
      }
    }
    if (!found)
      r = -ENOENT;
  } else {
    sl__json_raw(&j, "{\"id\":", 6);
    sl__json_string(&j, q->id, q->id_len);
    static const char head[] = ",\"type\":\"subscriptions\",\"subscriptions\":[";
    sl__json_raw(&j, head, sizeof head - 1);
    int first = 1;
    for (const sl_subs_conn_t *c = s->head; c; c = c->next) {
      for (size_t i = 0; i < c->count; i++) {
        if (!entry_selected(q, &c->entries[i]))
          continue;
        if (!first)
          sl__json_raw(&j, ",", 1);
        write_doc(&j, c, &c->entries[i], 1);
        first = 0;
      }
    }
    sl__json_raw(&j, "]}", 2);
  }
  /* The cursor is taken under the mutex, as the list was. Events are published without waiting
   * for history (sl__bus_publish_hub), so it may lag: some events of changes this list already
   * shows may not be stored yet. That keeps "list + cursor, then subscribe with last_event_id"
   * free of gaps. Every event started before this point is either stored (at or before the
   * cursor: its change is in the list) or not yet stored: then it takes its place after the
   * cursor (appends start in order, under the bus lock) and reaches a subscriber resuming from
   * the cursor live, once stored, or from history. Every event after this point is of a change
   * the list does not show, and comes after the cursor too. So a client may get an event for a
   * change its list already shows (events are state updates: applying one twice is harmless),
   * and never misses one. */
  if (r == 0)
    r = sl__bus_last_id(s->bus, cursor);
  uv_mutex_unlock(&s->lock);
  if (r == 0 && (r = sl__json_finish(&j, body, len)) == 0)
    return 0;
  sl__json_reset(&j);
  free(*cursor);
  *cursor = NULL;
  return r;
}
