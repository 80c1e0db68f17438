"""What every depth model here shares: constructor config, input checks and the output-dict layout.

Output dict (monodepth2-style ``(name, scale)`` keys; scale s means 1/s of the input size):

- ``"depth"``: B x 1 x H x W final depth in metres, ``max_depth * sigmoid(.)`` so in (0, max_depth];
- ``("depth", s)`` for s in (8, 4, 2): intermediate depths upsampled to H x W, same range;
- ``("image", s)``, ``("radar", s)``, ``("fused", s)`` for s in (2, 4, 8, 16, 32): encoder and fusion
  features (the tensors feature distillation works on);
- ``("decoder", s)``: decoder features at the scales the decoder has (at least 16, 8, 4, 2).

Inputs: ``image`` B x 3 x H x W (ImageNet-normalised), ``radar`` B x C x H x W (C = ``radar_channels``,
scaled by the caller, 0 = empty pixel); H and W must be multiples of 32.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

#: encoder / fusion feature scales (1/2 .. 1/32 of the input).
ENCODER_SCALES = (2, 4, 8, 16, 32)
#: scales of the intermediate depth heads, coarse to fine.
INTERMEDIATE_DEPTH_SCALES = (8, 4, 2)
#: H and W must be divisible by this (five stride-2 stages).
SIZE_DIVISOR = 32


def _plain(value):
    """Config values as plain JSON/YAML types: tuples become lists (recursively)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def per_scale(name: str, features: Sequence[Tensor], scales: Sequence[int] = ENCODER_SCALES) -> dict:
    """``{(name, s): feature}`` for features listed fine to coarse at ``scales``."""
    if len(features) != len(scales):
        raise ValueError(f"{len(features)} {name} features for {len(scales)} scales")
    return {(name, s): f for s, f in zip(scales, features)}


class DepthModel(nn.Module):
    """Base class: stores ``max_depth``, ``radar_channels`` and the ``config`` that rebuilds the model.

    ``build_model(model.name, **model.config)`` returns an identically shaped model; ``name`` is set by
    :func:`xdrcdepth_core.models.registry.register_model`.
    """

    name: str = ""

    def __init__(self, max_depth: float, radar_channels: int, **config):
        super().__init__()
        if not max_depth > 0:
            raise ValueError(f"max_depth must be > 0, got {max_depth}")
        if int(radar_channels) < 1:
            raise ValueError(f"radar_channels must be >= 1, got {radar_channels}")
        self.max_depth = float(max_depth)
        self.radar_channels = int(radar_channels)
        self.config = {"max_depth": self.max_depth, "radar_channels": self.radar_channels,
                       **{k: _plain(v) for k, v in config.items()}}

    def check_inputs(self, image: Tensor, radar: Tensor) -> tuple[int, int]:
        """Validate shapes; return (H, W). Raises ValueError naming the model and the bad shape."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"{self.name}: image must be B x 3 x H x W, got {tuple(image.shape)}")
        expected = (image.shape[0], self.radar_channels, *image.shape[2:])
        if tuple(radar.shape) != expected:
            raise ValueError(f"{self.name}: radar must be B x {self.radar_channels} x H x W = {expected}, "
                             f"got {tuple(radar.shape)}")
        height, width = image.shape[-2:]
        if height % SIZE_DIVISOR or width % SIZE_DIVISOR:
            raise ValueError(f"{self.name}: H and W must be multiples of {SIZE_DIVISOR}, got {height} x {width}")
        return int(height), int(width)
