"""End to end through the installed commands: tiny teacher -> teacher-cache -> student with X-KD + D-KD
-> eval (table with both baselines, panels, JSON). Its duration is printed (a timing is a measurement,
not a pass criterion: README gives the figure measured on an idle machine)."""

import json
import shutil
import time

import numpy as np
import pytest
import torch

from fs_faults import file_size_limit
from train_rig import TINY_STUDENT, TINY_TEACHER, build_tiny_caches, cli, experiment, write_experiment
from xdrcdepth_core.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow   # over ~2 s on 2 cores: left out of the edit loop


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    return build_tiny_caches(tmp_path_factory.mktemp("tiny_caches"))


def test_teacher_cache_student_xkd_dkd_eval(caches, tmp_path):
    start = time.monotonic()
    teacher_yaml = write_experiment(tmp_path / "teacher.yaml", **experiment(
        caches, tmp_path / "teacher", TINY_TEACHER,
        [{"name": "depth_l1", "weight": 1.0}, {"name": "radar_confidence_bce", "weight": 0.1},
         {"name": "radar_depth_l1", "weight": 0.1}, {"name": "laplacian_nll", "weight": 0.1}]))
    proc = cli("train", "--config", str(teacher_yaml), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("train teacher: 1 epochs")
    teacher = load_checkpoint(tmp_path / "teacher" / "best.pt")
    assert teacher["model_name"] == "cafnet" and teacher["input_hw"] == [64, 128]
    assert teacher["metrics"]["median_train_depth"] > 0
    assert teacher["resolved_config"]["model"] == TINY_TEACHER
    assert (tmp_path / "teacher" / "config.yaml").is_file()
    assert list((tmp_path / "teacher" / "tensorboard").glob("events.out.tfevents.*"))

    proc = cli("teacher-cache", "--checkpoint", str(tmp_path / "teacher" / "best.pt"), "--data",
               str(caches["train"]), "--out", str(tmp_path / "tcache"), "--layers", "decoder:4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cached = sorted((tmp_path / "tcache").glob("*.npz"))
    assert [p.name for p in cached] == sorted(p.name for p in caches["train"].glob("*.npz"))
    with np.load(cached[0]) as npz:
        assert npz["depth"].shape == (1, 64, 128) and npz["saliency__decoder_4"].shape == (1, 16, 32)
        assert {"depth_8", "depth_4", "depth_2", "depth_confidence"} <= set(npz.files)
    # the same teacher weights at another path reuse the cache (it is keyed by content, not by path)
    moved_teacher = tmp_path / "moved" / "teacher.pt"
    moved_teacher.parent.mkdir()
    shutil.copyfile(tmp_path / "teacher" / "best.pt", moved_teacher)
    proc = cli("teacher-cache", "--checkpoint", str(moved_teacher), "--data", str(caches["train"]), "--out",
               str(tmp_path / "tcache"), "--layers", "decoder:4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"(0 computed, {len(cached)} already cached)" in proc.stdout

    student_yaml = write_experiment(tmp_path / "student.yaml", **experiment(
        caches, tmp_path / "student", TINY_STUDENT,
        [{"name": "depth_l1", "weight": 1.0}, {"name": "xkd", "weight": 0.5},
         {"name": "dkd", "weight": 1.0, "bins": 16, "temperature": 2.0}],
        teacher={"checkpoint": None, "cache": str(tmp_path / "tcache")}))
    proc = cli("train", "--config", str(student_yaml), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    history = json.loads((tmp_path / "student" / "history.json").read_text())
    assert set(history[0]["train"]) >= {"total", "depth_l1", "xkd", "dkd"}
    assert all(np.isfinite(v) for v in history[0]["train"].values())

    # other weights must not reuse that cache
    proc = cli("teacher-cache", "--checkpoint", str(tmp_path / "student" / "best.pt"), "--data",
               str(caches["train"]), "--out", str(tmp_path / "tcache"), "--layers", "decoder:4")
    assert proc.returncode == 2 and "holds outputs of another teacher" in proc.stderr

    proc = cli("eval", "--checkpoint", str(tmp_path / "student" / "best.pt"), "--data", str(caches["val"]),
               "--panels", str(tmp_path / "panels"), "--json", str(tmp_path / "eval.json"),
               "--teacher", str(tmp_path / "teacher" / "best.pt"), "--gt", "auto", "exact")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[radar_only, ground truth: auto]" in proc.stdout and "[constant, ground truth: auto]" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("eval: 4 frames, MAE@80 m (auto GT): model ")
    report = json.loads((tmp_path / "eval.json").read_text())
    assert set(report["results"]) == {"model", "radar_only", "constant"}
    assert set(report["results"]["model"]) == {"auto", "exact"}
    assert report["constant_depth"] == pytest.approx(
        load_checkpoint(tmp_path / "student" / "best.pt")["metrics"]["median_train_depth"])
    assert len(list((tmp_path / "panels").glob("*.png"))) == 4
    # a disk that fills while the panels are written (a 2 kB file size limit): a write error, one line, exit 1
    proc = cli("eval", "--checkpoint", str(tmp_path / "student" / "best.pt"), "--data", str(caches["val"]),
               "--panels", str(tmp_path / "full"), "--no-progress", preexec_fn=file_size_limit(2048))
    assert proc.returncode == 1 and proc.stderr.startswith(f"xdrcdepth eval: cannot write {tmp_path / 'full'}/")
    assert "[Errno 27]" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    print(f"teacher -> teacher-cache -> student -> eval: {time.monotonic() - start:.1f} s")


def test_student_without_teacher_is_a_clear_error(caches, tmp_path):
    path = write_experiment(tmp_path / "s.yaml", **experiment(
        caches, tmp_path / "s", TINY_STUDENT, [{"name": "depth_l1"}, {"name": "dkd"}]))
    proc = cli("train", "--config", str(path))
    assert proc.returncode == 2
    assert "teacher.checkpoint" in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_seeded_runs_repeat(caches, tmp_path):
    losses = [{"name": "depth_l1", "weight": 1.0}]
    states = []
    for name in ("a", "b"):
        path = write_experiment(tmp_path / f"{name}.yaml", **experiment(caches, tmp_path / name, TINY_STUDENT,
                                                                         losses, epochs=2))
        proc = cli("train", "--config", str(path), "--no-progress", "--set", "data.val=null")
        assert proc.returncode == 0, proc.stderr
        states.append(load_checkpoint(tmp_path / name / "last.pt")["state_dict"])
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
