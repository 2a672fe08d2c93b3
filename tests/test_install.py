"""`ccc install` / `ccc uninstall` against settings files of every shape users have."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccc_statusd.install import (
    HOOK_EVENTS,
    SettingsError,
    default_settings_path,
    find_ccc,
    hook_command,
    install,
    is_our_hook_command,
    plan_install,
    plan_uninstall,
    uninstall,
)

from .helpers import short_tmpdir

CCC = "/opt/ccc venv/bin/ccc"  # a space, so quoting is exercised everywhere
HOOK_CMD = "'/opt/ccc venv/bin/ccc' hook # ccc-install"
STATUS_CMD = "'/opt/ccc venv/bin/ccc' statusline"
TAG = " # ccc-install"

SHAPES: dict[str, dict[str, Any]] = {
    "empty": {},
    "other settings": {"model": "opus", "env": {"A": "1"}, "permissions": {"allow": ["Bash(ls)"]}},
    "other hooks": {
        "hooks": {
            "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
            "PreToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}
            ],
            "SubagentStop": [{"hooks": [{"type": "command", "command": "x"}]}],
        },
        "theme": "dark",
    },
    "existing statusLine": {
        "statusLine": {
            "type": "command",
            "command": "bunx ccusage statusline --visual-burn-rate 'emoji'",
            "padding": 2,
            "refreshInterval": 5,
        },
        "model": "sonnet",
    },
    "non-command statusLine": {"statusLine": {"type": "static", "text": "hi"}},
}


@pytest.fixture
def tmp() -> Iterator[Path]:
    d = short_tmpdir("ccc-inst-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def our_groups(settings: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [
        g
        for g in settings["hooks"][event]
        if any(is_our_hook_command(h.get("command")) for h in g["hooks"])
    ]


# --- the pure planners ------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_plan_install_adds_every_event_and_keeps_everything(shape: str) -> None:
    before = SHAPES[shape]
    frozen = json.dumps(before)
    after = plan_install(before, CCC)
    assert json.dumps(before) == frozen, "the input must not be modified"
    for event in HOOK_EVENTS:
        (group,) = our_groups(after, event)
        expected = {"hooks": [{"type": "command", "command": HOOK_CMD, "timeout": 10}]}
        if event in ("PreToolUse", "PostToolUse", "PermissionRequest"):
            expected = {"matcher": "*", **expected}
        assert group == expected
        assert list(group) == list(expected), "key order as Claude Code writes it"
    # Existing hook groups stay, first, untouched.
    for event, groups in before.get("hooks", {}).items():
        assert after["hooks"][event][: len(groups)] == groups
    # Every other key is kept, in order, and new keys come last.
    assert list(after)[: len(before)] == list(before)
    for key, value in before.items():
        if key not in ("hooks", "statusLine"):
            assert after[key] == value


def test_plan_install_statusline_new() -> None:
    after = plan_install({}, CCC)
    assert after["statusLine"] == {
        "type": "command",
        "command": STATUS_CMD + TAG,
        "padding": 0,
        "refreshInterval": 5,
    }
    assert plan_uninstall(after) == {}


def test_wrapping_adds_refresh_interval_only_when_missing_and_uninstall_removes_it() -> None:
    before = {"statusLine": {"type": "command", "command": "my-line --x", "padding": 1}}
    after = plan_install(before, CCC)
    status = after["statusLine"]
    assert status["refreshInterval"] == 5
    assert shlex.split(status["command"])[:4] == [CCC, "statusline", "--wrap", "my-line --x"]
    assert plan_install(after, CCC) == after
    assert json.dumps(plan_uninstall(after)) == json.dumps(before)
    # The user's own refreshInterval is theirs: kept on install, kept on uninstall.
    own = {"statusLine": {"type": "command", "command": "x", "refreshInterval": 30}}
    assert plan_install(own, CCC)["statusLine"]["refreshInterval"] == 30
    assert plan_uninstall(plan_install(own, CCC)) == own


def test_plan_install_wraps_existing_statusline() -> None:
    before = SHAPES["existing statusLine"]
    after = plan_install(before, CCC)
    status = after["statusLine"]
    original = before["statusLine"]["command"]
    assert status["command"] == f"{STATUS_CMD} --wrap {shlex.quote(original)}{TAG}"
    assert shlex.split(status["command"], comments=True)[-1] == original
    assert {k: v for k, v in status.items() if k != "command"} == {
        "type": "command",
        "padding": 2,
        "refreshInterval": 5,
    }
    assert list(status) == list(before["statusLine"])


def test_plan_install_leaves_non_command_statusline() -> None:
    after = plan_install(SHAPES["non-command statusLine"], CCC)
    assert after["statusLine"] == {"type": "static", "text": "hi"}


@pytest.mark.parametrize("shape", SHAPES)
def test_install_is_idempotent_and_uninstall_round_trips(shape: str) -> None:
    before = SHAPES[shape]
    once = plan_install(before, CCC)
    assert plan_install(once, CCC) == once
    back = plan_uninstall(once)
    assert back == before
    assert json.dumps(back) == json.dumps(before), "key order restored"
    assert plan_uninstall(back) == before


def test_reinstall_from_a_moved_ccc_repoints_without_duplicates() -> None:
    once = plan_install(SHAPES["existing statusLine"], "/old/bin/ccc")
    moved = plan_install(once, CCC)
    for event in HOOK_EVENTS:
        (group,) = our_groups(moved, event)
        assert group["hooks"][0]["command"] == HOOK_CMD
    assert moved["statusLine"]["command"].startswith(STATUS_CMD + " --wrap ")
    assert plan_uninstall(moved) == SHAPES["existing statusLine"]


def test_uninstall_keeps_user_hooks_sharing_a_group_with_ours() -> None:
    settings = {
        "hooks": {
            "Stop": [
                {
                    "hooks": [
                        {"type": "command", "command": "mine.sh"},
                        {"type": "command", "command": "/usr/bin/ccc hook" + TAG},
                    ]
                }
            ]
        }
    }
    assert plan_uninstall(settings) == {
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "mine.sh"}]}]}
    }


def test_only_ccc_hook_commands_are_ours() -> None:
    assert is_our_hook_command("/usr/local/bin/ccc hook" + TAG)
    assert is_our_hook_command("'/a b/ccc' hook" + TAG)
    assert is_our_hook_command("ccc hook" + TAG)
    # Untagged: another tool's `.../ccc hook`, an older install, the user's own: never ours.
    assert not is_our_hook_command("/usr/local/bin/ccc hook")
    assert not is_our_hook_command("/opt/othertool/bin/ccc hook")
    assert not is_our_hook_command("/usr/bin/ccc-hook" + TAG)
    assert not is_our_hook_command("/usr/bin/ccc hook --other" + TAG)
    assert not is_our_hook_command("myccc hook" + TAG)
    assert not is_our_hook_command("echo ccc hook" + TAG)
    assert not is_our_hook_command("'unterminated" + TAG)
    assert not is_our_hook_command(None)


@pytest.mark.parametrize(
    "bad",
    [[], "string", {"hooks": []}, {"hooks": {"Stop": {"hooks": []}}}],
)
def test_planners_refuse_shapes_they_cannot_edit(bad: Any) -> None:
    with pytest.raises(SettingsError):
        plan_install(bad, CCC)
    with pytest.raises(SettingsError):
        plan_uninstall(bad)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_handler = st.fixed_dictionaries({"type": st.just("command"), "command": st.text(max_size=12)})
_group = st.fixed_dictionaries(
    {"hooks": st.lists(_handler, max_size=2)}, optional={"matcher": st.text(max_size=4)}
)
_settings = st.fixed_dictionaries(
    {},
    optional={
        "hooks": st.dictionaries(
            st.sampled_from([*HOOK_EVENTS, "SubagentStop"]),
            st.lists(_group, min_size=1, max_size=2),
            min_size=1,
        ),
        "statusLine": st.fixed_dictionaries(
            {"type": st.just("command"), "command": st.text(min_size=1, max_size=20)},
            optional={"padding": st.integers(0, 3), "refreshInterval": st.integers(1, 60)},
        ),
        "model": _json,
        "env": st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    },
)


@given(_settings)
def test_round_trip_property(settings: dict[str, Any]) -> None:
    # Settings that already contain ccc entries are not an "original"; skip them.
    text = json.dumps(settings)
    if "ccc" in text:
        return
    once = plan_install(settings, CCC)
    assert plan_install(once, CCC) == once
    back = plan_uninstall(once)
    assert json.dumps(back) == text


# --- file I/O ---------------------------------------------------------------------------


def _write(path: Path, obj: Any, indent: int | None = 2) -> str:
    text = json.dumps(obj, indent=indent) + "\n"
    path.write_text(text)
    return text


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".bak-*"))


def test_install_creates_missing_file(tmp: Path) -> None:
    path = tmp / "config" / "settings.json"
    result = install(path, CCC)
    assert result.written and result.changed and result.backup is None
    settings = json.loads(path.read_text())
    assert settings == plan_install({}, CCC)
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("shape", SHAPES)
def test_install_twice_then_uninstall_round_trip(tmp: Path, shape: str) -> None:
    path = tmp / "settings.json"
    original_text = _write(path, SHAPES[shape])
    os.chmod(path, 0o640)

    first = install(path, CCC)
    assert first.written and first.backup is not None
    assert first.backup.read_text() == original_text
    assert first.backup.name.startswith("settings.json.bak-")
    installed_text = path.read_text()
    assert (path.stat().st_mode & 0o777) == 0o640, "the file keeps its mode"

    second = install(path, CCC)
    assert not second.changed and not second.written and second.backup is None
    assert path.read_text() == installed_text
    assert second.diff == ""

    removed = uninstall(path)
    assert removed.written and removed.backup == first.backup
    assert path.read_text() == original_text, "byte for byte, since it was written with indent 2"
    assert len(_backups(path)) == 1, "one backup per day, holding the state the day began with"
    assert first.backup.read_text() == original_text

    again = uninstall(path)
    assert not again.changed and not again.written


def test_round_trip_keeps_the_files_indent(tmp: Path) -> None:
    path = tmp / "settings.json"
    original_text = _write(path, SHAPES["other hooks"], indent=4)
    install(path, CCC)
    assert '\n    "hooks"' in path.read_text()
    uninstall(path)
    assert path.read_text() == original_text


def test_print_writes_nothing(tmp: Path) -> None:
    path = tmp / "settings.json"
    original_text = _write(path, SHAPES["existing statusLine"])
    result = install(path, CCC, dry_run=True)
    assert result.changed and not result.written and result.backup is None
    assert path.read_text() == original_text
    assert _backups(path) == []
    assert (
        "+" in result.diff and "--wrap" in result.diff and "ccc venv/bin/ccc' hook" in result.diff
    )
    assert result.after == plan_install(SHAPES["existing statusLine"], CCC)

    missing = tmp / "none" / "settings.json"
    assert install(missing, CCC, dry_run=True).changed
    assert not missing.exists() and not missing.parent.exists()


@pytest.mark.parametrize(
    "text",
    ['{"hooks": {', "[1, 2]", '{"a": 1,}', "\ufeff{ nope", '{"hooks": []}'],
)
def test_bad_settings_leave_file_untouched(tmp: Path, text: str) -> None:
    path = tmp / "settings.json"
    path.write_text(text)
    for action in (lambda: install(path, CCC), lambda: uninstall(path)):
        with pytest.raises(SettingsError) as info:
            action()
        message = str(info.value)
        assert str(path) in message or "hooks" in message
        assert path.read_text() == text
    assert _backups(path) == []


def test_invalid_json_error_names_the_problem(tmp: Path) -> None:
    path = tmp / "settings.json"
    path.write_text('{"model": "opus",\n "x": }')
    with pytest.raises(SettingsError, match=r"is not valid JSON \(.*line 2.*\).*not changed"):
        install(path, CCC)


def test_empty_file_counts_as_empty_settings(tmp: Path) -> None:
    path = tmp / "settings.json"
    path.write_text("")
    assert install(path, CCC).written
    assert json.loads(path.read_text()) == plan_install({}, CCC)


def test_install_writes_through_a_symlink(tmp: Path) -> None:
    real = tmp / "dotfiles" / "claude-settings.json"
    real.parent.mkdir()
    original_text = _write(real, {"model": "opus"})
    link = tmp / "settings.json"
    link.symlink_to(real)
    install(link, CCC)
    assert link.is_symlink(), "a dotfile manager's symlink survives"
    assert "statusLine" in json.loads(real.read_text())
    uninstall(link)
    assert real.read_text() == original_text


def test_uninstall_missing_file_is_a_no_op(tmp: Path) -> None:
    result = uninstall(tmp / "settings.json")
    assert not result.changed and not (tmp / "settings.json").exists()
    assert result.notes


def test_non_command_statusline_is_reported(tmp: Path) -> None:
    path = tmp / "settings.json"
    _write(path, SHAPES["non-command statusLine"])
    result = install(path, CCC)
    assert any("statusLine" in note for note in result.notes)


def test_default_settings_path(tmp: Path) -> None:
    assert default_settings_path({"HOME": "/h"}) == Path("/h/.claude/settings.json")
    env = {"HOME": "/h", "CLAUDE_CONFIG_DIR": "/cfg"}
    assert default_settings_path(env) == Path("/cfg/settings.json")
    assert default_settings_path(env, profile="/p") == Path("/p/settings.json")
    assert default_settings_path(env, settings="/s.json") == Path("/s.json")


def test_find_ccc(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp / "bin" / "ccc"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert find_ccc(str(script)) == str(script)
    monkeypatch.setenv("PATH", str(script.parent))
    assert find_ccc("/usr/bin/python3") == str(script)
    monkeypatch.setenv("PATH", str(tmp / "nowhere"))
    with pytest.raises(SettingsError, match="cannot find"):
        find_ccc("/usr/bin/python3")


# --- hostile settings (issue 14 item 16) ----------------------------------------------------

OTHER_TOOL = {"type": "command", "command": "/opt/othertool/bin/ccc hook"}
USER_STATUS = {
    "type": "command",
    "command": "ccc statusline --format '{model} {branch}'",
    "padding": 1,
    "refreshInterval": 3,
}


def test_untagged_entries_are_never_touched() -> None:
    """Another tool's hook whose command merely ends in ``ccc hook`` and the user's own
    ``ccc statusline --format …`` were re-pointed by install and removed by uninstall."""
    before = {
        "hooks": {"Stop": [{"hooks": [OTHER_TOOL]}]},
        "statusLine": USER_STATUS,
    }
    after = plan_install(before, CCC)
    assert after["hooks"]["Stop"][0] == {"hooks": [OTHER_TOOL]}, "not re-pointed"
    assert our_groups(after, "Stop"), "ours added beside it"
    assert after["statusLine"] == USER_STATUS, "the user's own ccc statusline is kept as is"
    assert plan_uninstall(after) == before
    assert plan_uninstall(before) == before, "nothing of theirs is removed"


def test_install_notes_name_the_untagged_entries(tmp: Path) -> None:
    path = tmp / "settings.json"
    _write(path, {"hooks": {"Stop": [{"hooks": [OTHER_TOOL]}]}, "statusLine": USER_STATUS})
    notes = install(path, CCC).notes
    assert any("othertool" in n and "left as they are" in n for n in notes), notes
    assert any("statusLine already runs" in n for n in notes), notes


def test_backup_name_squatted_by_a_symlink_is_refused(tmp: Path) -> None:
    path = tmp / "settings.json"
    text = _write(path, {"model": "x"})
    victim = tmp / "victim"
    victim.write_text("precious")
    squat = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d')}")
    squat.symlink_to(victim)
    with pytest.raises(SettingsError, match="not a regular file"):
        install(path, CCC)
    assert victim.read_text() == "precious"
    assert path.read_text() == text, "nothing written"


def test_dangling_settings_symlink_is_refused_and_creates_nothing(tmp: Path) -> None:
    path = tmp / "settings.json"
    path.symlink_to(tmp / "does" / "not" / "exist.json")
    with pytest.raises(SettingsError, match="which does not exist"):
        install(path, CCC)
    assert not (tmp / "does").exists()


def test_duplicate_keys_are_refused(tmp: Path) -> None:
    path = tmp / "settings.json"
    text = '{"hooks": {"Stop": []}, "model": "a", "hooks": {}}\n'
    path.write_text(text)
    with pytest.raises(SettingsError, match="'hooks' twice"):
        install(path, CCC)
    with pytest.raises(SettingsError, match="twice"):
        uninstall(path)
    assert path.read_text() == text


def test_settings_fifo_is_refused_not_read(tmp: Path) -> None:
    path = tmp / "settings.json"
    os.mkfifo(path)
    with pytest.raises(SettingsError, match="FIFO"):
        install(path, CCC)


def test_profile_that_does_not_exist_needs_create(tmp: Path) -> None:
    import subprocess
    import sys

    missing = tmp / "no-such-profile"
    env = {**os.environ, "HOME": str(tmp)}
    cmd = [sys.executable, "-m", "ccc_statusd.cli", "install", "--profile", str(missing)]
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "--create" in refused.stderr and not missing.exists()


# --- the launcher: hooks skip pip's console script (issue 19) ---------------------------------


def _console_script(tmp: Path, shebang: str) -> Path:
    script = tmp / "venv bin" / "ccc"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"#!{shebang}\nimport re\nimport sys\nfrom ccc_statusd.fastcli import main\n")
    script.chmod(0o755)
    return script


def test_a_console_script_is_replaced_by_its_interpreter_in_isolated_mode(tmp: Path) -> None:
    import sys

    from ccc_statusd.install import LAUNCH_CODE, ccc_argv

    script = _console_script(tmp, sys.executable)
    assert ccc_argv(str(script)) == (sys.executable, "-I", "-c", LAUNCH_CODE)
    result = install(tmp / "settings.json", str(script))
    hook = result.after["hooks"]["Stop"][0]["hooks"][0]["command"]
    assert shlex.split(hook) == [
        sys.executable,
        "-I",
        "-c",
        LAUNCH_CODE,
        "hook",
        "#",
        "ccc-install",
    ]
    assert is_our_hook_command(hook)
    assert (
        result.after["statusLine"]["command"]
        == shlex.join([sys.executable, "-I", "-c", LAUNCH_CODE, "statusline"]) + TAG
    )
    # Idempotent, and uninstall recognises the launcher form.
    assert plan_install(result.after, str(script)) == result.after
    assert plan_uninstall(result.after) == {}


def test_the_launcher_command_runs_the_send_path(tmp: Path) -> None:
    import subprocess
    import sys

    script = _console_script(tmp, sys.executable)
    hook = install(tmp / "settings.json", str(script)).after["hooks"]["Stop"][0]["hooks"][0]
    env = {"PATH": os.environ.get("PATH", ""), "CCC_CACHE_DIR": str(tmp / "cache")}
    payload = b'{"session_id": "s-1", "hook_event_name": "Stop", "cwd": "/tmp"}'
    # As Claude Code runs it: through a shell, daemon down (a hook never fails Claude Code).
    proc = subprocess.run(
        hook["command"], shell=True, input=payload, env=env, capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr


def test_an_old_install_is_moved_to_the_launcher_and_keeps_its_wrap(tmp: Path) -> None:
    import sys

    script = _console_script(tmp, sys.executable)
    old = plan_install(SHAPES["existing statusLine"], str(tmp / "old" / "ccc"))
    assert old["statusLine"]["command"].startswith(shlex.quote(str(tmp / "old" / "ccc")))
    new = plan_install(old, str(script))
    for event in HOOK_EVENTS:
        ours = [h for g in new["hooks"][event] for h in g["hooks"]]
        assert len(ours) == 1 and shlex.split(ours[0]["command"])[0] == sys.executable
    assert shlex.split(new["statusLine"]["command"])[0] == sys.executable
    assert plan_uninstall(new) == SHAPES["existing statusLine"]


@pytest.mark.parametrize("shebang", ["/bin/sh", "/usr/bin/env python3", "python3", None])
def test_scripts_that_are_not_a_plain_python_console_script_stay_as_they_are(
    tmp: Path, shebang: str | None
) -> None:
    from ccc_statusd.install import ccc_argv

    if shebang is None:  # an interpreter that cannot import the package in isolated mode
        fake = tmp / "python3"
        fake.write_text("#!/bin/sh\nexit 1\n")
        fake.chmod(0o755)
        shebang = str(fake)
    script = _console_script(tmp, shebang)
    assert ccc_argv(str(script)) == (str(script),)


def test_an_untagged_hook_from_an_earlier_install_is_adopted_not_doubled(tmp: Path) -> None:
    """Round-one installs wrote `<ccc> hook` without the tag: upgrading adopts them (tagged),
    so Claude Code never runs the hook twice; another path's `ccc hook` is left alone."""
    old = f"{shlex.quote(CCC)} hook"
    other = "/opt/other-tool/ccc hook"
    before = {
        "hooks": {
            "Stop": [{"hooks": [{"type": "command", "command": old, "timeout": 10}]}],
            "SessionStart": [{"hooks": [{"type": "command", "command": other}]}],
        }
    }
    after = plan_install(before, CCC)
    stop = [h["command"] for g in after["hooks"]["Stop"] for h in g["hooks"]]
    assert stop == [hook_command(CCC)]  # one, tagged
    start = [h["command"] for g in after["hooks"]["SessionStart"] for h in g["hooks"]]
    assert other in start and hook_command(CCC) in start
