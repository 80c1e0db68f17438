"""foxglove_viewer: its relative ``image/compressed`` follows a remapped ``image`` as image_transport does.

image_transport subscribes the compressed transport of base topic ``image`` at ``<resolved image>/compressed``:
with ``-r image:=/cam/image`` that is ``/cam/image/compressed``. The viewer resolved ``image/compressed`` on
its own and bridged ``/image/compressed``, which nothing publishes, while the depth node (given the same
remap) read ``/cam/image/compressed``. Expected names below are worked out by hand from those rules.
"""

import json
import subprocess
import sys
import time

import pytest

from test_foxglove_viewer import (SpinningNode, _collect_channels, _first_payloads, _read_port,
                                  start_viewer_with_remapped_image)

#: (--ros-args rules, topic the compressed transport of 'image' resolves to, its camera_info), by hand
REMAP_CASES = [
    ([], "/image/compressed", "/camera_info"),
    (["-r", "image:=/cam/image"], "/cam/image/compressed", "/cam/camera_info"),
    (["-r", "/image:=/cam/image"], "/cam/image/compressed", "/cam/camera_info"),
    (["-r", "image:=cam/image"], "/cam/image/compressed", "/cam/camera_info"),
    (["-r", "image/compressed:=/jpeg"], "/jpeg", "/camera_info"),                  # explicit remap wins
    (["-r", "image:=/cam/image", "-r", "image/compressed:=/jpeg"], "/jpeg", "/cam/camera_info"),
    (["-r", "__ns:=/robot"], "/robot/image/compressed", "/robot/camera_info"),
    (["-r", "__ns:=/robot", "-r", "image:=front/image"], "/robot/front/image/compressed", "/robot/front/camera_info"),
    (["-r", "image:=/cam/image", "-r", "camera_info:=/calib"], "/cam/image/compressed", "/calib"),
]


@pytest.mark.ros
def test_compressed_topic_follows_the_remapped_image_like_the_depth_node(ros_domain_id):
    """The rules the viewer and the depth node's inputs share (:mod:`xdrcdepth_ros.node.transport_topics`) give
    the hand-worked names for every remap set, and the viewer applies them to its ``image/compressed`` and
    ``camera_info`` (it bridged ``/camera_info`` while the node, given ``-r image:=/cam/image``, read
    ``/cam/camera_info``)."""
    import rclpy

    from xdrcdepth_ros.node.transport_topics import compressed_topic
    from xdrcdepth_ros.tools.foxglove_viewer import transport_topic

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        for rules, expected, camera_info in REMAP_CASES:
            node = rclpy.create_node("viewer_remap_probe", context=context,
                                     cli_args=["--ros-args", *rules] if rules else None)
            try:
                assert transport_topic(node, "image/compressed") == expected, rules
                # the name a subscription is created with; rcl resolves (and remaps) that
                assert node.resolve_topic_name(compressed_topic(node, "image")) == expected, rules
                # camera_info beside the resolved image, as the depth node subscribes it (image_transport)
                assert transport_topic(node, "camera_info") == camera_info, rules
                assert transport_topic(node, "depth/camera_info") == node.resolve_topic_name("depth/camera_info")
                # names that are no transport of an image resolve as any subscription does
                assert transport_topic(node, "/tf_static") == "/tf_static"
                assert transport_topic(node, "/compressed") == "/compressed"
            finally:
                node.destroy_node()
    finally:
        context.try_shutdown()


class CompressedPublisher(SpinningNode):
    """Test-side node publishing a CompressedImage on /cam/image/compressed at 20 Hz."""

    def __init__(self):
        from sensor_msgs.msg import CompressedImage

        super().__init__("compressed_probe")
        self.message = CompressedImage(format="jpeg", data=bytes([0xFF, 0xD8, 0xFF, 0xD9]))
        self.message.header.frame_id = "cam_front"
        self.message.header.stamp.sec = 1_700_000_321
        pub = self.node.create_publisher(CompressedImage, "/cam/image/compressed", 10)
        self.node.create_timer(0.05, lambda: pub.publish(self.message))
        self.start()


@pytest.mark.slow
@pytest.mark.ros
def test_viewer_bridges_the_compressed_transport_of_the_remapped_image(ros_domain_id):
    """With ``-r image:=/cam/image`` (what a launch file gives the node and the viewer alike), the default
    ``image/compressed`` entry bridges /cam/image/compressed, and the messages reach a WebSocket client."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage
    from websockets.sync.client import connect

    publisher = CompressedPublisher()
    viewer = start_viewer_with_remapped_image()
    try:
        port = _read_port(viewer)
        with connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"]) as ws:
            channels, _ = _collect_channels(ws, {"/cam/image/compressed"}, timeout=30.0)
            channel = channels["/cam/image/compressed"]
            assert channel["schemaName"] == "sensor_msgs/msg/CompressedImage"
            # foxglove-sdk 0.30 answers "Unknown channel ID" to a subscribe racing the advertise it just sent;
            # re-send the subscribe until data comes (no fixed wait decides anything)
            payload = None
            deadline = time.monotonic() + 30
            while payload is None:
                assert time.monotonic() < deadline, "no message on /cam/image/compressed within 30 s"
                ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": 3, "channelId": channel["id"]}]}))
                try:
                    payload = _first_payloads(ws, [3], timeout=2.0)[3][1]
                except (AssertionError, TimeoutError):   # no data for this subscribe yet: send it again
                    continue
    finally:
        viewer.terminate()
        out, err = viewer.communicate(timeout=10)
        publisher.close()
    assert deserialize_message(payload, CompressedImage) == publisher.message
    assert "bridging /cam/image/compressed (sensor_msgs/msg/CompressedImage)" in err
    assert viewer.returncode == 0 and "Traceback" not in err


@pytest.mark.ros
def test_unknown_ros_arguments_are_one_line(ros_domain_id):
    """``--ros-args --port 1`` (a parameter written as a flag): rclpy.init raises UnknownROSArgsError, which
    used to end the viewer with a traceback and exit code 1, before any port was opened."""
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_ros.tools.foxglove_viewer", "--ros-args", "--port",
                             "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("foxglove_viewer: cannot start: invalid ROS arguments: unknown --port, 1 "
                             "(a node's own flags go before --ros-args; parameters are -p NAME:=VALUE)\n")
    assert result.stdout == ""
