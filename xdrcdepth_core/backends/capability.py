"""What this machine can run fast, from what it reports (never assumed).

* CPU: native bf16 arithmetic (AVX512-BF16 / AMX, :func:`xdrcdepth_core.train.precision.cpu_has_native_bf16`)
  and int8 dot products (AVX-VNNI / AVX512-VNNI / AMX-INT8), from ``/proc/cpuinfo``. Without native bf16,
  PyTorch emulates it: measured ~8x *slower* than fp32 on an AMD EPYC without AVX-512 (2 cores).
* OpenVINO: the CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (``BF16`` only where the hardware has it).
* ONNX Runtime: its execution providers (CPU; CUDA and TensorRT only in GPU builds).
* CUDA: ``torch.cuda.is_available()``.

The optional runtimes are imported lazily and only here, so a machine without them still runs the torch
backend.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
from pathlib import Path

from xdrcdepth_core.train.precision import cpu_has_native_bf16

INT8_FLAGS = {"avx_vnni", "avx512_vnni", "amx_int8"}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(device=None) -> str:
    """``<arch>, <CPU model>``, and ``, <GPU name>`` where ``device`` is a CUDA device: the machine a timing was
    measured on, as training histories and the ablation report name it."""
    name = f"{platform.machine()}, {cpu_name()}"
    if device is not None and getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        name += f", {torch.cuda.get_device_name(device)}"
    return name


def cpu_has_fast_int8() -> bool:
    """True when the CPU has int8 dot-product instructions (VNNI or AMX-INT8)."""
    return bool(cpu_flags() & INT8_FLAGS)


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def import_runtime(name: str):
    """``import name`` for an inference runtime (openvino, onnxruntime), loaded on first use. A Ctrl-C while its
    C extension initialises turned into ``ImportError: initialization failed`` with a traceback (OpenVINO, 3 of
    13 tries in a black-box run); here it is held and raised as ``KeyboardInterrupt`` once the import is done."""
    from xdrcdepth_core.cli_args import sigint_held

    with sigint_held():
        return importlib.import_module(name)


@functools.lru_cache(maxsize=1)
def openvino_cpu_capabilities() -> frozenset[str]:
    """OpenVINO CPU plugin ``OPTIMIZATION_CAPABILITIES`` (e.g. FP32, INT8, BF16); empty without OpenVINO."""
    if not has_module("openvino"):
        return frozenset()
    ov = import_runtime("openvino")
    try:
        return frozenset(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:
        return frozenset()


@functools.lru_cache(maxsize=1)
def onnxruntime_providers() -> tuple[str, ...]:
    if not has_module("onnxruntime"):
        return ()
    return tuple(import_runtime("onnxruntime").get_available_providers())


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def summary() -> dict:
    """The facts above in one dict (written into benchmark reports and auto-selection records)."""
    import torch

    flags = cpu_flags()
    return {
        "cpu": cpu_name(),
        "cpu_flags": sorted(flags & ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "f16c", "fma"}
                                     | INT8_FLAGS)),
        "native_bf16": cpu_has_native_bf16(),
        "fast_int8": cpu_has_fast_int8(),
        "openvino_cpu": sorted(openvino_cpu_capabilities()),
        "onnxruntime_providers": list(onnxruntime_providers()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": runtime_versions(),
    }


@functools.lru_cache(maxsize=1)
def _runtime_versions() -> tuple[tuple[str, str], ...]:
    import torch

    versions = {"torch": torch.__version__}
    for module in ("onnx", "onnxruntime", "openvino", "onnxscript", "torch_tensorrt"):
        if has_module(module):
            try:
                versions[module] = str(importlib.import_module(module).__version__)
            except (ImportError, AttributeError):
                versions[module] = "unknown"
    return tuple(versions.items())


def runtime_versions() -> dict[str, str]:
    return dict(_runtime_versions())
