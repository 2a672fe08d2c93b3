"""Liveness: is the Claude Code process of a session still there?

A session whose process is gone (``kill -9``, a crash, a closed terminal) fires no
``SessionEnd``: without this it would stay "idle" at the top of the list for ever. Each session
knows its Claude pid (from hooks, or its session client) and that process's start time
(``/proc/<pid>/stat`` field 22), so a pid the kernel reused for another process does not count
as alive. The check is a ``kill(pid, 0)`` and one small read of ``/proc``: cheap enough to run
every few seconds over every session.

``pid_start`` and ``is_alive`` are pure functions of the process table; ``run_liveness`` is the
periodic task (interval injected) that ends dead sessions through ``SessionDirectory``'s
one transition.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from typing import NoReturn

import trio

from .sessions import ENDED, SessionInfo

log = logging.getLogger(__name__)

LIVENESS_INTERVAL_S = 5.0  # a dead session shows "ended (crashed)" within this


def pid_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, or None if there is none."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) is in parentheses and may contain spaces or ")": the fields
    # after the last ")" are positional from field 3.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22
    except (IndexError, ValueError):
        return None


def is_alive(pid: int, start: int | None) -> bool:
    """Whether ``pid`` still runs and is the same process (same start time, when known)."""
    if pid <= 1:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists (another user's: not a Claude Code of ours, but not gone either)
    except OverflowError:
        return True
    if start is None:
        return True
    now = pid_start(pid)
    return now is None or now == start


def dead_sessions(
    sessions: list[SessionInfo], *, now_wall: float | None = None, silent_after_s: float = 0.0
) -> list[tuple[SessionInfo, str]]:
    """The sessions to end, and why: ``crashed`` when their process is gone; ``silent`` for
    sessions with no process known and no client that have said nothing for
    ``silent_after_s`` (hook-only sessions that never sent SessionEnd must not pile up)."""
    out = []
    checked: dict[tuple[int, int | None], bool] = {}  # one check per process, not per session
    for info in sessions:
        if info.state == ENDED:
            continue
        if info.pid is not None:
            proc = (info.pid, info.pid_start)
            alive = checked.get(proc)
            if alive is None:
                alive = checked[proc] = is_alive(*proc)
            if not alive:
                out.append((info, "crashed"))
        elif (
            now_wall is not None
            and silent_after_s > 0
            and not info.connected
            and (info.last_activity_wall or info.first_seen_wall or now_wall)
            < now_wall - silent_after_s
        ):
            out.append((info, "silent"))
    return out


async def run_liveness(
    sessions: Callable[[], list[SessionInfo]],
    end: Callable[[SessionInfo, str], None],
    *,
    wall: Callable[[], float],
    interval_s: float = LIVENESS_INTERVAL_S,
    silent_after_s: float = 0.0,
    inline: bool = False,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Every ``interval_s``: end the sessions whose process is gone (``end(info, reason)``)."""
    task_status.started()
    while True:
        await trio.sleep(interval_s)
        try:
            # Off the event loop: with 10,000 sessions the pass is a few ms of Python, which
            # would show as a stall in every request's latency (it only reads the sessions).
            snapshot = sessions()
            seen = {id(i): (i.pid, i.pid_start) for i in snapshot}
            check = partial(dead_sessions, snapshot, now_wall=wall(), silent_after_s=silent_after_s)
            # (inline: on Trio's virtual clock a thread would let time leap ahead meanwhile)
            dead = check() if inline else await trio.to_thread.run_sync(check)
            for info, why in dead:
                if info.state == ENDED or (info.pid, info.pid_start) != seen.get(id(info)):
                    continue  # it changed while we looked (a new child pid): not this one
                log.info("session %s ended (%s; pid %s)", info.session_id, why, info.pid)
                end(info, why)
        except Exception:
            log.exception("the liveness check failed; it runs again in %g s", interval_s)
