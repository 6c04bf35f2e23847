"""The methods the tuning benchmark compares. Each one only DECIDES (which settings next, when
to stop a trial); every trial runs the same way, through :func:`bench._common.run_trial`.

A method is ``fn(ctx) -> list[TrialOut]`` and stops as soon as a trial reaches the goal or
the trial budget is spent. ``ctx.baseline`` is trial 1 of every method: the script as
written, run once per (task, seed) the way ``mlops run`` runs it (pruned by the goal rule)
and shared, so every method pays exactly the same for it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import Task, TrialOut, run_trial


@dataclass
class Context:
    task: Task
    seed: int
    space: Any
    runner: Any
    budget: int            # max trials, the baseline included
    cap: int               # max epochs per trial
    baseline: TrialOut
    workroot: Path

    def workdir(self, n: int) -> Path:
        return self.workroot / f"{n:04d}"


def _metric(out: TrialOut) -> float | None:
    if not out.history:
        return None
    v = out.history[-1].get(out.metric)
    return float(v) if isinstance(v, (int, float)) else None


def _count(out: TrialOut, initial: int = 0) -> TrialOut:
    """Epochs this trial counts toward "epochs to goal": up to and including the first epoch
    meeting the goal, else every epoch trained (up to the pruning decision for an outside
    pruner), minus ``initial`` epochs a Hyperband child would have inherited."""
    end = out.reached or out.extra.get("pruned_at") or out.epochs
    out.counted = max(0, end - initial)
    return out


def baseline_trial(task: Task, seed: int, space: Any, runner: Any, workroot: Path) -> TrialOut:
    from tuner.pruning import PrunePolicy

    settings = dict(space.baseline)
    policy = PrunePolicy(metric=task.metric, goal=task.goal, maximize=True, planned=settings.get("epochs"), peers=[])
    return _count(run_trial(runner, task, settings, seed, workroot / "0001", policy=policy, goal=task.goal))


# ----------------------------------------------------------------- this project's strategies
def product_strategy(name: str) -> Callable[[Context], list[TrialOut]]:
    """``ladder`` / ``random`` / ``auto`` exactly as ``mlops run`` drives them (tuner.loop):
    ask -> run with the loop's in-harness pruning (median + cannot-reach-goal, against every
    earlier finished trial) and stop at the goal -> tell."""

    def run(ctx: Context) -> list[TrialOut]:
        import inspect

        from tuner.pruning import PrunePolicy
        from tuner.search import Observation, get_strategy, strategy_class

        options: dict[str, Any] = {}
        if "trained_on" in inspect.signature(strategy_class(name).__init__).parameters:
            options["trained_on"] = lambda: {"train_samples": ctx.task.train_samples}  # as the loop reads it
        strategy = get_strategy(name, ctx.space, maximize=True, seed=ctx.seed, metric=ctx.task.metric, **options)
        outs = [ctx.baseline]
        obs = [Observation(1, ctx.baseline.settings, ctx.baseline.status, _metric(ctx.baseline), ctx.baseline.history)]
        strategy.tell(obs[0])
        while len(outs) < ctx.budget and outs[-1].reached is None:
            settings = strategy.ask(obs)
            if settings is None:
                break
            peers = [o.history for o in obs if o.status in ("ok", "pruned")]
            planned = settings.get("epochs")
            # as the loop does it: compared with the finished trials, their measured noise as margin
            policy = PrunePolicy.for_trial(ctx.task.metric, ctx.task.goal, True, planned, peers)
            out = _count(run_trial(ctx.runner, ctx.task, settings, ctx.seed, ctx.workdir(len(outs) + 1),
                                   policy=policy, goal=ctx.task.goal))
            outs.append(out)
            o = Observation(len(outs), settings, out.status, _metric(out), out.history)
            obs.append(o)
            strategy.tell(o)
        return outs

    return run


# ----------------------------------------------------------------- the space, encoded for Optuna and Keras Tuner
# Both get the product's SearchSpace (tuner/search/space.py), param by param: a ``float`` or
# ``int`` range (log when the product's is), a ``choice``, and an ``fc`` list of layer widths as
# ``<name>/n`` (the number of layers) plus ``<name>/<i>`` (the width of layer i, one of the
# choices). A range fixed to one value (the epochs cap) is not searched: it stays as written.
#
# Trial 1 (the script as written) may lie outside the space: 4 hidden layers where the space
# allows 1-3, widths or a choice not in the list, a learning rate below the range. Optuna is
# told the true values: a float/int/layer-count distribution is widened for that trial only
# (Optuna allows a range to differ between trials, so its later suggestions stay in the
# space), and a categorical (layer widths, a choice) lists the script's own values after the
# space's in every trial (Optuna needs the same choices in every trial), so Optuna may propose
# the script's value again. A keyword the script does not write has no known value: trial 1
# is told without it. Keras Tuner is not told trial 1 (its RandomSearch and Hyperband
# oracles learn nothing from a finished trial); its defaults are the script's values moved
# into the space (Param.clip; a choice not listed falls back to the first), so they are valid.


def searched(space: Any) -> dict[str, Any]:
    """The params a method decides: all but a range fixed to one value."""
    return {n: p for n, p in space.params.items()
            if not (p.kind in ("int", "float") and p.low is not None and p.low == p.high)}


def _choices(p: Any, written: Any) -> list[Any]:
    """A categorical's choices: the space's, then the script's own values not among them."""
    out = list(p.choices)
    extra = written if p.kind == "fc" else [written]
    for v in extra if isinstance(extra, list) else []:
        if v is not None and v not in out:
            out.append(v)
    return out


def _value(p: Any, v: Any) -> Any:
    if p.kind == "float":
        return float(f"{float(v):.3g}")
    if p.kind == "int":
        return int(v)
    return v


def optuna_told(space: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optuna's (params, distributions) for a trial that ran ``settings``: the true values, each
    distribution widened to include them (see above)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params: dict[str, Any] = {}
    dists: dict[str, Any] = {}
    base = space.baseline
    for name, p in searched(space).items():
        v = settings.get(name)
        if v is None:
            continue  # not written in the script: its value is unknown, so it is not told
        if p.kind == "fc":
            units = list(v)
            n = len(units)
            params[f"{name}/n"] = n
            dists[f"{name}/n"] = IntDistribution(min(int(p.low), n), max(int(p.high), n))
            for i, u in enumerate(units):
                params[f"{name}/{i}"] = u
                dists[f"{name}/{i}"] = CategoricalDistribution(_choices(p, base.get(name)))
        elif p.kind == "choice":
            params[name] = v
            dists[name] = CategoricalDistribution(_choices(p, base.get(name)))
        elif p.kind == "int":
            params[name] = int(v)
            dists[name] = IntDistribution(min(int(p.low), int(v)), max(int(p.high), int(v)), log=p.log)
        else:
            params[name] = float(v)
            dists[name] = FloatDistribution(min(float(p.low), float(v)), max(float(p.high), float(v)), log=p.log)
    return params, dists


def optuna_suggest(trial: Any, space: Any) -> dict[str, Any]:
    """The settings an Optuna trial proposes, in the product's space (the script's values for
    what is not searched)."""
    out = dict(space.baseline)
    base = space.baseline
    for name, p in searched(space).items():
        if p.kind == "fc":
            n = trial.suggest_int(f"{name}/n", int(p.low), int(p.high))
            out[name] = [trial.suggest_categorical(f"{name}/{i}", _choices(p, base.get(name))) for i in range(n)]
        elif p.kind == "choice":
            out[name] = trial.suggest_categorical(name, _choices(p, base.get(name)))
        elif p.kind == "int":
            out[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        else:
            out[name] = _value(p, trial.suggest_float(name, float(p.low), float(p.high), log=p.log))
    return out


def kt_space(space: Any) -> Any:
    """Keras Tuner's HyperParameters for the space; defaults: the script's values in the space."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    base = space.baseline
    for name, p in searched(space).items():
        written = base.get(name)
        if p.kind == "fc":
            fitted = p.clip(written) if isinstance(written, list) else []
            n = min(max(len(fitted), int(p.low)), int(p.high))
            hp.Int(f"{name}/n", int(p.low), int(p.high), default=n)
            for i in range(int(p.high)):
                hp.Choice(f"{name}/{i}", list(p.choices), default=fitted[i] if i < len(fitted) else p.choices[0])
        elif p.kind == "choice":
            hp.Choice(name, list(p.choices), default=written if written in p.choices else p.choices[0])
        elif p.kind == "int":
            default = p.clip(written) if isinstance(written, (int, float)) else int(p.low)
            hp.Int(name, int(p.low), int(p.high), sampling="log" if p.log else "linear", default=int(default))
        else:
            default = p.clip(written) if isinstance(written, (int, float)) else float(p.low)
            hp.Float(name, float(p.low), float(p.high), sampling="log" if p.log else "linear", default=float(default))
    return hp


def kt_settings(space: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The settings a Keras Tuner trial's values stand for."""
    out = dict(space.baseline)
    for name, p in searched(space).items():
        if p.kind == "fc":
            out[name] = [int(values[f"{name}/{i}"]) for i in range(int(values[f"{name}/n"]))]
        else:
            out[name] = _value(p, values[name])
    return out


# ----------------------------------------------------------------- Optuna TPE + MedianPruner
def optuna_tpe(ctx: Context) -> list[TrialOut]:
    """Plain Optuna: TPESampler(seed) and MedianPruner() with its defaults; every epoch is
    reported with ``trial.report`` and ``should_prune`` is asked after it. Trial 1 is told with
    its true values (:func:`optuna_told`)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = ctx.task.metric
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=ctx.seed),
                                pruner=optuna.pruners.MedianPruner())
    # trial 1, the script as written, is told to Optuna like any other trial
    b = ctx.baseline
    params, dists = optuna_told(ctx.space, b.settings)
    inter = {i + 1: float(r[b.metric]) for i, r in enumerate(b.history) if r.get(b.metric) is not None}
    if b.status == "ok" and _metric(b) is not None:
        study.add_trial(create_trial(params=params, distributions=dists, value=_metric(b), intermediate_values=inter))
    else:
        study.add_trial(create_trial(params=params, distributions=dists, state=TrialState.PRUNED,
                                     intermediate_values=inter))
    outs = [b]
    while len(outs) < ctx.budget and outs[-1].reached is None:
        trial = study.ask()
        settings = optuna_suggest(trial, ctx.space)

        def on_epoch(history: list[dict[str, Any]], trial: Any = trial) -> str | None:
            trial.report(float(history[-1][metric]), step=len(history))
            if history[-1][metric] < ctx.task.goal and trial.should_prune():
                return f"optuna MedianPruner at epoch {len(history)}"
            return None

        out = _count(run_trial(ctx.runner, ctx.task, settings, ctx.seed, ctx.workdir(len(outs) + 1),
                               on_epoch=on_epoch if ctx.task.per_epoch else None, goal=ctx.task.goal))
        outs.append(out)
        if out.status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        elif _metric(out) is not None:
            study.tell(trial, _metric(out))
        else:
            study.tell(trial, state=TrialState.FAIL)
    return outs


# ----------------------------------------------------------------- Keras Tuner oracles
def _kt_drive(ctx: Context, oracle: Any, hyperband: bool) -> list[TrialOut]:
    import keras_tuner as kt

    oracle._set_project_dir(tempfile.mkdtemp(prefix="kt-", dir=ctx.workroot), "bench")
    oracle._display.verbose = 0
    metric = ctx.task.metric
    outs = [ctx.baseline]
    while len(outs) < ctx.budget and outs[-1].reached is None:
        trial = oracle.create_trial("bench")
        if trial.status != "RUNNING":
            break
        values = trial.hyperparameters.values
        settings = kt_settings(ctx.space, values)
        initial = 0
        if hyperband and "epochs" in ctx.space.params:  # a scikit-learn fit has no epochs: 1 each
            settings["epochs"] = int(values["tuner/epochs"])
            initial = int(values.get("tuner/initial_epoch", 0))
        out = run_trial(ctx.runner, ctx.task, settings, ctx.seed, ctx.workdir(len(outs) + 1), goal=ctx.task.goal)
        # no checkpoint carried to the next round: the child trains from scratch, but only the
        # epochs after its parent's (tuner/initial_epoch) are counted - generous to Hyperband
        out = _count(out, initial)
        out.extra["kt"] = {k: v for k, v in values.items() if k.startswith("tuner/")}
        outs.append(out)
        for i, r in enumerate(out.history):
            oracle.update_trial(trial.trial_id, {metric: float(r[metric])}, step=i)
        trial.status = kt.engine.trial.TrialStatus.COMPLETED if out.history else kt.engine.trial.TrialStatus.FAILED
        oracle.end_trial(trial)
    return outs


def kt_random(ctx: Context) -> list[TrialOut]:
    import keras_tuner as kt

    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective(ctx.task.metric, "max"), max_trials=ctx.budget,
                                           seed=ctx.seed, hyperparameters=kt_space(ctx.space))
    return _kt_drive(ctx, oracle, hyperband=False)


def kt_hyperband(ctx: Context) -> list[TrialOut]:
    """Hyperband(max_epochs=cap, factor=3). A scikit-learn fit has no epochs to allocate (cap 1):
    one bracket of one trial per Hyperband iteration, run for as many iterations as the budget
    allows, which makes it a random search there."""
    import keras_tuner as kt

    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective(ctx.task.metric, "max"), max_epochs=ctx.cap,
                                        factor=3, seed=ctx.seed, hyperparameters=kt_space(ctx.space),
                                        hyperband_iterations=1 if ctx.task.per_epoch else ctx.budget)
    return _kt_drive(ctx, oracle, hyperband=True)


METHODS: dict[str, Callable[[Context], list[TrialOut]]] = {
    "ladder": product_strategy("ladder"),
    "random": product_strategy("random"),
    "optuna_tpe": optuna_tpe,
    "kt_random": kt_random,
    "kt_hyperband": kt_hyperband,
    "auto": product_strategy("auto"),
}
