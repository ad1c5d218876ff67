"""wlib.py - shared pieces of the Warren benchmark suite (bench/bench.py).

A real warrend on 127.0.0.1 with a temporary data dir, a small keep-alive HTTP client on
http.client (lower overhead than requests), statistics, and host-side readers of kernel
counters (cgroup v1/v2 memory files, /proc/PID/smaps_rollup). Every wait is bounded and all
traffic goes to 127.0.0.1 only.
"""
import glob
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

MiB = 1 << 20
GiB = 1 << 30


# ---- statistics ----

def pct(xs, p):
        """The p-th percentile of xs, nearest rank on the sorted samples."""
        xs = sorted(xs)
        k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
        return xs[k]


def summary(xs):
        """{n, p50, p90, p99, max} of a list of samples (empty list -> n 0)."""
        if not xs:
                return {"n": 0}
        return {"n": len(xs), "p50": statistics.median(xs), "p90": pct(xs, 90),
                "p99": pct(xs, 99), "max": max(xs)}


def now_ms():
        return time.perf_counter() * 1000.0


# ---- HTTP client ----

class HTTPError(Exception):
        def __init__(self, status, body):
                super().__init__(f"HTTP {status}: {body[:300]!r}")
                self.status = status
                self.body = body


class UnixHTTPConnection(http.client.HTTPConnection):
        """http.client over a unix socket (DATA_DIR/warren.sock): reaches a daemon that runs in
        another network namespace."""

        def __init__(self, path, timeout):
                super().__init__("localhost", timeout=timeout)
                self.unix_path = path

        def connect(self):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(self.timeout)
                s.connect(self.unix_path)
                self.sock = s


class Client:
        """One keep-alive HTTP/1.1 connection to the daemon (http.client, TCP_NODELAY).
        Not thread-safe: one Client per thread."""

        def __init__(self, port, key, timeout=120, unix_path=None):
                self.port = port
                self.key = key
                self.timeout = timeout
                self.unix_path = unix_path  # talk over the daemon's unix socket instead
                self.conn = None

        def connect(self):
                if self.conn is None:
                        if self.unix_path:
                                c = UnixHTTPConnection(self.unix_path, self.timeout)
                                c.connect()
                        else:
                                c = http.client.HTTPConnection("127.0.0.1", self.port,
                                                               timeout=self.timeout)
                                c.connect()
                                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        self.conn = c
                return self.conn

        def close(self):
                if self.conn is not None:
                        self.conn.close()
                        self.conn = None

        def raw(self, method, path, body=None, headers=None, auth=True):
                """Send one request; returns (status, body bytes). The connection is dropped
                (and opened again on the next call) after any transport error."""
                h = {"Authorization": "ApiKey " + self.key} if auth else {}
                if headers:
                        h.update(headers)
                c = self.connect()
                try:
                        c.request(method, path, body=body, headers=h)
                        r = c.getresponse()
                        data = r.read()
                        if r.will_close:
                                self.close()
                        return r.status, data
                except Exception:
                        self.close()
                        raise

        def json(self, method, path, obj=None, ok=(200, 201), auth=True):
                """Request with an optional JSON body; returns the decoded answer or raises
                HTTPError when the status is not in ok."""
                body = None
                headers = None
                if obj is not None:
                        body = json.dumps(obj).encode()
                        headers = {"Content-Type": "application/json"}
                st, data = self.raw(method, path, body, headers, auth)
                if st not in ok:
                        raise HTTPError(st, data)
                return json.loads(data) if data else None

        # convenience
        def create(self, **fields):
                return self.json("POST", "/api/v1/sandbox/create", fields)

        def delete(self, sid):
                return self.json("DELETE", "/api/v1/sandbox/" + sid)

        def exec(self, sid, command, **kw):
                kw["command"] = command
                return self.json("POST", f"/api/v1/sandbox/{sid}/execute", kw)

        def pool(self):
                """GET /api/v1/pool, or None where the daemon has no such route."""
                st, data = self.raw("GET", "/api/v1/pool")
                return json.loads(data) if st == 200 else None

        def health(self):
                st, data = self.raw("GET", "/health", auth=False)
                if st != 200:
                        raise HTTPError(st, data)
                return data


# ---- the daemon ----

class Daemon:
        """One warrend on 127.0.0.1 (any port) with its own temporary data dir."""

        def __init__(self, bin_dir, name, env=None, keep_dir=False, tmp_dir=None, netns=None):
                self.bin_dir = os.path.abspath(bin_dir)
                self.name = name
                self.root = tempfile.mkdtemp(prefix=f"warren-bench-{name}-")
                os.chmod(self.root, 0o755)
                self.data = os.path.join(self.root, "data")
                os.makedirs(self.data, mode=0o755)
                self.key = "wk_bench_" + secrets.token_hex(16)
                self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "HOME": "/root", "LANG": "C.UTF-8", "WARREN_ADMIN_KEY": self.key,
                            "MAX_SANDBOXES_PER_ORG": "100000",
                            # thousands of sandboxes and requests in one org: no org totals,
                            # no request rate limit
                            "MAX_ORG_CPUS": "0", "MAX_ORG_MEMORY": "0", "RATE_LIMIT_RPS": "0"}
                self.env.update(env or {})
                self.log_path = os.path.join(self.root, "warrend.log")
                self.proc = None
                self.port = None
                self.keep_dir = keep_dir
                # a network namespace (name under /run/netns) to run in; the client then
                # talks over the unix socket
                self.netns = netns
                self.unix_path = os.path.join(self.data, "warren.sock") if netns else None

        def start(self, timeout=60):
                port_file = os.path.join(self.data, "port")
                log = open(self.log_path, "ab")
                argv = [os.path.join(self.bin_dir, "warrend"), "--listen", "127.0.0.1:0",
                        "--data-dir", self.data, "--port-file", port_file]
                if self.netns:  # only the network namespace changes (nsenter execs warrend)
                        argv = ["nsenter", f"--net=/run/netns/{self.netns}"] + argv
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, env=self.env,
                                             start_new_session=True, close_fds=True)
                log.close()
                deadline = time.monotonic() + timeout
                while True:
                        if self.proc.poll() is not None:
                                raise RuntimeError(f"warrend ({self.name}) exited with "
                                                   f"{self.proc.returncode}:\n{self.log_tail()}")
                        try:
                                txt = open(port_file).read().strip()
                        except OSError:
                                txt = ""
                        if txt.isdigit() and int(txt) > 0:
                                try:
                                        Client(int(txt), self.key, timeout=2,
                                               unix_path=self.unix_path).health()
                                        self.port = int(txt)
                                        return self
                                except (OSError, HTTPError, http.client.HTTPException):
                                        pass
                        if time.monotonic() > deadline:
                                self.stop()
                                raise RuntimeError(f"warrend ({self.name}) did not answer "
                                                   f"/health in {timeout}s:\n{self.log_tail()}")
                        time.sleep(0.05)

        def client(self, timeout=120):
                return Client(self.port, self.key, timeout, unix_path=self.unix_path)

        def log_tail(self, n=3000):
                try:
                        with open(self.log_path, "rb") as f:
                                return f.read()[-n:].decode("utf-8", "replace")
                except OSError:
                        return ""

        def pid(self):
                return self.proc.pid if self.proc else None

        def reap_leftovers(self):
                return reap_sandboxes(self.data)

        def sandbox_ids(self):
                """Every sandbox id the daemon's store lists (bounded: 100 pages of 1000)."""
                c = self.client()
                out = []
                for page in range(100):
                        r = c.json("GET", f"/api/v1/sandboxes?limit=1000&offset={page * 1000}")
                        out += [s["sandbox_id"] for s in r["sandboxes"]]
                        if len(r["sandboxes"]) < 1000:
                                break
                c.close()
                return out

        def stop(self, cleanup=True, timeout=120):
                """Delete any sandbox still there (bounded), stop the daemon, remove the dir."""
                if self.proc and self.proc.poll() is None and cleanup and self.port:
                        try:
                                ids = self.sandbox_ids()
                                delete_all(self, ids, threads=4, time_limit=timeout)
                        except Exception as e:  # a cleanup failure must not hide results
                                print(f"  ({self.name}: cleanup failed: {e!r})")
                if self.proc and self.proc.poll() is None:
                        self.proc.send_signal(signal.SIGTERM)
                        try:
                                self.proc.wait(30)
                        except subprocess.TimeoutExpired:
                                self.proc.kill()
                                self.proc.wait(10)
                left = self.reap_leftovers()
                if left:
                        print(f"  ({self.name}: reaped {left} sandboxes left running after the "
                              "daemon stopped, e.g. the warm pool's)")
                if not self.keep_dir:
                        shutil.rmtree(self.root, ignore_errors=True)


def wait_teardown(daemon, time_limit=600):
        """Wait until the daemon's background teardown queue is empty (GET /api/v1/pool);
        returns the seconds waited, or None where the daemon does not report it."""
        c = daemon.client()
        t0 = time.perf_counter()
        try:
                while time.perf_counter() - t0 < time_limit:
                        p = c.pool()
                        if not p or "teardown" not in p:
                                return None
                        if p["teardown"].get("queued", 0) + p["teardown"].get("running", 0) == 0:
                                return time.perf_counter() - t0
                        time.sleep(0.05)
                return None
        finally:
                c.close()


def pool_ready(c, cls=None):
        """(ready, target) of the pool's default size class (or the first), None if no pool."""
        p = c.pool()
        if not p or not p.get("enabled") or not p.get("classes"):
                return None
        k = p["classes"][0]
        return k.get("ready", 0), k.get("target", 0)


def wait_pool_full(daemon, time_limit=30):
        """Wait (bounded) until the pool's first class is full; seconds waited or None."""
        c = daemon.client()
        t0 = time.perf_counter()
        try:
                while time.perf_counter() - t0 < time_limit:
                        r = pool_ready(c)
                        if r is None:
                                return None
                        if r[0] >= r[1] > 0:
                                return time.perf_counter() - t0
                        time.sleep(0.05)
                return None
        finally:
                c.close()


def reap_sandboxes(data_dir, time_limit=30):
        """Kill what still runs in the cgroups of the sandboxes under data_dir/sandboxes (the
        daemon is stopped; sandboxes outlive it by design, and pooled ones are not listed by
        the API) and remove their cgroups, so removing the data dir leaks nothing. Returns the
        number of sandboxes that still had processes."""
        try:
                ids = [i for i in os.listdir(os.path.join(data_dir, "sandboxes"))
                       if re.fullmatch(r"sandbox-[0-9a-f]+", i)]
        except OSError:
                return 0
        dirs = {i: [d for d in glob.glob(f"/sys/fs/cgroup/*/warren/{i}") +
                    glob.glob(f"/sys/fs/cgroup/unified/warren/{i}") if os.path.isdir(d)]
                for i in ids}
        had = 0
        deadline = time.monotonic() + time_limit
        for i, ds in dirs.items():
                pids = {int(p) for d in ds for p in (read(d + "/cgroup.procs") or "").split()}
                had += bool(pids)
                for p in pids:
                        try:
                                os.kill(p, signal.SIGKILL)
                        except OSError:
                                pass
        for i, ds in dirs.items():
                for d in ds:
                        while time.monotonic() < deadline:
                                try:
                                        os.rmdir(d)
                                        break
                                except FileNotFoundError:
                                        break
                                except OSError:  # still busy while the processes exit
                                        time.sleep(0.05)
        return had


def delete_all(daemon, ids, threads=4, time_limit=300):
        """Delete ids with `threads` clients in parallel, for at most time_limit seconds.
        Returns (deleted, failed, seconds)."""
        ids = list(ids)
        lock = threading.Lock()
        done = [0, 0]
        deadline = time.monotonic() + time_limit
        t0 = time.perf_counter()

        def worker():
                c = daemon.client()
                while time.monotonic() < deadline:
                        with lock:
                                if not ids:
                                        break
                                sid = ids.pop()
                        try:
                                c.delete(sid)
                                k = 0
                        except Exception:
                                k = 1
                        with lock:
                                done[k] += 1
                c.close()

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
                t.start()
        for t in ts:
                t.join()
        return done[0], done[1], time.perf_counter() - t0


# ---- host counters ----

def read(path):
        try:
                with open(path) as f:
                        return f.read()
        except OSError:
                return None


def meminfo(field="MemAvailable"):
        m = re.search(r"^" + field + r":\s+(\d+) kB", read("/proc/meminfo") or "", re.M)
        return int(m.group(1)) * 1024 if m else 0


def smaps_rollup(pid):
        """{Rss, Pss, Pss_Anon, Pss_File, ...} in bytes for pid, {} if gone."""
        out = {}
        for line in (read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
                m = re.match(r"^(\w+):\s+(\d+) kB", line)
                if m:
                        out[m.group(1)] = int(m.group(2)) * 1024
        return out


def vm_rss(pid):
        m = re.search(r"^VmRSS:\s+(\d+) kB", read(f"/proc/{pid}/status") or "", re.M)
        return int(m.group(1)) * 1024 if m else 0


def cgroup_v1_memory_dir(sid):
        d = f"/sys/fs/cgroup/memory/warren/{sid}"
        if os.path.isdir(d):
                return d
        for d in glob.glob(f"/sys/fs/cgroup/**/warren/{sid}", recursive=True):
                if os.path.exists(os.path.join(d, "memory.current")):
                        return d
        return None


def cgroup_memory(sid):
        """Kernel's charge for one sandbox's memory cgroup: {usage, kmem, rss, cache} bytes
        (v1 memory.usage_in_bytes includes kernel memory charged to the group; v2
        memory.current likewise). None if the group is gone."""
        d = cgroup_v1_memory_dir(sid)
        if not d:
                return None
        if os.path.exists(os.path.join(d, "memory.usage_in_bytes")):
                usage = int(read(os.path.join(d, "memory.usage_in_bytes")) or 0)
                kmem = int(read(os.path.join(d, "memory.kmem.usage_in_bytes")) or 0)
                st = dict(line.split() for line in (read(os.path.join(d, "memory.stat")) or "")
                          .splitlines() if len(line.split()) == 2)
                return {"usage": usage, "kmem": kmem, "rss": int(st.get("rss", 0)),
                        "cache": int(st.get("cache", 0))}
        usage = int(read(os.path.join(d, "memory.current")) or 0)
        st = dict(line.split() for line in (read(os.path.join(d, "memory.stat")) or "")
                  .splitlines() if len(line.split()) == 2)
        kmem = sum(int(st.get(k, 0)) for k in ("kernel", )) or \
                sum(int(st.get(k, 0)) for k in ("slab", "kernel_stack", "pagetables", "percpu"))
        return {"usage": usage, "kmem": kmem, "rss": int(st.get("anon", 0)),
                "cache": int(st.get("file", 0))}


def own_memory_cgroup():
        """(path, usage, kmem, rss, cache, nprocs) of the v1 memory cgroup this process (and
        the daemon it started) is charged to, or None."""
        for line in (read("/proc/self/cgroup") or "").splitlines():
                parts = line.split(":", 2)
                if len(parts) == 3 and "memory" in parts[1].split(","):
                        d = "/sys/fs/cgroup/memory" + parts[2]
                        if not os.path.exists(os.path.join(d, "memory.usage_in_bytes")):
                                return None
                        st = dict(l.split() for l in (read(d + "/memory.stat") or "")
                                  .splitlines() if len(l.split()) == 2)
                        procs = (read(d + "/cgroup.procs") or "").split()
                        return {"path": d, "usage": int(read(d + "/memory.usage_in_bytes")),
                                "kmem": int(read(d + "/memory.kmem.usage_in_bytes") or 0),
                                "rss": int(st.get("rss", 0)), "cache": int(st.get("cache", 0)),
                                "procs": [int(p) for p in procs]}
        return None


def init_pid(sid):
        """Host pid of the sandbox's warren-init (the pid in its cgroup whose NSpid ends in 1)."""
        d = f"/sys/fs/cgroup/pids/warren/{sid}"
        if not os.path.isdir(d):
                d = cgroup_v1_memory_dir(sid)
        txt = read(os.path.join(d, "cgroup.procs")) if d else None
        for p in (txt or "").split():
                st = read(f"/proc/{p}/status") or ""
                m = re.search(r"^NSpid:\s+(.*)$", st, re.M)
                if m and m.group(1).split()[-1] == "1":
                        return int(p)
        return None


def loop_devices_with(substr):
        """Loop devices whose backing file path contains substr."""
        out = []
        for b in glob.glob("/sys/block/loop*/loop/backing_file"):
                if substr in (read(b) or ""):
                        out.append(b.split("/")[3])
        return out
