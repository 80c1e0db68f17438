"""The table writer produces folders the real nuscenes-devkit loads, with the links it expects."""

import json

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes

from xdrcdepth_core.data.nuscenes_tables import TABLE_NAMES, NuScenesTables, token_for, write_map_mask


def _two_sample_scene(tables: NuScenesTables) -> dict:
    cam = tables.add_sensor("CAM_FRONT", "camera")
    radar = tables.add_sensor("RADAR_FRONT", "radar")
    cam_cs = tables.add_calibrated_sensor(cam, [1.7, 0.0, 1.5], [0.5, -0.5, 0.5, -0.5],
                                          np.array([[100.0, 0, 50], [0, 100, 25], [0, 0, 1]]))
    radar_cs = tables.add_calibrated_sensor(radar, [3.4, 0.0, 0.5], [1, 0, 0, 0])
    log = tables.add_log("synthetic-log", "sim", "2026-01-01", "synthetic-town")
    tables.add_map([log], "maps/test.png")
    scene = tables.add_scene(log, "scene-a", "two samples")
    s1 = tables.add_sample(scene, 1_500_000)  # added out of order on purpose: links follow timestamps
    s0 = tables.add_sample(scene, 1_000_000)
    sd = {}
    for ts, sample, key in ((900_000, s0, False), (1_000_000, s0, True), (1_250_000, s1, False),
                            (1_500_000, s1, True)):
        pose = tables.add_ego_pose(ts, [1, 0, 0, 0], [ts * 1e-6, 0, 0])
        folder = "samples" if key else "sweeps"
        sd[("cam", ts)] = tables.add_sample_data(sample, pose, cam_cs, ts, f"{folder}/CAM_FRONT/{ts}.jpg", "jpg",
                                                 key, width=100, height=50)
        sd[("radar", ts)] = tables.add_sample_data(sample, pose, radar_cs, ts + 10,
                                                   f"{folder}/RADAR_FRONT/{ts}.pcd", "pcd", key)
    tables.add_visibility_levels()
    car = tables.add_category("vehicle.car", "car")
    instance = tables.add_instance(car, token_for("instance", "car0"))
    for sample, x in ((s1, 12.0), (s0, 10.0)):
        tables.add_sample_annotation(sample, instance, [x, 2.0, 0.8], [1.8, 4.5, 1.6], [1, 0, 0, 0], 5, 1)
    return {"scene": scene, "s0": s0, "s1": s1, "sd": sd, "instance": instance, "log": log}


def test_devkit_loads_written_tables_with_links(tmp_path):
    tables = NuScenesTables()
    ids = _two_sample_scene(tables)
    tables.write(tmp_path / "v1.0-test")
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[15:, :10] = 255  # rows 15..19 = y in (0, 0.5] m at 0.1 m/pixel; cols 0..9 = x in [0, 1) m
    write_map_mask(tmp_path / "maps" / "test.png", mask)
    assert sorted(p.stem for p in (tmp_path / "v1.0-test").glob("*.json")) == sorted(TABLE_NAMES)

    nusc = NuScenes("v1.0-test", str(tmp_path), verbose=False)
    scene = nusc.get("scene", ids["scene"])
    assert (scene["nbr_samples"], scene["first_sample_token"], scene["last_sample_token"]) == (2, ids["s0"], ids["s1"])
    s0 = nusc.get("sample", ids["s0"])
    assert (s0["prev"], s0["next"]) == ("", ids["s1"])
    assert s0["data"] == {"CAM_FRONT": ids["sd"][("cam", 1_000_000)], "RADAR_FRONT": ids["sd"][("radar", 1_000_000)]}
    # Per-channel chains in time order across sweeps and key frames.
    cam_chain = [ids["sd"][("cam", ts)] for ts in (900_000, 1_000_000, 1_250_000, 1_500_000)]
    for prev, cur, nxt in zip([""] + cam_chain[:-1], cam_chain, cam_chain[1:] + [""]):
        rec = nusc.get("sample_data", cur)
        assert (rec["prev"], rec["next"], rec["channel"]) == (prev, nxt, "CAM_FRONT")
    assert nusc.get("sample_data", ids["sd"][("radar", 1_250_000)])["prev"] == ids["sd"][("radar", 1_000_000)]
    # Annotations are chained per instance in sample order; the instance counters are filled.
    inst = nusc.get("instance", ids["instance"])
    first = nusc.get("sample_annotation", inst["first_annotation_token"])
    assert inst["nbr_annotations"] == 2 and first["translation"][0] == 10.0
    assert nusc.get("sample_annotation", first["next"])["translation"][0] == 12.0
    assert nusc.get_sample_data(ids["sd"][("cam", 1_000_000)])[0].endswith("samples/CAM_FRONT/1000000.jpg")
    # Map mask orientation: row 0 is the largest y.
    map_mask = nusc.get("map", nusc.log[0]["map_token"])["mask"]
    assert map_mask.is_on_mask(np.array([0.5, 0.5, 2.0]), np.array([0.2, 1.8, 0.2])).tolist() == [True, False, False]


def test_broken_foreign_key_is_reported(tmp_path):
    tables = NuScenesTables()
    ids = _two_sample_scene(tables)
    tables.tables["sample_data"][0]["ego_pose_token"] = "0" * 32
    with pytest.raises(ValueError, match="ego_pose_token .* is not a ego_pose token"):
        tables.write(tmp_path / "v1.0-test")
    assert not (tmp_path / "v1.0-test" / "sample_data.json").exists()
    tables = NuScenesTables()
    ids = _two_sample_scene(tables)
    tables.add_scene(ids["log"], "empty", "no samples")
    with pytest.raises(ValueError, match="scene .* has no samples"):
        tables.finalize()


def test_tokens_are_deterministic_hex():
    assert token_for("a", 1) == token_for("a", 1) != token_for("a", 2)
    assert len(token_for("x")) == 32 and int(token_for("x"), 16) >= 0
    tables = NuScenesTables()
    _two_sample_scene(tables)
    tables.finalize()
    assert json.loads(json.dumps(tables.tables))  # all records are plain JSON
