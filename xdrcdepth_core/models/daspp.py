"""Dense atrous spatial pyramid pooling (DenseASPP), full and point-wise.

DenseASPP: Yang et al., CVPR 2018, "DenseASPP for Semantic Segmentation in Street Scenes", Sec. 3:
atrous branches with growing dilation rates, each branch takes the concatenation of the block input and
all previous branch outputs (dense connections), each branch = 1x1 bottleneck conv then 3x3 atrous conv;
the block output concatenates the input and all branches. BTS (Lee et al. 2019) uses it at 1/8 with rates
3, 6, 12, 18, 24 (``pointwise=False`` here).

XD-RCDepth (arXiv 2510.13565) decodes with "point-wise DASPP": dense atrous branches with point-wise
(1x1) convolutions; its rates and widths are not published (papers.md Sec. 1.3). Our point-wise branch
(``pointwise=True``) is: 1x1 point-wise conv (in_i -> growth) + BN + ReLU6, then a depthwise 3x3 atrous
conv (growth channels, dilation r) + BN + ReLU6, so a branch costs ``in_i * growth + 9 * growth``
weights instead of ``in_i * 2g + 9 * 2g * g``. Both variants end with a 1x1 conv (+ BN + act) from
``in + len(rates) * growth`` channels to ``out_channels``. Rates and growth are chosen by the model using
the block (see ``xdrcdepth.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xdrcdepth_core.models.conv import ConvNormAct


class DenseASPP(nn.Module):
    """Densely connected atrous branches; ``pointwise`` selects the XD-RCDepth point-wise branch."""

    def __init__(self, in_channels: int, out_channels: int, growth: int, rates: tuple[int, ...],
                 pointwise: bool = True, act: str = "relu6"):
        super().__init__()
        branches = []
        for index, rate in enumerate(rates):
            branch_in = in_channels + index * growth
            if pointwise:
                branch = nn.Sequential(
                    ConvNormAct(branch_in, growth, 1, act=act),
                    ConvNormAct(growth, growth, 3, dilation=rate, groups=growth, act=act))
            else:
                branch = nn.Sequential(
                    ConvNormAct(branch_in, 2 * growth, 1, act=act),
                    ConvNormAct(2 * growth, growth, 3, dilation=rate, act=act))
            branches.append(branch)
        self.branches = nn.ModuleList(branches)
        self.project = ConvNormAct(in_channels + len(rates) * growth, out_channels, 1, act=act)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        for branch in self.branches:
            x = torch.cat([x, branch(x)], dim=1)
        return self.project(x)
