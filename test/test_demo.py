"""The offline demo writes one 2x2 panel per frame, on real samples and on a synthetic folder."""

import json

import numpy as np
import pytest
from PIL import Image

from xdrcdepth_core import demo
from xdrcdepth_core.cli import main

pytestmark = pytest.mark.slow   # over ~2 s on 2 cores: left out of the edit loop


def test_demo_on_real_samples_writes_panels(tmp_path, nuscenes_samples, capsys):
    assert main(["demo", "--out", str(tmp_path / "out"), "--max-samples", "2", "--device", "cpu"]) == 0
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 2
    assert "ca9a282c9e77460f8360f564131a8af5" in {p.stem for p in pngs}  # key frame 0 (with LiDAR)
    panel = np.asarray(Image.open(tmp_path / "out" / "ca9a282c9e77460f8360f564131a8af5.png"))
    assert panel.shape == (1800, 3200, 3)                                 # 2 x 2 panels of 900 x 1600
    out = capsys.readouterr().out
    assert "0-80" in out and "demo: 2 frames" in out                     # metrics against LiDAR, summary


def test_without_real_samples_the_demo_synthesises_a_scene(tmp_path, monkeypatch):
    from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset

    monkeypatch.setattr(demo, "DEFAULT_SAMPLES_DIR", tmp_path / "absent")
    root, label = demo.default_dataroot(tmp_path, demo.DATAROOT_HINT)
    # where it looked and how to point it elsewhere (installed, it silently said "no real samples found")
    assert label == (f"synthetic scene (no real nuScenes samples: no {tmp_path / 'absent' / 'frames.json'}; set "
                     "XDRCDEPTH_NUSCENES_SAMPLES to the samples folder, or give --dataroot a nuScenes-format folder)")
    dataset = NuScenesDepthDataset(root, split="all", require_lidar=False)
    assert len(dataset) == 2
    sample = dataset[0]
    assert sample["image"].shape == (450, 800, 3) and sample["depth_gt"].any()
    depth = np.full(sample["image"].shape[:2], 20.0, np.float32)
    assert demo.panel(sample, depth, np.zeros_like(depth), 100.0).shape == (900, 1600, 3)


def test_an_unusable_checkpoint_or_device_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    for name, message in (("bad.pt", f"cannot read checkpoint {tmp_path / 'bad.pt'}"),
                          ("none.pt", f"checkpoint not found: {tmp_path / 'none.pt'}")):
        assert main(["demo", "--checkpoint", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"xdrcdepth demo: {message}") and err.count("\n") == 1, err


def test_the_command_says_only_the_error_for_a_dataroot_without_tables(tmp_path):
    """As a user runs it (capsys does not see the log handler): the model's progress note came first, two lines."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "demo", "--dataroot", str(tmp_path / "absent"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"xdrcdepth demo: error: {tmp_path / 'absent'}: no nuScenes table folder v1.0-mini/ here\n"


def test_a_dataroot_without_tables_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "v1.0-mini").mkdir()                       # a table folder with no tables in it
    assert main(["demo", "--dataroot", str(tmp_path / "absent"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth demo: error: {tmp_path / 'absent'}: no nuScenes table folder "
                                       "v1.0-mini/ here\n")
    assert main(["demo", "--dataroot", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"xdrcdepth demo: error: {tmp_path / 'v1.0-mini'}: cannot load the nuScenes tables (missing category.json, "
        "attribute.json, visibility.json, instance.json, sensor.json, calibrated_sensor.json, ego_pose.json, "
        "log.json, scene.json, sample.json, sample_data.json, sample_annotation.json, map.json)\n")
    for table in ("attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log", "scene",
                  "sample", "sample_data", "sample_annotation", "map"):
        (tmp_path / "v1.0-mini" / f"{table}.json").write_text("[]")
    assert main(["demo", "--dataroot", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth demo: error: {tmp_path / 'v1.0-mini'}: cannot load the nuScenes "
                                       "tables (missing category.json)\n")
    (tmp_path / "v1.0-mini" / "category.json").write_text("{not json")
    assert main(["demo", "--dataroot", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth demo: error: {tmp_path / 'v1.0-mini'}: cannot load the nuScenes tables (")
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_frame_count_below_one_is_refused(capsys):
    for count in ("0", "-1"):
        with pytest.raises(SystemExit) as exit_info:
            main(["demo", "--max-samples", count])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == (f"xdrcdepth demo: error: argument --max-samples: must be >= 1, got "
                                           f"'{count}' (see --help)\n")


def test_an_output_path_through_a_file_is_one_line_before_the_first_frame(tmp_path, nuscenes_samples, capsys):
    (tmp_path / "file").write_text("mine")
    assert main(["demo", "--out", str(tmp_path / "file" / "out"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"xdrcdepth demo: cannot write {tmp_path / 'file' / 'out'}: a file is in the way (a folder is "
                        "needed there) [Errno 20]\n") and "Traceback" not in err, err
    assert "frame/s" not in err                                                   # no frame was started
    assert (tmp_path / "file").read_text() == "mine"


def test_an_output_folder_that_is_a_file_is_refused_before_any_model_is_loaded(tmp_path, nuscenes_samples, capsys):
    # black-box run (eval --panels, the same in demo): exit 1 once the model was loaded and the data opened
    (tmp_path / "file").write_text("mine")
    assert main(["demo", "--out", str(tmp_path / "file"), "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"xdrcdepth demo: cannot write into {tmp_path / 'file'}: it is a file, give a folder\n"
    assert (tmp_path / "file").read_text() == "mine"


def test_an_unreadable_camera_image_is_named_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEFAULT_SAMPLES_DIR", tmp_path / "absent")
    root, _ = demo.default_dataroot(tmp_path)
    images = sorted((root / "samples" / "CAM_FRONT").glob("*.jpg"))
    for image in images:
        image.write_bytes(b"not a jpeg")
    assert main(["demo", "--dataroot", str(root), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("xdrcdepth demo: error: ") and f"{images[0]}: cannot read image" in last, err
    assert not list((tmp_path / "out").glob("*.png"))


def test_a_sample_token_cannot_put_a_picture_outside_the_output_folder(tmp_path, capsys):
    """Audit 2026-12-06: the picture was written to ``<out>/<token>.png`` with the token of sample.json as it is,
    and tables are untrusted: a token ``../../escaped`` wrote ``escaped.png`` two folders above ``--out``. The token
    is now made one file name (:func:`file_names.token_file_name`), so the picture stays in ``--out``."""
    from xdrcdepth_core.data.synthetic.writer import SynthConfig, synthesize

    root = tmp_path / "data"
    synthesize(SynthConfig(out=root, scenes=1, keyframes=1, image_scale=0.1, camera_sweeps=False), progress=False)
    token = json.loads((root / "v1.0-mini" / "sample.json").read_text())[0]["token"]
    for table in (root / "v1.0-mini").glob("*.json"):                  # the token everywhere it is linked from
        table.write_text(table.read_text().replace(token, "../../escaped"))
    out = tmp_path / "a" / "b" / "out"
    assert main(["demo", "--dataroot", str(root), "--out", str(out), "--device", "cpu"]) == 0
    assert [p.name for p in out.iterdir()] == ["_.._escaped.png"]
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*.png") if "data" not in p.parts] == [
        out.relative_to(tmp_path) / "_.._escaped.png"]
    assert "demo: 1 frames" in capsys.readouterr().out
