"""bench_exec.py - exec round trip in a running sandbox, exec throughput through one sandbox
and across several, and the client's own overhead (GET /health timed the same way)."""
import threading
import time

from wlib import now_ms, summary


def round_trip(d, sid, n):
        """n sequential `echo hi` execs on one keep-alive connection; latencies in ms."""
        c = d.client()
        xs = []
        for _ in range(n):
                t = now_ms()
                r = c.exec(sid, ["echo", "hi"])
                xs.append(now_ms() - t)
                assert r["stdout"] == "hi\n", r
        c.close()
        return xs


def health_round_trip(d, n):
        """n sequential GET /health on one keep-alive connection: the client + HTTP floor."""
        c = d.client()
        xs = []
        for _ in range(n):
                t = now_ms()
                c.health()
                xs.append(now_ms() - t)
        c.close()
        return xs


def throughput(d, clients, seconds, op, max_ops=200000):
        """`clients` threads, each with its own keep-alive connection, call op(client, i) in a
        loop for `seconds` (and at most max_ops calls in all). Returns ops/s and latencies."""
        lat = [[] for _ in range(clients)]
        errors = [0]
        stop = [False]
        budget = [max_ops]
        lock = threading.Lock()
        barrier = threading.Barrier(clients + 1)

        def worker(i):
                c = d.client()
                c.connect()
                barrier.wait(30)
                while not stop[0]:
                        with lock:
                                if budget[0] <= 0:
                                        break
                                budget[0] -= 1
                        t = now_ms()
                        try:
                                op(c, i)
                                lat[i].append(now_ms() - t)
                        except Exception:
                                errors[0] += 1
                c.close()

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        for t in ts:
                t.start()
        barrier.wait(30)
        t0 = time.perf_counter()
        time.sleep(seconds)
        stop[0] = True
        for t in ts:
                t.join(60)
        el = time.perf_counter() - t0
        xs = [x for li in lat for x in li]
        return {"ops_per_s": len(xs) / el, "ops": len(xs), "errors": errors[0],
                "clients": clients, "lat": summary(xs)}


def exec_op(sids):
        """An op for throughput(): `echo hi` in sids[i % len(sids)]."""
        def op(c, i):
                r = c.exec(sids[i % len(sids)], ["echo", "hi"])
                if r["stdout"] != "hi\n":
                        raise AssertionError(r)
        return op


def health_op(c, i):
        c.health()
