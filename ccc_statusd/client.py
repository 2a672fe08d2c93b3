"""The blocking client (the send path): one Unix socket, one JSON line out, one line back.

Standard library only, and only the cheap parts of it: ``ccc prompt`` / ``ccc command`` run this
in tight loops and must start in about the time of a bare interpreter (SPEC §6, issue 9), so no
trio, anyio, asyncio, pydantic, typer, rich or sqlite_utils, and nothing a bare interpreter has
not already loaded except two C modules (a test checks the list):

- ``_socket``, not ``socket``: the ``socket`` wrapper imports ``selectors``, ``enum`` and
  ``collections`` (~7 ms of a ~11 ms bare start-up, measured), for methods we do not use;
- ``fastjson`` (``_json``), not ``json`` (which pulls in ``re`` and ``enum``);
- no ``typing``, ``collections.abc``, ``itertools`` at run time (annotations only), and no
  ``pathlib``: :func:`default_socket_path` restates ``paths.resolve_cache_dir`` with
  ``os.path`` (a test keeps the two in agreement); ``ccc hook`` and ``ccc statusline`` use it too.

Errors are exceptions named by who is at fault, each ``str()`` one sentence saying what to do:
:class:`DaemonNotRunning` (nothing to connect to; the CLI exits 3), :class:`DaemonError` (the
daemon or the session answered with an error; exit 1) and its subclass :class:`DaemonTimeout`.

Usage::

    with Client() as c:
        c.prompt("abcd1234", "run the tests")        # -> {"status": "delivered", ...}
        c.query("list_sessions")                     # -> [ {...}, ... ]
"""

from __future__ import annotations

import _socket
import os

from . import fastjson
from .peercheck import foreign_server
from .wire import routed_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from typing import Any

# A routed message waits up to the daemon's request timeout (10 s by default, SPEC §4) for the
# session's answer; we wait a little longer so that the daemon's own, more precise, timeout
# error reaches the user instead of ours.
DEFAULT_TIMEOUT_S = 15.0
ASK_MARGIN_S = 10.0  # the daemon times an ask out itself; this only covers a daemon that hangs
# The daemon is local: it accepts in microseconds. A connect that takes this long means a wedged
# daemon, and the user should hear so rather than wait the whole request timeout.
CONNECT_TIMEOUT_S = 2.0
# Replies are small (a list of sessions is the biggest, tens of KiB); refuse to buffer without
# bound if something other than the daemon answers on the socket. Same as the daemon's limit.
MAX_REPLY_BYTES = 16 * 1024 * 1024
RECV_CHUNK_BYTES = 65536

START_HINT = "ccc-statusd"
SOCKET_NAME = "daemon.sock"


class ClientError(Exception):
    """Base of the client's errors; ``str(exc)`` is one sentence for the user."""

    exit_code = 1


class DaemonNotRunning(ClientError):
    """No daemon listens on the socket (missing, stale, or refusing connections)."""

    exit_code = 3


class DaemonError(ClientError):
    """The daemon (or the session behind it) answered with an error; ``response`` is the reply."""

    exit_code = 1

    def __init__(self, message: str, response: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.response = response or {}


class DaemonTimeout(DaemonError):
    """No answer within the client's timeout (the daemon is hung or overloaded)."""


# --- where the socket is ------------------------------------------------------------------


def default_cache_dir(env: Mapping[str, str] | None = None) -> str:
    """``paths.resolve_cache_dir`` with ``os.path`` only (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("CCC_CACHE_DIR"):
        return os.path.expanduser(env["CCC_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return os.path.join(env["XDG_CACHE_HOME"], "ccc-status")
    home = env.get("HOME")
    if home and os.path.isabs(home) and os.path.isdir(home) and os.access(home, os.W_OK | os.X_OK):
        return os.path.join(home, ".cache", "ccc-status")
    return f"/tmp/ccc-status-{os.getuid()}"


def default_socket_path(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(default_cache_dir(env), SOCKET_NAME)


def display(path: str) -> str:
    """A path as people write it (``~/.cache/...``); the same rule as ``paths.display``."""
    home = os.environ.get("HOME")
    if home and home != "/" and path.startswith(home.rstrip("/") + "/"):
        return "~" + path[len(home.rstrip("/")) :]
    return path


def start_hint(socket_path: str) -> str:
    """The command that starts a daemon serving ``socket_path``."""
    if socket_path == default_socket_path() or os.path.basename(socket_path) != SOCKET_NAME:
        return START_HINT
    return f"{START_HINT} --cache-dir {display(os.path.dirname(socket_path))}"


def not_running(socket_path: str, why: str | None = None) -> DaemonNotRunning:
    shown = display(socket_path)
    detail = why or (
        f"no socket at {shown}"
        if not os.path.exists(socket_path)
        else f"nothing answers on {shown}"
    )
    return DaemonNotRunning(
        f"daemon not running ({detail}); start it with: {start_hint(socket_path)}"
    )


# --- the client ---------------------------------------------------------------------------


class Client:
    """A blocking connection to the daemon; requests are answered in order, one line each.

    Connects on first use and keeps the connection for later requests; ``close()`` (or the
    ``with`` block) ends it. Not thread-safe: use one client per thread.
    """

    def __init__(
        self, socket_path: str | os.PathLike[str] | None = None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.socket_path = (
            os.fspath(socket_path) if socket_path is not None else default_socket_path()
        )
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._buf = b""
        self._last_id = 0
        self._prefix = f"c{os.getpid()}-"

    # --- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect now (otherwise the first request does). Raises DaemonNotRunning."""
        if self._sock is not None:
            return
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(min(self.timeout, CONNECT_TIMEOUT_S))
        try:
            sock.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise not_running(self.socket_path) from None
        except TimeoutError:
            sock.close()
            raise DaemonTimeout(
                f"the daemon on {display(self.socket_path)} did not accept a connection within "
                f"{min(self.timeout, CONNECT_TIMEOUT_S):g} s; it may be hung: restart it"
            ) from None
        except OSError as exc:
            sock.close()
            raise not_running(
                self.socket_path, f"cannot connect to {display(self.socket_path)}: {exc.strerror}"
            ) from None
        foreign = foreign_server(sock, self.socket_path)
        if foreign is not None:
            sock.close()
            raise not_running(self.socket_path, foreign)
        sock.settimeout(self.timeout)
        self._sock = sock
        self._buf = b""

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one request ------------------------------------------------------------------------

    def request(self, message: dict[str, Any], *, check: bool = True) -> dict[str, Any]:
        """Send one message, return the daemon's response.

        A ``request_id`` is added when missing. With ``check`` (the default) a response carrying
        an ``error`` raises DaemonError. Raises DaemonNotRunning, DaemonTimeout.
        """
        msg = dict(message)
        self._last_id += 1
        msg.setdefault("request_id", f"{self._prefix}{self._last_id}")
        line = fastjson.dumps(msg, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        self.connect()
        assert self._sock is not None
        try:
            self._sock.sendall(line)
            reply = self._read_line()
        except TimeoutError:
            self.close()  # a late reply would be taken for the next request's: start afresh
            raise DaemonTimeout(
                f"no answer from the daemon within {self.timeout:g} s; it may be hung or busy: "
                "check it with: ccc status"
            ) from None
        except (BrokenPipeError, ConnectionResetError):
            # The daemon may have refused us (connection cap, another user) with a line that
            # is still readable: that sentence says more than "closed".
            refusal = self._leftover_error()
            self.close()
            raise DaemonError(
                refusal
                or "the daemon closed the connection before answering; it may have stopped or "
                "restarted: check it with: ccc status"
            ) from None
        try:
            response = fastjson.loads(reply)
        except ValueError:
            self.close()
            raise DaemonError(
                f"the daemon sent a reply that is not JSON ({reply[:60]!r}); is something else "
                f"listening on {display(self.socket_path)}?"
            ) from None
        if not isinstance(response, dict):
            self.close()
            raise DaemonError(
                "the daemon sent a reply that is not a JSON object; upgrade ccc and ccc-statusd together"
            )
        if check and response.get("error"):
            raise DaemonError(str(response["error"]), response)
        return response

    def _leftover_error(self) -> str | None:
        try:
            assert self._sock is not None
            self._sock.settimeout(0.2)
            obj = fastjson.loads(self._read_line())
        except Exception:
            return None
        return str(obj["error"]) if isinstance(obj, dict) and obj.get("error") else None

    def _read_line(self) -> bytes:
        assert self._sock is not None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[:nl], self._buf[nl + 1 :]
                if line.strip():
                    return line
                continue
            if len(self._buf) > MAX_REPLY_BYTES:
                self.close()
                raise DaemonError(
                    f"the daemon's reply is longer than {MAX_REPLY_BYTES} bytes; ask for less"
                )
            chunk = self._sock.recv(RECV_CHUNK_BYTES)
            if not chunk:
                self.close()
                raise DaemonError(
                    "the daemon closed the connection before answering; it may have stopped or "
                    "restarted: check it with: ccc status"
                )
            self._buf += chunk

    # --- the messages -----------------------------------------------------------------------

    def prompt(self, session: str, text: str) -> dict[str, Any]:
        """Send a prompt; returns the response (``status``: ``delivered`` or ``queued``)."""
        return self.request(prompt_message(session, text))

    def command(
        self, session: str, name: str, args: str | Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Send a slash command (leading ``/`` optional) with optional arguments."""
        return self.request(command_message(session, name, args))

    def eval(self, session: str, code: str) -> dict[str, Any]:
        """Evaluate JavaScript in the session (daemon started with ``--allow-eval``); the
        response's ``data`` is the result."""
        return self.request(eval_message(session, code))

    def ask(
        self,
        session: str,
        text: str,
        *,
        timeout_s: float = 600.0,
        asker: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send a prompt and wait for the reply of the turn it starts; the response's
        ``data["reply"]`` is the assistant's text. Waits up to ``timeout_s`` (plus a margin)."""
        old = self.timeout
        self.timeout = timeout_s + ASK_MARGIN_S
        try:
            if self._sock is not None:
                self._sock.settimeout(self.timeout)
            return self.request(ask_message(session, text, timeout_s, asker))
        finally:
            self.timeout = old
            if self._sock is not None:
                self._sock.settimeout(old)

    def subscribe(self, session: str | None = None) -> Iterator[dict[str, Any]]:
        """Turn this connection into the daemon's event stream; yields one dict per event until
        the daemon closes it (a final line with ``error`` raises DaemonError)."""
        fields = {"session_id": session} if session else {}
        self.request(query_message("subscribe", **fields))
        assert self._sock is not None
        self._sock.settimeout(None)
        while True:
            try:
                line = self._read_line()
            except DaemonError:
                return  # the daemon stopped: the stream simply ends
            event = fastjson.loads(line)
            if event.get("type") == "response" and event.get("error"):
                raise DaemonError(str(event["error"]), event)
            yield event

    def query(self, name: str, **fields: Any) -> Any:
        """Run a query (``ping``, ``status``, ``list_sessions``, ``session_path`` …); returns its ``data``."""
        return self.request(query_message(name, **fields)).get("data")


# --- message builders (shared with the async client) --------------------------------------


def ask_message(
    session: str, text: str, timeout_s: float, asker: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An ask; ``asker`` (default: this process's environment) lets the daemon refuse a session
    asking itself."""
    env = os.environ if asker is None else asker
    data: dict[str, Any] = {"timeout_s": timeout_s}
    if env.get("CCC_INTERNAL_ID"):
        data["internal_id"] = env["CCC_INTERNAL_ID"]
    if env.get("CLAUDE_CODE_SESSION_ID"):
        data["session_id"] = env["CLAUDE_CODE_SESSION_ID"]
    return {"type": "ask", "session_id": session, "text": text, "data": data}


def prompt_message(session: str, text: str) -> dict[str, Any]:
    return routed_message("prompt", session, text=text)


def command_message(
    session: str, name: str, args: str | Sequence[str] | None = None
) -> dict[str, Any]:
    text = args if isinstance(args, str) or args is None else " ".join(args)
    return routed_message("command", session, name=name, text=text or None)


def eval_message(session: str, code: str) -> dict[str, Any]:
    return routed_message("eval", session, code=code)


def query_message(name: str, **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "query", "query": name}
    msg.update({k: v for k, v in fields.items() if v is not None})
    return msg
