"""Identity and credentials against a real daemon: registration in its three modes, API key
create / list / revoke / rotate, JWT exchange and refusal of forged or expired JWTs, session
tokens (scope, expiry, last use, no self-management) and magic links (once, cookie, no open
redirect). The permission matrix over every route is tests/security/test_auth_matrix.py."""
import os
import secrets
import stat
import subprocess
import tempfile
import time

import pytest
import requests

import warren_harness as wh
from warren_harness import assert_error, bearer

MISSING_SID = "sandbox-000000000000"


def reg_body(**over):
        b = {"first_name": "Commerce", "last_name": "Agent",
             "organization_name": "My AI Company " + secrets.token_hex(3),
             "email": f"agent-{secrets.token_hex(4)}@example.com"}
        b.update(over)
        return b


def operator_ids(server):
        """(org id, admin key id) of the operator's organisation (the session server's key)."""
        r = server.get("/api/v1/orgs")
        assert r.status_code == 200, r.text
        org = [o for o in r.json()["orgs"] if o["system"]]
        assert len(org) == 1, r.json()
        return org[0]["id"], wh.key_id_of(server, server.api_key)


# ---- registration ----

def test_register_admin_only_is_the_default(server, other_org):
        body = reg_body()
        # No credential, a tenant's admin key, a member key: refused.
        assert_error(server.post("/api/v1/register", auth=False, json=body), 401, "unauthorized",
                     mentions="admin-only")
        assert_error(server.post("/api/v1/register", key=other_org["api_key"], json=body), 403,
                     "forbidden")
        member = wh.create_key(server, "member")
        assert_error(server.post("/api/v1/register", key=member["key"], json=body), 403,
                     "forbidden")
        # The operator's admin key registers, exactly in the StateSet shape.
        r = server.post("/api/v1/register", json=body)
        assert r.status_code == 201, r.text
        out = r.json()
        assert set(out) == {"success", "user", "organization", "api_key", "message"}, out
        assert out["success"] is True
        assert set(out["user"]) == {"id", "email"} and out["user"]["email"] == body["email"]
        assert out["user"]["id"].startswith("user_")
        assert set(out["organization"]) == {"id", "name"}
        assert out["organization"]["name"] == body["organization_name"]
        assert out["message"] == "Registration successful. Store your API key securely."
        key = out["api_key"]
        assert key.startswith("wk_") and len(key) == 46
        # The key works, for a new and empty organisation, as its admin.
        r = server.get("/api/v1/sandboxes", key=key)
        assert r.status_code == 200 and r.json()["sandboxes"] == [], r.text
        keys = server.get("/api/v1/api-keys", key=key)
        assert keys.status_code == 200, keys.text
        [k] = keys.json()["api_keys"]
        assert k["role"] == "admin" and k["prefix"] == key[:10]
        assert key not in keys.text
        orgs = server.get("/api/v1/orgs").json()["orgs"]
        assert any(o["id"] == out["organization"]["id"] and not o["system"] for o in orgs)
        # The same email again (any case): 409; and the response never repeats a key.
        r = server.post("/api/v1/register", json=reg_body(email=body["email"].upper()))
        assert_error(r, 409, "already_exists", mentions="email")
        # Invalid input names the field.
        for bad, field in ((reg_body(email="not-an-email"), "email"),
                           (reg_body(email="a@b@c.com"), "email"),
                           (reg_body(email="a b@c.com"), "email"),
                           (reg_body(first_name=""), "first_name"),
                           (reg_body(last_name="x" * 101), "last_name"),
                           (reg_body(organization_name=5), "organization_name"),
                           (reg_body(first_name="a\nb"), "first_name")):
                assert_error(server.post("/api/v1/register", json=bad), 400, "invalid_request",
                             mentions=field)
        missing = reg_body()
        del missing["email"]
        assert_error(server.post("/api/v1/register", json=missing), 400, mentions="email")
        assert_error(server.get("/api/v1/register"), 405)


def test_register_open(daemons):
        srv = daemons.start(env={"REGISTRATION": "open"}, name="reg-open")
        r = srv.post("/api/v1/register", auth=False, json=reg_body())
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        assert srv.get("/api/v1/sandboxes", key=key).status_code == 200
        # Open does not mean any credential goes: a bad one is still refused.
        assert_error(srv.post("/api/v1/register", key="wk_" + "x" * 43, json=reg_body()), 401)
        # A registered org is not the operator's.
        assert_error(srv.get("/api/v1/orgs", key=key), 403)


def test_register_closed(daemons):
        srv = daemons.start(env={"REGISTRATION": "closed"}, name="reg-closed")
        assert_error(srv.post("/api/v1/register", auth=False, json=reg_body()), 403,
                     "registration_closed")
        # Even the operator's admin key.
        assert_error(srv.post("/api/v1/register", json=reg_body()), 403, "registration_closed")


def test_bad_registration_mode_refuses_to_start(server):
        with tempfile.TemporaryDirectory() as d:
                env = dict(server._env(), REGISTRATION="sometimes")
                p = subprocess.run([os.path.join(server.bin_dir, "warrend"), "--data-dir", d,
                                    "--listen", "127.0.0.1:0"], env=env, capture_output=True,
                                   text=True, timeout=30)
                assert p.returncode == 2, (p.returncode, p.stderr)
                assert "REGISTRATION must be open, admin-only or closed" in p.stderr


# ---- API keys ----

def test_api_keys_create_list_revoke(server, other_org):
        k = wh.create_key(server, "member", name="ci runner")
        assert set(k) >= {"id", "name", "key", "prefix", "created_at", "role"}, k
        assert k["name"] == "ci runner" and k["role"] == "member"
        assert k["key"].startswith("wk_") and len(k["key"]) == 46
        assert k["prefix"] == k["key"][:10]
        wh.parse_time(k["created_at"])
        # Listed by prefix only: the secret is never shown again.
        r = server.get("/api/v1/api-keys")
        assert r.status_code == 200
        listed = {x["id"]: x for x in r.json()["api_keys"]}
        assert listed[k["id"]]["prefix"] == k["prefix"] and "key" not in listed[k["id"]]
        assert k["key"] not in r.text and server.api_key not in r.text
        # A member uses sandboxes but manages no keys.
        assert server.get("/api/v1/sandboxes", key=k["key"]).status_code == 200
        assert_error(server.get("/api/v1/api-keys", key=k["key"]), 403, "forbidden")
        assert_error(server.post("/api/v1/api-keys", key=k["key"], json={}), 403)
        assert_error(server.delete_path(f"/api/v1/api-keys/{k['id']}", key=k["key"]), 403)
        # Another organisation's admin cannot see or revoke our key: 404 like a missing one.
        other = server.delete_path(f"/api/v1/api-keys/{k['id']}", key=other_org["api_key"])
        missing = server.delete_path("/api/v1/api-keys/key_000000000000000000000000",
                                     key=other_org["api_key"])
        assert other.status_code == missing.status_code == 404
        assert other.json() == missing.json()
        assert k["id"] not in server.get("/api/v1/api-keys", key=other_org["api_key"]).text
        # Revoked: refused at once, and only once.
        r = server.delete_path(f"/api/v1/api-keys/{k['id']}")
        assert r.status_code == 200 and r.json() == {"id": k["id"], "revoked": True}, r.text
        assert_error(server.get("/api/v1/sandboxes", key=k["key"]), 401, "unauthorized")
        assert_error(server.delete_path(f"/api/v1/api-keys/{k['id']}"), 404)
        assert k["id"] not in server.get("/api/v1/api-keys").text
        # Bad input.
        assert_error(server.post("/api/v1/api-keys", json={"role": "owner"}), 400, mentions="role")
        assert_error(server.post("/api/v1/api-keys", json={"name": ""}), 400, mentions="name")
        assert_error(server.post("/api/v1/api-keys", json={"name": "x" * 101}), 400)
        assert_error(server.put("/api/v1/api-keys"), 405)


def test_last_admin_key_cannot_be_revoked(server, new_org):
        org = new_org()
        kid = wh.key_id_of(server, org["api_key"])
        assert_error(server.delete_path(f"/api/v1/api-keys/{kid}", key=org["api_key"]), 409,
                     "conflict", mentions="last admin key")
        # With a second admin key it can go, even by itself.
        second = wh.create_key(server, "admin", as_key=org["api_key"])
        r = server.delete_path(f"/api/v1/api-keys/{kid}", key=org["api_key"])
        assert r.status_code == 200, r.text
        assert_error(server.get("/api/v1/sandboxes", key=org["api_key"]), 401)
        assert server.get("/api/v1/api-keys", key=second["key"]).status_code == 200


def test_rotate(server, new_org):
        org = new_org()
        k1 = wh.create_key(server, "admin", name="rotating", as_key=org["api_key"])
        jwt1 = wh.mint_jwt(server, key=k1["key"])
        assert server.get("/api/v1/sandboxes", key=None, auth=False,
                          headers=bearer(jwt1)).status_code == 200
        r = server.post(f"/api/v1/api-keys/{k1['id']}/rotate", key=org["api_key"])
        assert r.status_code == 200, r.text
        k2 = r.json()
        assert set(k2) >= {"id", "name", "key", "prefix", "created_at"}
        assert k2["id"] != k1["id"] and k2["key"] != k1["key"]
        assert k2["name"] == "rotating" and k2["role"] == "admin" and k2["replaces"] == k1["id"]
        assert k2["prefix"] == k2["key"][:10]
        # The old key and every JWT minted from it are refused at once; the new key works.
        assert_error(server.get("/api/v1/sandboxes", key=k1["key"]), 401)
        assert_error(server.get("/api/v1/sandboxes", auth=False, headers=bearer(jwt1)), 401)
        assert server.get("/api/v1/sandboxes", key=k2["key"]).status_code == 200
        assert_error(server.post(f"/api/v1/api-keys/{k1['id']}/rotate", key=org["api_key"]), 404)
        # A key may rotate itself (the usual way to change a key).
        r = server.post(f"/api/v1/api-keys/{k2['id']}/rotate", key=k2["key"])
        assert r.status_code == 200, r.text
        assert_error(server.get("/api/v1/sandboxes", key=k2["key"]), 401)
        assert server.get("/api/v1/sandboxes", key=r.json()["key"]).status_code == 200
        assert_error(server.get(f"/api/v1/api-keys/{k1['id']}/rotate", key=org["api_key"]), 405)


# ---- JWTs ----

def test_jwt_exchange_and_use(server, new_org):
        org = new_org()
        sid = server.create(as_key=org["api_key"])
        r = server.post("/api/v1/auth/token", key=org["api_key"])
        assert r.status_code == 200, r.text
        out = r.json()
        tok = out["token"]
        assert tok.count(".") == 2 and out["token_type"] == "Bearer"
        left = (wh.parse_time(out["expires_at"]).timestamp() - time.time())
        assert 3500 < left <= 3601, out
        assert server.get(f"/api/v1/sandbox/{sid}", auth=False,
                          headers=bearer(tok)).json()["sandbox_id"] == sid
        res = server.post(f"/api/v1/sandbox/{sid}/execute", auth=False, headers=bearer(tok),
                          json={"command": "echo jwt"})
        assert res.status_code == 200 and res.json()["stdout"] == "jwt\n", res.text
        # Another org's sandbox stays invisible to it.
        assert_error(server.get(f"/api/v1/sandbox/{sid}"), 404)
        # Shorter lifetimes on request, bounded by JWT_TTL; a JWT cannot mint another.
        short = server.post("/api/v1/auth/token", key=org["api_key"], json={"expires_in": 120})
        assert short.status_code == 200
        left = wh.parse_time(short.json()["expires_at"]).timestamp() - time.time()
        assert 60 < left <= 121
        for bad in (59, 3601, "60", 1.5):
                assert_error(server.post("/api/v1/auth/token", key=org["api_key"],
                                         json={"expires_in": bad}), 400, mentions="expires_in")
        assert_error(server.post("/api/v1/auth/token", auth=False, headers=bearer(tok)), 403)
        # "ApiKey" is for keys: a JWT under it is refused.
        assert_error(server.get("/api/v1/sandboxes", auth=False,
                                headers={"Authorization": f"ApiKey {tok}"}), 401)
        # Revoking the key kills its JWTs at once (the token names its key).
        member = wh.create_key(server, "member", as_key=org["api_key"])
        mtok = wh.mint_jwt(server, key=member["key"])
        assert server.get("/api/v1/sandboxes", auth=False, headers=bearer(mtok)).status_code == 200
        assert server.delete_path(f"/api/v1/api-keys/{member['id']}",
                                  key=org["api_key"]).status_code == 200
        assert_error(server.get("/api/v1/sandboxes", auth=False, headers=bearer(mtok)), 401)
        # A member's JWT carries the member role.
        m2 = wh.create_key(server, "member", as_key=org["api_key"])
        assert_error(server.get("/api/v1/api-keys", auth=False,
                                headers=bearer(wh.mint_jwt(server, key=m2["key"]))), 403)


def test_forged_jwts_are_refused(server):
        secret = wh.jwt_secret(server)
        org_id, key_id = operator_ids(server)
        now = int(time.time())
        good = {"iss": "warren", "sub": key_id, "org": org_id, "iat": now, "exp": now + 600}

        def get(tok):
                return server.get("/api/v1/sandboxes", auth=False, headers=bearer(tok))

        # Control: a token made here with the server's secret is accepted, so the refusals
        # below are about what they change, not about the forger.
        assert get(wh.forge_jwt(secret, good)).status_code == 200
        assert_error(get(wh.forge_jwt(secret, dict(good, exp=now - 1))), 401,
                     mentions="expired")
        no_exp = dict(good)
        del no_exp["exp"]
        assert_error(get(wh.forge_jwt(secret, no_exp)), 401)
        assert_error(get(wh.forge_jwt(secret, dict(good, exp=str(now + 600)))), 401)
        # alg=none, with and without a signature; other algorithms under the same secret.
        assert_error(get(wh.forge_jwt(secret, good, header={"alg": "none", "typ": "JWT"},
                                      signature="")), 401)
        assert_error(get(wh.forge_jwt(secret, good, header={"alg": "none"})), 401)
        assert_error(get(wh.forge_jwt(secret, good, header={"alg": "HS512", "typ": "JWT"},
                                      digest="sha512")), 401)
        assert_error(get(wh.forge_jwt(secret, good, header={"alg": "HS256", "kid": "x"})), 401)
        # Tampered: another payload under a real signature; a flipped signature character.
        real = wh.forge_jwt(secret, good)
        h, p, s = real.split(".")
        evil = wh.b64url('{"iss":"warren","sub":"%s","org":"org_other","exp":%d}'
                         % (key_id, now + 600))
        assert_error(get(f"{h}.{evil}.{s}"), 401)
        flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
        assert_error(get(f"{h}.{p}.{flipped}"), 401)
        # Another secret; a key id that is not ours; the wrong org for the key.
        assert_error(get(wh.forge_jwt(b"x" * 64, good)), 401)
        assert_error(get(wh.forge_jwt(secret, dict(good, sub="key_000000000000000000000000"))),
                     401)
        assert_error(get(wh.forge_jwt(secret, dict(good, org="org_000000000000000000000000"))),
                     401)
        # Huge and malformed bearer values.
        assert_error(get("eyJ" + "A" * 5000 + ".e.e"), 401)
        assert_error(get("eyJ.eyJ.e"), 401)


def test_jwt_secret_file_and_env(daemons):
        srv = daemons.start(name="jwt-file")
        path = os.path.join(srv.data_dir, "jwt.key")
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
        secret = open(path).read().strip()
        assert len(secret) == 64 and all(c in "0123456789abcdef" for c in secret)
        tok = wh.mint_jwt(srv)
        # The same secret after a restart: tokens survive it.
        srv.restart(kill9=False)
        assert open(path).read().strip() == secret
        assert srv.get("/api/v1/sandboxes", auth=False, headers=bearer(tok)).status_code == 200
        # JWT_SECRET replaces the file.
        env_secret = "s" * 40
        srv2 = daemons.start(env={"JWT_SECRET": env_secret}, name="jwt-env")
        assert not os.path.exists(os.path.join(srv2.data_dir, "jwt.key"))
        tok2 = wh.mint_jwt(srv2)
        h, p, s = tok2.split(".")
        import hashlib
        import hmac
        assert wh.b64url(hmac.new(env_secret.encode(), f"{h}.{p}".encode(),
                                  hashlib.sha256).digest()) == s
        # A token of one server is nothing to the other.
        assert_error(srv2.get("/api/v1/sandboxes", auth=False, headers=bearer(tok)), 401)


# ---- session tokens ----

def test_session_tokens(server, new_org):
        org = new_org()
        key = org["api_key"]
        sid = server.create(as_key=key)
        sid2 = server.create(as_key=key)
        t = wh.create_session_token(server, sid, as_key=key, description="my app")
        assert set(t) >= {"id", "token", "description", "created_at", "expires_at"}, t
        assert t["token"].startswith("wst_") and t["description"] == "my app"
        life = wh.parse_time(t["expires_at"]) - wh.parse_time(t["created_at"])
        assert life.total_seconds() == 7 * 86400
        h = bearer(t["token"])

        # Its sandbox: reads, commands, files.
        assert server.get(f"/api/v1/sandbox/{sid}", auth=False, headers=h).status_code == 200
        res = server.post(f"/api/v1/sandbox/{sid}/execute", auth=False, headers=h,
                          json={"command": "echo delegated"})
        assert res.status_code == 200 and res.json()["stdout"] == "delegated\n", res.text
        server.write_file(sid, "/workspace/s.txt", "x", as_key=key)
        r = server.get(f"/api/v1/sandbox/{sid}/files", auth=False, headers=h,
                       params={"path": "/workspace/s.txt"})
        assert r.status_code == 200, r.text

        # Another sandbox of the same org looks exactly like a missing one.
        other = server.get(f"/api/v1/sandbox/{sid2}", auth=False, headers=h)
        missing = server.get(f"/api/v1/sandbox/{MISSING_SID}", auth=False, headers=h)
        assert other.status_code == missing.status_code == 404
        assert other.content == missing.content
        # Non-sandbox routes: 403.
        for method, path in (("GET", "/api/v1/sandboxes"), ("POST", "/api/v1/sandbox/create"),
                             ("GET", "/api/v1/api-keys"), ("POST", "/api/v1/auth/token"),
                             ("GET", "/api/v1/templates")):
                assert_error(server.request(method, path, auth=False, headers=h), 403,
                             "forbidden")
        # It cannot manage tokens or links, nor stop or delete the sandbox.
        for method, path in (("POST", "session-tokens"), ("GET", "session-tokens"),
                             ("GET", f"session-tokens/{t['id']}"),
                             ("DELETE", f"session-tokens/{t['id']}"),
                             ("POST", "magic-links"), ("POST", "stop"), ("DELETE", "")):
                r = server.request(method, f"/api/v1/sandbox/{sid}/{path}".rstrip("/"),
                                   auth=False, headers=h, json={})
                assert_error(r, 403, "forbidden")
        assert server.status(sid, as_key=key) == "running"

        # The list shows last use, never the value; GET one; bounds.
        r = server.get(f"/api/v1/sandbox/{sid}/session-tokens", key=key)
        assert r.status_code == 200
        [listed] = r.json()["session_tokens"]
        assert listed["id"] == t["id"] and "token" not in listed and t["token"] not in r.text
        used = wh.parse_time(listed["last_used_at"]).timestamp()
        assert abs(used - time.time()) < 60
        one = server.get(f"/api/v1/sandbox/{sid}/session-tokens/{t['id']}", key=key)
        assert one.status_code == 200 and one.json()["id"] == t["id"]
        assert "token" not in one.json()
        # Another sandbox's path, another org: 404.
        assert_error(server.get(f"/api/v1/sandbox/{sid2}/session-tokens/{t['id']}", key=key),
                     404)
        assert_error(server.get(f"/api/v1/sandbox/{sid}/session-tokens"), 404)
        for bad in ({"expires_in": 0}, {"expires_in": 30 * 86400 + 1}, {"expires_in": "60"},
                    {"description": "x" * 256}, {"description": 5}):
                assert_error(server.post(f"/api/v1/sandbox/{sid}/session-tokens", key=key,
                                         json=bad), 400)
        fresh = wh.create_session_token(server, sid, as_key=key)
        r = server.get(f"/api/v1/sandbox/{sid}/session-tokens", key=key)
        never = [x for x in r.json()["session_tokens"] if x["id"] == fresh["id"]][0]
        assert "last_used_at" not in never

        # Revoked: refused at once.
        r = server.delete_path(f"/api/v1/sandbox/{sid}/session-tokens/{t['id']}", key=key)
        assert r.status_code == 200 and r.json() == {"id": t["id"], "deleted": True}
        assert_error(server.get(f"/api/v1/sandbox/{sid}", auth=False, headers=h), 401)
        assert_error(server.delete_path(f"/api/v1/sandbox/{sid}/session-tokens/{t['id']}",
                                        key=key), 404)

        # Expiry (the shortest lifetime is one second).
        short = wh.create_session_token(server, sid, as_key=key, expires_in=1)
        hs = bearer(short["token"])
        wh.wait_until(lambda: server.get(f"/api/v1/sandbox/{sid}/status", auth=False,
                                         headers=hs).status_code == 401, 10, 0.2,
                      "the 1-second session token to expire")
        assert_error(server.get(f"/api/v1/sandbox/{sid}/status", auth=False, headers=hs), 401,
                     mentions="expired")

        # A token dies with the key that minted it, and with its sandbox.
        member = wh.create_key(server, "member", as_key=key)
        mt = wh.create_session_token(server, sid, as_key=member["key"])
        assert server.get(f"/api/v1/sandbox/{sid}", auth=False,
                          headers=bearer(mt["token"])).status_code == 200
        server.delete_path(f"/api/v1/api-keys/{member['id']}", key=key)
        assert_error(server.get(f"/api/v1/sandbox/{sid}", auth=False,
                                headers=bearer(mt["token"])), 401)
        t2 = wh.create_session_token(server, sid2, as_key=key)
        assert server.delete(sid2, as_key=key).status_code == 200
        assert_error(server.get(f"/api/v1/sandbox/{sid2}", auth=False,
                                headers=bearer(t2["token"])), 401)


def test_query_token_only_on_websocket_upgrades(server, sandbox):
        t = wh.create_session_token(server, sandbox)
        for cred in (server.api_key, t["token"], wh.mint_jwt(server)):
                path = f"/api/v1/sandbox/{sandbox}/status"
                # An ordinary request ignores ?token=.
                assert_error(server.get(path, auth=False, params={"token": cred}), 401)
                # A WebSocket upgrade (browsers cannot set headers) takes it.
                r = server.get(path, auth=False, params={"token": cred},
                               headers={"Upgrade": "websocket", "Connection": "Upgrade"})
                assert r.status_code == 200, r.text
        # A bad ?token= on an upgrade is refused like a bad header.
        assert_error(server.get(f"/api/v1/sandbox/{sandbox}/status", auth=False,
                                params={"token": "wk_" + "x" * 43},
                                headers={"Upgrade": "websocket"}), 401)
        # POST upgrades do not exist.
        assert_error(server.post(f"/api/v1/sandbox/{sandbox}/execute", auth=False,
                                 params={"token": server.api_key},
                                 headers={"Upgrade": "websocket"}, json={"command": "true"}),
                     401)


# ---- magic links ----

def test_magic_link(server, new_org):
        org = new_org()
        key = org["api_key"]
        sid = server.create(as_key=key)
        sid2 = server.create(as_key=key)
        r = server.post(f"/api/v1/sandbox/{sid}/magic-links", key=key,
                        json={"redirect_url": "/play/?tab=1"})
        assert r.status_code == 201, r.text
        link = r.json()
        assert set(link) == {"url", "expires_at", "redirect_url"}
        assert link["redirect_url"] == "/play/?tab=1"
        assert link["url"].startswith(server.url + "/api/v1/auth/magic?code=wml_")
        left = wh.parse_time(link["expires_at"]).timestamp() - time.time()
        assert 240 < left <= 301

        # First use: a 302 to the relative path with the session cookie.
        r = requests.get(link["url"], allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.text
        assert r.headers["Location"] == "/play/?tab=1"
        cookie = r.headers["Set-Cookie"]
        parts = [p.strip() for p in cookie.split(";")]
        name, _, value = parts[0].partition("=")
        assert name == "warren_session" and value.startswith("wst_")
        attrs = {p.split("=")[0].lower(): p for p in parts[1:]}
        assert "httponly" in attrs and attrs["samesite"].lower() == "samesite=strict"
        assert attrs["path"] == f"Path=/api/v1/sandbox/{sid}"
        assert "secure" not in attrs  # plain HTTP: a Secure cookie would never come back
        assert r.headers.get("Cache-Control") == "no-store"
        # Second use fails.
        assert_error(requests.get(link["url"], allow_redirects=False, timeout=10), 401,
                     mentions="already used")

        # The cookie authenticates this sandbox's routes (a browser sends it only there).
        jar = {"Cookie": f"warren_session={value}"}
        r = server.get(f"/api/v1/sandbox/{sid}", auth=False, headers=jar)
        assert r.status_code == 200 and r.json()["sandbox_id"] == sid
        r = server.post(f"/api/v1/sandbox/{sid}/execute", auth=False, json={"command": "echo c"},
                        headers=dict(jar, Origin=server.url))
        assert r.status_code == 200 and r.json()["stdout"] == "c\n", r.text
        # Its token is listed like any session token.
        toks = server.get(f"/api/v1/sandbox/{sid}/session-tokens", key=key).json()
        assert [x["description"] for x in toks["session_tokens"]] == ["magic link"]
        # Cross-origin requests do not get cookie authentication (CSRF).
        assert_error(server.post(f"/api/v1/sandbox/{sid}/execute", auth=False,
                                 json={"command": "true"},
                                 headers=dict(jar, Origin="http://evil.example")), 403)
        # Scope: another sandbox is missing, other routes forbidden.
        other = server.get(f"/api/v1/sandbox/{sid2}", auth=False, headers=jar)
        missing = server.get(f"/api/v1/sandbox/{MISSING_SID}", auth=False, headers=jar)
        assert other.status_code == missing.status_code == 404
        assert other.content == missing.content
        assert_error(server.get("/api/v1/sandboxes", auth=False, headers=jar), 403)
        # A cookie carries session tokens only: an API key in it is refused.
        assert_error(server.get(f"/api/v1/sandbox/{sid}", auth=False,
                                headers={"Cookie": f"warren_session={key}"}), 401)

        # Default redirect: the sandbox itself.
        r = server.post(f"/api/v1/sandbox/{sid}/magic-links", key=key)
        assert r.status_code == 201 and r.json()["redirect_url"] == f"/api/v1/sandbox/{sid}"
        # Open redirects are refused.
        for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example",
                    "\\\\evil.example", "javascript:alert(1)", "evil.example", "",
                    "/ok\r\nSet-Cookie: x=1", "/a b", "/" + "a" * 2048, "/\u00e9"):
                assert_error(server.post(f"/api/v1/sandbox/{sid}/magic-links", key=key,
                                         json={"redirect_url": bad}), 400,
                             mentions="redirect_url")
        # Another org's sandbox: 404; unknown and malformed codes: 401.
        assert_error(server.post(f"/api/v1/sandbox/{sid}/magic-links"), 404)
        for q in ({"code": "wml_" + "A" * 43}, {"code": ""}, {}, {"code": "wk_x"}):
                assert_error(server.get("/api/v1/auth/magic", auth=False, params=q), 401)
        assert_error(server.post("/api/v1/auth/magic", auth=False), 405)
        # A link dies with its sandbox.
        r = server.post(f"/api/v1/sandbox/{sid2}/magic-links", key=key)
        url2 = r.json()["url"]
        assert server.delete(sid2, as_key=key).status_code == 200
        assert_error(requests.get(url2, allow_redirects=False, timeout=10), 401)


# ---- organisations ----

def test_orgs_list_is_the_operators(server, other_org):
        r = server.get("/api/v1/orgs")
        assert r.status_code == 200
        orgs = r.json()["orgs"]
        assert sum(o["system"] for o in orgs) == 1
        assert any(o["id"] == other_org["org_id"] and not o["system"] for o in orgs)
        assert all(o["id"] != "org_pool" for o in orgs)
        for o in orgs:
                assert set(o) == {"id", "name", "created_at", "system"}
        assert_error(server.get("/api/v1/orgs", key=other_org["api_key"]), 403)
        member = wh.create_key(server, "member")
        assert_error(server.get("/api/v1/orgs", key=member["key"]), 403)
        assert_error(server.post("/api/v1/orgs"), 405)
