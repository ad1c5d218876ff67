/* frames.c - decode and check one daemon -> warren-init frame (see frames.h).
 *
 * The daemon is trusted, but a bug there (or a compromised daemon connection) must cost at
 * most that connection: nothing here trusts a length, and every frame type has an exact
 * payload shape. Unknown types and frames only warren-init sends are malformed.
 */
#include "frames.h"

#include <errno.h>
#include <string.h>

/* uids and gids inside a sandbox: the size of its user namespace range. */
#define FRAMES_ID_RANGE 65536u
/* Highest signal number (SIGRTMAX on Linux). */
#define FRAMES_SIG_MAX 64u

/* Check and fill the type-specific part of req from payload (n bytes). 0 or -EPROTO. */
static int decode_payload(struct init_req *req, uint8_t *payload, size_t n)
{
        switch (req->type) {
        case PROTO_SPAWN:
                if (req->job == 0)
                        return -EPROTO;
                int r = proto_spawn_decode(payload, n, &req->spawn);
                if (r < 0)
                        return r == -ENOMEM ? -ENOMEM : -EPROTO;
                if (req->spawn.uid >= FRAMES_ID_RANGE || req->spawn.gid >= FRAMES_ID_RANGE) {
                        req->err = EINVAL;
                        req->errmsg = "uid and gid must be below 65536";
                }
                return 0;
        case PROTO_STDIN:
                if (req->job == 0 || n > PROTO_MAX_DATA || (req->flags & ~PROTO_F_EOF))
                        return -EPROTO;
                req->data = payload;
                req->data_len = n;
                return 0;
        case PROTO_SIGNAL:
                if (req->job == 0 || n != 4)
                        return -EPROTO;
                req->signo = proto_get_u32(payload);
                if (req->signo < 1 || req->signo > FRAMES_SIG_MAX)
                        return -EPROTO;
                return 0;
        case PROTO_RESIZE:
                if (req->job == 0 || n != 4)
                        return -EPROTO;
                req->cols = proto_get_u16(payload);
                req->rows = proto_get_u16(payload + 2);
                return 0;
        case PROTO_PING:
        case PROTO_KILLALL:
                return n == 0 ? 0 : -EPROTO;
        case PROTO_ATTACH:
        case PROTO_RELEASE:
                return req->job != 0 && n == 0 ? 0 : -EPROTO;
        default:
                return -EPROTO;
        }
}

/* See frames.h. The header's len was bounded by proto_hdr_decode() (<= PROTO_MAX_FRAME), so
 * the caller never needs to buffer more than PROTO_MAX_FRAME + 4 bytes for one frame. */
int frames_next(uint8_t *buf, size_t len, struct init_req *ret, size_t *ret_used)
{
        struct proto_hdr hdr;
        struct init_req req = { 0 };
        size_t total;
        int r;

        if (len < PROTO_HDR_SIZE)
                return 0;
        r = proto_hdr_decode(buf, &hdr);
        if (r < 0)
                return -EPROTO;
        total = (size_t)hdr.len + 4;
        if (len < total)
                return 0;

        req.type = hdr.type;
        req.flags = hdr.flags;
        req.job = hdr.job;
        if (req.type != PROTO_STDIN && req.flags != 0)
                return -EPROTO;
        r = decode_payload(&req, buf + PROTO_HDR_SIZE, total - PROTO_HDR_SIZE);
        if (r < 0)
                return r;
        *ret = req;
        *ret_used = total;
        return 1;
}

void frames_req_free(struct init_req *req)
{
        if (req)
                proto_spawn_free(&req->spawn);
}
