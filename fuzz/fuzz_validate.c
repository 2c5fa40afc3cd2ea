/* fuzz_validate.c — the field rules (validate.c) on arbitrary bytes: sl__utf8_valid and every
 * sl__check_*. Besides memory errors it checks what each rule promises, against readings of its
 * own: UTF-8 by a decoder written the other way round (decode any lead byte, then refuse
 * overlongs, surrogates and code points past U+10FFFF), each field rule as sl__check_text plus
 * its reserved values, and two properties of the reserved-namespace check that follow from URL
 * parsing: spaces around a topic do not change the verdict, and an absolute path gets the same
 * verdict as that path on an https URL. The input is copied into an allocation of exactly its
 * size, so that a read past it is an ASan report. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/validate.h"

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

#define BASE "https://h"

/* Decodes s[0..len) as UTF-8 into cps (len entries at most) up to its first malformed sequence,
 * if any (then *bad = 1); returns the count decoded. */
static size_t decode_utf8(const unsigned char *s, size_t len, uint32_t *cps, int *bad) {
  size_t n = 0;
  *bad = 1;
  size_t i = 0;
  while (i < len) {
    unsigned char b = s[i];
    size_t follow;
    uint32_t cp, min;
    if (b < 0x80)
      follow = 0, cp = b, min = 0;
    else if ((b & 0xE0) == 0xC0)
      follow = 1, cp = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0)
      follow = 2, cp = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0)
      follow = 3, cp = b & 0x07, min = 0x10000;
    else
      return n;
    if (len - i - 1 < follow)
      return n;
    for (size_t k = 1; k <= follow; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return n;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return n;
    cps[n++] = cp;
    i += follow + 1;
  }
  *bad = 0;
  return n;
}

static int is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* A few format characters (Cf) everyone knows; the rule must refuse each. */
static int is_known_format(uint32_t cp) {
  return cp == 0xAD || cp == 0x200B || cp == 0x200E || cp == 0x202E || cp == 0x2060 ||
         cp == 0xFEFF || cp == 0xE0001;
}

static int equals(const char *s, size_t len, const char *lit) {
  return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* 0 or -EINVAL with a reason, as every rule must answer (-ENOMEM aside). */
static int checked(int rc, const char *why) {
  CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
  CHECK(rc == 0 || (why != NULL && why[0] != '\0'));
  return rc;
}

static int topic(const char *s, size_t len) {
  const char *why = NULL;
  return checked(sl__check_topic(s, len, &why), why);
}

static void check_topic_properties(const char *s, size_t len, int verdict) {
  char *t = malloc(len + sizeof BASE);
  CHECK(t != NULL);
  if (verdict != -ENOMEM && !equals(s, len, "*")) {
    t[0] = ' ';
    memcpy(t + 1, s, len);
    t[len + 1] = ' ';
    int padded = topic(t, len + 2);
    CHECK(padded == -ENOMEM || (padded == 0) == (verdict == 0));
  }
  if (verdict != -ENOMEM && len > 0 && s[0] == '/' &&
      (len == 1 || (s[1] != '/' && s[1] != '\\'))) {
    memcpy(t, BASE, sizeof BASE - 1);
    memcpy(t + sizeof BASE - 1, s, len);
    int absolute = topic(t, len + sizeof BASE - 1);
    CHECK(absolute == -ENOMEM || (absolute == 0) == (verdict == 0));
  }
  free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size ? size : 1);
  uint32_t *cps = malloc((size ? size : 1) * sizeof *cps);
  CHECK(s != NULL && cps != NULL);
  memcpy(s, data, size);

  int bad;
  size_t n = decode_utf8(data, size, cps, &bad);
  int utf8 = sl__utf8_valid(s, size);
  CHECK(utf8 == !bad);
  /* The rule reports the first fault: a control or format character before the malformed
   * sequence, or the malformed sequence. */
  int control = 0, format = 0;
  for (size_t i = 0; i < n; i++) {
    control |= is_control(cps[i]);
    format |= is_known_format(cps[i]);
  }

  const char *why = NULL;
  int text = checked(sl__check_text(s, size, &why), why);
  if (control)
    CHECK(text == -EINVAL && strstr(why, "control or format") != NULL);
  else if (!utf8 && !format)
    CHECK(text == -EINVAL && (strstr(why, "UTF-8") || strstr(why, "control or format")));
  else if (format)
    CHECK(text == -EINVAL);
  if (text == 0)
    CHECK(utf8 && !control && !format);

  why = NULL;
  int matcher = checked(sl__check_matcher(s, size, &why), why);
  CHECK((matcher == 0) == (size > 0 && text == 0));

  why = NULL;
  int id = checked(sl__check_id(s, size, &why), why);
  CHECK((id == 0) == (size > 0 && text == 0 && s[0] != '#' && !equals(s, size, "earliest")));

  why = NULL;
  int type = checked(sl__check_type(s, size, &why), why);
  CHECK((type == 0) == (text == 0 && !equals(s, size, "mercure")));

  why = NULL;
  int retry = checked(sl__check_retry(s, size, &why), why);
  size_t digits = 0;
  while (digits < size && s[digits] >= '0' && s[digits] <= '9')
    digits++;
  if (size == 0 || digits < size)
    CHECK(retry == -EINVAL);
  else
    CHECK(retry == (size <= 10 ? 0 : -E2BIG));

  int t = topic(s, size);
  if (t == 0)
    CHECK(size > 0 && text == 0 && !equals(s, size, "*"));
  if (size == 0 || text != 0 || equals(s, size, "*"))
    CHECK(t == -EINVAL);
  if (text == 0)
    check_topic_properties(s, size, t);

  free(cps);
  free(s);
  return 0;
}
