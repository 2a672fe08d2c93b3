"""`ccc install` / `ccc uninstall`: wire ccc into a Claude Code settings.json, and unwire it.

Owns the settings edit: the pure planners (:func:`plan_install`, :func:`plan_uninstall`) and
the thin file I/O around them (:func:`install`, :func:`uninstall`): parse, plan, back up, write
atomically.

How our entries are recognised (the "tag"): by command, not by a marker key. Claude Code
validates settings.json against its own schema, and an unknown key inside a hook matcher group
could be stripped or, worse, make the whole file invalid in some release; a command of the form
``<path>/ccc hook`` / ``<path>/ccc statusline [...]`` (any path whose last component is ``ccc``)
is unambiguous and needs nothing Claude Code might reject. So:

- hooks: for each event in :data:`HOOK_EVENTS` we append one matcher group of our own,
  ``{"matcher": "*", "hooks": [{"type": "command", "command": "<ccc> hook", "timeout": 10}]}``
  (``matcher`` only on tool events), after whatever groups the user already has;
- statusLine: added as ``{"type": "command", "command": "<ccc> statusline", "padding": 0}``
  when there is none; an existing command statusLine keeps every key and only its command
  becomes ``<ccc> statusline --wrap '<old command>'`` (shell-quoted), so uninstall can restore
  the old command exactly by unquoting it.

Uninstall removes every hook handler that is ours, then any group, event list or ``hooks``
object that became empty by that removal, and unwraps or removes the statusLine. Install then
uninstall gives back the original JSON, key order included.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

# Every event the session state needs (SPEC §7).
HOOK_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PermissionRequest",
    "Stop",
    "StopFailure",
    "Notification",
    "PreCompact",
    "SessionEnd",
)
# Events whose matcher selects a tool name: "*" = every tool. The others take no matcher.
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PermissionRequest"})

# Seconds Claude Code lets the hook run before giving up on it; `ccc hook` takes a few ms,
# this only bounds the damage if something on the machine is badly wrong.
HOOK_TIMEOUT_S = 10

CCC_NAME = "ccc"


class SettingsError(Exception):
    """The settings file cannot be read or has a shape we will not edit; nothing was written."""


@dataclass
class InstallResult:
    """What :func:`install` / :func:`uninstall` did (or, with ``dry_run``, would do)."""

    path: Path
    changed: bool
    written: bool
    backup: Path | None
    before: dict[str, Any]
    after: dict[str, Any]
    before_text: str
    after_text: str
    notes: list[str] = field(default_factory=list)

    @property
    def diff(self) -> str:
        """A unified diff of the settings file, empty when nothing changes."""
        return "".join(
            difflib.unified_diff(
                self.before_text.splitlines(keepends=True),
                self.after_text.splitlines(keepends=True),
                fromfile=str(self.path),
                tofile=str(self.path) + (" (after)" if not self.written else ""),
            )
        )


# --- recognising our commands -------------------------------------------------------------


def _split(command: Any) -> list[str] | None:
    if not isinstance(command, str):
        return None
    try:
        return shlex.split(command)
    except ValueError:
        return None


def _is_ccc(word: str) -> bool:
    return os.path.basename(word) == CCC_NAME


# What the hooks and the statusLine run instead of pip's console script (issue 19): the
# generated script costs what its pip version puts in it (pip 23 imports `re`: +8 ms on every
# Claude Code event). `python -I -c` skips it (no user site, no PYTHONPATH: the venv's own
# site-packages only); `-m` would load runpy (+6 ms).
LAUNCH_CODE = "import sys;from ccc_statusd.fastcli import main;sys.exit(main())"


@lru_cache(maxsize=8)
def ccc_argv(ccc_path: str) -> tuple[str, ...]:
    """The words that run ``ccc`` in the commands ``ccc install`` writes.

    ``<python> -I -c LAUNCH_CODE`` when ``ccc_path`` is a console script whose interpreter
    imports the send path in isolated mode (checked once, by running it), else ``ccc_path``
    itself (a ``pip install --user``, a wrapper script, a path that does not exist yet).
    """
    python = _script_python(ccc_path)
    if python is None:
        return (ccc_path,)
    try:
        probe = subprocess.run(
            [python, "-I", "-c", "import ccc_statusd.fastcli"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return (ccc_path,)
    return (python, "-I", "-c", LAUNCH_CODE) if probe.returncode == 0 else (ccc_path,)


def _script_python(ccc_path: str) -> str | None:
    """The interpreter of a Python console script (``#!/abs/path/python3``), else None."""
    try:
        with open(ccc_path, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    words = first[2:].decode("utf-8", "replace").split() if first.startswith(b"#!") else []
    if len(words) != 1 or not os.path.isabs(words[0]):
        return None
    return words[0] if os.path.basename(words[0]).startswith("python") else None


def _ccc_args(words: list[str] | None) -> list[str] | None:
    """The arguments after ``<path>/ccc`` or ``<python> -I -c LAUNCH_CODE``; None: not ccc."""
    if not words:
        return None
    if _is_ccc(words[0]):
        return words[1:]
    if words[1:4] == ["-I", "-c", LAUNCH_CODE]:
        return words[4:]
    return None


def is_our_hook_command(command: Any) -> bool:
    """True for ``<path>/ccc hook`` (any path ending in ``ccc``), or the launcher form."""
    return _ccc_args(_split(command)) == ["hook"]


def _our_statusline(command: Any) -> tuple[bool, str | None]:
    """(is it ``<ccc> statusline ...``, the wrapped original command if ``--wrap`` is there)."""
    args = _ccc_args(_split(command))
    if not args or args[0] != "statusline":
        return False, None
    rest = args[1:]
    for i, word in enumerate(rest):
        if word == "--wrap" and i + 1 < len(rest):
            return True, rest[i + 1]
        if word.startswith("--wrap="):
            return True, word[len("--wrap=") :]
    return True, None


def hook_command(ccc_path: str) -> str:
    return shlex.join([*ccc_argv(ccc_path), "hook"])


def statusline_command(ccc_path: str, wrap: str | None = None) -> str:
    base = shlex.join([*ccc_argv(ccc_path), "statusline"])
    return base if wrap is None else f"{base} --wrap {shlex.quote(wrap)}"


def _with_ccc_path(command: str, ccc_path: str) -> str:
    """Our command with its executable replaced by ``ccc_path``, every argument kept."""
    return shlex.join([*ccc_argv(ccc_path), *(_ccc_args(_split(command)) or [])])


# --- pure planners ------------------------------------------------------------------------


def _check_shape(settings: Any) -> None:
    if not isinstance(settings, dict):
        raise SettingsError(
            f"settings must be a JSON object, found {type(settings).__name__}; "
            "fix the file by hand (or move it away) and run this again"
        )
    hooks = settings.get("hooks")
    if hooks is not None and not isinstance(hooks, dict):
        raise SettingsError(
            '"hooks" in the settings is not a JSON object; fix it by hand and run this again'
        )
    for event in HOOK_EVENTS:
        groups = (hooks or {}).get(event)
        if groups is not None and not isinstance(groups, list):
            raise SettingsError(
                f'"hooks.{event}" in the settings is not a list; fix it by hand and run this again'
            )


def _group(event: str, ccc_path: str) -> dict[str, Any]:
    group: dict[str, Any] = {}
    if event in TOOL_EVENTS:
        group["matcher"] = "*"
    group["hooks"] = [
        {"type": "command", "command": hook_command(ccc_path), "timeout": HOOK_TIMEOUT_S}
    ]
    return group


def _our_handlers(groups: list[Any]) -> list[dict[str, Any]]:
    return [
        h
        for g in groups
        if isinstance(g, dict) and isinstance(g.get("hooks"), list)
        for h in g["hooks"]
        if isinstance(h, dict) and is_our_hook_command(h.get("command"))
    ]


def plan_install(settings: dict[str, Any], ccc_path: str) -> dict[str, Any]:
    """The settings with ccc's hooks and statusLine added; ``settings`` is not modified.

    Idempotent: planning on an already-installed result returns it unchanged (an install
    from another ``ccc`` path is repointed at ``ccc_path``). Raises SettingsError for
    shapes we will not edit.
    """
    _check_shape(settings)
    out = copy.deepcopy(settings)
    hooks = out.setdefault("hooks", {})
    for event in HOOK_EVENTS:
        groups = hooks.setdefault(event, [])
        ours = _our_handlers(groups)
        if ours:
            for handler in ours:
                if handler.get("command") != hook_command(ccc_path):
                    handler["command"] = hook_command(ccc_path)
        else:
            groups.append(_group(event, ccc_path))

    status = out.get("statusLine")
    if status is None:
        out["statusLine"] = {
            "type": "command",
            "command": statusline_command(ccc_path),
            "padding": 0,
        }
    elif isinstance(status, dict) and isinstance(status.get("command"), str):
        command = status["command"]
        is_ours, _ = _our_statusline(command)
        if is_ours:
            words = _split(command) or []
            launcher = words[: len(words) - len(_ccc_args(words) or [])]
            if launcher != list(ccc_argv(ccc_path)):
                status["command"] = _with_ccc_path(command, ccc_path)
        else:
            status["command"] = statusline_command(ccc_path, wrap=command)
    # Any other statusLine (not a command) is left alone: see install_notes().
    return out


def plan_uninstall(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings without ccc's hooks and statusLine; ``settings`` is not modified.

    Removes every handler whose command is ``<path>/ccc hook``, then the groups, event lists
    and ``hooks`` object that this left empty; unwraps a wrapped statusLine back to the exact
    original command, or removes a statusLine that is plain ``ccc statusline``.
    """
    _check_shape(settings)
    out = copy.deepcopy(settings)
    hooks = out.get("hooks")
    if isinstance(hooks, dict):
        for event in list(hooks):
            groups = hooks[event]
            if not isinstance(groups, list):
                continue
            kept_groups: list[Any] = []
            removed_any = False
            for group in groups:
                handlers = group.get("hooks") if isinstance(group, dict) else None
                if not isinstance(handlers, list):
                    kept_groups.append(group)
                    continue
                kept = [
                    h
                    for h in handlers
                    if not (isinstance(h, dict) and is_our_hook_command(h.get("command")))
                ]
                if len(kept) == len(handlers):
                    kept_groups.append(group)
                    continue
                removed_any = True
                if kept:
                    group["hooks"] = kept
                    kept_groups.append(group)
            if removed_any:
                if kept_groups:
                    hooks[event] = kept_groups
                else:
                    del hooks[event]
        if not hooks and _had_our_hooks(settings):
            del out["hooks"]

    status = out.get("statusLine")
    if isinstance(status, dict):
        ours, original = _our_statusline(status.get("command"))
        if ours and original is not None:
            status["command"] = original
        elif ours:
            del out["statusLine"]
    return out


def _had_our_hooks(settings: dict[str, Any]) -> bool:
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return False
    return any(isinstance(g, list) and _our_handlers(g) for g in hooks.values())


def install_notes(settings: dict[str, Any]) -> list[str]:
    """Sentences worth telling the user about a settings file before installing into it."""
    status = settings.get("statusLine") if isinstance(settings, dict) else None
    if status is not None and not (
        isinstance(status, dict) and isinstance(status.get("command"), str)
    ):
        return [
            "the existing statusLine is not a command, so it was left as is; "
            "set it to `ccc statusline` by hand to see ccc's status line"
        ]
    return []


# --- file I/O -----------------------------------------------------------------------------


def default_settings_path(
    env: Mapping[str, str] | None = None,
    *,
    profile: str | os.PathLike[str] | None = None,
    settings: str | os.PathLike[str] | None = None,
) -> Path:
    """``--settings PATH``, else ``--profile DIR``/settings.json, else
    ``$CLAUDE_CONFIG_DIR/settings.json``, else ``~/.claude/settings.json``."""
    env = os.environ if env is None else env
    if settings is not None:
        return Path(settings).expanduser()
    if profile is not None:
        return Path(profile).expanduser() / "settings.json"
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"]).expanduser() / "settings.json"
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".claude" / "settings.json"


def find_ccc(argv0: str | None = None) -> str:
    """The absolute path of the ``ccc`` to put in settings: the running console script when
    this process is ``ccc`` (that is the one being installed), else ``ccc`` on PATH.

    Symlinks are kept, not resolved: a ``~/.local/bin/ccc`` symlink into a pipx venv survives
    upgrades, the venv path behind it may not. Raises SettingsError when neither exists.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    if argv0 and os.path.basename(argv0) == CCC_NAME and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    found = shutil.which(CCC_NAME)
    if found:
        return os.path.abspath(found)
    raise SettingsError(
        "cannot find the `ccc` executable on PATH; install the package (pip install ccc-statusd) "
        "or pass the path of ccc explicitly"
    )


def _read(path: Path) -> tuple[dict[str, Any], str, bool]:
    """(settings, file text, existed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, "", False
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"cannot read {path}: {exc}; check the file and its permissions"
        ) from None
    if not text.strip():
        return {}, text, True
    try:
        settings = json.loads(text)
    except ValueError as exc:
        raise SettingsError(
            f"{path} is not valid JSON ({exc}); fix it (Claude Code ignores it as it is) "
            "and run this again — the file was not changed"
        ) from None
    if not isinstance(settings, dict):
        raise SettingsError(
            f"{path} holds a JSON {type(settings).__name__}, not an object; "
            "fix it by hand and run this again — the file was not changed"
        )
    return settings, text, True


def _indent_of(text: str) -> int | str:
    """The indent the file already uses (2 when it has none), so a rewrite keeps its look."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            lead = line[: len(line) - len(stripped)]
            return lead if "\t" in lead else len(lead)
    return 2


def _dump(settings: dict[str, Any], like: str) -> str:
    return json.dumps(settings, indent=_indent_of(like), ensure_ascii=False) + "\n"


def _backup_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    return candidate


def _atomic_write(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _apply(path: Path, planner: Any, *, dry_run: bool, notes: list[str]) -> InstallResult:
    # Write through a symlink (dotfile managers link settings.json), never over it.
    real = Path(os.path.realpath(path))
    before, before_text, existed = _read(real)
    after = planner(before)
    changed = after != before or list(after) != list(before)
    after_text = _dump(after, before_text) if changed else before_text
    result = InstallResult(
        path=path,
        changed=changed,
        written=False,
        backup=None,
        before=before,
        after=after,
        before_text=before_text,
        after_text=after_text,
        notes=notes,
    )
    if not changed or dry_run:
        return result
    try:
        mode = 0o600
        if existed:
            mode = real.stat().st_mode & 0o777
            result.backup = _backup_path(real)
            shutil.copy2(real, result.backup)
        else:
            real.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(real, after_text, mode)
    except OSError as exc:
        raise SettingsError(
            f"cannot write {path}: {exc}; check the directory's permissions and run this again"
        ) from None
    result.written = True
    return result


def install(path: str | os.PathLike[str], ccc_path: str, *, dry_run: bool = False) -> InstallResult:
    """Add ccc's hooks and statusLine to the settings file at ``path`` (created if missing),
    after a timestamped backup (``settings.json.bak-YYYYmmdd-HHMMSS``). Nothing is written
    when nothing changes or with ``dry_run``. Raises SettingsError (file untouched)."""
    path = Path(path)
    ccc_path = os.path.abspath(ccc_path)
    notes: list[str] = []

    def planner(settings: dict[str, Any]) -> dict[str, Any]:
        notes.extend(install_notes(settings))
        return plan_install(settings, ccc_path)

    return _apply(path, planner, dry_run=dry_run, notes=notes)


def uninstall(path: str | os.PathLike[str], *, dry_run: bool = False) -> InstallResult:
    """Remove exactly what :func:`install` added (restoring a wrapped statusLine), after a
    timestamped backup; a missing file or one without ccc entries is left alone.
    Raises SettingsError (file untouched)."""
    path = Path(path)
    notes = [] if os.path.lexists(path) else [f"{path} does not exist: nothing to uninstall"]
    return _apply(path, plan_uninstall, dry_run=dry_run, notes=notes)
