/* fdpass.h — messages between two processes on a Unix SOCK_SEQPACKET socket, each with the open
 * descriptors it carries (SCM_RIGHTS): what the live hand-off moves listening sockets and
 * established connections with. A message keeps its boundaries, and its descriptors arrive with
 * it. Blocking calls, bounded by a deadline; for a thread of its own, never a worker's loop. */
#ifndef SL_FDPASS_H
#define SL_FDPASS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SL_FDPASS_MAX_FDS 250        /* descriptors in one message (the kernel takes 253) */
#define SL_FDPASS_MAX_MSG (192 * 1024) /* bytes of one message */

/* Sends len bytes and nfds descriptors as one message, waiting at most until deadline_ms
 * (uv_hrtime-based milliseconds; 0 = no limit). The descriptors stay open here. 0, -ETIMEDOUT,
 * -EMSGSIZE, or the socket's error (-EPIPE when the peer is gone). */
int sl__fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds,
                    uint64_t deadline_ms);

/* Receives one message into buf (cap bytes) and up to SL_FDPASS_MAX_FDS descriptors into fds
 * (close-on-exec; the caller owns them), waiting at most until deadline_ms. The message's length,
 * and *nfds; 0 when the peer closed the socket; -ETIMEDOUT; -EMSGSIZE when the message or its
 * descriptors did not fit (those that came are closed); or the socket's error. */
ssize_t sl__fdpass_recv(int sock, void *buf, size_t cap, int *fds, size_t *nfds,
                        uint64_t deadline_ms);

/* Milliseconds of the monotonic clock the deadlines above count in. */
uint64_t sl__fdpass_now_ms(void);

#endif
