/* upgrade.c — `sluice upgrade --pid-file FILE [--timeout SECONDS]`: the friendly front end of a
 * live upgrade. It sends SIGUSR2 to the hub the pid file names and waits until the file names
 * another live process (the new one writes it once it took every connection over). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/options.h"

#define POLL_MS 50
#define DEFAULT_WAIT (SL_DEFAULT_UPGRADE_TIMEOUT + 5.0)

static long read_pid(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  long pid = -1;
  if (fscanf(f, "%ld", &pid) != 1)
    pid = -1;
  fclose(f);
  return pid;
}

static int alive(long pid) {
  return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 and the line the hub wrote when an upgrade failed, 0 when there is none (yet). */
static int read_status(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  int got = fgets(out, (int)cap, f) != NULL;
  fclose(f);
  if (got)
    out[strcspn(out, "\n")] = '\0';
  return got && out[0];
}

static int usage(FILE *errout, const char *why) {
  fprintf(errout, "sluice upgrade: %s\nusage: sluice upgrade --pid-file FILE [--timeout SECONDS]\n",
          why);
  return 2;
}

int sl__upgrade_command(int argc, char **argv, FILE *out, FILE *errout) {
  const char *pid_file = NULL;
  double timeout = DEFAULT_WAIT;
  for (int i = 1; i < argc; i++) {
    sl_split_flag_t f;
    sl__options_split_flag(argv[i], &f);
    const char *value = f.has_value ? f.value : sl__options_takes_next(argc, argv, i) ? argv[++i] : NULL;
    if (f.name_len == 8 && strncmp(f.name, "pid-file", 8) == 0 && value && value[0])
      pid_file = value;
    else if (f.name_len == 7 && strncmp(f.name, "timeout", 7) == 0 && value) {
      char *end;
      timeout = strtod(value, &end);
      if (*end != '\0' || !(timeout > 0 && timeout < 1e6))
        return usage(errout, "--timeout: give a number of seconds above 0");
    } else {
      return usage(errout, "unknown flag or missing value");
    }
  }
  if (pid_file == NULL)
    return usage(errout, "--pid-file is required");
  long old = read_pid(pid_file);
  if (old <= 0) {
    fprintf(errout, "sluice upgrade: %s names no process\n", pid_file);
    return 1;
  }
  char status[4096];
  if (snprintf(status, sizeof status, "%s" SL_UPGRADE_STATUS_SUFFIX, pid_file) >= (int)sizeof status)
    return usage(errout, "--pid-file: the path is too long");
  unlink(status); /* an earlier upgrade's */
  if (kill((pid_t)old, SIGUSR2)) {
    fprintf(errout, "sluice upgrade: cannot signal pid %ld: %s\n", old, strerror(errno));
    return 1;
  }
  double until = now_s() + timeout;
  while (now_s() < until) {
    long pid = read_pid(pid_file);
    if (pid > 0 && pid != old && alive(pid)) {
      fprintf(out, "upgraded: pid %ld -> %ld\n", old, pid);
      return 0;
    }
    /* The hub says when an upgrade failed (and serves on): no need to wait for the timeout. */
    char why[512];
    if (read_status(status, why, sizeof why)) {
      fprintf(errout, "sluice upgrade: %s; pid %ld still serves (see its log)\n", why, old);
      return 1;
    }
    if (!alive(old) && (pid <= 0 || pid == old)) {
      fprintf(errout, "sluice upgrade: pid %ld ended and nothing took over (see its log)\n", old);
      return 1;
    }
    usleep(POLL_MS * 1000);
  }
  fprintf(errout, "sluice upgrade: no new process took over within %.0f s; pid %ld %s (see its "
          "log)\n", timeout, old, alive(old) ? "still serves" : "has ended");
  return 1;
}
