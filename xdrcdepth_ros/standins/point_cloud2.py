"""Stand-in for ``sensor_msgs_py.point_cloud2``: PointCloud2 <-> numpy with the upstream API and semantics.

Functions: :func:`read_points`, :func:`read_points_numpy`, :func:`read_points_list`,
:func:`dtype_from_fields`, :func:`create_cloud`, :func:`create_cloud_xyz32`. Follows ros2/common_interfaces
``sensor_msgs_py/sensor_msgs_py/point_cloud2.py`` (rolling, i.e. with #295 of sensor_msgs_py 5.9.1; Kilted's
5.5.x lacks that one change, see below). The reference is upstream's own test suite
(``sensor_msgs_py/test/test_point_cloud2.py``); test/test_point_cloud2.py ports its cases,
test/test_standin_point_cloud2.py adds what the source says. Upstream behaviour kept on purpose:

* fields with ``count > 1`` become sub-fields ``name_0 .. name_{count-1}``; a nameless field is
  ``unnamed_field_<i>``; duplicate names are an error;
* the structured dtype spans ``point_step`` bytes (padding between and after fields is kept);
* ``field_names`` must all exist (else an error) and come back in the requested order;
* :func:`read_points_numpy` requires every requested field after the first to have the datatype of the
  cloud's *first* field (requested or not), as upstream's assert does;
* an unknown PointField datatype raises :class:`UnknownDatatypeError`, a ``KeyError`` as upstream's;
* values come back in native byte order whatever ``is_bigendian`` says;
* ``skip_nans`` drops points with a NaN in any returned field unless the cloud is ``is_dense``;
* ``reshape_organized_cloud`` returns a ``(width, height)`` array, and :func:`create_cloud` reads a 2-D
  array as ``(width, height)``: upstream's convention (ros2/common_interfaces#236 discusses it), kept
  so code written against either behaves the same;
* :func:`create_cloud` checks that a structured array's dtype equals the one the fields describe, with
  ``point_step`` defaulting to the array's itemsize (rolling, ros2/common_interfaces#295; releases without
  it, Kilted's 5.5.x among them, assert for padded records unless ``point_step`` is given);
  unstructured arrays and lists need fields of one datatype (lists of tuples may mix).

Upstream reports these errors with ``assert``; here they raise :class:`PointCloudError`, which is an
``AssertionError`` (so code catching upstream's errors catches ours, also under ``python -O``) and a
``ValueError``. Differences kept on purpose: :func:`read_points` honours ``row_step`` padding at the end of
rows, which upstream ignores (it assumes ``row_step == width * point_step``), returns a copy (upstream: a
view of ``cloud.data``, which it byte-swaps *in place* for a foreign-endian cloud, so a second read of the
same message differs there); too few data bytes raise :class:`TruncatedCloudError`, a ``TypeError`` as
upstream's; :func:`create_cloud` accepts a non-contiguous structured array (upstream's
``memoryview.cast`` raises ``TypeError``). For well-formed clouds read once both agree.
"""

from __future__ import annotations

import sys
from collections import namedtuple
from typing import Iterable

import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured, unstructured_to_structured
from sensor_msgs.msg import PointCloud2, PointField

DATATYPES: dict[int, np.dtype] = {
    PointField.INT8: np.dtype(np.int8), PointField.UINT8: np.dtype(np.uint8),
    PointField.INT16: np.dtype(np.int16), PointField.UINT16: np.dtype(np.uint16),
    PointField.INT32: np.dtype(np.int32), PointField.UINT32: np.dtype(np.uint32),
    PointField.FLOAT32: np.dtype(np.float32), PointField.FLOAT64: np.dtype(np.float64),
}
DUMMY_FIELD_PREFIX = "unnamed_field"


class PointCloudError(AssertionError, ValueError):
    """A cloud, a field list or an array these functions cannot work with (upstream: AssertionError)."""


class TruncatedCloudError(PointCloudError, TypeError):
    """Fewer data bytes than the cloud's points need: upstream's ``np.ndarray(buffer=cloud.data)`` raises
    ``TypeError`` ("buffer is too small"); this is one (and a :class:`PointCloudError`)."""


class UnknownDatatypeError(PointCloudError, KeyError):
    """A PointField datatype outside INT8 .. FLOAT64: upstream's ``_DATATYPES[field.datatype]`` raises
    ``KeyError``; this is one (and a :class:`PointCloudError`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise PointCloudError(message)


def dtype_from_fields(fields: Iterable[PointField], point_step: int | None = None,
                      byte_order: str = "=") -> np.dtype:
    """The structured dtype of one point: one member per field (``name_<i>`` per element when ``count >
    1``) at its offset, ``itemsize = point_step`` when given. ``byte_order`` '<', '>' or '=' (native)."""
    names, formats, offsets, seen = [], [], [], set()
    for i, field in enumerate(fields):
        if field.datatype not in DATATYPES:
            raise UnknownDatatypeError(f"field {field.name!r}: unknown PointField datatype {field.datatype}")
        _check(field.count > 0, f"field {field.name!r}: can't process fields with count = {field.count}")
        base = DATATYPES[field.datatype]
        name = field.name or f"{DUMMY_FIELD_PREFIX}_{i}"
        for k in range(field.count):
            sub = f"{name}_{k}" if field.count > 1 else name
            _check(sub not in seen, f"duplicate field name {sub!r}")
            seen.add(sub)
            names.append(sub)
            formats.append(base.newbyteorder(byte_order))
            offsets.append(field.offset + k * base.itemsize)
    spec = {"names": names, "formats": formats, "offsets": offsets}
    if point_step is not None:
        spec["itemsize"] = point_step
    try:
        return np.dtype(spec)
    except ValueError as exc:  # overlapping fields or fields beyond point_step
        raise PointCloudError(f"fields do not fit point_step {point_step}: {exc}") from None


def read_points(cloud: PointCloud2, field_names: Iterable[str] | None = None, skip_nans: bool = False,
                uvs: Iterable[int] | None = None, reshape_organized_cloud: bool = False) -> np.ndarray:
    """The cloud's points as a structured array (native byte order) with the requested fields."""
    _check(isinstance(cloud, PointCloud2), "Cloud is not a sensor_msgs.msg.PointCloud2")    # upstream's capital
    stored = dtype_from_fields(cloud.fields, cloud.point_step, ">" if cloud.is_bigendian else "<")
    n, row_bytes = cloud.width * cloud.height, cloud.width * cloud.point_step
    row_step = max(cloud.row_step, row_bytes)
    if n and len(cloud.data) < row_step * (cloud.height - 1) + row_bytes:
        raise TruncatedCloudError(f"{len(cloud.data)} data bytes are too few for {cloud.height} rows of "
                                  f"{cloud.width} points (row_step {cloud.row_step}, point_step {cloud.point_step})")
    raw = np.frombuffer(cloud.data, dtype=np.uint8)
    if row_step == row_bytes or cloud.height <= 1:
        rows = raw[:n * cloud.point_step]
    else:  # drop the padding at the end of each row
        rows = np.lib.stride_tricks.as_strided(raw, (cloud.height, row_bytes), (row_step, 1))
    points = np.ascontiguousarray(rows).view(stored).reshape(n)
    if field_names is not None:
        field_names = list(field_names)
        missing = [name for name in field_names if name not in stored.names]
        _check(not missing, f"requested fields {missing} are not in the cloud's fields {list(stored.names)}")
        points = points[field_names]
    native = np.dtype({"names": list(points.dtype.names),
                       "formats": [points.dtype.fields[m][0].newbyteorder("=") for m in points.dtype.names],
                       "offsets": [points.dtype.fields[m][1] for m in points.dtype.names],
                       "itemsize": points.dtype.itemsize})
    points = points.astype(native)
    if skip_nans and not cloud.is_dense:
        keep = np.ones(len(points), dtype=bool)
        for name in points.dtype.names:
            keep &= ~np.isnan(points[name])
        points = points[keep]
    if uvs is not None:
        points = points[uvs if isinstance(uvs, np.ndarray) else np.fromiter(uvs, int)]
    if reshape_organized_cloud and cloud.height > 1:
        points = points.reshape(cloud.width, cloud.height)
    return points


def read_points_numpy(cloud: PointCloud2, field_names: Iterable[str] | None = None, skip_nans: bool = False,
                      uvs: Iterable[int] | None = None, reshape_organized_cloud: bool = False) -> np.ndarray:
    """The requested fields as one unstructured array (N x fields); they must share one datatype."""
    field_names = None if field_names is None else list(field_names)
    # as upstream: every requested field after the first of the cloud must have the datatype of the cloud's
    # first field (requested or not)
    _check(all(cloud.fields[0].datatype == f.datatype for f in cloud.fields[1:]
               if field_names is None or f.name in field_names),
           "All fields need to have the same datatype. Use `read_points()` otherwise.")
    return structured_to_unstructured(read_points(cloud, field_names, skip_nans, uvs, reshape_organized_cloud))


def read_points_list(cloud: PointCloud2, field_names: Iterable[str] | None = None, skip_nans: bool = False,
                     uvs: Iterable[int] | None = None) -> list:
    """The points as a list of ``Point`` namedtuples, one member per requested field."""
    _check(isinstance(cloud, PointCloud2), "cloud is not a sensor_msgs.msg.PointCloud2")
    field_names = [f.name for f in cloud.fields] if field_names is None else list(field_names)
    Point = namedtuple("Point", field_names)
    return [Point._make(p) for p in read_points(cloud, field_names, skip_nans, uvs)]


def create_cloud(header, fields: Iterable[PointField], points, point_step: int | None = None) -> PointCloud2:
    """A PointCloud2 of ``points``: a structured array matching ``fields``, an unstructured (N x values)
    or (width x height x values) array, or an iterable of per-point value sequences."""
    fields = list(fields)
    if isinstance(points, np.ndarray) and points.dtype.names is None:
        _check(all(f.datatype == fields[0].datatype for f in fields[1:]),
               "All fields need to have the same datatype. Pass a structured NumPy array with multiple "
               "dtypes otherwise.")
        points = unstructured_to_structured(points, dtype=dtype_from_fields(fields, point_step))
    elif isinstance(points, np.ndarray):
        step = points.dtype.itemsize if point_step is None else point_step
        _check(points.dtype == dtype_from_fields(fields, step),
               "PointFields and structured NumPy array dtype do not match for all fields! Check their "
               "field order, names, types and the point_step.")
    else:
        points = np.array([tuple(p) for p in points], dtype=dtype_from_fields(fields, point_step))
    _check(points.ndim <= 2, "Too many dimensions for organized cloud! Points can only be organized in max. two "
                             "dimensional space")
    width = points.shape[0]
    height = points.shape[1] if points.ndim == 2 else 1
    cloud = PointCloud2(header=header, height=height, width=width, is_dense=False,
                        is_bigendian=sys.byteorder != "little", fields=fields,
                        point_step=points.dtype.itemsize, row_step=points.dtype.itemsize * width)
    cloud.data = np.ascontiguousarray(points).tobytes()
    return cloud


XYZ32_FIELDS = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, name in enumerate("xyz")]


def create_cloud_xyz32(header, points) -> PointCloud2:
    """A PointCloud2 with float32 ``x``, ``y``, ``z`` fields."""
    return create_cloud(header, [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=1)
                                 for f in XYZ32_FIELDS], points)
