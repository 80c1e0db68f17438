"""Confidence-aware gated fusion (CaGF) of radar features into an image-branch feature, CaFNet-style.

CaFNet (Sun et al., IROS 2024, arXiv 2407.00697) predicts a radar confidence map in its first stage and
adds radar features to the image branch through "confidence-aware gated fusion". The formula is the one
in the authors' code (``models/bts.py`` ``bts_gated_fuse``, papers.md Sec. 3.2):

    f_fuse = f + sigmoid(W_g * f_r) (.) ReLU(W_p * f_r) (.) AvgPool_s(c)

with W_g, W_p bias-free 1x1 convs C_r -> C (``weight*`` / ``project*`` in the code), ``f`` the image-branch
feature at scale 1/s (in CaFNet: the 1/32 image encoder feature, then the *decoder* features at 1/16,
1/8 (after the dense ASPP), 1/4 and 1/2), ``f_r`` the radar encoder feature of the same scale and
``c`` in (0, 1) the full-resolution radar confidence, averaged over each s x s cell.

Our choices: the confidence is pooled with adaptive average pooling (identical to CaFNet's fixed
``AvgPool2d(s, s)`` when H and W are multiples of 32, which the models require) and cast to the feature's
dtype, so under bf16 autocast the fused feature stays bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConfidenceGatedFusion(nn.Module):
    """``f + sigmoid(W_g f_r) * ReLU(W_p f_r) * pool(c)`` (CaFNet CaGF as in its code).

    ``channels``: channels of ``f`` (image encoder or decoder feature); ``radar_channels``: of ``f_r``.
    """

    def __init__(self, channels: int, radar_channels: int):
        super().__init__()
        self.gate = nn.Conv2d(radar_channels, channels, 1, bias=False)
        self.project = nn.Conv2d(radar_channels, channels, 1, bias=False)

    def forward(self, feature: Tensor, radar_feature: Tensor, confidence: Tensor) -> Tensor:
        gated = torch.sigmoid(self.gate(radar_feature)) * F.relu(self.project(radar_feature))
        pooled = F.adaptive_avg_pool2d(confidence, feature.shape[-2:]).to(gated.dtype)
        return feature + gated * pooled
