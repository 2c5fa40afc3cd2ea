/* test_form.c — form.c: the URLSearchParams cases a Mercure client produces or fumbles (empty
 * segments, lone '%', '+', encoded NUL, repeated names), reads that must stay inside the input,
 * and a differential fuzz against a deliberately naive reference decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/form.h"

struct want {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* Parses input from an exact-size heap copy, so that ASan flags any read past len. */
static void parse_exact(sl_form_t *form, const char *input, size_t len) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, input, len);
  assert_int_equal(sl__form_parse(form, copy, len), 0);
  free(copy);
}

static void check_pair(const sl_pair_t *p, const struct want *w) {
  assert_int_equal(p->name_len, w->name_len);
  assert_memory_equal(p->name, w->name, w->name_len);
  assert_int_equal(p->name[p->name_len], '\0');
  assert_int_equal(p->value_len, w->value_len);
  if (w->value_len)
    assert_memory_equal(p->value, w->value, w->value_len);
  assert_int_equal(p->value[p->value_len], '\0');
}

#define S(x) x, sizeof(x) - 1

struct form_case {
  const char *input;
  size_t input_len;
  size_t count;
  struct want pairs[3];
};

static const struct form_case cases[] = {
  {S(""), 0, {{0}}},
  {S("&"), 0, {{0}}},
  {S("&&&"), 0, {{0}}},
  {S("a"), 1, {{S("a"), S("")}}},
  {S("a="), 1, {{S("a"), S("")}}},
  {S("=x"), 1, {{S(""), S("x")}}},
  {S("="), 1, {{S(""), S("")}}},
  {S("a=1"), 1, {{S("a"), S("1")}}},
  {S("a=1&&b"), 2, {{S("a"), S("1")}, {S("b"), S("")}}},
  {S("&a=1&"), 1, {{S("a"), S("1")}}},
  {S("a==b"), 1, {{S("a"), S("=b")}}},
  {S("a=b=c"), 1, {{S("a"), S("b=c")}}},
  {S("+"), 1, {{S(" "), S("")}}},
  {S("a+b=c+d"), 1, {{S("a b"), S("c d")}}},
  {S("%2B=%2b"), 1, {{S("+"), S("+")}}},
  {S("%zz"), 1, {{S("%zz"), S("")}}},
  {S("%4"), 1, {{S("%4"), S("")}}},
  {S("a=%4"), 1, {{S("a"), S("%4")}}},
  {S("a=%"), 1, {{S("a"), S("%")}}},
  {S("%4g=%g4"), 1, {{S("%4g"), S("%g4")}}},
  {S("%%41"), 1, {{S("%A"), S("")}}},
  {S("%41%42=%61%62"), 1, {{S("AB"), S("ab")}}},
  {S("%00"), 1, {{S("\0"), S("")}}},
  {S("a=x%00y"), 1, {{S("a"), S("x\0y")}}},
  {S("%26=%3D"), 1, {{S("&"), S("=")}}},
  {S("a%3Db=c%26d"), 1, {{S("a=b"), S("c&d")}}},
  {S("e=%E2%82%AC"), 1, {{S("e"), S("\xE2\x82\xAC")}}},
  {S("bad=%FF%FE"), 1, {{S("bad"), S("\xFF\xFE")}}},
  {S("raw=\xC3\xA9"), 1, {{S("raw"), S("\xC3\xA9")}}},
  {S("topic=a&topic=b&data=x"), 3, {{S("topic"), S("a")}, {S("topic"), S("b")}, {S("data"), S("x")}}},
  {S("private&topic=t"), 2, {{S("private"), S("")}, {S("topic"), S("t")}}},
};

static void test_cases(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct form_case *c = &cases[i];
    sl_form_t form;
    print_message("case %zu: \"%s\"\n", i, c->input);
    parse_exact(&form, c->input, c->input_len);
    assert_int_equal(form.count, c->count);
    for (size_t j = 0; j < c->count; j++)
      check_pair(&form.pairs[j], &c->pairs[j]);
    sl__form_free(&form);
  }
}

static void test_get_returns_first_occurrence(void **state) {
  (void)state;
  sl_form_t form;
  parse_exact(&form, S("topic=first&Topic=other&topic=second&id=7"));
  const sl_pair_t *p = sl__form_get(&form, "topic");
  assert_non_null(p);
  assert_string_equal(p->value, "first");
  p = sl__form_get(&form, "Topic");
  assert_non_null(p);
  assert_string_equal(p->value, "other");
  assert_string_equal(sl__form_get(&form, "id")->value, "7");
  assert_null(sl__form_get(&form, "top"));
  assert_null(sl__form_get(&form, "topics"));
  assert_null(sl__form_get(&form, ""));
  sl__form_free(&form);
}

static void test_get_matches_decoded_names(void **state) {
  (void)state;
  sl_form_t form;
  parse_exact(&form, S("%74opic=x&last+event=y"));
  assert_string_equal(sl__form_get(&form, "topic")->value, "x");
  assert_string_equal(sl__form_get(&form, "last event")->value, "y");
  sl__form_free(&form);
}

static void test_free_is_safe_on_zeroed_and_freed(void **state) {
  (void)state;
  sl_form_t form;
  memset(&form, 0, sizeof form);
  assert_null(sl__form_get(&form, "a"));
  sl__form_free(&form);
  parse_exact(&form, S("a=1"));
  sl__form_free(&form);
  assert_null(form.pairs);
  assert_null(form.buf);
  assert_int_equal(form.count, 0);
  sl__form_free(&form);
}

/* Enough pairs to make the pairs array grow several times; every value must survive the moves. */
static void test_many_pairs(void **state) {
  (void)state;
  enum { N = 5000 };
  char *input = malloc(N * 16);
  assert_non_null(input);
  size_t len = 0;
  for (int i = 0; i < N; i++)
    len += (size_t)sprintf(input + len, "%sk%d=v%%2B%d", i ? "&" : "", i, i);
  sl_form_t form;
  parse_exact(&form, input, len);
  assert_int_equal(form.count, N);
  char want[32];
  for (int i = 0; i < N; i++) {
    sprintf(want, "k%d", i);
    assert_string_equal(form.pairs[i].name, want);
    sprintf(want, "v+%d", i);
    assert_string_equal(form.pairs[i].value, want);
  }
  sl__form_free(&form);
  free(input);
}

/* A deliberately simple decoder, one byte at a time, to compare the real parser against. */
static size_t ref_decode(char *out, const unsigned char *in, size_t len) {
  static const char digits[] = "0123456789abcdef0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    const char *h1 = NULL, *h2 = NULL;
    if (in[i] == '%' && i + 2 < len) {
      h1 = memchr(digits, in[i + 1], 32);
      h2 = memchr(digits, in[i + 2], 32);
    }
    if (in[i] == '+') {
      out[o++] = ' ';
    } else if (h1 && h2) {
      out[o++] = (char)(((h1 - digits) % 16) * 16 + (h2 - digits) % 16);
      i += 2;
    } else {
      out[o++] = (char)in[i];
    }
  }
  return o;
}

/* Checks form against the reference for input, walking its segments one at a time. */
static void ref_compare(const sl_form_t *form, const unsigned char *in, size_t len) {
  char *name = malloc(len + 1), *value = malloc(len + 1);
  assert_non_null(name);
  assert_non_null(value);
  size_t count = 0, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && in[i] != '&')
      continue;
    if (i > start) {
      size_t eq = start;
      while (eq < i && in[eq] != '=')
        eq++;
      size_t nl = ref_decode(name, in + start, eq - start);
      size_t vl = eq < i ? ref_decode(value, in + eq + 1, i - eq - 1) : 0;
      assert_true(count < form->count);
      struct want w = {name, nl, value, vl};
      check_pair(&form->pairs[count], &w);
      count++;
    }
    start = i + 1;
  }
  assert_int_equal(count, form->count);
  free(name);
  free(value);
}

/* Random inputs over an alphabet heavy in the bytes the parser treats specially, plus arbitrary
 * bytes (NUL and high bytes included), each parsed from an exact-size buffer under ASan. */
static void test_fuzz_against_reference(void **state) {
  (void)state;
  static const char special[] = "%&=+0123456789abcdefABCDEFgz%%";
  uint64_t x = 0x9E3779B97F4A7C15u;
  unsigned char buf[96];
  for (int iter = 0; iter < 20000; iter++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t len = (size_t)(x % sizeof buf);
    for (size_t i = 0; i < len; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[i] = (x & 3) ? (unsigned char)special[(x >> 8) % (sizeof special - 1)]
                       : (unsigned char)(x >> 16);
    }
    sl_form_t form;
    parse_exact(&form, (const char *)buf, len);
    ref_compare(&form, buf, len);
    sl__form_free(&form);
  }
}

/* A MiB-sized body (the publish limit) of many values parses, and its one decoded value is whole. */
static void test_large_body(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *input = malloc(n);
  assert_non_null(input);
  memcpy(input, "data=", 5);
  for (size_t i = 5; i + 3 <= n; i += 3)
    memcpy(input + i, "%41", 3);
  size_t len = 5 + (n - 5) / 3 * 3;
  sl_form_t form;
  parse_exact(&form, input, len);
  assert_int_equal(form.count, 1);
  assert_int_equal(form.pairs[0].value_len, (len - 5) / 3);
  for (size_t i = 0; i < form.pairs[0].value_len; i++)
    assert_int_equal(form.pairs[0].value[i], 'A');
  sl__form_free(&form);
  free(input);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cases),
    cmocka_unit_test(test_get_returns_first_occurrence),
    cmocka_unit_test(test_get_matches_decoded_names),
    cmocka_unit_test(test_free_is_safe_on_zeroed_and_freed),
    cmocka_unit_test(test_many_pairs),
    cmocka_unit_test(test_fuzz_against_reference),
    cmocka_unit_test(test_large_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
