"""``xdrcdepth teacher-cache --out``: a folder of other files is refused, never taken for cached teacher outputs."""

import numpy as np
import pytest
import torch

from xdrcdepth_core.checkpoint import save_checkpoint
from xdrcdepth_core.cli import main
from xdrcdepth_core.models import build_model

CHANNELS = ("depth", "rcs", "vx_comp", "vy_comp")


@pytest.fixture()
def teacher_and_data(tmp_path):
    """A tiny checkpoint at 32 x 64 and a one-frame cache ``t0.npz`` of that size."""
    torch.manual_seed(0)
    model = build_model("xdrcdepth", width_mult=0.25, radar_width_mult=0.25, decoder_channels=(32, 16, 16, 8, 8),
                        daspp_growth=(8, 8, 8, 8))
    save_checkpoint(tmp_path / "teacher.pt", model, (32, 64), CHANNELS)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "t0.npz", image=np.zeros((32, 64, 3), np.uint8), radar=np.zeros((4, 32, 64), np.float32),
             radar_channels=np.array(CHANNELS), depth_gt=np.zeros((32, 64), np.float32), K=np.eye(3),
             token=np.array("t0"))
    return tmp_path / "teacher.pt", data


def _teacher_cache(checkpoint, data, out):
    return main(["teacher-cache", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
                 "--device", "cpu", "--no-progress"])


def test_a_folder_of_other_files_is_refused_and_left_alone(teacher_and_data, tmp_path, capsys):
    """Audit 2026-12-06: a ``--out`` holding a user's ``t0.npz`` (or ``--out`` = ``--data``) reported "0 computed,
    1 already cached", exit 0: the user's file (the training sample itself) was taken as the teacher's outputs
    and ``meta.json`` written beside it, so training later failed on it, or used it."""
    checkpoint, data = teacher_and_data
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "t0.npz").write_bytes(b"my own file")
    for out in (mine, data):
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        assert _teacher_cache(checkpoint, data, out) == 2
        assert capsys.readouterr().err == (f"xdrcdepth teacher-cache: {out} is not empty and is no teacher cache "
                                           "(no meta.json); choose a new or empty --out\n")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_new_or_empty_folder_and_a_rerun_still_work(teacher_and_data, tmp_path, capsys):
    checkpoint, data = teacher_and_data
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty"):
        assert _teacher_cache(checkpoint, data, out) == 0
        assert sorted(p.name for p in out.iterdir()) == ["meta.json", "t0.npz"]
        assert "(1 computed, 0 already cached)" in capsys.readouterr().out
    assert _teacher_cache(checkpoint, data, tmp_path / "new") == 0                # resumed: meta.json is there
    assert "(0 computed, 1 already cached)" in capsys.readouterr().out
