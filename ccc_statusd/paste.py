"""Paste safety by construction: the one place that turns a routed prompt or slash command into
the exact keystrokes written into a Claude Code terminal, for every path (``ccc run``'s pty,
adopted tmux panes, ``ccc run --inject``). Pure: no I/O.

The danger (issue 15): a prompt is typed as one bracketed paste, ``ESC[200~ TEXT ESC[201~``,
then Enter. If TEXT could end the paste early, everything after that would arrive as live keys
(Shift+Tab cycles the permission mode, Ctrl-C, ``!`` starts bash mode) and our own Enter would
submit them. Removing the markers with one substitution is not enough: ``"\\e[20" "\\e[201~"
"1~"`` rebuilds ``\\e[201~``. So the rule is about characters, not markers:

- pasted text carries **no ESC at all**, no C1 control (U+0080-U+009F, which includes the 8-bit
  CSI U+009B), no other C0 control but TAB and LF, no DEL, and no lone surrogate. Without ESC no
  marker can exist or be rebuilt; the cleaning still runs to a fixed point, and the result is
  checked (:func:`check_paste`) before it is returned;
- CR and CRLF become LF (a raw CR submits early: measured on the real Claude Code);
- a slash command's name is a plain word and its arguments carry no control character at all
  (each becomes a space): they are typed as keys, not pasted;
- what is left empty after cleaning is refused with :class:`DeliveryRefused` (a clear sentence,
  never a crash).

:func:`prompt_keys` / :func:`command_keys` return a :class:`Keys`: ``body`` (the bytes to write
first; for a prompt exactly ``PASTE_START + text + PASTE_END``), ``enter`` (written separately,
later: in the same burst Claude Code reads it as pasted text) and ``text`` (the cleaned text,
e.g. for tmux's own ``paste-buffer -p``, and for confirming the submission).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"
ENTER = b"\r"
# The Enter goes ≥ 30 ms after the text, as its own write (FACTS §5: in the same burst as a
# paste, or too soon after it, it is read as part of the paste and swallowed).
ENTER_DELAY_S = 0.05

# Everything a paste may not carry: C0 controls but TAB (09) and LF (0a), DEL, C1 controls,
# and lone surrogates (not encodable as UTF-8).
_PASTE_FORBIDDEN_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# In a command line every control character would act as a key.
_COMMAND_FORBIDDEN_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_COMMAND_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:.\-]*$")
MAX_NAME_CHARS = 64


class DeliveryRefused(ValueError):
    """The text cannot be typed as given (empty after cleaning, bad command name); the message
    says why and what to send instead."""


@dataclass(frozen=True)
class Keys:
    """What to type: ``body`` first, then ``enter`` as a separate, later write."""

    body: bytes
    enter: bytes
    text: str
    kind: str  # "prompt" or "command"


def clean_paste_text(text: str) -> str:
    """``text`` as it may go inside one bracketed paste (see the module docstring)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    while True:
        cleaned = _PASTE_FORBIDDEN_RE.sub("", text)
        # Without ESC no marker can exist; the text form "[201~" is harmless, left as typed.
        if cleaned == text:
            return cleaned
        text = cleaned


def check_paste(body: bytes) -> None:
    """Raise AssertionError unless ``body`` is exactly one paste: one start marker at the head,
    one end marker at the tail, and no ESC, C1 (as UTF-8) or CR in between."""
    if not (body.startswith(PASTE_START) and body.endswith(PASTE_END)):
        raise AssertionError("a paste must start and end with the bracketed-paste markers")
    inner = body[len(PASTE_START) : -len(PASTE_END)]
    if b"\x1b" in inner or b"\r" in inner or re.search(rb"\xc2[\x80-\x9f]", inner):
        raise AssertionError("a paste body must carry no ESC, CR or C1 control")


def prompt_keys(text: str) -> Keys:
    """The keystrokes that type ``text`` as one prompt: ``PASTE_START + clean + PASTE_END``,
    then Enter. Raises :class:`DeliveryRefused` when nothing typeable is left."""
    clean = clean_paste_text(str(text))
    if not clean.strip():
        raise DeliveryRefused(
            "the prompt is empty (or held only control characters, which are never typed); "
            "nothing was typed: send some text"
        )
    body = PASTE_START + clean.encode("utf-8") + PASTE_END
    check_paste(body)
    return Keys(body=body, enter=ENTER, text=clean, kind="prompt")


def command_line(name: str, args: str | None = None) -> str:
    """``/NAME ARGS`` as typed; a leading ``/`` on the name is optional; control characters in
    the arguments become spaces."""
    name = str(name).strip().lstrip("/")
    if len(name) > MAX_NAME_CHARS or not _COMMAND_NAME_RE.fullmatch(name):
        raise DeliveryRefused(
            f"{name[:40]!r} is not a slash-command name; use letters, digits, '-', '_', ':' "
            "or '.', e.g. \"clear\""
        )
    line = "/" + name
    if args:
        args = _COMMAND_FORBIDDEN_RE.sub(" ", str(args)).strip()
        if args:
            line += " " + args
    return line


def command_keys(name: str, args: str | None = None) -> Keys:
    """The keystrokes that run ``/NAME ARGS``: typed as plain keys (not pasted, so Claude Code's
    command menu sees it), then Enter."""
    line = command_line(name, args)
    return Keys(body=line.encode("utf-8"), enter=ENTER, text=line, kind="command")


def message_keys(msg: dict[str, object]) -> Keys:
    """:func:`prompt_keys` or :func:`command_keys` for a routed ``prompt``/``command`` message."""
    kind = msg.get("type")
    if kind == "prompt":
        return prompt_keys(str(msg.get("text") or ""))
    if kind == "command":
        text = msg.get("text")
        return command_keys(str(msg.get("name") or ""), str(text) if text else None)
    raise DeliveryRefused(f"cannot type a {str(kind)[:40]!r} message; only prompt and command")
