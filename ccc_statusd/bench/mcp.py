"""The ``ccc mcp`` rows: its start-up, and tool calls next to the same operation through the CLI.

Claude Code starts ``ccc mcp`` with every session and waits for it, so start-up matters: spawn →
``initialize`` answered → tools listed, measured through the SDK's own client (``ClientSession``
over ``stdio_client``), next to the floor of the SDK itself (a bare ``MCPServer`` with no tools,
same interpreter), run alternately. Then, on one warm server, ``list_sessions`` and
``send_prompt`` tool calls (what a model does with the MCP server) next to a cold ``ccc sessions
--json`` / ``ccc prompt`` (what it does without it, through Bash), against the same daemon and
fake sessions. All figures are medians of runs in the same minute; only ratios mean anything.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .coldstart import RUN_TIMEOUT_S, cli_env, venv_bin

BARE_SERVER = "from mcp.server.mcpserver import MCPServer; MCPServer('bare').run('stdio')"


@asynccontextmanager
async def open_mcp(argv: list[str], env: dict[str, str]) -> AsyncIterator[Any]:
    """A started, initialised MCP client session on ``argv`` (stdio)."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
    with open(os.devnull, "w") as devnull:  # noqa: ASYNC230 (instant, no I/O wait)
        async with stdio_client(params, errlog=devnull) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            yield s


async def _startup_s(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    async with open_mcp(argv, env) as s:
        await s.list_tools()
        elapsed = time.perf_counter() - t0
    return elapsed


def _cli_s(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT_S
    )
    return time.perf_counter() - t0


def _ms(times: list[float]) -> float:
    return statistics.median(times) * 1000 if times else float("nan")


async def mcp_rows(
    socket_path: str, session: str, *, startups: int, calls: int, cli_runs: int
) -> list[dict[str, Any]]:
    """The table rows (``Row`` keyword arguments) of the MCP phase."""
    ccc = str(venv_bin() / "ccc")
    env = cli_env(os.path.dirname(socket_path))
    # A bench sends faster than the per-session limit on purpose.
    ours = [ccc, "--socket", socket_path, "mcp", "--rate-limit", "1000000"]
    bare = [str(venv_bin() / "python"), "-c", BARE_SERVER]
    ours_up: list[float] = []
    bare_up: list[float] = []
    for _ in range(startups):
        ours_up.append(await _startup_s(ours, env))
        bare_up.append(await _startup_s(bare, env))
    tool_ms: dict[str, list[float]] = {"list_sessions": [], "send_prompt": []}
    errors: dict[str, int] = {"list_sessions": 0, "send_prompt": 0}
    args = {"list_sessions": {}, "send_prompt": {"session": session, "text": "bench"}}
    async with open_mcp(ours, env) as s:
        for name in tool_ms:
            for i in range(calls + 3):
                t0 = time.perf_counter()
                res = await s.call_tool(name, args[name])
                if i >= 3:  # warm-up: imports done lazily on the first call
                    tool_ms[name].append(time.perf_counter() - t0)
                    errors[name] += bool(res.is_error)
    cli_s: dict[str, list[float]] = {"list_sessions": [], "send_prompt": []}
    cli_cmd = {
        "list_sessions": [ccc, "--socket", socket_path, "sessions", "--json"],
        "send_prompt": [ccc, "--socket", socket_path, "prompt", session, "bench"],
    }
    for name, argv in cli_cmd.items():
        for _ in range(cli_runs):
            cli_s[name].append(await trio.to_thread.run_sync(_cli_s, argv, env))
    o, b = _ms(ours_up), _ms(bare_up)
    rows: list[dict[str, Any]] = [
        {
            "figure": f"`ccc mcp` start-up: spawn → initialized, tools listed (median of {startups})",
            "ours": f"{o:.0f} ms",
            "baseline": f"{b:.0f} ms (bare SDK MCPServer, no tools)",
            "ratio": o / b if b else None,
            "target": "info",
            "result": "info",
            "details": {"ours_s": ours_up, "bare_s": bare_up},
        }
    ]
    labels = {"list_sessions": "`ccc sessions --json`", "send_prompt": "`ccc prompt`"}
    for name, times in tool_ms.items():
        t, c = _ms(times), _ms(cli_s[name])
        err = f", {errors[name]} errors" if errors[name] else ""
        rows.append(
            {
                "figure": f"MCP {name} tool call, warm `ccc mcp` (median of {calls})",
                "ours": f"{t:.2f} ms{err}",
                "baseline": f"{c:.1f} ms ({labels[name]} cold, median of {cli_runs})",
                "ratio": t / c if c else None,
                "target": "info",
                "result": "info" if not errors[name] else "FAIL",
                "details": {"tool_s": times, "cli_s": cli_s[name]},
            }
        )
    return rows


if __name__ == "__main__":  # python -m ccc_statusd.bench.mcp SOCKET SESSION
    for row in trio.run(
        lambda: mcp_rows(sys.argv[1], sys.argv[2], startups=3, calls=20, cli_runs=5)
    ):
        print(row["figure"], row["ours"], row["baseline"], sep=" | ")
