/* frames.h - decoding and checking the frames the daemon sends to warren-init.
 *
 * Pure code: no sockets, no globals, so a fuzzer can drive it directly. Every check that
 * protects warren-init from a bad frame lives here; the serve loop only acts on requests
 * this file accepted.
 */
#ifndef WARREN_INIT_FRAMES_H
#define WARREN_INIT_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* One decoded, well-formed request from the daemon. */
struct init_req {
        uint8_t type;  /* PROTO_SPAWN, PROTO_STDIN, PROTO_SIGNAL, PROTO_RESIZE, PROTO_PING,
                        * PROTO_KILLALL, PROTO_ATTACH, PROTO_RELEASE */
        uint8_t flags; /* header flags (STDIN: PROTO_F_EOF) */
        uint32_t job;  /* header job id */
        const uint8_t *data; /* STDIN: bytes to write (points into the input buffer) */
        size_t data_len;
        uint32_t signo;      /* SIGNAL: 1..64 */
        uint16_t cols, rows; /* RESIZE */
        struct proto_spawn spawn; /* SPAWN: free with frames_req_free() */
        int err;             /* SPAWN: positive errno when well-formed but not acceptable */
        const char *errmsg;  /* SPAWN: why (a static string) when err != 0 */
};

/* Look at the start of buf (len bytes received so far). If it holds a complete frame,
 * decode and check it into *ret and set *ret_used to its size; strings and data in *ret
 * point into buf, which must stay unchanged until the request is handled. A SPAWN that is
 * well-formed but asks for something not allowed (uid out of range, relative cwd, no argv)
 * is returned with req->err set: the caller answers it with an ERROR frame.
 * Returns 1 when a request was decoded, 0 when more bytes are needed (*ret untouched),
 * -EPROTO when the frame is malformed (the connection must be closed), -ENOMEM. */
int frames_next(uint8_t *buf, size_t len, struct init_req *ret, size_t *ret_used);

/* Release what frames_next() allocated for a request (NULL-safe, idempotent). */
void frames_req_free(struct init_req *req);

#endif
