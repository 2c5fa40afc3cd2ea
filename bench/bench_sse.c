/* bench_sse.c — the load generator's SSE parser (see bench_sse.h). A line is consumed in spans
 * found with memchr, so a 100-byte event costs a few calls, not a branch per byte; field values
 * are copied only as far as the fixed buffers go.
 */
#include "bench_sse.h"

#include <string.h>

enum { LINE_START, LINE_NAME, LINE_VALUE_START, LINE_VALUE, LINE_COMMENT };
enum { F_NONE, F_DATA, F_ID, F_EVENT, F_RETRY };

void bench_sse_init(bench_sse_t *p, bench_sse_event_cb on_event, void *ctx) {
  memset(p, 0, sizeof *p);
  p->on_event = on_event;
  p->ctx = ctx;
  p->retry_ms = -1;
  p->retry_in_event = -1;
}

void bench_sse_reconnect(bench_sse_t *p) {
  p->pending_bytes = 0;
  p->retry_in_event = -1;
  p->data_len = 0;
  p->data_lines = 0;
  p->line_bytes = 0;
  p->line_state = LINE_START;
  p->field = F_NONE;
  p->name_len = 0;
  p->skip_lf = 0;
  p->data_kept = 0;
  p->type_len = 0;
  /* The id buffer reverts to the last dispatched id: an id: line of an unfinished event at the
   * disconnect never took effect. */
  memcpy(p->id, p->last_id, p->last_id_len);
  p->id_len = p->last_id_len;
  p->id_truncated = p->last_id_truncated;
}

int bench_sse_at_boundary(const bench_sse_t *p) {
  return p->pending_bytes == 0 && (p->line_bytes == 0 || p->line_state == LINE_COMMENT);
}

uint64_t bench_sse_partial_bytes(const bench_sse_t *p) {
  if (bench_sse_at_boundary(p))
    return 0;
  return p->pending_bytes + (p->line_state == LINE_COMMENT ? 0 : p->line_bytes);
}

static void start_field(bench_sse_t *p) {
  p->field = F_NONE;
  switch (p->name_len) {
  case 2:
    if (memcmp(p->name, "id", 2) == 0) {
      p->field = F_ID;
      p->id_len = 0;
      p->id_truncated = 0;
    }
    break;
  case 4:
    if (memcmp(p->name, "data", 4) == 0) {
      p->field = F_DATA;
      if (p->data_lines > 0) {
        if (p->data_kept < BENCH_SSE_DATA_PREFIX)
          p->data[p->data_kept++] = '\n';
        p->data_len++;
      }
      p->data_lines++;
    }
    break;
  case 5:
    if (memcmp(p->name, "event", 5) == 0) {
      p->field = F_EVENT;
      p->type_len = 0;
    } else if (memcmp(p->name, "retry", 5) == 0) {
      p->field = F_RETRY;
      p->retry_bad = 0;
      p->retry_acc = -1;
    }
    break;
  default:
    break;
  }
}

static void value_bytes(bench_sse_t *p, const char *s, size_t n) {
  switch (p->field) {
  case F_DATA: {
    p->data_len += n;
    size_t room = BENCH_SSE_DATA_PREFIX - p->data_kept;
    size_t k = n < room ? n : room;
    memcpy(p->data + p->data_kept, s, k);
    p->data_kept = (uint8_t)(p->data_kept + k);
    break;
  }
  case F_ID: {
    size_t room = BENCH_SSE_ID_MAX - p->id_len;
    size_t k = n < room ? n : room;
    memcpy(p->id + p->id_len, s, k);
    p->id_len = (uint8_t)(p->id_len + k);
    if (k < n)
      p->id_truncated = 1;
    break;
  }
  case F_EVENT: {
    size_t room = BENCH_SSE_TYPE_MAX - p->type_len;
    size_t k = n < room ? n : room;
    memcpy(p->type + p->type_len, s, k);
    p->type_len = (uint8_t)(p->type_len + k);
    break;
  }
  case F_RETRY:
    for (size_t i = 0; i < n; i++) {
      if (s[i] < '0' || s[i] > '9' || p->retry_acc > (int64_t)1e15) {
        p->retry_bad = 1;
        continue;
      }
      p->retry_acc = (p->retry_acc < 0 ? 0 : p->retry_acc) * 10 + (s[i] - '0');
    }
    break;
  default:
    break;
  }
}

static void dispatch(bench_sse_t *p) {
  memcpy(p->last_id, p->id, p->id_len);
  p->last_id_len = p->id_len;
  p->last_id_truncated = p->id_truncated;
  if (p->data_lines > 0) {
    bench_sse_event_t ev = {
      .data = p->data, .data_kept = p->data_kept, .data_len = p->data_len,
      .type = p->type, .type_len = p->type_len, .retry_ms = p->retry_in_event,
    };
    p->events++;
    if (p->on_event)
      p->on_event(p->ctx, &ev);
  }
  p->data_lines = 0;
  p->data_len = 0;
  p->data_kept = 0;
  p->type_len = 0;
  p->retry_in_event = -1;
  p->pending_bytes = 0;
}

static void line_end(bench_sse_t *p) {
  switch (p->line_state) {
  case LINE_START:
    dispatch(p);
    break;
  case LINE_NAME:  /* a field name with no colon: the whole line names a field, value empty */
    start_field(p);
    /* fallthrough */
  case LINE_VALUE_START:
  case LINE_VALUE:
    if (p->field == F_RETRY && !p->retry_bad && p->retry_acc >= 0)
      p->retry_ms = p->retry_in_event = p->retry_acc;  /* an invalid retry: is ignored */
    p->pending_bytes += p->line_bytes + 1;
    break;
  default:  /* comment */
    break;
  }
  p->line_state = LINE_START;
  p->line_bytes = 0;
  p->name_len = 0;
  p->field = F_NONE;
}

/* Consumes n bytes that contain no CR or LF. */
static void line_bytes(bench_sse_t *p, const char *s, size_t n) {
  p->line_bytes += (uint32_t)n;
  while (n > 0) {
    switch (p->line_state) {
    case LINE_START:
      if (*s == ':') {
        p->line_state = LINE_COMMENT;
        return;
      }
      p->line_state = LINE_NAME;
      /* fallthrough */
    case LINE_NAME: {
      const char *colon = memchr(s, ':', n);
      size_t k = colon ? (size_t)(colon - s) : n;
      for (size_t i = 0; i < k; i++) {
        if (p->name_len < sizeof p->name)
          p->name[p->name_len] = s[i];
        if (p->name_len < 255)
          p->name_len++;
      }
      if (colon == NULL)
        return;
      start_field(p);
      p->line_state = LINE_VALUE_START;
      s += k + 1;
      n -= k + 1;
      break;
    }
    case LINE_VALUE_START:
      p->line_state = LINE_VALUE;
      if (*s == ' ') {
        s++;
        n--;
      }
      break;
    case LINE_VALUE:
      value_bytes(p, s, n);
      return;
    default:  /* comment: ignored */
      return;
    }
  }
}

void bench_sse_feed(bench_sse_t *p, const char *buf, size_t len) {
  const char *s = buf, *end = buf + len;
  while (s < end) {
    if (p->skip_lf) {
      p->skip_lf = 0;
      if (*s == '\n') {
        s++;
        continue;
      }
    }
    const char *lf = memchr(s, '\n', (size_t)(end - s));
    const char *limit = lf ? lf : end;
    const char *cr = memchr(s, '\r', (size_t)(limit - s));
    const char *eol = cr ? cr : lf;
    if (eol == NULL) {
      line_bytes(p, s, (size_t)(end - s));
      return;
    }
    if (eol > s)
      line_bytes(p, s, (size_t)(eol - s));
    if (*eol == '\r')
      p->skip_lf = 1;
    line_end(p);
    s = eol + 1;
  }
}
