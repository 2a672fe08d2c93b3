"""Who may connect to the daemon's socket: the peer-credential rule (SO_PEERCRED uids).

The socket is 0600 in a 0700 dir, so the file modes already keep other users out; this rule is
the second lock, for when the socket is reachable some other way (a bind mount into a container,
a dir opened up by hand). Three kinds of uid are accepted, and nothing else:

- the daemon's own uid (the owner). A rootless container (podman, docker with user namespaces)
  maps its root to the user's uid, so its sessions arrive as the owner and need nothing;
- uid 0. Root can read any file and trace any process, so refusing it would protect nothing;
  it is accepted on purpose, and said so at start-up (this includes the root of a *rootful*
  container into which the user bind-mounted the socket);
- each uid given with ``--allow-uid N`` (e.g. the uid a rootful container runs its user as).
  Explicit, logged at start-up and at every connection it lets in.

Any other uid is refused with one sentence naming the uid and the option that would allow it.
Pure functions and a small frozen class: the server calls :meth:`PeerPolicy.check`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

ROOT_UID = 0


class PeerPolicy:
    """The set of uids allowed to connect, and the sentences that go with a decision."""

    __slots__ = ("owner", "extra")

    def __init__(self, owner: int | None = None, allow_uids: Iterable[int] = ()) -> None:
        self.owner = os.getuid() if owner is None else owner
        self.extra = frozenset(u for u in allow_uids if u not in (self.owner, ROOT_UID))

    def allowed(self, uid: int | None) -> bool:
        """Whether a peer with this uid may connect (None: credentials unknown, as before)."""
        return uid is None or uid in (self.owner, ROOT_UID) or uid in self.extra

    def why(self, uid: int | None) -> str | None:
        """Why an accepted connection from someone other than the owner was accepted (a log
        line), or None for the owner (nothing worth logging)."""
        if uid is None or uid == self.owner:
            return None
        if uid == ROOT_UID:
            return "accepted a connection from uid 0 (root is always accepted: it can read the socket anyway)"
        if uid in self.extra:
            return f"accepted a connection from uid {uid} (allowed by --allow-uid {uid})"
        return None

    def refusal(self, uid: int) -> str:
        """The one sentence a refused peer reads (and the log repeats)."""
        return (
            f"permission denied: uid {uid} may not use this daemon (it belongs to uid "
            f"{self.owner}); start your own with: ccc-statusd, or, if uid {uid} is a container "
            f"of yours, restart this one with: ccc-statusd --allow-uid {uid}"
        )

    def describe(self) -> str:
        """The start-up log line: every uid that may connect and why."""
        parts = [f"{self.owner} (owner)"]
        if self.owner != ROOT_UID:
            parts.append("0 (root)")
        parts.extend(f"{u} (--allow-uid)" for u in sorted(self.extra))
        return "accepting connections from uid " + ", ".join(parts)


def parse_uid(text: str) -> int:
    """``--allow-uid`` values: a non-negative decimal uid (argparse ``type=``)."""
    try:
        uid = int(text, 10)
    except ValueError:
        raise ValueError(
            f"--allow-uid {text!r} is not a uid; give a number, e.g. --allow-uid 1000"
        ) from None
    if uid < 0 or uid > 0xFFFFFFFE:
        raise ValueError(f"--allow-uid {text!r} is out of range; a uid is 0 to 4294967294")
    return uid
