"""Audit of the train-on-your-own-data workflow (2026-12-06). Resume: a run killed between the two checkpoints
of an epoch resumes to the uninterrupted run's ``best.pt``; temporaries of a killed run are removed by the next
one; a resume that changes the optimiser, seed, input size or augmentation is refused. Disk: a checkpoint that
does not fit is one line. Inputs refused before the run folder is made: a validation cache without the
ground truth ``eval.gt`` names or of other radar channels, a model or teacher of other radar channels (also
for ``teacher-cache``); a validation cache without any ground-truth pixel still gets a ``best.pt``. Ctrl-C
before the first epoch ends does not point at a missing checkpoint; a read-only run (or teacher-cache) folder
is named by the file that could not be written, not by its hidden temporary."""

import json
import os
import platform
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from fs_faults import file_size_limit
from train_rig import TINY_STUDENT, build_tiny_caches, cli, experiment, write_experiment
from xdrcdepth_core.checkpoint import load_checkpoint

LOSSES = [{"name": "depth_l1", "weight": 1.0}]

#: ``xdrcdepth train`` whose 4th checkpoint write is cut by a real SIGKILL while its temporary is half written:
#: in a run whose two epochs both improve, that is the second checkpoint of epoch 2 (best.pt and last.pt).
KILLED_AT_THE_FOURTH_SAVE = """
import os, signal, sys
import xdrcdepth_core.train.trainer as trainer
from xdrcdepth_core.atomic import atomic_writer
real, calls = trainer.save_checkpoint, []
def save(path, *args, **kwargs):
    calls.append(path)
    if len(calls) == 4:
        with atomic_writer(path) as f:
            f.write(b"PK half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    real(path, *args, **kwargs)
trainer.save_checkpoint = save
from xdrcdepth_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    return build_tiny_caches(tmp_path_factory.mktemp("tiny_caches"))


def _config(caches, tmp_path, name, epochs=2, **extra):
    cfg = experiment(caches, tmp_path / name, TINY_STUDENT, LOSSES, epochs=epochs, **extra)
    cfg["log"]["tensorboard"] = False
    return write_experiment(tmp_path / f"{name}.yaml", **cfg)


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.mark.slow
def test_a_kill_between_the_checkpoints_of_an_epoch_resumes_to_the_uninterrupted_best(caches, tmp_path):
    reference = cli("train", "--config", str(_config(caches, tmp_path, "ref")), "--no-progress")
    assert reference.returncode == 0, reference.stderr
    history = json.loads((tmp_path / "ref" / "history.json").read_text())
    assert history[1]["val_mae"] < history[0]["val_mae"], "epoch 2 must improve for the kill point to exist"
    assert load_checkpoint(tmp_path / "ref" / "best.pt")["metrics"]["best_epoch"] == 2
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    assert {h["machine"] for h in history} == {f"{platform.machine()}, {cpu}"}    # where each epoch trained

    path = _config(caches, tmp_path, "killed")
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_THE_FOURTH_SAVE, "train", "--config", str(path),
                             "--no-progress"], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / "killed"
    assert len(_temporaries(run)) == 1          # the checkpoint being written when the kill came

    resumed = cli("train", "--config", str(path), "--no-progress", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "best val MAE" in resumed.stdout and "at epoch 2" in resumed.stdout
    for name in ("best.pt", "last.pt"):
        expected = load_checkpoint(tmp_path / "ref" / name)
        got = load_checkpoint(run / name)
        assert got["metrics"]["best_epoch"] == expected["metrics"]["best_epoch"] == 2, name
        for key, value in expected["state_dict"].items():
            torch.testing.assert_close(got["state_dict"][key], value, rtol=0, atol=0, msg=f"{name} {key}")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_a_killed_run_are_removed_and_nothing_else(caches, tmp_path):
    """Ours: ``.<name>.<pid>.<8 random>.tmp`` of the files the trainer writes, whose process is gone (as
    ``prepare`` cleans its folder). A live process's temporary and any other file stay."""
    from xdrcdepth_core.cli import main

    run = tmp_path / "run"
    run.mkdir()
    dead, live = _dead_pid(), os.getpid()
    stale = [f".last.pt.{dead}.abcd1234.tmp", f".best.pt.{dead}.x_y0z9ab.tmp", f".history.json.{dead}.q1w2e3r4.tmp"]
    kept = [f".last.pt.{live}.abcd1234.tmp", f".data.npz.{dead}.abcd1234.tmp", "notes.txt", ".last.pt.tmp"]
    for name in stale + kept:
        (run / name).write_bytes(b"x")
    path = _config(caches, tmp_path, "run", epochs=1)
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    assert sorted(p.name for p in run.iterdir() if p.name in stale + kept) == sorted(kept)
    assert load_checkpoint(run / "last.pt")["training_state"]["epoch"] == 1


@pytest.mark.slow
def test_a_checkpoint_larger_than_the_disk_allows_is_one_line(caches, tmp_path):
    """torch.save reports a failed write as its zip writer's RuntimeError ("unexpected pos"); the OSError under
    it is what the user needs: one line naming the checkpoint, exit code 1, no temporary left."""
    path = _config(caches, tmp_path, "small_disk")
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", str(path),
                           "--no-progress"], capture_output=True, text=True, timeout=300,
                          preexec_fn=file_size_limit(256 * 1024), env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    run = tmp_path / "small_disk"
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [f"xdrcdepth train: cannot write {run / 'best.pt'}: file too large for this "
                                        "file system or process limit [Errno 27]"]
    assert not (run / "best.pt").exists() and not (run / "last.pt").exists() and _temporaries(run) == []


def test_a_validation_cache_without_the_ground_truth_eval_gt_names_is_refused_first(caches, tmp_path, capsys):
    """Before: a KeyError traceback after the first epoch's training."""
    from xdrcdepth_core.cli import main

    # the validation cache was prepared with one LiDAR sweep: it has depth_gt, not depth_gt_single
    path = _config(caches, tmp_path, "no_single", eval={"gt": "single"})
    first = sorted(caches["val"].glob("*.npz"))[0]
    assert main(["train", "--config", str(path), "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"xdrcdepth train: {first}: no depth_gt_single for eval.gt "
                                                    f"'single' (validation cache data.val {caches['val']})"]
    assert not (tmp_path / "no_single").exists()


def test_a_validation_cache_without_ground_truth_pixels_still_gives_best_pt(caches, tmp_path, capsys):
    """Recordings without LiDAR give all-zero depth_gt: no epoch can be ranked, so, as without validation, the
    latest epoch is the best (our choice) -- before, no best.pt was written though the summary named it."""
    from xdrcdepth_core.cli import main

    val = tmp_path / "val_no_gt"
    val.mkdir()
    for source in sorted(caches["val"].glob("*.npz"))[:2]:
        with np.load(source, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays["depth_gt"] = np.zeros_like(arrays["depth_gt"])
        np.savez(val / source.name, **arrays)
    cfg = experiment(caches, tmp_path / "run", TINY_STUDENT, LOSSES, epochs=2)
    cfg["data"]["val"] = str(val)
    cfg["log"]["tensorboard"] = False
    path = write_experiment(tmp_path / "run.yaml", **cfg)
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    assert "2 epochs, no validation" in capsys.readouterr().out
    best, last = load_checkpoint(tmp_path / "run" / "best.pt"), load_checkpoint(tmp_path / "run" / "last.pt")
    assert best["metrics"]["best_epoch"] == 2 and best["metrics"]["val_mae_mm"] is None
    for key, value in last["state_dict"].items():
        assert torch.equal(best["state_dict"][key], value), key


def test_a_resume_that_changes_the_optimiser_or_the_seed_is_refused(caches, tmp_path, capsys):
    """The optimiser state restores lr and weight decay over the config's: a resume with another ``optim.lr``
    trained on with the old one while config.yaml and every later checkpoint recorded the new one. Refused
    now, as a changed model or loss is (our choice: all of ``optim`` but ``epochs``, ``seed``, input size and
    augmentation); nothing of the run is touched."""
    from xdrcdepth_core.cli import main

    path = _config(caches, tmp_path, "run", epochs=1)
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    run = tmp_path / "run"
    before = {name: (run / name).read_bytes() for name in ("last.pt", "best.pt", "config.yaml", "history.json")}
    capsys.readouterr()
    for overrides, named in ((["optim.lr=0.5"], "optim.lr differs from the run's (optim.lr: 0.001)"),
                             (["seed=7", "optim.batch_size=1"],
                              "seed and optim.batch_size differ from the run's (seed: 0; optim.batch_size: 2)"),
                             (["data.input_hw=[32, 64]"], "data.input_hw differs from the run's (data.input_hw: "
                                                          "[64, 128])")):
        args = ["train", "--config", str(path), "--no-progress", "--resume", "--set", "optim.epochs=2"]
        assert main(args + [a for o in overrides for a in ("--set", o)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"xdrcdepth train: cannot resume from {run / 'last.pt'}: the config's {named}; resume with the run's "
            "config.yaml, or choose another out folder"]
        assert {name: (run / name).read_bytes() for name in before} == before
    # epochs alone may change: the run is extended
    assert main(["train", "--config", str(path), "--no-progress", "--resume", "--set", "optim.epochs=2"]) == 0
    assert load_checkpoint(run / "last.pt")["training_state"]["epoch"] == 2


def test_a_validation_cache_of_other_radar_channels_is_refused_first(caches, tmp_path, capsys):
    """Before: a full epoch trained, then the error, saying --resume would continue (no epoch had finished)."""
    from xdrcdepth_core.cli import main

    val = tmp_path / "val_2ch"
    val.mkdir()
    source = sorted(caches["val"].glob("*.npz"))[0]
    with np.load(source, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["radar"], arrays["radar_channels"] = arrays["radar"][:2], np.array(["depth", "rcs"])
    np.savez(val / source.name, **arrays)
    cfg = experiment(caches, tmp_path / "run", TINY_STUDENT, LOSSES, epochs=1)
    cfg["data"]["val"] = str(val)
    path = write_experiment(tmp_path / "run.yaml", **cfg)
    assert main(["train", "--config", str(path), "--no-progress"]) == 2
    train_first = sorted(caches["train"].glob("*.npz"))[0]
    assert capsys.readouterr().err.splitlines() == [
        f"xdrcdepth train: {val / source.name}: radar channels ['depth', 'rcs'] differ from the training cache's "
        f"['depth', 'rcs', 'vx_comp', 'vy_comp'] ({train_first}); prepare both with the same --radar-channels"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_ends_does_not_point_at_a_missing_checkpoint(caches, tmp_path):
    """Before: "state of the last finished epoch is in <out>/last.pt" while no last.pt existed. The run blocks
    on a FIFO in place of a training file (read for the median training depth, before epoch 1) and gets SIGINT
    there; the child is killed on every failure path."""
    import shutil

    from fs_faults import blocking_input, sigint_default

    train = tmp_path / "train"
    shutil.copytree(caches["train"], train)
    cfg = experiment(caches, tmp_path / "run", TINY_STUDENT, LOSSES, epochs=1)
    cfg["data"]["train"] = str(train)
    path = write_experiment(tmp_path / "run.yaml", **cfg)
    fifo = blocking_input(sorted(train.glob("*.npz"))[-1])
    proc = subprocess.Popen([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", str(path),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)
    try:
        fifo.wait_reader(proc)
        fifo.interrupt(proc)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        fifo.restore()
    assert proc.returncode == 130, err
    assert err.splitlines() == ["xdrcdepth train: interrupted; resume with --resume (no epoch had finished yet)"]
    assert not (tmp_path / "run" / "last.pt").exists()


def test_radar_channels_the_networks_do_not_take_are_refused_before_the_run(caches, tmp_path, capsys):
    """A model whose ``radar_channels`` count differs from the cache's failed in the first step, after the run
    folder was made ("once it is replaced, --resume continues" with nothing to resume); a teacher trained on
    other channel names of the same count (vx/vy for vx_comp/vy_comp) gave wrong distillation targets silently."""
    from xdrcdepth_core.checkpoint import save_checkpoint
    from xdrcdepth_core.cli import main
    from xdrcdepth_core.models import build_model
    from train_rig import INPUT_HW, TINY_TEACHER

    first = sorted(caches["train"].glob("*.npz"))[0]
    channels = ["depth", "rcs", "vx_comp", "vy_comp"]
    two = write_experiment(tmp_path / "two.yaml", **experiment(
        caches, tmp_path / "two", {**TINY_STUDENT, "radar_channels": 2}, LOSSES))
    assert main(["train", "--config", str(two), "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"xdrcdepth train: {first}: 4 radar channels {channels}, the model takes 2 (set model.radar_channels: 4, "
        "or prepare with --radar-channels)"]

    teacher = tmp_path / "teacher.pt"
    options = {k: v for k, v in TINY_TEACHER.items() if k != "name"}
    save_checkpoint(teacher, build_model(TINY_TEACHER["name"], **options), INPUT_HW, ("depth", "rcs", "vx", "vy"))
    kd = write_experiment(tmp_path / "kd.yaml", **experiment(
        caches, tmp_path / "kd", TINY_STUDENT, LOSSES + [{"name": "dkd", "weight": 1.0, "bins": 16}],
        teacher={"checkpoint": str(teacher)}))
    assert main(["train", "--config", str(kd), "--no-progress"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"xdrcdepth train: teacher {teacher} was trained on radar channels ['depth', 'rcs', 'vx', 'vy'], the "
        f"training cache has {channels} ({first})"]
    assert not (tmp_path / "two").exists() and not (tmp_path / "kd").exists()


def test_teacher_cache_refuses_a_teacher_of_other_radar_channel_names(caches, tmp_path, capsys):
    """Same count, other names (vx/vy against vx_comp/vy_comp): the teacher ran on inputs it was not trained on
    and the cache of its outputs was written without a word."""
    from xdrcdepth_core.checkpoint import save_checkpoint
    from xdrcdepth_core.cli import main
    from xdrcdepth_core.models import build_model
    from train_rig import INPUT_HW, TINY_TEACHER

    teacher = tmp_path / "teacher.pt"
    options = {k: v for k, v in TINY_TEACHER.items() if k != "name"}
    save_checkpoint(teacher, build_model(TINY_TEACHER["name"], **options), INPUT_HW, ("depth", "rcs", "vx", "vy"))
    out = tmp_path / "teacher_cache"
    assert main(["teacher-cache", "--checkpoint", str(teacher), "--data", str(caches["train"]), "--out", str(out),
                 "--layers", "decoder:4", "--no-progress"]) == 2
    first = sorted(caches["train"].glob("*.npz"))[0]
    assert capsys.readouterr().err.splitlines() == [
        f"xdrcdepth teacher-cache: teacher {teacher} was trained on radar channels ['depth', 'rcs', 'vx', 'vy'], "
        f"{first} has ['depth', 'rcs', 'vx_comp', 'vy_comp']"]
    assert not out.exists()


def test_a_read_only_run_folder_names_the_file_not_its_temporary(caches, tmp_path, capsys):
    """A resume on read-only media (or a read-only folder) failed naming the hidden temporary of the atomic
    write (``.config.yaml.<pid>.<random>.tmp``), a file that never exists for the user to look at."""
    from fs_faults import readonly_dir
    from xdrcdepth_core.cli import main

    path = _config(caches, tmp_path, "run", epochs=1)
    cause = "read-only file system [Errno 30]" if os.geteuid() == 0 else "permission denied [Errno 13]"
    with readonly_dir(tmp_path / "run") as run:
        assert main(["train", "--config", str(path), "--no-progress"]) == 1
        assert capsys.readouterr().err.splitlines() == [f"xdrcdepth train: cannot write {run / 'config.yaml'}: {cause}"]


def test_teacher_cache_into_a_read_only_folder_is_named_before_any_work(caches, tmp_path, capsys):
    """A read-only --out: one line naming the folder, exit 1, found before the teacher runs (it was found at its
    first file, meta.json; cli_args.output_folder_problem now probes the folder first)."""
    from fs_faults import readonly_dir
    from xdrcdepth_core.checkpoint import save_checkpoint
    from xdrcdepth_core.cli import main
    from xdrcdepth_core.models import build_model
    from train_rig import INPUT_HW, TINY_TEACHER

    teacher = tmp_path / "teacher.pt"
    options = {k: v for k, v in TINY_TEACHER.items() if k != "name"}
    save_checkpoint(teacher, build_model(TINY_TEACHER["name"], **options), INPUT_HW,
                    ("depth", "rcs", "vx_comp", "vy_comp"))
    cause = "read-only file system [Errno 30]" if os.geteuid() == 0 else "permission denied [Errno 13]"
    with readonly_dir(tmp_path / "teacher_cache") as out:
        assert main(["teacher-cache", "--checkpoint", str(teacher), "--data", str(caches["train"]), "--out", str(out),
                     "--layers", "decoder:4", "--no-progress"]) == 1
        assert capsys.readouterr().err.splitlines() == [f"xdrcdepth teacher-cache: cannot write {out}: {cause}"]
        assert list(out.iterdir()) == []


@pytest.mark.slow
def test_teacher_cache_on_a_full_disk_is_one_line_naming_the_map_file(caches, tmp_path):
    """numpy's savez left its zip archive open when a write failed: the garbage collector then printed 'Exception
    ignored ... ValueError: seek of closed file' after the error line, which itself said 'cannot write output'."""
    from xdrcdepth_core.checkpoint import save_checkpoint
    from xdrcdepth_core.models import build_model
    from train_rig import INPUT_HW, TINY_TEACHER

    teacher = tmp_path / "teacher.pt"
    options = {k: v for k, v in TINY_TEACHER.items() if k != "name"}
    save_checkpoint(teacher, build_model(TINY_TEACHER["name"], **options), INPUT_HW,
                    ("depth", "rcs", "vx_comp", "vy_comp"))
    out = tmp_path / "teacher_cache"
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "teacher-cache", "--checkpoint", str(teacher),
                           "--data", str(caches["train"]), "--out", str(out), "--layers", "decoder:4",
                           "--no-progress"], capture_output=True, text=True, timeout=300,
                          preexec_fn=file_size_limit(8 * 1024), env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    first = sorted(caches["train"].glob("*.npz"))[0].name
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [f"xdrcdepth teacher-cache: cannot write {out / first}: file too large for this "
                                        "file system or process limit [Errno 27]"]
    assert sorted(p.name for p in out.iterdir()) == ["meta.json"]      # no partial map file, no temporary
