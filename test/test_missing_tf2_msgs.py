"""Without tf2_msgs (no PyPI wheel provides it; pip-only setups generate it with scripts/build_tf2_msgs.sh) every
program that needs it stops with one line naming the package and how to get it, exit code 2 as for its other
start-up errors. Installed from a wheel, depth_node died in a 22-line ModuleNotFoundError traceback (exit 1), and
replay-eval likewise at the import of source_frames."""

import os
import subprocess
import sys

import pytest

from conftest import REPO
from depth_node_rig import make_checkpoint
from xdrcdepth_core.cli_args import MissingDependency
from xdrcdepth_ros.tf_messages import tf_message_class

MISSING = "the ROS 2 message package tf2_msgs is not installed (no PyPI wheel provides it): "


@pytest.fixture
def without_tf2_msgs(tmp_path):
    """The environment of a child process in which ``import tf2_msgs`` fails as where it was never generated."""
    blocker = tmp_path / "without_tf2_msgs" / "tf2_msgs"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'tf2_msgs'\", name='tf2_msgs')\n")
    return dict(os.environ, PYTHONWARNINGS="ignore",
                PYTHONPATH=os.pathsep.join(filter(None, [str(blocker.parent), os.environ.get("PYTHONPATH")])))


def stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def test_the_line_names_the_generator_and_its_build_requirements(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2_msgs", None)
    monkeypatch.setitem(sys.modules, "tf2_msgs.msg", None)
    with pytest.raises(MissingDependency) as info:
        tf_message_class()
    generator, requirements = REPO / "scripts" / "build_tf2_msgs.sh", REPO / "requirements-msggen.txt"
    assert str(info.value) == (MISSING + "with a ROS 2 install source its setup script; with ROS 2 from PyPI wheels "
                               f"generate it (needs cmake): {sys.executable} -m pip install -r {requirements} && "
                               f"bash {generator} {sys.prefix}")
    assert generator.is_file() and requirements.is_file()


@pytest.mark.slow
@pytest.mark.ros
def test_depth_node_says_it_in_one_line_and_exits_2(ros_domain_id, tmp_path, without_tf2_msgs):
    checkpoint = make_checkpoint(tmp_path / "student.pt")
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.node.depth_node", "--ros-args", "-p",
                           f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-p", "backend:=torch"],
                          capture_output=True, text=True, timeout=180, env=without_tf2_msgs)
    assert proc.returncode == 2, proc.stderr
    (line,) = stderr_lines(proc)
    assert "cannot start: " + MISSING in line and "build_tf2_msgs.sh" in line


@pytest.mark.parametrize("command", [["replay-eval", "--source-bag", "in", "--output-bag", "out"],
                                     ["replay-demo", "--out", "demo"]])
def test_the_commands_that_need_it_say_it_in_one_line_before_any_work(command, tmp_path, without_tf2_msgs):
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", *command], capture_output=True, text=True,
                          timeout=120, env=without_tf2_msgs, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = stderr_lines(proc)
    assert line.startswith(f"xdrcdepth {command[0]}: {MISSING}") and "build_tf2_msgs.sh" in line
    assert list(tmp_path.iterdir()) == [tmp_path / "without_tf2_msgs"]
