"""The saliency study's two numbers on maps worked out by hand, and the study on a real (tiny) checkpoint."""

import math

import numpy as np
import pytest

from xdrcdepth_core.experiments.saliency_figure import _finite_mean, agreement, concentration


def test_concentration_by_hand():
    assert concentration(np.array([10.0] + [0.0] * 9)) == 1.0                  # all mass in the top pixel
    assert concentration(np.ones((4, 5))) == pytest.approx(0.1)                # flat: top 2 of 20 pixels
    assert concentration(np.array([3.0] + [1.0] * 9)) == pytest.approx(3 / 12)  # top 1 of 10 pixels
    assert concentration(np.array([1.0, 5.0, 2.0, 0.0] * 5), top=0.25) == pytest.approx(25 / 40)  # five 5s
    assert math.isnan(concentration(np.zeros(7)))


def test_agreement_by_hand():
    assert agreement(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)
    assert agreement(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # centred [-1, 0, 1] . [-1/3, 2/3, -1/3] = 0
    assert agreement(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0])) == pytest.approx(0.0, abs=1e-12)
    # a = [1, 0, 0, 0], b = [1, 1, 0, 0]: centred a = [.75, -.25, -.25, -.25], b = [.5, .5, -.5, -.5]
    # cov = .375 - .125 + .125 + .125 = .5; |a| = sqrt(.75), |b| = 1 -> r = .5 / sqrt(.75)
    assert agreement(np.array([1.0, 0, 0, 0]), np.array([1.0, 1, 0, 0])) == pytest.approx(0.5 / math.sqrt(0.75))
    assert math.isnan(agreement(np.ones(4), np.arange(4.0)))


def test_per_frame_values_are_averaged_where_defined_and_all_undefined_is_nan_without_a_warning():
    import warnings

    assert _finite_mean([0.5, float("nan"), 0.25]) == pytest.approx(0.375)    # a flat map's frame is left out
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                       # numpy warned 'Mean of empty slice'
        assert math.isnan(_finite_mean([float("nan"), float("nan")]))


@pytest.mark.network
def test_study_on_tiny_checkpoints(tmp_path):
    import torch
    from PIL import Image

    from train_rig import TINY_STUDENT, TINY_TEACHER
    from xdrcdepth_core.checkpoint import save_checkpoint
    from xdrcdepth_core.experiments.saliency_figure import saliency_study
    from xdrcdepth_core.models import build_model

    channels = ("depth", "rcs", "vx_comp", "vy_comp")
    rng = np.random.default_rng(0)
    cache = tmp_path / "cache"
    cache.mkdir()
    for k in range(3):
        radar = np.zeros((4, 64, 128), np.float32)
        radar[0, 40, 10 + 30 * k], radar[0, 35, 90] = 12.0 + k, 30.0
        np.savez_compressed(cache / f"t{k}.npz", image=rng.integers(0, 255, (64, 128, 3), dtype=np.uint8),
                            radar=radar, radar_channels=np.array(channels), depth_gt=radar[0],
                            K=np.eye(3), token=np.array(f"t{k}"), settings=np.array("{}"))
    paths = {}
    for label, spec in (("teacher", TINY_TEACHER), ("direct", TINY_STUDENT)):
        torch.manual_seed(1)
        cfg = dict(spec)
        paths[label] = tmp_path / f"{label}.pt"
        save_checkpoint(paths[label], build_model(cfg.pop("name"), **cfg), (64, 128), channels)
    paths["teacher again"] = paths["teacher"]
    figure = tmp_path / "fig" / "saliency.png"
    study = saliency_study(paths, cache, frames=2, shown=2, figure=figure)

    assert study["frames"] == 2                                   # the limit, not the 3 files
    models = study["models"]
    assert set(models) == {"teacher", "direct", "teacher again"}
    assert "agreement_with_teacher" not in models["teacher"]
    assert models["teacher again"]["agreement_with_teacher"] == pytest.approx(1.0)   # the same maps
    assert models["teacher again"]["concentration_top10"] == pytest.approx(models["teacher"]["concentration_top10"])
    assert -1.0 <= models["direct"]["agreement_with_teacher"] <= 1.0
    assert all(0.1 - 1e-9 <= m["concentration_top10"] <= 1.0 for m in models.values())
    width, height = Image.open(figure).size
    assert width > 2 * height                                     # 2 rows x 4 columns (image + 3 models)
