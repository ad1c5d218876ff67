/* runtime.c - the `container` isolation backend (runtime.h): the orchestrator that calls
 * the per-mechanism files (mechanisms.h) and launch.c in the order a sandbox needs.
 *
 * Create, top to bottom: disk image -> cgroup -> run directory -> warren-init (clone,
 * cgroup attach, mounts, pivot_root, user namespace: see launch.c and src/init/setup.c).
 * Every step is undone, in reverse, when a later one fails.
 *
 * Called from worker threads of the daemon: the configuration is written once by rt_init()
 * before any thread calls anything else, and read-only afterwards.
 */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"
#include "mechanisms.h"
#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* How long stop waits for the sandbox's processes to be gone. */
#define STOP_TIMEOUT_MS 5000
/* How long removing a just-emptied cgroup may keep answering EBUSY. */
#define CG_DESTROY_TIMEOUT_MS 2000

static struct {
        char data_dir[PATH_MAX];
        char run_dir[PATH_MAX];
        char init_path[PATH_MAX];
        char disk_pool[PATH_MAX]; /* data_dir/disks */
} cfg;

/* Held by the one rt_disk_pool_fill() running. */
static pthread_mutex_t disk_pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* Write "msg: strerror(-r)" into err (if given) and return r. */
static int errf(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, int r, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (!err)
                return r;
        va_start(ap, fmt);
        n = vsnprintf(err, RT_ERR_LEN, fmt, ap);
        va_end(ap);
        if (n >= 0 && n < RT_ERR_LEN)
                snprintf(err + n, RT_ERR_LEN - (size_t)n, ": %s", strerror(-r));
        return r;
}

/* printf into a PATH_MAX buffer; -ENAMETOOLONG if it does not fit. */
static int pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pathf(char *buf, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, PATH_MAX, fmt, ap);
        va_end(ap);
        return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* A sandbox id: 1..RT_ID_MAX of [a-z0-9-], not starting with '-'. It names host paths and a
 * cgroup, so nothing else (no '/', no "..") may get through. */
static bool id_ok(const char *id)
{
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > RT_ID_MAX || id[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') ||
                      id[i] == '-'))
                        return false;
        return true;
}

/* A template name: 1..64 of [A-Za-z0-9._-], not starting with '.'. */
static bool template_name_ok(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > 64 || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                      (name[i] >= '0' && name[i] <= '9') || name[i] == '.' || name[i] == '_' ||
                      name[i] == '-'))
                        return false;
        return true;
}

/* Copy an absolute path into a config field. */
static int set_path(char *dst, const char *src)
{
        if (!src || src[0] != '/')
                return -EINVAL;
        return pathf(dst, "%s", src);
}

int rt_init(const struct rt_config *c, char err[RT_ERR_LEN])
{
        char path[PATH_MAX];
        int r;

        if (set_path(cfg.data_dir, c->data_dir) < 0 || set_path(cfg.run_dir, c->run_dir) < 0 ||
            set_path(cfg.init_path, c->init_path) < 0 ||
            pathf(cfg.disk_pool, "%s/disks", cfg.data_dir) < 0)
                return errf(err, -EINVAL, "data_dir, run_dir and init_path must be absolute");
        if (access(cfg.init_path, X_OK) < 0)
                return errf(err, neg_errno(), "warren-init at %s", cfg.init_path);
        r = cg_init(c->cgroup_mode);
        if (r < 0)
                return errf(err, r, "setting up cgroups");
        static const char *const dirs[] = { "templates", "sandboxes" };
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                r = pathf(path, "%s/%s", cfg.data_dir, dirs[i]);
                if (r >= 0)
                        r = util_mkdir_p(path, 0700);
                if (r < 0)
                        return errf(err, r, "creating %s", path);
        }
        r = disk_pool_prepare(cfg.disk_pool);
        if (r < 0)
                return errf(err, r, "preparing the disk pool %s", cfg.disk_pool);
        r = pathf(path, "%s/sandboxes", cfg.run_dir);
        if (r >= 0)
                r = util_mkdir_p(path, 0700);
        if (r < 0)
                return errf(err, r, "creating %s", path);
        r = pathf(path, "%s/seccomp.bpf", cfg.run_dir);
        if (r >= 0)
                r = seccomp_write_bpf(path);
        if (r < 0)
                return errf(err, r, "writing the seccomp filter %s", path);
        return 0;
}

const char *rt_cgroup_mode_name(void)
{
        return cg_mode_name();
}

int rt_template_ensure_base(char err[RT_ERR_LEN])
{
        int r = tpl_ensure_base(cfg.data_dir);

        if (r < 0)
                return errf(err, r, "building the base template");
        return 0;
}

bool rt_template_exists(const char *name)
{
        char path[PATH_MAX];

        return template_name_ok(name) &&
               tpl_rootfs_path(cfg.data_dir, name, path, sizeof(path)) == 0;
}

/* Read state (field 3) and starttime (field 22) of /proc/PID/stat. */
static int proc_stat(pid_t pid, char *ret_state, uint64_t *ret_starttime)
{
        char path[64], buf[1024];
        cleanup_close int fd = -1;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return neg_errno();
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return n < 0 ? neg_errno() : -EIO;
        buf[n] = '\0';
        /* comm (field 2) may hold spaces and ')': fields restart after the last ')'. */
        char *p = strrchr(buf, ')');
        char state;
        unsigned long long start;
        if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                                "%*d %*d %*d %*d %llu",
                         &state, &start) != 2)
                return -EIO;
        *ret_state = state;
        *ret_starttime = start;
        return 0;
}

bool rt_sandbox_alive(pid_t init_pid, uint64_t starttime)
{
        uint64_t st;
        char state;

        if (init_pid <= 0 || starttime == 0 || proc_stat(init_pid, &state, &st) < 0)
                return false;
        /* A zombie (warren-init died, not reaped yet) is not alive. */
        return st == starttime && state != 'Z' && state != 'X';
}

/* Wait until the sandbox's cgroup holds no task (or is gone), until deadline_ns. */
static int wait_cgroup_empty(const char *id, uint64_t deadline_ns)
{
        long sleep_us = 200;

        for (;;) {
                int n = cg_count_tasks(id);
                if (n == 0 || n == -ENOENT)
                        return 0;
                if (n < 0)
                        return n;
                if (util_now_ns() >= deadline_ns)
                        return -EBUSY;
                struct timespec ts = { 0, sleep_us * 1000 };
                nanosleep(&ts, NULL);
                if (sleep_us < 20000)
                        sleep_us *= 2;
        }
}

/* SIGKILL warren-init if it is still the process we started (zombie included), wait for it
 * to be gone (its pid namespace goes with it) and reap it if it is our child. A pidfd pins
 * the process, so the starttime check and the kill address the same one even if the pid
 * is reused meanwhile. */
static int kill_init(pid_t pid, uint64_t starttime, uint64_t deadline_ns)
{
        cleanup_close int pfd = -1;
        char state;
        uint64_t st;

        if (pid <= 0 || starttime == 0)
                return 0;
        pfd = pidfd_open(pid, 0);
        if (pfd < 0)
                return errno == ESRCH ? 0 : neg_errno();
        if (proc_stat(pid, &state, &st) < 0 || st != starttime)
                return 0; /* gone, or the pid belongs to someone else now */
        if (pidfd_send_signal(pfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
                return neg_errno();
        for (;;) {
                uint64_t now = util_now_ns();
                if (now >= deadline_ns)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = pfd, .events = POLLIN };
                int r = poll(&p, 1, (int)((deadline_ns - now) / 1000000 + 1));
                if (r > 0)
                        break;
                if (r < 0 && errno != EINTR)
                        return neg_errno();
        }
        /* Ours (started by this daemon process): reap it. Adopted after a daemon restart:
         * ECHILD, its new parent reaps it. */
        siginfo_t si;
        while (waitid((idtype_t)P_PIDFD, (id_t)pfd, &si, WEXITED | WNOHANG) < 0 && errno == EINTR)
                ;
        return 0;
}

static int destroy_cgroup(const char *id);

int rt_sandbox_stop(const char *id, pid_t init_pid, uint64_t starttime, char err[RT_ERR_LEN])
{
        uint64_t deadline = util_now_ns() + (uint64_t)STOP_TIMEOUT_MS * 1000000u;
        int r;

        if (!id_ok(id))
                return errf(err, -EINVAL, "bad sandbox id");
        r = kill_init(init_pid, starttime, deadline);
        if (r < 0)
                return errf(err, r, "killing warren-init (pid %d)", (int)init_pid);
        /* Anything left in the cgroup (nothing should be: the pid namespace died with its
         * init) is killed directly. */
        r = cg_kill_all(id);
        if (r < 0 && r != -ENOENT)
                return errf(err, r, "killing the tasks of cgroup %s", id);
        r = wait_cgroup_empty(id, deadline);
        if (r < 0)
                return errf(err, r, "waiting for cgroup %s to empty", id);
        /* A stopped sandbox keeps its disk, not its cgroup: kernel memory for nothing while
         * it waits for a delete or the retention sweep. */
        r = destroy_cgroup(id);
        if (r < 0)
                return errf(err, r, "removing cgroup %s", id);
        return 0;
}

/* Remove the sandbox's cgroup, retrying while the kernel still reports it busy (tasks that
 * were killed can linger in the group for a moment). */
static int destroy_cgroup(const char *id)
{
        uint64_t deadline = util_now_ns() + (uint64_t)CG_DESTROY_TIMEOUT_MS * 1000000u;

        for (;;) {
                int r = cg_destroy(id);
                if (r != -EBUSY || util_now_ns() >= deadline)
                        return r;
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
}

/* Remove the run and data directories of a sandbox. */
static int remove_dirs(const char *id)
{
        char path[PATH_MAX];
        int r, ret = 0;

        r = pathf(path, "%s/sandboxes/%s", cfg.run_dir, id);
        if (r >= 0)
                r = util_rm_rf(path);
        if (r < 0)
                ret = r;
        r = pathf(path, "%s/sandboxes/%s", cfg.data_dir, id);
        if (r >= 0)
                r = util_rm_rf(path);
        if (r < 0 && ret == 0)
                ret = r;
        return ret;
}

int rt_sandbox_destroy(const char *id, pid_t init_pid, uint64_t starttime, char err[RT_ERR_LEN])
{
        int r;

        r = rt_sandbox_stop(id, init_pid, starttime, err);
        if (r < 0)
                return r;
        r = destroy_cgroup(id);
        if (r < 0)
                return errf(err, r, "removing cgroup %s", id);
        r = remove_dirs(id);
        if (r < 0)
                return errf(err, r, "removing the directories of sandbox %s", id);
        return 0;
}

int rt_sandbox_create(const struct rt_spec *spec, struct rt_instance *ret,
                      struct rt_metrics *ret_metrics, char err[RT_ERR_LEN])
{
        char rootfs[PATH_MAX], data[PATH_MAX], disk[PATH_MAX], stage[PATH_MAX], ctl[PATH_MAX];
        char seccomp[PATH_MAX];
        struct rt_metrics m = { 0 };
        uint64_t t0 = util_now_ns(), t;
        pid_t pid;
        int r;

        if (!id_ok(spec->id))
                return errf(err, -EINVAL, "bad sandbox id");
        /* Host uids below 65536 are the host's own users: never map them into a sandbox. */
        if (spec->uid_base < RT_UID_RANGE || spec->uid_base > UINT32_MAX - RT_UID_RANGE)
                return errf(err, -EINVAL, "bad uid_base %u", spec->uid_base);
        if (!template_name_ok(spec->template))
                return errf(err, -EINVAL, "bad template name");
        r = tpl_rootfs_path(cfg.data_dir, spec->template, rootfs, sizeof(rootfs));
        if (r < 0)
                return errf(err, r, "template %s", spec->template);
        if (pathf(data, "%s/sandboxes/%s", cfg.data_dir, spec->id) < 0 ||
            pathf(disk, "%s/" DISK_IMAGE_NAME, data) < 0 ||
            pathf(stage, "%s/sandboxes/%s", cfg.run_dir, spec->id) < 0 ||
            pathf(ctl, "%s/ctl.sock", stage) < 0 ||
            pathf(seccomp, "%s/seccomp.bpf", cfg.run_dir) < 0)
                return errf(err, -ENAMETOOLONG, "sandbox paths");

        /* 1. The data directory with the disk, ready from the pool or made now. It must not
         * exist (-EEXIST): a sandbox id is used once. On failure nothing was made. */
        t = util_now_ns();
        r = disk_create(cfg.disk_pool, data, spec->limits.disk_bytes, &m.disk_pooled);
        if (r < 0)
                return errf(err, r, "creating the disk in %s", data);
        m.disk_ms = util_ms_since(t);

        /* 2. The cgroup with its limits. */
        t = util_now_ns();
        r = cg_create(spec->id, &spec->limits);
        if (r < 0) {
                errf(err, r, "creating cgroup %s", spec->id);
                goto fail_data;
        }
        m.cgroup_ms = util_ms_since(t);

        /* 3. The run directory (ctl.sock and the mount point of the root live there). A
         * leftover from a crash before this sandbox's data directory existed is stale. */
        if (mkdir(stage, 0700) < 0) {
                r = neg_errno();
                if (r == -EEXIST) {
                        r = util_rm_rf(stage);
                        if (r >= 0 && mkdir(stage, 0700) < 0)
                                r = neg_errno();
                }
                if (r < 0) {
                        errf(err, r, "creating %s", stage);
                        goto fail_cgroup;
                }
        }

        /* 4. warren-init. */
        t = util_now_ns();
        struct launch_args la = {
                .init_path = cfg.init_path,
                .id = spec->id,
                .rootfs = rootfs,
                .disk = disk,
                .seccomp = seccomp,
                .stage = stage,
                .ctl = ctl,
                .uid_base = spec->uid_base,
                .nofile = spec->limits.nofile,
                .bind_host_usr = tpl_binds_host_usr(cfg.data_dir, spec->template),
        };
        r = launch_init(&la, &pid, err);
        if (r < 0)
                goto fail_stage;
        m.spawn_ms = util_ms_since(t);

        ret->init_pid = pid;
        ret->init_starttime = util_proc_starttime(pid);
        snprintf(ret->ctl_path, sizeof(ret->ctl_path), "%s", ctl);
        m.total_ms = util_ms_since(t0);
        if (ret_metrics)
                *ret_metrics = m;
        return 0;

fail_stage:
        (void)util_rm_rf(stage);
fail_cgroup:
        (void)wait_cgroup_empty(spec->id, util_now_ns() + (uint64_t)STOP_TIMEOUT_MS * 1000000u);
        (void)destroy_cgroup(spec->id);
fail_data:
        (void)util_rm_rf(data);
        return r;
}

int rt_sandbox_usage(const char *id, uint64_t *ret_memory_bytes, uint64_t *ret_pids)
{
        if (!id_ok(id))
                return -EINVAL;
        return cg_usage(id, ret_memory_bytes, ret_pids);
}

int rt_disk_pool_fill(uint64_t size, unsigned target, unsigned *ret_made, char err[RT_ERR_LEN])
{
        unsigned made = 0;
        int r;

        if (pthread_mutex_trylock(&disk_pool_lock) != 0) {
                if (ret_made)
                        *ret_made = 0;
                return 0;
        }
        r = disk_pool_fill(cfg.disk_pool, size, target, RT_DISK_POOL_BATCH, &made);
        pthread_mutex_unlock(&disk_pool_lock);
        if (r < 0)
                return errf(err, r, "making disk images of %" PRIu64 " bytes in %s", size,
                            cfg.disk_pool);
        if (ret_made)
                *ret_made = made;
        return 0;
}

int rt_disk_pool_count(uint64_t size)
{
        return disk_pool_count(cfg.disk_pool, size);
}
