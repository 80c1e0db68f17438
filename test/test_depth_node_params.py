"""The node's parameter table, config/xdrcdepth.yaml and the declared descriptors agree; ranges and
read-only flags are enforced by rclpy."""

from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy

from depth_node_rig import make_checkpoint
from xdrcdepth_ros.node import params as depth_node_params
from xdrcdepth_ros.node.depth_node import DepthNode

CONFIG = Path(__file__).resolve().parents[1] / "config" / "xdrcdepth.yaml"


def test_yaml_holds_exactly_the_declared_defaults():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    declared = {p.name: p.default for p in depth_node_params.PARAMETERS}
    assert params.pop("use_sim_time") is False
    assert params == declared
    for p in depth_node_params.PARAMETERS:
        assert type(params[p.name]) is type(p.default), p.name     # 1.0 stays a double, 10 an int
        assert p.description, p.name
        if p.range is not None:
            assert p.range[0] <= p.default <= p.range[1], p.name


def test_docs_table_lists_every_parameter_with_its_default():
    doc = (CONFIG.parents[1] / "docs" / "depth_node.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line.split("|")[3].strip(" `")
            for line in doc.splitlines()
            if line.startswith("| `") and line.count("|") > 5 and line.split("|")[4].strip() in ("yes", "no")}
    for p in depth_node_params.PARAMETERS:
        shown = str(p.default).lower() if isinstance(p.default, bool) else (
            f'"{p.default}"' if isinstance(p.default, str) else str(p.default).replace("'", '"'))
        assert rows.get(p.name) == shown, p.name


@pytest.mark.ros
def test_node_declares_descriptors_and_enforces_them(ros_domain_id, tmp_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = None
    try:
        node = DepthNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(make_checkpoint(tmp_path / "s.pt"))),
            Parameter("device", value="cpu"), Parameter("backend", value="torch"), Parameter("slop", value=0.05),
            Parameter("radar_topics", value=["radar/front", "radar/front_left"]),
            Parameter("qos_overrides./radar/front.subscription.reliability", value="reliable")])
        assert node.get_parameter("slop").value == 0.05
        assert [f.sub.topic_name for f in node.inputs] == [
            "/image", "/camera_info", "/radar/front", "/radar/front_left"]
        # inputs follow their publishers (BEST_AVAILABLE); per-topic overrides apply
        reliability = [f.sub.qos_profile.reliability for f in node.inputs]
        assert reliability == [ReliabilityPolicy.BEST_AVAILABLE, ReliabilityPolicy.BEST_AVAILABLE,
                               ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_AVAILABLE]
        slop = node.describe_parameter("slop")
        assert slop.read_only and slop.floating_point_range[0].to_value == 1.0
        stride = node.describe_parameter("points_stride")
        assert not stride.read_only and stride.integer_range[0].from_value == 1
        assert node.set_parameters([Parameter("points_stride", value=8)])[0].successful
        assert not node.set_parameters([Parameter("points_stride", value=0)])[0].successful
        assert not node.set_parameters([Parameter("slop", value=0.2)])[0].successful      # read-only
        assert not node.set_parameters([Parameter("tf_timeout", value=5.0)])[0].successful  # > 1 s
        # radar_timeout: 0 or above slop (0.05 here), at run time as at start-up
        assert node.set_parameters([Parameter("radar_timeout", value=0.0)])[0].successful
        refused = node.set_parameters([Parameter("radar_timeout", value=0.05)])[0]
        assert not refused.successful and "above slop = 0.05" in refused.reason
        assert node.set_parameters([Parameter("radar_timeout", value=0.06)])[0].successful
        assert node.get_parameter("radar_timeout").value == 0.06
        assert node.get_parameter("points_stride").value == 8
        # max_image_pixels changes at run time up to its range's end: the estimator must take frames that large
        # (it refuses more than its own limit, 4096 x 4096 by default; the node checks the parameter per frame)
        largest = node.describe_parameter("max_image_pixels").integer_range[0].to_value
        assert largest == 16384 * 16384 and node.estimator.max_image_pixels == largest
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.slow
@pytest.mark.ros
def test_bad_parameters_stop_the_node_with_a_clear_error(ros_domain_id, tmp_path):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.node.depth_node", "--ros-args",
                           "-p", f"checkpoint:={tmp_path / 'missing.pt'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "cannot start" in proc.stderr and "missing.pt" in proc.stderr


@pytest.mark.parametrize("timeout, slop, refused", [(0.1, 0.1, True), (0.05, 0.1, True), (0.0, 0.1, False),
                                                    (0.11, 0.1, False), (1.0, 0.1, False)])
def test_radar_timeout_must_be_zero_or_above_slop(timeout, slop, refused):
    problems = depth_node_params.check_values({"radar_timeout": timeout, "slop": slop})
    assert bool(problems) == refused, problems
    if refused:
        assert problems == [f"radar_timeout = {timeout!r} must be 0 (wait for every radar) or above slop = "
                            f"{slop!r} (keep it above the radar period plus slop)"]


@pytest.mark.parametrize("spec", ["base_link cam 1 2 3", "a b 1 2 3 0 0 0 nan", "a b inf 2 3 0 0 0 1"])
def test_bad_fallback_transform_is_rejected(spec):
    from xdrcdepth_ros.node.transforms import static_transform_buffer
    with pytest.raises(ValueError):
        static_transform_buffer([spec])
