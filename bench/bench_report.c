/* bench_report.c — formatting of sluice-bench's results (see bench_report.h). Every derived
 * number (rates, per-delivery costs, percentiles) is computed here, from the raw counts, so the
 * JSON and the text summary cannot disagree.
 */
#include "bench_report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <unistd.h>
#include <uv.h>

void bench_warn(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%ssluice-bench: %s\n", isatty(STDERR_FILENO) ? "\r\033[K" : "", msg);
}

static double per_sec(uint64_t n, double seconds) {
  return seconds > 0 ? (double)n / seconds : 0;
}

static double us(uint64_t ns) {
  return (double)ns / 1000.0;
}

static void msh_json(FILE *out, const bench_msh_t *h) {
  fputc('[', out);
  int first = 1;
  for (unsigned i = 0; i < BENCH_MSH_BUCKETS; i++) {
    if (h->buckets[i] == 0)
      continue;
    fprintf(out, "%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", bench_msh_upper(h, i),
            h->buckets[i]);
    first = 0;
  }
  fputc(']', out);
}

static const char *mode_name(const bench_config_t *c) {
  if (c->mode == BENCH_MODE_IDLE)
    return "idle";
  if (c->mode == BENCH_MODE_CHURN)
    return "churn";
  if (c->upgrade_after)
    return "upgrade";
  return c->signal_after ? "shutdown" : "run";
}

void bench_report_json(FILE *out, const bench_report_t *p) {
  const bench_result_t *r = &p->r;
  const bench_hist_t *h = &r->latency;
  fprintf(out, "{\"mode\":\"%s\",\"subscribers\":%" PRIu64 ",\"workers\":%u,\"sources\":%u,",
          mode_name(p->cfg), r->subscribers, p->workers, p->sources);
  fprintf(out, "\"connected\":%" PRIu64 ",\"connect_failed\":%" PRIu64 ",\"http_errors\":%" PRIu64
          ",\"connect_seconds\":%.6f,\"connect_rate\":%.1f,",
          r->connected, r->connect_failed, r->http_errors, p->connect_seconds,
          per_sec(r->connected, p->connect_seconds));
  if (r->first_connect_error)
    fprintf(out, "\"first_connect_error\":\"%s\",", uv_err_name((int)r->first_connect_error));
  fprintf(out, "\"published\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"publish_errors\":%" PRIu64
          ",\"publish_seconds\":%.6f,",
          p->published, p->acked, p->pub_errors, p->publish_seconds);
  fprintf(out, "\"delivered\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"lost\":%" PRIu64
          ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64 ",\"misrouted\":%" PRIu64
          ",\"foreign_events\":%" PRIu64 ",\"stream_errors\":%" PRIu64 ",",
          r->delivered, r->expected, r->lost, r->duplicates, r->out_of_order, r->misrouted,
          r->foreign, r->stream_errors);
  fprintf(out, "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
          "\"max\":%.1f,\"mean\":%.1f},",
          us(bench_hist_quantile(h, 0.50)), us(bench_hist_quantile(h, 0.90)),
          us(bench_hist_quantile(h, 0.99)), us(bench_hist_quantile(h, 0.999)), us(h->max),
          h->count ? us(h->sum / h->count) : 0.0);
  fprintf(out, "\"deliveries_per_sec\":%.1f,\"duration_seconds\":%.6f,",
          per_sec(r->delivered, p->duration_seconds), p->duration_seconds);
  if (p->have_server) {
    fprintf(out, "\"server_cpu_seconds\":%.3f,\"cpu_us_per_delivery\":%.4f,"
            "\"server_rss_kb\":%" PRIu64 ",\"rss_per_conn_bytes\":%.1f,",
            p->server_cpu_seconds,
            r->delivered ? p->server_cpu_seconds * 1e6 / (double)r->delivered : 0.0,
            p->server_rss_kb, p->rss_per_conn_bytes);
  } else {
    fputs("\"server_cpu_seconds\":null,\"cpu_us_per_delivery\":null,\"server_rss_kb\":null,"
          "\"rss_per_conn_bytes\":null,", out);
  }
  if (p->cfg->mode == BENCH_MODE_IDLE)
    fprintf(out, "\"idle_seconds\":%.3f,", p->cfg->idle_seconds);
  if (p->cfg->mode == BENCH_MODE_CHURN) {
    fprintf(out, "\"churn_seconds\":%.3f,\"churn_accepted\":%" PRIu64 ",\"churn_errors\":%" PRIu64
            ",\"churn_per_sec\":%.1f,",
            p->cfg->churn_seconds, r->churn_accepted, r->churn_errors,
            per_sec(r->churn_accepted, p->cfg->churn_seconds));
    if (p->have_server)
      fprintf(out, "\"cpu_us_per_connection\":%.3f,",
              r->churn_accepted ? p->server_cpu_seconds * 1e6 / (double)r->churn_accepted : 0.0);
  }
  if (p->cfg->upgrade_after)
    fprintf(out, "\"upgraded\":%s,\"disconnects\":%" PRIu64 ",", p->upgraded ? "true" : "false",
            r->ended_clean + r->ended_partial + r->ended_reset);
  if (p->cfg->signal_after || p->cfg->resume || p->cfg->upgrade_after) {
    fprintf(out, "\"signaled\":%s,\"ended_clean\":%" PRIu64 ",\"ended_partial\":%" PRIu64
            ",\"ended_reset\":%" PRIu64 ",\"ended_timeout\":%" PRIu64 ",\"partial_frames\":%" PRIu64
            ",\"partial_bytes\":%" PRIu64 ",\"close_frames\":%" PRIu64 ",\"drain_seconds\":%.6f,"
            "\"retry_ms_hist\":",
            p->signaled ? "true" : "false", r->ended_clean, r->ended_partial, r->ended_reset,
            r->ended_timeout, r->partial_frames, r->partial_bytes, r->close_frames,
            p->drain_seconds);
    msh_json(out, &r->retry_ms);
    fputs(",\"end_ms_hist\":", out);
    msh_json(out, &r->end_ms);
    fputc(',', out);
  }
  if (p->cfg->resume) {
    fprintf(out, "\"recovered\":%" PRIu64 ",\"reconnected\":%" PRIu64
            ",\"reconnect_failed\":%" PRIu64 ",\"reconnect_ms_hist\":",
            r->recovered, r->reconnected, r->reconnect_failed);
    msh_json(out, &r->reconnect_ms);
    fputc(',', out);
  }
  fprintf(out, "\"workers_lost\":%d,\"timed_out\":%s,\"exit_code\":%d}\n", p->workers_lost,
          p->timed_out ? "true" : "false", bench_report_exit_code(p));
}

void bench_report_text(FILE *out, const bench_report_t *p) {
  const bench_result_t *r = &p->r;
  const bench_hist_t *h = &r->latency;
  fprintf(out, "mode          %s, %u worker(s), %u source address(es)\n", mode_name(p->cfg),
          p->workers, p->sources ? p->sources : 1);
  if (p->cfg->mode != BENCH_MODE_CHURN)
    fprintf(out, "connected     %" PRIu64 " of %" PRIu64 " in %.3f s (%.0f conn/s), %" PRIu64
            " failed, %" PRIu64 " bad status\n",
            r->connected, r->subscribers, p->connect_seconds,
            per_sec(r->connected, p->connect_seconds), r->connect_failed, r->http_errors);
  if (r->first_connect_error)
    fprintf(out, "              first connect error: %s\n", uv_strerror((int)r->first_connect_error));
  if (r->first_bad_status)
    fprintf(out, "              first bad status: HTTP %" PRIu64 "\n", r->first_bad_status);
  if (p->cfg->mode == BENCH_MODE_RUN) {
    fprintf(out, "published     %" PRIu64 ", acked %" PRIu64 ", errors %" PRIu64
            " in %.3f s (%.0f acks/s)\n",
            p->published, p->acked, p->pub_errors, p->publish_seconds,
            per_sec(p->acked, p->publish_seconds));
    fprintf(out, "delivered     %" PRIu64 " of %" PRIu64 " expected: lost %" PRIu64
            ", duplicates %" PRIu64 ", out of order %" PRIu64 ", misrouted %" PRIu64 "\n",
            r->delivered, r->expected, r->lost, r->duplicates, r->out_of_order, r->misrouted);
    fprintf(out, "latency (us)  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
            us(bench_hist_quantile(h, 0.50)), us(bench_hist_quantile(h, 0.90)),
            us(bench_hist_quantile(h, 0.99)), us(bench_hist_quantile(h, 0.999)), us(h->max));
    fprintf(out, "throughput    %.0f deliveries/s over %.3f s\n",
            per_sec(r->delivered, p->duration_seconds), p->duration_seconds);
  }
  if (p->cfg->mode == BENCH_MODE_CHURN)
    fprintf(out, "churn         %" PRIu64 " accepted in %.1f s (%.0f/s), %" PRIu64 " errors\n",
            r->churn_accepted, p->cfg->churn_seconds,
            per_sec(r->churn_accepted, p->cfg->churn_seconds), r->churn_errors);
  if (p->cfg->upgrade_after)
    fprintf(out, "upgrade       SIGUSR2 %s after %" PRIu64 " acks; %" PRIu64 " streams ended "
            "(disconnects)\n", p->upgraded ? "sent" : "NOT sent", p->cfg->upgrade_after,
            r->ended_clean + r->ended_partial + r->ended_reset);
  if (p->cfg->signal_after || p->cfg->resume || p->cfg->upgrade_after) {
    fprintf(out, "stream ends   clean %" PRIu64 ", partial %" PRIu64 ", reset %" PRIu64
            ", timeout %" PRIu64 "; %" PRIu64 " close frames, drain %.3f s\n",
            r->ended_clean, r->ended_partial, r->ended_reset, r->ended_timeout, r->close_frames,
            p->drain_seconds);
    if (r->end_ms.count)
      fprintf(out, "              ended after SIGTERM (ms): half by %" PRIu64 ", 90 %% by %" PRIu64
              ", all by %" PRIu64 "\n",
              bench_msh_quantile(&r->end_ms, 0.5), bench_msh_quantile(&r->end_ms, 0.9),
              r->end_ms.max);
  }
  if (p->cfg->resume) {
    fprintf(out, "resume        %" PRIu64 " reconnected, %" PRIu64 " failed attempts, %" PRIu64
            " events recovered\n", r->reconnected, r->reconnect_failed, r->recovered);
    if (r->reconnect_ms.count)
      fprintf(out, "              stream end to new 200 (ms): p50 %" PRIu64 ", p90 %" PRIu64
              ", max %" PRIu64 "\n",
              bench_msh_quantile(&r->reconnect_ms, 0.5), bench_msh_quantile(&r->reconnect_ms, 0.9),
              r->reconnect_ms.max);
  }
  if (p->have_server)
    fprintf(out, "server        cpu %.3f s (%.3f us/delivery), rss %" PRIu64 " kB (%.0f B/conn)\n",
            p->server_cpu_seconds,
            r->delivered ? p->server_cpu_seconds * 1e6 / (double)r->delivered : 0.0,
            p->server_rss_kb, p->rss_per_conn_bytes);
  if (p->workers_lost || p->timed_out)
    fprintf(out, "warning       %d worker(s) lost%s\n", p->workers_lost,
            p->timed_out ? ", deadline (--timeout) reached" : "");
}

int bench_report_exit_code(const bench_report_t *p) {
  const bench_result_t *r = &p->r;
  if (r->lost || r->duplicates || r->out_of_order || r->misrouted || r->tracking_oom)
    return 1;
  if (p->workers_lost || p->timed_out)
    return 1;
  if (p->cfg->mode != BENCH_MODE_CHURN && r->connected < r->subscribers)
    return 1;
  if (p->cfg->signal_after && r->ended_timeout)
    return 1;
  return 0;
}
