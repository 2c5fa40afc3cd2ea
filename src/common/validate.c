/* validate.c — the value rules of the Mercure protocol: well-formed UTF-8; no control (C0, DEL,
 * C1) or Unicode format (Cf) characters in topics, matchers, ids and types; the reserved values
 * ("*" as a topic, "earliest" as an id, "mercure" as a type); the hub's reserved topic namespace;
 * and the digits-only retry. It does not decode forms (form.c) nor match topics (topic.c).
 */
#include "common/validate.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/* Decodes the code point starting at s[*i] and advances *i past it; -1 when the bytes there are
 * not one well-formed sequence (Unicode 15, table 3-7: the second-byte ranges after E0, ED, F0
 * and F4 are what exclude overlongs, surrogates and code points above U+10FFFF). */
static int32_t next_code_point(const unsigned char *s, size_t len, size_t *i) {
  size_t at = *i;
  unsigned char b0 = s[at];
  if (b0 < 0x80) {
    *i = at + 1;
    return b0;
  }
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  int32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0)
      lo = 0xA0;
    else if (b0 == 0xED)
      hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4, cp = b0 & 0x07;
    if (b0 == 0xF0)
      lo = 0x90;
    else if (b0 == 0xF4)
      hi = 0x8F;
  } else {
    return -1;
  }
  if (len - at < n)
    return -1;
  if (s[at + 1] < lo || s[at + 1] > hi)
    return -1;
  cp = cp << 6 | (s[at + 1] & 0x3F);
  for (size_t k = 2; k < n; k++) {
    if ((s[at + k] & 0xC0) != 0x80)
      return -1;
    cp = cp << 6 | (s[at + k] & 0x3F);
  }
  *i = at + n;
  return cp;
}

/* Publish bodies carry up to a MiB of data that is mostly ASCII: skip it eight bytes at a time. */
int sl__utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    if (len - i >= 8) {
      uint64_t word;
      memcpy(&word, s + i, 8);
      if ((word & UINT64_C(0x8080808080808080)) == 0) {
        i += 8;
        continue;
      }
    }
    if (next_code_point(s, len, &i) < 0)
      return 0;
  }
  return 1;
}

/* ---- Control and format characters ------------------------------------------------------- */

/* The code points of general category Cf in Unicode 15.0 (DerivedGeneralCategory.txt), sorted.
 * They are invisible, so a topic or id holding one looks identical to one that does not. */
static const struct {
  uint32_t first, last;
} format_ranges[] = {
  {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},
  {0x070F, 0x070F},   {0x0890, 0x0891},   {0x08E2, 0x08E2},   {0x180E, 0x180E},
  {0x200B, 0x200F},   {0x202A, 0x202E},   {0x2060, 0x2064},   {0x2066, 0x206F},
  {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD}, {0x110CD, 0x110CD},
  {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
  {0xE0020, 0xE007F},
};

static int is_format(uint32_t cp) {
  size_t lo = 0, hi = sizeof format_ranges / sizeof format_ranges[0];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cp < format_ranges[mid].first)
      hi = mid;
    else if (cp > format_ranges[mid].last)
      lo = mid + 1;
    else
      return 1;
  }
  return 0;
}

/* What to tell the user about one kind of value: the sentences name the field. */
struct field_messages {
  const char *not_utf8;
  const char *control;
};

static const struct field_messages text_messages = {
  "value is not valid UTF-8",
  "value contains a control or format character",
};
static const struct field_messages topic_messages = {
  "topic is not valid UTF-8",
  "topic contains a control or format character",
};
static const struct field_messages matcher_messages = {
  "topic matcher is not valid UTF-8",
  "topic matcher contains a control or format character",
};
static const struct field_messages id_messages = {
  "id is not valid UTF-8",
  "id contains a control or format character",
};
static const struct field_messages type_messages = {
  "type is not valid UTF-8",
  "type contains a control or format character",
};

static int check_text(const char *str, size_t len, const struct field_messages *m,
                      const char **why) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    int32_t cp = next_code_point(s, len, &i);
    if (cp < 0) {
      *why = m->not_utf8;
      return -EINVAL;
    }
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0xAD && is_format((uint32_t)cp))) {
      *why = m->control;
      return -EINVAL;
    }
  }
  return 0;
}

int sl__check_text(const char *s, size_t len, const char **why) {
  return check_text(s, len, &text_messages, why);
}

/* ---- The reserved topic namespace -------------------------------------------------------- */

/* The default path of the hub's URL, which topics are resolved against; only its path matters,
 * since a topic addresses the namespace "regardless of scheme or authority". */
#define HUB_PATH "/.well-known/mercure"

static int is_alpha(unsigned char c) {
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

static int is_unreserved(unsigned char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hex_value(unsigned char c) {
  if (is_digit(c))
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int equals_nocase(const char *s, size_t len, const char *lower) {
  size_t n = strlen(lower);
  if (len != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((s[i] | 0x20) != lower[i])
      return 0;
  return 1;
}

/* The WHATWG URL standard's special schemes: they take '\' as '/' and always have a host. */
static int is_special_scheme(const char *s, size_t len) {
  static const char *const special[] = {"ftp", "file", "http", "https", "ws", "wss"};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
    if (equals_nocase(s, len, special[i]))
      return 1;
  return 0;
}

static int is_slash(unsigned char c, int special) {
  return c == '/' || (special && c == '\\');
}

/* Index of the first byte in s[from..len) that ends a path (or an authority, when stop_at_slash
 * is set): '?' or '#', or a slash; len if none. */
static size_t component_end(const char *s, size_t len, size_t from, int special,
                            int stop_at_slash) {
  size_t i = from;
  while (i < len && s[i] != '?' && s[i] != '#' && !(stop_at_slash && is_slash(s[i], special)))
    i++;
  return i;
}

/* Appends s[0..len) to out, decoding the percent-encoded octets that are unreserved characters
 * (so "%6D" and "%6d" become "m", while "%2F" stays as it is) and, for special schemes, turning
 * '\' into '/'. Returns the new end of out. */
static char *append_path(char *out, const char *s, size_t len, int special) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%' && len - i >= 3) {
      int hi = hex_value((unsigned char)s[i + 1]), lo = hex_value((unsigned char)s[i + 2]);
      if (hi >= 0 && lo >= 0 && is_unreserved((unsigned char)(hi << 4 | lo))) {
        *out++ = (char)(hi << 4 | lo);
        i += 2;
        continue;
      }
    }
    *out++ = (special && c == '\\') ? '/' : (char)c;
  }
  return out;
}

/* Removes "." and ".." segments from path[0..len), which starts with '/', in place (RFC 3986
 * section 5.2.4, done segment by segment). Returns the new length. */
static size_t remove_dot_segments(char *path, size_t len) {
  size_t out = 0, i = 0;
  while (i < len) {
    size_t j = i + 1;
    while (j < len && path[j] != '/')
      j++;
    size_t seg = j - i - 1;
    const char *p = path + i + 1;
    if ((seg == 1 && p[0] == '.') || (seg == 2 && p[0] == '.' && p[1] == '.')) {
      if (seg == 2)
        while (out > 0 && path[--out] != '/')
          ;
      if (j == len)
        path[out++] = '/';
    } else {
      memmove(path + out, path + i, j - i);
      out += j - i;
    }
    i = j;
  }
  return out;
}

/* How the path of a topic relates to the hub's URL, once the scheme and authority are gone. */
enum path_kind {
  PATH_NONE,     /* an opaque path ("urn:uuid:..."): cannot name a hub path */
  PATH_ABSOLUTE, /* starts with '/' */
  PATH_ROOTLESS, /* a file: URL's path, rooted at '/' */
  PATH_RELATIVE, /* merged with the hub URL's directory */
  PATH_BASE,     /* empty reference ("?q", "#f"): the hub URL's own path */
};

/* Skips an authority that starts at s[i] (after its slashes) and returns where its path starts. */
static size_t skip_authority(const char *s, size_t len, size_t i, int special) {
  return component_end(s, len, i, special, 1);
}

/* Finds where the path of reference s[i..len) starts, the reference being resolved against the
 * hub's URL (whose scheme, https, is special). */
static enum path_kind relative_path(const char *s, size_t len, size_t i, size_t *from) {
  if (i == len || s[i] == '?' || s[i] == '#')
    return PATH_BASE;
  if (is_slash((unsigned char)s[i], 1)) {
    if (i + 1 < len && is_slash((unsigned char)s[i + 1], 1)) {
      while (i < len && is_slash((unsigned char)s[i], 1))
        i++;
      i = skip_authority(s, len, i, 1);
    }
    *from = i;
    return PATH_ABSOLUTE;
  }
  *from = i;
  return PATH_RELATIVE;
}

/* Locates the path of topic s[0..len) as the WHATWG URL parser would see it after resolving
 * against the hub's https URL. This follows the parser's state machine only as far as the path:
 * a topic whose host the full parser would reject is still examined, which errs towards
 * rejecting a topic that looks like a hub path. */
static enum path_kind locate_path(const char *s, size_t len, size_t *from, int *special) {
  size_t i = 0;
  *special = 1;
  if (len > 0 && is_alpha((unsigned char)s[0])) {
    i = 1;
    while (i < len && (is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]) ||
                       s[i] == '+' || s[i] == '-' || s[i] == '.'))
      i++;
  }
  if (i == 0 || i == len || s[i] != ':')
    return relative_path(s, len, 0, from);

  size_t scheme_len = i++;
  *special = is_special_scheme(s, scheme_len);
  if (equals_nocase(s, scheme_len, "https"))
    return relative_path(s, len, i, from);
  if (equals_nocase(s, scheme_len, "file")) {
    if (i + 1 < len && is_slash((unsigned char)s[i], 1) && is_slash((unsigned char)s[i + 1], 1))
      i = skip_authority(s, len, i + 2, 1);
    *from = i;
    return (i < len && is_slash((unsigned char)s[i], 1)) ? PATH_ABSOLUTE : PATH_ROOTLESS;
  }
  if (*special) {
    while (i < len && is_slash((unsigned char)s[i], 1))
      i++;
    *from = skip_authority(s, len, i, 1);
    return PATH_ABSOLUTE;
  }
  if (len - i >= 2 && s[i] == '/' && s[i + 1] == '/')
    i = skip_authority(s, len, i + 2, 0);
  *from = i;
  return (i < len && s[i] == '/') ? PATH_ABSOLUTE : PATH_NONE;
}

/* 1 when the topic's resolved, normalised path is the hub's path (hub, which starts with '/') or
 * lies under it; 0 when not; -ENOMEM. */
static int addresses_hub(const char *s, size_t len, const char *hub_path) {
  /* The URL parser strips leading and trailing spaces (C0 controls are already refused). */
  while (len > 0 && s[0] == ' ')
    s++, len--;
  while (len > 0 && s[len - 1] == ' ')
    len--;

  size_t from = 0;
  int special;
  enum path_kind kind = locate_path(s, len, &from, &special);
  if (kind == PATH_NONE)
    return 0;
  if (kind == PATH_BASE)
    return 1;
  size_t to = component_end(s, len, from, special, 0);

  /* A relative path is merged with the hub URL's directory: its path up to its last '/'. */
  size_t dir = (size_t)(strrchr(hub_path, '/') - hub_path) + 1;
  char small[256];
  size_t need = dir + 2 + (to - from);
  char *path = need <= sizeof small ? small : malloc(need);
  if (path == NULL)
    return -ENOMEM;
  char *end = path;
  if (kind == PATH_RELATIVE) {
    memcpy(end, hub_path, dir);
    end += dir;
  } else if (kind == PATH_ROOTLESS) {
    *end++ = '/';
  }
  end = append_path(end, s + from, to - from, special);
  size_t n = remove_dot_segments(path, (size_t)(end - path));

  size_t hub = strlen(hub_path);
  int reserved = n >= hub && memcmp(path, hub_path, hub) == 0 && (n == hub || path[hub] == '/');
  if (path != small)
    free(path);
  return reserved;
}

/* ---- The fields ---------------------------------------------------------------------------- */

int sl__check_topic(const char *s, size_t len, const char **why) {
  return sl__check_topic_at(s, len, HUB_PATH, why);
}

int sl__check_topic_at(const char *s, size_t len, const char *hub_path, const char **why) {
  assert(hub_path != NULL && hub_path[0] == '/');
  if (len == 0) {
    *why = "topic must not be empty";
    return -EINVAL;
  }
  int rc = check_text(s, len, &topic_messages, why);
  if (rc < 0)
    return rc;
  if (len == 1 && s[0] == '*') {
    *why = "topic \"*\" is reserved for the wildcard matcher";
    return -EINVAL;
  }
  rc = addresses_hub(s, len, hub_path);
  if (rc < 0) {
    *why = "out of memory while checking the topic";
    return rc;
  }
  if (rc) {
    *why = "topic addresses the hub's reserved namespace (its URL's path and everything under "
           "it), where only the hub publishes";
    return -EINVAL;
  }
  return 0;
}

int sl__check_matcher(const char *s, size_t len, const char **why) {
  if (len == 0) {
    *why = "topic matcher must not be empty";
    return -EINVAL;
  }
  return check_text(s, len, &matcher_messages, why);
}

int sl__check_id(const char *s, size_t len, const char **why) {
  if (len == 0) {
    *why = "id must not be empty";
    return -EINVAL;
  }
  int rc = check_text(s, len, &id_messages, why);
  if (rc < 0)
    return rc;
  if (s[0] == '#') {
    *why = "id must not start with '#' (reserved for ids the hub generates)";
    return -EINVAL;
  }
  if (len == 8 && memcmp(s, "earliest", 8) == 0) {
    *why = "id \"earliest\" is reserved";
    return -EINVAL;
  }
  return 0;
}

int sl__check_type(const char *s, size_t len, const char **why) {
  int rc = check_text(s, len, &type_messages, why);
  if (rc < 0)
    return rc;
  if (len == 7 && memcmp(s, "mercure", 7) == 0) {
    *why = "type \"mercure\" is reserved for events the hub generates";
    return -EINVAL;
  }
  return 0;
}

#define RETRY_MAX_DIGITS 10

int sl__check_retry(const char *s, size_t len, const char **why) {
  if (len == 0) {
    *why = "retry must be ASCII digits (it is empty)";
    return -EINVAL;
  }
  for (size_t i = 0; i < len; i++) {
    if (!is_digit((unsigned char)s[i])) {
      *why = "retry must be ASCII digits";
      return -EINVAL;
    }
  }
  if (len > RETRY_MAX_DIGITS) {
    *why = "retry is too long (at most 10 digits)";
    return -E2BIG;
  }
  return 0;
}
