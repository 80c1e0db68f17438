"""3-D box annotations of the key frames: nuScenes ``category``, ``attribute``, ``instance`` and
``sample_annotation`` records for the vehicles and pedestrians the LiDAR or radar key frame sees.

Boxes are the generator's own (exact): centre at the sample (LiDAR key frame) time, size width/length/height,
yaw rotation. ``num_lidar_pts`` / ``num_radar_pts`` count the key-frame LiDAR points and radar target
returns on the object; objects with neither are not annotated (as nuScenes drops boxes without points).
Visibility (our stand-in for nuScenes' camera-based level, since we simulate one camera): the fraction of
the LiDAR rays that would hit the object alone which do hit it first in the scene, binned into the four
official levels 0-40/40-60/60-80/80-100 %.
"""

from __future__ import annotations

import numpy as np

from xdrcdepth_core.data.nuscenes_tables import NuScenesTables, token_for
from xdrcdepth_core.data.synthetic import lidar, radar
from xdrcdepth_core.data.synthetic.layout import ROAD_Y, Primitives, SceneLayout

#: object kind -> nuScenes category
CATEGORIES = {"car": "vehicle.car", "truck": "vehicle.truck", "pedestrian": "human.pedestrian.adult"}
_CATEGORY_DESCRIPTIONS = {
    "vehicle.car": "Vehicle designed primarily for personal use.",
    "vehicle.truck": "Vehicles primarily designed to haul cargo.",
    "human.pedestrian.adult": "Adult subcategory.",
}
ATTRIBUTES = ("vehicle.moving", "vehicle.parked", "vehicle.stopped", "pedestrian.moving", "pedestrian.standing")


def add_taxonomy(tables: NuScenesTables) -> dict[str, str]:
    """Category and attribute records (once per folder); returns name -> token for both."""
    tokens = {name: tables.add_category(name, text) for name, text in _CATEGORY_DESCRIPTIONS.items()}
    tokens.update({name: tables.add_attribute(name) for name in ATTRIBUTES})
    return tokens


def _visibility_token(fraction: float) -> str:
    return "1" if fraction < 0.4 else "2" if fraction < 0.6 else "3" if fraction < 0.8 else "4"


def _attribute(layout: SceneLayout, k: int) -> str:
    obj = layout.objects[k]
    moving = np.linalg.norm(obj.velocity) > 0.2
    if obj.kind == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    in_lanes = abs(obj.centre[1] - ROAD_Y) < layout.lanes_per_direction * layout.lane_width
    return "vehicle.moving" if moving else "vehicle.stopped" if in_lanes else "vehicle.parked"


def annotate_keyframe(tables: NuScenesTables, taxonomy: dict[str, str], instances: set[str], scene_key: str,
                      layout: SceneLayout, prims: Primitives, t: float, sample_token: str,
                      lidar_sweep: lidar.LidarSweep, T_world_from_lidar: np.ndarray,
                      radar_sweep: radar.RadarSweep) -> int:
    """Add the annotations of one sample; ``instances`` collects the instance tokens made so far."""
    lidar_counts = np.bincount(lidar_sweep.obj[lidar_sweep.obj >= 0], minlength=len(layout.objects))
    targets = radar_sweep.obj[(radar_sweep.kind == radar.KIND_TARGET) & (radar_sweep.obj >= 0)]
    radar_counts = np.bincount(targets, minlength=len(layout.objects))
    added = 0
    for k, obj in enumerate(layout.objects):
        category = CATEGORIES.get(obj.kind)
        if category is None or lidar_counts[k] + radar_counts[k] == 0:
            continue
        alone = lidar.unoccluded_rays(prims, T_world_from_lidar, k)
        visible = lidar_sweep.rays_per_object[k] / alone if alone else 0.0
        instance = token_for("instance", scene_key, k)
        if instance not in instances:
            tables.add_instance(taxonomy[category], instance)
            instances.add(instance)
        centre = obj.centre + np.r_[obj.velocity * t, 0.0]
        tables.add_sample_annotation(sample_token, instance, centre, obj.size_wlh,
                                     [np.cos(obj.yaw / 2), 0.0, 0.0, np.sin(obj.yaw / 2)], int(lidar_counts[k]),
                                     int(radar_counts[k]), _visibility_token(visible),
                                     [taxonomy[_attribute(layout, k)]])
        added += 1
    return added
