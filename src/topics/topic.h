/* topic.h — topic selectors: what a subscription's matchers and a token's publish and subscribe
 * grants name, and whether a selector matches a topic. This is the one place that decides what a
 * selector means; the broker (subscriptions), auth.c (token grants) and publish.c (is this topic
 * granted) all ask here. A selector is an exact topic, "*" (every topic), a URL pattern (the
 * spec's `urlpattern` matcher type, urlpattern.h) or a legacy RFC 6570 URI template
 * (uritemplate.h, what pre-standard clients send as `topic=`).
 *
 * Ownership: a selector borrows its text; its owner keeps the text alive for as long as the
 * selector is used (auth.c's claims and the broker's subscriptions keep it in the same block as
 * the selector). A URL pattern or template selector also holds one reference to its compiled
 * matcher (sl_matcher_t: immutable, shared by copies, freed with its last reference, from any
 * thread); whoever holds the selector drops it with sl__selector_release (sl__claims_free and the
 * broker do). sl__selector_copy takes another reference. The broker keeps one reference per
 * distinct pattern of its worker (a group), for all the subscriptions that use it, and lends it
 * to new ones (sl__broker_matcher) so that each pattern is compiled once per worker. Exact and
 * "*" selectors hold none, and releasing them does nothing.
 */
#ifndef SL_TOPIC_H
#define SL_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "topics/url.h"

typedef enum {
  SL_SELECTOR_EXACT = 0,       /* the topic itself, byte for byte */
  SL_SELECTOR_ANY = 1,         /* "*": every topic */
  SL_SELECTOR_URLPATTERN = 2,  /* a URL pattern, against the topic parsed as a URL */
  SL_SELECTOR_TEMPLATE = 3,    /* a legacy URI template, against the topic's text */
} sl_selector_kind_t;

typedef struct sl_matcher_s sl_matcher_t;

typedef struct sl_selector_s {
  const char *text;            /* borrowed; len bytes */
  uint32_t len;                /* selectors are bounded far below 4 GiB by the request limits */
  uint32_t kind;               /* sl_selector_kind_t */
  sl_matcher_t *matcher;       /* one reference, for URLPATTERN and TEMPLATE; else NULL */
} sl_selector_t;

/* A topic as the matchers see it: its text, and its URL components, parsed once against the
 * hub's URL the first time a URL pattern asks (then sl__topic_done frees them). Not shared. */
typedef struct sl_topic_s {
  const char *text;
  size_t len;
  int parsed;                  /* 0: not yet; 1: url holds it; -1: it is not a URL */
  const char *base;            /* the base url was parsed against */
  sl_url_t url;
} sl_topic_t;

void sl__topic_init(sl_topic_t *t, const char *text, size_t len);
void sl__topic_done(sl_topic_t *t);

/* Classifies text (len bytes, borrowed): "*" is SL_SELECTOR_ANY, anything else EXACT. */
void sl__selector_init(sl_selector_t *s, const char *text, size_t len);

/* What a pre-standard selector means (a legacy `topic=` parameter, a legacy `mercure` claim):
 * "*" is ANY, text holding "{" a URI template, else EXACT. */
sl_selector_kind_t sl__selector_legacy_kind(const char *text, size_t len);

/* Makes s a selector of kind for text (len bytes, borrowed). "*" is ANY whatever the kind (the
 * spec reserves it before the matcher type is resolved). URLPATTERN and TEMPLATE are compiled
 * now, once; base is the hub's URL (NUL-terminated, absolute), against which relative patterns
 * and topics resolve: borrowed, it must outlive the matcher. 0; -EINVAL with *why a sentence
 * naming what is wrong with the pattern; -ENOMEM. On error s is an empty exact selector. */
int sl__selector_compile(sl_selector_t *s, sl_selector_kind_t kind, const char *text, size_t len,
                         const char *base, const char **why);

/* The automaton states a selector's matcher holds (0 for exact and "*"): its memory is about
 * ten bytes a state, and its matching work per topic byte at most proportional to it. */
size_t sl__selector_states(const sl_selector_t *s);

/* dst becomes src, sharing its matcher (one more reference); text stays src's unless the caller
 * points dst->text elsewhere. */
void sl__selector_copy(sl_selector_t *dst, const sl_selector_t *src);

/* The references s's matcher has (0 without one): for tests of sharing. */
unsigned sl__selector_refs(const sl_selector_t *s);

/* Drops s's reference to its matcher, if any. */
void sl__selector_release(sl_selector_t *s);
void sl__selectors_release(sl_selector_t *sel, size_t n);

/* 1 when s matches the topic, else 0. */
int sl__selector_matches_topic(const sl_selector_t *s, sl_topic_t *topic);

/* 1 when s matches topic (len bytes), else 0. */
int sl__selector_matches(const sl_selector_t *s, const char *topic, size_t len);

/* 1 when one of the n selectors matches topic (len bytes), else 0. sel may be NULL when n is 0.
 * The topic is parsed at most once, whatever the number of URL patterns. */
int sl__selectors_match(const sl_selector_t *sel, size_t n, const char *topic, size_t len);

/* 1 when s matches exactly one topic, its text, so an index keyed by topic finds it; 0 when it
 * must be tried against every topic (ANY, URL patterns, templates). */
int sl__selector_is_exact(const sl_selector_t *s);

/* A URL pattern that is fixed text in every component it does not leave as "*": it matches a topic
 * exactly when the topic, parsed as a URL against base, has those components byte for byte, so
 * an index keyed by a topic's canonical URL components finds it. Borrowed from the selector's
 * matcher (valid while a reference is held). */
typedef struct sl_fixed_url_s {
  unsigned wild;                 /* bit k: component k is "*" (matches anything) */
  const char *part[SL_URL_PARTS]; /* the fixed components (NULL where wild) */
  size_t len[SL_URL_PARTS];
  const char *base;              /* the hub's URL the pattern was compiled against */
} sl_fixed_url_t;

/* 1 and *out when s is such a URL pattern (no group, wildcard or regexp in any component but the
 * whole-component "*"), else 0 (exact, "*", templates, patterns with groups). */
int sl__selector_fixed_url(const sl_selector_t *s, sl_fixed_url_t *out);

/* The topic as a URL parsed against base, parsed the first time and kept in t (as the URL pattern
 * matchers parse it: the same components); NULL when it is not a URL (it matches no pattern). */
const sl_url_t *sl__topic_url(sl_topic_t *t, const char *base);

/* The hub URL a URL pattern or template was compiled against (sl__selector_compile's base); NULL
 * for exact and "*" selectors. Two selectors of one kind, one text and one base have matchers
 * that give the same answers: either can stand for the other. */
const char *sl__selector_base(const sl_selector_t *s);

#endif
