"""`xdrcdepth launch nuscenes_replay` end to end: the real scene-0061 samples as a bag (nuscenes2bag), the
real depth node, bag_player and foxglove_viewer started from the launch file; depth images arrive here
over DDS and the colorized depth through the viewer's WebSocket; the graph stops when the bag is played."""

import json
import re
import subprocess
import sys
import threading
import time

import pytest
import yaml

from conftest import REPO

DELAY_S = 6  # bag_player waits this long before playing: the node loads its model meanwhile


@pytest.fixture(scope="module")
def replay_inputs(tmp_path_factory):
    """(bag folder, params YAML with a small seeded checkpoint on one CPU thread, camera stamps in ns)."""
    from conftest import NUSCENES_SAMPLES
    from depth_node_rig import make_checkpoint

    from xdrcdepth_core.data.real_samples import assemble_real_samples
    from xdrcdepth_ros.nuscenes2bag import main as nuscenes2bag

    root = tmp_path_factory.mktemp("replay")
    dataroot = assemble_real_samples(root / "nuscenes", NUSCENES_SAMPLES)
    bag = root / "scene-0061"
    assert nuscenes2bag(["--dataroot", str(dataroot), "--scene", "scene-0061", "--out", str(bag),
                         "--no-progress"]) == 0
    config = yaml.safe_load((REPO / "config" / "xdrcdepth.yaml").read_text())
    (params,) = config.values()
    params["ros__parameters"].update(checkpoint=str(make_checkpoint(root / "student.pt")), cpu_threads=1)
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(config))
    frames = json.loads((NUSCENES_SAMPLES / "frames.json").read_text())["frames"]
    return bag, params_file, [f["CAM_FRONT"]["timestamp"] * 1000 for f in frames]


class OutputReader:
    """The launcher's stdout, line by line in a thread; exposes the Foxglove port once printed."""

    def __init__(self, proc):
        self.lines = []
        self.port = None
        self.port_seen = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            match = re.search(r"\[foxglove_viewer\] foxglove_viewer: ws://127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                self.port_seen.set()


def first_colorized_frame(port, result, timeout=40.0):
    """WebSocket client: subscribe to /depth/colorized once advertised; keep the first payload.

    foxglove-sdk 0.30 may answer a subscribe that races its own advertise with the status "Unknown channel
    ID"; the subscribe is then sent again.
    """
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    result["ops"] = []
    subscribe = None
    try:
        with connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"], max_size=None) as ws:
            while time.monotonic() < deadline:
                frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(frame, bytes):
                    if frame[0] == 0x01:
                        result["colorized"] = frame[13:]
                        return
                    continue
                msg = json.loads(frame)
                result["ops"].append(msg["op"] if msg["op"] != "status" else f"status: {msg['message']}")
                for channel in msg.get("channels", []) if msg["op"] == "advertise" else []:
                    if channel["topic"] == "/depth/colorized":
                        subscribe = json.dumps({"op": "subscribe", "subscriptions": [
                            {"id": 1, "channelId": channel["id"]}]})
                        ws.send(subscribe)
                if msg["op"] == "status" and "Unknown channel" in msg["message"] and subscribe:
                    time.sleep(0.2)
                    ws.send(subscribe)
    except Exception as exc:  # reported by the test's assertion
        result["error"] = repr(exc)


@pytest.mark.ros
def test_replay_graph_runs_node_player_and_viewer(replay_inputs, ros_domain_id):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    bag, params_file, camera_stamps = replay_inputs
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("replay_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    depth = []
    node.create_subscription(Image, "/depth/image", depth.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    proc = subprocess.Popen(
        [sys.executable, "-m", "xdrcdepth_core.cli", "launch", "nuscenes_replay", f"bag:={bag}",
         f"params_file:={params_file}", "device:=cpu", "use_rviz:=false", "foxglove_port:=0",
         f"delay:={DELAY_S}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = OutputReader(proc)
    ws_result, ws_thread = {}, None
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if ws_thread is None and output.port_seen.is_set():
                ws_thread = threading.Thread(target=first_colorized_frame, args=(output.port, ws_result),
                                             daemon=True)
                ws_thread.start()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    output.thread.join(timeout=5)
    log = "\n".join(output.lines)
    assert proc.returncode == 0, log
    assert re.search(r"\[bag_player\] bag_player: played 33 messages on 6 topics", log), log
    assert "[launch] stopping (bag_player exited)" in output.lines
    assert "[launch] depth_node exited with code 0" in output.lines
    assert "[launch] foxglove_viewer exited with code 0" in output.lines

    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in depth]
    assert len(stamps) >= 4 and set(stamps) <= set(camera_stamps), (stamps, camera_stamps)
    first = depth[0]
    assert (first.encoding, first.height, first.width, first.header.frame_id) == ("32FC1", 900, 1600, "cam_front")

    assert "colorized" in ws_result, (ws_result.get("ops"), ws_result.get("error"), log)
    colorized = deserialize_message(ws_result["colorized"], Image)
    assert (colorized.height, colorized.width) == (900, 1600)
    assert colorized.header.stamp.sec * 10**9 + colorized.header.stamp.nanosec in camera_stamps
