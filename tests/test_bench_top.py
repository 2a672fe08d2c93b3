"""The `ccc top` CPU bench runs end to end (tiny durations): real daemon, real pty, rows made."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ccc_statusd.bench.top import run_top_bench


def test_top_bench_produces_its_two_rows() -> None:
    root = Path(tempfile.mkdtemp(prefix="cccbt-", dir="/tmp"))
    try:
        rows = run_top_bench(root, idle_s=0.5, churn_s=0.5, rate=100)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert [r["figure"].split(",")[0] for r in rows] == [
        "`ccc top` idle CPU",
        "`ccc top` CPU while 100 sessions change state (100 hooks/s)",
    ]
    assert all("% of a CPU" in r["ours"] for r in rows)
