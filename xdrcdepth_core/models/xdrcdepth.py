"""XD-RCDepth student (Sun, Wang, Peng et al. 2025, arXiv 2510.13565).

Published structure (papers.md Sec. 1.3, secondary sources): a MobileNetV2 image encoder and a MobileNetV2
radar encoder with features at five matching scales 1/2 .. 1/32, FiLM fusion at every scale
(f_fuse = (1 + gamma) * f_i + beta, channel-wise gamma, beta from radar features; ``film.py``), and a
decoder built from point-wise DASPP blocks (``daspp.py``) with sigmoid x max_depth output; the paper
claims 29.7 % fewer parameters than LiRCDepth.

Our choices (widths, rates, radar encoder and decoder layout are not published):
- image encoder: MobileNetV2 (Sandler et al. 2018) at ``width_mult`` with its final 1x1 expansion to
  1280 channels; features at the end of each resolution (16, 24, 32, 96, 1280 channels at width 1);
- radar encoder: a lighter MobileNetV2 at ``radar_width_mult`` (default 0.5 -> 8, 16, 16, 48, 160
  channels) whose stem takes the C radar channels directly and which has no final 1x1 expansion: sparse
  radar rasters carry far less information than the image, and FiLM only needs pooled radar statistics;
- FiLM as published (channel-wise, globally pooled radar); ``film_spatial=True`` is our option for
  per-pixel gamma, beta (same parameters; see ``film.py``);
- decoder, per scale s = 16, 8, 4, 2: 1x1 Conv-BN-ReLU6 reduction of the coarser decoder feature to
  ``decoder_channels[i]``, bilinear x2 upsampling, concatenation with the fused skip at 1/s, then a
  point-wise DASPP block (growth ``daspp_growth[i]``, rates ``daspp_rates[i]``); default rates (3, 6, 12)
  at 1/16 and 1/8 (context on coarse maps) and (1, 2, 4) at 1/4 and 1/2 (local detail). The width sits
  at the coarse scales (1024 channels at 1/16, 384 at 1/8), where parameters cost few FLOPs, and the
  fine scales stay narrow (128, 64, 32);
- depth heads (3x3 conv, sigmoid x max_depth) at 1/8, 1/4, 1/2; full resolution: 1x1 reduction to
  ``decoder_channels[4]``, x2 upsampling, then the LiRCDepth/BTS refinement over concat(features, depth
  maps) (``depth_head.py``).

Compared with LiRCDepth, the parameters saved come from dropping the teacher-channel adapters (the
paper criticises LiRCDepth's channel alignment) and from the lighter radar encoder. The defaults give
8,521,624 parameters = 67.4 % of LiRCDepth's paper configuration (12,645,228), i.e. -32.6 % (paper:
-29.7 %), and 25.7 GFLOPs vs 41.1 at 352 x 704 (``xdrcdepth models`` prints the table).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from xdrcdepth_core.models.base import DepthModel, INTERMEDIATE_DEPTH_SCALES, per_scale
from xdrcdepth_core.models.conv import ConvNormAct
from xdrcdepth_core.models.daspp import DenseASPP
from xdrcdepth_core.models.depth_head import DepthHead, DepthRefinement, upsample_to
from xdrcdepth_core.models.film import FiLMFusion
from xdrcdepth_core.models.mobilenetv2 import MobileNetV2Encoder
from xdrcdepth_core.models.registry import register_model

DECODER_SCALES = (16, 8, 4, 2)


@register_model("xdrcdepth")
class XDRCDepth(DepthModel):
    """XD-RCDepth student: MobileNetV2 image + radar encoders, FiLM fusion, point-wise DASPP decoder."""

    def __init__(self, max_depth: float = 100.0, radar_channels: int = 4, width_mult: float = 1.0,
                 radar_width_mult: float = 0.5,
                 decoder_channels: Sequence[int] = (1024, 384, 128, 64, 32),
                 daspp_growth: Sequence[int] = (256, 128, 48, 24),
                 daspp_rates: Sequence[Sequence[int]] = ((3, 6, 12), (3, 6, 12), (1, 2, 4), (1, 2, 4)),
                 film_spatial: bool = False):
        super().__init__(max_depth, radar_channels, width_mult=width_mult, radar_width_mult=radar_width_mult,
                         decoder_channels=decoder_channels, daspp_growth=daspp_growth, daspp_rates=daspp_rates,
                         film_spatial=film_spatial)
        if len(decoder_channels) != 5 or len(daspp_growth) != 4 or len(daspp_rates) != 4:
            raise ValueError("decoder_channels needs 5 entries (1/16 .. 1/1), daspp_growth and daspp_rates 4 "
                             f"(1/16 .. 1/2); got {list(decoder_channels)}, {list(daspp_growth)}, "
                             f"{[list(r) for r in daspp_rates]}")
        self.image_encoder = MobileNetV2Encoder(3, width_mult)
        self.radar_encoder = MobileNetV2Encoder(radar_channels, radar_width_mult, last_channels=None)
        image_ch = self.image_encoder.out_channels
        self.fusions = nn.ModuleList(FiLMFusion(i, r, film_spatial)
                                     for i, r in zip(image_ch, self.radar_encoder.out_channels))

        reductions, blocks, previous = [], [], image_ch[-1]
        for out, skip, growth, rates in zip(decoder_channels, reversed(image_ch[:4]), daspp_growth, daspp_rates):
            reductions.append(ConvNormAct(previous, out, 1, act="relu6"))
            blocks.append(DenseASPP(out + skip, out, growth, tuple(rates), pointwise=True))
            previous = out
        self.reductions = nn.ModuleList(reductions)
        self.daspp_blocks = nn.ModuleList(blocks)
        self.depth_heads = nn.ModuleList(DepthHead(c, max_depth) for c in decoder_channels[1:4])
        self.full_resolution_reduction = ConvNormAct(previous, decoder_channels[4], 1, act="relu6")
        self.refinement = DepthRefinement(decoder_channels[4], len(INTERMEDIATE_DEPTH_SCALES), max_depth,
                                          act="relu")

    def forward(self, image: Tensor, radar: Tensor) -> dict:
        size = self.check_inputs(image, radar)
        image_feats = self.image_encoder(image)
        radar_feats = self.radar_encoder(radar)
        fused = [film(i, r) for film, i, r in zip(self.fusions, image_feats, radar_feats)]
        out = {**per_scale("image", image_feats), **per_scale("radar", radar_feats), **per_scale("fused", fused)}

        x = fused[-1]
        depths = []
        for index, scale in enumerate(DECODER_SCALES):
            x = upsample_to(self.reductions[index](x), fused[-2 - index].shape[-2:])
            x = self.daspp_blocks[index](torch.cat([x, fused[-2 - index]], dim=1))
            out[("decoder", scale)] = x
            if index > 0:
                depth = upsample_to(self.depth_heads[index - 1](x), size)
                out[("depth", scale)] = depth
                depths.append(depth)
        x = upsample_to(self.full_resolution_reduction(x), size)
        out[("decoder", 1)] = x
        out["depth"] = self.refinement(x, depths)
        return out
