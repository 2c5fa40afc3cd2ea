/* fail_realloc.c — a test-only LD_PRELOAD library: makes chosen realloc() calls fail, so that
 * tests can drive the hub's out-of-memory paths through the real binary.
 *
 * SLUICE_FAIL_REALLOC=SIZE:SKIP:COUNT — of the realloc(NULL, SIZE) calls (a first allocation
 * through realloc, for exactly SIZE bytes), let the first SKIP through, then fail the next COUNT
 * (return NULL, errno ENOMEM). SLUICE_FAIL_REALLOC_TRACE=1 prints every call to stderr. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static void *(*real_realloc)(void *, size_t);
static size_t fail_size; /* written once, by the constructor, before main */
static atomic_long skip_left, fail_left;

/* Read when the library is loaded, not at the first realloc: under ThreadSanitizer the first
 * calls come from the sanitizer's start-up (pthread_getattr_np), before the C library has set up
 * the environment, and getenv would find nothing there. */
__attribute__((constructor)) static void configure(void) {
  const char *s = getenv("SLUICE_FAIL_REALLOC");
  unsigned long size = 0;
  long skip = 0, count = 0;
  if (s && sscanf(s, "%lu:%ld:%ld", &size, &skip, &count) == 3) {
    atomic_store(&skip_left, skip);
    atomic_store(&fail_left, count);
    fail_size = size;
  }
}

void *realloc(void *p, size_t n) {
  if (real_realloc == NULL)
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  if (getenv("SLUICE_FAIL_REALLOC_TRACE"))
    fprintf(stderr, "realloc(%p, %zu)\n", p, n);
  if (fail_size != 0 && n == fail_size && p == NULL) {
    if (atomic_fetch_sub(&skip_left, 1) <= 0 && atomic_fetch_sub(&fail_left, 1) > 0) {
      errno = ENOMEM;
      return NULL;
    }
  }
  return real_realloc(p, n);
}
