"""When, in the user's words: durations (``90s``, ``1h30m``, a bare number of seconds), times
(``14:30``, ISO 8601) and rate-limit reset stamps, checked before anything is stored or sent.

Shared by the CLI (``ccc schedule``, ``ccc ask --timeout``) and ``ccc mcp`` (schedule_prompt).
Stdlib only.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

# When a rate-limit window resets, wait this much longer before sending: the reset time is the
# server's, our clock may be a little ahead, and a prompt sent a second early fails again.
RESET_MARGIN_S = 60

# Each part at most 9 digits: a longer number is a typo, and must not become a 4,300-digit
# int, an OverflowError in datetime, or a row SQLite cannot hold (issue 14 item 18).
_DURATION_RE = re.compile(r"^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s?)?$")
_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")

# How far ahead a message can be scheduled, and the longest `ccc ask` wait (the daemon's cap).
MAX_SCHEDULE_AHEAD_S = 366 * 86400
MAX_ASK_TIMEOUT_S = 7 * 86400


def _span(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days >= 1 else f"{seconds:g} s"


def parse_duration(text: str, option: str = "--in", max_s: int = MAX_SCHEDULE_AHEAD_S) -> int:
    """``90s``, ``10m``, ``2h``, ``1h30m``, ``1d``, a bare number of seconds → seconds, at most
    ``max_s``; ValueError with the sentence (checked before anything is stored or sent)."""
    m = _DURATION_RE.match(text.strip().lower())
    if not text.strip() or not m or not any(m.groups()):
        raise ValueError(
            f"{option} {text!r} is not a duration; write e.g. 90s, 10m, 2h, 1h30m or 1d"
        )
    d, h, mi, s = (int(g or 0) for g in m.groups())
    total = ((d * 24 + h) * 60 + mi) * 60 + s
    if total > max_s:
        raise ValueError(
            f"{option} {text!r} is too far ahead: at most {_span(max_s)}; give a shorter duration"
        )
    return total


def parse_at(text: str, now: datetime) -> datetime:
    """``14:30`` (the next such local time) or ISO 8601 → an aware datetime, in the future and
    at most :data:`MAX_SCHEDULE_AHEAD_S` ahead; ValueError."""
    now = now.astimezone()
    m = _CLOCK_RE.match(text.strip())
    if m:
        hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"--at {text!r} is not a time of day; write e.g. 14:30")
        due = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        return due if due > now else due + timedelta(days=1)
    try:
        due = datetime.fromisoformat(text.strip())
        if due.tzinfo is None:
            due = due.astimezone()  # a naive time is local time
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            f"--at {text!r} is neither a time of day nor an ISO 8601 date-time; write e.g. "
            "14:30 or 2025-06-01T09:00"
        ) from None
    if due <= now:
        raise ValueError(f"--at {text!r} is in the past; give a future time")
    if (due - now).total_seconds() > MAX_SCHEDULE_AHEAD_S:
        raise ValueError(
            f"--at {text!r} is too far ahead: at most {_span(MAX_SCHEDULE_AHEAD_S)}; "
            "give an earlier time"
        )
    return due


def parse_resets_at(value: Any) -> float | None:
    """``rate_limits.five_hour.resets_at`` as epoch seconds (seconds, milliseconds or ISO)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 1e12 else float(value)
    if isinstance(value, str):
        try:
            return parse_resets_at(float(value))
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.astimezone()).timestamp()
    return None
