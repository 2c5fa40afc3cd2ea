/* token.c — `sluice token`: mints a signed development token from the command line, so nobody
 * needs another tool to try the hub. The daemon's, not libsluice's: it signs with the same auth
 * layer the hub verifies with. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "daemon/options.h"

#define TOKEN_DEFAULT_EXP 3600 /* seconds */
#define TOKEN_MAX_EXP INT64_C(3153600000) /* 100 years: keeps now + exp far from overflow */

static void token_usage(FILE *out) {
  fputs("Usage: sluice token [--key KEY] [--publish TOPIC]... [--subscribe TOPIC]...\n"
        "                    [--exp SECONDS] [--audience AUD] [--issuer ISS]\n"
        "Prints an HS256 JWT access token (typ at+jwt) granting the given topics. At least one\n"
        "--publish or --subscribe is required. Without --key the key comes from\n"
        "SLUICE_PUBLISHER_JWT_KEY (when publishing is granted), SLUICE_SUBSCRIBER_JWT_KEY (when\n"
        "only subscribing is), or SLUICE_JWT_KEY.\n"
        "--exp is the lifetime in seconds (default 3600; 0 = never expires, which only a hub\n"
        "with --jwt-legacy accepts). A hub in the spec profile also wants --audience (its\n"
        "--jwt-audience, else its public URL) and --issuer.\n", out);
}

static const char *env_value(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The key for a token when --key is absent: each role's own key if set, else the shared one.
 * A token granting both roles needs one key that both accept. */
static const char *token_key_from_env(size_t npublish, size_t nsubscribe, FILE *errout) {
  const char *shared = env_value("SLUICE_JWT_KEY");
  const char *pub = env_value("SLUICE_PUBLISHER_JWT_KEY");
  const char *sub = env_value("SLUICE_SUBSCRIBER_JWT_KEY");
  if (pub == NULL) pub = shared;
  if (sub == NULL) sub = shared;
  if (npublish > 0 && nsubscribe > 0 && pub != NULL && sub != NULL && strcmp(pub, sub) != 0) {
    fputs("sluice token: the publisher and subscriber keys in the environment differ, so no "
          "one token can grant both; mint two tokens or pass --key\n", errout);
    return NULL;
  }
  const char *key = npublish > 0 ? pub : sub;
  if (key == NULL)
    fputs("sluice token: no signing key: pass --key KEY or set SLUICE_JWT_KEY\n", errout);
  return key;
}

int sl__token_command(int argc, char **argv, FILE *out, FILE *errout) {
  const char **publish = NULL, **subscribe = NULL;
  size_t npublish = 0, nsubscribe = 0;
  const char *key = NULL, *audience = NULL, *issuer = NULL;
  int64_t exp = TOKEN_DEFAULT_EXP;
  char buf[SL_SHOWN_VALUE_MAX + 8];
  char *token = NULL;
  int status = 2, rc;

  publish = calloc(argc > 0 ? (size_t)argc : 1, sizeof *publish);
  subscribe = calloc(argc > 0 ? (size_t)argc : 1, sizeof *subscribe);
  if (publish == NULL || subscribe == NULL) {
    fputs("sluice token: out of memory\n", errout);
    status = 1;
    goto free_lists;
  }
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      token_usage(out);
      status = 0;
      goto free_lists;
    }
    if (strncmp(arg, "--", 2) != 0) {
      fprintf(errout, "sluice token: unexpected argument '%s' (see sluice token --help)\n",
              sl__options_shown(arg, buf, sizeof buf));
      goto free_lists;
    }
    sl_split_flag_t s;
    sl__options_split_flag(arg, &s);
    static const char *const known[] = {"key", "publish", "subscribe", "exp", "audience",
                                        "issuer"};
    size_t which = 0;
    while (which < 6 && !(strlen(known[which]) == s.name_len &&
                          memcmp(known[which], s.name, s.name_len) == 0))
      which++;
    if (which == 6) {
      fprintf(errout, "sluice token: unknown flag '%s' (see sluice token --help)\n",
              sl__options_shown(arg, buf, sizeof buf));
      goto free_lists;
    }
    const char *value = s.value;
    if (!s.has_value) {
      if (!sl__options_takes_next(argc, argv, i)) {
        fprintf(errout, "sluice token: --%s: missing value\n", known[which]);
        goto free_lists;
      }
      value = argv[++i];
    }
    if (value[0] == '\0') {
      fprintf(errout, "sluice token: --%s: empty value\n", known[which]);
      goto free_lists;
    }
    switch (which) {
      case 0: key = value; break;
      case 1: publish[npublish++] = value; break;
      case 2: subscribe[nsubscribe++] = value; break;
      case 3: {
        uint64_t u;
        if (sl__options_parse_uint(value, strlen(value), (uint64_t)TOKEN_MAX_EXP, &u) != 0) {
          fprintf(errout,
                  "sluice token: --exp: '%s' is not a number of seconds from 0 to %" PRId64 "\n",
                  sl__options_shown(value, buf, sizeof buf), TOKEN_MAX_EXP);
          goto free_lists;
        }
        exp = (int64_t)u;
        break;
      }
      case 4: audience = value; break;
      default: issuer = value; break;
    }
  }
  if (npublish == 0 && nsubscribe == 0) {
    fputs("sluice token: the token would grant nothing: give --publish TOPIC and/or "
          "--subscribe TOPIC\n", errout);
    goto free_lists;
  }
  if (key == NULL) key = token_key_from_env(npublish, nsubscribe, errout);
  if (key == NULL) goto free_lists;

  rc = sl__token_mint(key, publish, npublish, subscribe, nsubscribe, exp, audience, issuer,
                         &token);
  if (rc != 0) {
    fprintf(errout, "sluice token: cannot mint the token: %s\n", strerror(-rc));
    status = rc == -EINVAL ? 2 : 1;
    goto free_lists;
  }
  fprintf(out, "%s\n", token);
  status = fflush(out) == 0 && !ferror(out) ? 0 : 1;
  free(token);

free_lists:
  free(publish);
  free(subscribe);
  return status;
}
