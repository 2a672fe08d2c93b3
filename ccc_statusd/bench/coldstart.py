"""Cold start-up of the ``ccc`` send path, next to ``python -I -c pass`` on the same interpreter.

Each figure is the median of ``runs`` fresh processes; ours and the baseline run interleaved
(ours, baseline, ours, ...) so a noisy neighbour hurts both alike. Runs are blocking
``subprocess.run`` calls timed around the call, meant to be run in a worker thread while the
Trio loop keeps the fake session clients answering.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

RUN_TIMEOUT_S = 10.0  # one CLI run; a hang beyond this is reported as an error, not waited on

STATUSLINE_PAYLOAD = {
    "session_id": "bench-statusline-0001",
    "transcript_path": "/tmp/bench-nonexistent/bench-statusline-0001.jsonl",
    "cwd": "/tmp",
    "model": {"id": "claude-sonnet-4-6", "display_name": "Sonnet 4.6"},
    "workspace": {"current_dir": "/tmp", "project_dir": "/tmp", "added_dirs": []},
    "version": "2.1.112",
    "output_style": {"name": "default"},
    "cost": {
        "total_cost_usd": 0.0789,
        "total_duration_ms": 2234,
        "total_api_duration_ms": 89,
        "total_lines_added": 0,
        "total_lines_removed": 0,
    },
    "context_window": {
        "total_input_tokens": 26495,
        "total_output_tokens": 24,
        "context_window_size": 200000,
        "current_usage": {
            "input_tokens": 26108,
            "output_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        "used_percentage": 13,
        "remaining_percentage": 87,
    },
    "exceeds_200k_tokens": False,
}
HOOK_PAYLOAD = {
    "session_id": "bench-hook-0001",
    "transcript_path": "/tmp/bench-nonexistent/bench-hook-0001.jsonl",
    "cwd": "/tmp",
    "permission_mode": "default",
    "hook_event_name": "UserPromptSubmit",
    "prompt": "bench",
}


def venv_bin() -> Path:
    """The bin dir of the interpreter running the bench (where ``ccc`` is installed)."""
    return Path(sys.prefix) / "bin"


def cli_built() -> str | None:
    """None when the fast CLI exists, else why the CLI rows cannot be measured yet."""
    pkg = Path(__file__).resolve().parent.parent
    if not (pkg / "fastcli.py").exists():
        return "n/a (not built: ccc_statusd/fastcli.py)"
    if not (venv_bin() / "ccc").exists():
        return "n/a (not built: no ccc console script)"
    return None


def cli_env(cache_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCC_", "CLAUDE", "TMUX"))}
    env["CCC_CACHE_DIR"] = cache_dir
    env["NO_COLOR"] = "1"
    return env


@dataclass
class Timing:
    times_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # user + system time of each run
    failures: int = 0
    failure_samples: list[str] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s) if self.times_s else float("nan")

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_s) if self.cpu_s else float("nan")

    @property
    def max_s(self) -> float:
        return max(self.times_s) if self.times_s else float("nan")

    def summary(self) -> dict[str, object]:
        ms = 1000.0
        return {
            "runs": len(self.times_s),
            "median_ms": self.median_s * ms,
            "max_ms": self.max_s * ms,
            "min_ms": min(self.times_s) * ms if self.times_s else float("nan"),
            "median_cpu_ms": self.median_cpu_s * ms,
            "failures": self.failures,
            "failure_samples": self.failure_samples,
        }


def _run(
    cmd: list[str], stdin: bytes | None, env: Mapping[str, str], expect_rc: int | None, into: Timing
) -> None:
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(
            cmd,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            env=dict(env),
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        into.failures += 1
        into.failure_samples.append(f"{cmd[1:3]} timed out after {RUN_TIMEOUT_S:g} s")
        into.times_s.append(RUN_TIMEOUT_S)
        return
    into.times_s.append(time.perf_counter() - t0)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    into.cpu_s.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    if expect_rc is not None and proc.returncode != expect_rc:
        into.failures += 1
        if len(into.failure_samples) < 3:
            into.failure_samples.append(
                f"exit {proc.returncode}: {(proc.stderr or proc.stdout).decode(errors='replace').strip()[-300:]}"
            )


def interleaved(
    ours: list[str],
    *,
    runs: int,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    expect_rc: int | None = 0,
    warmup: int = 2,
    python: Path | None = None,
) -> tuple[Timing, Timing]:
    """Median-ready timings of ``ours`` and of ``python -I -c pass`` (``python``: the bench's
    venv python by default), run alternately."""
    base = [str(python or venv_bin() / "python"), "-I", "-c", "pass"]
    throwaway = Timing()
    for _ in range(warmup):  # page cache and .pyc warm for both
        _run(ours, stdin, env, None, throwaway)
        _run(base, None, env, None, throwaway)
    t_ours, t_base = Timing(), Timing()
    for _ in range(runs):
        _run(ours, stdin, env, expect_rc, t_ours)
        _run(base, None, env, 0, t_base)
    return t_ours, t_base


def ccc(*args: str) -> list[str]:
    return [str(venv_bin() / "ccc"), *args]


def statusline_stdin() -> bytes:
    return json.dumps(STATUSLINE_PAYLOAD).encode()


def hook_stdin() -> bytes:
    return json.dumps(HOOK_PAYLOAD).encode()


# --- a venv made the way the README says -----------------------------------------------------

README_VENV_TIMEOUT_S = 600.0  # the first build installs every dependency


def readme_venv(
    repo: Path | None = None, venv: Path | None = None, *, build: bool = True
) -> tuple[Path | None, str]:
    """``venv`` (default ``<repo>/.venv/bench-readme-venv``) made as the README says (``python3 -m venv``, the interpreter's own pip, then
    ``pip install .``), with this checkout installed afresh: (its bin dir or None, how/why).

    The first build installs the dependencies (minutes); later ones reinstall only the package.
    ``build=False``: only reinstall into an existing one (the quick bench).
    """
    repo = repo or Path(__file__).resolve().parents[2]
    venv = venv or repo / ".venv" / "bench-readme-venv"
    python = getattr(sys, "_base_executable", None) or sys.executable
    pip = venv / "bin" / "pip"
    try:
        if not pip.exists():
            if not build:
                return None, "n/a (README-style venv not built yet: run the full bench once)"
            subprocess.run(
                [python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120
            )
            args = [str(pip), "install", "-q", str(repo)]
        else:
            args = [str(pip), "install", "-q", "--no-deps", "--force-reinstall", str(repo)]
        subprocess.run(args, check=True, capture_output=True, timeout=README_VENV_TIMEOUT_S)
        version = subprocess.run(
            [str(pip), "--version"], check=True, capture_output=True, timeout=60
        ).stdout.decode()
    except (OSError, subprocess.SubprocessError) as exc:
        err = getattr(exc, "stderr", None) or b""
        return None, f"n/a (building {venv} failed: {exc} {err.decode(errors='replace')[-200:]})"
    return venv / "bin", " ".join(version.split()[:2])
