"""Filesystem escapes: path traversal and planted symlinks through the files API, writes to
the read-only /usr and to the template, hardlinks to host files."""
import glob
import hashlib
import os
import secrets

import pytest

from warren_harness import b64

USERS = ["user", "root"]


@pytest.fixture(autouse=True)
def _remove_escaped_files():
        """If an attack below did escape, do not leave its files on the host."""
        yield
        for pattern in ("/tmp/warren-evil-*", "/tmp/warren-race-*", "/usr/bin/warren-evil-*",
                        "/usr/lib/warren-evil-*", "/usr/warren-evil-*"):
                for p in glob.glob(pattern):
                        try:
                                os.unlink(p) if not os.path.isdir(p) or os.path.islink(p) \
                                        else os.rmdir(p)
                        except OSError:
                                pass


def files_url(sid, sub=""):
        return f"/api/v1/sandbox/{sid}/files{sub}"


def read_attempt(server, sid, path):
        """Everything the files API returns for path, through every read route."""
        got = []
        for sub in ("", "/download", "/stat", "/list", "/exists"):
                r = server.get(files_url(sid, sub), params={"path": path})
                got.append((sub, r.status_code, r.content))
        return got


def assert_no_leak(attempts, canary):
        for sub, status, body in attempts:
                assert status < 500, f"files{sub}: server error {status}: {body[:200]!r}"
                assert canary.content.encode() not in body, f"files{sub} leaked the host file"
                assert b64(canary.content).encode() not in body, f"files{sub} leaked (base64)"


def test_traversal_paths_stay_inside(server, sandbox, canary):
        paths = [f"/../../../../tmp/{canary.name}", f"/workspace/../../../tmp/{canary.name}",
                 f"/tmp/../../..//tmp/{canary.name}", f"/../../../../root/{canary.name}",
                 f"/workspace/%2e%2e/%2e%2e/tmp/{canary.name}",
                 f"/proc/1/root/../../../tmp/{canary.name}",
                 f"/proc/self/root/tmp/{canary.name}", f"/proc/self/cwd/../../tmp/{canary.name}"]
        for p in paths:
                attempts = read_attempt(server, sandbox, p)
                assert_no_leak(attempts, canary)
                exists = [a for a in attempts if a[0] == "/exists"][0]
                if exists[1] == 200:
                        assert b'"exists":false' in exists[2].replace(b" ", b""), (p, exists)
        # the same paths resolve inside the sandbox: a file put in the sandbox's /tmp under
        # the canary's name is what comes back
        server.sh(sandbox, f"echo sandbox-own > /tmp/{canary.name}")
        assert server.read_file(sandbox, f"/../../../../tmp/{canary.name}") == b"sandbox-own\n"
        # writing through traversal lands inside too
        evil = "warren-evil-" + secrets.token_hex(6)
        r = server.post(files_url(sandbox), json={"files": [
                {"path": f"/../../../../tmp/{evil}", "content": b64("x")}]})
        assert r.status_code in (200, 201, 400), r.text
        assert not os.path.exists(f"/tmp/{evil}"), "a write escaped to the host's /tmp"
        if r.status_code != 400:
                assert server.sh(sandbox, f"cat /tmp/{evil}") == "x"


@pytest.mark.parametrize("link_user", USERS)
def test_planted_symlinks_stay_inside(server, sandbox, canary, link_user):
        """Sandbox code plants symlinks; the files API reads and writes through them without
        ever leaving the sandbox root."""
        c = canary.name
        server.sh(sandbox, f"""
                ln -s / /workspace/root
                ln -s /proc/1/root/../../../../tmp/{c} /workspace/l_proc1
                ln -s /proc/self/root/tmp/{c} /workspace/l_self
                ln -s /proc/self/root /workspace/l_selfroot
                ln -s ../../../../../../../../tmp/{c} /workspace/l_rel
                ln -s /tmp/{c} /workspace/l_abs
                ln -s /proc/1/cwd /workspace/l_cwd
                mkdir -p /workspace/dir && ln -s /tmp /workspace/dir/tmplink
                """, user=link_user)
        for p in ["/workspace/root/tmp/" + c, "/workspace/l_proc1", "/workspace/l_self",
                  "/workspace/l_selfroot/tmp/" + c, "/workspace/l_rel", "/workspace/l_abs",
                  "/workspace/l_cwd/../../tmp/" + c, "/workspace/dir/tmplink/" + c,
                  "/workspace/root/root/" + c, "/workspace/l_selfroot/root/" + c]:
                assert_no_leak(read_attempt(server, sandbox, p), canary)
        # writes through the links
        tag = "warren-evil-" + secrets.token_hex(6)
        targets = [f"/workspace/root/tmp/{tag}-a", f"/workspace/l_selfroot/tmp/{tag}-b",
                   f"/workspace/dir/tmplink/{tag}-c", f"/workspace/l_cwd/../../tmp/{tag}-d"]
        server_errors = []
        for i, p in enumerate(targets):
                for r in (server.post(files_url(sandbox), json={"files": [
                                {"path": p, "content": b64(f"w{i}")}]}),
                          server.put(files_url(sandbox, "/upload"), params={"path": p + "-up"},
                                     data=b"up"),
                          server.post(files_url(sandbox, "/mkdir"), json={"path": p + "-dir"})):
                        if r.status_code >= 500:
                                server_errors.append((r.request.method, r.request.url,
                                                      r.status_code, r.text[:200]))
        for suffix in ("a", "b", "c", "d"):
                for extra in ("", "-up", "-dir"):
                        assert not os.path.exists(f"/tmp/{tag}-{suffix}{extra}"), \
                                f"a write through a planted symlink reached the host: {suffix}{extra}"
        # writes through a link into the sandbox's own /tmp did land there
        assert server.sh(sandbox, f"cat /tmp/{tag}-a") == "w0"
        # a symlink pointing at the canary path, then replacing a host file via move/remove
        server.sh(sandbox, f"ln -s /tmp/{c} /workspace/victim", user=link_user)
        server.post(files_url(sandbox, "/remove"), json={"path": f"/workspace/root/tmp/{c}"})
        server.post(files_url(sandbox, "/move"), json={"from": "/workspace/victim",
                                                         "to": "/workspace/moved"})
        server.post(files_url(sandbox, "/move"), json={"from": "/workspace/moved",
                                                         "to": f"/workspace/l_selfroot/tmp/{c}"})
        assert open(canary.tmp_path).read() == canary.content
        assert os.path.isfile(canary.tmp_path) and not os.path.islink(canary.tmp_path)
        for p in (f"/tmp/{tag}-a", f"/tmp/{tag}-b"):
                assert not os.path.lexists(p)
        assert not server_errors, f"server errors on writes through symlinks: {server_errors}"


def test_symlink_swap_during_upload(server, sandbox, canary):
        """A race: sandbox code flips a directory to a symlink to / while uploads go on."""
        server.sh(sandbox, "mkdir -p /workspace/race")
        flipper = ("end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do "
                   "rm -rf /workspace/race; mkdir /workspace/race; "
                   "rm -rf /workspace/race; ln -s /tmp /workspace/race; done; echo flipped")
        import concurrent.futures
        tag = "warren-race-" + secrets.token_hex(6)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
                fut = pool.submit(server.exec, sandbox, flipper, timeout=10000)
                for i in range(60):
                        server.post(files_url(sandbox), json={"files": [
                                {"path": f"/workspace/race/{tag}-{i}", "content": b64("r")}]})
                        assert_no_leak(read_attempt(server, sandbox, f"/workspace/race/{canary.name}"),
                                       canary)
                assert fut.result(timeout=30)["stdout"].endswith("flipped\n")
        leaked = [p for p in os.listdir("/tmp") if p.startswith(tag)]
        assert not leaked, f"race writes reached the host /tmp: {leaked}"


@pytest.mark.parametrize("user", USERS)
def test_usr_is_read_only(server, sandbox, user):
        name = "warren-evil-" + secrets.token_hex(6)
        res = server.exec(sandbox, f"touch /usr/bin/{name}; echo x > /usr/lib/{name}; "
                          f"chmod 777 /usr/bin/ls; rm -f /usr/bin/env; mv /usr/bin/true /usr/bin/{name}; "
                          f"ln -s /etc /usr/{name}; echo done", user=user)
        assert res["stdout"].endswith("done\n")
        for p in (f"/usr/bin/{name}", f"/usr/lib/{name}", f"/usr/{name}"):
                assert not os.path.lexists(p), f"{p} was created on the host"
        assert os.path.exists("/usr/bin/env") and os.path.exists("/usr/bin/true")
        assert oct(os.stat("/usr/bin/ls").st_mode & 0o777) == "0o755"
        assert server.exec(sandbox, f"test -e /usr/bin/{name}")["exit_code"] == 1
        # remounting read-write is no way around it
        res = server.exec(sandbox, "mount -o remount,rw /usr && touch /usr/bin/" + name,
                          user=user)
        assert res["exit_code"] != 0
        assert not os.path.lexists(f"/usr/bin/{name}")


def test_template_cannot_be_changed_from_inside(server, sandbox):
        tpl_passwd = os.path.join(server.data_dir, "templates", "base", "rootfs", "etc", "passwd")
        assert os.path.isfile(tpl_passwd), f"base template not where expected: {tpl_passwd}"
        before = hashlib.sha256(open(tpl_passwd, "rb").read()).hexdigest()
        original = server.sh(sandbox, "cat /etc/passwd")
        res = server.exec(sandbox, "echo 'x::0:0::/:/bin/sh' > /etc/passwd; "
                          "echo pwned > /etc/warren-evil; rm -f /etc/group; "
                          "touch /usr/bin/x; echo done", user="root")
        assert res["stdout"].endswith("done\n")
        # the changes (where allowed) are the sandbox's own
        now = server.exec(sandbox, "cat /etc/passwd")["stdout"]
        assert now in (original, "x::0:0::/:/bin/sh\n")
        # the template and new sandboxes are untouched
        assert hashlib.sha256(open(tpl_passwd, "rb").read()).hexdigest() == before
        fresh = server.create(disk="64Mi")
        try:
                assert server.sh(fresh, "cat /etc/passwd") == original
                assert server.exec(fresh, "test -e /etc/warren-evil")["exit_code"] == 1
                assert server.exec(fresh, "test -e /etc/group")["exit_code"] == 0
                assert server.exec(fresh, "test -e /usr/bin/x")["exit_code"] == 1
        finally:
                server.delete(fresh)
        assert not os.path.exists(os.path.join(server.data_dir, "templates", "base", "rootfs",
                                               "etc", "warren-evil"))


@pytest.mark.parametrize("user", USERS)
def test_no_hardlink_to_host_files(server, sandbox, canary, user):
        res = server.exec(sandbox, f"ln /tmp/{canary.name} /workspace/h1; "
                          f"ln /proc/1/root/tmp/{canary.name} /workspace/h2; "
                          f"cat /workspace/h1 /workspace/h2", user=user)
        assert canary.content not in res["stdout"]
        assert os.stat(canary.tmp_path).st_nlink == 1
