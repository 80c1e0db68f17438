"""Full-resolution raw camera images (1600 x 900 rgb8, 4.3 MB) from a default-QoS publisher reach the node.

Fast DDS loses best-effort samples this large between processes, so this guards the node's reliable
default for the raw image input; it also runs the default (no ``checkpoint`` parameter) model: the student
shipped in the package, at the input size it was trained at, with no untrained-model warning.
"""

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from depth_node_rig import CAMERA, NodeProcess, NuScenesFrame, Rig, camera_info_msg, depth_array, image_msg, \
    radar_msg
from xdrcdepth_core.data.geometry import invert_transform
from xdrcdepth_core.checkpoint import file_digest
from xdrcdepth_core.infer import SHIPPED_CHECKPOINT, DepthEstimator, RadarInput

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240), pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_full_resolution_raw_image_default_student(ros_domain_id, tmp_path, nuscenes_samples):
    frame = NuScenesFrame.load(nuscenes_samples, hw=(900, 1600))
    cam = json.loads((nuscenes_samples / "frames.json").read_text())["frames"][0]["CAM_FRONT"]
    rgb = frame.rgb
    assert np.array_equal(rgb, np.asarray(PILImage.open(nuscenes_samples / cam["file"]).convert("RGB")))
    assert np.allclose(frame.K, cam["camera_intrinsic"])
    node = NodeProcess(tmp_path / "node.log", {"cpu_threads": 1, "fixed_frame": "", "publish_colorized": False})
    rig = Rig()
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "info"))
        rig.publish_frame_until(image_msg(rgb, frame.t_cam), camera_info_msg(frame, frame.t_cam),
                                [radar_msg(frame.radar, frame.t_radar)],
                                lambda: bool(rig.received["depth"]), node, timeout=120, retry_s=20)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert "UNTRAINED" not in node.output()
    assert f"model xdrcdepth@{file_digest(SHIPPED_CHECKPOINT)} on cpu" in node.output()
    msg = rig.received["depth"][0]
    assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == ("32FC1", 900, 1600, CAMERA)
    xyz, feats = frame.radar_xyz_features()
    want = DepthEstimator.from_checkpoint(None, device="cpu", backend="torch", precision="fp32").estimate(
        rgb, [RadarInput(xyz, feats, invert_transform(frame.cam_s2e) @ frame.radar_s2e)], frame.K).depth
    np.testing.assert_array_equal(depth_array(msg), want)
