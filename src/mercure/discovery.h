/* discovery.h — how clients find out about the hub (Mercure's Discovery section): the OAuth 2.0
 * Protected Resource Metadata document (RFC 9728) at the path derived from the hub's URL, and
 * the resource_metadata parameter every WWW-Authenticate: Bearer challenge of the hub carries.
 * Built once from the configuration when the hub is made; read-only afterwards, shared by every
 * worker. */
#ifndef SL_DISCOVERY_H
#define SL_DISCOVERY_H

#include <stddef.h>

#include "http/http.h"
#include "sluice.h"

/* RFC 9728 3.1: inserted between the host and the path of the resource identifier. */
#define SL_METADATA_PREFIX "/.well-known/oauth-protected-resource"
/* The matcher types subscribe.c accepts, as a JSON array's members (the metadata's
 * mercure_matcher_types_supported). */
#define SL_MATCHER_TYPES_JSON "\"exact\",\"urlpattern\""

typedef struct sl_discovery_s {
  const char *hub_url;           /* the hub's URL (the configuration's public_url, borrowed) */
  char *metadata_path;           /* where the document is served: prefix + the hub's path */
  char *metadata_url;            /* its absolute URL: resource_metadata in challenges */
  char *document;                /* the JSON document */
  size_t document_len;
} sl_discovery_t;

/* Builds the document for cfg (cfg->public_url set: sl_hub_new's). 0, -EINVAL when public_url
 * is not an absolute http(s) URL with a path, or -ENOMEM. */
int sl__discovery_init(sl_discovery_t *d, const sl_config_t *cfg);
void sl__discovery_free(sl_discovery_t *d);

/* GET and HEAD of metadata_path (data: the sl_discovery_t): the document, as application/json,
 * readable from any origin (it is public and carries no credentials). */
void sl__discovery_serve(sl_conn_t *c, sl_request_t *r, void *data);

/* The WWW-Authenticate line of a challenge ("WWW-Authenticate: Bearer resource_metadata=...,
 * error=..., error_description=...\r\n") into buf: error NULL for a challenge without an error
 * code (no token was presented), description NULL or "" for none (a quoted-string's content:
 * no quotes or backslashes). The line is cut to cap, which >= 256 + strlen(metadata_url)
 * avoids. */
void sl__discovery_challenge(const sl_discovery_t *d, const char *error, const char *description,
                             char *buf, size_t cap);

/* The hub link line ("Link: <hub url>; rel=\"mercure\"; last-event-id=\"...\"\r\n", then
 * type and content-type when given, each NULL to leave it out) into buf, the quoted values
 * escaped: what the Subscription API's answers carry (Active Subscriptions). Returns the line's
 * length, or 0 when it does not fit in cap (buf then holds ""). */
size_t sl__discovery_link(const sl_discovery_t *d, const char *last_event_id, const char *type,
                          const char *content_type, char *buf, size_t cap);

#endif
