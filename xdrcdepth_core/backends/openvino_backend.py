"""The ``openvino`` backend: the exported graph (OpenVINO IR converted from the verified ONNX) on the CPU.

Compiled with the latency hint, one stream, ``INFERENCE_NUM_THREADS`` = torch's thread count, and the
inference precision asked for: ``fp32`` (``f32``), ``bf16`` only where the CPU plugin reports ``BF16`` (AVX512-BF16
/ AMX; OpenVINO's own default there), ``fp16`` only where it reports ``FP16``; ``int8`` runs a QDQ-quantised
graph (``export.quantize_int8``) with OpenVINO's low-precision transformations (plugin capability ``INT8``).
OpenVINO's GPU plugin targets Intel GPUs, so on a CUDA device this backend is unavailable.
"""

from __future__ import annotations

from pathlib import Path

import torch

from xdrcdepth_core.backends.base import Backend, BackendUnavailable
from xdrcdepth_core.backends.capability import has_module, openvino_cpu_capabilities

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


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, model_path: str | Path, device: str, precision: str = "fp32", threads: int | None = None):
        super().__init__(precision, device)
        check_openvino(device, precision)
        import openvino as ov

        self.path = Path(model_path)
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
                  "INFERENCE_PRECISION_HINT": HINTS[precision][0]}
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.description = f"openvino {precision} (CPU, {HINTS[precision][0]})"

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        # share_inputs: the runtime reads the tensors' memory in place; the output is copied out because the
        # request reuses its buffer on the next call
        self.request.infer([image.contiguous().numpy(), radar.contiguous().numpy()], share_inputs=True)
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())
