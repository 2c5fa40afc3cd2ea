/* frame.c — building frames. An update is serialised here exactly once, as one HTTP chunk, into a
 * single allocation that also holds its id and topics (for matching and history lookup). */
#include "common/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_HDR_MAX 10 /* "ffffffff\r\n" */

sl_frame_t sl__frame_heartbeat = {
  .len = 8, .hdr = 3, .flags = SL_FRAME_STATIC, .wire = (char *)"3\r\n:\n\n\r\n",
};
sl_frame_t sl__frame_terminator = {
  .len = 5, .hdr = 0, .flags = SL_FRAME_STATIC | SL_FRAME_RAW, .wire = (char *)"0\r\n\r\n",
};

/* Bytes "data: " lines take for data split on CR, LF and CRLF; at least one line. */
static size_t data_lines_size(const char *d, size_t n) {
  size_t size = 7; /* "data: " + "\n" of the first line */
  for (size_t i = 0; i < n; i++) {
    if (d[i] == '\r' || d[i] == '\n') {
      if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n')
        i++;
      size += 7;
    } else {
      size++;
    }
  }
  return size;
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

static char *put_data_lines(char *p, const char *d, size_t n) {
  p = put(p, "data: ", 6);
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (d[i] != '\r' && d[i] != '\n')
      continue;
    p = put(p, d + start, i - start);
    p = put(p, "\ndata: ", 7);
    if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n')
      i++;
    start = i + 1;
  }
  p = put(p, d + start, n - start);
  *p++ = '\n';
  return p;
}

/* One allocation: struct, topic pointers and lengths, strings, wire bytes. */
static sl_frame_t *frame_alloc(size_t topic_count, size_t strings, size_t wire) {
  size_t head = sizeof(sl_frame_t) + topic_count * (sizeof(char *) + sizeof(uint32_t));
  sl_frame_t *f = malloc(head + strings + CHUNK_HDR_MAX + wire + 2);
  if (f == NULL)
    return NULL;
  memset(f, 0, sizeof *f);
  atomic_init(&f->refs, 1);
  f->topics = (const char **)(f + 1);
  f->topic_lens = (uint32_t *)(f->topics + topic_count);
  f->wire = (char *)(f->topic_lens + topic_count) + strings;
  return f;
}

/* Writes the chunk-size line right before the payload that starts at wire + CHUNK_HDR_MAX. */
static void frame_seal_chunk(sl_frame_t *f, size_t payload) {
  char hdr[CHUNK_HDR_MAX + 1];
  int n = snprintf(hdr, sizeof hdr, "%zx\r\n", payload);
  char *start = f->wire + CHUNK_HDR_MAX - n;
  memcpy(start, hdr, (size_t)n);
  memcpy(f->wire + CHUNK_HDR_MAX + payload, "\r\n", 2);
  f->wire = start;
  f->hdr = (uint16_t)n;
  f->len = (uint32_t)((size_t)n + payload + 2);
}

sl_frame_t *sl__frame_update(const sl_update_t *u, const char *id, size_t id_len) {
  size_t strings = id_len + 1;
  for (size_t i = 0; i < u->topic_count; i++)
    strings += strlen(u->topics[i]) + 1;
  size_t type_len = u->type ? strlen(u->type) : 0;
  size_t retry_len = u->retry ? strlen(u->retry) : 0;
  size_t payload = 4 + id_len + 1 + (type_len ? 7 + type_len + 1 : 0) +
                   (retry_len ? 7 + retry_len + 1 : 0) +
                   data_lines_size(u->data ? u->data : "", u->data ? u->data_len : 0) + 1;
  if (payload > UINT32_MAX - 64 || u->topic_count > UINT16_MAX || id_len > UINT16_MAX)
    return NULL;
  sl_frame_t *f = frame_alloc(u->topic_count, strings, payload);
  if (f == NULL)
    return NULL;
  char *s = (char *)(f->topic_lens + u->topic_count);
  f->topic_count = (uint16_t)u->topic_count;
  for (size_t i = 0; i < u->topic_count; i++) {
    size_t n = strlen(u->topics[i]);
    f->topics[i] = s;
    f->topic_lens[i] = (uint32_t)n;
    s = put(s, u->topics[i], n + 1);
  }
  f->id = s;
  f->id_len = (uint16_t)id_len;
  s = put(s, id, id_len);
  *s = '\0';
  if (u->is_private)
    f->flags |= SL_FRAME_PRIVATE;

  char *p = f->wire + CHUNK_HDR_MAX;
  p = put(p, "id: ", 4);
  p = put(p, id, id_len);
  *p++ = '\n';
  if (type_len) {
    p = put(p, "event: ", 7);
    p = put(p, u->type, type_len);
    *p++ = '\n';
  }
  if (retry_len) {
    p = put(p, "retry: ", 7);
    p = put(p, u->retry, retry_len);
    *p++ = '\n';
  }
  p = put_data_lines(p, u->data ? u->data : "", u->data ? u->data_len : 0);
  *p++ = '\n';
  frame_seal_chunk(f, payload);
  return f;
}

sl_frame_t *sl__frame_restore(const char *payload, size_t len, const char *id, size_t id_len,
                              const char *const *topics, const uint32_t *topic_lens,
                              size_t topic_count, uint16_t flags) {
  size_t strings = id_len + 1;
  for (size_t i = 0; i < topic_count; i++)
    strings += (size_t)topic_lens[i] + 1;
  if (len > UINT32_MAX - 64 || topic_count > UINT16_MAX || id_len > UINT16_MAX)
    return NULL;
  sl_frame_t *f = frame_alloc(topic_count, strings, len);
  if (f == NULL)
    return NULL;
  char *s = (char *)(f->topic_lens + topic_count);
  f->topic_count = (uint16_t)topic_count;
  for (size_t i = 0; i < topic_count; i++) {
    f->topics[i] = s;
    f->topic_lens[i] = topic_lens[i];
    s = put(s, topics[i], topic_lens[i]);
    *s++ = '\0';
  }
  f->id = s;
  f->id_len = (uint16_t)id_len;
  s = put(s, id, id_len);
  *s = '\0';
  f->flags = flags & (SL_FRAME_PRIVATE | SL_FRAME_HUB);
  memcpy(f->wire + CHUNK_HDR_MAX, payload, len);
  frame_seal_chunk(f, len);
  return f;
}

sl_frame_t *sl__frame_chunk(const char *payload, size_t len) {
  if (len > UINT32_MAX - 64)
    return NULL;
  sl_frame_t *f = frame_alloc(0, 0, len);
  if (f == NULL)
    return NULL;
  memcpy(f->wire + CHUNK_HDR_MAX, payload, len);
  frame_seal_chunk(f, len);
  return f;
}

sl_frame_t *sl__frame_raw(const char *bytes, size_t len) {
  if (len > UINT32_MAX)
    return NULL;
  sl_frame_t *f = frame_alloc(0, 0, len);
  if (f == NULL)
    return NULL;
  memcpy(f->wire, bytes, len);
  f->len = (uint32_t)len;
  f->flags = SL_FRAME_RAW;
  return f;
}

void sl__frame_free(sl_frame_t *f) {
  free(f);
}
