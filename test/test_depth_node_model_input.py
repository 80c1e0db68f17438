"""What the network is fed by the real node, against tensors worked out by hand; what a failing network does to it.

The node runs in its own process (``test/recording_node.py``: the real ``depth_node`` main with a model stub
registered that records its input). A ``bgr8`` frame whose three channels differ everywhere, and a radar
cloud with every channel non-zero, must reach the model as the RGB, ImageNet-normalised image tensor and the
per-channel scaled radar tensor computed here from their definitions, not from the code under test. The
other node tests compare the node with the core (same code on both sides); this one pins the values.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo

import recording_model
from depth_node_rig import CAMERA, Rig, depth_array, header, image_msg, radar_msg
from xdrcdepth_core.checkpoint import save_checkpoint
from xdrcdepth_core.data.radar_pcd import RADAR_RECORD_DTYPE

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
H, W = 32, 64                 # the stub checkpoint's input size: no resize between message and model
K = np.array([[40.0, 0.0, 30.0], [0.0, 40.0, 10.0], [0.0, 0.0, 1.0]])
STAMP = 1_700_000_000 * 1_000_000_000


def test_image(h=H, w=W) -> np.ndarray:
    """RGB uint8 with R, G and B different at every pixel."""
    i, j = np.mgrid[0:h, 0:w]
    return np.stack([(7 * i + 3 * j) % 256, (255 - 5 * i - j) % 256, (11 * j + 2 * i + 1) % 256],
                    axis=2).astype(np.uint8)


test_image.__test__ = False  # a helper, not a test


def radar_records() -> np.ndarray:
    """Three returns in the camera's optical frame (x right, y down, z forward)."""
    records = np.zeros(3, dtype=RADAR_RECORD_DTYPE)
    # u = 40 x / z + 30, v = 40 y / z + 10
    for n, (xyz, rcs, vx, vy) in enumerate([((2.0, 1.0, 10.0), 12.5, -3.0, 1.5),     # pixel (14, 38)
                                             ((-5.0, 2.0, 20.0), -7.5, 4.0, -2.5),    # pixel (14, 20)
                                             ((4.0, 2.0, 20.0), 30.0, 9.0, 9.0)]):    # (14, 38) again, farther: loses
        records[n]["x"], records[n]["y"], records[n]["z"] = xyz
        records[n]["rcs"], records[n]["vx_comp"], records[n]["vy_comp"] = rcs, vx, vy
        records[n]["vx"], records[n]["vy"] = 100.0, 100.0      # raw velocities: not a model channel
    return records


class StubNode:
    """``test/recording_node.py`` in its own process; ``stop()`` sends SIGTERM and returns the exit code."""

    def __init__(self, tmp_path: Path, checkpoint: Path, record_dir: Path):
        params = {"checkpoint": str(checkpoint), "backend": "torch", "precision": "fp32", "fixed_frame": "",
                  "publish_colorized": "false", "cpu_threads": "1"}
        args = [sys.executable, str(REPO / "test" / "recording_node.py"), "--ros-args",
                "--params-file", str(REPO / "config" / "xdrcdepth.yaml")]
        for key, value in params.items():
            args += ["-p", f"{key}:={value!r}" if key in ("checkpoint", "backend", "precision", "fixed_frame")
                     else f"{key}:={value}"]
        self.log_path = tmp_path / "node.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1",
                                              **{recording_model.RECORD_DIR: str(record_dir)}))

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.log.close()


def camera_info() -> CameraInfo:
    return CameraInfo(header=header(CAMERA, STAMP), height=H, width=W, distortion_model="plumb_bob",
                      d=[0.0] * 5, k=K.reshape(-1).tolist(), r=np.eye(3).reshape(-1).tolist(),
                      p=np.concatenate([K, np.zeros((3, 1))], axis=1).reshape(-1).tolist())


def test_bgr8_frame_reaches_the_model_as_the_hand_computed_rgb_and_radar_tensors(tmp_path, ros_domain_id):
    checkpoint = tmp_path / "stub.pt"
    save_checkpoint(checkpoint, recording_model.RecordingModel(depth=7.0), input_hw=(H, W),
                    radar_channels=("depth", "rcs", "vx_comp", "vy_comp"))
    record_dir = tmp_path / "inputs"
    record_dir.mkdir()
    node = StubNode(tmp_path, checkpoint, record_dir)
    rig = Rig(outputs=("depth",))
    try:
        rig.wait_connected(node, outputs=("depth",))
        rgb = test_image()
        rig.publish_frame_until(image_msg(rgb, STAMP, encoding="bgr8"), camera_info(),
                                [radar_msg(radar_records(), STAMP, frame_id=CAMERA)],
                                lambda: rig.received["depth"], node)
        depth_msg = rig.received["depth"][0]
    finally:
        rig.close()
        code = node.stop()
    assert code == 0, node.output()
    # the published depth is the stub's constant at the image size, under the image's header
    assert (depth_msg.height, depth_msg.width) == (H, W) and depth_msg.header.frame_id == CAMERA
    assert Time.from_msg(depth_msg.header.stamp).nanoseconds == STAMP
    np.testing.assert_array_equal(depth_array(depth_msg), np.full((H, W), 7.0, np.float32))

    recorded = sorted(record_dir.glob("*.pt"))
    assert len(recorded) == 1, recorded                # one frame in, one forward pass
    fed = torch.load(recorded[0], weights_only=True)
    image, radar = fed["image"].numpy(), fed["radar"].numpy()
    assert image.shape == (1, 3, H, W) and radar.shape == (1, 4, H, W)
    assert fed["image"].dtype == torch.float32 and fed["radar"].dtype == torch.float32

    # image: channel 0 = red whatever the wire order, (v / 255 - mean) / std with ImageNet's numbers
    i, j = np.mgrid[0:H, 0:W]
    red, green, blue = (7 * i + 3 * j) % 256, (255 - 5 * i - j) % 256, (11 * j + 2 * i + 1) % 256
    expected = np.stack([(red / 255 - 0.485) / 0.229, (green / 255 - 0.456) / 0.224,
                         (blue / 255 - 0.406) / 0.225])
    np.testing.assert_allclose(image[0], expected, rtol=1e-5, atol=1e-5)
    # one pixel spelled out: (row 1, col 2): R = 13, G = 248, B = 25
    np.testing.assert_allclose(image[0, :, 1, 2], [(13 / 255 - 0.485) / 0.229, (248 / 255 - 0.456) / 0.224,
                                                   (25 / 255 - 0.406) / 0.225], rtol=1e-5)

    # radar: depth / 100, rcs / 50, vx_comp / 20, vy_comp / 20 at the two winning pixels, 0 elsewhere
    np.testing.assert_allclose(radar[0, :, 14, 38], [10 / 100, 12.5 / 50, -3 / 20, 1.5 / 20], rtol=1e-6)
    np.testing.assert_allclose(radar[0, :, 14, 20], [20 / 100, -7.5 / 50, 4 / 20, -2.5 / 20], rtol=1e-6)
    assert np.count_nonzero(radar) == 8


def test_a_failing_model_reads_error_on_diagnostics_and_the_node_keeps_running(tmp_path, ros_domain_id):
    """An exception inside inference (here the stub raising as a lost GPU would) is the node's own fault:
    /diagnostics goes to ERROR (input problems are WARN), the log line is an error with the traceback, and
    the node keeps running and stops cleanly."""
    checkpoint = tmp_path / "failing.pt"
    save_checkpoint(checkpoint, recording_model.RecordingModel(fail=True), input_hw=(H, W),
                    radar_channels=("depth", "rcs", "vx_comp", "vy_comp"))
    record_dir = tmp_path / "inputs"
    record_dir.mkdir()
    node = StubNode(tmp_path, checkpoint, record_dir)
    rig = Rig(outputs=("depth",))

    def latest_status():
        return rig.received["diag"][-1].status[0] if rig.received["diag"] else None

    try:
        rig.wait_connected(node, outputs=("depth",))
        rig.publish_frame_until(image_msg(test_image(), STAMP), camera_info(),
                                [radar_msg(radar_records(), STAMP, frame_id=CAMERA)],
                                lambda: (st := latest_status()) is not None and st.level == DiagnosticStatus.ERROR,
                                node)
        status = latest_status()
        alive = node.proc.poll() is None
    finally:
        rig.close()
        code = node.stop()
    assert alive and code == 0, node.log_path.read_text()
    assert status.message.startswith("inference failed on ") and status.message.endswith("no depth published")
    assert rig.received["depth"] == []
    log = node.log_path.read_text()
    assert "[ERROR]" in log and "inference failed, frame skipped [internal_error]" in log
    assert "recording_stub: simulated device failure" in log and "Traceback" in log
