/* test_jwt.c - the HS256 JWT verifier and signer (jwt.c), strict base64url, and the
 * credential parsers of auth.c (Authorization header, bare tokens, cookies, classification).
 * Pure functions: no store, no clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "jwt.h"

static const uint8_t key[] = "0123456789abcdef0123456789abcdef0123456789abcdef";
#define KEY_LEN 48
static const int64_t now = 1800000000;

/* base64url of a string, into a static buffer rotation (enough for one test line). */
static const char *b64s(const char *s)
{
        static char bufs[4][4096];
        static int i;
        char *b = bufs[i++ % 4];
        assert_true(jwt_b64url_encode((const uint8_t *)s, strlen(s), b, 4096) >= 0);
        return b;
}

/* header.payload signed with HS256 under k (whatever the header says): a token whose
 * signature is right, to reach the checks after it. Returns a malloc'd string. */
static char *forge(const char *header_json, const char *payload_json, const uint8_t *k,
                   size_t klen)
{
        char *t = malloc(8192);
        uint8_t mac[32];
        unsigned int n = 0;
        snprintf(t, 8192, "%s.%s", b64s(header_json), b64s(payload_json));
        assert_non_null(HMAC(EVP_sha256(), k, (int)klen, (const uint8_t *)t, strlen(t), mac, &n));
        size_t l = strlen(t);
        t[l++] = '.';
        assert_true(jwt_b64url_encode(mac, 32, t + l, 8192 - l) > 0);
        return t;
}

static const char hs256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verify under the test key at now; returns the error, decrefs claims. */
static int verify(const char *t)
{
        json_t *claims = NULL;
        int r = jwt_verify(t, strlen(t), key, KEY_LEN, now, &claims);
        if (r == 0) {
                assert_non_null(claims);
                json_decref(claims);
        }
        return r;
}

static char *good_token(void)
{
        json_t *c = json_pack("{s:s, s:s, s:I}", "sub", "key_1", "org", "org_1", "exp",
                              (json_int_t)(now + 60));
        char *t = NULL;
        assert_int_equal(jwt_sign(key, KEY_LEN, c, &t), 0);
        json_decref(c);
        return t;
}

static void test_good_token(void **state)
{
        (void)state;
        char *t = good_token();
        json_t *claims = NULL;

        assert_int_equal(strncmp(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
        assert_int_equal(jwt_verify(t, strlen(t), key, KEY_LEN, now, &claims), 0);
        assert_string_equal(json_string_value(json_object_get(claims, "sub")), "key_1");
        json_decref(claims);
        /* The forger agrees with the signer (so later forgeries test the right thing). */
        char *f = forge(hs256, "{\"exp\":1800000060,\"org\":\"org_1\",\"sub\":\"key_1\"}", key,
                        KEY_LEN);
        assert_string_equal(f, t);
        /* Valid until exp, not at exp. */
        assert_int_equal(jwt_verify(t, strlen(t), key, KEY_LEN, now + 59, &claims), 0);
        json_decref(claims);
        assert_int_equal(jwt_verify(t, strlen(t), key, KEY_LEN, now + 60, &claims),
                         -EKEYEXPIRED);
        /* Another key, a short key. */
        static const uint8_t other[] = "another-secret-another-secret-another-secret";
        assert_int_equal(jwt_verify(t, strlen(t), other, 44, now, &claims), -EBADMSG);
        assert_int_equal(jwt_verify(t, strlen(t), key, 31, now, &claims), -EINVAL);
        json_t *c = json_object();
        char *x = NULL;
        assert_int_equal(jwt_sign(key, 31, c, &x), -EINVAL);
        assert_int_equal(jwt_sign(key, KEY_LEN, NULL, &x), -EINVAL);
        json_decref(c);
        free(f);
        free(t);
}

static void test_tampered(void **state)
{
        (void)state;
        char *t = good_token();
        size_t len = strlen(t);
        char *d2 = strrchr(t, '.');

        /* Every other character in every position of the signature fails, including the
         * last one, whose low bits are unused (strict base64url: one spelling per token). */
        static const char alpha[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (char *p = d2 + 1; *p; p++) {
                char orig = *p;
                for (const char *a = alpha; *a; a++) {
                        if (*a == orig)
                                continue;
                        *p = *a;
                        assert_int_equal(verify(t), -EBADMSG);
                }
                *p = orig;
        }
        assert_int_equal(verify(t), 0);
        /* Truncated or extended signature. */
        t[len - 1] = '\0';
        assert_int_equal(verify(t), -EBADMSG);
        free(t);
        t = good_token();
        char *longer = malloc(strlen(t) + 3);
        sprintf(longer, "%sAA", t);
        assert_int_equal(verify(longer), -EBADMSG);
        free(longer);

        /* Another payload under the old signature. */
        char *forged = malloc(strlen(t) + 200);
        sprintf(forged, "%s.%s%s", b64s(hs256),
                b64s("{\"exp\":1800000060,\"org\":\"org_1\",\"sub\":\"key_ADMIN\"}"),
                strrchr(t, '.'));
        assert_int_equal(verify(forged), -EBADMSG);
        free(forged);
        /* A flipped payload character. */
        char *p = strchr(t, '.') + 5;
        *p = *p == 'A' ? 'B' : 'A';
        assert_int_equal(verify(t), -EBADMSG);
        free(t);
}

static void test_alg_pinned(void **state)
{
        (void)state;
        const char *payload = "{\"exp\":1800000060,\"sub\":\"key_1\",\"org\":\"org_1\"}";
        char t[4096];

        /* alg=none with an empty signature, and with any signature. */
        snprintf(t, sizeof(t), "%s.%s.", b64s("{\"alg\":\"none\",\"typ\":\"JWT\"}"),
                 b64s(payload));
        assert_int_equal(verify(t), -EPROTONOSUPPORT);
        snprintf(t, sizeof(t), "%s.%s.", b64s("{\"alg\":\"none\"}"), b64s(payload));
        assert_int_equal(verify(t), -EPROTONOSUPPORT);
        static const char *headers[] = {
                "{\"alg\":\"none\"}",
                "{\"alg\":\"None\"}",
                "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
                "{\"alg\":\"HS384\"}",
                "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                "{\"alg\":\"ES256\"}",
                "{\"alg\":\"hs256\"}",
                "{\"alg\":\"HS256 \"}",
                "{\"alg\":\"HS256\\u0000\"}",
                "{\"typ\":\"JWT\"}",
                "{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
                "{\"alg\":\"HS256\",\"kid\":\"../../etc/passwd\"}",
                "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                "{\"alg\":\"HS256\",\"jku\":\"http://evil/\"}",
                "{\"alg\":\"HS256\",\"alg\":\"none\"}",
                "{\"alg\":\"none\",\"alg\":\"HS256\"}",
                "{\"alg\":[\"HS256\"]}",
                "[\"HS256\"]",
                "\"HS256\"",
                "{}",
                "{\"alg\":\"HS256\"",
                "",
        };
        for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
                /* Correctly signed under our key: only the header is wrong. */
                char *f = forge(headers[i], payload, key, KEY_LEN);
                int r = verify(f);
                if (r != -EPROTONOSUPPORT && r != -EINVAL)
                        fail_msg("header %s: %d", headers[i], r);
                free(f);
        }
        /* The minimal header without typ is fine. */
        char *f = forge("{\"alg\":\"HS256\"}", payload, key, KEY_LEN);
        assert_int_equal(verify(f), 0);
        free(f);
}

static void test_claims(void **state)
{
        (void)state;
        static const struct {
                const char *payload;
                int want;
        } cases[] = {
                { "{\"sub\":\"key_1\"}", -EINVAL },                       /* no exp */
                { "{\"exp\":\"1800000060\"}", -EINVAL },                  /* exp a string */
                { "{\"exp\":1800000060.5}", -EINVAL },                    /* exp a real */
                { "{\"exp\":null}", -EINVAL },
                { "{\"exp\":1800000000}", -EKEYEXPIRED },                 /* exp == now */
                { "{\"exp\":1}", -EKEYEXPIRED },
                { "{\"exp\":-5}", -EKEYEXPIRED },
                { "{\"exp\":1800000060,\"nbf\":1800000030}", -EKEYEXPIRED }, /* not yet */
                { "{\"exp\":1800000060,\"nbf\":\"x\"}", -EINVAL },
                { "{\"exp\":1800000060,\"iat\":true}", -EINVAL },
                { "{\"exp\":1800000060,\"exp\":1900000000}", -EINVAL },  /* duplicate */
                { "{\"exp\":1800000060,\"nbf\":1799999999,\"iat\":1}", 0 },
                { "[1800000060]", -EINVAL },
                { "1800000060", -EINVAL },
                { "{\"exp\":1800000060", -EINVAL },
                { "", -EINVAL },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *f = forge(hs256, cases[i].payload, key, KEY_LEN);
                int r = verify(f);
                if (r != cases[i].want)
                        fail_msg("payload %s: got %d, want %d", cases[i].payload, r,
                                 cases[i].want);
                free(f);
        }
}

static void test_bad_base64_and_shape(void **state)
{
        (void)state;
        char *t = good_token();
        char buf[8192];
        const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
        int hl = (int)(d1 - t);

        static const char *bad[] = {
                "", ".", "..", "...", "a.b", "a.b.c.d", "eyJ.eyJ.", ".eyJ.x", "x..y",
                "eyJhbGciOiJIUzI1NiJ9", "not a token at all",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int r = verify(bad[i]);
                if (r != -EINVAL && r != -EPROTONOSUPPORT && r != -EBADMSG)
                        fail_msg("%s: %d", bad[i], r);
        }
        /* Standard-alphabet characters, padding, whitespace in the payload segment. */
        static const char *inject[] = { "+", "/", "=", " ", "\n", "%", "*" };
        for (size_t i = 0; i < sizeof(inject) / sizeof(inject[0]); i++) {
                snprintf(buf, sizeof(buf), "%.*s.%s%.*s%s", hl, t, inject[i],
                         (int)(d2 - d1 - 1), d1 + 1, d2);
                assert_int_not_equal(verify(buf), 0);
        }
        /* Padding after the signature. */
        snprintf(buf, sizeof(buf), "%s=", t);
        assert_int_equal(verify(buf), -EBADMSG);
        /* A payload of one leftover character (len % 4 == 1) even if signed. */
        snprintf(buf, sizeof(buf), "%s.A", b64s(hs256));
        uint8_t mac[32];
        unsigned int n = 0;
        HMAC(EVP_sha256(), key, KEY_LEN, (const uint8_t *)buf, strlen(buf), mac, &n);
        size_t l = strlen(buf);
        buf[l++] = '.';
        jwt_b64url_encode(mac, 32, buf + l, sizeof(buf) - l);
        assert_int_equal(verify(buf), -EINVAL);
        /* A token not NUL-terminated where len says it ends: only len bytes count. */
        size_t tl = strlen(t);
        json_t *claims = NULL;
        memcpy(buf, t, tl);
        memcpy(buf + tl, "garbage", 8);
        assert_int_equal(jwt_verify(buf, tl, key, KEY_LEN, now, &claims), 0);
        json_decref(claims);
        assert_int_equal(jwt_verify(buf, tl - 1, key, KEY_LEN, now, &claims), -EBADMSG);
        free(t);
}

static void test_huge(void **state)
{
        (void)state;
        size_t n = 1 << 20;
        char *big = malloc(n + 1);
        memset(big, 'A', n);
        big[n] = '\0';
        json_t *claims = NULL;
        assert_int_equal(jwt_verify(big, n, key, KEY_LEN, now, &claims), -E2BIG);
        assert_int_equal(jwt_verify(big, JWT_MAX + 1, key, KEY_LEN, now, &claims), -E2BIG);
        /* Just under the limit, well-formed dots, huge header: refused, no crash. */
        memset(big, 'e', JWT_MAX);
        big[100] = '.';
        big[JWT_MAX - 50] = '.';
        assert_int_not_equal(jwt_verify(big, JWT_MAX, key, KEY_LEN, now, &claims), 0);
        big[100] = 'e';
        big[3000] = '.';
        assert_int_not_equal(jwt_verify(big, JWT_MAX, key, KEY_LEN, now, &claims), 0);
        /* A large, correctly signed payload under the limit is fine. */
        json_t *c = json_pack("{s:s, s:I}", "pad", "", "exp", (json_int_t)(now + 5));
        char pad[2500];
        memset(pad, 'p', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = '\0';
        json_object_set_new(c, "pad", json_string(pad));
        char *t = NULL;
        assert_int_equal(jwt_sign(key, KEY_LEN, c, &t), 0);
        assert_true(strlen(t) < JWT_MAX);
        assert_int_equal(verify(t), 0);
        free(t);
        json_decref(c);
        free(big);
}

static void test_b64url(void **state)
{
        (void)state;
        uint8_t in[100], out[110];
        char enc[200];
        size_t n;
        for (size_t len = 0; len < sizeof(in); len++) {
                for (size_t i = 0; i < len; i++)
                        in[i] = (uint8_t)(i * 37 + len);
                int e = jwt_b64url_encode(in, len, enc, sizeof(enc));
                assert_true(e >= 0);
                assert_null(strchr(enc, '='));
                assert_int_equal(jwt_b64url_decode(enc, (size_t)e, out, sizeof(out), &n), 0);
                assert_int_equal(n, len);
                assert_memory_equal(in, out, len);
        }
        assert_int_equal(jwt_b64url_encode(in, 3, enc, 4), -ENOSPC);
        assert_int_equal(jwt_b64url_decode("AAAA", 4, out, 2, &n), -ENOSPC);
        assert_int_equal(jwt_b64url_decode("QQ", 2, out, sizeof(out), &n), 0); /* "A" */
        assert_int_equal(jwt_b64url_decode("QR", 2, out, sizeof(out), &n), -EINVAL);
        assert_int_equal(jwt_b64url_decode("Q", 1, out, sizeof(out), &n), -EINVAL);
        assert_int_equal(jwt_b64url_decode("QQ==", 4, out, sizeof(out), &n), -EINVAL);
        assert_int_equal(jwt_b64url_decode("+/", 2, out, sizeof(out), &n), -EINVAL);
}

static void test_header_parsing(void **state)
{
        (void)state;
        struct auth_cred c;

        assert_int_equal(auth_parse_header(NULL, &c), -ENOENT);
        assert_int_equal(auth_parse_header("", &c), -ENOENT);
        assert_int_equal(auth_parse_header("   ", &c), -ENOENT);
        assert_int_equal(auth_parse_header("ApiKey wk_abc", &c), 0);
        assert_int_equal(c.kind, CRED_KEY);
        assert_int_equal(c.len, 6);
        assert_memory_equal(c.text, "wk_abc", 6);
        assert_int_equal(auth_parse_header("apikey \t wk_abc \t ", &c), 0);
        assert_int_equal(c.len, 6);
        assert_int_equal(auth_parse_header("BEARER wk_abc", &c), 0);
        assert_int_equal(c.kind, CRED_KEY);
        assert_int_equal(auth_parse_header("Bearer wst_abcdef", &c), 0);
        assert_int_equal(c.kind, CRED_SESSION);
        assert_int_equal(auth_parse_header("Bearer eyJa.eyJb.sig", &c), 0);
        assert_int_equal(c.kind, CRED_JWT);
        /* Tokens are not API keys. */
        assert_int_equal(auth_parse_header("ApiKey wst_abcdef", &c), -EACCES);
        assert_int_equal(auth_parse_header("ApiKey eyJa.eyJb.sig", &c), -EACCES);
        static const char *bad[] = {
                "Basic dXNlcjpwYXNz", "ApiKey", "ApiKey ", "Bearer", "Bearer  ", "ApiKeywk_abc",
                "Token wk_abc", "ApiKey wk abc", "Bearer wk_\x01", "Bearer wk_\x7f",
                "Bearer wk_\xc3\xa9", "ApiKey: wk_abc", "Bearer\nwk_abc",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (auth_parse_header(bad[i], &c) != -EACCES)
                        fail_msg("accepted %s", bad[i]);
        /* Length bounds: a key up to AUTH_KEY_MAX, a JWT up to AUTH_CRED_MAX. */
        char buf[AUTH_CRED_MAX + 64];
        strcpy(buf, "ApiKey ");
        memset(buf + 7, 'k', AUTH_KEY_MAX);
        buf[7 + AUTH_KEY_MAX] = '\0';
        assert_int_equal(auth_parse_header(buf, &c), 0);
        strcat(buf, "k");
        assert_int_equal(auth_parse_header(buf, &c), -EACCES);
        strcpy(buf, "Bearer eyJ");
        memset(buf + 10, 'a', AUTH_CRED_MAX - 3);
        buf[10 + AUTH_CRED_MAX - 3] = '\0';
        buf[20] = '.';
        buf[30] = '.';
        assert_int_equal(auth_parse_header(buf, &c), 0);
        assert_int_equal(c.kind, CRED_JWT);
        assert_int_equal(c.len, AUTH_CRED_MAX);
        strcat(buf, "a");
        assert_int_equal(auth_parse_header(buf, &c), -EACCES);

        /* Bare tokens (?token=, cookie). */
        assert_int_equal(auth_parse_token("wst_x", 5, &c), 0);
        assert_int_equal(c.kind, CRED_SESSION);
        assert_int_equal(auth_parse_token("", 0, &c), -EACCES);
        assert_int_equal(auth_parse_token("a b", 3, &c), -EACCES);
        assert_int_equal(auth_parse_token(NULL, 0, &c), -EACCES);

        /* Classification. */
        assert_int_equal(auth_classify("wst_", 4), CRED_KEY);
        assert_int_equal(auth_classify("eyJ.a", 5), CRED_KEY);
        assert_int_equal(auth_classify("eyJ.a.b.c", 9), CRED_KEY);
        assert_int_equal(auth_classify("xeyJ.a.b", 8), CRED_KEY);
}

static void test_cookies(void **state)
{
        (void)state;
        const char *v;
        size_t n;

        assert_int_equal(auth_cookie_find(NULL, "warren_session", &v, &n), -ENOENT);
        assert_int_equal(auth_cookie_find("", "warren_session", &v, &n), -ENOENT);
        assert_int_equal(auth_cookie_find("warren_session=wst_a", "warren_session", &v, &n), 0);
        assert_int_equal(n, 5);
        assert_memory_equal(v, "wst_a", 5);
        assert_int_equal(auth_cookie_find("a=1; warren_session=wst_b ; c=3", "warren_session",
                                          &v, &n),
                         0);
        assert_int_equal(n, 5);
        assert_memory_equal(v, "wst_b", 5);
        assert_int_equal(auth_cookie_find("a=1;warren_session=\"wst_c\"", "warren_session", &v,
                                          &n),
                         0);
        assert_int_equal(n, 5);
        assert_memory_equal(v, "wst_c", 5);
        /* Names must match exactly. */
        assert_int_equal(auth_cookie_find("xwarren_session=1; warren_sessionx=2",
                                          "warren_session", &v, &n),
                         -ENOENT);
        assert_int_equal(auth_cookie_find("warren_session", "warren_session", &v, &n), -ENOENT);
        assert_int_equal(auth_cookie_find(";;;", "warren_session", &v, &n), -ENOENT);
        assert_int_equal(auth_cookie_find("warren_session=", "warren_session", &v, &n), 0);
        assert_int_equal(n, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good_token),
                cmocka_unit_test(test_tampered),
                cmocka_unit_test(test_alg_pinned),
                cmocka_unit_test(test_claims),
                cmocka_unit_test(test_bad_base64_and_shape),
                cmocka_unit_test(test_huge),
                cmocka_unit_test(test_b64url),
                cmocka_unit_test(test_header_parsing),
                cmocka_unit_test(test_cookies),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
