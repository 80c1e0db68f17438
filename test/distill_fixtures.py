"""Small real models and a full batch for the loss tests (64 x 128 images: seconds on 2 CPU cores)."""

import torch

from xdrcdepth_core.models import build_model

B, H, W = 2, 64, 128
#: a width-reduced XD-RCDepth student
STUDENT = dict(width_mult=0.25, radar_width_mult=0.25, decoder_channels=(64, 32, 16, 16, 8),
               daspp_growth=(16, 8, 8, 4))
#: a reduced CaFNet teacher (ResNet-18 image encoder, narrow BTS decoder)
TEACHER = dict(image_depth=18, bts_size=64)


def small_student(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("xdrcdepth", **STUDENT)
    with torch.no_grad():  # FiLM starts as identity; give it weights so radar reaches the output
        for fusion in model.fusions:
            for conv in (fusion.gamma, fusion.beta):
                conv.weight.normal_(std=0.1)
    return model


def small_teacher(seed: int = 1):
    torch.manual_seed(seed)
    return build_model("cafnet", **TEACHER)


def inputs(seed: int = 2):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(B, 3, H, W, generator=generator)
    radar = torch.zeros(B, 4, H, W)
    radar[:, :, 40::7, 5::9] = torch.rand(radar[:, :, 40::7, 5::9].shape, generator=generator) + 0.1
    return image, radar


def batch(image, radar, seed: int = 3) -> dict:
    """Every batch key of the shared contract, with plausible values."""
    generator = torch.Generator().manual_seed(seed)
    gt = torch.rand(B, 1, H, W, generator=generator) * 60 + 2
    gt = gt * (torch.rand(B, 1, H, W, generator=generator) < 0.2)
    single = gt * (torch.rand(B, 1, H, W, generator=generator) < 0.5)
    labels = torch.randint(-1, 2, (B, 1, H, W), generator=generator).float()
    boxes = torch.tensor([[[10, 10, 40, 40, 25, 1.0, 0], [60, 20, 100, 60, 35, 0, 0.2]]]).repeat(B, 1, 1)
    K = torch.tensor([[100.0, 0, 64], [0, 100.0, 32], [0, 0, 1]]).expand(B, 3, 3)
    return dict(image=image, radar=radar, depth_gt=gt, depth_gt_single=single, radar_confidence_gt=labels,
                boxes=boxes, boxes_valid=torch.tensor([[True, True], [True, False]]), K=K)


def with_extra_heads(out: dict) -> dict:
    """Teacher-only heads of the contract, derived from the model's own graph where the model lacks them
    (positive confidence, coarse radar depth, confidence logits)."""
    out.setdefault("depth_confidence", out[("depth", 2)] / 50)
    out.setdefault("radar_depth", out[("depth", 4)])
    out.setdefault("radar_confidence_logit", out[("depth", 8)] / 10 - 5)
    return out
