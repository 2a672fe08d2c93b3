"""When to tell the user about a session: the notification rules, pure (time passed in).

Three rules, each firing exactly once per transition:

- ``waiting``: a session's state becomes ``waiting`` (a permission dialog, a question);
- ``long_turn``: a session goes from ``busy`` to ``idle`` after at least ``long_turn_s``;
- ``blocked``: a message has been queued or due for a session for at least ``blocked_s``
  (once per message; a message delivered or cancelled before then never fires).

:class:`Rules` is fed the :class:`~ccc_statusd.board.Change` of every event
(:meth:`Rules.on_change`) and asked at :meth:`Rules.next_deadline` for blocked messages
(:meth:`Rules.due`). ``ccc notify`` and ``ccc top --bell`` run it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .board import Board, Change, Row
from .eventfmt import ago


@dataclass(frozen=True)
class Alert:
    """One notification: the facts ``ccc notify --exec`` puts into environment variables."""

    event: str  # waiting | long_turn | blocked
    session_id: str
    name: str
    state: str
    text: str
    duration_s: float | None = None
    message_id: str | None = None

    def env(self) -> dict[str, str]:
        out = {
            "CCC_EVENT": self.event,
            "CCC_SESSION": self.session_id,
            "CCC_NAME": self.name,
            "CCC_STATE": self.state,
            "CCC_TEXT": self.text,
        }
        if self.duration_s is not None:
            out["CCC_DURATION"] = f"{self.duration_s:.0f}"
        if self.message_id is not None:
            out["CCC_MESSAGE_ID"] = self.message_id
        return out


class Rules:
    """Which transitions become alerts; ``None`` thresholds turn a rule off."""

    def __init__(
        self,
        *,
        waiting: bool = True,
        long_turn_s: float | None = None,
        blocked_s: float | None = None,
    ) -> None:
        self.waiting = waiting
        self.long_turn_s = long_turn_s
        self.blocked_s = blocked_s
        self.fired_blocked: set[str] = set()

    def on_change(self, change: Change | None) -> list[Alert]:
        if change is None or change.new_state is None:
            return []
        row = change.row
        if self.waiting and change.new_state == "waiting":
            return [_alert("waiting", row, f"{row.label} is waiting for you")]
        if (
            self.long_turn_s is not None
            and change.old_state == "busy"
            and change.new_state == "idle"
            and change.lasted_s is not None
            and change.lasted_s >= self.long_turn_s
        ):
            return [
                _alert(
                    "long_turn",
                    row,
                    f"{row.label} finished a {ago(change.lasted_s)} turn",
                    duration_s=change.lasted_s,
                )
            ]
        return []

    def due(self, board: Board, now: float) -> list[Alert]:
        """Blocked messages past the threshold that have not fired yet."""
        if self.blocked_s is None:
            return []
        out = []
        for row in board.rows.values():
            for mid, since in row.queued.items():
                if mid in self.fired_blocked or now - since < self.blocked_s:
                    continue
                self.fired_blocked.add(mid)
                out.append(
                    _alert(
                        "blocked",
                        row,
                        f"a message for {row.label} has waited {ago(now - since)} "
                        f"(session {row.state}): {row.queued_text.get(mid, '')}".rstrip(": "),
                        duration_s=now - since,
                        message_id=mid,
                    )
                )
        return out

    def next_deadline(self, board: Board) -> float | None:
        """When the next blocked message crosses the threshold (epoch seconds), if any."""
        if self.blocked_s is None:
            return None
        times = [
            since + self.blocked_s
            for row in board.rows.values()
            for mid, since in row.queued.items()
            if mid not in self.fired_blocked
        ]
        return min(times) if times else None


def _alert(
    event: str,
    row: Row,
    text: str,
    *,
    duration_s: float | None = None,
    message_id: str | None = None,
) -> Alert:
    return Alert(
        event,
        row.session_id or row.key,
        row.label,
        row.state,
        text,
        duration_s=duration_s,
        message_id=message_id,
    )
