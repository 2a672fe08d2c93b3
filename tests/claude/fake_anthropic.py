"""A fake Anthropic Messages API for driving the real Claude Code offline (stdlib only).

Owns the HTTP side of the end-to-end tests: a `FakeAnthropic` server on 127.0.0.1 (ephemeral port)
that runs in a background thread (`start()` / `stop()`, or `with FakeAnthropic() as api:`).

Endpoints:
- `POST /v1/messages` (Claude Code sends `?beta=true`): streamed as SSE when `"stream": true`
  (all Claude Code builds do), plain JSON otherwise.
- `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.
- anything else (`HEAD /` pre-connect of 2.1.112, probes): `200 {}`.

Replies are deterministic, computed from the last user text (the last text block of the last user
message, with `<system-reminder>` wrappers removed):
- `TOOL: <cmd>` → a text block and a Bash `tool_use` running `<cmd>` (permission-dialog tests);
- `MCP: <tool> <json>` → a `tool_use` of the MCP tool `mcp__ccc__<tool>` (or the full `mcp__…`
  name) with `<json>` as its input (first `WaitForMcpServers` if the server is not connected yet),
  then, with its result, `ECHO: tool said: …`;
- `SLOW<n>: <text>` → `ECHO: <text>` streamed over n seconds (a busy session);
- a tool result alone in the last message → `ECHO: tool said: <first 200 chars>`;
- otherwise `ECHO: <text>`.

Every request is recorded in `requests` (and appended to `log_path` as JSON lines if given).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# How long stop() waits for handler threads after closing their sockets.
STOP_JOIN_TIMEOUT_S = 5.0
_REMINDER_RE = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)


def _text_blocks(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    ]


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last user message's last text block, without `<system-reminder>` wrappers.

    Messages that hold only tool results (no text) are skipped, so this is what the person typed.
    """
    for m in reversed(messages or []):
        if m.get("role") != "user":
            continue
        texts = [_REMINDER_RE.sub("", t).strip() for t in _text_blocks(m.get("content"))]
        texts = [t for t in texts if t]
        if texts:
            return texts[-1]
    return ""


def _last_tool_result(messages: list[dict[str, Any]]) -> str | None:
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return None
    for b in content:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            c = b.get("content")
            return " ".join(_text_blocks(c)) if isinstance(c, list) else str(c)
    return None


# At the start of the text or of a line (a routed prompt has a sender header line first).
_MCP_RE = re.compile(r"(?:\A|\n)MCP:[ \t]*(\S+)[ \t]*(.*)\Z", re.S)


def _mcp_call(
    text: str, tools: set[Any], msgs: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """For `MCP: <tool> <json>`: the tool_use of that MCP tool, or of `WaitForMcpServers` while
    Claude Code has not connected the server yet; None once the tool was called (or is unknown)."""
    m = _MCP_RE.search(text)
    if not m:
        return None
    name = m.group(1) if m.group(1).startswith("mcp__") else f"mcp__ccc__{m.group(1)}"
    called = {
        b.get("name")
        for msg in msgs
        if msg.get("role") == "assistant" and isinstance(msg.get("content"), list)
        for b in msg["content"]
        if isinstance(b, dict) and b.get("type") == "tool_use"
    }
    if name in called:
        return None
    if name in tools:
        tool_input = json.loads(m.group(2) or "{}")
    elif "WaitForMcpServers" in tools and "WaitForMcpServers" not in called:
        name, tool_input = "WaitForMcpServers", {}
    else:
        return None
    tool_use = {"type": "tool_use", "id": "toolu_fake_" + uuid.uuid4().hex[:20], "name": name,
                "input": tool_input}  # fmt: skip
    return [{"type": "text", "text": f"ECHO: calling {name}"}, tool_use]


def plan_reply(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, float]:
    """The reply to a Messages request: (content blocks, stop_reason, seconds to spread the stream over)."""
    msgs = body.get("messages") or []
    tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    if (call := _mcp_call(last_user_text(msgs), tools, msgs)) is not None:
        return call, "tool_use", 0.0
    result = _last_tool_result(msgs)
    # After a rejected tool call the next prompt shares one user message with the tool result:
    # answer the typed text then, and the tool result only when it is alone.
    if result is not None and not last_user_text(msgs[-1:]):
        return [{"type": "text", "text": "ECHO: tool said: " + result[:200]}], "end_turn", 0.0
    text = last_user_text(msgs)
    delay_s = 0.0
    if m := re.match(r"SLOW(\d+(?:\.\d+)?):\s*(.*)\Z", text, re.S):
        delay_s, text = float(m.group(1)), m.group(2)
    tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    if (m := re.match(r"TOOL:\s*(.*)\Z", text, re.S)) and "Bash" in tools:
        tool_use = {
            "type": "tool_use",
            "id": "toolu_fake_" + uuid.uuid4().hex[:20],
            "name": "Bash",
            "input": {"command": m.group(1), "description": "run the test command"},
        }
        return [{"type": "text", "text": "ECHO: running a tool"}, tool_use], "tool_use", delay_s
    return [{"type": "text", "text": "ECHO: " + text}], "end_turn", delay_s


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can close keep-alive sockets and join their threads."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, api: FakeAnthropic) -> None:
        self.api = api
        self.conns: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.conns.add(request)
        t = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self.conns_lock:
            self.threads.add(t)
        t.start()

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-stream is normal (Claude Code cancels, the test kills it).
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _read_body(self) -> tuple[dict[str, Any], bytes]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        return (body if isinstance(body, dict) else {}), raw

    def _send_json(self, code: int, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:16])
        self.end_headers()
        self.wfile.write(data)

    def _record(self, **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "t": time.time(),
            "method": self.command,
            "path": self.path,
            "session_header": self.headers.get("X-Claude-Code-Session-Id"),
            "user_agent": self.headers.get("User-Agent"),
            **fields,
        }
        self.server.api._log(entry)
        return entry

    def do_GET(self) -> None:
        self._record()
        self._send_json(200, {})

    def do_HEAD(self) -> None:
        self._record()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body, raw = self._read_body()
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages/count_tokens":
            self._record(model=body.get("model"))
            self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            return
        if path != "/v1/messages":
            self._record()
            self._send_json(200, {})
            return
        msgs = body.get("messages") or []
        blocks, stop_reason, delay_s = plan_reply(body)
        self._record(
            model=body.get("model"),
            stream=bool(body.get("stream")),
            n_messages=len(msgs),
            n_tools=len(body.get("tools") or []),
            tool_names=[t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)],
            last_user_text=last_user_text(msgs),
            reply=[b.get("text") or f"tool_use:{b.get('name')}" for b in blocks],
        )
        msg_id = "msg_fake_" + uuid.uuid4().hex[:20]
        usage = {
            "input_tokens": max(1, len(raw) // 4),  # roughly what a tokenizer would say
            "output_tokens": sum(len(json.dumps(b)) // 4 for b in blocks) + 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        model = body.get("model") or "claude-fake"
        if not body.get("stream"):
            time.sleep(delay_s)
            self._send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
                "stop_reason": stop_reason, "stop_sequence": None, "usage": usage,
            })  # fmt: skip
            return
        self._stream(msg_id, model, blocks, stop_reason, usage, delay_s)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, name: str, obj: dict[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode())

    def _stream(
        self, msg_id: str, model: str, blocks: list[dict[str, Any]], stop_reason: str,
        usage: dict[str, int], delay_s: float,
    ) -> None:  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:16])
        self.end_headers()
        step = 8  # characters per text delta: enough deltas to look like a real stream
        n_deltas = sum(max(1, -(-len(b["text"]) // step)) for b in blocks if b["type"] == "text")
        pause_s = delay_s / n_deltas if delay_s and n_deltas else 0.0
        try:
            self._event("message_start", {"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": dict(usage, output_tokens=1),
            }})  # fmt: skip
            self._event("ping", {"type": "ping"})
            for i, b in enumerate(blocks):
                if b["type"] == "text":
                    start = {"type": "text", "text": ""}
                else:
                    start = {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}
                self._event(
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": start},
                )
                if b["type"] == "text":
                    text = b["text"]
                    for j in range(0, max(1, len(text)), step):
                        if pause_s:
                            time.sleep(pause_s)
                        delta = {"type": "text_delta", "text": text[j : j + step]}
                        self._event(
                            "content_block_delta",
                            {"type": "content_block_delta", "index": i, "delta": delta},
                        )
                else:
                    delta = {"type": "input_json_delta", "partial_json": json.dumps(b["input"])}
                    self._event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": i, "delta": delta},
                    )
                self._event("content_block_stop", {"type": "content_block_stop", "index": i})
            self._event("message_delta", {
                "type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            })  # fmt: skip
            self._event("message_stop", {"type": "message_stop"})
            self._chunk(b"")  # end of the chunked body
        except OSError:  # the client went away mid-stream (cancelled turn, killed process)
            self.close_connection = True


class FakeAnthropic:
    """The fake API in a background thread. `url` is the ANTHROPIC_BASE_URL to give Claude Code."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeAnthropic.start() was not called"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAnthropic:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection, join the threads, close the listening socket."""
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        assert self._thread is not None
        self._thread.join(STOP_JOIN_TIMEOUT_S)
        with srv.conns_lock:
            conns, threads = list(srv.conns), list(srv.threads)
        for c in conns:  # wake handler threads blocked reading a kept-alive connection
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(STOP_JOIN_TIMEOUT_S)
        srv.server_close()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)
            if self.log_path is not None:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def messages(self) -> list[dict[str, Any]]:
        """The `POST /v1/messages` requests so far (a snapshot)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r["method"] == "POST" and r["path"].split("?")[0] == "/v1/messages"
            ]

    def wait_for_message(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0
    ) -> dict[str, Any]:
        """Wait for a Messages request matching `predicate` (e.g. on `last_user_text`) and return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            for r in self.messages():
                if predicate(r):
                    return r
            if time.monotonic() > deadline:
                seen = [r.get("last_user_text") for r in self.messages()]
                raise AssertionError(
                    f"no matching /v1/messages request after {timeout_s:.1f} s; saw {seen!r}"
                )
            time.sleep(0.05)


if __name__ == "__main__":  # manual use: python3 tests/claude/fake_anthropic.py
    with FakeAnthropic() as api:
        print(f"fake Anthropic API on {api.url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
