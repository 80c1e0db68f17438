"""Start-up errors are one line and exit code 2, never a traceback, and nothing runs from a checkpoint.

* ``depth_node -p checkpoint:=evil.pt`` with a pickle whose unpickling would run a shell command: exit 2,
  one line, the command never ran (its marker file is absent). A checkpoint with an unknown model_config
  key: the same.
* Every parameter is checked against its declared type, range and constraints before anything is built
  (``queue_size:=-1``, ``slop:=0.0``, ``cpu_threads:=999``, ``device:=foo|mps|meta``, ``radar_topics:=['']``
  used to give two tracebacks and exit 1, or be accepted); all bad parameters are named in one line.
* Every console script: bad arguments -> one line on stderr, exit code 2; so are ``qos_overrides`` that rclpy
  or DDS cannot apply (``reliability:=bogus``, ``depth:=-5`` used to be a traceback and exit code 1).
"""

import os
import pickle
import subprocess
import sys

import pytest
import rclpy
import torch
from rclpy.parameter import Parameter

from depth_node_rig import make_checkpoint
from xdrcdepth_ros.node.depth_node import DepthNode
from xdrcdepth_ros.node.params import ParameterError


def stderr_lines(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


def run(args, timeout=180):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))


class RunsShell:
    """What an attacker's checkpoint holds: unpickling it calls ``os.system``."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def make_node(context, **values):
    overrides = [Parameter(name, Parameter.Type.STRING_ARRAY, value) if name == "radar_topics" else
                 Parameter(name, value=value) for name, value in values.items()]
    return DepthNode(context=context, parameter_overrides=overrides)


@pytest.mark.ros
@pytest.mark.parametrize("name, value, message", [
    ("queue_size", -1, "queue_size = -1 is outside [1, 100]"),
    ("queue_size", "abc", "queue_size must be an integer, got 'abc'"),
    ("slop", 0.0, "slop = 0.0 is outside [0.001, 1.0]"),
    ("cpu_threads", 999, "cpu_threads = 999 is outside [0, 256]"),
    ("max_image_pixels", 0, "max_image_pixels = 0 is outside [1, 268435456]"),
    ("device", "foo", "device = 'foo' is not one of auto, cpu, cuda, cuda:N"),
    ("device", "mps", "device = 'mps' is not one of"),
    ("device", "meta", "device = 'meta' is not one of"),
    ("device", "cuda:x", "device = 'cuda:x' is not one of"),
    ("image_transport", "jpeg", "image_transport = 'jpeg' is not raw or compressed"),
    ("radar_topics", [""], "radar_topics: '' is not a valid topic name"),
    ("radar_topics", ["radar front"], "radar_topics: 'radar front' is not a valid topic name"),
    ("radar_topics", [], "radar_topics must be a string array, got []"),   # rclpy cannot type an empty list
    ("radar_topics", ["a", "/a"], "radar_topics names /a more than once"),
    ("fixed_frame", "/odom", "fixed_frame = '/odom': tf2 frame ids do not start with '/'"),
    ("fallback_transforms", "base_link cam 1 2 3", "fallback_transforms: transform 'base_link cam 1 2 3'"),
    ("checkpoint", "/nonexistent/student.pt", "checkpoint = '/nonexistent/student.pt': no such file"),
    ("checkpoint", "/", "checkpoint = '/': is a folder; give a checkpoint file"),
    ("checkpoint", "/dev/null", "checkpoint = '/dev/null': is not a regular file"),
])
def test_each_bad_parameter_is_named_before_anything_is_built(ros_context, name, value, message):
    with pytest.raises(ParameterError, match="bad parameters: ") as info:
        make_node(ros_context, **{name: value})
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.ros
@pytest.mark.parametrize("name, value, message", [
    # reprlib at 40 characters a string: its 17 first and 18 last inside the quotes
    ("precision", "x" * 10**6, "precision = 'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx' is not empty or one of"),
    ("queue_size", "9" * 5000, "queue_size must be an integer, got '99999999999999999...999999999999999999'"),
    ("radar_topics", ["a b" * 10**5], "radar_topics: 'a ba ba ba ba ba ...a ba ba ba ba ba b' is not a valid"),
])
def test_a_parameter_value_is_quoted_short(ros_context, name, value, message):
    """A parameter's value is quoted bounded in the error line (a params file's 1 MB string made a 1 MB line:
    black-box run)."""
    with pytest.raises(ParameterError, match="bad parameters: ") as info:
        make_node(ros_context, **{name: value})
    assert message in str(info.value) and len(str(info.value)) < 500, str(info.value)[:300]


@pytest.mark.ros
def test_cuda_without_cuda_is_rejected(ros_context):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: cuda is a valid device here")
    with pytest.raises(ParameterError, match="device = 'cuda' requested but CUDA is not available here"):
        make_node(ros_context, device="cuda")


@pytest.mark.ros
def test_parameters_are_checked_before_the_checkpoint_is_opened(ros_context, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model_name": "xdrcdepth", "payload": RunsShell(f"touch {marker}")}, f)
    with pytest.raises(ParameterError, match="queue_size"):
        make_node(ros_context, checkpoint=str(evil), queue_size=0, device="cpu")
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.ros
def test_malicious_checkpoint_runs_nothing_through_the_node(ros_domain_id, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model_name": "xdrcdepth", "payload": RunsShell(f"touch {marker}")}, evil)   # saving runs nothing
    assert not marker.exists()
    proc = run(["-m", "xdrcdepth_ros.node.depth_node", "--ros-args", "-p", f"checkpoint:={evil}",
                "-p", "device:=cpu"])
    assert proc.returncode == 2, proc.stderr
    (line,) = stderr_lines(proc)
    assert "cannot start" in line and "evil.pt" in line and "only tensors and plain data are accepted" in line
    assert not marker.exists(), "the checkpoint ran code"


@pytest.mark.slow
@pytest.mark.ros
def test_unknown_model_config_key_is_one_line(ros_domain_id, tmp_path):
    path = make_checkpoint(tmp_path / "student.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["no_such_option"] = 3
    torch.save(ckpt, path)
    proc = run(["-m", "xdrcdepth_ros.node.depth_node", "--ros-args", "-p", f"checkpoint:={path}",
                "-p", "device:=cpu"])
    assert proc.returncode == 2, proc.stderr
    (line,) = stderr_lines(proc)
    assert "cannot start" in line and "no_such_option" in line


@pytest.mark.slow
@pytest.mark.ros
def test_an_untyped_empty_list_from_the_command_line_is_named(ros_domain_id):
    proc = run(["-m", "xdrcdepth_ros.node.depth_node", "--ros-args", "-p", "radar_topics:=[]"])
    assert proc.returncode == 2, proc.stderr
    (line,) = stderr_lines(proc)
    assert line.endswith("cannot start: bad parameters: radar_topics must be a string array, got no value (an "
                         "empty list [] or null has no ROS 2 parameter type)"), line


@pytest.mark.slow
@pytest.mark.ros
def test_all_bad_parameters_in_one_line_exit_2(ros_domain_id):
    proc = run(["-m", "xdrcdepth_ros.node.depth_node", "--ros-args", "-p", "queue_size:=-1", "-p", "slop:=0.0",
                "-p", "cpu_threads:=999", "-p", "device:=meta", "-p", "radar_topics:=['']"])
    assert proc.returncode == 2, proc.stderr
    (line,) = stderr_lines(proc)
    for name in ("queue_size", "slop", "cpu_threads", "device", "radar_topics"):
        assert name in line, line


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.parametrize("script, args, message", [
    ("xdrcdepth_ros.node.depth_node", ["--ros-args", "-p", "queue_size"], "invalid ROS arguments"),
    # flags ROS does not know after --ros-args: rclpy's UnknownROSArgsError (rcl parses them without error)
    ("xdrcdepth_ros.node.depth_node", ["--ros-args", "--bogus", "--port", "1"],
     "cannot start: invalid ROS arguments: unknown --bogus, --port, 1 (a node's own flags go before --ros-args"),
    ("xdrcdepth_ros.node.depth_node", ["--ros-args", "-p", "backend:=torch", "-p", "precision:=fp32", "-p",
                                       "qos_overrides./image.subscription.reliability:=bogus"],
     "cannot start: qos_overrides./image.subscription: Unexpected QoS override for policy `reliability`: `bogus`"),
    ("xdrcdepth_ros.node.depth_node", ["--ros-args", "-p", "backend:=torch", "-p", "precision:=fp32", "-p",
                                       "qos_overrides./radar/points.subscription.depth:=-5"],
     "cannot start: qos_overrides./radar/points.subscription: Failed to create subscription: failed to set "
     "history depth"),
    ("xdrcdepth_ros.tools.foxglove_viewer", ["--ros-args", "-p", "port:=-5"], "port = -5 is outside [0, 65535]"),
    ("xdrcdepth_ros.tools.foxglove_viewer", ["--ros-args", "-p", "port:=70000"], "port = 70000 is outside"),
    ("xdrcdepth_ros.tools.foxglove_viewer", ["--ros-args", "-p", "port:=http"], "port must be an integer"),
    ("xdrcdepth_ros.bag.player", ["BAG", "-r", "nan"], "-r/--rate: must be a finite number, got 'nan'"),
    ("xdrcdepth_ros.bag.player", ["BAG", "--start-offset", "nan"], "--start-offset: must be a finite number"),
    ("xdrcdepth_ros.bag.player", ["BAG", "--clock", "-1"], "--clock: must be > 0"),
    ("xdrcdepth_ros.bag.player", ["BAG", "--remap", "a=b"], "--remap wants old:=new"),
    ("xdrcdepth_ros.bag.player", [], "the following arguments are required: bag"),
    ("xdrcdepth_ros.bag.recorder", ["-o", "OUT", "--duration", "nan"], "--duration: must be a finite number"),
    ("xdrcdepth_ros.bag.recorder", ["-o", "OUT", "--max-messages", "0"], "--max-messages: must be >= 1"),
    ("xdrcdepth_ros.bag.recorder", ["-o", "OUT", "--ros-args", "-r"], "invalid ROS arguments"),
    ("xdrcdepth_ros.bag.nuscenes2bag", ["--dataroot", "D"], "the following arguments are required: --out"),
    ("xdrcdepth_ros.bag.nuscenes2bag", ["--dataroot", "D", "--out", "O", "--storage", "zip"], "invalid choice"),
    ("xdrcdepth_core.cli", ["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ("xdrcdepth_core.cli", [], "the following arguments are required: COMMAND"),
    ("xdrcdepth_core.cli", ["prepare", "--dataroot", "D", "--out", "O", "--radar-sweeps", "0"], "must be >= 1"),
    ("xdrcdepth_core.cli", ["prepare", "--dataroot", "D", "--out", "O", "--radar-channels", "depth", "rcss"],
     "--radar-channels: unknown radar channels ['rcss']"),
    ("xdrcdepth_core.cli", ["bag-reindex"], "the following arguments are required: bag"),
    ("xdrcdepth_core.cli", ["launch", "xdrcdepth", "--sigterm-timeout", "nan"], "must be a finite number"),
    ("xdrcdepth_core.cli", ["launch", "xdrcdepth", "foo=bar"], "launch arguments are name:=value"),
    ("xdrcdepth_core.cli", ["replay-demo", "--rate", "nan"], "--rate: must be a finite number"),
    ("xdrcdepth_core.cli", ["replay-demo", "--foxglove-port", "70000"], "--foxglove-port: must be 0-65535"),
    ("xdrcdepth_core.cli", ["synth", "--out", "O", "--image-scale", "0"], "--image-scale: must be > 0"),
    ("xdrcdepth_core.cli", ["bench", "--sizes", "100x100"], "H and W must be positive multiples of 32, got '100x100'"),
    ("xdrcdepth_core.cli", ["bench", "--sizes", "352"], "--sizes: expected HxW, e.g. 352x704, got '352'"),
    ("xdrcdepth_core.cli", ["eval", "--data", "D", "--device", "bogus"],
     "--device: 'bogus' is not one of auto, cpu, cuda, cuda:N"),
    ("xdrcdepth_core.cli", ["eval", "--data", "D", "--limit", "0"], "--limit: must be >= 1, got '0'"),
    ("xdrcdepth_core.cli", ["export", "--format", "onnx", "--batch", "0"], "--batch: must be >= 1, got '0'"),
    ("xdrcdepth_core.cli", ["export", "--format", "onnx", "--device", "bogus"], "--device: 'bogus' is not one of"),
    *[("xdrcdepth_core.cli", [command, *args, "--device", "mps"], "--device: 'mps' is not one of auto, cpu, cuda")
      for command, args in (("bench", []), ("demo", []), ("replay-demo", []),
                            ("teacher-cache", ["--checkpoint", "C", "--data", "D", "--out", "O"]))],
])
def test_console_scripts_bad_arguments_one_line_exit_2(ros_domain_id, tmp_path, script, args, message):
    args = [str(tmp_path / a) if a in ("BAG", "OUT", "D", "O") else a for a in args]
    proc = run(["-m", script, *args])
    assert proc.returncode == 2, proc.stderr
    (line,) = stderr_lines(proc)
    assert message in line and "Traceback" not in line


@pytest.mark.parametrize("module", ["xdrcdepth_ros.node.depth_node", "xdrcdepth_ros.tools.foxglove_viewer"])
def test_help_into_a_closed_pipe_is_quiet(module):
    """`depth_node --help | head -0`: the reader is gone before the (long) help is written; exit 1, no traceback,
    as `xdrcdepth` commands and cat behave."""
    proc = subprocess.Popen([sys.executable, "-m", module, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                                   # the pipe has no reader left: every write is EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == ""
