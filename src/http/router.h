/* router.h — the endpoint table: each path with the methods it answers and their handlers,
 * registered by the hub before its workers run and only read after. A lookup says which handler
 * runs, or why none does (404, or 405 with the Allow header and a sentence for the body). It
 * knows nothing of connections: http.c does the answering. */
#ifndef SL_ROUTER_H
#define SL_ROUTER_H

#include <stddef.h>

struct sl_conn_s;
struct sl_request_s;
struct sl_origins_s;

typedef enum {
  SL_HTTP_GET = 0,
  SL_HTTP_HEAD,
  SL_HTTP_POST,
  SL_HTTP_OPTIONS,
  SL_HTTP_OTHER,
} sl_http_method_t;

#define SL_ROUTER_MAX_ROUTES 16
#define SL_ROUTE_MAX_METHODS 4

/* Runs on the worker's thread with the complete request; answers it, or opens a stream. */
typedef void (*sl_http_handler_t)(struct sl_conn_s *c, struct sl_request_s *r, void *data);

typedef struct sl_route_s {
  const char *path;              /* without the query: exact, or the root of a tree */
  int tree;                      /* 1: also every path under it ("path/...") */
  const char *allow;             /* the Allow header's value for a 405 */
  const char *refusal;           /* the 405's body: what the resource answers */
  const struct sl_origins_s *cors; /* NULL, or the CORS allowlist every answer of this route
                                    follows (cors.h): set by whoever adds the route */
  size_t method_count;
  struct {
    sl_http_method_t method;
    sl_http_handler_t handler;
    void *data;
  } methods[SL_ROUTE_MAX_METHODS];
} sl_route_t;

typedef struct sl_router_s {
  sl_route_t routes[SL_ROUTER_MAX_ROUTES];
  size_t count;
  const char *not_found;         /* the 404's body */
} sl_router_t;

void sl__router_init(sl_router_t *r, const char *not_found);
/* A path (borrowed strings that outlive the router). NULL when the table is full. */
sl_route_t *sl__router_add(sl_router_t *r, const char *path, const char *allow, const char *refusal);
/* A path and every path under it ("path/..."), answered by the same handlers, which read the
 * rest of the path themselves (an API whose resources are named in the path). */
sl_route_t *sl__router_add_tree(sl_router_t *r, const char *path, const char *allow,
                                const char *refusal);
/* A method of a route. 0, or -ENOSPC. */
int sl__route_on(sl_route_t *route, sl_http_method_t m, sl_http_handler_t handler, void *data);

/* The route of path, or NULL (404); *found_method the entry for m, or NULL (405). */
const sl_route_t *sl__router_find(const sl_router_t *r, const char *path, size_t len,
                                  sl_http_method_t m, size_t *method_index);

#endif
