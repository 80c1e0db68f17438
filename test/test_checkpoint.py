"""Checkpoints are data, not code: no pickle runs, corruption and unusable descriptions fail at load."""

import os
import pickle
import re

import pytest
import torch

from xdrcdepth_core.checkpoint import (atomic_torch_save, build_from_checkpoint, load_checkpoint, save_checkpoint,
                                       weights_digest)
from xdrcdepth_core.data.radar import DEFAULT_CHANNELS
from xdrcdepth_core.models import build_model


def _tiny_model():
    torch.manual_seed(0)
    return build_model("xdrcdepth", width_mult=0.25, radar_width_mult=0.25, decoder_channels=(32, 16, 16, 8, 8),
                       daspp_growth=(8, 8, 8, 8))


class _RunsCode:
    """A pickle payload whose unpickling would create a marker file (what an attacker's checkpoint does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model_name": "xdrcdepth", "payload": _RunsCode(marker)}, f)
    torch.save({"model_name": "xdrcdepth", "payload": _RunsCode(marker)}, tmp_path / "evil2.pt")
    marker.unlink(missing_ok=True)  # torch.save itself does not call __reduce__'s callable, but be sure
    for path in (evil, tmp_path / "evil2.pt"):
        with pytest.raises(ValueError, match=path.name):
            load_checkpoint(path)
    assert not marker.exists()


def test_unreadable_files_give_the_cause_without_torchs_advice_to_load_unsafely(tmp_path):
    # torch.load's message tells the user to retry with weights_only=False; ours keeps only the cause
    torch.save({"payload": _RunsCode(tmp_path / "pwned")}, tmp_path / "evil.pt")
    torch.save({"a": 1}, tmp_path / "truncated.pt")
    whole = (tmp_path / "truncated.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "legacy_garbage.pt").write_bytes(b"\x80\x02garbage")   # a pickle's PROTO 2, then junk
    causes = {"evil.pt": "Unsupported global: GLOBAL io.open was not an allowed global by default",
              "legacy_garbage.pt": "Unsupported operand 103"}         # b"g" = 103, not a pickle opcode
    for name, cause in causes.items():
        with pytest.raises(ValueError) as err:
            load_checkpoint(tmp_path / name)
        assert str(err.value) == (f"cannot read checkpoint {tmp_path / name} (only tensors and plain data are "
                                  f"accepted): {cause}")
    # a cut file is said to be damaged, not refused as unsafe (audit 2026-12-06: it read like a security block)
    with pytest.raises(ValueError) as err:
        load_checkpoint(tmp_path / "truncated.pt")
    assert str(err.value) == (f"cannot read checkpoint {tmp_path / 'truncated.pt'}: its zip archive is damaged or "
                              "cut short (BadZipFile: File is not a zip file)")


def test_files_that_are_no_checkpoint_at_all_are_named_as_such_before_torch_reads_them(tmp_path):
    (tmp_path / "notes.pt").write_text("model: xdrcdepth\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    for name, cause in {"notes.pt": "not a PyTorch checkpoint (neither a zip archive, what torch.save writes, "
                                    "nor a legacy pickle)",
                        "empty.pt": "empty file"}.items():
        with pytest.raises(ValueError) as err:
            load_checkpoint(tmp_path / name)
        assert str(err.value) == f"cannot read checkpoint {tmp_path / name}: {cause}"


def test_an_exported_graph_given_as_a_checkpoint_says_to_give_the_pt(tmp_path):
    graph = tmp_path / "student.onnx"
    graph.write_bytes(b"\x08\x09\x12\x07pytorch")        # an ONNX protobuf's first bytes
    with pytest.raises(ValueError) as err:
        load_checkpoint(graph)
    assert str(err.value) == (f"cannot read checkpoint {graph}: not a PyTorch checkpoint (neither a zip archive, what "
                              "torch.save writes, nor a legacy pickle); .onnx is an exported graph: give the .pt "
                              "checkpoint it was exported from")


def test_a_folder_or_a_device_is_named_for_what_it_is(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ValueError) as err:
        load_checkpoint(run)
    assert str(err.value) == f"checkpoint {run} is a folder; give a checkpoint file"
    for name in ("last.pt", "best.pt", "notes.txt"):
        (run / name).write_bytes(b"")
    with pytest.raises(ValueError) as err:
        load_checkpoint(run)
    assert str(err.value) == f"checkpoint {run} is a folder; give a checkpoint file in it (best.pt, last.pt)"
    with pytest.raises(ValueError) as err:
        load_checkpoint("/dev/null")
    assert str(err.value) == "checkpoint /dev/null is not a regular file"
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'gone.pt'}"):
        load_checkpoint(tmp_path / "gone.pt")


@pytest.mark.slow
def test_round_trip_and_digest(tmp_path):
    model = _tiny_model()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, (64, 128), ("depth", "rcs", "vx_comp", "vy_comp"), metrics={"a": 1.0})
    ckpt = load_checkpoint(path)
    assert ckpt["input_hw"] == [64, 128] and ckpt["metrics"] == {"a": 1.0}
    rebuilt = build_from_checkpoint(ckpt, path)
    for (name, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values()):
        assert torch.equal(a, b), name
    # The digest covers names, dtypes and bytes: one changed weight changes it.
    state = dict(ckpt["state_dict"])
    before = weights_digest(state)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1e-3
    assert weights_digest(state) != before


def test_radar_channel_names_read_from_a_cache_file_save_as_plain_text(tmp_path):
    """Names as a cache file's array gives them (numpy str_) were pickled as numpy scalars, which the safe
    loader refuses: the checkpoint could not be read back."""
    import numpy as np

    path = tmp_path / "m.pt"
    save_checkpoint(path, _tiny_model(), (64, 128), tuple(np.array(["depth", "rcs", "vx_comp", "vy_comp"])))
    channels = load_checkpoint(path)["radar_channels"]
    assert channels == ["depth", "rcs", "vx_comp", "vy_comp"] and all(type(c) is str for c in channels)


def test_flipped_byte_detected(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _tiny_model(), (64, 128), DEFAULT_CHANNELS)
    ckpt = torch.load(path, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and v.numel() > 10)
    ckpt["state_dict"][name].view(-1)[3] = ckpt["state_dict"][name].view(-1)[3] * -1 + 0.5
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="SHA-256"):
        load_checkpoint(path)


@pytest.mark.parametrize("field,value,message", [
    ("input_hw", [0, 128], "input_hw"), ("input_hw", [60, 128], "input_hw"),
    ("radar_channels", ["depth", "rcss"], "unknown radar channels"),
])
def test_unusable_description_rejected_at_load(tmp_path, field, value, message):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _tiny_model(), (64, 128), DEFAULT_CHANNELS)
    ckpt = torch.load(path, weights_only=True)
    ckpt[field] = value
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)


def test_non_finite_weights_rejected(tmp_path):
    model = _tiny_model()
    with torch.no_grad():
        next(p for p in model.parameters() if p.numel() > 1).view(-1)[0] = float("nan")
    path = tmp_path / "nan.pt"
    save_checkpoint(path, model, (64, 128), DEFAULT_CHANNELS)
    with pytest.raises(ValueError, match="non-finite"):
        load_checkpoint(path)


@pytest.mark.slow
def test_fp16_weights_load_as_float32(tmp_path):
    model = _tiny_model()
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_checkpoint(full, model, (64, 128), DEFAULT_CHANNELS)
    save_checkpoint(half, model, (64, 128), DEFAULT_CHANNELS, weights_dtype=torch.float16)
    assert os.path.getsize(half) < 0.6 * os.path.getsize(full)
    rebuilt = build_from_checkpoint(load_checkpoint(half))
    for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()):
        assert b.dtype == a.dtype
        if a.is_floating_point():
            torch.testing.assert_close(b, a.half().float())


def test_atomic_save_leaves_no_temporary(tmp_path):
    atomic_torch_save({"x": torch.ones(1)}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.parametrize("field,value,message", [
    ("radar_channels", ["rcs", "depth"], "must start with 'depth'"),
    ("radar_channels", ["depth", "depth"], "name each channel once"),
    ("state_dict", "weights", "state_dict must map parameter names to tensors, got str"),
])
def test_a_layout_the_rasteriser_would_misread_is_rejected_at_load(tmp_path, field, value, message):
    # channel 0 marks a pixel occupied and picks the nearest return: 'rcs' first loaded and gave a wrong raster
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("xdrcdepth", width_mult=0.25, radar_channels=2), (64, 128), ("depth", "rcs"))
    ckpt = torch.load(path, weights_only=True)
    ckpt[field] = value
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: .*{re.escape(message)}"):
        load_checkpoint(path)


def test_weights_of_another_model_shape_are_one_line_naming_the_file(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("xdrcdepth", width_mult=0.25), (64, 128), DEFAULT_CHANNELS)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["width_mult"] = 0.5        # the config of another width: every conv has other shapes
    torch.save(ckpt, path)
    with pytest.raises(ValueError) as info:
        build_from_checkpoint(load_checkpoint(path), path)
    message = str(info.value)
    # torch's message listed every tensor: thousands of lines, on stderr, from `xdrcdepth eval`
    assert "\n" not in message and len(message) < 400, message
    assert message.startswith(f"checkpoint {path} does not fit model xdrcdepth ")
    assert "of other shapes (first image_encoder." in message and "in the file" in message


def test_radar_channels_the_model_does_not_take_are_named(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("xdrcdepth", width_mult=0.25), (64, 128), DEFAULT_CHANNELS)
    ckpt = torch.load(path, weights_only=True)
    ckpt["radar_channels"] = ["depth", "rcs"]        # a 4-channel radar encoder: failed at the first frame
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=rf"checkpoint {re.escape(str(path))}: 2 radar_channels .* takes 4"):
        build_from_checkpoint(load_checkpoint(path), path)


def test_a_model_config_asking_for_terabytes_fails_on_the_shapes_before_allocating(tmp_path):
    # The file holds a tiny model's weights but says width_mult 1000: ~5e12 weights if it were built (20 TB).
    path = tmp_path / "m.pt"
    save_checkpoint(path, _tiny_model(), (64, 128), DEFAULT_CHANNELS)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["width_mult"] = 1000.0
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=rf"^checkpoint {re.escape(str(path))} does not fit model xdrcdepth "):
        build_from_checkpoint(load_checkpoint(path), path)


def _edited(tmp_path, edit) -> "os.PathLike":
    """A tiny model's checkpoint with ``edit(ckpt)`` applied (its weights' SHA-256 kept in step)."""
    from xdrcdepth_core.checkpoint import weights_digest

    path = tmp_path / "m.pt"
    save_checkpoint(path, _tiny_model(), (64, 128), DEFAULT_CHANNELS)
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    if ckpt["state_dict"] and all(t.layout == torch.strided for t in ckpt["state_dict"].values()):
        ckpt["weights_sha256"] = weights_digest(ckpt["state_dict"])
    torch.save(ckpt, path)
    return path


def _first_weight(ckpt, convert):
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name] = convert(ckpt["state_dict"][name])


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(radar_channels=[["depth"], "rcs"]), r"radar channels must be a non-empty list of names, "
                                                            r"got \[\['depth'\], 'rcs'\]$"),
    (lambda c: _first_weight(c, torch.Tensor.to_sparse), r"state_dict holds tensors no model of ours has: "
                                                         r"\S+ \(torch.sparse_coo, torch.float32\)$"),
    (lambda c: _first_weight(c, lambda t: t.to(torch.float8_e4m3fn)),
     r"state_dict holds tensors no model of ours has: \S+ \(torch.strided, torch.float8_e4m3fn\)$"),
    (lambda c: c.update(metrics=[1, 2]), r"metrics must be a mapping, got list$"),
    (lambda c: c.update(metrics={"median_train_depth": "x"}), r"metrics.median_train_depth must be a positive depth "
                                                              r"\(m\), got 'x'$"),
    (lambda c: c.update(metrics={"median_train_depth": float("nan")}), r"metrics.median_train_depth .* got nan$"),
])
def test_hostile_descriptions_and_tensors_are_one_line_naming_the_file(tmp_path, edit, message):
    """Each was a traceback out of eval and the depth node (TypeError, RuntimeError, NotImplementedError,
    AttributeError) or an error that named no file (a black-box run)."""
    path = _edited(tmp_path, edit)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {message}"):
        load_checkpoint(path)


def test_a_negative_width_in_model_config_is_one_line(tmp_path):
    path = _edited(tmp_path, lambda c: c["model_config"].update(decoder_channels=[-1, -1, -1, -1, -1]))
    with pytest.raises(ValueError, match=rf"^checkpoint {re.escape(str(path))}: cannot build model 'xdrcdepth': "
                                         r"Trying to create tensor with negative dimension -1"):
        build_from_checkpoint(load_checkpoint(path), path)


def test_a_compressed_record_that_unpacks_to_more_than_the_file_is_refused_before_loading(tmp_path):
    """A zip bomb: data.pkl deflated. An 18 MB file whose pickle held an 800 MB string loaded as 3 GB."""
    import zipfile

    path = _edited(tmp_path, lambda c: c.update(metrics={"note": "x" * 2_000_000}))
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bomb, "w") as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info),
                         zipfile.ZIP_DEFLATED if info.filename.endswith("data.pkl") else zipfile.ZIP_STORED)
    assert torch.load(bomb, weights_only=True)["metrics"]["note"] == "x" * 2_000_000   # torch reads it as is
    with pytest.raises(ValueError, match=rf"^cannot read checkpoint {re.escape(str(bomb))}: its records declare "
                                         r"\d+ bytes unpacked from a file of \d+ bytes \(compressed, which "
                                         r"torch.save does not write\)$"):
        load_checkpoint(bomb)
    assert load_checkpoint(path)["metrics"]["note"] == "x" * 2_000_000   # stored as torch.save writes it


LOAD_IN_A_CHILD = """
import resource, sys
from xdrcdepth_core.checkpoint import build_from_checkpoint, load_checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    build_from_checkpoint(load_checkpoint(sys.argv[1]), sys.argv[1])
except ValueError as exc:
    print(exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def _load_in_a_child(path) -> tuple[str, int]:
    """The error line of loading (and building) the checkpoint at ``path`` in a separate process, and how many MB
    that process's peak RSS grew while it did, importing the package this process imports."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", LOAD_IN_A_CHILD, str(path)], capture_output=True, text=True,
                          timeout=300, check=True, env=env)
    error, grown_mb = proc.stdout.rstrip("\n").rsplit("\n", 1)
    return error, int(grown_mb)


def test_a_tensor_of_one_stored_float_viewed_as_billions_is_refused_by_name_before_any_copy(tmp_path):
    """A stride of 0: one stored float viewed as 550 M (2.2 GB), in a file of a few MB. The SHA-256 made it
    contiguous and copied its bytes first (4.4 GB; 6 GB for the black-box run's 3 GB view)."""
    path = tmp_path / "stride_bomb.pt"
    save_checkpoint(path, _tiny_model(), (64, 128), DEFAULT_CHANNELS)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["bomb"] = torch.zeros(1).as_strided((550_000_000,), (0,))
    torch.save(ckpt, path)
    error, grown_mb = _load_in_a_child(path)
    assert grown_mb < 200, error
    assert error == (f"{path}: tensor ['state_dict']['bomb'] of shape [550000000] (2200000000 bytes) views only 4 "
                     "stored bytes (elements that overlap, such as a stride of 0)")


def test_tensors_sharing_one_storage_are_refused_when_they_add_up_to_more_than_the_file(tmp_path):
    """550 fp16 views of one stored 2 MB tensor, with their SHA-256 right: each is made a float32 copy of its own
    (4 MB) before the names are compared with the model's, 2.2 GB held at once."""
    shared = torch.zeros(1_000_000, dtype=torch.float16)
    path = _edited(tmp_path, lambda c: c["state_dict"].update({f"bomb.{i}": shared[:] for i in range(550)}))
    error, grown_mb = _load_in_a_child(path)
    assert grown_mb < 200, error
    assert re.fullmatch(rf"{re.escape(str(path))}: its tensors take \d+ bytes, more than the file's \d+ \(tensors "
                        r"that share stored bytes; the largest, \['state_dict'\]\['bomb\.\d+'\], takes 2000000\)",
                        error), error


def test_a_zip_archive_pythons_zipfile_cannot_read_is_refused_before_torch_unpacks_it(tmp_path):
    """An entry with a corrupt extra field: Python's zipfile refuses the archive, so the check of what its records
    unpack to was skipped, and torch's own zip reader inflated its deflated 1 GiB data.pkl (3.3 GB of memory
    from a 1 MB file; a black-box run)."""
    import struct
    import zipfile

    path = tmp_path / "zipbomb.pt"
    size = 1 << 30
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("archive/data.pkl", "w", force_zip64=True) as pickled:   # {"x": "a" * size}
            pickled.write(b"\x80\x02}X\x01\x00\x00\x00xX" + struct.pack("<I", size))
            for _ in range(size >> 24):
                pickled.write(b"a" * (1 << 24))
            pickled.write(b"s.")
        archive.writestr("archive/version", b"3\n")
        archive.writestr("archive/byteorder", b"little")
        junk = zipfile.ZipInfo("archive/junk")
        junk.extra = b"\xfe\xca\x64\x00"   # an extra field that claims 100 bytes where there are none
        archive.writestr(junk, b"x")
    error, grown_mb = _load_in_a_child(path)
    assert grown_mb < 200, error
    assert error == (f"cannot read checkpoint {path}: its zip archive is damaged or cut short (BadZipFile: Corrupt "
                     "extra field cafe (size=100))")


def test_values_read_from_a_checkpoint_are_quoted_short_in_its_error_line(tmp_path):
    """radar_channels of a million names made a 9 MB error line (a black-box run)."""
    path = _edited(tmp_path, lambda c: c.update(radar_channels=["depth"] * 10**5))
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    assert str(err.value) == (f"{path}: radar channels must start with 'depth' and name each channel once, got "
                              "['depth', 'depth', 'depth', 'depth', 'depth', ...]")
