"""`ccc install` / `ccc uninstall`, the MCP part: register `ccc mcp` with Claude Code for the user.

Claude Code reads user-scope MCP servers from ``mcpServers`` in its user config,
``$CLAUDE_CONFIG_DIR/.claude.json`` or ``~/.claude.json`` (not settings.json). Two ways to write
it, in this order:

- ``claude mcp add -s user ccc -- <ccc> mcp`` when the ``claude`` binary is on PATH: Claude Code
  owns that file and rewrites it often, so its own command is the safest writer (we still keep a
  timestamped backup first, and fall back to editing the file if the command fails);
- else edit the file ourselves with the rules of :mod:`ccc_statusd.install` (parse, plan,
  backup, atomic write through symlinks, same indent, idempotent).

The "tag", as for hooks, is the command: an ``mcpServers.ccc`` entry whose command is a path
ending in ``ccc`` and whose first argument is ``mcp`` is ours. An entry named ``ccc`` that is
something else is never touched (install refuses with a message). Uninstall removes exactly our
entry, and ``mcpServers`` if that left it empty.
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .install import InstallResult, SettingsError, _apply, _backup_path, _read

SERVER_NAME = "ccc"
# `claude mcp add` is a local file edit; if it takes longer something is wrong (a hung update
# check, a login prompt): fall back to editing the file ourselves.
CLAUDE_CLI_TIMEOUT_S = 30.0


class McpConfigError(SettingsError):
    """The user config cannot be read or has a shape we will not edit; nothing was written."""


def user_config_path(
    env: Mapping[str, str] | None = None,
    *,
    profile: str | os.PathLike[str] | None = None,
    settings: str | os.PathLike[str] | None = None,
) -> Path:
    """Where Claude Code keeps user-scope MCP servers for the config dir being installed into:
    ``--profile DIR`` → ``DIR/.claude.json``; ``--settings PATH`` → ``.claude.json`` next to it
    (``~/.claude.json`` when PATH is in ``~/.claude``); else ``$CLAUDE_CONFIG_DIR/.claude.json``;
    else ``~/.claude.json``."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if profile is not None:
        return Path(profile).expanduser() / ".claude.json"
    if settings is not None:
        parent = Path(settings).expanduser().absolute().parent
        return home / ".claude.json" if parent == home / ".claude" else parent / ".claude.json"
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"]).expanduser() / ".claude.json"
    return home / ".claude.json"


def server_entry(ccc_path: str) -> dict[str, Any]:
    return {"type": "stdio", "command": ccc_path, "args": ["mcp"], "env": {}}


def is_our_server(entry: Any) -> bool:
    """True for ``{"command": "<path>/ccc", "args": ["mcp", ...]}``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
        return False
    args = entry.get("args")
    return (
        os.path.basename(entry["command"]) == SERVER_NAME
        and isinstance(args, list)
        and bool(args)
        and args[0] == "mcp"
    )


def _servers(config: dict[str, Any]) -> dict[str, Any] | None:
    servers = config.get("mcpServers")
    if servers is not None and not isinstance(servers, dict):
        raise McpConfigError(
            '"mcpServers" in the Claude config is not a JSON object; fix it by hand and run '
            "this again (or pass --no-mcp)"
        )
    return servers


def plan_register(config: dict[str, Any], ccc_path: str) -> dict[str, Any]:
    """The config with ``mcpServers.ccc`` = ``<ccc> mcp``; idempotent; an entry of ours from
    another ccc path is repointed. Raises McpConfigError when ``ccc`` is someone else's."""
    servers = _servers(config)
    existing = (servers or {}).get(SERVER_NAME)
    if existing is not None and not is_our_server(existing):
        raise McpConfigError(
            f'an MCP server named "{SERVER_NAME}" that is not `ccc mcp` is already configured; '
            "rename or remove it (claude mcp remove -s user ccc), or pass --no-mcp"
        )
    out = copy.deepcopy(config)
    entries = out.setdefault("mcpServers", {})
    if existing is not None and existing.get("command") == ccc_path:
        return out  # ours, same path: keep every key the user added (env, timeout)
    entries[SERVER_NAME] = server_entry(ccc_path)
    return out


def plan_unregister(config: dict[str, Any]) -> dict[str, Any]:
    """The config without our ``mcpServers.ccc`` (and without ``mcpServers`` if that emptied
    it); anything else, including a ``ccc`` entry that is not ours, is kept."""
    servers = _servers(config)
    if not servers or not is_our_server(servers.get(SERVER_NAME)):
        return copy.deepcopy(config)
    out = copy.deepcopy(config)
    del out["mcpServers"][SERVER_NAME]
    if not out["mcpServers"]:
        del out["mcpServers"]
    return out


def _claude_env(config_path: Path, env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if config_path.parent == home:
        out.pop("CLAUDE_CONFIG_DIR", None)
    else:
        out["CLAUDE_CONFIG_DIR"] = str(config_path.parent)
    return out


def _run_claude(argv: list[str], config_path: Path, env: Mapping[str, str]) -> str | None:
    """Run ``claude mcp ...``; None on success, else why it failed (one line)."""
    try:
        proc = subprocess.run(
            argv,
            env=_claude_env(config_path, env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLAUDE_CLI_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        return f"exit {proc.returncode}: {lines[-1] if lines else 'no output'}"
    return None


def register(
    config_path: str | os.PathLike[str],
    ccc_path: str,
    *,
    claude: str | None = None,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
) -> InstallResult:
    """Register ``<ccc_path> mcp`` as the user-scope MCP server ``ccc`` (see the module
    docstring). ``claude``: the Claude Code binary to use, None = edit the file. Raises
    McpConfigError (file untouched)."""
    path = Path(config_path)
    ccc_path = os.path.abspath(ccc_path)
    env = os.environ if env is None else env
    notes: list[str] = []
    if claude is None or dry_run:
        return _apply(path, lambda c: plan_register(c, ccc_path), dry_run=dry_run, notes=notes)
    real = Path(os.path.realpath(path))
    before, before_text, existed = _read(real)
    after = plan_register(before, ccc_path)  # raises for someone else's "ccc"
    if after == before:
        return InstallResult(path, False, False, None, before, after, before_text, before_text)
    backup = None
    if existed:
        backup = _backup_path(real)
        shutil.copy2(real, backup)
    failed = None
    if is_our_server((_servers(before) or {}).get(SERVER_NAME)):
        failed = _run_claude([claude, "mcp", "remove", "-s", "user", SERVER_NAME], path, env)
    if failed is None:
        failed = _run_claude(
            [claude, "mcp", "add", "-s", "user", SERVER_NAME, "--", ccc_path, "mcp"], path, env
        )
    if failed is None:
        now, now_text, _ = _read(real)
        if is_our_server((_servers(now) or {}).get(SERVER_NAME)):
            return InstallResult(path, True, True, backup, before, now, before_text, now_text)
        failed = f"it did not write {path}"
    notes.append(
        f"`{shlex.join([claude, 'mcp', 'add', '-s', 'user', SERVER_NAME])} ...` failed "
        f"({failed}); edited {path} directly instead"
    )
    result = _apply(path, lambda c: plan_register(c, ccc_path), dry_run=False, notes=notes)
    result.backup = result.backup or backup
    return result


def unregister(
    config_path: str | os.PathLike[str],
    *,
    claude: str | None = None,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
) -> InstallResult:
    """Remove exactly what :func:`register` added (``claude mcp remove -s user ccc`` when
    ``claude`` is given, else a file edit). A missing file or one without our entry is left
    alone. Raises McpConfigError (file untouched)."""
    path = Path(config_path)
    env = os.environ if env is None else env
    notes: list[str] = []
    if claude is None or dry_run:
        return _apply(path, plan_unregister, dry_run=dry_run, notes=notes)
    real = Path(os.path.realpath(path))
    before, before_text, existed = _read(real)
    after = plan_unregister(before)
    if after == before:
        return InstallResult(path, False, False, None, before, after, before_text, before_text)
    backup = _backup_path(real)
    shutil.copy2(real, backup)
    failed = _run_claude([claude, "mcp", "remove", "-s", "user", SERVER_NAME], path, env)
    if failed is None:
        now, now_text, _ = _read(real)
        if not is_our_server((_servers(now) or {}).get(SERVER_NAME)):
            return InstallResult(path, True, True, backup, before, now, before_text, now_text)
        failed = f"our entry is still in {path}"
    notes.append(
        f"`claude mcp remove -s user {SERVER_NAME}` failed ({failed}); edited {path} directly"
    )
    result = _apply(path, plan_unregister, dry_run=False, notes=notes)
    result.backup = result.backup or backup
    return result


def find_claude() -> str | None:
    """The ``claude`` binary on PATH, if any."""
    return shutil.which("claude")


__all__ = [
    "McpConfigError",
    "find_claude",
    "is_our_server",
    "plan_register",
    "plan_unregister",
    "register",
    "server_entry",
    "unregister",
    "user_config_path",
]
