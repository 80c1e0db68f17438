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


# --- every metric of one image with non-uniform errors, worked out by hand (issue 14) ----------------------
# valid (gt, pred) pairs, all values exact in binary so the ratios sit exactly on 1.25^k:
#   (2.5, 2.0)      ratio 1.25      = 1.25^1: not < 1.25 (strict), < 1.25^2
#   (4.0, 6.25)     ratio 1.5625    = 1.25^2: not < 1.25^2, < 1.25^3
#   (3.90625, 2.0)  ratio 1.953125  = 1.25^3: not < 1.25^3
#   (8.0, 9.0)      ratio 1.125     < 1.25
#   (12.0, 6.0)     ratio 2.0       > 1.25^3 (and < 3 * 1.25, so "1.25 * 3" would count it)
# invalid gt: min_depth itself (1e-3), the cap itself (80), NaN, 0 (no LiDAR), 100 (beyond the cap)
EXACT_GT = np.array([[2.5, 4.0, 3.90625, 8.0, 12.0], [1e-3, 80.0, np.nan, 0.0, 100.0]])
EXACT_PRED = np.array([[2.0, 6.25, 2.0, 9.0, 6.0], [5.0, 5.0, 5.0, 5.0, 5.0]])


def test_all_nine_metrics_by_hand_with_non_uniform_errors():
    m = compute_depth_metrics(EXACT_PRED, EXACT_GT, cap=80.0)
    assert m["valid_pixels"] == 5
    # gt - pred = 0.5, -2.25, 1.90625, -1, 6 (metres)
    assert m["mae"] == pytest.approx((0.5 + 2.25 + 1.90625 + 1 + 6) / 5 * 1000)              # 2331.25 mm
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 5.0625 + 3.6337890625 + 1 + 36) / 5) * 1000)  # 3031.379
    # 1000/gt - 1000/pred (1/km): 400 - 500, 250 - 160, 256 - 500, 125 - 1000/9, 1000/12 - 1000/6
    inverse = [-100.0, 90.0, -244.0, 125 - 1000 / 9, 1000 / 12 - 1000 / 6]
    assert m["imae"] == pytest.approx(sum(abs(v) for v in inverse) / 5)                       # 106.2444
    assert m["irmse"] == pytest.approx(math.sqrt(sum(v * v for v in inverse) / 5))           # 130.2101
    # |e| / gt = 0.2, 0.5625, 0.488, 0.125, 0.5
    assert m["abs_rel"] == pytest.approx((0.2 + 0.5625 + 0.488 + 0.125 + 0.5) / 5)           # 0.3751
    # e^2 / gt = 0.1, 1.265625, 0.93025, 0.125, 3
    assert m["sq_rel"] == pytest.approx((0.1 + 1.265625 + 0.93025 + 0.125 + 3.0) / 5)        # 1.084175
    assert m["delta1"] == pytest.approx(1 / 5)   # 1.125 only
    assert m["delta2"] == pytest.approx(2 / 5)   # 1.125, 1.25
    assert m["delta3"] == pytest.approx(3 / 5)   # 1.125, 1.25, 1.5625
    assert set(m) == {"mae", "rmse", "imae", "irmse", "abs_rel", "sq_rel", "delta1", "delta2", "delta3",
                      "valid_pixels"}
    assert all(type(v) is float for k, v in m.items() if k != "valid_pixels") and type(m["valid_pixels"]) is int


def test_non_finite_and_out_of_range_predictions_by_hand():
    # cap 50: +inf -> 50, NaN -> 1e-3, -inf -> 1e-3, 75 -> 50 (clipped), -3 -> 1e-3, 0 -> 1e-3
    gt = np.array([[10.0, 2.0, 4.0, 20.0, 1.0, 3.0]])
    pred = np.array([[np.inf, np.nan, -np.inf, 75.0, -3.0, 0.0]])
    m = compute_depth_metrics(pred, gt, cap=50.0)
    errors = [10 - 50, 2 - 1e-3, 4 - 1e-3, 20 - 50, 1 - 1e-3, 3 - 1e-3]
    assert m["valid_pixels"] == 6
    assert m["mae"] == pytest.approx(sum(abs(e) for e in errors) / 6 * 1000)
    assert m["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 6) * 1000)
    # every ratio is far above 1.25^3 (5, 2000, 4000, 2.5, 1000, 3000)
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.0, 0.0, 0.0)
    # a custom min_depth is where NaN and non-positive predictions go: pred 0.5 vs gt 2 -> error 1.5 m
    assert compute_depth_metrics([[np.nan, 0.0]], [[2.0, 2.0]], cap=50.0, min_depth=0.5)["mae"] == pytest.approx(1500)


def test_gt_at_min_depth_and_at_each_cap_is_excluded():
    gt = np.array([[1e-3, 1.1e-3, 49.9, 50.0, 70.0, 80.0, np.inf, -1.0]])
    pred = np.ones_like(gt)
    counts = {cap: compute_depth_metrics(pred, gt, cap=cap)["valid_pixels"] for cap in (50.0, 70.0, 80.0)}
    # cap 50: 1.1e-3, 49.9; cap 70 adds 50; cap 80 adds 70 (80 == cap, inf, -1 and 1e-3 == min_depth never)
    assert counts == {50.0: 2, 70.0: 3, 80.0: 4}
    # min_depth is a parameter: gt 0.5 is excluded at min_depth 0.5 and kept at 0.4
    assert compute_depth_metrics([[1.0, 1.0]], [[0.5, 2.0]], cap=10.0, min_depth=0.5)["valid_pixels"] == 1
    assert compute_depth_metrics([[1.0, 1.0]], [[0.5, 2.0]], cap=10.0, min_depth=0.4)["valid_pixels"] == 2
    # only gt on the excluded boundaries: no metrics
    assert compute_depth_metrics(np.ones((1, 2)), np.array([[1e-3, 50.0]]), cap=50.0) is None


def test_argument_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"need 0 <= min_depth < cap, got min_depth=50.0, cap=50.0"):
        compute_depth_metrics([[1.0]], [[1.0]], cap=50.0, min_depth=50.0)
    with pytest.raises(ValueError, match=r"need 0 <= min_depth < cap, got min_depth=-1.0, cap=50.0"):
        compute_depth_metrics([[1.0]], [[1.0]], cap=50.0, min_depth=-1.0)
    assert compute_depth_metrics([[1.0]], [[1.0]], cap=50.0, min_depth=0.0)["mae"] == 0.0
    with pytest.raises(ValueError, match=r"pred shape \(1, 2\) != gt shape \(1, 3\)"):
        compute_depth_metrics(np.ones((1, 2)), np.ones((1, 3)), cap=80.0)
    with pytest.raises(ValueError, match=r"gt must be one H x W depth map \(leading size-1 dims allowed\), "
                                         r"got shape \(2, 1, 3\)"):
        compute_depth_metrics(np.ones((1, 3)), np.ones((2, 1, 3)), cap=80.0)
    with pytest.raises(ValueError, match=r"pred must be one H x W depth map"):
        compute_depth_metrics(np.ones(3), np.ones((1, 3)), cap=80.0)
    with pytest.raises(ValueError, match="need at least one cap"):
        MetricAccumulator(caps=())


def test_one_row_images_and_tensors_with_grad_keep_their_shape():
    # a 1 x N image is one row, not squeezed to a vector; a tensor that requires grad is read as well
    pred = torch.tensor([[[2.0, 6.25, 2.0]]], requires_grad=True)
    m = compute_depth_metrics(pred, np.array([[2.5, 4.0, 3.90625]]), cap=80.0)
    assert m["valid_pixels"] == 3 and m["mae"] == pytest.approx((0.5 + 2.25 + 1.90625) / 3 * 1000)


def test_accumulator_results_and_table_text():
    acc = MetricAccumulator(caps=[50, 80.0], min_depth=0.5)
    assert acc.caps == (50.0, 80.0) and acc.min_depth == 0.5
    empty = acc.results()
    assert empty[50.0]["images"] == 0 and empty[50.0]["skipped"] == 0 and math.isnan(empty[50.0]["mae"])
    acc.update(EXACT_PRED, EXACT_GT)                         # the image above: all 5 valid pixels < 50
    acc.update(np.array([[0.2]]), np.array([[0.6]]))         # pred 0.2 -> min_depth 0.5: error 0.1 m
    res = acc.results()
    first = compute_depth_metrics(EXACT_PRED, EXACT_GT, cap=50.0, min_depth=0.5)
    second = compute_depth_metrics([[0.2]], [[0.6]], cap=50.0, min_depth=0.5)
    assert second["mae"] == pytest.approx(100.0)
    for key in ("mae", "rmse", "imae", "irmse", "abs_rel", "sq_rel", "delta1", "delta2", "delta3"):
        assert res[50.0][key] == pytest.approx((first[key] + second[key]) / 2), key
    assert res[80.0]["images"] == 2 and res[80.0]["skipped"] == 0
    assert set(res[50.0]) == {"mae", "rmse", "imae", "irmse", "abs_rel", "sq_rel", "delta1", "delta2", "delta3",
                              "images", "skipped"}
    # mae (2331.25 + 100) / 2 = 1215.625 -> "1215.6"; delta1 (0.2 + 1) / 2 = 0.6
    # rmse (3031.379 + 100) / 2, imae (106.244 + |1000/0.6 - 1000/0.5|) / 2, ... (first row: 10-wide columns)
    row = "      1215.6      1565.7        219.8         231.8      0.2709      0.5504      0.6000      0.7000      0.8000"
    assert acc.format_table().splitlines() == [
        "cap      images    MAE [mm]   RMSE [mm]  iMAE [1/km]  iRMSE [1/km]      AbsRel   SqRel [m]      d<1.25"
        "    d<1.25^2    d<1.25^3",
        "0-50          2" + row,
        "0-80          2" + row,
    ]


def test_update_batch_checks_batch_sizes():
    acc = MetricAccumulator(caps=(80.0,))
    with pytest.raises(ValueError, match="batch sizes differ: pred 2, gt 1"):
        acc.update_batch(np.ones((2, 1, 2, 2)), np.ones((1, 1, 2, 2)))
    acc.update_batch(torch.ones(2, 1, 1, 2), torch.tensor([[[[2.0, 0.0]]], [[[0.0, 0.0]]]]))
    assert acc.results()[80.0]["images"] == 1 and acc.results()[80.0]["skipped"] == 1


def test_float32_maps_are_scored_in_float64():
    pred32, gt32 = EXACT_PRED[:1].astype(np.float32) * 1.1, EXACT_GT[:1].astype(np.float32)
    assert compute_depth_metrics(pred32, gt32, cap=80.0) == compute_depth_metrics(
        pred32.astype(np.float64), gt32.astype(np.float64), cap=80.0)
    with pytest.raises(ValueError, match=r"^need at least one cap$"):
        MetricAccumulator(caps=[])
