"""Is the process at the other end of a Unix socket us (the same uid)? Stdlib only.

Owns :func:`server_uid` and :func:`foreign_server`. Clients (``ccc``, ``ccc hook``, ``ccc
statusline``, the async client) call it right after ``connect`` and before sending a byte: if
another user created the cache dir (``/tmp/ccc-status-<uid>``) or swapped the socket, they would
otherwise receive our hook payloads and prompts. ``SO_PEERCRED`` gives the credentials the
listener had when it called ``listen()``; unlike an ``lstat`` of the socket file, there is no
window between the check and the use.
"""

from __future__ import annotations

import _socket
import os
import sys

_SO_PEERCRED = getattr(_socket, "SO_PEERCRED", None)


def server_uid(sock: _socket.socket) -> int | None:
    """The uid of the process listening at the other end; None where the OS cannot say."""
    if _SO_PEERCRED is None:
        return None
    try:
        cred = sock.getsockopt(_socket.SOL_SOCKET, _SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    except OSError:
        return None
    return int.from_bytes(cred[4:8], sys.byteorder)


def foreign_server(sock: _socket.socket, path: str) -> str | None:
    """None when the peer is us; else the sentence the client reports (and it must not send)."""
    uid = server_uid(sock)
    me = os.getuid()
    if uid is None or uid == me:
        return None
    return (
        f"the socket {path} is served by uid {uid}, not by you (uid {me}): not your daemon, so "
        f"nothing was sent. Another user may be impersonating it; remove it (rm {path}) and "
        "start your own with: ccc-statusd"
    )
