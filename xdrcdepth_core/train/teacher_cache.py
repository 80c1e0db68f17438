"""``xdrcdepth teacher-cache``: the frozen teacher's outputs per training sample, computed once.

Response, D-KD, confidence and X-KD targets only need the teacher's depths, confidence and Grad-CAM
maps, which do not change while a student trains; caching them removes the teacher's forward (and, for
X-KD, its Grad-CAM backward) from every student step. One ``<sample>.npz`` per cache file of the data
folder (same name), float16::

    depth, depth_8, depth_4, depth_2      1 x H x W metres (H x W = input size)
    depth_confidence                      1 x H x W (teacher built with a depth-confidence head only)
    saliency__<layer>                     1 x h x w raw signed Grad-CAM sum_c alpha_c A_c at the layer's
                                          resolution (e.g. saliency__decoder_4), per sample, target ``target``

and ``meta.json`` (teacher checkpoint digest, input size, layers, target, data folder). The teacher sees
each sample un-augmented at the training input size; the training loader flips the cached maps with the
sample, so they stay aligned (the teacher's output on a flipped image is approximated by the flipped
output: our choice, the price of caching).
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from xdrcdepth_core.atomic import atomic_write_bytes, atomic_writer
from xdrcdepth_core.cli_args import (EXIT_USAGE, add_no_progress, model_size, one_line, os_error_line,
                                     output_folder_problem, path_argument, say)
from xdrcdepth_core.data.cache_file import (REAL_DTYPE_KINDS, describe_array, finite_as_float32, load_npz_arrays,
                                           save_npz)
from xdrcdepth_core.device import add_device_argument
from xdrcdepth_core.models.base import INTERMEDIATE_DEPTH_SCALES

PROG = "xdrcdepth teacher-cache"
PREFIX = "teacher/"
META = "meta.json"


def layer_key(layer) -> str:
    """``("decoder", 4)`` -> ``"decoder_4"`` (file key)."""
    return f"{layer[0]}_{int(layer[1])}"


def parse_layer(text: str) -> tuple[str, int]:
    """``decoder:4`` -> ``("decoder", 4)``."""
    name, sep, scale = text.partition(":")
    if not sep or not scale.isdigit():
        raise argparse.ArgumentTypeError(f"layer must look like decoder:4, got {text!r}")
    return name, int(scale)


class TeacherCache:
    """A teacher-cache folder; :meth:`loader_for` gives the per-sample maps for the training dataset."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.folder}: not a teacher cache (no {META}; make one with "
                                    "`xdrcdepth teacher-cache`)")
        self.meta = read_meta(meta_path)
        self.input_hw = tuple(self.meta["input_hw"])

    def check_input_hw(self, input_hw) -> None:
        """The cache must hold maps at the training input size (its maps are not resized)."""
        if tuple(input_hw) != self.input_hw:
            raise ValueError(f"{self.folder / META}: teacher outputs at {self.input_hw[0]} x {self.input_hw[1]}, "
                             f"but training runs at {input_hw[0]} x {input_hw[1]}; rerun `xdrcdepth teacher-cache "
                             f"--input-hw {input_hw[0]} {input_hw[1]}` into another folder")

    def loader_for(self, data_folder: str | Path):
        """``index -> {"teacher/<key>": tensor}`` for the i-th (sorted) cache file of ``data_folder``."""
        names = sorted(p.name for p in Path(data_folder).glob("*.npz"))
        missing = [n for n in names if not (self.folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.folder}: no teacher outputs for {len(missing)} samples of "
                                    f"{data_folder} (e.g. {missing[0]}); rerun `xdrcdepth teacher-cache`")

        def load(index: int) -> dict:
            maps = read_teacher_file(self.folder / names[index], self.input_hw)
            return {PREFIX + k: torch.from_numpy(v.astype(np.float32)) for k, v in maps.items()}
        return load


class TeacherCacheFileError(ValueError):
    """A teacher-cache file that cannot be used; ``xdrcdepth teacher-cache`` run again computes it anew."""


def read_teacher_file(path: Path, input_hw) -> dict[str, np.ndarray]:
    """The maps of one teacher-cache file, checked: readable (memory bounded by :func:`load_npz_arrays`), each map
    of its shape at ``input_hw`` (:func:`map_shape`) in real numbers, finite (a NaN target made every KD step
    non-finite, so skipped). :class:`TeacherCacheFileError` naming the file otherwise."""
    try:
        maps = load_npz_arrays(path)          # bounded before np.load allocates what the headers declare
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise TeacherCacheFileError(f"{path}: unreadable teacher cache file ({one_line(exc)})") from None
    for key, value in maps.items():
        expected = map_shape(key, input_hw)
        if value.shape != expected or value.dtype.kind not in REAL_DTYPE_KINDS:
            raise TeacherCacheFileError(f"{path}: teacher map {key} is {describe_array(value)}, expected "
                                        f"{' x '.join(map(str, expected))} real numbers ({META} says input "
                                        f"{tuple(input_hw)})")
        if not finite_as_float32(value):
            raise TeacherCacheFileError(f"{path}: teacher map {key} holds NaN or infinite values")
    return maps


def map_shape(key: str, input_hw) -> tuple[int, ...]:
    """The shape of a cached map: 1 x H x W (depths and confidence, at the input size), 1 x H/s x W/s for
    ``saliency__<layer>_<s>`` (Grad-CAM at that layer's resolution)."""
    scale = 1
    if key.startswith("saliency__"):
        digits = key.rpartition("_")[2]
        scale = int(digits) if digits.isdigit() and int(digits) > 0 else 1
    return (1, input_hw[0] // scale, input_hw[1] // scale)


def read_meta(path: Path) -> dict:
    """A teacher cache's ``meta.json`` (a mapping with ``input_hw``); ``ValueError`` naming the file otherwise."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:     # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path}: unreadable teacher-cache description ({one_line(exc)})") from None
    hw = meta.get("input_hw") if isinstance(meta, dict) else None
    if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0 for v in hw)):
        raise ValueError(f"{path}: not a teacher-cache description (a mapping with input_hw [H, W]); make the "
                         "cache with `xdrcdepth teacher-cache`")
    return meta


def outputs_from_batch(batch: dict) -> dict:
    """The teacher-output dict (model-output keys) from a batch's ``teacher/...`` maps."""
    out = {}
    for key, value in batch.items():
        if not isinstance(key, str) or not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        if name.startswith("saliency__"):
            layer, _, scale = name[len("saliency__"):].rpartition("_")
            out[("saliency", (layer, int(scale)))] = value
        elif name.startswith("depth_") and name[len("depth_"):].isdigit():
            out[("depth", int(name[len("depth_"):]))] = value
        else:
            out[name] = value
    return out


def teacher_maps(teacher: torch.nn.Module, image: torch.Tensor, radar: torch.Tensor, layers, target: str) -> dict:
    """Arrays to cache for one sample (batch of 1): depths, confidence and raw Grad-CAM at ``layers``."""
    from xdrcdepth_core.saliency import TARGETS, grad_cam_raw

    with torch.enable_grad():
        out = teacher(image.detach().requires_grad_(True), radar)
        maps = {"depth": out["depth"]}
        maps.update({f"depth_{s}": out[("depth", s)] for s in INTERMEDIATE_DEPTH_SCALES})
        if "depth_confidence" in out:
            maps["depth_confidence"] = out["depth_confidence"]
        for layer in layers:
            maps[f"saliency__{layer_key(layer)}"] = grad_cam_raw(out, layer, TARGETS[target])
    return {k: v.detach()[0].float().cpu().numpy().astype(np.float16) for k, v in maps.items()}


def check_layers(teacher: torch.nn.Module, sample: dict, layers, device) -> None:
    """``ValueError`` unless the teacher outputs every Grad-CAM layer (one forward of ``sample``)."""
    with torch.no_grad():
        out = teacher(sample["image"][None].to(device), sample["radar"][None].to(device))
    known = [f"{k[0]}:{k[1]}" for k in out if isinstance(k, tuple) and k[0] != "depth"]
    unknown = [f"{name}:{scale}" for name, scale in layers if f"{name}:{scale}" not in known]
    if unknown:
        raise ValueError(f"--layers {' '.join(unknown)}: no such feature in {teacher.name}; "
                         f"it has {', '.join(known)}")


def _identity(meta: dict) -> dict:
    """What decides whether a cache folder holds this teacher's outputs (everything but the path)."""
    return {key: value for key, value in meta.items() if key != "teacher"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="teacher checkpoint (xdrcdepth train output)")
    parser.add_argument("--data", required=True, type=path_argument, help="training cache folder (xdrcdepth prepare)")
    parser.add_argument("--out", required=True, type=path_argument, help="teacher-cache folder (created)")
    parser.add_argument("--input-hw", nargs=2, type=model_size, metavar=("H", "W"),
                        help="input size of the students (default: the teacher's)")
    parser.add_argument("--layers", nargs="+", type=parse_layer, default=[("decoder", 4)],
                        help="Grad-CAM layers (default: decoder:4)")
    parser.add_argument("--target", default="mean_depth", help="Grad-CAM target (default: %(default)s)")
    add_device_argument(parser)
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.checkpoint import build_from_checkpoint, file_digest, load_checkpoint
    from xdrcdepth_core.data.cache_dataset import CacheDataset
    from xdrcdepth_core.device import resolve_device
    from xdrcdepth_core.saliency import TARGETS

    if args.target not in TARGETS:
        say(f"{PROG}: unknown target {args.target!r}; choose from {sorted(TARGETS)}")
        return EXIT_USAGE
    if code := output_folder_problem(PROG, args.out):
        return code
    try:
        ckpt = load_checkpoint(args.checkpoint)
        teacher = build_from_checkpoint(ckpt, args.checkpoint)
        device = resolve_device(args.device)
        input_hw = tuple(args.input_hw or ckpt["input_hw"])
        dataset = CacheDataset(args.data, input_hw=input_hw, augment=None)
        teacher = teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        first = dataset[0]
        if list(ckpt["radar_channels"]) != list(first["radar_channels"]):   # same count, other meaning: silent
            raise ValueError(f"teacher {args.checkpoint} was trained on radar channels {list(ckpt['radar_channels'])}"
                             f", {dataset.files[0]} has {list(first['radar_channels'])}")
        check_layers(teacher, first, args.layers, device)
        meta = {"teacher": str(args.checkpoint), "teacher_sha": file_digest(args.checkpoint),
                "input_hw": list(input_hw), "layers": [list(layer) for layer in args.layers], "target": args.target,
                "data": str(args.data)}
        meta_path = args.out / META
        # The teacher is identified by its content: the same weights moved to another path reuse the cache.
        if meta_path.exists() and _identity(read_meta(meta_path)) != _identity(meta):
            say(f"{PROG}: {args.out} holds outputs of another teacher/setting; choose another --out")
            return EXIT_USAGE
        # A folder of other files (the data folder itself, a user's folder): its .npz files would be taken as
        # cached teacher outputs and meta.json written among them. meta.json is written first, so an
        # interrupted run of ours is resumed.
        if not meta_path.exists() and args.out.is_dir() and any(args.out.iterdir()):
            say(f"{PROG}: {args.out} is not empty and is no teacher cache (no {META}); choose a new or empty --out")
            return EXIT_USAGE
    except (OSError, ValueError) as exc:
        say(f"{PROG}: {exc}")
        return EXIT_USAGE
    start = time.monotonic()
    try:
        written = _write_cache(teacher, dataset, meta, args, device)
    except OSError as exc:              # read-only or full disk, a file in the way
        say(os_error_line(PROG, exc))
        return 1
    except ValueError as exc:           # an unreadable training sample, an unknown layer
        say(f"{PROG}: {exc}")
        return EXIT_USAGE
    names = dataset.files
    print(f"teacher-cache: {len(names)} samples ({written} computed, {len(names) - written} already cached) "
          f"-> {args.out}, {time.monotonic() - start:.0f} s")
    return 0


def _write_cache(teacher: torch.nn.Module, dataset, meta: dict, args: argparse.Namespace, device) -> int:
    """``meta.json`` and one ``.npz`` per sample not cached yet, or cached in a file that cannot be used (a rerun
    reported such a file as cached while training refused it); returns how many were computed."""
    atomic_write_bytes(args.out / META, json.dumps(meta, indent=1).encode())
    written = 0
    for index, path in enumerate(tqdm(dataset.files, desc="teacher-cache", unit="sample", disable=args.no_progress)):
        path = args.out / path.name
        if path.is_file() and _usable(path, meta["input_hw"]):
            continue
        sample = dataset[index]
        maps = teacher_maps(teacher, sample["image"][None].to(device), sample["radar"][None].to(device),
                            args.layers, args.target)
        with atomic_writer(path) as f:
            save_npz(f, maps, level=None)
        written += 1
    return written


def _usable(path: Path, input_hw) -> bool:
    try:
        read_teacher_file(path, input_hw)
    except TeacherCacheFileError:
        return False
    return True
