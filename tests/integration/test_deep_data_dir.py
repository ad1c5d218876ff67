"""A second daemon whose data directory is so deep that the control-socket paths exceed the
107 bytes a unix socket address holds: the daemon must still reach warren-init (it connects
through /proc/self/fd/DIRFD/ctl.sock), and /etc/hostname names the sandbox."""
import os
import shutil
import tempfile

import warren_harness as wh


def test_sandbox_works_with_a_deep_data_dir(server):
        # A second daemon beside the session's: its own data dir and port; sandbox cgroups
        # are named by random ids, so the two do not collide for this test.
        base = tempfile.mkdtemp(prefix="warren-deep-")
        root = os.path.join(base, *(["d" * 40] * 3))
        os.makedirs(root)
        srv = wh.Server(server.bin_dir, root, name="deep")
        ctl_len = len(os.path.join(srv.data_dir, "run", "sandboxes", "sandbox-" + "0" * 12,
                                   "ctl.sock"))
        assert ctl_len > 107, ctl_len
        srv.start()
        sid = None
        try:
                sid = srv.create()
                res = srv.exec(sid, "hostname; cat /etc/hostname")
                assert res["exit_code"] == 0, res
                assert res["stdout"] == f"{sid}\n{sid}\n"
        finally:
                if sid:
                        srv.delete(sid)
                srv.stop()
                shutil.rmtree(base, ignore_errors=True)
