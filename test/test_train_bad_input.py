"""Bad input to the training-side commands (train, teacher-cache, build-data, ablate): one line on stderr that
names the file (and the key), exit code 2 (1 for a write that fails), no traceback; Ctrl-C anywhere is one line
and 130. Everything runs in this process on hand-made 4 x 6 caches: no rendering and at most one training step."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from train_rig import INPUT_HW, TINY_STUDENT
from xdrcdepth_core import cli
from xdrcdepth_core.checkpoint import save_checkpoint
from xdrcdepth_core.cli import main
from xdrcdepth_core.data.prepare import write_sample
from xdrcdepth_core.models import build_model
from xdrcdepth_core.train.teacher_cache import TeacherCache

CHANNELS = ("depth", "rcs", "vx_comp", "vy_comp")
REPO_CONFIG = cli.__file__.rsplit("/", 2)[0] + "/config"


def _sample(token: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    depth = np.zeros((4, 6), np.float32)
    depth[2, 1], depth[3, 4] = 7.0, 12.0
    return {"image": rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), "radar": np.zeros((4, 4, 6), np.float32),
            "depth_gt": depth, "K": np.array([[5.0, 0, 3.0], [0, 5.0, 2.0], [0, 0, 1]]), "token": token}


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "cache"
    for i, token in enumerate(["a", "b"]):
        write_sample(folder / f"{token}.npz", _sample(token, i), CHANNELS, json.dumps({}))
    return folder


def _experiment(tmp_path, cache, **changes) -> str:
    cfg = {"name": "bad", "out": str(tmp_path / "run"), "precision": "fp32", "model": dict(TINY_STUDENT),
           "data": {"train": str(cache), "val": None, "input_hw": INPUT_HW, "augment": {}},
           "optim": {"epochs": 1, "batch_size": 2}, "log": {"tensorboard": False}}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _one_line(capsys, code, expected_code=2) -> str:
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("changes, message", [
    ({"model__name": "nope"}, "model: unknown model 'nope'; registered models: cafnet"),
    ({"model__bogus": 1}, "model: bad config for model 'xdrcdepth'"),
    ({"losses": [{"name": "depth_l1", "bogus": 1}]}, "losses: bad options for loss 'depth_l1'"),
])
def test_models_and_losses_the_registries_refuse_name_the_config(tmp_path, cache, capsys, changes, message):
    config = _experiment(tmp_path, cache, **changes)
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]))
    assert err.startswith(f"xdrcdepth train: {config}: {message}")


@pytest.mark.parametrize("changes, message", [
    ({"model__width_mult": 1000}, "model: xdrcdepth with "),
    ({"data__input_hw": [65536, 65536]}, "data.input_hw [65536, 65536] is 4294967296 pixels, more than 16777216 "
                                         "(4096 x 4096, the largest image the node and the tools take)"),
])
def test_a_config_asking_for_more_memory_than_any_machine_has_is_one_line(tmp_path, cache, capsys, changes, message):
    """Both passed the checks and took all 24 GB of the machine (killed by the kernel)."""
    config = _experiment(tmp_path, cache, **changes)
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]))
    assert err.startswith(f"xdrcdepth train: {config}: {message}"), err
    assert "data__input_hw" in changes or re.search(r" has \d+ M parameters, more than 500 M$", err.strip()), err
    assert not (tmp_path / "run").exists()


def test_a_missing_validation_folder_is_named_before_training(tmp_path, cache, capsys):
    config = _experiment(tmp_path, cache, data__val=str(tmp_path / "nowhere"))
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]))
    assert err == f"xdrcdepth train: data.val: cache folder not found: {tmp_path / 'nowhere'}\n"
    assert not (tmp_path / "run").exists()


def test_resuming_with_another_model_names_the_checkpoint(tmp_path, cache, capsys):
    wider = build_model("xdrcdepth", **{**{k: v for k, v in TINY_STUDENT.items() if k != "name"}, "width_mult": 0.5})
    save_checkpoint(tmp_path / "run" / "last.pt", wider, INPUT_HW, CHANNELS, training_state={"epoch": 1})
    config = _experiment(tmp_path, cache)
    err = _one_line(capsys, main(["train", "--config", config, "--resume", "--no-progress"]))
    assert f"cannot resume from {tmp_path / 'run' / 'last.pt'}: Error(s) in loading state_dict" in err
    assert "size mismatch" in err


def test_resuming_with_other_losses_is_refused(tmp_path, cache, capsys):
    """A loss without parameters changed since the run started would load and train on silently; epochs may
    change (a run is extended that way)."""
    assert main(["train", "--config", _experiment(tmp_path, cache), "--no-progress"]) == 0
    capsys.readouterr()
    changed = _experiment(tmp_path, cache, losses=[{"name": "depth_l1", "weight": 0.5}])
    err = _one_line(capsys, main(["train", "--config", changed, "--resume", "--no-progress"]))
    assert err == (f"xdrcdepth train: cannot resume from {tmp_path / 'run' / 'last.pt'}: the config's losses differ "
                   "from the run's (losses: [{'name': 'depth_l1', 'weight': 1.0}]); resume with the run's "
                   "config.yaml, or choose another out folder\n")
    longer = _experiment(tmp_path, cache, optim__epochs=2)
    assert main(["train", "--config", longer, "--resume", "--no-progress"]) == 0


def test_a_corrupt_training_file_found_during_the_run_is_named(tmp_path, cache, capsys, monkeypatch):
    """Read in the training process (num_workers 0) or in a DataLoader worker process, which torch re-raises
    with the worker's whole traceback as the message: the same line either way. Only the first file goes into
    the median depth read before training (the first 200 of a real cache), so b.npz is first read by the loader.
    The worker-process case runs in a child: a failed DataLoader worker stays registered with torch's SIGCHLD
    handler until the garbage collector frees its iterator, and the next child exit in this process would raise
    there (it ended the pytest-xdist worker running the next test)."""
    from xdrcdepth_core.train import trainer

    monkeypatch.setattr(trainer, "MEDIAN_SAMPLES", 1)
    (cache / "b.npz").write_bytes(b"PK\x03\x04 truncated")
    in_process = _one_line(capsys, main(["train", "--config", _experiment(tmp_path, cache), "--no-progress"]))
    assert in_process.startswith(f"xdrcdepth train: {cache / 'b.npz'}: cannot read cache file (")
    # no epoch has finished: nothing to --resume (the hint said --resume continues from the last finished epoch)
    assert in_process.endswith(" (replace it, e.g. rerun xdrcdepth prepare, which rebuilds corrupt files)\n")
    code = ("import sys\nfrom xdrcdepth_core.train import trainer\ntrainer.MEDIAN_SAMPLES = 1\n"
            "from xdrcdepth_core.cli import main\nsys.exit(main(['train', '--config', sys.argv[1], '--no-progress']))")
    proc = subprocess.run([sys.executable, "-c", code, _experiment(tmp_path, cache, data__num_workers=1)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr == in_process, proc.stderr


def test_an_out_folder_that_is_a_file_is_a_write_error(tmp_path, cache, capsys):
    (tmp_path / "run").write_text("mine")
    config = _experiment(tmp_path, cache)
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]), expected_code=1)
    assert err.startswith(f"xdrcdepth train: cannot write {tmp_path / 'run'}: something is in the way")
    assert (tmp_path / "run").read_text() == "mine"


# -- teacher caches ----------------------------------------------------------------------------------------
def _teacher_cache(folder, maps, meta=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"input_hw": INPUT_HW} if meta is None else meta)
                                      if not isinstance(meta, str) else meta)
    for name in ("a", "b"):
        np.savez(folder / f"{name}.npz", **maps)
    return folder


GOOD_MAPS = {"depth": np.ones((1, *INPUT_HW), np.float16),
             "saliency__decoder_4": np.ones((1, INPUT_HW[0] // 4, INPUT_HW[1] // 4), np.float16)}


def test_teacher_cache_maps_of_the_wrong_shape_are_named(tmp_path, cache):
    good = TeacherCache(_teacher_cache(tmp_path / "good", GOOD_MAPS)).loader_for(cache)(0)
    assert good["teacher/saliency__decoder_4"].shape == (1, 16, 32)
    folder = _teacher_cache(tmp_path / "tc", {**GOOD_MAPS, "saliency__decoder_4": np.ones((1, 64, 128), np.float16)})
    with pytest.raises(ValueError, match=f"{folder / 'a.npz'}: teacher map saliency__decoder_4 is 1 x 64 x 128 "
                                         "float16, expected 1 x 16 x 32 real numbers"):
        TeacherCache(folder).loader_for(cache)(0)


@pytest.mark.parametrize("depth, message", [
    (np.full((1, *INPUT_HW), np.nan, np.float16), "teacher map depth holds NaN or infinite values"),
    (np.full((1, *INPUT_HW), "x"), f"teacher map depth is 1 x {INPUT_HW[0]} x {INPUT_HW[1]} <U1, expected"),
])
def test_teacher_maps_that_are_no_finite_numbers_are_named(tmp_path, cache, depth, message):
    """Audit 2026-12-06: a NaN teacher depth made every KD loss NaN, so every training step was skipped as
    non-finite; a text map failed in astype naming no file."""
    folder = _teacher_cache(tmp_path / "tc", {**GOOD_MAPS, "depth": depth})
    with pytest.raises(ValueError, match=f"^{re.escape(str(folder / 'a.npz'))}: {re.escape(message)}"):
        TeacherCache(folder).loader_for(cache)(0)


def test_a_teacher_cache_file_declaring_huge_maps_is_refused_before_allocating(tmp_path, cache):
    """A 200-byte member declaring 60000 x 60000 float32 (13 GiB): np.load would allocate it first."""
    import io
    import zipfile

    folder = _teacher_cache(tmp_path / "tc", GOOD_MAPS)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (60_000, 60_000)})
    with zipfile.ZipFile(folder / "a.npz", "a") as archive:
        archive.writestr("depth_huge.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=f"{re.escape(str(folder / 'a.npz'))}: unreadable teacher cache file "
                                         r"\(its arrays declare more than 1024 MiB"):
        TeacherCache(folder).loader_for(cache)(0)


def test_unreadable_teacher_cache_files_are_named(tmp_path, cache):
    folder = _teacher_cache(tmp_path / "tc", GOOD_MAPS)
    (folder / "b.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=f"{folder / 'b.npz'}: unreadable teacher cache file"):
        TeacherCache(folder).loader_for(cache)(1)
    for meta in ("{bad", "[1]"):
        folder = _teacher_cache(tmp_path / f"meta{len(meta)}", GOOD_MAPS, meta)
        with pytest.raises(ValueError, match=str(folder / "meta.json")):
            TeacherCache(folder)
    with pytest.raises(ValueError, match="teacher outputs at 64 x 128, but training runs at 32 x 64"):
        TeacherCache(_teacher_cache(tmp_path / "hw", GOOD_MAPS)).check_input_hw((32, 64))


@pytest.fixture
def teacher(tmp_path):
    path = tmp_path / "teacher.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model(**TINY_STUDENT), INPUT_HW, CHANNELS)
    return path


@pytest.mark.parametrize("size, message", [
    (["60", "128"], "argument --input-hw: must be a multiple of 32 up to 4096, got '60'"),
    (["-64", "128"], "argument --input-hw: must be >= 1, got '-64'"),
])
def test_teacher_cache_input_size_is_checked_where_parsed(tmp_path, cache, teacher, capsys, size, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["teacher-cache", "--checkpoint", str(teacher), "--data", str(cache), "--out", str(tmp_path / "tc"),
              "--input-hw", *size])
    err = _one_line(capsys, exit_info.value.code)
    assert err.startswith(f"xdrcdepth teacher-cache: error: {message}")


def test_teacher_cache_unknown_layer_is_named_before_anything_is_written(tmp_path, cache, teacher, capsys):
    out = tmp_path / "tc"
    err = _one_line(capsys, main(["teacher-cache", "--checkpoint", str(teacher), "--data", str(cache), "--out",
                                  str(out), "--no-progress", "--layers", "nolayer:4"]))
    assert err.startswith("xdrcdepth teacher-cache: --layers nolayer:4: no such feature in xdrcdepth; it has image:2")
    assert not out.exists()      # no meta.json that would refuse the corrected rerun as "another setting"


def test_teacher_cache_bad_meta_and_out_folder(tmp_path, cache, teacher, capsys):
    args = ["teacher-cache", "--checkpoint", str(teacher), "--data", str(cache), "--no-progress", "--out"]
    _teacher_cache(tmp_path / "tc", GOOD_MAPS, "{bad")
    err = _one_line(capsys, main([*args, str(tmp_path / "tc")]))
    assert f"{tmp_path / 'tc' / 'meta.json'}: unreadable teacher-cache description" in err
    (tmp_path / "file").write_text("mine")
    err = _one_line(capsys, main([*args, str(tmp_path / "file")]))    # before the teacher is loaded
    assert err == f"xdrcdepth teacher-cache: cannot write into {tmp_path / 'file'}: it is a file, give a folder\n"
    assert (tmp_path / "file").read_text() == "mine"


def test_a_rerun_of_teacher_cache_computes_an_unusable_file_anew_and_training_names_that_remedy(
        tmp_path, cache, teacher, capsys):
    """A black-box run: a teacher-cache file cut short was reported '2 already cached' by a rerun and stayed, while
    training refused it and said to rerun xdrcdepth prepare, which has nothing to do with teacher caches."""
    out = tmp_path / "tc"
    args = ["teacher-cache", "--checkpoint", str(teacher), "--data", str(cache), "--no-progress", "--out", str(out)]
    assert main(args) == 0
    good = (out / "b.npz").read_bytes()
    (out / "b.npz").write_bytes(good[:300])
    config = _experiment(tmp_path, cache, losses=[{"name": "depth_l1"}, {"name": "dkd", "bins": 16}],
                         teacher={"checkpoint": None, "cache": str(out)})
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]))
    assert err.startswith(f"xdrcdepth train: {out / 'b.npz'}: unreadable teacher cache file (")
    assert err.endswith("(rerun xdrcdepth teacher-cache with the same arguments, which computes such files anew)\n")
    assert main(args) == 0
    assert "(1 computed, 1 already cached)" in capsys.readouterr().out
    assert (out / "b.npz").read_bytes() == good
    assert main(["train", "--config", config, "--no-progress"]) == 0


# -- data and ablation configs ---------------------------------------------------------------------------
DATA = {"root": "bench", "image_scale": 0.1, "conditions": ["clear"], "frames_per_scene": 2, "input_hw": [64, 128],
        "train_lidar_sweeps": 1, "radar_sweeps": 1,
        "splits": {"train": {"scenes": 1, "seed": 1}, "val": {"scenes": 1, "seed": 2}, "test": {"scenes": 1, "seed": 3}}}


@pytest.mark.parametrize("change, message", [
    ({"splits": ["train", "val", "test"]}, "splits must be a mapping of train, val, test, got ['train', 'val', 'test']"),
    ({"splits": {**DATA["splits"], "train": 5}}, "splits.train must be {scenes: N >= 1, seed: K >= 0}, got 5"),
    ({"input_hw": 64}, "input_hw must be two positive multiples of 32, got 64"),
    ({"conditions": ["sunny"]}, "conditions must be a non-empty list of clear, fog, night, rain, got ['sunny']"),
    ({"frames_per_scene": "2"}, "frames_per_scene must be an integer >= 1, got '2'"),
    # a black-box run: these were accepted, then a traceback after a .partial folder was made (image_scale 1000), a
    # MemoryError at 5.7 GB (10**11 frames), a hang in prepare (65536 x 65536)
    ({"image_scale": 1000}, "image_scale must be a number in [0.01, 1] (of nuScenes' 1600 x 900), got 1000"),
    ({"frames_per_scene": 10**11}, "frames_per_scene must be at most 10000, got 100000000000"),
    ({"input_hw": [65536, 65536]}, "input_hw [65536, 65536] is 4294967296 pixels, more than 16777216 (4096 x 4096)"),
])
def test_build_data_config_of_the_wrong_shape(tmp_path, capsys, change, message):
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({**DATA, "root": str(tmp_path / "bench"), **change}))
    err = _one_line(capsys, main(["build-data", "--config", str(path)]))
    assert err == f"xdrcdepth build-data: {path}: {message}\n"
    assert not (tmp_path / "bench").exists()


def test_build_data_leaves_a_partial_folder_it_did_not_make(tmp_path, capsys):
    """Only a ``.partial`` folder holding build-data's marker is an interrupted render of its own; any other is
    the user's and stays, with one line naming it."""
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({**DATA, "root": str(tmp_path / "bench")}))
    users = tmp_path / "bench" / "scenes" / "train.partial"
    users.mkdir(parents=True)
    (users / "notes.txt").write_text("mine")
    err = _one_line(capsys, main(["build-data", "--config", str(path)]), expected_code=1)
    assert err == (f"xdrcdepth build-data: {users} exists but was not made by build-data (no "
                   ".xdrcdepth-build-data-partial); move it away and rerun\n")
    assert (users / "notes.txt").read_text() == "mine" and not (tmp_path / "bench" / "scenes" / "train").exists()


def test_build_data_redoes_its_own_interrupted_render(tmp_path):
    from xdrcdepth_core.experiments.benchmark_data import PARTIAL_MARKER, _render

    cfg = {**DATA, "root": str(tmp_path / "bench")}
    partial = tmp_path / "bench" / "scenes" / "train.partial"
    (partial / "render" / "samples").mkdir(parents=True)                 # what an interrupted render leaves
    (partial / PARTIAL_MARKER).write_text("")
    _render(cfg, "train", tmp_path / "bench" / "scenes" / "train")
    assert not partial.exists()
    assert (tmp_path / "bench" / "scenes" / "train" / "synthetic.json").is_file()


def _ablation(tmp_path, **changes) -> str:
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({**DATA, "root": str(tmp_path / "bench")}))
    cfg = {"data": str(data), "out": str(tmp_path / "abl"), "results_dir": str(tmp_path / "res"),
           "teacher": f"{REPO_CONFIG}/train/synthetic/teacher.yaml",
           "student": f"{REPO_CONFIG}/train/synthetic/student.yaml",
           "teacher_cache": {"layers": ["decoder:4"], "target": "mean_depth"}, "ship": "direct",
           "variants": {"direct": {}}, **changes}
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize("changes, message", [
    ({"variants": ["direct"]}, "variants must be a mapping of variant names to their settings"),
    ({"variants": {"direct": 5}}, "variant direct must be a mapping"),
    ({"variants": {"direct": {"seeds": "abc"}}}, "variant direct: seeds must be a list of integers >= 0, got 'abc'"),
    # listed, trained and reported twice (a black-box run)
    ({"variants": {"direct": {"seeds": [0, 1, 0]}}}, "variant direct: seeds [0, 1, 0] name a seed twice"),
    ({"ship": "nope"}, "ship names no variant: 'nope'; variants: direct"),
    ({"teacher": "/nonexistent/teacher.yaml"}, "teacher: no such file /nonexistent/teacher.yaml"),
    ({"variants": {"direct": {"optim": {"epoch": 3}}}}, "variant direct: "),
    ({"teacher_overide": {"optim": {"epochs": 25}}}, "unknown keys ['teacher_overide']; known: ['data', "),
    ({"direct_from": "/nowhere"}, "direct_from: /nowhere holds no study's runs/ folder"),
    # a loss the trainer cannot build failed only when that variant's job started, maybe hours into the study
    ({"variants": {"direct": {"losses": [{"name": "nope"}]}}}, "variant direct: unknown loss 'nope'; registered "),
    ({"variants": {"direct": {"losses": [{"name": "dkd", "temperature": -1}]}}},
     "variant direct: temperature must be > 0, got -1"),
    ({"variants": {"direct": {"losses": [{"name": "dkd", "tempreature": 2}]}}},
     "variant direct: bad options for loss 'dkd': "),
    # a model option the network does not take, or a model too large, also failed only when the job started
    ({"variants": {"direct": {"model": {"film_spatail": True}}}},
     "variant direct: model: bad config for model 'xdrcdepth': "),
    ({"variants": {"direct": {"model": {"width_mult": 1000}}}}, "variant direct: model: xdrcdepth with "),
    # a variant's name is a folder and a file name: '..' left the out folder; 'teacher' took the teacher's record
    ({"variants": {"x/../../y": {}}, "ship": "x/../../y"}, "variant name 'x/../../y': use letters, digits and "),
    ({"variants": {"teacher": {}}, "ship": "teacher"}, "variant name 'teacher': use "),
    ({"variants": {"..": {}}, "ship": ".."}, "variant name '..': use "),
])
def test_ablation_config_of_the_wrong_shape_is_refused_before_any_job(tmp_path, capsys, changes, message):
    path = _ablation(tmp_path, **changes)
    err = _one_line(capsys, main(["ablate", "--config", path, "--dry-run"]))
    assert err.startswith(f"xdrcdepth ablate: {path}: {message}")


_LAUGHS = "a0: &a0 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 5))    # 10**5 zeros in a4 alone


@pytest.mark.parametrize("command", ["build-data", "ablate"])
@pytest.mark.parametrize("text, message", [
    # black-box run: one line and exit 2, but Python's 'Exceeds the limit (4300 digits) for integer string
    # conversion', naming neither the file nor the key
    ("seed: " + "9" * 5000 + "\n", "seed is an integer of 5000 digits, more than 100"),
    (_LAUGHS, "the YAML holds more than 100000 values with its aliases expanded (aliases nested in aliases?); "
              "not a config"),
])
def test_data_and_ablation_configs_are_read_within_the_config_bounds(tmp_path, capsys, command, text, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    err = _one_line(capsys, main([command, "--config", str(path)]))
    assert err == f"xdrcdepth {command}: {path}: {message}\n"


def test_a_good_ablation_config_lists_its_jobs(tmp_path, capsys):
    assert main(["ablate", "--config", _ablation(tmp_path), "--dry-run"]) == 0
    assert capsys.readouterr().out == "teacher: to do\ndirect seed 0: to do\n"


def test_seeds_that_match_no_run_are_refused(tmp_path, capsys):
    """A black-box run: `--seeds 5` of a study with seed 0 only printed 'teacher: done' and exited 0, as if its runs
    were finished."""
    path = _ablation(tmp_path)
    err = _one_line(capsys, main(["ablate", "--config", path, "--seeds", "5", "--dry-run"]))
    assert err == "xdrcdepth ablate: --seeds 5 match no run of any variant\n"
    err = _one_line(capsys, main(["ablate", "--config", path, "--only", "direct", "--seeds", "5", "7", "--dry-run"]))
    assert err == "xdrcdepth ablate: --seeds 5 7 match no run of ['direct']\n"
    assert not (tmp_path / "bench").exists() and not (tmp_path / "abl").exists()


# -- Ctrl-C ------------------------------------------------------------------------------------------------
def test_ctrl_c_where_a_command_has_no_handler_is_one_line_and_130(tmp_path, capsys, monkeypatch):
    from xdrcdepth_core.experiments import benchmark_data

    def interrupted(cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr(benchmark_data, "build", interrupted)
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(DATA))
    err = _one_line(capsys, main(["build-data", "--config", str(path)]), expected_code=130)
    assert err.startswith("xdrcdepth build-data: interrupted (SIGINT)")


def test_a_closed_stdout_ends_a_command_quietly():
    """`xdrcdepth ablate --dry-run | head -0`: the reader is gone before the first line; exit 1, no traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "xdrcdepth_core.cli", "ablate", "--config",
                             f"{REPO_CONFIG}/ablation/synthetic.yaml", "--dry-run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_CONFIG.rsplit("/", 1)[0])
    proc.stdout.close()                                   # the pipe has no reader left: every write is EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == ""


def test_a_run_folder_without_its_last_pt_is_not_trained_over(tmp_path, cache, capsys):
    """Audit 2026-12-06: with last.pt deleted (the large file), a fresh run, and a --resume too, started from
    epoch 1 and replaced the run's best.pt, history.json and summary.json without a word."""
    config = _experiment(tmp_path, cache)
    assert main(["train", "--config", config, "--no-progress"]) == 0
    capsys.readouterr()
    run = tmp_path / "run"
    (run / "last.pt").unlink()
    kept = {name: (run / name).read_bytes() for name in ("best.pt", "history.json", "summary.json", "config.yaml")}
    for resume in ([], ["--resume"]):
        err = _one_line(capsys, main(["train", "--config", config, "--no-progress", *resume]))
        assert err == (f"xdrcdepth train: {run} holds an earlier run (history.json, summary.json) without its last.pt, "
                       "so it cannot be resumed and training would replace its best.pt: choose another out folder\n")
    assert {name: (run / name).read_bytes() for name in kept} == kept


def test_a_best_pt_of_an_interrupted_first_epoch_needs_resume(tmp_path, cache, capsys):
    """best.pt is written before last.pt: a run killed between the two in its first epoch leaves best.pt alone
    (here: a finished first epoch's folder without the files written after best.pt). Without --resume that is
    refused like a last.pt; --resume starts the epoch again (nothing finished)."""
    config = _experiment(tmp_path, cache)
    run = tmp_path / "run"
    assert main(["train", "--config", config, "--no-progress"]) == 0
    for name in ("last.pt", "history.json", "summary.json"):
        (run / name).unlink()
    capsys.readouterr()
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]))
    assert err == (f"xdrcdepth train: {run / 'best.pt'} exists: resume the run with --resume, or choose another out "
                   "folder\n")
    assert main(["train", "--config", config, "--no-progress", "--resume"]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_a_best_pt_of_another_run_is_not_trained_over(tmp_path, cache, capsys, resume):
    """A black-box run: another run's best.pt alone in the out folder was replaced by --resume, exit 0 (without
    it, the message advised --resume). Only this config's own best.pt, written for this out folder, is trained
    over by --resume; an untrained model's checkpoint of no run, and one of another out folder, are not."""
    config = _experiment(tmp_path, cache)
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", build_model(TINY_STUDENT["name"], **{k: v for k, v in TINY_STUDENT.items()
                                                                         if k != "name"}), INPUT_HW, CHANNELS)
    other = yaml.safe_load(Path(config).read_text())
    save_checkpoint(tmp_path / "other.pt", build_model(TINY_STUDENT["name"], **{k: v for k, v in TINY_STUDENT.items()
                                                                               if k != "name"}), INPUT_HW, CHANNELS,
                    resolved_config={**other, "out": str(tmp_path / "elsewhere")})
    for foreign in (run / "best.pt", tmp_path / "other.pt"):
        (run / "best.pt").write_bytes(foreign.read_bytes())
        kept = (run / "best.pt").read_bytes()
        err = _one_line(capsys, main(["train", "--config", config, "--no-progress", *resume]))
        assert err == (f"xdrcdepth train: {run / 'best.pt'} exists and is not this config's (from a first epoch cut "
                       "before its last.pt, which --resume trains again): choose another out folder\n")
        assert (run / "best.pt").read_bytes() == kept


def test_a_config_yaml_the_run_did_not_write_is_not_replaced(tmp_path, cache, capsys):
    """A black-box run: the experiment YAML kept in its own out folder as config.yaml (``out:`` pointing there) was
    replaced by the resolved config, comments and all, exit 0; so was any file of that name. One a run wrote (its
    first line says so; here of a run whose first epoch failed) is replaced as before."""
    from xdrcdepth_core.train.trainer import RESOLVED_CONFIG_HEADER

    run = tmp_path / "run"
    run.mkdir()
    mine = Path(_experiment(tmp_path, cache))
    (run / "config.yaml").write_text("# my experiment, with notes\n" + mine.read_text())
    kept = (run / "config.yaml").read_bytes()
    err = _one_line(capsys, main(["train", "--config", str(run / "config.yaml"), "--no-progress"]))
    assert err == (f"xdrcdepth train: {run / 'config.yaml'} exists and was not written by a training run (a file of "
                   "yours, e.g. the experiment YAML itself): choose another out folder\n")
    assert (run / "config.yaml").read_bytes() == kept and sorted(p.name for p in run.iterdir()) == ["config.yaml"]

    (run / "config.yaml").write_text(RESOLVED_CONFIG_HEADER + "name: an earlier run's, whose first epoch failed\n")
    assert main(["train", "--config", str(mine), "--no-progress"]) == 0
    assert (run / "config.yaml").read_text().startswith(RESOLVED_CONFIG_HEADER)


def test_a_folder_where_a_run_file_goes_is_refused_before_training(tmp_path, cache, capsys):
    """A black-box run: a folder named last.pt was found after the first epoch had trained ('cannot write ...
    Is a directory', exit 1), and then a plain rerun was refused because of the best.pt it had written."""
    (tmp_path / "run" / "last.pt").mkdir(parents=True)
    err = _one_line(capsys, main(["train", "--config", _experiment(tmp_path, cache), "--no-progress"]))
    assert err == (f"xdrcdepth train: {tmp_path / 'run' / 'last.pt'} is not a file (a folder or device where the run "
                   "writes its own): move it, or choose another out folder\n")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["last.pt"]


def test_an_out_folder_that_is_an_input_folder_is_refused(tmp_path, cache, capsys):
    """A black-box run: out set to the training cache folder put best.pt, last.pt, config.yaml and tensorboard/ among
    the cache files, exit 0."""
    config = _experiment(tmp_path, cache)
    err = _one_line(capsys, main(["train", "--config", config, "--set", f"out={cache}", "--no-progress"]))
    assert err == f"xdrcdepth train: {config}: out: {cache} is in the data.train folder {cache}: write it elsewhere\n"
    assert sorted(p.name for p in cache.iterdir()) == ["a.npz", "b.npz"]


def test_two_runs_into_one_out_folder_do_not_both_train(tmp_path, cache, capsys):
    """A black-box run: two trainings into one folder both reported success, each writing over the other's files,
    and the folder held one of them. A training run holds an exclusive lock on its out folder (seen from here while
    it trains), and a run that finds the folder locked is refused in one line, having written nothing."""
    import fcntl
    import os
    import signal

    from fs_faults import sigint_default
    from test_bag_recording_safety import wait_for

    run = tmp_path / "run"
    config = _experiment(tmp_path, cache, optim__epochs=100_000)
    first = subprocess.Popen([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", config, "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    try:
        wait_for(lambda: (run / "config.yaml").is_file(), 240, "the run's config.yaml", first)   # written once locked
        fd = os.open(run, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)

    other = tmp_path / "other"
    other.mkdir()
    fd = os.open(other, os.O_RDONLY | os.O_DIRECTORY)     # as a running training run holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        err = _one_line(capsys, main(["train", "--config", config, "--set", f"out={other}", "--no-progress"]))
    finally:
        os.close(fd)
    assert err == (f"xdrcdepth train: {other} is in use by another training run: wait for it to end, or choose "
                   "another out folder\n")
    assert list(other.iterdir()) == []


def test_resuming_with_fewer_epochs_than_the_run_has_is_refused(tmp_path, cache, capsys):
    """Audit 2026-12-06: --resume with optim.epochs below the epochs done trained nothing, exit 0, and rewrote
    config.yaml and summary.json with the smaller count while the checkpoints held the larger one."""
    assert main(["train", "--config", _experiment(tmp_path, cache, optim={"epochs": 2, "batch_size": 2}),
                 "--no-progress"]) == 0
    capsys.readouterr()
    run = tmp_path / "run"
    kept = {name: (run / name).read_bytes() for name in ("config.yaml", "summary.json", "last.pt")}
    fewer = _experiment(tmp_path, cache, optim={"epochs": 1, "batch_size": 2})
    err = _one_line(capsys, main(["train", "--config", fewer, "--no-progress", "--resume"]))
    assert err == (f"xdrcdepth train: cannot resume from {run / 'last.pt'}: the run has finished 2 epochs, more than "
                   "optim.epochs 1; give optim.epochs >= 2\n")
    assert {name: (run / name).read_bytes() for name in kept} == kept


def test_a_missing_training_folder_names_its_key(tmp_path, cache, capsys):
    config = _experiment(tmp_path, cache, data__train=str(tmp_path / "nowhere"))
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]))
    assert err.startswith(f"xdrcdepth train: data.train: ") and str(tmp_path / "nowhere") in err


def test_a_loss_the_teacher_cache_cannot_feed_names_the_config_without_a_resume_hint(tmp_path, cache, capsys):
    """Audit 2026-12-06: an X-KD layer the teacher cache does not hold failed at the first step with 'once it is
    replaced, --resume continues from the last finished epoch': no epoch had finished, and the fix is the config."""
    folder = _teacher_cache(tmp_path / "tc", GOOD_MAPS)                       # saliency at decoder:4 only
    config = _experiment(tmp_path, cache, teacher={"checkpoint": None, "cache": str(folder)},
                         losses=[{"name": "depth_l1", "weight": 1.0},
                                 {"name": "xkd", "weight": 1.0, "layers": [[["decoder", 2], ["decoder", 2]]]}])
    err = _one_line(capsys, main(["train", "--config", config, "--no-progress"]))
    assert err.startswith(f"xdrcdepth train: {config}: loss xkd needs ") and "decoder" in err
    assert "--resume" not in err
