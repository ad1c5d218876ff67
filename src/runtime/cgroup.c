/* cgroup.c - per-sandbox control groups: cgroup v2 where its controllers are there, v1
 * otherwise.
 *
 * Layout: a parent group "warren" in each hierarchy used and one group warren/ID per
 * sandbox. v2 has one hierarchy (memory, pids and cpu all in <root>/warren/ID); v1 has three
 * (memory/warren/ID, pids/warren/ID, cpu/warren/ID under /sys/fs/cgroup).
 *
 * Threads: every call is blocking and may run on any worker thread. The only state is the
 * detection result in `cg`, written by cg_init() once at start before any other call and
 * read-only afterwards, so no locking is needed.
 */
#include "mechanisms.h"

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CG_SYSFS "/sys/fs/cgroup"
#define CG_PARENT "warren"
/* v2 only: where the processes of a namespaced root cgroup are moved so that controllers can
 * be enabled in its cgroup.subtree_control (see cg_v2_enable_root()). */
#define CG_V2_EVACUATE "warrend"
/* CFS period used for every cpu limit, in microseconds. */
#define CG_CPU_PERIOD_US 100000ULL
/* The kernel refuses a CFS quota below 1 ms. */
#define CG_CPU_MIN_QUOTA_US 1000ULL
/* Rounds of "read the task list, SIGKILL the new ones" before cg_kill_all() gives up. */
#define CG_KILL_ROUNDS 100
/* At most this many hierarchies (v1: memory, pids, cpu). */
#define CG_MAX_HIER 3
/* At most this many limit files written by cg_create(). */
#define CG_MAX_SETTINGS 6

/* v1 hierarchy indices; v2 uses index 0 for everything. */
enum { CG_V1_MEMORY = 0, CG_V1_PIDS = 1, CG_V1_CPU = 2 };

/* Detection result, set once by cg_init(). */
static struct {
        enum rt_cgroup_mode mode; /* RT_CGROUP_V1 or _V2 once initialised, else _AUTO */
        unsigned n_hier;          /* hierarchies in use: v2 1, v1 3 */
        char hier[CG_MAX_HIER][128]; /* root of each hierarchy (v1: per controller) */
        int dirfd[CG_MAX_HIER];      /* O_PATH fd of <hier>/warren: paths below it are short */
        bool memsw;    /* v1: memory.memsw.* exists, so swap can be limited too */
        bool swap_max; /* v2: memory.swap.max exists (swap accounting on) */
        bool kill;     /* v2: cgroup.kill exists (Linux >= 5.14) */
} cg = { .dirfd = { -1, -1, -1 } };

/* One limit file write planned by cg_plan_limits(). */
struct cg_setting {
        unsigned hier;    /* index into cg.hier */
        const char *file; /* file name inside the sandbox's group */
        char value[48];   /* what is written */
};

/* Whether id is a valid sandbox id ([a-z0-9-], 1..RT_ID_MAX, not starting with '-'): it
 * becomes a path component, so this is what keeps "..", "/" and friends out of the paths. */
static bool cg_id_valid(const char *id)
{
        size_t n = 0;

        if (!id || !*id || id[0] == '-')
                return false;
        for (const char *p = id; *p; p++, n++) {
                if (n >= RT_ID_MAX)
                        return false;
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        }
        return true;
}

/* Format "<root of hierarchy h>/warren[/id][/file]" into buf. id and file may be NULL.
 * -ENAMETOOLONG if it does not fit. */
static int cg_path(char *buf, size_t len, unsigned h, const char *id, const char *file)
{
        int n = snprintf(buf, len, "%s/" CG_PARENT "%s%s%s%s", cg.hier[h], id ? "/" : "",
                         id ? id : "", file ? "/" : "", file ? file : "");

        if (n < 0 || (size_t)n >= len)
                return -ENAMETOOLONG;
        return 0;
}

/* Format "id/file" (the path of a group's file relative to cg.dirfd[]) into buf. */
static int cg_rel(char *buf, size_t len, const char *id, const char *file)
{
        int n = snprintf(buf, len, "%s/%s", id, file);

        if (n < 0 || (size_t)n >= len)
                return -ENAMETOOLONG;
        return 0;
}

/* Write value to the group's file in hierarchy h (a kernel knob: no O_CREAT, no O_TRUNC). */
static int cg_write_knob(unsigned h, const char *id, const char *file, const char *value)
{
        char rel[RT_ID_MAX + 64];
        cleanup_close int fd = -1;
        int r = cg_rel(rel, sizeof(rel), id, file);

        if (r < 0)
                return r;
        fd = openat(cg.dirfd[h], rel, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return neg_errno();
        return util_write_all(fd, value, strlen(value));
}

/* Read a small file (dirfd-relative) into buf (NUL-terminated, at most len-1 bytes). */
static int cg_read_small_at(int dirfd, const char *path, char *buf, size_t len)
{
        cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        size_t got = 0;

        if (fd < 0)
                return neg_errno();
        while (got + 1 < len) {
                ssize_t n = read(fd, buf + got, len - 1 - got);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        buf[got] = '\0';
        return 0;
}

/* Read a small file into buf (NUL-terminated, at most len-1 bytes). */
static int cg_read_small(const char *path, char *buf, size_t len)
{
        return cg_read_small_at(AT_FDCWD, path, buf, len);
}

/* Read the group's file in hierarchy h holding one unsigned decimal number
 * (memory.current, pids.current, ...). */
static int cg_read_u64(unsigned h, const char *id, const char *file, uint64_t *ret)
{
        char rel[RT_ID_MAX + 64], buf[64], *end;
        unsigned long long v;
        int r = cg_rel(rel, sizeof(rel), id, file);

        if (r == 0)
                r = cg_read_small_at(cg.dirfd[h], rel, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (!isdigit((unsigned char)buf[0]))
                return -EIO;
        errno = 0;
        v = strtoull(buf, &end, 10);
        if (errno || (*end && *end != '\n'))
                return -EIO;
        *ret = v;
        return 0;
}

/* Whether a space-separated controller list (cgroup.controllers, cgroup.subtree_control)
 * names controller c. */
static bool cg_list_has(const char *list, const char *c)
{
        size_t n = strlen(c);

        for (const char *p = list; (p = strstr(p, c)); p += n) {
                bool start = p == list || isspace((unsigned char)p[-1]);
                bool end = p[n] == '\0' || isspace((unsigned char)p[n]);

                if (start && end)
                        return true;
        }
        return false;
}

/* Whether the file holding a controller list names memory, pids and cpu. */
static bool cg_file_has_controllers(const char *path)
{
        char buf[512];

        if (cg_read_small(path, buf, sizeof(buf)) < 0)
                return false;
        return cg_list_has(buf, "memory") && cg_list_has(buf, "pids") && cg_list_has(buf, "cpu");
}

/* Whether path is the root of a filesystem of type magic. */
static bool cg_is_fs(const char *path, long magic)
{
        struct statfs sfs;

        return statfs(path, &sfs) == 0 && sfs.f_type == magic;
}

/* Whether path exists (a kernel interface file). */
static bool cg_exists(const char *path)
{
        return access(path, F_OK) == 0;
}

/* Call fn(pid, data) for each pid listed in a cgroup.procs file (path relative to dirfd),
 * parsing as it reads so that a group of any size needs no allocation. Stops at the first
 * negative return of fn. */
static int cg_for_each_pid(int dirfd, const char *path, int (*fn)(pid_t pid, void *data),
                           void *data)
{
        cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        char buf[4096];
        uint64_t cur = 0;
        bool in_num = false;

        if (fd < 0)
                return neg_errno();
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                for (ssize_t i = 0; i < n; i++) {
                        if (buf[i] >= '0' && buf[i] <= '9') {
                                cur = cur * 10 + (uint64_t)(buf[i] - '0');
                                if (cur > INT32_MAX)
                                        return -EIO;
                                in_num = true;
                        } else if (in_num) {
                                int r = fn((pid_t)cur, data);

                                if (r < 0)
                                        return r;
                                cur = 0;
                                in_num = false;
                        }
                }
                if (n == 0)
                        break;
        }
        if (in_num) {
                int r = fn((pid_t)cur, data);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* Write "+memory +pids +cpu" to the cgroup.subtree_control file in dir unless all three are
 * already enabled there. */
static int cg_v2_enable_in(const char *dir)
{
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);

        if (n < 0 || (size_t)n >= sizeof(path))
                return -ENAMETOOLONG;
        if (cg_file_has_controllers(path))
                return 0;
        return util_write_file(path, "+memory +pids +cpu");
}

/* Move one pid into the cgroup.procs path in data; a task that exited meanwhile is fine. */
static int cg_move_pid(pid_t pid, void *data)
{
        char v[16];
        int r;

        snprintf(v, sizeof(v), "%d", (int)pid);
        r = util_write_file(data, v);
        return r == -ESRCH ? 0 : r;
}

/* Enable the controllers in the root's cgroup.subtree_control. The true root is exempt from
 * the v2 "no internal processes" rule, but the root of a cgroup namespace (warrend in a
 * container) is not: while it holds processes the write fails with EBUSY. In that case the
 * processes are moved to a leaf group <root>/warrend first, as container init scripts do. */
static int cg_v2_enable_root(const char *root)
{
        char procs[PATH_MAX], leaf[PATH_MAX - 32], dst[PATH_MAX];
        int r = cg_v2_enable_in(root);

        if (r != -EBUSY)
                return r;
        if (snprintf(leaf, sizeof(leaf), "%s/" CG_V2_EVACUATE, root) >= (int)sizeof(leaf))
                return -ENAMETOOLONG;
        if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
                return neg_errno();
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", root);
        /* Bounded: processes forked while we move others land in the root again. */
        for (int round = 0; round < 10; round++) {
                snprintf(dst, sizeof(dst), "%s/cgroup.procs", leaf);
                r = cg_for_each_pid(AT_FDCWD, procs, cg_move_pid, dst);
                if (r < 0)
                        return r;
                r = cg_v2_enable_in(root);
                if (r != -EBUSY)
                        return r;
        }
        return -EBUSY;
}

/* Set cg up for v2 if the unified hierarchy has memory, pids and cpu: the unified mount is
 * /sys/fs/cgroup itself (pure v2) or /sys/fs/cgroup/unified (hybrid). -EOPNOTSUPP if not. */
static int cg_init_v2(void)
{
        static const char *const roots[] = { CG_SYSFS, CG_SYSFS "/unified" };
        char path[PATH_MAX];
        const char *root = NULL;
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(roots) && !root; i++) {
                if (!cg_is_fs(roots[i], CGROUP2_SUPER_MAGIC))
                        continue;
                snprintf(path, sizeof(path), "%s/cgroup.controllers", roots[i]);
                if (cg_file_has_controllers(path))
                        root = roots[i];
        }
        if (!root)
                return -EOPNOTSUPP;

        r = cg_v2_enable_root(root);
        if (r < 0)
                return r;
        snprintf(cg.hier[0], sizeof(cg.hier[0]), "%s", root);
        cg.n_hier = 1;
        r = cg_path(path, sizeof(path), 0, NULL, NULL);
        if (r < 0)
                return r;
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return neg_errno();
        /* warren never holds processes itself, so enabling here cannot hit EBUSY unless
         * someone put tasks in it by hand. */
        r = cg_v2_enable_in(path);
        if (r < 0)
                return r;
        cg_path(path, sizeof(path), 0, NULL, "cgroup.kill");
        cg.kill = cg_exists(path);
        cg_path(path, sizeof(path), 0, NULL, "memory.swap.max");
        cg.swap_max = cg_exists(path);
        cg.memsw = false;
        cg.mode = RT_CGROUP_V2;
        return 0;
}

/* Set cg up for v1: the memory, pids and cpu hierarchies mounted at /sys/fs/cgroup/<ctrl>
 * (cpu may be a symlink to cpu,cpuacct). -EOPNOTSUPP if one is missing. */
static int cg_init_v1(void)
{
        static const char *const ctrl[CG_MAX_HIER] = { "memory", "pids", "cpu" };
        static const char *const probe[CG_MAX_HIER] = { "memory.limit_in_bytes", "pids.max",
                                                        "cpu.cfs_quota_us" };
        char path[PATH_MAX];

        for (unsigned h = 0; h < CG_MAX_HIER; h++) {
                snprintf(cg.hier[h], sizeof(cg.hier[h]), CG_SYSFS "/%s", ctrl[h]);
                if (!cg_is_fs(cg.hier[h], CGROUP_SUPER_MAGIC))
                        return -EOPNOTSUPP;
        }
        cg.n_hier = CG_MAX_HIER;
        /* The probe files exist in child groups only (a root has no pids.max), so they are
         * looked for in warren/ once it is made. */
        for (unsigned h = 0; h < CG_MAX_HIER; h++) {
                cg_path(path, sizeof(path), h, NULL, NULL);
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return neg_errno();
                cg_path(path, sizeof(path), h, NULL, probe[h]);
                if (!cg_exists(path))
                        return -EOPNOTSUPP;
        }
        cg_path(path, sizeof(path), CG_V1_MEMORY, NULL, "memory.memsw.limit_in_bytes");
        cg.memsw = cg_exists(path);
        cg.swap_max = false;
        cg.kill = false;
        cg.mode = RT_CGROUP_V1;
        return 0;
}

/* Open cg.dirfd[] for the hierarchies found; on failure leave cg uninitialised. */
static int cg_open_dirs(void)
{
        char path[PATH_MAX];

        for (unsigned h = 0; h < cg.n_hier; h++) {
                int r = cg_path(path, sizeof(path), h, NULL, NULL);

                if (r < 0)
                        return r;
                cg.dirfd[h] = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (cg.dirfd[h] < 0)
                        return neg_errno();
        }
        return 0;
}

/* Forget a previous detection (closing its fds). */
static void cg_reset(void)
{
        for (unsigned h = 0; h < CG_MAX_HIER; h++) {
                if (cg.dirfd[h] >= 0)
                        close(cg.dirfd[h]);
                cg.dirfd[h] = -1;
        }
        cg.mode = RT_CGROUP_AUTO;
        cg.n_hier = 0;
}

/* Detect the mode and create the parent groups. Not thread-safe: call once at start, before
 * any other cg_ call. */
int cg_init(enum rt_cgroup_mode mode)
{
        enum rt_cgroup_mode found;
        int r;

        cg_reset();
        switch (mode) {
        case RT_CGROUP_V2:
                r = cg_init_v2();
                break;
        case RT_CGROUP_V1:
                r = cg_init_v1();
                break;
        case RT_CGROUP_AUTO:
                r = cg_init_v2();
                if (r == -EOPNOTSUPP)
                        r = cg_init_v1();
                break;
        default:
                r = -EINVAL;
        }
        if (r == 0) {
                /* The mode is published last: cg_ calls see a complete state or none. */
                found = cg.mode;
                cg.mode = RT_CGROUP_AUTO;
                r = cg_open_dirs();
                if (r == 0)
                        cg.mode = found;
        }
        if (r < 0)
                cg_reset();
        return r;
}

/* "v1", "v2", or "none" before a successful cg_init(). */
const char *cg_mode_name(void)
{
        switch (cg.mode) {
        case RT_CGROUP_V1:
                return "v1";
        case RT_CGROUP_V2:
                return "v2";
        default:
                return "none";
        }
}

/* Fill out[] with the limit files to write for lim in mode (memsw/swap_max: whether the
 * swap knobs exist) and return how many. A limit of 0 means "no limit" for cpu, memory and
 * pids. Order matters on v1: memory.limit_in_bytes before memory.memsw.limit_in_bytes
 * (memsw must never be below the plain limit). */
static size_t cg_plan_limits(enum rt_cgroup_mode mode, bool memsw, bool swap_max,
                             const struct rt_limits *lim, struct cg_setting out[CG_MAX_SETTINGS])
{
        size_t n = 0;
        uint64_t quota = 0;
        bool v2 = mode == RT_CGROUP_V2;

        if (lim->cpu_millis) {
                /* cpu_millis / 1000 CPUs over a period of 100000 us. */
                quota = lim->cpu_millis > UINT64_MAX / (CG_CPU_PERIOD_US / 1000)
                                ? UINT64_MAX
                                : lim->cpu_millis * (CG_CPU_PERIOD_US / 1000);
                if (quota < CG_CPU_MIN_QUOTA_US)
                        quota = CG_CPU_MIN_QUOTA_US;
        }

#define CG_SET(h, f, ...)                                                                          \
        do {                                                                                       \
                out[n].hier = (h);                                                                 \
                out[n].file = (f);                                                                 \
                snprintf(out[n].value, sizeof(out[n].value), __VA_ARGS__);                         \
                n++;                                                                               \
        } while (0)

        if (v2) {
                if (lim->memory_bytes)
                        CG_SET(0, "memory.max", "%" PRIu64, lim->memory_bytes);
                else
                        CG_SET(0, "memory.max", "max");
                if (swap_max)
                        CG_SET(0, "memory.swap.max", "0");
                if (lim->pids)
                        CG_SET(0, "pids.max", "%" PRIu64, lim->pids);
                else
                        CG_SET(0, "pids.max", "max");
                if (quota)
                        CG_SET(0, "cpu.max", "%" PRIu64 " %llu", quota, CG_CPU_PERIOD_US);
                else
                        CG_SET(0, "cpu.max", "max %llu", CG_CPU_PERIOD_US);
        } else {
                if (lim->memory_bytes)
                        CG_SET(CG_V1_MEMORY, "memory.limit_in_bytes", "%" PRIu64,
                               lim->memory_bytes);
                else
                        CG_SET(CG_V1_MEMORY, "memory.limit_in_bytes", "-1");
                if (memsw) {
                        /* Same value: memory + swap may not exceed the memory limit, so swap
                         * cannot be used to go past it. */
                        CG_SET(CG_V1_MEMORY, "memory.memsw.limit_in_bytes", "%s",
                               out[n - 1].value);
                }
                if (lim->pids)
                        CG_SET(CG_V1_PIDS, "pids.max", "%" PRIu64, lim->pids);
                else
                        CG_SET(CG_V1_PIDS, "pids.max", "max");
                /* cpu.cfs_period_us is not written: a new group always starts with the
                 * kernel's fixed default of 100000 us, which is CG_CPU_PERIOD_US. */
                if (quota)
                        CG_SET(CG_V1_CPU, "cpu.cfs_quota_us", "%" PRIu64, quota);
                else
                        CG_SET(CG_V1_CPU, "cpu.cfs_quota_us", "-1");
        }
#undef CG_SET
        return n;
}

/* rmdir the sandbox's group in the first n hierarchies; missing is fine. Returns the first
 * error (-EBUSY while tasks remain). */
static int cg_rmdir_n(const char *id, unsigned n)
{
        int ret = 0;

        for (unsigned h = 0; h < n; h++) {
                if (unlinkat(cg.dirfd[h], id, AT_REMOVEDIR) < 0 && errno != ENOENT && ret == 0)
                        ret = neg_errno();
        }
        return ret;
}

/* Create warren/ID in each hierarchy and write the limits. -EEXIST if the group exists
 * already (nothing is changed then); on any failure the groups made here are removed. */
int cg_create(const char *id, const struct rt_limits *lim)
{
        struct cg_setting set[CG_MAX_SETTINGS];
        size_t n_set;
        unsigned made = 0;
        int r;

        if (!cg_id_valid(id) || !lim)
                return -EINVAL;
        if (cg.mode == RT_CGROUP_AUTO)
                return -ENXIO;

        for (; made < cg.n_hier; made++) {
                if (mkdirat(cg.dirfd[made], id, 0755) < 0) {
                        r = neg_errno();
                        goto fail;
                }
        }

        n_set = cg_plan_limits(cg.mode, cg.memsw, cg.swap_max, lim, set);
        for (size_t i = 0; i < n_set; i++) {
                r = cg_write_knob(set[i].hier, id, set[i].file, set[i].value);
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        cg_rmdir_n(id, made);
        return r;
}

/* Write pid to cgroup.procs in every hierarchy. The pid is moved with all its threads; on a
 * failure it may be in some hierarchies already (the caller kills it anyway). */
int cg_attach(const char *id, pid_t pid)
{
        char v[16];

        if (!cg_id_valid(id) || pid <= 0)
                return -EINVAL;
        if (cg.mode == RT_CGROUP_AUTO)
                return -ENXIO;
        snprintf(v, sizeof(v), "%d", (int)pid);
        for (unsigned h = 0; h < cg.n_hier; h++) {
                int r = cg_write_knob(h, id, "cgroup.procs", v);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* cg_for_each_pid() callback: count. */
static int cg_count_one(pid_t pid, void *data)
{
        (*(unsigned *)data)++;
        return 0;
}

/* Processes in the group: the largest count over the hierarchies (after a partial attach a
 * process may be in one and not another). -ENOENT if the group is in none. */
int cg_count_tasks(const char *id)
{
        char rel[RT_ID_MAX + 64];
        unsigned max = 0;
        bool found = false;

        if (!cg_id_valid(id))
                return -EINVAL;
        if (cg.mode == RT_CGROUP_AUTO)
                return -ENXIO;
        for (unsigned h = 0; h < cg.n_hier; h++) {
                unsigned count = 0;
                int r = cg_rel(rel, sizeof(rel), id, "cgroup.procs");

                if (r == 0)
                        r = cg_for_each_pid(cg.dirfd[h], rel, cg_count_one, &count);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                found = true;
                if (count > max)
                        max = count;
        }
        if (!found)
                return -ENOENT;
        return max > INT_MAX ? INT_MAX : (int)max;
}

/* State of one cg_kill_all() call: the pids already sent SIGKILL (sorted after each round)
 * and the group path they must belong to. */
struct cg_kill_ctx {
        pid_t *seen;
        size_t n_seen, cap, n_sorted;
        unsigned listed; /* pids listed this round */
        unsigned fresh;  /* of which not signalled before */
        char group[RT_ID_MAX + sizeof("/" CG_PARENT "/")];
};

static int cg_pid_cmp(const void *a, const void *b)
{
        pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

        return (x > y) - (x < y);
}

/* Whether /proc/PID/cgroup puts pid in our group (or below it) in some hierarchy. Lines are
 * "N:controllers:/path"; paths are relative to the reader's cgroup namespace, like ours. */
static bool cg_pid_in_group(pid_t pid, const char *group)
{
        char path[64], buf[4096];
        size_t glen = strlen(group);

        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
        if (cg_read_small(path, buf, sizeof(buf)) < 0)
                return false;
        for (char *line = buf, *next; line && *line; line = next) {
                char *p;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                p = strchr(line, ':');
                p = p ? strchr(p + 1, ':') : NULL;
                if (!p)
                        continue;
                p++;
                if (strncmp(p, group, glen) == 0 && (p[glen] == '\0' || p[glen] == '/'))
                        return true;
        }
        return false;
}

/* SIGKILL pid if it is still a member of the group. A pid read from cgroup.procs may have
 * exited and been reused by an unrelated host process before we signal it: the pidfd pins
 * the process we check, and it is alive after the check only if the check saw it, so the
 * signal reaches a member or nobody. Without pidfds (Linux < 5.3) plain kill() is used. */
static void cg_kill_pid(pid_t pid, const char *group)
{
        int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

        if (pidfd < 0) {
                if (errno == ENOSYS)
                        kill(pid, SIGKILL);
                return;
        }
        if (cg_pid_in_group(pid, group))
                syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        close(pidfd);
}

/* cg_for_each_pid() callback of cg_kill_all(): SIGKILL pids not signalled before. */
static int cg_kill_one(pid_t pid, void *data)
{
        struct cg_kill_ctx *c = data;

        c->listed++;
        if (c->n_sorted && bsearch(&pid, c->seen, c->n_sorted, sizeof(pid_t), cg_pid_cmp))
                return 0;
        for (size_t i = c->n_sorted; i < c->n_seen; i++)
                if (c->seen[i] == pid)
                        return 0; /* listed in a second hierarchy this round */
        if (c->n_seen == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 64;
                pid_t *p = realloc(c->seen, cap * sizeof(pid_t));

                if (!p)
                        return -ENOMEM;
                c->seen = p;
                c->cap = cap;
        }
        c->seen[c->n_seen++] = pid;
        c->fresh++;
        cg_kill_pid(pid, c->group);
        return 0;
}

/* The v1 (and old v2) way: SIGKILL every listed task, again while new ones show up. A task
 * with SIGKILL pending cannot fork, so each round can only find children forked before it
 * was signalled; the loop ends when a round lists no task it has not signalled already.
 * Returns -EBUSY if that has not happened after CG_KILL_ROUNDS rounds. */
static int cg_kill_loop(const char *id)
{
        struct cg_kill_ctx c = { 0 };
        char rel[RT_ID_MAX + 64];
        int r = -EBUSY;

        snprintf(c.group, sizeof(c.group), "/" CG_PARENT "/%s", id);
        for (int round = 0; round < CG_KILL_ROUNDS; round++) {
                bool any = false;

                c.listed = c.fresh = 0;
                for (unsigned h = 0; h < cg.n_hier; h++) {
                        int k = cg_rel(rel, sizeof(rel), id, "cgroup.procs");

                        if (k == 0)
                                k = cg_for_each_pid(cg.dirfd[h], rel, cg_kill_one, &c);
                        if (k == -ENOENT)
                                continue;
                        if (k < 0) {
                                r = k;
                                goto out;
                        }
                        any = true;
                }
                if (!any || c.listed == 0 || c.fresh == 0) {
                        r = 0;
                        goto out;
                }
                qsort(c.seen, c.n_seen, sizeof(pid_t), cg_pid_cmp);
                c.n_sorted = c.n_seen;
        }
out:
        free(c.seen);
        return r;
}

/* SIGKILL every task of the group: v2's cgroup.kill when present (atomic, also catches
 * tasks forking meanwhile), else the read-and-kill loop. A missing group is fine. Returns
 * once signals are sent; tasks may still be exiting (see cg_count_tasks()). */
int cg_kill_all(const char *id)
{
        int r;

        if (!cg_id_valid(id))
                return -EINVAL;
        if (cg.mode == RT_CGROUP_AUTO)
                return -ENXIO;
        if (cg.mode == RT_CGROUP_V2 && cg.kill) {
                r = cg_write_knob(0, id, "cgroup.kill", "1");
                return r == -ENOENT ? 0 : r;
        }
        return cg_kill_loop(id);
}

/* Remove warren/ID from every hierarchy; -EBUSY while tasks remain, missing is fine. */
int cg_destroy(const char *id)
{
        if (!cg_id_valid(id))
                return -EINVAL;
        if (cg.mode == RT_CGROUP_AUTO)
                return -ENXIO;
        return cg_rmdir_n(id, cg.n_hier);
}

/* Memory in use (v2 memory.current, v1 memory.usage_in_bytes, page cache included) and
 * task count (pids.current: threads, not processes). -ENOENT if the group is missing. */
int cg_usage(const char *id, uint64_t *ret_memory_bytes, uint64_t *ret_pids)
{
        uint64_t mem, pids;
        bool v2 = cg.mode == RT_CGROUP_V2;
        int r;

        if (!cg_id_valid(id))
                return -EINVAL;
        if (cg.mode == RT_CGROUP_AUTO)
                return -ENXIO;
        r = cg_read_u64(v2 ? 0 : CG_V1_MEMORY, id,
                        v2 ? "memory.current" : "memory.usage_in_bytes", &mem);
        if (r < 0)
                return r;
        r = cg_read_u64(v2 ? 0 : CG_V1_PIDS, id, "pids.current", &pids);
        if (r < 0)
                return r;
        if (ret_memory_bytes)
                *ret_memory_bytes = mem;
        if (ret_pids)
                *ret_pids = pids;
        return 0;
}
