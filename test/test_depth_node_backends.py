"""The node's ``backend``/``precision`` parameters: the node runs the backend it is asked for, its depth equals
the core's with the same backend, diagnostics name backend and precision, and a bad choice stops it at start-up."""

import subprocess
import sys

import numpy as np
import pytest

from depth_node_rig import (CAMERA, NodeProcess, NuScenesFrame, Rig, camera_info_msg, depth_array, image_msg,
                            make_checkpoint, radar_msg)
from xdrcdepth_core.data.geometry import invert_transform, transform_points
from xdrcdepth_core.infer import DepthEstimator, RadarInput

pytestmark = [pytest.mark.ros, pytest.mark.timeout(420), pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.slow
def test_node_runs_onnxruntime_and_equals_the_core(ros_domain_id, tmp_path, nuscenes_samples):
    frame = NuScenesFrame.load(nuscenes_samples)
    records = frame.radar.copy()          # the radar moved into the camera frame: no TF needed
    xyz = transform_points(invert_transform(frame.cam_s2e) @ frame.radar_s2e, frame.radar_xyz_features()[0])
    for i, c in enumerate("xyz"):
        records[c] = xyz[:, i]
    checkpoint = make_checkpoint(tmp_path / "student.pt")
    # exports and verifies the graph into the shared artefact cache (XDRCDEPTH_CACHE), so the node loads it
    core = DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="onnxruntime", precision="fp32")
    assert core.backend.parity.passed and core.backend.parity.max_abs_m <= 1e-3
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1,
                                               "backend": "onnxruntime", "precision": "fp32",
                                               "fixed_frame": "", "diagnostics_period": 0.5})
    rig = Rig()
    try:
        rig.wait_connected(node, outputs=("depth", "diag"))
        rig.publish_frame_until(image_msg(frame.rgb, frame.t_cam), camera_info_msg(frame, frame.t_cam),
                                [radar_msg(records, frame.t_cam, frame_id=CAMERA)],
                                lambda: rig.received["depth"], node)
        diag = rig.diagnostics_when("frames published", "1", node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert "backend onnxruntime fp32" in node.output()
    assert diag["backend"] == "onnxruntime" and diag["precision"] == "fp32"
    xyz, feats = frame.radar_xyz_features(records)
    want = core.estimate(frame.rgb, [RadarInput(xyz, feats, np.eye(4))], frame.K).depth
    np.testing.assert_array_equal(depth_array(rig.received["depth"][0]), want)


@pytest.mark.parametrize("params, message", [({"backend": "tflite"}, "backend = 'tflite' is not one of auto"),
                                             ({"precision": "fp64"}, "precision = 'fp64' is not empty or one of"),
                                             ({"backend": "tensorrt"}, "tensorrt: needs a CUDA device")])
def test_bad_backend_or_precision_stops_the_node(ros_domain_id, tmp_path, params, message):
    args = [sys.executable, "-m", "xdrcdepth_ros.node.depth_node", "--ros-args", "-p", "device:=cpu",
            "-p", f"checkpoint:={make_checkpoint(tmp_path / 's.pt')}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "cannot start" in proc.stderr and message in proc.stderr
