"""Delivery into a tmux pane, for adopted sessions (Claude Code started without ``ccc run``
whose hooks report ``TMUX_PANE``). Owns nothing but the short-lived tmux client processes.

A prompt is loaded into a uniquely named tmux buffer (through stdin, so the text never passes
through an argv or a shell), pasted into the pane with bracketed paste (``paste-buffer -p``;
``-r`` keeps line feeds as line feeds, which Claude Code reads as newlines inside the prompt,
where tmux's default would turn them into carriage returns that submit early; ``-d`` deletes
the buffer), then Enter is sent as a separate key ``enter_delay_s`` later (measured on the real
Claude Code: an Enter in the same burst as a long paste is swallowed). A slash command is typed
as literal keys (``send-keys -l``) so that Claude Code's command menu sees it.

The caller (the daemon) decides *when* to try: when the session's hooks say it is idle. The
pane's screen has the last word (issue 15): before typing, the pane is read (``capture-pane``)
and classified by :func:`ccc_statusd.screen.classify`; anything but Claude Code's empty main
input box with nothing open (a draft, the ``/`` menu, the /model picker, a panel, a dialog, a
busy turn, copy mode, a screen we do not recognise) raises :class:`PaneNotReady` with the reason,
and nothing is typed. After the Enter the pane is read again until it shows the text left the
input box (``confirm_s``): the result says ``submitted``, or ``typed`` with what was seen. The
window between the capture and the paste is a few milliseconds (two tmux calls); a key the user
types inside it can still merge, which the ``typed`` answer then reports.
``socket_name`` picks the tmux server: a name (``-L``), or a socket path (``-S``), e.g. from the
hook's ``$TMUX`` via :func:`socket_from_tmux_env` (pane ids are per server).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Sequence

import trio

from .paste import ENTER_DELAY_S, DeliveryRefused, command_keys, prompt_keys
from .screen import BUSY, DIALOG, PANEL, PICKER, READY, ScreenState, classify

__all__ = [
    "DeliveryRefused",
    "PaneNotReady",
    "TmuxDeliveryError",
    "deliver_command_to_pane",
    "deliver_to_pane",
    "pane_alive",
    "read_pane",
    "socket_from_tmux_env",
]

TMUX_TIMEOUT_S = 5.0  # a local tmux command answers in milliseconds; longer means a hung server
SUBMIT_KEYS: tuple[str, ...] = ("Enter",)
CONFIRM_S = 3.0  # after the Enter, how long the pane may take to show the submission
CONFIRM_POLL_S = 0.05
PANE_RETRY_S = 1.0  # a pane that was not ready is read again this often (one capture: ~ms)
_SUBMITTED_KINDS = (READY, BUSY, PICKER, PANEL, DIALOG)


class TmuxDeliveryError(Exception):
    """A tmux command failed (no tmux, no server, no such pane, ...); the message says which and
    what to do."""


class PaneNotReady(Exception):
    """The pane does not show Claude Code's empty input box, so nothing was typed; ``reason``
    says what it shows ("the /model picker is open"), ``kind`` is the classifier's kind. The
    daemon queues the message with that reason and looks again after ``retry_s`` (no hook
    fires when a picker closes or a draft is cleared)."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.retry_s = PANE_RETRY_S


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


async def read_pane(
    pane: str, *, tmux: str = "tmux", socket_name: str | None = None
) -> tuple[ScreenState, str]:
    """Classify what ``pane`` shows now; also return its text (to see later whether it changed).

    One tmux call: ``capture-pane -p`` then the cursor position and copy-mode flag."""
    out = await _tmux(
        ["capture-pane", "-p", "-t", pane, ";", "display-message", "-p", "-t", pane,
         "#{cursor_x},#{cursor_y},#{pane_in_mode}"],
        tmux=tmux,
        socket_name=socket_name,
        what=f"read tmux pane {pane}",
    )  # fmt: skip
    lines = out.rstrip("\n").split("\n")
    meta = lines.pop().split(",") if lines else []
    try:
        cursor: tuple[int, int] | None = (int(meta[0]), int(meta[1]))
        in_mode = meta[2] != "0"
    except (IndexError, ValueError):
        cursor, in_mode = None, False
    text = "\n".join(line.rstrip() for line in lines)
    if in_mode:
        return ScreenState(
            "unknown", f"tmux pane {pane} is in copy mode (keys would go there)"
        ), text
    return classify(lines, cursor), text


async def _check(pane: str, *, tmux: str, socket_name: str | None) -> str:
    state, text = await read_pane(pane, tmux=tmux, socket_name=socket_name)
    if not state.ready:
        raise PaneNotReady(f"{state.reason}; nothing was typed, the message waits", state.kind)
    return text


async def _confirm(
    pane: str, before: str, confirm_s: float, *, tmux: str, socket_name: str | None
) -> dict[str, str]:
    """``{"status": "submitted"}`` once the pane shows the text left the input box, else
    ``{"status": "typed", "seen": <what the pane showed>}`` after ``confirm_s``."""
    state: ScreenState | None = None
    text = before
    with trio.move_on_after(confirm_s):
        while True:
            await trio.sleep(CONFIRM_POLL_S)
            state, text = await read_pane(pane, tmux=tmux, socket_name=socket_name)
            if state.kind in _SUBMITTED_KINDS and text != before:
                return {"status": "submitted"}
    if state is None:
        return {"status": "typed", "seen": "the pane was not read again in time"}
    if text == before:
        return {
            "status": "typed",
            "seen": f"the pane did not change after typing ({state.describe()})",
        }
    return {"status": "typed", "seen": state.describe()}


async def deliver_to_pane(
    pane: str,
    text: str,
    *,
    submit_keys: Sequence[str] = SUBMIT_KEYS,
    enter_delay_s: float = ENTER_DELAY_S,
    tmux: str = "tmux",
    socket_name: str | None = None,
    confirm_s: float = CONFIRM_S,
) -> dict[str, str]:
    """Check the pane, paste ``text`` as one bracketed paste, press ``submit_keys``, confirm.

    Returns ``{"status": "submitted"}`` or ``{"status": "typed", "seen": ...}``. Raises
    :class:`PaneNotReady` (nothing typed: queue it), :class:`TmuxDeliveryError` when tmux fails
    (the pane is gone, no server, ...) and :class:`~ccc_statusd.paste.DeliveryRefused` for a
    text with nothing typeable in it.
    """
    keys = prompt_keys(text)
    before = await _check(pane, tmux=tmux, socket_name=socket_name)
    buffer = f"ccc-{uuid.uuid4().hex[:12]}"
    where = f"paste into tmux pane {pane}"
    await _tmux(
        ["load-buffer", "-b", buffer, "-"],
        tmux=tmux,
        socket_name=socket_name,
        stdin=keys.text.encode("utf-8"),
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
    return await _confirm(pane, before, confirm_s, tmux=tmux, socket_name=socket_name)


async def deliver_command_to_pane(
    pane: str,
    name: str,
    args: str | None = None,
    *,
    submit_keys: Sequence[str] = SUBMIT_KEYS,
    enter_delay_s: float = ENTER_DELAY_S,
    tmux: str = "tmux",
    socket_name: str | None = None,
    confirm_s: float = CONFIRM_S,
) -> dict[str, str]:
    """Check the pane, type ``/NAME ARGS`` as literal keys, press ``submit_keys``, confirm
    (same results and exceptions as :func:`deliver_to_pane`)."""
    keys = command_keys(name, args)
    before = await _check(pane, tmux=tmux, socket_name=socket_name)
    await _tmux(
        ["send-keys", "-t", pane, "-l", keys.text],
        tmux=tmux,
        socket_name=socket_name,
        what=f"type {keys.text.split(' ')[0]} into tmux pane {pane}",
    )
    await _submit(pane, submit_keys, enter_delay_s, tmux=tmux, socket_name=socket_name)
    return await _confirm(pane, before, confirm_s, tmux=tmux, socket_name=socket_name)


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
