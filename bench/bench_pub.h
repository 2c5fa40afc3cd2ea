/* bench_pub.h — sluice-bench's publisher: one kept-alive connection to the publish URL, up to
 * --pipeline requests in flight, paced at --rate or as fast as responses come back. Each request
 * carries the next sequence number and its send time (bench_payload.h); any 2xx answer is an
 * acknowledgement. Runs on the coordinator's loop; owns its handle, its request buffers and the
 * ack bitmap until bench_pub_free.
 */
#ifndef BENCH_PUB_H
#define BENCH_PUB_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "bench_opts.h"
#include "bench_target.h"

typedef struct bench_pub_s bench_pub_t;
typedef void (*bench_pub_cb)(bench_pub_t *p);

typedef struct bench_pub_slot_s {
  uv_write_t req;
  uint64_t seq;
  char *buf;
  size_t len;
  int writing;  /* uv_write issued, callback not yet run: buf must stay */
} bench_pub_slot_t;

struct bench_pub_s {
  void *data;                    /* for the caller */
  uint64_t published;            /* requests written */
  uint64_t acked;                /* 2xx responses */
  uint64_t errors;               /* non-2xx responses and requests lost with a connection */
  int first_bad_status;
  uint64_t t_first_send_ns;
  uint64_t t_last_ack_ns;
  uint8_t *acked_bits;           /* bit s set: event s acknowledged; (events + 7) / 8 bytes */
  size_t acked_bits_len;
  /* private */
  uv_loop_t *loop;
  const bench_config_t *cfg;
  const bench_targets_t *targets;
  uint32_t run_id;
  bench_pub_cb on_ack;           /* after each acknowledgement (acked already counted) */
  bench_pub_cb on_done;          /* once: every event sent and answered, or publishing stopped */
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_timer_t timer;              /* pacing under --rate */
  uv_timer_t retry_timer;        /* delay before reconnecting after an error */
  llhttp_t http;
  llhttp_settings_t settings;
  bench_pub_slot_t *slots;
  uint32_t nslots, head, inflight;
  uint64_t next_seq;
  uint64_t t_rate0_ns;
  int state;
  int stopping;                  /* send nothing more */
  int no_reconnect;              /* a lost connection ends publishing */
  int keep_trying;               /* reconnect after errors without a limit (a restart) */
  int done;
  int reconnects;                /* after errors; a server's Connection: close is no error */
  int drop_error;
  int close_after;               /* the last response said Connection: close */
  int status;                    /* of the response being parsed */
  char err_body[160];
  size_t err_body_len;
};

int bench_pub_init(bench_pub_t *p, uv_loop_t *loop, const bench_config_t *cfg,
                   const bench_targets_t *t, uint32_t run_id, bench_pub_cb on_ack,
                   bench_pub_cb on_done);
void bench_pub_start(bench_pub_t *p);
/* Sends nothing more; on_done runs once the requests in flight are answered or lost. */
void bench_pub_stop(bench_pub_t *p);
/* Closes the handles; the caller runs the loop until they are closed, then calls bench_pub_free. */
void bench_pub_close(bench_pub_t *p);
void bench_pub_free(bench_pub_t *p);

#endif
