/* util.c - small utilities shared by every module (see util.h).
 *
 * Also linked into the static warren-init binary: plain libc only, no logging, no exit().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* statx, renameat2, memrchr, getrandom; the build defines it too */
#endif
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

/* Deepest directory level util_rm_rf() descends to while holding one fd per level; deeper
 * subtrees are moved up to the top directory first (see rm_dir_contents()). */
#define RM_MAX_DEPTH 64

/* Monotonic clock in nanoseconds. CLOCK_MONOTONIC cannot fail with a valid clock id. */
uint64_t util_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Milliseconds elapsed since start_ns (a util_now_ns() value). */
double util_ms_since(uint64_t start_ns)
{
        uint64_t now = util_now_ns();

        if (now < start_ns)
                return 0.0;
        return (double)(now - start_ns) / 1e6;
}

/* Wall clock, seconds since the epoch. */
int64_t util_wall_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec;
}

int64_t util_wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3339 UTC with second precision ("2026-01-30T10:00:00Z", 20 characters). A time that
 * cannot be represented (gmtime_r fails, or a year wider than 4 digits) gives the epoch, so
 * the output is always well-formed JSON-safe text. buf gets an empty string if len < 21. */
void util_fmt_time(int64_t epoch_s, char *buf, size_t len)
{
        struct tm tm;
        time_t t = (time_t)epoch_s;

        if (len == 0)
                return;
        buf[0] = '\0';
        if (len < 21)
                return;
        if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
                t = 0;
                gmtime_r(&t, &tm);
        }
        if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                buf[0] = '\0';
}

/* getrandom(2) from the urandom pool, looping over EINTR and short reads (a request over
 * 256 bytes may be cut short by a signal). Blocks only before the pool is initialised. */
int util_random(void *buf, size_t len)
{
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = getrandom(p, len, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Write all of buf, retrying on EINTR and short writes. A write returning 0 for a non-zero
 * length would spin forever, so it is reported as -EIO. */
int util_write_all(int fd, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Read exactly len bytes; -EPIPE if the stream ends first (bytes read so far are lost to
 * the caller, who treats the stream as broken anyway). */
int util_read_all(int fd, void *buf, size_t len)
{
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = read(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                if (n == 0)
                        return -EPIPE;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Write value to an open fd in one go and close it, reporting a failed close: kernel
 * interface files (cgroup, /proc/PID/uid_map) report a rejected value from write(), but a
 * regular file on some filesystems only from close(). Always consumes fd. */
static int write_and_close(int fd, const char *value)
{
        int r = util_write_all(fd, value, strlen(value));

        if (close(fd) < 0 && r == 0 && errno != EINTR)
                r = neg_errno();
        return r;
}

/* Write a string to an existing file (cgroup and proc knobs). O_TRUNC so a regular file
 * holds exactly value afterwards; kernel interface files ignore it. */
int util_write_file(const char *path, const char *value)
{
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return neg_errno();
        return write_and_close(fd, value);
}

/* Write a string to dirfd/path, creating it with mode if missing. The last component is
 * never followed if it is a symlink (O_NOFOLLOW): a planted link must not redirect the
 * write. Intermediate components are resolved normally, so callers pass trusted dirfds. */
int util_write_file_at(int dirfd, const char *path, const char *value, int mode)
{
        int fd = openat(dirfd, path,
                        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
                        (mode_t)mode);

        if (fd < 0)
                return neg_errno();
        return write_and_close(fd, value);
}

/* mkdir -p. Each prefix of path is created with mode (subject to the umask); an existing
 * component must be a directory (a symlink to one is accepted, as mkdir -p does). */
int util_mkdir_p(const char *path, int mode)
{
        cleanup_free char *copy = NULL;
        struct stat st;
        char *p;

        if (!path || !*path)
                return -EINVAL;
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;

        p = copy;
        for (;;) {
                while (*p == '/')
                        p++;
                while (*p && *p != '/')
                        p++;
                char saved = *p;

                *p = '\0';
                if (mkdir(copy, (mode_t)mode) < 0) {
                        if (errno != EEXIST)
                                return neg_errno();
                        if (stat(copy, &st) < 0)
                                return neg_errno();
                        if (!S_ISDIR(st.st_mode))
                                return -ENOTDIR;
                }
                *p = saved;
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
        }
        return 0;
}

/* The identity of one directory entry without following symlinks or triggering automounts:
 * type, device, inode and (when the kernel reports it) the mount id. */
struct rm_ident {
        mode_t mode;
        dev_t dev;
        ino_t ino;
        uint64_t mnt_id;
        bool has_mnt_id;
};

static int rm_ident_at(int dirfd, const char *name, int flags, struct rm_ident *ret)
{
        struct statx stx;

        if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                  STATX_TYPE | STATX_INO | STATX_MNT_ID, &stx) < 0)
                return neg_errno();
        ret->mode = stx.stx_mode;
        ret->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
        ret->ino = stx.stx_ino;
        ret->has_mnt_id = (stx.stx_mask & STATX_MNT_ID) != 0;
        ret->mnt_id = stx.stx_mnt_id;
        return 0;
}

/* True if a and b are on the same mount. st_dev alone misses a bind mount of the same
 * filesystem, so the mount id decides when the kernel reports one for both. */
static bool rm_same_mount(const struct rm_ident *a, const struct rm_ident *b)
{
        if (a->dev != b->dev)
                return false;
        if (a->has_mnt_id && b->has_mnt_id)
                return a->mnt_id == b->mnt_id;
        return true;
}

/* Shared state of one util_rm_rf() call. */
struct rm_ctx {
        int rootfd;              /* the top directory, where too-deep subtrees are moved */
        struct rm_ident root;    /* its identity: everything removed must be on this mount */
        unsigned long moved;     /* counter for unique names of moved subtrees */
        bool moved_any;          /* a subtree was moved to the top during this walk */
        int err;                 /* first error (e.g. -EBUSY for a mount point), 0 if none */
};

static void rm_note(struct rm_ctx *c, int r)
{
        if (r < 0 && c->err == 0)
                c->err = r;
}

/* Move the directory dirfd/name to the top directory under a fresh name. Used at the
 * depth limit so the walk needs one fd per level up to RM_MAX_DEPTH, yet still removes
 * trees of any depth (a sandbox can make a tree deeper than any fd limit). Same mount, so
 * rename cannot fail with EXDEV. */
static int rm_move_to_top(struct rm_ctx *c, int dirfd, const char *name)
{
        char tmp[64];

        for (int tries = 0; tries < 1000; tries++) {
                snprintf(tmp, sizeof(tmp), ".warren-rm-%d-%lu", (int)getpid(), c->moved++);
                if (renameat2(dirfd, name, c->rootfd, tmp, RENAME_NOREPLACE) == 0) {
                        c->moved_any = true;
                        return 0;
                }
                if (errno != EEXIST)
                        return neg_errno();
        }
        return -EEXIST;
}

static int rm_dir_contents(struct rm_ctx *c, int dirfd, unsigned depth);

/* Remove the entry name inside dirfd: unlink a non-directory, recurse into a directory on
 * the same mount, leave (and report -EBUSY for) anything on another mount. Returns 1 if
 * the entry was removed or moved, 0 if it was left, or -errno. */
static int rm_entry(struct rm_ctx *c, int dirfd, const char *name, unsigned depth)
{
        struct rm_ident id, opened;
        int r;

        r = rm_ident_at(dirfd, name, 0, &id);
        if (r == -ENOENT)
                return 1;
        if (r < 0)
                return r;

        if (!S_ISDIR(id.mode)) {
                /* A file bind-mounted over another file also has a foreign mount id. */
                if (!rm_same_mount(&id, &c->root))
                        return -EBUSY;
                if (unlinkat(dirfd, name, 0) < 0)
                        return errno == ENOENT ? 1 : neg_errno();
                return 1;
        }

        if (!rm_same_mount(&id, &c->root))
                return -EBUSY;
        if (depth >= RM_MAX_DEPTH) {
                r = rm_move_to_top(c, dirfd, name);
                return r < 0 ? r : 1;
        }

        cleanup_close int fd =
                openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 1 : neg_errno();
        /* The entry may have been swapped between statx and openat (e.g. for a mount point
         * or a directory elsewhere moved in): only descend into what was checked. */
        r = rm_ident_at(fd, "", AT_EMPTY_PATH, &opened);
        if (r < 0)
                return r;
        if (opened.dev != id.dev || opened.ino != id.ino || !rm_same_mount(&opened, &c->root))
                return -EBUSY;

        r = rm_dir_contents(c, fd, depth + 1);
        if (r < 0)
                return r;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
                return errno == ENOENT ? 1 : neg_errno();
        return 1;
}

/* Remove everything inside the directory dirfd (not dirfd itself). Entries that cannot be
 * removed are left, their error remembered in c->err; the walk goes on so as much as
 * possible is freed. Passes repeat while they make progress, because removing entries
 * while reading a directory may make readdir skip some. Returns 0 if the directory is now
 * empty, else the first error seen. */
static int rm_dir_contents(struct rm_ctx *c, int dirfd, unsigned depth)
{
        int first_err = 0;

        for (;;) {
                int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
                bool progress = false, left = false;
                struct dirent *de;
                DIR *d;

                if (dfd < 0)
                        return neg_errno();
                d = fdopendir(dfd);
                if (!d) {
                        int r = neg_errno();

                        close(dfd);
                        return r;
                }
                /* The dup shares the file offset with dirfd, which an earlier pass moved. */
                rewinddir(d);
                errno = 0;
                while ((de = readdir(d))) {
                        int r;

                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        r = rm_entry(c, dirfd, de->d_name, depth);
                        if (r > 0) {
                                progress = true;
                        } else {
                                left = true;
                                if (r < 0 && first_err == 0)
                                        first_err = r;
                                rm_note(c, r);
                        }
                        errno = 0;
                }
                int rerr = errno;

                closedir(d);
                if (rerr != 0)
                        return -rerr;
                if (!progress)
                        return left ? (first_err ? first_err : -ENOTEMPTY) : 0;
        }
}

/* rm -rf that stays on one mount and never follows a symlink: the tree is walked with
 * *at() calls relative to directory fds opened O_NOFOLLOW, so a symlink or rename planted
 * by sandbox code while we walk cannot redirect removal outside the tree. A path that is
 * a symlink or a file is unlinked itself. A top directory that is a mount point, or any
 * entry on another mount, is left and the call fails with -EBUSY after removing the rest. */
int util_rm_rf(const char *path)
{
        struct rm_ctx c = { .rootfd = -1 };
        cleanup_free char *parent = NULL;
        struct rm_ident parent_id;
        int r;

        if (!path || !*path)
                return -EINVAL;

        r = rm_ident_at(AT_FDCWD, path, 0, &c.root);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (!S_ISDIR(c.root.mode)) {
                if (unlink(path) < 0 && errno != ENOENT)
                        return neg_errno();
                return 0;
        }

        /* Refuse to empty a mount point: compare with the parent directory. */
        size_t n = strlen(path);
        parent = malloc(n + 4);
        if (!parent)
                return -ENOMEM;
        memcpy(parent, path, n);
        memcpy(parent + n, "/..", 4);
        r = rm_ident_at(AT_FDCWD, parent, 0, &parent_id);
        if (r < 0)
                return r;
        if (!rm_same_mount(&c.root, &parent_id))
                return -EBUSY;
        /* "/" is its own parent: never empty the root filesystem. */
        if (c.root.dev == parent_id.dev && c.root.ino == parent_id.ino)
                return -EPERM;

        cleanup_close int rootfd =
                open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (rootfd < 0)
                return errno == ENOENT ? 0 : neg_errno();
        struct rm_ident opened;
        r = rm_ident_at(rootfd, "", AT_EMPTY_PATH, &opened);
        if (r < 0)
                return r;
        if (opened.dev != c.root.dev || opened.ino != c.root.ino ||
            !rm_same_mount(&opened, &c.root))
                return -EBUSY;
        c.rootfd = rootfd;

        /* Subtrees moved up at the depth limit are removed by the next round. */
        do {
                c.moved_any = false;
                r = rm_dir_contents(&c, rootfd, 0);
        } while (c.moved_any);

        if (c.err < 0)
                return c.err;
        if (r < 0)
                return r;
        if (rmdir(path) < 0 && errno != ENOENT)
                return neg_errno();
        return 0;
}

/* Lowercase hex of len bytes into out, NUL-terminated (out has 2*len+1 bytes). */
void util_hex(const uint8_t *in, size_t len, char *out)
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 0xf];
        }
        out[2 * len] = '\0';
}

/* Field 22 (starttime) of /proc/PID/stat. Field 2 (comm) is the process name in
 * parentheses and may itself contain spaces and ')', chosen by the process (prctl
 * PR_SET_NAME): a sandbox could forge the fields that follow if we split at the first
 * ')'. The kernel prints every later field as a number, so the last ')' ends comm. */
uint64_t util_proc_starttime(pid_t pid)
{
        char path[64], buf[1024];
        ssize_t n;
        size_t got = 0;

        if (pid <= 0)
                return 0;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return 0;
        while (got < sizeof(buf) - 1) {
                n = read(fd, buf + got, sizeof(buf) - 1 - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return 0;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        buf[got] = '\0';

        char *p = memrchr(buf, ')', got);
        if (!p)
                return 0;
        p++;
        /* After ") " come field 3 (state) onwards; starttime is the 20th of them. */
        for (int field = 3; field < 22; field++) {
                while (*p == ' ')
                        p++;
                if (!*p)
                        return 0;
                while (*p && *p != ' ')
                        p++;
        }
        while (*p == ' ')
                p++;
        if (*p < '0' || *p > '9')
                return 0;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
                return 0;
        return (uint64_t)v;
}
