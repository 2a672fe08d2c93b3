"""The wire format without the message models: ids, framing, decoding to a dict, encoding.

Stdlib only (json, re): what a session client (`ccc run`) needs to speak the protocol, without
pydantic (~20 MiB and ~100 ms it would otherwise load in every wrapped session).
:mod:`ccc_statusd.protocol` adds the models and re-exports all of this.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .config import MAX_LINE_BYTES  # the one definition of the limit

# A session id becomes a file name (``<session-id>.json``), so only plain ids pass: letters,
# digits, ``-``, ``_``, ``.``, starting with a letter or digit (no ``..``, no ``/``, no NUL).
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# A sender may address a session by a unique prefix of at least this many characters.
MIN_PREFIX_LEN = 4

ROUTED_TYPES = ("prompt", "command", "eval")
QUERY_NAMES = (
    "ping",
    "status",
    "session_path",
    "list_sessions",
    "active_sessions",
    "active_connections",
    "reload_schedule",
    "list_scheduled",
    "subscribe",
    "set_name",
    "forget",
    "cancel_scheduled",
)


class RemoteProtocolError(Exception):
    """The peer sent something we cannot accept; ``str(exc)`` is the reply's error sentence."""


class LineTooLong(RemoteProtocolError):
    """A line exceeded the byte limit; the connection is answered once and then closed."""


def is_safe_id(value: str) -> bool:
    return bool(SAFE_ID_RE.fullmatch(value)) and ".." not in value


def decode_object(raw: bytes) -> dict[str, Any]:
    """Parse one line (without its newline) into a JSON object, or raise RemoteProtocolError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(
            f"message is not valid UTF-8 (bad byte at offset {exc.start}); "
            "send each line as UTF-8 encoded JSON"
        ) from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise RemoteProtocolError(
            "message is nested too deeply to parse; send a flatter JSON object"
        ) from None
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise RemoteProtocolError(
            f"message is not valid JSON ({detail}); send one JSON object per line, "
            'e.g. {"type":"query","query":"ping"}'
        ) from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(
            f"message must be a JSON object, got {type(obj).__name__ if obj is not None else 'null'}; "
            'send e.g. {"type":"query","query":"ping"}'
        )
    # Valid UTF-8 bytes hold no surrogates: only a \\uD800-\\uDFFF escape makes one.
    if b"\\ud" in raw or b"\\uD" in raw:
        check_encodable(obj)
    return obj


def _surrogate_path(value: Any, depth: int = 0) -> str | None:
    """Where in ``value`` a string holds a lone surrogate (dotted path, ``""`` for ``value``
    itself), or None. Such strings come from JSON ``\\ud800`` escapes; they cannot be encoded
    as UTF-8 (a file name, a log line, a cache file), so they are refused at the door."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return ""
        return None
    if depth > 200:  # json.loads already refused deeper nesting; be safe anyway
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if _surrogate_path(key, depth + 1) is not None:
                return _label(key)
            inner = _surrogate_path(item, depth + 1)
            if inner is not None:
                return _label(key) + ("." + inner if inner else "")
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            inner = _surrogate_path(item, depth + 1)
            if inner is not None:
                return f"[{i}]" + ("." + inner if inner else "")
    return None


def _label(key: str) -> str:
    return key[:40].encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def check_encodable(obj: dict[str, Any]) -> None:
    """Raise RemoteProtocolError naming the field if any string (key or value, nested too)
    cannot be encoded as UTF-8 (a lone UTF-16 surrogate)."""
    where = _surrogate_path(obj)
    if where is not None:
        raise RemoteProtocolError(
            f'field "{where or "message"}" holds a lone UTF-16 surrogate (a \\ud800-style escape '
            "that is not half of a pair), which is not text; send valid Unicode strings"
        )


def request_id_of(obj: dict[str, Any]) -> str | None:
    """The sender's ``request_id`` if it is usable, so even an error reply can be correlated."""
    rid = obj.get("request_id")
    return rid if isinstance(rid, str) and len(rid) <= 256 else None


def encode_dict(obj: dict[str, Any]) -> bytes:
    """A plain dict as one wire line; the hot path for replies the daemon builds itself."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n"


def response(
    *,
    request_id: str | None = None,
    error: str | None = None,
    data: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """A response as a dict, leaving out empty keys (SPEC §4 rule 1)."""
    out: dict[str, Any] = {"type": "response"}
    if request_id is not None:
        out["request_id"] = request_id
    if error:
        out["error"] = error
    if data is not None:
        out["data"] = data
    for key, value in extra.items():
        if value is not None:
            out[key] = value
    return out


# --- framing ------------------------------------------------------------------------------


class LineFramer:
    """Split a byte stream into lines, refusing any line longer than ``max_bytes``.

    Theory of operation: bytes are appended to one buffer; complete lines are cut off the front.
    The limit is checked against the partial line still waiting for its newline, so memory per
    connection is bounded by ``max_bytes`` plus one receive chunk whatever the peer sends.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._scan_from = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes; return the complete lines (without ``\\n``). Raises LineTooLong."""
        self._buf += chunk
        lines: list[bytes] = []
        start = 0
        find_from = self._scan_from
        while True:
            nl = self._buf.find(b"\n", find_from)
            if nl < 0:
                break
            if nl - start > self.max_bytes:
                self._raise_too_long()
            line = bytes(self._buf[start:nl])
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip():
                lines.append(line)
            start = nl + 1
            find_from = start
        if start:
            if start == len(self._buf):
                # A fresh buffer, not an emptied one: a bytearray keeps the capacity of the
                # longest line it ever held, and 200 idle peers that once sent 1 MB held 200 MB.
                self._buf = bytearray()
            else:
                del self._buf[:start]
        self._scan_from = len(self._buf)
        if len(self._buf) > self.max_bytes:
            self._raise_too_long()
        return lines

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _raise_too_long(self) -> None:
        self._buf.clear()
        self._scan_from = 0
        raise LineTooLong(
            f"message line is longer than the {self.max_bytes}-byte limit; "
            "send smaller messages (the connection will now be closed)"
        )
