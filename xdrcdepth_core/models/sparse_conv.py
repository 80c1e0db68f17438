"""Sparsity-invariant convolutions for the sparse radar raster (CaFNet's stage-1 radar encoder front end).

Uhrig et al., 3DV 2017, "Sparsity Invariant CNNs", Sec. 4 / Eq. 2: with a binary validity mask ``m``
(1 where the input pixel carries a measurement),

    y = (W * (m . x)) / (1 * m + eps) + b,        m' = max_pool_k(m)

i.e. the convolution only sums valid pixels and is normalised by how many valid pixels its window saw, so
the output does not depend on the density of the input; the mask is propagated by a k x k max pool. CaFNet
(Sun et al., IROS 2024, arXiv 2407.00697; code ``models/radar.py`` ``SparseConv`` and
``encoder_radar_sparse_conv``) uses exactly this layer, with ELU, as the first part of its stage-1 radar
encoder: four layers C -> 16 (7x7) -> 16 (5x5) -> 16 (3x3) -> 3 (3x3) whose 3-channel output feeds a
ResNet-18; the initial mask is ``radar depth channel > 0``.

This is a dense implementation (ordinary ``nn.Conv2d`` on the masked raster), not a sparse-tensor library;
it computes the same function as the layer above.

Our choices: the window count is computed with an average pool (``count = avg_pool(m) * k^2``, exact for
small integer counts and not down-cast by autocast) and the division uses ``max(count, 1)`` instead of
``count + 1e-8`` -- identical wherever the window holds a valid pixel, and where it holds none the masked
convolution is exactly 0 either way, so the output there is ``act(b)`` in both versions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdrcdepth_core.models.conv import make_activation

#: CaFNet's stage-1 sparse layers: (out_channels, kernel_size); the last one maps to 3 "RGB-like" channels
#: so a standard 3-channel ResNet can follow.
CAFNET_SPARSE_LAYERS = ((16, 7), (16, 5), (16, 3), (3, 3))


class SparsityInvariantConv(nn.Module):
    """One Uhrig et al. (2017) layer: masked conv normalised by the valid count, bias, activation, mask max-pool.

    ``forward(x, mask)`` with ``x`` B x C x H x W and ``mask`` B x 1 x H x W in {0, 1}; returns
    ``(y, new_mask)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, act: str | None = "elu"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act = make_activation(act)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        k, pad = self.kernel_size, self.kernel_size // 2
        y = self.conv(x * mask.to(x.dtype))
        count = F.avg_pool2d(mask.float(), k, stride=1, padding=pad, count_include_pad=True) * (k * k)
        y = y * (1.0 / count.clamp_min(1.0)).to(y.dtype) + self.bias.view(1, -1, 1, 1).to(y.dtype)
        return self.act(y), F.max_pool2d(mask, k, stride=1, padding=pad)


class SparseRadarStem(nn.Module):
    """CaFNet's sparse front end: four sparsity-invariant layers (ELU) from the C radar channels to 3 channels.

    The validity mask is ``radar[:, depth_channel] > 0`` (an empty raster pixel is 0 in every channel).
    Returns B x 3 x H x W, input to a 3-channel ResNet.
    """

    def __init__(self, in_channels: int, layers=CAFNET_SPARSE_LAYERS, depth_channel: int = 0):
        super().__init__()
        convs, channels = [], in_channels
        for out, kernel in layers:
            convs.append(SparsityInvariantConv(channels, out, kernel, act="elu"))
            channels = out
        self.layers = nn.ModuleList(convs)
        self.depth_channel = int(depth_channel)
        self.out_channels = channels

    def forward(self, radar: Tensor) -> Tensor:
        mask = (radar[:, self.depth_channel:self.depth_channel + 1] > 0).to(radar.dtype)
        x = radar
        for layer in self.layers:
            x, mask = layer(x, mask)
        return x
