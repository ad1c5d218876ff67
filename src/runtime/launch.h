/* launch.h - start warren-init in new namespaces and walk it through its setup handshake.
 * Internal to src/runtime; used by runtime.c. The wire format of the handshake is
 * src/init/launch_msg.h.
 */
#ifndef WARREN_RT_LAUNCH_H
#define WARREN_RT_LAUNCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

/* Everything warren-init needs to build one sandbox. All paths absolute host paths. */
struct launch_args {
        const char *init_path; /* the warren-init binary */
        const char *id;        /* sandbox id: hostname and cgroup name */
        const char *rootfs;    /* template rootfs (overlay lower layer) */
        const char *disk;      /* disk.img */
        const char *seccomp;   /* run_dir/seccomp.bpf */
        const char *stage;     /* run_dir/sandboxes/ID (exists, empty, 0700) */
        const char *ctl;       /* control socket path, inside stage */
        uint32_t uid_base;
        uint64_t nofile;    /* RLIMIT_NOFILE of warren-init and so of every job (0: inherit) */
        bool bind_host_usr; /* bind the host's /usr read-only on the sandbox's /usr */
};

/* Clone warren-init as PID 1 of new pid, mount, uts, ipc and net namespaces, send it the
 * spec, move it into the sandbox's cgroup (cg_attach) while it mounts, write its uid/gid
 * maps when it has made its user namespace, and wait until it serves on its control
 * socket. Every wait is bounded (10 s in all). On failure the child is killed and reaped,
 * err says what failed (the child's own message when the failure happened inside it) and
 * a negative errno is returned. Safe to call from any thread of a multithreaded process. */
int launch_init(const struct launch_args *a, pid_t *ret_pid, char err[RT_ERR_LEN]);

#endif
