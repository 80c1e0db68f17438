"""Device selection, done once and logged by the caller (never buried in preprocessing).

One check of a device name (:func:`device_problem`) serves every command that takes ``--device``
(:func:`device_arg`, so ``--device bogus`` is a usage error, exit code 2, before any work) and
:func:`resolve_device` (configuration files), instead of torch's ``RuntimeError`` listing its device types.
"""

from __future__ import annotations

import argparse
import re

DEVICE_NAMES = "auto, cpu, cuda, cuda:N"
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_problem(device: str) -> str | None:
    """None if ``device`` is auto, cpu or a CUDA device that exists here; else what is wrong, as a phrase
    that starts with the quoted name (callers put what it is in front: ``--device``, ``device =``)."""
    if not _DEVICE_PATTERN.fullmatch(device):
        return f"{device!r} is not one of {DEVICE_NAMES}"
    if device.startswith("cuda"):
        import torch   # here, not at module level: commands that only parse --device stay light

        if not torch.cuda.is_available():
            return f"{device!r} requested but CUDA is not available here (use auto or cpu)"
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            return f"{device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
    return None


def device_arg(text: str) -> str:
    """argparse ``type`` of ``--device``: the name unchanged (``auto`` stays ``auto``), checked now."""
    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_device_argument(parser: argparse.ArgumentParser, default: str = "auto", help: str = "") -> None:
    """``--device`` (auto | cpu | cuda[:N]), checked by :func:`device_arg`; ``help`` replaces the default text."""
    parser.add_argument("--device", type=device_arg, default=default,
                        help=help or f"auto (cuda:0 when available, else cpu) | cpu | cuda[:N] (default: {default})")


def resolve_device(device: "str | torch.device | None" = "auto") -> "torch.device":
    """``"auto"`` -> ``cuda:0`` when CUDA is available, else ``cpu``; ``cpu`` and ``cuda[:N]`` as given.

    Raises ``ValueError`` (:func:`device_problem`) for any other name or a CUDA device this machine lacks,
    instead of failing later.
    """
    import torch

    if device in ("", "auto", None):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    problem = device_problem(str(device))
    if problem:
        raise ValueError(f"device {problem}")
    return torch.device(device)
