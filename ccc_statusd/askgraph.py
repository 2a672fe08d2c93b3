"""Who is waiting for whose answer, pure: refuse an ``ask`` that would close a cycle.

A session that asks another waits, inside its own turn, for the end of the other's turn. If B,
while answering A, asks A (or asks C, which asks A), each waits for the other and both sit until
their timeouts (ten minutes by default). So every ask in flight is an edge ``asker → target``,
and a new ask ``X → Y`` is refused when ``Y`` already reaches ``X`` through edges in flight (or
``X == Y``). Nodes are whatever identifies a live session to the caller (the daemon's session
key; ``ccc mcp`` uses session ids).

The daemon owns one :class:`AskGraph` (``hub.ask.Asks``) and checks every ``ask`` with it; ``ccc
mcp`` also checks its own asks in flight across sessions (:mod:`ccc_statusd.mcp_server`), so an
agent hears the refusal before its ask reaches the daemon.
"""

from __future__ import annotations

from collections.abc import Iterable


class AskCycle(Exception):
    """The ask would close a cycle; ``path`` is the chain target → … → asker."""

    def __init__(self, message: str, path: list[str]) -> None:
        super().__init__(message)
        self.path = path


def find_path(edges: Iterable[tuple[str, str]], start: str, goal: str) -> list[str] | None:
    """A chain of asks in flight from ``start`` to ``goal`` (both included), or None."""
    nexts: dict[str, list[str]] = {}
    for a, b in edges:
        nexts.setdefault(a, []).append(b)
    seen = {start}
    frontier: list[list[str]] = [[start]]
    while frontier:
        path = frontier.pop(0)
        if path[-1] == goal:
            return path
        for n in nexts.get(path[-1], ()):
            if n not in seen:
                seen.add(n)
                frontier.append([*path, n])
    return None


def check_ask(edges: Iterable[tuple[str, str]], asker: str, target: str) -> None:
    """Raise AskCycle if ``asker`` asking ``target`` would wait in a cycle."""
    if asker == target:
        raise AskCycle(
            f"session {asker[:8]} cannot ask itself: it would wait for the end of the very turn "
            "that is waiting; use send_prompt (or ccc prompt) to queue a prompt for later",
            [asker],
        )
    path = find_path(edges, target, asker)
    if path is not None:
        chain = " → ".join(p[:8] for p in [asker, *path])
        raise AskCycle(
            f"asking session {target[:8]} would deadlock: it is itself waiting for an answer "
            f"from you ({chain}); answer its question first by ending your turn with the reply, "
            "or use send_prompt to pass it information without waiting",
            path,
        )


class AskGraph:
    """The asks in flight (a multiset of edges). Not thread-safe; one owner (the daemon's
    event loop) calls :meth:`begin` before routing an ask and :meth:`end` in its ``finally``."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str], int] = {}

    def begin(self, asker: str, target: str) -> None:
        """Record ``asker → target``; raises AskCycle (nothing recorded) if it closes a cycle."""
        check_ask(self.edges, asker, target)
        self.edges[(asker, target)] = self.edges.get((asker, target), 0) + 1

    def end(self, asker: str, target: str) -> None:
        n = self.edges.get((asker, target), 0)
        if n <= 1:
            self.edges.pop((asker, target), None)
        else:
            self.edges[(asker, target)] = n - 1
