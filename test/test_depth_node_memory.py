"""Inputs at more than twice the rate the node can process: memory stays flat and drops are counted.

Premise (checked from the node's own /diagnostics, not assumed): the node on one CPU thread at 352 x 704
is slower than 10 Hz of full-resolution frames by at least 2x, so most synchronised frames cannot be
processed. What is measured: the latest-frame policy drops them instead of queueing them. A node that
queued the dropped frames would hold every one of them: between the middle and the last third of the
flood its RSS floor would rise by a third of (dropped frames x 4.3 MB). The limit is half of that rise,
so a queueing node fails by a factor of two; the test also checks that this limit is above the
allocator's own steps (~60 MB, below), i.e. that the flood is long enough to tell the two apart (it goes
on past 16 s until it is, up to 60 s)."""

import time

import pytest

from depth_node_rig import (NodeProcess, NuScenesFrame, Rig, camera_info_msg, image_msg, make_checkpoint,
                            radar_msg)

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180), pytest.mark.slow]
MS = 1_000_000
PUBLISH_HZ = 10.0
NODE_INPUT_HW = (352, 704)    # the paper resolution: ~5x the work of the test default, so any CI machine is overloaded
IMAGE_HW = (900, 1600)        # full-resolution CAM_FRONT: 4.3 MB per frame, so a backlog would show in RSS
#: RSS steps of glibc's allocator history seen with a fixed mmap threshold (not live data): the noise floor
ALLOCATOR_STEP_MB = 60
FLOOD_S = 16.0
#: the flood goes on past FLOOD_S (up to this) until the node has dropped enough frames for the limit below to
#: clear the allocator's steps: on a loaded machine the publisher and the node's callbacks get less CPU, and
#: 16 s once gave 81 drops, a limit of 56 MB (2026-12-07, a training run beside the suite)
MAX_FLOOD_S = 60.0


def test_memory_bounded_under_overload(ros_domain_id, nuscenes_samples, tmp_path, monkeypatch):
    # glibc raises its mmap threshold as large buffers are freed, after which freed image buffers stay in
    # the heap and the RSS floor creeps up in ~50-60 MB steps (allocator history, not live data; it rose
    # by up to 114 MB within 24 s). A fixed threshold returns them, so RSS follows live memory.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(128 * 1024))
    frame = NuScenesFrame.load(nuscenes_samples, hw=IMAGE_HW)
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(make_checkpoint(tmp_path / "student.pt", NODE_INPUT_HW)), "cpu_threads": 1,
        "device": "cpu", "fixed_frame": "", "diagnostics_period": 0.5})
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
        # drops that make the limit (half a third of their bytes) clear the allocator's steps by a quarter
        enough_drops = 1.25 * ALLOCATOR_STEP_MB * 2 * 3 * 2**20 / len(image.data)

        def flooding() -> bool:
            elapsed = time.monotonic() - start
            drops = int(rig.latest_diagnostics().get("dropped frames", 0))
            return elapsed < FLOOD_S or (drops < enough_drops and elapsed < MAX_FLOOD_S)

        while flooding():
            k += 1
            stamp(frame.t_cam + k * round(1000 / PUBLISH_HZ) * MS)
            rig.publish_frame(image, info, [cloud])
            rig.spin_for(1.0 / PUBLISH_HZ)
            if k % 2 == 0:
                rss.append(node.rss_mb())
        # two fresh reports (0.5 s period) cover the end of the flood
        reports = len(rig.received["diag"])
        assert rig.spin_until(lambda: len(rig.received["diag"]) >= reports + 2, 60, node)
        diag = rig.latest_diagnostics()
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()

    published, matches, dropped = (int(diag[key]) for key in ("frames published", "sync matches", "dropped frames"))
    print(f"overload: {k} frames sent, {matches} synchronised, {published} published, dropped {dropped}, "
          f"RSS MB {[round(r) for r in rss]}")
    # the premise, from the node's counters over the whole run (a windowed output rate reads 0 when one
    # forward pass outlasts its window on a loaded machine): it processed at most half of what it got
    assert published >= 1 and matches >= 2 * published, diag
    assert dropped > 0.3 * k                                        # latest-frame policy drops the rest
    assert published + dropped <= matches
    # Samples land at random phases of inference, whose working memory comes and goes (RSS swung by ~200 MB
    # within every window at 352x704), so compare floors: the lowest RSS of the last third against that of
    # the middle third (352-388 MB in 7 runs).
    queued_growth_mb = int(diag["dropped frames"]) * len(image.data) / 2**20 / 3   # a queueing node's rise
    limit_mb = queued_growth_mb / 2
    assert limit_mb > ALLOCATOR_STEP_MB, (queued_growth_mb, "flood too short to tell queueing from noise")
    third = len(rss) // 3
    assert min(rss[2 * third:]) - min(rss[third:2 * third]) < limit_mb, (limit_mb, rss)
