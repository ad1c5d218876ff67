/* jwt.h - HS256 JSON Web Tokens (RFC 7519), hand-rolled over OpenSSL HMAC and jansson.
 *
 * Only what Warren issues is accepted: the header must be exactly the members
 * {"alg":"HS256"} and optionally "typ":"JWT" (so no "none", no HS512/RS256 key confusion, no
 * "kid"/"jku"/"crit" games), the signature is compared with CRYPTO_memcmp, and "exp" is
 * required and enforced. base64url is strict (no padding, no stray bits), so one token has
 * exactly one spelling. Pure functions: no store, no clock (the caller passes "now").
 */
#ifndef WARREN_JWT_H
#define WARREN_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token accepted (checked before any decoding). */
#define JWT_MAX 4096
/* Shortest HMAC secret accepted (bytes): 256 bits. */
#define JWT_KEY_MIN 32

/* base64url without padding of len bytes into out (out_len >= 4 * ceil(len / 3) + 1),
 * NUL-terminated. Returns the length written, or -ENOSPC. */
int jwt_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_len);

/* Strict base64url decode (alphabet A-Z a-z 0-9 - _, no padding, unused low bits of the last
 * character zero). out must hold out_cap bytes. *ret_len gets the length. 0, -EINVAL
 * (malformed), -ENOSPC (out too small). */
int jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_cap,
                      size_t *ret_len);

/* Sign claims (a JSON object; not stolen) with HS256 under key. *ret gets a malloc'd token.
 * 0, -EINVAL (claims not an object, key shorter than JWT_KEY_MIN), -ENOMEM, -EIO (OpenSSL). */
int jwt_sign(const uint8_t *key, size_t key_len, json_t *claims, char **ret);

/* Verify token (len bytes, need not be NUL-terminated) under key at time now (epoch
 * seconds). On success *ret_claims gets the payload object (a new reference). Errors:
 *   -E2BIG             longer than JWT_MAX
 *   -EINVAL            not three base64url segments of JSON objects, or bad claims
 *                      ("exp" missing or not an integer, "nbf"/"iat" not integers)
 *   -EPROTONOSUPPORT   header other than {"alg":"HS256"[,"typ":"JWT"]} (alg=none included)
 *   -EBADMSG           wrong signature
 *   -EKEYEXPIRED       exp <= now, or nbf > now
 * The signature is checked before the payload is parsed. */
int jwt_verify(const char *token, size_t len, const uint8_t *key, size_t key_len, int64_t now,
               json_t **ret_claims);

#endif
