/* jobs.c - the processes warren-init starts for the daemon (SPAWN), their output, stdin,
 * signals, timeouts and reaping.
 *
 * A job's life: fork; the child sets itself up (session, stdio or pty, subreaper, cwd,
 * limits, ids, capabilities, no_new_privs, fd hygiene, seccomp last) and execs; the parent
 * learns the outcome from a CLOEXEC status pipe: EOF means exec succeeded (STARTED), a
 * message means it failed (ERROR, and no EXIT for that job). Output is read only after
 * STARTED so that STARTED is always the job's first frame. When the process is reaped, what
 * is left in its pipes is read without waiting for EOF (background descendants may hold
 * them open for ever) and EXIT goes out as the job's last frame.
 *
 * Every job is a child subreaper: while it lives, everything it starts (setsid'ed or
 * double-forked too) stays in its subtree, so a timeout can find and kill all of it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "frames.h"
#include "init.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* gid of the tty group inside (owner group of a job's pty). */
#define TTY_GID 5
/* Bytes read from each output fd of a job after it exited, at most. */
#define DRAIN_MAX (256u * 1024)
/* Rounds of the kill-the-subtree scan before giving up on stragglers. */
#define KILL_ROUNDS 50
/* Buffers larger than this are freed once drained. */
#define KEEP_CAP 65536u

/* Docker's default capability set, kept for uid 0 (root of the sandbox's user namespace). */
#define DOCKER_CAPS                                                                                \
        ((1ull << CAP_CHOWN) | (1ull << CAP_DAC_OVERRIDE) | (1ull << CAP_FOWNER) |                \
         (1ull << CAP_FSETID) | (1ull << CAP_KILL) | (1ull << CAP_SETGID) |                        \
         (1ull << CAP_SETUID) | (1ull << CAP_SETPCAP) | (1ull << CAP_NET_BIND_SERVICE) |           \
         (1ull << CAP_NET_RAW) | (1ull << CAP_SYS_CHROOT) | (1ull << CAP_MKNOD) |                  \
         (1ull << CAP_AUDIT_WRITE) | (1ull << CAP_SETFCAP))

/* What a child that could not exec writes on its status pipe (one write: atomic). */
struct exec_status {
        int32_t err; /* positive errno */
        char msg[200];
};

/* Output read buffer, shared by all jobs (one read at a time). */
static uint8_t obuf[PROTO_MAX_DATA];

static void close_fd(int *fd)
{
        if (*fd >= 0) {
                close(*fd);
                *fd = -1;
        }
}

static void set_nonblock(int fd)
{
        int fl = fcntl(fd, F_GETFL);

        if (fl >= 0)
                fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct job *jobs_find(struct init_state *st, uint32_t id)
{
        for (struct job *j = st->jobs; j; j = j->next)
                if (j->id == id && !j->dead && !j->finished)
                        return j;
        return NULL;
}

bool jobs_output_wanted(const struct job *j)
{
        return !j->owner || conn_queued(j->owner) < INIT_OUTQ_SOFT;
}

/* ---- the child side (runs between fork and execve; init is single-threaded) ---- */

/* Report why the child cannot exec, then exit. The message is made here, where the cause is
 * known. */
static void __attribute__((noreturn, format(printf, 3, 4)))
child_fail(int status_fd, int err, const char *fmt, ...)
{
        struct exec_status s = { .err = err };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s.msg, sizeof(s.msg), fmt, ap);
        va_end(ap);
        (void)!write(status_fd, &s, sizeof(s));
        _exit(127);
}

/* Capability sets: effective = permitted = keep, inheritable empty. */
static int set_caps(uint64_t keep)
{
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = { 0 };

        data[0].effective = data[0].permitted = (uint32_t)keep;
        data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
        return (int)syscall(SYS_capset, &hdr, data);
}

/* Drop every capability not in keep from the bounding set (needs CAP_SETPCAP, so before the
 * uid change). Stops at the first capability this kernel does not know. */
static int drop_bounding(uint64_t keep)
{
        for (int cap = 0; cap < 64; cap++) {
                if (keep & (1ull << cap))
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                return 0;
                        return -1;
                }
        }
        return 0;
}

/* The child: become the job's process and exec it. Never returns. */
static void __attribute__((noreturn))
child_run(struct init_state *st, const struct proto_spawn *sp, int sfd, int in_fd, int out_fd,
          int err_fd, int pty_fd)
{
        uint64_t keep = sp->uid == 0 ? DOCKER_CAPS : 0;
        sigset_t none;

        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        /* Its own session and process group: SIGNAL frames go to the whole group. */
        if (setsid() < 0)
                child_fail(sfd, errno, "setsid: %s", strerror(errno));
        if (pty_fd >= 0) {
                if (ioctl(pty_fd, TIOCSCTTY, 0) < 0)
                        child_fail(sfd, errno, "TIOCSCTTY: %s", strerror(errno));
                /* The slave was created by init (root inside): hand it to the job's user, as
                 * grantpt() would, so programs that reopen their tty can. */
                if (fchown(pty_fd, sp->uid, TTY_GID) < 0 || fchmod(pty_fd, 0620) < 0)
                        child_fail(sfd, errno, "pty ownership: %s", strerror(errno));
                in_fd = out_fd = err_fd = pty_fd;
        }
        if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
                child_fail(sfd, errno, "stdio: %s", strerror(errno));
        /* Orphans of the command (double-forked, setsid'ed) become our descendants, not
         * init's, while the command lives; preserved across execve. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                child_fail(sfd, errno, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
        if (chdir(sp->cwd) < 0)
                child_fail(sfd, errno, "chdir %s: %s", sp->cwd, strerror(errno));
        if (sp->nofile) {
                struct rlimit rl;
                /* Raising past init's hard limit needs CAP_SYS_RESOURCE on the host: cap it. */
                if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                        child_fail(sfd, errno, "getrlimit: %s", strerror(errno));
                rlim_t v = sp->nofile < rl.rlim_max ? (rlim_t)sp->nofile : rl.rlim_max;
                rl.rlim_cur = rl.rlim_max = v;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        child_fail(sfd, errno, "RLIMIT_NOFILE: %s", strerror(errno));
        }
        if (drop_bounding(keep) < 0 || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                child_fail(sfd, errno, "dropping capabilities: %s", strerror(errno));
        if (setgroups(0, NULL) < 0 || setresgid(sp->gid, sp->gid, sp->gid) < 0 ||
            setresuid(sp->uid, sp->uid, sp->uid) < 0)
                child_fail(sfd, errno, "setting uid %u gid %u: %s", sp->uid, sp->gid,
                           strerror(errno));
        if (set_caps(keep) < 0)
                child_fail(sfd, errno, "capset: %s", strerror(errno));
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail(sfd, errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        /* Nothing of init's may leak into the job: mark every other fd close-on-exec (the
         * status pipe is, already; it must stay open until execve). */
        if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
                child_fail(sfd, errno, "close_range: %s", strerror(errno));
        /* execvpe() searches the PATH of environ, not of its envp argument. */
        environ = (char **)sp->env;
        struct sock_fprog prog = { .len = st->ctx.filter_len, .filter = st->ctx.filter };
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
                child_fail(sfd, errno, "loading the seccomp filter: %s", strerror(errno));
        execvpe(sp->argv[0], (char *const *)sp->argv, (char *const *)sp->env);
        if (errno == ENOENT)
                child_fail(sfd, errno, "%s: command not found", sp->argv[0]);
        child_fail(sfd, errno, "exec %s: %s", sp->argv[0], strerror(errno));
}

/* ---- the parent side ---- */

/* Open a new pty pair: master nonblocking, slave opened through the master (TIOCGPTPEER,
 * never by path), window size set. */
static int open_pty(uint16_t cols, uint16_t rows, int *ret_master, int *ret_slave)
{
        cleanup_close int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        int unlock = 0;

        if (m < 0)
                return neg_errno();
        if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
                return neg_errno();
        struct winsize ws = { .ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80 };
        if (ioctl(m, TIOCSWINSZ, &ws) < 0)
                return neg_errno();
        int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0)
                return neg_errno();
        *ret_master = TAKE_FD(m);
        *ret_slave = s;
        return 0;
}

void jobs_spawn(struct init_state *st, struct conn *owner, const struct init_req *req)
{
        const struct proto_spawn *sp = &req->spawn;
        int status[2] = { -1, -1 }, in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
        int master = -1, slave = -1, r = 0;
        const char *what = "";
        struct job *j = NULL;

        if (req->err) {
                conn_send_error(owner, req->job, req->err, req->errmsg);
                return;
        }
        if (jobs_find(st, req->job)) {
                conn_send_error(owner, req->job, EEXIST, "job id already in use");
                return;
        }
        if (st->njobs >= INIT_MAX_JOBS) {
                conn_send_error(owner, req->job, EAGAIN, "too many jobs");
                return;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                conn_send_error(owner, req->job, ENOMEM, "out of memory");
                return;
        }
        if (pipe2(status, O_CLOEXEC) < 0) {
                r = neg_errno();
                what = "pipe";
                goto fail;
        }
        if (sp->flags & PROTO_SPAWN_PTY) {
                r = open_pty(sp->cols, sp->rows, &master, &slave);
                what = "opening a pty";
        } else {
                if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
                    ((sp->flags & PROTO_SPAWN_STDIN) && pipe2(in, O_CLOEXEC) < 0))
                        r = neg_errno();
                what = "pipe";
        }
        if (r < 0)
                goto fail;

        pid_t pid = fork();
        if (pid < 0) {
                r = neg_errno();
                what = "fork";
                goto fail;
        }
        if (pid == 0)
                child_run(st, sp, status[1], in[0] >= 0 ? in[0] : st->ctx.devnull_fd, out[1],
                          err[1], slave);

        close_fd(&status[1]);
        close_fd(&slave);
        close_fd(&in[0]);
        close_fd(&out[1]);
        close_fd(&err[1]);
        j->id = req->job;
        j->pid = pid;
        j->owner = owner;
        j->status_fd = status[0];
        j->pty = master >= 0;
        if (j->pty) {
                j->out_fd[0] = master;
                j->out_fd[1] = -1;
                /* A second fd on the master for stdin, so output EOF and stdin are separate. */
                j->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
        } else {
                j->out_fd[0] = out[0];
                j->out_fd[1] = err[0];
                j->in_fd = in[1];
        }
        for (int i = 0; i < 2; i++)
                if (j->out_fd[i] >= 0)
                        set_nonblock(j->out_fd[i]);
        if (j->in_fd >= 0)
                set_nonblock(j->in_fd);
        set_nonblock(j->status_fd);
        if (sp->timeout_ms)
                j->deadline_ns = util_now_ns() + (uint64_t)sp->timeout_ms * 1000000u;
        j->next = st->jobs;
        st->jobs = j;
        st->njobs++;
        return;

fail:
        for (int i = 0; i < 2; i++) {
                close_fd(&status[i]);
                close_fd(&in[i]);
                close_fd(&out[i]);
                close_fd(&err[i]);
        }
        close_fd(&master);
        close_fd(&slave);
        free(j);
        char msg[128];
        snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-r));
        conn_send_error(owner, req->job, -r, msg);
}

/* Read the exec status pipe. 1: exec succeeded (EOF), 0: not known yet, -1: exec failed and
 * ERROR was sent (the job is then dead). */
static int read_status(struct job *j)
{
        struct exec_status s;
        ssize_t n;

        do
                n = read(j->status_fd, &s, sizeof(s));
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN)
                return 0;
        close_fd(&j->status_fd);
        if (n == 0)
                return 1;
        if (n != (ssize_t)sizeof(s)) {
                conn_send_error(j->owner, j->id, EIO, "the job's process died before exec");
        } else {
                s.msg[sizeof(s.msg) - 1] = '\0';
                conn_send_error(j->owner, j->id, s.err > 0 ? s.err : EIO, s.msg);
        }
        j->dead = true;
        return -1;
}

/* Send STARTED: from now on the job's output is read. */
static void job_started(struct job *j)
{
        uint8_t p[4];

        j->started = true;
        proto_put_u32(p, (uint32_t)j->pid);
        conn_send(j->owner, PROTO_STARTED, 0, j->id, p, sizeof(p), NULL, 0);
}

void jobs_on_status(struct init_state *st, struct job *j)
{
        if (read_status(j) == 1)
                job_started(j);
}

/* Read once from output fd idx and forward it. Returns the bytes read; 0 when the fd has
 * nothing now or is finished (EOF, EIO from a pty whose slave side is closed, an error: the
 * fd is then closed). */
static size_t read_output(struct job *j, int idx)
{
        ssize_t n;

        do
                n = read(j->out_fd[idx], obuf, sizeof(obuf));
        while (n < 0 && errno == EINTR);
        if (n > 0) {
                uint8_t stream = idx == 0 ? PROTO_STREAM_STDOUT : PROTO_STREAM_STDERR;
                conn_send(j->owner, PROTO_OUTPUT, stream, j->id, obuf, (size_t)n, NULL, 0);
                return (size_t)n;
        }
        if (n == 0 || errno != EAGAIN)
                close_fd(&j->out_fd[idx]);
        return 0;
}

void jobs_on_output(struct init_state *st, struct job *j, int idx)
{
        if (j->out_fd[idx] >= 0)
                read_output(j, idx);
        if (j->finished && j->out_fd[0] < 0 && j->out_fd[1] < 0)
                j->dead = true;
}

/* The job's process was reaped: send what its pipes still hold, then EXIT. */
static void job_finish(struct job *j)
{
        uint8_t p[9];
        int code, sig = 0;

        if (j->status_fd >= 0) {
                /* The child is gone, so the pipe holds its message or EOF: never EAGAIN. */
                int r = read_status(j);
                if (r < 0)
                        return;
                if (r == 0) {
                        close_fd(&j->status_fd);
                        conn_send_error(j->owner, j->id, EIO, "exec status unknown");
                        j->dead = true;
                        return;
                }
                job_started(j);
        }
        for (int i = 0; i < 2; i++) {
                size_t got = 0, n = 1;
                while (j->out_fd[i] >= 0 && got < DRAIN_MAX && n > 0) {
                        n = read_output(j, i);
                        got += n;
                }
        }
        if (WIFSIGNALED(j->wstatus)) {
                sig = WTERMSIG(j->wstatus);
                code = 128 + sig;
        } else {
                code = WEXITSTATUS(j->wstatus);
        }
        if (j->timed_out)
                code = 124;
        proto_put_u32(p, (uint32_t)code);
        proto_put_u32(p + 4, (uint32_t)sig);
        p[8] = j->timed_out;
        conn_send(j->owner, PROTO_EXIT, 0, j->id, p, sizeof(p), NULL, 0);
        /* Descendants that still hold the pipes keep writing into them: read and drop that
         * until they close them, rather than close our ends and kill them with SIGPIPE. */
        close_fd(&j->in_fd);
        j->owner = NULL;
        j->finished = true;
        if (j->out_fd[0] < 0 && j->out_fd[1] < 0)
                j->dead = true;
}

void jobs_reap(struct init_state *st)
{
        for (;;) {
                int ws;
                pid_t pid = waitpid(-1, &ws, WNOHANG);
                if (pid <= 0)
                        return;
                struct job *j = NULL;
                for (struct job *k = st->jobs; k; k = k->next)
                        if (k->pid == pid && !k->exited && !k->dead) {
                                j = k;
                                break;
                        }
                /* Not a job: an orphan that ended up with us, reaped silently. */
                if (!j)
                        continue;
                j->exited = true;
                j->wstatus = ws;
                job_finish(j);
        }
}

/* One process from /proc: its parent and whether it is still running (not a zombie). */
struct pinfo {
        pid_t pid, ppid;
        bool live;
        int state; /* kill_descendants(): not yet known, in the subtree, or not */
};

/* Read pid, ppid and state of every process in our pid namespace into a malloc'd array. */
static int scan_procs(struct pinfo **ret, size_t *ret_n)
{
        DIR *d = opendir("/proc");
        struct pinfo *v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        if (!d)
                return neg_errno();
        while ((de = readdir(d))) {
                char path[64], buf[512];
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 1)
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t len = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (len <= 0)
                        continue;
                buf[len] = '\0';
                /* "pid (comm) S ppid ...": comm may hold spaces and ')'; take the last ')'. */
                char *rp = strrchr(buf, ')');
                char state;
                int ppid;
                if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
                        continue;
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        struct pinfo *nv = realloc(v, nc * sizeof(*v));
                        if (!nv) {
                                free(v);
                                closedir(d);
                                return -ENOMEM;
                        }
                        v = nv;
                        cap = nc;
                }
                v[n++] = (struct pinfo){ .pid = (pid_t)pid, .ppid = ppid,
                                         .live = state != 'Z' && state != 'X' };
        }
        closedir(d);
        *ret = v;
        *ret_n = n;
        return 0;
}

static int cmp_pid(const void *a, const void *b)
{
        const struct pinfo *x = a, *y = b;

        return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Index of pid in v (sorted by pid), or -1. */
static long find_pid(const struct pinfo *v, size_t n, pid_t pid)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v[mid].pid == pid)
                        return (long)mid;
                if (v[mid].pid < pid)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

/* SIGKILL every live descendant of root (not root itself); return how many were found.
 * root is a subreaper, so orphans of killed descendants stay under it for the next round.
 * Each process's ancestry is walked once (the answer is remembered for every process on
 * the walk), so a deep chain of forks costs O(n log n), not O(n^2). */
static int kill_descendants(pid_t root)
{
        enum { UNKNOWN = 0, INSIDE, OUTSIDE };
        struct pinfo *v;
        size_t n, *path;
        int killed = 0;

        if (scan_procs(&v, &n) < 0)
                return 0;
        path = malloc((n + 1) * sizeof(*path));
        if (!path) {
                free(v);
                return 0;
        }
        qsort(v, n, sizeof(*v), cmp_pid);
        for (size_t i = 0; i < n; i++) {
                size_t depth = 0, k = i;
                int verdict;

                for (;;) {
                        if (v[k].state != UNKNOWN) {
                                verdict = v[k].state;
                                break;
                        }
                        path[depth++] = k;
                        if (v[k].ppid == root) {
                                verdict = INSIDE;
                                break;
                        }
                        long p = find_pid(v, n, v[k].ppid);
                        if (p < 0 || depth > n) {
                                verdict = OUTSIDE;
                                break;
                        }
                        k = (size_t)p;
                }
                while (depth > 0)
                        v[path[--depth]].state = verdict;
        }
        for (size_t i = 0; i < n; i++)
                if (v[i].state == INSIDE && v[i].live) {
                        kill(v[i].pid, SIGKILL);
                        killed++;
                }
        free(path);
        free(v);
        return killed;
}

/* Kill a job and everything below it. The job's process is stopped first (it can neither
 * fork nor react to its children dying) and killed last: once it is dead its orphans would
 * move to init and out of reach. A killed process cannot fork any more (a pending SIGKILL
 * stops fork), so each round only finds children forked before it. */
static void kill_tree(pid_t root)
{
        kill(root, SIGSTOP);
        for (int round = 0; round < KILL_ROUNDS; round++) {
                if (kill_descendants(root) == 0)
                        break;
                /* Let the killed ones die, or the next scan sees them running again. */
                struct timespec ts = { 0, 200000 };
                nanosleep(&ts, NULL);
        }
        kill(root, SIGKILL);
}

int jobs_check_timeouts(struct init_state *st)
{
        uint64_t now = util_now_ns(), next = 0;

        for (struct job *j = st->jobs; j; j = j->next) {
                if (j->dead || j->exited || !j->deadline_ns)
                        continue;
                if (j->deadline_ns <= now) {
                        j->timed_out = true;
                        j->deadline_ns = 0;
                        kill_tree(j->pid);
                        continue;
                }
                if (!next || j->deadline_ns < next)
                        next = j->deadline_ns;
        }
        if (!next)
                return -1;
        uint64_t ms = (next - now + 999999u) / 1000000u;
        return ms > 60000 ? 60000 : (int)ms;
}

void jobs_stdin(struct init_state *st, struct conn *from, struct job *j, const uint8_t *data,
                size_t len, bool eof)
{
        if (j->in_fd < 0 || j->in_eof)
                return;
        if (len > 0) {
                if (j->inq_cap - j->inq_len < len && j->inq_off > 0) {
                        memmove(j->inq, j->inq + j->inq_off, j->inq_len - j->inq_off);
                        j->inq_len -= j->inq_off;
                        j->inq_off = 0;
                }
                if (j->inq_cap - j->inq_len < len) {
                        size_t cap = j->inq_cap ? j->inq_cap : 4096;
                        while (cap - j->inq_len < len)
                                cap *= 2;
                        uint8_t *nb = realloc(j->inq, cap);
                        if (!nb)
                                return;
                        j->inq = nb;
                        j->inq_cap = cap;
                }
                memcpy(j->inq + j->inq_len, data, len);
                j->inq_len += len;
        }
        if (eof)
                j->in_eof = true;
        jobs_on_stdin_writable(st, j);
        if (j->inq_len - j->inq_off > INIT_INQ_MAX)
                from->blocked_on = j;
}

void jobs_on_stdin_writable(struct init_state *st, struct job *j)
{
        while (j->in_fd >= 0 && j->inq_len > j->inq_off) {
                ssize_t n = write(j->in_fd, j->inq + j->inq_off, j->inq_len - j->inq_off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        /* The reader is gone (EPIPE) or worse: drop what is queued. */
                        close_fd(&j->in_fd);
                        break;
                }
                j->inq_off += (size_t)n;
        }
        j->inq_off = j->inq_len = 0;
        if (j->inq_cap > KEEP_CAP) {
                free(j->inq);
                j->inq = NULL;
                j->inq_cap = 0;
        }
        if (j->in_eof && j->in_fd >= 0) {
                if (j->pty) {
                        /* A terminal has no half-close: send its EOF character instead. */
                        struct termios t;
                        char c = 4;
                        if (tcgetattr(j->in_fd, &t) == 0)
                                c = (char)t.c_cc[VEOF];
                        (void)!write(j->in_fd, &c, 1);
                        j->in_eof = false;
                        j->inq_off = j->inq_len = 0;
                        return;
                }
                close_fd(&j->in_fd);
        }
}

void jobs_signal(struct job *j, int signo)
{
        if (j->exited)
                return;
        /* Before the child's setsid() there is no group yet: signal the process itself. */
        if (kill(-j->pid, signo) < 0 && errno == ESRCH)
                kill(j->pid, signo);
}

void jobs_resize(struct job *j, uint16_t cols, uint16_t rows)
{
        struct winsize ws = { .ws_row = rows, .ws_col = cols };

        if (j->pty && j->in_fd >= 0)
                ioctl(j->in_fd, TIOCSWINSZ, &ws);
}

void jobs_kill_all(void)
{
        /* From PID 1 this reaches every process of the pid namespace but init itself. */
        kill(-1, SIGKILL);
}

void jobs_conn_closed(struct init_state *st, struct conn *c)
{
        for (struct job *j = st->jobs; j; j = j->next)
                if (j->owner == c)
                        j->owner = NULL;
}

void jobs_sweep(struct init_state *st)
{
        struct job **pp = &st->jobs;

        while (*pp) {
                struct job *j = *pp;
                if (!j->dead) {
                        pp = &j->next;
                        continue;
                }
                *pp = j->next;
                for (struct conn *c = st->conns; c; c = c->next)
                        if (c->blocked_on == j)
                                c->blocked_on = NULL;
                close_fd(&j->out_fd[0]);
                close_fd(&j->out_fd[1]);
                close_fd(&j->in_fd);
                close_fd(&j->status_fd);
                free(j->inq);
                free(j);
                st->njobs--;
        }
}
