"""The shipped student's report card: provenance, the synthetic-test table and the domain-gap verdict, from
hand-made evaluation results (numbers worked out by hand below)."""

import json

import pytest
import torch

from xdrcdepth_core.checkpoint import save_checkpoint
from xdrcdepth_core.experiments.shipped_report import write_shipped_report
from xdrcdepth_core.models import build_model


def _results(model_mae, radar_mae, constant_mae):
    def row(mae):
        return {"auto": {"80": {"mae": mae, "rmse": 2 * mae, "abs_rel": 0.25, "delta1": 0.5, "images": 3}}}
    return {"model": row(model_mae), "radar_only": row(radar_mae), "constant": row(constant_mae)}


@pytest.mark.network
@pytest.mark.parametrize("real_model_mae, verdict", [(9000.0, "it beats both baselines"),
                                                     (13000.0, "it does NOT beat every baseline there")])
def test_report_card(tmp_path, real_model_mae, verdict):
    torch.manual_seed(0)
    ckpt = tmp_path / "xdrcdepth_student.pt"
    save_checkpoint(ckpt, build_model("xdrcdepth", width_mult=0.25, radar_width_mult=0.25), (64, 128),
                    ("depth", "rcs", "vx_comp", "vy_comp"),
                    metrics={"variant": "xkd+dkd", "seed": 2, "seeds_compared": [0, 2], "seeds_planned": 3,
                             "reproduce": "xdrcdepth ablate --only xkd+dkd"}, weights_dtype=torch.float16)
    test_json = tmp_path / "test.json"
    test_json.write_text(json.dumps({"results": _results(2000.0, 10000.0, 8000.0)}))
    real = {"frames": 6, "results": _results(real_model_mae, 18000.0, 12000.0)}

    line = write_shipped_report(ckpt, test_json, tmp_path, real)

    md = (tmp_path / "shipped_student.md").read_text()
    assert line == f"report -> {tmp_path / 'shipped_student.md'}"
    assert "variant `xkd+dkd`, seed 2, the best validation MAE among seeds [0, 2] of the 3 planned" in md
    assert "| shipped student | 2.000 | 4.000 | 0.2500 | 0.5000 | 3 |" in md
    assert "| radar only (nearest return) | 10.000 | 20.000 |" in md
    assert "5.0x lower than the radar-only baseline's" in md               # 10000 / 2000
    assert verdict in md
    assert f"radar-only / student MAE = {18000.0 / real_model_mae:.2f}" in md
    card = json.loads((tmp_path / "shipped_student.json").read_text())
    assert card["size_mb"] == round(ckpt.stat().st_size / 1e6, 2) and card["seed"] == 2


@pytest.mark.network
def test_report_without_real_samples_has_no_domain_section(tmp_path):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, build_model("xdrcdepth", width_mult=0.25, radar_width_mult=0.25), (64, 128),
                    ("depth", "rcs", "vx_comp", "vy_comp"), metrics={})
    (tmp_path / "t.json").write_text(json.dumps({"results": _results(4000.0, 10000.0, 8000.0)}))
    write_shipped_report(ckpt, tmp_path / "t.json", tmp_path, None)
    md = (tmp_path / "shipped_student.md").read_text()
    assert "Domain gap" not in md and "2.5x lower" in md


@pytest.mark.slow
@pytest.mark.network
def test_real_samples_are_scored_on_the_frame_with_lidar(tmp_path):
    from xdrcdepth_core.data.real_samples import DEFAULT_SAMPLES_DIR
    from xdrcdepth_core.experiments.shipped_report import evaluate_real_samples

    if not (DEFAULT_SAMPLES_DIR / "frames.json").is_file():
        pytest.skip(f"no real samples in {DEFAULT_SAMPLES_DIR}")
    frames = json.loads((DEFAULT_SAMPLES_DIR / "frames.json").read_text())["frames"]
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, build_model("xdrcdepth", width_mult=0.25, radar_width_mult=0.25), (64, 128),
                    ("depth", "rcs", "vx_comp", "vy_comp"), metrics={"median_train_depth": 20.0})
    real = evaluate_real_samples(ckpt)
    assert real["frames"] == len(frames) and real["constant_depth"] == 20.0
    for name in ("model", "radar_only", "constant"):
        row = real["results"][name]["auto"]["80"]
        assert row["images"] == 1 and row["skipped"] == len(frames) - 1      # one key frame has a LiDAR sweep
