"""POST execute with "stream": true (newline-delimited JSON events over a chunked answer) and
POST run-code (python, node, bash; auto-detection)."""
import base64
import hashlib
import json
import socket
import time

import pytest

import warren_harness as wh
from warren_harness import assert_error


def stream(server, sid, body, timeout=60):
        """Run a streamed execute; returns the list of events."""
        r = server.post(f"/api/v1/sandbox/{sid}/execute", json=dict(body, stream=True),
                        stream=True, timeout=timeout)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        assert r.headers.get("Transfer-Encoding") == "chunked"
        return [json.loads(line) for line in r.iter_lines() if line]


def data_of(events, kind):
        """The bytes of every stdout/stderr event of one kind, decoded."""
        out = b""
        for ev in events:
                if ev["type"] == kind:
                        if ev.get("encoding") == "base64":
                                out += base64.b64decode(ev["data"])
                        else:
                                out += ev["data"].encode()
        return out


def test_stream_events_in_order(server, sandbox):
        ev = stream(server, sandbox, {"command": "echo one; sleep 0.2; echo two >&2; exit 3"})
        types = [e["type"] for e in ev]
        assert types[-2:] == ["exit", "done"], types
        assert data_of(ev, "stdout") == b"one\n"
        assert data_of(ev, "stderr") == b"two\n"
        assert ev[-2]["code"] == 3 and ev[-2]["timed_out"] is False
        assert ev[-1]["duration_ms"] >= 200
        # output came before the exit
        assert types.index("stdout") < types.index("exit")


def test_stream_binary_output_is_exact(server, sandbox):
        server.sh(sandbox, "head -c 300000 /dev/urandom > /workspace/r.bin")
        want = server.read_file(sandbox, "/workspace/r.bin")
        ev = stream(server, sandbox, {"command": ["cat", "/workspace/r.bin"]})
        got = data_of(ev, "stdout")
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest()
        assert any(e.get("encoding") == "base64" for e in ev)


def test_stream_keeps_a_split_character_whole(server, sandbox):
        code = ("import sys,time\n"
                "sys.stdout.buffer.write(b'caf\\xc3'); sys.stdout.flush(); time.sleep(0.3)\n"
                "sys.stdout.buffer.write(b'\\xa9!'); sys.stdout.flush()\n")
        ev = stream(server, sandbox, {"command": ["python3", "-c", code]})
        outs = [e for e in ev if e["type"] == "stdout"]
        assert data_of(ev, "stdout") == "café!".encode()
        # valid UTF-8 travels as text, the split character is not turned into base64
        assert all("encoding" not in e for e in outs), outs


def test_stream_timeout_and_missing_command(server, sandbox):
        ev = stream(server, sandbox, {"command": "sleep 10", "timeout": 500})
        assert ev[-2] == {"type": "exit", "code": 124, "timed_out": True}
        ev = stream(server, sandbox, {"command": ["no-such-command-here"]})
        assert ev[-2]["type"] == "exit" and ev[-2]["code"] == 127
        assert b"not found" in data_of(ev, "stderr")


def test_stream_flag_must_be_boolean(server, sandbox):
        r = server.post(f"/api/v1/sandbox/{sandbox}/execute", json={"command": "true",
                                                                    "stream": "yes"})
        assert_error(r, 400, mentions="stream")


def test_slow_reader_drops_with_the_count_reported(server, sandbox):
        """A client that stops reading does not make the daemon buffer without bound: output
        beyond the bound is dropped, and delivered + dropped is exactly what was written."""
        total = 60_000_000
        body = json.dumps({"command": f"yes | head -c {total}", "stream": True}).encode()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"POST /api/v1/sandbox/%s/execute HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: ApiKey %s\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                  % (sandbox.encode(), server.api_key.encode(), len(body)) + body)
        time.sleep(4)  # do not read: the command runs far ahead of us
        raw = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
                chunk = s.recv(1 << 20)
                if not chunk:
                        break
                raw += chunk
        s.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0]
        # undo the chunked encoding
        data, rest = b"", payload
        while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                n = int(size_line, 16)
                if n == 0:
                        break
                data += rest[:n]
                rest = rest[n + 2:]
        ev = [json.loads(line) for line in data.split(b"\n") if line]
        delivered = len(data_of(ev, "stdout"))
        dropped = sum(e["bytes"] for e in ev if e["type"] == "dropped")
        assert dropped > 0, "nothing was dropped: the test did not exercise the bound"
        assert delivered + dropped == total, (delivered, dropped)
        assert ev[-1]["type"] == "done" and ev[-2]["type"] == "exit"


@pytest.mark.parametrize("code,lang,out", [
        ('print(6*7)', "python", "42\n"),
        ('console.log(1+1)', "node", "2\n"),
        ('#!/bin/bash\necho $((2+3))', "bash", "5\n"),
        ('def f(x):\n    return x * 2\nprint(f(21))', "python", "42\n"),
        ('const f = (x) => x * 2;\nconsole.log(f(21));', "node", "42\n"),
])
def test_run_code_detects_the_language(server, sandbox, code, lang, out):
        r = server.post(f"/api/v1/sandbox/{sandbox}/run-code", json={"code": code})
        assert r.status_code == 200, r.text
        res = r.json()
        assert res["language"] == lang
        assert res["exit_code"] == 0, res
        assert res["output"] == out and res["stdout"] == out


def test_run_code_explicit_language_and_errors(server, sandbox):
        url = f"/api/v1/sandbox/{sandbox}/run-code"
        res = server.post(url, json={"code": "console.log('x')", "language": "js"}).json()
        assert res["language"] == "node" and res["stdout"] == "x\n"
        res = server.post(url, json={"code": "echo hi; echo err >&2; exit 4",
                                     "language": "bash"}).json()
        assert res["exit_code"] == 4
        assert res["output"] == "hi\nerr\n" and res["stderr"] == "err\n"
        res = server.post(url, json={"code": "import sys\nsys.exit(1/0)"}).json()
        assert res["exit_code"] == 1 and "ZeroDivisionError" in res["stderr"]
        assert_error(server.post(url, json={"code": "x", "language": "cobol"}), 400,
                     mentions="language")
        assert_error(server.post(url, json={"language": "python"}), 400, mentions="code")
        assert_error(server.post(url, json={"code": "#" * (100 * 1024 + 1)}), 413)
        assert_error(server.post(url, json={"code": "print(1)", "timeout": -1}), 400,
                     mentions="timeout")


def test_command_longer_than_an_argument_may_be_is_refused(server, sandbox):
        """The kernel takes at most 128 KiB per argument: a longer one is a clear 400, not a
        failed exec."""
        url = f"/api/v1/sandbox/{sandbox}/execute"
        assert_error(server.post(url, json={"command": "echo " + "x" * (128 * 1024)}), 400,
                     mentions="command")
        assert_error(server.post(url, json={"command": ["echo", "x" * (128 * 1024)]}), 400,
                     mentions="command[1]")
        res = server.exec(sandbox, ["sh", "-c", 'printf %s "$1" | wc -c', "sh",
                                    "x" * (128 * 1024 - 1)])
        assert res["stdout"].strip() == str(128 * 1024 - 1)
