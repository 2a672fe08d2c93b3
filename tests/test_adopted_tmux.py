"""An adopted session (started without `ccc run`) in a tmux pane: its hooks make it known, and
`prompt`/`command` reach it through tmux, only while it is idle. Real daemon, real tmux server,
the stand-in TUI firing the real `ccc hook` command."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccc_statusd.hub import Hub
from ccc_statusd.paths import Paths

from .helpers import wait_until
from .session_fakes import read_records

SENT = ("typed", "submitted")  # a prompt or command the session client typed

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

STANDIN = Path(__file__).with_name("standin_tui.py")


class Pane:
    def __init__(self, record: Path) -> None:
        self.record = record

    def records(self, event: str) -> list[dict[str, Any]]:
        return [r for r in read_records(self.record) if r["event"] == event]

    async def wait_stops(self, count: int) -> None:
        await wait_until(
            lambda: sum(1 for r in self.records("hook") if r.get("name") == "Stop") >= count,
            limit_s=15,
        )

    async def wait(self, event: str, count: int = 1) -> list[dict[str, Any]]:
        await wait_until(lambda: len(self.records(event)) >= count, limit_s=15)
        return self.records(event)


@pytest.fixture
def adopted(paths: Paths) -> Iterator[Pane]:
    """The stand-in TUI in a private tmux server, its hooks going to `ccc hook` (no ccc run)."""
    name = f"ccc-adopt-{uuid.uuid4().hex[:8]}"
    record = paths.cache_dir / "standin.jsonl"
    hook_cmd = shlex.join([sys.executable, "-m", "ccc_statusd.hookcmd"])
    command = shlex.join(
        [sys.executable, str(STANDIN), "--record", str(record), "--hook-cmd", hook_cmd]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CCC_INTERNAL_ID")}
    env["CCC_CACHE_DIR"] = str(paths.cache_dir)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    base = ["tmux", "-L", name, "-f", "/dev/null"]
    paths.ensure_dir()
    subprocess.run(
        [*base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "t", command],
        check=True,
        env=env,
        timeout=10,
    )
    try:
        yield Pane(record)
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10, check=False)


async def test_adopted_session_gets_prompts_through_tmux_only_when_idle(
    daemon: Hub, adopted: Pane, connect
) -> None:
    [start] = await adopted.wait("ready")
    await wait_until(daemon.registry.known_ids, limit_s=15, what="a hook arrived from tmux")
    sid = next(iter(daemon.registry.known_ids()))
    info = daemon.registry.by_session_id(sid)
    assert (
        info is not None and not info.connected and info.tmux_pane and info.key.startswith("pid-")
    )
    c = await connect()
    reply = await c.request({"type": "prompt", "session_id": sid[:8], "text": "line one\nline two"})
    assert reply["status"] in SENT and reply["data"]["delivered_via"] == "tmux", reply
    [submitted] = await adopted.wait("submit")
    assert submitted["prompt"] == "line one\nline two"
    # The stand-in's turn ends with a Stop hook: idle again, and a command goes through too.
    # (Until a hook follows a delivery, further messages are queued: see DELIVERY_SETTLE_S.)
    await adopted.wait_stops(1)
    await wait_until(lambda: info.state == "idle" and not info.settle_until_trio, limit_s=15)
    reply = await c.request({"type": "command", "session_id": sid, "name": "clear"})
    assert reply["status"] in SENT, reply
    # Busy (a slow turn): the next prompt is queued, never typed into the pane meanwhile.
    await wait_until(
        lambda: daemon.registry.by_session_id(sid) is not None and info.session_id != sid,
        limit_s=15,
    )
    new_sid = info.session_id
    assert new_sid and new_sid != sid and sid in info.aliases  # /clear rotated the id
    await wait_until(lambda: info.state == "idle", limit_s=15)
    reply = await c.request(
        {"type": "prompt", "session_id": new_sid, "text": "SLOW2: take your time"}
    )
    assert reply["status"] in SENT
    await wait_until(lambda: info.state == "busy", limit_s=15)
    queued = await c.request({"type": "prompt", "session_id": sid, "text": "after the slow one"})
    assert queued["status"] == "queued", queued
    await wait_until(
        lambda: any(r["prompt"] == "after the slow one" for r in adopted.records("submit")),
        limit_s=15,
    )
    texts = [r["prompt"] for r in adopted.records("submit")]
    assert texts.count("after the slow one") == 1
    assert texts.index("after the slow one") > texts.index("SLOW2: take your time")
