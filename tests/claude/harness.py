"""Drive the real Claude Code offline: install a pinned build, give it a throwaway config, run it in tmux.

Owns everything the end-to-end tests need from the outside world, and nothing of the product:
- `install_claude_code(version)`: `npm install --prefix` into a cache folder outside the repo
  (`${XDG_CACHE_HOME:-~/.cache}/ccc-statusd-tests/claude-code/<version>`), reused across runs,
  serialised by a file lock, published by an atomic rename so a half-done install never counts.
- `make_claude_home(...)`: a throwaway `HOME` + `CLAUDE_CONFIG_DIR` with the three `.claude.json`
  keys that skip every start-up dialog, and the full environment to launch `claude` with.
- `TmuxSession`: a private tmux server (`-L <unique name>`) as the outer terminal.
- `cleanup_claude_tmp(...)`: removes what newer builds leave under `/tmp/claude-<uid>` and `/tmp/cc-socks`.

Stdlib only, so `.ci/run` can call it before the venv exists:
`python3 tests/claude/harness.py install 2.1.331 2.1.112`.

Facts this relies on (observed on the real program; see shared/claude-code-harness/FACTS.md):
2.1.112 is the last Node `cli.js` build, 2.1.113+ ship a native Bun binary through a platform
optional dependency; the ready prompt is a line starting with `❯` (native) or `> ` (Node).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

NATIVE_VERSION = "2.1.331"  # newest build when pinned; native Bun executable
NODE_VERSION = "2.1.112"  # last `cli.js` release (runs on Node; JS injection possible)
PINNED_VERSIONS = (NATIVE_VERSION, NODE_VERSION)
LAST_NODE_VERSION = (2, 1, 112)

NPM_PACKAGE = "@anthropic-ai/claude-code"
# A cold install of the native build downloads ~400 MB (the platform package); give it room.
INSTALL_TIMEOUT_S = 900.0
FAKE_API_KEY = "sk-ant-api03-cccstatusdtestsfakekeyfakekeyfakekeyfakekey-0123456789abcdefAA"
# Screen geometry of the outer terminal: wide enough that prompts and replies do not wrap.
TMUX_WIDTH = 200
TMUX_HEIGHT = 50
# Launch → input box takes 0.6-0.8 s (native) / 1.3-2.1 s (Node) on a 2-core VM; leave headroom
# for a loaded CI machine.
READY_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05
# Gap between typed text and its Enter: Claude Code needs >= 30 ms to stop treating input as a paste.
SUBMIT_PAUSE_S = 0.1
# A submitted prompt leaves the input box within ~0.1 s; still there after this, Enter was lost.
SUBMIT_RETRY_S = 1.0
# Native: `❯` + NBSP (capture-pane trims the NBSP). Node: `> `, sometimes inside a box (`│ > `).
READY_RE = re.compile(r"^(?:│ )?(?:❯|> )|^❯$|\? for shortcuts", re.M)
# npm's error codes that mean "cannot reach the registry" (a reason to skip, not to fail).
_NETWORK_ERROR_RE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|"
    r"network request .* failed|getaddrinfo|socket hang up|ERR_SOCKET_TIMEOUT"
)

T = TypeVar("T")


class ClaudeUnavailable(RuntimeError):
    """Claude Code cannot be installed here for a reason outside the project (no npm, no registry).

    Tests skip on this, with its message as the reason. Anything else that goes wrong during an
    install is a `ClaudeInstallError` and fails the test.
    """


class ClaudeInstallError(RuntimeError):
    """npm ran and the registry answered, but the install did not produce a working `claude`."""


# --------------------------------------------------------------------------- install


def cache_root() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/ccc-statusd-tests/claude-code` (override: `$CCC_TEST_CLAUDE_CACHE`)."""
    if os.environ.get("CCC_TEST_CLAUDE_CACHE"):
        return Path(os.environ["CCC_TEST_CLAUDE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ccc-statusd-tests" / "claude-code"


def is_native(version: str) -> bool:
    """True for builds that ship the native binary (2.1.113 and later)."""
    return tuple(int(p) for p in version.split(".")[:3]) > LAST_NODE_VERSION


def _bin_path(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "claude"


def installed_claude_code(version: str, root: Path | None = None) -> Path | None:
    """The `claude` binary of an already completed install of `version`, or None."""
    prefix = (root or cache_root()) / version
    binary = _bin_path(prefix)
    if (prefix / ".complete").is_file() and os.access(binary, os.X_OK):
        return binary
    return None


def install_claude_code(
    version: str, *, root: Path | None = None, timeout_s: float = INSTALL_TIMEOUT_S
) -> Path:
    """Install `@anthropic-ai/claude-code@version` once into the cache and return its `claude` binary.

    Reused across runs; concurrent callers (pytest-xdist, `.ci/run` and a developer) wait on a file
    lock. The install goes to a staging folder that is renamed into place after `claude --version`
    printed the right version, so an interrupted install is redone, never half-used.

    Raises `ClaudeUnavailable` when npm is missing or the registry cannot be reached, and
    `ClaudeInstallError` for any other failure.
    """
    root = root or cache_root()
    found = installed_claude_code(version, root)
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise ClaudeUnavailable(
            f"npm is not on PATH, so Claude Code {version} cannot be installed; install Node.js/npm "
            "or run tests/claude/install_claude.sh on a machine that has it."
        )
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # someone else may be installing the same version
        found = installed_claude_code(version, root)
        if found:
            return found
        prefix = root / version
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.staging-", dir=root))
        try:
            _npm_install(npm, version, staging, timeout_s)
            _check_version(_bin_path(staging), version)
            (staging / ".complete").write_text(f"{NPM_PACKAGE}@{version}\n")
            if prefix.exists():  # a stale, incomplete install from an interrupted run
                shutil.rmtree(prefix)
            staging.rename(prefix)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    found = installed_claude_code(version, root)
    if found is None:
        raise ClaudeInstallError(
            f"Claude Code {version} was installed in {prefix} but its binary is missing."
        )
    return found


def _npm_install(npm: str, version: str, prefix: Path, timeout_s: float) -> None:
    cmd = [
        npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
        "--loglevel=error", f"{NPM_PACKAGE}@{version}",
    ]  # fmt: skip
    # No stdin (CI has none); npm must never wait for a prompt.
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_yes="true")
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        raise ClaudeUnavailable(
            f"npm install of Claude Code {version} did not finish in {timeout_s:.0f} s (registry "
            "unreachable or very slow); run tests/claude/install_claude.sh once with network access."
        ) from e
    if proc.returncode != 0:
        out = (proc.stderr or "") + (proc.stdout or "")
        tail = "\n".join(out.strip().splitlines()[-15:])
        if _NETWORK_ERROR_RE.search(out):
            raise ClaudeUnavailable(
                f"npm cannot reach the registry to install Claude Code {version}; "
                f"connect to the network or pre-install with tests/claude/install_claude.sh. npm said:\n{tail}"
            )
        raise ClaudeInstallError(
            f"`{shlex.join(cmd)}` failed with exit code {proc.returncode}:\n{tail}"
        )


def _check_version(binary: Path, version: str) -> None:
    if not os.access(binary, os.X_OK):
        raise ClaudeInstallError(
            f"npm installed {NPM_PACKAGE}@{version} but {binary} is missing; for native builds the "
            "package's postinstall links the platform binary, so check that npm ran install scripts."
        )
    proc = subprocess.run(
        [str(binary), "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, env=dict(os.environ, DISABLE_AUTOUPDATER="1"),
    )  # fmt: skip
    if proc.returncode != 0 or not proc.stdout.startswith(version):
        raise ClaudeInstallError(
            f"{binary} --version printed {proc.stdout.strip()!r} (exit {proc.returncode}, stderr "
            f"{proc.stderr.strip()[-300:]!r}); expected {version}."
        )


@dataclass(frozen=True)
class ClaudeBuild:
    """One installed Claude Code build."""

    version: str
    bin: Path

    @property
    def native(self) -> bool:
        return is_native(self.version)


# --------------------------------------------------------------------------- config


@dataclass
class ClaudeHome:
    """A throwaway Claude Code installation state: HOME, CLAUDE_CONFIG_DIR, a project dir, the env."""

    root: Path
    home: Path
    config_dir: Path
    cwd: Path
    env: dict[str, str]
    api_key: str
    # Processes that ran with this home (filled by the tmux fixture), for `cleanup_claude_tmp`.
    pids: set[int] = field(default_factory=set)

    @property
    def settings_path(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def claude_tmp(self) -> Path:
        return self.root / "cctmp"

    def write_settings(self, settings: Mapping[str, object]) -> Path:
        """Write `settings` as the user settings (`$CLAUDE_CONFIG_DIR/settings.json`)."""
        self.settings_path.write_text(json.dumps(settings, indent=1))
        return self.settings_path

    def transcript_dir(self) -> Path:
        """Where transcripts of sessions in `cwd` go: `projects/<cwd, non-alphanumerics → "-">`."""
        return self.config_dir / "projects" / encode_project_dir(self.cwd)


def encode_project_dir(cwd: Path | str) -> str:
    """Claude Code's folder name for a project: every character that is not [A-Za-z0-9] → `-`."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(cwd))


def make_claude_home(
    tmp: Path,
    cwd: Path,
    api_key: str = FAKE_API_KEY,
    *,
    base_url: str,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write a throwaway HOME and CLAUDE_CONFIG_DIR under `tmp` and return claude's full environment.

    `.claude.json` holds exactly the three keys needed to skip every dialog (onboarding, the
    custom-API-key question, the workspace trust question for `cwd`). The environment is complete
    (launch with `env -i`): nothing of the caller's leaks in, no traffic leaves 127.0.0.1.
    """
    return make_claude_home_obj(tmp, cwd, api_key, base_url=base_url, extra_env=extra_env).env


def make_claude_home_obj(
    tmp: Path,
    cwd: Path,
    api_key: str = FAKE_API_KEY,
    *,
    base_url: str,
    extra_env: Mapping[str, str] | None = None,
) -> ClaudeHome:
    """`make_claude_home`, returning the `ClaudeHome` (paths + env) instead of only the env."""
    tmp = Path(tmp)
    cwd = Path(cwd).resolve()
    home = tmp / "home"
    config = tmp / "config"
    claude_tmp = tmp / "cctmp"
    for d in (home, config, cwd):
        d.mkdir(parents=True, exist_ok=True)
    claude_tmp.mkdir(mode=0o700, exist_ok=True)  # cc-socks/ inside must be private or claude exits
    claude_json = {
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [api_key[-20:]], "rejected": []},
        "projects": {str(cwd): {"hasTrustDialogAccepted": True}},
    }
    (config / ".claude.json").write_text(json.dumps(claude_json, indent=1))
    # The venv's bin first: hooks configured as bare `ccc` must find this checkout's CLI.
    path_dirs = [os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]
    env = {
        "HOME": str(home),
        "USER": os.environ.get("USER", "root"),
        "LOGNAME": os.environ.get("LOGNAME", os.environ.get("USER", "root")),
        "SHELL": "/bin/sh",
        "PATH": ":".join(dict.fromkeys(path_dirs)),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "CLAUDE_CONFIG_DIR": str(config),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        # Relocates what newer builds write to /tmp/claude-<uid>/ and /tmp/cc-socks/ (checked on
        # 2.1.331) into this throwaway dir; `cleanup_claude_tmp` covers builds that ignore it.
        "CLAUDE_CODE_TMPDIR": str(claude_tmp),
    }
    if extra_env:
        env.update(extra_env)
    return ClaudeHome(root=tmp, home=home, config_dir=config, cwd=cwd, env=env, api_key=api_key)


def init_git_repo(path: Path, branch: str = "main") -> None:
    """Make `path` a git repo with one commit on `branch` (transcripts then carry `gitBranch`)."""
    git = ["git", "-c", "user.email=test@example.invalid", "-c", "user.name=ccc tests"]
    subprocess.run(
        [*git, "-c", f"init.defaultBranch={branch}", "init", "-q", str(path)], check=True
    )
    (path / "README.md").write_text("scratch project for ccc-statusd tests\n")
    subprocess.run([*git, "-C", str(path), "add", "README.md"], check=True)
    subprocess.run([*git, "-C", str(path), "commit", "-qm", "init"], check=True)


# A hook / statusLine command that appends one JSON line per call to the file named by argv[2]:
# {"kind", "t", "stdin" (parsed), "env" (CLAUDE*/CCC_*/TMUX* variables)}. `-I` skips site-packages:
# ~40 ms per call instead of ~150 ms, and hooks block Claude Code while they run.
_RECORDER_SRC = r"""
import json, os, sys, time
kind, out = sys.argv[1], sys.argv[2]
raw = sys.stdin.read()
try:
    data = json.loads(raw)
except ValueError:
    data = raw
env = {k: v for k, v in os.environ.items() if k.startswith(("CLAUDE", "CCC_", "TMUX"))}
with open(out, "a") as f:
    f.write(json.dumps({"kind": kind, "t": time.time(), "stdin": data, "env": env}) + "\n")
if kind == "statusline":
    print("REC statusline " + str(data.get("session_id") if isinstance(data, dict) else "?"))
"""

HOOK_EVENTS = (
    "SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PermissionRequest",
    "Stop", "StopFailure", "Notification", "PreCompact", "SessionEnd",
)  # fmt: skip
# Events whose hook entries take a tool matcher; "*" matches every tool.
_MATCHER_EVENTS = {
    "PreToolUse": "*",
    "PostToolUse": "*",
    "PermissionRequest": "*",
    "Notification": "",
}


def recorder_command(record_path: Path, kind: str) -> str:
    """A shell command (for settings.json) that appends the hook/statusLine stdin to `record_path`."""
    return shlex.join([sys.executable, "-I", "-c", _RECORDER_SRC, kind, str(record_path)])


def recorder_settings(record_path: Path, events: Iterable[str] = HOOK_EVENTS) -> dict[str, object]:
    """settings.json content wiring every hook in `events` and the statusLine to the recorder."""
    hooks: dict[str, object] = {}
    for ev in events:
        entry: dict[str, object] = {
            "hooks": [
                {"type": "command", "command": recorder_command(record_path, ev), "timeout": 10}
            ]
        }
        if ev in _MATCHER_EVENTS:
            entry["matcher"] = _MATCHER_EVENTS[ev]
        hooks[ev] = [entry]
    return {
        "hooks": hooks,
        "statusLine": {
            "type": "command",
            "command": recorder_command(record_path, "statusline"),
            "padding": 0,
        },
    }


def read_records(path: Path) -> list[dict[str, object]]:
    """Every complete JSON line in `path` (a line still being written is skipped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def wait_until(
    fn: Callable[[], T], timeout_s: float, what: str, interval_s: float = POLL_INTERVAL_S
) -> T:
    """Poll `fn` until it returns something truthy and return that; AssertionError naming `what` on timeout.

    End-to-end tests only: the real Claude Code runs on the wall clock.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(interval_s)


def wait_for_record(
    path: Path, kind: str, timeout_s: float = 20.0, where: Callable[[dict], bool] | None = None
) -> dict[str, object]:
    """Wait until the recorder wrote a `kind` record (matching `where`) and return the last such one."""

    def find() -> dict | None:
        hits = [
            r for r in read_records(path) if r.get("kind") == kind and (where is None or where(r))
        ]
        return hits[-1] if hits else None

    return wait_until(find, timeout_s, f"a {kind} hook record in {path}")


# --------------------------------------------------------------------------- tmux


@dataclass
class TmuxSession:
    """A private tmux server (own `-L` socket) with one window: the outer terminal of a test.

    `start(argv, env=..., cwd=...)` runs `argv` under `env -i` (exactly `env`, nothing inherited).
    The pane stays after the program exits (`remain-on-exit`), so its last screen and exit status can
    still be read. `kill()` ends the server and waits for every process that ran in the pane.
    """

    width: int = TMUX_WIDTH
    height: int = TMUX_HEIGHT
    socket_name: str = field(default_factory=lambda: f"ccct-{os.getpid()}-{secrets.token_hex(4)}")
    target: str = "main"
    pids_seen: set[int] = field(default_factory=set)
    _conf_dir: Path | None = None

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._conf_dir is not None, "TmuxSession.start() was not called"
        # Our own TMUX variables would make tmux talk to the developer's server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        cmd = ["tmux", "-L", self.socket_name, "-f", str(self._conf_dir / "tmux.conf"), *args]
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def start(self, argv: list[str], *, env: Mapping[str, str], cwd: Path) -> TmuxSession:
        if shutil.which("tmux") is None:
            raise RuntimeError(
                "tmux is not installed; install it (apt-get install tmux) to run these tests."
            )
        self._conf_dir = Path(tempfile.mkdtemp(prefix="ccct-tmux-", dir="/tmp"))
        (self._conf_dir / "tmux.conf").write_text(
            "set -g remain-on-exit on\n"
            "set -g default-shell /bin/sh\n"
            "set -g history-limit 10000\n"
            f"set -g default-size {self.width}x{self.height}\n"
            "set -g status off\n"  # the whole screen belongs to the program under test
        )
        shell_cmd = "exec " + shlex.join(
            ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
        )
        self._tmux(
            "new-session", "-d", "-s", self.target, "-x", str(self.width), "-y", str(self.height),
            "-c", str(cwd), shell_cmd,
        )  # fmt: skip
        self.pids_seen.update(self._pane_tree())
        return self

    def __enter__(self) -> TmuxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def send_text(self, text: str) -> None:
        """Type `text` literally (no key names); "\\n" in it is Ctrl-J, a newline in Claude's box."""
        self._tmux("send-keys", "-t", self.target, "-l", text)

    def submit(self, text: str, pause_s: float = SUBMIT_PAUSE_S) -> None:
        """Type `text` into Claude Code's input box and press Enter, as a person would.

        Enter goes as a separate keystroke `pause_s` later: in the same burst as the text it is
        taken as part of a paste. Under load an Enter is still sometimes swallowed (as pasted
        text, or by the path-completion menu an absolute path opens): when the text is still in
        the input box `SUBMIT_RETRY_S` later, Enter is pressed once more.
        """
        self.send_text(text)
        time.sleep(pause_s)
        self.send_keys("Enter")
        probe = text.strip().splitlines()[0].strip()[:40] if text.strip() else ""
        if not probe:
            return
        deadline = time.monotonic() + SUBMIT_RETRY_S
        while time.monotonic() < deadline:
            box = input_box(self.capture())
            if box is None or probe not in box:
                return
            time.sleep(POLL_INTERVAL_S)
        self.send_keys("Enter")

    def send_keys(self, *keys: str) -> None:
        """Send tmux key names (`Enter`, `Escape`, `C-c`, ...)."""
        self._tmux("send-keys", "-t", self.target, *keys)

    def capture(self, history: bool = False) -> str:
        """The visible screen as text (plus scrollback with `history=True`)."""
        args = ["capture-pane", "-p", "-t", self.target]
        if history:
            args += ["-S", "-"]
        self.pids_seen.update(self._pane_tree())
        return self._tmux(*args).stdout

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout_s: float = 20.0, history: bool = False
    ) -> re.Match[str]:
        """Wait until the screen matches `pattern` (multiline); AssertionError with the screen on timeout."""
        rx = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.capture(history=history)
            m = rx.search(screen)
            if m:
                return m
            if self.dead():
                raise AssertionError(
                    f"the program in tmux exited ({self.exit_status()}) before {rx.pattern!r} appeared; screen:\n{screen}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{rx.pattern!r} not on screen after {timeout_s:.1f} s; screen:\n{screen}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _display(self, fmt: str) -> str:
        return self._tmux("display-message", "-p", "-t", self.target, fmt).stdout.strip()

    def pane_pid(self) -> int:
        return int(self._display("#{pane_pid}"))

    def dead(self) -> bool:
        return self._display("#{pane_dead}") == "1"

    def exit_status(self) -> int | None:
        s = self._display("#{pane_dead_status}")
        return int(s) if s else None

    def _pane_tree(self) -> set[int]:
        try:
            return process_tree(self.pane_pid())
        except (RuntimeError, ValueError):
            return set()

    def kill(self) -> None:
        """Kill the tmux server and wait (≤5 s, then SIGKILL) for the processes that ran in the pane."""
        if self._conf_dir is None:
            return
        self.pids_seen.update(self._pane_tree())
        self._tmux("kill-server", check=False)
        _reap(self.pids_seen, grace_s=5.0)
        shutil.rmtree(self._conf_dir, ignore_errors=True)
        self._conf_dir = None


def input_box(screen: str) -> str | None:
    """The lines of Claude Code's input box (between the last two horizontal rules), or None."""
    lines = screen.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("────")]
    if len(rules) < 2:
        return None
    return "\n".join(lines[rules[-2] + 1 : rules[-1]])


def wait_ready(pane: TmuxSession, timeout_s: float = READY_TIMEOUT_S) -> float:
    """Wait for Claude Code's input box (`❯` native, `> ` Node); return the seconds it took."""
    t0 = time.monotonic()
    pane.wait_for(READY_RE, timeout_s)
    return time.monotonic() - t0


# --------------------------------------------------------------------------- processes and cleanup


def process_tree(root: int) -> set[int]:
    """`root` and all its live descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        todo.extend(children.get(pid, ()))
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap(pids: Iterable[int], grace_s: float) -> None:
    pids = set(pids)
    deadline = time.monotonic() + grace_s
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    for p in pids:
        if pid_alive(p):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)


def cleanup_claude_tmp(cwd: Path, pids: Iterable[int] = ()) -> list[Path]:
    """Remove what claude runs in `cwd` left outside their config dir; return what was removed.

    Newer builds write `/tmp/claude-<uid>/<encoded cwd>/<session id>/…` and listen on
    `/tmp/cc-socks/<pid>.sock`; sockets of `pids` that are no longer running are removed.
    Shared parents are removed only when empty (another Claude Code may be using them).
    """
    removed: list[Path] = []
    base = Path(f"/tmp/claude-{os.getuid()}")
    proj = base / encode_project_dir(Path(cwd).resolve())
    if proj.exists():
        shutil.rmtree(proj, ignore_errors=True)
        removed.append(proj)
    socks = Path("/tmp/cc-socks")
    for pid in pids:
        sock = socks / f"{pid}.sock"
        if not pid_alive(pid) and (sock.exists() or sock.is_symlink()):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
                removed.append(sock)
    for d in (base, socks):
        with contextlib.suppress(OSError):
            d.rmdir()  # only if empty
    return removed


@contextlib.contextmanager
def short_tmpdir(prefix: str = "ccct-") -> Iterator[Path]:
    """A temp dir directly under /tmp: AF_UNIX socket paths inside it stay far below ~107 bytes."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- CLI (used by .ci/run)


def main(argv: list[str]) -> int:
    """`harness.py install [VERSION...]`: pre-install the pinned builds (exit 0 with a warning offline)."""
    if not argv or argv[0] != "install":
        print("usage: python3 tests/claude/harness.py install [VERSION...]", file=sys.stderr)
        return 2
    versions = argv[1:] or list(PINNED_VERSIONS)
    rc = 0
    for version in versions:
        t0 = time.monotonic()
        try:
            path = install_claude_code(version)
        except ClaudeUnavailable as e:
            print(
                f"warning: {e}\nThe Claude Code end-to-end tests will be skipped.", file=sys.stderr
            )
            continue
        except ClaudeInstallError as e:
            print(f"error: {e}", file=sys.stderr)
            rc = 1
            continue
        print(f"claude-code {version}: {path} ({time.monotonic() - t0:.1f} s)")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
