"""``ccc-statusd`` as a real subprocess: start-up, refusal to run twice, signals, stale socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
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
