/* disk.c - the per-sandbox size-limited disk: a sparse file holding an ext4 filesystem.
 *
 * Why a filesystem image: this kernel has no quota support at all (CONFIG_QUOTA off: ext4
 * prjquota and XFS pquota both fail), so the only hard limit on what a sandbox writes is the
 * size of a filesystem of its own. The image holds the overlay upper and work directories
 * (and so /workspace and everything else the sandbox writes).
 *
 * Speed: the image is made and populated without mounting anything. mke2fs -d copies a
 * small staging directory (the directory skeleton with its final owners and modes) into the
 * new filesystem. The options keep mke2fs from writing more than ~300 KB, whatever the size:
 *   -O ^has_journal     no journal (nothing to write; a crash loses at most the sandbox)
 *   -O ^resize_inode    no reserved GDT blocks (resize2fs can still grow it offline)
 *   lazy_itable_init=1  inode tables are not written; because the default discard punches
 *                       holes in the file first, mke2fs knows they read as zeroes and marks
 *                       them zeroed, so the kernel's lazyinit thread never fills them in later
 *   -m 0                no blocks reserved for root: the size given is the size usable
 */
#include "mechanisms.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* Smallest image accepted: below this mke2fs has no room for its metadata. */
#define DISK_MIN_SIZE (16ULL << 20)
/* Below this much free space on the host filesystem a failed mke2fs is reported as
 * -ENOSPC rather than -EIO (mke2fs only says "exit status 1"). */
#define DISK_HOST_LOW_SPACE (4ULL << 20)

/* One directory of the skeleton: path inside the image, mode, owner relative to uid_base. */
struct disk_dir {
        const char *path;
        mode_t mode;
        uint32_t uid; /* inside the sandbox: host uid is uid_base + uid */
};

/* In creation order (parents first). upper/ becomes the sandbox's "/" in the overlay and
 * work/ is overlayfs' work directory: both belong to the sandbox's root (uid_base), so that
 * "/" is root's inside and the overlay can also be mounted from within the user namespace. */
static const struct disk_dir disk_skeleton[] = {
        { "upper", 0755, 0 },
        { "work", 0700, 0 },
        { "upper/workspace", 0755, RT_SANDBOX_UID },
        { "upper/home", 0755, 0 },
        { "upper/home/user", 0755, RT_SANDBOX_UID },
        { "upper/tmp", 01777, 0 },
        { "upper/root", 0700, 0 },
};

/* Where mke2fs may live; absolute so that PATH plays no part. */
static const char *const disk_mke2fs_paths[] = { "/usr/sbin/mke2fs", "/sbin/mke2fs" };

/* Make the skeleton below dirfd with owners uid_base + uid and the exact modes (mkdirat is
 * subject to the umask, which we must not change in a threaded daemon, so fchmodat after). */
static int disk_make_skeleton(int dirfd, uint32_t uid_base)
{
        for (size_t i = 0; i < ARRAY_SIZE(disk_skeleton); i++) {
                const struct disk_dir *d = &disk_skeleton[i];
                uid_t owner = (uid_t)(uid_base + d->uid);

                if (mkdirat(dirfd, d->path, 0700) < 0)
                        return neg_errno();
                if (fchownat(dirfd, d->path, owner, (gid_t)owner, AT_SYMLINK_NOFOLLOW) < 0)
                        return neg_errno();
                if (fchmodat(dirfd, d->path, d->mode, 0) < 0)
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

/* The directory part of path into buf ("/a/b/c" -> "/a/b"; "/c" -> "/"). */
static int disk_parent(const char *path, char *buf, size_t len)
{
        const char *slash = strrchr(path, '/');
        size_t n;

        if (!slash)
                return -EINVAL;
        n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= len)
                return -ENAMETOOLONG;
        memcpy(buf, path, n);
        buf[n] = '\0';
        return 0;
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

/* Create the sparse ext4 image at path (see mechanisms.h). The parent directory is created
 * (0711: traversable, not listable) if missing; an existing path is never overwritten
 * (-EEXIST). On failure nothing is left behind. Uses a private staging directory next to
 * the image, so concurrent calls for different paths do not interfere. */
int disk_create(const char *path, uint64_t size, uint32_t uid_base)
{
        char parent[PATH_MAX], staging[PATH_MAX];
        cleanup_close int fd = -1;
        cleanup_close int sfd = -1;
        bool made_image = false, made_staging = false;
        int r, n;

        if (!path || path[0] != '/' || size < DISK_MIN_SIZE || size > (uint64_t)INT64_MAX ||
            uid_base == 0 || uid_base > UINT32_MAX - RT_UID_RANGE)
                return -EINVAL;
        r = disk_parent(path, parent, sizeof(parent));
        if (r < 0)
                return r;
        n = snprintf(staging, sizeof(staging), "%s/.disk-staging-XXXXXX", parent);
        if (n < 0 || (size_t)n >= sizeof(staging))
                return -ENAMETOOLONG;
        r = util_mkdir_p(parent, 0711);
        if (r < 0)
                return r;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return neg_errno();
        made_image = true;
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
        r = disk_make_skeleton(sfd, uid_base);
        if (r < 0)
                goto fail;
        r = disk_run_mke2fs(path, staging);
        if (r < 0) {
                r = disk_refine_error(parent, r);
                goto fail;
        }
        /* The image is complete; a staging dir left by a failed removal is harmless (it
         * goes with the sandbox's directory). */
        util_rm_rf(staging);
        return 0;
fail:
        if (made_staging)
                util_rm_rf(staging);
        if (made_image)
                unlink(path);
        return r;
}
