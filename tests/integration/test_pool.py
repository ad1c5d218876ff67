"""The warm pool (WARM_POOL_ENABLED): ready sandboxes per size class, handed out on create.

A hit answers 201 with pool_hit true, the caller's org, env and timeout, and a fresh id; a
pooled sandbox never ran user code and is handed out once; an empty pool falls back on the
cold path and refills in the background; a class that misses is pooled from then on; pooled
sandboxes are invisible to every organisation (lists, quota, every route); a kill -9 with a
full pool adopts it back (or destroys it when the pool is now off) and leaks nothing.

Most tests share one pool daemon (module scope, the `pool` fixture); those that need other
settings or restart it start their own (`daemons`)."""
import concurrent.futures
import datetime
import os
import re
import time

import pytest
import requests

import warren_harness as wh
from warren_harness import assert_error, parse_time

POOL_SIZE = 3
POOL_ENV = {"WARM_POOL_ENABLED": "true", "WARM_POOL_SIZE": str(POOL_SIZE),
            "DEFAULT_CPUS": "1", "DEFAULT_MEMORY": "256Mi", "DEFAULT_DISK": "64Mi"}
ID_RE = re.compile(r"sandbox-[0-9a-f]{12}")
HANDED_OUT = set()  # every sandbox id any create in this module answered


@pytest.fixture(scope="module")
def pool_daemons():
        ds = wh.DaemonSet(wh.bin_dir())
        yield ds
        problems = ds.close()
        assert not problems, "\n".join(problems)


@pytest.fixture
def pool(pool_daemons):
        """The module's pool daemon (started on first use), settled before the test: every
        class full, no teardown under way. A daemon that died fails the test."""
        if not pool_daemons.servers:
                pool_daemons.start(POOL_ENV, name="pool")
        srv = pool_daemons.servers[0]
        if not srv.alive():
                srv.start()
        wh.wait_pool_settled(srv)
        yield srv
        if not srv.alive():
                rc = srv.proc.returncode
                tail = srv.log_tail()
                srv.start()
                pytest.fail(f"the pool daemon died during this test (exit {rc}); log:\n{tail}")


def create(srv, as_key=None, expect_hit=None, **fields):
        """POST create, assert 201, a well-formed id never answered before; returns the body."""
        r = srv.create_raw(as_key=as_key, **fields)
        assert r.status_code == 201, f"create {fields} -> {r.status_code}: {r.text[:600]}"
        b = r.json()
        sid = b["sandbox_id"]
        assert ID_RE.fullmatch(sid), f"sandbox id {sid!r}"
        assert sid not in HANDED_OUT, f"create answered {sid}, an id already handed out"
        HANDED_OUT.add(sid)
        hit = b["startup_metrics"]["pool_hit"]
        assert isinstance(hit, bool), b
        if expect_hit is not None:
                assert hit is expect_hit, \
                        f"create {fields}: pool_hit {hit}, expected {expect_hit}: {b}"
        return b


def delete_all(srv, ids):
        for sid in ids:
                assert srv.delete(sid).status_code == 200, sid


def counters(srv, cls=None):
        c = srv.pool_class(cls)
        return (c["hits"], c["misses"]) if c else (0, 0)


def test_pool_is_off_by_default(server):
        p = server.pool()
        assert p["enabled"] is False, p
        assert all(c["ready"] == 0 for c in p["classes"]), p
        b = create(server, disk="64Mi", expect_hit=False)
        assert server.sh(b["sandbox_id"], "echo ok") == "ok\n"
        assert server.delete(b["sandbox_id"]).status_code == 200
        assert_error(server.get("/api/v1/pool", auth=False), 401)
        assert_error(server.get("/api/v1/pool", key="wk_nope_" + "0" * 40), 401)


def test_pool_endpoint_answers_any_admin_key(pool):
        org = pool.org_create("pool-admin")
        r = pool.get("/api/v1/pool", key=org["api_key"])
        assert r.status_code == 200, r.text
        assert r.json()["enabled"] is True
        assert_error(pool.post("/api/v1/pool", json={}), 405)


def test_pool_fills_to_its_size(pool):
        p = wh.wait_pool_settled(pool)
        assert p["enabled"] is True
        c = pool.pool_class(pool=p)
        assert c is not None, f"the default class {pool.default_class()} is not pooled: {p}"
        assert c["template"] == "base" and c["network"] == "none", c
        assert c["target"] == POOL_SIZE and c["ready"] == POOL_SIZE, c
        # what the daemon holds besides the API's sandboxes is the pool, all alive
        pooled = wh.pool_ids(pool, pool.created)
        assert len(pooled) == sum(x["ready"] for x in p["classes"]), (pooled, p)
        for sid in pooled:
                inits = [q for q in wh.sandbox_host_pids(sid) if wh.proc_comm(q) == "warren-init"]
                assert len(inits) == 1, f"pooled {sid}: warren-init processes {inits}"


def test_hit_belongs_to_the_caller_from_hand_out(pool):
        org = pool.org_create("pool-hit")
        key = org["api_key"]
        hits, misses = counters(pool)
        time.sleep(2)  # the pooled sandboxes are now >= 2 s old: times must come from hand-out
        before = datetime.datetime.now(datetime.timezone.utc)
        b = create(pool, as_key=key, expect_hit=True, timeout_seconds=137,
                   env={"GREETING": "hi there", "EMPTY": ""})
        sid = b["sandbox_id"]
        assert b["status"] == "running", b
        assert b["org_id"] == org["org_id"], b
        assert (b["template"], b["isolation"], b["network"]) == ("base", "container", "none"), b
        assert wh.size_class(b["template"], b["cpus"], b["memory"], b["disk"], b["network"]) \
                == pool.default_class(), b
        assert b["timeout_seconds"] == 137, b
        created, expires = parse_time(b["created_at"]), parse_time(b["expires_at"])
        assert created > before - datetime.timedelta(seconds=1), \
                f"created_at {b['created_at']} is older than the request ({before.isoformat()})"
        assert (expires - created).total_seconds() == pytest.approx(137, abs=1), b
        # the caller's, and only the caller's
        info = pool.info(sid, as_key=key)
        for k in ("org_id", "status", "created_at", "expires_at", "timeout_seconds", "cpus",
                  "memory", "disk"):
                assert info[k] == b[k], (k, info, b)
        assert_error(pool.get(f"/api/v1/sandbox/{sid}"), 404, "not_found")
        lst = pool.get("/api/v1/sandboxes", key=key).json()
        assert [s["sandbox_id"] for s in lst["sandboxes"]] == [sid] and lst["total"] == 1, lst
        out = pool.sh(sid, 'printf "%s|%s|%s|%s" "$GREETING" "${EMPTY-unset}" "$(hostname)" '
                      '"$(id -u)"', as_key=key)
        assert out == f"hi there||{sid}|1001", out
        # counted as a hit, not a miss; the pool refills behind it
        assert counters(pool) == (hits + 1, misses), pool.pool()
        wh.wait_pool_settled(pool)
        assert sid not in wh.pool_ids(pool, pool.created)
        assert len(wh.pool_ids(pool, pool.created)) == sum(c["ready"] for c in
                                                            pool.pool()["classes"])
        assert pool.delete(sid, as_key=key).status_code == 200


def test_env_is_applied_at_hand_out_to_that_sandbox_only(pool):
        a = create(pool, expect_hit=True, env={"TOKEN_A": "alpha"})["sandbox_id"]
        wh.wait_pool_settled(pool)
        b = create(pool, expect_hit=True)["sandbox_id"]
        wh.wait_pool_settled(pool)
        c = create(pool, expect_hit=True, env={"TOKEN_C": "gamma"})["sandbox_id"]
        show = 'printf "%s|%s" "${TOKEN_A-unset}" "${TOKEN_C-unset}"'
        assert pool.sh(a, show) == "alpha|unset"
        assert pool.sh(b, show) == "unset|unset"
        assert pool.sh(c, show) == "unset|gamma"
        # exec env adds to the sandbox's env
        assert pool.sh(a, show, env={"TOKEN_C": "x"}) == "alpha|x"
        delete_all(pool, [a, b, c])


def test_expiry_counts_from_hand_out(pool):
        time.sleep(3)  # the pooled sandboxes are older than the timeout asked for below
        b = create(pool, expect_hit=True, timeout_seconds=3)
        sid = b["sandbox_id"]
        assert pool.status(sid) == "running"
        assert pool.sh(sid, "echo alive") == "alive\n"
        init = wh.sandbox_init_pid(sid)
        wh.wait_status(pool, sid, "stopped", 3 + 5)
        wh.wait_processes_gone(sid, 10, init)
        assert_error(pool.exec_raw(sid, "true"), 409, "conflict")
        assert pool.delete(sid).status_code == 200
        wh.wait_sandbox_gone(pool.data_dir, sid, 10, init)


def test_no_reuse_after_a_tenant(pool):
        tenant_a = pool.org_create("tenant-a")["api_key"]
        tenant_b = pool.org_create("tenant-b")["api_key"]
        a = create(pool, as_key=tenant_a, expect_hit=True)["sandbox_id"]
        pool.write_file(a, "/workspace/secret", b"A's secret", as_key=tenant_a)
        pool.sh(a, "echo A > /tmp/secret; echo A > /home/user/secret", as_key=tenant_a)
        pool.sh(a, "echo A > /root/secret", as_key=tenant_a, user="root")
        wh.start_background_sleep(pool, a, as_key=tenant_a)
        init_a = wh.sandbox_init_pid(a)
        assert init_a
        assert pool.delete(a, as_key=tenant_a).status_code == 200
        assert_error(pool.get(f"/api/v1/sandbox/{a}", key=tenant_a), 404, "not_found")

        seen = {a}
        inits = {init_a}
        for _ in range(2 * POOL_SIZE + 1):
                wh.wait_pool_settled(pool)
                sid = create(pool, as_key=tenant_b, expect_hit=True)["sandbox_id"]
                assert sid not in seen, f"{sid} handed out twice"
                seen.add(sid)
                init = wh.sandbox_init_pid(sid)
                assert init and init not in inits, \
                        f"{sid} runs a warren-init already handed out: {init}"
                inits.add(init)
                out = pool.sh(sid, "ls -A /workspace; for f in /workspace/secret /tmp/secret "
                              "/home/user/secret /root/secret; do test -e $f && echo found $f; "
                              "done; true", as_key=tenant_b, user="root")
                assert out == "", f"{sid} (pooled) holds a previous tenant's files: {out!r}"
                procs = wh.inside_pids(pool, sid, as_key=tenant_b)
                assert "sleep" not in procs.values(), \
                        f"{sid} (pooled) runs a previous tenant's process: {procs}"
                assert pool.sh(sid, "hostname", as_key=tenant_b) == f"{sid}\n"
                assert pool.delete(sid, as_key=tenant_b).status_code == 200
        wh.wait_sandbox_gone(pool.data_dir, a, 10, init_a)


def test_empty_pool_falls_back_on_the_cold_path_and_refills(pool):
        key = pool.org_create("pool-burst")["api_key"]
        hits, misses = counters(pool)
        n = 10  # more than the pool holds, all at once

        def one(_):
                return pool.create_raw(as_key=key, timeout=90)
        with concurrent.futures.ThreadPoolExecutor(n) as ex:
                rs = list(ex.map(one, range(n)))
        bodies = []
        for r in rs:
                assert r.status_code == 201, f"create -> {r.status_code}: {r.text[:300]}"
                bodies.append(r.json())
        ids = [b["sandbox_id"] for b in bodies]
        assert len(set(ids)) == n, f"the same sandbox handed out twice: {sorted(ids)}"
        assert not set(ids) & HANDED_OUT, "an id handed out before"
        HANDED_OUT.update(ids)
        got_hits = sum(b["startup_metrics"]["pool_hit"] for b in bodies)
        assert 1 <= got_hits < n, f"{got_hits} hits out of {n} creates with {POOL_SIZE} pooled"
        assert counters(pool) == (hits + got_hits, misses + n - got_hits), pool.pool()
        # every one is a distinct, working sandbox of its own
        inits = {wh.sandbox_init_pid(s) for s in ids}
        assert len(inits) == n and None not in inits, inits
        for sid in ids:
                pool.write_file(sid, "/workspace/owner", sid.encode(), as_key=key)
        for sid in ids:
                assert pool.sh(sid, "cat /workspace/owner; echo; hostname", as_key=key) == \
                        f"{sid}\n{sid}\n"
        lst = pool.get("/api/v1/sandboxes", key=key).json()
        assert sorted(s["sandbox_id"] for s in lst["sandboxes"]) == sorted(ids), lst
        wh.wait_pool_settled(pool)
        assert pool.pool_class()["ready"] == POOL_SIZE
        delete_all(pool, ids)


def test_another_class_is_pooled_after_a_miss(pool):
        fields = {"cpus": "500m", "memory": "192Mi", "disk": "96Mi"}
        cls = wh.size_class(**fields)
        assert pool.pool_class(cls) is None, "the class is pooled before anyone asked for it"
        first = create(pool, expect_hit=False, **fields)["sandbox_id"]
        assert pool.sh(first, "echo cold") == "cold\n"
        c = pool.pool_class(cls)
        assert c is not None, f"the class {fields} was not registered by its miss: {pool.pool()}"
        assert c["target"] == POOL_SIZE and c["misses"] >= 1 and c["hits"] == 0, c
        wh.wait_pool_settled(pool)
        b = create(pool, expect_hit=True, **fields)
        sid = b["sandbox_id"]
        assert wh.size_class(b["template"], b["cpus"], b["memory"], b["disk"], b["network"]) \
                == cls, b
        # a pooled sandbox of the class really has the class's limits
        mem = wh.sandbox_cgroup_file(sid, "memory", "memory.limit_in_bytes") or \
                wh.sandbox_cgroup_file(sid, "memory", "memory.max")
        assert open(mem).read().strip() == str(192 * wh.MiB)
        quota = wh.sandbox_cgroup_file(sid, "cpu", "cpu.cfs_quota_us")
        if quota:
                assert open(quota).read().strip() == "50000"
        else:
                assert open(wh.sandbox_cgroup_file(sid, "cpu", "cpu.max")).read().split() == \
                        ["50000", "100000"]
        df = pool.sh(sid, "df -k /workspace | tail -1").split()
        assert 64 * 1024 < int(df[1]) <= 96 * 1024, f"/workspace size {df}"
        assert counters(pool, cls)[0] == 1
        # and a create of the default class does not get one of this class
        d = create(pool, expect_hit=True)["sandbox_id"]
        mem = wh.sandbox_cgroup_file(d, "memory", "memory.limit_in_bytes") or \
                wh.sandbox_cgroup_file(d, "memory", "memory.max")
        assert open(mem).read().strip() == str(256 * wh.MiB)
        delete_all(pool, [first, sid, d])


def test_a_class_is_its_values_not_their_spelling(pool):
        cold = create(pool, expect_hit=False, cpus="0.25", memory=str(160 * wh.MiB),
                      disk="80Mi")
        wh.wait_pool_settled(pool)
        hot = create(pool, expect_hit=True, cpus="250m", memory="160Mi", disk="80Mi")
        cls = wh.size_class(cpus="250m", memory="160Mi", disk="80Mi")
        assert counters(pool, cls) == (1, 1), pool.pool()
        delete_all(pool, [cold["sandbox_id"], hot["sandbox_id"]])


def test_pooled_sandboxes_are_out_of_every_orgs_reach(pool):
        org = pool.org_create("pool-reach")
        pooled = wh.pool_ids(pool, pool.created)
        assert len(pooled) >= POOL_SIZE, pooled
        inits = {sid: wh.sandbox_init_pid(sid) for sid in pooled}
        for key in (pool.api_key, org["api_key"]):
                listed = pool.get("/api/v1/sandboxes", key=key, params={"limit": 1000}).json()
                assert not pooled & {s["sandbox_id"] for s in listed["sandboxes"]}, listed
                for sid in pooled:
                        base = f"/api/v1/sandbox/{sid}"
                        for r in (pool.get(base, key=key), pool.get(base + "/status", key=key),
                                  pool.exec_raw(sid, "touch /workspace/planted", as_key=key),
                                  pool.post(base + "/files", key=key, json={"files": [
                                          {"path": "/workspace/planted",
                                           "content": wh.b64("x")}]}),
                                  pool.get(base + "/files/list", key=key,
                                           params={"path": "/workspace"}),
                                  pool.post(base + "/stop", key=key),
                                  pool.delete_path(base, key=key)):
                                assert_error(r, 404, "not_found")
        # untouched: still pooled, same processes, nothing planted
        wh.wait_pool_settled(pool)
        assert pooled <= wh.pool_ids(pool, pool.created)
        for sid in pooled:
                assert wh.sandbox_init_pid(sid) == inits[sid], sid
        # and when handed out, nothing was planted in them
        key = org["api_key"]
        for c in pool.pool()["classes"]:
                fields = {"cpus": f"{wh.parse_cpus(c['cpus'])}m",
                          "memory": str(wh.parse_bytes(c["memory"])),
                          "disk": str(wh.parse_bytes(c["disk"]))}
                for _ in range(c["ready"]):
                        sid = create(pool, as_key=key, **fields)["sandbox_id"]
                        assert pool.sh(sid, "ls -A /workspace", as_key=key) == ""
                        assert pool.delete(sid, as_key=key).status_code == 200


# ---- daemons of their own ----

def test_pool_is_outside_lists_and_quota(daemons):
        srv = daemons.start(dict(POOL_ENV, MAX_SANDBOXES_PER_ORG="2"), name="pool-quota")
        p = wh.wait_pool_settled(srv)
        assert srv.pool_class(pool=p)["ready"] == POOL_SIZE  # more than the quota
        org = srv.org_create("quota-org")
        for key in (srv.api_key, org["api_key"]):
                lst = srv.get("/api/v1/sandboxes", key=key).json()
                assert lst["total"] == 0 and lst["sandboxes"] == [], lst
        mine = {srv.api_key: [], org["api_key"]: []}
        for key in mine:
                for _ in range(2):
                        mine[key].append(create(srv, as_key=key)["sandbox_id"])
                assert_error(srv.create_raw(as_key=key), 429, "quota_exceeded")
        wh.wait_pool_settled(srv)
        for key, ids in mine.items():
                for q in ({}, {"status": "running"}):
                        lst = srv.get("/api/v1/sandboxes", key=key, params=q).json()
                        assert sorted(s["sandbox_id"] for s in lst["sandboxes"]) == sorted(ids), \
                                (q, lst)
                        assert lst["total"] == 2, lst
        # the quota counts the org's own sandboxes only: one freed, one more allowed
        assert srv.delete(mine[srv.api_key].pop()).status_code == 200
        mine[srv.api_key].append(create(srv)["sandbox_id"])
        for key, ids in mine.items():
                delete_all(srv, ids)


def test_at_most_eight_classes(daemons):
        srv = daemons.start(dict(POOL_ENV, WARM_POOL_SIZE="1"), name="pool-classes")
        wh.wait_pool_settled(srv)
        ids = []
        for i in range(10):
                b = create(srv, memory=f"{130 + i}Mi")
                ids.append(b["sandbox_id"])
                assert srv.sh(b["sandbox_id"], "echo ok") == "ok\n"
                p = srv.pool()
                assert len(p["classes"]) <= 8, f"{len(p['classes'])} classes: {p}"
                assert srv.pool_class(pool=p) is not None, "the default class is no longer pooled"
                wh.wait_pool_settled(srv)
        p = wh.wait_pool_settled(srv)
        assert len(p["classes"]) == 8, p
        assert len(wh.pool_ids(srv, srv.created)) == sum(c["ready"] for c in p["classes"]) == 8
        delete_all(srv, ids)


def test_idle_memory_cap_limits_the_pool(daemons):
        # An idle sandbox uses ~256 KiB of memory in its cgroup: a 1 KiB cap leaves room for
        # at most the one sandbox added while the pool was still empty.
        srv = daemons.start(dict(POOL_ENV, WARM_POOL_MAX_IDLE_MEMORY="1Ki"), name="pool-cap")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
                c = srv.pool_class()
                ready = c["ready"] if c else 0
                assert ready <= 1, f"the pool grew past its memory cap: {srv.pool()}"
                assert len(wh.pool_ids(srv, srv.created)) <= 1, wh.data_dir_ids(srv.data_dir)
                time.sleep(0.05)
        ids = [create(srv)["sandbox_id"] for _ in range(3)]
        for sid in ids:
                assert srv.sh(sid, "echo ok") == "ok\n"
        delete_all(srv, ids)


def _full_pool_with_a_user_sandbox(srv):
        """A user sandbox with a file, then a settled pool: (user id, {pooled id: init})."""
        user = create(srv)["sandbox_id"]
        srv.write_file(user, "/workspace/keep", b"kept across the crash")
        wh.wait_pool_settled(srv)
        pooled = wh.pool_ids(srv, [user])
        assert len(pooled) == POOL_SIZE, pooled
        inits = {sid: wh.sandbox_init_pid(sid) for sid in pooled}
        assert None not in inits.values(), inits
        return user, inits


def _assert_nothing_stray(srv, api_ids, seen):
        """Every id ever seen in the data dir that is gone left nothing; every loop device
        backed by the data dir belongs to a sandbox that is still there."""
        now = wh.data_dir_ids(srv.data_dir)
        for sid in set(seen) - now:
                left = wh.sandbox_leftovers(srv.data_dir, sid)
                assert not left, f"{sid} (gone from the data dir) left: {left}"
        for dev, f in wh.loop_devices_under(srv.data_dir).items():
                assert any(f"/{sid}/" in f for sid in now), f"{dev} backs {f}: no such sandbox"
        pooled = now - set(api_ids)
        p = srv.pool()
        assert len(pooled) == sum(c["ready"] for c in p["classes"]), (pooled, p)


def test_kill9_with_a_full_pool_adopts_it(daemons):
        srv = daemons.start(POOL_ENV, name="pool-adopt")
        user, inits = _full_pool_with_a_user_sandbox(srv)
        before = wh.data_dir_ids(srv.data_dir)

        srv.restart(kill9=True)

        p = wh.wait_pool_settled(srv, 30)
        assert srv.pool_class(pool=p)["ready"] == POOL_SIZE, p
        assert wh.data_dir_ids(srv.data_dir) == before, \
                "the restarted daemon replaced live pooled sandboxes instead of adopting them"
        for sid, init in inits.items():
                assert wh.sandbox_init_pid(sid) == init, f"pooled {sid} was not adopted"
                n = [q for q in wh.sandbox_host_pids(sid) if wh.proc_comm(q) == "warren-init"]
                assert len(n) == 1, f"pooled {sid}: warren-init processes {n}"
        assert srv.status(user) == "running"
        assert srv.read_file(user, "/workspace/keep") == b"kept across the crash"
        # the adopted ones are handed out and work (their agent was reconnected)
        key = srv.org_create("after-crash")["api_key"]
        got = []
        for _ in range(POOL_SIZE):
                wh.wait_pool_settled(srv)
                sid = create(srv, as_key=key, expect_hit=True, env={"X": "1"})["sandbox_id"]
                got.append(sid)
                assert srv.sh(sid, 'echo "$X"; hostname', as_key=key) == f"1\n{sid}\n"
        assert set(got) <= set(inits), (got, inits)
        delete_all(srv, got + [user])
        for sid in got + [user]:
                wh.wait_sandbox_gone(srv.data_dir, sid, 10, inits.get(sid))
        wh.wait_pool_settled(srv)
        _assert_nothing_stray(srv, [], before | wh.data_dir_ids(srv.data_dir))


def test_kill9_with_a_full_pool_then_disabled_destroys_it(daemons):
        srv = daemons.start(POOL_ENV, name="pool-off")
        user, inits = _full_pool_with_a_user_sandbox(srv)
        before = wh.data_dir_ids(srv.data_dir)

        srv.env["WARM_POOL_ENABLED"] = "false"
        srv.restart(kill9=True)

        for sid, init in inits.items():
                wh.wait_sandbox_gone(srv.data_dir, sid, 10, init)
        p = srv.pool()
        assert p["enabled"] is False, p
        assert all(c["ready"] == 0 for c in p["classes"]), p
        assert srv.status(user) == "running"
        assert srv.read_file(user, "/workspace/keep") == b"kept across the crash"
        assert srv.sh(user, "echo fine") == "fine\n"
        new = create(srv, expect_hit=False)["sandbox_id"]
        assert wh.data_dir_ids(srv.data_dir) == {user, new}
        delete_all(srv, [user, new])
        for sid in (user, new):
                wh.wait_sandbox_gone(srv.data_dir, sid, 10)
        _assert_nothing_stray(srv, [], before)


def test_kill9_while_the_pool_fills(daemons):
        srv = daemons.start(dict(POOL_ENV, WARM_POOL_SIZE="5"), name="pool-filling")
        seen = set()

        def some():
                seen.update(wh.data_dir_ids(srv.data_dir))
                return seen
        wh.wait_until(some, 20, 0.005, "the pool to start filling")
        srv.restart(kill9=True)
        seen.update(wh.data_dir_ids(srv.data_dir))
        p = wh.wait_pool_settled(srv, 30)
        assert srv.pool_class(pool=p)["ready"] == 5, p
        seen.update(wh.data_dir_ids(srv.data_dir))
        _assert_nothing_stray(srv, [], seen)
        # and what the pool holds works
        sid = create(srv, expect_hit=True)["sandbox_id"]
        assert srv.sh(sid, "echo ok") == "ok\n"
        assert srv.delete(sid).status_code == 200
        wh.wait_sandbox_gone(srv.data_dir, sid, 10)
