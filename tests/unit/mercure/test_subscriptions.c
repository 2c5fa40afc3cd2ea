/* test_subscriptions.c — subscriptions.c, the registry of active subscriptions, over a real bus
 * and the memory history (no worker attached: the events are read back from history): a
 * connection's matchers become one subscription each (a repeated pair once) under one urn:uuid
 * subscriber id, each announced by one private update of type mercure on the topic
 * <hub path>/subscriptions/{match_type}/{match}/{subscriber} whose data is the subscription's
 * document (payload included); the API's documents list exactly what is active, with the bus's
 * last id as the cursor; an end is announced once; the drain announces every end and then nothing
 * is registered or announced any more. And the paths: each part percent-encoded once, whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <jansson.h>

#include "history/history.h"
#include "mercure/subscriptions.h"
#include "net/bus.h"

#define HUB "/.well-known/mercure"

typedef struct fixture_s {
  sl_history_t *h;
  sl_bus_t bus;
  sl_subs_t *subs;
  uint64_t read_seq;             /* history frames already looked at */
} fixture_t;

static fixture_t F;

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  assert_int_equal(sl__history_memory_new(&F.h, 1000, 0), 0);
  assert_int_equal(sl__bus_init(&F.bus, F.h), 0);
  F.bus.keep_last = 1;
  F.bus.hub_path = HUB;
  assert_int_equal(sl__subs_new(&F.subs, &F.bus, HUB), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sl__subs_free(F.subs);
  sl__bus_destroy(&F.bus);
  sl__history_destroy(F.h);
  return 0;
}

/* The frames stored since the last call, as parsed documents with their topic and flags. */
typedef struct event_s {
  char topic[512];
  json_t *doc;
  int private_, mercure_type;
  char id[64];
} event_t;

static size_t new_events(event_t *out, size_t max) {
  sl_history_cursor_t *cur;
  int found;
  assert_int_equal(sl__history_cursor_open(F.h, NULL, UINT64_MAX, &cur, &found), 0);
  sl_frame_t *frames[64];
  size_t n = 0;
  int got;
  while ((got = sl__history_cursor_next(cur, frames, 64)) > 0) {
    for (int i = 0; i < got; i++) {
      sl_frame_t *f = frames[i];
      if (f->seq > F.read_seq && n < max) {
        F.read_seq = f->seq;
        event_t *e = &out[n++];
        assert_int_equal(f->topic_count, 1);
        snprintf(e->topic, sizeof e->topic, "%s", f->topics[0]);
        snprintf(e->id, sizeof e->id, "%s", f->id);
        e->private_ = (f->flags & SL_FRAME_PRIVATE) != 0;
        char *wire = strndup(f->wire + f->hdr, f->len - f->hdr);
        e->mercure_type = strstr(wire, "\nevent: mercure\n") != NULL;
        char *data = strstr(wire, "\ndata: ");
        assert_non_null(data);
        char *end = strchr(data + 7, '\n');
        *end = '\0';
        e->doc = json_loads(data + 7, 0, NULL);
        assert_non_null(e->doc);
        free(wire);
      }
      sl__frame_unref(f);
    }
  }
  sl__history_cursor_close(cur);
  return n;
}

static void free_events(event_t *e, size_t n) {
  for (size_t i = 0; i < n; i++)
    json_decref(e[i].doc);
}

static const char *str(json_t *doc, const char *key) {
  return json_string_value(json_object_get(doc, key));
}

static void test_paths(void **state) {
  (void)state;
  size_t len;
  char *p = sl__subs_path(HUB, NULL, 0, NULL, 0, NULL, 0, &len);
  assert_string_equal(p, HUB "/subscriptions");
  assert_int_equal(len, strlen(p));
  free(p);
  p = sl__subs_path("/hub", "urlpattern", 10, "https://example.com/:selector", 29,
                    "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6", 45, &len);
  assert_string_equal(p, "/hub/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2F%3Aselector/"
                         "urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6");
  free(p);
  /* Once and whole: a value that looks encoded is encoded again. */
  p = sl__subs_path(HUB, "exact", 5, "a%2Fb/c", 7, NULL, 0, &len);
  assert_string_equal(p, HUB "/subscriptions/exact/a%252Fb%2Fc");
  free(p);
}

static void test_open_announces_each_subscription(void **state) {
  (void)state;
  sl_subs_matcher_t m[] = {
    {"exact", "urn:a", 5, NULL, 0},
    {"exact", "urn:a", 5, NULL, 0},                    /* the same pair again: counted once */
    {"urlpattern", "https://example.com/:id", 23, "{\"x\":1}", 7},
  };
  sl_subs_conn_t *c = NULL;
  assert_int_equal(sl__subs_open(F.subs, m, 3, &c), 0);
  assert_non_null(c);
  assert_int_equal(sl__subs_count(F.subs), 2);

  event_t ev[8];
  size_t n = new_events(ev, 8);
  assert_int_equal(n, 2);
  const char *subscriber = str(ev[0].doc, "subscriber");
  assert_non_null(subscriber);
  assert_memory_equal(subscriber, "urn:uuid:", 9);
  assert_string_equal(str(ev[1].doc, "subscriber"), subscriber);
  char want[512];
  snprintf(want, sizeof want, HUB "/subscriptions/exact/urn%%3Aa/urn%%3Auuid%%3A%s", subscriber + 9);
  assert_string_equal(ev[0].topic, want);
  for (size_t i = 0; i < n; i++) {
    assert_true(ev[i].private_);
    assert_true(ev[i].mercure_type);
    assert_string_equal(str(ev[i].doc, "id"), ev[i].topic);
    assert_string_equal(str(ev[i].doc, "type"), "subscription");
    assert_true(json_is_true(json_object_get(ev[i].doc, "active")));
  }
  assert_string_equal(str(ev[0].doc, "match_type"), "exact");
  assert_string_equal(str(ev[0].doc, "match"), "urn:a");
  assert_null(json_object_get(ev[0].doc, "payload"));
  assert_string_equal(str(ev[1].doc, "match_type"), "urlpattern");
  assert_string_equal(str(ev[1].doc, "match"), "https://example.com/:id");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(ev[1].doc, "payload"), "x")), 1);

  /* The API: everything, one matcher, one subscription; the cursor is the last event's id. */
  char *body, *cursor;
  size_t len;
  sl_subs_query_t all = {.id = HUB "/subscriptions", .id_len = sizeof HUB "/subscriptions" - 1};
  assert_int_equal(sl__subs_query(F.subs, &all, &body, &len, &cursor), 0);
  assert_string_equal(cursor, ev[1].id);
  json_t *doc = json_loads(body, 0, NULL);
  assert_non_null(doc);
  assert_string_equal(str(doc, "type"), "subscriptions");
  assert_string_equal(str(doc, "id"), HUB "/subscriptions");
  assert_int_equal(json_array_size(json_object_get(doc, "subscriptions")), 2);
  json_decref(doc);
  free(body);
  free(cursor);

  sl_subs_query_t one = {.type = "exact", .type_len = 5, .match = "urn:a", .match_len = 5,
                         .subscriber = subscriber, .subscriber_len = strlen(subscriber)};
  assert_int_equal(sl__subs_query(F.subs, &one, &body, &len, &cursor), 0);
  doc = json_loads(body, 0, NULL);
  assert_true(json_equal(doc, ev[0].doc));
  json_decref(doc);
  free(body);
  free(cursor);
  one.match = "urn:b";
  assert_int_equal(sl__subs_query(F.subs, &one, &body, &len, &cursor), -ENOENT);

  /* The end: once, one event per subscription, active false; then the list is empty. */
  sl__subs_end(F.subs, c);
  sl__subs_end(F.subs, c);
  free_events(ev, n);
  n = new_events(ev, 8);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++)
    assert_true(json_is_false(json_object_get(ev[i].doc, "active")));
  assert_int_equal(sl__subs_count(F.subs), 0);
  sl__subs_close(F.subs, c);
  assert_int_equal(new_events(ev + 2, 6), 0);
  free_events(ev, n);
}

static void test_cursor_before_any_update(void **state) {
  (void)state;
  char *body, *cursor = (char *)"unset";
  size_t len;
  sl_subs_query_t all = {.id = "x", .id_len = 1};
  assert_int_equal(sl__subs_query(F.subs, &all, &body, &len, &cursor), 0);
  assert_null(cursor); /* "earliest" */
  assert_string_equal(body, "{\"id\":\"x\",\"type\":\"subscriptions\",\"subscriptions\":[]}");
  free(body);
}

static void test_drain(void **state) {
  (void)state;
  sl_subs_matcher_t m[] = {{"exact", "urn:a", 5, NULL, 0}};
  sl_subs_conn_t *c1, *c2, *c3;
  assert_int_equal(sl__subs_open(F.subs, m, 1, &c1), 0);
  assert_int_equal(sl__subs_open(F.subs, m, 1, &c2), 0);
  event_t ev[8];
  size_t n = new_events(ev, 8);
  assert_int_equal(n, 2);
  assert_string_not_equal(str(ev[0].doc, "subscriber"), str(ev[1].doc, "subscriber"));
  free_events(ev, n);
  sl__subs_drain(F.subs);
  n = new_events(ev, 8);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++)
    assert_true(json_is_false(json_object_get(ev[i].doc, "active")));
  free_events(ev, n);
  /* After the drain: nothing more is registered nor announced. */
  assert_int_equal(sl__subs_open(F.subs, m, 1, &c3), -ESHUTDOWN);
  sl__subs_close(F.subs, c1);
  sl__subs_close(F.subs, c2);
  assert_int_equal(new_events(ev, 8), 0);
  assert_int_equal(sl__subs_count(F.subs), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_paths),
    cmocka_unit_test_setup_teardown(test_open_announces_each_subscription, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cursor_before_any_update, setup, teardown),
    cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
