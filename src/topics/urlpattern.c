/* urlpattern.c — the URL Pattern standard's tokenizer, constructor-string parser and pattern
 * parser, producing one expression per URL component (nfa.h) instead of a JavaScript regular
 * expression, then one automaton per component. The structure follows the standard's
 * algorithms step by step; what it matches is the language of the regular expression the
 * standard would generate ("generate a regular expression and name list"), since only a yes or
 * no is asked. It does not parse topics (url.c does) nor decide which selectors are patterns
 * (topic.c does).
 *
 * Simplifications, each documented where it is made: identifier characters outside ASCII are all
 * accepted in group names; the encoding callbacks that canonicalize fixed text are approximated
 * by url.c's rules (percent-encode what RFC 3986 forbids, decode percent-encoded unreserved
 * characters, lowercase protocol and hostname, digits only in a port) rather than running the
 * WHATWG URL parser on each piece. */
#include "topics/urlpattern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "topics/nfa.h"

struct sl_urlpattern_s {
  sl_nfa_t *nfa[SL_URL_PARTS];   /* NULL: the component is fixed text or "*" */
  char *fixed[SL_URL_PARTS];     /* a component of fixed text only: the one string its automaton
                                    would accept (canonical, as encode() wrote it), compared as
                                    bytes instead (a tenth of the memory); NULL and no automaton:
                                    "*", which matches anything */
  size_t fixed_len[SL_URL_PARTS];
  size_t states;
};

/* --- tokens -------------------------------------------------------------------------------- */

enum {
  TOK_OPEN, TOK_CLOSE, TOK_REGEXP, TOK_NAME, TOK_CHAR, TOK_ESCAPED, TOK_OTHER_MOD, TOK_ASTERISK,
  TOK_END, TOK_INVALID
};

typedef struct tok_s {
  int type;
  size_t index;                  /* where the token starts in the input, in bytes */
  const char *value;
  size_t vlen;
} tok_t;

typedef struct toks_s {
  tok_t *t;
  size_t n;
} toks_t;

static size_t cp_len(const char *s, size_t i, size_t len) {
  unsigned char c = (unsigned char)s[i];
  size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
  return i + n <= len ? n : len - i;
}

static int is_name_start(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '$' || c == '_' || c >= 0x80;
}

static int is_name_part(unsigned char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

static void add_tok(toks_t *k, int type, size_t index, const char *value, size_t vlen) {
  k->t[k->n++] = (tok_t){type, index, value, vlen};
}

/* The standard's tokenizer. lenient: errors become invalid-char tokens (the constructor-string
 * parser's policy); strict: the first error fails with *why. 0, -EINVAL or -ENOMEM. */
static int tokenize(const char *in, size_t len, int lenient, toks_t *k, const char **why) {
  k->t = malloc((len + 1) * sizeof *k->t);
  k->n = 0;
  if (k->t == NULL)
    return -ENOMEM;
  size_t i = 0;
  while (i < len) {
    char c = in[i];
    size_t cl = cp_len(in, i, len);
    const char *err = NULL;
    if (c == '*') {
      add_tok(k, TOK_ASTERISK, i, in + i, 1);
      i++;
      continue;
    }
    if (c == '+' || c == '?') {
      add_tok(k, TOK_OTHER_MOD, i, in + i, 1);
      i++;
      continue;
    }
    if (c == '\\') {
      if (i + 1 >= len) {
        err = "a URL pattern ends with a lone backslash";
      } else {
        size_t el = cp_len(in, i + 1, len);
        add_tok(k, TOK_ESCAPED, i, in + i + 1, el);
        i += 1 + el;
        continue;
      }
    } else if (c == '{') {
      add_tok(k, TOK_OPEN, i, in + i, 1);
      i++;
      continue;
    } else if (c == '}') {
      add_tok(k, TOK_CLOSE, i, in + i, 1);
      i++;
      continue;
    } else if (c == ':') {
      size_t j = i + 1;
      while (j < len && (j == i + 1 ? is_name_start((unsigned char)in[j])
                                    : is_name_part((unsigned char)in[j])))
        j += cp_len(in, j, len);
      if (j > i + 1) {
        add_tok(k, TOK_NAME, i, in + i + 1, j - i - 1);
        i = j;
        continue;
      }
      err = "a ':' in a URL pattern must start a group name (:name)";
    } else if (c == '(') {
      size_t depth = 1, j = i + 1;
      while (j < len) {
        unsigned char d = (unsigned char)in[j];
        if (d >= 0x80) {
          err = "a URL pattern regexp group must be ASCII";
          break;
        }
        if (j == i + 1 && d == '?') {
          err = "a URL pattern regexp group cannot start with '?'";
          break;
        }
        if (d == '\\') {
          if (j + 1 >= len || (unsigned char)in[j + 1] >= 0x80) {
            err = "a URL pattern regexp group has a bad escape";
            break;
          }
          j += 2;
          continue;
        }
        if (d == ')' && --depth == 0)
          break;
        if (d == '(') {
          depth++;
          if (j + 1 >= len || in[j + 1] != '?') {
            err = "capturing groups are not allowed inside a URL pattern regexp; use (?:...)";
            break;
          }
        }
        j++;
      }
      if (err == NULL && depth != 0)
        err = "a URL pattern regexp group '(' is not closed";
      if (err == NULL && j == i + 1)
        err = "a URL pattern regexp group is empty";
      if (err == NULL) {
        add_tok(k, TOK_REGEXP, i, in + i + 1, j - i - 1);
        i = j + 1;
        continue;
      }
    } else {
      add_tok(k, TOK_CHAR, i, in + i, cl);
      i += cl;
      continue;
    }
    if (!lenient) {
      *why = err;
      free(k->t);
      k->t = NULL;
      return -EINVAL;
    }
    add_tok(k, TOK_INVALID, i, in + i, cl);
    i += cl;
  }
  add_tok(k, TOK_END, len, in + len, 0);
  return 0;
}

/* --- fixed text: the encoding callbacks ---------------------------------------------------- */

typedef struct buf_s {
  char *s;
  size_t len, cap;
  int nomem;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n) {
  if (b->nomem)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    char *p = realloc(b->s, cap);
    if (p == NULL) {
      b->nomem = 1;
      return;
    }
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
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

static int is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s canonicalized as fixed text of component comp, as url.c canonicalizes a topic's.
 * 0, or -EINVAL with *why. */
static int encode(int comp, const char *s, size_t n, buf_t *out, const char **why) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char one = (char)c;
    switch (comp) {
    case SL_URL_PROTOCOL:
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '-' || c == '.')) {
        *why = "a URL pattern's protocol holds a character no scheme may";
        return -EINVAL;
      }
      if (c >= 'A' && c <= 'Z')
        one = (char)(c + 32);
      buf_put(out, &one, 1);
      continue;
    case SL_URL_PORT:
      if (c < '0' || c > '9') {
        *why = "a URL pattern's port must be digits";
        return -EINVAL;
      }
      if (c == '0' && out->len == 0 && i + 1 < n)
        continue; /* leading zeros go, as a URL's port loses them */
      buf_put(out, &one, 1);
      continue;
    case SL_URL_HOSTNAME:
      if (c < 0x80 && strchr(" #%/:<>?@[\\]^|", c) && c != '\0') {
        *why = "a URL pattern's hostname holds a character no host may";
        return -EINVAL;
      }
      if (c >= 'A' && c <= 'Z')
        one = (char)(c + 32);
      break;
    default:
      if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
        unsigned char v = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
        if (is_unreserved(v)) {
          one = (char)v;
          buf_put(out, &one, 1);
        } else {
          char e[3] = {'%', hex[v >> 4], hex[v & 15]};
          buf_put(out, e, 3);
        }
        i += 2;
        continue;
      }
      break;
    }
    int forbidden = c < 0x20 || c >= 0x7f || strchr(" \"<>\\^`{|}", c) != NULL;
    if (comp == SL_URL_PATHNAME)
      forbidden |= c == '?' || c == '#';
    else if (comp == SL_URL_SEARCH)
      forbidden |= c == '#';
    else if (comp == SL_URL_USERNAME || comp == SL_URL_PASSWORD)
      forbidden |= strchr("?#/:@[]", c) != NULL;
    if (forbidden && c != '\0') {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      buf_put(out, e, 3);
    } else {
      buf_put(out, &one, 1);
    }
  }
  return out->nomem ? -ENOMEM : 0;
}

/* --- the pattern parser: one component's pattern string to an expression ------------------- */

enum { MOD_NONE, MOD_OPTIONAL, MOD_ZERO_OR_MORE, MOD_ONE_OR_MORE };

typedef struct pp_s {
  toks_t k;
  size_t i;
  int comp;
  int delim;                     /* the segment delimiter, or -1 */
  int prefix;                    /* the options' prefix code point, or -1 */
  sl_re_tree_t *t;
  sl_re_t *re;
  buf_t pending;
  const char **names;
  size_t *name_lens;
  size_t name_count;
  const char *why;
  int err;
  int literal;                   /* so far only fixed text: no group, wildcard, regexp or modifier */
  buf_t lit;                     /* that text, encoded, while literal */
} pp_t;

static tok_t *try_consume(pp_t *p, int type) {
  tok_t *t = &p->k.t[p->i];
  if (t->type != type)
    return NULL;
  p->i++;
  return t;
}

static tok_t *try_regexp_or_wildcard(pp_t *p, const tok_t *name) {
  tok_t *t = try_consume(p, TOK_REGEXP);
  if (t == NULL && name == NULL)
    t = try_consume(p, TOK_ASTERISK);
  return t;
}

static tok_t *try_modifier(pp_t *p) {
  tok_t *t = try_consume(p, TOK_OTHER_MOD);
  return t ? t : try_consume(p, TOK_ASTERISK);
}

/* The char and escaped-char tokens that follow, concatenated. */
static void consume_text(pp_t *p, buf_t *b) {
  for (;;) {
    tok_t *t = try_consume(p, TOK_CHAR);
    if (t == NULL)
      t = try_consume(p, TOK_ESCAPED);
    if (t == NULL)
      return;
    buf_put(b, t->value, t->vlen);
  }
}

static sl_re_t *with_modifier(pp_t *p, sl_re_t *re, int mod) {
  switch (mod) {
  case MOD_OPTIONAL:
    return sl__re_repeat(p->t, re, 0, 1);
  case MOD_ZERO_OR_MORE:
    return sl__re_repeat(p->t, re, 0, -1);
  case MOD_ONE_OR_MORE:
    return sl__re_repeat(p->t, re, 1, -1);
  }
  return re;
}

static void append(pp_t *p, sl_re_t *re) {
  p->re = sl__re_cat(p->t, p->re, re);
  if (p->re == NULL && !p->err)
    p->err = -ENOMEM;
}

/* Encoded fixed text as an expression, or NULL with p->err set. */
static sl_re_t *fixed(pp_t *p, const char *s, size_t n) {
  buf_t b = {0};
  int r = encode(p->comp, s, n, &b, &p->why);
  sl_re_t *re = NULL;
  if (r == 0 && !b.nomem)
    re = sl__re_literal(p->t, b.s ? b.s : "", b.len);
  if (re && p->literal)
    buf_put(&p->lit, b.s ? b.s : "", b.len); /* the very bytes the automaton accepts */
  if (re == NULL && !p->err)
    p->err = r ? r : -ENOMEM;
  free(b.s);
  return re;
}

static void flush_pending(pp_t *p) {
  if (p->pending.len == 0 || p->err)
    return;
  sl_re_t *re = fixed(p, p->pending.s, p->pending.len);
  p->pending.len = 0;
  if (re)
    append(p, re);
}

static int modifier_of(const tok_t *m) {
  if (m == NULL)
    return MOD_NONE;
  return m->value[0] == '?' ? MOD_OPTIONAL : m->value[0] == '*' ? MOD_ZERO_OR_MORE
                                                                : MOD_ONE_OR_MORE;
}

static void add_part(pp_t *p, const char *prefix, size_t plen, const tok_t *name,
                     const tok_t *rw, const char *suffix, size_t slen, const tok_t *modtok) {
  int mod = modifier_of(modtok);
  if (p->err)
    return;
  if (name == NULL && rw == NULL && mod == MOD_NONE) {
    buf_put(&p->pending, prefix, plen);
    return;
  }
  p->literal = 0;
  flush_pending(p);
  if (name == NULL && rw == NULL) {
    if (plen == 0)
      return;
    sl_re_t *re = fixed(p, prefix, plen);
    if (re)
      append(p, with_modifier(p, re, mod));
    return;
  }
  sl_re_t *body;
  sl_byteset_t set;
  if (rw == NULL || rw->type == TOK_ASTERISK) {
    sl__byteset_clear(&set);
    if (rw == NULL && p->delim >= 0)
      sl__byteset_add(&set, (unsigned char)p->delim);
    sl__byteset_negate(&set);
    body = sl__re_repeat(p->t, sl__re_set(p->t, &set), rw == NULL ? 1 : 0, -1);
  } else {
    int r = sl__re_parse(p->t, rw->value, rw->vlen, &body, &p->why);
    if (r) {
      p->err = r;
      return;
    }
  }
  if (name) {
    for (size_t i = 0; i < p->name_count; i++)
      if (p->name_lens[i] == name->vlen && memcmp(p->names[i], name->value, name->vlen) == 0) {
        p->why = "a URL pattern uses the same group name twice";
        p->err = -EINVAL;
        return;
      }
    p->names[p->name_count] = name->value;
    p->name_lens[p->name_count++] = name->vlen;
  }
  sl_re_t *pre = fixed(p, prefix, plen), *suf = fixed(p, suffix, slen);
  if (p->err)
    return;
  if (plen == 0 && slen == 0) {
    append(p, with_modifier(p, body, mod));
  } else if (mod == MOD_NONE || mod == MOD_OPTIONAL) {
    append(p, with_modifier(p, sl__re_cat(p->t, sl__re_cat(p->t, pre, body), suf), mod));
  } else {
    /* prefix body (suffix prefix body)* suffix, all optional for "*" */
    sl_re_t *again = sl__re_cat(p->t, sl__re_cat(p->t, fixed(p, suffix, slen), fixed(p, prefix, plen)),
                                body);
    sl_re_t *seq = sl__re_cat(p->t, sl__re_cat(p->t, pre, body), sl__re_repeat(p->t, again, 0, -1));
    seq = sl__re_cat(p->t, seq, suf);
    append(p, mod == MOD_ZERO_OR_MORE ? sl__re_repeat(p->t, seq, 0, 1) : seq);
  }
}

/* "parse a pattern string": the component's pattern (len bytes) to *out in tree t. */
/* *lit (may be NULL) becomes the component's one accepted string (malloc'd, *lit_len bytes) when
 * the pattern is fixed text only, else NULL. */
static int parse_pattern(sl_re_tree_t *t, const char *s, size_t len, int comp, int special_path,
                         sl_re_t **out, char **lit, size_t *lit_len, const char **why) {
  pp_t p = {.comp = comp, .t = t, .delim = -1, .prefix = -1, .literal = 1};
  if (comp == SL_URL_HOSTNAME) {
    p.delim = '.';
  } else if (comp == SL_URL_PATHNAME && special_path) {
    p.delim = '/'; /* the standard's "pathname options" */
    p.prefix = '/';
  }
  int r = tokenize(s, len, 0, &p.k, why);
  if (r)
    return r;
  p.re = sl__re_empty(t);
  p.names = malloc((p.k.n + 1) * sizeof *p.names);
  p.name_lens = malloc((p.k.n + 1) * sizeof *p.name_lens);
  if (p.re == NULL || p.names == NULL || p.name_lens == NULL)
    p.err = -ENOMEM;
  while (!p.err) {
    tok_t *ch = try_consume(&p, TOK_CHAR);
    tok_t *name = try_consume(&p, TOK_NAME);
    tok_t *rw = try_regexp_or_wildcard(&p, name);
    if (name || rw) {
      p.literal = 0;
      const char *prefix = ch ? ch->value : "";
      size_t plen = ch ? ch->vlen : 0;
      if (plen && !(p.prefix >= 0 && plen == 1 && prefix[0] == p.prefix)) {
        buf_put(&p.pending, prefix, plen);
        plen = 0;
      }
      flush_pending(&p);
      tok_t *mod = try_modifier(&p);
      add_part(&p, prefix, plen, name, rw, "", 0, mod);
      continue;
    }
    tok_t *fixed_tok = ch ? ch : try_consume(&p, TOK_ESCAPED);
    if (fixed_tok) {
      buf_put(&p.pending, fixed_tok->value, fixed_tok->vlen);
      continue;
    }
    if (try_consume(&p, TOK_OPEN)) {
      buf_t pre = {0}, suf = {0};
      consume_text(&p, &pre);
      tok_t *gname = try_consume(&p, TOK_NAME);
      tok_t *grw = try_regexp_or_wildcard(&p, gname);
      consume_text(&p, &suf);
      if (!try_consume(&p, TOK_CLOSE)) {
        p.why = "a URL pattern group '{' is not closed by '}' (or holds more than one "
                "name, regexp or wildcard)";
        p.err = -EINVAL;
      } else {
        tok_t *mod = try_modifier(&p);
        if (pre.nomem || suf.nomem)
          p.err = -ENOMEM;
        add_part(&p, pre.s ? pre.s : "", pre.len, gname, grw, suf.s ? suf.s : "", suf.len, mod);
      }
      free(pre.s);
      free(suf.s);
      continue;
    }
    flush_pending(&p);
    if (!p.err && !try_consume(&p, TOK_END)) {
      tok_t *bad = &p.k.t[p.i];
      p.why = bad->type == TOK_CLOSE ? "a URL pattern has a '}' without its '{'"
              : bad->type == TOK_OTHER_MOD || bad->type == TOK_ASTERISK
                  ? "a URL pattern modifier ('?', '*', '+') follows nothing it can modify"
                  : "a URL pattern group '{' holds something other than text, a name, a regexp "
                    "or a wildcard";
      p.err = -EINVAL;
    }
    break;
  }
  if ((p.pending.nomem || p.lit.nomem) && !p.err)
    p.err = -ENOMEM;
  if (lit && !p.err && p.literal && (p.lit.s || (p.lit.s = calloc(1, 1)) != NULL)) {
    *lit = p.lit.s;
    *lit_len = p.lit.len;
    p.lit.s = NULL;
  } else if (lit && !p.err && p.literal) {
    p.err = -ENOMEM;
  }
  free(p.lit.s);
  free(p.pending.s);
  free(p.names);
  free(p.name_lens);
  free(p.k.t);
  if (p.err) {
    if (p.err == -EINVAL)
      *why = p.why ? p.why : "not a valid URL pattern";
    return p.err;
  }
  *out = p.re;
  return 0;
}

/* The automaton of one component's pattern string, or NULL in *out for "*"; with lit, also its
 * fixed text (parse_pattern). */
static int compile_component(const char *s, size_t len, int comp, int special_path,
                             sl_nfa_t **out, char **lit, size_t *lit_len, size_t *budget,
                             const char **why) {
  *out = NULL;
  if (lit)
    *lit = NULL;
  if (len == 1 && s[0] == '*')
    return 0;
  sl_re_tree_t *t = sl__re_tree_new();
  if (t == NULL)
    return -ENOMEM;
  sl_re_t *re;
  int r = parse_pattern(t, s, len, comp, special_path, &re, lit, lit_len, why);
  if (r == 0) {
    r = sl__nfa_compile(re, out, budget);
    if (r == -E2BIG)
      *why = "a URL pattern is too complex: its automaton would exceed 4096 states";
  }
  sl__re_tree_free(t);
  return r;
}

/* --- the constructor-string parser --------------------------------------------------------- */

enum { ST_INIT = SL_URL_PARTS, ST_AUTHORITY, ST_DONE };

typedef struct init_s {
  const char *v[SL_URL_PARTS];
  size_t len[SL_URL_PARTS];
  int present[SL_URL_PARTS];
} init_t;

typedef struct csp_s {
  const char *in;
  toks_t k;
  init_t r;
  size_t component_start, ti, inc;
  int depth, ipv6_depth, special, state;
} csp_t;

static const tok_t *safe_tok(const csp_t *c, size_t i) {
  return i < c->k.n ? &c->k.t[i] : &c->k.t[c->k.n - 1];
}

static int non_special(const csp_t *c, size_t i, char v) {
  const tok_t *t = safe_tok(c, i);
  return t->vlen == 1 && t->value[0] == v &&
         (t->type == TOK_CHAR || t->type == TOK_ESCAPED || t->type == TOK_INVALID);
}

static int is_search_prefix(const csp_t *c) {
  if (non_special(c, c->ti, '?'))
    return 1;
  const tok_t *t = &c->k.t[c->ti];
  if (t->vlen != 1 || t->value[0] != '?')
    return 0;
  if (c->ti == 0)
    return 1;
  int prev = c->k.t[c->ti - 1].type;
  return prev != TOK_NAME && prev != TOK_REGEXP && prev != TOK_CLOSE && prev != TOK_ASTERISK;
}

static void set_part(csp_t *c, int k, const char *v, size_t len) {
  c->r.v[k] = v;
  c->r.len[k] = len;
  c->r.present[k] = 1;
}

static void change_state(csp_t *c, int next, size_t skip) {
  int s = c->state;
  if (s != ST_INIT && s != ST_AUTHORITY && s != ST_DONE) {
    size_t from = c->k.t[c->component_start].index, to = c->k.t[c->ti].index;
    set_part(c, s, c->in + from, to - from);
  }
  if (s != ST_INIT && next != ST_DONE) {
    int early = s == SL_URL_PROTOCOL || s == ST_AUTHORITY || s == SL_URL_USERNAME ||
                s == SL_URL_PASSWORD;
    if (early && (next == SL_URL_PORT || next == SL_URL_PATHNAME || next == SL_URL_SEARCH ||
                  next == SL_URL_HASH) && !c->r.present[SL_URL_HOSTNAME])
      set_part(c, SL_URL_HOSTNAME, "", 0);
    if ((early || s == SL_URL_HOSTNAME || s == SL_URL_PORT) &&
        (next == SL_URL_SEARCH || next == SL_URL_HASH) && !c->r.present[SL_URL_PATHNAME])
      set_part(c, SL_URL_PATHNAME, c->special ? "/" : "", c->special ? 1 : 0);
    if ((early || s == SL_URL_HOSTNAME || s == SL_URL_PORT || s == SL_URL_PATHNAME) &&
        next == SL_URL_HASH && !c->r.present[SL_URL_SEARCH])
      set_part(c, SL_URL_SEARCH, "", 0);
  }
  c->state = next;
  c->ti += skip;
  c->component_start = c->ti;
  c->inc = 0;
}

static void rewind_to(csp_t *c, int state) {
  c->ti = c->component_start;
  c->inc = 0;
  c->state = state;
}

static const char *const special_schemes[] = {"ftp", "file", "http", "https", "ws", "wss"};

/* Whether the protocol pattern read so far matches one of the special schemes. */
static int protocol_special(csp_t *c, const char **why) {
  size_t from = c->k.t[c->component_start].index, to = c->k.t[c->ti].index;
  sl_nfa_t *nfa;
  if (compile_component(c->in + from, to - from, SL_URL_PROTOCOL, 0, &nfa, NULL, NULL, NULL, why))
    return -1;
  int any = 0;
  for (size_t i = 0; i < sizeof special_schemes / sizeof special_schemes[0]; i++)
    any |= nfa == NULL ||
           sl__nfa_match(nfa, special_schemes[i], strlen(special_schemes[i]), NULL);
  free(nfa);
  return any;
}

static int parse_constructor(csp_t *c, const char *in, size_t len, const char **why) {
  memset(c, 0, sizeof *c);
  c->in = in;
  c->state = ST_INIT;
  int r = tokenize(in, len, 1, &c->k, why);
  if (r)
    return r;
  while (c->ti < c->k.n) {
    c->inc = 1;
    const tok_t *t = &c->k.t[c->ti];
    if (t->type == TOK_END) {
      if (c->state == ST_INIT) {
        rewind_to(c, ST_INIT);
        if (non_special(c, c->ti, '#'))
          change_state(c, SL_URL_HASH, 1);
        else if (is_search_prefix(c))
          change_state(c, SL_URL_SEARCH, 1);
        else
          change_state(c, SL_URL_PATHNAME, 0);
        c->ti += c->inc;
        continue;
      }
      if (c->state == ST_AUTHORITY) {
        rewind_to(c, SL_URL_HOSTNAME);
        c->ti += c->inc;
        continue;
      }
      change_state(c, ST_DONE, 0);
      break;
    }
    if (c->depth > 0) {
      if (t->type == TOK_CLOSE) {
        c->depth--;
      } else {
        c->ti += c->inc;
        continue;
      }
    }
    if (t->type == TOK_OPEN) {
      c->depth++;
      c->ti += c->inc;
      continue;
    }
    switch (c->state) {
    case ST_INIT:
      if (non_special(c, c->ti, ':'))
        rewind_to(c, SL_URL_PROTOCOL);
      break;
    case SL_URL_PROTOCOL:
      if (non_special(c, c->ti, ':')) {
        int sp = protocol_special(c, why);
        if (sp < 0) {
          free(c->k.t);
          return -EINVAL;
        }
        c->special = sp;
        int next = SL_URL_PATHNAME;
        size_t skip = 1;
        if (non_special(c, c->ti + 1, '/') && non_special(c, c->ti + 2, '/')) {
          next = ST_AUTHORITY;
          skip = 3;
        } else if (c->special) {
          next = ST_AUTHORITY;
        }
        change_state(c, next, skip);
      }
      break;
    case ST_AUTHORITY:
      if (non_special(c, c->ti, '@'))
        rewind_to(c, SL_URL_USERNAME);
      else if (non_special(c, c->ti, '/') || is_search_prefix(c) || non_special(c, c->ti, '#'))
        rewind_to(c, SL_URL_HOSTNAME);
      break;
    case SL_URL_USERNAME:
      if (non_special(c, c->ti, ':'))
        change_state(c, SL_URL_PASSWORD, 1);
      else if (non_special(c, c->ti, '@'))
        change_state(c, SL_URL_HOSTNAME, 1);
      break;
    case SL_URL_PASSWORD:
      if (non_special(c, c->ti, '@'))
        change_state(c, SL_URL_HOSTNAME, 1);
      break;
    case SL_URL_HOSTNAME:
      if (non_special(c, c->ti, '['))
        c->ipv6_depth++;
      else if (non_special(c, c->ti, ']'))
        c->ipv6_depth--;
      else if (non_special(c, c->ti, ':') && c->ipv6_depth == 0)
        change_state(c, SL_URL_PORT, 1);
      else if (non_special(c, c->ti, '/'))
        change_state(c, SL_URL_PATHNAME, 0);
      else if (is_search_prefix(c))
        change_state(c, SL_URL_SEARCH, 1);
      else if (non_special(c, c->ti, '#'))
        change_state(c, SL_URL_HASH, 1);
      break;
    case SL_URL_PORT:
      if (non_special(c, c->ti, '/'))
        change_state(c, SL_URL_PATHNAME, 0);
      else if (is_search_prefix(c))
        change_state(c, SL_URL_SEARCH, 1);
      else if (non_special(c, c->ti, '#'))
        change_state(c, SL_URL_HASH, 1);
      break;
    case SL_URL_PATHNAME:
      if (is_search_prefix(c))
        change_state(c, SL_URL_SEARCH, 1);
      else if (non_special(c, c->ti, '#'))
        change_state(c, SL_URL_HASH, 1);
      break;
    case SL_URL_SEARCH:
      if (non_special(c, c->ti, '#'))
        change_state(c, SL_URL_HASH, 1);
      break;
    default:
      break;
    }
    c->ti += c->inc;
  }
  if (c->r.present[SL_URL_HOSTNAME] && !c->r.present[SL_URL_PORT])
    set_part(c, SL_URL_PORT, "", 0);
  return 0;
}

/* --- the constructor ----------------------------------------------------------------------- */

/* "escape a pattern string": a base URL's component as fixed pattern text. */
static void escape_pattern(buf_t *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (strchr("+*?:{}()\\", s[i]) && s[i] != '\0')
      buf_put(b, "\\", 1);
    buf_put(b, s + i, 1);
  }
}

static int is_absolute_pathname(const char *s, size_t n) {
  return (n >= 1 && s[0] == '/') || (n >= 2 && (s[0] == '\\' || s[0] == '{') && s[1] == '/');
}

void sl__urlpattern_free(sl_urlpattern_t *p) {
  if (p == NULL)
    return;
  for (int k = 0; k < SL_URL_PARTS; k++) {
    free(p->nfa[k]);
    free(p->fixed[k]);
  }
  free(p);
}

int sl__urlpattern_compile(sl_urlpattern_t **out, const char *text, size_t len, const char *base,
                           const char **why) {
  *out = NULL;
  if (len > SL_URLPATTERN_MAX_LEN) {
    *why = "a URL pattern is longer than 4096 bytes";
    return -EINVAL;
  }
  csp_t c;
  int r = parse_constructor(&c, text, len, why);
  if (r)
    return r;
  sl_url_t b = {0};
  buf_t parts[SL_URL_PARTS] = {{0}};
  sl_urlpattern_t *p = NULL;
  init_t *in = &c.r;
  if (!in->present[SL_URL_PROTOCOL]) {
    /* A relative pattern: what it does not say comes from the hub's URL. */
    if (base == NULL || sl__url_parse(&b, base, strlen(base), NULL)) {
      *why = "a relative URL pattern needs the hub's URL as its base";
      r = -EINVAL;
      goto out;
    }
    /* Each component is inherited unless the pattern gives it or one that comes before it
     * in the standard's list (hostname, port, then the component's own predecessors); a
     * pattern never inherits the base's username and password (the standard's "process a
     * URLPatternInit" with type "pattern"): unless given they are wildcards. */
#define BIT(k) (1u << (k))
    static const unsigned blockers[SL_URL_PARTS] = {
        [SL_URL_PROTOCOL] = BIT(SL_URL_PROTOCOL),
        [SL_URL_HOSTNAME] = BIT(SL_URL_HOSTNAME) | BIT(SL_URL_PORT),
        [SL_URL_PORT] = BIT(SL_URL_HOSTNAME) | BIT(SL_URL_PORT),
        [SL_URL_PATHNAME] = BIT(SL_URL_HOSTNAME) | BIT(SL_URL_PORT) | BIT(SL_URL_PATHNAME),
        [SL_URL_SEARCH] = BIT(SL_URL_HOSTNAME) | BIT(SL_URL_PORT) | BIT(SL_URL_PATHNAME) |
                          BIT(SL_URL_SEARCH),
        [SL_URL_HASH] = BIT(SL_URL_HOSTNAME) | BIT(SL_URL_PORT) | BIT(SL_URL_PATHNAME) |
                        BIT(SL_URL_SEARCH) | BIT(SL_URL_HASH),
    };
    unsigned given = 0;
    for (int k = 0; k < SL_URL_PARTS; k++)
      given |= in->present[k] ? BIT(k) : 0;
    for (int k = 0; k < SL_URL_PARTS; k++) {
      int inherit = k != SL_URL_USERNAME && k != SL_URL_PASSWORD && !(given & blockers[k]);
      if (inherit)
        escape_pattern(&parts[k], b.part[k], b.len[k]);
      else if (given & BIT(k))
        buf_put(&parts[k], in->v[k], in->len[k]);
      in->present[k] = inherit || (given & BIT(k));
    }
#undef BIT
    /* A relative pathname continues the base's directory. */
    if ((given & (1u << SL_URL_PATHNAME)) && !b.opaque &&
        !is_absolute_pathname(in->v[SL_URL_PATHNAME], in->len[SL_URL_PATHNAME])) {
      buf_t joined = {0};
      const char *slash = NULL;
      for (size_t i = 0; i < b.len[SL_URL_PATHNAME]; i++)
        if (b.part[SL_URL_PATHNAME][i] == '/')
          slash = b.part[SL_URL_PATHNAME] + i;
      if (slash)
        escape_pattern(&joined, b.part[SL_URL_PATHNAME],
                       (size_t)(slash - b.part[SL_URL_PATHNAME]) + 1);
      buf_put(&joined, in->v[SL_URL_PATHNAME], in->len[SL_URL_PATHNAME]);
      free(parts[SL_URL_PATHNAME].s);
      parts[SL_URL_PATHNAME] = joined;
    }
  } else {
    for (int k = 0; k < SL_URL_PARTS; k++)
      if (in->present[k])
        buf_put(&parts[k], in->v[k], in->len[k]);
  }
  for (int k = 0; k < SL_URL_PARTS; k++) {
    if (!in->present[k])
      buf_put(&parts[k], "*", 1);
    if (parts[k].nomem) {
      r = -ENOMEM;
      goto out;
    }
    if (parts[k].s == NULL)
      buf_put(&parts[k], "", 0);
  }
  /* A special scheme's default port is no port. */
  const char *def = sl__url_default_port(parts[SL_URL_PROTOCOL].s, parts[SL_URL_PROTOCOL].len);
  if (def && strcmp(def, parts[SL_URL_PORT].s) == 0)
    parts[SL_URL_PORT].len = 0;
  p = calloc(1, sizeof *p);
  if (p == NULL) {
    r = -ENOMEM;
    goto out;
  }
  size_t budget = SL_NFA_MAX_STATES;
  int special = 0;
  for (int k = 0; k < SL_URL_PARTS; k++) {
    r = compile_component(parts[k].s ? parts[k].s : "", parts[k].len, k, special, &p->nfa[k],
                          &p->fixed[k], &p->fixed_len[k], &budget, why);
    if (r)
      goto out;
    if (k == SL_URL_PROTOCOL)
      for (size_t i = 0; i < sizeof special_schemes / sizeof special_schemes[0]; i++)
        special |= p->nfa[k] == NULL ||
                   sl__nfa_match(p->nfa[k], special_schemes[i], strlen(special_schemes[i]), NULL);
    if (p->fixed[k]) {
      free(p->nfa[k]); /* the one string it accepts says the same */
      p->nfa[k] = NULL;
    }
  }
  p->states = SL_NFA_MAX_STATES - budget;
  *out = p;
  p = NULL;
out:
  sl__urlpattern_free(p);
  for (int k = 0; k < SL_URL_PARTS; k++)
    free(parts[k].s);
  sl__url_free(&b);
  free(c.k.t);
  return r;
}

int sl__urlpattern_match(const sl_urlpattern_t *p, const sl_url_t *url, uint64_t *steps) {
  /* The components that tell a hub's topics apart first (they mostly share protocol, host and
   * port), so that a pattern that does not match usually fails on its first automaton. */
  static const int order[SL_URL_PARTS] = {SL_URL_PATHNAME, SL_URL_HOSTNAME, SL_URL_SEARCH,
                                          SL_URL_PROTOCOL, SL_URL_PORT, SL_URL_HASH,
                                          SL_URL_USERNAME, SL_URL_PASSWORD};
  for (int i = 0; i < SL_URL_PARTS; i++) {
    int k = order[i];
    if (p->fixed[k]) {
      if (p->fixed_len[k] != url->len[k] || memcmp(p->fixed[k], url->part[k], url->len[k]) != 0)
        return 0;
    } else if (p->nfa[k] && !sl__nfa_match(p->nfa[k], url->part[k], url->len[k], steps)) {
      return 0;
    }
  }
  return 1;
}

size_t sl__urlpattern_states(const sl_urlpattern_t *p) {
  return p->states;
}

int sl__urlpattern_fixed(const sl_urlpattern_t *p, const char **part, size_t *len,
                         unsigned *wild) {
  *wild = 0;
  for (int k = 0; k < SL_URL_PARTS; k++) {
    if (p->nfa[k] == NULL && p->fixed[k] == NULL) {
      *wild |= 1u << k;
      part[k] = NULL;
      len[k] = 0;
    } else if (p->fixed[k]) {
      part[k] = p->fixed[k];
      len[k] = p->fixed_len[k];
    } else {
      return 0;
    }
  }
  return 1;
}
