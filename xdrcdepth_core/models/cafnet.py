"""CaFNet teacher (Sun et al., IROS 2024, "CaFNet: A Confidence-Driven Framework for Radar Camera Depth
Estimation", arXiv 2407.00697): two-stage radar branch and confidence-aware gated fusion in a BTS decoder.

Structure, following the authors' code (repo harborsarah/CaFNet, ``models/model.py``, ``models/radar.py``,
``models/bts.py``; papers.md Sec. 3.2):

- image encoder ``resnet34_bts`` (He et al. 2016): skips = stem ReLU (1/2), layer1..layer4 (1/4 .. 1/32);
- **stage 1** (``encoder_radar_sparse_conv`` + ``decoder_radar``): four sparsity-invariant convolutions
  (Uhrig et al. 2017; ``sparse_conv.py``) C -> 16 -> 16 -> 16 -> 3, then a ResNet-18; a U-Net-like radar
  decoder over concat(image skip, radar skip, upsampled decoder feature) at 1/16 .. 1/1 (BTS ``upconv``:
  nearest x2, 3x3 conv, ELU, then BN; 3x3 conv + ELU) ending in one 3x3 conv to 2 channels: coarse radar
  depth ``max_depth * sigmoid`` and the radar confidence logit (the confidence GT marks radar pixels
  whose depth agrees with LiDAR within 0.4 m, trained with BCE);
- mask = confidence > 0.4; **stage 2** (``encoder_radar_sub``): 3x3 conv (C + 1 -> 3, no bias) + ELU,
  then a ResNet-18 on concat(mask * coarse radar depth, radar);
- decoder ``bts_gated_fuse`` (Lee et al. 2019 BTS, arXiv 1907.10326, ``bts_size`` 512) with
  confidence-aware gated fusion (``gated_fusion.py``) of the stage-2 radar features into the 1/32 image
  encoder feature and into the *decoder* features at 1/16, 1/8 (after the dense ASPP), 1/4 and 1/2,
  each gate weighted by the confidence averaged to that scale; the decoder's skips are the plain image
  encoder features (radar reaches the decoder only through the gates); dense ASPP at 1/8 with rates
  3, 6, 12, 18, 24 (:class:`BTSDenseASPP`); depth estimates at 1/8, 1/4, 1/2 whose normalised maps enter
  the next finer stage; final 3x3 conv + ELU over concat(features, 4 depth maps), 3x3 conv, sigmoid x
  max_depth.

CaFNet's training loss (its ``main.py``): L1(depth, GT) + 1.0 BCE(confidence, confidence GT) + 0.5
L1(coarse radar depth, GT) + 0.001 edge-aware smoothness, all on the dense (interpolated) GT.

Size at the default config: 60,670,954 parameters, 235.33 GFLOPs at 352 x 704 (``xdrcdepth models``).
The authors' model with ``resnet34_bts`` + ``resnet18`` and ``bts_size`` 512 has 60,709,594 by our own
arithmetic over their code [derived, not a paper number]: every layer above matches, the difference is
BTS's ``reduc*`` plane-parameter chains (41,552) vs our depth heads (2,912).

Output dict (``base.py`` layout plus the teacher's extras):

- ``("image", s)``: image encoder features; ``("radar", s)``: stage-2 radar encoder features (the ones
  that are fused), s in 2 .. 32;
- ``("fused", s)``: what CaFNet fuses at scale s, *after* the gated addition: the 1/32 image encoder
  feature at s = 32, the decoder feature at s = 16, 8, 4, 2 (so ``("fused", s)`` and ``("decoder", s)``
  are the same tensor for s <= 16: the decoder feature that the next stage consumes);
- ``("decoder", s)`` s in 16, 8, 4, 2, 1 (1 = the full-resolution upconv output);
- ``("depth", s)`` s in 8, 4, 2 (upsampled to H x W), ``"depth"``, all in (0, max_depth];
- ``"radar_confidence_logit"`` (float32) and ``"radar_confidence"`` = its sigmoid, ``"radar_depth"`` the
  coarse stage-1 radar depth in metres, all B x 1 x H x W;
- ``"depth_confidence"`` B x 1 x H x W > 0 (only with ``depth_confidence=True``).

Our choices (deviations from the authors' code, or values not in it):

- the stage-1 "sparse-conv encoder" is the same sparsity-invariant layer computed densely (masked
  ``nn.Conv2d``), not a sparse-tensor library (``sparse_conv.py``);
- mask: ``confidence_mask="hard"`` (default) is CaFNet's ``(confidence > 0.4).float()``: a hard,
  gradient-free (in effect detached) mask, so the confidence is trained by its BCE loss and by the gates,
  never through the threshold, while the masked coarse depth still receives gradients from the final
  loss. ``"straight_through"`` keeps the same forward value and passes d(loss)/d(mask) to the confidence
  as if mask = confidence (Bengio et al. 2013 straight-through estimator);
- the coarse depth enters stage 2 divided by ``radar_depth_scale`` (default 100 =
  ``preprocess.RADAR_CHANNEL_SCALES["depth"]``) so it has the scale of the radar depth channel next to
  it; CaFNet feeds metres next to its metre-valued radar raster;
- BTS's local planar guidance (plane coefficients -> depth, unbounded: its denominator can reach 0) is
  replaced by plain depth heads (3x3 conv, sigmoid x max_depth; ``depth_head.py``), and the full-
  resolution ``reduc1x1`` chain (32 -> 16 -> 8 -> 1) by one 1x1 head (``DepthRefinement``);
- ``ReLU`` on the 1/32 image feature before fusion (a no-op after a ResNet stage) is left out; the
  confidence is pooled adaptively (= CaFNet's fixed AvgPool for sizes divisible by 32);
- no pretrained ImageNet weights (torchvision is not a dependency);
- ``resnet_width`` (default 64 = the paper's ResNets) and ``bts_size`` only shrink the model for tests;
- ``depth_confidence=True`` adds our head (not in CaFNet): the inverse scale ``c`` of a Laplacian on the
  final depth, for the ``laplacian_nll`` loss and confidence-aware distillation (MonoTher-Depth, arXiv
  2504.16127, treats such a confidence as an inverse variance). Its input is the full-resolution decoder
  feature, the four depth maps and the radar confidence, all detached, so training it never changes the
  depth branch; ``c = softplus(.) + 1e-3`` in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdrcdepth_core.models.base import DepthModel, INTERMEDIATE_DEPTH_SCALES, per_scale
from xdrcdepth_core.models.conv import ConvNormAct
from xdrcdepth_core.models.depth_head import SIGMOID_FLOOR, DepthHead, DepthRefinement, upsample_to
from xdrcdepth_core.models.gated_fusion import ConfidenceGatedFusion
from xdrcdepth_core.models.registry import register_model
from xdrcdepth_core.models.resnet import ResNetEncoder
from xdrcdepth_core.models.sparse_conv import SparseRadarStem

#: BTS dense ASPP rates at 1/8.
BTS_DASPP_RATES = (3, 6, 12, 18, 24)
#: CaFNet's confidence threshold for the stage-2 mask (``CaFNet(params, threshold=0.4)``).
CAFNET_CONFIDENCE_THRESHOLD = 0.4
MASK_MODES = ("hard", "straight_through")
#: floor of the depth confidence (inverse Laplacian scale): scale <= 1000 m (ours).
DEPTH_CONFIDENCE_EPS = 1e-3


def conv_elu(in_channels: int, out_channels: int) -> ConvNormAct:
    """BTS ``Conv3x3(bias=False) + ELU`` (no BN)."""
    return ConvNormAct(in_channels, out_channels, 3, norm=False, act="elu", bias=False)


class UpConv(nn.Sequential):
    """BTS ``upconv`` (nearest x2, 3x3 conv without bias, ELU) followed by its BatchNorm when ``norm``."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool = True):
        layers = [nn.Upsample(scale_factor=2, mode="nearest"),
                  nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.ELU(inplace=True)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        super().__init__(*layers)


class BTSDenseASPP(nn.Module):
    """BTS's dense ASPP (``bts.py`` ``atrous_conv`` / ``daspp_*``), densely connected atrous branches.

    Branch 0 sees ``x`` (the 1/8 decoder feature); branch i > 0 sees concat(``context``, outputs of
    branches 0 .. i-1) where ``context`` = concat(upconv, image skip) (BTS's ``concat4``). A branch is
    [BN (i > 0)] -> ReLU -> 1x1 conv (2g) -> BN -> ReLU -> 3x3 atrous conv (g); the output is
    Conv3x3 + ELU over concat(x, all branches).
    """

    def __init__(self, in_channels: int, context_channels: int, growth: int, out_channels: int,
                 rates: tuple[int, ...] = BTS_DASPP_RATES):
        super().__init__()
        branches = []
        for index, rate in enumerate(rates):
            branch_in = in_channels if index == 0 else context_channels + index * growth
            layers = [] if index == 0 else [nn.BatchNorm2d(branch_in)]
            layers += [nn.ReLU(), nn.Conv2d(branch_in, 2 * growth, 1, bias=False), nn.BatchNorm2d(2 * growth),
                       nn.ReLU(inplace=True),
                       nn.Conv2d(2 * growth, growth, 3, padding=rate, dilation=rate, bias=False)]
            branches.append(nn.Sequential(*layers))
        self.branches = nn.ModuleList(branches)
        self.project = conv_elu(in_channels + len(rates) * growth, out_channels)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        outputs = [self.branches[0](x)]
        dense = torch.cat([context, outputs[0]], dim=1)
        for branch in self.branches[1:]:
            outputs.append(branch(dense))
            dense = torch.cat([dense, outputs[-1]], dim=1)
        return self.project(torch.cat([x, *outputs], dim=1))


class RadarEncoder(nn.Module):
    """A 3-channel ResNet behind a front end: CaFNet stage 1 (sparse layers) or stage 2 (conv3x3 + ELU)."""

    def __init__(self, front: nn.Module, depth: int, width: int):
        super().__init__()
        self.front = front
        self.resnet = ResNetEncoder(depth, 3, width)
        self.out_channels = self.resnet.out_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.resnet(self.front(x))


class RadarDecoder(nn.Module):
    """CaFNet ``decoder_radar``: coarse radar depth and radar confidence logit at full resolution.

    Stage at scale 1/s (s = 32 .. 2): upconv(concat(image skip, radar skip, previous)) -> r_s / 2 channels,
    BN, Conv3x3 + ELU; then Conv3x3 (no bias) -> 2 channels. Returns float32 (depth logit, confidence logit).
    """

    def __init__(self, image_channels: list[int], radar_channels: list[int]):
        super().__init__()
        ups, convs, previous = [], [], 0
        for index in reversed(range(len(radar_channels))):
            out = max(radar_channels[index] // 2, 1)
            ups.append(UpConv(image_channels[index] + radar_channels[index] + previous, out))
            convs.append(conv_elu(out, out))
            previous = out
        self.ups, self.convs = nn.ModuleList(ups), nn.ModuleList(convs)
        self.head = nn.Conv2d(previous, 2, 3, padding=1, bias=False)

    def forward(self, image_feats: list[Tensor], radar_feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        last = len(radar_feats) - 1
        x = torch.cat([image_feats[last], radar_feats[last]], dim=1)
        for step, (up, conv) in enumerate(zip(self.ups, self.convs)):
            x = conv(up(x))
            index = last - step - 1
            if index >= 0:
                x = torch.cat([image_feats[index], radar_feats[index], x], dim=1)
        logits = self.head(x).float()
        return logits[:, :1], logits[:, 1:]


class DepthConfidenceHead(nn.Module):
    """Ours: Conv3x3 + ELU -> Conv3x3 -> softplus + eps (float32): Laplacian inverse scale c > 0."""

    def __init__(self, in_channels: int, hidden_channels: int):
        super().__init__()
        self.body = ConvNormAct(in_channels, hidden_channels, 3, norm=False, act="elu")
        self.out = nn.Conv2d(hidden_channels, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(self.out(self.body(x)).float()) + DEPTH_CONFIDENCE_EPS


class GatedBTSDecoder(nn.Module):
    """CaFNet ``bts_gated_fuse``: BTS decoder on image skips, radar gated in at 1/32 (encoder) and 1/16 .. 1/2.

    ``forward(image_feats, radar_feats, confidence)`` returns (fused features 1/2 .. 1/32, full-resolution
    feature, [d8, d4, d2] at their own resolution, final depth).
    """

    def __init__(self, image_channels: list[int], radar_channels: list[int], bts_size: int, max_depth: float):
        super().__init__()
        f, ic, rc = bts_size, image_channels, radar_channels
        self.max_depth = float(max_depth)
        # gates, fine to coarse: decoder 1/2, 1/4, 1/8, 1/16, image encoder 1/32
        self.fusions = nn.ModuleList([ConfidenceGatedFusion(f // 8, rc[0]), ConfidenceGatedFusion(f // 4, rc[1]),
                                      ConfidenceGatedFusion(f // 4, rc[2]), ConfidenceGatedFusion(f, rc[3]),
                                      ConfidenceGatedFusion(ic[4], rc[4])])
        self.up16, self.conv16 = UpConv(ic[4], f), conv_elu(f + ic[3], f)
        self.up8 = UpConv(f, f // 2)
        self.conv8 = nn.Sequential(conv_elu(f // 2 + ic[2], f // 2), nn.BatchNorm2d(f // 2))
        self.daspp = BTSDenseASPP(f // 2, f // 2 + ic[2], f // 4, f // 4)
        self.up4, self.conv4 = UpConv(f // 4, f // 4), conv_elu(f // 4 + ic[1] + 1, f // 4)
        self.up2, self.conv2 = UpConv(f // 4, f // 8), conv_elu(f // 8 + ic[0] + 1, f // 8)
        self.depth_heads = nn.ModuleList(DepthHead(c, max_depth) for c in (f // 4, f // 4, f // 8))
        self.up1 = UpConv(f // 8, f // 16, norm=False)
        self.refinement = DepthRefinement(f // 16, len(INTERMEDIATE_DEPTH_SCALES), max_depth, act="elu")

    def forward(self, image_feats: list[Tensor], radar_feats: list[Tensor], confidence: Tensor):
        size = confidence.shape[-2:]
        fuse2, fuse4, fuse8, fuse16, fuse32 = self.fusions
        x32 = fuse32(image_feats[4], radar_feats[4], confidence)
        x16 = fuse16(self.conv16(torch.cat([self.up16(x32), image_feats[3]], dim=1)), radar_feats[3], confidence)
        context8 = torch.cat([self.up8(x16), image_feats[2]], dim=1)
        x8 = fuse8(self.daspp(self.conv8(context8), context8), radar_feats[2], confidence)
        d8 = self.depth_heads[0](x8)
        x4 = fuse4(self._stage(self.up4, self.conv4, x8, image_feats[1], d8), radar_feats[1], confidence)
        d4 = self.depth_heads[1](x4)
        x2 = fuse2(self._stage(self.up2, self.conv2, x4, image_feats[0], d4), radar_feats[0], confidence)
        d2 = self.depth_heads[2](x2)
        x1 = self.up1(x2)
        depths = [upsample_to(d, size) for d in (d8, d4, d2)]
        return [x2, x4, x8, x16, x32], x1, depths, self.refinement(x1, depths)

    def _stage(self, up: nn.Module, conv: nn.Module, x: Tensor, skip: Tensor, coarse_depth: Tensor) -> Tensor:
        """conv(concat(upconv(x), image skip, coarser depth / max_depth))."""
        coarse = upsample_to(coarse_depth, skip.shape[-2:]) / self.max_depth
        return conv(torch.cat([up(x), skip, coarse.to(skip.dtype)], dim=1))


@register_model("cafnet")
class CaFNet(DepthModel):
    """Teacher: CaFNet (two-stage radar branch, confidence-aware gated BTS decoder); see the module docstring."""

    def __init__(self, max_depth: float = 100.0, radar_channels: int = 4, image_depth: int = 34,
                 radar_depth: int = 18, bts_size: int = 512, resnet_width: int = 64,
                 confidence_threshold: float = CAFNET_CONFIDENCE_THRESHOLD, confidence_mask: str = "hard",
                 radar_depth_scale: float = 100.0, depth_confidence: bool = False):
        super().__init__(max_depth, radar_channels, image_depth=image_depth, radar_depth=radar_depth,
                         bts_size=bts_size, resnet_width=resnet_width, confidence_threshold=confidence_threshold,
                         confidence_mask=confidence_mask, radar_depth_scale=radar_depth_scale,
                         depth_confidence=depth_confidence)
        if bts_size < 16 or bts_size % 16:
            raise ValueError(f"bts_size must be a positive multiple of 16, got {bts_size}")
        if resnet_width < 2:
            raise ValueError(f"resnet_width must be >= 2, got {resnet_width}")
        if confidence_mask not in MASK_MODES:
            raise ValueError(f"confidence_mask must be one of {MASK_MODES}, got {confidence_mask!r}")
        if not 0.0 < confidence_threshold < 1.0 or not radar_depth_scale > 0:
            raise ValueError("confidence_threshold must be in (0, 1) and radar_depth_scale > 0")
        self.confidence_threshold = float(confidence_threshold)
        self.confidence_mask = confidence_mask
        self.radar_depth_scale = float(radar_depth_scale)

        self.image_encoder = ResNetEncoder(image_depth, 3, resnet_width)
        image_ch = self.image_encoder.out_channels
        # stage 1: sparse radar encoder + radar decoder (coarse radar depth, confidence)
        self.radar_encoder_stage1 = RadarEncoder(SparseRadarStem(radar_channels), radar_depth, resnet_width)
        self.radar_decoder = RadarDecoder(image_ch, self.radar_encoder_stage1.out_channels)
        # stage 2: radar encoder on concat(mask * coarse depth, radar)
        self.radar_encoder = RadarEncoder(ConvNormAct(radar_channels + 1, 3, 3, norm=False, act="elu", bias=False),
                                          radar_depth, resnet_width)
        self.decoder = GatedBTSDecoder(image_ch, self.radar_encoder.out_channels, bts_size, max_depth)
        self.depth_confidence_head = (DepthConfidenceHead(bts_size // 16 + len(INTERMEDIATE_DEPTH_SCALES) + 2,
                                                          max(bts_size // 16, 8))
                                      if depth_confidence else None)

    def stage2_input(self, radar: Tensor, radar_depth: Tensor, confidence: Tensor) -> Tensor:
        """concat(mask * coarse radar depth / radar_depth_scale, radar), mask = confidence > threshold."""
        mask = (confidence > self.confidence_threshold).to(confidence.dtype)
        if self.confidence_mask == "straight_through":
            mask = mask + confidence - confidence.detach()
        masked = mask * radar_depth / self.radar_depth_scale
        return torch.cat([masked.to(radar.dtype), radar], dim=1)

    def forward(self, image: Tensor, radar: Tensor) -> dict:
        self.check_inputs(image, radar)
        image_feats = self.image_encoder(image)
        depth_logit, confidence_logit = self.radar_decoder(image_feats, self.radar_encoder_stage1(radar))
        confidence = torch.sigmoid(confidence_logit)
        radar_depth = self.max_depth * torch.sigmoid(depth_logit).clamp_min(SIGMOID_FLOOR)
        radar_feats = self.radar_encoder(self.stage2_input(radar, radar_depth, confidence))
        fused, x1, depths, depth = self.decoder(image_feats, radar_feats, confidence)

        out = {**per_scale("image", image_feats), **per_scale("radar", radar_feats), **per_scale("fused", fused),
               **per_scale("decoder", [x1, *fused[:4]], (1, 2, 4, 8, 16)),
               **per_scale("depth", depths, INTERMEDIATE_DEPTH_SCALES),
               "depth": depth, "radar_confidence_logit": confidence_logit, "radar_confidence": confidence,
               "radar_depth": radar_depth}
        if self.depth_confidence_head is not None:
            normalised = [d / self.max_depth for d in (*depths, depth)]
            head_input = torch.cat([x1.float(), *normalised, confidence], dim=1).detach()
            out["depth_confidence"] = self.depth_confidence_head(head_input)
        return out
