/* launch.c - clone warren-init into new namespaces and run its setup handshake.
 *
 * The caller is a worker thread of a multithreaded daemon, so between clone() and execve()
 * the child may only make async-signal-safe calls: another thread may have held the malloc
 * or stdio locks at the moment of the clone. Everything the child needs (argv, envp, the
 * error message it may send) is prepared before the clone.
 *
 * No PR_SET_PDEATHSIG: sandboxes outlive the daemon. If the daemon dies during the
 * handshake, warren-init sees EOF on the handshake socket and exits by itself.
 */
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../init/launch_msg.h"
#include "mechanisms.h"
#include "util.h"

/* The whole handshake must finish within this. */
#define LAUNCH_TIMEOUT_MS 10000

/* Namespaces made at clone time; the user namespace comes later, from inside (see
 * src/init/setup.c for why). */
#define LAUNCH_CLONE_FLAGS                                                                         \
        (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)

/* Write "msg: strerror(-r)" into err and return r. */
static int errf(char err[RT_ERR_LEN], int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int errf(char err[RT_ERR_LEN], int r, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(err, RT_ERR_LEN, fmt, ap);
        va_end(ap);
        if (n >= 0 && n < RT_ERR_LEN)
                snprintf(err + n, RT_ERR_LEN - (size_t)n, ": %s", strerror(-r));
        return r;
}

/* What the child needs, prepared by the parent before the clone. */
struct child_args {
        const char *path;
        int sock;
        struct rlimit nofile; /* rlim_max 0: leave alone */
        sigset_t empty;
        char *argv[2];
        char *envp[1];
        struct launch_status fail; /* sent when execve fails, with err filled in */
};

/* The child between clone and execve: only async-signal-safe calls. Puts /dev/null on
 * 0, 1 and 2, the handshake socket on LAUNCH_FD, closes everything else (another thread's
 * fds without O_CLOEXEC included) and executes warren-init with an empty environment. */
static void __attribute__((noreturn)) child_exec(struct child_args *c)
{
        int s, nul;

        sigprocmask(SIG_SETMASK, &c->empty, NULL);
        /* Move both above the target numbers first, so dup2 never lands on itself (which
         * would leave O_CLOEXEC set) or clobbers the other. */
        s = fcntl(c->sock, F_DUPFD_CLOEXEC, 10);
        nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul >= 0 && nul < 10)
                nul = fcntl(nul, F_DUPFD_CLOEXEC, 10);
        if (s < 0 || nul < 0)
                _exit(126);
        if (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0 || dup2(s, LAUNCH_FD) < 0)
                _exit(126);
        if (syscall(SYS_close_range, LAUNCH_FD + 1, ~0u, 0) < 0)
                _exit(126);
        if (c->nofile.rlim_max && setrlimit(RLIMIT_NOFILE, &c->nofile) < 0)
                c->fail.err = errno;
        else {
                execve(c->path, c->argv, c->envp);
                c->fail.err = errno;
        }
        (void)send(LAUNCH_FD, &c->fail, sizeof(c->fail), MSG_NOSIGNAL);
        _exit(127);
}

/* Build the SPEC message into buf. Returns its length or -ENAMETOOLONG. */
static ssize_t build_spec(const struct launch_args *a, pid_t pid, uint8_t *buf, size_t cap)
{
        struct launch_spec h = {
                .magic = LAUNCH_MAGIC,
                .type = LAUNCH_SPEC,
                .flags = a->bind_host_usr ? LAUNCH_F_BIND_HOST_USR : 0,
                .uid_base = a->uid_base,
                .host_pid = (uint32_t)pid,
                .nstr = LAUNCH_NSTR,
        };
        const char *strs[LAUNCH_NSTR];
        size_t pos = sizeof(h);

        strs[LAUNCH_S_HOSTNAME] = a->id;
        strs[LAUNCH_S_ROOTFS] = a->rootfs;
        strs[LAUNCH_S_DISK] = a->disk;
        strs[LAUNCH_S_SECCOMP] = a->seccomp;
        strs[LAUNCH_S_STAGE] = a->stage;
        strs[LAUNCH_S_CTL] = a->ctl;
        memcpy(buf, &h, sizeof(h));
        for (int i = 0; i < LAUNCH_NSTR; i++) {
                size_t n = strlen(strs[i]) + 1;
                if (n > cap - pos)
                        return -ENAMETOOLONG;
                memcpy(buf + pos, strs[i], n);
                pos += n;
        }
        return (ssize_t)pos;
}

/* Receive one status message, waiting at most until deadline_ns. */
static int recv_status(int fd, uint64_t deadline_ns, struct launch_status *ret)
{
        for (;;) {
                uint64_t now = util_now_ns();
                if (now >= deadline_ns)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int r = poll(&p, 1, (int)((deadline_ns - now + 999999) / 1000000));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return neg_errno();
                }
                if (r == 0)
                        continue;
                ssize_t n = recv(fd, ret, sizeof(*ret), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return neg_errno();
                }
                if (n == 0)
                        return -EPIPE;
                if (n != (ssize_t)sizeof(*ret) || ret->magic != LAUNCH_MAGIC)
                        return -EPROTO;
                return 0;
        }
}

/* Map uid and gid 0..65535 inside to uid_base.. on the host. Host uid 0 is never mapped. */
static int write_maps(pid_t pid, uint32_t uid_base, char err[RT_ERR_LEN])
{
        char path[64], map[64];
        int r;

        snprintf(map, sizeof(map), "0 %u %u\n", uid_base, RT_UID_RANGE);
        snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
        r = util_write_file(path, map);
        if (r < 0)
                return errf(err, r, "writing %s", path);
        snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
        r = util_write_file(path, map);
        if (r < 0)
                return errf(err, r, "writing %s", path);
        return 0;
}

/* Send a status message of type to the child. */
static int send_status(int fd, uint32_t type)
{
        struct launch_status m = { .magic = LAUNCH_MAGIC, .type = type };

        if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
                return neg_errno();
        return 0;
}

/* Talk the child through its setup: SPEC, then the cgroup attach while it mounts (see
 * launch_msg.h), then its user namespace maps. */
static int handshake(const struct launch_args *a, pid_t pid, int fd, char err[RT_ERR_LEN])
{
        uint64_t deadline = util_now_ns() + (uint64_t)LAUNCH_TIMEOUT_MS * 1000000u;
        cleanup_free uint8_t *spec = malloc(LAUNCH_SPEC_MAX);
        struct launch_status m;
        ssize_t len;
        int r;

        if (!spec)
                return errf(err, -ENOMEM, "launch spec");
        len = build_spec(a, pid, spec, LAUNCH_SPEC_MAX);
        if (len < 0)
                return errf(err, (int)len, "launch spec");
        /* If this fails the child is gone: its ERROR (execve failed) may still be queued,
         * so read before reporting the send failure. */
        bool sent = send(fd, spec, (size_t)len, MSG_NOSIGNAL) == len;
        int send_err = sent ? 0 : neg_errno();
        if (sent) {
                r = cg_attach(a->id, pid);
                if (r < 0)
                        return errf(err, r, "moving warren-init into cgroup %s", a->id);
                r = send_status(fd, LAUNCH_ATTACHED);
                sent = r >= 0;
                send_err = r;
        }
        for (;;) {
                r = recv_status(fd, deadline, &m);
                if (r < 0 && !sent)
                        return errf(err, send_err, "sending the launch spec to warren-init");
                if (r == -EPIPE)
                        return errf(err, -ECHILD, "warren-init exited during setup");
                if (r < 0)
                        return errf(err, r, "waiting for warren-init");
                switch (m.type) {
                case LAUNCH_ERROR:
                        m.msg[sizeof(m.msg) - 1] = '\0';
                        return errf(err, m.err > 0 ? -m.err : -EIO, "warren-init: %s", m.msg);
                case LAUNCH_USERNS: {
                        r = write_maps(pid, a->uid_base, err);
                        if (r < 0)
                                return r;
                        r = send_status(fd, LAUNCH_MAPPED);
                        if (r < 0)
                                return errf(err, r, "answering warren-init");
                        break;
                }
                case LAUNCH_READY:
                        return 0;
                default:
                        return errf(err, -EPROTO, "unexpected message %u from warren-init",
                                    m.type);
                }
        }
}

/* Kill and reap a child that did not make it. */
static void kill_and_reap(pid_t pid)
{
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

int launch_init(const struct launch_args *a, pid_t *ret_pid, char err[RT_ERR_LEN])
{
        struct child_args c = {
                .path = a->init_path,
                .argv = { "warren-init", NULL },
                .envp = { NULL },
                .fail = { .magic = LAUNCH_MAGIC, .type = LAUNCH_ERROR },
        };
        int sv[2];
        pid_t pid;
        int r;

        snprintf(c.fail.msg, sizeof(c.fail.msg), "cannot execute %s", a->init_path);
        if (a->nofile)
                c.nofile.rlim_cur = c.nofile.rlim_max = (rlim_t)a->nofile;
        sigemptyset(&c.empty);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return errf(err, neg_errno(), "socketpair");
        c.sock = sv[1];

        /* Plain clone with no new stack: fork semantics, plus the namespaces. */
        pid = (pid_t)syscall(SYS_clone, LAUNCH_CLONE_FLAGS | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0) {
                r = errf(err, neg_errno(), "clone");
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        if (pid == 0)
                child_exec(&c);
        close(sv[1]);

        r = handshake(a, pid, sv[0], err);
        close(sv[0]);
        if (r < 0) {
                kill_and_reap(pid);
                return r;
        }
        *ret_pid = pid;
        return 0;
}
