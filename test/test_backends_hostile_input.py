"""Exported backends when the export is cut short: a Ctrl-C that torch's exporter turns into its own error (or
swallows) is a ``KeyboardInterrupt`` (exit 130 in the commands), never a ``.failed`` record that refuses every
later export of the checkpoint; a failed step is reported once."""

import contextlib
import os
import re
import signal
from pathlib import Path

import pytest
import torch

from xdrcdepth_core.backends import BackendUnavailable, create_backend, export
from xdrcdepth_core.models import build_model

CHANNELS = ("depth", "rcs", "vx_comp", "vy_comp")
HW = (64, 128)
WEIGHTS = "0" * 64          # a weights digest of our own: the artefact folder, without hashing the weights


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("xdrcdepth", width_mult=0.5).eval()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDRCDEPTH_CACHE", str(tmp_path))
    return tmp_path


@contextlib.contextmanager
def ctrl_c_raises_keyboard_interrupt():
    """Python's own SIGINT handler, whatever the test runner put in place (a worker may ignore SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ctrl_c():
    """A Ctrl-C as Python delivers it: the SIGINT handler in place called in the main thread. Not a real signal
    (``signal.raise_signal``): once two OpenVINO models compiled in this process (by other tests) are freed in the
    order they were made, the main thread's alternate signal stack is freed memory and any signal Python handles
    crashes the process (SIGSEGV inside raise()), which is not what this test is about."""
    signal.getsignal(signal.SIGINT)(signal.SIGINT, None)


def ctrl_c_reported_as_export_error(model, input_hw, path, *args, **kwargs):
    # what torch.onnx.export(dynamo=True) did with a real Ctrl-C during the trace: the KeyboardInterrupt raised in
    # a capture strategy came out as "TorchExportError: Failed to export the model with torch.export"
    try:
        ctrl_c()
    except KeyboardInterrupt:
        raise RuntimeError("Failed to export the model with torch.export. This is step 1/3") from None
    raise AssertionError("SIGINT did not raise KeyboardInterrupt")


def ctrl_c_swallowed(model, input_hw, path, *args, **kwargs):
    # the other outcome: a fallback capture strategy finished the export after the interrupted one
    try:
        ctrl_c()
    except KeyboardInterrupt:
        pass
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"a complete graph")
    return path


def failed_records(root):
    return sorted(p.name for p in root.rglob("*.failed"))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_ctrl_c_the_exporter_reports_as_its_error_is_an_interrupt_and_no_failure_record(model, cache, monkeypatch,
                                                                                          backend):
    # before: BackendUnavailable ("openvino: export failed: openvino: export failed: Failed to export ...", exit 2 in
    # `xdrcdepth export`) and model.onnx.failed + openvino_fp32.xml.failed, so every later run said "exporting
    # failed before on this machine" until someone found and deleted the records in the cache
    monkeypatch.setattr(export, "export_onnx", ctrl_c_reported_as_export_error)
    with ctrl_c_raises_keyboard_interrupt(), pytest.raises(KeyboardInterrupt):
        create_backend(backend, model, HW, CHANNELS, "cpu", "fp32", weights_sha=WEIGHTS, allow_export=True)
    assert failed_records(cache) == []
    # the next run exports again (here: fails for a reason of its own, says so once, and records it)
    calls = []

    def broken_exporter(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(export, "export_onnx", broken_exporter)
    with ctrl_c_raises_keyboard_interrupt(), pytest.raises(BackendUnavailable) as info:
        create_backend(backend, model, HW, CHANNELS, "cpu", "fp32", weights_sha=WEIGHTS, allow_export=True)
    assert len(calls) == 1 and str(info.value) == f"{backend}: export failed: unsupported operator"
    assert failed_records(cache) == ["model.onnx.failed"]
    with ctrl_c_raises_keyboard_interrupt(), pytest.raises(BackendUnavailable, match=r"exporting failed before on "
                                                                                       r"this machine: RuntimeError: "
                                                                                       r"unsupported operator"):
        create_backend(backend, model, HW, CHANNELS, "cpu", "fp32", weights_sha=WEIGHTS, allow_export=True)
    assert len(calls) == 1


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_ctrl_c_the_exporter_swallows_still_stops(model, cache, monkeypatch, backend):
    # before: the run went on (parity check, conversion, timing) as if no Ctrl-C had come; the graph itself, complete
    # and put in place atomically, stays for the next run
    monkeypatch.setattr(export, "export_onnx", ctrl_c_swallowed)
    with ctrl_c_raises_keyboard_interrupt(), pytest.raises(KeyboardInterrupt):
        create_backend(backend, model, HW, CHANNELS, "cpu", "fp32", weights_sha=WEIGHTS, allow_export=True)
    assert failed_records(cache) == []
    assert [p.read_bytes() for p in cache.rglob("model.onnx")] == [b"a complete graph"]


def test_only_interrupts_are_seen_and_the_handler_in_place_is_restored():
    from xdrcdepth_core.cli_args import interrupts_seen

    with ctrl_c_raises_keyboard_interrupt():
        with interrupts_seen() as seen:
            with pytest.raises(KeyboardInterrupt):
                ctrl_c()
        assert seen == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))   # as cli_args.sigint_held
    try:
        with interrupts_seen() as seen:
            ctrl_c()
        assert seen == [] and held == [signal.SIGINT]       # held, not an interrupt: the export goes on
    finally:
        signal.signal(signal.SIGINT, previous)


def test_export_refuses_a_batch_beyond_the_pixel_limit_before_any_work(cache, tmp_path, capsys):
    # --batch 100000 of the shipped student's 128 x 256 went on to allocate 39 GB for the export's example input
    # (a "can't allocate memory" export failure, recorded as such for that batch) or, on a larger machine, to run
    from xdrcdepth_core.cli import main

    out = tmp_path / "out" / "x.onnx"
    assert main(["export", "--format", "onnx", "--batch", "100000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == ("xdrcdepth export: --batch 100000 of 128 x 256 inputs is 3276800000 pixels, more than 16777216 "
                   "(4096 x 4096, the depth node's max_image_pixels); give a smaller --batch\n")
    assert not out.parent.exists() and failed_records(cache) == []


def test_export_with_a_read_only_cache_names_the_cache_and_how_to_move_it(tmp_path, monkeypatch, capsys):
    """The parity frames are built into the cache on first use: a read-only cache was 'xdrcdepth export: [Errno
    30] Read-only file system: ...', exit code 2, as if the arguments were wrong."""
    from fs_faults import readonly_dir
    from xdrcdepth_core.cli import main

    out = tmp_path / "out" / "x.onnx"
    with readonly_dir(tmp_path / "ro") as ro:
        monkeypatch.setenv("XDRCDEPTH_CACHE", str(ro))
        assert main(["export", "--format", "onnx", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    cause = "read-only file system [Errno 30]" if os.geteuid() == 0 else "permission denied [Errno 13]"  # a mount
    assert err.splitlines()[-1] == (f"xdrcdepth export: cannot write {ro}/frames: {cause} "
                                    f"(the cache folder {ro}; XDRCDEPTH_CACHE moves it)")
    assert not out.exists()


@pytest.mark.slow
def test_export_on_a_full_disk_names_the_file_it_could_not_write(tmp_path):
    """Each write of the export under a file size limit (a full disk as the process sees it): the parity frames,
    then the cached graph (was 'onnxruntime: export failed: [Errno 27] File too large', exit code 2, no file
    named), then ``--out`` (was 'cannot write output'). One line each, exit code 1."""
    import subprocess
    import sys

    from fs_faults import file_size_limit

    cache, out = tmp_path / "cache", tmp_path / "out" / "x.onnx"

    def export_command(limit=None):
        proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "export", "--format", "onnx", "--out",
                               str(out)], capture_output=True, text=True, timeout=300,
                              preexec_fn=file_size_limit(limit) if limit else None,
                              env={**os.environ, "XDRCDEPTH_CACHE": str(cache), "PYTHONDONTWRITEBYTECODE": "1"})
        return proc.returncode, proc.stderr.splitlines()[-1] if proc.stderr else ""

    too_large = "file too large for this file system or process limit [Errno 27]"
    code, line = export_command(limit=100_000)            # a parity frame (~2 MB) is the first file written
    assert code == 1 and re.fullmatch(f"xdrcdepth export: cannot write {re.escape(str(cache))}/frames/[0-9a-f]+/"
                                      f"00_[0-9a-f]+\\.npz: {re.escape(too_large)} \\(the cache folder "
                                      f"{re.escape(str(cache))}; XDRCDEPTH_CACHE moves it\\)", line), line
    code, line = export_command(limit=8_000_000)          # the frames fit, the fp32 graph (~17 MB) does not
    assert code == 1 and re.fullmatch(f"xdrcdepth export: cannot write {re.escape(str(cache))}/exports/[^/]+/"
                                      f"model\\.onnx: {re.escape(too_large)} \\(the cache folder "
                                      f"{re.escape(str(cache))}; XDRCDEPTH_CACHE moves it\\)", line), line
    assert failed_records(cache) == []
    assert export_command()[0] == 0 and out.is_file()     # the cache is filled; the next export copies from it
    for written in out.parent.iterdir():
        written.unlink()
    assert export_command(limit=1_000_000) == (1, f"xdrcdepth export: cannot write {out}: {too_large}")
    assert sorted(p.name for p in out.parent.iterdir()) == []


OPENVINO_FREED_IN_ORDER_THEN_SIGINT = """
import gc, signal, sys
import numpy as np, openvino as ov, torch
from openvino import opset13 as ops
from xdrcdepth_core.backends.openvino_backend import OpenVinoBackend
image, radar = ops.parameter([1, 3, 8, 8], np.float32), ops.parameter([1, 4, 8, 8], np.float32)
summed = ops.add(ops.reduce_sum(image, [1], keep_dims=True), ops.reduce_sum(radar, [1], keep_dims=True))
ov.save_model(ov.Model([summed], [image, radar], "sum"), sys.argv[1])
first = OpenVinoBackend(sys.argv[1], "cpu", "fp32", threads=1)
second = OpenVinoBackend(sys.argv[1], "cpu", "fp32", threads=1)
out = first(torch.ones(1, 3, 8, 8), torch.ones(1, 4, 8, 8))
print("depth", float(out.flatten()[0]), flush=True)
del first; gc.collect(); del second; gc.collect()   # freed in the order they were made, as auto drops probes
try:
    signal.raise_signal(signal.SIGINT)
except KeyboardInterrupt:
    print("interrupted cleanly", flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_after_openvino_models_are_freed_in_creation_order_is_no_segfault(tmp_path):
    """OpenVINO's CPU plugin gives each compiled model a signal stack and puts back the one it found when the
    model is freed; freed first-to-last, the thread was left on a freed stack and the next Ctrl-C segfaulted
    (exit -11) in every process that had dropped two models (``auto`` probes several). A separate process:
    a segfault must not take pytest with it."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", OPENVINO_FREED_IN_ORDER_THEN_SIGINT, str(tmp_path / "sum.xml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.splitlines() == ["depth 7.0", "interrupted cleanly"]   # 3 image + 4 radar channels of 1


def test_an_export_that_fails_for_the_disk_is_not_recorded_as_the_models_failure(model, cache, monkeypatch):
    """A full disk during the export is the machine's problem: it used to write ``model.onnx.failed``, so every
    later run refused the export ("exporting failed before on this machine") after space was freed."""
    import errno

    calls = []

    def disk_full(*args, **kwargs):
        calls.append(args)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "export_onnx", disk_full)
    for attempt in (1, 2):
        with pytest.raises(BackendUnavailable) as info:
            create_backend("onnxruntime", model, HW, CHANNELS, "cpu", "fp32", weights_sha=WEIGHTS, allow_export=True)
        graph = export.artefact_dir("xdrcdepth", WEIGHTS, HW) / "model.onnx"     # the file is named
        assert str(info.value) == (f"onnxruntime: export failed: [Errno 28] No space left on device: '{graph}' (not "
                                   "recorded: the next run tries again)")
        assert failed_records(cache) == [] and len(calls) == attempt


@pytest.mark.slow
class OneConvDepth(torch.nn.Module):
    """The models' ``(image, radar) -> {"depth": ...}`` interface with one convolution: what the exporter does with a
    file does not depend on the network, and this one exports in a third of the time of the smallest student."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3 + len(CHANNELS), 1, 3, padding=1)

    def forward(self, image, radar):
        return {"depth": self.conv(torch.cat([image, radar], 1))}


def test_an_exported_graph_gets_the_usual_file_permissions(tmp_path):
    """The exporter writes into a ``mkstemp`` file and keeps its mode: cached ``model.onnx`` graphs were 0600,
    unreadable to the other users of a shared cache, unlike every other artefact (0666 less the umask)."""
    import os

    torch.manual_seed(0)
    graph = export.export_onnx(OneConvDepth().eval(), (32, 64), tmp_path / "model.onnx", len(CHANNELS))
    umask = os.umask(0)
    os.umask(umask)
    assert graph.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]     # no temporary left
