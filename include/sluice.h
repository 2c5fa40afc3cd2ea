/* sluice.h — the embeddable API of sluice, a Server-Sent Events hub speaking Mercure.
 *
 * This header is the whole contract of libsluice. A hub owns its worker threads (one libuv loop
 * each), its listeners and its history. Functions return 0 on success or a negative errno-style
 * code (-EINVAL, -ENOMEM, ...), which sl_strerror() turns into text, except these six:
 * sl_hub_port returns a port or a negative code, sl_hub_wait 0 or 1, sl_strerror and sl_version
 * a string, and sl_config_init and sl_hub_free nothing. Each function's comment lists what it
 * returns. Unless a function says otherwise it may be called from any thread.
 *
 * Typical use:
 *   sl_config_t cfg; sl_config_init(&cfg);
 *   cfg.jwt_key = "secret";
 *   sl_hub_t *hub; sl_hub_new(&cfg, &hub); sl_hub_start(hub);
 *   ... sl_hub_publish(hub, &update, id, sizeof id) ...
 *   sl_hub_shutdown(hub, 25.0, on_drained, NULL);   // drains every stream, then calls back
 *   sl_hub_wait(hub); sl_hub_free(hub);
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SL_BUILDING_LIBRARY)
#define SL_EXTERN __attribute__((visibility("default")))
#else
#define SL_EXTERN
#endif

#define SL_VERSION_MAJOR 0
#define SL_VERSION_MINOR 1
#define SL_VERSION_PATCH 0

#define SL_MAX_LISTEN 16

/* Defaults of sl_config_t, each in the unit its field names. */
#define SL_DEFAULT_LISTEN           "127.0.0.1:8080"
#define SL_DEFAULT_HISTORY_SIZE     10000        /* events kept for resume */
#define SL_DEFAULT_DATA_MAX_SIZE    (8ull << 30) /* bytes the durable history's file may grow to */
#define SL_DEFAULT_SUBSCRIPTIONS_HISTORY 10000   /* subscription events kept for resume, apart */
#define SL_DEFAULT_REDIS_STREAM     "sluice"     /* the Redis stream's key (redis_stream) */
#define SL_MIN_DATA_MAX_SIZE        1048576      /* the least data_max_size accepted */
#define SL_MAX_HISTORY_SIZE         10000000     /* the most events history_size may keep */
#define SL_DEFAULT_HEARTBEAT        15.0         /* seconds between keep-alive comments */
#define SL_DEFAULT_MAX_QUEUE        4194304      /* bytes queued per subscriber */
#define SL_DEFAULT_MAX_BODY         1048576      /* bytes of one publish body */
#define SL_MAX_MAX_BODY             268435456    /* the largest max_body: an update is one frame
                                                    of at most 4 GiB, whatever its encoding */
#define SL_DEFAULT_WRITE_TIMEOUT    30.0         /* seconds a stalled write may last */
#define SL_DEFAULT_HEADER_TIMEOUT   10.0         /* seconds to receive a request's headers */
#define SL_DEFAULT_IDLE_TIMEOUT     60.0         /* seconds an idle keep-alive connection lives */
#define SL_DEFAULT_DRAIN_DELAY      0.0          /* seconds of full service after a shutdown request */
#define SL_DEFAULT_SHUTDOWN_TIMEOUT 25.0         /* seconds before remaining streams are forced */
#define SL_DEFAULT_RECONNECT_SPREAD 5.0          /* seconds over which clients are told to come back */
#define SL_DEFAULT_LINGER           2.0          /* seconds to wait for a client's FIN after ours */
#define SL_DEFAULT_FLUSH_WINDOW     0.010        /* seconds over which a busy worker gathers updates */
#define SL_MAX_FLUSH_WINDOW         1.0          /* the largest flush window accepted */
#define SL_DEFAULT_MAX_PENDING      16           /* updates ahead of delivery before answers wait */
#define SL_MAX_MAX_PENDING          1000000      /* the largest --max-pending accepted */
#define SL_MAX_WORKERS              256          /* the most loop threads accepted */
#define SL_RESERVED_FDS             64           /* descriptors kept free of connections: the
                                                    listeners, epoll sets, the log, a refusal */
#define SL_MIN_HMAC_KEY             32           /* bytes of an HMAC key: 256 bits for HS256,
                                                    RFC 7518 3.2 */
#define SL_DEFAULT_JWT_LEEWAY       30.0         /* seconds of clock skew allowed on a token's
                                                    exp, nbf and iat */
#define SL_MAX_JWT_LEEWAY           600.0        /* the largest jwt_leeway accepted */

typedef struct sl_hub_s sl_hub_t;

/* What a committed update survives, with a data dir (sl_config_t.fsync). */
typedef enum {
  SL_FSYNC_BATCH = 0,  /* commits reach the disk together at least every 100 ms: a crash of the
                          process loses nothing answered 200; a power loss, at most that window */
  SL_FSYNC_ALWAYS = 1, /* each group commit is synced before its publishers are answered: survives
                          a power loss too, at the disk's sync rate */
  SL_FSYNC_OFF = 2,    /* never synced by the hub (the kernel writes back when it will): survives
                          a crash of the process, not of the machine */
} sl_fsync_t;

/* Configuration. Strings are borrowed: they must outlive sl_hub_new() only (the hub copies them).
 *
 * No ABI promise before 1.0: a 0.x release may add, remove or reorder fields, so code built
 * against one version's header must be rebuilt against the next. Always fill the struct with
 * sl_config_init() first and then set fields by name, so that fields added later keep their
 * defaults in source that does not know them. */
typedef struct sl_config_s {
  const char *listen[SL_MAX_LISTEN];  /* "HOST:PORT" or "[V6]:PORT"; none = SL_DEFAULT_LISTEN */
  unsigned listen_count;
  unsigned workers;                   /* loop threads; 0 = the cores this process may run on (or,
                                         taking over in a live hand-off, as many as the old
                                         process ran) */
  int handoff_fd;                     /* -1 (the default): sl_hub_start binds its listeners. Else
                                         a connected Unix SOCK_SEQPACKET socket to a running hub
                                         that sl_hub_handoff() was called on: sl_hub_start takes
                                         over its listeners, history and connections instead (see
                                         sl_hub_handoff) and owns the socket */
  /* Token keys. A role trusts the union of its key value, key file and JWK Set; each role-
   * specific field overrides the shared one of its kind. A token's alg must fit the key's type
   * (HS256/384/512: secrets; RS/PS256/384/512: RSA >= 2048 bits; ES256/384/512: EC P-256/384/521;
   * EdDSA: Ed25519). */
  const char *jwt_key;                /* an HMAC secret, or PEM text of a public key or
                                         certificate ("-----BEGIN..."), for both roles */
  const char *publisher_jwt_key;      /* overrides jwt_key for publishers */
  const char *subscriber_jwt_key;     /* overrides jwt_key for subscribers */
  const char *jwt_key_file;           /* path: a PEM public key or certificate, or a file
                                         holding an HMAC secret (one trailing newline dropped) */
  const char *publisher_jwt_key_file; /* overrides jwt_key_file for publishers */
  const char *subscriber_jwt_key_file;/* overrides jwt_key_file for subscribers */
  const char *jwks_file;              /* path: a JWK Set (RFC 7517); keys picked by kid */
  const char *publisher_jwks_file;    /* overrides jwks_file for publishers */
  const char *subscriber_jwks_file;   /* overrides jwks_file for subscribers */
  const char *jwt_audience;           /* the resource identifier tokens' "aud" must hold; NULL =
                                         public_url (with jwt_legacy: NULL = not checked) */
  const char *jwt_issuer;             /* the "iss" tokens must carry exactly; NULL = any (still
                                         required unless jwt_legacy) */
  int jwt_legacy;                     /* 1: also accept pre-standard tokens: typ JWT or none, no
                                         exp, no iss, no aud check unless jwt_audience is set,
                                         and grants in the "mercure" claim */
  double jwt_leeway;                  /* seconds of clock skew allowed on exp, nbf and iat, at
                                         most SL_MAX_JWT_LEEWAY */
  const char *public_url;             /* the hub's URL as clients reach it, "http(s)://host[:port]
                                         /path": the base of relative topics and URL patterns,
                                         and its path is where the hub answers; NULL =
                                         http://<first listen address>/.well-known/mercure */
  int anonymous;                      /* 1: subscribers need no token */
  const char *cookie_name;            /* the cookie a token may come in (EventSource cannot send
                                         headers); NULL = __Secure-mercure_access_token, and the
                                         pre-standard mercureAuthorization too. The Authorization
                                         header always wins over a cookie */
  const char *publish_origins;        /* origins a cookie-authorised publish may come from
                                         (its Origin, else Referer), separated by commas or
                                         spaces; NULL = the origin of public_url, or one naming
                                         the request's Host */
  const char *cors_origins;           /* origins whose pages may use the hub across origins
                                         (CORS), separated by commas or spaces: each gets
                                         Access-Control-Allow-Origin with credentials (the
                                         cookie); "*" alone: every origin, never with
                                         credentials; NULL = none (same origin only) */
  size_t max_connections;             /* connections held at once, past which new ones get 503;
                                         0 = the open-files limit less SL_RESERVED_FDS */
  size_t max_conns_per_ip;            /* connections one client address may hold (429 past it);
                                         0 = no limit (behind a proxy every client is its address) */
  size_t rate_per_ip;                 /* publishes and subscriptions one client address may start
                                         per second (a burst of as many); 429 past it; 0 = none */
  size_t rate_per_token;              /* the same per token (its exact bytes); 0 = none */
  int allow_weak_key;                 /* 1: accept HMAC keys shorter than SL_MIN_HMAC_KEY (tests
                                         only: a short key can be found by brute force) */
  size_t history_size;                /* events kept in memory for resume */
  size_t history_max_bytes;           /* bytes those events may take; 0 = an eighth of the memory
                                         this process may use, between 16 MiB and 4 GiB */
  double heartbeat;                   /* seconds; 0 = no keep-alive comments */
  size_t max_queue;                   /* bytes queued for one subscriber before it is cut */
  size_t max_body;                    /* bytes of a publish body */
  double write_timeout;               /* seconds a subscriber may stall a started write */
  double header_timeout;              /* seconds to receive request headers (408 after) */
  double idle_timeout;                /* seconds a keep-alive connection may sit idle */
  double drain_delay;                 /* seconds of full service after shutdown begins */
  double shutdown_timeout;            /* seconds before remaining streams are forced closed */
  double reconnect_spread;            /* seconds: the final retry: is jittered over this */
  double linger;                      /* seconds to wait for the client's FIN after ours */
  double flush_window;                /* seconds: updates arriving closer together than this
                                         reach a subscriber in one write; 0 = every update at once */
  size_t max_pending;                 /* updates accepted but not yet written to every subscriber
                                         before a publisher's answer waits; 0 = never wait */
  int subscriptions;                  /* 1: active subscriptions (the spec's Active
                                         Subscriptions): a private "mercure" event on the topic
                                         <hub path>/subscriptions/{match_type}/{match}/{subscriber}
                                         when each subscription begins and ends, and the
                                         Subscription API at <hub path>/subscriptions; 0 = off
                                         (default): neither, at no cost */
  const char *data_dir;               /* directory of the durable history (LMDB), created 0700 when
                                         missing; NULL = history in memory only, lost on restart */
  sl_fsync_t fsync;                   /* with data_dir: when commits are synced; default
                                         SL_FSYNC_BATCH */
  double history_max_age;             /* with data_dir: seconds an update is retained at most;
                                         0 = no age limit (history_size still applies) */
  size_t data_max_size;               /* with data_dir: bytes the data file may grow to (the
                                         oldest updates make room past it); default
                                         SL_DEFAULT_DATA_MAX_SIZE */
  size_t subscriptions_history;       /* with subscriptions: subscription events kept for resume
                                         under their own budget, so that they never evict the
                                         application's updates (history_size), nor these them;
                                         0 = none kept (still delivered live); default
                                         SL_DEFAULT_SUBSCRIPTIONS_HISTORY; at most
                                         SL_MAX_HISTORY_SIZE */
  const char *redis_url;              /* redis://[:password@]HOST[:PORT][/DB]: history and delivery
                                         through one Redis stream shared by every hub on it
                                         (scale-out); NULL = off. Not with data_dir. rediss:// is
                                         refused (no TLS in Debian 12's hiredis) */
  const char *redis_stream;           /* with redis_url: the stream's key; its id index is
                                         "<key>:ids"; default SL_DEFAULT_REDIS_STREAM */
  const char *redis_password;         /* with redis_url: AUTH password, when the URL has none;
                                         NULL = none */
} sl_config_t;

/* One update to publish. Strings are borrowed for the duration of the call. */
typedef struct sl_update_s {
  const char *const *topics;  /* first = canonical topic, others alternate; at least one */
  size_t topic_count;
  const char *data;           /* may be NULL */
  size_t data_len;
  const char *id;             /* NULL = the hub generates urn:uuid:... */
  const char *type;           /* SSE event type, or NULL */
  const char *retry;          /* ASCII digits, or NULL */
  int is_private;             /* 1: only authorised subscribers receive it */
} sl_update_t;

/* What a drain did, passed to the shutdown callback. */
typedef struct sl_drain_report_s {
  uint64_t streams_drained;   /* subscribers that received the close frame and ended cleanly */
  uint64_t connections_closed;/* all connections that ended during the drain */
  uint64_t updates_flushed;   /* frames written during the drain */
  uint64_t forced;            /* connections closed hard at the timeout */
  double seconds;             /* from the shutdown request to the end */
} sl_drain_report_t;

/* Called once, on a hub thread, when the drain ended. Must not call sl_hub_free/sl_hub_wait. */
typedef void (*sl_shutdown_cb)(sl_hub_t *hub, const sl_drain_report_t *report, void *arg);

/* Fills *cfg with the SL_DEFAULT_* values, and zero or NULL where a field has no default. Returns
 * nothing. */
SL_EXTERN void sl_config_init(sl_config_t *cfg);

/* Creates a hub (nothing listens yet) and sets *hub. 0; -EINVAL with a bad configuration;
 * -ENOMEM; or another negative code when a lock or thread primitive cannot be made. *hub is set
 * only on success. */
SL_EXTERN int sl_hub_new(const sl_config_t *cfg, sl_hub_t **hub);

/* Binds the listeners (SO_REUSEPORT, one per worker) and starts the worker threads. 0;
 * -EALREADY when already started; -ENOMEM; or a negative code when a listener cannot be bound
 * (-EINVAL for an address that does not parse, -EADDRINUSE, -EACCES, ...; the reason is logged)
 * or a thread cannot start. On failure nothing is left running. */
SL_EXTERN int sl_hub_start(sl_hub_t *hub);

/* The port (1-65535) a started hub's listener i is bound to (useful with port 0); -EINVAL when
 * the hub is not started or has no listener i. */
SL_EXTERN int sl_hub_port(sl_hub_t *hub, unsigned i);

/* Publishes an update, as a POST would, except that it never waits for delivery to catch up
 * (--max-pending applies to HTTP publishers). On success writes the id (NUL-terminated) into id.
 * 0; -EINVAL: the update breaks a protocol rule; -ESHUTDOWN: the hub is draining and takes no
 * more updates; -EAGAIN: a live hand-off is under way (retry: on the new process, or here if it
 * fails); -ENOSPC: id_cap is too small; -ENOMEM. */
SL_EXTERN int sl_hub_publish(sl_hub_t *hub, const sl_update_t *update, char *id, size_t id_cap);

/* Starts the graceful drain: readiness goes down at once, after drain_delay the listeners close,
 * every accepted update is delivered, each subscriber gets the final close frame and a clean end.
 * Connections still open after timeout seconds are closed hard. cb (may be NULL) runs once when
 * it is over. A second call forces the end at once. 0; -EINVAL when the hub was never started;
 * or a negative code when the drain cannot begin (its loop or thread cannot be made). */
SL_EXTERN int sl_hub_shutdown(sl_hub_t *hub, double timeout, sl_shutdown_cb cb, void *arg);

/* The live hand-off. Called when the hand-off ended, on a hub thread: err 0 when the other
 * process took every connection over (call sl_hub_shutdown() next: it ends, without delay, only
 * the connections that were already ending, and the hub then stops taking updates for good); or a
 * negative code when it failed (-ETIMEDOUT, -EPROTO, -EPIPE when the other process went away,
 * -ECONNREFUSED when it refused, -ENOTSUP for a history that cannot be handed over): the hub goes
 * on serving as before, nothing lost. */
typedef void (*sl_handoff_cb)(sl_hub_t *hub, int err, void *arg);

/* Hands every listening socket, established connection (subscriber streams with their
 * subscriptions, authorization and place in the stream; idle keep-alive connections) and the
 * in-memory history to the process at the other end of sock, a connected Unix SOCK_SEQPACKET
 * socket (socketpair(2) before starting it) whose hub was made with handoff_fd set to its end.
 * Waits at most timeout seconds for it. Runs on a thread of its own and calls cb (may be NULL)
 * once; the socket is the hub's from now on. No stream sees an end, a gap or a duplicate; no
 * publish is refused (publishes wait in their sockets until the new process reads them; only
 * sl_hub_publish() returns -EAGAIN meanwhile). The protocol is versioned, and described in
 * docs/handoff.md. 0 when started; -EINVAL when the hub is not started; -EALREADY while a
 * hand-off or a drain is under way. With a Redis history (redis_url) the history stays in
 * Redis: the other process reads the stream on after the entry this one delivered last. */
SL_EXTERN int sl_hub_handoff(sl_hub_t *hub, int sock, double timeout, sl_handoff_cb cb, void *arg);

/* Blocks until every worker thread has ended (after a shutdown). Returns 0 when no connection had
 * to be forced, 1 when some were. */
SL_EXTERN int sl_hub_wait(sl_hub_t *hub);

/* Frees a hub that was never started or that sl_hub_wait() returned for. NULL is ignored.
 * Returns nothing. */
SL_EXTERN void sl_hub_free(sl_hub_t *hub);

/* Text for a code returned by this API (or any negative errno value): a static string, never
 * NULL. */
SL_EXTERN const char *sl_strerror(int err);

/* The library's version, "MAJOR.MINOR.PATCH": a static string. It may differ from the
 * SL_VERSION_* this header was compiled with when the shared library was replaced. */
SL_EXTERN const char *sl_version(void);

#ifdef __cplusplus
}
#endif
#endif /* SLUICE_H */
