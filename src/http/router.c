/* router.c — the endpoint table (see router.h): a handful of exact paths and path trees, looked
 * up by a linear scan that beats any index at this size. */
#include "http/router.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

void sl__router_init(sl_router_t *r, const char *not_found) {
  memset(r, 0, sizeof *r);
  r->not_found = not_found;
}

sl_route_t *sl__router_add(sl_router_t *r, const char *path, const char *allow, const char *refusal) {
  assert(path != NULL && allow != NULL && refusal != NULL);
  if (r->count == SL_ROUTER_MAX_ROUTES)
    return NULL;
  sl_route_t *route = &r->routes[r->count++];
  memset(route, 0, sizeof *route);
  route->path = path;
  route->allow = allow;
  route->refusal = refusal;
  return route;
}

sl_route_t *sl__router_add_tree(sl_router_t *r, const char *path, const char *allow,
                                const char *refusal) {
  sl_route_t *route = sl__router_add(r, path, allow, refusal);
  if (route)
    route->tree = 1;
  return route;
}

/* 1 when the route answers path[0..len). */
static int route_matches(const sl_route_t *route, const char *path, size_t len) {
  size_t n = strlen(route->path);
  if (len < n || memcmp(route->path, path, n) != 0)
    return 0;
  return len == n || (route->tree && path[n] == '/');
}

int sl__route_on(sl_route_t *route, sl_http_method_t m, sl_http_handler_t handler, void *data) {
  assert(handler != NULL);
  if (route->method_count == SL_ROUTE_MAX_METHODS)
    return -ENOSPC;
  route->methods[route->method_count].method = m;
  route->methods[route->method_count].handler = handler;
  route->methods[route->method_count].data = data;
  route->method_count++;
  return 0;
}

const sl_route_t *sl__router_find(const sl_router_t *r, const char *path, size_t len,
                                  sl_http_method_t m, size_t *method_index) {
  for (size_t i = 0; i < r->count; i++) {
    const sl_route_t *route = &r->routes[i];
    if (!route_matches(route, path, len))
      continue;
    *method_index = SL_ROUTE_MAX_METHODS;
    for (size_t k = 0; k < route->method_count; k++)
      if (route->methods[k].method == m)
        *method_index = k;
    return route;
  }
  return NULL;
}
