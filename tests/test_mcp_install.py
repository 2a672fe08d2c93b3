"""`ccc install` registers `ccc mcp` in Claude Code's user config; `ccc uninstall` removes it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.mcp_install import (
    McpConfigError,
    is_our_server,
    plan_register,
    plan_unregister,
    register,
    server_entry,
    unregister,
    user_config_path,
)

CCC = "/opt/ccc venv/bin/ccc"
CCC_BIN = os.path.join(os.path.dirname(sys.executable), "ccc")
CONFIGS: dict[str, dict[str, Any]] = {
    "empty": {},
    "claude state": {"numStartups": 3, "projects": {"/w": {"hasTrustDialogAccepted": True}}},
    "other servers": {
        "mcpServers": {"github": {"type": "stdio", "command": "gh-mcp", "args": [], "env": {}}},
        "theme": "dark",
    },
}


@pytest.fixture
def tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ccc-mcpi-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("shape", CONFIGS)
def test_plan_register_is_idempotent_and_round_trips(shape: str) -> None:
    before = CONFIGS[shape]
    once = plan_register(before, CCC)
    assert once["mcpServers"]["ccc"] == server_entry(CCC)
    assert plan_register(once, CCC) == once
    assert plan_unregister(once) == before
    moved = plan_register(once, "/new/bin/ccc")
    assert moved["mcpServers"]["ccc"]["command"] == "/new/bin/ccc"
    assert plan_unregister(moved) == before


def test_register_keeps_what_the_user_added_to_our_entry() -> None:
    mine = {"mcpServers": {"ccc": {**server_entry(CCC), "env": {"CCC_CACHE_DIR": "/x"}}}}
    assert plan_register(mine, CCC) == mine


def test_someone_elses_ccc_server_is_never_touched() -> None:
    theirs = {"mcpServers": {"ccc": {"command": "node", "args": ["ccc-server.js"]}}}
    with pytest.raises(McpConfigError, match="not `ccc mcp`"):
        plan_register(theirs, CCC)
    assert plan_unregister(theirs) == theirs
    with pytest.raises(McpConfigError, match="not a JSON object"):
        plan_register({"mcpServers": []}, CCC)


def test_is_our_server() -> None:
    assert is_our_server({"command": "/x/ccc", "args": ["mcp", "--no-header"]})
    for other in (
        {"command": "/x/ccc", "args": ["hook"]},
        {"command": "/x/cccx", "args": ["mcp"]},
        {"command": "/x/ccc"},
        {"url": "http://x"},
        "ccc mcp",
        None,
    ):
        assert not is_our_server(other), other


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k != "mcpServers"),
        st.integers() | st.text(max_size=5),
        max_size=4,
    )
)
def test_round_trip_property(config: dict[str, Any]) -> None:
    assert plan_unregister(plan_register(config, CCC)) == config


def test_user_config_path() -> None:
    env = {"HOME": "/home/u"}
    assert user_config_path(env) == Path("/home/u/.claude.json")
    assert user_config_path({**env, "CLAUDE_CONFIG_DIR": "/c"}) == Path("/c/.claude.json")
    assert user_config_path(env, profile="/p") == Path("/p/.claude.json")
    assert user_config_path(env, settings="/home/u/.claude/settings.json") == Path(
        "/home/u/.claude.json"
    )
    assert user_config_path(env, settings="/cfg/settings.json") == Path("/cfg/.claude.json")


def test_file_register_backup_and_unregister(tmp: Path) -> None:
    path = tmp / ".claude.json"
    text = json.dumps(CONFIGS["claude state"], indent=2) + "\n"
    path.write_text(text)
    first = register(path, CCC)
    assert first.written and first.backup and first.backup.read_text() == text
    assert json.loads(path.read_text())["mcpServers"]["ccc"]["args"] == ["mcp"]
    assert not register(path, CCC).changed
    gone = unregister(path)
    assert gone.written and path.read_text() == text
    assert not unregister(path).changed


def test_a_failing_claude_binary_falls_back_to_the_file(tmp: Path) -> None:
    path = tmp / ".claude.json"
    path.write_text("{}\n")
    result = register(path, CCC, claude="/bin/false")
    assert result.written and "edited" in result.notes[0] and "failed" in result.notes[0]
    assert is_our_server(json.loads(path.read_text())["mcpServers"]["ccc"])
    result = unregister(path, claude="/bin/false")
    assert result.written and json.loads(path.read_text()) == {}


def _ccc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CCC_BIN, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_cli_install_and_uninstall_wire_both_files(tmp: Path) -> None:
    profile = tmp / "profile"
    profile.mkdir()
    claude_json = profile / ".claude.json"
    claude_json.write_text(json.dumps(CONFIGS["other servers"], indent=2) + "\n")
    original = claude_json.read_text()
    # No `claude` on this PATH: the file is edited directly.
    env = {"HOME": str(tmp), "PATH": os.path.dirname(CCC_BIN) + ":/usr/bin:/bin"}
    out = _ccc("install", "--profile", str(profile), env=env)
    assert out.returncode == 0, out.stderr
    assert "registered the MCP server `ccc mcp`" in out.stdout
    entry = json.loads(claude_json.read_text())["mcpServers"]["ccc"]
    assert entry["command"] == CCC_BIN and entry["args"] == ["mcp"]
    again = _ccc("install", "--profile", str(profile), env=env)
    assert "already has `ccc mcp`" in again.stdout
    out = _ccc("uninstall", "--profile", str(profile), env=env)
    assert out.returncode == 0 and "removed the MCP server" in out.stdout
    assert claude_json.read_text() == original
    skipped = _ccc("install", "--profile", str(profile), "--no-mcp", env=env)
    assert skipped.returncode == 0 and "MCP" not in skipped.stdout
    assert claude_json.read_text() == original


def test_cli_install_refuses_someone_elses_ccc(tmp: Path) -> None:
    (tmp / ".claude.json").write_text(json.dumps({"mcpServers": {"ccc": {"command": "x"}}}))
    env = {"HOME": str(tmp), "PATH": os.path.dirname(CCC_BIN) + ":/usr/bin:/bin"}
    out = _ccc("install", "--profile", str(tmp), env=env)
    assert out.returncode == 1 and "--no-mcp" in out.stderr
