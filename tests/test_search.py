"""Search space and strategies on their own (no runner)."""

from __future__ import annotations

import pytest

from tuner.errors import ConfigError
from tuner.hparams import find_settings
from tuner.search import Observation, build_space, get_strategy

KERAS = "FC_LAYERS = [16]\nLEARNING_RATE = 1e-4\nEPOCHS = 10\nimport keras\n"
SKLEARN = ("from sklearn.svm import SVC\nfrom sklearn.datasets import load_wine\n"
           "x, y = load_wine(return_X_y=True)\nSVC(C=0.01, gamma=1.0).fit(x, y)\n")


def space_of(source: str, overrides=None):
    return build_space(find_settings(source, path="s.py"), overrides)


def walk(strategy, n: int, metric: float = 0.5) -> list[dict]:
    history: list[Observation] = []
    for i in range(n):
        s = strategy.ask(history)
        if s is None:
            break
        history.append(Observation(i + 1, s, "ok", metric))
    return [o.settings for o in history]


def test_ladder_widens_deepens_and_moves_lr_on_the_1_3_grid():
    steps = walk(get_strategy("ladder", space_of(KERAS)), 7)
    assert steps[0] == {"fc_layers": [16], "learning_rate": 1e-4, "epochs": 10}
    assert [s["fc_layers"] for s in steps[1:4]] == [[32], [32, 16], [32, 16]]
    assert [s["learning_rate"] for s in steps[:5]] == [1e-4, 1e-4, 1e-4, 3e-4, 3e-4]
    assert steps[6]["learning_rate"] == 1e-3 and all(s["epochs"] == 10 for s in steps)


@pytest.mark.parametrize("name", ["random", "tpe", "auto"])
def test_proposals_stay_in_the_space_and_never_repeat(name):
    space = space_of(KERAS)
    steps = walk(get_strategy(name, space, seed=3), 12)
    assert len(steps) == 12 and len({repr(sorted(s.items())) for s in steps}) == 12
    for s in steps[1:]:
        for key, param in space.params.items():
            assert param.contains(s[key]), (key, s[key])


def test_auto_tries_earlier_winners_right_after_the_baseline():
    winner = {"fc_layers": [512, 64], "learning_rate": 2e-3, "epochs": 12}
    steps = walk(get_strategy("auto", space_of(KERAS), previous_winners=[winner]), 2)
    assert steps[1] == winner


def test_space_overrides_and_their_errors():
    space = space_of(KERAS, {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
                             "fc_layers": {"min": 1, "max": 2, "units": [64, 128]}})
    assert space.params["learning_rate"].low == 1e-3
    assert space.params["fc_layers"].choices == (64, 128) and space.params["fc_layers"].high == 2
    with pytest.raises(ConfigError, match=r"hparams.space.dropout: the script has no setting 'dropout'"):
        space_of(KERAS, {"dropout": {"low": 0, "high": 0.5}})
    with pytest.raises(ConfigError, match=r"hparams.space.learning_rate: need low <= high"):
        space_of(KERAS, {"learning_rate": {"low": 1, "high": 0.1}})
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['step'\]"):
        space_of(KERAS, {"epochs": {"low": 1, "high": 5, "step": 2}})


def test_sklearn_space_comes_from_the_estimator_table():
    space = space_of(SKLEARN)
    assert set(space.params) == {"C", "gamma"} and space.params["C"].log
    steps = walk(get_strategy("ladder", space), 3)
    assert steps[0] == {"C": 0.01, "gamma": 1.0} and steps[1] != steps[0]


def test_a_script_with_nothing_tunable_has_an_empty_space():
    space = space_of("import keras\nmodel = keras.Sequential()\n")
    assert not space and get_strategy("random", space).ask([Observation(1, {}, "ok", 0.5)]) is None


# a learning rate and epochs read from the command line: their values are known only at run time
ARGV = ("import sys\nimport keras\nEPOCHS = int(sys.argv[2])\nFC_LAYERS = [32]\n"
        "lr = float(sys.argv[1])\nopt = keras.optimizers.Adam(learning_rate=lr)\n")


def test_a_value_known_only_at_run_time_is_searched_from_the_space():
    space = space_of(ARGV)
    assert space.baseline["learning_rate"] is None
    assert "learning_rate" in space.params and "epochs" not in space.params


@pytest.mark.parametrize("name", ["ladder", "random", "tpe", "auto"])
def test_strategies_start_from_a_value_known_only_at_run_time(name):
    space = space_of(ARGV)
    steps = walk(get_strategy(name, space, seed=1), 12)
    assert steps[0]["learning_rate"] is None  # the script as written
    proposed = [s["learning_rate"] for s in steps[1:]]
    rates = [v for v in proposed if v is not None]
    # the ladder changes one thing a step (layers first); the others draw every value
    assert len(rates) >= (3 if name == "ladder" else len(proposed)), proposed
    assert all(space.params["learning_rate"].contains(v) for v in rates)


def test_a_value_known_only_at_run_time_reads_as_written_and_a_none_keyword_as_none():
    from tuner.fmt import format_settings

    # the console, report and mail: None of a canonical setting is "decided when the script
    # runs"; None of a scikit-learn keyword (max_depth=None: no limit) is a value
    assert format_settings({"learning_rate": None, "max_depth": None}) == "lr as written, max_depth None"


def test_tpe_is_told_a_first_trial_outside_the_space_as_it_ran():
    from tuner.search._tpe import TPE, _distributions, _encode
    from tuner.search.space import Param, SearchSpace

    params = {"fc_layers": Param("fc_layers", "fc", 1, 3, choices=(16, 64, 256)),
              "learning_rate": Param("learning_rate", "float", 1e-4, 3e-2, log=True),
              "batch_size": Param("batch_size", "choice", choices=(16, 32))}
    written = {"fc_layers": [16, 16, 16, 16], "learning_rate": 3e-5, "batch_size": 32}
    flat, used = _encode(params, written, _distributions(params))
    assert flat["fc_layers__n"] == 4 and flat["learning_rate"] == 3e-5  # the true values ...
    assert used["fc_layers__n"].high == 4 and used["learning_rate"].low == 3e-5  # ... in a range widened for it
    assert _encode(params, {**written, "batch_size": 24}, _distributions(params)) is None  # an unknown choice: not told
    space = SearchSpace(params=params, baseline=written, framework="keras")
    history = [Observation(1, dict(written), "ok", 0.5, []),
               Observation(2, {"fc_layers": [256, 64], "learning_rate": 3e-3, "batch_size": 16}, "pruned", 0.8,
                           [{"epoch": 1, "val_accuracy": 0.8}])]
    for attempt in range(5):  # what it proposes stays in the space
        s = TPE(space, n_startup_trials=1).propose(history, attempt)
        assert 1 <= len(s["fc_layers"]) <= 3 and 1e-4 <= s["learning_rate"] <= 3e-2
        assert s["fc_layers"] == sorted(s["fc_layers"], reverse=True)  # a pyramid, widest first


def test_auto_guesses_by_framework():
    from tuner.search._auto import Auto
    from tuner.search.space import Param, SearchSpace

    gb = SearchSpace(params={"n_estimators": Param("n_estimators", "int", 20, 500, log=True),
                             "learning_rate": Param("learning_rate", "float", 1e-3, 0.5, log=True),
                             "max_depth": Param("max_depth", "int", 1, 8)},
                     baseline={"n_estimators": 20, "learning_rate": 0.01, "max_depth": 1},
                     framework="sklearn", estimator="GradientBoostingClassifier")
    seeds = Auto(gb).seeds()
    # scikit-learn's own defaults first; never a Keras learning rate such as 3e-3 on trees
    assert seeds[0] == {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3}
    assert all(s["learning_rate"] >= 0.01 for s in seeds)
    unknown = SearchSpace(params=gb.params, baseline=gb.baseline, framework="sklearn", estimator="MyBooster")
    assert Auto(unknown).seeds() == []  # no guess for an estimator it does not know: straight to TPE


def test_auto_guesses_keep_an_epoch_under_fifty_steps_once_the_data_size_is_known():
    from tuner.search._auto import Auto
    from tuner.search.space import Param, SearchSpace

    space = SearchSpace(params={"fc_layers": Param("fc_layers", "fc", 1, 3, choices=(16, 64, 256)),
                                "learning_rate": Param("learning_rate", "float", 1e-4, 3e-2, log=True),
                                "batch_size": Param("batch_size", "choice", choices=(16, 32, 64, 128))},
                        baseline={"fc_layers": [16], "learning_rate": 1e-4, "batch_size": 64}, framework="keras")
    data: dict = {}
    auto = Auto(space, trained_on=lambda: data)
    assert auto.seeds()[0]["batch_size"] == 16  # not known yet: the smallest
    data["train_samples"] = 426  # 27 steps at 16
    assert {s["batch_size"] for s in auto.seeds()} == {16}
    data["train_samples"] = 1347  # 85 steps at 16, 43 at 32
    assert {s["batch_size"] for s in auto.seeds()} == {32}
    data["train_samples"] = 10**6  # no size keeps it under: the largest
    assert auto.seeds()[0]["batch_size"] == 128
