"""nuScenes radar ``.pcd`` files: the binary PCD v0.7 layout the dataset ships, read and written.

Layout of an official file (nuscenes-devkit ``RadarPointCloud.from_file`` docstring; byte layout checked
against the 39 RADAR_FRONT files of scene-0061, whose sha256 match the official v1.0-mini files):

* an ASCII header of 11 ``\\n``-terminated lines: a ``# .PCD v0.7 ...`` comment, ``VERSION 0.7``,
  ``FIELDS`` (the 18 names of :data:`RADAR_FIELDS`), ``SIZE``, ``TYPE``, ``COUNT``, ``WIDTH N``, ``HEIGHT 1``,
  ``VIEWPOINT 0 0 0 1 0 0 0``, ``POINTS N``, ``DATA binary``;
* N packed little-endian 43-byte records (``F`` = IEEE float, ``I`` = signed integer, ``U`` = unsigned);
* :data:`TRAILING_ZERO_BYTES` zero bytes, which every official radar file ends with.

A cloud without points is stored as one record whose float fields are NaN: the devkit reads "a NaN in the
first point" as an empty cloud (its ``WIDTH`` must be > 0), and so does :func:`read_radar_pcd`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from xdrcdepth_core.atomic import atomic_write_bytes
from xdrcdepth_core.data.sensor_file import read_sensor_file

#: The 18 radar fields in file order (nuscenes-devkit ``RadarPointCloud``; papers.md §6.2).
RADAR_FIELDS: tuple[str, ...] = (
    "x", "y", "z", "dyn_prop", "id", "rcs", "vx", "vy", "vx_comp", "vy_comp", "is_quality_valid",
    "ambig_state", "x_rms", "y_rms", "invalid_state", "pdh0", "vx_rms", "vy_rms")
#: Bytes per field, in :data:`RADAR_FIELDS` order.
RADAR_SIZES: tuple[int, ...] = (4, 4, 4, 1, 2, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1)
#: PCD type letter per field: ``F`` float, ``I`` signed integer.
RADAR_TYPES: tuple[str, ...] = ("F", "F", "F", "I", "I", "F", "F", "F", "F", "F",
                                "I", "I", "I", "I", "I", "I", "I", "I")
#: Zero bytes after the records in every official nuScenes radar file.
TRAILING_ZERO_BYTES = 3726

_HEADER_COMMENT = "# .PCD v0.7 - Point Cloud Data file format"
_NUMPY_TYPE = {("F", 2): "<f2", ("F", 4): "<f4", ("F", 8): "<f8",
               ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8",
               ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"}
_HEADER_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_MAX_HEADER_BYTES = 4096

RADAR_RECORD_DTYPE = np.dtype([(name, _NUMPY_TYPE[(t, s)])
                               for name, t, s in zip(RADAR_FIELDS, RADAR_TYPES, RADAR_SIZES)])


def _parse_header(raw: bytes, path: Path) -> tuple[dict[str, list[str]], int]:
    """Header keywords -> values, and the byte offset where the binary data starts."""
    header: dict[str, list[str]] = {}
    offset = 0
    while "DATA" not in header:
        end = raw.find(b"\n", offset, _MAX_HEADER_BYTES)
        if end < 0:
            raise ValueError(f"{path}: not a PCD file (no complete header ending in a DATA line)")
        try:
            line = raw[offset:end].decode("ascii").strip()
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a PCD file (binary bytes in the header)") from None
        offset = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        if key not in _HEADER_KEYS:
            raise ValueError(f"{path}: unknown PCD header line {line!r}")
        header[key] = values
    missing = [k for k in ("FIELDS", "SIZE", "TYPE", "WIDTH", "HEIGHT", "POINTS") if k not in header]
    if missing:
        raise ValueError(f"{path}: PCD header lacks {', '.join(missing)}")
    return header, offset


def _record_dtype(header: dict[str, list[str]], path: Path) -> np.dtype:
    names, sizes, types = header["FIELDS"], header["SIZE"], header["TYPE"]
    counts = header.get("COUNT", ["1"] * len(names))
    if not len(names) == len(sizes) == len(types) == len(counts):
        raise ValueError(f"{path}: PCD header FIELDS/SIZE/TYPE/COUNT have different lengths")
    if any(c != "1" for c in counts):
        raise ValueError(f"{path}: PCD fields with COUNT != 1 are not supported")
    try:
        return np.dtype([(n, _NUMPY_TYPE[(t, int(s))]) for n, t, s in zip(names, types, sizes)])
    except (KeyError, ValueError):
        raise ValueError(f"{path}: unsupported PCD SIZE/TYPE {sizes} / {types}") from None


def read_radar_pcd(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a binary nuScenes radar PCD: field name -> 1-D array (file dtype), all 18 :data:`RADAR_FIELDS`.

    Raises ``ValueError`` naming the file for a malformed header, a non-binary or truncated data block,
    or a file that lacks one of the radar fields; ``OSError`` if it cannot be read.
    """
    path = Path(path)
    raw = read_sensor_file(path)
    header, offset = _parse_header(raw, path)
    if header["DATA"] != ["binary"]:
        raise ValueError(f"{path}: PCD DATA {' '.join(header['DATA'])!r} is not supported (binary only)")
    dtype = _record_dtype(header, path)
    try:
        width, height, points = (int(header[k][0]) for k in ("WIDTH", "HEIGHT", "POINTS"))
    except (IndexError, ValueError):
        raise ValueError(f"{path}: PCD WIDTH/HEIGHT/POINTS are not integers") from None
    if width * height != points or points < 0:
        raise ValueError(f"{path}: PCD WIDTH x HEIGHT = {width} x {height} != POINTS {points}")
    missing = [f for f in RADAR_FIELDS if f not in dtype.names]
    if missing:
        raise ValueError(f"{path}: not a nuScenes radar PCD (lacks fields {', '.join(missing)})")
    need = points * dtype.itemsize
    if len(raw) - offset < need:
        raise ValueError(f"{path}: truncated PCD: {points} points need {need} data bytes, "
                         f"file has {len(raw) - offset}")
    records = np.frombuffer(raw, dtype=dtype, count=points, offset=offset)
    floats = [n for n in dtype.names if dtype[n].kind == "f"]
    if points and any(np.isnan(records[n][0]) for n in floats):
        records = records[:0]  # devkit convention: a NaN in the first point marks an empty cloud
    return {name: records[name].copy() for name in RADAR_FIELDS}


def _header_text(n_records: int) -> str:
    return "\n".join([
        _HEADER_COMMENT,
        "VERSION 0.7",
        "FIELDS " + " ".join(RADAR_FIELDS),
        "SIZE " + " ".join(map(str, RADAR_SIZES)),
        "TYPE " + " ".join(RADAR_TYPES),
        "COUNT " + " ".join("1" for _ in RADAR_FIELDS),
        f"WIDTH {n_records}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {n_records}",
        "DATA binary",
    ]) + "\n"


def radar_pcd_bytes(fields: Mapping[str, np.ndarray]) -> bytes:
    """The exact bytes of a nuScenes radar PCD holding ``fields`` (all 18 :data:`RADAR_FIELDS`, same length).

    Integer fields must hold integral values within their type's range; floats are stored as float32.
    """
    unknown = sorted(set(fields) - set(RADAR_FIELDS))
    missing = [f for f in RADAR_FIELDS if f not in fields]
    if unknown or missing:
        raise ValueError(f"radar PCD fields: missing {missing}, unknown {unknown}")
    columns = {name: np.asarray(fields[name]).reshape(-1) for name in RADAR_FIELDS}
    lengths = {len(c) for c in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"radar PCD fields have different lengths {sorted(lengths)}")
    n = lengths.pop()
    records = np.zeros(max(n, 1), dtype=RADAR_RECORD_DTYPE)
    if n == 0:
        for name in RADAR_FIELDS:
            if RADAR_RECORD_DTYPE[name].kind == "f":
                records[name] = np.nan
    for name, values in columns.items():
        target = RADAR_RECORD_DTYPE[name]
        if target.kind in "iu":
            info = np.iinfo(target)
            if values.size and (not np.all(np.isfinite(values)) or np.any(values != np.round(values))
                                or values.min() < info.min or values.max() > info.max):
                raise ValueError(f"radar PCD field {name!r} must hold integers in [{info.min}, {info.max}]")
        records[name][:n] = values
    return (_header_text(len(records)).encode("ascii") + records.tobytes()
            + bytes(TRAILING_ZERO_BYTES))


def write_radar_pcd(path: str | os.PathLike, fields: Mapping[str, np.ndarray]) -> None:
    """Write ``fields`` as a nuScenes radar PCD at ``path`` atomically (temp file + ``os.replace``)."""
    atomic_write_bytes(path, radar_pcd_bytes(fields))
