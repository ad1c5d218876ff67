/* proto.h - the agent protocol between warrend and warren-init.
 *
 * A stream of length-prefixed binary frames over a unix stream socket (any byte stream
 * works: the codec never looks at the transport). All integers are little-endian.
 *
 *   offset 0  u32 len     bytes that follow this field (header rest + payload), <= PROTO_MAX_FRAME
 *   offset 4  u8  type    enum proto_type
 *   offset 5  u8  flags   type-specific (OUTPUT: stream number; STDIN: PROTO_F_EOF)
 *   offset 6  u16 resv    0
 *   offset 8  u32 job     job id chosen by the daemon (0 for connection-level frames)
 *   offset 12 payload     len - 8 bytes
 *
 * Payloads:
 *   HELLO   (init -> d)  u32 version, u32 init_pid_in_host_view(0 if unknown)
 *   SPAWN   (d -> init)  struct proto_spawn, encoded by proto_spawn_encode():
 *                        u32 uid, u32 gid, u32 timeout_ms, u32 flags, u16 cols, u16 rows,
 *                        u64 nofile, u32 argc (1..PROTO_MAX_ARGS), u32 envc (..PROTO_MAX_ENV),
 *                        then the strings cwd, argv[0..argc-1], env[0..envc-1], each as
 *                        u32 n, n bytes (no NUL among them), one NUL; nothing after.
 *   STARTED (init -> d)  u32 pid (inside the sandbox's pid namespace)
 *   OUTPUT  (init -> d)  raw bytes; flags = 1 stdout, 2 stderr (PTY output is stdout)
 *   STDIN   (d -> init)  raw bytes; flags & PROTO_F_EOF closes the job's stdin after them
 *   SIGNAL  (d -> init)  u32 signal number, sent to the job's process group
 *   RESIZE  (d -> init)  u16 cols, u16 rows
 *   EXIT    (init -> d)  i32 exit_code, i32 term_signal (0 if exited), u8 timed_out
 *                        exit_code is 128+signal when killed by a signal, 124 on timeout.
 *                        Always the last frame of a job: every OUTPUT frame precedes it.
 *   ERROR   (init -> d)  i32 errno (positive), then a UTF-8 message (no NUL): SPAWN failed.
 *   PING / PONG          empty; liveness check.
 *   KILLALL (d -> init)  empty; SIGKILL every job (used by stop before init itself is killed).
 *   ATTACH  (d -> init)  empty; take over a kept job (PROTO_SPAWN_KEEP) from a connection that
 *                        is gone (a daemon restart) or from another one. Answered with
 *                        ATTACHED, then the OUTPUT frames init held for the job, then EXIT
 *                        if the job has ended (again, if an earlier connection got it); or
 *                        ERROR ENOENT when init has no such job.
 *   ATTACHED (init -> d) u32 pid (0 if not started yet), u64 offset: how many output bytes of
 *                        the job came before the first OUTPUT frame that follows (output sent
 *                        to a connection that died is lost: the daemon sees a gap).
 *   RELEASE (d -> init)  empty; the daemon recorded a kept job's EXIT: init may forget it.
 *
 * Kept jobs: output produced while no connection owns the job is held in init (encoded
 * frames, up to INIT_HOLD_MAX bytes; then init stops reading the job's pipes, so the job
 * blocks on write instead of losing output), and the job's record stays after it ended until
 * a RELEASE, so its exit status survives a daemon restart.
 */
#ifndef WARREN_PROTO_H
#define WARREN_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_HDR_SIZE 12
/* Largest value of the len field; larger frames are a protocol error. */
#define PROTO_MAX_FRAME (1u << 20)
/* Largest OUTPUT/STDIN payload a sender puts in one frame. */
#define PROTO_MAX_DATA (64u * 1024)
/* Bounds on a SPAWN request. */
#define PROTO_MAX_ARGS 4096
#define PROTO_MAX_ENV 4096

enum proto_type {
        PROTO_HELLO = 1,
        PROTO_SPAWN = 2,
        PROTO_STARTED = 3,
        PROTO_OUTPUT = 4,
        PROTO_STDIN = 5,
        PROTO_SIGNAL = 6,
        PROTO_RESIZE = 7,
        PROTO_EXIT = 8,
        PROTO_ERROR = 9,
        PROTO_PING = 10,
        PROTO_PONG = 11,
        PROTO_KILLALL = 12,
        PROTO_ATTACH = 13,
        PROTO_ATTACHED = 14,
        PROTO_RELEASE = 15,
};

#define PROTO_F_EOF 1
#define PROTO_STREAM_STDOUT 1
#define PROTO_STREAM_STDERR 2

/* SPAWN flags */
#define PROTO_SPAWN_PTY 1u   /* run on a new pseudo-terminal (cols/rows used) */
#define PROTO_SPAWN_STDIN 2u /* keep a stdin pipe open for STDIN frames; else stdin is /dev/null */
#define PROTO_SPAWN_KEEP 4u  /* a kept job: survives its connection (see ATTACH) */

/* A decoded frame header. */
struct proto_hdr {
        uint32_t len; /* bytes after the len field: 8 + payload length */
        uint8_t type;
        uint8_t flags;
        uint32_t job;
};

/* A process to start. Pointers in a decoded spawn point into the frame buffer. */
struct proto_spawn {
        uint32_t uid;        /* uid inside the sandbox (1001 = user, 0 = root in the userns) */
        uint32_t gid;
        uint32_t timeout_ms; /* 0 = none; on expiry the job and all its descendants get SIGKILL */
        uint32_t flags;      /* PROTO_SPAWN_* */
        uint16_t cols, rows; /* PTY size */
        uint64_t nofile;     /* RLIMIT_NOFILE for the process (0 = leave as is) */
        const char *cwd;     /* absolute path inside the sandbox */
        uint32_t argc;
        const char **argv; /* argc entries (+ NULL when decoded); argv[0] is looked up in the
                            * PATH of env if it has no '/' */
        uint32_t envc;
        const char **env; /* "NAME=value" entries (+ NULL when decoded): the whole env */
};

/* Parse a header from buf (at least PROTO_HDR_SIZE bytes). 0 or -EPROTO (len out of range). */
int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *ret);

/* Write a header for a frame whose payload is payload_len bytes. buf: PROTO_HDR_SIZE bytes. */
void proto_hdr_encode(uint8_t *buf, uint8_t type, uint8_t flags, uint32_t job, size_t payload_len);

/* Encode a SPAWN payload into a malloc'd buffer (*ret_buf, *ret_len). 0, -EINVAL, -ENOMEM,
 * -E2BIG (larger than a frame allows). */
int proto_spawn_encode(const struct proto_spawn *s, uint8_t **ret_buf, size_t *ret_len);

/* Decode a SPAWN payload. argv/env arrays are malloc'd (free with proto_spawn_free); strings
 * point into payload, which must stay alive and must be writable (NULs are checked, not
 * written). Every string must be NUL-terminated inside the payload. 0 or -EPROTO / -ENOMEM. */
int proto_spawn_decode(const uint8_t *payload, size_t len, struct proto_spawn *ret);
void proto_spawn_free(struct proto_spawn *s);

/* Little-endian helpers. */
static inline void proto_put_u32(uint8_t *p, uint32_t v)
{
        p[0] = v & 0xff;
        p[1] = (v >> 8) & 0xff;
        p[2] = (v >> 16) & 0xff;
        p[3] = (v >> 24) & 0xff;
}
static inline uint32_t proto_get_u32(const uint8_t *p)
{
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
               ((uint32_t)p[3] << 24);
}
static inline void proto_put_u64(uint8_t *p, uint64_t v)
{
        proto_put_u32(p, (uint32_t)v);
        proto_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t proto_get_u64(const uint8_t *p)
{
        return (uint64_t)proto_get_u32(p) | ((uint64_t)proto_get_u32(p + 4) << 32);
}
static inline void proto_put_u16(uint8_t *p, uint16_t v)
{
        p[0] = v & 0xff;
        p[1] = (v >> 8) & 0xff;
}
static inline uint16_t proto_get_u16(const uint8_t *p)
{
        return (uint16_t)(p[0] | (p[1] << 8));
}

#endif
