/* b64url.h — base64url without padding (RFC 7515 section 2, RFC 4648 section 5), the encoding of
 * every JOSE segment and JWK member. Strict on input: only the alphabet, no padding, and unused
 * trailing bits zero, so that one text has one meaning whichever decoder reads it. */
#ifndef SL_B64URL_H
#define SL_B64URL_H

#include <stddef.h>

/* Bytes that decoding len base64url characters yields (valid or not). */
size_t sl__b64url_decoded_len(size_t len);

/* Decodes len characters of in into out, which has room for sl__b64url_decoded_len(len) bytes.
 * 0 or -EINVAL (a character outside the alphabet, a length of 4n+1, non-zero trailing bits). */
int sl__b64url_decode(unsigned char *out, const char *in, size_t len);

/* Characters that encoding len bytes yields (no NUL counted). */
size_t sl__b64url_encoded_len(size_t len);

/* Encodes len bytes of in into out (room for sl__b64url_encoded_len(len) characters; no NUL is
 * written). Returns the number of characters written. */
size_t sl__b64url_encode(char *out, const unsigned char *in, size_t len);

#endif
