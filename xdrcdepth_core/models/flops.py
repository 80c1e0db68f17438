"""Multiply-accumulate (MAC) counting with forward hooks; GFLOPs = 2 * MACs / 1e9.

Convention (ours, the common one of thop/fvcore-style counters): only convolutions, transposed
convolutions and linear layers are counted; one MAC = one multiply plus one add; bias additions,
normalisation, activations, pooling, interpolation and element-wise ops are not counted.

- ``nn.Conv2d``: MACs = N * C_out * H_out * W_out * (C_in / groups) * k_h * k_w
- ``nn.ConvTranspose2d``: MACs = N * C_in * H_in * W_in * (C_out / groups) * k_h * k_w (every input pixel
  is scattered through the whole kernel)
- ``nn.Linear``: MACs = (number of output elements) * in_features

Many papers quote thop-style MAC counts as "FLOPs". Cross-check (our arithmetic, not a paper number):
``lircdepth`` at 896 x 1600 counts 118.9 GMACs (237.7 GFLOPs here), close to the "about 121 G" FLOPs a
secondary summary gives for LiRCDepth (papers.md Sec. 2.1), so that figure is most likely MACs.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _conv_macs(module: nn.Conv2d, inputs, output) -> int:
    kernel = math.prod(module.kernel_size)
    return output.numel() * (module.in_channels // module.groups) * kernel


def _conv_transpose_macs(module: nn.ConvTranspose2d, inputs, output) -> int:
    kernel = math.prod(module.kernel_size)
    return inputs[0].numel() * (module.out_channels // module.groups) * kernel


def _linear_macs(module: nn.Linear, inputs, output) -> int:
    return output.numel() * module.in_features


_COUNTERS = ((nn.ConvTranspose2d, _conv_transpose_macs), (nn.Conv2d, _conv_macs), (nn.Linear, _linear_macs))


@torch.no_grad()
def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one ``model(*inputs)`` call (all batch items). Works on the ``meta`` device too."""
    total = 0

    def hook(counter):
        def record(module, module_inputs, output):
            nonlocal total
            total += counter(module, module_inputs, output)
        return record

    handles = []
    for module in model.modules():
        for kind, counter in _COUNTERS:
            if isinstance(module, kind):
                handles.append(module.register_forward_hook(hook(counter)))
                break
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def gflops(macs: int) -> float:
    """GFLOPs under the convention above: 2 * MACs / 1e9."""
    return 2.0 * macs / 1e9
