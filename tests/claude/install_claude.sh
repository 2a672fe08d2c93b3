#!/usr/bin/env bash
# Pre-install the Claude Code builds the tests/claude end-to-end tests pin (2.1.331 native,
# 2.1.112 Node) into ${XDG_CACHE_HOME:-~/.cache}/ccc-statusd-tests/claude-code/<version>.
# Reused when already there. Exits 0 with a warning when npm or the registry is unreachable (the
# tests then skip with that reason); exits 1 when an install ran and did not work.
# usage: tests/claude/install_claude.sh [VERSION...]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 tests/claude/harness.py install "$@"
