"""``xdrcdepth bench``: inference speed per model, input size and backend, the end-to-end and node paths, and
radar rasterisation; writes ``docs/benchmarks/inference.md`` and ``inference.json`` (run from a source checkout's
root; elsewhere, e.g. with the package installed, ``artifacts/bench/``; ``--out`` names another file).

A benchmark, not a test: it measures and writes what it measured, with the command, the date and the machine
(CPU flags, runtime versions, threads, load average before and after, since other jobs may share the cores).
All ratios come from one run: within a (model, input size) group every backend is built first, then timed
round-robin (one call of each per round), so background load hits all of them alike. Every row that is not
the eager fp32 reference went through the parity check on real frames before it was timed
(:mod:`.backends.parity`); one that fails it is timed too, marked (``eligible: false``), so the table shows what
that precision would buy, and is never counted for a target (``auto`` never picks it either).

Sections:

* models x sizes x backends: latency median / p90 over warm runs, FPS, memory added while building and
  warming up the backend (peak RSS above the process before it), speed-up vs eager fp32;
* ratios in the same run: student vs the LiRCDepth baseline vs the CaFNet teacher, per backend and size;
* end to end: decode a 1600 x 900 JPEG (PIL and OpenCV: bit-identical pixels), then
  ``DepthEstimator.estimate`` (rasterise, preprocess, forward, resize back), eager and the fastest backend;
* node path: the depth node's per-frame work (``DepthNode._process``: message -> numpy, TF, estimate,
  messages out) on 450 x 800 frames vs the bare model call, with the conversion costs broken out; the model
  runs at the frame size (448 x 800, the issue's target) and at the shipped student's trained input size;
* radar rasterisation from 100 to 100,000 points;
* the issue's targets, each met or not, with the numbers.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from xdrcdepth_core.cli_args import (non_negative_int, os_error_line, output_file_problem, output_overlap,
                                     path_argument, positive_int, say)
from xdrcdepth_core.device import add_device_argument

PROG = "xdrcdepth bench"
#: a 1600 x 900 camera with a 70 degree horizontal field of view, like a nuScenes front camera
FRONT_CAMERA_K = np.array([[1140.0, 0.0, 799.5], [0.0, 1140.0, 449.5], [0.0, 0.0, 1.0]])
DEFAULT_SIZES = ("352x704", "448x800", "896x1600")
#: The node section's frames, and the model input the issue's overhead target is stated at (the frame size,
#: rows rounded down to the models' size divisor)
NODE_FRAME, NODE_MODEL_INPUT = (450, 800), (448, 800)
#: rounds for the millisecond-scale sections (decode, conversions, radar): cheap, and medians of many rounds
#: ride out the load spikes of a shared machine
CHEAP_REPEATS = 31
TARGET_SPEEDUP, TARGET_STUDENT_VS_BASELINE, TARGET_NODE_OVERHEAD, TARGET_RADAR_MS = 4.0, 1.3, 0.15, 5.0
#: the committed report of a source checkout (run from its root), and the report elsewhere (an installed package)
CHECKOUT_REPORT, OTHER_REPORT = Path("docs/benchmarks/inference.md"), Path("artifacts/bench/inference.md")
#: where the package keeps trained weights: the shipped student; in a source checkout also the ablation teachers
CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"


def model_input_size(text: str) -> tuple[int, int]:
    """``HxW`` with H and W positive multiples of 32 (the models' size divisor), at most the depth node's
    ``max_image_pixels`` (4096 x 4096): ``3200000x3200000`` went on to a traceback of a 61 GB allocation, and a
    size just small enough to be allocated would have swapped the machine instead."""
    from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS
    from xdrcdepth_core.models.base import SIZE_DIVISOR

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 352x704, got {text!r}") from None
    if h <= 0 or w <= 0 or h % SIZE_DIVISOR or w % SIZE_DIVISOR:
        raise argparse.ArgumentTypeError(f"H and W must be positive multiples of {SIZE_DIVISOR}, got {text!r}")
    if h * w > DEFAULT_MAX_IMAGE_PIXELS:
        raise argparse.ArgumentTypeError(f"{text!r} is {h * w} pixels, more than {DEFAULT_MAX_IMAGE_PIXELS} "
                                         "(4096 x 4096, the depth node's max_image_pixels)")
    return h, w


def model_name(text: str) -> str:
    """argparse ``type`` of ``--models``/``--int8-models``: a registered model. An unknown name was a ``KeyError``
    traceback after the models before it had been timed (``--models``) or silently nothing (``--int8-models``)."""
    from xdrcdepth_core.models import list_models

    if text not in list_models():
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; registered models: {', '.join(list_models())}")
    return text


def backend_variant(text: str) -> tuple[str, str, dict]:
    """argparse ``type`` of ``--backends``: ``backend[:precision[:option...]]`` (:func:`parse_variant`) with a known
    backend, precision and torch options, checked before any work: each was a traceback from ``create_backend``
    after the model had been loaded (a name that only differed in case, a typo of ``fp32``)."""
    from xdrcdepth_core.backends import BACKENDS, PRECISIONS
    from xdrcdepth_core.backends.torch_backend import OPTIONS

    name, precision, options = parse_variant(text)
    if name not in BACKENDS:
        problem = f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}"
    elif precision not in PRECISIONS:
        problem = f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}"
    elif options and name != "torch":
        problem = f"options ({', '.join(options)}) apply to the torch backend only"
    elif set(options) - set(OPTIONS):
        problem = (f"unknown torch option(s) {', '.join(sorted(set(options) - set(OPTIONS)))}; choose from "
                   f"{', '.join(OPTIONS)}")
    else:
        return name, precision, options
    raise argparse.ArgumentTypeError(f"{problem} (in {text!r}; the form is backend[:precision[:option]])")


#: Most CPU threads ``--threads`` takes (the largest CPUs have a few hundred; 100000 made OpenMP segfault).
MAX_THREADS = 1024


def thread_count(text: str) -> int:
    """``--threads`` (argparse ``type``): 1 to :data:`MAX_THREADS`."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="*", type=model_name, default=None,
                        help="models to time (default: all registered); a model without trained weights in the "
                             "package (installed: only the student has them; a source checkout also has the "
                             "teacher) is timed untrained, and the run says so")
    parser.add_argument("--sizes", nargs="*", type=model_input_size, metavar="HxW",
                        default=[model_input_size(s) for s in DEFAULT_SIZES],
                        help=f"model input sizes, multiples of 32 (default: {' '.join(DEFAULT_SIZES)}; 450 x 800 and "
                             "900 x 1600 frames run the model at 448 x 800 and 896 x 1600)")
    parser.add_argument("--backends", nargs="*", type=backend_variant, default=None,
                        help="variants as backend[:precision[:option]], e.g. torch:fp32:channels_last "
                             "openvino:int8 (default: everything that runs here)")
    parser.add_argument("--int8-models", nargs="*", type=model_name, default=None,
                        help="models timed in int8 too, at the first size (default: the student); int8 quantises "
                             "with calibration frames and is kept only if it passes parity")
    parser.add_argument("--frames", default=None,
                        help="prepare cache folder whose frames the parity checks use (e.g. the val cache of the "
                             "checkpoint's data; default: the real nuScenes samples, 3 frames)")
    parser.add_argument("--calibration", default=None,
                        help="prepare cache folder of the checkpoint's training data that int8 is calibrated on "
                             "(32 frames spread over it; default: the parity frames)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (default: %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="warm-up rounds (default: %(default)s)")
    add_device_argument(parser)
    parser.add_argument("--threads", type=thread_count, default=None,
                        help=f"CPU threads for every backend, 1 to {MAX_THREADS} (default: torch's)")
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size (e.g. 6 cameras on a GPU)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("models", "e2e", "node", "radar"),
                        help="sections to leave out")
    parser.add_argument("--out", type=path_argument, default=None,
                        help=f"report (default: {CHECKOUT_REPORT} where the current folder has "
                             f"{CHECKOUT_REPORT.parent}/, as a source checkout's root, else {OTHER_REPORT})")
    parser.add_argument("--json", type=path_argument, default=None, help="JSON file (default: --out with .json)")


# --- measuring ------------------------------------------------------------------------------------------------

def _rss_mb(key: str = "VmRSS") -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (``/proc/self/clear_refs`` 5); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def stats_ms(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min()),
            "runs": len(ms)}


def round_robin(calls: dict, repeats: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Time every callable once per round, ``repeats`` rounds after ``warmup`` rounds (same load for all)."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(time_once(fn, device))
    return times


# --- variants -------------------------------------------------------------------------------------------------

def parse_variant(text: str) -> tuple[str, str, dict]:
    parts = text.split(":")
    options = {o: True for o in parts[2:]}
    return parts[0], parts[1] if len(parts) > 1 and parts[1] else "fp32", options


def default_variants(device: torch.device, model: str, int8_models: list[str]) -> list[tuple[str, str, dict]]:
    """What runs here, the reference first; reduced precisions only where the hardware has them natively."""
    from xdrcdepth_core.backends.auto import candidates

    variants = [("torch", "fp32", {})]
    if device.type == "cpu":
        variants.append(("torch", "fp32", {"channels_last": True}))
    for c in candidates(str(device), None, full=True):
        if c not in variants and (c[1] != "int8" or model in int8_models):
            variants.append(c)
    if device.type == "cpu" and model in int8_models:
        for c in (("onnxruntime", "int8", {}), ("openvino", "int8", {})):
            if c not in variants:
                variants.append(c)
    return variants


def label(variant) -> str:
    name, precision, options = variant
    return f"{name} {precision}" + "".join(f" +{o}" for o, on in sorted(options.items()) if on)


def packaged_checkpoints() -> dict[str, Path]:
    """Model name -> the checkpoint in ``xdrcdepth_core/checkpoints/`` that holds trained weights for it (the
    shipped student; the ablation teacher in a source checkout). Speed does not depend on the weights, but the
    parity check of reduced precisions (int8 above all) does: an untrained network's outputs say little about
    how quantisation changes a trained one's depth."""
    from xdrcdepth_core.checkpoint import load_checkpoint

    found = {}
    for path in sorted(CHECKPOINTS_DIR.glob("*.pt")):
        found.setdefault(load_checkpoint(path)["model_name"], path)
    return found


def untrained_note(names, checkpoints: dict[str, Path]) -> str | None:
    """The line that names the models of ``names`` without trained weights here (None when all have them)."""
    absent = [name for name in names if name not in checkpoints]
    if not absent:
        return None
    return (f"bench: no trained checkpoint for {', '.join(absent)} in {CHECKPOINTS_DIR} (an installed package has "
            "the student's only): timed with untrained weights, the same speed; int8 parity is judged as untrained")


def bench_model(name: str, checkpoints: dict[str, Path]) -> tuple[torch.nn.Module, str]:
    """The model to time and the words that say which weights it has: trained ones where the package holds
    them, else seeded untrained ones (seed 0, as ``DepthEstimator.from_checkpoint`` without a checkpoint)."""
    from xdrcdepth_core.checkpoint import build_from_checkpoint, load_checkpoint
    from xdrcdepth_core.infer import UNTRAINED_SEED, untrained_model

    if name in checkpoints:
        path = checkpoints[name]
        return build_from_checkpoint(load_checkpoint(path), path).eval(), f"trained ({path.name})"
    return untrained_model(name).eval(), f"untrained (seed {UNTRAINED_SEED})"


def bench_models(args, device: torch.device, report: dict) -> None:
    from xdrcdepth_core.backends import BackendUnavailable, ParityFailed, create_backend
    from xdrcdepth_core.backends.auto import _MemoReference
    from xdrcdepth_core.backends.frames import CALIBRATION_FRAMES, default_frames, load_cache_frames
    from xdrcdepth_core.backends.parity import ParityTolerance
    from xdrcdepth_core.backends.torch_backend import TorchBackend
    from xdrcdepth_core.checkpoint import weights_digest
    from xdrcdepth_core.models import list_models
    from xdrcdepth_core.models.summary import STUDENT, model_stats

    # a backend that failed parity is built again under this to be timed (marked, never eligible)
    no_gate = ParityTolerance(fp32_max_abs_m=math.inf, reduced_rel_mae_change=math.inf,
                              reduced_rel_mean_abs=math.inf)
    names = args.models or list_models()
    checkpoints = packaged_checkpoints()
    if note := untrained_note(names, checkpoints):
        print(note, flush=True)
    report.setdefault("weights", {})
    int8_models = args.int8_models if args.int8_models is not None else [STUDENT]
    sizes = args.sizes           # (h, w) pairs
    rows, skipped = report["rows"], report["skipped"]
    for name in names:
        model, weights = bench_model(name, checkpoints)
        report["weights"][name] = weights
        sha = weights_digest(model.state_dict())
        channels = ("depth", "rcs", "vx_comp", "vy_comp")[:model.radar_channels]
        try:
            frames, frames_label = (default_frames(channels, limit=3) if not args.frames else
                                    (load_cache_frames(args.frames, channels), f"cache {args.frames}"))
            calibration = (load_cache_frames(args.calibration, channels, CALIBRATION_FRAMES, spread=True)
                           if args.calibration else None)
        except (OSError, ValueError) as exc:      # e.g. a cache made for other radar channels
            skipped.append({"model": name, "variant": "all", "reason": str(exc)})
            print(f"bench: {name}: skipped: {exc}", flush=True)
            continue
        report["frames"] = frames_label + (f"; int8 calibrated on {len(calibration)} frames of {args.calibration}"
                                           if calibration else "")
        gate = {"frames": frames if args.frames else None, "calibration": calibration}
        tolerance = ParityTolerance(trained=name in checkpoints)     # trained weights: the MAE rule
        for hw in sizes:
            # int8 (calibration + quantisation per size) at the first size only, unless asked for by --backends
            variants = (list(args.backends) if args.backends
                        else default_variants(device, name, int8_models if hw == sizes[0] else []))
            params, flops = model_stats(name, *hw)
            group = f"{name} {hw[0]}x{hw[1]}"
            print(f"bench: {group}: building {len(variants)} variants", flush=True)
            reference = TorchBackend(model.to(device), str(device), "fp32")
            memo = _MemoReference(reference)
            built, memory = {}, {}
            for variant in variants:
                backend_name, precision, options = variant
                gc.collect()
                before = _rss_mb()
                peak_ok = _reset_peak_rss()
                start = time.perf_counter()
                try:
                    if variant == ("torch", "fp32", {}):
                        backend = reference
                    else:
                        backend = create_backend(backend_name, model, hw, channels, str(device), precision,
                                                 weights_sha=sha, allow_export=True, options=options or None,
                                                 batch=args.batch, reference=memo, tolerance=tolerance, **gate)
                    failed = None
                except ParityFailed as exc:     # timed for information, marked, never counted for a target
                    failed = exc.report
                    print(f"bench: {group} {label(variant)}: fails parity ({failed.summary()}); timed, not "
                          "eligible", flush=True)
                    backend = create_backend(backend_name, model, hw, channels, str(device), precision,
                                             weights_sha=sha, allow_export=True, options=options or None,
                                             batch=args.batch, reference=memo, tolerance=no_gate, **gate)
                except BackendUnavailable as exc:
                    skipped.append({"model": name, "height": hw[0], "width": hw[1], "variant": label(variant),
                                    "reason": str(exc)})
                    print(f"bench: {group} {label(variant)}: skipped: {exc}", flush=True)
                    continue
                image, radar = (t.to(device) for t in frames[0].inputs(hw, channels))
                if args.batch > 1:
                    image, radar = (t.expand(args.batch, -1, -1, -1).contiguous() for t in (image, radar))
                backend(image, radar)                       # first call (memory high-water mark)
                memory[label(variant)] = (_rss_mb("VmHWM") - before) if peak_ok else float("nan")
                built[label(variant)] = (variant, backend, time.perf_counter() - start, failed)
            calls = {lbl: (lambda b=b: b(image, radar)) for lbl, (_, b, _, _) in built.items()}
            print(f"bench: {group}: timing {', '.join(calls)}", flush=True)
            times = round_robin(calls, args.repeats, args.warmup, device)
            eager_times = times.get(label(("torch", "fp32", {})), [float("nan")])
            eager, eager_min = statistics.median(eager_times), min(eager_times)
            for lbl, (variant, backend, build_s, failed) in built.items():
                s = stats_ms(times[lbl])
                parity = failed or getattr(backend, "parity", None)
                rows.append({"model": name, "backend": variant[0], "precision": variant[1], "height": hw[0],
                             "width": hw[1], "median_ms": s["median_ms"], "p90_ms": s["p90_ms"],
                             "min_ms": s["min_ms"], "speedup_vs_eager_min": eager_min * 1000 / s["min_ms"],
                             "fps": args.batch * 1000 / s["median_ms"], "runs": s["runs"], "batch": args.batch,
                             "options": sorted(o for o, on in variant[2].items() if on), "label": lbl,
                             "description": backend.description, "speedup_vs_eager": eager * 1000 / s["median_ms"],
                             "memory_added_mb": memory[lbl], "build_s": build_s, "params_m": params / 1e6,
                             "gflops": flops, "parity": parity.to_dict() if parity is not None else None,
                             "eligible": failed is None})
                print(f"bench: {group} {lbl}: {s['median_ms']:.1f} ms (x{eager * 1000 / s['median_ms']:.2f} vs "
                      f"eager)", flush=True)
            del built, calls, reference, memo
            gc.collect()
        del model
        gc.collect()


# --- end to end, node, radar ----------------------------------------------------------------------------------

def _jpeg_1600x900() -> tuple[bytes, str]:
    from xdrcdepth_core.data.real_samples import DEFAULT_SAMPLES_DIR

    files = sorted((DEFAULT_SAMPLES_DIR / "samples" / "CAM_FRONT").glob("*.jpg"))
    if files:
        return files[0].read_bytes(), f"real nuScenes CAM_FRONT key frame ({files[0].name})"
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 1600, dtype=np.float32)[None, :, None] * np.ones((900, 1, 3), np.float32)
    image = np.clip(ramp + rng.normal(0, 20, (900, 1600, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue(), "synthetic 1600 x 900 JPEG (no real samples found)"


def _radar_points(n: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """``n`` returns in the camera optical frame, in front of a 1600 x 900 camera (most project inside)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(2.0, 80.0, n)
    xyz = np.column_stack([rng.uniform(-0.6, 0.6, n) * z, rng.uniform(-0.05, 0.15, n) * z, z])
    return xyz, {"rcs": rng.uniform(-5, 30, n), "vx_comp": rng.normal(size=n), "vy_comp": rng.normal(size=n)}


def _estimators(device: torch.device, variants: list[tuple[str, str]], input_hw=None) -> dict:
    """Eager fp32 and the first of ``variants`` (fastest first) whose estimator passes its own gate, for the
    shipped checkpoint at ``input_hw`` (None: the size it was trained at)."""
    from xdrcdepth_core.infer import DepthEstimator

    from xdrcdepth_core.backends import BackendUnavailable, ParityFailed

    out = {"torch fp32": DepthEstimator.from_checkpoint(None, device=str(device), backend="torch", precision="fp32",
                                                        input_hw=input_hw)}
    for backend, precision in variants:
        if (backend, precision) == ("torch", "fp32"):
            break
        try:
            out[f"{backend} {precision}"] = DepthEstimator.from_checkpoint(
                None, device=str(device), backend=backend, precision=precision, allow_export=True, input_hw=input_hw)
            break
        except (BackendUnavailable, ParityFailed) as exc:   # the estimator's own gate (its frames) said no
            print(f"bench: end to end and node: {backend} {precision} left out: {exc}", flush=True)
    return out


def bench_decode(jpeg: bytes, repeats: int) -> dict:
    import cv2
    from PIL import Image

    from xdrcdepth_core.imageio import decode_jpeg_fast

    def pil():
        with Image.open(io.BytesIO(jpeg)) as img:
            return np.asarray(img.convert("RGB"))

    def opencv():
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def pil_draft():
        with Image.open(io.BytesIO(jpeg)) as img:
            img.draft("RGB", (img.width // 2, img.height // 2))
            return np.asarray(img.convert("RGB"))

    def strict_simplejpeg():   # the node's decoder: simplejpeg in strict mode (requirements.txt installs it)
        return decode_jpeg_fast(jpeg)

    cpu = torch.device("cpu")
    times = round_robin({"PIL": pil, "OpenCV": opencv, "simplejpeg": strict_simplejpeg, "PIL draft 1/2": pil_draft},
                        repeats, 1, cpu)
    return {"PIL_ms": stats_ms(times["PIL"])["median_ms"], "OpenCV_ms": stats_ms(times["OpenCV"])["median_ms"],
            "simplejpeg_ms": stats_ms(times["simplejpeg"])["median_ms"],
            "PIL_draft_half_ms": stats_ms(times["PIL draft 1/2"])["median_ms"],
            "OpenCV_equals_PIL": bool(np.array_equal(pil(), opencv())),
            "simplejpeg_equals_PIL": bool(np.array_equal(pil(), strict_simplejpeg())),
            "draft_shape": list(pil_draft().shape)}


def bench_end_to_end(estimators: dict, jpeg: bytes, repeats: int, device: torch.device) -> dict:
    from xdrcdepth_core.imageio import decode_image   # the node's decoder (simplejpeg/OpenCV where exact, else PIL)
    from xdrcdepth_core.infer import RadarInput

    xyz, feats = _radar_points(100)
    out = {}
    for name, est in estimators.items():
        radars = [RadarInput(xyz, feats, np.eye(4))]
        parts: dict[str, list[float]] = {}
        totals = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            image = decode_image(jpeg)
            t1 = time.perf_counter()
            result = est.estimate(image, radars, FRONT_CAMERA_K)
            t2 = time.perf_counter()
            if i == 0:
                continue
            totals.append(t2 - t0)
            parts.setdefault("decode", []).append(t1 - t0)
            for key, value in result.timings.items():
                parts.setdefault(key, []).append(value)
        out[name] = {"total_ms": stats_ms(totals)["median_ms"],
                     **{f"{k}_ms": stats_ms(v)["median_ms"] for k, v in parts.items()}}
    return out


def bench_radar(estimator, repeats: int, image_hw=(900, 1600)) -> dict:
    from xdrcdepth_core.infer import RadarInput
    from xdrcdepth_core.preprocess import radar_to_tensor

    out = {}
    for n in (100, 1_000, 10_000, 100_000):
        xyz, feats = _radar_points(n, seed=n)
        radars = [RadarInput(xyz, feats, np.eye(4))]
        direct = estimator.radar_input(image_hw, radars, FRONT_CAMERA_K)
        full = radar_to_tensor(estimator.rasterize(image_hw, radars, FRONT_CAMERA_K), estimator.radar_channels,
                               estimator.input_hw).numpy()
        buffer = np.zeros_like(direct)

        def into_buffer():       # what estimate() does: its reused input buffer, cleared where written
            written = estimator.radar_input_into(buffer, image_hw, radars, FRONT_CAMERA_K)
            buffer.reshape(len(buffer), -1)[:, written] = 0.0

        times = round_robin({
            "direct": into_buffer,
            "raster": lambda: radar_to_tensor(estimator.rasterize(image_hw, radars, FRONT_CAMERA_K),
                                              estimator.radar_channels, estimator.input_hw)}, repeats, 1,
            torch.device("cpu"))
        cpu = []
        for _ in range(CHEAP_REPEATS):      # CPU time of this thread: the cost without other jobs' preemption
            t0 = time.thread_time()
            into_buffer()
            cpu.append(time.thread_time() - t0)
        out[str(n)] = {"direct_ms": stats_ms(times["direct"])["median_ms"],
                       "direct_cpu_ms": stats_ms(cpu)["median_ms"],
                       "direct_min_ms": stats_ms(times["direct"])["min_ms"],
                       "full_raster_ms": stats_ms(times["raster"])["median_ms"],
                       "identical": bool(np.array_equal(direct, full)),
                       "returns_in_input": int(np.count_nonzero(direct[0]))}
    return out


# --- report ---------------------------------------------------------------------------------------------------

def machine(device: torch.device) -> dict:
    from xdrcdepth_core.backends.capability import summary

    facts = summary()
    facts.update({"logical_cores": os.cpu_count(), "threads": torch.get_num_threads(),
                  "python": platform.python_version(), "system": platform.system(), "device": str(device)})
    return facts


def find(rows, **match):
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def student_variants_fastest_first(rows: list[dict]) -> list[tuple[str, str]]:
    """``(backend, precision)`` of the student rows at 352 x 704 that passed parity and need no torch option
    (the estimator path takes backend and precision only), fastest first: the end-to-end and node sections run
    the first one whose estimator passes its own parity check (its frames, the shipped input size)."""
    from xdrcdepth_core.models.summary import STUDENT

    plain = [r for r in rows if r["model"] == STUDENT and (r["height"], r["width"]) == (352, 704)
             and r.get("eligible", True) and not r["options"]]
    return [(r["backend"], r["precision"]) for r in sorted(plain, key=lambda r: -r["speedup_vs_eager"])]


def _overheads(paths: dict) -> str:
    return "; ".join(f"{k}: {v['overhead_ms']:.1f} ms = {100 * v['overhead_vs_forward']:.0f} %" for k, v in paths.items())


def evaluate_targets(report: dict) -> list[dict]:
    from xdrcdepth_core.models.summary import BASELINE, STUDENT

    rows, targets = [r for r in report["rows"] if r.get("eligible", True)], []

    # without the eager fp32 row (`--backends` without torch:fp32) there is nothing to compare with: no verdict
    student = [r for r in rows if r["model"] == STUDENT and (r["height"], r["width"]) == (352, 704)
               and math.isfinite(r["speedup_vs_eager"])]
    if student:
        best = max(student, key=lambda r: r["speedup_vs_eager"])
        targets.append({"target": f"best CPU backend for the student >= {TARGET_SPEEDUP:g}x eager fp32 at 352 x 704",
                        "value": f"{best['label']}: {best['speedup_vs_eager']:.2f}x on medians "
                                 f"({best['median_ms']:.0f} vs {best['median_ms'] * best['speedup_vs_eager']:.0f} ms), "
                                 f"{best['speedup_vs_eager_min']:.2f}x on minima; parity: "
                                 + (best["parity"]["rule"] if best.get("parity") else "the reference"),
                        "met": best["speedup_vs_eager"] >= TARGET_SPEEDUP})
    ratios = []
    for r in rows:
        if r["model"] != STUDENT:
            continue
        base = find(rows, model=BASELINE, label=r["label"], height=r["height"], width=r["width"])
        if base:
            ratios.append((r, base["median_ms"] / r["median_ms"], base["min_ms"] / r["min_ms"]))
    if ratios:
        worst = min(ratios, key=lambda item: item[1])
        worst_min = min(ratios, key=lambda item: item[2])
        targets.append({"target": f"student >= {TARGET_STUDENT_VS_BASELINE:g}x faster than LiRCDepth on the same "
                                  "backend (every backend and size)",
                        "value": f"lowest: {worst[1]:.2f}x ({worst[0]['label']}, {worst[0]['height']} x "
                                 f"{worst[0]['width']}); highest {max(v for _, v, _ in ratios):.2f}x; on minima lowest "
                                 f"{worst_min[2]:.2f}x ({worst_min[0]['label']}, {worst_min[0]['height']} x "
                                 f"{worst_min[0]['width']})",
                        "met": worst[1] >= TARGET_STUDENT_VS_BASELINE})
    node = report.get("node", {}).get("paths", {})
    at_frame = {k: v for k, v in node.items() if tuple(v["input_hw"]) == NODE_MODEL_INPUT}
    if at_frame:
        shipped = {k: v for k, v in node.items() if k not in at_frame}
        targets.append({"target": f"node overhead (receive -> publish minus the model call) <= "
                                  f"{100 * TARGET_NODE_OVERHEAD:g} % of the model call, 450 x 800 frames, model at "
                                  f"{NODE_MODEL_INPUT[0]} x {NODE_MODEL_INPUT[1]}",
                        "value": _overheads(at_frame) + (f" (the shipped student at the size it was trained at: "
                                                         f"{_overheads(shipped)})" if shipped else ""),
                        "met": all(v["overhead_vs_forward"] <= TARGET_NODE_OVERHEAD for v in at_frame.values()),
                        "met_at_shipped_input": all(v["overhead_vs_forward"] <= TARGET_NODE_OVERHEAD
                                                    for v in shipped.values())})
    radar = report.get("radar", {})
    if "10000" in radar:
        r = radar["10000"]
        targets.append({"target": f"radar rasterisation of 10,000 points < {TARGET_RADAR_MS:g} ms",
                        "value": f"wall median {r['direct_ms']:.2f} ms, min {r['direct_min_ms']:.2f} ms, CPU time "
                                 f"{r['direct_cpu_ms']:.2f} ms (single-threaded; the wall median includes preemption "
                                 f"at load {report['load_before']:.1f} on {report['machine']['logical_cores']} cores)",
                        "met": r["direct_ms"] < TARGET_RADAR_MS,
                        "met_on_cpu_time": r["direct_cpu_ms"] < TARGET_RADAR_MS})
    return targets


def markdown(report: dict) -> str:
    from xdrcdepth_core.models.summary import BASELINE, STUDENT

    m = report["machine"]
    lines = ["# Inference benchmark", "",
             f"- command: `{report['command']}`",
             f"- date: {report['date']}",
             f"- machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['threads']} threads per backend; "
             f"CPU flags of note: {', '.join(m['cpu_flags']) or 'none'}; native bf16: {m['native_bf16']}; "
             f"int8 dot products: {m['fast_int8']}; OpenVINO CPU capabilities: {', '.join(m['openvino_cpu'])}; "
             f"CUDA: {m['cuda'] or 'none'}",
             f"- software: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
             + f", Python {m['python']}, {m['system']}",
             f"- load average (1 min) before / after: {report['load_before']:.2f} / {report['load_after']:.2f} "
             f"on {m['logical_cores']} cores (other jobs share them: absolute times move, ratios hold better)",
             f"- batch {report['batch']}; weights: "
             + (", ".join(f"{k} {v}" for k, v in report.get("weights", {}).items()) or "untrained (seed 0)")
             + "; inputs from "
             f"{report.get('frames', 'real frames')}; "
             f"median and p90 over {report['repeats']} round-robin rounds after {report['warmup']} warm-up; every row "
             "but eager fp32 went through the parity check first (fp32: max |Δdepth| <= 1e-3 m; reduced precision of "
             "trained weights: MAE change <= 1 % on GT pixels; of untrained weights: that and mean |Δ| <= 1 % of "
             "mean depth; the parity column has each row's numbers); a row whose parity **fails** is "
             "timed to show what the precision would buy, and is never counted for a target nor chosen by `auto`",
             ""]
    targets = report.get("targets", [])
    if targets:
        lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'}"
                  + (f" (CPU time: {'yes' if t['met_on_cpu_time'] else 'no'})" if "met_on_cpu_time" in t else "")
                  + (f" (shipped input: {'yes' if t['met_at_shipped_input'] else 'no'})"
                     if "met_at_shipped_input" in t else "")
                  + " |" for t in targets]
        lines.append("")
    rows = report["rows"]
    if rows:
        lines += ["## Models x input sizes x backends", "",
                  "| model | input | backend | median ms | p90 ms | min ms | FPS | vs eager fp32 (median) | "
                  "(min) | memory added MB | parity |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            p = r["parity"]
            parity = "reference" if p is None else (f"max {p['max_abs_m']:.1e} m" if r["precision"] == "fp32"
                                                    else f"mean {100 * p['rel_mean_abs']:.2f} %"
                                                    + ("" if p["rel_mae_change"] is None else
                                                       f", MAE change {100 * p['rel_mae_change']:.2f} %"))
            if not r.get("eligible", True):
                parity = f"**fails**: {parity}"
            lines.append(f"| {r['model']} | {r['height']} x {r['width']} | {r['label']} | {r['median_ms']:.1f} | "
                         f"{r['p90_ms']:.1f} | {r['min_ms']:.1f} | {r['fps']:.2f} | {r['speedup_vs_eager']:.2f}x | "
                         f"{r['speedup_vs_eager_min']:.2f}x | "
                         f"{max(r['memory_added_mb'], 0):.0f} | {parity} |")
        lines.append("")
        labels = list(dict.fromkeys(r["label"] for r in rows))
        sizes = list(dict.fromkeys((r["height"], r["width"]) for r in rows))
        ratio_lines = []
        for hw in sizes:
            for lbl in labels:
                s = find(rows, model=STUDENT, label=lbl, height=hw[0], width=hw[1])
                b = find(rows, model=BASELINE, label=lbl, height=hw[0], width=hw[1])
                t = find(rows, model="cafnet", label=lbl, height=hw[0], width=hw[1])
                if s and (b or t):
                    ratio_lines.append(
                        f"| {hw[0]} x {hw[1]} | {lbl} | {s['median_ms']:.1f} | "
                        + (f"{b['median_ms']:.1f} | {b['median_ms'] / s['median_ms']:.2f}x" if b else "- | -")
                        + " | " + (f"{t['median_ms']:.1f} | {t['median_ms'] / s['median_ms']:.2f}x" if t else "- | -")
                        + " |")
        if ratio_lines:
            lines += ["## Student vs baseline vs teacher (same backend, same run)", "",
                      "| input | backend | xdrcdepth ms | lircdepth ms | student speed-up | cafnet ms | student "
                      "speed-up |", "|---|---|---|---|---|---|---|", *ratio_lines, ""]
    if report["skipped"]:
        lines += ["Not timed here:", ""]
        seen = set()
        for s in report["skipped"]:
            key = (s["variant"], s["reason"])
            if key not in seen:
                seen.add(key)
                where = f" {s['height']} x {s['width']}" if "height" in s else ", every size"
                lines.append(f"- {s['variant']} ({s['model']}{where}): {s['reason']}")
        lines.append("")
    if "decode" in report:
        d = report["decode"]
        lines += ["## End to end: 1600 x 900 JPEG -> depth", "",
                  f"Image: {report['jpeg']}. Decoding: PIL {d['PIL_ms']:.1f} ms, simplejpeg (strict) "
                  f"{d['simplejpeg_ms']:.1f} ms (pixels identical to PIL: {d['simplejpeg_equals_PIL']}), OpenCV "
                  f"{d['OpenCV_ms']:.1f} ms (identical: {d['OpenCV_equals_PIL']}), PIL draft at half size "
                  f"{d['PIL_draft_half_ms']:.1f} ms "
                  "(DCT-domain downscale: different pixels from decode + antialiased resize, so not used). The node "
                  "decodes JPEGs with simplejpeg in strict mode (corrupt data is an error), OpenCV where simplejpeg "
                  "is missing, PIL for anything but a well-formed JPEG.", "",
                  "| backend | total ms | decode | rasterize | preprocess | forward | postprocess |",
                  "|---|---|---|---|---|---|---|"]
        for name, e in report["end_to_end"].items():
            lines.append(f"| {name} | {e['total_ms']:.1f} | {e['decode_ms']:.1f} | {e['rasterize_ms']:.1f} | "
                         f"{e['preprocess_ms']:.1f} | {e['forward_ms']:.1f} | {e['postprocess_ms']:.1f} |")
        lines.append("")
    if "node" in report:
        n = report["node"]
        lines += [f"## Node path: {n['frame']} frames, {n['radar_points']} radar returns", "",
                  "`DepthNode._process` in this process (message -> numpy, TF, estimate, depth and camera_info "
                  "messages published; no DDS transport, no colorized subscriber) vs the bare model call inside it, "
                  f"medians over {n['frames_timed']} frames per row after one warm-up:",
                  "", "| backend, transport | receive -> publish ms | model call ms | overhead ms | overhead / model |",
                  "|---|---|---|---|---|"]
        for name, p in n["paths"].items():
            lines.append(f"| {name} | {p['process_ms']:.1f} | {p['forward_ms']:.1f} | {p['overhead_ms']:.1f} | "
                         f"{100 * p['overhead_vs_forward']:.1f} % |")
        lines += ["", "Conversion costs (median ms): " + ", ".join(f"{k} {v:.2f}"
                                                                    for k, v in n["conversions_ms"].items()), ""]
    if "radar" in report:
        lines += ["## Radar rasterisation (1600 x 900 camera, model input 352 x 704)", "",
                  "Direct: the points straight into the estimator's reused model-input buffer (what `estimate` "
                  "does); wall-clock median and minimum, and the median CPU time of the thread (single-threaded numpy: "
                  "the cost when no other job preempts it). Full raster: the 1600 x 900 raster, then resized.", "",
                  "| points | direct ms (median) | (min) | direct CPU ms (median) | full-resolution raster + resize "
                  "ms | identical |", "|---|---|---|---|---|---|"]
        for n, r in report["radar"].items():
            lines.append(f"| {int(n):,} | {r['direct_ms']:.2f} | {r.get('direct_min_ms', float('nan')):.2f} | "
                         f"{r.get('direct_cpu_ms', float('nan')):.2f} | {r['full_raster_ms']:.2f} | {r['identical']} |")
        lines.append("")
    lines += ["## GPU", "", report.get("gpu_note", "")]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from xdrcdepth_core.atomic import atomic_write_bytes
    from xdrcdepth_core.device import resolve_device

    for option, folder in (("--frames", args.frames), ("--calibration", args.calibration)):
        if folder and not Path(folder).is_dir():    # else every model is skipped and an empty report written
            say(f"{PROG}: {option}: cache folder not found: {folder}")
            return 2
    from xdrcdepth_core.imageio import DEFAULT_MAX_IMAGE_PIXELS

    largest = max((h * w for h, w in args.sizes), default=0)
    if args.batch * largest > DEFAULT_MAX_IMAGE_PIXELS:     # each size is bounded; a batch of them is too
        say(f"{PROG}: --batch {args.batch} of the largest --sizes ({largest} pixels) is {args.batch * largest} "
            f"pixels, more than {DEFAULT_MAX_IMAGE_PIXELS} (4096 x 4096, the depth node's max_image_pixels)")
        return 2
    args.out = args.out or (CHECKOUT_REPORT if CHECKOUT_REPORT.parent.is_dir() else OTHER_REPORT)
    json_path = args.json or args.out.with_suffix(".json")
    if os.path.realpath(json_path) == os.path.realpath(args.out):   # the report was replaced by the JSON
        say(f"{PROG}: --json {json_path} is the --out report: give them different names")
        return 2
    if problem := output_overlap({"--out": args.out, "--json": json_path},
                                 {"--frames": args.frames, "--calibration": args.calibration}):
        say(f"{PROG}: error: {problem}")
        return 2
    for path in (args.out, json_path):      # found only at the write, after the whole benchmark
        if code := output_file_problem(PROG, path):
            return code
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    report = {"command": "xdrcdepth bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(device),
              "load_before": os.getloadavg()[0], "repeats": args.repeats, "warmup": args.warmup,
              "batch": args.batch, "rows": [], "skipped": []}
    report["command"] = report["command"].strip()
    start = time.monotonic()
    if "models" not in args.skip:
        bench_models(args, device, report)
    if not {"e2e", "node", "radar"} <= set(args.skip):
        variants = student_variants_fastest_first(report["rows"])
        estimators = _estimators(device, variants)
        if "e2e" not in args.skip:
            jpeg, report["jpeg"] = _jpeg_1600x900()
            report["decode"] = bench_decode(jpeg, CHEAP_REPEATS)
            report["end_to_end"] = bench_end_to_end(estimators, jpeg, args.repeats, device)
        if "node" not in args.skip:
            from xdrcdepth_ros.node_bench import bench_node   # the ROS side, only for this section

            # the measurement runs the model at the frame size (450 x 800 -> 448 x 800); the shipped node
            # runs it at the size it was trained at: both, side by side
            at_frame = _estimators(device, variants, NODE_MODEL_INPUT)
            labelled = {f"{name}, model {e.input_hw[0]} x {e.input_hw[1]}": e
                        for group in (at_frame, estimators) for name, e in group.items()}
            # a frame costs tens of ms and the overhead a few: its median needs more frames than the model rows
            report["node"] = bench_node(labelled, max(args.repeats, CHEAP_REPEATS), NODE_FRAME)
            del at_frame, labelled
        if "radar" not in args.skip:
            report["radar"] = bench_radar(estimators["torch fp32"], CHEAP_REPEATS)
    if "models" not in args.skip and not report["rows"]:     # an empty report replaced the committed one, exit 0
        reasons = sorted({s["reason"] for s in report["skipped"]})
        say(f"{PROG}: nothing was timed ({'; '.join(reasons) or 'no model, size or backend left'}); "
            f"{args.out} left as it was")
        return 1
    report["gpu_note"] = ("No GPU on this machine: the CUDA paths (torch fp16, CUDA graphs, ONNX Runtime CUDA, "
                          "TensorRT) were not measured. On a GPU machine run `scripts/bench_gpu.sh` (writes "
                          "docs/benchmarks/inference_gpu.md/.json: eager fp32/fp16, CUDA graphs, TensorRT, and a "
                          "batch of 6 cameras)." if device.type != "cuda" else
                          f"Measured on {report['machine']['cuda']} (rows above).")
    report["targets"] = evaluate_targets(report)
    report["load_after"] = os.getloadavg()[0]
    report["duration_s"] = time.monotonic() - start
    text = markdown(report)
    for path, data in ((args.out, text.encode()), (json_path, json.dumps(report, indent=1, default=str).encode())):
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:      # full or read-only disk, a folder where the file goes
            say(os_error_line(PROG, exc, path))
            return 1
    print(text)
    print(f"bench: {len(report['rows'])} rows in {report['duration_s']:.0f} s -> {args.out}, {json_path}")
    return 0
