"""Every route x every kind of credential -> the right status.

The route table below lists every route the daemon dispatches (test_route_table_covers_dispatch
checks it against the C sources); a new route is one line. Credentials: none, a bad key, a
revoked key, an expired JWT, an alg=none JWT, a tampered JWT, a bad session cookie, another
organisation's admin key, a session token of another sandbox, a session token of the target
sandbox, a member key, the operator's admin key and a JWT minted from it.

Expectations:
  denied-401   no or bad credential (every route but /health and magic-link redemption)
  missing      404, byte-for-byte the answer for a sandbox id that does not exist (another
               organisation's sandbox; another sandbox than a session token's)
  403          a member on admin routes, a tenant admin on operator routes, a session token
               outside its sandbox or on token management / stop / delete
  allowed      anything but 401, 403 and the missing-sandbox 404 (the route ran)
Destructive routes (delete, stop, revoke, rotate, create) are only checked where they must
refuse: their success paths are in tests/integration.
"""
import os
import re
import secrets
import time

import pytest
import requests

import warren_harness as wh
from warren_harness import bearer

MISSING = "sandbox-000000000000"
BAD = ("none", "bad_key", "revoked_key", "expired_jwt", "none_jwt", "tampered_jwt",
       "bad_cookie")
CREDS = BAD + ("other_org", "session_other", "session_own", "member", "admin", "admin_jwt")


class R:
        """One route: method, path template ({sid}, {tid}, {kid}), who may use it (kind), a
        request body (json, or a callable making one), query params, raw data."""

        def __init__(self, method, path, kind, json=None, params=None, data=None,
                     destructive=False, session=True):
                self.method, self.path, self.kind = method, path, kind
                self.json, self.params, self.data = json, params, data
                self.destructive, self.session = destructive, session

        def __repr__(self):
                return f"{self.method} {self.path}"


def reg_body():
        return {"first_name": "Matrix", "last_name": "Test", "organization_name": "matrix",
                "email": f"matrix-{secrets.token_hex(6)}@example.com"}


S = "/api/v1/sandbox/{sid}"
# kind: health (public), magic (public, bogus code), register (operator, REGISTRATION=admin-only),
# token (API keys only), operator (admin of the operator's org), admin (admin of any org),
# org (any credential of an org), sandbox (also a session token of that sandbox, unless
# session=False).
ROUTES = [
        R("GET", "/health", "health"),
        R("GET", "/api/v1/auth/magic", "magic", params={"code": "wml_" + "Q" * 43}),
        R("POST", "/api/v1/register", "register", json=reg_body),
        R("POST", "/api/v1/auth/token", "token"),
        R("GET", "/api/v1/orgs", "operator"),
        R("POST", "/api/v1/api-keys", "admin", json={"name": "matrix", "role": "member"}),
        R("GET", "/api/v1/api-keys", "admin"),
        R("DELETE", "/api/v1/api-keys/{kid}", "admin", destructive=True),
        R("POST", "/api/v1/api-keys/{kid}/rotate", "admin", destructive=True),
        R("GET", "/api/v1/pool", "admin"),
        R("POST", "/api/v1/sandbox/create", "org", json={}, destructive=True),
        R("GET", "/api/v1/sandboxes", "org"),
        R("GET", "/api/v1/templates", "org"),
        R("GET", S, "sandbox"),
        R("DELETE", S, "sandbox", destructive=True, session=False),
        R("GET", S + "/status", "sandbox"),
        R("POST", S + "/stop", "sandbox", destructive=True, session=False),
        R("POST", S + "/execute", "sandbox", json={"command": "true"}),
        R("POST", S + "/run-code", "sandbox", json={"code": "true", "language": "bash"}),
        R("POST", S + "/files", "sandbox",
          json={"files": [{"path": "/workspace/matrix.txt", "content": "eA=="}]}),
        R("GET", S + "/files", "sandbox", params={"path": "/workspace/matrix.txt"}),
        R("GET", S + "/files/download", "sandbox", params={"path": "/workspace/matrix.txt"}),
        R("PUT", S + "/files/upload", "sandbox", params={"path": "/workspace/up.bin"},
          data=b"upload"),
        R("GET", S + "/files/list", "sandbox", params={"path": "/workspace"}),
        R("GET", S + "/files/stat", "sandbox", params={"path": "/workspace/matrix.txt"}),
        R("GET", S + "/files/exists", "sandbox", params={"path": "/workspace/matrix.txt"}),
        R("POST", S + "/files/mkdir", "sandbox", json={"path": "/workspace/mdir",
                                                         "recursive": True}),
        R("POST", S + "/files/remove", "sandbox", json={"path": "/workspace/not-there"}),
        R("POST", S + "/files/move", "sandbox", json={"from": "/workspace/not-there",
                                                        "to": "/workspace/x"}),
        R("POST", S + "/session-tokens", "sandbox", json={"description": "m"}, session=False),
        R("GET", S + "/session-tokens", "sandbox", session=False),
        R("GET", S + "/session-tokens/{tid}", "sandbox", session=False),
        R("DELETE", S + "/session-tokens/{tid}", "sandbox", destructive=True, session=False),
        R("POST", S + "/magic-links", "sandbox", json={"redirect_url": "/"}, session=False),
        R("POST", S + "/processes", "sandbox", json={"command": "true"}),
        R("GET", S + "/processes", "sandbox"),
        R("POST", S + "/terminals", "sandbox", json={"shell": "true"}),
        R("GET", S + "/processes/job_1", "sandbox"),
        R("DELETE", S + "/processes/job_1", "sandbox"),
        R("GET", S + "/processes/job_1/output", "sandbox"),
        R("POST", S + "/processes/job_1/stdin", "sandbox", json={"data": "x"}),
        R("POST", S + "/processes/job_1/signal", "sandbox", json={"signal": "TERM"}),
        R("POST", S + "/processes/job_1/resize", "sandbox", json={"cols": 80, "rows": 24}),
        R("GET", S + "/processes/job_1/attach", "sandbox"),
        R("GET", "/ws", "org"),
        R("GET", S + "/network", "sandbox"),
        R("PATCH", S + "/network", "sandbox", json={"allow": [{"cidr": "0.0.0.0/0",
                                                            "ports": [443]}]}, session=False),
]


def expect(route, cred):
        """'allowed', 'missing', or an exact status."""
        k = route.kind
        if k == "health":
                return 200
        if k == "magic":
                return 401
        if cred in BAD:
                return 401
        if cred in ("session_other", "session_own"):
                if k != "sandbox":
                        return 403
                if cred == "session_other":
                        return "missing"
                return "allowed" if route.session else 403
        if cred == "other_org":
                if k == "sandbox":
                        return "missing"
                if k in ("operator", "register"):
                        return 403
                if "{kid}" in route.path:
                        return 404  # the operator org's key: not theirs
                return "allowed"
        if cred == "member":
                return 403 if k in ("operator", "register", "admin") else "allowed"
        if cred == "admin_jwt" and k == "token":
                return 403  # only an API key is exchanged for a JWT
        return "allowed"


CASES = [(r, c) for r in ROUTES for c in CREDS
         if not (r.destructive and expect(r, c) == "allowed")]


@pytest.fixture(scope="module")
def world(server, other_org):
        """Sandboxes A (the target) and B of the operator's org, and every credential."""
        a = server.create()
        b = server.create()
        server.write_file(a, "/workspace/matrix.txt", "x")
        member = wh.create_key(server, "member")
        revoked = wh.create_key(server, "member")
        assert server.delete_path(f"/api/v1/api-keys/{revoked['id']}").status_code == 200
        org_id = [o for o in server.get("/api/v1/orgs").json()["orgs"] if o["system"]][0]["id"]
        kid = wh.key_id_of(server, server.api_key)
        secret = wh.jwt_secret(server)
        now = int(time.time())
        claims = {"iss": "warren", "sub": kid, "org": org_id, "iat": now, "exp": now + 3600}
        real = wh.mint_jwt(server)
        h, p, s = real.split(".")
        own = wh.create_session_token(server, a)
        other = wh.create_session_token(server, b)
        creds = {
                "none": {},
                "bad_key": {"Authorization": "ApiKey wk_" + secrets.token_urlsafe(32)[:43]},
                "revoked_key": {"Authorization": f"ApiKey {revoked['key']}"},
                "expired_jwt": bearer(wh.forge_jwt(secret, dict(claims, exp=now - 10))),
                "none_jwt": bearer(wh.forge_jwt(secret, claims, header={"alg": "none"},
                                                signature="")),
                "tampered_jwt": bearer(f"{h}.{p}.{s[:-3]}{'A' if s[-3] != 'A' else 'B'}{s[-2:]}"),
                "bad_cookie": {"Cookie": "warren_session=wst_" + "Z" * 43},
                "other_org": {"Authorization": f"ApiKey {other_org['api_key']}"},
                "session_other": bearer(other["token"]),
                "session_own": bearer(own["token"]),
                "member": {"Authorization": f"ApiKey {member['key']}"},
                "admin": {"Authorization": f"ApiKey {server.api_key}"},
                "admin_jwt": bearer(real),
        }
        # Controls: the forger uses the server's secret (a fresh forged token works), and the
        # positive credentials work, so refusals in the matrix mean what they say.
        assert server.get("/api/v1/sandboxes", auth=False,
                          headers=bearer(wh.forge_jwt(secret, claims))).status_code == 200
        for name in ("other_org", "member", "admin", "admin_jwt"):
                assert server.get("/api/v1/sandboxes", auth=False,
                                  headers=creds[name]).status_code == 200, name
        for name in ("session_own", "session_other"):
                assert server.get("/api/v1/sandbox/" + (a if name == "session_own" else b),
                                  auth=False, headers=creds[name]).status_code == 200, name
        return {"a": a, "b": b, "kid": kid, "tid": own["id"], "creds": creds}


def send(server, world, route, cred, sid):
        path = route.path.format(sid=sid, kid=world["kid"], tid=world["tid"])
        body = route.json() if callable(route.json) else route.json
        return requests.request(route.method, server.url + path, headers=world["creds"][cred],
                                json=body, params=route.params, data=route.data,
                                allow_redirects=False, timeout=60)


@pytest.mark.parametrize("route,cred", CASES, ids=[f"{r.method} {r.path} as {c}"
                                                   for r, c in CASES])
def test_matrix(server, world, route, cred):
        want = expect(route, cred)
        r = send(server, world, route, cred, world["a"])
        what = f"{route} as {cred}: HTTP {r.status_code} {r.text[:300]!r}"
        if want == "missing":
                m = send(server, world, route, cred, MISSING)
                assert r.status_code == 404, what
                assert (r.status_code, r.content) == (m.status_code, m.content), \
                        f"{what} differs from a missing sandbox: {m.status_code} {m.text[:300]!r}"
                return
        if want == "allowed":
                assert r.status_code not in (401, 403), what
                assert not (r.status_code == 404 and b"sandbox not found" in r.content), what
                return
        assert r.status_code == want, what
        if want >= 400:
                wh.assert_error(r, want)
        if want == 401 and cred != "none":
                # A refused credential never reveals why beyond "invalid" or "expired".
                assert r.json()["error"]["code"] == "unauthorized", what


def test_route_table_covers_dispatch():
        """Every path literal the C dispatch compares against appears in ROUTES, so a new
        route without a matrix line fails here."""
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src",
                           "daemon")
        text = ""
        for name in ("routes.c", "identity.c", "files.c"):
                with open(os.path.join(src, name)) as f:
                        text += f.read()
        lits = set(re.findall(r'strcmp\((?:path|rest), "(/[^"]*)"\)', text))
        lits |= set(re.findall(r'rest_is\(rest, "(/[^"]*)"\)', text))
        lits |= set(re.findall(r'static const char \w+\[\] = "(/api/v1/[^"]*)"', text))
        assert len(lits) > 20, lits
        table = " ".join(r.path for r in ROUTES)
        missing = sorted(lit for lit in lits if lit.rstrip("/") and lit.rstrip("/") not in table)
        assert not missing, f"routes dispatched but not in the matrix: {missing}"


def test_destructive_routes_refuse_before_acting(server, world):
        """The refusals above left everything in place: the target sandbox runs, the key and
        the session token that destructive routes named still work."""
        assert server.status(world["a"]) == "running"
        assert server.get("/api/v1/sandboxes").status_code == 200
        assert server.get(f"/api/v1/sandbox/{world['a']}", auth=False,
                          headers=world["creds"]["session_own"]).status_code == 200
