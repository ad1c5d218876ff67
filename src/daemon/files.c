/* files.c - the file API. Every path is resolved by the kernel inside the sandbox's root:
 * the root is /proc/INIT_PID/root (checked against the init's start time, so a reused pid
 * cannot redirect us), and every lookup below it is openat2(RESOLVE_IN_ROOT |
 * RESOLVE_NO_MAGICLINKS), so `..`, absolute symlinks and /proc magic links planted by sandbox
 * code cannot lead outside. Operations run on threadpool threads with the thread's fsuid and
 * fsgid set to the sandbox user (setfsuid is per-thread): the kernel checks permissions as
 * that user, and new files belong to it. What uid 1001 cannot write, the API cannot either.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "b64.h"
#include "manager.h"
#include "paths.h"
#include "routes.h"
#include "runtime.h"
#include "util.h"

#define FILES_MAX_PATH 4096
#define FILES_MAX_LIST 100000
#define FILES_MAX_BATCH 1000
#define FILES_IO_CHUNK (1u << 20)
#define FILES_MAX_QUEUED (4u << 20)

enum fs_kind { F_WRITE, F_READ, F_LIST, F_STAT, F_EXISTS, F_MKDIR, F_REMOVE, F_MOVE, F_OPEN_READ,
               F_UPLOAD_OPEN, F_UPLOAD_FINISH };

struct fs_file {
        char *path;
        const char *b64; /* borrowed from the request JSON */
        size_t b64_len;
        int mode;
        size_t size; /* written size */
};

/* One file operation, run on the threadpool. */
struct fsop {
        uv_work_t w;
        struct reqctx *c;
        enum fs_kind kind;
        pid_t pid;
        uint64_t starttime;
        uint32_t uid;
        char path[FILES_MAX_PATH + 1];
        char path2[FILES_MAX_PATH + 1];
        bool recursive;
        int mode;
        uint64_t max_read;
        struct fs_file *files;
        size_t n_files;
        json_t *body; /* request JSON kept alive for borrowed strings */
        /* results */
        int r;
        char err[256];
        json_t *result;
        int fd;
        uint64_t size;
        /* upload */
        char tmpname[64];
        int parent_fd;
        struct upload *upload; /* the upload this op belongs to */
};

/* ---- helpers that run on worker threads ---- */

static int sb_root_open(pid_t pid, uint64_t starttime, int *ret_fd)
{
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/root", (int)pid);
        int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -ESRCH;
        /* Checked after the open: if the pid was reused before it, the start time differs. */
        if (util_proc_starttime(pid) != starttime) {
                close(fd);
                return -ESRCH;
        }
        *ret_fd = fd;
        return 0;
}

static int openat2_in_root(int rootfd, const char *path, int flags, int mode)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .mode = (flags & O_CREAT) ? (uint64_t)mode : 0,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        /* Relative to the root: strip leading slashes (RESOLVE_IN_ROOT treats "/" as the root
         * anyway; this keeps "" out of the call). */
        while (*path == '/')
                path++;
        if (!*path)
                path = ".";
        /* RESOLVE_IN_ROOT answers EAGAIN when a rename or mount anywhere on the host raced
         * the lookup (openat2(2)): the lookup is safe to retry. Bounded. */
        long fd;
        int tries = 0;
        do
                fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
        while (fd < 0 && errno == EAGAIN && ++tries < 64);
        return fd < 0 ? neg_errno() : (int)fd;
}

/* Become the sandbox user for filesystem checks on this thread. */
static void as_user(uint32_t uid)
{
        setfsgid(uid);
        setfsuid(uid);
}

static void as_root(void)
{
        setfsuid(0);
        setfsgid(0);
}

/* mkdir -p inside the root; returns an O_PATH fd of the directory. */
static int mkdir_p(int rootfd, const char *path, int *ret_fd)
{
        char prefix[FILES_MAX_PATH + 1];
        int fd = openat2_in_root(rootfd, path, O_PATH | O_DIRECTORY, 0);
        if (fd >= 0) {
                *ret_fd = fd;
                return 0;
        }
        if (fd != -ENOENT)
                return fd;
        /* Walk from the root, creating what is missing. mkdirat() gets one component and a
         * directory fd that was itself resolved inside the root, so it cannot escape. */
        int cur = openat2_in_root(rootfd, "/", O_PATH | O_DIRECTORY, 0);
        if (cur < 0)
                return cur;
        size_t len = strlen(path), i = 0;
        while (i < len) {
                while (i < len && path[i] == '/')
                        i++;
                size_t j = i;
                while (j < len && path[j] != '/')
                        j++;
                if (j == i)
                        break;
                char comp[256];
                if (j - i > 255) {
                        close(cur);
                        return -ENAMETOOLONG;
                }
                memcpy(comp, path + i, j - i);
                comp[j - i] = '\0';
                memcpy(prefix, path, j);
                prefix[j] = '\0';
                int next = openat2_in_root(rootfd, prefix, O_PATH | O_DIRECTORY, 0);
                if (next == -ENOENT) {
                        if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
                                int e = neg_errno();
                                close(cur);
                                return e;
                        }
                        next = openat2_in_root(rootfd, prefix, O_PATH | O_DIRECTORY, 0);
                }
                close(cur);
                if (next < 0)
                        return next;
                cur = next;
                i = j;
        }
        *ret_fd = cur;
        return 0;
}

static const char *type_name(mode_t m)
{
        if (S_ISREG(m))
                return "file";
        if (S_ISDIR(m))
                return "directory";
        if (S_ISLNK(m))
                return "symlink";
        return "other";
}

static json_t *stat_json(const char *path, const char *name, const struct stat *st)
{
        char mode[16];
        snprintf(mode, sizeof(mode), "%04o", st->st_mode & 07777);
        return json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "name", name, "path", path, "type",
                         type_name(st->st_mode), "size", (json_int_t)st->st_size, "mode", mode,
                         "modified", json_time(st->st_mtim.tv_sec));
}

/* Remove name below dirfd recursively, never following symlinks. Depth is bounded. */
static int rm_tree_at(int parent, const char *name, int depth)
{
        struct stat st;
        if (depth > 256)
                return -ELOOP;
        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return neg_errno();
        if (!S_ISDIR(st.st_mode))
                return unlinkat(parent, name, 0) < 0 ? neg_errno() : 0;
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return neg_errno();
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return neg_errno();
        }
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                r = rm_tree_at(dirfd(d), de->d_name, depth + 1);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0)
                return r;
        return unlinkat(parent, name, AT_REMOVEDIR) < 0 ? neg_errno() : 0;
}

static int do_write_one(int rootfd, struct fs_file *f)
{
        char parent[FILES_MAX_PATH + 1], base[256];
        int r = paths_split(f->path, parent, sizeof(parent), base, sizeof(base));
        if (r < 0)
                return r;
        cleanup_free uint8_t *data = malloc(f->b64_len / 4 * 3 + 4);
        size_t len;
        if (!data)
                return -ENOMEM;
        if (b64_decode(f->b64, f->b64_len, data, &len) < 0)
                return -EBADMSG;
        int pfd;
        r = mkdir_p(rootfd, parent, &pfd);
        if (r < 0)
                return r;
        close(pfd);
        cleanup_close int fd = openat2_in_root(rootfd, f->path, O_WRONLY | O_CREAT | O_TRUNC,
                                               f->mode);
        if (fd < 0)
                return fd;
        if (fchmod(fd, (mode_t)f->mode) < 0)
                return neg_errno();
        r = util_write_all(fd, data, len);
        if (r < 0)
                return r;
        f->size = len;
        return 0;
}

static void fs_run(uv_work_t *w)
{
        struct fsop *op = (struct fsop *)w;
        cleanup_close int rootfd = -1;
        char parent[FILES_MAX_PATH + 1], base[256];
        struct stat st;
        int fd, r;

        /* op->fd is -1 from fsop_new, except for F_UPLOAD_FINISH, which uses the temp file
         * that F_UPLOAD_OPEN left there. */
        r = sb_root_open(op->pid, op->starttime, &rootfd);
        if (r < 0) {
                op->r = r;
                return;
        }
        as_user(op->uid);
        switch (op->kind) {
        case F_WRITE:
                r = 0;
                for (size_t i = 0; i < op->n_files && r == 0; i++) {
                        r = do_write_one(rootfd, &op->files[i]);
                        if (r < 0)
                                snprintf(op->err, sizeof(op->err), "%s", op->files[i].path);
                }
                break;
        case F_READ:
        case F_OPEN_READ:
                fd = openat2_in_root(rootfd, op->path, O_RDONLY, 0);
                if (fd < 0) {
                        r = fd;
                        break;
                }
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
                        close(fd);
                        break;
                }
                op->size = (uint64_t)st.st_size;
                if (op->kind == F_OPEN_READ) {
                        op->fd = fd;
                        r = 0;
                        break;
                }
                if (op->size > op->max_read) {
                        close(fd);
                        r = -EFBIG;
                        break;
                }
                {
                        uint8_t *data = malloc(op->size + 1);
                        char *enc = malloc(b64_encoded_size(op->size));
                        ssize_t n = data ? read(fd, data, op->size) : -1;
                        size_t got = 0;
                        while (n > 0) {
                                got += (size_t)n;
                                if (got >= op->size)
                                        break;
                                n = read(fd, data + got, op->size - got);
                        }
                        if (!data || !enc || n < 0) {
                                r = data && enc ? neg_errno() : -ENOMEM;
                        } else {
                                b64_encode(data, got, enc);
                                op->result = json_pack("{s:s, s:s, s:I}", "path", op->path,
                                                       "content", enc, "size", (json_int_t)got);
                                r = op->result ? 0 : -ENOMEM;
                        }
                        free(data);
                        free(enc);
                        close(fd);
                }
                break;
        case F_LIST: {
                fd = openat2_in_root(rootfd, op->path, O_RDONLY | O_DIRECTORY, 0);
                if (fd < 0) {
                        r = fd;
                        break;
                }
                DIR *d = fdopendir(fd);
                if (!d) {
                        r = neg_errno();
                        close(fd);
                        break;
                }
                json_t *arr = json_array();
                struct dirent *de;
                size_t n = 0;
                r = 0;
                while ((de = readdir(d)) && n < FILES_MAX_LIST) {
                        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                                continue;
                        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                continue;
                        char full[FILES_MAX_PATH + 260];
                        size_t pl = strlen(op->path);
                        snprintf(full, sizeof(full), "%s%s%s", op->path,
                                 pl && op->path[pl - 1] == '/' ? "" : "/", de->d_name);
                        json_array_append_new(arr, stat_json(full, de->d_name, &st));
                        n++;
                }
                closedir(d);
                op->result = json_pack("{s:s, s:o, s:b}", "path", op->path, "entries", arr,
                                       "truncated", n >= FILES_MAX_LIST);
                break;
        }
        case F_STAT:
        case F_EXISTS:
                if (paths_is_root(op->path)) {
                        r = fstat(rootfd, &st) < 0 ? neg_errno() : 0;
                        snprintf(base, sizeof(base), "/");
                } else {
                        r = paths_split(op->path, parent, sizeof(parent), base, sizeof(base));
                        if (r == 0) {
                                fd = openat2_in_root(rootfd, parent, O_PATH | O_DIRECTORY, 0);
                                r = fd < 0 ? fd : 0;
                                if (fd >= 0) {
                                        if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                                r = neg_errno();
                                        close(fd);
                                }
                        }
                }
                if (op->kind == F_EXISTS) {
                        if (r == 0 || r == -ENOENT || r == -ENOTDIR) {
                                op->result = json_pack("{s:s, s:b}", "path", op->path, "exists",
                                                       r == 0);
                                r = 0;
                        }
                } else if (r == 0) {
                        op->result = stat_json(op->path, base, &st);
                        json_object_set_new(op->result, "uid",
                                            json_integer(st.st_uid >= op->uid - 1001 &&
                                                                         st.st_uid < op->uid - 1001 + RT_UID_RANGE
                                                                 ? st.st_uid - (op->uid - 1001)
                                                                 : 65534));
                        json_object_set_new(op->result, "gid",
                                            json_integer(st.st_gid >= op->uid - 1001 &&
                                                                         st.st_gid < op->uid - 1001 + RT_UID_RANGE
                                                                 ? st.st_gid - (op->uid - 1001)
                                                                 : 65534));
                }
                break;
        case F_MKDIR:
                r = mkdir_p(rootfd, op->path, &fd);
                if (r == 0) {
                        close(fd);
                        op->result = json_pack("{s:s, s:b}", "path", op->path, "created", 1);
                }
                break;
        case F_REMOVE:
                r = paths_split(op->path, parent, sizeof(parent), base, sizeof(base));
                if (r < 0)
                        break;
                fd = openat2_in_root(rootfd, parent, O_PATH | O_DIRECTORY, 0);
                if (fd < 0) {
                        r = fd;
                        break;
                }
                if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        r = neg_errno();
                else if (S_ISDIR(st.st_mode))
                        r = op->recursive ? rm_tree_at(fd, base, 0)
                                          : (unlinkat(fd, base, AT_REMOVEDIR) < 0 ? neg_errno() : 0);
                else
                        r = unlinkat(fd, base, 0) < 0 ? neg_errno() : 0;
                close(fd);
                if (r == 0)
                        op->result = json_pack("{s:s, s:b}", "path", op->path, "removed", 1);
                break;
        case F_MOVE: {
                char parent2[FILES_MAX_PATH + 1], base2[256];
                int fd2;
                r = paths_split(op->path, parent, sizeof(parent), base, sizeof(base));
                if (r == 0)
                        r = paths_split(op->path2, parent2, sizeof(parent2), base2, sizeof(base2));
                if (r < 0)
                        break;
                fd = openat2_in_root(rootfd, parent, O_PATH | O_DIRECTORY, 0);
                if (fd < 0) {
                        r = fd;
                        break;
                }
                r = mkdir_p(rootfd, parent2, &fd2);
                if (r == 0) {
                        r = renameat(fd, base, fd2, base2) < 0 ? neg_errno() : 0;
                        close(fd2);
                }
                close(fd);
                if (r == 0)
                        op->result = json_pack("{s:s, s:s}", "from", op->path, "to", op->path2);
                break;
        }
        case F_UPLOAD_OPEN: {
                r = paths_split(op->path, parent, sizeof(parent), base, sizeof(base));
                if (r < 0)
                        break;
                r = mkdir_p(rootfd, parent, &fd);
                if (r < 0)
                        break;
                /* Reopen the parent for real (not O_PATH) is not needed: *at() calls take
                 * O_PATH dirfds. The temp file is renamed over the target at the end. */
                uint8_t rnd[8];
                util_random(rnd, sizeof(rnd));
                char hex[17];
                util_hex(rnd, sizeof(rnd), hex);
                snprintf(op->tmpname, sizeof(op->tmpname), ".warren-upload-%s", hex);
                int tfd = openat(fd, op->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                          O_CLOEXEC,
                                 0600);
                if (tfd < 0) {
                        r = neg_errno();
                        close(fd);
                        break;
                }
                op->parent_fd = fd;
                op->fd = tfd;
                r = 0;
                break;
        }
        case F_UPLOAD_FINISH:
                snprintf(base, sizeof(base), "%s", strrchr(op->path, '/') + 1);
                if (fchmod(op->fd, (mode_t)op->mode) < 0)
                        r = neg_errno();
                else if (renameat(op->parent_fd, op->tmpname, op->parent_fd, base) < 0)
                        r = neg_errno();
                else
                        r = 0;
                if (r < 0)
                        unlinkat(op->parent_fd, op->tmpname, 0);
                break;
        }
        as_root();
        op->r = r;
}

static void fsop_free(void *p)
{
        struct fsop *op = p;
        if (op->fd >= 0)
                close(op->fd);
        if (op->kind == F_UPLOAD_OPEN || op->kind == F_UPLOAD_FINISH) {
                if (op->parent_fd >= 0)
                        close(op->parent_fd);
        }
        for (size_t i = 0; i < op->n_files; i++)
                free(op->files[i].path);
        free(op->files);
        json_decref(op->body);
        json_decref(op->result);
        free(op);
}

static void reply_fs_error(struct reqctx *c, struct fsop *op)
{
        int r = op->r;
        if (r == -ESRCH) {
                reply_error(c, 409, "conflict", "the sandbox is not running");
                return;
        }
        if (r == -EBADMSG) {
                reply_error(c, 400, "invalid_request", "files: %s: content is not valid base64",
                            op->err);
                return;
        }
        if (r == -EFBIG) {
                reply_error(c, 413, "payload_too_large",
                            "%s is larger than MAX_READ_BYTES; use files/download", op->path);
                return;
        }
        reply_errno(c, r, op->err[0] ? op->err : op->path);
}

/* ---- download (streamed) ---- */

struct dl {
        struct reqctx *c;
        struct fsop *op;
        uv_fs_t fs;
        char *buf;
        uint64_t off;
        bool reading;
        bool waiting_drain;
        bool aborted;
};

static void dl_read_next(struct dl *d);

static void dl_finish(struct dl *d, bool ok)
{
        struct reqctx *c = d->c;
        if (ok)
                http_respond_end(c->req);
        else
                http_respond_end(c->req); /* connection gone or read error: just end */
        free(d->buf);
        c->op = d->op; /* fsop_free closes the fd */
        c->op_free = fsop_free;
        free(d);
        reply_done(c, 200);
}

static void dl_on_read(uv_fs_t *fs)
{
        struct dl *d = fs->data;
        ssize_t n = fs->result;
        uv_fs_req_cleanup(fs);
        d->reading = false;
        if (d->aborted || n <= 0) {
                dl_finish(d, n == 0);
                return;
        }
        d->off += (uint64_t)n;
        size_t queued = http_respond_write(d->c->req, d->buf, (size_t)n);
        if (!http_req_connected(d->c->req)) {
                dl_finish(d, false);
                return;
        }
        if (d->off >= d->op->size) {
                dl_finish(d, true);
                return;
        }
        if (queued > FILES_MAX_QUEUED) {
                d->waiting_drain = true;
                return;
        }
        dl_read_next(d);
}

static void dl_read_next(struct dl *d)
{
        uint64_t left = d->op->size - d->off;
        uv_buf_t b = uv_buf_init(d->buf, (unsigned)(left < FILES_IO_CHUNK ? left : FILES_IO_CHUNK));
        d->reading = true;
        int r = uv_fs_read(d->c->app->loop, &d->fs, d->op->fd, &b, 1, (int64_t)d->off, dl_on_read);
        if (r < 0) {
                d->reading = false;
                dl_finish(d, false);
        }
}

static void dl_on_drain(struct http_req *req)
{
        struct reqctx *c = req->user;
        struct dl *d = c ? c->op : NULL;
        if (d && d->waiting_drain && !d->reading) {
                d->waiting_drain = false;
                dl_read_next(d);
        }
}

static void dl_on_abort(struct http_req *req)
{
        struct reqctx *c = req->user;
        struct dl *d = c ? c->op : NULL;
        if (!d)
                return;
        d->aborted = true;
        if (!d->reading)
                dl_finish(d, false);
}

static void dl_op_free(void *p)
{
        struct dl *d = p;
        free(d->buf);
        fsop_free(d->op);
        free(d);
}

static void start_download(struct reqctx *c, struct fsop *op)
{
        struct dl *d = calloc(1, sizeof(*d));
        char *buf = malloc(FILES_IO_CHUNK);
        if (!d || !buf) {
                free(d);
                free(buf);
                reply_errno(c, -ENOMEM, "download");
                return;
        }
        d->c = c;
        d->op = op;
        d->buf = buf;
        d->fs.data = d;
        c->op = d;
        c->op_free = dl_op_free;
        c->req->on_abort = dl_on_abort;
        http_req_set_on_drain(c->req, dl_on_drain);
        http_respond_start(c->req, 200, "application/octet-stream", (int64_t)op->size);
        if (op->size == 0 || c->req->method == HTTP_M_HEAD) {
                dl_finish(d, true);
                return;
        }
        dl_read_next(d);
}

/* ---- dispatch of the simple operations ---- */

static void fs_done(uv_work_t *w, int status)
{
        struct fsop *op = (struct fsop *)w;
        struct reqctx *c = op->c;

        if (status == UV_ECANCELED)
                op->r = -ECANCELED;
        if (op->r < 0) {
                c->op = op;
                c->op_free = fsop_free;
                reply_fs_error(c, op);
                return;
        }
        if (op->kind == F_OPEN_READ) {
                start_download(c, op);
                return;
        }
        json_t *res;
        if (op->kind == F_WRITE) {
                res = json_array();
                for (size_t i = 0; i < op->n_files; i++)
                        json_array_append_new(res, json_pack("{s:s, s:I}", "path",
                                                             op->files[i].path, "size",
                                                             (json_int_t)op->files[i].size));
                res = json_pack("{s:o}", "files", res);
        } else {
                res = op->result;
                op->result = NULL;
        }
        c->op = op;
        c->op_free = fsop_free;
        reply_json(c, 200, res);
}

/* Validate a sandbox path from the API: absolute, bounded, no NUL. */
static int check_path(struct reqctx *c, const char *p, const char *field)
{
        if (paths_check(p) < 0) {
                reply_error(c, 400, "invalid_request",
                            "%s: expected an absolute path of at most %d bytes", field, PATHS_MAX);
                return -EINVAL;
        }
        return 0;
}

static struct fsop *fsop_new(struct reqctx *c, const struct store_sandbox *rec,
                             struct sandbox *sb, enum fs_kind kind)
{
        struct fsop *op = calloc(1, sizeof(*op));
        if (!op)
                return NULL;
        op->c = c;
        op->kind = kind;
        op->pid = sb->init_pid;
        op->starttime = sb->init_starttime;
        op->uid = rec->uid_base + RT_SANDBOX_UID;
        op->fd = -1;
        op->parent_fd = -1;
        op->mode = 0644;
        op->max_read = c->app->cfg.max_read_bytes;
        return op;
}

static int parse_mode(json_t *v, int *ret)
{
        if (!v || json_is_null(v))
                return 0;
        long m;
        if (json_is_integer(v)) {
                m = (long)json_integer_value(v);
        } else if (json_is_string(v)) {
                char *end;
                m = strtol(json_string_value(v), &end, 8);
                if (!*json_string_value(v) || *end)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (m < 0 || m > 07777)
                return -EINVAL;
        *ret = (int)m;
        return 0;
}

static void submit(struct reqctx *c, struct fsop *op)
{
        int r = uv_queue_work(c->app->loop, &op->w, fs_run, fs_done);
        if (r < 0) {
                fsop_free(op);
                reply_errno(c, r, "files");
        }
}

/* Get the running sandbox for a file route; answers 404/409 itself. */
static struct sandbox *running_sandbox(struct reqctx *c, const char *id,
                                       struct store_sandbox *rec)
{
        if (lookup_sandbox(c, id, rec) < 0) {
                reply_not_found(c);
                return NULL;
        }
        struct sandbox *sb = mgr_find(c->app->mgr, id);
        if (!sb || sb->state != SB_RUNNING) {
                store_sandbox_clear(rec);
                reply_error(c, 409, "conflict", "the sandbox is not running");
                return NULL;
        }
        return sb;
}

static void files_write(struct reqctx *c, const struct store_sandbox *rec, struct sandbox *sb)
{
        json_t *body = parse_body(c, true);
        if (!body)
                return;
        json_t *files = json_object_get(body, "files");
        if (!json_is_array(files) || json_array_size(files) == 0 ||
            json_array_size(files) > FILES_MAX_BATCH) {
                json_decref(body);
                reply_error(c, 400, "invalid_request",
                            "files: expected a non-empty array of {path, content}");
                return;
        }
        struct fsop *op = fsop_new(c, rec, sb, F_WRITE);
        if (!op || !(op->files = calloc(json_array_size(files), sizeof(*op->files)))) {
                free(op);
                json_decref(body);
                reply_errno(c, -ENOMEM, "files");
                return;
        }
        op->body = body;
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f)
        {
                json_t *p = json_object_get(f, "path"), *content = json_object_get(f, "content");
                int mode = 0644;
                if (!json_is_object(f) || !json_is_string(p) || !json_is_string(content) ||
                    json_string_value(p)[0] != '/' || json_string_length(p) > FILES_MAX_PATH) {
                        fsop_free(op);
                        reply_error(c, 400, "invalid_request",
                                    "files[%zu]: expected {\"path\": absolute path, \"content\": "
                                    "base64 string}",
                                    i);
                        return;
                }
                if (parse_mode(json_object_get(f, "mode"), &mode) < 0) {
                        fsop_free(op);
                        reply_error(c, 400, "invalid_request",
                                    "files[%zu].mode: expected an octal mode like \"0644\"", i);
                        return;
                }
                /* Validate all base64 before writing anything: a bad file writes nothing. */
                size_t blen = json_string_length(content);
                uint8_t *tmp = malloc(blen / 4 * 3 + 4);
                size_t dl;
                int bad = !tmp || b64_decode(json_string_value(content), blen, tmp, &dl) < 0;
                free(tmp);
                if (bad) {
                        fsop_free(op);
                        reply_error(c, 400, "invalid_request",
                                    "files[%zu].content: not valid base64", i);
                        return;
                }
                op->files[i].path = strdup(json_string_value(p));
                op->files[i].b64 = json_string_value(content);
                op->files[i].b64_len = blen;
                op->files[i].mode = mode;
                op->n_files = i + 1;
        }
        submit(c, op);
}

void files_route(struct reqctx *c, const char *id, const char *rest)
{
        struct store_sandbox rec = {};
        struct sandbox *sb;
        int m = c->req->method;
        enum fs_kind kind;
        cleanup_free char *path = NULL;

        if (!*rest && m != HTTP_M_GET && m != HTTP_M_POST)
                goto bad_method;
        sb = running_sandbox(c, id, &rec);
        if (!sb)
                return;
        if (!*rest && m == HTTP_M_POST) {
                files_write(c, &rec, sb);
                goto out;
        }
        if ((!*rest || !strcmp(rest, "/download") || !strcmp(rest, "/list") ||
             !strcmp(rest, "/stat") || !strcmp(rest, "/exists"))) {
                if (m != HTTP_M_GET && m != HTTP_M_HEAD)
                        goto bad_method_rec;
                kind = !*rest                         ? F_READ
                       : !strcmp(rest, "/download") ? F_OPEN_READ
                       : !strcmp(rest, "/list")     ? F_LIST
                       : !strcmp(rest, "/stat")     ? F_STAT
                                                    : F_EXISTS;
                if (http_req_query(c->req, "path", &path) < 0) {
                        if (kind == F_LIST)
                                path = strdup("/workspace");
                        else {
                                reply_error(c, 400, "invalid_request", "path: required");
                                goto out;
                        }
                }
                if (!path || check_path(c, path, "path") < 0) {
                        if (!path)
                                reply_errno(c, -ENOMEM, "files");
                        goto out;
                }
                struct fsop *op = fsop_new(c, &rec, sb, kind);
                if (!op) {
                        reply_errno(c, -ENOMEM, "files");
                        goto out;
                }
                snprintf(op->path, sizeof(op->path), "%s", path);
                submit(c, op);
                goto out;
        }
        if (!strcmp(rest, "/mkdir") || !strcmp(rest, "/remove") || !strcmp(rest, "/move")) {
                if (m != HTTP_M_POST)
                        goto bad_method_rec;
                json_t *body = parse_body(c, true);
                if (!body)
                        goto out;
                kind = !strcmp(rest, "/mkdir") ? F_MKDIR : !strcmp(rest, "/remove") ? F_REMOVE
                                                                                    : F_MOVE;
                const char *p1 = NULL, *p2 = NULL;
                if (kind == F_MOVE) {
                        p1 = json_string_value(json_object_get(body, "from"));
                        p2 = json_string_value(json_object_get(body, "to"));
                        if (!p1)
                                p1 = json_string_value(json_object_get(body, "source"));
                        if (!p2)
                                p2 = json_string_value(json_object_get(body, "destination"));
                } else {
                        p1 = json_string_value(json_object_get(body, "path"));
                }
                if (check_path(c, p1, kind == F_MOVE ? "from" : "path") < 0 ||
                    (kind == F_MOVE && check_path(c, p2, "to") < 0)) {
                        json_decref(body);
                        goto out;
                }
                struct fsop *op = fsop_new(c, &rec, sb, kind);
                if (!op) {
                        json_decref(body);
                        reply_errno(c, -ENOMEM, "files");
                        goto out;
                }
                snprintf(op->path, sizeof(op->path), "%s", p1);
                if (p2)
                        snprintf(op->path2, sizeof(op->path2), "%s", p2);
                op->recursive = json_is_true(json_object_get(body, "recursive"));
                json_decref(body);
                if (kind == F_REMOVE && paths_is_root(op->path)) {
                        fsop_free(op);
                        reply_error(c, 400, "invalid_request", "path: refusing to remove /");
                        goto out;
                }
                submit(c, op);
                goto out;
        }
        store_sandbox_clear(&rec);
        reply_error(c, 404, "not_found", "no route for %s", c->req->path);
        return;
bad_method_rec:
        store_sandbox_clear(&rec);
bad_method:
        reply_error(c, 405, "method_not_allowed", "method not allowed on %s", c->req->path);
        return;
out:
        store_sandbox_clear(&rec);
}

/* ---- upload (streamed body) ----
 * Body chunks are appended to a buffer; one write at a time goes to the threadpool. Reading
 * from the socket pauses while the buffer holds FILES_IO_CHUNK or more, so memory stays
 * bounded whatever the client sends. The data goes to a temporary file that is renamed over
 * the target only when the whole body has arrived. */

struct upload {
        struct reqctx *c;
        struct fsop *op; /* open/finish operations and the fds */
        char *buf, *wbuf;  /* filling buffer, buffer being written (a worker reads it) */
        size_t len, cap, wcap;
        uv_fs_t fs;
        uint64_t written;
        uint64_t limit;
        bool open;       /* temp file ready */
        bool writing;
        bool body_done;
        bool failed;     /* answered with an error already */
        bool paused;
        bool finishing;
        bool opening;    /* the open runs on the threadpool */
        bool orphan;     /* answered and released while a worker still used it */
};

static void up_pump(struct upload *u);

/* Free an upload now, or mark it so that the pending worker completion frees it. */
static void up_free(void *p)
{
        struct upload *u = p;
        if (u->opening || u->writing || u->finishing) {
                u->orphan = true;
                return;
        }
        if (u->op) {
                if (u->op->fd >= 0 && u->op->parent_fd >= 0 && u->op->tmpname[0] &&
                    u->op->kind != F_UPLOAD_FINISH)
                        unlinkat(u->op->parent_fd, u->op->tmpname, 0);
                fsop_free(u->op);
        }
        free(u->buf);
        free(u->wbuf);
        free(u);
}

static void up_fail(struct upload *u, int err, const char *what)
{
        if (u->failed)
                return;
        u->failed = true;
        if (u->paused) {
                http_req_resume(u->c->req);
                u->paused = false;
        }
        reply_errno(u->c, err, what);
}

static void up_finish_done(uv_work_t *w, int status)
{
        struct fsop *op = (struct fsop *)w;
        struct upload *u = op->upload;
        u->finishing = false;
        if (u->orphan) {
                up_free(u);
                return;
        }
        struct reqctx *c = u->c;
        if (op->r < 0) {
                up_fail(u, op->r, op->path);
                return;
        }
        u->op->tmpname[0] = '\0'; /* renamed: nothing to clean */
        reply_json(c, 200, json_pack("{s:s, s:I}", "path", op->path, "size",
                                     (json_int_t)u->written));
}

static void up_on_write(uv_fs_t *fs)
{
        struct upload *u = fs->data;
        ssize_t n = fs->result;
        uv_fs_req_cleanup(fs);
        u->writing = false;
        if (u->orphan) {
                up_free(u);
                return;
        }
        if (u->failed)
                return;
        if (n < 0) {
                up_fail(u, (int)n, u->op->path);
                return;
        }
        u->written += (uint64_t)n;
        up_pump(u);
}

/* Start the next write, the final rename, or resume reading, as the state allows. */
static void up_pump(struct upload *u)
{
        if (u->failed || !u->open || u->writing || u->finishing)
                return;
        if (u->len > 0) {
                char *t = u->wbuf;
                size_t tcap = u->wcap;
                u->wbuf = u->buf;
                u->wcap = u->cap;
                u->buf = t;
                u->cap = tcap;
                size_t n = u->len;
                u->len = 0;
                uv_buf_t b = uv_buf_init(u->wbuf, (unsigned)n);
                u->writing = true;
                u->fs.data = u;
                int r = uv_fs_write(u->c->app->loop, &u->fs, u->op->fd, &b, 1, -1, up_on_write);
                if (r < 0) {
                        u->writing = false;
                        up_fail(u, r, u->op->path);
                        return;
                }
                /* The filling buffer is free again: let the socket flow. */
                if (u->paused && !u->body_done) {
                        u->paused = false;
                        http_req_resume(u->c->req);
                }
                return;
        }
        if (u->body_done) {
                u->finishing = true;
                u->op->kind = F_UPLOAD_FINISH;
                int r = uv_queue_work(u->c->app->loop, &u->op->w, fs_run, up_finish_done);
                if (r < 0) {
                        u->finishing = false;
                        up_fail(u, r, u->op->path);
                }
        }
}

static int up_on_body(struct http_req *req, const char *data, size_t len)
{
        struct reqctx *c = req->user;
        struct upload *u = c ? c->op : NULL;
        if (!u || u->failed)
                return -ECANCELED;
        if (u->written + u->len + len > u->limit) {
                up_fail(u, -EFBIG, "upload");
                return -EFBIG;
        }
        if (u->len + len > u->cap) {
                /* Only the filling buffer grows: the other one may be under a write. Reading
                 * pauses at FILES_IO_CHUNK, so this stays near one chunk plus one read. */
                size_t ncap = u->cap * 2;
                while (ncap < u->len + len)
                        ncap *= 2;
                char *nb = realloc(u->buf, ncap);
                if (!nb) {
                        up_fail(u, -ENOMEM, "upload");
                        return -ENOMEM;
                }
                u->buf = nb;
                u->cap = ncap;
        }
        memcpy(u->buf + u->len, data, len);
        u->len += len;
        if (u->len >= FILES_IO_CHUNK && !u->paused) {
                u->paused = true;
                http_req_pause(req);
        }
        up_pump(u);
        return 0;
}

static void up_on_abort(struct http_req *req)
{
        struct reqctx *c = req->user;
        struct upload *u = c ? c->op : NULL;
        if (!u || u->failed)
                return;
        /* Nothing to keep: the temp file is removed when the upload is freed (deferred by
         * up_free while a worker still uses it). */
        u->failed = true;
        reply_error(c, 499, "client_closed", "client closed the request");
}

static void up_open_done(uv_work_t *w, int status)
{
        struct fsop *op = (struct fsop *)w;
        struct upload *u = op->upload;
        u->opening = false;
        if (u->orphan) {
                up_free(u);
                return;
        }
        if (op->r < 0) {
                u->failed = false;
                if (u->paused) {
                        http_req_resume(u->c->req);
                        u->paused = false;
                }
                struct reqctx *c = u->c;
                c->op = u;
                reply_fs_error(c, op);
                return;
        }
        u->open = true;
        if (u->failed)
                return;
        if (u->paused && u->len < FILES_IO_CHUNK) {
                u->paused = false;
                http_req_resume(u->c->req);
        }
        up_pump(u);
}

enum http_body_mode files_upload_headers(struct reqctx *c, const char *id)
{
        struct store_sandbox rec = {};
        cleanup_free char *path = NULL, *mode = NULL;
        struct sandbox *sb = running_sandbox(c, id, &rec);
        if (!sb)
                return HTTP_BODY_ANSWERED;
        if (http_req_query(c->req, "path", &path) < 0 || check_path(c, path, "path") < 0) {
                if (path == NULL)
                        reply_error(c, 400, "invalid_request", "path: required");
                store_sandbox_clear(&rec);
                return HTTP_BODY_ANSWERED;
        }
        if (c->req->content_length != UINT64_MAX &&
            c->req->content_length > c->app->cfg.max_upload) {
                store_sandbox_clear(&rec);
                reply_error(c, 413, "payload_too_large", "upload larger than MAX_UPLOAD");
                return HTTP_BODY_ANSWERED;
        }
        struct fsop *op = fsop_new(c, &rec, sb, F_UPLOAD_OPEN);
        struct upload *u = calloc(1, sizeof(*u));
        store_sandbox_clear(&rec);
        if (!op || !u || !(u->buf = malloc(FILES_IO_CHUNK)) ||
            !(u->wbuf = malloc(FILES_IO_CHUNK))) {
                if (u) {
                        free(u->buf);
                        free(u);
                }
                free(op);
                reply_errno(c, -ENOMEM, "upload");
                return HTTP_BODY_ANSWERED;
        }
        snprintf(op->path, sizeof(op->path), "%s", path);
        if (http_req_query(c->req, "mode", &mode) == 0) {
                json_t *m = json_string(mode);
                int r = parse_mode(m, &op->mode);
                json_decref(m);
                if (r < 0) {
                        free(u->buf);
                        free(u->wbuf);
                        free(u);
                        fsop_free(op);
                        reply_error(c, 400, "invalid_request", "mode: expected octal like 0644");
                        return HTTP_BODY_ANSWERED;
                }
        }
        u->c = c;
        u->op = op;
        u->cap = FILES_IO_CHUNK;
        u->wcap = FILES_IO_CHUNK;
        u->limit = c->app->cfg.max_upload;
        c->op = u;
        c->op_free = up_free;
        c->req->on_body = up_on_body;
        c->req->on_abort = up_on_abort;
        /* Hold the body until the temp file is open. */
        u->paused = true;
        http_req_pause(c->req);
        op->upload = u;
        u->opening = true;
        int r = uv_queue_work(c->app->loop, &op->w, fs_run, up_open_done);
        if (r < 0) {
                u->opening = false;
                reply_errno(c, r, "upload");
                return HTTP_BODY_ANSWERED;
        }
        return HTTP_BODY_STREAM;
}

/* Called by routes_on_request for PUT files/upload when the whole body has arrived. */
void files_upload_complete(struct reqctx *c)
{
        struct upload *u = c->op;
        if (!u || u->failed)
                return;
        u->body_done = true;
        up_pump(u);
}
