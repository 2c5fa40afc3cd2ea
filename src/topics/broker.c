/* broker.c — the topic index and dispatch. Selectors that topic.c calls exact hash into buckets
 * of selector nodes by their topic. URL patterns and URI templates hash into groups by kind and
 * text, each holding the one compiled matcher of its nodes: a group of a URL pattern that is
 * fixed text (topic.h's sl_fixed_url_t) is also indexed by the URL components it fixes, and is
 * found with one lookup per topic of an update and wildcard mask in use; the other groups sit on
 * a list that every update scans, asking topic.c once per group (not per subscriber) whether it
 * matches. "*" selectors sit on a list of their own. A subscriber selected by several topics of
 * one update, or by several of its own selectors, gets the frame once: last_seq remembers the
 * highest update already queued for it. */
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
  b->patterns.slots = calloc(16, sizeof *b->patterns.slots);
  b->fixed.slots = calloc(16, sizeof *b->fixed.slots);
  if (b->slots == NULL || b->patterns.slots == NULL || b->fixed.slots == NULL) {
    free(b->slots);
    free(b->patterns.slots);
    free(b->fixed.slots);
    return -ENOMEM;
  }
  b->slot_mask = 63;
  b->patterns.mask = 15;
  b->fixed.mask = 15;
  return 0;
}

/* Groups outlive no subscription: sl__broker_remove frees each with its last node. */
void sl__broker_destroy(sl_broker_t *b) {
  for (size_t i = 0; b->patterns.slots && i <= b->patterns.mask; i++) {
    sl_pattern_t *g = b->patterns.slots[i];
    while (g) {
      sl_pattern_t *next = g->chain;
      sl__selector_release(&g->sel);
      free(g);
      g = next;
    }
  }
  free(b->patterns.slots);
  free(b->fixed.slots);
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

/* --- groups of patterns ---------------------------------------------------------------------- */

static uint64_t pattern_hash(uint32_t kind, const char *text, size_t len) {
  return hash_bytes(text, len) ^ ((uint64_t)kind * 0x9e3779b97f4a7c15ULL);
}

/* The hash of the components a fixed URL pattern fixes, or of a topic's same components: the
 * wildcard mask, then each component not in it with its length. */
static uint64_t fixed_hash(unsigned wild, const char *const *part, const size_t *len) {
  uint64_t h = 1469598103934665603ULL ^ wild;
  for (int k = 0; k < SL_URL_PARTS; k++) {
    if (wild & (1u << k))
      continue;
    h = (h ^ len[k]) * 1099511628211ULL;
    for (size_t i = 0; i < len[k]; i++) {
      h ^= (unsigned char)part[k][i];
      h *= 1099511628211ULL;
    }
  }
  return h ^ (h >> 31);
}

static int fixed_equal(const sl_fixed_url_t *fx, const sl_url_t *url) {
  for (int k = 0; k < SL_URL_PARTS; k++)
    if (!(fx->wild & (1u << k)) &&
        (fx->len[k] != url->len[k] || memcmp(fx->part[k], url->part[k], url->len[k]) != 0))
      return 0;
  return 1;
}

/* The two tables of groups share their code; fx says which chain and hash. */
static sl_pattern_t **ptable_link(sl_pattern_t *g, int fx) {
  return fx ? &g->fchain : &g->chain;
}

static uint64_t ptable_hash(const sl_pattern_t *g, int fx) {
  return fx ? g->fhash : g->hash;
}

static void ptable_grow(sl_ptable_t *t, int fx) {
  size_t n = (t->mask + 1) * 2;
  sl_pattern_t **slots = calloc(n, sizeof *slots);
  if (slots == NULL)
    return; /* a fuller table is slower, not wrong */
  for (size_t i = 0; i <= t->mask; i++) {
    sl_pattern_t *g = t->slots[i];
    while (g) {
      sl_pattern_t *next = *ptable_link(g, fx);
      *ptable_link(g, fx) = slots[ptable_hash(g, fx) & (n - 1)];
      slots[ptable_hash(g, fx) & (n - 1)] = g;
      g = next;
    }
  }
  free(t->slots);
  t->slots = slots;
  t->mask = n - 1;
}

static void ptable_put(sl_ptable_t *t, sl_pattern_t *g, int fx) {
  sl_pattern_t **slot = &t->slots[ptable_hash(g, fx) & t->mask];
  *ptable_link(g, fx) = *slot;
  *slot = g;
  if (++t->count > t->mask + 1)
    ptable_grow(t, fx);
}

static void ptable_drop(sl_ptable_t *t, sl_pattern_t *g, int fx) {
  sl_pattern_t **pp = &t->slots[ptable_hash(g, fx) & t->mask];
  while (*pp != g)
    pp = ptable_link(*pp, fx);
  *pp = *ptable_link(g, fx);
  t->count--;
}

/* Whether two URL patterns of one text were compiled against the same hub URL (templates do
 * not depend on it); one hub has one, but a broker stays right with two. */
static int same_base(uint32_t kind, const char *a, const char *b) {
  return kind != SL_SELECTOR_URLPATTERN || a == b || (a && b && strcmp(a, b) == 0);
}

static sl_pattern_t *pattern_find(const sl_broker_t *b, uint32_t kind, const char *text,
                                  size_t len, const char *base) {
  uint64_t h = pattern_hash(kind, text, len);
  for (sl_pattern_t *g = b->patterns.slots[h & b->patterns.mask]; g; g = g->chain)
    if (g->hash == h && g->sel.kind == kind && g->sel.len == len &&
        memcmp(g->text, text, len) == 0 && same_base(kind, sl__selector_base(&g->sel), base))
      return g;
  return NULL;
}

int sl__broker_matcher(const sl_broker_t *b, sl_selector_kind_t kind, const char *text,
                       size_t len, const char *base, sl_selector_t *out) {
  if (kind != SL_SELECTOR_URLPATTERN && kind != SL_SELECTOR_TEMPLATE)
    return 0;
  sl_pattern_t *g = pattern_find(b, kind, text, len, base);
  if (g == NULL)
    return 0;
  sl__selector_copy(out, &g->sel);
  out->text = text;
  return 1;
}

static void wild_add(sl_broker_t *b, unsigned wild) {
  if (b->wild_count[wild]++ == 0)
    b->wilds[b->wild_n++] = (uint8_t)wild;
}

static void wild_remove(sl_broker_t *b, unsigned wild) {
  if (--b->wild_count[wild] != 0)
    return;
  for (uint32_t i = 0; i < b->wild_n; i++)
    if (b->wilds[i] == wild) {
      b->wilds[i] = b->wilds[--b->wild_n];
      break;
    }
}

/* The group of sel (a pattern or template, its matcher one reference the caller gives away: the
 * group keeps it when new, else drops it); NULL when out of memory (the reference is still the
 * caller's). */
static sl_pattern_t *pattern_get(sl_broker_t *b, sl_selector_t *sel) {
  sl_pattern_t *g = pattern_find(b, sel->kind, sel->text, sel->len, sl__selector_base(sel));
  if (g) {
    sl__selector_release(sel); /* the group's matcher stands for it */
    g->seen_seq = 0;           /* a newcomer may not have the frame the group last visited */
    return g;
  }
  g = calloc(1, sizeof *g + sel->len + 1);
  if (g == NULL)
    return NULL;
  memcpy(g->text, sel->text, sel->len);
  g->sel = *sel;
  g->sel.text = g->text;
  sel->matcher = NULL;
  g->hash = pattern_hash(sel->kind, sel->text, sel->len);
  ptable_put(&b->patterns, g, 0);
  if (sl__selector_fixed_url(&g->sel, &g->fixed) && (b->base == NULL || b->base == g->fixed.base)) {
    b->base = g->fixed.base;
    g->indexed = 1;
    g->fhash = fixed_hash(g->fixed.wild, g->fixed.part, g->fixed.len);
    ptable_put(&b->fixed, g, 1);
    wild_add(b, g->fixed.wild);
  } else {
    g->next = b->scanned;
    if (b->scanned)
      b->scanned->prev = g;
    b->scanned = g;
  }
  return g;
}

static void pattern_drop(sl_broker_t *b, sl_pattern_t *g) {
  ptable_drop(&b->patterns, g, 0);
  if (g->indexed) {
    ptable_drop(&b->fixed, g, 1);
    wild_remove(b, g->fixed.wild);
  } else {
    if (g->prev)
      g->prev->next = g->next;
    else
      b->scanned = g->next;
    if (g->next)
      g->next->prev = g->prev;
  }
  sl__selector_release(&g->sel);
  free(g);
}

/* --- subscriptions --------------------------------------------------------------------------- */

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

static int kind_grouped(uint32_t kind) {
  return kind == SL_SELECTOR_URLPATTERN || kind == SL_SELECTOR_TEMPLATE;
}

/* Selector i's compiled matcher: its group's once linked, else the subscription's own. */
static sl_matcher_t *node_matcher(const sl_sub_t *s, size_t i) {
  uint8_t kind = kinds_of(s)[i];
  if (!kind_grouped(kind))
    return NULL;
  return s->linked ? s->nodes[i].u.pattern->sel.matcher : s->nodes[i].u.matcher;
}

/* Selector i, whose text is at *text, which then moves to the next one. Its matcher is
 * borrowed from the subscription (or its group). */
static sl_selector_t next_selector(const sl_sub_t *s, size_t i, const char **text) {
  sl_selector_t sel;
  size_t len = strlen(*text);
  sel.text = *text;
  sel.len = (uint32_t)len;
  sel.kind = kinds_of(s)[i];
  sel.matcher = node_matcher(s, i);
  *text += len + 1;
  return sel;
}

size_t sl__sub_selectors(const sl_sub_t *s, sl_selector_t *out, size_t max) {
  const char *text = first_text(s);
  for (size_t i = 0; i < s->node_count && i < max; i++)
    out[i] = next_selector(s, i, &text);
  return s->node_count;
}

static uint8_t node_kind(const sl_sel_node_t *n) {
  return kinds_of(n->sub)[n - n->sub->nodes];
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

/* Unlinks one node from wherever sl__broker_add put it. A pattern's node takes its matcher back
 * (one reference of its own) when keep is set, since its group may go. */
static void node_drop(sl_broker_t *b, sl_sel_node_t *n, int keep) {
  uint8_t kind = node_kind(n);
  if (kind == SL_SELECTOR_ANY) {
    node_unlink(&b->any, n);
  } else if (kind_grouped(kind)) {
    sl_pattern_t *g = n->u.pattern;
    node_unlink(&g->head, n);
    n->u.matcher = NULL;
    if (keep) {
      sl_selector_t mine;
      sl__selector_copy(&mine, &g->sel);
      n->u.matcher = mine.matcher;
    }
    if (g->head == NULL)
      pattern_drop(b, g);
  } else {
    sl_bucket_t *bk = n->u.bucket;
    node_unlink(&bk->head, n);
    if (bk->head == NULL)
      bucket_drop(b, bk);
    n->u.bucket = NULL;
  }
}

int sl__broker_add(sl_broker_t *b, sl_sub_t *sub) {
  const char *text = first_text(sub);
  for (size_t i = 0; i < sub->node_count; i++) {
    sl_sel_node_t *n = &sub->nodes[i];
    sl_selector_t sel = next_selector(sub, i, &text);
    sl_pattern_t *g;
    if (sel.kind == SL_SELECTOR_ANY) {
      node_link(&b->any, n);
    } else if (kind_grouped(sel.kind)) {
      if ((g = pattern_get(b, &sel)) == NULL)
        goto nomem;
      n->u.pattern = g; /* the subscription's reference went to (or into) the group */
      node_link(&g->head, n);
    } else if ((n->u.bucket = bucket_get(b, sel.text, sel.len)) != NULL) {
      node_link(&n->u.bucket->head, n);
    } else {
      goto nomem;
    }
    continue;
  nomem:
    /* Undo the nodes linked so far: the subscription is as it was before. */
    for (size_t j = 0; j < i; j++)
      node_drop(b, &sub->nodes[j], 1);
    sub->linked = 0;
    return -ENOMEM;
  }
  sub->linked = 1;
  return 0;
}

void sl__broker_remove(sl_broker_t *b, sl_sub_t *sub) {
  const char *text = first_text(sub);
  for (size_t i = 0; i < sub->node_count; i++) {
    sl_selector_t sel = next_selector(sub, i, &text);
    if (sub->linked)
      node_drop(b, &sub->nodes[i], 0); /* the group holds the reference */
    else
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

/* Every node of the list selects the frame: each subscriber not yet given it gets it, when it
 * may read it. */
static void deliver_list(sl_sel_node_t *n, sl_frame_t *f, views_t *v, sl_deliver_cb cb,
                         void *arg) {
  for (; n; n = n->next) {
    sl_sub_t *s = n->sub;
    if (s->last_seq >= f->seq)
      continue;
    s->last_seq = f->seq;
    if (may_read(s, f, v))
      cb(s, f, arg);
  }
}

static void deliver_group(sl_pattern_t *g, sl_frame_t *f, views_t *v, sl_deliver_cb cb,
                          void *arg) {
  if (g->seen_seq == f->seq && f->seq != 0)
    return; /* another topic of the frame found it: its nodes have it */
  g->seen_seq = f->seq;
  deliver_list(g->head, f, v, cb, arg);
}

/* The fixed URL patterns a topic's canonical URL selects: one lookup per wildcard mask in use. */
static void dispatch_fixed(sl_broker_t *b, sl_topic_t *t, sl_frame_t *f, views_t *v,
                           sl_deliver_cb cb, void *arg) {
  const sl_url_t *url = sl__topic_url(t, b->base);
  if (url == NULL)
    return; /* not a URL: no pattern selects it */
  for (uint32_t w = 0; w < b->wild_n; w++) {
    unsigned wild = b->wilds[w];
    uint64_t h = fixed_hash(wild, url->part, url->len);
    b->lookups++;
    for (sl_pattern_t *g = b->fixed.slots[h & b->fixed.mask]; g; g = g->fchain)
      if (g->fhash == h && g->fixed.wild == wild && fixed_equal(&g->fixed, url))
        deliver_group(g, f, v, cb, arg);
  }
}

void sl__broker_dispatch(sl_broker_t *b, sl_frame_t *f, sl_deliver_cb cb, void *arg) {
  views_t v;
  views_init(&v, f);
  for (size_t i = 0; i < f->topic_count; i++) {
    uint64_t h = hash_bytes(f->topics[i], f->topic_lens[i]);
    sl_bucket_t *bk = bucket_find(b, f->topics[i], f->topic_lens[i], h);
    if (bk)
      deliver_list(bk->head, f, &v, cb, arg);
  }
  deliver_list(b->any, f, &v, cb, arg);
  if (b->fixed.count || b->scanned) {
    sl_topic_t *t = views_get(&v);
    for (size_t i = 0; i < f->topic_count; i++) {
      sl_topic_t one, *ti = t ? &t[i] : &one;
      if (t == NULL)
        sl__topic_init(&one, f->topics[i], f->topic_lens[i]);
      if (b->fixed.count)
        dispatch_fixed(b, ti, f, &v, cb, arg);
      /* Each distinct pattern once per topic, its nodes visited only when it matches. */
      for (sl_pattern_t *g = b->scanned; g; g = g->next) {
        if (g->seen_seq == f->seq && f->seq != 0)
          continue; /* an earlier topic matched it */
        b->evaluations++;
        if (sl__selector_matches_topic(&g->sel, ti))
          deliver_group(g, f, &v, cb, arg);
      }
      if (t == NULL)
        sl__topic_done(&one);
    }
  }
  views_done(&v);
}
