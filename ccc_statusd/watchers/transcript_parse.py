"""Pure, incremental aggregation of one Claude Code transcript (``<session-id>.jsonl``).

Owns :class:`TranscriptAggregate`: fed raw bytes as they are appended to a transcript, it keeps
the per-session summary the daemon shows (message counts, model, cwd, git branch, first/last
timestamps, token sums, cost, last assistant text) without ever holding the whole file.
No trio, no I/O: the transcript index (``transcripts.py``) reads the bytes and persists the
aggregate with :meth:`TranscriptAggregate.to_dict`.

Theory of operation:

* Lines are split on ``\\n``; the bytes after the last newline are a half-written line, kept in
  ``pending`` for the next :meth:`feed`. ``pending`` is not persisted: the index stores the file
  offset of the first pending byte and re-reads from there, so a restart loses nothing.
* A line that is not a JSON object is counted in ``malformed_lines`` and skipped, never fatal.
* Claude Code writes one ``assistant`` line per content block (text, tool_use, ...); the lines of
  one API response share ``message.id`` and carry the same ``usage``. Tokens are therefore summed
  once per ``message.id``; if a later line of the same id carries a different usage (a streamed
  update), it replaces that id's earlier contribution. Only the most recent ids are remembered
  (``RECENT_MESSAGE_IDS``): the lines of one response are adjacent, give or take a few.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from itertools import compress, repeat
from operator import eq
from typing import Any

from ..dialogs import turn_mark as _turn_mark

# How many recent assistant message ids (with their usage) are remembered for de-duplication.
# The lines of one response are written back to back; 64 covers any realistic parallel-tool burst
# while keeping the persisted aggregate small.
RECENT_MESSAGE_IDS = 64

# A single line longer than this is dropped (counted as malformed) instead of buffered: it bounds
# the memory one runaway line can take. Real lines with base64 images reach a few MiB.
MAX_LINE_BYTES = 64 * 1024 * 1024

# Longest last assistant text kept (characters); enough for a `ccc ask` answer, bounded for the DB.
MAX_ASSISTANT_TEXT_CHARS = 64 * 1024

# Claude Code labels locally generated assistant messages (errors, "no response requested")
# with this model name; it is not the model the session runs.
SYNTHETIC_MODEL = "<synthetic>"

_USAGE_KEYS = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_input_tokens"),
    ("cache_creation_tokens", "cache_creation_input_tokens"),
)
_USAGE_SOURCES = tuple(src for _, src in _USAGE_KEYS)


def _as_int(value: Any) -> int:
    # bool is an int subclass; a usage field is never a boolean.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def _ts_key(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return None


@dataclass
class TranscriptAggregate:
    """The summary of one transcript so far. Feed it bytes in file order with :meth:`feed`."""

    session_id: str = ""
    user_messages: int = 0
    assistant_messages: int = 0  # assistant lines (one per content block)
    other_lines: int = 0  # every other well-formed line (system, attachment, snapshots, ...)
    malformed_lines: int = 0
    model: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    version: str | None = None
    first_ts: str | None = None
    last_ts: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float | None = None
    last_assistant_text: str | None = None
    last_assistant_ts: str | None = None
    last_prompt: str | None = None
    # [kind, epoch] of the last main-chain user/assistant line (dialogs.turn_mark): the daemon
    # leaves "waiting" when the user ended the turn (a rejected dialog fires no Stop hook).
    turn_mark: list[Any] | None = None
    # Set by the transcript index, not by parsing: where the file is, and whether it vanished.
    path: str | None = None
    config_dir: str | None = None
    removed: bool = False
    # message.id -> [input, output, cache_read, cache_creation] counted for it; insertion-ordered.
    recent_usage: dict[str, list[int]] = field(default_factory=dict)
    # True while the rest of an over-long line is being skipped.
    skipping_long_line: bool = False
    # The half-written last line (not persisted; see the module docstring).
    pending: bytes = field(default=b"", repr=False, compare=False)

    # ----------------------------------------------------------------- feeding

    def feed(self, chunk: bytes) -> None:
        """Consume the next bytes of the file; complete lines are applied, the rest kept."""
        if not chunk:
            return
        # Split the chunk, not pending + chunk: a chunk is large, a pending line usually not.
        raws = chunk.split(b"\n")
        if self.pending:
            raws[0] = self.pending + raws[0]
        rest = raws.pop()
        if self.skipping_long_line:
            if not raws:
                self.pending = b""
                return
            del raws[0]  # the end of the over-long line
            self.skipping_long_line = False
        if raws:
            self._feed_lines(raws)
        if len(rest) > MAX_LINE_BYTES:
            self.malformed_lines += 1
            self.skipping_long_line = True
            rest = b""
        self.pending = bytes(rest)

    def _feed_lines(self, raws: list[bytes]) -> None:
        """Apply complete lines (without their newlines). The fast decoder
        (``transcript_lines``) takes them all at once when it vouches for every one; otherwise
        line by line, a line it cannot vouch for going to :meth:`feed_line` (same result)."""
        from . import transcript_lines as tl  # lazy: msgspec only once there is a transcript

        lines = tl.decode_lines(raws)
        if lines is not None:
            self._apply_lines(lines)
            return
        for raw in raws:
            ln = tl.decode_line(raw) if raw else None
            if ln is None:
                self.feed_line(raw)
            else:
                self._apply_lines([ln])

    def feed_line(self, line: bytes | str) -> None:
        """Apply one complete line (without its newline). Blank lines are ignored."""
        if not line.strip():
            return
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: too deep
            self.malformed_lines += 1
            return
        if not isinstance(obj, dict):
            self.malformed_lines += 1
            return
        self._apply(obj)

    @property
    def pending_bytes(self) -> int:
        """Bytes of the half-written last line held back; the index re-reads them next time."""
        return len(self.pending)

    # ----------------------------------------------------------------- semantics

    def _apply(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if not self.session_id:
            sid = obj.get("sessionId")
            if isinstance(sid, str):
                self.session_id = sid

        ts = obj.get("timestamp")
        if isinstance(ts, str) and ts:
            self._see_timestamp(ts)
        cwd = obj.get("cwd")
        if isinstance(cwd, str) and cwd:
            self.cwd = cwd
        branch = obj.get("gitBranch")
        if isinstance(branch, str) and branch:
            self.git_branch = branch
        version = obj.get("version")
        if isinstance(version, str) and version:
            self.version = version

        if kind in ("user", "assistant") and (mark := _turn_mark(obj)) is not None:
            self.turn_mark = list(mark)
        if kind == "user":
            self.user_messages += 1
        elif kind == "assistant":
            self.assistant_messages += 1
            message = obj.get("message")
            if isinstance(message, dict):
                self._apply_assistant(message, obj)
        else:
            self.other_lines += 1
            if kind == "cost-state":
                cost = obj.get("totalCostUSD")
                if isinstance(cost, int | float) and not isinstance(cost, bool):
                    self.cost_usd = float(cost)
            elif kind == "last-prompt":
                prompt = obj.get("lastPrompt")
                if isinstance(prompt, str):
                    self.last_prompt = prompt

    def _apply_lines(self, lines: list[Any]) -> None:
        """:meth:`_apply` for consecutive decoded ``transcript_lines.Line`` s, batched: the
        result is that of applying them one by one, with the per-line Python work done by C
        builtins (counts, min/max, filters) or only for the last line that matters."""
        if not lines:
            return
        kinds = [ln.type for ln in lines]
        users = kinds.count("user")
        assistants = kinds.count("assistant")
        self.user_messages += users
        self.assistant_messages += assistants
        self.other_lines += len(lines) - users - assistants

        if not self.session_id:
            for ln in lines:
                sid = ln.sessionId
                if isinstance(sid, str):
                    self.session_id = sid
                    if sid:
                        break
        self._see_timestamps([t for ln in lines if isinstance(t := ln.timestamp, str) and t])
        # Last non-empty string wins: look from the end.
        for ln in reversed(lines):
            if isinstance(v := ln.cwd, str) and v:
                self.cwd = v
                break
        for ln in reversed(lines):
            if isinstance(v := ln.gitBranch, str) and v:
                self.git_branch = v
                break
        for ln in reversed(lines):
            if isinstance(v := ln.version, str) and v:
                self.version = v
                break

        if users or assistants:
            # dialogs.turn_mark is None for sidechain lines and isMeta user lines; any other
            # user/assistant line sets it, so only the last such line counts.
            for ln, kind in zip(reversed(lines), reversed(kinds), strict=True):
                if kind == "assistant" and ln.isSidechain is not True:
                    self._set_turn_mark(ln)
                    break
                if kind == "user" and ln.isSidechain is not True and ln.isMeta is not True:
                    self._set_turn_mark(ln)
                    break
        if assistants:
            for ln in compress(lines, map(eq, kinds, repeat("assistant"))):
                if ln.message is not None:
                    self._apply_assistant_line(ln)
        if len(lines) > users + assistants:
            for ln in reversed(list(compress(lines, map(eq, kinds, repeat("cost-state"))))):
                cost = ln.totalCostUSD
                if isinstance(cost, int | float) and not isinstance(cost, bool):
                    self.cost_usd = float(cost)
                    break
            for ln in reversed(list(compress(lines, map(eq, kinds, repeat("last-prompt"))))):
                if isinstance(prompt := ln.lastPrompt, str):
                    self.last_prompt = prompt
                    break

    def _see_timestamps(self, stamps: list[str]) -> None:
        """:meth:`_see_timestamp` for each of ``stamps`` (non-empty strings), in order."""
        i = 0
        while i < len(stamps) and (self.first_ts is None or self.last_ts is None):
            self._see_timestamp(stamps[i])
            i += 1
        rest = stamps[i:] if i else stamps
        if not rest:
            return
        first, last = self.first_ts, self.last_ts
        assert first is not None and last is not None
        n = len(first)
        if (
            len(last) == n
            and first[-1:] == last[-1:] == "Z"
            and all(len(t) == n and t[-1:] == "Z" for t in rest)
        ):
            # Every stamp takes _see_timestamp's text fast path, which amounts to min/max.
            lo, hi = min(rest), max(rest)
            if lo < first:
                self.first_ts = lo
            if hi > last:
                self.last_ts = hi
            return
        for t in rest:
            self._see_timestamp(t)

    def _set_turn_mark(self, ln: Any) -> None:
        from .transcript_lines import message_dict

        line = {
            "type": ln.type,
            "isSidechain": ln.isSidechain,
            "isMeta": ln.isMeta,
            "timestamp": ln.timestamp,
            "message": None if ln.message is None else message_dict(ln.message),
        }
        mark = _turn_mark(line)
        if mark is not None:
            self.turn_mark = list(mark)

    def _see_timestamp(self, ts: str) -> None:
        # Lines are not strictly in time order (a compaction writes its summary with earlier
        # stamps), so keep the min and max rather than the first and last seen.
        first, last = self.first_ts, self.last_ts
        if first is not None and last is not None and _same_shape(ts, first, last):
            # Fast path: same ISO-8601 "...Z" layout compares correctly as text.
            if ts < first:
                self.first_ts = ts
            elif ts > last:
                self.last_ts = ts
            return
        key = _ts_key(ts)
        if key is None:
            return
        if self.first_ts is None or (k := _ts_key(self.first_ts)) is None or _lt(key, k):
            self.first_ts = ts
        if self.last_ts is None or (k := _ts_key(self.last_ts)) is None or _lt(k, key):
            self.last_ts = ts

    def _apply_assistant(self, message: dict[str, Any], line: dict[str, Any]) -> None:
        model = message.get("model")
        if isinstance(model, str) and model and model != SYNTHETIC_MODEL:
            self.model = model

        usage = message.get("usage")
        if isinstance(usage, dict):
            self._add_usage(usage, message.get("id"))

        if line.get("isSidechain") is True:
            return
        content = message.get("content")
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "text":
                    text = block.get("text")
                    if isinstance(text, str):
                        texts.append(text)
        if texts:
            self._set_assistant_text(texts, line.get("timestamp"))

    def _apply_assistant_line(self, ln: Any) -> None:
        """:meth:`_apply_assistant` for a decoded line (``ln.message`` is not None)."""
        message = ln.message
        model = message.model
        if isinstance(model, str) and model and model != SYNTHETIC_MODEL:
            self.model = model
        usage = message.usage
        if isinstance(usage, dict):
            self._add_usage(usage, message.id)
        if ln.isSidechain is True:
            return
        content = message.content
        if isinstance(content, str):
            self._set_assistant_text([content], ln.timestamp)
        elif content:
            texts = [b.text for b in content if b.type == "text" and isinstance(b.text, str)]
            if texts:
                self._set_assistant_text(texts, ln.timestamp)

    def _add_usage(self, usage: dict[str, Any], mid: Any) -> None:
        get = usage.get
        new = [v if (v := get(src)).__class__ is int else _as_int(v) for src in _USAGE_SOURCES]
        old = None
        if isinstance(mid, str) and mid:
            recent = self.recent_usage
            old = recent.pop(mid, None)
            recent[mid] = new
            while len(recent) > RECENT_MESSAGE_IDS:
                del recent[next(iter(recent))]
        if old is not None:
            new = [n - o for n, o in zip(new, old, strict=True)]
        self.input_tokens += new[0]
        self.output_tokens += new[1]
        self.cache_read_tokens += new[2]
        self.cache_creation_tokens += new[3]

    def _set_assistant_text(self, texts: list[str], ts: Any) -> None:
        joined = "\n".join(texts)
        self.last_assistant_text = joined[-MAX_ASSISTANT_TEXT_CHARS:]
        self.last_assistant_ts = ts if isinstance(ts, str) else self.last_assistant_ts

    # ----------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but ``pending`` (see the module docstring)."""
        # Not dataclasses.asdict: it deep-copies recursively and was 12% of an initial index.
        d = {f.name: getattr(self, f.name) for f in _FIELDS if f.name != "pending"}
        d["recent_usage"] = {k: list(v) for k, v in self.recent_usage.items()}
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptAggregate:
        """Rebuild from :meth:`to_dict`; unknown keys (from a newer version) are ignored."""
        names = {f.name for f in fields(cls)} - {"pending"}
        agg = cls(**{k: v for k, v in data.items() if k in names})
        agg.recent_usage = {str(k): [int(x) for x in v] for k, v in dict(agg.recent_usage).items()}
        return agg


def _same_shape(a: str, b: str, c: str) -> bool:
    return len(a) == len(b) == len(c) and a[-1:] == b[-1:] == c[-1:] == "Z"


def _lt(a: datetime, b: datetime) -> bool:
    # Naive and aware stamps cannot be compared; a transcript never mixes them, but a garbage
    # stamp must not crash the aggregate.
    try:
        return a < b
    except TypeError:
        return False


_FIELDS = fields(TranscriptAggregate)
