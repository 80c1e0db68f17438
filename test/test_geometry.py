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
