"""Bad input over DDS never stops the node: each kind is counted under its reason and skipped, and a good
frame afterwards still gives the core's depth."""

import numpy as np
import pytest
from rclpy.time import Time
from sensor_msgs.msg import Image, PointField

from depth_node_rig import (CAMERA, RADAR, NodeProcess, NuScenesFrame, Rig, camera_info_msg, depth_array,
                            header, image_msg, make_checkpoint, radar_msg)
from xdrcdepth_core.data.geometry import invert_transform
from xdrcdepth_core.infer import DepthEstimator, RadarInput
from xdrcdepth_ros.node.transforms import matrix_to_transform

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240), pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
MS = 1_000_000


def test_bad_inputs_are_counted_and_skipped(ros_domain_id, nuscenes_samples, tmp_path):
    frame = NuScenesFrame.load(nuscenes_samples)
    checkpoint = make_checkpoint(tmp_path / "student.pt")
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(checkpoint), "cpu_threads": 1, "fixed_frame": "", "max_radar_points": 1000,
        "diagnostics_period": 0.2})
    rig = Rig()
    t0 = frame.t_cam

    def info(t, **changes):
        msg = camera_info_msg(frame, t)
        for key, value in changes.items():
            setattr(msg, key, value)
        return msg

    def cloud(t, records=frame.radar, frame_id=RADAR, **changes):
        msg = radar_msg(records, t + 10 * MS, frame_id)
        for key, value in changes.items():
            setattr(msg, key, value)
        return msg

    def image(t, **changes):
        msg = image_msg(frame.rgb, t)
        for key, value in changes.items():
            setattr(msg, key, value)
        return msg

    nan_records = frame.radar[:8].copy()       # 5 points with a NaN/inf coordinate, 3 with one in a feature
    nan_records["x"][:5] = np.nan
    nan_records["y"][1] = np.inf
    nan_records["rcs"][5], nan_records["vx_comp"][6], nan_records["vy_comp"][7] = np.nan, np.inf, -np.inf
    xyz_only = frame.radar[["x", "y"]]

    def yuv_image(t):
        return Image(header=header(CAMERA, t), height=160, width=320, encoding="yuv422", step=640,
                     data=bytes(160 * 640))

    steps = [  # (reasons expected to grow, image, camera_info, radar) at stamp t0 + k * 100 ms
        ({"unsupported_encoding"}, yuv_image, info, cloud),
        ({"truncated_image"}, lambda t: image(t, data=bytes(image(t).data)[:1000]), info, cloud),
        ({"bad_image"}, lambda t: image(t, step=100), info, cloud),
        ({"camera_info_size_mismatch"}, image, lambda t: info(t, width=640, height=320), cloud),
        ({"bad_camera_info"}, image, lambda t: info(t, k=[0.0] * 9), cloud),
        ({"bad_camera_info"}, image, lambda t: info(t, k=[float("nan")] + list(frame.K.reshape(-1)[1:])), cloud),
        ({"unsupported_encoding"}, lambda t: Image(header=header(CAMERA, t), height=160, width=320,
                                                   encoding="32FC1", step=1280, data=bytes(160 * 1280)),
         info, cloud),
        ({"bad_image"}, lambda t: Image(header=header(CAMERA, t), encoding="rgb8"), info, cloud),
        ({"radar_missing_xyz"}, image, info, lambda t: cloud(t, np.ascontiguousarray(xyz_only))),
        ({"radar_truncated"}, image, info, lambda t: cloud(t, data=bytes(cloud(t).data)[:-7])),
        ({"radar_bad_fields"}, image, info, lambda t: cloud(t, point_step=10)),
        ({"radar_bad_fields"}, image, info, lambda t: cloud(t, fields=[
            PointField(name=c, offset=0, datatype=42, count=1) for c in "xyz"])),
        ({"radar_too_large"}, image, info, lambda t: cloud(t, np.concatenate([frame.radar] * 40))),
        ({"missing_tf"}, image, info, lambda t: cloud(t, frame_id="RADAR_NOWHERE")),
        ({"bad_tf"}, image, info, lambda t: cloud(t, frame_id="RADAR_AT_INFINITY")),
    ]
    at_infinity = matrix_to_transform(frame.radar_s2e, "base_link", "RADAR_AT_INFINITY", Time())
    at_infinity.transform.translation.x = float("inf")     # tf2 stores it (it refuses NaN only)
    try:
        rig.publish_tf([matrix_to_transform(frame.cam_s2e, "base_link", CAMERA, Time()),
                        matrix_to_transform(frame.radar_s2e, "base_link", RADAR, Time()), at_infinity], static=True)
        rig.wait_connected(node, outputs=("depth", "diag"))
        rig.publish_frame_until(image(t0), info(t0), [cloud(t0)], lambda: rig.received["depth"], node)
        counts = {}
        for k, (reasons, make_image, make_info, make_cloud) in enumerate(steps, start=1):
            t = t0 + k * 100 * MS
            for reason in reasons:
                counts[reason] = counts.get(reason, 0) + 1
            want = {f"bad: {r}": str(counts[r]) for r in reasons}
            rig.publish_frame_until(make_image(t), make_info(t), [make_cloud(t)], lambda: all(
                rig.latest_diagnostics().get(key) == value for key, value in want.items()), node)
        assert len(rig.received["depth"]) == 1                   # nothing published for any bad frame
        # a bad frame does not block a good one with its stamp (a re-sent frame once TF has arrived)
        t_resent = t0 + len(steps) * 100 * MS
        rig.publish_frame_until(image(t_resent), info(t_resent), [cloud(t_resent)],
                                lambda: len(rig.received["depth"]) == 2, node)
        # stamps going back less than time_reset_threshold (1 s) from the last published one are out of order
        t_back = t_resent - 450 * MS
        out_of_order = int(rig.latest_diagnostics().get("bad: stamp_out_of_order", "0"))
        rig.publish_frame_until(image(t_back), info(t_back), [cloud(t_back)], lambda: int(
            rig.latest_diagnostics().get("bad: stamp_out_of_order", "0")) > out_of_order, node)
        assert len(rig.received["depth"]) == 2
        # a jump back by more than time_reset_threshold is a restart (a looping bag): processed again
        t_restart = t0 - 10_000 * MS
        rig.publish_frame_until(image(t_restart), info(t_restart), [cloud(t_restart)],
                                lambda: len(rig.received["depth"]) == 3, node)
        # a good frame with a few NaN points among the real ones: NaNs dropped and counted, depth correct (a
        # NaN feature kept would have made every pixel NaN)
        t_good = t_restart + 100 * MS
        with_nan = np.concatenate([frame.radar, nan_records])
        counts["radar_nonfinite_points"] = 1   # (a cloud with no point left is "no returns": test_depth_node_stamps)
        rig.publish_frame_until(image(t_good), info(t_good), [cloud(t_good, with_nan)],
                                lambda: len(rig.received["depth"]) == 4, node)
        diag = rig.diagnostics_when("frames published", "4", node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    log = node.output()
    assert "Traceback" not in log
    for reason, n in counts.items():
        assert diag[f"bad: {reason}"] == str(n), (reason, diag)
        assert f"skipped bad input [{reason}]" in log
    # t_back, and any good frame re-sent while the node was still busy with it (publish_frame_until)
    assert rig.unexplained_rejections(diag, *counts, out_of_order=1) == {}, diag
    assert "skipped bad input [stamp_out_of_order]" in log
    assert diag["bad messages"] == str(sum(counts.values()) + int(diag["bad: stamp_out_of_order"]))
    assert [Time.from_msg(m.header.stamp).nanoseconds for m in rig.received["depth"]] == [
        t0, t_resent, t_restart, t_good]
    assert not any(key == "bad: internal_error" for key in diag)

    estimator = DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="torch", precision="fp32")
    xyz, feats = frame.radar_xyz_features()                      # the finite points only
    want = estimator.estimate(frame.rgb, [RadarInput(
        xyz, feats, invert_transform(frame.cam_s2e) @ frame.radar_s2e)], frame.K)
    last = rig.received["depth"][-1]
    assert Time.from_msg(last.header.stamp).nanoseconds == t_good
    np.testing.assert_array_equal(depth_array(last), want.depth)
