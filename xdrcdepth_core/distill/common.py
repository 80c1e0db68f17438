"""Helpers shared by the losses: masked/weighted means, per-scale weights, layer keys, depth-map lists,
box masks, top-error exclusion and the learned channel adapters.

Conventions (ours, used by every loss here):
- means over pixels are pooled over the whole batch (sum of weighted values / sum of weights), as
  LiRCDepth's ``L1_w = sum(w |d - g|) / sum(w)``; a batch without any valid pixel gives 0 (still
  connected to the graph, so ``backward`` works);
- layers are ``(name, scale)`` tuples, written in YAML as lists (``[decoder, 4]``);
- per-scale weights are ``1 / 2^i`` with i = 0 for the first listed scale (LiRCDepth, papers.md 2.4).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from xdrcdepth_core.models.base import INTERMEDIATE_DEPTH_SCALES
from xdrcdepth_core.models.depth_head import upsample_to

__all__ = ["Adapters", "as_layer", "as_layers", "boxes_mask", "check_fraction", "check_same_size", "depth_keys",
           "keep_lowest", "layer_key", "relative_error_weight", "scale_weights", "upsample_to", "weighted_l1",
           "weighted_mean"]

#: denominator floor of weighted means (only reached when all weights are 0, then the numerator is 0 too)
EPS = 1e-12


def as_layer(spec) -> tuple[str, int]:
    """``("decoder", 4)`` from a tuple or a YAML list ``[decoder, 4]``."""
    if isinstance(spec, (list, tuple)) and len(spec) == 2 and isinstance(spec[0], str):
        return spec[0], int(spec[1])
    raise ValueError(f"a layer is [name, scale] like [decoder, 4], got {spec!r}")


def as_layers(specs: Iterable) -> list[tuple[str, int]]:
    """A list of layers (see :func:`as_layer`); at least one."""
    layers = [as_layer(s) for s in specs]
    if not layers:
        raise ValueError("at least one layer is needed")
    return layers


def layer_key(layer: tuple[str, int]) -> str:
    """``"decoder_4"`` for ``("decoder", 4)``: a module-dict key (no dots)."""
    return f"{layer[0]}_{layer[1]}"


def scale_weights(count: int) -> list[float]:
    """``[1, 1/2, 1/4, ...]``: the ``1 / 2^i`` per-scale weights of LiRCDepth (papers.md 2.4)."""
    return [0.5 ** i for i in range(count)]


def weighted_mean(values: Tensor, weight: Tensor) -> Tensor:
    """``sum(w * v) / sum(w)`` over all elements (``weight`` bool or float, broadcastable to ``values``)."""
    weight = weight.to(values.dtype)
    return (values * weight).sum() / (weight.expand_as(values).sum()).clamp_min(EPS)


def weighted_l1(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Masked / weighted L1: ``sum(w |pred - target|) / sum(w)``."""
    return weighted_mean((pred - target).abs(), weight)


def relative_error_weight(a: Tensor, b: Tensor) -> Tensor:
    """LiRCDepth's uncertainty ``1 - exp(-5 |a - b| / (a + b))`` in [0, 1) (papers.md 2.4); a, b > 0."""
    return 1 - torch.exp(-5 * (a - b).abs() / (a + b))


def check_fraction(value: float, name: str) -> float:
    """``value`` as a float in [0, 1), or a ValueError naming the option."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def keep_lowest(values: Tensor, mask: Tensor, drop_fraction: float) -> Tensor:
    """``mask`` without each image's largest ``drop_fraction`` of ``values`` (B x ... tensors).

    Per image, the masked values are sorted and the ones above the ``ceil((1 - f) n)``-th smallest are
    dropped (ties at the threshold are kept). ``drop_fraction = 0`` returns ``mask``.
    """
    mask = mask.bool()
    if check_fraction(drop_fraction, "drop fraction") == 0:
        return mask
    flat = values.detach().masked_fill(~mask, float("inf")).flatten(1)
    count = mask.flatten(1).sum(dim=1)
    index = (torch.ceil(count * (1 - drop_fraction)).long() - 1).clamp_min(0)
    threshold = flat.sort(dim=1).values.gather(1, index[:, None])
    return mask & (values.detach() <= threshold.view(-1, *[1] * (values.dim() - 1)))


def depth_keys(intermediate_weight: float) -> list[tuple[float, object]]:
    """``[(weight, key)]`` of the depth maps a depth-level loss covers: ``"depth"`` with weight 1, plus
    ``("depth", s)`` for s = 8, 4, 2 with ``intermediate_weight`` each when it is > 0."""
    if intermediate_weight < 0:
        raise ValueError(f"intermediate_weight must be >= 0, got {intermediate_weight}")
    keys = [(1.0, "depth")]
    if intermediate_weight > 0:
        keys += [(intermediate_weight, ("depth", s)) for s in INTERMEDIATE_DEPTH_SCALES]
    return keys


def check_same_size(student: Tensor, teacher: Tensor, what) -> None:
    """ValueError unless the two maps have the same batch and spatial size."""
    if student.shape[0] != teacher.shape[0] or student.shape[-2:] != teacher.shape[-2:]:
        raise ValueError(f"{what}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ in "
                         "batch or spatial size")


def boxes_mask(boxes: Tensor, valid: Tensor, size: Sequence[int], image_size: Sequence[int],
               grow: Tensor | None = None) -> Tensor:
    """B x 1 x h x w bool: the pixel centres of an h x w map (covering an image of ``image_size`` H x W
    pixels) inside any valid box.

    ``boxes`` B x N x >=4 as [x0, y0, x1, y1, ...] in image pixels, ``valid`` B x N bool; ``grow`` B x N x 2
    optional total enlargement (x, y) in pixels, split evenly between the two sides.
    """
    h, w = size
    height, width = image_size
    x0, y0, x1, y1 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    if grow is not None:
        x0, x1 = x0 - grow[..., 0] / 2, x1 + grow[..., 0] / 2
        y0, y1 = y0 - grow[..., 1] / 2, y1 + grow[..., 1] / 2
    xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) * (width / w)
    ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) * (height / h)
    inside_x = (xs >= x0[..., None]) & (xs <= x1[..., None])              # B x N x w
    inside_y = (ys >= y0[..., None]) & (ys <= y1[..., None])              # B x N x h
    inside = inside_y[..., :, None] & inside_x[..., None, :] & valid.bool()[..., None, None]
    return inside.any(dim=1, keepdim=True)


#: adapter kinds: name -> kernel sizes of its convolutions (ReLU between consecutive convs)
ADAPTER_KINDS = {"conv1x1": (1,), "conv3x3_relu_conv1x1": (3, 1)}


class LazyAdapter(LazyModuleMixin, nn.Module):
    """Student feature -> teacher channel count, both counts read from the first (student, teacher) pair.

    The parameters exist from construction as ``UninitializedParameter`` and are materialised in place on
    the first call (PyTorch's lazy-module mechanism), on the student feature's device, so an optimiser
    built before the first batch still holds them, and ``load_state_dict`` materialises them from a
    checkpoint. Initialisation as ``nn.Conv2d``'s default; float32 parameters, and the student feature is
    cast to their dtype: the trainer computes losses outside autocast, where a bf16/fp16 feature (from the
    autocast forward) meets these float32 weights. The hidden width of the two-conv kind is the teacher's
    channel count (ours).
    """

    cls_to_become = None

    def __init__(self, kind: str):
        with warnings.catch_warnings():  # the "lazy modules are a new feature" notice, once per adapter
            warnings.filterwarnings("ignore", message="Lazy modules are a new feature")
            super().__init__()
        if kind not in ADAPTER_KINDS:
            raise ValueError(f"unknown adapter {kind!r}; choose one of {sorted(ADAPTER_KINDS)} or none")
        self.kernels = ADAPTER_KINDS[kind]
        for index in range(len(self.kernels)):  # direct attributes: the lazy mechanism only sees those
            self.register_parameter(f"weight{index}", UninitializedParameter())
            self.register_parameter(f"bias{index}", UninitializedParameter())

    def convs(self) -> list[tuple[Tensor, Tensor, int]]:
        return [(getattr(self, f"weight{i}"), getattr(self, f"bias{i}"), k) for i, k in enumerate(self.kernels)]

    def initialize_parameters(self, student: Tensor, teacher: Tensor) -> None:
        if not self.has_uninitialized_params():
            return
        channels_in = student.shape[1]
        with torch.no_grad():
            for weight, bias, kernel in self.convs():
                conv = nn.Conv2d(channels_in, teacher.shape[1], kernel, device=student.device)
                weight.materialize(conv.weight.shape, device=student.device)
                bias.materialize(conv.bias.shape, device=student.device)
                weight.copy_(conv.weight)
                bias.copy_(conv.bias)
                channels_in = teacher.shape[1]

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        x = student.to(self.weight0.dtype)
        for index, (weight, bias, kernel) in enumerate(self.convs()):
            if index:
                x = F.relu(x)
            x = F.conv2d(x, weight, bias, padding=kernel // 2)
        return x


class Adapters(nn.Module):
    """One learned adapter per key (``kind`` from :data:`ADAPTER_KINDS`), or none (``kind`` None or
    ``"none"``: the student's channels must equal the teacher's).

    The teacher channel count is read from the teacher tensor, so a teacher whose channels differ from a
    student's built-in adapters (LiRCDepth's radar adapters map to 64, 128, 128, 512, 512; our CaFNet gives
    64, 64, 128, 256, 512) needs no configuration. These are parameters of the loss: the trainer optimises
    ``loss.parameters()`` with the student's.
    """

    def __init__(self, keys: Iterable[str], kind: str | None):
        super().__init__()
        self.blocks = None if kind in (None, "none") else nn.ModuleDict({key: LazyAdapter(kind) for key in keys})

    def forward(self, key: str, student: Tensor, teacher: Tensor) -> Tensor:
        out = student if self.blocks is None else self.blocks[key](student, teacher)
        if out.shape[1] != teacher.shape[1]:
            raise ValueError(f"{key}: {out.shape[1]} student channels for {teacher.shape[1]} teacher channels"
                             + (" (no adapter configured)" if self.blocks is None else ""))
        return out
