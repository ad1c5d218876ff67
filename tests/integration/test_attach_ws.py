"""WebSocket attach to background jobs, and the StateSet /ws endpoint (Debian's
python3-websockets 10, asyncio client)."""
import asyncio
import base64
import json
import os
import time

import websockets

import warren_harness as wh
from warren_harness import assert_error


def ws_url(server, path):
        return server.url.replace("http://", "ws://", 1) + path


def start(server, sid, **body):
        r = server.post(f"/api/v1/sandbox/{sid}/processes", json=body)
        assert r.status_code == 201, r.text
        return r.json()


def job(server, sid, ref):
        return server.get(f"/api/v1/sandbox/{sid}/processes/{ref}").json()


async def collect(ws, until_exit=True, timeout=30):
        """Read messages until the server closes (or timeout); returns (bytes, control list)."""
        data, ctl = b"", []
        try:
                while True:
                        m = await asyncio.wait_for(ws.recv(), timeout)
                        if isinstance(m, bytes):
                                data += m
                        else:
                                ctl.append(json.loads(m))
                                if until_exit and ctl[-1]["type"] == "exit":
                                        # the server closes after exit
                                        pass
        except websockets.ConnectionClosed:
                pass
        return data, ctl


def attach(server, sid, ref, since=None, key=None):
        q = f"?since={since}" if since is not None else ""
        return websockets.connect(ws_url(server, f"/api/v1/sandbox/{sid}/processes/{ref}/attach{q}"),
                                  extra_headers=server.headers(key), max_size=None)


def test_attach_replays_then_follows_live(server, sandbox):
        j = start(server, sandbox, command="echo first; sleep 1; echo second; exit 3")

        async def go():
                async with attach(server, sandbox, j["id"]) as ws:
                        return await collect(ws)
        data, ctl = asyncio.run(go())
        assert data == b"first\nsecond\n"
        assert ctl[0]["type"] == "attached" and ctl[0]["offset"] == 0 and ctl[0]["id"] == j["id"]
        assert ctl[-1] == {"type": "exit", "state": "exited", "exit_code": 3}


def test_reattach_after_drop_yields_every_byte_once(server, sandbox):
        lines = 3000
        j = start(server, sandbox, command=f"for i in $(seq 1 {lines}); do echo line$i; "
                                           "[ $((i % 500)) = 0 ] && sleep 0.2; done")
        expect = b"".join(b"line%d\n" % i for i in range(1, lines + 1))

        async def go():
                got, since = b"", 0
                for _ in range(200):
                        async with attach(server, sandbox, j["id"], since=since) as ws:
                                hello = json.loads(await ws.recv())
                                assert hello["offset"] == since, hello
                                # read a little, then drop the connection abruptly
                                try:
                                        while True:
                                                m = await asyncio.wait_for(ws.recv(), 20)
                                                if isinstance(m, bytes):
                                                        got += m
                                                        since += len(m)
                                                        if len(got) % 3 == 0:
                                                                break
                                                elif json.loads(m)["type"] == "exit":
                                                        return got
                                except websockets.ConnectionClosed:
                                        return got
                raise AssertionError("never saw the end")
        got = asyncio.run(go())
        assert got == expect


def test_attach_stdin_resize_signal_on_pty(server, sandbox):
        r = server.post(f"/api/v1/sandbox/{sandbox}/terminals",
                        json={"cols": 80, "rows": 24, "shell": ["bash", "--norc", "-i"]})
        assert r.status_code == 201, r.text
        j = r.json()

        async def go():
                async with attach(server, sandbox, j["id"]) as ws:
                        assert json.loads(await ws.recv())["type"] == "attached"
                        await ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 50}))
                        await ws.send(b"tput cols; tput lines\n")
                        out = b""
                        while b"132" not in out or b"50" not in out:
                                m = await asyncio.wait_for(ws.recv(), 20)
                                if isinstance(m, bytes):
                                        out += m
                        await ws.send(json.dumps({"type": "stdin", "data": base64.b64encode(
                                b"exit 9\n").decode(), "encoding": "base64"}))
                        data, ctl = await collect(ws)
                        return out + data, ctl
        data, ctl = asyncio.run(go())
        assert ctl[-1]["exit_code"] == 9, ctl
        # bad control messages get an error message, not a closed socket
        j2 = start(server, sandbox, command="cat", stdin=True)

        async def bad():
                async with attach(server, sandbox, j2["id"]) as ws:
                        await ws.recv()
                        await ws.send("not json")
                        e1 = json.loads(await ws.recv())
                        await ws.send(json.dumps({"type": "resize", "cols": 5, "rows": 5}))
                        e2 = json.loads(await ws.recv())
                        await ws.send(json.dumps({"type": "bogus"}))
                        e3 = json.loads(await ws.recv())
                        await ws.send(b"echo-me\n")
                        got = b""
                        while got != b"echo-me\n":
                                m = await asyncio.wait_for(ws.recv(), 20)
                                if isinstance(m, bytes):
                                        got += m
                        await ws.send(json.dumps({"type": "signal", "signal": "KILL"}))
                        data, ctl = await collect(ws)
                        return e1, e2, e3, ctl
        e1, e2, e3, ctl = asyncio.run(bad())
        assert e1["type"] == e2["type"] == e3["type"] == "error"
        assert "terminal" in e2["message"]
        assert ctl[-1]["state"] == "killed"


def test_attach_to_ended_job_replays_and_closes(server, sandbox):
        j = start(server, sandbox, command="printf 'a\\377b'")
        wh.wait_until(lambda: job(server, sandbox, j["id"])["state"] != "running", 20)

        async def go():
                async with attach(server, sandbox, j["id"], since=1) as ws:
                        return await collect(ws)
        data, ctl = asyncio.run(go())
        assert data == b"\xffb" and ctl[0]["offset"] == 1 and ctl[-1]["type"] == "exit"


def test_attach_errors(server, sandbox, other_org):
        j = start(server, sandbox, command="sleep 30")
        base = f"/api/v1/sandbox/{sandbox}/processes/{j['id']}/attach"
        # not an upgrade
        assert_error(server.get(base), 400, "invalid_request")

        async def refused(path, key=None):
                try:
                        async with websockets.connect(ws_url(server, path),
                                                      extra_headers=server.headers(key)):
                                return None
                except websockets.InvalidStatusCode as e:
                        return e.status_code
        assert asyncio.run(refused(f"/api/v1/sandbox/{sandbox}/processes/job_999999/attach")) == 404
        assert asyncio.run(refused(base, key=other_org["api_key"])) == 404
        assert asyncio.run(refused(base + "?since=-4")) == 400

        async def nokey():
                try:
                        async with websockets.connect(ws_url(server, base)):
                                return None
                except websockets.InvalidStatusCode as e:
                        return e.status_code
        assert asyncio.run(nokey()) == 401
        server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{j['id']}")


def test_attachment_limit_429(daemons):
        d = daemons.start(env={"MAX_ATTACH_PER_JOB": "2"})
        sid = d.create(disk="64Mi")
        j = start(d, sid, command="sleep 60")

        async def go():
                a = await attach(d, sid, j["id"])
                b = await attach(d, sid, j["id"])
                try:
                        async with attach(d, sid, j["id"]):
                                return None
                except websockets.InvalidStatusCode as e:
                        return e.status_code
                finally:
                        await a.close()
                        await b.close()
        assert asyncio.run(go()) == 429


def test_ws_endpoint_multiplexes_executions(server, sandbox, other_org):
        async def go():
                async with websockets.connect(ws_url(server, "/ws"),
                                              extra_headers=server.headers()) as ws:
                        await ws.send(json.dumps({"type": "execute", "id": "a", "sandboxId": sandbox,
                                                  "command": "sleep 0.5; echo A; exit 2",
                                                  "stream": True}))
                        await ws.send(json.dumps({"type": "execute", "id": "b", "sandboxId": sandbox,
                                                  "command": ["sh", "-c", "echo B >&2"],
                                                  "stream": True}))
                        await ws.send(json.dumps({"type": "execute", "id": "c",
                                                  "sandboxId": "sandbox-nope", "command": "true"}))
                        await ws.send("{")
                        msgs = []
                        done = set()
                        while len(done) < 2:
                                m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                                msgs.append(m)
                                if m["type"] == "done":
                                        done.add(m["id"])
                        return msgs
        msgs = asyncio.run(go())
        by = lambda i, t: [m for m in msgs if m.get("id") == i and m["type"] == t]  # noqa: E731
        assert by("a", "stdout")[0]["data"] == "A\n" and by("a", "exit")[0]["code"] == 2
        assert by("b", "stderr")[0]["data"] == "B\n" and by("b", "exit")[0]["code"] == 0
        # b finished first although it started second: they ran at once
        assert msgs.index(by("b", "done")[0]) < msgs.index(by("a", "done")[0])
        assert by("c", "error")[0]["message"] == "sandbox not found"
        assert any(m["type"] == "error" and "id" not in m for m in msgs)

        # another organisation's key cannot run in this sandbox
        async def other():
                async with websockets.connect(ws_url(server, "/ws"),
                                              extra_headers=server.headers(other_org["api_key"])) as ws:
                        await ws.send(json.dumps({"type": "execute", "id": "x", "sandboxId": sandbox,
                                                  "command": "true"}))
                        return json.loads(await asyncio.wait_for(ws.recv(), 20))
        m = asyncio.run(other())
        assert m == {"type": "error", "id": "x", "message": "sandbox not found"}


def test_ws_close_kills_running_execution(server, sandbox):
        async def go():
                async with websockets.connect(ws_url(server, "/ws"),
                                              extra_headers=server.headers()) as ws:
                        await ws.send(json.dumps({"type": "execute", "id": "s", "sandboxId": sandbox,
                                                  "command": "echo up; exec sleep 300"}))
                        while True:
                                m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                                if m["type"] == "stdout":
                                        return
        asyncio.run(go())
        wh.wait_until(lambda: "sleep 300" not in server.sh(sandbox, "ps -eo args"), 20,
                      what="the execution killed with its socket")


def test_revoking_the_key_closes_its_websockets(server, sandbox):
        """A WebSocket stays bound to the credential that opened it: revoking the API key (or
        the session token) closes attachments and /ws sockets at once (1008); others stay."""
        j = start(server, sandbox, command="sleep 60")
        member = wh.create_key(server, "member")
        tok = wh.create_session_token(server, sandbox)

        async def go():
                a = await attach(server, sandbox, j["id"], key=member["key"])
                w = await websockets.connect(ws_url(server, "/ws"),
                                             extra_headers={"Authorization": f"ApiKey {member['key']}"})
                # a session token authenticates an attachment through ?token= (browsers)
                s = await websockets.connect(ws_url(server, f"/api/v1/sandbox/{sandbox}/processes/"
                                                    f"{j['id']}/attach?token={tok['token']}"))
                keep = await attach(server, sandbox, j["id"])
                for ws in (a, s, keep):
                        assert json.loads(await ws.recv())["type"] == "attached"
                r = server.delete_path(f"/api/v1/api-keys/{member['id']}")
                assert r.status_code == 200, r.text
                for ws in (a, w):
                        await asyncio.wait_for(ws.wait_closed(), 10)
                        assert ws.close_code == 1008, ws.close_code
                r = server.delete_path(f"/api/v1/sandbox/{sandbox}/session-tokens/{tok['id']}")
                assert r.status_code in (200, 204), r.text
                await asyncio.wait_for(s.wait_closed(), 10)
                assert s.close_code == 1008
                # the admin's attachment is untouched
                assert keep.open
                await keep.send(json.dumps({"type": "signal", "signal": "KILL"}))
                data, ctl = await collect(keep)
                return ctl
        ctl = asyncio.run(go())
        assert ctl[-1]["state"] == "killed"


def test_attach_from_an_offset_no_longer_held(daemons):
        """The log keeps the latest JOB_LOG_MAX bytes: attaching from 0 to an ended job that
        wrote more starts at the oldest byte held; the gap is told once, by that offset."""
        d = daemons.start(env={"JOB_LOG_MAX": "4096", "JOB_RING_BYTES": "4096"})
        sid = d.create(disk="64Mi")
        j = start(d, sid, command="seq 1 5000")
        wh.wait_until(lambda: job(d, sid, j["id"])["state"] != "running", 20)
        whole = "".join(f"{i}\n" for i in range(1, 5001)).encode()

        async def go():
                async with attach(d, sid, j["id"], since=0) as ws:
                        return await collect(ws)
        data, ctl = asyncio.run(go())
        assert ctl[0]["offset"] == len(whole) - 4096, ctl[0]
        assert not [m for m in ctl if m["type"] == "dropped"], ctl
        assert data == whole[-4096:]


def test_attach_stdin_has_backpressure(server, sandbox):
        """Stdin faster than the job reads: nothing is lost or refused, the client is just
        read more slowly (12 MiB into a job that starts reading after 2 s)."""
        j = start(server, sandbox, command="sleep 2; wc -c", stdin=True)
        chunk = os.urandom(256 * 1024)
        n = 48

        async def go():
                async with attach(server, sandbox, j["id"]) as ws:
                        assert json.loads(await ws.recv())["type"] == "attached"
                        for _ in range(n):
                                await ws.send(chunk)
                        await ws.send(json.dumps({"type": "eof"}))
                        return await collect(ws)
        data, ctl = asyncio.run(go())
        assert not [m for m in ctl if m["type"] == "error"], ctl
        assert data.strip() == str(n * len(chunk)).encode(), data
        assert ctl[-1]["exit_code"] == 0


def test_attach_sees_the_sandbox_go(server):
        """Deleting the sandbox ends its jobs: an attachment gets the end (killed) and a
        close, a waiting long poll its answer."""
        sid = server.create(disk="64Mi")
        j = start(server, sid, command="echo hi; sleep 300")

        async def go():
                async with attach(server, sid, j["id"]) as ws:
                        assert json.loads(await ws.recv())["type"] == "attached"
                        assert await asyncio.wait_for(ws.recv(), 20) == b"hi\n"
                        await asyncio.get_running_loop().run_in_executor(None, server.delete, sid)
                        return await collect(ws)
        data, ctl = asyncio.run(go())
        assert ctl[-1]["type"] == "exit" and ctl[-1]["state"] == "killed", ctl


def test_attach_after_daemon_kill9(server):
        """kill -9 of warrend while a client is attached: the job runs on; attaching again
        after the restart from the count of bytes received gives the rest exactly once."""
        sid = server.create(disk="64Mi")
        j = start(server, sid, command="for i in $(seq 1 40); do echo tick$i; sleep 0.1; done")
        expect = "".join(f"tick{i}\n" for i in range(1, 41)).encode()

        async def first():
                got = b""
                async with attach(server, sid, j["id"]) as ws:
                        await ws.recv()
                        while len(got) < 20:
                                got += await asyncio.wait_for(ws.recv(), 20)
                return got
        got = asyncio.run(first())
        server.restart(kill9=True)

        async def second():
                async with attach(server, sid, j["id"], since=len(got)) as ws:
                        hello = json.loads(await ws.recv())
                        assert hello["offset"] == len(got), hello
                        return await collect(ws)
        rest, ctl = asyncio.run(second())
        assert got + rest == expect
        assert ctl[-1] == {"type": "exit", "state": "exited", "exit_code": 0}
        server.delete(sid)


def test_ws_endpoint_limits_executions_per_socket(server, sandbox):
        async def go():
                async with websockets.connect(ws_url(server, "/ws"),
                                              extra_headers=server.headers()) as ws:
                        for i in range(17):
                                await ws.send(json.dumps({"type": "execute", "id": f"e{i}",
                                                          "sandboxId": sandbox,
                                                          "command": "sleep 30"}))
                        errs = []
                        while not errs:
                                m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                                if m["type"] == "error":
                                        errs.append(m)
                        return errs[0]
        e = asyncio.run(go())
        assert e["id"] == "e16" and "too many executions" in e["message"], e
        # closing the socket killed the 16 that ran
        wh.wait_until(lambda: "sleep 30" not in server.sh(sandbox, "ps -eo args"), 20,
                      what="executions killed with their socket")
