/* test_disk.c - disk_create() for real (root only): the image is mounted through a loop
 * device inside a private mount namespace of a child process, so nothing leaks to the host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "mechanisms.h"
#include "util.h"

#define MiB (1024ULL * 1024ULL)
#define UID_BASE 200000u

static char tmpdir[64];

static int setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/warren-test-disk-XXXXXX");
        return geteuid() == 0 && mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        return util_rm_rf(tmpdir) == 0 ? 0 : -1;
}

/* Attach image to a free loop device (autoclear: it goes away with its last user). Returns
 * the loop fd, to keep open until the mount holds the device. */
static int loop_attach(const char *image, bool ro, char *dev, size_t len)
{
        cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        cleanup_close int img = open(image, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);

        if (ctl < 0 || img < 0)
                return -1;
        for (int tries = 0; tries < 20; tries++) {
                struct loop_config cfg = { .fd = (uint32_t)img };
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                int lfd;

                if (n < 0)
                        return -1;
                snprintf(dev, len, "/dev/loop%d", n);
                lfd = open(dev, O_RDWR | O_CLOEXEC);
                if (lfd < 0)
                        return -1;
                cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (ro ? LO_FLAGS_READ_ONLY : 0);
                if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
                        return lfd;
                close(lfd);
                if (errno != EBUSY)
                        return -1;
        }
        return -1;
}

/* In the child: fail with a message and a distinct exit code. */
#define CHECK(cond, code)                                                                          \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "check failed: %s (errno %d)\n", #cond, errno);           \
                        _exit(code);                                                               \
                }                                                                                  \
        } while (0)

/* Check owner and mode of path below mnt. */
static bool has_owner_mode(const char *mnt, const char *path, uid_t uid, mode_t mode)
{
        char full[PATH_MAX];
        struct stat st;

        snprintf(full, sizeof(full), "%s/%s", mnt, path);
        if (lstat(full, &st) < 0 || !S_ISDIR(st.st_mode))
                return false;
        if (st.st_uid != uid || st.st_gid != uid || (st.st_mode & 07777) != mode) {
                fprintf(stderr, "%s: %u:%u %o\n", path, st.st_uid, st.st_gid,
                        st.st_mode & 07777);
                return false;
        }
        return true;
}

/* Child body: private mount namespace, mount the image read-only and check the skeleton,
 * then read-write and fill it until ENOSPC. Exit 0 if all holds. */
static void child_inspect(const char *image, uint64_t size)
{
        char mnt[512], dev[64], file[PATH_MAX];
        static char chunk[1 << 20];
        struct statvfs sv;
        uint64_t written = 0;
        int lfd, fd;
        ssize_t w;

        CHECK(unshare(CLONE_NEWNS) == 0, 10);
        CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, 11);
        snprintf(mnt, sizeof(mnt), "%s/mnt", tmpdir);
        CHECK(mkdir(mnt, 0700) == 0 || errno == EEXIST, 12);

        lfd = loop_attach(image, true, dev, sizeof(dev));
        CHECK(lfd >= 0, 13);
        CHECK(mount(dev, mnt, "ext4", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) == 0, 14);
        close(lfd);
        CHECK(has_owner_mode(mnt, ".", 0, 0755), 20);
        CHECK(has_owner_mode(mnt, "upper", UID_BASE, 0755), 21);
        CHECK(has_owner_mode(mnt, "work", UID_BASE, 0700), 22);
        CHECK(has_owner_mode(mnt, "upper/workspace", UID_BASE + 1001, 0755), 23);
        CHECK(has_owner_mode(mnt, "upper/home", UID_BASE, 0755), 24);
        CHECK(has_owner_mode(mnt, "upper/home/user", UID_BASE + 1001, 0755), 25);
        CHECK(has_owner_mode(mnt, "upper/tmp", UID_BASE, 01777), 26);
        CHECK(has_owner_mode(mnt, "upper/root", UID_BASE, 0700), 27);
        /* -m 0: all of it is usable; the size is what was asked (metadata aside). */
        CHECK(statvfs(mnt, &sv) == 0, 28);
        CHECK((uint64_t)sv.f_blocks * sv.f_frsize <= size, 29);
        CHECK((uint64_t)sv.f_blocks * sv.f_frsize > size * 9 / 10, 30);
        /* Only ext4's delalloc reserve (2% of all blocks, at most 4096) is held back. */
        CHECK(sv.f_bavail + sv.f_blocks / 40 >= sv.f_bfree, 31);
        CHECK(umount(mnt) == 0, 32);

        lfd = loop_attach(image, false, dev, sizeof(dev));
        CHECK(lfd >= 0, 40);
        CHECK(mount(dev, mnt, "ext4", MS_NOSUID | MS_NODEV, NULL) == 0, 41);
        close(lfd);
        snprintf(file, sizeof(file), "%s/upper/workspace/fill", mnt);
        fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        CHECK(fd >= 0, 42);
        memset(chunk, 'x', sizeof(chunk));
        for (;;) {
                w = write(fd, chunk, sizeof(chunk));
                if (w <= 0)
                        break;
                written += (uint64_t)w;
                CHECK(written <= 2 * size, 43);
        }
        CHECK(w < 0 && errno == ENOSPC, 44);
        CHECK(written < size && written > size / 2, 45);
        /* Durable ENOSPC too: fsync must not have anything left to fail on. */
        close(fd);
        CHECK(umount(mnt) == 0, 46);
        _exit(0);
}

/* ext4 superblock: at byte 1024; magic at 0x38, s_feature_compat at 0x5c. */
static void check_superblock(const char *image)
{
        unsigned char sb[1024];
        cleanup_close int fd = open(image, O_RDONLY | O_CLOEXEC);
        uint32_t compat;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, sb, sizeof(sb), 1024), (ssize_t)sizeof(sb));
        assert_int_equal(sb[0x38] | sb[0x39] << 8, 0xEF53);
        compat = (uint32_t)sb[0x5c] | (uint32_t)sb[0x5d] << 8 | (uint32_t)sb[0x5e] << 16 |
                 (uint32_t)sb[0x5f] << 24;
        assert_int_equal(compat & 0x4, 0);  /* no has_journal */
        assert_int_equal(compat & 0x10, 0); /* no resize_inode */
}

/* Only the image is left in the parent: no staging directory. */
static void check_parent_clean(const char *parent, const char *only)
{
        DIR *d = opendir(parent);
        struct dirent *e;
        int n = 0;

        assert_non_null(d);
        while ((e = readdir(d))) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                n++;
                if (only)
                        assert_string_equal(e->d_name, only);
        }
        closedir(d);
        assert_int_equal(n, only ? 1 : 0);
}

static void test_small_image(void **state)
{
        char parent[512], image[PATH_MAX];
        uint64_t size = 64 * MiB;
        struct stat st;
        int status;
        pid_t pid;

        snprintf(parent, sizeof(parent), "%s/sandboxes/t1", tmpdir);
        snprintf(image, sizeof(image), "%s/disk.img", parent);
        assert_int_equal(disk_create(image, size, UID_BASE), 0);
        assert_int_equal(stat(image, &st), 0);
        assert_int_equal((uint64_t)st.st_size, size);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_true((uint64_t)st.st_blocks * 512 < 4 * MiB); /* sparse */
        assert_int_equal(stat(parent, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0711);
        check_parent_clean(parent, "disk.img");
        check_superblock(image);

        /* Never overwritten. */
        assert_int_equal(disk_create(image, size, UID_BASE), -EEXIST);
        check_superblock(image);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                child_inspect(image, size);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_bad_arguments(void **state)
{
        char parent[512], image[PATH_MAX];

        snprintf(parent, sizeof(parent), "%s/sandboxes/t2", tmpdir);
        snprintf(image, sizeof(image), "%s/disk.img", parent);
        assert_int_equal(disk_create("relative/disk.img", 64 * MiB, UID_BASE), -EINVAL);
        assert_int_equal(disk_create(image, 1 * MiB, UID_BASE), -EINVAL);
        assert_int_equal(disk_create(image, 64 * MiB, 0), -EINVAL);
        assert_int_equal(disk_create(image, 64 * MiB, UINT32_MAX - 10), -EINVAL);
        assert_int_equal(access(image, F_OK), -1);

        /* A failing mke2fs (the path is a directory's child that is itself a dir) leaves
         * nothing behind. */
        assert_int_equal(util_mkdir_p(parent, 0711), 0);
        snprintf(image, sizeof(image), "%s/dir.img", parent);
        assert_int_equal(mkdir(image, 0700), 0);
        assert_int_equal(disk_create(image, 64 * MiB, UID_BASE), -EEXIST);
        assert_int_equal(rmdir(image), 0);
        check_parent_clean(parent, NULL);
}

static void test_ten_gib_timing(void **state)
{
        char image[PATH_MAX];
        uint64_t size = 10240 * MiB, t0;
        double ms, best = 1e9;
        struct stat st;

        for (int i = 0; i < 5; i++) {
                snprintf(image, sizeof(image), "%s/sandboxes/big%d/disk.img", tmpdir, i);
                t0 = util_now_ns();
                assert_int_equal(disk_create(image, size, UID_BASE + 65536u * (unsigned)i), 0);
                ms = util_ms_since(t0);
                if (ms < best)
                        best = ms;
                print_message("disk_create 10 GiB: %.1f ms\n", ms);
                assert_int_equal(stat(image, &st), 0);
                assert_int_equal((uint64_t)st.st_size, size);
                assert_true((uint64_t)st.st_blocks * 512 < 8 * MiB);
                check_superblock(image);
                assert_int_equal(unlink(image), 0);
        }
        print_message("disk_create 10 GiB: best %.1f ms of 5\n", best);
        assert_true(best < 2000.0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_small_image),
                cmocka_unit_test(test_bad_arguments),
                cmocka_unit_test(test_ten_gib_timing),
        };

        return cmocka_run_group_tests_name("disk", tests, setup, teardown);
}
