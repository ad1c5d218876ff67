"""The `warren` CLI against a real warrend: every verb, exit statuses, stdout/stderr
separation, streamed copies checked by checksum, and its error and usage paths."""
import hashlib
import json
import os
import re
import subprocess

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
                     "mkdir", "rm-file", "mv", "stat", "stop", "rm", "template", "health"):
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
        ["--max-time", "never", "health"],
        ["--url", "ftp://127.0.0.1/", "health"],
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
