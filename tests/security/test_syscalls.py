"""Kernel attack surface from inside a sandbox: syscalls that Docker's default seccomp
profile denies (through the x86-64, i386 and x32 ABIs), namespace and mount tricks, ptrace,
setuid binaries. As the sandbox user and as root inside."""
import json
import secrets

import pytest

USERS = ["user", "root"]

# Runs inside the sandbox (host's /usr/bin/python3). Each probe runs in a forked child so a
# SIGSYS kill or a successful clone cannot disturb the others. Prints one JSON object:
# name -> {"ret": int or null, "errno": int, "signal": int or null}.
PROBE = r'''
import ctypes, errno, json, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def arg(x):
    if isinstance(x, bytes):
        return ctypes.c_char_p(x)
    return ctypes.c_long(x)

def sc(nr, *a):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[arg(x) for x in a])
    return r, ctypes.get_errno()

def machine(code, restype):
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    f = ctypes.CFUNCTYPE(restype)(addr)
    r = f()
    return (r, -r if r < 0 else 0)

def i386(nr, b=0, c=0, d=0):
    # push rbx; mov eax,nr; mov ebx,b; mov ecx,c; mov edx,d; int 0x80; pop rbx; ret
    le = lambda v: (v & 0xffffffff).to_bytes(4, "little")
    code = (b"\x53" + b"\xb8" + le(nr) + b"\xbb" + le(b) + b"\xb9" + le(c) + b"\xba" + le(d) +
            b"\xcd\x80" + b"\x5b" + b"\xc3")
    return machine(code, ctypes.c_int)

def x32(nr, di=0, si=0, dx=0):
    # mov eax,nr|0x40000000; mov edi,di; mov esi,si; mov edx,dx; syscall; ret
    le = lambda v: (v & 0xffffffff).to_bytes(4, "little")
    code = (b"\xb8" + le(nr | 0x40000000) + b"\xbf" + le(di) + b"\xbe" + le(si) +
            b"\xba" + le(dx) + b"\x0f\x05" + b"\xc3")
    return machine(code, ctypes.c_long)

def vm_readv_pid1():
    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    buf = ctypes.create_string_buffer(64)
    local = iovec(ctypes.addressof(buf), 8)
    remote = iovec(0x10000, 8)
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(310), ctypes.c_long(1), ctypes.byref(local), ctypes.c_long(1),
                     ctypes.byref(remote), ctypes.c_long(1), ctypes.c_long(0))
    return r, ctypes.get_errno()

CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID = 0x10000000, 0x40000000, 0x20000, 0x20000000
PROBES = {
    "keyctl":          lambda: sc(250, 0, -3, 1),            # KEYCTL_GET_KEYRING_ID(session, create)
    "add_key":         lambda: sc(248, b"user", b"warren", b"x", 1, -3),
    "request_key":     lambda: sc(249, b"user", b"warren", 0, -3),
    "bpf":             lambda: sc(321, 0, 0, 0),
    "perf_event_open": lambda: sc(298, 0, 0, -1, -1, 0),
    "io_uring_setup":  lambda: sc(425, 1, 0),
    "io_uring_enter":  lambda: sc(426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": lambda: sc(427, -1, 0, 0, 0),
    "userfaultfd":     lambda: sc(323, 0),
    "unshare_user":    lambda: sc(272, CLONE_NEWUSER),
    "unshare_net":     lambda: sc(272, CLONE_NEWNET),
    "unshare_mnt":     lambda: sc(272, CLONE_NEWNS),
    "setns":           lambda: sc(308, -1, 0),
    "mount_tmpfs":     lambda: sc(165, b"x", b"/tmp", b"tmpfs", 0, 0),
    "umount_proc_mask": lambda: sc(166, b"/proc/kcore", 2),
    "pivot_root":      lambda: sc(155, b"/tmp", b"/tmp"),
    "fsopen":          lambda: sc(430, b"tmpfs", 0),
    "open_tree":       lambda: sc(428, -100, b"/", 0),
    "kexec_load":      lambda: sc(246, 0, 0, 0, 0),
    "init_module":     lambda: sc(175, 0, 0, b""),
    "finit_module":    lambda: sc(313, -1, b"", 0),
    "delete_module":   lambda: sc(176, b"warren_nope", 0),
    "reboot":          lambda: sc(169, 0, 0, 0, 0),
    "swapon":          lambda: sc(167, 0, 0),
    "acct":            lambda: sc(163, 0),
    "clock_settime":   lambda: sc(227, 0, 0),
    "settimeofday":    lambda: sc(164, 0, 0),
    "open_by_handle_at": lambda: sc(304, -1, 0, 0),
    "syslog":          lambda: sc(103, 3, 0, 0),
    "iopl":            lambda: sc(172, 3),
    "ioperm":          lambda: sc(173, 0, 1, 1),
    "quotactl":        lambda: sc(179, 0, 0, 0, 0),
    "fanotify_init":   lambda: sc(300, 0, 0),
    "personality_rie": lambda: sc(135, 0x0400000),
    "clone_newuser":   lambda: sc(56, CLONE_NEWUSER | 17, 0, 0, 0, 0),
    "clone3":          lambda: sc(435, 0, 0),
    "i386_keyctl":     lambda: i386(288, 0, -3, 1),
    "i386_unshare_user": lambda: i386(310, CLONE_NEWUSER),
    "i386_bpf":        lambda: i386(357, 0, 0, 0),
    "i386_perf_event_open": lambda: i386(336, 0, 0, -1),
    "i386_io_uring_setup": lambda: i386(425, 1, 0),
    "x32_keyctl":      lambda: x32(250, 0, -3, 1),
    "x32_unshare_user": lambda: x32(272, CLONE_NEWUSER),
    # these are allowed by Docker's profile but must still fail against PID 1
    "ptrace_attach_1": lambda: sc(101, 16, 1, 0, 0),
    "ptrace_seize_1":  lambda: sc(101, 0x4206, 1, 0, 0),
    "process_vm_readv_1": vm_readv_pid1,
    "kill_init":       lambda: sc(62, 1, 9),
}
names = sys.argv[1:] or list(PROBES)
out = {}
for name in names:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            r, e = PROBES[name]()
            if r == 0 and name.startswith("clone"):
                os._exit(0)  # we are a clone child: the probe already succeeded in the parent
            os.write(wfd, json.dumps([r, e]).encode())
        except Exception as ex:
            os.write(wfd, json.dumps([None, -1, repr(ex)]).encode())
        os._exit(0)
    os.close(wfd)
    data = b""
    while True:
        c = os.read(rfd, 4096)
        if not c:
            break
        data += c
    os.close(rfd)
    _, st = os.waitpid(pid, 0)
    sig = os.WTERMSIG(st) if os.WIFSIGNALED(st) else None
    res = json.loads(data) if data else [None, 0]
    out[name] = {"ret": res[0], "errno": res[1], "signal": sig, "extra": res[2:]}
print(json.dumps(out))
'''

# Must be refused by the filter itself: -1 with EPERM/ENOSYS (or the process killed with
# SIGSYS). Any other errno means the call reached the kernel.
MUST_BE_DENIED = [
        "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "userfaultfd", "unshare_user", "unshare_net",
        "unshare_mnt", "setns", "mount_tmpfs", "umount_proc_mask", "pivot_root", "fsopen",
        "open_tree", "kexec_load", "init_module", "finit_module", "delete_module", "reboot",
        "swapon", "acct", "clock_settime", "settimeofday", "open_by_handle_at", "syslog",
        "iopl", "ioperm", "quotactl", "fanotify_init", "personality_rie", "clone_newuser",
        "clone3", "i386_keyctl", "i386_unshare_user", "i386_bpf", "i386_perf_event_open",
        "i386_io_uring_setup", "x32_keyctl", "x32_unshare_user",
]
# Must fail, for whatever reason.
MUST_FAIL = ["ptrace_attach_1", "ptrace_seize_1", "process_vm_readv_1"]

EPERM, ESRCH, ENOSYS, SIGSYS = 1, 3, 38, 31


def run_probe(server, sid, user):
        res = server.exec(sid, ["python3", "-c", PROBE], user=user, timeout=60000)
        assert res["exit_code"] == 0, res
        return json.loads(res["stdout"])


@pytest.mark.parametrize("user", USERS)
def test_dangerous_syscalls_denied(server, sandbox, user):
        out = run_probe(server, sandbox, user)
        assert set(out) >= set(MUST_BE_DENIED) | set(MUST_FAIL)
        allowed = {}
        for name in MUST_BE_DENIED:
                o = out[name]
                if o["signal"] == SIGSYS:
                        continue
                if o["signal"] in (11,) and name.startswith("i386"):
                        continue  # int 0x80 refused outright: no i386 entry at all
                if o["ret"] is not None and o["ret"] < 0 and o["errno"] in (EPERM, ENOSYS):
                        continue
                allowed[name] = o
        assert not allowed, f"not denied by the filter (as {user}): {allowed}"
        failed_to_fail = {n: out[n] for n in MUST_FAIL
                          if out[n]["signal"] is None and out[n]["ret"] is not None
                          and (out[n]["ret"] >= 0 or out[n]["errno"] not in (EPERM, ENOSYS,
                                                                             ESRCH))}
        assert not failed_to_fail, f"succeeded (as {user}): {failed_to_fail}"
        # PID 1 of the sandbox ignores a SIGKILL from inside its namespace
        assert server.sh(sandbox, "echo alive") == "alive\n"


@pytest.mark.parametrize("user", USERS)
def test_namespace_and_mount_tools_fail(server, sandbox, user):
        cmds = {"mount": "mount -t tmpfs x /mnt || mount -t tmpfs x /tmp",
                "unshare_U": "unshare -U true",
                "unshare_n": "unshare -n true",
                "unshare_m": "unshare -m true",
                "unshare_r": "unshare -r id -u",
                "unshare_p": "unshare -pf true",
                "nsenter": "nsenter -t 1 -m -u -n -p true"}
        for name, cmd in cmds.items():
                res = server.exec(sandbox, cmd, user=user, timeout=10000)
                assert res["exit_code"] != 0, f"{name} succeeded as {user}: {res}"
        # no tmpfs appeared anywhere
        mounts = server.sh(sandbox, "cat /proc/self/mounts")
        assert " /mnt " not in mounts and "x /tmp tmpfs" not in mounts


def test_chroot_escape_ends_in_the_sandbox_root(server, sandbox, canary):
        """The classic chroot break-out (chroot into a subdirectory, climb out with ..) can at
        most get back to the sandbox's own root."""
        token = secrets.token_hex(8)
        server.sh(sandbox, f"echo {token} > /root/warren-marker", user="root")
        code = ("import os\nos.makedirs('/tmp/j', exist_ok=True)\n"
                "try:\n os.chroot('/tmp/j')\nexcept OSError as e:\n print('DENIED', e.errno)\n"
                " raise SystemExit(0)\n"
                "for _ in range(64): os.chdir('..')\nos.chroot('.')\n"
                "print(open('/root/warren-marker').read().strip())\n"
                f"print(os.path.exists('/tmp/{canary.name}'), os.path.exists('/root/{canary.name}'))\n")
        for user in USERS:
                out = server.sh(sandbox, ["python3", "-c", code], user=user)
                if out.startswith("DENIED"):
                        continue
                assert out == f"{token}\nFalse False\n", out


def test_setuid_does_not_raise_privileges(server, sandbox):
        # a setuid-root copy made by root inside: no_new_privs keeps euid
        server.sh(sandbox, "cp /usr/bin/id /workspace/suid-id && chmod 4755 /workspace/suid-id && "
                  "cp /usr/bin/python3 /workspace/suid-py && chmod 4755 /workspace/suid-py",
                  user="root")
        assert server.sh(sandbox, "stat -c '%a %u' /workspace/suid-id") == "4755 0\n"
        assert server.sh(sandbox, "/workspace/suid-id -u") == "1001\n"
        out = server.sh(sandbox, ["/workspace/suid-py", "-c",
                                  "import os; print(os.geteuid(), os.getuid())"])
        assert out == "1001 1001\n"
        # the host's setuid binaries do nothing for the sandbox user either
        res = server.exec(sandbox, "su -c 'id -u' root </dev/null", timeout=10000)
        assert res["exit_code"] != 0 and res["stdout"].strip() != "0"
        res = server.exec(sandbox, "sudo -n id -u </dev/null", timeout=10000)
        assert res["exit_code"] != 0 and res["stdout"].strip() != "0"
        # a host setuid-root binary runs, but not as root
        res = server.exec(sandbox, "su --help >/dev/null 2>&1; "
                          "python3 -c 'import os; os.setuid(0)'")
        assert res["exit_code"] != 0 and "PermissionError" in res["stderr"]
        # capabilities from file xattrs are ignored too
        res = server.exec(sandbox, "setcap cap_sys_admin+ep /workspace/suid-py", user="root")
        out = server.exec(sandbox, ["/workspace/suid-py", "-c",
                                    "print(open('/proc/self/status').read())"])
        capeff = [l for l in out["stdout"].splitlines() if l.startswith("CapEff:")]
        assert capeff == ["CapEff:\t0000000000000000"], (res, capeff)
