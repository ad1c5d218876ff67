/* fuzz_proto.c - libFuzzer harness for the agent protocol codec.
 *
 * Input: a frame as it arrives on the socket, i.e. a 12-byte header followed by a SPAWN
 * payload (inputs shorter than a header are tried as a payload alone). Whatever the bytes,
 * decoding must not crash or read out of bounds, and anything the decoder accepts must
 * re-encode to exactly the same bytes: one request has one encoding, so a check made on
 * the decoded form holds for what was sent.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* Stop on a violated property in any build (assert() would vanish under NDEBUG). */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        __builtin_trap();                                                          \
        } while (0)

static void fuzz_header(const uint8_t *data)
{
        struct proto_hdr h;
        uint8_t re[PROTO_HDR_SIZE];

        if (proto_hdr_decode(data, &h) < 0)
                return;
        CHECK(h.len >= PROTO_HDR_SIZE - 4 && h.len <= PROTO_MAX_FRAME);
        proto_hdr_encode(re, h.type, h.flags, h.job, h.len - (PROTO_HDR_SIZE - 4));
        CHECK(memcmp(re, data, PROTO_HDR_SIZE) == 0);
}

static void fuzz_spawn(const uint8_t *data, size_t size)
{
        struct proto_spawn s;
        uint8_t *payload, *re = NULL;
        size_t relen = 0;

        /* An exact-size heap copy, so ASan sees any read past the end of the payload. */
        payload = malloc(size ? size : 1);
        if (!payload)
                return;
        memcpy(payload, data, size);
        if (proto_spawn_decode(payload, size, &s) == 0) {
                CHECK(s.argc >= 1 && s.argc <= PROTO_MAX_ARGS && s.envc <= PROTO_MAX_ENV);
                CHECK(s.cwd[0] == '/' && s.argv[0][0] != '\0');
                CHECK(s.argv[s.argc] == NULL && s.env[s.envc] == NULL);
                CHECK(proto_spawn_encode(&s, &re, &relen) == 0);
                CHECK(relen == size && memcmp(re, payload, size) == 0);
                free(re);
                proto_spawn_free(&s);
        }
        free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size >= PROTO_HDR_SIZE) {
                fuzz_header(data);
                fuzz_spawn(data + PROTO_HDR_SIZE, size - PROTO_HDR_SIZE);
        } else {
                fuzz_spawn(data, size);
        }
        return 0;
}
