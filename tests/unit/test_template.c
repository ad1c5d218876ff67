/* test_template.c - tpl_ensure_base() into a temporary data_dir (root only): the skeleton,
 * the generated /etc, the allow-listed copies, no host secrets, idempotence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "mechanisms.h"
#include "util.h"

static char data_dir[64];

static int setup(void **state)
{
        snprintf(data_dir, sizeof(data_dir), "/tmp/warren-test-tpl-XXXXXX");
        return geteuid() == 0 && mkdtemp(data_dir) ? 0 : -1;
}

static int teardown(void **state)
{
        return util_rm_rf(data_dir) == 0 ? 0 : -1;
}

/* Path below the base rootfs. */
static const char *rootfs_path(const char *rel)
{
        static char buf[PATH_MAX];

        snprintf(buf, sizeof(buf), "%s/templates/base/rootfs/%s", data_dir, rel);
        return buf;
}

static void read_file(const char *path, char *buf, size_t len)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        assert_true(fd >= 0);
        n = read(fd, buf, len - 1);
        assert_true(n >= 0);
        buf[n] = '\0';
}

static void assert_link(const char *rel, const char *target)
{
        char buf[PATH_MAX];
        ssize_t n = readlink(rootfs_path(rel), buf, sizeof(buf) - 1);

        assert_true(n > 0);
        buf[n] = '\0';
        assert_string_equal(buf, target);
}

static void assert_dir(const char *rel, mode_t mode)
{
        struct stat st;

        assert_int_equal(lstat(rootfs_path(rel), &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, mode);
        assert_int_equal(st.st_uid, 0);
        assert_int_equal(st.st_gid, 0);
}

static void assert_absent(const char *rel)
{
        struct stat st;

        assert_int_equal(lstat(rootfs_path(rel), &st), -1);
        assert_int_equal(errno, ENOENT);
}

/* Every entry below dir is owned by root (walks the whole tree). */
static void assert_all_root_owned(int fd, unsigned *count)
{
        DIR *d = fdopendir(fd);
        struct dirent *e;

        assert_non_null(d);
        while ((e = readdir(d))) {
                struct stat st;

                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                assert_int_equal(fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
                assert_int_equal(st.st_uid, 0);
                assert_int_equal(st.st_gid, 0);
                if (!S_ISDIR(st.st_mode))
                        assert_int_equal(st.st_mode & (S_ISUID | S_ISGID), 0);
                (*count)++;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), e->d_name,
                                         O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

                        assert_true(sub >= 0);
                        assert_all_root_owned(sub, count);
                }
        }
        closedir(d);
}

static void test_build_base(void **state)
{
        char buf[8192], path[PATH_MAX];
        struct stat st, host;
        uint64_t t0 = util_now_ns();
        unsigned count = 0;
        int fd;

        assert_int_equal(tpl_ensure_base(data_dir), 0);
        print_message("tpl_ensure_base (first build): %.1f ms\n", util_ms_since(t0));

        /* Skeleton. */
        assert_link("bin", "usr/bin");
        assert_link("sbin", "usr/sbin");
        assert_link("lib", "usr/lib");
        assert_link("lib64", "usr/lib64");
        assert_link("var/run", "/run");
        if (lstat("/lib32", &st) == 0)
                assert_link("lib32", "usr/lib32");
        else
                assert_absent("lib32");
        if (lstat("/libx32", &st) == 0)
                assert_link("libx32", "usr/libx32");
        else
                assert_absent("libx32");
        assert_dir("usr", 0755);
        assert_dir("tmp", 01777);
        assert_dir("var/tmp", 01777);
        assert_dir("root", 0700);
        assert_dir("proc", 0555);
        assert_dir("workspace", 0755);
        assert_dir("var/backups", 0755);
        assert_dir("etc", 0755);
        /* usr is an empty mount point. */
        snprintf(path, sizeof(path), "%s", rootfs_path("usr"));
        assert_int_equal(rmdir(path), 0);
        assert_int_equal(mkdir(path, 0755), 0);

        /* Generated /etc. */
        read_file(rootfs_path("etc/passwd"), buf, sizeof(buf));
        assert_non_null(strstr(buf, "root:x:0:0:root:/root:/bin/bash\n"));
        assert_non_null(strstr(buf, "user:x:1001:1001:user:/home/user:/bin/bash\n"));
        assert_non_null(strstr(buf, "nobody:x:65534:65534:"));
        read_file(rootfs_path("etc/group"), buf, sizeof(buf));
        assert_non_null(strstr(buf, "tty:x:5:\n"));
        assert_non_null(strstr(buf, "user:x:1001:\n"));
        read_file(rootfs_path("etc/hosts"), buf, sizeof(buf));
        assert_non_null(strstr(buf, "127.0.0.1\tlocalhost\n"));
        read_file(rootfs_path("etc/nsswitch.conf"), buf, sizeof(buf));
        assert_non_null(strstr(buf, "hosts:      files dns\n"));
        assert_int_equal(stat(rootfs_path("etc/passwd"), &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);

        /* No host secrets, nothing outside the allow-list. */
        assert_absent("etc/shadow");
        assert_absent("etc/gshadow");
        assert_absent("etc/ssh");
        assert_absent("etc/machine-id");
        assert_absent("etc/environment");
        assert_absent("etc/apt");
        assert_absent("etc/sudoers");
        assert_absent("etc/ssl/private");

        /* Allow-listed copies, with the host's modes; symlinks stay symlinks. */
        assert_int_equal(stat("/etc/ld.so.cache", &host), 0);
        assert_int_equal(stat(rootfs_path("etc/ld.so.cache"), &st), 0);
        assert_int_equal(st.st_size, host.st_size);
        assert_int_equal(st.st_mode & 07777, host.st_mode & 07777);
        if (lstat("/etc/os-release", &host) == 0 && S_ISLNK(host.st_mode)) {
                ssize_t n = readlink("/etc/os-release", buf, sizeof(buf) - 1);

                assert_true(n > 0);
                buf[n] = '\0';
                assert_link("etc/os-release", buf);
        }
        if (stat("/etc/ssl/certs/ca-certificates.crt", &host) == 0) {
                assert_int_equal(stat(rootfs_path("etc/ssl/certs/ca-certificates.crt"), &st), 0);
                assert_int_equal(st.st_size, host.st_size);
                /* Only that file of the certs directory. */
                snprintf(path, sizeof(path), "%s", rootfs_path("etc/ssl/certs"));
                fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_true(fd >= 0);
                {
                        DIR *d = fdopendir(fd);
                        struct dirent *e;
                        int n = 0;

                        while ((e = readdir(d)))
                                n += e->d_name[0] != '.';
                        closedir(d);
                        assert_int_equal(n, 1);
                }
        }
        if (lstat("/etc/alternatives", &host) == 0) {
                DIR *d = opendir("/etc/alternatives");
                struct dirent *e;
                bool checked = false;

                assert_non_null(d);
                while ((e = readdir(d)) && !checked) {
                        char rel[PATH_MAX], target[PATH_MAX];
                        ssize_t n;

                        snprintf(rel, sizeof(rel), "/etc/alternatives/%s", e->d_name);
                        n = readlink(rel, target, sizeof(target) - 1);
                        if (n <= 0)
                                continue;
                        target[n] = '\0';
                        snprintf(rel, sizeof(rel), "etc/alternatives/%s", e->d_name);
                        assert_link(rel, target);
                        checked = true;
                }
                closedir(d);
        }
        if (lstat("/etc/skel/.bashrc", &host) == 0)
                assert_int_equal(lstat(rootfs_path("etc/skel/.bashrc"), &st), 0);
        if (lstat("/etc/python3", &host) == 0 && S_ISDIR(host.st_mode))
                assert_dir("etc/python3", host.st_mode & 07777);

        fd = open(rootfs_path(""), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_all_root_owned(fd, &count);
        assert_true(count > 30);

        /* Marker, metadata, and the lookup functions. */
        assert_true(tpl_binds_host_usr(data_dir, "base"));
        assert_false(tpl_binds_host_usr(data_dir, "nope"));
        assert_false(tpl_binds_host_usr(data_dir, "../templates/base"));
        snprintf(path, sizeof(path), "%s/templates/base/template.json", data_dir);
        read_file(path, buf, sizeof(buf));
        assert_non_null(strstr(buf, "{\"name\":\"base\",\"description\":\"host /usr (read-only) "
                                    "with a generated /etc\",\"created_at\":"));
        assert_int_equal(tpl_rootfs_path(data_dir, "base", path, sizeof(path)), 0);
        snprintf(buf, sizeof(buf), "%s/templates/base/rootfs", data_dir);
        assert_string_equal(path, buf);
        strcpy(buf, "untouched");
        assert_int_equal(tpl_rootfs_path(data_dir, "nope", buf, sizeof(buf)), -ENOENT);
        assert_string_equal(buf, "untouched");
        assert_int_equal(tpl_rootfs_path(data_dir, "..", buf, sizeof(buf)), -EINVAL);
        assert_int_equal(tpl_rootfs_path(data_dir, ".base-build-x", buf, sizeof(buf)), -EINVAL);
        assert_int_equal(tpl_rootfs_path(data_dir, "a/b", buf, sizeof(buf)), -EINVAL);
        assert_int_equal(tpl_rootfs_path(data_dir, "base", buf, 8), -ENAMETOOLONG);
}

/* A second call changes nothing (the marker file and template.json keep their inodes) and
 * leaves no build directory behind. */
static void test_second_call_noop(void **state)
{
        char path[PATH_MAX];
        struct stat before, after;
        struct dirent *e;
        uint64_t t0;
        DIR *d;

        snprintf(path, sizeof(path), "%s/templates/base/template.json", data_dir);
        assert_int_equal(stat(path, &before), 0);
        t0 = util_now_ns();
        assert_int_equal(tpl_ensure_base(data_dir), 0);
        print_message("tpl_ensure_base (exists): %.3f ms\n", util_ms_since(t0));
        assert_int_equal(stat(path, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        assert_int_equal(before.st_mtime, after.st_mtime);

        snprintf(path, sizeof(path), "%s/templates", data_dir);
        d = opendir(path);
        assert_non_null(d);
        while ((e = readdir(d)))
                assert_true(e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 ||
                            strcmp(e->d_name, "..") == 0);
        closedir(d);
}

/* base/ made by hand without rootfs/: the build fills it in. */
static void test_existing_empty_base(void **state)
{
        char dir[512], path[PATH_MAX];

        snprintf(dir, sizeof(dir), "%s/other", data_dir);
        snprintf(path, sizeof(path), "%s/templates/base", dir);
        assert_int_equal(util_mkdir_p(path, 0755), 0);
        assert_false(tpl_binds_host_usr(dir, "base"));
        assert_int_equal(tpl_ensure_base(dir), 0);
        assert_true(tpl_binds_host_usr(dir, "base"));
        assert_int_equal(tpl_rootfs_path(dir, "base", path, sizeof(path)), 0);
        assert_int_equal(tpl_ensure_base("relative"), -EINVAL);
}

struct race {
        const char *dir;
        int r;
};

static void *race_main(void *arg)
{
        struct race *rc = arg;

        rc->r = tpl_ensure_base(rc->dir);
        return NULL;
}

/* Four threads build the same fresh base at once: all succeed, one copy wins, no build
 * directory is left behind. */
static void test_concurrent(void **state)
{
        char dir[512], path[PATH_MAX];
        struct race rc[4];
        pthread_t t[4];
        struct dirent *e;
        DIR *d;
        int n = 0;

        snprintf(dir, sizeof(dir), "%s/race", data_dir);
        for (int i = 0; i < 4; i++) {
                rc[i] = (struct race){ dir, -1 };
                assert_int_equal(pthread_create(&t[i], NULL, race_main, &rc[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(rc[i].r, 0);
        }
        assert_true(tpl_binds_host_usr(dir, "base"));
        assert_int_equal(tpl_rootfs_path(dir, "base", path, sizeof(path)), 0);
        snprintf(path, sizeof(path), "%s/templates", dir);
        d = opendir(path);
        assert_non_null(d);
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n, 1);
        snprintf(path, sizeof(path), "%s/templates/base", dir);
        d = opendir(path);
        assert_non_null(d);
        n = 0;
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n, 3); /* rootfs, bind-host-usr, template.json */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build_base),
                cmocka_unit_test(test_second_call_noop),
                cmocka_unit_test(test_existing_empty_base),
                cmocka_unit_test(test_concurrent),
        };

        return cmocka_run_group_tests_name("template", tests, setup, teardown);
}
