"""The one builder of routed messages (prompt / command / eval), for senders and the daemon.

Stdlib only and import-free: the send path (``ccc prompt``) loads it. A routed message is the
same dict whoever builds it: ``ccc prompt`` sending it to the daemon, the daemon writing it to
a session client (with a ``request_id``), or the daemon rebuilding it from an outbox row.
"""

from __future__ import annotations

# A delivery of scheduled row R always carries request id ``sched-R``, across retries: a
# session client that already typed it answers a repeat from memory instead of typing twice.
SCHEDULED_PREFIX = "sched-"


def scheduled_request_id(row_id: str) -> str:
    return SCHEDULED_PREFIX + row_id


def routed_message(
    kind: str,
    session_id: str,
    *,
    text: str | None = None,
    name: str | None = None,
    code: str | None = None,
    request_id: str | None = None,
    data: dict[str, object] | None = None,
) -> dict[str, object]:
    """``{"type": kind, "session_id": ..., ...}``: ``text`` is a prompt's text or a command's
    arguments, ``name`` a command's name (leading ``/`` dropped), ``code`` an eval's code."""
    msg: dict[str, object] = {"type": kind, "session_id": session_id}
    if request_id is not None:
        msg["request_id"] = request_id
    if kind == "command":
        msg["name"] = (name or "").lstrip("/")
    if kind == "eval":
        msg["code"] = code or ""
    elif text:
        msg["text"] = text
    elif kind == "prompt":
        msg["text"] = text or ""
    if data:
        msg["data"] = data
    return msg
