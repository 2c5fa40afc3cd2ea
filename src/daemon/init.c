/* init.c — what a sluice that is its PID namespace's first process (a container's PID 1) becomes
 * after a live upgrade. When PID 1 exits, the kernel ends every other process of the namespace,
 * the new sluice with them; so this one stays, as a small init: it forwards the signals a
 * container runtime sends (SIGTERM, SIGINT, SIGHUP, SIGUSR2) to the sluice that serves now (the
 * pid in --pid-file, else its newest child), reaps every orphan, and exits with the serving
 * process's status once no process is left. Its hub is freed first: what stays is a few pages. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/init.h"

static long read_pid(const char *path) {
  FILE *f = path ? fopen(path, "r") : NULL;
  long pid = -1;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1)
      pid = -1;
    fclose(f);
  }
  return pid;
}

/* The newest child of this process (the highest pid is a good enough guess: the last one the
 * serving sluice started is a grandchild reparented here, and pids grow until they wrap). */
static pid_t newest_child(void) {
  DIR *d = opendir("/proc");
  pid_t best = -1;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    char path[64], buf[512];
    long pid = strtol(e->d_name, NULL, 10);
    if (pid <= 1)
      continue;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
      continue;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')'); /* the name may hold spaces */
    char state;
    long ppid;
    if (close_paren && sscanf(close_paren + 1, " %c %ld", &state, &ppid) == 2 &&
        ppid == (long)getpid() && state != 'Z' && pid > best)
      best = (pid_t)pid;
  }
  if (d)
    closedir(d);
  return best;
}

static pid_t serving(const char *pid_file) {
  long pid = read_pid(pid_file);
  if (pid > 1 && kill((pid_t)pid, 0) == 0)
    return (pid_t)pid;
  return newest_child();
}

int sl__init_forward(const char *pid_file) {
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR2, SIGCHLD};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    sigaddset(&set, sigs[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);
  sl__log(SL_LOG_INFO, "this process is PID 1: it stays as the container's init, forwarding "
          "signals to the sluice that serves and reaping, until no process is left");
  int status = 0;
  for (;;) {
    /* Reap first: orphans of every upgrade end up here. */
    for (;;) {
      int st;
      pid_t p = waitpid(-1, &st, WNOHANG);
      if (p > 0) {
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        continue;
      }
      if (p < 0 && errno == ECHILD)
        return status; /* nobody left */
      break;
    }
    siginfo_t info;
    int sig = sigwaitinfo(&set, &info);
    if (sig < 0 || sig == SIGCHLD)
      continue;
    pid_t to = serving(pid_file);
    if (to > 1 && kill(to, sig) == 0)
      sl__log(SL_LOG_INFO, "%s forwarded to pid %ld", strsignal(sig), (long)to);
    else
      sl__log(SL_LOG_WARN, "%s: no sluice to forward it to", strsignal(sig));
  }
}
