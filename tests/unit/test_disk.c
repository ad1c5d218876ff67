/* test_disk.c - disk_create() and the pool of ready images for real (root only): images are
 * mounted through a loop device inside a private mount namespace of a child process, so
 * nothing leaks to the host. (That warren-init gives the directories to the sandbox's uids
 * is checked by test_runtime.c, with real sandboxes.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <pthread.h>
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
/* Threads racing to take images in test_pool_concurrent_takes, and takes per thread. */
#define TAKERS 4
#define TAKES_EACH 3

static char tmpdir[64];

static int setup(void **state)
{
        char path[128];

        snprintf(tmpdir, sizeof(tmpdir), "/tmp/warren-test-disk-XXXXXX");
        if (geteuid() != 0 || !mkdtemp(tmpdir))
                return -1;
        snprintf(path, sizeof(path), "%s/sandboxes", tmpdir);
        return mkdir(path, 0700) == 0 ? 0 : -1;
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
        /* Every directory of the skeleton belongs to host root (the placeholder warren-init
         * replaces), with its final mode. */
        CHECK(has_owner_mode(mnt, ".", 0, 0755), 20);
        CHECK(has_owner_mode(mnt, "upper", 0, 0755), 21);
        CHECK(has_owner_mode(mnt, "work", 0, 0700), 22);
        CHECK(has_owner_mode(mnt, "upper/workspace", 0, 0755), 23);
        CHECK(has_owner_mode(mnt, "upper/home", 0, 0755), 24);
        CHECK(has_owner_mode(mnt, "upper/home/user", 0, 0755), 25);
        CHECK(has_owner_mode(mnt, "upper/tmp", 0, 01777), 26);
        CHECK(has_owner_mode(mnt, "upper/root", 0, 0700), 27);
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

/* Mount image in a child (private mount namespace) and check it with child_inspect(). */
static void inspect_image(const char *image, uint64_t size)
{
        int status;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0)
                child_inspect(image, size);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_small_image(void **state)
{
        char dir[512], image[PATH_MAX];
        uint64_t size = 64 * MiB;
        bool pooled = true;
        struct stat st;

        snprintf(dir, sizeof(dir), "%s/sandboxes/t1", tmpdir);
        snprintf(image, sizeof(image), "%s/disk.img", dir);
        assert_int_equal(disk_create(NULL, dir, size, &pooled), 0);
        assert_false(pooled);
        assert_int_equal(stat(image, &st), 0);
        assert_int_equal((uint64_t)st.st_size, size);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_true((uint64_t)st.st_blocks * 512 < 4 * MiB); /* sparse */
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        check_parent_clean(dir, "disk.img");
        check_superblock(image);

        /* Never overwritten: an existing directory is left as it is. */
        assert_int_equal(disk_create(NULL, dir, size, NULL), -EEXIST);
        check_parent_clean(dir, "disk.img");
        check_superblock(image);

        inspect_image(image, size);
}

static void test_bad_arguments(void **state)
{
        char dir[512], pool[512];

        snprintf(dir, sizeof(dir), "%s/sandboxes/t2", tmpdir);
        snprintf(pool, sizeof(pool), "%s/pool-bad", tmpdir);
        assert_int_equal(disk_create(NULL, "relative/dir", 64 * MiB, NULL), -EINVAL);
        assert_int_equal(disk_create(NULL, dir, 1 * MiB, NULL), -EINVAL);
        assert_int_equal(disk_create(NULL, dir, UINT64_MAX, NULL), -EINVAL);
        assert_int_equal(disk_create("relative/pool", dir, 64 * MiB, NULL), -EINVAL);
        assert_int_equal(access(dir, F_OK), -1);
        assert_int_equal(disk_pool_prepare("relative/pool"), -EINVAL);
        assert_int_equal(disk_pool_count(pool, 1 * MiB), -EINVAL);
        assert_int_equal(disk_pool_fill(pool, 1 * MiB, 1, 1, NULL), -EINVAL);
        /* A pool never prepared is an empty one. */
        assert_int_equal(disk_pool_count(pool, 64 * MiB), 0);

        /* The parent must exist. */
        snprintf(dir, sizeof(dir), "%s/no-such/t2", tmpdir);
        assert_int_equal(disk_create(NULL, dir, 64 * MiB, NULL), -ENOENT);
        /* A failure once the directory is made (a size no host filesystem takes) leaves
         * nothing behind. */
        snprintf(dir, sizeof(dir), "%s/sandboxes/t2", tmpdir);
        assert_true(disk_create(NULL, dir, (uint64_t)INT64_MAX, NULL) < 0);
        assert_int_equal(access(dir, F_OK), -1);
        snprintf(dir, sizeof(dir), "%s/sandboxes", tmpdir);
        check_parent_clean(dir, "t1");
}

/* Number of entries in dir (without "." and ".."); -1 if it cannot be read. */
static int count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

/* Check that the pool entry dir holds exactly one finished image of size bytes. */
static void check_entry(const char *dir, uint64_t size)
{
        char image[2 * PATH_MAX];
        struct stat st;

        assert_int_equal(stat(dir, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        check_parent_clean(dir, "disk.img");
        snprintf(image, sizeof(image), "%s/disk.img", dir);
        assert_int_equal(stat(image, &st), 0);
        assert_int_equal((uint64_t)st.st_size, size);
        assert_int_equal(st.st_mode & 07777, 0600);
        check_superblock(image);
}

/* fill makes ready entries of the size asked (finished ones only, nothing left in tmp/), up
 * to the target and at most max per call; a create takes one by rename; sizes do not mix;
 * junk in the pool is ignored; prepare empties tmp/. */
static void test_pool_fill_and_take(void **state)
{
        char pool[512], path[PATH_MAX], dir[PATH_MAX + 512], image[2 * PATH_MAX];
        uint64_t size = 32 * MiB, t0;
        unsigned made = 99;
        bool pooled = false;
        struct stat st;
        double ms;

        snprintf(pool, sizeof(pool), "%s/pool", tmpdir);
        /* An entry half made by a daemon that died is removed at the next start. */
        snprintf(path, sizeof(path), "%s/tmp/0123456789abcdef0123456789abcdef", pool);
        assert_int_equal(util_mkdir_p(path, 0700), 0);
        assert_int_equal(util_write_file_at(AT_FDCWD, strcat(path, "/disk.img"), "half", 0600),
                         0);
        assert_int_equal(disk_pool_prepare(pool), 0);
        snprintf(path, sizeof(path), "%s/tmp", pool);
        assert_int_equal(count_entries(path), 0);
        snprintf(path, sizeof(path), "%s/ready", pool);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(disk_pool_prepare(pool), 0); /* again: fine */
        assert_int_equal(disk_pool_count(pool, size), 0);

        assert_int_equal(disk_pool_fill(pool, size, 3, 4, &made), 0);
        assert_int_equal(made, 3);
        assert_int_equal(disk_pool_count(pool, size), 3);
        assert_int_equal(disk_pool_count(pool, 2 * size), 0);
        snprintf(path, sizeof(path), "%s/tmp", pool);
        assert_int_equal(count_entries(path), 0);
        /* The target counts what is there already. */
        assert_int_equal(disk_pool_fill(pool, size, 3, 4, &made), 0);
        assert_int_equal(made, 0);
        assert_int_equal(disk_pool_fill(pool, size, 2, 4, &made), 0);
        assert_int_equal(made, 0);
        /* At most max in one call. */
        assert_int_equal(disk_pool_fill(pool, size, 10, 2, &made), 0);
        assert_int_equal(made, 2);
        assert_int_equal(disk_pool_count(pool, size), 5);

        /* Each ready entry is a finished image of the size asked. */
        snprintf(path, sizeof(path), "%s/ready/%" PRIu64, pool, size);
        assert_int_equal(count_entries(path), 5);
        DIR *d = opendir(path);
        struct dirent *e;
        assert_non_null(d);
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(dir, sizeof(dir), "%s/%s", path, e->d_name);
                check_entry(dir, size);
        }
        closedir(d);

        /* Junk in the ready directory is neither counted nor taken. */
        snprintf(image, sizeof(image), "%s/not-an-entry", path);
        assert_int_equal(mkdir(image, 0700), 0);
        assert_int_equal(disk_pool_count(pool, size), 5);

        /* A create takes one: renamed away from the pool. */
        snprintf(dir, sizeof(dir), "%s/sandboxes/p1", tmpdir);
        t0 = util_now_ns();
        assert_int_equal(disk_create(pool, dir, size, &pooled), 0);
        ms = util_ms_since(t0);
        print_message("disk_create from the pool: %.3f ms\n", ms);
        assert_true(pooled);
        assert_int_equal(disk_pool_count(pool, size), 4);
        assert_int_equal(count_entries(path), 5); /* 4 entries and the junk */
        check_entry(dir, size);
        snprintf(image, sizeof(image), "%s/disk.img", dir);
        inspect_image(image, size);

        /* An existing directory is never replaced, and the pool keeps its entry. */
        assert_int_equal(disk_create(pool, dir, size, &pooled), -EEXIST);
        assert_int_equal(disk_pool_count(pool, size), 4);
        check_superblock(image);

        /* No ready entry of another size: made cold, the pool untouched. */
        snprintf(dir, sizeof(dir), "%s/sandboxes/p2", tmpdir);
        assert_int_equal(disk_create(pool, dir, 2 * size, &pooled), 0);
        assert_false(pooled);
        check_entry(dir, 2 * size);
        assert_int_equal(disk_pool_count(pool, size), 4);

        /* An entry that is not what the pool makes is dropped, not handed out. */
        snprintf(image, sizeof(image), "%s/ffffffffffffffffffffffffffffffff", path);
        assert_int_equal(mkdir(image, 0700), 0);
        assert_int_equal(disk_pool_count(pool, size), 5);

        /* Emptied by takes (the bad entry dropped on the way, whenever a taker meets it),
         * then a cold create again. */
        for (int i = 0; i < 4; i++) {
                snprintf(dir, sizeof(dir), "%s/sandboxes/q%d", tmpdir, i);
                assert_int_equal(disk_create(pool, dir, size, &pooled), 0);
                assert_true(pooled);
                check_entry(dir, size);
        }
        snprintf(dir, sizeof(dir), "%s/sandboxes/q4", tmpdir);
        assert_int_equal(disk_create(pool, dir, size, &pooled), 0);
        assert_false(pooled);
        check_entry(dir, size);
        assert_int_equal(disk_pool_count(pool, size), 0);
        assert_int_equal(count_entries(path), 1); /* the junk */
}

/* One taker of test_pool_concurrent_takes. */
struct taker {
        pthread_barrier_t *start;
        const char *pool;
        int index;
        int r[TAKES_EACH];
        bool pooled[TAKES_EACH];
        ino_t ino[TAKES_EACH];
};

/* Take TAKES_EACH disks, all threads starting together; results are checked by the main
 * thread (cmocka's assertions are not for other threads). */
static void *taker_main(void *arg)
{
        struct taker *t = arg;
        char image[PATH_MAX];
        struct stat st;

        pthread_barrier_wait(t->start);
        for (int i = 0; i < TAKES_EACH; i++) {
                snprintf(image, sizeof(image), "%s/sandboxes/c%d-%d", tmpdir, t->index, i);
                t->r[i] = disk_create(t->pool, image, 32 * MiB, &t->pooled[i]);
                strcat(image, "/disk.img");
                t->ino[i] = t->r[i] == 0 && stat(image, &st) == 0 ? st.st_ino : 0;
        }
        return NULL;
}

/* Four threads racing for fewer ready images than they ask for: each image goes to exactly
 * one of them (the image inodes taken are exactly those that were ready), the others get a disk
 * made cold, and nobody fails. */
static void test_pool_concurrent_takes(void **state)
{
        struct taker t[TAKERS] = { 0 };
        ino_t ready[2 * TAKERS];
        pthread_barrier_t start;
        pthread_t th[TAKERS];
        char pool[512], dir[PATH_MAX], image[PATH_MAX + 512];
        unsigned made = 0;
        int nready = 0, npooled = 0;
        struct stat st;

        snprintf(pool, sizeof(pool), "%s/pool-race", tmpdir);
        assert_int_equal(disk_pool_prepare(pool), 0);
        assert_int_equal(disk_pool_fill(pool, 32 * MiB, 2 * TAKERS, 2 * TAKERS, &made), 0);
        assert_int_equal(made, 2 * TAKERS);
        snprintf(dir, sizeof(dir), "%s/ready/%" PRIu64, pool, (uint64_t)(32 * MiB));
        DIR *d = opendir(dir);
        struct dirent *e;
        assert_non_null(d);
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(image, sizeof(image), "%s/%s/disk.img", dir, e->d_name);
                assert_int_equal(stat(image, &st), 0);
                assert_true(nready < 2 * TAKERS);
                ready[nready++] = st.st_ino;
        }
        closedir(d);
        assert_int_equal(nready, 2 * TAKERS);

        assert_int_equal(pthread_barrier_init(&start, NULL, TAKERS), 0);
        for (int i = 0; i < TAKERS; i++) {
                t[i].start = &start;
                t[i].pool = pool;
                t[i].index = i;
                assert_int_equal(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
        }
        for (int i = 0; i < TAKERS; i++)
                assert_int_equal(pthread_join(th[i], NULL), 0);
        pthread_barrier_destroy(&start);

        for (int i = 0; i < TAKERS; i++) {
                for (int j = 0; j < TAKES_EACH; j++) {
                        assert_int_equal(t[i].r[j], 0);
                        assert_true(t[i].ino[j] != 0);
                        if (!t[i].pooled[j])
                                continue;
                        npooled++;
                        /* A ready image, and taken by nobody else. */
                        int found = 0;
                        for (int k = 0; k < nready; k++)
                                if (ready[k] == t[i].ino[j]) {
                                        found++;
                                        ready[k] = 0;
                                }
                        assert_int_equal(found, 1);
                }
        }
        assert_int_equal(npooled, 2 * TAKERS);
        assert_int_equal(disk_pool_count(pool, 32 * MiB), 0);
}

static void test_ten_gib_timing(void **state)
{
        char image[PATH_MAX];
        uint64_t size = 10240 * MiB, t0;
        double ms, best = 1e9;
        struct stat st;

        for (int i = 0; i < 5; i++) {
                snprintf(image, sizeof(image), "%s/sandboxes/big%d", tmpdir, i);
                t0 = util_now_ns();
                assert_int_equal(disk_create(NULL, image, size, NULL), 0);
                ms = util_ms_since(t0);
                strcat(image, "/disk.img");
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
                cmocka_unit_test(test_pool_fill_and_take),
                cmocka_unit_test(test_pool_concurrent_takes),
                cmocka_unit_test(test_ten_gib_timing),
        };

        return cmocka_run_group_tests_name("disk", tests, setup, teardown);
}
