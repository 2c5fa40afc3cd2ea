/* broker.h — per-worker routing of updates to subscribers: an index from topic to the
 * subscriptions that select it exactly, plus the selectors that must be tried against every
 * update ("*", URL patterns, URI templates), and the dispatch of one shared frame to every matching subscriber exactly once.
 * What a selector means is topic.c's to say. Each worker owns one broker and touches it from its
 * own thread only. */
#ifndef SL_BROKER_H
#define SL_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"
#include "topics/topic.h"

struct sl_conn_s;
typedef struct sl_sub_s sl_sub_t;

/* One selector of a subscription, linked into the index bucket of its topic (or the scanned
 * list). Owned by its subscription, whose block also holds the selector's kind and text. Four
 * words: a subscriber's memory is the hub's first number. */
typedef struct sl_sel_node_s {
  struct sl_sel_node_s *next;
  struct sl_sel_node_s *prev;
  union {
    struct sl_bucket_s *bucket;  /* an exact selector's bucket (NULL until linked) */
    sl_matcher_t *matcher;       /* a scanned one's compiled matcher, one reference owned by the
                                    subscription; NULL for "*" */
  } u;
  sl_sub_t *sub;
} sl_sel_node_t;

/* A subscription: the stream of one connection. Owned by the connection's stream, which lives
 * in the same block, in front of it (sl__sub_front). */
struct sl_sub_s {
  struct sl_conn_s *conn;
  uint64_t last_seq;             /* highest seq queued: skips duplicates across selectors */
  sl_selector_t *grants;         /* what the subscriber's token grants (private updates): the
                                    subscribe half of its claims, owned */
  uint32_t grant_count;
  uint32_t front;                /* bytes in front of the struct that are the owner's */
  int64_t exp;                   /* the token's expiry, seconds since the epoch; 0 = none */
  uint16_t has_token;
  uint16_t linked;               /* its nodes are in the index (sl__broker_add succeeded) */
  uint32_t node_count;
  sl_sel_node_t nodes[];         /* one per selector; then one kind byte per selector
                                    (sl_selector_kind_t); then each selector's text,
                                    NUL-terminated */
};

typedef struct sl_bucket_s {
  struct sl_bucket_s *chain;     /* next bucket in the same hash slot */
  sl_sel_node_t *head;
  uint64_t hash;
  size_t len;
  char topic[];
} sl_bucket_t;

typedef struct sl_broker_s {
  sl_bucket_t **slots;
  size_t slot_mask;
  size_t bucket_count;
  sl_sel_node_t *scanned;        /* selectors not indexable by topic ("*", patterns, templates):
                                    tried on every update */
} sl_broker_t;

/* Called for each subscriber an update must go to. */
typedef void (*sl_deliver_cb)(sl_sub_t *sub, sl_frame_t *frame, void *arg);

int sl__broker_init(sl_broker_t *b);
void sl__broker_destroy(sl_broker_t *b);

/* What a subscriber's token grants it. */
typedef struct sl_grants_s {
  sl_selector_t *subscribe;      /* the selectors of the private updates it may read: one block
                                    from malloc, the array then its strings (as auth.c lays a
                                    token's claims out), each selector's matcher reference owned
                                    with it; NULL when none */
  size_t count;
  int64_t exp;                   /* seconds since the epoch; 0 = the token does not expire */
  int has_token;
} sl_grants_t;

/* A subscription with the n selectors sel (compiled by the caller: sl__selector_compile). Their
 * texts are copied. On success the grants' block is the subscription's (freed with it) and
 * *grants is emptied, and so is each selector's matcher reference (sel[i].matcher becomes NULL);
 * NULL when out of memory, grants and sel untouched. front bytes (zeroed, a multiple of 8) in
 * front of it, in the same allocation, are the owner's: sl__sub_front. */
sl_sub_t *sl__sub_new(struct sl_conn_s *conn, sl_selector_t *sel, size_t n, sl_grants_t *grants,
                      size_t front);

/* The owner's bytes in front of a subscription. */
static inline void *sl__sub_front(sl_sub_t *s) {
  return (char *)s - s->front;
}

/* The subscription's selectors, in the order they were given: up to max into out, borrowed
 * (texts and matchers stay the subscription's; do not release them). Returns how many it has.
 * For what reports subscriptions (their matcher type and text: the subscriptions API). */
size_t sl__sub_selectors(const sl_sub_t *s, sl_selector_t *out, size_t max);

/* Links every selector into the index. 0 or -ENOMEM (then nothing is linked). */
int sl__broker_add(sl_broker_t *b, sl_sub_t *sub);

/* Unlinks and frees the subscription. */
void sl__broker_remove(sl_broker_t *b, sl_sub_t *sub);

/* 1 when the subscription selects one of the frame's topics and may read it. */
int sl__sub_wants(const sl_sub_t *sub, const sl_frame_t *f);

/* A subscription's selectors as a replay asks them, frame after frame: its exact topics in a
 * hash set, so that a frame costs one lookup per topic of the frame however many selectors the
 * subscription has (256 of them against 10,000 retained updates of 64 topics each made one
 * anonymous resume cost 160 million comparisons). Borrows the subscription. */
typedef struct sl_sub_filter_s {
  const sl_sub_t *sub;
  int any;                       /* a selector matches every topic */
  const char **exact;            /* open addressing; NULL = empty slot */
  uint32_t *exact_len;
  size_t mask;
  sl_selector_t *scanned;        /* the selectors that are neither exact nor "*" (patterns and
                                    templates; their matchers borrowed from the subscription) */
  size_t scanned_count;
  uint64_t checks;               /* lookups and selector tests made so far: the work done */
} sl_sub_filter_t;

/* 0, or -ENOMEM. */
int sl__sub_filter_init(sl_sub_filter_t *flt, const sl_sub_t *sub);
/* What sl__sub_wants says, in O(topics of f). */
int sl__sub_filter_wants(sl_sub_filter_t *flt, const sl_frame_t *f);
void sl__sub_filter_free(sl_sub_filter_t *flt);

/* 1 when a private frame may go to this subscriber. */
int sl__sub_may_read(const sl_sub_t *sub, const sl_frame_t *f);

/* Calls cb once for every subscriber that selects one of the frame's topics and may read it,
 * and whose last_seq is below frame->seq (then raised to it). */
void sl__broker_dispatch(sl_broker_t *b, sl_frame_t *f, sl_deliver_cb cb, void *arg);

#endif
