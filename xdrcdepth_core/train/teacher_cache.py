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
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from xdrcdepth_core.atomic import atomic_write_bytes, atomic_writer
from xdrcdepth_core.cli_args import add_no_progress
from xdrcdepth_core.device import add_device_argument
from xdrcdepth_core.models.base import INTERMEDIATE_DEPTH_SCALES

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
        self.meta = json.loads(meta_path.read_text())

    def loader_for(self, data_folder: str | Path):
        """``index -> {"teacher/<key>": tensor}`` for the i-th (sorted) cache file of ``data_folder``."""
        names = sorted(p.name for p in Path(data_folder).glob("*.npz"))
        missing = [n for n in names if not (self.folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.folder}: no teacher outputs for {len(missing)} samples of "
                                    f"{data_folder} (e.g. {missing[0]}); rerun `xdrcdepth teacher-cache`")

        def load(index: int) -> dict:
            path = self.folder / names[index]
            try:
                with np.load(path, allow_pickle=False) as npz:
                    return {PREFIX + k: torch.from_numpy(npz[k].astype(np.float32)) for k in npz.files}
            except (OSError, ValueError, EOFError) as exc:
                raise ValueError(f"{path}: unreadable teacher cache file ({exc})") from None
        return load


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


def _identity(meta: dict) -> dict:
    """What decides whether a cache folder holds this teacher's outputs (everything but the path)."""
    return {key: value for key, value in meta.items() if key != "teacher"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="teacher checkpoint (xdrcdepth train output)")
    parser.add_argument("--data", required=True, type=Path, help="training cache folder (xdrcdepth prepare)")
    parser.add_argument("--out", required=True, type=Path, help="teacher-cache folder (created)")
    parser.add_argument("--input-hw", nargs=2, type=int, metavar=("H", "W"),
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
        print(f"xdrcdepth teacher-cache: unknown target {args.target!r}; choose from {sorted(TARGETS)}",
              file=sys.stderr)
        return 2
    try:
        ckpt = load_checkpoint(args.checkpoint)
        teacher = build_from_checkpoint(ckpt, args.checkpoint)
        device = resolve_device(args.device)
        input_hw = tuple(args.input_hw or ckpt["input_hw"])
        dataset = CacheDataset(args.data, input_hw=input_hw, augment=None)
    except (OSError, ValueError) as exc:
        print(f"xdrcdepth teacher-cache: {exc}", file=sys.stderr)
        return 2
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    meta = {"teacher": str(args.checkpoint), "teacher_sha": file_digest(args.checkpoint), "input_hw": list(input_hw),
            "layers": [list(layer) for layer in args.layers], "target": args.target, "data": str(args.data)}
    meta_path = args.out / META
    # The teacher is identified by its content: the same weights moved to another path reuse the cache.
    if meta_path.is_file() and _identity(json.loads(meta_path.read_text())) != _identity(meta):
        print(f"xdrcdepth teacher-cache: {args.out} holds outputs of another teacher/setting; choose another "
              "--out", file=sys.stderr)
        return 2
    atomic_write_bytes(meta_path, json.dumps(meta, indent=1).encode())
    names = sorted(p.name for p in Path(args.data).glob("*.npz"))
    start, written = time.monotonic(), 0
    for index, name in enumerate(tqdm(names, desc="teacher-cache", unit="sample", disable=args.no_progress)):
        path = args.out / name
        if path.is_file():
            continue
        sample = dataset[index]
        maps = teacher_maps(teacher, sample["image"][None].to(device), sample["radar"][None].to(device),
                            args.layers, args.target)
        with atomic_writer(path) as f:
            np.savez(f, **maps)
        written += 1
    print(f"teacher-cache: {len(names)} samples ({written} computed, {len(names) - written} already cached) "
          f"-> {args.out}, {time.monotonic() - start:.0f} s")
    return 0

