/* test_hub.c — the hub through its public API (include/sluice.h), over a real socket: an update
 * published by the embedding API may carry an id far longer than HTTP allows a publisher (1023
 * bytes), and a stream resumed from it must say so in a well-formed head. The head was once
 * written with snprintf into a fixed buffer and sent with the would-be length: a resumed id over
 * ~4 KB read past the stack buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include <errno.h>

#include "sluice.h"

#define LONG_ID 6000

static void test_resume_from_a_long_id(void **state) {
  (void)state;
  sl_config_t cfg;
  sl_config_init(&cfg);
  cfg.listen[0] = "127.0.0.1:0";
  cfg.listen_count = 1;
  cfg.workers = 1;
  cfg.anonymous = 1;
  cfg.jwt_key = "test-hub-key-0123456789abcdef0123456789";
  sl_hub_t *hub;
  assert_int_equal(sl_hub_new(&cfg, &hub), 0);
  assert_int_equal(sl_hub_start(hub), 0);
  int port = sl_hub_port(hub, 0);
  assert_true(port > 0);

  static char id[LONG_ID + 1], got[LONG_ID + 1];
  memset(id, 'i', LONG_ID);
  id[LONG_ID] = '\0';
  const char *topics[] = {"urn:test:long"};
  sl_update_t first = {.topics = topics, .topic_count = 1, .data = "a", .data_len = 1, .id = id};
  sl_update_t second = {.topics = topics, .topic_count = 1, .data = "b", .data_len = 1, .id = "after"};
  assert_int_equal(sl_hub_publish(hub, &first, got, sizeof got), 0);
  assert_int_equal(sl_hub_publish(hub, &second, got, sizeof got), 0);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  static char req[LONG_ID + 256];
  int n = snprintf(req, sizeof req, "GET /.well-known/mercure?match=urn:test:long HTTP/1.1\r\n"
                   "Host: x\r\nLast-Event-ID: %s\r\n\r\n", id);
  assert_true(n > 0 && (size_t)n < sizeof req);
  assert_int_equal(send(fd, req, (size_t)n, 0), n);

  /* The head, and the replayed update after the long id. */
  static char buf[3 * LONG_ID];
  size_t len = 0;
  while (len < sizeof buf - 1 && strstr(buf, "data: b") == NULL) {
    ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (r <= 0)
      break;
    len += (size_t)r;
    buf[len] = '\0';
  }
  close(fd);
  assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
  char *hdr = strstr(buf, "Mercure-Last-Event-ID: ");
  assert_non_null(hdr);
  hdr += strlen("Mercure-Last-Event-ID: ");
  assert_true(strncmp(hdr, id, LONG_ID) == 0);
  assert_true(strncmp(hdr + LONG_ID, "\r\n", 2) == 0);
  char *end = strstr(buf, "\r\n\r\n");
  assert_non_null(end);
  assert_true(end > hdr);                         /* the head ends after the whole id */
  assert_non_null(strstr(end, "id: after\n"));    /* and the stream goes on, well-formed */
  assert_non_null(strstr(end, "data: b\n"));

  assert_int_equal(sl_hub_shutdown(hub, 5, NULL, NULL), 0);
  assert_int_equal(sl_hub_wait(hub), 0);
  sl_hub_free(hub);
}

/* The web settings are checked when the hub is made, for embedders as for the daemon: each bad
 * value is -EINVAL (and logged), each good one makes a hub. */
static void test_web_settings(void **state) {
  (void)state;
  static const struct {
    const char *cookie, *publish, *cors, *url;
    int want;
  } cases[] = {
    {"hubTok", "https://app.example, http://127.0.0.1:3000", "*", NULL, 0},
    {NULL, NULL, "https://a.example https://b.example", "https://hub.example/hubs/a", 0},
    {"bad name", NULL, NULL, NULL, -EINVAL},
    {"", NULL, NULL, NULL, -EINVAL},
    {"a;b", NULL, NULL, NULL, -EINVAL},
    {NULL, "*", NULL, NULL, -EINVAL},
    {NULL, "https://app.example/path", NULL, NULL, -EINVAL},
    {NULL, NULL, "*, https://a.example", NULL, -EINVAL},
    {NULL, NULL, "app.example", NULL, -EINVAL},
    {NULL, NULL, NULL, "https://hub.example/\"quoted\"", -EINVAL},
    {NULL, NULL, NULL, "https://hub.example/<x>", -EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sl_config_t cfg;
    sl_config_init(&cfg);
    cfg.jwt_key = "a-key-of-at-least-thirty-two-bytes-0123456789";
    cfg.cookie_name = cases[i].cookie;
    cfg.publish_origins = cases[i].publish;
    cfg.cors_origins = cases[i].cors;
    cfg.public_url = cases[i].url;
    sl_hub_t *hub = NULL;
    assert_int_equal(sl_hub_new(&cfg, &hub), cases[i].want);
    sl_hub_free(hub);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_resume_from_a_long_id),
    cmocka_unit_test(test_web_settings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
