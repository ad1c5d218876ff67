/* jwt.c - HS256 JSON Web Tokens; see jwt.h for what is accepted and why. */
#include "jwt.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "util.h"

/* The one header we issue: {"alg":"HS256","typ":"JWT"}. */
static const char jwt_header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/* A header longer than this is not one we could have issued. */
#define JWT_HEADER_MAX 256

int jwt_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_len)
{
        size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0) + 1;

        if (out_len < need)
                return -ENOSPC;
        return (int)b64url_encode(in, len, out);
}

/* Value of a base64url character, -1 for any other byte. */
static int b64url_value(unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

int jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_cap,
                      size_t *ret_len)
{
        uint32_t acc = 0;
        int nbits = 0;
        size_t o = 0;

        /* One leftover character carries only 6 bits: never a whole byte. */
        if (len % 4 == 1)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int v = b64url_value((unsigned char)in[i]);
                if (v < 0)
                        return -EINVAL;
                acc = (acc << 6) | (uint32_t)v;
                nbits += 6;
                if (nbits >= 8) {
                        nbits -= 8;
                        if (o >= out_cap)
                                return -ENOSPC;
                        out[o++] = (uint8_t)(acc >> nbits);
                        acc &= (1u << nbits) - 1;
                }
        }
        /* The bits left over must be zero: otherwise several spellings would decode to the
         * same bytes, and a "tampered" signature could still verify. */
        if (acc != 0)
                return -EINVAL;
        *ret_len = o;
        return 0;
}

/* HMAC-SHA256 of data under key into mac (32 bytes). 0 or -EIO. */
static int hs256(const uint8_t *key, size_t key_len, const char *data, size_t len,
                 uint8_t mac[32])
{
        unsigned int n = 0;

        if (key_len > INT32_MAX)
                return -EINVAL;
        if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, len, mac, &n) ||
            n != 32)
                return -EIO;
        return 0;
}

int jwt_sign(const uint8_t *key, size_t key_len, json_t *claims, char **ret)
{
        cleanup_free char *payload = NULL;
        cleanup_free char *tok = NULL;
        uint8_t mac[32];
        int r;

        if (!key || key_len < JWT_KEY_MIN || !json_is_object(claims))
                return -EINVAL;
        payload = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
        if (!payload)
                return -ENOMEM;
        size_t plen = strlen(payload);
        size_t hlen = sizeof(jwt_header_b64) - 1;
        size_t cap = hlen + 1 + (plen + 2) / 3 * 4 + 1 + 44 + 1;
        tok = malloc(cap);
        if (!tok)
                return -ENOMEM;
        memcpy(tok, jwt_header_b64, hlen);
        tok[hlen] = '.';
        r = jwt_b64url_encode((const uint8_t *)payload, plen, tok + hlen + 1, cap - hlen - 1);
        if (r < 0)
                return r;
        size_t signed_len = hlen + 1 + (size_t)r;
        r = hs256(key, key_len, tok, signed_len, mac);
        if (r < 0)
                return r;
        tok[signed_len] = '.';
        r = jwt_b64url_encode(mac, sizeof(mac), tok + signed_len + 1, cap - signed_len - 1);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(tok);
        return 0;
}

/* Decode one segment and parse it as a JSON object (duplicate members refused, so "exp" or
 * "alg" cannot mean two things). *ret gets a new reference. 0 or -EINVAL. */
static int segment_json(const char *seg, size_t len, json_t **ret)
{
        cleanup_free uint8_t *buf = malloc(len / 4 * 3 + 3);
        json_error_t err;
        size_t n;

        if (!buf)
                return -ENOMEM;
        if (jwt_b64url_decode(seg, len, buf, len / 4 * 3 + 3, &n) < 0 || n == 0)
                return -EINVAL;
        json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return -EINVAL;
        if (!json_is_object(j)) {
                json_decref(j);
                return -EINVAL;
        }
        *ret = j;
        return 0;
}

/* Whether v is the JSON string s exactly (no embedded NUL tricks). */
static bool json_str_is(json_t *v, const char *s)
{
        return json_is_string(v) && json_string_length(v) == strlen(s) &&
               strcmp(json_string_value(v), s) == 0;
}

/* The header pin: members alg (= "HS256") and optionally typ (= "JWT"), nothing else. */
static int check_header(const char *seg, size_t len)
{
        json_t *h = NULL, *v;
        const char *k;
        int r;

        if (len > JWT_HEADER_MAX)
                return -EPROTONOSUPPORT;
        r = segment_json(seg, len, &h);
        if (r < 0)
                return r == -ENOMEM ? r : -EPROTONOSUPPORT;
        r = json_str_is(json_object_get(h, "alg"), "HS256") ? 0 : -EPROTONOSUPPORT;
        json_object_foreach(h, k, v)
        {
                if (strcmp(k, "alg") == 0)
                        continue;
                if (strcmp(k, "typ") == 0 && json_str_is(v, "JWT"))
                        continue;
                r = -EPROTONOSUPPORT;
        }
        json_decref(h);
        return r;
}

/* An optional integer claim: absent is fine (*present = false); a non-integer is -EINVAL. */
static int int_claim(json_t *claims, const char *name, bool *present, int64_t *ret)
{
        json_t *v = json_object_get(claims, name);

        *present = v != NULL;
        if (!v)
                return 0;
        if (!json_is_integer(v))
                return -EINVAL;
        *ret = json_integer_value(v);
        return 0;
}

int jwt_verify(const char *token, size_t len, const uint8_t *key, size_t key_len, int64_t now,
               json_t **ret_claims)
{
        uint8_t mac[32], sig[33];
        size_t sig_len;
        json_t *claims = NULL;
        int64_t exp = 0, nbf = 0, iat = 0;
        bool has_exp, has_nbf, has_iat;
        int r;

        if (!token || !key || key_len < JWT_KEY_MIN)
                return -EINVAL;
        if (len > JWT_MAX)
                return -E2BIG;
        const char *d1 = memchr(token, '.', len);
        if (!d1)
                return -EINVAL;
        const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
        if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
                return -EINVAL;
        size_t hlen = (size_t)(d1 - token);
        size_t plen = (size_t)(d2 - d1 - 1);
        size_t slen = len - (size_t)(d2 + 1 - token);
        if (hlen == 0 || plen == 0)
                return -EINVAL;

        /* The header first: alg=none (empty signature) and other algorithms stop here. */
        r = check_header(token, hlen);
        if (r < 0)
                return r;
        if (jwt_b64url_decode(d2 + 1, slen, sig, sizeof(sig), &sig_len) < 0 || sig_len != 32)
                return -EBADMSG;
        r = hs256(key, key_len, token, hlen + 1 + plen, mac);
        if (r < 0)
                return r;
        if (CRYPTO_memcmp(mac, sig, sizeof(mac)) != 0)
                return -EBADMSG;

        /* Signed by us: now the claims. */
        r = segment_json(d1 + 1, plen, &claims);
        if (r < 0)
                return r;
        if ((r = int_claim(claims, "exp", &has_exp, &exp)) < 0 ||
            (r = int_claim(claims, "nbf", &has_nbf, &nbf)) < 0 ||
            (r = int_claim(claims, "iat", &has_iat, &iat)) < 0 || !has_exp) {
                json_decref(claims);
                return r < 0 ? r : -EINVAL;
        }
        if (exp <= now || (has_nbf && nbf > now)) {
                json_decref(claims);
                return -EKEYEXPIRED;
        }
        *ret_claims = claims;
        return 0;
}
