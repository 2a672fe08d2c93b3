"""Whether the tmux pane each session lives in is still alive.

Owns :func:`run_tmux_watcher`: every ``interval_s`` it lists the live panes of each tmux server
that some session lives on (one ``tmux list-panes -a -F '#{pane_id}'`` per server per poll) and
reports each session's pane once, then on every alive/dead change.

A session's pane is a ``TMUX_PANE`` id such as ``%3``, optionally with the server's socket path
(the first field of the session's ``$TMUX``), because pane ids are per server. No subprocess runs
when no session has a pane, when tmux is not installed (then nothing is reported: unknown), or
when the server's socket does not exist (then its panes are reported dead: no server, no panes).
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import trio

log = logging.getLogger(__name__)

# Default seconds between polls: pane death is shown within this, at one subprocess per server.
TMUX_POLL_INTERVAL_S = 5.0

# A hung tmux (a wedged server) must not stall the watcher; a healthy list-panes takes ~5 ms.
TMUX_COMMAND_TIMEOUT_S = 5.0

# tmux's stderr when the socket is there but nobody listens (stale socket, server gone).
_NO_SERVER_MARKERS = ("no server running", "error connecting to")


@dataclass(frozen=True)
class TmuxPane:
    """A pane id (``%3``) on a tmux server; ``socket`` None means the default server."""

    pane_id: str
    socket: str | None = None


def default_socket_path(env: Mapping[str, str] | None = None, name: str = "default") -> Path:
    """The socket tmux itself would use for ``-L name`` (``default``: also honours ``$TMUX``)."""
    env = os.environ if env is None else env
    if name == "default" and env.get("TMUX"):
        return Path(env["TMUX"].split(",", 1)[0])
    tmpdir = env.get("TMUX_TMPDIR") or "/tmp"
    return Path(tmpdir) / f"tmux-{os.getuid()}" / name


def _as_pane(value: str | TmuxPane) -> TmuxPane:
    return value if isinstance(value, TmuxPane) else TmuxPane(value)


async def list_live_panes(
    tmux: str, socket: str | None, *, timeout_s: float | None = TMUX_COMMAND_TIMEOUT_S
) -> set[str] | None:
    """Pane ids alive on one server; an empty set if no server runs there; None if unknown
    (tmux failed some other way, or took over ``timeout_s``)."""
    sock = Path(socket) if socket else default_socket_path()
    if not sock.exists():
        return set()
    cmd = [tmux, "-S", str(sock), "list-panes", "-a", "-F", "#{pane_id}"]
    try:
        with trio.move_on_after(math.inf if timeout_s is None else timeout_s) as timeout:
            proc = await trio.run_process(
                cmd, capture_stdout=True, capture_stderr=True, check=False
            )
    except OSError:
        log.warning("running %s failed; pane liveness unknown this poll", tmux, exc_info=True)
        return None
    if timeout.cancelled_caught:
        log.warning("%s list-panes took over %ss; pane liveness unknown this poll", tmux, timeout_s)
        return None
    if proc.returncode == 0:
        return {
            line.strip()
            for line in proc.stdout.decode(errors="replace").splitlines()
            if line.strip()
        }
    err = proc.stderr.decode(errors="replace")
    if any(m in err for m in _NO_SERVER_MARKERS):
        return set()
    log.warning("%s list-panes exited %s: %s", tmux, proc.returncode, err.strip()[:200])
    return None


async def run_tmux_watcher(
    panes: Callable[[], Mapping[str, str | TmuxPane]],
    on_pane: Callable[[str, bool], Awaitable[None] | None],
    *,
    interval_s: float = TMUX_POLL_INTERVAL_S,
    tmux: str = "tmux",
    command_timeout_s: float | None = TMUX_COMMAND_TIMEOUT_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Report ``on_pane(session_id, alive)`` for each session's pane: once, then on change.

    ``panes()`` (session id → ``"%3"`` or :class:`TmuxPane`) is re-evaluated every
    ``interval_s``; a session that reappears with a different pane is reported afresh.
    ``tmux`` is the command (name looked up on PATH at every poll, or a path).
    ``command_timeout_s`` bounds each ``list-panes`` (None: unbounded, for tests on a MockClock,
    which would otherwise jump straight to the deadline while tmux runs). Never returns.
    """
    reported: dict[str, tuple[TmuxPane, bool]] = {}
    task_status.started()
    while True:
        current = {sid: _as_pane(v) for sid, v in panes().items()}
        for sid in [s for s in reported if current.get(s) != reported[s][0]]:
            del reported[sid]
        exe = shutil.which(tmux) if current else None
        if exe is not None:
            by_socket: dict[str | None, list[str]] = {}
            for sid, pane in current.items():
                by_socket.setdefault(pane.socket, []).append(sid)
            for socket, sids in by_socket.items():
                try:
                    live = await list_live_panes(exe, socket, timeout_s=command_timeout_s)
                except Exception as exc:  # a socket path that cannot be used: skip that server
                    log.warning("tmux socket %r: %s; its panes are not watched", socket, exc)
                    continue
                if live is None:
                    continue
                for sid in sids:
                    pane = current[sid]
                    alive = pane.pane_id in live
                    prev = reported.get(sid)
                    if prev is None or prev[1] != alive:
                        reported[sid] = (pane, alive)
                        try:
                            result = on_pane(sid, alive)
                            if inspect.isawaitable(result):
                                await result
                        except Exception:  # one session's report must not stop the watcher
                            log.exception("reporting the pane of session %s failed; going on", sid)
        await trio.sleep(interval_s)
