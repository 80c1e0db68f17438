"""The depth node against ros2-conventions.md: image_transport's topic naming (§6) and diagnostics that name
the cause when no depth comes out (§8).

Real node process, real DDS, a real nuScenes frame (``depth_node_rig``); waits are for events with deadlines.
"""

import contextlib

import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from depth_node_rig import (NodeProcess, NuScenesFrame, Rig, camera_info_msg, image_msg, jpeg_msg, make_checkpoint,
                            radar_msg)
from xdrcdepth_ros.node.depth_node import OUTPUT_QOS, DepthNode

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "student.pt")


@pytest.mark.slow
def test_compressed_input_follows_the_remapped_base_topic(ros_domain_id, nuscenes_samples, tmp_path, checkpoint):
    """image_transport subscribes ``<resolved base topic>/compressed`` and its ``camera_info`` beside the resolved
    base: with ``-r image:=/cam/image_rect`` and ``image_transport: compressed`` the JPEGs come from
    ``/cam/image_rect/compressed`` (before: the node waited on ``/image/compressed`` and published nothing) and
    the calibration from ``/cam/camera_info``; with ``-r depth/image:=/out/depth`` the depth's calibration goes
    out on ``/out/camera_info``, where RViz's DepthCloud and image_transport subscribers look for it (before:
    ``/camera_info`` and ``/depth/camera_info`` stayed where they were, and no depth came out)."""
    frame = NuScenesFrame.load(nuscenes_samples)
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1,
                                               "image_transport": "compressed", "fixed_frame": ""},
                       remaps={"image": "/cam/image_rect", "depth/image": "/out/depth"})
    rig = Rig(compressed=True, outputs=())
    rig.node.destroy_publisher(rig.image_pub)
    rig.node.destroy_publisher(rig.info_pub)
    rig.image_pub = rig.node.create_publisher(CompressedImage, "/cam/image_rect/compressed", 10)
    rig.info_pub = rig.node.create_publisher(CameraInfo, "/cam/camera_info", 10)
    depth, info = [], []
    outputs = [rig.node.create_subscription(Image, "/out/depth", depth.append, OUTPUT_QOS),
               rig.node.create_subscription(CameraInfo, "/out/camera_info", info.append, OUTPUT_QOS)]
    t = frame.t_cam
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=())
        assert rig.spin_until(lambda: all(sub.get_publisher_count() > 0 for sub in outputs), 60, node)
        rig.publish_frame_until(jpeg_msg(frame.rgb, t), camera_info_msg(frame, t), [radar_msg(frame.radar, t)],
                                lambda: depth and info, node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert "inputs ['/cam/image_rect/compressed', '/cam/camera_info', '/radar/points']" in node.output()
    assert Time.from_msg(depth[0].header.stamp).nanoseconds == Time.from_msg(info[0].header.stamp).nanoseconds == t


@pytest.mark.parametrize("remaps, namespace, info_in, info_out", [
    ([], "", "/camera_info", "/depth/camera_info"),
    (["image:=/cam/image_rect"], "", "/cam/camera_info", "/depth/camera_info"),     # getCameraInfoTopic
    (["image:=image_rect"], "/front", "/front/camera_info", "/front/depth/camera_info"),
    (["image:=/cam/image", "camera_info:=camera_info"], "", "/cam/camera_info", "/depth/camera_info"),  # identity
    (["image:=/cam/image", "camera_info:=/calib/front"], "", "/calib/front", "/depth/camera_info"),  # ours wins
    (["image/compressed:=/cam_front/jpeg"], "", "/camera_info", "/depth/camera_info"),   # the base stays
    (["depth/image:=/out/depth"], "", "/camera_info", "/out/camera_info"),
    (["depth/image:=depth_rect"], "/front", "/front/camera_info", "/front/camera_info"),
    (["depth/image:=/out/depth", "depth/camera_info:=/out/depth_info"], "", "/camera_info", "/out/depth_info"),
])
def test_camera_info_topics_are_siblings_of_the_resolved_image_topics(ros_domain_id, checkpoint, remaps, namespace,
                                                                       info_in, info_out):
    """image_transport's camera publisher and subscriber: ``camera_info`` is the resolved (remapped) image
    topic's parent namespace plus ``/camera_info`` (``getCameraInfoTopic``), unless our own camera_info name
    is remapped explicitly."""
    with depth_node(ros_domain_id, checkpoint, remaps, namespace, image_transport="raw") as node:
        assert (node.inputs[1].sub.topic_name, node.info_pub.topic_name) == (info_in, info_out)


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
    with depth_node(ros_domain_id, checkpoint, remaps, namespace, image_transport="compressed") as node:
        assert node.inputs[0].sub.topic_name == topic


@contextlib.contextmanager
def depth_node(ros_domain_id, checkpoint, remaps, namespace, image_transport):
    """A depth node in this process with the command line's remaps and namespace, for its topic names."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = None
    args = ["--ros-args"] + [a for r in remaps for a in ("-r", r)] + (["-r", f"__ns:={namespace}"] * bool(namespace))
    try:
        node = DepthNode(context=context, cli_args=args, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)), Parameter("device", value="cpu"),
            Parameter("backend", value="torch"), Parameter("precision", value="fp32"),
            Parameter("image_transport", value=image_transport)])
        yield node
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
