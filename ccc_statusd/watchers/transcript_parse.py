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
        data = self.pending + chunk if self.pending else chunk
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if self.skipping_long_line:
                self.skipping_long_line = False
            else:
                self.feed_line(data[start:nl])
            start = nl + 1
        rest = data[start:]
        if self.skipping_long_line:
            rest = b""
        elif len(rest) > MAX_LINE_BYTES:
            self.malformed_lines += 1
            self.skipping_long_line = True
            rest = b""
        self.pending = bytes(rest)

    def feed_line(self, line: bytes | str) -> None:
        """Apply one complete line (without its newline). Blank lines are ignored."""
        if not line.strip():
            return
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
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
            new = [_as_int(usage.get(src)) for _, src in _USAGE_KEYS]
            mid = message.get("id")
            old = None
            if isinstance(mid, str) and mid:
                old = self.recent_usage.pop(mid, None)
                self.recent_usage[mid] = new
                while len(self.recent_usage) > RECENT_MESSAGE_IDS:
                    del self.recent_usage[next(iter(self.recent_usage))]
            for i, (attr, _) in enumerate(_USAGE_KEYS):
                delta = new[i] - (old[i] if old is not None else 0)
                setattr(self, attr, getattr(self, attr) + delta)

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
            joined = "\n".join(texts)
            self.last_assistant_text = joined[-MAX_ASSISTANT_TEXT_CHARS:]
            ts = line.get("timestamp")
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
