"""``ccc --host H …`` and ``H:SESSION``: run ``ccc`` on another host through OpenSSH.

Each host runs its own daemon; its sessions stay local to it. To reach them, the local ``ccc``
runs the remote ``ccc`` over ``ssh`` (``ssh -T … -- DEST 'ccc --socket … sessions'``) and
passes its output and exit code through. Why this and not a forwarded socket
(``ssh -L local.sock:remote.sock``): measured in ``make bench`` (``remote`` rows), both cost one
SSH round trip when the connection is shared, and the exec is what makes every command work the
same remotely (``schedule`` writes the remote database, prefixes resolve against the remote
sessions, errors are the remote ccc's own sentences) with nothing left running, no local
socket to secure and no remote socket path to guess. Connection sharing (``ControlMaster=auto``,
``ControlPersist``, sockets in ``<cache dir>/ssh/``, 0700) makes the second call cost a
round trip instead of a handshake.

Hosts come from ``~/.config/ccc/hosts`` (``$CCC_HOSTS_FILE``, ``$XDG_CONFIG_HOME/ccc/hosts``)::

    # NAME  [ssh=DESTINATION] [ccc=REMOTE_COMMAND] [cache_dir=DIR] [ssh_config=FILE] [share=no]
    devbox
    build   ssh=me@build.example.com  ccc=~/.local/bin/ccc  cache_dir=/srv/ccc

or, for ``--host NAME`` only, straight from ``~/.ssh/config`` (any destination ssh accepts).
Authentication, host keys, jump hosts and ports are OpenSSH's business (``ssh_config``); ccc
adds only: ``BatchMode=yes`` (never a password prompt: use keys or an agent),
``ConnectTimeout`` (an unreachable host fails within seconds), ``ServerAlive*`` (a dead link is
noticed), and turns off every forwarding (agent, X11, ports): a remote host gets nothing back.

Safety: the remote side can only print. Its output is shown with control characters removed
(no terminal escapes) and its ``sessions --json`` is parsed as data; nothing from it reaches
the local daemon or a shell. This module is imported only when ``--host``/``H:SESSION``/
``--all-hosts`` is used: the send path, hooks and the statusline never load it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CONNECT_TIMEOUT_S = 5  # ssh ConnectTimeout: how long an unreachable host may take to fail
ALIVE_INTERVAL_S = 5  # ServerAliveInterval × CountMax: a dead link is noticed in ~15 s
ALIVE_COUNT = 3
CONTROL_PERSIST_S = 60  # a shared connection outlives the last command by this long
# --all-hosts: one host's whole answer must arrive within this (connect + list), or it is
# shown as unreachable; the others are not held up (hosts are asked concurrently).
LIST_DEADLINE_S = CONNECT_TIMEOUT_S + 10
MAX_HOSTS_PARALLEL = 16
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # what we accept from one remote `sessions --json`

SSH_FAILED = 255  # ssh's own exit status for "could not connect / authenticate"
NOT_FOUND = 127  # the remote shell's "command not found"

# Commands that make sense on another host, and where their SESSION is.
REMOTE_COMMANDS = frozenset(
    {"sessions", "prompt", "command", "eval", "ask", "schedule", "status", "path", "watch"}
)
LOCAL_ONLY = frozenset({"hook", "statusline", "run", "install", "uninstall"})
_SESSION_FIRST = frozenset({"prompt", "command", "eval", "ask", "watch", "path"})
# Options (of any command) that take a value: their value is never the SESSION.
_VALUE_OPTIONS = frozenset({"--timeout", "--in", "--at", "--session", "--format", "--wrap"})
_GLOBAL_VALUE_OPTIONS = frozenset({"--socket", "--host"})
_HOST_RE = re.compile(r"^[A-Za-z0-9_.@\[\]:%+-]{1,255}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# C0 controls except tab and newline, DEL, and C1 controls: no escape sequences from a remote.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class RemoteUsageError(ValueError):
    """A bad ``--host`` / ``H:SESSION`` / hosts-file line: exit 2 with this sentence."""


@dataclass(frozen=True)
class Host:
    """One remote host: its name for ccc, the ssh destination, and how to run ccc there."""

    name: str
    ssh: str
    ccc: str = "ccc"  # the remote command, as shell words (e.g. ~/.local/bin/ccc)
    cache_dir: str | None = None  # the remote daemon's cache dir, if not the default
    ssh_config: str | None = None  # an ssh_config file (ssh -F) for this host
    share: bool = True  # share one connection between calls (ControlMaster); share=no turns off


# --- the hosts file -----------------------------------------------------------------------


def hosts_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("CCC_HOSTS_FILE"):
        return Path(env["CCC_HOSTS_FILE"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or "~", ".config")
    return Path(base).expanduser() / "ccc" / "hosts"


_KEYS = {"ssh", "ccc", "cache_dir", "ssh_config", "share"}


def parse_hosts(text: str, source: str = "hosts") -> list[Host]:
    """The hosts file: one host a line, ``NAME [key=value]…``; ``#`` starts a comment.
    ValueError names the file and line."""
    hosts: list[Host] = []
    seen: set[str] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{n}"
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}; fix the quoting") from None
        name, fields = words[0], words[1:]
        if not _NAME_RE.match(name) or name == "local":
            raise ValueError(
                f"{where}: {name!r} is not a host name ccc accepts (letters, digits, '.', '_', "
                "'-'; not 'local')"
            )
        if name in seen:
            raise ValueError(f"{where}: host {name!r} is listed twice; keep one line")
        seen.add(name)
        opts: dict[str, str] = {}
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep or key not in _KEYS or not value:
                raise ValueError(
                    f"{where}: {field!r} is not one of ssh=, ccc=, cache_dir=, ssh_config=, share= "
                    "with a value"
                )
            if key == "share" and value not in ("yes", "no"):
                raise ValueError(f"{where}: share={value} must be share=yes or share=no")
            opts[key] = value
        dest = opts.get("ssh", name)
        try:
            check_destination(dest)
        except RemoteUsageError as exc:
            raise ValueError(f"{where}: {exc}") from None
        hosts.append(
            Host(
                name=name,
                ssh=dest,
                ccc=opts.get("ccc", "ccc"),
                cache_dir=opts.get("cache_dir"),
                ssh_config=opts.get("ssh_config"),
                share=opts.get("share", "yes") == "yes",
            )
        )
    return hosts


def load_hosts(env: Mapping[str, str] | None = None) -> list[Host]:
    """The configured hosts ([] without a file); ValueError for a bad file."""
    path = hosts_file(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} ({exc}); fix or remove it") from None
    return parse_hosts(text, str(path))


def check_destination(dest: str) -> str:
    """An ssh destination must not be taken for an ssh option (``-oProxyCommand=…``)."""
    if dest.startswith("-") or not _HOST_RE.match(dest):
        raise RemoteUsageError(
            f"{dest[:60]!r} is not a host name; give a name from ~/.config/ccc/hosts or ~/.ssh/config"
        )
    return dest


def find_host(name: str, hosts: Sequence[Host]) -> Host:
    """A configured host by name, else ``name`` as an ssh destination (``~/.ssh/config``)."""
    for host in hosts:
        if host.name == name:
            return host
    return Host(name=name, ssh=check_destination(name))


# --- argv: --host H and H:SESSION ---------------------------------------------------------


def split_host(args: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(host, args for the remote ccc)`` when ``args`` address another host, else None.

    ``--host H`` among the global options, or ``H:SESSION`` as a command's SESSION (also
    ``--session H:ID``). Raises RemoteUsageError for a local-only command or two hosts.
    """
    out: list[str] = []
    host: str | None = None
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        arg = args[i]
        if arg in ("-h", "--help", "--version"):
            return None
        if arg == "--host" and i + 1 < len(args):
            host, i = args[i + 1], i + 2
            continue
        if arg.startswith("--host="):
            host, i = arg[len("--host=") :], i + 1
            continue
        if arg in _GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            out.extend(args[i : i + 2])
            i += 2
            continue
        out.append(arg)
        i += 1
    rest = list(args[i:])
    if not rest:
        if host is not None:
            raise RemoteUsageError(
                f"--host {host} needs a command, e.g.: ccc --host {host} sessions"
            )
        return None
    command = rest[0]
    session_at = _session_index(rest)
    named: str | None = None
    if session_at is not None and ":" in rest[session_at]:
        named, _, sid = rest[session_at].partition(":")
        if not named or not sid:
            raise RemoteUsageError(
                f"{rest[session_at]!r} is not HOST:SESSION; write e.g. devbox:abcd"
            )
        if host is not None and named != host:
            raise RemoteUsageError(
                f"--host {host} and {rest[session_at]!r} name two hosts; give one"
            )
        rest[session_at] = sid
        host = named
    if host is None:
        return None
    if command in LOCAL_ONLY:
        raise RemoteUsageError(
            f"ccc {command} works on this machine only; run it on {host} itself: ssh {host} ccc {command}"
        )
    if command not in REMOTE_COMMANDS:
        raise RemoteUsageError(
            f"ccc {command} cannot be sent to another host; these can: "
            + ", ".join(sorted(REMOTE_COMMANDS))
        )
    if "--socket" in out or any(a.startswith("--socket=") for a in out):
        raise RemoteUsageError(
            "--socket names a local socket; for another host set cache_dir= in ~/.config/ccc/hosts"
        )
    if command == "sessions" and "--all-hosts" in rest:
        raise RemoteUsageError("give either --host or --all-hosts")
    check_destination(host)
    return host, [*out, *rest]


def _session_index(rest: Sequence[str]) -> int | None:
    """Where the SESSION (or ``--session``'s value) is in ``COMMAND ARGS…``, if anywhere."""
    command = rest[0]
    positional_from = 1
    if command == "schedule":
        if len(rest) > 1 and rest[1] in ("list", "cancel"):
            for j in range(2, len(rest) - 1):
                if rest[j] == "--session":
                    return j + 1
            return None
        positional_from = 2 if len(rest) > 1 and rest[1] == "add" else 1
    elif command not in _SESSION_FIRST:
        return None
    j = positional_from
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            return j + 1 if j + 1 < len(rest) else None
        if arg in _VALUE_OPTIONS:
            j += 2
            continue
        if arg.startswith("-") and arg != "-":
            j += 1
            continue
        return j
    return None


_TEXT_COMMANDS = frozenset({"prompt", "ask", "eval", "schedule"})


def text_to_stdin(args: Sequence[str]) -> tuple[list[str], str | None]:
    """``(args with the TEXT replaced by "-", the text)`` for commands whose second positional
    is free text (prompt, ask, eval, schedule add); unchanged args and None otherwise."""
    out = list(args)
    i = 0
    while i < len(out) and out[i].startswith("-") and out[i] != "--":
        i += 2 if out[i] in _GLOBAL_VALUE_OPTIONS else 1
    rest = out[i:]
    if not rest or rest[0] not in _TEXT_COMMANDS:
        return out, None
    if rest[0] == "schedule" and len(rest) > 1 and rest[1] in ("list", "cancel"):
        return out, None
    at = _session_index(rest)
    if at is None:
        return out, None
    j = at + 1
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            j += 1
            break
        if arg in _VALUE_OPTIONS:
            j += 2
        elif arg.startswith("-") and arg != "-":
            j += 1
        else:
            break
    if j >= len(rest) or rest[j] == "-" or "--" in rest[at + 1 : j]:
        return out, None
    text = rest[j]
    rest[j] = "-"
    return out[:i] + rest, text


# --- the ssh command ----------------------------------------------------------------------


def control_dir(env: Mapping[str, str] | None = None) -> str:
    """Where shared connections' sockets live: ``<local cache dir>-ssh`` (0700), next to the
    cache dir, not in it: the cache dir is what gets bind-mounted into containers, and a
    control socket lets whoever reaches it run commands on the remote host as you."""
    from .client import default_cache_dir

    return default_cache_dir(env).rstrip("/") + "-ssh"


def remote_command(host: Host, args: Sequence[str]) -> str:
    """The command line the remote shell runs: the configured ccc (as written, so ``~``
    expands there), ``--socket`` for a configured cache dir, and every argument quoted."""
    words = [host.ccc]
    if host.cache_dir:
        words += ["--socket", _quote_path(host.cache_dir.rstrip("/") + "/daemon.sock")]
    words += [shlex.quote(a) for a in args]
    return " ".join(words)


def _quote_path(path: str) -> str:
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def ssh_argv(
    host: Host,
    args: Sequence[str],
    *,
    share: bool | None = None,
    control: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    ssh: str = "ssh",
) -> list[str]:
    """The full ``ssh`` argv for running ``ccc ARGS`` on ``host``."""
    argv = [ssh]
    if host.ssh_config:
        argv += ["-F", os.path.expanduser(host.ssh_config)]
    share = host.share if share is None else share
    argv += ["-T", "-x", "-a"]
    for opt in (
        "BatchMode=yes",
        f"ConnectTimeout={max(1, round(connect_timeout))}",
        f"ServerAliveInterval={ALIVE_INTERVAL_S}",
        f"ServerAliveCountMax={ALIVE_COUNT}",
        "ClearAllForwardings=yes",
        "ForwardAgent=no",
        "ForwardX11=no",
        "PermitLocalCommand=no",
        "LogLevel=ERROR",
    ):
        argv += ["-o", opt]
    if share:
        control = control or control_dir()
        argv += [
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={control}/%C",
            "-o",
            f"ControlPersist={CONTROL_PERSIST_S}",
        ]
    else:
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    argv += ["--", host.ssh, remote_command(host, args)]
    return argv


def ensure_control_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, 0o700)


# --- output -------------------------------------------------------------------------------


def sanitize(text: str) -> str:
    """Remote text without control characters (tab and newline kept)."""
    return _CONTROL_RE.sub("", text)


def clean_data(value: Any) -> Any:
    """Every string in parsed JSON sanitised (a remote's session fields end up on our terminal)."""
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, list):
        return [clean_data(v) for v in value]
    if isinstance(value, dict):
        return {sanitize(str(k)): clean_data(v) for k, v in value.items()}
    return value


def relabel(line: str, name: str) -> str:
    """``ccc: what`` from the remote becomes ``ccc: NAME: what``: the user sees whose it is."""
    if line.startswith("ccc: "):
        return f"ccc: {name}: {line[5:]}"
    return line


def ssh_failure(host: Host, stderr: str, code: int) -> str | None:
    """The sentence for an ssh-level failure (exit 255) or a missing remote ccc (127)."""
    last = next((ln.strip() for ln in reversed(sanitize(stderr).splitlines()) if ln.strip()), "")
    if code == SSH_FAILED:
        why = f" ({last})" if last else ""
        return f"cannot reach host {host.name} over ssh{why}; check it with: ssh {host.ssh} true"
    if code == NOT_FOUND:
        return (
            f"{host.ccc!r} was not found on host {host.name}; install ccc-statusd there, or set "
            f"its path in {hosts_file()}: {host.name} ccc=/path/to/ccc"
        )
    return None


# --- running ------------------------------------------------------------------------------


def run(
    host: Host,
    args: Sequence[str],
    *,
    share: bool | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run ``ccc ARGS`` on ``host``, streaming its output (sanitised) here; its exit code."""
    import subprocess
    import threading

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    share = host.share if share is None else share
    control = control_dir()
    if share:
        ensure_control_dir(control)
    # The prompt text goes over stdin, not on the remote command line, where other users of
    # that host could read it (/proc/*/cmdline). stdin is passed on when the user gave "-".
    args, text = text_to_stdin(args)
    stdin = subprocess.PIPE if text is not None else (None if "-" in args else subprocess.DEVNULL)
    try:
        proc = subprocess.Popen(
            ssh_argv(host, args, share=share, control=control),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except FileNotFoundError:
        err.write(
            "ccc: ssh is not installed; install OpenSSH's client (apt install openssh-client)\n"
        )
        return 3
    err_lines: list[str] = []

    def pump_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)

    t = threading.Thread(target=pump_stderr, daemon=True)
    t.start()
    if text is not None:

        def feed() -> None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(text)
                proc.stdin.close()
            except OSError:
                pass  # ssh failed before reading it: its exit status says why

        threading.Thread(target=feed, daemon=True).start()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            out.write(sanitize(line))
            out.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return 130
    t.join(5)
    failure = ssh_failure(host, "".join(err_lines), code)
    if failure:
        err.write(f"ccc: {failure}\n")
        return 3
    for line in err_lines:
        err.write(relabel(sanitize(line), host.name))
    err.flush()
    return code


@dataclass
class HostSessions:
    """One host's answer to ``sessions --json``: records, or why there are none."""

    host: str
    records: list[dict[str, Any]]
    error: str | None = None


def list_sessions(
    host: Host, *, share: bool | None = None, deadline_s: float = LIST_DEADLINE_S
) -> HostSessions:
    """``ccc sessions --json`` on ``host``, bounded in time and size; never raises."""
    import json
    import subprocess

    share = host.share if share is None else share
    control = control_dir()
    try:
        if share:
            ensure_control_dir(control)
        proc = subprocess.Popen(
            ssh_argv(host, ["sessions", "--json"], share=share, control=control),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a kill on deadline takes ssh's children along
        )
    except OSError as exc:
        return HostSessions(host.name, [], f"cannot run ssh ({exc})")
    try:
        raw_out, raw_err = proc.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return HostSessions(host.name, [], f"no answer within {deadline_s:g} s")
    err = raw_err.decode("utf-8", "replace")
    failure = ssh_failure(host, err, proc.returncode)
    if failure:
        return HostSessions(host.name, [], failure)
    if len(raw_out) > MAX_OUTPUT_BYTES:
        return HostSessions(host.name, [], f"its answer is larger than {MAX_OUTPUT_BYTES} bytes")
    try:
        data = json.loads(raw_out.decode("utf-8", "replace") or "null")
    except ValueError:
        data = None
    if not isinstance(data, list):
        last = sanitize(err).strip().splitlines()
        why = last[-1] if last else "its ccc printed no session list"
        return HostSessions(host.name, [], why.removeprefix("ccc: "))
    records = [clean_data(r) for r in data if isinstance(r, dict)]
    return HostSessions(host.name, records)


def list_all(
    hosts: Sequence[Host],
    local: Callable[[], HostSessions],
    *,
    share: bool | None = None,
    deadline_s: float = LIST_DEADLINE_S,
) -> list[HostSessions]:
    """The local sessions and every host's, asked concurrently (one slow host stalls no one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(MAX_HOSTS_PARALLEL, len(hosts) + 1))) as pool:
        futures = [pool.submit(local)] + [
            pool.submit(list_sessions, h, share=share, deadline_s=deadline_s) for h in hosts
        ]
        return [f.result() for f in futures]


def merged_records(results: Sequence[HostSessions]) -> list[dict[str, Any]]:
    """One list for ``--all-hosts``: each record with its ``host``; an unreachable host as a
    record ``{"host": H, "state": "unreachable", "error": why}``."""
    out: list[dict[str, Any]] = []
    for res in results:
        if res.error is not None:
            out.append({"host": res.host, "state": "unreachable", "error": res.error})
            continue
        out.extend({**rec, "host": res.host} for rec in res.records)
    return out


def main(args: Sequence[str]) -> int | None:
    """The entry point's hook: None when ``args`` stay on this machine, else the exit code."""
    from .sendcmd import EXIT_USAGE, error

    try:
        split = split_host(args)
        if split is None:
            return None
        name, remote_args = split
        host = find_host(name, load_hosts())
    except RemoteUsageError as exc:
        return error(str(exc), EXIT_USAGE)
    except ValueError as exc:
        return error(str(exc), EXIT_USAGE)
    return run(host, remote_args)
