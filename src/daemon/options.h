/* options.h — the daemon's command line: flags, SLUICE_<NAME> environment variables and a
 * config file (--config FILE) all fill one sl_options_t, in that order of precedence (flags win,
 * then environment, then file, then SL_DEFAULT_*). Owns the strings it stores in hub.
 */
#ifndef SL_OPTIONS_H
#define SL_OPTIONS_H

#include <stdint.h>
#include <stdio.h>
#include "sluice.h"

typedef struct sl_options_s {
  sl_config_t hub;          /* the hub configuration the flags describe */
  const char *config_file;  /* --config */
  const char *log_file;     /* --log-file: NULL = stderr; reopened on SIGHUP */
  int verbose;              /* --verbose: log each connection */
  const char *pid_file;     /* --pid-file */
  const char *exec_path;    /* --exec: the binary SIGUSR2 starts; NULL = this one's path */
  double upgrade_timeout;   /* --upgrade-timeout, seconds */
  int show_help;            /* --help */
  int show_version;         /* --version */
  char **owned;             /* strings this struct allocated */
  size_t owned_count;
} sl_options_t;

/* Parses argv (argv[0] is the program) and the environment. 0, or -EINVAL with a one-line
 * message naming the offending flag or value in err (the daemon prints it and exits 2). */
int sl__options_parse(sl_options_t *opt, int argc, char **argv, char *err, size_t errlen);
void sl__options_free(sl_options_t *opt);
void sl__options_usage(FILE *out);

/* Values are echoed in messages at most this long, so one bad value keeps the message one line. */
#define SL_SHOWN_VALUE_MAX 64

/* A "--name" or "--name=value" argument, taken apart. */
typedef struct sl_split_flag_s {
  const char *name;
  size_t name_len;
  const char *value;
  int has_value;
} sl_split_flag_t;

void sl__options_split_flag(const char *arg, sl_split_flag_t *out);
/* 1 when argv[i + 1] is a value for flag argv[i] (it exists and is not itself a flag). */
int sl__options_takes_next(int argc, char **argv, int i);

/* Shared with token.c: v made safe to echo in a one-line message (control characters become '?',
 * long values are cut), and a plain decimal number up to max (-EINVAL, -ERANGE). */
const char *sl__options_shown(const char *v, char *buf, size_t cap);
int sl__options_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out);

#define SL_DEFAULT_UPGRADE_TIMEOUT 10.0
/* Beside the pid file, the daemon writes why an upgrade failed, for `sluice upgrade`. */
#define SL_UPGRADE_STATUS_SUFFIX ".upgrade-failed"

/* `sluice upgrade --pid-file F` (upgrade.c): asks the hub in F for a live upgrade and waits for
 * its end. Returns the exit code (0 upgraded, 1 failed, 2 bad usage). */
int sl__upgrade_command(int argc, char **argv, FILE *out, FILE *errout);

/* `sluice token ...` (token.c): prints a signed JWT. Returns the process exit code (0, or 2 on bad usage). */
int sl__token_command(int argc, char **argv, FILE *out, FILE *errout);

#endif
