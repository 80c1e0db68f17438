"""bf16 asked for on a CPU without native bf16 (AVX512-BF16 / AMX) runs emulated, ~8x slower than fp32 (measured on
the 2-core AMD EPYC: a low-data X-KD + D-KD run at 5.6 s per image instead of 0.45 s): ``xdrcdepth train`` says
so in one warning line before the first step, and only then. The CPU's flags are set per test (this machine
may have them or not)."""

import pytest
import torch

from train_rig import TINY_STUDENT, build_tiny_caches, experiment, write_experiment
from xdrcdepth_core.cli import main
from xdrcdepth_core.train import precision

WARNING = "xdrcdepth train: warning: precision bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated"


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    return build_tiny_caches(tmp_path_factory.mktemp("tiny_caches"))


@pytest.mark.parametrize("native", [False, True])
def test_which_precisions_are_emulated(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert precision.emulated_bf16("bf16", cpu) is (not native)
    assert not any(precision.emulated_bf16(name, cpu) for name in ("fp32", "fp16"))
    assert not precision.emulated_bf16("bf16", cuda)
    # auto never picks what the CPU would emulate
    assert precision.emulated_bf16(precision.resolve_precision("auto", cpu), cpu) is False


@pytest.mark.parametrize("native, asked, warned", [(False, "bf16", True), (True, "bf16", False),
                                                   (False, "fp32", False), (False, "auto", False)])
def test_train_warns_once_when_bf16_would_be_emulated(caches, tmp_path, monkeypatch, capsys, native, asked, warned):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cfg = experiment(caches, tmp_path / "run", TINY_STUDENT, [{"name": "depth_l1"}], precision=asked)
    cfg["log"]["tensorboard"] = False
    assert main(["train", "--config", str(write_experiment(tmp_path / "run.yaml", **cfg)), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count(WARNING) == (1 if warned else 0), err
