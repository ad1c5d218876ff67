/* test_proto.c - the agent protocol codec: header and SPAWN round trips, and rejection of
 * truncated, overlong and malformed payloads (the decoder faces a hostile peer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "util.h"

#define FIXED 36 /* size of the fixed part of a SPAWN payload (see proto.c) */

/* Assert that a and b describe the same request. */
static void assert_spawn_equal(const struct proto_spawn *a, const struct proto_spawn *b)
{
        assert_int_equal(a->uid, b->uid);
        assert_int_equal(a->gid, b->gid);
        assert_int_equal(a->timeout_ms, b->timeout_ms);
        assert_int_equal(a->flags, b->flags);
        assert_int_equal(a->cols, b->cols);
        assert_int_equal(a->rows, b->rows);
        assert_true(a->nofile == b->nofile);
        assert_string_equal(a->cwd, b->cwd);
        assert_int_equal(a->argc, b->argc);
        for (uint32_t i = 0; i < a->argc; i++)
                assert_string_equal(a->argv[i], b->argv[i]);
        assert_int_equal(a->envc, b->envc);
        for (uint32_t i = 0; i < a->envc; i++)
                assert_string_equal(a->env[i], b->env[i]);
}

/* Encode s, decode it back, compare, and check the decoded arrays are NULL-terminated. */
static void round_trip(const struct proto_spawn *s)
{
        cleanup_free uint8_t *buf = NULL;
        struct proto_spawn d;
        size_t len;

        assert_int_equal(proto_spawn_encode(s, &buf, &len), 0);
        assert_true(len >= FIXED);
        assert_int_equal(proto_spawn_decode(buf, len, &d), 0);
        assert_spawn_equal(s, &d);
        assert_null(d.argv[d.argc]);
        assert_null(d.env[d.envc]);
        /* Strings point into the payload, not into the caller's struct. */
        assert_true((const uint8_t *)d.cwd >= buf && (const uint8_t *)d.cwd < buf + len);
        proto_spawn_free(&d);
        assert_null(d.argv);
        proto_spawn_free(&d); /* idempotent */
}

static const char *sample_argv[] = { "/bin/sh", "-c", "echo hi; exit 3", NULL };
static const char *sample_env[] = { "PATH=/usr/bin:/bin", "HOME=/home/user", "EMPTY=", NULL };

static struct proto_spawn sample(void)
{
        struct proto_spawn s = {
                .uid = 1001,
                .gid = 1001,
                .timeout_ms = 30000,
                .flags = PROTO_SPAWN_PTY | PROTO_SPAWN_STDIN,
                .cols = 80,
                .rows = 24,
                .nofile = 0x100000001ull, /* both halves of the u64 matter */
                .cwd = "/home/user",
                .argc = 3,
                .argv = sample_argv,
                .envc = 3,
                .env = sample_env,
        };
        return s;
}

/* Encode the sample into a payload for the rejection tests. */
static uint8_t *sample_payload(size_t *ret_len)
{
        struct proto_spawn s = sample();
        uint8_t *buf;

        assert_int_equal(proto_spawn_encode(&s, &buf, ret_len), 0);
        return buf;
}

/* Decode must fail with -EPROTO, and leave ret untouched. */
static void assert_rejected(const uint8_t *buf, size_t len)
{
        struct proto_spawn d;

        memset(&d, 0xa5, sizeof(d));
        /* Copy to an exact-size heap buffer so ASan catches any read past the end. */
        uint8_t *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        if (len)
                memcpy(copy, buf, len);
        assert_int_equal(proto_spawn_decode(copy, len, &d), -EPROTO);
        for (size_t i = 0; i < sizeof(d); i++)
                assert_int_equal(((uint8_t *)&d)[i], 0xa5);
        free(copy);
}

static void test_hdr_round_trip(void **state)
{
        static const struct {
                uint8_t type, flags;
                uint32_t job;
                size_t payload;
        } cases[] = {
                { PROTO_HELLO, 0, 0, 8 },
                { PROTO_OUTPUT, PROTO_STREAM_STDERR, 7, PROTO_MAX_DATA },
                { PROTO_STDIN, PROTO_F_EOF, 0xffffffffu, 0 },
                { PROTO_KILLALL, 0xff, 0x01020304u, PROTO_MAX_FRAME - 8 },
        };
        uint8_t buf[PROTO_HDR_SIZE];
        struct proto_hdr h;

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                proto_hdr_encode(buf, cases[i].type, cases[i].flags, cases[i].job,
                                 cases[i].payload);
                assert_int_equal(proto_hdr_decode(buf, &h), 0);
                assert_int_equal(h.len, cases[i].payload + 8);
                assert_int_equal(h.type, cases[i].type);
                assert_int_equal(h.flags, cases[i].flags);
                assert_int_equal(h.job, cases[i].job);
        }

        /* The wire layout is fixed: little-endian, reserved bytes zero. */
        proto_hdr_encode(buf, PROTO_EXIT, 2, 0x11223344u, 0x0102);
        static const uint8_t want[PROTO_HDR_SIZE] = { 0x0a, 0x01, 0, 0, PROTO_EXIT, 2, 0, 0,
                                                      0x44, 0x33, 0x22, 0x11 };
        assert_memory_equal(buf, want, sizeof(want));
}

static void test_hdr_reject(void **state)
{
        uint8_t buf[PROTO_HDR_SIZE];
        struct proto_hdr h = { .len = 99 };

        /* len must cover the 8 header bytes after it ... */
        for (uint32_t len = 0; len < 8; len++) {
                proto_hdr_encode(buf, PROTO_PING, 0, 0, 0);
                proto_put_u32(buf, len);
                assert_int_equal(proto_hdr_decode(buf, &h), -EPROTO);
        }
        /* ... and not pass the frame limit (a peer must not make us buffer more). */
        proto_put_u32(buf, PROTO_MAX_FRAME);
        assert_int_equal(proto_hdr_decode(buf, &h), 0);
        proto_put_u32(buf, PROTO_MAX_FRAME + 1);
        assert_int_equal(proto_hdr_decode(buf, &h), -EPROTO);
        proto_put_u32(buf, 0xffffffffu);
        assert_int_equal(proto_hdr_decode(buf, &h), -EPROTO);

        /* Reserved bytes must be zero. */
        proto_hdr_encode(buf, PROTO_PING, 0, 0, 0);
        buf[7] = 1;
        h.len = 99;
        assert_int_equal(proto_hdr_decode(buf, &h), -EPROTO);
        assert_int_equal(h.len, 99);
}

static void test_spawn_round_trip(void **state)
{
        struct proto_spawn s = sample();

        round_trip(&s);

        /* No environment at all, both as NULL and as an empty array. */
        s.envc = 0;
        s.env = NULL;
        round_trip(&s);
        static const char *none[] = { NULL };
        s.env = none;
        round_trip(&s);

        /* Extremes of every integer field. */
        s.uid = 0;
        s.gid = 0xffffffffu;
        s.timeout_ms = 0xffffffffu;
        s.flags = 0;
        s.cols = 0xffff;
        s.rows = 0;
        s.nofile = UINT64_MAX;
        round_trip(&s);
}

static void test_spawn_empty_strings(void **state)
{
        static const char *argv[] = { "x", "", "", "y", "" };
        static const char *env[] = { "A=", "B==", "C=with spaces and\nnewline" };
        struct proto_spawn s = {
                .cwd = "/",
                .argc = 5,
                .argv = argv,
                .envc = 3,
                .env = env,
        };

        round_trip(&s);
}

/* The largest counts the protocol allows, and one more is refused by both sides. */
static void test_spawn_max_counts(void **state)
{
        const char **argv = calloc(PROTO_MAX_ARGS + 2, sizeof(*argv));
        const char **env = calloc(PROTO_MAX_ENV + 2, sizeof(*env));
        struct proto_spawn s = { .cwd = "/tmp" };
        cleanup_free uint8_t *buf = NULL;
        size_t len;

        assert_non_null(argv);
        assert_non_null(env);
        for (size_t i = 0; i < PROTO_MAX_ARGS + 1; i++)
                argv[i] = i == 0 ? "/bin/true" : "arg";
        for (size_t i = 0; i < PROTO_MAX_ENV + 1; i++)
                env[i] = "K=v";
        s.argv = argv;
        s.env = env;
        s.argc = PROTO_MAX_ARGS;
        s.envc = PROTO_MAX_ENV;
        round_trip(&s);

        s.argc = PROTO_MAX_ARGS + 1;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.argc = PROTO_MAX_ARGS;
        s.envc = PROTO_MAX_ENV + 1;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);

        /* A valid max-count payload with its count raised by one, and one more string
         * appended, must still be refused by the decoder. */
        s.envc = PROTO_MAX_ENV;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), 0);
        uint8_t *big = malloc(len + 8);
        assert_non_null(big);
        memcpy(big, buf, len);
        proto_put_u32(big + len, 3);
        memcpy(big + len + 4, "K=v", 4);
        proto_put_u32(big + 32, PROTO_MAX_ENV + 1);
        assert_rejected(big, len + 8);
        proto_put_u32(big + 32, PROTO_MAX_ENV);
        proto_put_u32(big + 28, PROTO_MAX_ARGS + 1);
        assert_rejected(big, len + 8);
        free(big);
        free(argv);
        free(env);
}

/* Every proper prefix of a valid payload is rejected, and so is one extra byte. */
static void test_spawn_truncated_and_overlong(void **state)
{
        size_t len;
        cleanup_free uint8_t *buf = sample_payload(&len);

        for (size_t cut = 0; cut < len; cut++)
                assert_rejected(buf, cut);

        uint8_t *longer = malloc(len + 1);
        assert_non_null(longer);
        memcpy(longer, buf, len);
        longer[len] = 0;
        assert_rejected(longer, len + 1);
        free(longer);
}

static void test_spawn_malformed(void **state)
{
        size_t len;
        cleanup_free uint8_t *good = sample_payload(&len);
        uint8_t *b = malloc(len);
        size_t cwd_off = FIXED, argv0_off = FIXED + 4 + strlen("/home/user") + 1;
        size_t env0_off = argv0_off;

        assert_non_null(b);
        for (size_t i = 0; i < 3; i++)
                env0_off += 4 + strlen(sample_argv[i]) + 1;

#define RESET() memcpy(b, good, len)
        /* Counts: argc 0, argc/envc over the bound, counts the payload cannot hold. */
        RESET();
        proto_put_u32(b + 28, 0);
        assert_rejected(b, len);
        RESET();
        proto_put_u32(b + 28, PROTO_MAX_ARGS + 1);
        assert_rejected(b, len);
        RESET();
        proto_put_u32(b + 28, 0xffffffffu);
        assert_rejected(b, len);
        RESET();
        proto_put_u32(b + 32, 0xffffffffu);
        assert_rejected(b, len);
        RESET();
        proto_put_u32(b + 28, 4); /* one more argv than present */
        assert_rejected(b, len);
        RESET();
        proto_put_u32(b + 32, 2); /* one env string left over */
        assert_rejected(b, len);

        /* Unknown flag bits. */
        RESET();
        proto_put_u32(b + 12, 8); /* the first bit after PROTO_SPAWN_KEEP */
        assert_rejected(b, len);
        RESET();
        proto_put_u32(b + 12, 0x80000000u);
        assert_rejected(b, len);

        /* String lengths: huge (would wrap a naive bounds check), one too long, one short
         * (the NUL is not where the length says). */
        static const uint32_t bad_lens[] = { 0xffffffffu, 0xfffffffbu, 0x7fffffffu };
        for (size_t i = 0; i < ARRAY_SIZE(bad_lens); i++) {
                RESET();
                proto_put_u32(b + cwd_off, bad_lens[i]);
                assert_rejected(b, len);
        }
        RESET();
        proto_put_u32(b + cwd_off, (uint32_t)strlen("/home/user") + 1);
        assert_rejected(b, len);
        RESET();
        proto_put_u32(b + cwd_off, (uint32_t)strlen("/home/user") - 1);
        assert_rejected(b, len);

        /* Missing terminator, and a NUL hidden inside a string. */
        RESET();
        b[cwd_off + 4 + strlen("/home/user")] = 'x';
        assert_rejected(b, len);
        RESET();
        b[argv0_off + 4 + 3] = '\0'; /* "/bi\0/sh" */
        assert_rejected(b, len);

        /* cwd relative; cwd empty; argv[0] empty. */
        RESET();
        b[cwd_off + 4] = 'h';
        assert_rejected(b, len);
        {
                static const char *argv[] = { "a" };
                struct proto_spawn s = { .cwd = "/", .argc = 1, .argv = argv };
                cleanup_free uint8_t *p = NULL;
                size_t n;

                assert_int_equal(proto_spawn_encode(&s, &p, &n), 0);
                uint8_t *q = malloc(n);
                assert_non_null(q);
                memcpy(q, p, n);
                q[FIXED + 4] = '\0'; /* cwd "/" becomes "" with an early NUL: bad */
                assert_rejected(q, n);
                /* cwd "" properly encoded: length 0 then NUL, then argv[0]. */
                uint8_t r[FIXED + 5 + 6];
                memcpy(r, p, FIXED);
                proto_put_u32(r + FIXED, 0);
                r[FIXED + 4] = '\0';
                proto_put_u32(r + FIXED + 5, 1);
                memcpy(r + FIXED + 9, "a", 2);
                assert_rejected(r, sizeof(r));
                /* argv[0] "" */
                memcpy(q, p, n);
                proto_put_u32(q + FIXED + 6, 0);
                q[FIXED + 10] = '\0';
                assert_rejected(q, n - 1);
                free(q);
        }

        /* Environment entries need NAME=: no '=', empty name. */
        RESET();
        b[env0_off + 4 + 4] = 'X'; /* "PATHX/usr/bin:/bin" */
        assert_rejected(b, len);
        RESET();
        b[env0_off + 4] = '=';
        assert_rejected(b, len);
#undef RESET
        free(b);
}

/* Flip every bit of a valid payload: each mutant is either rejected or decodes to a
 * request that re-encodes to exactly the mutant (no two encodings of one request). */
static void test_spawn_bit_flips(void **state)
{
        size_t len;
        cleanup_free uint8_t *good = sample_payload(&len);
        uint8_t *b = malloc(len);
        size_t accepted = 0;

        assert_non_null(b);
        for (size_t i = 0; i < len; i++) {
                for (int bit = 0; bit < 8; bit++) {
                        struct proto_spawn d;

                        memcpy(b, good, len);
                        b[i] ^= (uint8_t)(1u << bit);
                        if (proto_spawn_decode(b, len, &d) < 0)
                                continue;
                        accepted++;
                        cleanup_free uint8_t *re = NULL;
                        size_t relen;
                        assert_int_equal(proto_spawn_encode(&d, &re, &relen), 0);
                        assert_int_equal(relen, len);
                        assert_memory_equal(re, b, len);
                        proto_spawn_free(&d);
                }
        }
        /* Flips in integer fields and string bytes stay valid: the test saw both kinds. */
        assert_true(accepted > 0);
        assert_true(accepted < len * 8);
        free(b);
}

static void test_spawn_encode_invalid(void **state)
{
        static const char *argv[] = { "/bin/true" };
        static const char *noname[] = { "=x" };
        static const char *noeq[] = { "PATH" };
        static const char *nullarg[] = { "/bin/true", NULL };
        static const char *emptyarg0[] = { "" };
        struct proto_spawn s = { .cwd = "/", .argc = 1, .argv = argv };
        uint8_t *buf = (uint8_t *)0x1;
        size_t len = 7;

        assert_int_equal(proto_spawn_encode(NULL, &buf, &len), -EINVAL);
        s.cwd = NULL;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.cwd = "relative";
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.cwd = "";
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.cwd = "/";
        s.argc = 0;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.argc = 1;
        s.argv = emptyarg0;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.argv = nullarg;
        s.argc = 2;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.argv = argv;
        s.argc = 1;
        s.flags = 8;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.flags = 0;
        s.envc = 1;
        s.env = NULL;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.env = noname;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        s.env = noeq;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -EINVAL);
        /* Outputs untouched on failure. */
        assert_ptr_equal(buf, (uint8_t *)0x1);
        assert_int_equal(len, 7);
}

/* A payload that would not fit in one frame is -E2BIG, and one that just fits is fine. */
static void test_spawn_too_big(void **state)
{
        static const char *argv[2] = { "/bin/true", NULL };
        struct proto_spawn s = { .cwd = "/", .argc = 2, .argv = argv };
        size_t max_payload = PROTO_MAX_FRAME - 8;
        /* fixed + cwd(4+1+1) + argv0(4+9+1) + argv1(4+n+1) == max_payload */
        size_t n = max_payload - FIXED - 6 - 14 - 5;
        char *big = malloc(n + 2);
        uint8_t *buf = NULL;
        size_t len;

        assert_non_null(big);
        memset(big, 'a', n + 1);
        big[n] = '\0';
        argv[1] = big;
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), 0);
        assert_int_equal(len, max_payload);
        struct proto_spawn d;
        assert_int_equal(proto_spawn_decode(buf, len, &d), 0);
        assert_int_equal(strlen(d.argv[1]), n);
        proto_spawn_free(&d);
        free(buf);
        buf = NULL;

        big[n] = 'a';
        big[n + 1] = '\0';
        assert_int_equal(proto_spawn_encode(&s, &buf, &len), -E2BIG);
        assert_null(buf);
        free(big);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hdr_round_trip),
                cmocka_unit_test(test_hdr_reject),
                cmocka_unit_test(test_spawn_round_trip),
                cmocka_unit_test(test_spawn_empty_strings),
                cmocka_unit_test(test_spawn_max_counts),
                cmocka_unit_test(test_spawn_truncated_and_overlong),
                cmocka_unit_test(test_spawn_malformed),
                cmocka_unit_test(test_spawn_bit_flips),
                cmocka_unit_test(test_spawn_encode_invalid),
                cmocka_unit_test(test_spawn_too_big),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
