"""warren_harness.py - runs a real `warrend` and talks to it over HTTP, for pytest.

Used by tests/conftest.py (the fixtures) and by the test modules (helpers). Nothing here
builds anything: the binaries come from $WARREN_BIN_DIR. Every request and every wait is
bounded; all network traffic goes to 127.0.0.1 only.
"""
import base64
import datetime
import glob
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

import requests

HTTP_TIMEOUT = 30          # seconds, default for one request
START_TIMEOUT = 30         # seconds for the daemon to answer /health (first start builds base)
DEFAULT_ENV = {
        "MAX_SANDBOXES_PER_ORG": "50",
        # Generous per-organisation totals and request rate: tests create many sandboxes and
        # poll quickly. tests/integration/test_quotas.py starts daemons with tight ones.
        "MAX_ORG_CPUS": "1000",
        "MAX_ORG_MEMORY": "4Ti",
        "RATE_LIMIT_RPS": "100000",
        "RATE_LIMIT_BURST": "100000",
        # Test-only lower bound for timeout_seconds (default 60), so that the sandbox-timeout
        # and expiry-while-down tests finish in seconds.
        "WARREN_MIN_TIMEOUT": "1",
        # These daemons run in the host's network namespace: they must never give a sandbox
        # an uplink (tests/security/test_egress.py runs its own daemon in a namespace whose
        # only uplink leads to test hosts).
        "NETWORK_EGRESS": "false",
}
MiB = 1 << 20


def bin_dir():
        """The directory holding warrend, warren-init and warren, from $WARREN_BIN_DIR."""
        d = os.environ.get("WARREN_BIN_DIR")
        if not d:
                raise RuntimeError("WARREN_BIN_DIR is not set: point it at the build directory "
                                   "that holds warrend (e.g. WARREN_BIN_DIR=/work/main/build)")
        d = os.path.abspath(d)
        exe = os.path.join(d, "warrend")
        if not os.access(exe, os.X_OK):
                raise RuntimeError(f"WARREN_BIN_DIR={d}: no executable warrend there")
        return d


def wait_until(pred, timeout, interval=0.05, what="condition"):
        """Call pred() until it returns a true value (returned) or timeout seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
                v = pred()
                if v:
                        return v
                if time.monotonic() >= deadline:
                        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                time.sleep(interval)


def parse_time(s):
        """RFC 3339 UTC timestamp -> aware datetime."""
        assert isinstance(s, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]00:00)$",
                                               s), f"not an RFC 3339 UTC time: {s!r}"
        return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def assert_error(resp, status, code=None, mentions=None):
        """Assert resp is an error with this status and a {"error":{"code","message"}} body."""
        assert resp.status_code == status, \
                f"expected HTTP {status}, got {resp.status_code}: {resp.text[:600]!r}"
        try:
                body = resp.json()
        except ValueError:
                raise AssertionError(f"error body is not JSON: {resp.text[:300]!r}")
        err = body.get("error") if isinstance(body, dict) else None
        assert isinstance(err, dict), f"no error object in {body!r}"
        assert isinstance(err.get("code"), str) and err["code"], f"no error.code in {body!r}"
        assert isinstance(err.get("message"), str) and err["message"], \
                f"no error.message in {body!r}"
        if code is not None:
                codes = (code,) if isinstance(code, str) else tuple(code)
                assert err["code"] in codes, f"error.code {err['code']!r}, want {codes}: {body!r}"
        if mentions is not None:
                assert mentions in err["message"], \
                        f"error message should name {mentions!r}: {err['message']!r}"
        return err


def b64(data):
        if isinstance(data, str):
                data = data.encode()
        return base64.b64encode(data).decode()


# ---- host-side views of a sandbox (we run as root on the host) ----

def _read(path, mode="r"):
        try:
                with open(path, mode) as f:
                        return f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
                return None


def sandbox_host_pids(sid):
        """Host pids whose cgroup path (any hierarchy) has a component equal to sid."""
        pat = re.compile(r"/" + re.escape(sid) + r"(/|$)")
        out = []
        for d in os.listdir("/proc"):
                if not d.isdigit():
                        continue
                cg = _read(f"/proc/{d}/cgroup")
                if cg and any(pat.search(line.split(":", 2)[-1]) for line in cg.splitlines()):
                        out.append(int(d))
        return out


def proc_comm(pid):
        c = _read(f"/proc/{pid}/comm")
        return c.strip() if c else None


def proc_starttime(pid):
        st = _read(f"/proc/{pid}/stat")
        if not st:
                return None
        return int(st.rsplit(")", 1)[1].split()[19])


def sandbox_init_pid(sid):
        """(host pid, starttime) of the sandbox's PID 1 (NSpid ends in 1), or None."""
        for pid in sandbox_host_pids(sid):
                st = _read(f"/proc/{pid}/status") or ""
                m = re.search(r"^NSpid:\s+(.*)$", st, re.M)
                if m and len(m.group(1).split()) >= 2 and m.group(1).split()[-1] == "1":
                        return pid, proc_starttime(pid)
        return None


def sandbox_cgroup_dirs(sid):
        """Every cgroup directory on the host named after the sandbox."""
        return [p for p in glob.glob(f"/sys/fs/cgroup/**/{sid}", recursive=True)
                if os.path.isdir(p)]


def sandbox_cgroup_file(sid, controller, name):
        """Path of a cgroup control file of the sandbox (v1 controller dir or v2), or None."""
        for p in sandbox_cgroup_dirs(sid):
                if f"/sys/fs/cgroup/{controller}/" in p or "/unified/" in p:
                        f = os.path.join(p, name)
                        if os.path.exists(f):
                                return f
        # fall back on any hierarchy having the file (v2 mounted elsewhere)
        for p in sandbox_cgroup_dirs(sid):
                f = os.path.join(p, name)
                if os.path.exists(f):
                        return f
        return None


def host_mounts_mentioning(s):
        """Lines of the host's mount table (our mount namespace) that mention s."""
        mi = _read("/proc/self/mountinfo") or ""
        return [line for line in mi.splitlines() if s in line]


def host_kill_sandbox_processes(sid):
        """Last-resort cleanup: SIGKILL every host process in the sandbox's cgroups."""
        for pid in sandbox_host_pids(sid):
                try:
                        os.kill(pid, signal.SIGKILL)
                except OSError:
                        pass


# ---- the daemon ----

class Server:
        """One warrend process with its own data directory, on 127.0.0.1."""

        def __init__(self, bin_dir, root_dir, env=None, name="main"):
                self.bin_dir = bin_dir
                self.root_dir = root_dir
                self.data_dir = os.path.join(root_dir, "data")
                os.makedirs(self.data_dir, exist_ok=True)
                os.chmod(root_dir, 0o755)
                os.chmod(self.data_dir, 0o755)
                self.log_path = os.path.join(root_dir, f"warrend-{name}.log")
                self.api_key = "wk_test_" + secrets.token_hex(24)
                self.env = dict(DEFAULT_ENV)
                self.env.update(env or {})
                self.port = 0
                self.url = None
                self.proc = None
                self._log = None
                self.created = {}      # sandbox_id -> api key that created it
                self.created_info = {}  # sandbox_id -> create response body
                self.starts = 0

        # -- process control --

        def _env(self):
                e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "HOME": "/root", "LANG": "C.UTF-8", "WARREN_ADMIN_KEY": self.api_key}
                e.update(self.env)
                return e

        def log_tail(self, n=4000):
                data = _read(self.log_path, "rb") or b""
                return data[-n:].decode("utf-8", "replace")

        def _port_from_files(self, port_file, log_offset):
                txt = _read(port_file)
                if txt and txt.strip().isdigit() and int(txt.strip()) > 0:
                        return int(txt.strip())
                data = (_read(self.log_path, "rb") or b"")[log_offset:].decode("utf-8", "replace")
                m = re.search(r"warrend: listening on http://127\.0\.0\.1:(\d+)", data)
                return int(m.group(1)) if m else None

        def start(self, timeout=START_TIMEOUT):
                """Start warrend on self.port (0 = any) and wait until /health answers 200."""
                assert self.proc is None or self.proc.poll() is not None, "already running"
                port_file = os.path.join(self.data_dir, "port")
                try:
                        os.unlink(port_file)
                except FileNotFoundError:
                        pass
                log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
                self._log = open(self.log_path, "ab")
                self._log.write(f"==== start #{self.starts + 1} at {time.ctime()} ====\n".encode())
                self._log.flush()
                log_offset = self._log.tell()
                argv = [os.path.join(self.bin_dir, "warrend"), "--listen", f"127.0.0.1:{self.port}",
                        "--data-dir", self.data_dir, "--port-file", port_file]
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                             stderr=subprocess.STDOUT, env=self._env(),
                                             start_new_session=True, close_fds=True)
                self.starts += 1
                deadline = time.monotonic() + timeout
                last = None
                while True:
                        rc = self.proc.poll()
                        if rc is not None:
                                raise RuntimeError(f"warrend exited with {rc} while starting; "
                                                   f"argv {argv}; log tail:\n{self.log_tail()}")
                        port = self._port_from_files(port_file, log_offset)
                        if port:
                                url = f"http://127.0.0.1:{port}"
                                try:
                                        r = requests.get(url + "/health", timeout=2)
                                        if r.status_code == 200:
                                                self.port, self.url = port, url
                                                return
                                        last = f"/health answered {r.status_code}"
                                except requests.RequestException as e:
                                        last = repr(e)
                        if time.monotonic() > deadline:
                                self._kill()
                                raise RuntimeError(f"warrend did not answer /health within "
                                                   f"{timeout}s ({last}); log tail:\n"
                                                   f"{self.log_tail()}")
                        time.sleep(0.05)

        def _kill(self):
                if self.proc and self.proc.poll() is None:
                        self.proc.kill()
                        try:
                                self.proc.wait(10)
                        except subprocess.TimeoutExpired:
                                pass

        def alive(self):
                return self.proc is not None and self.proc.poll() is None

        def stop(self, timeout=15):
                """SIGTERM, then SIGKILL after timeout seconds."""
                if self.alive():
                        self.proc.terminate()
                        try:
                                self.proc.wait(timeout)
                        except subprocess.TimeoutExpired:
                                self._kill()
                if self._log:
                        self._log.close()
                        self._log = None

        def restart(self, kill9=True, down_seconds=0.0):
                """Kill the daemon (SIGKILL when kill9, else a clean stop) and start it again on
                the same port and data directory. Sandboxes are expected to survive."""
                if kill9:
                        if self.alive():
                                os.kill(self.proc.pid, signal.SIGKILL)
                                self.proc.wait(10)
                        if self._log:
                                self._log.close()
                                self._log = None
                else:
                        self.stop()
                if down_seconds:
                        time.sleep(down_seconds)
                self.start()

        # -- HTTP --

        def headers(self, key=None):
                return {"Authorization": f"ApiKey {key or self.api_key}"}

        def request(self, method, path, key=None, auth=True, timeout=HTTP_TIMEOUT, headers=None,
                    **kw):
                h = self.headers(key) if auth else {}
                if headers:
                        h.update(headers)
                return requests.request(method, self.url + path, headers=h, timeout=timeout, **kw)

        def get(self, path, **kw):
                return self.request("GET", path, **kw)

        def post(self, path, **kw):
                return self.request("POST", path, **kw)

        def put(self, path, **kw):
                return self.request("PUT", path, **kw)

        def delete_path(self, path, **kw):
                return self.request("DELETE", path, **kw)

        # -- sandboxes --

        def create_raw(self, as_key=None, timeout=60, **fields):
                """POST create; returns the Response (tracks the sandbox for cleanup if 201)."""
                r = self.post("/api/v1/sandbox/create", key=as_key, json=fields, timeout=timeout)
                if r.status_code == 201:
                        body = r.json()
                        self.created[body["sandbox_id"]] = as_key or self.api_key
                        self.created_info[body["sandbox_id"]] = body
                return r

        def create(self, as_key=None, **fields):
                """Create a sandbox (asserts 201) and return its id; deleted at session end."""
                r = self.create_raw(as_key=as_key, **fields)
                assert r.status_code == 201, f"create {fields} -> {r.status_code}: {r.text[:600]}"
                return r.json()["sandbox_id"]

        def info(self, sid, as_key=None):
                r = self.get(f"/api/v1/sandbox/{sid}", key=as_key)
                assert r.status_code == 200, f"GET sandbox -> {r.status_code}: {r.text[:300]}"
                return r.json()

        def status(self, sid, as_key=None):
                r = self.get(f"/api/v1/sandbox/{sid}/status", key=as_key)
                assert r.status_code == 200, f"status -> {r.status_code}: {r.text[:300]}"
                return r.json()["status"]

        def stop_sandbox(self, sid, as_key=None):
                r = self.post(f"/api/v1/sandbox/{sid}/stop", key=as_key)
                assert r.status_code == 200, f"stop -> {r.status_code}: {r.text[:300]}"
                return r.json()

        def delete(self, sid, as_key=None):
                """DELETE the sandbox; returns the Response. Forgets it for cleanup."""
                key = as_key or self.created.get(sid) or self.api_key
                r = self.delete_path(f"/api/v1/sandbox/{sid}", key=key)
                if r.status_code in (200, 404):
                        self.created.pop(sid, None)
                return r

        def exec_raw(self, sid, command, as_key=None, http_timeout=None, **kw):
                body = {"command": command}
                body.update(kw)
                if http_timeout is None:
                        t = kw.get("timeout")
                        http_timeout = (t / 1000.0 + 30) if isinstance(t, (int, float)) else 90
                return self.post(f"/api/v1/sandbox/{sid}/execute", key=as_key, json=body,
                                 timeout=http_timeout)

        def exec(self, sid, command, **kw):
                """Run a command (string: /bin/sh -c; list: argv); asserts 200; returns the dict."""
                r = self.exec_raw(sid, command, **kw)
                assert r.status_code == 200, f"exec {command!r} -> {r.status_code}: {r.text[:600]}"
                return r.json()

        def sh(self, sid, command, **kw):
                """exec and assert exit code 0; returns stdout."""
                res = self.exec(sid, command, **kw)
                assert res["exit_code"] == 0, f"{command!r} failed: {res}"
                return res["stdout"]

        # -- files --

        def write_file(self, sid, path, data, mode=None, as_key=None):
                f = {"path": path, "content": b64(data)}
                if mode is not None:
                        f["mode"] = mode
                r = self.post(f"/api/v1/sandbox/{sid}/files", key=as_key, json={"files": [f]})
                assert r.status_code in (200, 201), f"write {path} -> {r.status_code}: {r.text[:300]}"
                return r.json()

        def read_file(self, sid, path, as_key=None):
                r = self.get(f"/api/v1/sandbox/{sid}/files", key=as_key, params={"path": path})
                assert r.status_code == 200, f"read {path} -> {r.status_code}: {r.text[:300]}"
                return base64.b64decode(r.json()["content"])

        # -- organisations --

        def org_create(self, name):
                """`warrend --data-dir D org-create NAME` -> {"org_id", "api_key"}."""
                p = subprocess.run([os.path.join(self.bin_dir, "warrend"), "--data-dir",
                                    self.data_dir, "org-create", name],
                                   capture_output=True, text=True, timeout=30, env=self._env())
                assert p.returncode == 0, f"org-create failed ({p.returncode}): {p.stderr[-2000:]}"
                for line in reversed(p.stdout.strip().splitlines()):
                        try:
                                o = json.loads(line)
                        except ValueError:
                                continue
                        if isinstance(o, dict) and "api_key" in o and "org_id" in o:
                                return o
                try:
                        o = json.loads(p.stdout)
                        assert "api_key" in o and "org_id" in o
                        return o
                except (ValueError, AssertionError):
                        raise AssertionError(f"org-create printed no JSON with org_id and api_key: "
                                             f"{p.stdout[-1000:]!r}")

        def cleanup(self):
                """Delete every sandbox we created (best effort), then make sure none of their
                processes is left on the host."""
                ids = list(self.created.items())
                for sid, key in ids:
                        try:
                                if self.alive():
                                        self.delete(sid, as_key=key)
                        except requests.RequestException:
                                pass
                self.wait_teardown_idle()
                return [sid for sid, _ in ids]


        # -- warm pool and teardown --

        def pool(self):
                """GET /api/v1/pool with the admin key; asserts 200 and the shape; returns the body."""
                r = self.get("/api/v1/pool")
                assert r.status_code == 200, f"GET /api/v1/pool -> {r.status_code}: {r.text[:300]}"
                p = r.json()
                assert isinstance(p.get("enabled"), bool), p
                assert isinstance(p.get("classes"), list), p
                for c in p["classes"]:
                        for k in ("template", "network"):
                                assert isinstance(c.get(k), str), (k, c)
                        for k in ("cpus", "memory", "disk"):
                                assert k in c, (k, c)
                        for k in ("ready", "target", "hits", "misses"):
                                assert isinstance(c.get(k), int) and c[k] >= 0, (k, c)
                t = p.get("teardown")
                assert isinstance(t, dict), p
                for k in ("queued", "running"):
                        assert isinstance(t.get(k), int) and t[k] >= 0, (k, p)
                return p


        def default_class(self):
                """The normalised size class of this daemon's defaults (DEFAULT_* in its env)."""
                return size_class("base", self.env.get("DEFAULT_CPUS", "2"),
                                  self.env.get("DEFAULT_MEMORY", "2Gi"),
                                  self.env.get("DEFAULT_DISK", "10Gi"), "none")


        def pool_class(self, cls=None, pool=None):
                """The GET /api/v1/pool entry of size class cls (default: the daemon's defaults), or
                None; fails if the class is listed twice."""
                cls = cls or self.default_class()
                p = pool or self.pool()
                found = [c for c in p["classes"] if class_of_entry(c) == cls]
                assert len(found) <= 1, f"class {cls} listed {len(found)} times: {p}"
                return found[0] if found else None


        def wait_teardown_idle(self, timeout=15):
                """Best effort: wait until GET /api/v1/pool reports no teardown queued or running (so a
                stop right after deletes does not interrupt them). Silent on daemons without it."""
                deadline = time.monotonic() + timeout
                while self.alive() and time.monotonic() < deadline:
                        try:
                                r = self.get("/api/v1/pool", timeout=5)
                        except requests.RequestException:
                                return
                        if r.status_code != 200:
                                return
                        t = (r.json() or {}).get("teardown") or {}
                        if not t.get("queued") and not t.get("running"):
                                return
                        time.sleep(0.05)


# ---- raw sockets, for what requests cannot express ----

def raw_request(url, data, read_timeout=10, shutdown_write=False, max_bytes=1 << 20):
        """Send raw bytes to the server of url and return what comes back until close/timeout."""
        host, port = url.split("//", 1)[1].split(":")
        s = socket.create_connection((host, int(port)), timeout=read_timeout)
        try:
                s.sendall(data)
                if shutdown_write:
                        s.shutdown(socket.SHUT_WR)
                out = b""
                deadline = time.monotonic() + read_timeout
                while len(out) < max_bytes and time.monotonic() < deadline:
                        try:
                                chunk = s.recv(65536)
                        except socket.timeout:
                                break
                        except ConnectionResetError:
                                break
                        if not chunk:
                                break
                        out += chunk
                        if _response_complete(out):
                                break
                return out
        finally:
                s.close()


def _response_complete(buf):
        """True once buf holds a whole HTTP response with a Content-Length body."""
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
                return False
        m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        if m:
                return len(body) >= int(m.group(1))
        return False


def parse_raw_response(buf):
        """(status, headers dict lowercased, body bytes) of the first response in buf."""
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
        assert m, f"not an HTTP response: {buf[:200]!r}"
        hdrs = {}
        for ln in lines[1:]:
                k, _, v = ln.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
                body = body[:int(hdrs["content-length"])]
        return int(m.group(1)), hdrs, body


def wait_status(server, sid, want, timeout):
        """Poll the sandbox status until it is want; returns seconds waited."""
        t0 = time.monotonic()
        wait_until(lambda: server.status(sid) == want, timeout, 0.05,
                   f"sandbox {sid} to become {want}")
        return time.monotonic() - t0


def inside_pids(server, sid, **kw):
        """Pids visible inside the sandbox, with their comm: {pid: comm}."""
        out = server.sh(sid, "for d in /proc/[0-9]*; do printf '%s %s\\n' \"${d#/proc/}\" "
                        "\"$(cat $d/comm 2>/dev/null)\"; done", **kw)
        res = {}
        for line in out.splitlines():
                p, _, c = line.partition(" ")
                if p.isdigit():
                        res[int(p)] = c
        return res


# ---- warm pool and background teardown ----

_BYTE_UNITS = {"": 1, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4,
               "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


def parse_cpus(v):
        """A CPU quantity as the API writes or accepts it ("2", "500m", "0.5", 2, 0.5) ->
        millicpus."""
        if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(round(v * 1000))
        assert isinstance(v, str), f"not a CPU quantity: {v!r}"
        if v.endswith("m"):
                return int(v[:-1])
        return int(round(float(v) * 1000))


def parse_bytes(v):
        """A byte quantity ("256Mi", "1G", "1048576", 1048576) -> bytes."""
        if isinstance(v, int) and not isinstance(v, bool):
                return v
        assert isinstance(v, str), f"not a byte quantity: {v!r}"
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]i?)?", v.strip())
        assert m, f"not a byte quantity: {v!r}"
        return int(float(m.group(1)) * _BYTE_UNITS[m.group(2) or ""])


def size_class(template="base", cpus="2", memory="2Gi", disk="10Gi", network="none"):
        """A pool size class, normalised so that spellings of one value compare equal."""
        return (template, parse_cpus(cpus), parse_bytes(memory), parse_bytes(disk), network)


def class_of_entry(c):
        """The normalised size class of one entry of GET /api/v1/pool "classes"."""
        return size_class(c["template"], c["cpus"], c["memory"], c["disk"], c["network"])


def loop_backing_files():
        """{loop device name: backing file} for every attached loop device on the host."""
        out = {}
        for f in glob.glob("/sys/block/loop*/loop/backing_file"):
                v = _read(f)
                if v and v.strip():
                        out[f.split("/")[3]] = v.strip()
        return out


def loop_devices_under(path):
        """Loop devices whose backing file lies under path: {device: backing file}."""
        p = path.rstrip("/") + "/"
        return {d: f for d, f in loop_backing_files().items() if f.startswith(p)}


def sandbox_cgroup_dirs_v1v2(sid):
        """The sandbox's cgroup directories in the usual places (faster than the recursive
        sandbox_cgroup_dirs, for polling)."""
        pats = [f"/sys/fs/cgroup/*/warren/{sid}", f"/sys/fs/cgroup/warren/{sid}"]
        return sorted({os.path.realpath(p) for pat in pats for p in glob.glob(pat)
                       if os.path.isdir(p)})


def data_dir_ids(data_dir):
        """Sandbox ids that have a directory under DATA_DIR/sandboxes or DATA_DIR/run/sandboxes."""
        ids = set()
        for sub in ("sandboxes", os.path.join("run", "sandboxes")):
                try:
                        ids.update(n for n in os.listdir(os.path.join(data_dir, sub))
                                   if n.startswith("sandbox-"))
                except FileNotFoundError:
                        pass
        return ids


def sandbox_leftovers(data_dir, sid, init=None):
        """What is left on the host of a sandbox that should be gone entirely: a list of
        human-readable findings (empty when nothing is left). init: (pid, starttime) of its
        warren-init taken while it ran, checked too (so a process moved out of the cgroup is
        still found)."""
        left = []
        pids = sandbox_host_pids(sid)
        if pids:
                left.append(f"processes in its cgroups: {[(p, proc_comm(p)) for p in pids]}")
        if init and proc_starttime(init[0]) == init[1]:
                left.append(f"its warren-init (pid {init[0]}) is alive")
        cgs = sandbox_cgroup_dirs_v1v2(sid)
        if cgs:
                left.append(f"cgroups: {cgs}")
        loops = {d: f for d, f in loop_backing_files().items() if f"/{sid}/" in f}
        if loops:
                left.append(f"loop devices: {loops}")
        for sub in ("sandboxes", os.path.join("run", "sandboxes")):
                p = os.path.join(data_dir, sub, sid)
                if os.path.lexists(p):
                        left.append(f"directory {p}")
        mounts = host_mounts_mentioning(sid)
        if mounts:
                left.append(f"host mounts: {mounts}")
        return left


def wait_sandbox_gone(data_dir, sid, timeout=10, init=None):
        """Wait until nothing of the sandbox is left on the host; fail naming what is left."""
        deadline = time.monotonic() + timeout
        while True:
                left = sandbox_leftovers(data_dir, sid, init)
                if not left:
                        return
                if time.monotonic() >= deadline:
                        raise AssertionError(f"{sid}: still on the host {timeout}s later: "
                                             + "; ".join(left))
                time.sleep(0.05)


def wait_processes_gone(sid, timeout=10, init=None):
        """Wait until the sandbox has no process on the host (cgroups may stay)."""
        def gone():
                return not sandbox_host_pids(sid) and not (
                        init and proc_starttime(init[0]) == init[1])
        wait_until(gone, timeout, 0.05, f"every process of {sid} to be gone")


def start_background_sleep(server, sid, as_key=None):
        """Leave `sleep 1000` running in the sandbox after the exec returns; asserts it runs."""
        server.exec(sid, "setsid sh -c 'sleep 1000 >/dev/null 2>&1 &' </dev/null >/dev/null 2>&1;"
                    " true", as_key=as_key, timeout=5000)
        assert "sleep" in inside_pids(server, sid, as_key=as_key).values(), \
                "the background sleep is not running"


def pool_settled(server):
        """GET /api/v1/pool; the body when every class is full and no teardown is queued or
        running, else None. Fails at once if a class holds more than its target."""
        p = server.pool()
        for c in p["classes"]:
                assert c["ready"] <= c["target"], f"class over its target: {c}"
        t = p["teardown"]
        if t["queued"] or t["running"]:
                return None
        if any(c["ready"] != c["target"] for c in p["classes"]):
                return None
        return p


def wait_pool_settled(server, timeout=45):
        """Wait until every pool class is full and teardown is idle; returns GET /api/v1/pool."""
        return wait_until(lambda: pool_settled(server), timeout, 0.05,
                          "the pool to be full and teardown idle")


def pool_ids(server, api_ids):
        """Ids of the sandboxes the daemon holds besides those the API knows (api_ids): on a
        settled daemon, the pool's sandboxes."""
        return data_dir_ids(server.data_dir) - set(api_ids)


class DaemonSet:
        """Extra daemons beside the session's, each with its own data dir and env; close()
        deletes what they created, stops them, clears what their sandboxes left on the host
        (pooled sandboxes outlive a daemon by design) and returns problems found: a daemon
        that died on its own."""

        def __init__(self, bin_dir):
                self.bin_dir = bin_dir
                self.servers = []

        def start(self, env=None, name="extra"):
                root = tempfile.mkdtemp(prefix=f"warren-{name}-")
                srv = Server(self.bin_dir, root, env=env, name=name)
                self.servers.append(srv)
                srv.start()
                return srv

        def close(self):
                problems = []
                for srv in self.servers:
                        if srv.proc is not None and srv.proc.poll() is not None:
                                problems.append(f"warrend ({srv.log_path}) died during the test "
                                                f"(exit {srv.proc.returncode}); log tail:\n"
                                                f"{srv.log_tail(2000)}")
                        try:
                                if srv.alive():
                                        srv.cleanup()
                                        srv.wait_teardown_idle()
                        except Exception:  # noqa: BLE001
                                pass
                        srv.stop()
                        force_clear_data_dir(srv)
                return problems


def force_clear_data_dir(srv):
        """Last resort after the daemon stopped: kill every sandbox of its data dir, remove
        their cgroups, and remove the data dir unless something is still mounted from it."""
        ids = data_dir_ids(srv.data_dir) | set(srv.created)
        for sid in ids:
                host_kill_sandbox_processes(sid)
        for sid in ids:
                try:
                        wait_until(lambda: not sandbox_host_pids(sid), 5, 0.05)
                except AssertionError:
                        pass
                for d in sorted(sandbox_cgroup_dirs(sid), key=len, reverse=True):
                        try:
                                os.rmdir(d)
                        except OSError:
                                pass
        try:
                wait_until(lambda: not loop_devices_under(srv.data_dir), 5, 0.05)
        except AssertionError:
                pass
        if host_mounts_mentioning(srv.data_dir) or loop_devices_under(srv.data_dir) or \
                        os.environ.get("WARREN_KEEP_TMP"):
                sys.stderr.write(f"\nwarren test data left in {srv.root_dir}\n")
        else:
                shutil.rmtree(srv.root_dir, ignore_errors=True)


# ---- identity: API keys, JWTs, session tokens (test_identity.py, test_auth_matrix.py) ----

def b64url(data):
        """base64url without padding (JWT segments)."""
        if isinstance(data, str):
                data = data.encode()
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_jwt(secret, claims, header=None, digest="sha256", signature=None):
        """A JWT over header and claims, HMAC-signed with secret (bytes) and digest, unless
        signature (a string, possibly "") is given. For tests of what the server refuses."""
        import hashlib
        import hmac
        header = {"alg": "HS256", "typ": "JWT"} if header is None else header
        si = b64url(json.dumps(header, separators=(",", ":"))) + "." + \
                b64url(json.dumps(claims, separators=(",", ":")))
        if signature is None:
                signature = b64url(hmac.new(secret, si.encode(), getattr(hashlib, digest)).digest())
        return si + "." + signature


def jwt_secret(server):
        """The server's JWT secret: DATA_DIR/jwt.key (or JWT_SECRET from its env)."""
        if server.env.get("JWT_SECRET"):
                return server.env["JWT_SECRET"].encode()
        with open(os.path.join(server.data_dir, "jwt.key"), "rb") as f:
                return f.read().strip()


def bearer(token):
        """Authorization header dict for a bearer credential (use with auth=False)."""
        return {"Authorization": f"Bearer {token}"}


def create_key(server, role="member", name=None, as_key=None):
        """POST /api/v1/api-keys; asserts 201; returns {id, name, key, prefix, role, ...}."""
        r = server.post("/api/v1/api-keys", key=as_key,
                        json={"name": name or f"test-{role}-{secrets.token_hex(3)}", "role": role})
        assert r.status_code == 201, f"create key -> {r.status_code}: {r.text[:300]}"
        return r.json()


def key_id_of(server, key, as_key=None):
        """The id of an API key of the caller's organisation, found by its prefix."""
        r = server.get("/api/v1/api-keys", key=as_key or key)
        assert r.status_code == 200, f"list keys -> {r.status_code}: {r.text[:300]}"
        found = [k["id"] for k in r.json()["api_keys"] if k["prefix"] == key[:10]]
        assert len(found) == 1, f"key prefix {key[:10]!r} matches {found}"
        return found[0]


def mint_jwt(server, key=None, **body):
        """POST /api/v1/auth/token with an API key; asserts 200; returns the token."""
        r = server.post("/api/v1/auth/token", key=key, json=body)
        assert r.status_code == 200, f"auth/token -> {r.status_code}: {r.text[:300]}"
        return r.json()["token"]


def create_session_token(server, sid, as_key=None, **body):
        """POST /api/v1/sandbox/SID/session-tokens; asserts 201; returns the body."""
        r = server.post(f"/api/v1/sandbox/{sid}/session-tokens", key=as_key, json=body)
        assert r.status_code == 201, f"session token -> {r.status_code}: {r.text[:300]}"
        return r.json()
