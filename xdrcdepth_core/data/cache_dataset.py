"""Training/evaluation samples from a ``xdrcdepth prepare`` cache folder, as torch tensors.

:class:`CacheDataset` reads the ``.npz`` files of a folder (sorted by name) and returns per sample, in the batch
layout of the shared contract without the batch dimension:

* ``image`` 3 x H x W ImageNet-normalised (:func:`xdrcdepth_core.preprocess.image_to_tensor`);
* ``radar`` C x H x W scaled (:func:`~xdrcdepth_core.preprocess.radar_to_tensor`), ``radar_raw`` unscaled,
  ``radar_channels`` (list of C names);
* ``depth_gt`` 1 x H x W (m, 0 = none); ``depth_gt_single`` 1 x H x W when the cache has it;
* ``radar_confidence_gt`` 1 x H x W float: 1 positive, 0 negative, -1 ignore (cache: 1 / 0 / 255);
* ``boxes`` ``max_boxes`` x 7 float and ``boxes_valid`` ``max_boxes`` bool (rows beyond the cached boxes are 0 and
  invalid; with more boxes than ``max_boxes`` the nearest are kept);
* ``depth_exact`` 1 x H x W when the cache has it;
* ``K`` 3 x 3 float32 of the returned image, ``token`` (str), ``index`` (int).

When ``input_hw`` differs from the cached size the sample is resized with
:class:`~xdrcdepth_core.data.sample_transforms.Resize` first (cost per sample; ``prepare --resize`` avoids it).

Augmentation (``augment`` dict, training only): ``hflip: p`` mirrors the sample with probability p
(:func:`hflip_sample`); ``color: s`` multiplies brightness, contrast and saturation by factors drawn uniformly
from ``[1 - s, 1 + s]`` (CaFNet draws its brightness/colour factors from 0.9-1.1, i.e. s = 0.1), on the image in
[0, 1] before normalisation, clipped to [0, 1]. Randomness is drawn from a ``torch.Generator`` seeded with
``(seed, epoch, index)``, so a sample's augmentation depends neither on the worker that loads it nor on the
order; call :meth:`CacheDataset.set_epoch` before each epoch (with ``persistent_workers`` the workers keep the
epoch they were started with).

``extra`` (``index -> dict``) adds per-sample maps supplied elsewhere (e.g. teacher-cache maps); they are merged
into the sample before augmentation and flipped with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from xdrcdepth_core.preprocess import IMAGENET_MEAN, IMAGENET_STD, image_to_tensor, radar_to_tensor

from .cache_file import read_cache_file
from .radar_confidence import IGNORE
from .sample_transforms import Resize

#: Keys of a sample whose tensors are not maps with the width last (handled specially by :func:`hflip_sample`).
NON_MAP_KEYS: frozenset[str] = frozenset({"K", "boxes", "boxes_valid", "index", "token", "radar_channels"})
#: Radar raster channels holding a lateral (ego y, left) velocity, negated by a horizontal flip.
LATERAL_VELOCITY_CHANNELS: frozenset[str] = frozenset({"vy", "vy_comp"})
DEFAULT_MAX_BOXES = 64


def hflip_sample(sample: dict, negate_lateral_velocity: bool = True) -> dict:
    """The sample mirrored left-right.

    Every tensor/array of two or more dimensions not in :data:`NON_MAP_KEYS` is a map with the width last and
    is reversed along it, whatever its resolution (teacher maps at a layer's resolution included). ``K``:
    ``cx -> W - 1 - cx`` (pixel centres at integers), skew negated; ``boxes``: ``x0, x1 -> W - x1, W - x0``
    (pixel-edge coordinates), with ``W`` the width of ``sample["image"]``. A mirrored scene moves left for
    right, so with ``negate_lateral_velocity`` the lateral velocities change sign: box column 6 (vy, ego
    frame) and the radar channels named in :data:`LATERAL_VELOCITY_CHANNELS` (needs ``radar_channels``).
    Rows of ``boxes`` where ``boxes_valid`` is false stay zero.
    """
    width = sample["image"].shape[-1]
    out = dict(sample)
    for key, value in sample.items():
        if key in NON_MAP_KEYS or not isinstance(value, (torch.Tensor, np.ndarray)) or value.ndim < 2:
            continue
        out[key] = torch.flip(value, dims=(-1,)) if isinstance(value, torch.Tensor) else np.flip(value, -1).copy()
    if "K" in sample:
        K = sample["K"].clone() if isinstance(sample["K"], torch.Tensor) else np.array(sample["K"], copy=True)
        K[..., 0, 2] = width - 1 - K[..., 0, 2]
        K[..., 0, 1] = -K[..., 0, 1]
        out["K"] = K
    if "boxes" in sample:
        boxes = sample["boxes"].clone() if isinstance(sample["boxes"], torch.Tensor) else np.array(sample["boxes"])
        valid = sample.get("boxes_valid")
        valid = (torch.ones(boxes.shape[:-1], dtype=torch.bool) if isinstance(boxes, torch.Tensor)
                 else np.ones(boxes.shape[:-1], dtype=bool)) if valid is None else valid
        x0 = boxes[..., 0].clone() if isinstance(boxes, torch.Tensor) else boxes[..., 0].copy()
        boxes[..., 0] = width - boxes[..., 2]
        boxes[..., 2] = width - x0
        if negate_lateral_velocity:
            boxes[..., 6] = -boxes[..., 6]
        boxes[~valid] = 0
        out["boxes"] = boxes
    if negate_lateral_velocity and "radar_channels" in sample:
        for c, name in enumerate(sample["radar_channels"]):
            if name in LATERAL_VELOCITY_CHANNELS:
                for key in ("radar", "radar_raw"):
                    if key in out:
                        out[key][..., c, :, :] = -out[key][..., c, :, :]
    return out


def color_jitter(image: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation of a normalised 3 x H x W image each scaled by a factor in
    ``[1 - strength, 1 + strength]`` (torchvision's definitions, on [0, 1] values); returns it normalised."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = image * std + mean
    factors = 1.0 + strength * (2.0 * torch.rand(3, generator=generator) - 1.0)
    rgb = (rgb * factors[0]).clamp(0, 1)
    gray = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    rgb = ((rgb - gray.mean()) * factors[1] + gray.mean()).clamp(0, 1)
    gray = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]
    rgb = ((rgb - gray) * factors[2] + gray).clamp(0, 1)
    return (rgb - mean) / std


class CacheDataset(Dataset):
    """Map-style dataset of a ``prepare`` cache folder (module docstring)."""

    def __init__(self, folder: str | Path, input_hw: Sequence[int] | None = None, augment: Mapping | None = None,
                 extra: Callable[[int], dict] | None = None, max_boxes: int = DEFAULT_MAX_BOXES, seed: int = 0) -> None:
        self.folder = Path(folder)
        self.files = sorted(self.folder.glob("*.npz"))
        if not self.files:
            raise ValueError(f"{self.folder}: no .npz cache files")
        self.input_hw = tuple(int(v) for v in input_hw) if input_hw is not None else None
        self.augment = dict(augment or {})
        unknown = set(self.augment) - {"hflip", "color", "negate_lateral_velocity"}
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {sorted(unknown)}; use hflip, color")
        self.extra = extra
        self.max_boxes = max_boxes
        self.seed = seed
        self.epoch = 0
        self._first_channels: tuple[str, ...] | None = None   # the radar channels of files[0], read once

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def generator(self, index: int) -> torch.Generator:
        """The random stream of sample ``index`` in the current epoch."""
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def _check_channels(self, path: Path, channels: tuple[str, ...], index: int) -> None:
        """Every file of the folder has the first file's radar channels; one that differs is named (a batch mixing
        them failed in ``collate`` with a list of channel lists, naming no file)."""
        if self._first_channels is None:
            self._first_channels = channels if index == 0 else tuple(read_cache_file(self.files[0])["radar_channels"])
        if channels != self._first_channels:
            raise ValueError(f"{path}: radar channels {list(channels)} differ from {list(self._first_channels)} of "
                             f"{self.files[0].name}, the folder's first file (a cache holds one set of channels)")

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        arrays = read_cache_file(path)
        if self.input_hw is not None and arrays["image"].shape[:2] != self.input_hw:
            arrays = Resize(*self.input_hw)(arrays)
        hw = arrays["image"].shape[:2]
        channels = tuple(arrays["radar_channels"])
        self._check_channels(path, channels, index)
        sample = {"image": image_to_tensor(arrays["image"], hw),
                  "radar": radar_to_tensor(arrays["radar"], channels, hw),
                  "radar_raw": torch.from_numpy(np.ascontiguousarray(arrays["radar"], dtype=np.float32)),
                  "radar_channels": list(channels),
                  "depth_gt": torch.from_numpy(np.ascontiguousarray(arrays["depth_gt"], dtype=np.float32))[None],
                  "K": torch.from_numpy(np.asarray(arrays["K"], dtype=np.float32)),
                  "token": arrays["token"], "index": index}
        for key in ("depth_gt_single", "depth_exact"):
            if key in arrays:
                sample[key] = torch.from_numpy(np.ascontiguousarray(arrays[key], dtype=np.float32))[None]
        if "radar_confidence_gt" in arrays:
            labels = arrays["radar_confidence_gt"]
            sample["radar_confidence_gt"] = torch.from_numpy(
                np.where(labels == IGNORE, -1.0, labels).astype(np.float32))[None]
        if "boxes" in arrays:
            sample["boxes"], sample["boxes_valid"] = self._pad_boxes(arrays["boxes"])
        if self.extra is not None:
            sample.update(self.extra(index))
        return self._augment(sample, index) if self.augment else sample

    def _pad_boxes(self, boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 7)
        if len(boxes) > self.max_boxes:
            boxes = boxes[np.argsort(boxes[:, 4], kind="stable")[:self.max_boxes]]
        padded = torch.zeros(self.max_boxes, 7)
        valid = torch.zeros(self.max_boxes, dtype=torch.bool)
        padded[:len(boxes)] = torch.from_numpy(boxes)
        valid[:len(boxes)] = True
        return padded, valid

    def _augment(self, sample: dict, index: int) -> dict:
        generator = self.generator(index)
        draws = torch.rand(1, generator=generator)  # drawn whether or not it is used: streams stay aligned
        if draws[0] < float(self.augment.get("hflip", 0.0)):
            sample = hflip_sample(sample, bool(self.augment.get("negate_lateral_velocity", True)))
        strength = float(self.augment.get("color", 0.0))
        if strength > 0:
            sample["image"] = color_jitter(sample["image"], strength, generator)
        return sample


def collate(samples: list[dict]) -> dict:
    """Batch a list of samples: tensors stacked, ``token`` a list of str, ``radar_channels`` one list (all
    samples must agree), ``index`` a tensor; other values through ``torch.utils.data.default_collate``. Every
    sample must have the same keys (a cache folder mixing layouts is an error naming the tokens)."""
    keys = set(samples[0])
    for s in samples[1:]:
        if set(s) != keys:
            raise ValueError(f"samples {samples[0].get('token')} and {s.get('token')} have different keys: "
                             f"{sorted(map(str, keys ^ set(s)))}")
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == "radar_channels":
            if any(list(v) != list(values[0]) for v in values):
                raise ValueError(f"samples with different radar channels: {values}")
            batch[key] = list(values[0])
        elif key == "token":
            batch[key] = list(values)
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = default_collate(values)
    return batch
