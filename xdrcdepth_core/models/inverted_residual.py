"""MobileNetV2 inverted residual block, and its transposed form used by the LiRCDepth decoder.

Sandler et al., CVPR 2018, "MobileNetV2", Sec. 3.3 / Table 1: 1x1 expansion (factor t) -> 3x3 depthwise
(stride s) -> 1x1 linear projection, identity shortcut when stride 1 and C_in == C_out.

LiRCDepth (arXiv 2412.16380, code ``InvertedResidualBlockTranspose``) uses the same block with the
depthwise and projection convs transposed (a stride-2 transposed depthwise conv doubles H and W), always
expands (also for t = 1) and has no shortcut; ``transposed=True`` selects exactly that.
"""

from __future__ import annotations

from torch import Tensor, nn

from xdrcdepth_core.models.conv import ConvNormAct


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 (stride) -> project (1x1, linear); ReLU6 as in MobileNetV2."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int,
                 transposed: bool = False):
        super().__init__()
        hidden = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1 or transposed:
            layers.append(ConvNormAct(in_channels, hidden, 1, act="relu6"))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden, act="relu6", transposed=transposed),
            ConvNormAct(hidden, out_channels, 1, act=None, transposed=transposed),
        ]
        self.block = nn.Sequential(*layers)
        self.use_shortcut = not transposed and stride == 1 and in_channels == out_channels
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.use_shortcut else out
