/* setup.c - build the sandbox around warren-init, in the order the kernel needs.
 *
 * warren-init starts as host root, PID 1 of new pid, mount, uts, ipc and net namespaces that
 * the runtime created with clone(); meanwhile the runtime moves it into the sandbox's cgroup
 * (see launch_msg.h for why in parallel). From there:
 *
 *   1. make every mount private, so nothing below propagates to the host;
 *   2. read the seccomp program (a host file) into memory;
 *   3. attach disk.img to a free loop device (autoclear) and mount its ext4 on STAGE/root;
 *      give its directories (made owned by host root, see launch_disk_dirs) to the sandbox;
 *   4. mount the overlay (template below, the disk's upper/ above) on STAGE/root, covering
 *      the ext4 mount (the overlay keeps its own reference to the upper layer);
 *   5. /usr (host, read-only, if the template asks), /proc, /dev (+ pts, shm), /sys, and
 *      Docker's masked and read-only paths;
 *   6. hostname, loopback up; the control socket, bound on the host path before the host
 *      disappears;
 *   7. pivot_root into the new root and detach the old one;
 *   8. once the runtime says we are in the sandbox's cgroup: unshare the cgroup namespace
 *      (rooted at that group), then the user namespace, and let the runtime write our
 *      uid/gid maps;
 *   9. become root of that namespace and non-dumpable;
 *  10. set no_new_privs and load the seccomp filter on ourselves.
 *
 * Why the user namespace comes last: every other namespace (and every mount) was created by
 * host root, so they are all owned by the initial user namespace. Root inside the sandbox is
 * root only of the user namespace made in step 8, which owns nothing but itself: it can
 * never mount, change the hostname, reconfigure the network namespace, or undo a mask,
 * while its files and processes belong to an unprivileged host uid range (host uid 0 is
 * never mapped). unshare(CLONE_NEWUSER) refuses a chrooted process, which is why the root
 * change is a pivot_root (the new root is the mount namespace's root) and not a chroot.
 *
 * During setup no sandbox process exists yet, so the only hostile input is the static
 * content of the template and of the disk's upper layer: mount points are checked to be
 * real directories (not symlinks) before anything is mounted on them.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/loop.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "init.h"
#include "util.h"

/* /dev/shm size, as Docker's default. */
#define SHM_OPTS "mode=1777,size=65536k,nr_inodes=16384"
/* gid of the tty group inside (Debian). */
#define TTY_GID 5
/* Attempts at grabbing a free loop device before giving up (others race for them). */
#define LOOP_TRIES 64

/* Format what failed into err and return r (negative errno). The errno's text is added by
 * the runtime, which gets the errno beside the message. */
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return r;
}

/* dst = a + "/" + b (dst: PATH_MAX bytes). 0 or -ENAMETOOLONG. */
static int join(char *dst, const char *a, const char *b)
{
        int n = snprintf(dst, PATH_MAX, "%s/%s", a, b);

        return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Characters that would break overlayfs's option string or be read as separators. */
static bool path_ok_for_overlay(const char *p)
{
        return strpbrk(p, ",:\\\n") == NULL;
}

int setup_parse_spec(const uint8_t *buf, size_t len, struct launch_cfg *ret, char *err,
                     size_t errlen)
{
        struct launch_spec hdr;
        struct launch_cfg cfg = { 0 };
        size_t pos = sizeof(hdr);

        if (len < sizeof(hdr))
                return fail(err, errlen, -EINVAL, "launch spec: short message");
        memcpy(&hdr, buf, sizeof(hdr));
        if (hdr.magic != LAUNCH_MAGIC || hdr.type != LAUNCH_SPEC || hdr.nstr != LAUNCH_NSTR)
                return fail(err, errlen, -EINVAL, "launch spec: bad header");
        if (hdr.uid_base == 0 || hdr.uid_base > UINT32_MAX - 65536u)
                return fail(err, errlen, -EINVAL, "launch spec: bad uid_base");
        for (int i = 0; i < LAUNCH_NSTR; i++) {
                const uint8_t *nul = memchr(buf + pos, '\0', len - pos);

                if (!nul)
                        return fail(err, errlen, -EINVAL, "launch spec: string %d unterminated", i);
                cfg.str[i] = (const char *)buf + pos;
                pos = (size_t)(nul - buf) + 1;
                if (i != LAUNCH_S_HOSTNAME && cfg.str[i][0] != '/')
                        return fail(err, errlen, -EINVAL, "launch spec: path %d not absolute", i);
                if (strlen(cfg.str[i]) >= PATH_MAX - 32)
                        return fail(err, errlen, -EINVAL, "launch spec: path %d too long", i);
        }
        size_t hl = strlen(cfg.str[LAUNCH_S_HOSTNAME]);
        if (hl == 0 || hl > 64)
                return fail(err, errlen, -EINVAL, "launch spec: bad hostname");
        if (!path_ok_for_overlay(cfg.str[LAUNCH_S_ROOTFS]) ||
            !path_ok_for_overlay(cfg.str[LAUNCH_S_STAGE]))
                return fail(err, errlen, -EINVAL, "launch spec: path unusable by overlayfs");
        cfg.flags = hdr.flags;
        cfg.uid_base = hdr.uid_base;
        cfg.host_pid = hdr.host_pid;
        *ret = cfg;
        return 0;
}

/* Read the raw seccomp program (struct sock_filter array) from path (a host file, so
 * before pivot_root). */
static int read_filter(const char *path, struct init_ctx *ctx, char *err, size_t errlen)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        size_t n;

        if (fd < 0)
                return fail(err, errlen, neg_errno(), "open %s", path);
        if (fstat(fd, &st) < 0)
                return fail(err, errlen, neg_errno(), "stat %s", path);
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
            st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return fail(err, errlen, -EINVAL, "seccomp program %s", path);
        n = (size_t)st.st_size;
        ctx->filter = malloc(n);
        if (!ctx->filter)
                return fail(err, errlen, -ENOMEM, "seccomp program");
        int r = util_read_all(fd, ctx->filter, n);
        if (r < 0)
                return fail(err, errlen, r, "read %s", path);
        ctx->filter_len = (unsigned short)(n / sizeof(struct sock_filter));
        return 0;
}

/* Attach image to a free loop device with autoclear set and mount its ext4 on target. The
 * loop device detaches by itself once the last mount of it goes away, which happens when the
 * sandbox's mount namespace dies: nothing to clean up on the host. */
static int mount_disk(const char *image, const char *target, char *err, size_t errlen)
{
        cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        cleanup_close int img = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        char dev[32];

        if (ctl < 0)
                return fail(err, errlen, neg_errno(), "open /dev/loop-control");
        if (img < 0)
                return fail(err, errlen, neg_errno(), "open %s", image);
        for (int tries = 0;; tries++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0)
                        return fail(err, errlen, neg_errno(), "LOOP_CTL_GET_FREE");
                snprintf(dev, sizeof(dev), "/dev/loop%d", n);
                cleanup_close int lfd = open(dev, O_RDWR | O_CLOEXEC);
                if (lfd < 0)
                        return fail(err, errlen, neg_errno(), "open %s", dev);
                struct loop_config lc = { .fd = (unsigned)img };
                lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
                if (ioctl(lfd, LOOP_CONFIGURE, &lc) == 0) {
                        /* Mount while lfd is open: closing it first would autoclear. */
                        if (mount(dev, target, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
                                return fail(err, errlen, neg_errno(), "mount %s (%s) on %s",
                                            image, dev, target);
                        return 0;
                }
                /* Another process took this device between GET_FREE and CONFIGURE. */
                if (errno != EBUSY || tries >= LOOP_TRIES)
                        return fail(err, errlen, neg_errno(), "LOOP_CONFIGURE %s", dev);
        }
}

/* Open the directory path (relative to dirfd, '/'-separated) without following a symlink
 * anywhere on the way: each component is opened O_NOFOLLOW | O_DIRECTORY, so a symlink
 * fails (ELOOP or ENOTDIR) instead of leading elsewhere; "." and ".." are refused. */
static int open_dir_nofollow(int dirfd, const char *path)
{
        cleanup_close int cur = -1;
        char comp[NAME_MAX + 1];
        const char *p = path;

        while (*p) {
                size_t n = strcspn(p, "/");
                if (n == 0 || n > NAME_MAX)
                        return -EINVAL;
                memcpy(comp, p, n);
                comp[n] = '\0';
                if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0)
                        return -EINVAL;
                int next = openat(cur >= 0 ? cur : dirfd, comp,
                                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0)
                        return neg_errno();
                if (cur >= 0)
                        close(cur);
                cur = next;
                p += n;
                if (*p == '/')
                        p++;
        }
        return cur >= 0 ? TAKE_FD(cur) : -EINVAL;
}

/* Give the directories of the disk mounted on root (launch_disk_dirs) to their owners in
 * this sandbox's uid range, with their modes. Disk images are made ahead for any sandbox,
 * with these directories owned by host root as placeholders; one not owned by host root any
 * more was given away already (a disk started before) and is left as its sandbox made it.
 * Done through fds opened without following symlinks: the disk is fresh and ours, but
 * fchown as host root is not a call to aim by path. */
static int own_disk(const char *root, uint32_t uid_base, char *err, size_t errlen)
{
        cleanup_close int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (rootfd < 0)
                return fail(err, errlen, neg_errno(), "open %s", root);
        for (size_t i = 0; i < ARRAY_SIZE(launch_disk_dirs); i++) {
                const struct launch_disk_dir *d = &launch_disk_dirs[i];
                uid_t owner = (uid_t)(uid_base + d->uid);
                struct stat st;

                cleanup_close int fd = open_dir_nofollow(rootfd, d->path);
                if (fd < 0)
                        return fail(err, errlen, fd, "disk directory %s", d->path);
                if (fstat(fd, &st) < 0)
                        return fail(err, errlen, neg_errno(), "stat disk directory %s", d->path);
                if (st.st_uid != 0 || st.st_gid != 0)
                        continue;
                if (fchown(fd, owner, (gid_t)owner) < 0 || fchmod(fd, (mode_t)d->mode) < 0)
                        return fail(err, errlen, neg_errno(), "chown disk directory %s", d->path);
        }
        return 0;
}

/* Make sure name (one component) under rootfd is a real directory, creating it if missing.
 * A symlink there (from a template or from the disk) would send the mount elsewhere. */
static int ensure_mountpoint(int rootfd, const char *name, char *err, size_t errlen)
{
        struct stat st;

        if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT)
                        return fail(err, errlen, neg_errno(), "stat /%s", name);
                if (mkdirat(rootfd, name, 0755) < 0 && errno != EEXIST)
                        return fail(err, errlen, neg_errno(), "mkdir /%s", name);
                return 0;
        }
        if (!S_ISDIR(st.st_mode))
                return fail(err, errlen, -ENOTDIR, "mount point /%s in the root", name);
        return 0;
}

/* mount(2) with the error formatted. */
static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                    const char *data, char *err, size_t errlen)
{
        if (mount(src, dst, type, flags, data) < 0)
                return fail(err, errlen, neg_errno(), "mount %s on %s", type ? type : src, dst);
        return 0;
}

/* Bind path onto itself (or src onto it) and remount the bind read-only with extra flags.
 * A bind mount ignores flags in the first call: the second one applies them. */
static int bind_ro(const char *src, const char *dst, unsigned long extra, char *err,
                   size_t errlen)
{
        int r = do_mount(src, dst, NULL, MS_BIND, NULL, err, errlen);
        if (r < 0)
                return r;
        return do_mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | extra, NULL, err,
                        errlen);
}

/* Docker's default masked paths: files get /dev/null bound over them, directories an empty
 * read-only tmpfs. Paths this kernel does not have are skipped, as Docker does. */
static const char *const masked_paths[] = {
        "proc/asound",     "proc/acpi",       "proc/kcore",        "proc/keys",
        "proc/latency_stats", "proc/timer_list", "proc/timer_stats", "proc/sched_debug",
        "proc/scsi",       "sys/firmware",    "sys/devices/virtual/powercap",
};
/* Docker's default read-only paths. */
static const char *const readonly_paths[] = {
        "proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
};

/* Apply masks and read-only binds under root (all in the procfs and sysfs just mounted). */
static int mask_paths(const char *root, char *err, size_t errlen)
{
        char path[PATH_MAX], devnull[PATH_MAX];
        struct stat st;
        int r;

        if (join(devnull, root, "dev/null") < 0)
                return fail(err, errlen, -ENAMETOOLONG, "%s", root);
        for (size_t i = 0; i < ARRAY_SIZE(masked_paths); i++) {
                if (join(path, root, masked_paths[i]) < 0)
                        return fail(err, errlen, -ENAMETOOLONG, "%s", root);
                if (lstat(path, &st) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return fail(err, errlen, neg_errno(), "stat /%s", masked_paths[i]);
                }
                if (S_ISDIR(st.st_mode))
                        r = do_mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV |
                                     MS_NOEXEC, "size=0,nr_inodes=1,mode=0555", err, errlen);
                else
                        r = do_mount(devnull, path, NULL, MS_BIND, NULL, err, errlen);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ARRAY_SIZE(readonly_paths); i++) {
                if (join(path, root, readonly_paths[i]) < 0)
                        return fail(err, errlen, -ENAMETOOLONG, "%s", root);
                if (lstat(path, &st) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return fail(err, errlen, neg_errno(), "stat /%s", readonly_paths[i]);
                }
                r = bind_ro(path, path, MS_NOSUID | MS_NODEV | MS_NOEXEC, err, errlen);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The device nodes of the sandbox's /dev (mode 0666, like Docker's). */
static const struct {
        const char *name;
        unsigned maj, min;
} dev_nodes[] = {
        { "null", 1, 3 }, { "zero", 1, 5 },    { "full", 1, 7 },
        { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};
static const struct {
        const char *name, *target;
} dev_links[] = {
        { "ptmx", "pts/ptmx" },         { "fd", "/proc/self/fd" },
        { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
        { "stderr", "/proc/self/fd/2" },
};

/* A small tmpfs on root/dev with the nodes above, devpts and /dev/shm. mknod works because we
 * are still host root in the initial user namespace. Everything is owned by the sandbox's
 * root (uid_base), so root inside sees a normal /dev. */
static int mount_dev(const char *root, uint32_t uid_base, char *err, size_t errlen)
{
        char dev[PATH_MAX], path[PATH_MAX], opts[128];
        int r;

        if (join(dev, root, "dev") < 0 || join(path, root, "dev/pts") < 0)
                return fail(err, errlen, -ENAMETOOLONG, "%s", root);
        snprintf(opts, sizeof(opts), "mode=0755,size=64k,nr_inodes=64,uid=%u,gid=%u", uid_base,
                 uid_base);
        r = do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, opts, err, errlen);
        if (r < 0)
                return r;
        cleanup_close int dfd = open(dev, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return fail(err, errlen, neg_errno(), "open %s", dev);
        for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
                if (mknodat(dfd, dev_nodes[i].name, S_IFCHR | 0666,
                            makedev(dev_nodes[i].maj, dev_nodes[i].min)) < 0)
                        return fail(err, errlen, neg_errno(), "mknod /dev/%s", dev_nodes[i].name);
                if (fchownat(dfd, dev_nodes[i].name, uid_base, uid_base, AT_SYMLINK_NOFOLLOW) < 0)
                        return fail(err, errlen, neg_errno(), "chown /dev/%s", dev_nodes[i].name);
        }
        for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
                if (symlinkat(dev_links[i].target, dfd, dev_links[i].name) < 0)
                        return fail(err, errlen, neg_errno(), "symlink /dev/%s", dev_links[i].name);
                if (fchownat(dfd, dev_links[i].name, uid_base, uid_base, AT_SYMLINK_NOFOLLOW) < 0)
                        return fail(err, errlen, neg_errno(), "chown /dev/%s", dev_links[i].name);
        }
        if (mkdirat(dfd, "pts", 0755) < 0 || mkdirat(dfd, "shm", 01777) < 0)
                return fail(err, errlen, neg_errno(), "mkdir in /dev");
        /* gid= is read in the mounter's (initial) user namespace: give the host gid that is
         * the tty group inside. */
        snprintf(opts, sizeof(opts), "newinstance,ptmxmode=0666,mode=0620,gid=%u",
                 uid_base + TTY_GID);
        r = do_mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, opts, err, errlen);
        if (r < 0)
                return r;
        if (join(path, root, "dev/shm") < 0)
                return fail(err, errlen, -ENAMETOOLONG, "%s", root);
        snprintf(opts, sizeof(opts), SHM_OPTS ",uid=%u,gid=%u", uid_base, uid_base);
        return do_mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts, err,
                        errlen);
}

/* Create the listening control socket at path (a host path, mode 0600, owned by host root).
 * Bound before pivot_root so that the sandbox never sees it. The bind goes through
 * /proc/self/fd/N/NAME of the parent directory, so paths longer than sun_path work. */
static int make_ctl_socket(const char *path, int *ret_fd, char *err, size_t errlen)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');

        if (!slash || slash[1] == '\0' || (size_t)(slash - path) >= sizeof(dir))
                return fail(err, errlen, -EINVAL, "control socket path %s", path);
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        cleanup_close int dfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return fail(err, errlen, neg_errno(), "open %s", dir);
        int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd, slash + 1);
        if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
                return fail(err, errlen, -ENAMETOOLONG, "control socket name %s", slash + 1);
        cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return fail(err, errlen, neg_errno(), "socket");
        (void)unlinkat(dfd, slash + 1, 0);
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return fail(err, errlen, neg_errno(), "bind %s", path);
        if (listen(fd, 16) < 0)
                return fail(err, errlen, neg_errno(), "listen %s", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Build the mounts under root (steps 4-6 of the file comment). */
static int build_root(const struct launch_cfg *cfg, const char *root, char *err, size_t errlen)
{
        const char *stage = cfg->str[LAUNCH_S_STAGE];
        char opts[3 * PATH_MAX], path[PATH_MAX];
        int r;

        if (mkdir(root, 0700) < 0 && errno != EEXIST)
                return fail(err, errlen, neg_errno(), "mkdir %s", root);
        r = mount_disk(cfg->str[LAUNCH_S_DISK], root, err, errlen);
        if (r < 0)
                return r;
        r = own_disk(root, cfg->uid_base, err, errlen);
        if (r < 0)
                return r;
        /* upperdir and workdir are looked up now, in the ext4 just mounted on root; the
         * overlay then covers that mount, which vanishes with the old root at pivot_root. */
        snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s/root/upper,workdir=%s/root/work",
                 cfg->str[LAUNCH_S_ROOTFS], stage, stage);
        r = do_mount("overlay", root, "overlay", MS_NOSUID | MS_NODEV, opts, err, errlen);
        if (r < 0)
                return r;

        cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return fail(err, errlen, neg_errno(), "open %s", root);
        /* /etc/hostname says what gethostname() says. Written through the overlay while we
         * are host root, so it lands in this sandbox's upper layer, like the template's files
         * owned by a uid the sandbox does not map. */
        char hn[HOST_NAME_MAX + 2];
        snprintf(hn, sizeof(hn), "%s\n", cfg->str[LAUNCH_S_HOSTNAME]);
        r = util_write_file_at(rootfd, "etc/hostname", hn, 0644);
        if (r < 0)
                return fail(err, errlen, r, "writing /etc/hostname");
        static const char *const points[] = { "usr", "proc", "dev", "sys" };
        for (size_t i = 0; i < ARRAY_SIZE(points); i++) {
                r = ensure_mountpoint(rootfd, points[i], err, errlen);
                if (r < 0)
                        return r;
        }

        if (cfg->flags & LAUNCH_F_BIND_HOST_USR) {
                if (join(path, root, "usr") < 0)
                        return fail(err, errlen, -ENAMETOOLONG, "%s", root);
                r = bind_ro("/usr", path, MS_NOSUID | MS_NODEV, err, errlen);
                if (r < 0)
                        return r;
        }
        if (join(path, root, "proc") < 0)
                return fail(err, errlen, -ENAMETOOLONG, "%s", root);
        r = do_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err, errlen);
        if (r < 0)
                return r;
        r = mount_dev(root, cfg->uid_base, err, errlen);
        if (r < 0)
                return r;
        if (join(path, root, "sys") < 0)
                return fail(err, errlen, -ENAMETOOLONG, "%s", root);
        r = do_mount("sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                     err, errlen);
        if (r < 0)
                return r;
        return mask_paths(root, err, errlen);
}

/* Bring up the loopback interface of the sandbox's fresh network namespace (it starts
 * down): "no network" still means a working localhost. */
static int loopback_up(char *err, size_t errlen)
{
        cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = { 0 };

        if (fd < 0)
                return fail(err, errlen, neg_errno(), "socket for lo");
        strcpy(ifr.ifr_name, "lo");
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return fail(err, errlen, neg_errno(), "SIOCGIFFLAGS lo");
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return fail(err, errlen, neg_errno(), "SIOCSIFFLAGS lo");
        return 0;
}

/* Send a status message over the launch socket. */
static int send_status(int fd, uint32_t type)
{
        struct launch_status m = { .magic = LAUNCH_MAGIC, .type = type };

        if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
                return neg_errno();
        return 0;
}

/* Wait for status message type from the runtime (it kills us if we wait too long). */
static int wait_status(int fd, uint32_t type, const char *what, char *err, size_t errlen)
{
        struct launch_status m;
        ssize_t n;

        do
                n = recv(fd, &m, sizeof(m), 0);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof(m) || m.magic != LAUNCH_MAGIC || m.type != type)
                return fail(err, errlen, n < 0 ? neg_errno() : -EPROTO, "waiting for %s", what);
        return 0;
}

/* Step 10: no_new_privs and the seccomp filter on PID 1 itself. Every process of the sandbox
 * descends from it and inherits both, so none can run without them (the job's reaper
 * included), and no job pays for loading the filter (~0.25 ms here). Nothing warren-init
 * does from now on needs a syscall the filter refuses. */
static int confine_self(struct sock_filter *filter, unsigned short len, char *err,
                        size_t errlen)
{
        struct sock_fprog prog = { .len = len, .filter = filter };

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return fail(err, errlen, neg_errno(), "PR_SET_NO_NEW_PRIVS");
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
                return fail(err, errlen, neg_errno(), "loading the seccomp filter");
        return 0;
}

/* Steps 8-9: cgroup and user namespaces, maps written by the runtime, become root. */
static int enter_userns(int launch_fd, char *err, size_t errlen)
{
        int r;

        r = wait_status(launch_fd, LAUNCH_ATTACHED, "the cgroup attach", err, errlen);
        if (r < 0)
                return r;
        /* Before the user namespace, so that it is owned by the initial one. */
        if (unshare(CLONE_NEWCGROUP) < 0)
                return fail(err, errlen, neg_errno(), "unshare(CLONE_NEWCGROUP)");
        if (unshare(CLONE_NEWUSER) < 0)
                return fail(err, errlen, neg_errno(), "unshare(CLONE_NEWUSER)");
        r = send_status(launch_fd, LAUNCH_USERNS);
        if (r < 0)
                return fail(err, errlen, r, "launch socket");
        r = wait_status(launch_fd, LAUNCH_MAPPED, "the uid/gid maps", err, errlen);
        if (r < 0)
                return r;
        /* Drop every supplementary group inherited from the daemon (host gid 0 among them). */
        if (setgroups(0, NULL) < 0)
                return fail(err, errlen, neg_errno(), "setgroups");
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                return fail(err, errlen, neg_errno(), "becoming root of the user namespace");
        /* Non-dumpable: /proc/1 belongs to host root, so nothing in the sandbox can ptrace
         * PID 1 or open /proc/1/exe (the warren-init binary on the host: CVE-2019-5736). */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return fail(err, errlen, neg_errno(), "PR_SET_DUMPABLE");
        return 0;
}

int setup_sandbox(const struct launch_cfg *cfg, int launch_fd, struct init_ctx *ret, char *err,
                  size_t errlen)
{
        struct init_ctx ctx = { .ctl_fd = -1, .devnull_fd = -1, .host_pid = cfg->host_pid };
        const char *hostname = cfg->str[LAUNCH_S_HOSTNAME];
        char root[PATH_MAX];
        int r;

        umask(0);
        if (join(root, cfg->str[LAUNCH_S_STAGE], "root") < 0)
                return fail(err, errlen, -ENAMETOOLONG, "%s", cfg->str[LAUNCH_S_STAGE]);
        if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return fail(err, errlen, neg_errno(), "making / private");
        r = read_filter(cfg->str[LAUNCH_S_SECCOMP], &ctx, err, errlen);
        if (r < 0)
                goto fail;
        r = build_root(cfg, root, err, errlen);
        if (r < 0)
                goto fail;
        if (sethostname(hostname, strlen(hostname)) < 0) {
                r = fail(err, errlen, neg_errno(), "sethostname");
                goto fail;
        }
        r = loopback_up(err, errlen);
        if (r < 0)
                goto fail;
        r = make_ctl_socket(cfg->str[LAUNCH_S_CTL], &ctx.ctl_fd, err, errlen);
        if (r < 0)
                goto fail;
        char devnull[PATH_MAX];
        if (join(devnull, root, "dev/null") < 0) {
                r = fail(err, errlen, -ENAMETOOLONG, "%s", root);
                goto fail;
        }
        ctx.devnull_fd = open(devnull, O_RDWR | O_CLOEXEC);
        if (ctx.devnull_fd < 0) {
                r = fail(err, errlen, neg_errno(), "open /dev/null");
                goto fail;
        }

        if (chdir(root) < 0) {
                r = fail(err, errlen, neg_errno(), "chdir %s", root);
                goto fail;
        }
        /* pivot_root(".", "."): the old root ends up stacked on the new one and is detached
         * right away, so no directory for it is needed in the sandbox's root. */
        if (syscall(SYS_pivot_root, ".", ".") < 0) {
                r = fail(err, errlen, neg_errno(), "pivot_root");
                goto fail;
        }
        if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
                r = fail(err, errlen, neg_errno(), "detaching the old root");
                goto fail;
        }
        r = enter_userns(launch_fd, err, errlen);
        if (r < 0)
                goto fail;
        r = confine_self(ctx.filter, ctx.filter_len, err, errlen);
        if (r < 0)
                goto fail;
        free(ctx.filter);
        ctx.filter = NULL;
        umask(022);
        *ret = ctx;
        return 0;

fail:
        free(ctx.filter);
        if (ctx.ctl_fd >= 0)
                close(ctx.ctl_fd);
        if (ctx.devnull_fd >= 0)
                close(ctx.devnull_fd);
        return r;
}
