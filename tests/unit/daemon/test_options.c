/* test_options.c — options.c: every setting given as --flag VALUE, --flag=VALUE, SLUICE_<NAME>
 * and a config file line; the precedence flags > environment > config file > defaults; config
 * file syntax and its file:line errors; one-line -EINVAL messages that name the flag for every
 * kind of bad value; listen addresses (repetition, IPv6, limits); byte suffixes and decimal
 * seconds; and `sluice token`, whose tokens are checked by verifying them with auth.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "daemon/options.h"

#define MAX_ARGS 40

/* Every variable options.c reads, cleared around each test so that neither the developer's shell
 * nor an earlier test can change a result. */
static const char *const env_names[] = {
  "SLUICE_LISTEN", "SLUICE_WORKERS", "SLUICE_JWT_KEY", "SLUICE_PUBLISHER_JWT_KEY",
  "SLUICE_SUBSCRIBER_JWT_KEY", "SLUICE_JWT_AUDIENCE", "SLUICE_JWT_ISSUER", "SLUICE_ANONYMOUS",
  "SLUICE_HISTORY_SIZE", "SLUICE_HEARTBEAT", "SLUICE_MAX_QUEUE", "SLUICE_MAX_BODY",
  "SLUICE_WRITE_TIMEOUT", "SLUICE_HEADER_TIMEOUT", "SLUICE_IDLE_TIMEOUT", "SLUICE_DRAIN_DELAY",
  "SLUICE_SHUTDOWN_TIMEOUT", "SLUICE_RECONNECT_SPREAD", "SLUICE_LINGER", "SLUICE_CONFIG",
  "SLUICE_LOG_FILE", "SLUICE_VERBOSE", "SLUICE_HELP", "SLUICE_VERSION", "SLUICE_FOO",
  "SLUICE_BIN", "SLUICE_COOKIE_NAME", "SLUICE_PUBLISH_ORIGIN", "SLUICE_CORS_ORIGIN",
};

static int clear_env(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++) unsetenv(env_names[i]);
  return 0;
}

/* Parses "sluice" followed by the NULL-terminated arguments. */
static int parse(sl_options_t *opt, char *err, size_t errlen, ...) {
  char *argv[MAX_ARGS];
  int argc = 0;
  va_list ap;
  argv[argc++] = "sluice";
  va_start(ap, errlen);
  for (char *a; (a = va_arg(ap, char *)) != NULL;) {
    assert_true(argc < MAX_ARGS);
    argv[argc++] = a;
  }
  va_end(ap);
  argv[argc] = NULL;
  return sl__options_parse(opt, argc, argv, err, errlen);
}

/* A config file with the given text; the caller unlinks path. */
static void write_config(char path[static 32], const char *text) {
  strcpy(path, "/tmp/sluice-test-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t len = strlen(text);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  close(fd);
}

/* One setting, the text it is given as, and where the result lands. */
typedef enum { T_STR, T_UNSIGNED, T_SIZE, T_DOUBLE, T_INT } field_type_t;

typedef struct {
  const char *name;
  const char *value;
  field_type_t type;
  size_t offset;
  const char *want_str;
  double want_num;
} setting_t;

#define HUB(f) offsetof(sl_options_t, hub.f)
#define OPT(f) offsetof(sl_options_t, f)

/* Every value differs from its default, so each check can fail if the value is dropped. */
static const setting_t settings[] = {
  {"workers", "7", T_UNSIGNED, HUB(workers), NULL, 7},
  {"jwt-key", "k#1 secret", T_STR, HUB(jwt_key), "k#1 secret", 0},
  {"publisher-jwt-key", "pk", T_STR, HUB(publisher_jwt_key), "pk", 0},
  {"subscriber-jwt-key", "sk", T_STR, HUB(subscriber_jwt_key), "sk", 0},
  {"jwt-audience", "https://aud.example", T_STR, HUB(jwt_audience), "https://aud.example", 0},
  {"jwt-issuer", "iss-1", T_STR, HUB(jwt_issuer), "iss-1", 0},
  {"anonymous", "true", T_INT, HUB(anonymous), NULL, 1},
  {"cookie-name", "hubTok", T_STR, HUB(cookie_name), "hubTok", 0},
  {"publish-origin", "https://app.example", T_STR, HUB(publish_origins), "https://app.example", 0},
  {"cors-origin", "http://127.0.0.1:3000", T_STR, HUB(cors_origins), "http://127.0.0.1:3000", 0},
  {"history-size", "0", T_SIZE, HUB(history_size), NULL, 0},
  {"heartbeat", "0.5", T_DOUBLE, HUB(heartbeat), NULL, 0.5},
  {"max-queue", "64K", T_SIZE, HUB(max_queue), NULL, 65536},
  {"max-body", "2048", T_SIZE, HUB(max_body), NULL, 2048},
  {"write-timeout", "3.25", T_DOUBLE, HUB(write_timeout), NULL, 3.25},
  {"header-timeout", "4", T_DOUBLE, HUB(header_timeout), NULL, 4},
  {"idle-timeout", "120", T_DOUBLE, HUB(idle_timeout), NULL, 120},
  {"drain-delay", "1.5", T_DOUBLE, HUB(drain_delay), NULL, 1.5},
  {"shutdown-timeout", "0", T_DOUBLE, HUB(shutdown_timeout), NULL, 0},
  {"reconnect-spread", "9", T_DOUBLE, HUB(reconnect_spread), NULL, 9},
  {"linger", "0.125", T_DOUBLE, HUB(linger), NULL, 0.125},
  {"flush-window", "0.02", T_DOUBLE, HUB(flush_window), NULL, 0.02},
  {"max-pending", "8", T_SIZE, HUB(max_pending), NULL, 8},
  {"log-file", "/var/log/sluice.log", T_STR, OPT(log_file), "/var/log/sluice.log", 0},
  {"verbose", "yes", T_INT, OPT(verbose), NULL, 1},
};

#define SETTING_COUNT (sizeof settings / sizeof settings[0])

static void check_setting(const sl_options_t *opt, const setting_t *s) {
  const char *field = (const char *)opt + s->offset;
  switch (s->type) {
    case T_STR:
      assert_non_null(*(const char *const *)field);
      assert_string_equal(*(const char *const *)field, s->want_str);
      break;
    case T_UNSIGNED: assert_int_equal(*(const unsigned *)field, (unsigned)s->want_num); break;
    case T_SIZE: assert_int_equal(*(const size_t *)field, (size_t)s->want_num); break;
    case T_DOUBLE: assert_true(*(const double *)field == s->want_num); break;
    case T_INT: assert_int_equal(*(const int *)field, (int)s->want_num); break;
  }
}

static void env_name(const char *name, char *out, size_t cap) {
  snprintf(out, cap, "SLUICE_%s", name);
  for (char *c = out; *c; c++) *c = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
}

static void test_defaults(void **state) {
  (void)state;
  sl_options_t opt;
  char err[256];
  assert_int_equal(parse(&opt, err, sizeof err, NULL), 0);
  assert_int_equal(opt.hub.listen_count, 0);
  assert_int_equal(opt.hub.workers, 0);
  assert_null(opt.hub.jwt_key);
  assert_int_equal(opt.hub.anonymous, 0);
  assert_int_equal(opt.hub.history_size, SL_DEFAULT_HISTORY_SIZE);
  assert_true(opt.hub.heartbeat == SL_DEFAULT_HEARTBEAT);
  assert_int_equal(opt.hub.max_queue, SL_DEFAULT_MAX_QUEUE);
  assert_int_equal(opt.hub.max_body, SL_DEFAULT_MAX_BODY);
  assert_true(opt.hub.linger == SL_DEFAULT_LINGER);
  assert_null(opt.config_file);
  assert_null(opt.log_file);
  assert_int_equal(opt.verbose + opt.show_help + opt.show_version, 0);
  sl__options_free(&opt);
}

static void test_every_flag_both_forms(void **state) {
  (void)state;
  for (size_t i = 0; i < SETTING_COUNT; i++) {
    const setting_t *s = &settings[i];
    sl_options_t opt;
    char err[256], flag[64], joined[128];

    /* On/off flags take no separate value: the bare flag means on. */
    snprintf(flag, sizeof flag, "--%s", s->name);
    if (s->type == T_INT)
      assert_int_equal(parse(&opt, err, sizeof err, flag, NULL), 0);
    else
      assert_int_equal(parse(&opt, err, sizeof err, flag, s->value, NULL), 0);
    check_setting(&opt, s);
    sl__options_free(&opt);

    snprintf(joined, sizeof joined, "--%s=%s", s->name, s->value);
    assert_int_equal(parse(&opt, err, sizeof err, joined, NULL), 0);
    check_setting(&opt, s);
    sl__options_free(&opt);
  }
}

static void test_every_setting_from_env(void **state) {
  for (size_t i = 0; i < SETTING_COUNT; i++) {
    const setting_t *s = &settings[i];
    sl_options_t opt;
    char err[256], var[64];
    env_name(s->name, var, sizeof var);
    setenv(var, s->value, 1);
    assert_int_equal(parse(&opt, err, sizeof err, NULL), 0);
    check_setting(&opt, s);
    sl__options_free(&opt);
    clear_env(state);
  }
}

static void test_every_setting_from_config_file(void **state) {
  (void)state;
  for (size_t i = 0; i < SETTING_COUNT; i++) {
    const setting_t *s = &settings[i];
    sl_options_t opt;
    char err[256], path[32], text[256];
    /* Alternate the two line forms. */
    snprintf(text, sizeof text, i % 2 ? "%s = %s\n" : "  %s\t%s", s->name, s->value);
    write_config(path, text);
    assert_int_equal(parse(&opt, err, sizeof err, "--config", path, NULL), 0);
    check_setting(&opt, s);
    assert_string_equal(opt.config_file, path);
    sl__options_free(&opt);
    unlink(path);
  }
}

static void test_booleans(void **state) {
  sl_options_t opt;
  char err[256];
  static const char *const yes[] = {"1", "true", "TRUE", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "Off"};

  assert_int_equal(parse(&opt, err, sizeof err, "--anonymous", "--verbose", NULL), 0);
  assert_int_equal(opt.hub.anonymous, 1);
  assert_int_equal(opt.verbose, 1);
  sl__options_free(&opt);

  for (size_t i = 0; i < 5; i++) {
    setenv("SLUICE_ANONYMOUS", yes[i], 1);
    assert_int_equal(parse(&opt, err, sizeof err, NULL), 0);
    assert_int_equal(opt.hub.anonymous, 1);
    sl__options_free(&opt);
  }
  for (size_t i = 0; i < 4; i++) {
    setenv("SLUICE_ANONYMOUS", no[i], 1);
    assert_int_equal(parse(&opt, err, sizeof err, NULL), 0);
    assert_int_equal(opt.hub.anonymous, 0);
    sl__options_free(&opt);
  }
  /* A bare flag takes no value: the next argument is parsed as a flag of its own. */
  setenv("SLUICE_ANONYMOUS", "0", 1);
  assert_int_equal(parse(&opt, err, sizeof err, "--anonymous", "--history-size", "3", NULL), 0);
  assert_int_equal(opt.hub.anonymous, 1);
  assert_int_equal(opt.hub.history_size, 3);
  sl__options_free(&opt);
  clear_env(state);

  char path[32];
  write_config(path, "anonymous\nverbose = off\n");
  assert_int_equal(parse(&opt, err, sizeof err, "--config", path, "--verbose", NULL), 0);
  assert_int_equal(opt.hub.anonymous, 1);
  assert_int_equal(opt.verbose, 1);
  sl__options_free(&opt);
  assert_int_equal(parse(&opt, err, sizeof err, "--config", path, "--anonymous=no", NULL), 0);
  assert_int_equal(opt.hub.anonymous, 0);
  assert_int_equal(opt.verbose, 0);
  sl__options_free(&opt);
  unlink(path);
}

static void test_precedence(void **state) {
  sl_options_t opt;
  char err[256], path[32];
  write_config(path, "history-size = 7\nlisten = 127.0.0.1:1\nlisten 127.0.0.1:2\njwt-key file\n");

  assert_int_equal(parse(&opt, err, sizeof err, "--config", path, NULL), 0);
  assert_int_equal(opt.hub.history_size, 7);
  assert_int_equal(opt.hub.listen_count, 2);
  assert_string_equal(opt.hub.listen[1], "127.0.0.1:2");
  assert_string_equal(opt.hub.jwt_key, "file");
  sl__options_free(&opt);

  /* The environment beats the file, value by value; an address list replaces the file's. */
  setenv("SLUICE_HISTORY_SIZE", "5", 1);
  setenv("SLUICE_LISTEN", "127.0.0.1:3", 1);
  assert_int_equal(parse(&opt, err, sizeof err, "--config", path, NULL), 0);
  assert_int_equal(opt.hub.history_size, 5);
  assert_int_equal(opt.hub.listen_count, 1);
  assert_string_equal(opt.hub.listen[0], "127.0.0.1:3");
  assert_string_equal(opt.hub.jwt_key, "file");
  sl__options_free(&opt);

  /* Flags beat both. */
  assert_int_equal(parse(&opt, err, sizeof err, "--history-size", "9", "--config", path,
                         "--listen", "127.0.0.1:4", "--listen", "127.0.0.1:5", NULL), 0);
  assert_int_equal(opt.hub.history_size, 9);
  assert_int_equal(opt.hub.listen_count, 2);
  assert_string_equal(opt.hub.listen[0], "127.0.0.1:4");
  assert_string_equal(opt.hub.listen[1], "127.0.0.1:5");
  assert_string_equal(opt.hub.jwt_key, "file");
  sl__options_free(&opt);

  /* An empty variable counts as unset. */
  setenv("SLUICE_HISTORY_SIZE", "", 1);
  assert_int_equal(parse(&opt, err, sizeof err, "--config", path, NULL), 0);
  assert_int_equal(opt.hub.history_size, 7);
  sl__options_free(&opt);
  clear_env(state);

  /* SLUICE_CONFIG names the file; --config beats it. */
  char other[32];
  write_config(other, "history-size = 11\n");
  setenv("SLUICE_CONFIG", path, 1);
  assert_int_equal(parse(&opt, err, sizeof err, NULL), 0);
  assert_int_equal(opt.hub.history_size, 7);
  sl__options_free(&opt);
  assert_int_equal(parse(&opt, err, sizeof err, "--config", other, NULL), 0);
  assert_int_equal(opt.hub.history_size, 11);
  assert_null(opt.hub.jwt_key);
  sl__options_free(&opt);
  unlink(other);
  unlink(path);
}

static void test_config_file_syntax(void **state) {
  (void)state;
  sl_options_t opt;
  char err[256], path[32];
  write_config(path,
               "# a comment\n"
               "\n"
               "   # an indented comment\n"
               "jwt-key = \"quoted # not a comment\"\n"
               "jwt-issuer='single'\n"
               "jwt-audience=aud\r\n"
               "max-body=1M   \n"
               "listen = 127.0.0.1:8081, [::1]:8082\n"
               "history-size 12");
  assert_int_equal(parse(&opt, err, sizeof err, "--config", path, NULL), 0);
  assert_string_equal(opt.hub.jwt_key, "quoted # not a comment");
  assert_string_equal(opt.hub.jwt_issuer, "single");
  assert_string_equal(opt.hub.jwt_audience, "aud");
  assert_int_equal(opt.hub.max_body, 1048576);
  assert_int_equal(opt.hub.listen_count, 2);
  assert_string_equal(opt.hub.listen[0], "127.0.0.1:8081");
  assert_string_equal(opt.hub.listen[1], "[::1]:8082");
  assert_int_equal(opt.hub.history_size, 12);
  sl__options_free(&opt);
  unlink(path);
}

/* Each bad file fails with -EINVAL and a message that starts with path:line and names what. */
static void test_config_file_errors(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int line;
    const char *want;
  } cases[] = {
    {"history-size = 1\nbogus = 1\n", 2, "unknown setting 'bogus'"},
    {"# c\n\nhistory-size = abc\n", 3, "history-size: 'abc' is not a non-negative integer"},
    {"jwt-key =\n", 1, "jwt-key: missing value"},
    {"jwt-key\n", 1, "jwt-key: missing value"},
    {"anonymous = \n", 1, "anonymous: missing value"},
    {"anonymous = maybe\n", 1, "anonymous: 'maybe' is not a boolean"},
    {"config = /etc/other.conf\n", 1, "config: cannot be set in a config file"},
    {"help = 1\n", 1, "help: cannot be set in a config file"},
    {"listen = 127.0.0.1:1\nlisten = nowhere\n", 2, "listen: 'nowhere' is not HOST:PORT"},
    {"max-queue = 12\n", 1, "max-queue: '12' is below the minimum of 1024 bytes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sl_options_t opt;
    char err[256], path[32], want[128];
    write_config(path, cases[i].text);
    assert_int_equal(parse(&opt, err, sizeof err, "--config", path, NULL), -EINVAL);
    snprintf(want, sizeof want, "%s:%d: ", path, cases[i].line);
    assert_ptr_equal(strstr(err, want), err);
    assert_non_null(strstr(err, cases[i].want));
    assert_null(strchr(err, '\n'));
    sl__options_free(&opt);
    unlink(path);
  }

  /* A NUL byte inside a line would silently cut a value short. */
  sl_options_t opt;
  char err[256], path[32];
  strcpy(path, "/tmp/sluice-test-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "jwt-key = ab\0cd\n", 16), 16);
  close(fd);
  assert_int_equal(parse(&opt, err, sizeof err, "--config", path, NULL), -EINVAL);
  assert_non_null(strstr(err, ":1: line contains a NUL byte"));
  unlink(path);

  /* A missing file names the path and the reason, and which setting asked for it. */
  assert_int_equal(parse(&opt, err, sizeof err, "--config", "/nonexistent/sluice.conf", NULL),
                   -EINVAL);
  assert_non_null(strstr(err, "--config"));
  assert_non_null(strstr(err, "/nonexistent/sluice.conf"));
  assert_non_null(strstr(err, strerror(ENOENT)));
  setenv("SLUICE_CONFIG", "/nonexistent/env.conf", 1);
  assert_int_equal(parse(&opt, err, sizeof err, NULL), -EINVAL);
  assert_non_null(strstr(err, "SLUICE_CONFIG"));
  assert_non_null(strstr(err, "/nonexistent/env.conf"));
  unsetenv("SLUICE_CONFIG");
}

/* Every kind of bad value: -EINVAL, one line, naming the flag and the problem. */
static void test_bad_values(void **state) {
  (void)state;
  static const struct {
    const char *args[3];
    const char *want;
  } cases[] = {
    {{"--history-size", "abc"}, "--history-size: 'abc' is not a non-negative integer"},
    {{"--history-size", "-1"}, "--history-size: '-1' is not a non-negative integer"},
    {{"--history-size", "12x"}, "--history-size: '12x' is not a non-negative integer"},
    {{"--history-size", " 1"}, "--history-size: ' 1' is not a non-negative integer"},
    {{"--history-size", "+1"}, "--history-size: '+1' is not a non-negative integer"},
    {{"--history-size", "99999999999999999999999"}, "--history-size: '99999999999999999999999' is too large"},
    {{"--history-size="}, "--history-size: empty value"},
    {{"--workers", "257"}, "--workers: '257' is not a worker count"},
    {{"--workers", "two"}, "--workers: 'two' is not a worker count"},
    {{"--heartbeat", "-0.5"}, "--heartbeat: '-0.5' is not a non-negative number of seconds"},
    {{"--heartbeat", "abc"}, "--heartbeat: 'abc' is not a non-negative number of seconds"},
    {{"--heartbeat", "1.5s"}, "--heartbeat: '1.5s' is not a non-negative number of seconds"},
    {{"--heartbeat", "1.2.3"}, "--heartbeat: '1.2.3' is not"},
    {{"--heartbeat", "1e3"}, "--heartbeat: '1e3' is not"},
    {{"--heartbeat", "nan"}, "--heartbeat: 'nan' is not"},
    {{"--heartbeat", "inf"}, "--heartbeat: 'inf' is not"},
    {{"--heartbeat", "."}, "--heartbeat: '.' is not"},
    {{"--linger", "1000000001"}, "--linger: '1000000001' is too large"},
    {{"--flush-window", "1.5"}, "--flush-window: '1.5' is too large (at most 1 seconds)"},
    {{"--write-timeout", "0"}, "--write-timeout: must be greater than 0"},
    {{"--header-timeout=0.0"}, "--header-timeout: must be greater than 0"},
    {{"--idle-timeout", "0"}, "--idle-timeout: must be greater than 0"},
    {{"--max-queue", "1023"}, "--max-queue: '1023' is below the minimum of 1024 bytes"},
    {{"--max-body", "0K"}, "--max-body: '0K' is below the minimum"},
    {{"--max-body", "1T"}, "--max-body: '1T' is not a size in bytes"},
    {{"--max-body", "K"}, "--max-body: 'K' is not a size in bytes"},
    {{"--max-body", "1KB"}, "--max-body: '1KB' is not a size in bytes"},
    {{"--max-body", "-2K"}, "--max-body: '-2K' is not a size in bytes"},
    {{"--max-body", "17179869184G"}, "--max-body: '17179869184G' is too large"},
    {{"--anonymous=maybe"}, "--anonymous: 'maybe' is not a boolean"},
    {{"--jwt-key"}, "--jwt-key: missing value"},
    {{"--jwt-key", "--anonymous"}, "--jwt-key: missing value"},
    {{"--jwt-key="}, "--jwt-key: empty value"},
    {{"--listen"}, "--listen: missing value"},
    {{"--foo"}, "unknown flag '--foo' (see --help)"},
    {{"--foo=bar"}, "unknown flag '--foo' (see --help)"},
    {{"-x"}, "unknown flag '-x'"},
    {{"serve"}, "unexpected argument 'serve'"},
    {{"--history-size", "1", "extra"}, "unexpected argument 'extra'"},
    {{"--jwt-key", "k\nnext line"}, NULL},  /* accepted: keys are opaque */
    {{"--history-size", "1\n2"}, "--history-size: '1?2' is not a non-negative integer"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sl_options_t opt;
    char err[256];
    int rc = parse(&opt, err, sizeof err, cases[i].args[0], cases[i].args[1], cases[i].args[2],
                   NULL);
    if (cases[i].want == NULL) {
      assert_int_equal(rc, 0);
      sl__options_free(&opt);
      continue;
    }
    if (rc != -EINVAL || strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu (%s): rc %d, message \"%s\", wanted \"%s\"", i, cases[i].args[0], rc,
               err, cases[i].want);
    assert_null(strchr(err, '\n'));
    /* A failed parse leaves nothing to free, and freeing again is harmless. */
    assert_int_equal(opt.owned_count, 0);
    sl__options_free(&opt);
  }

  /* An over-long value is cut in the message, which stays one line and bounded. */
  char longv[600];
  memset(longv, '9', sizeof longv - 2);
  longv[sizeof longv - 2] = 'x';
  longv[sizeof longv - 1] = '\0';
  sl_options_t opt;
  char err[256];
  assert_int_equal(parse(&opt, err, sizeof err, "--history-size", longv, NULL), -EINVAL);
  assert_non_null(strstr(err, "...' is not a non-negative integer"));
  /* A tiny buffer is filled, not overrun. */
  char tiny[8];
  assert_int_equal(parse(&opt, tiny, sizeof tiny, "--foo", NULL), -EINVAL);
  assert_int_equal(strlen(tiny), sizeof tiny - 1);
  assert_int_equal(parse(&opt, NULL, 0, "--foo", NULL), -EINVAL);
}

/* Bad values from the environment name the variable. */
/* --cors-origin and --publish-origin: repeatable within a source, replaced by a stronger one,
 * each value checked when given ("*" only for CORS, and alone; no path). */
static void test_origin_lists(void **state) {
  (void)state;
  sl_options_t opt;
  char err[256];
  setenv("SLUICE_CORS_ORIGIN", "https://env.example", 1);
  assert_int_equal(parse(&opt, err, sizeof err, NULL), 0);
  assert_string_equal(opt.hub.cors_origins, "https://env.example");
  sl__options_free(&opt);
  assert_int_equal(parse(&opt, err, sizeof err, "--cors-origin", "https://a.example",
                         "--cors-origin=https://b.example,http://c.example:81", NULL), 0);
  assert_string_equal(opt.hub.cors_origins,
                      "https://a.example, https://b.example,http://c.example:81");
  assert_null(opt.hub.publish_origins);
  sl__options_free(&opt);
  unsetenv("SLUICE_CORS_ORIGIN");
  assert_int_equal(parse(&opt, err, sizeof err, "--cors-origin", "*", NULL), 0);
  assert_string_equal(opt.hub.cors_origins, "*");
  sl__options_free(&opt);

  assert_int_equal(parse(&opt, err, sizeof err, "--cors-origin", "*", "--cors-origin",
                         "https://a.example", NULL), -EINVAL);
  assert_non_null(strstr(err, "--cors-origin"));
  assert_int_equal(parse(&opt, err, sizeof err, "--publish-origin", "*", NULL), -EINVAL);
  assert_non_null(strstr(err, "--publish-origin: '*'"));
  assert_int_equal(parse(&opt, err, sizeof err, "--publish-origin", "https://a.example/x", NULL),
                   -EINVAL);
  assert_non_null(strstr(err, "not an origin"));
  assert_int_equal(parse(&opt, err, sizeof err, "--cors-origin", ",", NULL), -EINVAL);
  assert_non_null(strstr(err, "no origin given"));
}

static void test_bad_env(void **state) {
  sl_options_t opt;
  char err[256];
  setenv("SLUICE_HISTORY_SIZE", "abc", 1);
  assert_int_equal(parse(&opt, err, sizeof err, NULL), -EINVAL);
  assert_string_equal(err, "SLUICE_HISTORY_SIZE: 'abc' is not a non-negative integer");
  /* Still an error when a flag overrides the variable: the environment is wrong either way, and
   * it would surface the day the flag is dropped. */
  assert_int_equal(parse(&opt, err, sizeof err, "--history-size", "2", NULL), -EINVAL);
  clear_env(state);

  setenv("SLUICE_LISTEN", "127.0.0.1:80,:81", 1);
  assert_int_equal(parse(&opt, err, sizeof err, NULL), -EINVAL);
  assert_non_null(strstr(err, "SLUICE_LISTEN: ':81' is not HOST:PORT"));
  clear_env(state);

  setenv("SLUICE_VERBOSE", "sometimes", 1);
  assert_int_equal(parse(&opt, err, sizeof err, NULL), -EINVAL);
  assert_non_null(strstr(err, "SLUICE_VERBOSE: 'sometimes' is not a boolean"));
}

/* Other SLUICE_ variables (the test harness sets SLUICE_BIN) are not settings and are ignored;
 * --help and --version are never read from the environment. */
static void test_unrelated_env(void **state) {
  (void)state;
  sl_options_t opt;
  char err[256];
  setenv("SLUICE_BIN", "/usr/bin/sluice", 1);
  setenv("SLUICE_FOO", "bar", 1);
  setenv("SLUICE_HELP", "1", 1);
  setenv("SLUICE_VERSION", "1", 1);
  assert_int_equal(parse(&opt, err, sizeof err, NULL), 0);
  assert_int_equal(opt.show_help, 0);
  assert_int_equal(opt.show_version, 0);
  sl__options_free(&opt);
}

/* --help and --version work even when the environment holds a bad value. */
static void test_help_and_version(void **state) {
  (void)state;
  sl_options_t opt;
  char err[256];
  setenv("SLUICE_HISTORY_SIZE", "abc", 1);
  setenv("SLUICE_CONFIG", "/nonexistent/sluice.conf", 1);
  assert_int_equal(parse(&opt, err, sizeof err, "--help", NULL), 0);
  assert_int_equal(opt.show_help, 1);
  sl__options_free(&opt);
  assert_int_equal(parse(&opt, err, sizeof err, "-h", NULL), 0);
  assert_int_equal(opt.show_help, 1);
  sl__options_free(&opt);
  assert_int_equal(parse(&opt, err, sizeof err, "--heartbeat", "x", "--version", NULL), 0);
  assert_int_equal(opt.show_version, 1);
  assert_int_equal(opt.show_help, 0);
  sl__options_free(&opt);
  /* ...but not when the command line itself is wrong. */
  assert_int_equal(parse(&opt, err, sizeof err, "--help", "--nope", NULL), -EINVAL);
  assert_non_null(strstr(err, "'--nope'"));
}

static void test_listen(void **state) {
  (void)state;
  sl_options_t opt;
  char err[256];
  assert_int_equal(parse(&opt, err, sizeof err, "--listen", "127.0.0.1:8080", "--listen=[::1]:0",
                         "--listen", "localhost:65535", "--listen", "[2001:db8::1]:443",
                         "--listen", "0.0.0.0:80,[::]:81", "--listen", "[::ffff:10.0.0.1]:82",
                         NULL), 0);
  static const char *const want[] = {"127.0.0.1:8080", "[::1]:0", "localhost:65535",
                                     "[2001:db8::1]:443", "0.0.0.0:80", "[::]:81",
                                     "[::ffff:10.0.0.1]:82"};
  assert_int_equal(opt.hub.listen_count, 7);
  for (unsigned i = 0; i < 7; i++) assert_string_equal(opt.hub.listen[i], want[i]);
  sl__options_free(&opt);

  static const char *const bad[] = {
    "127.0.0.1",        "127.0.0.1:",       ":8080",           "127.0.0.1:65536",
    "127.0.0.1:-1",     "127.0.0.1:80x",    "127.0.0.1:+80",   "1.2.3:80",
    "256.1.1.1:80",     "example.com:80",   "::1:80",          "[::1]",
    "[::1]:",           "[::1]80",          "[::1:80",         "[]:80",
    "[127.0.0.1]:80",   "[::1]:99999",      "localhost",       "localhost:",
    "127.0.0.1:80,",    "127.0.0.1:80 80",  "[fe80::1%eth0]:80", "LOCALHOST:1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = parse(&opt, err, sizeof err, "--listen", bad[i], NULL);
    if (rc != -EINVAL || strstr(err, "--listen: '") != err)
      fail_msg("'%s' gave rc %d, message \"%s\"", bad[i], rc, err);
  }

  /* Up to SL_MAX_LISTEN addresses, and not one more. */
  char list[SL_MAX_LISTEN * 20 + 20] = "";
  for (unsigned i = 0; i < SL_MAX_LISTEN; i++) {
    char one[24];
    snprintf(one, sizeof one, "%s127.0.0.1:%u", i ? "," : "", 9000 + i);
    strcat(list, one);
  }
  assert_int_equal(parse(&opt, err, sizeof err, "--listen", list, NULL), 0);
  assert_int_equal(opt.hub.listen_count, SL_MAX_LISTEN);
  assert_string_equal(opt.hub.listen[SL_MAX_LISTEN - 1], "127.0.0.1:9015");
  sl__options_free(&opt);
  assert_int_equal(parse(&opt, err, sizeof err, "--listen", list, "--listen", "[::1]:1", NULL),
                   -EINVAL);
  assert_non_null(strstr(err, "--listen: more than 16 addresses"));
}

static void test_sizes_and_seconds(void **state) {
  (void)state;
  static const struct {
    const char *text;
    size_t want;
  } sizes[] = {
    {"1024", 1024}, {"1K", 1024}, {"1k", 1024}, {"3M", 3u << 20}, {"2m", 2u << 20},
    {"1G", 1u << 30}, {"0001025", 1025}, {"4096K", 4u << 20},
  };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    sl_options_t opt;
    char err[256];
    assert_int_equal(parse(&opt, err, sizeof err, "--max-queue", sizes[i].text, NULL), 0);
    assert_int_equal(opt.hub.max_queue, sizes[i].want);
    sl__options_free(&opt);
  }
  static const struct {
    const char *text;
    double want;
  } secs[] = {
    {"0", 0}, {"0.5", 0.5}, {".25", 0.25}, {"2.", 2}, {"007", 7}, {"1000000000", 1e9},
    {"86400.125", 86400.125},
  };
  for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
    sl_options_t opt;
    char err[256];
    assert_int_equal(parse(&opt, err, sizeof err, "--drain-delay", secs[i].text, NULL), 0);
    assert_true(opt.hub.drain_delay == secs[i].want);
    sl__options_free(&opt);
  }
}

/* Stored strings are copies: they outlive the argv and environment they came from. */
static void test_strings_are_owned(void **state) {
  (void)state;
  sl_options_t opt;
  char err[256], flag[] = "--jwt-key=secret", addr[] = "127.0.0.1:1";
  setenv("SLUICE_JWT_ISSUER", "issuer", 1);
  char *argv[] = {"sluice", flag, "--listen", addr, NULL};
  assert_int_equal(sl__options_parse(&opt, 4, argv, err, sizeof err), 0);
  memset(flag, 'x', sizeof flag - 1);
  memset(addr, 'x', sizeof addr - 1);
  setenv("SLUICE_JWT_ISSUER", "changed", 1);
  unsetenv("SLUICE_JWT_ISSUER");
  assert_string_equal(opt.hub.jwt_key, "secret");
  assert_string_equal(opt.hub.listen[0], "127.0.0.1:1");
  assert_string_equal(opt.hub.jwt_issuer, "issuer");
  assert_true(opt.owned_count >= 3);
  sl__options_free(&opt);
}

static char *capture(void (*fn)(FILE *)) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  fn(f);
  fclose(f);
  return buf;
}

static void test_usage(void **state) {
  (void)state;
  char *text = capture(sl__options_usage);
  static const char *const want[] = {
    "--listen HOST:PORT", "127.0.0.1:8080", "--workers", "--jwt-key", "--publisher-jwt-key",
    "--subscriber-jwt-key", "--jwt-audience", "--jwt-issuer", "--anonymous", "--history-size",
    "(default 10000)", "--heartbeat SECONDS", "(default 15s)", "--max-queue BYTES",
    "(default 4M)", "--max-body", "(default 1M)", "--write-timeout", "--header-timeout",
    "--idle-timeout", "--drain-delay", "--shutdown-timeout", "(default 25s)",
    "--reconnect-spread", "--linger", "--config FILE", "--log-file", "--verbose", "--help",
    "--version", "SLUICE_<NAME>", "SLUICE_CONFIG", "sluice token", "--publish TOPIC",
    "--subscribe TOPIC", "--exp SECONDS", "K, M or G",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (strstr(text, want[i]) == NULL) fail_msg("--help lacks \"%s\"", want[i]);
  for (char *line = text; *line;) {
    size_t len = strcspn(line, "\n");
    if (len > 79) fail_msg("--help line longer than 79 columns: %.*s", (int)len, line);
    line += len + (line[len] == '\n');
  }
  free(text);
}

/* Runs sl__token_command("token", args...) and captures both streams. */
static int token(char **out, char **errout, ...) {
  char *argv[MAX_ARGS];
  int argc = 0;
  size_t olen, elen;
  va_list ap;
  argv[argc++] = "token";
  va_start(ap, errout);
  for (char *a; (a = va_arg(ap, char *)) != NULL;) {
    assert_true(argc < MAX_ARGS);
    argv[argc++] = a;
  }
  va_end(ap);
  argv[argc] = NULL;
  FILE *o = open_memstream(out, &olen);
  FILE *e = open_memstream(errout, &elen);
  assert_non_null(o);
  assert_non_null(e);
  int rc = sl__token_command(argc, argv, o, e);
  fclose(o);
  fclose(e);
  return rc;
}

static void test_token_usage_errors(void **state) {
  (void)state;
  static const struct {
    const char *args[4];
    const char *want;
  } cases[] = {
    {{NULL}, "grant nothing"},
    {{"--key", "k"}, "grant nothing"},
    {{"--publish", "*"}, "no signing key"},
    {{"--key"}, "--key: missing value"},
    {{"--key", "k", "--publish"}, "--publish: missing value"},
    {{"--key", "--publish", "x"}, "--key: missing value"},
    {{"--key=", "--publish", "x"}, "--key: empty value"},
    {{"--key", "k", "--subscribe="}, "--subscribe: empty value"},
    {{"--key", "k", "--sub", "x"}, "unknown flag '--sub'"},
    {{"--key", "k", "x"}, "unexpected argument 'x'"},
    {{"--key", "k", "--exp", "abc"}, "--exp: 'abc' is not a number of seconds"},
    {{"--key", "k", "--exp=-1"}, "--exp: '-1' is not"},
    {{"--key", "k", "--exp", "1.5"}, "--exp: '1.5' is not"},
    {{"--key", "k", "--exp", "99999999999"}, "--exp: '99999999999' is not"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *out, *err;
    int rc = token(&out, &err, cases[i].args[0], cases[i].args[1], cases[i].args[2],
                   cases[i].args[3], NULL);
    if (rc != 2 || strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: rc %d, stderr \"%s\", wanted \"%s\"", i, rc, err, cases[i].want);
    assert_string_equal(out, "");
    free(out);
    free(err);
  }

  /* One token cannot carry both roles when the environment gives each role its own key. */
  char *out, *err;
  setenv("SLUICE_PUBLISHER_JWT_KEY", "pk", 1);
  setenv("SLUICE_SUBSCRIBER_JWT_KEY", "sk", 1);
  assert_int_equal(token(&out, &err, "--publish", "a", "--subscribe", "b", NULL), 2);
  assert_non_null(strstr(err, "differ"));
  free(out);
  free(err);
  unsetenv("SLUICE_PUBLISHER_JWT_KEY");
  unsetenv("SLUICE_SUBSCRIBER_JWT_KEY");

  assert_int_equal(token(&out, &err, "--help", NULL), 0);
  assert_non_null(strstr(out, "--subscribe TOPIC"));
  assert_string_equal(err, "");
  free(out);
  free(err);
}

static int is_base64url(const char *s, size_t len) {
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
      return 0;
  return 1;
}

/* Checks the printed token's shape, verifies it with key for role, and returns the claims. */
static void check_token(const char *out, const char *key, sl_role_t role, const char *aud,
                        const char *iss, sl_claims_t *claims) {
  size_t len = strlen(out);
  assert_true(len > 2);
  assert_int_equal(out[len - 1], '\n');
  len--;
  const char *dot1 = memchr(out, '.', len);
  assert_non_null(dot1);
  const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - out));
  assert_non_null(dot2);
  assert_true(is_base64url(out, (size_t)(dot1 - out)));
  assert_true(is_base64url(dot1 + 1, (size_t)(dot2 - dot1 - 1)));
  assert_true(is_base64url(dot2 + 1, len - (size_t)(dot2 + 1 - out)));

  sl_auth_t *auth;
  const char *why = NULL;
  sl_auth_config_t cfg = {.key = {key, key}, .audience = aud, .issuer = iss, .legacy = 1,
                          .allow_weak = 1};
  assert_int_equal(sl__auth_new(&auth, &cfg, NULL, 0), 0);
  int rc = sl__auth_verify(auth, role, out, len, (int64_t)time(NULL), claims, &why);
  if (rc != 0) fail_msg("token does not verify: %d (%s)", rc, why ? why : "");
  sl__auth_free(auth);
}

static void test_token_mints(void **state) {
  (void)state;
  char *out, *err;
  sl_claims_t claims;
  int64_t now = (int64_t)time(NULL);

  assert_int_equal(token(&out, &err, "--key", "k1", "--publish", "https://e.x/a", "--publish=*",
                         "--exp", "60", NULL), 0);
  assert_string_equal(err, "");
  check_token(out, "k1", SL_ROLE_PUBLISHER, NULL, NULL, &claims);
  /* The grant is carried twice (authorization_details and the legacy claim), so count only
   * that both selectors arrived. */
  assert_true(claims.publish_count >= 2);
  assert_int_equal(sl__selectors_match(claims.publish, claims.publish_count, "https://e.x/a", 13), 1);
  assert_int_equal(sl__selectors_match(claims.publish, claims.publish_count, "https://e.x/b", 13), 1);
  assert_int_equal(claims.subscribe_count, 0);
  assert_true(claims.exp >= now + 59 && claims.exp <= now + 61);
  sl__claims_free(&claims);
  free(out);
  free(err);

  /* A wrong key fails verification: check_token is not a formality. */
  assert_int_equal(token(&out, &err, "--key", "k1", "--subscribe", "t", NULL), 0);
  sl_auth_t *auth;
  const char *why;
  sl_auth_config_t other = {.key = {"other", "other"}, .legacy = 1, .allow_weak = 1};
  assert_int_equal(sl__auth_new(&auth, &other, NULL, 0), 0);
  assert_int_equal(sl__auth_verify(auth, SL_ROLE_SUBSCRIBER, out, strlen(out) - 1, now, &claims,
                                  &why), -EACCES);
  sl__auth_free(auth);
  free(out);
  free(err);

  /* The key from the environment, audience, issuer, and no expiry. */
  setenv("SLUICE_JWT_KEY", "env-key", 1);
  assert_int_equal(token(&out, &err, "--subscribe", "https://e.x/{id}", "--exp", "0",
                         "--audience", "aud", "--issuer=iss", NULL), 0);
  check_token(out, "env-key", SL_ROLE_SUBSCRIBER, "aud", "iss", &claims);
  assert_true(claims.subscribe_count >= 1);
  assert_int_equal(claims.publish_count, 0);
  assert_int_equal(claims.exp, 0);
  sl__claims_free(&claims);
  free(out);
  free(err);

  /* A role's own key wins over the shared one. */
  setenv("SLUICE_PUBLISHER_JWT_KEY", "pub-key", 1);
  assert_int_equal(token(&out, &err, "--publish", "x", NULL), 0);
  check_token(out, "pub-key", SL_ROLE_PUBLISHER, NULL, NULL, &claims);
  sl__claims_free(&claims);
  free(out);
  free(err);
  assert_int_equal(token(&out, &err, "--subscribe", "x", NULL), 0);
  check_token(out, "env-key", SL_ROLE_SUBSCRIBER, NULL, NULL, &claims);
  sl__claims_free(&claims);
  free(out);
  free(err);
  unsetenv("SLUICE_PUBLISHER_JWT_KEY");
  unsetenv("SLUICE_JWT_KEY");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_defaults, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_every_flag_both_forms, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_every_setting_from_env, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_every_setting_from_config_file, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_booleans, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_precedence, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_config_file_syntax, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_config_file_errors, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_bad_values, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_origin_lists, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_bad_env, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_unrelated_env, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_help_and_version, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_listen, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_sizes_and_seconds, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_strings_are_owned, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_usage, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_token_usage_errors, clear_env, clear_env),
    cmocka_unit_test_setup_teardown(test_token_mints, clear_env, clear_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
