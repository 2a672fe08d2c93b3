"""``ccc-statusd`` as a real subprocess: start-up, refusal to run twice, signals, stale socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ccc_statusd.paths import Paths

from .helpers import wait_until_sync

DAEMON = [sys.executable, "-m", "ccc_statusd.daemon"]


def start(paths: Paths, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*DAEMON, "--cache-dir", str(paths.cache_dir), "--no-watchers", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        return ping(paths.socket)

    try:
        wait_until_sync(up, what="the daemon answers a ping")
    except AssertionError:
        proc.kill()
        raise
    return proc


def ping(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(path))
            s.sendall(b'{"type":"query","query":"ping"}\n')
            return json.loads(s.makefile().readline())["data"] == "pong"
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err.decode()


def test_start_serve_and_sigterm_cleanly(paths: Paths) -> None:
    proc = start(paths)
    try:
        assert paths.pid.read_text().strip() == str(proc.pid)
        assert paths.log.exists()
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert not paths.socket.exists()
    assert not paths.pid.exists()
    assert "listening on" in paths.log.read_text()


def test_sigint_also_exits_zero(paths: Paths) -> None:
    proc = start(paths)
    code, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert not paths.socket.exists()


def test_refuses_to_run_twice(paths: Paths) -> None:
    first = start(paths)
    try:
        second = subprocess.run(
            [*DAEMON, "--cache-dir", str(paths.cache_dir), "--no-watchers"],
            capture_output=True,
            timeout=10,
        )
        assert second.returncode == 1
        assert f"already running (pid {first.pid}" in second.stderr.decode()
        assert ping(paths.socket), "the first daemon must keep serving"
    finally:
        stop(first)


def test_stale_socket_is_replaced(paths: Paths) -> None:
    paths.ensure_dir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(paths.socket))
    stale.close()  # a socket file nobody listens on, as a crashed daemon leaves behind
    proc = start(paths)
    stop(proc)


def test_non_socket_file_is_not_deleted(paths: Paths) -> None:
    paths.ensure_dir()
    paths.socket.write_text("precious")
    result = subprocess.run(
        [*DAEMON, "--cache-dir", str(paths.cache_dir), "--no-watchers"],
        capture_output=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert paths.socket.read_text() == "precious"


def test_sighup_keeps_serving(paths: Paths) -> None:
    proc = start(paths)
    try:
        proc.send_signal(signal.SIGHUP)
        # handled (it re-scans), and still serving
        wait_until_sync(
            lambda: "SIGHUP: re-scanning" in paths.log.read_text(), what="SIGHUP logged"
        )
        assert ping(paths.socket)
    finally:
        code, _ = stop(proc)
    assert code == 0


def test_version_flag() -> None:
    out = subprocess.run([*DAEMON, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("ccc-statusd ")


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
def test_kill_9_then_restart(paths: Paths) -> None:
    proc = start(paths)
    proc.kill()
    proc.communicate(timeout=10)
    assert paths.socket.exists() and paths.pid.exists()  # left behind by the crash
    again = start(paths)
    code, err = stop(again)
    assert code == 0, err


def test_scheduled_message_survives_kill_9_and_is_delivered_after_restart(paths: Paths) -> None:
    """SIGKILL before the message is due; on restart it is delivered to the session's client."""
    proc = start(paths)
    sid = "kill9-sess-0001"
    cli = [sys.executable, "-m", "ccc_statusd.cli", "--socket", str(paths.socket)]
    # The session must be known for the CLI to resolve it: a client registers once, then leaves.
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(paths.socket))
        s.sendall(
            json.dumps({"type": "register", "internal_id": "iid-k9", "session_id": sid}).encode()
            + b"\n"
        )
        s.makefile().readline()
    out = subprocess.run(
        [*cli, "schedule", sid, "after the crash", "--in", "2s"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    proc.kill()  # before it is due
    proc.communicate(timeout=10)
    again = start(paths)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(15)
            s.connect(str(paths.socket))
            f = s.makefile("rwb")
            f.write(
                json.dumps(
                    {
                        "type": "register",
                        "internal_id": "iid-k9",
                        "session_id": sid,
                        "request_id": "r",
                    }
                ).encode()
                + b"\n"
            )
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if msg.get("type") == "prompt":
                    break
            assert msg["text"] == "after the crash"
            f.write(
                json.dumps({"type": "response", "request_id": msg["request_id"]}).encode() + b"\n"
            )
            f.flush()

        def schedule_empty() -> bool:
            listed = subprocess.run(
                [*cli, "schedule", "list", "--json"], capture_output=True, text=True, timeout=30
            )
            return json.loads(listed.stdout) == []

        # deleted only after the acknowledgement
        wait_until_sync(schedule_empty, interval_s=0.1, what="the schedule is empty")
    finally:
        stop(again)


def test_client_reports_the_daemons_refusal(paths: Paths) -> None:
    """A refused connection (here: the connection cap) reads as the daemon's own sentence."""
    from ccc_statusd.client import Client, DaemonError

    proc = start(paths, "--max-connections", "1")
    try:
        with socket.socket(socket.AF_UNIX) as holder:
            holder.connect(str(paths.socket))
            holder.sendall(b'{"type":"query","query":"ping"}\n')
            holder.makefile().readline()  # the one slot is taken
            with Client(paths.socket, timeout=5) as client, pytest.raises(DaemonError) as err:
                client.query("ping")
            assert "too many connections" in str(err.value)
    finally:
        stop(proc)


# --- hostile: signals during start-up, planted files, a full disk (issue 14) -----------------


@pytest.mark.parametrize("delay_s", [0.0, 0.005, 0.03, 0.1])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_startup_stops_cleanly(paths: Paths, sig: int, delay_s: float) -> None:
    """From the instant the socket exists (heavy imports still loading, the database not yet
    open), SIGTERM/SIGINT is a clean stop: exit 0, socket and pid file removed."""
    proc = subprocess.Popen(
        [*DAEMON, "--cache-dir", str(paths.cache_dir), "--no-watchers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while not paths.socket.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "no socket appeared"
        time.sleep(0.0005)
    if delay_s:
        time.sleep(delay_s)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert not paths.socket.exists()
    assert not paths.pid.exists()
    assert b"Traceback" not in err, err.decode()


@pytest.mark.parametrize("name", ["daemon.pid", "daemon.log", "scheduled.db", "scheduled.db-wal"])
@pytest.mark.parametrize("kind", ["symlink", "fifo", "dir"])
def test_planted_fixed_file_is_refused(paths: Paths, tmp_path: Path, name: str, kind: str) -> None:
    paths.ensure_dir()
    target = tmp_path / "victim"
    target.write_text("precious\n")
    planted = paths.cache_dir / name
    if kind == "symlink":
        planted.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(planted)
    else:
        planted.mkdir()
    result = subprocess.run(
        [*DAEMON, "--cache-dir", str(paths.cache_dir), "--no-watchers"],
        capture_output=True,
        timeout=10,
    )
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "refusing to start" in err and name in err and "rm " in err, err
    assert "Traceback" not in err
    assert target.read_text() == "precious\n"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600) or kind != "symlink"
    assert not paths.socket.exists()


def test_log_fifo_does_not_hang_startup(paths: Paths) -> None:
    paths.ensure_dir()
    os.mkfifo(paths.log)
    result = subprocess.run(
        [*DAEMON, "--cache-dir", str(paths.cache_dir), "--no-watchers"],
        capture_output=True,
        timeout=10,
    )
    assert result.returncode == 1
    assert "FIFO" in result.stderr.decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_full_disk_sigterm_exits_cleanly(tmp_path: Path) -> None:
    """The cache dir on a disk that fills up while the daemon runs: SIGTERM still exits 0 after
    closing the database, and the log says the disk is full, not "internal error"."""
    mnt = Path(tempfile.mkdtemp(dir="/tmp", prefix="cccfull"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        paths = Paths(mnt / "c")
        paths.ensure_dir()
        proc = start(paths)
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(paths.socket))
                s.sendall(b'{"type":"register","internal_id":"full-1","session_id":"full-0001"}\n')
                s.makefile().readline()
                # Fill the disk.
                with open(mnt / "filler", "wb") as fh:
                    try:
                        while True:
                            fh.write(b"\0" * 65536)
                            fh.flush()
                    except OSError:
                        pass
                s.sendall(
                    b'{"type":"heartbeat","internal_id":"full-1","session_id":"full-0001",'
                    b'"data":{"cwd":"/x' + b"y" * 100000 + b'"}}\n'
                )
                s.makefile().readline()
        finally:
            code, err = stop(proc)
        assert code == 0, err
        assert "disk is full" in err, err
        assert "Traceback" not in err, err
        assert "ccc-statusd stopped" in err, err
        assert not paths.socket.exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
        os.rmdir(mnt)
