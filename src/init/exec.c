/* exec.c - the two processes of a job: its reaper and its command.
 *
 * init forks the reaper; the reaper makes itself a child subreaper and forks the command.
 * Everything the command starts (double-forked, setsid'ed: whatever) stays below the
 * reaper for as long as the reaper lives, and the reaper lives until nothing is left below
 * it or until init kills the whole subtree at the job's deadline. So "the command and all
 * its descendants are killed at the deadline" holds even for descendants that outlive the
 * command itself, which a subreaper bit on the command alone cannot give: once the command
 * exits its orphans would move to init and be indistinguishable from other jobs' ones.
 *
 * The reaper tells init the command's pid, then its wait status, over the result pipe
 * (struct exec_result). The command reports a failure to exec over the status pipe
 * (struct exec_status); EOF on that pipe means execve succeeded.
 *
 * Both run init's code between fork and execve; init is single-threaded, so anything goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
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
#include <unistd.h>

#include "init.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* gid of the tty group inside (owner group of a job's pty). */
#define TTY_GID 5
/* The fd the reaper keeps its result pipe on. */
#define REAPER_RESULT_FD 3

/* Docker's default capability set, kept for uid 0 (root of the sandbox's user namespace). */
#define DOCKER_CAPS                                                                                \
        ((1ull << CAP_CHOWN) | (1ull << CAP_DAC_OVERRIDE) | (1ull << CAP_FOWNER) |                \
         (1ull << CAP_FSETID) | (1ull << CAP_KILL) | (1ull << CAP_SETGID) |                        \
         (1ull << CAP_SETUID) | (1ull << CAP_SETPCAP) | (1ull << CAP_NET_BIND_SERVICE) |           \
         (1ull << CAP_NET_RAW) | (1ull << CAP_SYS_CHROOT) | (1ull << CAP_MKNOD) |                  \
         (1ull << CAP_AUDIT_WRITE) | (1ull << CAP_SETFCAP))

/* Report why the command cannot be executed, then exit. The message is made here, where the
 * cause is known. */
static void __attribute__((noreturn, format(printf, 3, 4)))
exec_fail(int status_fd, int err, const char *fmt, ...)
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

/* Default dispositions and an empty mask: init blocks SIGCHLD and ignores SIGPIPE. */
static void reset_signals(void)
{
        sigset_t none;

        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The command: set up its process and exec it. Never returns. */
static void __attribute__((noreturn))
command_run(const struct proto_spawn *sp, const struct exec_fds *f)
{
        uint64_t keep = sp->uid == 0 ? DOCKER_CAPS : 0;
        int sfd = f->status, in = f->in, out = f->out, err = f->err;

        /* Its own session and process group: SIGNAL frames go to the whole group. */
        if (setsid() < 0)
                exec_fail(sfd, errno, "setsid: %s", strerror(errno));
        if (f->pty >= 0) {
                if (ioctl(f->pty, TIOCSCTTY, 0) < 0)
                        exec_fail(sfd, errno, "TIOCSCTTY: %s", strerror(errno));
                /* The slave was created by init (root inside): hand it to the job's user, as
                 * grantpt() would, so programs that reopen their tty can. */
                if (fchown(f->pty, sp->uid, TTY_GID) < 0 || fchmod(f->pty, 0620) < 0)
                        exec_fail(sfd, errno, "pty ownership: %s", strerror(errno));
                in = out = err = f->pty;
        }
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
                exec_fail(sfd, errno, "stdio: %s", strerror(errno));
        if (chdir(sp->cwd) < 0)
                exec_fail(sfd, errno, "chdir %s: %s", sp->cwd, strerror(errno));
        if (sp->nofile) {
                struct rlimit rl;
                /* Raising past init's hard limit needs CAP_SYS_RESOURCE on the host: cap it. */
                if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                        exec_fail(sfd, errno, "getrlimit: %s", strerror(errno));
                rlim_t v = sp->nofile < rl.rlim_max ? (rlim_t)sp->nofile : rl.rlim_max;
                rl.rlim_cur = rl.rlim_max = v;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        exec_fail(sfd, errno, "RLIMIT_NOFILE: %s", strerror(errno));
        }
        if (drop_bounding(keep) < 0 || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                exec_fail(sfd, errno, "dropping capabilities: %s", strerror(errno));
        if (setgroups(0, NULL) < 0 || setresgid(sp->gid, sp->gid, sp->gid) < 0 ||
            setresuid(sp->uid, sp->uid, sp->uid) < 0)
                exec_fail(sfd, errno, "setting uid %u gid %u: %s", sp->uid, sp->gid,
                          strerror(errno));
        if (set_caps(keep) < 0)
                exec_fail(sfd, errno, "capset: %s", strerror(errno));
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                exec_fail(sfd, errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        /* Nothing of init's may leak into the job: mark every other fd close-on-exec (the
         * status pipe is, already; it must stay open until execve). */
        if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
                exec_fail(sfd, errno, "close_range: %s", strerror(errno));
        /* execvpe() searches the PATH of environ, not of its envp argument. The seccomp
         * filter is inherited from warren-init (setup.c), like no_new_privs. */
        environ = (char **)sp->env;
        execvpe(sp->argv[0], (char *const *)sp->argv, (char *const *)sp->env);
        if (errno == ENOENT)
                exec_fail(sfd, errno, "%s: command not found", sp->argv[0]);
        exec_fail(sfd, errno, "exec %s: %s", sp->argv[0], strerror(errno));
}

/* Write one result message (8 bytes: atomic on a pipe). */
static void send_result(uint32_t type, int32_t value)
{
        struct exec_result m = { .type = type, .value = value };

        (void)!write(REAPER_RESULT_FD, &m, sizeof(m));
}

void exec_reaper(const struct proto_spawn *sp, const struct exec_fds *f)
{
        pid_t cmd;

        reset_signals();
        prctl(PR_SET_NAME, "warren-reaper", 0, 0, 0);
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                exec_fail(f->status, errno, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
        cmd = fork();
        if (cmd < 0)
                exec_fail(f->status, errno, "fork: %s", strerror(errno));
        if (cmd == 0)
                command_run(sp, f);

        /* Keep nothing but the result pipe: the output pipes must reach EOF when the
         * command's tree closes them, the status pipe when the command execs. The pid goes
         * out before the status pipe closes, so init always knows it by STARTED time. */
        if (dup2(f->result, REAPER_RESULT_FD) < 0)
                _exit(127);
        send_result(EXEC_R_PID, cmd);
        syscall(SYS_close_range, 0u, (unsigned)REAPER_RESULT_FD - 1, 0u);
        syscall(SYS_close_range, (unsigned)REAPER_RESULT_FD + 1, ~0u, 0u);
        for (;;) {
                int ws;
                pid_t pid = waitpid(-1, &ws, 0);
                if (pid < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(0); /* ECHILD: nothing of the job is left */
                }
                if (pid == cmd)
                        send_result(EXEC_R_EXIT, ws);
        }
}
