"""Pure helpers that turn untrusted JSON values into what the daemon stores and shows.

Client data (hook payloads, statusline JSON, register data) is arbitrary JSON: a 30-digit
"pid" or a NaN cost must never reach SQLite, and a text shown in an event is one short line.
"""

from __future__ import annotations

import math
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what SQLite can store
MAX_FIELD_CHARS = 4096  # a cwd, model name, branch...: anything longer is not one


def text(value: Any, limit: int = MAX_FIELD_CHARS) -> str | None:
    """A non-empty string of at most ``limit`` characters, or None."""
    return value if isinstance(value, str) and value and len(value) <= limit else None


def sqlite_int(value: Any) -> int | None:
    """An integer that fits SQLite, or None (a 30-digit "pid" must not reach the database)."""
    if isinstance(value, bool):
        return None
    out: int | None = None
    if isinstance(value, int):
        out = value
    elif isinstance(value, str) and value.isdigit() and len(value) <= 19:
        out = int(value)
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        out = int(value)
    return out if out is not None and INT64_MIN <= out <= INT64_MAX else None


def finite(value: Any) -> float | None:
    """A finite number (no NaN, no inf, nothing SQLite cannot hold), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) and abs(out) <= INT64_MAX else None


def preview(value: str, limit: int = 80) -> str:
    """The first line of a text, cut to ``limit`` characters (for events and logs)."""
    first = value.strip().splitlines()[0] if value.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"
