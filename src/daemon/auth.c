/* auth.c - API keys. Keys carry 256 random bits, are shown once, and are stored only as
 * SHA-256. A key is found by its hash through an index: the timing of that lookup depends on
 * the hash, which an attacker cannot steer towards a stored hash without a preimage, so it
 * leaks nothing about any stored key (the usual constant-time argument for hashed tokens). */
#include "auth.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const char key_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int auth_key_generate(char *buf, size_t len)
{
        /* 43 characters of a 62-letter alphabet: 256.1 bits. Rejection sampling keeps every
         * character uniform. */
        const size_t n = 43;
        size_t o = 0;
        uint8_t rnd[64];
        int r;

        if (len < 3 + n + 1)
                return -EINVAL;
        memcpy(buf, "wk_", 3);
        while (o < n) {
                r = util_random(rnd, sizeof(rnd));
                if (r < 0)
                        return r;
                for (size_t i = 0; i < sizeof(rnd) && o < n; i++)
                        if (rnd[i] < 248) /* 248 = 4 * 62 */
                                buf[3 + o++] = key_alphabet[rnd[i] % 62];
        }
        buf[3 + n] = '\0';
        return 0;
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

int auth_org_create(struct store *st, const char *name, const char *key, char *org_id_out,
                    size_t org_id_len, char *key_out, size_t key_out_len)
{
        struct store_key k = {};
        uint8_t hash[32];
        int r;

        r = auth_make_id("org_", org_id_out, org_id_len);
        if (r < 0)
                return r;
        if (key) {
                if (strlen(key) < 16 || strlen(key) >= key_out_len || strlen(key) > AUTH_KEY_MAX)
                        return -EINVAL;
                strcpy(key_out, key);
        } else {
                r = auth_key_generate(key_out, key_out_len);
                if (r < 0)
                        return r;
        }
        r = store_org_create(st, org_id_out, name);
        if (r < 0)
                return r;
        r = auth_make_id("key_", k.id, sizeof(k.id));
        if (r < 0)
                return r;
        snprintf(k.org_id, sizeof(k.org_id), "%s", org_id_out);
        snprintf(k.name, sizeof(k.name), "%s", "admin");
        snprintf(k.prefix, sizeof(k.prefix), "%.10s", key_out);
        snprintf(k.role, sizeof(k.role), "%s", "admin");
        k.created_at = util_wall_s();
        auth_key_hash(key_out, hash);
        return store_key_insert(st, &k, hash);
}

int auth_request(struct store *st, const char *authorization, struct store_key *ret)
{
        const char *key;
        uint8_t hash[32];
        struct store_key k;

        if (!authorization)
                return -EACCES;
        if (strncasecmp(authorization, "ApiKey ", 7) == 0)
                key = authorization + 7;
        else if (strncasecmp(authorization, "Bearer ", 7) == 0)
                key = authorization + 7;
        else
                return -EACCES;
        while (*key == ' ')
                key++;
        size_t len = strlen(key);
        if (len == 0 || len > AUTH_KEY_MAX)
                return -EACCES;
        auth_key_hash(key, hash);
        if (store_key_find_by_hash(st, hash, &k) < 0)
                return -EACCES;
        *ret = k;
        return 0;
}
