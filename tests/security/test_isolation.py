"""Who a sandboxed process is and what it can see: credentials, namespaces, processes,
network, other sandboxes, the daemon. Every test attacks from inside a real sandbox and
asserts the attack fails."""
import os
import secrets
import socket

import pytest

import warren_harness as wh

USERS = ["user", "root"]


def status_fields(text):
        return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.mark.parametrize("user", USERS)
def test_process_credentials_and_confinement(server, sandbox, user):
        out = server.sh(sandbox, "cat /proc/self/status; echo ===; sh -c 'cat /proc/self/status'",
                        user=user)
        for part in out.split("===\n"):
                st = status_fields(part)
                assert st["NoNewPrivs"].strip() == "1"
                assert st["Seccomp"].strip() == "2"
                uid = "1001" if user == "user" else "0"
                assert st["Uid"].split() == [uid] * 4
                assert st["Gid"].split()[0] == uid
                if user == "user":
                        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                                assert st[cap].strip() == "0000000000000000", (cap, st[cap])
        # whatever the uid inside, no capability in the initial user namespace: the uid map
        # puts the sandbox's root on an unprivileged host uid
        umap = server.sh(sandbox, "cat /proc/self/uid_map", user=user).split()
        assert len(umap) % 3 == 0 and umap, umap
        for inside, outside, count in zip(umap[0::3], umap[1::3], umap[2::3]):
                assert int(outside) > 0, \
                        f"host uid 0 is mapped into the sandbox: {umap}"


def test_process_credentials_seen_from_host(server, sandbox):
        """Every process of the sandbox, seen from the host: unprivileged host uid, seccomp,
        no_new_privs."""
        server.sh(sandbox, "true")
        pids = wh.sandbox_host_pids(sandbox)
        assert pids, "no process of the sandbox found on the host"
        for pid in pids:
                text = wh._read(f"/proc/{pid}/status")
                if text is None:
                        continue  # exited meanwhile
                st = status_fields(text)
                assert int(st["Uid"].split()[1]) != 0, f"pid {pid} runs as host root"
                assert st["Seccomp"].strip() == "2", f"pid {pid} ({st['Name']}) has no seccomp"
                assert st["NoNewPrivs"].strip() == "1", f"pid {pid} ({st['Name']})"


def test_own_namespaces(server, sandbox):
        names = ["pid", "mnt", "net", "user", "uts", "ipc", "cgroup"]
        out = server.sh(sandbox, " ".join(f"readlink /proc/self/ns/{n};" for n in names))
        inside = out.split()
        for n, ino in zip(names, inside):
                host = os.readlink(f"/proc/self/ns/{n}")
                assert ino != host, f"the sandbox shares the host's {n} namespace ({ino})"
        # a second sandbox has namespaces of its own too
        other = server.create(disk="64Mi")
        out2 = server.sh(other, " ".join(f"readlink /proc/self/ns/{n};" for n in names)).split()
        for n, a, b in zip(names, inside, out2):
                assert a != b, f"two sandboxes share a {n} namespace"
        server.delete(other)


def test_pid_namespace_and_hostname(server, sandbox):
        procs = wh.inside_pids(server, sandbox)
        assert procs.get(1) == "warren-init", f"PID 1 inside is {procs.get(1)!r}"
        assert len(procs) <= 6, f"too many processes visible inside: {procs}"
        host_comms = {wh.proc_comm(int(p)) for p in os.listdir("/proc") if p.isdigit()}
        for c in ("warrend", "kthreadd", "process_api"):
                assert c not in procs.values(), f"a host process is visible inside: {procs}"
        assert "kthreadd" in host_comms  # sanity: the host view is different
        assert server.sh(sandbox, "hostname") == f"{sandbox}\n"
        assert server.sh(sandbox, "cat /proc/sys/kernel/hostname") == f"{sandbox}\n"
        # ps from procps agrees
        ps = server.sh(sandbox, "ps -e -o pid=,comm=")
        assert "warren-init" in ps and "warrend" not in ps


def test_proc1_root_is_the_sandbox_root(server, sandbox, canary):
        for user in USERS:
                res = server.exec(sandbox, f"cat /proc/1/root/tmp/{canary.name}; "
                                  f"cat /proc/1/root/root/{canary.name}; "
                                  f"cat /proc/1/root/etc/hostname", user=user)
                assert canary.content not in res["stdout"] + res["stderr"]
        # as root inside, /proc/1/root is either closed or the sandbox's own root
        token = secrets.token_hex(8)
        server.sh(sandbox, f"echo {token} > /root/warren-marker", user="root")
        res = server.exec(sandbox, "cat /proc/1/root/root/warren-marker", user="root")
        assert res["stdout"].strip() == token or \
                (res["exit_code"] != 0 and "Permission denied" in res["stderr"]), res


@pytest.mark.parametrize("user", USERS)
def test_host_files_invisible(server, sandbox, canary, user):
        res = server.exec(sandbox, f"cat /tmp/{canary.name} /root/{canary.name} "
                          f"/../../tmp/{canary.name}; ls -a /tmp /root; "
                          f"find / -xdev -name '{canary.name}' 2>/dev/null; "
                          f"find /tmp /root /home /workspace /var /etc -name 'warren-canary-*' "
                          f"2>/dev/null; echo END", user=user, timeout=30000)
        assert res["stdout"].endswith("END\n"), res
        assert canary.name not in res["stdout"]
        assert canary.content.strip() not in res["stdout"] + res["stderr"]
        # the host's data directory (other sandboxes' disks, the database) is not there
        r = server.exec(sandbox, f"ls {server.data_dir} {server.root_dir}", user=user)
        assert r["exit_code"] != 0 and "sandboxes" not in r["stdout"]


@pytest.mark.parametrize("user", USERS)
def test_no_host_shadow(server, sandbox, user):
        host_shadow = open("/etc/shadow").read()
        res = server.exec(sandbox, "cat /etc/shadow /etc/gshadow", user=user)
        assert host_shadow.strip() not in res["stdout"]
        shared = [l for l in host_shadow.splitlines() if l and l in res["stdout"].splitlines()]
        assert len(shared) <= 2, f"host /etc/shadow lines visible inside: {len(shared)}"
        if user == "user":
                assert res["exit_code"] != 0
        # the generated /etc knows the sandbox user
        assert "user:x:1001:1001:" in server.sh(sandbox, "cat /etc/passwd", user=user)


def test_network_is_loopback_only(server, sandbox):
        out = server.sh(sandbox, "cat /proc/net/dev")
        ifaces = [l.split(":")[0].strip() for l in out.splitlines()[2:]]
        assert ifaces == ["lo"], f"interfaces inside: {ifaces}"
        # the daemon's port on the host's loopback is not reachable from the sandbox's loopback
        code = (f"import socket,sys\ns=socket.socket()\ns.settimeout(3)\n"
                f"try:\n s.connect(('127.0.0.1',{server.port}))\n print('CONNECTED')\n"
                f"except OSError as e:\n print('ERR',e.errno)\n")
        res = server.exec(sandbox, ["python3", "-c", code])
        assert res["stdout"].startswith("ERR"), res
        # loopback inside works (a server inside can talk to itself)
        code2 = ("import socket\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen()\n"
                 "c=socket.create_connection(s.getsockname(),timeout=3);a,_=s.accept()\n"
                 "c.sendall(b'ping');print(a.recv(4).decode())\n")
        assert server.sh(sandbox, ["python3", "-c", code2]) == "ping\n"


def test_host_abstract_unix_socket_unreachable(server, sandbox):
        name = "warren-canary-" + secrets.token_hex(6)
        host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        host.bind("\0" + name)
        host.listen(1)
        try:
                code = (f"import socket\ns=socket.socket(socket.AF_UNIX)\n"
                        f"try:\n s.connect('\\0{name}')\n print('CONNECTED')\n"
                        f"except OSError as e:\n print('ERR',e.errno)\n")
                for user in USERS:
                        res = server.exec(sandbox, ["python3", "-c", code], user=user)
                        assert res["stdout"].startswith("ERR"), res
        finally:
                host.close()


def test_daemon_sockets_invisible(server, sandbox):
        sock = os.path.join(server.data_dir, "warren.sock")
        for user in USERS:
                res = server.exec(sandbox, f"ls -la {sock}; ls {server.data_dir}/run; "
                                  "ls /run /var/run 2>/dev/null | grep -c ctl.sock", user=user)
                assert "warren.sock" not in res["stdout"]
                assert "ctl.sock" not in res["stdout"]


def test_sandboxes_cannot_see_or_signal_each_other(server, sandbox):
        other = server.create(disk="64Mi")
        try:
                tok = secrets.token_hex(8)
                server.sh(other, f"echo {tok} > /tmp/secret-of-other; echo {tok} > /workspace/s")
                r = server.exec(sandbox, f"grep -rs {tok} /tmp /workspace /home; "
                                "ls /tmp /workspace", user="root")
                assert tok not in r["stdout"]
                assert "secret-of-other" not in r["stdout"]
                # root in one sandbox kills everything it can: only its own processes die
                r = server.exec(sandbox, "sleep 100 & s=$!; kill -9 -1; sleep 0.5; "
                                "kill -0 $s 2>/dev/null && echo sleep-alive; echo done",
                                user="root", timeout=10000)
                assert r["stdout"] == "done\n", f"kill -1 did not even reach its own sandbox: {r}"
                assert server.sh(other, "cat /tmp/secret-of-other") == f"{tok}\n"
                assert server.status(other) == "running"
                # the attacker's own sandbox: init survives, commands still run
                assert server.sh(sandbox, "echo alive") == "alive\n"
                assert server.get("/health", auth=False).status_code == 200
        finally:
                server.delete(other)


@pytest.mark.parametrize("user", USERS)
def test_kernel_interfaces_masked(server, sandbox, user):
        """/proc and /sys knobs that reach the host kernel are masked or read-only."""
        before = open("/proc/sys/kernel/hostname").read()
        script = r"""
r=""
for f in /proc/kcore /proc/kmsg /proc/sysrq-trigger /dev/mem /dev/kmsg /sys/kernel/debug; do
  if head -c 16 "$f" >/dev/null 2>&1 && [ -n "$(head -c 16 "$f" 2>/dev/null)" ]; then r="$r read:$f"; fi
done
for f in /proc/sysrq-trigger /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches \
         /sys/kernel/uevent_helper /proc/sys/kernel/modprobe; do
  if (printf '' > "$f") 2>/dev/null; then r="$r write:$f"; fi
done
if hostname warren-evil 2>/dev/null; then :; fi
if mknod /tmp/blk b 254 0 2>/dev/null; then r="$r mknod"; fi
if dmesg >/dev/null 2>&1; then r="$r dmesg"; fi
echo "BAD:$r"
echo "DEV:" $(ls /dev)
"""
        res = server.exec(sandbox, script, user=user)
        bad_line = [l for l in res["stdout"].splitlines() if l.startswith("BAD:")]
        assert bad_line == ["BAD:"], res
        dev_line = [l for l in res["stdout"].splitlines() if l.startswith("DEV:")]
        assert len(dev_line) == 1, res
        devs = set(dev_line[0].split()[1:])
        assert "null" in devs and "zero" in devs and "urandom" in devs, devs
        for d in ("vda", "sda", "mem", "kmem", "port", "kmsg", "loop0", "loop-control"):
                assert d not in devs, f"/dev/{d} is present inside: {sorted(devs)}"
        assert open("/proc/sys/kernel/hostname").read() == before, "host hostname changed!"
