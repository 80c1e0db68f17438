"""Depth metrics against values computed by hand."""

import math

import numpy as np
import pytest
import torch

from xdrcdepth_core.metrics import MetricAccumulator, compute_depth_metrics

# gt: 2 m and 4 m valid; 0 (no LiDAR) and 100 m (beyond the 80 m cap) invalid.
GT = np.array([[2.0, 4.0], [0.0, 100.0]])
PRED = np.array([[1.0, 5.0], [3.0, 3.0]])


def test_hand_computed_image():
    m = compute_depth_metrics(PRED, GT, cap=80.0)
    # valid pairs (gt, pred) = (2, 1), (4, 5): |err| = 1 m and 1 m
    assert m["valid_pixels"] == 2
    assert m["mae"] == pytest.approx(1000.0)              # mean(1, 1) m = 1000 mm
    assert m["rmse"] == pytest.approx(1000.0)             # sqrt((1 + 1) / 2) m
    # inverse depths in 1/km: 1000/2 = 500 vs 1000/1 = 1000 -> 500; 1000/4 = 250 vs 1000/5 = 200 -> 50
    assert m["imae"] == pytest.approx(275.0)              # (500 + 50) / 2
    assert m["irmse"] == pytest.approx(math.sqrt((500**2 + 50**2) / 2))  # sqrt(126250) = 355.3168
    assert m["abs_rel"] == pytest.approx(0.375)           # (1/2 + 1/4) / 2
    assert m["sq_rel"] == pytest.approx(0.375)            # (1^2/2 + 1^2/4) / 2
    # ratios max(g/p, p/g): 2.0 and 1.25; 1.25 is not < 1.25 (strict), 2.0 > 1.25^3 = 1.953
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.0, 0.5, 0.5)


def test_torch_input_and_leading_dims_give_the_same_values():
    a = compute_depth_metrics(torch.tensor(PRED)[None, None], torch.tensor(GT)[None], cap=80.0)
    assert a == compute_depth_metrics(PRED, GT, cap=80.0)


def test_cap_is_strict_and_prediction_is_clipped_inf_nan_handled():
    gt = np.array([[10.0, 60.0, 50.0, 0.001]])
    pred = np.array([[np.inf, np.nan, 20.0, 5.0]])
    # cap 50: only gt 10 is valid (60 > cap, 50 == cap excluded, 0.001 == min_depth excluded);
    # pred inf -> 50 (cap) -> error 40 m
    m50 = compute_depth_metrics(pred, gt, cap=50.0)
    assert m50["valid_pixels"] == 1
    assert m50["mae"] == pytest.approx(40000.0)
    # cap 70: gt 10, 60, 50 valid; pred -> 70 (inf), 0.001 (NaN), 20 -> errors 60, 59.999, 30 m
    m70 = compute_depth_metrics(pred, gt, cap=70.0)
    assert m70["valid_pixels"] == 3
    assert m70["mae"] == pytest.approx((60 + 59.999 + 30) / 3 * 1000)
    # predictions above the cap are clipped to it: pred 90 vs gt 10 at cap 50 -> error 40 m
    assert compute_depth_metrics([[90.0]], [[10.0]], cap=50.0)["mae"] == pytest.approx(40000.0)
    # negative predictions are clipped to min_depth 1e-3
    assert compute_depth_metrics([[-5.0]], [[1.0]], cap=50.0)["mae"] == pytest.approx(999.0)


def test_no_valid_pixel_returns_none_and_shape_mismatch_raises():
    assert compute_depth_metrics(np.ones((2, 2)), np.zeros((2, 2)), cap=80.0) is None
    with pytest.raises(ValueError, match="shape"):
        compute_depth_metrics(np.ones((2, 2)), np.ones((2, 3)), cap=80.0)


def test_accumulator_averages_per_image_not_per_pixel():
    acc = MetricAccumulator(caps=(50.0, 80.0))
    acc.update(np.array([[3.0]]), np.array([[2.0]]))                  # 1 pixel, error 1 m
    acc.update(np.full((1, 3), 13.0), np.full((1, 3), 10.0))          # 3 pixels, error 3 m each
    acc.update(np.ones((1, 2)), np.zeros((1, 2)))                     # no valid pixel: skipped
    acc.update_batch(np.array([[[[60.0]]]]), np.array([[[[55.0]]]]))  # gt 55: only valid at cap 80
    res = acc.results()
    # per-image mean of MAE: (1000 + 3000) / 2 = 2000 mm (a per-pixel mean would give 2500)
    assert res[50.0]["images"] == 2 and res[50.0]["skipped"] == 2
    assert res[50.0]["mae"] == pytest.approx(2000.0)
    # RMSE per image: 1000 and 3000 -> mean 2000
    assert res[50.0]["rmse"] == pytest.approx(2000.0)
    # cap 80 adds the 55 m image (error 5 m): (1000 + 3000 + 5000) / 3
    assert res[80.0]["images"] == 3 and res[80.0]["skipped"] == 1
    assert res[80.0]["mae"] == pytest.approx(3000.0)
    table = acc.format_table()
    assert "MAE [mm]" in table and "iRMSE [1/km]" in table
    assert table.splitlines()[1].split()[:3] == ["0-50", "2", "2000.0"]
