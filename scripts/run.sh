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
  # one pytest-xdist worker per core, at most 4 (each may start nodes and train tiny networks); a test file stays on one
  # worker (module fixtures, ordering)
  test) exec .venv/bin/python -m pytest -q -ra -n auto --maxprocesses 4 --dist loadfile "$@" ;;
  *) echo "usage: scripts/run.sh {demo|test} [args...]" >&2; exit 2 ;;
esac
