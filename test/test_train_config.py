"""Experiment configs: defaults, YAML, overrides, typos and bad values named; LR schedule by hand."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from xdrcdepth_core.train.config import ConfigError, parse_override, read_yaml_mapping, resolve_config
from xdrcdepth_core.train.schedule import lr_factor


def _write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_yaml_over_defaults_and_overrides(tmp_path):
    path = _write(tmp_path, "model: {name: cafnet, bts_size: 64}\ndata: {train: /c/train, input_hw: [64, 128]}\n"
                            "losses:\n  - {name: depth_l1, weight: 1.0}\n  - {name: dkd, weight: 0.5, bins: 16}\n")
    cfg = resolve_config(path, ["optim.epochs=3", "data.augment.hflip=0.0", "model.width=2"])
    assert cfg["name"] == "exp" and cfg["out"] == "runs/exp"
    assert cfg["model"] == {"name": "cafnet", "bts_size": 64, "width": 2}
    assert cfg["data"]["input_hw"] == [64, 128] and cfg["data"]["val"] is None
    assert cfg["data"]["augment"] == {"hflip": 0.0, "color": 0.1}
    assert cfg["optim"]["epochs"] == 3 and cfg["optim"]["lr"] == 2e-4     # default kept
    assert cfg["losses"][1] == {"name": "dkd", "weight": 0.5, "bins": 16}


@pytest.mark.parametrize("text,override,message", [
    ("data: {train: x}\noptim: {epoch: 3}\n", None, "optim.epoch"),
    ("data: {train: x}\n", "optim.lr=-1", "optim.lr"),
    ("data: {train: x, input_hw: [60, 128]}\n", None, "input_hw"),
    ("data: {train: x}\n", "precision=fp8", "precision"),
    ("data: {train: x}\nlosses: []\n", None, "losses"),
    ("model: {bts_size: 3}\n", None, "data.train"),
    ("- data\n- optim\n", None, "the config must be a mapping, got list"),
    # values of the wrong kind are named at load, not as a traceback in the middle of training
    ("data: {train: x}\n", "seed=abc", "seed must be an integer, got 'abc'"),
    ("data: {train: x}\n", "optim.weight_decay=abc", "optim.weight_decay must be a finite number, got 'abc'"),
    ("data: {train: x}\n", "optim.grad_clip=[1]", "optim.grad_clip must be a finite number, got [1]"),
    ("data: {train: x}\n", "log.log_every=0", "log.log_every must be >= 1, got 0"),
    ("data: {train: x}\n", "log.tensorboard=maybe", "log.tensorboard must be true or false, got 'maybe'"),
    ("data: {train: x}\n", "data.num_workers=-1", "data.num_workers must be >= 0, got -1"),
    ("data: {train: [x]}\n", None, "data.train must be a name or path, got ['x']"),
    ("data: {train: x}\n", "eval.caps=[]", "eval.caps must be a non-empty list of positive ranges (m), got []"),
    ("data: {train: x}\n", "eval.gt=bogus", "eval.gt must be one of ['auto', 'exact', 'lidar', 'single'], got 'bogus'"),
    ("data: {train: x}\n", "optim.lr=[1", "override 'optim.lr=[1': the value is not YAML"),
    # audit 2026-12-06: a seed past 2**32 - 1 (our bound) overflowed torch's seed after the first epoch
    # (seed * 100003 + epoch >= 2**64) as an "Overflow when unpacking long long" line naming no key
    ("data: {train: x}\n", "seed=4294967296", "seed must be <= 4294967295, got 4294967296"),
    # a NaN loss weight made every step non-finite: all skipped, exit 0; true is no weight either
    ("data: {train: x}\n", "losses=[{name: depth_l1, weight: .nan}]",
     "loss depth_l1: weight must be a finite number, got nan"),
    ("data: {train: x}\n", "losses=[{name: depth_l1, weight: true}]",
     "loss depth_l1: weight must be a finite number, got True"),
    # augmentation values failed in the first batch: a traceback (color: [1]) or a line without the key
    ("data: {train: x}\n", "data.augment.hflip=abc", "data.augment.hflip must be a probability in [0, 1], got 'abc'"),
    ("data: {train: x}\n", "data.augment.hflip=1.5", "data.augment.hflip must be a probability in [0, 1], got 1.5"),
    ("data: {train: x}\n", "data.augment.color=[1]", "data.augment.color must be a jitter strength in [0, 1], got [1]"),
    ("data: {train: x}\n", "data.augment.negate_lateral_velocity=1",
     "data.augment.negate_lateral_velocity must be true or false, got 1"),
    # audit 2026-12-06: a list item by index replaced the list with a mapping: 'losses must be a non-empty list'
    ("data: {train: x}\n", "losses.0.weight=2", "losses is a list, got the mapping {'0': {'weight': 2}}: a list is "
     "given whole (--set 'losses=[...]'), its items cannot be set one by one"),
])
def test_bad_configs_name_the_key(tmp_path, text, override, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        resolve_config(path, [override] if override else [])
    assert message in str(error.value) and str(path) in str(error.value)


def test_a_binary_config_file_is_named(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(ConfigError, match=f"cannot read config {path}: 'utf-8' codec can't decode"):
        resolve_config(path)


def test_a_config_file_over_one_mib_is_not_read(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: big\n" + "# padding\n" * (2**20 // 10))        # 1 MiB + 10 bytes of valid YAML
    assert path.stat().st_size == 2**20 + 10 - (2**20 % 10)
    with pytest.raises(ConfigError, match=f"^{path}: the config is larger than 1 MiB; not a config file$"):
        resolve_config(path)
    path.write_text("name: small\n" + "# padding\n" * (2**20 // 10 - 1))      # 1 MiB - 6 bytes: read
    assert read_yaml_mapping(path, "config") == {"name": "small"}


def test_the_largest_seed_and_edge_augmentation_values_pass():
    cfg = resolve_config(None, ["data.train=x", "seed=4294967295", "data.augment={hflip: 1, color: 0.0}",
                                "losses=[{name: depth_l1, weight: 0}]"])
    assert cfg["seed"] == 2**32 - 1 and cfg["data"]["augment"] == {"hflip": 1, "color": 0.0}


def test_shipped_experiment_configs_pass_the_checks():
    root = Path(__file__).resolve().parents[1] / "config" / "train"
    for path in sorted(root.rglob("*.yaml")):
        assert resolve_config(path, ["data.train=x"])["data"]["train"] == "x"


def test_parse_override_values_are_yaml():
    assert parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}
    assert parse_override("x=true") == {"x": True}
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_floats_without_a_dot_are_numbers_in_files_and_overrides(tmp_path):
    """Audit 2026-12-06: PyYAML reads YAML 1.1, where `1e-3` is a string, so `lr: 1e-3` (how papers and most
    configs write it) was refused as 'optim.lr must be a finite number, got '1e-3''. YAML 1.2 reads a number."""
    path = _write(tmp_path, "data: {train: /c/train}\noptim: {lr: 1e-3, weight_decay: 5E-2}\n")
    cfg = resolve_config(path, ["data.augment={hflip: 0.5, color: 1e-1}"])
    assert (cfg["optim"]["lr"], cfg["optim"]["weight_decay"], cfg["data"]["augment"]["color"]) == (0.001, 0.05, 0.1)
    assert parse_override("optim.lr=-2.5e+4") == {"optim": {"lr": -25000.0}}
    # what YAML 1.1 already read stays as it was: ints, dotted floats, and words that only look numeric
    assert parse_override("v=[3, 1_000, 0x1F, .5, 1.0e-5, .inf, 12e, 1e3x, NaN]") == {
        "v": [3, 1000, 31, 0.5, 1e-5, float("inf"), "12e", "1e3x", "NaN"]}


def test_poly_schedule_by_hand():
    # (1 - 0.1) * (1 - 5/10) ** 0.9 + 0.1 = 0.9 * 0.535886731 + 0.1
    assert lr_factor(5, 10, "poly", 0.9, 0.1) == pytest.approx(0.9 * 0.5 ** 0.9 + 0.1)
    assert lr_factor(0, 10, "poly") == pytest.approx(1.0)
    assert lr_factor(10, 10, "poly") == pytest.approx(0.1)
    assert lr_factor(0, 10, "constant", warmup_steps=4) == pytest.approx(0.25)
    assert lr_factor(7, 10, "constant", warmup_steps=4) == 1.0


def test_cli_bad_config_one_line_exit_2(tmp_path):
    path = _write(tmp_path, "data: {train: x}\noptim: {batchsize: 2}\n")
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "optim.batchsize" in proc.stderr


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    # PyYAML keeps the last of two equal keys: the first optim section was dropped without a word.
    path = _write(tmp_path, "data: {train: x}\noptim:\n  lr: 0.1\nseed: 3\noptim:\n  epochs: 2\n")
    with pytest.raises(ConfigError, match=f"^cannot read config {path}: the key 'optim' is given twice \\(lines 2 and 5\\)$"):
        resolve_config(path)
    path = _write(tmp_path, "data: {train: x, train: y}\n")       # nested, in flow style
    with pytest.raises(ConfigError, match=r"the key 'train' is given twice \(lines 1 and 1\)"):
        resolve_config(path)
    # a merge key's values may be overridden: that is what merges are for
    path = _write(tmp_path, "base: &b {lr: 0.1, epochs: 2}\nother:\n  <<: *b\n  lr: 0.5\n")
    assert read_yaml_mapping(path, "config")["other"] == {"lr": 0.5, "epochs": 2}


def _bombs(levels: int) -> list[str]:
    """Lists of ten, each of ten aliases of the one before: the last holds 10**levels values."""
    return ["&a0 [x, x, x, x, x, x, x, x, x, x]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]"
                                                     for i in range(1, levels)]


def _laughs(levels: int, use: str = "optim: {lr: *a%d}") -> str:
    """A "billion laughs" config: the lists of :func:`_bombs` under ``model:``, the last used by ``use``."""
    lines = ["model:", "  name: xdrcdepth"] + [f"  bomb{i}: {bomb}" for i, bomb in enumerate(_bombs(levels))]
    return "\n".join(lines + [use % (levels - 1)]) + "\n"


def test_yaml_aliases_nested_in_aliases_are_refused_at_once_naming_the_file(tmp_path):
    # black-box run: these ~600 bytes (10**9 values) hung train, its memory growing without bound: the message
    # quoting optim.lr built repr(value) whole before cutting it, and all else that walks a config would expand it
    path = _write(tmp_path, _laughs(9))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2 and proc.stderr == (
        f"xdrcdepth train: {path}: the YAML holds more than 100000 values with its aliases expanded "
        "(aliases nested in aliases?); not a config\n")


@pytest.mark.parametrize("use", ["optim: {lr: *a%d}", "data: *a%d", "name: *a%d", "other: [*a%d]"])
def test_the_expansion_bound_is_on_the_whole_file_wherever_the_alias_is_used(tmp_path, use):
    path = _write(tmp_path, _laughs(5, use))           # 10**5 + 1 values in one list, and the rest
    with pytest.raises(ConfigError, match=f"^{path}: the YAML holds more than 100000 values with its aliases"):
        read_yaml_mapping(path, "config")
    with pytest.raises(ConfigError, match="^override 'model.x=.*': the YAML holds more than 100000 values"):
        parse_override(f"model.x=[{', '.join(_bombs(5))}]")


def test_aliases_within_the_bound_are_read_and_one_inside_itself_is_refused(tmp_path):
    path = _write(tmp_path, _laughs(4, "table: *a%d"))   # 10**4 values, 2 * 10**4 + 1 in all: read
    assert len(read_yaml_mapping(path, "config")["table"]) == 10
    path = _write(tmp_path, "model: &m [*m]\n")
    with pytest.raises(ConfigError, match=f"^{path}: the YAML holds more than 100000 values"):
        read_yaml_mapping(path, "config")


def test_a_config_value_is_quoted_bounded_in_messages(tmp_path):
    # a long list where a mapping belongs was quoted whole on the one line
    path = _write(tmp_path, "data: {train: x}\noptim: [" + ", ".join(["1"] * 5000) + "]\n")
    with pytest.raises(ConfigError, match=r"^\S+: optim must be a mapping, got \[1, 1, 1, 1, 1, \.\.\.\]$"):
        resolve_config(path)


def test_an_integer_of_more_than_100_digits_names_the_file_and_key(tmp_path):
    # black-box run: a 5000-digit seed was PyYAML's int() ValueError (Python reads at most 4300 digits), a traceback
    path = _write(tmp_path, "seed: " + "9" * 5000 + "\n")
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, f"xdrcdepth train: {path}: seed is an integer of 5000 digits, "
                                                 "more than 100\n")
    path = _write(tmp_path, "seed: 1\n")
    proc = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "train", "--config", str(path), "--set",
                           "losses=[{name: depth_l1, weight: 1, every: " + "1" * 5000 + "}]"],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, f"xdrcdepth train: {path}: override 'losses=[{{name: de..."
                                                 f"{'1' * 16}}}]': losses.0.every is an integer of 5000 digits, "
                                                 "more than 100\n")
    path = _write(tmp_path, "model: {name: x, sizes: [1, 2, -" + "0" * 101 + "]}\n")
    with pytest.raises(ConfigError, match=f"^{path}: model.sizes.2 is an integer of 101 digits, more than 100$"):
        read_yaml_mapping(path, "config")
    assert read_yaml_mapping(_write(tmp_path, "seed: " + "1_0" * 50 + "\n"), "config")["seed"] == int("10" * 50)


@pytest.mark.parametrize("text, message", [
    ("seed: !!int abc\n", "invalid literal for int() with base 10: 'abc'"),
    ("model: " + "[" * 100000 + "\n", "the YAML is nested too deeply; not a config"),
])
def test_yaml_its_constructors_cannot_make_is_one_line_naming_the_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read_yaml_mapping(path, "config")
    assert str(info.value) == f"{path}: {message}"
