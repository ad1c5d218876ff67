/* test_util.c - common utilities: rm_rf safety (symlinks, mounts, depth), proc starttime
 * parsing with a hostile comm, file helpers, formatting, randomness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "util.h"

static char tmpl[64];

static int setup(void **state)
{
        strcpy(tmpl, "/tmp/test_util.XXXXXX");
        return mkdtemp(tmpl) ? 0 : -1;
}

static int teardown(void **state)
{
        util_rm_rf(tmpl);
        return 0;
}

static void path_at(char *buf, size_t n, const char *rel)
{
        snprintf(buf, n, "%s/%s", tmpl, rel);
}

static bool exists(const char *rel)
{
        char p[4096];
        struct stat st;

        path_at(p, sizeof(p), rel);
        return lstat(p, &st) == 0;
}

static void test_time_hex_random(void **state)
{
        char buf[32];
        uint8_t in[] = { 0x00, 0x9f, 0xff, 0x10 };
        uint8_t r1[300] = { 0 }, r2[300] = { 0 };

        util_fmt_time(0, buf, sizeof(buf));
        assert_string_equal(buf, "1970-01-01T00:00:00Z");
        util_fmt_time(1769767200, buf, 21);
        assert_string_equal(buf, "2026-01-30T10:00:00Z");
        util_fmt_time(1769767200, buf, 20);
        assert_string_equal(buf, "");
        util_hex(in, sizeof(in), buf);
        assert_string_equal(buf, "009fff10");
        assert_int_equal(util_random(r1, sizeof(r1)), 0);
        assert_int_equal(util_random(r2, sizeof(r2)), 0);
        assert_memory_not_equal(r1, r2, sizeof(r1));
        assert_true(util_wall_s() > 1700000000);
        uint64_t t = util_now_ns();
        assert_true(util_ms_since(t) >= 0.0);
}

static void test_read_write_all(void **state)
{
        int p[2];
        char buf[8];

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(util_write_all(p[1], "hello", 5), 0);
        close(p[1]);
        assert_int_equal(util_read_all(p[0], buf, 5), 0);
        assert_memory_equal(buf, "hello", 5);
        assert_int_equal(util_read_all(p[0], buf, 1), -EPIPE);
        close(p[0]);
        assert_int_equal(util_write_all(-1, "x", 1), -EBADF);
}

static void test_files_and_mkdir(void **state)
{
        char p[4096], buf[64];

        path_at(p, sizeof(p), "a/b//c/");
        assert_int_equal(util_mkdir_p(p, 0755), 0);
        assert_int_equal(util_mkdir_p(p, 0755), 0);
        assert_true(exists("a/b/c"));

        cleanup_close int dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(util_write_file_at(dfd, "a/f", "long value", 0600), 0);
        assert_int_equal(util_write_file_at(dfd, "a/f", "short", 0600), 0);
        path_at(p, sizeof(p), "a/f");
        FILE *f = fopen(p, "re");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        assert_int_equal(n, 5);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        assert_int_equal(util_write_file(p, "x"), 0);
        path_at(p, sizeof(p), "a/missing");
        assert_int_equal(util_write_file(p, "x"), -ENOENT);

        /* mkdir -p through a file fails; write_file_at does not follow a final symlink. */
        path_at(p, sizeof(p), "a/f/sub");
        assert_int_equal(util_mkdir_p(p, 0755), -ENOTDIR);
        assert_int_equal(symlinkat("f", dfd, "a/link"), 0);
        assert_int_equal(util_write_file_at(dfd, "a/link", "evil", 0600), -ELOOP);
}

static void test_rm_rf_symlinks(void **state)
{
        char p[4096], outside[4096];
        cleanup_close int dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        assert_true(dfd >= 0);
        /* outside/keep must survive removing tree/, which links to it in several ways. */
        assert_int_equal(mkdirat(dfd, "outside", 0755), 0);
        assert_int_equal(util_write_file_at(dfd, "outside/keep", "k", 0644), 0);
        assert_int_equal(mkdirat(dfd, "tree", 0755), 0);
        assert_int_equal(mkdirat(dfd, "tree/d", 0700), 0);
        assert_int_equal(util_write_file_at(dfd, "tree/d/f", "x", 0), 0);
        path_at(outside, sizeof(outside), "outside");
        assert_int_equal(symlinkat(outside, dfd, "tree/abs"), 0);
        assert_int_equal(symlinkat("../../outside", dfd, "tree/d/rel"), 0);
        assert_int_equal(mkfifoat(dfd, "tree/fifo", 0600), 0);

        path_at(p, sizeof(p), "tree");
        assert_int_equal(util_rm_rf(p), 0);
        assert_false(exists("tree"));
        assert_true(exists("outside/keep"));

        /* A symlink given as the path is removed, not its target. */
        assert_int_equal(symlinkat(outside, dfd, "lnk"), 0);
        path_at(p, sizeof(p), "lnk");
        assert_int_equal(util_rm_rf(p), 0);
        assert_false(exists("lnk"));
        assert_true(exists("outside/keep"));

        /* Missing is fine; a plain file is removed. */
        assert_int_equal(util_rm_rf(p), 0);
        path_at(p, sizeof(p), "outside/keep");
        assert_int_equal(util_rm_rf(p), 0);
        assert_false(exists("outside/keep"));
        assert_int_equal(util_rm_rf("/"), -EPERM);
}

/* Deeper than the walk's fd depth limit: subtrees get moved up and still removed. */
static void test_rm_rf_deep(void **state)
{
        char p[4096];
        cleanup_close int dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int fd;

        assert_true(dfd >= 0);
        assert_int_equal(mkdirat(dfd, "deep", 0755), 0);
        fd = openat(dfd, "deep", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(mkdirat(fd, "d", 0755), 0);
                assert_int_equal(util_write_file_at(fd, "f", "x", 0644), 0);
                int nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_true(nfd >= 0);
                close(fd);
                fd = nfd;
        }
        close(fd);
        path_at(p, sizeof(p), "deep");
        assert_int_equal(util_rm_rf(p), 0);
        assert_false(exists("deep"));
}

/* Entries on another mount are left alone and reported as -EBUSY (needs root for mount;
 * runs in a private mount namespace so nothing leaks to the host). */
static void test_rm_rf_mounts(void **state)
{
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                char p[4096], m[4200];

                if (unshare(CLONE_NEWNS) < 0 ||
                    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(77);
                path_at(p, sizeof(p), "t/sub/mnt");
                if (util_mkdir_p(p, 0755) < 0)
                        _exit(2);
                if (mount("tmpfs", p, "tmpfs", 0, "size=1m") < 0)
                        _exit(77);
                snprintf(m, sizeof(m), "%s/precious", p);
                if (util_write_file_at(AT_FDCWD, m, "x", 0644) < 0)
                        _exit(3);
                /* A bind mount of the same filesystem: same st_dev, other mount. */
                path_at(p, sizeof(p), "t/bind");
                path_at(m, sizeof(m), "src");
                if (util_mkdir_p(p, 0755) < 0 || util_mkdir_p(m, 0755) < 0 ||
                    mount(m, p, NULL, MS_BIND, NULL) < 0)
                        _exit(4);
                path_at(p, sizeof(p), "t/bind/inbind");
                if (util_write_file_at(AT_FDCWD, p, "x", 0644) < 0)
                        _exit(5);
                path_at(p, sizeof(p), "t/other");
                if (util_write_file_at(AT_FDCWD, p, "x", 0644) < 0)
                        _exit(6);

                path_at(p, sizeof(p), "t");
                if (util_rm_rf(p) != -EBUSY)
                        _exit(7);
                if (!exists("t/sub/mnt/precious") || !exists("t/bind/inbind") ||
                    exists("t/other"))
                        _exit(8);
                /* The mount point itself as the top directory is refused outright. */
                path_at(p, sizeof(p), "t/sub/mnt");
                if (util_rm_rf(p) != -EBUSY || !exists("t/sub/mnt/precious"))
                        _exit(9);
                path_at(p, sizeof(p), "t/sub/mnt");
                umount2(p, MNT_DETACH);
                path_at(p, sizeof(p), "t/bind");
                umount2(p, MNT_DETACH);
                path_at(p, sizeof(p), "t");
                if (util_rm_rf(p) != 0 || exists("t"))
                        _exit(10);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77)
                skip();
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* A process named ") R 1 2 3" must not shift the fields we read. */
static void test_proc_starttime(void **state)
{
        int p[2];
        char c;

        assert_true(util_proc_starttime(getpid()) > 0);
        assert_int_equal(util_proc_starttime(0), 0);
        assert_int_equal(util_proc_starttime(-1), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                prctl(PR_SET_NAME, ") R 1 2 3 4 5", 0, 0, 0);
                close(p[0]);
                write(p[1], "x", 1);
                pause();
                _exit(0);
        }
        close(p[1]);
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);

        /* Compare with the value of field 22 counted from the end of the line, which the
         * comm cannot shift: 52 fields in all on this kernel, so field 22 is 31 before the
         * last. Parse it independently here. */
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        assert_non_null(strstr(buf, "() R 1 2 3 4 5)"));
        char *last = strrchr(buf, ')');
        unsigned long long want = 0;
        int field = 2;
        for (char *tok = strtok(last + 1, " "); tok; tok = strtok(NULL, " "))
                if (++field == 22)
                        want = strtoull(tok, NULL, 10);
        assert_true(want > 0);
        assert_true(util_proc_starttime(pid) == want);

        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        assert_int_equal(util_proc_starttime(pid), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_time_hex_random),
                cmocka_unit_test(test_read_write_all),
                cmocka_unit_test_setup_teardown(test_files_and_mkdir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rm_rf_symlinks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rm_rf_deep, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rm_rf_mounts, setup, teardown),
                cmocka_unit_test(test_proc_starttime),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
