"""Network egress (`network: egress`): what a sandbox with an uplink can and cannot reach.

Safety first (a rule of this workplace): these tests never run a daemon with egress in the
host's network namespace. The module builds a closed lab of network namespaces of its own:

  D (the daemon's "host"): lo, up0 198.51.100.2/24 (TEST-NET-2), default via 198.51.100.1;
     warrend runs here (nsenter --net only: its mount namespace, and so /sys/fs/cgroup, stay
     the host's), with a "host service" listening on 0.0.0.0 (ports 443, 8443) beside it.
  O (everything outside): dn0 198.51.100.1/24 and, on its loopback, the fake internet host
     203.0.113.10 (TEST-NET-3), a fake private host 10.123.0.10, a fake metadata service
     169.254.169.254 and a resolver 10.123.0.53 (a private address, NETWORK_DNS); servers
     answer on TCP 53, 80, 443, 8080, 8443 and UDP 53 and log every connection; on TCP 9000
     they keep the connection open until the client closes it.

O has no route anywhere else and D's only route out leads to O, so no packet of these tests
can leave the lab, even if the policy under test were broken. The test talks to warrend over
its unix socket (DATA_DIR/warren.sock), which does not depend on network namespaces.
Everything (daemon, sandboxes, servers, namespaces and with them the bridge, veths and nft
tables) is removed at the end, also on failure.
"""
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import warren_harness as wh

INTERNET = "203.0.113.10"
PRIVATE = "10.123.0.10"
METADATA = "169.254.169.254"
RESOLVER = "10.123.0.53"
ROUTER = "198.51.100.1"
UPLINK = "198.51.100.2"  # D's own address
GATEWAY = "10.88.0.1"    # D's address on the sandbox bridge (NETWORK_SUBNET default)
SUBNET = "10.88.0.0/16"  # NETWORK_SUBNET default
OUTSIDE_ADDRS = (INTERNET, PRIVATE, METADATA, RESOLVER)
TCP_PORTS = (53, 80, 443, 8080, 8443)
HOLD_PORT = 9000  # TCP: answers, then holds the connection until the client closes it
HOST_PORTS = (443, 8443)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")

# A server for the lab: TCP on 0.0.0.0 for each port, UDP per address (so a reply leaves from
# the address that was asked); every connection or datagram is logged as
# "tcp|udp LOCAL_ADDR:PORT PEER_ADDR". Connections to the hold ports stay open until the
# client closes them.
SERVER_PY = r'''
import socket, sys, threading
log = open(sys.argv[1], "a", buffering=1)
tcp_ports = [int(p) for p in sys.argv[2].split(",") if p]
udp_addrs = [a for a in sys.argv[3].split(",") if a]
hold_ports = [int(p) for p in sys.argv[4].split(",") if p]
lock = threading.Lock()
def note(line):
    with lock:
        log.write(line + "\n")
def hold(c):
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, a = s.accept()
        local = c.getsockname()[0]
        note(f"tcp {local}:{port} {a[0]}")
        try:
            c.sendall(f"hello {local}:{port}\n".encode())
        except OSError:
            pass
        if port in hold_ports:
            threading.Thread(target=hold, args=(c,), daemon=True).start()
        else:
            c.close()
def udp(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, 53))
    while True:
        d, a = s.recvfrom(2048)
        note(f"udp {addr}:53 {a[0]}")
        s.sendto(b"answer " + d, a)
for p in tcp_ports + hold_ports:
    threading.Thread(target=tcp, args=(p,), daemon=True).start()
for a in udp_addrs:
    threading.Thread(target=udp, args=(a,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''

# Runs inside a sandbox: probe every target at once (so blocked ones, which time out, cost
# one timeout in all) and print {"proto host port": result} as JSON. Results: "open" (a
# connection answered with its banner / a datagram answered), "timeout", or an errno name.
PROBE_PY = r'''
import errno, json, socket, threading
targets = @TARGETS@
res = {}
def one(proto, host, port):
    key = f"{proto} {host} {port}"
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=@TIMEOUT@)
            s.settimeout(@TIMEOUT@)
            res[key] = "open" if s.recv(64).startswith(b"hello") else "silent"
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(@TIMEOUT@)
            s.sendto(b"q", (host, port))
            res[key] = "open" if s.recv(64).startswith(b"answer") else "silent"
    except socket.timeout:
        res[key] = "timeout"
    except OSError as e:
        res[key] = errno.errorcode.get(e.errno, str(e.errno))
ts = [threading.Thread(target=one, args=t) for t in targets]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps(res))
'''


def probe_code(targets, timeout=1.5):
        """PROBE_PY for these (proto, host, port) targets."""
        return (PROBE_PY.replace("@TARGETS@", json.dumps([list(t) for t in targets]))
                .replace("@TIMEOUT@", str(timeout)))


def run(argv, check=True):
        """Run a command (no shell); its output, or an AssertionError with its stderr."""
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and p.returncode != 0:
                raise AssertionError(f"{argv} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout


class UnixHTTP(http.client.HTTPConnection):
        """HTTP over warrend's unix socket."""

        def __init__(self, path, timeout=60):
                super().__init__("localhost", timeout=timeout)
                self.unix_path = path

        def connect(self):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(self.timeout)
                s.connect(self.unix_path)
                self.sock = s


class Lab:
        """The namespaces, their servers and a warrend inside D (see the module doc)."""

        def __init__(self):
                tag = secrets.token_hex(3)
                self.d = f"wtest-egress-d-{tag}"
                self.o = f"wtest-egress-o-{tag}"
                self.root = tempfile.mkdtemp(prefix="warren-egress-")
                os.chmod(self.root, 0o755)
                self.data_dir = os.path.join(self.root, "data")
                os.makedirs(self.data_dir)
                self.outside_log = os.path.join(self.root, "outside.log")
                self.host_log = os.path.join(self.root, "host.log")
                self.key = "wk_test_" + secrets.token_hex(24)
                self.procs = []
                self.daemon = None
                self.daemon_log = None
                self.port = None
                self.made_ns = []
                self.created = set()

        # -- namespaces --

        def ns_run(self, ns, argv, check=True):
                return run(["nsenter", f"--net=/run/netns/{ns}"] + argv, check)

        def build(self):
                for ns in (self.d, self.o):
                        run(["ip", "netns", "add", ns])
                        self.made_ns.append(ns)
                d, o = self.d, self.o
                self.ns_run(d, ["ip", "link", "set", "lo", "up"])
                self.ns_run(o, ["ip", "link", "set", "lo", "up"])
                # the veth is born in D with its peer directly in O: it never exists in the
                # host's namespace
                self.ns_run(d, ["ip", "link", "add", "up0", "type", "veth", "peer", "name", "dn0",
                                "netns", f"/run/netns/{o}"])
                self.ns_run(d, ["ip", "addr", "add", f"{UPLINK}/24", "dev", "up0"])
                self.ns_run(d, ["ip", "link", "set", "up0", "up"])
                self.ns_run(d, ["ip", "route", "add", "default", "via", ROUTER])
                self.ns_run(o, ["ip", "addr", "add", f"{ROUTER}/24", "dev", "dn0"])
                self.ns_run(o, ["ip", "link", "set", "dn0", "up"])
                for a in OUTSIDE_ADDRS:
                        self.ns_run(o, ["ip", "addr", "add", f"{a}/32", "dev", "lo"])
                # O routes the sandbox subnet back to D, as a router on the host's network
                # might: a packet leaving D without NAT is answered, so such a leak shows.
                self.ns_run(o, ["ip", "route", "add", SUBNET, "via", UPLINK])
                # The lab is closed: D reaches only O, and O nothing beyond its own links.
                d_routes = self.ns_run(d, ["ip", "-4", "route", "show"]).strip().splitlines()
                assert sorted(r.split()[0] for r in d_routes) == ["198.51.100.0/24", "default"], \
                        d_routes
                assert "via 198.51.100.1 dev up0" in self.ns_run(d, ["ip", "route", "show",
                                                                     "default"])
                assert "default" not in self.ns_run(o, ["ip", "-4", "route", "show"])
                assert "eth0" not in self.ns_run(d, ["ip", "-br", "link"])
                self.start_server(o, self.outside_log, TCP_PORTS, OUTSIDE_ADDRS, (HOLD_PORT,))
                self.start_server(d, self.host_log, HOST_PORTS, ())

        def start_server(self, ns, log, ports, udp_addrs, hold_ports=()):
                script = os.path.join(self.root, "server.py")
                with open(script, "w") as f:
                        f.write(SERVER_PY)
                p = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", sys.executable, script,
                                      log, ",".join(map(str, ports)), ",".join(udp_addrs),
                                      ",".join(map(str, hold_ports))],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                self.procs.append(p)
                assert p.stdout.readline().strip() == "ready", "lab server did not start"

        # -- the daemon --

        def start_daemon(self, extra_env=None):
                port_file = os.path.join(self.data_dir, "port")
                if os.path.exists(port_file):
                        os.unlink(port_file)
                env = dict(os.environ)
                env.update(wh.DEFAULT_ENV)
                env.update({"WARREN_ADMIN_KEY": self.key, "NETWORK_EGRESS": "true",
                            "NETWORK_DNS": RESOLVER})
                env.update(extra_env or {})
                self.daemon_log = open(os.path.join(self.root, "warrend.log"), "ab")
                # Listening on every address of D, so that only the policy stands between a
                # sandbox and the API port on the gateway and uplink addresses.
                argv = ["nsenter", f"--net=/run/netns/{self.d}",
                        os.path.join(wh.bin_dir(), "warrend"), "--listen", "0.0.0.0:0",
                        "--data-dir", self.data_dir, "--port-file", port_file]
                self.daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                               stdout=self.daemon_log, stderr=self.daemon_log,
                                               env=env)

                def ready():
                        if self.daemon.poll() is not None:
                                raise AssertionError("warrend exited:\n" + self.log_tail())
                        try:
                                return self.request("GET", "/health", timeout=2)[0] == 200
                        except OSError:
                                return False
                wh.wait_until(ready, wh.START_TIMEOUT, what="warrend in the lab to answer")
                self.port = int(open(port_file).read())

        def stop_daemon(self, kill9=False):
                if self.daemon and self.daemon.poll() is None:
                        self.daemon.send_signal(signal.SIGKILL if kill9 else signal.SIGTERM)
                        try:
                                self.daemon.wait(15)
                        except subprocess.TimeoutExpired:
                                self.daemon.kill()
                                self.daemon.wait(5)
                if self.daemon_log:
                        self.daemon_log.close()
                        self.daemon_log = None

        def log_tail(self, n=3000):
                try:
                        with open(os.path.join(self.root, "warrend.log"), "rb") as f:
                                return f.read()[-n:].decode(errors="replace")
                except OSError:
                        return ""

        # -- API --

        def request(self, method, path, body=None, timeout=60):
                conn = UnixHTTP(os.path.join(self.data_dir, "warren.sock"), timeout=timeout)
                try:
                        headers = {"Authorization": f"ApiKey {self.key}"}
                        data = None
                        if body is not None:
                                data = body if isinstance(body, bytes) else json.dumps(body)
                                headers["Content-Type"] = "application/json"
                        conn.request(method, path, body=data, headers=headers)
                        resp = conn.getresponse()
                        raw = resp.read()
                        try:
                                return resp.status, json.loads(raw)
                        except ValueError:
                                return resp.status, raw
                finally:
                        conn.close()

        def create(self, **fields):
                status, body = self.request("POST", "/api/v1/sandbox/create", fields)
                assert status == 201, (status, body, self.log_tail())
                self.created.add(body["sandbox_id"])
                return body

        def get(self, sid):
                status, body = self.request("GET", f"/api/v1/sandbox/{sid}")
                assert status == 200, (status, body)
                return body

        def delete(self, sid):
                status, body = self.request("DELETE", f"/api/v1/sandbox/{sid}")
                assert status in (200, 404), (status, body)
                self.created.discard(sid)

        def patch(self, sid, policy):
                return self.request("PATCH", f"/api/v1/sandbox/{sid}/network", policy)

        def run_code(self, sid, code, user="user", timeout_ms=60000):
                status, body = self.request("POST", f"/api/v1/sandbox/{sid}/run-code",
                                            {"code": code, "language": "python", "user": user,
                                             "timeout": timeout_ms})
                assert status == 200, (status, body)
                return body

        def sh(self, sid, command, user="user"):
                status, body = self.request("POST", f"/api/v1/sandbox/{sid}/execute",
                                            {"command": command, "user": user})
                assert status == 200, (status, body)
                return body

        def probe(self, sid, targets, timeout=1.5):
                res = self.run_code(sid, probe_code(targets, timeout))
                assert res["exit_code"] == 0, res
                return json.loads(res["stdout"])

        # -- observations --

        def log_mark(self, path):
                try:
                        return os.path.getsize(path)
                except OSError:
                        return 0

        def log_since(self, path, mark):
                with open(path) as f:
                        f.seek(mark)
                        return f.read().splitlines()

        def nft(self, *args):
                return self.ns_run(self.d, ["nft"] + list(args))

        # -- teardown --

        def destroy(self):
                leaked = []
                try:
                        if self.daemon and self.daemon.poll() is None:
                                for sid in list(self.created):
                                        try:
                                                self.delete(sid)
                                        except Exception:
                                                pass
                                for sid in list(self.created) + list(self.created_all()):
                                        try:
                                                wh.wait_processes_gone(sid, timeout=10)
                                        except AssertionError:
                                                leaked.append(sid)
                finally:
                        self.stop_daemon()
                        for sid in self.created_all():
                                if wh.sandbox_host_pids(sid):
                                        leaked.append(sid)
                                        wh.host_kill_sandbox_processes(sid)
                        for p in self.procs:
                                p.kill()
                                p.wait(5)
                        for ns in self.made_ns:
                                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                        if not wh.host_mounts_mentioning(self.data_dir):
                                shutil.rmtree(self.root, ignore_errors=True)
                return leaked

        def created_all(self):
                """Every sandbox id this lab's data dir knows (its sandboxes directory)."""
                try:
                        return [n for n in os.listdir(os.path.join(self.data_dir, "sandboxes"))]
                except OSError:
                        return []


@pytest.fixture(scope="module")
def lab():
        bdir = wh.bin_dir()
        assert os.access(os.path.join(bdir, "warrend"), os.X_OK)
        lab = Lab()
        try:
                lab.build()
                lab.start_daemon()
        except BaseException:
                lab.destroy()
                raise
        yield lab
        leaked = lab.destroy()
        assert not leaked, f"sandbox processes left behind: {leaked}"
        left = [n for n in lab.made_ns if os.path.exists(f"/run/netns/{n}")]
        assert not left, f"network namespaces left behind: {left}"


@pytest.fixture
def egress(lab):
        """A fresh egress sandbox with the default policy; deleted afterwards."""
        sid = lab.create(network="egress", timeout_seconds=600)["sandbox_id"]
        yield sid
        lab.delete(sid)


def is_open(res, key):
        return res[key] == "open"


# ---- tests ----

def test_shared_test_daemon_refuses_egress(server):
        """The session daemon runs in the host's namespace with NETWORK_EGRESS=false: an
        egress request is refused before anything is made."""
        wh.assert_error(server.create_raw(network="egress"), 400, "invalid_request",
                        mentions="network")
        assert "warren0" not in run(["ip", "-br", "link"])


def test_default_policy(lab, egress):
        """Default policy (TCP 443, DNS 53): the internet host on 443 and the resolver on 53
        only; never a private host, the metadata service, the host itself (its addresses,
        its services, the API port) or the host's loopback."""
        info = lab.get(egress)
        assert info["network"] == "egress"
        assert info["network_policy"] == {
                "allow": [{"cidr": "0.0.0.0/0", "protocol": "tcp", "ports": [443]},
                          {"cidr": "0.0.0.0/0", "protocol": "any", "ports": [53]}],
                "deny": []}
        assert re.fullmatch(r"10\.88\.\d+\.\d+", info["network_address"])
        # warrend found its cgroups from inside D: the sandbox has them, with usage
        assert wh.sandbox_cgroup_dirs(egress)
        assert "usage" in info and info["usage"]["memory_bytes"] > 0
        out = lab.sh(egress, "cat /etc/resolv.conf; ls /sys/class/net; cat /proc/net/if_inet6")
        assert out["exit_code"] == 0, out
        assert f"nameserver {RESOLVER}" in out["stdout"]
        assert "eth0" in out["stdout"] and "lo" in out["stdout"]
        # IPv6 is off on eth0: it has no address at all (lo keeps ::1)
        assert not [l for l in out["stdout"].splitlines() if l.endswith(" eth0")], out["stdout"]

        allowed = [("tcp", INTERNET, 443), ("udp", INTERNET, 53), ("tcp", INTERNET, 53),
                   ("udp", RESOLVER, 53), ("tcp", RESOLVER, 53)]
        blocked = [("tcp", INTERNET, 80), ("tcp", INTERNET, 8080),
                   ("tcp", PRIVATE, 443), ("tcp", PRIVATE, 53), ("udp", PRIVATE, 53),
                   ("tcp", METADATA, 80), ("tcp", METADATA, 443),
                   ("tcp", RESOLVER, 443), ("tcp", RESOLVER, 80)]
        host = [("tcp", GATEWAY, 443), ("tcp", GATEWAY, 8443), ("tcp", GATEWAY, lab.port),
                ("tcp", UPLINK, 443), ("tcp", UPLINK, lab.port), ("tcp", "127.0.0.1", lab.port)]
        m_out, m_host = lab.log_mark(lab.outside_log), lab.log_mark(lab.host_log)
        res = lab.probe(egress, allowed + blocked + host)
        for t in allowed:
                assert is_open(res, " ".join(map(str, t))), (t, res)
        for t in blocked + host:
                assert not is_open(res, " ".join(map(str, t))), (t, res)
        # What the other ends saw: the allowed ones arrived (NATed to D's uplink address),
        # none of the blocked ones did, and no host service was ever reached.
        seen = lab.log_since(lab.outside_log, m_out)
        assert f"tcp {INTERNET}:443 {UPLINK}" in seen and f"udp {RESOLVER}:53 {UPLINK}" in seen
        for proto, h, p in blocked:
                assert not [l for l in seen if l.startswith(f"{proto} {h}:{p} ")], (h, p, seen)
        assert not [l for l in seen if PRIVATE in l or METADATA in l], seen
        assert lab.log_since(lab.host_log, m_host) == []
        # the sandbox's own loopback still works
        res = lab.run_code(egress, "import socket\ns=socket.socket();s.bind(('127.0.0.1',0));"
                                   "s.listen()\nc=socket.create_connection(s.getsockname(),3);"
                                   "a,_=s.accept();c.sendall(b'ping');print(a.recv(4).decode())")
        assert res["stdout"] == "ping\n", res


def test_other_sandboxes_unreachable(lab):
        """Two egress sandboxes, one serving on 8443, the other allowed 8443 everywhere:
        still no way across, directly or through the gateway."""
        open_policy = {"allow": [{"ports": [8443, "1024-65535"], "protocol": "any"}]}
        a = lab.create(network="egress", network_policy=open_policy)
        b = lab.create(network="egress", network_policy=open_policy)
        try:
                b_ip = b["network_address"]
                # a server in b, as the sandbox user (8443 is unprivileged)
                srv = ("import socket,os\ns=socket.socket();"
                       "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                       "s.bind(('0.0.0.0',8443));s.listen()\nif os.fork():os._exit(0)\n"
                       "os.setsid()\nwhile True:\n c,_=s.accept();c.sendall(b'hello b\\n');"
                       "c.close()\n")
                r = lab.run_code(b["sandbox_id"], srv)
                assert r["exit_code"] == 0, r
                # control: the server answers inside b
                assert lab.probe(b["sandbox_id"], [("tcp", "127.0.0.1", 8443)]) == \
                        {"tcp 127.0.0.1 8443": "open"}
                # and b is a sandbox a is allowed to reach by port: the internet host on 8443
                res = lab.probe(a["sandbox_id"], [("tcp", b_ip, 8443), ("udp", b_ip, 8443),
                                                  ("tcp", INTERNET, 8443)])
                assert res[f"tcp {INTERNET} 8443"] == "open", res
                assert res[f"tcp {b_ip} 8443"] != "open", res
                assert res[f"udp {b_ip} 8443"] != "open", res
        finally:
                lab.delete(a["sandbox_id"])
                lab.delete(b["sandbox_id"])


def test_policy_change_takes_effect(lab, egress):
        """PATCH /network on a running sandbox: the new policy applies at once, in both
        directions (opening and closing), and GET shows it."""
        t443, t8080 = ("tcp", INTERNET, 443), ("tcp", INTERNET, 8080)
        k443, k8080 = f"tcp {INTERNET} 443", f"tcp {INTERNET} 8080"
        res = lab.probe(egress, [t443, t8080])
        assert res[k443] == "open" and res[k8080] != "open", res

        # A flow already open (conntrack: established) is cut too: packets are checked one by
        # one. The same UDP 5-tuple (fixed source port) before and after a deny. The filter
        # inside the sandbox's namespace refuses the datagram at once (EPERM).
        flow = ("import errno, socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                "s.bind(('0.0.0.0',40053));s.settimeout(1.5)\n"
                f"try:\n s.sendto(b'q',('{INTERNET}',53))\n print(s.recv(64).decode())\n"
                "except socket.timeout:\n print('none')\n"
                "except OSError as e:\n print(errno.errorcode[e.errno])\n")
        assert lab.run_code(egress, flow)["stdout"].startswith("answer"), "control"
        status, body = lab.patch(egress, {"deny": [{"cidr": f"{INTERNET}/32", "ports": [53]}]})
        assert status == 200, body
        assert lab.run_code(egress, flow)["stdout"].strip() == "EPERM"
        status, body = lab.patch(egress, {"deny": []})
        assert status == 200, body
        assert lab.run_code(egress, flow)["stdout"].startswith("answer")

        status, body = lab.patch(egress, {"allow": [{"cidr": "203.0.113.0/24", "ports": [8080],
                                                     "protocol": "tcp"}]})
        assert status == 200, body
        assert body["network_policy"]["allow"] == [{"cidr": "203.0.113.0/24", "protocol": "tcp",
                                                    "ports": [8080]}]
        assert body["network_policy"]["deny"] == []
        res = lab.probe(egress, [t443, t8080])
        assert res[k8080] == "open" and res[k443] != "open", res

        # deny comes first: a deny of the host beats the allow of its network; the allow
        # list, left out of this PATCH, is kept
        status, body = lab.patch(egress, {"deny": [{"cidr": f"{INTERNET}/32"}]})
        assert status == 200, body
        assert body["network_policy"]["allow"][0]["ports"] == [8080]
        assert lab.probe(egress, [t8080])[k8080] != "open"
        assert lab.get(egress)["network_policy"] == body["network_policy"]
        status, body = lab.request("GET", f"/api/v1/sandbox/{egress}/network")
        assert status == 200 and body["network_policy"]["deny"] == [
                {"cidr": f"{INTERNET}/32", "protocol": "any"}], body

        # an empty allow list: nothing at all, not even DNS to the resolver
        status, body = lab.patch(egress, {"allow": [], "deny": []})
        assert status == 200, body
        res = lab.probe(egress, [t443, t8080, ("udp", RESOLVER, 53)])
        assert all(v != "open" for v in res.values()), res
        # and back to the default
        status, body = lab.patch(egress, {"allow": None})
        assert status == 200 and len(body["network_policy"]["allow"]) == 2, body
        assert lab.probe(egress, [t443])[k443] == "open"


def test_network_none_is_loopback_only(lab):
        sid = lab.create(network="none")["sandbox_id"]
        try:
                info = lab.get(sid)
                assert info["network"] == "none" and "network_policy" not in info
                out = lab.sh(sid, "ls /sys/class/net")
                assert out["stdout"].split() == ["lo"], out
                res = lab.probe(sid, [("tcp", INTERNET, 443), ("udp", RESOLVER, 53),
                                      ("tcp", GATEWAY, lab.port)])
                assert res[f"tcp {INTERNET} 443"] == "ENETUNREACH", res
                assert all(v != "open" for v in res.values()), res
                status, body = lab.patch(sid, {"allow": []})
                assert status == 409 and body["error"]["code"] == "conflict", body
        finally:
                lab.delete(sid)


RAW_PY = r'''
import errno, json, socket
out = {}
for name, args in [("packet", (socket.AF_PACKET, socket.SOCK_RAW, 0x0300)),
                   ("raw_icmp", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
                   ("raw_ip", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)),
                   ("raw_udp", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)),
                   ("ping", (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))]:
    try:
        socket.socket(*args).close(); out[name] = "created"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
'''


@pytest.mark.parametrize("user", ["user", "root"])
def test_raw_sockets_and_reconfiguration_refused(lab, egress, user):
        """No raw or packet sockets (the network namespace belongs to the initial user
        namespace, where the sandbox has no CAP_NET_RAW), no ping sockets, and root inside
        cannot change its address, MAC or routes."""
        res = lab.run_code(egress, RAW_PY, user=user)
        assert res["exit_code"] == 0, res
        got = json.loads(res["stdout"])
        assert all(v in ("EPERM", "EACCES") for v in got.values()), got
        for cmd in ("ip addr add 10.88.200.200/16 dev eth0",
                    "ip link set dev eth0 address 02:77:0a:58:c8:c8",
                    "ip route add 10.123.0.0/16 via 10.88.0.1",
                    "ip link set dev eth0 down"):
                out = lab.sh(egress, cmd, user=user)
                assert out["exit_code"] != 0, (cmd, out)
        assert lab.probe(egress, [("tcp", INTERNET, 443)])[f"tcp {INTERNET} 443"] == "open"


def sandbox_netns(lab, sid):
        pid = wh.sandbox_init_pid(sid)
        assert pid, f"no warren-init for {sid}"
        return f"/proc/{pid[0]}/ns/net"


def in_sandbox_ns_as_host_root(lab, sid, argv):
        """Run argv as real root in the sandbox's network namespace: an attacker who got
        CAP_NET_RAW and CAP_NET_ADMIN there (which the sandbox does not have)."""
        return run(["nsenter", f"--net={sandbox_netns(lab, sid)}"] + argv)


CONNECT_FROM_PY = r'''
import socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], int(sys.argv[3])))
    print("open" if s.recv(64).startswith(b"hello") else "silent")
except OSError as e:
    print(type(e).__name__)
'''

GARP_PY = r'''
import socket, struct, sys
ifname, mac, claim_ip = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), sys.argv[3]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
ip = socket.inet_aton(claim_ip)
sent = 0
for op, tha, dst in ((2, b"\xff" * 6, b"\xff" * 6), (1, b"\0" * 6, b"\xff" * 6)):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, ip, tha, ip)
    sent += s.send(dst + mac + b"\x08\x06" + arp)
print(sent)
'''


def test_spoofing_and_arp_poisoning_dropped(lab):
        """Even with the capabilities the sandbox lacks (simulated by entering its network
        namespace as host root): a foreign source address or MAC does not get out, and a
        forged ARP cannot take over another sandbox's address on the host."""
        a = lab.create(network="egress")
        b = lab.create(network="egress")
        try:
                sa, sb_ = a["sandbox_id"], b["sandbox_id"]
                a_ip, b_ip = a["network_address"], b["network_address"]
                script = os.path.join(lab.root, "connect_from.py")
                with open(script, "w") as f:
                        f.write(CONNECT_FROM_PY)
                connect = [sys.executable, script]
                # control: from a's namespace with a's own address, the internet answers
                assert in_sandbox_ns_as_host_root(lab, sa, connect + [a_ip, INTERNET, "443"]) \
                        .strip() == "open"
                # a second, foreign address on a's eth0 (10.88.0.250 is nobody's here)
                mark = lab.log_mark(lab.outside_log)
                in_sandbox_ns_as_host_root(lab, sa, ["ip", "addr", "add", "10.88.0.250/16",
                                                     "dev", "eth0"])
                out = in_sandbox_ns_as_host_root(lab, sa, connect + ["10.88.0.250", INTERNET,
                                                                     "443"])
                assert out.strip() != "open", out
                # b's address, from a
                in_sandbox_ns_as_host_root(lab, sa, ["ip", "addr", "add", f"{b_ip}/32", "dev",
                                                     "eth0"])
                out = in_sandbox_ns_as_host_root(lab, sa, connect + [b_ip, INTERNET, "443"])
                assert out.strip() != "open", out
                assert lab.log_since(lab.outside_log, mark) == []

                # b has talked through the gateway, so the host has a neighbour entry for it
                assert lab.probe(sb_, [("tcp", INTERNET, 443)])[f"tcp {INTERNET} 443"] == "open"
                b_mac = "02:77:" + ":".join(f"{int(x):02x}" for x in b_ip.split("."))
                a_mac = "02:77:" + ":".join(f"{int(x):02x}" for x in a_ip.split("."))
                neigh = lab.ns_run(lab.d, ["ip", "neigh", "show", b_ip])
                assert b_mac in neigh, neigh
                time.sleep(1.2)  # past the neighbour entry's locktime, so an update would take
                garp = os.path.join(lab.root, "garp.py")
                with open(garp, "w") as f:
                        f.write(GARP_PY)
                sent = in_sandbox_ns_as_host_root(lab, sa, [sys.executable, garp, "eth0", a_mac,
                                                            b_ip])
                assert int(sent) > 0
                time.sleep(0.3)
                neigh = lab.ns_run(lab.d, ["ip", "neigh", "show", b_ip])
                assert b_mac in neigh and a_mac not in neigh, neigh
                # b still gets its answers
                assert lab.probe(sb_, [("tcp", INTERNET, 443)])[f"tcp {INTERNET} 443"] == "open"

                # a foreign MAC with a's own address does not get out either
                in_sandbox_ns_as_host_root(lab, sa, ["ip", "addr", "del", f"{b_ip}/32", "dev",
                                                     "eth0"])
                in_sandbox_ns_as_host_root(lab, sa, ["ip", "link", "set", "dev", "eth0",
                                                     "address", "02:77:0a:58:ff:01"])
                out = in_sandbox_ns_as_host_root(lab, sa, connect + [a_ip, INTERNET, "443"])
                assert out.strip() != "open", out
        finally:
                lab.delete(a["sandbox_id"])
                lab.delete(b["sandbox_id"])


@pytest.mark.parametrize("fields, mentions", [
        ({"network": "bridge"}, "network"),
        ({"network": "none", "network_policy": {"allow": []}}, "network_policy"),
        ({"network": "egress", "network_policy": []}, "network_policy"),
        ({"network": "egress", "network_policy": {"allowed": []}}, "allowed"),
        ({"network": "egress", "network_policy": {"allow": {}}}, "allow"),
        ({"network": "egress", "network_policy": {"allow": [{"cidr": "10.0.0.1/8"}]}},
         "host bits"),
        ({"network": "egress", "network_policy": {"allow": [{"cidr": "300.1.1.1/32"}]}},
         "cidr"),
        ({"network": "egress", "network_policy": {"allow": [{"cidr": "10.1/16"}]}}, "cidr"),
        ({"network": "egress", "network_policy": {"allow": [{"cidr": "1.2.3.4/33"}]}}, "prefix"),
        ({"network": "egress", "network_policy": {"allow": [{"cidr": "1.2.3.0/024"}]}},
         "prefix"),
        ({"network": "egress", "network_policy": {"deny": [{"cidr": "2001:db8::/129"}]}},
         "prefix"),
        ({"network": "egress", "network_policy": {"allow": [{"cidr": "2001:db8::/32"}]}},
         "IPv6"),
        ({"network": "egress", "network_policy": {"allow": [{"cidr": 5}]}}, "cidr"),
        ({"network": "egress", "network_policy": {"allow": [{"ports": [0]}]}}, "ports[0]"),
        ({"network": "egress", "network_policy": {"allow": [{"ports": [65536]}]}}, "ports[0]"),
        ({"network": "egress", "network_policy": {"allow": [{"ports": [443, "10-5"]}]}},
         "ports[1]"),
        ({"network": "egress", "network_policy": {"allow": [{"ports": ["1-2-3"]}]}}, "ports"),
        ({"network": "egress", "network_policy": {"allow": [{"ports": []}]}}, "ports"),
        ({"network": "egress", "network_policy": {"allow": [{"ports": list(range(1, 18))}]}},
         "ports"),
        ({"network": "egress", "network_policy": {"allow": [{"protocol": "icmp"}]}},
         "protocol"),
        ({"network": "egress", "network_policy": {"allow": [{"port": 443}]}}, "port"),
        ({"network": "egress", "network_policy": {"deny": [{}] * 65}}, "at most 64"),
        ({"network": "egress", "network_policy": {"allow": ["0.0.0.0/0"]}}, "allow[0]"),
])
def test_policy_validation(lab, fields, mentions):
        status, body = lab.request("POST", "/api/v1/sandbox/create", fields)
        assert status == 400, (status, body)
        assert body["error"]["code"] == "invalid_request", body
        assert mentions in body["error"]["message"], body


def test_policy_accepts_and_normalises(lab):
        policy = {"allow": [{"cidr": "203.0.113.10", "ports": ["443", "8000-8080"],
                             "protocol": "tcp"}, {"cidr": "0.0.0.0/0", "ports": [53],
                                                  "protocol": "udp"}],
                  "deny": [{"cidr": "2001:db8::/32"}, {"cidr": "203.0.113.0/25", "ports": [80]}]}
        b = lab.create(network="egress", network_policy=policy)
        try:
                assert b["network_policy"] == {
                        "allow": [{"cidr": "203.0.113.10/32", "protocol": "tcp",
                                   "ports": [443, "8000-8080"]},
                                  {"cidr": "0.0.0.0/0", "protocol": "udp", "ports": [53]}],
                        "deny": [{"cidr": "2001:db8::/32", "protocol": "any"},
                                 {"cidr": "203.0.113.0/25", "protocol": "any", "ports": [80]}]}
                assert b["startup_metrics"]["net_ms"] > 0
                sid = b["sandbox_id"]
                res = lab.probe(sid, [("tcp", INTERNET, 443), ("tcp", INTERNET, 8080),
                                      ("tcp", INTERNET, 8443), ("tcp", RESOLVER, 53),
                                      ("udp", RESOLVER, 53)])
                assert res == {f"tcp {INTERNET} 443": "open", f"tcp {INTERNET} 8080": "open",
                               f"tcp {INTERNET} 8443": "timeout", f"tcp {RESOLVER} 53": "timeout",
                               f"udp {RESOLVER} 53": "open"}, res
                # PATCH validates the same way and changes nothing on a 400
                status, body = lab.patch(sid, {"allow": [{"cidr": "10.0.0.1/8"}]})
                assert status == 400 and "host bits" in body["error"]["message"], body
                assert lab.get(sid)["network_policy"] == b["network_policy"]
                status, body = lab.request("PATCH", f"/api/v1/sandbox/{sid}/network", b"[1]")
                assert status == 400, body
        finally:
                lab.delete(b["sandbox_id"])


def test_stop_removes_rules_and_releases_address(lab):
        b = lab.create(network="egress")
        sid, ip = b["sandbox_id"], b["network_address"]
        try:
                assert ip in lab.nft("list", "map", "inet", "warren", "sandboxes")
                status, _ = lab.request("POST", f"/api/v1/sandbox/{sid}/stop")
                assert status == 200

                def cleaned():
                        return ip not in lab.nft("list", "map", "inet", "warren", "sandboxes") and \
                                ip not in lab.nft("list", "set", "bridge", "warren", "ports")
                wh.wait_until(cleaned, 15, what="the stopped sandbox's rules to go")
                info = lab.get(sid)
                assert info["status"] == "stopped" and info["network"] == "egress"
                assert "network_address" not in info and "network_policy" in info
                status, body = lab.patch(sid, {"allow": []})
                assert status == 409, body
                # the veth went with the sandbox's namespace
                wh.wait_until(lambda: "wv" not in lab.ns_run(lab.d, ["ip", "-br", "link"]), 15,
                              what="the veth to go")
        finally:
                lab.delete(sid)


def test_restart_keeps_network_and_restores_rules(lab):
        """After a daemon restart the sandbox keeps its address and policy; its rules are
        written again from the store (here they were flushed while the daemon was down)."""
        b = lab.create(network="egress", network_policy={"allow": [{"ports": [8080],
                                                                     "protocol": "tcp"}]})
        sid, ip = b["sandbox_id"], b["network_address"]
        try:
                k = f"tcp {INTERNET} 8080"
                assert lab.probe(sid, [("tcp", INTERNET, 8080)])[k] == "open"
                lab.stop_daemon(kill9=True)
                # the sandbox's entry is gone: it can reach nothing
                lab.nft("flush", "map", "inet", "warren", "sandboxes")
                lab.start_daemon()

                def restored():
                        return ip in lab.nft("list", "map", "inet", "warren", "sandboxes")
                wh.wait_until(restored, 20, what="the policy to be restored")
                info = lab.get(sid)
                assert info["status"] == "running" and info["network_address"] == ip
                assert info["network_policy"]["allow"] == [{"cidr": "0.0.0.0/0",
                                                            "protocol": "tcp", "ports": [8080]}]
                res = lab.probe(sid, [("tcp", INTERNET, 8080), ("tcp", INTERNET, 443)])
                assert res[k] == "open" and res[f"tcp {INTERNET} 443"] != "open", res
        finally:
                lab.delete(sid)


def nft_elements(lab, kind, name, family):
        """Elements of an nft set or map in D, one string each (none before its table
        exists: no egress sandbox was made yet in this lab)."""
        if "warren" not in lab.nft("list", "tables", family):
                return []
        out = lab.nft("-j", "list", kind, family, "warren", name)
        for obj in json.loads(out)["nftables"]:
                body = obj.get(kind)
                if body:
                        return [json.dumps(e) for e in body.get("elem", [])]
        return []


def test_warm_pool_hands_out_egress_sandboxes(lab):
        """With the warm pool on, egress sandboxes are pooled with their uplink but no policy
        (they forward nothing while they wait); a hand-out writes the tenant's policy."""
        lab.stop_daemon()
        ids = []
        try:
                lab.start_daemon({"WARM_POOL_ENABLED": "true", "WARM_POOL_SIZE": "2"})
                # earlier tests' sandboxes are gone (their rules are removed in the background)
                wh.wait_until(lambda: not nft_elements(lab, "map", "sandboxes", "inet") and
                              not nft_elements(lab, "set", "ports", "bridge"), 30,
                              what="earlier sandboxes' rules to go")
                pol = {"allow": [{"ports": [8080], "protocol": "tcp"}]}
                first = lab.create(network="egress", network_policy=pol)
                ids.append(first["sandbox_id"])
                assert first["startup_metrics"]["pool_hit"] is False  # a miss registers it

                def egress_ready():
                        st, p = lab.request("GET", "/api/v1/pool")
                        assert st == 200, p
                        return [c for c in p["classes"] if c["network"] == "egress" and
                                c["ready"] >= 2]
                wh.wait_until(egress_ready, 90, what="two pooled egress sandboxes")
                # the pooled ones have their ports but no entry in the policy map
                assert len(nft_elements(lab, "map", "sandboxes", "inet")) == 1
                assert len(nft_elements(lab, "set", "ports", "bridge")) >= 3

                b = lab.create(network="egress", network_policy=pol)
                ids.append(b["sandbox_id"])
                assert b["startup_metrics"]["pool_hit"] is True, b
                assert b["network"] == "egress"
                assert b["network_policy"]["allow"] == [{"cidr": "0.0.0.0/0", "protocol": "tcp",
                                                         "ports": [8080]}]
                assert b["network_address"] in lab.nft("list", "map", "inet", "warren",
                                                       "sandboxes")
                res = lab.probe(b["sandbox_id"], [("tcp", INTERNET, 8080), ("tcp", INTERNET, 443),
                                                  ("tcp", PRIVATE, 8080)])
                assert res == {f"tcp {INTERNET} 8080": "open", f"tcp {INTERNET} 443": "timeout",
                               f"tcp {PRIVATE} 8080": "timeout"}, res
                out = lab.sh(b["sandbox_id"], "cat /etc/resolv.conf")
                assert f"nameserver {RESOLVER}" in out["stdout"]
                # a network-none create is never served an egress sandbox
                n = lab.create(network="none")
                ids.append(n["sandbox_id"])
                assert n["network"] == "none"
                assert lab.sh(n["sandbox_id"], "ls /sys/class/net")["stdout"].split() == ["lo"]
        finally:
                for sid in ids:
                        lab.delete(sid)
                # back to the module's daemon: the pool off, its sandboxes removed on start
                lab.stop_daemon()
                lab.start_daemon()


def warren_cli(lab, *args):
        """The CLI against the lab's daemon, over its unix socket: stdout (exit 0 asserted)."""
        p = subprocess.run([os.path.join(wh.bin_dir(), "warren"), "--url",
                            "unix:" + os.path.join(lab.data_dir, "warren.sock"), "--api-key",
                            lab.key, *args], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        return p.stdout


def test_cli_create_and_network_round_trip(lab):
        """`warren create --network egress --allow ...` and `warren network ID` (GET, PATCH,
        --reset) against a daemon that offers egress: what they print, and what the sandbox
        can then reach."""
        sid = warren_cli(lab, "create", "--network", "egress", "--allow", ":8080/tcp",
                         "--deny", f"{INTERNET}:443").strip()
        lab.created.add(sid)
        try:
                ip = lab.get(sid)["network_address"]
                assert warren_cli(lab, "network", sid) == (
                        f"sandbox_id: {sid}\nnetwork: egress\naddress: {ip}\n"
                        "allow: 0.0.0.0/0:8080/tcp\n"
                        f"deny: {INTERNET}/32:443\n")
                t443, t8080 = ("tcp", INTERNET, 443), ("tcp", INTERNET, 8080)
                res = lab.probe(sid, [t443, t8080])
                assert res == {key(t443): "timeout", key(t8080): "open"}, res
                out = warren_cli(lab, "network", sid, "--allow", "203.0.113.0/24:443/tcp",
                                 "--deny", "none")
                assert "allow: 203.0.113.0/24:443/tcp\ndeny: none\n" in out, out
                res = lab.probe(sid, [t443, t8080])
                assert res == {key(t443): "open", key(t8080): "timeout"}, res
                out = warren_cli(lab, "network", sid, "--reset")
                assert out.endswith("allow: 0.0.0.0/0:443/tcp\nallow: 0.0.0.0/0:53\n"
                                    "deny: none\n"), out
                assert lab.get(sid)["network_policy"]["allow"][0]["ports"] == [443]
                assert warren_cli(lab, "rm", sid) == f"{sid}\n"
        finally:
                lab.delete(sid)


# ---- a flushed host ruleset, the filter inside the sandbox, connection limits ----

# What every fail-closed check probes: never reachable (private host, metadata service, the
# resolver and the internet host on ports the default policy does not allow, the host).
NEVER = [("tcp", PRIVATE, 443), ("tcp", PRIVATE, 80), ("udp", PRIVATE, 53),
         ("tcp", METADATA, 80), ("tcp", METADATA, 443), ("tcp", RESOLVER, 443),
         ("tcp", INTERNET, 80), ("tcp", INTERNET, 8080), ("tcp", INTERNET, 8443),
         ("tcp", GATEWAY, 443), ("tcp", UPLINK, 443), ("tcp", UPLINK, 8443)]


def key(t):
        return " ".join(map(str, t))


def assert_never_reached(lab, res, m_out, m_host):
        """None of NEVER answered, and the servers saw none of them arrive."""
        for t in NEVER:
                assert res[key(t)] != "open", (t, res)
        seen = lab.log_since(lab.outside_log, m_out)
        for proto, h, p in NEVER:
                assert not [l for l in seen if l.startswith(f"{proto} {h}:{p} ")], (h, p, seen)
        assert not [l for l in seen if PRIVATE in l or METADATA in l], seen
        assert lab.log_since(lab.host_log, m_host) == []


def probe_from_netns(lab, sid, targets):
        """PROBE_PY run by nobody inside the sandbox's network namespace, without the daemon
        (its own mount namespace: the host's; that changes nothing to its packets)."""
        out = run(["nsenter", f"--net={sandbox_netns(lab, sid)}", "setpriv", "--reuid=65534",
                   "--regid=65534", "--clear-groups", sys.executable, "-c",
                   probe_code(targets)])
        return json.loads(out)


def inner_ruleset(lab, sid):
        return in_sandbox_ns_as_host_root(lab, sid, ["nft", "list", "ruleset"])


def test_flushed_host_ruleset_fails_closed(lab):
        """The host's ruleset flushed while warrend is down: forwarding stays on, nothing of
        warren's is left on the host, and still the sandbox reaches nothing it may not (the
        table inside its namespace); its allowed destinations stop working (no NAT) until
        warrend, started again, writes the host's rules back."""
        sid = lab.create(network="egress")["sandbox_id"]
        try:
                ip = lab.get(sid)["network_address"]
                res = lab.probe(sid, [("tcp", INTERNET, 443)])
                assert res[f"tcp {INTERNET} 443"] == "open", res
                lab.stop_daemon(kill9=True)
                lab.nft("flush", "ruleset")
                assert lab.nft("list", "ruleset").strip() == ""
                assert lab.ns_run(lab.d, ["cat", "/proc/sys/net/ipv4/ip_forward"]).strip() == "1"
                assert "policy drop" in inner_ruleset(lab, sid)
                m_out, m_host = lab.log_mark(lab.outside_log), lab.log_mark(lab.host_log)
                res = probe_from_netns(lab, sid, NEVER + [("tcp", INTERNET, 443)])
                assert_never_reached(lab, res, m_out, m_host)
                # What the policy allows still leaves, without NAT now (with the sandbox's own
                # address: here O routes it back; on most networks the answer gets lost).
                assert res[f"tcp {INTERNET} 443"] == "open", res
                assert f"tcp {INTERNET}:443 {ip}" in lab.log_since(lab.outside_log, m_out)

                lab.start_daemon()
                wh.wait_until(lambda: ip in lab.nft("list", "map", "inet", "warren", "sandboxes"),
                              20, what="the host's rules to be written again")
                m_out = lab.log_mark(lab.outside_log)
                res = lab.probe(sid, NEVER + [("tcp", INTERNET, 443)])
                assert res[f"tcp {INTERNET} 443"] == "open", res
                assert_never_reached(lab, res, m_out, m_host)
        finally:
                if not lab.daemon or lab.daemon.poll() is not None:
                        lab.start_daemon()
                lab.delete(sid)


def test_watch_restores_flushed_host_rules(lab):
        """The host's ruleset flushed (or one of warren's tables deleted) while warrend runs:
        the sandbox never reaches more than its policy allows, and warrend writes the host's
        rules back by itself (and says so in its log)."""
        sid = lab.create(network="egress",
                         network_policy={"allow": [{"ports": [443, 8080], "protocol": "tcp"}]}
                         )["sandbox_id"]
        never = [t for t in NEVER if t != ("tcp", INTERNET, 8080)]
        allowed = [("tcp", INTERNET, 443), ("tcp", INTERNET, 8080)]
        try:
                ip = lab.get(sid)["network_address"]
                for what in (["flush", "ruleset"], ["delete", "table", "inet", "warren"],
                             ["delete", "table", "bridge", "warren"]):
                        log_mark = len(lab.log_tail(10**9))
                        m_out, m_host = (lab.log_mark(lab.outside_log),
                                         lab.log_mark(lab.host_log))
                        lab.nft(*what)
                        # at once, whether or not the watch has restored the rules yet
                        res = lab.probe(sid, [t for t in NEVER if t not in allowed])
                        for t in never:
                                assert res[key(t)] != "open", (what, t, res)

                        def restored():
                                tables = lab.nft("list", "tables")
                                return ("table inet warren" in tables and
                                        "table bridge warren" in tables and
                                        ip in lab.nft("list", "map", "inet", "warren",
                                                      "sandboxes") and
                                        "restored the base rules" in
                                        lab.log_tail(10**9)[log_mark:])
                        wh.wait_until(restored, 20, what=f"warrend to restore after {what}")
                        res = lab.probe(sid, never + allowed)
                        for t in allowed:
                                assert res[key(t)] == "open", (what, t, res)
                        seen = lab.log_since(lab.outside_log, m_out)
                        for proto, h, p in never:
                                assert not [l for l in seen if l.startswith(f"{proto} {h}:{p} ")], \
                                        (what, h, p, seen)
                        assert lab.log_since(lab.host_log, m_host) == []
                # the restored rules are whole: the bridge's checks and the limits are back
                assert ip in lab.nft("list", "set", "bridge", "warren", "ports")
                assert "ct count over 512" in lab.nft("list", "table", "inet", "warren")
                # and a policy change still works afterwards
                status, body = lab.patch(sid, {"allow": [{"ports": [8080], "protocol": "tcp"}]})
                assert status == 200, body
                res = lab.probe(sid, allowed)
                assert res[f"tcp {INTERNET} 8080"] == "open", res
                assert res[f"tcp {INTERNET} 443"] != "open", res
        finally:
                lab.delete(sid)


def test_policy_change_racing_a_restore(lab):
        """A policy change sent right after the host's ruleset is flushed answers 200, 409
        (the restore holds the sandbox) or 500 (it reached the host before the restore and
        changed nothing); retried until it passes, what the sandbox reaches in the end is
        the stored policy, on both layers."""
        sid = lab.create(network="egress",
                         network_policy={"allow": [{"ports": [443], "protocol": "tcp"}]}
                         )["sandbox_id"]
        try:
                ip = lab.get(sid)["network_address"]
                log_mark = len(lab.log_tail(10**9))
                lab.nft("flush", "ruleset")
                seen = set()

                def patched():
                        status, body = lab.patch(sid, {"allow": [{"ports": [8080],
                                                                  "protocol": "tcp"}]})
                        assert status in (200, 409, 500), (status, body)
                        seen.add(status)
                        return status == 200
                wh.wait_until(patched, 20, interval=0.02, what="the policy change to pass")
                wh.wait_until(lambda: ip in lab.nft("list", "map", "inet", "warren",
                                                    "sandboxes") and
                              "restored the base rules" in lab.log_tail(10**9)[log_mark:],
                              20, what="the restore")
                assert lab.get(sid)["network_policy"]["allow"][0]["ports"] == [8080]
                res = lab.probe(sid, [("tcp", INTERNET, 443), ("tcp", INTERNET, 8080)])
                assert res == {f"tcp {INTERNET} 443": "timeout",
                               f"tcp {INTERNET} 8080": "open"}, (res, seen)
                rules = inner_ruleset(lab, sid)
                assert "tcp dport 8080 accept" in rules and "dport 443" not in rules, rules
                assert "tcp dport 8080 goto sl_" in lab.nft("list", "table", "inet", "warren")
        finally:
                lab.delete(sid)


NETLINK_FLUSH_PY = r"""
import errno, socket, struct
# An nftables batch deleting every table (what `nft flush ruleset` sends), by hand.
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
def msg(typ, flags, seq):
    return struct.pack("=IHHII", 20, typ, flags, seq, 0) + struct.pack("=BBH", 0, 0, 0)
NLM_F_REQUEST, NLM_F_ACK = 1, 4
batch = (msg(0x10, NLM_F_REQUEST, 1)                                # NFNL_MSG_BATCH_BEGIN
         + msg((10 << 8) | 2, NLM_F_REQUEST | NLM_F_ACK, 2)        # NFT_MSG_DELTABLE
         + msg(0x11, NLM_F_REQUEST, 3))                             # NFNL_MSG_BATCH_END
# the batch header's res_id names the subsystem (NFNL_SUBSYS_NFTABLES)
batch = batch[:18] + struct.pack("=H", socket.htons(10)) + batch[20:]
s.sendto(batch, (0, 0))
s.settimeout(2)
errs = []
try:
    while True:
        d = s.recv(65536)
        while len(d) >= 20:
            ln, typ = struct.unpack("=IH", d[:6])
            if typ == 2:  # NLMSG_ERROR
                errs.append(-struct.unpack("=i", d[16:20])[0])
            d = d[(ln + 3) & ~3:]
except socket.timeout:
    pass
print(",".join(errno.errorcode.get(e, str(e)) for e in errs) or "none")
"""


def test_sandbox_root_cannot_remove_its_filter(lab, egress):
        """The sandbox's network namespace belongs to the host's initial user namespace, so
        root inside the sandbox (root only in its own user namespace) can neither read nor
        change the table there: not with nft, not with a netlink message of its own."""
        pid = wh.sandbox_init_pid(egress)[0]
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
                import fcntl
                owner = fcntl.ioctl(fd, 0xb701)  # NS_GET_USERNS: its owning user namespace
                try:
                        # the user namespace of this test and of warrend (host root's)
                        assert os.fstat(owner).st_ino == os.stat("/proc/self/ns/user").st_ino
                finally:
                        os.close(owner)
        finally:
                os.close(fd)
        # root in the sandbox is root of another user namespace
        out = lab.sh(egress, "readlink /proc/self/ns/user", user="root")
        assert out["stdout"].strip() != os.readlink("/proc/self/ns/user"), out
        before = inner_ruleset(lab, egress)
        assert "policy drop" in before and "tcp dport 443 accept" in before
        for cmd in ("nft flush ruleset", "nft delete table inet warren",
                    "nft add rule inet warren outbound accept", "nft list ruleset"):
                out = lab.sh(egress, cmd, user="root")
                assert out["exit_code"] != 0, (cmd, out)
                assert "Operation not permitted" in out["stderr"], (cmd, out)
        res = lab.run_code(egress, NETLINK_FLUSH_PY, user="root")
        assert res["exit_code"] == 0, res
        assert res["stdout"].strip() == "EPERM", res
        assert inner_ruleset(lab, egress) == before
        m_out, m_host = lab.log_mark(lab.outside_log), lab.log_mark(lab.host_log)
        res = lab.probe(egress, NEVER + [("tcp", INTERNET, 443)])
        assert res[f"tcp {INTERNET} 443"] == "open", res
        assert_never_reached(lab, res, m_out, m_host)


def test_host_filter_alone_still_holds(lab, egress):
        """Each layer holds alone: with the table inside the sandbox removed (by host root:
        nobody in the sandbox can), the host's rules still stop everything the policy does not
        allow; the next policy change writes the inner table again."""
        in_sandbox_ns_as_host_root(lab, egress, ["nft", "delete", "table", "inet", "warren"])
        assert "warren" not in inner_ruleset(lab, egress)
        m_out, m_host = lab.log_mark(lab.outside_log), lab.log_mark(lab.host_log)
        res = lab.probe(egress, NEVER + [("tcp", INTERNET, 443)])
        assert res[f"tcp {INTERNET} 443"] == "open", res
        assert_never_reached(lab, res, m_out, m_host)
        status, body = lab.patch(egress, {"allow": None})
        assert status == 200, body
        rules = inner_ruleset(lab, egress)
        assert "policy drop" in rules and "tcp dport 443 accept" in rules, rules


HOLD_PY = r"""
import errno, json, os, socket, sys, threading, time
# Open N connections to the hold port at once, report, and keep them open until
# /tmp/release exists (in the background: the request that started it returns).
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if os.fork():
    os._exit(0)
os.setsid()
socks, res = [], []
lock = threading.Lock()
def one():
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(5)
        r = "open" if s.recv(64).startswith(b"hello") else "silent"
        with lock:
            socks.append(s)
    except socket.timeout:
        r = "timeout"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    with lock:
        res.append(r)
ts = [threading.Thread(target=one) for _ in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
with open("/tmp/held.tmp", "w") as f:
    json.dump(res, f)
os.rename("/tmp/held.tmp", "/tmp/held.json")
while not os.path.exists("/tmp/release"):
    time.sleep(0.05)
for s in socks:
    s.close()
with open("/tmp/released", "w"):
    pass
"""

SERIAL_PY = r"""
import errno, json, socket
# Open, read and close N connections one after the other, as fast as they go.
res = {}
for i in range(@N@):
    try:
        s = socket.create_connection(("@HOST@", @PORT@), timeout=3)
        s.settimeout(3)
        r = "open" if s.recv(64).startswith(b"hello") else "silent"
        s.close()
    except socket.timeout:
        r = "timeout"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    res[r] = res.get(r, 0) + 1
print(json.dumps(res))
"""


def test_connection_limits(lab):
        """NETWORK_MAX_CONNS: a sandbox gets at most N connections open at once, the rest are
        refused at once (EHOSTUNREACH), and another sandbox still connects meanwhile; closed
        ones free their places. NETWORK_CONN_RATE: new connections beyond the rate (and its
        burst of twice the rate) are refused too."""
        limit, rate = 8, 5
        lab.stop_daemon()
        ids = []
        try:
                lab.start_daemon({"NETWORK_MAX_CONNS": str(limit),
                                  "NETWORK_CONN_RATE": str(rate)})
                pol = {"allow": [{"ports": [443, HOLD_PORT], "protocol": "tcp"}]}
                a = lab.create(network="egress", network_policy=pol)["sandbox_id"]
                ids.append(a)
                b = lab.create(network="egress", network_policy=pol)["sandbox_id"]
                ids.append(b)
                rules = lab.nft("list", "table", "inet", "warren")
                assert f"ct count over {limit} reject" in rules, rules
                assert f"limit rate over {rate}/second burst {2 * rate} packets" in rules, rules

                m_out = lab.log_mark(lab.outside_log)
                script = "/tmp/hold.py"
                out = lab.sh(a, f"cat > {script} <<'EOF'\n{HOLD_PY}\nEOF\n"
                                f"python3 {script} {limit + 4} {INTERNET} {HOLD_PORT}")
                assert out["exit_code"] == 0, out
                wh.wait_until(lambda: lab.sh(a, "test -e /tmp/held.json")["exit_code"] == 0,
                              30, what="the connections to be opened")
                held = json.loads(lab.sh(a, "cat /tmp/held.json")["stdout"])
                assert held.count("open") == limit, held
                assert sorted(set(held) - {"open"}) == ["EHOSTUNREACH"], held
                seen = [l for l in lab.log_since(lab.outside_log, m_out)
                        if l.startswith(f"tcp {INTERNET}:{HOLD_PORT} ")]
                assert len(seen) == limit, seen
                # a's connections are still open: b is not affected, a gets no more
                res = lab.probe(b, [("tcp", INTERNET, 443), ("tcp", INTERNET, HOLD_PORT)])
                assert set(res.values()) == {"open"}, res
                res = lab.probe(a, [("tcp", INTERNET, 443)])
                assert res[f"tcp {INTERNET} 443"] == "EHOSTUNREACH", res
                # closed, they free their places
                lab.sh(a, "touch /tmp/release")
                wh.wait_until(lambda: lab.sh(a, "test -e /tmp/released")["exit_code"] == 0, 30,
                              what="the connections to be closed")

                def a_connects():
                        return lab.probe(a, [("tcp", INTERNET, 443)])[f"tcp {INTERNET} 443"] \
                                == "open"
                wh.wait_until(a_connects, 20, interval=0.5, what="a to connect again")

                # the rate: 100 connections one after the other, each closed before the next;
                # all of them would need 18 s at 5 a second after the burst of 10
                c = lab.create(network="egress", network_policy=pol)["sandbox_id"]
                ids.append(c)
                code = (SERIAL_PY.replace("@N@", "100").replace("@HOST@", INTERNET)
                        .replace("@PORT@", "443"))
                res = json.loads(lab.run_code(c, code)["stdout"])
                assert set(res) == {"open", "EHOSTUNREACH"}, res
                assert res["open"] >= 2 * rate, res
        finally:
                for sid in ids:
                        lab.delete(sid)
                lab.stop_daemon()
                lab.start_daemon()
