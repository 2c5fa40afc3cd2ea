/* log.c — the log sink: timestamped lines, written whole with one write(2) so records from
 * different threads never interleave. Owns the log file descriptor. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd = 2;
static int log_level = SL_LOG_INFO;
static char *log_path;

static int open_path(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return fd < 0 ? -errno : fd;
}

int sl__log_open(const char *path, sl_log_level_t level) {
  log_level = level;
  if (path == NULL)
    return 0;
  int fd = open_path(path);
  if (fd < 0)
    return fd;
  free(log_path);
  log_path = strdup(path);
  if (log_path == NULL) {
    close(fd);
    return -ENOMEM;
  }
  atomic_store(&log_fd, fd);
  return 0;
}

/* The new file takes the old one's descriptor number (dup2 replaces it atomically): other
 * threads keep writing to the same number, and no number they might still use is ever closed,
 * where a closed one could be reused by accept() and a log line land in a client's socket. */
int sl__log_reopen(void) {
  if (log_path == NULL)
    return 0;
  int fd = open_path(log_path);
  if (fd < 0)
    return fd;
  int r = dup2(fd, atomic_load(&log_fd)) < 0 ? -errno : 0;
  close(fd);
  return r;
}

int sl__log_enabled(sl_log_level_t level) {
  return (int)level <= log_level;
}

void sl__log(sl_log_level_t level, const char *fmt, ...) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  if (!sl__log_enabled(level))
    return;
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ sluice[%d] %s: ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, (int)getpid(), names[level]);
  if (n < 0 || (size_t)n >= sizeof line / 2)
    n = 0; /* cannot happen with this fixed-size prefix; a line without it beats an overflow */
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(atomic_load(&log_fd), line, len);
  (void)w;
}
