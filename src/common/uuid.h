/* uuid.h — random (version 4) and time-ordered (version 7) UUIDs for ids, from a per-thread
 * generator seeded by getrandom(2). Not for secrets. */
#ifndef SL_UUID_H
#define SL_UUID_H

#define SL_UUID_URN_LEN 45   /* strlen("urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx") */

/* Writes "urn:uuid:<v4 uuid>" and a NUL into out (at least SL_UUID_URN_LEN + 1 bytes). */
void sl__uuid_urn(char *out);

/* The same with a version 7 UUID (RFC 9562): 48 bits of Unix time in milliseconds, then 74
 * random bits. Ids made later sort after (within a millisecond, in any order), so a store indexed
 * by id inserts them near one end of its index instead of all over it. */
void sl__uuid_urn_time(char *out);

#endif
