"""The ``openvino`` backend: the exported graph (OpenVINO IR converted from the verified ONNX) on the CPU.

Compiled with the latency hint, one stream, ``INFERENCE_NUM_THREADS`` = torch's thread count, and the
inference precision asked for: ``fp32`` (``f32``), ``bf16`` only where the CPU plugin reports ``BF16`` (AVX512-BF16
/ AMX; OpenVINO's own default there), ``fp16`` only where it reports ``FP16``; ``int8`` runs a QDQ-quantised
graph (``export.quantize_int8``) with OpenVINO's low-precision transformations (plugin capability ``INT8``).
OpenVINO's GPU plugin targets Intel GPUs, so on a CUDA device this backend is unavailable.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from pathlib import Path

import torch

from xdrcdepth_core.backends.base import Backend, BackendUnavailable
from xdrcdepth_core.backends.capability import has_module, import_runtime, openvino_cpu_capabilities

#: precision -> (INFERENCE_PRECISION_HINT, the plugin capability it needs)
HINTS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16"), "int8": ("f32", "INT8")}


def check_openvino(device: str, precision: str) -> None:
    """Raise :class:`BackendUnavailable` (saying why) unless OpenVINO can run ``precision`` here."""
    if not has_module("openvino"):
        raise BackendUnavailable("openvino is not installed (pip install -r requirements.txt)")
    if torch.device(device).type != "cpu":
        raise BackendUnavailable("openvino: runs on the CPU (its GPU plugin is for Intel GPUs, not CUDA)")
    capability = HINTS[precision][1]
    capabilities = openvino_cpu_capabilities()
    if capability not in capabilities:
        raise BackendUnavailable(f"openvino: the CPU plugin does not report {capability} on this machine "
                                 f"(capabilities: {', '.join(sorted(capabilities)) or 'none'})")


class _SignalStack(ctypes.Structure):
    """``stack_t`` of ``sigaltstack(2)`` on Linux."""
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def thread_signal_stack_kept():
    """Restore the calling thread's alternate signal stack (``sigaltstack``) after the block.

    OpenVINO's CPU plugin installs a signal stack of its own for each compiled model and, when the model is
    freed, puts back the stack it found: models freed in the order they were made (``auto`` probes and drops
    several) leave the thread pointing at a freed stack, and the next signal Python handles (CPython installs
    its handlers with ``SA_ONSTACK``: a Ctrl-C, a SIGTERM) segfaults the process (measured: two compiled models
    freed first-to-last, then SIGINT: exit 139). Putting the previous stack back right after compiling keeps
    every model's "stack it found" the caller's own, so any order of frees leaves a valid one. Linux only
    (elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _SignalStack()
    if libc.sigaltstack(None, ctypes.byref(before)) != 0:
        yield
        return
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(before), None)


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, model_path: str | Path, device: str, precision: str = "fp32", threads: int | None = None):
        super().__init__(precision, device)
        check_openvino(device, precision)
        ov = import_runtime("openvino")

        self.path = Path(model_path)
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
                  "INFERENCE_PRECISION_HINT": HINTS[precision][0]}
        with thread_signal_stack_kept():
            self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
            self.request = self.compiled.create_infer_request()
        self.description = f"openvino {precision} (CPU, {HINTS[precision][0]})"

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        # share_inputs: the runtime reads the tensors' memory in place; the output is copied out because the
        # request reuses its buffer on the next call
        self.request.infer([image.contiguous().numpy(), radar.contiguous().numpy()], share_inputs=True)
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())
