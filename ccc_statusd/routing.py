"""Routing decisions, pure: which session an id names, and what to do with a message for it.

No I/O: the server asks these functions and acts on the answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from .protocol import MIN_PREFIX_LEN
from .sessions import BUSY, ENDED, UNKNOWN, WAITING, SessionInfo


class RoutingError(Exception):
    """A message cannot be routed; ``str(exc)`` is the sentence sent back to the sender."""


def resolve_id(target: str, known: Iterable[str]) -> str:
    """A full session id, or a unique prefix of at least MIN_PREFIX_LEN characters, → full id."""
    known_set = known if isinstance(known, set) else set(known)
    if target in known_set:
        return target
    if len(target) < MIN_PREFIX_LEN:
        raise RoutingError(
            f"session {target!r} is not known and is too short to be a prefix; "
            f"give the full session id or at least {MIN_PREFIX_LEN} characters of it "
            "(list sessions with: ccc sessions)"
        )
    matches = sorted(s for s in known_set if s.startswith(target))
    if not matches:
        raise RoutingError(f"no session matches {target!r}; list sessions with: ccc sessions")
    if len(matches) > 1:
        shown = ", ".join(matches[:10]) + (" …" if len(matches) > 10 else "")
        raise RoutingError(
            f"session prefix {target!r} is ambiguous: it matches {shown}; give more characters"
        )
    return matches[0]


@dataclass(frozen=True)
class Deliver:
    """Send to the session client connected under ``key``."""

    key: str


@dataclass(frozen=True)
class DeliverTmux:
    """Type into the tmux pane of an adopted session."""

    pane: str


@dataclass(frozen=True)
class Queue:
    """Keep it in the session's outbox until its next idle moment; ``reason`` is for the sender."""

    reason: str
    retry_s: float | None = None  # when it may go, if a timer (not a hook) decides


Route = Deliver | DeliverTmux | Queue

_QUEUE_REASONS = {
    BUSY: "the session is busy with a turn",
    WAITING: "the session is waiting for its user (a permission or question dialog is open)",
}


def decide(
    kind: str,
    info: SessionInfo | None,
    target: str,
    *,
    client_connected: bool,
    settling_s: float = 0.0,
) -> Route:
    """Where a prompt/command/eval for session ``target`` goes, or RoutingError.

    Deliver only when idle (SPEC §7): keystrokes go to whatever has focus, so a session whose
    hooks say busy or waiting gets the message queued, never typed. ``settling_s`` > 0: a
    message was just typed and no hook has told yet whether its turn began (a second one could
    land in a dialog that turn opened), so this one waits too. Sessions without hooks have no
    such signal; their client guards itself (draft, typing, quiet terminal). Eval is never
    queued.
    """
    if info is None:
        raise RoutingError(
            f"session {target} is not running (it is known from its history only); resume it "
            f"with: ccc run -- claude --resume {target}"
        )
    if info.state == ENDED:
        raise ended_error(target, info.end_reason, info.state_changed_wall)
    if not client_connected and info.kind in ("pty", "inject") and not info.tmux_pane:
        raise RoutingError(
            f"session {target} runs under ccc run, whose connection to the daemon is down (it "
            "reconnects by itself); try again in a few seconds"
        )
    if kind != "eval" and (client_connected or info.tmux_pane):
        if info.state in _QUEUE_REASONS:
            return Queue(_QUEUE_REASONS[info.state])
        if settling_s > 0 and info.state != UNKNOWN:
            return Queue(
                "a message was just delivered to this session; it waits for that turn",
                retry_s=settling_s,
            )
    if client_connected:
        return Deliver(info.key)
    if kind == "eval":
        raise RoutingError(
            f"session {target} is not attached to the daemon, so it cannot evaluate code; "
            "start it with: ccc run --inject -- claude"
        )
    if info.tmux_pane:
        return DeliverTmux(info.tmux_pane)
    raise RoutingError(
        f"session {target} is not connected to the daemon and is not in a tmux pane; attach it "
        "by starting Claude Code with: ccc run -- claude"
    )


def ended_error(target: str, reason: str | None, when_wall: float | None) -> RoutingError:
    """The error for a session that is over: how it ended, when, and how to resume it."""
    how = {"crashed": "crashed", "pane_gone": "lost its tmux pane"}.get(reason or "", "ended")
    return RoutingError(
        f"session {target} {how}{_clock(when_wall)}; resume it with: "
        f"ccc run -- claude --resume {target}"
    )


def _clock(wall: float | None) -> str:
    if not wall:
        return ""
    return " at " + time.strftime("%Y-%m-%d %H:%M", time.localtime(wall))
