"""CacheDataset on tiny hand-made cache files: tensors in the contract's layout, flips that keep every map, box
and K aligned, deterministic augmentation, resizing to another input size, collate, unreadable files."""

import json

import numpy as np
import pytest
import torch
from test_nuscenes_dataset import build_folder

from xdrcdepth_core.cli import main
from xdrcdepth_core.data.cache_dataset import CacheDataset, collate, hflip_sample
from xdrcdepth_core.data.prepare import write_sample
from xdrcdepth_core.preprocess import IMAGENET_MEAN, IMAGENET_STD, RADAR_CHANNEL_SCALES

CHANNELS = ("depth", "rcs", "vx_comp", "vy_comp")
H, W = 4, 6


def _sample(token, seed=0, boxes=2):
    rng = np.random.default_rng(seed)
    radar = np.zeros((4, H, W), np.float32)
    radar[:, 1, 1] = [10.0, 5.0, 2.0, 3.0]
    depth = np.zeros((H, W), np.float32)
    depth[2, 0], depth[2, 5] = 7.0, 8.0
    labels = np.full((H, W), 255, np.uint8)
    labels[2, 0], labels[2, 5] = 1, 0
    return {"image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "radar": radar, "depth_gt": depth,
            "depth_gt_single": depth * (depth < 7.5), "radar_confidence_gt": labels,
            "depth_exact": np.arange(H * W, dtype=np.float32).reshape(H, W),
            "boxes": np.array([[1, 0.5, 3, 2.5, 30, 4, -1], [0, 0, 6, 4, 10, 0, 0.5]], np.float32)[:boxes],
            "K": np.array([[5.0, 0, 2.0], [0, 5.0, 1.5], [0, 0, 1]]), "token": token}


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / "cache"
    for i, token in enumerate(["b", "a", "c"]):
        write_sample(folder / f"{token}.npz", _sample(token, seed=i, boxes=2 if token != "c" else 0), CHANNELS,
                     json.dumps({}))
    return folder


def test_tensors_follow_the_batch_layout(cache):
    dataset = CacheDataset(cache, max_boxes=3)
    assert len(dataset) == 3 and [f.stem for f in dataset.files] == ["a", "b", "c"]
    s = dataset[1]
    raw = _sample("b", seed=0)
    assert s["token"] == "b" and s["index"] == 1 and s["radar_channels"] == list(CHANNELS)
    assert s["image"].shape == (3, H, W) and s["image"].dtype == torch.float32
    pixel = raw["image"][3, 4] / 255.0
    np.testing.assert_allclose(s["image"][:, 3, 4], (pixel - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-5)
    np.testing.assert_allclose(s["radar_raw"][:, 1, 1], [10, 5, 2, 3])
    np.testing.assert_allclose(s["radar"][:, 1, 1], [10 / 100, 5 / 50, 2 / 20, 3 / 20])
    assert [RADAR_CHANNEL_SCALES[c] for c in CHANNELS] == [100, 50, 20, 20]
    assert s["depth_gt"].shape == (1, H, W) and s["depth_gt"][0, 2, 5] == 8.0
    assert s["depth_gt_single"][0, 2, 5] == 0 and s["depth_gt_single"][0, 2, 0] == 7.0
    assert s["radar_confidence_gt"].dtype == torch.float32
    assert s["radar_confidence_gt"][0, 2, 0] == 1 and s["radar_confidence_gt"][0, 2, 5] == 0
    assert (s["radar_confidence_gt"] == -1).sum() == H * W - 2
    assert s["boxes"].shape == (3, 7) and s["boxes_valid"].tolist() == [True, True, False]
    np.testing.assert_allclose(s["boxes"][0], [1, 0.5, 3, 2.5, 30, 4, -1])
    assert not s["boxes"][2].any()
    assert s["K"].dtype == torch.float32 and s["depth_exact"][0, 3, 5] == 23
    # more boxes than max_boxes: the nearest are kept
    one = CacheDataset(cache, max_boxes=1)[1]
    np.testing.assert_allclose(one["boxes"][0], [0, 0, 6, 4, 10, 0, 0.5])
    assert CacheDataset(cache)[2]["boxes_valid"].sum() == 0


def test_hflip_mirrors_maps_boxes_and_intrinsics(cache):
    teacher = torch.arange(2 * 3, dtype=torch.float32).reshape(1, 2, 3)  # a map at half resolution
    extra = lambda index: {"teacher_depth": torch.full((1, H, W), float(index)), ("saliency", 4): teacher}
    plain = CacheDataset(cache, extra=extra)[0]
    flipped = hflip_sample(plain)
    for key in ("image", "radar_raw", "depth_gt", "depth_gt_single", "radar_confidence_gt", "depth_exact",
                "teacher_depth"):
        expected = torch.flip(plain[key], dims=(-1,))
        if key == "radar_raw":
            expected[3] = -expected[3]  # vy_comp: a mirrored scene moves the other way
        torch.testing.assert_close(flipped[key], expected, msg=key)
    torch.testing.assert_close(flipped[("saliency", 4)], torch.tensor([[[2.0, 1, 0], [5, 4, 3]]]))
    # return at column 1 -> W - 1 - 1 = 4; vy negated in the scaled raster too
    np.testing.assert_allclose(flipped["radar_raw"][:, 1, 4], [10, 5, 2, -3])
    assert flipped["radar"][3, 1, 4] == -plain["radar"][3, 1, 1]
    # boxes in pixel-edge coordinates: x0, x1 -> W - x1, W - x0; vy negated; padding rows stay zero
    np.testing.assert_allclose(flipped["boxes"][:2], [[3, 0.5, 5, 2.5, 30, 4, 1], [0, 0, 6, 4, 10, 0, -0.5]])
    assert not flipped["boxes"][2:].any()
    # K: cx -> W - 1 - cx. A point at X = 0.4, Z = 2 projects to u = 5 * 0.2 + 2 = 3; mirrored (X = -0.4)
    # with the flipped K to 5 * -0.2 + 3 = 2 = W - 1 - 3
    assert flipped["K"][0, 2] == 3.0 and flipped["K"][1, 2] == 1.5
    assert hflip_sample(flipped, negate_lateral_velocity=True)["boxes"].equal(plain["boxes"])
    assert torch.equal(hflip_sample(flipped)["radar"], plain["radar"])
    kept = hflip_sample(plain, negate_lateral_velocity=False)
    assert kept["radar_raw"][3, 1, 4] == 3 and kept["boxes"][0, 6] == -1
    assert plain["radar_raw"][3, 1, 1] == 3  # the input is not modified


def test_augmentation_is_deterministic_per_seed_epoch_and_index(cache):
    def run(seed, epoch):
        dataset = CacheDataset(cache, augment={"hflip": 0.5, "color": 0.1}, seed=seed)
        dataset.set_epoch(epoch)
        return [dataset[i] for i in range(len(dataset))]

    first, again = run(0, 0), run(0, 0)
    for a, b in zip(first, again):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth_gt"], b["depth_gt"])
    plain = CacheDataset(cache)
    flips = {}
    for seed in range(4):
        for epoch in range(3):
            for i, s in enumerate(run(seed, epoch)):
                flipped = not torch.equal(s["depth_gt"], plain[i]["depth_gt"])
                flips[seed, epoch, i] = flipped
                reference = hflip_sample(plain[i]) if flipped else plain[i]
                for key in ("radar", "depth_gt", "radar_confidence_gt", "boxes", "K"):
                    assert torch.equal(s[key], reference[key]), key
                # colour jitter: factors within 0.9..1.1 change the image but keep it in range
                assert not torch.equal(s["image"], reference["image"])
                rgb = s["image"] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
                assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
    assert 0.25 < np.mean(list(flips.values())) < 0.75
    with pytest.raises(ValueError, match="unknown augmentation option"):
        CacheDataset(cache, augment={"vflip": 0.5})


def test_input_size_resizes_with_the_shared_transforms(cache):
    s = CacheDataset(cache, input_hw=(2, 3))[1]
    assert s["image"].shape == (3, 2, 3) and s["radar"].shape == (4, 2, 3) and s["depth_gt"].shape == (1, 2, 3)
    # K scaled by 0.5: cx (2 + 0.5) / 2 - 0.5, cy (1.5 + 0.5) / 2 - 0.5
    np.testing.assert_allclose(s["K"], [[2.5, 0, 0.75], [0, 2.5, 0.5], [0, 0, 1]])
    np.testing.assert_allclose(s["boxes"][0], [0.5, 0.25, 1.5, 1.25, 30, 4, -1])
    # GT (2, 0) -> (1, 0) with its label; (2, 5) -> (1, 2); radar (1, 1) -> (0, 0)
    assert s["depth_gt"][0, 1, 0] == 7 and s["radar_confidence_gt"][0, 1, 0] == 1
    assert s["depth_gt"][0, 1, 2] == 8 and s["radar_confidence_gt"][0, 1, 2] == 0
    assert s["radar_raw"][0, 0, 0] == 10
    # exact depth nearest: target (i, j) takes source (2 i + 1, 2 j + 1)
    np.testing.assert_allclose(s["depth_exact"][0], [[7, 9, 11], [19, 21, 23]])


def test_collate_and_dataloader(cache):
    dataset = CacheDataset(cache, max_boxes=4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["token"] == ["a", "b", "c"] and batch["radar_channels"] == list(CHANNELS)
    assert batch["image"].shape == (3, 3, H, W) and batch["depth_gt"].shape == (3, 1, H, W)
    assert batch["boxes"].shape == (3, 4, 7) and batch["boxes_valid"].dtype == torch.bool
    assert batch["index"].tolist() == [0, 1, 2] and batch["K"].shape == (3, 3, 3)
    samples = [dataset[0], dataset[1]]
    del samples[1]["depth_exact"]
    with pytest.raises(ValueError, match="samples a and b have different keys: .*depth_exact"):
        collate(samples)


def test_unreadable_files_are_named(cache):
    (cache / "b.npz").write_bytes(b"not a zip")
    dataset = CacheDataset(cache)
    with pytest.raises(ValueError, match=r"b\.npz: cannot read cache file"):
        dataset[1]
    np.savez(cache / "b.npz", image=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match=r"b\.npz: cannot read cache file"):
        dataset[1]
    np.savez(cache / "b.npz", image=np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match=r"b\.npz: cache file lacks \['K', 'depth_gt'"):
        dataset[1]
    with pytest.raises(ValueError, match="no .npz cache files"):
        CacheDataset(cache / "nowhere")


def _rewrite(path, **changes):
    arrays = dict(np.load(path))
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize("changes, message", [
    ({"radar": np.where(np.arange(4 * H * W).reshape(4, H, W) == 7, np.nan, 0).astype(np.float32)},
     "radar holds NaN or infinite values (as float32)"),
    ({"radar": np.full((4, H, W), 1e39)}, "radar holds NaN or infinite values (as float32)"),   # inf as float32
    ({"radar": np.full((4, H, W), "a")}, f"radar is 4 x {H} x {W} <U1, expected 4 x {H} x {W} float32"),
    ({"radar_channels": np.array("depth")}, "radar_channels is a scalar <U5, expected a list of channel names"),
    ({"depth_gt": np.full((H, W), "x")}, f"depth_gt is {H} x {W} <U1, expected {H} x {W} float32"),
    ({"depth_gt": np.full((H, W), np.nan, np.float32)}, "depth_gt holds NaN or infinite values (as float32; 0 marks"),
    ({"depth_exact": np.full((H, W), np.inf, np.float32)}, "depth_exact holds NaN or infinite values"),
    ({"depth_exact": np.zeros((H, W + 1), np.float32)}, f"depth_exact is {H} x {W + 1} float32, expected {H} x {W}"),
    ({"K": np.eye(4)}, "K is 4 x 4 float64, expected 3 x 3 float"),
    ({"boxes": np.zeros((2, 6), np.float32)}, "boxes is 2 x 6 float32, expected N x 7 float32"),
])
def test_unusable_arrays_are_named_before_training_uses_them(cache, changes, message):
    """Audit 2026-12-06: training read cache files unchecked. A NaN radar value made every step non-finite
    (skipped), a text raster failed in preprocessing with a traceback naming no file, a 0-d channel list was a
    TypeError traceback, 6-column boxes a reshape error. The file and the array are named instead."""
    _rewrite(cache / "b.npz", **changes)
    with pytest.raises(ValueError) as info:
        CacheDataset(cache)[1]
    assert str(info.value).startswith(f"{cache / 'b.npz'}: {message}"), info.value


def test_a_file_with_other_radar_channels_is_named(cache):
    """A black-box run: a file of other channels in the folder failed in collate with 'samples with different radar
    channels: [[...], [...]]', naming no file; the trainer's hint then said 'replace it'."""
    _rewrite(cache / "b.npz", radar_channels=np.array(["x", "y", "z", "w"]))
    with pytest.raises(ValueError) as info:
        CacheDataset(cache)[1]
    assert str(info.value) == (f"{cache / 'b.npz'}: radar channels ['x', 'y', 'z', 'w'] differ from "
                               f"{list(CHANNELS)} of a.npz, the folder's first file (a cache holds one set of "
                               "channels)")


def test_a_file_declaring_huge_arrays_is_refused_before_any_is_allocated(cache):
    """A 200-byte file whose radar header declares 100000 x 100000 float32 (37 GiB): np.load trusts the header and
    allocates the shape first (a MemoryError traceback, or the process killed). The headers are read first."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (100_000, 100_000)})
    with zipfile.ZipFile(cache / "b.npz", "a") as archive:
        archive.writestr("radar_huge.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=r"b\.npz: cannot read cache file \(its arrays declare more than 1024 MiB "
                                         r"\(member radar_huge\.npy: 100000 x 100000 float32\); not a cache file\)"):
        CacheDataset(cache)[1]


def test_prepared_cache_loads_as_a_batch(tmp_path, capsys):
    """prepare -> CacheDataset -> collate on the annotated hand-built folder, flipped."""
    folder = build_folder(tmp_path / "annotated", annotations=True)
    out = tmp_path / "prepared"
    assert main(["prepare", "--dataroot", str(folder), "--version", "v1.0-test", "--out", str(out),
                 "--lidar-sweeps", "3", "--allow-missing-lidar"]) == 0
    capsys.readouterr()
    dataset = CacheDataset(out, augment={"hflip": 1.0})
    batch = collate([dataset[0], dataset[1]])
    assert set(batch) == {"image", "radar", "radar_raw", "radar_channels", "depth_gt", "depth_gt_single",
                          "radar_confidence_gt", "boxes", "boxes_valid", "K", "token", "index"}
    assert batch["boxes_valid"].sum() == 3  # car + cone in sample 0, the car in sample 1
    first = 0 if batch["boxes_valid"][0].sum() == 2 else 1
    # the car's box x0 = 50 - 100 / 18 + 0.5 flipped: x1' = 100 - x0; vy 1 -> -1
    car = batch["boxes"][first][batch["boxes"][first][:, 4] == 20][0]
    assert car[2].item() == pytest.approx(100 - (50 - 100 / 18 + 0.5), abs=1e-4) and car[6] == -1
    assert batch["K"][first][0, 2] == 49  # 100 - 1 - 50
