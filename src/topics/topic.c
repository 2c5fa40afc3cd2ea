/* topic.c — topic selectors: classifying a selector's text and matching it against a topic. It
 * owns the meaning of a selector for subscriptions and token grants alike; it keeps no state and
 * knows nothing of how callers store or index selectors. */
#include "topics/topic.h"

#include <string.h>

void sl__selector_init(sl_selector_t *s, const char *text, size_t len) {
  s->kind = len == 1 && text[0] == '*' ? SL_SELECTOR_ANY : SL_SELECTOR_EXACT;
  s->text = text;
  s->len = len;
}

int sl__selector_matches(const sl_selector_t *s, const char *topic, size_t len) {
  switch (s->kind) {
  case SL_SELECTOR_ANY:
    return 1;
  case SL_SELECTOR_EXACT:
    return s->len == len && memcmp(s->text, topic, len) == 0;
  }
  return 0;
}

int sl__selectors_match(const sl_selector_t *sel, size_t n, const char *topic, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (sl__selector_matches(&sel[i], topic, len))
      return 1;
  return 0;
}

int sl__selector_is_exact(const sl_selector_t *s) {
  return s->kind == SL_SELECTOR_EXACT;
}
