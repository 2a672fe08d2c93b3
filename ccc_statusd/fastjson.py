"""JSON for the send path without ``import json`` (which pulls in ``re`` and ``enum``: ~10 ms
of a ~25 ms ``ccc prompt``). Same C accelerator as the json module (``_json``), same results.

``dumps`` is ``json.dumps(obj, separators=(",", ":"), ensure_ascii=...)`` — the very C encoder
``json.dumps`` uses for compact output, so the bytes are identical (a test checks); ``loads`` is
``json.loads`` (C scanner, same encoding detection for bytes). Indented output
(``ccc ... --json``) still uses the json module, imported there. Everything else in the project
uses ``json``.

Malformed input makes ``_json`` import ``json.decoder`` to build its error: the cost lands on
the error path only, and the error is a ValueError either way.
"""

from __future__ import annotations

import _json
import codecs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


def _constant(name: str) -> float:
    return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


class _Context:
    """What ``_json.make_scanner`` reads off a decoder (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}


# make_scanner reads those attributes off any object (typeshed wants a JSONDecoder).
_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]


class JSONDecodeError(ValueError):
    pass


def _detect_encoding(b: bytes | bytearray) -> str:
    """json.detect_encoding (RFC 4627 §3), restated: it lives in the json package."""
    if b.startswith((codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE)):
        return "utf-32"
    if b.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)):
        return "utf-16"
    if b.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if len(b) >= 4:
        if not b[0]:
            return "utf-16-be" if b[1] else "utf-32-be"
        if not b[1]:
            return "utf-16-le" if b[2] or b[3] else "utf-32-le"
    elif len(b) == 2:
        if not b[0]:
            return "utf-16-be"
        if not b[1]:
            return "utf-16-le"
    return "utf-8"


def loads(text: str | bytes | bytearray) -> Any:
    """Parse one JSON document (raises a ValueError on bad input, like json.loads)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(_detect_encoding(text), "surrogatepass")
    start = 0
    while start < len(text) and text[start] in _WS:
        start += 1
    try:
        obj, end = _scan(text, start)
    except StopIteration as exc:
        raise JSONDecodeError(f"expecting a JSON value at char {exc.value}") from None
    while end < len(text) and text[end] in _WS:
        end += 1
    if end != len(text):
        raise JSONDecodeError(f"extra data at char {end}")
    return obj


def _default(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj: Any, *, ensure_ascii: bool = True) -> str:
    """Compact JSON: ``json.dumps(obj, separators=(",", ":"), ensure_ascii=ensure_ascii)``."""
    # The arguments json.JSONEncoder.iterencode gives the C encoder for that call: markers (a
    # fresh dict: circular references raise ValueError), default, string encoder, indent, key
    # separator, item separator, sort_keys, skipkeys, allow_nan.
    encode_str = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    encoder = _json.make_encoder({}, _default, encode_str, None, ":", ",", False, False, True)
    return "".join(encoder(obj, 0))
