"""Evaluation protocol and baselines on hand-made caches: values worked out by hand in the tests."""

import json
import math

import numpy as np
import pytest

from xdrcdepth_core.evaluation.baselines import radar_nearest_depth
from xdrcdepth_core.evaluation.evaluate import evaluate_cache, ground_truth
from xdrcdepth_core.evaluation.panels import evaluation_panel, grow_sparse
from xdrcdepth_core.infer import DepthResult

CHANNELS = ("depth", "rcs", "vx_comp", "vy_comp")


def test_radar_nearest_depth_by_hand():
    radar = np.zeros((3, 5), np.float32)
    radar[0, 0] = 10.0
    radar[2, 4] = 30.0
    dense = radar_nearest_depth(radar, fallback=7.0)
    # Pixel (1, 1): distance sqrt(2) to (0,0), sqrt(10) to (2,4) -> 10. Pixel (1, 3): sqrt(10) vs sqrt(2) -> 30.
    expected = np.array([[10, 10, 10, 30, 30],
                         [10, 10, 10, 30, 30],
                         [10, 10, 30, 30, 30]], np.float32)
    # (0,2): d=2 to (0,0), sqrt(8) to (2,4) -> 10; (0,3): 3 vs sqrt(5) -> 30; (2,2): sqrt(8) vs 2 -> 30
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(radar_nearest_depth(np.zeros((2, 2)), 7.0), np.full((2, 2), 7.0))


def test_grow_sparse_radius():
    sparse = np.zeros((5, 5))
    sparse[2, 2] = 4.0
    grown = grow_sparse(sparse, 1)
    assert (grown > 0).sum() == 5                     # the point and its 4 neighbours at distance 1
    assert grown[1, 2] == grown[2, 1] == 4.0 and grown[1, 1] == 0


class _FixedEstimator:
    """Stands in for DepthEstimator with known predictions, so the protocol can be checked by hand."""

    radar_channels = CHANNELS

    def __init__(self, depth):
        self.depth = depth

    def estimate_raster(self, image, raster, saliency=False):
        return DepthResult(depth=self.depth.copy(), saliency=np.zeros(image.shape[:2]) if saliency else None)


def _write_cache(folder, gt_single, gt_accumulated, radar_depth, exact=None):
    folder.mkdir()
    h, w = gt_single.shape
    radar = np.zeros((4, h, w), np.float32)
    radar[0] = radar_depth
    arrays = dict(image=np.zeros((h, w, 3), np.uint8), radar=radar, radar_channels=np.array(CHANNELS),
                  depth_gt=gt_accumulated, depth_gt_single=gt_single, K=np.eye(3), token=np.array("t0"),
                  settings=np.array("{}"))
    if exact is not None:
        arrays["depth_exact"] = exact
    np.savez_compressed(folder / "t0.npz", **arrays)


def test_evaluate_cache_scores_single_sweep_gt_and_baselines(tmp_path):
    gt_single = np.array([[10.0, 0.0], [40.0, 60.0]], np.float32)
    gt_acc = np.array([[10.0, 20.0], [40.0, 60.0]], np.float32)
    radar = np.array([[12.0, 0.0], [0.0, 0.0]], np.float32)
    _write_cache(tmp_path / "cache", gt_single, gt_acc, radar, exact=np.full((2, 2), 30.0, np.float32))
    pred = np.array([[11.0, 99.0], [44.0, 54.0]], np.float32)
    result = evaluate_cache(_FixedEstimator(pred), tmp_path / "cache", caps=(50.0, 80.0), gts=("auto", "exact"),
                            constant=20.0, progress=False)
    res = result.results()
    # auto = single sweep: pixels 10, 40 (cap 50) and 10, 40, 60 (cap 80); |err| = 1, 4, 6 m
    assert res["model"]["auto"]["50"]["mae"] == pytest.approx(2500.0)
    assert res["model"]["auto"]["80"]["mae"] == pytest.approx(11000.0 / 3)
    assert res["model"]["auto"]["80"]["rmse"] == pytest.approx(np.sqrt((1 + 16 + 36) / 3) * 1000)
    # radar-only: every pixel takes 12 m -> |err| 2, 28, 48
    assert res["radar_only"]["auto"]["80"]["mae"] == pytest.approx(78000.0 / 3)
    # constant 20 m -> |err| 10, 20, 40
    assert res["constant"]["auto"]["80"]["mae"] == pytest.approx(70000.0 / 3)
    # exact GT: 30 m everywhere; errors 19, 69->cap clip 80? pred clipped to cap: |30-80|=50, 14, 24 -> and 19
    assert res["model"]["exact"]["80"]["mae"] == pytest.approx((19 + 50 + 14 + 24) / 4 * 1000)
    assert result.frames == 1
    json.dumps(res)  # JSON-ready


def test_a_ground_truth_no_frame_has_still_gets_its_rows(tmp_path):
    """Audit 2026-12-06: ``--gt exact`` on a real-data cache (no ``depth_exact``) printed an empty summary
    ("MAE@80 m (exact GT): ;") and made training's validation fail with ``KeyError: 'model'``. Every predictor
    now has a row per requested ground truth: 0 images and NaN metrics, as for frames without LiDAR points."""
    gt = np.array([[10.0, 0.0], [40.0, 60.0]], np.float32)
    _write_cache(tmp_path / "cache", gt, gt, np.zeros((2, 2), np.float32))
    result = evaluate_cache(_FixedEstimator(np.full((2, 2), 10.0, np.float32)), tmp_path / "cache",
                            caps=(80.0,), gts=("auto", "exact"), constant=20.0, progress=False)
    res = result.results()
    assert sorted(res) == ["constant", "model", "radar_only"]
    for name in res:
        assert res[name]["exact"]["80"]["images"] == 0 and res[name]["exact"]["80"]["mae"] is None
        assert res[name]["auto"]["80"]["images"] == 1
    assert math.isnan(result.mae("model", "exact")) and result.frames == 1
    # |10 - 10|, |40 - 10|, |60 - 10| over the three LiDAR pixels
    assert result.mae("model", "auto") == pytest.approx(80000.0 / 3)
    assert "[model, ground truth: exact]" in result.format_table()


def test_ground_truth_fallbacks():
    sample = {"depth_gt": np.ones((2, 2))}
    assert ground_truth(sample, "auto") is sample["depth_gt"]
    assert ground_truth(sample, "exact") is None
    with pytest.raises(ValueError, match="unknown ground truth"):
        ground_truth(sample, "foo")


def test_channel_mismatch_named(tmp_path):
    _write_cache(tmp_path / "cache", np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.zeros((2, 2)))
    estimator = _FixedEstimator(np.ones((2, 2), np.float32))
    estimator.radar_channels = ("depth",)
    with pytest.raises(ValueError, match="t0.npz.*radar channels"):
        evaluate_cache(estimator, tmp_path / "cache", progress=False)


def test_panel_layout():
    image = np.full((40, 60, 3), 50, np.uint8)
    depth = np.full((40, 60), 20.0)
    gt = np.zeros((40, 60))
    gt[30, 30] = 21.0
    panel = evaluation_panel(image, np.zeros((40, 60)), gt, depth, np.ones((40, 60)) * 0.5)
    assert panel.shape == (80, 180, 3)
    assert (panel[40 + 15:, 120:] == 0).all()   # no teacher saliency: black tile below its title
    error_tile = panel[40:, :60]
    assert error_tile[30, 30].any() and not error_tile[20, 10].any()   # error only where GT is


@pytest.mark.parametrize("key, value, message", [
    ("image", np.zeros((3, 2, 2), np.uint8), "image is 3 x 2 x 2 uint8, expected H x W x 3 uint8 RGB"),
    ("image", np.zeros((2, 2, 3), np.float32), "image is 2 x 2 x 3 float32, expected H x W x 3 uint8 RGB"),
    ("radar", np.zeros((4, 3, 2), np.float32), "radar is 4 x 3 x 2 float32, expected 4 x 2 x 2"),
    ("radar", np.zeros((2, 2, 2), np.float32), "radar is 2 x 2 x 2 float32, expected 4 x 2 x 2"),
    ("depth_gt_single", np.zeros((2, 3), np.float32), "depth_gt_single is 2 x 3 float32, expected 2 x 2"),
    # Audit 2026-12-06: types and values. A string raster failed in preprocessing with a traceback, a string
    # ground truth as "could not convert string to float: 'x'" naming no file; a NaN radar value (or one float32
    # cannot hold) made the model's depth NaN, which the metrics scored as 1e-3 m with exit 0.
    ("radar", np.full((4, 2, 2), "a"), "radar is 4 x 2 x 2 <U1, expected 4 x 2 x 2 float32"),
    ("radar", np.zeros((4, 2, 2), np.complex64), "radar is 4 x 2 x 2 complex64, expected 4 x 2 x 2 float32"),
    ("radar", np.array([np.zeros((2, 2)), [[0.0, np.nan], [0.0, 0.0]], np.zeros((2, 2)), np.zeros((2, 2))],
                       np.float32), "radar holds NaN or infinite values (as float32)"),
    ("radar", np.full((4, 2, 2), 1e300), "radar holds NaN or infinite values (as float32)"),
    ("depth_gt_single", np.full((2, 2), "x"), "depth_gt_single is 2 x 2 <U1, expected 2 x 2 float32"),
])
def test_a_cache_file_of_wrong_shapes_is_named(tmp_path, key, value, message):
    """Cache files are untrusted: a wrong shape is one message naming the file, not a failure deep inside."""
    _write_cache(tmp_path / "cache", np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.zeros((2, 2)))
    path = tmp_path / "cache" / "t0.npz"
    arrays = dict(np.load(path))
    arrays[key] = value
    np.savez_compressed(path, **arrays)
    with pytest.raises(ValueError) as info:
        evaluate_cache(_FixedEstimator(np.ones((2, 2), np.float32)), tmp_path / "cache", progress=False)
    assert str(info.value).startswith(f"{path}: {message}")


def _cli_cache(folder):
    """A one-frame 32 x 64 cache with the shipped student's radar channels, for the eval command."""
    gt = np.zeros((32, 64), np.float32)
    gt[5:20, 5:20] = 15.0
    radar = np.zeros((32, 64), np.float32)
    radar[10, 10] = 12.0
    _write_cache(folder, gt, gt, radar)
    return folder


@pytest.mark.parametrize("args, message", [
    (["--device", "bogus"], "argument --device: 'bogus' is not one of auto, cpu, cuda, cuda:N"),
    (["--limit", "0"], "argument --limit: must be >= 1, got '0'"),
    (["--limit", "-2"], "argument --limit: must be >= 1, got '-2'"),
    (["--max-panels", "-1"], "argument --max-panels: must be >= 1, got '-1'"),
    # Audit 2026-12-06: 1e300 m overflowed the float32 baseline map to inf (a numpy warning on stderr)
    (["--constant-depth", "1e300"], "argument --constant-depth: must be at most 3.403e+38 (float32), got '1e300'"),
])
def test_eval_bad_arguments_one_line_exit_2(tmp_path, capsys, args, message):
    from xdrcdepth_core.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--data", str(tmp_path), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth eval: error: {message}") and err.count("\n") == 1


def test_eval_json_path_through_a_file_is_refused_before_the_work(tmp_path, capsys):
    from xdrcdepth_core.cli import main

    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "x.json"
    assert main(["eval", "--data", str(_cli_cache(tmp_path / "cache")), "--json", str(target), "--device", "cpu",
                 "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""                                   # no table: nothing was evaluated
    assert captured.err.startswith(f"xdrcdepth eval: cannot write {target}: ") and captured.err.count("\n") == 1


def test_eval_panels_naming_a_file_is_refused_before_any_model_is_loaded(tmp_path, capsys):
    """A black-box run: ``--panels file.txt`` failed with exit 1 once the model was loaded (or after the whole
    evaluation); an output path unusable from the start is a bad argument, found before any work."""
    from xdrcdepth_core.cli import main

    (tmp_path / "file.txt").write_text("mine")
    checkpoint = tmp_path / "absent.pt"           # the model would be loaded first: its error would come instead
    assert main(["eval", "--data", str(_cli_cache(tmp_path / "cache")), "--panels", str(tmp_path / "file.txt"),
                 "--checkpoint", str(checkpoint), "--device", "cpu", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"xdrcdepth eval: cannot write into {tmp_path / 'file.txt'}: it is a file, give a folder\n"
    assert captured.out == "" and (tmp_path / "file.txt").read_text() == "mine"


def test_eval_plain_pickle_checkpoint_is_one_line_without_warnings(tmp_path, capsys):
    """torch warns about the pickle protocol before refusing such a file: that warning must not leak."""
    import pickle
    import warnings

    from xdrcdepth_core.cli import main

    checkpoint = tmp_path / "ck.pkl"
    checkpoint.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["eval", "--data", str(tmp_path), "--checkpoint", str(checkpoint), "--device", "cpu"]) == 2
    assert [str(w.message) for w in caught] == []
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth eval: cannot read checkpoint {checkpoint}") and err.count("\n") == 1


def test_eval_panel_names_are_safe_file_names_of_the_token(tmp_path, capsys):
    """Audit 2026-12-06: the panel's file name was the cached token as it is, and cache files are untrusted: a
    token ``/../../escaped`` wrote ``<panels>/0000_/../../escaped.png``, i.e. outside the panels folder (over any
    file of that name), and a NUL byte ended the command with "embedded null byte", naming no file."""
    from xdrcdepth_core.cli import main

    cache = _cli_cache(tmp_path / "cache")
    arrays = dict(np.load(cache / "t0.npz"))
    np.savez(cache / "t0.npz", **{**arrays, "token": np.array("/../../escaped")})
    np.savez(cache / "t1.npz", **{**arrays, "token": np.array("a\x00b")})
    panels = tmp_path / "out" / "panels"
    assert main(["eval", "--data", str(cache), "--panels", str(panels), "--device", "cpu", "--no-progress"]) == 0
    # every character but letters, digits, "_", "-" and "." becomes "_"
    assert sorted(p.name for p in panels.iterdir()) == ["0000__.._.._escaped.png", "0001_a_b.png"]
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["0000__.._.._escaped.png", "0001_a_b.png"]
    assert capsys.readouterr().err == ""


def test_token_file_name_by_hand():
    from xdrcdepth_core.file_names import MAX_STEM, token_file_name

    assert token_file_name("ca9a282c9e77460f8360f564131a8af5") == "ca9a282c9e77460f8360f564131a8af5"
    assert token_file_name("../../x") == "_.._x"          # "..", "/", "..", "/", "x": dots kept, no leading dot
    assert token_file_name("/etc/passwd") == "_etc_passwd"
    assert token_file_name("..") == "_" and token_file_name("") == "_" and token_file_name(".hidden") == "hidden"
    assert token_file_name("a b\x00c\nd") == "a_b_c_d"
    assert token_file_name("x" * 300) == "x" * MAX_STEM


def test_eval_with_no_ground_truth_pixel_scores_nothing_and_exits_1(tmp_path, capsys):
    """Audit 2026-12-06: a cache whose frames have no LiDAR pixel within the caps ended with exit 0 and a summary
    of NaN scores ("MAE@80 m (auto GT): model nan m, radar_only nan m"). The tables and JSON are still written
    (0 images, null metrics); the summary is one line on stderr saying nothing was scored, exit 1."""
    from xdrcdepth_core.cli import main

    cache = _cli_cache(tmp_path / "cache")
    arrays = dict(np.load(cache / "t0.npz"))
    far = np.full((32, 64), 95.0, np.float32)                  # LiDAR beyond the largest cap (80 m) only
    np.savez(cache / "t0.npz", **{**arrays, "depth_gt": far, "depth_gt_single": far})
    report = tmp_path / "eval.json"
    assert main(["eval", "--data", str(cache), "--json", str(report), "--device", "cpu", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"xdrcdepth eval: no frame of {cache} has auto ground truth within 0-80 m: nothing scored\n"
    assert "eval: 1 frames" not in captured.out and "nan m" not in captured.out
    results = json.loads(report.read_text())["results"]
    assert results["model"]["auto"]["80"]["images"] == 0 and results["model"]["auto"]["80"]["mae"] is None


def test_a_file_given_as_cache_folder_is_named_as_such(tmp_path):
    from xdrcdepth_core.evaluation.evaluate import cache_files

    (tmp_path / "t0.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=f"^{tmp_path / 't0.npz'} is not a folder \\(give the cache folder"):
        cache_files(tmp_path / "t0.npz")


def test_eval_of_a_ground_truth_the_cache_lacks_is_refused_before_any_frame(tmp_path, capsys):
    """Audit 2026-12-06: `--gt exact` on a cache of real recordings (no renderer depth) ran the model over every
    frame, printed all-NaN tables, then exit 1. train refuses the same eval.gt up front; eval now does too."""
    from xdrcdepth_core.cli import main

    cache = _cli_cache(tmp_path / "cache")
    assert "depth_exact" not in np.load(cache / "t0.npz").files
    report = tmp_path / "eval.json"
    assert main(["eval", "--data", str(cache), "--gt", "exact", "--json", str(report), "--device", "cpu",
                 "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"xdrcdepth eval: {cache / 't0.npz'}: no depth_exact for --gt exact (cache {cache}; "
                            "'exact' needs a synthetic folder's cache)\n")
    assert captured.out == "" and not report.exists()


def test_eval_teacher_without_panels_is_refused_before_any_model_is_loaded(tmp_path, capsys):
    """--teacher only adds the teacher's Grad-CAM to the panels: without --panels it was silently ignored (after
    loading the teacher). The teacher named here does not exist: the flag is refused first."""
    from xdrcdepth_core.cli import main

    assert main(["eval", "--data", str(tmp_path), "--teacher", str(tmp_path / "no_teacher.pt")]) == 2
    assert capsys.readouterr().err == ("xdrcdepth eval: --teacher puts the teacher's Grad-CAM into the --panels "
                                       "pictures; it does nothing without --panels\n")
