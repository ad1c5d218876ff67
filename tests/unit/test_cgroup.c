/* test_cgroup.c - cgroup.c against the real kernel (root only), plus the limit formatting of
 * both modes. The source is included so the static planner can be checked for v2 on a v1
 * machine; the lifecycle tests run whichever mode cg_init() detects here.
 */
#include "cgroup.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define MiB (1024ULL * 1024ULL)

/* A group id unique to this run. */
static void test_id(char *buf, size_t len, const char *tag)
{
        uint32_t r = 0;

        assert_int_equal(util_random(&r, sizeof(r)), 0);
        snprintf(buf, len, "t-%s-%d-%08x", tag, (int)getpid(), r);
}

/* Read a limit file of the group in hierarchy h as text (trailing newline removed). */
static void read_knob(unsigned h, const char *id, const char *file, char *buf, size_t len)
{
        char path[PATH_MAX];

        assert_int_equal(cg_path(path, sizeof(path), h, id, file), 0);
        assert_int_equal(cg_read_small(path, buf, len), 0);
        buf[strcspn(buf, "\n")] = '\0';
}

/* Find the planned value of file in set[0..n). */
static const char *plan_value(const struct cg_setting *set, size_t n, const char *file)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(set[i].file, file) == 0)
                        return set[i].value;
        return NULL;
}

static void test_id_validation(void **state)
{
        char long_id[RT_ID_MAX + 2];

        assert_true(cg_id_valid("abc-123"));
        assert_false(cg_id_valid(""));
        assert_false(cg_id_valid(NULL));
        assert_false(cg_id_valid("-abc"));
        assert_false(cg_id_valid(".."));
        assert_false(cg_id_valid("a/b"));
        assert_false(cg_id_valid("ABC"));
        memset(long_id, 'a', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        assert_false(cg_id_valid(long_id));
        long_id[RT_ID_MAX] = '\0';
        assert_true(cg_id_valid(long_id));
}

static void test_plan_v2(void **state)
{
        struct cg_setting set[CG_MAX_SETTINGS];
        struct rt_limits lim = { .cpu_millis = 1500, .memory_bytes = 512 * MiB, .pids = 100 };
        size_t n = cg_plan_limits(RT_CGROUP_V2, false, true, &lim, set);

        assert_int_equal(n, 4);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(set[i].hier, 0);
        assert_string_equal(plan_value(set, n, "memory.max"), "536870912");
        assert_string_equal(plan_value(set, n, "memory.swap.max"), "0");
        assert_string_equal(plan_value(set, n, "pids.max"), "100");
        assert_string_equal(plan_value(set, n, "cpu.max"), "150000 100000");

        /* No swap accounting: no swap knob. Zero limits: unlimited. Tiny cpu: kernel min. */
        lim = (struct rt_limits){ .cpu_millis = 5 };
        n = cg_plan_limits(RT_CGROUP_V2, false, false, &lim, set);
        assert_int_equal(n, 3);
        assert_null(plan_value(set, n, "memory.swap.max"));
        assert_string_equal(plan_value(set, n, "memory.max"), "max");
        assert_string_equal(plan_value(set, n, "pids.max"), "max");
        assert_string_equal(plan_value(set, n, "cpu.max"), "1000 100000");
        lim.cpu_millis = 0;
        n = cg_plan_limits(RT_CGROUP_V2, false, false, &lim, set);
        assert_string_equal(plan_value(set, n, "cpu.max"), "max 100000");
}

static void test_plan_v1(void **state)
{
        struct cg_setting set[CG_MAX_SETTINGS];
        struct rt_limits lim = { .cpu_millis = 250, .memory_bytes = 64 * MiB, .pids = 32 };
        size_t n = cg_plan_limits(RT_CGROUP_V1, true, false, &lim, set);

        assert_int_equal(n, 4);
        /* memory.limit_in_bytes must come before memsw, the period before the quota. */
        assert_string_equal(set[0].file, "memory.limit_in_bytes");
        assert_int_equal(set[0].hier, CG_V1_MEMORY);
        assert_string_equal(set[0].value, "67108864");
        assert_string_equal(set[1].file, "memory.memsw.limit_in_bytes");
        assert_string_equal(set[1].value, "67108864");
        assert_string_equal(set[2].file, "pids.max");
        assert_int_equal(set[2].hier, CG_V1_PIDS);
        assert_string_equal(set[2].value, "32");
        assert_string_equal(set[3].file, "cpu.cfs_quota_us");
        assert_int_equal(set[3].hier, CG_V1_CPU);
        assert_string_equal(set[3].value, "25000");

        lim = (struct rt_limits){ 0 };
        n = cg_plan_limits(RT_CGROUP_V1, false, false, &lim, set);
        assert_int_equal(n, 3);
        assert_null(plan_value(set, n, "memory.memsw.limit_in_bytes"));
        assert_string_equal(plan_value(set, n, "memory.limit_in_bytes"), "-1");
        assert_string_equal(plan_value(set, n, "pids.max"), "max");
        assert_string_equal(plan_value(set, n, "cpu.cfs_quota_us"), "-1");
}

static void test_list_parsing(void **state)
{
        assert_true(cg_list_has("cpuset cpu io memory pids\n", "cpu"));
        assert_true(cg_list_has("cpuset cpu io memory pids\n", "pids"));
        assert_false(cg_list_has("cpuset io memory pids\n", "cpu"));
        assert_false(cg_list_has("cpuacct memory", "cpu"));
}

static int setup_init(void **state)
{
        return geteuid() == 0 && cg_init(RT_CGROUP_AUTO) == 0 ? 0 : -1;
}

/* Wait (bounded) until the group has no tasks; returns the last count. */
static int wait_empty(const char *id)
{
        int n = -1;

        for (int i = 0; i < 2000; i++) {
                n = cg_count_tasks(id);
                if (n <= 0)
                        return n;
                usleep(1000);
        }
        return n;
}

/* Reap every child of this process (it is a subreaper, so orphaned grandchildren too). */
static void reap_all(void)
{
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

/* Forcing a mode either works or says the kernel lacks it; AUTO is restored afterwards. */
static void test_forced_modes(void **state)
{
        int r = cg_init(RT_CGROUP_V2);

        if (r == 0)
                assert_string_equal(cg_mode_name(), "v2");
        else
                assert_int_equal(r, -EOPNOTSUPP);
        r = cg_init(RT_CGROUP_V1);
        if (r == 0)
                assert_string_equal(cg_mode_name(), "v1");
        else
                assert_int_equal(r, -EOPNOTSUPP);
        assert_int_equal(cg_init(RT_CGROUP_AUTO), 0);
        assert_true(strcmp(cg_mode_name(), "v1") == 0 || strcmp(cg_mode_name(), "v2") == 0);
}

static void test_lifecycle(void **state)
{
        struct rt_limits lim = { .cpu_millis = 500, .memory_bytes = 64 * MiB, .pids = 32 };
        char id[RT_ID_MAX], buf[256], path[PATH_MAX];
        int pipefd[2], status;
        uint64_t mem = 0, pids = 0;
        pid_t child;
        char c;

        assert_true(strcmp(cg_mode_name(), "v1") == 0 || strcmp(cg_mode_name(), "v2") == 0);
        test_id(id, sizeof(id), "life");
        assert_int_equal(cg_create(id, &lim), 0);
        assert_int_equal(cg_create(id, &lim), -EEXIST);
        assert_int_equal(cg_create("../escape", &lim), -EINVAL);

        if (cg.mode == RT_CGROUP_V1) {
                read_knob(CG_V1_MEMORY, id, "memory.limit_in_bytes", buf, sizeof(buf));
                assert_string_equal(buf, "67108864");
                if (cg.memsw) {
                        read_knob(CG_V1_MEMORY, id, "memory.memsw.limit_in_bytes", buf,
                                  sizeof(buf));
                        assert_string_equal(buf, "67108864");
                }
                read_knob(CG_V1_PIDS, id, "pids.max", buf, sizeof(buf));
                assert_string_equal(buf, "32");
                read_knob(CG_V1_CPU, id, "cpu.cfs_period_us", buf, sizeof(buf));
                assert_string_equal(buf, "100000");
                read_knob(CG_V1_CPU, id, "cpu.cfs_quota_us", buf, sizeof(buf));
                assert_string_equal(buf, "50000");
        } else {
                read_knob(0, id, "memory.max", buf, sizeof(buf));
                assert_string_equal(buf, "67108864");
                if (cg.swap_max) {
                        read_knob(0, id, "memory.swap.max", buf, sizeof(buf));
                        assert_string_equal(buf, "0");
                }
                read_knob(0, id, "pids.max", buf, sizeof(buf));
                assert_string_equal(buf, "32");
                read_knob(0, id, "cpu.max", buf, sizeof(buf));
                assert_string_equal(buf, "50000 100000");
        }
        assert_int_equal(cg_count_tasks(id), 0);

        /* A child that forks 5 grandchildren once it is in the group, then waits. */
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                /* If the test dies, so do its children (and they would keep the group). */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(pipefd[1]);
                if (read(pipefd[0], &c, 1) != 1)
                        _exit(1);
                for (int i = 0; i < 5; i++) {
                        if (fork() == 0) {
                                prctl(PR_SET_PDEATHSIG, SIGKILL);
                                for (;;)
                                        pause();
                        }
                }
                for (;;)
                        pause();
        }
        close(pipefd[0]);
        assert_int_equal(cg_attach(id, child), 0);
        assert_int_equal(write(pipefd[1], "x", 1), 1);
        close(pipefd[1]);
        for (int i = 0; i < 2000 && cg_count_tasks(id) < 6; i++)
                usleep(1000);
        assert_int_equal(cg_count_tasks(id), 6);

        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)child);
        assert_int_equal(cg_read_small(path, buf, sizeof(buf)), 0);
        assert_non_null(strstr(buf, id));
        snprintf(path, sizeof(path), "/warren/%s", id);
        assert_true(cg_pid_in_group(child, path));
        assert_false(cg_pid_in_group(getpid(), path));
        /* A prefix of the group name is another group. */
        path[strlen(path) - 1] = '\0';
        assert_false(cg_pid_in_group(child, path));

        assert_int_equal(cg_usage(id, &mem, &pids), 0);
        assert_true(mem > 0);
        assert_int_equal(pids, 6);

        assert_int_equal(cg_destroy(id), -EBUSY);
        assert_int_equal(cg_kill_all(id), 0);
        assert_int_equal(wait_empty(id), 0);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        reap_all();

        assert_int_equal(cg_destroy(id), 0);
        assert_int_equal(cg_destroy(id), 0); /* missing is fine */
        assert_int_equal(cg_count_tasks(id), -ENOENT);
        assert_int_equal(cg_usage(id, &mem, &pids), -ENOENT);
        assert_int_equal(cg_kill_all(id), 0);
}

/* Run fn in a child attached to a fresh group with lim; return its wait status. */
static int run_limited(const struct rt_limits *lim, void (*fn)(void))
{
        char id[RT_ID_MAX], c;
        int pipefd[2], status = -1;
        pid_t child;

        test_id(id, sizeof(id), "lim");
        assert_int_equal(cg_create(id, lim), 0);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(pipefd[1]);
                if (read(pipefd[0], &c, 1) != 1)
                        _exit(1);
                fn();
                _exit(0);
        }
        close(pipefd[0]);
        assert_int_equal(cg_attach(id, child), 0);
        assert_int_equal(write(pipefd[1], "x", 1), 1);
        close(pipefd[1]);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_int_equal(cg_kill_all(id), 0);
        assert_int_equal(wait_empty(id), 0);
        reap_all();
        assert_int_equal(cg_destroy(id), 0);
        return status;
}

/* Fork until it fails; exit 42 if a fork failed with EAGAIN before 64 succeeded. */
static void fork_many(void)
{
        for (int i = 0; i < 64; i++) {
                pid_t p = fork();

                if (p < 0)
                        _exit(errno == EAGAIN ? 42 : 2);
                if (p == 0) {
                        sleep(5);
                        _exit(0);
                }
        }
        _exit(3);
}

/* Touch 256 MiB; with a 32 MiB limit and no swap this must end in the OOM killer. */
static void eat_memory(void)
{
        size_t len = 256 * MiB;
        char *p = malloc(len);

        if (!p)
                _exit(4);
        for (size_t i = 0; i < len; i += 4096)
                p[i] = 1;
        _exit(5);
}

static void test_limits_enforced(void **state)
{
        struct rt_limits pids = { .cpu_millis = 1000, .memory_bytes = 256 * MiB, .pids = 8 };
        struct rt_limits mem = { .cpu_millis = 1000, .memory_bytes = 32 * MiB, .pids = 64 };
        int status;

        status = run_limited(&pids, fork_many);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 42);

        status = run_limited(&mem, eat_memory);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_create_destroy_timing(void **state)
{
        struct rt_limits lim = { .cpu_millis = 1000, .memory_bytes = 512 * MiB, .pids = 256 };
        enum { N = 100 };
        char id[RT_ID_MAX];
        uint64_t t0;
        double ms;

        test_id(id, sizeof(id), "time");
        t0 = util_now_ns();
        for (int i = 0; i < N; i++) {
                assert_int_equal(cg_create(id, &lim), 0);
                assert_int_equal(cg_destroy(id), 0);
        }
        ms = util_ms_since(t0) / N;
        print_message("cgroup %s: create+destroy %.3f ms (mean of %d)\n", cg_mode_name(), ms, N);
        assert_true(ms < 50.0);
}

int main(void)
{
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_id_validation),
                cmocka_unit_test(test_plan_v2),
                cmocka_unit_test(test_plan_v1),
                cmocka_unit_test(test_list_parsing),
        };
        const struct CMUnitTest real[] = {
                cmocka_unit_test(test_forced_modes),
                cmocka_unit_test(test_lifecycle),
                cmocka_unit_test(test_limits_enforced),
                cmocka_unit_test(test_create_destroy_timing),
        };
        int r;

        /* Orphaned grandchildren come back to us, so the tests can reap them. */
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        r = cmocka_run_group_tests_name("cgroup_pure", pure, NULL, NULL);
        r += cmocka_run_group_tests_name("cgroup_real", real, setup_init, NULL);
        return r;
}
