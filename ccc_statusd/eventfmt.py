"""Daemon events as human facts: one line per event, one name per session, no repeats.

Pure (no I/O, no clock of its own): ``ccc watch``, ``ccc top`` and ``ccc notify`` feed it the
daemon's ``{"type":"event", ...}`` dicts and the ``list_sessions`` records they got at
(re)connect, and it answers with the line to show, or None when the event adds nothing.

What it owns:

- **One label per session**: the session's ``name`` when one is known, else the first 8
  characters of its session id. Every id the daemon uses for a session (session id, aliases,
  internal id, registry key) maps to the same label, so a ``connected`` event that carries only
  the internal id and the ``state`` event that follows name the session the same way. A session
  client not yet associated with a Claude Code session is ``client <8 chars>`` until it is.
- **No raw JSON**: every event kind has a sentence; unknown kinds show ``key value`` pairs.
- **No repeats**: a fact identical to the last one of its kind for that session (context
  figure, branch, state) is dropped, and so is an event identical to the session's previous one
  (``SessionEnd`` twice). A ``hook`` event that only repeats the ``state`` line just printed for
  the same hook is folded into it.
- **Honest states**: ``SessionEnd`` with reason ``clear`` reads "cleared (/clear)", not "busy";
  a ``submitted`` prompt never announced as ``delivered`` (adopted sessions, where the
  ``UserPromptSubmit`` hook can overtake the delivery's reply) reads "delivered and submitted",
  and the late ``delivered`` for it is then dropped.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .termsafe import clean as _safe

# Kinds whose value is a state of the session: repeating the last value says nothing new.
STATEFUL = {
    "state": ("state", "error"),
    "context": ("used_percentage",),
    "branch": ("branch",),
}
# Fields that never belong in a human line.
INTERNAL = {"type", "event", "time", "session_id", "key", "internal_id", "name"}
STATE_COLOURS = {"idle": "32", "busy": "33", "waiting": "35", "failed": "31", "ended": "2"}
TEXT_PREVIEW = 80


def clean(text: str) -> str:
    """Text the daemon relays from sessions, safe for one line of a terminal: line breaks become
    spaces (one fact stays one line), every other control character goes (termsafe.py)."""
    return _safe(text.replace("\n", " ").replace("\r", " ").replace("\t", " "))


def short(sid: str | None) -> str:
    return (sid or "?")[:8]


def pct(value: Any) -> str:
    """``3.0`` → ``3%``, ``41.25`` → ``41.2%``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?%"
    return f"{value:.0f}%" if float(value).is_integer() else f"{value:.1f}%"


def scalar(value: Any) -> str:
    """A field value as a person would write it (no JSON quoting, nested values summarised)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {scalar(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(scalar(v) for v in value)
    return str(value)


def preview(text: Any, width: int = TEXT_PREVIEW) -> str:
    lines = str(text or "").strip().splitlines()
    first = lines[0] if lines else ""
    more = " …" if len(lines) > 1 else ""
    if len(first) > width:
        return first[: width - 1] + "…"
    return first + more


@dataclass
class _Seen:
    """What was last said about one session."""

    facts: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    last: tuple[Any, ...] | None = None
    last_state_hook: str | None = None
    announced: list[str] = field(default_factory=list)  # delivered texts not yet submitted
    said_submitted: list[str] = field(default_factory=list)  # submitted before delivered


class EventFormatter:
    """Turns events into lines; holds the labels and what was last said per session."""

    def __init__(self, records: Iterable[dict[str, Any]] = ()) -> None:
        self.canon: dict[str, str] = {}  # any id → the session's canonical key
        self.labels: dict[str, str] = {}  # canonical key → label
        self.names: dict[str, str] = {}  # canonical key → the name the daemon gave it
        self.seen: dict[str, _Seen] = {}
        self.learn(records)

    # --- identity ------------------------------------------------------------------------

    def learn(self, records: Iterable[dict[str, Any]]) -> None:
        """Take the names and ids of ``list_sessions`` records (at connect and reconnect)."""
        for rec in records:
            sid = rec.get("session_id")
            if not isinstance(sid, str) or not sid:
                continue
            ids = [sid, *(a for a in rec.get("aliases") or [] if isinstance(a, str))]
            if isinstance(rec.get("internal_id"), str):
                ids.append(rec["internal_id"])
            name = rec.get("name")
            self._bind(ids, sid, name if isinstance(name, str) and name else None)

    def _bind(self, ids: list[str], sid: str | None, name: str | None) -> str:
        canon = next((self.canon[i] for i in ids if i in self.canon), ids[0])
        for i in ids:
            self.canon[i] = canon
        if name:
            self.names[canon] = name
        if canon in self.names:
            label = self.names[canon]
        elif sid:
            label = short(sid)
        else:
            label = self.labels.get(canon) or f"client {short(ids[0])}"
        self.labels[canon] = label
        return canon

    def identify(self, event: dict[str, Any]) -> tuple[str, str]:
        """``(canonical key, label)`` of the session an event is about (``("-", "-")`` if none)."""
        ids = [
            v
            for v in (event.get("session_id"), event.get("key"), event.get("internal_id"))
            if isinstance(v, str) and v
        ]
        if not ids:
            return "-", "-"
        sid = event.get("session_id") if isinstance(event.get("session_id"), str) else None
        name = event.get("name") if isinstance(event.get("name"), str) else None
        canon = self._bind(ids, sid, name or None)
        return canon, self.labels[canon]

    def label(self, any_id: str) -> str:
        """The label of a session named by any of its ids."""
        canon = self.canon.get(any_id)
        return self.labels[canon] if canon is not None else short(any_id)

    # --- facts ---------------------------------------------------------------------------

    def fact(self, event: dict[str, Any]) -> tuple[str, str, str] | None:
        """``(label, what, state-for-colour)`` for an event, or None when it says nothing new."""
        if event.get("type") not in (None, "event"):
            return None
        kind = str(event.get("event") or "?")
        canon, label = self.identify(event)
        seen = self.seen.setdefault(canon, _Seen())
        if kind in STATEFUL:
            value = tuple(event.get(f) for f in STATEFUL[kind])
            if seen.facts.get(kind) == value:
                return None
            seen.facts[kind] = value
        signature = (kind, *sorted((k, repr(v)) for k, v in event.items() if k not in ("time",)))
        if signature == seen.last:
            return None
        seen.last = signature
        if kind != "state" and kind != "hook":
            seen.last_state_hook = None
        what = self._describe(kind, event, seen)
        if what is None:
            return None
        state = event.get("state") if kind == "state" else ""
        return clean(label), clean(what), state if isinstance(state, str) else ""

    def _describe(self, kind: str, ev: dict[str, Any], seen: _Seen) -> str | None:
        if kind == "state":
            state = str(ev.get("state"))
            hook = ev.get("hook")
            seen.last_state_hook = hook if isinstance(hook, str) else None
            if hook == "SessionEnd" and state == "busy":
                return "cleared (/clear): a new session id follows"
            text = {"waiting": "is waiting for its user", "ended": "ended"}.get(
                state, f"is {state}"
            )
            if ev.get("error"):
                text += f" ({ev['error']})"
            if hook and hook != "transcript":
                text += f" after {hook}"
            elif hook == "transcript":
                text += " (from its transcript)"
            return text
        if kind == "hook":
            hook = str(ev.get("hook") or "?")
            raw = ev.get("payload")
            payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
            detail = ""
            for k in ("tool_name", "source", "reason", "notification_type"):
                value = payload.get(k)
                if isinstance(value, str) and value:
                    detail = value
                    break
            if seen.last_state_hook == hook and hook not in ("PreToolUse", "PostToolUse"):
                seen.last_state_hook = None
                return None  # the state line just said it
            seen.last_state_hook = None
            return f"hook {hook}" + (f" {detail}" if detail else "")
        if kind == "delivered":
            text = preview(ev.get("text"))
            if text in seen.said_submitted:
                seen.said_submitted.remove(text)
                return None  # already said "delivered and submitted"
            seen.announced = [*seen.announced[-7:], text]
            return f"{ev.get('kind') or 'prompt'} delivered: {text}"
        if kind == "submitted":
            text = preview(ev.get("text"))
            if text in seen.announced:
                seen.announced.remove(text)
                return f"prompt submitted: {text}"
            seen.said_submitted = [*seen.said_submitted[-7:], text]
            return f"prompt delivered and submitted: {text}"
        if kind == "queued":
            reason = f" ({ev['reason']})" if ev.get("reason") else ""
            return f"queued {ev.get('id', '')}{reason}: {preview(ev.get('text'))}"
        if kind == "scheduled_fired":
            status = ev.get("status") or "delivered"
            return f"scheduled message {ev.get('id')} {status}"
        if kind == "scheduled_failed":
            return (
                f"scheduled message {ev.get('id')} not delivered "
                f"(attempt {ev.get('attempts')}): {ev.get('error')}"
            )
        if kind == "context":
            return f"context {pct(ev.get('used_percentage'))} used"
        if kind == "branch":
            return f"branch → {scalar(ev.get('branch'))}"
        if kind == "pane_gone":
            return f"tmux pane {scalar(ev.get('pane'))} is gone"
        if kind == "associated":
            prev = ev.get("previous")
            if isinstance(prev, str):
                return f"is now session {ev.get('session_id')} (was {short(prev)})"
            return "new session"
        if kind == "connected":
            return "client connected" + (f" ({ev['kind']})" if ev.get("kind") else "")
        if kind == "disconnected":
            return "client disconnected"
        extras = [f"{k} {scalar(v)}" for k, v in ev.items() if k not in INTERNAL]
        return kind + (": " + ", ".join(extras) if extras else "")

    def line(self, event: dict[str, Any], *, colour: bool = False) -> str | None:
        """``HH:MM:SS label what`` for ``ccc watch``, or None (nothing new)."""
        fact = self.fact(event)
        if fact is None:
            return None
        label, what, state = fact
        when = clock(event.get("time"))
        if colour and state in STATE_COLOURS:
            what = what.replace(state, f"\x1b[{STATE_COLOURS[state]}m{state}\x1b[0m", 1)
        return f"{when} {label:8} {what}"


def clock(value: Any, now: float | None = None) -> str:
    """``HH:MM:SS`` of an epoch time; the current time for anything that is not one."""
    t = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    try:
        return datetime.fromtimestamp(t if t is not None else (now or _time.time())).strftime(
            "%H:%M:%S"
        )
    except (ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(now or _time.time()).strftime("%H:%M:%S")


def ago(seconds: float) -> str:
    """A duration as people say it: ``45s``, ``12m``, ``3h05m``, ``2d4h``."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"
