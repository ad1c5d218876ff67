/* proto.c - codec for the agent protocol between warrend and warren-init (see proto.h).
 *
 * SPAWN payload layout (all integers little-endian):
 *
 *   offset 0   u32 uid
 *   offset 4   u32 gid
 *   offset 8   u32 timeout_ms
 *   offset 12  u32 flags         only PROTO_SPAWN_* bits
 *   offset 16  u16 cols
 *   offset 18  u16 rows
 *   offset 20  u64 nofile
 *   offset 28  u32 argc          1..PROTO_MAX_ARGS
 *   offset 32  u32 envc          0..PROTO_MAX_ENV
 *   offset 36  strings: cwd, argv[0..argc-1], env[0..envc-1], each as
 *              u32 n, then n bytes without NUL, then one NUL byte
 *
 * and nothing after the last string. The decoder is the gate between the daemon and code
 * inside a sandbox (and, reversed, what a compromised daemon connection could feed init),
 * so it trusts nothing: every length is checked against the bytes left, counts are bounded
 * before anything is allocated, each string must end with its NUL exactly where its length
 * says and hold no NUL before it, and the semantic rules below hold. The encoder enforces
 * the same rules, so whatever it produces decodes to the same request, and whatever the
 * decoder accepts re-encodes to the same bytes.
 *
 * Semantic rules: argc >= 1 and argv[0] non-empty (nothing to execute otherwise); cwd
 * absolute; every env entry "NAME=value" with a non-empty NAME; no unknown flag bits (an
 * old init must not silently ignore a flag it does not know).
 *
 * Plain libc only: this file is linked into the static warren-init.
 */
#include "proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SPAWN_FIXED_SIZE 36
#define SPAWN_FLAGS_KNOWN (PROTO_SPAWN_PTY | PROTO_SPAWN_STDIN | PROTO_SPAWN_KEEP)
/* Largest SPAWN payload: a frame's len field also counts the 8 header bytes after it. */
#define SPAWN_MAX_PAYLOAD ((size_t)PROTO_MAX_FRAME - (PROTO_HDR_SIZE - 4))

/* Parse and validate a frame header: len must cover the 8 header bytes after it and stay
 * within PROTO_MAX_FRAME (a peer must not make us buffer more), and the reserved field
 * must be 0. The type is not checked here: the caller's dispatch rejects unknown types. */
int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *ret)
{
        uint32_t len = proto_get_u32(buf);

        if (len < PROTO_HDR_SIZE - 4 || len > PROTO_MAX_FRAME)
                return -EPROTO;
        if (proto_get_u16(buf + 6) != 0)
                return -EPROTO;
        ret->len = len;
        ret->type = buf[4];
        ret->flags = buf[5];
        ret->job = proto_get_u32(buf + 8);
        return 0;
}

/* Write a header. Assumes payload_len <= PROTO_MAX_FRAME - 8 (callers send at most
 * PROTO_MAX_DATA or an encoded SPAWN, which proto_spawn_encode() bounds). */
void proto_hdr_encode(uint8_t *buf, uint8_t type, uint8_t flags, uint32_t job, size_t payload_len)
{
        proto_put_u32(buf, (uint32_t)(payload_len + (PROTO_HDR_SIZE - 4)));
        buf[4] = type;
        buf[5] = flags;
        proto_put_u16(buf + 6, 0);
        proto_put_u32(buf + 8, job);
}

static void put_u64(uint8_t *p, uint64_t v)
{
        proto_put_u32(p, (uint32_t)v);
        proto_put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const uint8_t *p)
{
        return (uint64_t)proto_get_u32(p) | ((uint64_t)proto_get_u32(p + 4) << 32);
}

/* True if env entry s has the form NAME=value with a non-empty NAME. */
static bool env_entry_ok(const char *s, size_t n)
{
        const char *eq = memchr(s, '=', n);

        return eq && eq != s;
}

/* Add the encoded size of string s to *total; false if the sum would pass max. */
static bool add_str_size(const char *s, size_t *total, size_t max)
{
        size_t n = strlen(s);

        if (n > max || *total > max - n || max - n - *total < 5)
                return false;
        *total += 4 + n + 1;
        return true;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
        size_t n = strlen(s);

        proto_put_u32(p, (uint32_t)n);
        memcpy(p + 4, s, n);
        p[4 + n] = '\0';
        return p + 4 + n + 1;
}

/* Encode s as a SPAWN payload. -EINVAL if s breaks a rule the decoder enforces, -E2BIG if
 * the payload would not fit in one frame, -ENOMEM. */
int proto_spawn_encode(const struct proto_spawn *s, uint8_t **ret_buf, size_t *ret_len)
{
        size_t total = SPAWN_FIXED_SIZE;
        uint8_t *buf, *p;

        if (!s || !s->cwd || s->cwd[0] != '/')
                return -EINVAL;
        if (s->argc < 1 || s->argc > PROTO_MAX_ARGS || !s->argv || s->envc > PROTO_MAX_ENV ||
            (s->envc > 0 && !s->env))
                return -EINVAL;
        if (s->flags & ~SPAWN_FLAGS_KNOWN)
                return -EINVAL;
        if (!s->argv[0] || s->argv[0][0] == '\0')
                return -EINVAL;
        for (uint32_t i = 0; i < s->argc; i++)
                if (!s->argv[i])
                        return -EINVAL;
        for (uint32_t i = 0; i < s->envc; i++)
                if (!s->env[i] || !env_entry_ok(s->env[i], strlen(s->env[i])))
                        return -EINVAL;

        if (!add_str_size(s->cwd, &total, SPAWN_MAX_PAYLOAD))
                return -E2BIG;
        for (uint32_t i = 0; i < s->argc; i++)
                if (!add_str_size(s->argv[i], &total, SPAWN_MAX_PAYLOAD))
                        return -E2BIG;
        for (uint32_t i = 0; i < s->envc; i++)
                if (!add_str_size(s->env[i], &total, SPAWN_MAX_PAYLOAD))
                        return -E2BIG;

        buf = malloc(total);
        if (!buf)
                return -ENOMEM;
        proto_put_u32(buf + 0, s->uid);
        proto_put_u32(buf + 4, s->gid);
        proto_put_u32(buf + 8, s->timeout_ms);
        proto_put_u32(buf + 12, s->flags);
        proto_put_u16(buf + 16, s->cols);
        proto_put_u16(buf + 18, s->rows);
        put_u64(buf + 20, s->nofile);
        proto_put_u32(buf + 28, s->argc);
        proto_put_u32(buf + 32, s->envc);
        p = buf + SPAWN_FIXED_SIZE;
        p = put_str(p, s->cwd);
        for (uint32_t i = 0; i < s->argc; i++)
                p = put_str(p, s->argv[i]);
        for (uint32_t i = 0; i < s->envc; i++)
                p = put_str(p, s->env[i]);

        *ret_buf = buf;
        *ret_len = (size_t)(p - buf);
        return 0;
}

/* Take one string from the cursor (*pos into payload of len bytes). The declared length is
 * compared with what is left before any arithmetic that could wrap, the terminating NUL
 * must be where the length says, and no NUL may come earlier (a hidden NUL would make the
 * string the decoder validated differ from the one exec sees). */
static int take_str(const uint8_t *payload, size_t len, size_t *pos, const char **ret,
                    size_t *ret_n)
{
        size_t left = len - *pos;
        uint32_t n;

        if (left < 4)
                return -EPROTO;
        n = proto_get_u32(payload + *pos);
        left -= 4;
        if (left < 1 || n > left - 1)
                return -EPROTO;
        const uint8_t *s = payload + *pos + 4;
        if (s[n] != '\0' || memchr(s, '\0', n))
                return -EPROTO;
        *ret = (const char *)s;
        *ret_n = n;
        *pos += 4 + (size_t)n + 1;
        return 0;
}

/* Decode a SPAWN payload (layout at the top of this file). On success argv and env are
 * malloc'd arrays of argc+1 / envc+1 pointers into payload, NULL-terminated so they can be
 * handed to execve() as they are. Nothing is written to *ret on failure. */
int proto_spawn_decode(const uint8_t *payload, size_t len, struct proto_spawn *ret)
{
        struct proto_spawn s = { 0 };
        const char **argv = NULL, **env = NULL;
        size_t pos = SPAWN_FIXED_SIZE, n;
        int r;

        if (!payload || len < SPAWN_FIXED_SIZE || len > SPAWN_MAX_PAYLOAD)
                return -EPROTO;
        s.uid = proto_get_u32(payload + 0);
        s.gid = proto_get_u32(payload + 4);
        s.timeout_ms = proto_get_u32(payload + 8);
        s.flags = proto_get_u32(payload + 12);
        s.cols = proto_get_u16(payload + 16);
        s.rows = proto_get_u16(payload + 18);
        s.nofile = get_u64(payload + 20);
        s.argc = proto_get_u32(payload + 28);
        s.envc = proto_get_u32(payload + 32);

        if (s.flags & ~SPAWN_FLAGS_KNOWN)
                return -EPROTO;
        if (s.argc < 1 || s.argc > PROTO_MAX_ARGS || s.envc > PROTO_MAX_ENV)
                return -EPROTO;
        /* Each string takes at least 5 bytes: refuse before allocating for counts the
         * payload cannot hold. Both counts are bounded, so the sum cannot overflow. */
        if ((size_t)(1 + s.argc + s.envc) * 5 > len - SPAWN_FIXED_SIZE)
                return -EPROTO;

        r = take_str(payload, len, &pos, &s.cwd, &n);
        if (r < 0)
                return r;
        if (s.cwd[0] != '/')
                return -EPROTO;

        argv = calloc((size_t)s.argc + 1, sizeof(*argv));
        if (!argv)
                return -ENOMEM;
        env = calloc((size_t)s.envc + 1, sizeof(*env));
        if (!env) {
                free(argv);
                return -ENOMEM;
        }

        r = -EPROTO;
        for (uint32_t i = 0; i < s.argc; i++) {
                if (take_str(payload, len, &pos, &argv[i], &n) < 0)
                        goto fail;
                if (i == 0 && n == 0)
                        goto fail;
        }
        for (uint32_t i = 0; i < s.envc; i++) {
                if (take_str(payload, len, &pos, &env[i], &n) < 0)
                        goto fail;
                if (!env_entry_ok(env[i], n))
                        goto fail;
        }
        if (pos != len)
                goto fail;

        s.argv = argv;
        s.env = env;
        *ret = s;
        return 0;

fail:
        free(argv);
        free(env);
        return r;
}

/* Free the arrays of a decoded spawn (not the strings: they live in the payload). Accepts
 * a zeroed struct and may be called twice. */
void proto_spawn_free(struct proto_spawn *s)
{
        if (!s)
                return;
        free(s->argv);
        free(s->env);
        s->argv = NULL;
        s->env = NULL;
        s->argc = 0;
        s->envc = 0;
}
