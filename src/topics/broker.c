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

sl_sub_t *sl__sub_new(struct sl_conn_s *conn, sl_selector_t *sel, size_t n, sl_grants_t *grants,
                      size_t front) {
  assert(front % sizeof(uint64_t) == 0 && front <= UINT32_MAX && n <= UINT32_MAX);
  size_t strings = 0;
  for (size_t i = 0; i < n; i++)
    strings += sel[i].len + 1;
  char *block = calloc(1, front + sizeof(sl_sub_t) + n * sizeof(sl_sel_node_t) + n + strings);
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
  uint8_t *kinds = (uint8_t *)(s->nodes + n);
  char *p = (char *)(kinds + n);
  for (size_t i = 0; i < n; i++) {
    memcpy(p, sel[i].text, sel[i].len);
    p[sel[i].len] = '\0';
    kinds[i] = (uint8_t)sel[i].kind;
    s->nodes[i].sub = s;
    if (sel[i].kind != SL_SELECTOR_EXACT) {
      s->nodes[i].u.matcher = sel[i].matcher;
      sel[i].matcher = NULL;
    }
    p += sel[i].len + 1;
  }
  return s;
}

static const uint8_t *kinds_of(const sl_sub_t *s) {
  return (const uint8_t *)(s->nodes + s->node_count);
}

/* The text of the first selector; each is NUL-terminated and the next follows it. */
static const char *first_text(const sl_sub_t *s) {
  return (const char *)(kinds_of(s) + s->node_count);
}

/* Selector i, whose text is at *text, which then moves to the next one. Its matcher is
 * borrowed from the subscription. */
static sl_selector_t next_selector(const sl_sub_t *s, size_t i, const char **text) {
  sl_selector_t sel;
  size_t len = strlen(*text);
  sel.text = *text;
  sel.len = (uint32_t)len;
  sel.kind = kinds_of(s)[i];
  sel.matcher = sel.kind == SL_SELECTOR_EXACT ? NULL : s->nodes[i].u.matcher;
  *text += len + 1;
  return sel;
}

size_t sl__sub_selectors(const sl_sub_t *s, sl_selector_t *out, size_t max) {
  const char *text = first_text(s);
  for (size_t i = 0; i < s->node_count && i < max; i++)
    out[i] = next_selector(s, i, &text);
  return s->node_count;
}

static int node_is_exact(const sl_sel_node_t *n) {
  return kinds_of(n->sub)[n - n->sub->nodes] == SL_SELECTOR_EXACT;
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
  if (!node_is_exact(n)) {
    node_unlink(&b->scanned, n);
    return;
  }
  sl_bucket_t *bk = n->u.bucket;
  node_unlink(&bk->head, n);
  if (bk->head == NULL)
    bucket_drop(b, bk);
  n->u.bucket = NULL;
}

int sl__broker_add(sl_broker_t *b, sl_sub_t *sub) {
  const char *text = first_text(sub);
  for (size_t i = 0; i < sub->node_count; i++) {
    sl_sel_node_t *n = &sub->nodes[i];
    sl_selector_t sel = next_selector(sub, i, &text);
    if (!sl__selector_is_exact(&sel)) {
      node_link(&b->scanned, n);
    } else if ((n->u.bucket = bucket_get(b, sel.text, sel.len)) != NULL) {
      node_link(&n->u.bucket->head, n);
    } else {
      /* Undo the nodes linked so far: the subscription is as it was before. */
      for (size_t j = 0; j < i; j++)
        node_drop(b, &sub->nodes[j]);
      sub->linked = 0;
      return -ENOMEM;
    }
  }
  sub->linked = 1;
  return 0;
}

void sl__broker_remove(sl_broker_t *b, sl_sub_t *sub) {
  const char *text = first_text(sub);
  for (size_t i = 0; i < sub->node_count; i++) {
    sl_selector_t sel = next_selector(sub, i, &text);
    if (sub->linked)
      node_drop(b, &sub->nodes[i]);
    sl__selector_release(&sel); /* the subscription's reference */
  }
  sl__selectors_release(sub->grants, sub->grant_count);
  free(sub->grants); /* the block holds the selector array and its strings */
  free(sl__sub_front(sub));
}

/* The topics of one frame as the matchers see them, each parsed as a URL at most once however
 * many patterns ask (frames hold at most a few topics; more than VIEWS_LOCAL take the heap). */
#define VIEWS_LOCAL 8

typedef struct views_s {
  const sl_frame_t *f;
  sl_topic_t *t;
  sl_topic_t local[VIEWS_LOCAL];
} views_t;

static void views_init(views_t *v, const sl_frame_t *f) {
  v->f = f;
  v->t = NULL;
}

/* The views, made the first time they are asked for; NULL when out of memory (then each match
 * parses for itself). */
static sl_topic_t *views_get(views_t *v) {
  if (v->t == NULL) {
    size_t n = v->f->topic_count;
    v->t = n <= VIEWS_LOCAL ? v->local : malloc(n * sizeof *v->t);
    for (size_t i = 0; v->t && i < n; i++)
      sl__topic_init(&v->t[i], v->f->topics[i], v->f->topic_lens[i]);
  }
  return v->t;
}

static void views_done(views_t *v) {
  if (v->t == NULL)
    return;
  for (size_t i = 0; i < v->f->topic_count; i++)
    sl__topic_done(&v->t[i]);
  if (v->t != v->local)
    free(v->t);
  v->t = NULL;
}

/* 1 when sel matches one of the frame's topics. */
static int selects(const sl_selector_t *sel, const sl_frame_t *f, views_t *v) {
  sl_topic_t *t = sel->kind == SL_SELECTOR_EXACT || sel->kind == SL_SELECTOR_ANY ? NULL
                                                                                 : views_get(v);
  for (size_t i = 0; i < f->topic_count; i++) {
    if (t ? sl__selector_matches_topic(sel, &t[i])
          : sl__selector_matches(sel, f->topics[i], f->topic_lens[i]))
      return 1;
  }
  return 0;
}

static int may_read(const sl_sub_t *sub, const sl_frame_t *f, views_t *v) {
  if (!(f->flags & SL_FRAME_PRIVATE))
    return 1;
  if (!sub->has_token)
    return 0;
  for (size_t i = 0; i < sub->grant_count; i++)
    if (selects(&sub->grants[i], f, v))
      return 1;
  return 0;
}

int sl__sub_may_read(const sl_sub_t *sub, const sl_frame_t *f) {
  views_t v;
  views_init(&v, f);
  int r = may_read(sub, f, &v);
  views_done(&v);
  return r;
}

/* A scanned node's selector: "*" when it has no matcher. */
static int node_selects(const sl_sel_node_t *n, const sl_frame_t *f, views_t *v) {
  if (n->u.matcher == NULL)
    return 1;
  const sl_sub_t *s = n->sub;
  size_t i = (size_t)(n - s->nodes);
  sl_selector_t sel = {.text = "", .len = 0, .kind = kinds_of(s)[i], .matcher = n->u.matcher};
  return selects(&sel, f, v);
}

int sl__sub_wants(const sl_sub_t *sub, const sl_frame_t *f) {
  views_t v;
  views_init(&v, f);
  int hit = 0;
  if (may_read(sub, f, &v)) {
    const char *text = first_text(sub);
    for (size_t i = 0; !hit && i < sub->node_count; i++) {
      sl_selector_t sel = next_selector(sub, i, &text);
      hit = selects(&sel, f, &v);
    }
  }
  views_done(&v);
  return hit;
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
    sl_selector_t sel = next_selector(sub, i, &text);
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
  views_t v;
  views_init(&v, f);
  int hit = 0;
  if (!may_read(flt->sub, f, &v))
    goto out;
  hit = 1;
  if (flt->any)
    goto out;
  for (size_t t = 0; t < f->topic_count; t++) {
    flt->checks++;
    size_t k = hash_bytes(f->topics[t], f->topic_lens[t]) & flt->mask;
    for (; flt->exact[k]; k = (k + 1) & flt->mask)
      if (flt->exact_len[k] == f->topic_lens[t] &&
          memcmp(flt->exact[k], f->topics[t], f->topic_lens[t]) == 0)
        goto out;
  }
  for (size_t i = 0; i < flt->scanned_count; i++) {
    flt->checks += f->topic_count;
    if (selects(&flt->scanned[i], f, &v))
      goto out;
  }
  hit = 0;
out:
  views_done(&v);
  return hit;
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
static void deliver_list(sl_sel_node_t *n, int scan, sl_frame_t *f, views_t *v, sl_deliver_cb cb,
                         void *arg) {
  for (; n; n = n->next) {
    sl_sub_t *s = n->sub;
    if (s->last_seq >= f->seq || (scan && !node_selects(n, f, v)))
      continue;
    s->last_seq = f->seq;
    if (may_read(s, f, v))
      cb(s, f, arg);
  }
}

void sl__broker_dispatch(sl_broker_t *b, sl_frame_t *f, sl_deliver_cb cb, void *arg) {
  views_t v;
  views_init(&v, f);
  for (size_t i = 0; i < f->topic_count; i++) {
    uint64_t h = hash_bytes(f->topics[i], f->topic_lens[i]);
    sl_bucket_t *bk = bucket_find(b, f->topics[i], f->topic_lens[i], h);
    if (bk)
      deliver_list(bk->head, 0, f, &v, cb, arg);
  }
  deliver_list(b->scanned, 1, f, &v, cb, arg);
  views_done(&v);
}
