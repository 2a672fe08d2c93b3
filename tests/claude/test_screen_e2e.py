"""Issue 15 against the real Claude Code: a routed prompt is typed only into the main input box,
empty, with nothing open. The /model picker, a draft (pty and adopted tmux paths), the `/`
menu and a permission dialog each make it wait (queued, with the reason); it arrives exactly
once after the user closes the picker / clears the draft; no setting changes.

Uses the real daemon and `ccc run` from test_e2e_claude.py's fixtures.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from . import test_e2e_claude as e2e
from .fake_anthropic import FakeAnthropic
from .harness import ClaudeBuild, ClaudeHome, TmuxSession, wait_ready, wait_until
from .test_e2e_claude import (
    ATTACH_TIMEOUT_S,
    TURN_TIMEOUT_S,
    Ccc,
    Daemon,
    Session,
    _hook_settings,
    _manual_mode,
)

# The real daemon and `ccc run` fixtures of the end-to-end suite.
daemon = e2e.daemon
daemon_args = e2e.daemon_args
start_session = e2e.start_session

QUEUE_HOLD_S = 2.0  # long enough for a wrongly typed prompt to reach the fake API


def _prompt(daemon: Daemon, sid: str, text: str) -> dict[str, Any]:
    resp = daemon.request({"type": "prompt", "session_id": sid, "text": text})
    assert not resp.get("error"), resp
    return resp


def _requests(api: FakeAnthropic, text: str) -> list[dict[str, Any]]:
    return [r for r in api.messages() if r["n_tools"] > 0 and text in r["last_user_text"]]


def _settings_snapshot(home: ClaudeHome) -> dict[str, str]:
    out = {}
    for p in (home.settings_path, home.config_dir / ".claude.json"):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        out[p.name] = json.dumps({k: v for k, v in data.items() if k == "model"}, sort_keys=True)
    return out


def _delivered_once(api: FakeAnthropic, text: str, daemon: Daemon) -> None:
    try:
        api.wait_for_message(lambda r: r["last_user_text"] == text, TURN_TIMEOUT_S)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; daemon log:\n{daemon.log_tail(60)}") from None
    time.sleep(1.0)  # a second copy would be there by now
    assert len(_requests(api, text)) == 1, [r["last_user_text"] for r in api.messages()]


def test_model_picker_holds_the_prompt_until_closed(
    claude_build: ClaudeBuild,
    start_session: Callable[..., Session],
    daemon: Daemon,
    fake_api: FakeAnthropic,
    claude_home: ClaudeHome,
) -> None:
    s = start_session(claude_build)
    before = _settings_snapshot(claude_home)
    s.pane.submit("/model")
    s.pane.wait_for(r"Select model", 15)
    time.sleep(2.5)  # past the typing grace: the picker alone holds it
    resp = _prompt(daemon, s.session_id, "after the picker")
    assert resp["status"] == "queued", resp
    assert "/model picker is open" in resp["data"]["reason"], resp
    time.sleep(QUEUE_HOLD_S)
    s.pane.wait_for(r"Select model", 1)  # still open, untouched
    assert not _requests(fake_api, "after the picker")
    s.pane.send_keys("Escape")  # the user closes the picker
    _delivered_once(fake_api, "after the picker", daemon)
    s.pane.wait_for(r"ECHO: after the picker", TURN_TIMEOUT_S)
    assert _settings_snapshot(claude_home) == before, "a setting changed"


def test_draft_holds_the_prompt_on_the_pty_path(
    claude_native: ClaudeBuild,
    start_session: Callable[..., Session],
    daemon: Daemon,
    fake_api: FakeAnthropic,
) -> None:
    s = start_session(claude_native)
    s.pane.send_text("my own draft")
    s.pane.wait_for(r"my own draft", 5)
    time.sleep(2.5)  # past the typing grace: the draft alone holds it
    resp = _prompt(daemon, s.session_id, "routed after draft")
    assert resp["status"] == "queued", resp
    assert "draft" in resp["data"]["reason"], resp
    time.sleep(QUEUE_HOLD_S)
    assert not _requests(fake_api, "routed after draft")
    s.pane.send_keys("C-u")  # the user clears the draft
    _delivered_once(fake_api, "routed after draft", daemon)
    assert not _requests(fake_api, "my own draft")


def test_slash_menu_holds_the_prompt(
    claude_native: ClaudeBuild,
    start_session: Callable[..., Session],
    daemon: Daemon,
    fake_api: FakeAnthropic,
) -> None:
    s = start_session(claude_native)
    s.pane.send_text("/")
    s.pane.wait_for(r"/add-dir", 5)
    time.sleep(2.5)
    resp = _prompt(daemon, s.session_id, "not into the menu")
    assert resp["status"] == "queued", resp
    time.sleep(QUEUE_HOLD_S)
    assert not _requests(fake_api, "not into the menu")
    s.pane.send_keys("BSpace")
    _delivered_once(fake_api, "not into the menu", daemon)


def test_permission_dialog_is_not_typed_into_even_after_a_fake_stop_hook(
    claude_native: ClaudeBuild,
    start_session: Callable[..., Session],
    daemon: Daemon,
    fake_api: FakeAnthropic,
) -> None:
    s = start_session(claude_native, *_manual_mode(claude_native))
    marker = s.home.cwd / "approved-by-accident"
    s.pane.submit(f"TOOL: touch {marker}")
    s.pane.wait_for(r"Do you want to proceed\?", TURN_TIMEOUT_S)
    # After the permission_prompt Notification (6.1-6.4 s after the dialog, FACTS §3.1), so no
    # real hook undoes the fake one below.
    time.sleep(7.5)
    sid = s.session_id
    # Any local client can send a Stop hook: the daemon now believes the session is idle.
    daemon.request(
        {
            "type": "hook",
            "internal_id": s.internal_id,
            "data": {"hook_event_name": "Stop", "session_id": sid, "stop_hook_active": False},
        }
    )
    s.wait_state("idle", 5)
    resp = _prompt(daemon, sid, "while the dialog is open")
    assert resp["status"] == "queued", resp
    assert "permission dialog" in resp["data"]["reason"], resp
    time.sleep(QUEUE_HOLD_S)
    assert not marker.exists(), "the routed prompt's Enter approved the tool call"
    s.pane.wait_for(r"Do you want to proceed\?", 1)


def test_draft_holds_the_prompt_on_the_adopted_tmux_path(
    claude_native: ClaudeBuild,
    daemon: Daemon,
    claude_home: ClaudeHome,
    tmux: Callable[[], TmuxSession],
    fake_api: FakeAnthropic,
) -> None:
    env = dict(claude_home.env, CCC_CACHE_DIR=str(daemon.cache_dir))
    ccc = Ccc(daemon, env)
    _hook_settings(claude_home, ccc)
    pane = tmux()
    # `env -i` drops tmux's own variables: give the hooks the pane and server they run in.
    sock = f"/tmp/tmux-{os.getuid()}/{pane.socket_name}"
    env = dict(env, TMUX=f"{sock},0,0", TMUX_PANE="%0")
    pane.start([str(claude_native.bin)], env=env, cwd=claude_home.cwd)
    claude_home.pids.update(pane.pids_seen)
    wait_ready(pane)
    cwd = str(claude_home.cwd)

    def attached() -> dict[str, Any] | None:
        for r in ccc.sessions():
            if r.get("cwd") == cwd and r.get("session_id") and r.get("state") == "idle":
                return r
        return None

    rec = wait_until(attached, ATTACH_TIMEOUT_S, "the adopted session to be listed idle")
    sid = str(rec["session_id"])
    pane.send_text("adopted draft xyz")
    pane.wait_for("adopted draft xyz", 5)
    resp = _prompt(daemon, sid, "routed into adopted")
    assert resp["status"] == "queued", resp
    assert "draft" in resp["data"]["reason"], resp
    time.sleep(QUEUE_HOLD_S)
    assert not _requests(fake_api, "routed into adopted")
    pane.send_keys("C-u")
    _delivered_once(fake_api, "routed into adopted", daemon)
    assert not _requests(fake_api, "adopted draft xyz")
