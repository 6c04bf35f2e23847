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

from bench._common import METRIC, Task, TrialOut, run_trial


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
    v = out.history[-1].get(METRIC)
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
    policy = PrunePolicy(metric=METRIC, goal=task.goal, maximize=True, planned=settings.get("epochs"), peers=[])
    return _count(run_trial(runner, task, settings, seed, workroot / "0001", policy=policy, goal=task.goal))


# ----------------------------------------------------------------- this project's strategies
def product_strategy(name: str) -> Callable[[Context], list[TrialOut]]:
    """``ladder`` / ``random`` / ``auto`` exactly as ``mlops run`` drives them (tuner.loop):
    ask -> run with the loop's in-harness pruning (median + cannot-reach-goal, against every
    earlier finished trial) and stop at the goal -> tell."""

    def run(ctx: Context) -> list[TrialOut]:
        from tuner.pruning import PrunePolicy
        from tuner.search import Observation, get_strategy

        strategy = get_strategy(name, ctx.space, maximize=True, seed=ctx.seed, metric=METRIC)
        outs = [ctx.baseline]
        obs = [Observation(1, ctx.baseline.settings, ctx.baseline.status, _metric(ctx.baseline), ctx.baseline.history)]
        strategy.tell(obs[0])
        while len(outs) < ctx.budget and outs[-1].reached is None:
            settings = strategy.ask(obs)
            if settings is None:
                break
            peers = [o.history for o in obs if o.status in ("ok", "pruned")]
            planned = settings.get("epochs")
            policy = PrunePolicy(metric=METRIC, goal=ctx.task.goal, maximize=True,
                                 planned=planned if isinstance(planned, int) else None, peers=peers)
            out = _count(run_trial(ctx.runner, ctx.task, settings, ctx.seed, ctx.workdir(len(outs) + 1),
                                   policy=policy, goal=ctx.task.goal))
            outs.append(out)
            o = Observation(len(outs), settings, out.status, _metric(out), out.history)
            obs.append(o)
            strategy.tell(o)
        return outs

    return run


# ----------------------------------------------------------------- Optuna TPE + MedianPruner
def optuna_tpe(ctx: Context) -> list[TrialOut]:
    """Plain Optuna: TPESampler(seed) and MedianPruner() with its defaults; every epoch is
    reported with ``trial.report`` and ``should_prune`` is asked after it."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    p = ctx.space.params
    fc, lr = p["fc_layers"], p["learning_rate"]
    bs = p.get("batch_size")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=ctx.seed),
                                pruner=optuna.pruners.MedianPruner())
    # trial 1, the script as written, is told to Optuna like any other trial
    b = ctx.baseline
    params: dict[str, Any] = {"n_layers": len(b.settings["fc_layers"]), "learning_rate": b.settings["learning_rate"]}
    dists: dict[str, Any] = {"n_layers": IntDistribution(int(fc.low), int(fc.high)),
                             "learning_rate": FloatDistribution(lr.low, lr.high, log=True)}
    for i, u in enumerate(b.settings["fc_layers"]):
        params[f"units_{i}"] = u
        dists[f"units_{i}"] = CategoricalDistribution(list(fc.choices))
    if bs is not None:
        params["batch_size"] = b.settings["batch_size"]
        dists["batch_size"] = CategoricalDistribution(list(bs.choices))
    inter = {i + 1: float(r[METRIC]) for i, r in enumerate(b.history)}
    if b.status == "ok" and _metric(b) is not None:
        study.add_trial(create_trial(params=params, distributions=dists, value=_metric(b), intermediate_values=inter))
    else:
        study.add_trial(create_trial(params=params, distributions=dists, state=TrialState.PRUNED,
                                     intermediate_values=inter))
    outs = [b]
    while len(outs) < ctx.budget and outs[-1].reached is None:
        trial = study.ask()
        n = trial.suggest_int("n_layers", int(fc.low), int(fc.high))
        units = [trial.suggest_categorical(f"units_{i}", list(fc.choices)) for i in range(n)]
        settings = {**ctx.space.baseline, "fc_layers": units,
                    "learning_rate": float(f"{trial.suggest_float('learning_rate', lr.low, lr.high, log=True):.3g}")}
        if bs is not None:
            settings["batch_size"] = trial.suggest_categorical("batch_size", list(bs.choices))

        def on_epoch(history: list[dict[str, Any]], trial: Any = trial) -> str | None:
            trial.report(float(history[-1][METRIC]), step=len(history))
            if history[-1][METRIC] < ctx.task.goal and trial.should_prune():
                return f"optuna MedianPruner at epoch {len(history)}"
            return None

        out = _count(run_trial(ctx.runner, ctx.task, settings, ctx.seed, ctx.workdir(len(outs) + 1),
                               on_epoch=on_epoch, goal=ctx.task.goal))
        outs.append(out)
        if out.status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        elif _metric(out) is not None:
            study.tell(trial, _metric(out))
        else:
            study.tell(trial, state=TrialState.FAIL)
    return outs


# ----------------------------------------------------------------- Keras Tuner oracles
def _kt_space(ctx: Context) -> Any:
    import keras_tuner as kt

    p = ctx.space.params
    fc, lr = p["fc_layers"], p["learning_rate"]
    base = ctx.space.baseline
    hp = kt.HyperParameters()
    hp.Int("n_layers", int(fc.low), int(fc.high), default=len(base["fc_layers"]))
    for i in range(int(fc.high)):
        hp.Choice(f"units_{i}", list(fc.choices), default=base["fc_layers"][0])
    hp.Float("learning_rate", lr.low, lr.high, sampling="log", default=base["learning_rate"])
    if "batch_size" in p:
        hp.Choice("batch_size", list(p["batch_size"].choices), default=base["batch_size"])
    return hp


def _kt_settings(ctx: Context, values: dict[str, Any]) -> dict[str, Any]:
    s = {**ctx.space.baseline, "fc_layers": [int(values[f"units_{i}"]) for i in range(int(values["n_layers"]))],
         "learning_rate": float(f"{float(values['learning_rate']):.3g}")}
    if "batch_size" in values:
        s["batch_size"] = int(values["batch_size"])
    return s


def _kt_drive(ctx: Context, oracle: Any, hyperband: bool) -> list[TrialOut]:
    import keras_tuner as kt

    oracle._set_project_dir(tempfile.mkdtemp(prefix="kt-", dir=ctx.workroot), "bench")
    oracle._display.verbose = 0
    outs = [ctx.baseline]
    while len(outs) < ctx.budget and outs[-1].reached is None:
        trial = oracle.create_trial("bench")
        if trial.status != "RUNNING":
            break
        values = trial.hyperparameters.values
        settings = _kt_settings(ctx, values)
        initial = 0
        if hyperband:
            settings["epochs"] = int(values["tuner/epochs"])
            initial = int(values.get("tuner/initial_epoch", 0))
        out = run_trial(ctx.runner, ctx.task, settings, ctx.seed, ctx.workdir(len(outs) + 1), goal=ctx.task.goal)
        # no checkpoint carried to the next round: the child trains from scratch, but only the
        # epochs after its parent's (tuner/initial_epoch) are counted - generous to Hyperband
        out = _count(out, initial)
        out.extra["kt"] = {k: v for k, v in values.items() if k.startswith("tuner/")}
        outs.append(out)
        for i, r in enumerate(out.history):
            oracle.update_trial(trial.trial_id, {METRIC: float(r[METRIC])}, step=i)
        trial.status = kt.engine.trial.TrialStatus.COMPLETED if out.history else kt.engine.trial.TrialStatus.FAILED
        oracle.end_trial(trial)
    return outs


def kt_random(ctx: Context) -> list[TrialOut]:
    import keras_tuner as kt

    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective(METRIC, "max"), max_trials=ctx.budget,
                                           seed=ctx.seed, hyperparameters=_kt_space(ctx))
    return _kt_drive(ctx, oracle, hyperband=False)


def kt_hyperband(ctx: Context) -> list[TrialOut]:
    import keras_tuner as kt

    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective(METRIC, "max"), max_epochs=ctx.cap, factor=3,
                                        seed=ctx.seed, hyperparameters=_kt_space(ctx))
    return _kt_drive(ctx, oracle, hyperband=True)


METHODS: dict[str, Callable[[Context], list[TrialOut]]] = {
    "ladder": product_strategy("ladder"),
    "random": product_strategy("random"),
    "optuna_tpe": optuna_tpe,
    "kt_random": kt_random,
    "kt_hyperband": kt_hyperband,
    "auto": product_strategy("auto"),
}
