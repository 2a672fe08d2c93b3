"""The notification rules and the board they read, pure (time passed in)."""

from __future__ import annotations

from typing import Any

from ccc_statusd.alerts import Rules
from ccc_statusd.board import Board

SID = "6656f299-72c7-4382-8647-f94b8f7faaf3"


def ev(event: str, t: float, /, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "event": event, "time": t, "session_id": SID, **fields}


def test_waiting_and_long_turn_fire_on_transitions_only() -> None:
    board, rules = Board(), Rules(long_turn_s=60)
    fired = []
    for e in [
        ev("state", 0, state="idle"),
        ev("state", 10, state="waiting"),
        ev("state", 11, state="waiting"),  # no change: nothing
        ev("state", 20, state="busy"),
        ev("state", 50, state="idle"),  # a 30 s turn: short
        ev("state", 60, state="busy"),
        ev("state", 200, state="idle"),  # 140 s: long
    ]:
        fired += rules.on_change(board.apply(e))
    assert [(a.event, a.state) for a in fired] == [("waiting", "waiting"), ("long_turn", "idle")]
    assert fired[1].duration_s == 140 and fired[1].env()["CCC_DURATION"] == "140"
    assert fired[0].env()["CCC_SESSION"] == SID and fired[0].env()["CCC_NAME"] == "6656f299"


def test_clear_is_not_a_state_of_its_own_for_alerts() -> None:
    board, rules = Board(), Rules(long_turn_s=0)
    rules.on_change(board.apply(ev("state", 0, state="busy")))
    change = board.apply(ev("state", 5, state="busy", hook="SessionEnd"))
    assert change is not None and change.new_state == "clearing"
    assert rules.on_change(change) == []


def test_blocked_fires_once_per_message_and_sleeps_until_the_next() -> None:
    board, rules = Board(), Rules(blocked_s=300)
    board.load(
        [{"session_id": SID, "state": "busy", "name": "api"}],
        [{"id": "m1", "session_id": SID, "message": "go on", "created_at": 100, "send_at": 100}],
        now=150,
    )
    assert rules.next_deadline(board) == 400
    assert rules.due(board, 399) == []
    fired = rules.due(board, 400)
    assert [(a.event, a.name, a.message_id) for a in fired] == [("blocked", "api", "m1")]
    assert "go on" in fired[0].text
    assert rules.due(board, 1000) == [] and rules.next_deadline(board) is None
    board.apply(ev("queued", 500, id="m2", text="two"))
    assert rules.next_deadline(board) == 800
    board.apply(ev("scheduled_fired", 600, id="m2"))  # delivered in time: never fires
    assert rules.next_deadline(board) is None and rules.due(board, 900) == []


def test_board_keeps_one_row_across_ids_and_merges_descriptions() -> None:
    board = Board()
    board.apply(
        {"type": "event", "event": "connected", "time": 1, "key": "iid", "internal_id": "iid"}
    )
    board.apply(
        {
            "type": "event",
            "event": "state",
            "time": 2,
            "key": "iid",
            "session_id": SID,
            "state": "idle",
        }
    )
    assert len(board.rows) == 1
    row = next(iter(board.rows.values()))
    assert row.session_id == SID and row.connected and row.state == "idle"
    board.merge([{"session_id": SID, "model": "Opus", "cost_usd": 1.5, "state": "busy"}])
    assert row.model == "Opus" and row.cost == 1.5 and row.state == "idle"  # events are newer
    assert board.ordered("opus") == [] and board.ordered("6656") == [row]
    assert board.ordered("idle") == [row]


def test_quiet_ended_sessions_are_hidden_unless_asked_for() -> None:
    board = Board()
    board.load(
        [
            {"session_id": SID, "state": "ended", "last_activity": 1000.0},
            {"session_id": "0bf7fcec-x", "state": "idle", "last_activity": 1000.0},
            {"session_id": "a1b2c3d4-y", "last_activity": 9000.0},  # transcript only, recent
        ],
        [],
        now=10_000,
    )
    shown = [r.session_id for r in board.ordered(now=10_000)]
    assert shown == ["0bf7fcec-x", "a1b2c3d4-y"]  # live states first
    assert len(board.ordered()) == 3
    assert [r.session_id for r in board.ordered("6656", now=10_000)] == [SID]
