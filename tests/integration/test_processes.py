"""Background jobs: POST/GET /processes, output replay and long polls, stdin, signals, PTY
resize, limits, restart survival."""
import base64
import os
import threading
import time

import requests

import warren_harness as wh
from warren_harness import assert_error


def start(server, sid, expect=201, **body):
        r = server.post(f"/api/v1/sandbox/{sid}/processes", json=body)
        assert r.status_code == expect, r.text
        return r.json()


def job(server, sid, ref):
        r = server.get(f"/api/v1/sandbox/{sid}/processes/{ref}")
        assert r.status_code == 200, r.text
        return r.json()


def output(server, sid, ref, since=0, **params):
        q = {"since": since, **params}
        r = server.get(f"/api/v1/sandbox/{sid}/processes/{ref}/output", params=q, timeout=150)
        assert r.status_code == 200, r.text
        return r.json()


def wait_state(server, sid, ref, pred=lambda j: j["state"] != "running", timeout=30):
        return wh.wait_until(lambda: (lambda j: j if pred(j) else None)(job(server, sid, ref)),
                             timeout, what=f"job {ref} state")


def read_all(server, sid, ref, since=0):
        """Every byte of a job's log from since until it ends, following next offsets."""
        data = b""
        while True:
                o = output(server, sid, ref, since, wait="true", timeout=20)
                assert o["offset"] == since, o
                chunk = o["data"].encode() if o["encoding"] == "utf8" else base64.b64decode(o["data"])
                data += chunk
                assert o["next"] == since + len(chunk)
                since = o["next"]
                if o["eof"]:
                        return data, o


def test_start_list_get_and_output(server, sandbox):
        j = start(server, sandbox, command="echo hello; echo err >&2; exit 3")
        assert j["id"].startswith("job_") and j["pid"] > 1 and j["pty"] is False
        assert j["command"] == "echo hello; echo err >&2; exit 3"
        done = wait_state(server, sandbox, j["id"])
        assert done["state"] == "exited" and done["exit_code"] == 3 and done["ended_at"]
        data, last = read_all(server, sandbox, j["id"])
        assert sorted(data.split(b"\n")) == sorted(b"hello\nerr\n".split(b"\n"))
        assert last["state"] == "exited" and last["exit_code"] == 3
        # by pid too
        assert job(server, sandbox, str(j["pid"]))["id"] == j["id"]
        lst = server.get(f"/api/v1/sandbox/{sandbox}/processes").json()["processes"]
        assert [x["id"] for x in lst][0] == j["id"]


def test_argv_env_cwd_user(server, sandbox):
        j = start(server, sandbox, command=["sh", "-c", 'echo "$FOO $(pwd) $(id -u)"'],
                  env={"FOO": "bar"}, cwd="/tmp")
        wait_state(server, sandbox, j["id"])
        assert read_all(server, sandbox, j["id"])[0] == b"bar /tmp 1001\n"
        j = start(server, sandbox, command="id -u", user="root")
        wait_state(server, sandbox, j["id"])
        assert read_all(server, sandbox, j["id"])[0] == b"0\n"


def test_long_poll_waits_for_output(server, sandbox):
        j = start(server, sandbox, command="sleep 1; echo late")
        t0 = time.monotonic()
        o = output(server, sandbox, j["id"], 0, wait="true", timeout=20)
        assert o["data"] == "late\n" and o["offset"] == 0 and o["next"] == 5
        assert time.monotonic() - t0 >= 0.5
        # without wait: answers at once with nothing new
        o = output(server, sandbox, j["id"], 5)
        assert o["data"] == "" and o["next"] == 5


def test_long_poll_timeout_returns_empty(server, sandbox):
        j = start(server, sandbox, command="sleep 30")
        o = output(server, sandbox, j["id"], 0, wait="true", timeout=1)
        assert o["data"] == "" and o["eof"] is False and o["state"] == "running"
        r = server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{j['id']}")
        assert r.status_code == 200, r.text
        done = wait_state(server, sandbox, j["id"])
        assert done["state"] == "killed" and done["exit_code"] == 137


def test_replay_from_offsets_exactly_once(server, sandbox):
        j = start(server, sandbox, command="for i in $(seq 1 2000); do echo line$i; done")
        wait_state(server, sandbox, j["id"])
        whole, _ = read_all(server, sandbox, j["id"])
        expect = b"".join(b"line%d\n" % i for i in range(1, 2001))
        assert whole == expect
        # reading in small pieces from arbitrary offsets gives the same bytes
        got, since = b"", 0
        while since < len(expect):
                o = output(server, sandbox, j["id"], since, limit=777)
                got += o["data"].encode()
                since = o["next"]
        assert got == expect
        o = output(server, sandbox, j["id"], 100)
        assert o["data"].encode() == expect[100:100 + len(o["data"])]


def test_binary_output_is_base64(server, sandbox):
        j = start(server, sandbox, command="printf '\\377\\376\\000abc'")
        wait_state(server, sandbox, j["id"])
        o = output(server, sandbox, j["id"])
        assert o["encoding"] == "base64"
        assert base64.b64decode(o["data"]) == b"\xff\xfe\x00abc"


def test_stdin_round_trip(server, sandbox):
        j = start(server, sandbox, command="cat", stdin=True)
        url = f"/api/v1/sandbox/{sandbox}/processes/{j['id']}/stdin"
        r = server.post(url, data=b"raw bytes\n", headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        r = server.post(url, json={"data": base64.b64encode(b"\x00\xffbin\n").decode(),
                                   "encoding": "base64"})
        assert r.status_code == 200, r.text
        r = server.post(url, json={"data": "last\n", "eof": True})
        assert r.status_code == 200, r.text
        done = wait_state(server, sandbox, j["id"])
        assert done["exit_code"] == 0
        assert read_all(server, sandbox, j["id"])[0] == b"raw bytes\n\x00\xffbin\nlast\n"
        # stdin of an ended job, and of a job without stdin
        assert_error(server.post(url, json={"data": "x"}), 409, "conflict")
        j2 = start(server, sandbox, command="sleep 30")
        r = server.post(f"/api/v1/sandbox/{sandbox}/processes/{j2['id']}/stdin", json={"data": "x"})
        assert_error(r, 409, "conflict", mentions="stdin")
        server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{j2['id']}")


def test_signals(server, sandbox):
        j = start(server, sandbox, command="trap 'echo got-term; exit 7' TERM; echo ready; "
                                           "while :; do sleep 0.1; done")
        o = output(server, sandbox, j["id"], 0, wait="true", timeout=20)
        assert o["data"] == "ready\n"
        url = f"/api/v1/sandbox/{sandbox}/processes/{j['id']}/signal"
        assert_error(server.post(url, json={"signal": "NOPE"}), 400, "invalid_request")
        assert_error(server.post(url, json={"signal": 0}), 400, "invalid_request")
        r = server.post(url, json={"signal": "SIGTERM"})
        assert r.status_code == 200, r.text
        done = wait_state(server, sandbox, j["id"])
        assert done["state"] == "exited" and done["exit_code"] == 7
        assert b"got-term" in read_all(server, sandbox, j["id"])[0]
        j = start(server, sandbox, command="sleep 60")
        r = server.post(f"/api/v1/sandbox/{sandbox}/processes/{j['id']}/signal", json={"signal": 9})
        assert r.status_code == 200
        done = wait_state(server, sandbox, j["id"])
        assert done["state"] == "killed" and done["exit_code"] == 137


def test_timeout_state(server, sandbox):
        j = start(server, sandbox, command="sleep 30", timeout=300)
        done = wait_state(server, sandbox, j["id"])
        assert done["state"] == "timed_out" and done["exit_code"] == 124


def test_pty_resize_and_tput(server, sandbox):
        j = start(server, sandbox, command="bash", pty={"cols": 100, "rows": 30})
        assert j["pty"] is True and j["stdin"] is True
        base = f"/api/v1/sandbox/{sandbox}/processes/{j['id']}"
        r = server.post(base + "/stdin", json={"data": "stty size; tput cols\n"})
        assert r.status_code == 200
        wh.wait_until(lambda: "30 100" in output(server, sandbox, j["id"])["data"], 20,
                      what="stty size 30 100")
        r = server.post(base + "/resize", json={"cols": 123, "rows": 45})
        assert r.status_code == 200, r.text
        r = server.post(base + "/stdin", json={"data": "tput cols; tput lines; exit 5\n"})
        done = wait_state(server, sandbox, j["id"])
        assert done["exit_code"] == 5
        text = read_all(server, sandbox, j["id"])[0].decode()
        assert "123\r\n45\r\n" in text, text
        # resize of a non-PTY job
        j2 = start(server, sandbox, command="sleep 30")
        r = server.post(f"/api/v1/sandbox/{sandbox}/processes/{j2['id']}/resize",
                        json={"cols": 10, "rows": 10})
        assert_error(r, 409, "conflict")
        server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{j2['id']}")


def test_terminal_drives_python_interactively(server, sandbox):
        r = server.post(f"/api/v1/sandbox/{sandbox}/terminals",
                        json={"cols": 80, "rows": 24, "shell": ["python3", "-i", "-q"]})
        assert r.status_code == 201, r.text
        j = r.json()
        base = f"/api/v1/sandbox/{sandbox}/processes/{j['id']}"
        wh.wait_until(lambda: ">>> " in output(server, sandbox, j["id"])["data"], 20,
                      what="python prompt")
        server.post(base + "/stdin", json={"data": "6*7\n"})
        wh.wait_until(lambda: "42" in output(server, sandbox, j["id"])["data"], 20, what="42")
        server.post(base + "/stdin", json={"data": "import os; os.environ['TERM']\n"})
        wh.wait_until(lambda: "xterm" in output(server, sandbox, j["id"])["data"], 20, what="TERM")
        server.post(base + "/stdin", json={"data": "exit()\n"})
        done = wait_state(server, sandbox, j["id"])
        assert done["exit_code"] == 0


def test_default_terminal_is_login_bash(server, sandbox):
        r = server.post(f"/api/v1/sandbox/{sandbox}/terminals", json={})
        assert r.status_code == 201, r.text
        j = r.json()
        assert j["command"] == ["bash", "-l"] and j["pty"]
        base = f"/api/v1/sandbox/{sandbox}/processes/{j['id']}"
        server.post(base + "/stdin", json={"data": "echo $0 $TERM; tty; exit\n"})
        wait_state(server, sandbox, j["id"])
        text = read_all(server, sandbox, j["id"])[0].decode()
        assert "xterm-256color" in text and "/dev/pts/" in text, text


def test_command_not_found_fails_like_a_shell(server, sandbox):
        j = start(server, sandbox, command=["/no/such/binary"])
        assert j["state"] == "failed" and j["exit_code"] == 127
        assert "warren:" in output(server, sandbox, j["id"])["data"]


def test_bad_requests(server, sandbox):
        base = f"/api/v1/sandbox/{sandbox}/processes"
        assert_error(server.post(base, json={}), 400, "invalid_request", mentions="command")
        assert_error(server.post(base, json={"command": "x", "pty": "yes"}), 400, "invalid_request")
        assert_error(server.post(base, json={"command": "x", "pty": {"cols": 0}}), 400,
                     "invalid_request")
        assert_error(server.post(base, json={"command": "x", "max_run_after_disconnect": -1}), 400,
                     "invalid_request")
        assert_error(server.post(base, json={"command": "x", "stdin": "yes"}), 400,
                     "invalid_request")
        assert_error(server.get(base + "/job_999999"), 404, "not_found")
        assert_error(server.get(base + "/nonsense"), 404, "not_found")
        assert_error(server.get(base + "/job_999999/output"), 404, "not_found")
        assert_error(server.get(base + "/99999/output"), 404, "not_found")
        j = start(server, sandbox, command="true")
        assert_error(server.get(base + f"/{j['id']}/output", params={"since": "-1"}), 400)
        assert_error(server.get(base + f"/{j['id']}/output", params={"limit": "0"}), 400)
        assert_error(server.get(base + f"/{j['id']}/output", params={"timeout": "9999"}), 400)
        assert_error(server.request("PUT", base + f"/{j['id']}/stdin"), 405)
        assert_error(server.get("/api/v1/sandbox/sb_nope/processes"), 404, "not_found")


def test_other_org_cannot_see_jobs(server, sandbox, other_org):
        j = start(server, sandbox, command="echo secret")
        for path in ("", f"/{j['id']}", f"/{j['id']}/output"):
                r = server.get(f"/api/v1/sandbox/{sandbox}/processes{path}", key=other_org["api_key"])
                assert_error(r, 404, "not_found")


def test_job_limit_429(daemons):
        d = daemons.start(env={"MAX_JOBS_PER_SANDBOX": "2", "MAX_PTYS_PER_SANDBOX": "1",
                               "JOB_HISTORY": "3"})
        sid = d.create(disk="64Mi")
        a = start(d, sid, command="sleep 60")
        start(d, sid, command="sleep 60")
        r = d.post(f"/api/v1/sandbox/{sid}/processes", json={"command": "sleep 60"})
        assert_error(r, 429, "too_many_jobs")
        d.delete_path(f"/api/v1/sandbox/{sid}/processes/{a['id']}")
        wait_state(d, sid, a["id"])
        p = start(d, sid, command="sleep 60", pty=True)
        d.delete_path(f"/api/v1/sandbox/{sid}/processes/{p['id']}")
        wait_state(d, sid, p["id"])
        # history is bounded: the oldest ended jobs go
        for _ in range(3):
                x = start(d, sid, command="true")
                wait_state(d, sid, x["id"])
        lst = d.get(f"/api/v1/sandbox/{sid}/processes").json()["processes"]
        assert len(lst) <= 3 + 1, lst
        assert_error(d.get(f"/api/v1/sandbox/{sid}/processes/{a['id']}"), 404)


def test_pty_limit_429(daemons):
        d = daemons.start(env={"MAX_PTYS_PER_SANDBOX": "1"})
        sid = d.create(disk="64Mi")
        start(d, sid, command="sleep 60", pty=True)
        r = d.post(f"/api/v1/sandbox/{sid}/terminals", json={})
        assert_error(r, 429, "too_many_terminals")


def test_jobs_killed_when_sandbox_stops(server):
        sid = server.create(disk="64Mi")
        j = start(server, sid, command="sleep 300")
        server.stop_sandbox(sid)
        done = wait_state(server, sid, j["id"])
        assert done["state"] == "killed" and "stopped" in done.get("error", "")
        server.delete(sid)


def test_max_run_after_disconnect_kills_unwatched_job(server, sandbox):
        j = start(server, sandbox, command="sleep 300", max_run_after_disconnect=1)
        done = wait_state(server, sandbox, j["id"], timeout=20)
        assert done["state"] == "killed"
        # a job without it runs on
        k = start(server, sandbox, command="sleep 300")
        time.sleep(2)
        assert job(server, sandbox, k["id"])["state"] == "running"
        server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{k['id']}")


def test_jobs_survive_kill9(server):
        sid = server.create(disk="64Mi")
        long = start(server, sid, command="for i in $(seq 1 30); do echo tick$i; sleep 0.1; done;"
                                          " read x; echo got:$x", stdin=True)
        short = start(server, sid, command="sleep 1; echo bye; exit 4")
        o = output(server, sid, long["id"], 0, wait="true", timeout=20)
        assert o["data"].startswith("tick1")
        server.restart(kill9=True, down_seconds=2)
        # the short job ended while the daemon was down: its exit code is known
        done = wait_state(server, sid, short["id"])
        assert done["state"] == "exited" and done["exit_code"] == 4
        assert read_all(server, sid, short["id"])[0] == b"bye\n"
        # the long one still runs, takes stdin, and its log is whole (every tick, once)
        r = server.post(f"/api/v1/sandbox/{sid}/processes/{long['id']}/stdin",
                        json={"data": "after\n"})
        assert r.status_code == 200, r.text
        done = wait_state(server, sid, long["id"])
        assert done["exit_code"] == 0
        text = read_all(server, sid, long["id"])[0].decode()
        assert text == "".join(f"tick{i}\n" for i in range(1, 31)) + "got:after\n"
        server.delete(sid)


def _rss_kib(pid):
        with open(f"/proc/{pid}/status") as f:
                for line in f:
                        if line.startswith("VmRSS:"):
                                return int(line.split()[1])
        raise AssertionError("no VmRSS")


def test_hundred_yes_jobs_keep_daemon_memory_bounded(daemons):
        """100 jobs printing as fast as they can: the daemon holds at most JOB_RING_BYTES per
        job in memory (and JOB_LOG_MAX on disk); its RSS stays within that bound."""
        ring, log_max, n = 256 * 1024, 1024 * 1024, 100
        # (an ASan build keeps freed memory in quarantine: keep that small for the measure)
        d = daemons.start(env={"JOB_RING_BYTES": str(ring), "JOB_LOG_MAX": str(log_max),
                               "MAX_JOBS_PER_SANDBOX": "128",
                               "ASAN_OPTIONS": "detect_leaks=0:quarantine_size_mb=8"})
        sid = d.create(disk="256Mi", cpus="1")
        base = _rss_kib(d.proc.pid)
        jobs = [start(d, sid, command="yes") for _ in range(n)]
        peak = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
                peak = max(peak, _rss_kib(d.proc.pid))
                time.sleep(0.25)
        # every job wrote more than its ring and log hold: the oldest bytes are dropped
        o = output(d, sid, jobs[0]["id"], 0, limit=16)
        assert o["offset"] > 0 and o["dropped"] == o["offset"], o
        logs = os.path.join(d.data_dir, "sandboxes", sid, "jobs")
        sizes = [os.path.getsize(os.path.join(logs, f)) for f in os.listdir(logs)]
        assert max(sizes) <= log_max + 64, max(sizes)
        bound = base + n * ring // 1024 * 2 + 96 * 1024  # rings (x2 for allocator/ASan slack)
        print(f"daemon RSS: base {base} KiB, peak {peak} KiB with {n} yes jobs")
        assert peak < bound, f"daemon RSS {peak} KiB, bound {bound} KiB (base {base})"
        d.delete(sid)


def test_tui_program_renders_and_takes_input(server, sandbox):
        """A full-screen program (top) on a terminal: it draws with escape sequences at the
        terminal's size and quits on a keystroke."""
        r = server.post(f"/api/v1/sandbox/{sandbox}/terminals",
                        json={"cols": 90, "rows": 20, "shell": ["top", "-d", "0.5"]})
        assert r.status_code == 201, r.text
        j = r.json()
        wh.wait_until(lambda: "load average" in output(server, sandbox, j["id"])["data"], 20,
                      what="top's header")
        text = output(server, sandbox, j["id"])["data"]
        assert "\x1b[" in text, "no escape sequences: top did not draw on a terminal"
        server.post(f"/api/v1/sandbox/{sandbox}/processes/{j['id']}/stdin", json={"data": "q"})
        done = wait_state(server, sandbox, j["id"])
        assert done["state"] == "exited" and done["exit_code"] == 0


def test_long_poll_answers_when_the_job_ends_silently(server, sandbox):
        """A long poll waiting on a job that ends without printing is answered with the end
        (and the daemon keeps working: the job's memory goes only after that answer)."""
        j = start(server, sandbox, command="sleep 30")
        got = {}

        def poll():
                got["o"] = output(server, sandbox, j["id"], 0, wait="true", timeout=60)
        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.5)
        r = server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{j['id']}")
        assert r.status_code == 200, r.text
        t.join(30)
        o = got["o"]
        assert o["eof"] is True and o["state"] == "killed" and o["data"] == "", o
        assert server.sh(sandbox, "echo still-fine") == "still-fine\n"


def test_stdin_request_size_limit(server, sandbox):
        j = start(server, sandbox, command="cat > /dev/null", stdin=True)
        url = f"/api/v1/sandbox/{sandbox}/processes/{j['id']}/stdin"
        r = server.post(url, data=b"x" * (1024 * 1024 + 1),
                        headers={"Content-Type": "application/octet-stream"})
        assert_error(r, 413, "too_large")
        r = server.post(url, data=b"x" * (1024 * 1024),
                        headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{j['id']}")
