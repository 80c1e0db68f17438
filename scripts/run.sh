#!/usr/bin/env bash
# The README's two commands: `scripts/run.sh demo` (the main job) and `scripts/run.sh test` (the tests).
# Both first set up the project-local venv (idempotent, fast when already done).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export PATH="$PWD/.venv/bin:$PATH"
what=${1:-demo}
shift || true
case "$what" in
  demo) exec bash scripts/demo.sh "$@" ;;
  # two pytest-xdist workers per core, at most 4: a worker waits for DDS and for the programs it starts a good part of
  # the time (docs/testing.md has the measurement); a test file stays on one worker (module fixtures, ordering)
  test) exec .venv/bin/python -m pytest -q -ra -n "$((2 * $(nproc)))" --maxprocesses 4 --dist loadfile "$@" ;;
  *) echo "usage: scripts/run.sh {demo|test} [args...]" >&2; exit 2 ;;
esac
