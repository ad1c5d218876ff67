#!/usr/bin/env python3
"""Warren benchmark suite (issue "Speed at scale"). Started by bench/run.sh.

Runs real warrend daemons on 127.0.0.1 with temporary data dirs:
  cold   WARM_POOL_ENABLED=false: cold create vs bubblewrap, time to first output, exec
         round trip and throughput, a burst of 100 creates, density (N idle sandboxes)
  warm   WARM_POOL_ENABLED=true: warm create, time to first output, burst
  io     file transfer, small writes, daemon memory with 1,000 idle connections
  stream background jobs: output through a WebSocket attach and through long polls,
         attach latency (open -> attached, stdin -> echo)
Prints one table (p50 / p90 / p99 / max in ms for latency rows) with the targets of
shared/TARGETS.md and writes a JSON report. Every loop is bounded in count and time.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_create  # noqa: E402
import bench_density  # noqa: E402
import bench_exec  # noqa: E402
import bench_io  # noqa: E402
import bench_stream  # noqa: E402
import bench_uplink  # noqa: E402
from wlib import Daemon, GiB, MiB, meminfo, summary, wait_pool_full, wait_teardown  # noqa: E402

SECTIONS = ("cold", "exec", "burst", "density", "warm", "files", "conns", "uplink", "stream")
NA = None


class Report:
        """Rows of the final table, in order, and the raw data for the JSON file."""

        def __init__(self):
                self.rows = []
                self.raw = {}

        def lat(self, key, name, xs, target=None, ok=None, note=None):
                s = summary(xs) if isinstance(xs, list) else xs
                self.rows.append({"key": key, "name": name, "kind": "lat", "stats": s,
                                  "target": target, "met": ok(s) if ok and s.get("n") else None,
                                  "note": note})
                return s

        def val(self, key, name, value, unit, target=None, met=None, note=None):
                self.rows.append({"key": key, "name": name, "kind": "val", "value": value,
                                  "unit": unit, "target": target, "met": met, "note": note})

        def na(self, key, name, why, target=None):
                self.rows.append({"key": key, "name": name, "kind": "na", "why": why,
                                  "target": target, "met": None})

        def section(self, title):
                self.rows.append({"kind": "section", "name": title})

        def print(self):
                verdict = {True: "met", False: "NOT met", None: ""}
                print()
                print(f"{'measurement':<50} {'n':>5} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}"
                      f"  {'target':<24} {'':<7}")
                for r in self.rows:
                        if r["kind"] == "section":
                                print(f"-- {r['name']}")
                        elif r["kind"] == "lat":
                                s = r["stats"]
                                nums = (f"{s['p50']:8.2f} {s['p90']:8.2f} {s['p99']:8.2f} "
                                        f"{s['max']:8.2f}") if s.get("n") else f"{'(no samples)':>35}"
                                print(f"{r['name']:<50} {s.get('n', 0):>5} {nums}  "
                                      f"{r['target'] or '':<24} {verdict[r['met']]}")
                        elif r["kind"] == "val":
                                v = r["value"]
                                txt = f"{v:.2f} {r['unit']}" if isinstance(v, float) else \
                                        f"{v} {r['unit']}"
                                print(f"{r['name']:<50} {txt:>41}  {r['target'] or '':<24} "
                                      f"{verdict[r['met']]}" + (f"  ({r['note']})"
                                                                if r.get("note") else ""))
                        else:
                                print(f"{r['name']:<50} {r['why']:>41}  {r['target'] or '':<24}")
                print()


def p50_p99(p50, p99):
        return lambda s: s["p50"] <= p50 and s["p99"] <= p99


def machine():
        cpu = ""
        for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        return {"nproc": os.cpu_count(), "cpu": cpu, "mem_total_gib": meminfo("MemTotal") / GiB,
                "kernel": platform.release(),
                "cgroup": "v1" if os.path.exists("/sys/fs/cgroup/memory/memory.usage_in_bytes")
                else "v2", "python": platform.python_version()}


def build_info(bin_dir):
        exe = os.path.join(bin_dir, "warrend")
        src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cache = os.path.join(bin_dir, "CMakeCache.txt")
        btype = ""
        if os.path.exists(cache):
                for line in open(cache):
                        if line.startswith("CMAKE_BUILD_TYPE:"):
                                btype = line.split("=", 1)[1].strip()
                        if line.startswith("CMAKE_HOME_DIRECTORY:"):
                                src = line.split("=", 1)[1].strip()
        head = subprocess.run(["git", "-C", src, "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", src, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return {"bin_dir": os.path.abspath(bin_dir), "build_type": btype, "source": src,
                "warrend_mtime": time.strftime("%Y-%m-%d %H:%M:%S",
                                               time.localtime(os.path.getmtime(exe))),
                "git_head": head, "tree_dirty": bool(dirty)}


def run_cold(a, rep, body):
        d = Daemon(a.bin_dir, "cold", {"WARM_POOL_ENABLED": "false"},
                   tmp_dir=a.tmp_dir).start()
        try:
                if "cold" in a.sections:
                        rep.section("1. create, cold (pool off), bubblewrap side by side")
                        # warm up page caches and the daemon: a few creates not counted
                        bench_create.cold_vs_bwrap(d, 3, body)
                        wait_teardown(d, 60)
                        o = bench_create.cold_vs_bwrap(d, a.samples, body)
                        rep.raw["cold"] = o
                        cs = rep.lat("create_cold_ms", "create, cold: API call -> running",
                                     o["create"], "p50<=10 p99<=50", p50_p99(10, 50))
                        rep.lat("create_cold_server_total_ms", "  server startup_metrics.total_ms",
                                o["server_total"])
                        rep.lat("create_cold_disk_ms", "  server disk_ms", o["disk"])
                        rep.lat("create_cold_cgroup_ms", "  server cgroup_ms", o["cgroup"])
                        rep.lat("create_cold_spawn_ms", "  server spawn_ms", o["spawn"])
                        bs = rep.lat("bwrap_ms", "bubblewrap --unshare-all ... true", o["bwrap"])
                        rep.val("create_vs_bwrap", "cold create p50 / bubblewrap p50",
                                cs["p50"] / bs["p50"], "x")
                        rep.lat("delete_ms", "delete as seen by the client", o["delete"], "<=5",
                                lambda s: s["p50"] <= 5)
                        if o["pool_hits"]:
                                rep.val("cold_pool_hits", "pool hits with the pool off",
                                        o["pool_hits"], "", note="unexpected")
                        wait_teardown(d, 120)
                        rep.section("2. time to first output, cold")
                        for key, cmd, exp in (("echo", ["echo", "hi"], "hi"),
                                              ("node", ["node", "-v"], "v")):
                                o = bench_create.first_output(d, a.samples, body, cmd, exp)
                                rep.raw[f"ttfo_cold_{key}"] = o
                                if key == "echo":
                                        rep.lat("ttfo_cold_echo_ms", "create + exec `echo hi`, cold",
                                                o["total"], "p50<=15",
                                                lambda s: s["p50"] <= 15)
                                else:
                                        rep.lat("ttfo_cold_node_ms", "create + exec `node -v`, cold",
                                                o["total"])
                                        rep.lat("node_exec_ms", "  of which exec `node -v`",
                                                o["exec"])
                if "exec" in a.sections:
                        wait_teardown(d, 120)
                        run_exec(a, rep, d, body)
                if "burst" in a.sections:
                        wait_teardown(d, 120)
                        rep.section("4. burst: 100 creates at once, pool off")
                        o = bench_create.burst(d, 100, body)
                        rep.raw["burst_cold"] = {k: v for k, v in o.items()}
                        rep.lat("burst_cold_ms", "  individual create latency", o["lat"],
                                "p99<=200", lambda s: s["p99"] <= 200)
                        rep.val("burst_cold_all_ms", "  time until all 100 running",
                                o["all_running_ms"], "ms", "<=1000 ms",
                                o["failed"] == 0 and o["all_running_ms"] <= 1000,
                                note=f"{o['failed']} failed {o['errors']}" if o["failed"]
                                else None)
                if "density" in a.sections:
                        wait_teardown(d, 300)
                        rep.section("5. density: idle sandboxes (memory 64Mi, disk 64Mi)")
                        o = bench_density.fill(d, a.density_steps, {"memory": "64Mi",
                                                                    "disk": "64Mi"},
                                               threads=a.fill_threads,
                                               time_limit=a.density_time, samples=a.samples)
                        rep.raw["density"] = o
                        report_density(rep, o)
        finally:
                d.stop()


def run_exec(a, rep, d, body):
        rep.section("3. exec in a running sandbox (sync API)")
        c = d.client()
        sids = [c.create(**body)["sandbox_id"] for _ in range(10)]
        c.close()
        bench_exec.round_trip(d, sids[0], 10)  # warm-up
        xs = bench_exec.round_trip(d, sids[0], a.samples)
        rep.lat("exec_echo_ms", "exec `echo hi` round trip", xs, "p50<=1.5 p99<=5",
                p50_p99(1.5, 5))
        hs = bench_exec.health_round_trip(d, a.samples)
        rep.lat("health_ms", "  client floor: GET /health, same client", hs)
        rep.na("exec_ws", "exec round trip over WebSocket", "n/a (not built yet)")
        best = 0.0
        for name, clients, which in (("1 client, 1 sandbox", 1, sids[:1]),
                                     ("10 clients, 1 sandbox", 10, sids[:1]),
                                     ("10 clients, 10 sandboxes", 10, sids)):
                o = bench_exec.throughput(d, clients, a.seconds, bench_exec.exec_op(which))
                rep.raw[f"exec_rate_{clients}_{len(which)}"] = o
                per_sb = o["ops_per_s"] / len(which)
                if len(which) == 1:
                        best = max(best, per_sb)
                rep.val(f"exec_per_s_{clients}c_{len(which)}s", f"exec/s, {name}",
                        o["ops_per_s"], "/s",
                        note=f"p50 {o['lat'].get('p50', 0):.2f} ms, {o['errors']} errors")
        for clients in (1, 10):
                o = bench_exec.throughput(d, clients, a.seconds, bench_exec.health_op)
                rep.raw[f"health_rate_{clients}"] = o
                rep.val(f"health_per_s_{clients}c", f"  client floor: GET /health/s, {clients} "
                        f"client(s)", o["ops_per_s"], "/s",
                        note=f"p50 {o['lat'].get('p50', 0):.2f} ms")
        rep.val("exec_per_s_per_sandbox", "exec/s per sandbox (best of the above)", best, "/s",
                ">=800/s", best >= 800)
        from wlib import delete_all
        delete_all(d, sids)


def report_density(rep, o):
        for f in o["fill"]:
                rep.val(f"density_fill_{f['to']}", f"creates/s filling {f['from']} -> {f['to']}",
                        f["creates_per_s"], "/s",
                        note=f"{o['threads']} clients, create p50 "
                             f"{f['create_ms'].get('p50', 0):.1f} p99 "
                             f"{f['create_ms'].get('p99', 0):.1f} ms")
        for m in o["steps"]:
                n = m["n"]
                tk = m.get("total_kernel")
                tu = m.get("total_with_uncharged")
                at_1000 = 900 <= n <= 1100
                rep.val(f"density_{n}_mem_cgroups", f"N={n}: host MiB/sandbox, cgroup counters",
                        tk / MiB if tk is not None else float("nan"), "MiB",
                        note=(f"sandbox cgroups {m['sandbox_cgroup'] / MiB:.3f} (kmem "
                              f"{m['sandbox_kmem'] / MiB:.3f}) + launch cgroup "
                              f"{m.get('launch_cgroup', 0) / MiB:.3f} (kmem "
                              f"{m.get('launch_kmem', 0) / MiB:.3f})"))
                rep.val(f"density_{n}_mem_total", f"N={n}:   + uncharged kernel memory",
                        tu / MiB if tu is not None else float("nan"), "MiB",
                        "<=1 MiB at 1000" if at_1000 else None,
                        (tu <= MiB) if (at_1000 and tu is not None) else None,
                        note=(f"uncharged slab+percpu+vmalloc growth "
                              f"{m.get('uncharged_kernel', 0) / MiB:.3f}; MemAvailable drop "
                              f"{m['mem_available_drop'] / MiB:.3f}"))
                rep.val(f"density_{n}_mem_brief", f"N={n}: cgroups + init Pss + daemon Pss/N",
                        m["total_brief"] / MiB, "MiB",
                        note=(f"init Pss {m['init_pss'] / MiB:.3f}, daemon Pss "
                              f"{m['daemon_pss'] / MiB:.1f} MiB / N = "
                              f"{m['daemon_share'] / MiB:.3f}; loop devices "
                              f"{m['loop_devices']}"))
                for k, label in (("health", "GET /health"), ("get", "GET sandbox"),
                                 ("exec", "exec `echo hi`")):
                        rep.lat(f"density_{n}_{k}_ms", f"N={n}: {label}", m["latency"][k])
        rep.val("density_max", "idle sandboxes held", o["max_n"], "", ">=2000",
                o["max_n"] >= 2000, note="stopped: " + o["stopped"])
        dl = o["delete"]
        rep.val("density_delete_per_s", "deletes/s emptying the host (API answers)",
                dl["per_s"], "/s", note=f"{dl['n']} in {dl['seconds']:.1f}s, {dl['failed']} failed")
        if dl.get("teardown_s") is not None:
                tot = dl["seconds"] + dl["teardown_s"]
                rep.val("density_teardown_per_s", "  ... including background teardown",
                        dl["n"] / tot if tot else 0, "/s",
                        note=f"queue empty {dl['teardown_s']:.1f}s after the last answer")


def run_warm(a, rep, body):
        rep.section("1b/2b. warm pool (WARM_POOL_ENABLED=true, "
                    f"WARM_POOL_SIZE={a.pool_size})")
        d = Daemon(a.bin_dir, "warm", {"WARM_POOL_ENABLED": "true",
                                       "WARM_POOL_SIZE": str(a.pool_size)},
                   tmp_dir=a.tmp_dir).start()
        try:
                if wait_pool_full(d, 30) is None:  # no GET /api/v1/pool: give it time
                        time.sleep(min(15.0, 2.0 + 0.1 * a.pool_size))
                o = bench_create.warm_creates(d, a.samples, body, a.warm_pace_ms)
                rep.raw["warm"] = o
                hits = len(o["hit"])
                if hits == 0:
                        rep.na("create_warm_ms", "create, warm (pool on)",
                               "pool: not available", "p50<=1 p99<=5")
                        rep.raw["pool"] = "not available"
                        rep.lat("create_warm_all_ms", "  creates on the pool daemon (all misses)",
                                o["all"])
                        rep.na("ttfo_warm_echo_ms", "create + exec `echo hi`, warm",
                               "pool: not available", "p50<=5")
                        return
                rep.lat("create_warm_ms", f"create, warm (pool on, 1 every "
                        f"{o['interval_ms']:.0f} ms)",
                        o["all"], "p50<=1 p99<=5", p50_p99(1, 5))
                rep.lat("create_warm_hit_ms", "  pool hits only", o["hit"])
                rep.lat("create_warm_server_ms", "  server startup_metrics.total_ms (hits)",
                        o["server_total_hit"])
                rep.val("pool_hit_rate", "pool hit rate (paced creates)",
                        100.0 * hits / len(o["all"]), "%")
                for key, cmd, exp in (("echo", ["echo", "hi"], "hi"), ("node", ["node", "-v"], "v")):
                        o = bench_create.first_output(d, a.samples, body, cmd, exp, a.warm_pace_ms,
                                                      wait_pool=True)
                        rep.raw[f"ttfo_warm_{key}"] = o
                        label = "`echo hi`" if key == "echo" else "`node -v`"
                        rep.lat(f"ttfo_warm_{key}_ms", f"create + exec {label}, warm", o["total"],
                                "p50<=5" if key == "echo" else None,
                                (lambda s: s["p50"] <= 5) if key == "echo" else None,
                                )
                        rep.val(f"ttfo_warm_{key}_hits", "  pool hit rate",
                                100.0 * o["hits"] / len(o["total"]), "%")
                if "burst" in a.sections:
                        wait_teardown(d, 120)
                        if wait_pool_full(d, 30) is None:
                                time.sleep(min(15.0, 2.0 + 0.1 * a.pool_size))
                        o = bench_create.burst(d, 100, body)
                        rep.raw["burst_warm"] = o
                        rep.lat("burst_warm_ms", "burst of 100, pool on: individual creates",
                                o["lat"], "p99<=200", lambda s: s["p99"] <= 200)
                        rep.val("burst_warm_all_ms", "  time until all 100 running",
                                o["all_running_ms"], "ms", "<=1000 ms",
                                o["failed"] == 0 and o["all_running_ms"] <= 1000,
                                note=f"{o['hits']} pool hits, {o['failed']} failed")
        finally:
                d.stop()


def run_uplink(a, rep, body):
        rep.section("8. network uplink (egress), daemon in its own network namespace")
        ns, d = bench_uplink.start(a.bin_dir, a.tmp_dir)
        try:
                bench_uplink.creates(d, 3, body)  # warm-up: the first one makes the bridge
                wait_teardown(d, 60)
                o = bench_uplink.creates(d, a.samples, body)
                rep.raw["uplink"] = o
                rep.lat("create_uplink_ms", "create with network egress (uplink)", o["egress"])
                rep.lat("create_uplink_none_ms", "  the same daemon, network none, interleaved",
                        o["none"])
                rep.lat("create_uplink_net_ms", "  server net_ms (veth, addresses, rules)",
                        o["net_ms"])
                rep.lat("delete_uplink_ms", "  delete of an egress sandbox, client side",
                        o["delete_egress"])
                wait_teardown(d, 120)
                xs = bench_uplink.policy_changes(d, a.samples)
                rep.raw["uplink_patch"] = xs
                rep.lat("uplink_patch_ms", "PATCH /network (policy change) round trip", xs)
                d.stop()
                d = bench_uplink.start_pooled(a.bin_dir, ns, a.pool_size, a.tmp_dir)
                o = bench_uplink.warm(d, a.samples, a.warm_pace_ms)
                rep.raw["uplink_warm"] = o
                if o["hit"]:
                        rep.lat("create_uplink_warm_ms", "create with network egress, warm pool "
                                "hit", o["hit"])
                        rep.lat("create_uplink_warm_server_ms", "  server total_ms (hits)",
                                o["server_total_hit"])
                rep.val("uplink_warm_hit_rate", "  pool hit rate (paced egress creates)",
                        100.0 * len(o["hit"]) / max(1, len(o["hit"]) + len(o["miss"])), "%")
        finally:
                d.stop()
                ns.close()


def run_io(a, rep):
        d = Daemon(a.bin_dir, "io", {"WARM_POOL_ENABLED": "false"}, tmp_dir=a.tmp_dir).start()
        try:
                if "conns" in a.sections:
                        rep.section("7. daemon memory, idle keep-alive connections")
                        o = bench_io.idle_connections(d, a.conns)
                        rep.raw["conns"] = o
                        rss = o["with"]["rss"] / MiB
                        rep.val("daemon_rss_conns", f"daemon VmRSS with {o['connections']} idle "
                                "connections", rss, "MiB", "<=10 MB",
                                o["with"]["rss"] <= 10e6 and o["still_open"] == a.conns,
                                note=f"before {o['before']['rss'] / MiB:.2f} MiB; "
                                     f"{o['answered_200']} answered 200, "
                                     f"{o['still_open']} still open")
                        rep.val("daemon_pss_conns", "  daemon Pss with them",
                                o["with"]["pss"] / MiB, "MiB",
                                note=f"before {o['before']['pss'] / MiB:.2f} MiB")
                        rep.na("daemon_streams", "daemon memory with 1,000 attached streams",
                               "n/a (streams not built yet)")
                if "files" in a.sections:
                        rep.section("6. file transfer (binary endpoints), 100 MB")
                        o = bench_io.transfer(d, 100, a.file_reps, a.samples)
                        rep.raw["files"] = o
                        import statistics
                        up = statistics.median(o["upload_MBps"])
                        down = statistics.median(o["download_MBps"])
                        rep.val("upload_MBps", f"upload PUT files/upload (median of "
                                f"{len(o['upload_MBps'])})", up, "MB/s", ">=500 MB/s", up >= 500,
                                note="min %.0f max %.0f" % (min(o["upload_MBps"]),
                                                            max(o["upload_MBps"])))
                        rep.val("download_MBps", f"download GET files/download (median of "
                                f"{len(o['download_MBps'])})", down, "MB/s", ">=1000 MB/s",
                                down >= 1000, note="min %.0f max %.0f" % (
                                        min(o["download_MBps"]), max(o["download_MBps"])))
                        rep.val("loopback_MBps", "  client ceiling: raw TCP on 127.0.0.1",
                                statistics.median(o["loopback_MBps"]), "MB/s")
                        rep.lat("small_write_ms", "4 KiB write, POST files (base64)",
                                o["small_write_ms"], "p50<=0.5", lambda s: s["p50"] <= 0.5)
        finally:
                d.stop()


def run_stream(a, rep):
        d = Daemon(a.bin_dir, "stream", {"WARM_POOL_ENABLED": "false"},
                   tmp_dir=a.tmp_dir).start()
        try:
                import statistics
                c = d.client()
                sid = c.create()["sandbox_id"]
                c.close()
                size = a.stream_mib * MiB
                rep.section(f"8. streaming background jobs: `yes | head -c {a.stream_mib}M`, "
                            "one client")
                o = bench_stream.ws_throughput(d, sid, size, a.stream_reps)
                rep.raw["stream_ws"] = o

                def row(key, name, runs, with_dropped=True):
                        xs = [r["MBps"] for r in runs]
                        note = f"n {len(xs)}, min {min(xs):.0f} max {max(xs):.0f}"
                        if runs and "requests" in runs[0]:
                                note += ", %.0f KiB/request" % (
                                        sum(r["bytes"] for r in runs) / 1024.0 /
                                        sum(r["requests"] for r in runs))
                        if with_dropped:
                                lost = sum(r["dropped"] for r in runs)
                                note += ", dropped %.1f%%" % (100.0 * lost / (len(runs) * size))
                        rep.val(key, name, statistics.median(xs), "MB/s", note=note)
                row("stream_ws_MBps", "job output, WebSocket attach from 0, live (median)",
                    o["live"])
                row("stream_ws_replay_MBps", "  replay of the ended job's held 16 MiB log",
                    o["replay"], with_dropped=False)
                o = bench_stream.poll_throughput(d, sid, size, a.stream_reps)
                rep.raw["stream_poll"] = o
                row("stream_poll_MBps", "job output, long-poll GET output (4 MiB/request)", o)
                rep.section("9. attach latency (WebSocket)")
                o = bench_stream.attach_latency(d, sid, a.samples)
                rep.raw["attach_latency"] = o
                rep.lat("attach_open_ms", "WebSocket connect -> \"attached\" (running job)",
                        o["open"])
                rep.lat("attach_echo_pipe_ms", "stdin frame -> echo, `cat` on a pipe",
                        o["echo_pipe"])
                rep.lat("attach_echo_pty_ms", "stdin frame -> echo, `cat` on a PTY",
                        o["echo_pty"])
        finally:
                d.stop()


def main():
        ap = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("--bin-dir", required=True)
        ap.add_argument("--quick", action="store_true", help="smoke run: 30 samples, N=50")
        ap.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated subset of " + ",".join(SECTIONS))
        ap.add_argument("--out", default="bench/results.json")
        ap.add_argument("--samples", type=int)
        ap.add_argument("--density", help="comma-separated N steps (default 100,1000,2000,"
                        "3000,4000,5000; --quick 50)")
        ap.add_argument("--pool-size", type=int, default=10)
        ap.add_argument("--warm-pace-ms", type=float, default=50.0,
                        help="least interval between warm creates (they also wait, at most 2 s, "
                        "until the pool is full again)")
        ap.add_argument("--stream-mib", type=int, default=512,
                        help="MiB each streaming job writes (default 512; --quick 64)")
        ap.add_argument("--stream-reps", type=int, default=3,
                        help="runs per streaming throughput row (default 3)")
        ap.add_argument("--tmp-dir", help="where the daemons' temporary data dirs go "
                        "(default: $TMPDIR or /tmp)")
        a = ap.parse_args()
        a.sections = set(a.only.split(","))
        bad = a.sections - set(SECTIONS)
        if bad:
                sys.exit(f"unknown sections: {bad}")
        a.samples = a.samples or (30 if a.quick else 200)
        a.seconds = 2.0 if a.quick else 5.0
        a.file_reps = 5
        a.conns = 1000
        if a.quick and a.stream_mib == 512:
                a.stream_mib = 64
        a.fill_threads = 4
        a.density_time = 300 if a.quick else 1500
        a.density_steps = [int(x) for x in (a.density or ("50" if a.quick else
                                                          "100,1000,2000,3000,4000,5000"))
                           .split(",")]
        # 1,000 connections and thousands of sandboxes need descriptors (daemons inherit it)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

        body = {}  # the server's defaults: the size class a warm pool always keeps
        rep = Report()
        rep.raw["machine"] = machine()
        rep.raw["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
        rep.raw["build"] = build_info(a.bin_dir)
        rep.raw["args"] = {"quick": a.quick, "samples": a.samples, "sections": sorted(a.sections),
                           "density_steps": a.density_steps, "pool_size": a.pool_size,
                           "warm_pace_ms": a.warm_pace_ms, "create_body": body,
                           "tmp_dir": a.tmp_dir}
        rep.raw["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        print("machine:", json.dumps(rep.raw["machine"]))
        print("build:  ", json.dumps(rep.raw["build"]))
        t0 = time.monotonic()
        if a.sections & {"cold", "exec", "burst", "density"}:
                run_cold(a, rep, body)
        if "warm" in a.sections:
                run_warm(a, rep, body)
        if a.sections & {"files", "conns"}:
                run_io(a, rep)
        if "uplink" in a.sections:
                run_uplink(a, rep, body)
        if "stream" in a.sections:
                run_stream(a, rep)
        rep.raw["seconds"] = time.monotonic() - t0
        rep.raw["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        rep.print()
        print(f"(wall time {rep.raw['seconds']:.0f} s; MB = 10^6 bytes; latency in ms; load "
              f"average at start {' '.join(rep.raw['loadavg_start'])}, at end "
              f"{' '.join(rep.raw['loadavg_end'])})")
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
                json.dump({"rows": rep.rows, "raw": rep.raw}, f, indent=1, default=str)
        print("wrote", a.out)


if __name__ == "__main__":
        main()
