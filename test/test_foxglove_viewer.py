"""foxglove_viewer: messages published here reach a Foxglove WebSocket client unchanged.

The client speaks the Foxglove WebSocket protocol (subprotocol ``foxglove.sdk.v1``): JSON ``serverInfo``
and ``advertise`` from the server, a JSON ``subscribe`` op from us, then binary MessageData frames
(opcode 0x01, uint32 subscription id, uint64 log time, payload), all little-endian.
"""

import json
import re
import struct
import subprocess
import sys
import threading
import time

import pytest

MESSAGE_DATA_OPCODE = 0x01


def _image():
    from sensor_msgs.msg import Image

    img = Image(height=2, width=3, encoding="mono8", step=3, data=bytes(range(10, 16)))
    img.header.frame_id = "cam_front"
    img.header.stamp.sec, img.header.stamp.nanosec = 1_700_000_123, 456_000_000
    return img


def _tf_static():
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    tf = TransformStamped(child_frame_id="radar_front")
    tf.header.frame_id = "base_link"
    tf.transform.translation.x = 3.5
    tf.transform.rotation.w = 1.0
    return TFMessage(transforms=[tf])


class SpinningNode:
    """A test-side node in its own context, spun in a background thread until ``close()``."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def start(self):
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        return self

    def close(self):
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        self.context.try_shutdown()


class Publisher(SpinningNode):
    """Test-side node: /tf_static latched (published before the viewer starts), /cam/image at 20 Hz."""

    def __init__(self):
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from sensor_msgs.msg import Image
        from tf2_msgs.msg import TFMessage

        super().__init__("viewer_probe")
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_publisher(TFMessage, "/tf_static", latched).publish(_tf_static())
        image_pub = self.node.create_publisher(Image, "/cam/image", 10)
        self.node.create_timer(0.05, lambda: image_pub.publish(_image()))
        self.start()


def start_viewer_with_remapped_image() -> subprocess.Popen:
    """The viewer on any free port, scanning the graph every 0.2 s, with ``-r image:=/cam/image``."""
    return subprocess.Popen(
        [sys.executable, "-m", "xdrcdepth_ros.tools.foxglove_viewer", "--ros-args", "-p", "port:=0",
         "-p", "discovery_period:=0.2", "-r", "image:=/cam/image"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_port(proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"viewer did not report its port; stderr: {proc.stderr.read()}")


def _collect_channels(ws, topics, timeout=15.0):
    """Read JSON ops until channels for all ``topics`` were advertised; returns topic -> channel dict."""
    channels, ops = {}, []
    deadline = time.monotonic() + timeout
    while not topics <= channels.keys():
        assert time.monotonic() < deadline, f"advertised only {sorted(channels)} within {timeout} s"
        frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(frame, str):
            msg = json.loads(frame)
            ops.append(msg["op"])
            if msg["op"] == "advertise":
                channels.update({c["topic"]: c for c in msg["channels"]})
    return channels, ops


def _first_payloads(ws, subscription_ids, timeout=10.0):
    """subscription id -> (log time, payload) of the first MessageData frame for each id."""
    first = {}
    deadline = time.monotonic() + timeout
    while not set(subscription_ids) <= first.keys():
        assert time.monotonic() < deadline, f"messages only for subscriptions {sorted(first)} in {timeout} s"
        frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(frame, bytes) and frame[0] == MESSAGE_DATA_OPCODE:
            sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
            first.setdefault(sub_id, (log_time, frame[13:]))
    return first


@pytest.mark.slow
@pytest.mark.ros
def test_viewer_forwards_cdr_and_latched_tf_to_a_websocket_client(ros_domain_id):
    from rclpy.serialization import deserialize_message, serialize_message
    from websockets.sync.client import connect

    publisher = Publisher()
    viewer = start_viewer_with_remapped_image()
    try:
        port = _read_port(viewer)
        with connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"]) as ws:
            assert ws.subprotocol == "foxglove.sdk.v1"
            channels, ops = _collect_channels(ws, {"/cam/image", "/tf_static"})
            assert ops[0] == "serverInfo"
            image_channel = channels["/cam/image"]
            assert (image_channel["encoding"], image_channel["schemaEncoding"]) == ("cdr", "ros2msg")
            assert image_channel["schemaName"] == "sensor_msgs/msg/Image"
            assert image_channel["schema"].startswith("std_msgs/Header header\nuint32 height")
            assert "MSG: builtin_interfaces/Time" in image_channel["schema"]
            assert channels["/tf_static"]["schemaName"] == "tf2_msgs/msg/TFMessage"

            # foxglove-sdk 0.30 answers "Unknown channel ID" to a subscribe racing the advertise it just sent
            time.sleep(0.5)
            ws.send(json.dumps({"op": "subscribe", "subscriptions": [
                {"id": 7, "channelId": image_channel["id"]},
                {"id": 8, "channelId": channels["/tf_static"]["id"]}]}))
            # /tf_static was published long before this client connected: sent again on subscribe
            payloads = _first_payloads(ws, [7, 8])
    finally:
        viewer.terminate()
        out, err = viewer.communicate(timeout=10)
        publisher.close()
    # The payload is the DDS sample as published: the CDR message plus up to 3 bytes of end-of-sample
    # alignment padding (padding content is unspecified in CDR, so compare decoded messages).
    for sub_id, message in ((7, _image()), (8, _tf_static())):
        payload, expected = payloads[sub_id][1], serialize_message(message)
        assert payload[:4] == expected[:4] == b"\x00\x01\x00\x00"  # CDR little-endian encapsulation
        assert len(payload) - len(expected) in range(4)
        assert deserialize_message(payload, type(message)) == message
    assert viewer.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.ros
def test_taken_port_is_a_clear_error(ros_domain_id):
    import foxglove

    server = foxglove.start_server(host="127.0.0.1", port=0)
    port = server.port
    try:
        result = subprocess.run(
            [sys.executable, "-m", "xdrcdepth_ros.tools.foxglove_viewer", "--ros-args", "-p", f"port:={port}"],
            capture_output=True, text=True, timeout=30)
    finally:
        server.stop()
    assert result.returncode == 1
    assert f"cannot serve Foxglove on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_subscription_qos_matches_every_publisher():
    from rclpy.qos import DurabilityPolicy as D
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy as R

    from xdrcdepth_ros.tools.foxglove_viewer import subscription_qos

    def offered(reliability, durability):
        return QoSProfile(depth=1, reliability=reliability, durability=durability)

    cases = [
        ([offered(R.RELIABLE, D.VOLATILE)], (R.RELIABLE, D.VOLATILE)),
        ([offered(R.RELIABLE, D.TRANSIENT_LOCAL)], (R.RELIABLE, D.TRANSIENT_LOCAL)),
        ([offered(R.RELIABLE, D.TRANSIENT_LOCAL), offered(R.RELIABLE, D.VOLATILE)], (R.RELIABLE, D.VOLATILE)),
        ([offered(R.BEST_EFFORT, D.VOLATILE), offered(R.RELIABLE, D.VOLATILE)], (R.BEST_EFFORT, D.VOLATILE)),
        ([], (R.BEST_EFFORT, D.VOLATILE)),
    ]
    for publishers, expected in cases:
        qos = subscription_qos(publishers)
        assert (qos.reliability, qos.durability) == expected


def test_missing_foxglove_sdk_is_a_clear_startup_error(ros_domain_id):
    """foxglove-sdk has no rosdep key: without it the viewer says what to install and exits 1 ("cannot
    start"), instead of an ImportError traceback; the other processes of a launch graph are unaffected."""
    code = ("import sys; sys.modules['foxglove'] = None\n"
            "from xdrcdepth_ros.tools.foxglove_viewer import main\n"
            "sys.exit(main(['foxglove_viewer']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "cannot start: foxglove-sdk is not installed" in result.stderr
    assert "pip install foxglove-sdk" in result.stderr and "Traceback" not in result.stderr
