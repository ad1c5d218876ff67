/* launch_msg.h - the one-shot handshake between the runtime (host side, src/runtime/launch.c)
 * and a starting warren-init, over fd LAUNCH_FD.
 *
 * The channel is one end of an AF_UNIX SOCK_SEQPACKET socketpair, so every send is one
 * message and boundaries are kept. Both ends are the same host and the same build, so the
 * structs travel in native byte order. The sequence (any step may be replaced by ERROR,
 * after which warren-init exits):
 *
 *   runtime -> init   SPEC     struct launch_spec, then LAUNCH_NSTR NUL-terminated strings
 *                              in the order of enum launch_str
 *   runtime -> init   ATTACHED the child is in the sandbox's cgroup now
 *   init -> runtime   USERNS   mounts done, pivoted, cgroup and user namespaces unshared:
 *                              write my maps
 *   runtime -> init   MAPPED   uid_map and gid_map written
 *   init -> runtime   READY    the control socket listens; warren-init serves from now on
 *
 * SPEC goes out right after the clone and the cgroup attach runs while warren-init mounts:
 * moving a task between cgroup v1 groups waits for an RCU grace period (10-17 ms measured
 * here), longer than all of the mounting. warren-init waits for ATTACHED before it unshares
 * its cgroup namespace, so that namespace is rooted at the sandbox's own group, and before
 * it could start any process. (The kernel memory of the mounts is charged to the daemon's
 * cgroup as a result: a fixed cost per sandbox, not something sandbox code controls.)
 */
#ifndef WARREN_LAUNCH_MSG_H
#define WARREN_LAUNCH_MSG_H

#include <stdint.h>

/* The handshake socket's fd number in warren-init. */
#define LAUNCH_FD 3
#define LAUNCH_MAGIC 0x314c5257u /* "WRL1" */
/* Largest SPEC message (header + strings). */
#define LAUNCH_SPEC_MAX 16384
/* Message length inside a status message, NUL included. */
#define LAUNCH_MSG_LEN 240

enum launch_type {
        LAUNCH_SPEC = 1,
        LAUNCH_ATTACHED = 2,
        LAUNCH_USERNS = 3,
        LAUNCH_MAPPED = 4,
        LAUNCH_READY = 5,
        LAUNCH_ERROR = 6,
};

/* SPEC flags */
#define LAUNCH_F_BIND_HOST_USR 1u /* bind the host's /usr read-only on the new root's /usr */

/* Strings that follow struct launch_spec, in this order. All paths are absolute host paths. */
enum launch_str {
        LAUNCH_S_HOSTNAME = 0, /* the sandbox id */
        LAUNCH_S_ROOTFS,       /* template rootfs: the overlay's lower layer */
        LAUNCH_S_DISK,         /* disk.img: ext4 holding upper/ and work/ */
        LAUNCH_S_SECCOMP,      /* raw struct sock_filter array */
        LAUNCH_S_STAGE,        /* run_dir/sandboxes/ID: an empty host dir, 0700, host root */
        LAUNCH_S_CTL,          /* control socket path (inside STAGE) */
        LAUNCH_NSTR
};

struct launch_spec {
        uint32_t magic;    /* LAUNCH_MAGIC */
        uint32_t type;     /* LAUNCH_SPEC */
        uint32_t flags;    /* LAUNCH_F_* */
        uint32_t uid_base; /* host uid/gid that uid/gid 0 inside maps to */
        uint32_t host_pid; /* warren-init's pid as the host sees it (for HELLO) */
        uint32_t nstr;     /* LAUNCH_NSTR */
};

/* uid inside of the unprivileged sandbox user (RT_SANDBOX_UID in src/runtime/runtime.h). */
#define LAUNCH_SANDBOX_UID 1001u

/* One directory of the disk named by LAUNCH_S_DISK (the ext4 holding the overlay's layers). */
struct launch_disk_dir {
        const char *path; /* relative to the disk's root */
        uint32_t mode;    /* permission bits */
        uint32_t uid;     /* owner (and group) inside: host id uid_base + uid */
};

/* The directories every new disk holds, parents first. The runtime (src/runtime/disk.c) makes
 * them owned by host root, as placeholders, so that one image fits any sandbox and images can
 * be made ahead; warren-init, still host root, gives each one still owned by host root to its
 * owner here (with this mode) right after mounting the disk, before the overlay. upper/ is the
 * sandbox's "/" and work/ overlayfs' work directory: both belong to the sandbox's root. */
static const struct launch_disk_dir launch_disk_dirs[] = {
        { "upper", 0755, 0 },
        { "work", 0700, 0 },
        { "upper/workspace", 0755, LAUNCH_SANDBOX_UID },
        { "upper/home", 0755, 0 },
        { "upper/home/user", 0755, LAUNCH_SANDBOX_UID },
        { "upper/tmp", 01777, 0 },
        { "upper/root", 0700, 0 },
};

/* Every message other than SPEC. */
struct launch_status {
        uint32_t magic; /* LAUNCH_MAGIC */
        uint32_t type;  /* LAUNCH_ATTACHED, _USERNS, _MAPPED, _READY or _ERROR */
        int32_t err;    /* ERROR: positive errno */
        char msg[LAUNCH_MSG_LEN]; /* ERROR: what failed, made at the failure site, without
                                   * the errno's text (the runtime adds it) */
};

#endif
