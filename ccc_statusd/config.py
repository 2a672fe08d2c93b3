"""The daemon's options, with their defaults and why each default is what it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .paste import ENTER_DELAY_S
from .paths import Paths

# A line longer than this is refused and the connection closed: nothing legitimate is this big
# (a long prompt is a few hundred KiB at most) and an unbounded buffer is a memory attack.
MAX_LINE_BYTES = 1024 * 1024
REQUEST_TIMEOUT_S = 10.0  # SPEC §4: how long a sender waits for a session client's answer
REAPER_INTERVAL_S = 60.0  # seed: the reaper runs every 60 s ...
STALE_AFTER_S = 90.0  # ... and closes session clients silent for 90 s (3 missed heartbeats)
# Connections that are not session clients and send nothing for this long are closed: a
# forgotten `nc -U` must not hold a slot forever. Subscribers (`ccc watch`) are exempt.
IDLE_TIMEOUT_S = 600.0
# 10,000 idle session connections must fit (bench target) with room for senders.
MAX_CONNECTIONS = 16_384
# Lines waiting to be written to one connection. A session client that stops reading fills it
# and then gets errors instead of stalling the senders (and the daemon's memory stays bounded).
OUTBOUND_QUEUE = 256
# Bytes waiting to be written: per connection, and for all connections together. A peer that
# never reads is cut off at its own limit; many of them together cannot grow the daemon past
# the global one (a queued 1 MB prompt used to cost 1.5-3 MB, unbounded in count).
MAX_CONN_OUTPUT_BYTES = 8 * 1024 * 1024
MAX_OUTPUT_BYTES = 256 * 1024 * 1024
# One process may hold this many connections (SO_PEERCRED pid): one runaway script cannot
# take every slot. The load generator of `make bench` raises it.
MAX_PER_PEER = 1024
# Slots that session clients and subscribers (which stay connected) may not take: hooks and
# one-shot requests always find room.
RESERVED_SHORT = 64
MAX_SUBSCRIBERS = 256  # `ccc watch` / `ccc top` windows at once
# Caps on the outbox and schedule: a flood of queued prompts is refused, not stored for ever.
MAX_SCHEDULED = 10_000
MAX_SCHEDULED_PER_SESSION = 1_000
# Config dirs a client can make the daemon watch (besides ~/.claude, $CLAUDE_CONFIG_DIR and
# --config-dir): each costs a watch and a scan of its projects/.
MAX_CLIENT_CONFIG_DIRS = 16
# Ended sessions are forgotten (rows and cache files) this long after they end; their
# transcripts stay listed as history (`ccc sessions --all`).
RETENTION_S = 24 * 3600.0
LIVENESS_INTERVAL_S = 5.0  # a crashed session shows "ended (crashed)" within this
SHUTDOWN_GRACE_S = 2.0  # connections get this long to finish their last write on shutdown
TMUX_ENTER_DELAY_S = ENTER_DELAY_S  # FACTS §5: Enter ≥30 ms after a paste (paste.py)


@dataclass
class DaemonConfig:
    paths: Paths
    request_timeout_s: float = REQUEST_TIMEOUT_S
    max_line_bytes: int = MAX_LINE_BYTES
    max_connections: int = MAX_CONNECTIONS
    outbound_queue: int = OUTBOUND_QUEUE
    reaper_interval_s: float = REAPER_INTERVAL_S
    stale_after_s: float = STALE_AFTER_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    allow_eval: bool = False
    # Peer uids accepted besides the owner and root (--allow-uid; see peers.py).
    allow_uids: list[int] = field(default_factory=list)
    # Container path → host path prefixes (--path-map; see pathmap.py).
    path_maps: list[tuple[str, str]] = field(default_factory=list)
    log_level: str = "INFO"
    extra_config_dirs: list[Path] = field(default_factory=list)
    tmux_enter_delay_s: float = TMUX_ENTER_DELAY_S
    # Watchers and scheduler can be switched off in focused tests.
    enable_watchers: bool = True
    transcript_rescan_s: float = 5.0  # new config/project dirs appear within this
    scheduler_retry_s: float = 30.0
    max_conn_output_bytes: int = MAX_CONN_OUTPUT_BYTES
    max_output_bytes: int = MAX_OUTPUT_BYTES
    max_per_peer: int = MAX_PER_PEER
    reserved_short: int = RESERVED_SHORT
    max_subscribers: int = MAX_SUBSCRIBERS
    max_scheduled: int = MAX_SCHEDULED
    max_scheduled_per_session: int = MAX_SCHEDULED_PER_SESSION
    max_client_config_dirs: int = MAX_CLIENT_CONFIG_DIRS
    shutdown_grace_s: float = SHUTDOWN_GRACE_S
    retention_s: float = RETENTION_S
    liveness_interval_s: float = LIVENESS_INTERVAL_S
    # Run database calls on the event loop: only for tests on Trio's virtual clock.
    store_inline: bool = False
