"""The files API against a real sandbox: write/read, list/stat/exists/mkdir/remove/move,
streamed upload/download, errors."""
import base64
import hashlib
import os
import socket
import time


from warren_harness import MiB, assert_error, b64, parse_time


# api.md: 409 `conflict` for "file exists / not a directory" (and a non-empty directory).
# If the API grows finer codes (not_a_directory, directory_not_empty...), list them here
# and in docs/api.md together.
CONFLICT = ("conflict",)


def files_url(sid, sub=""):
        return f"/api/v1/sandbox/{sid}/files{sub}"


def test_write_and_read_back(server, sandbox):
        data = b"print('Hello from sandbox!')\n\x00\xff binary too"
        r = server.post(files_url(sandbox), json={"files": [
                {"path": "/workspace/hello.py", "content": b64(data)},
                {"path": "/workspace/run.sh", "content": b64("#!/bin/sh\necho ran\n"),
                 "mode": "0755"}]})
        assert r.status_code in (200, 201), r.text
        assert r.json() == {"files": [{"path": "/workspace/hello.py", "size": len(data)},
                                      {"path": "/workspace/run.sh", "size": 19}]}
        r = server.get(files_url(sandbox), params={"path": "/workspace/hello.py"})
        assert r.status_code == 200
        b = r.json()
        assert b["path"] == "/workspace/hello.py" and b["size"] == len(data)
        assert base64.b64decode(b["content"]) == data
        # the sandbox sees the same bytes, owned by the sandbox user, with the asked mode
        assert server.sh(sandbox, "sha256sum < /workspace/hello.py").split()[0] == \
                hashlib.sha256(data).hexdigest()
        assert server.sh(sandbox, "stat -c '%a %u %g' /workspace/hello.py "
                         "/workspace/run.sh") == "644 1001 1001\n755 1001 1001\n"
        assert server.sh(sandbox, "/workspace/run.sh") == "ran\n"
        # and a file written inside is readable outside
        server.sh(sandbox, "printf 'inside\\n' > /workspace/in.txt")
        assert server.read_file(sandbox, "/workspace/in.txt") == b"inside\n"
        # overwrite replaces the content entirely
        server.write_file(sandbox, "/workspace/hello.py", b"x")
        assert server.read_file(sandbox, "/workspace/hello.py") == b"x"


def test_empty_file_and_nested_parents(server, sandbox):
        server.write_file(sandbox, "/workspace/a/b/c/d.txt", b"deep")
        server.write_file(sandbox, "/workspace/empty", b"")
        assert server.read_file(sandbox, "/workspace/a/b/c/d.txt") == b"deep"
        assert server.read_file(sandbox, "/workspace/empty") == b""
        assert server.sh(sandbox, "stat -c '%F %u' /workspace/a /workspace/a/b/c") == \
                "directory 1001\ndirectory 1001\n"
        # /tmp and the home directory are writable too
        server.write_file(sandbox, "/tmp/t.txt", b"t")
        server.write_file(sandbox, "/home/user/h.txt", b"h")
        assert server.sh(sandbox, "cat /tmp/t.txt /home/user/h.txt") == "th"


def test_bad_base64_writes_nothing(server, sandbox):
        r = server.post(files_url(sandbox), json={"files": [
                {"path": "/workspace/good.txt", "content": b64("fine")},
                {"path": "/workspace/bad.txt", "content": "!!!not base64!!!"}]})
        assert_error(r, 400, "invalid_request")
        for p in ("/workspace/good.txt", "/workspace/bad.txt"):
                r = server.get(files_url(sandbox, "/exists"), params={"path": p})
                assert r.status_code == 200 and r.json() == {"path": p, "exists": False}
        for body in ({"files": [{"path": "/workspace/x", "content": "QUJD$"}]},
                     {"files": [{"path": "/workspace/x"}]},
                     {"files": [{"content": b64("x")}]},
                     {"files": "nope"},
                     {"files": [{"path": "relative.txt", "content": b64("x")}]},
                     {"files": [{"path": "/workspace/x", "content": b64("x"), "mode": "999"}]},
                     {"files": [{"path": "/workspace/x", "content": b64("x"),
                                 "mode": "rwxrwxrwx"}]},
                     {}):
                assert_error(server.post(files_url(sandbox), json=body), 400,
                             ("invalid_request", "invalid_json"))
        assert server.sh(sandbox, "ls -A /workspace") == ""


def test_read_errors(server, sandbox):
        assert_error(server.get(files_url(sandbox), params={"path": "/workspace/missing"}),
                     404, "not_found")
        assert_error(server.get(files_url(sandbox, "/download"),
                                params={"path": "/workspace/missing"}), 404, "not_found")
        assert_error(server.get(files_url(sandbox), params={"path": "workspace/rel"}), 400,
                     "invalid_request")
        assert_error(server.get(files_url(sandbox)), 400, "invalid_request", mentions="path")
        assert_error(server.get(files_url(sandbox) + "?path=/workspace/a%00b"), 400,
                     "invalid_request")
        # a directory is not a file
        r = server.get(files_url(sandbox), params={"path": "/workspace"})
        assert r.status_code in (400, 409), r.text
        assert_error(r, r.status_code)


def test_read_limit_is_413(server, sandbox):
        server.sh(sandbox, "truncate -s 65M /workspace/sparse")
        assert_error(server.get(files_url(sandbox), params={"path": "/workspace/sparse"}), 413,
                     "payload_too_large")
        # download streams it instead
        with server.get(files_url(sandbox, "/download"), params={"path": "/workspace/sparse"},
                        stream=True, timeout=60) as r:
                assert r.status_code == 200
                assert int(r.headers["Content-Length"]) == 65 * MiB
                n = sum(len(c) for c in r.iter_content(MiB))
        assert n == 65 * MiB


def test_list_stat_exists(server, sandbox):
        server.write_file(sandbox, "/workspace/d/f.txt", b"12345", mode="0600")
        server.sh(sandbox, "mkdir /workspace/d/sub && ln -s f.txt /workspace/d/link && "
                  "mkfifo /workspace/d/fifo")
        r = server.get(files_url(sandbox, "/list"), params={"path": "/workspace/d"})
        assert r.status_code == 200
        b = r.json()
        assert b["path"] == "/workspace/d"
        ents = {e["name"]: e for e in b["entries"]}
        assert set(ents) == {"f.txt", "sub", "link", "fifo"}
        assert ents["f.txt"]["type"] == "file" and ents["f.txt"]["size"] == 5
        assert ents["f.txt"]["mode"] == "0600"
        assert ents["f.txt"]["path"] == "/workspace/d/f.txt"
        parse_time(ents["f.txt"]["modified"])
        assert ents["sub"]["type"] == "directory"
        assert ents["link"]["type"] == "symlink", "symlinks are reported, not followed"
        assert ents["fifo"]["type"] == "other"
        st = server.get(files_url(sandbox, "/stat"), params={"path": "/workspace/d/f.txt"}).json()
        assert st["path"] == "/workspace/d/f.txt" and st["name"] == "f.txt"
        assert (st["type"], st["size"], st["mode"], st["uid"], st["gid"]) == \
                ("file", 5, "0600", 1001, 1001)
        st = server.get(files_url(sandbox, "/stat"), params={"path": "/workspace/d/link"}).json()
        assert st["type"] == "symlink"
        st = server.get(files_url(sandbox, "/stat"), params={"path": "/usr/bin"}).json()
        assert st["type"] == "directory"
        assert_error(server.get(files_url(sandbox, "/stat"), params={"path": "/nope"}), 404,
                     "not_found")
        assert_error(server.get(files_url(sandbox, "/list"), params={"path": "/nope"}), 404,
                     "not_found")
        r = server.get(files_url(sandbox, "/list"), params={"path": "/workspace/d/f.txt"})
        assert r.status_code in (400, 409), r.text
        for p, want in (("/workspace/d/f.txt", True), ("/workspace/d", True),
                        ("/workspace/none", False), ("/etc/passwd", True)):
                r = server.get(files_url(sandbox, "/exists"), params={"path": p})
                assert r.status_code == 200 and r.json() == {"path": p, "exists": want}


def test_mkdir_remove_move(server, sandbox):
        ok = (200, 201)
        r = server.post(files_url(sandbox, "/mkdir"), json={"path": "/workspace/a/b/c"})
        assert r.status_code in ok, r.text
        assert server.post(files_url(sandbox, "/mkdir"),
                           json={"path": "/workspace/a/b/c"}).status_code in ok
        assert server.sh(sandbox, "stat -c '%F %u' /workspace/a/b/c") == "directory 1001\n"
        server.write_file(sandbox, "/workspace/a/b/c/f", b"f")
        # a file in the way of mkdir, and a non-empty directory without recursive: the
        # specific 409 codes of docs/api.md
        r = server.post(files_url(sandbox, "/mkdir"), json={"path": "/workspace/a/b/c/f"})
        assert_error(r, 409, ("not_a_directory",))
        # remove
        assert_error(server.post(files_url(sandbox, "/remove"), json={"path": "/workspace/a"}),
                     409, ("directory_not_empty",))
        assert server.sh(sandbox, "cat /workspace/a/b/c/f") == "f"
        r = server.post(files_url(sandbox, "/remove"), json={"path": "/workspace/a",
                                                               "recursive": True})
        assert r.status_code == 200, r.text
        assert server.exec(sandbox, "test -e /workspace/a")["exit_code"] == 1
        assert_error(server.post(files_url(sandbox, "/remove"), json={"path": "/workspace/a"}),
                     404, "not_found")
        assert_error(server.post(files_url(sandbox, "/remove"), json={"path": "/",
                                                                        "recursive": True}),
                     400, "invalid_request")
        assert server.sh(sandbox, "ls /usr/bin | wc -l").strip() != "0"
        server.write_file(sandbox, "/workspace/single", b"s")
        assert server.post(files_url(sandbox, "/remove"),
                           json={"path": "/workspace/single"}).status_code == 200
        assert server.exec(sandbox, "test -e /workspace/single")["exit_code"] == 1
        # move, replacing an existing destination; both spellings
        server.write_file(sandbox, "/workspace/m1", b"one")
        server.write_file(sandbox, "/workspace/m2", b"two")
        r = server.post(files_url(sandbox, "/move"), json={"from": "/workspace/m1",
                                                             "to": "/workspace/m2"})
        assert r.status_code == 200, r.text
        assert server.read_file(sandbox, "/workspace/m2") == b"one"
        assert server.exec(sandbox, "test -e /workspace/m1")["exit_code"] == 1
        r = server.post(files_url(sandbox, "/move"), json={"source": "/workspace/m2",
                                                             "destination": "/workspace/n/m3"})
        assert r.status_code in (200, 404, 409), r.text
        if r.status_code != 200:
                server.post(files_url(sandbox, "/mkdir"), json={"path": "/workspace/n"})
                r = server.post(files_url(sandbox, "/move"),
                                json={"source": "/workspace/m2", "destination": "/workspace/n/m3"})
                assert r.status_code == 200, r.text
        assert server.read_file(sandbox, "/workspace/n/m3") == b"one"
        assert_error(server.post(files_url(sandbox, "/move"), json={"from": "/workspace/none",
                                                                      "to": "/workspace/x"}),
                     404, "not_found")
        assert_error(server.post(files_url(sandbox, "/move"), json={"from": "/workspace/n/m3"}),
                     400, "invalid_request")


def test_permissions_follow_the_sandbox_user(server, sandbox):
        """File operations run as uid 1001: what the user cannot write, the API cannot."""
        before = server.sh(sandbox, "cat /etc/passwd")
        r = server.post(files_url(sandbox), json={"files": [{"path": "/etc/passwd",
                                                             "content": b64("evil::0:0::/:/bin/sh\n")}]})
        assert_error(r, 403, "permission_denied")
        assert server.sh(sandbox, "cat /etc/passwd") == before
        r = server.post(files_url(sandbox), json={"files": [{"path": "/root/x",
                                                             "content": b64("x")}]})
        assert_error(r, 403, "permission_denied")
        r = server.post(files_url(sandbox), json={"files": [{"path": "/usr/bin/warren-evil",
                                                             "content": b64("x")}]})
        assert 400 <= r.status_code < 500, r.text
        assert not os.path.exists("/usr/bin/warren-evil")
        assert_error(server.post(files_url(sandbox, "/remove"), json={"path": "/etc/passwd"}),
                     403, "permission_denied")
        assert server.sh(sandbox, "cat /etc/passwd") == before
        # the daemon does not lend the API its own root powers (no DAC override)
        server.sh(sandbox, "mkdir /workspace/ro && echo keep > /workspace/ro/f && "
                  "chmod 444 /workspace/ro/f && chmod 555 /workspace/ro && "
                  "echo secret > /workspace/private && chmod 000 /workspace/private")
        r = server.post(files_url(sandbox), json={"files": [{"path": "/workspace/ro/new",
                                                             "content": b64("x")}]})
        assert_error(r, 403, "permission_denied")
        r = server.put(files_url(sandbox, "/upload"), params={"path": "/workspace/ro/new2"},
                       data=b"x")
        assert_error(r, 403, "permission_denied")
        assert_error(server.post(files_url(sandbox, "/remove"), json={"path": "/workspace/ro/f"}),
                     403, "permission_denied")
        assert_error(server.get(files_url(sandbox), params={"path": "/workspace/private"}), 403,
                     "permission_denied")
        assert_error(server.get(files_url(sandbox, "/download"),
                                params={"path": "/workspace/private"}), 403, "permission_denied")
        assert server.sh(sandbox, "ls /workspace/ro") == "f\n"
        # a planted symlink to a root-owned file does not make it writable
        server.sh(sandbox, "ln -s /etc/passwd /workspace/pw")
        r = server.post(files_url(sandbox), json={"files": [{"path": "/workspace/pw",
                                                             "content": b64("evil\n")}]})
        assert r.status_code in (200, 201, 403), r.text
        assert server.sh(sandbox, "cat /etc/passwd") == before


def _random_chunks(n_chunks, size, h):
        seed = os.urandom(size)
        for i in range(n_chunks):
                c = hashlib.sha256(seed + i.to_bytes(4, "little")).digest() * (size // 32)
                h.update(c)
                yield c


def test_upload_download_50mb_streamed(server, sandbox):
        size = 50 * MiB
        h = hashlib.sha256()
        r = server.put(files_url(sandbox, "/upload"), params={"path": "/workspace/big/big.bin"},
                       data=_random_chunks(50, MiB, h), timeout=120)
        assert r.status_code in (200, 201), r.text
        assert r.json() == {"path": "/workspace/big/big.bin", "size": size}
        want = h.hexdigest()
        assert server.sh(sandbox, "sha256sum /workspace/big/big.bin",
                         timeout=60000).split()[0] == want
        h2 = hashlib.sha256()
        n = 0
        with server.get(files_url(sandbox, "/download"), params={"path": "/workspace/big/big.bin"},
                        stream=True, timeout=120) as r:
                assert r.status_code == 200
                assert r.headers["Content-Type"].startswith("application/octet-stream")
                assert int(r.headers["Content-Length"]) == size
                for c in r.iter_content(MiB):
                        h2.update(c)
                        n += len(c)
        assert n == size and h2.hexdigest() == want


def test_upload_with_content_length_and_mode(server, sandbox):
        data = os.urandom(3 * MiB + 17)
        r = server.put(files_url(sandbox, "/upload"),
                       params={"path": "/workspace/cl.bin", "mode": "0700"}, data=data, timeout=60)
        assert r.status_code in (200, 201), r.text
        assert r.json()["size"] == len(data)
        assert server.sh(sandbox, "stat -c '%a %s %u' /workspace/cl.bin") == \
                f"700 {len(data)} 1001\n"
        r = server.get(files_url(sandbox, "/download"), params={"path": "/workspace/cl.bin"},
                       timeout=60)
        assert r.content == data


def test_interrupted_upload_leaves_old_file(server, sandbox):
        server.write_file(sandbox, "/workspace/keep.txt", b"original")
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall((f"PUT /api/v1/sandbox/{sandbox}/files/upload?path=/workspace/keep.txt "
                   f"HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ApiKey {server.api_key}\r\n"
                   f"Content-Length: {10 * MiB}\r\n\r\n").encode())
        s.sendall(b"partial" * (MiB // 7))
        time.sleep(0.3)
        s.close()
        time.sleep(1.0)
        assert server.read_file(sandbox, "/workspace/keep.txt") == b"original"
        names = server.sh(sandbox, "ls -A /workspace").split()
        assert names == ["keep.txt"], f"a partial upload left something behind: {names}"


def test_files_need_a_running_sandbox(server):
        sid = server.create(disk="64Mi")
        server.write_file(sid, "/workspace/f", b"f")
        server.stop_sandbox(sid)
        reqs = [("GET", files_url(sid), {"params": {"path": "/workspace/f"}}),
                ("POST", files_url(sid), {"json": {"files": [{"path": "/workspace/g",
                                                              "content": "Zw=="}]}}),
                ("GET", files_url(sid, "/list"), {"params": {"path": "/workspace"}}),
                ("GET", files_url(sid, "/stat"), {"params": {"path": "/workspace/f"}}),
                ("GET", files_url(sid, "/exists"), {"params": {"path": "/workspace/f"}}),
                ("GET", files_url(sid, "/download"), {"params": {"path": "/workspace/f"}}),
                ("PUT", files_url(sid, "/upload"), {"params": {"path": "/workspace/g"},
                                                    "data": b"g"}),
                ("POST", files_url(sid, "/mkdir"), {"json": {"path": "/workspace/d"}}),
                ("POST", files_url(sid, "/remove"), {"json": {"path": "/workspace/f"}}),
                ("POST", files_url(sid, "/move"), {"json": {"from": "/workspace/f",
                                                            "to": "/workspace/h"}})]
        for method, path, kw in reqs:
                assert_error(server.request(method, path, **kw), 409, CONFLICT)
        server.delete(sid)
