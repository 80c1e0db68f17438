#!/usr/bin/env bash
# The timing-sensitive test files, 5 runs in a row in one process each, next to four busy-loop processes
# (docs/testing.md). Logs: $LOGS/busy_run<k>.log (default /tmp); one line per run on stdout.
set -u
cd "$(dirname "$0")/.."
LOGS=${LOGS:-/tmp}
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST PATH=$PWD/.venv/bin:$PATH
FILES="test/test_bag_recorder.py test/test_bag_player.py test/test_launch_processes.py test/test_tf_buffer.py test/test_depth_node_qos.py test/test_depth_node_memory.py"
pids=()
for i in 1 2 3 4; do python3 -c "while True: pass" & pids+=($!); done
for run in 1 2 3 4 5; do
  start=$(date +%s)
  .venv/bin/python -m pytest -q -n 0 -p no:cacheprovider $FILES > $LOGS/busy_run$run.log 2>&1
  rc=$?
  echo "run $run: rc $rc, $(( $(date +%s) - start )) s, $(tail -1 $LOGS/busy_run$run.log)"
done
kill "${pids[@]}"
