"""Input QoS (``xdrcdepth_ros.node.input_qos``): frames from reliable publishers next to large images are
synchronised; best-effort publishers that appear after the node started still connect."""

import time

import pytest
from rclpy.qos import qos_profile_sensor_data

from depth_node_rig import NodeProcess, NuScenesFrame, Rig, camera_info_msg, image_msg, make_checkpoint, radar_msg

pytestmark = [pytest.mark.ros, pytest.mark.timeout(600), pytest.mark.slow]
MS = 1_000_000


def test_reliable_inputs_synchronise_frames_next_to_large_images(ros_domain_id, nuscenes_samples, tmp_path):
    """Reliable publishers of 450x800 rgb8 images (1.08 MB) with camera_info and radar: every frame is
    synchronised and published. The publisher is paced on the node's output (the next frame once the depth of
    the previous one arrived), so the node's speed (a loaded machine) cannot decide the result: this checks
    that QoS loses nothing, not how fast the node is (that is the benchmark's job).

    Measured before (5 Hz, unpaced): 29-30 of 30 synchronised in 8 runs; with the inputs overridden to best
    effort 16-17 of 30, and best-effort readers got 16-129 of 150 camera_info messages next to such images.
    Reliable is not lossless at a fixed rate: a small sample dropped by the transport during an image burst
    is repaired only after the writer's next heartbeat (Fast DDS: 3 s), by when a keep-last 10 writer history
    or the synchroniser's queue may have moved on; paced, the repair always comes in time.
    """
    frame = NuScenesFrame.load(nuscenes_samples, hw=(450, 800))
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(make_checkpoint(tmp_path / "student.pt")), "cpu_threads": 1,
        "fixed_frame": "", "diagnostics_period": 0.5})
    n_frames = 30
    rig = Rig()
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        # a sample written right after discovery can miss a volatile reader that has not matched the writer
        # yet: one frame through end to end first, then count
        rig.publish_frame_until(image_msg(frame.rgb, frame.t_cam), camera_info_msg(frame, frame.t_cam),
                                [radar_msg(frame.radar, frame.t_cam)], lambda: bool(rig.received["depth"]), node)
        before = rig.diagnostics_when("frames published", "1", node)
        sent = []
        for k in range(1, n_frames + 1):
            t = frame.t_cam + k * 100 * MS
            rig.publish_frame(image_msg(frame.rgb, t), camera_info_msg(frame, t), [radar_msg(frame.radar, t)])
            sent.append(t)
            assert rig.spin_until(lambda: len(rig.received["depth"]) == k + 1, 120, node), \
                f"no depth for frame {k} within 120 s: {rig.latest_diagnostics()}"
        after = rig.diagnostics_when("frames published", str(n_frames + 1), node, timeout=60)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in rig.received["depth"][1:]]
    assert stamps == sent
    delta = {key: int(after[key]) - int(before[key]) for key in (
        "sync matches", "bad messages", "frames published", "dropped frames")}
    # a copy of the first frame that publish_frame_until re-sent can still be matched after `before` (once seen in
    # CI: 31 matches, 1 dropped): it is then dropped from the slot or rejected as out of order, never published
    late = delta["sync matches"] - n_frames
    assert 0 <= late <= rig.resends and delta["dropped frames"] + delta["bad messages"] == late, (delta, rig.resends)
    assert delta["frames published"] == n_frames and rig.unexplained_rejections(after) == {}, (delta, before, after)


def test_best_effort_publishers_started_after_the_node_connect(ros_domain_id, nuscenes_samples, tmp_path):
    frame = NuScenesFrame.load(nuscenes_samples)                      # 160 x 320: small enough for best effort
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(make_checkpoint(tmp_path / "student.pt")), "cpu_threads": 1, "fixed_frame": ""})
    rig = None
    try:
        deadline = time.monotonic() + 120         # the start-up line comes after the subscriptions exist
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
