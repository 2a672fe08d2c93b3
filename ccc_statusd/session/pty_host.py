"""`ccc run`: run a command (Claude Code) under a pseudo-terminal, pass the user's terminal
through byte for byte, and type routed prompts and slash commands into it when that cannot
clobber the human. Owns the child process, the pty master, and the user's terminal modes.

Theory of operation: the child is forked onto a new pty *before* Trio starts (so no threads
exist at fork time), with ``CCC_INTERNAL_ID`` and ``CCC_CACHE_DIR`` in its environment. Then one
Trio nursery runs, as siblings: the input pump (user's terminal → pty, feeding every byte to an
:class:`~.keys.InputTracker`), the output pump (pty → user's terminal, noting when output was
last seen), a signal watcher (SIGWINCH copies the window size; SIGTERM/SIGHUP/SIGINT are
forwarded to the child), and the daemon link (:mod:`.link`) whose handler is
:meth:`PtyHost.handle`. The main task waits for the child to exit, lets the output drain, and
cancels the rest. The user's terminal goes into raw mode only after the signal handlers are in
place and is restored in a ``finally`` on every way out (exit, signal, crash).

Delivery (measured on the real Claude Code, see FACTS §5): a prompt is one bracketed paste,
then Enter as a *separate* write ``enter_delay_s`` later (an Enter in the same burst is read as
part of the paste). A delivery holds the pty write lock, so the user's own keystrokes never
interleave with it; they wait the few milliseconds and follow it.

Never clobber the human: a routed message is declined (``status: "not_idle"``, ``error`` = the
reason, ``data.reason`` one of ``draft``, ``typing``, ``just_delivered``, ``not_quiet``,
``screen``) when the user has a draft, typed in the last ``typing_grace_s``, another message was
typed in the last ``delivery_guard_s``, or — unless the daemon's routed message says
``data.state == "idle"`` — the terminal was active in the last ``quiet_s``; and, whatever the
daemon says (any local client can fake a Stop hook), when the screen is not Claude Code's empty
main input box with nothing open (issue 15). The screen is a pyte model fed with every byte the
child writes (:mod:`.screen_model`), classified by :mod:`ccc_statusd.screen`; ``data.screen``
names what was seen. The daemon then queues the message; once our own rules and the screen pass
again we send a heartbeat at once (``data.input_idle: true``) so the daemon can retry.

After typing, the screen is watched for ``confirm_s``: ``status: "submitted"`` when it shows the
text left the input box (box empty or a turn started, or a command's picker/panel), else
``status: "typed"`` with ``data.seen`` (what it showed), and the daemon waits for the
UserPromptSubmit hook. What is typed comes from :mod:`ccc_statusd.paste` (one bracketed paste
that cannot be broken out of, Enter separately).

Session id: ``run-<internal_id>.session`` in the cache dir is created empty before the child
starts; ``ccc hook`` writes the id there on every SessionStart, and every register/heartbeat
carries it, so a restarted daemon learns the mapping back (even after /clear). Removed on exit.

``inject=True`` (``ccc run --inject``): the child also loads the in-process client
(inject.cjs), and our link registers only while that client is absent; see :mod:`.inject_launch`.
The injection never types: it forwards each prompt/command to our private socket
(``run-<internal_id>.host.sock``, passed as ``CCC_HOST_SOCK``; :meth:`PtyHost.serve_host_socket`)
so it gets the same screen check, and asks us (``wait_ready``) when a declined message may be
tried again.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import logging
import os
import pty
import shutil
import signal
import struct
import sys
import termios
import tty
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import trio

from ..framing import is_safe_id
from ..hookcmd import read_session_file, session_file
from ..paste import ENTER_DELAY_S, DeliveryRefused, Keys, message_keys
from ..paths import Paths
from ..screen import BUSY, DIALOG, PANEL, PICKER, READY, ScreenState
from .inject_launch import (
    INJECT_GRACE_S,
    INJECT_WAIT_S,
    InjectAwareLink,
    inject_env,
    node_script_target,
)
from .keys import InputTracker
from .link import DELIVERED_MEMORY, HEARTBEAT_INTERVAL_S, STABLE_ID_PREFIX, SessionLink
from .screen_model import ScreenModel

log = logging.getLogger(__name__)

DEFAULT_COMMAND = "claude"
TYPING_GRACE_S = 2.0  # a user who typed this recently may be about to type more
QUIET_S = 1.0  # with no hook seen yet, the terminal must have been this quiet to type into it
# After we type a message, the next waits this long: the daemon learns the session is busy
# from the UserPromptSubmit hook (fired at once on submit), not from us.
DELIVERY_GUARD_S = 1.0
READY_POLL_S = 0.1  # after a decline, how often to check whether the session became free
# The screen must also have been still this long (whatever the hooks say): measured on 2.1.112,
# keys typed right after a redraw (the /model picker closing) can be lost.
SCREEN_SETTLE_S = 0.5
CONFIRM_S = 3.0  # after the Enter, how long the screen may take to show the submission
CONFIRM_POLL_S = 0.05
# After the Enter, a screen in one of these states (and different from before the typing) shows
# the text left the input box: a turn started, or a command opened its picker/panel/dialog.
_SUBMITTED_KINDS = (READY, BUSY, PICKER, PANEL, DIALOG)
DRAIN_AFTER_EXIT_S = 0.5  # output still in the pty when the child exits is shown, for this long
READ_CHUNK_BYTES = 65536
DEFAULT_WINSIZE = (24, 80)  # rows, cols when no terminal tells us
HOST_READ_TIMEOUT_S = 5.0  # the injection sends its one line at once; a silent peer is dropped
HOST_MAX_LINE_BYTES = 1024 * 1024  # the daemon's own line limit
HOST_MAX_CONNECTIONS = 8  # the injection forwards one message at a time
HOST_WAIT_READY_S = 600.0  # a "wait_ready" is answered by then anyway (the injection asks again)

EVAL_ERROR = (
    "this session client (a pseudo-terminal wrapper) cannot evaluate code; "
    "start claude with `ccc run --inject` for eval"
)
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)


# --- terminal helpers ---------------------------------------------------------------------


def _get_winsize(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (rows, cols) if rows and cols else None


def _set_winsize(fd: int, size: tuple[int, int]) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def _initial_winsize(stdin_fd: int, stdout_fd: int) -> tuple[int, int]:
    for fd in (stdin_fd, stdout_fd):
        size = _get_winsize(fd)
        if size:
            return size
    try:
        return (int(os.environ["LINES"]), int(os.environ["COLUMNS"]))
    except (KeyError, ValueError):
        return DEFAULT_WINSIZE


def _exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal number."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _write_all_blocking(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# --- the host -----------------------------------------------------------------------------


class PtyHost:
    """The running child on its pty: pumps, state for the idle checks, and delivery.

    Times are Trio's clock (``trio.current_time()``).
    """

    def __init__(
        self,
        master_fd: int,
        child_pid: int,
        *,
        stdin_fd: int = 0,
        stdout_fd: int = 1,
        enter_delay_s: float = ENTER_DELAY_S,
        typing_grace_s: float = TYPING_GRACE_S,
        quiet_s: float = QUIET_S,
        delivery_guard_s: float = DELIVERY_GUARD_S,
        on_ready: Callable[[], None] | None = None,
        winsize: tuple[int, int] = DEFAULT_WINSIZE,
        confirm_s: float = CONFIRM_S,
        screen_settle_s: float = SCREEN_SETTLE_S,
    ) -> None:
        self.master_fd = master_fd
        self.child_pid = child_pid
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.enter_delay_s = enter_delay_s
        self.typing_grace_s = typing_grace_s
        self.quiet_s = quiet_s
        self.delivery_guard_s = delivery_guard_s
        self.confirm_s = confirm_s
        self.screen_settle_s = screen_settle_s
        # What the child shows, from every byte it writes (see screen_model).
        self.screen = ScreenModel(*winsize)
        # Called when a session that declined a message becomes free again (the link sends a
        # heartbeat at once, so the daemon can retry its outbox without waiting for a hook).
        self.on_ready = on_ready
        self._declined = trio.Event()
        self._declined_state: str | None = None
        # Set (and replaced) each time a session that declined becomes free again: the
        # injection's "wait_ready" requests wait on it (see serve_host_socket).
        self.became_ready = trio.Event()
        self.tracker = InputTracker()
        self.last_output: float | None = None
        self.last_delivery: float | None = None
        self.started_at = 0.0
        self.exited = False
        self.delivered = 0
        # One writer at a time into the pty: a delivery's paste, delay and Enter are atomic
        # with respect to the user's keystrokes.
        self.write_lock = trio.Lock()
        self._stdout_broken = False
        self._stdout_limiter = trio.CapacityLimiter(1)

    # --- delivery -------------------------------------------------------------------------

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The link's handler: type a prompt or command if the session is free, else say why not.

        Answers (the ``response`` fields): ``status: "not_idle"`` + ``error`` (the reason) +
        ``data.reason`` when nothing was typed (the daemon queues it); ``status: "submitted"``
        when the screen showed the text leave the input box after the Enter; ``status:
        "typed"`` + ``data.seen`` when it was typed but the screen did not confirm it within
        ``confirm_s`` (the daemon then waits for UserPromptSubmit); ``error`` alone for a
        message that can never be typed.
        """
        kind = msg.get("type")
        if kind == "eval":
            return {"error": EVAL_ERROR}
        if kind not in ("prompt", "command"):
            return {"error": f"this session client cannot handle {str(kind)[:40]!r} messages"}
        try:
            keys = message_keys(msg)
        except DeliveryRefused as exc:
            return {"error": str(exc)}
        data = msg.get("data")
        state = data.get("state") if isinstance(data, dict) else None
        # A screen that is right but still moving (a redraw just now): wait for it briefly
        # rather than decline (bounded; the real check is made again under the lock).
        with trio.move_on_after(2 * self.screen_settle_s + READY_POLL_S):
            while (found := self.not_idle(trio.current_time(), state)) and found[0] == "settling":  # noqa: ASYNC110 - the passing of time
                await trio.sleep(self.screen_settle_s / 5 or READY_POLL_S)
        async with self.write_lock:
            if self.exited:
                return {
                    "error": "the program in this session has exited; nothing was typed "
                    "(start it again with `ccc run`)"
                }
            found = self.not_idle(trio.current_time(), state)
            if found:
                code, reason = found
                log.info("declined %s %s: %s", kind, msg.get("request_id"), reason)
                self._declined_state = state
                self._declined.set()
                out: dict[str, Any] = {"reason": code}
                if code == "screen":
                    out["screen"] = self.screen.classify().kind
                return {"error": reason, "status": "not_idle", "data": out}
            before = self.screen.text()
            await self._write_master(keys.body)
            # Enter must be its own write, later: in the same burst it is taken as pasted text.
            await trio.sleep(self.enter_delay_s)
            await self._write_master(keys.enter)
            self.last_delivery = trio.current_time()
            self.delivered += 1
        log.info("typed %s %s (%d bytes)", kind, msg.get("request_id"), len(keys.body))
        seen = await self.confirm(keys, before)
        if seen is None:
            log.info("submitted %s %s", kind, msg.get("request_id"))
            return {"status": "submitted", "data": {"delivered_via": "pty", "confirmed": True}}
        log.info("typed %s %s, not confirmed: %s", kind, msg.get("request_id"), seen)
        return {
            "status": "typed",
            "data": {"delivered_via": "pty", "confirmed": False, "seen": seen},
        }

    async def confirm(self, keys: Keys, before: str) -> str | None:
        """Wait up to ``confirm_s`` for the screen to show the typed text left the input box
        (None), else return what the screen showed."""
        state: ScreenState = self.screen.classify()
        with trio.move_on_after(self.confirm_s):
            while True:
                if self.exited:
                    return None  # e.g. /exit: the program took the command and ended
                state = self.screen.classify()
                if state.kind in _SUBMITTED_KINDS and self.screen.text() != before:
                    return None
                await trio.sleep(CONFIRM_POLL_S)
        if self.screen.text() == before:
            return f"the screen did not change after typing ({state.describe()})"
        return state.describe()

    def not_idle_reason(self, now: float, state: str | None = None) -> str | None:
        """Why typing into the session now could clobber the human (None: it is safe).

        ``state`` is the daemon's view from the hooks, if it sent one; only ``"idle"`` lets
        us skip the quiet-terminal check.
        """
        found = self.not_idle(now, state)
        return found[1] if found else None

    def not_idle(self, now: float, state: str | None = None) -> tuple[str, str] | None:
        """``(code, sentence)`` for :meth:`not_idle_reason`; codes: ``draft``, ``typing``,
        ``just_delivered``, ``not_quiet``, ``screen`` (the screen is not Claude Code's empty
        input box; checked whatever ``state`` says: any local client can fake a Stop hook),
        ``settling`` (the right screen, but it changed less than ``screen_settle_s`` ago)."""
        if self.tracker.has_draft:
            return "draft", (
                "the user has an unsent draft in this session's input box, so nothing was typed; "
                "the message waits until the draft is sent or cleared"
            )
        if self.tracker.typed_within(self.typing_grace_s, now):
            return "typing", (
                f"the user typed in this session less than {self.typing_grace_s:g} s ago, so "
                "nothing was typed; the message waits until the session is idle"
            )
        if self.last_delivery is not None and now - self.last_delivery < self.delivery_guard_s:
            return "just_delivered", (
                f"another message was typed into this session less than {self.delivery_guard_s:g} s "
                "ago; the message waits until the session is idle"
            )
        if state != "idle":
            last_activity = max(
                t
                for t in (self.started_at, self.last_output, self.tracker.last_input)
                if t is not None
            )
            if now - last_activity < self.quiet_s:
                return "not_quiet", (
                    "no hook has said this session is idle and its terminal was active less than "
                    f"{self.quiet_s:g} s ago, so nothing was typed; the message waits until the "
                    "session is idle"
                )
        screen = self.screen.classify()
        if not screen.ready:
            return "screen", f"{screen.reason}; nothing was typed, the message waits"
        if self.last_output is not None and now - self.last_output < self.screen_settle_s:
            return "settling", (
                f"the screen changed less than {self.screen_settle_s:g} s ago, so nothing was "
                "typed; the message waits until it is still"
            )
        return None

    def input_idle(self, now: float) -> bool:
        """No draft, no recent typing, no recent delivery (the hooks' state aside)."""
        return self.not_idle_reason(now, "idle") is None

    async def watch_declines(self) -> NoReturn:
        """After each decline, wait until the session is free by our own rules, then call
        ``on_ready`` once."""
        while True:
            await self._declined.wait()
            self._declined = trio.Event()
            # Polling, because "the terminal has been quiet for a while" is the passing of
            # time, not an event.
            while self.not_idle_reason(trio.current_time(), self._declined_state) is not None:  # noqa: ASYNC110
                await trio.sleep(READY_POLL_S)
            self.became_ready.set()
            self.became_ready = trio.Event()
            if self.on_ready is not None and not self.exited:
                self.on_ready()

    # --- the injection's delivery socket (``ccc run --inject``) --------------------------

    async def serve_host_socket(
        self, path: Path, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``path`` for the in-process client (inject.cjs): one JSON line in (a routed
        prompt/command), :meth:`handle`'s answer out, close. So a message the daemon sends
        through the injection gets the same screen check and confirmation as one sent to us;
        the injection never types by itself. A ``sched-`` id already typed is answered from
        memory, not typed again (the daemon retries under the same id)."""
        import socket as stdsocket

        from ..framing import LineFramer, RemoteProtocolError, decode_object, encode_dict

        sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        await sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(HOST_MAX_CONNECTIONS)
        listener = trio.SocketListener(sock)
        limiter = trio.CapacityLimiter(HOST_MAX_CONNECTIONS)
        answered: dict[str, dict[str, Any]] = {}

        async def serve(stream: trio.SocketStream) -> None:
            async with stream:
                framer = LineFramer(HOST_MAX_LINE_BYTES)
                lines: list[bytes] = []
                with trio.move_on_after(HOST_READ_TIMEOUT_S):
                    while not lines:
                        chunk = await stream.receive_some(65536)
                        if not chunk:
                            return
                        try:
                            lines = framer.feed(chunk)
                        except RemoteProtocolError:
                            return  # over-long: not the injection
                if not lines:
                    return
                try:
                    msg = decode_object(lines[0])
                except RemoteProtocolError as exc:
                    reply: dict[str, Any] = {"error": f"bad message: {exc}"}
                else:
                    if msg.get("type") == "wait_ready":
                        # The injection's link is the one on the daemon: it asks us to say
                        # when a declined message can be tried again (it then heartbeats).
                        with trio.move_on_after(HOST_WAIT_READY_S):
                            await self.became_ready.wait()
                        await stream.send_all(encode_dict({"status": "ready"}))
                        return
                    rid = msg.get("request_id")
                    stable = isinstance(rid, str) and rid.startswith(STABLE_ID_PREFIX)
                    if stable and rid in answered:
                        reply = answered[rid]
                    else:
                        reply = await self.handle(msg)
                        if stable and isinstance(rid, str) and not reply.get("error"):
                            answered[rid] = reply
                            while len(answered) > DELIVERED_MEMORY:
                                answered.pop(next(iter(answered)))
                try:
                    await stream.send_all(encode_dict(reply))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    log.info("the in-process client went away before our answer")

        async def guarded(stream: trio.SocketStream) -> None:
            if limiter.available_tokens == 0:
                await stream.aclose()  # more than the injection ever opens: not ours
                return
            async with limiter:
                await serve(stream)

        async with listener, trio.open_nursery() as nursery:
            task_status.started()
            while True:
                stream = await listener.accept()
                nursery.start_soon(guarded, stream)

    # --- pumps ----------------------------------------------------------------------------

    async def _write_master(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master_fd, view)
            except BlockingIOError:
                # The child is not reading its input right now; wait for room.
                await trio.lowlevel.wait_writable(self.master_fd)
                continue
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return  # the child is gone; its exit is handled elsewhere
                raise
            view = view[written:]

    async def pump_input(self) -> None:
        """User's terminal → pty, until the user's side reaches EOF (then input just stops)."""
        use_thread = False
        while True:
            if not use_thread:
                try:
                    await trio.lowlevel.wait_readable(self.stdin_fd)
                except OSError:
                    # epoll refuses regular files and /dev/null: read those in a thread.
                    use_thread = True
            try:
                if use_thread:
                    data = await trio.to_thread.run_sync(
                        os.read, self.stdin_fd, READ_CHUNK_BYTES, abandon_on_cancel=True
                    )
                else:
                    data = os.read(self.stdin_fd, READ_CHUNK_BYTES)
            except BlockingIOError:
                continue
            except OSError as exc:
                log.info("stopped reading the user's terminal: %s", exc)
                return
            if not data:
                return
            async with self.write_lock:
                self.tracker.feed(data, trio.current_time())
                await self._write_master(data)

    async def pump_output(self, done: trio.Event) -> None:
        """pty → user's terminal, until the pty reports the child side closed."""
        try:
            while True:
                await trio.lowlevel.wait_readable(self.master_fd)
                try:
                    data = os.read(self.master_fd, READ_CHUNK_BYTES)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:  # Linux: every slave fd is closed
                        return
                    raise
                if not data:
                    return
                self.last_output = trio.current_time()
                self.screen.feed(data)
                await self._write_stdout(data)
        finally:
            done.set()

    async def _write_stdout(self, data: bytes) -> None:
        if self._stdout_broken:
            return  # the terminal went away; keep draining so the child never blocks
        try:
            # A thread, not the event loop: a stalled terminal must not freeze delivery and
            # heartbeats. The limiter of 1 keeps the chunks in order.
            await trio.to_thread.run_sync(
                _write_all_blocking,
                self.stdout_fd,
                data,
                abandon_on_cancel=True,
                limiter=self._stdout_limiter,
            )
        except OSError as exc:
            log.info("the user's terminal stopped taking output: %s", exc)
            self._stdout_broken = True

    async def watch_signals(self, signals: Any) -> None:
        async for signum in signals:
            if signum == signal.SIGWINCH:
                size = _get_winsize(self.stdin_fd) or _get_winsize(self.stdout_fd)
                if size:
                    try:
                        _set_winsize(self.master_fd, size)  # the kernel tells the child
                    except OSError:
                        pass
                    self.screen.resize(*size)
                continue
            log.info("forwarding signal %d to the child %d", signum, self.child_pid)
            try:
                os.kill(self.child_pid, signum)
            except ProcessLookupError:
                pass

    async def wait_child(self) -> int:
        """Wait for the child to exit; return its wait status."""
        try:
            pidfd = os.pidfd_open(self.child_pid)
        except (AttributeError, OSError):
            pidfd = None
        try:
            while True:
                pid, status = os.waitpid(self.child_pid, os.WNOHANG)  # noqa: ASYNC222 - never blocks
                if pid:
                    self.exited = True
                    return status
                if pidfd is not None:
                    await trio.lowlevel.wait_readable(pidfd)
                else:
                    await trio.sleep(0.05)
        finally:
            if pidfd is not None:
                os.close(pidfd)


# --- entry point --------------------------------------------------------------------------


async def _run_host(
    host: PtyHost,
    *,
    socket_path: Path,
    internal_id: str,
    metadata: Any,
    heartbeat_interval_s: float,
    raw_fd: int | None,
    link_factory: Callable[..., SessionLink] = SessionLink,
    host_sock: Path | None = None,
) -> int:
    host.started_at = trio.current_time()
    with trio.open_signal_receiver(signal.SIGWINCH, *_FORWARDED_SIGNALS) as signals:
        saved = None
        if raw_fd is not None:
            saved = termios.tcgetattr(raw_fd)
        try:
            if raw_fd is not None:
                tty.setraw(raw_fd, termios.TCSANOW)
            async with trio.open_nursery() as nursery:
                if host_sock is not None:
                    await nursery.start(host.serve_host_socket, host_sock)
                nursery.start_soon(host.watch_signals, signals)
                nursery.start_soon(host.pump_input)
                output_done = trio.Event()
                nursery.start_soon(host.pump_output, output_done)
                link = link_factory(
                    socket_path,
                    internal_id,
                    host.handle,
                    metadata=metadata,
                    heartbeat_interval_s=heartbeat_interval_s,
                )
                host.on_ready = link.heartbeat_now
                nursery.start_soon(host.watch_declines)
                nursery.start_soon(link.run)
                status = await host.wait_child()
                with trio.move_on_after(DRAIN_AFTER_EXIT_S):
                    await output_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            if saved is not None:
                try:
                    termios.tcsetattr(raw_fd, termios.TCSADRAIN, saved)  # type: ignore[arg-type]
                except termios.error:
                    pass  # the terminal is gone (hangup): nothing left to restore
    return _exit_code(status)


def _create_session_file(paths: Paths, path: Path) -> None:
    try:
        paths.ensure_dir()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(path, flags, 0o600)  # O_NONBLOCK: a planted FIFO fails, never blocks
        os.close(fd)
    except OSError as exc:
        log.warning("cannot create %s (the session id will come from the daemon): %s", path, exc)


def _resolve_executable(command: str) -> str | None:
    if "/" in command:
        return command if os.access(command, os.X_OK) and not os.path.isdir(command) else None
    return shutil.which(command)


def _configure_logging(log_path: Path | None) -> None:
    """Never log into the user's terminal: that would corrupt the program's screen."""
    logger = logging.getLogger("ccc_statusd")
    logger.propagate = False
    if log_path is not None:
        handler: logging.Handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()
    logger.addHandler(handler)


def run_command(
    argv: Sequence[str],
    *,
    paths: Paths,
    enter_delay_s: float = ENTER_DELAY_S,
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
    typing_grace_s: float = TYPING_GRACE_S,
    quiet_s: float = QUIET_S,
    delivery_guard_s: float = DELIVERY_GUARD_S,
    confirm_s: float = CONFIRM_S,
    screen_settle_s: float = SCREEN_SETTLE_S,
    internal_id: str | None = None,
    log_path: Path | None = None,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    inject: bool = False,
    inject_wait_s: float = INJECT_WAIT_S,
    inject_grace_s: float = INJECT_GRACE_S,
    name: str | None = None,
) -> int:
    """Run ``argv`` (default ``claude``) as a session client; return its exit status
    (exit code, or 128 + signal number; 127 if the command is not found). ``inject``: also load
    the in-process client into the child (enables eval; see inject_launch)."""
    argv = list(argv) or [DEFAULT_COMMAND]
    exe = _resolve_executable(argv[0])
    if exe is None:
        print(
            f"ccc run: command not found: {argv[0]!r}; check that it is installed and on PATH",
            file=sys.stderr,
        )
        return 127
    internal_id = internal_id or str(uuid.uuid4())
    if not is_safe_id(internal_id):
        print(
            f"ccc run: {internal_id!r} is not a plain id; use letters, digits, '-', '_', '.'",
            file=sys.stderr,
        )
        return 2
    _configure_logging(log_path)
    # Before the child starts: its first SessionStart hook writes the session id here.
    sid_file = session_file(paths.cache_dir, internal_id)
    _create_session_file(paths, sid_file)
    env = dict(os.environ)
    env["CCC_INTERNAL_ID"] = internal_id
    if name:
        env["CCC_SESSION_NAME"] = name  # the in-process client (--inject) registers it too
    env["CCC_CACHE_DIR"] = str(paths.cache_dir)
    link_factory: Callable[..., SessionLink] = SessionLink
    host_sock: Path | None = None
    if inject:
        # The injection forwards prompts and commands here, so they get our screen check.
        host_sock = paths.cache_dir / f"run-{internal_id}.host.sock"
        env["CCC_HOST_SOCK"] = str(host_sock)
        try:
            env = inject_env(
                env,
                socket_path=paths.socket,
                internal_id=internal_id,
                debug_log=log_path,
                target=node_script_target(exe),
            )
        except FileNotFoundError as exc:
            sid_file.unlink(missing_ok=True)
            print(f"ccc run: {exc}", file=sys.stderr)
            return 1
        link_factory = partial(InjectAwareLink, wait_s=inject_wait_s, grace_s=inject_grace_s)
    winsize = _initial_winsize(stdin_fd, stdout_fd)

    pid, master_fd = pty.fork()
    if pid == 0:  # the child: only async-signal-safe work until exec
        try:
            _set_winsize(0, winsize)
            # Python ignores SIGPIPE (and SIGXFSZ); a normal program expects the default.
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            os.execve(exe, argv, env)
        except BaseException as exc:  # noqa: BLE001 - the child must never return
            os.write(2, f"ccc run: cannot start {argv[0]!r}: {exc}\r\n".encode())
        finally:
            os._exit(127)

    os.set_blocking(master_fd, False)
    raw_fd = stdin_fd if os.isatty(stdin_fd) else None
    host = PtyHost(
        master_fd,
        pid,
        stdin_fd=stdin_fd,
        stdout_fd=stdout_fd,
        enter_delay_s=enter_delay_s,
        typing_grace_s=typing_grace_s,
        quiet_s=quiet_s,
        delivery_guard_s=delivery_guard_s,
        winsize=winsize,
        confirm_s=confirm_s,
        screen_settle_s=screen_settle_s,
    )
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    cwd = os.getcwd()

    def metadata() -> dict[str, Any]:
        data: dict[str, Any] = {
            "claude_config_dir": config_dir or str(Path.home() / ".claude"),
            "kind": "pty",
            "name": name,
            "pid": os.getpid(),
            "child_pid": pid,
            "command": os.path.basename(argv[0]),
            "cwd": cwd,
            "tmux_pane": os.environ.get("TMUX_PANE"),
            "config_dir": config_dir,
            "capabilities": ["prompt", "command"],
            "draft": host.tracker.has_draft,
            "input_idle": host.input_idle(trio.current_time()),
            "screen": host.screen.classify().kind,
            # Written by `ccc hook` on SessionStart: always the current id, even after /clear.
            "session_id": read_session_file(sid_file),
        }
        return {k: v for k, v in data.items() if v is not None}

    try:
        return trio.run(
            lambda: _run_host(
                host,
                socket_path=paths.socket,
                internal_id=internal_id,
                metadata=metadata,
                heartbeat_interval_s=heartbeat_interval_s,
                raw_fd=raw_fd,
                link_factory=link_factory,
                host_sock=host_sock,
            )
        )
    finally:
        os.close(master_fd)
        if host_sock is not None:
            host_sock.unlink(missing_ok=True)
        try:
            sid_file.unlink()
        except OSError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ccc_statusd.session.pty_host [options] [--] COMMAND...`` (what ``ccc run`` does)."""
    parser = argparse.ArgumentParser(prog="ccc run", description=run_command.__doc__)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--enter-delay", type=float, default=ENTER_DELAY_S, metavar="S")
    parser.add_argument("--typing-grace", type=float, default=TYPING_GRACE_S, metavar="S")
    parser.add_argument("--quiet", type=float, default=QUIET_S, metavar="S")
    parser.add_argument("--delivery-guard", type=float, default=DELIVERY_GUARD_S, metavar="S")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_INTERVAL_S, metavar="S")
    parser.add_argument("--confirm", type=float, default=CONFIRM_S, metavar="S")
    parser.add_argument("--screen-settle", type=float, default=SCREEN_SETTLE_S, metavar="S")
    parser.add_argument("--internal-id", default=None)
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--inject", action="store_true")
    parser.add_argument("--name", default=None)
    parser.add_argument("--inject-wait", type=float, default=INJECT_WAIT_S, metavar="S")
    parser.add_argument("--inject-grace", type=float, default=INJECT_GRACE_S, metavar="S")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    paths = Paths(args.cache_dir) if args.cache_dir else Paths.default()
    return run_command(
        command,
        paths=paths,
        enter_delay_s=args.enter_delay,
        heartbeat_interval_s=args.heartbeat,
        typing_grace_s=args.typing_grace,
        quiet_s=args.quiet,
        delivery_guard_s=args.delivery_guard,
        confirm_s=args.confirm,
        screen_settle_s=args.screen_settle,
        internal_id=args.internal_id,
        log_path=args.log,
        inject=args.inject,
        inject_wait_s=args.inject_wait,
        inject_grace_s=args.inject_grace,
        name=args.name,
    )


if __name__ == "__main__":
    sys.exit(main())
