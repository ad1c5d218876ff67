/* runtime.h - the `container` isolation backend, as the daemon sees it.
 *
 * Every call here may block (mounts, mkfs, clone, waiting for processes to die): the daemon
 * calls them from worker threads only, never from the event loop. They never log; they
 * return negative errno and, where given, write a human-readable cause into an err buffer.
 *
 * Host layout (data_dir defaults to /var/lib/warren, run_dir to data_dir/run):
 *   data_dir/templates/NAME/rootfs        read-only template root (lower layer)
 *   data_dir/sandboxes/ID/disk.img        sparse ext4 image: the sandbox's size-limited disk
 *                                         (holds the overlay upper and work dirs, /workspace)
 *   data_dir/disks/ready/SIZE/HEX/        a blank disk.img made ahead (rt_disk_pool_fill), in
 *                                         a directory renamed whole to sandboxes/ID by a create
 *   data_dir/disks/tmp/                   images being made (emptied by rt_init)
 *   run_dir/sandboxes/ID/ctl.sock         warren-init's control socket (host root only)
 *   run_dir/seccomp.bpf                   the compiled seccomp filter warren-init loads
 *   cgroups: <v1 controller>/warren/ID or <v2 root>/warren/ID
 */
#ifndef WARREN_RUNTIME_H
#define WARREN_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RT_ERR_LEN 256
#define RT_ID_MAX 64

/* Size of each sandbox's uid/gid range; host uid = uid_base + uid inside. */
#define RT_UID_RANGE 65536u
/* The unprivileged sandbox user inside every sandbox. */
#define RT_SANDBOX_UID 1001u
#define RT_SANDBOX_USER "user"

enum rt_cgroup_mode { RT_CGROUP_AUTO = 0, RT_CGROUP_V1, RT_CGROUP_V2 };

struct rt_config {
        const char *data_dir;  /* absolute */
        const char *run_dir;   /* absolute */
        const char *init_path; /* absolute path of the warren-init binary */
        enum rt_cgroup_mode cgroup_mode;
};

/* Resource limits of one sandbox. 0 means "no limit" only where noted. */
struct rt_limits {
        uint64_t cpu_millis;   /* 1000 = one CPU; cfs quota over a 100 ms period */
        uint64_t memory_bytes; /* memory limit (no swap) */
        uint64_t pids;         /* max tasks in the sandbox */
        uint64_t nofile;       /* RLIMIT_NOFILE for every process */
        uint64_t disk_bytes;   /* size of the sandbox's disk (upper layer + /workspace) */
};

struct rt_spec {
        const char *id;       /* sandbox id, [a-z0-9-], <= RT_ID_MAX; also the hostname */
        const char *template; /* template name (directory under data_dir/templates) */
        uint32_t uid_base;    /* first host uid/gid of this sandbox's range (never 0) */
        struct rt_limits limits;
};

/* Timings of a create, in milliseconds, for startup_metrics. */
struct rt_metrics {
        double disk_ms;   /* disk image + filesystem */
        double cgroup_ms; /* cgroup creation and limits */
        double spawn_ms;  /* clone + namespaces + mounts until warren-init answers HELLO */
        double net_ms;    /* the uplink (veth, addresses, rules; network egress only, net.h) */
        double total_ms;
        bool disk_pooled; /* the disk was a ready image from the pool (no mke2fs) */
};

/* A running sandbox as the runtime reports it. */
struct rt_instance {
        pid_t init_pid;          /* host pid of warren-init */
        uint64_t init_starttime; /* util_proc_starttime(init_pid), to detect pid reuse */
        char ctl_path[4096];     /* control socket path (host) */
};

/* Detect cgroup mode, create parent cgroups, write run_dir/seccomp.bpf, create directories.
 * Blocking; called once at start before the event loop runs. */
int rt_init(const struct rt_config *cfg, char err[RT_ERR_LEN]);

/* Which cgroup mode is in use after rt_init: "v1" or "v2". */
const char *rt_cgroup_mode_name(void);

/* Make sure the built-in `base` template exists (assemble it on first start). Blocking. */
int rt_template_ensure_base(char err[RT_ERR_LEN]);

/* Whether template NAME exists. */
bool rt_template_exists(const char *name);

/* Create and start a sandbox: disk, cgroups, namespaces, rootfs, warren-init. On failure
 * everything made so far is undone. Blocking (worker thread). */
int rt_sandbox_create(const struct rt_spec *spec, struct rt_instance *ret,
                      struct rt_metrics *ret_metrics, char err[RT_ERR_LEN]);

/* Whether the sandbox's warren-init is still the process we started. */
bool rt_sandbox_alive(pid_t init_pid, uint64_t starttime);

/* Kill every process of the sandbox (SIGKILL warren-init, which takes the pid namespace with
 * it), wait until the sandbox's cgroup is empty (bounded: 5 s) and remove it. The disk stays.
 * Idempotent: a sandbox already gone is fine. Blocking. */
int rt_sandbox_stop(const char *id, pid_t init_pid, uint64_t starttime, char err[RT_ERR_LEN]);

/* Stop if needed, then remove the cgroups, run-dir entries and the whole data directory of
 * the sandbox. Idempotent. Blocking. */
int rt_sandbox_destroy(const char *id, pid_t init_pid, uint64_t starttime, char err[RT_ERR_LEN]);

/* Memory and pids currently used by the sandbox's cgroup (for status). -ENOENT if none. */
int rt_sandbox_usage(const char *id, uint64_t *ret_memory_bytes, uint64_t *ret_pids);

/* Most images one rt_disk_pool_fill() call makes (each is an mke2fs run, ~3-6 ms of CPU). */
#define RT_DISK_POOL_BATCH 4

/* Make blank disk images of size bytes (a disk_bytes value) ahead of time, until target are
 * ready (counting those already there), at most RT_DISK_POOL_BATCH in this call; a create
 * whose disk_bytes has a ready image takes it (rt_metrics.disk_pooled) instead of running
 * mke2fs. *ret_made (may be NULL) is how many this call made. One fill runs at a time: a
 * call made while another runs returns 0 at once with *ret_made = 0, so queued calls never
 * hold worker threads waiting. Blocking (worker thread). */
int rt_disk_pool_fill(uint64_t size, unsigned target, unsigned *ret_made, char err[RT_ERR_LEN]);

/* Number of ready images of size bytes, or a negative errno. */
int rt_disk_pool_count(uint64_t size);

#endif
