/* validate.h — the character and value rules of the Mercure protocol for topics, matchers, ids,
 * event types and retry values. Pure functions; each returns 0 or a negative errno (-EINVAL unless
 * said otherwise) and then points *why at a static sentence a user can act on (e.g. "topic
 * contains a control or format character").
 */
#ifndef SL_VALIDATE_H
#define SL_VALIDATE_H

#include <stddef.h>

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int sl__utf8_valid(const char *s, size_t len);

/* UTF-8, and no C0, DEL, C1 or Unicode format (Cf) characters. The common rule for topics,
 * matchers, ids and types. Empty is allowed here. */
int sl__check_text(const char *s, size_t len, const char **why);

/* A topic to publish to: non-empty, sl__check_text, not exactly "*", and not addressing the
 * reserved hub namespace: resolved against "https://<hub>/.well-known/mercure" as the base URL
 * (WHATWG URL parsing, as far as the path), with dot-segments removed and percent-encoded
 * unreserved characters decoded, its path must not be "/.well-known/mercure" nor begin with
 * "/.well-known/mercure/". So "mercure/x", "?q" and "#f" are refused (they resolve to the hub's
 * path or under it) and "urn:uuid:..." is accepted. -ENOMEM (only long topics allocate) is
 * not the topic's fault. */
int sl__check_topic(const char *s, size_t len, const char **why);
/* The same, for a hub whose URL's path is hub_path (starts with '/'): the reserved namespace is
 * that path and what lies under it, and relative topics resolve against its directory. */
int sl__check_topic_at(const char *s, size_t len, const char *hub_path, const char **why);

/* A subscription matcher value (the "match"/"topic" query parameter): non-empty, sl__check_text. */
int sl__check_matcher(const char *s, size_t len, const char **why);

/* A publisher-supplied id: non-empty, sl__check_text, not starting with '#', not "earliest". */
int sl__check_id(const char *s, size_t len, const char **why);

/* An event type: sl__check_text, not "mercure" (reserved for the hub). */
int sl__check_type(const char *s, size_t len, const char **why);

/* A retry value: one or more ASCII digits (else -EINVAL), at most 10 of them (else -E2BIG: the
 * spec answers a field over an implementation limit with 413, not 400). */
int sl__check_retry(const char *s, size_t len, const char **why);

#endif
