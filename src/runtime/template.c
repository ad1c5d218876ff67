/* template.c - templates under data_dir/templates, and the built-in `base` template.
 *
 * A template is data_dir/templates/NAME/ holding rootfs/ (the read-only lower layer of every
 * sandbox made from it), template.json (name, description, created_at, for `warren template
 * ls`) and, for templates that use the host's /usr, an empty marker file bind-host-usr.
 *
 * `base` is assembled on first start, without any download: a skeleton root whose /bin,
 * /sbin, /lib... are usrmerge symlinks into /usr (an empty mount point: the host's /usr is
 * bind-mounted read-only there at sandbox start) and a GENERATED /etc. Nothing of the host's
 * /etc is copied except a fixed allow-list of harmless files programs need (the dynamic
 * loader's cache, CA certificates, time zone, shell profiles...): no shadow, no ssh keys, no
 * machine-id, no apt credentials, no environment.
 *
 * Threads: no global state, no chdir, no umask change (modes are set with fchmod after each
 * create). Concurrent tpl_ensure_base() calls each build in a private temporary directory;
 * the first rename wins and the others discard their copy.
 */
#include "mechanisms.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define TPL_DIR "templates"
#define TPL_BASE "base"
#define TPL_MARKER_USR "bind-host-usr"
#define TPL_JSON "template.json"
#define TPL_BUILD_PREFIX ".base-build-"
/* A build directory older than this is a leftover of a crash and is removed. */
#define TPL_STALE_S 3600
/* Bounds on what the allow-list may copy from the host's /etc (it is a few MB at most; more
 * means something is wrong with the host, and we would rather fail than copy it). */
#define TPL_COPY_MAX_ENTRIES 20000
#define TPL_COPY_MAX_BYTES (64ULL << 20)
#define TPL_COPY_MAX_DEPTH 16

/* A directory of the skeleton root, with its mode (owner is always root). */
struct tpl_dir {
        const char *path;
        mode_t mode;
};

/* Parents before children. */
static const struct tpl_dir tpl_dirs[] = {
        { "usr", 0755 },     { "proc", 0555 },      { "sys", 0555 },        { "dev", 0755 },
        { "tmp", 01777 },    { "run", 0755 },       { "mnt", 0755 },        { "opt", 0755 },
        { "srv", 0755 },     { "media", 0755 },     { "home", 0755 },       { "root", 0700 },
        { "workspace", 0755 }, { "etc", 0755 },     { "var", 0755 },        { "var/tmp", 01777 },
        { "var/cache", 0755 }, { "var/lib", 0755 }, { "var/log", 0755 },    { "var/spool", 0755 },
        { "var/mail", 0755 }, { "var/opt", 0755 },  { "var/local", 0755 },  { "var/backups", 0755 },
};

/* Symlinks of the skeleton root: name -> target. lib32/libx32 are added only when the host
 * has them (see tpl_make_skeleton()). */
static const char *const tpl_links[][2] = {
        { "bin", "usr/bin" },   { "sbin", "usr/sbin" },      { "lib", "usr/lib" },
        { "lib64", "usr/lib64" }, { "var/run", "/run" },     { "etc/mtab", "../proc/self/mounts" },
};
static const char *const tpl_host_optional_libs[] = { "lib32", "libx32" };

/* Generated files of /etc (mode 0644). */
static const char *const tpl_etc_files[][2] = {
        { "passwd", "root:x:0:0:root:/root:/bin/bash\n"
                    "user:x:1001:1001:user:/home/user:/bin/bash\n"
                    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" },
        { "group", "root:x:0:\n"
                   "tty:x:5:\n"
                   "user:x:1001:\n"
                   "nogroup:x:65534:\n" },
        { "hosts", "127.0.0.1\tlocalhost\n"
                   "::1\tlocalhost ip6-localhost ip6-loopback\n" },
        { "resolv.conf", "# Placeholder written by warren: sandboxes have no network yet.\n"
                         "nameserver 1.1.1.1\n"
                         "nameserver 8.8.8.8\n" },
        { "nsswitch.conf", "passwd:     files\n"
                           "group:      files\n"
                           "shadow:     files\n"
                           "gshadow:    files\n"
                           "hosts:      files dns\n"
                           "networks:   files\n"
                           "protocols:  files\n"
                           "services:   files\n"
                           "ethers:     files\n"
                           "rpc:        files\n"
                           "netgroup:   files\n" },
        { "hostname", "sandbox\n" },
};

/* The allow-list: paths relative to /etc copied as they are (directories recursively,
 * symlinks as symlinks, never followed). Missing ones are skipped. /etc/python3* is added by
 * a pattern in tpl_copy_host_etc(). */
static const char *const tpl_etc_copies[] = {
        "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
        "ssl/certs/ca-certificates.crt", "ssl/openssl.cnf", "ca-certificates.conf",
        "localtime", "timezone", "protocols", "services", "profile", "profile.d",
        "bash.bashrc", "skel", "os-release", "debian_version", "mime.types", "inputrc",
        "gai.conf", "host.conf", "perl",
};

/* Remaining allowance of one copy of the allow-list. */
struct tpl_budget {
        unsigned entries;
        uint64_t bytes;
};

/* Whether name is a valid template name: [A-Za-z0-9][A-Za-z0-9._-]*, at most 64 bytes. It
 * is a path component, so this keeps "/", "..", and hidden build directories out. */
static bool tpl_name_valid(const char *name)
{
        size_t n = 0;

        if (!name || !*name)
                return false;
        for (const char *p = name; *p; p++, n++) {
                bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                             (*p >= '0' && *p <= '9');

                if (n >= 64 || (!alnum && (n == 0 || (*p != '.' && *p != '_' && *p != '-'))))
                        return false;
        }
        return true;
}

/* snprintf that reports truncation as -ENAMETOOLONG. */
static int tpl_fmt(char *buf, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int tpl_fmt(char *buf, size_t len, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= len)
                return -ENAMETOOLONG;
        return 0;
}

/* mkdirat + exact mode + root ownership (mkdirat alone is subject to the umask). An
 * existing directory is accepted when exist_ok. */
static int tpl_mkdir_at(int dirfd, const char *path, mode_t mode, bool exist_ok)
{
        if (mkdirat(dirfd, path, 0700) < 0) {
                struct stat st;

                if (errno != EEXIST || !exist_ok)
                        return neg_errno();
                if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return neg_errno();
                return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
        }
        if (fchownat(dirfd, path, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
                return neg_errno();
        if (fchmodat(dirfd, path, mode, 0) < 0)
                return neg_errno();
        return 0;
}

/* symlinkat owned by root. */
static int tpl_symlink_at(const char *target, int dirfd, const char *path)
{
        if (symlinkat(target, dirfd, path) < 0)
                return neg_errno();
        if (fchownat(dirfd, path, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
                return neg_errno();
        return 0;
}

/* Create dirfd/path (must not exist) owned by root with exactly mode, holding content. */
static int tpl_write_at(int dirfd, const char *path, const char *content, mode_t mode)
{
        cleanup_close int fd = openat(dirfd, path,
                                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW |
                                              O_NOCTTY,
                                      0600);

        if (fd < 0)
                return neg_errno();
        if (fchown(fd, 0, 0) < 0 || fchmod(fd, mode) < 0)
                return neg_errno();
        return util_write_all(fd, content, strlen(content));
}

/* Copy the regular file src_dir/name to dst_dir/name with the given mode. */
static int tpl_copy_file(int src_dir, int dst_dir, const char *name, mode_t mode,
                         struct tpl_budget *b)
{
        cleanup_close int in = openat(src_dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        cleanup_close int out = -1;
        struct stat st;
        char buf[65536];

        if (in < 0)
                return neg_errno();
        if (fstat(in, &st) < 0)
                return neg_errno();
        if (!S_ISREG(st.st_mode))
                return 0; /* replaced by something else since we looked: skip it */
        if ((uint64_t)st.st_size > b->bytes)
                return -EFBIG;
        b->bytes -= (uint64_t)st.st_size;
        out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return neg_errno();
        if (fchown(out, 0, 0) < 0 || fchmod(out, mode) < 0)
                return neg_errno();
        for (;;) {
                ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);

                if (n == 0)
                        return 0;
                if (n > 0)
                        continue;
                if (errno == EINTR)
                        continue;
                if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
                        return neg_errno();
                break; /* not supported between these filesystems: plain copy */
        }
        for (;;) {
                ssize_t n = read(in, buf, sizeof(buf));
                int r;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                if (n == 0)
                        return 0;
                r = util_write_all(out, buf, (size_t)n);
                if (r < 0)
                        return r;
        }
}

static int tpl_copy_entry(int src_dir, int dst_dir, const char *name, unsigned depth,
                          struct tpl_budget *b);

/* Copy the directory src_dir/name (not followed if a symlink) recursively. */
static int tpl_copy_dir(int src_dir, int dst_dir, const char *name, mode_t mode, unsigned depth,
                        struct tpl_budget *b)
{
        cleanup_close int dfd = -1;
        int sfd, r = 0;
        struct dirent *e;
        DIR *d;

        if (depth >= TPL_COPY_MAX_DEPTH)
                return -ELOOP;
        r = tpl_mkdir_at(dst_dir, name, 0700, false);
        if (r < 0)
                return r;
        dfd = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                return neg_errno();
        sfd = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (sfd < 0)
                return neg_errno();
        d = fdopendir(sfd);
        if (!d) {
                r = neg_errno();
                close(sfd);
                return r;
        }
        while (r == 0) {
                errno = 0;
                e = readdir(d);
                if (!e) {
                        if (errno)
                                r = neg_errno();
                        break;
                }
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                r = tpl_copy_entry(dirfd(d), dfd, e->d_name, depth + 1, b);
        }
        closedir(d);
        if (r == 0 && fchmod(dfd, mode) < 0)
                r = neg_errno();
        return r;
}

/* Copy src_dir/name to dst_dir/name: a symlink as a symlink (never followed, so a link to
 * /etc/shadow copies only the link), a regular file with its mode (set-id bits dropped) if
 * it is world-readable (a file the host keeps private is not for sandboxes), a directory
 * recursively. Anything else is skipped, as is an entry that does not exist. */
static int tpl_copy_entry(int src_dir, int dst_dir, const char *name, unsigned depth,
                          struct tpl_budget *b)
{
        struct stat st;

        if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : neg_errno();
        if (b->entries == 0)
                return -EFBIG;
        b->entries--;
        if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t n = readlinkat(src_dir, name, target, sizeof(target) - 1);

                if (n < 0)
                        return neg_errno();
                target[n] = '\0';
                return tpl_symlink_at(target, dst_dir, name);
        }
        if (S_ISREG(st.st_mode)) {
                if (!(st.st_mode & S_IROTH))
                        return 0;
                return tpl_copy_file(src_dir, dst_dir, name, st.st_mode & 0777, b);
        }
        if (S_ISDIR(st.st_mode))
                return tpl_copy_dir(src_dir, dst_dir, name, st.st_mode & 07777, depth, b);
        return 0;
}

/* Copy host_etc/rel (rel may have directories in it: "ssl/certs/x") to dst_etc/rel. Missing
 * parents are made with the host's modes; if a parent on the host is not a directory (or
 * is missing), the entry is skipped. */
static int tpl_copy_path(int host_etc, int dst_etc, const char *rel, struct tpl_budget *b)
{
        char buf[PATH_MAX], *comp, *slash;
        int src = host_etc, dst = dst_etc;
        int r = 0;

        r = tpl_fmt(buf, sizeof(buf), "%s", rel);
        if (r < 0)
                return r;
        comp = buf;
        while ((slash = strchr(comp, '/'))) {
                struct stat st;
                int nsrc, ndst;

                *slash = '\0';
                if (fstatat(src, comp, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        goto out; /* nothing to copy */
                r = tpl_mkdir_at(dst, comp, st.st_mode & 07777, true);
                if (r < 0)
                        goto out;
                nsrc = openat(src, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (nsrc < 0) {
                        r = neg_errno();
                        goto out;
                }
                ndst = openat(dst, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (ndst < 0) {
                        r = neg_errno();
                        close(nsrc);
                        goto out;
                }
                if (src != host_etc)
                        close(src);
                if (dst != dst_etc)
                        close(dst);
                src = nsrc;
                dst = ndst;
                comp = slash + 1;
        }
        r = tpl_copy_entry(src, dst, comp, 0, b);
out:
        if (src != host_etc)
                close(src);
        if (dst != dst_etc)
                close(dst);
        return r;
}

/* Copy the allow-list from the host's /etc into dst_etc, plus every /etc/python3* that is a
 * directory (python3, python3.11, ...: site-wide configuration the interpreter reads). */
static int tpl_copy_host_etc(int dst_etc)
{
        struct tpl_budget b = { TPL_COPY_MAX_ENTRIES, TPL_COPY_MAX_BYTES };
        cleanup_close int host_etc = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct dirent *e;
        DIR *d;
        int fd, r = 0;

        if (host_etc < 0)
                return neg_errno();
        for (size_t i = 0; i < ARRAY_SIZE(tpl_etc_copies); i++) {
                r = tpl_copy_path(host_etc, dst_etc, tpl_etc_copies[i], &b);
                if (r < 0)
                        return r;
        }

        fd = openat(host_etc, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return neg_errno();
        d = fdopendir(fd);
        if (!d) {
                r = neg_errno();
                close(fd);
                return r;
        }
        while (r == 0 && (e = readdir(d))) {
                struct stat st;

                if (strncmp(e->d_name, "python3", 7) != 0)
                        continue;
                if (fstatat(host_etc, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISDIR(st.st_mode))
                        continue;
                r = tpl_copy_entry(host_etc, dst_etc, e->d_name, 0, &b);
        }
        closedir(d);
        return r;
}

/* Build the skeleton root in rootfs (an empty directory we own). */
static int tpl_make_skeleton(int rootfs)
{
        cleanup_close int etc = -1;
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(tpl_dirs); i++) {
                r = tpl_mkdir_at(rootfs, tpl_dirs[i].path, tpl_dirs[i].mode, false);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ARRAY_SIZE(tpl_links); i++) {
                r = tpl_symlink_at(tpl_links[i][1], rootfs, tpl_links[i][0]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ARRAY_SIZE(tpl_host_optional_libs); i++) {
                const char *name = tpl_host_optional_libs[i];
                char host[32], target[32];
                struct stat st;

                snprintf(host, sizeof(host), "/%s", name);
                snprintf(target, sizeof(target), "usr/%s", name);
                if (lstat(host, &st) < 0)
                        continue;
                r = tpl_symlink_at(target, rootfs, name);
                if (r < 0)
                        return r;
        }

        etc = openat(rootfs, "etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (etc < 0)
                return neg_errno();
        for (size_t i = 0; i < ARRAY_SIZE(tpl_etc_files); i++) {
                r = tpl_write_at(etc, tpl_etc_files[i][0], tpl_etc_files[i][1], 0644);
                if (r < 0)
                        return r;
        }
        return tpl_copy_host_etc(etc);
}

/* Fill the build directory: rootfs/, the marker and template.json. */
static int tpl_fill_build(int build)
{
        char json[256];
        cleanup_close int rootfs = -1;
        int r;

        r = tpl_mkdir_at(build, "rootfs", 0755, false);
        if (r < 0)
                return r;
        rootfs = openat(build, "rootfs", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (rootfs < 0)
                return neg_errno();
        r = tpl_make_skeleton(rootfs);
        if (r < 0)
                return r;
        r = tpl_write_at(build, TPL_MARKER_USR, "", 0644);
        if (r < 0)
                return r;
        snprintf(json, sizeof(json),
                 "{\"name\":\"" TPL_BASE "\",\"description\":\"host /usr (read-only) with a "
                 "generated /etc\",\"created_at\":%" PRId64 "}\n",
                 util_wall_s());
        r = tpl_write_at(build, TPL_JSON, json, 0644);
        if (r < 0)
                return r;
        /* mkdtemp made it 0700; the template directory is world-readable like a root. */
        if (fchmod(build, 0755) < 0)
                return neg_errno();
        return 0;
}

/* Remove build directories of crashed runs (older than TPL_STALE_S; younger ones may belong
 * to a concurrent call). Best effort. */
static void tpl_remove_stale(const char *templates)
{
        cleanup_close int fd = open(templates, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        time_t now = time(NULL);
        struct dirent *e;
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d)
                return;
        fd = -1; /* owned by d now */
        while ((e = readdir(d))) {
                char path[PATH_MAX];
                struct stat st;

                if (strncmp(e->d_name, TPL_BUILD_PREFIX, strlen(TPL_BUILD_PREFIX)) != 0)
                        continue;
                if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISDIR(st.st_mode) || now - st.st_mtime < TPL_STALE_S)
                        continue;
                if (tpl_fmt(path, sizeof(path), "%s/%s", templates, e->d_name) == 0)
                        util_rm_rf(path);
        }
        closedir(d);
}

/* Whether path is a directory (not a symlink to one). */
static bool tpl_is_dir(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Move the finished build into place: the whole directory in one rename when base/ does not
 * exist; else (base/ exists without rootfs/, e.g. made by hand) the markers first and
 * rootfs/ last, since rootfs/ appearing is what marks the template complete. Losing a race
 * to a concurrent builder is success. *ret_moved tells whether build itself became base (and
 * so no longer exists under its own name, which another builder's mkdtemp could reuse). */
static int tpl_commit(const char *build, const char *base, const char *base_rootfs,
                      bool *ret_moved)
{
        static const char *const parts[] = { TPL_MARKER_USR, TPL_JSON, "rootfs" };

        *ret_moved = false;
        if (rename(build, base) == 0) {
                *ret_moved = true;
                return 0;
        }
        if (errno != EEXIST && errno != ENOTEMPTY)
                return neg_errno();
        if (tpl_is_dir(base_rootfs))
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
                char from[PATH_MAX], to[PATH_MAX];
                int r = tpl_fmt(from, sizeof(from), "%s/%s", build, parts[i]);

                if (r == 0)
                        r = tpl_fmt(to, sizeof(to), "%s/%s", base, parts[i]);
                if (r < 0)
                        return r;
                if (rename(from, to) < 0) {
                        if ((errno == EEXIST || errno == ENOTEMPTY) && tpl_is_dir(base_rootfs))
                                return 0;
                        return neg_errno();
                }
        }
        return 0;
}

/* Assemble data_dir/templates/base if its rootfs is missing (see the file comment). 0 if it
 * exists or was built; on failure nothing half-built is left in base/. */
int tpl_ensure_base(const char *data_dir)
{
        char templates[PATH_MAX], base[PATH_MAX], base_rootfs[PATH_MAX], build[PATH_MAX];
        cleanup_close int bfd = -1;
        bool moved = false;
        int r;

        if (!data_dir || data_dir[0] != '/')
                return -EINVAL;
        r = tpl_fmt(templates, sizeof(templates), "%s/" TPL_DIR, data_dir);
        if (r == 0)
                r = tpl_fmt(base, sizeof(base), "%s/" TPL_BASE, templates);
        if (r == 0)
                r = tpl_fmt(base_rootfs, sizeof(base_rootfs), "%s/rootfs", base);
        if (r == 0)
                r = tpl_fmt(build, sizeof(build), "%s/" TPL_BUILD_PREFIX "XXXXXX", templates);
        if (r < 0)
                return r;
        if (tpl_is_dir(base_rootfs))
                return 0;

        r = util_mkdir_p(templates, 0755);
        if (r < 0)
                return r;
        tpl_remove_stale(templates);
        if (!mkdtemp(build))
                return neg_errno();
        bfd = open(build, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (bfd < 0)
                r = neg_errno();
        else
                r = tpl_fill_build(bfd);
        if (r == 0)
                r = tpl_commit(build, base, base_rootfs, &moved);
        if (!moved)
                util_rm_rf(build);
        return r;
}

/* data_dir/templates/NAME/rootfs into buf if it is a directory; -ENOENT if not, -EINVAL
 * for a name that is not a plain component. buf is written only on success. */
int tpl_rootfs_path(const char *data_dir, const char *name, char *buf, size_t len)
{
        char path[PATH_MAX];
        size_t n;
        int r;

        if (!data_dir || !buf || !tpl_name_valid(name))
                return -EINVAL;
        r = tpl_fmt(path, sizeof(path), "%s/" TPL_DIR "/%s/rootfs", data_dir, name);
        if (r < 0)
                return r;
        if (!tpl_is_dir(path))
                return -ENOENT;
        n = strlen(path);
        if (n >= len)
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        return 0;
}

/* Whether data_dir/templates/NAME/bind-host-usr exists (as a regular file). */
bool tpl_binds_host_usr(const char *data_dir, const char *name)
{
        char path[PATH_MAX];
        struct stat st;

        if (!data_dir || !tpl_name_valid(name))
                return false;
        if (tpl_fmt(path, sizeof(path), "%s/" TPL_DIR "/%s/" TPL_MARKER_USR, data_dir, name) < 0)
                return false;
        return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}
