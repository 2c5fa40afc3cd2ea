/* topic.c — topic selectors: classifying a selector's text, compiling URL patterns and legacy URI
 * templates once into a shared matcher, and matching a selector against a topic. It owns the
 * meaning of a selector for subscriptions and token grants alike; it keeps no state and knows
 * nothing of how callers store or index selectors. */
#include "topics/topic.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "topics/nfa.h"
#include "topics/uritemplate.h"
#include "topics/urlpattern.h"

struct sl_matcher_s {
  atomic_uint refs;
  uint32_t kind;
  const char *base;              /* the hub's URL, borrowed (URLPATTERN) */
  sl_urlpattern_t *pattern;      /* URLPATTERN */
  sl_nfa_t *nfa;                 /* TEMPLATE */
};

void sl__topic_init(sl_topic_t *t, const char *text, size_t len) {
  memset(t, 0, sizeof *t);
  t->text = text;
  t->len = len;
}

void sl__topic_done(sl_topic_t *t) {
  if (t->parsed == 1)
    sl__url_free(&t->url);
  t->parsed = 0;
}

/* The topic's URL against base, parsed the first time it is asked for; NULL when the topic is
 * not a URL reference (then it matches no URL pattern, as the spec says) or out of memory. */
const sl_url_t *sl__topic_url(sl_topic_t *t, const char *base) {
  if (t->parsed && t->base != base)
    sl__topic_done(t); /* another hub's base: never in one hub, but stay right */
  if (t->parsed == 0) {
    t->base = base;
    t->parsed = sl__url_parse(&t->url, t->text, t->len, base) == 0 ? 1 : -1;
  }
  return t->parsed == 1 ? &t->url : NULL;
}

void sl__selector_init(sl_selector_t *s, const char *text, size_t len) {
  s->kind = len == 1 && text[0] == '*' ? SL_SELECTOR_ANY : SL_SELECTOR_EXACT;
  s->text = text;
  s->len = (uint32_t)len;
  s->matcher = NULL;
}

sl_selector_kind_t sl__selector_legacy_kind(const char *text, size_t len) {
  if (len == 1 && text[0] == '*')
    return SL_SELECTOR_ANY;
  return memchr(text, '{', len) ? SL_SELECTOR_TEMPLATE : SL_SELECTOR_EXACT;
}

static void matcher_free(sl_matcher_t *m) {
  sl__urlpattern_free(m->pattern);
  free(m->nfa);
  free(m);
}

int sl__selector_compile(sl_selector_t *s, sl_selector_kind_t kind, const char *text, size_t len,
                         const char *base, const char **why) {
  sl__selector_init(s, text, len);
  if (s->kind == SL_SELECTOR_ANY || kind == SL_SELECTOR_EXACT || kind == SL_SELECTOR_ANY)
    return 0;
  sl_matcher_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return -ENOMEM;
  atomic_init(&m->refs, 1);
  m->kind = kind;
  m->base = base;
  int r = kind == SL_SELECTOR_URLPATTERN
              ? sl__urlpattern_compile(&m->pattern, text, len, base, why)
              : sl__uritemplate_compile(&m->nfa, text, len, why);
  if (r) {
    matcher_free(m);
    return r == -E2BIG ? -EINVAL : r;
  }
  s->kind = kind;
  s->matcher = m;
  return 0;
}

size_t sl__selector_states(const sl_selector_t *s) {
  if (s->matcher == NULL)
    return 0;
  return s->matcher->pattern ? sl__urlpattern_states(s->matcher->pattern)
                             : sl__nfa_states(s->matcher->nfa);
}

void sl__selector_copy(sl_selector_t *dst, const sl_selector_t *src) {
  *dst = *src;
  if (src->matcher)
    atomic_fetch_add_explicit(&src->matcher->refs, 1, memory_order_relaxed);
}

void sl__selector_release(sl_selector_t *s) {
  sl_matcher_t *m = s->matcher;
  s->matcher = NULL;
  if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
    matcher_free(m);
}

void sl__selectors_release(sl_selector_t *sel, size_t n) {
  for (size_t i = 0; i < n; i++)
    sl__selector_release(&sel[i]);
}

int sl__selector_matches_topic(const sl_selector_t *s, sl_topic_t *t) {
  switch (s->kind) {
  case SL_SELECTOR_ANY:
    return 1;
  case SL_SELECTOR_EXACT:
    return s->len == t->len && memcmp(s->text, t->text, t->len) == 0;
  case SL_SELECTOR_URLPATTERN: {
    const sl_url_t *url = sl__topic_url(t, s->matcher->base);
    return url != NULL && sl__urlpattern_match(s->matcher->pattern, url, NULL);
  }
  case SL_SELECTOR_TEMPLATE:
    return sl__nfa_match(s->matcher->nfa, t->text, t->len, NULL);
  }
  return 0;
}

int sl__selector_matches(const sl_selector_t *s, const char *topic, size_t len) {
  return sl__selectors_match(s, 1, topic, len);
}

int sl__selectors_match(const sl_selector_t *sel, size_t n, const char *topic, size_t len) {
  sl_topic_t t;
  sl__topic_init(&t, topic, len);
  int hit = 0;
  for (size_t i = 0; i < n && !hit; i++)
    hit = sl__selector_matches_topic(&sel[i], &t);
  sl__topic_done(&t);
  return hit;
}

int sl__selector_is_exact(const sl_selector_t *s) {
  return s->kind == SL_SELECTOR_EXACT;
}

int sl__selector_fixed_url(const sl_selector_t *s, sl_fixed_url_t *out) {
  if (s->kind != SL_SELECTOR_URLPATTERN || s->matcher == NULL || s->matcher->pattern == NULL)
    return 0;
  out->base = s->matcher->base;
  return sl__urlpattern_fixed(s->matcher->pattern, out->part, out->len, &out->wild);
}

const char *sl__selector_base(const sl_selector_t *s) {
  return s->matcher ? s->matcher->base : NULL;
}

unsigned sl__selector_refs(const sl_selector_t *s) {
  return s->matcher ? atomic_load_explicit(&s->matcher->refs, memory_order_relaxed) : 0;
}
