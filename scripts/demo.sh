#!/usr/bin/env bash
# The main job: model table, then a nuScenes scene (real samples from ../shared) replayed through the depth
# node over ROS 2 (the nuscenes_replay launch graph, Foxglove on ws://127.0.0.1:8765), recorded, scored
# against the bag's LiDAR (metrics line), and one image | radar // depth | LiDAR picture per frame in
# artifacts/demo/frames. Extra arguments go to `xdrcdepth replay-demo`
# (see its --help). The offline, ROS-free demo stays available as `xdrcdepth demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
xdrcdepth models
xdrcdepth replay-demo --out artifacts/demo "$@"
