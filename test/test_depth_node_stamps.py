"""Stamps and empty clouds over DDS (black-box audit, defects 1, 2 and 5).

* A header stamp that is not a time (``sec < 0``, ``nanosec >= 1e9``) on the image, camera_info or a radar
  cloud is counted as ``bad_stamp`` and skipped; it used to raise in a subscription callback and end the node.
* A cloud with no points is the radar seeing nothing: the frame is published with an empty radar raster
  (the core's camera-only depth), nothing is rejected (it used to be skipped as ``radar_empty``).
* One cloud stamped far in the future does not keep the radar fresh: after ``radar_timeout`` of silence
  the node publishes camera-only depth (the future stamp used to disable that fallback for good).
* A bag looping under ``use_sim_time`` (``--clock --loop``): the first frame of the new loop is ego-motion
  compensated with the transforms the new loop sent (the node used to clear them once more on the image
  restart, after tf2_ros's own clear on the clock jump, and published that frame uncompensated).

Real node process and DDS, a real nuScenes frame; the expected depth comes from ``DepthEstimator.estimate``.
"""

import re

import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.time import Time
from rosgraph_msgs.msg import Clock

from depth_node_rig import (NodeProcess, NuScenesFrame, Rig, camera_info_msg, depth_array, image_msg,
                            make_checkpoint, radar_msg)
from xdrcdepth_core.data.geometry import sensor_to_sensor
from xdrcdepth_core.infer import DepthEstimator, RadarInput
from xdrcdepth_ros.node.transforms import matrix_to_transform

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
MS = 1_000_000
S = 1_000_000_000


def with_stamp(msg, sec, nanosec=0):
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def test_bad_stamps_empty_clouds_and_a_future_cloud(ros_domain_id, nuscenes_samples, tmp_path):
    frame = NuScenesFrame.load(nuscenes_samples)
    checkpoint = make_checkpoint(tmp_path / "student.pt")
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1, "fixed_frame": "",
                                               "radar_timeout": 1.0, "diagnostics_period": 0.2})
    rig = Rig()
    t0 = frame.t_cam

    def cloud(t, records=frame.radar):
        return radar_msg(records, t + 10 * MS)

    def diag(key) -> int:
        return int(rig.latest_diagnostics().get(key, "0"))

    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        rig.publish_frame_until(image_msg(frame.rgb, t0), camera_info_msg(frame, t0), [cloud(t0)],
                                lambda: len(rig.received["depth"]) == 1, node)
        # 1. stamps that are not a time, on every input
        rig.publish_frame_until(with_stamp(image_msg(frame.rgb, t0), -1), with_stamp(camera_info_msg(frame, t0), -1),
                                [with_stamp(cloud(t0), t0 // S, 1_500_000_000)],
                                lambda: diag("bad: bad_stamp") >= 3, node)
        # ... and stamps never set (0): one such frame among timed ones was a restart, published stamped 0
        rig.publish_frame_until(with_stamp(image_msg(frame.rgb, t0), 0), with_stamp(camera_info_msg(frame, t0), 0),
                                [with_stamp(cloud(t0), 0)], lambda: diag("bad: bad_stamp") >= 6, node)
        # 2. a cloud with no points
        t1 = t0 + 500 * MS    # beyond slop from the t0 cloud, which the image would otherwise pair with
        rig.publish_frame_until(image_msg(frame.rgb, t1), camera_info_msg(frame, t1), [cloud(t1, frame.radar[:0])],
                                lambda: len(rig.received["depth"]) == 2, node)
        empty_diag = rig.diagnostics_when("frames published", "2", node)
        # 3. one cloud 1000 s ahead, then the radar falls silent past radar_timeout
        received = diag("messages received /radar/points")
        rig.radar_pubs[0].publish(cloud(t1 + 1000 * S))
        assert rig.spin_until(lambda: diag("messages received /radar/points") > received, 30, node)
        t2 = t1 + 1600 * MS
        rig.publish_frame_until(image_msg(frame.rgb, t2), camera_info_msg(frame, t2), [],
                                lambda: len(rig.received["depth"]) == 3, node)
        stale_diag = rig.diagnostics_when("frames published", "3", node)
    finally:
        rig.close()
        rc = node.stop()
    log = node.output()
    assert rc == 0, log
    assert "Traceback" not in log and "radar_empty" not in log
    assert int(stale_diag["bad: bad_stamp"]) >= 6
    assert re.search(r"skipped bad input \[bad_stamp\]: /(image|camera_info|radar/points): header\.stamp\."
                     r"(sec -1 is negative|nanosec 1500000000 is not below 1e9)", log), log
    assert rig.unexplained_rejections(stale_diag, "bad_stamp") == {}, stale_diag     # nothing else was rejected
    assert empty_diag["camera-only frames (radar stale)"] == "0"            # the empty cloud was used ...
    assert stale_diag["camera-only frames (radar stale)"] == "1"            # ... the silence was noticed

    estimator = DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="torch", precision="fp32")
    camera_only = estimator.estimate(frame.rgb, [], frame.K).depth
    depths = [depth_array(m) for m in rig.received["depth"]]
    assert [Time.from_msg(m.header.stamp).nanoseconds for m in rig.received["depth"]] == [t0, t1, t2]
    np.testing.assert_array_equal(depths[1], camera_only)
    np.testing.assert_array_equal(depths[2], camera_only)
    assert np.abs(depths[0] - camera_only).max() > 1e-5                   # the real cloud did shape frame 0


@pytest.mark.parametrize("sim_time", [True, False], ids=["clock", "no_clock"])
def test_looping_bag_keeps_the_new_loops_transforms(ros_domain_id, nuscenes_samples, tmp_path, sim_time):
    """A bag played again: every stamp goes back 1.5 s (past tf2_ros's 1 s and ``time_reset_threshold``). With
    ``--clock --loop`` (``clock``) the clock goes back too, and tf2_ros's ``Buffer(node=...)`` forgets the old
    loop's transforms on the jump; without /clock (``no_clock``: a wall-clock node) the TF listener forgets them
    when the TF stamps go back. Either way the odometry the new loop then sends must compensate its first frame,
    as it did the first time (the wall-clock node cleared TF when the image restarted, after the new loop's
    odometry had arrived, and published that frame uncompensated: black-box run)."""
    frame = NuScenesFrame.load(nuscenes_samples)
    checkpoint = make_checkpoint(tmp_path / "student.pt")
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1,
                                               "use_sim_time": sim_time, "radar_timeout": 0.0,
                                               "diagnostics_period": 0.2})
    rig = Rig()
    clock_pub = rig.node.create_publisher(Clock, "/clock", 10)

    def play(offset):
        """The bag's frame, shifted by ``offset`` ns, played as ``ros2 bag play --clock`` would: the clock first
        (the node's diagnostics carry its clock), then odometry (acknowledged by the node's TF reader), then
        the frame."""
        sim_now = frame.t_cam + offset - 20 * MS

        def node_clock_at_sim_now():
            clock_pub.publish(Clock(clock=Time(nanoseconds=sim_now).to_msg()))
            diag = rig.received["diag"]
            return bool(diag) and Time.from_msg(diag[-1].header.stamp).nanoseconds == sim_now
        assert not sim_time or rig.spin_until(node_clock_at_sim_now, 30, node), rig.latest_diagnostics()
        rig.publish_tf([matrix_to_transform(frame.cam_e2g, "odom", "base_link", Time(nanoseconds=frame.t_cam + offset)),
                        matrix_to_transform(frame.radar_e2g, "odom", "base_link",
                                            Time(nanoseconds=frame.t_radar + offset))])
        assert rig.tf_pub.wait_for_all_acked(Duration(seconds=30))
        published = len(rig.received["depth"])
        rig.publish_frame_until(image_msg(frame.rgb, frame.t_cam + offset),
                                camera_info_msg(frame, frame.t_cam + offset),
                                [radar_msg(frame.radar, frame.t_radar + offset)],
                                lambda: len(rig.received["depth"]) == published + 1, node)

    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        assert rig.spin_until(lambda: rig.tf_pub.get_subscription_count() > 0
                              and (clock_pub.get_subscription_count() > 0 or not sim_time), 30, node)
        assert rig.tf_static_pub.wait_for_all_acked(Duration(seconds=30))
        play(0)
        play(1500 * MS)
        play(0)                                        # the loop starts over
        diag = rig.diagnostics_when("frames published", "3", node)
    finally:
        rig.close()
        rc = node.stop()
    log = node.output()
    assert rc == 0, log
    assert "Traceback" not in log and log.count("Detected jump back in time") == sim_time, log
    assert diag["radar clouds without ego-motion compensation"] == "0", diag
    assert rig.unexplained_rejections(diag) == {}, diag

    estimator = DepthEstimator.from_checkpoint(checkpoint, device="cpu", backend="torch", precision="fp32")
    T = sensor_to_sensor(frame.radar_s2e, frame.radar_e2g, frame.cam_e2g, frame.cam_s2e)
    want = estimator.estimate(frame.rgb, [RadarInput(*frame.radar_xyz_features(), T)], frame.K).depth
    assert [Time.from_msg(m.header.stamp).nanoseconds for m in rig.received["depth"]] == [
        frame.t_cam, frame.t_cam + 1500 * MS, frame.t_cam]
    for msg in rig.received["depth"]:
        np.testing.assert_array_equal(depth_array(msg), want)


def test_a_replay_without_radar_publishes_camera_only_frames(ros_domain_id, nuscenes_samples, tmp_path):
    """Stamps played again without the radar (a bag replayed with the radar topic left out, or its driver dead):
    past ``radar_timeout`` each image goes out camera-only with ``radar stale``. The frames fused the first time
    used to veto their camera-only copies (the node kept the stamps it had sent fused across the restart): a
    black-box run lost every frame up to the first stamp the first pass had not used."""
    frame = NuScenesFrame.load(nuscenes_samples)
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(make_checkpoint(tmp_path / "student.pt")),
                                               "cpu_threads": 1, "fixed_frame": "", "slop": 0.03,
                                               "radar_timeout": 0.25, "time_reset_threshold": 0.15,
                                               "diagnostics_period": 0.2})
    rig = Rig()

    def at(i):
        return frame.t_cam + i * 100 * MS

    def send(i, radar):
        count = len(rig.received["depth"]) + 1
        rig.publish_frame_until(image_msg(frame.rgb, at(i)), camera_info_msg(frame, at(i)),
                                [radar_msg(frame.radar, at(i) + 10 * MS)] if radar else [],
                                lambda: len(rig.received["depth"]) == count, node, timeout=30)

    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        for i in range(6):
            send(i, radar=True)
        for i in range(3):                            # within radar_timeout of the restart: wait for the radar
            rig.image_pub.publish(image_msg(frame.rgb, at(i)))
            rig.info_pub.publish(camera_info_msg(frame, at(i)))
            assert rig.image_pub.wait_for_all_acked(Duration(seconds=30))
            assert rig.info_pub.wait_for_all_acked(Duration(seconds=30))
        for i in range(3, 6):
            send(i, radar=False)
        diag = rig.diagnostics_when("frames published", "9", node)
    finally:
        rig.close()
        rc = node.stop()
    log = node.output()
    assert rc == 0 and "Traceback" not in log, log
    assert [Time.from_msg(m.header.stamp).nanoseconds for m in rig.received["depth"]] == [
        *map(at, range(6)), *map(at, range(3, 6))]
    assert diag["camera-only frames (radar stale)"] == "3", diag


def test_a_looping_bag_loses_no_frame_to_the_earlier_loops_unmatched_messages(ros_domain_id, nuscenes_samples,
                                                                              tmp_path):
    """A bag that loops (stamps go back past ``time_reset_threshold``) after a stretch where the camera ran
    without radar, or the radar without the camera: every frame of the next loop is published. The
    synchroniser's queues were full of the earlier loop's unmatched messages, and a full queue evicts its
    oldest stamp, which was each new message: the next loop published nothing until its stamps passed them
    (a black-box run over DDS lost 20 of 20 frames, and 7 after a radar-only tail)."""
    frame = NuScenesFrame.load(nuscenes_samples)
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(make_checkpoint(tmp_path / "student.pt")),
                                               "cpu_threads": 1, "fixed_frame": "", "queue_size": 3, "slop": 0.03,
                                               "radar_timeout": 0.0, "time_reset_threshold": 0.15,
                                               "diagnostics_period": 0.2})
    rig = Rig()
    t0 = frame.t_cam

    def at(i):
        return t0 + i * 100 * MS

    def send(i, camera=True, radar=True, published=True):
        image, info = image_msg(frame.rgb, at(i)), camera_info_msg(frame, at(i))
        clouds = [radar_msg(frame.radar, at(i) + 10 * MS)] if radar else []
        if not published:      # the node cannot answer: wait until its readers have the messages
            pubs = ([rig.image_pub, rig.info_pub] if camera else []) + (rig.radar_pubs if radar else [])
            for pub, msg in zip(pubs, ([image, info] if camera else []) + clouds):
                pub.publish(msg)
            assert all(pub.wait_for_all_acked(Duration(seconds=30)) for pub in pubs)
            return
        count = len(rig.received["depth"]) + 1
        rig.publish_frame_until(image, info, clouds, lambda: len(rig.received["depth"]) == count, node, timeout=30)

    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        send(0)
        for i in range(1, 5):
            send(i, radar=False, published=False)      # the camera alone: 4 frames for 3 queue places
        for i in range(5):
            send(i)                                    # the loop again, every input
        for i in range(3):
            send(i)                                    # again: frames 0-2 ...
        for i in range(3, 7):
            send(i, camera=False, published=False)     # ... then the radar alone
        for i in range(7):
            send(i)
        diag = rig.diagnostics_when("frames published", "16", node)
    finally:
        rig.close()
        rc = node.stop()
    log = node.output()
    assert rc == 0 and "Traceback" not in log, log
    assert [Time.from_msg(m.header.stamp).nanoseconds for m in rig.received["depth"]] == [
        at(0), *map(at, range(5)), *map(at, range(3)), *map(at, range(7))]
    assert rig.unexplained_rejections(diag) == {}, diag
    assert "/image stamps went back 0.400 s: restart" in log or "/camera_info stamps went back 0.400 s" in log, log


def test_a_cloud_just_after_its_image_fuses_the_frame_after_a_radar_silence(ros_domain_id, nuscenes_samples,
                                                                            tmp_path):
    """A black-box run: after the radar had been silent past ``radar_timeout``, a frame whose own cloud DDS
    delivered just after its image went out camera-only (the frame was decided when the image arrived), so with
    frames further apart than radar_timeout every frame lost its radar. A frame now waits ``slop`` (steady time)
    for its clouds. Here the cloud is sent only once the node has counted the image: within slop (1 s) of it,
    the frame is fused; the camera-only frames are those of the silence alone."""
    frame = NuScenesFrame.load(nuscenes_samples)
    checkpoint = make_checkpoint(tmp_path / "student.pt")
    node = NodeProcess(tmp_path / "node.log", {"checkpoint": str(checkpoint), "cpu_threads": 1, "fixed_frame": "",
                                               "slop": 1.0, "radar_timeout": 2.0, "diagnostics_period": 0.1})
    rig = Rig()
    t0 = frame.t_cam

    def diag(key) -> int:
        return int(rig.latest_diagnostics().get(key, "0"))

    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        rig.publish_frame_until(image_msg(frame.rgb, t0), camera_info_msg(frame, t0), [radar_msg(frame.radar, t0)],
                                lambda: len(rig.received["depth"]) == 1, node)
        t1 = t0 + 5 * S                             # the radar silent since t0: camera-only
        rig.publish_frame_until(image_msg(frame.rgb, t1), camera_info_msg(frame, t1), [],
                                lambda: len(rig.received["depth"]) == 2, node)
        t2 = t1 + 5 * S                             # still silent when the image comes; its cloud follows
        images = diag("messages received /image")
        rig.publish_frame(image_msg(frame.rgb, t2), camera_info_msg(frame, t2), [])
        assert rig.spin_until(lambda: diag("messages received /image") > images, 30, node)
        rig.radar_pubs[0].publish(radar_msg(frame.radar, t2))
        assert rig.spin_until(lambda: len(rig.received["depth"]) == 3, 60, node)
        final = rig.diagnostics_when("frames published", "3", node)
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    assert final["camera-only frames (radar stale)"] == "1"
    depths = [depth_array(m) for m in rig.received["depth"]]
    assert [Time.from_msg(m.header.stamp).nanoseconds for m in rig.received["depth"]] == [t0, t1, t2]
    assert np.abs(depths[1] - depths[0]).max() > 1e-5                      # the cloud shapes the depth
    np.testing.assert_array_equal(depths[2], depths[0])                   # the same image and cloud: fused
