"""Delivery: where a prompt, command or eval goes, and what the sender is told.

Theory of operation. A routed message is resolved (full id or unique prefix), then
``routing.decide`` says where it goes: the session client's connection (it checks its screen
and types), the tmux pane of an adopted session, or the session's outbox (a scheduler row with
trigger ``idle``) when the session cannot take it now. The scheduler hands outbox and scheduled
rows back here (``deliver_row``) when their session may take them.

Owns, per session, the settle window (after typing, later messages wait for a hook to say
what the session is doing: a second message could land in a dialog the first turn opened) and
the memory of what was typed (confirmed against ``UserPromptSubmit``). The sender learns:

- ``queued``: in the outbox, with the reason ("the session is busy", "the /model picker is
  open"...) and the row id;
- ``submitted``: Claude Code took it (its client saw the input box empty and the turn start,
  or ``UserPromptSubmit`` carried the text);
- ``typed``: typed and Enter pressed, not confirmed yet (``--wait`` waits for the
  confirmation, bounded); never "delivered" for text nobody saw arrive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from .. import protocol, wire
from ..config import DaemonConfig
from ..events import EventBus
from ..paste import DeliveryRefused, command_line
from ..routing import Deliver, DeliverTmux, Queue, RoutingError, decide, ended_error
from ..scheduler import (
    NOT_IDLE_RETRY_S,
    Delivered,
    Failed,
    InvalidMessage,
    NotNow,
    Outcome,
    Scheduler,
)
from ..sessions import ENDED, UNKNOWN, DeliveryRecord, SessionInfo
from ..store import ScheduleFull, Store
from .clients import ClientDeclined, SessionClients
from .directory import SessionDirectory
from .values import preview

log = logging.getLogger(__name__)

# After typing into a session, further messages wait this long for a hook (UserPromptSubmit,
# Stop...) to tell what the session is doing; sessions without hooks get one message per window.
DELIVERY_SETTLE_S = 3.0
# How many typed texts per session are remembered to confirm them against UserPromptSubmit.
DELIVERED_MEMORY = 32
# `ccc prompt --wait`: how long to wait for Claude Code to confirm a typed prompt.
CONFIRM_WAIT_S = 10.0

SUBMITTED, TYPED, DELIVERED, QUEUED = "submitted", "typed", "delivered", "queued"


@dataclass(frozen=True)
class Body:
    """What is delivered: a prompt's text, a command's name and arguments, or eval code."""

    kind: str
    text: str | None = None  # prompt text, or command arguments
    name: str | None = None  # command name
    code: str | None = None

    @classmethod
    def of(cls, msg: Any) -> Body:
        if msg.type == "command":
            return cls("command", text=msg.text, name=msg.name.lstrip("/"))
        if msg.type == "eval":
            return cls("eval", code=msg.code)
        return cls("prompt", text=msg.text)

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> Body:
        if row.get("kind") == "command":
            return cls("command", text=row["message"] or None, name=row.get("command_name") or "")
        return cls("prompt", text=row["message"])

    def typed_line(self) -> str:
        """What lands in the input box (commands are checked: a bad name is refused)."""
        if self.kind == "command":
            return command_line(self.name or "", self.text)
        return self.text or ""

    def message(self, sid: str, request_id: str | None, state: str | None) -> dict[str, object]:
        return wire.routed_message(
            self.kind,
            sid,
            text=self.text,
            name=self.name,
            code=self.code,
            request_id=request_id,
            # What the hooks say; the client still checks its own screen before typing.
            data={"state": state} if state else None,
        )


class NotNowError(Exception):
    def __init__(self, reason: str, retry_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_s = retry_s


class Delivery:
    def __init__(
        self,
        config: DaemonConfig,
        directory: SessionDirectory,
        clients: SessionClients,
        scheduler: Scheduler,
        events: EventBus,
        *,
        wall: Callable[[], float],
    ) -> None:
        self.config = config
        self.directory = directory
        self.clients = clients
        self.scheduler = scheduler
        self.events = events
        self.wall = wall
        self.routed = 0
        self.queued = 0
        self._confirmations: dict[int, trio.Event] = {}  # id(DeliveryRecord) → waiter

    # --- from senders --------------------------------------------------------------------------

    async def route(self, msg: Any, *, sender: str | None = None) -> dict[str, Any]:
        """Route a prompt/command/eval; the reply says submitted, typed, queued, or the error."""
        if msg.type == "eval" and not self.config.allow_eval:
            raise RoutingError(
                "eval is disabled on this daemon; restart it with: ccc-statusd --allow-eval "
                "(it lets any local client run code inside your Claude Code sessions)"
            )
        sid = self.directory.resolve(msg.session_id)
        body = Body.of(msg)
        wait = bool((msg.data or {}).get("wait")) if msg.type != "eval" else False
        try:
            status, result = await self._deliver(sid, body, request_id=None, wait=wait)
        except NotNowError as exc:
            row = await self.enqueue(sid, body, str(exc), sender=sender)
            return protocol.response(
                request_id=msg.request_id,
                session_id=sid,
                status=QUEUED,
                data={"id": row["id"], "reason": str(exc)},
            )
        data = result.get("data")
        return protocol.response(
            request_id=msg.request_id, session_id=sid, status=status, data=data
        )

    async def enqueue(
        self, sid: str, body: Body, reason: str, *, sender: str | None = None
    ) -> dict[str, Any]:
        """Put a message in the session's outbox; RoutingError when it can never be typed or
        the outbox is full."""
        if body.kind == "eval":
            raise RoutingError(f"session {sid} cannot evaluate code now: {reason}")
        try:
            row = await self.scheduler.enqueue(
                sid,
                body.kind,
                body.text or "",
                command_name=body.name,
                trigger="idle",
                sender=sender,
            )
        except (InvalidMessage, ScheduleFull) as exc:
            raise RoutingError(str(exc)) from None
        self.queued += 1
        info = self.directory.by_session_id(sid)
        self.events.publish(
            "queued",
            info,
            id=row["id"],
            reason=reason,
            text=preview(body.typed_line()),  # checked by enqueue
        )
        return row

    # --- from the scheduler --------------------------------------------------------------------

    async def deliver_row(self, row: dict[str, Any]) -> Outcome:
        body = Body.of_row(row)
        try:
            body.typed_line()
            sid = self.directory.resolve(row["session_id"])
            status, _ = await self._deliver(
                sid,
                body,
                request_id=wire.scheduled_request_id(row["id"]),
                wait=False,
                row_id=row["id"],
            )
        except NotNowError as exc:
            return NotNow(str(exc), exc.retry_s)
        except (DeliveryRefused, protocol.RemoteProtocolError) as exc:
            return Failed(str(exc), permanent=True)
        except RoutingError as exc:
            return Failed(str(exc))
        return Delivered(status)

    def report_row(
        self, row: dict[str, Any], outcome: Outcome, *, attempts: int, parked: bool
    ) -> None:
        info = self.directory.by_session_id(row["session_id"])
        if isinstance(outcome, Delivered):
            self.events.publish(
                "scheduled_fired",
                info,
                id=row["id"],
                trigger=row.get("trigger"),
                status=outcome.status,
            )
        elif isinstance(outcome, Failed):
            self.events.publish(
                "scheduled_failed",
                info,
                id=row["id"],
                error=outcome.error,
                attempts=attempts,
                parked=parked or None,
            )

    # --- from hooks ----------------------------------------------------------------------------

    def on_hook(self, info: SessionInfo, event: str, payload: dict[str, Any]) -> None:
        """A hook says what the session does now: the settle window ends; a
        ``UserPromptSubmit`` confirms the typed text it carries."""
        info.settle_until_trio = None
        if event != "UserPromptSubmit":
            return
        prompt = payload.get("prompt")
        if not isinstance(prompt, str):
            return
        for record in info.deliveries:
            if not record.submitted and record.text.strip() == prompt.strip():
                record.submitted = True
                log.info(
                    "session %s submitted the delivered prompt %r",
                    info.session_id,
                    preview(prompt),
                )
                self.directory.touch(info)
                self.events.publish("submitted", info, text=preview(prompt))
                waiter = self._confirmations.pop(id(record), None)
                if waiter is not None:
                    waiter.set()
                return

    # --- the one delivery path -----------------------------------------------------------------

    async def _deliver(
        self,
        sid: str,
        body: Body,
        *,
        request_id: str | None,
        wait: bool,
        row_id: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Type/send it now, or NotNowError (queue it) / RoutingError (cannot be done)."""
        info = self.directory.by_session_id(sid)
        if info is None:
            # Not live: its row says whether (and how) it ended, for a useful error.
            row = await self.scheduler.store.call(Store.session, sid)
            if row and row.get("state") == ENDED:
                raise ended_error(sid, row.get("end_reason"), row.get("state_changed_at"))
        conn = self.clients.connection(info.key) if info is not None else None
        now = trio.current_time()
        settling_s = (
            info.settle_until_trio - now if info is not None and info.settle_until_trio else 0.0
        )
        decision = decide(
            body.kind, info, sid, client_connected=conn is not None, settling_s=settling_s
        )
        if isinstance(decision, Queue):
            if info is not None:
                self._waiting_on(info, decision.reason)
            raise NotNowError(decision.reason, decision.retry_s)
        assert info is not None
        try:
            line = body.typed_line()
        except DeliveryRefused as exc:
            raise RoutingError(str(exc)) from None
        if body.kind != "eval" and info.state != UNKNOWN:
            info.settle_until_trio = now + DELIVERY_SETTLE_S
        # Remember the text before typing it: Claude Code's UserPromptSubmit hook can reach us
        # (on another connection) before the session client's acknowledgement does.
        record = self._remember(info, line) if body.kind != "eval" else None
        if row_id is not None:
            # Before the keys go out: the turn's Stop can reach us (on another connection)
            # before the client's acknowledgement, and an ask waiting on this row must know
            # its prompt is in by then.
            self.events.publish("typing", info, id=row_id, kind=body.kind)
        try:
            if isinstance(decision, Deliver):
                assert conn is not None
                result = await self.clients.request(
                    conn,
                    sid,
                    body.message(sid, request_id, info.state),
                    self.config.request_timeout_s,
                    self.config.outbound_queue,
                )
            elif isinstance(decision, DeliverTmux):
                result = await self._deliver_tmux(decision.pane, info.tmux_socket, sid, body)
            else:  # pragma: no cover - exhaustive
                raise AssertionError(decision)
        except ClientDeclined as exc:
            self._undo(info, record, row_id)
            self._waiting_on(info, str(exc))
            raise NotNowError(str(exc), retry_s=NOT_IDLE_RETRY_S) from None
        except Exception:
            self._undo(info, record, row_id)
            raise
        # (Cancelled: the keys may already be on their way, so the settle window and the
        # record stay, and the next message still waits for this turn's hooks.)
        self._waiting_on(info, None)
        status = self._status(info, result, record)
        if status == TYPED and wait and record is not None:
            status = await self._wait_confirmed(record)
        if body.kind != "eval":
            self.events.publish(
                "delivered", info, kind=body.kind, text=preview(line), status=status
            )
        self.routed += 1
        return status, result

    def _undo(self, info: SessionInfo, record: DeliveryRecord | None, row_id: str | None) -> None:
        """Nothing was typed after all: forget it, end the settle window, and tell an ask
        that heard "typing" for this row that its prompt is not in."""
        self._forget(info, record)
        info.settle_until_trio = None
        if row_id is not None:
            self.events.publish("typing_aborted", info, id=row_id)

    def _status(
        self, info: SessionInfo, result: dict[str, Any], record: DeliveryRecord | None
    ) -> str:
        if record is None:
            return DELIVERED  # eval: nothing is typed
        if result.get("status") == SUBMITTED and not record.submitted:
            record.submitted = True
            self.directory.touch(info)
        return SUBMITTED if record.submitted else TYPED

    async def _wait_confirmed(self, record: DeliveryRecord) -> str:
        waiter = self._confirmations.setdefault(id(record), trio.Event())
        with trio.move_on_after(CONFIRM_WAIT_S):
            await waiter.wait()
        self._confirmations.pop(id(record), None)
        return SUBMITTED if record.submitted else TYPED

    async def _deliver_tmux(
        self, pane: str, socket: str | None, sid: str, body: Body
    ) -> dict[str, Any]:
        """Type into an adopted session's pane: the pane is read first (nothing is typed into
        anything but the empty input box) and again after the Enter (submitted or typed)."""
        from ..tmux_delivery import (
            PaneNotReady,
            TmuxDeliveryError,
            deliver_command_to_pane,
            deliver_to_pane,
        )

        delay = self.config.tmux_enter_delay_s
        try:
            if body.kind == "command":
                seen = await deliver_command_to_pane(
                    pane, body.name or "", body.text, enter_delay_s=delay, socket_name=socket
                )
            else:
                seen = await deliver_to_pane(
                    pane, body.text or "", enter_delay_s=delay, socket_name=socket
                )
        except PaneNotReady as exc:
            raise NotNowError(exc.reason, retry_s=exc.retry_s) from None
        except DeliveryRefused as exc:
            raise RoutingError(f"cannot type this into session {sid}: {exc}") from None
        except TmuxDeliveryError as exc:
            raise RoutingError(
                f"could not type into session {sid}'s tmux pane {pane}: {exc}; "
                "attach the session with: ccc run -- claude"
            ) from None
        seen = seen if isinstance(seen, dict) else {}
        status = seen.get("status")
        data: dict[str, Any] = {
            "delivered_via": "tmux",
            "pane": pane,
            "confirmed": status == SUBMITTED,
        }
        if seen.get("seen"):
            data["seen"] = seen["seen"]
        return {"status": status, "data": data}

    def _waiting_on(self, info: SessionInfo, reason: str | None) -> None:
        """Why the session's outbox waits (shown by ``ccc sessions``: "draft")."""
        if info.waiting_on != reason:
            info.waiting_on = reason
            self.directory.touch(info)

    def _remember(self, info: SessionInfo, text: str) -> DeliveryRecord:
        record = DeliveryRecord(text=text, at_wall=self.wall())
        info.deliveries.append(record)
        del info.deliveries[:-DELIVERED_MEMORY]
        self.directory.touch(info)  # last_delivery is part of the session's public row
        return record

    def _forget(self, info: SessionInfo, record: DeliveryRecord | None) -> None:
        if record is None or record.submitted:
            return
        # By identity: two deliveries of the same text are two records.
        info.deliveries[:] = [r for r in info.deliveries if r is not record]
        self.directory.touch(info)
