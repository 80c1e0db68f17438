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
