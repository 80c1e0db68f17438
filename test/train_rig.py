"""Shared pieces of the training tests: a tiny synthetic cache, tiny model configs, running the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

TINY_STUDENT = {"name": "xdrcdepth", "width_mult": 0.25, "radar_width_mult": 0.25,
                "decoder_channels": [32, 16, 16, 8, 8], "daspp_growth": [8, 8, 8, 8]}
TINY_TEACHER = {"name": "cafnet", "bts_size": 32, "resnet_width": 16, "depth_confidence": True}
INPUT_HW = [64, 128]


def cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``xdrcdepth <args>`` in a child process (the installed entry point's module)."""
    return subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def build_tiny_caches(root: Path) -> dict[str, Path]:
    """One synthetic scene of 4 key frames: a training cache at 64 x 128 with accumulated + single-sweep
    LiDAR, confidence labels and boxes, and an evaluation cache at the rendered 160 x 90 resolution."""
    from xdrcdepth_core.data.synthetic.writer import SynthConfig, synthesize

    scenes = root / "scenes"
    synthesize(SynthConfig(out=scenes, scenes=1, keyframes=4, seed=3, image_scale=0.1, camera_sweeps=False),
               progress=False)
    paths = {"train": root / "train", "val": root / "val"}
    for args in (["--out", str(paths["train"]), "--resize", *map(str, INPUT_HW), "--lidar-sweeps", "3"],
                 ["--out", str(paths["val"]), "--no-confidence-gt"]):
        proc = cli("prepare", "--dataroot", str(scenes), *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return paths


def write_experiment(path: Path, **config) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def experiment(caches: dict, out: Path, model: dict, losses: list, epochs: int = 1, **extra) -> dict:
    """A complete experiment mapping for the tiny caches (fp32, no augmentation noise beyond flips)."""
    return {"name": out.name, "out": str(out), "seed": 0, "precision": "fp32", "model": model,
            "data": {"train": str(caches["train"]), "val": str(caches["val"]), "input_hw": INPUT_HW},
            "losses": losses, "optim": {"epochs": epochs, "batch_size": 2, "lr": 1e-3},
            "log": {"tensorboard": True, "log_every": 1, "images": 1}, **extra}
