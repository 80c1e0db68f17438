"""The depth node end to end: its own process, real rclpy over Fast DDS, a real nuScenes frame.

Expected outputs come from calling the core (``DepthEstimator.estimate``) on the same input in this
process, with the radar->camera transform computed from the nuScenes poses by
``xdrcdepth_core.data.geometry`` (not through TF).
"""

import numpy as np
import pytest
from rclpy.time import Time
from rosgraph_msgs.msg import Clock

from depth_node_rig import (CAMERA, IMAGE_HW, NodeProcess, NuScenesFrame, Rig, camera_info_msg,
                            depth_array, image_msg, jpeg_msg, make_checkpoint, radar_msg)
from xdrcdepth_core import visualize
from xdrcdepth_core.data.geometry import invert_transform, matrix_to_quaternion, sensor_to_sensor
from xdrcdepth_core.infer import DepthEstimator, RadarInput
from xdrcdepth_ros.node import conversions as conv
from xdrcdepth_ros.node.transforms import matrix_to_transform

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180), pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def frame(nuscenes_samples):
    return NuScenesFrame.load(nuscenes_samples)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "student_160x320.pt")


@pytest.fixture(scope="module")
def estimator(checkpoint):
    return DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="torch", precision="fp32")


def test_depth_equals_core_with_ego_motion(ros_domain_id, tmp_path, frame, checkpoint, estimator):
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(checkpoint), "cpu_threads": 1, "publish_saliency": True,
        "publish_points": True, "points_stride": 8, "diagnostics_period": 0.5})
    rig = Rig()
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "info", "colorized", "saliency", "points", "diag"))
        rig.spin_until(lambda: rig.tf_pub.get_subscription_count() > 0, 10)
        rig.publish_tf([
            matrix_to_transform(frame.cam_e2g, "odom", "base_link", Time(nanoseconds=frame.t_cam)),
            matrix_to_transform(frame.radar_e2g, "odom", "base_link", Time(nanoseconds=frame.t_radar))])
        rig.spin_for(0.2)
        outputs = ("depth", "info", "colorized", "saliency", "points")
        rig.publish_frame_until(image_msg(frame.rgb, frame.t_cam), camera_info_msg(frame, frame.t_cam),
                                [radar_msg(frame.radar, frame.t_radar)],
                                lambda: all(rig.received[k] for k in outputs), node)
        diag = rig.diagnostics_when("frames published", "1", node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert "Traceback" not in node.output()

    xyz, feats = frame.radar_xyz_features()
    T = sensor_to_sensor(frame.radar_s2e, frame.radar_e2g, frame.cam_e2g, frame.cam_s2e)
    want = estimator.estimate(frame.rgb, [RadarInput(xyz, feats, T)], frame.K, saliency=True)

    depth_msg = rig.received["depth"][0]
    assert (depth_msg.encoding, depth_msg.height, depth_msg.width) == ("32FC1", *IMAGE_HW)
    assert depth_msg.header.frame_id == CAMERA
    assert Time.from_msg(depth_msg.header.stamp).nanoseconds == frame.t_cam
    depth = depth_array(depth_msg)
    np.testing.assert_array_equal(depth, want.depth)            # bit for bit
    # the radar, placed with ego-motion compensation, shaped this depth: without radar, or with the
    # static extrinsic only (0.5 m of ego motion ignored), the core gives something else
    no_radar = estimator.estimate(frame.rgb, [], frame.K).depth
    static_only = estimator.estimate(frame.rgb, [RadarInput(
        xyz, feats, invert_transform(frame.cam_s2e) @ frame.radar_s2e)], frame.K).depth
    assert np.abs(no_radar - depth).max() > 1e-5
    assert np.abs(static_only - depth).max() > 1e-5

    info = rig.received["info"][0]
    assert (info.header.frame_id, info.height, info.width) == (CAMERA, *IMAGE_HW)
    assert Time.from_msg(info.header.stamp).nanoseconds == frame.t_cam
    np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), frame.K)

    colorized = rig.received["colorized"][0]
    assert colorized.encoding == "bgr8"
    np.testing.assert_array_equal(conv.rgb_from_image(colorized), visualize.colorize_depth(want.depth, 80.0))
    saliency = rig.received["saliency"][0]
    assert saliency.encoding == "bgr8" and (saliency.height, saliency.width) == IMAGE_HW
    np.testing.assert_array_equal(conv.rgb_from_image(saliency),
                                  visualize.overlay_saliency(frame.rgb, want.saliency))

    points = conv.read_points(rig.received["points"][0], ["x", "y", "z"])
    assert rig.received["points"][0].header.frame_id == CAMERA
    assert len(points) == (IMAGE_HW[0] // 8) * (IMAGE_HW[1] // 8)
    np.testing.assert_array_equal(points["z"], want.depth[::8, ::8].reshape(-1))

    assert diag["device"] == "cpu" and diag["model_id"] == estimator.model_id
    # one match per frame sent; a copy that reached the node before its writers matched the rig's readers was
    # skipped as idle and re-sent, one re-sent while the node was busy was out of order (publish_frame_until)
    assert diag["frames published"] == "1" and rig.unexplained_rejections(diag) == {}, diag
    assert int(diag["sync matches"]) == 1 + int(diag["frames skipped (no subscribers)"]) + int(
        diag.get("bad: stamp_out_of_order", "0")), diag
    assert diag["radar clouds without ego-motion compensation"] == "0"


def test_compressed_two_radars_and_fallback_extrinsics(ros_domain_id, tmp_path, frame, checkpoint,
                                                       estimator):
    """JPEG input, two radar topics merged, one radar known only from the fallback_transforms parameter."""
    spec = []
    for child, T in ((CAMERA, frame.cam_s2e), ("RADAR_B", frame.radar_s2e)):
        w, x, y, z = matrix_to_quaternion(T[:3, :3])
        spec.append(" ".join(["base_link", child] + [repr(float(v)) for v in (*T[:3, 3], x, y, z, w)]))
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(checkpoint), "cpu_threads": 1, "image_transport": "compressed",
        "radar_topics": ["radar/a", "radar/b"], "fixed_frame": "", "diagnostics_period": 0.3,
        "fallback_transforms": "; ".join(spec), "use_sim_time": True})
    rig = Rig(compressed=True, radar_topics=("radar/a", "radar/b"))
    half = len(frame.radar) // 2
    part_a, part_b = frame.radar[:half], frame.radar[half:]
    try:
        rig.publish_static_extrinsics(frame)                   # TF knows CAM_FRONT and RADAR_FRONT only
        rig.wait_connected(node, outputs=("depth", "diag"))
        sim_now = Time(nanoseconds=frame.t_cam - 20_000_000)   # bag time, as `--clock` would publish
        clock_pub = rig.node.create_publisher(Clock, "/clock", 10)
        assert rig.spin_until(lambda: clock_pub.get_subscription_count() > 0, 20, node)

        def diagnostics_at_sim_time():                         # the node's clock follows /clock
            clock_pub.publish(Clock(clock=sim_now.to_msg()))
            diag = rig.received["diag"]
            return bool(diag) and Time.from_msg(diag[-1].header.stamp).nanoseconds == sim_now.nanoseconds
        assert rig.spin_until(diagnostics_at_sim_time, 20, node)
        corrupt = jpeg_msg(frame.rgb, frame.t_cam - 10_000_000)
        corrupt.data = bytes(corrupt.data)[:300]
        rig.publish_frame_until(corrupt, camera_info_msg(frame, frame.t_cam - 10_000_000),
                                [radar_msg(part_a, frame.t_radar - 10_000_000),
                                 radar_msg(part_b, frame.t_radar - 10_000_000, frame_id="RADAR_B")],
                                lambda: rig.latest_diagnostics().get("bad: bad_compressed") == "1", node)
        good = jpeg_msg(frame.rgb, frame.t_cam)
        rig.publish_frame_until(good, camera_info_msg(frame, frame.t_cam),
                                [radar_msg(part_a, frame.t_radar),
                                 radar_msg(part_b, frame.t_radar, "RADAR_B")],
                                lambda: rig.received["depth"], node)
        diag = rig.diagnostics_when("frames published", "1", node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert diag["bad messages"] == "1" and diag["bad: bad_compressed"] == "1"     # no missing_tf
    assert diag["input rate /radar/b (Hz)"] != "0.00"

    rgb = conv.rgb_from_compressed(good)                       # what the node decoded
    T = invert_transform(frame.cam_s2e) @ frame.radar_s2e
    radars = [RadarInput(*frame.radar_xyz_features(part), T) for part in (part_a, part_b)]
    want = estimator.estimate(rgb, radars, frame.K)
    np.testing.assert_array_equal(depth_array(rig.received["depth"][0]), want.depth)
    only_a = estimator.estimate(rgb, radars[:1], frame.K).depth
    assert np.abs(only_a - want.depth).max() > 1e-5            # radar b was used, not just radar a
