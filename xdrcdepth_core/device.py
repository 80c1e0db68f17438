"""Device selection, done once and logged by the caller (never buried in preprocessing)."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda:0`` when CUDA is available, else ``cpu``; anything else is passed to torch.

    Raises ``ValueError`` for a CUDA device on a machine without CUDA, instead of failing later.
    """
    if device in ("", "auto", None):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use 'auto' or 'cpu')")
    return dev
