/* fuzz_init_frames.c - libFuzzer harness for warren-init's frame decoding (src/init/frames.c).
 *
 * Input: bytes as they arrive on a control connection, possibly several frames. They are
 * decoded the way the serve loop does (frames_next() until it asks for more or refuses),
 * and each accepted request is checked: it lies inside the input, it has the exact shape
 * its type promises, and feeding any shorter prefix of the same frame only ever asks for
 * more bytes (a frame is never accepted or refused before it is complete, except for a
 * header that is bad on its own).
 *
 * frames.c is not part of any host library (it is linked into the static warren-init), so
 * it is compiled into this harness directly.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/init/frames.c"

/* Stop on a violated property in any build (assert() would vanish under NDEBUG). */
#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        __builtin_trap();                                                          \
        } while (0)

/* Check the shape of an accepted request decoded from frame (used bytes). */
static void check_req(const struct init_req *r, const uint8_t *frame, size_t used)
{
        size_t payload = used - PROTO_HDR_SIZE;

        switch (r->type) {
        case PROTO_SPAWN:
                CHECK(r->job != 0);
                CHECK(r->spawn.argc >= 1 && r->spawn.argv[0][0] != '\0');
                CHECK(r->spawn.cwd[0] == '/');
                CHECK(r->spawn.argv[r->spawn.argc] == NULL && r->spawn.env[r->spawn.envc] == NULL);
                CHECK((const uint8_t *)r->spawn.cwd >= frame + PROTO_HDR_SIZE &&
                      (const uint8_t *)r->spawn.cwd < frame + used);
                if (r->err == 0)
                        CHECK(r->spawn.uid < 65536 && r->spawn.gid < 65536);
                else
                        CHECK(r->errmsg != NULL);
                break;
        case PROTO_STDIN:
                CHECK(r->job != 0 && r->data == frame + PROTO_HDR_SIZE);
                CHECK(r->data_len == payload && r->data_len <= PROTO_MAX_DATA);
                break;
        case PROTO_SIGNAL:
                CHECK(r->job != 0 && payload == 4 && r->signo >= 1 && r->signo <= 64);
                break;
        case PROTO_RESIZE:
                CHECK(r->job != 0 && payload == 4);
                break;
        case PROTO_PING:
        case PROTO_KILLALL:
                CHECK(payload == 0);
                break;
        case PROTO_ATTACH:
        case PROTO_RELEASE:
                CHECK(r->job != 0 && payload == 0);
                break;
        default:
                CHECK(0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* An exact-size heap copy, so ASan sees any read past the end. */
        uint8_t *buf = malloc(size ? size : 1);
        size_t off = 0;

        if (!buf)
                return 0;
        memcpy(buf, data, size);
        while (off < size) {
                struct init_req req;
                size_t used = 0;
                int r = frames_next(buf + off, size - off, &req, &used);

                if (r <= 0) {
                        CHECK(r == 0 || r == -EPROTO || r == -ENOMEM);
                        break;
                }
                CHECK(r == 1 && used >= PROTO_HDR_SIZE && used <= size - off);
                check_req(&req, buf + off, used);
                frames_req_free(&req);
                /* Every prefix of a complete frame past a valid header needs more bytes. */
                for (size_t cut = PROTO_HDR_SIZE; cut < used; cut += 1 + cut / 8) {
                        struct init_req part;
                        size_t pu = 0;
                        CHECK(frames_next(buf + off, cut, &part, &pu) == 0);
                }
                off += used;
        }
        free(buf);
        return 0;
}
