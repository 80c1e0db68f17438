"""Supervised losses: values computed by hand on tiny maps."""

import math

import pytest
import torch

from xdrcdepth_core.distill import build_loss
from xdrcdepth_core.preprocess import IMAGENET_STD


def t(rows):
    """1 x 1 x h x w tensor from nested lists."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_depth_l1_masks_missing_gt_and_weights_intermediates():
    depth, gt = t([[1.0, 2.0], [3.0, 4.0]]), t([[0.0, 3.0], [3.0, 8.0]])
    # GT pixels: |2-3| + |3-3| + |4-8| = 5 over 3 pixels
    assert build_loss("depth_l1")({"depth": depth}, None, {"depth_gt": gt}).item() == pytest.approx(5 / 3)
    flat = torch.full_like(depth, 2.0)
    out = {"depth": depth, **{("depth", s): flat for s in (8, 4, 2)}}
    # each intermediate: (|2-3| + |2-3| + |2-8|) / 3 = 8/3, three of them at weight 0.5
    value = build_loss("depth_l1", intermediate_weight=0.5)(out, None, {"depth_gt": gt})
    assert value.item() == pytest.approx(5 / 3 + 3 * 0.5 * 8 / 3)


def test_depth_l1_without_any_gt_is_zero_and_differentiable():
    depth = t([[1.0, 2.0]]).requires_grad_(True)
    value = build_loss("depth_l1")({"depth": depth}, None, {"depth_gt": torch.zeros_like(depth)})
    value.backward()
    assert value.item() == 0 and depth.grad is not None


def test_silog_value():
    depth, gt = t([[2.0, 4.0, 7.0]]), t([[1.0, 4.0, 0.0]])
    # e = [ln 2, 0]: mean(e^2) = ln(2)^2 / 2, mean(e) = ln(2) / 2
    expected = 10 * math.sqrt(math.log(2) ** 2 / 2 - 0.85 * (math.log(2) / 2) ** 2)
    assert build_loss("silog")({"depth": depth}, None, {"depth_gt": gt}).item() == pytest.approx(expected, rel=1e-6)
    assert build_loss("silog", variance_focus=1.0, scale=1.0)(
        {"depth": 3 * gt + (gt == 0)}, None, {"depth_gt": gt}).item() == pytest.approx(0, abs=1e-5)  # scale-free


def test_smoothness_value():
    depth = t([[1.0, 3.0], [1.0, 1.0]])                    # / mean 1.5 -> [[2/3, 2], [2/3, 2/3]]
    edges = torch.tensor([[0.0, 1.0], [0.0, 0.0]])         # the [0, 1] image, equal in all channels
    image = (edges / torch.tensor(IMAGENET_STD).view(3, 1, 1))[None]
    # x: row 0 |2 - 2/3| = 4/3 at an image step of 1 -> 4/3 e^-1, row 1: 0; mean over 2 -> 2/3 e^-1
    # y: column 1 |2 - 2/3| = 4/3 at an image step of 1, column 0: 0 -> 2/3 e^-1
    value = build_loss("smoothness")({"depth": depth}, None, {"image": image})
    assert value.item() == pytest.approx(4 / 3 * math.exp(-1), rel=1e-6)
    assert build_loss("smoothness")({"depth": depth * 7}, None, {"image": image}).item() == pytest.approx(value.item())


def test_radar_depth_l1_value():
    out = {"radar_depth": t([[5.0, 9.0, 1.0]])}
    # GT pixels: |5 - 4| + |9 - 12| = 4 over 2
    assert build_loss("radar_depth_l1")(out, None, {"depth_gt": t([[4.0, 12.0, 0.0]])}).item() == pytest.approx(2.0)


def test_radar_confidence_bce_value():
    logits = t([[0.0, 2.0, -1.0, 5.0]])
    labels = t([[1.0, 0.0, -1.0, 1.0]])

    def softplus(x):
        return math.log1p(math.exp(x))

    # positive: pos_weight * softplus(-x); negative: softplus(x); label -1 ignored; mean over 3
    expected = (2 * softplus(0.0) + softplus(2.0) + 2 * softplus(-5.0)) / 3
    loss = build_loss("radar_confidence_bce", pos_weight=2.0)
    value = loss({"radar_confidence_logit": logits}, None, {"radar_confidence_gt": labels})
    assert value.item() == pytest.approx(expected, rel=1e-6)
