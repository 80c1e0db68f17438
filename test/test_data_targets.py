"""Training targets of the data pipeline, values worked out by hand: annotated boxes in the image, CaFNet's
radar-confidence labels, the two LiDAR ground truths, the renderer's depth, and resizes/crops that keep them
aligned (including resizes that scale height and width differently)."""

from pathlib import Path

import numpy as np
import pytest
from test_nuscenes_dataset import build_folder

from xdrcdepth_core.data.boxes import CameraBoxes, box_rectangles, points_in_boxes
from xdrcdepth_core.data.geometry import scale_intrinsics
from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset
from xdrcdepth_core.data.radar_confidence import IGNORE, patch_half_size, radar_confidence_gt, rectangle_pixels
from xdrcdepth_core.data.sample_transforms import Crop, Resize

K_SMALL = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 25.0], [0.0, 0.0, 1.0]])


def _cuboid(x, y, z):
    """8 x 3 corners of the axis-aligned box spanning the given (min, max) ranges."""
    return np.array([[a, b, c] for a in x for b in y for c in z], dtype=float)


def test_box_rectangles_clip_to_the_near_plane_and_the_image():
    corners = np.stack([
        _cuboid((-1, 1), (-1, 1), (18, 22)),        # ahead: u = 50 +- 100 / 18
        _cuboid((1, 2), (-0.5, 0.5), (-1, 3)),      # reaches behind the camera
        _cuboid((-1, 1), (-1, 1), (-5, -1)),        # behind
        _cuboid((-30, -20), (-1, 1), (5, 6)),       # left of the image: u <= 50 - 100 * 20 / 6 < 0
    ])
    rects, valid = box_rectangles(corners, K_SMALL, (50, 100))
    assert valid.tolist() == [True, True, False, False]
    # pixel-edge coordinates = projection + 0.5
    np.testing.assert_allclose(rects[0], [50 - 100 / 18 + 0.5, 25 - 100 / 18 + 0.5,
                                          50 + 100 / 18 + 0.5, 25 + 100 / 18 + 0.5])
    # part in front (z >= 0.1): x from 1 to 2; nearest left edge at z = 3 -> u = 50 + 100 / 3; the near
    # plane reaches u = 50 + 100 * 2 / 0.1 (clipped to 100) and v = 25 +- 500 (clipped to 0 / 50)
    np.testing.assert_allclose(rects[1], [50 + 100 / 3 + 0.5, 0, 100, 50])
    assert not rects[2:].any()


def test_points_in_boxes_with_tolerance_and_overlaps():
    yaw90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # box length (local x) along camera y
    boxes = CameraBoxes(centres=np.array([[0.0, 0, 10], [0, 0, 12], [5, 0, 10]]),
                        rotations=np.stack([np.eye(3), np.eye(3), yaw90]),
                        wlh=np.array([[2.0, 4, 2], [2, 4, 2], [1, 6, 1]]), velocity=np.zeros((3, 2)),
                        categories=("vehicle.car", "vehicle.car", "vehicle.truck"))
    points = np.array([[2.4, 0, 10],    # box 0: local x (length) 2.4 <= 4 / 2 + 0.5
                       [2.6, 0, 10],    # 2.6 > 2.5 -> none
                       [0, 1.4, 11.2],  # boxes 0 and 1 (y 1.4 <= 1.5, z 1.2 / 0.8 <= 1.5): box 1's centre is nearer
                       [5, 3.4, 10],    # box 2: camera y along its length, 3.4 <= 6 / 2 + 0.5
                       [6.1, 0, 10],    # box 2's width: 1.1 > 1 / 2 + 0.5 -> none
                       [0, 0.5, 12.5]])  # box 1 without tolerance
    assert points_in_boxes(points, boxes).tolist() == [0, -1, 1, 2, -1, 1]
    assert points_in_boxes(points, boxes, np.array([True, False, True])).tolist() == [0, -1, 0, 2, -1, -1]
    assert points_in_boxes(points, boxes, tolerance=0.0).tolist() == [-1, -1, -1, -1, -1, 1]


def test_confidence_labels_by_hand():
    h, w = 20, 30
    depth_gt = np.zeros((h, w), np.float32)
    # returns (row, col, depth, box): a free one (patch rows 8..12, cols 2..8) and one tied to box 0
    rows, cols, depth, box = np.array([10, 10]), np.array([5, 20]), np.array([10.0, 20.0]), np.array([-1, 0])
    rects = np.array([[17.2, 3.0, 25.0, 12.4], [0, 0, 0, 0]])  # box 0: cols 17..24, rows 3..11
    valid = np.array([True, False])
    depth_gt[8, 2] = 10.3      # patch corner, |0.3| < 0.4 -> positive
    depth_gt[12, 8] = 9.61     # other corner, 0.39 -> positive
    depth_gt[13, 5] = 10.0     # one row below the patch -> negative
    depth_gt[10, 9] = 10.0     # one column right of the patch -> negative
    depth_gt[11, 4] = 10.45    # 0.45 -> negative
    depth_gt[3, 17] = 20.2     # box corner pixel (centre 17.5 >= 17.2, 3.5 >= 3.0) -> positive
    depth_gt[12, 20] = 20.0    # centre row 12.5 > 12.4: outside the box -> negative
    depth_gt[10, 16] = 20.0    # centre 16.5 < 17.2 -> negative (the tied return has no patch)
    depth_gt[0, 29] = 5.0      # far from every return -> negative
    labels = radar_confidence_gt(rows, cols, depth, box, rects, valid, depth_gt, half_hw=(2, 3))
    assert labels.dtype == np.uint8
    expected = np.full((h, w), IGNORE, np.uint8)
    for r, c in [(13, 5), (10, 9), (11, 4), (12, 20), (10, 16), (0, 29)]:
        expected[r, c] = 0
    for r, c in [(8, 2), (12, 8), (3, 17)]:
        expected[r, c] = 1
    np.testing.assert_array_equal(labels, expected)

    # a return tied to a box without a valid rectangle falls back to a patch; overlapping regions are united
    box[1] = 1
    rows, cols, depth, box = np.r_[rows, 10], np.r_[cols, 7], np.r_[depth, 5.0], np.r_[box, -1]
    # the third return's patch (rows 8..12, cols 4..10) covers (12, 8), which does not match 5 m
    labels = radar_confidence_gt(rows, cols, depth, box, rects, valid, depth_gt, half_hw=(2, 3))
    assert labels[12, 8] == 1 and labels[8, 2] == 1  # still positive through the first return
    assert labels[10, 16] == 0 and labels[3, 17] == 0
    depth_gt[10, 18] = 20.1    # in the patch of the untied return at (10, 20): cols 17..23
    labels = radar_confidence_gt(rows, cols, depth, box, rects, valid, depth_gt, half_hw=(2, 3))
    assert labels[10, 18] == 1
    none = radar_confidence_gt(rows[:0], cols[:0], depth[:0], box[:0], rects, valid, depth_gt)
    np.testing.assert_array_equal(none, np.where(depth_gt > 0, 0, IGNORE))
    # default patch: CaFNet's 50 x 150 rows x columns on each side at 900 x 1600, scaled per axis
    assert patch_half_size((900, 1600)) == (50, 150)
    assert patch_half_size((352, 704)) == (20, 66)   # 19.56 -> 20, 66.0
    assert patch_half_size((225, 400)) == (13, 38)   # 12.5 -> 13 (half up), 37.5 -> 38
    assert rectangle_pixels(np.array([0.0, 0.0, 30.0, 20.0]), (20, 30)) == (slice(0, 20), slice(0, 30))


def _rewrite_key_lidar(folder, dataset, points):
    lidar = dataset.nusc.get("sample", dataset.sample_tokens[0])["data"]["LIDAR_TOP"]
    path = Path(dataset.nusc.get_sample_data_path(lidar))
    np.array([(*p, 1.0, 0.0) for p in points], dtype="<f4").tofile(path)


def test_dataset_boxes_labels_and_two_ground_truths(tmp_path):
    """Hand-built scene (test_nuscenes_dataset) with a car and a traffic cone annotated.

    Camera at t = 1.05 s (ego x 10.5). Car: global (30.5, 0, 0) -> ego (20, 0, 0); corners at depth 18..22,
    x, y +- 1 -> u = 50 +- 100 / 18, v = 25 +- 100 / 18; range 20 m; velocity (31.5 - 30.5, 0.5) / 0.5 s.
    Cone: (20, 2, 0) -> ego (9.5, 2, 0); corners depth 9.25..9.75, ego y 1.75..2.25 (camera x = -y),
    camera y +- 0.5: u from 50 - 225 / 9.25 to 50 - 175 / 9.75, v = 25 +- 50 / 9.25; range sqrt(9.5^2 + 2^2).
    Radar returns at t = 1.0 s: (20, 0) -> depth 19.5 at (25, 50), inside the car (tied to its rectangle, rows
    20..30, cols 45..55); (10, 2) -> depth 9.5 at (25, 29), inside the cone, which does not tie returns: patch
    of 3 rows x 9 columns on each side at 50 x 100 (50 * 50 / 900 = 2.8, 150 * 100 / 1600 = 9.4).
    """
    folder = build_folder(tmp_path / "annotated", annotations=True)
    plain = NuScenesDepthDataset(folder, "v1.0-test")
    assert set(plain[0]) == {"image", "radar", "depth_gt", "K", "token"}
    # LiDAR key frame at t = 1.0 (lidar 1 m above the ego origin): camera depth = x - 0.5,
    # u = 50 - 100 y / depth, v = 25 - 100 (z + 1) / depth
    points = {(30, 54): (20.25, -0.79, -1.9875, 1),   # depth 19.75 in the car's rectangle -> positive
              (25, 58): (20.1, -1.568, -1, 0),         # 19.6 in the car return's would-be patch -> negative
              (27, 33): (9.8, 1.581, -1.186, 1),       # 9.3 in the cone return's patch -> positive
              (28, 38): (10.39, 1.1868, -1.2967, 1),   # 9.89, patch corner, |0.39| -> positive
              (29, 33): (10.0, 1.615, -1.38, 0),       # 9.5, one row below the patch -> negative
              (25, 25): (15.5, 3.75, -1, 0),           # 15 in the patch -> negative
              (10, 80): (40.5, -12, 5, 0)}             # 40, no region -> negative
    _rewrite_key_lidar(folder, plain, [p[:3] for p in points.values()])
    dataset = NuScenesDepthDataset(folder, "v1.0-test", boxes=True, confidence_gt=True, exact_depth=True,
                                   nusc=plain.nusc)
    sample = dataset[0]
    assert "depth_gt_single" not in sample and "depth_exact" not in sample  # 1 sweep; no exact_depth folder
    assert sample["boxes"].dtype == np.float32
    d, c = 100 / 18, 175 / 9.75
    np.testing.assert_allclose(sample["boxes"], [
        [50 - d + 0.5, 25 - d + 0.5, 50 + d + 0.5, 25 + d + 0.5, 20, 2, 1],
        [50 - 225 / 9.25 + 0.5, 25 - 50 / 9.25 + 0.5, 50 - c + 0.5, 25 + 50 / 9.25 + 0.5, np.hypot(9.5, 2), 0, 0],
    ], rtol=1e-6, atol=1e-4)
    labels = sample["radar_confidence_gt"]
    expected = np.full((50, 100), IGNORE, np.uint8)
    for (r, col), p in points.items():
        expected[r, col] = p[3]
        assert sample["depth_gt"][r, col] == pytest.approx(p[0] - 0.5, abs=1e-5)
    np.testing.assert_array_equal(labels, expected)

    # three sweeps: depth_gt accumulates, depth_gt_single is the key frame alone; labels use depth_gt
    three = NuScenesDepthDataset(folder, "v1.0-test", lidar_sweeps=3, boxes=True, confidence_gt=True,
                                 nusc=plain.nusc)[0]
    np.testing.assert_array_equal(three["depth_gt_single"], sample["depth_gt"])
    assert three["depth_gt"][25, 50] == pytest.approx(20.0) and three["depth_gt"][25, 39] == pytest.approx(9.5)
    assert np.count_nonzero(three["depth_gt"]) == len(points) + 2
    # (25, 50): 20.0 vs the car return's 19.5 -> negative; (25, 39): 9.5 lies outside every region -> negative
    assert three["radar_confidence_gt"][25, 50] == 0 and three["radar_confidence_gt"][25, 39] == 0

    # a sample without LiDAR: depth_gt_single all zero, labels all ignore; the car moved on (31.5, 0.5):
    # sample 1 camera at 1.55 s (ego x 15.5) -> ego (16, 0.5, 0), velocity from the previous annotation
    second = NuScenesDepthDataset(folder, "v1.0-test", lidar_sweeps=3, boxes=True, confidence_gt=True,
                                  require_lidar=False, nusc=plain.nusc)[1]
    assert not second["depth_gt_single"].any() and (second["radar_confidence_gt"] == IGNORE).all()
    assert len(second["boxes"]) == 1
    np.testing.assert_allclose(second["boxes"][0, 4:], [np.hypot(16, 0.5), 2, 1], rtol=1e-6)


def test_exact_depth_is_read_and_checked(tmp_path):
    folder = build_folder(tmp_path / "exact")
    dataset = NuScenesDepthDataset(folder, "v1.0-test", exact_depth=True)
    camera = dataset.nusc.get("sample", dataset.sample_tokens[0])["data"]["CAM_FRONT"]
    path = folder / "exact_depth" / f"{camera}.npy"
    path.parent.mkdir()
    exact = np.arange(5000, dtype=np.float32).reshape(50, 100)
    np.save(path, exact)
    np.testing.assert_array_equal(dataset[0]["depth_exact"], exact)
    np.save(path, exact[:, :99])
    with pytest.raises(ValueError, match=rf"{camera}\.npy: exact depth of shape \(50, 99\)"):
        dataset[0]
    path.write_bytes(b"junk")
    with pytest.raises(ValueError, match=rf"{camera}\.npy: cannot read exact depth"):
        dataset[0]
    # a 100-byte file declaring 100000 x 100000 float32 (37 GiB): refused without allocating it (np.load read
    # a real file by allocating the declared shape first)
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
        f.write(b"\0" * 16)
    with pytest.raises(ValueError, match=rf"{camera}\.npy: cannot read exact depth \(mmap length is greater"):
        dataset[0]
    np.save(path, np.full((50, 100), "x"))
    with pytest.raises(ValueError, match=rf"{camera}\.npy: exact depth of shape \(50, 100\) \(<U1\)"):
        dataset[0]


def _full_size_sample():
    """900 x 1600 sample with a few sparse points, a label map on them, an exact depth encoding its pixel
    (row * 10000 + col) and a box."""
    h, w = 900, 1600
    depth_gt = np.zeros((h, w), np.float32)
    labels = np.full((h, w), IGNORE, np.uint8)
    depth_gt[450, 800], labels[450, 800] = 12.0, 0
    depth_gt[451, 801], labels[451, 801] = 10.0, 1
    depth_gt[10, 1590], labels[10, 1590] = 30.0, 1
    radar = np.zeros((4, h, w), np.float32)
    radar[:, 450, 800] = [12.5, 5, 1, 2]
    rows, cols = np.mgrid[0:h, 0:w]
    return {"image": np.zeros((h, w, 3), np.uint8), "radar": radar, "depth_gt": depth_gt,
            "depth_gt_single": depth_gt * (depth_gt > 11), "radar_confidence_gt": labels,
            "depth_exact": (rows * 10000 + cols).astype(np.float32),
            "boxes": np.array([[100, 200, 500, 700, 20, 1, 2]], np.float32),
            "K": np.array([[1266.0, 0, 816.0], [0, 1266.0, 491.0], [0, 0, 1]]), "token": "t"}


def test_resize_keeps_every_map_aligned_with_different_axis_scales():
    sample = _full_size_sample()
    out = Resize(352, 704)(sample)   # sy = 352 / 900 = 0.39111, sx = 704 / 1600 = 0.44
    sy, sx = 352 / 900, 0.44
    np.testing.assert_allclose(out["K"], [[1266 * sx, 0, 816.5 * sx - 0.5], [0, 1266 * sy, 491.5 * sy - 0.5],
                                          [0, 0, 1]])
    np.testing.assert_allclose(out["K"], scale_intrinsics(sample["K"], (900, 1600), (352, 704)))
    # (450, 800) -> (floor(450.5 sy), floor(800.5 sx)) = (176, 352); (451, 801) -> (floor(176.59), floor(352.66))
    # = the same pixel: the nearer point (10 m, label 1) wins, its label comes along
    assert out["depth_gt"][176, 352] == 10.0 and out["radar_confidence_gt"][176, 352] == 1
    # (10, 1590) -> (floor(4.11), floor(699.8)) = (4, 699)
    assert out["depth_gt"][4, 699] == 30.0 and out["radar_confidence_gt"][4, 699] == 1
    assert np.count_nonzero(out["depth_gt"]) == 2
    assert ((out["radar_confidence_gt"] != IGNORE) == (out["depth_gt"] > 0)).all()
    # depth_gt_single holds only the 12 m and 30 m points: no collision, 12 m stays
    assert out["depth_gt_single"][176, 352] == 12.0 and np.count_nonzero(out["depth_gt_single"]) == 2
    np.testing.assert_allclose(out["radar"][:, 176, 352], [12.5, 5, 1, 2])
    # depth_exact nearest: target (i, j) takes source (floor((i + 0.5) 900 / 352), floor((j + 0.5) 1600 / 704))
    assert out["depth_exact"][0, 0] == 1 * 10000 + 1
    assert out["depth_exact"][176, 352] == 451 * 10000 + 801  # floor(451.28), floor(801.14)
    assert out["depth_exact"][351, 703] == 898 * 10000 + 1598  # floor(898.72), floor(1598.86)
    np.testing.assert_allclose(out["boxes"], [[100 * sx, 200 * sy, 500 * sx, 700 * sy, 20, 1, 2]], rtol=1e-6)
    assert out["image"].shape == (352, 704, 3) and out["radar_confidence_gt"].dtype == np.uint8

    out = Resize(450, 1600)(sample)  # rows halved, columns kept
    np.testing.assert_allclose(out["K"], [[1266, 0, 816], [0, 633, 491.5 * 0.5 - 0.5], [0, 0, 1]])
    # (450, 800) -> (225, 800); (451, 801) -> (floor(225.75), 801) = (225, 801): no collision
    assert out["depth_gt"][225, 800] == 12.0 and out["radar_confidence_gt"][225, 800] == 0
    assert out["depth_gt"][225, 801] == 10.0 and out["radar_confidence_gt"][225, 801] == 1
    assert out["depth_exact"][225, 801] == 451 * 10000 + 801   # source row floor(225.5 * 2) = 451
    assert out["depth_exact"][0, 1599] == 1 * 10000 + 1599
    np.testing.assert_allclose(out["boxes"], [[100, 100, 500, 350, 20, 1, 2]])


def test_crop_moves_boxes_and_maps():
    sample = _full_size_sample()
    out = Crop(top=400, left=300, height=352, width=704)(sample)
    assert out["depth_gt"][51, 501] == 10.0 and out["radar_confidence_gt"][51, 501] == 1
    assert out["depth_exact"][0, 0] == 400 * 10000 + 300 and out["depth_gt_single"].shape == (352, 704)
    # box x 100..500 -> -200..200 -> clipped 0..200; y 200..700 -> -200..300
    np.testing.assert_allclose(out["boxes"], [[0, 0, 200, 300, 20, 1, 2]])
    assert len(Crop(0, 600, 100, 100)(sample)["boxes"]) == 0  # box entirely left of the window
    assert Crop(0, 600, 100, 100)(sample)["boxes"].shape == (0, 7)
