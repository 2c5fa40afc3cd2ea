/* broker.h — per-worker routing of updates to subscribers: an index from topic to the
 * subscriptions that select it exactly; the URL patterns and URI templates grouped by their text,
 * so that each distinct one is evaluated once per update however many subscriptions use it (and
 * its compiled matcher is shared by them); among those, the URL patterns of fixed text indexed
 * by the canonical URL they match; the "*" selectors; and the dispatch of one shared frame to
 * every matching subscriber exactly once. What a selector means is topic.c's to say. Each worker
 * owns one broker and touches it from its own thread only. */
#ifndef SL_BROKER_H
#define SL_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"
#include "topics/topic.h"

struct sl_conn_s;
typedef struct sl_sub_s sl_sub_t;

/* One selector of a subscription, linked into the index bucket of its topic, the group of its
 * pattern, or the list of "*" selectors. Owned by its subscription, whose block also holds the
 * selector's kind and text. Four words: a subscriber's memory is the hub's first number. */
typedef struct sl_sel_node_s {
  struct sl_sel_node_s *next;
  struct sl_sel_node_s *prev;
  union {
    struct sl_bucket_s *bucket;  /* an exact selector's bucket (NULL until linked) */
    struct sl_pattern_s *pattern; /* a pattern's or template's group, once linked: the group
                                    holds the compiled matcher for all its nodes */
    sl_matcher_t *matcher;       /* a pattern's or template's matcher before it is linked (or
                                    when sl__broker_add failed): one reference, the
                                    subscription's; NULL for "*" */
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

/* The nodes of every linked selector of one kind (URL pattern or URI template) and one text: one
 * per distinct pattern of the worker, evaluated once per topic of an update, its nodes then all
 * visited. It owns one reference to the compiled matcher, which stands for all its nodes'
 * selectors (the same kind and text against the same hub URL mean the same matcher); the
 * reference a subscription brought when linked was dropped then. */
typedef struct sl_pattern_s {
  struct sl_pattern_s *chain;    /* next group in the same slot of the table by text */
  struct sl_pattern_s *fchain;   /* next group in the same slot of the fixed-URL table */
  struct sl_pattern_s *next;     /* the scanned list (groups the fixed-URL table does not hold) */
  struct sl_pattern_s *prev;
  sl_sel_node_t *head;
  sl_selector_t sel;             /* kind, text (in this block), matcher (the group's reference) */
  sl_fixed_url_t fixed;          /* when indexed by canonical URL: what it matches */
  int indexed;                   /* 1: in the fixed-URL table; 0: on the scanned list */
  uint64_t hash;                 /* of kind and text */
  uint64_t fhash;                /* of the fixed components, when indexed */
  uint64_t seen_seq;             /* the last frame whose nodes it visited */
  char text[];
} sl_pattern_t;

typedef struct sl_ptable_s {
  sl_pattern_t **slots;
  size_t mask;
  size_t count;
} sl_ptable_t;

typedef struct sl_broker_s {
  sl_bucket_t **slots;
  size_t slot_mask;
  size_t bucket_count;
  sl_sel_node_t *any;            /* "*" selectors: every update */
  sl_ptable_t patterns;          /* every group, by kind and text */
  sl_ptable_t fixed;             /* URL patterns of fixed text, by the components they fix */
  sl_pattern_t *scanned;         /* the other groups (patterns with groups, wildcards or regexps,
                                    templates): each evaluated once per topic of every update */
  const char *base;              /* the hub URL of the fixed-URL table's patterns (one per hub) */
  uint32_t wild_count[1u << SL_URL_PARTS]; /* indexed groups per wildcard mask */
  uint8_t wilds[1u << SL_URL_PARTS];       /* the masks in use, wild_n of them: one lookup each */
  uint32_t wild_n;
  uint64_t evaluations;          /* automaton evaluations (a scanned group against one topic) */
  uint64_t lookups;              /* fixed-URL table lookups (a topic and a wildcard mask) */
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

/* A subscription with the n selectors sel (compiled by the caller: sl__selector_compile, or lent
 * by sl__broker_matcher). Their texts are copied. On success the grants' block is the
 * subscription's (freed with it) and *grants is emptied, and so is each selector's matcher
 * reference (sel[i].matcher becomes NULL; sl__broker_add hands it to the pattern's group);
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

/* Links every selector into the index. A pattern or template whose group exists gives up its
 * matcher reference to the group's. 0 or -ENOMEM (then nothing is linked and the subscription
 * holds its matchers as before). */
int sl__broker_add(sl_broker_t *b, sl_sub_t *sub);

/* The compiled matcher of a linked pattern or template of this kind and text, compiled against
 * base: 1 and *out a selector of it (text borrowed from text, one new matcher reference, to drop
 * with sl__selector_release or give to sl__sub_new), so that a subscription of a pattern the
 * worker already serves costs no compilation and no memory of its own; 0 when there is none
 * (then compile it: sl__selector_compile). */
int sl__broker_matcher(const sl_broker_t *b, sl_selector_kind_t kind, const char *text,
                       size_t len, const char *base, sl_selector_t *out);

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
                                    templates; their matchers borrowed from the subscription's
                                    groups in the broker, or its own when not linked) */
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
