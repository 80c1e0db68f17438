"""``DepthEstimator``: the one-call inference API shared by evaluation, the demo and the ROS node.

``estimate(image, radars, K)`` turns an RGB image, raw radar points (each cloud with its own
radar->camera transform) and intrinsics into a dense metric depth map at the input resolution::

    radar points --T_cam_from_radar--> camera frame --rasterize_radar(K)--> C x H x W raster
    image, raster --preprocess (resize to input_hw, normalise)--> model --> depth (h x w)
    depth --bilinear resize--> H x W float32 metres along the optical axis

Rasterisation and preprocessing are the same functions ``xdrcdepth prepare`` and training use, so a
frame from a cache and the same frame from live messages give the same depth. ``estimate`` takes a shortcut
with the same result: the radar points go straight to the model's input raster (the nearest return per
full-resolution pixel, then :func:`~xdrcdepth_core.data.radar.resize_sparse`'s rule on those winners), so no
full-resolution C x H x W raster is allocated (tested equal, bit for bit, to rasterise + resize).

The forward pass runs on an inference backend (:mod:`xdrcdepth_core.backends`): ``backend="torch",
precision="fp32"`` is the eager reference path; ``"auto"`` picks the fastest backend that passes the parity
check against it (see :mod:`xdrcdepth_core.backends.auto` for what it considers and when it may export);
``onnxruntime``/``openvino``/``tensorrt`` by name. Saliency (Grad-CAM) always runs the eager fp32 model, whose
depth then comes with it.
"""

from __future__ import annotations

import logging
import numbers
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xdrcdepth_core.backends.base import check_precision
from xdrcdepth_core.checkpoint import build_from_checkpoint, file_digest, input_hw_problem, load_checkpoint
from xdrcdepth_core.data.geometry import pinhole_intrinsics_valid
from xdrcdepth_core.data.radar import DEFAULT_CHANNELS, RadarPoints, rasterize_radar
from xdrcdepth_core.data.radar_channels import radar_channels_problem
from xdrcdepth_core.device import resolve_device
from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS
from xdrcdepth_core.models import build_model
from xdrcdepth_core.preprocess import (RADAR_CHANNEL_SCALES, check_image, depth_to_input_resolution,
                                       image_to_tensor, radar_to_tensor)
from xdrcdepth_core.saliency import grad_cam

LOG = logging.getLogger(__name__)

#: Checkpoint shipped inside the package (used when no path is given); absent until trained.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "xdrcdepth_student.pt"
DEFAULT_INPUT_HW = (352, 704)
#: ``project_points``' default: points at z <= 0.1 m are behind (or at) the camera
PROJECT_MIN_DEPTH = 0.1
UNTRAINED_SEED = 0
#: Largest frame (width x height) :meth:`DepthEstimator.estimate` takes by default: the depth node's
#: ``max_image_pixels`` default (4096 x 4096, every real camera fits). A frame costs ~16 bytes per pixel in
#: float copies and the depth map, so a 30000 x 30000 view of one pixel (no memory itself) took 13 GB (measured).
MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS
#: Largest magnitude a float32 raster holds: a finite float64 beyond it (a depth or rcs of 1e300) would be inf
#: in the raster and NaN in every output pixel
FLOAT32_MAX = float(np.finfo(np.float32).max)


def untrained_model(name: str) -> torch.nn.Module:
    """Registered model ``name`` with seeded untrained weights (:data:`UNTRAINED_SEED`; the global RNG is left
    as it was): what runs when no checkpoint is given and none is shipped, and what the benchmark times for
    models the package holds no weights for."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return build_model(name)


def stable_argsort_nonnegative(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for non-negative integers, as an LSD radix sort over 16-bit digits
    (numpy sorts uint16 stably by radix): the same permutation (a stable sort is unique), ~4x faster for pixel
    indices of a 1600 x 900 image (two digits)."""
    key = np.asarray(key, dtype=np.int64)
    order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    key = key >> 16
    while key.any():
        order = order[np.argsort((key[order] & 0xFFFF).astype(np.uint16), kind="stable")]
        key = key >> 16
    return order


def nearest_in_groups(pixel: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The indices :func:`~xdrcdepth_core.data.radar.nearest_per_pixel` returns (per pixel the smallest depth,
    ties to the earlier entry, in ascending pixel order), with one stable radix sort of ``pixel`` instead of two
    comparison sorts (group minima by ``reduceat``): linear in the entries."""
    n = len(pixel)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = stable_argsort_nonnegative(pixel)
    sorted_pixel, sorted_depth = pixel[order], depth[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_pixel[1:] != sorted_pixel[:-1])))
    minima = np.repeat(np.minimum.reduceat(sorted_depth, starts), np.diff(np.append(starts, n)))
    first = np.minimum.reduceat(np.where(sorted_depth == minima, np.arange(n), n), starts)
    return order[first]


@dataclass
class RadarInput:
    """One radar cloud: points in its own frame, per-point fields by name, and its pose in the camera."""

    xyz: np.ndarray
    features: dict = field(default_factory=dict)
    T_cam_from_radar: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass
class DepthResult:
    depth: np.ndarray                       # H x W float32 metres (optical z), input resolution
    saliency: np.ndarray | None = None      # H x W float32 in [0, 1]
    timings: dict = field(default_factory=dict)


def real_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 array, or a ``TypeError`` naming the argument ``name`` for anything but real
    numbers (None, strings, complex, booleans, ragged lists), instead of numpy's message from deep inside."""
    return real_numbers(value, name).astype(np.float64, copy=False)


def real_numbers(value, name: str) -> np.ndarray:
    """:func:`real_array` without the cast: an array of ints or floats as it is (a float32 raster stays float32,
    no float64 copy of it)."""
    try:
        array = np.asarray(value)
    except ValueError as exc:                     # a ragged nested list
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__} "
                        f"of dtype {array.dtype}")
    return array


def check_intrinsics(K) -> np.ndarray:
    """``K`` as a float64 3 x 3 pinhole matrix, or a ``ValueError`` naming it: finite, focal lengths > 0 and
    last row (0, 0, 1). A NaN or non-positive focal length would project every radar point off the image (or
    mirror it), a silently radar-less depth."""
    K = real_array(K, "K")
    if K.shape != (3, 3):
        raise ValueError(f"K must be a 3 x 3 intrinsics matrix, got shape {K.shape}")
    if not pinhole_intrinsics_valid(K):
        raise ValueError(f"K must be finite with fx, fy > 0 and last row 0 0 1, got {K.tolist()}")
    return K


def check_radars(radars, fields: tuple[str, ...]) -> list["RadarInput"]:
    """``radars`` checked as a list of :class:`RadarInput`: ``xyz`` N x 3 real (or empty), each of ``fields``
    it carries 1-D of length N, ``T_cam_from_radar`` a finite 4 x 4 with last row 0 0 0 1. A ``ValueError``
    or ``TypeError`` names the bad one (``radars[1].xyz``): a 3 x N array would otherwise be read as N x 3
    points and a feature of another length misassigned, both silently wrong depths."""
    if not isinstance(radars, (list, tuple)) or not all(isinstance(r, RadarInput) for r in radars):
        raise TypeError(f"radars must be a list of RadarInput, got {type(radars).__name__}"
                        + (f" holding {', '.join(sorted({type(r).__name__ for r in radars}))}"
                           if isinstance(radars, (list, tuple)) else ""))
    checked = []
    for i, radar in enumerate(radars):
        name = f"radars[{i}]"
        xyz = real_array(radar.xyz, f"{name}.xyz")
        if xyz.size == 0:
            xyz = xyz.reshape(0, 3)
        elif xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ValueError(f"{name}.xyz must be N x 3 points, got shape {xyz.shape}")
        if not isinstance(radar.features, Mapping):
            raise TypeError(f"{name}.features must be a mapping of field name to values, got "
                            f"{type(radar.features).__name__}")
        features = {}
        for field_name in fields:
            if field_name in radar.features:
                values = real_array(radar.features[field_name], f"{name}.features[{field_name!r}]")
                if values.shape != (len(xyz),):
                    raise ValueError(f"{name}.features[{field_name!r}] must hold one value per point "
                                     f"({len(xyz)}), got shape {values.shape}")
                features[field_name] = values
        T = real_array(radar.T_cam_from_radar, f"{name}.T_cam_from_radar")
        if T.shape != (4, 4):
            raise ValueError(f"{name}.T_cam_from_radar must be a 4 x 4 transform, got shape {T.shape}")
        if not np.isfinite(T).all() or not np.allclose(T[3], (0, 0, 0, 1), rtol=0, atol=1e-9):
            raise ValueError(f"{name}.T_cam_from_radar must be finite with last row 0 0 0 1, got {T.tolist()}")
        checked.append(RadarInput(xyz, features, T))
    return checked


def check_saliency(saliency) -> None:
    """``TypeError`` unless ``saliency`` is a bool: a string such as ``"no"`` would be true and cost a backward
    pass."""
    check_bool(saliency, "saliency")


def check_bool(value, name: str) -> None:
    """``TypeError`` naming ``name`` unless ``value`` is a bool (a string such as ``"no"`` would be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def in_float32_range(values: np.ndarray) -> np.ndarray:
    """Where ``values`` are finite and fit a float32 (NaN and +-inf compare false): what a float32 raster can
    hold without turning it into inf."""
    return np.abs(values) <= FLOAT32_MAX


def check_image_hw(image_hw, max_pixels: int) -> tuple[int, int]:
    """``image_hw`` as two positive ints (H, W) with at most ``max_pixels`` pixels, or a ``ValueError`` naming
    it: numpy's "negative dimensions" or a many-gigabyte raster otherwise."""
    try:
        pair = not isinstance(image_hw, (str, bytes)) and np.shape(image_hw) == (2,)
    except ValueError:                            # a ragged nested list
        pair = False
    if not pair or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in image_hw):
        raise ValueError(f"image_hw must be two positive integers (height, width), got {image_hw!r}")
    h, w = int(image_hw[0]), int(image_hw[1])
    check_pixels(h, w, max_pixels, "image_hw")
    return h, w


def check_pixels(h: int, w: int, max_pixels: int, name: str) -> None:
    """``ValueError`` naming ``name`` if an H x W frame has more than ``max_pixels`` pixels, before anything of
    that size is allocated."""
    if h * w > max_pixels:
        raise ValueError(f"{name} of {h} x {w} = {h * w} pixels is more than max_image_pixels {max_pixels}")


def check_radar_raster(raster, image_hw: tuple[int, int], channels: tuple[str, ...]) -> np.ndarray:
    """``raster`` as a real C x H x W array at the image's H x W with one plane per channel, finite, depth (channel
    0) >= 0, or a ``TypeError``/``ValueError`` naming ``radar_raster``. A NaN or inf at a return reached every
    output pixel through the convolutions (a NaN depth map returned as if fine); a negative depth is no return
    and no empty pixel either, and was fed to the network only when the raster needed no resize."""
    raster = real_numbers(raster, "radar_raster")
    if raster.ndim != 3 or raster.shape[1:] != tuple(image_hw) or raster.shape[0] != len(channels):
        raise ValueError(f"radar_raster must be C x H x W at the image's {image_hw[0]} x {image_hw[1]} with C = "
                         f"{len(channels)} ({', '.join(channels)}), got shape {raster.shape}")
    if not in_float32_range(raster).all():
        raise ValueError("radar_raster must be finite (and fit a float32); it holds NaN, inf or a value beyond "
                         "+-3.4e38")
    if (raster[0] < 0).any():
        raise ValueError("radar_raster channel 0 is depth in metres (0 = no return) and must be >= 0; it holds "
                         f"{raster[0].min()}")
    return raster


class DepthEstimator:
    """A model plus everything needed to run it on raw sensor data.

    One estimator runs one frame at a time: :meth:`estimate` and :meth:`estimate_raster` hold a lock while they
    use its radar buffer and its backend (OpenVINO's one infer request, for one), so threads may share it and
    each gets the answer its call would get alone (without the lock they read each other's radar: a black-box
    run); for frames in parallel, make one estimator per thread."""

    def __init__(self, model: torch.nn.Module, input_hw=DEFAULT_INPUT_HW,
                 radar_channels=DEFAULT_CHANNELS, device: str = "auto", model_id: str | None = None,
                 backend: str = "auto", precision: str | None = None, *, weights_sha: str | None = None,
                 allow_export: bool = False, backend_options: dict | None = None, trained: bool = False,
                 max_image_pixels: int = MAX_IMAGE_PIXELS):
        """``backend``: auto | torch | onnxruntime | openvino | tensorrt; ``precision``: fp32 | bf16 | fp16 |
        int8, None = the backend's best that passes parity. ``auto`` here considers graphs already exported
        for these weights unless ``allow_export`` (the node and ``xdrcdepth bench`` allow it);
        ``weights_sha`` (a checkpoint's ``weights_sha256``) saves hashing the weights to find them.
        ``backend_options``: torch backend options (channels_last, compile, cuda_graphs). ``trained``: the
        weights are trained (``from_checkpoint`` sets it), so reduced precisions are gated by their MAE change
        on ground truth alone (:mod:`xdrcdepth_core.backends.parity`). ``max_image_pixels``: the largest frame
        (and network input) taken, width x height; a larger one is a ``ValueError`` before any work (default
        :data:`MAX_IMAGE_PIXELS`, the depth node's default)."""
        if not isinstance(model, torch.nn.Module):   # a path or None: "'str' object has no attribute 'to'"
            raise TypeError(f"model must be a torch.nn.Module (DepthEstimator.from_checkpoint loads one from a "
                            f"file), got {type(model).__name__}")
        check_bool(allow_export, "allow_export")      # "no" would be true: a minute-long export nobody asked for
        if (not isinstance(max_image_pixels, numbers.Integral) or isinstance(max_image_pixels, bool)
                or max_image_pixels < 1):
            raise ValueError(f"max_image_pixels must be a positive integer, got {max_image_pixels!r}")
        self.max_image_pixels = int(max_image_pixels)
        self.device = str(resolve_device(device))
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        problem = input_hw_problem(input_hw) or radar_channels_problem(radar_channels)
        if problem:
            raise ValueError(problem)
        if len(radar_channels) != model.radar_channels:
            raise ValueError(f"{len(radar_channels)} radar_channels {list(radar_channels)} for a model that "
                             f"takes {model.radar_channels}")
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        check_pixels(*self.input_hw, self.max_image_pixels, "input_hw")   # its buffers are made per frame
        self.radar_channels = tuple(radar_channels)
        self.max_depth = float(model.max_depth)
        self.model_id = model_id or f"{model.name}@untrained"
        self.weights_sha = weights_sha
        self.trained = bool(trained)
        check_precision(precision)
        self.backend = self._make_backend(backend, precision, allow_export, backend_options)
        self._scales = np.array([RADAR_CHANNEL_SCALES.get(c, 1.0) for c in self.radar_channels], dtype=np.float32)
        self._radar_buffer: np.ndarray | None = None   # estimate()'s reusable radar input (one frame at a time)
        self._one_frame_at_a_time = threading.Lock()

    def _make_backend(self, backend: str, precision: str | None, allow_export: bool, options: dict | None):
        from xdrcdepth_core.backends import ParityTolerance, create_backend, select_backend
        from xdrcdepth_core.backends.torch_backend import TorchBackend, check_options

        options = check_options(options)
        if backend == "torch" and precision == "fp32" and not options:
            runner = TorchBackend(self.model, self.device, "fp32")   # the reference: no frames, no checks
            runner.parity = None
            return runner
        tolerance = ParityTolerance(trained=self.trained)
        if backend in ("auto", "", None):
            if options:
                raise ValueError("backend_options need an explicit backend ('torch')")
            return select_backend(self.model, self.input_hw, self.radar_channels, self.device, precision,
                                  weights_sha=self.weights_sha, allow_export=allow_export, tolerance=tolerance)
        return create_backend(backend, self.model, self.input_hw, self.radar_channels, self.device, precision,
                              weights_sha=self.weights_sha, options=options, tolerance=tolerance)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def precision(self) -> str:
        return self.backend.precision

    @property
    def radar_fields(self) -> tuple[str, ...]:
        """Point fields the model uses besides x, y, z (the non-depth raster channels)."""
        return tuple(c for c in self.radar_channels if c != "depth")

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto", backend: str = "auto",
                        precision: str | None = None, allow_export: bool = False,
                        backend_options: dict | None = None, input_hw=None,
                        max_image_pixels: int = MAX_IMAGE_PIXELS) -> "DepthEstimator":
        """Rebuild from a self-describing checkpoint; ``None``/``""`` -> shipped checkpoint, else an
        untrained (seeded, deterministic) default student with a loud warning. ``backend``, ``precision``,
        ``allow_export`` and ``backend_options`` as in the constructor; ``input_hw``: run the network at this
        size instead of the one it was trained at (None; the benchmark times the node at the frame size);
        ``max_image_pixels`` as in the constructor."""
        if path is not None and not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a checkpoint file name (str or Path) or None, got {type(path).__name__}")
        kwargs = dict(device=device, backend=backend, precision=precision, allow_export=allow_export,
                      backend_options=backend_options, max_image_pixels=max_image_pixels)
        if not path:
            if SHIPPED_CHECKPOINT.is_file():
                path = SHIPPED_CHECKPOINT
            else:
                LOG.warning("NO TRAINED CHECKPOINT: running an UNTRAINED xdrcdepth student (seed %d). "
                            "Depth values are meaningless until you pass a trained checkpoint.",
                            UNTRAINED_SEED)
                return cls(untrained_model("xdrcdepth"), input_hw=input_hw or DEFAULT_INPUT_HW, **kwargs)
        ckpt = load_checkpoint(path)
        model = build_from_checkpoint(ckpt, path)
        return cls(model, input_hw=input_hw or ckpt["input_hw"], radar_channels=ckpt["radar_channels"],
                   model_id=f"{ckpt['model_name']}@{file_digest(path)}", weights_sha=ckpt["weights_sha256"],
                   trained=True, **kwargs)

    def rasterize(self, image_hw: tuple[int, int], radars: list[RadarInput], K: np.ndarray) -> np.ndarray:
        """Merge all radar clouds, each moved into the camera by its own transform, into one
        C x H x W raster at the image resolution (missing per-point fields rasterise as 0; a point with a NaN/inf
        coordinate or feature, or one beyond float32's range, is left out). ``image_hw`` is checked as
        :meth:`estimate` checks the image: at most ``max_image_pixels``."""
        image_hw = check_image_hw(image_hw, self.max_image_pixels)
        K = check_intrinsics(K)
        merged = self._merged_points(radars)
        return rasterize_radar(merged.xyz, merged.fields, K, image_hw, self.radar_channels)

    def _merged_points(self, radars: list[RadarInput]) -> RadarPoints:
        clouds = []
        for radar in check_radars(radars, self.radar_fields):
            xyz = radar.xyz
            fields = {name: radar.features.get(name, np.zeros(len(xyz))) for name in self.radar_fields}
            # a point with a NaN/inf feature is left out: the value would spread through the network to every
            # pixel. So is one whose value a float32 raster cannot hold (a depth or rcs of 1e300 is inf there),
            # judged in the camera frame, where its depth is (a huge transform makes a small point huge).
            with np.errstate(over="ignore", invalid="ignore"):
                points = RadarPoints(xyz, fields).transformed(radar.T_cam_from_radar)
            keep = in_float32_range(points.xyz).all(axis=1)      # NaN/inf in xyz stay NaN/inf here
            for values in fields.values():
                keep &= in_float32_range(values)
            clouds.append(points if keep.all() else points.select(keep))
        return clouds[0] if len(clouds) == 1 else RadarPoints.concatenate(clouds)

    def radar_input(self, image_hw: tuple[int, int], radars: list[RadarInput], K: np.ndarray) -> np.ndarray:
        """The model's radar input (C x h x w float32 at ``input_hw``, channels scaled) straight from the points
        (see :meth:`radar_input_into`); a new array."""
        out = np.zeros((len(self.radar_channels), *self.input_hw), dtype=np.float32)
        self.radar_input_into(out, image_hw, radars, K)
        return out

    def radar_input_into(self, out: np.ndarray, image_hw: tuple[int, int], radars: list[RadarInput],
                         K: np.ndarray) -> np.ndarray:
        """Write the model's radar input into ``out`` (C x h x w float32 at ``input_hw``, all zero) and return
        the flat pixel indices written (zeroing ``out[:, pixels]`` makes it reusable: :meth:`estimate` keeps one
        such buffer, so a frame touches no fresh 4 MB array).

        Equal, bit for bit, to ``radar_to_tensor(self.rasterize(image_hw, radars, K), ...)`` (tested): the nearest
        return wins each image pixel (float64 depths, ties to the earlier point), the winners are stored as
        float32, and when the input size differs they move to the input raster as ``resize_sparse`` moves
        raster pixels (pixel centres scaled, nearest float32 depth wins, ties to the earlier pixel in row-major
        order); each value is divided by its channel scale as ``radar_to_tensor`` does. No C x H x W raster is
        made: one sort of the points' pixel indices, one of the (nearly sorted) winners, linear passes else.
        """
        h, w = check_image_hw(image_hw, self.max_image_pixels)
        K = check_intrinsics(K)
        merged = self._merged_points(radars)
        # project_points' arithmetic (same matmul and division), with the rounded pixel computed once
        xyz = merged.xyz
        front = np.flatnonzero(np.isfinite(xyz).all(axis=1) & (xyz[:, 2] > PROJECT_MIN_DEPTH))
        uvw = xyz[front] @ K.T
        uv = uvw[:, :2] / uvw[:, 2:3]
        cols, rows = np.floor(uv[:, 0] + 0.5), np.floor(uv[:, 1] + 0.5)
        inside = np.flatnonzero((cols >= 0) & (cols < w) & (rows >= 0) & (rows < h))
        pixel = rows[inside].astype(np.int64) * w + cols[inside].astype(np.int64)
        depth = xyz[front[inside], 2]
        winners = nearest_in_groups(pixel, depth)                 # ascending pixel = row-major order
        source = front[inside[winners]]                           # the winners' indices in ``merged``
        values = np.zeros((len(self.radar_channels), len(winners)), dtype=np.float32)
        for c, name in enumerate(self.radar_channels):
            if name == "depth":
                values[c] = depth[winners]
            elif name in merged.fields:
                values[c] = merged.fields[name][source]
        pixel = pixel[winners]
        dst_h, dst_w = self.input_hw
        if (h, w) != self.input_hw:
            nonzero = values[0] > 0                                # resize_sparse moves the pixels with depth > 0
            src_rows, src_cols = np.divmod(pixel[nonzero], w)
            pixel = (np.floor((src_rows + 0.5) * (dst_h / h)).astype(np.int64) * dst_w
                     + np.floor((src_cols + 0.5) * (dst_w / w)).astype(np.int64))
            values = values[:, nonzero]
            moved = nearest_in_groups(pixel, values[0])
            pixel, values = pixel[moved], values[:, moved]
        out.reshape(len(self.radar_channels), dst_h * dst_w)[:, pixel] = values / self._scales[:, None]
        return pixel

    def estimate(self, image: np.ndarray, radars: list[RadarInput], K: np.ndarray,
                 saliency: bool = False) -> DepthResult:
        """Dense metric depth for one frame from raw radar points.

        ``image`` H x W x 3 uint8 RGB (any strides, read-only is fine), ``radars`` a list of
        :class:`RadarInput` (may be empty), ``K`` its 3 x 3 intrinsics, ``saliency`` a bool. Malformed input is
        a ``ValueError``/``TypeError`` naming the argument, before any work; so is an image of more than
        ``max_image_pixels`` pixels (a broadcast view costs nothing itself, its float copy gigabytes)."""
        t0 = time.perf_counter()
        check_image(image)
        check_pixels(*image.shape[:2], self.max_image_pixels, "image")
        check_saliency(saliency)
        with self._one_frame_at_a_time:
            buffer = self._radar_buffer
            if buffer is None:
                buffer = self._radar_buffer = np.zeros((len(self.radar_channels), *self.input_hw), dtype=np.float32)
            written = self.radar_input_into(buffer, image.shape[:2], radars, K)
            try:
                radar_t = torch.from_numpy(buffer)[None].to(self.device)
                t1 = time.perf_counter()
                result = self._estimate(image, radar_t, saliency)
            finally:
                buffer.reshape(len(self.radar_channels), -1)[:, written] = 0.0   # all zero again for the next frame
        result.timings = {"rasterize": t1 - t0, **result.timings}
        return result

    def estimate_raster(self, image: np.ndarray, radar_raster: np.ndarray,
                        saliency: bool = False) -> DepthResult:
        """Dense metric depth for one frame whose radar is already rasterised at the image size (C x H x W, raw
        units, channel 0 depth in metres, 0 = no return; :func:`check_radar_raster` says what is refused). The
        image is checked as in :meth:`estimate`."""
        t0 = time.perf_counter()
        check_image(image)
        check_pixels(*image.shape[:2], self.max_image_pixels, "image")
        check_saliency(saliency)
        radar_raster = check_radar_raster(radar_raster, image.shape[:2], self.radar_channels)
        radar_t = radar_to_tensor(radar_raster, self.radar_channels, self.input_hw)[None].to(self.device)
        with self._one_frame_at_a_time:
            result = self._estimate(image, radar_t, saliency)
        result.timings["preprocess"] += time.perf_counter() - t0
        return result

    def _estimate(self, image: np.ndarray, radar_t: torch.Tensor, saliency: bool) -> DepthResult:
        timings = {}
        t0 = time.perf_counter()
        image_t = image_to_tensor(image, self.input_hw)[None].to(self.device)
        t1 = time.perf_counter()
        timings["preprocess"] = t1 - t0
        cam = None
        if saliency:
            with torch.enable_grad():
                image_t.requires_grad_(True)  # gives the graph a leaf so features carry gradients
                outputs = self.model(image_t, radar_t)
                cam = grad_cam(outputs)
            depth = outputs["depth"].detach()
        else:
            depth = self.backend(image_t, radar_t)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        timings["forward"] = t2 - t1
        out_hw = image.shape[:2]
        depth_np = depth_to_input_resolution(depth, out_hw)[0, 0].float().cpu().numpy()
        cam_np = None if cam is None else depth_to_input_resolution(cam, out_hw)[0, 0].float().cpu().numpy()
        timings["postprocess"] = time.perf_counter() - t2
        return DepthResult(depth=depth_np.astype(np.float32, copy=False), saliency=cam_np, timings=timings)
