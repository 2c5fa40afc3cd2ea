/* text.h — string literals with their lengths counted by the compiler, never by hand. */
#ifndef SL_TEXT_H
#define SL_TEXT_H

#include <string.h>
#include <strings.h>

/* A string literal's length, without its NUL. */
#define SL_LITLEN(lit) (sizeof(lit) - 1)
/* A string literal and its length, as two arguments. */
#define SL_LIT(lit) (lit), SL_LITLEN(lit)
/* 1 when s begins with the literal, compared case-insensitively (header values, schemes). */
#define SL_STARTS_WITH_CASE(s, lit) (strncasecmp((s), (lit), SL_LITLEN(lit)) == 0)

#endif
