"""Commands that only orchestrate must start fast: importing them loads neither rclpy nor torch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["xdrcdepth_core.cli", "xdrcdepth_ros.tools.launcher",
                                    "xdrcdepth_ros.bag.replay_demo", "xdrcdepth_ros.bag.replay_eval",
                                    "xdrcdepth_ros.bag.nuscenes2bag",
                                    "xdrcdepth_ros.standins"])
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


#: module paths of the flat layout that never shipped (the modules live in node/, standins/, bag/, tools/)
FLAT_LAYOUT = ("depth_node", "depth_node_params", "input_qos", "diagnostics", "node_main", "conversions", "sync",
               "tf_buffer", "message_types", "nuscenes2bag", "bag_player", "bag_recorder", "rosbag_files",
               "replay_demo", "launch_graph", "launcher", "foxglove_viewer")


def test_no_code_doc_or_script_uses_a_flat_layout_path():
    """``xdrcdepth_ros.depth_node`` and friends do not exist: nothing may name them (python -m, imports, docs)."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"xdrcdepth_ros[./](" + "|".join(FLAT_LAYOUT) + r")\b")
    files = [p for folder in ("xdrcdepth_core", "xdrcdepth_ros", "test", "docs", "launch", "scripts", "config")
             for p in (repo / folder).rglob("*") if p.suffix in (".py", ".md", ".sh", ".yaml", ".cfg", ".xml")]
    files += [repo / name for name in ("README.md", "setup.py", "setup.cfg", "package.xml")]
    hits = [f"{p.relative_to(repo)}:{n}: {m.group(0)}" for p in files if p.name != "test_light_imports.py"
            for n, line in enumerate(p.read_text().splitlines(), 1) for m in pattern.finditer(line)]
    assert not hits, "\n".join(hits)
    # and no import hook maps them to the moved modules any more
    code = ("import importlib.util, xdrcdepth_ros; "
            f"print([n for n in {FLAT_LAYOUT!r} if importlib.util.find_spec('xdrcdepth_ros.' + n)])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
