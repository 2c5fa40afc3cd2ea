/* validate.h — the character and value rules of the Mercure protocol for topics, matchers, ids,
 * event types and retry values. Pure functions; each returns 0 or -EINVAL and, on -EINVAL, points
 * *why at a static sentence a user can act on (e.g. "topic contains a control character").
 */
#ifndef SL_VALIDATE_H
#define SL_VALIDATE_H

#include <stddef.h>

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int sl_utf8_valid(const char *s, size_t len);

/* UTF-8, and no C0, DEL, C1 or Unicode format (Cf) characters. The common rule for topics,
 * matchers, ids and types. Empty is allowed here. */
int sl_check_text(const char *s, size_t len, const char **why);

/* A topic to publish to: non-empty, sl_check_text, not exactly "*", and not addressing the
 * reserved hub namespace: resolved against "/.well-known/mercure" as the base URL, with
 * dot-segments removed and percent-encoded unreserved characters decoded, its path must not be
 * "/.well-known/mercure" nor begin with "/.well-known/mercure/". */
int sl_check_topic(const char *s, size_t len, const char **why);

/* A subscription matcher value (the "match"/"topic" query parameter): non-empty, sl_check_text. */
int sl_check_matcher(const char *s, size_t len, const char **why);

/* A publisher-supplied id: non-empty, sl_check_text, not starting with '#', not "earliest". */
int sl_check_id(const char *s, size_t len, const char **why);

/* An event type: sl_check_text, not "mercure" (reserved for the hub). */
int sl_check_type(const char *s, size_t len, const char **why);

/* A retry value: one or more ASCII digits, at most 10. */
int sl_check_retry(const char *s, size_t len, const char **why);

#endif
