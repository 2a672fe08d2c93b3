"""The wire protocol, pure: message models, the line framer, encode/decode, protocol errors.

Newline-delimited JSON over the daemon's Unix socket, one object per line (SPEC §4). Every
message a client sends gets exactly one ``{"type":"response", ...}`` line back, in order.

This module never does I/O and never imports trio: the server and the clients feed it bytes
and get models (or a :class:`RemoteProtocolError` whose text is safe to send back) out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .framing import (  # re-exported: protocol.X keeps working for every caller
    MAX_LINE_BYTES,
    MIN_PREFIX_LEN,
    QUERY_NAMES,
    ROUTED_TYPES,
    SAFE_ID_RE,
    LineFramer,
    LineTooLong,
    RemoteProtocolError,
    check_encodable,
    decode_object,
    encode_dict,
    is_safe_id,
    request_id_of,
    response,
)


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


__all__ = [  # the wire format (framing.py) re-exported with the models
    "MAX_LINE_BYTES",
    "MIN_PREFIX_LEN",
    "QUERY_NAMES",
    "ROUTED_TYPES",
    "SAFE_ID_RE",
    "LineFramer",
    "LineTooLong",
    "Message",
    "RemoteProtocolError",
    "check_encodable",
    "decode",
    "decode_object",
    "encode",
    "encode_dict",
    "is_safe_id",
    "request_id_of",
    "response",
    "validate",
]
