"""``xdrcdepth demo``: run the student on nuScenes-format frames and write depth pictures.

Without ``--dataroot`` the demo assembles the real scene-0061 samples from ``../shared`` (if present) into
a temporary nuScenes folder, else it synthesises one scene with ``xdrcdepth synth``. For every key frame
it writes ``<out>/<token>.png`` (the token made a safe file name:
:func:`~xdrcdepth_core.file_names.token_file_name`): camera image with radar returns | colorized depth |
Grad-CAM saliency overlay | LiDAR ground truth (where present), and prints metrics against LiDAR where there
is any.
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from xdrcdepth_core.atomic import atomic_write_bytes
from xdrcdepth_core.cli_args import EXIT_USAGE, os_error_line, output_folder_problem, path_argument, positive_int, say
from xdrcdepth_core.data.real_samples import DEFAULT_SAMPLES_DIR, SAMPLES_ENV
from xdrcdepth_core.device import add_device_argument
from xdrcdepth_core.file_names import token_file_name

LOG = logging.getLogger("xdrcdepth.demo")
PROG = "xdrcdepth demo"
#: how a user of a command with ``--dataroot`` gives other data than the default (:func:`default_dataroot`)
DATAROOT_HINT = ", or give --dataroot a nuScenes-format folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", type=path_argument, help="nuScenes-format folder (default: real samples "
                        "from ../shared, else a synthetic scene)")
    parser.add_argument("--version", default="v1.0-mini")
    parser.add_argument("--checkpoint", default="", help="checkpoint path (default: shipped, else untrained)")
    add_device_argument(parser)
    parser.add_argument("--out", type=path_argument, default=Path("artifacts/demo"), help="output folder for PNGs")
    parser.add_argument("--max-samples", type=positive_int, default=6, help="frames to run (default %(default)s)")


def real_samples_dir() -> Path | None:
    """The real samples' folder (../shared's, or ``$XDRCDEPTH_NUSCENES_SAMPLES``) when it holds them, else None."""
    return DEFAULT_SAMPLES_DIR if (DEFAULT_SAMPLES_DIR / "frames.json").is_file() else None


def default_dataroot(workdir: Path, elsewhere: str = "") -> tuple[Path, str]:
    """Real samples when ../shared (or ``$XDRCDEPTH_NUSCENES_SAMPLES``) has them, else one small synthetic scene;
    returns (dataroot, label). The synthetic scene's label says where the samples were looked for, how to name
    another folder, and ``elsewhere`` (the caller's other way, e.g. :data:`DATAROOT_HINT`)."""
    if real_samples_dir() is not None:
        from xdrcdepth_core.data.real_samples import assemble_real_samples

        return assemble_real_samples(workdir / "real"), f"real nuScenes samples from {DEFAULT_SAMPLES_DIR}"
    from xdrcdepth_core.data.synthetic.writer import SynthConfig, synthesize

    root = workdir / "synthetic"
    synthesize(SynthConfig(out=root, scenes=1, keyframes=2, image_scale=0.5, camera_sweeps=False), progress=False)
    return root, (f"synthetic scene (no real nuScenes samples: no {DEFAULT_SAMPLES_DIR / 'frames.json'}; set "
                  f"{SAMPLES_ENV} to the samples folder{elsewhere})")


def panel(sample: dict, depth: np.ndarray, saliency: np.ndarray, max_depth: float) -> np.ndarray:
    """2 x 2 picture: image + radar, predicted depth, saliency overlay, LiDAR ground truth."""
    from xdrcdepth_core.visualize import colorize_depth, overlay_saliency, sparse_overlay

    image = sample["image"]
    with_radar = sparse_overlay(image, sample["radar"][0], max_depth, radius=4)
    with_gt = sparse_overlay(image // 3, sample["depth_gt"], max_depth, radius=1)
    top = np.concatenate([with_radar, colorize_depth(depth, max_depth)], axis=1)
    bottom = np.concatenate([overlay_saliency(image, saliency), with_gt], axis=1)
    return np.concatenate([top, bottom], axis=0)


def write_png(path: Path, rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from xdrcdepth_core.data.nuscenes_dataset import NuScenesDepthDataset, NuScenesLoadError, UnknownChannelError
    from xdrcdepth_core.infer import DepthEstimator
    from xdrcdepth_core.metrics import MetricAccumulator

    if code := output_folder_problem(PROG, args.out):     # before a model is loaded or a frame rendered
        return code
    with tempfile.TemporaryDirectory(prefix="xdrcdepth-demo-") as tmp:
        dataroot, label = ((args.dataroot, str(args.dataroot)) if args.dataroot
                           else default_dataroot(Path(tmp), DATAROOT_HINT))
        # every frame computes Grad-CAM saliency, which runs the eager fp32 model: no other backend to load
        try:
            estimator = DepthEstimator.from_checkpoint(args.checkpoint, device=args.device, backend="torch",
                                                       precision="fp32")
        except (OSError, ValueError) as exc:
            say(f"{PROG}: {exc}")
            return EXIT_USAGE
        try:
            dataset = NuScenesDepthDataset(dataroot, args.version, split="all", require_lidar=False,
                                           radar_channels=estimator.radar_channels)
        except (NuScenesLoadError, UnknownChannelError) as exc:
            say(f"{PROG}: error: {exc}")     # the one line of a usage error: no progress note before it
            return EXIT_USAGE
        LOG.info("model %s on %s, input %s; data: %s", estimator.model_id, estimator.device,
                 estimator.input_hw, label)
        try:                        # the output folder before the first frame: a path through a file fails now
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            say(os_error_line(PROG, exc, args.out))
            return 1
        metrics = MetricAccumulator()
        n = min(len(dataset), args.max_samples)
        forward_s = []
        progress = tqdm(range(n), desc="demo", unit="frame")
        for i in progress:
            try:
                sample = dataset[i]
            except (OSError, ValueError) as exc:    # an unreadable image or radar file, named in the message
                progress.close()                    # the error on a line of its own, below the bar
                say(f"{PROG}: error: {exc}")
                return EXIT_USAGE
            t0 = time.perf_counter()
            result = estimator.estimate_raster(sample["image"], sample["radar"], saliency=True)
            forward_s.append(time.perf_counter() - t0)
            if sample["depth_gt"].any():
                metrics.update(result.depth, sample["depth_gt"])
            path = args.out / f"{token_file_name(sample['token'])}.png"
            try:
                write_png(path, panel(sample, result.depth, result.saliency, estimator.max_depth))
            except OSError as exc:                  # full or read-only disk
                progress.close()
                say(os_error_line(PROG, exc, path))
                return 1
    if metrics.results():
        print(metrics.format_table())
    print(f"demo: {n} frames -> {args.out}/*.png, model {estimator.model_id} on {estimator.device}, "
          f"{1000 * np.median(forward_s):.0f} ms/frame median (with saliency)")
    return 0
