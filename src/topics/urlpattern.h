/* urlpattern.h — URL patterns (WHATWG URL Pattern standard) compiled to one linear-time automaton
 * per URL component, for the `urlpattern` matcher type of the Mercure spec. A pattern string is
 * split into components by the standard's constructor-string parser, relative patterns take the
 * missing components from the hub's URL, each component's pattern (fixed text, ":name" groups,
 * "*" wildcards, "(regexp)" groups in the safe subset nfa.h parses, "{...}" groups, modifiers
 * ? * +, "\" escapes) is compiled to an automaton (or, when it is fixed text only, kept as the
 * one canonical string its automaton would accept, and compared byte for byte), and a topic
 * matches when every component of the topic, parsed as a URL against the same hub URL (url.h),
 * matches. Only yes or no: no groups are captured. No ignoreCase; the hostname is compared in
 * lowercase on both sides.
 *
 * Ownership: an sl_urlpattern_t is one immutable object (safe to share between threads once
 * compiled), freed with sl__urlpattern_free.
 */
#ifndef SL_URLPATTERN_H
#define SL_URLPATTERN_H

#include <stddef.h>
#include <stdint.h>

#include "topics/url.h"

/* The longest pattern accepted, in bytes: the hub's matcher length limit. */
#define SL_URLPATTERN_MAX_LEN 4096

typedef struct sl_urlpattern_s sl_urlpattern_t;

/* Compiles text (len bytes, UTF-8) with base (the hub's URL, NUL-terminated, absolute) for
 * relative patterns. 0 and *out; -EINVAL with *why a static sentence naming the problem (not a
 * valid URL pattern, a regexp outside the safe subset, longer than SL_URLPATTERN_MAX_LEN);
 * -E2BIG when its automata would exceed SL_NFA_MAX_STATES states in all (*why says so);
 * -ENOMEM. */
int sl__urlpattern_compile(sl_urlpattern_t **out, const char *text, size_t len, const char *base,
                           const char **why);

void sl__urlpattern_free(sl_urlpattern_t *p);

/* 1 when url (parsed against the same base) matches p, else 0. *steps (may be NULL) grows by
 * the automaton work done. */
int sl__urlpattern_match(const sl_urlpattern_t *p, const sl_url_t *url, uint64_t *steps);

/* The number of automaton states of p (for tests and limits). */
size_t sl__urlpattern_states(const sl_urlpattern_t *p);

/* 1 when each component of p is either "*" (bit k of *wild set, part[k] NULL) or fixed text with
 * no group, wildcard, regexp or modifier (part[k], len[k] bytes, borrowed from p: the one string
 * that component's automaton accepts, canonical as url.c writes a topic's component); then p
 * matches a URL exactly when each fixed component equals the URL's, byte for byte. Else 0. */
int sl__urlpattern_fixed(const sl_urlpattern_t *p, const char **part, size_t *len,
                         unsigned *wild);

#endif
