"""Training survives a real SIGKILL (resumes, loses at most the epoch in progress, ends where an
uninterrupted run ends) and runs as 2 DDP processes (torchrun, gloo on CPU)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from train_rig import TINY_STUDENT, build_tiny_caches, cli, experiment, write_experiment
from xdrcdepth_core.checkpoint import load_checkpoint

LOSSES = [{"name": "depth_l1", "weight": 1.0}, {"name": "smoothness", "weight": 0.01}]


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    return build_tiny_caches(tmp_path_factory.mktemp("tiny_caches"))


def _epochs_done(run_dir) -> int:
    try:
        return len(json.loads((run_dir / "history.json").read_text()))
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(caches, tmp_path):
    epochs = 4
    reference = write_experiment(tmp_path / "ref.yaml", **experiment(caches, tmp_path / "ref", TINY_STUDENT, LOSSES,
                                                                     epochs=epochs))
    killed = write_experiment(tmp_path / "killed.yaml", **experiment(caches, tmp_path / "killed", TINY_STUDENT,
                                                                     LOSSES, epochs=epochs))
    proc = cli("train", "--config", str(reference), "--no-progress")
    assert proc.returncode == 0, proc.stderr

    run_dir = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", str(killed),
                              "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _epochs_done(run_dir) < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done = load_checkpoint(run_dir / "last.pt")["training_state"]["epoch"]
    assert 2 <= done < epochs, f"the kill came after epoch {done} of {epochs}: nothing left to resume"

    # Without --resume an existing run is not overwritten; with it, training continues at epoch done + 1.
    again = cli("train", "--config", str(killed), "--no-progress")
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = cli("train", "--config", str(killed), "--no-progress", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    # the run's time covers the epochs of both processes, not only the resumed one's
    summary = json.loads((run_dir / "summary.json").read_text())
    assert all(h["seconds"] >= h["train_seconds"] > 0 for h in history)
    assert summary["seconds"] == pytest.approx(sum(h["seconds"] for h in history), abs=0.06)
    assert summary["seconds"] > sum(h["seconds"] for h in history[done:])

    ref_state = load_checkpoint(tmp_path / "ref" / "last.pt")
    new_state = load_checkpoint(run_dir / "last.pt")
    for key, value in ref_state["state_dict"].items():
        torch.testing.assert_close(new_state["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    ref_history = json.loads((tmp_path / "ref" / "history.json").read_text())
    assert [h["train"]["total"] for h in history] == pytest.approx([h["train"]["total"] for h in ref_history],
                                                                    rel=1e-5)


@pytest.mark.slow
def test_ddp_two_processes_gloo_stopped_by_ctrl_c_then_resumed(caches, tmp_path):
    """2 DDP processes train; Ctrl-C in a terminal (SIGINT to the whole process group) stops both with one
    'interrupted' line (each process printed it), and ``--resume`` under torchrun trains the next epoch."""
    from test_bag_recording_safety import wait_for

    run_dir = tmp_path / "ddp"
    path = write_experiment(tmp_path / "ddp.yaml", **experiment(caches, run_dir, TINY_STUDENT, LOSSES, epochs=1000))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "xdrcdepth_core.cli", "train", "--config", str(path), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    try:
        wait_for(lambda: _epochs_done(run_dir) >= 1, 240, "the first DDP epoch", first)
    finally:
        os.killpg(first.pid, signal.SIGINT)
    stdout, stderr = first.communicate(timeout=120)
    assert stderr.count("xdrcdepth train: interrupted; resume with --resume") == 1, stdout[-3000:] + stderr[-3000:]
    done = load_checkpoint(run_dir / "last.pt")["training_state"]["epoch"]

    proc = subprocess.run([*command, "--resume", "--set", f"optim.epochs={done + 1}"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "on cpu x2" in proc.stdout
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["training_state"]["epoch"] == done + 1
    # 4 training samples, 2 processes, batch 2 per process: one optimiser step per epoch.
    assert ckpt["training_state"]["global_step"] == done + 1
    init = build_initial(TINY_STUDENT)
    changed = [k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and not torch.equal(v, init[k])]
    assert changed, "DDP training did not change any weight"


def build_initial(model_cfg):
    from xdrcdepth_core.models import build_model

    torch.manual_seed(0)
    cfg = dict(model_cfg)
    return build_model(cfg.pop("name"), **cfg).state_dict()


@pytest.mark.slow
def test_ddp_loss_adapters_follow_every_process_gradient(caches, tmp_path):
    """Loss adapters (lircdepth_pixel's 1x1 convs) train with the student but outside DDP; their gradients are
    averaged over the processes as DDP averages the student's. AdamW's first step moves a weight by lr in the
    direction of its gradient, so after one DDP step, rank 0 on sample A and rank 1 on sample B, an adapter
    weight that one process alone moves alike on A and on B moves so, and some that they move apart move as
    on B (without the averaging, rank 0's adapters, the ones saved, are exactly those of A alone)."""
    import numpy as np
    from torch.utils.data import DistributedSampler

    from xdrcdepth_core.checkpoint import save_checkpoint
    from xdrcdepth_core.models import build_model

    files = sorted(caches["train"].glob("*.npz"))[:2]
    teacher = tmp_path / "teacher.pt"
    torch.manual_seed(1)
    save_checkpoint(teacher, build_model(**TINY_STUDENT), (64, 128), tuple(np.load(files[0])["radar_channels"]))
    order = []                                    # the sample each rank trains on (as the trainer's sampler deals)
    for rank in (0, 1):
        sampler = DistributedSampler(range(2), 2, rank, shuffle=True, seed=0)
        sampler.set_epoch(0)
        order.append(files[list(sampler)[0]])
    adapters = {}
    for name, picked in (("A", [order[0]]), ("B", [order[1]]), ("ddp", files)):
        data = tmp_path / f"data_{name}"
        data.mkdir()
        for f in picked:
            (data / f.name).write_bytes(f.read_bytes())
        config = experiment({"train": data, "val": caches["val"]}, tmp_path / name, TINY_STUDENT,
                            [{"name": "depth_l1"}, {"name": "lircdepth_pixel"}],
                            teacher={"checkpoint": str(teacher), "cache": None},
                            log={"tensorboard": False, "images": 0})
        config["data"].update(augment={"hflip": 0.0, "color": 0.0}, limit_val=1)
        config["optim"]["batch_size"] = 1
        path = write_experiment(tmp_path / f"{name}.yaml", **config)
        command = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if name == "ddp" else []
        proc = subprocess.run([sys.executable, *command, "-m", "xdrcdepth_core.cli", "train", "--config", str(path),
                               "--no-progress"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        state = load_checkpoint(tmp_path / name / "last.pt")["training_state"]
        assert state["global_step"] == 1
        adapters[name] = {k: v for k, v in state["loss_modules"].items() if "adapters" in k and v.is_floating_point()}
    assert adapters["ddp"] and set(adapters["ddp"]) == set(adapters["A"]) == set(adapters["B"])
    tolerance = 0.05 * 1e-3                                             # 5 % of the learning rate
    followed_b = 0
    for key, ddp in adapters["ddp"].items():
        like_a = (ddp - adapters["A"][key]).abs() <= tolerance
        like_b = (ddp - adapters["B"][key]).abs() <= tolerance
        agree = (adapters["A"][key] - adapters["B"][key]).abs() <= tolerance   # both gradients of one sign
        assert like_a[agree].float().mean() > 0.99, key
        followed_b += int((like_b & ~agree).sum())
    assert followed_b > 0, "every adapter weight moved as rank 0's sample alone moves it: gradients not averaged"
