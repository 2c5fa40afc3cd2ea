/* bench_proc.c — /proc readers for the server under test (see bench_proc.h). The comm field of
 * /proc/PID/stat may contain spaces and parentheses, so fields are counted from its last ')'.
 */
#include "bench_proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -errno;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  return 0;
}

static int sample_one(pid_t pid, double *cpu, uint64_t *rss_kb) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int rc = read_file(path, buf, sizeof buf);
  if (rc < 0)
    return rc;
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return -EINVAL;
  /* After ")": field 3 (state) onwards; utime and stime are fields 14 and 15. */
  unsigned long long utime = 0, stime = 0;
  int field = 2;
  char *save = NULL;
  for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    field++;
    if (field == 14)
      utime = strtoull(tok, NULL, 10);
    else if (field == 15) {
      stime = strtoull(tok, NULL, 10);
      break;
    }
  }
  if (field < 15)
    return -EINVAL;
  *cpu = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);

  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  rc = read_file(path, buf, sizeof buf);
  if (rc < 0)
    return rc;
  char *vm = strstr(buf, "VmRSS:");
  *rss_kb = vm ? strtoull(vm + 6, NULL, 10) : 0;
  return 0;
}

int bench_proc_sample(const pid_t *pids, int n, bench_proc_sample_t *out) {
  int first_err = 0;
  memset(out, 0, sizeof *out);
  out->ok = n > 0;
  for (int i = 0; i < n; i++) {
    double cpu = 0;
    uint64_t rss = 0;
    int rc = sample_one(pids[i], &cpu, &rss);
    if (rc < 0) {
      out->ok = 0;
      if (first_err == 0)
        first_err = rc;
      continue;
    }
    out->cpu_seconds += cpu;
    out->rss_kb += rss;
  }
  return first_err;
}
