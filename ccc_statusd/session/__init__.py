"""The session client (`ccc run`): the daemon link (:mod:`.link`), the pseudo-terminal host
that runs Claude Code and types routed prompts into it (:mod:`.pty_host`), its model of the
screen (:mod:`.screen_model`), and the pure keystroke/draft helpers they share (:mod:`.keys`)."""

from __future__ import annotations

from .link import SessionLink, run_session_link

__all__ = ["SessionLink", "run_session_link"]
