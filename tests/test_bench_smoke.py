"""The benchmark works: its smallest pieces against the real daemon and the baseline relay.

CI also runs ``make bench QUICK=1`` (the whole table, never failing on a ratio); this test only
proves the machinery (processes, fake sessions, senders, /proc sampling, the table) in seconds.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import trio

from ccc_statusd.bench import index, load
from ccc_statusd.bench.__main__ import SESSIONS, Row, baseline_target, daemon_target, print_table

from .helpers import short_tmpdir


async def test_one_routing_row_against_daemon_and_relay() -> None:
    root = short_tmpdir("cccb-")
    daemon = daemon_target(root / "d", 1.0)
    relay = baseline_target(root, "relay")
    try:
        for target in (daemon, relay):
            assert 0 < await target.start() < 10
        async with trio.open_nursery() as nursery:
            for target in (daemon, relay):
                await load.start_sessions(nursery, target.socket, SESSIONS[:2])
            for target in (daemon, relay):
                stats = await load.run_senders(
                    target.socket, SESSIONS[:2], senders=2, duration_s=0.3, max_requests=300
                )
                summary = stats.summary()
                assert summary["errors"] == 0 and summary["timeouts"] == 0, summary
                assert summary["count"] > 0 and summary["p50_ms"] <= summary["p99_ms"]
            # A session that never answers: the sender gets the daemon's timeout error.
            mute, got = await load.run_never_answer(
                daemon.socket, sessions=1, senders_per_session=2, timeout_s=1.0
            )
            assert got == 2 and mute.errors == 0
            nursery.cancel_scope.cancel()
        sample = daemon.sample()
        assert sample.rss_kib > 1024 and sample.fds > 3 and sample.cpu_s > 0
    finally:
        for target in (daemon, relay):
            await target.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_table_has_the_six_columns() -> None:
    out = io.StringIO()
    print_table([Row("figure x", "1 ms", "2 ms", 0.5, "≤ 1.5×", "pass")], out)
    header, rule, row = out.getvalue().splitlines()
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "figure",
        "ours",
        "baseline",
        "ratio",
        "target",
        "pass/fail",
    ]
    assert "0.50×" in row and "pass" in row


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile(values, 100) == 100.0


def test_generated_history_looks_like_claude_code(tmp_path: Path) -> None:
    history = index.generate_history(tmp_path / "config", 6, 300_000)
    assert len(history.files) == 6 and history.total_bytes >= 300_000
    assert history.total_bytes == sum(p.stat().st_size for p in history.files)
    ids: set[str] = set()
    kinds: set[str] = set()
    lines = 0
    for path in history.files:
        project = path.parent
        assert project.parent == tmp_path / "config" / "projects"
        for raw in path.read_text().splitlines():
            obj = json.loads(raw)
            lines += 1
            kinds.add(obj["type"])
            assert obj.get("sessionId", path.stem) == path.stem
            if "cwd" in obj:
                assert index.encode_cwd(obj["cwd"]) == project.name
            if obj["type"] == "assistant":
                assert isinstance(obj["message"]["usage"], dict)
                ids.add(obj["message"]["id"])
            if "uuid" in obj:
                ids.add(obj["uuid"])
    assert lines == history.lines
    assert {"user", "assistant", "system", "attachment"} <= kinds
    # Fresh ids per block: far more distinct ids than one template holds.
    assert len(ids) > 2 * lines // 10
    assert {p.stem for p in history.files} == history.session_ids


async def test_index_phase_tiny() -> None:
    root = short_tmpdir("cccb-")
    try:
        result = await index.run_index_bench(
            root, 20, 1_000_000, index_deadline_s=30, restart_deadline_s=2, warm_runs=2
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert len(result.history.files) == 20 and result.history.total_bytes >= 1_000_000
    assert result.baseline_lines == result.history.lines and result.baseline_s > 0
    first = result.first
    assert first.error is None, first
    assert first.listed == 20 and 0 < first.accept_s <= first.listed_s
    restart = result.restart
    assert restart.accept_s > 0 and (restart.error is None or "listed" in restart.error)
    assert result.reread_files in (0, -1)  # -1: noatime, cannot tell
    rows = index.index_rows(result)
    assert len(rows) >= 3
    for row in rows:
        Row(**row)  # the table's row type takes them as they are
