/* b64.h - strict base64 (RFC 4648 standard alphabet). */
#ifndef WARREN_B64_H
#define WARREN_B64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode len bytes, including the NUL. */
size_t b64_encoded_size(size_t len);

/* Encode len bytes into out (b64_encoded_size(len) bytes), NUL-terminated. Returns the length. */
size_t b64_encode(const uint8_t *in, size_t len, char *out);

/* Encode with the URL-safe alphabet (- and _) and no padding (RFC 4648 section 5, as JWTs
 * use it) into out (b64_encoded_size(len) bytes is enough), NUL-terminated. Returns the
 * length. */
size_t b64url_encode(const uint8_t *in, size_t len, char *out);

/* Decode. ASCII whitespace (space, \t, \r, \n) is skipped, as `base64` wraps its output;
 * padding is optional but, if present, must be correct; any other character is an error.
 * out must hold len * 3 / 4 + 3 bytes. *ret_len gets the decoded length. 0 or -EINVAL. */
int b64_decode(const char *in, size_t len, uint8_t *out, size_t *ret_len);

#endif
