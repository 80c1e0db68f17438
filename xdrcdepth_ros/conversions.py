"""ROS messages <-> numpy at the node's boundary (the cv_bridge / sensor_msgs_py equivalents).

Four primitives form the small interface the rest of the node uses; each comes from the real ROS library
when it is importable (a full ROS 2 install) and from the pure-numpy version here otherwise (pip-only
setups, where cv_bridge and sensor_msgs_py are not installable):

* :func:`image_to_array` (``cv_bridge.CvBridge().imgmsg_to_cv2(msg, "passthrough")``),
* :func:`array_to_image` (``cv_bridge.CvBridge().cv2_to_imgmsg``),
* :func:`read_points` (``sensor_msgs_py.point_cloud2.read_points(..., skip_nans=False)``),
* :func:`create_cloud` (``sensor_msgs_py.point_cloud2.create_cloud``).

The functions built on them validate every message first (sizes, steps, field layouts) and raise
:class:`BadInput` with a short machine-readable ``reason`` and a human-readable detail, so that the node
can count, log and skip a bad message instead of crashing. Nothing here does maths beyond conversion:
depth back-projection is the pinhole inverse of ``xdrcdepth_core.data.geometry.project_points``.
"""

from __future__ import annotations

import io
import sys

import numpy as np
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header


class BadInput(ValueError):
    """A message the node cannot use; ``reason`` is the counter key reported in /diagnostics."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# encoding -> (numpy dtype, channels); the subset of sensor_msgs/image_encodings.hpp this node handles.
IMAGE_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4), "mono8": ("u1", 1),
    "8UC1": ("u1", 1), "8UC3": ("u1", 3), "mono16": ("u2", 1), "16UC1": ("u2", 1), "32FC1": ("f4", 1),
}
#: Encodings the node accepts as its camera input, and how to reorder them to RGB.
RGB_SOURCES = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
COMPRESSED_FORMATS = ("JPEG", "PNG")

# PointField datatype -> numpy type character (sensor_msgs/PointField constants).
POINT_FIELD_TYPES: dict[int, str] = {
    PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
    PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8",
}
_NUMPY_TO_POINT_FIELD = {np.dtype(t).str[1:]: k for k, t in POINT_FIELD_TYPES.items()}


# --- the four primitives, ours ------------------------------------------------------------------------

def _own_image_to_array(msg: Image) -> np.ndarray:
    """Passthrough view of an Image's pixels: H x W (one channel) or H x W x C, the encoding's dtype."""
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dt.itemsize
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    rows = buf.reshape(msg.height, msg.step)[:, :row_bytes]
    arr = np.ascontiguousarray(rows).view(dt).reshape(msg.height, msg.width, channels)
    arr = arr.astype(dt.newbyteorder("="), copy=False)
    return arr[:, :, 0] if channels == 1 else arr


def _own_array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    dtype, channels = IMAGE_ENCODINGS[encoding]
    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("="))
    if arr.shape[2:] != ((channels,) if channels > 1 else ()) or arr.ndim not in (2, 3):
        raise ValueError(f"array of shape {arr.shape} does not fit encoding {encoding}")
    msg = Image(header=header or Header(), height=arr.shape[0], width=arr.shape[1], encoding=encoding,
                is_bigendian=int(sys.byteorder == "big"), step=arr.shape[1] * channels * arr.itemsize)
    msg.data = arr.tobytes()
    return msg


def _cloud_dtype(fields, point_step: int, is_bigendian: bool, field_names=None) -> np.dtype:
    order = ">" if is_bigendian else "<"
    chosen = [f for f in fields if field_names is None or f.name in field_names]
    return np.dtype({"names": [f.name for f in chosen],
                     "formats": [order + POINT_FIELD_TYPES[f.datatype] for f in chosen],
                     "offsets": [f.offset for f in chosen], "itemsize": point_step})


def _own_read_points(cloud: PointCloud2, field_names=None) -> np.ndarray:
    """All points of a cloud as a structured array with the requested fields (NaNs kept)."""
    dt = _cloud_dtype(cloud.fields, cloud.point_step, cloud.is_bigendian, field_names)
    buf = np.frombuffer(cloud.data, dtype=np.uint8, count=cloud.row_step * cloud.height)
    rows = buf.reshape(cloud.height, cloud.row_step)[:, :cloud.width * cloud.point_step]
    return np.ascontiguousarray(rows).view(dt).reshape(-1)


def _own_create_cloud(header: Header, fields, points) -> PointCloud2:
    points = np.asarray(points)
    point_step = max(f.offset + np.dtype(POINT_FIELD_TYPES[f.datatype]).itemsize for f in fields)
    dt = _cloud_dtype(fields, point_step, False)
    records = np.zeros(len(points), dtype=dt)
    for i, f in enumerate(fields):
        records[f.name] = points[f.name] if points.dtype.names else points[:, i]
    cloud = PointCloud2(header=header, height=1, width=len(records), fields=list(fields),
                        is_bigendian=False, point_step=point_step, row_step=point_step * len(records),
                        is_dense=False)
    cloud.data = records.tobytes()
    return cloud


try:  # a real ROS 2 install
    from cv_bridge import CvBridge

    _BRIDGE = CvBridge()

    def image_to_array(msg: Image) -> np.ndarray:
        return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")

    def array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
        return _BRIDGE.cv2_to_imgmsg(arr, encoding=encoding, header=header)

    IMAGE_BACKEND = "cv_bridge"
except ImportError:
    image_to_array = _own_image_to_array
    array_to_image = _own_array_to_image
    IMAGE_BACKEND = "xdrcdepth_ros.conversions"

try:
    from sensor_msgs_py import point_cloud2 as _pc2

    def read_points(cloud: PointCloud2, field_names=None) -> np.ndarray:
        return _pc2.read_points(cloud, field_names=field_names, skip_nans=False)

    def create_cloud(header: Header, fields, points) -> PointCloud2:
        return _pc2.create_cloud(header, fields, points)

    CLOUD_BACKEND = "sensor_msgs_py"
except ImportError:
    read_points = _own_read_points
    create_cloud = _own_create_cloud
    CLOUD_BACKEND = "xdrcdepth_ros.conversions"


# --- validated conversions the node uses --------------------------------------------------------------

def rgb_from_image(msg: Image) -> np.ndarray:
    """H x W x 3 uint8 RGB from an rgb8/bgr8/rgba8/bgra8/mono8 Image; :class:`BadInput` otherwise."""
    if msg.encoding not in RGB_SOURCES:
        raise BadInput("unsupported_encoding",
                       f"image encoding '{msg.encoding}' (supported: {', '.join(RGB_SOURCES)})")
    _, channels = IMAGE_ENCODINGS[msg.encoding]
    if msg.width == 0 or msg.height == 0:
        raise BadInput("bad_image", f"empty image {msg.width}x{msg.height}")
    if msg.step < msg.width * channels:
        raise BadInput("bad_image", f"step {msg.step} < width {msg.width} x {channels} bytes")
    if len(msg.data) < msg.step * msg.height:
        raise BadInput("truncated_image",
                       f"{len(msg.data)} data bytes < step {msg.step} x height {msg.height}")
    arr = image_to_array(msg)
    if msg.encoding == "mono8":
        return np.repeat(arr[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3])


def rgb_from_compressed(msg: CompressedImage) -> np.ndarray:
    """H x W x 3 uint8 RGB from a JPEG or PNG CompressedImage (decoded with PIL)."""
    try:
        with PILImage.open(io.BytesIO(bytes(msg.data))) as img:
            if img.format not in COMPRESSED_FORMATS:
                raise BadInput("unsupported_encoding",
                               f"compressed format {img.format} (format field '{msg.format}')")
            img.load()
            return np.asarray(img.convert("RGB"))
    except BadInput:
        raise
    except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError) as exc:
        raise BadInput("bad_compressed", f"cannot decode '{msg.format}' ({len(msg.data)} bytes): {exc}")


def intrinsics_from_camera_info(msg: CameraInfo, image_hw: tuple[int, int]) -> np.ndarray:
    """3 x 3 K of a rectified image (``camera_info.k``), checked against the image it belongs to."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
        raise BadInput("bad_camera_info", f"uncalibrated or invalid K {K.reshape(-1).tolist()}")
    if (msg.height, msg.width) != tuple(image_hw):
        raise BadInput("camera_info_size_mismatch",
                       f"camera_info is {msg.width}x{msg.height}, image is {image_hw[1]}x{image_hw[0]}")
    return K


def radar_from_cloud(cloud: PointCloud2, feature_names, max_points: int
                     ) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Points (N x 3 float64, radar frame) and per-point features of a radar PointCloud2.

    Needs float x, y, z; each of ``feature_names`` (e.g. nuScenes ``rcs``, ``vx_comp``, ``vy_comp``) is
    read when present and left out of the dict otherwise. Points with a non-finite coordinate are
    dropped; returns ``(xyz, features, n_dropped_nonfinite)``.
    """
    n = cloud.width * cloud.height
    if n > max_points:
        raise BadInput("radar_too_large", f"{n} points > max_radar_points {max_points}")
    names = [f.name for f in cloud.fields]
    if len(set(names)) != len(names):
        raise BadInput("radar_bad_fields", f"duplicate field names {names}")
    for f in cloud.fields:
        if f.datatype not in POINT_FIELD_TYPES or f.count != 1:
            raise BadInput("radar_bad_fields", f"field {f.name}: datatype {f.datatype}, count {f.count}")
        if f.offset + np.dtype(POINT_FIELD_TYPES[f.datatype]).itemsize > cloud.point_step:
            raise BadInput("radar_bad_fields", f"field {f.name} at {f.offset} overruns point_step "
                                               f"{cloud.point_step}")
    by_name = {f.name: f for f in cloud.fields}
    missing = [c for c in ("x", "y", "z") if c not in by_name]
    if missing:
        raise BadInput("radar_missing_xyz", f"no field {', '.join(missing)} in {names}")
    if cloud.row_step < cloud.width * cloud.point_step:
        raise BadInput("radar_truncated",
                       f"row_step {cloud.row_step} < width {cloud.width} x point_step {cloud.point_step}")
    if len(cloud.data) < cloud.row_step * cloud.height:
        raise BadInput("radar_truncated",
                       f"{len(cloud.data)} data bytes < row_step {cloud.row_step} x height {cloud.height}")
    present = [name for name in feature_names if name in by_name]
    records = read_points(cloud, ["x", "y", "z", *present]) if n else None
    if records is None or len(records) == 0:
        return np.zeros((0, 3)), {}, 0
    xyz = np.stack([records[c].astype(np.float64) for c in ("x", "y", "z")], axis=1)
    finite = np.all(np.isfinite(xyz), axis=1)
    features = {name: records[name].astype(np.float64)[finite] for name in present}
    return xyz[finite], features, int(np.count_nonzero(~finite))


def structured_to_cloud(header: Header, records: np.ndarray) -> PointCloud2:
    """A PointCloud2 with one field per member of a structured array (e.g. a nuScenes radar record)."""
    fields = [PointField(name=name, offset=offset, datatype=_NUMPY_TO_POINT_FIELD[dt.str[1:]], count=1)
              for name, (dt, offset) in records.dtype.fields.items()]
    return create_cloud(header, fields, records)


def depth_image(depth: np.ndarray, header: Header) -> Image:
    """REP 118 depth: 32FC1 metres along optical z; NaN where the value is not a positive number."""
    depth = np.asarray(depth, dtype=np.float32)
    out = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan)).astype(np.float32)
    return array_to_image(out, "32FC1", header)


def bgr8_image(rgb: np.ndarray, header: Header) -> Image:
    """bgr8 Image (the encoding viewers handle everywhere) from an RGB uint8 array."""
    return array_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", header)


def depth_camera_info(info: CameraInfo, header: Header) -> CameraInfo:
    """The camera_info that goes with the depth image: the input's calibration under the image's header."""
    return CameraInfo(header=header, height=info.height, width=info.width,
                      distortion_model=info.distortion_model, d=list(info.d), k=info.k, r=info.r,
                      p=info.p, binning_x=info.binning_x, binning_y=info.binning_y, roi=info.roi)


XYZ_FIELDS = [PointField(name=c, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, c in enumerate("xyz")]


def depth_to_cloud(depth: np.ndarray, K: np.ndarray, header: Header, stride: int = 1) -> PointCloud2:
    """Back-project every ``stride``-th pixel with valid depth: X=(u-cx)Z/fx, Y=(v-cy)Z/fy (optical frame)."""
    z = np.asarray(depth, dtype=np.float64)[::stride, ::stride]
    v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
    valid = np.isfinite(z) & (z > 0)
    z, u, v = z[valid], u[valid], v[valid]
    xyz = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
    return create_cloud(header, XYZ_FIELDS, xyz.astype(np.float32))
