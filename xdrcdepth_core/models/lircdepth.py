"""LiRCDepth baseline student (Sun et al., ICASSP 2025, arXiv 2412.16380), rebuilt from its public code.

Structure (papers.md Sec. 2.2, repo harborsarah/LiRCDepth ``student_models/``):

- image encoder: MobileNetV2 ``features`` (Sandler et al. 2018), skips after layers 1, 3, 6, 10, 18 ->
  [16, 24, 32, 64, 1280] channels at 1/2 .. 1/32;
- radar encoder: Conv3x3 (C -> 3, no bias) + ReLU, then a second MobileNetV2 ``features``, same skips;
- adapters (when feature distillation is on): bias-free 1x1 Conv + ReLU per scale mapping the skips to
  the teacher's channels, image -> [64, 64, 128, 256, 512], radar -> [64, 128, 128, 512, 512];
- fusion: element-wise addition per scale; when both adapters are on, the radar feature first passes a
  bias-free 1x1 Conv + ReLU to the image channels at every scale (the repo's ``conv_radar``);
- decoder: stacks of "InvertedResidualBlockTranspose" (expansion 6, last block of a stage has stride 2 and
  doubles the size), ``num_features = [512, 128, 128, 64, 32]``, stage 1/32->1/16 with 3 blocks and
  hidden width 512/16, 1/16->1/8 with 8 blocks (128/8), 1/8->1/4 with 3 (128/4), 1/4->1/2 with 2 (64/2),
  then a 3x3 stride-2 transposed conv to full resolution (32 ch); intermediate depth heads (1x1 conv) at
  1/8, 1/4, 1/2; final Conv3x3 + ReLU over concat(features, 4 depth maps) -> Conv3x3 -> sigmoid x
  max_depth (100).

"Paper configuration" = the repo's ``arguments_train_nuscenes_student.txt``: both adapters on, radar
channels 4, max_depth 100 -- this class's defaults. Its parameter count is 12,645,228, exactly the value
derived in papers.md Sec. 2.2 (image encoder 2,902,272; radar encoder 2,920,300; decoder 6,822,656).

Our deviations (parameter count unchanged): intermediate heads are ``max_depth * sigmoid`` instead of
ReLU, depth maps enter the final conv divided by max_depth, and intermediate maps are upsampled
bilinearly (see ``depth_head.py``); no pretrained ImageNet weights (torchvision is not available). The
optional radar-confidence module of the repo (off in the paper configuration) is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from xdrcdepth_core.models.base import DepthModel, INTERMEDIATE_DEPTH_SCALES, per_scale
from xdrcdepth_core.models.conv import ConvNormAct
from xdrcdepth_core.models.depth_head import DepthHead, DepthRefinement, upsample_to
from xdrcdepth_core.models.inverted_residual import InvertedResidual
from xdrcdepth_core.models.mobilenetv2 import MobileNetV2Encoder
from xdrcdepth_core.models.registry import register_model

#: LiRCDepth taps MobileNetV2 layer 10 (64 channels) at 1/16.
LIRC_FEATURE_INDICES = (1, 3, 6, 10, 18)
#: teacher channel counts the repo's adapters map to (image, radar), both adapters on.
TEACHER_IMAGE_CHANNELS = (64, 64, 128, 256, 512)
TEACHER_RADAR_CHANNELS = (64, 128, 128, 512, 512)
#: decoder stages 1/32->1/16, 1/16->1/8, 1/8->1/4, 1/4->1/2: (blocks, hidden width divisor of num_features).
DECODER_STAGES = ((3, 16), (8, 8), (3, 4), (2, 2))
EXPANSION = 6


def _adapters(in_channels: Sequence[int], out_channels: Sequence[int] | None) -> tuple[nn.ModuleList, list[int]]:
    """Bias-free 1x1 Conv + ReLU per scale (identity where no adapter is configured)."""
    if out_channels is None:
        return nn.ModuleList(nn.Identity() for _ in in_channels), list(in_channels)
    if len(out_channels) != len(in_channels):
        raise ValueError(f"adapter channels need {len(in_channels)} entries, got {list(out_channels)}")
    convs = [ConvNormAct(c_in, c_out, 1, norm=False, act="relu", bias=False)
             for c_in, c_out in zip(in_channels, out_channels)]
    return nn.ModuleList(convs), list(out_channels)


def _transpose_stage(in_channels: int, hidden: int, out_channels: int, blocks: int) -> nn.Sequential:
    """``blocks`` transposed inverted residuals: in -> hidden, hidden -> hidden ..., hidden -> out (stride 2)."""
    layers = [InvertedResidual(in_channels, hidden, 1, EXPANSION, transposed=True)]
    layers += [InvertedResidual(hidden, hidden, 1, EXPANSION, transposed=True) for _ in range(blocks - 2)]
    layers.append(InvertedResidual(hidden, out_channels, 2, EXPANSION, transposed=True))
    return nn.Sequential(*layers)


@register_model("lircdepth")
class LiRCDepth(DepthModel):
    """LiRCDepth student: two MobileNetV2 encoders, additive fusion, transposed inverted-residual decoder."""

    def __init__(self, max_depth: float = 100.0, radar_channels: int = 4,
                 image_adapter_channels: Sequence[int] | None = TEACHER_IMAGE_CHANNELS,
                 radar_adapter_channels: Sequence[int] | None = TEACHER_RADAR_CHANNELS,
                 decoder_channels: Sequence[int] = (512, 128, 128, 64, 32)):
        super().__init__(max_depth, radar_channels, image_adapter_channels=image_adapter_channels,
                         radar_adapter_channels=radar_adapter_channels, decoder_channels=decoder_channels)
        if len(decoder_channels) != 5:
            raise ValueError(f"decoder_channels needs 5 entries, got {list(decoder_channels)}")
        self.image_encoder = MobileNetV2Encoder(3, feature_indices=LIRC_FEATURE_INDICES)
        self.radar_stem = ConvNormAct(radar_channels, 3, 3, norm=False, act="relu", bias=False)
        self.radar_encoder = MobileNetV2Encoder(3, feature_indices=LIRC_FEATURE_INDICES)
        self.image_adapters, image_ch = _adapters(self.image_encoder.out_channels, image_adapter_channels)
        self.radar_adapters, radar_ch = _adapters(self.radar_encoder.out_channels, radar_adapter_channels)
        # The repo adds ``conv_radar`` (1x1 + ReLU at all 5 scales) exactly when both adapters are on.
        both_adapters = image_adapter_channels is not None and radar_adapter_channels is not None
        if not both_adapters and radar_ch != image_ch:
            raise ValueError(f"additive fusion needs equal channels without both adapters: image {image_ch}, "
                             f"radar {radar_ch}")
        self.radar_to_image = nn.ModuleList(
            ConvNormAct(r, i, 1, norm=False, act="relu", bias=False) if both_adapters else nn.Identity()
            for r, i in zip(radar_ch, image_ch))

        stages, previous = [], image_ch[-1]
        for (blocks, divisor), out, skip in zip(DECODER_STAGES, decoder_channels, reversed(image_ch[:4])):
            stages.append(_transpose_stage(previous, out // divisor, out, blocks))
            previous = out + skip
        self.decoder_stages = nn.ModuleList(stages)
        self.to_full_resolution = ConvNormAct(previous, decoder_channels[4], 3, stride=2, norm=False, act=None,
                                              transposed=True, bias=False)
        self.depth_heads = nn.ModuleList(DepthHead(c, max_depth, kernel_size=1) for c in decoder_channels[1:4])
        self.refinement = DepthRefinement(decoder_channels[4], len(INTERMEDIATE_DEPTH_SCALES), max_depth,
                                          act="relu")

    def forward(self, image: Tensor, radar: Tensor) -> dict:
        size = self.check_inputs(image, radar)
        image_feats = [a(f) for a, f in zip(self.image_adapters, self.image_encoder(image))]
        radar_feats = [a(f) for a, f in zip(self.radar_adapters, self.radar_encoder(self.radar_stem(radar)))]
        fused = [i + p(r) for i, p, r in zip(image_feats, self.radar_to_image, radar_feats)]
        out = {**per_scale("image", image_feats), **per_scale("radar", radar_feats), **per_scale("fused", fused)}

        x = fused[-1]
        depths = []
        skips = fused[-2::-1]  # 1/16, 1/8, 1/4, 1/2
        for index, (stage, skip, scale) in enumerate(zip(self.decoder_stages, skips, (16, 8, 4, 2))):
            x = stage(x)
            out[("decoder", scale)] = x
            if index > 0:
                depth = upsample_to(self.depth_heads[index - 1](x), size)
                out[("depth", scale)] = depth
                depths.append(depth)
            x = torch.cat([x, skip], dim=1)
        x = self.to_full_resolution(x)
        out[("decoder", 1)] = x
        out["depth"] = self.refinement(x, depths)
        return out
