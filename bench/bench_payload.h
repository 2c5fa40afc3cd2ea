/* bench_payload.h — the event payload the load generator publishes and recognises:
 * "R<run id, 8 hex>-<seq>-<send time, CLOCK_MONOTONIC ns>-" padded with 'x' to the requested
 * size. Only unreserved URL characters, so it needs no escaping in a form body, a query or an SSE
 * data line; the run id keeps events of other runs (replayed history) from being counted.
 */
#ifndef BENCH_PAYLOAD_H
#define BENCH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_PAYLOAD_HEAD_MAX 52  /* "R" + 8 + "-" + 20 + "-" + 20 + "-" */

/* Writes the payload into buf (cap bytes, no NUL); returns its length: max(size, head). */
size_t bench_payload_build(char *buf, size_t cap, uint32_t run, uint64_t seq, uint64_t ts_ns,
                           size_t size);
/* Parses the head from the first n bytes of a data field. 0 with *seq and *ts_ns set; -EINVAL
 * for anything else; -ESRCH for a well-formed payload of another run. */
int bench_payload_parse(const char *p, size_t n, uint32_t run, uint64_t *seq, uint64_t *ts_ns);

#endif
