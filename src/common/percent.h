/* percent.h — percent-encoding (RFC 3986 section 2.1) as RFC 6570 expands a simple variable
 * ({var}): every octet that is not an unreserved character (ALPHA, DIGIT, '-', '.', '_', '~')
 * becomes "%XX" with upper-case hex, a '%' included, so a value is encoded exactly once and as a
 * whole; and the decoding of one path segment. Pure functions, no allocation. */
#ifndef SL_PERCENT_H
#define SL_PERCENT_H

#include <stddef.h>

/* The bytes sl__pct_encode writes for s[0..len) (at most 3 * len). */
size_t sl__pct_encoded_len(const char *s, size_t len);

/* Writes the encoding of s[0..len) to out (sl__pct_encoded_len bytes, no NUL); returns the end
 * of what it wrote. */
char *sl__pct_encode(char *out, const char *s, size_t len);

/* Decodes s[0..len) into out (at least len bytes; no NUL written) and sets *out_len. Every '%'
 * must start "%XX" with two hex digits (either case); 0, or -EINVAL when one does not. '+' is
 * not a space here: this is a path, not a form. */
int sl__pct_decode(char *out, const char *s, size_t len, size_t *out_len);

#endif
