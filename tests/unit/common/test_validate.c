/* test_validate.c — validate.c: UTF-8 well-formedness (exhaustively over code points and their
 * overlong forms), the control and Cf boundaries, the reserved values, and the reserved topic
 * namespace with the spec's own examples and the URL-resolution tricks that would bypass it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/validate.h"

/* Encodes cp as UTF-8 in exactly n bytes (n larger than needed gives an overlong form). */
static size_t encode(char *out, uint32_t cp, size_t n) {
  static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
  for (size_t k = n - 1; k > 0; k--) {
    out[k] = (char)(0x80 | (cp & 0x3F));
    cp >>= 6;
  }
  out[0] = (char)(n == 1 ? cp : (lead[n] | cp));
  return n;
}

static size_t minimal_length(uint32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* ---- UTF-8 ------------------------------------------------------------------------------- */

#define S(x) x, sizeof(x) - 1

struct bytes {
  const char *s;
  size_t len;
};

static const struct bytes utf8_good[] = {
  {S("")},
  {S("plain ascii")},
  {S("with\0nul")},
  {S("\xC2\x80")},                              /* U+0080 */
  {S("\xC3\xA9")},                              /* é */
  {S("\xDF\xBF")},                              /* U+07FF */
  {S("\xE0\xA0\x80")},                          /* U+0800 */
  {S("\xE2\x82\xAC")},                          /* € */
  {S("\xED\x9F\xBF")},                          /* U+D7FF, just below the surrogates */
  {S("\xEE\x80\x80")},                          /* U+E000, just above them */
  {S("\xEF\xBF\xBF")},                          /* U+FFFF */
  {S("\xF0\x90\x80\x80")},                      /* U+10000 */
  {S("\xF0\x9D\x84\x9E")},                      /* 𝄞 */
  {S("\xF4\x8F\xBF\xBF")},                      /* U+10FFFF */
  {S("0123456789abcdef\xC3\xA9""0123456789")},  /* multibyte between ASCII runs */
  {S("\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC")},
};

static const struct bytes utf8_bad[] = {
  {S("\x80")},                      /* lone continuation */
  {S("\xBF")},
  {S("\xC0\x80")},                  /* overlong NUL */
  {S("\xC1\xBF")},                  /* overlong U+007F */
  {S("\xE0\x80\x80")},              /* overlong 3-byte */
  {S("\xE0\x9F\xBF")},              /* overlong U+07FF */
  {S("\xF0\x80\x80\x80")},          /* overlong 4-byte */
  {S("\xF0\x8F\xBF\xBF")},          /* overlong U+FFFF */
  {S("\xED\xA0\x80")},              /* U+D800 */
  {S("\xED\xAD\xBF")},              /* U+DB7F */
  {S("\xED\xBF\xBF")},              /* U+DFFF */
  {S("\xED\xA0\xBD\xED\xB2\xA9")},  /* CESU-8 surrogate pair */
  {S("\xF4\x90\x80\x80")},          /* U+110000 */
  {S("\xF5\x80\x80\x80")},
  {S("\xF7\xBF\xBF\xBF")},
  {S("\xF8\x88\x80\x80\x80")},      /* 5-byte form */
  {S("\xFC\x84\x80\x80\x80\x80")},  /* 6-byte form */
  {S("\xFE")},
  {S("\xFF")},
  {S("\xC3")},                      /* truncated */
  {S("\xE2\x82")},
  {S("\xF0\x9D\x84")},
  {S("\xC3\x41")},                  /* bad continuation */
  {S("\xE2\x28\xA1")},
  {S("\xE2\x82\x28")},
  {S("\xF0\x9D\x28\x9E")},
  {S("\xF0\x9D\x84\x28")},
  {S("abcdefgh\xC3")},              /* truncated right after an ASCII block */
  {S("abcdefghijklmnop\x80")},
  {S("abc\xFF" "defghijklmnop")},    /* bad byte inside what would be an ASCII block */
  {S("\xC3\xA9\xC3")},
};

/* Copies into an exact-size heap buffer so that ASan sees any read past len. */
static char *exact_copy(const char *s, size_t len) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, s, len);
  return copy;
}

static void test_utf8_tables(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof utf8_good / sizeof utf8_good[0]; i++) {
    char *c = exact_copy(utf8_good[i].s, utf8_good[i].len);
    if (!sl__utf8_valid(c, utf8_good[i].len))
      fail_msg("good UTF-8 #%zu rejected", i);
    free(c);
  }
  for (size_t i = 0; i < sizeof utf8_bad / sizeof utf8_bad[0]; i++) {
    char *c = exact_copy(utf8_bad[i].s, utf8_bad[i].len);
    if (sl__utf8_valid(c, utf8_bad[i].len))
      fail_msg("bad UTF-8 #%zu accepted", i);
    free(c);
  }
}

/* Every code point in its minimal form is valid except the surrogates; every longer form of it
 * (overlong) and every truncation of a multibyte form is invalid. */
static void test_utf8_every_code_point(void **state) {
  (void)state;
  char buf[4];
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    size_t min = minimal_length(cp);
    size_t n = encode(buf, cp, min);
    int surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    if (sl__utf8_valid(buf, n) != !surrogate)
      fail_msg("U+%04X: minimal form judged wrongly", (unsigned)cp);
    for (size_t longer = min + 1; longer <= 4; longer++) {
      n = encode(buf, cp, longer);
      if (sl__utf8_valid(buf, n))
        fail_msg("U+%04X: overlong %zu-byte form accepted", (unsigned)cp, longer);
    }
    for (size_t cut = 1; cut < min; cut++) {
      encode(buf, cp, min);
      if (sl__utf8_valid(buf, cut))
        fail_msg("U+%04X: truncated to %zu bytes accepted", (unsigned)cp, cut);
    }
  }
  /* Beyond U+10FFFF, with the 4-byte lead bytes F4..F7. */
  for (uint32_t cp = 0x110000; cp < 0x200000; cp += 0x101) {
    encode(buf, cp, 4);
    if (sl__utf8_valid(buf, 4))
      fail_msg("U+%X beyond Unicode accepted", (unsigned)cp);
  }
}

/* ---- Control and format characters ------------------------------------------------------- */

/* 1 when the character must be refused by sl__check_text. */
struct code_point_case {
  uint32_t cp;
  int refused;
};

static const struct code_point_case code_points[] = {
  /* C0, DEL, C1 and their neighbours */
  {0x00, 1}, {0x01, 1}, {0x09, 1}, {0x0A, 1}, {0x0D, 1}, {0x1B, 1}, {0x1F, 1}, {0x20, 0},
  {0x7E, 0}, {0x7F, 1}, {0x80, 1}, {0x85, 1}, {0x9F, 1}, {0xA0, 0},
  /* every Cf range of Unicode 15.0: the code point before, the first, the last, the one after */
  {0x00AC, 0}, {0x00AD, 1}, {0x00AE, 0},
  {0x05FF, 0}, {0x0600, 1}, {0x0605, 1}, {0x0606, 0},
  {0x061B, 0}, {0x061C, 1}, {0x061D, 0},
  {0x06DC, 0}, {0x06DD, 1}, {0x06DE, 0},
  {0x070E, 0}, {0x070F, 1}, {0x0710, 0},
  {0x088F, 0}, {0x0890, 1}, {0x0891, 1}, {0x0892, 0},
  {0x08E1, 0}, {0x08E2, 1}, {0x08E3, 0},
  {0x180D, 0}, {0x180E, 1}, {0x180F, 0},
  {0x200A, 0}, {0x200B, 1}, {0x200C, 1}, {0x200D, 1}, {0x200E, 1}, {0x200F, 1}, {0x2010, 0},
  {0x2028, 0}, {0x2029, 0},  /* line and paragraph separators are Zl/Zp, not Cf */
  {0x202A, 1}, {0x202E, 1}, {0x202F, 0},
  {0x205F, 0}, {0x2060, 1}, {0x2064, 1}, {0x2065, 0},
  {0x2066, 1}, {0x206F, 1}, {0x2070, 0},
  {0xFEFE, 0}, {0xFEFF, 1}, {0xFF00, 0},
  {0xFFF8, 0}, {0xFFF9, 1}, {0xFFFB, 1}, {0xFFFC, 0},
  {0x110BC, 0}, {0x110BD, 1}, {0x110BE, 0},
  {0x110CC, 0}, {0x110CD, 1}, {0x110CE, 0},
  {0x1342F, 0}, {0x13430, 1}, {0x13438, 1}, {0x13439, 1}, {0x1343F, 1}, {0x13440, 0},
  {0x1BC9F, 0}, {0x1BCA0, 1}, {0x1BCA3, 1}, {0x1BCA4, 0},
  {0x1D172, 0}, {0x1D173, 1}, {0x1D17A, 1}, {0x1D17B, 0},
  {0xE0000, 0}, {0xE0001, 1}, {0xE0002, 0},
  {0xE001F, 0}, {0xE0020, 1}, {0xE0041, 1}, {0xE007F, 1}, {0xE0080, 0},
  /* ordinary text */
  {'a', 0}, {0xE9, 0}, {0x4E2D, 0}, {0x1F600, 0}, {0xFFFD, 0}, {0x10FFFF, 0},
};

static void test_text_code_point_boundaries(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof code_points / sizeof code_points[0]; i++) {
    uint32_t cp = code_points[i].cp;
    char buf[16] = "ab";
    size_t n = 2 + encode(buf + 2, cp, minimal_length(cp));
    buf[n++] = 'z';
    const char *why = NULL;
    int rc = sl__check_text(buf, n, &why);
    if (code_points[i].refused) {
      if (rc != -EINVAL)
        fail_msg("U+%04X accepted, should be refused", (unsigned)cp);
      assert_string_equal(why, "value contains a control or format character");
    } else if (rc != 0) {
      fail_msg("U+%04X refused (%s), should be accepted", (unsigned)cp, why);
    }
  }
}

static void test_text_messages(void **state) {
  (void)state;
  const char *why = NULL;
  assert_int_equal(sl__check_text("", 0, &why), 0);
  assert_int_equal(sl__check_text(S("https://example.com/books/1"), &why), 0);
  assert_int_equal(sl__check_text(S("caf\xC3\xA9 \xF0\x9F\x98\x80"), &why), 0);
  assert_int_equal(sl__check_text(S("a\xED\xA0\x80"), &why), -EINVAL);
  assert_string_equal(why, "value is not valid UTF-8");
  assert_int_equal(sl__check_text(S("a\xC0\x8A"), &why), -EINVAL); /* overlong LF */
  assert_string_equal(why, "value is not valid UTF-8");
  assert_int_equal(sl__check_text(S("a\0b"), &why), -EINVAL);
  assert_string_equal(why, "value contains a control or format character");
}

/* ---- Topics ------------------------------------------------------------------------------ */

#define RESERVED "topic addresses the hub's reserved namespace (its URL's path and everything " \
                 "under it), where only the hub publishes"

static const char *const topics_ok[] = {
  "https://example.com/foo",
  "https://example.com/books/1.jsonld",
  "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
  "mailto:someone@example.com",
  "tag:example.com,2024:x",
  "foo",
  "books/1",
  "**",
  "*x",
  "https://example.com",
  "https://example.com/",
  "https://example.com/.well-known/mercurex",
  "https://example.com/.well-known/Mercure",
  "https://example.com/foo/.well-known/mercure",
  "https://example.com/.well-known/mercure/../foo",
  "https://example.com?/.well-known/mercure",
  "https://example.com/x#/.well-known/mercure",
  "/.well-known/mercurex",
  "/.well-known/mercure-x/y",
  "/.well-known/%4Dercure",          /* %4D is 'M': paths are case-sensitive */
  "/.well-known%2Fmercure",          /* '/' is not unreserved, so %2F stays encoded */
  "/.well-known/mercure%2Fx",
  "/.well-known/mercure%",
  "/.well-known/mercure/../../x",
  "/%2E%2E/x",
  "/x/.well-known/mercure",
  "mercurex",
  ".well-known/mercure",             /* resolves to /.well-known/.well-known/mercure */
  "../mercure",                      /* resolves to /mercure */
  "../.well-known",
  "foo:.well-known/mercure",         /* an opaque path is no hub path */
  "urn:.well-known:mercure",
  "http:.well-known/mercure",        /* special scheme: ".well-known" is the host */
  "http://.well-known/mercure",
  "foo://host/.well-known\\mercure", /* '\' is a slash only for special schemes */
  "/.well-known/\xC3\xA9/mercure",
};

static const char *const topics_reserved[] = {
  "/.well-known/mercure",
  "/.well-known/mercure/",
  "/.well-known/mercure/x",
  "/.well-known/mercure/subscriptions",
  "/.well-known/mercure/subscriptions/exact/a/urn:uuid:1",
  "/.well-known/%6Dercure/x",
  "/.well-known/%6dercure/x",
  "/%2Ewell-known/mercure",
  "/%2ewell%2Dknown/%6D%65%72%63%75%72%65",
  "/.well-known/mercure/%7e",
  "/.well-known/mercure/../mercure/x",
  "/.well-known/mercure/%2e%2e/mercure",
  "/.well-known/mercure/.",
  "/.well-known/mercure/./x",
  "/.well-known/./mercure",
  "/./.well-known/mercure",
  "/foo/../.well-known/mercure",
  "/../.well-known/mercure",
  "/.well-known/x/../mercure",
  "/.well-known/mercure/x/..",
  "/.well-known/mercure?x",
  "/.well-known/mercure#x",
  "https://hub.example.com/.well-known/mercure/subscriptions/x",
  "https://example.com/.well-known/mercure",
  "HTTPS://EXAMPLE.COM/.well-known/mercure",
  "http://example.com/.well-known/mercure/x",
  "ws://example.com/.well-known/mercure",
  "ftp://example.com/.well-known/mercure",
  "https://user:pw@example.com:8080/.well-known/mercure?q=1#f",
  "https://example.com/a/b/../../.well-known/mercure",
  "http:/example.com/.well-known/mercure",  /* special: any number of slashes before the host */
  "http:///example.com/.well-known/mercure",
  "http:\\\\example.com\\.well-known\\mercure",
  "http://example.com/.well-known\\mercure",
  "//example.com/.well-known/mercure/x",
  "\\\\example.com/.well-known/mercure",
  "\\.well-known\\mercure",
  "https:/.well-known/mercure",             /* same scheme as the hub: a relative reference */
  "https:mercure/x",
  "https:",
  "foo://bar/.well-known/mercure",
  "urn:/.well-known/mercure",
  "file:///.well-known/mercure",
  "file://host/.well-known/mercure",
  "file:/.well-known/mercure",
  "file:.well-known/mercure",
  "mercure",
  "mercure/",
  "mercure/subscriptions",
  "./mercure",
  "mercure?x",
  "mercure#x",
  "%6Dercure/x",
  "../.well-known/mercure/x",
  "x/../mercure",
  "?x",
  "#x",
  " /.well-known/mercure ",
  " ",
};

static void test_topics_accepted(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof topics_ok / sizeof topics_ok[0]; i++) {
    const char *t = topics_ok[i];
    char *c = exact_copy(t, strlen(t));
    const char *why = NULL;
    if (sl__check_topic(c, strlen(t), &why) != 0)
      fail_msg("topic \"%s\" refused: %s", t, why);
    free(c);
  }
}

static void test_topics_reserved(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof topics_reserved / sizeof topics_reserved[0]; i++) {
    const char *t = topics_reserved[i];
    char *c = exact_copy(t, strlen(t));
    const char *why = NULL;
    if (sl__check_topic(c, strlen(t), &why) != -EINVAL)
      fail_msg("topic \"%s\" accepted, addresses the hub", t);
    if (strcmp(why, RESERVED) != 0)
      fail_msg("topic \"%s\": wrong reason \"%s\"", t, why);
    free(c);
  }
}

/* Topics long enough that the normalised path no longer fits the stack buffer. */
static void test_topics_long(void **state) {
  (void)state;
  size_t n = 5000;
  char *t = malloc(n + 64);
  assert_non_null(t);
  const char *why = NULL;

  strcpy(t, "/.well-known/mercure/");
  memset(t + strlen(t), 'a', n);
  t[21 + n] = '\0';
  assert_int_equal(sl__check_topic(t, strlen(t), &why), -EINVAL);
  assert_string_equal(why, RESERVED);

  t[1] = 'x';
  assert_int_equal(sl__check_topic(t, strlen(t), &why), 0);

  memset(t, 'a', n);
  strcpy(t + n, "/../../mercure");
  assert_int_equal(sl__check_topic(t, strlen(t), &why), 0); /* /.well-known/a.../../.. is / */
  memcpy(t + n, "/../", 4);
  strcpy(t + n + 4, "mercure");
  assert_int_equal(sl__check_topic(t, strlen(t), &why), -EINVAL);
  assert_string_equal(why, RESERVED);
  free(t);
}

/* The reserved namespace follows the hub URL's path (--public-url): its path and what lies under
 * it, relative topics resolved against its directory, the default path then free. */
static void test_topic_custom_hub_path(void **state) {
  (void)state;
  const char *why = NULL;
  static const char *const reserved[] = {
    "/hub", "/hub/subscriptions/exact/x/y", "https://other.example/hub/x", "hub/x", "./hub",
    "/%68ub/x", "/a/../hub/x", "?q", "#f",
  };
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
    assert_int_equal(sl__check_topic_at(reserved[i], strlen(reserved[i]), "/hub", &why), -EINVAL);
    assert_string_equal(why, RESERVED);
  }
  static const char *const free_[] = {"/hubx", "/.well-known/mercure/x", "urn:hub:x", "/x/hub"};
  for (size_t i = 0; i < sizeof free_ / sizeof free_[0]; i++)
    assert_int_equal(sl__check_topic_at(free_[i], strlen(free_[i]), "/hub", &why), 0);
  /* A deeper path: relative topics resolve in its directory. */
  assert_int_equal(sl__check_topic_at("mercure/x", 9, "/a/b/mercure", &why), -EINVAL);
  assert_int_equal(sl__check_topic_at("../b/mercure", 12, "/a/b/mercure", &why), -EINVAL);
  assert_int_equal(sl__check_topic_at("other", 5, "/a/b/mercure", &why), 0);
}

static void test_topic_other_rules(void **state) {
  (void)state;
  const char *why = NULL;
  assert_int_equal(sl__check_topic("", 0, &why), -EINVAL);
  assert_string_equal(why, "topic must not be empty");
  assert_int_equal(sl__check_topic(S("*"), &why), -EINVAL);
  assert_string_equal(why, "topic \"*\" is reserved for the wildcard matcher");
  assert_int_equal(sl__check_topic(S("https://example.com/\xFF"), &why), -EINVAL);
  assert_string_equal(why, "topic is not valid UTF-8");
  assert_int_equal(sl__check_topic(S("https://example.com/a\nb"), &why), -EINVAL);
  assert_string_equal(why, "topic contains a control or format character");
  assert_int_equal(sl__check_topic(S("https://example.com/a\xE2\x80\x8B"), &why), -EINVAL);
  assert_string_equal(why, "topic contains a control or format character");
  assert_int_equal(sl__check_topic(S("\t/.well-known/mercure"), &why), -EINVAL);
  assert_string_equal(why, "topic contains a control or format character");
}

/* Every prefix of every reserved example: none may read past its end (ASan) or crash. */
static void test_topic_prefixes(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof topics_reserved / sizeof topics_reserved[0]; i++) {
    const char *t = topics_reserved[i];
    for (size_t n = 0; n <= strlen(t); n++) {
      char *c = exact_copy(t, n);
      const char *why = NULL;
      int rc = sl__check_topic(c, n, &why);
      assert_true(rc == 0 || (rc == -EINVAL && why != NULL));
      free(c);
    }
  }
}

/* ---- Matchers, ids, types, retry --------------------------------------------------------- */

static void test_matcher(void **state) {
  (void)state;
  const char *why = NULL;
  assert_int_equal(sl__check_matcher(S("*"), &why), 0);
  assert_int_equal(sl__check_matcher(S("https://example.com/books/{id}"), &why), 0);
  /* Subscribers may listen to the hub's own namespace: only publishing there is refused. */
  assert_int_equal(sl__check_matcher(S("/.well-known/mercure/subscriptions{/topic}{/subscriber}"),
                                    &why), 0);
  assert_int_equal(sl__check_matcher("", 0, &why), -EINVAL);
  assert_string_equal(why, "topic matcher must not be empty");
  assert_int_equal(sl__check_matcher(S("a\x7F"), &why), -EINVAL);
  assert_string_equal(why, "topic matcher contains a control or format character");
  assert_int_equal(sl__check_matcher(S("\xC0\xAF"), &why), -EINVAL);
  assert_string_equal(why, "topic matcher is not valid UTF-8");
}

static void test_id(void **state) {
  (void)state;
  const char *why = NULL;
  assert_int_equal(sl__check_id(S("urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6"), &why), 0);
  assert_int_equal(sl__check_id(S("1"), &why), 0);
  assert_int_equal(sl__check_id(S("a#b"), &why), 0);
  assert_int_equal(sl__check_id(S("Earliest"), &why), 0);
  assert_int_equal(sl__check_id(S("earliest2"), &why), 0);
  assert_int_equal(sl__check_id(S("earlies"), &why), 0);
  assert_int_equal(sl__check_id(S("/.well-known/mercure/x"), &why), 0);
  assert_int_equal(sl__check_id("", 0, &why), -EINVAL);
  assert_string_equal(why, "id must not be empty");
  assert_int_equal(sl__check_id(S("#"), &why), -EINVAL);
  assert_string_equal(why, "id must not start with '#' (reserved for ids the hub generates)");
  assert_int_equal(sl__check_id(S("#42"), &why), -EINVAL);
  assert_int_equal(sl__check_id(S("earliest"), &why), -EINVAL);
  assert_string_equal(why, "id \"earliest\" is reserved");
  assert_int_equal(sl__check_id(S("a\rb"), &why), -EINVAL);
  assert_string_equal(why, "id contains a control or format character");
  assert_int_equal(sl__check_id(S("\xEF\xBB\xBFid"), &why), -EINVAL); /* BOM */
  assert_string_equal(why, "id contains a control or format character");
  assert_int_equal(sl__check_id(S("id\xE2\x82"), &why), -EINVAL);
  assert_string_equal(why, "id is not valid UTF-8");
}

static void test_type(void **state) {
  (void)state;
  const char *why = NULL;
  assert_int_equal(sl__check_type("", 0, &why), 0);
  assert_int_equal(sl__check_type(S("message"), &why), 0);
  assert_int_equal(sl__check_type(S("Mercure"), &why), 0);
  assert_int_equal(sl__check_type(S("mercure2"), &why), 0);
  assert_int_equal(sl__check_type(S("mercur"), &why), 0);
  assert_int_equal(sl__check_type(S("mercure"), &why), -EINVAL);
  assert_string_equal(why, "type \"mercure\" is reserved for events the hub generates");
  assert_int_equal(sl__check_type(S("a\x01"), &why), -EINVAL);
  assert_string_equal(why, "type contains a control or format character");
  assert_int_equal(sl__check_type(S("\xE2\x81\xA0x"), &why), -EINVAL); /* U+2060 word joiner */
  assert_string_equal(why, "type contains a control or format character");
  assert_int_equal(sl__check_type(S("\xF5"), &why), -EINVAL);
  assert_string_equal(why, "type is not valid UTF-8");
}

static void test_retry(void **state) {
  (void)state;
  static const char *const ok[] = {"0", "7", "1000", "0123456789", "9999999999", "4294967296"};
  static const char *const bad[] = {"-1", "+1", "1.5", " 1", "1 ", "1e3", "0x10", "a",
                                    "\xD9\xA1" /* ARABIC-INDIC DIGIT ONE */, "1\0"};
  const char *why = NULL;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (sl__check_retry(ok[i], strlen(ok[i]), &why) != 0)
      fail_msg("retry \"%s\" refused: %s", ok[i], why);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t len = strlen(bad[i]) + (i == sizeof bad / sizeof bad[0] - 1);
    why = NULL;
    if (sl__check_retry(bad[i], len, &why) != -EINVAL)
      fail_msg("retry \"%s\" accepted", bad[i]);
    assert_string_equal(why, "retry must be ASCII digits");
  }
  assert_int_equal(sl__check_retry("", 0, &why), -EINVAL);
  assert_string_equal(why, "retry must be ASCII digits (it is empty)");
  assert_int_equal(sl__check_retry(S("12345678901"), &why), -E2BIG);
  assert_string_equal(why, "retry is too long (at most 10 digits)");
  assert_int_equal(sl__check_retry(S("1234567890x"), &why), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_utf8_tables),
    cmocka_unit_test(test_utf8_every_code_point),
    cmocka_unit_test(test_text_code_point_boundaries),
    cmocka_unit_test(test_text_messages),
    cmocka_unit_test(test_topics_accepted),
    cmocka_unit_test(test_topics_reserved),
    cmocka_unit_test(test_topics_long),
    cmocka_unit_test(test_topic_custom_hub_path),
    cmocka_unit_test(test_topic_other_rules),
    cmocka_unit_test(test_topic_prefixes),
    cmocka_unit_test(test_matcher),
    cmocka_unit_test(test_id),
    cmocka_unit_test(test_type),
    cmocka_unit_test(test_retry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
