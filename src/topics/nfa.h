/* nfa.h — a small automaton that answers "does this whole string match?" in time linear in the
 * string's length, whatever the expression: no backtracking, no captures. URL patterns
 * (urlpattern.c) and legacy URI templates (uritemplate.c) build an expression tree with the
 * sl__re_* constructors, turn it into an automaton with sl__nfa_compile, and test strings with
 * sl__nfa_match. It also parses the safe subset of ECMAScript regular expressions that a URL
 * pattern's "(regexp)" groups may use (sl__re_parse).
 *
 * Bytes, not code points: the strings are UTF-8 and every class that can hold a non-ASCII
 * character (".", "[^...]", "\D", "\S", "\W") consumes one whole UTF-8 sequence; classes with
 * listed members are ASCII-only (the URL pattern tokenizer already refuses non-ASCII inside a
 * regexp group).
 *
 * Ownership: an sl_re_tree_t owns every node it handed out (one arena, freed with it); an
 * sl_nfa_t is one immutable allocation, safe to share between threads, freed with free().
 */
#ifndef SL_NFA_H
#define SL_NFA_H

#include <stddef.h>
#include <stdint.h>

/* The most states one automaton may have. A pattern above it is refused: this bounds both the
 * memory of a compiled pattern (about 10 bytes a state) and the work per input byte. */
#define SL_NFA_MAX_STATES 4096

/* The largest finite bound {m,n} a regexp may use. */
#define SL_RE_MAX_REPEAT 255

typedef struct sl_re_s sl_re_t;
typedef struct sl_re_tree_s sl_re_tree_t;
typedef struct sl_nfa_s sl_nfa_t;

/* A 256-bit byte set, plus whether it also takes any non-ASCII character (a whole UTF-8
 * sequence). */
typedef struct sl_byteset_s {
  uint64_t bits[4];
  int utf8;
} sl_byteset_t;

sl_re_tree_t *sl__re_tree_new(void);
void sl__re_tree_free(sl_re_tree_t *t);

/* Constructors. Each returns NULL when out of memory (or when given a NULL child), so that a
 * whole expression can be built and checked once at the end. */
sl_re_t *sl__re_empty(sl_re_tree_t *t);
sl_re_t *sl__re_set(sl_re_tree_t *t, const sl_byteset_t *set);
sl_re_t *sl__re_literal(sl_re_tree_t *t, const char *s, size_t len); /* case-sensitive bytes */
sl_re_t *sl__re_cat(sl_re_tree_t *t, sl_re_t *a, sl_re_t *b);
sl_re_t *sl__re_alt(sl_re_tree_t *t, sl_re_t *a, sl_re_t *b);
/* a repeated min..max times; max -1 = without bound. */
sl_re_t *sl__re_repeat(sl_re_tree_t *t, sl_re_t *a, int min, int max);

/* Byte sets. */
void sl__byteset_clear(sl_byteset_t *s);
void sl__byteset_add(sl_byteset_t *s, unsigned char c);
void sl__byteset_add_range(sl_byteset_t *s, unsigned char lo, unsigned char hi);
/* Every ASCII byte not in s goes in, s's goes out, and non-ASCII characters flip too. */
void sl__byteset_negate(sl_byteset_t *s);

/* Parses the regexp text (len bytes; the inside of a URL pattern's "(...)" group) into t.
 * Accepted: literals, "\" escapes of syntax characters and "/" "-", \d \D \w \W \s \S \t \n \r
 * \f \v \0 \xHH (ASCII), ".", classes "[...]" "[^...]" with ranges, "|", "(?:...)", quantifiers
 * ? * + {m} {m,} {m,n} (n at most SL_RE_MAX_REPEAT), each maybe lazy ("?" after it, which cannot
 * change a yes/no answer). Anything else (backreferences, lookaround, named or capturing groups,
 * anchors, \b, \p{...}) makes it invalid. 0 and *out, or -EINVAL with *why a static reason, or
 * -ENOMEM. */
int sl__re_parse(sl_re_tree_t *t, const char *text, size_t len, sl_re_t **out, const char **why);

/* The automaton of re, anchored at both ends. 0 and *out (free()), -E2BIG when it would exceed
 * SL_NFA_MAX_STATES (or *budget, which it then lowers by what it used; NULL = no budget),
 * -ENOMEM. */
int sl__nfa_compile(const sl_re_t *re, sl_nfa_t **out, size_t *budget);

/* 1 when the whole of s (len bytes) matches, else 0. *steps (may be NULL) grows by the number
 * of state visits made: at most about len * states. */
int sl__nfa_match(const sl_nfa_t *nfa, const char *s, size_t len, uint64_t *steps);

/* The number of states of an automaton. */
size_t sl__nfa_states(const sl_nfa_t *nfa);

#endif
