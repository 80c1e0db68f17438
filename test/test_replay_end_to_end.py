"""End to end on the real scene-0061 samples: nuscenes2bag -> bag_player --clock -> depth_node (sim time,
compressed camera, config/xdrcdepth.yaml) -> bag_recorder. Every recorded depth frame belongs to a camera
frame of the bag, carries its calibration, and is stamped in bag time; the TF the converter wrote lets the
node compensate ego-motion (no TF warnings). The commands are the ones docs/bag_tools.md gives."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from conftest import REPO
from xdrcdepth_core.data.real_samples import assemble_real_samples
from xdrcdepth_ros.nuscenes2bag import main as nuscenes2bag

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
PLAYED = ["/cam_front/image_rect_compressed", "/cam_front/camera_info", "/radar_front", "/tf", "/tf_static"]
RECORDED = ["/depth/image", "/depth/camera_info", "/depth/colorized"]
NODE_ARGS = ["--ros-args", "--params-file", str(REPO / "config" / "xdrcdepth.yaml"),
             "-p", "use_sim_time:=true", "-p", "image_transport:=compressed", "-p", "device:=cpu",
             "-p", "cpu_threads:=1",
             "-r", "image/compressed:=/cam_front/image_rect_compressed",
             "-r", "camera_info:=/cam_front/camera_info", "-r", "radar/points:=/radar_front"]
RATE = 0.5  # half speed: 2.5 s of bag in ~5 s, so a loaded 2-core machine keeps up with most frames


def wait_for_text(path, texts, process, timeout):
    deadline = time.monotonic() + timeout
    while not all(t in path.read_text() for t in texts):
        assert process.poll() is None, f"{process.args[2]} exited: {path.read_text()}"
        assert time.monotonic() < deadline, f"waited {timeout} s for {texts}: {path.read_text()}"
        time.sleep(0.1)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.mark.ros
def test_bag_through_node_into_recorder(tmp_path, nuscenes_samples, ros_domain_id):
    dataroot = assemble_real_samples(tmp_path / "nuscenes", nuscenes_samples)
    bag, record, pngs = tmp_path / "scene-0061", tmp_path / "depth_record", tmp_path / "png"
    assert nuscenes2bag(["--dataroot", str(dataroot), "--scene", "scene-0061", "--out", str(bag),
                         "--channels", "CAM_FRONT", "RADAR_FRONT", "--no-progress"]) == 0
    with Reader(bag) as reader:
        camera = {}
        for conn, _, raw in reader.messages():
            if conn.topic == "/cam_front/camera_info":
                info = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
                camera[info.header.stamp.sec * 10**9 + info.header.stamp.nanosec] = info
    assert len(camera) == 6

    node_log, recorder_log = tmp_path / "node.log", tmp_path / "recorder.log"
    python = [sys.executable, "-m"]
    with open(node_log, "w") as node_out, open(recorder_log, "w") as recorder_out:
        node = subprocess.Popen(python + ["xdrcdepth_ros.depth_node", *NODE_ARGS],
                                stdout=node_out, stderr=subprocess.STDOUT)
        recorder = subprocess.Popen(python + ["xdrcdepth_ros.bag_recorder", "--out", str(record), "--png-dir",
                                              str(pngs), "--topics", *RECORDED,
                                              "--ros-args", "-p", "use_sim_time:=true"],
                                    stdout=recorder_out, stderr=subprocess.STDOUT)
        try:
            # The recorder subscribes once the node's publishers exist, i.e. once the node is up.
            wait_for_text(recorder_log, [f"recording {t}" for t in RECORDED], recorder, timeout=60)
            player = subprocess.run(python + ["xdrcdepth_ros.bag_player", str(bag), "--clock", "--rate", str(RATE),
                                              "--wait-for-subscribers", "30", "--topics", *PLAYED],
                                    capture_output=True, text=True, timeout=60)
            assert player.returncode == 0, player.stderr
            # 1 /tf_static + 12 /tf (one per camera and radar reading) + 6 images + 6 camera_info + 6 radar
            assert "played 31 messages on 5 topics" in player.stdout, player.stdout
            time.sleep(3.0)  # the last frame's inference
        finally:
            recorder_rc, node_rc = stop(recorder), stop(node)
    assert recorder_rc == 0 and node_rc == 0, (recorder_log.read_text(), node_log.read_text())

    log = node_log.read_text()
    assert "not ego-motion compensated" not in log and "missing_tf" not in log, log
    summary = recorder_log.read_text().strip().splitlines()[-1]
    with Reader(record) as reader:
        recorded = {}
        for conn, stamp, raw in reader.messages():
            recorded.setdefault(conn.topic, []).append((stamp, TYPESTORE.deserialize_cdr(raw, conn.msgtype)))
    depth = recorded.get("/depth/image", [])
    print(f"{len(depth)} of {len(camera)} frames: {summary}")
    assert len(depth) >= 3, summary
    assert len(recorded["/depth/camera_info"]) == len(recorded["/depth/colorized"]) == len(depth)
    for stamp, image in depth:
        image_ns = image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
        assert image_ns in camera  # a depth frame per camera frame, with the camera's stamp
        assert 0 < stamp - image_ns < 5 * 10**9  # recorded in bag time (sim time), after its input
        assert (image.header.frame_id, image.encoding, image.width, image.height) == ("cam_front", "32FC1",
                                                                                    1600, 900)
        values = image.data.view(np.float32)
        assert np.all(values[np.isfinite(values)] > 0)
    for _, info in recorded["/depth/camera_info"]:
        source = camera[info.header.stamp.sec * 10**9 + info.header.stamp.nanosec]
        np.testing.assert_array_equal(info.k, source.k)
        assert (info.width, info.height) == (source.width, source.height)
    assert len(list(pngs.glob("depth_colorized_*.png"))) == len(depth)
