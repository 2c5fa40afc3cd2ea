/* bench_run.c — sluice-bench's coordinator. It raises the file limit, forks the workers that hold
 * the subscriber connections (as many as the per-process file limit requires), then runs the
 * publisher on its own loop and walks the phases: CONNECT (every worker says CONNECTED), then
 * PUBLISH (and SIGTERM after --signal-after acks) or IDLE, DRAIN (--drain-wait after the last
 * ack), COLLECT (every worker sends its RESULT), and prints the report. Churn runs go straight
 * to COLLECT. The global deadline (--timeout) ends any phase; workers that do not answer are
 * killed by pid.
 */
#include "bench_run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "bench_ipc.h"
#include "bench_proc.h"
#include "bench_pub.h"
#include "bench_report.h"
#include "bench_sub.h"
#include "bench_target.h"

#define FD_RESERVE 1000          /* descriptors a worker keeps for itself */
/* Connections per source address. One address holds ~28k (the ephemeral port range), but
 * connect() searches that range for a free port, and with tens of thousands of ports in use or
 * in TIME_WAIT the search dominates: measured here, 19k connections took 18 s (12 s of system
 * time) from one address and 3.8 s from eight. */
#define PER_SOURCE 2500
#define CHURN_SOURCES 16
#define KILL_GRACE_MS 10000      /* after the deadline, workers get this long to report */
#define PROGRESS_MS 250

enum { PH_CONNECT, PH_PUBLISH, PH_IDLE, PH_DRAIN, PH_COLLECT, PH_DONE };
static const char *phase_names[] = {"connect", "publish", "idle", "drain", "collect", "done"};

typedef struct worker_ref_s {
  pid_t pid;
  int fd;
  uv_poll_t poll;
  int alive;            /* the socketpair is open */
  int connected;        /* CONNECTED received */
  int reported;         /* RESULT received */
  bench_msg_connected_t conn;
  bench_msg_progress_t progress;
  bench_result_t result;
} worker_ref_t;

typedef struct run_s {
  uv_loop_t loop;
  const bench_config_t *cfg;
  const bench_targets_t *targets;
  worker_ref_t *w;
  uint32_t nworkers;
  uint32_t nsources;
  uint32_t run_id;
  int phase;
  int progress;
  int timed_out;
  int signaled;
  int upgraded;               /* --upgrade-after: SIGUSR2 was sent */
  int pub_started;
  uint64_t t_start_ns;
  uint64_t t_connected_ns;
  uint64_t sigterm_ns;
  bench_pub_t pub;
  uv_timer_t phase_timer;
  uv_timer_t deadline_timer;
  uv_timer_t progress_timer;
  bench_proc_sample_t base, connected, end;
  int have_end;
} run_t;

static void enter_collect(run_t *r, int deadline);

static uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

static void raise_nofile(rlim_t *limit) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    *limit = rl.rlim_cur;
  } else {
    *limit = 1024;
  }
}

/* --- progress bar ---------------------------------------------------------------------------- */

static void draw_progress(run_t *r, int final) {
  uint64_t conn = 0, deliv = 0, ended = 0, churned = 0;
  for (uint32_t i = 0; i < r->nworkers; i++) {
    conn += r->w[i].progress.connected;
    deliv += r->w[i].progress.delivered;
    ended += r->w[i].progress.ended;
    churned += r->w[i].progress.churned;
  }
  double t = (double)(uv_hrtime() - r->t_start_ns) / 1e9;
  if (final) {
    fputs("\r\033[K", stderr);
    return;
  }
  if (r->cfg->mode == BENCH_MODE_CHURN)
    fprintf(stderr, "\r\033[K[%5.1fs] churn: %llu accepted", t, (unsigned long long)churned);
  else
    fprintf(stderr, "\r\033[K[%5.1fs] %-7s conn %llu/%llu  pub %llu/%llu  ack %llu  deliv %llu%s",
            t, phase_names[r->phase], (unsigned long long)conn,
            (unsigned long long)r->cfg->subscribers, (unsigned long long)r->pub.published,
            (unsigned long long)r->cfg->events, (unsigned long long)r->pub.acked,
            (unsigned long long)deliv, r->signaled ? "  [SIGTERM sent]" : "");
  if (r->signaled)
    fprintf(stderr, "  ended %llu", (unsigned long long)ended);
  fflush(stderr);
}

static void on_progress_timer(uv_timer_t *t) {
  draw_progress(t->data, 0);
}

/* --- phases ---------------------------------------------------------------------------------- */

static void sample_end(run_t *r) {
  if (r->have_end || r->cfg->n_server_pids == 0)
    return;
  bench_proc_sample(r->cfg->server_pids, r->cfg->n_server_pids, &r->end);
  r->have_end = 1;
}

static void send_all(run_t *r, uint32_t type, const void *body, size_t len, const void *extra,
                     size_t extra_len) {
  for (uint32_t i = 0; i < r->nworkers; i++)
    if (r->w[i].alive && !r->w[i].reported)
      bench_ipc_send(r->w[i].fd, type, body, len, extra, extra_len);
}

static void maybe_finish(run_t *r) {
  if (r->phase != PH_COLLECT)
    return;
  for (uint32_t i = 0; i < r->nworkers; i++)
    if (r->w[i].alive && !r->w[i].reported)
      return;
  r->phase = PH_DONE;
  for (uint32_t i = 0; i < r->nworkers; i++)
    if (!uv_is_closing((uv_handle_t *)&r->w[i].poll))
      uv_close((uv_handle_t *)&r->w[i].poll, NULL);
  uv_close((uv_handle_t *)&r->phase_timer, NULL);
  uv_close((uv_handle_t *)&r->deadline_timer, NULL);
  uv_close((uv_handle_t *)&r->progress_timer, NULL);
  bench_pub_close(&r->pub);
}

static void on_kill_timer(uv_timer_t *t) {
  run_t *r = t->data;
  for (uint32_t i = 0; i < r->nworkers; i++) {
    worker_ref_t *w = &r->w[i];
    if (w->alive && !w->reported) {
      kill(w->pid, SIGKILL);
      w->alive = 0;
      uv_poll_stop(&w->poll);
    }
  }
  maybe_finish(r);
}

static void enter_collect(run_t *r, int deadline) {
  if (r->phase >= PH_COLLECT)
    return;
  sample_end(r);
  r->phase = PH_COLLECT;
  if (r->pub_started)
    bench_pub_stop(&r->pub);
  bench_msg_finish_t f = {r->pub.published, (uint64_t)deadline, (r->pub.published + 7) / 8};
  send_all(r, BENCH_MSG_FINISH, &f, sizeof f, r->pub.acked_bits, f.bitmap_len);
  if (deadline) {
    uv_timer_stop(&r->phase_timer);
    uv_timer_start(&r->phase_timer, on_kill_timer, KILL_GRACE_MS, 0);
  }
  maybe_finish(r);
}

static void on_phase_timer(uv_timer_t *t) {
  enter_collect(t->data, 0);
}

static void on_deadline(uv_timer_t *t) {
  run_t *r = t->data;
  if (r->phase >= PH_COLLECT) {
    uv_timer_start(&r->phase_timer, on_kill_timer, KILL_GRACE_MS, 0);
    return;
  }
  r->timed_out = 1;
  bench_warn("deadline (--timeout %.0f s) reached in the %s phase", r->cfg->timeout,
             phase_names[r->phase]);
  enter_collect(r, 1);
}

/* --upgrade-after: SIGUSR2 once, and publishing goes on; a publish connection the server (or,
 * for nginx, its old worker) closes is opened again, as often as it takes. */
static void upgrade_on_ack(run_t *r, bench_pub_t *p) {
  if (r->upgraded || p->acked < r->cfg->upgrade_after)
    return;
  /* The server's counters now: the process measured may be gone once it handed over. */
  sample_end(r);
  r->upgraded = 1;
  p->keep_trying = 1;
  if (kill(r->cfg->server_pids[0], SIGUSR2) < 0)
    bench_warn("SIGUSR2 to %d: %s", (int)r->cfg->server_pids[0], strerror(errno));
}

static void on_ack(bench_pub_t *p) {
  run_t *r = p->data;
  if (r->cfg->upgrade_after) {
    upgrade_on_ack(r, p);
    return;
  }
  if (r->cfg->signal_after == 0 || r->signaled || p->acked < r->cfg->signal_after)
    return;
  /* Read the server's counters now: after SIGTERM it may be gone. */
  sample_end(r);
  r->signaled = 1;
  r->sigterm_ns = uv_hrtime();
  if (r->cfg->keep_publishing)
    p->keep_trying = 1; /* the server comes back on the same port: publish on to it */
  else
    p->no_reconnect = 1;
  if (kill(r->cfg->server_pids[0], SIGTERM) < 0)
    bench_warn("SIGTERM to %d: %s", (int)r->cfg->server_pids[0],
            strerror(errno));
  bench_msg_signaled_t m = {r->sigterm_ns};
  send_all(r, BENCH_MSG_SIGNALED, &m, sizeof m, NULL, 0);
}

static void on_pub_done(bench_pub_t *p) {
  run_t *r = p->data;
  if (r->phase != PH_PUBLISH)
    return;
  r->phase = PH_DRAIN;
  uv_timer_start(&r->phase_timer, on_phase_timer, (uint64_t)(r->cfg->drain_wait * 1000), 0);
}

static void all_connected(run_t *r) {
  r->t_connected_ns = 0;
  for (uint32_t i = 0; i < r->nworkers; i++)
    if (r->w[i].conn.t_done_ns > r->t_connected_ns)
      r->t_connected_ns = r->w[i].conn.t_done_ns;
  if (r->cfg->n_server_pids)
    bench_proc_sample(r->cfg->server_pids, r->cfg->n_server_pids, &r->connected);
  if (r->cfg->mode == BENCH_MODE_IDLE) {
    r->phase = PH_IDLE;
    uv_timer_start(&r->phase_timer, on_phase_timer, (uint64_t)(r->cfg->idle_seconds * 1000), 0);
    return;
  }
  uint64_t connected = 0, failed = 0;
  for (uint32_t i = 0; i < r->nworkers; i++) {
    connected += r->w[i].conn.connected;
    failed += r->w[i].conn.failed;
  }
  if (r->cfg->subscribers > 0 && connected == 0) {
    bench_warn("none of the %llu subscriptions succeeded; not publishing",
               (unsigned long long)failed);
    enter_collect(r, 0);
    return;
  }
  r->phase = PH_PUBLISH;
  r->pub_started = 1;
  bench_pub_start(&r->pub);
}

static void check_connected(run_t *r) {
  if (r->phase != PH_CONNECT)
    return;
  for (uint32_t i = 0; i < r->nworkers; i++)
    if (r->w[i].alive && !r->w[i].connected)
      return;
  all_connected(r);
}

/* --- worker messages ------------------------------------------------------------------------- */

static void on_worker(uv_poll_t *p, int status, int events) {
  worker_ref_t *w = p->data;
  run_t *r = p->loop->data;
  (void)events;
  uint32_t type;
  void *body = NULL;
  size_t len = 0;
  if (status < 0 || bench_ipc_recv(w->fd, &type, &body, &len) < 0) {
    if (!w->reported)
      bench_warn("worker %d ended without a result", (int)w->pid);
    w->alive = 0;
    uv_poll_stop(p);
    check_connected(r);
    maybe_finish(r);
    return;
  }
  if (type == BENCH_MSG_CONNECTED && len == sizeof w->conn) {
    memcpy(&w->conn, body, len);
    w->connected = 1;
    w->progress.connected = w->conn.connected;
    check_connected(r);
  } else if (type == BENCH_MSG_PROGRESS && len == sizeof w->progress) {
    memcpy(&w->progress, body, len);
  } else if (type == BENCH_MSG_RESULT && len == sizeof w->result) {
    memcpy(&w->result, body, len);
    w->reported = 1;
    uv_poll_stop(p);
    maybe_finish(r);
  }
  free(body);
}

/* --- workers --------------------------------------------------------------------------------- */

static int fork_workers(run_t *r) {
  uint64_t n = r->cfg->subscribers;
  uint64_t first = 0;
  fflush(stdout);
  fflush(stderr);
  for (uint32_t i = 0; i < r->nworkers; i++) {
    uint64_t count = n / r->nworkers + (i < n % r->nworkers ? 1 : 0);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
      return -errno;
    pid_t pid = fork();
    if (pid < 0) {
      close(sv[0]);
      close(sv[1]);
      return -errno;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(sv[0]);
      for (uint32_t j = 0; j < i; j++)
        close(r->w[j].fd);
      bench_worker_args_t a = {
        .cfg = r->cfg, .targets = r->targets, .first = first, .count = count,
        .nsources = r->nsources, .run_id = r->run_id, .fd = sv[1], .progress = r->progress,
        .t_start_ns = r->t_start_ns,
      };
      /* exit(), not _exit(): stdio was flushed before fork, and the sanitizers check the
       * worker at exit like any process. */
      exit(bench_worker_main(&a));
    }
    close(sv[1]);
    r->w[i].pid = pid;
    r->w[i].fd = sv[0];
    r->w[i].alive = 1;
    first += count;
  }
  return 0;
}

static void build_report(run_t *r, bench_report_t *rep) {
  memset(rep, 0, sizeof *rep);
  rep->cfg = r->cfg;
  rep->workers = r->nworkers;
  rep->sources = r->nsources;
  rep->timed_out = r->timed_out;
  rep->signaled = r->signaled;
  rep->upgraded = r->upgraded;
  for (uint32_t i = 0; i < r->nworkers; i++) {
    if (r->w[i].reported)
      bench_result_merge(&rep->r, &r->w[i].result);
    else
      rep->workers_lost++;
  }
  /* Subscribers of lost workers still count as asked for. */
  rep->r.subscribers = r->cfg->mode == BENCH_MODE_CHURN ? rep->r.subscribers : r->cfg->subscribers;
  rep->published = r->pub.published;
  rep->acked = r->pub.acked;
  rep->pub_errors = r->pub.errors;
  rep->pub_bad_status = r->pub.first_bad_status;
  if (r->t_connected_ns > r->t_start_ns)
    rep->connect_seconds = (double)(r->t_connected_ns - r->t_start_ns) / 1e9;
  if (r->pub.t_last_ack_ns > r->pub.t_first_send_ns && r->pub.published)
    rep->publish_seconds = (double)(r->pub.t_last_ack_ns - r->pub.t_first_send_ns) / 1e9;
  if (r->cfg->mode == BENCH_MODE_IDLE) {
    rep->duration_seconds = r->cfg->idle_seconds;
  } else if (r->cfg->mode == BENCH_MODE_CHURN) {
    rep->duration_seconds = r->cfg->churn_seconds;
  } else if (r->pub.published) {
    uint64_t last = rep->r.t_last_delivery_ns > r->pub.t_last_ack_ns ? rep->r.t_last_delivery_ns
                                                                      : r->pub.t_last_ack_ns;
    if (last > r->pub.t_first_send_ns)
      rep->duration_seconds = (double)(last - r->pub.t_first_send_ns) / 1e9;
  }
  if (r->signaled && rep->r.t_last_end_ns > r->sigterm_ns)
    rep->drain_seconds = (double)(rep->r.t_last_end_ns - r->sigterm_ns) / 1e9;
  if (r->cfg->n_server_pids && r->base.ok) {
    const bench_proc_sample_t *start = r->cfg->mode == BENCH_MODE_CHURN ? &r->base : &r->connected;
    const bench_proc_sample_t *end = r->end.ok ? &r->end : start;
    rep->have_server = start->ok;
    rep->server_cpu_seconds = end->cpu_seconds - start->cpu_seconds;
    rep->server_rss_kb = end->rss_kb;
    if (r->connected.ok && rep->r.connected)
      rep->rss_per_conn_bytes = ((double)r->connected.rss_kb - (double)r->base.rss_kb) * 1024.0 /
                                (double)rep->r.connected;
  }
}

int bench_run(const bench_config_t *cfg) {
  char err[512];
  bench_targets_t targets;
  if (bench_targets_build(&targets, cfg, err, sizeof err) < 0) {
    fprintf(stderr, "sluice-bench: %s\n", err);
    bench_targets_free(&targets);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  rlim_t nofile;
  raise_nofile(&nofile);
  uint64_t per_worker = nofile > FD_RESERVE + 100 ? nofile - FD_RESERVE : 100;

  run_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return 1;
  int code = 1;
  r->cfg = cfg;
  r->targets = &targets;
  r->progress = isatty(STDERR_FILENO) && !cfg->quiet;
  if (getrandom(&r->run_id, sizeof r->run_id, 0) != sizeof r->run_id)
    r->run_id = (uint32_t)getpid() ^ (uint32_t)uv_hrtime();
  uint64_t n = cfg->subscribers;
  if (n > 0) {
    uint64_t need = ceil_div(n, per_worker);
    r->nworkers = (uint32_t)(cfg->workers > need ? cfg->workers : need);
    if (r->nworkers > n)
      r->nworkers = (uint32_t)n;
  }
  r->nsources = cfg->sources;
  if (r->nsources == 0)
    r->nsources = cfg->mode == BENCH_MODE_CHURN ? CHURN_SOURCES : (uint32_t)ceil_div(n, PER_SOURCE);
  if (r->nsources > 254)
    r->nsources = 254;
  if (targets.ipv6)
    r->nsources = 1;
  r->w = calloc(r->nworkers ? r->nworkers : 1, sizeof *r->w);
  if (r->w == NULL)
    goto free_run;

  if (cfg->n_server_pids &&
      bench_proc_sample(cfg->server_pids, cfg->n_server_pids, &r->base) < 0) {
    fprintf(stderr, "sluice-bench: cannot read /proc for --server-pid %d: is it running?\n",
            (int)cfg->server_pids[0]);
    code = 2;
    goto free_run;
  }
  r->t_start_ns = uv_hrtime();
  int rc = fork_workers(r);
  if (rc < 0) {
    fprintf(stderr, "sluice-bench: starting workers: %s\n", strerror(-rc));
    goto reap;
  }

  uv_loop_init(&r->loop);
  r->loop.data = r;
  if (bench_pub_init(&r->pub, &r->loop, cfg, &targets, r->run_id, on_ack, on_pub_done) < 0) {
    fprintf(stderr, "sluice-bench: out of memory\n");
    goto reap;
  }
  r->pub.data = r;
  uv_timer_init(&r->loop, &r->phase_timer);
  uv_timer_init(&r->loop, &r->deadline_timer);
  uv_timer_init(&r->loop, &r->progress_timer);
  r->phase_timer.data = r->deadline_timer.data = r->progress_timer.data = r;
  uv_timer_start(&r->deadline_timer, on_deadline, (uint64_t)(cfg->timeout * 1000), 0);
  if (r->progress)
    uv_timer_start(&r->progress_timer, on_progress_timer, PROGRESS_MS, PROGRESS_MS);
  for (uint32_t i = 0; i < r->nworkers; i++) {
    uv_poll_init(&r->loop, &r->w[i].poll, r->w[i].fd);
    r->w[i].poll.data = &r->w[i];
    uv_poll_start(&r->w[i].poll, UV_READABLE, on_worker);
  }
  if (cfg->mode == BENCH_MODE_CHURN) {
    r->phase = PH_COLLECT;
    maybe_finish(r);
  } else {
    r->phase = PH_CONNECT;
    check_connected(r);
  }
  uv_run(&r->loop, UV_RUN_DEFAULT);
  uv_loop_close(&r->loop);
  if (cfg->mode == BENCH_MODE_CHURN)
    sample_end(r);
  if (r->progress)
    draw_progress(r, 1);

  bench_report_t rep;
  build_report(r, &rep);
  if (cfg->json)
    bench_report_json(stdout, &rep);
  else
    bench_report_text(stdout, &rep);
  fflush(stdout);
  code = bench_report_exit_code(&rep);
  bench_pub_free(&r->pub);

reap:
  for (uint32_t i = 0; i < r->nworkers; i++) {
    if (r->w[i].pid <= 0)
      continue;
    close(r->w[i].fd);
    int st;
    while (waitpid(r->w[i].pid, &st, 0) < 0 && errno == EINTR)
      ;
  }
free_run:
  free(r->w);
  free(r);
  bench_targets_free(&targets);
  return code;
}
