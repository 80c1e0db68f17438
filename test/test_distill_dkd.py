"""Depth-distribution distillation: bin centres, KL value by hand, no-GT operation."""

import math

import pytest
import torch

from xdrcdepth_core.distill import build_loss
from xdrcdepth_core.distill.dkd import bin_centers


def test_bin_centres_by_hand():
    assert bin_centers("uniform", 4, 0.0, 8.0).tolist() == pytest.approx([1, 3, 5, 7])
    # edges 1, 10, 100 -> geometric means sqrt(10), sqrt(1000)
    assert bin_centers("log", 2, 1.0, 100.0).tolist() == pytest.approx([math.sqrt(10), math.sqrt(1000)])
    # DORN SID with shift 1 - 0 = 1: edges exp(i/2 ln 4) - 1 = 0, 1, 3 -> midpoints 0.5, 2
    assert bin_centers("sid", 2, 0.0, 3.0).tolist() == pytest.approx([0.5, 2.0])
    # shift 1 - 2 = -1: edges exp(i/2 ln(8 - 1)) + 1 = 2, 1 + sqrt(7), 8
    assert bin_centers("sid", 2, 2.0, 8.0).tolist() == pytest.approx([(3 + math.sqrt(7)) / 2, (9 + math.sqrt(7)) / 2])
    with pytest.raises(ValueError, match="log spacing needs min_depth > 0"):
        bin_centers("log", 4, 0.0, 8.0)


def test_kl_value_by_hand():
    loss = build_loss("dkd", bins=2, min_depth=0.0, max_depth=4.0, temperature=1.0)  # centres 1, 3
    student = torch.full((1, 1, 1, 1), 2.0, requires_grad=True)
    teacher = torch.full((1, 1, 1, 1), 1.0)
    # p_T = softmax(0, -2) = (1, e^-2) / (1 + e^-2); p_S = softmax(-1, -1) = (1/2, 1/2)
    p1 = 1 / (1 + math.exp(-2))
    expected = p1 * math.log(p1 / 0.5) + (1 - p1) * math.log((1 - p1) / 0.5)
    value = loss({"depth": student}, {"depth": teacher}, {})
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    # dKL/dd_S = sum_k (p_S - p_T)_k dz_k/dd with z = -|d - c_k|: dz/dd = (-1, +1) at d = 2
    assert student.grad.item() == pytest.approx((0.5 - p1) * -1 + (0.5 - (1 - p1)) * 1, rel=1e-6)


def test_identical_maps_give_zero_and_intermediates_add():
    depth = torch.rand(2, 1, 4, 4) * 80
    out = {"depth": depth, **{("depth", s): depth for s in (8, 4, 2)}}
    assert build_loss("dkd")(out, out, {}).item() == pytest.approx(0, abs=1e-6)
    shifted = {k: v + 3 for k, v in out.items()}
    single = build_loss("dkd")(out, shifted, {}).item()
    assert single > 0
    assert build_loss("dkd", intermediate_weight=0.5)(out, shifted, {}).item() == pytest.approx(2.5 * single, rel=1e-5)


def test_lidar_rows_region_averages_the_kl_below_the_topmost_ground_truth_row():
    # centres 1, 3, T = 1; per pixel KL(p_T || p_S) is 0 where the maps agree and `pair` (the hand value of
    # test_kl_value_by_hand, teacher 1 vs student 2) where they differ
    p1 = 1 / (1 + math.exp(-2))
    pair = p1 * math.log(p1 / 0.5) + (1 - p1) * math.log((1 - p1) / 0.5)
    teacher = torch.ones(2, 1, 4, 2)
    student = teacher.clone()
    student[0, 0, 0, :] = 2.0          # image 0: its top row (no LiDAR there) differs, 2 pixels
    student[0, 0, 3, 0] = 2.0          # and one pixel of its bottom row
    student[1, 0, 0, 1] = 2.0          # image 1 (no ground truth at all): one pixel of its top row
    gt = torch.zeros(2, 1, 4, 2)
    gt[0, 0, 2, 1] = 10.0              # image 0: topmost ground truth in row 2 -> rows 2, 3 kept
    loss = build_loss("dkd", bins=2, min_depth=0.0, max_depth=4.0, temperature=1.0, region="lidar_rows")
    # kept: image 0 rows 2-3 (4 pixels, 1 differs) + image 1 every row (8 pixels, 1 differs) -> 2 pair / 12
    value = loss({"depth": student}, {"depth": teacher}, {"depth_gt": gt})
    assert value.item() == pytest.approx(2 * pair / 12, rel=1e-6)
    everywhere = build_loss("dkd", bins=2, min_depth=0.0, max_depth=4.0, temperature=1.0)
    assert everywhere({"depth": student}, {"depth": teacher}, {}).item() == pytest.approx(4 * pair / 16, rel=1e-6)
    with pytest.raises(ValueError, match="unknown region 'sky'; choose one of all, lidar_rows"):
        build_loss("dkd", region="sky")
