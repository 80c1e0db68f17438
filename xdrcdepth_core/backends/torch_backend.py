"""The ``torch`` backend: eager PyTorch, optionally channels_last, autocast, ``torch.compile``, CUDA graphs.

``precision="fp32"`` with no options is the reference path, exactly what the estimator always ran::

    with torch.inference_mode(): model(image, radar)["depth"]

Options (each measured by ``xdrcdepth bench``; none is on by default for fp32):

* ``channels_last``: NHWC memory format for model and inputs (oneDNN/cuDNN kernels); default on for
  bf16/fp16 (``xdrcdepth_core.train.precision.resolve_channels_last``), off for fp32 (reference).
* bf16/fp16: ``torch.autocast`` (the depth heads keep their sigmoid in float32). On CPUs without native bf16
  PyTorch emulates bf16 (~8x slower than fp32 measured on an AMD EPYC), so ``auto`` only proposes it where
  :func:`~xdrcdepth_core.train.precision.cpu_has_native_bf16` is true.
* ``compile``: ``torch.compile`` (inductor; the first calls compile for minutes on 2 cores).
* ``cuda_graphs`` (CUDA only): the forward is captured once into a ``torch.cuda.CUDAGraph`` on static input
  buffers and replayed per frame (removes kernel-launch overhead at batch 1).

Variants other than the reference run on a deep copy of the model, so the estimator's own module (used for
Grad-CAM saliency and as the parity reference) is never converted.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch

from xdrcdepth_core.backends.base import Backend, BackendUnavailable
from xdrcdepth_core.train.precision import DTYPES, resolve_channels_last


#: the torch backend's options, each True or False, and the words each also takes (``channels_last``'s
#: ``auto``: on for bf16/fp16)
OPTIONS = {"channels_last": ("auto",), "compile": (), "cuda_graphs": ()}


def check_options(options) -> dict:
    """``options`` (``None`` or a dict of :data:`OPTIONS`) as a dict; ``TypeError``/``ValueError`` naming the
    key otherwise: an unknown key was a TypeError from the constructor's signature, and a value such as
    ``"no"`` was truthy, so it switched an option on."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"backend_options must be a dict, got {type(options).__name__}")
    unknown = sorted(map(str, set(options) - set(OPTIONS)))
    if unknown:
        raise ValueError(f"unknown torch backend option(s) {unknown}; choose from {', '.join(OPTIONS)}")
    for key, value in options.items():
        if not (isinstance(value, (bool, np.bool_)) or (isinstance(value, str) and value in OPTIONS[key])):
            choices = ", ".join(("True", "False", *map(repr, OPTIONS[key])))
            raise ValueError(f"torch backend option {key} must be one of {choices}, got {value!r}")
    return dict(options)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str, precision: str = "fp32",
                 channels_last: bool | str = "auto", compile: bool = False, cuda_graphs: bool = False,
                 input_shapes: tuple | None = None):
        super().__init__(precision, device)
        self.device_type = torch.device(device).type
        if precision == "int8":
            raise BackendUnavailable("torch: int8 inference is offered through onnxruntime/openvino, not eager")
        if precision == "fp16" and self.device_type == "cpu":
            raise BackendUnavailable("torch: fp16 autocast on CPU has no fast kernels; use bf16 or fp32 here")
        if cuda_graphs and self.device_type != "cuda":
            raise BackendUnavailable("torch: CUDA graphs need a CUDA device")
        self.dtype = DTYPES[precision]
        self.channels_last = resolve_channels_last(channels_last, precision)
        self.reference = precision == "fp32" and not self.channels_last and not compile and not cuda_graphs
        self.model = model if self.reference else copy.deepcopy(model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model, dynamic=False) if compile else self.model
        self.graph = None
        if cuda_graphs:
            if input_shapes is None:
                raise ValueError("torch: cuda_graphs needs input_shapes ((B,3,h,w), (B,C,h,w))")
            self._capture(input_shapes)
        options = [o for o, on in (("channels_last", self.channels_last), ("compile", compile),
                                   ("cuda_graphs", cuda_graphs)) if on]
        self.description = f"torch {precision}" + (f" ({', '.join(options)})" if options else "")

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def _run(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            radar = radar.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return self.forward(image, radar)["depth"]

    def _capture(self, input_shapes) -> None:
        """Record one forward on static buffers into a CUDA graph (after warm-up on a side stream, as the
        PyTorch CUDA-graphs recipe requires)."""
        self.static_image = torch.zeros(input_shapes[0], device=self.device)
        self.static_radar = torch.zeros(input_shapes[1], device=self.device)
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):
                self._run(self.static_image, self.static_radar)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.static_depth = self._run(self.static_image, self.static_radar)

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        if self.graph is not None:
            self.static_image.copy_(image)
            self.static_radar.copy_(radar)
            self.graph.replay()
            return self.static_depth.float().clone()
        with torch.inference_mode():
            depth = self._run(image, radar)
        return depth if self.reference else depth.float().contiguous()
