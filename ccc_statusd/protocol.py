"""The wire protocol, pure: message models, the line framer, encode/decode, protocol errors.

Newline-delimited JSON over the daemon's Unix socket, one object per line (SPEC §4). Every
message a client sends gets exactly one ``{"type":"response", ...}`` line back, in order.

This module never does I/O and never imports trio: the server and the clients feed it bytes
and get models (or a :class:`RemoteProtocolError` whose text is safe to send back) out.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .config import MAX_LINE_BYTES  # noqa: E402  (the one definition of the limit)

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
)


class RemoteProtocolError(Exception):
    """The peer sent something we cannot accept; ``str(exc)`` is the reply's error sentence."""


class LineTooLong(RemoteProtocolError):
    """A line exceeded the byte limit; the connection is answered once and then closed."""


def is_safe_id(value: str) -> bool:
    return bool(SAFE_ID_RE.fullmatch(value)) and ".." not in value


def _check_safe_id(value: str) -> str:
    if not is_safe_id(value):
        raise ValueError(
            f"{value[:40]!r} is not a plain id: use letters, digits, '-', '_' or '.', "
            "at most 128 characters"
        )
    return value


SafeId = Annotated[str, AfterValidator(_check_safe_id)]


class _Message(BaseModel):
    """Fields every message may carry (the seed's ``SocketMessage`` plus ``request_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: str | None = Field(default=None, max_length=256)
    timestamp: int | float | None = None


class Register(_Message):
    type: Literal["register"]
    internal_id: SafeId
    session_id: SafeId | None = None
    claude_config_dir: str | None = None
    transcript_path: str | None = None
    data: dict[str, Any] | None = None


class Associate(_Message):
    type: Literal["associate"]
    internal_id: SafeId
    session_id: SafeId
    claude_config_dir: str | None = None
    transcript_path: str | None = None
    data: dict[str, Any] | None = None


class Heartbeat(_Message):
    type: Literal["heartbeat"]
    internal_id: SafeId
    session_id: SafeId | None = None
    claude_config_dir: str | None = None
    transcript_path: str | None = None
    data: dict[str, Any] | None = None


class Prompt(_Message):
    type: Literal["prompt"]
    session_id: SafeId
    text: str
    internal_id: SafeId | None = None
    data: dict[str, Any] | None = None


class Command(_Message):
    type: Literal["command"]
    session_id: SafeId
    name: Annotated[str, Field(min_length=1, max_length=256)]
    text: str | None = None  # the command's arguments, if any
    internal_id: SafeId | None = None
    data: dict[str, Any] | None = None


class Eval(_Message):
    type: Literal["eval"]
    session_id: SafeId
    code: str
    internal_id: SafeId | None = None
    data: dict[str, Any] | None = None


class Ask(_Message):
    """A prompt whose sender waits for the reply: the assistant's text at the end of the turn
    the prompt started. ``data`` may carry ``timeout_s`` and the asker's own ``internal_id`` /
    ``session_id`` (a session may not ask itself)."""

    type: Literal["ask"]
    session_id: SafeId
    text: str
    internal_id: SafeId | None = None
    data: dict[str, Any] | None = None


class Query(_Message):
    type: Literal["query"]
    query: Annotated[str, Field(min_length=1, max_length=64)]
    session_id: SafeId | None = None
    data: dict[str, Any] | None = None


class Hook(_Message):
    """A Claude Code hook payload, forwarded by ``ccc hook``; ``session_id`` comes from ``data``."""

    type: Literal["hook"]
    data: dict[str, Any]
    internal_id: SafeId | None = None
    env: dict[str, str] | None = None


class Statusline(_Message):
    """A Claude Code statusLine payload, forwarded by ``ccc statusline``."""

    type: Literal["statusline"]
    data: dict[str, Any]
    internal_id: SafeId | None = None
    env: dict[str, str] | None = None


class Response(_Message):
    type: Literal["response"]
    session_id: SafeId | None = None
    internal_id: SafeId | None = None
    data: Any = None
    error: str | None = None
    status: str | None = None


Message = Annotated[
    Register
    | Associate
    | Heartbeat
    | Prompt
    | Command
    | Eval
    | Ask
    | Query
    | Hook
    | Statusline
    | Response,
    Field(discriminator="type"),
]
MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
MESSAGE_TYPES = (
    "register",
    "associate",
    "heartbeat",
    "prompt",
    "command",
    "eval",
    "ask",
    "query",
    "hook",
    "statusline",
    "response",
)

_EXAMPLES = {
    "register": '{"type":"register","internal_id":"…"}',
    "associate": '{"type":"associate","internal_id":"…","session_id":"…"}',
    "heartbeat": '{"type":"heartbeat","internal_id":"…"}',
    "prompt": '{"type":"prompt","session_id":"…","text":"…"}',
    "command": '{"type":"command","session_id":"…","name":"clear"}',
    "eval": '{"type":"eval","session_id":"…","code":"…"}',
    "ask": '{"type":"ask","session_id":"…","text":"…"}',
    "query": '{"type":"query","query":"ping"}',
    "hook": '{"type":"hook","data":{…the hook JSON…}}',
    "statusline": '{"type":"statusline","data":{…the statusLine JSON…}}',
    "response": '{"type":"response","request_id":"…"}',
}


# --- decoding -----------------------------------------------------------------------------


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
    return obj


def request_id_of(obj: dict[str, Any]) -> str | None:
    """The sender's ``request_id`` if it is usable, so even an error reply can be correlated."""
    rid = obj.get("request_id")
    return rid if isinstance(rid, str) and len(rid) <= 256 else None


def validate(obj: dict[str, Any]) -> Message:
    """Validate a parsed object as one message type, or raise RemoteProtocolError."""
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise RemoteProtocolError(
            'message has no "type" string; add one of: ' + ", ".join(MESSAGE_TYPES)
        )
    if kind not in _EXAMPLES:
        raise RemoteProtocolError(
            f"unknown message type {kind[:40]!r}; use one of: " + ", ".join(MESSAGE_TYPES)
        )
    try:
        return MESSAGE_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise RemoteProtocolError(_explain(kind, exc)) from None
    except RecursionError:
        raise RemoteProtocolError(
            "message is nested too deeply to validate; send a flatter JSON object"
        ) from None


def decode(raw: bytes) -> Message:
    """One line of bytes → one validated message (or RemoteProtocolError)."""
    return validate(decode_object(raw))


def _explain(kind: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = [str(p) for p in err["loc"]][1:]  # drop only the leading union tag (the type)
        field = ".".join(loc[:1]) or "message"
        if err["type"] == "missing":
            parts.append(f'field "{field}" is required')
        elif err["type"] == "value_error":
            parts.append(f'field "{field}": ' + str(err.get("ctx", {}).get("error", err["msg"])))
        else:
            parts.append(f'field "{field}" {err["msg"].lower()}')
    return f"invalid {kind!r} message: " + "; ".join(parts) + f"; expected e.g. {_EXAMPLES[kind]}"


# --- encoding -----------------------------------------------------------------------------


def encode(msg: BaseModel) -> bytes:
    """A model as one wire line (fields that are None are left out)."""
    return msg.model_dump_json(exclude_none=True).encode() + b"\n"


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
