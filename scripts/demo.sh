#!/usr/bin/env bash
# The main job: model table, then the student on real nuScenes frames -> depth pictures in artifacts/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
xdrcdepth models
xdrcdepth demo --out artifacts/demo "$@"
