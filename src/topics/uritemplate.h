/* uritemplate.h — legacy topic selectors: RFC 6570 URI templates (levels 1 to 4), as
 * pre-standard Mercure clients sent them in `topic=` and in the `mercure` claim. A template
 * matches a topic when some expansion of it, with any values for its variables, is the topic.
 * It is compiled to the same linear-time automaton as URL patterns (nfa.h), over the topic's
 * text as it is (no URL parsing: a template names topics by their characters).
 *
 * What an expression's variables may expand to, per operator (RFC 6570 section 3.2): simple
 * {var} and {/var} {.var} {;var} {?var} {&var} take unreserved characters and percent-encoded
 * octets; {+var} and {#var} also reserved characters. A prefix modifier (:n) is a bound on the
 * value's length, an explode modifier (*) lets a value be a list or pairs. A variable may be
 * undefined (it then expands to nothing); a list or pairs value may use ',' between items.
 */
#ifndef SL_URITEMPLATE_H
#define SL_URITEMPLATE_H

#include <stddef.h>

#include "topics/nfa.h"

/* The automaton of the template text (len bytes). 0 and *out (free()); -EINVAL with *why a
 * static sentence (an unclosed or empty expression, a bad operator, variable name or modifier);
 * -E2BIG (too complex, *why says so); -ENOMEM. */
int sl__uritemplate_compile(sl_nfa_t **out, const char *text, size_t len, const char **why);

#endif
