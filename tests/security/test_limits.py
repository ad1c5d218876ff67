"""Resource attacks from inside a sandbox: fork bomb, memory bomb, disk fill, fd exhaustion,
CPU spin. Each is held at the sandbox's limit while the daemon and a neighbour sandbox keep
answering."""
import concurrent.futures
import json
import os
import time

import pytest
import requests

import warren_harness as wh
from warren_harness import MiB, assert_error, b64


def neighbour_answers(server, neighbour, deadline, errors):
        """Until deadline: /health and an exec in the neighbour must answer within 5 s each."""
        n = 0
        while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                        h = requests.get(server.url + "/health", timeout=5)
                        if h.status_code != 200:
                                errors.append(f"/health -> {h.status_code}")
                        res = server.exec(neighbour, "echo ok", http_timeout=10)
                        if res["stdout"] != "ok\n":
                                errors.append(f"neighbour exec -> {res}")
                except Exception as e:  # noqa: BLE001
                        errors.append(f"{type(e).__name__}: {e}")
                if time.monotonic() - t0 > 5:
                        errors.append(f"a round took {time.monotonic() - t0:.1f}s")
                n += 1
                time.sleep(0.2)
        return n


@pytest.fixture
def neighbour(server):
        sid = server.create(disk="64Mi", memory="128Mi", cpus="500m")
        yield sid
        server.delete(sid)


def test_fork_bomb_is_contained(server, neighbour):
        bomb = server.create(cpus="1", memory="512Mi", disk="64Mi")
        try:
                pids_max_file = wh.sandbox_cgroup_file(bomb, "pids", "pids.max")
                assert pids_max_file, "no pids cgroup for the sandbox"
                pids_max = open(pids_max_file).read().strip()
                assert pids_max.isdigit(), f"pids.max is {pids_max!r}: no pids limit"
                pids_max = int(pids_max)
                peak = [0]
                errors = []
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                        fut = pool.submit(server.exec, bomb,
                                          "sh -c 'bomb() { bomb | bomb & }; bomb' 2>/dev/null; "
                                          "exec sleep 100",
                                          timeout=5000, http_timeout=30)
                        deadline = time.monotonic() + 5
                        cur_file = pids_max_file.replace("pids.max", "pids.current")
                        nb = pool.submit(neighbour_answers, server, neighbour, deadline, errors)
                        while time.monotonic() < deadline:
                                try:
                                        peak[0] = max(peak[0], int(open(cur_file).read()))
                                except (OSError, ValueError):
                                        pass
                                time.sleep(0.1)
                        rounds = nb.result(timeout=30)
                        res = fut.result(timeout=30)
                assert not errors, errors
                assert rounds >= 3
                assert res["timed_out"] is True and res["exit_code"] == 124, res
                assert peak[0] <= pids_max, (peak[0], pids_max)
                problems = []
                if res["duration_ms"] > 5000 + 2000:
                        problems.append(f"the exec ended {res['duration_ms']:.0f} ms after start "
                                        f"(limit 5000 ms)")
                assert peak[0] > 50, f"the bomb never got going ({peak[0]} tasks): test is void"
                # every bomb process is gone soon after the deadline, the sandbox lives on
                left = []

                def bomb_gone():
                        left[:] = [c for c in map(wh.proc_comm, wh.sandbox_host_pids(bomb)) if c]
                        return len(left) <= 2
                try:
                        wh.wait_until(bomb_gone, 5, 0.1, "the fork bomb's processes to be killed")
                except AssertionError as e:
                        problems.append(f"{e}; {len(left)} left: {sorted(set(left))}")
                assert not problems, f"{problems}; exec answer: {res}"
                assert server.sh(bomb, "echo recovered") == "recovered\n"
        finally:
                server.delete(bomb)


def test_memory_bomb_is_killed(server, neighbour):
        sid = server.create(memory="256Mi", disk="64Mi", cpus="1")
        try:
                limit_file = wh.sandbox_cgroup_file(sid, "memory", "memory.limit_in_bytes") or \
                        wh.sandbox_cgroup_file(sid, "memory", "memory.max")
                assert limit_file and open(limit_file).read().strip() == str(256 * MiB)
                code = ("chunks = []\n"
                        "for i in range(48):\n"
                        "    chunks.append(bytearray(b'\\x01') * (64 << 20))\n"
                        "print('ALLOCATED', flush=True)\n")
                errors = []
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                        fut = pool.submit(server.exec, sid, ["python3", "-c", code],
                                          timeout=30000, http_timeout=60)
                        nb = pool.submit(neighbour_answers, server, neighbour,
                                         time.monotonic() + 3, errors)
                        res = fut.result(timeout=60)
                        nb.result(timeout=30)
                assert "ALLOCATED" not in res["stdout"]
                assert res["exit_code"] == 137 or "MemoryError" in res["stderr"], res
                assert not res["timed_out"]
                assert not errors, errors
                peak_file = wh.sandbox_cgroup_file(sid, "memory", "memory.max_usage_in_bytes") or \
                        wh.sandbox_cgroup_file(sid, "memory", "memory.peak")
                if peak_file:
                        assert int(open(peak_file).read()) <= 256 * MiB + 4 * MiB
                # the sandbox and the daemon survive the OOM kill
                assert server.sh(sid, "echo survived") == "survived\n"
                assert server.get("/health", auth=False).status_code == 200
        finally:
                server.delete(sid)


def test_disk_fill_stops_at_the_disk_size(server, neighbour):
        sid = server.create(disk="256Mi")
        try:
                res = server.exec(sid, "dd if=/dev/zero of=/workspace/f bs=1M count=400",
                                  timeout=60000)
                assert res["exit_code"] != 0, res
                assert "No space left on device" in res["stderr"], res["stderr"]
                size = int(server.sh(sid, "stat -c %s /workspace/f"))
                assert 128 * MiB <= size <= 256 * MiB, size
                # the overlay upper layer (/tmp, /etc, ...) shares the same disk
                res = server.exec(sid, "dd if=/dev/zero of=/tmp/g bs=1M count=64", user="root")
                assert res["exit_code"] != 0 and "No space left" in res["stderr"]
                # the files API reports the full disk as 507, and writes nothing partial
                r = server.post(f"/api/v1/sandbox/{sid}/files", json={"files": [
                        {"path": "/workspace/more.bin", "content": b64(b"\0" * (8 * MiB))}]})
                assert_error(r, 507, "insufficient_storage")
                r = server.put(f"/api/v1/sandbox/{sid}/files/upload",
                               params={"path": "/workspace/up.bin"}, data=b"\0" * (8 * MiB))
                assert_error(r, 507, "insufficient_storage")
                assert server.exec(sid, "test -e /workspace/up.bin")["exit_code"] == 1
                # the host and neighbours are fine, and freeing space makes the disk usable
                assert server.sh(neighbour, "echo ok") == "ok\n"
                server.sh(sid, "rm -f /workspace/f /tmp/g", user="root")
                server.write_file(sid, "/workspace/after.bin", b"\0" * MiB)
                # the data directory holds a disk image no larger than asked
                img = f"{server.data_dir}/sandboxes/{sid}/disk.img"
                if os.path.exists(img):
                        assert os.path.getsize(img) <= 256 * MiB
        finally:
                server.delete(sid)


@pytest.mark.parametrize("user", ["user", "root"])
def test_fd_limit(server, sandbox, user):
        code = r"""
import errno, json, os, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
fds, err = [], None
try:
    while len(fds) < 2000000:
        fds.append(os.open('/dev/null', os.O_RDONLY))
except OSError as e:
    err = e.errno
highest = max(fds) if fds else -1
for fd in fds:
    os.close(fd)
raised = True
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))
except (ValueError, OSError):
    raised = False
print(json.dumps({"soft": soft, "hard": hard, "opened": len(fds), "err": err,
                  "highest": highest, "raised": raised}))
"""
        out = json.loads(server.sh(sandbox, ["python3", "-c", code], user=user, timeout=60000))
        assert 0 < out["soft"] <= 1 << 20 and 0 < out["hard"] <= 1 << 20, out
        assert out["err"] == 24, f"expected EMFILE: {out}"
        assert out["highest"] == out["soft"] - 1, out
        assert out["raised"] is False, f"the hard limit could be raised: {out}"
        assert server.get("/health", auth=False).status_code == 200


def test_cpu_spin_is_held_at_the_quota(server):
        sid = server.create(cpus="500m", disk="64Mi", memory="128Mi")
        try:
                code = ("import time\nt0=time.monotonic();c0=time.process_time()\n"
                        "while time.monotonic()-t0 < 3: pass\n"
                        "print((time.process_time()-c0)/(time.monotonic()-t0))\n")
                ratio = float(server.sh(sid, ["python3", "-c", code], timeout=30000))
                assert ratio <= 0.7, f"a spinning process got {ratio:.2f} CPUs with cpus=500m"
                assert ratio >= 0.2, f"implausibly little CPU ({ratio:.2f}): test is void"
        finally:
                server.delete(sid)
