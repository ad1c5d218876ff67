"""bench_uplink.py - create with a network uplink (`network: egress`) against `network: none`
on the same daemon, and the latency of a policy change.

The daemon runs in a network namespace of its own, made here and deleted afterwards, with
nothing but its loopback: the bridge, veths and nftables tables it makes live and die there,
and no packet can leave it (no traffic is sent anyway; creates do not need any). The client
talks to it over DATA_DIR/warren.sock."""
import secrets
import subprocess
import time

from wlib import Daemon, now_ms


class Netns:
        """An empty network namespace (loopback up), deleted by close()."""

        def __init__(self):
                self.name = "wbench-" + secrets.token_hex(4)
                subprocess.run(["ip", "netns", "add", self.name], check=True)
                subprocess.run(["nsenter", f"--net=/run/netns/{self.name}", "ip", "link", "set",
                                "lo", "up"], check=True)

        def close(self):
                subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def start(bin_dir, tmp_dir=None):
        """(Netns, started Daemon with the warm pool off) for the uplink rows."""
        ns = Netns()
        try:
                d = Daemon(bin_dir, "uplink", {"WARM_POOL_ENABLED": "false",
                                               "NETWORK_EGRESS": "true", "NETWORK_DNS": "none"},
                           tmp_dir=tmp_dir, netns=ns.name).start()
        except BaseException:
                ns.close()
                raise
        return ns, d


def creates(d, n, body):
        """n creates with network none and n with egress, interleaved (same noise); each
        deleted right after. Returns sample lists: client latency, server net_ms, deletes."""
        c = d.client()
        out = {"none": [], "egress": [], "net_ms": [], "total_ms_egress": [], "delete_egress": []}
        for _ in range(n):
                for mode in ("none", "egress"):
                        t = now_ms()
                        r = c.create(network=mode, **body)
                        out[mode].append(now_ms() - t)
                        assert r["status"] == "running" and r["network"] == mode, r
                        m = r.get("startup_metrics", {})
                        t = now_ms()
                        c.delete(r["sandbox_id"])
                        if mode == "egress":
                                out["net_ms"].append(m.get("net_ms", 0.0))
                                out["total_ms_egress"].append(m.get("total_ms", 0.0))
                                out["delete_egress"].append(now_ms() - t)
        c.close()
        return out


def policy_changes(d, n):
        """n PATCH /network on one running egress sandbox (alternating two policies)."""
        c = d.client()
        sid = c.create(network="egress")["sandbox_id"]
        a = {"allow": [{"cidr": "0.0.0.0/0", "ports": [443], "protocol": "tcp"}]}
        b = {"allow": [{"cidr": "203.0.113.0/24", "ports": [80, 443, "8000-8100"]}],
             "deny": [{"cidr": "203.0.113.7/32"}]}
        xs = []
        for i in range(n):
                t = now_ms()
                c.json("PATCH", f"/api/v1/sandbox/{sid}/network", a if i % 2 else b)
                xs.append(now_ms() - t)
        c.delete(sid)
        c.close()
        return xs


def start_pooled(bin_dir, ns, pool_size, tmp_dir=None):
        """A daemon with the warm pool on, in the namespace ns of start()."""
        return Daemon(bin_dir, "uplink-pool", {"WARM_POOL_ENABLED": "true",
                                               "WARM_POOL_SIZE": str(pool_size),
                                               "NETWORK_EGRESS": "true", "NETWORK_DNS": "none"},
                      tmp_dir=tmp_dir, netns=ns.name).start()


def egress_ready(c):
        """(ready, target) of the pool's egress class, or None while it has none."""
        p = c.pool() or {}
        for k in p.get("classes", []):
                if k.get("network") == "egress":
                        return k.get("ready", 0), k.get("target", 0)
        return None


def warm(d, n, pace_ms, refill_limit_s=2.0):
        """n egress creates on a pool daemon, each after the egress class is full again
        (waiting at most refill_limit_s) and at least pace_ms after the previous one; each
        deleted. Returns latencies of hits and misses, server total_ms of hits."""
        c, pc = d.client(), d.client()
        out = {"hit": [], "miss": [], "server_total_hit": []}
        c.delete(c.create(network="egress")["sandbox_id"])  # the first one registers the class
        for _ in range(n):
                t = time.monotonic()
                while time.monotonic() - t < refill_limit_s + 10:
                        r = egress_ready(pc)
                        if r and r[0] >= r[1] > 0:
                                break
                        time.sleep(0.005)
                t0 = now_ms()
                r = c.create(network="egress")
                ms = now_ms() - t0
                m = r.get("startup_metrics", {})
                if m.get("pool_hit"):
                        out["hit"].append(ms)
                        out["server_total_hit"].append(m.get("total_ms", 0.0))
                else:
                        out["miss"].append(ms)
                c.delete(r["sandbox_id"])
                left = pace_ms / 1000.0 - (time.monotonic() - t)
                if left > 0:
                        time.sleep(left)
        c.close()
        pc.close()
        return out
