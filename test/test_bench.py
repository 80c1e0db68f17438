"""The inference benchmark times trained weights where the package ships them (the int8 parity check depends
on the weights), and seeded untrained ones otherwise."""

import math

import pytest
import torch

from xdrcdepth_core.bench import bench_model, packaged_checkpoints
from xdrcdepth_core.checkpoint import load_checkpoint
from xdrcdepth_core.infer import SHIPPED_CHECKPOINT
from xdrcdepth_core.models import build_model


def test_the_student_is_timed_with_the_shipped_weights():
    checkpoints = packaged_checkpoints()
    assert checkpoints["xdrcdepth"] == SHIPPED_CHECKPOINT
    model, words = bench_model("xdrcdepth", checkpoints)
    assert words == "trained (xdrcdepth_student.pt)"
    shipped = load_checkpoint(SHIPPED_CHECKPOINT)["state_dict"]
    state = model.state_dict()
    assert state.keys() == shipped.keys()
    for key, value in shipped.items():
        expected = value.float() if value.is_floating_point() else value
        torch.testing.assert_close(state[key], expected, rtol=0, atol=0, msg=key)


def test_a_model_without_packaged_weights_is_the_seeded_untrained_one():
    model, words = bench_model("lircdepth", {})
    assert words == "untrained (seed 0)"
    torch.manual_seed(0)
    reference = build_model("lircdepth")
    for (key, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


def _row(label, ms, eager_ms, eligible=True, model="xdrcdepth"):
    return {"model": model, "label": label, "precision": label.split()[1], "height": 352, "width": 704,
            "median_ms": ms, "min_ms": ms,
            "speedup_vs_eager": eager_ms / ms, "speedup_vs_eager_min": eager_ms / ms, "eligible": eligible}


def test_without_the_eager_row_the_speed_target_is_not_judged():
    """`--backends openvino:int8` alone: the report said "openvino int8: nanx on medians (52 vs nan ms)", not met."""
    from xdrcdepth_core.bench import evaluate_targets

    targets = evaluate_targets({"rows": [_row("openvino int8", 52.0, math.nan)]})
    assert not [t for t in targets if t["target"].startswith("best CPU backend for the student")]


def test_a_backend_that_fails_parity_is_never_counted_for_a_target():
    from xdrcdepth_core.bench import evaluate_targets

    rows = [_row("torch fp32", 400.0, 400.0), _row("openvino fp32", 200.0, 400.0),
            _row("openvino int8", 80.0, 400.0, eligible=False)]        # 5x, but it failed parity
    speed = evaluate_targets({"rows": rows})[0]
    assert speed["value"].startswith("openvino fp32: 2.00x on medians (200 vs 400 ms)") and not speed["met"]
    rows[2]["eligible"] = True
    speed = evaluate_targets({"rows": rows})[0]
    assert speed["value"].startswith("openvino int8: 5.00x") and speed["met"]
    # a baseline row that failed parity does not make a student-vs-baseline ratio either
    rows += [_row("openvino fp32", 300.0, 500.0, model="lircdepth"), _row("openvino int8", 60.0, 500.0,
                                                                           eligible=False, model="lircdepth")]
    ratio = evaluate_targets({"rows": rows})[1]
    assert ratio["value"].startswith("lowest: 1.50x (openvino fp32, 352 x 704); highest 1.50x")


def test_the_end_to_end_sections_try_the_student_rows_that_passed_parity_fastest_first():
    from xdrcdepth_core.bench import student_variants_fastest_first

    def row(backend, precision, ms, **kw):
        options = kw.pop("options", [])
        return {**_row(f"{backend} {precision}", ms, 400.0, **kw), "backend": backend, "precision": precision,
                "options": options}

    rows = [row("torch", "fp32", 400.0), row("openvino", "fp32", 200.0),
            row("openvino", "int8", 80.0, eligible=False),                 # fastest, but failed parity
            row("torch", "bf16", 150.0, options=["channels_last"]),         # the estimator takes no options
            row("onnxruntime", "fp32", 100.0, model="lircdepth"),           # another model
            {**row("onnxruntime", "fp32", 90.0), "height": 448, "width": 800}]   # another size
    assert student_variants_fastest_first(rows) == [("openvino", "fp32"), ("torch", "fp32")]
    rows[2]["eligible"] = True
    assert student_variants_fastest_first(rows) == [("openvino", "int8"), ("openvino", "fp32"), ("torch", "fp32")]
    assert student_variants_fastest_first([r for r in rows if r["model"] == "lircdepth"]) == []


@pytest.mark.slow
def test_a_variant_the_estimator_cannot_run_gives_way_to_the_next_fastest(capsys):
    from xdrcdepth_core.bench import _estimators

    # torch int8 does not exist (BackendUnavailable): the next one, torch bf16, is built and kept; none after it
    estimators = _estimators(torch.device("cpu"), [("torch", "int8"), ("torch", "bf16"), ("openvino", "fp32")])
    assert list(estimators) == ["torch fp32", "torch bf16"]
    assert estimators["torch bf16"].precision == "bf16" and "torch int8 left out" in capsys.readouterr().out


def test_the_speed_target_names_the_parity_rule_its_row_passed():
    from xdrcdepth_core.bench import evaluate_targets

    rule = "MAE change <= 1 % (trained model)"
    rows = [_row("torch fp32", 400.0, 400.0),
            {**_row("openvino bf16", 90.0, 400.0), "parity": {"rule": rule, "rel_mae_change": 0.0005}}]
    speed = evaluate_targets({"rows": rows})[0]
    assert speed["value"] == f"openvino bf16: 4.44x on medians (90 vs 400 ms), 4.44x on minima; parity: {rule}"
    assert speed["met"]
    assert evaluate_targets({"rows": rows[:1]})[0]["value"].endswith("parity: the reference")


def test_the_node_target_is_judged_at_the_frame_size_and_the_shipped_input_is_stated_beside_it():
    from xdrcdepth_core.bench import evaluate_targets

    def path(h, w, overhead_ms, forward_ms):
        return {"input_hw": [h, w], "overhead_ms": overhead_ms, "forward_ms": forward_ms,
                "overhead_vs_forward": overhead_ms / forward_ms}

    paths = {"openvino bf16, model 448 x 800, JPEG": path(448, 800, 6.0, 60.0),        # 10 %
             "openvino bf16, model 128 x 256, JPEG": path(128, 256, 5.0, 20.0)}        # 25 %
    node = evaluate_targets({"rows": [], "node": {"paths": paths}})[0]
    assert node["met"] and not node["met_at_shipped_input"]
    assert node["value"] == ("openvino bf16, model 448 x 800, JPEG: 6.0 ms = 10 % (the shipped student at the size "
                             "it was trained at: openvino bf16, model 128 x 256, JPEG: 5.0 ms = 25 %)")
    paths["torch fp32, model 448 x 800, JPEG"] = path(448, 800, 16.0, 100.0)          # 16 %: one row over
    assert not evaluate_targets({"rows": [], "node": {"paths": paths}})[0]["met"]


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "argument --repeats: must be >= 1, got '0'"),       # was a StatisticsError traceback
    (["--threads", "-1"], "argument --threads: must be >= 1, got '-1'"),     # was torch's RuntimeError traceback
    (["--threads", "100000"], "argument --threads: must be at most 1024, got '100000'"),   # was a segfault
    (["--batch", "0"], "argument --batch: must be >= 1, got '0'"),
    (["--warmup", "-1"], "argument --warmup: must be >= 0, got '-1'"),     # silently no warm-up before
])
def test_bench_bad_counts_are_one_line_exit_2(capsys, args, message):
    from xdrcdepth_core.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == f"xdrcdepth bench: error: {message} (see --help)\n"


def test_bench_missing_frames_or_unwritable_outputs_stop_before_the_work(tmp_path, capsys):
    # a missing --frames folder skipped every model and wrote an empty report over docs/benchmarks (exit 0); an
    # --out through a file was a traceback after the whole benchmark had run
    from xdrcdepth_core.cli import main

    for option in ("--frames", "--calibration"):
        assert main(["bench", option, str(tmp_path / "nowhere"), "--out", str(tmp_path / "b.md")]) == 2
        assert capsys.readouterr().err == f"xdrcdepth bench: {option}: cache folder not found: {tmp_path / 'nowhere'}\n"
    (tmp_path / "file").write_text("")
    for option, name in (("--out", "b.md"), ("--json", "b.json")):
        target = tmp_path / "file" / name
        assert main(["bench", "--out", str(tmp_path / "b.md"), option, str(target)]) == 1
        assert capsys.readouterr().err.startswith(f"xdrcdepth bench: cannot write {target}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_bench_outputs_that_cannot_be_written_as_asked_stop_before_the_work(tmp_path, capsys):
    """A black-box run: --json equal to --out replaced the report with the JSON ('-> same.md, same.md'), and --out
    naming a folder failed only at the write, after the whole benchmark."""
    from xdrcdepth_core.cli import main

    nothing = ["--skip", "models", "e2e", "node", "radar"]      # should the check be gone, the run is short
    same = tmp_path / "same.md"
    assert main(["bench", *nothing, "--out", str(same), "--json", str(same)]) == 2
    assert capsys.readouterr().err == f"xdrcdepth bench: --json {same} is the --out report: give them different names\n"
    (tmp_path / "folder").mkdir()
    assert main(["bench", *nothing, "--out", str(tmp_path / "folder")]) == 2
    assert capsys.readouterr().err == (f"xdrcdepth bench: cannot write {tmp_path / 'folder'}: it is a folder, give a "
                                       "file name\n")
    (tmp_path / "frames").mkdir()
    assert main(["bench", *nothing, "--frames", str(tmp_path / "frames"), "--out",
                 str(tmp_path / "frames" / "b.md")]) == 2
    assert capsys.readouterr().err.startswith(f"xdrcdepth bench: error: argument --out: {tmp_path / 'frames' / 'b.md'}"
                                              f" is in the --frames folder")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["folder", "frames"]


def test_bench_that_timed_nothing_leaves_the_report_as_it_was(tmp_path, capsys):
    """A black-box run: a --frames cache without a readable frame skipped every model, and an empty report replaced
    --out (by default the committed docs/benchmarks/inference.md), exit 0."""
    from xdrcdepth_core.cli import main

    (tmp_path / "empty").mkdir()
    report = tmp_path / "b.md"
    report.write_text("the last real benchmark")
    assert main(["bench", "--frames", str(tmp_path / "empty"), "--models", "xdrcdepth", "--sizes", "64x128",
                 "--backends", "torch:fp32", "--repeats", "1", "--warmup", "0", "--skip", "e2e", "node", "radar",
                 "--out", str(report)]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("xdrcdepth bench: nothing was timed (") and err.endswith(f"); {report} left as it was"), err
    assert report.read_text() == "the last real benchmark" and not report.with_suffix(".json").exists()


@pytest.mark.parametrize("args, message", [
    # each ran the models before it (minutes), then ended in a create_backend/registry traceback (exit 1)
    (["--backends", "bogus"], "argument --backends: unknown backend 'bogus'; choose from torch, onnxruntime, "
                              "openvino, tensorrt (in 'bogus'; the form is backend[:precision[:option]])"),
    (["--backends", "torch:fp8"], "argument --backends: unknown precision 'fp8'; choose from fp32, bf16, fp16, int8 "
                                  "(in 'torch:fp8'; the form is backend[:precision[:option]])"),
    (["--backends", "torch:fp32:bogus"], "argument --backends: unknown torch option(s) bogus; choose from "
                                         "channels_last, compile, cuda_graphs (in 'torch:fp32:bogus'; the form is "
                                         "backend[:precision[:option]])"),
    (["--backends", "openvino:int8:channels_last"], "argument --backends: options (channels_last) apply to the torch "
                                                    "backend only (in 'openvino:int8:channels_last'; the form is "
                                                    "backend[:precision[:option]])"),
    (["--models", "xdrcdepth", "bogus"], "argument --models: unknown model 'bogus'; registered models: cafnet, "
                                         "lircdepth, xdrcdepth"),
    # silently timed no model in int8
    (["--int8-models", "XDRCDepth"], "argument --int8-models: unknown model 'XDRCDepth'; registered models: cafnet, "
                                     "lircdepth, xdrcdepth"),
    # a traceback of a 61 GB allocation; a size just small enough to be allocated would have swapped the machine
    (["--sizes", "3200000x3200000"], "argument --sizes: '3200000x3200000' is 10240000000000 pixels, more than "
                                     "16777216 (4096 x 4096, the depth node's max_image_pixels)"),
    (["--sizes", "4096x4128"], "argument --sizes: '4096x4128' is 16908288 pixels, more than 16777216"),
])
def test_bench_unknown_names_and_huge_sizes_are_one_line_exit_2(capsys, tmp_path, args, message):
    from xdrcdepth_core.cli import main

    with pytest.raises(SystemExit) as exit_info:      # every section skipped: a bench that ran would end at once
        main(["bench", *args, "--skip", "models", "e2e", "node", "radar", "--out", str(tmp_path / "b.md")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"xdrcdepth bench: error: {message}")
    assert err.endswith(" (see --help)\n") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_bench_valid_names_and_sizes_parse_to_what_is_timed():
    from xdrcdepth_core import bench
    from xdrcdepth_core.cli_args import ArgumentParser

    parser = ArgumentParser(prog="xdrcdepth bench")
    bench.add_arguments(parser)
    args = parser.parse_args(["--backends", "torch", "torch:fp32:channels_last", "openvino:int8", "onnxruntime:",
                              "--models", "xdrcdepth", "lircdepth", "--int8-models", "--sizes", "4096x4096"])
    assert args.backends == [("torch", "fp32", {}), ("torch", "fp32", {"channels_last": True}),
                             ("openvino", "int8", {}), ("onnxruntime", "fp32", {})]
    assert args.models == ["xdrcdepth", "lircdepth"] and args.int8_models == [] and args.sizes == [(4096, 4096)]


def test_bench_refuses_a_batch_of_the_largest_size_beyond_the_pixel_limit(capsys, tmp_path):
    # each --sizes is bounded, but --batch 1000 of 448 x 800 (358 Mpx) went on to export and run the model on it
    from xdrcdepth_core.cli import main

    out = tmp_path / "b.md"
    assert main(["bench", "--models", "xdrcdepth", "--backends", "torch", "--sizes", "352x704", "448x800", "--batch",
                 "1000", "--skip", "e2e", "node", "radar", "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("xdrcdepth bench: --batch 1000 of the largest --sizes (358400 pixels) is "
                                       "358400000 pixels, more than 16777216 (4096 x 4096, the depth node's "
                                       "max_image_pixels)\n")
    assert list(tmp_path.iterdir()) == []


def test_models_without_trained_weights_here_are_named():
    """Installed, the package holds the student only: the teachers were timed untrained without a word."""
    from xdrcdepth_core.bench import CHECKPOINTS_DIR, untrained_note

    shipped = {"xdrcdepth": SHIPPED_CHECKPOINT}
    assert untrained_note(["xdrcdepth"], shipped) is None
    assert untrained_note(["cafnet", "xdrcdepth", "lircdepth"], shipped) == (
        f"bench: no trained checkpoint for cafnet, lircdepth in {CHECKPOINTS_DIR} (an installed package has the "
        "student's only): timed with untrained weights, the same speed; int8 parity is judged as untrained")


@pytest.mark.parametrize("checkout", [True, False])
def test_the_default_report_is_the_checkouts_docs_else_artifacts(checkout, tmp_path, monkeypatch, capsys):
    """The default --out was docs/benchmarks/inference.md wherever the command ran (a docs/ folder made in any
    current folder). Every section skipped: only the report of the run is written."""
    from xdrcdepth_core.cli import main

    monkeypatch.chdir(tmp_path)
    if checkout:
        (tmp_path / "docs" / "benchmarks").mkdir(parents=True)
    assert main(["bench", "--skip", "models", "e2e", "node", "radar", "--device", "cpu"]) == 0
    report = tmp_path / ("docs/benchmarks" if checkout else "artifacts/bench") / "inference.md"
    assert report.is_file() and report.with_suffix(".json").is_file()
    assert (tmp_path / "docs").exists() == checkout
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"-> {report.relative_to(tmp_path)}, "
                                                             f"{report.relative_to(tmp_path).with_suffix('.json')}")
