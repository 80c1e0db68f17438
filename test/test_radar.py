"""Radar filters and rasterisation against hand-computed values and the devkit reader."""

import numpy as np
from nuscenes.utils.data_classes import RadarPointCloud

from xdrcdepth_core.data.geometry import project_points, scale_intrinsics
from xdrcdepth_core.data.radar import (DEFAULT_CHANNELS, RadarPoints, devkit_filter_mask,
                                       rasterize_radar, read_radar_points, resize_sparse, scatter_nearest)
from xdrcdepth_core.data.radar_pcd import RADAR_FIELDS

K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
HW = (80, 100)
KF0_RADAR = "samples/RADAR_FRONT/n015-2018-07-24-11-22-45+0800__RADAR_FRONT__1532402927664178.pcd"


def test_default_filters_match_the_installed_devkit(nuscenes_samples):
    RadarPointCloud.default_filters()
    assert list(RadarPointCloud.invalid_states) == [0]
    assert list(RadarPointCloud.dynprop_states) == list(range(7))
    assert list(RadarPointCloud.ambig_states) == [3]
    for path in sorted((nuscenes_samples / "samples" / "RADAR_FRONT").glob("*.pcd"))[:6]:
        ours = read_radar_points(path)
        devkit = RadarPointCloud.from_file(str(path)).points
        np.testing.assert_array_equal(np.stack([ours.fields[f].astype(float) for f in RADAR_FIELDS]),
                                      devkit)
        np.testing.assert_array_equal(ours.xyz, devkit[:3].T)
    assert len(read_radar_points(nuscenes_samples / KF0_RADAR)) == 74
    assert len(read_radar_points(nuscenes_samples / KF0_RADAR, disable_filters=True)) == 125


def test_filter_mask_by_hand():
    fields = {"invalid_state": np.array([0, 1, 0, 0, 0]), "dyn_prop": np.array([0, 0, 7, 6, 1]),
              "ambig_state": np.array([3, 3, 3, 3, 4])}
    assert devkit_filter_mask(fields).tolist() == [True, False, False, True, False]


def test_rasterize_nearest_wins_and_channels():
    points = np.array([[0.0, 0.0, 10.0],    # u 50, v 40
                       [1.0, 0.0, 20.0],    # u 55, v 40
                       [0.01, 0.0, 12.0],   # u 50.08 -> same pixel as the first, farther: loses
                       [0.0, 0.0, -5.0],    # behind the camera
                       [10.0, 0.0, 1.0]])   # u 1050: outside
    features = {"rcs": np.array([1.0, 2.0, 3.0, 4.0, 5.0]), "vx_comp": np.array([-1.5, 0.5, 9, 9, 9])}
    raster = rasterize_radar(points, features, K, HW)
    assert raster.shape == (4, 80, 100) and raster.dtype == np.float32
    assert DEFAULT_CHANNELS == ("depth", "rcs", "vx_comp", "vy_comp")
    np.testing.assert_array_equal(raster[:, 40, 50], [10.0, 1.0, -1.5, 0.0])  # vy_comp absent -> 0
    np.testing.assert_array_equal(raster[:, 40, 55], [20.0, 2.0, 0.5, 0.0])
    assert np.count_nonzero(raster[0]) == 2
    # the nearer point wins whatever the input order
    flipped = rasterize_radar(points[::-1], {k: v[::-1] for k, v in features.items()}, K, HW)
    np.testing.assert_array_equal(flipped, raster)
    only_rcs = rasterize_radar(points, features, K, HW, channels=("rcs",))
    assert only_rcs.shape == (1, 80, 100) and only_rcs[0, 40, 50] == 1.0


def test_rasterize_empty_cloud():
    raster = rasterize_radar(np.zeros((0, 3)), {}, K, HW)
    assert raster.shape == (4, 80, 100) and not raster.any()


def test_resize_sparse_by_hand():
    raster = np.zeros((2, 4, 4), np.float32)
    raster[:, 1, 2] = [5.0, 50.0]
    raster[:, 1, 3] = [3.0, 30.0]   # same 2x2 target pixel (0, 1): nearer depth 3 wins
    raster[:, 3, 0] = [7.0, -70.0]  # -> (1, 0)
    small = resize_sparse(raster, (2, 2))
    np.testing.assert_array_equal(small[0], [[0, 3.0], [7.0, 0]])
    np.testing.assert_array_equal(small[1], [[0, 30.0], [-70.0, 0]])
    big = resize_sparse(raster, (8, 8))  # upscaling: pixel (1, 2) centre 1.5*2 -> row 3, col 5
    assert big[0, 3, 5] == 5.0 and big[0, 3, 7] == 3.0 and big[0, 7, 1] == 7.0
    assert np.count_nonzero(big[0]) == 3


def test_resize_sparse_equals_projection_with_scaled_intrinsics_for_integer_factors():
    rng = np.random.default_rng(1)
    points = np.stack([rng.uniform(-40, 40, 3000), rng.uniform(-30, 30, 3000), rng.uniform(2, 80, 3000)], 1)
    features = {"rcs": rng.normal(size=3000)}
    full = rasterize_radar(points, features, K, HW, channels=("depth", "rcs"))
    for factor in (2, 4):
        dst = (HW[0] // factor, HW[1] // factor)
        direct = rasterize_radar(points, features, scale_intrinsics(K, HW, dst), dst, channels=("depth", "rcs"))
        np.testing.assert_array_equal(resize_sparse(full, dst), direct)


def test_scatter_nearest_many_duplicates():
    rows = np.array([0, 0, 0, 1])
    cols = np.array([1, 1, 1, 0])
    depth = np.array([3.0, 1.0, 2.0, 4.0])
    out = scatter_nearest(rows, cols, depth, np.stack([depth, [30, 10, 20, 40]]), (2, 2))
    np.testing.assert_array_equal(out[1], [[0, 10], [40, 0]])


def test_radar_points_helpers():
    pts = RadarPoints(np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]), {"rcs": np.array([5.0, 6.0])})
    T = np.eye(4)
    T[:3, 3] = [10, 0, 0]
    moved = pts.transformed(T)
    np.testing.assert_array_equal(moved.xyz[:, 0], [11, 13])
    both = RadarPoints.concatenate([pts, moved.select(np.array([False, True]))])
    assert len(both) == 3 and both.fields["rcs"].tolist() == [5, 6, 6]
    assert len(RadarPoints.concatenate([])) == 0
    assert project_points(both.xyz, K, HW)[2].sum() == 0  # z = 0: none in front of a camera


# --- non-uniform resizes and boundaries by hand (issue 14) ----------------------------------------------------
def test_resize_sparse_non_uniform_900x1600_to_352x704_by_hand():
    raster = np.zeros((4, 900, 1600), np.float32)
    # (row, col): every channel non-zero
    raster[:, 0, 0] = [10.0, 1.0, 2.0, 3.0]
    raster[:, 899, 1599] = [20.0, 4.0, 5.0, 6.0]
    raster[:, 450, 800] = [30.0, 7.0, 8.0, 9.0]
    raster[:, 10, 900] = [40.0, -1.0, -2.0, -3.0]
    small = resize_sparse(raster, (352, 704))
    assert small.shape == (4, 352, 704) and small.dtype == np.float32
    # row r -> floor((r + 0.5) * 352 / 900), col c -> floor((c + 0.5) * 704 / 1600 = 0.44):
    #   (0, 0) -> (0, 0); (899, 1599) -> (floor(351.80), floor(703.78)) = (351, 703)
    #   (450, 800) -> (floor(176.20), floor(352.22)) = (176, 352); (10, 900) -> (floor(4.11), floor(396.22)) = (4, 396)
    np.testing.assert_array_equal(small[:, 0, 0], [10.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(small[:, 351, 703], [20.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(small[:, 176, 352], [30.0, 7.0, 8.0, 9.0])
    np.testing.assert_array_equal(small[:, 4, 396], [40.0, -1.0, -2.0, -3.0])
    assert np.count_nonzero(small[0]) == 4 and np.count_nonzero(small) == 16


def test_resize_sparse_non_uniform_900x1600_to_450x1600_by_hand():
    raster = np.zeros((2, 900, 1600), np.float32)
    raster[:, 450, 7] = [9.0, 90.0]
    raster[:, 451, 7] = [8.0, 80.0]      # rows 450 and 451 both -> floor(225.25), floor(225.75) = 225: 8 m wins
    raster[:, 3, 1599] = [5.0, 50.0]     # row floor(1.75) = 1, column unchanged
    raster[:, 4, 1598] = [0.0, 70.0]     # depth 0 = empty pixel: not moved, whatever the other channels hold
    out = resize_sparse(raster, (450, 1600))
    np.testing.assert_array_equal(out[:, 225, 7], [8.0, 80.0])
    np.testing.assert_array_equal(out[:, 1, 1599], [5.0, 50.0])
    assert np.count_nonzero(out[0]) == 2 and np.count_nonzero(out[1]) == 2


def test_rasterize_non_uniform_k_matches_hand_computed_pixels():
    # 900 x 1600 camera scaled to 352 x 704 (sx = 0.44, sy = 352 / 900): one point, every channel non-zero
    K_full = np.array([[1266.4, 0.0, 816.27], [0.0, 1266.4, 491.51], [0.0, 0.0, 1.0]])
    K_small = scale_intrinsics(K_full, (900, 1600), (352, 704))
    point = np.array([[2.0, -1.0, 20.0]])            # full: u 942.91, v 428.19 -> small (167, 415), as geometry
    raster = rasterize_radar(point, {"rcs": np.array([7.5]), "vx_comp": np.array([-2.0]),
                                     "vy_comp": np.array([0.25])}, K_small, (352, 704))
    assert np.argwhere(raster[0]).tolist() == [[167, 415]]
    np.testing.assert_array_equal(raster[:, 167, 415], [20.0, 7.5, -2.0, 0.25])


def test_rasterize_point_at_the_minimum_depth_is_dropped():
    K1 = np.eye(3)
    raster = rasterize_radar(np.array([[0.0, 0.0, 0.1], [1.0, 1.0, 0.2]]), {}, K1, (8, 8), channels=("depth",))
    # z == 0.1 (project_points' min_depth) is not in front; z = 0.2 lands at (5, 5)
    assert np.argwhere(raster[0]).tolist() == [[5, 5]] and raster[0, 5, 5] == np.float32(0.2)


def test_nearest_wins_ties_keep_the_first_return():
    rows, cols = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])
    depth = np.array([2.0, 2.0, 5.0, 4.0])
    out = scatter_nearest(rows, cols, depth, np.stack([depth, [1.0, 2.0, 3.0, 4.0]]), (2, 2))
    np.testing.assert_array_equal(out[1], [[1.0, 0.0], [0.0, 4.0]])   # tie at (0, 0): the first; (1, 1): 4 m
    empty = scatter_nearest(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((3, 0)), (2, 3))
    assert empty.shape == (3, 2, 3) and empty.dtype == np.float32 and not empty.any()


def test_read_radar_points_applies_the_devkit_filters_by_hand(tmp_path):
    from xdrcdepth_core.data.radar_pcd import write_radar_pcd
    n = 4
    fields = {name: np.zeros(n) for name in RADAR_FIELDS}
    fields.update(x=np.array([10.0, 20.0, 30.0, 40.0]), y=np.array([1.0, -2.0, 3.0, -4.0]), z=np.zeros(n),
                  rcs=np.array([5.0, 6.0, 7.0, 8.0]),
                  invalid_state=np.array([0, 0, 1, 0]), dyn_prop=np.array([0, 7, 0, 3]),
                  ambig_state=np.array([3, 3, 3, 3]))
    path = tmp_path / "radar.pcd"
    write_radar_pcd(path, fields)
    kept = read_radar_points(path)                   # return 1 is stopped (dyn_prop 7), return 2 invalid
    np.testing.assert_array_equal(kept.xyz, [[10.0, 1.0, 0.0], [40.0, -4.0, 0.0]])
    assert kept.xyz.dtype == np.float64 and kept.fields["rcs"].tolist() == [5.0, 8.0]
    everything = read_radar_points(path, disable_filters=True)
    np.testing.assert_array_equal(everything.xyz[:, 0], [10.0, 20.0, 30.0, 40.0])
    assert len(everything) == 4 and everything.fields["rcs"].tolist() == [5.0, 6.0, 7.0, 8.0]


def test_concatenate_of_nothing_and_of_one_cloud():
    empty = RadarPoints.concatenate([])
    assert empty.xyz.shape == (0, 3) and set(empty.fields) == set(RADAR_FIELDS)
    assert all(v.shape == (0,) and v.dtype == np.float32 for v in empty.fields.values())
    one = RadarPoints(np.array([[1.0, 2.0, 3.0]]), {"rcs": np.array([4.0])})
    alone = RadarPoints.concatenate([one])
    np.testing.assert_array_equal(alone.xyz, one.xyz)
    assert alone.fields["rcs"].tolist() == [4.0]


def test_resize_sparse_moves_returns_nearer_than_one_metre():
    raster = np.zeros((2, 4, 4), np.float32)
    raster[:, 2, 2] = [0.5, 9.0]                      # 0.5 m is a return (depth > 0), not an empty pixel
    assert resize_sparse(raster, (2, 2))[:, 1, 1].tolist() == [0.5, 9.0]
