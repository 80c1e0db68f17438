"""Procedural street layout: road, curbs/sidewalks, buildings, parked and moving vehicles, pedestrians, poles,
trees, and the ego trajectory, all drawn from one seeded generator.

World frame = nuScenes global frame (x, y on the ground, z up, metres). The road runs along +x with its
centre line at ``y = ROAD_Y``; traffic keeps right, so the ego drives in a lane with ``y < ROAD_Y``.
Every object is a set of primitives: yaw-rotated boxes (``centre``, ``half`` extents, ``yaw``) and spheres.
Moving objects (vehicles, pedestrians) translate at constant velocity: position(t) = position(0) + v t,
t in seconds since the scene start. The ground is the plane z = 0 (see :mod:`.raycast`).

Our choices (no paper prescribes them): sizes and counts follow typical urban streets (lanes 3.0-3.6 m,
curbs 0.12-0.18 m, cars 4.2-4.9 m x 1.75-1.95 m, buildings 6-40 m tall); the ego drives at 0-12 m/s with a
slow lateral sway of up to 0.3 m so that its yaw changes between frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xdrcdepth_core.data.synthetic import materials as M

#: Global y of the road centre line and global x where the ego starts (keeps map coordinates positive).
ROAD_Y = 60.0
EGO_X0 = 60.0
#: Metres of street generated ahead of the ego's final position and behind its start.
AHEAD_M = 160.0
BEHIND_M = 40.0

#: Body colours (linear RGB) of vehicles.
_PAINTS = np.array([[0.8, 0.8, 0.8], [0.05, 0.05, 0.06], [0.5, 0.5, 0.52], [0.6, 0.05, 0.04],
                    [0.05, 0.12, 0.4], [0.75, 0.72, 0.65], [0.2, 0.3, 0.2], [0.85, 0.6, 0.05]])
_FACADES = np.array([[0.6, 0.55, 0.48], [0.7, 0.68, 0.62], [0.45, 0.3, 0.25], [0.55, 0.58, 0.6],
                     [0.8, 0.78, 0.72], [0.35, 0.36, 0.38], [0.65, 0.5, 0.38]])


@dataclass
class SceneObject:
    """One physical object: what radar/annotations need to know about it."""

    kind: str  # building, car, truck, pedestrian, pole, tree, sidewalk
    category: str | None  # nuScenes category for annotated kinds, else None
    centre: np.ndarray  # (3,) box centre at t = 0 (annotation box)
    size_wlh: np.ndarray  # (3,) width, length, height
    yaw: float
    velocity: np.ndarray  # (2,) m/s in the world frame
    rcs_dbsm: float  # mean radar cross-section


@dataclass
class Primitives:
    """Ray-castable shapes at one instant; ``*_obj`` index :attr:`SceneLayout.objects`."""

    box_centre: np.ndarray  # (B, 3)
    box_half: np.ndarray  # (B, 3)
    box_yaw: np.ndarray  # (B,)
    box_material: np.ndarray  # (B,) int, see materials
    box_colour: np.ndarray  # (B, 3) linear RGB albedo
    box_obj: np.ndarray  # (B,) int
    sphere_centre: np.ndarray  # (S, 3)
    sphere_radius: np.ndarray  # (S,)
    sphere_material: np.ndarray
    sphere_colour: np.ndarray
    sphere_obj: np.ndarray

    def of_object(self, obj: int) -> "Primitives":
        """Only the primitives of object ``obj``."""
        b, s = self.box_obj == obj, self.sphere_obj == obj
        return Primitives(self.box_centre[b], self.box_half[b], self.box_yaw[b], self.box_material[b],
                          self.box_colour[b], self.box_obj[b], self.sphere_centre[s], self.sphere_radius[s],
                          self.sphere_material[s], self.sphere_colour[s], self.sphere_obj[s])


@dataclass
class SceneLayout:
    """Everything static about a scene plus the motion of the ego and the movers."""

    lane_width: float
    lanes_per_direction: int
    parking_width: float  # parking strip between the outer lane and the curb (0 if none)
    sidewalk_width: float
    curb_height: float
    facade_y: tuple[float, float]  # y of the building fronts on the right (-) and left (+) sides
    ego_speed: float
    ego_lane_y: float
    sway_amplitude: float
    sway_period: float
    sun_direction: np.ndarray  # (3,) unit vector towards the sun
    lamps: np.ndarray  # (L, 3) street-lamp head positions
    objects: list[SceneObject] = field(default_factory=list)
    prims: Primitives | None = None

    @property
    def road_half_width(self) -> float:
        return self.lanes_per_direction * self.lane_width + self.parking_width

    # -- ego motion -------------------------------------------------------------------------------------------
    def ego_position(self, t: float) -> np.ndarray:
        phase = 2 * np.pi * t / self.sway_period
        return np.array([EGO_X0 + self.ego_speed * t, self.ego_lane_y + self.sway_amplitude * np.sin(phase), 0.0])

    def ego_yaw(self, t: float) -> float:
        if self.ego_speed < 1e-6:
            return 0.0
        dy = self.sway_amplitude * 2 * np.pi / self.sway_period * np.cos(2 * np.pi * t / self.sway_period)
        return float(np.arctan2(dy, self.ego_speed))

    def ego_velocity(self, t: float) -> tuple[np.ndarray, float]:
        """World velocity (3,) of the ego origin and its yaw rate (rad/s) at ``t`` (numerical derivative)."""
        h = 1e-3
        v = (self.ego_position(t + h) - self.ego_position(t - h)) / (2 * h)
        return v, (self.ego_yaw(t + h) - self.ego_yaw(t - h)) / (2 * h)

    def ego_to_world(self, t: float) -> np.ndarray:
        """4x4 ego -> global transform at ``t`` (flat ground: yaw only, z = 0)."""
        yaw = self.ego_yaw(t)
        T = np.eye(4)
        T[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
        T[:3, 3] = self.ego_position(t)
        return T

    # -- scene at an instant ----------------------------------------------------------------------------------
    def primitives_at(self, t: float) -> Primitives:
        """The primitives with every mover advanced to time ``t``."""
        p = self.prims
        velocity = np.array([np.r_[o.velocity, 0.0] for o in self.objects])
        return Primitives(p.box_centre + velocity[p.box_obj] * t, p.box_half, p.box_yaw, p.box_material,
                          p.box_colour, p.box_obj, p.sphere_centre + velocity[p.sphere_obj] * t,
                          p.sphere_radius, p.sphere_material, p.sphere_colour, p.sphere_obj)


class _Builder:
    """Accumulates primitives while the layout is generated."""

    def __init__(self) -> None:
        self.boxes: list[tuple] = []
        self.spheres: list[tuple] = []
        self.objects: list[SceneObject] = []

    def add_object(self, obj: SceneObject) -> int:
        self.objects.append(obj)
        return len(self.objects) - 1

    def box(self, obj: int, centre, size_lwh, yaw: float, material: int, colour) -> None:
        self.boxes.append((np.asarray(centre, float), np.asarray(size_lwh, float) / 2, yaw, material,
                           np.asarray(colour, float), obj))

    def sphere(self, obj: int, centre, radius: float, material: int, colour) -> None:
        self.spheres.append((np.asarray(centre, float), radius, material, np.asarray(colour, float), obj))

    def primitives(self) -> Primitives:
        b, s = self.boxes, self.spheres
        return Primitives(
            np.array([x[0] for x in b]).reshape(-1, 3), np.array([x[1] for x in b]).reshape(-1, 3),
            np.array([x[2] for x in b], float), np.array([x[3] for x in b], int),
            np.array([x[4] for x in b]).reshape(-1, 3), np.array([x[5] for x in b], int),
            np.array([x[0] for x in s]).reshape(-1, 3), np.array([x[1] for x in s], float),
            np.array([x[2] for x in s], int), np.array([x[3] for x in s]).reshape(-1, 3),
            np.array([x[4] for x in s], int))


def _vehicle(builder: _Builder, rng: np.random.Generator, x: float, y: float, heading: float, speed: float,
             truck: bool) -> float:
    """A car (body + glass cabin + 4 wheels) or a box truck/van (cab + cargo box + wheels) centred at
    ``(x, y)``; returns its length."""
    length = rng.uniform(6.0, 9.0) if truck else rng.uniform(4.2, 4.9)
    width = rng.uniform(2.2, 2.5) if truck else rng.uniform(1.75, 1.95)
    height = rng.uniform(2.6, 3.4) if truck else rng.uniform(1.4, 1.6)
    paint = _PAINTS[rng.integers(len(_PAINTS))] * rng.uniform(0.85, 1.1)
    velocity = speed * np.array([np.cos(heading), np.sin(heading)])
    obj = builder.add_object(SceneObject("truck" if truck else "car", "vehicle.truck" if truck else "vehicle.car",
                                         np.array([x, y, height / 2]), np.array([width, length, height]),
                                         heading, velocity, rng.uniform(14, 20) if truck else rng.uniform(4, 10)))
    c, s = np.cos(heading), np.sin(heading)

    def at(along: float, across: float, z: float) -> list[float]:
        return [x + c * along - s * across, y + s * along + c * across, z]

    clearance = 0.35 if truck else 0.25
    wheel_r = 0.5 if truck else 0.33
    if truck:
        cab = min(2.0, 0.3 * length)
        builder.box(obj, at(length / 2 - cab / 2, 0, clearance + (height * 0.8 - clearance) / 2),
                    [cab, width, height * 0.8 - clearance], heading, M.VEHICLE_FRONT, paint)
        builder.box(obj, at(-cab / 2, 0, clearance + (height - clearance) / 2),
                    [length - cab, width, height - clearance], heading, M.CARGO, _FACADES[rng.integers(3)] * 1.2)
    else:
        body_top = clearance + 0.55 * (height - clearance)
        builder.box(obj, at(0, 0, (clearance + body_top) / 2), [length, width, body_top - clearance], heading,
                    M.VEHICLE_BODY, paint)
        cabin = [0.5 * length, 0.92 * width, height - body_top]
        builder.box(obj, at(-0.15 * length, 0, (body_top + height) / 2), cabin, heading, M.GLASS,
                    [0.03, 0.035, 0.045])
    for along in (0.33 * length, -0.33 * length):
        for side in (-1, 1):
            builder.box(obj, at(along, side * (width / 2 - 0.12), wheel_r), [2 * wheel_r, 0.24, 2 * wheel_r],
                        heading, M.TYRE, [0.03, 0.03, 0.03])
    return length


def _pedestrian(builder: _Builder, rng: np.random.Generator, x: float, y: float, heading: float, speed: float,
                ground: float) -> None:
    """A walker (legs, torso, head) standing at height ``ground`` (the sidewalk top)."""
    height = rng.uniform(1.55, 1.9)
    obj = builder.add_object(SceneObject("pedestrian", "human.pedestrian.adult",
                                         np.array([x, y, ground + height / 2]), np.array([0.6, 0.5, height]),
                                         heading, speed * np.array([np.cos(heading), np.sin(heading)]),
                                         rng.uniform(-8, -2)))
    cloth = rng.uniform(0.05, 0.7, 3)
    builder.box(obj, [x, y, ground + 0.45], [0.25, 0.35, 0.9], heading, M.CLOTH, cloth * 0.6)  # legs
    builder.box(obj, [x, y, ground + 0.9 + (height - 1.15) / 2], [0.3, 0.48, height - 1.15], heading, M.CLOTH,
                cloth)
    builder.sphere(obj, [x, y, ground + height - 0.12], 0.12, M.SKIN,
                   np.array([0.55, 0.38, 0.28]) * rng.uniform(0.4, 1.2))


def make_layout(rng: np.random.Generator, duration_s: float) -> SceneLayout:
    """A random street scene long enough for an ego drive of ``duration_s`` seconds."""
    b = _Builder()
    lane_w = rng.uniform(3.0, 3.6)
    lanes = int(rng.integers(1, 3))
    parking = float(rng.choice([0.0, 2.7]))
    sidewalk = rng.uniform(3.0, 4.5)
    curb = rng.uniform(0.12, 0.18)
    speed = 0.0 if rng.random() < 0.1 else rng.uniform(3.0, 12.0)
    half = lanes * lane_w + parking
    x0 = EGO_X0 - BEHIND_M
    x1 = EGO_X0 + speed * duration_s + AHEAD_M
    ego_lane_y = ROAD_Y - (int(rng.integers(lanes)) + 0.5) * lane_w

    # Sidewalks: one long raised slab per side, curb face towards the road.
    facade_y = []
    for side in (-1, 1):
        slab = b.add_object(SceneObject("sidewalk", None, np.zeros(3), np.zeros(3), 0.0, np.zeros(2), 0.0))
        y_mid = ROAD_Y + side * (half + sidewalk / 2)
        b.box(slab, [(x0 + x1) / 2, y_mid, curb / 2], [x1 - x0, sidewalk, curb], 0.0, M.SIDEWALK,
              [0.5, 0.49, 0.47])
        facade_y.append(ROAD_Y + side * (half + sidewalk + rng.uniform(0.0, 2.0)))

        # Buildings: a row of blocks with occasional alleys.
        x = x0
        while x < x1:
            width = rng.uniform(8, 30)
            depth = rng.uniform(10, 20)
            height = rng.uniform(6, 40)
            front = facade_y[-1] + side * rng.uniform(0.0, 1.0)
            centre = [x + width / 2, front + side * depth / 2, height / 2]
            obj = b.add_object(SceneObject("building", None, np.array(centre), np.array([depth, width, height]),
                                           0.0, np.zeros(2), rng.uniform(12, 25)))
            b.box(obj, centre, [width, depth, height], 0.0, M.BUILDING,
                  _FACADES[rng.integers(len(_FACADES))] * rng.uniform(0.8, 1.15))
            x += width + (rng.uniform(4, 10) if rng.random() < 0.25 else rng.uniform(0.0, 0.5))

        # Street lamps along the curb, trees between them.
        lamp_x = x0 + rng.uniform(0, 10)
        while lamp_x < x1:
            y_pole = ROAD_Y + side * (half + 0.5)
            height = rng.uniform(6.5, 8.5)
            obj = b.add_object(SceneObject("pole", None, np.array([lamp_x, y_pole, height / 2]),
                                           np.array([0.2, 0.2, height]), 0.0, np.zeros(2), rng.uniform(5, 10)))
            b.box(obj, [lamp_x, y_pole, height / 2], [0.2, 0.2, height], 0.0, M.POLE, [0.4, 0.41, 0.42])
            b.box(obj, [lamp_x, y_pole - side * 0.7, height - 0.1], [0.5, 1.6, 0.2], 0.0, M.LAMP,
                  [0.7, 0.7, 0.65])
            if rng.random() < 0.6:
                tree_x = lamp_x + rng.uniform(8, 14)
                # Pruned street tree: the crown clears pedestrians and trucks (3.4 m) beside it.
                trunk_h = rng.uniform(3.5, 4.5)
                crown = rng.uniform(1.2, 2.0)
                y_tree = ROAD_Y + side * (half + rng.uniform(0.9, 1.2))  # tree band next to the curb
                tree = b.add_object(SceneObject("tree", None, np.array([tree_x, y_tree, trunk_h]),
                                                np.array([2 * crown, 2 * crown, trunk_h + 1.85 * crown]), 0.0,
                                                np.zeros(2), rng.uniform(-2, 4)))
                b.box(tree, [tree_x, y_tree, trunk_h / 2], [0.3, 0.3, trunk_h], 0.0, M.BARK, [0.25, 0.17, 0.1])
                b.sphere(tree, [tree_x, y_tree, trunk_h + crown * 0.85], crown, M.FOLIAGE,
                         np.array([0.12, 0.28, 0.08]) * rng.uniform(0.7, 1.3))
            lamp_x += rng.uniform(22, 35)

        # Parked vehicles in the parking strip, bumper to bumper with 1-3 m gaps or empty bays.
        if parking > 0:
            x = x0 + rng.uniform(0, 8)
            while x < x1:
                if rng.random() < 0.6:
                    truck = rng.random() < 0.15
                    length = 9.0 if truck else 4.9  # the longest of its kind, so neighbours never overlap
                    _vehicle(b, rng, x + length / 2, ROAD_Y + side * (half - parking / 2),
                             0.0 if side < 0 else np.pi, 0.0, truck=truck)
                    x += length + rng.uniform(1.0, 3.0)
                else:
                    x += rng.uniform(5.0, 8.0)

        # Pedestrians on the sidewalk beyond the pole/tree band, in two walking bands (one per direction)
        # at one speed each and >= 3 m apart, so nobody walks through a tree, a pole or another walker.
        for heading, offset in ((0.0, 1.75), (np.pi, 2.55)):
            walk = 0.0 if rng.random() < 0.2 else rng.uniform(0.8, 1.6)
            x = x0 + rng.uniform(0, 20)
            while x < x1:
                _pedestrian(b, rng, x, ROAD_Y + side * (half + offset), heading, walk, curb)
                x += rng.uniform(3.0, 45.0)

    # Moving traffic. Lane k (0 = next to the centre line) of each direction is centred at
    # ROAD_Y -/+ (k + 0.5) * lane_w. Each lane has one speed (+-0.3 m/s per vehicle, gaps >= 25 m), so
    # vehicles never run into each other within a scene; the ego lane's traffic starts ahead and is faster.
    for lane in range(lanes):
        y_same = ROAD_Y - (lane + 0.5) * lane_w
        ego_lane = abs(y_same - ego_lane_y) < 0.5
        lane_speed = speed + rng.uniform(0.8, 4.0) if ego_lane else rng.uniform(0.0, 14.0)
        x = EGO_X0 + rng.uniform(12, 30) if ego_lane else x0 + rng.uniform(0, 30)
        while x < x1:
            if rng.random() < 0.7:
                _vehicle(b, rng, x, y_same, 0.0, max(lane_speed + rng.uniform(-0.3, 0.3), 0.0),
                         truck=rng.random() < 0.15)
            x += rng.uniform(25, 60)
        lane_speed = rng.uniform(4.0, 14.0)
        x = x0 + rng.uniform(0, 30)
        while x < x1 + 14.0 * duration_s:
            _vehicle(b, rng, x, ROAD_Y + (lane + 0.5) * lane_w, np.pi, lane_speed + rng.uniform(-0.3, 0.3),
                     truck=rng.random() < 0.15)
            x += rng.uniform(30, 80)

    sun_el, sun_az = np.radians(rng.uniform(25, 60)), rng.uniform(0, 2 * np.pi)
    lamps = np.array([bx[0] - [0, 0, 0.15] for bx in b.boxes if bx[3] == M.LAMP]).reshape(-1, 3)
    return SceneLayout(lane_w, lanes, parking, sidewalk, curb, (facade_y[0], facade_y[1]), speed, ego_lane_y,
                       rng.uniform(0.0, 0.3), rng.uniform(6.0, 12.0),
                       np.array([np.cos(sun_el) * np.cos(sun_az), np.cos(sun_el) * np.sin(sun_az), np.sin(sun_el)]),
                       lamps, b.objects, b.primitives())
