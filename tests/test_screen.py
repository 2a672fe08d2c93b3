"""The screen classifier (ccc_statusd/screen.py) on screens captured from the real Claude Code
(tests/data/screens/<version>/, made by tests/claude/capture_screens.py) and on made-up ones:
only Claude Code's main input box, empty, with nothing open, is ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.screen import (
    BUSY,
    DIALOG,
    DRAFT,
    MENU,
    PANEL,
    PICKER,
    READY,
    UNKNOWN,
    classify,
)

SCREENS = Path(__file__).parent / "data" / "screens"

EXPECTED = {
    "ready": (READY, None),
    "ready_after_turn": (READY, None),
    "draft": (DRAFT, "holds a draft"),
    "draft_multiline": (DRAFT, "holds a draft"),
    "slash_menu": (MENU, "/ command menu"),
    "slash_menu_filtered": (MENU, "/ command menu"),
    "model_picker": (PICKER, "/model picker"),
    "status_panel": (PANEL, "settings panel"),
    "config_panel": (PANEL, "settings panel"),
    "help_panel": (PANEL, "panel"),
    "permission_dialog": (DIALOG, "permission dialog"),
    "busy": (BUSY, "working on a turn"),
    "busy_with_draft": (DRAFT, "holds a draft"),
    "shortcuts_help": (MENU, "under the input box"),
}


def load(version: str, name: str) -> tuple[list[str], tuple[int, int]]:
    lines = (SCREENS / version / f"{name}.txt").read_text().splitlines()
    x, y = (SCREENS / version / f"{name}.cursor").read_text().strip().split(",")
    return lines, (int(x), int(y))


CASES = sorted((p.parent.name, p.stem) for p in SCREENS.glob("*/*.txt") if p.stem in EXPECTED)


def test_captures_exist_for_both_builds() -> None:
    assert {v for v, _ in CASES} == {"2.1.331", "2.1.112"}
    assert len(CASES) >= 25


@pytest.mark.parametrize(("version", "name"), CASES)
def test_captured_screens(version: str, name: str) -> None:
    lines, cursor = load(version, name)
    state = classify(lines, cursor)
    kind, words = EXPECTED[name]
    assert state.kind == kind, (state, "\n".join(lines[-20:]))
    assert state.ready == (kind == READY)
    if words:
        assert words in state.reason
    else:
        assert state.reason == ""
    # without the cursor the decision is the same
    assert classify(lines).kind == kind


def test_draft_text_is_read_back() -> None:
    lines, cursor = load("2.1.331", "draft_multiline")
    assert classify(lines, cursor).draft == "my draft text\nsecond line"


BOX = ["─" * 80, "❯\xa0", "─" * 80, "  ⏵⏵ auto mode on (shift+tab to cycle)"]


def test_made_up_screens() -> None:
    assert classify(["some transcript", *BOX]).ready
    assert classify(["some transcript", *BOX], (2, 2)).ready
    # the cursor elsewhere: something else has focus
    assert classify(["x", *BOX], (0, 0)).kind == UNKNOWN
    # bash mode, another prompt
    bash = ["─" * 80, "! ls", "─" * 80]
    assert classify(bash).kind == UNKNOWN and "another mode" in classify(bash).reason
    # nothing at all / not Claude Code
    assert classify([]).kind == UNKNOWN
    assert classify(["", "   "]).kind == UNKNOWN
    assert classify(["$ bash prompt"]).reason == (
        "the screen is not recognised as Claude Code's input box"
    )
    # one rule only: not a box
    assert classify(["─" * 80, "❯ ", "footer"]).kind == UNKNOWN
    # a panel with its own hint under a rule
    assert classify(["─" * 80, " Something new", " Esc to close"]).kind == PANEL
    # a box followed by a long list is not ready
    assert classify([*BOX, "a", "b", "c"]).kind == MENU


@given(st.lists(st.text(alphabet="─❯> /!aEsc\xa0\n·", max_size=30), max_size=20))
def test_never_crashes_and_ready_needs_an_empty_box(lines: list[str]) -> None:
    state = classify(lines)
    assert state.kind in (READY, DRAFT, MENU, PICKER, PANEL, DIALOG, BUSY, UNKNOWN)
    if state.ready:
        assert state.draft == "" and state.reason == ""
