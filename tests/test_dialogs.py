"""The rule that leaves waiting/busy after the user rejects a permission dialog (ccc_statusd.dialogs).

The transcript lines are real: tests/data/dialog_transcripts.json was captured from Claude Code
2.1.331 and 2.1.112 (see its "_about"). The key safety property is checked on every prefix of
every capture: the rule never says idle while a dialog can still be open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccc_statusd.dialogs import (
    CONTINUED,
    INTERRUPTED,
    is_interrupt_marker,
    last_turn_mark,
    state_after_transcript_lines,
    state_after_turn_mark,
    turn_mark,
)
from ccc_statusd.sessions import BUSY, ENDED, FAILED, IDLE, UNKNOWN, WAITING
from ccc_statusd.watchers.transcript_parse import TranscriptAggregate

DATA = json.loads((Path(__file__).parent / "data" / "dialog_transcripts.json").read_text())
CAPTURES = [
    (v, s, lines) for v, by in DATA.items() if not v.startswith("_") for s, lines in by.items()
]
REJECTED = {"esc", "no", "toolesc", "paresc"}  # the turn ends with no Stop hook
CONTINUES = {"approve", "feedback"}  # the model goes on; Stop follows


def _epoch(line: dict[str, Any]) -> float:
    mark = turn_mark(dict(line, type="user", isMeta=False, isSidechain=False))
    assert mark is not None and mark[1] is not None
    return mark[1]


def _first_turn(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines of the TOOL turn: up to (not including) the next typed prompt."""
    for i, line in enumerate(lines):
        if (
            i
            and line.get("type") == "user"
            and line["message"].get("content") == "after everything"
        ):
            return lines[:i]
    raise AssertionError("capture has no second prompt")


def _tool_use_index(lines: list[dict[str, Any]]) -> int:
    for i, line in enumerate(lines):
        content = (line.get("message") or {}).get("content")
        if (
            line.get("type") == "assistant"
            and isinstance(content, list)
            and any(b.get("type") == "tool_use" for b in content)
        ):
            return i
    raise AssertionError("capture has no tool_use")


def test_captures_cover_both_builds_and_every_outcome() -> None:
    assert {s for v, s, _ in CAPTURES if v == "2.1.331"} == REJECTED | CONTINUES
    assert {"esc", "no", "approve", "feedback"} <= {s for v, s, _ in CAPTURES if v == "2.1.112"}


@pytest.mark.parametrize(("version", "scenario", "lines"), [c for c in CAPTURES if c[1] in REJECTED],
                         ids=lambda x: x if isinstance(x, str) else "")  # fmt: skip
def test_a_rejected_dialog_makes_a_waiting_session_idle(
    version: str, scenario: str, lines: list[dict[str, Any]]
) -> None:
    turn = _first_turn(lines)
    tool_use = _tool_use_index(turn)
    # The PermissionRequest hook arrives after the tool_use line is written.
    since = _epoch(turn[tool_use]) + 0.1
    assert state_after_transcript_lines(WAITING, since, turn) == IDLE
    # Esc during an approved tool run leaves a session waiting (no PostToolUse came); one that
    # never had a dialog is busy: the same marker ends both.
    assert state_after_transcript_lines(BUSY, since, turn) == IDLE
    mark = last_turn_mark(turn)
    assert mark is not None and mark[0] == INTERRUPTED
    assert sum(is_interrupt_marker(x) for x in turn) == 1


@pytest.mark.parametrize(
    ("version", "scenario", "lines"), CAPTURES, ids=lambda x: x if isinstance(x, str) else ""
)
def test_never_idle_while_the_dialog_can_be_open(
    version: str, scenario: str, lines: list[dict[str, Any]]
) -> None:
    """On every prefix of a capture: idle only right after the interrupt marker, never before it."""
    since = _epoch(lines[_tool_use_index(lines)]) + 0.1
    seen_marker = False
    for n in range(len(lines) + 1):
        prefix = lines[:n]
        seen_marker = seen_marker or any(is_interrupt_marker(x) for x in prefix)
        got = state_after_transcript_lines(WAITING, since, prefix)
        if got == IDLE:
            assert seen_marker and scenario in REJECTED, (scenario, n)
            last = last_turn_mark(prefix)
            assert last is not None and last[0] == INTERRUPTED
        else:
            assert got is None
    if scenario in CONTINUES:
        assert not seen_marker  # approve / feedback: the hooks (PostToolUse, Stop) carry the state


@pytest.mark.parametrize(("version", "scenario", "lines"), [c for c in CAPTURES if c[1] in REJECTED],
                         ids=lambda x: x if isinstance(x, str) else "")  # fmt: skip
def test_a_new_prompt_after_the_marker_wins(
    version: str, scenario: str, lines: list[dict[str, Any]]
) -> None:
    since = _epoch(lines[_tool_use_index(lines)]) + 0.1
    mark = last_turn_mark(lines)  # the whole capture ends with the next turn's reply
    assert mark is not None and mark[0] == CONTINUED
    assert state_after_transcript_lines(WAITING, since, lines) is None


def test_a_stale_marker_never_undoes_a_newer_state() -> None:
    turn = _first_turn(DATA["2.1.331"]["esc"])
    marker_ts = _epoch(next(x for x in turn if is_interrupt_marker(x)))
    # The user rejected, then typed a prompt: its UserPromptSubmit set busy after the marker was
    # written, while the prompt's own line is still in Claude Code's write buffer.
    assert state_after_transcript_lines(BUSY, marker_ts + 0.08, turn) is None
    assert state_after_transcript_lines(WAITING, marker_ts + 0.001, turn) is None
    assert state_after_transcript_lines(WAITING, marker_ts, turn) == IDLE
    assert state_after_transcript_lines(WAITING, None, turn) is None


@pytest.mark.parametrize("state", [IDLE, FAILED, ENDED, UNKNOWN])
def test_only_waiting_and_busy_are_ended_by_an_interrupt(state: str) -> None:
    turn = _first_turn(DATA["2.1.112"]["esc"])
    assert state_after_transcript_lines(state, 0.0, turn) is None


def test_marks_carry_over_between_batches_like_the_aggregate() -> None:
    lines = DATA["2.1.331"]["esc"]
    i = next(n for n, x in enumerate(lines) if is_interrupt_marker(x))
    mark = last_turn_mark(lines[: i + 1])
    assert mark is not None and mark[0] == INTERRUPTED
    # A later batch with only an attachment / system line keeps it; a new prompt replaces it.
    stored = list(mark)  # the aggregate keeps it as JSON: a list
    assert last_turn_mark(
        [{"type": "attachment"}, {"type": "system", "subtype": "x"}], stored
    ) == tuple(stored)
    nxt = next(x for x in lines[i + 1 :] if x.get("type") == "user")
    assert last_turn_mark([nxt], stored)[0] == CONTINUED  # type: ignore[index]
    assert state_after_turn_mark(WAITING, stored[1], stored) == IDLE


def test_sidechain_meta_and_undated_lines_never_make_idle() -> None:
    marker = next(x for x in DATA["2.1.331"]["esc"] if is_interrupt_marker(x))
    assert turn_mark(dict(marker, isSidechain=True)) is None  # a subagent's interrupt
    assert turn_mark(dict(marker, isMeta=True)) is None
    assert turn_mark({k: v for k, v in marker.items() if k != "timestamp"}) == (CONTINUED, None)
    assert (
        state_after_transcript_lines(WAITING, 0.0, [dict(marker, timestamp="not a time")]) is None
    )
    plain = dict(
        marker,
        message={
            "role": "user",
            "content": [{"type": "text", "text": "[Request interrupted by user]"}],
        },
    )
    assert turn_mark(plain) == (INTERRUPTED, _epoch(marker))
    typed = dict(
        marker, message={"role": "user", "content": "please [Request interrupted by user] me"}
    )
    assert turn_mark(typed)[0] == CONTINUED  # type: ignore[index]
    mixed = dict(marker, message={"role": "user", "content": [
        {"type": "tool_result", "content": "x", "tool_use_id": "t"},
        {"type": "text", "text": "[Request interrupted by user for tool use]"}]})  # fmt: skip
    assert turn_mark(mixed)[0] == CONTINUED  # type: ignore[index]
    for junk in (
        {},
        {"type": "user"},
        {"type": "user", "message": "x"},
        {"type": "assistant", "message": None},
    ):
        mark = turn_mark(junk)
        assert mark is None or mark[0] == CONTINUED


def test_the_transcript_aggregate_sees_the_same_lines() -> None:
    """The captures parse as transcript lines (the watcher's feed) without errors."""
    agg = TranscriptAggregate()
    for line in DATA["2.1.112"]["esc"]:
        agg.feed_line(json.dumps(line))
    assert agg.malformed_lines == 0 and agg.user_messages >= 3
