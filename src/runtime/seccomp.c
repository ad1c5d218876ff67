/* seccomp.c - the seccomp filter every sandboxed process runs under.
 *
 * An allow list at least as strict as Docker's default profile (moby
 * profiles/seccomp/default.json) for a container without capabilities, built with libseccomp
 * and written as raw BPF (struct sock_filter[]) that warren-init loads with
 * prctl(PR_SET_SECCOMP) - warren-init is static and does not link libseccomp.
 *
 * Differences from Docker's profile (all stricter, but for fchmodat2, see below):
 *  - io_uring_setup/enter/register are denied (io_uring has been a steady source of kernel
 *    privilege escalations, and its operations bypass this filter);
 *  - name_to_handle_at is denied (with open_by_handle_at it was the "shocker" escape;
 *    without CAP_DAC_READ_SEARCH it only leaks inode handles);
 *  - socket and socketpair also refuse AF_ALG (kernel crypto API: CVE-2017-17805/-17806, ...);
 *  - ioctl refuses TIOCSTI (typing into the controlling terminal, CVE-2017-5226) and
 *    TIOCLINUX (console selection/paste, same effect on a VT);
 *  - argument checks that the kernel reads as 32-bit ints (socket's domain, ioctl's request,
 *    personality's persona) compare only the low 32 bits, so setting upper bits in the
 *    register cannot slip past them (a 64-bit "!= 40" is true for 0x100000028, which the
 *    kernel truncates to AF_VSOCK).
 *
 * Everything not allowed fails with EPERM, except:
 *  - clone3: ENOSYS, so that libc falls back to clone (whose flags the filter can inspect;
 *    clone3 passes them in memory);
 *  - syscalls newer than Docker's list (cachestat, map_shadow_stack, futex_wake, mseal...)
 *    and numbers libseccomp does not know: ENOSYS, as on an older kernel, so that libc falls
 *    back instead of failing.
 * fchmodat2 is allowed: it is fchmodat with a flags argument (glibc >= 2.39 uses it for
 * fchmodat(AT_SYMLINK_NOFOLLOW) and would not fall back on EPERM).
 *
 * Architectures: only the native ABI is allowed. On x86_64, a 32-bit syscall (int $0x80,
 * sysenter) or an x32 one is a "bad architecture": the whole process is killed (SIGSYS).
 * Killing rather than failing the call: a program switching ABIs on purpose is probing the
 * filter, and no legitimate program in a sandbox built from 64-bit /usr does it.
 */
#include "mechanisms.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Flags that create namespaces: clone with any of them is refused (what Docker refuses
 * without CAP_SYS_ADMIN; 0x7E020000). */
#define SC_CLONE_NS_FLAGS                                                                          \
        ((uint64_t)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |   \
                    CLONE_NEWNET | CLONE_NEWCGROUP))
/* Address families refused by socket/socketpair. */
#define SC_AF_ALG 38
#define SC_AF_VSOCK 40
#define SC_LOW32 0xffffffffULL
/* New syscall numbers (shared by all architectures since 5.1) start at SC_NEW_START. From
 * SC_ENOSYS_FROM (cachestat, the first one after Docker's list was written) to SC_NEW_END,
 * those not allowed get ENOSYS; below it, those libseccomp does not know. */
#define SC_NEW_START 424
#define SC_ENOSYS_FROM 451
#define SC_NEW_END 512

/* Allowed without conditions. Docker's list, minus io_uring_* and name_to_handle_at, plus
 * fchmodat2 (see above). Names that are not syscalls of the native architecture (the 32-bit
 * *32 and *64 variants on x86_64, for instance) are skipped when the filter is built. */
static const char *const sc_allow[] = {
        "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset",
        "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
        "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
        "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
        "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
        "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
        "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
        "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
        "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl",
        "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
        "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
        "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu",
        "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32",
        "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername",
        "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
        "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
        "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
        "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
        "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents",
        "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
        "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
        "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
        "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
        "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
        "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
        "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
        "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
        "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause",
        "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
        "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
        "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
        "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
        "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
        "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
        "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
        "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
        "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
        "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
        "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
        "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
        "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64",
        "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
        "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
        "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
        "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
        "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
        "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
        "signalfd4", "sigprocmask", "sigreturn", "socketcall", "splice", "stat", "stat64",
        "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
        "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
        "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
        "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
        "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
        "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
        "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
        "write", "writev",
        /* Docker allows these on kernels >= 4.8, where the seccomp check runs after ptrace
         * so a tracee cannot be used to bypass the filter; the pid namespace limits what can
         * be traced to the sandbox's own processes. */
        "ptrace", "process_vm_readv", "process_vm_writev",
        /* Architecture specific (x86_64 in Docker's list; skipped elsewhere). */
        "arch_prctl", "modify_ldt",
        /* Docker: arm and arm64 only; skipped on x86_64. */
        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
        "cacheflush", "set_tls",
        /* Docker: riscv64 only. */
        "riscv_flush_icache",
};

/* Personas personality() may set (Docker's list): PER_LINUX, PER_LINUX32, UNAME26,
 * PER_LINUX32|UNAME26, and 0xffffffff, which only queries the current persona. */
static const uint64_t sc_personas[] = { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff };

/* ioctl requests refused (see the file comment); sorted. */
static const uint64_t sc_bad_ioctls[] = { TIOCSTI, TIOCLINUX };

/* Address families refused by socket and socketpair; sorted. */
static const uint64_t sc_bad_families[] = { SC_AF_ALG, SC_AF_VSOCK };

/* The syscall number of name on the native architecture, or -1 if there is none there. */
static int sc_nr(const char *name)
{
        int nr = seccomp_syscall_resolve_name(name);

        return nr < 0 ? -1 : nr;
}

/* Allow name unless the low 32 bits of argument arg are one of bad[] (sorted ascending).
 *
 * libseccomp cannot say this directly: it allows one comparison per argument in a rule, has
 * no "masked not-equal", and drops the conditional rules of a syscall that also has an
 * unconditional one. So the allowed 32-bit values are split into aligned power-of-two
 * blocks, each one rule "(v & mask) == start" with a mask that has no upper-half bits: about
 * 40 rules for two holes. Ignoring the upper half is exactly what the kernel does with these
 * int arguments, so no value of the upper half can turn a refused request into an allowed
 * one, and musl's sign-extended ioctl requests (bit 31 set) pass as they should. */
static int sc_allow_low32_except(scmp_filter_ctx ctx, const char *name, unsigned arg,
                                 const uint64_t *bad, size_t n_bad)
{
        uint64_t from = 0;
        int nr = sc_nr(name);

        if (nr < 0)
                return 0;
        for (size_t i = 0; i <= n_bad; i++) {
                /* Allowed range [from, to). */
                uint64_t to = i < n_bad ? bad[i] : SC_LOW32 + 1;

                if (i < n_bad && (bad[i] > SC_LOW32 || (i > 0 && bad[i] <= bad[i - 1])))
                        return -EINVAL;
                while (from < to) {
                        /* The largest block aligned at from that ends within the range. */
                        uint64_t size = from ? from & -from : SC_LOW32 + 1;
                        struct scmp_arg_cmp cmp;
                        int r;

                        while (from + size > to)
                                size >>= 1;
                        cmp = (struct scmp_arg_cmp){ arg, SCMP_CMP_MASKED_EQ,
                                                     SC_LOW32 & ~(size - 1), from };
                        r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp);
                        if (r < 0)
                                return r;
                        from += size;
                }
                from = to + 1;
        }
        return 0;
}

/* Add every rule to ctx. */
static int sc_add_rules(scmp_filter_ctx ctx)
{
        bool handled[SC_NEW_END] = { false }; /* numbers with a rule of their own */
        int r, nr;

        for (size_t i = 0; i < ARRAY_SIZE(sc_allow); i++) {
                nr = sc_nr(sc_allow[i]);
                if (nr < 0)
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
                if (r < 0)
                        return r;
                if (nr < SC_NEW_END)
                        handled[nr] = true;
        }

        /* clone: only without namespace flags (flags are the first argument on every
         * architecture we build for; s390 swaps the first two, and is not supported). */
        nr = sc_nr("clone");
        if (nr >= 0) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, SC_CLONE_NS_FLAGS, 0));
                if (r < 0)
                        return r;
        }
        nr = sc_nr("clone3");
        if (nr >= 0) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
                if (r < 0)
                        return r;
                if (nr < SC_NEW_END)
                        handled[nr] = true;
        }

        nr = sc_nr("personality");
        for (size_t i = 0; nr >= 0 && i < ARRAY_SIZE(sc_personas); i++) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, SC_LOW32, sc_personas[i]));
                if (r < 0)
                        return r;
        }

        r = sc_allow_low32_except(ctx, "socket", 0, sc_bad_families,
                                  ARRAY_SIZE(sc_bad_families));
        if (r < 0)
                return r;
        r = sc_allow_low32_except(ctx, "socketpair", 0, sc_bad_families,
                                  ARRAY_SIZE(sc_bad_families));
        if (r < 0)
                return r;
        r = sc_allow_low32_except(ctx, "ioctl", 1, sc_bad_ioctls, ARRAY_SIZE(sc_bad_ioctls));
        if (r < 0)
                return r;

        /* Syscalls newer than Docker's list, or than this libseccomp: ENOSYS, as an older
         * kernel would answer, so that libc falls back to an older call. */
        for (nr = SC_NEW_START; nr < SC_NEW_END; nr++) {
                char *name;

                if (handled[nr])
                        continue;
                if (nr < SC_ENOSYS_FROM) {
                        name = seccomp_syscall_resolve_num_arch(seccomp_arch_native(), nr);
                        free(name);
                        if (name)
                                continue; /* known and not allowed: EPERM, as Docker */
                }
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Build the filter and write it to path (0644) through a temporary file in the same
 * directory and a rename, so a reader never sees a partial filter. */
int seccomp_write_bpf(const char *path)
{
        char tmp[PATH_MAX];
        cleanup_close int fd = -1;
        scmp_filter_ctx ctx;
        int n, r;

        if (!path || !*path)
                return -EINVAL;
        n = snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path);
        if (n < 0 || (size_t)n >= sizeof(tmp))
                return -ENAMETOOLONG;

        ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return -ENOMEM;
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r == 0) {
                /* A binary tree over syscall numbers: fewer instructions run per syscall.
                 * Older libseccomp lacks it; the filter is the same without it. */
                seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
                r = sc_add_rules(ctx);
        }
        if (r < 0)
                goto out;

        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = neg_errno();
                goto out;
        }
        if (fchmod(fd, 0644) < 0) {
                r = neg_errno();
                goto fail_tmp;
        }
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                goto fail_tmp;
        if (fsync(fd) < 0 || rename(tmp, path) < 0) {
                r = neg_errno();
                goto fail_tmp;
        }
        r = 0;
        goto out;
fail_tmp:
        unlink(tmp);
out:
        seccomp_release(ctx);
        return r;
}
