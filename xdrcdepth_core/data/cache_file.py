"""One ``xdrcdepth prepare`` cache file (``<token>.npz``) read as numpy arrays, checked, with bounded memory; and
:func:`save_npz`, which writes such files (prepare's samples, teacher-cache's maps).

Cache files are untrusted input to training, evaluation, export and teacher-cache: :func:`read_cache_file` names
the file for whatever makes it unusable (:func:`cache_sample_problem`) and reads no file whose arrays declare more
than :data:`MAX_CACHE_FILE_BYTES` (:func:`open_npz`). numpy only, so commands that merely look at
cache files (``prepare``'s resume check) start without torch.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

#: Most bytes the arrays of one cache file may declare. A 1600 x 900 sample with 8 radar channels and every map
#: is ~70 MB; an npy header is trusted by ``np.load``, which allocates the declared shape before reading it, so a
#: small (or zip-compressed) file declaring 28 GiB made the command fail in a MemoryError traceback, or be killed.
MAX_CACHE_FILE_BYTES = 1 << 30
#: the arrays a cache file must hold (:mod:`xdrcdepth_core.data.prepare`); at most MAX_CACHE_FILE_ARRAYS in all
REQUIRED_CACHE_KEYS = ("image", "radar", "radar_channels", "depth_gt", "K", "token")
MAX_CACHE_FILE_ARRAYS = 64
#: per-pixel maps of the image's size a cache file may hold: the ground truths
DEPTH_MAP_KEYS = ("depth_gt", "depth_gt_single", "depth_exact")
#: numpy dtype kinds of real numbers (bool, int, uint, float): what can be cast to float32 meaningfully
REAL_DTYPE_KINDS = "biuf"


def declared_array_bytes(archive: zipfile.ZipFile) -> int:
    """The bytes the ``.npy`` members of an open ``.npz`` archive declare (shape x item size, from their headers,
    no data read); ``ValueError`` if that exceeds :data:`MAX_CACHE_FILE_BYTES` or there are over
    :data:`MAX_CACHE_FILE_ARRAYS` members."""
    fmt = np.lib.format
    total = 0
    members = archive.infolist()
    if len(members) > MAX_CACHE_FILE_ARRAYS:
        raise ValueError(f"{len(members)} arrays, more than the {MAX_CACHE_FILE_ARRAYS} a cache file has")
    for member in members:
        with archive.open(member) as f:
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
        total += math.prod(shape) * dtype.itemsize
        if total > MAX_CACHE_FILE_BYTES:
            raise ValueError(f"its arrays declare more than {MAX_CACHE_FILE_BYTES >> 20} MiB (member "
                             f"{member.filename}: {' x '.join(map(str, shape))} {dtype}); not a cache file")
    return total


def open_npz(path: str | Path) -> np.lib.npyio.NpzFile:
    """``np.load`` of an ``.npz`` (lazy: only the zip directory is read), whose members' headers declare at most
    :data:`MAX_CACHE_FILE_BYTES` (:func:`declared_array_bytes`); ``ValueError`` for an ``.npy`` or a bigger one.
    Use it as a context manager, as ``np.load``'s result."""
    npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError("a single .npy array, not an .npz archive")
    try:
        declared_array_bytes(npz.zip)
    except BaseException:
        npz.close()
        raise
    return npz


def load_npz_arrays(path: str | Path) -> dict:
    """Every array of an ``.npz`` file, memory bounded by :func:`open_npz`."""
    with open_npz(path) as npz:
        return {key: npz[key] for key in npz.files}


def finite_as_float32(array: np.ndarray) -> bool:
    """Whether every value of a real-number array is finite once cast to float32 (what the networks take)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array.astype(np.float32, copy=False)).all())


def describe_array(array: np.ndarray) -> str:
    """``3 x 2 x 2 uint8``: an array's shape and dtype, for messages."""
    return (" x ".join(str(n) for n in array.shape) + f" {array.dtype}") if array.ndim else f"a scalar {array.dtype}"


def cache_sample_problem(arrays: dict) -> str | None:
    """What makes the arrays of a cache file unusable, or None.

    Cache files are untrusted: a wrong shape or type would otherwise fail deep in preprocessing, training or
    the metrics, in words that do not say which file (the caller names it), and a NaN in the radar raster makes
    the model's depth NaN, which the metrics would score as a plausible number (and training skip every step).
    Checked: ``image`` H x W x 3 uint8; ``radar_channels`` a list of names; ``radar`` C x H x W real numbers,
    finite as float32 (what the model takes), one plane per radar channel; each depth map present
    (:data:`DEPTH_MAP_KEYS`) H x W real numbers, finite (a NaN ground truth made every batch holding it a
    skipped step, and a NaN-only val set "no validation", without a word); ``K`` 3 x 3 real numbers; ``boxes``
    rows of 7 real numbers."""
    image, radar, channels = arrays["image"], arrays["radar"], arrays["radar_channels"]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or not image.size:
        return f"image is {describe_array(image)}, expected H x W x 3 uint8 RGB"
    if channels.ndim != 1 or channels.dtype.kind not in "US" or not channels.size:
        return f"radar_channels is {describe_array(channels)}, expected a list of channel names"
    hw = image.shape[:2]
    if radar.shape != (len(channels), *hw) or radar.dtype.kind not in REAL_DTYPE_KINDS:
        return (f"radar is {describe_array(radar)}, expected {len(channels)} x {hw[0]} x {hw[1]} "
                f"float32 (one plane per radar channel at the image size)")
    if not finite_as_float32(radar):
        return "radar holds NaN or infinite values (as float32)"
    for key in DEPTH_MAP_KEYS:
        if key in arrays and (arrays[key].shape != hw or arrays[key].dtype.kind not in REAL_DTYPE_KINDS):
            return f"{key} is {describe_array(arrays[key])}, expected {hw[0]} x {hw[1]} float32 (the image size)"
        if key in arrays and not finite_as_float32(arrays[key]):   # 0 is "no ground truth"; NaN was skipped steps
            return f"{key} holds NaN or infinite values (as float32; 0 marks a pixel without ground truth)"
    if arrays["K"].shape != (3, 3) or arrays["K"].dtype.kind not in REAL_DTYPE_KINDS:
        return f"K is {describe_array(arrays['K'])}, expected 3 x 3 float"
    if "boxes" in arrays and (arrays["boxes"].size % 7 or arrays["boxes"].dtype.kind not in REAL_DTYPE_KINDS):
        return f"boxes is {describe_array(arrays['boxes'])}, expected N x 7 float32"
    return None


def read_cache_file(path: str | Path) -> dict:
    """The arrays of one cache file as a sample dict, checked (:func:`cache_sample_problem`, memory bounded by
    :func:`open_npz`); ``ValueError`` naming the file if it cannot be read or used."""
    try:
        arrays = load_npz_arrays(path)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: cannot read cache file ({exc})") from None
    missing = set(REQUIRED_CACHE_KEYS) - set(arrays)
    if missing:
        raise ValueError(f"{path}: cache file lacks {sorted(missing)}")
    problem = cache_sample_problem(arrays)
    if problem:
        raise ValueError(f"{path}: {problem}")
    arrays["token"] = str(arrays["token"])
    arrays["radar_channels"] = [str(c) for c in arrays["radar_channels"]]
    return arrays


def save_npz(file, arrays: dict[str, np.ndarray], level: int | None) -> None:
    """``np.savez_compressed`` with a chosen zlib level, or ``np.savez`` for ``level=None`` (same file format;
    no pickled objects). Unlike numpy's, the archive is closed when a write fails (a full disk): numpy's left
    it to the garbage collector, which then wrote 'Exception ignored ... seek of closed file' on stderr."""
    compression = zipfile.ZIP_STORED if level is None else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(file, "w", compression=compression, compresslevel=level) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
