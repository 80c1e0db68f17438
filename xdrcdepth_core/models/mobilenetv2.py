"""MobileNetV2 feature extractor returning one feature map per scale 1/2, 1/4, 1/8, 1/16, 1/32.

Sandler et al., CVPR 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", Table 2: stem
3x3 conv (32, stride 2), then inverted-residual stages (t, c, n, s) = (1,16,1,1), (6,24,2,2), (6,32,3,2),
(6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1), then a 1x1 conv to 1280 channels. Channel counts are
scaled by ``width_mult`` and rounded to multiples of 8 exactly as the reference implementation
(torchvision ``_make_divisible``), and the layer list has the torchvision ``features`` layout, so the
parameter count of ``width_mult=1`` (2,223,872) equals torchvision's ``mobilenet_v2().features``.

Our choices: ``in_channels`` is free (the radar encoder feeds the C radar channels straight into the stem);
``last_channels=None`` drops the final 1x1 expansion (then the 1/32 feature has 320*width channels);
``feature_indices`` picks which layers are returned: the default takes the last layer of each resolution
(channels 16, 24, 32, 96, 1280 at width 1); LiRCDepth taps layer 10 (64 channels) at 1/16 instead.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from xdrcdepth_core.models.conv import ConvNormAct
from xdrcdepth_core.models.inverted_residual import InvertedResidual

#: (expansion t, output channels c, repeats n, first stride s) -- MobileNetV2 paper, Table 2.
INVERTED_RESIDUAL_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
#: last layer of each resolution 1/2 .. 1/32 in the ``features`` list (index 18 = the 1x1 expansion).
END_OF_SCALE_INDICES = (1, 3, 6, 13, 18)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90 % of it (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 ``features``; ``forward`` returns the 5 feature maps at 1/2 .. 1/32."""

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0, last_channels: int | None = 1280,
                 feature_indices: tuple[int, ...] = END_OF_SCALE_INDICES):
        super().__init__()
        # make_divisible floors every width at 8 channels: a zero or negative multiplier built a tiny network silently
        if not isinstance(width_mult, (int, float)) or not math.isfinite(width_mult) or width_mult <= 0:
            raise ValueError(f"width_mult must be a finite number > 0, got {width_mult!r}")
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvNormAct(in_channels, channels, 3, stride=2, act="relu6")]
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        if last_channels is not None:
            last = make_divisible(last_channels * max(1.0, width_mult))
            layers.append(ConvNormAct(channels, last, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        # Without the final 1x1 expansion the last layer (index 17) is the end of the 1/32 scale.
        feature_indices = tuple(min(i, len(layers) - 1) for i in feature_indices)
        if len(feature_indices) != 5 or list(feature_indices) != sorted(set(feature_indices)):
            raise ValueError(f"feature_indices must be 5 increasing layer indices, got {feature_indices}")
        self.feature_indices = feature_indices
        self.out_channels = [layers[i].out_channels for i in feature_indices]

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for index, layer in enumerate(self.features[: self.feature_indices[-1] + 1]):
            x = layer(x)
            if index in self.feature_indices:
                features.append(x)
        return features
