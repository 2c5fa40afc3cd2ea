/* test_router.c — router.c, the endpoint table: a path found with the handler of its method, an
 * unknown path (404: NULL), a known path with an unknown method (405: the method index is
 * SL_ROUTE_MAX_METHODS, the route still given for its Allow header), the path compared by length
 * as well as bytes (a prefix or a query is not a match), and the limits of both tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "http/router.h"

static int tag_get, tag_post, tag_sub;

static void h_get(struct sl_conn_s *c, struct sl_request_s *r, void *data) {
  (void)c, (void)r, (void)data;
}
static void h_post(struct sl_conn_s *c, struct sl_request_s *r, void *data) {
  (void)c, (void)r, (void)data;
}

static void table(sl_router_t *r) {
  sl__router_init(r, "no such page");
  sl_route_t *hub = sl__router_add(r, "/.well-known/mercure", "GET, HEAD, POST, OPTIONS", "no");
  assert_non_null(hub);
  assert_int_equal(sl__route_on(hub, SL_HTTP_GET, h_get, &tag_get), 0);
  assert_int_equal(sl__route_on(hub, SL_HTTP_POST, h_post, &tag_post), 0);
  sl_route_t *subs = sl__router_add(r, "/.well-known/mercure/subscriptions", "GET", "read only");
  assert_non_null(subs);
  assert_int_equal(sl__route_on(subs, SL_HTTP_GET, h_get, &tag_sub), 0);
}

static const sl_route_t *find(const sl_router_t *r, const char *path, sl_http_method_t m,
                              size_t *k) {
  return sl__router_find(r, path, strlen(path), m, k);
}

static void test_found_by_path_and_method(void **state) {
  (void)state;
  sl_router_t r;
  table(&r);
  size_t k = 99;
  const sl_route_t *rt = find(&r, "/.well-known/mercure", SL_HTTP_POST, &k);
  assert_non_null(rt);
  assert_string_equal(rt->path, "/.well-known/mercure");
  assert_int_equal(k, 1);
  assert_ptr_equal(rt->methods[k].handler, h_post);
  assert_ptr_equal(rt->methods[k].data, &tag_post);
  rt = find(&r, "/.well-known/mercure", SL_HTTP_GET, &k);
  assert_int_equal(k, 0);
  assert_ptr_equal(rt->methods[k].data, &tag_get);
  rt = find(&r, "/.well-known/mercure/subscriptions", SL_HTTP_GET, &k);
  assert_non_null(rt);
  assert_int_equal(k, 0);
  assert_ptr_equal(rt->methods[k].data, &tag_sub);
}

static void test_unknown_path_is_404(void **state) {
  (void)state;
  sl_router_t r;
  table(&r);
  size_t k;
  assert_null(find(&r, "/", SL_HTTP_GET, &k));
  assert_null(find(&r, "/.well-known/mercur", SL_HTTP_GET, &k));   /* a prefix */
  assert_null(find(&r, "/.well-known/mercure/", SL_HTTP_GET, &k)); /* longer */
  assert_null(find(&r, "/.WELL-KNOWN/mercure", SL_HTTP_GET, &k));  /* paths are exact */
  /* The length given is the path's, whatever follows it. */
  const char *target = "/.well-known/mercure?topic=x";
  assert_non_null(sl__router_find(&r, target, strlen("/.well-known/mercure"), SL_HTTP_GET, &k));
  assert_null(sl__router_find(&r, target, strlen(target), SL_HTTP_GET, &k));
  assert_string_equal(r.not_found, "no such page");
}

static void test_known_path_other_method_is_405(void **state) {
  (void)state;
  sl_router_t r;
  table(&r);
  size_t k = 0;
  const sl_route_t *rt = find(&r, "/.well-known/mercure/subscriptions", SL_HTTP_POST, &k);
  assert_non_null(rt);
  assert_int_equal(k, SL_ROUTE_MAX_METHODS);
  assert_string_equal(rt->allow, "GET");
  assert_string_equal(rt->refusal, "read only");
  k = 0;
  assert_non_null(find(&r, "/.well-known/mercure", SL_HTTP_OTHER, &k));
  assert_int_equal(k, SL_ROUTE_MAX_METHODS);
}

/* A tree answers its root and every path under it, and nothing that merely starts with it. */
static void test_tree(void **state) {
  (void)state;
  sl_router_t r;
  sl__router_init(&r, "none");
  assert_non_null(sl__router_add(&r, "/hub", "GET", "no"));
  sl_route_t *tree = sl__router_add_tree(&r, "/hub/subscriptions", "GET", "read only");
  assert_non_null(tree);
  assert_int_equal(sl__route_on(tree, SL_HTTP_GET, h_get, &tag_sub), 0);
  size_t k;
  const char *under[] = {"/hub/subscriptions", "/hub/subscriptions/", "/hub/subscriptions/a/b%2Fc/d"};
  for (size_t i = 0; i < sizeof under / sizeof under[0]; i++) {
    const sl_route_t *rt = find(&r, under[i], SL_HTTP_GET, &k);
    assert_ptr_equal(rt, tree);
    assert_ptr_equal(rt->methods[k].data, &tag_sub);
  }
  assert_null(find(&r, "/hub/subscriptionsx", SL_HTTP_GET, &k));
  assert_null(find(&r, "/hub/subscription", SL_HTTP_GET, &k));
  assert_ptr_equal(find(&r, "/hub", SL_HTTP_GET, &k), &r.routes[0]);
  assert_null(find(&r, "/hub/other", SL_HTTP_GET, &k)); /* an exact route is no tree */
}

static void test_tables_full(void **state) {
  (void)state;
  sl_router_t r;
  sl__router_init(&r, "none");
  static char paths[SL_ROUTER_MAX_ROUTES + 1][8];
  for (int i = 0; i < SL_ROUTER_MAX_ROUTES; i++) {
    paths[i][0] = '/';
    paths[i][1] = (char)('a' + i);
    assert_non_null(sl__router_add(&r, paths[i], "GET", "no"));
  }
  assert_null(sl__router_add(&r, "/full", "GET", "no"));
  assert_int_equal(r.count, SL_ROUTER_MAX_ROUTES);
  size_t k;
  assert_non_null(find(&r, paths[SL_ROUTER_MAX_ROUTES - 1], SL_HTTP_GET, &k));
  assert_null(find(&r, "/full", SL_HTTP_GET, &k));

  sl_route_t *rt = &r.routes[0];
  sl_http_method_t m[] = {SL_HTTP_GET, SL_HTTP_HEAD, SL_HTTP_POST, SL_HTTP_OPTIONS};
  for (int i = 0; i < SL_ROUTE_MAX_METHODS; i++)
    assert_int_equal(sl__route_on(rt, m[i], h_get, NULL), 0);
  assert_int_equal(sl__route_on(rt, SL_HTTP_OTHER, h_get, NULL), -ENOSPC);
  assert_int_equal(rt->method_count, SL_ROUTE_MAX_METHODS);
  assert_non_null(find(&r, paths[0], SL_HTTP_OTHER, &k));
  assert_int_equal(k, SL_ROUTE_MAX_METHODS);
  assert_non_null(find(&r, paths[0], SL_HTTP_OPTIONS, &k));
  assert_int_equal(k, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_found_by_path_and_method),
    cmocka_unit_test(test_unknown_path_is_404),
    cmocka_unit_test(test_known_path_other_method_is_405),
    cmocka_unit_test(test_tree),
    cmocka_unit_test(test_tables_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
