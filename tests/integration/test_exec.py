"""POST /api/v1/sandbox/:id/execute against a real sandbox, and the sandbox time limit."""
import concurrent.futures
import secrets
import time

import pytest

import warren_harness as wh
from warren_harness import MiB, assert_error


def test_string_command_runs_through_sh(server, sandbox):
        res = server.exec(sandbox, "echo $((6*7)) | tr 4 X; echo two")
        assert res == {**res, "exit_code": 0, "stdout": "X2\ntwo\n", "stderr": "",
                       "truncated": False, "timed_out": False}
        assert isinstance(res["duration_ms"], (int, float)) and res["duration_ms"] >= 0


def test_argv_array_is_not_shell_expanded(server, sandbox):
        res = server.exec(sandbox, ["printf", "%s|", "a b", "$HOME", "*", "'q'", ";id"])
        assert res["exit_code"] == 0
        assert res["stdout"] == "a b|$HOME|*|'q'|;id|"


def test_exit_codes_and_stderr(server, sandbox):
        res = server.exec(sandbox, "echo out; echo err >&2; exit 3")
        assert (res["exit_code"], res["stdout"], res["stderr"]) == (3, "out\n", "err\n")
        assert server.exec(sandbox, "false")["exit_code"] == 1
        assert server.exec(sandbox, ["sh", "-c", "exit 255"])["exit_code"] == 255


def test_command_not_found_is_127(server, sandbox):
        res = server.exec(sandbox, ["/nonexistent/program", "x"])
        assert res["exit_code"] == 127
        assert res["stderr"].strip(), "the reason should be in stderr"
        res = server.exec(sandbox, "no-such-command-xyz")
        assert res["exit_code"] == 127


def test_env_and_working_dir(server):
        sid = server.create(env={"SBX_VAR": "from-sandbox", "OVERRIDE": "sandbox"}, disk="64Mi")
        tricky = "a b'c\"\n$d;`e`"
        res = server.exec(sid, 'printf "%s|%s|%s|%s|%s" "$SBX_VAR" "$EXEC_VAR" "$OVERRIDE" '
                          '"$TRICKY" "$(pwd)"',
                          env={"EXEC_VAR": "from-exec", "OVERRIDE": "exec", "TRICKY": tricky},
                          working_dir="/tmp")
        assert res["exit_code"] == 0, res
        assert res["stdout"] == f"from-sandbox|from-exec|exec|{tricky}|/tmp"
        # exec env applies to that command only
        assert server.sh(sid, 'printf "%s|%s" "${EXEC_VAR-unset}" "$OVERRIDE"') == \
                "unset|sandbox"
        # the default working directory
        assert server.sh(sid, "pwd") == "/workspace\n"
        assert server.sh(sid, ["pwd"], working_dir="/usr/bin") == "/usr/bin\n"
        server.delete(sid)


def test_user_default_and_root(server, sandbox):
        assert server.sh(sandbox, "id -u; id -g") == "1001\n1001\n"
        assert server.sh(sandbox, "id -u", user="user") == "1001\n"
        assert server.sh(sandbox, "id -u; id -g", user="root") == "0\n0\n"
        # the sandbox user can write its own places, not root's
        assert server.sh(sandbox, "touch /workspace/u && stat -c %u /workspace/u") == "1001\n"
        assert server.exec(sandbox, "touch /root/x")["exit_code"] != 0
        assert server.exec(sandbox, "touch /root/x", user="root")["exit_code"] == 0
        assert server.sh(sandbox, "echo $HOME") in ("/home/user\n",)


def test_stdin_is_empty(server, sandbox):
        t0 = time.monotonic()
        res = server.exec(sandbox, "cat; echo done", timeout=10000)
        assert res["exit_code"] == 0 and res["stdout"] == "done\n" and not res["timed_out"]
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("user", ["user", "root"])
def test_exec_validation(server, sandbox, user):
        path = f"/api/v1/sandbox/{sandbox}/execute"
        cases = [({}, "command"),
                 ({"command": ""}, "command"),
                 ({"command": []}, "command"),
                 ({"command": 42}, "command"),
                 ({"command": ["echo", 1]}, "command"),
                 ({"command": "true", "user": "admin"}, "user"),
                 ({"command": "true", "timeout": -1}, "timeout"),
                 ({"command": "true", "timeout": "soon"}, "timeout"),
                 ({"command": "true", "working_dir": "tmp"}, "working_dir"),
                 ({"command": "true", "env": ["A=1"]}, "env"),
                 ({"command": "true", "env": {"A": 1}}, "env")]
        for body, field in cases:
                body = dict(body)
                if "user" not in body:
                        body["user"] = user
                r = server.post(path, json=body)
                assert_error(r, 400, ("invalid_request", "invalid_json"), mentions=field)
        assert_error(server.post(path, data=b"{nope", headers={"Content-Type":
                                                                "application/json"}),
                     400, ("invalid_json", "invalid_request"))


def test_exec_unknown_sandbox(server):
        assert_error(server.exec_raw("sandbox-000000000000", "true"), 404, "not_found")


def test_output_cap(server, sandbox):
        res = server.exec(sandbox, "head -c 3000000 /dev/zero | tr '\\0' a; "
                          "head -c 3000000 /dev/zero | tr '\\0' b >&2; echo end >&2",
                          timeout=60000)
        assert res["exit_code"] == 0, "the writer must not be blocked or killed by the cap"
        assert res["truncated"] is True
        assert len(res["stdout"]) == 1 * MiB and set(res["stdout"]) == {"a"}
        assert len(res["stderr"]) == 1 * MiB and set(res["stderr"]) == {"b"}
        small = server.exec(sandbox, "head -c 1048576 /dev/zero | tr '\\0' c")
        assert len(small["stdout"]) == MiB and small["truncated"] is False


def test_output_flood_with_timeout(server, sandbox):
        t0 = time.monotonic()
        res = server.exec(sandbox, "yes", timeout=2000)
        assert res["timed_out"] is True and res["exit_code"] == 124
        assert res["truncated"] is True
        assert len(res["stdout"]) == MiB and res["stdout"].startswith("y\ny\n")
        assert time.monotonic() - t0 < 2 + 3
        assert server.get("/health", auth=False).status_code == 200


def test_binary_and_utf8_output(server, sandbox):
        res = server.exec(sandbox, "printf 'ok\\377\\376end\\n'")
        assert res["stdout"] == "ok\ufffd\ufffdend\n"
        res = server.exec(sandbox, "printf 'h\\303\\251llo \\342\\234\\223\\n'")
        assert res["stdout"] == "h\u00e9llo \u2713\n"
        res = server.exec(sandbox, "printf 'a\\000b'")
        assert res["stdout"] == "a\x00b"
        # multi-byte characters split across the daemon's read chunks stay intact
        n = 300000
        res = server.exec(sandbox, ["python3", "-c",
                                    f"import sys; sys.stdout.buffer.write('\u00e9'.encode() * {n})"])
        assert res["exit_code"] == 0, res["stderr"]
        assert res["stdout"] == "\u00e9" * n
        # random bytes: never an invalid JSON answer, one U+FFFD at most per bad byte
        res = server.exec(sandbox, "head -c 100000 /dev/urandom")
        assert res["exit_code"] == 0 and 0 < len(res["stdout"]) <= 100000


def test_command_timeout_kills_every_descendant(server, sandbox):
        cmd = "sh -c 'setsid sh -c \"sleep 1000 & sleep 1000\" & sleep 1000'"
        t0 = time.monotonic()
        res = server.exec(sandbox, cmd, timeout=1000)
        took = time.monotonic() - t0
        assert res["exit_code"] == 124 and res["timed_out"] is True, res
        assert took < 1 + 2, f"the answer came {took:.2f}s after the start (limit 1 s)"

        def no_sleep_inside():
                return "sleep" not in wh.inside_pids(server, sandbox).values()
        # "gone within limit + 1 s": allow the time already spent plus the remainder
        wh.wait_until(no_sleep_inside, max(0.2, 2.5 - took), 0.1,
                      "every sleep (setsid and double-forked too) to be killed")
        host_sleeps = [p for p in wh.sandbox_host_pids(sandbox) if wh.proc_comm(p) == "sleep"]
        assert not host_sleeps
        # the sandbox still works
        assert server.sh(sandbox, "echo still-here") == "still-here\n"


def test_background_process_does_not_hold_the_answer(server, sandbox):
        """A command that leaves a daemonised child holding stdout ends at its deadline
        at the latest; the whole tree goes."""
        t0 = time.monotonic()
        res = server.exec(sandbox, "(sleep 30 &) ; echo started", timeout=3000)
        assert time.monotonic() - t0 < 3 + 2
        assert res["stdout"].startswith("started")
        left = t0 + 3 + 1.5 - time.monotonic()
        wh.wait_until(lambda: "sleep" not in wh.inside_pids(server, sandbox).values(),
                      max(left, 0.2), 0.1, "the background sleep to be gone by the deadline")


def test_parallel_execs_in_ten_sandboxes(server):
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
                ids = list(pool.map(lambda _: server.create(disk="64Mi", memory="128Mi"),
                                    range(10)))
        try:
                assert len(set(ids)) == 10

                def work(i):
                        sid = ids[i]
                        outs = []
                        for j in range(5):
                                tok = secrets.token_hex(6)
                                res = server.exec(sid, f"echo {tok} $(hostname); "
                                                  f"echo {i}-{j} >> /workspace/log; sleep 0.1")
                                outs.append((res, tok))
                        log = server.sh(sid, "cat /workspace/log")
                        return sid, outs, log
                with concurrent.futures.ThreadPoolExecutor(20) as pool:
                        futs = [pool.submit(work, i) for i in range(10)] + \
                               [pool.submit(work, i) for i in range(10)]
                        results = [f.result(timeout=120) for f in futs]
                for sid, outs, log in results:
                        for res, tok in outs:
                                assert res["exit_code"] == 0
                                assert res["stdout"] == f"{tok} {sid}\n"
                for i, sid in enumerate(ids):
                        lines = server.sh(sid, "cat /workspace/log").split()
                        assert sorted(lines) == sorted([f"{i}-{j}" for j in range(5)] * 2)
        finally:
                for sid in ids:
                        server.delete(sid)


def test_sandbox_timeout_stops_it_and_kills_everything(server):
        """timeout_seconds=2 (WARREN_MIN_TIMEOUT=1 lets us): stopped within 2 + 1.5 s, with
        no process of it left on the host."""
        t0 = time.monotonic()
        r = server.create_raw(timeout_seconds=2, disk="64Mi")
        assert r.status_code == 201, r.text
        sid = r.json()["sandbox_id"]
        assert r.json()["timeout_seconds"] == 2
        # leave something running that would outlive a careless stop
        server.exec(sid, "setsid sh -c 'sleep 1000 >/dev/null 2>&1 &' </dev/null >/dev/null 2>&1; "
                    "true", timeout=500)
        deadline = t0 + 2 + 1.5
        seen = {}

        def stopped():
                info = server.info(sid)
                if info["status"] == "stopped":
                        seen.update(info)
                        return True
                return False
        wh.wait_until(stopped, deadline - time.monotonic(), 0.02,
                      "the sandbox to stop at its timeout")
        # whenever the API says stopped, the record says when
        assert "stopped_at" in seen, f"status stopped without stopped_at: {seen}"
        wh.wait_until(lambda: not wh.sandbox_host_pids(sid),
                      max(0.1, deadline - time.monotonic()), 0.05,
                      "every process of the expired sandbox to be gone by timeout + 1.5 s")
        assert_error(server.exec_raw(sid, "true"), 409, "conflict")
        server.delete(sid)


def test_client_disconnect_kills_the_command(server, sandbox):
        """If the client goes away, the command (and its tree) is killed."""
        import requests
        t0 = time.monotonic()
        try:
                server.exec_raw(sandbox, "sleep 30; echo late > /workspace/late", timeout=60000,
                                http_timeout=1)
                raise AssertionError("the exec answered before the client timeout")
        except requests.exceptions.ReadTimeout:
                pass
        wh.wait_until(lambda: "sleep" not in wh.inside_pids(server, sandbox).values(), 3, 0.1,
                      "the command of a disconnected client to be killed")
        assert time.monotonic() - t0 < 6
        assert server.exec(sandbox, "test -e /workspace/late")["exit_code"] == 1
