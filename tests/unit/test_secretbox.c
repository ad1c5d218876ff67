/* test_secretbox.c - AES-256-GCM sealing: round trips, a known answer computed with another
 * implementation (Python's cryptography), every kind of tampering refused, nonces that never
 * repeat over 100k seals, key ids and key parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "secretbox.h"

static const char ad_text[] = "warren-secret-v1\0org_x\0API_TOKEN";
#define AD_LEN (sizeof(ad_text) - 1)

static void key_0_31(uint8_t key[SECRETBOX_KEY_LEN])
{
        for (int i = 0; i < SECRETBOX_KEY_LEN; i++)
                key[i] = (uint8_t)i;
}

static void from_hex(const char *hex, uint8_t *out, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned v;
                assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
                out[i] = (uint8_t)v;
        }
}

/* AESGCM(bytes(range(32))).encrypt(bytes(range(12)), b"hunter2", ad) in Python. */
static void test_known_answer(void **state)
{
        uint8_t key[SECRETBOX_KEY_LEN], nonce[SECRETBOX_NONCE_LEN], ct[7 + SECRETBOX_TAG_LEN];
        char out[8] = "";

        key_0_31(key);
        for (int i = 0; i < SECRETBOX_NONCE_LEN; i++)
                nonce[i] = (uint8_t)i;
        from_hex("2f77b86fa097f09a32eabdd0222a32518f75de445fe57d", ct, sizeof(ct));
        assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, ct, sizeof(ct),
                                        (uint8_t *)out),
                         0);
        assert_memory_equal(out, "hunter2", 7);

        uint8_t id[SECRETBOX_KEY_ID_LEN], want[SECRETBOX_KEY_ID_LEN];
        assert_int_equal(secretbox_key_id(key, id), 0);
        from_hex("55362adc228be790", want, sizeof(want));
        assert_memory_equal(id, want, sizeof(id));
}

static void test_round_trip(void **state)
{
        uint8_t key[SECRETBOX_KEY_LEN], nonce[SECRETBOX_NONCE_LEN];
        static const char *values[] = { "", "x", "a longer value with spaces and = signs" };

        assert_int_equal(secretbox_key_generate(key), 0);
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
                size_t len = strlen(values[v]);
                uint8_t ct[64], pt[64];
                memset(pt, 0xaa, sizeof(pt));
                assert_int_equal(secretbox_seal(key, ad_text, AD_LEN, values[v], len, nonce, ct),
                                 0);
                if (len)
                        assert_memory_not_equal(ct, values[v], len); /* not the plaintext */
                assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, ct,
                                                len + SECRETBOX_TAG_LEN, pt),
                                 0);
                assert_memory_equal(pt, values[v], len);
                /* No associated data at all works too, and is not the same as some. */
                assert_int_equal(secretbox_seal(key, NULL, 0, values[v], len, nonce, ct), 0);
                assert_int_equal(secretbox_open(key, nonce, NULL, 0, ct, len + SECRETBOX_TAG_LEN,
                                                pt),
                                 0);
                assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, ct,
                                                len + SECRETBOX_TAG_LEN, pt),
                                 -EBADMSG);
        }
        /* A large value (64 KiB, the secrets limit). */
        size_t big = 64 * 1024;
        uint8_t *p = malloc(big), *c = malloc(big + SECRETBOX_TAG_LEN), *o = malloc(big);
        assert_non_null(p);
        assert_non_null(c);
        assert_non_null(o);
        for (size_t i = 0; i < big; i++)
                p[i] = (uint8_t)(i * 7);
        assert_int_equal(secretbox_seal(key, ad_text, AD_LEN, p, big, nonce, c), 0);
        assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, c, big + SECRETBOX_TAG_LEN,
                                        o),
                         0);
        assert_memory_equal(p, o, big);
        free(p);
        free(c);
        free(o);
}

/* Flipping any bit of the ciphertext or tag, or changing the nonce, the associated data or
 * the key, is refused, and the output buffer is wiped rather than left with garbage. */
static void test_tampering(void **state)
{
        const char value[] = "s3cr3t-value";
        const size_t len = sizeof(value) - 1, ct_len = len + SECRETBOX_TAG_LEN;
        uint8_t key[SECRETBOX_KEY_LEN], other[SECRETBOX_KEY_LEN], nonce[SECRETBOX_NONCE_LEN];
        uint8_t ct[64], bad[64], pt[64], zero[64] = { 0 };

        assert_int_equal(secretbox_key_generate(key), 0);
        assert_int_equal(secretbox_key_generate(other), 0);
        assert_int_equal(secretbox_seal(key, ad_text, AD_LEN, value, len, nonce, ct), 0);
        for (size_t i = 0; i < ct_len; i++) {
                for (int bit = 0; bit < 8; bit++) {
                        memcpy(bad, ct, ct_len);
                        bad[i] ^= (uint8_t)(1u << bit);
                        memset(pt, 0x55, sizeof(pt));
                        assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, bad, ct_len,
                                                        pt),
                                         -EBADMSG);
                        assert_memory_equal(pt, zero, len);
                }
        }
        /* Truncated (tag cut, or shorter than a tag), extended. */
        assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, ct, ct_len - 1, pt),
                         -EBADMSG);
        assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, ct, SECRETBOX_TAG_LEN - 1,
                                        pt),
                         -EBADMSG);
        memcpy(bad, ct, ct_len);
        bad[ct_len] = 0;
        assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, bad, ct_len + 1, pt),
                         -EBADMSG);
        /* Another nonce, other associated data (another org, another name), another key. */
        uint8_t nonce2[SECRETBOX_NONCE_LEN];
        memcpy(nonce2, nonce, sizeof(nonce2));
        nonce2[0] ^= 1;
        assert_int_equal(secretbox_open(key, nonce2, ad_text, AD_LEN, ct, ct_len, pt), -EBADMSG);
        static const char ad_org[] = "warren-secret-v1\0org_y\0API_TOKEN";
        static const char ad_name[] = "warren-secret-v1\0org_x\0API_TOKEM";
        assert_int_equal(secretbox_open(key, nonce, ad_org, sizeof(ad_org) - 1, ct, ct_len, pt),
                         -EBADMSG);
        assert_int_equal(secretbox_open(key, nonce, ad_name, sizeof(ad_name) - 1, ct, ct_len,
                                        pt),
                         -EBADMSG);
        assert_int_equal(secretbox_open(other, nonce, ad_text, AD_LEN, ct, ct_len, pt),
                         -EBADMSG);
        /* And the original still opens. */
        assert_int_equal(secretbox_open(key, nonce, ad_text, AD_LEN, ct, ct_len, pt), 0);
        assert_memory_equal(pt, value, len);
}

static int cmp_nonce(const void *a, const void *b)
{
        return memcmp(a, b, SECRETBOX_NONCE_LEN);
}

/* 100,000 seals of the same value under one key: every nonce differs, and so does every
 * ciphertext. */
static void test_nonces_never_repeat(void **state)
{
        enum { N = 100000 };
        uint8_t key[SECRETBOX_KEY_LEN], ct[1 + SECRETBOX_TAG_LEN];
        uint8_t(*nonces)[SECRETBOX_NONCE_LEN] = calloc(N, SECRETBOX_NONCE_LEN);

        assert_non_null(nonces);
        assert_int_equal(secretbox_key_generate(key), 0);
        for (int i = 0; i < N; i++)
                assert_int_equal(secretbox_seal(key, ad_text, AD_LEN, "v", 1, nonces[i], ct), 0);
        qsort(nonces, N, SECRETBOX_NONCE_LEN, cmp_nonce);
        for (int i = 1; i < N; i++)
                assert_memory_not_equal(nonces[i - 1], nonces[i], SECRETBOX_NONCE_LEN);
        free(nonces);
}

static void test_key_parse(void **state)
{
        uint8_t key[SECRETBOX_KEY_LEN], want[SECRETBOX_KEY_LEN];
        const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        const char hex_upper[] =
                "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
        const char b64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        const char b64_nopad[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        const char file[] = "  000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

        key_0_31(want);
        memset(key, 0, sizeof(key));
        assert_int_equal(secretbox_key_parse(hex, strlen(hex), key), 0);
        assert_memory_equal(key, want, sizeof(key));
        memset(key, 0, sizeof(key));
        assert_int_equal(secretbox_key_parse(hex_upper, strlen(hex_upper), key), 0);
        assert_memory_equal(key, want, sizeof(key));
        memset(key, 0, sizeof(key));
        assert_int_equal(secretbox_key_parse(b64, strlen(b64), key), 0);
        assert_memory_equal(key, want, sizeof(key));
        memset(key, 0, sizeof(key));
        assert_int_equal(secretbox_key_parse(b64_nopad, strlen(b64_nopad), key), 0);
        assert_memory_equal(key, want, sizeof(key));
        memset(key, 0, sizeof(key));
        assert_int_equal(secretbox_key_parse(file, strlen(file), key), 0);
        assert_memory_equal(key, want, sizeof(key));

        /* Wrong lengths, wrong characters, base64 of another length, nothing. The output is
         * untouched on failure. */
        static const char *bad[] = {
                "",
                "00",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00",
                "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "0001020304050607 8090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A", /* 33 bytes */
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd#h8=",
                "a passphrase is not a key at all, sorry!!!!",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memset(key, 0x77, sizeof(key));
                assert_int_equal(secretbox_key_parse(bad[i], strlen(bad[i]), key), -EINVAL);
                for (size_t j = 0; j < sizeof(key); j++)
                        assert_int_equal(key[j], 0x77);
        }
        assert_int_equal(secretbox_key_parse(NULL, 0, key), -EINVAL);
}

static void test_key_ids_and_helpers(void **state)
{
        uint8_t a[SECRETBOX_KEY_LEN], b[SECRETBOX_KEY_LEN];
        uint8_t ia[SECRETBOX_KEY_ID_LEN], ia2[SECRETBOX_KEY_ID_LEN], ib[SECRETBOX_KEY_ID_LEN];

        assert_int_equal(secretbox_key_generate(a), 0);
        assert_int_equal(secretbox_key_generate(b), 0);
        assert_memory_not_equal(a, b, sizeof(a));
        assert_int_equal(secretbox_key_id(a, ia), 0);
        assert_int_equal(secretbox_key_id(a, ia2), 0);
        assert_int_equal(secretbox_key_id(b, ib), 0);
        assert_memory_equal(ia, ia2, sizeof(ia));
        assert_memory_not_equal(ia, ib, sizeof(ia));
        /* The id is not a prefix of the key. */
        assert_memory_not_equal(ia, a, sizeof(ia));

        assert_int_equal(secretbox_memcmp("abc", "abc", 3), 0);
        assert_int_not_equal(secretbox_memcmp("abc", "abd", 3), 0);
        char buf[8] = "secret!";
        secretbox_wipe(buf, sizeof(buf));
        for (size_t i = 0; i < sizeof(buf); i++)
                assert_int_equal(buf[i], 0);
        secretbox_wipe(NULL, 10);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_answer),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_tampering),
                cmocka_unit_test(test_nonces_never_repeat),
                cmocka_unit_test(test_key_parse),
                cmocka_unit_test(test_key_ids_and_helpers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
