"""Test rig for the depth node: a real nuScenes frame, the node in its own process, a publisher node here.

The node runs as ``python -m xdrcdepth_ros.node.depth_node --ros-args ...`` (what the ``depth_node`` console
script runs) and talks to this process over Fast DDS on loopback, in the test's own ROS_DOMAIN_ID.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
import torch
from PIL import Image as PILImage
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from xdrcdepth_core.checkpoint import save_checkpoint
from xdrcdepth_core.data.geometry import crop_intrinsics, scale_intrinsics, transform_from_pose
from xdrcdepth_core.data.radar import DEFAULT_CHANNELS
from xdrcdepth_core.data.radar_pcd import RADAR_FIELDS, RADAR_RECORD_DTYPE, read_radar_pcd
from xdrcdepth_core.models import build_model
from xdrcdepth_ros.node import conversions as conv
from xdrcdepth_ros.standins.tf2_ros import TF_QOS, TF_STATIC_QOS
from xdrcdepth_ros.node.depth_node import OUTPUT_QOS
from xdrcdepth_ros.node.transforms import matrix_to_transform

REPO = Path(__file__).resolve().parents[1]
IMAGE_HW = (160, 320)          # 1600 x 900 CAM_FRONT scaled by 0.2 (and cropped to 160 rows)
CAMERA, RADAR = "CAM_FRONT", "RADAR_FRONT"
S = 1_000_000_000
OUTPUT_TOPICS = {"depth": "depth/image", "info": "depth/camera_info", "colorized": "depth/colorized",
                 "saliency": "depth/saliency", "points": "depth/points", "diag": "/diagnostics"}


def make_checkpoint(path: Path, input_hw: tuple[int, int] = IMAGE_HW) -> Path:
    """A seeded, untrained student, by default at the test resolution (160 x 320 keeps tests fast).

    The student's FiLM radar fusions start at zero (identity), which would make an untrained model ignore
    radar; here they get random weights so that the radar changes the output. The change is still small
    (~1e-4 m: the untrained depth head sits near half its range), so tests compare bit for bit: the node
    and this process run the same kernels with one CPU thread.
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        model = build_model("xdrcdepth")
        for name, param in model.named_parameters():
            if name.startswith("fusions."):
                param.normal_(0.0, 1.0)
    save_checkpoint(path, model, input_hw=input_hw, radar_channels=DEFAULT_CHANNELS)
    return path


@dataclass
class NuScenesFrame:
    """Keyframe 0 of scene-0061 (shared samples), the camera scaled to the width of ``hw`` and cropped to its
    height (bottom rows kept)."""

    rgb: np.ndarray
    K: np.ndarray
    radar: np.ndarray                 # structured nuScenes radar records (43-byte layout)
    cam_s2e: np.ndarray
    radar_s2e: np.ndarray
    cam_e2g: np.ndarray
    radar_e2g: np.ndarray
    t_cam: int                        # ns
    t_radar: int

    @classmethod
    def load(cls, root: Path, hw: tuple[int, int] = IMAGE_HW) -> "NuScenesFrame":
        frame = json.loads((root / "frames.json").read_text())["frames"][0]
        cam, radar = frame["CAM_FRONT"], frame["RADAR_FRONT"]
        full = PILImage.open(root / cam["file"]).convert("RGB")
        scaled_h = round(full.height * hw[1] / full.width)                     # 180 for IMAGE_HW
        rgb = np.asarray(full.resize((hw[1], scaled_h), PILImage.BILINEAR) if scaled_h != full.height else full)
        top = scaled_h - hw[0]                                                  # keep the bottom rows
        K = crop_intrinsics(scale_intrinsics(np.array(cam["camera_intrinsic"]), (full.height, full.width),
                                             (scaled_h, hw[1])), top, 0)
        fields = read_radar_pcd(root / radar["file"])
        records = np.zeros(len(fields["x"]), dtype=RADAR_RECORD_DTYPE)
        for name in RADAR_FIELDS:
            records[name] = fields[name]
        pose = {k: transform_from_pose(v["rotation"], v["translation"]) for k, v in (
            ("cam_s2e", cam["sensor2ego"]), ("radar_s2e", radar["sensor2ego"]),
            ("cam_e2g", cam["ego_pose"]), ("radar_e2g", radar["ego_pose"]))}
        return cls(rgb=np.ascontiguousarray(rgb[top:]), K=K, radar=records, t_cam=cam["timestamp"] * 1000,
                   t_radar=radar["timestamp"] * 1000, **pose)

    def radar_xyz_features(self, records=None):
        records = self.radar if records is None else records
        xyz = np.stack([records[c].astype(np.float64) for c in "xyz"], axis=1)
        return xyz, {n: records[n].astype(np.float64) for n in ("rcs", "vx_comp", "vy_comp")}


def header(frame_id: str, t_ns: int) -> Header:
    return Header(frame_id=frame_id, stamp=Time(nanoseconds=t_ns).to_msg())


def camera_info_msg(frame: NuScenesFrame, t_ns: int) -> CameraInfo:
    K, hw = frame.K, frame.rgb.shape[:2]
    return CameraInfo(header=header(CAMERA, t_ns), height=hw[0], width=hw[1], distortion_model="plumb_bob",
                      d=[0.0] * 5, k=K.reshape(-1).tolist(), r=np.eye(3).reshape(-1).tolist(),
                      p=np.concatenate([K, np.zeros((3, 1))], axis=1).reshape(-1).tolist())


def image_msg(rgb: np.ndarray, t_ns: int, encoding="rgb8") -> Image:
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    return conv.array_to_image(np.ascontiguousarray(pixels), encoding, header(CAMERA, t_ns))


def jpeg_msg(rgb: np.ndarray, t_ns: int) -> CompressedImage:
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=90)
    msg = CompressedImage(header=header(CAMERA, t_ns), format="jpeg")
    msg.data = buf.getvalue()
    return msg


def radar_msg(records: np.ndarray, t_ns: int, frame_id=RADAR) -> PointCloud2:
    return conv.structured_to_cloud(header(frame_id, t_ns), records)


class NodeProcess:
    """The depth node in its own process; ``stop()`` sends SIGTERM and returns the exit code.

    Unless ``params`` say otherwise, the node runs the eager fp32 reference backend, which these tests compare
    with ``DepthEstimator(..., backend="torch", precision="fp32")`` bit for bit (``auto`` would export the model
    at start-up; ``test_depth_node_backends.py`` covers the other backends)."""

    def __init__(self, log_path: Path, params: dict, remaps: dict | None = None):
        params = {"backend": "torch", "precision": "fp32", **params}
        args = [sys.executable, "-m", "xdrcdepth_ros.node.depth_node", "--ros-args",
                "--params-file", str(REPO / "config" / "xdrcdepth.yaml")]
        for key, value in params.items():
            if isinstance(value, (list, tuple)):
                value = "[" + ",".join(f"'{v}'" for v in value) + "]"
            elif isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, str):
                value = f"'{value}'"
            args += ["-p", f"{key}:={value}"]
        for old, new in (remaps or {}).items():
            args += ["-r", f"{old}:={new}"]
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self, timeout=30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9
        finally:
            self.log.close()


class Rig:
    """Publishers for the node's inputs and TF, subscribers to all its outputs, in this process."""

    def __init__(self, compressed=False, radar_topics=("radar/points",), input_qos=10,
                 outputs=("depth", "info", "colorized", "saliency", "points")):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("depth_node_test_rig", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        n = self.node
        self.image_pub = n.create_publisher(CompressedImage if compressed else Image,
                                            "image/compressed" if compressed else "image", input_qos)
        self.info_pub = n.create_publisher(CameraInfo, "camera_info", input_qos)
        self.radar_pubs = [n.create_publisher(PointCloud2, t, input_qos) for t in radar_topics]
        from tf2_msgs.msg import TFMessage
        self.tf_pub = n.create_publisher(TFMessage, "/tf", TF_QOS)
        self.tf_static_pub = n.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self.received = {k: [] for k in OUTPUT_TOPICS}
        self.resends = 0                     # frames publish_frame_until sent again (see its docstring)
        self.static_tf_sent = False
        from diagnostic_msgs.msg import DiagnosticArray
        self.subs = [n.create_subscription(DiagnosticArray, "/diagnostics", self.received["diag"].append, 10)]
        for name in outputs:
            self.subscribe(name)

    def subscribe(self, name: str):
        """Subscribe to one of the node's outputs (``depth``, ``info``, ``colorized``, ``saliency``, ``points``)."""
        msg_type = CameraInfo if name == "info" else PointCloud2 if name == "points" else Image
        sub = self.node.create_subscription(msg_type, OUTPUT_TOPICS[name], self.received[name].append, OUTPUT_QOS)
        self.subs.append(sub)
        return sub

    def spin_until(self, cond, timeout: float, proc: NodeProcess | None = None) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            if proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"node exited with {proc.proc.returncode}:\n{proc.output()}")
            self.executor.spin_once(timeout_sec=0.02)
        return cond()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def wait_connected(self, proc: NodeProcess, outputs=("depth", "info"), timeout=60.0) -> None:
        """Until the node has subscribed to every input and publishes every wanted output, and its TF reader
        has acknowledged the static transforms this rig sent (else a first frame may be skipped as missing_tf)."""
        topics = OUTPUT_TOPICS
        pubs = [self.image_pub, self.info_pub, *self.radar_pubs]
        subs = {s.topic_name.lstrip("/"): s for s in self.subs}
        if self.static_tf_sent:   # the node's TF reader holds the static TF before any frame can need it
            pubs.append(self.tf_static_pub)
        ok = self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs) and all(
            subs[topics[o].lstrip("/")].get_publisher_count() > 0 for o in outputs), timeout, proc)
        assert ok, f"node did not connect in {timeout} s:\n{proc.output()}"
        assert self.tf_static_pub.wait_for_all_acked(Duration(seconds=timeout)), "static TF not acknowledged"

    def publish_tf(self, transforms, static=False) -> None:
        from tf2_msgs.msg import TFMessage
        (self.tf_static_pub if static else self.tf_pub).publish(TFMessage(transforms=list(transforms)))
        self.static_tf_sent |= static

    def publish_static_extrinsics(self, frame: NuScenesFrame, radar_frame=RADAR) -> None:
        self.publish_tf([matrix_to_transform(frame.cam_s2e, "base_link", CAMERA, Time()),
                         matrix_to_transform(frame.radar_s2e, "base_link", radar_frame, Time())], static=True)

    def publish_frame(self, image, info, radars) -> None:
        for pub, msg in zip(self.radar_pubs, radars):
            pub.publish(msg)
        self.info_pub.publish(info)
        self.image_pub.publish(image)

    def publish_frame_until(self, image, info, radars, cond, proc: NodeProcess, timeout=60.0,
                            retry_s=5.0) -> None:
        """Publish a frame until ``cond()`` holds, re-sending the same messages every ``retry_s``.

        Fast DDS can drop the first messages to a best-effort reader even after the writer reports the
        match (seen here about every other start), and a frame can reach the node before a static TF sent
        after ``wait_connected`` does (then it is skipped as missing_tf). A re-sent frame with the same stamps
        overwrites its own copy in the synchroniser queues and is out of order once published, so it cannot
        produce a second output; one that published nothing does not block it. A copy re-sent while the node
        was still busy with the first (a slow machine) is rejected as ``stamp_out_of_order``:
        ``unexplained_rejections`` allows one such rejection per re-send.
        """
        end = time.monotonic() + timeout
        self.publish_frame(image, info, radars)
        while not self.spin_until(cond, min(retry_s, end - time.monotonic()), proc):
            if time.monotonic() >= end:
                raise AssertionError(f"no effect within {timeout} s; diagnostics {self.latest_diagnostics()}\n"
                                     f"{proc.output()}")
            self.resends += 1
            self.publish_frame(image, info, radars)

    def diagnostics_when(self, key: str, value: str, proc: NodeProcess, timeout=10.0) -> dict[str, str]:
        """The node's diagnostics once ``key`` reads ``value``."""
        assert self.spin_until(lambda: self.latest_diagnostics().get(key) == value, timeout, proc), \
            f"{key} != {value} within {timeout} s: {self.latest_diagnostics()}"
        return self.latest_diagnostics()

    def unexplained_rejections(self, diag: dict[str, str], *expected: str, out_of_order: int = 0) -> dict[str, str]:
        """The ``bad: <reason>`` counts in ``diag`` that the test did not expect: reasons other than
        ``expected``, and a ``stamp_out_of_order`` count other than the ``out_of_order`` frames the test sent out
        of order plus at most one per re-send of this rig (see ``publish_frame_until``)."""
        found = {k.removeprefix("bad: "): v for k, v in diag.items() if k.startswith("bad: ")}
        late = int(found.pop("stamp_out_of_order", "0"))
        if not out_of_order <= late <= out_of_order + self.resends:
            found["stamp_out_of_order"] = str(late)
        return {reason: count for reason, count in found.items() if reason not in expected}

    def latest_diagnostics(self) -> dict[str, str]:
        from xdrcdepth_ros.node.diagnostics import status_values
        if not self.received["diag"]:
            return {}
        return status_values(self.received["diag"][-1].status[0])

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def depth_array(msg: Image) -> np.ndarray:
    assert msg.encoding == "32FC1"
    return np.frombuffer(bytes(msg.data), dtype=np.float32).reshape(msg.height, msg.width)
