"""Who may connect (peers.py), with real daemons and real uids: a user namespace stands in for a
rootless container (its root maps to the owner), another uid for a rootful container's user.

The daemons here are subprocesses, so they can run as another uid (``nobody``) than the tests;
clients are subprocesses too (``unshare --user --map-root-user --mount`` with the cache dir
bind-mounted at /mnt, the way ``-v ~/.cache/ccc-status:/run/ccc`` reaches a container).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccc_statusd.peers import PeerPolicy, parse_uid

BIN = Path(sys.executable).parent
PY = sys.executable
NOBODY = 65534
# The client needs only the standard library; a system python, because the test's own may live
# under a 0700 home that another uid cannot reach from inside a user namespace.
CLIENT_PY = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or PY
OTHER = 4242  # a uid with no account, like the user a rootful container runs as

# The client: connect, ping, print what this process is inside and what the daemon said.
CLIENT = r"""
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print(json.dumps({"uid": os.getuid(), "reply": "EACCES"})); sys.exit(0)
try:
    s.sendall(b'{"type":"query","query":"ping"}\n')
except BrokenPipeError:
    pass
data = b""
try:
    while b"\n" not in data and (chunk := s.recv(65536)):
        data += chunk
except ConnectionResetError:
    pass
print(json.dumps({"uid": os.getuid(), "reply": data.decode()}))
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as other uids")


def as_user(uid: int | None) -> list[str]:
    """A command prefix that runs as ``uid`` with no groups (util-linux ``setpriv``, next to
    ``unshare``; Python's ``subprocess(user=...)`` is refused exec in some sandboxes)."""
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def _unshare_works() -> str | None:
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    try:
        r = subprocess.run(
            [*as_user(NOBODY), "unshare", "--user", "--map-root-user", "--mount", "true"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    return (
        None if r.returncode == 0 else f"user namespaces are not allowed here: {r.stderr.strip()}"
    )


def _ping(sock: Path) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(sock))
        s.sendall(b'{"type":"query","query":"ping"}\n')
        return b"pong" in s.recv(65536)
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def cache() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ccc-peer-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Daemon:
    def __init__(self, cache: Path, *extra: str, user: int | None = None) -> None:
        self.cache = cache
        if user is not None:
            os.chown(cache, user, user)
        self.proc = subprocess.Popen(
            [
                *as_user(user),
                str(BIN / "ccc-statusd"),
                "--cache-dir",
                str(cache),
                "--no-watchers",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not _ping(cache / "daemon.sock"):
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.02)

    def log(self) -> str:
        try:
            return (self.cache / "daemon.log").read_text()
        except OSError:
            return ""

    def open_up(self) -> None:
        """Let other uids reach the socket (what an ACL or a group would do for a container)."""
        os.chmod(self.cache, 0o711)
        os.chmod(self.cache / "daemon.sock", 0o666)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def client(sock: str, *, user: int | None, userns_mount: Path | None = None) -> dict[str, str]:
    """Run CLIENT as ``user``; with ``userns_mount``, inside a new user namespace as its root
    with that dir bind-mounted at /mnt (and ``sock`` is a path under /mnt)."""
    cmd = [CLIENT_PY, "-I", "-c", CLIENT, sock]
    if userns_mount is not None:
        cmd = [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            'mount --bind "$0" /mnt && exec "$@"',
            str(userns_mount),
            *cmd,
        ]
    r = subprocess.run([*as_user(user), *cmd], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out: dict[str, str] = json.loads(r.stdout)
    return out


# --- the policy ---------------------------------------------------------------------------


def test_policy_owner_root_and_allowed() -> None:
    p = PeerPolicy(1000, [4242, 1000, 0])
    assert p.allowed(1000) and p.allowed(0) and p.allowed(4242) and p.allowed(None)
    assert not p.allowed(4243)
    assert p.extra == frozenset({4242})
    assert p.why(1000) is None and p.why(None) is None
    assert "root" in str(p.why(0))
    assert "--allow-uid 4242" in str(p.why(4242))
    msg = p.refusal(4243)
    assert "uid 4243" in msg and "--allow-uid 4243" in msg and "uid 1000" in msg
    assert (
        p.describe() == "accepting connections from uid 1000 (owner), 0 (root), 4242 (--allow-uid)"
    )
    assert PeerPolicy(0).describe() == "accepting connections from uid 0 (owner)"


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1.5", "4294967295", "0x10"])
def test_parse_uid_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="--allow-uid"):
        parse_uid(bad)


def test_allow_uid_option_errors_name_the_option() -> None:
    r = subprocess.run(
        [str(BIN / "ccc-statusd"), "--allow-uid", "me"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "--allow-uid 'me' is not a uid" in r.stderr


# --- real uids ----------------------------------------------------------------------------


@needs_root
def test_rootless_container_root_is_the_owner(cache: Path) -> None:
    """A user namespace's root maps to the user's uid: the daemon sees its owner."""
    why = _unshare_works()
    if why:
        pytest.skip(why)
    d = Daemon(cache, user=NOBODY)
    try:
        out = client("/mnt/daemon.sock", user=NOBODY, userns_mount=cache)
        assert out["uid"] == 0  # root inside the "container" ...
        assert json.loads(out["reply"])["data"] == "pong"  # ... and the owner outside
        assert "refused" not in d.log()
        assert "accepting connections from uid 65534 (owner), 0 (root)" in d.log()
    finally:
        d.stop()


@needs_root
def test_root_is_accepted_and_logged(cache: Path) -> None:
    d = Daemon(cache, user=NOBODY)
    try:
        out = client(str(cache / "daemon.sock"), user=None)
        assert json.loads(out["reply"])["data"] == "pong"
        deadline = time.monotonic() + 10
        while "accepted a connection from uid 0" not in d.log():
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.02)
    finally:
        d.stop()


@needs_root
def test_rootful_container_uid_refused_then_allowed(cache: Path) -> None:
    """Another uid (a rootful container's user) is refused with the uid and the option named;
    with ``--allow-uid`` it gets in, and both the start-up and the connection are logged."""
    d = Daemon(cache)
    try:
        sock = str(cache / "daemon.sock")
        assert client(sock, user=OTHER)["reply"] == "EACCES"  # the file modes come first
        d.open_up()
        reply = json.loads(client(sock, user=OTHER)["reply"])
        assert f"uid {OTHER} may not use this daemon" in reply["error"]
        assert f"ccc-statusd --allow-uid {OTHER}" in reply["error"]
        assert f"refused a connection: permission denied: uid {OTHER}" in d.log()
    finally:
        d.stop()
    # The daemon only starts in a private cache dir (issue 14): close it again first.
    os.chmod(cache, 0o700)
    d = Daemon(cache, "--allow-uid", str(OTHER))
    try:
        d.open_up()
        reply = json.loads(client(str(cache / "daemon.sock"), user=OTHER)["reply"])
        assert reply["data"] == "pong"
        log = d.log()
        assert f"accepting connections from uid 0 (owner), {OTHER} (--allow-uid)" in log
        deadline = time.monotonic() + 10
        while f"accepted a connection from uid {OTHER} (allowed by --allow-uid" not in d.log():
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.02)
    finally:
        d.stop()
