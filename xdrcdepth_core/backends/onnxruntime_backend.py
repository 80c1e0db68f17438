"""The ``onnxruntime`` backend: an exported ONNX graph (``export.export_onnx``) in ONNX Runtime.

CPU: the CPU execution provider with ``intra_op_num_threads`` = torch's thread count (so the node's
``cpu_threads`` applies to it too); inputs go in as numpy views of the tensors, the output comes back as a
tensor over ONNX Runtime's array (no copies beyond the runtime's own). CUDA (onnxruntime-gpu builds only):
the CUDA execution provider with I/O binding on the torch tensors' device memory. The precision is the
graph's: fp32, fp16 (exported in half precision, CUDA), or int8 (static QDQ quantisation with calibration
frames, ``export.quantize_int8``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xdrcdepth_core.backends.base import Backend, BackendUnavailable
from xdrcdepth_core.backends.capability import has_module, import_runtime, onnxruntime_providers


def check_onnxruntime(device: str, precision: str) -> None:
    """Raise :class:`BackendUnavailable` (saying why) unless ONNX Runtime can run ``precision`` on ``device``."""
    if not has_module("onnxruntime"):
        raise BackendUnavailable("onnxruntime is not installed (pip install -r requirements.txt)")
    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime_providers():
            raise BackendUnavailable("onnxruntime: no CUDAExecutionProvider in this build (CPU wheel); "
                                     "install onnxruntime-gpu for CUDA")
    elif precision in ("bf16", "fp16"):
        raise BackendUnavailable(f"onnxruntime: no fast {precision} kernels in the CPU execution provider")


def session_options(threads: int | None = None):
    ort = import_runtime("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


class OrtSession:
    """An ONNX Runtime session with the ``(image, radar) -> depth`` signature on torch tensors."""

    def __init__(self, path: str | Path, device: str, providers: list, threads: int | None = None):
        ort = import_runtime("onnxruntime")
        self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.device = torch.device(device)

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return self._run_bound(image.contiguous(), radar.contiguous())
        feeds = {self.inputs[0]: image.contiguous().numpy(), self.inputs[1]: radar.contiguous().numpy()}
        return torch.from_numpy(self.session.run([self.output], feeds)[0])

    def _run_bound(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        """CUDA: bind the tensors' device memory as inputs and a torch tensor as the output (no host copies)."""
        index = self.device.index or 0
        binding = self.session.io_binding()
        for name, tensor in zip(self.inputs, (image, radar)):
            binding.bind_input(name, "cuda", index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        out = torch.empty((image.shape[0], 1, *image.shape[2:]), dtype=torch.float32, device=self.device)
        binding.bind_output(self.output, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return out


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str, precision: str = "fp32", threads: int | None = None):
        super().__init__(precision, device)
        check_onnxruntime(device, precision)
        dev = torch.device(device)
        if dev.type == "cuda":
            providers = [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.path = Path(onnx_path)
        self.session = OrtSession(self.path, device, providers, threads)
        self.description = f"onnxruntime {precision} ({'CUDA' if dev.type == 'cuda' else 'CPU'} EP)"

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        return self.session(image, radar)
