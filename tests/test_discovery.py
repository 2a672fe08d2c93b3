"""The daemon's watchers, wired: transcripts written while it runs show up in list_sessions."""

from __future__ import annotations

import json
import shutil

import pytest

from ccc_statusd.config import DaemonConfig
from ccc_statusd.daemon import run_daemon
from ccc_statusd.hub import Hub

from .fixtures import transcript
from .helpers import short_tmpdir, wait_until

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"


@pytest.fixture
def claude_dir():
    d = short_tmpdir("cfg-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def test_transcript_appends_show_in_list_sessions(
    nursery, paths, claude_dir, connect
) -> None:
    src = transcript("v2.1.331", 1)
    project = claude_dir / "projects" / "-home-user-project"
    project.mkdir(parents=True)
    lines = src.read_bytes().splitlines(keepends=True)
    target = project / f"{SID}.jsonl"
    target.write_bytes(b"".join(lines[:10]))
    config = DaemonConfig(paths=paths, extra_config_dirs=[claude_dir], transcript_rescan_s=0.2)
    hub: Hub = await nursery.start(run_daemon, config)
    client = await connect()

    async def listed():
        data = (
            await client.request({"type": "query", "query": "list_sessions", "data": {"all": True}})
        )["data"]
        return next((s for s in data if s["session_id"] == SID), None)

    first = await wait_until(listed)
    before = first["transcript"]["user_messages"] + first["transcript"]["assistant_messages"]
    with target.open("ab") as fh:
        fh.write(b"".join(lines[10:]))
        fh.write(b"this is not json\n")

    async def grown():
        rec = await listed()
        t = rec["transcript"]
        return (
            rec
            if t["user_messages"] + t["assistant_messages"] > before and t["malformed_lines"] == 1
            else None
        )

    rec = await wait_until(grown)
    assert rec["model"] == "claude-opus-5-5" and rec["cwd"] == "/home/user/project"
    assert rec["git_branch"] == "main"

    async def cached():
        if not paths.session_cache(SID).exists():
            return False
        data = json.loads(paths.session_cache(SID).read_text())
        return data["transcript"]["user_messages"] == rec["transcript"]["user_messages"]

    await wait_until(cached)
    path = await client.request({"type": "query", "query": "session_path", "session_id": SID[:6]})
    assert path["data"] == str(target)
    # A truncated then deleted transcript is handled, not fatal.
    target.write_bytes(b"")

    async def reset():
        t = (await listed())["transcript"]
        return t["user_messages"] + t["assistant_messages"] == 0

    await wait_until(reset)
    target.unlink()

    async def gone():
        return SID not in hub.directory.transcripts

    await wait_until(gone)
    assert (await client.request({"type": "query", "query": "ping"}))["data"] == "pong"
