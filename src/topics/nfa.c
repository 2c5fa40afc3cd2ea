/* nfa.c — expression trees, the safe regexp subset's parser, Thompson's construction and a
 * Pike-style simulation: every input byte advances the set of live states at once, so a match
 * costs at most (input length) x (states) visits, never more, whatever the pattern. It knows
 * nothing of URLs or templates; urlpattern.c and uritemplate.c build the trees. */
#include "topics/nfa.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* --- trees --------------------------------------------------------------------------------- */

enum { RE_EMPTY, RE_SET, RE_CAT, RE_ALT, RE_REPEAT };

struct sl_re_s {
  int type;
  int min, max;                  /* RE_REPEAT */
  sl_re_t *a, *b;
  sl_byteset_t set;              /* RE_SET */
};

#define ARENA_NODES 64

typedef struct arena_s {
  struct arena_s *next;
  size_t used;
  sl_re_t nodes[ARENA_NODES];
} arena_t;

struct sl_re_tree_s {
  arena_t *head;
};

sl_re_tree_t *sl__re_tree_new(void) {
  return calloc(1, sizeof(sl_re_tree_t));
}

void sl__re_tree_free(sl_re_tree_t *t) {
  if (t == NULL)
    return;
  while (t->head) {
    arena_t *next = t->head->next;
    free(t->head);
    t->head = next;
  }
  free(t);
}

static sl_re_t *node(sl_re_tree_t *t, int type) {
  if (t->head == NULL || t->head->used == ARENA_NODES) {
    arena_t *a = malloc(sizeof *a);
    if (a == NULL)
      return NULL;
    a->next = t->head;
    a->used = 0;
    t->head = a;
  }
  sl_re_t *n = &t->head->nodes[t->head->used++];
  memset(n, 0, sizeof *n);
  n->type = type;
  return n;
}

sl_re_t *sl__re_empty(sl_re_tree_t *t) {
  return node(t, RE_EMPTY);
}

sl_re_t *sl__re_set(sl_re_tree_t *t, const sl_byteset_t *set) {
  sl_re_t *n = node(t, RE_SET);
  if (n)
    n->set = *set;
  return n;
}

sl_re_t *sl__re_cat(sl_re_tree_t *t, sl_re_t *a, sl_re_t *b) {
  if (a == NULL || b == NULL)
    return NULL;
  if (a->type == RE_EMPTY)
    return b;
  if (b->type == RE_EMPTY)
    return a;
  sl_re_t *n = node(t, RE_CAT);
  if (n) {
    n->a = a;
    n->b = b;
  }
  return n;
}

sl_re_t *sl__re_alt(sl_re_tree_t *t, sl_re_t *a, sl_re_t *b) {
  if (a == NULL || b == NULL)
    return NULL;
  sl_re_t *n = node(t, RE_ALT);
  if (n) {
    n->a = a;
    n->b = b;
  }
  return n;
}

sl_re_t *sl__re_repeat(sl_re_tree_t *t, sl_re_t *a, int min, int max) {
  if (a == NULL)
    return NULL;
  sl_re_t *n = node(t, RE_REPEAT);
  if (n) {
    n->a = a;
    n->min = min;
    n->max = max;
  }
  return n;
}

sl_re_t *sl__re_literal(sl_re_tree_t *t, const char *s, size_t len) {
  sl_re_t *re = sl__re_empty(t);
  for (size_t i = 0; i < len && re; i++) {
    sl_byteset_t set;
    sl__byteset_clear(&set);
    sl__byteset_add(&set, (unsigned char)s[i]);
    re = sl__re_cat(t, re, sl__re_set(t, &set));
  }
  return re;
}

void sl__byteset_clear(sl_byteset_t *s) {
  memset(s, 0, sizeof *s);
}

void sl__byteset_add(sl_byteset_t *s, unsigned char c) {
  s->bits[c >> 6] |= (uint64_t)1 << (c & 63);
}

void sl__byteset_add_range(sl_byteset_t *s, unsigned char lo, unsigned char hi) {
  for (unsigned c = lo; c <= hi; c++)
    sl__byteset_add(s, (unsigned char)c);
}

void sl__byteset_negate(sl_byteset_t *s) {
  s->bits[0] = ~s->bits[0];
  s->bits[1] = ~s->bits[1];
  s->bits[2] = s->bits[3] = 0; /* non-ASCII goes through the utf8 flag, whole sequences */
  s->utf8 = !s->utf8;
}

static int byteset_has(const uint64_t *bits, unsigned char c) {
  return (bits[c >> 6] >> (c & 63)) & 1;
}

/* --- the regexp subset --------------------------------------------------------------------- */

#define RE_MAX_DEPTH 64

typedef struct parser_s {
  sl_re_tree_t *t;
  const char *s;
  size_t len, pos;
  int depth;
  const char *why;
  int nomem;
} parser_t;

static int is_syntax(char c) {
  return strchr("^$\\.*+?()[]{}|/", c) != NULL;
}

static void class_escape(sl_byteset_t *set, char c) {
  sl__byteset_clear(set);
  switch (c) {
  case 'd': case 'D':
    sl__byteset_add_range(set, '0', '9');
    break;
  case 'w': case 'W':
    sl__byteset_add_range(set, '0', '9');
    sl__byteset_add_range(set, 'a', 'z');
    sl__byteset_add_range(set, 'A', 'Z');
    sl__byteset_add(set, '_');
    break;
  default: /* s, S: ASCII white space (the Unicode spaces are not in a topic's UTF-8 subset) */
    sl__byteset_add_range(set, '\t', '\r');
    sl__byteset_add(set, ' ');
    break;
  }
  if (c == 'D' || c == 'W' || c == 'S')
    sl__byteset_negate(set);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* One escaped character after "\" (pos on the character after it): its byte in *c, or a class
 * in *set (returns 2); 1 for a byte; 0 when invalid. in_class allows "\-". */
static int escape(parser_t *p, unsigned char *c, sl_byteset_t *set, int in_class) {
  if (p->pos >= p->len) {
    p->why = "a regexp ends with a lone backslash";
    return 0;
  }
  char e = p->s[p->pos++];
  switch (e) {
  case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
    class_escape(set, e);
    return 2;
  case 't': *c = '\t'; return 1;
  case 'n': *c = '\n'; return 1;
  case 'r': *c = '\r'; return 1;
  case 'f': *c = '\f'; return 1;
  case 'v': *c = '\v'; return 1;
  case '0':
    if (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
      break;
    *c = '\0';
    return 1;
  case 'x':
    if (p->pos + 2 <= p->len && hexval(p->s[p->pos]) >= 0 && hexval(p->s[p->pos + 1]) >= 0 &&
        hexval(p->s[p->pos]) < 8) {
      *c = (unsigned char)(hexval(p->s[p->pos]) * 16 + hexval(p->s[p->pos + 1]));
      p->pos += 2;
      return 1;
    }
    p->why = "\\x in a regexp takes two hex digits of an ASCII character";
    return 0;
  default:
    if (is_syntax(e) || (in_class && e == '-')) {
      *c = (unsigned char)e;
      return 1;
    }
  }
  p->why = e >= '1' && e <= '9' ? "backreferences are not allowed in a URL pattern regexp"
           : e == 'b' || e == 'B' ? "word-boundary assertions are not allowed in a URL pattern regexp"
                                  : "unsupported escape in a URL pattern regexp";
  return 0;
}

static sl_re_t *parse_class(parser_t *p) {
  sl_byteset_t set;
  int negate = 0;
  sl__byteset_clear(&set);
  if (p->pos < p->len && p->s[p->pos] == '^') {
    negate = 1;
    p->pos++;
  }
  for (;;) {
    if (p->pos >= p->len) {
      p->why = "a regexp class '[' is not closed";
      return NULL;
    }
    char ch = p->s[p->pos++];
    if (ch == ']')
      break;
    unsigned char lo;
    sl_byteset_t cls;
    if (ch == '\\') {
      int r = escape(p, &lo, &cls, 1);
      if (r == 0)
        return NULL;
      if (r == 2) {
        for (int i = 0; i < 4; i++)
          set.bits[i] |= cls.bits[i];
        set.utf8 |= cls.utf8;
        continue;
      }
    } else if (ch == '[') {
      p->why = "nested '[' in a regexp class is not supported";
      return NULL;
    } else {
      lo = (unsigned char)ch;
    }
    unsigned char hi = lo;
    if (p->pos + 1 < p->len && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']') {
      p->pos++;
      char h = p->s[p->pos++];
      if (h == '\\') {
        if (escape(p, &hi, &cls, 1) != 1) {
          p->why = p->why ? p->why : "a class range needs single characters";
          return NULL;
        }
      } else {
        hi = (unsigned char)h;
      }
      if (hi < lo) {
        p->why = "a regexp class range is out of order";
        return NULL;
      }
    }
    sl__byteset_add_range(&set, lo, hi);
  }
  if (negate)
    sl__byteset_negate(&set);
  sl_re_t *n = sl__re_set(p->t, &set);
  p->nomem |= n == NULL;
  return n;
}

static sl_re_t *parse_alt(parser_t *p);

static int parse_int(parser_t *p, int *v) {
  size_t start = p->pos;
  long n = 0;
  while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
    if (n <= 100000)
      n = n * 10 + (p->s[p->pos] - '0');
    p->pos++;
  }
  *v = n > 100000 ? 100001 : (int)n;
  return p->pos > start;
}

/* "{m}", "{m,}", "{m,n}" at pos (on the "{"). 1 when one was read. */
static int parse_braces(parser_t *p, int *min, int *max) {
  p->pos++;
  if (!parse_int(p, min))
    goto bad;
  *max = *min;
  if (p->pos < p->len && p->s[p->pos] == ',') {
    p->pos++;
    *max = -1;
    if (p->pos < p->len && p->s[p->pos] != '}' && !parse_int(p, max))
      goto bad;
  }
  if (p->pos >= p->len || p->s[p->pos] != '}')
    goto bad;
  p->pos++;
  if (*min > SL_RE_MAX_REPEAT || *max > SL_RE_MAX_REPEAT) {
    p->why = "a regexp repetition bound is above 255";
    return 0;
  }
  if (*max >= 0 && *max < *min) {
    p->why = "a regexp repetition {m,n} has n below m";
    return 0;
  }
  return 1;
bad:
  p->why = "a regexp '{' is not a repetition {m}, {m,} or {m,n}";
  return 0;
}

static sl_re_t *parse_atom(parser_t *p) {
  char ch = p->s[p->pos++];
  sl_byteset_t set;
  unsigned char c;
  switch (ch) {
  case '(':
    if (p->pos + 1 < p->len && p->s[p->pos] == '?' && p->s[p->pos + 1] == ':') {
      p->pos += 2;
      if (++p->depth > RE_MAX_DEPTH) {
        p->why = "regexp groups are nested too deeply";
        return NULL;
      }
      sl_re_t *inner = parse_alt(p);
      p->depth--;
      if (inner == NULL)
        return NULL;
      if (p->pos >= p->len || p->s[p->pos] != ')') {
        p->why = "a regexp group '(?:' is not closed";
        return NULL;
      }
      p->pos++;
      return inner;
    }
    p->why = "only non-capturing groups (?:...) are allowed inside a URL pattern regexp "
             "(no lookaround, named or capturing groups)";
    return NULL;
  case '[':
    return parse_class(p);
  case '.':
    sl__byteset_clear(&set);
    sl__byteset_add(&set, '\n');
    sl__byteset_add(&set, '\r');
    sl__byteset_negate(&set);
    break;
  case '\\': {
    int r = escape(p, &c, &set, 0);
    if (r == 0)
      return NULL;
    if (r == 1) {
      sl__byteset_clear(&set);
      sl__byteset_add(&set, c);
    }
    break;
  }
  case '^': case '$':
    p->why = "anchors ^ and $ are not allowed inside a URL pattern regexp";
    return NULL;
  case '*': case '+': case '?': case '{':
    p->why = "a regexp quantifier has nothing to repeat";
    return NULL;
  case ')': case ']': case '}':
    p->why = "unbalanced bracket in a URL pattern regexp";
    return NULL;
  default:
    if ((unsigned char)ch >= 0x80) {
      p->why = "a URL pattern regexp must be ASCII";
      return NULL;
    }
    sl__byteset_clear(&set);
    sl__byteset_add(&set, (unsigned char)ch);
  }
  sl_re_t *n = sl__re_set(p->t, &set);
  p->nomem |= n == NULL;
  return n;
}

static sl_re_t *parse_cat(parser_t *p) {
  sl_re_t *re = sl__re_empty(p->t);
  p->nomem |= re == NULL;
  while (re && p->pos < p->len && p->s[p->pos] != '|' && p->s[p->pos] != ')') {
    sl_re_t *atom = parse_atom(p);
    if (atom == NULL)
      return NULL;
    if (p->pos < p->len) {
      char q = p->s[p->pos];
      int min = -2, max = -1;
      if (q == '*') {
        min = 0;
        p->pos++;
      } else if (q == '+') {
        min = 1;
        p->pos++;
      } else if (q == '?') {
        min = 0;
        max = 1;
        p->pos++;
      } else if (q == '{') {
        if (!parse_braces(p, &min, &max))
          return NULL;
      }
      if (min != -2) {
        if (p->pos < p->len && p->s[p->pos] == '?')
          p->pos++; /* lazy: the same strings match */
        if (p->pos < p->len && strchr("*+?{", p->s[p->pos])) {
          p->why = "a regexp quantifier has nothing to repeat";
          return NULL;
        }
        atom = sl__re_repeat(p->t, atom, min, max);
      }
    }
    re = sl__re_cat(p->t, re, atom);
    p->nomem |= re == NULL;
  }
  return re;
}

static sl_re_t *parse_alt(parser_t *p) {
  sl_re_t *re = parse_cat(p);
  while (re && p->pos < p->len && p->s[p->pos] == '|') {
    p->pos++;
    sl_re_t *b = parse_cat(p);
    if (b == NULL)
      return NULL;
    re = sl__re_alt(p->t, re, b);
    p->nomem |= re == NULL;
  }
  return re;
}

int sl__re_parse(sl_re_tree_t *t, const char *text, size_t len, sl_re_t **out,
                 const char **why) {
  parser_t p = {.t = t, .s = text, .len = len};
  sl_re_t *re = parse_alt(&p);
  if (re && p.pos < len) {
    re = NULL;
    p.why = "unbalanced ')' in a URL pattern regexp";
  }
  if (re == NULL) {
    if (p.nomem && p.why == NULL)
      return -ENOMEM;
    *why = p.why ? p.why : "invalid URL pattern regexp";
    return -EINVAL;
  }
  *out = re;
  return 0;
}

/* --- the automaton ------------------------------------------------------------------------- */

enum { ST_SET, ST_SPLIT, ST_EPS, ST_MATCH };

typedef struct state_s {
  uint8_t type;
  uint16_t set;                  /* ST_SET: index into sets */
  int32_t out, out1;
} state_t;

struct sl_nfa_s {
  uint32_t nstates;
  uint32_t nsets;
  int32_t start;
  state_t *st;
  uint64_t (*sets)[4];
};

typedef struct builder_s {
  state_t *st;
  size_t n, cap, max;
  uint64_t (*sets)[4];
  size_t nsets, sets_cap;
  int err;
} builder_t;

typedef struct frag_s {
  int32_t start, end;            /* end: an ST_EPS whose out is still to be set */
} frag_t;

static int32_t add_state(builder_t *b, int type, int32_t out, int32_t out1) {
  if (b->err)
    return -1;
  if (b->n >= b->max) {
    b->err = -E2BIG;
    return -1;
  }
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    state_t *st = realloc(b->st, cap * sizeof *st);
    if (st == NULL) {
      b->err = -ENOMEM;
      return -1;
    }
    b->st = st;
    b->cap = cap;
  }
  b->st[b->n] = (state_t){.type = (uint8_t)type, .out = out, .out1 = out1};
  return (int32_t)b->n++;
}

static int32_t add_set(builder_t *b, const uint64_t bits[4]) {
  for (size_t i = 0; i < b->nsets; i++)
    if (memcmp(b->sets[i], bits, sizeof b->sets[i]) == 0)
      return (int32_t)i;
  if (b->nsets == b->sets_cap) {
    size_t cap = b->sets_cap ? b->sets_cap * 2 : 8;
    void *p = realloc(b->sets, cap * sizeof *b->sets);
    if (p == NULL) {
      b->err = -ENOMEM;
      return -1;
    }
    b->sets = p;
    b->sets_cap = cap;
  }
  memcpy(b->sets[b->nsets], bits, sizeof b->sets[0]);
  return (int32_t)b->nsets++;
}

static frag_t frag_bits(builder_t *b, const uint64_t bits[4]) {
  frag_t f = {-1, -1};
  int32_t set = add_set(b, bits);
  f.end = add_state(b, ST_EPS, -1, -1);
  f.start = add_state(b, ST_SET, f.end, -1);
  if (f.start >= 0)
    b->st[f.start].set = (uint16_t)set;
  return f;
}

static void patch(builder_t *b, int32_t from, int32_t to) {
  if (!b->err)
    b->st[from].out = to;
}

static frag_t frag_cat(builder_t *b, frag_t x, frag_t y) {
  patch(b, x.end, y.start);
  return (frag_t){x.start, y.end};
}

static frag_t frag_alt(builder_t *b, frag_t x, frag_t y) {
  int32_t end = add_state(b, ST_EPS, -1, -1);
  int32_t start = add_state(b, ST_SPLIT, x.start, y.start);
  patch(b, x.end, end);
  patch(b, y.end, end);
  return (frag_t){start, end};
}

/* A set that also takes whole non-ASCII UTF-8 sequences: the ASCII part, or a lead byte and its
 * continuation bytes. */
static frag_t frag_set(builder_t *b, const sl_byteset_t *set) {
  uint64_t ascii[4] = {set->bits[0], set->bits[1], 0, 0};
  frag_t f = frag_bits(b, ascii);
  if (!set->utf8)
    return f;
  sl_byteset_t cont, lead;
  sl__byteset_clear(&cont);
  sl__byteset_add_range(&cont, 0x80, 0xbf);
  static const unsigned char lo[3] = {0xc2, 0xe0, 0xf0}, hi[3] = {0xdf, 0xef, 0xf4};
  for (int k = 0; k < 3; k++) {
    sl__byteset_clear(&lead);
    sl__byteset_add_range(&lead, lo[k], hi[k]);
    frag_t seq = frag_bits(b, lead.bits);
    for (int j = 0; j <= k; j++)
      seq = frag_cat(b, seq, frag_bits(b, cont.bits));
    f = frag_alt(b, f, seq);
  }
  return f;
}

static frag_t build(builder_t *b, const sl_re_t *re);

static frag_t frag_empty(builder_t *b) {
  int32_t s = add_state(b, ST_EPS, -1, -1);
  return (frag_t){s, s};
}

static frag_t frag_repeat(builder_t *b, const sl_re_t *re) {
  frag_t f = frag_empty(b);
  for (int i = 0; i < re->min && !b->err; i++)
    f = frag_cat(b, f, build(b, re->a));
  if (re->max < 0) {
    frag_t body = build(b, re->a);
    int32_t end = add_state(b, ST_EPS, -1, -1);
    int32_t split = add_state(b, ST_SPLIT, body.start, end);
    patch(b, body.end, split);
    return frag_cat(b, f, (frag_t){split, end});
  }
  for (int i = re->min; i < re->max && !b->err; i++) {
    frag_t body = build(b, re->a);
    int32_t end = add_state(b, ST_EPS, -1, -1);
    int32_t split = add_state(b, ST_SPLIT, body.start, end);
    patch(b, body.end, end);
    f = frag_cat(b, f, (frag_t){split, end});
  }
  return f;
}

static frag_t build(builder_t *b, const sl_re_t *re) {
  if (b->err)
    return (frag_t){-1, -1};
  switch (re->type) {
  case RE_SET:
    return frag_set(b, &re->set);
  case RE_CAT: {
    frag_t x = build(b, re->a);
    return frag_cat(b, x, build(b, re->b));
  }
  case RE_ALT: {
    frag_t x = build(b, re->a);
    return frag_alt(b, x, build(b, re->b));
  }
  case RE_REPEAT:
    return frag_repeat(b, re);
  default:
    return frag_empty(b);
  }
}

int sl__nfa_compile(const sl_re_t *re, sl_nfa_t **out, size_t *budget) {
  builder_t b = {.max = SL_NFA_MAX_STATES};
  if (budget && *budget < b.max)
    b.max = *budget;
  frag_t f = build(&b, re);
  int32_t match = add_state(&b, ST_MATCH, -1, -1);
  patch(&b, f.end, match);
  if (b.err) {
    free(b.st);
    free(b.sets);
    return b.err;
  }
  size_t size = sizeof(sl_nfa_t) + b.n * sizeof(state_t) + b.nsets * sizeof b.sets[0];
  sl_nfa_t *nfa = malloc(size);
  if (nfa == NULL) {
    free(b.st);
    free(b.sets);
    return -ENOMEM;
  }
  nfa->nstates = (uint32_t)b.n;
  nfa->nsets = (uint32_t)b.nsets;
  nfa->start = f.start;
  nfa->sets = (void *)(nfa + 1);
  nfa->st = (state_t *)(nfa->sets + b.nsets);
  if (b.nsets)
    memcpy(nfa->sets, b.sets, b.nsets * sizeof b.sets[0]);
  memcpy(nfa->st, b.st, b.n * sizeof(state_t));
  free(b.st);
  free(b.sets);
  if (budget)
    *budget -= b.n;
  *out = nfa;
  return 0;
}

size_t sl__nfa_states(const sl_nfa_t *nfa) {
  return nfa->nstates;
}

typedef struct run_s {
  uint32_t *mark;
  uint32_t gen;
  uint16_t *stack;
  uint64_t steps;
} run_t;

/* Adds s and every state reachable from it without input to list (n entries so far). */
static size_t closure(const sl_nfa_t *nfa, run_t *r, uint16_t *list, size_t n, int32_t s) {
  size_t sp = 0;
  r->stack[sp++] = (uint16_t)s;
  while (sp) {
    uint16_t k = r->stack[--sp];
    r->steps++;
    if (r->mark[k] == r->gen)
      continue;
    r->mark[k] = r->gen;
    const state_t *st = &nfa->st[k];
    switch (st->type) {
    case ST_EPS:
      r->stack[sp++] = (uint16_t)st->out;
      break;
    case ST_SPLIT:
      r->stack[sp++] = (uint16_t)st->out1;
      r->stack[sp++] = (uint16_t)st->out;
      break;
    default:
      list[n++] = k;
    }
  }
  return n;
}

int sl__nfa_match(const sl_nfa_t *nfa, const char *s, size_t len, uint64_t *steps) {
  /* Every state is pushed at most twice per step (only a SPLIT pushes two, once), so the
   * stack holds 2n + 1; the arrays live on the stack: no allocation per match. */
  uint32_t mark[SL_NFA_MAX_STATES];
  uint16_t a[SL_NFA_MAX_STATES], b[SL_NFA_MAX_STATES], stack[2 * SL_NFA_MAX_STATES + 1];
  run_t r = {.mark = mark, .gen = 1, .stack = stack};
  memset(mark, 0, nfa->nstates * sizeof mark[0]);
  uint16_t *cur = a, *next = b;
  size_t ncur = closure(nfa, &r, cur, 0, nfa->start);
  for (size_t i = 0; i < len && ncur; i++) {
    unsigned char c = (unsigned char)s[i];
    size_t nnext = 0;
    r.gen++;
    for (size_t j = 0; j < ncur; j++) {
      const state_t *st = &nfa->st[cur[j]];
      r.steps++;
      if (st->type == ST_SET && byteset_has(nfa->sets[st->set], c))
        nnext = closure(nfa, &r, next, nnext, st->out);
    }
    uint16_t *t = cur;
    cur = next;
    next = t;
    ncur = nnext;
  }
  int matched = 0;
  for (size_t j = 0; j < ncur && !matched; j++)
    matched = nfa->st[cur[j]].type == ST_MATCH;
  if (steps)
    *steps += r.steps;
  return matched;
}
