"""Discovery watchers: long-lived tasks the daemon's root nursery starts (SPEC §5).

* ``transcript_parse`` — pure incremental aggregation of one transcript JSONL.
* ``transcripts`` — the persisted transcript index (sync, runs on the store worker) and the
  trio task that watches every config dir's ``projects/``.
* ``git`` — branch of a session's cwd from ``.git/HEAD`` (no subprocess) and its poller.
* ``tmux`` — whether each session's tmux pane is still alive.

Submodules are imported by name; this package imports nothing so the CLI stays light.
"""

from __future__ import annotations
