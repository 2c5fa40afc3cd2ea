/* topic.h — topic selectors: what a subscription's `topic` parameter and a token's publish and
 * subscribe grants name, and whether a selector matches a topic. This is the one place that
 * decides what a selector means; the broker (subscriptions), auth.c (token grants) and publish.c
 * (is this topic granted) all ask here. Today a selector is an exact topic or "*" (every topic).
 *
 * Ownership: a selector borrows its text; it allocates nothing and needs no destroy. Its owner
 * keeps the text alive for as long as the selector is used (auth.c's claims and the broker's
 * subscriptions keep it in the same block as the selector). Matching interprets the text, so a
 * later kind (URL patterns) needs no memory of its own either.
 */
#ifndef SL_TOPIC_H
#define SL_TOPIC_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  SL_SELECTOR_EXACT = 0,   /* the topic itself, byte for byte */
  SL_SELECTOR_ANY = 1,     /* "*": every topic */
} sl_selector_kind_t;

typedef struct sl_selector_s {
  const char *text;        /* borrowed; len bytes */
  uint32_t len;            /* selectors are bounded far below 4 GiB by the request limits */
  uint32_t kind;           /* sl_selector_kind_t; 16 bytes in all, kept in every subscription */
} sl_selector_t;

/* Classifies text (len bytes, borrowed): "*" is SL_SELECTOR_ANY, anything else EXACT. */
void sl__selector_init(sl_selector_t *s, const char *text, size_t len);

/* 1 when s matches topic (len bytes), else 0. */
int sl__selector_matches(const sl_selector_t *s, const char *topic, size_t len);

/* 1 when one of the n selectors matches topic (len bytes), else 0. sel may be NULL when n is 0. */
int sl__selectors_match(const sl_selector_t *sel, size_t n, const char *topic, size_t len);

/* 1 when s matches exactly one topic, its text, so an index keyed by topic finds it; 0 when it
 * must be tried against every topic (ANY now, patterns later). */
int sl__selector_is_exact(const sl_selector_t *s);

#endif
