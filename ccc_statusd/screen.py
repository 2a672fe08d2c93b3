"""What Claude Code's screen shows, from its rendered lines: the one decision "may a message be
typed now?" for every delivery path (``ccc run``'s pyte model, a tmux pane's capture). Pure: no
I/O, no terminal emulation (the callers render the screen; see :mod:`.session.screen_model`).

The rule is positive recognition, failing safe: the screen is :data:`READY` only when the
bottom of the screen is exactly Claude Code's main input box, empty, with nothing open over or
under it; every other screen, including one this module has never seen (a future release), is
not ready, with a sentence saying what was seen. A UI change must make messages wait, never make
them land in the wrong place.

The main input box, as drawn by 2.1.331 (native) and 2.1.112 (Node), captured in
tests/data/screens/<version>/ (regenerate with ``python tests/claude/capture_screens.py``)::

    ─────────────────────   a full-width rule
    ❯ <draft, if any>       the prompt line (``❯`` + NBSP; continuation lines are indented)
    ─────────────────────
      ⏵⏵ auto mode on …     one footer line (``? for shortcuts`` on 2.1.112)

- busy turn: the footer (or a line just above the box) says ``esc to interrupt``;
- ``/`` command menu: the box holds ``/…``; the list is drawn under the box (2.1.112) or over it
  (2.1.331);
- ``?`` shortcuts, other lists: more than :data:`MAX_FOOTER_LINES` lines under the box;
- /model picker, /status and /config panels, permission dialogs: the box is gone (2.1.331) or
  not the last thing on screen (2.1.112), and the overlay has its own words (``Select model``,
  ``Do you want to proceed?``, tabs ``Status Config Usage``, ``Esc to cancel``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

READY = "ready"
DRAFT = "draft"
MENU = "menu"
PICKER = "picker"
PANEL = "panel"
DIALOG = "dialog"
BUSY = "busy"
UNKNOWN = "unknown"

MAX_FOOTER_LINES = 2  # non-blank lines allowed under an empty box (mode line, a notice)
_ABOVE_BOX_LINES = 6  # lines over the box that belong to it (spinner, command menu)
_PREVIEW_CHARS = 60

_PROMPT_RE = re.compile(r"^(?:❯|>)(?: |$)")
_RULE_CHAR = "─"
_BUSY_RE = re.compile(r"\besc to interrupt\b", re.I)
_MENU_ITEM_RE = re.compile(r"^\s{0,4}(?:❯\s+)?/[A-Za-z0-9][\w:.-]*\s{2,}\S")
_DIALOG_RE = re.compile(
    r"Do you want to (?:proceed|make this edit|create|allow)|^\s*❯ 1\. Yes\b", re.M
)
_PICKER_RE = re.compile(r"^\s*Select model\b", re.M)
_PANEL_TABS_RE = re.compile(r"\bStatus\s+Config\s+Usage\b")
_OVERLAY_HINT_RE = re.compile(
    r"\bEsc to (?:cancel|close|exit|clear|go back)\b|\bEnter to (?:confirm|select|save)\b", re.I
)


@dataclass(frozen=True)
class ScreenState:
    """One classification: ``kind`` (a constant above), ``reason`` (a sentence for the sender;
    empty when ready) and ``draft`` (the input box's text when the box was found)."""

    kind: str
    reason: str = ""
    draft: str | None = None

    @property
    def ready(self) -> bool:
        return self.kind == READY

    @property
    def box_empty(self) -> bool:
        """The main input box was found and is empty (ready, or busy with nothing typed)."""
        return self.draft == "" and self.kind in (READY, BUSY)

    def describe(self) -> str:
        """A short account of the screen, for a sender told "typed, not confirmed"."""
        return self.reason or "Claude Code's input box, empty"


def _preview(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= _PREVIEW_CHARS else one[: _PREVIEW_CHARS - 1] + "…"


def _is_rule(line: str) -> bool:
    s = line.strip()
    return len(s) >= 10 and s[0] == _RULE_CHAR and not s.strip(_RULE_CHAR)


def normalise(lines: Sequence[str]) -> list[str]:
    """Lines with NBSP as a space and trailing blanks (and blank lines at the end) removed."""
    out = [line.replace("\xa0", " ").rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def classify(lines: Sequence[str], cursor: tuple[int, int] | None = None) -> ScreenState:
    """Classify a rendered screen (top to bottom); ``cursor`` is ``(x, y)``, 0-based, if known.

    Only :data:`READY` means "type now"."""
    rows = normalise(lines)
    if not rows:
        return ScreenState(UNKNOWN, "the screen is blank (Claude Code has not drawn anything yet)")
    rules = [i for i, line in enumerate(rows) if _is_rule(line)]
    box = _find_box(rows, rules)
    if box is None:
        return _overlay(rows, rules)
    top, bottom = box
    content = rows[top + 1 : bottom]
    draft = _box_text(content)
    below = [line for line in rows[bottom + 1 :] if line.strip()]
    above = rows[max(0, top - _ABOVE_BOX_LINES) : top]
    if draft is None:
        return ScreenState(
            UNKNOWN,
            "the input box is in another mode (its prompt is "
            f"{content[0].strip()[:2]!r}, not ❯); the message waits",
        )
    if draft:
        if draft.startswith("/") and (any(_MENU_ITEM_RE.match(line) for line in below + above)):
            return ScreenState(
                MENU, f"the / command menu is open (the input box holds {_preview(draft)!r})", draft
            )
        return ScreenState(DRAFT, f"the input box holds a draft: {_preview(draft)!r}", draft)
    if any(_BUSY_RE.search(line) for line in below + above[-2:]):
        return ScreenState(
            BUSY, "Claude is working on a turn (the screen says esc to interrupt)", ""
        )
    if len(below) > MAX_FOOTER_LINES:
        if any(_MENU_ITEM_RE.match(line) for line in below):
            return ScreenState(MENU, "a command menu is open under the input box", "")
        return ScreenState(
            MENU, "a list is open under the input box (e.g. the ? shortcuts help)", ""
        )
    if any(_MENU_ITEM_RE.match(line) for line in above):
        return ScreenState(MENU, "a command menu is open over the input box", "")
    if cursor is not None and not (top < cursor[1] < bottom):
        return ScreenState(UNKNOWN, "the cursor is not in the input box; something else has focus")
    return ScreenState(READY, "", "")


def _find_box(rows: list[str], rules: list[int]) -> tuple[int, int] | None:
    """The last two rules, if a prompt-like line (``❯ …``, ``> …``, ``! …``) opens the space
    between them: Claude Code's input box."""
    if len(rules) < 2:
        return None
    top, bottom = rules[-2], rules[-1]
    if not 2 <= bottom - top <= 41:  # no input box is that tall: these rules are something else
        return None
    if not re.match(r"^\S{1,2}(?: |$)", rows[top + 1]):
        return None
    return top, bottom


def _box_text(content: list[str]) -> str | None:
    """The draft in the box ("" when empty), or None when the prompt is not ``❯``/``>``."""
    first = content[0]
    m = _PROMPT_RE.match(first)
    if m is None:
        return None
    parts = [first[m.end() :].strip()] + [line.strip() for line in content[1:]]
    return "\n".join(parts).strip()


def _overlay(rows: list[str], rules: list[int]) -> ScreenState:
    """No input box at the bottom: say what is there, as precisely as we can."""
    start = rules[-1] if rules else max(0, len(rows) - 30)
    tail = "\n".join(rows[start:])
    if _DIALOG_RE.search(tail):
        return ScreenState(DIALOG, "a permission dialog is open (Do you want to proceed?)")
    if _PICKER_RE.search(tail):
        return ScreenState(PICKER, "the /model picker is open")
    if _PANEL_TABS_RE.search(tail):
        return ScreenState(PANEL, "a settings panel (/status, /config, …) is open")
    if _OVERLAY_HINT_RE.search(tail):
        hint = _OVERLAY_HINT_RE.search(tail)
        assert hint is not None
        return ScreenState(PANEL, f"a panel or picker is open (it says {hint.group(0)!r})")
    return ScreenState(UNKNOWN, "the screen is not recognised as Claude Code's input box")
