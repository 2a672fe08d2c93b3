"""Leaving "waiting"/"busy" when the user ends a turn by rejecting a permission dialog or pressing Esc.

Owns one rule, pure (no I/O, no trio): which transcript line tells that a Claude Code turn was
ended by the user, and when that may move a session back to idle.

Why the transcript. Measured on the real Claude Code 2.1.331 (native) and 2.1.112 (cli.js),
``--permission-mode manual`` / ``default``, a Bash tool_use behind a permission dialog:

* **Reject** (Esc, or the "No" option): no hook at all. No Stop, no PostToolUse, no
  PostToolUseFailure, no UserPromptSubmit. The transcript gets a ``user`` line with a
  ``tool_result`` (``is_error: true``, "The user doesn't want to proceed with this tool use…")
  and then a ``user`` line whose only text is ``[Request interrupted by user for tool use]``.
  The statusLine runs 0.15–0.4 s later (twice on 2.1.112).
* **Esc while an approved tool is running**: the same two lines, and **no hook and no statusLine**.
* **Approve**: statusLine (~0.25 s), PostToolUse, the model goes on, Stop. This is covered by the hooks.
* **Reject with feedback** ("No" + Tab + text): the same tool_result, but no interrupt line. The
  model goes on, and Stop fires. Also covered by the hooks.
* The statusLine cannot mean "dialog closed". It also ran right when a dialog **opened**
  (1 of 9 runs on 2.1.331, 1 of 4 on 2.1.112), it runs after an approve, and it runs on a timer
  when a user sets ``refreshInterval``. Its payload has nothing that tells these cases apart.
* The transcript line reaches the disk 0.1–0.25 s after its ``timestamp`` (Claude Code buffers
  its writes). So reading the transcript when the statusLine arrives can miss it. The
  transcript watcher is the trigger.

The rule. Take the **last** main-chain conversation line seen (``turn_mark``). When it is the
user-interrupt marker, the turn is over and nothing is open: Claude Code writes it only after the
dialog closed, and any later turn (which could open a new dialog) writes its own user or
assistant lines first. So a session that is ``waiting`` or ``busy`` goes ``idle``. The guard
(``state_after_turn_mark``): only when the marker's timestamp is not older than the moment the
session entered that state. A stale marker therefore never undoes a newer UserPromptSubmit /
PermissionRequest whose lines are not on disk yet. No tolerance is allowed there: the clocks are
the same wall clock, and any slack would let a marker from the previous turn through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .sessions import BUSY, IDLE, WAITING

# turn_mark kinds. INTERRUPTED: the user ended the turn (Esc / rejected a dialog), Claude Code is
# idle. CONTINUED: any other conversation line, a turn is (still) going on.
INTERRUPTED = "interrupted"
CONTINUED = "continued"

# Both builds write this exact text. "for tool use" comes after a rejected dialog or Esc during a
# tool run; the bare form comes after Esc while the model is answering. Both end the turn, and no Stop hook fires.
INTERRUPT_PREFIX = "[Request interrupted by user"

# States that only a hook can normally leave and that an interrupt ends. FAILED/ENDED/IDLE are
# left alone.
_ENDED_BY_INTERRUPT = frozenset({WAITING, BUSY})


def iso_epoch(ts: Any) -> float | None:
    """An ISO-8601 transcript timestamp (``…Z``) as epoch seconds, or None."""
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _texts(content: Any) -> list[str] | None:
    """The text blocks of a message, or None if it holds anything else (tool_result, image, …)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return None
    out: list[str] = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "text":
            return None
        text = block.get("text")
        if not isinstance(text, str):
            return None
        out.append(text)
    return out


def is_interrupt_marker(line: Mapping[str, Any]) -> bool:
    """True for Claude Code's ``[Request interrupted by user…]`` user line (main chain only)."""
    if line.get("type") != "user" or line.get("isSidechain") is True:
        return False
    message = line.get("message")
    if not isinstance(message, dict):
        return False
    texts = _texts(message.get("content"))
    return texts is not None and len(texts) == 1 and texts[0].strip().startswith(INTERRUPT_PREFIX)


def turn_mark(line: Mapping[str, Any]) -> tuple[str, float | None] | None:
    """What one transcript line says about the current turn.

    * ``(INTERRUPTED, ts)``: the user-interrupt marker, with its timestamp (epoch seconds).
    * ``(CONTINUED, ts)``: any other user/assistant line of the main chain (a prompt, a reply, a
      tool_use, a tool_result, a slash command). A turn is going on, or has just started.
    * ``None``: lines that say nothing about the turn (attachments, system, snapshots,
      api-request, cost-state, …), ``isMeta`` user lines and sidechain (subagent) lines.

    A marker without a usable timestamp counts as CONTINUED, so it can never cause idle.
    """
    kind = line.get("type")
    if kind not in ("user", "assistant") or line.get("isSidechain") is True:
        return None
    if kind == "user" and line.get("isMeta") is True:
        return None  # caveats / local-command echoes, written while idle too
    ts = iso_epoch(line.get("timestamp"))
    if is_interrupt_marker(line) and ts is not None:
        return (INTERRUPTED, ts)
    return (CONTINUED, ts)


def last_turn_mark(
    lines: Iterable[Mapping[str, Any]], previous: Sequence[Any] | None = None
) -> tuple[str, float | None] | None:
    """The turn mark after ``lines``, starting from ``previous`` (the last decisive line wins)."""
    mark = tuple(previous) if previous else None
    for line in lines:
        m = turn_mark(line)
        if m is not None:
            mark = m
    return mark  # type: ignore[return-value]


def state_after_turn_mark(
    state: str, state_since: float | None, mark: Sequence[Any] | None
) -> str | None:
    """IDLE when ``mark`` is an interrupt that ends the current waiting/busy state, else None.

    ``state_since`` is the wall-clock time (epoch seconds) when the session entered ``state``
    (``SessionInfo.state_changed_at``). A marker older than that belongs to an earlier turn. For
    example, the user rejected, then typed a new prompt whose UserPromptSubmit already arrived
    while its transcript line is still in Claude Code's write buffer. Such a marker must not
    count.
    """
    if not mark or len(mark) != 2 or mark[0] != INTERRUPTED:
        return None
    if state not in _ENDED_BY_INTERRUPT or state_since is None:
        return None
    ts = mark[1]
    if not isinstance(ts, int | float) or ts < state_since:
        return None
    return IDLE


def state_after_transcript_lines(
    state: str, state_since: float | None, lines: Iterable[Mapping[str, Any]]
) -> str | None:
    """``state_after_turn_mark`` over the last decisive line of ``lines`` (newly appended lines)."""
    return state_after_turn_mark(state, state_since, last_turn_mark(lines))
