"""`ccc mcp` with the real Claude Code (2.1.331 native, offline): `ccc install` registers it,
`claude mcp list` connects to it, and the model's tool calls reach other sessions.

The fake API is scripted with `MCP: <tool> <json>` prompts (fake_anthropic.plan_reply): the model
calls `mcp__ccc__<tool>`, and its next reply echoes the start of the tool's result.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .fake_anthropic import FakeAnthropic
from .harness import ClaudeBuild, ClaudeHome, TmuxSession, wait_ready, wait_until
from .test_e2e_claude import (  # noqa: F401  (daemon, daemon_args: fixtures, used by name)
    ATTACH_TIMEOUT_S,
    CCC,
    TURN_TIMEOUT_S,
    Ccc,
    Daemon,
    Session,
    _hook_settings,
    daemon,
    daemon_args,
)

ALLOW = ["mcp__ccc__list_sessions", "mcp__ccc__whoami", "mcp__ccc__ask_session"]


def _claude_mcp_list(build: ClaudeBuild, home: ClaudeHome) -> str:
    proc = subprocess.run(
        [str(build.bin), "mcp", "list"],
        env=home.env,
        cwd=home.cwd,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("via", ["claude mcp add", "file edit"])
def test_claude_mcp_list_connects_to_the_installed_server(
    claude_native: ClaudeBuild, claude_home: ClaudeHome, via: str
) -> None:
    env = dict(claude_home.env)
    if via == "claude mcp add":
        env["PATH"] = f"{claude_native.bin.parent}:{env['PATH']}"
    out = subprocess.run(
        [str(CCC), "install", "--profile", str(claude_home.config_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert "registered the MCP server `ccc mcp`" in out.stdout, out.stdout + out.stderr
    assert ("edited" in out.stderr) is False, out.stderr  # the claude CLI did it when present
    config = json.loads((claude_home.config_dir / ".claude.json").read_text())
    assert config["mcpServers"]["ccc"]["args"] == ["mcp"]
    assert config["hasCompletedOnboarding"] is True  # the rest of Claude's state is kept
    listed = _claude_mcp_list(claude_native, claude_home)
    assert "ccc:" in listed and "Connected" in listed, listed
    out = subprocess.run(
        [str(CCC), "uninstall", "--profile", str(claude_home.config_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert "ccc:" not in _claude_mcp_list(claude_native, claude_home)


def _allow_tools(home: ClaudeHome) -> None:
    settings = json.loads(home.settings_path.read_text())
    settings.setdefault("permissions", {}).setdefault("allow", []).extend(ALLOW)
    home.settings_path.write_text(json.dumps(settings, indent=1))


@pytest.fixture
def start_sessions(
    claude_home: ClaudeHome,
    daemon: Daemon,  # noqa: F811
    tmux: Callable[[], TmuxSession],
) -> Callable[[ClaudeBuild], Session]:
    """`ccc run -- claude` sessions in one project dir, each told apart by its internal id."""
    # 2.1.331 defers MCP tools behind ToolSearch; the fake model calls them directly.
    env = dict(claude_home.env, CCC_CACHE_DIR=str(daemon.cache_dir), ENABLE_TOOL_SEARCH="false")
    ccc = Ccc(daemon, env)
    _hook_settings(claude_home, ccc)  # `ccc install`: hooks, statusLine and the MCP server
    _allow_tools(claude_home)
    taken: set[str] = set()

    def start(build: ClaudeBuild) -> Session:
        pane = tmux().start([str(CCC), "run", "--", str(build.bin)], env=env, cwd=claude_home.cwd)
        claude_home.pids.update(pane.pids_seen)
        wait_ready(pane)

        def attached() -> dict[str, Any] | None:
            for r in ccc.sessions():
                iid = r.get("internal_id")
                if iid and iid not in taken and r.get("connected") and r.get("state") == "idle":
                    if r.get("session_id"):
                        return r
            return None

        rec = wait_until(attached, ATTACH_TIMEOUT_S, "a new `ccc run` session to attach")
        taken.add(str(rec["internal_id"]))
        return Session(pane, claude_home, str(rec["internal_id"]), ccc)

    return start


def _tool_said(s: Session) -> str:
    return s.pane.capture(history=True)


def test_model_lists_sessions_through_mcp(
    claude_native: ClaudeBuild,
    start_sessions: Callable[[ClaudeBuild], Session],
    fake_api: FakeAnthropic,
) -> None:
    s = start_sessions(claude_native)
    sid = s.session_id
    s.pane.submit("MCP: list_sessions {}")
    fake_api.wait_for_message(
        lambda r: (
            r["last_user_text"] == "MCP: list_sessions {}"
            and "mcp__ccc__list_sessions" in r["tool_names"]
        ),
        TURN_TIMEOUT_S,
    )
    s.pane.wait_for(r"ECHO: tool said:", TURN_TIMEOUT_S)
    result = wait_until(
        lambda: (t := _plain(s.transcript())) and f'"id":"{sid[:8]}"' in t and t,
        TURN_TIMEOUT_S,
        "the list_sessions result (with this session's short id) in the transcript",
    )
    assert '"you":true' in result and '"state":"busy"' in result


def _plain(transcript: str) -> str:
    """The transcript with JSON-in-JSON unescaped and spaces dropped, for substring checks."""
    return transcript.replace('\\"', '"').replace(" ", "")


def test_ask_session_returns_the_other_sessions_reply(
    claude_native: ClaudeBuild,
    start_sessions: Callable[[ClaudeBuild], Session],
    fake_api: FakeAnthropic,
) -> None:
    a = start_sessions(claude_native)
    b = start_sessions(claude_native)
    a_sid, b_sid = a.session_id, b.session_id
    args = json.dumps({"session": b_sid[:8], "question": "what is 2+2", "timeout": 60})
    a.pane.submit(f"MCP: ask_session {args}")
    # B is asked, with the sender header naming A, and answers.
    b.pane.wait_for(rf"question from {a_sid[:8]}", TURN_TIMEOUT_S)
    fake_api.wait_for_message(
        lambda r: (
            r["last_user_text"].endswith("what is 2+2")
            and r["last_user_text"].startswith("[question from")
        ),
        TURN_TIMEOUT_S,
    )
    # A's tool call returns B's reply, and A's model sees it.
    wait_until(
        lambda: (
            "ECHO:[questionfrom" in _plain(a.transcript()) and "whatis2+2" in _plain(a.transcript())
        ),
        TURN_TIMEOUT_S * 2,
        "B's reply in A's transcript (the ask_session result)",
    )
    a.pane.wait_for(r"ECHO: tool said:", TURN_TIMEOUT_S)
    assert os.path.basename(str(CCC)) == "ccc"


def test_ask_self_is_refused_with_the_reason(
    claude_native: ClaudeBuild,
    start_sessions: Callable[[ClaudeBuild], Session],
    fake_api: FakeAnthropic,
) -> None:
    a = start_sessions(claude_native)
    args = json.dumps({"session": a.session_id[:8], "question": "hi"})
    a.pane.submit(f"MCP: ask_session {args}")
    wait_until(
        lambda: "is you" in a.transcript() and "send_prompt" in a.transcript(),
        TURN_TIMEOUT_S,
        "the self-ask error in the transcript",
    )
    a.wait_state("idle")
    assert Path(a.home.settings_path).exists()


def test_ask_cycle_ends_with_an_error_within_seconds(
    claude_native: ClaudeBuild,
    start_sessions: Callable[[ClaudeBuild], Session],
    fake_api: FakeAnthropic,
) -> None:
    a = start_sessions(claude_native)
    b = start_sessions(claude_native)
    a_sid, b_sid = a.session_id, b.session_id
    # A asks B; B's model, in the turn that answers, asks A back: A → B → A.
    back = json.dumps({"session": a_sid[:8], "question": "loop"})
    args = json.dumps(
        {"session": b_sid[:8], "question": f"MCP: ask_session {back}", "timeout": 120}
    )
    started = time.monotonic()
    a.pane.submit(f"MCP: ask_session {args}")
    # B's ask is refused at once; B's turn ends with that error, which is A's answer.
    wait_until(
        lambda: "woulddeadlock" in _plain(b.transcript()),
        TURN_TIMEOUT_S,
        "the cycle error in B's transcript",
    )
    wait_until(
        lambda: "woulddeadlock" in _plain(a.transcript()),
        TURN_TIMEOUT_S,
        "B's answer (the cycle error) in A's transcript",
    )
    assert time.monotonic() - started < TURN_TIMEOUT_S * 2
