"""Revocation reaches requests already in flight: a long poll on a job's output
(GET .../processes/:ref/output?wait=true) authenticated by a key or session token that is
revoked while it waits ends at once with 401, instead of delivering the job's later output
to a credential that no longer exists (src/daemon/live.h: long polls register there)."""
import threading
import time

import warren_harness as wh


def start_job(server, sid, command):
        r = server.post(f"/api/v1/sandbox/{sid}/processes", json={"command": command})
        assert r.status_code == 201, r.text
        return r.json()["id"]


def long_poll_in_thread(server, sid, ref, headers):
        """Start a long poll for the job's output with the given credential headers; returns
        (thread, result dict that gets "r")."""
        out = {}

        def run():
                out["r"] = server.get(f"/api/v1/sandbox/{sid}/processes/{ref}/output",
                                      auth=False, headers=headers, timeout=90,
                                      params={"since": 0, "wait": "true", "timeout": 60})
        t = threading.Thread(target=run)
        t.start()
        return t, out


def assert_revoked_answer(t, out, ref, server, sid):
        t.join(30)
        assert not t.is_alive(), "the long poll did not end after the revocation"
        r = out["r"]
        # Never the output the job printed after the revocation.
        assert "after-revoke" not in r.text, f"a revoked credential still read output: {r.text}"
        wh.assert_error(r, 401, "unauthorized")
        server.delete_path(f"/api/v1/sandbox/{sid}/processes/{ref}")


def test_revoking_a_key_ends_its_long_poll(server, sandbox):
        k = wh.create_key(server, "member")
        ref = start_job(server, sandbox, "sleep 6; echo after-revoke; sleep 60")
        t, out = long_poll_in_thread(server, sandbox, ref, {"Authorization": f"ApiKey {k['key']}"})
        time.sleep(1)  # let the poll reach the daemon and wait there
        r = server.delete_path(f"/api/v1/api-keys/{k['id']}")
        assert r.status_code == 200, r.text
        assert_revoked_answer(t, out, ref, server, sandbox)


def test_deleting_a_session_token_ends_its_long_poll(server, sandbox):
        tok = wh.create_session_token(server, sandbox)
        ref = start_job(server, sandbox, "sleep 6; echo after-revoke; sleep 60")
        t, out = long_poll_in_thread(server, sandbox, ref, wh.bearer(tok["token"]))
        time.sleep(1)
        r = server.delete_path(f"/api/v1/sandbox/{sandbox}/session-tokens/{tok['id']}")
        assert r.status_code == 200, r.text
        assert_revoked_answer(t, out, ref, server, sandbox)


def test_revoking_a_key_ends_its_running_executes(server, sandbox):
        """A request-scoped command (POST execute, streamed or not) of a revoked key dies and
        its request ends, rather than streaming or returning later output."""
        k = wh.create_key(server, "member")
        h = {"Authorization": f"ApiKey {k['key']}"}
        cmd = "echo before; sleep 4; echo after-revoke; sleep 60"
        out = {}

        def streamed():
                r = server.post(f"/api/v1/sandbox/{sandbox}/execute", auth=False, headers=h,
                                json={"command": cmd, "stream": True}, timeout=90, stream=True)
                out["stream_status"] = r.status_code
                out["stream"] = b"".join(r.iter_content(None)).decode()

        def collected():
                out["json"] = server.post(f"/api/v1/sandbox/{sandbox}/execute", auth=False,
                                          headers=h, json={"command": cmd}, timeout=90)
        ts = [threading.Thread(target=streamed), threading.Thread(target=collected)]
        for t in ts:
                t.start()
        time.sleep(1.5)  # both commands run and the stream said "before"
        r = server.delete_path(f"/api/v1/api-keys/{k['id']}")
        assert r.status_code == 200, r.text
        for t in ts:
                t.join(30)
                assert not t.is_alive(), "an execute of the revoked key did not end"
        assert out["stream_status"] == 200
        assert "before" in out["stream"] and "after-revoke" not in out["stream"], out["stream"]
        assert "revoked" in out["stream"], out["stream"]
        wh.assert_error(out["json"], 401, "unauthorized")
        # the commands are gone from the sandbox
        assert "sleep 60" not in server.sh(sandbox, "ps -eo args")
