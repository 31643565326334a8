import argparse
import json
from dataclasses import dataclass

import pytest

from hasten.core.config import (
    add_config_arguments,
    add_flags,
    from_args,
    option,
    reasons,
    resolve,
    settings_help,
    write_config,
)
from hasten.core.errors import ConfigError


@dataclass
class Toy:
    budget: str = option("60s", "a smoke test")
    lr: float = option(1e-3, "AdamW's usual start")
    steps: int = option(10, "enough to see a loss fall")
    bf16: bool = option(False, "fp32 is exact")
    clip: float | None = option(None, "no clipping by default")
    betas: tuple[float, float] = option((0.9, 0.999), "Adam's defaults")
    sched: dict = option({"warmup": 0.1}, "a short warmup")
    kind: str = option("a", "the first kind", choices=("a", "b"))
    hidden: int = option(3, "internal", flag=False)


def parser():
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    add_flags(p, Toy)
    return p


def test_defaults_and_reasons():
    t = resolve(Toy)
    assert (t.budget, t.lr, t.steps, t.bf16, t.clip, t.betas) == ("60s", 1e-3, 10, False, None,
                                                                  (0.9, 0.999))
    assert reasons(Toy)["lr"] == "AdamW's usual start"
    assert "lr = 0.001  # AdamW's usual start" in settings_help(Toy)


def test_mutable_defaults_are_not_shared():
    a, b = resolve(Toy), resolve(Toy)
    a.sched["warmup"] = 0.5
    assert b.sched == {"warmup": 0.1}


def test_merge_order_file_then_set_and_flags(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('lr = 0.01\nsteps = 20\nbudget = "2m"\n[sched]\nwarmup = 0.2\n')
    args = parser().parse_args(["--config", str(cfg), "--steps", "30", "--set", "budget=5m",
                                "--set", "sched.final=0.0"])
    t = from_args(Toy, args)
    assert t.lr == 0.01  # file over default
    assert t.steps == 30  # flag over file
    assert t.budget == "5m"  # --set over file
    assert t.sched == {"warmup": 0.2, "final": 0.0}  # dotted key into a dict


def test_section_of_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\nlr = 0.5\n[cram]\nlr = 0.25\n')
    assert resolve(Toy, file=cfg, section="cram").lr == 0.25


def test_json_config_file(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"bf16": True, "betas": [0.8, 0.9]}))
    t = resolve(Toy, file=cfg)
    assert t.bf16 is True and t.betas == (0.8, 0.9)


def test_flag_and_set_disagreeing_is_an_error():
    args = parser().parse_args(["--steps", "3", "--set", "steps=4"])
    with pytest.raises(ConfigError, match="steps is given twice"):
        from_args(Toy, args)
    args = parser().parse_args(["--steps", "3", "--set", "steps=3"])
    assert from_args(Toy, args).steps == 3


@pytest.mark.parametrize("item, message", [
    ("nope=1", "unknown setting 'nope'; known: betas, bf16, budget"),
    ("steps=1.5", "steps: expected an integer, got 1.5"),
    ("lr=fast", "lr: expected a number, got 'fast'"),
    ("bf16=maybe", "bf16: expected true or false, got 'maybe'"),
    ("kind=c", "kind: 'c' is not one of a, b"),
    ("betas=[1]", "betas: expected 2 values, got 1"),
    ("noequals", "--set expects KEY=VALUE, got 'noequals'"),
])
def test_bad_settings_are_one_line_errors(item, message):
    with pytest.raises(ConfigError) as err:
        resolve(Toy, sets=[item])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        resolve(Toy, file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"lr = = 3\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve(Toy, file=bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve(Toy, file=binary)


def test_optional_and_none():
    assert resolve(Toy, sets=["clip=0.5"]).clip == 0.5
    assert resolve(Toy, sets=["clip=none"]).clip is None


def test_flagless_field_only_through_set():
    with pytest.raises(SystemExit):
        parser().parse_args(["--hidden", "4"])
    assert resolve(Toy, sets=["hidden=4"]).hidden == 4


def test_write_config(tmp_path):
    path = write_config(resolve(Toy), tmp_path / "run", extra={"command": "hasten x"})
    body = json.loads(path.read_text())
    assert body["betas"] == [0.9, 0.999] and body["command"] == "hasten x"
