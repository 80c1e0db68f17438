"""CRKD losses: box enlargement and masked feature loss, affinity and response values by hand."""

import pytest
import torch

from xdrcdepth_core.distill import build_loss
from xdrcdepth_core.distill.crkd import box_growth

K = torch.tensor([[[100.0, 0, 16], [0, 100.0, 8], [0, 0, 1]]])


def test_box_growth_rule():
    boxes = torch.tensor([[
        [0, 0, 40, 8, 25, 1.0, 0],      # 20-30 m (+25 %) and >= 0.8 m/s (+50 %)
        [0, 0, 40, 8, 10, 0.0, 0],      # near and static: unchanged
        [0, 0, 4, 2, 35, 0.3, 0.4],     # >= 30 m (+50 %), |v| = 0.5 (+25 %)
    ]])
    grow = box_growth(boxes, K)
    # box 0: 40 px * 25 m / 100 = 10 m -> 7.5 m, clamped to 4 m -> 4 * 100 / 25 = 16 px;
    #        8 px -> 2 m -> 1.5 m -> 6 px
    # box 2: 4 px * 35 / 100 = 1.4 m -> 1.05 m -> 3 px; 2 px -> 0.7 m -> 0.525 m -> 1.5 px
    assert grow[0].flatten().tolist() == pytest.approx([16.0, 6.0, 0.0, 0.0, 3.0, 1.5], rel=1e-5)
    tiny = torch.tensor([[[0, 0, 1, 1, 40, 0.0, 0]]])  # 0.4 m -> 0.2 m, floored at 0.5 m = 1.25 px
    assert box_growth(tiny, K)[0, 0].tolist() == pytest.approx([1.25, 1.25])


def test_mask_feature_value():
    # a 2 x 4 map over a 16 x 32 image; box 0 covers cell (0, 0), box 1 cells (1, 2), (1, 3), box 2 is padding
    boxes = torch.tensor([[[0, 0, 10, 10, 5, 0, 0], [18, 9, 30, 14, 5, 0, 0], [0, 0, 32, 16, 5, 0, 0]]],
                         dtype=torch.float32)
    teacher = torch.full((1, 2, 2, 4), 50.0)
    teacher[0, :, 0, 0] = torch.tensor([1.0, 3.0])
    teacher[0, :, 1, 2] = torch.tensor([2.0, 2.0])
    teacher[0, :, 1, 3] = torch.tensor([0.0, 2.0])
    batch = {"image": torch.zeros(1, 3, 16, 32), "boxes": boxes, "boxes_valid": torch.tensor([[True, True, False]]),
             "K": K}
    loss = build_loss("crkd_mask_feature", adapter="none")
    student = torch.zeros_like(teacher)
    # 0.5 * channel mean of t^2: 0.5 * (1 + 9) / 2 = 2.5, 0.5 * 8 / 2 = 2, 0.5 * 4 / 2 = 1 -> mean over 3 cells
    value = loss({("fused", 8): student}, {("fused", 8): teacher}, batch)
    assert value.item() == pytest.approx((2.5 + 2 + 1) / 3)
    no_boxes = {**batch, "boxes_valid": torch.zeros(1, 3, dtype=torch.bool)}
    assert loss({("fused", 8): student}, {("fused", 8): teacher}, no_boxes).item() == 0


def test_relation_value():
    # positions (channel vectors): student (1, 0), (1, 1); teacher (0, 1), (0, 2); C = 2
    student = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    teacher = torch.tensor([[0.0, 0.0], [1.0, 2.0]]).view(1, 2, 1, 2)
    loss = build_loss("crkd_relation", sizes=[1], adapter="none")   # height 1 -> 1 x 2: no resizing
    # A_S = [[1, 1], [1, 2]] / 2, A_T = [[1, 2], [2, 4]] / 2 -> |diff| = [0, 1, 1, 2] / 2, mean 0.5
    assert loss({("fused", 8): student}, {("fused", 8): teacher}, {}).item() == pytest.approx(0.5)
    # two sizes add up; the 2 x 4 resize of this map repeats every position twice, so A has the same entries
    assert build_loss("crkd_relation", sizes=[1, 2], adapter="none")(
        {("fused", 8): student}, {("fused", 8): teacher}, {}).item() == pytest.approx(1.0)


def test_response_value():
    student = torch.tensor([10.5, 12.0]).view(1, 1, 1, 2)
    teacher = torch.tensor([10.0, 10.0]).view(1, 1, 1, 2)
    # SmoothL1 (beta 1): 0.5 * 0.5^2 = 0.125 and 2 - 0.5 = 1.5 -> mean 0.8125
    assert build_loss("crkd_response")({"depth": student}, {"depth": teacher}, {}).item() == pytest.approx(0.8125)
