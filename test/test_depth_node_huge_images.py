"""Hostile image sizes: a 12000 x 12000 PNG of a few hundred kB and a raw 6000 x 8000 rgb8 Image are
rejected as bad input (``image_too_large``, counted) from their header / declared size, without being
decoded, and the node's peak RSS stays within 1 GB (before ``max_image_pixels`` the PNG cost 5 GB, the raw
image 5.5 GB). A normal frame afterwards still gives depth."""

import io
import time

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image

from depth_node_rig import (CAMERA, NodeProcess, NuScenesFrame, Rig, camera_info_msg, header, image_msg, jpeg_msg,
                            make_checkpoint, radar_msg)
from xdrcdepth_ros.node.conversions import BadInput, rgb_from_compressed, rgb_from_image
from xdrcdepth_ros.node.params import DEFAULT_MAX_IMAGE_PIXELS

MS = 1_000_000
RSS_LIMIT_MB = 1024


def huge_png(side=12000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (all black): ~20 kB on disk, 432 MB as RGB."""
    buf = io.BytesIO()
    PILImage.new("1", (side, side)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def png_12000():
    return huge_png()


def test_compressed_header_checked_before_decoding(png_12000):
    import tracemalloc

    msg = CompressedImage(format="png")
    msg.data = png_12000
    tracemalloc.start()
    began = time.perf_counter()
    with pytest.raises(BadInput) as info:
        rgb_from_compressed(msg, DEFAULT_MAX_IMAGE_PIXELS)
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.reason == "image_too_large" and "12000x12000" in info.value.detail
    assert peak < 20e6 and seconds < 1.0, (peak, seconds)       # decoding would allocate 144-432 MB
    small = CompressedImage(format="png")
    buf = io.BytesIO()
    PILImage.new("RGB", (8, 6), (1, 2, 3)).save(buf, format="PNG")
    small.data = buf.getvalue()
    assert rgb_from_compressed(small, 48).shape == (6, 8, 3)            # exactly at the limit: decoded
    with pytest.raises(BadInput, match="image_too_large"):
        rgb_from_compressed(small, 47)


def test_raw_declared_size_checked_before_the_data():
    # declares 6000 x 8000 rgb8 but carries 12 bytes: rejected for its size, never read
    msg = Image(header=header(CAMERA, 1), height=6000, width=8000, encoding="rgb8", step=8000 * 3, data=bytes(12))
    with pytest.raises(BadInput) as info:
        rgb_from_image(msg, DEFAULT_MAX_IMAGE_PIXELS)
    assert info.value.reason == "image_too_large" and "8000x6000 = 48000000 pixels" in info.value.detail
    ok = Image(header=header(CAMERA, 1), height=2, width=3, encoding="rgb8", step=9, data=bytes(18))
    assert rgb_from_image(ok, 6).shape == (2, 3, 3)


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.timeout(420)
@pytest.mark.parametrize("transport", ["compressed", "raw"])
def test_node_rejects_huge_images_within_1gb(ros_domain_id, nuscenes_samples, tmp_path, png_12000, transport):
    compressed = transport == "compressed"
    frame = NuScenesFrame.load(nuscenes_samples)
    node = NodeProcess(tmp_path / "node.log", {
        "checkpoint": str(make_checkpoint(tmp_path / "student.pt")), "cpu_threads": 1, "fixed_frame": "",
        "diagnostics_period": 0.2, "image_transport": transport})
    rig = Rig(compressed=compressed, outputs=("depth",))
    t0 = frame.t_cam
    if compressed:
        huge = CompressedImage(header=header(CAMERA, t0), format="png")
        huge.data = png_12000
        good = jpeg_msg(frame.rgb, t0 + 100 * MS)
    else:
        h, w = 6000, 8000
        huge = Image(header=header(CAMERA, t0), height=h, width=w, encoding="rgb8", step=w * 3,
                     data=np.full(h * w * 3, 7, np.uint8).tobytes())
        good = image_msg(frame.rgb, t0 + 100 * MS)
    huge_info = camera_info_msg(frame, t0)
    huge_info.height, huge_info.width = (12000, 12000) if compressed else (6000, 8000)
    try:
        rig.publish_static_extrinsics(frame)
        rig.wait_connected(node, outputs=("depth", "diag"))
        before = _peak_rss_mb(node.proc.pid)
        rig.publish_frame_until(huge, huge_info, [radar_msg(frame.radar, t0 + 10 * MS)],
                                lambda: rig.latest_diagnostics().get("bad: image_too_large") == "1", node,
                                timeout=180, retry_s=60)
        peak = _peak_rss_mb(node.proc.pid)
        t1 = t0 + 100 * MS
        rig.publish_frame_until(good, camera_info_msg(frame, t1), [radar_msg(frame.radar, t1 + 10 * MS)],
                                lambda: rig.received["depth"], node)
        diag = rig.latest_diagnostics()
    finally:
        rig.close()
        rc = node.stop()
    assert rc == 0, node.output()
    print(f"{transport}: node peak RSS {before:.0f} MB before the huge image, {peak:.0f} MB after it")
    assert peak < RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB"
    assert diag["bad: image_too_large"] == "1" and "image_too_large" in node.output()
    assert rig.received["depth"][0].header.stamp.nanosec == good.header.stamp.nanosec
