"""What every inference backend shares: the call contract, precision names, and the depth-only module.

A backend runs one model's forward pass on already preprocessed inputs::

    backend(image, radar) -> depth
    image: B x 3 x h x w float32, radar: B x C x h x w float32 (the estimator's device, ``input_hw``)
    depth: B x 1 x h x w float32 metres on the same device

Preprocessing (resize, normalisation, rasterisation) and postprocessing (resize back) stay in
:class:`xdrcdepth_core.infer.DepthEstimator`, so every backend sees exactly the tensors the eager model sees
and parity is a comparison of forward passes.
"""

from __future__ import annotations

import torch
from torch import nn

#: Precision names accepted everywhere (``None`` = the backend's best that passes parity).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")


class BackendUnavailable(RuntimeError):
    """This backend/precision cannot run here (missing package, device or CPU capability); says why."""


class DepthOnly(nn.Module):
    """The model with inputs and output reduced to what inference needs: ``(image, radar) -> depth``.

    The models return a dict of features for distillation; exporters and runtimes only need the final
    depth map. ``dtype`` (e.g. ``torch.float16``) runs the model in that dtype between float32 inputs and a
    float32 output, which is how fp16 graphs are exported.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype | None = None):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        if self.dtype is not None:
            image, radar = image.to(self.dtype), radar.to(self.dtype)
        return self.model(image, radar)["depth"].float()


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or None), got {precision!r}")


class Backend:
    """Base class: ``name``, ``precision``, ``device`` and a one-line ``description`` (logged, benchmarked)."""

    name = "base"

    def __init__(self, precision: str, device: str):
        self.precision = precision
        self.device = device
        self.description = f"{self.name} {precision}"

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description} on {self.device}>"
