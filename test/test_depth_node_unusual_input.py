"""Unusual but valid input over DDS (black-box audit): the node publishes the core's depth for it.

* TF from a ROS 1 style publisher, ``/base_link -> /CAM_FRONT`` and ``/base_link -> /RADAR_FRONT``: tf2 strips
  the leading '/' when it stores a transform, so clouds in ``RADAR_FRONT`` resolve (the stand-in kept the
  slash and skipped every cloud as ``missing_tf``).
* A radar cloud with an extra field of count 200 000 (a 200 kB blob per point) that the node does not read:
  the depth comes as for the plain cloud (the stand-in took minutes per cloud expanding that field, and the
  worker stopped publishing; the node now hands only x, y, z and the model's features to point_cloud2).

Real node process and DDS, a real nuScenes frame; the expected depth comes from ``DepthEstimator.estimate``.
"""

import numpy as np
import pytest
from rclpy.time import Time
from sensor_msgs.msg import PointField

from depth_node_rig import (CAMERA, RADAR, NodeProcess, NuScenesFrame, Rig, camera_info_msg, depth_array,
                            image_msg, make_checkpoint, radar_msg)
from xdrcdepth_core.data.geometry import invert_transform
from xdrcdepth_core.infer import DepthEstimator, RadarInput
from xdrcdepth_ros.node.transforms import matrix_to_transform

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
MS = 1_000_000
PAD = 200_000


def with_unread_blob(cloud):
    """The cloud with a UINT8 field 'blob' of count PAD appended to every point (bytes 1, 2, 3, ...)."""
    n, step = cloud.width, cloud.point_step
    data = np.zeros((n, step + PAD), np.uint8)
    data[:, :step] = np.frombuffer(bytes(cloud.data), np.uint8).reshape(n, step)
    data[:, step:] = (np.arange(PAD) % 251 + 1).astype(np.uint8)
    cloud.fields = list(cloud.fields) + [PointField(name="blob", offset=step, datatype=PointField.UINT8, count=PAD)]
    cloud.point_step, cloud.row_step = step + PAD, (step + PAD) * n
    cloud.data = data.tobytes()
    return cloud


def test_slash_prefixed_tf_and_an_unread_huge_field(ros_domain_id, nuscenes_samples, tmp_path):
    frame = NuScenesFrame.load(nuscenes_samples)
    checkpoint = make_checkpoint(tmp_path / "student.pt")
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1, "fixed_frame": "",
                                               "diagnostics_period": 0.2})
    rig = Rig()
    t0, t1 = frame.t_cam, frame.t_cam + 100 * MS
    records = frame.radar[:10]
    try:
        rig.publish_tf([matrix_to_transform(frame.cam_s2e, "/base_link", "/" + CAMERA, Time()),
                        matrix_to_transform(frame.radar_s2e, "/base_link", "/" + RADAR, Time())], static=True)
        rig.wait_connected(node, outputs=("depth", "diag"))
        rig.publish_frame_until(image_msg(frame.rgb, t0), camera_info_msg(frame, t0),
                                [radar_msg(frame.radar, t0 + 10 * MS)], lambda: len(rig.received["depth"]) == 1, node)
        rig.publish_frame_until(image_msg(frame.rgb, t1), camera_info_msg(frame, t1),
                                [with_unread_blob(radar_msg(records, t1 + 10 * MS))],
                                lambda: len(rig.received["depth"]) == 2, node, timeout=90.0)
        diag = rig.diagnostics_when("frames published", "2", node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert "Traceback" not in node.output()
    # without the fixes every frame is missing_tf (no depth) or radar_bad_fields
    assert rig.unexplained_rejections(diag) == {}, diag

    estimator = DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="torch", precision="fp32")
    T = invert_transform(frame.cam_s2e) @ frame.radar_s2e
    for msg, recs, t in zip(rig.received["depth"], (frame.radar, records), (t0, t1)):
        xyz, feats = frame.radar_xyz_features(recs)
        want = estimator.estimate(frame.rgb, [RadarInput(xyz, feats, T)], frame.K)
        assert Time.from_msg(msg.header.stamp).nanoseconds == t
        np.testing.assert_array_equal(depth_array(msg), want.depth)
