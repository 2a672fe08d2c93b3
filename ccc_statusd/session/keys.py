"""Pure keystroke and text helpers for the session client: the user's-draft tracker and the
byte sequences that deliver a prompt or a slash command into a terminal application.

No I/O and no trio here: the pty host feeds the user's raw input bytes to :class:`InputTracker`
(with a timestamp from whatever clock it uses) and asks it whether typing now would clobber
the human; what gets written is built by :mod:`ccc_statusd.paste` (re-exported here).

Theory of operation (draft tracking): Claude Code's input box holds what the user typed since
they last submitted. We cannot read the box, but every byte the user types passes through us,
so we keep an estimate: printable characters (and pasted text) add to the draft, Backspace
takes one away, and Enter (submit), Ctrl-U (clear line) and Ctrl-C (clear input) empty it.
Escape sequences (arrow keys, mouse and focus reports, terminal answers) do not change it.
The estimate errs towards "there is a draft", which only delays a delivery, never clobbers.
"""

from __future__ import annotations

from ..paste import (
    ENTER,
    PASTE_END,
    PASTE_START,
    DeliveryRefused,
    clean_paste_text,
    command_keys,
    command_line,
    prompt_keys,
)

__all__ = [
    "ENTER",
    "PASTE_END",
    "PASTE_START",
    "DeliveryRefused",
    "InputTracker",
    "command_bytes",
    "command_line",
    "paste_bytes",
    "paste_text",
]

_ESC = 0x1B
_CTRL_C = 0x03
_CTRL_U = 0x15
_BACKSPACES = (0x7F, 0x08)
_CR = 0x0D
_LF = 0x0A


def paste_text(text: str) -> str:
    """The prompt as it goes inside one bracketed paste (see :mod:`ccc_statusd.paste`)."""
    return clean_paste_text(text)


def paste_bytes(text: str) -> bytes:
    """``ESC[200~ TEXT ESC[201~``; the Enter that submits it is a separate, later write."""
    return prompt_keys(text).body


def command_bytes(name: str, args: str | None = None) -> bytes:
    """The slash command typed as plain keys (not pasted, so Claude Code's command menu sees it)."""
    return command_keys(name, args).body


class InputTracker:
    """Follows the user's keystrokes to tell whether a draft is in the input box.

    ``feed(data, now)`` takes raw bytes from the user's terminal; ``now`` is any monotonic
    clock in seconds. ``draft_chars`` is the estimated length of the unsent draft;
    ``last_typed`` is when the user last pressed a key that edits or submits (not an
    escape sequence, which includes terminal answers the user never typed);
    ``last_input`` is when any byte at all arrived.
    """

    def __init__(self) -> None:
        self.draft_chars = 0
        self.last_typed: float | None = None
        self.last_input: float | None = None
        # Escape-sequence parser state: "" (plain), "esc", "csi", "ss3", "string" (OSC/DCS,
        # until ST or BEL), "string_esc", "paste".
        self._state = ""
        self._csi = bytearray()
        self._paste_tail = b""

    @property
    def has_draft(self) -> bool:
        return self.draft_chars > 0

    def typed_within(self, seconds: float, now: float) -> bool:
        return self.last_typed is not None and now - self.last_typed < seconds

    def feed(self, data: bytes, now: float) -> None:
        if not data:
            return
        self.last_input = now
        i = 0
        n = len(data)
        while i < n:
            if self._state == "paste":
                i = self._feed_paste(data, i, now)
                continue
            b = data[i]
            i += 1
            state = self._state
            if state == "":
                self._plain(b, now)
            elif state == "esc":
                if b == ord("["):
                    self._state = "csi"
                    self._csi.clear()
                elif b == ord("O"):
                    self._state = "ss3"
                elif b in (ord("]"), ord("P"), ord("_"), ord("^")):
                    self._state = "string"
                elif b == _ESC:
                    self._state = "esc"  # Esc Esc: still an escape prefix
                else:
                    # Alt+key or a lone Esc followed by a key: not text in the box.
                    self._state = ""
                    self.last_typed = now
            elif state == "csi":
                if 0x40 <= b <= 0x7E:
                    self._state = ""
                    if bytes(self._csi) == b"200" and b == ord("~"):
                        self._state = "paste"
                        self._paste_tail = b""
                        self.last_typed = now
                elif len(self._csi) < 64:
                    self._csi.append(b)
                else:
                    self._state = ""  # a runaway sequence: give up on it
            elif state == "ss3":
                self._state = ""
            elif state == "string":
                if b == 0x07:
                    self._state = ""
                elif b == _ESC:
                    self._state = "string_esc"
            elif state == "string_esc":
                self._state = "" if b == ord("\\") else "string"

    def _plain(self, b: int, now: float) -> None:
        if b == _ESC:
            self._state = "esc"
            return
        self.last_typed = now
        if b == _CR:
            self.draft_chars = 0
        elif b in (_CTRL_U, _CTRL_C):
            self.draft_chars = 0
        elif b in _BACKSPACES:
            self.draft_chars = max(0, self.draft_chars - 1)
        elif b == _LF or b >= 0x20:
            # UTF-8 continuation bytes count too: the estimate only needs to be non-zero.
            self.draft_chars += 1

    def _feed_paste(self, data: bytes, i: int, now: float) -> int:
        """Consume pasted bytes up to the end marker (which may straddle chunks)."""
        chunk = self._paste_tail + data[i:]
        end = chunk.find(PASTE_END)
        self.last_typed = now
        if end >= 0:
            from_tail = len(self._paste_tail)
            self.draft_chars += end
            self._state = ""
            self._paste_tail = b""
            return i + end + len(PASTE_END) - from_tail
        # Keep a possible partial marker for the next chunk; count the rest as draft.
        keep = len(PASTE_END) - 1
        self.draft_chars += max(0, len(chunk) - keep)
        self._paste_tail = chunk[-keep:]
        return len(data)
