"""The daemon restarts (kill -9 and clean) while sandboxes run: they are re-adopted, not lost,
not duplicated; one that expired while the daemon was down is stopped at start."""
import concurrent.futures
import time

import requests

import warren_harness as wh
from warren_harness import assert_error


def test_sandboxes_survive_kill9(server):
        sid = server.create(disk="64Mi", env={"KEEP": "me"})
        stopped = server.create(disk="64Mi")
        server.stop_sandbox(stopped)
        gone = server.create(disk="64Mi")
        server.delete(gone)
        server.write_file(sid, "/workspace/before.txt", b"written before the crash")
        server.sh(sid, "echo inside > /tmp/inside.txt")
        init = wh.sandbox_init_pid(sid)
        assert init, "no warren-init found on the host"
        info_before = server.info(sid)

        server.restart(kill9=True)

        assert server.status(sid) == "running"
        info = server.info(sid)
        for k in ("org_id", "created_at", "expires_at", "cpus", "memory", "disk", "template",
                  "timeout_seconds"):
                assert info[k] == info_before[k], k
        assert server.sh(sid, 'echo "$KEEP"; cat /tmp/inside.txt') == "me\ninside\n"
        assert server.read_file(sid, "/workspace/before.txt") == b"written before the crash"
        assert wh.sandbox_init_pid(sid) == init, "the same warren-init must be re-adopted"
        inits = [p for p in wh.sandbox_host_pids(sid) if wh.proc_comm(p) == "warren-init"]
        assert len(inits) == 1, f"one warren-init expected, found {inits}"
        assert server.status(stopped) == "stopped"
        assert_error(server.get(f"/api/v1/sandbox/{gone}"), 404, "not_found")
        # the restarted daemon works as before
        new = server.create(disk="64Mi")
        assert server.sh(new, "echo new") == "new\n"
        server.write_file(sid, "/workspace/after.txt", b"after")
        assert server.sh(sid, "cat /workspace/after.txt") == "after"
        for s in (sid, stopped, new):
                assert server.delete(s).status_code == 200
        wh.wait_until(lambda: not wh.sandbox_host_pids(sid), 10, what="processes gone on delete")


def test_sandboxes_survive_clean_restart(server):
        sid = server.create(disk="64Mi")
        init = wh.sandbox_init_pid(sid)
        server.restart(kill9=False)
        assert server.status(sid) == "running"
        assert wh.sandbox_init_pid(sid) == init
        assert server.sh(sid, "hostname") == f"{sid}\n"
        server.delete(sid)


def test_expired_while_down_is_stopped_at_start(server):
        r = server.create_raw(timeout_seconds=3, disk="64Mi")
        assert r.status_code == 201, r.text
        sid = r.json()["sandbox_id"]
        keep = server.create(disk="64Mi")
        assert wh.sandbox_host_pids(sid)
        server.restart(kill9=True, down_seconds=3.5)
        t0 = time.monotonic()
        wh.wait_until(lambda: server.status(sid) == "stopped", 1.5, 0.05,
                      "the sandbox that expired while the daemon was down to be stopped")
        wh.wait_until(lambda: not wh.sandbox_host_pids(sid), max(0.2, 1.5 - (time.monotonic() - t0)),
                      0.05, "its processes to be gone")
        assert_error(server.exec_raw(sid, "true"), 409, "conflict")
        # a sandbox that has not expired is untouched
        assert server.status(keep) == "running"
        assert server.sh(keep, "echo ok") == "ok\n"
        server.delete(sid)
        server.delete(keep)


def test_kill9_during_concurrent_execs(server):
        ids = [server.create(disk="64Mi", memory="128Mi") for _ in range(5)]
        for sid in ids:
                server.write_file(sid, "/workspace/mark", sid.encode())

        def run(i):
                sid = ids[i % len(ids)]
                try:
                        return server.exec(sid, f"sleep 1; echo {i}", timeout=20000,
                                           http_timeout=20)
                except (requests.RequestException, AssertionError) as e:
                        return e
        with concurrent.futures.ThreadPoolExecutor(100) as pool:
                futs = [pool.submit(run, i) for i in range(100)]
                time.sleep(0.5)
                server.restart(kill9=True)
                results = [f.result(timeout=60) for f in futs]
        # answers that did arrive before the crash are correct
        for i, res in enumerate(results):
                if isinstance(res, dict):
                        assert res["exit_code"] == 0 and res["stdout"] == f"{i}\n", res
        # no sandbox lost, store intact, every sandbox still works
        lst = server.get("/api/v1/sandboxes", params={"limit": 1000}).json()
        listed = {s["sandbox_id"]: s["status"] for s in lst["sandboxes"]}
        for sid in ids:
                assert listed.get(sid) == "running"
                assert server.read_file(sid, "/workspace/mark") == sid.encode()
                assert server.sh(sid, "echo fine") == "fine\n"
                inits = [p for p in wh.sandbox_host_pids(sid) if wh.proc_comm(p) == "warren-init"]
                assert len(inits) == 1
        for sid in ids:
                assert server.delete(sid).status_code == 200
        for sid in ids:
                wh.wait_until(lambda: not wh.sandbox_host_pids(sid) and
                              not wh.sandbox_cgroup_dirs(sid) and
                              not wh.host_mounts_mentioning(sid), 10,
                              what=f"{sid}: processes, cgroups and mounts gone")
