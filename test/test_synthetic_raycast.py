"""Ray casting of the synthetic renderer against hand-computed intersections."""

import numpy as np

from xdrcdepth_core.data.synthetic.layout import Primitives
from xdrcdepth_core.data.synthetic.raycast import cast, occluded, surface_normals


def _prims(boxes=(), spheres=()):
    """boxes: (centre, size, yaw); spheres: (centre, radius)."""
    return Primitives(
        np.array([b[0] for b in boxes], float).reshape(-1, 3),
        np.array([b[1] for b in boxes], float).reshape(-1, 3) / 2,
        np.array([b[2] for b in boxes], float), np.zeros(len(boxes), int), np.ones((len(boxes), 3)),
        np.arange(len(boxes)), np.array([s[0] for s in spheres], float).reshape(-1, 3),
        np.array([s[1] for s in spheres], float), np.zeros(len(spheres), int), np.ones((len(spheres), 3)),
        np.arange(len(spheres)) + len(boxes))


def test_box_sphere_and_ground_hits_are_exact():
    # A 2 m cube centred 10 m ahead (+x), rotated 90 deg (same shape), and a sphere of radius 1 at y = 5 (x = 0).
    prims = _prims(boxes=[((10.0, 0.0, 1.5), (2.0, 2.0, 2.0), np.pi / 2)], spheres=[((0.0, 5.0, 1.5), 1.0)])
    origin = np.array([0.0, 0.0, 1.5])
    # Ray 0: straight at the cube face x = 9. Ray 1: at the sphere centre, length-2 direction (t halves).
    # Ray 2: down at 45 deg in the -y direction, hits the ground at distance 1.5. Ray 3: up into the sky.
    dirs = np.array([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, -1.0, -1.0], [0.0, 0.0, 1.0]]])
    t, code = cast(origin, dirs, prims)
    np.testing.assert_allclose(t[0, :3], [9.0, 2.0, 1.5], atol=1e-12)
    assert code[0].tolist() == [1, 2, 0, -1] and np.isinf(t[0, 3])
    points = origin + t[0, :3, None] * dirs[0, :3]
    normals, local = surface_normals(points, code[0, :3], prims)
    np.testing.assert_allclose(normals, [[-1, 0, 0], [0, -1, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(local[0], [0.0, 1.0, 0.0], atol=1e-12)  # yaw 90 deg: world -x is local +y
    # A window that excludes the cube's ray leaves that ray on the ground/sky.
    t2, code2 = cast(origin, dirs, prims, window_of=lambda corners: (0, 1, 1, 4))
    assert code2[0, 0] == -1 and code2[0, 1] == 2


def test_sun_shadow_under_a_box():
    # A 4 x 4 m slab 3-4 m above the ground centred at the origin; the sun straight overhead.
    prims = _prims(boxes=[((0.0, 0.0, 3.5), (4.0, 4.0, 1.0), 0.3)])
    points = np.array([[0.0, 0.0, 0.0], [1.5, -1.5, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 5.0]])
    shadow = occluded(points, np.array([0.0, 0.0, 1.0]), prims)
    # Under the (rotated) slab: shadowed; 3 m off-centre: lit; on its top face and above it: lit.
    assert shadow.tolist() == [True, True, False, False, False]
    # A low sun from +x moves the shadow: a point 5 m to the -x side at 45 deg elevation sees the slab.
    sun = np.array([1.0, 0.0, 1.0]) / np.sqrt(2)
    assert occluded(np.array([[-3.5, 0.0, 0.0], [-8.0, 0.0, 0.0]]), sun, prims).tolist() == [True, False]
    sphere = _prims(spheres=[((0.0, 0.0, 5.0), 1.0)])
    assert occluded(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), np.array([0.0, 0.0, 1.0]), sphere).tolist() == \
        [True, False]
