/* uuid.h — random (version 4) UUIDs for update ids, from a per-thread generator seeded by
 * getrandom(2). Not for secrets. */
#ifndef SL_UUID_H
#define SL_UUID_H

#define SL_UUID_URN_LEN 45   /* strlen("urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx") */

/* Writes "urn:uuid:<v4 uuid>" and a NUL into out (at least SL_UUID_URN_LEN + 1 bytes). */
void sl__uuid_urn(char *out);

#endif
