"""The ``tensorrt`` backend (CUDA only): TensorRT through ONNX Runtime's TensorRT execution provider
(onnxruntime-gpu), else through torch-tensorrt when it is installed.

* ONNX Runtime: the verified ONNX graph with ``TensorrtExecutionProvider`` (``trt_fp16_enable`` for fp16,
  engine cache in the artefact folder so the engine is built once) falling back to the CUDA provider for any
  node TensorRT does not take; I/O bound to the torch tensors' device memory.
* torch-tensorrt: ``torch_tensorrt.compile(DepthOnly(model), ir="dynamo", inputs=..., enabled_precisions=...)``.

Neither exists on a CPU-only machine, where this backend reports itself unavailable; it is only exercised
where a GPU is present (``scripts/bench_gpu.sh``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from xdrcdepth_core.backends.base import Backend, BackendUnavailable, DepthOnly
from xdrcdepth_core.backends.capability import has_module, onnxruntime_providers


def tensorrt_route(device: str) -> str:
    """``"onnxruntime"`` or ``"torch_tensorrt"``: how TensorRT is reached here; raises if it is not."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        raise BackendUnavailable("tensorrt: needs a CUDA device")
    if "TensorrtExecutionProvider" in onnxruntime_providers():
        return "onnxruntime"
    if has_module("torch_tensorrt"):
        return "torch_tensorrt"
    raise BackendUnavailable("tensorrt: neither onnxruntime-gpu's TensorrtExecutionProvider nor torch_tensorrt "
                             "is installed")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, model: torch.nn.Module, device: str, precision: str, input_shapes: tuple,
                 onnx_path: str | Path | None = None, engine_cache: str | Path | None = None):
        super().__init__(precision, device)
        if precision not in ("fp32", "fp16"):
            raise BackendUnavailable(f"tensorrt: {precision} is not offered (fp32, fp16; int8 needs calibration)")
        self.route = tensorrt_route(device)
        index = torch.device(device).index or 0
        if self.route == "onnxruntime":
            from xdrcdepth_core.backends.onnxruntime_backend import OrtSession

            if onnx_path is None:
                raise ValueError("tensorrt via onnxruntime needs the exported ONNX graph")
            trt_options = {"device_id": index, "trt_fp16_enable": precision == "fp16",
                           "trt_engine_cache_enable": engine_cache is not None,
                           "trt_engine_cache_path": str(engine_cache or "")}
            providers = [("TensorrtExecutionProvider", trt_options), ("CUDAExecutionProvider", {"device_id": index})]
            self.module = OrtSession(onnx_path, device, providers)
        else:
            import torch_tensorrt

            dtype = torch.float16 if precision == "fp16" else torch.float32
            self.module = torch_tensorrt.compile(
                DepthOnly(model).eval().to(device), ir="dynamo",
                inputs=[torch_tensorrt.Input(tuple(shape), dtype=torch.float32) for shape in input_shapes],
                enabled_precisions={dtype})
        self.description = f"tensorrt {precision} (via {self.route})"

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        if self.route == "onnxruntime":
            return self.module(image, radar)
        with torch.inference_mode():
            return self.module(image.contiguous(), radar.contiguous()).float()
