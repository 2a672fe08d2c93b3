"""Delivery into a tmux pane, for adopted sessions (Claude Code started without ``ccc run``
whose hooks report ``TMUX_PANE``). Owns nothing but the short-lived tmux client processes.

A prompt is loaded into a uniquely named tmux buffer (through stdin, so the text never passes
through an argv or a shell), pasted into the pane with bracketed paste (``paste-buffer -p``;
``-r`` keeps line feeds as line feeds, which Claude Code reads as newlines inside the prompt,
where tmux's default would turn them into carriage returns that submit early; ``-d`` deletes
the buffer), then Enter is sent as a separate key ``enter_delay_s`` later (measured on the real
Claude Code: an Enter in the same burst as a long paste is swallowed). A slash command is typed
as literal keys (``send-keys -l``) so that Claude Code's command menu sees it.

The caller (the daemon) decides *when* to deliver: only when the session's hooks say it is idle.
``socket_name`` picks the tmux server: a name (``-L``), or a socket path (``-S``), e.g. from the
hook's ``$TMUX`` via :func:`socket_from_tmux_env` (pane ids are per server).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Sequence

import trio

from .session.keys import DeliveryRefused, command_line, paste_text

ENTER_DELAY_S = 0.05  # ≥ 30 ms measured as needed for Enter to count as a key, not paste
TMUX_TIMEOUT_S = 5.0  # a local tmux command answers in milliseconds; longer means a hung server
SUBMIT_KEYS: tuple[str, ...] = ("Enter",)


class TmuxDeliveryError(Exception):
    """A tmux command failed (no tmux, no server, no such pane, ...); the message says which and
    what to do."""


def _base(tmux: str, socket_name: str | None) -> list[str]:
    """``tmux -S PATH`` when ``socket_name`` is a path (from the hook's ``$TMUX``), ``tmux -L
    NAME`` for a bare name, plain ``tmux`` (the default server) for None."""
    if not socket_name:
        return [tmux]
    return [tmux, "-S" if "/" in socket_name else "-L", socket_name]


def socket_from_tmux_env(value: str | None) -> str | None:
    """The server socket path in a ``$TMUX`` value (``/tmp/tmux-1000/default,4242,0``): pass it
    as ``socket_name`` so a pane id is looked up on the server it belongs to, whatever
    ``-L``/``-S`` the user started tmux with."""
    if not value:
        return None
    path = value.split(",", 1)[0]
    return path if path.startswith("/") else None


async def _tmux(
    args: Sequence[str],
    *,
    tmux: str,
    socket_name: str | None,
    stdin: bytes = b"",
    what: str,
) -> str:
    cmd = _base(tmux, socket_name) + list(args)
    try:
        with trio.fail_after(TMUX_TIMEOUT_S):
            proc = await trio.run_process(
                cmd, stdin=stdin, capture_stdout=True, capture_stderr=True, check=False
            )
    except FileNotFoundError:
        raise TmuxDeliveryError(
            f"cannot {what}: the tmux program {tmux!r} was not found; install tmux or attach "
            "the session with `ccc run -- claude`"
        ) from None
    except trio.TooSlowError:
        raise TmuxDeliveryError(
            f"cannot {what}: tmux did not answer within {TMUX_TIMEOUT_S:g} s; check the tmux server"
        ) from None
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise TmuxDeliveryError(f"cannot {what}: tmux said: {detail}")
    return proc.stdout.decode(errors="replace")


async def deliver_to_pane(
    pane: str,
    text: str,
    *,
    submit_keys: Sequence[str] = SUBMIT_KEYS,
    enter_delay_s: float = ENTER_DELAY_S,
    tmux: str = "tmux",
    socket_name: str | None = None,
) -> None:
    """Paste ``text`` into ``pane`` as one bracketed paste, then press ``submit_keys``.

    Raises :class:`TmuxDeliveryError` when tmux fails (the pane is gone, no server, ...) and
    :class:`~ccc_statusd.session.keys.DeliveryRefused` for an empty text.
    """
    body = paste_text(text)
    if not body.strip():
        raise DeliveryRefused("the prompt text is empty; nothing was typed (send some text)")
    buffer = f"ccc-{uuid.uuid4().hex[:12]}"
    where = f"paste into tmux pane {pane}"
    await _tmux(
        ["load-buffer", "-b", buffer, "-"],
        tmux=tmux,
        socket_name=socket_name,
        stdin=body.encode("utf-8"),
        what=where,
    )
    try:
        await _tmux(
            ["paste-buffer", "-p", "-r", "-d", "-b", buffer, "-t", pane],
            tmux=tmux,
            socket_name=socket_name,
            what=where,
        )
    except TmuxDeliveryError:
        # The paste failed, so -d did not delete the buffer: do not leave the text behind.
        with trio.move_on_after(TMUX_TIMEOUT_S):
            await trio.run_process(
                _base(tmux, socket_name) + ["delete-buffer", "-b", buffer],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        raise
    await _submit(pane, submit_keys, enter_delay_s, tmux=tmux, socket_name=socket_name)


async def deliver_command_to_pane(
    pane: str,
    name: str,
    args: str | None = None,
    *,
    submit_keys: Sequence[str] = SUBMIT_KEYS,
    enter_delay_s: float = ENTER_DELAY_S,
    tmux: str = "tmux",
    socket_name: str | None = None,
) -> None:
    """Type ``/NAME ARGS`` into ``pane`` as literal keys, then press ``submit_keys``."""
    line = command_line(name, args)
    await _tmux(
        ["send-keys", "-t", pane, "-l", line],
        tmux=tmux,
        socket_name=socket_name,
        what=f"type /{name.lstrip('/')} into tmux pane {pane}",
    )
    await _submit(pane, submit_keys, enter_delay_s, tmux=tmux, socket_name=socket_name)


async def _submit(
    pane: str,
    submit_keys: Sequence[str],
    enter_delay_s: float,
    *,
    tmux: str,
    socket_name: str | None,
) -> None:
    if not submit_keys:
        return
    # A separate key press, later: in the same burst as the paste it is read as pasted text.
    await trio.sleep(enter_delay_s)
    await _tmux(
        ["send-keys", "-t", pane, *submit_keys],
        tmux=tmux,
        socket_name=socket_name,
        what=f"press Enter in tmux pane {pane}",
    )


async def pane_alive(pane: str, *, tmux: str = "tmux", socket_name: str | None = None) -> bool:
    """Whether ``pane`` exists and its program is still running (False on any tmux failure)."""
    try:
        out = await _tmux(
            ["display-message", "-p", "-t", pane, "#{pane_dead}"],
            tmux=tmux,
            socket_name=socket_name,
            what=f"look up tmux pane {pane}",
        )
    except TmuxDeliveryError:
        return False
    return out.strip() == "0"
