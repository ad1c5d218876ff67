/* secretbox.h - authenticated encryption of small values under a 256-bit master key:
 * AES-256-GCM (OpenSSL EVP), a fresh random 96-bit nonce per seal, a 128-bit tag, and
 * caller-chosen associated data that binds a ciphertext to its context (the secrets module
 * binds the organisation id and the secret's name, so a row moved to another organisation or
 * renamed does not decrypt).
 *
 * Pure functions: no globals, no I/O besides the OpenSSL RNG, no logging. Nonces are random
 * rather than counters because ciphertexts live in a database that can be copied or restored
 * from a backup, which would rewind any counter; with 96 random bits the chance of a repeat
 * stays below 2^-32 for the first 2^32 seals under one key (NIST SP 800-38D, 8.3), far beyond
 * what a secrets table sees.
 */
#ifndef WARREN_SECRETBOX_H
#define WARREN_SECRETBOX_H

#include <stddef.h>
#include <stdint.h>

#define SECRETBOX_KEY_LEN 32
#define SECRETBOX_NONCE_LEN 12
#define SECRETBOX_TAG_LEN 16
/* Length of a key's identifier (secretbox_key_id). */
#define SECRETBOX_KEY_ID_LEN 8
/* Largest plaintext or associated data accepted (OpenSSL takes int lengths). */
#define SECRETBOX_MAX_LEN (1u << 30)

/* Encrypt pt (pt_len bytes, may be 0) under key with associated data ad (ad_len bytes, may
 * be 0). A fresh random nonce is drawn and written to ret_nonce; out receives the ciphertext
 * followed by the tag: it must hold pt_len + SECRETBOX_TAG_LEN bytes and may not overlap pt.
 * 0, -EMSGSIZE (over SECRETBOX_MAX_LEN), -EIO (the RNG or the cipher failed), -ENOMEM.
 * Nothing is written to ret_nonce or out on failure (out may hold partial ciphertext). */
int secretbox_seal(const uint8_t key[SECRETBOX_KEY_LEN], const void *ad, size_t ad_len,
                   const void *pt, size_t pt_len, uint8_t ret_nonce[SECRETBOX_NONCE_LEN],
                   uint8_t *out);

/* Decrypt and authenticate ct (ciphertext + tag, ct_len >= SECRETBOX_TAG_LEN) sealed with
 * key, nonce and the same associated data. out receives ct_len - SECRETBOX_TAG_LEN bytes.
 * 0, or -EBADMSG when the tag does not verify (wrong key, damaged ciphertext, other nonce or
 * associated data) or ct is shorter than a tag: out is then wiped, never half-decrypted
 * garbage. -EMSGSIZE, -ENOMEM, -EIO as for seal. */
int secretbox_open(const uint8_t key[SECRETBOX_KEY_LEN],
                   const uint8_t nonce[SECRETBOX_NONCE_LEN], const void *ad, size_t ad_len,
                   const uint8_t *ct, size_t ct_len, uint8_t *out);

/* A short public identifier of a key: the first bytes of HMAC-SHA256(key, a fixed label).
 * Stored beside each ciphertext so that a daemon started with another master key can say so
 * plainly instead of reporting a corrupt ciphertext. Reveals nothing usable about the key.
 * 0 or -EIO. */
int secretbox_key_id(const uint8_t key[SECRETBOX_KEY_LEN], uint8_t ret_id[SECRETBOX_KEY_ID_LEN]);

/* Parse a master key written as 64 hex digits or as base64 of 32 bytes (standard alphabet,
 * padding optional). Leading and trailing ASCII whitespace is ignored (a key file ends with a
 * newline). 0 or -EINVAL (any other form or length). ret_key is written only on success. */
int secretbox_key_parse(const char *text, size_t len, uint8_t ret_key[SECRETBOX_KEY_LEN]);

/* Fresh random key from the OpenSSL RNG. 0 or -EIO. */
int secretbox_key_generate(uint8_t ret_key[SECRETBOX_KEY_LEN]);

/* Constant-time comparison of n bytes: 0 when equal. */
int secretbox_memcmp(const void *a, const void *b, size_t n);

/* Overwrite n bytes in a way the compiler cannot drop (OPENSSL_cleanse). NULL is fine. */
void secretbox_wipe(void *p, size_t n);

#endif
