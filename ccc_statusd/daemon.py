"""``ccc-statusd``: start-up, the root nursery, and shutdown (SPEC §5).

Start-up: create the cache dir (0700); refuse to start if another daemon holds the pid lock or
answers on the socket (exit 1, naming its pid); remove a stale socket file; bind (0600); write
the pid. ``main`` does this *before* importing trio, pydantic and sqlite-utils, so the socket
accepts connections ~50 ms after exec instead of ~250 ms (they wait in the backlog while the
rest loads). Then the database is opened and one root nursery supervises, as siblings started with
``nursery.start``: signals, the server (and its connection tasks), the reaper, the scheduler,
the metadata flusher and the watchers. Shutdown (SIGTERM/SIGINT) is cancellation of that
nursery: connections close, the database is flushed and closed, socket and pid file removed,
exit 0. SIGHUP re-scans sessions.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import gc
import logging
import logging.handlers
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .config import DaemonConfig
from .oserrors import describe_error, describe_os_error
from .paths import FILE_MODE, Paths, UnsafeCacheDir, display

if TYPE_CHECKING:
    import trio

    from .hub import Hub
    from .server import Server

log = logging.getLogger("ccc_statusd")

LOG_MAX_BYTES = 5 * 1024 * 1024  # rotate daemon.log at 5 MiB, keep 3: bounded disk use
LOG_BACKUPS = 3
SWITCH_INTERVAL_S = 0.001


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def acquire_pid_lock(paths: Paths) -> int:
    """Open and exclusively lock ``daemon.pid``; returns the fd (held for the daemon's life)."""
    fd = os.open(
        paths.pid,
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
        FILE_MODE,
    )
    try:
        _require_regular(fd, paths.pid)
    except BaseException:
        os.close(fd)
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            os.close(fd)
            raise
        other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(
            f"ccc-statusd is already running (pid {other}, lock {display(paths.pid)}); "
            f"use it, or stop it first with: kill {other}"
        ) from None
    os.fchmod(fd, FILE_MODE)
    return fd


def _require_regular(fd: int, path: Path) -> None:
    import stat

    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        from .safeio import kind_of

        raise UnsafeCacheDir(
            path,
            f"is {kind_of(st.st_mode)} owned by uid {st.st_uid}, not a regular file of yours; "
            f"remove it (rm -r {path}) and start again",
        )


def write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())


def socket_answers(path: Path) -> bool:
    """Whether something accepts connections on the socket (then we must not replace it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


LISTEN_BACKLOG = 4096  # connections that may wait while the daemon starts or is busy


class Claim:
    """What start-up holds before the event loop runs: the pid lock and the bound socket."""

    def __init__(self, pid_fd: int, sock: socket.socket) -> None:
        self.pid_fd = pid_fd
        self.sock = sock


def claim(paths: Paths) -> Claim:
    """Take the pid lock, make sure no daemon answers, bind the socket (0600), write the pid.

    Plain stdlib, no event loop. Raises StartupError when another daemon runs, UnsafeCacheDir
    when the cache dir or a fixed file in it is not safely ours, OSError when a non-socket file
    is in the way.
    """
    paths.ensure_dir()
    paths.check_fixed_files()  # a planted symlink/dir/FIFO is refused before anything opens it
    pid_fd = acquire_pid_lock(paths)
    try:
        if socket_answers(paths.socket):
            raise StartupError(
                f"another daemon answers on {display(paths.socket)}; use it, or stop it first"
            )
        sock = bind_unix_socket(str(paths.socket))
    except BaseException:
        os.close(pid_fd)
        raise
    write_pid(pid_fd)
    return Claim(pid_fd, sock)


def bind_unix_socket(path: str) -> socket.socket:
    """Bind and listen at ``path`` with mode 0600, replacing a stale socket file only.

    A non-socket file at that path is left alone and reported instead of deleted.
    """
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(
                errno.EEXIST, f"{path} exists and is not a socket; move it away and start again"
            )
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)  # created 0600: no window in which others could connect
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def setup_logging(paths: Paths | None, level: str) -> None:
    root = logging.getLogger("ccc_statusd")
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    if paths is not None:
        # Create it, and make sure it is a regular file of ours before the handler opens it by
        # name: a planted symlink is not followed, a FIFO does not hang start-up.
        fd = os.open(
            paths.log,
            os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            FILE_MODE,
        )
        try:
            _require_regular(fd, paths.log)
        finally:
            os.close(fd)
        fileh = logging.handlers.RotatingFileHandler(
            paths.log, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        fileh.setFormatter(fmt)
        root.addHandler(fileh)
    root.propagate = False


async def run_daemon(
    config: DaemonConfig,
    *,
    handle_signals: bool = False,
    wall: Callable[[], float] = time.time,
    claimed: Claim | None = None,
    task_status: trio.TaskStatus[Hub] | None = None,
) -> None:
    """Run the daemon until cancelled (or SIGTERM/SIGINT when ``handle_signals``).

    ``claimed`` is the pid lock and bound socket when ``main`` took them before the loop ran
    (else this does it). ``task_status.started(hub)`` is called once it serves. ``wall``
    is the wall clock used for stored timestamps and ``send_at`` (tests pass one driven by
    Trio's MockClock). Raises StartupError when another daemon is running.
    """
    import trio

    from .hub import Hub
    from .liveness import run_liveness
    from .reaper import run_reaper
    from .scheduler import Scheduler
    from .server import Server
    from .store import Store
    from .storeworker import StoreWorker

    paths = config.paths
    with ExitStack() as stack:
        if claimed is None:
            claimed = claim(paths)
        stack.callback(os.close, claimed.pid_fd)
        stack.callback(_unlink, paths.pid)
        stack.callback(_unlink, paths.socket)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(claimed.sock))
        try:
            store = StoreWorker(
                await trio.to_thread.run_sync(Store, paths.db), inline=config.store_inline
            )
        except BaseException:
            await listener.aclose()
            raise
        scheduler = Scheduler(
            store,
            wall=wall,
            retry_s=config.scheduler_retry_s,
            max_total=config.max_scheduled,
            max_per_session=config.max_scheduled_per_session,
        )
        server = Server(config)
        server.fit_to_fd_limit()
        hub = Hub(config, store, scheduler, server, wall=wall)
        await hub.load()
        if os.environ.get("CCC_BENCH_INSTRUMENT"):
            from .instrument import LoopStats

            hub.loop_stats = LoopStats()
            trio.lowlevel.add_instrument(hub.loop_stats)
        log.info("ccc-statusd %s listening on %s (pid %d)", __version__, paths.socket, os.getpid())
        log.info("%s", server.peers.describe())
        for container, host in config.path_maps:
            log.info("path map: %s (container) is read at %s", container, host)
        try:
            async with trio.open_nursery() as nursery:
                if handle_signals:
                    await nursery.start(_watch_signals, nursery.cancel_scope, hub, server)
                await nursery.start(server.serve, listener, hub)
                await nursery.start(hub.persistence.run_flusher)
                await nursery.start(
                    partial(
                        run_reaper,
                        server,
                        interval_s=config.reaper_interval_s,
                        stale_after_s=config.stale_after_s,
                        idle_timeout_s=config.idle_timeout_s,
                    )
                )
                await nursery.start(scheduler.run, hub.delivery)
                await nursery.start(
                    partial(
                        run_liveness,
                        lambda: list(hub.directory.sessions.values()),
                        hub.directory.end,
                        wall=wall,
                        interval_s=config.liveness_interval_s,
                        silent_after_s=config.retention_s,
                        inline=config.store_inline,
                    )
                )
                await nursery.start(
                    partial(hub.persistence.run_pruner, retention_s=config.retention_s)
                )
                if config.enable_watchers:
                    from .discovery import run_watchers

                    await nursery.start(run_watchers, hub)
                # Everything made at start-up (modules, pydantic schemas) lives forever: keep it
                # out of the cyclic GC's reach, so a full collection does not stall the loop
                # for tens of milliseconds walking it again and again.
                gc.freeze()
                if task_status is not None:
                    task_status.started(hub)
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
                with trio.move_on_after(5):
                    try:
                        await hub.flush_metadata()
                    except Exception as exc:  # a full disk must not turn a stop into a crash
                        log.error(
                            "could not save session metadata at shutdown: %s", describe_error(exc)
                        )
                try:
                    await store.aclose()
                except Exception as exc:
                    log.error("could not close the database cleanly: %s", describe_error(exc))
            log.info("ccc-statusd stopped")


async def _watch_signals(
    cancel_scope: trio.CancelScope,
    hub: Hub,
    server: Server,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGHUP:
                log.info("SIGHUP: re-scanning sessions and the schedule")
                await hub.load()
                hub.scheduler.wake()
                continue
            log.info("%s: shutting down", signal.Signals(signum).name)
            # Requests in flight (a prompt being typed) get a short grace to be answered.
            await server.drain(hub.config.shutdown_grace_s)
            cancel_scope.cancel()
            return


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def build_parser() -> argparse.ArgumentParser:
    d = DaemonConfig(paths=Paths(Path(".")))
    p = argparse.ArgumentParser(
        prog="ccc-statusd",
        description="The ccc-statusd daemon (runs in the foreground; stop it with Ctrl-C or SIGTERM).",
    )
    p.add_argument("--version", action="version", version=f"ccc-statusd {__version__}")
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="where the socket, database and caches live (default: $CCC_CACHE_DIR, $XDG_CACHE_HOME/ccc-status, ~/.cache/ccc-status)",
    )
    p.add_argument(
        "--allow-eval",
        action="store_true",
        help="accept `eval` messages (off by default: it runs code inside Claude Code)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=d.request_timeout_s,
        metavar="S",
        help=f"seconds to wait for a session to answer a routed message (default {d.request_timeout_s:g})",
    )
    p.add_argument(
        "--max-line-bytes",
        type=int,
        default=d.max_line_bytes,
        metavar="N",
        help=f"longest accepted message line (default {d.max_line_bytes})",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=d.max_connections,
        metavar="N",
        help=f"simultaneous connections (default {d.max_connections})",
    )
    p.add_argument(
        "--outbound-queue",
        type=int,
        default=d.outbound_queue,
        metavar="N",
        help=f"lines queued per connection before a slow reader is cut off (default {d.outbound_queue})",
    )
    p.add_argument(
        "--reaper-interval",
        type=float,
        default=d.reaper_interval_s,
        metavar="S",
        help=f"how often stale connections are reaped (default {d.reaper_interval_s:g})",
    )
    p.add_argument(
        "--stale-after",
        type=float,
        default=d.stale_after_s,
        metavar="S",
        help=f"close session clients silent this long (default {d.stale_after_s:g})",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=d.idle_timeout_s,
        metavar="S",
        help=f"close other idle connections after this long (default {d.idle_timeout_s:g})",
    )
    p.add_argument(
        "--config-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="an extra Claude config dir to watch (repeatable)",
    )
    p.add_argument(
        "--no-watchers", action="store_true", help="do not watch transcripts, git or tmux"
    )
    p.add_argument(
        "--max-per-peer",
        type=int,
        default=d.max_per_peer,
        metavar="N",
        help=f"connections one process may hold (default {d.max_per_peer})",
    )
    p.add_argument(
        "--max-subscribers",
        type=int,
        default=d.max_subscribers,
        metavar="N",
        help=f"`ccc watch`/`ccc top` event streams at once (default {d.max_subscribers})",
    )
    p.add_argument(
        "--max-scheduled",
        type=int,
        default=d.max_scheduled,
        metavar="N",
        help=f"scheduled and queued messages in all (default {d.max_scheduled}; "
        f"{d.max_scheduled_per_session} per session)",
    )
    p.add_argument(
        "--retention",
        type=float,
        default=d.retention_s,
        metavar="S",
        help=f"forget ended sessions this many seconds after they end (default {d.retention_s:g})",
    )
    p.add_argument(
        "--allow-uid",
        type=_uid_arg,
        action="append",
        default=[],
        metavar="N",
        help="also accept connections from uid N, e.g. a rootful container's user (repeatable; "
        "the owner and root are always accepted)",
    )
    p.add_argument(
        "--path-map",
        type=_path_map_arg,
        action="append",
        default=[],
        metavar="CONTAINER=HOST",
        help="read a container's paths at the host dir they are mounted from, e.g. "
        "/workspace=/home/me/proj (repeatable; longest prefix wins)",
    )
    return p


def _uid_arg(text: str) -> int:
    from .peers import parse_uid

    try:
        return parse_uid(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _path_map_arg(text: str) -> tuple[str, str]:
    from .pathmap import parse_mapping

    try:
        return parse_mapping(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    paths = Paths(args.cache_dir.expanduser()) if args.cache_dir else Paths.default()
    return DaemonConfig(
        paths=paths,
        request_timeout_s=args.request_timeout,
        max_line_bytes=args.max_line_bytes,
        max_connections=args.max_connections,
        outbound_queue=args.outbound_queue,
        reaper_interval_s=args.reaper_interval,
        stale_after_s=args.stale_after,
        idle_timeout_s=args.idle_timeout,
        allow_eval=args.allow_eval,
        log_level=args.log_level,
        extra_config_dirs=list(args.config_dir),
        enable_watchers=not args.no_watchers,
        max_per_peer=args.max_per_peer,
        max_subscribers=args.max_subscribers,
        max_scheduled=args.max_scheduled,
        retention_s=args.retention,
        allow_uids=list(args.allow_uid),
        path_maps=_build_path_maps(args.path_map),
    )


def _build_path_maps(mappings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    from .pathmap import build

    return build(mappings)


def raise_fd_limit(wanted: int) -> None:
    """Lift the soft open-files limit toward the hard one: each connection is an fd."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class _StartupSignals:
    """SIGTERM/SIGINT from the first instant of start-up: recorded (never the default action,
    which would leave the socket and pid file behind) until the event loop takes over; then
    ``main`` or :func:`_serve` stops cleanly. Recording only, never raising: an exception raised
    from a signal handler in the middle of an import can be swallowed or leave it half done."""

    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handler)

    def _handler(self, signum: int, frame: object) -> None:
        self.received = signum


def release(claimed: Claim, paths: Paths) -> None:
    """Undo :func:`claim` (a stop before the event loop ran): close, then remove our files."""
    claimed.sock.close()
    _unlink(paths.socket)
    _unlink(paths.pid)
    os.close(claimed.pid_fd)


async def _serve(config: DaemonConfig, claimed: Claim, early: _StartupSignals) -> None:
    """``run_daemon`` with SIGTERM/SIGINT honoured during its own start-up too (opening the
    database, loading sessions), before its signal task takes over."""
    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("%s during start-up: shutting down", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    return

            if early.received is not None:
                log.info("%s during start-up: shutting down", signal.Signals(early.received).name)
                nursery.cancel_scope.cancel()
            nursery.start_soon(stop_on_signal)
            await run_daemon(config, handle_signals=True, claimed=claimed)
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    # pydantic looks for plugins through importlib.metadata (email, csv, zipfile...): ~1.4 MiB
    # and ~80 ms the daemon never uses. Set before pydantic is imported (after the bind).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:  # e.g. one container dir mapped twice
        parser.error(str(exc))
    try:
        config.paths.ensure_dir()
        config.paths.check_fixed_files()
    except UnsafeCacheDir as exc:
        print(f"ccc-statusd: refusing to start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"ccc-statusd: cannot create {config.paths.cache_dir}: {exc.strerror}; set CCC_CACHE_DIR to a writable dir",
            file=sys.stderr,
        )
        return 1
    try:
        setup_logging(config.paths, config.log_level)
    except OSError as exc:
        print(f"ccc-statusd: cannot open the log: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    raise_fd_limit(config.max_connections + 256)
    # Worker threads (SQLite, cache files) hold the GIL for up to the switch interval (5 ms by
    # default) each time the event loop wants it back; 1 ms bounds those stalls.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    early = _StartupSignals()
    early.install()  # from here on a SIGTERM/SIGINT is a clean stop, never the default action
    try:
        claimed = claim(config.paths)
    except (StartupError, UnsafeCacheDir) as exc:
        print(f"ccc-statusd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"ccc-statusd: cannot bind {display(config.paths.socket)}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    import trio

    if early.received is not None:  # stopped while trio loaded: no need to start the loop
        log.info("%s during start-up: shutting down", signal.Signals(early.received).name)
        release(claimed, config.paths)
        return 0
    try:
        trio.run(partial(_serve, config, claimed, early))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        log.error("ccc-statusd stopped: %s", describe_os_error(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
