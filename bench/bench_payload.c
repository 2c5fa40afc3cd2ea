/* bench_payload.c — payload formatting and parsing (see bench_payload.h). Parsing runs once per
 * delivered event, so it is a hand-written digit loop rather than sscanf.
 */
#include "bench_payload.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

size_t bench_payload_build(char *buf, size_t cap, uint32_t run, uint64_t seq, uint64_t ts_ns,
                           size_t size) {
  char head[BENCH_PAYLOAD_HEAD_MAX + 1];
  int n = snprintf(head, sizeof head, "R%08x-%llu-%llu-", run, (unsigned long long)seq,
                   (unsigned long long)ts_ns);
  size_t len = (size_t)n > size ? (size_t)n : size;
  if (len > cap)
    len = cap;
  size_t k = (size_t)n < len ? (size_t)n : len;
  memcpy(buf, head, k);
  memset(buf + k, 'x', len - k);
  return len;
}

static int parse_u64(const char **p, const char *end, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (s >= end || *s < '0' || *s > '9')
    return -EINVAL;
  while (s < end && *s >= '0' && *s <= '9') {
    if (v > (UINT64_MAX - 9) / 10)
      return -EINVAL;
    v = v * 10 + (uint64_t)(*s - '0');
    s++;
  }
  if (s >= end || *s != '-')
    return -EINVAL;
  *p = s + 1;
  *out = v;
  return 0;
}

int bench_payload_parse(const char *p, size_t n, uint32_t run, uint64_t *seq, uint64_t *ts_ns) {
  const char *end = p + n;
  if (n < 10 || p[0] != 'R' || p[9] != '-')
    return -EINVAL;
  uint32_t r = 0;
  for (int i = 1; i < 9; i++) {
    char c = p[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else
      return -EINVAL;
    r = r << 4 | d;
  }
  const char *s = p + 10;
  uint64_t q, t;
  if (parse_u64(&s, end, &q) < 0 || parse_u64(&s, end, &t) < 0)
    return -EINVAL;
  if (r != run)
    return -ESRCH;
  *seq = q;
  *ts_ns = t;
  return 0;
}
