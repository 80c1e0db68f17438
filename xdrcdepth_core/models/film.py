"""FiLM fusion of image and radar features (XD-RCDepth, arXiv 2510.13565).

XD-RCDepth fuses the two modalities at every encoder scale by feature-wise linear modulation
(Perez et al., AAAI 2018, "FiLM"): gamma = Conv1x1(f_r), beta = Conv1x1(f_r),
f_fuse = (1 + gamma) * f_i + beta, with gamma, beta in R^{C x 1 x 1} (channel-wise scale and shift).

Our choices (the paper's exact pooling is not known, see papers.md Sec. 1.3):
- f_r is globally average-pooled to C_r x 1 x 1 before the two 1x1 convs, which gives the channel-wise
  gamma, beta the paper describes;
- ``spatial=True`` (an option, off by default) skips the pooling, so gamma, beta are C x H x W maps and
  the radar's spatial layout reaches the fused feature; the channel-wise form cannot tell the decoder
  *where* a radar return is, only modulate channels globally;
- both 1x1 convs are initialised to zero (weights and biases), so at initialisation gamma = beta = 0 and
  the fusion is the identity on the image feature: training starts from the image-only network and
  learns how much radar modulation helps.
"""

from __future__ import annotations

from torch import Tensor, nn


class FiLMFusion(nn.Module):
    """``(1 + gamma(f_r)) * f_i + beta(f_r)`` with gamma, beta from (globally pooled) radar features."""

    def __init__(self, image_channels: int, radar_channels: int, spatial: bool = False):
        super().__init__()
        self.pool = nn.Identity() if spatial else nn.AdaptiveAvgPool2d(1)
        self.gamma = nn.Conv2d(radar_channels, image_channels, 1)
        self.beta = nn.Conv2d(radar_channels, image_channels, 1)
        for conv in (self.gamma, self.beta):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def modulation(self, radar_feature: Tensor) -> tuple[Tensor, Tensor]:
        """gamma, beta (each B x C_i x 1 x 1, or B x C_i x H x W if spatial) from the radar feature."""
        pooled = self.pool(radar_feature)
        return self.gamma(pooled), self.beta(pooled)

    def forward(self, image_feature: Tensor, radar_feature: Tensor) -> Tensor:
        gamma, beta = self.modulation(radar_feature)
        return (1 + gamma) * image_feature + beta
