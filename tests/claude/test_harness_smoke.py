"""The end-to-end harness itself, proven against the real Claude Code (no product code involved).

Owns: the fake API's wire behaviour (plain HTTP checks), and that the pinned builds start in
tmux against it, answer a typed prompt with the deterministic echo, fire the configured hooks
with their real session id, and show a permission dialog for a `TOOL:` reply in manual mode.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path

from .fake_anthropic import FakeAnthropic, last_user_text, plan_reply
from .harness import (
    ClaudeBuild,
    ClaudeHome,
    TmuxSession,
    install_claude_code,
    read_records,
    recorder_settings,
    wait_for_record,
    wait_ready,
    wait_until,
)


def _post(api: FakeAnthropic, path: str, body: dict[str, object]) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
    finally:
        conn.close()


def _sse_text(raw: str) -> str:
    out = []
    for line in raw.splitlines():
        if line.startswith("data: "):
            ev = json.loads(line[6:])
            if ev.get("type") == "content_block_delta" and ev["delta"]["type"] == "text_delta":
                out.append(ev["delta"]["text"])
    return "".join(out)


def test_fake_api_speaks_messages_json_sse_and_probes(fake_api: FakeAnthropic) -> None:
    user = {"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>ignore me</system-reminder>"},
        {"type": "text", "text": "hello there\n<system-reminder>and me</system-reminder>"},
    ]}  # fmt: skip
    status, ctype, body = _post(fake_api, "/v1/messages", {"model": "m", "messages": [user]})
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body)["content"] == [{"type": "text", "text": "ECHO: hello there"}]

    status, ctype, body = _post(
        fake_api, "/v1/messages?beta=true", {"model": "m", "stream": True, "messages": [user]}
    )
    assert (status, ctype) == (200, "text/event-stream")
    assert _sse_text(body) == "ECHO: hello there"
    assert "event: message_stop" in body

    status, _, body = _post(fake_api, "/v1/messages/count_tokens", {"messages": [user]})
    assert status == 200 and json.loads(body)["input_tokens"] > 0

    conn = http.client.HTTPConnection("127.0.0.1", fake_api.port, timeout=10)
    try:
        conn.request("HEAD", "/")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert [r["method"] for r in fake_api.requests] == ["POST", "POST", "POST", "HEAD"]
    assert fake_api.messages()[-1]["last_user_text"] == "hello there"


def test_fake_api_tool_and_tool_result_replies() -> None:
    bash = {"name": "Bash", "input_schema": {}}
    blocks, stop, _ = plan_reply(
        {"messages": [{"role": "user", "content": "TOOL: touch x"}], "tools": [bash]}
    )
    assert stop == "tool_use"
    assert blocks[1]["name"] == "Bash" and blocks[1]["input"]["command"] == "touch x"
    # Without a Bash tool (side requests) it is a plain echo.
    assert (
        plan_reply({"messages": [{"role": "user", "content": "TOOL: x"}]})[0][0]["text"]
        == "ECHO: TOOL: x"
    )
    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "done"}],
    }
    assert plan_reply({"messages": [result]})[0][0]["text"] == "ECHO: tool said: done"
    assert last_user_text([{"role": "user", "content": "a"}, result]) == "a"
    # A rejected tool call's result and the next typed prompt arrive in one user message.
    both = {"role": "user", "content": [*result["content"], {"type": "text", "text": "next"}]}
    assert plan_reply({"messages": [both]})[0][0]["text"] == "ECHO: next"
    assert plan_reply({"messages": [{"role": "user", "content": "SLOW2: hi"}]})[2] == 2.0


def test_install_is_reused(claude_native: ClaudeBuild, claude_node: ClaudeBuild) -> None:
    t0 = time.monotonic()
    assert install_claude_code(claude_native.version) == claude_native.bin
    assert install_claude_code(claude_node.version) == claude_node.bin
    print(f"warm install check of both builds: {time.monotonic() - t0:.3f} s")
    assert claude_native.native and not claude_node.native


def _start(
    tmux: Callable[[], TmuxSession], build: ClaudeBuild, home: ClaudeHome, *args: str
) -> TmuxSession:
    pane = tmux().start([str(build.bin), *args], env=home.env, cwd=home.cwd)
    home.pids.update(pane.pids_seen)
    return pane


def test_native_answers_a_typed_prompt(
    claude_native: ClaudeBuild,
    claude_home: ClaudeHome,
    tmux: Callable[[], TmuxSession],
    fake_api: FakeAnthropic,
) -> None:
    t0 = time.monotonic()
    pane = _start(tmux, claude_native, claude_home)
    ready_s = wait_ready(pane)
    pane.submit("hello from the harness")
    pane.wait_for(r"^● ECHO: hello from the harness", timeout_s=20)
    print(
        f"native {claude_native.version}: ready {ready_s:.2f} s, echo {time.monotonic() - t0:.2f} s"
    )
    req = fake_api.wait_for_message(lambda r: r["last_user_text"] == "hello from the harness")
    assert req["path"] == "/v1/messages?beta=true" and req["stream"] is True
    assert req["user_agent"].startswith(f"claude-cli/{claude_native.version}")


def test_native_hooks_fire_with_the_real_session_id(
    claude_native: ClaudeBuild,
    claude_home: ClaudeHome,
    tmux: Callable[[], TmuxSession],
    fake_api: FakeAnthropic,
) -> None:
    rec = claude_home.root / "hooks.jsonl"
    claude_home.write_settings(recorder_settings(rec))
    pane = _start(tmux, claude_native, claude_home)
    wait_ready(pane)
    start = wait_for_record(rec, "SessionStart")
    sid = start["stdin"]["session_id"]
    assert start["stdin"]["source"] == "startup"
    pane.submit("hooked prompt")
    submit = wait_for_record(rec, "UserPromptSubmit")
    stop = wait_for_record(rec, "Stop")
    assert submit["stdin"]["prompt"] == "hooked prompt"
    assert {submit["stdin"]["session_id"], stop["stdin"]["session_id"]} == {sid}
    # The same id the API sees and the transcript is named after.
    req = fake_api.wait_for_message(lambda r: r["last_user_text"] == "hooked prompt")
    assert req["session_header"] == sid
    transcript = Path(start["stdin"]["transcript_path"])
    assert transcript == claude_home.transcript_dir() / f"{sid}.jsonl"
    # The transcript is written asynchronously (FACTS §4): it can lag the Stop hook.
    wait_until(
        lambda: "ECHO: hooked prompt" in transcript.read_text(), 15, "the reply in the transcript"
    )
    # Hooks see claude's own environment plus what Claude Code adds.
    assert start["env"]["CLAUDE_CODE_SESSION_ID"] == sid
    assert int(start["env"]["CLAUDE_PID"]) in pane.pids_seen | {pane.pane_pid()}
    statusline = wait_for_record(
        rec, "statusline", where=lambda r: r["stdin"].get("context_window", {}).get("current_usage")
    )
    assert statusline["stdin"]["session_id"] == sid
    kinds = [r["kind"] for r in read_records(rec)]
    assert kinds.index("SessionStart") < kinds.index("UserPromptSubmit") < kinds.index("Stop")


def test_native_manual_mode_shows_a_permission_dialog_for_a_tool_call(
    claude_native: ClaudeBuild, claude_home: ClaudeHome, tmux: Callable[[], TmuxSession]
) -> None:
    marker = claude_home.cwd / "touched"
    pane = _start(tmux, claude_native, claude_home, "--permission-mode", "manual")
    wait_ready(pane)
    pane.submit(f"TOOL: touch {marker}")
    pane.wait_for(r"Do you want to proceed\?", timeout_s=20)
    assert not marker.exists()
    pane.send_keys("Escape")  # reject: nothing runs
    pane.wait_for(r"^❯", timeout_s=10)
    assert not marker.exists()


def test_node_build_answers_a_typed_prompt(
    claude_node: ClaudeBuild,
    claude_home: ClaudeHome,
    tmux: Callable[[], TmuxSession],
    fake_api: FakeAnthropic,
) -> None:
    t0 = time.monotonic()
    pane = _start(tmux, claude_node, claude_home)
    ready_s = wait_ready(pane)
    pane.submit("hello node")
    pane.wait_for(r"^● ECHO: hello node", timeout_s=30)
    print(f"node {claude_node.version}: ready {ready_s:.2f} s, echo {time.monotonic() - t0:.2f} s")
    req = fake_api.wait_for_message(
        lambda r: r["n_tools"] > 0 and r["last_user_text"] == "hello node"
    )
    assert req["user_agent"].startswith(f"claude-cli/{claude_node.version}")
