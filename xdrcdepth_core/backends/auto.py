"""``backend="auto"``: the fastest backend that runs here and passes the parity check, chosen by measurement.

1. Candidates from what the machine reports (:mod:`.capability`), never from assumptions:

   * always the reference, eager fp32;
   * CPU: torch fp32 channels_last; torch bf16 (channels_last) only with native bf16 (AVX512-BF16/AMX) —
     emulated bf16 measured ~8x slower than fp32 on an AMD EPYC without AVX-512; ONNX Runtime fp32 and
     OpenVINO fp32 when installed; OpenVINO bf16 when its CPU plugin reports BF16; int8 (OpenVINO, ONNX
     Runtime) only with VNNI/AMX-INT8;
   * CUDA: torch fp16, torch fp16 with CUDA graphs, ONNX Runtime's CUDA provider (GPU build), TensorRT
     (ONNX Runtime's TensorRT provider or torch-tensorrt).

   ``precision`` restricts them to one precision.
2. Each candidate is built (exported graphs come from the artefact cache, exported on first use when
   ``allow_export``) and must pass :func:`~.parity.check_parity` on real frames.
3. A quick speed probe (median of 3 calls after a warm-up, on a real frame) picks the fastest.

The decision is recorded under ``cache_root()/auto/`` per model weights, input size, device, requested
precision and machine (CPU flags, runtime versions), so later starts (the node after a restart, the process
that compares with it) build only the chosen backend and agree on it.

Without ``allow_export`` (``DepthEstimator(model)`` on an in-memory module, ``from_checkpoint`` by default),
auto only considers the reference and graphs already exported and verified for these weights: an export
takes tens of seconds to minutes on 2 cores, which must not recur at every training-validation epoch.
The node and ``xdrcdepth bench`` allow it (once per checkpoint and input size).
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from dataclasses import asdict
from datetime import datetime, timezone

import torch

from xdrcdepth_core.backends import (RUNTIME_PARITY_FRAMES, Backend, BackendUnavailable, ParityFailed, _machine_tag,
                                     artefact_file, create_backend)
from xdrcdepth_core.backends.capability import (cpu_has_fast_int8, has_module, onnxruntime_providers,
                                                openvino_cpu_capabilities, summary)
from xdrcdepth_core.backends.frames import cache_root, frames_for
from xdrcdepth_core.backends.parity import ParityTolerance
from xdrcdepth_core.train.precision import cpu_has_native_bf16

LOG = logging.getLogger(__name__)

AUTO_FORMAT = 1
PROBE_WARMUP, PROBE_RUNS = 1, 3


def candidates(device: str, precision: str | None = None, full: bool = True) -> list[tuple[str, str, dict]]:
    """``(backend, precision, torch options)`` worth trying here, the reference first (module docstring)."""
    cuda = torch.device(device).type == "cuda"
    out: list[tuple[str, str, dict]] = [("torch", "fp32", {})]
    if cuda:
        if full:
            out += [("torch", "fp16", {}), ("torch", "fp16", {"cuda_graphs": True})]
        if "CUDAExecutionProvider" in onnxruntime_providers():
            out.append(("onnxruntime", "fp32", {}))
        if "TensorrtExecutionProvider" in onnxruntime_providers() or has_module("torch_tensorrt"):
            out.append(("tensorrt", "fp16", {}))
    else:
        if full:
            out.append(("torch", "fp32", {"channels_last": True}))
            if cpu_has_native_bf16():
                out.append(("torch", "bf16", {}))
        if has_module("onnxruntime"):
            out.append(("onnxruntime", "fp32", {}))
        if has_module("openvino"):
            out.append(("openvino", "fp32", {}))
            if "BF16" in openvino_cpu_capabilities():
                out.append(("openvino", "bf16", {}))
        if cpu_has_fast_int8():
            out += [("openvino", "int8", {}), ("onnxruntime", "int8", {})]
    if precision is not None:
        out = [c for c in out if c[1] == precision]
    return out


def _label(name: str, precision: str, options: dict) -> str:
    return f"{name} {precision}" + (f" {sorted(k for k, v in options.items() if v)}" if options else "")


class _MemoReference:
    """The reference backend with its outputs remembered per input, so each frame runs eagerly once."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.outputs: dict[str, torch.Tensor] = {}

    def __call__(self, image: torch.Tensor, radar: torch.Tensor) -> torch.Tensor:
        h = hashlib.sha1()
        for t in (image, radar):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        key = h.hexdigest()
        if key not in self.outputs:
            self.outputs[key] = self.backend(image, radar)
        return self.outputs[key]


def _probe(backend, image: torch.Tensor, radar: torch.Tensor) -> float:
    """Median seconds of a call (after warm-up)."""
    cuda = image.device.type == "cuda"
    for _ in range(PROBE_WARMUP):
        backend(image, radar)
    times = []
    for _ in range(PROBE_RUNS):
        if cuda:
            torch.cuda.synchronize(image.device)
        t0 = time.perf_counter()
        backend(image, radar)
        if cuda:
            torch.cuda.synchronize(image.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def select_backend(model: torch.nn.Module, input_hw, radar_channels, device: str, precision: str | None = None,
                   *, weights_sha: str | None = None, allow_export: bool = True, frames=None, batch: int = 1,
                   tolerance: ParityTolerance = ParityTolerance()) -> Backend:
    """The backend ``auto`` stands for (module docstring). The returned backend has ``selection``: the
    record of what was tried, measured and chosen. ``tolerance``: the parity gate (``trained=True`` for
    checkpoint weights)."""
    from xdrcdepth_core.atomic import atomic_write_bytes
    from xdrcdepth_core.backends.torch_backend import TorchBackend

    cands = candidates(device, precision, full=allow_export)
    if not cands:
        raise BackendUnavailable(f"auto: no backend here runs precision {precision}")
    reference = TorchBackend(model, device, "fp32")
    if len(cands) > 1 and weights_sha is None:
        from xdrcdepth_core.checkpoint import weights_digest

        weights_sha = weights_digest(model.state_dict())
    if not allow_export:   # only graphs already exported for these weights
        model_name = getattr(model, "name", type(model).__name__)
        cands = [c for c in cands if c[0] == "torch" or artefact_file(c[0], c[1], model_name, weights_sha,
                                                                        input_hw, batch).is_file()]
    if cands in ([("torch", "fp32", {})], []):
        if not cands and precision != "fp32":
            raise BackendUnavailable(f"auto: nothing exported runs {precision} here for this model "
                                     "(allow the export, or export it first: xdrcdepth export)")
        reference.parity, reference.selection = None, {"chosen": _label("torch", "fp32", {}),
                                                       "why": "the only candidate"}
        return reference
    key = hashlib.sha256(json.dumps({
        "format": AUTO_FORMAT, "model": getattr(model, "name", type(model).__name__), "weights": weights_sha,
        "hw": list(input_hw), "batch": batch, "device": torch.device(device).type, "precision": precision,
        "export": allow_export, "machine": _machine_tag(), "tolerance": asdict(tolerance)}, sort_keys=True).encode()).hexdigest()[:20]
    record_path = cache_root() / "auto" / f"{key}.json"
    common = dict(weights_sha=weights_sha, batch=batch, reference=reference, tolerance=tolerance)
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
            name, prec, options = record["chosen_spec"]
            parity = next(c.get("parity") for c in record["candidates"] if c["candidate"] == record["chosen"])
            backend = reference if (name, prec, options) == ("torch", "fp32", {}) else create_backend(
                name, model, input_hw, radar_channels, device, prec, allow_export=False, options=options or None,
                verified=parity, **common)
            backend.parity = getattr(backend, "parity", None)
            backend.selection = record
            return backend
        except (OSError, ValueError, KeyError, TypeError, StopIteration, BackendUnavailable) as exc:
            LOG.info("auto: recorded choice not usable (%s); selecting again", exc)

    given_frames = frames
    if frames is None:
        frames, _ = frames_for(None, radar_channels, limit=RUNTIME_PARITY_FRAMES)
    memo = _MemoReference(reference)
    tried, built = [], []
    for name, prec, options in cands:
        label = _label(name, prec, options)
        if (name, prec, options) == ("torch", "fp32", {}):
            built.append(((name, prec, options), reference))
            tried.append({"candidate": label, "parity": None})
            continue
        try:
            backend = create_backend(name, model, input_hw, radar_channels, device, prec, frames=given_frames,
                                     allow_export=allow_export, options=options or None,
                                     weights_sha=weights_sha, batch=batch, reference=memo, tolerance=tolerance)
        except BackendUnavailable as exc:
            tried.append({"candidate": label, "skipped": str(exc)})
            continue
        except ParityFailed as exc:
            tried.append({"candidate": label, "skipped": "parity", "parity": exc.report.to_dict()})
            continue
        built.append(((name, prec, options), backend))
        tried.append({"candidate": label, "parity": backend.parity.to_dict()})
    image, radar = (t.to(device) for t in frames[0].inputs(input_hw, radar_channels))
    if batch > 1:
        image, radar = image.expand(batch, -1, -1, -1).contiguous(), radar.expand(batch, -1, -1, -1).contiguous()
    times = {}
    for spec, backend in built:
        times[_label(*spec)] = _probe(backend, image, radar)
        next(t for t in tried if t["candidate"] == _label(*spec))["probe_ms"] = 1000 * times[_label(*spec)]
    spec, chosen = min(built, key=lambda item: times[_label(*item[0])])
    record = {"chosen": _label(*spec), "chosen_spec": list(spec), "candidates": tried,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": summary(),
              "threads": torch.get_num_threads(), "input_hw": list(input_hw), "weights_sha256": weights_sha}
    atomic_write_bytes(record_path, json.dumps(record, indent=1).encode())
    LOG.info("auto: %s (%s)", chosen.description, ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in times.items()))
    chosen.selection = record
    if chosen is reference:
        chosen.parity = None
    return chosen
