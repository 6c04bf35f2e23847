"""Learning rate, epochs and batch size written as something other than a literal: computed
bindings, run-time reads with a default, argparse/click options, learning-rate schedules.

The golden cases (tests/fixtures/hparams/lr_* and args_*) pin the rewritten scripts byte for
byte; these tests pin what `find_settings` reports about them (value, ``how``), the choices
between rewriting a binding and replacing in the call, and what `mlops hparams` prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.cli import main
from tuner.errors import HParamsError
from tuner.hparams import apply_settings, find_settings
from tuner.search import build_space, get_strategy

FIXTURES = Path(__file__).parent / "fixtures" / "hparams"
MODEL = (
    "model = keras.Sequential([keras.layers.Dense(64, activation='relu'), keras.layers.Dense(1)])\n"
)


def _fixture(case: str) -> str:
    return (FIXTURES / case / "input.py").read_text(encoding="utf-8")


def _keras(body: str, compile_with: str = "keras.optimizers.Adam(learning_rate=lr)") -> str:
    return (
        "import sys, os, json, argparse\nfrom tensorflow import keras\n"
        + body
        + MODEL
        + f"model.compile(optimizer={compile_with}, loss='mse')\n"
        + "model.fit(x, y, epochs=5)\n"
    )


# --------------------------------------------------------------------------- how: file:line
def test_how_names_the_binding_and_its_line():
    found = find_settings(_fixture("args_sys_argv_no_default"), path="jobs/train.py")
    lr = found.settings["learning_rate"]
    assert lr.value is None  # only known when the script runs: no default in the code
    assert lr.line == 5
    assert lr.how == (
        "rewrites the binding `lr = float(sys.argv[1])` at train.py:5; "
        "its current value is only known when the script runs"
    )


def test_how_names_the_call_when_the_name_is_used_elsewhere():
    found = find_settings(_fixture("lr_binding_used_elsewhere"), path="train.py")
    lr = found.settings["learning_rate"]
    assert lr.value == 0.001  # BASE_RATE / WARMUP_STEPS, computed from the constants
    assert lr.how == "replaces `lr` in the call at train.py:9 (`lr` is also used at line 6)"


def test_how_names_the_argparse_option_and_its_line():
    found = find_settings(_fixture("args_argparse_defaults"), path="train.py")
    assert {n: s.how for n, s in found.settings.items() if s.how} == {
        "learning_rate": "rewrites the argparse default of --lr at train.py:6",
        "epochs": "rewrites the argparse default of --num-epochs at train.py:7",
        "batch_size": "rewrites the argparse default of --batch-size at train.py:8",
    }
    values = found.values()
    assert (values["learning_rate"], values["epochs"], values["batch_size"]) == (0.001, 10, 32)


def test_literal_in_place_has_no_how():
    found = find_settings(_fixture("fit_keywords"), path="train.py")
    assert found.settings["epochs"].how == ""


# --------------------------------------------------------------------------- argparse / click
def test_argparse_default_rewritten_keeps_type_and_help():
    source = _fixture("args_argparse_defaults")
    out = apply_settings(source, {"learning_rate": 3e-4}, path="train.py")
    assert (
        'parser.add_argument("--lr", "--learning-rate", type=float, default=0.0003, '
        'help="Adam\'s rate")' in out.splitlines()
    )
    assert "learning_rate=args.lr" in out  # the call still reads the option


def test_argparse_string_default_stays_a_string():
    source = _keras(
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--learning-rate', type=float, default='1e-3')\n"
        "args = p.parse_args()\n",
        "keras.optimizers.Adam(learning_rate=args.learning_rate)",
    )
    assert find_settings(source).values()["learning_rate"] == 0.001
    out = apply_settings(source, {"learning_rate": 0.02})
    assert "p.add_argument('--learning-rate', type=float, default='0.02')" in out


def test_argparse_option_without_default_gets_one():
    source = _keras(
        "p = argparse.ArgumentParser()\np.add_argument('--lr', type=float)\nargs = p.parse_args()\n",
        "keras.optimizers.Adam(learning_rate=args.lr)",
    )
    assert find_settings(source).values()["learning_rate"] is None
    out = apply_settings(source, {"learning_rate": 0.02})
    assert "p.add_argument('--lr', type=float, default=0.02)" in out
    assert find_settings(out).values()["learning_rate"] == 0.02


def test_required_argparse_option_is_replaced_in_the_call():
    source = _keras(
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--lr', type=float, required=True)\nargs = p.parse_args()\n",
        "keras.optimizers.Adam(learning_rate=args.lr)",
    )
    found = find_settings(source, path="t.py")
    assert found.settings["learning_rate"].how.startswith(
        "replaces `args.lr` in the call at t.py:7 (--lr is required)"
    )
    out = apply_settings(source, {"learning_rate": 0.02})
    assert "keras.optimizers.Adam(learning_rate=0.02)" in out
    assert "p.add_argument('--lr', type=float, required=True)" in out


def test_argparse_read_through_a_binding_rewrites_the_default():
    source = _keras(
        "p = argparse.ArgumentParser()\np.add_argument('--lr', type=float, default=0.01)\n"
        "args = p.parse_args()\nlr = float(args.lr)\n"
    )
    out = apply_settings(source, {"learning_rate": 0.02}, path="t.py")
    assert "p.add_argument('--lr', type=float, default=0.02)" in out
    assert "lr = float(args.lr)" in out


def test_click_option_named_by_a_plain_parameter_name():
    found = find_settings(_fixture("args_click_options"), path="train.py")
    assert (
        found.settings["batch_size"].how
        == "rewrites the click default of --batch-size at train.py:8"
    )


# --------------------------------------------------------------------------- bindings
def test_rebinding_reads_the_value_bound_before():
    source = _fixture("lr_rebinding")
    found = find_settings(source)
    assert found.values()["learning_rate"] == 0.001  # 0.01 / 10
    out = apply_settings(source, {"learning_rate": 0.05})
    assert 'lr = 0.01\nprint("initial", lr)\nlr = 0.05  # fine-tuning\n' in out


def test_binding_that_calls_something_else_is_kept():
    source = _keras("lr = float(sizes.pop())\n")
    found = find_settings(source, path="t.py")
    assert found.settings["learning_rate"].how.startswith(
        "replaces `lr` in the call at t.py:5 (its binding at line 3 calls sizes.pop(), "
    )
    out = apply_settings(source, {"learning_rate": 0.02})
    assert "lr = float(sizes.pop())\n" in out
    assert "keras.optimizers.Adam(learning_rate=0.02)" in out


def test_computed_float_is_shown_without_binary_noise():
    source = _keras("", "keras.optimizers.Adam(learning_rate=0.01 * BASE)")
    source = source.replace(
        "from tensorflow import keras\n", "from tensorflow import keras\nBASE = 0.1\n"
    )
    assert find_settings(source).values()["learning_rate"] == 0.001


def test_environ_without_default_is_unknown():
    source = _keras("lr = float(os.environ['LR'])\n")
    found = find_settings(source)
    assert found.values()["learning_rate"] is None
    assert found.problems == {}


@pytest.mark.parametrize(
    "binding, rewritten",
    [
        (
            "lr = float(os.environ.get('LR') or '1e-3')\n",
            "lr = float(os.environ.get('LR') or '0.02')\n",
        ),
        (
            "lr = json.load(open('c.json')).get('lr', 1e-3)\n",
            "lr = json.load(open('c.json')).get('lr', 0.02)\n",
        ),
    ],
)
def test_run_time_reads_with_a_default(binding, rewritten):
    source = _keras(binding)
    assert find_settings(source).values()["learning_rate"] == 0.001
    out = apply_settings(source, {"learning_rate": 0.02})
    assert rewritten in out
    assert "keras.optimizers.Adam(learning_rate=lr)" in out


def test_name_bound_in_branches_is_a_problem():
    source = _keras("if sys.argv[1:]:\n    lr = 0.1\nelse:\n    lr = 0.01\n")
    with pytest.raises(HParamsError) as info:
        apply_settings(source, {"learning_rate": 0.02}, path="t.py")
    assert str(info.value) == (
        "t.py:8: learning_rate: keras.optimizers.Adam(learning_rate=...) at line 8 uses `lr`: "
        "`lr` is assigned in several places (lines 4, 6); write a plain value there"
    )


# --------------------------------------------------------------------------- schedules
def test_schedule_positional_initial_rate():
    source = _keras("lr = keras.optimizers.schedules.ExponentialDecay(1e-2, 1000, 0.9)\n")
    found = find_settings(source)
    assert found.values()["learning_rate"] == 0.01
    assert found.settings["learning_rate"].where.startswith(
        "keras.optimizers.schedules.ExponentialDecay(...) at line 3, the schedule of"
    )
    out = apply_settings(source, {"learning_rate": 0.003})
    assert "ExponentialDecay(0.003, 1000, 0.9)" in out


def test_schedule_from_a_constant():
    source = _keras(
        "LR0 = 0.002\nlr = keras.optimizers.schedules.CosineDecay(LR0, decay_steps=100)\n"
    )
    out = apply_settings(source, {"learning_rate": 0.003})
    assert "LR0 = 0.003\n" in out


def test_schedule_without_initial_rate_is_a_problem():
    source = _keras("lr = keras.optimizers.schedules.CosineDecay(decay_steps=100)\n")
    with pytest.raises(HParamsError) as info:
        apply_settings(source, {"learning_rate": 0.003}, path="t.py")
    assert str(info.value) == (
        "t.py:3: learning_rate: keras.optimizers.schedules.CosineDecay() at line 3 has no "
        "initial_learning_rate; write it, e.g. initial_learning_rate=1e-3"
    )


# --------------------------------------------------------------------------- search space
def test_space_from_values_known_only_at_run_time():
    tunables = find_settings(_fixture("lr_json_config"))
    assert tunables.values() == {
        "fc_layers": [64],
        "learning_rate": None,
        "epochs": None,
        "batch_size": 32,
    }
    space = build_space(tunables)
    assert "learning_rate" in space.params  # searched: its range does not need a start
    assert "epochs" not in space.params  # the epochs range is built around the current value
    proposal = get_strategy("random", space).ask([])
    assert proposal is not None
    # the first trial is the script as written: applying None changes nothing
    source = _fixture("lr_json_config")
    assert apply_settings(source, proposal) == source


# --------------------------------------------------------------------------- CLI
def test_cli_prints_the_arrow_line(tmp_path, capsys):
    path = tmp_path / "train.py"
    path.write_text(_fixture("args_argparse_defaults"), encoding="utf-8")
    assert main(["hparams", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    lr = next(i for i, line in enumerate(out) if line.strip().startswith("learning_rate"))
    assert out[lr + 1].strip() == "-> rewrites the argparse default of --lr at train.py:6"
