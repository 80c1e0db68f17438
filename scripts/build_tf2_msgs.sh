#!/usr/bin/env bash
# Generate and install the tf2_msgs interface package (TFMessage, TF2Error) into a venv that has ROS 2
# Kilted from PyPI wheels, where no wheel for tf2_msgs exists. Usage: build_tf2_msgs.sh <venv>
#
# Recipe (../shared/reference/env.md, "What works instead"): the wheels' own rosidl generators build
# the two upstream .msg files with cmake. The wheels' exported CMake files hard-code the wheel
# builder's Python and numpy include dirs (/opt/python/cp311-cp311/...); they are rewritten to this
# venv's first. Idempotent: exits at once when `import tf2_msgs.msg` already works (a real ROS
# install or an earlier run); the rewrite is a no-op the second time.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 <venv>" >&2
  exit 2
fi
VENV=$(cd "$1" && pwd)
VPY="$VENV/bin/python"
if [ ! -x "$VPY" ]; then
  echo "build_tf2_msgs: no python at $VPY" >&2
  exit 2
fi

if "$VPY" -c "import tf2_msgs.msg" 2>/dev/null; then
  echo "[tf2_msgs] already importable in $VENV"
  exit 0
fi

PY_INCLUDE=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NUMPY_INCLUDE=$("$VPY" -c "import numpy; print(numpy.get_include())")
for f in "$VENV"/share/*/cmake/*.cmake; do
  if grep -q "/opt/python/cp311-cp311/" "$f"; then
    sed -i \
      -e "s#/opt/python/cp311-cp311/include/python3\.11#$PY_INCLUDE#g" \
      -e "s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/_core/include#$NUMPY_INCLUDE#g" \
      -e "s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/core/include#$NUMPY_INCLUDE#g" \
      "$f"
  fi
done
if grep -l "/opt/python/cp311-cp311/" "$VENV"/share/*/cmake/*.cmake 2>/dev/null; then
  echo "build_tf2_msgs: unrewritten wheel-builder paths remain in the files above" >&2
  exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/tf2_msgs"
mkdir -p "$SRC/msg"

# Upstream ros2/geometry2 tf2_msgs/msg/*.msg (the service and action are not needed here).
cat > "$SRC/msg/TFMessage.msg" <<'EOF'
geometry_msgs/TransformStamped[] transforms
EOF
cat > "$SRC/msg/TF2Error.msg" <<'EOF'
uint8 NO_ERROR = 0
uint8 LOOKUP_ERROR = 1
uint8 CONNECTIVITY_ERROR = 2
uint8 EXTRAPOLATION_ERROR = 3
uint8 INVALID_ARGUMENT_ERROR = 4
uint8 TIMEOUT_ERROR = 5
uint8 TRANSFORM_ERROR = 6

uint8 error
string error_string
EOF
cat > "$SRC/package.xml" <<'EOF'
<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.42.0</version>
  <description>tf2 messages (TFMessage, TF2Error), generated locally for pip-only ROS 2 setups.</description>
  <maintainer email="xdrcdepth@example.com">xdrcdepth developers</maintainer>
  <license>BSD-3-Clause</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
EOF
cat > "$SRC/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(tf2_msgs)
find_package(ament_cmake REQUIRED)
find_package(geometry_msgs REQUIRED)
find_package(rosidl_default_generators REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME}
  msg/TFMessage.msg
  msg/TF2Error.msg
  DEPENDENCIES geometry_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
EOF

echo "[tf2_msgs] generating into $VENV"
export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
cmake -S "$SRC" -B "$WORK/build" -Wno-dev \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DCMAKE_PREFIX_PATH="$VENV" \
  -DPython3_EXECUTABLE="$VPY" \
  -DBUILD_TESTING=OFF > "$WORK/configure.log" 2>&1 || { cat "$WORK/configure.log" >&2; exit 1; }
cmake --build "$WORK/build" -j 2 > "$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log" >&2; exit 1; }
cmake --install "$WORK/build" > "$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; exit 1; }

"$VPY" -c "from tf2_msgs.msg import TFMessage; TFMessage()" || {
  echo "build_tf2_msgs: installed, but 'import tf2_msgs.msg' still fails in $VENV" >&2
  exit 1
}
echo "[tf2_msgs] ok"
