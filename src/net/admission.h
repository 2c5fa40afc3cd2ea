/* admission.h — who may hold a connection: a cap on the connections the hub holds at once
 * (below the descriptor limit, so that the hub can still answer "too busy" instead of failing
 * to accept), and on the connections one client address holds. Counted when a worker accepts a
 * connection and released when it closes; shared by every worker. With neither cap set it costs
 * one atomic add per connection. */
#ifndef SL_ADMISSION_H
#define SL_ADMISSION_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Why a connection was not admitted. */
typedef enum {
  SL_ADMIT_OK = 0,
  SL_ADMIT_FULL,                 /* the hub holds max_conns connections */
  SL_ADMIT_CLIENT_FULL,          /* this address holds max_per_client */
} sl_admit_t;

typedef struct sl_admission_s {
  size_t max_conns;              /* 0 = no cap */
  size_t max_per_client;         /* 0 = no cap, and addresses are not tracked */
  atomic_size_t open;            /* connections admitted and not yet released */
  uv_mutex_t lock;               /* guards the per-address table below */
  struct sl_client_s *clients;   /* a slab: an entry keeps its index while it is used */
  uint32_t client_cap, free_head;
  uint32_t *buckets;             /* hash of the address → first entry index + 1 */
  uint32_t bucket_mask;
} sl_admission_t;

/* A client address as 16 bytes, IPv4 mapped into IPv6, to count or limit it by: 0, or
 * -EAFNOSUPPORT for another family. */
int sl__address_key(const struct sockaddr *sa, uint8_t key[16]);

/* 0 or a negative errno. */
int sl__admission_init(sl_admission_t *a, size_t max_conns, size_t max_per_client);
void sl__admission_destroy(sl_admission_t *a);

/* Admits a connection from addr (any thread). SL_ADMIT_OK and *ticket to hand back to
 * sl__admission_release, or why not (then nothing is counted and there is nothing to release).
 * Out of memory for the table admits without counting the address. */
sl_admit_t sl__admission_admit(sl_admission_t *a, const struct sockaddr *addr, uint32_t *ticket);
void sl__admission_release(sl_admission_t *a, uint32_t ticket);

#endif
