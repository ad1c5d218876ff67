"""Per-organisation quotas and request rate limits.

Creates over MAX_SANDBOXES_PER_ORG, MAX_ORG_CPUS or MAX_ORG_MEMORY (counting the sandboxes
that are creating or running) answer 429 quota_exceeded with Retry-After, and succeed again
once a sandbox is stopped or deleted. Requests over RATE_LIMIT_RPS / RATE_LIMIT_BURST answer
429 rate_limited with Retry-After and X-RateLimit-* headers, and succeed again after waiting
Retry-After. Every authenticated answer carries X-RateLimit-*. One organisation's limits never
affect another's. Each test runs its own daemon with tight limits (the session daemon's are
generous).
"""
import time

import warren_harness as wh
from warren_harness import assert_error

TINY = {"disk": "64Mi", "memory": "64Mi", "cpus": "100m"}


def int_header(r, name):
        v = r.headers.get(name)
        assert v is not None and v.isdigit(), f"{name}: {v!r} in {dict(r.headers)}"
        return int(v)


def assert_quota_429(r, mentions):
        assert_error(r, 429, "quota_exceeded", mentions=mentions)
        assert int_header(r, "Retry-After") >= 1
        # the rate limiter's headers are on every authenticated answer, this one included
        for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
                int_header(r, h)


def test_sandbox_count_quota(daemons):
        srv = daemons.start({"MAX_SANDBOXES_PER_ORG": "2"}, name="quota-count")
        a, b = srv.org_create("count-a"), srv.org_create("count-b")
        ka, kb = a["api_key"], b["api_key"]
        ids = [srv.create(as_key=ka, **TINY) for _ in range(2)]
        r = srv.create_raw(as_key=ka, **TINY)
        assert_quota_429(r, "MAX_SANDBOXES_PER_ORG")
        # the answer's Retry-After is when the first sandbox expires (at most its timeout)
        assert int_header(r, "Retry-After") <= 600
        # another organisation is not affected
        other = srv.create(as_key=kb, **TINY)
        # recovered after a delete, and after a stop (stopped sandboxes do not count)
        assert srv.delete(ids.pop(), as_key=ka).status_code == 200
        ids.append(srv.create(as_key=ka, **TINY))
        assert_quota_429(srv.create_raw(as_key=ka, **TINY), "MAX_SANDBOXES_PER_ORG")
        srv.stop_sandbox(ids[0], as_key=ka)
        ids.append(srv.create(as_key=ka, **TINY))
        for sid in ids:
                srv.delete(sid, as_key=ka)
        srv.delete(other, as_key=kb)


def test_cpu_and_memory_totals(daemons):
        srv = daemons.start({"MAX_SANDBOXES_PER_ORG": "10", "MAX_ORG_CPUS": "1",
                             "MAX_ORG_MEMORY": "256Mi"}, name="quota-totals")
        a, b = srv.org_create("totals-a"), srv.org_create("totals-b")
        ka, kb = a["api_key"], b["api_key"]
        s1 = srv.create(as_key=ka, cpus="500m", memory="64Mi", disk="64Mi")
        s2 = srv.create(as_key=ka, cpus="0.5", memory="64Mi", disk="64Mi")
        # 1 cpu in use: even 10m more is over MAX_ORG_CPUS
        r = srv.create_raw(as_key=ka, cpus="10m", memory="16Mi", disk="64Mi")
        assert_quota_429(r, "MAX_ORG_CPUS")
        # a request larger than the whole quota can never fit
        assert_quota_429(srv.create_raw(as_key=kb, cpus="2", memory="16Mi", disk="64Mi"),
                         "MAX_ORG_CPUS")
        # the other organisation has its own totals
        o1 = srv.create(as_key=kb, cpus="1", memory="256Mi", disk="64Mi")
        assert_quota_429(srv.create_raw(as_key=kb, cpus="10m", memory="16Mi", disk="64Mi"),
                         "MAX_ORG_CPUS")
        # stopping one frees its cpus
        srv.stop_sandbox(s2, as_key=ka)
        s3 = srv.create(as_key=ka, cpus="250m", memory="64Mi", disk="64Mi")
        # memory: 128Mi in use, 129Mi more is over 256Mi; 128Mi fits exactly
        assert_quota_429(srv.create_raw(as_key=ka, cpus="10m", memory="129Mi", disk="64Mi"),
                         "MAX_ORG_MEMORY")
        s4 = srv.create(as_key=ka, cpus="10m", memory="128Mi", disk="64Mi")
        assert_quota_429(srv.create_raw(as_key=ka, cpus="10m", memory="16Mi", disk="64Mi"),
                         "MAX_ORG_MEMORY")
        # deleting frees it again
        assert srv.delete(s4, as_key=ka).status_code == 200
        s5 = srv.create(as_key=ka, cpus="10m", memory="16Mi", disk="64Mi")
        for sid in (s1, s2, s3, s5):
                srv.delete(sid, as_key=ka)
        srv.delete(o1, as_key=kb)


def test_rate_limit(daemons):
        srv = daemons.start({"RATE_LIMIT_RPS": "1", "RATE_LIMIT_BURST": "5"}, name="ratelimit")
        a, b = srv.org_create("rate-a"), srv.org_create("rate-b")
        ka, kb = a["api_key"], b["api_key"]
        # every authenticated answer carries the headers
        r = srv.get("/api/v1/sandboxes", key=ka)
        assert r.status_code == 200
        assert int_header(r, "X-RateLimit-Limit") == 5
        assert int_header(r, "X-RateLimit-Remaining") == 4
        assert int_header(r, "X-RateLimit-Reset") >= 1
        # a burst of requests runs out (one token per second comes back: 50 requests take
        # far less than the 45 s that would be needed to never hit the limit)
        limited = None
        for _ in range(50):
                r = srv.get("/api/v1/sandboxes", key=ka)
                if r.status_code == 429:
                        limited = r
                        break
                assert r.status_code == 200, r.text
        assert limited is not None, "50 quick requests never hit RATE_LIMIT_BURST=5"
        assert_error(limited, 429, "rate_limited", mentions="RATE_LIMIT_RPS")
        retry = int_header(limited, "Retry-After")
        assert retry >= 1
        assert int_header(limited, "X-RateLimit-Limit") == 5
        assert int_header(limited, "X-RateLimit-Remaining") == 0
        assert int_header(limited, "X-RateLimit-Reset") >= 1
        # every route of that organisation is limited, POST included
        assert_error(srv.create_raw(as_key=ka, **TINY), 429, "rate_limited")
        # another organisation is not: its bucket is full
        rb = srv.get("/api/v1/sandboxes", key=kb)
        assert rb.status_code == 200 and int_header(rb, "X-RateLimit-Remaining") == 4
        # unauthenticated routes and answers are not counted against anyone
        assert srv.get("/health", auth=False).status_code == 200
        assert srv.get("/api/v1/sandboxes", auth=False).status_code == 401
        # recovered after waiting Retry-After
        time.sleep(retry)
        r = srv.get("/api/v1/sandboxes", key=ka)
        assert r.status_code == 200, r.text
