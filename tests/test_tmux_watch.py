"""The tmux pane watcher against a real tmux server on a private socket, plus the cases where it
must not run tmux at all (checked with a fake tmux that leaves a mark when run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ccc_statusd.watchers.tmux import (
    TmuxPane,
    default_socket_path,
    list_live_panes,
    run_tmux_watcher,
)

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


@pytest.fixture
def tmp(short_dir: Path) -> Path:
    return short_dir


class Server:
    """A private tmux server (`-S <socket in a temp dir>`), killed at teardown."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        return subprocess.run(
            [TMUX, "-S", str(self.socket), "-f", "/dev/null", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def new_pane(self) -> str:
        return self.tmux("split-window", "-d", "-P", "-F", "#{pane_id}", "sleep 600")

    def kill(self) -> None:
        subprocess.run(
            [TMUX or "tmux", "-S", str(self.socket), "kill-server"],
            env=self.env,
            capture_output=True,
        )


@pytest.fixture
def server(tmp: Path) -> Iterator[Server]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    srv = Server(tmp / f"s-{uuid.uuid4().hex[:8]}", env)
    srv.tmux("new-session", "-d", "-x", "80", "-y", "24", "sleep 600")
    yield srv
    srv.kill()


def collector() -> tuple[
    trio.MemorySendChannel[tuple[str, bool]], trio.MemoryReceiveChannel[tuple[str, bool]]
]:
    return trio.open_memory_channel[tuple[str, bool]](100)


async def receive_n(
    receive: trio.MemoryReceiveChannel[tuple[str, bool]], n: int
) -> set[tuple[str, bool]]:
    return {await receive.receive() for _ in range(n)}


@needs_tmux
async def test_alive_then_dead_panes(
    server: Server, autojump_clock: trio.testing.MockClock
) -> None:
    sock = str(server.socket)
    p1, p2 = server.new_pane(), server.new_pane()
    panes = {"a": TmuxPane(p1, sock), "b": TmuxPane(p2, sock), "c": TmuxPane("%999", sock)}
    send, receive = collector()

    async def on_pane(sid: str, alive: bool) -> None:
        await send.send((sid, alive))

    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_tmux_watcher(
                lambda: panes,
                on_pane,
                interval_s=5.0,
                command_timeout_s=None,
                task_status=task_status,
            )
        )
        assert await receive_n(receive, 3) == {("a", True), ("b", True), ("c", False)}

        server.tmux("kill-pane", "-t", p2)
        assert await receive.receive() == ("b", False)

        await trio.sleep(60)  # nothing changed: nothing reported
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()

        # A session that moves to another pane is reported afresh.
        p3 = server.new_pane()
        panes["b"] = TmuxPane(p3, sock)
        assert await receive.receive() == ("b", True)

        server.kill()  # no server: every pane on it is dead
        assert await receive_n(receive, 2) == {("a", False), ("b", False)}
        nursery.cancel_scope.cancel()


@needs_tmux
async def test_plain_pane_ids_use_the_default_server(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    # Point "the default server" at a private TMUX_TMPDIR so the user's own server is untouched.
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp))
    sock = default_socket_path()
    assert sock == tmp / f"tmux-{os.getuid()}" / "default"
    sock.parent.mkdir(mode=0o700)
    srv = Server(sock, {**os.environ})
    srv.tmux("new-session", "-d", "sleep 600")
    try:
        pane = srv.new_pane()
        send, receive = collector()
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_tmux_watcher(
                    lambda: {"s": pane, "t": "%4242"},
                    lambda s, a: send.send_nowait((s, a)),  # a sync callback
                    interval_s=1.0,
                    command_timeout_s=None,
                    task_status=task_status,
                )
            )
            assert await receive_n(receive, 2) == {("s", True), ("t", False)}
            nursery.cancel_scope.cancel()
    finally:
        srv.kill()


def fake_tmux(tmp: Path) -> tuple[Path, Path]:
    """A tmux stand-in that records each run in a marker file and fails."""
    marker = tmp / "ran"
    script = tmp / "fake-tmux"
    script.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexit 1\n')
    script.chmod(0o755)
    return script, marker


async def test_no_subprocess_without_panes(
    tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    script, marker = fake_tmux(tmp)
    calls: list[tuple[str, bool]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_tmux_watcher(
                dict, lambda s, a: calls.append((s, a)), tmux=str(script), task_status=task_status
            )
        )
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert calls == [] and not marker.exists()


async def test_no_subprocess_when_the_server_socket_is_missing(
    tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    script, marker = fake_tmux(tmp)
    calls: list[tuple[str, bool]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_tmux_watcher(
                lambda: {"s": TmuxPane("%1", str(tmp / "no-such-socket"))},
                lambda s, a: calls.append((s, a)),
                tmux=str(script),
                task_status=task_status,
            )
        )
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert calls == [("s", False)]  # reported once, not once per poll
    assert not marker.exists()


async def test_idles_when_tmux_is_not_installed(
    tmp: Path, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[tuple[str, bool]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_tmux_watcher(
                lambda: {"s": "%1"},
                lambda s, a: calls.append((s, a)),
                tmux=str(tmp / "no-tmux-here"),
                task_status=task_status,
            )
        )
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert calls == []  # unknown, so nothing is claimed


async def test_an_unexpected_tmux_failure_means_unknown(tmp: Path) -> None:
    script, marker = fake_tmux(tmp)
    sock = tmp / "sock"
    sock.touch()  # a socket path that exists, so tmux is run (and fails oddly)
    assert await list_live_panes(str(script), str(sock), timeout_s=None) is None
    assert marker.read_text().splitlines() == [f"-S {sock} list-panes -a -F #{{pane_id}}"]


@needs_tmux
async def test_list_live_panes_no_server_behind_a_stale_socket(tmp: Path) -> None:
    import socket as socketlib

    path = tmp / "stale"
    s = socketlib.socket(socketlib.AF_UNIX)
    s.bind(str(path))  # bound, never listening: tmux gets "connection refused"
    s.close()
    assert TMUX is not None
    assert await list_live_panes(TMUX, str(path), timeout_s=None) == set()
