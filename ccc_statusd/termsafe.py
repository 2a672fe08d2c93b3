"""Text from session data made safe to print on a terminal: the one sanitiser.

Owns :func:`clean` and :func:`clean_tree`. Branch names, cwd paths, message texts, hook
payloads and error strings come from sessions (a repository someone else made, a prompt, a
transcript); printed raw, an OSC sequence retitles the terminal, ``ESC [2J`` clears it, an OSC 52
sequence writes the clipboard. Every human-form output (``ccc sessions``, ``ccc watch``,
``ccc schedule list``, the status line) passes data through :func:`clean`; ``--json`` output
is JSON and stays as is.

Removed: C0 controls (ESC, BEL, CR, backspace, ...), DEL, C1 controls (``\\x9b`` is a one-byte
CSI on some terminals) and the bidirectional overrides that make text read differently from
what it is. With ``keep_newlines``, ``\\n`` and ``\\t`` stay (a multi-line reply). What remains
of an escape sequence is printable text (``[2J``): visible, harmless. Stdlib only, no ``re``:
the status line imports it on every call.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
_UNSAFE = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0), *_BIDI])
_UNSAFE_KEEP_LINES = {k: v for k, v in _UNSAFE.items() if k not in (0x0A, 0x09)}


def clean(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` without terminal control characters (see the module docstring)."""
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to remove
    return text.translate(_UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE)


def clean_tree(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON-like value with every string (keys too) passed through :func:`clean`."""
    if isinstance(value, str):
        return clean(value)
    if depth > 50:
        return None
    if isinstance(value, dict):
        return {clean(str(k)): clean_tree(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v, depth + 1) for v in value]
    return value
