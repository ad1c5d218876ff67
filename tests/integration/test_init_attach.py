"""warren-init's side of ATTACH: a daemon connection that goes away while init answers its
ATTACH must not become the job's owner (it is freed at the end of init's loop iteration, and
init is PID 1 of the sandbox: a dangling owner is a crash or lost output there)."""
import os
import signal
import socket
import struct

import warren_harness as wh

PROTO_HELLO = 1
PROTO_ATTACH = 13
AGENT_KEPT_ID_BASE = 0x80000000


def frame(ftype, job, payload=b""):
        """One daemon -> init frame: u32 length (of what follows it), type, flags, 0, job."""
        return struct.pack("<IBBHI", 8 + len(payload), ftype, 0, 0, job) + payload


def recv_exact(s, n):
        buf = b""
        while len(buf) < n:
                chunk = s.recv(n - len(buf))
                assert chunk, "init closed the connection"
                buf += chunk
        return buf


def log_end(server, sid, ref):
        r = server.get(f"/api/v1/sandbox/{sid}/processes/{ref}/output",
                       params={"since": 1 << 40, "limit": 1})
        assert r.status_code == 200, r.text
        return r.json()["next"]


def test_attach_from_a_connection_that_died_leaves_the_job_with_its_owner(server, sandbox):
        r = server.post(f"/api/v1/sandbox/{sandbox}/processes",
                        json={"command": "while :; do echo tick; sleep 0.05; done"})
        assert r.status_code == 201, r.text
        ref = r.json()["id"]
        jid = int(ref[len("job_"):])
        wh.wait_until(lambda: log_end(server, sandbox, ref) > 0, 15, what="first output")

        init = wh.sandbox_init_pid(sandbox)
        assert init, "no warren-init for the sandbox"
        ctl = os.path.join(server.data_dir, "run", "sandboxes", sandbox, "ctl.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(ctl)
        hello = recv_exact(s, 12 + 8)
        assert hello[4] == PROTO_HELLO
        # Init is stopped while the "daemon" sends ATTACH and goes away, so that init handles
        # the ATTACH after the peer is gone: its ATTACHED then fails (EPIPE) and the
        # connection dies inside jobs_attach().
        os.kill(init[0], signal.SIGSTOP)
        try:
                s.sendall(frame(PROTO_ATTACH, AGENT_KEPT_ID_BASE | jid))
                s.close()
        finally:
                os.kill(init[0], signal.SIGCONT)

        # The job stays with the daemon's connection: its output keeps arriving.
        before = log_end(server, sandbox, ref)
        wh.wait_until(lambda: log_end(server, sandbox, ref) > before + 100, 15,
                      what="output after the dead ATTACH")
        # and init still serves the daemon
        res = server.exec(sandbox, "echo alive")
        assert res["stdout"] == "alive\n", res
        r = server.delete_path(f"/api/v1/sandbox/{sandbox}/processes/{ref}")
        assert r.status_code == 200, r.text
