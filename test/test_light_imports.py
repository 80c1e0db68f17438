"""Commands that only orchestrate must start fast: importing them loads neither rclpy nor torch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["xdrcdepth_core.cli", "xdrcdepth_ros.tools.launcher",
                                    "xdrcdepth_ros.bag.replay_demo", "xdrcdepth_ros.bag.nuscenes2bag",
                                    "xdrcdepth_ros.launcher", "xdrcdepth_ros.standins"])
def test_module_loads_neither_rclpy_nor_torch(module):
    code = (f"import sys, {module}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'rclpy', 'torch'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
