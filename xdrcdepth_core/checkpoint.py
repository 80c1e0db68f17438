"""Self-describing checkpoints: the estimator rebuilds model, input size and radar layout from the file alone.

Format (a ``torch.save`` dict, ``format_version`` 1)::

    {"format_version": 1, "model_name": str, "model_config": dict, "state_dict": dict,
     "input_hw": [h, w], "radar_channels": [str, ...], "max_depth": float,
     "resolved_config": dict (the experiment YAML after resolution), "training_state": dict | None}

Writes are atomic (temporary file in the same folder + ``os.replace``), so an interrupted save never
leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from xdrcdepth_core.atomic import atomic_writer

FORMAT_VERSION = 1
REQUIRED_KEYS = ("model_name", "model_config", "state_dict", "input_hw", "radar_channels")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_writer(path) as f:
        torch.save(obj, f)


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, input_hw: tuple[int, int],
                    radar_channels: tuple[str, ...], resolved_config: dict | None = None,
                    training_state: dict | None = None) -> None:
    """Write a self-describing checkpoint of ``model`` (a registered model with ``name``/``config``)."""
    atomic_torch_save({
        "format_version": FORMAT_VERSION,
        "model_name": model.name,
        "model_config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input_hw": [int(input_hw[0]), int(input_hw[1])],
        "radar_channels": list(radar_channels),
        "max_depth": float(model.max_depth),
        "resolved_config": resolved_config or {},
        "training_state": training_state,
    }, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt/truncated files raise many different exception types
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    missing = [k for k in REQUIRED_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not an xdrcdepth checkpoint (missing {', '.join(missing)})")
    return ckpt


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """Short sha256 of a file, used as the model id shown in diagnostics."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]
