"""bench_create.py - create latency: cold (pool off) against bubblewrap in the same run, warm
(from the pool), time to first output, and a burst of concurrent creates."""
import subprocess
import threading
import time

from wlib import HTTPError, delete_all, now_ms, pool_ready, summary

BWRAP = ["bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib64", "/lib64",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/bin", "/bin", "--proc", "/proc",
         "--dev", "/dev", "true"]


def bwrap_once():
        """Run bubblewrap's `--unshare-all ... true` once; its wall time in ms."""
        t = now_ms()
        subprocess.run(BWRAP, check=True, stdin=subprocess.DEVNULL)
        return now_ms() - t


def cold_vs_bwrap(d, n, body):
        """n cold creates (each deleted right after), interleaved with n bubblewrap runs so
        both see the same machine noise. Returns a dict of sample lists."""
        c = d.client()
        out = {"create": [], "delete": [], "bwrap": [], "server_total": [], "disk": [],
               "cgroup": [], "spawn": [], "pool_hits": 0}
        for _ in range(n):
                t = now_ms()
                r = c.create(**body)
                out["create"].append(now_ms() - t)
                assert r["status"] == "running", r
                m = r.get("startup_metrics", {})
                out["pool_hits"] += bool(m.get("pool_hit"))
                out["server_total"].append(m.get("total_ms", 0.0))
                for k in ("disk", "cgroup", "spawn"):
                        out[k].append(m.get(k + "_ms", 0.0))
                t = now_ms()
                c.delete(r["sandbox_id"])
                out["delete"].append(now_ms() - t)
                out["bwrap"].append(bwrap_once())
        c.close()
        return out


def paced(pace_ms, fn, n, pool_client=None, refill_limit_s=2.0):
        """Call fn(i) n times, starting each call at least pace_ms after the previous start;
        with pool_client, also wait (at most refill_limit_s) until the pool is full again, so
        every call finds a refilled pool. Returns the mean interval between calls in ms."""
        t_first = time.monotonic()
        for i in range(n):
                t = time.monotonic()
                fn(i)
                if pool_client is not None:
                        while time.monotonic() - t < refill_limit_s:
                                r = pool_ready(pool_client)
                                if r is None or r[0] >= r[1]:
                                        break
                                time.sleep(0.005)
                left = pace_ms / 1000.0 - (time.monotonic() - t)
                if left > 0:
                        time.sleep(left)
        return (time.monotonic() - t_first) * 1000.0 / max(1, n)


def warm_creates(d, n, body, pace_ms):
        """n creates on a pool-enabled daemon, paced; deletes each. Returns samples split by
        whether the pool served the create."""
        c = d.client()
        out = {"all": [], "hit": [], "miss": [], "server_total_hit": []}

        def one(_):
                t = now_ms()
                r = c.create(**body)
                ms = now_ms() - t
                hit = bool(r.get("startup_metrics", {}).get("pool_hit"))
                out["all"].append(ms)
                out["hit" if hit else "miss"].append(ms)
                if hit:
                        out["server_total_hit"].append(r["startup_metrics"].get("total_ms", 0))
                c.delete(r["sandbox_id"])

        pc = d.client()
        out["interval_ms"] = paced(pace_ms, one, n, pc)
        pc.close()
        c.close()
        return out


def first_output(d, n, body, command, expect, pace_ms=0, wait_pool=False):
        """Create + exec `command` (one client, keep-alive), n times: total time until the
        output is back, and how many creates the pool served."""
        c = d.client()
        out = {"total": [], "create": [], "exec": [], "hits": 0}

        def one(_):
                t0 = now_ms()
                r = c.create(**body)
                t1 = now_ms()
                e = c.exec(r["sandbox_id"], command)
                t2 = now_ms()
                assert e["exit_code"] == 0 and e["stdout"].startswith(expect), e
                out["total"].append(t2 - t0)
                out["create"].append(t1 - t0)
                out["exec"].append(t2 - t1)
                out["hits"] += bool(r.get("startup_metrics", {}).get("pool_hit"))
                c.delete(r["sandbox_id"])

        pc = d.client() if wait_pool else None
        out["interval_ms"] = paced(pace_ms, one, n, pc)
        if pc:
                pc.close()
        c.close()
        return out


def burst(d, k, body, time_limit=120):
        """k creates fired at once: k threads, each with an open keep-alive connection, released
        by a barrier. Returns individual latencies, the time until the last one was running,
        failures, and pool hits; deletes them all afterwards."""
        clients = [d.client(timeout=time_limit) for _ in range(k)]
        for c in clients:
                c.connect()
        barrier = threading.Barrier(k + 1)
        res = [None] * k
        starts = [0.0] * k

        def worker(i):
                barrier.wait(30)
                starts[i] = now_ms()
                try:
                        r = clients[i].create(**body)
                        res[i] = (now_ms() - starts[i], r["sandbox_id"], r["status"],
                                  bool(r.get("startup_metrics", {}).get("pool_hit")))
                except (HTTPError, OSError) as e:
                        res[i] = (now_ms() - starts[i], None, repr(e), False)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
        for t in ts:
                t.start()
        t0 = now_ms()
        barrier.wait(30)
        for t in ts:
                t.join(time_limit)
        ends = [starts[i] + res[i][0] for i in range(k) if res[i]]
        ok = [r for r in res if r and r[2] == "running"]
        out = {"lat": [r[0] for r in ok], "failed": k - len(ok),
               "errors": sorted({r[2] for r in res if r and r[2] != "running"})[:3],
               "all_running_ms": (max(ends) - t0) if ends else None,
               "hits": sum(1 for r in ok if r[3])}
        for c in clients:
                c.close()
        n, f, s = delete_all(d, [r[1] for r in ok], threads=4)
        out["delete_s"] = s
        return out
