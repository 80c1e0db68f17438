"""ROS messages <-> numpy at the node's boundary, validated: every bad message becomes :class:`BadInput`.

The pixel and point access goes through ``cv_bridge`` and ``sensor_msgs_py.point_cloud2`` when they are
importable (a full ROS 2 install) and through the stand-ins in :mod:`xdrcdepth_ros.standins` otherwise,
via four primitives:

* :func:`image_to_array` (``CvBridge().imgmsg_to_cv2(msg, "passthrough")``),
* :func:`array_to_image` (``CvBridge().cv2_to_imgmsg(arr, encoding, header)``),
* :func:`read_points` (``point_cloud2.read_points(cloud, field_names)`` on the requested fields only, rows
  compacted first when ``row_step`` has padding, which upstream does not read),
* :func:`create_cloud` (``point_cloud2.create_cloud(header, fields, points, point_step)``, ``point_step``
  = the record size of a structured array, so padded records survive either backend).

The functions built on them check every message first (sizes, steps, field layouts) and raise
:class:`BadInput` with a short machine-readable ``reason`` and a human-readable detail, so that the node
can count, log and skip a bad message instead of crashing. Nothing here does maths beyond conversion:
depth back-projection is the pinhole inverse of ``xdrcdepth_core.data.geometry.project_points``.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from xdrcdepth_core.data.geometry import pinhole_intrinsics_valid
from xdrcdepth_core.imageio import UnsupportedPixels, decode_jpeg_fast, pil_to_rgb
from xdrcdepth_ros.standins import active


class BadInput(ValueError):
    """A message the node cannot use; ``reason`` is the counter key reported in /diagnostics."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


#: Encodings the node accepts as its camera input -> channels (reordered to RGB).
RGB_SOURCES = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
COMPRESSED_FORMATS = ("JPEG", "PNG")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# PointField datatype -> numpy type character (sensor_msgs/PointField constants).
POINT_FIELD_TYPES: dict[int, str] = {
    PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
    PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8",
}
_NUMPY_TO_POINT_FIELD = {np.dtype(t).str[1:]: k for k, t in POINT_FIELD_TYPES.items()}
FLOAT_TYPES = (PointField.FLOAT32, PointField.FLOAT64)

_cv_bridge = active("cv_bridge")
_point_cloud2 = active("point_cloud2")
_BRIDGE = _cv_bridge.CvBridge()
IMAGE_BACKEND = _cv_bridge.__name__
CLOUD_BACKEND = _point_cloud2.__name__


def image_to_array(msg: Image) -> np.ndarray:
    """Passthrough pixels: H x W (one channel) or H x W x C in the encoding's dtype, native byte order."""
    return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")


def array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image of ``arr``; the array's dtype and channels must be the encoding's (cv_bridge rules)."""
    return _BRIDGE.cv2_to_imgmsg(arr, encoding=encoding, header=header)


def read_points(cloud: PointCloud2, field_names=None) -> np.ndarray:
    """All points of a cloud as a structured array with the requested fields (all when None; NaNs kept).

    The backend sees only the requested fields (the bytes of the others stay as padding within
    ``point_step``), so a field nobody reads costs nothing: both backends expand a ``count: 1000000`` field
    into a million dtype members, and name the members of any ``count > 1`` field ``name_0`` ...,
    which may clash with another field's name."""
    row_bytes = cloud.width * cloud.point_step
    padded_rows = cloud.height > 1 and cloud.row_step > row_bytes     # upstream ignores row padding: drop it
    fields = cloud.fields if field_names is None else [f for f in cloud.fields if f.name in field_names]
    if padded_rows or len(fields) < len(cloud.fields):
        view = PointCloud2(header=cloud.header, height=cloud.height, width=cloud.width, fields=fields,
                           is_bigendian=cloud.is_bigendian, point_step=cloud.point_step,
                           row_step=row_bytes if padded_rows else cloud.row_step, is_dense=cloud.is_dense)
        if padded_rows:
            rows = np.frombuffer(cloud.data, np.uint8, count=cloud.row_step * cloud.height)
            view.data = rows.reshape(cloud.height, cloud.row_step)[:, :row_bytes].tobytes()
        else:
            view.data = cloud.data
        cloud = view
    return _point_cloud2.read_points(cloud, field_names=field_names, skip_nans=False)


def create_cloud(header: Header, fields, points) -> PointCloud2:
    """A PointCloud2 of a structured array (with its record size as ``point_step``) or an N x k array."""
    step = points.dtype.itemsize if isinstance(points, np.ndarray) and points.dtype.names else None
    return _point_cloud2.create_cloud(header, fields, points, point_step=step)


# --- validated conversions the node uses --------------------------------------------------------------

def check_image_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """:class:`BadInput` ``image_too_large`` if ``width x height`` exceeds ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise BadInput("image_too_large", f"{what} of {width}x{height} = {width * height} pixels > "
                                          f"max_image_pixels {max_pixels} (not decoded)")


def check_image_layout(msg: Image, bytes_per_pixel: int) -> None:
    """:class:`BadInput` when an Image's sizes contradict its data: empty or ``step`` shorter than a row
    (``bad_image``), fewer data bytes than ``height x step`` (``truncated_image``)."""
    if msg.width == 0 or msg.height == 0:
        raise BadInput("bad_image", f"empty image {msg.width}x{msg.height}")
    if msg.step < msg.width * bytes_per_pixel:
        raise BadInput("bad_image", f"step {msg.step} < width {msg.width} x {bytes_per_pixel} bytes")
    if len(msg.data) < msg.height * msg.step:
        raise BadInput("truncated_image", f"{len(msg.data)} data bytes < height {msg.height} x step {msg.step}")


def rgb_from_image(msg: Image, max_pixels: int | None = None) -> np.ndarray:
    """H x W x 3 uint8 RGB from an rgb8/bgr8/rgba8/bgra8/mono8 Image; :class:`BadInput` otherwise.

    The declared size is checked against ``max_pixels`` before any pixel is touched."""
    if msg.encoding not in RGB_SOURCES:
        raise BadInput("unsupported_encoding",
                       f"image encoding '{msg.encoding}' (supported: {', '.join(RGB_SOURCES)})")
    check_image_size(msg.width, msg.height, max_pixels, "image")
    check_image_layout(msg, RGB_SOURCES[msg.encoding])
    arr = image_to_array(msg)
    if msg.encoding == "mono8":
        return np.repeat(arr[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3])


def rgb_from_compressed(msg: CompressedImage, max_pixels: int | None = None) -> np.ndarray:
    """H x W x 3 uint8 RGB from a JPEG or PNG CompressedImage.

    The size in the file's header is checked against ``max_pixels`` before decoding: a small PNG can
    declare 12000 x 12000 pixels (432 MB as RGB). A well-formed JPEG is then decoded by simplejpeg or OpenCV
    (PIL's pixels, three times as fast: :mod:`xdrcdepth_core.imageio`; with simplejpeg, corrupt data inside a
    JPEG that ends in EOI is ``bad_compressed``, not a grey-patched picture), anything else by PIL, whose
    errors name the problem. A compressed_depth_image_transport message (format ``<encoding>; compressedDepth
    png|rvl``, a 12-byte header before the PNG or RVL data) is a depth map: ``unsupported_encoding``."""
    data = bytes(msg.data)
    if "compresseddepth" in msg.format.lower() or data[12:20] == PNG_SIGNATURE:
        raise BadInput("unsupported_encoding", f"compressedDepth image (format field '{msg.format}'): a depth "
                                               "map, not a camera picture")
    try:
        with warnings.catch_warnings():   # PIL warns above 89 Mpx at open: max_pixels decides here
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data))
        with img:
            if img.format not in COMPRESSED_FORMATS:
                raise BadInput("unsupported_encoding",
                               f"compressed format {img.format} (format field '{msg.format}')")
            check_image_size(img.width, img.height, max_pixels, f"compressed {img.format}")
            rgb = decode_jpeg_fast(data) if img.format == "JPEG" else None
            if rgb is not None:
                return rgb
            return pil_to_rgb(img)
    except BadInput:
        raise
    except UnsupportedPixels as exc:
        raise BadInput("unsupported_encoding", f"compressed {exc} (format field '{msg.format}')") from None
    except PILImage.DecompressionBombError as exc:   # beyond PIL's own limit (179 Mpx): not opened at all
        raise BadInput("image_too_large", f"compressed image: {exc} (not decoded)") from None
    except PILImage.UnidentifiedImageError:   # its message names a BytesIO object: say what it means
        raise BadInput("bad_compressed", f"cannot decode '{msg.format}' ({len(msg.data)} bytes): not a "
                                         "JPEG or PNG PIL can identify") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInput("bad_compressed", f"cannot decode '{msg.format}' ({len(msg.data)} bytes): {exc}")


def _check_intrinsics(M: np.ndarray, name: str, problem: str) -> None:
    if not pinhole_intrinsics_valid(M):
        raise BadInput("bad_camera_info", f"{problem} {name} {M.reshape(-1).tolist()}")


def intrinsics_from_camera_info(msg: CameraInfo, image_hw: tuple[int, int]) -> np.ndarray:
    """3 x 3 intrinsics of the rectified image the node receives, checked against that image.

    As image_geometry's ``PinholeCameraModel`` (and so depth_image_proc) reads a camera_info: K all zero means
    uncalibrated; the rectified image's intrinsics are the left 3 x 3 of the projection matrix P (image_proc's
    ``image_rect`` comes with the raw camera's K and D, and P), or K where P is unset (all zero). P's Tx/Ty
    (the second camera of a stereo pair) and R are not used, as in depth_image_proc.

    Binning and ROI (image_proc's crop_decimate) as image_geometry's reduced camera model: ``width`` x
    ``height`` is the full sensor, the image is its ROI (the whole sensor where ``roi`` width or height is 0)
    divided by ``binning_x`` x ``binning_y`` (0 means 1), and the intrinsics follow:
    ``fx / binning_x``, ``(cx - roi.x_offset) / binning_x`` (likewise y). A ROI with ``do_rectify`` (given in
    raw, distorted pixels, which image_geometry maps through the distortion model) is not supported."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    _check_intrinsics(K, "K", "uncalibrated or invalid")
    P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)[:, :3]
    if np.any(P != 0):
        _check_intrinsics(P, "P", "invalid projection matrix, left 3 x 3 of")
    M = (P if np.any(P != 0) else K).copy()      # msg.k may be an array.array the array views
    roi = msg.roi
    whole = roi.width == 0 or roi.height == 0
    x, y, w, h = (0, 0, msg.width, msg.height) if whole else (roi.x_offset, roi.y_offset, roi.width, roi.height)
    if x + w > msg.width or y + h > msg.height:
        raise BadInput("bad_camera_info", f"roi {w}x{h} at ({x}, {y}) exceeds the {msg.width}x{msg.height} sensor")
    if roi.do_rectify and (x, y, w, h) != (0, 0, msg.width, msg.height):
        raise BadInput("bad_camera_info", "roi.do_rectify (a ROI in raw, distorted pixels) is not supported: "
                                          "send the rectified ROI's image with do_rectify false")
    bx, by = max(msg.binning_x, 1), max(msg.binning_y, 1)
    if (h // by, w // bx) != tuple(image_hw):
        reduced = "" if (bx, by, w, h) == (1, 1, msg.width, msg.height) else \
            f" (roi {w}x{h}, binning {bx}x{by}: {w // bx}x{h // by})"
        raise BadInput("camera_info_size_mismatch",
                       f"camera_info is {msg.width}x{msg.height}{reduced}, image is {image_hw[1]}x{image_hw[0]}")
    M[0, 0], M[0, 2] = M[0, 0] / bx, (M[0, 2] - x) / bx
    M[1, 1], M[1, 2] = M[1, 1] / by, (M[1, 2] - y) / by
    return M


def radar_from_cloud(cloud: PointCloud2, feature_names, max_points: int
                     ) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Points (N x 3 float64, radar frame) and per-point features of a radar PointCloud2.

    Needs float x, y, z; each of ``feature_names`` (e.g. nuScenes ``rcs``, ``vx_comp``, ``vy_comp``) is
    read when present and left out of the dict otherwise. Points with a non-finite coordinate or feature are
    dropped; returns ``(xyz, features, n_dropped_nonfinite)``.
    """
    n = cloud.width * cloud.height
    if n > max_points:
        raise BadInput("radar_too_large", f"{n} points > max_radar_points {max_points}")
    names = [f.name for f in cloud.fields]
    if len(set(names)) != len(names):
        raise BadInput("radar_bad_fields", f"duplicate field names {names}")
    for f in cloud.fields:
        if f.datatype not in POINT_FIELD_TYPES or f.count < 1:
            raise BadInput("radar_bad_fields", f"field {f.name}: datatype {f.datatype}, count {f.count}")
        if f.offset + f.count * np.dtype(POINT_FIELD_TYPES[f.datatype]).itemsize > cloud.point_step:
            raise BadInput("radar_bad_fields", f"field {f.name} at {f.offset} overruns point_step "
                                               f"{cloud.point_step}")
    spans = sorted((f.offset, f.offset + f.count * np.dtype(POINT_FIELD_TYPES[f.datatype]).itemsize, f.name)
                   for f in cloud.fields)
    for (_, end, name), (start, _, next_name) in zip(spans, spans[1:]):
        if start < end:
            raise BadInput("radar_bad_fields", f"fields {name} and {next_name} overlap (bytes {start}-{end - 1})")
    by_name = {f.name: f for f in cloud.fields}
    not_float = [c for c in ("x", "y", "z") if c in by_name and by_name[c].datatype not in FLOAT_TYPES]
    if not_float:
        raise BadInput("radar_bad_fields", f"fields {not_float} are not FLOAT32/FLOAT64 (metres)")
    multi = [name for name in ("x", "y", "z", *feature_names) if name in by_name and by_name[name].count != 1]
    if multi:  # other fields may have count > 1 (read as name_0 .. name_k by point_cloud2, unused here)
        raise BadInput("radar_bad_fields", f"fields {multi} have count > 1")
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
    records = read_points(cloud, ["x", "y", "z", *present]) if n else None   # the layout checks above cover it
    if records is None or len(records) == 0:
        return np.zeros((0, 3)), {}, 0
    xyz = np.stack([records[c].astype(np.float64) for c in ("x", "y", "z")], axis=1)
    features = {name: records[name].astype(np.float64) for name in present}
    finite = np.all(np.isfinite(xyz), axis=1)
    for values in features.values():   # one NaN feature would spread through the network to every pixel
        finite &= np.isfinite(values)
    return xyz[finite], {name: values[finite] for name, values in features.items()}, int(np.count_nonzero(~finite))


def structured_to_cloud(header: Header, records: np.ndarray) -> PointCloud2:
    """A PointCloud2 with one field per member of a structured array (e.g. a nuScenes radar record)."""
    fields = [PointField(name=name, offset=offset, datatype=_NUMPY_TO_POINT_FIELD[dt.str[1:]], count=1)
              for name, (dt, offset) in records.dtype.fields.items()]
    return create_cloud(header, fields, records)


def depth_image(depth: np.ndarray, header: Header) -> Image:
    """REP 118 depth: 32FC1 metres along optical z; NaN where the value is not a positive number."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.size and depth.min() > 0 and depth.max() < np.inf:   # NaN propagates: False; the usual case, no copy
        return array_to_image(depth, "32FC1", header)
    out = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))   # float32, one pass
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
    """Back-project every ``stride``-th pixel with valid depth through K's inverse (optical frame):
    Y=(v-cy)Z/fy, X=(u-cx-s(v-cy)/fy)Z/fx with skew s = K[0,1] (0 for nuScenes; depth_image_proc leaves it out,
    which misplaces a skewed camera's points; the radar is projected with the full K).

    Unorganised (height 1) with no invalid point, so ``is_dense`` is true (REP / sensor_msgs: "True if there
    are no invalid points"); a point whose float32 coordinates overflow is left out rather than sent as inf.
    """
    z = np.asarray(depth, dtype=np.float64)[::stride, ::stride]
    v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
    valid = np.isfinite(z) & (z > 0)
    z, u, v = z[valid], u[valid], v[valid]
    with np.errstate(over="ignore"):
        xyz = np.stack([(u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1],
                        z], axis=1).astype(np.float32)
    cloud = create_cloud(header, XYZ_FIELDS, xyz[np.all(np.isfinite(xyz), axis=1)])
    cloud.is_dense = True
    return cloud
