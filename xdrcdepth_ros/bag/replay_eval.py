"""``xdrcdepth replay-eval --source-bag B --output-bag O``: the depth a replay recorded, scored against the LiDAR
of the bag it was played from, with the radar-only baseline beside it.

Each ``/depth/image`` of the output bag (32FC1 metres, as the depth node publishes it, or 16UC1 millimetres,
the other REP 118 depth encoding) is matched by header stamp to the camera frame of the source bag with that
stamp (:mod:`xdrcdepth_ros.bag.source_frames`: image, K, radar returns and LiDAR ground truth in the camera,
ego-motion compensated with the bag's TF). Frames
with a LiDAR cloud within ``--slop`` are scored with the metrics of ``xdrcdepth eval``
(:mod:`xdrcdepth_core.metrics`: valid ``1e-3 < gt < cap``, per frame, then averaged over frames) at each cap,
for the prediction and for the radar-only baseline (every pixel takes the depth of the nearest radar return
in the image, :func:`xdrcdepth_core.evaluation.baselines.radar_nearest_depth`) on the same pixels. Prints a
per-frame table at the largest cap, the overall tables and a one-line summary; ``--json`` writes every
number, ``--frames DIR`` one picture per depth frame (:func:`xdrcdepth_core.evaluation.panels.replay_panel`).

Bags are untrusted: a depth message that cannot be deserialized, whose data does not fill its
height x step, or whose size is not its camera image's is skipped and counted (the summary line, a warning
naming the bag, ``malformed`` in the JSON); a storage file that fails its checks (chunk CRC, compression) ends
the command with one line naming the bag. A frame whose LiDAR cloud gives no ground-truth pixel within the
largest cap is not scored.

Exit status: 0 scored; 1 no depth frame has LiDAR (nothing scored) or an output cannot be written (one line
naming it); 2 bad arguments, a missing, unreadable or corrupt bag (named), a depth topic that does not hold
depth images (encoding), no readable depth image, bags that do not belong together (no depth stamp is a
camera stamp of the source).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xdrcdepth_core.cli_args import (os_error_line, output_file_problem, output_folder_problem, output_overlap,
                                     path_argument, positive_float, say)
from xdrcdepth_core.metrics import DEFAULT_CAPS, METRICS

DEFAULT_SLOP_S = 0.1   # s, the depth node's default slop (config/xdrcdepth.yaml); nuScenes stamps differ by < 60 ms
DEPTH_ENCODING = "32FC1"   # metres, what the depth node publishes
#: depth encodings read (REP 118, as depth_image_proc): encoding -> (bytes per pixel, metres per unit); 16UC1 is
#: millimetres, 0 = no depth (scored like the node's 0 or NaN: the protocol's 1e-3 m)
DEPTH_ENCODINGS = {DEPTH_ENCODING: (4, 1.0), "16UC1": (2, 1e-3)}
GT_NAME = "lidar"
PREDICTORS = ("model", "radar_only")
TABLE_METRICS = ("mae", "rmse", "abs_rel", "delta1")
PROTOCOL = ("depth images of the output bag matched by header stamp to the source bag's camera frames; LiDAR "
            "ground truth from the nearest LiDAR cloud within slop (one sweep, ego-car points dropped, moved into "
            "the camera through the fixed frame at both stamps, nearest point per pixel); radar-only baseline "
            "from the nearest cloud of each radar topic within slop (all returns); scored on 1e-3 < gt < cap per "
            "frame, averaged over frames")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source-bag", required=True, type=path_argument,
                        help="the bag that was played (nuscenes2bag)")
    parser.add_argument("--output-bag", required=True, type=path_argument,
                        help="the recording of the node's /depth/image")
    parser.add_argument("--camera", default="cam_front", help="camera of the source bag (default %(default)s)")
    parser.add_argument("--slop", type=positive_float, default=DEFAULT_SLOP_S,
                        help="largest stamp difference (s) of a LiDAR or radar cloud to its image "
                             "(default %(default)s, the node's)")
    parser.add_argument("--caps", nargs="+", type=positive_float, default=list(DEFAULT_CAPS),
                        help="range caps in metres (default: 50 70 80)")
    parser.add_argument("--json", type=path_argument, help="write every number to this JSON file")
    parser.add_argument("--frames", type=path_argument, help="write one picture per depth frame into this folder")
    parser.add_argument("--max-depth", type=positive_float, default=80.0,
                        help="colour scale of the pictures, m (default %(default)s)")


@dataclass
class ReplayEvaluation:
    """Scores of a replay: per frame and overall (``overall``: an :class:`~xdrcdepth_core.evaluation.evaluate.
    Evaluation` with the rows ``model`` and ``radar_only`` against ``lidar``)."""

    overall: object
    depth_frames: int = 0
    frames: list[dict] = field(default_factory=list)     # one per depth frame with a camera image, by stamp
    no_camera: list[int] = field(default_factory=list)   # depth stamps without a camera image in the source
    malformed: list[str] = field(default_factory=list)   # depth messages skipped, each with why

    @property
    def scored(self) -> list[dict]:
        """The frames with LiDAR ground truth: a cloud within slop with a point in the image within the largest
        cap (a cloud without one, e.g. empty, gives no metrics and is not scored)."""
        cap = f"{max(self.overall.caps):g}"
        return [f for f in self.frames if f["metrics"] is not None and f["metrics"]["model"][cap] is not None]


def malformed_depth(msg) -> str | None:
    """Why a depth image message (:data:`DEPTH_ENCODINGS`) cannot be read as one (its sizes contradict its data:
    the node's own check, :func:`~xdrcdepth_ros.node.conversions.check_image_layout`), or None."""
    from xdrcdepth_ros.node.conversions import BadInput, check_image_layout

    try:
        check_image_layout(msg, DEPTH_ENCODINGS[msg.encoding][0])
    except BadInput as exc:
        return exc.detail
    return None


def usable_depth(depth: Mapping, where: str = "") -> tuple[list[int], list[str]]:
    """The stamps of the depth images of ``depth`` (stamp ns -> Image) that can be read, and why each other
    one cannot.

    A message whose data does not fill its sizes is one broken message: skipped. An encoding other than
    32FC1 (metres) or 16UC1 (millimetres) means the topic does not carry depth (a camera image recorded under
    its name, say): ``ValueError`` naming the encoding and ``where`` (the bag), as no frame of it could be scored.
    """
    from xdrcdepth_ros.bag.replay_demo import stamp_text

    good, malformed = [], []
    for stamp in sorted(depth):
        msg = depth[stamp]
        if msg.encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"depth image {stamp_text(stamp)}{where} has encoding {msg.encoding!r}, which is not "
                             f"a depth encoding (the depth node publishes {DEPTH_ENCODING}, metres; 16UC1, "
                             "millimetres, is read too)")
        problem = malformed_depth(msg)
        if problem:
            malformed.append(f"depth image {stamp_text(stamp)}: {problem}")
        else:
            good.append(stamp)
    return good, malformed


def evaluate_replay(source_bag: Path, depth: Mapping, caps=DEFAULT_CAPS, slop_s: float = DEFAULT_SLOP_S,
                    camera: str = "cam_front", frames_dir: Path | None = None,
                    max_depth: float = 80.0, depth_bag: Path | None = None,
                    skipped: Sequence[str] = ()) -> ReplayEvaluation:
    """Score ``depth`` (header stamp ns -> sensor_msgs/Image 32FC1 or 16UC1, e.g. ``read_recording(O).depth``)
    against the LiDAR of ``source_bag``; with ``frames_dir``, write ``<sec>.<nanosec>.png`` per depth frame.

    Malformed depth images (:func:`usable_depth`, or of another size than their camera image) are skipped and
    listed in ``malformed`` after ``skipped`` (what the reader already dropped); ``depth_frames`` counts the
    usable ones. ``depth_bag`` names the recording in messages."""
    import numpy as np

    from xdrcdepth_core.demo import write_png
    from xdrcdepth_core.evaluation.baselines import radar_nearest_depth
    from xdrcdepth_core.evaluation.evaluate import Evaluation
    from xdrcdepth_core.evaluation.panels import replay_panel
    from xdrcdepth_core.metrics import compute_depth_metrics
    from xdrcdepth_ros.bag.replay_demo import stamp_text
    from xdrcdepth_ros.bag.source_frames import read_source_frames
    from xdrcdepth_ros.node.conversions import image_to_array

    stamps, malformed = usable_depth(depth, f" in {depth_bag}" if depth_bag is not None else "")
    result = ReplayEvaluation(Evaluation(tuple(float(c) for c in caps)), depth_frames=len(stamps),
                              malformed=[*skipped, *malformed])
    seen = set()
    for frame in read_source_frames(source_bag, stamps, camera, slop_s):
        seen.add(frame.stamp_ns)
        msg = depth[frame.stamp_ns]
        if (msg.height, msg.width) != frame.image.shape[:2]:   # not this camera image's depth: one bad message
            result.malformed.append(f"depth image {stamp_text(frame.stamp_ns)} is {msg.width}x{msg.height}, its "
                                    f"camera image in {source_bag} {frame.image.shape[1]}x{frame.image.shape[0]}")
            result.depth_frames -= 1
            continue
        pred = image_to_array(msg).astype(np.float32) * np.float32(DEPTH_ENCODINGS[msg.encoding][1])
        row = {"stamp_ns": frame.stamp_ns, "lidar_stamp_ns": frame.lidar_stamp_ns,
               "radar_stamps_ns": frame.radar_stamps_ns, "gt_pixels": 0, "metrics": None}
        if frame.lidar_depth is not None:
            predictions = {"model": pred, "radar_only": radar_nearest_depth(frame.radar_depth, 0.0)}
            row["gt_pixels"] = int(np.count_nonzero(frame.lidar_depth))
            row["metrics"] = {name: {f"{cap:g}": compute_depth_metrics(p, frame.lidar_depth, cap)
                                     for cap in result.overall.caps} for name, p in predictions.items()}
            for name, p in predictions.items():
                result.overall.accumulator(name, GT_NAME).update(p, frame.lidar_depth)
        result.frames.append(row)
        if frames_dir is not None:
            write_png(frames_dir / f"{stamp_text(frame.stamp_ns)}.png",
                      replay_panel(frame.image, frame.radar_depth, pred, frame.lidar_depth, max_depth))
    result.frames.sort(key=lambda f: f["stamp_ns"])
    result.no_camera = sorted(set(stamps) - seen)
    return result


def frame_table(result: ReplayEvaluation) -> str:
    """One line per depth frame: LiDAR pixels and, at the largest cap, the table metrics of both predictors."""
    from xdrcdepth_ros.bag.replay_demo import stamp_text

    cap = max(result.overall.caps)
    headers = [f"{METRICS[k][0]} [{METRICS[k][1]}]" if METRICS[k][1] else METRICS[k][0] for k in TABLE_METRICS]
    widths = [max(10, len(h)) for h in headers]
    columns = "  ".join(h.rjust(w) for h, w in zip(headers, widths))
    lines = [f"{f'frame (0-{cap:g} m)':<21}  LiDAR px  " + "  |  ".join(f"{n}: {columns}" for n in PREDICTORS)]
    for row in result.frames:
        text = f"{stamp_text(row['stamp_ns']):<21}  "
        if row["metrics"] is None:
            lines.append(text + f"{'-':>8}  no LiDAR cloud within slop")
            continue
        parts = []
        for name in PREDICTORS:
            values = row["metrics"][name][f"{cap:g}"]
            cells = [(_number(values[k], k) if values else "-").rjust(w) for k, w in zip(TABLE_METRICS, widths)]
            parts.append(f"{name}: " + "  ".join(cells))
        lines.append(text + f"{row['gt_pixels']:>8}  " + "  |  ".join(parts))
    return "\n".join(lines)


def _number(value: float, key: str) -> str:
    """As :meth:`MetricAccumulator.format_table` writes it: mm and 1/km with one decimal, ratios with four."""
    return f"{value:.1f}" if METRICS[key][1] in ("mm", "1/km") else f"{value:.4f}"


def summary_line(result: ReplayEvaluation) -> str:
    """``replay-eval: <scored> of <n> depth frames with LiDAR; at <cap> m: model MAE .., radar-only MAE ..``."""
    scored = len(result.scored)
    text = f"replay-eval: {scored} of {result.depth_frames} depth frames with LiDAR"
    if result.malformed:
        text += f" ({len(result.malformed)} malformed message{'s' if len(result.malformed) > 1 else ''} skipped)"
    if not scored:
        return text + ": no metrics"
    cap = max(result.overall.caps)
    parts = []
    for name in PREDICTORS:
        values = result.overall.rows[name][GT_NAME].results()[cap]
        parts.append(f"{name} MAE {values['mae'] / 1000:.3f} m, RMSE {values['rmse'] / 1000:.3f} m, "
                     f"AbsRel {values['abs_rel']:.3f}, d<1.25 {values['delta1']:.3f}")
    return text + f"; 0-{cap:g} m: " + " | ".join(parts)


def report(result: ReplayEvaluation) -> str:
    """Per-frame table, the overall tables (every metric at every cap) and the summary line."""
    lines = [frame_table(result)]
    if result.scored:
        lines.append(result.overall.format_table())
    return "\n".join([*lines, summary_line(result)])


def json_report(result: ReplayEvaluation, source_bag: Path, output_bag: Path, slop_s: float) -> dict:
    return {"source_bag": str(source_bag), "output_bag": str(output_bag), "slop_s": slop_s,
            "caps": list(result.overall.caps), "depth_frames": result.depth_frames,
            "frames_with_lidar": len(result.scored), "depth_frames_without_camera": result.no_camera,
            "malformed_messages": result.malformed,
            "protocol": PROTOCOL, "frames": result.frames,
            "overall": {name: rows[GT_NAME] for name, rows in result.overall.results().items()}}


@contextlib.contextmanager
def reading(bag: Path) -> Iterator[None]:
    """Turn a damaged storage file met while reading ``bag`` into a ``BagError`` naming it."""
    from xdrcdepth_ros.bag.player import BagError, damaged_bag_errors, damaged_bag_line

    try:
        yield
    except damaged_bag_errors() as exc:
        raise BagError(damaged_bag_line(bag, exc)) from exc


def _listing(items: list[str], most: int = 3) -> str:
    """The first ``most`` items joined by '; ', with how many more."""
    return "; ".join(items[:most]) + (f"; and {len(items) - most} more" if len(items) > most else "")


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_core.atomic import atomic_write_bytes
    from xdrcdepth_ros.bag.player import BagError
    from xdrcdepth_ros.bag.replay_demo import DEPTH_TOPIC, read_recording
    from xdrcdepth_ros.bag.source_frames import missing_camera

    prog = "xdrcdepth replay-eval"
    problem = output_overlap({"--json": args.json, "--frames": args.frames},
                             {"--source-bag": args.source_bag, "--output-bag": args.output_bag})
    if problem:
        say(f"{prog}: error: {problem}")
        return 2
    if args.json is not None and (code := output_file_problem(prog, args.json)):    # not after all the scoring
        return code
    if args.frames is not None and (code := output_folder_problem(prog, args.frames)):
        return code
    try:
        for bag in (args.source_bag, args.output_bag):     # both named before either is read
            if not bag.exists():
                raise BagError(f"bag {bag} does not exist")
        def no_depth(malformed: list[str]) -> ValueError:
            if not malformed:
                return ValueError(f"{args.output_bag} holds no {DEPTH_TOPIC} message")
            return ValueError(f"{args.output_bag} holds no readable {DEPTH_TOPIC} message ({len(malformed)} "
                              f"malformed: {_listing(malformed)})")

        with reading(args.output_bag):
            recording = read_recording(args.output_bag)
        if not recording.depth:
            raise no_depth(recording.malformed)
        with reading(args.source_bag):
            result = evaluate_replay(args.source_bag, recording.depth, args.caps, args.slop, args.camera,
                                     args.frames, args.max_depth, depth_bag=args.output_bag,
                                     skipped=recording.malformed)
        if not result.depth_frames:
            raise no_depth(result.malformed)
        if len(result.no_camera) == result.depth_frames:     # the wrong --camera, or not the bag that was played
            raise ValueError(missing_camera(args.source_bag, args.camera) or
                             f"no depth image of {args.output_bag} has a camera image with its stamp in "
                             f"{args.source_bag} (not the bag that was played?)")
    except (BagError, ValueError) as exc:
        say(f"{prog}: {exc}")
        return 2
    except OSError as exc:   # the pictures: read-only or full disk
        say(os_error_line(prog, exc))
        return 1
    print(report(result), flush=True)
    if result.malformed:
        say(f"{prog}: skipped {len(result.malformed)} malformed message(s) in {args.output_bag}: "
            f"{_listing(result.malformed)}")
    if result.no_camera:
        say(f"{prog}: {len(result.no_camera)} depth frames have no camera image with their stamp in "
            f"{args.source_bag}")
    if args.json:
        try:
            atomic_write_bytes(args.json, json.dumps(json_report(result, args.source_bag, args.output_bag,
                                                                 args.slop), indent=1).encode())
        except OSError as exc:
            say(os_error_line(prog, exc, args.json))
            return 1
    if not result.scored:
        clouds = sum(f["lidar_stamp_ns"] is not None for f in result.frames)
        say(f"{prog}: no depth frame has a LiDAR cloud within {args.slop:g} s in {args.source_bag}" + (
            f" with a point in its image within 0-{max(result.overall.caps):g} m ({clouds} frame(s) have a "
            "cloud)" if clouds else "") + ": nothing scored")
        return 1
    return 0


