/* log.h — one-line log records to stderr or a log file, safe from every thread. The file can be
 * reopened (SIGHUP) without losing a record. */
#ifndef SL_LOG_H
#define SL_LOG_H

typedef enum { SL_LOG_ERROR = 0, SL_LOG_WARN = 1, SL_LOG_INFO = 2, SL_LOG_DEBUG = 3 } sl_log_level_t;

/* path NULL = stderr. 0 or a negative errno. */
int sl__log_open(const char *path, sl_log_level_t level);
int sl__log_reopen(void);
void sl__log(sl_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sl__log_enabled(sl_log_level_t level);

#endif
