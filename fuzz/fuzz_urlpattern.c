/* fuzz_urlpattern.c — the matchers: urlpattern.c (with nfa.c's regexp subset and automaton) and
 * uritemplate.c compiling fuzzed patterns, url.c parsing fuzzed topics against the hub's URL,
 * and every compiled pattern tested against every topic.
 *
 * Input: lines. The first is a pattern, compiled both as a URL pattern and as a URI template;
 * each further line is a topic. Checked: a compile either succeeds or fails with a reason and no
 * object; a match answers 0 or 1, the same twice, and within the linear bound on its work
 * ((topic length + 1) x (states + 1) x 4 state visits per component); a topic that does not
 * parse matches nothing; a pattern that is fixed text (sl__urlpattern_fixed, what the broker's
 * canonical-URL index keys on) matches a topic exactly when its fixed components equal the
 * topic's; nothing leaks (ASan).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topics/nfa.h"
#include "topics/uritemplate.h"
#include "topics/url.h"
#include "topics/urlpattern.h"

#define BASE "https://hub.example.com/.well-known/mercure"
#define MAX_TOPICS 8

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "fuzz_urlpattern: check failed: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  const char *nl = memchr(in, '\n', size);
  size_t plen = nl ? (size_t)(nl - in) : size;
  sl_urlpattern_t *p = NULL;
  sl_nfa_t *tpl = NULL;
  const char *why = NULL;
  int r = sl__urlpattern_compile(&p, in, plen, BASE, &why);
  CHECK(r == 0 ? p != NULL : (p == NULL && (r == -ENOMEM || why != NULL)));
  why = NULL;
  int rt = sl__uritemplate_compile(&tpl, in, plen, &why);
  CHECK(rt == 0 ? tpl != NULL : (tpl == NULL && (rt == -ENOMEM || why != NULL)));
  size_t pos = nl ? plen + 1 : size;
  for (int n = 0; n < MAX_TOPICS && pos < size; n++) {
    const char *topic = in + pos;
    const char *end = memchr(topic, '\n', size - pos);
    size_t tlen = end ? (size_t)(end - topic) : size - pos;
    pos += tlen + 1;
    if (p) {
      sl_url_t url;
      if (sl__url_parse(&url, topic, tlen, BASE) == 0) {
        uint64_t steps = 0;
        int a = sl__urlpattern_match(p, &url, &steps);
        int b = sl__urlpattern_match(p, &url, NULL);
        CHECK((a == 0 || a == 1) && a == b);
        const char *fx[SL_URL_PARTS];
        size_t fxlen[SL_URL_PARTS];
        unsigned wild;
        if (sl__urlpattern_fixed(p, fx, fxlen, &wild)) {
          int eq = 1;
          for (int k = 0; k < SL_URL_PARTS; k++)
            if (!(wild & (1u << k)))
              eq &= fxlen[k] == url.len[k] && memcmp(fx[k], url.part[k], url.len[k]) == 0;
          CHECK(eq == a);
        }
        size_t longest = 0;
        for (int k = 0; k < SL_URL_PARTS; k++)
          longest = url.len[k] > longest ? url.len[k] : longest;
        CHECK(steps <= (uint64_t)(longest + 1) * (sl__urlpattern_states(p) + 1) * 4 *
                           SL_URL_PARTS);
        sl__url_free(&url);
      }
    }
    if (tpl) {
      uint64_t steps = 0;
      int a = sl__nfa_match(tpl, topic, tlen, &steps);
      CHECK(a == 0 || a == 1);
      CHECK(steps <= (uint64_t)(tlen + 1) * (sl__nfa_states(tpl) + 1) * 4);
    }
  }
  sl__urlpattern_free(p);
  free(tpl);
  return 0;
}
