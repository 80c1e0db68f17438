"""CaFNet teacher: every output's shape and range, the 0.4 confidence mask, gradients into both radar stages,
the depth-confidence head, sparsity-invariant convolutions, bf16 autocast + channels_last. Tiny models only."""

import pytest
import torch
from torch import nn

from xdrcdepth_core.models import build_model
from xdrcdepth_core.models.cafnet import CAFNET_CONFIDENCE_THRESHOLD
from xdrcdepth_core.models.sparse_conv import SparseRadarStem, SparsityInvariantConv

TINY = {"resnet_width": 8, "bts_size": 32}
H, W = 64, 128
ENCODER_SCALES = (2, 4, 8, 16, 32)


def tiny(**config):
    torch.manual_seed(0)
    return build_model("cafnet", **{**TINY, **config})


def inputs(batch=2, height=H, width=W):
    torch.manual_seed(1)
    radar = torch.zeros(batch, 4, height, width)
    radar[:, :, 5::13, 3::17] = torch.rand_like(radar[:, :, 5::13, 3::17]) + 0.1
    return torch.randn(batch, 3, height, width), radar


@pytest.mark.slow
def test_every_output_shape_and_range():
    model = tiny(depth_confidence=True)
    image, radar = inputs()
    out = model(image, radar)
    full = (2, 1, H, W)
    for key in ["depth", "radar_depth", "radar_confidence", "radar_confidence_logit", "depth_confidence",
                *[("depth", s) for s in (8, 4, 2)]]:
        assert out[key].shape == full, key
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all(), key
    for key in ["depth", "radar_depth", *[("depth", s) for s in (8, 4, 2)]]:
        assert (out[key] > 0).all() and (out[key] <= model.max_depth).all(), key
    assert torch.equal(out["radar_confidence"], torch.sigmoid(out["radar_confidence_logit"]))
    assert (out["radar_confidence"] > 0).all() and (out["radar_confidence"] < 1).all()
    assert (out["depth_confidence"] > 0).all()
    widths = {"image": [8, 8, 16, 32, 64], "radar": [8, 8, 16, 32, 64], "fused": [4, 8, 8, 32, 64]}
    for kind, channels in widths.items():
        for scale, c in zip(ENCODER_SCALES, channels):
            assert out[(kind, scale)].shape == (2, c, H // scale, W // scale), (kind, scale)
    for scale, c in zip((1, 2, 4, 8, 16), (2, 4, 8, 8, 32)):
        assert out[("decoder", scale)].shape == (2, c, H // scale, W // scale), scale
    for scale in (2, 4, 8, 16):  # the decoder feature at s is what is fused at s (see cafnet.py)
        assert out[("decoder", scale)] is out[("fused", scale)]
    assert "depth_confidence" not in tiny()(image, radar)


def test_stage2_input_masks_low_confidence():
    model = tiny()
    radar = torch.rand(1, 4, 1, 4)
    coarse = torch.full((1, 1, 1, 4), 50.0)
    confidence = torch.tensor([0.1, 0.39, 0.4, 0.9]).view(1, 1, 1, 4)  # 0.4 itself is not above threshold
    stage2 = model.stage2_input(radar, coarse, confidence)
    assert CAFNET_CONFIDENCE_THRESHOLD == 0.4
    assert torch.equal(stage2[:, 1:], radar)
    # 50 m / radar_depth_scale 100 = 0.5, the scaling of the radar depth channel
    assert torch.allclose(stage2[0, 0, 0], torch.tensor([0.0, 0.0, 0.0, 0.5]))


@pytest.mark.parametrize("mode, reaches_confidence", [("hard", False), ("straight_through", True)])
def test_mask_gradient_modes(mode, reaches_confidence):
    model = tiny(confidence_mask=mode)
    confidence = torch.tensor([0.2, 0.7]).view(1, 1, 1, 2).requires_grad_(True)
    coarse = torch.tensor([30.0, 40.0]).view(1, 1, 1, 2).requires_grad_(True)
    stage2 = model.stage2_input(torch.zeros(1, 4, 1, 2), coarse, confidence)
    assert torch.allclose(stage2[0, 0, 0], torch.tensor([0.0, 0.4]))  # same forward value in both modes
    stage2[:, 0].sum().backward()
    assert torch.allclose(coarse.grad.flatten(), torch.tensor([0.0, 0.01]))  # d/d depth = mask / 100
    if reaches_confidence:
        assert torch.allclose(confidence.grad.flatten(), torch.tensor([0.3, 0.4]))  # depth / 100
    else:
        assert confidence.grad is None or not confidence.grad.any()


def _with_stage1(model, confidence_logit: float, depth_logit: float):
    """Run the model with stage 1 forced to constant logits (a forward hook on the radar decoder)."""

    def force(module, args, output):
        depth, confidence = output
        return torch.full_like(depth, depth_logit), torch.full_like(confidence, confidence_logit)

    captured = {}
    handles = [model.radar_decoder.register_forward_hook(force),
               model.radar_encoder.register_forward_pre_hook(lambda m, args: captured.update(x=args[0]))]
    try:
        with torch.no_grad():
            out = model(*inputs(batch=1))
    finally:
        for handle in handles:
            handle.remove()
    return out, captured["x"]


@pytest.mark.slow
def test_confidence_below_threshold_zeroes_coarse_depth_contribution():
    model = tiny().eval()
    low = torch.logit(torch.tensor(0.3)).item()    # confidence 0.3 < 0.4 everywhere
    high = torch.logit(torch.tensor(0.6)).item()   # confidence 0.6 > 0.4 everywhere
    out_a, x_a = _with_stage1(model, low, depth_logit=-2.0)
    out_b, x_b = _with_stage1(model, low, depth_logit=+2.0)
    assert torch.allclose(out_a["radar_confidence"], torch.tensor(0.3))
    assert not x_a[:, 0].any() and not x_b[:, 0].any()           # masked coarse depth channel is 0
    assert not torch.equal(out_a["radar_depth"], out_b["radar_depth"])
    assert torch.equal(out_a["depth"], out_b["depth"])            # so the coarse depth cannot matter
    out_c, x_c = _with_stage1(model, high, depth_logit=-2.0)
    out_d, x_d = _with_stage1(model, high, depth_logit=+2.0)
    assert torch.allclose(x_c[:, 0], out_c["radar_depth"][:, 0] / 100.0)
    assert not torch.allclose(out_c["depth"], out_d["depth"])     # above the threshold it does


@pytest.mark.slow
def test_gradients_reach_both_radar_stages():
    model = tiny()
    out = model(*inputs())
    assert (out["radar_confidence"] > 0.4).any()  # some pixels pass the mask at init (seeded)
    out["depth"].mean().backward()                # the final depth alone, no auxiliary loss
    modules = {"image encoder": model.image_encoder.stem[0],
               "stage-1 sparse conv": model.radar_encoder_stage1.front.layers[0].conv,
               "stage-1 ResNet": model.radar_encoder_stage1.resnet.stem[0],
               "stage-2 front conv": model.radar_encoder.front[0],
               "stage-2 ResNet": model.radar_encoder.resnet.stem[0]}
    for name, module in modules.items():
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0, name
    head = model.radar_decoder.head.weight.grad  # rows: 0 = coarse depth (via the mask), 1 = confidence (gates)
    assert head[0].abs().sum() > 0 and head[1].abs().sum() > 0


def test_depth_confidence_head_is_detached_from_the_depth_branch():
    model = tiny(depth_confidence=True)
    out = model(*inputs())
    out["depth_confidence"].mean().backward()
    assert model.depth_confidence_head.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for name, p in model.named_parameters() if not name.startswith("depth_confidence"))


@pytest.mark.slow
def test_tiny_model_bf16_autocast_channels_last_forward_backward():
    model = tiny(depth_confidence=True).to(memory_format=torch.channels_last)
    image, radar = (t.contiguous(memory_format=torch.channels_last) for t in inputs())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(image, radar)
        loss = (out["depth"].mean() + out["radar_depth"].mean() + out["depth_confidence"].mean()
                + nn.functional.binary_cross_entropy_with_logits(out["radar_confidence_logit"],
                                                                 torch.zeros_like(out["radar_confidence_logit"])))
    for key in ("depth", "radar_depth", "radar_confidence_logit", "depth_confidence", ("depth", 2)):
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all(), key
    assert out[("decoder", 4)].dtype == torch.bfloat16
    assert (out["depth"] > 0).all() and (out["depth"] <= 100).all()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.radar_encoder_stage1.front.layers[0].conv.weight.grad.abs().sum() > 0


def test_sparsity_invariant_conv_ignores_density_and_invalid_values():
    layer = SparsityInvariantConv(1, 1, 3, act=None)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.bias.fill_(0.5)
    x, mask = torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2], mask[0, 0, 2, 2] = 4.0, 1.0
    y, new_mask = layer(x, mask)
    # every window that sees the one valid pixel averages it: 4 + bias; windows seeing none give the bias
    assert torch.allclose(y[0, 0, 1:4, 1:4], torch.full((3, 3), 4.5))
    assert y[0, 0, 0, 0].item() == pytest.approx(0.5)
    assert torch.equal(new_mask[0, 0, 1:4, 1:4], torch.ones(3, 3)) and new_mask.sum() == 9
    # a second valid pixel of the same value: still 4 (normalised, not summed); invalid values are ignored
    x2, mask2 = x.clone(), mask.clone()
    x2[0, 0, 2, 3], mask2[0, 0, 2, 3] = 4.0, 1.0
    x2[0, 0, 1, 1] = 100.0  # mask 0 there
    y2, _ = layer(x2, mask2)
    assert torch.allclose(y2[0, 0, 1:4, 1:4], torch.full((3, 3), 4.5))


def test_sparse_stem_output_depends_only_on_valid_radar_pixels():
    stem = SparseRadarStem(4)
    radar = torch.zeros(1, 4, 32, 32)
    radar[0, :, 10, 12] = torch.tensor([0.2, 0.1, 0.0, 0.0])  # depth channel > 0: a valid point
    other = radar.clone()
    other[0, 1:, 20, 20] = 5.0  # depth 0: not a radar point, must not change anything
    with torch.no_grad():
        assert torch.equal(stem(radar), stem(other))


def test_config_defaults_and_errors():
    from xdrcdepth_core.preprocess import RADAR_CHANNEL_SCALES

    with torch.device("meta"):
        model = build_model("cafnet")
    assert model.radar_depth_scale == RADAR_CHANNEL_SCALES["depth"]
    assert model.confidence_threshold == 0.4 and model.confidence_mask == "hard"
    assert model.depth_confidence_head is None
    # ResNet-34 21,284,672 + stage 1 (sparse layers 12,323 + ResNet-18 11,176,512) + radar decoder 4,360,768
    # + stage 2 (135 + 11,176,512) + gated BTS decoder 12,660,032
    assert sum(p.numel() for p in model.parameters()) == 60_670_954
    for bad in ({"bts_size": 24}, {"confidence_mask": "soft"}, {"confidence_threshold": 1.5}, {"resnet_width": 1}):
        with pytest.raises(ValueError):
            build_model("cafnet", **bad)
