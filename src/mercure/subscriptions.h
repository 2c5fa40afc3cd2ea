/* subscriptions.h — the hub's active subscriptions (the spec's Active Subscriptions): the registry
 * of every subscription of every worker, the events that announce each one's creation and end,
 * and the documents the Subscription API serves (subscriptions_api.c). One per hub, made only with
 * --subscriptions; the workers reach it through their sl_mercure_t, where it is NULL otherwise,
 * and then nothing here runs.
 *
 * A connection's subscriptions (one per distinct topic matcher it gave) share one record and one
 * hub-generated subscriber id (urn:uuid). Each subscription's event topic, and the path of its API
 * resource, is the hub URL's path followed by /subscriptions/{match_type}/{match}/{subscriber},
 * each variable percent-encoded once as a whole (RFC 6570). Its events are private updates of SSE
 * type "mercure" whose data is the subscription's JSON document, published through the bus like
 * any update, so history keeps them for a resume.
 *
 * Threads: any. One mutex orders everything: a record is listed and its creation events published
 * under it, and unlisted and its termination events published under it, so a reader taking the
 * list and the bus's last id under it gets a cursor consistent with the list: every event about a
 * listed subscription is at or before the cursor, every later change after it. Lock order: this
 * mutex, then the bus's. Connecting costs one list insertion and one update per subscription; the
 * API walks the list (it is the rare reader). */
#ifndef SL_SUBSCRIPTIONS_H
#define SL_SUBSCRIPTIONS_H

#include <stddef.h>

#include "net/bus.h"

struct sl_wire_s;
struct sl_wire_reader_s;
typedef struct sl_subs_s sl_subs_t;
typedef struct sl_subs_conn_s sl_subs_conn_t;

/* One topic matcher of a connection, as the subscriber gave it. Borrowed for the call. */
typedef struct sl_subs_matcher_s {
  const char *type;              /* the matcher type's canonical name: "exact", "urlpattern" */
  const char *match;             /* the matcher, len bytes (valid UTF-8) */
  size_t len;
  const char *payload;           /* JSON text from the subscriber's token, or NULL */
  size_t payload_len;
} sl_subs_matcher_t;

/* hub_path: the path of the hub's URL, borrowed (it outlives the registry). 0, -ENOMEM, or the
 * mutex's error. The bus must keep its last update (keep_last). */
int sl__subs_new(sl_subs_t **out, sl_bus_t *bus, const char *hub_path);
void sl__subs_free(sl_subs_t *s);

/* Registers one connection's subscriptions (n matchers; identical type and matcher pairs count
 * once) and publishes one creation event each. 0 and *out, the record the connection keeps until
 * it closes; -ESHUTDOWN once the drain began (the hub announces no more); -ENOMEM; or the bus's
 * error. On error nothing is registered and no event is left without its termination. */
int sl__subs_open(sl_subs_t *s, const sl_subs_matcher_t *m, size_t n, sl_subs_conn_t **out);
/* The connection's subscriptions end: one termination event each (none after the drain, which
 * published them already). Once only; later calls do nothing. */
void sl__subs_end(sl_subs_t *s, sl_subs_conn_t *c);
/* sl__subs_end, then frees the record. */
void sl__subs_close(sl_subs_t *s, sl_subs_conn_t *c);
/* The drain, before the bus takes no more updates: every subscription's termination event, so
 * that subscribers still connected get them before their stream's end and a client resuming
 * elsewhere finds them in history. From then on nothing is registered nor announced. */
void sl__subs_drain(sl_subs_t *s);

/* The live hand-off. Export writes a connection's record (its subscriber id, matchers and
 * payloads, and whether it is listed); adopt, in the receiving process, makes the record again
 * and lists it without an event (nothing began for its subscriber): 0 and *out, -EPROTO when the
 * record is bad, -ENOMEM. Forget, in the process that handed it, unlists and frees a record
 * without an event (nothing ended either). */
int sl__subs_export(const sl_subs_conn_t *c, struct sl_wire_s *out);
int sl__subs_adopt(sl_subs_t *s, struct sl_wire_reader_s *in, sl_subs_conn_t **out);
void sl__subs_forget(sl_subs_t *s, sl_subs_conn_t *c);

/* Number of subscriptions listed now. */
size_t sl__subs_count(sl_subs_t *s);

/* The path of a resource under the hub's: hub_path + "/subscriptions", then each non-NULL part
 * ("/" + its percent-encoding), in order type, match, subscriber (a later part only after the
 * earlier ones). malloc'ed, NUL-terminated, *len set; NULL when out of memory. */
char *sl__subs_path(const char *hub_path, const char *type, size_t type_len, const char *match,
                    size_t match_len, const char *subscriber, size_t subscriber_len, size_t *len);

/* What the API asks for: every subscription (type NULL), those of one matcher (subscriber NULL),
 * or one. Strings are decoded, borrowed for the call. */
typedef struct sl_subs_query_s {
  const char *type, *match, *subscriber;
  size_t type_len, match_len, subscriber_len;
  const char *id;                /* the collection's id: the URL it was asked at, relative */
  size_t id_len;
} sl_subs_query_t;

/* The JSON document answering q (a collection, or one subscription's document), in *body
 * (malloc'ed, *len bytes), and in *cursor the id of the last update the hub stored at that moment
 * (malloc'ed; NULL = none yet: "earliest"), both taken under the registry's mutex. 0; -ENOENT
 * when the one subscription asked for does not exist (nothing to free); -ENOMEM. */
int sl__subs_query(sl_subs_t *s, const sl_subs_query_t *q, char **body, size_t *len,
                   char **cursor);

#endif
