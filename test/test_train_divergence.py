"""A step whose loss is finite but whose gradient is not (what one bad bf16 step of the low-data study did: every
weight became NaN and the remaining 29 epochs trained nothing) is skipped with the weights untouched, as a
non-finite loss is; DIVERGED_STEPS skipped steps in a row end the run: one line, exit 1, last.pt keeping the
last finished epoch."""

import argparse

import pytest
import torch

from train_rig import TINY_STUDENT, build_tiny_caches, experiment, write_experiment
from xdrcdepth_core.distill.base import DistillLoss
from xdrcdepth_core.distill.registry import LOSSES
from xdrcdepth_core.train import command
from xdrcdepth_core.train import trainer as trainer_module
from xdrcdepth_core.train.config import resolve_config
from xdrcdepth_core.train.trainer import Trainer


class NanGradient(DistillLoss):
    """0 in value, NaN in gradient on the calls listed in ``bad_calls`` (1-based; None: every call):
    d sqrt(u^2) / du = u / |u| is 0 / 0 at u = 0. Other calls: 0 with a zero gradient. Registered for
    these tests only (the registry's list of losses is checked elsewhere)."""

    name = "test_nan_gradient"

    def __init__(self, bad_calls: list | None = None):
        super().__init__()
        self.bad_calls, self.calls = bad_calls, 0

    def forward(self, student_out, teacher_out, batch):
        self.calls += 1
        u = student_out["depth"] - student_out["depth"].detach()
        if self.bad_calls is None or self.calls in self.bad_calls:
            return torch.sqrt(u ** 2).mean()
        return (u * 0).mean()


@pytest.fixture(autouse=True)
def nan_gradient_loss(monkeypatch):
    monkeypatch.setitem(LOSSES, NanGradient.name, NanGradient)


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    return build_tiny_caches(tmp_path_factory.mktemp("tiny_caches"))   # 4 samples: 2 steps an epoch at batch 2


def _config(caches, out, epochs, bad_calls=None):
    return write_experiment(out.parent / f"{out.name}.yaml", **experiment(
        caches, out, TINY_STUDENT, [{"name": "depth_l1"}, {"name": "test_nan_gradient", "bad_calls": bad_calls}],
        epochs=epochs, log={"tensorboard": False, "images": 0}))


def test_a_step_with_a_finite_loss_and_a_nan_gradient_is_skipped_and_leaves_the_weights(caches, tmp_path):
    trainer = Trainer(resolve_config(_config(caches, tmp_path / "run", epochs=1)), progress=False)
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    summary = trainer.fit()
    assert summary["skipped_steps"] == 2 and trainer.global_step == 0
    after = dict(trainer.model.named_parameters())     # (batch-norm statistics follow the forward passes)
    assert all(torch.equal(before[k], after[k]) for k in before)      # no NaN, no AdamW decay either


def test_a_good_step_between_bad_ones_resets_the_count(caches, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "DIVERGED_STEPS", 3)
    trainer = Trainer(resolve_config(_config(caches, tmp_path / "run", epochs=3, bad_calls=[1, 2, 4, 5])),
                      progress=False)
    summary = trainer.fit()                    # 6 steps: bad, bad, good, bad, bad, good
    assert summary["skipped_steps"] == 4 and trainer.global_step == 2
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values() if v.is_floating_point())


def test_steps_skipped_in_a_row_end_the_run_in_one_line(caches, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trainer_module, "DIVERGED_STEPS", 3)
    out = tmp_path / "run"
    args = argparse.Namespace(config=_config(caches, out, epochs=3, bad_calls=[3, 4, 5]), overrides=[],
                              resume=False, no_progress=True)
    assert command.run(args) == 1    # epoch 1 fine, epoch 2 skips both steps, epoch 3's first is the 3rd in a row
    err = capsys.readouterr().err
    assert err == (f"xdrcdepth train: training diverged: 3 steps in a row had a non-finite loss or gradient; "
                   f"{out / 'last.pt'} holds the last finished epoch: --resume with --set precision=fp32, or "
                   "train anew with a lower optim.lr\n")
    assert torch.load(out / "last.pt", weights_only=True)["training_state"]["epoch"] == 2


def test_a_step_that_makes_weights_non_finite_ends_the_run_in_one_line(caches, tmp_path, capsys):
    """A black-box run: optim.lr 1e30 gave finite losses and gradients but all-NaN weights after the first update;
    the run went on, exit 0, and saved them as best.pt (validation clamps NaN predictions, so the MAE was finite)."""
    out = tmp_path / "run"
    config = write_experiment(tmp_path / "run.yaml", **experiment(
        caches, out, TINY_STUDENT, [{"name": "depth_l1"}], epochs=2, log={"tensorboard": False, "images": 0},
        optim={"epochs": 2, "batch_size": 2, "lr": 1.0e30}))
    args = argparse.Namespace(config=config, overrides=[], resume=False, no_progress=True)
    assert command.run(args) == 1
    assert capsys.readouterr().err == (
        "xdrcdepth train: training diverged: step 1 (finite loss and gradient) made weights non-finite (optim.lr 1e+30 "
        "too high?); no epoch had finished: train anew with a lower optim.lr or precision fp32\n")
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()
