"""The screen-check bench phase (ccc_statusd/bench/screencheck.py) produces its rows."""

from __future__ import annotations

from ccc_statusd.bench.screencheck import pty_check_rows, tmux_check_rows


def test_pty_rows() -> None:
    rows = pty_check_rows(20)
    assert [r["result"] for r in rows] == ["pass", "info"]
    assert rows[0]["ratio"] < 1  # far below the Enter delay a delivery waits anyway


def test_tmux_row() -> None:
    rows = tmux_check_rows(3)
    assert all(r["ratio"] > 0 for r in rows)
