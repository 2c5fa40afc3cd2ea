/* broker.c — the topic index and dispatch. Selectors that topic.c calls exact hash into buckets
 * of selector nodes by their topic; the others ("*") sit on one list that every update scans,
 * asking topic.c whether each matches. A subscriber selected by several topics of one update, or
 * by several of its own selectors, gets the frame once: last_seq remembers the highest update
 * already queued for it. */
#include "topics/broker.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 31);
}

int sl__broker_init(sl_broker_t *b) {
  memset(b, 0, sizeof *b);
  b->slots = calloc(64, sizeof *b->slots);
  if (b->slots == NULL)
    return -ENOMEM;
  b->slot_mask = 63;
  return 0;
}

void sl__broker_destroy(sl_broker_t *b) {
  for (size_t i = 0; i <= b->slot_mask; i++) {
    sl_bucket_t *bk = b->slots[i];
    while (bk) {
      sl_bucket_t *next = bk->chain;
      free(bk);
      bk = next;
    }
  }
  free(b->slots);
  memset(b, 0, sizeof *b);
}

static sl_bucket_t *bucket_find(const sl_broker_t *b, const char *topic, size_t len, uint64_t h) {
  for (sl_bucket_t *bk = b->slots[h & b->slot_mask]; bk; bk = bk->chain)
    if (bk->hash == h && bk->len == len && memcmp(bk->topic, topic, len) == 0)
      return bk;
  return NULL;
}

static void grow(sl_broker_t *b) {
  size_t n = (b->slot_mask + 1) * 2;
  sl_bucket_t **slots = calloc(n, sizeof *slots);
  if (slots == NULL)
    return; /* a fuller table is slower, not wrong */
  for (size_t i = 0; i <= b->slot_mask; i++) {
    sl_bucket_t *bk = b->slots[i];
    while (bk) {
      sl_bucket_t *next = bk->chain;
      bk->chain = slots[bk->hash & (n - 1)];
      slots[bk->hash & (n - 1)] = bk;
      bk = next;
    }
  }
  free(b->slots);
  b->slots = slots;
  b->slot_mask = n - 1;
}

static sl_bucket_t *bucket_get(sl_broker_t *b, const char *topic, size_t len) {
  uint64_t h = hash_bytes(topic, len);
  sl_bucket_t *bk = bucket_find(b, topic, len, h);
  if (bk)
    return bk;
  bk = malloc(sizeof *bk + len + 1);
  if (bk == NULL)
    return NULL;
  bk->head = NULL;
  bk->hash = h;
  bk->len = len;
  memcpy(bk->topic, topic, len);
  bk->topic[len] = '\0';
  bk->chain = b->slots[h & b->slot_mask];
  b->slots[h & b->slot_mask] = bk;
  if (++b->bucket_count > b->slot_mask + 1)
    grow(b);
  return bk;
}

static void bucket_drop(sl_broker_t *b, sl_bucket_t *bk) {
  sl_bucket_t **pp = &b->slots[bk->hash & b->slot_mask];
  while (*pp != bk)
    pp = &(*pp)->chain;
  *pp = bk->chain;
  b->bucket_count--;
  free(bk);
}

sl_sub_t *sl__sub_new(struct sl_conn_s *conn, const char *const *matchers, const size_t *lens,
                      size_t n, sl_grants_t *grants, size_t front) {
  assert(front % sizeof(uint64_t) == 0 && front <= UINT32_MAX && n <= UINT32_MAX);
  size_t strings = 0;
  for (size_t i = 0; i < n; i++)
    strings += lens[i] + 1;
  char *block = calloc(1, front + sizeof(sl_sub_t) + n * sizeof(sl_sel_node_t) + strings);
  if (block == NULL)
    return NULL;
  sl_sub_t *s = (sl_sub_t *)(block + front);
  s->front = (uint32_t)front;
  s->conn = conn;
  s->node_count = (uint32_t)n;
  if (grants) {
    s->has_token = grants->has_token != 0;
    s->grants = grants->subscribe;
    s->grant_count = (uint32_t)grants->count;
    s->exp = grants->exp;
    memset(grants, 0, sizeof *grants);
  }
  char *p = (char *)(s->nodes + n);
  for (size_t i = 0; i < n; i++) {
    memcpy(p, matchers[i], lens[i]);
    p[lens[i]] = '\0';
    s->nodes[i].sub = s;
    p += lens[i] + 1;
  }
  return s;
}

/* The text of the first selector; each is NUL-terminated and the next follows it. */
static const char *first_text(const sl_sub_t *s) {
  return (const char *)(s->nodes + s->node_count);
}

/* The selector whose text is at *text, which then moves to the next one. */
static sl_selector_t next_selector(const char **text) {
  sl_selector_t sel;
  size_t len = strlen(*text);
  sl__selector_init(&sel, *text, len);
  *text += len + 1;
  return sel;
}

static void node_link(sl_sel_node_t **head, sl_sel_node_t *n) {
  n->prev = NULL;
  n->next = *head;
  if (*head)
    (*head)->prev = n;
  *head = n;
}

static void node_unlink(sl_sel_node_t **head, sl_sel_node_t *n) {
  if (n->prev)
    n->prev->next = n->next;
  else
    *head = n->next;
  if (n->next)
    n->next->prev = n->prev;
}

/* Unlinks one node from wherever sl__broker_add put it. */
static void node_drop(sl_broker_t *b, sl_sel_node_t *n) {
  if (n->bucket == NULL) {
    node_unlink(&b->scanned, n);
    return;
  }
  sl_bucket_t *bk = n->bucket;
  node_unlink(&bk->head, n);
  if (bk->head == NULL)
    bucket_drop(b, bk);
  n->bucket = NULL;
}

int sl__broker_add(sl_broker_t *b, sl_sub_t *sub) {
  const char *text = first_text(sub);
  for (size_t i = 0; i < sub->node_count; i++) {
    sl_sel_node_t *n = &sub->nodes[i];
    sl_selector_t sel = next_selector(&text);
    if (!sl__selector_is_exact(&sel)) {
      node_link(&b->scanned, n);
    } else if ((n->bucket = bucket_get(b, sel.text, sel.len)) != NULL) {
      node_link(&n->bucket->head, n);
    } else {
      /* Undo the nodes linked so far: the subscription is as it was before. */
      for (size_t j = 0; j < i; j++)
        node_drop(b, &sub->nodes[j]);
      sub->node_count = 0;
      return -ENOMEM;
    }
  }
  return 0;
}

void sl__broker_remove(sl_broker_t *b, sl_sub_t *sub) {
  for (size_t i = 0; i < sub->node_count; i++)
    node_drop(b, &sub->nodes[i]);
  free(sub->grants); /* the block holds the selector array and its strings */
  free(sl__sub_front(sub));
}

int sl__sub_may_read(const sl_sub_t *sub, const sl_frame_t *f) {
  if (!(f->flags & SL_FRAME_PRIVATE))
    return 1;
  if (!sub->has_token)
    return 0;
  for (size_t i = 0; i < f->topic_count; i++)
    if (sl__selectors_match(sub->grants, sub->grant_count, f->topics[i], f->topic_lens[i]))
      return 1;
  return 0;
}

/* 1 when sel matches one of the frame's topics. */
static int selects(const sl_selector_t *sel, const sl_frame_t *f) {
  for (size_t t = 0; t < f->topic_count; t++)
    if (sl__selector_matches(sel, f->topics[t], f->topic_lens[t]))
      return 1;
  return 0;
}

/* A scanned node's selector: its text is the node's among the subscription's strings. */
static int node_selects(const sl_sel_node_t *n, const sl_frame_t *f) {
  const sl_sub_t *s = n->sub;
  const char *text = first_text(s);
  sl_selector_t sel = next_selector(&text);
  for (const sl_sel_node_t *k = s->nodes; k != n; k++)
    sel = next_selector(&text);
  return selects(&sel, f);
}

int sl__sub_wants(const sl_sub_t *sub, const sl_frame_t *f) {
  if (!sl__sub_may_read(sub, f))
    return 0;
  const char *text = first_text(sub);
  for (size_t i = 0; i < sub->node_count; i++) {
    sl_selector_t sel = next_selector(&text);
    if (selects(&sel, f))
      return 1;
  }
  return 0;
}

int sl__sub_filter_init(sl_sub_filter_t *flt, const sl_sub_t *sub) {
  memset(flt, 0, sizeof *flt);
  flt->sub = sub;
  size_t slots = 8;
  while (slots < (size_t)sub->node_count * 2)
    slots <<= 1;
  flt->exact = calloc(slots, sizeof *flt->exact);
  flt->exact_len = calloc(slots, sizeof *flt->exact_len);
  flt->scanned = calloc(sub->node_count ? sub->node_count : 1, sizeof *flt->scanned);
  if (flt->exact == NULL || flt->exact_len == NULL || flt->scanned == NULL) {
    sl__sub_filter_free(flt);
    return -ENOMEM;
  }
  flt->mask = slots - 1;
  const char *text = first_text(sub);
  for (size_t i = 0; i < sub->node_count; i++) {
    sl_selector_t sel = next_selector(&text);
    if (sel.kind == SL_SELECTOR_ANY) {
      flt->any = 1;
    } else if (sl__selector_is_exact(&sel)) {
      size_t k = hash_bytes(sel.text, sel.len) & flt->mask;
      while (flt->exact[k] && (flt->exact_len[k] != sel.len || memcmp(flt->exact[k], sel.text, sel.len)))
        k = (k + 1) & flt->mask;
      flt->exact[k] = sel.text;
      flt->exact_len[k] = sel.len;
    } else {
      flt->scanned[flt->scanned_count++] = sel;
    }
  }
  return 0;
}

int sl__sub_filter_wants(sl_sub_filter_t *flt, const sl_frame_t *f) {
  if (!sl__sub_may_read(flt->sub, f))
    return 0;
  if (flt->any)
    return 1;
  for (size_t t = 0; t < f->topic_count; t++) {
    flt->checks++;
    size_t k = hash_bytes(f->topics[t], f->topic_lens[t]) & flt->mask;
    for (; flt->exact[k]; k = (k + 1) & flt->mask)
      if (flt->exact_len[k] == f->topic_lens[t] &&
          memcmp(flt->exact[k], f->topics[t], f->topic_lens[t]) == 0)
        return 1;
  }
  for (size_t i = 0; i < flt->scanned_count; i++) {
    flt->checks += f->topic_count;
    if (selects(&flt->scanned[i], f))
      return 1;
  }
  return 0;
}

void sl__sub_filter_free(sl_sub_filter_t *flt) {
  free(flt->exact);
  free(flt->exact_len);
  free(flt->scanned);
  memset(flt, 0, sizeof *flt);
}

/* A bucket's nodes all select the frame; a scanned node is asked first, and a subscriber is
 * marked with the frame's seq only once one of its selectors matched, so that a later node of
 * the same subscriber still gets its chance. */
static void deliver_list(sl_sel_node_t *n, int scan, sl_frame_t *f, sl_deliver_cb cb, void *arg) {
  for (; n; n = n->next) {
    sl_sub_t *s = n->sub;
    if (s->last_seq >= f->seq || (scan && !node_selects(n, f)))
      continue;
    s->last_seq = f->seq;
    if (sl__sub_may_read(s, f))
      cb(s, f, arg);
  }
}

void sl__broker_dispatch(sl_broker_t *b, sl_frame_t *f, sl_deliver_cb cb, void *arg) {
  for (size_t i = 0; i < f->topic_count; i++) {
    uint64_t h = hash_bytes(f->topics[i], f->topic_lens[i]);
    sl_bucket_t *bk = bucket_find(b, f->topics[i], f->topic_lens[i], h);
    if (bk)
      deliver_list(bk->head, 0, f, cb, arg);
  }
  deliver_list(b->scanned, 1, f, cb, arg);
}
