"""The async client: the blocking client's methods on anyio, so it runs under asyncio and trio.

For Python programs that already run an event loop (an agent, a bot, a test harness). Same
messages, same errors (:mod:`ccc_statusd.client`'s ``DaemonNotRunning``, ``DaemonError``,
``DaemonTimeout``), same return values. One connection per client; concurrent requests from
several tasks are serialised by a lock because the daemon answers each connection in order.

Usage::

    async with AsyncClient() as c:
        await c.prompt("abcd1234", "run the tests")
        sessions = await c.query("list_sessions")
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from .client import (
    ASK_MARGIN_S,
    DEFAULT_TIMEOUT_S,
    MAX_REPLY_BYTES,
    DaemonError,
    DaemonTimeout,
    ask_message,
    command_message,
    default_socket_path,
    display,
    eval_message,
    not_running,
    prompt_message,
    query_message,
)
from .client import CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S
from .peercheck import foreign_server


class AsyncClient:
    """An async connection to the daemon (anyio: asyncio or trio).

    ``async with AsyncClient() as c`` connects on entry (raising DaemonNotRunning if there is
    no daemon) and closes on exit. Without ``async with``, the first request connects and
    :meth:`aclose` closes.
    """

    def __init__(
        self, socket_path: str | os.PathLike[str] | None = None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.socket_path = (
            os.fspath(socket_path) if socket_path is not None else default_socket_path()
        )
        self.timeout = timeout
        self._stream: SocketStream | None = None
        self._reader: BufferedByteReceiveStream | None = None
        self._lock = anyio.Lock()
        self._ids = itertools.count(1)
        self._prefix = f"a{os.getpid()}-{id(self):x}-"

    async def connect(self) -> None:
        """Connect now. Raises DaemonNotRunning, DaemonTimeout."""
        if self._stream is not None:
            return
        try:
            with anyio.fail_after(min(self.timeout, CONNECT_TIMEOUT_S)):
                stream = await anyio.connect_unix(self.socket_path)
        except TimeoutError:
            raise DaemonTimeout(
                f"the daemon on {display(self.socket_path)} did not accept a connection within "
                f"{min(self.timeout, CONNECT_TIMEOUT_S):g} s; it may be hung: restart it"
            ) from None
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise not_running(self.socket_path) from None
        except OSError as exc:
            raise not_running(
                self.socket_path, f"cannot connect to {display(self.socket_path)}: {exc.strerror}"
            ) from None
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        foreign = foreign_server(raw, self.socket_path) if raw is not None else None
        if foreign is not None:
            await stream.aclose()
            raise not_running(self.socket_path, foreign)
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)

    async def aclose(self) -> None:
        stream, self._stream, self._reader = self._stream, None, None
        if stream is not None:
            await stream.aclose()

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def request(self, message: dict[str, Any], *, check: bool = True) -> dict[str, Any]:
        """Send one message and return the daemon's response (see ``Client.request``)."""
        msg = dict(message)
        msg.setdefault("request_id", f"{self._prefix}{next(self._ids)}")
        line = (
            json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8", "surrogatepass"
            )
            + b"\n"
        )
        async with self._lock:
            await self.connect()
            assert self._stream is not None and self._reader is not None
            try:
                with anyio.fail_after(self.timeout):
                    await self._stream.send(line)
                    reply = await self._reader.receive_until(b"\n", MAX_REPLY_BYTES)
            except TimeoutError:
                await self.aclose()  # a late reply would be taken for the next request's
                raise DaemonTimeout(
                    f"no answer from the daemon within {self.timeout:g} s; it may be hung or "
                    "busy: check it with: ccc status"
                ) from None
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
                await self.aclose()
                raise DaemonError(
                    "the daemon closed the connection before answering; it may have stopped or "
                    "restarted: check it with: ccc status"
                ) from None
            except anyio.DelimiterNotFound:
                await self.aclose()
                raise DaemonError(
                    f"the daemon's reply is longer than {MAX_REPLY_BYTES} bytes; ask for less"
                ) from None
            except BaseException:
                # Cancelled from outside mid-request: the reply may still come and would be read
                # as the next request's, so this connection is done.
                stream, self._stream, self._reader = self._stream, None, None
                if stream is not None:
                    with anyio.CancelScope(shield=True):
                        await anyio.aclose_forcefully(stream)
                raise
        try:
            response = json.loads(reply)
        except ValueError:
            await self.aclose()
            raise DaemonError(
                f"the daemon sent a reply that is not JSON ({reply[:60]!r}); is something else "
                f"listening on {display(self.socket_path)}?"
            ) from None
        if not isinstance(response, dict):
            await self.aclose()
            raise DaemonError(
                "the daemon sent a reply that is not a JSON object; upgrade ccc and ccc-statusd together"
            )
        if check and response.get("error"):
            raise DaemonError(str(response["error"]), response)
        return response

    async def prompt(self, session: str, text: str) -> dict[str, Any]:
        """Send a prompt; returns the response (``status``: ``delivered`` or ``queued``)."""
        return await self.request(prompt_message(session, text))

    async def command(
        self, session: str, name: str, args: str | Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Send a slash command (leading ``/`` optional) with optional arguments."""
        return await self.request(command_message(session, name, args))

    async def eval(self, session: str, code: str) -> dict[str, Any]:
        """Evaluate JavaScript in the session; the response's ``data`` is the result."""
        return await self.request(eval_message(session, code))

    async def ask(self, session: str, text: str, *, timeout_s: float = 600.0) -> dict[str, Any]:
        """Send a prompt and wait for the reply of the turn it starts (``data["reply"]``)."""
        old, self.timeout = self.timeout, timeout_s + ASK_MARGIN_S
        try:
            return await self.request(ask_message(session, text, timeout_s))
        finally:
            self.timeout = old

    async def query(self, name: str, **fields: Any) -> Any:
        """Run a query; returns its ``data``."""
        return (await self.request(query_message(name, **fields))).get("data")

    async def subscribe(self, session: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Turn this connection into the daemon's event stream (see ``Client.subscribe``): yields
        one dict per event until the daemon closes it (a final line with ``error`` raises
        DaemonError). Reads wait without a timeout: a quiet stream is not an error."""
        await self.start_subscription(session)
        async for event in self.events():
            yield event

    async def start_subscription(self, session: str | None = None) -> None:
        """Send ``subscribe``; then read the stream with :meth:`events`."""
        fields = {"session_id": session} if session else {}
        await self.request(query_message("subscribe", **fields))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The event lines of a subscribed connection, until the daemon closes it."""
        while True:
            reader = self._reader
            if reader is None:
                return
            try:
                line = await reader.receive_until(b"\n", MAX_REPLY_BYTES)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
                await self.aclose()
                return  # the daemon stopped: the stream simply ends
            except anyio.DelimiterNotFound:
                await self.aclose()
                raise DaemonError(
                    f"an event from the daemon is longer than {MAX_REPLY_BYTES} bytes"
                ) from None
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("type") == "response" and event.get("error"):
                await self.aclose()
                raise DaemonError(str(event["error"]), event)
            yield event
