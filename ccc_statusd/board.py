"""The live picture of every session, kept from ``list_sessions`` + the event stream. Pure.

``ccc top`` draws it and ``ccc notify`` watches it for transitions. At every (re)connect the
client calls :meth:`Board.load` with one ``list_sessions`` answer and one ``list_scheduled``
answer; after that each event goes through :meth:`Board.apply`, which updates the row and
returns a :class:`Change` describing what happened (old/new state and how long the old one
lasted), so callers react to transitions without keeping a copy of their own. Time is passed
in (``now``), never read here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .eventfmt import EventFormatter, preview, short

# Ended and transcript-only sessions quiet this long are not shown by default (``ccc top``
# would otherwise list every transcript ever indexed); a filter still finds them.
QUIET_HIDE_S = 3600.0


@dataclass
class Row:
    """One session as ``ccc top`` shows it."""

    key: str
    session_id: str | None = None
    name: str | None = None
    state: str = "unknown"
    state_since: float | None = None
    model: str | None = None
    ctx_pct: float | None = None
    cost: float | None = None
    branch: str | None = None
    cwd: str | None = None
    tmux_pane: str | None = None
    connected: bool = False
    last_activity: float | None = None
    queued: dict[str, float] = field(default_factory=dict)  # message id → due since
    queued_text: dict[str, str] = field(default_factory=dict)  # message id → first line

    @property
    def label(self) -> str:
        return self.name or (short(self.session_id) if self.session_id else short(self.key))


@dataclass(frozen=True)
class Change:
    """What one event did to a row."""

    row: Row
    event: str
    old_state: str | None = None
    new_state: str | None = None
    lasted_s: float | None = None  # how long the old state lasted (state changes)
    queued_id: str | None = None  # a message added (queued) or gone (scheduled_fired)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class Board:
    """Rows keyed by canonical session key; the formatter's identity map is shared."""

    def __init__(self) -> None:
        self.fmt = EventFormatter()
        self.rows: dict[str, Row] = {}

    def load(
        self, records: Iterable[dict[str, Any]], scheduled: Iterable[dict[str, Any]], now: float
    ) -> None:
        """Replace everything with a fresh ``list_sessions`` + ``list_scheduled`` answer."""
        self.rows = {}
        self.merge(records, states=True)
        for msg in scheduled:
            if not isinstance(msg, dict) or not _str(msg.get("session_id")):
                continue
            row = self.row_for(msg["session_id"])
            since = max(_num(msg.get("created_at")) or 0.0, _num(msg.get("send_at")) or 0.0)
            row.queued[str(msg.get("id"))] = since or now
            row.queued_text[str(msg.get("id"))] = preview(msg.get("message"), 60)

    def merge(self, records: Iterable[dict[str, Any]], *, states: bool = False) -> list[Row]:
        """Take the descriptive fields (model, cost, context, branch, directory, pane, name) of
        ``list_sessions`` records; with ``states`` also the state (at connect: afterwards the
        events are newer). Returns the rows touched."""
        records = [r for r in records if isinstance(r, dict)]
        self.fmt.learn(records)
        touched = []
        for rec in records:
            sid = _str(rec.get("session_id"))
            if sid is None:
                continue
            canon = self.fmt.canon.get(sid, sid)
            row = self.rows.get(canon)
            fresh = row is None
            if row is None:
                row = self.rows[canon] = Row(key=canon)
            touched.append(row)
            row.session_id = sid
            row.name = _str(rec.get("name")) or row.name
            if states or fresh:
                row.state = _str(rec.get("state")) or "unknown"
                row.state_since = _num(rec.get("state_changed_at"))
                row.connected = bool(rec.get("connected"))
            row.model = _str(rec.get("model"))
            ctx = rec.get("context_window")
            row.ctx_pct = _num(ctx.get("used_percentage")) if isinstance(ctx, dict) else None
            row.cost = _num(rec.get("cost_usd"))
            row.branch = _str(rec.get("git_branch"))
            row.cwd = _str(rec.get("cwd"))
            row.tmux_pane = _str(rec.get("tmux_pane"))
            transcript = rec.get("transcript") if isinstance(rec.get("transcript"), dict) else {}
            last = (
                _num(rec.get("last_activity"))
                or _num(rec.get("last_seen"))
                or _num((transcript or {}).get("last_ts_epoch"))
            )
            row.last_activity = max(last or 0.0, row.last_activity or 0.0) or None
        return touched

    def row_for(self, any_id: str) -> Row:
        canon = self.fmt.canon.get(any_id, any_id)
        row = self.rows.get(canon)
        if row is None:
            row = self.rows[canon] = Row(key=canon, session_id=any_id)
        return row

    def apply(self, event: dict[str, Any]) -> Change | None:
        """Fold one event into its row; None for events about no session."""
        canon, _label = self.fmt.identify(event)
        if canon == "-":
            return None
        row = self.rows.get(canon)
        if row is None:
            row = self.rows[canon] = Row(key=canon)
        # A /clear moves the session to a new id: keep one row (the formatter joined the ids).
        sid = _str(event.get("session_id"))
        if sid is not None:
            row.session_id = sid
        if _str(event.get("name")):
            row.name = event["name"]
        when = _num(event.get("time"))
        kind = str(event.get("event") or "")
        if kind not in ("context", "branch", "pane_gone"):
            row.last_activity = when or row.last_activity
        if kind == "state":
            new = _str(event.get("state")) or "unknown"
            if event.get("hook") == "SessionEnd" and new == "busy":
                new = "clearing"  # /clear: the daemon says busy until the new SessionStart
            old = row.state
            if new == old:
                return Change(row, kind)
            lasted = (when - row.state_since) if (when and row.state_since) else None
            row.state, row.state_since = new, when
            return Change(row, kind, old_state=old, new_state=new, lasted_s=lasted)
        if kind == "context":
            row.ctx_pct = _num(event.get("used_percentage"))
        elif kind == "branch":
            row.branch = _str(event.get("branch"))
        elif kind == "connected":
            row.connected = True
        elif kind == "disconnected":
            row.connected = False
        elif kind == "pane_gone":
            row.tmux_pane = None
        elif kind == "queued" and event.get("id") is not None:
            row.queued[str(event["id"])] = when or 0.0
            row.queued_text[str(event["id"])] = preview(event.get("text"), 60)
            return Change(row, kind, queued_id=str(event["id"]))
        elif kind == "scheduled_fired" and event.get("id") is not None:
            row.queued.pop(str(event["id"]), None)
            row.queued_text.pop(str(event["id"]), None)
            return Change(row, kind, queued_id=str(event["id"]))
        return Change(row, kind)

    def forget_queued(self, message_id: str) -> None:
        for row in self.rows.values():
            row.queued.pop(message_id, None)
            row.queued_text.pop(message_id, None)

    @staticmethod
    def shows(row: Row, flt: str = "", *, now: float | None = None) -> bool:
        """Does ``row`` pass the filter (part of a label, id, branch or directory, or a state)?
        With ``now``, a session that has ended (or was only ever seen in a transcript) and has
        been quiet for :data:`QUIET_HIDE_S` is left out, unless the filter names it."""
        flt = flt.lower()
        if flt:
            return flt == row.state or any(
                flt in (v or "").lower() for v in (row.label, row.session_id, row.branch, row.cwd)
            )
        if now is None or row.connected or row.state not in ("ended", "unknown"):
            return True
        return now - (row.last_activity or 0.0) < QUIET_HIDE_S

    def ordered(self, flt: str = "", *, now: float | None = None) -> list[Row]:
        """Rows to show: live first (connected or not ended), then by latest activity."""
        rows = [r for r in self.rows.values() if self.shows(r, flt, now=now)]
        return sorted(
            rows,
            key=lambda r: (r.connected, r.state not in ("ended", "unknown"), r.last_activity or 0),
            reverse=True,
        )
