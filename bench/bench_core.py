#!/usr/bin/env python3
"""Warren baseline benchmark: create and exec latency through the public API over loopback,
with bubblewrap as a side-by-side baseline. Prints median/p90/p99/max and writes JSON."""
import argparse, json, os, secrets, shutil, signal, statistics, subprocess, sys, tempfile, time
import requests


def pct(xs, p):
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def summary(xs):
    return {"n": len(xs), "p50": statistics.median(xs), "p90": pct(xs, 90),
            "p99": pct(xs, 99), "max": max(xs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--out", default="bench/results.json")
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="warren-bench-")
    key = "wk_bench_" + secrets.token_hex(16)
    env = dict(os.environ, WARREN_ADMIN_KEY=key, MAX_SANDBOXES_PER_ORG="100000")
    log = open(os.path.join(data, "warrend.log"), "w")
    proc = subprocess.Popen([os.path.join(a.bin_dir, "warrend"), "--listen", "127.0.0.1:0",
                             "--data-dir", data, "--port-file", os.path.join(data, "port")],
                            env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(data, "port")) or \
                not open(os.path.join(data, "port")).read().strip():
            if time.time() > deadline or proc.poll() is not None:
                sys.exit("warrend did not start; see " + log.name)
            time.sleep(0.05)
        url = "http://127.0.0.1:%s" % open(os.path.join(data, "port")).read().strip()
        s = requests.Session()
        s.headers["Authorization"] = "ApiKey " + key
        n = a.samples
        results = {}

        # 1. cold create -> running, and delete (delete time reported too)
        create, delete, server_total = [], [], []
        for _ in range(n):
            t = time.perf_counter()
            r = s.post(url + "/api/v1/sandbox/create", json={"memory": "256Mi", "disk": "256Mi"})
            create.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            body = r.json()
            server_total.append(body["startup_metrics"]["total_ms"])
            t = time.perf_counter()
            s.delete(url + "/api/v1/sandbox/" + body["sandbox_id"]).raise_for_status()
            delete.append((time.perf_counter() - t) * 1000)
        results["create_cold_ms"] = summary(create)
        results["create_server_total_ms"] = summary(server_total)
        results["delete_ms"] = summary(delete)

        # baseline: bubblewrap, same machine, same run
        bw = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr",
                            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/lib", "/lib",
                            "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev",
                            "true"], check=True)
            bw.append((time.perf_counter() - t) * 1000)
        results["bwrap_unshare_all_true_ms"] = summary(bw)

        # 2. exec round trip of `echo hi`
        sid = s.post(url + "/api/v1/sandbox/create", json={}).json()["sandbox_id"]
        ex = []
        for _ in range(n):
            t = time.perf_counter()
            r = s.post(url + "/api/v1/sandbox/%s/execute" % sid, json={"command": ["echo", "hi"]})
            ex.append((time.perf_counter() - t) * 1000)
            assert r.json()["stdout"] == "hi\n"
        results["exec_echo_ms"] = summary(ex)
        t = time.perf_counter()
        k = 0
        while time.perf_counter() - t < 3.0:
            s.post(url + "/api/v1/sandbox/%s/execute" % sid, json={"command": ["true"]})
            k += 1
        results["exec_per_second_one_client"] = k / (time.perf_counter() - t)
        s.delete(url + "/api/v1/sandbox/" + sid)

        ratio = results["create_cold_ms"]["p50"] / results["bwrap_unshare_all_true_ms"]["p50"]
        results["create_vs_bwrap_p50_ratio"] = ratio
        print("%-34s %9s %9s %9s %9s" % ("measurement (ms)", "p50", "p90", "p99", "max"))
        for name, v in results.items():
            if isinstance(v, dict):
                print("%-34s %9.2f %9.2f %9.2f %9.2f" % (name, v["p50"], v["p90"], v["p99"], v["max"]))
        print("%-34s %9.1f" % ("exec/s (one client, sequential)", results["exec_per_second_one_client"]))
        print("%-34s %9.2f" % ("cold create p50 / bwrap p50", ratio))
        results["machine"] = {"nproc": os.cpu_count(), "kernel": os.uname().release}
        with open(a.out, "w") as f:
            json.dump(results, f, indent=2)
        print("wrote", a.out)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
