"""bench_io.py - file transfer through the binary endpoints, small file writes, a raw
loopback TCP ceiling for this client, and daemon memory with many idle keep-alive
connections."""
import base64
import os
import socket
import threading
import time

from wlib import MiB, now_ms, smaps_rollup, summary, vm_rss

CHUNK = 1 << 20


def upload(c, sid, path, data):
        """PUT files/upload of data (bytes); seconds."""
        t = time.perf_counter()
        st, body = c.raw("PUT", f"/api/v1/sandbox/{sid}/files/upload?path={path}", data,
                         {"Content-Type": "application/octet-stream"})
        el = time.perf_counter() - t
        if st != 200 and st != 201:
                raise RuntimeError(f"upload: HTTP {st}: {body[:200]!r}")
        return el


def download(c, sid, path, size):
        """GET files/download, reading the body in 1 MiB chunks and dropping it; seconds."""
        conn = c.connect()
        t = time.perf_counter()
        conn.request("GET", f"/api/v1/sandbox/{sid}/files/download?path={path}",
                     headers={"Authorization": "ApiKey " + c.key})
        r = conn.getresponse()
        got = 0
        buf = bytearray(CHUNK)
        while True:
                k = r.readinto(buf)
                if not k:
                        break
                got += k
        el = time.perf_counter() - t
        if r.status != 200 or got != size:
                raise RuntimeError(f"download: HTTP {r.status}, {got} of {size} bytes")
        return el


def loopback_ceiling(size, reps):
        """This client's ceiling: `size` bytes through a plain TCP socket on 127.0.0.1 (a
        thread sends with sendall, the main thread reads into a buffer). MB/s per rep."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(30)
        data = os.urandom(size)
        out = []
        for _ in range(reps):
                s = socket.create_connection(srv.getsockname(), timeout=30)
                a, _ = srv.accept()
                a.settimeout(30)
                th = threading.Thread(target=lambda: (s.sendall(data), s.close()))
                t = time.perf_counter()
                th.start()
                buf = bytearray(CHUNK)
                got = 0
                while got < size:
                        k = a.recv_into(buf)
                        if not k:
                                break
                        got += k
                el = time.perf_counter() - t
                th.join(30)
                a.close()
                out.append(size / el / 1e6)
        srv.close()
        return out


def transfer(d, size_mb, reps, small_n):
        """Upload and download one size_mb MB file reps times, and small_n 4 KiB writes."""
        c = d.client(timeout=300)
        sid = c.create(memory="1Gi", disk=f"{max(1, 3 * size_mb // 1024 + 1)}Gi")["sandbox_id"]
        size = size_mb * 1000 * 1000
        data = os.urandom(size)
        up, down = [], []
        for _ in range(reps):
                up.append(size / upload(c, sid, "/workspace/big.bin", data) / 1e6)
                down.append(size / download(c, sid, "/workspace/big.bin", size) / 1e6)
        small = []
        payload = base64.b64encode(os.urandom(4096)).decode()
        for i in range(small_n):
                t = now_ms()
                c.json("POST", f"/api/v1/sandbox/{sid}/files",
                       {"files": [{"path": f"/workspace/small/{i % 50}.bin",
                                   "content": payload}]})
                small.append(now_ms() - t)
        c.delete(sid)
        c.close()
        return {"size_bytes": size, "upload_MBps": up, "download_MBps": down,
                "small_write_ms": small, "loopback_MBps": loopback_ceiling(size, reps)}


def idle_connections(d, k, time_limit=60):
        """Open k keep-alive connections, send GET /health on each and read the answer, keep
        them open; daemon VmRSS and Pss before and with them. Returns bytes."""
        pid = d.pid()
        time.sleep(0.5)
        before = {"rss": vm_rss(pid), "pss": smaps_rollup(pid).get("Pss", 0)}
        socks = []
        req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        deadline = time.monotonic() + time_limit
        ok = 0
        try:
                for _ in range(k):
                        if time.monotonic() > deadline:
                                break
                        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                        socks.append(s)
                        s.sendall(req)
                        got = b""
                        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
                                chunk = s.recv(4096)
                                if not chunk:
                                        break
                                got += chunk
                        if got.startswith(b"HTTP/1.1 200"):
                                ok += 1
                time.sleep(1.0)
                alive = 0
                for s in socks:  # still open: a non-blocking peek sees no EOF
                        s.setblocking(False)
                        try:
                                alive += s.recv(1, socket.MSG_PEEK) != b""
                        except BlockingIOError:
                                alive += 1
                        except OSError:
                                pass
                with_conns = {"rss": vm_rss(pid), "pss": smaps_rollup(pid).get("Pss", 0)}
        finally:
                for s in socks:
                        s.close()
        return {"connections": len(socks), "answered_200": ok, "still_open": alive,
                "before": before, "with": with_conns}
