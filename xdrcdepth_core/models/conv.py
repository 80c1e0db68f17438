"""Conv -> (BatchNorm) -> activation: the one convolution unit every model here is built from.

Used by MobileNetV2 (Sandler et al., CVPR 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", Sec. 3 / Table 1: Conv-BN-ReLU6), ResNet (He et al., CVPR 2016, Conv-BN-ReLU), the BTS-style
decoder (Lee et al. 2019, "From Big to Small", arXiv 1907.10326: Conv-ELU without BN) and the LiRCDepth
adapters (LiRCDepth arXiv 2412.16380, code ``ConvModule`` = 1x1 Conv without bias + ReLU, no BN).

Our choices: by default the conv carries a bias only when there is no BatchNorm after it (a bias before
BN is redundant; ``bias=False`` reproduces LiRCDepth's bias-free adapters); ``transposed=True`` swaps
``nn.Conv2d`` for ``nn.ConvTranspose2d`` (LiRCDepth decoder), so the decoder variant is a flag, not a
copied class.
"""

from __future__ import annotations

import torch
from torch import nn

#: activation name -> factory; ``None`` means a linear (identity) output as in a linear bottleneck.
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    None: nn.Identity,
}


def make_activation(name: str | None) -> nn.Module:
    """Return a fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(k for k in ACTIVATIONS if k)} or None")
    return ACTIVATIONS[name]()


class DilatedDepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (depthwise, dilation > 1) that trains on a CPU with its input in NCHW.

    A workaround of ours for a kernel defect, not a model change: with torch 2.13's CPU kernels, the weight
    gradient of a depthwise convolution with dilation > 1 on a channels_last bfloat16 input is wrong (it
    does not match the float32 gradient at all) and in some backward passes NaN (measured on an
    AVX512-BF16/AMX Xeon: NaN in 4-33 % of passes at 24 channels, 64 x 128, dilation 2-4; correct with an
    NCHW input, in float32, at dilation 1 and with dense groups). One NaN step made every weight of a bf16
    training run NaN. The layout change costs a copy of the input and of the weight while training;
    evaluation, inference and export run the plain convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and x.device.type == "cpu":
            # both in NCHW: a channels_last model's weight (C x 1 x k x k, strides C-last) alone selects the
            # defective kernel too; clone, since contiguous() keeps those strides (they are contiguous as well)
            return self._conv_forward(x.contiguous(), self.weight.clone(memory_format=torch.contiguous_format),
                                      self.bias)
        return super().forward(x)


class ConvNormAct(nn.Sequential):
    """``k x k`` convolution (optionally dilated, grouped or transposed), BatchNorm, activation.

    Padding keeps the spatial size for stride 1 (``dilation * (k - 1) // 2``); a transposed conv with
    stride 2 uses ``output_padding=1`` so it exactly doubles H and W.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, groups: int = 1, norm: bool = True, act: str | None = "relu",
                 transposed: bool = False, bias: bool | None = None):
        bias = (not norm) if bias is None else bias
        padding = dilation * (kernel_size - 1) // 2
        if transposed:
            conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                      output_padding=stride - 1, groups=groups, bias=bias,
                                      dilation=dilation)
        else:
            kind = DilatedDepthwiseConv2d if dilation > 1 and groups == in_channels > 1 else nn.Conv2d
            conv = kind(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                        groups=groups, bias=bias)
        layers = [conv]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(make_activation(act))
        super().__init__(*layers)
        self.out_channels = out_channels
