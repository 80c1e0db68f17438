"""The ablation runner end to end on a tiny benchmark: data build (by ablate itself), teacher (published fp16, trained
with the study's teacher_overrides), teacher cache,
student rows with cached and live teachers, per-run records, report; a second run skips finished jobs."""

import json
import shutil
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from train_rig import TINY_STUDENT, TINY_TEACHER, cli
from xdrcdepth_core.checkpoint import load_checkpoint
from xdrcdepth_core.experiments.ablation import _run


def _yaml(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.slow
@pytest.mark.timeout(1800)   # its own commands may take 1500 + 300 s
def test_tiny_ablation_resumable_with_report(tmp_path):
    data = _yaml(tmp_path / "data.yaml", {
        "root": str(tmp_path / "bench"), "image_scale": 0.1, "conditions": ["clear", "fog"], "frames_per_scene": 2,
        "input_hw": [64, 128], "train_lidar_sweeps": 3, "radar_sweeps": 1,
        "splits": {"train": {"scenes": 2, "seed": 1}, "val": {"scenes": 1, "seed": 2}, "test": {"scenes": 1, "seed": 3}}})
    common = {"precision": "fp32", "data": {"input_hw": [64, 128]}, "optim": {"epochs": 1, "batch_size": 2},
              "log": {"tensorboard": False, "images": 0}}
    teacher = _yaml(tmp_path / "teacher.yaml", {**common, "model": TINY_TEACHER,
                                                "losses": [{"name": "depth_l1"}, {"name": "radar_confidence_bce"},
                                                           {"name": "laplacian_nll", "weight": 0.1}]})
    student = _yaml(tmp_path / "student.yaml", {**common, "model": TINY_STUDENT, "losses": [{"name": "depth_l1"}]})
    results = tmp_path / "docs" / "results" / "ablation"
    config = _yaml(tmp_path / "ablation.yaml", {
        "data": data, "out": str(tmp_path / "runs"), "results_dir": str(results), "teacher": teacher,
        "student": student, "teacher_cache": {"layers": ["decoder:4"], "target": "mean_depth"}, "ship": "direct",
        "teacher_overrides": {"optim": {"epochs": 2}},
        "variants": {
            "direct": {"seeds": [0, 1]},
            "xkd+dkd": {"seeds": [0], "losses": [{"name": "xkd", "weight": 1.0}, {"name": "dkd", "bins": 16}]},
            "crkd": {"seeds": [0], "losses": [{"name": "crkd_response"}, {"name": "crkd_mask_feature"}]}}})

    proc = cli("ablate", "--config", config, "--dry-run")
    assert proc.returncode == 0 and "direct seed 1: to do" in proc.stdout
    assert not (tmp_path / "bench").exists()                               # a dry run builds nothing

    # No `build-data` first (a new machine): ablate builds the benchmark it needs, then trains.
    proc = cli("ablate", "--config", config, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "5 runs in 4 variants" in proc.stdout.splitlines()[-1]          # teacher + 4 student runs
    report = json.loads((results.parent / "ablation.json").read_text())
    assert set(report["variants"]) == {"teacher", "direct", "xkd+dkd", "crkd"}
    assert len(report["variants"]["direct"]["runs"]) == 2
    assert all("mae_80" in run and "exact_mae_80" in run for row in report["variants"].values() for run in row["runs"])
    assert set(report["baselines"]) == {"radar_only", "constant"}
    assert (results.parent / "ablation.md").read_text().count("\n| ") >= 5
    assert (results.parent / "ablation_mae.png").is_file()

    # The teacher is published in fp16 and the students distilled from those weights (live: crkd; cached: xkd+dkd).
    published = load_checkpoint(results / "teacher.pt")
    assert all(v.dtype.is_floating_point is False or str(v.dtype) == "torch.float16"
               for v in published["state_dict"].values())
    teacher_cfg = yaml.safe_load((tmp_path / "runs" / "teacher" / "config.yaml").read_text())
    assert teacher_cfg["optim"]["epochs"] == 2 and len(json.loads((tmp_path / "runs" / "teacher" / "history.json")
                                                                   .read_text())) == 2   # teacher_overrides applied
    crkd_cfg = yaml.safe_load((tmp_path / "runs" / "crkd" / "seed0" / "config.yaml").read_text())
    xkd_cfg = yaml.safe_load((tmp_path / "runs" / "xkd+dkd" / "seed0" / "config.yaml").read_text())
    assert crkd_cfg["teacher"] == {"checkpoint": str(results / "teacher.pt"), "cache": None}
    assert xkd_cfg["teacher"]["cache"] == str(tmp_path / "runs" / "teacher_cache")

    # Finished jobs are skipped: a second run trains nothing and rebuilds the same report.
    proc = cli("ablate", "--config", config, timeout=300)
    assert proc.returncode == 0
    logs = (tmp_path / "runs" / "direct" / "seed0" / "log.txt").read_text()
    assert logs.count("cli train") == 1
    # The logs of the sub-commands hold their lines, not progress bars redrawn with carriage returns.
    teacher_log = (tmp_path / "runs" / "teacher" / "log.txt").read_text()
    assert "cli eval" in logs and "cli teacher-cache" in teacher_log
    assert "\r" not in logs + teacher_log and "frame/s" not in logs and "sample/s" not in teacher_log

    # A machine without a run's folder (a new session) but with its committed record: finished there too.
    shutil.rmtree(tmp_path / "runs" / "direct" / "seed1")
    proc = cli("ablate", "--config", config, "--dry-run")
    assert "direct seed 1: done (recorded in results_dir; no run folder here)" in proc.stdout
    proc = cli("ablate", "--config", config, "--only", "direct", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "runs" / "direct" / "seed1").exists()            # not trained again
    assert len(json.loads((results.parent / "ablation.json").read_text())["variants"]["direct"]["runs"]) == 2


def test_a_run_log_shows_each_line_while_the_command_still_runs(tmp_path, monkeypatch):
    # A child that prints a line, then waits for a file: the line must be in the log before the child ends
    # (Python block-buffers stdout into a file, so without PYTHONUNBUFFERED the epoch lines of a training
    # run appeared only when it finished).
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)   # as a user's shell has it
    go = tmp_path / "go"
    child = ("import pathlib, time\nprint('epoch', 1, 'done')\n"   # the log's command line must not hold the text
             f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n")
    log = tmp_path / "runs" / "log.txt"
    runner = threading.Thread(target=_run, args=([sys.executable, "-c", child], log))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while "epoch 1 done" not in (log.read_text() if log.is_file() else ""):
            assert runner.is_alive() and time.monotonic() < deadline, "the line reached the log only at the end"
            time.sleep(0.05)
    finally:
        go.touch()
        runner.join(60)
    assert log.read_text().startswith(f"\n$ {sys.executable} -c")


@pytest.fixture(scope="module")
def three_scene_benchmark(tmp_path_factory):
    """A data config of 3 train scenes (and 1 val, 1 test) and its root, shared by the tests below: the first one's
    ``build_data`` renders it (~1 min), the next finds it built (``build_data`` skips finished work)."""
    root = tmp_path_factory.mktemp("three_scenes")
    data = _yaml(root / "data.yaml", {
        "root": str(root / "bench"), "image_scale": 0.1, "conditions": ["clear", "fog"], "frames_per_scene": 2,
        "input_hw": [64, 128], "train_lidar_sweeps": 1, "radar_sweeps": 1,
        "splits": {"train": {"scenes": 3, "seed": 1}, "val": {"scenes": 1, "seed": 2}, "test": {"scenes": 1, "seed": 3}}})
    return data, root / "bench"


def test_train_scenes_and_overrides_reach_the_teacher_and_every_student(tmp_path, three_scene_benchmark):
    """``train_scenes: N`` caches the first N rendered train scenes apart from the full split, and points the
    teacher, the teacher cache and every student at that cache (with the study's teacher / student overrides
    merged in; a variant's ``precision`` wins over the study's); a count the split cannot give is refused."""
    from xdrcdepth_core.experiments.ablation import Ablation, load_ablation_config

    data, bench = three_scene_benchmark
    common = {"precision": "fp32", "data": {"input_hw": [64, 128]}, "log": {"tensorboard": False}}
    study = {"data": data, "out": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"),
             "teacher": _yaml(tmp_path / "teacher.yaml", {**common, "model": TINY_TEACHER,
                                                           "losses": [{"name": "depth_l1"}]}),
             "student": _yaml(tmp_path / "student.yaml", {**common, "model": TINY_STUDENT,
                                                           "losses": [{"name": "depth_l1"}]}),
             "teacher_cache": {"layers": ["decoder:4"], "target": "mean_depth"}, "ship": "direct",
             "train_scenes": 2, "variants": {"direct": {"seeds": [0], "optim": {"epochs": 3}},
                                             "direct_fp32": {"precision": "fp32"}},
             "teacher_overrides": {"precision": "bf16", "data": {"limit_val": 5}},
             "student_overrides": {"precision": "bf16", "optim": {"epochs": 7, "lr": 1.0e-3}, "data": {"limit_val": 6}}}
    ablation = Ablation(load_ablation_config(_yaml(tmp_path / "ablation.yaml", study)), tmp_path / "ablation.yaml")
    ablation.build_data()

    # Which samples belong to which scene, from the rendered nuScenes tables themselves.
    tables = next((bench / "scenes" / "train").glob("v1.0-*"))
    scene_names = {s["token"]: s["name"] for s in json.loads((tables / "scene.json").read_text())}
    assert sorted(scene_names.values()) == ["synth-1-0000", "synth-1-0001", "synth-1-0002"]
    scene_of = {s["token"]: scene_names[s["scene_token"]] for s in json.loads((tables / "sample.json").read_text())}
    subset = bench / "cache" / "train_64x128_first2scenes"
    tokens = {str(np.load(f)["token"]) for f in subset.glob("*.npz")}
    assert len(tokens) == 4 and {scene_of[t] for t in tokens} == {"synth-1-0000", "synth-1-0001"}
    assert len(list((bench / "cache" / "train_64x128").glob("*.npz"))) == 6   # the full split kept

    teacher = ablation.teacher_config()
    student = ablation.student_config("direct", 0, tmp_path / "runs" / "direct" / "seed0")
    assert teacher["data"]["train"] == student["data"]["train"] == str(subset)
    # The overrides merge key by key under the study's data folders; a variant's own settings win over them.
    assert (teacher["precision"], teacher["data"]["limit_val"], teacher["data"]["input_hw"]) == ("bf16", 5, [64, 128])
    assert (student["precision"], student["data"]["limit_val"], student["data"]["input_hw"]) == ("bf16", 6, [64, 128])
    assert (student["optim"]["epochs"], student["optim"]["lr"]) == (3, 1.0e-3)
    fp32 = ablation.student_config("direct_fp32", 0, tmp_path / "runs" / "direct_fp32" / "seed0")
    assert (fp32["precision"], fp32["data"]["limit_val"], fp32["optim"]["epochs"]) == ("fp32", 6, 7)
    with pytest.raises(ValueError, match="variant direct_fp32: precision must be one of auto, fp32, bf16, fp16, got 'f32'"):
        load_ablation_config(_yaml(tmp_path / "bad.yaml", {**study, "variants": {"direct": {},
                                                                                  "direct_fp32": {"precision": "f32"}}}))
    assert ablation.paths["train"] == subset          # the teacher cache is made for these samples

    for bad in (0, 4, True, "2", 1.5):
        with pytest.raises(ValueError, match=r"train_scenes must be a whole number from 1 to the train split's 3 "):
            Ablation(load_ablation_config(_yaml(tmp_path / "bad.yaml", {**study, "train_scenes": bad})),
                     tmp_path / "bad.yaml")


def test_unlabelled_variant_adds_the_other_train_scenes_without_labels(tmp_path, three_scene_benchmark):
    """A variant with ``unlabelled: true`` trains on one folder: the first ``train_scenes`` scenes as they are
    and the split's other scenes without any label, with a teacher cache of its own for those frames, and the
    trainer batches both kinds together; the other variants keep the labelled subset. Settings it cannot
    work with are refused."""
    from xdrcdepth_core.experiments.ablation import Ablation, load_ablation_config

    data, bench = three_scene_benchmark
    common = {"precision": "fp32", "data": {"input_hw": [64, 128]}, "log": {"tensorboard": False, "images": 0},
              "optim": {"epochs": 1, "batch_size": 2}}
    kd = [{"name": "dkd", "bins": 16}]
    study = {"data": data, "out": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"),
             "teacher": _yaml(tmp_path / "teacher.yaml", {**common, "model": TINY_TEACHER,
                                                           "losses": [{"name": "depth_l1"}]}),
             "student": _yaml(tmp_path / "student.yaml", {**common, "model": TINY_STUDENT,
                                                           "losses": [{"name": "depth_l1"}]}),
             "teacher_cache": {"layers": ["decoder:4"], "target": "mean_depth"}, "ship": "direct", "train_scenes": 2,
             "variants": {"direct": {}, "dkd": {"losses": kd},
                          "dkd+unlabelled": {"unlabelled": True, "losses": kd, "optim": {"epochs": 2,
                                                                                      "batch_size": 6}}}}
    ablation = Ablation(load_ablation_config(_yaml(tmp_path / "ablation.yaml", study)), tmp_path / "ablation.yaml")
    ablation.build_data()
    ablation.train_teacher()

    tables = next((bench / "scenes" / "train").glob("v1.0-*"))
    scene_names = {s["token"]: s["name"] for s in json.loads((tables / "scene.json").read_text())}
    scene_of = {s["token"]: scene_names[s["scene_token"]] for s in json.loads((tables / "sample.json").read_text())}
    mixed = bench / "cache" / "train_64x128_first2scenes_plus1unlabelled"
    labels = {}
    for f in mixed.glob("*.npz"):
        with np.load(f) as npz:
            labels[str(npz["token"])] = (bool(npz["depth_gt"].any()), len(npz["boxes"]) > 0)
            assert set(npz.files) >= {"depth_exact", "radar_confidence_gt"}    # the same keys in every file
    assert sorted(scene_of[t] for t in labels) == ["synth-1-0000"] * 2 + ["synth-1-0001"] * 2 + ["synth-1-0002"] * 2
    assert all(labels[t] == ((True, True) if scene_of[t] != "synth-1-0002" else (False, False)) for t in labels)
    run_dir = tmp_path / "runs" / "dkd+unlabelled" / "seed0"
    ablation.train_student("dkd+unlabelled", 0, run_dir)        # one batch of all six frames, twice
    assert len(json.loads((run_dir / "history.json").read_text())) == 2 and (run_dir / "test.json").is_file()
    plus_cache = tmp_path / "runs" / "teacher_cache_plus_unlabelled"
    assert sorted(f.name for f in plus_cache.glob("*.npz")) == sorted(f.name for f in mixed.glob("*.npz"))

    configs = {name: ablation.student_config(name, 0, tmp_path / "runs" / name / "seed0") for name in study["variants"]}
    subset = str(bench / "cache" / "train_64x128_first2scenes")
    assert configs["direct"]["data"]["train"] == configs["dkd"]["data"]["train"] == subset
    assert configs["dkd"]["teacher"]["cache"] == str(tmp_path / "runs" / "teacher_cache")
    assert configs["dkd+unlabelled"]["data"]["train"] == str(mixed)
    assert configs["dkd+unlabelled"]["teacher"]["cache"] == str(plus_cache)
    assert configs["dkd+unlabelled"]["optim"]["epochs"] == 2 and "unlabelled" not in configs["dkd+unlabelled"]

    unlabelled = study["variants"]["dkd+unlabelled"]
    for change, problem in (({"train_scenes": None}, "set train_scenes"),
                            ({"variants": {"direct": {}, "u": {**unlabelled, "losses": []}}}, "distillation losses"),
                            ({"variants": {"direct": {}, "u": {**unlabelled, "unlabelled": "yes"}}},
                             "unlabelled must be true or false")):
        bad = {key: value for key, value in {**study, **change}.items() if value is not None}
        with pytest.raises(ValueError, match=problem):
            load_ablation_config(_yaml(tmp_path / "bad.yaml", bad))
    with pytest.raises(ValueError, match="unlabelled frames need train_scenes below the train split's 3 scenes"):
        Ablation(load_ablation_config(_yaml(tmp_path / "bad.yaml", {**study, "train_scenes": 3})), tmp_path / "bad.yaml")
