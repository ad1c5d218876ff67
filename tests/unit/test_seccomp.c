/* test_seccomp.c - the exported filter, loaded for real: every check runs in a fresh child
 * that installs the BPF the way warren-init does (no_new_privs + SECCOMP_MODE_FILTER) and
 * reports through its exit status. Run as root, so an EPERM can only come from the filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "mechanisms.h"
#include "util.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif

static char dir[64];
static char bpf_path[128];
static struct sock_filter *prog;
static unsigned short prog_len;

static int setup(void **state)
{
        struct stat st;
        cleanup_close int fd = -1;

        snprintf(dir, sizeof(dir), "/tmp/warren-test-seccomp-XXXXXX");
        if (geteuid() != 0 || !mkdtemp(dir))
                return -1;
        snprintf(bpf_path, sizeof(bpf_path), "%s/seccomp.bpf", dir);
        if (seccomp_write_bpf(bpf_path) < 0)
                return -1;
        fd = open(bpf_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0 ||
            st.st_size % sizeof(struct sock_filter) || st.st_size > 4096 * 8)
                return -1;
        prog = malloc((size_t)st.st_size);
        if (!prog || util_read_all(fd, prog, (size_t)st.st_size) < 0)
                return -1;
        prog_len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
        return 0;
}

static int teardown(void **state)
{
        free(prog);
        return util_rm_rf(dir) == 0 ? 0 : -1;
}

/* In the child: install the filter as warren-init does. First, private mount and UTS
 * namespaces, so that a call the filter wrongly lets through (mount, sethostname) cannot
 * touch the host. */
static void load_filter(void)
{
        struct sock_fprog fprog = { .len = prog_len, .filter = prog };

        if (unshare(CLONE_NEWNS | CLONE_NEWUTS) < 0 ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                _exit(98);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
                _exit(99);
}

/* Run fn in a child (under the filter if filtered) and return its wait status. */
static int run_child(int (*fn)(void), bool filtered)
{
        int status;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                if (filtered)
                        load_filter();
                _exit(fn());
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

/* fn must exit 0 under the filter. */
static void expect_ok(int (*fn)(void))
{
        int status = run_child(fn, true);

        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                print_error("child status 0x%x\n", status);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* 0 if r == -1 with errno err, else a code naming what happened. */
static int fails_with(long r, int err)
{
        if (r != -1)
                return 2;
        return errno == err ? 0 : 3;
}

/* ---- syscalls the filter must refuse with EPERM ---- */

struct denied {
        const char *what;
        long nr;
        long a[6];
};

static int denied_index;

static const struct denied denied_calls[] = {
        { "mount", SYS_mount, { (long)"none", (long)"/mnt", (long)"tmpfs", 0, 0 } },
        { "umount2", SYS_umount2, { (long)"/mnt", 0 } },
        { "pivot_root", SYS_pivot_root, { (long)"/", (long)"/" } },
        { "unshare(NEWUSER)", SYS_unshare, { CLONE_NEWUSER } },
        { "unshare(NEWNS)", SYS_unshare, { CLONE_NEWNS } },
        { "setns", SYS_setns, { 0, 0 } },
        { "clone(NEWUSER)", SYS_clone, { CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0 } },
        { "clone(NEWNET)", SYS_clone, { CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0 } },
        { "clone(NEWPID)", SYS_clone, { CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0 } },
        { "keyctl", SYS_keyctl, { 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0 } },
        { "add_key", SYS_add_key, { (long)"user", (long)"k", (long)"v", 1, -3 } },
        { "request_key", SYS_request_key, { (long)"user", (long)"k", 0, -3 } },
        { "bpf", SYS_bpf, { 0, 0, 0 } },
        { "perf_event_open", SYS_perf_event_open, { 0, 0, -1, -1, 0 } },
        { "io_uring_setup", SYS_io_uring_setup, { 1, 0 } },
        { "io_uring_enter", SYS_io_uring_enter, { 0, 0, 0, 0, 0 } },
        { "io_uring_register", SYS_io_uring_register, { 0, 0, 0, 0 } },
        { "userfaultfd", SYS_userfaultfd, { 0 } },
        { "open_by_handle_at", SYS_open_by_handle_at, { AT_FDCWD, 0, 0 } },
        { "name_to_handle_at", SYS_name_to_handle_at, { AT_FDCWD, (long)"/", 0, 0, 0 } },
        { "kexec_load", SYS_kexec_load, { 0, 0, 0, 0 } },
        { "init_module", SYS_init_module, { 0, 0, 0 } },
        { "finit_module", SYS_finit_module, { -1, 0, 0 } },
        { "delete_module", SYS_delete_module, { (long)"x", 0 } },
        { "chroot", SYS_chroot, { (long)"/" } },
        { "syslog", SYS_syslog, { 10 /* SYSLOG_ACTION_SIZE_BUFFER */, 0, 0 } },
        { "sethostname", SYS_sethostname, { (long)"x", 1 } },
        { "reboot", SYS_reboot, { 0, 0, 0, 0 } },
        { "socket(AF_VSOCK)", SYS_socket, { AF_VSOCK, SOCK_STREAM, 0 } },
        { "socket(AF_ALG)", SYS_socket, { AF_ALG, SOCK_SEQPACKET, 0 } },
        /* Upper bits the kernel ignores must not hide the family or the request. */
        { "socket(1<<32|AF_VSOCK)", SYS_socket, { (long)(1ULL << 32 | AF_VSOCK), SOCK_STREAM } },
        { "socketpair(AF_ALG)", SYS_socketpair, { AF_ALG, SOCK_SEQPACKET, 0, 0 } },
        { "ioctl(TIOCSTI)", SYS_ioctl, { 0, TIOCSTI, (long)"x" } },
        { "ioctl(TIOCLINUX)", SYS_ioctl, { 0, TIOCLINUX, (long)"x" } },
        { "ioctl(1<<32|TIOCSTI)", SYS_ioctl, { 0, (long)(1ULL << 32 | TIOCSTI), (long)"x" } },
        { "ioctl(-1<<32|TIOCSTI)", SYS_ioctl, { 0, (long)(~0ULL << 32 | TIOCSTI), (long)"x" } },
        { "personality(ADDR_NO_RANDOMIZE)", SYS_personality, { ADDR_NO_RANDOMIZE } },
        { "quotactl", SYS_quotactl, { 0, 0, 0, 0 } },
        { "fsopen", SYS_fsopen, { (long)"tmpfs", 0 } },
        { "open_tree", SYS_open_tree, { AT_FDCWD, (long)"/", 0 } },
        { "move_mount", SYS_move_mount, { 0, 0, 0, 0, 0 } },
        { "acct", SYS_acct, { 0 } },
        { "settimeofday", SYS_settimeofday, { 0, 0 } },
        { "iopl", SYS_iopl, { 3 } },
        { "lookup_dcookie", SYS_lookup_dcookie, { 0, 0, 0 } },
};

static int call_denied(void)
{
        const struct denied *d = &denied_calls[denied_index];
        long r = syscall(d->nr, d->a[0], d->a[1], d->a[2], d->a[3], d->a[4], d->a[5]);

        return fails_with(r, EPERM);
}

static void test_denied(void **state)
{
        for (size_t i = 0; i < ARRAY_SIZE(denied_calls); i++) {
                int status;

                denied_index = (int)i;
                status = run_child(call_denied, true);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        print_error("%s: not refused with EPERM (status 0x%x)\n",
                                    denied_calls[i].what, status);
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
}

/* ---- ENOSYS: clone3 and syscalls newer than libseccomp ---- */

static int call_clone3(void)
{
        uint64_t args[8] = { 0 }; /* struct clone_args, version 0 */

        args[4] = SIGCHLD; /* exit_signal */
        return fails_with(syscall(SYS_clone3, args, sizeof(args)), ENOSYS);
}

static int call_cachestat(void)
{
        /* 451 = cachestat (Linux 6.5), newer than Docker's list. */
        return fails_with(syscall(451, 0, 0, 0, 0), ENOSYS);
}

static int call_fchmodat2(void)
{
        /* 452 = fchmodat2 (Linux 6.6): allowed, like fchmodat. */
        return syscall(452, AT_FDCWD, bpf_path, 0644, 0) == 0 ? 0 : 4;
}

static int call_nr_500(void)
{
        return fails_with(syscall(500, 0, 0, 0), ENOSYS);
}

static void test_enosys(void **state)
{
        expect_ok(call_clone3);
        expect_ok(call_cachestat);
        expect_ok(call_fchmodat2);
        expect_ok(call_nr_500);
}

/* ---- what must keep working ---- */

static void *thread_main(void *arg)
{
        return arg;
}

static int call_allowed(void)
{
        cleanup_close int fd = -1;
        cleanup_close int s = -1;
        int sv[2], p[2], n = 0, status;
        char buf[8] = "abc", out[8];
        struct iovec local = { out, 4 }, remote = { buf, 4 };
        pthread_t t;
        void *ret;
        pid_t pid;

        if (syscall(SYS_getpid) != getpid())
                return 10;
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return 11;
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return 12;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 13;
        close(sv[0]);
        close(sv[1]);
        /* fork goes through clone with plain flags */
        pid = fork();
        if (pid < 0)
                return 14;
        if (pid == 0)
                _exit(7);
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
                return 15;
        /* glibc tries clone3 first for threads, gets ENOSYS, falls back to clone */
        if (pthread_create(&t, NULL, thread_main, buf) != 0 || pthread_join(t, &ret) != 0 ||
            ret != buf)
                return 16;
        /* ordinary ioctls still work */
        if (pipe2(p, O_CLOEXEC) < 0 || write(p[1], "xy", 2) != 2 || ioctl(p[0], FIONREAD, &n) < 0 ||
            n != 2)
                return 17;
        /* a request with bit 31 set, sign-extended as musl passes it: not refused by the
         * filter (the pipe answers ENOTTY) */
        if (syscall(SYS_ioctl, p[0], (long)(int)0x80045430 /* TIOCGPTN */, &n) != -1 ||
            errno != ENOTTY)
                return 18;
        close(p[0]);
        close(p[1]);
        if (personality(0xffffffff) < 0 || personality(PER_LINUX) < 0)
                return 19;
        /* ptrace family allowed, as in Docker on Linux >= 4.8 */
        if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != 4 || memcmp(out, "abc", 4))
                return 20;
        return 0;
}

static void test_allowed(void **state)
{
        expect_ok(call_allowed);
}

/* ---- other ABIs ---- */

#if defined(__x86_64__)
static int call_int80_getpid(void)
{
        long ret;

        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
        return ret == getpid() ? 0 : 1;
}

static int call_x32_getpid(void)
{
        syscall(0x40000000L | SYS_getpid);
        return 0;
}

static void test_other_abis(void **state)
{
        /* Without the filter, int $0x80 works here only if the kernel has IA-32 emulation;
         * with it, the process must be killed with SIGSYS either way when it does. */
        int plain = run_child(call_int80_getpid, false);
        bool ia32 = WIFEXITED(plain) && WEXITSTATUS(plain) == 0;
        int status = run_child(call_int80_getpid, true);

        print_message("ia32 emulation without filter: %s\n", ia32 ? "yes" : "no");
        assert_true(WIFSIGNALED(status));
        if (ia32)
                assert_int_equal(WTERMSIG(status), SIGSYS);

        status = run_child(call_x32_getpid, true);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSYS);
}
#endif

/* The file: mode 0644, whole instructions, rewritten atomically with nothing left over. */
static void test_file(void **state)
{
        struct stat st;
        struct dirent *e;
        DIR *d;
        int n = 0;

        assert_int_equal(stat(bpf_path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(st.st_size % sizeof(struct sock_filter), 0);
        assert_int_equal(seccomp_write_bpf(bpf_path), 0);
        d = opendir(dir);
        assert_non_null(d);
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n, 1);
        assert_int_equal(seccomp_write_bpf("/nonexistent-dir/x.bpf"), -ENOENT);
        print_message("seccomp filter: %u instructions\n", (unsigned)prog_len);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_file),
                cmocka_unit_test(test_denied),
                cmocka_unit_test(test_enosys),
                cmocka_unit_test(test_allowed),
#if defined(__x86_64__)
                cmocka_unit_test(test_other_abis),
#endif
        };

        return cmocka_run_group_tests_name("seccomp", tests, setup, teardown);
}
