"""Stop and delete answer at once and tear down in the background (TEARDOWN_CONCURRENCY at a
time, visible in GET /api/v1/pool "teardown"): after DELETE answers, the sandbox is gone from
the API at once and from the host (processes, cgroups, loop device, data and run dirs, mounts)
within a bounded time; after stop answers, the sandbox is stopped at once and its processes
go. A kill -9 right after the answers leaves nothing behind once the daemon is back."""
import concurrent.futures
import os
import threading
import time

import requests

import warren_harness as wh
from warren_harness import assert_error

GONE_WITHIN = 10  # seconds for the background teardown of one sandbox


def busy_sandbox(srv, **fields):
        """A sandbox with a file, a process left running and its loop device attached:
        (id, (init pid, start time))."""
        fields.setdefault("disk", "64Mi")
        fields.setdefault("memory", "128Mi")
        sid = srv.create(**fields)
        srv.write_file(sid, "/workspace/data", b"x" * 4096)
        wh.start_background_sleep(srv, sid)
        init = wh.sandbox_init_pid(sid)
        assert init, f"{sid}: no warren-init on the host"
        assert any(f"/{sid}/" in f for f in wh.loop_backing_files().values()), \
                f"{sid}: no loop device backs its disk (the leak checks would prove nothing)"
        assert wh.sandbox_cgroup_dirs_v1v2(sid), f"{sid}: no cgroup"
        return sid, init


def assert_gone_from_api(srv, sid, key=None):
        base = f"/api/v1/sandbox/{sid}"
        for r in (srv.get(base, key=key), srv.get(base + "/status", key=key),
                  srv.exec_raw(sid, "true", as_key=key),
                  srv.get(base + "/files", key=key, params={"path": "/workspace/data"}),
                  srv.post(base + "/stop", key=key), srv.delete_path(base, key=key)):
                assert_error(r, 404, "not_found")
        lst = srv.get("/api/v1/sandboxes", key=key, params={"limit": 1000}).json()
        assert sid not in {s["sandbox_id"] for s in lst["sandboxes"]}, f"{sid} still listed"


def watch_teardown(srv, stop_event, out):
        """Poll GET /api/v1/pool until stop_event; out gets the max running and max
        queued + running seen."""
        out.update(max_running=0, max_pending=0, polls=0)
        while not stop_event.is_set():
                try:
                        r = srv.get("/api/v1/pool", timeout=10)
                except requests.RequestException:
                        continue
                if r.status_code != 200:
                        out["error"] = f"{r.status_code}: {r.text[:200]}"
                        return
                t = r.json()["teardown"]
                out["polls"] += 1
                out["max_running"] = max(out["max_running"], t["running"])
                out["max_pending"] = max(out["max_pending"], t["running"] + t["queued"])
                time.sleep(0.002)


def wait_teardown_idle(srv):
        def idle():
                t = srv.pool()["teardown"]
                return t["queued"] == 0 and t["running"] == 0
        wh.wait_until(idle, GONE_WITHIN, 0.05, "GET /api/v1/pool to report no teardown left")


def test_delete_answers_and_everything_goes(server):
        sid, init = busy_sandbox(server)
        r = server.delete(sid)
        assert r.status_code == 200, r.text
        assert r.json() == {"sandbox_id": sid, "deleted": True}, r.text
        assert_gone_from_api(server, sid)
        wh.wait_sandbox_gone(server.data_dir, sid, GONE_WITHIN, init)


def test_stop_answers_and_the_processes_go(server):
        sid, init = busy_sandbox(server)
        r = server.post(f"/api/v1/sandbox/{sid}/stop")
        assert r.status_code == 200, r.text
        assert r.json() == {"sandbox_id": sid, "status": "stopped"}, r.text
        assert server.status(sid) == "stopped"
        info = server.info(sid)
        assert info["status"] == "stopped" and "stopped_at" in info, info
        assert_error(server.exec_raw(sid, "true"), 409, "conflict")
        assert_error(server.get(f"/api/v1/sandbox/{sid}/files",
                                params={"path": "/workspace/data"}), 409, "conflict")
        wh.wait_processes_gone(sid, GONE_WITHIN, init)
        # a stopped sandbox keeps its disk, and holds no loop device
        wh.wait_until(lambda: not any(f"/{sid}/" in f for f in wh.loop_backing_files().values()),
                      GONE_WITHIN, 0.05, f"{sid}: its loop device to be detached after stop")
        assert os.path.exists(os.path.join(server.data_dir, "sandboxes", sid, "disk.img"))
        assert server.status(sid) == "stopped"
        assert server.delete(sid).status_code == 200
        assert_gone_from_api(server, sid)
        wh.wait_sandbox_gone(server.data_dir, sid, GONE_WITHIN, init)


def test_delete_right_after_stop(server):
        sid, init = busy_sandbox(server)
        assert server.post(f"/api/v1/sandbox/{sid}/stop").status_code == 200
        r = server.delete(sid)
        assert r.status_code == 200, r.text
        assert_gone_from_api(server, sid)
        wh.wait_sandbox_gone(server.data_dir, sid, GONE_WITHIN, init)


def test_delete_during_an_exec_ends_the_exec(server):
        sid, init = busy_sandbox(server)
        res = {}

        def run():
                try:
                        res["r"] = server.exec_raw(sid, "sleep 60", timeout=120000, http_timeout=30)
                except requests.RequestException as e:
                        res["e"] = e
        t = threading.Thread(target=run)
        t.start()
        # busy_sandbox left one sleep running; the exec's is the second
        wh.wait_until(lambda: [wh.proc_comm(p) for p in wh.sandbox_host_pids(sid)].count("sleep")
                      >= 2, 10, 0.02, "the exec's sleep to run")
        assert server.delete(sid).status_code == 200
        t.join(20)
        assert not t.is_alive(), "the exec did not answer within 20 s of the delete"
        assert "r" in res, f"the exec failed: {res.get('e')!r}"
        assert_error(res["r"], 409, "conflict")
        wh.wait_sandbox_gone(server.data_dir, sid, GONE_WITHIN, init)


def test_twenty_deletes_at_once(server):
        n = 20
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
                made = list(ex.map(lambda _: busy_sandbox(server), range(n)))
        ids = [sid for sid, _ in made]
        stop, seen = threading.Event(), {}
        watcher = threading.Thread(target=watch_teardown, args=(server, stop, seen))
        watcher.start()
        try:
                with concurrent.futures.ThreadPoolExecutor(n) as ex:
                        rs = list(ex.map(lambda s: server.delete(s), ids))
        finally:
                time.sleep(0.2)
                stop.set()
                watcher.join(30)
        for sid, r in zip(ids, rs):
                assert r.status_code == 200, f"DELETE {sid} -> {r.status_code}: {r.text[:300]}"
        for sid in ids:
                assert_error(server.get(f"/api/v1/sandbox/{sid}"), 404, "not_found")
        deadline = time.monotonic() + 3 * GONE_WITHIN
        for sid, init in made:
                wh.wait_sandbox_gone(server.data_dir, sid, max(0.1, deadline - time.monotonic()),
                                     init)
        assert "error" not in seen, seen
        assert seen["max_running"] <= 2, f"more teardowns at once than TEARDOWN_CONCURRENCY " \
                                         f"(default 2): {seen}"
        wait_teardown_idle(server)


def test_teardown_concurrency_is_a_limit(daemons):
        srv = daemons.start({"TEARDOWN_CONCURRENCY": "1", "DEFAULT_DISK": "64Mi",
                             "DEFAULT_MEMORY": "128Mi"}, name="teardown-1")
        made = [busy_sandbox(srv) for _ in range(10)]
        stop, seen = threading.Event(), {}
        watcher = threading.Thread(target=watch_teardown, args=(srv, stop, seen))
        watcher.start()
        try:
                with concurrent.futures.ThreadPoolExecutor(10) as ex:
                        rs = list(ex.map(lambda m: srv.delete(m[0]), made))
                assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
                for sid, init in made:
                        wh.wait_sandbox_gone(srv.data_dir, sid, 3 * GONE_WITHIN, init)
        finally:
                stop.set()
                watcher.join(30)
        assert "error" not in seen, seen
        assert seen["max_running"] <= 1, f"TEARDOWN_CONCURRENCY=1, yet: {seen}"
        # ten teardowns one at a time after every DELETE answered: they were seen waiting
        assert seen["max_pending"] >= 1, f"no teardown was ever seen queued or running: {seen}"
        wait_teardown_idle(srv)
        assert wh.data_dir_ids(srv.data_dir) == set()


def test_kill9_right_after_deletes_finishes_them_on_start(daemons):
        srv = daemons.start({"TEARDOWN_CONCURRENCY": "1", "DEFAULT_DISK": "64Mi",
                             "DEFAULT_MEMORY": "128Mi"}, name="teardown-crash")
        keep, keep_init = busy_sandbox(srv)
        made = [busy_sandbox(srv) for _ in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
                rs = list(ex.map(lambda m: srv.delete(m[0]), made))
        assert all(r.status_code == 200 for r in rs), [r.text for r in rs]

        srv.restart(kill9=True)

        for sid, init in made:
                assert_gone_from_api(srv, sid)
        for sid, init in made:
                wh.wait_sandbox_gone(srv.data_dir, sid, GONE_WITHIN, init)
        assert wh.data_dir_ids(srv.data_dir) == {keep}
        assert srv.status(keep) == "running"
        assert wh.sandbox_init_pid(keep) == keep_init
        assert srv.read_file(keep, "/workspace/data") == b"x" * 4096
        assert srv.sh(keep, "echo fine") == "fine\n"
        wait_teardown_idle(srv)
        assert srv.delete(keep).status_code == 200
        wh.wait_sandbox_gone(srv.data_dir, keep, GONE_WITHIN, keep_init)


def test_kill9_right_after_stops(daemons):
        srv = daemons.start({"TEARDOWN_CONCURRENCY": "1", "DEFAULT_DISK": "64Mi",
                             "DEFAULT_MEMORY": "128Mi"}, name="stop-crash")
        made = [busy_sandbox(srv) for _ in range(4)]
        for sid, _ in made:
                assert srv.post(f"/api/v1/sandbox/{sid}/stop").status_code == 200

        srv.restart(kill9=True)

        for sid, init in made:
                assert srv.status(sid) == "stopped"
                assert_error(srv.exec_raw(sid, "true"), 409, "conflict")
        for sid, init in made:
                wh.wait_processes_gone(sid, GONE_WITHIN, init)
                assert os.path.exists(os.path.join(srv.data_dir, "sandboxes", sid, "disk.img"))
        for sid, init in made:
                assert srv.delete(sid).status_code == 200
        for sid, init in made:
                wh.wait_sandbox_gone(srv.data_dir, sid, GONE_WITHIN, init)
