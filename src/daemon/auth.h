/* auth.h - API keys: generation, hashing, and request authentication. */
#ifndef WARREN_AUTH_H
#define WARREN_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "store.h"

/* Longest key accepted in a header (longer ones are rejected before any lookup). */
#define AUTH_KEY_MAX 128

/* Make a new key "wk_" + 43 base62-ish characters (256 random bits, hex-free alphabet).
 * buf must hold at least 64 bytes. */
int auth_key_generate(char *buf, size_t len);

/* SHA-256 of a key. */
void auth_key_hash(const char *key, uint8_t out[32]);

/* Create an organisation and an admin key for it. key may be NULL to generate one; the key
 * text is written to key_out (>= 64 bytes). */
int auth_org_create(struct store *st, const char *name, const char *key, char *org_id_out,
                    size_t org_id_len, char *key_out, size_t key_out_len);

/* Authenticate a request from its Authorization header ("ApiKey KEY" or "Bearer KEY").
 * Fills ret (org, key id, role) and returns 0, or -EACCES (no or bad credential). */
int auth_request(struct store *st, const char *authorization, struct store_key *ret);

/* Random id with a prefix: prefix + 24 hex characters. */
int auth_make_id(const char *prefix, char *buf, size_t len);

#endif
