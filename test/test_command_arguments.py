"""`--device` and counts of `xdrcdepth eval` / `export`, checked where they are parsed (one line on stderr, exit
code 2, before any model is loaded), through the one device check of :mod:`xdrcdepth_core.device`; and the program's
exit after its command has returned."""

import argparse
import os
import re
import subprocess
import sys

import pytest
import torch

from xdrcdepth_core.cli import main
from xdrcdepth_core.cli_args import short_repr
from xdrcdepth_core.device import device_arg, device_problem, resolve_device

from fs_faults import sigint_default


@pytest.mark.parametrize("name", ["bogus", "CPU", "cuda:", "cuda:x", "gpu", "", "cpu ", "cpu\n"])
def test_names_that_are_no_device_are_refused_everywhere(name):
    assert device_problem(name) == f"{name!r} is not one of auto, cpu, cuda, cuda:N"
    with pytest.raises(argparse.ArgumentTypeError, match="is not one of"):
        device_arg(name)
    if name:                                            # '' is auto for configuration files
        with pytest.raises(ValueError, match=re.escape(f"device {name!r} is not one of")):
            resolve_device(name)


def test_usable_names_pass_unchanged():
    assert device_arg("auto") == "auto" and device_arg("cpu") == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_says_so():
    assert device_problem("cuda:1") == "'cuda:1' requested but CUDA is not available here (use auto or cpu)"


@pytest.mark.parametrize("argv, message", [
    (["eval", "--data", "D", "--device", "bogus"], "argument --device: 'bogus' is not one of auto, cpu, cuda"),
    (["export", "--format", "onnx", "--device", "bogus"], "argument --device: 'bogus' is not one of auto, cpu"),
    (["export", "--format", "onnx", "--batch", "0"], "argument --batch: must be >= 1, got '0'"),
    (["export", "--format", "onnx", "--batch", "-3"], "argument --batch: must be >= 1, got '-3'"),
    (["export", "--format", "onnx", "--limit", "0"], "argument --limit: must be >= 1, got '0'"),
    # bag_player refused these only once replay-demo had written the bag and started the graph (then: '0 depth
    # frames received, 6 dropped', exit 1, and the advice of a slower rate)
    (["replay-demo", "--rate", "2e6"], "argument --rate: must be <= 1e+06, got 2e+06"),
    (["replay-demo", "--rate", "1e-7"], "argument --rate: must be >= 1e-06, got 1e-07"),
    (["replay-demo", "--delay", "2e9"], "argument --delay: must be <= 1e+09 s, got 2e+09"),
    (["replay-demo", "--linger", "1e300"], "argument --linger: must be <= 1e+09 s, got 1e+300"),
])
def test_bad_arguments_are_one_line_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth {argv[0]}: error: {message}") and err.count("\n") == 1


def _path_options() -> list[tuple[str, str]]:
    """(sub-command, option) for every option of every ``xdrcdepth`` sub-command that takes a path."""
    import importlib

    from xdrcdepth_core.cli import COMMANDS
    from xdrcdepth_core.cli_args import ArgumentParser, path_argument

    found = []
    for name, (module, _) in COMMANDS.items():
        parser = ArgumentParser(prog=f"xdrcdepth {name}")
        importlib.import_module(module).add_arguments(parser)
        found += [(name, action.option_strings[0] if action.option_strings else action.dest)
                  for action in parser._actions if action.type is path_argument]
    return found


def test_an_empty_path_is_refused_by_every_command_that_takes_one(capsys):
    """``Path('')`` is the current folder: ``replay-demo --out ''`` wrote its bag and recording there, and
    ``bag_recorder -o ''`` answered '. already exists' (a black-box run). Every path option of every command refuses
    it where it is parsed; the sub-commands are found by walking the parser, so a new one is covered too."""
    from xdrcdepth_ros.bag.recorder import main as bag_recorder

    options = _path_options()
    assert set(options) >= {("replay-demo", "--out"), ("prepare", "--dataroot"), ("prepare", "--out"),
                            ("eval", "--data"), ("nuscenes2bag", "--dataroot"), ("nuscenes2bag", "--out"),
                            ("bag-reindex", "bag"), ("train", "--config"), ("export", "--out")}
    for command, option in options:
        argv = [command, option, ""] if option.startswith("-") else [command, ""]
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"error: argument {option}: must not be empty" in err, (argv, err)
        assert err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        bag_recorder(["bag_recorder", "-o", "", "/x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("bag_recorder: error: argument --out/-o/--output: must not be empty (see "
                                       "--help)\n")


@pytest.mark.parametrize("argv, message", [
    (["synth", "--out", "X", "--frames", "10001"], "argument --frames: must be at most 10000, got '10001'"),
    (["synth", "--out", "X", "--image-scale", "1000"], "argument --image-scale: must be in [0.01, 1], got '1000'"),
    (["prepare", "--dataroot", "D", "--out", "D"], "--out {D} is the --dataroot folder: give the cache a folder of its "
                                                   "own"),
    (["prepare", "--dataroot", "D", "--out", "X", "--resize", "100000", "100000"],
     "--resize 100000 100000 is 10000000000 pixels, more than 16777216 (4096 x 4096, the largest image the node and "
     "the tools take)"),
])
def test_sizes_that_cannot_fit_in_memory_are_refused_where_they_are_parsed(tmp_path, capsys, argv, message):
    """A black-box run: `synth --frames 100000000000` reached 5.7 GB and a MemoryError traceback, and
    `prepare --resize 100000 100000` was OOM-killed after 118 s; `prepare --out` equal to --dataroot put the cache
    files into the nuScenes root."""
    argv = [str(tmp_path / a) if a in ("X", "D") else a for a in argv]
    message = message.format(D=tmp_path / "D")
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xdrcdepth {argv[0]}: error: {message}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_calibration_without_int8_is_refused_before_any_model_is_loaded(capsys):
    assert main(["export", "--format", "onnx", "--calibration", "nowhere"]) == 2
    assert capsys.readouterr().err == ("xdrcdepth export: --calibration calibrates int8 quantisation; it does nothing "
                                       "with --precision fp32\n")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_precision_onnxruntime_cannot_run_on_the_cpu_is_refused_before_any_model_is_loaded(capsys, precision):
    """The checkpoint named does not exist: the precision is refused first (it was refused only after loading the
    model and the frames)."""
    assert main(["export", "--format", "onnx", "--precision", precision, "--device", "cpu",
                 "--checkpoint", "no/such/checkpoint.pt"]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth export: onnxruntime: no fast {precision} kernels in the CPU "
                                       "execution provider\n")


#: ``xdrcdepth models`` as the console script runs it, with a SIGINT sent once the command has returned, while the
#: interpreter exits (atexit runs the earliest registered hook last): a sent signal at an exact moment, no timing
SIGINT_WHILE_EXITING = """
import atexit, os, signal, sys
from xdrcdepth_core.cli import main
atexit.register(os.kill, os.getpid(), signal.SIGINT)
sys.exit(main())
"""


def test_sigint_once_the_command_has_returned_changes_nothing():
    proc = subprocess.run([sys.executable, "-c", SIGINT_WHILE_EXITING, "models"], capture_output=True, text=True,
                          timeout=120, preexec_fn=sigint_default, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("model ") and "budget MET" in proc.stdout     # the command's output, complete


#: ``xdrcdepth models`` as the console script runs it, its command hit by Ctrl-C (a real SIGINT, at an exact moment)
#: inside code that turns the ``KeyboardInterrupt`` into another error, as numpy's import does ("ImportError:
#: numpy._core.multiarray failed to import" when Ctrl-C lands in a lazy ``import cv2``)
SIGINT_TURNED_INTO_IMPORT_ERROR = """
import signal, sys
from xdrcdepth_core import cli
from xdrcdepth_core.models import summary
def run(args):
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        raise ImportError("numpy._core.multiarray failed to import")
summary.run = run
sys.exit(cli.main())
"""


def test_ctrl_c_that_a_library_turns_into_another_error_is_the_interrupted_line():
    """A black-box run: Ctrl-C early in ``xdrcdepth synth`` ended in a 32-line ImportError traceback, exit 1, in 3
    of 7 tries. The error of a command hit by Ctrl-C is the one interrupted line and 130; without Ctrl-C an
    error still comes out as it is."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", SIGINT_TURNED_INTO_IMPORT_ERROR, "models"], capture_output=True,
                          text=True, timeout=120, preexec_fn=sigint_default, env=env)
    assert (proc.returncode, proc.stderr) == (130, "xdrcdepth models: interrupted (SIGINT); finished files are "
                                                   "complete, rerun to resume\n")
    no_ctrl_c = SIGINT_TURNED_INTO_IMPORT_ERROR.replace("signal.raise_signal(signal.SIGINT)", "raise KeyboardInterrupt")
    proc = subprocess.run([sys.executable, "-c", no_ctrl_c, "models"], capture_output=True, text=True, timeout=120,
                          preexec_fn=sigint_default, env=env)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == "ImportError: numpy._core.multiarray failed to import"


def test_a_write_error_names_the_file_not_its_temporary():
    """Atomic writes fail on their temporary (``.<name>.<pid>.<8 chars>.tmp``, what a read-only folder's OSError
    names); every command's one line names the file the user asked for."""
    from xdrcdepth_core.cli_args import os_error_line

    exc = OSError(30, "Read-only file system", "/exports/.model.onnx.4242.a1b2c3d4.tmp")
    assert os_error_line("xdrcdepth export", exc) == ("xdrcdepth export: cannot write /exports/model.onnx: read-only "
                                                       "file system [Errno 30]")
    other = OSError(28, "No space left on device", "/runs/x/history.json")
    assert os_error_line("xdrcdepth train", other).startswith("xdrcdepth train: cannot write /runs/x/history.json: ")


def test_an_output_that_is_an_input_is_named(tmp_path):
    """output_overlap: the same file (through a symlink too) would be destroyed, a path in an input folder
    would mix into it; other paths, and inputs not given, pass."""
    from xdrcdepth_core.cli_args import output_overlap

    checkpoint, bag = tmp_path / "model.pt", tmp_path / "bag"
    checkpoint.write_bytes(b"x")
    bag.mkdir()
    (tmp_path / "link.pt").symlink_to(checkpoint)
    inputs = {"--checkpoint": checkpoint, "--bag": bag, "--teacher": ""}
    assert output_overlap({"--json": tmp_path / "link.pt"}, inputs) == (
        f"argument --json: {tmp_path / 'link.pt'} is the --checkpoint {checkpoint}: writing it would destroy that "
        "input")
    assert output_overlap({"--json": None, "--frames": bag / "a" / "b"}, inputs) == (
        f"argument --frames: {bag / 'a' / 'b'} is in the --bag folder {bag}: write it elsewhere")
    assert output_overlap({"--frames": bag}, inputs).startswith("argument --frames: ")
    for elsewhere in (tmp_path / "model.pt.json", tmp_path / "bag2", tmp_path):
        assert output_overlap({"--json": elsewhere}, inputs) is None


def test_eval_refuses_to_write_its_json_over_the_checkpoint(tmp_path, capsys):
    import shutil

    from xdrcdepth_core.infer import SHIPPED_CHECKPOINT

    checkpoint = tmp_path / "mine.pt"
    shutil.copyfile(SHIPPED_CHECKPOINT, checkpoint)
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tmp_path), "--json", str(checkpoint)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth eval: error: argument --json: {checkpoint} is the --checkpoint "
                                       f"{checkpoint}: writing it would destroy that input\n")
    assert checkpoint.read_bytes() == SHIPPED_CHECKPOINT.read_bytes()


@pytest.mark.parametrize("option", ["--json", "--panels"])
def test_eval_refuses_to_write_into_its_data_folder(tmp_path, capsys, option):
    """A black-box run: `--json` naming one of the cache's own .npz files replaced it with JSON, exit 0, and the next
    eval failed on that file."""
    data = tmp_path / "cache"
    data.mkdir()
    sample = data / "177765ad.npz"
    sample.write_bytes(b"PK-a cache file")
    target = sample if option == "--json" else data / "panels"
    assert main(["eval", "--data", str(data), option, str(target)]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth eval: error: argument {option}: {target} is in the --data folder "
                                       f"{data}: write it elsewhere\n")
    assert sample.read_bytes() == b"PK-a cache file" and sorted(p.name for p in data.iterdir()) == ["177765ad.npz"]


RUNTIME_INTERRUPTED_WHILE_IT_INITIALISES = """
import os, signal
try:                     # as a C extension does: the interrupt inside its init becomes an ImportError
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10**6):
        pass
except KeyboardInterrupt as exc:
    raise ImportError("initialization failed") from exc
"""


@pytest.mark.slow
def test_ctrl_c_while_a_runtime_initialises_is_an_interrupt_not_an_import_error(tmp_path):
    """OpenVINO's C extension turned a Ctrl-C during its import into 'ImportError: initialization failed', a
    traceback out of `xdrcdepth export` (3 of 13 tries at the right moment, a black-box run): import_runtime
    holds the SIGINT until the import is done, then raises it."""
    (tmp_path / "slow_runtime.py").write_text(RUNTIME_INTERRUPTED_WHILE_IT_INITIALISES)
    code = ("import sys\nfrom xdrcdepth_core.backends.capability import import_runtime\n"
            "try:\n    import_runtime('slow_runtime')\nexcept KeyboardInterrupt:\n"
            "    print('interrupted', 'slow_runtime' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          preexec_fn=sigint_default, cwd=tmp_path,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=f"{tmp_path}:{os.getcwd()}"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "interrupted True\n", "")


def test_a_quoted_value_is_built_bounded_not_cut_after():
    """What messages quote of a file's or an argument's value: a few items of a few levels, the ends of a long text.
    ``repr`` of a list of ten lists, each of ten of the one below, 30 levels deep, would never end; of an integer of
    5000 digits, it fails (Python turns at most 4300 into text)."""
    nested: list = [0]
    for _ in range(30):
        nested = [nested] * 10
    assert short_repr(nested) == "[[[[...], [...], [...], [...], [...], ...], [[...], [...], [..."
    assert short_repr(10**5000) == "<an integer of 16610 bits>"
    assert short_repr("x" * 10**6) == f"'{'x' * 17}...{'x' * 18}'"
    assert short_repr({"lr": [1, 2.5, None]}) == "{'lr': [1, 2.5, None]}"
    assert short_repr(-10**30) == repr(-10**30)
