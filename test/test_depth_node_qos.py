"""Input QoS (``xdrcdepth_ros.input_qos``): nothing lost from reliable publishers next to large images;
best-effort publishers that appear after the node started still connect."""

import time

import pytest
from rclpy.qos import qos_profile_sensor_data

from depth_node_rig import NodeProcess, NuScenesFrame, Rig, camera_info_msg, image_msg, make_checkpoint, radar_msg

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]
MS = 1_000_000


def test_reliable_publishers_lose_no_frame_next_to_large_images(ros_domain_id, nuscenes_samples, tmp_path):
    """With best-effort subscriptions, 16-129 of 150 camera_info messages arrived next to these images."""
    frame = NuScenesFrame.load(nuscenes_samples, hw=(450, 800))      # 1.08 MB rgb8 frames
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(make_checkpoint(tmp_path / "student.pt")), "cpu_threads": 1,
        "fixed_frame": "", "diagnostics_period": 0.5})
    rig = Rig()
    n_frames = 30
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        for k in range(n_frames):
            t = frame.t_cam + k * 100 * MS
            rig.publish_frame(image_msg(frame.rgb, t), camera_info_msg(frame, t), [radar_msg(frame.radar, t)])
            rig.spin_for(0.2)
        assert rig.spin_until(lambda: rig.latest_diagnostics().get("sync matches") == str(n_frames), 20, node), \
            rig.latest_diagnostics()
        rig.spin_for(1.0)
        diag = rig.latest_diagnostics()
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert (diag["sync matches"], diag["sync misses"], diag["bad messages"]) == (str(n_frames), "0", "0"), diag
    assert int(diag["frames published"]) + int(diag["dropped frames"]) == n_frames, diag


def test_best_effort_publishers_started_after_the_node_connect(ros_domain_id, nuscenes_samples, tmp_path):
    frame = NuScenesFrame.load(nuscenes_samples)                      # 160 x 320: small enough for best effort
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(make_checkpoint(tmp_path / "student.pt")), "cpu_threads": 1, "fixed_frame": ""})
    rig = None
    try:
        deadline = time.monotonic() + 60          # the start-up line comes after the subscriptions exist
        while "inputs ['/image'" not in node.output():
            assert time.monotonic() < deadline and node.proc.poll() is None, node.output()
            time.sleep(0.2)
        rig = Rig(input_qos=qos_profile_sensor_data)
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth",))
        rig.publish_frame_until(image_msg(frame.rgb, frame.t_cam), camera_info_msg(frame, frame.t_cam),
                                [radar_msg(frame.radar, frame.t_cam)], lambda: bool(rig.received["depth"]), node)
    finally:
        if rig is not None:
            rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    log = node.output()
    for topic in ("/image", "/camera_info", "/radar/points"):
        assert f"{topic}: a best-effort publisher appeared; subscribed best effort" in log, log
    assert "Raw images above ~0.5 MB" in log
