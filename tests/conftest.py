"""Shared pytest fixtures for tests/integration and tests/security.

They live here (not in each directory's conftest.py) so that one pytest session running both
directories drives ONE daemon.

Fixtures:
  server   (session)  a real warrend on 127.0.0.1:<random port> with its own data directory
                      under /tmp; binaries from $WARREN_BIN_DIR. Attributes: url, api_key,
                      data_dir, bin_dir, proc, log_path; methods headers(), create(**fields),
                      exec(sid, command, **kw), restart(kill9=True), stop(), and more (see
                      warren_harness.Server). Every sandbox it created is deleted at the end.
  sandbox  (function) a fresh sandbox id (defaults), deleted afterwards.
  other_org (session) {"org_id", "api_key"} of a second organisation (warrend org-create).
  new_org  (function) factory: new_org() -> {"org_id", "api_key"}, a fresh organisation.
  canary   (function) files on the host (/tmp and /root) that no sandbox may see.
  daemons  (function) factory of extra daemons with their own env and data dir:
                      daemons.start(env={...}, name=...) -> a started Server.
"""
import os
import secrets
import shutil
import signal
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import warren_harness as wh  # noqa: E402

TEST_TIME_LIMIT = int(os.environ.get("WARREN_TEST_TIME_LIMIT", "150"))


class _TestTookTooLong(Exception):
        pass


@pytest.fixture(autouse=True)
def _watchdog():
        """Abort a test that runs past TEST_TIME_LIMIT seconds (no pytest-timeout here)."""
        def on_alarm(signum, frame):
                raise _TestTookTooLong(f"test ran longer than {TEST_TIME_LIMIT}s")
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(TEST_TIME_LIMIT)
        try:
                yield
        finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def server(request):
        bdir = wh.bin_dir()
        root = tempfile.mkdtemp(prefix="warren-test-")
        srv = wh.Server(bdir, root)
        try:
                srv.start()
        except Exception:
                srv.stop()
                raise
        yield srv
        ids = []
        try:
                ids = srv.cleanup()
        finally:
                srv.stop()
                leaked = []
                for sid in ids:
                        pids = wh.sandbox_host_pids(sid)
                        if pids:
                                leaked.append(sid)
                                wh.host_kill_sandbox_processes(sid)
                mounts = wh.host_mounts_mentioning(srv.data_dir)
                if mounts or os.environ.get("WARREN_KEEP_TMP"):
                        # never rmtree through a live mount
                        sys.stderr.write(f"\nwarren test data left in {root} "
                                         f"({len(mounts)} mounts)\n")
                elif request.session.testsfailed:
                        shutil.rmtree(srv.data_dir, ignore_errors=True)
                        sys.stderr.write(f"\nwarrend log: {srv.log_path}\n")
                else:
                        shutil.rmtree(root, ignore_errors=True)
                if leaked:
                        sys.stderr.write(f"\nprocesses of deleted sandboxes were left on the "
                                         f"host and killed: {leaked}\n")


@pytest.fixture(autouse=True)
def _daemon_survives(request):
        """After each test using the daemon: if it died, fail this test with the log tail and
        start it again for the next test (so one crash does not hide every later result)."""
        yield
        if "server" not in request.fixturenames:
                return
        srv = request.getfixturevalue("server")
        if srv.proc is not None and srv.proc.poll() is not None:
                rc = srv.proc.returncode
                tail = srv.log_tail()
                try:
                        srv.start()
                except Exception as e:  # noqa: BLE001
                        tail += f"\n(restart failed too: {e})"
                pytest.fail(f"warrend died during this test (exit {rc}); log tail:\n{tail}")


@pytest.fixture
def sandbox(server):
        sid = server.create()
        yield sid
        try:
                server.delete(sid)
        except Exception:  # noqa: BLE001
                pass


@pytest.fixture(scope="session")
def other_org(server):
        return server.org_create("test-other-" + secrets.token_hex(4))


@pytest.fixture
def new_org(server):
        def make():
                return server.org_create("test-org-" + secrets.token_hex(4))
        return make


class Canary:
        """Host files with random content that must never be visible inside a sandbox."""

        def __init__(self):
                tag = secrets.token_hex(8)
                self.name = f"warren-canary-{tag}"
                self.content = f"HOST-SECRET-{secrets.token_hex(16)}\n"
                self.tmp_path = f"/tmp/{self.name}"
                self.root_path = f"/root/{self.name}"
                for p in (self.tmp_path, self.root_path):
                        with open(p, "w") as f:
                                f.write(self.content)
                        os.chmod(p, 0o644)

        def remove(self):
                for p in (self.tmp_path, self.root_path):
                        try:
                                os.unlink(p)
                        except FileNotFoundError:
                                pass


@pytest.fixture
def canary():
        c = Canary()
        yield c
        c.remove()



@pytest.fixture
def daemons():
        """Factory for extra daemons beside the session's (own data dir, own env, e.g. the warm
        pool on): daemons.start(env={...}, name="pool") -> a started warren_harness.Server. At
        the end each is cleaned up and stopped; a daemon that died on its own fails the test."""
        ds = wh.DaemonSet(wh.bin_dir())
        yield ds
        problems = ds.close()
        if problems:
                pytest.fail("\n".join(problems))
