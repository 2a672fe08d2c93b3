"""The ``ccc mcp`` bench phase works: its rows against the real daemon and fake sessions."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import trio

from ccc_statusd.bench import load
from ccc_statusd.bench.__main__ import SESSIONS, Row, daemon_target
from ccc_statusd.bench.mcp import mcp_rows


async def test_mcp_rows_against_the_daemon() -> None:
    root = Path(tempfile.mkdtemp(prefix="cccb-", dir="/tmp"))
    daemon = daemon_target(root / "d", 2.0)
    try:
        assert 0 < await daemon.start() < 10
        async with trio.open_nursery() as nursery:
            await load.start_sessions(nursery, daemon.socket, SESSIONS[:1])
            rows = await mcp_rows(daemon.socket, SESSIONS[0], startups=1, calls=2, cli_runs=1)
            nursery.cancel_scope.cancel()
    finally:
        await daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert [r["figure"].split(" ")[:2] for r in rows] == [
        ["`ccc", "mcp`"],
        ["MCP", "list_sessions"],
        ["MCP", "send_prompt"],
    ]
    for row in rows:
        Row(**row)  # the table's shape
        assert row["result"] == "info", row
        assert row["ratio"] is not None and row["ratio"] > 0
