"""Sandbox lifecycle through the REST API: create, get, status, list, stop, delete, input
validation, auth, organisation scoping and quotas."""
import datetime
import json
import os
import select
import socket
import time

import pytest

import warren_harness as wh
from warren_harness import assert_error, parse_time


def test_health_needs_no_key(server):
        r = server.get("/health", auth=False)
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ok"
        assert isinstance(body.get("version"), str) and body["version"]


def test_create_with_defaults(server):
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        r = server.create_raw()
        assert r.status_code == 201, r.text
        assert r.headers.get("Content-Type", "").startswith("application/json")
        b = r.json()
        sid = b["sandbox_id"]
        assert sid.startswith("sandbox-") and len(sid) > len("sandbox-")
        assert isinstance(b["org_id"], str) and b["org_id"]
        assert b["status"] == "running"
        assert b["template"] == "base"
        assert b["isolation"] == "container"
        assert b["network"] == "none"
        assert b["cpus"] == "2"
        assert b["memory"] == "2Gi"
        assert b["disk"] == "10Gi"
        assert b["timeout_seconds"] == 600
        created, expires = parse_time(b["created_at"]), parse_time(b["expires_at"])
        after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
        assert before - datetime.timedelta(seconds=2) <= created <= after
        assert (expires - created).total_seconds() == pytest.approx(600, abs=1)
        m = b["startup_metrics"]
        assert m["total_ms"] > 0
        for k in ("disk_ms", "cgroup_ms", "spawn_ms"):
                assert isinstance(m[k], (int, float)) and m[k] >= 0, m
        assert isinstance(m["pool_hit"], bool)
        # really running: a command answers
        assert server.sh(sid, "echo up") == "up\n"
        server.delete(sid)


def test_create_with_every_field(server):
        r = server.create_raw(cpus="500m", memory="256Mi", disk="128Mi", timeout_seconds=300,
                              env={"GREETING": "hello world", "EMPTY": ""}, template="base",
                              isolation="container", network="none")
        assert r.status_code == 201, r.text
        b = r.json()
        sid = b["sandbox_id"]
        assert b["cpus"] == "500m"
        assert b["memory"] == "256Mi"
        assert b["disk"] == "128Mi"
        assert b["timeout_seconds"] == 300
        created, expires = parse_time(b["created_at"]), parse_time(b["expires_at"])
        assert (expires - created).total_seconds() == pytest.approx(300, abs=1)
        out = server.sh(sid, 'printf "%s|%s|%s" "$GREETING" "${EMPTY-unset}" "$(hostname)"')
        assert out == f"hello world||{sid}"
        # the limits asked for are the limits applied
        mem = wh.sandbox_cgroup_file(sid, "memory", "memory.limit_in_bytes") or \
                wh.sandbox_cgroup_file(sid, "memory", "memory.max")
        assert mem, "no memory cgroup for the sandbox"
        assert open(mem).read().strip() == str(256 * wh.MiB)
        df = server.sh(sid, "df -k /workspace | tail -1").split()
        assert 64 * 1024 < int(df[1]) <= 128 * 1024, f"/workspace size {df}"
        server.delete(sid)


def test_get_and_status(server, sandbox):
        info = server.info(sandbox)
        assert info["sandbox_id"] == sandbox
        assert info["status"] == "running"
        assert "startup_metrics" not in info
        assert "stopped_at" not in info
        created = server.created_info[sandbox]
        for k in ("org_id", "template", "cpus", "memory", "disk", "timeout_seconds",
                  "created_at", "expires_at", "isolation", "network"):
                assert info[k] == created[k], k
        assert isinstance(info["usage"]["memory_bytes"], int) and info["usage"]["memory_bytes"] > 0
        assert isinstance(info["usage"]["pids"], int) and info["usage"]["pids"] >= 1
        st = server.get(f"/api/v1/sandbox/{sandbox}/status").json()
        assert st == {"sandbox_id": sandbox, "status": "running", "expires_at": info["expires_at"]}


def test_list_is_org_scoped_filtered_and_paginated(server, new_org):
        org = new_org()
        key = org["api_key"]
        r = server.get("/api/v1/sandboxes", key=key)
        assert r.status_code == 200
        assert r.json()["total"] == 0 and r.json()["sandboxes"] == []
        ids = []
        for _ in range(3):
                ids.append(server.create(as_key=key, disk="64Mi"))
                time.sleep(1.1)  # distinct created_at seconds: "newest first" is well defined
        mine = server.create(disk="64Mi")  # the admin org's: must not show up
        r = server.get("/api/v1/sandboxes", key=key)
        b = r.json()
        assert b["total"] == 3
        assert [s["sandbox_id"] for s in b["sandboxes"]] == ids[::-1], "newest first"
        assert all(s["org_id"] == org["org_id"] for s in b["sandboxes"])
        assert mine not in [s["sandbox_id"] for s in b["sandboxes"]]
        assert b["limit"] == 100 and b["offset"] == 0
        p1 = server.get("/api/v1/sandboxes", key=key, params={"limit": 2}).json()
        assert [s["sandbox_id"] for s in p1["sandboxes"]] == [ids[2], ids[1]]
        assert p1["total"] == 3 and p1["limit"] == 2
        p2 = server.get("/api/v1/sandboxes", key=key, params={"limit": 2, "offset": 2}).json()
        assert [s["sandbox_id"] for s in p2["sandboxes"]] == [ids[0]]
        assert p2["total"] == 3 and p2["offset"] == 2
        p3 = server.get("/api/v1/sandboxes", key=key, params={"offset": 10}).json()
        assert p3["sandboxes"] == [] and p3["total"] == 3
        server.stop_sandbox(ids[1], as_key=key)
        st = server.get("/api/v1/sandboxes", key=key, params={"status": "stopped"}).json()
        assert [s["sandbox_id"] for s in st["sandboxes"]] == [ids[1]] and st["total"] == 1
        assert st["sandboxes"][0]["status"] == "stopped"
        ru = server.get("/api/v1/sandboxes", key=key, params={"status": "running"}).json()
        assert sorted(s["sandbox_id"] for s in ru["sandboxes"]) == sorted([ids[0], ids[2]])
        assert ru["total"] == 2
        # the admin org's list does not contain the other org's sandboxes
        adm = server.get("/api/v1/sandboxes", params={"limit": 1000}).json()
        adm_ids = {s["sandbox_id"] for s in adm["sandboxes"]}
        assert mine in adm_ids and not adm_ids & set(ids)
        for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"offset": -1},
                    {"status": "sleeping"}):
                assert_error(server.get("/api/v1/sandboxes", key=key, params=bad), 400,
                             ("invalid_request",), mentions=next(iter(bad)))
        for sid in ids:
                assert server.delete(sid, as_key=key).status_code == 200
        server.delete(mine)


def test_stop_then_exec_and_files_conflict(server):
        sid = server.create(disk="64Mi")
        r = server.post(f"/api/v1/sandbox/{sid}/stop")
        assert r.status_code == 200
        assert r.json() == {"sandbox_id": sid, "status": "stopped"}
        assert server.status(sid) == "stopped"
        info = server.info(sid)
        assert info["status"] == "stopped"
        stopped_at = parse_time(info["stopped_at"])
        assert stopped_at >= parse_time(info["created_at"])
        assert_error(server.exec_raw(sid, "echo hi"), 409, "conflict")
        # every process is gone from the host
        wh.wait_until(lambda: not wh.sandbox_host_pids(sid), 5, what="sandbox processes to exit")
        # stopping again is fine
        r = server.post(f"/api/v1/sandbox/{sid}/stop")
        assert r.status_code == 200 and r.json()["status"] == "stopped"
        # the data stays until delete
        assert os.path.isdir(os.path.join(server.data_dir, "sandboxes", sid))
        server.delete(sid)


def test_delete_removes_everything(server):
        sid = server.create(disk="64Mi")
        server.sh(sid, "echo data > /workspace/f")
        init = wh.sandbox_init_pid(sid)
        assert init, "no warren-init process found on the host for the sandbox"
        sdir = os.path.join(server.data_dir, "sandboxes", sid)
        assert os.path.isdir(sdir)
        r = server.delete_path(f"/api/v1/sandbox/{sid}")
        assert r.status_code == 200
        assert r.json() == {"sandbox_id": sid, "deleted": True}
        server.created.pop(sid, None)
        assert_error(server.get(f"/api/v1/sandbox/{sid}"), 404, "not_found")
        assert_error(server.get(f"/api/v1/sandbox/{sid}/status"), 404, "not_found")
        assert_error(server.exec_raw(sid, "true"), 404, "not_found")
        assert_error(server.delete_path(f"/api/v1/sandbox/{sid}"), 404, "not_found")
        lst = server.get("/api/v1/sandboxes", params={"limit": 1000}).json()
        assert sid not in [s["sandbox_id"] for s in lst["sandboxes"]]
        # teardown may finish in the background, but it must finish
        wh.wait_until(lambda: not os.path.exists(sdir), 10, what=f"{sdir} to be removed")
        wh.wait_until(lambda: not wh.sandbox_host_pids(sid), 10, what="sandbox processes gone")
        wh.wait_until(lambda: not wh.sandbox_cgroup_dirs(sid), 10, what="sandbox cgroups gone")
        wh.wait_until(lambda: not wh.host_mounts_mentioning(sid), 10,
                      what="sandbox mounts gone from the host mount table")
        assert not os.path.exists(f"/proc/{init[0]}") or wh.proc_starttime(init[0]) != init[1]


@pytest.mark.parametrize("field,value", [
        ("cpus", "abc"),
        ("cpus", "5m"),
        ("cpus", "65"),
        ("cpus", "-1"),
        ("memory", "12Zi"),
        ("memory", "8Mi"),
        ("memory", "512Ti"),
        ("memory", ""),
        ("disk", "1Mi"),
        ("disk", "lots"),
        ("timeout_seconds", 0),
        ("timeout_seconds", -5),
        ("timeout_seconds", 100000),
        ("isolation", "gvisor"),
        ("isolation", "microvm"),
        ("network", "bridge"),
        ("template", "nope"),
        ("template", "../../etc"),
        ("env", "A=1"),
        ("env", ["A=1"]),
        ("env", {"A": {"nested": 1}}),
        ("env", {"": "x"}),
        ("env", {"A=B": "x"}),
        ("cpus", [1]),
        ("memory", {"a": 1}),
        ("timeout_seconds", "sixty"),
        ("template", 5),
        ("isolation", True),
])
def test_create_validation(server, field, value):
        r = server.create_raw(**{field: value})
        assert_error(r, 400, ("invalid_request", "invalid_json"), mentions=field)


def test_create_body_not_an_object(server):
        for body in (b"[1,2]", b"\"x\"", b"42", b"null"):
                r = server.post("/api/v1/sandbox/create", data=body,
                                headers={"Content-Type": "application/json"})
                assert_error(r, 400, ("invalid_request", "invalid_json"))


def test_malformed_json(server):
        for body in (b"{\"cpus\": ", b"{cpus: 1}", b"{\"cpus\": \"1\",}", b"\xff\xfe{}",
                     b"{\"env\": {\"A\": \"\xc3\x28\"}}", b"[" * 100000):
                r = server.post("/api/v1/sandbox/create", data=body,
                                headers={"Content-Type": "application/json"})
                assert_error(r, 400, ("invalid_json", "invalid_request"))
        lst = server.get("/api/v1/sandboxes", params={"limit": 1000}).json()
        assert all(s["sandbox_id"] in server.created for s in lst["sandboxes"]
                   if s["status"] != "stopped"), "a malformed request created a sandbox"


def test_body_over_limit_is_413(server):
        """A 70 MB body (MAX_BODY is 64 MiB): 413, without the server buffering it all."""
        total = 70 * 1000 * 1000
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        resp = b""
        try:
                s.sendall((f"POST /api/v1/sandbox/create HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: ApiKey {server.api_key}\r\n"
                           f"Content-Type: application/json\r\n"
                           f"Content-Length: {total}\r\n\r\n").encode())
                chunk = b" " * (1 << 20)
                sent = 0
                deadline = time.monotonic() + 40
                while sent < total and time.monotonic() < deadline:
                        readable, _, _ = select.select([s], [], [], 0)
                        if readable:
                                break
                        n = min(len(chunk), total - sent)
                        try:
                                s.sendall(chunk[:n])
                        except (BrokenPipeError, ConnectionResetError, socket.timeout):
                                break
                        sent += n
                while not wh._response_complete(resp) and time.monotonic() < deadline:
                        try:
                                c = s.recv(65536)
                        except (socket.timeout, ConnectionResetError):
                                break
                        if not c:
                                break
                        resp += c
        finally:
                s.close()
        assert resp, "no response to an oversized body"
        status, hdrs, body = wh.parse_raw_response(resp)
        assert status == 413, resp[:300]
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        assert server.get("/health", auth=False).status_code == 200


def test_auth_required(server, sandbox):
        routes = [("GET", "/api/v1/sandboxes"), ("POST", "/api/v1/sandbox/create"),
                  ("GET", f"/api/v1/sandbox/{sandbox}"),
                  ("GET", f"/api/v1/sandbox/{sandbox}/status"),
                  ("POST", f"/api/v1/sandbox/{sandbox}/execute"),
                  ("POST", f"/api/v1/sandbox/{sandbox}/stop"),
                  ("DELETE", f"/api/v1/sandbox/{sandbox}"),
                  ("GET", f"/api/v1/sandbox/{sandbox}/files?path=/etc/hostname"),
                  ("GET", "/api/v1/templates")]
        bad_headers = [{}, {"Authorization": "ApiKey "},
                       {"Authorization": f"ApiKey {server.api_key}x"},
                       {"Authorization": f"ApiKey {server.api_key[:-1]}"},
                       {"Authorization": "ApiKey wk_" + "0" * 48},
                       {"Authorization": f"Basic {server.api_key}"},
                       {"Authorization": server.api_key}]
        for method, path in routes:
                for h in bad_headers:
                        r = server.request(method, path, auth=False, headers=h,
                                           json={"command": "touch /workspace/pwned"})
                        assert_error(r, 401, "unauthorized")
        # nothing above had an effect
        assert server.status(sandbox) == "running"
        assert server.exec(sandbox, "test -e /workspace/pwned")["exit_code"] == 1
        # both documented schemes work
        for scheme in ("ApiKey", "Bearer"):
                r = server.get(f"/api/v1/sandbox/{sandbox}", auth=False,
                               headers={"Authorization": f"{scheme} {server.api_key}"})
                assert r.status_code == 200


def _normalised(resp, sid):
        return resp.status_code, resp.text.replace(sid, "ID")


def test_other_org_sees_404_identical_to_missing(server, sandbox, other_org):
        key = other_org["api_key"]
        missing = "sandbox-" + "0" * 12
        server.write_file(sandbox, "/workspace/keep", b"mine")
        routes = [("GET", "/api/v1/sandbox/{}", None),
                  ("GET", "/api/v1/sandbox/{}/status", None),
                  ("POST", "/api/v1/sandbox/{}/execute", {"command": "touch /workspace/x"}),
                  ("POST", "/api/v1/sandbox/{}/stop", None),
                  ("GET", "/api/v1/sandbox/{}/files?path=/etc/hostname", None),
                  ("POST", "/api/v1/sandbox/{}/files",
                   {"files": [{"path": "/workspace/x", "content": "eA=="}]}),
                  ("GET", "/api/v1/sandbox/{}/files/list?path=/", None),
                  ("GET", "/api/v1/sandbox/{}/files/download?path=/etc/hostname", None),
                  ("GET", "/api/v1/sandbox/{}/files/stat?path=/etc/hostname", None),
                  ("GET", "/api/v1/sandbox/{}/files/exists?path=/etc/hostname", None),
                  ("PUT", "/api/v1/sandbox/{}/files/upload?path=/workspace/x", None),
                  ("POST", "/api/v1/sandbox/{}/files/mkdir", {"path": "/workspace/x"}),
                  ("POST", "/api/v1/sandbox/{}/files/remove", {"path": "/workspace/keep"}),
                  ("POST", "/api/v1/sandbox/{}/files/move", {"from": "/workspace/keep",
                                                               "to": "/workspace/x"}),
                  ("DELETE", "/api/v1/sandbox/{}", None)]
        for method, path, body in routes:
                r_other = server.request(method, path.format(sandbox), key=key, json=body)
                r_missing = server.request(method, path.format(missing), key=key, json=body)
                assert_error(r_other, 404, "not_found")
                assert_error(r_missing, 404, "not_found")
                assert _normalised(r_other, sandbox) == _normalised(r_missing, missing), \
                        f"{method} {path}: another org's sandbox answers differently from a " \
                        f"missing one: {r_other.text!r} vs {r_missing.text!r}"
        # and none of it touched the sandbox
        assert server.status(sandbox) == "running"
        assert server.exec(sandbox, "test -e /workspace/x")["exit_code"] == 1
        assert server.read_file(sandbox, "/workspace/keep") == b"mine"
        lst = server.get("/api/v1/sandboxes", key=key, params={"limit": 1000}).json()
        assert sandbox not in [s["sandbox_id"] for s in lst["sandboxes"]]


def test_unknown_route_and_method(server):
        assert_error(server.get("/api/v1/nope"), 404, "not_found")
        assert_error(server.get("/api/v1/sandbox/create"), 405, "method_not_allowed")
        assert_error(server.request("PATCH", "/api/v1/sandboxes"), 405, "method_not_allowed")


def test_templates(server):
        r = server.get("/api/v1/templates")
        assert r.status_code == 200
        names = [t["name"] for t in r.json()["templates"]]
        assert "base" in names
        base = next(t for t in r.json()["templates"] if t["name"] == "base")
        assert base["description"] and parse_time(base["created_at"])


def test_quota_per_org(server, new_org):
        org = new_org()
        key = org["api_key"]
        ids = []
        try:
                r = None
                for _ in range(60):
                        r = server.create_raw(as_key=key, disk="64Mi", memory="64Mi")
                        if r.status_code != 201:
                                break
                        ids.append(r.json()["sandbox_id"])
                assert_error(r, 429, "quota_exceeded")
                assert len(ids) == 50, f"quota should be MAX_SANDBOXES_PER_ORG=50, got {len(ids)}"
                # the quota is per organisation: the admin org can still create
                other = server.create(disk="64Mi")
                server.delete(other)
                # stopped sandboxes do not count
                server.stop_sandbox(ids[0], as_key=key)
                r = server.create_raw(as_key=key, disk="64Mi", memory="64Mi")
                assert r.status_code == 201, r.text
                ids.append(r.json()["sandbox_id"])
                assert_error(server.create_raw(as_key=key, disk="64Mi"), 429, "quota_exceeded")
        finally:
                for sid in ids:
                        server.delete(sid, as_key=key)


def test_cpus_as_a_json_number(server):
        """cpus may be a number as well as a string: 0.5 is "500m"; a negative one is refused."""
        r = server.post("/api/v1/sandbox/create", json={"cpus": 0.5, "memory": "128Mi",
                                                        "disk": "64Mi"})
        assert r.status_code == 201, r.text
        sid = r.json()["sandbox_id"]
        server.created[sid] = server.api_key
        assert r.json()["cpus"] == "500m"
        server.delete(sid)
        r = server.post("/api/v1/sandbox/create", json={"cpus": -1})
        assert_error(r, 400, mentions="cpus")
