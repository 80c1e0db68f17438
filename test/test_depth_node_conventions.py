"""The depth node against ros2-conventions.md: image_transport's topic naming (§6) and diagnostics that name
the cause when no depth comes out (§8).

Real node process, real DDS, a real nuScenes frame (``depth_node_rig``); waits are for events with deadlines.
"""

import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage

from depth_node_rig import (NodeProcess, NuScenesFrame, Rig, camera_info_msg, image_msg, jpeg_msg, make_checkpoint,
                            radar_msg)
from xdrcdepth_ros.node.depth_node import DepthNode

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.pt")


@pytest.mark.slow
def test_compressed_input_follows_the_remapped_base_topic(ros_domain_id, nuscenes_samples, tmp_path, checkpoint):
    """image_transport subscribes ``<resolved base topic>/compressed``: with ``-r image:=/cam/image_rect`` and
    ``image_transport: compressed`` the JPEGs come from ``/cam/image_rect/compressed`` (before: the node
    waited on ``/image/compressed`` and published nothing)."""
    frame = NuScenesFrame.load(nuscenes_samples)
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1,
                                               "image_transport": "compressed", "fixed_frame": ""},
                       remaps={"image": "/cam/image_rect"})
    rig = Rig(compressed=True)
    rig.node.destroy_publisher(rig.image_pub)
    rig.image_pub = rig.node.create_publisher(CompressedImage, "/cam/image_rect/compressed", 10)
    t = frame.t_cam
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth",))
        rig.publish_frame_until(jpeg_msg(frame.rgb, t), camera_info_msg(frame, t), [radar_msg(frame.radar, t)],
                                lambda: rig.received["depth"], node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert "inputs ['/cam/image_rect/compressed', '/camera_info', '/radar/points']" in node.output()
    assert Time.from_msg(rig.received["depth"][0].header.stamp).nanoseconds == t


@pytest.mark.parametrize("remaps, namespace, topic", [
    ([], "", "/image/compressed"),
    (["image:=/cam/image_rect"], "", "/cam/image_rect/compressed"),          # image_transport: base + /compressed
    (["image:=image_rect"], "/front", "/front/image_rect/compressed"),
    (["image/compressed:=/cam_front/image_rect_compressed"], "", "/cam_front/image_rect_compressed"),
    # the launch file passes both remaps (an identity one by default): the explicit compressed one wins
    (["image:=/cam/image", "image/compressed:=/cam/jpeg"], "", "/cam/jpeg"),
    (["image:=/cam/image", "image/compressed:=image/compressed"], "", "/cam/image/compressed"),
])
def test_compressed_topic_name(ros_domain_id, checkpoint, remaps, namespace, topic):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = None
    args = ["--ros-args"] + [a for r in remaps for a in ("-r", r)] + (["-r", f"__ns:={namespace}"] * bool(namespace))
    try:
        node = DepthNode(context=context, cli_args=args, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)), Parameter("device", value="cpu"),
            Parameter("backend", value="torch"), Parameter("precision", value="fp32"),
            Parameter("image_transport", value="compressed")])
        assert node.inputs[0].sub.topic_name == topic
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.slow
def test_diagnostics_name_the_bad_input_when_no_depth_is_published(ros_domain_id, nuscenes_samples, tmp_path,
                                                                    checkpoint):
    """Every frame's camera_info is 640x320 for a 320x160 image: nothing is published, and the status says why
    ("no depth published: bad input: camera_info_size_mismatch"; before: "no depth published" alone, which
    the troubleshooting table reads as a node too slow for its input)."""
    frame = NuScenesFrame.load(nuscenes_samples)
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1, "fixed_frame": "",
                                               "diagnostics_period": 0.2})
    rig = Rig()
    t = frame.t_cam
    info = camera_info_msg(frame, t)
    info.width, info.height = 2 * info.width, 2 * info.height

    def first_report_with_the_bad_frame():
        for msg in rig.received["diag"]:
            status = msg.status[0]
            if {kv.key: kv.value for kv in status.values}.get("bad: camera_info_size_mismatch") == "1":
                return status
        return None

    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        rig.publish_frame_until(image_msg(frame.rgb, t), info, [radar_msg(frame.radar, t)],
                                lambda: first_report_with_the_bad_frame() is not None, node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    status = first_report_with_the_bad_frame()
    assert status.level == status.WARN
    assert status.message == "no depth published: bad input: camera_info_size_mismatch"
    assert not rig.received["depth"]
