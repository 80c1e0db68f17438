"""Geometry against hand-computed rotations, projections and intrinsics scaling."""

import numpy as np
import pytest

from xdrcdepth_core.data import geometry as g


def test_quaternion_90_deg_about_z_maps_x_to_y():
    c = np.sqrt(0.5)
    R = g.quaternion_to_matrix([c, 0, 0, c])
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [0, 1, 0], [-1, 0, 0], atol=1e-12)


def test_quaternion_roundtrip_and_invalid():
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(20, 4)):
        q = q / np.linalg.norm(q) * (1 if q[0] >= 0 else -1)
        np.testing.assert_allclose(g.matrix_to_quaternion(g.quaternion_to_matrix(q)), q, atol=1e-9)
    with pytest.raises(ValueError):
        g.quaternion_to_matrix([0, 0, 0, 0])


def test_transform_inverse_and_chain():
    T = g.transform_from_pose([np.cos(0.3), 0, np.sin(0.3), 0], [1.0, -2.0, 0.5])
    p = np.array([[3.0, 4.0, 5.0]])
    np.testing.assert_allclose(g.transform_points(g.invert_transform(T), g.transform_points(T, p)), p)
    # Same ego pose at both stamps: the chain reduces to cam<-ego<-radar.
    radar2ego = g.transform_from_pose([1, 0, 0, 0], [2.0, 0, 0.5])
    cam2ego = g.transform_from_pose([1, 0, 0, 0], [1.0, 0, 1.5])
    ego = g.transform_from_pose([1, 0, 0, 0], [100.0, 50.0, 0])
    T_cam_radar = g.sensor_to_sensor(radar2ego, ego, ego, cam2ego)
    np.testing.assert_allclose(g.transform_points(T_cam_radar, [[0, 0, 0]]), [[1.0, 0, -1.0]])
    # Ego moved 1 m forward (+x) between radar and camera stamps: a static point appears 1 m closer.
    ego_later = g.transform_from_pose([1, 0, 0, 0], [101.0, 50.0, 0])
    T = g.sensor_to_sensor(radar2ego, ego, ego_later, cam2ego)
    np.testing.assert_allclose(g.transform_points(T, [[10.0, 0, 0]]), [[10.0, 0, -1.0]])


def test_project_points_hand_computed():
    K = np.array([[100.0, 0, 50], [0, 100.0, 25], [0, 0, 1]])
    pts = np.array([[1.0, 0.5, 10.0],    # u = 100*0.1+50 = 60, v = 100*0.05+25 = 30
                    [0.0, 0.0, -5.0],    # behind the camera
                    [10.0, 0.0, 1.0],    # u = 1050, outside
                    [np.nan, 0, 3.0]])   # not finite
    uv, depth, keep = g.project_points(pts, K, (50, 100))
    np.testing.assert_allclose(uv, [[60.0, 30.0]])
    np.testing.assert_allclose(depth, [10.0])
    assert keep.tolist() == [True, False, False, False]


def test_scale_intrinsics_keeps_pixel_centres():
    K = np.array([[1266.4, 0, 816.27], [0, 1266.4, 491.51], [0, 0, 1]])
    K2 = g.scale_intrinsics(K, (900, 1600), (450, 800))
    # A 3-D point lands on the pixel whose centre scales as (u + 0.5) * s - 0.5.
    p = np.array([[2.0, -1.0, 20.0]])
    uv_full, _, _ = g.project_points(p, K, (900, 1600))
    uv_half, _, _ = g.project_points(p, K2, (450, 800))
    np.testing.assert_allclose(uv_half, (uv_full + 0.5) * 0.5 - 0.5, atol=1e-9)
    np.testing.assert_allclose(g.crop_intrinsics(K, 10, 20)[:2, 2], [796.27, 481.51])


# --- hand-computed values for every formula (issue 14) -------------------------------------------------------
# K of nuScenes CAM_FRONT with a small skew so that K[0, 1] is checked too
K_FULL = np.array([[1266.4, 2.0, 816.27], [0.0, 1266.4, 491.51], [0.0, 0.0, 1.0]])


def test_quaternion_to_matrix_every_entry_by_hand():
    # q = (1, 2, 3, 4), not unit: |q|^2 = 30, s = 2 / 30; R = I - s (...) entry by entry
    R = g.quaternion_to_matrix([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(R, np.array([[-10, 2, 11], [10, -5, 10], [5, 14, 2]]) / 15, atol=1e-15)
    # 120 degrees about (1, 1, 1): x -> y -> z -> x
    np.testing.assert_allclose(g.quaternion_to_matrix([0.5, 0.5, 0.5, 0.5]), [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
                               atol=1e-15)
    for bad in ([np.nan, 0, 0, 1], [np.inf, 0, 0, 0], [1e-7, 0, 0, 0]):   # |q|^2 = 1e-14 < 1e-12
        with pytest.raises(ValueError, match=r"invalid quaternion"):
            g.quaternion_to_matrix(bad)
    np.testing.assert_allclose(g.quaternion_to_matrix([1e-6, 0, 0, 0]), np.eye(3))  # |q|^2 = 1e-12: accepted


@pytest.mark.parametrize("q", [
    [4.0, 1.0, 2.0, 3.0],     # trace > 0
    [1.0, 4.0, 2.0, 3.0],     # R[0, 0] largest diagonal entry
    [1.0, 3.0, 4.0, 2.0],     # R[1, 1] largest
    [1.0, 2.0, 3.0, 4.0],     # R[2, 2] largest
])
def test_matrix_to_quaternion_in_each_branch(q):
    q = np.array(q) / np.sqrt(30.0)
    np.testing.assert_allclose(g.matrix_to_quaternion(g.quaternion_to_matrix(q)), q, atol=1e-12)
    np.testing.assert_allclose(g.matrix_to_quaternion(g.quaternion_to_matrix(-q)), q, atol=1e-12)  # w >= 0


def test_matrix_to_quaternion_half_turns_by_hand():
    assert g.matrix_to_quaternion(np.diag([1.0, -1.0, -1.0])).tolist() == [0.0, 1.0, 0.0, 0.0]  # w = 0 kept
    assert g.matrix_to_quaternion(np.diag([-1.0, 1.0, -1.0])).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert g.matrix_to_quaternion(np.diag([-1.0, -1.0, 1.0])).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert g.matrix_to_quaternion(np.eye(3)).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_pose_inverse_and_points_by_hand():
    T = g.transform_from_pose([1.0, 2.0, 3.0, 4.0], [1.0, -2.0, 0.5])
    np.testing.assert_allclose(T[:3, :3], np.array([[-10, 2, 11], [10, -5, 10], [5, 14, 2]]) / 15, atol=1e-15)
    np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
    # R @ (1, 0, 0) + t = first column + t
    np.testing.assert_allclose(g.transform_points(T, [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
                               [[-10 / 15 + 1, 10 / 15 - 2, 5 / 15 + 0.5], [1.0, -2.0, 0.5]], atol=1e-15)
    inv = g.invert_transform(T)
    np.testing.assert_allclose(inv[:3, :3], T[:3, :3].T, atol=1e-15)
    # -R^T t: R^T rows are R's columns
    R = T[:3, :3]
    np.testing.assert_allclose(inv[:3, 3], [-(R[0, 0] * 1 + R[1, 0] * -2 + R[2, 0] * 0.5),
                                            -(R[0, 1] * 1 + R[1, 1] * -2 + R[2, 1] * 0.5),
                                            -(R[0, 2] * 1 + R[1, 2] * -2 + R[2, 2] * 0.5)], atol=1e-15)
    np.testing.assert_array_equal(inv[3], [0, 0, 0, 1])
    np.testing.assert_allclose(inv @ T, np.eye(4), atol=1e-15)


def test_sensor_to_sensor_with_rotations_by_hand():
    yaw90 = [np.sqrt(0.5), 0, 0, np.sqrt(0.5)]            # x -> y
    radar2ego = g.transform_from_pose(yaw90, [2.0, 0.0, 0.0])
    cam2ego = g.transform_from_pose([1, 0, 0, 0], [1.0, 0.0, 0.0])
    ego_then = g.transform_from_pose([1, 0, 0, 0], [0.0, 0.0, 0.0])
    ego_now = g.transform_from_pose(yaw90, [0.0, 0.0, 0.0])   # the ego turned left by 90 degrees
    T = g.sensor_to_sensor(radar2ego, ego_then, ego_now, cam2ego)
    # radar point (1, 0, 0) -> ego(then) (2, 1, 0) = global -> ego(now) R^T (2, 1, 0) = (1, -2, 0) -> cam (0, -2, 0)
    np.testing.assert_allclose(g.transform_points(T, [[1.0, 0.0, 0.0]]), [[0.0, -2.0, 0.0]], atol=1e-12)


def test_scale_intrinsics_non_uniform_by_hand():
    # 900 x 1600 -> 352 x 704: sx = 704 / 1600 = 0.44, sy = 352 / 900; c' = (c + 0.5) s - 0.5
    np.testing.assert_allclose(g.scale_intrinsics(K_FULL, (900, 1600), (352, 704)), [
        [1266.4 * 0.44, 2.0 * 0.44, 816.77 * 0.44 - 0.5],
        [0.0, 1266.4 * 352 / 900, 492.01 * 352 / 900 - 0.5],
        [0.0, 0.0, 1.0]], rtol=1e-12)
    # 900 x 1600 -> 450 x 1600: columns unchanged, rows halved
    np.testing.assert_allclose(g.scale_intrinsics(K_FULL, (900, 1600), (450, 1600)),
                               [[1266.4, 2.0, 816.27], [0.0, 633.2, 245.505], [0.0, 0.0, 1.0]], rtol=1e-12)
    # 900 x 1600 -> 1800 x 800: rows doubled, columns halved
    np.testing.assert_allclose(g.scale_intrinsics(K_FULL, (900, 1600), (1800, 800)),
                               [[633.2, 1.0, 407.885], [0.0, 2532.8, 983.52], [0.0, 0.0, 1.0]], rtol=1e-12)
    K_in = K_FULL.copy()
    g.scale_intrinsics(K_in, (900, 1600), (450, 800))
    np.testing.assert_array_equal(K_in, K_FULL)          # the input is not modified


def test_pixel_positions_after_non_uniform_resizes_by_hand():
    p = np.array([[2.0, -1.0, 20.0]])
    # full image: u = 1266.4 * 0.1 + 2 * -0.05 + 816.27 = 942.81, v = 1266.4 * -0.05 + 491.51 = 428.19
    uv, depth, _ = g.project_points(p, K_FULL, (900, 1600))
    np.testing.assert_allclose(uv, [[942.81, 428.19]], rtol=1e-12)
    assert depth.tolist() == [20.0]
    # 352 x 704: u = 943.31 * 0.44 - 0.5 = 414.5564, v = 428.69 * 352 / 900 - 0.5 = 167.1654: pixel (167, 415)
    uv, _, _ = g.project_points(p, g.scale_intrinsics(K_FULL, (900, 1600), (352, 704)), (352, 704))
    np.testing.assert_allclose(uv, [[414.5564, 428.69 * 352 / 900 - 0.5]], rtol=1e-12)
    assert np.floor(uv + 0.5).tolist() == [[415.0, 167.0]]
    # 450 x 1600: u unchanged 942.81, v = 428.69 / 2 - 0.5 = 213.845: pixel (214, 943)
    uv, _, _ = g.project_points(p, g.scale_intrinsics(K_FULL, (900, 1600), (450, 1600)), (450, 1600))
    np.testing.assert_allclose(uv, [[942.81, 213.845]], rtol=1e-12)


def test_project_points_depth_and_image_boundaries():
    K1 = np.eye(3)                                        # u = x / z, v = y / z
    pts = np.array([[0.0, 0.0, 0.1],                      # z == min_depth (0.1): not in front (strict)
                    [0.0, 0.0, 0.1000001],                # just in front
                    [-0.5, -0.5, 1.0],                    # u = v = -0.5: pixel (0, 0), inside
                    [-0.5000001, 0.0, 1.0],               # pixel column -1: outside
                    [5.49, 3.49, 1.0],                    # pixel (3, 5) of a 4 x 6 image: inside
                    [5.5, 0.0, 1.0],                      # column 6 == w: outside
                    [0.0, 3.5, 1.0],                      # row 4 == h: outside
                    [0.0, -0.5000001, 1.0]])              # row -1: outside
    uv, depth, keep = g.project_points(pts, K1, (4, 6))
    assert keep.tolist() == [False, True, True, False, True, False, False, False]
    np.testing.assert_allclose(uv, [[0.0, 0.0], [-0.5, -0.5], [5.49, 3.49]])
    np.testing.assert_allclose(depth, [0.1000001, 1.0, 1.0])
    # a custom min_depth: z == 2 excluded, z = 2.5 kept
    _, depth, keep = g.project_points([[0, 0, 2.0], [0, 0, 2.5]], K1, (4, 6), min_depth=2.0)
    assert keep.tolist() == [False, True] and depth.tolist() == [2.5]
    # a flat list of 3 numbers is one point
    assert g.project_points([0.0, 0.0, 1.0], K1, (4, 6))[2].tolist() == [True]


def test_crop_intrinsics_by_hand():
    K2 = g.crop_intrinsics(K_FULL, 10, 20)
    np.testing.assert_allclose(K2, [[1266.4, 2.0, 796.27], [0.0, 1266.4, 481.51], [0.0, 0.0, 1.0]])
    assert K_FULL[0, 2] == 816.27                          # the input is not modified


@pytest.mark.parametrize("x_sign", [1.0, -1.0])
def test_matrix_to_quaternion_pivot_is_never_a_vanishing_component(x_sign):
    # q = (0.49, +-0.6128, 0, 0.62): trace < 0, R[0, 0] < R[2, 2], R[1, 1] < R[2, 2] -> the z pivot (4 z^2);
    # the y pivot 4 y^2 is 0 here, so any other branch choice divides by zero
    w, z = 0.49, 0.62
    q = np.array([w, x_sign * np.sqrt(1 - w * w - z * z), 0.0, z])
    np.testing.assert_allclose(g.matrix_to_quaternion(g.quaternion_to_matrix(q)), q, atol=1e-12)


def test_matrix_to_quaternion_of_a_noisy_rotation_is_unit_and_float64():
    R = g.quaternion_to_matrix([1.0, 2.0, 3.0, 4.0]) * 1.002         # a calibration that is not quite orthonormal
    q = g.matrix_to_quaternion(R)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(q, np.array([1.0, 2.0, 3.0, 4.0]) / np.sqrt(30.0), atol=1e-3)
    # float32 input is computed in float64 (the same as its float64 copy, bit for bit)
    R32 = g.quaternion_to_matrix([4.0, 1.0, 2.0, 3.0]).astype(np.float32)
    q32 = g.matrix_to_quaternion(R32)
    assert q32.dtype == np.float64
    np.testing.assert_array_equal(q32, g.matrix_to_quaternion(R32.astype(np.float64)))


def test_integer_intrinsics_are_cropped_and_scaled_as_floats():
    K = np.array([[100, 0, 51], [0, 100, 31], [0, 0, 1]])
    cropped = g.crop_intrinsics(K, 2, 3)
    assert cropped.dtype == np.float64 and cropped[0, 2] == 48.0 and cropped[1, 2] == 29.0
    scaled = g.scale_intrinsics(K, (64, 128), (32, 64))
    assert scaled.dtype == np.float64 and scaled[0, 2] == pytest.approx(51.5 * 0.5 - 0.5)


def test_float32_inputs_are_computed_in_float64():
    q32 = np.array([1.0, 2.0, 3.0, 4.0], np.float32) / np.float32(np.sqrt(30.0))
    np.testing.assert_array_equal(g.quaternion_to_matrix(q32), g.quaternion_to_matrix(q32.astype(np.float64)))
    points32 = np.array([[0.1, 0.2, 3.3], [1.7, -0.4, 9.1]], np.float32)
    uv, depth, _ = g.project_points(points32, K_FULL, (900, 1600))
    uv64, depth64, _ = g.project_points(points32.astype(np.float64), K_FULL, (900, 1600))
    assert depth.dtype == np.float64
    np.testing.assert_array_equal(depth, depth64)
    np.testing.assert_array_equal(uv, uv64)


K_GOOD = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])


def _k_with(row: int, col: int, value: float) -> np.ndarray:
    K = K_GOOD.copy()
    K[row, col] = value
    return K


@pytest.mark.parametrize("K, valid", [
    (K_GOOD, True),
    (_k_with(2, 2, 1 + 1e-10), True),            # within the 1e-9 tolerance of the last row
    (_k_with(2, 0, -1e-10), True),
    (_k_with(0, 2, -5.0), True),                 # a principal point off the image is still a pinhole
    (_k_with(0, 0, 0.5), True), (_k_with(1, 1, 0.5), True),   # any focal length > 0 (a tiny, binned image)
    (_k_with(0, 0, np.nan), False), (_k_with(1, 2, np.inf), False),
    (_k_with(0, 0, 0.0), False), (_k_with(1, 1, 0.0), False),
    (_k_with(0, 0, -1266.4), False), (_k_with(1, 1, -1266.4), False),
    (_k_with(2, 2, 1 + 1e-8), False), (_k_with(2, 2, 0.0), False),
    (_k_with(2, 0, 1e-8), False), (_k_with(2, 1, -1e-8), False),
])
def test_pinhole_intrinsics_valid(K, valid):
    result = g.pinhole_intrinsics_valid(K)
    assert type(result) is bool and result is valid
