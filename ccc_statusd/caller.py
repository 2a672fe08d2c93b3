"""Who is talking to whom, pure: the calling session's identity, the sender header, send limits.

Used by ``ccc mcp`` (:mod:`ccc_statusd.mcp_server`) and by ``ccc prompt --from-name``. Standard
library only and no I/O except :func:`ancestors` (a bounded read of ``/proc/<pid>/stat``): the
CLI's send path may import it.

- :func:`find_caller`: which ``list_sessions`` row is the session that started this process.
  ``ccc mcp`` runs as a child of the Claude Code process (or of a shell it started), so in order:
  ``CCC_INTERNAL_ID`` inherited through ``ccc run``; else our nearest ancestor whose pid a row
  carries (the daemon learns a session's Claude pid from its hooks, and ``ccc run``'s own pid
  from its register); else ``CLAUDE_CODE_SESSION_ID`` from the environment.
- :func:`sender_header`: the short line put before a routed prompt so the receiving session (its
  model and its user) knows who sent it and how to answer.
- :class:`TokenBucket`: a per-caller send limit, so a looping agent cannot flood another
  session's outbox. Time is injected (a ``clock`` callable).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# How far up the process tree to look for the session's pid: claude → (sh) → ccc mcp, and
# ccc run → claude → (sh) → ccc mcp; a little more for wrappers (npx, env, a login shell).
MAX_ANCESTORS = 6
SHORT_ID_CHARS = 8

# The header a routed prompt carries. Fields: {who} ("api · 16c0e150" or "16c0e150"),
# {name}, {id} (short id), {session_id} (full id). Empty string = no header.
DEFAULT_PROMPT_HEADER = (
    "[from {who} via ccc; to answer, send_prompt or ask_session to session {id}]\n"
)
DEFAULT_ASK_HEADER = "[question from {who} via ccc; your reply is returned to it]\n"
UNKNOWN_SENDER = "an unidentified session"


def short_id(session_id: str | None) -> str:
    return (session_id or "?")[:SHORT_ID_CHARS]


def row_name(row: Mapping[str, Any]) -> str | None:
    name = row.get("name")
    return name if isinstance(name, str) and name.strip() else None


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc/<pid>/stat`` (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(4096)
    except OSError:
        return None
    rpar = stat.rfind(b")")
    if rpar < 0:
        return None
    fields = stat[rpar + 2 :].split()
    try:
        ppid = int(fields[1])
    except (IndexError, ValueError):
        return None
    return ppid if ppid > 1 else None


def ancestors(
    start: int | None = None,
    depth: int = MAX_ANCESTORS,
    parent: Callable[[int], int | None] = parent_pid,
) -> list[int]:
    """Our parent, its parent, ... (nearest first, at most ``depth``, stopping before pid 1)."""
    pid = os.getppid() if start is None else start
    out: list[int] = []
    while pid and pid > 1 and len(out) < depth and pid not in out:
        out.append(pid)
        nxt = parent(pid)
        if nxt is None:
            break
        pid = nxt
    return out


@dataclass(frozen=True)
class Caller:
    """The session calling us, as far as we could tell."""

    session_id: str | None = None
    internal_id: str | None = None
    name: str | None = None
    state: str | None = None
    how: str = "unknown"  # internal_id | pid | env | unknown
    row: Mapping[str, Any] | None = None

    @property
    def known(self) -> bool:
        return self.session_id is not None or self.internal_id is not None

    @property
    def who(self) -> str:
        if self.name and self.session_id:
            return f"{self.name} · {short_id(self.session_id)}"
        if self.name:
            return self.name
        if self.session_id:
            return short_id(self.session_id)
        if self.internal_id:
            return f"client {self.internal_id[:12]}"
        return UNKNOWN_SENDER

    def asker_fields(self) -> dict[str, str]:
        """What an ``ask`` message carries in ``data`` so the daemon can refuse a self-ask
        (and detect ask cycles): the asker's ``internal_id`` and ``session_id``."""
        out: dict[str, str] = {}
        if self.internal_id:
            out["internal_id"] = self.internal_id
        if self.session_id:
            out["session_id"] = self.session_id
        return out

    def is_row(self, row: Mapping[str, Any]) -> bool:
        """True when ``row`` (a ``list_sessions`` record) is this caller."""
        if self.internal_id and row.get("internal_id") == self.internal_id:
            return True
        if self.session_id:
            ids = [row.get("session_id"), *(row.get("aliases") or [])]
            return self.session_id in ids
        return False


def _caller_from_row(row: Mapping[str, Any], how: str) -> Caller:
    sid = row.get("session_id")
    iid = row.get("internal_id")
    state = row.get("state")
    return Caller(
        session_id=sid if isinstance(sid, str) else None,
        internal_id=iid if isinstance(iid, str) else None,
        name=row_name(row),
        state=state if isinstance(state, str) else None,
        how=how,
        row=row,
    )


def _live_first(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(
        rows, key=lambda r: (bool(r.get("connected")), r.get("state") != "ended"), reverse=True
    )


def find_caller(
    rows: Iterable[Mapping[str, Any]], env: Mapping[str, str], pids: Iterable[int]
) -> Caller:
    """The row of the calling session (see the module docstring for the order of the clues).

    ``pids`` are our ancestors, nearest first (:func:`ancestors`). A clue that names no row
    still identifies the caller by id (the session may not have sent a hook yet)."""
    rows = _live_first(r for r in rows if isinstance(r, Mapping))
    iid = env.get("CCC_INTERNAL_ID") or None
    if iid:
        for row in rows:
            if row.get("internal_id") == iid:
                return _caller_from_row(row, "internal_id")
    for pid in pids:
        for row in rows:
            if row.get("pid") == pid and row.get("state") != "ended":
                return _caller_from_row(row, "pid")
    sid = env.get("CLAUDE_CODE_SESSION_ID") or None
    if sid:
        for row in rows:
            if sid == row.get("session_id") or sid in (row.get("aliases") or []):
                return _caller_from_row(row, "env")
    if iid or sid:
        return Caller(session_id=sid, internal_id=iid, how="internal_id" if iid else "env")
    return Caller()


def resolve_name(target: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """A session name → that session's id (live sessions first); anything else unchanged (the
    daemon resolves ids and prefixes, and says what is wrong)."""
    target = target.strip()
    for row in _live_first(r for r in rows if isinstance(r, Mapping)):
        sid = row.get("session_id")
        if row_name(row) == target and isinstance(sid, str):
            return sid
    return target


def find_row(target: str, rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The row ``target`` (a name, full id, alias or unique prefix) means, or None."""
    target = target.strip()
    if not target:
        return None
    rows = _live_first(r for r in rows if isinstance(r, Mapping))
    for row in rows:
        if row_name(row) == target:
            return row
    for row in rows:
        if target == row.get("session_id") or target in (row.get("aliases") or []):
            return row
    matches = [
        row
        for row in rows
        if any(
            isinstance(i, str) and i.startswith(target)
            for i in [row.get("session_id"), *(row.get("aliases") or [])]
        )
    ]
    return matches[0] if len(matches) == 1 and len(target) >= 4 else None


def sender_header(template: str, caller: Caller) -> str:
    """The header for a routed prompt from ``caller`` (``template`` "" = none). Unknown fields in
    a user's template are left as written rather than failing the send."""
    if not template:
        return ""
    if caller.session_id is None and ("{id}" in template or "{session_id}" in template):
        # No id to answer to: say who (as far as known) without a reply hint that cannot work.
        return f"[from {caller.who} via ccc]\n"
    fields = {
        "who": caller.who,
        "name": caller.name or short_id(caller.session_id),
        "id": short_id(caller.session_id) if caller.session_id else "?",
        "session_id": caller.session_id or "?",
    }
    try:
        return template.format_map(_Keep(fields))
    except (ValueError, IndexError):
        return template


def name_header(name: str) -> str:
    """``ccc prompt --from-name NAME``: the header a script or a person puts on its prompt."""
    return f"[from {name.strip()} via ccc]\n"


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class RateLimited(Exception):
    """Too many sends from one caller; ``str()`` says how long to wait."""


class TokenBucket:
    """``capacity`` sends at once, refilled at ``per_minute`` a minute; ``clock`` is seconds."""

    def __init__(self, per_minute: float, capacity: float, clock: Callable[[], float]) -> None:
        if per_minute <= 0 or capacity < 1:
            raise ValueError("a rate limit needs a positive rate and a capacity of at least 1")
        self.rate_s = per_minute / 60.0
        self.capacity = float(capacity)
        self.clock = clock
        self.tokens = float(capacity)
        self.at = clock()

    def take(self) -> None:
        """Spend one send, or raise RateLimited with the wait."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate_s)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return
        wait = (1 - self.tokens) / self.rate_s
        raise RateLimited(
            f"rate limit: this session may send at most {self.rate_s * 60:g} messages a minute "
            f"(bursts of {self.capacity:g}) to other sessions through ccc; wait {wait:.0f} s. "
            "If you are looping, stop and check with your user; the limit is set with "
            "ccc mcp --rate-limit N"
        )


class RateLimiter:
    """One :class:`TokenBucket` per caller key (a ``ccc mcp`` serves one session, but the key
    keeps a session that is re-identified after /clear on the same budget)."""

    def __init__(self, per_minute: float, capacity: float, clock: Callable[[], float]) -> None:
        self.per_minute, self.capacity, self.clock = per_minute, capacity, clock
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> None:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.per_minute, self.capacity, self.clock)
        bucket.take()
