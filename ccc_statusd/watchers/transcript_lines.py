"""The few fields of a Claude Code transcript line that the index reads, decoded with msgspec.

Owns :func:`decode_line`: one raw JSONL line → a :class:`Line` holding only what
:class:`~ccc_statusd.watchers.transcript_parse.TranscriptAggregate` uses, or None when the fast
decoder cannot vouch for the line (the caller then runs the reference ``json.loads`` path).

Theory of operation:

* A transcript line is mostly bulk the index never looks at (tool results, file snapshots,
  attachments, API request bodies). msgspec decodes into typed structs and *skips* every other
  key without building Python objects for it: 10-20× ``json.loads`` on real transcripts.
* The fast path must agree with ``json.loads`` + ``TranscriptAggregate._apply`` on every line
  (tests/test_transcript_lines.py checks it with hypothesis). Where msgspec is more lenient it
  is guarded here: it does not check UTF-8 inside skipped strings, so a line that is not ASCII
  is UTF-8-validated first (``surrogatepass``, as ``json.loads`` decodes bytes). Where it is
  stricter (NaN, ``\\ud800`` escapes, a ``message`` that is not an object, a content block that
  is not an object, a number too large for a float, nesting too deep) it raises, and the caller
  falls back to ``json.loads`` for that line: slower, never different.
* ``message.content`` is decoded as a string or a list of ``{type, text}`` blocks: a tool_use's
  ``input`` or a tool_result's ``content`` is skipped, not built.

msgspec is imported by this module only; the daemon imports it when the first transcript bytes
are parsed (``transcript_parse`` imports this module lazily), so an idle daemon does not carry it.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Block(msgspec.Struct):
    """A content block: only its kind and text (tool_use input, tool_result content skipped)."""

    type: Any = None
    text: Any = None


class Message(msgspec.Struct):
    """``line.message``: an object, else the line takes the reference path."""

    id: Any = None
    model: Any = None
    usage: Any = None
    content: str | list[Block] | None = None


class Line(msgspec.Struct):
    """One transcript line, top-level keys the aggregate reads. A missing key and ``null`` are
    both None, as ``dict.get`` sees them."""

    type: Any = None
    sessionId: Any = None  # noqa: N815 - the JSON key
    timestamp: Any = None
    cwd: Any = None
    gitBranch: Any = None  # noqa: N815
    version: Any = None
    isSidechain: Any = None  # noqa: N815
    isMeta: Any = None  # noqa: N815
    message: Message | None = None
    totalCostUSD: Any = None  # noqa: N815
    lastPrompt: Any = None  # noqa: N815


_DECODER = msgspec.json.Decoder(Line)
_decode = _DECODER.decode
_FAIL = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def valid_utf8(data: bytes) -> bool:
    """True when ``json.loads`` can decode ``data`` as text (UTF-8, surrogates passed)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


def decode_line(raw: bytes) -> Line | None:
    """The line's fields, or None: not decodable here (malformed, or outside what msgspec
    agrees on with ``json.loads``; the caller decides with the reference path)."""
    if not valid_utf8(raw):
        return None
    try:
        return _decode(raw)
    except _FAIL:
        return None


def message_dict(message: Message) -> dict[str, Any]:
    """``message`` as the dict ``json.loads`` would have given, for its decoded keys only."""
    content: Any = message.content
    if isinstance(content, list):
        content = [{"type": b.type, "text": b.text} for b in content]
    return {"id": message.id, "model": message.model, "usage": message.usage, "content": content}


def decode_lines(raws: list[bytes]) -> list[Line] | None:
    """Every one of ``raws`` (complete lines), or None if any one of them is not decodable
    here (then the caller goes line by line)."""
    # UTF-8 is checked on the lines that are not ASCII only (isascii is a word-at-a-time scan),
    # all at once: joined by newlines, they are valid exactly when each one is.
    wide = [raw for raw in raws if not raw.isascii()]
    if wide and not valid_utf8(b"\n".join(wide)):
        return None
    decode = _decode
    try:
        return [decode(raw) for raw in raws]
    except _FAIL:
        return None
