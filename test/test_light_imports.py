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


def test_console_scripts_name_existing_mains():
    """Every console script of setup.py (the names ros2 run and the launch files use) points at a main()."""
    import importlib
    import re
    from pathlib import Path

    setup = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    scripts = dict(re.findall(r'"(\w+) = ([\w.]+:\w+)"', setup))
    assert {"depth_node", "foxglove_viewer", "bag_player", "bag_recorder", "nuscenes2bag", "xdrcdepth"} <= set(scripts)
    for name, target in scripts.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name


@pytest.mark.parametrize("old, new", [("xdrcdepth_ros.depth_node", "xdrcdepth_ros.node.depth_node"),
                                      ("xdrcdepth_ros.bag_player", "xdrcdepth_ros.bag.player"),
                                      ("xdrcdepth_ros.launcher", "xdrcdepth_ros.tools.launcher")])
def test_old_module_paths_import_the_moved_modules(old, new):
    """Scripts installed before the move (``from xdrcdepth_ros.depth_node import main``) keep working."""
    code = (f"import importlib, {old} as a, {new} as b; assert a is b, (a, b); "
            f"assert a.__spec__.name == {new!r}; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
