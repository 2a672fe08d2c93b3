"""A stand-in for Claude Code's TUI, for tests: a raw-mode prompt that understands bracketed
paste, records what happens to a JSON-lines file, and fires hook commands with payloads shaped
like ``tests/data/claude-code/v2.1.331/hooks-*.json``.

Usage: ``python standin_tui.py [--record FILE] [--hook-cmd CMD] [--exit-code N]`` (or the
environment variables ``STANDIN_RECORD``, ``CCC_HOOK_CMD``, ``STANDIN_EXIT_CODE``).

Behaviour:
- start: fires SessionStart(source=startup), records ``ready`` (pid, window size, CCC_* env), prints the ready prompt ``❯ `` (Claude Code's is
  ``❯`` + NBSP; tests match ``❯``);
- typed keys are echoed; Backspace, Ctrl-U and Ctrl-C edit; ``\\n`` inserts a newline; ``\\r``
  submits; text inside ``ESC[200~ … ESC[201~`` is taken literally (a ``\\r`` in it is a newline);
- a submitted prompt: record ``{"event":"submit","prompt":…}``, fire UserPromptSubmit, "work",
  fire Stop with ``last_assistant_message = "ECHO: <prompt>"``, print ``● ECHO: …`` and ``❯ ``;
- ``SLOW<n>…`` works for n seconds first (busy; keys typed meanwhile wait in the terminal);
- ``PERM…`` opens a permission dialog: fires PermissionRequest, then reads one key: ``\\r``
  approves (recorded ``approved``), ``n`` or Esc denies (``denied``), anything else is recorded
  as ``dialog_input`` and ignored;
- ``/clear``: SessionEnd(reason=clear) for the old id, a new session id, SessionStart(source=
  clear); ``/exit``: SessionEnd(prompt_input_exit) and exit with ``--exit-code`` (default 0);
  any other ``/name args``: recorded as a command;
- Ctrl-D on an empty line or EOF on stdin: SessionEnd(other) and exit.

The screen (issue 15): every change redraws the whole screen the way Claude Code 2.1.331 does,
so the screen classifier (ccc_statusd/screen.py) sees what it would see on the real program:
the transcript, then the input box (a rule, ``❯ `` + the draft, a rule, one footer line; the
footer says ``esc to interrupt`` while a SLOW turn works), the ``/`` command menu over the box
while the draft is a bare ``/word``, and, drawn from the captures in
tests/data/screens/2.1.331/: the permission dialog (PERM), the ``/model`` picker (``/model``:
Enter records ``model_set``, Esc records ``picker_closed``, other keys ``picker_input``) and the
``/status`` panel (``/status``: Esc records ``panel_closed``, other keys ``panel_input``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import termios
import time
import tty
import uuid
from typing import Any

SCREENS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "screens", "2.1.331")
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"
READY = "❯ "


class StandIn:
    def __init__(self, record: str | None, hook_cmd: str | None, exit_code: int) -> None:
        self.record_path = record
        self.hook_cmd = hook_cmd
        self.exit_code = exit_code
        self.cwd = os.getcwd()
        config = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
        self.project_dir = os.path.join(config, "projects", self.cwd.replace("/", "-"))
        self.session_id = str(uuid.uuid4())
        self.buf: list[str] = []
        self.pending = b""  # undecoded bytes (partial escape sequence or UTF-8 character)
        self.in_paste = False
        self.prompt_id: str | None = None
        self.transcript: list[str] = []
        self.footer = "  ⏵⏵ auto mode on (shift+tab to cycle)"
        self.overlay: list[str] | None = None  # a picker, panel or dialog drawn instead of the box
        self.overlay_kind = ""

    # --- output and records ---------------------------------------------------------------

    def out(self, text: str) -> None:
        os.write(1, text.replace("\n", "\r\n").encode())

    def record(self, event: str, **fields: Any) -> None:
        if not self.record_path:
            return
        row = {"event": event, "session_id": self.session_id, "t": time.time(), **fields}
        with open(self.record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    @property
    def transcript_path(self) -> str:
        return os.path.join(self.project_dir, f"{self.session_id}.jsonl")

    def hook(self, name: str, **fields: Any) -> None:
        payload: dict[str, Any] = {
            "session_id": self.session_id,
            "transcript_path": self.transcript_path,
            "cwd": self.cwd,
        }
        if self.prompt_id and name not in ("SessionStart",):
            payload["prompt_id"] = self.prompt_id
        payload["hook_event_name"] = name
        payload.update(fields)
        self.record("hook", name=name, payload=payload)
        if not self.hook_cmd:
            return
        env = dict(os.environ)
        env.update(
            CLAUDE_PID=str(os.getpid()),
            CLAUDE_PROJECT_DIR=self.cwd,
            CLAUDE_CODE_SESSION_ID=self.session_id,
            CLAUDE_CODE_ENTRYPOINT="cli",
        )
        try:
            subprocess.run(
                ["/bin/sh", "-c", self.hook_cmd],
                input=json.dumps(payload).encode(),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.record("hook_timeout", name=name)

    @staticmethod
    def size() -> list[int] | None:
        try:
            cols, rows = os.get_terminal_size(0)
        except OSError:
            return None
        return [rows, cols]

    def ready(self) -> None:
        self.overlay = None
        self.footer = "  ⏵⏵ auto mode on (shift+tab to cycle)"
        self.draw()

    def say(self, line: str) -> None:
        """Add a line to the transcript (drawn over the input box)."""
        self.transcript.extend(line.split("\n"))
        del self.transcript[:-200]

    def draw(self) -> None:
        """Redraw the whole screen: transcript, then the input box (or the open overlay)."""
        size = self.size() or [24, 80]
        rows, cols = size
        text = "".join(self.buf)
        if self.overlay is not None:
            bottom = list(self.overlay)
            cursor = (len(bottom), 1)
        else:
            draft = text.split("\n")
            box = ["─" * cols, READY + draft[0], *("  " + d for d in draft[1:]), "─" * cols]
            menu: list[str] = []
            if text.startswith("/") and " " not in text and "\n" not in text:
                menu = [f"    {line}" for line in MENU if line.startswith(text)][:5]
            bottom = menu + box + [self.footer]
            cursor = (len(menu) + len(draft), 2 + len(draft[-1]) + (2 if len(draft) > 1 else 0))
        top = self.transcript[-max(0, rows - len(bottom)) :] if rows > len(bottom) else []
        lines = (top + bottom)[-rows:]
        row = len(lines) - len(bottom) + cursor[0] + 1  # 1-based
        screen = "\x1b[H\x1b[2J" + "\r\n".join(line[:cols] for line in lines)
        os.write(1, (screen + f"\x1b[{max(1, row)};{cursor[1] + 1}H").encode())

    # --- input ----------------------------------------------------------------------------

    def read(self) -> bytes:
        data = os.read(0, 65536)
        if not data:
            self.end("other")
        return data

    def run(self) -> None:
        self.hook("SessionStart", source="startup", model="claude-opus-5-5")
        self.record(
            "ready",
            pid=os.getpid(),
            size=self.size(),
            env={k: os.environ.get(k) for k in ("CCC_INTERNAL_ID", "CCC_CACHE_DIR")},
        )
        signal.signal(signal.SIGWINCH, lambda *_: self.record("resize", size=self.size()))
        self.ready()
        while True:
            self.feed(self.read())

    def feed(self, data: bytes) -> None:
        data = self.pending + data
        self.pending = b""
        i = 0
        while i < len(data):
            if self.in_paste:
                end = data.find(PASTE_END, i)
                if end < 0:
                    # keep a possible partial end marker for the next read
                    cut = max(i, len(data) - (len(PASTE_END) - 1))
                    self.insert(data[i:cut].replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
                    self.pending = data[cut:]
                    return
                self.insert(data[i:end].replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
                self.in_paste = False
                i = end + len(PASTE_END)
                continue
            b = data[i]
            if b == 0x1B:
                rest = data[i:]
                if rest.startswith(PASTE_START):
                    self.in_paste = True
                    i += len(PASTE_START)
                    continue
                if len(rest) < len(PASTE_START) and PASTE_START.startswith(rest):
                    self.pending = rest
                    return
                # skip any other escape sequence (ESC [ params final)
                j = i + 1
                if j < len(data) and data[j] in b"[O":
                    j += 1
                    while j < len(data) and not (0x40 <= data[j] <= 0x7E):
                        j += 1
                i = j + 1
                continue
            i += 1
            if b == 0x0D:
                self.submit()
            elif b in (0x7F, 0x08):
                if self.buf:
                    self.buf.pop()
                    self.draw()
            elif b in (0x15, 0x03):
                self.buf.clear()
                self.ready()
            elif b == 0x04:
                if not self.buf:
                    self.end("other")
            elif b == 0x0A or b >= 0x20:
                # collect a whole UTF-8 character
                start = i - 1
                need = 1 if b < 0x80 else (2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4)
                if start + need > len(data):
                    self.pending = data[start:]
                    return
                self.insert(data[start : start + need])
                i = start + need

    def insert(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        self.buf.append(text)
        self.draw()

    # --- behaviour ------------------------------------------------------------------------

    def submit(self) -> None:
        text = "".join(self.buf)
        self.buf.clear()
        if not text.strip():
            self.ready()
            return
        self.say("❯ " + text)
        if text.startswith("/"):
            self.command(text)
            return
        self.prompt_id = str(uuid.uuid4())
        self.record("submit", prompt=text)
        self.hook("UserPromptSubmit", permission_mode="default", prompt=text)
        if text.startswith("SLOW"):
            digits = "".join(c for c in text[4:8] if c.isdigit())
            self.footer = "  ⏵⏵ auto mode on (shift+tab to cycle) · esc to interrupt"
            self.transcript.append("✻ Working…")
            self.draw()
            time.sleep(float(digits or "1"))
            self.transcript.pop()
        if text.startswith("PERM"):
            self.permission_dialog()
        reply = f"ECHO: {text}"
        self.say(f"● {reply}")
        self.hook(
            "Stop",
            permission_mode="default",
            effort={"level": "medium"},
            stop_hook_active=False,
            last_assistant_message=reply,
            background_tasks=[],
            session_crons=[],
        )
        self.record("stop", prompt=text)
        self.ready()

    def permission_dialog(self) -> None:
        tool_input = {"command": "touch created-by-tool.txt", "description": "run test command"}
        self.hook(
            "PermissionRequest",
            permission_mode="default",
            tool_name="Bash",
            tool_input=tool_input,
        )
        self.record("dialog_open")
        self.overlay = capture("permission_dialog", "─")
        self.draw()
        while True:
            data = self.read()
            for k in range(len(data)):
                key = data[k : k + 1]
                if key == b"\r":
                    self.record("approved")
                    self.feed(data[k + 1 :])
                    return
                if key in (b"n", b"\x1b"):
                    self.record("denied", rest=data[k:].decode("utf-8", "replace"))
                    return
                self.record("dialog_input", key=key.decode("latin-1"))

    def command(self, text: str) -> None:
        name, _, args = text[1:].partition(" ")
        self.record("command", name=name, args=args)
        if name == "clear":
            self.hook("SessionEnd", reason="clear")
            old = self.session_id
            self.session_id = str(uuid.uuid4())
            self.prompt_id = None
            self.hook("SessionStart", source="clear")
            self.record("cleared", old_session_id=old)
            self.ready()
        elif name in ("exit", "quit"):
            self.end("prompt_input_exit")
        elif name == "model":
            self.open_overlay("picker", capture("model_picker", "▔"))
        elif name == "status":
            self.open_overlay("panel", capture("status_panel", "▔"))
        else:
            self.say(f"  ⎿  (ran /{name})")
            self.ready()

    def open_overlay(self, kind: str, lines: list[str]) -> None:
        """A picker or panel owns the keyboard until Esc (or Enter, for the picker)."""
        self.overlay = lines
        self.overlay_kind = kind
        self.record(f"{kind}_open")
        self.draw()
        while True:
            data = self.read()
            if data.startswith(b"\x1b") and not data.startswith(b"\x1b["):
                self.record(f"{kind}_closed", rest=data[1:].decode("utf-8", "replace"))
                self.ready()
                self.feed(data[1:])
                return
            if kind == "picker" and data.startswith(b"\r"):
                self.record("model_set")
                self.say("  ⎿  Set model to Default")
                self.ready()
                self.feed(data[1:])
                return
            self.record(f"{kind}_input", text=data.decode("utf-8", "replace"))

    def end(self, reason: str) -> None:
        self.hook("SessionEnd", reason=reason)
        self.record("exit", reason=reason)
        raise SystemExit(self.exit_code)


MENU = [
    "/add-dir                    Add a working directory",
    "/clear                      Start a new session with empty context",
    "/compact                    Summarise the conversation",
    "/config                     Open the settings panel",
    "/exit                       Exit the REPL",
    "/model                      Switch model (currently Opus 5.5)",
    "/status                     Show Claude Code status",
]


def capture(name: str, start: str) -> list[str]:
    """The bottom of a captured 2.1.331 screen, from the last line starting with ``start``."""
    with open(os.path.join(SCREENS, f"{name}.txt"), encoding="utf-8") as f:
        lines = [line.rstrip() for line in f.read().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    first = max(i for i, line in enumerate(lines) if line.startswith(start))
    return lines[first:]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", default=os.environ.get("STANDIN_RECORD"))
    parser.add_argument("--hook-cmd", default=os.environ.get("CCC_HOOK_CMD"))
    parser.add_argument(
        "--exit-code", type=int, default=int(os.environ.get("STANDIN_EXIT_CODE", "0"))
    )
    args = parser.parse_args()
    tui = StandIn(args.record, args.hook_cmd, args.exit_code)
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        os.write(1, b"\x1b[?2004h")  # ask for bracketed paste, as Claude Code does
    try:
        tui.run()
    finally:
        if saved is not None:
            os.write(1, b"\x1b[?2004l")
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
