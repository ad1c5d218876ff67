"""bench_density.py - hold many idle sandboxes; host memory per sandbox from kernel counters,
creates per second while filling, API latency at each density, delete throughput.

Memory per sandbox, at each step N (all from kernel counters, never MemAvailable deltas):
  sandbox_cgroup  sum over sandboxes of memory.usage_in_bytes of memory/warren/ID (v1; it
                  includes the kernel memory charged to the group: memory.kmem.usage_in_bytes
                  is reported beside it) / N
  init_pss        sum of warren-init's Pss (/proc/PID/smaps_rollup) / N
  daemon_share    the daemon's Pss / N
  launch_cgroup   growth of the memory cgroup holding warrend and this script since N = 0,
                  minus this script's own Pss growth, / N: what the daemon's side of a create
                  leaves charged there (kernel objects made by clone() before the child moves
                  into its cgroup: namespaces; mke2fs's page cache of the disk image; daemon
                  heap). Only meaningful when that cgroup holds nothing else (checked).
  total_brief     = sandbox_cgroup + init_pss + daemon_share
  total_kernel    = sandbox_cgroup + launch_cgroup
  uncharged       growth of the global Slab + Percpu + VmallocUsed counters since N = 0, minus
                  the kmem charged to the cgroups above, / N: kernel memory charged to no
                  cgroup (loop devices, per-memcg and per-superblock structures allocated in
                  other contexts). An estimate: other tenants of the machine move the global
                  counters too; the MemAvailable drop / N is reported beside it as a check.
                  The caches that grew most (/proc/slabinfo) are kept in the JSON report.
  total_with_uncharged = total_kernel + uncharged
"""
import os
import random
import re
import threading
import time

from wlib import (GiB, HTTPError, MiB, cgroup_memory, delete_all, init_pid, loop_devices_with,
                  meminfo, now_ms, own_memory_cgroup, read, smaps_rollup, summary, wait_teardown)

GLOBAL_FIELDS = ("Slab", "SUnreclaim", "KernelStack", "PageTables", "Percpu", "VmallocUsed")


def slabinfo():
        """{cache: bytes} from /proc/slabinfo (num_objs * objsize)."""
        out = {}
        for line in (read("/proc/slabinfo") or "").splitlines()[2:]:
                f = line.split()
                if len(f) > 4:
                        out[f[0]] = int(f[2]) * int(f[3])
        return out


def global_counters():
        return {f: meminfo(f) for f in GLOBAL_FIELDS + ("MemAvailable", )}


def loop_kthreads():
        """Number of kernel threads whose name mentions loop (per-device workqueue rescuers)."""
        n = 0
        for p in os.listdir("/proc"):
                if p.isdigit():
                        c = read(f"/proc/{p}/comm") or ""
                        if "loop" in c:
                                n += 1
        return n


def snapshot(d):
        """Counters with no sandboxes yet (N = 0)."""
        return {"daemon": smaps_rollup(d.pid()), "self": smaps_rollup(os.getpid()),
                "cg": own_memory_cgroup(), "global": global_counters(), "slab": slabinfo(),
                "loop_kthreads": loop_kthreads()}


def measure(d, sids, base, samples):
        """Memory per sandbox and API latency at the current density."""
        n = len(sids)
        cg = {"usage": 0, "kmem": 0, "rss": 0, "cache": 0}
        pss = {"Pss": 0, "Pss_Anon": 0, "Pss_File": 0, "Rss": 0}
        missing = 0
        for sid in sids:
                m = cgroup_memory(sid)
                p = init_pid(sid)
                if m is None or p is None:
                        missing += 1
                        continue
                for k in cg:
                        cg[k] += m[k]
                sm = smaps_rollup(p)
                for k in pss:
                        pss[k] += sm.get(k, 0)
        dm = smaps_rollup(d.pid())
        me = smaps_rollup(os.getpid())
        own = own_memory_cgroup()
        glob_now = global_counters()
        ours = {d.pid(), os.getpid()}
        out = {"n": n, "missing": missing,
               "sandbox_cgroup": cg["usage"] / n, "sandbox_kmem": cg["kmem"] / n,
               "sandbox_anon": cg["rss"] / n, "sandbox_cache": cg["cache"] / n,
               "init_pss": pss["Pss"] / n, "init_pss_anon": pss["Pss_Anon"] / n,
               "init_pss_file": pss["Pss_File"] / n, "init_rss": pss["Rss"] / n,
               "daemon_pss": dm.get("Pss", 0), "daemon_rss": dm.get("Rss", 0),
               "daemon_share": dm.get("Pss", 0) / n,
               "daemon_growth": (dm.get("Pss", 0) - base["daemon"].get("Pss", 0)) / n,
               "loop_devices": len(loop_devices_with(d.data)),
               "loop_kthreads": loop_kthreads() - base["loop_kthreads"],
               "global_growth": {f: (glob_now[f] - base["global"][f]) / n
                                 for f in GLOBAL_FIELDS},
               "mem_available": glob_now["MemAvailable"],
               "mem_available_drop": (base["global"]["MemAvailable"] - glob_now["MemAvailable"]) / n}
        sl = slabinfo()
        grow = sorted(((sl.get(k, 0) - base["slab"].get(k, 0), k) for k in sl), reverse=True)
        out["slab_top_growth"] = {k: v / n for v, k in grow[:10]}
        if own and base["cg"]:
                # The cgroup holds warrend, this script and mke2fs while it runs; anything else
                # makes the figure meaningless.
                others = [p for p in own["procs"] if p not in ours and
                          not (read(f"/proc/{p}/comm") or "").startswith(("mke2fs", "sudo",
                                                                          "run.sh", "bash"))]
                self_growth = me.get("Pss", 0) - base["self"].get("Pss", 0)
                out["launch_cgroup"] = (own["usage"] - base["cg"]["usage"] - self_growth) / n
                out["launch_kmem"] = (own["kmem"] - base["cg"]["kmem"]) / n
                out["launch_cache"] = (own["cache"] - base["cg"]["cache"]) / n
                out["launch_cgroup_path"] = own["path"]
                out["launch_cgroup_other_procs"] = sorted(
                        (read(f"/proc/{p}/comm") or "?").strip() for p in others)
        out["total_brief"] = out["sandbox_cgroup"] + out["init_pss"] + out["daemon_share"]
        if "launch_cgroup" in out:
                out["total_kernel"] = out["sandbox_cgroup"] + out["launch_cgroup"]
                # Kernel memory charged to no cgroup: growth of the global slab, percpu and
                # vmalloc counters beyond what the cgroups above were charged as kmem (an
                # estimate: other tenants of the machine move the global counters too).
                g = out["global_growth"]
                out["uncharged_kernel"] = max(0.0, g["Slab"] + g["Percpu"] + g["VmallocUsed"] -
                                              out["sandbox_kmem"] - out["launch_kmem"])
                out["total_with_uncharged"] = out["total_kernel"] + out["uncharged_kernel"]
        # mounts: the host's table must not grow; count one sandbox's own table
        out["host_mounts"] = len((read("/proc/self/mountinfo") or "").splitlines())
        p = init_pid(sids[0])
        out["mounts_in_sandbox"] = len((read(f"/proc/{p}/mountinfo") or "").splitlines()) \
                if p else None
        # API latency at this density
        c = d.client()
        rnd = random.Random(n)
        lat = {"health": [], "get": [], "exec": []}
        for _ in range(samples):
                t = now_ms()
                c.health()
                lat["health"].append(now_ms() - t)
        for _ in range(samples):
                sid = rnd.choice(sids)
                t = now_ms()
                c.json("GET", "/api/v1/sandbox/" + sid)
                lat["get"].append(now_ms() - t)
        for _ in range(samples):
                sid = rnd.choice(sids)
                t = now_ms()
                r = c.exec(sid, ["echo", "hi"])
                lat["exec"].append(now_ms() - t)
                assert r["stdout"] == "hi\n", r
        c.close()
        out["latency"] = {k: summary(v) for k, v in lat.items()}
        return out


def fill(d, steps, body, threads=4, time_limit=1200, mem_floor=4 * GiB, samples=200, log=print):
        """Create sandboxes with `threads` clients until each step of `steps` is reached,
        measuring at each step; stops early when MemAvailable < mem_floor, a create fails or
        time_limit passes. Deletes everything at the end. Returns the report."""
        base = snapshot(d)
        sids = []
        lock = threading.Lock()
        stop = {"why": None}
        deadline = time.monotonic() + time_limit
        report = {"steps": [], "fill": [], "body": body, "threads": threads}
        for target in steps:
                if stop["why"]:
                        break
                t0 = time.perf_counter()
                n0 = len(sids)
                create_lat = []

                def worker():
                        c = d.client()
                        while True:
                                with lock:
                                        if stop["why"] or len(sids) + pending[0] >= target:
                                                break
                                        if time.monotonic() > deadline:
                                                stop["why"] = f"time limit {time_limit}s"
                                                break
                                        pending[0] += 1
                                if meminfo() < mem_floor:
                                        with lock:
                                                pending[0] -= 1
                                                stop["why"] = (f"MemAvailable "
                                                               f"{meminfo() / GiB:.1f} GiB < "
                                                               f"{mem_floor / GiB:.0f} GiB")
                                        break
                                t = now_ms()
                                try:
                                        r = c.create(**body)
                                        ms = now_ms() - t
                                        with lock:
                                                pending[0] -= 1
                                                sids.append(r["sandbox_id"])
                                                create_lat.append(ms)
                                except (HTTPError, OSError) as e:
                                        with lock:
                                                pending[0] -= 1
                                                stop["why"] = f"create failed: {e!r}"[:300]
                                        break
                        c.close()

                pending = [0]
                ts = [threading.Thread(target=worker) for _ in range(threads)]
                for t in ts:
                        t.start()
                for t in ts:
                        t.join()
                el = time.perf_counter() - t0
                made = len(sids) - n0
                report["fill"].append({"from": n0, "to": len(sids), "seconds": el,
                                       "creates_per_s": made / el if el > 0 else 0,
                                       "create_ms": summary(create_lat)})
                log(f"  density: {len(sids)} sandboxes ({made / el if el else 0:.1f} creates/s)"
                    + (f"; stopped: {stop['why']}" if stop["why"] else ""))
                if not sids:
                        break
                time.sleep(1.0)  # let the last creates settle before reading counters
                m = measure(d, sids, base, samples)
                m["target"] = target
                report["steps"].append(m)
                log(f"  density: N={len(sids)}: {m.get('total_kernel', 0) / MiB:.2f} MiB/sandbox "
                    f"(cgroups), {m.get('total_with_uncharged', 0) / MiB:.2f} with uncharged "
                    f"kernel memory, MemAvailable {m['mem_available'] / GiB:.1f} GiB")
        report["stopped"] = stop["why"] or "reached the last step"
        report["max_n"] = len(sids)
        n, failed, s = delete_all(d, sids, threads=threads, time_limit=600)
        report["delete"] = {"n": n, "failed": failed, "seconds": s,
                            "per_s": n / s if s > 0 else 0,
                            "teardown_s": wait_teardown(d, 900)}
        log(f"  density: deleted {n} in {s:.1f}s ({n / s if s else 0:.1f}/s), {failed} failed")
        return report
