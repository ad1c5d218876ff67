/* disk.c - the per-sandbox size-limited disk: a sparse file holding an ext4 filesystem, and
 * the pool of blank ones made ahead of time.
 *
 * Why a filesystem image: this kernel has no quota support at all (CONFIG_QUOTA off: ext4
 * prjquota and XFS pquota both fail), so the only hard limit on what a sandbox writes is the
 * size of a filesystem of its own. The image holds the overlay upper and work directories
 * (and so /workspace and everything else the sandbox writes).
 *
 * Making one: nothing is mounted. mke2fs -d copies a small staging directory (the skeleton
 * of launch_disk_dirs, with its final modes) into the new filesystem. The options keep
 * mke2fs from writing more than ~300 KB, whatever the size:
 *   -O ^has_journal     no journal (nothing to write; a crash loses at most the sandbox)
 *   -O ^resize_inode    no reserved GDT blocks (resize2fs can still grow it offline)
 *   lazy_itable_init=1  inode tables are not written; because the default discard punches
 *                       holes in the file first, mke2fs knows they read as zeroes and marks
 *                       them zeroed, so the kernel's lazyinit thread never fills them in later
 *   -m 0                no blocks reserved for root: the size given is the size usable
 * mke2fs fsyncs the image before it exits, so a finished image is on disk.
 *
 * Images fit any sandbox: the skeleton's directories belong to host root, as placeholders,
 * and warren-init gives them to the sandbox's uid range when it mounts the disk (see
 * launch_disk_dirs in src/init/launch_msg.h). That is what makes a pool possible: mke2fs
 * costs 3-12 ms of a create here, taking a ready image 0.04 ms.
 *
 * The pool (POOL is DATA_DIR/disks):
 *   POOL/ready/SIZE/HEX/disk.img   finished images of SIZE bytes, each in a directory that
 *                                  is renamed whole to be a sandbox's data directory: one
 *                                  rename(2) (~15 us here), which only one taker can win,
 *                                  where a mkdir of the data directory would cost 0.1-0.9 ms
 *   POOL/tmp/HEX/                  entries being made (renamed into ready/ once finished),
 *                                  so a crash never leaves a half-made image among the
 *                                  ready ones; emptied by disk_pool_prepare() at start
 */
#include "mechanisms.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../init/launch_msg.h"
#include "util.h"

/* Smallest image accepted: below this mke2fs has no room for its metadata. */
#define DISK_MIN_SIZE (16ULL << 20)
/* Below this much free space on the host filesystem a failed mke2fs is reported as
 * -ENOSPC rather than -EIO (mke2fs only says "exit status 1"). */
#define DISK_HOST_LOW_SPACE (4ULL << 20)
/* Random bytes in the name of a pool entry (hex in the name). */
#define DISK_POOL_NAME_BYTES 16
/* Length of a pool entry's name. */
#define DISK_POOL_NAME_LEN (2 * DISK_POOL_NAME_BYTES)

/* warren-init gives /workspace and /home/user to the user the runtime runs commands as. */
_Static_assert(LAUNCH_SANDBOX_UID == RT_SANDBOX_UID, "one sandbox user on both sides");

/* Where mke2fs may live; absolute so that PATH plays no part. */
static const char *const disk_mke2fs_paths[] = { "/usr/sbin/mke2fs", "/sbin/mke2fs" };

/* Make the skeleton of launch_disk_dirs below dirfd, every directory owned by host root
 * (the placeholder warren-init replaces) with its final mode (mkdirat is subject to the
 * umask, which we must not change in a threaded daemon, so fchmodat after). */
static int disk_make_skeleton(int dirfd)
{
        for (size_t i = 0; i < ARRAY_SIZE(launch_disk_dirs); i++) {
                const struct launch_disk_dir *d = &launch_disk_dirs[i];

                if (mkdirat(dirfd, d->path, 0700) < 0)
                        return neg_errno();
                if (fchownat(dirfd, d->path, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
                        return neg_errno();
                if (fchmodat(dirfd, d->path, (mode_t)d->mode, 0) < 0)
                        return neg_errno();
        }
        return 0;
}

/* Run mke2fs on image, copying staging in (-d). The child gets an explicit argv, a fixed
 * environment, /dev/null as stdin/stdout/stderr (its messages must not reach the daemon's
 * output), default signal dispositions and an empty signal mask, and no fd above 2.
 * Assumes the caller does not ignore SIGCHLD (the child must stay waitable). */
static int disk_run_mke2fs(const char *image, const char *staging)
{
        char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
        const char *argv[] = {
                "mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal,^resize_inode",
                "-E", "lazy_itable_init=1,lazy_journal_init=1", "-m", "0", "-b", "4096",
                "-d", staging, image, NULL,
        };
        const char *prog = NULL;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        pid_t pid;
        int r, status;

        for (size_t i = 0; i < ARRAY_SIZE(disk_mke2fs_paths) && !prog; i++)
                if (access(disk_mke2fs_paths[i], X_OK) == 0)
                        prog = disk_mke2fs_paths[i];
        if (!prog)
                return -ENOENT;

        r = posix_spawn_file_actions_init(&fa);
        if (r)
                return -r;
        r = posix_spawnattr_init(&attr);
        if (r) {
                posix_spawn_file_actions_destroy(&fa);
                return -r;
        }
        sigemptyset(&none);
        sigfillset(&all);
        r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (!r)
                r = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (!r)
                r = posix_spawn_file_actions_adddup2(&fa, 1, 2);
        if (!r)
                r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        if (!r)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (!r)
                r = posix_spawnattr_setsigdefault(&attr, &all);
        if (!r)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                                            POSIX_SPAWN_SETSIGDEF |
                                                            POSIX_SPAWN_SETSID);
        if (!r)
                r = posix_spawn(&pid, prog, &fa, &attr, (char *const *)argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r)
                return -r;

        while (waitpid(pid, &status, 0) < 0) {
                if (errno != EINTR)
                        return neg_errno();
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        return -EIO;
}

/* Map a failed mke2fs (-EIO) to -ENOSPC when the host filesystem is (nearly) full. */
static int disk_refine_error(const char *dir, int r)
{
        struct statvfs sv;

        if (r == -EIO && statvfs(dir, &sv) == 0 &&
            (uint64_t)sv.f_bavail * sv.f_frsize < DISK_HOST_LOW_SPACE)
                return -ENOSPC;
        return r;
}

/* Whether size is one disk_create() accepts. */
static bool disk_size_ok(uint64_t size)
{
        return size >= DISK_MIN_SIZE && size <= (uint64_t)INT64_MAX;
}

/* Make dir/disk.img with mke2fs. dir is a fresh directory of the caller's; the staging
 * directory lives in it too, so concurrent calls for different dirs do not interfere. On
 * failure dir is left as it was. */
static int disk_make(const char *dir, uint64_t size)
{
        char staging[PATH_MAX], image[PATH_MAX];
        cleanup_close int fd = -1;
        cleanup_close int sfd = -1;
        bool made_staging = false;
        int r, n;

        n = snprintf(staging, sizeof(staging), "%s/.disk-staging-XXXXXX", dir);
        if (n < 0 || (size_t)n >= sizeof(staging))
                return -ENAMETOOLONG;
        n = snprintf(image, sizeof(image), "%s/" DISK_IMAGE_NAME, dir);
        if (n < 0 || (size_t)n >= sizeof(image))
                return -ENAMETOOLONG;

        fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return neg_errno();
        if (ftruncate(fd, (off_t)size) < 0) {
                r = neg_errno();
                goto fail;
        }
        /* Closed before mke2fs opens it by path: no second writer. */
        close(TAKE_FD(fd));

        if (!mkdtemp(staging)) {
                r = neg_errno();
                goto fail;
        }
        made_staging = true;
        sfd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (sfd < 0) {
                r = neg_errno();
                goto fail;
        }
        r = disk_make_skeleton(sfd);
        if (r < 0)
                goto fail;
        r = disk_run_mke2fs(image, staging);
        if (r < 0) {
                r = disk_refine_error(dir, r);
                goto fail;
        }
        r = util_rm_rf(staging);
        if (r < 0)
                goto fail;
        return 0;
fail:
        if (made_staging)
                util_rm_rf(staging);
        unlink(image);
        return r;
}

/* mkdir dir (0700; -EEXIST if it exists) and make the image in it; on failure nothing is
 * left behind. */
static int disk_make_dir(const char *dir, uint64_t size)
{
        int r;

        if (mkdir(dir, 0700) < 0)
                return neg_errno();
        r = disk_make(dir, size);
        if (r < 0)
                (void)util_rm_rf(dir);
        return r;
}

/* POOL/ready/SIZE into buf (PATH_MAX bytes). */
static int disk_pool_dir(const char *pool, uint64_t size, char *buf)
{
        int n = snprintf(buf, PATH_MAX, "%s/ready/%" PRIu64, pool, size);

        return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Whether name is one a pool entry gets: DISK_POOL_NAME_BYTES in lowercase hex. */
static bool disk_pool_name_ok(const char *name)
{
        if (strlen(name) != DISK_POOL_NAME_LEN)
                return false;
        for (size_t i = 0; i < DISK_POOL_NAME_LEN; i++)
                if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
                        return false;
        return true;
}

static void disk_closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}
#define cleanup_closedir __attribute__((cleanup(disk_closedirp)))

/* Whether dir, just taken from the pool, is what the pool holds: a directory of host root's
 * with a regular disk.img of size bytes, linked once. Only this file puts entries there, but
 * an entry becomes a sandbox's disk: it is checked like one of unknown origin. */
static bool disk_taken_ok(const char *dir, uint64_t size)
{
        cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;

        if (dfd < 0 || fstat(dfd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 07777) != 0700)
                return false;
        return fstatat(dfd, DISK_IMAGE_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == 0 &&
               (uint64_t)st.st_size == size;
}

/* Move a ready entry of exactly size bytes to dir (which must not exist). rename(2) is
 * atomic: of several takers racing for one entry exactly one wins, the others get ENOENT
 * and try the next. 0: taken; -ENOENT: none ready; -EEXIST: dir exists; other negative
 * errno: the pool cannot be used (e.g. -EXDEV: another filesystem). */
static int disk_pool_take(const char *pool, uint64_t size, const char *dir)
{
        cleanup_closedir DIR *d = NULL;
        char ready[PATH_MAX];
        struct dirent *e;
        int r;

        r = disk_pool_dir(pool, size, ready);
        if (r < 0)
                return r;
        d = opendir(ready);
        if (!d)
                return neg_errno();
        while ((errno = 0, e = readdir(d))) {
                if (!disk_pool_name_ok(e->d_name))
                        continue;
                if (renameat2(dirfd(d), e->d_name, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
                        if (errno == ENOENT)
                                continue; /* another taker won this one */
                        return neg_errno();
                }
                if (disk_taken_ok(dir, size))
                        return 0;
                r = util_rm_rf(dir);
                if (r < 0)
                        return r;
        }
        return errno ? neg_errno() : -ENOENT;
}

int disk_create(const char *pool, const char *dir, uint64_t size, bool *ret_pooled)
{
        int r;

        if (!dir || dir[0] != '/' || !disk_size_ok(size) || (pool && pool[0] != '/'))
                return -EINVAL;
        if (pool) {
                r = disk_pool_take(pool, size, dir);
                if (r == 0 || r == -EEXIST) {
                        if (r == 0 && ret_pooled)
                                *ret_pooled = true;
                        return r;
                }
                /* None ready, or no pool usable: make one. The pool only ever saves time. */
        }
        r = disk_make_dir(dir, size);
        if (r == 0 && ret_pooled)
                *ret_pooled = false;
        return r;
}

int disk_pool_prepare(const char *pool)
{
        char path[PATH_MAX];
        int r, n;

        if (!pool || pool[0] != '/')
                return -EINVAL;
        n = snprintf(path, sizeof(path), "%s/ready", pool);
        if (n < 0 || (size_t)n >= sizeof(path))
                return -ENAMETOOLONG;
        r = util_mkdir_p(path, 0700);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "%s/tmp", pool);
        r = util_rm_rf(path);
        if (r < 0)
                return r;
        if (mkdir(path, 0700) < 0)
                return neg_errno();
        return 0;
}

int disk_pool_count(const char *pool, uint64_t size)
{
        cleanup_closedir DIR *d = NULL;
        char dir[PATH_MAX];
        struct dirent *e;
        int r, n = 0;

        if (!pool || pool[0] != '/' || !disk_size_ok(size))
                return -EINVAL;
        r = disk_pool_dir(pool, size, dir);
        if (r < 0)
                return r;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : neg_errno();
        while ((errno = 0, e = readdir(d)))
                if (disk_pool_name_ok(e->d_name) && n < INT_MAX)
                        n++;
        return errno ? neg_errno() : n;
}

int disk_pool_fill(const char *pool, uint64_t size, unsigned target, unsigned max,
                   unsigned *ret_made)
{
        char ready[PATH_MAX], tmp[PATH_MAX], name[DISK_POOL_NAME_LEN + 1];
        uint8_t rnd[DISK_POOL_NAME_BYTES];
        cleanup_close int dfd = -1;
        unsigned made = 0, need;
        int r, have;

        have = disk_pool_count(pool, size);
        if (have < 0)
                return have;
        need = target > (unsigned)have ? target - (unsigned)have : 0;
        if (need > max)
                need = max;
        if (need > 0) {
                r = disk_pool_dir(pool, size, ready);
                if (r >= 0)
                        r = util_mkdir_p(ready, 0700);
                if (r < 0)
                        return r;
                dfd = open(ready, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (dfd < 0)
                        return neg_errno();
        }
        for (; made < need; made++) {
                r = util_random(rnd, sizeof(rnd));
                if (r < 0)
                        return r;
                util_hex(rnd, sizeof(rnd), name);
                int n = snprintf(tmp, sizeof(tmp), "%s/tmp/%s", pool, name);
                if (n < 0 || (size_t)n >= sizeof(tmp))
                        return -ENAMETOOLONG;
                r = disk_make_dir(tmp, size);
                if (r < 0)
                        return r;
                /* Finished: only now does it appear among the ready ones. */
                if (renameat2(AT_FDCWD, tmp, dfd, name, RENAME_NOREPLACE) < 0) {
                        r = neg_errno();
                        (void)util_rm_rf(tmp);
                        return r;
                }
        }
        if (ret_made)
                *ret_made = made;
        return 0;
}
