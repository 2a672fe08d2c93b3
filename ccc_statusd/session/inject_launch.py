"""`ccc run --inject`: load the in-process client (``ccc_statusd/inject/inject.cjs``, "the
injection") into the child, and keep the pty host's own daemon link out of its way. Owns the
child's injection environment and the decision of which of the two clients holds the session's
``internal_id`` on the daemon.

Why a decision is needed: the injection registers under the *same* ``internal_id`` as the pty
host (hooks run with ``CCC_INTERNAL_ID`` and must find one session), and the daemon keeps one
connection per id: a second ``register`` replaces (closes) the first. Two live clients would
knock each other off forever, so at any moment exactly one of them is on the socket.

Design (the pty host's side; the injection just connects and reconnects):

1. Environment (:func:`inject_env`): ``NODE_OPTIONS += --require=<realpath of inject.cjs>``
   (Node builds, ≤ 2.1.112) *and* ``BUN_OPTIONS += --preload=<realpath>`` (native Bun builds,
   ≥ 2.1.113) — we cannot tell which build ``claude`` is, and each runtime ignores the other's
   variable. Measured: Node takes a path with spaces in double quotes (``--require="/a b"``);
   Bun does not (it exits 1 with "preload not found") but takes ``--preload /a\\ b``. Plus
   ``CCC_SOCKET`` (the injection does nothing without it), ``CCC_INTERNAL_ID`` (already set by
   the pty host), and ``CCC_INJECT_DEBUG`` = the pty host's log file when it has one.
   The injection activates only where argv[1] is ``cli.js`` or Bun's ``/$bunfs/root/cli``, or
   ends with ``$CCC_INJECT_TARGET``. Measured on 2.1.112: npm's ``claude`` is a *symlink* to
   ``cli.js`` and Node keeps the symlink's path in argv[1] (``.../node_modules/.bin/claude``),
   so the default guard misses it. So when the command we exec is itself a Node script (a
   ``#!...node`` first line: it becomes the Node main process with argv[1] = that path), we set
   ``CCC_INJECT_TARGET`` to it, unless the user set one (:func:`node_script_target`).
2. The pty host's link is an :class:`InjectAwareLink`: a :class:`~.link.SessionLink` whose every
   connection attempt first passes a gate (:meth:`InjectAwareLink.wait_for_turn`). The gate
   asks the daemon (``active_sessions``: one short query connection, never a registration)
   whether our ``internal_id`` is held by a client of kind ``"inject"``:
   - first attempt: wait up to ``wait_s`` (default 5 s) for the injection to appear. If it
     does, stand by. If not (this build ignores BUN_OPTIONS, or the command is not Claude
     Code), log a warning to the pty host's log (never the user's terminal) and register as a
     plain pty client: prompts and commands work, ``ccc sessions`` shows kind ``pty``, and eval
     answers that it needs the injection.
   - standing by: poll every ``poll_s``; take over (register) once the daemon is reachable and
     has had no injection for ``grace_s`` in a row (default 15 s: longer than the injection's
     10 s reconnect back-off cap, so a daemon restart never triggers a takeover). Time with
     the daemon unreachable does not count: nobody can register then.
   - a later attempt (our connection ended: the daemon restarted, or the injection came back
     and replaced us): if the injection holds the id now, stand by again; otherwise register
     at once, as a plain link would. So a late injection (``ccc run --inject -- sh``, then
     ``claude``) takes over cleanly, with one replacement, not a tug of war.
   While standing by the pty host still pumps the terminal and tracks typing; only its
   socket link is idle.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from ..client import ClientError
from .link import SessionLink

log = logging.getLogger(__name__)

INJECT_WAIT_S = 5.0  # how long the pty host waits for the injection before registering itself
INJECT_GRACE_S = 15.0  # > inject.cjs's 10 s reconnect cap: its absence for this long is real
INJECT_POLL_S = 1.0  # standing by: how often to check the injection is still there
FIRST_WAIT_POLL_S = 0.1  # the first wait: Claude Code's start-up, worth noticing quickly
PROBE_TIMEOUT_S = 2.0  # one active_sessions query; longer means the daemon is wedged
INJECT_KIND = "inject"  # the kind inject.cjs registers with

_NEEDS_QUOTING = re.compile(r"[\s\"'\\]")


def inject_script() -> Path:
    """The real path of the injection shipped in the package (symlinks resolved, so the path
    inject.cjs sees as ``__filename`` is the one we put in the options and it can strip it)."""
    return (Path(__file__).resolve().parent.parent / "inject" / "inject.cjs").resolve()


def node_option(script: str) -> str:
    """``--require=<script>`` as Node's NODE_OPTIONS parser reads it (double quotes for spaces)."""
    if not _NEEDS_QUOTING.search(script):
        return f"--require={script}"
    escaped = script.replace("\\", "\\\\").replace('"', '\\"')
    return f'--require="{escaped}"'


def bun_option(script: str) -> str:
    """``--preload`` for BUN_OPTIONS. Measured on 2.1.331 (Bun 1.4.6): quotes are taken
    literally; a space-separated value with backslash escapes works, ``=`` with escapes does not."""
    if not _NEEDS_QUOTING.search(script):
        return f"--preload={script}"
    return "--preload " + re.sub(r"([\s\"'\\])", r"\\\1", script)


def node_script_target(exe: str) -> str | None:
    """``exe`` (absolute) if it is a script run by Node (``#!`` line naming node), else None.
    Such a script is the Node main process and sees ``process.argv[1] == exe``; a native binary
    or a shell wrapper is left to inject.cjs's own guard."""
    try:
        with open(exe, "rb") as f:
            first = f.read(256).split(b"\n", 1)[0]
    except OSError:
        return None
    return os.path.abspath(exe) if first.startswith(b"#!") and b"node" in first else None


def _append_option(existing: str | None, option: str) -> str:
    existing = (existing or "").strip()
    if option in existing:  # already there (a nested `ccc run --inject`): load it once
        return existing
    return f"{existing} {option}" if existing else option


def inject_env(
    env: Mapping[str, str],
    *,
    socket_path: str | os.PathLike[str],
    internal_id: str,
    script: Path | None = None,
    debug_log: Path | None = None,
    target: str | None = None,
) -> dict[str, str]:
    """``env`` plus what the child needs to load and activate the injection (see the module
    docstring; ``target``: see :func:`node_script_target`); raises FileNotFoundError if the script is missing (a preload that is not found
    makes Node and Bun refuse to start, so the caller must not set it then)."""
    path = script if script is not None else inject_script()
    if not path.is_file():
        raise FileNotFoundError(f"the in-process client {path} is missing; reinstall ccc-statusd")
    real = str(path.resolve())
    out = dict(env)
    out["NODE_OPTIONS"] = _append_option(env.get("NODE_OPTIONS"), node_option(real))
    out["BUN_OPTIONS"] = _append_option(env.get("BUN_OPTIONS"), bun_option(real))
    out["CCC_SOCKET"] = os.fspath(socket_path)
    out["CCC_INTERNAL_ID"] = internal_id
    if target and not env.get("CCC_INJECT_TARGET"):
        out["CCC_INJECT_TARGET"] = target
    if debug_log is not None and not env.get("CCC_INJECT_DEBUG"):
        out["CCC_INJECT_DEBUG"] = str(debug_log)
    return out


async def injection_state(socket_path: str, internal_id: str) -> str | None:
    """``"inject"`` if the injection holds ``internal_id`` on the daemon now, ``"absent"`` if the
    daemon answered and it does not, None if the daemon could not be asked."""
    from ..aclient import AsyncClient  # anyio: only `ccc run --inject` pays for the import

    try:
        with trio.move_on_after(PROBE_TIMEOUT_S):
            async with AsyncClient(socket_path, timeout=PROBE_TIMEOUT_S) as client:
                sessions = await client.query("active_sessions")
            for rec in sessions if isinstance(sessions, list) else ():
                if isinstance(rec, dict) and rec.get("internal_id") == internal_id:
                    return INJECT_KIND if rec.get("kind") == INJECT_KIND else "absent"
            return "absent"
    except (ClientError, OSError) as exc:
        log.debug("inject link %s: cannot ask the daemon: %s", internal_id, exc)
    return None


class InjectAwareLink(SessionLink):
    """The pty host's link under ``--inject``: registers only while the injection does not hold
    the session (see the module docstring). ``injection_seen`` says whether it ever did;
    ``standing_by`` whether we are waiting on it now."""

    def __init__(
        self,
        *args: Any,
        wait_s: float = INJECT_WAIT_S,
        grace_s: float = INJECT_GRACE_S,
        poll_s: float = INJECT_POLL_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wait_s = wait_s
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.injection_seen = False
        self.standing_by = False
        self._attempts = 0

    async def _serve_one(self, *args: Any, **kwargs: Any) -> None:
        # The one hook into SessionLink's loop: its back-off, reconnects and handler nursery
        # stay as they are; we only decide whether this attempt may register.
        await self.wait_for_turn()
        await super()._serve_one(*args, **kwargs)

    async def wait_for_turn(self) -> None:
        """Return when this link may register (the injection is absent); see the docstring."""
        self._attempts += 1
        if self._attempts == 1:
            if not await self._first_wait():
                log.warning(
                    "inject link %s: the in-process client (inject.cjs) did not register within "
                    "%g s, so this pty client registers instead: prompts and commands work, eval "
                    "does not. The build may ignore NODE_OPTIONS/BUN_OPTIONS, or the command is "
                    "not Claude Code (set CCC_INJECT_TARGET to the script's name)",
                    self.internal_id,
                    self.wait_s,
                )
                return
            log.info(
                "inject link %s: the in-process client registered; standing by", self.internal_id
            )
        else:
            if await injection_state(self.socket_path, self.internal_id) != INJECT_KIND:
                return  # reconnect as usual (or find the daemon down, and back off)
            self.injection_seen = True
            log.info(
                "inject link %s: the in-process client holds the session again; standing by",
                self.internal_id,
            )
        await self._stand_by()

    async def _first_wait(self) -> bool:
        with trio.move_on_after(self.wait_s):
            # Polling: the daemon has no "tell me when X registers" query.
            while await injection_state(self.socket_path, self.internal_id) != INJECT_KIND:  # noqa: ASYNC110
                await trio.sleep(FIRST_WAIT_POLL_S)
            self.injection_seen = True
            return True
        return False

    async def _stand_by(self) -> None:
        self.standing_by = True
        try:
            absent_since: float | None = None
            while True:
                state = await injection_state(self.socket_path, self.internal_id)
                now = trio.current_time()
                if state == "absent":
                    if absent_since is None:
                        absent_since = now
                    if now - absent_since >= self.grace_s:
                        log.warning(
                            "inject link %s: the in-process client has been gone for %g s; this "
                            "pty client takes over (prompts and commands keep working, eval does not)",
                            self.internal_id,
                            now - absent_since,
                        )
                        return
                else:
                    # Present, or the daemon is unreachable (no one can register): start over.
                    absent_since = None
                await trio.sleep(self.poll_s)
        finally:
            self.standing_by = False
