/* uritemplate.c — RFC 6570 URI templates (levels 1 to 4) as topic selectors: the template's
 * literals match themselves, and each expression matches every string that some assignment of
 * its variables (a string, a list, pairs, or undefined) expands to (RFC 6570 section 3.2.1's
 * algorithm, read as a language). It builds an expression tree (nfa.h) and compiles it once.
 *
 * One approximation, towards matching more: a value's characters are the operator's allowed set
 * plus ',' (a list's separator) and, for an exploded variable, '=' (a pair's); the structure of
 * lists and pairs inside one value is not checked further. */
#include "topics/uritemplate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VARS 32         /* variables in one expression: the tree grows with their square */
#define MAX_PREFIX 255      /* the largest prefix modifier compiled exactly */

typedef struct op_s {
  char op;
  const char *first, *sep;
  int named;
  const char *ifemp;
  int reserved;             /* values may hold reserved characters */
} op_t;

static const op_t ops[] = {
    {'\0', "", ",", 0, "", 0}, {'+', "", ",", 0, "", 1},   {'#', "#", ",", 0, "", 1},
    {'.', ".", ".", 0, "", 0}, {'/', "/", "/", 0, "", 0},  {';', ";", ";", 1, "", 0},
    {'?', "?", "&", 1, "=", 0}, {'&', "&", "&", 1, "=", 0},
};

typedef struct var_s {
  const char *name;
  size_t len;
  int prefix;               /* -1: none */
  int explode;
} var_t;

/* One character of a value: an allowed character or a percent-encoded octet. */
static sl_re_t *value_char(sl_re_tree_t *t, const op_t *op, int comma, int equals) {
  sl_byteset_t set, hex;
  sl__byteset_clear(&set);
  sl__byteset_add_range(&set, 'a', 'z');
  sl__byteset_add_range(&set, 'A', 'Z');
  sl__byteset_add_range(&set, '0', '9');
  for (const char *c = "-._~"; *c; c++)
    sl__byteset_add(&set, (unsigned char)*c);
  if (op->reserved)
    for (const char *c = ":/?#[]@!$&'()*+,;="; *c; c++)
      sl__byteset_add(&set, (unsigned char)*c);
  if (comma)
    sl__byteset_add(&set, ',');
  if (equals)
    sl__byteset_add(&set, '=');
  sl__byteset_clear(&hex);
  sl__byteset_add_range(&hex, '0', '9');
  sl__byteset_add_range(&hex, 'a', 'f');
  sl__byteset_add_range(&hex, 'A', 'F');
  sl_re_t *pct = sl__re_cat(t, sl__re_literal(t, "%", 1),
                            sl__re_cat(t, sl__re_set(t, &hex), sl__re_set(t, &hex)));
  return sl__re_alt(t, sl__re_set(t, &set), pct);
}

/* What one defined variable expands to, without the separator before it. */
static sl_re_t *item(sl_re_tree_t *t, const op_t *op, const var_t *v) {
  if (v->explode) {
    /* Items of a list, or key=value pairs, joined by the operator's separator; named operators
     * prefix each list item with the variable's name (covered: names are value characters). */
    sl_re_t *one = sl__re_repeat(t, value_char(t, op, 0, 1), 0, -1);
    sl_re_t *more = sl__re_cat(t, sl__re_literal(t, op->sep, strlen(op->sep)),
                               sl__re_repeat(t, value_char(t, op, 0, 1), 0, -1));
    return sl__re_cat(t, one, sl__re_repeat(t, more, 0, -1));
  }
  sl_re_t *value = v->prefix >= 0 ? sl__re_repeat(t, value_char(t, op, 0, 0), 0, v->prefix)
                                  : sl__re_repeat(t, value_char(t, op, 1, 0), 0, -1);
  if (!op->named)
    return value;
  /* name, then "=value", or ifemp when the value is empty */
  sl_re_t *with = sl__re_cat(t, sl__re_literal(t, "=", 1), value);
  sl_re_t *empty = sl__re_literal(t, op->ifemp, strlen(op->ifemp));
  return sl__re_cat(t, sl__re_literal(t, v->name, v->len), sl__re_alt(t, with, empty));
}

/* The language of one expression: nothing (every variable undefined), or first, then the
 * defined variables in order, separated by sep. */
static sl_re_t *expression(sl_re_tree_t *t, const op_t *op, const var_t *vars, size_t n) {
  sl_re_t *tail = sl__re_empty(t);            /* the optional rest after variable i */
  sl_re_t *head = NULL;                       /* from variable i on, with i or a later first */
  for (size_t i = n; i-- > 0;) {
    sl_re_t *starts_here = sl__re_cat(t, item(t, op, &vars[i]), tail);
    head = head ? sl__re_alt(t, starts_here, head) : starts_here;
    sl_re_t *sep_item = sl__re_cat(t, sl__re_literal(t, op->sep, strlen(op->sep)),
                                   item(t, op, &vars[i]));
    tail = sl__re_cat(t, sl__re_repeat(t, sep_item, 0, 1), tail);
  }
  sl_re_t *some = sl__re_cat(t, sl__re_literal(t, op->first, strlen(op->first)), head);
  return sl__re_repeat(t, some, 0, 1);
}

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_varchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Parses the variable list of an expression (s, len bytes, after the operator). */
static int parse_vars(const char *s, size_t len, var_t *vars, size_t *n, const char **why) {
  size_t i = 0;
  *n = 0;
  for (;;) {
    if (*n == MAX_VARS) {
      *why = "a URI template expression has more than 32 variables";
      return -EINVAL;
    }
    var_t *v = &vars[(*n)++];
    v->name = s + i;
    v->prefix = -1;
    v->explode = 0;
    size_t start = i;
    while (i < len) {
      if (is_varchar(s[i])) {
        i++;
      } else if (s[i] == '%' && i + 2 < len && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
        i += 3;
      } else if (s[i] == '.' && i > start && i + 1 < len && s[i - 1] != '.') {
        i++;
      } else {
        break;
      }
    }
    v->len = i - start;
    if (v->len == 0 || s[i - 1] == '.') {
      *why = "a URI template variable name is empty or not made of letters, digits, '_', '.' "
             "and percent-encodings";
      return -EINVAL;
    }
    if (i < len && s[i] == ':') {
      int p = 0, digits = 0;
      i++;
      while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 5) {
        p = p * 10 + (s[i++] - '0');
        digits++;
      }
      if (digits == 0 || digits > 4 || p == 0) {
        *why = "a URI template prefix modifier must be :1 to :9999";
        return -EINVAL;
      }
      if (p > MAX_PREFIX) {
        *why = "a URI template prefix modifier above :255 is not supported";
        return -EINVAL;
      }
      v->prefix = p;
    } else if (i < len && s[i] == '*') {
      v->explode = 1;
      i++;
    }
    if (i == len)
      return 0;
    if (s[i] != ',') {
      *why = "a URI template expression holds a character that is not a variable, modifier "
             "or ','";
      return -EINVAL;
    }
    i++;
  }
}

int sl__uritemplate_compile(sl_nfa_t **out, const char *text, size_t len, const char **why) {
  sl_re_tree_t *t = sl__re_tree_new();
  if (t == NULL)
    return -ENOMEM;
  sl_re_t *re = sl__re_empty(t);
  var_t vars[MAX_VARS];
  int r = 0;
  size_t i = 0;
  while (i < len && re) {
    if (text[i] == '}') {
      *why = "a URI template has a '}' without its '{'";
      r = -EINVAL;
      goto out;
    }
    if (text[i] != '{') {
      size_t j = i;
      while (j < len && text[j] != '{' && text[j] != '}')
        j++;
      re = sl__re_cat(t, re, sl__re_literal(t, text + i, j - i));
      i = j;
      continue;
    }
    const char *close = memchr(text + i + 1, '}', len - i - 1);
    if (close == NULL) {
      *why = "a URI template expression '{' is not closed";
      r = -EINVAL;
      goto out;
    }
    const char *body = text + i + 1;
    size_t blen = (size_t)(close - body);
    const op_t *op = &ops[0];
    for (size_t k = 1; blen && k < sizeof ops / sizeof ops[0]; k++)
      if (body[0] == ops[k].op)
        op = &ops[k];
    if (op != &ops[0]) {
      body++;
      blen--;
    } else if (blen && strchr("=,!@|", body[0])) {
      *why = "a URI template uses a reserved operator (= , ! @ |)";
      r = -EINVAL;
      goto out;
    }
    size_t n;
    if (blen == 0) {
      *why = "a URI template expression is empty";
      r = -EINVAL;
      goto out;
    }
    if ((r = parse_vars(body, blen, vars, &n, why)))
      goto out;
    re = sl__re_cat(t, re, expression(t, op, vars, n));
    i = (size_t)(close - text) + 1;
  }
  if (re == NULL) {
    r = -ENOMEM;
    goto out;
  }
  r = sl__nfa_compile(re, out, NULL);
  if (r == -E2BIG)
    *why = "a URI template is too complex: its automaton would exceed 4096 states";
out:
  sl__re_tree_free(t);
  return r;
}
