"""bench_stream.py - streaming of background jobs (docs/api.md "Background processes and
terminals"): output throughput through one WebSocket attach (live, and replaying the held
log) and through the long-poll output route for comparison, and attach latency (opening
the WebSocket -> the "attached" message; a stdin write on the attach -> its echo, for `cat`
on a pipe and on a PTY).

The client is Debian's python3-websockets (10.4, asyncio), without compression, and
http.client (wlib.Client) for the long polls. Only 127.0.0.1 is contacted; every wait is
bounded (STEP_TIMEOUT per read, the job's own size for the streams).
"""
import asyncio
import base64
import json
import time

import websockets

from wlib import MiB, now_ms

STEP_TIMEOUT = 60  # seconds any single read may wait
POLL_LIMIT = 4 * MiB  # bytes per long poll (the route's maximum)


def start_job(c, sid, **body):
        return c.json("POST", f"/api/v1/sandbox/{sid}/processes", body)


def kill_job(c, sid, jid):
        c.raw("DELETE", f"/api/v1/sandbox/{sid}/processes/{jid}")


def connect(d, sid, jid, since=0):
        """A websockets connect() (use with `async with`) to the job's attach route."""
        return websockets.connect(
                f"ws://127.0.0.1:{d.port}/api/v1/sandbox/{sid}/processes/{jid}/attach"
                f"?since={since}",
                extra_headers={"Authorization": "ApiKey " + d.key}, max_size=None,
                compression=None, ping_interval=None, open_timeout=STEP_TIMEOUT)


async def _drain(d, sid, jid, since=0):
        """Attach and count output bytes until the job's exit message. Returns (bytes,
        dropped, seconds from the connect call to the exit message)."""
        t0 = time.perf_counter()
        got = dropped = 0
        async with connect(d, sid, jid, since) as ws:
                while True:
                        m = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
                        if isinstance(m, bytes):
                                got += len(m)
                                continue
                        msg = json.loads(m)
                        if msg["type"] == "attached":
                                dropped += msg["offset"] - since
                        elif msg["type"] == "dropped":
                                dropped += msg["to"] - msg["from"]
                        elif msg["type"] == "exit":
                                break
        return got, dropped, time.perf_counter() - t0


def _yes_job(c, sid, size):
        return start_job(c, sid, command=f"yes | head -c {size}")


def ws_throughput(d, sid, size, reps):
        """reps runs of a `yes | head -c size` job attached from offset 0 right after it
        started: MB/s delivered (bytes received / time until the exit message), dropped
        bytes, and the same for replaying the ended job's held log from 0."""
        c = d.client()
        live, replay = [], []
        try:
                for _ in range(reps):
                        j = _yes_job(c, sid, size)
                        got, dropped, el = asyncio.run(_drain(d, sid, j["id"]))
                        if got + dropped != size:
                                raise RuntimeError(f"ws: {got} + {dropped} dropped != {size}")
                        live.append({"MBps": got / 1e6 / el, "bytes": got, "dropped": dropped,
                                     "seconds": el})
                        got, dropped, el = asyncio.run(_drain(d, sid, j["id"]))
                        replay.append({"MBps": got / 1e6 / el, "bytes": got, "seconds": el})
        finally:
                c.close()
        return {"live": live, "replay": replay}


def poll_throughput(d, sid, size, reps):
        """reps runs of the same job read through GET .../output?wait=true (4 MiB per
        request, one keep-alive connection): MB/s delivered, dropped bytes."""
        c = d.client()
        out = []
        try:
                for _ in range(reps):
                        j = _yes_job(c, sid, size)
                        t0 = time.perf_counter()
                        since = got = dropped = requests = 0
                        for requests in range(1, 1000000):
                                o = c.json("GET", f"/api/v1/sandbox/{sid}/processes/{j['id']}"
                                                  f"/output?since={since}&limit={POLL_LIMIT}"
                                                  f"&wait=true&timeout={STEP_TIMEOUT}")
                                data = o["data"]
                                n = len(base64.b64decode(data)) if o["encoding"] == "base64" \
                                        else len(data.encode())
                                got += n
                                dropped += o["dropped"]
                                since = o["next"]
                                if o["eof"]:
                                        break
                        el = time.perf_counter() - t0
                        if got + dropped != size:
                                raise RuntimeError(f"poll: {got} + {dropped} dropped != {size}")
                        out.append({"MBps": got / 1e6 / el, "bytes": got, "dropped": dropped,
                                    "seconds": el, "requests": requests})
        finally:
                c.close()
        return out


async def _open_latency(d, sid, jid, n):
        xs = []
        for _ in range(n):
                t = now_ms()
                async with connect(d, sid, jid, since=1 << 40) as ws:
                        m = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT))
                        xs.append(now_ms() - t)
                        if m["type"] != "attached":
                                raise RuntimeError(f"expected attached, got {m}")
        return xs


async def _echo_latency(d, sid, jid, n):
        """n sequential 2-byte stdin writes (binary frames) and the time until their echo
        comes back as output."""
        xs = []
        async with connect(d, sid, jid, since=1 << 40) as ws:
                m = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT))
                if m["type"] != "attached":
                        raise RuntimeError(f"expected attached, got {m}")
                for i in range(n):
                        payload = b"%c\n" % (ord("a") + i % 26)
                        t = now_ms()
                        await ws.send(payload)
                        got = b""
                        # a PTY echoes the byte itself and then `cat` writes the line: wait for
                        # the first copy (both are "its echo"), then let the rest arrive
                        while payload[:1] not in got:
                                m = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
                                if isinstance(m, bytes):
                                        got += m
                        xs.append(now_ms() - t)
                        await asyncio.sleep(0.002)
                        # drop what else arrived (the PTY's second copy) before the next one
                        try:
                                while True:
                                        await asyncio.wait_for(ws.recv(), 0.02)
                        except asyncio.TimeoutError:
                                pass
        return xs


def attach_latency(d, sid, n):
        """Open -> "attached" over n fresh connections to a running `cat`, and stdin ->
        echo for `cat` on a pipe and on a PTY (n each). Lists of ms."""
        c = d.client()
        try:
                pipe = start_job(c, sid, command=["cat"], stdin=True)
                pty = start_job(c, sid, command=["cat"], pty={"cols": 80, "rows": 24})
                asyncio.run(_open_latency(d, sid, pipe["id"], 5))  # warm-up
                out = {"open": asyncio.run(_open_latency(d, sid, pipe["id"], n)),
                       "echo_pipe": asyncio.run(_echo_latency(d, sid, pipe["id"], n)),
                       "echo_pty": asyncio.run(_echo_latency(d, sid, pty["id"], n))}
                kill_job(c, sid, pipe["id"])
                kill_job(c, sid, pty["id"])
        finally:
                c.close()
        return out
