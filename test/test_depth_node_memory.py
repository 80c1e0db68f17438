"""Inputs at more than twice the rate the node can process: memory stays flat and drops are counted."""

import time

import pytest

from depth_node_rig import (NodeProcess, NuScenesFrame, Rig, camera_info_msg, image_msg, make_checkpoint,
                            radar_msg)

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]
MS = 1_000_000
PUBLISH_HZ = 10.0
NODE_INPUT_HW = (352, 704)    # the paper resolution: ~5x the work of the test default, so any CI machine is overloaded
IMAGE_HW = (900, 1600)        # full-resolution CAM_FRONT: 4.3 MB per frame, so a backlog would show in RSS
GROWTH_LIMIT_MB = 60
FLOOD_S = 16.0


def test_memory_bounded_under_overload(ros_domain_id, nuscenes_samples, tmp_path, monkeypatch):
    # glibc raises its mmap threshold as large buffers are freed, after which freed image buffers stay in
    # the heap and the RSS floor creeps up in ~50-60 MB steps (allocator history, not live data; it rose
    # by up to 114 MB within 24 s). A fixed threshold returns them, so RSS follows live memory.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(128 * 1024))
    frame = NuScenesFrame.load(nuscenes_samples, hw=IMAGE_HW)
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(make_checkpoint(tmp_path / "student.pt", NODE_INPUT_HW)), "cpu_threads": 1,
        "fixed_frame": "", "diagnostics_period": 0.5})
    rig = Rig()
    image, info, cloud = image_msg(frame.rgb, 0), camera_info_msg(frame, 0), radar_msg(frame.radar, 0)

    def stamp(t_ns):
        for msg in (image, info, cloud):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)

    rss = []
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        stamp(frame.t_cam)
        rig.publish_frame_until(image, info, [cloud], lambda: rig.received["depth"], node)
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < FLOOD_S:
            k += 1
            stamp(frame.t_cam + k * round(1000 / PUBLISH_HZ) * MS)
            rig.publish_frame(image, info, [cloud])
            rig.spin_for(1.0 / PUBLISH_HZ)
            if k % 2 == 0:
                rss.append(node.rss_mb())
        rig.spin_for(1.0)
        diag = rig.latest_diagnostics()
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()

    in_rate = float(diag["input rate /image (Hz)"])
    out_rate = float(diag["output rate (Hz)"])
    print(f"overload: {k} frames sent, input {in_rate:.1f} Hz, output {out_rate:.1f} Hz, "
          f"dropped {diag['dropped frames']}, RSS MB {[round(r) for r in rss]}")
    assert out_rate > 0 and in_rate >= 2 * out_rate, diag         # the premise: at least 2x overload
    assert int(diag["dropped frames"]) > 0.3 * k                    # latest-frame policy drops the rest
    assert int(diag["frames published"]) + int(diag["dropped frames"]) <= int(diag["sync matches"])
    # Samples land at random phases of inference, whose working memory comes and goes (RSS swung by ~200 MB
    # within every window at 352x704), so compare floors: the lowest RSS of the last third against that of
    # the middle third (352-388 MB in 7 runs). Had the node queued the dropped frames instead, the floor
    # would have risen by a third of their bytes between the two windows, more than the limit (checked, so
    # that this test can fail).
    backlog_mb = int(diag["dropped frames"]) * len(image.data) / 2**20
    assert backlog_mb / 3 > GROWTH_LIMIT_MB, backlog_mb
    third = len(rss) // 3
    assert min(rss[2 * third:]) - min(rss[third:2 * third]) < GROWTH_LIMIT_MB, rss
