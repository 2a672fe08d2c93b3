"""paths: the cache dir and its fixed files are ours or refused (issue 14 items 14, 15)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccc_statusd.paths import Paths, UnsafeCacheDir

NOBODY = 65534
DAEMON = [sys.executable, "-m", "ccc_statusd.daemon", "--no-watchers"]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")


@pytest.fixture
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(dir="/tmp", prefix="ccc-paths-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_created_0700(base: Path) -> None:
    p = Paths(base / "a" / "cache")
    p.ensure_dir()
    assert (p.cache_dir.stat().st_mode & 0o777) == 0o700


def test_group_or_other_access_is_refused_with_the_chmod(base: Path) -> None:
    d = base / "c"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(UnsafeCacheDir, match=f"chmod 700 {d}"):
        Paths(d).ensure_dir()
    assert (d.stat().st_mode & 0o777) == 0o777, "never silently changed"


def test_symlinked_cache_dir_is_refused(base: Path) -> None:
    real = base / "real"
    real.mkdir(mode=0o700)
    (base / "link").symlink_to(real)
    with pytest.raises(UnsafeCacheDir, match="symbolic link"):
        Paths(base / "link").ensure_dir()


def test_a_file_as_cache_dir_is_refused(base: Path) -> None:
    (base / "f").write_text("")
    with pytest.raises(UnsafeCacheDir, match="regular file, not a directory"):
        Paths(base / "f").ensure_dir()


@pytest.mark.parametrize("kind", ["symlink", "fifo", "dir"])
def test_planted_fixed_files_are_refused(base: Path, kind: str) -> None:
    p = Paths(base / "c")
    p.ensure_dir()
    for f in p.fixed_files:
        if kind == "symlink":
            f.symlink_to(base / "victim")
        elif kind == "fifo":
            os.mkfifo(f)
        else:
            f.mkdir()
        with pytest.raises(UnsafeCacheDir, match="not a regular file"):
            p.check_fixed_files()
        if kind == "dir":
            f.rmdir()
        else:
            f.unlink()
    p.check_fixed_files()


def _as_nobody(fn: str, *args: str) -> None:
    """Run a small Python snippet as uid ``nobody`` (the attacker)."""
    code = f"import os,sys\nos.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n" + fn
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=20)


@root_only
def test_tmp_fallback_precreated_by_another_user_is_refused(base: Path) -> None:
    """Issue 14 item 14: the attacker pre-creates the victim's cache dir (0777) with a
    ``daemon.pid`` symlink; the victim's daemon must refuse (exit 1, a clear message) and
    touch nothing."""
    os.chmod(base, 0o777)
    victim_dir = base / "ccc-status-0"
    secret = base / "attacker-target"
    _as_nobody(
        "import sys\n"
        "d, t = sys.argv[1], sys.argv[2]\n"
        "os.mkdir(d); os.chmod(d, 0o777)\n"
        "open(t, 'w').write('attacker file\\n')\n"
        "os.symlink(t, d + '/daemon.pid')\n"
        "open(d + '/daemon.log', 'w').close()\n",
        str(victim_dir),
        str(secret),
    )
    result = subprocess.run(
        [*DAEMON, "--cache-dir", str(victim_dir)], capture_output=True, timeout=20
    )
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert f"belongs to uid {NOBODY}" in err and "chown" in err, err
    assert secret.read_text() == "attacker file\n"
    assert (secret.stat().st_mode & 0o777) != 0o600
    assert os.path.getsize(victim_dir / "daemon.log") == 0
    assert not (victim_dir / "daemon.sock").exists()


@root_only
def test_explicit_cache_dir_of_another_uid_is_refused(base: Path) -> None:
    d = base / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, NOBODY, NOBODY)
    result = subprocess.run(
        DAEMON, capture_output=True, timeout=20, env={**os.environ, "CCC_CACHE_DIR": str(d)}
    )
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert f"chown 0 {d}" in err, err


@root_only
def test_clients_refuse_a_socket_served_by_another_user(base: Path) -> None:
    """Issue 14 item 14: the attacker swapped the socket and read the victim's hook payloads.
    Every client checks the listener's uid (SO_PEERCRED) before sending a byte."""
    from ccc_statusd import hookcmd, statusline
    from ccc_statusd.client import Client, DaemonNotRunning

    os.chmod(base, 0o777)
    sock_path = base / "daemon.sock"
    got = base / "got"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os,socket,sys\n"
            f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
            "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)\n"
            "s.listen(8); print('ready', flush=True)\n"
            "data = b''\n"
            "for _ in range(3):\n"
            "    c, _ = s.accept(); c.settimeout(1)\n"
            "    try:\n"
            "        data += c.recv(65536)\n"
            "    except OSError:\n"
            "        pass\n"
            "    c.close()\n"
            "open(sys.argv[2], 'wb').write(data)\n",
            str(sock_path),
            str(got),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        with pytest.raises(DaemonNotRunning, match=f"served by uid {NOBODY}"):
            Client(sock_path, timeout=5).query("ping")
        assert hookcmd.send_line(str(sock_path), b'{"type":"hook","data":{"secret":1}}\n') is False
        assert statusline.exchange(sock_path, b'{"type":"statusline"}\n', 2.0) is None
        server.wait(timeout=20)
        assert got.read_bytes() == b"", "nothing reached the other user's socket"
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_store_never_opens_a_planted_database_file(base: Path, suffix: str) -> None:
    """Issue 14 item 15: ``scheduled.db`` symlinked to an empty file was turned into a database
    (and chmodded); every opener of the store refuses it."""
    from ccc_statusd.store import Store

    p = Paths(base / "c")
    p.ensure_dir()
    victim = base / "victim"
    victim.write_bytes(b"")
    os.chmod(victim, 0o644)
    Path(str(p.db) + suffix).symlink_to(victim)
    with pytest.raises(UnsafeCacheDir, match="symbolic link"):
        Store(p.db)
    assert victim.read_bytes() == b"" and (victim.stat().st_mode & 0o777) == 0o644
