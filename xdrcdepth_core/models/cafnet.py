"""CaFNet-style teacher (Sun et al., IROS 2024, arXiv 2407.00697): ResNet-34 image encoder, ResNet-18 radar
encoder, confidence-aware gated fusion, BTS-like decoder.

What follows CaFNet (papers.md Sec. 3.2, repo harborsarah/CaFNet ``models/``): image encoder
``resnet34_bts`` (He et al. 2016; skips = stem ReLU, layer1..4), radar encoder ResNet-18 on the 4 radar
channels (depth, RCS, vx, vy), a radar confidence map, the gated fusion formula of ``bts_gated_fuse``
(``gated_fusion.py``), a BTS decoder (Lee et al. 2019, arXiv 1907.10326) with ``bts_size`` 512:
upconv = nearest x2 + 3x3 conv + ELU, skip concatenation, 3x3 conv + ELU, dense ASPP at 1/8 with rates
3, 6, 12, 18, 24, depth estimates at 1/8, 1/4, 1/2 whose (normalised) maps are fed to the next finer
stage, and a final Conv3x3 + ELU over concat(features, 4 depth maps) -> Conv3x3 -> sigmoid x max_depth.

Our design (not found in papers.md or replaced for simplicity, all documented here):
- single stage: CaFNet's first stage (sparse-conv radar encoder + radar decoder predicting confidence
  and coarse radar depth, second radar encoder on the masked coarse depth) is replaced by a confidence
  head on the radar ResNet-18's 1/2-scale feature (``RadarConfidenceHead``); the confidence is returned
  as ``"radar_confidence"`` (B x 1 x H x W in (0, 1)) for optional BCE supervision;
- gated fusion is applied to the encoder skips at all five scales (``("fused", s)``), and the decoder
  consumes the fused skips (CaFNet gates decoder features at 1/16 .. 1/2 and the 1/32 encoder feature);
- BTS's local planar guidance layers are replaced by plain depth heads (3x3 conv, sigmoid x max_depth);
- BatchNorm follows each upconv's conv before the ELU (BTS applies it after the ELU).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xdrcdepth_core.models.base import DepthModel, INTERMEDIATE_DEPTH_SCALES, per_scale
from xdrcdepth_core.models.conv import ConvNormAct
from xdrcdepth_core.models.daspp import DenseASPP
from xdrcdepth_core.models.depth_head import DepthHead, DepthRefinement, upsample_to
from xdrcdepth_core.models.gated_fusion import ConfidenceGatedFusion, RadarConfidenceHead
from xdrcdepth_core.models.registry import register_model
from xdrcdepth_core.models.resnet import ResNetEncoder

#: BTS dense ASPP rates at 1/8.
BTS_DASPP_RATES = (3, 6, 12, 18, 24)


class UpConv(nn.Sequential):
    """BTS ``upconv``: nearest x2 upsampling, 3x3 conv, BN, ELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                         ConvNormAct(in_channels, out_channels, 3, act="elu"))


@register_model("cafnet")
class CaFNet(DepthModel):
    """Teacher: ResNet-34 image + ResNet-18 radar encoders, confidence-gated fusion, BTS-like decoder."""

    def __init__(self, max_depth: float = 100.0, radar_channels: int = 4, image_depth: int = 34,
                 radar_depth: int = 18, bts_size: int = 512):
        super().__init__(max_depth, radar_channels, image_depth=image_depth, radar_depth=radar_depth,
                         bts_size=bts_size)
        self.image_encoder = ResNetEncoder(image_depth, 3)
        self.radar_encoder = ResNetEncoder(radar_depth, radar_channels)
        image_ch, radar_ch = self.image_encoder.out_channels, self.radar_encoder.out_channels
        self.confidence_head = RadarConfidenceHead(radar_ch[0])
        self.fusions = nn.ModuleList(ConfidenceGatedFusion(i, r) for i, r in zip(image_ch, radar_ch))

        f = bts_size
        widths = (f, f // 2, f // 4, f // 8)  # decoder width at 1/16, 1/8, 1/4, 1/2
        # stage inputs: upconv(previous) + skip (+ 1 normalised depth map from the coarser scale at 1/4, 1/2)
        self.upconvs = nn.ModuleList([UpConv(image_ch[4], f), UpConv(f, f // 2), UpConv(f // 4, f // 4),
                                      UpConv(f // 4, f // 8)])
        self.stage_convs = nn.ModuleList([
            ConvNormAct(f + image_ch[3], widths[0], 3, norm=False, act="elu"),
            ConvNormAct(f // 2 + image_ch[2], widths[1], 3, act="elu"),
            ConvNormAct(f // 4 + image_ch[1] + 1, widths[2], 3, norm=False, act="elu"),
            ConvNormAct(f // 8 + image_ch[0] + 1, widths[3], 3, norm=False, act="elu"),
        ])
        self.daspp = DenseASPP(widths[1], f // 4, f // 4, BTS_DASPP_RATES, pointwise=False, act="elu")
        self.depth_heads = nn.ModuleList(DepthHead(c, max_depth) for c in (f // 4, widths[2], widths[3]))
        self.full_resolution_upconv = UpConv(widths[3], f // 16)
        self.refinement = DepthRefinement(f // 16, len(INTERMEDIATE_DEPTH_SCALES), max_depth, act="elu")

    def forward(self, image: Tensor, radar: Tensor) -> dict:
        size = self.check_inputs(image, radar)
        image_feats = self.image_encoder(image)
        radar_feats = self.radar_encoder(radar)
        confidence = self.confidence_head(radar_feats[0])
        fused = [fusion(i, r, confidence) for fusion, i, r in zip(self.fusions, image_feats, radar_feats)]
        out = {**per_scale("image", image_feats), **per_scale("radar", radar_feats), **per_scale("fused", fused),
               "radar_confidence": upsample_to(confidence, size)}

        x16 = self._stage(0, fused[4], fused[3])
        x8 = self.daspp(self._stage(1, x16, fused[2]))
        d8 = self.depth_heads[0](x8)
        x4 = self._stage(2, x8, fused[1], d8)
        d4 = self.depth_heads[1](x4)
        x2 = self._stage(3, x4, fused[0], d4)
        d2 = self.depth_heads[2](x2)
        out.update(per_scale("decoder", [x2, x4, x8, x16], (2, 4, 8, 16)))
        depths = [upsample_to(d, size) for d in (d8, d4, d2)]
        out.update(per_scale("depth", depths, INTERMEDIATE_DEPTH_SCALES))
        x = self.full_resolution_upconv(x2)
        out[("decoder", 1)] = x
        out["depth"] = self.refinement(x, depths)
        return out

    def _stage(self, index: int, x: Tensor, skip: Tensor, coarse_depth: Tensor | None = None) -> Tensor:
        """upconv(x), concat the fused skip (and the coarser depth / max_depth), 3x3 conv."""
        parts = [self.upconvs[index](x), skip]
        if coarse_depth is not None:
            parts.append(upsample_to(coarse_depth, skip.shape[-2:]) / self.max_depth)
        return self.stage_convs[index](torch.cat(parts, dim=1))
