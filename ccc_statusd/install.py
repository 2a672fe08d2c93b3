"""`ccc install` / `ccc uninstall`: wire ccc into a Claude Code settings.json, and unwire it.

Owns the settings edit: the pure planners (:func:`plan_install`, :func:`plan_uninstall`) and
the thin file I/O around them (:func:`install`, :func:`uninstall`): parse, plan, back up, write
atomically.

How our entries are recognised (the "tag"): every command ``ccc install`` writes ends in the
shell comment :data:`INSTALL_TAG` (``# ccc-install``). Claude Code runs each hook and statusLine
as ``/bin/sh -c "<command>"``, so the comment costs nothing, and unlike a marker key it cannot be
rejected by Claude Code's settings schema. Only tagged entries are ours: another tool's hook
whose command merely ends in ``ccc hook``, or the user's own ``ccc statusline --format …``, is
never re-pointed, unwrapped or removed. So:

- hooks: for each event in :data:`HOOK_EVENTS` we append one matcher group of our own,
  ``{"matcher": "*", "hooks": [{"type": "command", "command": "<ccc> hook # ccc-install",
  "timeout": 10}]}`` (``matcher`` only on tool events), after whatever groups the user has;
- statusLine: added as ``{"type": "command", "command": "<ccc> statusline # ccc-install",
  "padding": 0}`` when there is none; an existing command statusLine keeps every key and only
  its command becomes ``<ccc> statusline --wrap '<old command>' # ccc-install`` (shell-quoted),
  so uninstall can restore the old command exactly by unquoting it. An untagged statusLine that
  already runs ``ccc statusline`` is the user's own: left as is (a note says so).

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
import stat
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

# Ends every command ccc install writes: a shell comment, so /bin/sh -c ignores it.
INSTALL_TAG = "# ccc-install"


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


def _untagged(command: Any) -> str | None:
    """The command without its :data:`INSTALL_TAG`, or None when it does not carry the tag."""
    suffix = " " + INSTALL_TAG
    if isinstance(command, str) and command.endswith(suffix):
        return command[: -len(suffix)]
    return None


def _tag(command: str) -> str:
    return f"{command} {INSTALL_TAG}"


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


def is_ccc_hook_command(command: Any) -> bool:
    """True for ``<path>/ccc hook`` (any path ending in ``ccc``) or the launcher form, tagged
    or not."""
    base = _untagged(command)
    return _ccc_args(_split(command if base is None else base)) == ["hook"]


def is_our_hook_command(command: Any) -> bool:
    """True only for a hook command ccc install wrote (tagged ``# ccc-install``)."""
    return _untagged(command) is not None and is_ccc_hook_command(command)


def _parse_statusline(command: Any) -> tuple[bool, str | None]:
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


def _our_statusline(command: Any) -> tuple[bool, str | None]:
    """As :func:`_parse_statusline`, but only for a tagged command (one ccc install wrote)."""
    base = _untagged(command)
    return (False, None) if base is None else _parse_statusline(base)


def hook_command(ccc_path: str) -> str:
    return _tag(shlex.join([*ccc_argv(ccc_path), "hook"]))


# statusLine.refreshInterval (seconds): Claude Code ≥ 2.1.97 re-runs the statusLine this often
# on top of its events, so the busy/waiting counts do not go stale between turns (older
# releases ignore the key). Added with our statusLine; on a wrapped one only when the user had
# none, and then the command says so (REFRESH_TAG), so uninstall removes exactly what we added.
REFRESH_INTERVAL_S = 5
REFRESH_TAG = "--added-refresh-interval"


def statusline_command(ccc_path: str, wrap: str | None = None) -> str:
    base = shlex.join([*ccc_argv(ccc_path), "statusline"])
    return _tag(base if wrap is None else f"{base} --wrap {shlex.quote(wrap)}")


def _with_ccc_path(command: str, ccc_path: str) -> str:
    """Our (tagged) command with its launcher replaced by ``ccc_path``'s, arguments kept."""
    words = _split(_untagged(command) or "") or []
    return _tag(shlex.join([*ccc_argv(ccc_path), *(_ccc_args(words) or [])]))


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


def _legacy_handlers(groups: list[Any], ccc_path: str) -> list[dict[str, Any]]:
    """Hooks an earlier ``ccc install`` wrote before entries were tagged: exactly
    ``<this ccc path> hook``. They are ours (adopted and tagged), so upgrading never runs the
    hook twice; any other untagged ``ccc hook`` stays someone else's."""
    legacy = f"{shlex.quote(ccc_path)} hook"
    return [
        h
        for g in groups
        if isinstance(g, dict) and isinstance(g.get("hooks"), list)
        for h in g["hooks"]
        if isinstance(h, dict) and h.get("command") == legacy
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
        ours = _our_handlers(groups) or _legacy_handlers(groups, ccc_path)
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
            "refreshInterval": REFRESH_INTERVAL_S,
        }
    elif isinstance(status, dict) and isinstance(status.get("command"), str):
        command = status["command"]
        is_ours, _ = _our_statusline(command)
        if is_ours:
            if command != _with_ccc_path(command, ccc_path):
                status["command"] = _with_ccc_path(command, ccc_path)
        elif not _parse_statusline(command)[0]:
            status["command"] = statusline_command(ccc_path, wrap=command)
            if "refreshInterval" not in status:
                status["refreshInterval"] = REFRESH_INTERVAL_S
                # Before the tag, which must stay last (a shell comment, and how uninstall
                # recognises the command).
                status["command"] = _tag(f"{_untagged(status['command'])} {REFRESH_TAG}")
        # else: the user's own `ccc statusline ...` (untagged): left as is, see install_notes().
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
            if REFRESH_TAG in (_split(status.get("command")) or []):
                status.pop("refreshInterval", None)
            status["command"] = original
        elif ours:
            del out["statusLine"]
    return out


def _had_our_hooks(settings: dict[str, Any]) -> bool:
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return False
    return any(isinstance(g, list) and _our_handlers(g) for g in hooks.values())


def _untagged_ccc_hooks(settings: dict[str, Any]) -> list[str]:
    hooks = settings.get("hooks") if isinstance(settings, dict) else None
    found: list[str] = []
    for groups in (hooks or {}).values() if isinstance(hooks, dict) else ():
        for g in groups if isinstance(groups, list) else ():
            for h in g.get("hooks") or [] if isinstance(g, dict) else ():
                command = h.get("command") if isinstance(h, dict) else None
                if is_ccc_hook_command(command) and not is_our_hook_command(command):
                    found.append(str(command))
    return found


def install_notes(settings: dict[str, Any]) -> list[str]:
    """Sentences worth telling the user about a settings file before (un)installing."""
    notes: list[str] = []
    status = settings.get("statusLine") if isinstance(settings, dict) else None
    if status is not None and not (
        isinstance(status, dict) and isinstance(status.get("command"), str)
    ):
        notes.append(
            "the existing statusLine is not a command, so it was left as is; "
            "set it to `ccc statusline` by hand to see ccc's status line"
        )
    elif isinstance(status, dict):
        command = status.get("command")
        if _parse_statusline(command)[0] and not _our_statusline(command)[0]:
            notes.append(
                f"the statusLine already runs {command!r}, which ccc install did not write; "
                "it was left as is"
            )
    untagged = _untagged_ccc_hooks(settings)
    if untagged:
        notes.append(
            f"{len(untagged)} hook(s) run {untagged[0]!r} without ccc install's "
            f"{INSTALL_TAG!r} tag (another tool, an older ccc, or your own): left as they are; "
            "remove them by hand if they duplicate ccc's"
        )
    return notes


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


# settings.json is a few KiB; a file this large is not one we will rewrite.
MAX_SETTINGS_BYTES = 16 * 1024 * 1024


def _no_duplicate_keys(path: Path) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise SettingsError(
                    f"{path} has the key {key!r} twice in one object; JSON keeps only the last, "
                    "so one of them is silently ignored. Merge them by hand and run this again "
                    "— the file was not changed"
                )
            out[key] = value
        return out

    return hook


def _read(path: Path) -> tuple[dict[str, Any], str, bool]:
    """(settings, file text, existed). Read without blocking and bounded (safeio)."""
    from .safeio import read_bounded

    try:
        text = read_bounded(path, MAX_SETTINGS_BYTES).decode("utf-8")
    except FileNotFoundError:
        return {}, "", False
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"cannot read {path}: {exc}; check the file and its permissions"
        ) from None
    if not text.strip():
        return {}, text, True
    try:
        settings = json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
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


def _backup_path(path: Path, now: float | None = None) -> Path:
    """One backup per day: ``settings.json.bak-YYYYmmdd`` (the first change of the day keeps
    the state the day started with; later changes that day do not pile up copies)."""
    stamp = time.strftime("%Y%m%d", time.localtime(now))
    return path.with_name(f"{path.name}.bak-{stamp}")


def _write_backup(backup: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to a new file ``backup``; False when today's backup already exists.

    ``O_EXCL | O_NOFOLLOW``: never written through a symlink squatting on the name (refused
    with SettingsError), never over another file."""
    try:
        st = os.lstat(backup)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISREG(st.st_mode):
            return False  # today's backup is there: it holds the older state, keep it
        raise SettingsError(
            f"{backup} (where the backup goes) exists and is not a regular file (a symlink or "
            f"other object that ccc did not make); move it away and run this again — the "
            "settings were not changed"
        )
    try:
        fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o666)
    except FileExistsError:
        raise SettingsError(f"{backup} appeared while writing the backup; run this again") from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(backup)
        except OSError:
            pass
        raise
    os.close(fd)
    return True


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
    # Write through a symlink (dotfile managers link settings.json), never over it; a dangling
    # one is refused: following it would create files (and directories) wherever it points.
    if os.path.islink(path) and not os.path.exists(path):
        raise SettingsError(
            f"{path} is a symbolic link to {os.readlink(path)}, which does not exist; "
            "create the target or remove the link, then run this again — nothing was written"
        )
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
            if not _write_backup(result.backup, before_text.encode("utf-8"), mode):
                notes.append(f"today's backup {result.backup} was kept (it is the older state)")
        else:
            real.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(real, after_text, mode)
    except OSError as exc:
        from .oserrors import describe_os_error

        raise SettingsError(
            f"cannot write {path}: {describe_os_error(exc)}; check the directory's permissions "
            "and run this again"
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

    def planner(settings: dict[str, Any]) -> dict[str, Any]:
        notes.extend(n for n in install_notes(settings) if "hook(s)" in n)
        return plan_uninstall(settings)

    return _apply(path, planner, dry_run=dry_run, notes=notes)
