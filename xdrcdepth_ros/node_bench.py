"""The depth node's part of ``xdrcdepth bench``: its per-frame work (``DepthNode._process``: message -> numpy,
TF, estimate, publish) on one frame size, in this process without DDS transport, beside the bare model call, with
the message conversions timed one by one. Called by :func:`xdrcdepth_core.bench.run`; here so that
``xdrcdepth_core`` never imports rclpy."""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
import torch

from xdrcdepth_core.bench import (CHEAP_REPEATS, FRONT_CAMERA_K, _jpeg_1600x900, _radar_points, round_robin,
                                  stats_ms)


def bench_node(estimators: dict, repeats: int, hw=(450, 800)) -> dict:
    """The node's per-frame work on ``hw`` rgb8 frames and JPEGs, in this process (no DDS transport), for each
    of ``estimators`` (label -> DepthEstimator; their input sizes may differ)."""
    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from PIL import Image as PILImage
    from std_msgs.msg import Header

    from xdrcdepth_core import visualize
    from xdrcdepth_core.imageio import decode_image
    from xdrcdepth_ros.node import conversions as conv
    from xdrcdepth_ros.node.depth_node import DepthNode, Frame

    h, w = hw
    K = FRONT_CAMERA_K.copy()
    K[:2] *= np.array([[w / 1600], [h / 900]])
    jpeg, _ = _jpeg_1600x900()
    rgb = decode_image(jpeg)
    rgb = np.asarray(PILImage.fromarray(rgb).resize((w, h), PILImage.BILINEAR))
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=90)
    xyz, feats = _radar_points(100)
    records = np.zeros(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rcs", "<f4"),
                                        ("vx_comp", "<f4"), ("vy_comp", "<f4")])
    for i, c in enumerate("xyz"):
        records[c] = xyz[:, i]
    for k, v in feats.items():
        records[k] = v

    def header(sec: int) -> Header:
        msg = Header(frame_id="camera")
        msg.stamp.sec = sec
        return msg

    image_msg = conv.array_to_image(rgb, "rgb8", header(0))
    jpeg_msg = CompressedImage(header=header(0), format="jpeg", data=buf.getvalue())
    info = CameraInfo(header=header(0), height=h, width=w, k=K.reshape(-1).tolist())
    cloud = conv.structured_to_cloud(header(0), records)
    out = {"frame": f"{h} x {w}", "radar_points": len(xyz), "frames_timed": repeats}

    # conversion costs, one by one (median of CHEAP_REPEATS)
    depth_hw = np.random.default_rng(0).uniform(1, 80, hw).astype(np.float32)
    pieces = {"image rgb8 -> numpy": lambda: conv.rgb_from_image(image_msg),
              "JPEG -> numpy": lambda: conv.rgb_from_compressed(jpeg_msg),
              "camera_info -> K": lambda: conv.intrinsics_from_camera_info(info, hw),
              "radar cloud -> numpy": lambda: conv.radar_from_cloud(cloud, ("rcs", "vx_comp", "vy_comp"), 10000),
              "depth -> Image msg": lambda: conv.depth_image(depth_hw, header(0)),
              "depth -> colorized msg": lambda: conv.bgr8_image(visualize.colorize_depth(depth_hw, 80.0), header(0))}
    times = round_robin(pieces, CHEAP_REPEATS, 1, torch.device("cpu"))
    out["conversions_ms"] = {k: stats_ms(v)["median_ms"] for k, v in times.items()}

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        out["paths"] = {}
        for name, est in estimators.items():
            # built on eager fp32 (its own estimator, at the shipped input, is replaced below): a variant that
            # passed parity at the frame size may fail it at another input, and must not stop the bench
            node = DepthNode(context=context, parameter_overrides=[
                Parameter("device", value=est.device), Parameter("fixed_frame", value=""),
                Parameter("backend", value="torch"), Parameter("precision", value="fp32"),
                Parameter("publish_colorized", value=False)])
            try:
                node.estimator = est          # the estimator measured above: same backend, no second load
                forward = []
                original = est.estimate

                def estimate(*a, **k):
                    result = original(*a, **k)
                    forward.append(result.timings["forward"])
                    return result

                est.estimate = estimate
                for transport, msg in (("raw rgb8", image_msg), ("JPEG", jpeg_msg)):
                    node.compressed = transport == "JPEG"
                    totals = []
                    forward.clear()
                    for i in range(repeats + 1):
                        stamp = header(1000 * (1 + len(out["paths"])) + 10 * i + (transport == "JPEG") * 5)
                        msg.header, info.header, cloud.header = stamp, stamp, stamp
                        frame = Frame(msg, info, (cloud,), time.monotonic())
                        t0 = time.perf_counter()
                        node._process(frame)
                        totals.append(time.perf_counter() - t0)
                    totals, fwd = totals[1:], forward[1:]
                    total, bare = statistics.median(totals), statistics.median(fwd)
                    overhead = statistics.median([t - f for t, f in zip(totals, fwd)])
                    out["paths"][f"{name}, {transport}"] = {
                        "input_hw": list(est.input_hw), "process_ms": 1000 * total, "forward_ms": 1000 * bare,
                        "overhead_ms": 1000 * overhead, "overhead_vs_forward": overhead / bare}
                del est.estimate
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    return out
