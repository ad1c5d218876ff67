/* auth.c - credentials. API keys and session tokens carry 256 random bits, are shown once,
 * and are stored only as SHA-256. A secret is found by its hash through a UNIQUE index: the
 * timing of that lookup depends on the hash, which an attacker cannot steer towards a
 * stored hash without a preimage, so it leaks nothing about any stored secret (the usual
 * constant-time argument for hashed tokens). JWTs are HS256 (jwt.c), compared with
 * CRYPTO_memcmp, and name the key they were minted from, which must still be active. */
#include "auth.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const char key_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int auth_secret_generate(const char *prefix, char *buf, size_t len)
{
        /* 43 characters of a 62-letter alphabet: 256.1 bits. Rejection sampling keeps every
         * character uniform. */
        const size_t n = 43, pl = strlen(prefix);
        size_t o = 0;
        uint8_t rnd[64];
        int r;

        if (len < pl + n + 1)
                return -EINVAL;
        memcpy(buf, prefix, pl);
        while (o < n) {
                r = util_random(rnd, sizeof(rnd));
                if (r < 0)
                        return r;
                for (size_t i = 0; i < sizeof(rnd) && o < n; i++)
                        if (rnd[i] < 248) /* 248 = 4 * 62 */
                                buf[pl + o++] = key_alphabet[rnd[i] % 62];
        }
        buf[pl + n] = '\0';
        explicit_bzero(rnd, sizeof(rnd));
        return 0;
}

int auth_key_generate(char *buf, size_t len)
{
        return auth_secret_generate(AUTH_KEY_PREFIX, buf, len);
}

void auth_key_hash(const char *key, uint8_t out[32])
{
        SHA256((const unsigned char *)key, strlen(key), out);
}

int auth_make_id(const char *prefix, char *buf, size_t len)
{
        uint8_t rnd[12];
        char hex[25];
        int r = util_random(rnd, sizeof(rnd));
        if (r < 0)
                return r;
        util_hex(rnd, sizeof(rnd), hex);
        if (snprintf(buf, len, "%s%s", prefix, hex) >= (int)len)
                return -ENAMETOOLONG;
        return 0;
}

/* Create an organisation (system or not) with an admin key named "admin". */
static int org_create(struct store *st, const char *name, bool system, const char *key,
                      char *org_id_out, size_t org_id_len, char *key_out, size_t key_out_len)
{
        struct store_key k = {};
        uint8_t hash[32];
        int r;

        r = auth_make_id("org_", org_id_out, org_id_len);
        if (r < 0)
                return r;
        if (key) {
                /* An operator-chosen key must not look like a JWT or a session token, or it
                 * would be routed to the wrong verifier. */
                if (strlen(key) < 16 || strlen(key) >= key_out_len || strlen(key) > AUTH_KEY_MAX ||
                    auth_classify(key, strlen(key)) != CRED_KEY)
                        return -EINVAL;
                for (const char *p = key; *p; p++)
                        if (*p <= ' ' || *p > '~')
                                return -EINVAL;
                strcpy(key_out, key);
        } else {
                r = auth_key_generate(key_out, key_out_len);
                if (r < 0)
                        return r;
        }
        r = auth_make_id("key_", k.id, sizeof(k.id));
        if (r < 0)
                return r;
        snprintf(k.org_id, sizeof(k.org_id), "%s", org_id_out);
        snprintf(k.name, sizeof(k.name), "%s", "admin");
        snprintf(k.prefix, sizeof(k.prefix), "%.10s", key_out);
        snprintf(k.role, sizeof(k.role), "%s", "admin");
        k.created_at = util_wall_s();
        auth_key_hash(key_out, hash);
        r = store_tx_begin(st);
        if (r < 0)
                return r;
        r = store_org_create(st, org_id_out, name);
        if (r == 0 && system)
                r = store_org_set_system(st, org_id_out);
        if (r == 0)
                r = store_key_insert(st, &k, hash);
        if (r == 0)
                r = store_tx_commit(st);
        if (r < 0)
                store_tx_rollback(st);
        return r;
}

int auth_org_create(struct store *st, const char *name, const char *key, char *org_id_out,
                    size_t org_id_len, char *key_out, size_t key_out_len)
{
        return org_create(st, name, false, key, org_id_out, org_id_len, key_out, key_out_len);
}

int auth_org_create_system(struct store *st, const char *name, const char *key,
                           char *org_id_out, size_t org_id_len, char *key_out,
                           size_t key_out_len)
{
        return org_create(st, name, true, key, org_id_out, org_id_len, key_out, key_out_len);
}

/* ---- parsing ---- */

enum cred_kind auth_classify(const char *text, size_t len)
{
        size_t dots = 0;

        if (len > 4 && memcmp(text, AUTH_SESSION_PREFIX, 4) == 0)
                return CRED_SESSION;
        if (len > 3 && memcmp(text, "eyJ", 3) == 0) {
                for (size_t i = 0; i < len; i++)
                        dots += text[i] == '.';
                if (dots == 2)
                        return CRED_JWT;
        }
        return CRED_KEY;
}

int auth_parse_token(const char *text, size_t len, struct auth_cred *ret)
{
        if (!text || len == 0 || len > AUTH_CRED_MAX)
                return -EACCES;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)text[i] <= ' ' || (unsigned char)text[i] > '~')
                        return -EACCES;
        enum cred_kind kind = auth_classify(text, len);
        if (kind == CRED_KEY && len > AUTH_KEY_MAX)
                return -EACCES;
        *ret = (struct auth_cred){ .kind = kind, .text = text, .len = len };
        return 0;
}

int auth_parse_header(const char *value, struct auth_cred *ret)
{
        const char *p;
        bool apikey;
        struct auth_cred c;

        if (!value)
                return -ENOENT;
        while (*value == ' ' || *value == '\t')
                value++;
        if (!*value)
                return -ENOENT;
        if (strncasecmp(value, "ApiKey", 6) == 0 && (value[6] == ' ' || value[6] == '\t'))
                apikey = true, p = value + 7;
        else if (strncasecmp(value, "Bearer", 6) == 0 && (value[6] == ' ' || value[6] == '\t'))
                apikey = false, p = value + 7;
        else
                return -EACCES;
        while (*p == ' ' || *p == '\t')
                p++;
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
        if (auth_parse_token(p, len, &c) < 0)
                return -EACCES;
        /* "ApiKey" means an API key: a token under it is a client bug, not a key. */
        if (apikey && c.kind != CRED_KEY)
                return -EACCES;
        *ret = c;
        return 0;
}

int auth_cookie_find(const char *header, const char *name, const char **ret, size_t *ret_len)
{
        size_t nl = strlen(name);
        const char *p = header;

        if (!header || !nl)
                return -ENOENT;
        while (*p) {
                while (*p == ' ' || *p == '\t' || *p == ';')
                        p++;
                const char *end = strchr(p, ';');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                if (n > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
                        const char *v = p + nl + 1;
                        size_t vl = n - nl - 1;
                        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                                vl--;
                        /* A quoted value (RFC 6265 allows DQUOTE cookie-octets DQUOTE). */
                        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"')
                                v++, vl -= 2;
                        *ret = v;
                        *ret_len = vl;
                        return 0;
                }
                p += n;
        }
        return -ENOENT;
}

/* ---- verification ---- */

/* Copy a credential into a NUL-terminated buffer (len is bounded by AUTH_CRED_MAX). */
static void cred_copy(const struct auth_cred *cred, char *buf)
{
        memcpy(buf, cred->text, cred->len);
        buf[cred->len] = '\0';
}

/* An API key: active, by hash. */
static int verify_key(struct store *st, const struct auth_cred *cred, struct auth_identity *id)
{
        char buf[AUTH_KEY_MAX + 1];
        uint8_t hash[32];
        struct store_key k;
        int r;

        if (cred->len > AUTH_KEY_MAX)
                return -EACCES;
        cred_copy(cred, buf);
        auth_key_hash(buf, hash);
        explicit_bzero(buf, sizeof(buf));
        r = store_key_find_by_hash(st, hash, &k);
        if (r < 0)
                return r == -ENOENT ? -EACCES : r;
        id->kind = CRED_KEY;
        snprintf(id->org_id, sizeof(id->org_id), "%s", k.org_id);
        snprintf(id->key_id, sizeof(id->key_id), "%s", k.id);
        snprintf(id->role, sizeof(id->role), "%s", k.role);
        return 0;
}

/* A JWT: signature, header pin and exp (jwt.c), then its key must still be active and of
 * the organisation the token names. */
static int verify_jwt(struct store *st, const uint8_t *jwt_key, size_t jwt_key_len, int64_t now,
                      const struct auth_cred *cred, struct auth_identity *id)
{
        json_t *claims = NULL;
        struct store_key k;
        int r;

        if (!jwt_key || jwt_key_len < JWT_KEY_MIN)
                return -EACCES;
        r = jwt_verify(cred->text, cred->len, jwt_key, jwt_key_len, now, &claims);
        if (r == -EKEYEXPIRED)
                return r;
        if (r < 0)
                return r == -ENOMEM ? r : -EACCES;
        json_t *iss = json_object_get(claims, "iss");
        json_t *sub = json_object_get(claims, "sub");
        json_t *org = json_object_get(claims, "org");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), "warren") != 0 ||
            !json_is_string(sub) || !json_is_string(org)) {
                json_decref(claims);
                return -EACCES;
        }
        r = store_key_get(st, json_string_value(sub), &k);
        if (r == 0 && (k.revoked_at || strcmp(k.org_id, json_string_value(org)) != 0))
                r = -EACCES;
        json_decref(claims);
        if (r < 0)
                return r == -ENOENT ? -EACCES : r;
        id->kind = CRED_JWT;
        snprintf(id->org_id, sizeof(id->org_id), "%s", k.org_id);
        snprintf(id->key_id, sizeof(id->key_id), "%s", k.id);
        snprintf(id->role, sizeof(id->role), "%s", k.role);
        return 0;
}

/* A session token: by hash, unexpired; its key active and its sandbox its org's. */
static int verify_session(struct store *st, int64_t now, const struct auth_cred *cred,
                          struct auth_identity *id)
{
        char buf[AUTH_KEY_MAX + 1];
        uint8_t hash[32];
        struct store_session t;
        int r;

        if (cred->len > AUTH_KEY_MAX)
                return -EACCES;
        cred_copy(cred, buf);
        auth_key_hash(buf, hash);
        explicit_bzero(buf, sizeof(buf));
        r = store_session_find_by_hash(st, hash, &t);
        if (r < 0)
                return r == -ENOENT ? -EACCES : r;
        if (t.expires_at <= now)
                return -EKEYEXPIRED;
        r = store_session_touch(st, t.id, now);
        if (r < 0)
                return r;
        id->kind = CRED_SESSION;
        snprintf(id->org_id, sizeof(id->org_id), "%s", t.org_id);
        snprintf(id->key_id, sizeof(id->key_id), "%s", t.id);
        snprintf(id->role, sizeof(id->role), "%s", "session");
        snprintf(id->sandbox_id, sizeof(id->sandbox_id), "%s", t.sandbox_id);
        return 0;
}

int auth_verify(struct store *st, const uint8_t *jwt_key, size_t jwt_key_len, int64_t now,
                const struct auth_cred *cred, struct auth_identity *ret)
{
        struct auth_identity id = {};
        int r;

        if (!cred || !cred->text || cred->len == 0 || cred->len > AUTH_CRED_MAX)
                return -EACCES;
        switch (cred->kind) {
        case CRED_KEY:
                r = verify_key(st, cred, &id);
                break;
        case CRED_JWT:
                r = verify_jwt(st, jwt_key, jwt_key_len, now, cred, &id);
                break;
        case CRED_SESSION:
                r = verify_session(st, now, cred, &id);
                break;
        default:
                r = -EACCES;
        }
        if (r < 0)
                return r;
        *ret = id;
        return 0;
}

int auth_jwt_issue(const uint8_t *jwt_key, size_t jwt_key_len, const struct store_key *k,
                   int64_t now, int64_t ttl, char **ret)
{
        char jti[STORE_ID_MAX];
        int r = auth_make_id("jwt_", jti, sizeof(jti));
        if (r < 0)
                return r;
        json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", "warren", "sub",
                                   k->id, "org", k->org_id, "iat", (json_int_t)now, "exp",
                                   (json_int_t)(now + ttl), "jti", jti);
        if (!claims)
                return -ENOMEM;
        r = jwt_sign(jwt_key, jwt_key_len, claims, ret);
        json_decref(claims);
        return r;
}

int auth_request(struct store *st, const char *authorization, struct store_key *ret)
{
        struct auth_cred c;
        struct auth_identity id;
        struct store_key k;

        if (auth_parse_header(authorization, &c) < 0 || c.kind != CRED_KEY)
                return -EACCES;
        if (auth_verify(st, NULL, 0, 0, &c, &id) < 0 || store_key_get(st, id.key_id, &k) < 0)
                return -EACCES;
        *ret = k;
        return 0;
}
