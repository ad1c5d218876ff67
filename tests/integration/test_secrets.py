"""Secrets (bring your own keys): /api/v1/secrets, sealed at rest, injected into commands.

A canary value must reach the environment of commands in sandboxes of its organisation (and
only those, and only the chosen ones), and nowhere else: not in any answer (the tests compare
sha256 digests computed inside the sandbox, so not even an exec answer carries it), not in the
daemon's log, not in the SQLite files (-wal, -shm included), not in `ps` output nor in
/proc/PID/environ of the daemon or of a sandbox's init. The at-rest format is checked against
another AES-GCM implementation (Python's cryptography), and a daemon started with another
master key refuses to run commands that need the secrets, with a clear error.
"""
import base64
import glob
import hashlib
import os
import secrets as pysecrets
import sqlite3
import subprocess

import pytest
import requests

import warren_harness as wh
from warren_harness import assert_error

SMALL = {"cpus": "250m", "memory": "128Mi", "disk": "64Mi"}


def canary():
        return "CANARY-" + pysecrets.token_hex(16)


def sha(value):
        return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def answers(monkeypatch):
        """Every HTTP answer the test receives through the harness: (status, headers, body)."""
        seen = []
        real = requests.request

        def recording(*a, **kw):
                r = real(*a, **kw)
                seen.append((r.status_code, dict(r.headers), r.content))
                return r
        monkeypatch.setattr(requests, "request", recording)
        return seen


def env_digest(server, sid, name, as_key=None, **kw):
        """sha256 of $name in a command of the sandbox, or "UNSET"; the value never travels."""
        script = (f'if printenv {name} >/dev/null; then printf %s "${name}" | sha256sum; '
                  f'else echo UNSET; fi')
        out = server.sh(sid, script, as_key=as_key, **kw).strip()
        return out.split()[0]


def put_secret(server, name, value, key=None, status=(200, 201)):
        r = server.post("/api/v1/secrets", key=key, json={"name": name, "value": value})
        assert r.status_code in ((status,) if isinstance(status, int) else status), r.text
        return r


def assert_nowhere(server, values, answers=None, extra_pids=()):
        """None of values in the log, the answers, the SQLite files, ps, or the environ of the
        daemon and of extra_pids."""
        for v in values:
                b = v.encode()
                log = wh._read(server.log_path, "rb") or b""
                assert b not in log, "a secret value is in the daemon's log"
                for status, headers, body in answers or ():
                        assert b not in body, f"a secret value is in an answer ({status})"
                        assert v not in repr(headers), "a secret value is in answer headers"
                files = glob.glob(os.path.join(server.data_dir, "warren.db*"))
                assert any(f.endswith("warren.db") for f in files), files
                for f in files:
                        with open(f, "rb") as fh:
                                assert b not in fh.read(), f"a secret value is in {f}"
                ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, timeout=30)
                assert b not in ps.stdout, "a secret value is in ps output"
                for pid in (server.proc.pid, *extra_pids):
                        env = wh._read(f"/proc/{pid}/environ", "rb")
                        assert env is not None, f"cannot read /proc/{pid}/environ"
                        assert b not in env, f"a secret value is in /proc/{pid}/environ"
                        cmd = wh._read(f"/proc/{pid}/cmdline", "rb") or b""
                        assert b not in cmd


def test_crud_never_returns_values(server, answers):
        name = "CRUD_" + pysecrets.token_hex(4).upper()
        v1, v2, v3 = canary(), canary(), canary()
        r = put_secret(server, name, v1, status=201)
        body = r.json()
        assert body["name"] == name and set(body) == {"name", "created_at", "updated_at"}
        wh.parse_time(body["created_at"])
        assert body["created_at"] == body["updated_at"]
        # POST on an existing name replaces it: 200, created_at kept
        r2 = put_secret(server, name, v2, status=200)
        assert r2.json()["created_at"] == body["created_at"]
        assert r2.json()["updated_at"] >= body["updated_at"]
        # PUT /secrets/NAME does the same
        r3 = server.put(f"/api/v1/secrets/{name}", json={"value": v3})
        assert r3.status_code == 200, r3.text
        lst = server.get("/api/v1/secrets")
        assert lst.status_code == 200
        mine = [s for s in lst.json()["secrets"] if s["name"] == name]
        assert len(mine) == 1 and set(mine[0]) == {"name", "created_at", "updated_at"}
        assert lst.json()["total"] == len(lst.json()["secrets"])
        one = server.get(f"/api/v1/secrets/{name}")
        assert one.status_code == 200 and one.json()["name"] == name
        assert server.delete_path(f"/api/v1/secrets/{name}").json() == \
                {"name": name, "deleted": True}
        assert_error(server.delete_path(f"/api/v1/secrets/{name}"), 404, "not_found")
        assert_error(server.get(f"/api/v1/secrets/{name}"), 404, "not_found")
        assert_error(server.request("PATCH", "/api/v1/secrets"), 405)
        assert_error(server.get("/api/v1/secrets/A/B"), 404)
        assert_nowhere(server, [v1, v2, v3], answers)


def test_validation(server, answers):
        v = canary()
        for bad in ("", "1ABC", "A-B", "A B", "A=B", "N" * 129):
                assert_error(server.post("/api/v1/secrets", json={"name": bad, "value": v}), 400,
                             "invalid_request", mentions="name")
        assert_error(server.post("/api/v1/secrets", json={"value": v}), 400, mentions="name")
        assert_error(server.post("/api/v1/secrets", json={"name": "OK", "value": 5}), 400,
                     mentions="value")
        assert_error(server.post("/api/v1/secrets", json={"name": "OK"}), 400, mentions="value")
        # (the JSON parser already refuses \u0000 in strings)
        assert_error(server.post("/api/v1/secrets", json={"name": "OK", "value": "a\u0000b"}),
                     400)
        assert_error(server.post("/api/v1/secrets",
                                 json={"name": "OK", "value": "x" * (64 * 1024 + 1)}),
                     413, "payload_too_large")
        # a malformed body is refused without quoting any of it back
        r = server.post("/api/v1/secrets", data='{"name": "OK", "value": "' + v + '" oops}',
                        headers={"Content-Type": "application/json"})
        assert_error(r, 400, "invalid_json")
        assert_error(server.post("/api/v1/secrets", data="[]"), 400, "invalid_json")
        assert_error(server.get("/api/v1/secrets", auth=False), 401)
        # a create naming secrets checks them
        assert_error(server.create_raw(secrets="A"), 400, mentions="secrets")
        assert_error(server.create_raw(secrets=["NO_SUCH_SECRET_X"]), 400,
                     mentions="NO_SUCH_SECRET_X")
        assert_error(server.create_raw(secrets=["bad-name"]), 400, mentions="secrets[0]")
        put_secret(server, "DUP_CHECK", "x")
        assert_error(server.create_raw(secrets=["DUP_CHECK", "DUP_CHECK"]), 400,
                     mentions="twice")
        server.delete_path("/api/v1/secrets/DUP_CHECK")
        assert_nowhere(server, [v], answers)


def test_limit_per_organisation(server, new_org):
        key = new_org()["api_key"]
        for i in range(100):
                put_secret(server, f"S{i:03d}", "v", key=key, status=201)
        assert_error(server.post("/api/v1/secrets", key=key, json={"name": "ONE_MORE",
                                                                    "value": "v"}),
                     409, "too_many_secrets")
        # replacing at the limit is fine; another organisation has its own count
        put_secret(server, "S000", "w", key=key, status=200)
        assert server.get("/api/v1/secrets", key=key).json()["total"] == 100
        put_secret(server, "ONE_MORE", "v", status=(200, 201))
        server.delete_path("/api/v1/secrets/ONE_MORE")


def test_injection_choice_precedence_and_scoping(server, new_org, answers):
        a, b = new_org(), new_org()
        ka, kb = a["api_key"], b["api_key"]
        va, vb, vother = canary(), canary(), canary()
        put_secret(server, "A_TOKEN", va, key=ka)
        put_secret(server, "B_TOKEN", vb, key=ka)
        put_secret(server, "A_TOKEN", vother, key=kb)  # same name, other org, other value
        everything = server.create(as_key=ka, **SMALL)
        chosen = server.create(as_key=ka, secrets=["A_TOKEN"], **SMALL)
        nothing = server.create(as_key=ka, secrets=[], **SMALL)
        with_env = server.create(as_key=ka, env={"B_TOKEN": "from-sandbox-env"}, **SMALL)
        other = server.create(as_key=kb, **SMALL)
        try:
                assert env_digest(server, everything, "A_TOKEN", as_key=ka) == sha(va)
                assert env_digest(server, everything, "B_TOKEN", as_key=ka) == sha(vb)
                assert env_digest(server, chosen, "A_TOKEN", as_key=ka) == sha(va)
                assert env_digest(server, chosen, "B_TOKEN", as_key=ka) == "UNSET"
                assert env_digest(server, nothing, "A_TOKEN", as_key=ka) == "UNSET"
                assert env_digest(server, nothing, "B_TOKEN", as_key=ka) == "UNSET"
                # the other organisation's sandbox gets its own value, never ours
                assert env_digest(server, other, "A_TOKEN", as_key=kb) == sha(vother)
                assert env_digest(server, other, "B_TOKEN", as_key=kb) == "UNSET"
                # precedence: request env > sandbox env > secrets; root commands get them too
                assert env_digest(server, with_env, "B_TOKEN", as_key=ka) == \
                        sha("from-sandbox-env")
                assert env_digest(server, with_env, "A_TOKEN", as_key=ka, user="root") == sha(va)
                assert env_digest(server, everything, "A_TOKEN", as_key=ka,
                                  env={"A_TOKEN": "from-request"}) == sha("from-request")
                # run-code and streamed execute get them as well
                r = server.post(f"/api/v1/sandbox/{everything}/run-code", key=ka,
                                json={"language": "bash",
                                      "code": 'printf %s "$B_TOKEN" | sha256sum'})
                assert r.status_code == 200 and r.json()["stdout"].split()[0] == sha(vb), r.text
                r = server.post(f"/api/v1/sandbox/{chosen}/execute", key=ka,
                                json={"command": 'printf %s "$A_TOKEN" | sha256sum',
                                      "stream": True})
                assert r.status_code == 200 and sha(va) in r.text, r.text
                # a new value is seen by the next command; a deleted secret is gone from it
                va2 = canary()
                put_secret(server, "A_TOKEN", va2, key=ka, status=200)
                assert env_digest(server, chosen, "A_TOKEN", as_key=ka) == sha(va2)
                assert server.delete_path("/api/v1/secrets/B_TOKEN", key=ka).status_code == 200
                assert env_digest(server, everything, "B_TOKEN", as_key=ka) == "UNSET"
                # a secret added after the sandbox was made reaches sandboxes that take all
                vc = canary()
                put_secret(server, "C_TOKEN", vc, key=ka, status=201)
                assert env_digest(server, everything, "C_TOKEN", as_key=ka) == sha(vc)
                assert env_digest(server, chosen, "C_TOKEN", as_key=ka) == "UNSET"
                # sandboxes' own records and env never hold them
                info = server.info(everything, as_key=ka)
                assert "A_TOKEN" not in str(info) and "secrets" not in info
                inits = [p for p in (wh.sandbox_init_pid(s) for s in (everything, chosen)) if p]
                assert inits, "no sandbox init found on the host"
                assert_nowhere(server, [va, vb, vother, va2, vc], answers,
                               extra_pids=[p for p, _ in inits])
                # the key file: made at first start, 0600, never in the data the API serves
                st = os.stat(os.path.join(server.data_dir, "master.key"))
                assert st.st_mode & 0o777 == 0o600 and st.st_size == 65
        finally:
                for sid, key in ((everything, ka), (chosen, ka), (nothing, ka), (with_env, ka),
                                 (other, kb)):
                        server.delete(sid, as_key=key)


def gcm_open(key, nonce, org_id, name, ct):
        """Decrypt a stored row with Python's AES-GCM and the documented associated data."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        ad = b"warren-secret-v1\0" + org_id.encode() + b"\0" + name.encode()
        return AESGCM(key).decrypt(nonce, ct, ad)


def test_master_key_from_env_and_a_wrong_key(daemons):
        k1, k2 = os.urandom(32), os.urandom(32)
        srv = daemons.start({"WARREN_MASTER_KEY": k1.hex()}, name="secrets-key")
        # the key is wiped from the daemon's environment and no key file is made
        environ = wh._read(f"/proc/{srv.proc.pid}/environ", "rb")
        assert k1.hex().encode() not in environ and b"WARREN_MASTER_KEY" not in environ
        assert not os.path.exists(os.path.join(srv.data_dir, "master.key"))
        v = canary()
        put_secret(srv, "DB_PASSWORD", v, status=201)
        sid = srv.create(**SMALL)
        plain = srv.create(secrets=[], **SMALL)
        assert env_digest(srv, sid, "DB_PASSWORD") == sha(v)

        # another implementation of AES-256-GCM opens the row with the documented binding
        org_id = srv.info(sid)["org_id"]
        db = sqlite3.connect(f"file:{srv.data_dir}/warren.db?mode=ro", uri=True, timeout=10)
        try:
                row = db.execute("SELECT org_id, nonce, ciphertext FROM secrets"
                                 " WHERE name = 'DB_PASSWORD'").fetchone()
        finally:
                db.close()
        assert row[0] == org_id and len(row[1]) == 12 and len(row[2]) == len(v) + 16
        assert gcm_open(k1, row[1], org_id, "DB_PASSWORD", row[2]) == v.encode()
        with pytest.raises(Exception):
                gcm_open(k1, row[1], org_id + "x", "DB_PASSWORD", row[2])

        # restarted with another key: a clear message in the log, and commands that need the
        # secret are refused with secret_unavailable (never run with garbage or without it)
        srv.env["WARREN_MASTER_KEY"] = base64.b64encode(k2).decode()
        srv.restart(kill9=False)
        assert "sealed under another master key" in srv.log_tail(20000)
        r = srv.exec_raw(sid, "echo should-not-run")
        assert_error(r, 500, "secret_unavailable", mentions="master key")
        assert "should-not-run" not in r.text
        # sandboxes that take no secrets are unaffected; names are still listed
        assert srv.sh(plain, "echo ok").strip() == "ok"
        assert [s["name"] for s in srv.get("/api/v1/secrets").json()["secrets"]] == \
                ["DB_PASSWORD"]
        # a value written now is sealed under the new key, the old one can be replaced
        v2 = canary()
        put_secret(srv, "DB_PASSWORD", v2, status=200)
        assert env_digest(srv, sid, "DB_PASSWORD") == sha(v2)
        assert_nowhere(srv, [v, v2])
        srv.delete(sid)
        srv.delete(plain)


def test_a_bad_master_key_stops_the_start(daemons, tmp_path):
        srv = wh.Server(wh.bin_dir(), str(tmp_path), env={"WARREN_MASTER_KEY": "not-a-key"},
                        name="badkey")
        with pytest.raises(RuntimeError, match="WARREN_MASTER_KEY must be"):
                srv.start(timeout=20)
        srv.stop()
        # a key file others can read is refused too
        srv2 = wh.Server(wh.bin_dir(), str(tmp_path / "two"), name="loosekey")
        keyfile = os.path.join(srv2.data_dir, "master.key")
        with open(keyfile, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        os.chmod(keyfile, 0o644)
        with pytest.raises(RuntimeError, match="chmod 600"):
                srv2.start(timeout=20)
        srv2.stop()


def test_warm_pool_sandboxes_get_the_chosen_secrets(daemons):
        env = {"WARM_POOL_ENABLED": "true", "WARM_POOL_SIZE": "2", "DEFAULT_CPUS": "250m",
               "DEFAULT_MEMORY": "128Mi", "DEFAULT_DISK": "64Mi"}
        srv = daemons.start(env, name="secrets-pool")
        v1, v2 = canary(), canary()
        put_secret(srv, "ONE", v1, status=201)
        put_secret(srv, "TWO", v2, status=201)
        srv.create()  # registers the default class with the pool
        wh.wait_pool_settled(srv)
        r = srv.create_raw(secrets=["TWO"])
        assert r.status_code == 201 and r.json()["startup_metrics"]["pool_hit"], r.text
        sid = r.json()["sandbox_id"]
        assert env_digest(srv, sid, "ONE") == "UNSET"
        assert env_digest(srv, sid, "TWO") == sha(v2)
        wh.wait_pool_settled(srv)
        r = srv.create_raw()
        assert r.status_code == 201 and r.json()["startup_metrics"]["pool_hit"], r.text
        sid2 = r.json()["sandbox_id"]
        assert env_digest(srv, sid2, "ONE") == sha(v1)
        assert env_digest(srv, sid2, "TWO") == sha(v2)
        assert_nowhere(srv, [v1, v2])
