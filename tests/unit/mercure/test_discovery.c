/* test_discovery.c — discovery.c: the metadata document's path and URL derived from the hub's
 * URL (RFC 9728 3.1, whatever the path), its members (resource, the detail type, header as the
 * bearer method, mercure_cookie with the configured name, mercure_subscriptions only when on),
 * and the challenge lines with and without an error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <jansson.h>

#include "mercure/discovery.h"

static json_t *parse(const sl_discovery_t *d) {
  json_error_t err;
  json_t *j = json_loadb(d->document, d->document_len, 0, &err);
  assert_non_null(j);
  return j;
}

static void test_default_hub(void **state) {
  (void)state;
  sl_config_t cfg;
  sl_config_init(&cfg);
  cfg.public_url = "https://hub.example/.well-known/mercure";
  sl_discovery_t d;
  assert_int_equal(sl__discovery_init(&d, &cfg), 0);
  assert_string_equal(d.metadata_path, "/.well-known/oauth-protected-resource/.well-known/mercure");
  assert_string_equal(d.metadata_url,
                      "https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure");
  json_t *j = parse(&d);
  assert_string_equal(json_string_value(json_object_get(j, "resource")), cfg.public_url);
  assert_string_equal(json_string_value(json_array_get(
                          json_object_get(j, "authorization_details_types_supported"), 0)),
                      "https://mercure.rocks/authorization-detail");
  json_t *methods = json_object_get(j, "bearer_methods_supported");
  assert_int_equal(json_array_size(methods), 1);
  assert_string_equal(json_string_value(json_array_get(methods, 0)), "header");
  assert_string_equal(json_string_value(json_object_get(j, "mercure_cookie")),
                      "__Secure-mercure_access_token");
  assert_null(json_object_get(j, "mercure_subscriptions"));
  json_t *types = json_object_get(j, "mercure_matcher_types_supported");
  assert_int_equal(json_array_size(types), 2);
  assert_string_equal(json_string_value(json_array_get(types, 0)), "exact");
  assert_string_equal(json_string_value(json_array_get(types, 1)), "urlpattern");
  json_decref(j);

  char line[512];
  sl__discovery_challenge(&d, NULL, NULL, line, sizeof line);
  assert_string_equal(line, "WWW-Authenticate: Bearer resource_metadata=\"https://hub.example/"
                            ".well-known/oauth-protected-resource/.well-known/mercure\"\r\n");
  sl__discovery_challenge(&d, "invalid_token", NULL, line, sizeof line);
  assert_non_null(strstr(line, "\", error=\"invalid_token\"\r\n"));
  sl__discovery_challenge(NULL, "invalid_token", NULL, line, sizeof line);
  assert_string_equal(line, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
  sl__discovery_free(&d);
}

static void test_prefixed_hub(void **state) {
  (void)state;
  sl_config_t cfg;
  sl_config_init(&cfg);
  cfg.public_url = "http://127.0.0.1:8080/hubs/one";
  cfg.cookie_name = "hubOneToken";
  cfg.subscriptions = 1;
  sl_discovery_t d;
  assert_int_equal(sl__discovery_init(&d, &cfg), 0);
  assert_string_equal(d.metadata_path, "/.well-known/oauth-protected-resource/hubs/one");
  assert_string_equal(d.metadata_url,
                      "http://127.0.0.1:8080/.well-known/oauth-protected-resource/hubs/one");
  json_t *j = parse(&d);
  assert_string_equal(json_string_value(json_object_get(j, "mercure_cookie")), "hubOneToken");
  assert_true(json_is_true(json_object_get(j, "mercure_subscriptions")));
  json_decref(j);
  char link[256];
  size_t n = sl__discovery_link(&d, "urn:uuid:1\"x", "mercure", "application/json", link,
                                sizeof link);
  assert_int_equal(n, strlen(link));
  assert_string_equal(link, "Link: <http://127.0.0.1:8080/hubs/one>; rel=\"mercure\"; "
                            "last-event-id=\"urn:uuid:1\\\"x\"; type=\"mercure\"; "
                            "content-type=\"application/json\"\r\n");
  assert_int_equal(sl__discovery_link(&d, NULL, NULL, NULL, link, sizeof link),
                   strlen("Link: <http://127.0.0.1:8080/hubs/one>; rel=\"mercure\"\r\n"));
  assert_int_equal(sl__discovery_link(&d, "earliest", NULL, NULL, link, 40), 0);
  assert_string_equal(link, "");
  sl__discovery_free(&d);

  cfg.public_url = "no-scheme";
  assert_int_equal(sl__discovery_init(&d, &cfg), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_default_hub),
    cmocka_unit_test(test_prefixed_hub),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
