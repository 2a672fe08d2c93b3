"""``ccc notify`` as a real process against a real subprocess daemon, fed stand-in hooks:
each rule fires exactly once per transition, with the facts in the environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ccc_statusd.paths import Paths

from .test_daemon_process import start, stop
from .test_watchcmd import Lines, send, wait_subscribed

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"
OTHER = "0bf7fcec-6527-4470-9385-92271deedb9b"
FIELDS = ("CCC_EVENT", "CCC_SESSION", "CCC_NAME", "CCC_STATE", "CCC_TEXT", "CCC_DURATION")
RECORD = "printf '%s|%s|%s|%s|%s|%s\\n' " + " ".join(f'"${{{f}:-}}"' for f in FIELDS)


def hook(path: Path, sid: str, event: str, iid: str | None = None, **payload: Any) -> None:
    data = {"session_id": sid, "hook_event_name": event, **payload}
    env = {"CCC_INTERNAL_ID": iid} if iid else {}
    assert send(path, {"type": "hook", "data": data, "env": env}).get("error") is None


def alerts(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("|") for line in path.read_text().splitlines()]


def wait_alerts(path: Path, n: int, timeout: float = 10) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = alerts(path)
        if len(got) >= n:
            return got
        time.sleep(0.02)
    raise AssertionError(f"expected {n} alerts, got {alerts(path)}")


def notify(paths: Paths, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccc_statusd.cli", "--socket", str(paths.socket), "notify", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen[bytes], *lines: Lines) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    for line in lines:
        line.thread.join(5)


def test_each_rule_fires_once_per_transition(paths: Paths) -> None:
    out_file = paths.cache_dir / "alerts.txt"
    daemon = start(paths)
    proc = notify(
        paths, "--exec", f"{RECORD} >> {out_file}", "--long-turn", "0.5", "--blocked", "0.03"
    )
    out, err = Lines(proc.stdout), Lines(proc.stderr)  # type: ignore[arg-type]
    client = socket.socket(socket.AF_UNIX)
    try:
        wait_subscribed(paths)
        # waiting: once, though the permission Notification comes twice
        hook(paths.socket, SID, "SessionStart", source="startup")
        hook(paths.socket, SID, "Notification", notification_type="permission_prompt")
        hook(paths.socket, SID, "Notification", notification_type="permission_prompt")
        got = wait_alerts(out_file, 1)
        assert got[0][:4] == ["waiting", SID, "6656f299", "waiting"], got
        assert "6656f299 is waiting for you" in got[0][4]
        # long turn: a busy turn of ≥ 0.5 s fires once; a short one does not
        hook(paths.socket, SID, "UserPromptSubmit", prompt="long")
        time.sleep(0.6)  # the turn must last longer than --long-turn
        hook(paths.socket, SID, "Stop")
        got = wait_alerts(out_file, 2)
        assert got[1][:4] == ["long_turn", SID, "6656f299", "idle"], got
        assert float(got[1][5]) >= 0.5
        hook(paths.socket, SID, "UserPromptSubmit", prompt="short")
        hook(paths.socket, SID, "Stop")
        # blocked: a message queued behind a busy session for 1.8 s fires once
        client.connect(str(paths.socket))
        client.sendall(
            json.dumps(
                {"type": "register", "internal_id": "iid-n", "data": {"kind": "pty"}}
            ).encode()
            + b"\n"
        )
        hook(paths.socket, OTHER, "SessionStart", "iid-n", source="startup")
        hook(paths.socket, OTHER, "UserPromptSubmit", "iid-n", prompt="busy")
        reply = send(paths.socket, {"type": "prompt", "session_id": OTHER, "text": "stuck one"})
        assert reply["status"] == "queued", reply
        got = wait_alerts(out_file, 3)
        assert got[2][:4] == ["blocked", OTHER, "0bf7fcec", "busy"], got
        assert "stuck one" in got[2][4]
        out.wait_for("blocked")
        # nothing more fires: the short turn, the repeated Notification, the same message
        hook(paths.socket, SID, "Notification", notification_type="idle_prompt")
        hook(paths.socket, SID, "UserPromptSubmit", prompt="x")
        hook(paths.socket, SID, "Notification", notification_type="permission_prompt")
        got = wait_alerts(out_file, 4)
        assert [a[0] for a in got] == ["waiting", "long_turn", "blocked", "waiting"], got
    finally:
        client.close()
        finish(proc, out, err)
        stop(daemon)


def test_desktop_uses_notify_send_and_says_when_there_is_none(paths: Paths) -> None:
    bin_dir = paths.cache_dir / "bin"
    bin_dir.mkdir()
    record = paths.cache_dir / "notify-send.txt"
    fake = bin_dir / "notify-send"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {record}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    daemon = start(paths)
    path_env = f"{bin_dir}:{os.environ.get('PATH', '')}"
    proc = notify(paths, "--desktop", "--bell", env={"PATH": path_env})
    out, err = Lines(proc.stdout), Lines(proc.stderr)  # type: ignore[arg-type]
    try:
        wait_subscribed(paths)
        hook(paths.socket, SID, "SessionStart", source="startup")
        hook(paths.socket, SID, "Notification", notification_type="permission_prompt")
        line = out.wait_for("waiting")
        assert "\a" in line or any("\a" in s for s in out.seen)
        deadline = time.monotonic() + 10
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "-u critical" in record.read_text() and "6656f299" in record.read_text()
    finally:
        finish(proc, out, err)
        stop(daemon)
    # Without notify-send: a clear sentence, and the alerts are still printed.
    daemon = start(paths)
    proc = notify(paths, "--desktop", env={"PATH": "/nonexistent"})
    out, err = Lines(proc.stdout), Lines(proc.stderr)  # type: ignore[arg-type]
    try:
        err.wait_for("notify-send is not installed")
    finally:
        finish(proc, out, err)
        stop(daemon)


@pytest.mark.parametrize("bad", ["--long-turn=-3", "--blocked=soon"])
def test_bad_thresholds_are_usage_errors(paths: Paths, bad: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ccc_statusd.cli", "--socket", str(paths.socket), "notify", bad],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and ("negative" in proc.stderr or "duration" in proc.stderr)
