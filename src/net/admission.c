/* admission.c — the connection caps (see admission.h). The per-address counts live in a slab of
 * entries chained from hash buckets by index, so that a connection's ticket (its entry's index)
 * stays valid while the table grows and other entries come and go. */
#include "net/admission.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CLIENTS 256
#define TICKET_NONE 0            /* admitted, no address counted */
#define TICKET_COUNTED_ONLY 1    /* counted in open, no address entry */
#define TICKET_BASE 2            /* ticket = entry index + TICKET_BASE */

typedef struct sl_client_s {
  uint8_t addr[16];              /* IPv4 mapped into IPv6 */
  uint32_t count;                /* open connections from it; 0 = the entry is free */
  uint32_t next;                 /* next entry of the bucket, or of the free list (index + 1) */
} sl_client_t;

int sl__admission_init(sl_admission_t *a, size_t max_conns, size_t max_per_client) {
  memset(a, 0, sizeof *a);
  a->max_conns = max_conns;
  a->max_per_client = max_per_client;
  atomic_init(&a->open, 0);
  return uv_mutex_init(&a->lock);
}

void sl__admission_destroy(sl_admission_t *a) {
  free(a->clients);
  free(a->buckets);
  uv_mutex_destroy(&a->lock);
}

int sl__address_key(const struct sockaddr *sa, uint8_t key[16]) {
  if (sa->sa_family == AF_INET6) {
    memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    return 0;
  }
  if (sa->sa_family == AF_INET) {
    memset(key, 0, 10);
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
  }
  return -EAFNOSUPPORT;
}

static uint32_t hash_key(const uint8_t key[16]) {
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < 16; i++) {
    h ^= key[i];
    h *= 1099511628211ULL;
  }
  return (uint32_t)(h ^ (h >> 32));
}

/* Doubles the slab and the buckets (rehashing the used entries). Lock held. */
static int grow(sl_admission_t *a) {
  uint32_t cap = a->client_cap ? a->client_cap * 2 : FIRST_CLIENTS;
  sl_client_t *c = realloc(a->clients, (size_t)cap * sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  a->clients = c;
  uint32_t *b = calloc(cap, sizeof *b);
  if (b == NULL)
    return -ENOMEM;
  free(a->buckets);
  a->buckets = b;
  a->bucket_mask = cap - 1;
  /* The new entries go on the free list; used ones are rechained. */
  a->free_head = 0;
  for (uint32_t i = cap; i-- > 0;) {
    if (i < a->client_cap && c[i].count > 0) {
      uint32_t k = hash_key(c[i].addr) & a->bucket_mask;
      c[i].next = a->buckets[k];
      a->buckets[k] = i + 1;
    } else {
      c[i].count = 0;
      c[i].next = a->free_head;
      a->free_head = i + 1;
    }
  }
  a->client_cap = cap;
  return 0;
}

sl_admit_t sl__admission_admit(sl_admission_t *a, const struct sockaddr *addr, uint32_t *ticket) {
  size_t open = atomic_fetch_add(&a->open, 1) + 1;
  *ticket = TICKET_NONE;
  if (a->max_conns && open > a->max_conns) {
    atomic_fetch_sub(&a->open, 1);
    return SL_ADMIT_FULL;
  }
  *ticket = TICKET_NONE; /* until admitted: a refusal has nothing to release */
  uint8_t key[16];
  if (a->max_per_client == 0 || addr == NULL || sl__address_key(addr, key)) {
    *ticket = TICKET_COUNTED_ONLY;
    return SL_ADMIT_OK;
  }
  uv_mutex_lock(&a->lock);
  uint32_t i = 0;
  if (a->buckets)
    for (i = a->buckets[hash_key(key) & a->bucket_mask]; i; i = a->clients[i - 1].next)
      if (memcmp(a->clients[i - 1].addr, key, 16) == 0)
        break;
  if (i && a->clients[i - 1].count >= a->max_per_client) {
    uv_mutex_unlock(&a->lock);
    atomic_fetch_sub(&a->open, 1);
    return SL_ADMIT_CLIENT_FULL;
  }
  if (i == 0) {
    if (a->free_head == 0 && grow(a)) {
      uv_mutex_unlock(&a->lock);
      *ticket = TICKET_COUNTED_ONLY; /* out of memory for the table: not counted per address */
      return SL_ADMIT_OK;
    }
    i = a->free_head;
    sl_client_t *c = &a->clients[i - 1];
    a->free_head = c->next;
    memcpy(c->addr, key, 16);
    c->count = 0;
    uint32_t k = hash_key(key) & a->bucket_mask;
    c->next = a->buckets[k];
    a->buckets[k] = i;
  }
  a->clients[i - 1].count++;
  uv_mutex_unlock(&a->lock);
  *ticket = i - 1 + TICKET_BASE;
  return SL_ADMIT_OK;
}

void sl__admission_release(sl_admission_t *a, uint32_t ticket) {
  if (ticket == TICKET_NONE)
    return;
  atomic_fetch_sub(&a->open, 1);
  if (ticket == TICKET_COUNTED_ONLY)
    return;
  uint32_t i = ticket - TICKET_BASE + 1;
  uv_mutex_lock(&a->lock);
  assert(i <= a->client_cap && a->clients[i - 1].count > 0);
  sl_client_t *c = &a->clients[i - 1];
  if (--c->count == 0) {
    /* Unchained from its bucket and back on the free list. */
    uint32_t *p = &a->buckets[hash_key(c->addr) & a->bucket_mask];
    while (*p != i)
      p = &a->clients[*p - 1].next;
    *p = c->next;
    c->next = a->free_head;
    a->free_head = i;
  }
  uv_mutex_unlock(&a->lock);
}
