"""The `warren` CLI against a real warrend: every verb, exit statuses, stdout/stderr
separation, streamed copies checked by checksum, and its error and usage paths."""
import fcntl
import hashlib
import http.server
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest

import warren_harness as wh

CLI_TIMEOUT = 120  # seconds for one CLI invocation


def cli(server, *args, input=b"", key=None, url=None, env=None, timeout=CLI_TIMEOUT):
        """Run `warren ARGS` with WARREN_URL / WARREN_API_KEY set for this server (key=False:
        no key at all). Returns the CompletedProcess (bytes)."""
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        e["WARREN_URL"] = url or server.url
        if key is not False:
                e["WARREN_API_KEY"] = key or server.api_key
        e.update(env or {})
        return subprocess.run([os.path.join(server.bin_dir, "warren"), *args], input=input,
                              capture_output=True, env=e, timeout=timeout)


def ok(p):
        """Assert exit status 0 and return stdout as text."""
        assert p.returncode == 0, f"exit {p.returncode}; stderr: {p.stderr[-2000:]!r}"
        return p.stdout.decode()


def table(p):
        """Rows (lists of cells) of a table printed by the CLI, header first."""
        return [line.split() for line in ok(p).splitlines()]


def sha256_inside(server, sid, path):
        return server.sh(sid, ["sha256sum", path]).split()[0]


def test_version_and_help(server):
        p = cli(server, "--version")
        assert p.returncode == 0 and re.match(rb"^warren \d+\.\d+\.\d+\n$", p.stdout), p
        top = ok(cli(server, "--help"))
        for verb in ("create", "ls", "get", "status", "exec", "cp", "cat", "write", "ls-files",
                     "mkdir", "rm-file", "mv", "stat", "stop", "rm", "template", "health",
                     "start", "ps", "logs", "attach", "kill", "shell", "network"):
                assert re.search(rf"^  {re.escape(verb)} ", top, re.M), f"{verb} not in --help"
                h = ok(cli(server, verb, "--help"))
                assert h.startswith(f"Usage: warren {verb}"), h[:200]
        assert "sh -c" in ok(cli(server, "help", "exec"))


def test_health_over_tcp_and_unix_socket(server):
        out = ok(cli(server, "health", key=False))
        assert "status: ok" in out
        sock = os.path.join(server.data_dir, "warren.sock")
        assert os.path.exists(sock), "the daemon should listen on DATA_DIR/warren.sock"
        assert "status: ok" in ok(cli(server, "--url", f"unix:{sock}", "health", key=False))
        # authenticated routes work over the socket too
        assert table(cli(server, "ls", url=f"unix:{sock}"))[0] == \
                ["ID", "STATUS", "CPUS", "MEMORY", "CREATED", "EXPIRES"]


def test_create_get_ls_rm(server):
        p = cli(server, "create", "--cpus", "1", "--memory", "512Mi", "--timeout", "300",
                "--env", "GREETING=hello world", "-e", "EQ=a=b")
        out = ok(p)
        assert re.match(r"^[A-Za-z0-9_-]+\n$", out), f"create must print only the id: {out!r}"
        sid = out.strip()
        server.created[sid] = server.api_key  # deleted at session end if this test fails
        try:
                info = server.info(sid)
                assert info["cpus"] == "1" and info["memory"] == "512Mi"
                assert info["timeout_seconds"] == 300

                got = ok(cli(server, "get", sid))
                assert f"sandbox_id: {sid}\n" in got and "status: running\n" in got
                assert json.loads(ok(cli(server, "get", sid, "--json")))["sandbox_id"] == sid
                assert ok(cli(server, "status", sid)) == "running\n"

                # the env given at create reaches every command
                p = cli(server, "exec", sid, "--", "sh", "-c", 'printf "%s|%s" "$GREETING" "$EQ"')
                assert ok(p) == "hello world|a=b"

                rows = table(cli(server, "ls"))
                assert rows[0] == ["ID", "STATUS", "CPUS", "MEMORY", "CREATED", "EXPIRES"]
                mine = [r for r in rows[1:] if r[0] == sid]
                assert len(mine) == 1 and mine[0][1:4] == ["running", "1", "512Mi"], rows
                assert any(r[0] == sid for r in table(cli(server, "ls", "--status", "running")))
                assert not any(r[0] == sid for r in table(cli(server, "ls", "--status",
                                                              "stopped")))
                listed = json.loads(ok(cli(server, "ls", "--all", "--json")))
                assert sid in [s["sandbox_id"] for s in listed["sandboxes"]]

                assert ok(cli(server, "rm", sid)) == f"{sid}\n"
        finally:
                server.delete(sid)
        assert not any(r[0] == sid for r in table(cli(server, "ls", "--all")))
        assert server.get(f"/api/v1/sandbox/{sid}").status_code == 404
        p = cli(server, "get", sid)
        assert p.returncode == 1 and p.stdout == b""
        assert re.match(rb"^warren: .+ \(not_found, HTTP 404\)\n$", p.stderr), p.stderr


def test_create_json_prints_the_answer(server):
        p = cli(server, "create", "--json")
        body = json.loads(ok(p))
        sid = body["sandbox_id"]
        server.created[sid] = server.api_key
        try:
                assert body["status"] == "running" and "startup_metrics" in body
        finally:
                assert ok(cli(server, "rm", sid)) == f"{sid}\n"
                server.created.pop(sid, None)


def test_exec_exit_code_and_stream_separation(server, sandbox):
        p = cli(server, "exec", sandbox, "--", "sh", "-c", "exit 7")
        assert p.returncode == 7 and p.stdout == b"" and p.stderr == b""
        p = cli(server, "exec", sandbox, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        assert p.returncode == 3
        assert p.stdout == b"out\n" and p.stderr == b"err\n"
        # exit statuses above 255 cannot exist; 255 itself passes through
        assert cli(server, "exec", sandbox, "--", "sh", "-c", "exit 255").returncode == 255
        # bytes are passed through as returned (no added newline)
        p = cli(server, "exec", sandbox, "--", "printf", "a\tb")
        assert p.returncode == 0 and p.stdout == b"a\tb"


def test_exec_argv_is_not_a_shell_string(server, sandbox):
        # each argument stays one argument, spaces and shell characters included
        p = cli(server, "exec", sandbox, "--", "printf", "%s|", "a  b", "$HOME", "*")
        assert ok(p) == "a  b|$HOME|*|"
        # a single argument with spaces is one argv element: there is no "echo hi" program
        p = cli(server, "exec", sandbox, "--", "echo hi")
        assert p.returncode == 127, (p.returncode, p.stderr)
        # --sh sends a shell string
        assert ok(cli(server, "exec", sandbox, "--sh", "echo a b c | wc -w")).strip() == "3"


def test_exec_options(server, sandbox):
        p = cli(server, "exec", "--env", "X=1", "-e", "Y=two words", "--workdir", "/tmp",
                "--user", "root", sandbox, "--", "sh", "-c", 'echo "$X/$Y/$(pwd)/$(id -u)"')
        assert ok(p) == "1/two words//tmp/0\n"
        assert ok(cli(server, "exec", sandbox, "--", "id", "-u")) == "1001\n"
        # options may also follow the ID
        assert ok(cli(server, "exec", sandbox, "-w", "/", "--", "pwd")) == "/\n"


def test_exec_timeout_exits_124(server, sandbox):
        p = cli(server, "exec", "--timeout", "500", sandbox, "--", "sleep", "30")
        assert p.returncode == 124, (p.returncode, p.stderr)
        assert b"timeout" in p.stderr


def test_exec_streams_everything_and_json_truncates(server, sandbox):
        """Streamed (the default), all 3 MB arrive; the one-answer --json mode keeps
        MAX_EXEC_OUTPUT (1 MiB) and says it truncated."""
        cmd = ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"]
        p = cli(server, "exec", sandbox, "--", *cmd)
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"a" * 3000000
        p = cli(server, "exec", "--json", sandbox, "--", *cmd)
        body = json.loads(p.stdout)
        assert body["truncated"] is True and len(body["stdout"]) == 1048576


def test_exec_streams_binary_output_exactly(server, sandbox):
        server.sh(sandbox, "head -c 200000 /dev/urandom > /workspace/b")
        want = server.read_file(sandbox, "/workspace/b")
        p = cli(server, "exec", sandbox, "--", "cat", "/workspace/b")
        assert p.returncode == 0, p.stderr
        assert p.stdout == want


def test_exec_json_keeps_the_exit_status(server, sandbox):
        p = cli(server, "exec", "--json", sandbox, "--", "sh", "-c", "echo hi; exit 5")
        assert p.returncode == 5
        body = json.loads(p.stdout)
        assert body["exit_code"] == 5 and body["stdout"] == "hi\n"


def test_cp_in_and_out_5mb_by_checksum(server, sandbox, tmp_path):
        data = os.urandom(5 * wh.MiB + 123)
        digest = hashlib.sha256(data).hexdigest()
        src = tmp_path / "rand.bin"
        src.write_bytes(data)
        os.chmod(src, 0o640)

        assert ok(cli(server, "cp", str(src), f"{sandbox}:/workspace/in/rand.bin")) == ""
        assert sha256_inside(server, sandbox, "/workspace/in/rand.bin") == digest
        # the local permission bits travel with the file
        assert server.sh(sandbox, ["stat", "-c", "%a", "/workspace/in/rand.bin"]) == "640\n"

        # into an existing directory: the file keeps its name
        assert ok(cli(server, "cp", str(src), f"{sandbox}:/workspace/in")) == ""
        assert ok(cli(server, "cp", str(src), f"{sandbox}:/workspace/in/")) == ""
        assert sha256_inside(server, sandbox, "/workspace/in/rand.bin") == digest

        out = tmp_path / "back.bin"
        assert ok(cli(server, "cp", f"{sandbox}:/workspace/in/rand.bin", str(out))) == ""
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        assert sorted(os.listdir(tmp_path)) == ["back.bin", "rand.bin"], "no temp file left"

        # into a local directory, and to stdout
        d = tmp_path / "dir"
        d.mkdir()
        ok(cli(server, "cp", f"{sandbox}:/workspace/in/rand.bin", str(d)))
        assert hashlib.sha256((d / "rand.bin").read_bytes()).hexdigest() == digest
        p = cli(server, "cp", f"{sandbox}:/workspace/in/rand.bin", "-")
        assert p.returncode == 0 and hashlib.sha256(p.stdout).hexdigest() == digest

        # from stdin
        assert ok(cli(server, "cp", "-", f"{sandbox}:/workspace/stdin.bin", input=data)) == ""
        assert sha256_inside(server, sandbox, "/workspace/stdin.bin") == digest


def test_failed_download_leaves_no_file(server, sandbox, tmp_path):
        dst = tmp_path / "missing.bin"
        p = cli(server, "cp", f"{sandbox}:/workspace/does-not-exist", str(dst))
        assert p.returncode == 1
        assert re.search(rb"\(not_found, HTTP 404\)\n$", p.stderr), p.stderr
        assert os.listdir(tmp_path) == []
        # an existing destination is left as it was
        dst.write_bytes(b"keep me")
        assert cli(server, "cp", f"{sandbox}:/workspace/nope", str(dst)).returncode == 1
        assert dst.read_bytes() == b"keep me" and os.listdir(tmp_path) == ["missing.bin"]


def test_cat_and_write(server, sandbox):
        data = b"line 1\n\x00\xff\xfe binary\n"
        assert ok(cli(server, "write", sandbox, "/workspace/w/data.bin", input=data)) == ""
        assert server.read_file(sandbox, "/workspace/w/data.bin") == data
        p = cli(server, "cat", sandbox, "/workspace/w/data.bin")
        assert p.returncode == 0 and p.stdout == data
        # an empty stdin makes an empty file
        ok(cli(server, "write", sandbox, "/workspace/w/empty", input=b""))
        assert server.sh(sandbox, ["stat", "-c", "%s", "/workspace/w/empty"]) == "0\n"
        # --mode
        ok(cli(server, "write", "--mode", "0755", sandbox, "/workspace/run.sh",
               input=b"#!/bin/sh\necho ran\n"))
        assert ok(cli(server, "exec", sandbox, "--", "/workspace/run.sh")) == "ran\n"
        # a file the API cannot read
        p = cli(server, "cat", sandbox, "/workspace/absent")
        assert p.returncode == 1 and p.stdout == b"" and b"HTTP 404" in p.stderr


def test_file_verbs(server, sandbox):
        ok(cli(server, "mkdir", sandbox, "/workspace/a/b/c"))
        ok(cli(server, "mkdir", sandbox, "/workspace/a/b/c"))  # existing is fine
        ok(cli(server, "write", sandbox, "/workspace/a/f.txt", input=b"12345"))

        rows = table(cli(server, "ls-files", sandbox, "/workspace/a"))
        assert rows[0] == ["TYPE", "MODE", "SIZE", "MODIFIED", "NAME"]
        by_name = {r[-1]: r for r in rows[1:]}
        assert by_name["b"][0] == "directory"
        assert by_name["f.txt"][0] == "file" and by_name["f.txt"][2] == "5"
        listed = json.loads(ok(cli(server, "ls-files", "--json", sandbox, "/workspace/a")))
        assert {e["name"] for e in listed["entries"]} == {"b", "f.txt"}
        # default path: /workspace
        assert "a" in [r[-1] for r in table(cli(server, "ls-files", sandbox))[1:]]

        st = ok(cli(server, "stat", sandbox, "/workspace/a/f.txt"))
        assert "type: file\n" in st and "size: 5\n" in st and "uid: 1001\n" in st
        assert json.loads(ok(cli(server, "stat", sandbox, "/workspace/a/f.txt", "--json")))[
                "size"] == 5

        ok(cli(server, "mv", sandbox, "/workspace/a/f.txt", "/workspace/a/g.txt"))
        p = cli(server, "stat", sandbox, "/workspace/a/f.txt")
        assert p.returncode == 1 and b"(not_found, HTTP 404)" in p.stderr
        assert server.read_file(sandbox, "/workspace/a/g.txt") == b"12345"

        p = cli(server, "rm-file", sandbox, "/workspace/a")
        assert p.returncode == 1 and re.search(rb", HTTP 409\)\n$", p.stderr), p.stderr
        ok(cli(server, "rm-file", sandbox, "/workspace/a/g.txt"))
        ok(cli(server, "rm-file", "-r", sandbox, "/workspace/a"))
        assert "a" not in [r[-1] for r in table(cli(server, "ls-files", sandbox))[1:]]


def test_stop(server, sandbox):
        assert ok(cli(server, "stop", sandbox)) == f"{sandbox}\n"
        assert ok(cli(server, "status", sandbox)) == "stopped\n"
        assert server.status(sandbox) == "stopped"
        assert ok(cli(server, "stop", sandbox)) == f"{sandbox}\n"  # stopping again is fine
        p = cli(server, "exec", sandbox, "--", "true")
        assert p.returncode == 1 and b"(conflict, HTTP 409)" in p.stderr
        # a stopped sandbox is still listed until it is deleted
        assert any(r[0] == sandbox and r[1] == "stopped" for r in table(cli(server, "ls",
                                                                            "--all")))


def test_rm_several_reports_each_failure(server):
        a, b = server.create(), server.create()
        p = cli(server, "rm", a, "sandbox-doesnotexist", b)
        assert p.returncode == 1
        assert p.stdout.decode() == f"{a}\n{b}\n"
        assert b"(not_found, HTTP 404)" in p.stderr
        for sid in (a, b):
                assert server.get(f"/api/v1/sandbox/{sid}").status_code == 404
                server.created.pop(sid, None)


def test_template_ls(server):
        rows = table(cli(server, "template", "ls"))
        assert rows[0] == ["NAME", "DESCRIPTION", "CREATED"]
        assert "base" in [r[0] for r in rows[1:]]


def test_bad_key_is_an_api_error(server, sandbox):
        bad = "wk_bad_" + "0" * 40
        p = cli(server, "ls", key=bad)
        assert p.returncode == 1 and p.stdout == b""
        assert re.match(rb"^warren: .+ \(unauthorized, HTTP 401\)\n$", p.stderr), p.stderr
        assert bad.encode() not in p.stderr
        # --api-key wins over the environment
        p = cli(server, "--api-key", bad, "get", sandbox)
        assert p.returncode == 1 and b"HTTP 401" in p.stderr
        assert ok(cli(server, "get", sandbox, "--api-key", server.api_key, key=bad))


def test_no_key_and_no_server(server):
        p = cli(server, "ls", key=False)
        if os.access("/var/lib/warren/admin.key", os.R_OK):
                # the machine's admin key is used then; it is not this server's key
                assert p.returncode == 1 and b"HTTP 401" in p.stderr
        else:
                assert p.returncode == 2 and b"no API key" in p.stderr
        p = cli(server, "ls", url="http://127.0.0.1:1")
        assert p.returncode == 1 and p.stderr.startswith(b"warren: cannot connect")


@pytest.mark.parametrize("args", [
        [],
        ["no-such-verb"],
        ["create", "extra-arg"],
        ["create", "--timeout", "soon"],
        ["create", "--env", "NOEQUALS"],
        ["ls", "--limit", "0"],
        ["ls", "--bogus-option"],
        ["get"],
        ["status"],
        ["stop"],
        ["rm"],
        ["exec"],
        ["exec", "sandbox-x"],
        ["exec", "sandbox-x", "--sh", "true", "--", "true"],
        ["exec", "--user", "admin", "sandbox-x", "--", "true"],
        ["exec", "--timeout", "-1", "sandbox-x", "--", "true"],
        ["cp"],
        ["cp", "only-one"],
        ["cp", "local-a", "local-b"],
        ["cp", "sb1:/a", "sb2:/b"],
        ["cat", "sandbox-x"],
        ["write", "sandbox-x"],
        ["write", "--mode", "999", "sandbox-x", "/p"],
        ["mkdir", "sandbox-x"],
        ["rm-file", "sandbox-x"],
        ["mv", "sandbox-x", "/a"],
        ["stat", "sandbox-x"],
        ["template", "rm"],
        ["ps"],
        ["ps", "--limit", "0", "sandbox-x"],
        ["start", "sandbox-x"],
        ["start", "--timeout", "soon", "sandbox-x", "--", "true"],
        ["logs", "sandbox-x"],
        ["logs", "--since", "-1", "sandbox-x", "job_1"],
        ["kill", "sandbox-x"],
        ["kill", "--signal", "TERM;rm", "sandbox-x", "job_1"],
        ["attach", "sandbox-x"],
        ["attach", "--since", "x", "sandbox-x", "job_1"],
        ["shell"],
        ["shell", "--env", "NOEQ", "sandbox-x"],
        ["--max-time", "never", "health"],
        ["--url", "ftp://127.0.0.1/", "health"],
        ["network"],
        ["network", "sandbox-x", "sandbox-y"],
        ["network", "--reset", "--allow", ":443", "sandbox-x"],
        ["network", "--allow", "none", "--allow", ":443", "sandbox-x"],
        ["network", "--deny", "10.0.0.0/8", "--deny", "none", "sandbox-x"],
        ["network", "--allow", "", "sandbox-x"],
        ["network", "--allow", "1.2.3.4:", "sandbox-x"],
        ["network", "--allow", "1.2.3.4:443,", "sandbox-x"],
        ["network", "--allow", "1.2.3.4:1-2-3", "sandbox-x"],
        ["network", "--allow", "1.2.3.4:https", "sandbox-x"],
        ["network", "--allow", "1.2.3.4:443/icmp", "sandbox-x"],
        ["network", "--deny", "2001:db8::/32", "sandbox-x"],
        ["network", "--deny", "[10.0.0.0/8]", "sandbox-x"],
        ["network", "--deny", "[2001:db8::/32]443", "sandbox-x"],
        ["create", "--allow", ":443"],
        ["create", "--network", "none", "--deny", "10.0.0.0/8"],
        ["create", "--network", "egress", "--allow", "x:y:z"],
])
def test_usage_errors_exit_2(server, args):
        p = cli(server, *args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stdout == b""
        # "warren: ...", getopt's "warren VERB: unrecognized option", or the overall usage
        assert p.stderr.startswith((b"warren", b"Usage: warren")), p.stderr


def test_cp_directory_is_refused(server, sandbox, tmp_path):
        p = cli(server, "cp", str(tmp_path), f"{sandbox}:/workspace/x")
        assert p.returncode == 2 and b"director" in p.stderr


# ---- background jobs: start, ps, logs, kill, attach, shell ----

def job_json(server, sid, ref):
        r = server.get(f"/api/v1/sandbox/{sid}/processes/{ref}")
        assert r.status_code == 200, r.text
        return r.json()


def wait_job(server, sid, ref, pred=lambda j: j["state"] != "running", timeout=30):
        return wh.wait_until(lambda: (lambda j: j if pred(j) else None)(job_json(server, sid, ref)),
                             timeout, what=f"job {ref}")


def start_job(server, sid, *args):
        """`warren start ID ARGS...`; returns the job id it printed."""
        out = ok(cli(server, "start", sid, *args))
        assert re.fullmatch(r"job_\d+\n", out), out
        return out.strip()


def test_start_ps_and_logs_exact_bytes(server, sandbox):
        want = b"a\x00b\xff\xfec\r\n" + bytes(range(256)) + b"done\n"
        server.write_file(sandbox, "/workspace/bytes.bin", want)
        jid = start_job(server, sandbox, "--env", "X=1", "--cwd", "/workspace", "--",
                        "sh", "-c", 'cat bytes.bin; exit 5')
        j = wait_job(server, sandbox, jid)
        assert j["state"] == "exited" and j["exit_code"] == 5 and j["pty"] is False

        rows = table(cli(server, "ps", sandbox))
        assert rows[0] == ["ID", "PID", "STATE", "EXIT", "PTY", "STARTED", "COMMAND"]
        mine = [r for r in rows[1:] if r[0] == jid]
        assert len(mine) == 1 and mine[0][2:5] == ["exited", "5", "no"], rows
        assert mine[0][1] == str(j["pid"]) and mine[0][5] == j["started_at"]
        assert mine[0][6:] == ["sh", "-c", "'cat", "bytes.bin;", "exit", "5'"], mine
        listed = json.loads(ok(cli(server, "ps", "--json", sandbox)))
        assert jid in [x["id"] for x in listed["processes"]]

        # the log byte for byte (base64 on the wire), from 0 and from an offset; an ended
        # job's logs exit with its exit code
        p = cli(server, "logs", sandbox, jid)
        assert p.returncode == 5 and p.stdout == want and p.stderr == b"", p
        p = cli(server, "logs", "--since", "7", sandbox, jid)
        assert p.returncode == 5 and p.stdout == want[7:], p
        p = cli(server, "logs", "--since", str(len(want)), sandbox, jid)
        assert p.returncode == 5 and p.stdout == b"", p
        p = cli(server, "logs", "-f", "--since", "99999999", sandbox, jid)
        assert p.returncode == 5 and p.stdout == b"", p
        # by pid too
        assert cli(server, "logs", sandbox, str(j["pid"])).stdout == want

        # newest first, --limit
        jid2 = start_job(server, sandbox, "--sh", "echo second")
        rows = table(cli(server, "ps", "--limit", "1", sandbox))
        assert len(rows) == 2 and rows[1][0] == jid2, rows
        assert rows[1][6:] == ["echo", "second"]
        wait_job(server, sandbox, jid2)

        # a command that cannot start still gets a job; start exits 127
        p = cli(server, "start", sandbox, "--", "/no/such/binary")
        assert p.returncode == 127 and re.fullmatch(rb"job_\d+\n", p.stdout), p
        assert b"could not start" in p.stderr
        # unknown job
        p = cli(server, "logs", sandbox, "job_999999")
        assert p.returncode == 1 and b"(not_found, HTTP 404)" in p.stderr


def test_start_options_reach_the_job(server, sandbox):
        jid = start_job(server, sandbox, "-e", "A=x y", "-w", "/tmp", "--user", "root",
                        "--timeout", "60000", "--max-run-after-disconnect", "300", "--",
                        "sh", "-c", 'echo "$A|$(pwd)|$(id -u)"')
        j = wait_job(server, sandbox, jid)
        assert j["max_run_after_disconnect"] == 300
        p = cli(server, "logs", sandbox, jid)
        assert p.returncode == 0 and p.stdout == b"x y|/tmp|0\n", p
        body = json.loads(ok(cli(server, "start", "--json", "--pty", sandbox, "--", "true")))
        assert body["pty"] is True and body["id"].startswith("job_")
        # --timeout: killed at the deadline, logs exits 124 like exec
        jid = start_job(server, sandbox, "--timeout", "300", "--", "sleep", "30")
        wait_job(server, sandbox, jid)
        p = cli(server, "logs", "-f", sandbox, jid)
        assert p.returncode == 124, p


def test_logs_follow_and_snapshot(server, sandbox):
        jid = start_job(server, sandbox, "--sh",
                        "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                        "head -c 300000 /dev/zero | tr '\\0' z; echo; echo last; exit 7")
        wh.wait_until(lambda: b"first" in cli(server, "logs", sandbox, jid).stdout, 20,
                      what="first line")
        # without --follow: what the log holds now, exit 0 while the job runs
        p = cli(server, "logs", sandbox, jid)
        assert p.returncode == 0 and p.stdout == b"first\n", p
        follower = subprocess.Popen(
                [os.path.join(server.bin_dir, "warren"), "logs", "--follow", sandbox, jid],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin", "WARREN_URL": server.url,
                     "WARREN_API_KEY": server.api_key})
        try:
                server.sh(sandbox, "touch /tmp/go")
                out, err = follower.communicate(timeout=60)
        finally:
                if follower.poll() is None:
                        follower.kill()
                        follower.wait()
        assert follower.returncode == 7, err
        assert out == b"first\n" + b"z" * 300000 + b"\nlast\n", (len(out), err)
        # following an ended job prints everything and exits with its code at once
        p = cli(server, "logs", "-f", "--since", "6", sandbox, jid)
        assert p.returncode == 7 and p.stdout == b"z" * 300000 + b"\nlast\n"


def test_logs_and_attach_report_bytes_no_longer_held(server, sandbox):
        """A log longer than JOB_LOG_MAX (16 MiB): the oldest bytes are gone; logs and attach
        say so on stderr only and print the rest exactly."""
        total = 20 * wh.MiB
        jid = start_job(server, sandbox, "--sh", f"head -c {total} /dev/zero | tr '\\0' q")
        assert wait_job(server, sandbox, jid, timeout=120)["exit_code"] == 0
        p = cli(server, "logs", sandbox, jid)
        assert p.returncode == 0, p.stderr
        m = re.fullmatch(rb"warren: (\d+) bytes of the log \(offsets 0 to (\d+)\) are no longer "
                         rb"held; continuing at \2\n", p.stderr)
        assert m, p.stderr
        dropped = int(m.group(1))
        assert dropped == int(m.group(2)) and dropped >= total - 16 * wh.MiB
        assert p.stdout == b"q" * (total - dropped)
        p = cli(server, "attach", sandbox, jid)
        assert p.returncode == 0 and p.stdout == b"q" * (total - dropped), p.stderr
        assert re.fullmatch(rb"warren: bytes 0 to %d of the log are no longer held; output "
                            rb"starts at %d\n" % (dropped, dropped), p.stderr), p.stderr


def test_kill_and_signal(server, sandbox):
        jid = start_job(server, sandbox, "--sh",
                        'exec 2>/dev/null; trap "echo got-term; exit 9" TERM; echo ready; '
                        'while :; do sleep 0.05; done')
        wh.wait_until(lambda: b"ready" in cli(server, "logs", sandbox, jid).stdout, 20,
                      what="trap set")
        assert ok(cli(server, "kill", "--signal", "TERM", sandbox, jid)) == ""
        p = cli(server, "logs", "-f", sandbox, jid)
        # (stderr is /dev/null: sh reports its killed `sleep` as "Terminated" there)
        assert p.returncode == 9 and p.stdout == b"ready\ngot-term\n", p
        # a number works too; SIGKILL by number
        jid = start_job(server, sandbox, "--", "sleep", "60")
        assert ok(cli(server, "kill", "-s", "9", sandbox, jid)) == ""
        assert wait_job(server, sandbox, jid)["state"] in ("killed", "exited")
        # default: DELETE (SIGKILL to the group), the record stays; --json prints the job
        jid = start_job(server, sandbox, "--", "sleep", "60")
        assert ok(cli(server, "kill", sandbox, jid)) == ""
        j = wait_job(server, sandbox, jid)
        assert j["state"] == "killed" and j["exit_code"] == 137
        assert cli(server, "logs", sandbox, jid).returncode == 137
        row = [r for r in table(cli(server, "ps", sandbox))[1:] if r[0] == jid][0]
        assert row[2:4] == ["killed", "137"]
        # a signal the server does not know
        p = cli(server, "kill", "--signal", "NOPE", sandbox, jid)
        assert p.returncode == 1 and b"HTTP 4" in p.stderr, p


def test_attach_piped_stdin_round_trip(server, sandbox):
        jid = start_job(server, sandbox, "--stdin", "--", "cat")
        data = b"hello\x00\xff world\n" + os.urandom(300000)
        p = cli(server, "attach", sandbox, jid, input=data)
        assert p.returncode == 0, p.stderr
        assert p.stdout == data
        assert job_json(server, sandbox, jid)["state"] == "exited"
        # an ended job: replayed from an offset, then the exit code
        p = cli(server, "attach", "--since", "6", sandbox, jid)
        assert p.returncode == 0 and p.stdout == data[6:], p.stderr
        # live output of a job without stdin, and its exit code
        jid = start_job(server, sandbox, "--sh", "echo one; sleep 0.5; echo two; exit 6")
        p = cli(server, "attach", sandbox, jid)
        assert p.returncode == 6 and p.stdout == b"one\ntwo\n" and p.stderr == b"", p
        # errors are the API's
        p = cli(server, "attach", sandbox, "job_999999")
        assert p.returncode == 1 and b"(not_found, HTTP 404)" in p.stderr
        p = cli(server, "attach", sandbox, jid, key="wk_bad_" + "0" * 40)
        assert p.returncode == 1 and b"HTTP 401" in p.stderr
        # over the unix socket too
        sock = os.path.join(server.data_dir, "warren.sock")
        p = cli(server, "attach", sandbox, jid, url=f"unix:{sock}")
        assert p.returncode == 6 and p.stdout == b"one\ntwo\n", p


def test_shell_without_a_tty(server, sandbox):
        p = cli(server, "shell", sandbox, input=b"echo hi; tput cols; exit 3\n")
        assert p.returncode == 3, p
        assert b"hi\r\n" in p.stdout and b"\r\n80\r\n" in p.stdout, p.stdout
        # the terminal job stays listed, ended
        rows = [r for r in table(cli(server, "ps", sandbox))[1:] if r[4] == "yes"]
        assert rows and rows[0][2:4] == ["exited", "3"], rows
        # --shell, --env, --cwd
        p = cli(server, "shell", "--shell", "echo $V; pwd; exit 2", "-e", "V=val", "-w", "/tmp",
                sandbox)
        assert p.returncode == 2 and b"val\r\n/tmp\r\n" in p.stdout, p


def _read_until(fd, buf, pattern, timeout=30):
        """Read from fd into buf (a bytearray) until pattern (a regex on bytes) matches after
        the current end of buf as it was; returns the match."""
        start = len(buf)
        deadline = time.monotonic() + timeout
        while True:
                m = re.search(pattern, bytes(buf[start:]))
                if m:
                        return m
                left = deadline - time.monotonic()
                assert left > 0, f"no {pattern!r} in {bytes(buf[start:])[-2000:]!r}"
                r, _, _ = select.select([fd], [], [], left)
                if r:
                        try:
                                chunk = os.read(fd, 65536)
                        except OSError:
                                chunk = b""
                        assert chunk, f"the pty closed; no {pattern!r} in {bytes(buf)[-2000:]!r}"
                        buf += chunk


def _set_winsize(fd, cols, rows):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _wait_raw(fd, timeout=30):
        """Wait until the terminal fd is in raw mode (warren attached and switched it)."""
        wh.wait_until(lambda: not termios.tcgetattr(fd)[3] & termios.ICANON, timeout,
                      what="raw mode")


def test_shell_on_a_pty_raw_mode_and_resize(server, sandbox):
        master, slave = os.openpty()
        try:
                _set_winsize(slave, 100, 30)
                before = termios.tcgetattr(slave)

                def make_ctty():
                        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
                child = subprocess.Popen(
                        [os.path.join(server.bin_dir, "warren"), "shell", "--shell",
                         "bash --norc -i", sandbox],
                        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                        preexec_fn=make_ctty, close_fds=True,
                        env={"PATH": "/usr/bin:/bin", "TERM": "xterm", "LANG": "C.UTF-8",
                             "WARREN_URL": server.url, "WARREN_API_KEY": server.api_key})
                try:
                        buf = bytearray()
                        _wait_raw(slave)
                        os.write(master, b"tput cols; echo $TERM\n")
                        # (bash's bracketed-paste switch ends in \r before the output)
                        _read_until(master, buf, rb"[\r\n]100\r\nxterm\r\n")
                        # raw mode while attached: no canonical input, no local echo
                        mid = termios.tcgetattr(slave)
                        assert not mid[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
                        _set_winsize(master, 120, 40)
                        os.kill(child.pid, signal.SIGWINCH)
                        os.write(master, b"tput cols; tput lines\n")
                        _read_until(master, buf, rb"[\r\n]120\r\n40\r\n")
                        # Ctrl-C goes to the remote terminal, not to warren
                        os.write(master, b"sleep 30\n")
                        time.sleep(0.3)
                        os.write(master, b"\x03")
                        os.write(master, b"echo after-int\n")
                        _read_until(master, buf, rb"[\r\n]after-int\r\n")
                        assert child.poll() is None
                        os.write(master, b"exit 4\n")
                        assert child.wait(timeout=30) == 4
                finally:
                        if child.poll() is None:
                                child.kill()
                                child.wait()
                after = termios.tcgetattr(slave)
                assert after == before, (before, after)
        finally:
                os.close(master)
                os.close(slave)


def test_shell_detach_and_signal_restore_the_terminal(server, sandbox):
        master, slave = os.openpty()
        env = {"PATH": "/usr/bin:/bin", "TERM": "xterm", "WARREN_URL": server.url,
               "WARREN_API_KEY": server.api_key}
        try:
                _set_winsize(slave, 80, 24)
                before = termios.tcgetattr(slave)
                argv = [os.path.join(server.bin_dir, "warren"), "shell", "--shell",
                        "bash --norc -i", sandbox]
                # Enter ~. detaches: exit 0, the shell keeps running
                child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                         start_new_session=True, env=env)
                buf = bytearray()
                try:
                        _wait_raw(slave)
                        os.write(master, b"echo ready\n")
                        _read_until(master, buf, rb"[\r\n]ready\r\n")
                        os.write(master, b"\r~.")
                        assert child.wait(timeout=30) == 0
                        m = _read_until(master, buf, rb"detached.*warren attach \S+ (job_\d+)")
                finally:
                        if child.poll() is None:
                                child.kill()
                                child.wait()
                assert termios.tcgetattr(slave) == before
                jid = m.group(1).decode()
                assert job_json(server, sandbox, jid)["state"] == "running"
                # SIGTERM: the terminal is restored, warren exits 128+15, the shell gets SIGHUP
                child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                         start_new_session=True, env=env)
                try:
                        _wait_raw(slave)
                        os.write(master, b"echo ready2\n")
                        _read_until(master, buf, rb"[\r\n]ready2\r\n")
                        assert not termios.tcgetattr(slave)[3] & termios.ICANON
                        child.send_signal(signal.SIGTERM)
                        assert child.wait(timeout=30) == 128 + signal.SIGTERM
                finally:
                        if child.poll() is None:
                                child.kill()
                                child.wait()
                assert termios.tcgetattr(slave) == before
                shells = [x for x in json.loads(ok(cli(server, "ps", "--json", sandbox)))[
                        "processes"] if x["pty"] and x["id"] != jid]
                assert shells and wait_job(server, sandbox, shells[0]["id"])["state"] != "running"
                # the detached shell is still there to attach to; end it
                assert ok(cli(server, "kill", sandbox, jid)) == ""
        finally:
                os.close(master)
                os.close(slave)


class FakeServer:
        """An HTTP server on 127.0.0.1 standing in for warrend, to see the exact requests the
        CLI sends: it records each one and answers from a list of canned answers."""

        def __init__(self):
                self.requests = []
                self.answers = []
                fake = self

                class Handler(http.server.BaseHTTPRequestHandler):
                        def handle_any(self):
                                n = int(self.headers.get("Content-Length") or 0)
                                body = self.rfile.read(n) if n else b""
                                fake.requests.append((self.command, self.path,
                                                      json.loads(body) if body else None))
                                status, answer = fake.answers.pop(0)
                                data = json.dumps(answer).encode()
                                self.send_response(status)
                                self.send_header("Content-Type", "application/json")
                                self.send_header("Content-Length", str(len(data)))
                                self.end_headers()
                                self.wfile.write(data)

                        do_GET = do_POST = do_PATCH = handle_any

                        def log_message(self, *args):
                                pass

                self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
                self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
                self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
                self.thread.start()

        def run(self, server, *args, answer=(200, {})):
                """Run the CLI against this server with one canned answer; (process, the
                request it sent as (method, path, JSON body or None))."""
                self.answers = [answer]
                self.requests = []
                p = cli(server, *args, url=self.url)
                return p, (self.requests[0] if self.requests else None)

        def close(self):
                self.httpd.shutdown()
                self.httpd.server_close()


@pytest.fixture
def fake():
        f = FakeServer()
        yield f
        f.close()


FAKE_NETWORK = {"sandbox_id": "sandbox-fake", "network": "egress",
                "network_policy": {"allow": [{"cidr": "0.0.0.0/0", "protocol": "tcp",
                                              "ports": [443]},
                                             {"cidr": "0.0.0.0/0", "protocol": "any",
                                              "ports": [53, "8000-8080"]}],
                                   "deny": [{"cidr": "2001:db8::/32", "protocol": "any"},
                                            {"cidr": "203.0.113.0/24", "protocol": "udp"}]},
                "network_address": "10.88.0.7"}


def test_create_network_rules_map_to_the_request(server, fake):
        """--network and --allow/--deny become the create request's network and
        network_policy fields, one rule object per option, lists only where given."""
        p, req = fake.run(server, "create", "--network", "egress",
                          "--allow", "203.0.113.0/24:443,8000-8080/tcp", "--allow", ":53/udp",
                          "--allow", "198.51.100.7", "--deny", "[2001:db8::/32]",
                          "--deny", "203.0.113.128/25:80", "--deny", "/any",
                          answer=(201, {"sandbox_id": "sandbox-fake"}))
        assert ok(p) == "sandbox-fake\n"
        assert req == ("POST", "/api/v1/sandbox/create", {
                "network": "egress",
                "network_policy": {
                        "allow": [{"cidr": "203.0.113.0/24", "ports": [443, "8000-8080"],
                                   "protocol": "tcp"},
                                  {"ports": [53], "protocol": "udp"},
                                  {"cidr": "198.51.100.7"}],
                        "deny": [{"cidr": "2001:db8::/32"},
                                 {"cidr": "203.0.113.128/25", "ports": [80]},
                                 {"protocol": "any"}]}})
        p, req = fake.run(server, "create", "--network", "egress",
                          answer=(201, {"sandbox_id": "sandbox-fake"}))
        assert ok(p) == "sandbox-fake\n" and req[2] == {"network": "egress"}
        p, req = fake.run(server, "create", "--network", "egress", "--allow", "none",
                          answer=(201, {"sandbox_id": "sandbox-fake"}))
        assert req[2] == {"network": "egress", "network_policy": {"allow": []}}
        p, req = fake.run(server, "create", "--network", "none",
                          answer=(201, {"sandbox_id": "sandbox-fake"}))
        assert req[2] == {"network": "none"}


def test_network_verb_get_patch_and_reset(server, fake):
        """`network ID` GETs and prints the policy in the rule syntax (so a printed rule can
        be given back); with --allow/--deny it PATCHes the lists given; --reset sends null
        for both."""
        p, req = fake.run(server, "network", "sandbox-fake", answer=(200, FAKE_NETWORK))
        assert req == ("GET", "/api/v1/sandbox/sandbox-fake/network", None)
        assert ok(p) == ("sandbox_id: sandbox-fake\nnetwork: egress\naddress: 10.88.0.7\n"
                         "allow: 0.0.0.0/0:443/tcp\nallow: 0.0.0.0/0:53,8000-8080\n"
                         "deny: [2001:db8::/32]\ndeny: 203.0.113.0/24/udp\n")
        # the printed rules, given back, are the same rules
        rules = [l.split(": ", 1) for l in ok(p).splitlines() if l.startswith(("allow", "deny"))]
        args = [a for k, v in rules for a in (f"--{k}", v)]
        p, req = fake.run(server, "network", "sandbox-fake", *args, answer=(200, FAKE_NETWORK))
        assert ok(p).startswith("sandbox_id: sandbox-fake\n")
        assert req[0:2] == ("PATCH", "/api/v1/sandbox/sandbox-fake/network")
        canon = {k: [{f: v for f, v in r.items() if (f, v) != ("protocol", "any")}
                     for r in FAKE_NETWORK["network_policy"][k]] for k in ("allow", "deny")}
        assert req[2] == canon, req
        # one list only; "none" empties a list
        p, req = fake.run(server, "network", "--allow", ":8080/tcp", "sandbox-fake",
                          answer=(200, FAKE_NETWORK))
        assert req[2] == {"allow": [{"ports": [8080], "protocol": "tcp"}]}
        p, req = fake.run(server, "network", "sandbox-fake", "--deny", "none",
                          answer=(200, FAKE_NETWORK))
        assert req[2] == {"deny": []}
        p, req = fake.run(server, "network", "--reset", "sandbox-fake",
                          answer=(200, FAKE_NETWORK))
        assert req == ("PATCH", "/api/v1/sandbox/sandbox-fake/network",
                       {"allow": None, "deny": None})
        # empty lists print as none; --json prints the answer as it came
        empty = dict(FAKE_NETWORK, network_policy={"allow": [], "deny": []})
        p, req = fake.run(server, "network", "sandbox-fake", "--allow", "none",
                          answer=(200, empty))
        assert "allow: none\ndeny: none\n" in ok(p)
        p, req = fake.run(server, "network", "sandbox-fake", "--json", answer=(200, empty))
        assert json.loads(ok(p)) == empty
        # an error answer is reported as any other
        p, req = fake.run(server, "network", "sandbox-fake", "--allow", ":443",
                          answer=(409, {"error": {"code": "conflict",
                                                  "message": "the sandbox is not running"}}))
        assert p.returncode == 1 and p.stdout == b""
        assert p.stderr == b"warren: the sandbox is not running (conflict, HTTP 409)\n"


def test_network_against_a_daemon_without_egress(server, sandbox):
        """The shared test daemon offers no egress (NETWORK_EGRESS=false): a create asking
        for it is refused before anything is made; a network-none sandbox shows as such and
        refuses a policy."""
        before = {s["sandbox_id"] for s in
                  json.loads(ok(cli(server, "ls", "--all", "--json")))["sandboxes"]}
        p = cli(server, "create", "--network", "egress", "--allow", ":443/tcp")
        assert p.returncode == 1 and p.stdout == b"", p
        assert b"network" in p.stderr and b"(invalid_request, HTTP 400)" in p.stderr, p.stderr
        after = {s["sandbox_id"] for s in
                 json.loads(ok(cli(server, "ls", "--all", "--json")))["sandboxes"]}
        assert after == before
        assert ok(cli(server, "network", sandbox)) == f"sandbox_id: {sandbox}\nnetwork: none\n"
        assert json.loads(ok(cli(server, "network", sandbox, "--json"))) == \
                {"sandbox_id": sandbox, "network": "none"}
        p = cli(server, "network", sandbox, "--allow", ":443/tcp")
        assert p.returncode == 1 and b"(conflict, HTTP 409)" in p.stderr, p.stderr
        p = cli(server, "network", "sandbox-000000000000")
        assert p.returncode == 1 and b"HTTP 404" in p.stderr, p.stderr
