"""``xdrcdepth prepare`` on the hand-built folder (values by hand) and on the real scene-0061 samples."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_nuscenes_dataset import build_folder

from xdrcdepth_core.cli import main
from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset
from xdrcdepth_core.data.prepare import NPZ_KEYS
from xdrcdepth_core.data.real_samples import assemble_real_samples


def _prepare(capsys, *args):
    rc = main(["prepare", *map(str, args)])
    return rc, capsys.readouterr().out.strip().splitlines()[-1]


@pytest.fixture
def folder(tmp_path):
    return build_folder(tmp_path / "hand-built")


def test_cache_matches_the_dataset_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "cache"
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out)
    assert rc == 0
    assert "1 samples of split all" in summary and "1 written, 0 already cached" in summary
    assert "1 lacking a required channel" in summary
    sample = NuScenesDepthDataset(folder, "v1.0-test")[0]
    files = sorted(out.glob("*.npz"))
    assert [f.stem for f in files] == [sample["token"]]
    assert not list(out.glob(".*.tmp"))
    with np.load(files[0], allow_pickle=False) as npz:
        assert set(npz.files) == set(NPZ_KEYS) | {"radar_confidence_gt"}  # 1 sweep: no depth_gt_single
        assert npz["boxes"].shape == (0, 7) and npz["boxes"].dtype == np.float32  # no annotations
        # the one GT pixel (29.5 m) is not within 0.4 m of the return at the same pixel (19.5 m)
        assert npz["radar_confidence_gt"][25, 50] == 0 and np.count_nonzero(npz["radar_confidence_gt"] != 255) == 1
        assert npz["image"].dtype == np.uint8 and npz["image"].shape == (50, 100, 3)
        np.testing.assert_array_equal(npz["image"], sample["image"])
        assert npz["radar"].dtype == np.float32 and npz["depth_gt"].dtype == np.float32
        np.testing.assert_array_equal(npz["radar"], sample["radar"])
        np.testing.assert_allclose(npz["radar"][:, 25, 50], [19.5, 5, 1.5, 0])
        assert npz["depth_gt"][25, 50] == pytest.approx(29.5) and np.count_nonzero(npz["depth_gt"]) == 1
        assert npz["radar_channels"].tolist() == ["depth", "rcs", "vx_comp", "vy_comp"]
        np.testing.assert_allclose(npz["K"], sample["K"])
        assert str(npz["token"]) == sample["token"]
        assert json.loads(str(npz["settings"]))["lidar_sweeps"] == 1
    mtime = files[0].stat().st_mtime_ns

    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out)
    assert rc == 0 and "0 written, 1 already cached" in summary
    assert files[0].stat().st_mtime_ns == mtime

    # other settings: the cached file does not count and is rewritten with the accumulated GT
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out,
                           "--lidar-sweeps", "3", "--radar-sweeps", "2")
    assert rc == 0 and "1 written" in summary
    with np.load(files[0]) as npz:
        assert npz["depth_gt"][25, 50] == pytest.approx(20.0) and np.count_nonzero(npz["radar"][0]) == 3
        assert npz["depth_gt_single"][25, 50] == pytest.approx(29.5) and np.count_nonzero(npz["depth_gt_single"]) == 1
        assert np.count_nonzero(npz["depth_gt"]) == 2

    # a truncated cache file is recomputed
    files[0].write_bytes(files[0].read_bytes()[:100])
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out,
                           "--lidar-sweeps", "3", "--radar-sweeps", "2")
    assert rc == 0 and "1 written" in summary


def test_resize_boxes_and_confidence_options(tmp_path, capsys):
    """Annotated hand-built folder (test_nuscenes_dataset.build_folder): the car's box in the 50 x 100 image is
    x 50 +- 100 / 18 + 0.5, y 25 +- 100 / 18 + 0.5 (pixel-edge coordinates), range 20 m, velocity (2, 1) m/s."""
    folder = build_folder(tmp_path / "annotated", annotations=True)
    out = tmp_path / "cache"
    args = ["--dataroot", folder, "--version", "v1.0-test", "--out", out]
    rc, summary = _prepare(capsys, *args, "--resize", 25, 50, "--lidar-sweeps", 3)
    assert rc == 0 and "1 written" in summary
    (path,) = out.glob("*.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == set(NPZ_KEYS) | {"radar_confidence_gt", "depth_gt_single"}
        settings = json.loads(str(npz["settings"]))
        assert settings["resize"] == [25, 50] and settings["confidence_gt"] and settings["lidar_sweeps"] == 3
        assert npz["image"].shape == (25, 50, 3) and npz["radar"].shape == (4, 25, 50)
        for key in ("depth_gt", "depth_gt_single", "radar_confidence_gt"):
            assert npz[key].shape == (25, 50)
        np.testing.assert_allclose(npz["K"], [[50, 0, 24.75], [0, 50, 12.25], [0, 0, 1]])
        d = 100 / 18
        np.testing.assert_allclose(npz["boxes"][0], [(50 - d + 0.5) / 2, (25 - d + 0.5) / 2, (50 + d + 0.5) / 2,
                                                     (25 + d + 0.5) / 2, 20, 2, 1], rtol=1e-6)
        # GT (25, 50) 20 m and (25, 39) 9.5 m move to (12, 25) and (12, 19); both negatives (module test)
        assert npz["depth_gt"][12, 25] == pytest.approx(20.0) and npz["depth_gt"][12, 19] == pytest.approx(9.5)
        assert npz["depth_gt_single"][12, 25] == pytest.approx(29.5)
        labels = npz["radar_confidence_gt"]
        assert labels[12, 25] == 0 and labels[12, 19] == 0 and np.count_nonzero(labels != 255) == 2

    rc, summary = _prepare(capsys, *args, "--resize", 25, 50, "--lidar-sweeps", 3)
    assert rc == 0 and "0 written, 1 already cached" in summary
    for changed in (["--resize", 25, 40, "--lidar-sweeps", 3], ["--lidar-sweeps", 3],
                    ["--no-confidence-gt", "--lidar-sweeps", 3]):
        rc, summary = _prepare(capsys, *args, *changed)
        assert rc == 0 and "1 written" in summary, changed
    with np.load(path, allow_pickle=False) as npz:
        assert "radar_confidence_gt" not in npz.files and npz["image"].shape == (50, 100, 3)
    # a file of these settings that lacks a key they ask for is rebuilt
    rc, summary = _prepare(capsys, *args, "--lidar-sweeps", 3)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "depth_gt_single"}
    np.savez(path, **arrays)
    rc, summary = _prepare(capsys, *args, "--lidar-sweeps", 3)
    assert rc == 0 and "1 written" in summary
    with pytest.raises(SystemExit):
        main(["prepare", *map(str, args), "--resize", "0", "10"])
    assert "--resize: must be >= 1, got '0'" in capsys.readouterr().err


def test_an_out_folder_that_is_a_file_is_refused_before_the_tables_are_loaded(folder, tmp_path, capsys):
    (tmp_path / "cache").write_text("mine")     # was exit 1 once the dataset was loaded, at the first folder made
    assert main(["prepare", "--dataroot", str(folder), "--version", "v1.0-test", "--out", str(tmp_path / "cache"),
                 "--allow-missing-lidar"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"xdrcdepth prepare: cannot write into {tmp_path / 'cache'}: it is a file, give a folder\n"
    assert captured.out == "" and (tmp_path / "cache").read_text() == "mine"


def test_missing_lidar_and_unreadable_files(folder, tmp_path, capsys):
    out = tmp_path / "cache"
    nusc_sample = NuScenesDepthDataset(folder, "v1.0-test", require_lidar=False)
    camera_file = Path(nusc_sample.nusc.get_sample_data_path(
        nusc_sample.nusc.get("sample", nusc_sample.sample_tokens[1])["data"]["CAM_FRONT"]))
    camera_file.write_bytes(b"garbage")
    assert main(["prepare", "--dataroot", str(folder), "--version", "v1.0-test", "--out", str(out),
                 "--allow-missing-lidar"]) == 1
    captured = capsys.readouterr()                      # on stderr: '2>/dev/null' showed it
    (line,) = [ln for ln in captured.err.splitlines() if ln.startswith("xdrcdepth prepare")]
    assert str(camera_file) in line and "--skip-bad" in line and captured.out == ""
    rc, summary = _prepare(capsys, "--dataroot", folder, "--version", "v1.0-test", "--out", out,
                           "--allow-missing-lidar", "--skip-bad")
    assert rc == 0 and "2 samples" in summary and "0 written, 1 already cached, 1 unreadable skipped" in summary
    rc = main(["prepare", "--dataroot", str(tmp_path / "nowhere"), "--version", "v1.0-test", "--out", str(out)])
    assert rc == 2 and capsys.readouterr().err == (f"xdrcdepth prepare: error: {tmp_path / 'nowhere'}: no nuScenes "
                                                   "table folder v1.0-test/ here\n")
    with pytest.raises(SystemExit):
        main(["prepare", "--dataroot", str(folder), "--out", str(out), "--lidar-sweeps", "0"])
    assert "--lidar-sweeps: must be >= 1, got '0'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sweep counts must be >= 1"):
        NuScenesDepthDataset(folder, "v1.0-test", radar_sweeps=0)


def test_nothing_to_cache_is_an_error_not_an_empty_cache(folder, tmp_path, capsys):
    """Both used to end with rc 0 and an empty cache folder, which train refused only later ('no .npz cache
    files'): a folder whose selection has no sample, and --skip-bad skipping every sample."""
    out = tmp_path / "cache"
    dataset = NuScenesDepthDataset(folder, "v1.0-test")          # sample 0 only: sample 1 has no LiDAR
    camera_file = Path(dataset.nusc.get_sample_data_path(
        dataset.nusc.get("sample", dataset.sample_tokens[0])["data"]["CAM_FRONT"]))
    camera_file.write_bytes(b"garbage")
    assert main(["prepare", "--dataroot", str(folder), "--version", "v1.0-test", "--out", str(out),
                 "--skip-bad"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("xdrcdepth prepare")]
    assert err[0].startswith(f"xdrcdepth prepare: skipping sample {dataset.sample_tokens[0]}: {camera_file}")
    assert err[1:] == [f"xdrcdepth prepare: no sample could be read (1 unreadable): nothing cached in {out}"]

    (folder / "v1.0-test" / "scene.json").write_text("[]")    # no scene: no sample
    empty = tmp_path / "empty"
    assert main(["prepare", "--dataroot", str(folder), "--version", "v1.0-test", "--out", str(empty)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth prepare: error: no samples to prepare in {folder} (split all)\n")
    assert not empty.exists()


@pytest.mark.slow
def test_prepare_real_samples_unchanged(nuscenes_samples, tmp_path, capsys):
    """The folder assembled from the real scene-0061 key frames goes through prepare like any other."""
    root = assemble_real_samples(tmp_path / "real", nuscenes_samples)
    out = tmp_path / "cache"
    rc, summary = _prepare(capsys, "--dataroot", root, "--version", "v1.0-mini", "--out", out, "--split", "mini_val")
    assert rc == 0
    # scene-0061 is in mini_train, not mini_val -> the folder has no mini_val scene: all scenes
    assert "split mini_val (no such scenes here: all scenes)" in summary
    assert "1 samples" in summary and "1 written" in summary and "5 lacking a required channel" in summary
    with np.load(out / "ca9a282c9e77460f8360f564131a8af5.npz") as npz:
        original = np.asarray(Image.open(nuscenes_samples / "samples" / "CAM_FRONT"
                                         / "n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402927612460.jpg"))
        np.testing.assert_array_equal(npz["image"], original)
        assert npz["radar"].shape == (4, 900, 1600)
        assert np.count_nonzero(npz["radar"][0]) == 61  # devkit default filters, as in test_radar_real
        depth = npz["depth_gt"]
        assert np.count_nonzero(depth) == 3059 and 4.0 < depth[depth > 0].min() and depth.max() < 100.0
        assert npz["K"][0, 0] == pytest.approx(1266.417203046554)
        assert npz["boxes"].shape == (0, 7)  # the real samples carry no annotations
        labels = npz["radar_confidence_gt"]  # every return gets a 101 x 301 patch at 900 x 1600
        np.testing.assert_array_equal(labels != 255, depth > 0)
        assert (labels == 1).sum() == 165 and (labels == 0).sum() == 2894

    rc, summary = _prepare(capsys, "--dataroot", root, "--version", "v1.0-mini", "--out", out,
                           "--split", "mini_train", "--allow-missing-lidar", "--no-radar-filters")
    assert rc == 0 and "6 samples of split mini_train ->" in summary and "6 written" in summary
    counts = []
    for token in NuScenesDepthDataset(root, "v1.0-mini", require_lidar=False).sample_tokens:
        with np.load(out / f"{token}.npz") as npz:
            counts.append(int(np.count_nonzero(npz["radar"][0])))
    assert counts == [106, 116, 116, 111, 102, 100]  # 107/116/116/112/102/101 in image, minus shared pixels


def test_scenes_selects_own_scenes_by_name(tmp_path, capsys):
    """``--scenes`` splits one folder of one's own recordings by scene name; a name the folder lacks, or a
    split name the devkit does not know, is an argument error (one line, exit 2) that lists what exists."""
    from xdrcdepth_core.data.synthetic.writer import SynthConfig, synthesize

    root = tmp_path / "scenes"
    synthesize(SynthConfig(out=root, scenes=2, keyframes=2, seed=5, image_scale=0.1, camera_sweeps=False),
               progress=False)
    version = "v1.0-mini"
    scenes = json.loads((root / version / "scene.json").read_text())
    names = sorted(scene["name"] for scene in scenes)
    keyframes = {scene["name"]: scene["nbr_samples"] for scene in scenes}
    assert len(names) == 2
    out = tmp_path / "cache"
    rc, summary = _prepare(capsys, "--dataroot", root, "--version", version, "--out", out, "--scenes", names[1],
                           "--no-progress")
    assert rc == 0 and f"{keyframes[names[1]]} samples of scenes {names[1]} ->" in summary
    sample_scene = {s["token"]: s["scene_token"] for s in json.loads((root / version / "sample.json").read_text())}
    scene_name = {s["token"]: s["name"] for s in scenes}
    assert {scene_name[sample_scene[f.stem]] for f in out.glob("*.npz")} == {names[1]}

    for args, named in ((["--scenes", names[0], "scene-nowhere"], "scene-nowhere"),
                        (["--split", "no-such-split"], "no-such-split")):
        rc = main(["prepare", "--dataroot", str(root), "--version", version, "--out", str(tmp_path / "x"), *args])
        captured = capsys.readouterr()
        lines = (captured.out + captured.err).strip().splitlines()
        assert rc == 2 and len(lines) == 1 and named in lines[0], lines
    assert not (tmp_path / "x").exists()


def test_unlabelled_keeps_the_sensors_and_drops_every_label(tmp_path, capsys):
    """``--unlabelled``: the same image, radar and K as the labelled cache, no ground truth of any kind (the
    annotated folder's LiDAR points, confidence labels and car box are gone), samples without LiDAR kept;
    a labelled file of a sample is rebuilt for the other setting, not reused, in both directions."""
    folder = build_folder(tmp_path / "annotated", annotations=True)
    args = ["--dataroot", folder, "--version", "v1.0-test", "--lidar-sweeps", 3]
    labelled, unlabelled = tmp_path / "labelled", tmp_path / "unlabelled"
    rc, summary = _prepare(capsys, *args, "--out", labelled)
    assert rc == 0 and "1 samples" in summary                    # sample 1 has no LiDAR
    rc, summary = _prepare(capsys, *args, "--out", unlabelled, "--unlabelled")
    assert rc == 0 and "2 samples" in summary and "2 written" in summary and "0 lacking" in summary
    (kept,) = labelled.glob("*.npz")
    with np.load(kept, allow_pickle=False) as with_labels, np.load(unlabelled / kept.name) as without:
        assert set(without.files) == set(with_labels.files)
        for key in ("image", "radar", "K", "radar_channels", "token"):
            np.testing.assert_array_equal(without[key], with_labels[key], err_msg=key)
        assert np.count_nonzero(with_labels["depth_gt"]) == 2 and len(with_labels["boxes"]) == 2
        assert np.count_nonzero(with_labels["radar_confidence_gt"] != 255) == 2
        assert not without["depth_gt"].any() and not without["depth_gt_single"].any()
        assert (without["radar_confidence_gt"] == 255).all() and without["boxes"].shape == (0, 7)
        assert json.loads(str(without["settings"]))["unlabelled"] is True
        assert "unlabelled" not in json.loads(str(with_labels["settings"]))

    rc, summary = _prepare(capsys, *args, "--out", labelled, "--unlabelled")
    assert rc == 0 and "2 written, 0 already cached" in summary
    rc, summary = _prepare(capsys, *args, "--out", labelled)
    assert rc == 0 and "1 written, 0 already cached" in summary
    with np.load(kept, allow_pickle=False) as npz:
        assert np.count_nonzero(npz["depth_gt"]) > 0
