"""max_run_after_disconnect (docs/api.md): a job is killed once nobody has read or attached to
it for that long. Reading its output counts, not only long polls that wait and attachments."""
import time

import warren_harness as wh


def job(server, sid, ref):
        r = server.get(f"/api/v1/sandbox/{sid}/processes/{ref}")
        assert r.status_code == 200, r.text
        return r.json()


def test_reading_output_keeps_the_job_alive_and_silence_kills_it(server, sandbox):
        r = server.post(f"/api/v1/sandbox/{sandbox}/processes",
                        json={"command": "while :; do echo tick; sleep 0.1; done",
                              "max_run_after_disconnect": 3})
        assert r.status_code == 201, r.text
        ref = r.json()["id"]
        # Read what is new (no long poll: there is always output) for well over 3 s.
        since, reads = 0, 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
                o = server.get(f"/api/v1/sandbox/{sandbox}/processes/{ref}/output",
                               params={"since": since, "wait": "true", "timeout": 5})
                assert o.status_code == 200, o.text
                o = o.json()
                assert o["state"] == "running", f"killed while read ({reads} reads): {o}"
                since = o["next"]
                reads += 1
                time.sleep(0.2)
        assert job(server, sandbox, ref)["state"] == "running"
        # Nobody reads any more: it is killed.
        done = wh.wait_until(lambda: (lambda j: j if j["state"] != "running" else None)(
                job(server, sandbox, ref)), 20, what="the idle kill")
        assert done["state"] == "killed", done


def test_countdown_that_ends_while_the_agent_reconnects_still_kills(daemons):
        """The countdown may run out while the sandbox's agent is not connected (after a
        restart, before the sandbox answered): the kill is then due as soon as it is back, not
        forgotten."""
        import os
        import signal
        d = daemons.start(name="idle")
        sid = d.create()
        r = d.post(f"/api/v1/sandbox/{sid}/processes",
                   json={"command": "sleep 1000", "max_run_after_disconnect": 2})
        assert r.status_code == 201, r.text
        ref = r.json()["id"]
        init = wh.sandbox_init_pid(sid)
        assert init
        # warren-init does not answer while stopped: the restarted daemon cannot take the job
        # back, and the job's countdown (started by this read) runs out meanwhile.
        os.kill(init[0], signal.SIGSTOP)
        try:
                d.restart(kill9=True)
                o = d.get(f"/api/v1/sandbox/{sid}/processes/{ref}/output")
                assert o.status_code == 200 and o.json()["state"] == "running", o.text
                time.sleep(3.5)
        finally:
                os.kill(init[0], signal.SIGCONT)
        done = wh.wait_until(lambda: (lambda j: j if j["state"] != "running" else None)(
                job(d, sid, ref)), 20, what="the idle kill after the reconnect")
        assert done["state"] == "killed", done
