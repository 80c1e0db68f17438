"""The ablation report from per-run records alone (no checkpoint): mean ± std over seeds, change vs direct,
the compute spent and still planned, the saliency table and the hand-written notes, all worked out by hand."""

import json

import pytest

from train_rig import TINY_STUDENT
from xdrcdepth_core.experiments.ablation_report import write_report


def _metrics(mae_mm: float) -> dict:
    per_cap = {"mae": mae_mm, "rmse": 2 * mae_mm, "abs_rel": 0.1, "delta1": 0.9}
    return {"auto": {cap: dict(per_cap) for cap in ("50", "70", "80")}, "exact": {"80": dict(per_cap)}}


def _record(results, variant: str, seed: int, mae_mm: float, seconds: float, val_mm: float = 2500.0,
            summary_seconds: float | None = None, precision: str = "fp32", machines=(None, None)) -> None:
    """Two epochs of ``seconds / 2`` training each; ``summary_seconds`` (default ``seconds``) stands for a
    record whose summary counted only its last process (a resumed run, before epochs kept their wall time);
    ``machines``: the machine each epoch names (None: a record from before epochs named it)."""
    record = {"variant": variant, "seed": seed, "config": {"model": TINY_STUDENT, "precision": precision},
              "summary": {"seconds": seconds if summary_seconds is None else summary_seconds,
                          "best_val_mae_mm": val_mm},
              "history": [{"val_mae": 3000.0, "train_seconds": seconds / 2},
                          {"val_mae": val_mm, "train_seconds": seconds / 2}],
              "test": {"results": {"model": _metrics(mae_mm), "radar_only": _metrics(15000.0),
                                   "constant": _metrics(11000.0)}}}
    for epoch, machine in zip(record["history"], machines):
        if machine is not None:
            epoch["machine"] = machine
    (results / "runs" / f"{variant}__seed{seed}.json").write_text(json.dumps(record))


@pytest.mark.network
def test_report_table_budget_saliency_and_notes(tmp_path):
    results = tmp_path / "results" / "ablation"
    (results / "runs").mkdir(parents=True)
    _record(results, "teacher", 0, 2000.0, 2400.0)
    _record(results, "direct", 0, 3000.0, 1200.0)
    _record(results, "direct", 1, 2600.0, 1200.0, val_mm=2900.0, machines=("x86_64, EPYC", "x86_64, EPYC"))
    _record(results, "xkd+dkd", 0, 2700.0, 3000.0, summary_seconds=600.0,   # resumed: the epochs' 3000 s count
            machines=("x86_64, Xeon", "x86_64, EPYC"))                    # ... on another machine
    (results / "saliency.json").write_text(json.dumps({
        "frames": 40, "layer": "decoder:4", "target": "mean predicted depth",
        "models": {"teacher": {"concentration_top10": 0.5},
                   "xkd+dkd student": {"concentration_top10": 0.25, "agreement_with_teacher": 0.875}}}))
    (results / "notes.md").write_text("## Findings\n\nTried a lower X-KD weight.\n")
    cfg = {"results_dir": str(results), "data": "data.yaml",
           "variants": {"direct": {"seeds": [0, 1, 2]}, "xkd+dkd": {"seeds": [0, 1]}, "dkd": {"seeds": [0]}}}

    assert write_report(cfg, "ablation.yaml") == f"4 runs in 3 variants -> {results.parent / 'ablation.md'}"

    report = json.loads((results.parent / "ablation.json").read_text())
    direct = report["variants"]["direct"]
    assert direct["mean"]["mae_80"] == pytest.approx(2800.0)
    assert direct["std"]["mae_80"] == pytest.approx(282.842712, rel=1e-6)   # sqrt(2 * 200^2 / 1)
    # spent: (2400 + 1200 + 1200 + 3000) s = 130 min; left: direct seed 2 at 20 min, xkd+dkd seed 1 at 50 min
    # -> 70 min; dkd has no finished run, so no time of its own to estimate from
    assert report["budget"]["minutes_spent"] == pytest.approx(130.0)
    assert report["budget"]["minutes_left_estimate"] == pytest.approx(70.0)
    assert report["budget"]["to_do"] == {"direct": [2], "xkd+dkd": [1], "dkd": [0]}
    assert report["budget"]["not_estimated"] == ["dkd"]

    md = (results.parent / "ablation.md").read_text()
    assert "| direct | 2 |" in md and "| 2.800 ± 0.283 |" in md
    # val MAE of the kept epochs, 2.5 and 2.9 m: mean 2.7, std sqrt(2 * 0.2^2 / 1) = 0.283, then the minutes
    assert "| 2.700 ± 0.283 | 20 |" in md and report["variants"]["direct"]["val_mae_80"] == [2500.0, 2900.0]
    assert "| xkd+dkd | 1 |" in md and "| -3.6 % |" in md                   # 2700 / 2800 - 1
    assert "Compute: 2.2 h on the 4 finished runs" in md
    assert ("Trained on: x86_64, EPYC (direct seed 1, xkd+dkd seed 0); x86_64, Xeon (xkd+dkd seed 0); not recorded "
            "for the other 2 runs (trained before epochs named it).") in md
    assert direct["machines"] == [[], ["x86_64, EPYC"]]
    assert ("Still to run: direct seeds [2], xkd+dkd seeds [1], dkd seeds [0] (about 1.2 h more at the measured "
            "times; no time measured yet for dkd (no finished run)); `xdrcdepth ablate` resumes them.") in md
    assert "| teacher | 0.500 | — |" in md and "| xkd+dkd student | 0.250 | 0.875 |" in md
    assert "## Findings\n\nTried a lower X-KD weight.\n" in md


@pytest.mark.network
def test_a_follow_up_study_writes_its_own_report_beside_the_main_one(tmp_path):
    """A second study in the same folder (here: one without a direct row) is named after its results_dir and
    leaves the main study's files alone; with no direct row there is no change to state."""
    main, follow_up = tmp_path / "results" / "ablation", tmp_path / "results" / "ablation_teacher_e25"
    (follow_up / "runs").mkdir(parents=True)
    main.parent.joinpath("ablation.md").write_text("main report")
    main.parent.joinpath("ablation.json").write_text("{}")
    _record(follow_up, "xkd+dkd", 0, 2700.0, 3000.0)
    cfg = {"results_dir": str(follow_up), "data": "data.yaml", "variants": {"xkd+dkd": {"seeds": [0]}}}

    assert write_report(cfg, "e25.yaml") == f"1 runs in 1 variants -> {tmp_path / 'results' / 'ablation_teacher_e25.md'}"

    assert (tmp_path / "results" / "ablation.md").read_text() == "main report"
    assert (tmp_path / "results" / "ablation.json").read_text() == "{}"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "ablation.json", "ablation.md", "ablation_teacher_e25", "ablation_teacher_e25.json",
        "ablation_teacher_e25.md", "ablation_teacher_e25_learning_curves.png", "ablation_teacher_e25_mae.png"]
    md = (tmp_path / "results" / "ablation_teacher_e25.md").read_text()
    assert "| xkd+dkd | 1 |" in md and "| — | 2.700 |" in md
    assert "![ablation_teacher_e25_mae.png](ablation_teacher_e25_mae.png)" in md


@pytest.mark.network
def test_a_follow_up_compares_against_the_direct_rows_it_names(tmp_path):
    """``direct_from``: the other study's direct rows head the table and give the change; the compute spent is
    this study's own."""
    main, follow_up = tmp_path / "results" / "ablation", tmp_path / "results" / "ablation_teacher_e25"
    (main / "runs").mkdir(parents=True)
    (follow_up / "runs").mkdir(parents=True)
    _record(main, "direct", 0, 3000.0, 1200.0)
    _record(main, "direct", 1, 2600.0, 1200.0)
    _record(main, "xkd+dkd", 0, 9999.0, 1200.0)                         # not borrowed: only direct is
    _record(follow_up, "xkd+dkd", 0, 2520.0, 3000.0)
    cfg = {"results_dir": str(follow_up), "data": "data.yaml", "direct_from": str(main), "title": "Follow-up",
           "variants": {"xkd+dkd": {"seeds": [0]}}}

    assert write_report(cfg, "e25.yaml").startswith("1 runs in 1 variants")

    report = json.loads((tmp_path / "results" / "ablation_teacher_e25.json").read_text())
    assert list(report["variants"]) == ["direct", "xkd+dkd"] and report["variants"]["direct"]["from"] == str(main)
    assert report["variants"]["direct"]["mean"]["mae_80"] == pytest.approx(2800.0)
    assert report["budget"]["minutes_spent"] == pytest.approx(50.0)     # 3000 s of its own, not the 2400 s borrowed
    md = (tmp_path / "results" / "ablation_teacher_e25.md").read_text()
    assert "| xkd+dkd | 1 |" in md and "| -10.0 % |" in md               # 2520 / 2800 - 1
    assert f"The `direct` row is `{main}`'s (2 seeds" in md and md.startswith("# Follow-up\n")


def test_a_low_data_study_says_how_many_scenes_and_what_precision_it_trained_with(tmp_path):
    """``train_scenes`` and the runs' precision are named in the report (not the fp32 of the earlier studies)."""
    results = tmp_path / "results" / "ablation_low"
    (results / "runs").mkdir(parents=True)
    _record(results, "direct", 0, 3000.0, 600.0, precision="bf16")
    _record(results, "xkd+dkd", 0, 2700.0, 900.0, precision="bf16")
    cfg = {"results_dir": str(results), "data": "data.yaml", "train_scenes": 12,
           "variants": {"direct": {"seeds": [0]}, "xkd+dkd": {"seeds": [0]}}}
    write_report(cfg, "low.yaml")
    md = (tmp_path / "results" / "ablation_low.md").read_text()
    assert "data `data.yaml`, trained on its first 12 train scenes only (teacher and students)." in md
    assert "2-core CPU, precision bf16)" in md and "fp32" not in md
    assert "| xkd+dkd | 1 |" in md and "-10.0 %" in md
    cfg["variants"]["xkd+dkd"]["unlabelled"] = True                 # it also saw the other scenes, unlabelled
    write_report(cfg, "low.yaml")
    md = (tmp_path / "results" / "ablation_low.md").read_text()
    assert ("trained on its first 12 train scenes only (teacher and students); xkd+dkd also trained on the split's "
            "other scenes without their labels (only the teacher's targets reach the student there).") in md
