/* auth.h - credentials: API keys, JWTs and session tokens; parsing where they arrive
 * (Authorization header, ?token=, cookie) and verifying them against the store.
 *
 * The parsers are pure functions (unit-tested and fuzzed); auth_verify() is the one place
 * that turns a credential into an identity.
 */
#ifndef WARREN_AUTH_H
#define WARREN_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "jwt.h"
#include "store.h"

/* Longest API key accepted in a header (longer ones are rejected before any lookup). */
#define AUTH_KEY_MAX 128
/* Longest credential of any kind (JWTs are the longest). */
#define AUTH_CRED_MAX JWT_MAX
/* Prefixes of generated secrets: API keys, session tokens, magic-link codes. */
#define AUTH_KEY_PREFIX "wk_"
#define AUTH_SESSION_PREFIX "wst_"
#define AUTH_MAGIC_PREFIX "wml_"
/* Cookie that carries a session token set by a magic link. */
#define AUTH_COOKIE_NAME "warren_session"

/* Make a new secret: prefix + 43 base62 characters (256 random bits). buf must hold
 * strlen(prefix) + 44 bytes. */
int auth_secret_generate(const char *prefix, char *buf, size_t len);

/* Make a new key "wk_" + 43 base62 characters (256 random bits). buf >= 64 bytes. */
int auth_key_generate(char *buf, size_t len);

/* SHA-256 of a key (or any secret). */
void auth_key_hash(const char *key, uint8_t out[32]);

/* Create an organisation and an admin key for it. key may be NULL to generate one; the key
 * text is written to key_out (>= 64 bytes). */
int auth_org_create(struct store *st, const char *name, const char *key, char *org_id_out,
                    size_t org_id_len, char *key_out, size_t key_out_len);

/* The same for the operator's ("system") organisation, made once at first start; all of it
 * in one transaction. */
int auth_org_create_system(struct store *st, const char *name, const char *key,
                           char *org_id_out, size_t org_id_len, char *key_out,
                           size_t key_out_len);

/* Random id with a prefix: prefix + 24 hex characters. */
int auth_make_id(const char *prefix, char *buf, size_t len);

/* A credential as found in a request (points into the caller's string). */
struct auth_cred {
        enum cred_kind kind; /* CRED_KEY, CRED_JWT or CRED_SESSION, by shape */
        const char *text;
        size_t len;
};

/* What kind of credential text is, by its shape: "wst_..." a session token, three
 * dot-separated segments starting "eyJ" a JWT, anything else an API key. */
enum cred_kind auth_classify(const char *text, size_t len);

/* Parse an Authorization header value: "ApiKey KEY" or "Bearer KEY|JWT|SESSION-TOKEN"
 * (scheme case-insensitive, spaces or tabs after it, trailing blanks ignored). 0, -ENOENT
 * (NULL or blank: no credential), -EACCES (unknown scheme, bad characters, too long, or a
 * JWT or session token under "ApiKey"). */
int auth_parse_header(const char *value, struct auth_cred *ret);

/* Check a bare credential (from ?token= or a cookie): printable ASCII without blanks, at
 * most AUTH_CRED_MAX bytes. 0 or -EACCES. */
int auth_parse_token(const char *text, size_t len, struct auth_cred *ret);

/* Find cookie name in a Cookie header ("a=1; b=2"). *ret points into header. 0, -ENOENT. */
int auth_cookie_find(const char *header, const char *name, const char **ret, size_t *ret_len);

/* Who a verified credential is. */
struct auth_identity {
        enum cred_kind kind;
        char org_id[STORE_ID_MAX];
        char key_id[STORE_ID_MAX]; /* API key id (keys, JWTs) or session token id */
        char role[16];             /* the key's role; "session" for session tokens */
        char sandbox_id[STORE_ID_MAX]; /* session tokens: their sandbox */
};

/* Verify a credential at time now: an API key must be active; a JWT must verify under
 * jwt_key, be unexpired, and name (sub) an active key whose organisation is its "org"
 * claim; a session token must be unexpired, its key active and its sandbox its
 * organisation's (its last use is recorded). 0, -EACCES (unknown, revoked, forged),
 * -EKEYEXPIRED (expired JWT or session token), or a store error. */
int auth_verify(struct store *st, const uint8_t *jwt_key, size_t jwt_key_len, int64_t now,
                const struct auth_cred *cred, struct auth_identity *ret);

/* Mint a JWT for key k at now, valid ttl seconds: {"iss":"warren","sub":KEY_ID,"org":ORG,
 * "iat","exp","jti"}. *ret gets the malloc'd token. */
int auth_jwt_issue(const uint8_t *jwt_key, size_t jwt_key_len, const struct store_key *k,
                   int64_t now, int64_t ttl, char **ret);

/* Authenticate a request from its Authorization header with an API key only ("ApiKey KEY"
 * or "Bearer KEY"). Fills ret and returns 0, or -EACCES. (The daemon itself uses
 * identity_authenticate(), which also takes JWTs and session tokens.) */
int auth_request(struct store *st, const char *authorization, struct store_key *ret);

#endif
