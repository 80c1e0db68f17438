"""Evaluation protocol and baselines on hand-made caches: values worked out by hand in the tests."""

import json

import numpy as np
import pytest

from xdrcdepth_core.evaluation.baselines import radar_nearest_depth
from xdrcdepth_core.evaluation.evaluate import evaluate_cache, ground_truth
from xdrcdepth_core.evaluation.panels import evaluation_panel, grow_sparse
from xdrcdepth_core.infer import DepthResult

CHANNELS = ("depth", "rcs", "vx_comp", "vy_comp")


def test_radar_nearest_depth_by_hand():
    radar = np.zeros((3, 5), np.float32)
    radar[0, 0] = 10.0
    radar[2, 4] = 30.0
    dense = radar_nearest_depth(radar, fallback=7.0)
    # Pixel (1, 1): distance sqrt(2) to (0,0), sqrt(10) to (2,4) -> 10. Pixel (1, 3): sqrt(10) vs sqrt(2) -> 30.
    expected = np.array([[10, 10, 10, 30, 30],
                         [10, 10, 10, 30, 30],
                         [10, 10, 30, 30, 30]], np.float32)
    # (0,2): d=2 to (0,0), sqrt(8) to (2,4) -> 10; (0,3): 3 vs sqrt(5) -> 30; (2,2): sqrt(8) vs 2 -> 30
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(radar_nearest_depth(np.zeros((2, 2)), 7.0), np.full((2, 2), 7.0))


def test_grow_sparse_radius():
    sparse = np.zeros((5, 5))
    sparse[2, 2] = 4.0
    grown = grow_sparse(sparse, 1)
    assert (grown > 0).sum() == 5                     # the point and its 4 neighbours at distance 1
    assert grown[1, 2] == grown[2, 1] == 4.0 and grown[1, 1] == 0


class _FixedEstimator:
    """Stands in for DepthEstimator with known predictions, so the protocol can be checked by hand."""

    radar_channels = CHANNELS

    def __init__(self, depth):
        self.depth = depth

    def estimate_raster(self, image, raster, saliency=False):
        return DepthResult(depth=self.depth.copy(), saliency=np.zeros(image.shape[:2]) if saliency else None)


def _write_cache(folder, gt_single, gt_accumulated, radar_depth, exact=None):
    folder.mkdir()
    h, w = gt_single.shape
    radar = np.zeros((4, h, w), np.float32)
    radar[0] = radar_depth
    arrays = dict(image=np.zeros((h, w, 3), np.uint8), radar=radar, radar_channels=np.array(CHANNELS),
                  depth_gt=gt_accumulated, depth_gt_single=gt_single, K=np.eye(3), token=np.array("t0"),
                  settings=np.array("{}"))
    if exact is not None:
        arrays["depth_exact"] = exact
    np.savez_compressed(folder / "t0.npz", **arrays)


def test_evaluate_cache_scores_single_sweep_gt_and_baselines(tmp_path):
    gt_single = np.array([[10.0, 0.0], [40.0, 60.0]], np.float32)
    gt_acc = np.array([[10.0, 20.0], [40.0, 60.0]], np.float32)
    radar = np.array([[12.0, 0.0], [0.0, 0.0]], np.float32)
    _write_cache(tmp_path / "cache", gt_single, gt_acc, radar, exact=np.full((2, 2), 30.0, np.float32))
    pred = np.array([[11.0, 99.0], [44.0, 54.0]], np.float32)
    result = evaluate_cache(_FixedEstimator(pred), tmp_path / "cache", caps=(50.0, 80.0), gts=("auto", "exact"),
                            constant=20.0, progress=False)
    res = result.results()
    # auto = single sweep: pixels 10, 40 (cap 50) and 10, 40, 60 (cap 80); |err| = 1, 4, 6 m
    assert res["model"]["auto"]["50"]["mae"] == pytest.approx(2500.0)
    assert res["model"]["auto"]["80"]["mae"] == pytest.approx(11000.0 / 3)
    assert res["model"]["auto"]["80"]["rmse"] == pytest.approx(np.sqrt((1 + 16 + 36) / 3) * 1000)
    # radar-only: every pixel takes 12 m -> |err| 2, 28, 48
    assert res["radar_only"]["auto"]["80"]["mae"] == pytest.approx(78000.0 / 3)
    # constant 20 m -> |err| 10, 20, 40
    assert res["constant"]["auto"]["80"]["mae"] == pytest.approx(70000.0 / 3)
    # exact GT: 30 m everywhere; errors 19, 69->cap clip 80? pred clipped to cap: |30-80|=50, 14, 24 -> and 19
    assert res["model"]["exact"]["80"]["mae"] == pytest.approx((19 + 50 + 14 + 24) / 4 * 1000)
    assert result.frames == 1
    json.dumps(res)  # JSON-ready


def test_ground_truth_fallbacks():
    sample = {"depth_gt": np.ones((2, 2))}
    assert ground_truth(sample, "auto") is sample["depth_gt"]
    assert ground_truth(sample, "exact") is None
    with pytest.raises(ValueError, match="unknown ground truth"):
        ground_truth(sample, "foo")


def test_channel_mismatch_named(tmp_path):
    _write_cache(tmp_path / "cache", np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.zeros((2, 2)))
    estimator = _FixedEstimator(np.ones((2, 2), np.float32))
    estimator.radar_channels = ("depth",)
    with pytest.raises(ValueError, match="t0.npz.*radar channels"):
        evaluate_cache(estimator, tmp_path / "cache", progress=False)


def test_panel_layout():
    image = np.full((40, 60, 3), 50, np.uint8)
    depth = np.full((40, 60), 20.0)
    gt = np.zeros((40, 60))
    gt[30, 30] = 21.0
    panel = evaluation_panel(image, np.zeros((40, 60)), gt, depth, np.ones((40, 60)) * 0.5)
    assert panel.shape == (80, 180, 3)
    assert (panel[40 + 15:, 120:] == 0).all()   # no teacher saliency: black tile below its title
    error_tile = panel[40:, :60]
    assert error_tile[30, 30].any() and not error_tile[20, 10].any()   # error only where GT is
