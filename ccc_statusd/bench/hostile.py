"""``make bench``'s hostile row: the daemon under attack next to the same daemon idle.

Three attacks run at once against a running daemon (issue 14's classes, bounded in count and
time, loopback only):

- session clients that never read while senders push 256 KB prompts at them (until the daemon
  answers "not reading its messages");
- orphaned asks: askers that send an ``ask`` for a busy session and hang up at once;
- a subscriber flood: event streams opened until the daemon refuses more.

Measured: ping round trip p50/p99 and the daemon's RSS, idle first, then under attack, then
after the attackers left (RSS back, the orphaned asks' prompts gone from the outbox).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import trio

from . import load

STUCK_CLIENTS = 10
PROMPT_BYTES = 256 * 1024
PROMPTS_PER_STUCK = 40
ORPHAN_ASKS = 100
MAX_SUBSCRIBERS_TRIED = 400
PING_COUNT = 300


async def _pings(path: str, n: int) -> list[float]:
    conn = await load.LineConn.open(path)
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await conn.request({"type": "query", "query": "ping"})
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        await conn.aclose()
    return sorted(out)


def _p(values: list[float], q: float) -> float:
    return load.percentile(values, q) if values else float("nan")


async def _stuck(path: str, i: int, held: list[load.LineConn]) -> int:
    """A session client that never reads, and a sender that fills it; returns prompts sent."""
    session = await load.LineConn.open(path)
    held.append(session)
    sid = f"hostile-stuck-{i:03d}"
    await session.send(
        {"type": "register", "internal_id": f"hostile-iid-{i:03d}", "session_id": sid}
    )
    sender = await load.LineConn.open(path)
    text = "x" * PROMPT_BYTES
    sent = 0
    try:
        for _ in range(PROMPTS_PER_STUCK):
            reply = await sender.request({"type": "prompt", "session_id": sid, "text": text})
            sent += 1
            if "not reading" in str(reply.get("error") or ""):
                break
    finally:
        await sender.aclose()
    return sent


async def _orphans(path: str) -> None:
    hooks = await load.LineConn.open(path)
    sid = "hostile-busy-0001"
    env = {"CLAUDE_PID": "1", "TMUX_PANE": "%999"}
    for event in ("SessionStart", "UserPromptSubmit"):
        data = {"session_id": sid, "hook_event_name": event, "prompt": "busy"}
        await hooks.request({"type": "hook", "data": data, "env": env})
    await hooks.aclose()
    for i in range(ORPHAN_ASKS):
        c = await load.LineConn.open(path)
        await c.send({"type": "ask", "session_id": sid, "text": f"orphan {i}"})
        await c.aclose()


async def _subscribers(path: str, held: list[load.LineConn]) -> int:
    opened = 0
    for _ in range(MAX_SUBSCRIBERS_TRIED):
        c = await load.LineConn.open(path)
        reply = await c.request({"type": "query", "query": "subscribe"})
        if reply.get("error"):
            await c.aclose()
            break
        held.append(c)
        opened += 1
    return opened


async def run_hostile(
    path: str, rss_kib: Callable[[], int], *, settle_s: float = 10.0
) -> list[dict[str, Any]]:
    idle = await _pings(path, PING_COUNT)
    rss_idle = rss_kib()
    held: list[load.LineConn] = []
    sent: list[int] = []
    subs = 0
    try:
        async with trio.open_nursery() as nursery:

            async def stuck(i: int) -> None:
                sent.append(await _stuck(path, i, held))

            for i in range(STUCK_CLIENTS):
                nursery.start_soon(stuck, i)
            nursery.start_soon(_orphans, path)
            subs = await _subscribers(path, held)
            attacked = await _pings(path, PING_COUNT)
        rss_attack = rss_kib()
    finally:
        for c in held:
            await c.aclose()
    # After: the orphaned asks' prompts are cancelled, memory comes back.
    deadline = trio.current_time() + settle_s
    queued = -1
    while trio.current_time() < deadline:
        conn = await load.LineConn.open(path)
        try:
            rows = (await conn.request({"type": "query", "query": "list_scheduled"})).get("data")
        finally:
            await conn.aclose()
        queued = sum(1 for r in rows or [] if str(r.get("session_id", "")).startswith("hostile"))
        if queued == 0:
            break
        await trio.sleep(0.2)
    rss_after = rss_kib()
    x = _p(attacked, 99) / _p(idle, 99) if _p(idle, 99) else None
    details = {
        "stuck_prompts_sent": sent,
        "subscribers_opened": subs,
        "idle_ping_ms": {"p50": _p(idle, 50), "p99": _p(idle, 99)},
        "attack_ping_ms": {"p50": _p(attacked, 50), "p99": _p(attacked, 99)},
        "rss_kib": [rss_idle, rss_attack, rss_after],
        "mean_idle_ping_ms": statistics.mean(idle) if idle else None,
    }
    growth_mib = (rss_attack - rss_idle) / 1024
    return [
        {
            "figure": (
                f"hostile: ping p50 / p99 while {STUCK_CLIENTS} clients never read, "
                f"{ORPHAN_ASKS} asks are orphaned and {subs} subscribers flood"
            ),
            "ours": f"{_p(attacked, 50):.2f} / {_p(attacked, 99):.2f} ms",
            "baseline": f"{_p(idle, 50):.2f} / {_p(idle, 99):.2f} ms (same daemon, idle)",
            "ratio": x,
            "target": "≤ 5× idle p99",
            "result": "pass" if x is not None and x <= 5 else "FAIL",
            "details": details,
        },
        {
            "figure": "hostile: daemon RSS under attack, and after (orphaned prompts left)",
            "ours": f"{rss_attack / 1024:.1f} MiB → {rss_after / 1024:.1f} MiB, {queued} left",
            "baseline": f"{rss_idle / 1024:.1f} MiB (idle)",
            "ratio": rss_attack / rss_idle if rss_idle else None,
            "target": "bounded (≤ +300 MiB), 0 orphaned prompts left",
            "result": "pass" if growth_mib <= 300 and queued == 0 else "FAIL",
            "details": {},
        },
    ]
