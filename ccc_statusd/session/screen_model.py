"""The pty host's model of the child's screen: every byte Claude Code writes goes through a
``pyte`` VT emulator, so before typing the host can ask :func:`ccc_statusd.screen.classify` what
is on screen. Owns the emulator and nothing else (no I/O).

pyte is a maintained VT100/xterm emulator: the cursor motion, erases, scroll regions and wide
characters Claude Code's renderer (Ink) uses are all handled there, not by hand-written escape
parsing here. Unknown sequences are ignored by pyte, which at worst leaves a screen we do not
recognise: that makes messages wait (fail safe), never type.
"""

from __future__ import annotations

import pyte

from ..screen import ScreenState, classify

_ESC = 0x1B
# ESC _ (APC), ESC ^ (PM), ESC X (SOS): string sequences pyte does not know; it would print
# their payload as text. Claude Code sends one at start-up (a kitty graphics query,
# ``ESC _ G i=1,a=q,… ESC \``), which then looked like a draft in the input box.
_STRING_INTRODUCERS = (ord("_"), ord("^"), ord("X"))


class _StringFilter:
    """Removes APC/PM/SOS strings (up to ST, ESC backslash, or BEL) from a byte stream, across chunk
    boundaries; everything else passes unchanged."""

    def __init__(self) -> None:
        self._in_string = False
        self._pending = b""  # an ESC at the end of the last chunk

    def feed(self, data: bytes) -> bytes:
        data = self._pending + data
        self._pending = b""
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if self._in_string:
                # Look for ST (ESC \) or BEL.
                j = i
                while j < n and data[j] not in (_ESC, 0x07):
                    j += 1
                if j >= n:
                    return bytes(out)
                if data[j] == 0x07:
                    self._in_string = False
                    i = j + 1
                    continue
                if j + 1 >= n:
                    self._pending = data[j:]
                    return bytes(out)
                self._in_string = data[j + 1] != ord("\\")
                i = j + 2 if not self._in_string else j + 1
                continue
            j = data.find(b"\x1b", i)
            if j < 0:
                out += data[i:]
                break
            out += data[i:j]
            if j + 1 >= n:
                self._pending = data[j:]
                break
            if data[j + 1] in _STRING_INTRODUCERS:
                self._in_string = True
                i = j + 2
            else:
                out += data[j : j + 2]
                i = j + 2
        return bytes(out)


class ScreenModel:
    """A ``rows`` x ``cols`` screen fed with the child's output.

    Rendering is incremental: pyte's own ``display`` measures every cell's width on every call
    (~30 ms for 200x50); here only the rows pyte marked dirty since the last look are rebuilt
    (a wide character's second cell holds "", so joining the cells gives the text), and a
    classification is cached until the next feed."""

    def __init__(self, rows: int, cols: int) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self._filter = _StringFilter()
        self.version = 0
        self._rows: list[str] = [""] * rows
        self._state: tuple[int, ScreenState] | None = None

    def feed(self, data: bytes) -> None:
        self.stream.feed(self._filter.feed(data))
        self.version += 1

    def resize(self, rows: int, cols: int) -> None:
        self.screen.resize(rows, cols)
        self._rows = [""] * rows
        self.screen.dirty.update(range(rows))
        self.version += 1

    def lines(self) -> list[str]:
        screen = self.screen
        cols = screen.columns
        buffer = screen.buffer
        for y in screen.dirty:
            if 0 <= y < len(self._rows):
                row = buffer[y]
                self._rows[y] = "".join([row[x].data for x in range(cols)]).rstrip()
        screen.dirty.clear()
        return list(self._rows)

    @property
    def cursor(self) -> tuple[int, int]:
        return (self.screen.cursor.x, self.screen.cursor.y)

    def text(self) -> str:
        return "\n".join(self.lines())

    def classify(self) -> ScreenState:
        if self._state is not None and self._state[0] == self.version:
            return self._state[1]
        state = classify(self.lines(), self.cursor)
        self._state = (self.version, state)
        return state
