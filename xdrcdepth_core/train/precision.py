"""Mixed precision for training: which dtype to autocast to on which device, and the matching context.

``auto`` picks fp16 AMP (with a gradient scaler) on CUDA, bf16 autocast on CPUs with native bf16
arithmetic (AVX512-BF16 or AMX: 2-3x faster than fp32 there, env.md), and fp32 elsewhere: on CPUs
without them bf16 is emulated and measured ~8x *slower* than fp32 (AMD EPYC, 2 cores, student step at
192 x 384). ``channels_last`` memory format pays off with reduced precision (oneDNN/cuDNN kernels).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU reports AVX512-BF16 or AMX-BF16 (Linux ``/proc/cpuinfo``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> fp16 on CUDA, bf16 on CPUs with native bf16, else fp32; explicit names pass through."""
    if precision != "auto":
        if precision not in DTYPES:
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def emulated_bf16(precision: str, device: torch.device) -> bool:
    """True for bf16 on a CPU without native bf16: it runs, emulated, ~8x slower than fp32 (module docstring)."""
    return precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16()


def resolve_channels_last(setting, precision: str) -> bool:
    return precision != "fp32" if setting == "auto" else bool(setting)


def autocast(device: torch.device, precision: str):
    """The autocast context for ``precision`` (a null context for fp32)."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 on CUDA; a disabled scaler (pass-through) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")
