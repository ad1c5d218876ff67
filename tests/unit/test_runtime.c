/* test_runtime.c - the `container` backend for real (root only): create a sandbox with the
 * real warren-init, talk the agent protocol to it, check the isolation every job gets, a
 * timeout that must kill a double-forked and a setsid'ed descendant, and that destroy
 * leaves nothing behind (cgroup, directories, processes, loop device).
 *
 * warren-init is taken from $WARREN_INIT_PATH, else from next to this test binary (the
 * build directory). Everything lives in a temporary data directory under /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "runtime.h"
#include "util.h"

#define MiB (1024ULL * 1024ULL)
/* How long one job may take before the test gives up on it. */
#define JOB_WAIT_MS 20000

static char tmpdir[64];
static char data_dir[256], run_dir[256], init_path[PATH_MAX + 16];
static char sandbox_id[32];
static struct rt_instance inst;
static bool created;
/* Whether the main sandbox's disk came from the pool (it must not: the pool starts empty). */
static bool main_disk_pooled = true;
static int ctl = -1;
static uint32_t next_job = 1;

/* What one job produced. */
struct job_result {
        bool started, exited;
        char out[65536];
        size_t out_len;
        char err_out[8192];
        size_t err_len;
        int exit_code, term_signal, timed_out;
        int error; /* errno of an ERROR frame, 0 if none */
        char errmsg[256];
};

/* Locate warren-init: $WARREN_INIT_PATH or the build directory (next to this binary). */
static int find_init(void)
{
        const char *env = getenv("WARREN_INIT_PATH");
        char self[PATH_MAX];
        ssize_t n;

        if (env && env[0] == '/') {
                snprintf(init_path, sizeof(init_path), "%s", env);
                return access(init_path, X_OK);
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
                return -1;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
                return -1;
        *slash = '\0';
        snprintf(init_path, sizeof(init_path), "%s/warren-init", self);
        return access(init_path, X_OK);
}

/* Connect to a unix socket path of any length (through /proc/self/fd of its directory). */
static int connect_path(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        int dfd, fd, r;

        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
        dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd, slash + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        r = fd >= 0 ? connect(fd, (struct sockaddr *)&sa, sizeof(sa)) : -1;
        close(dfd);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

/* Read exactly n bytes within timeout_ms. */
static int read_full(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
        uint64_t deadline = util_now_ns() + (uint64_t)timeout_ms * 1000000u;
        size_t got = 0;

        while (got < n) {
                uint64_t now = util_now_ns();
                if (now >= deadline)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, (int)((deadline - now) / 1000000 + 1)) <= 0)
                        continue;
                ssize_t r = read(fd, buf + got, n - got);
                if (r == 0)
                        return -EPIPE;
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)r;
        }
        return 0;
}

/* Read one frame: header into *h, payload into buf (cap bytes). Returns payload length. */
static int read_frame(int fd, struct proto_hdr *h, uint8_t *buf, size_t cap, int timeout_ms)
{
        uint8_t hdr[PROTO_HDR_SIZE];
        int r = read_full(fd, hdr, sizeof(hdr), timeout_ms);

        if (r < 0)
                return r;
        if (proto_hdr_decode(hdr, h) < 0)
                return -EPROTO;
        size_t n = h->len - (PROTO_HDR_SIZE - 4);
        if (n > cap)
                return -E2BIG;
        r = read_full(fd, buf, n, timeout_ms);
        return r < 0 ? r : (int)n;
}

static int send_frame(int fd, uint8_t type, uint8_t flags, uint32_t job, const void *p, size_t n)
{
        uint8_t hdr[PROTO_HDR_SIZE];
        int r;

        proto_hdr_encode(hdr, type, flags, job, n);
        r = util_write_all(fd, hdr, sizeof(hdr));
        return r < 0 ? r : util_write_all(fd, p, n);
}

/* Connect to the sandbox running as in and check its HELLO. */
static int agent_connect_to(const struct rt_instance *in)
{
        static uint8_t buf[64];
        struct proto_hdr h;
        int fd = connect_path(in->ctl_path);

        if (fd < 0)
                return -1;
        int n = read_frame(fd, &h, buf, sizeof(buf), 5000);
        if (n != 8 || h.type != PROTO_HELLO || proto_get_u32(buf) != PROTO_VERSION ||
            proto_get_u32(buf + 4) != (uint32_t)in->init_pid) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Connect to the test's main sandbox. */
static int agent_connect(void)
{
        return agent_connect_to(&inst);
}

/* Start a job; optionally send stdin_data then EOF. Returns the job id. */
static uint32_t spawn(int fd, const char *const *argv, uint32_t uid, uint32_t flags,
                      uint32_t timeout_ms, const char *cwd, const char *stdin_data)
{
        static const char *env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/user",
                                     NULL };
        struct proto_spawn s = {
                .uid = uid,
                .gid = uid,
                .timeout_ms = timeout_ms,
                .flags = flags,
                .cols = 80,
                .rows = 24,
                .nofile = 1024,
                .cwd = cwd,
                .envc = 2,
                .env = env,
                .argv = (const char **)argv,
        };
        uint8_t *p;
        size_t n;
        uint32_t id = next_job++;

        while (argv[s.argc])
                s.argc++;
        assert_int_equal(proto_spawn_encode(&s, &p, &n), 0);
        assert_int_equal(send_frame(fd, PROTO_SPAWN, 0, id, p, n), 0);
        free(p);
        if (stdin_data)
                assert_int_equal(send_frame(fd, PROTO_STDIN, PROTO_F_EOF, id, stdin_data,
                                            strlen(stdin_data)), 0);
        return id;
}

/* Collect a job's frames until EXIT or ERROR. */
static void wait_job(int fd, uint32_t id, struct job_result *res)
{
        static uint8_t buf[PROTO_MAX_FRAME];
        struct proto_hdr h;

        memset(res, 0, sizeof(*res));
        for (;;) {
                int n = read_frame(fd, &h, buf, sizeof(buf), JOB_WAIT_MS);
                assert_true(n >= 0);
                if (h.job != id)
                        continue;
                switch (h.type) {
                case PROTO_STARTED:
                        assert_int_equal(n, 4);
                        assert_false(res->started);
                        res->started = true;
                        break;
                case PROTO_OUTPUT:
                        /* STARTED is always a job's first frame. */
                        assert_true(res->started);
                        if (h.flags == PROTO_STREAM_STDOUT) {
                                size_t k = (size_t)n < sizeof(res->out) - 1 - res->out_len
                                                   ? (size_t)n
                                                   : sizeof(res->out) - 1 - res->out_len;
                                memcpy(res->out + res->out_len, buf, k);
                                res->out_len += k;
                        } else {
                                assert_int_equal(h.flags, PROTO_STREAM_STDERR);
                                size_t k = (size_t)n < sizeof(res->err_out) - 1 - res->err_len
                                                   ? (size_t)n
                                                   : sizeof(res->err_out) - 1 - res->err_len;
                                memcpy(res->err_out + res->err_len, buf, k);
                                res->err_len += k;
                        }
                        break;
                case PROTO_EXIT:
                        assert_true(res->started);
                        assert_int_equal(n, 9);
                        res->exited = true;
                        res->exit_code = (int32_t)proto_get_u32(buf);
                        res->term_signal = (int32_t)proto_get_u32(buf + 4);
                        res->timed_out = buf[8];
                        return;
                case PROTO_ERROR:
                        assert_true(n >= 4);
                        res->error = (int)proto_get_u32(buf);
                        snprintf(res->errmsg, sizeof(res->errmsg), "%.*s", n - 4,
                                 (const char *)buf + 4);
                        return;
                default:
                        fail_msg("unexpected frame type %u", h.type);
                }
        }
}

/* Value of "Key:\t..." in /proc/self/status output. */
static const char *status_field(const char *out, const char *key, char *val, size_t len)
{
        char pat[64];

        snprintf(pat, sizeof(pat), "\n%s:\t", key);
        const char *p = strstr(out, pat);
        if (!p)
                return NULL;
        p += strlen(pat);
        size_t n = strcspn(p, "\n");
        snprintf(val, len, "%.*s", (int)n, p);
        return val;
}

/* Processes (other than warren-init) in the sandbox's pid namespace, seen from the host. */
static int count_sandbox_procs(void)
{
        char path[64], ns[64], other[64];
        int count = 0;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)inst.init_pid);
        n = readlink(path, ns, sizeof(ns) - 1);
        if (n <= 0)
                return 0;
        ns[n] = '\0';
        DIR *d = opendir("/proc");
        struct dirent *de;
        while ((de = readdir(d))) {
                pid_t pid = (pid_t)atoi(de->d_name);
                if (pid <= 0 || pid == inst.init_pid)
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
                n = readlink(path, other, sizeof(other) - 1);
                if (n <= 0)
                        continue;
                other[n] = '\0';
                if (strcmp(ns, other) == 0)
                        count++;
        }
        closedir(d);
        return count;
}

/* Processes whose parent is this test (zombies included). */
static int count_children(void)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int count = 0;

        while ((de = readdir(d))) {
                char path[300], buf[512];
                int pid = atoi(de->d_name), ppid;
                if (pid <= 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/stat", pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                char *p = strrchr(buf, ')');
                if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == (int)getpid())
                        count++;
        }
        closedir(d);
        return count;
}

static int group_setup(void **state)
{
        struct rt_config cfg = { .cgroup_mode = RT_CGROUP_AUTO };
        struct rt_spec spec = {
                .template = "base",
                .limits = { .cpu_millis = 1000,
                            .memory_bytes = 512 * MiB,
                            .pids = 256,
                            .nofile = 4096,
                            .disk_bytes = 256 * MiB },
        };
        struct rt_metrics m;
        char err[RT_ERR_LEN] = "";

        if (geteuid() != 0) {
                fprintf(stderr, "test_runtime needs root\n");
                return -1;
        }
        if (find_init() < 0) {
                fprintf(stderr, "warren-init not found (set WARREN_INIT_PATH)\n");
                return -1;
        }
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/warren-test-rt-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(data_dir, sizeof(data_dir), "%s/data", tmpdir);
        snprintf(run_dir, sizeof(run_dir), "%s/run", tmpdir);
        cfg.data_dir = data_dir;
        cfg.run_dir = run_dir;
        cfg.init_path = init_path;
        if (rt_init(&cfg, err) < 0 || rt_template_ensure_base(err) < 0) {
                fprintf(stderr, "rt_init: %s\n", err);
                return -1;
        }
        snprintf(sandbox_id, sizeof(sandbox_id), "test-rt-%d", (int)getpid());
        spec.id = sandbox_id;
        /* A range of its own, far from other tests' (pids are unique while we run). */
        spec.uid_base = 1000000000u + (uint32_t)(getpid() % 4096) * RT_UID_RANGE;
        if (rt_sandbox_create(&spec, &inst, &m, err) < 0) {
                fprintf(stderr, "rt_sandbox_create: %s\n", err);
                return -1;
        }
        created = true;
        main_disk_pooled = m.disk_pooled;
        fprintf(stderr, "create: disk %.2f ms, cgroup %.2f ms, spawn %.2f ms, total %.2f ms\n",
                m.disk_ms, m.cgroup_ms, m.spawn_ms, m.total_ms);
        ctl = agent_connect();
        return ctl >= 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
        char err[RT_ERR_LEN];

        if (ctl >= 0)
                close(ctl);
        if (created)
                rt_sandbox_destroy(sandbox_id, inst.init_pid, inst.init_starttime, err);
        return util_rm_rf(tmpdir) == 0 ? 0 : -1;
}

/* The sandbox user: uid 1001, no capabilities, no_new_privs, seccomp, own hostname. */
static void test_isolation_user(void **state)
{
        static const char *argv[] = {
                "/bin/sh", "-c", "id -u; cat /proc/self/status; cat /proc/sys/kernel/hostname",
                NULL };
        static struct job_result res;
        char v[64], host[128];

        wait_job(ctl, spawn(ctl, argv, RT_SANDBOX_UID, 0, 0, "/workspace", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_int_equal(strncmp(res.out, "1001\n", 5), 0);
        assert_non_null(status_field(res.out, "Uid", v, sizeof(v)));
        assert_string_equal(v, "1001\t1001\t1001\t1001");
        assert_non_null(status_field(res.out, "CapEff", v, sizeof(v)));
        assert_string_equal(v, "0000000000000000");
        assert_non_null(status_field(res.out, "CapPrm", v, sizeof(v)));
        assert_string_equal(v, "0000000000000000");
        assert_non_null(status_field(res.out, "CapBnd", v, sizeof(v)));
        assert_string_equal(v, "0000000000000000");
        assert_non_null(status_field(res.out, "NoNewPrivs", v, sizeof(v)));
        assert_string_equal(v, "1");
        assert_non_null(status_field(res.out, "Seccomp", v, sizeof(v)));
        assert_string_equal(v, "2");
        snprintf(host, sizeof(host), "\n%s\n", sandbox_id);
        assert_non_null(strstr(res.out, host));
}

/* Owners and modes of the directories a new disk brings, as the sandbox user sees them:
 * warren-init gives them (placeholders owned by host root in the image) to the sandbox. */
static void check_disk_owners(int fd)
{
        static const char *argv[] = { "stat", "-c", "%n %u %g %a", "/", "/workspace", "/home",
                                      "/home/user", "/tmp", "/root", NULL };
        static struct job_result res;

        wait_job(fd, spawn(fd, argv, RT_SANDBOX_UID, 0, 0, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_string_equal(res.out, "/ 0 0 755\n"
                                     "/workspace 1001 1001 755\n"
                                     "/home 0 0 755\n"
                                     "/home/user 1001 1001 755\n"
                                     "/tmp 0 0 1777\n"
                                     "/root 0 0 700\n");
}

/* The main sandbox's disk was made cold (mke2fs), and it has the right owners inside. */
static void test_disk_owners_cold(void **state)
{
        assert_false(main_disk_pooled);
        check_disk_owners(ctl);
}

/* A sandbox whose disk comes ready from the pool: taken (no mke2fs), right owners inside,
 * and the user can write its /workspace. */
static void test_disk_owners_pooled(void **state)
{
        static const char *argv[] = { "/bin/sh", "-c", "echo hi > /workspace/f && cat /workspace/f",
                                      NULL };
        struct rt_spec spec = {
                .id = "test-rt-pooled",
                .template = "base",
                .uid_base = 1000000000u + (uint32_t)((getpid() + 2) % 4096) * RT_UID_RANGE,
                .limits = { .cpu_millis = 500, .memory_bytes = 128 * MiB, .pids = 64,
                            .nofile = 256, .disk_bytes = 48 * MiB },
        };
        char err[RT_ERR_LEN] = "", path[PATH_MAX];
        static struct job_result res;
        struct rt_instance pi;
        struct rt_metrics m = { 0 };
        unsigned made = 0;
        struct stat st;

        snprintf(path, sizeof(path), "%s/disks/ready", data_dir);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);

        assert_int_equal(rt_disk_pool_count(spec.limits.disk_bytes), 0);
        if (rt_disk_pool_fill(spec.limits.disk_bytes, 2, &made, err) < 0)
                fail_msg("fill: %s", err);
        assert_int_equal(made, 2);
        assert_int_equal(rt_disk_pool_count(spec.limits.disk_bytes), 2);

        if (rt_sandbox_create(&spec, &pi, &m, err) < 0)
                fail_msg("create: %s", err);
        fprintf(stderr, "pooled create: disk %.3f ms, total %.2f ms\n", m.disk_ms, m.total_ms);
        assert_true(m.disk_pooled);
        assert_int_equal(rt_disk_pool_count(spec.limits.disk_bytes), 1);
        int fd = agent_connect_to(&pi);
        assert_true(fd >= 0);
        check_disk_owners(fd);
        wait_job(fd, spawn(fd, argv, RT_SANDBOX_UID, 0, 0, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_string_equal(res.out, "hi\n");
        close(fd);
        if (rt_sandbox_destroy(spec.id, pi.init_pid, pi.init_starttime, err) < 0)
                fail_msg("destroy: %s", err);
        /* The ready image left is still there for the next create. */
        assert_int_equal(rt_disk_pool_count(spec.limits.disk_bytes), 1);
}

/* A disk whose upper/workspace is a symlink to "/" (which, followed on the host by warren-init
 * while still host root, would hand the host's root directory to the sandbox): the start
 * fails at that directory, and nothing is chowned through the link. The crafted image is
 * slipped into the pool, where a create takes it. */
static void test_disk_symlink_refused(void **state)
{
        struct rt_spec spec = {
                .id = "test-rt-symlink",
                .template = "base",
                .uid_base = 1000000000u + (uint32_t)((getpid() + 3) % 4096) * RT_UID_RANGE,
                .limits = { .cpu_millis = 500, .memory_bytes = 64 * MiB, .pids = 16,
                            .nofile = 256, .disk_bytes = 40 * MiB },
        };
        char err[RT_ERR_LEN] = "", stage[PATH_MAX], cmd[4 * PATH_MAX];
        char img[PATH_MAX], ready[PATH_MAX + 64];
        struct rt_instance bad;
        struct rt_metrics m = { 0 };
        struct stat before, after;

        snprintf(stage, sizeof(stage), "%s/evil", tmpdir);
        snprintf(cmd, sizeof(cmd), "%s/upper", stage);
        assert_int_equal(util_mkdir_p(cmd, 0755), 0);
        snprintf(cmd, sizeof(cmd), "%s/work", stage);
        assert_int_equal(util_mkdir_p(cmd, 0700), 0);
        snprintf(cmd, sizeof(cmd), "%s/upper/workspace", stage);
        assert_int_equal(symlink("/", cmd), 0);
        snprintf(img, sizeof(img), "%s/evil.img", tmpdir);
        snprintf(cmd, sizeof(cmd),
                 "truncate -s %llu %s && mke2fs -q -F -t ext4 -O ^has_journal -d %s %s "
                 ">/dev/null 2>&1",
                 (unsigned long long)spec.limits.disk_bytes, img, stage, img);
        assert_int_equal(system(cmd), 0);
        snprintf(ready, sizeof(ready), "%s/disks/ready/%llu/0123456789abcdef0123456789abcdef",
                 data_dir, (unsigned long long)spec.limits.disk_bytes);
        assert_int_equal(util_mkdir_p(ready, 0700), 0);
        snprintf(ready + strlen(ready), sizeof(ready) - strlen(ready), "/disk.img");
        assert_int_equal(rename(img, ready), 0);
        assert_int_equal(rt_disk_pool_count(spec.limits.disk_bytes), 1);

        assert_int_equal(stat("/", &before), 0);
        int r = rt_sandbox_create(&spec, &bad, &m, err);
        assert_true(r == -ELOOP || r == -ENOTDIR);
        print_message("refused: %s\n", err);
        assert_non_null(strstr(err, "upper/workspace"));
        assert_int_equal(rt_disk_pool_count(spec.limits.disk_bytes), 0);
        assert_int_equal(stat("/", &after), 0);
        assert_int_equal(after.st_uid, before.st_uid);
        assert_int_equal(after.st_gid, before.st_gid);
        assert_int_equal(after.st_mode, before.st_mode);
}

/* warren-init itself, seen from the host: not host root, no_new_privs, seccomp. */
static void test_init_confined(void **state)
{
        char path[64], v[64];
        static char buf[8192];

        snprintf(path, sizeof(path), "/proc/%d/status", (int)inst.init_pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        ssize_t n = read(fd, buf + 1, sizeof(buf) - 2);
        close(fd);
        assert_true(n > 0);
        buf[0] = '\n';
        buf[n + 1] = '\0';
        assert_non_null(status_field(buf, "Uid", v, sizeof(v)));
        assert_true(strtoul(v, NULL, 10) >= RT_UID_RANGE);
        assert_non_null(status_field(buf, "NoNewPrivs", v, sizeof(v)));
        assert_string_equal(v, "1");
        assert_non_null(status_field(buf, "Seccomp", v, sizeof(v)));
        assert_string_equal(v, "2");
}

/* Root inside may kill every process of the sandbox but PID 1, the job's reaper included:
 * the job still ends with its command's own status and output. */
static void test_root_kill_all_keeps_job(void **state)
{
        static const char *argv[] = { "/bin/sh", "-c",
                                      "sleep 100 & kill -9 -1; sleep 0.2; echo done", NULL };
        static struct job_result res;

        wait_job(ctl, spawn(ctl, argv, 0, 0, 10000, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_int_equal(res.timed_out, 0);
        assert_string_equal(res.out, "done\n");
        assert_true(rt_sandbox_alive(inst.init_pid, inst.init_starttime));
}

/* Root inside keeps exactly Docker's default capabilities, and is not host root. */
static void test_isolation_root(void **state)
{
        static const char *argv[] = { "/bin/sh", "-c", "cat /proc/self/status /proc/self/uid_map",
                                      NULL };
        static struct job_result res;
        char v[64], map[64];

        wait_job(ctl, spawn(ctl, argv, 0, 0, 0, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_non_null(status_field(res.out, "CapEff", v, sizeof(v)));
        assert_string_equal(v, "00000000a80425fb");
        assert_non_null(status_field(res.out, "CapBnd", v, sizeof(v)));
        assert_string_equal(v, "00000000a80425fb");
        uint32_t base = 1000000000u + (uint32_t)(getpid() % 4096) * RT_UID_RANGE;
        snprintf(map, sizeof(map), "%u", base);
        assert_non_null(strstr(res.out, map));
}

/* stdin through a pipe, with EOF. */
static void test_stdin(void **state)
{
        static const char *argv[] = { "cat", NULL };
        static struct job_result res;

        wait_job(ctl, spawn(ctl, argv, RT_SANDBOX_UID, PROTO_SPAWN_STDIN, 0, "/", "hello\n"),
                 &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_string_equal(res.out, "hello\n");
}

/* A job on a pty sees a terminal of the requested size. */
static void test_pty(void **state)
{
        static const char *argv[] = { "/bin/sh", "-c", "test -t 0 && stty size", NULL };
        static struct job_result res;

        wait_job(ctl, spawn(ctl, argv, RT_SANDBOX_UID, PROTO_SPAWN_PTY, 0, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_non_null(strstr(res.out, "24 80"));
}

/* Exec failures come back as ERROR with the cause, and no EXIT follows. */
static void test_exec_errors(void **state)
{
        static const char *missing[] = { "no-such-command-here", NULL };
        static const char *sh[] = { "/bin/sh", "-c", "true", NULL };
        static struct job_result res;

        wait_job(ctl, spawn(ctl, missing, RT_SANDBOX_UID, 0, 0, "/", NULL), &res);
        assert_int_equal(res.error, ENOENT);
        assert_non_null(strstr(res.errmsg, "not found"));
        wait_job(ctl, spawn(ctl, sh, RT_SANDBOX_UID, 0, 0, "/no/such/dir", NULL), &res);
        assert_int_equal(res.error, ENOENT);
        assert_non_null(strstr(res.errmsg, "chdir"));
        /* The connection still works after errors. */
        wait_job(ctl, spawn(ctl, sh, RT_SANDBOX_UID, 0, 0, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
}

/* A timeout kills the job and every descendant: double-forked and setsid'ed ones too. */
static void test_timeout_kills_tree(void **state)
{
        static const char *argv[] = {
                "/bin/sh", "-c",
                "(sleep 300 &); (setsid sleep 301 &); echo forked; sleep 302", NULL };
        static struct job_result res;
        uint64_t t0 = util_now_ns();

        wait_job(ctl, spawn(ctl, argv, RT_SANDBOX_UID, 0, 500, "/", NULL), &res);
        double ms = util_ms_since(t0);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 124);
        assert_int_equal(res.timed_out, 1);
        assert_int_equal(res.term_signal, SIGKILL);
        assert_string_equal(res.out, "forked\n");
        assert_true(ms < 1500);
        /* Nothing of it is left in the sandbox (warren-init reaps the killed orphans). */
        for (int i = 0; i < 100 && count_sandbox_procs() > 0; i++)
                usleep(10000);
        assert_int_equal(count_sandbox_procs(), 0);
}

/* A background process outliving its job does not hold EXIT back. */
static void test_background_does_not_block_exit(void **state)
{
        static const char *argv[] = { "/bin/sh", "-c", "sleep 30 & echo done", NULL };
        static struct job_result res;
        uint64_t t0 = util_now_ns();

        wait_job(ctl, spawn(ctl, argv, RT_SANDBOX_UID, 0, 0, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_string_equal(res.out, "done\n");
        assert_true(util_ms_since(t0) < 5000);
        /* The sleep, and the job's reaper it stays under. */
        assert_int_equal(count_sandbox_procs(), 2);
        /* KILLALL from PID 1 takes it down. */
        assert_int_equal(send_frame(ctl, PROTO_KILLALL, 0, 0, NULL, 0), 0);
        for (int i = 0; i < 100 && count_sandbox_procs() > 0; i++)
                usleep(10000);
        assert_int_equal(count_sandbox_procs(), 0);
}

/* Descendants that outlive their command (double-forked, setsid'ed) do not hold EXIT back,
 * and still die at the job's deadline. */
static void test_deadline_kills_leftovers(void **state)
{
        static const char *argv[] = { "/bin/sh", "-c",
                                      "(sleep 30 &); (setsid sleep 31 &); echo started", NULL };
        static struct job_result res;
        uint64_t t0 = util_now_ns();

        wait_job(ctl, spawn(ctl, argv, RT_SANDBOX_UID, 0, 800, "/", NULL), &res);
        assert_true(res.exited);
        assert_int_equal(res.exit_code, 0);
        assert_int_equal(res.timed_out, 0);
        assert_string_equal(res.out, "started\n");
        assert_true(util_ms_since(t0) < 700);
        assert_true(count_sandbox_procs() >= 2);
        while (count_sandbox_procs() > 0 && util_ms_since(t0) < 3000)
                usleep(10000);
        assert_int_equal(count_sandbox_procs(), 0);
        assert_true(util_ms_since(t0) < 1800);
}

/* A malformed frame closes that connection only; warren-init keeps serving. */
static void test_bad_frame(void **state)
{
        static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x7f, 2, 0, 0, 0, 1, 0, 0, 0 };
        uint8_t b;
        int fd = agent_connect();

        assert_true(fd >= 0);
        assert_int_equal(util_write_all(fd, junk, sizeof(junk)), 0);
        assert_int_equal(read_full(fd, &b, 1, 5000), -EPIPE);
        close(fd);
        /* The other connection still answers. */
        assert_int_equal(send_frame(ctl, PROTO_PING, 0, 7, NULL, 0), 0);
        struct proto_hdr h;
        uint8_t buf[16];
        assert_int_equal(read_frame(ctl, &h, buf, sizeof(buf), 5000), 0);
        assert_int_equal(h.type, PROTO_PONG);
        assert_true(rt_sandbox_alive(inst.init_pid, inst.init_starttime));
}

/* Whether some loop device is still backed by path. */
static bool loop_uses(const char *path)
{
        DIR *d = opendir("/sys/block");
        struct dirent *de;
        bool found = false;

        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                char p[PATH_MAX], back[PATH_MAX];
                if (strncmp(de->d_name, "loop", 4) != 0)
                        continue;
                snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t n = read(fd, back, sizeof(back) - 1);
                close(fd);
                if (n > 0) {
                        back[n] = '\0';
                        found = strstr(back, path) != NULL;
                }
        }
        closedir(d);
        return found;
}

/* Whether any cgroup hierarchy still has warren/ID. */
static bool cgroup_left(void)
{
        DIR *d = opendir("/sys/fs/cgroup");
        struct dirent *de;
        bool found = false;
        char p[PATH_MAX];
        struct stat st;

        snprintf(p, sizeof(p), "/sys/fs/cgroup/warren/%s", sandbox_id);
        if (stat(p, &st) == 0)
                return true;
        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "/sys/fs/cgroup/%s/warren/%s", de->d_name, sandbox_id);
                found = stat(p, &st) == 0;
        }
        closedir(d);
        return found;
}

/* A failure inside warren-init's setup (here: a template whose /proc is a symlink, which
 * would send the proc mount elsewhere) comes back with warren-init's own message and errno,
 * and the failed create leaves nothing behind. */
static void test_create_failure_cleans_up(void **state)
{
        struct rt_spec spec = {
                .id = "test-rt-broken",
                .template = "broken",
                .uid_base = 1000000000u + (uint32_t)((getpid() + 1) % 4096) * RT_UID_RANGE,
                .limits = { .cpu_millis = 500, .memory_bytes = 64 * MiB, .pids = 16,
                            .nofile = 256, .disk_bytes = 32 * MiB },
        };
        char err[RT_ERR_LEN] = "", path[PATH_MAX + 64];
        struct rt_instance bad;
        struct stat st;

        /* An /etc (warren-init writes /etc/hostname first), and a /proc that is a symlink. */
        snprintf(path, sizeof(path), "%s/templates/broken/rootfs/etc", data_dir);
        assert_int_equal(util_mkdir_p(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/templates/broken/rootfs/proc", data_dir);
        assert_int_equal(symlink("/etc", path), 0);

        assert_int_equal(rt_sandbox_create(&spec, &bad, NULL, err), -ENOTDIR);
        assert_non_null(strstr(err, "warren-init"));
        assert_non_null(strstr(err, "/proc"));
        /* The cloned child was reaped: our only child is the main sandbox's warren-init. */
        assert_int_equal(count_children(), 1);
        snprintf(path, sizeof(path), "%s/sandboxes/%s", data_dir, spec.id);
        assert_int_equal(stat(path, &st), -1);
        snprintf(path, sizeof(path), "%s/sandboxes/%s", run_dir, spec.id);
        assert_int_equal(stat(path, &st), -1);
        snprintf(path, sizeof(path), "/sys/fs/cgroup/pids/warren/%s", spec.id);
        assert_int_equal(stat(path, &st), -1);
        snprintf(path, sizeof(path), "/sys/fs/cgroup/unified/warren/%s", spec.id);
        assert_int_equal(stat(path, &st), -1);
}

/* Destroy leaves nothing: no process, no cgroup, no directories, no loop device. */
static void test_destroy(void **state)
{
        char err[RT_ERR_LEN] = "", path[PATH_MAX + 64];
        struct stat st;
        uint64_t mem = 0, pids = 0;

        assert_int_equal(rt_sandbox_usage(sandbox_id, &mem, &pids), 0);
        assert_true(pids >= 1);
        assert_true(cgroup_left());
        close(ctl);
        ctl = -1;
        int r = rt_sandbox_destroy(sandbox_id, inst.init_pid, inst.init_starttime, err);
        if (r < 0)
                fail_msg("destroy: %s", err);
        created = false;
        assert_false(rt_sandbox_alive(inst.init_pid, inst.init_starttime));
        assert_true(kill(inst.init_pid, 0) < 0 && errno == ESRCH);
        assert_false(cgroup_left());
        snprintf(path, sizeof(path), "%s/sandboxes/%s", data_dir, sandbox_id);
        assert_int_equal(stat(path, &st), -1);
        snprintf(path, sizeof(path), "%s/sandboxes/%s", run_dir, sandbox_id);
        assert_int_equal(stat(path, &st), -1);
        /* The loop device detaches by itself once the sandbox's mounts are gone. */
        snprintf(path, sizeof(path), "%s/sandboxes/%s/disk.img", data_dir, sandbox_id);
        for (int i = 0; i < 200 && loop_uses(path); i++)
                usleep(10000);
        assert_false(loop_uses(path));
        /* Idempotent. */
        assert_int_equal(rt_sandbox_destroy(sandbox_id, inst.init_pid, inst.init_starttime, err),
                         0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_isolation_user),
                cmocka_unit_test(test_isolation_root),
                cmocka_unit_test(test_init_confined),
                cmocka_unit_test(test_disk_owners_cold),
                cmocka_unit_test(test_disk_owners_pooled),
                cmocka_unit_test(test_disk_symlink_refused),
                cmocka_unit_test(test_root_kill_all_keeps_job),
                cmocka_unit_test(test_stdin),
                cmocka_unit_test(test_pty),
                cmocka_unit_test(test_exec_errors),
                cmocka_unit_test(test_timeout_kills_tree),
                cmocka_unit_test(test_background_does_not_block_exit),
                cmocka_unit_test(test_deadline_kills_leftovers),
                cmocka_unit_test(test_bad_frame),
                cmocka_unit_test(test_create_failure_cleans_up),
                cmocka_unit_test(test_destroy),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
