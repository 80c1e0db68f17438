"""Confidence-aware gated fusion (CaGF) of image and radar features, CaFNet-style.

CaFNet (Sun et al., IROS 2024, arXiv 2407.00697) predicts a radar confidence map in a first stage and
fuses radar into the image branch through "confidence-aware gated fusion". The fusion formula below is
the one in the authors' code (``bts_gated_fuse``, papers.md Sec. 3.2):

    f_fuse = f_i + sigmoid(W_g * f_r) (.) ReLU(W_p * f_r) (.) AvgPool_s(c)

with W_g, W_p bias-free 1x1 convs C_r -> C_i, c in (0, 1) the radar confidence map and AvgPool_s its
average over each s x s cell of the feature's scale.

Our design (the paper's confidence network is "not found" in detail, and CaFNet's first stage -- a
sparse-conv radar encoder, a radar decoder that also predicts coarse radar depth, and a second radar
encoder on the masked coarse depth -- is not reproduced): the confidence map is predicted from the radar
encoder's 1/2-scale feature by Conv3x3-BN-ReLU -> Conv1x1 -> sigmoid (:class:`RadarConfidenceHead`) and
is pooled to every scale with adaptive average pooling (= AvgPool_s for sizes divisible by 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdrcdepth_core.models.conv import ConvNormAct


class RadarConfidenceHead(nn.Module):
    """Radar confidence in (0, 1) (B x 1 x h x w) from a radar feature map of the same size."""

    def __init__(self, in_channels: int, hidden_channels: int = 32):
        super().__init__()
        self.body = ConvNormAct(in_channels, hidden_channels, 3)
        self.logit = nn.Conv2d(hidden_channels, 1, 1)

    def forward(self, radar_feature: Tensor) -> Tensor:
        return torch.sigmoid(self.logit(self.body(radar_feature)))


class ConfidenceGatedFusion(nn.Module):
    """``f_i + sigmoid(W_g f_r) * ReLU(W_p f_r) * pool(c)`` (CaFNet CaGF as in its code)."""

    def __init__(self, image_channels: int, radar_channels: int):
        super().__init__()
        self.gate = nn.Conv2d(radar_channels, image_channels, 1, bias=False)
        self.project = nn.Conv2d(radar_channels, image_channels, 1, bias=False)

    def forward(self, image_feature: Tensor, radar_feature: Tensor, confidence: Tensor) -> Tensor:
        confidence = F.adaptive_avg_pool2d(confidence, image_feature.shape[-2:])
        gated = torch.sigmoid(self.gate(radar_feature)) * F.relu(self.project(radar_feature))
        return image_feature + gated * confidence
